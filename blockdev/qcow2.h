/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 driver internals shared by blockdev/qcow2*.c, plus the entry points vireo-img uses
 * (create, check). Concurrency rules are in qcow2_driver.c's opening comment.
 */
#ifndef VIREO_BLOCKDEV_QCOW2_H
#define VIREO_BLOCKDEV_QCOW2_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2_cache.h"
#include "blockdev/luks.h"
#include "blockdev/qcow2_format.h"
#include "common/error.h"

#define QCOW2_DEFAULT_L2_CACHE (8 * 1024 * 1024ULL) /* 64 GiB at 64 KiB clusters */
#define QCOW2_SLICE_BYTES 4096u

extern const struct blockdev_driver blockdev_qcow2;

/* The active L1 table, published by pointer: replaced whole only by resize. */
struct qcow2_l1 {
	uint32_t size;
	_Atomic uint64_t e[]; /* CPU byte order */
};

enum qcow2_kind {
	QCOW2_UNALLOCATED, /* read the backing file, or zeroes */
	QCOW2_ZERO,        /* reads zeroes (plain, or preallocated when host != 0) */
	QCOW2_DATA,        /* bytes at host */
	QCOW2_COMPRESSED,  /* a compressed cluster: host is its L2 entry's descriptor */
};

/* One mapped run of guest bytes. */
struct qcow2_run {
	enum qcow2_kind kind;
	uint64_t len;
	uint64_t host;   /* DATA / preallocated ZERO: host offset of the first byte */
	bool copied;     /* DATA: refcount is 1, may be written in place */
	uint64_t l2e;    /* the (first) L2 entry's first word (COMPRESSED: the descriptor) */
};

/* An L2 entry staged for publication (see qcow2_commit). */
struct qcow2_pending {
	uint64_t l2, idx;
	uint64_t old[2], ne[2];
	size_t job;                /* group commit: index of the write that staged it */
	struct qcow2_data_io *io;  /* group commit: its data write, run at the commit (or NULL) */
};

struct qcow2 {
	struct blockdev *bs;
	struct blockdev *file;  /* metadata and (without a data file) data */
	struct blockdev *data;  /* where data clusters live: file or the external data file */
	struct blockdev_user data_link; /* this image as the user of its external data file */
	struct qcow2_header h;
	uint64_t file_size_at_open;
	unsigned cluster_bits;
	uint64_t cluster_size;
	bool ext_l2;
	unsigned l2_bits;       /* log2 of entries per L2 table */
	unsigned entry_words;   /* 1 standard, 2 extended */
	unsigned slice_bits;    /* log2 of entries per cached slice */
	unsigned sc_bits;       /* log2 of the subcluster size (= cluster_bits without ext L2) */
	unsigned refcount_bits;
	unsigned rb_bits;       /* log2 of refcount entries per refcount block */
	bool read_only;
	bool ordered;           /* flush between dependent metadata writes */
	bool repair;            /* opened by check -r: dirty / corrupt images are writable */
	bool close_flush;       /* flush at close (close-flush=off: convert -t unsafe) */

	_Atomic(struct qcow2_l1 *) l1;
	struct qcow2_l1 *l1_retired[8]; /* older L1 arrays, freed at close */
	unsigned nr_retired;
	struct qcow2_cache cache;
	_Atomic bool corrupt;
	_Atomic int prealloc_state; /* 0 unknown, 1 no, 2 preallocation=metadata (block status) */

