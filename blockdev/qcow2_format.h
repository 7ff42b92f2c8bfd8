/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The qcow2 on-disk format (versions 2 and 3): constants, the parsed header, and the
 * pure functions that parse, validate and serialize it. Nothing here does I/O; the caller reads
 * the first cluster of the image and hands it in, which keeps every check unit-testable.
 */
#ifndef VIREO_BLOCKDEV_QCOW2_FORMAT_H
#define VIREO_BLOCKDEV_QCOW2_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104  /* minimum for version 3 */
#define QCOW2_HEADER_LEN 112     /* what we write: through compression_type, padded to 8 */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_L1_BYTES (32 * 1024 * 1024ULL)     /* QEMU's limit too: images stay portable */
#define QCOW2_MAX_REFTABLE_BYTES (8 * 1024 * 1024ULL)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_VIRTUAL_SIZE (1ULL << 61)

/* incompatible_features */
#define QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1fULL
/* compatible_features */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
/* autoclear_features */
#define QCOW2_AUTOCLEAR_BITMAPS (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)
#define QCOW2_AUTOCLEAR_KNOWN 0x3ULL

/* header extension types */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define QCOW2_CRYPT_NONE 0
#define QCOW2_CRYPT_AES 1  /* the old AES-CBC: not supported */
#define QCOW2_CRYPT_LUKS 2

#define QCOW2_COMPRESS_ZLIB 0
#define QCOW2_COMPRESS_ZSTD 1

/* L1 / L2 / refcount table entries */
#define QCOW2_OFLAG_COPIED (1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW2_OFLAG_ZERO (1ULL << 0)
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ULL /* bits 9-55 */
#define QCOW2_L1_RESERVED 0x7f000000000001ffULL
#define QCOW2_L2_RESERVED 0x3f000000000001feULL /* bits 1-8, 56-61 of a standard entry */
#define QCOW2_REFT_RESERVED 0x1ffULL
#define QCOW2_SUBCLUSTERS 32

struct qcow2_feature_name {
	uint8_t type; /* 0 incompatible, 1 compatible, 2 autoclear */
	uint8_t bit;
	char name[47]; /* 46 bytes on disk + NUL */
};

/* A header extension we do not interpret, kept byte for byte and written back. */
struct qcow2_unknown_ext {
	uint32_t type;
	uint32_t len;
	uint8_t *data;
};

struct qcow2_header {
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible_features;
	uint64_t compatible_features;
	uint64_t autoclear_features;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;

	/* header extensions and strings */
	char backing_file[QCOW2_MAX_BACKING_NAME + 1];
	char backing_fmt[QCOW2_MAX_BACKING_NAME + 1];
	char data_file[QCOW2_MAX_BACKING_NAME + 1];
	bool has_backing_fmt, has_data_file_ext;
	struct qcow2_feature_name *features;
	size_t nb_features;
	bool has_crypto_ext;     /* crypt_method 2 (LUKS): where its header lies */
	uint64_t crypto_offset, crypto_len;
	bool has_bitmaps_ext;
	uint8_t bitmaps_ext[24]; /* raw, preserved */
	uint32_t nb_bitmaps;
	uint64_t bitmap_directory_size, bitmap_directory_offset;
	struct qcow2_unknown_ext *unknown;
	size_t nb_unknown;
	/* header bytes between the fields we know and header_length, preserved */
	uint8_t *tail;
	uint32_t tail_len;
};

/* Bytes of the header proper that must be read to learn cluster_bits and header_length. */
#define QCOW2_PROBE_LEN QCOW2_V3_HEADER_LEN

/* true if buf starts with the qcow2 magic (whatever the version field says) */
bool qcow2_probe(const uint8_t *buf, size_t len);