	/* everything below: only with @lock held */
	pthread_mutex_t lock;
	uint64_t *reftable;     /* CPU byte order */
	uint64_t reftable_entries;
	uint64_t free_hint;     /* allocation scans from here; only ever grows (see driver essay) */
	uint64_t end_cluster;   /* first cluster past everything allocated or in the file */
	struct {
		uint64_t off;   /* 0 = empty */
		uint8_t *buf;
		uint32_t dirty_lo, dirty_hi; /* bytes not yet written (group commit), or equal */
	} rb[4];
	unsigned rb_next;
	uint8_t *cbuf;          /* a cluster of scratch (compressed input) */
	uint8_t *cbuf2;         /* a cluster of scratch (COW / decompressed output) */
	struct qcow2_pending *pending; /* staged L2 entries of the current locked section */
	size_t nr_pending, cap_pending;
	/* L2 entries of group commits that are in the cache but not yet in the file (see
	 * "Lazy publication" in qcow2_commit.c): written by the next qcow2_barrier() */
	struct qcow2_pending *lazy;
	size_t nr_lazy, cap_lazy;
	struct { uint64_t l1i, v; } *lazy_l1; /* L1 entries of new L2 tables, likewise */
	size_t nr_lazy_l1, cap_lazy_l1;
	uint64_t nr_staged;     /* entries ever staged (tells which writes of a group staged) */
	bool grouping;          /* inside qcow2_write_group(): see qcow2_commit.c */
	int group_err;          /* first failed commit inside the current group */
	struct blockdev_write *group_w; /* the group's writes; group_job: the one running */
	size_t group_job;
	uint64_t deferred_bytes; /* buffers held by staged entries' data writes */
	struct qcow2_pool *pool; /* group commit's helper threads, started at a read-write open */
	uint64_t zhost;         /* host cluster compressed writes append to (0: none) */
	uint64_t zused;         /* bytes of it used */

	/* encrypt.format=luks: the volume key (read-only after open), NULL when the data is
	 * plain (or the image was opened with no-io); the LUKS header, for info */
	struct luks_key *crypto;
	struct luks_header *luks;

	/* persistent dirty bitmaps (qcow2_bitmap.c): control plane only */
	struct qcow2_bitmap *bm;         /* the bitmap directory as the file holds it */
	struct blockdev_bitmap **bm_mem; /* each entry's bitmap in memory, NULL: kept as it is */
	uint32_t nr_bm;
};

/* The qcow2 state of @bs, which the caller knows to be a qcow2 node (the driver's own ops). */
static inline struct qcow2 *qcow2_of(struct blockdev *bs)
{
	return bs->opaque;
}

/*
 * The qcow2 state of @bs, or NULL with an error naming its format when @bs is not a qcow2 node
 * (for every qcow2-specific call reached from generic code: never cast another driver's node).
 */
struct qcow2 *qcow2_node(struct blockdev *bs, struct error **errp);

/* Bytes of the image file as far as this session knows: its size at open, or past the last
 * cluster allocated since (the file node's size is not updated by writes past its end). */
static inline uint64_t qcow2_file_end(const struct qcow2 *q)
{
	uint64_t alloc = q->end_cluster << q->cluster_bits;

	return q->file->size > alloc ? q->file->size : alloc;
}

/* --- qcow2_meta.c: guards every layer shares (the write side's own: qcow2_internal.h) --- */
/*
 * Guest data at host offset @host of the data file: read and decrypted, or encrypted (a copy)
 * and written, when the image is encrypted (the IV of each 512-byte sector its host offset's
 * sector, as QEMU's LUKS in qcow2), else plain blockdev_pread/pwrite. Partial sectors are
 * read-modify-written: encrypted data always takes the slow path, one request at a time.
 */
int qcow2_data_pread(struct qcow2 *q, uint64_t host, void *buf, uint64_t len);
int qcow2_data_pwrite(struct qcow2 *q, uint64_t host, const void *buf, uint64_t len);
/* true if [off, off+len) touches the header cluster, the L1 table or the refcount table */
bool qcow2_overlaps_metadata(const struct qcow2 *q, uint64_t off, uint64_t len);

/* Records a corruption: message on stderr, image flagged, header bit set when writable. */
void qcow2_signal_corruption(struct qcow2 *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Writes the fields of the fixed header at [from, to) from q->h; lock held. */
int qcow2_header_update(struct qcow2 *q, unsigned from, unsigned to);

/* --- qcow2_map.c: lookups (lock-free when @may_block is false) and reads --- */
/* Maps the start of [off, off+len) (inside one cluster's L2 slice); -EAGAIN on a cache miss
 * when !may_block, -EIO on corruption. */
int qcow2_lookup(struct qcow2 *q, uint64_t off, uint64_t len, bool may_block,
		 struct qcow2_run *run);
/* Reads @n words (one L2 entry) of the L2 table at @l2 index @idx; lock held. */
int qcow2_l2_get(struct qcow2 *q, uint64_t l2, uint64_t idx, uint64_t *e);
/* The cached copy of an L2 entry already written to disk; lock held. */
void qcow2_l2_cache_update(struct qcow2 *q, uint64_t l2, uint64_t idx, const uint64_t *e);
/* Writes one L2 entry to disk, then to the cache; lock held. */
int qcow2_l2_set(struct qcow2 *q, uint64_t l2, uint64_t idx, const uint64_t *e);
/* Kind of subcluster @sc (0 without extended L2) of the cluster whose entry is @e (2 words). */
int qcow2_decode(struct qcow2 *q, const uint64_t *e, unsigned sc, uint64_t l2, uint64_t idx,
		 struct qcow2_run *run);
/* Guest bytes [off, off+n) as the backing file (or zeroes past its end) gives them. */
int qcow2_read_backing(struct qcow2 *q, uint64_t off, uint8_t *buf, uint64_t n);
int qcow2_read(struct qcow2 *q, uint64_t off, void *buf, uint64_t len);
int qcow2_decompress(struct qcow2 *q, uint64_t desc, uint8_t *out);
int qcow2_map_op(struct blockdev *bs, enum blockdev_op op, uint64_t off, uint64_t len,
		 struct blockdev_extent *ext);
int qcow2_block_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum,
		       uint64_t *map_offset, struct blockdev **map_file);

/* --- qcow2_refcount.c (lock held) --- */
int qcow2_rc_get(struct qcow2 *q, uint64_t cluster, uint64_t *rc);
int qcow2_rc_set(struct qcow2 *q, uint64_t cluster, uint64_t rc);
/* Writes the refcount changes a group commit held back (qcow2_barrier does it first). */
int qcow2_rc_flush(struct qcow2 *q);
/* qcow2_rc_flush(), then a flush of the file and the data file (none with
 * metadata-barriers=off): what was written before reaches the disk before what follows. Then
 * the lazily published L2 entries are written (qcow2_lazy_write), which that made safe. */
int qcow2_barrier(struct qcow2 *q);
/* --- qcow2_commit.c (lock held) --- */
/* Writes the lazily published L1 and L2 entries to the file (after a barrier only). */
int qcow2_lazy_write(struct qcow2 *q);
/* Points L1 entry @l1i at a new, zeroed L2 table (@v: its offset and flags) in memory now and
 * in the file after the next barrier; only inside a group commit (qcow2_lazy_l1_ok). */
int qcow2_lazy_l1(struct qcow2 *q, uint64_t l1i, uint64_t v);
bool qcow2_lazy_l1_ok(const struct qcow2 *q);
/* Before reading L2 tables from the file rather than through the cache: puts the lazily
 * published entries there (a barrier, then their writes). 0 or -errno. */
int qcow2_lazy_sync(struct qcow2 *q);
/* Overlays the lazily published entries that fall in the slice at file offset @key
 * (@words: its words, CPU byte order) just read from the file. */
void qcow2_lazy_overlay(const struct qcow2 *q, uint64_t key, uint64_t *words, uint64_t nwords);
/* Allocates @n contiguous clusters (refcount 1 each); returns the host offset or -errno. */
int64_t qcow2_alloc_clusters(struct qcow2 *q, uint64_t n);
/* Drops one reference from each cluster of [off, off+len). */
int qcow2_free_range(struct qcow2 *q, uint64_t off, uint64_t len);
int qcow2_load_reftable(struct qcow2 *q, struct error **errp);
void qcow2_rb_drop_cache(struct qcow2 *q);
uint64_t qcow2_rc_max(const struct qcow2 *q);
/* Sets entry @i of the refcount block in @b to @v; [*from, *from + *n) is the bytes changed. */
void qcow2_rb_entry_set(const struct qcow2 *q, uint8_t *b, uint64_t i, uint64_t v,
			uint64_t *from, unsigned *n);