/**
 * qcow2_header_parse - parse and validate the header and its extensions
 * @buf:       the image's first bytes: min(cluster size, file size) of them (at least 72)
 * @len:       how many bytes buf holds
 * @file_size: size of the image file, against which every offset is bounded
 * @h:         filled on success; release with qcow2_header_free (also after a failure)
 *
 * Refuses, naming the field and its offset in the header, anything we cannot read safely: bad
 * magic or version, cluster size outside 512 B..2 MiB, the old AES encryption, LUKS encryption
 * without its header extension (or the extension without it), unknown incompatible features,
 * tables that are misaligned, past the end of the file, absurdly large or overlapping.
 */
int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size,
		       struct qcow2_header *h, struct error **errp);
void qcow2_header_free(struct qcow2_header *h);

/**
 * qcow2_header_serialize - the header cluster: header, extensions, then the backing file name
 * @buf: cluster_size bytes, zeroed by the caller
 * Sets h->header_length, backing_file_offset and backing_file_size. Fails if it does not fit.
 */
int qcow2_header_serialize(struct qcow2_header *h, uint8_t *buf, size_t len, struct error **errp);

/* The fixed header fields (QCOW2_HEADER_LEN bytes, or 72 for v2) of @h into @buf. */
void qcow2_header_put_fixed(const struct qcow2_header *h, uint8_t *buf);

/* Name of feature bit @bit of @type from the image's table, or the one we know, or NULL. */
const char *qcow2_feature_name(const struct qcow2_header *h, unsigned type, unsigned bit);

/* Guest clusters an L1 table must cover for a disk of @size bytes. */
uint64_t qcow2_l1_entries_for(uint64_t size, unsigned cluster_bits, bool extended_l2);

/* --- the snapshot table (blockdev/qcow2_snaptable.c): pure, no I/O --- */
#define QCOW2_SNAPSHOT_HEADER_LEN 40
#define QCOW2_SNAPSHOT_MAX_EXTRA 1024  /* QEMU's limit on an entry's extra data */
#define QCOW2_SNAPSHOT_EXTRA_LEN 24    /* what we write: VM state size, disk size, icount */
#define QCOW2_MAX_SNAPSHOT_TABLE (64 * 1024 * 1024ULL)

/*
 * One entry of the snapshot table. Strings are NUL-terminated copies; @extra is the entry's
 * extra data byte for byte, written back as it came (fields we do not know survive a rewrite).
 */
struct qcow2_snapshot {
	uint64_t l1_table_offset;
	uint32_t l1_size;
	char *id, *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size; /* the 64-bit field of the extra data when present */
	uint64_t disk_size;     /* UINT64_MAX: the entry does not record it */
	uint64_t icount;        /* UINT64_MAX: not recorded (or -1) */
	uint32_t extra_len;
	uint8_t *extra;
};

/* Bytes of the entry whose first QCOW2_SNAPSHOT_HEADER_LEN bytes are @hdr, without the padding
 * to 8 that follows it (which the file may end in: qemu-img does not pad the file). */
uint64_t qcow2_snapshot_entry_len(const uint8_t *hdr);
/**
 * qcow2_snapshot_parse - one snapshot table entry
 * @buf: the whole entry (qcow2_snapshot_entry_len bytes)
 * @index, @off: which entry it is and where it lies in the file (for messages)
 * @cluster_bits: the image's
 * @sn: filled on success; release with qcow2_snapshot_free (also after a failure)
 *
 * Refuses, naming the entry and the field, extra data over QCOW2_SNAPSHOT_MAX_EXTRA, an L1
 * table offset not aligned to the cluster size, or an L1 table over QCOW2_MAX_L1_BYTES.
 */
int qcow2_snapshot_parse(const uint8_t *buf, uint32_t index, uint64_t off, unsigned cluster_bits,
			 struct qcow2_snapshot *sn, struct error **errp);
/* Bytes qcow2_snapshot_put() writes for @sn (padded to 8). */
uint64_t qcow2_snapshot_size(const struct qcow2_snapshot *sn);
/* Serializes @sn into @buf (qcow2_snapshot_size bytes, zeroed by the caller). */
void qcow2_snapshot_put(const struct qcow2_snapshot *sn, uint8_t *buf);
void qcow2_snapshot_free(struct qcow2_snapshot *sn);
/* Frees @n entries and the array. */
void qcow2_snapshots_free(struct qcow2_snapshot *s, uint32_t n);