/* --- qcow2_commit.c --- */
/* Publishes the staged L2 entries (one barrier first), then frees what they replaced; lock held. */
int qcow2_commit(struct qcow2 *q);

/* --- qcow2_write.c (takes the lock itself) --- */
/* block-stream: writes only what the image does not hold itself (driver op populate). */
int qcow2_populate(struct blockdev *bs, uint64_t off, const void *buf, uint64_t len);
int qcow2_write(struct qcow2 *q, uint64_t off, const void *buf, uint64_t len);
/* Group commit of @n writes (blockdev_driver.pwritev_group): one barrier for all of them. */
void qcow2_write_group(struct qcow2 *q, struct blockdev_write *w, size_t n);

/* --- qcow2_zero.c (takes the lock itself) --- */
int qcow2_zero_range(struct qcow2 *q, uint64_t off, uint64_t len, unsigned int flags);
int qcow2_discard_range(struct qcow2 *q, uint64_t off, uint64_t len);
/* The driver's make_empty op: every guest cluster becomes unallocated (reads the backing
 * file); for commit. */
int qcow2_make_empty(struct blockdev *bs, struct error **errp);

/* --- qcow2_resize.c --- */
/* New virtual size: grows the L1 table as needed; shrinking frees what lies past the end. */
int qcow2_resize(struct qcow2 *q, uint64_t size, struct error **errp);

/*
 * qcow2_pool.c: runs @fn(@arg) here and on up to @helpers helper threads of @q's pool at once;
 * returns when every run has finished. @fn shares out the work itself. Lock held. With no
 * helpers (or no pool) it just calls @fn here.
 */
struct qcow2_pool;
void qcow2_pool_run(struct qcow2 *q, unsigned int helpers, void (*fn)(void *), void *arg);
/* Starts @q's pool of up to @nr helpers (fewer if the system gives fewer, none on failure: the
 * commits then run their data writes on their own thread), at a read-write open. */
void qcow2_pool_start(struct qcow2 *q, unsigned int nr);
/* The helpers a read-write image starts (qcow2_commit.c's DATA_IO_THREADS - 1). */
#define QCOW2_POOL_HELPERS 7
void qcow2_pool_free(struct qcow2_pool *p);

/* --- qcow2_write_compressed.c --- */
/*
 * Writes guest cluster [off, off+len) compressed (compression_type of the image): @off is
 * cluster-aligned and @len is the cluster size, or what is left of the image at its end.
 * Data that does not shrink is written as a normal cluster. Compressed clusters share host
 * clusters (each holds a reference per compressed cluster in it). Tools only (slow path):
 * -ENOTSUP with an external data file.
 */
int qcow2_write_compressed(struct qcow2 *q, uint64_t off, const void *buf, uint64_t len);
/* The driver's pwrite_compressed op. */
int qcow2_pwrite_compressed(struct blockdev *bs, uint64_t off, const void *buf, uint64_t len);

/* --- qcow2_amend.c --- */
struct qcow2_amend_opts {
	unsigned version;   /* 2 or 3; 0 keeps it */
	int lazy_refcounts; /* 0 off, 1 on, -1 keeps it */
};
/*
 * Changes the version and the lazy_refcounts bit of an image open read-write (no queues on it).
 * Downgrading to version 2 expands zero clusters first (the snapshots' too) and refuses, naming
 * the reason, what version 2 cannot hold (extended L2, zstd, a data file, refcount_bits != 16,
 * bitmaps, snapshots of another size or with VM state, a dirty image).
 */
int qcow2_amend(struct blockdev *bs, const struct qcow2_amend_opts *o, struct error **errp);
/*
 * qcow2_recompress.c: switches the image's compression type (QCOW2_COMPRESS_*) in place: every
 * compressed cluster of the active disk is first stored plainly, then the header changes (a
 * zstd image needs version 3), then each is compressed again in the new type; a crash leaves
 * every cluster readable. Refused while a snapshot holds compressed clusters. Tools only.
 */
int qcow2_set_compression(struct blockdev *bs, unsigned type, struct error **errp);
/* Rewrites the header with another backing file name ("" = none) and format (NULL = none).
 * Only the header changes: the caller copies data first if the content must stay the same. */
int qcow2_change_backing(struct blockdev *bs, const char *name, const char *fmt,
			 struct error **errp);

/* --- qcow2_compress.c --- */
/* Compresses one cluster @src (cluster_size bytes) into @dst (@cap bytes) in the image's
 * compression type (zlib: raw deflate, window 4 KiB; zstd: one frame). Returns the compressed
 * length, -ENOSPC when it does not fit in @cap, or -ENOMEM. */
int64_t qcow2_compress(const struct qcow2 *q, const void *src, void *dst, uint64_t cap);

/* --- qcow2_crypto.c --- */
/* Makes the new, empty image @bs (open read-write, nothing written to its disk yet) encrypted
 * with LUKS: slot 0 holds the passphrase in secret @secret (PBKDF2 for about @iter_time ms). */
int qcow2_encrypt_new(struct blockdev *bs, const char *secret, unsigned int iter_time,
		      struct error **errp);

/* luks_amend on the encryption header of @bs (opened read-write with its key). */
int qcow2_amend_encryption(struct blockdev *bs, const struct luks_amend *a,
			   struct error **errp);

/* --- qcow2_create.c --- */
struct qcow2_create_opts {
	uint64_t size;
	unsigned cluster_bits;     /* default 16 */
	unsigned version;          /* 2 or 3 (default) */
	const char *backing_file;
	const char *backing_fmt;
	bool lazy_refcounts;
	bool extended_l2;
	unsigned refcount_bits;    /* default 16 */
	unsigned compression_type; /* QCOW2_COMPRESS_* */
	bool prealloc_metadata;
	bool prealloc_falloc;      /* also allocate the data clusters in the file (falloc, full) */
	const char *data_file;     /* external data file (created raw, @size bytes), or NULL */
	bool data_file_raw;
	const char *encrypt_secret; /* encrypt.format=luks: the secret's id (NULL: plain) */
	unsigned int encrypt_iter_time; /* its PBKDF2 time in ms (0: LUKS_DEFAULT_ITER_TIME) */
};
/*
 * Bytes a qcow2 image of @size virtual bytes takes with every cluster allocated: header, L2 and
 * L1 tables, refcount blocks and table covering all of it (their fixed point), and the data.
 * The same estimate `qemu-img measure` gives as "fully allocated size".
 */
uint64_t qcow2_measure_full(uint64_t size, unsigned cluster_bits, unsigned refcount_bits,
			    bool extended_l2);
/* How qcow2_create_check's messages spell the options: qemu-img's -o keys, or QMP's. */
enum qcow2_create_names { QCOW2_NAMES_IMG, QCOW2_NAMES_QMP };
/* Refuses options that make no valid image (or that QEMU refuses), naming the option. */
int qcow2_create_check(const struct qcow2_create_opts *o, enum qcow2_create_names names,
		       struct error **errp);
/* Creates (or truncates) @filename as an empty qcow2 image (and o->data_file beside it). */
int qcow2_create(const char *filename, const struct qcow2_create_opts *o, struct error **errp);
/*
 * Writes an empty qcow2 image onto the open file node @file (QEMU's blockdev-create: a file
 * or a block device; grown when shorter than the image's metadata, never shrunk). @data (or
 * NULL) is the open external data file, which o->data_file names in the header: grown to the
 * virtual size. Synchronous: the caller is @file's only writer.
 */