/* --- persistent dirty bitmaps: the bitmap directory (blockdev/qcow2_bitmap_dir.c): pure --- */
#define QCOW2_BITMAP_IN_USE (1u << 0)      /* not stored cleanly: its bits are unknown */
#define QCOW2_BITMAP_AUTO (1u << 1)        /* enabled: records every write */
#define QCOW2_BITMAP_EXTRA_COMPAT (1u << 2) /* unknown extra data may be ignored */
#define QCOW2_BITMAP_FLAGS_KNOWN 7u
#define QCOW2_BITMAP_TYPE_DIRTY 1
#define QCOW2_BITMAP_ENTRY_LEN 24          /* the fixed part of a directory entry */
#define QCOW2_BITMAP_MAX_NAME 1023
#define QCOW2_MAX_BITMAPS 65535
#define QCOW2_BITMAP_MIN_GRAN_BITS 9
#define QCOW2_BITMAP_MAX_GRAN_BITS 31
#define QCOW2_BITMAP_MAX_DATA (512 * 1024 * 1024ULL) /* QEMU's limit on one bitmap's data */
#define QCOW2_BITMAP_MAX_DIR (64 * 1024 * 1024ULL)
#define QCOW2_BITMAP_TABLE_RESERVED 0xff000000000001feULL /* bits 1-8 and 56-63 */

/* One entry of the bitmap directory; @name NUL-terminated, @extra kept byte for byte. */
struct qcow2_bitmap {
	uint64_t table_offset;
	uint32_t table_size; /* entries of the bitmap table: clusters of bitmap data */
	uint32_t flags;
	uint8_t type;
	uint8_t gran_bits;
	char *name;
	uint32_t extra_len;
	uint8_t *extra;
};

/* Bytes of the directory entry whose first QCOW2_BITMAP_ENTRY_LEN bytes are @hdr, unpadded. */
uint64_t qcow2_bitmap_entry_len(const uint8_t *hdr);
/**
 * qcow2_bitmap_parse - one bitmap directory entry
 * @buf: the whole entry (qcow2_bitmap_entry_len bytes)
 * @index, @off: which entry and where it lies in the file (for messages)
 * @cluster_bits, @disk_size: the image's
 * @bm: filled on success; release with qcow2_bitmap_free (also after a failure)
 *
 * Refuses, naming the bitmap and the field: an empty or over-long name, a type other than
 * dirty tracking, reserved flag bits, a granularity outside 512 B..2 GiB, a misaligned table,
 * or a table size that is not what the disk's size and the granularity need.
 */
int qcow2_bitmap_parse(const uint8_t *buf, uint32_t index, uint64_t off, unsigned cluster_bits,
		       uint64_t disk_size, struct qcow2_bitmap *bm, struct error **errp);
/* Bytes qcow2_bitmap_put() writes for @bm (padded to 8). */
uint64_t qcow2_bitmap_size(const struct qcow2_bitmap *bm);
/* Serializes @bm into @buf (qcow2_bitmap_size bytes, zeroed by the caller). */
void qcow2_bitmap_put(const struct qcow2_bitmap *bm, uint8_t *buf);
void qcow2_bitmap_free(struct qcow2_bitmap *bm);
void qcow2_bitmaps_free(struct qcow2_bitmap *bm, uint32_t n);
/* Bytes of bitmap data for @disk_size bytes at 2^@gran_bits bytes per bit. */
uint64_t qcow2_bitmap_data_bytes(uint64_t disk_size, unsigned gran_bits);
/* Entries of its bitmap table (clusters of data). */
uint64_t qcow2_bitmap_table_entries(uint64_t disk_size, unsigned gran_bits,
				    unsigned cluster_bits);

static inline uint64_t qcow2_be64(const uint8_t *p)
{
	return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
	       ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
	       ((uint64_t)p[6] << 8) | p[7];
}

static inline uint32_t qcow2_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void qcow2_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline void qcow2_put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

#endif