int qcow2_create_on(struct blockdev *file, struct blockdev *data,
		    const struct qcow2_create_opts *o, struct error **errp);

/* --- qcow2_snapshot.c: the snapshot table --- */
/* The driver's snapshot_list op: the snapshot table of a qcow2 node. */
int qcow2_snapshot_list(struct blockdev *bs, struct blockdev_snapshot **out, size_t *nr,
			struct error **errp);
/* The whole table (h.nb_snapshots entries; NULL when none) and its length in bytes. */
int qcow2_snapshots_read(struct qcow2 *q, struct qcow2_snapshot **out, uint64_t *bytes,
			 struct error **errp);
/* The first entry whose ID is @id (NULL: any) and name @name (NULL: any), or -1. */
int qcow2_snapshot_find(const struct qcow2_snapshot *s, uint32_t n, const char *id,
			const char *name);
/* The entry whose ID is @what, else the first whose name is, or -1 (QEMU's order). */
int qcow2_snapshot_find_id_or_name(const struct qcow2_snapshot *s, uint32_t n, const char *what);
/* Writes @n entries as a new table (fresh clusters), switches the header to it and frees the
 * old one (@old_bytes long); -errno. Lock held. */
int qcow2_snapshots_write(struct qcow2 *q, const struct qcow2_snapshot *s, uint32_t n,
			  uint64_t old_bytes);

/* --- qcow2_snapshot_ops.c: the driver's snapshot ops (struct blockdev_driver) --- */
int qcow2_snapshot_create(struct blockdev *bs, const char *name, uint64_t vm_clock_nsec,
			  struct blockdev_snapshot *made, struct error **errp);
int qcow2_snapshot_goto(struct blockdev *bs, const char *id_or_name, struct error **errp);
int qcow2_snapshot_delete(struct blockdev *bs, const char *id, const char *name,
			  struct blockdev_snapshot *deleted, struct error **errp);
int qcow2_snapshot_load_tmp(struct blockdev *bs, const char *id, const char *name,
			    struct error **errp);

/* --- qcow2_bitmap.c: persistent dirty bitmaps (bitmap.h's persistent ones) --- */
/*
 * At open (after the header, L1 and refcounts): reads the bitmap directory and loads each
 * bitmap into an in-memory bitmap of the node (enabled when its "auto" flag is set; one found
 * in use becomes inconsistent), and on a writable image marks them in use on disk. An image
 * whose bitmaps extension is stale (autoclear bit clear) has its bitmaps ignored (and, when
 * writable, the extension dropped). Hostile entries are refused by name.
 */
int qcow2_bitmaps_load(struct qcow2 *q, struct error **errp);
/* At close of a writable image: stores the node's persistent bitmaps (a new directory, the
 * header switched to it, the old clusters freed); problems are printed. */
void qcow2_bitmaps_store(struct qcow2 *q);
void qcow2_bitmaps_release(struct qcow2 *q);
/* The driver's bitmap_can_store op. */
int qcow2_bitmap_can_store(struct blockdev *bs, const char *name, uint64_t granularity,
			   struct error **errp);
/* qemu-img info's "bitmaps" list (format-specific data), or NULL when there is none. */
struct json_object *qcow2_bitmaps_info(struct qcow2 *q);
/* The driver's bitmap_remove (blockdev.h): stored bitmap @name out of the image at once. */
int qcow2_bitmap_remove(struct blockdev *bs, const char *name, struct error **errp);

/* --- qcow2_check.c --- */
/* The driver's check op: recounts every reference and compares with the refcounts; repairs per
 * @fix (BLOCKDEV_FIX_*). Returns 0 (result filled) or -1 when the check itself could not run. */
int qcow2_check(struct blockdev *bs, unsigned fix, struct blockdev_check_result *res,
		struct error **errp);

#endif
