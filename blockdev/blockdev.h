/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The block layer: nodes, drivers, options, and the two ways to do I/O.
 *
 * Nodes. A `struct blockdev` is one node of an image graph: a *protocol* node (driver "file")
 * owns a host fd; a *format* node (raw, qcow2) interprets the bytes of its `file` child and may
 * have a `backing` node. blockdev_open() builds the chain: it opens the protocol node, probes or
 * forces the format, and returns the format node. Every node has a name and is found by it;
 * its users (parents through their child links, device frontends) hold references and
 * permissions (graph.c): blockdev_close() on the top drops the opener's reference, and a node
 * closes with its last reference, dropping its children's. Node fields are written while
 * opening (and by truncate, a control-plane operation done with the iothreads drained) and are
 * read-only otherwise.
 *
 * Drivers. One small `const struct blockdev_driver` per format or protocol. Formats are found
 * through the ordered probe list in blockdev/probe.c (highest score wins; a file carrying a
 * known format's magic is that format or refused, raw only when no format claims it);
 * `format=` forces one. Options are a small key=value set: the generic keys (format, cache,
 * readonly) live in `struct blockdev_opts`; every other key is driver-specific, consumed by the
 * driver's open through blockdev_opt_get(), and any key no driver consumed is refused by name.
 *
 * Two I/O paths.
 *  (a) Synchronous: blockdev_pread/pwrite/preadv/pwritev/flush/discard/write_zeroes return 0 or
 *      -errno and may block. They are for tools (vireo-img), block jobs, driver metadata I/O and
 *      the slow path below. They may be called from any thread; a driver serializes its own
 *      metadata updates (qcow2: the per-image allocation lock).
 *  (b) Asynchronous, the fast path of the iothreads: blockdev_submit() on a `struct
 *      blockdev_queue` (one per iothread per node it serves; see "Queues" below). Format
 *      translation is apart from the I/O engine: the driver's map() turns a guest range into
 *      extents (DATA at a host offset of a protocol node, ZERO, BACKING, or SLOW), and the
 *      iothread's io_uring engine (blockdev/engine.c) moves the bytes with READV/WRITEV on
 *      registered O_DIRECT fds. A DATA extent of an encrypted image carries its key: the
 *      engine decrypts what it read and writes an encrypted copy, on the iothread. map() must be cheap and must not block or take a lock that the
 *      slow path holds while doing I/O: it runs on every iothread concurrently.
 *      SLOW extents (qcow2 allocation, COW, compressed clusters, unaligned O_DIRECT access) and
 *      operations a driver handles itself (flush of a driver with metadata, discard and
 *      write-zeroes it maps as SLOW) are handed to the node's slow-path worker thread, which
 *      runs the driver's synchronous ops one request at a time (FIFO, so serialized per image)
 *      and posts the completion back to the submitting iothread. The iothread never blocks.
 *
 * Queues. A `struct blockdev_queue` is a node's context on one iothread (as SPDK's I/O
 * channel): its pool of sub-I/O records, its cache of registered-file indexes and its in-flight
 * count. Only its iothread submits on it, drains it and frees it, so it has no lock and no
 * atomic. Nothing else is shared on the fast path: map() reads driver state that the driver
 * publishes lock-free (raw: none). The hand-off of slow work is ordered by locks: the worker's
 * queue mutex (iothread -> worker: the request and its buffers) and the iothread's message
 * lock (worker -> iothread: what the driver wrote into the guest buffers happens before done()).
 *
 * Requests. A device fills a `struct blockdev_req` (usually embedded in its own request
 * struct), calls blockdev_submit(), and gets `done(req, ret)` exactly once, on the iothread that
 * submitted it, never from inside blockdev_submit() itself (completions run in the iothread's
 * completion phase, so a device may submit from within its poll callback without re-entrancy).
 * ret is 0 or -errno. Short reads/writes and -EAGAIN are resubmitted for the rest, not failed;
 * reading past the end of a protocol node's file returns zeroes.
 *
 * Reuse of freed host ranges: a fast-path request maps a range, then does I/O on it later. A
 * driver whose slow path frees host ranges (qcow2 discard) must not hand a freed range to a new
 * allocation while a fast-path request mapped before the free may be in flight (qcow2: reuse
 * freed clusters only after every queue on the image was drained, e.g. at open or close).
 */
#ifndef VIREO_BLOCKDEV_BLOCKDEV_H
#define VIREO_BLOCKDEV_BLOCKDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/error.h"
#include "iothreads/iothread.h"

struct blockdev;
struct blockdev_queue;
struct blockdev_user;
struct blockdev_slow;
struct blockdev_bitmap;
struct blockdev_create_ctx;
struct blockdev_create_opt_desc;
struct json_object;
struct luks_key;

/* Largest number of iovec entries a request may carry (devices advertise SEG_MAX below it). */
#define BLOCKDEV_MAX_IOV 1024

enum blockdev_cache {
	BLOCKDEV_CACHE_WRITEBACK = 0, /* page cache; flush = fdatasync */
	BLOCKDEV_CACHE_NONE,          /* O_DIRECT; flush = fdatasync (device write cache) */
};

/* When the engine hands a node's SQEs to the kernel (see iothread_submit). */
enum blockdev_submit {
	BLOCKDEV_SUBMIT_AUTO = 0, /* eager with cache=none, batched with cache=writeback */
	BLOCKDEV_SUBMIT_EAGER,    /* each request as soon as it is prepared */
	BLOCKDEV_SUBMIT_BATCHED,  /* once per iothread loop turn */
};

/* ---------------------------------------------------------------------------------------------
 * Options
 */

/* One driver-specific option, e.g. {"l2-cache-size", "4M"}. */
struct blockdev_opt {
	char *key;
	char *value;
};

/**
 * struct blockdev_opts - how to open an image
 * @format: driver name ("raw", "qcow2"); NULL probes the content
 * @cache: cache mode, for every protocol node of the chain
 * @submit: when the asynchronous engine submits the chain's I/O (auto: by cache mode)
 * @readonly: open every node read-only (a format refuses writes with -EROFS)
 * @node_name: the node-name of the top node (NULL: generated)
 * @repair: opened to be repaired by check (a format may open an image it would otherwise
 *          refuse, e.g. one marked corrupt)
 * @no_backing: leave the backing file closed (what the image does not hold reads as zeroes):
 *              for looking at the image itself (info) or rewriting its header (rebase -u),
 *              never for guest I/O
 * @no_io: opened to look at its metadata only (info, "no-io"): an encrypted image opens
 *         without its key, and its data cannot be read or written (-EACCES)
 * @extra: driver-specific options, consumed by the drivers' open (unknown keys are refused)
 * @nr_extra: entries in @extra
 *
 * Zero-initialise it (`struct blockdev_opts o = {0};` = probe, writeback, read-write) and fill
 * it with blockdev_opts_set(); release the copies with blockdev_opts_free().
 */
struct blockdev_opts {
	char *format;
	char *node_name;
	enum blockdev_cache cache;
	enum blockdev_submit submit;
	bool readonly;
	bool repair;
	bool no_backing;
	bool no_io;
	struct blockdev_opt *extra;
	size_t nr_extra;
};

/**
 * blockdev_opts_set - set one option from its text form
 * @opts: options to update
 * @key: "format", "cache" (none|writeback), "submit" (auto|eager|batched), "readonly"
 *       (on|off|...), "node-name", "repair" (on|off), "backing" (only "null": no_backing),
 *       "no-io" (on|off), or a driver option
 * @value: its value
 * @errp: error naming the key and value
 *
 * Generic keys are parsed here; any other key is stored in @opts->extra for the drivers (a
 * key given twice keeps the last value). Returns 0 or -1.
 */
int blockdev_opts_set(struct blockdev_opts *opts, const char *key, const char *value,
		      struct error **errp);

/* Frees what blockdev_opts_set() copied and zeroes @opts. */
void blockdev_opts_free(struct blockdev_opts *opts);

/* Handed to a driver's open: the options plus which extra keys were consumed. */
struct blockdev_open_ctx {
	const char *filename;
	const struct blockdev_opts *opts;
	bool *used;  /* opts->nr_extra flags */
	bool probed; /* the format was guessed from the content, not given */
	/* nodes the user named to use instead of what the image's header names (blockdev-add's
	 * "backing" and "data-file"); the driver links them, the caller keeps its reference */
	struct blockdev *backing;
	struct blockdev *data_file;
};

/**
 * blockdev_opt_get - a driver takes one of its options
 * @ctx: the open context the driver was given
 * @key: option name
 *
 * Returns the value (marking the key consumed so blockdev_open() does not refuse it) or NULL
 * when the user did not give it.
 */
const char *blockdev_opt_get(struct blockdev_open_ctx *ctx, const char *key);

/* ---------------------------------------------------------------------------------------------
 * The node graph (blockdev/graph.c): names, users and their permissions, references
 */

#define BLOCKDEV_NODE_NAME_MAX 32 /* bytes of a node name, with its NUL */

/* What a user does to a node (perm) or lets others do (shared), as QEMU's permissions. */
#define BLOCKDEV_PERM_READ            (1u << 0) /* reads that need a consistent image */
#define BLOCKDEV_PERM_WRITE           (1u << 1) /* writes that change what readers see */
#define BLOCKDEV_PERM_WRITE_UNCHANGED (1u << 2) /* writes that leave the content as it was */
#define BLOCKDEV_PERM_RESIZE          (1u << 3)

/**
 * struct blockdev_user - one user of a node
 * @parent: the parent node when the user is a node's child link, else NULL (a device
 *          frontend; later a job or an export)
 * @role: a child link's role ("file", "backing", "data-file"), or the user's own name for
 *        messages ("virtio-blk0")
 * @perm: BLOCKDEV_PERM_* it needs on the node
 * @shared: BLOCKDEV_PERM_* it lets other users of the node have
 * @ops, @opaque: a root user's drain hooks (NULL: none)
 * @node: the node it uses (set by blockdev_attach, NULL when detached)
 * @next: the node's next user
 */
struct blockdev_user {
	struct blockdev *parent;
	const char *role;
	unsigned int perm;
	unsigned int shared;
	const struct blockdev_user_ops *ops;
	void *opaque;
	struct blockdev *node;
	struct blockdev_user *next;
};

/**
 * struct blockdev_user_ops - what a root user (a device frontend; later a job or an export)
 * does while the graph under its node changes (blockdev_drained_begin/end)
 * @drained_begin: stop submitting requests and wait until none is in flight
 * @drained_end: forget what it cached about the nodes below its own (its queues' registered
 *               files: blockdev_queue_forget_files), then submit again
 * @replace: inside a drained section: serve @bs instead of the node (blockdev_replace_node, a
 *           mirror's pivot); -1 with nothing changed. NULL: the user cannot move.
 * All get the user's @opaque. A root user without ops submits no asynchronous I/O.
 */
struct blockdev_user_ops {
	void (*drained_begin)(void *opaque);
	void (*drained_end)(void *opaque);
	int (*replace)(void *opaque, struct blockdev *bs, struct error **errp);
};

/**
 * blockdev_attach - @u starts using @bs, and holds a reference on it
 *
 * Refused, with a message naming both users, when @u needs something a user of @bs does not
 * share or does something @u does not share. Control plane.
 */
int blockdev_attach(struct blockdev *bs, struct blockdev_user *u, struct error **errp);
/* @u stops using its node and drops its reference (nothing when not attached). */
void blockdev_detach(struct blockdev_user *u);

/**
 * struct blockdev_drain - a drained section over the root users above a node
 */
struct blockdev_drain {
	struct blockdev_user **roots;
	size_t nr;
};

/**
 * blockdev_drained_begin - quiesce every root user above @bs
 *
 * Control plane. Walks up from @bs through its parents to the root users (frontends) and calls
 * their drained_begin: afterwards no asynchronous request runs anywhere in the graph that
 * reaches @bs, until blockdev_drained_end(). Synchronous users (block jobs) must be stopped by
 * the caller. Returns -1 (out of memory) with nothing drained.
 */
int blockdev_drained_begin(struct blockdev *bs, struct blockdev_drain *d, struct error **errp);
void blockdev_drained_end(struct blockdev_drain *d);

/**
 * blockdev_set_backing - replace @bs's backing node by @backing (NULL: none)
 *
 * The chain shortening of a commit, the new backing of a stream's end or a snapshot. Inside a
 * drained section over @bs: the new link is attached (permissions checked), bs->backing
 * switches, the old link is dropped (closing the old backing node when it was the last
 * reference), and the root users above forget the files they registered. The image's header
 * is not rewritten: the caller records the new backing file name when it should persist.
 * Refused, nothing changed, when @bs's format has no backing file, when @backing is @bs or has
 * @bs in its own chain, or when @backing's users refuse a new reader.
 */
int blockdev_set_backing(struct blockdev *bs, struct blockdev *backing, struct error **errp);

/**
 * blockdev_replace_node - the root users of @old (device frontends) move to @new
 *
 * Inside a drained section over @old (the caller's): each root user is attached to @new
 * (permissions checked first, for all), detached from @old, and told by its replace hook.
 * Refused, nothing changed, when a user cannot move (no hook), when @old is a child of another
 * node (only a top node is replaced), or when @new's users refuse one of them. A mirror's pivot.
 */
int blockdev_replace_node(struct blockdev *old, struct blockdev *new, struct error **errp);

/* Opens a filter node over @bs (its child; the reference the filter takes is its own), or
 * NULL with the error. */
typedef struct blockdev *blockdev_open_filter_fn(struct blockdev *bs, void *arg,
						 struct error **errp);

/**
 * blockdev_insert_filter - put a filter node over @bs and move @bs's root users onto it
 *
 * Inside a drained section over @bs (the caller's): the root users leave @bs while
 * @open_filter links the filter to it (so the filter's link does not clash with the users it
 * stands in for), then move onto the filter, as blockdev_replace_node moves them. Returns the
 * filter, with a reference for the caller (blockdev_close it when the users hold it), or NULL
 * with the error and nothing changed.
 */
struct blockdev *blockdev_insert_filter(struct blockdev *bs,
					 blockdev_open_filter_fn *open_filter, void *arg,
					 struct error **errp);

/* Take / drop a reference; the last one closes the node (and drops its children's). */
struct blockdev *blockdev_ref(struct blockdev *bs);
void blockdev_unref(struct blockdev *bs);

/* true for a name a user may give: a letter, then up to 30 letters, digits, '-', '.', '_' */
bool blockdev_node_name_valid(const char *name);
/* Renames @bs (every node has a name: "#blockN" until given one); refused if taken. */
int blockdev_set_node_name(struct blockdev *bs, const char *name, struct error **errp);
/* The open node called @name, or NULL (control plane: valid while nobody closes it). */
struct blockdev *blockdev_find_node(const char *name);
/* Calls @fn on every open node, newest first, with the registry locked (@fn must not open or
 * close nodes). */
void blockdev_for_each_node(void (*fn)(struct blockdev *bs, void *opaque), void *opaque);
/* Drops the creator's reference of the node called @name (blockdev-del); refused, naming the
 * user, while the node has users. */
int blockdev_node_del(const char *name, struct error **errp);
/* 0 when @bs has no user; else -1 with "node 'X' is in use by Y". */
int blockdev_check_unused(struct blockdev *bs, struct error **errp);

/* ---------------------------------------------------------------------------------------------
 * Nodes
 */

/**
 * struct blockdev - one node of an image chain
 * @drv: its driver
 * @opaque: the driver's state
 * @filename: the file this node was opened from (for messages)
 * @size: virtual size in bytes (protocol nodes: the file size at open or the last truncate)
 * @read_only: writes fail with -EROFS
 * @probed: the format was guessed from the content, not given (raw: see blockdev/raw.c)
 * @cache: cache mode it was opened with
 * @submit: the submit mode it was opened with (passed on to its backing and data files)
 * @submit_eager: the engine submits this node's I/O at once (iothread_submit), not per turn
 * @fd: host fd of a protocol node, -1 for format nodes
 * @align: offset/length alignment the fd requires (O_DIRECT: logical block size, else 1)
 * @mem_align: buffer address alignment the fd requires (O_DIRECT: 512 or more, else 1)
 * @file: the protocol child a format reads its bytes from (NULL for a protocol node)
 * @backing: the backing node (qcow2), NULL if none
 * @slow: the slow-path worker thread of a top node (started by blockdev_queue_new)
 * @node_name: its name in the graph (the user's node-name, or "#blockN")
 * @refs, @users: references and users (graph.c; control plane only)
 * @file_link, @backing_link: this node as the user of its file and backing children
 * @reg_prev, @reg_next: the registry's list (graph.c)
 */
/*
 * Called on the iothread for each guest write (@iov) or write-zeroes / discard (@iov NULL) that
 * completed on a node, before the guest is told; its result is ignored.
 */
typedef int blockdev_write_hook_fn(void *opaque, uint64_t off, const struct iovec *iov,
				   int iovcnt, uint64_t len);
/*
 * Called on the submitting thread before a write, write-zeroes or discard of [off, off+len) on
 * a node is issued: a backup's copy-before-write copies the old data out first. A negative
 * result fails the request; a backup breaks its own job instead and returns 0.
 */
typedef int blockdev_before_write_fn(void *opaque, uint64_t off, uint64_t len);

struct blockdev {
	const struct blockdev_driver *drv;
	void *opaque;
	char *filename;
	uint64_t size;
	bool read_only;
	bool probed;
	enum blockdev_cache cache;
	enum blockdev_submit submit;
	bool submit_eager;
	int fd;
	uint32_t align;
	uint32_t mem_align;
	struct blockdev *file;
	struct blockdev *backing;
	struct blockdev_slow *slow;
	char node_name[BLOCKDEV_NODE_NAME_MAX];
	unsigned int refs;
	struct blockdev_user *users;
	struct blockdev_user file_link, backing_link;
	struct blockdev *reg_prev, *reg_next;
	/* a write-blocking mirror's hook, called for each write completing on the node (engine) */
	blockdev_write_hook_fn *_Atomic write_hook;
	void *_Atomic write_hook_opaque;
	/* a backup's copy-before-write, called before each write is issued (engine) */
	blockdev_before_write_fn *_Atomic before_write;
	void *_Atomic before_write_opaque;
	struct blockdev_bitmap *_Atomic bitmaps; /* bitmap.c: the live list, walked lock-free */
	struct blockdev_bitmap *bitmaps_all;     /* bitmap.c: every one, freed with the node */
};

/* Sets (or with NULL clears) @bs's write hook; clear it with no request in flight (a drained
 * section) before freeing what @opaque points to. */
void blockdev_set_write_hook(struct blockdev *bs, blockdev_write_hook_fn *fn, void *opaque);
/* Sets (or with NULL clears) @bs's before-write hook, likewise inside a drained section. */
void blockdev_set_before_write(struct blockdev *bs, blockdev_before_write_fn *fn, void *opaque);

/* ---------------------------------------------------------------------------------------------
 * Drivers
 */

enum blockdev_op {
	BLOCKDEV_OP_READ,
	BLOCKDEV_OP_WRITE,
	BLOCKDEV_OP_FLUSH,
	BLOCKDEV_OP_DISCARD,
	BLOCKDEV_OP_WRITE_ZEROES,
};

/*
 * What map() may answer, per op:
 *   READ:          DATA, ZERO, BACKING or SLOW
 *   WRITE:         DATA (written in place) or SLOW
 *   DISCARD:       DATA (the engine punches a hole in @file), ZERO (nothing to do) or SLOW
 *   WRITE_ZEROES:  DATA (the engine zeroes the @file range), ZERO (already zero) or SLOW
 * Any other answer fails the request with -EIO.
 */
enum blockdev_extent_kind {
	BLOCKDEV_EXTENT_DATA,    /* the bytes live in @file at @host_offset */
	BLOCKDEV_EXTENT_ZERO,    /* reads return zeroes */
	BLOCKDEV_EXTENT_BACKING, /* read the same guest range from bs->backing */
	BLOCKDEV_EXTENT_SLOW,    /* the driver must do this range itself, synchronously */
};

/**
 * struct blockdev_extent - what map() says about the start of a range
 * @kind: see enum blockdev_extent_kind
 * @len: bytes covered, 0 < len <= the length asked
 * @file: DATA: the protocol node (fd >= 0) that holds the bytes
 * @host_offset: DATA: offset of the first byte in @file
 * @crypt: DATA of READ or WRITE: the key the bytes are encrypted with in @file (AES-XTS-plain64
 *         on 512-byte sectors, blockdev/luks.h; @host_offset and @len whole sectors), NULL
 *         when they are plain (blockdev_map clears it before asking the driver). The engine
 *         decrypts a read's buffers in place when the read completed and writes an encrypted
 *         copy of a write's data (blockdev/engine_crypt.c); anyone else reading the file
 *         directly sees ciphertext.
 * @crypt_sector: with @crypt: the IV (plain64 sector number) of the byte at @host_offset
 */
struct blockdev_extent {
	enum blockdev_extent_kind kind;
	uint64_t len;
	struct blockdev *file;
	uint64_t host_offset;
	const struct luks_key *crypt;
	uint64_t crypt_sector;
};

/* block_status() flags, as qemu-img map reports them */
#define BLOCKDEV_STATUS_DATA      (1u << 0) /* reads return data (not known zero) */
#define BLOCKDEV_STATUS_ZERO      (1u << 1) /* reads return zeroes */
#define BLOCKDEV_STATUS_ALLOCATED (1u << 2) /* this node provides the content (not the backing) */
#define BLOCKDEV_STATUS_OFFSET    (1u << 3) /* *map_offset / *map_file are valid */
#define BLOCKDEV_STATUS_COMPRESSED (1u << 4) /* stored compressed (no host offset to give) */

/* write_zeroes() flags */
#define BLOCKDEV_ZERO_MAY_UNMAP (1u << 0) /* the range may be deallocated */
/* blockdev_submit() READ flag: move the bytes into the pipe @splice_fix names instead of @iov,
 * page references and no copy (IORING_OP_SPLICE). Only a read that the node maps to one plain
 * (not encrypted) DATA extent of a page-cached file can: any other fails with -EOPNOTSUPP
 * before a byte moved. A read that fails otherwise may have left some of its bytes in the
 * pipe (the caller empties it). @iov stays required: it is the read's length. */
#define BLOCKDEV_READ_SPLICE (1u << 1)

/**
 * struct blockdev_info - what `info` reports beyond struct blockdev
 * @cluster_size: allocation unit, 0 if the format has none
 * @actual_size: bytes the image occupies on the host (protocol node: st_blocks * 512)
 * @dirty: the image was not closed cleanly (qcow2 dirty bit)
 * @encrypted: the image's data is encrypted (luks, qcow2 encrypt.format=luks)
 * @backing_file: the backing file name as the image records it (NULL: none); owned by the
 *                node, valid until it is closed
 * @backing_fmt: the backing file's format as the image records it, or NULL
 * @specific: a json-c object for qemu-img's "format-specific"."data", set by the driver (the
 *            caller owns it and json_object_put()s it), or NULL
 */
struct blockdev_info {
	uint64_t cluster_size;
	uint64_t actual_size;
	bool dirty;
	bool encrypted;
	const char *backing_file;
	const char *backing_fmt;
	struct json_object *specific;
};

/**
 * struct blockdev_check_result - what a consistency check found (qemu-img check's fields)
 * @corruptions: errors found (references to nowhere, wrong refcounts that could lose data)
 * @leaks: clusters allocated but used by nothing
 * @corruptions_fixed: of @corruptions, repaired
 * @leaks_fixed: of @leaks, repaired
 * @check_errors: places the check could not read
 * @image_end_offset: the host offset after the last used byte
 * @allocated_clusters: guest clusters the image holds (of @total_clusters)
 * @total_clusters: guest clusters of the virtual size
 * @fragmented_clusters: allocated clusters not right after the previous one on the host
 * @compressed_clusters: allocated clusters stored compressed
 */
struct blockdev_check_result {
	uint64_t corruptions, leaks;
	uint64_t corruptions_fixed, leaks_fixed;
	uint64_t check_errors;
	uint64_t image_end_offset;
	uint64_t allocated_clusters, total_clusters, fragmented_clusters, compressed_clusters;
};
#define BLOCKDEV_FIX_LEAKS 1u
#define BLOCKDEV_FIX_ERRORS 2u
#define BLOCKDEV_CHECK_VERBOSE 4u /* print each problem on stderr, as qemu-img check does */

/**
 * struct blockdev_snapshot - one internal snapshot, as `info` lists it
 * @id: its id ("1", "2", ...)
 * @name: its name (tag)
 * @date_sec: when it was taken (seconds since the epoch)
 * @date_nsec: and nanoseconds
 * @vm_clock_nsec: the guest clock then
 * @vm_state_size: bytes of saved VM state (0 for a disk-only snapshot)
 * @icount: instruction count, UINT64_MAX when not recorded
 */
struct blockdev_snapshot {
	char *id, *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size;
	uint64_t icount;
};

/* One write of a group (struct blockdev_driver, @pwritev_group), or one read of a group
 * (@preadv_group: @iov are the buffers to fill). */
struct blockdev_write {
	uint64_t offset;
	const struct iovec *iov;
	int iovcnt;
	int ret; /* set by the driver */
};

/**
 * struct blockdev_driver - the ops of one format or protocol
 * @name: "file", "raw", "qcow2"
 * @protocol: opens a host filename itself (no @file child)
 * @has_backing: the format can have a backing node (bs->backing; blockdev_set_backing)
 * @filter: passes every request on to its file child (a throttle node): a write to it is a
 *       write to the child, whose dirty bitmaps record it too
 * @probe: for formats: how sure (0..100) that the first bytes (@len of them, at most 512)
 *         are this format; NULL = never chosen by probing
 * @open: set up bs->opaque, bs->size (bs->file is already open for formats); take driver
 *        options with blockdev_opt_get(); on failure free everything it allocated
 * @close: release bs->opaque (children are closed by the caller)
 * @map: fast-path translation of [offset, offset+len) for @op (READ, WRITE, DISCARD,
 *       WRITE_ZEROES) into the first extent; lock-free, non-blocking, called on any iothread
 *       concurrently; -errno on a corrupt mapping. NULL: every request takes the slow path.
 * @preadv: synchronous read, full or -errno (within bs->size; protocol: zeroes past EOF)
 * @pwritev: synchronous write, full or -errno
 * @pwritev_group: optional group commit for the slow-path worker: @n synchronous writes made
 *       durable-ordered together (a driver with write-ahead metadata pays one barrier for all of
 *       them, not one each); sets each w[i].ret (0 or -errno). A write fails alone: no metadata
 *       of a failed write becomes visible. NULL: the worker calls @pwritev for each.
 * @preadv_group: optional, the same for the worker's reads found together: @n synchronous
 *       reads in one call (a network driver pipelines them); sets each r[i].ret. NULL: the
 *       worker calls @preadv for each.
 * @flush: make completed writes stable (formats: metadata, then the file); NULL = flush the
 *         protocol nodes below (bs->file, then bs->backing is not flushed: it is read-only)
 * @discard: the range need not keep its data (may be a no-op returning 0)
 * @write_zeroes: the range reads back as zeroes afterwards; flags BLOCKDEV_ZERO_*
 * @block_status: status of the start of a range: *pnum bytes have the returned
 *       BLOCKDEV_STATUS_* flags (>= 0) or -errno; NULL = everything DATA|ALLOCATED
 * @truncate: change the size (control plane; the caller drained all queues first)
 * @info: fill the format-specific part of @info; NULL = nothing to add
 * @snapshot_list: the node's internal snapshots (a malloc'd array, free with
 *       blockdev_snapshot_list_free); NULL = the format has none
 * @snapshot_create, @snapshot_goto, @snapshot_delete, @snapshot_load_tmp: internal snapshots
 *       (see blockdev_snapshot_create and the others); control plane, with the node's queues
 *       drained; NULL = the format has none
 * @check: check the image's metadata and repair what @fix (BLOCKDEV_FIX_*) asks; 0 (result
 *       filled) or -1 when the check could not run, -EOPNOTSUPP when @fix asks a repair the
 *       format cannot make (qemu-img's "not supported", exit 63); NULL = the format has
 *       nothing to check
 * @pwrite_compressed: write one whole cluster (the image's last one may be short) stored
 *       compressed; NULL = the format cannot compress
 * @make_empty: drop everything the node itself holds, so that it reads as its backing file
 *       (after a commit); NULL = the format cannot
 * @populate: write @buf over the parts of the range the node does not hold itself (those that
 *       read from the backing node), leave the parts it holds as they are; atomic against
 *       concurrent writes to the node, so a guest write is never overwritten by older data
 *       (block-stream); NULL = the format has no backing node
 * @change_backing_file: record another backing file name and format in the image (NULL name
 *       or "": none); the node's backing link is the caller's (blockdev_set_backing)
 * @bitmap_can_store: whether a new persistent dirty bitmap @name of @granularity can be stored
 *       in the image (bitmap.h; the driver loads and stores persistent bitmaps itself, at open
 *       and close); NULL = the format has no persistent bitmaps
 * @bitmap_remove: the persistent bitmap @name leaves the image now, not at close (QMP's
 *       block-dirty-bitmap-remove, as QEMU's): 0, also when the image holds none of that name
 *       (one added since open), or -1 with the reason, the image unchanged; NULL = the format
 *       has no persistent bitmaps
 * @create_opts, @create: creating an image of the format (blockdev/create.h: vireo-img create,
 *       convert -O): the -o options it takes (a table ending with a NULL name) and the op that
 *       writes a new image with them; NULL = the tools create it their own way or not at all
 */
struct blockdev_driver {
	const char *name;
	bool protocol;
	bool has_backing;
	bool filter;
	int (*probe)(const uint8_t *buf, size_t len, const char *filename);
	int (*open)(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp);
	void (*close)(struct blockdev *bs);
	int (*map)(struct blockdev *bs, enum blockdev_op op, uint64_t offset, uint64_t len,
		   struct blockdev_extent *ext);
	int (*preadv)(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
	int (*pwritev)(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
	void (*pwritev_group)(struct blockdev *bs, struct blockdev_write *w, size_t n);
	void (*preadv_group)(struct blockdev *bs, struct blockdev_write *r, size_t n);
	int (*flush)(struct blockdev *bs);
	int (*discard)(struct blockdev *bs, uint64_t offset, uint64_t len);
	int (*write_zeroes)(struct blockdev *bs, uint64_t offset, uint64_t len, unsigned int flags);
	int (*block_status)(struct blockdev *bs, uint64_t offset, uint64_t len, uint64_t *pnum,
			    uint64_t *map_offset, struct blockdev **map_file);
	int (*truncate)(struct blockdev *bs, uint64_t size, struct error **errp);
	int (*info)(struct blockdev *bs, struct blockdev_info *info, struct error **errp);
	int (*snapshot_list)(struct blockdev *bs, struct blockdev_snapshot **out, size_t *nr,
			     struct error **errp);
	int (*snapshot_create)(struct blockdev *bs, const char *name, uint64_t vm_clock_nsec,
			       struct blockdev_snapshot *made, struct error **errp);
	int (*snapshot_goto)(struct blockdev *bs, const char *id_or_name, struct error **errp);
	int (*snapshot_delete)(struct blockdev *bs, const char *id, const char *name,
			       struct blockdev_snapshot *deleted, struct error **errp);
	int (*snapshot_load_tmp)(struct blockdev *bs, const char *id, const char *name,
				 struct error **errp);
	int (*check)(struct blockdev *bs, unsigned fix, struct blockdev_check_result *res,
		     struct error **errp);
	int (*pwrite_compressed)(struct blockdev *bs, uint64_t offset, const void *buf,
				 uint64_t len);
	int (*make_empty)(struct blockdev *bs, struct error **errp);
	int (*populate)(struct blockdev *bs, uint64_t offset, const void *buf, uint64_t len);
	int (*change_backing_file)(struct blockdev *bs, const char *name, const char *fmt,
				   struct error **errp);
	int (*bitmap_can_store)(struct blockdev *bs, const char *name, uint64_t granularity,
				struct error **errp);
	int (*bitmap_remove)(struct blockdev *bs, const char *name, struct error **errp);
	const struct blockdev_create_opt_desc *create_opts;
	int (*create)(const struct blockdev_create_ctx *ctx, struct error **errp);
};

extern const struct blockdev_driver blockdev_file;
extern const struct blockdev_driver blockdev_raw;
/* LUKS1 images (blockdev/luks.c): AES-XTS-plain64 under a passphrase (key-secret=ID). */
extern const struct blockdev_driver blockdev_luks;
/* The NBD client (blockdev/nbd_*.c): a protocol node on an NBD server's export. */
extern const struct blockdev_driver blockdev_nbd;

/* true when @filename names an NBD export (nbd://, nbd+unix://, nbd:HOST:PORT, ...), which
 * blockdev_open() connects to instead of opening a host file */
bool blockdev_is_nbd(const char *filename);

/**
 * blockdev_nbd_create - an NBD export as the target of a new image (vireo-img create/convert)
 * @filename: the export (nbd://...)
 * @min_size: the bytes the image needs: a smaller export is refused
 *
 * An export cannot be created or resized: it is opened read-write (its node returned, close it
 * with blockdev_close), checked for size, and its first sector zeroed so that what it held
 * before is not probed as a format. NULL with a message on failure.
 */
struct blockdev *blockdev_nbd_create(const char *filename, uint64_t min_size,
				     struct error **errp);

/* Format drivers in probe order (blockdev/probe.c), NULL-terminated. */
extern const struct blockdev_driver *const blockdev_formats[];

/**
 * blockdev_probe - the format of an image, from its first bytes
 * @buf: the first @len bytes of the file (at most 512 are looked at)
 * @filename: for messages
 * @errp: set when the bytes carry the magic of a format vireo does not read
 *
 * Returns the best-scoring format driver, raw when no format claims the bytes, or NULL.
 */
const struct blockdev_driver *blockdev_probe(const uint8_t *buf, size_t len,
					     const char *filename, struct error **errp);

/* The format driver called @name, or NULL. */
const struct blockdev_driver *blockdev_find_format(const char *name);

/* ---------------------------------------------------------------------------------------------
 * Control plane
 */

/**
 * blockdev_open - open an image chain
 * @filename: host path (file or block device), or an NBD export (blockdev_is_nbd)
 * @opts: options (NULL = all defaults)
 * @errp: error naming the file and what went wrong
 *
 * Opens the protocol node (file, or nbd for an NBD filename: its options, e.g.
 * reconnect-delay, come from @opts too), picks the format (opts->format, or by probing), opens
 * it, and refuses driver options nobody consumed. Returns the top node or NULL.
 */
struct blockdev *blockdev_open(const char *filename, const struct blockdev_opts *opts,
			       struct error **errp);

/**
 * blockdev_add - create nodes from a QEMU BlockdevOptions object (blockdev/add.c)
 * @args: {"driver": "file"|"raw"|"qcow2"|"nbd", "node-name": ..., "read-only": ..., "cache":
 *        {"direct": ...}, "filename" (file), "server" / "export" / "reconnect-delay" /
 *        "open-timeout" (nbd), "file" / "backing" (null: none) / "data-file" (a node name or
 *        a nested object), and the format's own options}; not changed
 * @where: what the object came from, for messages ("--blockdev", "blockdev-add")
 * @errp: names the key and what is wrong with it
 *
 * The top node must have a node-name. Returns it, holding the creator's reference (drop it
 * with blockdev_node_del or blockdev_close), or NULL.
 */
struct blockdev *blockdev_add(struct json_object *args, const char *where, struct error **errp);
/*
 * A QEMU BlockdevRef (blockdev-create's "file" and "data-file"): a node name gives that node
 * (a new reference), an object a node created from it as blockdev_add does (node-name
 * optional), which closes with the reference returned. Messages say "@where: @key: ...".
 */
struct blockdev *blockdev_open_ref(struct json_object *ref, const char *where, const char *key,
				   struct error **errp);

/**
 * blockdev_open_format - open a format node over an already open child
 * @file: the child; on success the new node owns it, on failure the caller still does
 * @drv: the format driver
 * @ctx: the open context (filename, options, consumption flags)
 *
 * Used by blockdev_open() and by drivers that open a second image (qcow2 external data file).
 */
struct blockdev *blockdev_open_format(struct blockdev *file, const struct blockdev_driver *drv,
				      struct blockdev_open_ctx *ctx, struct error **errp);

/* Opens only the protocol node of @filename (cache and readonly from @opts). */
struct blockdev *blockdev_open_file(const char *filename, const struct blockdev_opts *opts,
				    struct error **errp);

/* Preallocation (QEMU's PreallocMode): what creating an image allocates on the host. */
enum blockdev_prealloc {
	BLOCKDEV_PREALLOC_OFF,      /* nothing: a sparse file */
	BLOCKDEV_PREALLOC_METADATA, /* formats: their metadata for every cluster */
	BLOCKDEV_PREALLOC_FALLOC,   /* the host blocks, with fallocate (reading as zeroes) */
	BLOCKDEV_PREALLOC_FULL,     /* the host blocks, written with zeroes */
};
/* The mode called @name ("off", "metadata", "falloc", "full"), or -1. */
int blockdev_prealloc_parse(const char *name);

/**
 * blockdev_file_create - create (or empty) the host file @filename, @size bytes long
 * @prealloc: OFF, FALLOC or FULL (METADATA is refused: a file has no metadata)
 * @nocow: turn copy-on-write off first (btrfs; ignored where the file system has no such flag)
 *
 * QEMU's blockdev-create with driver "file", and what vireo-img create does for raw images and
 * qcow2 data files. Returns 0 or -1 with QEMU's message ("Could not create '...'").
 */
int blockdev_file_create(const char *filename, uint64_t size, enum blockdev_prealloc prealloc,
			 bool nocow, struct error **errp);
/* Allocates [@off, @off + @len) of the file node @bs as @mode says (FALLOC, FULL; the file
 * grows to cover the range): a format's preallocation. */
int blockdev_file_preallocate(struct blockdev *bs, uint64_t off, uint64_t len,
			      enum blockdev_prealloc mode, struct error **errp);

/**
 * blockdev_close - drop the reference blockdev_open() (or another opener) gave
 *
 * The node closes when that was the last reference (it has no users left), and with it the
 * children nobody else uses. Every queue on it must be freed first.
 */
void blockdev_close(struct blockdev *bs);

/**
 * blockdev_link_child - make @child the @role child of @parent
 * @parent: the parent node
 * @link: its user record for the child (bs->file_link, bs->backing_link, or the driver's own)
 * @role: "file", "backing", "data-file"
 *
 * Attaches @link (which holds its own reference on @child) with the permissions a format
 * needs on that role: read; write and resize too on the file or data file of a writable
 * parent; other users may only read (or write what leaves the content unchanged).
 */
int blockdev_link_child(struct blockdev *parent, struct blockdev_user *link, struct blockdev *child,
			const char *role, struct error **errp);

int blockdev_truncate(struct blockdev *bs, uint64_t size, struct error **errp);
int blockdev_get_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp);
/* The whole graph as QEMU's x-debug-query-block-graph: {"nodes": [...], "edges": [...]}
 * (blockdev/graph_json.c). */
struct json_object *blockdev_graph_json(void);
/* QEMU's ImageInfo of @bs alone (qemu-img info --output=json; blockdev/image_info.c). */
struct json_object *blockdev_image_info(struct blockdev *bs, struct error **errp);
/* The internal snapshots of @bs (none, not an error, for a format without any). */
int blockdev_snapshot_list(struct blockdev *bs, struct blockdev_snapshot **out, size_t *nr,
			   struct error **errp);
void blockdev_snapshot_list_free(struct blockdev_snapshot *list, size_t n);
/*
 * Internal snapshots (control plane; the caller drained the node's queues or is its only
 * user). Each refuses, naming the format, a node whose format has none.
 *  create:   a new snapshot @name (names may repeat, as qemu-img allows; the ID is the next
 *            number) of the whole disk, no VM state; @made (or NULL) receives it
 *  goto:     the disk becomes snapshot @id_or_name (an ID first, then a name), its size too
 *  delete:   the first snapshot with ID @id and name @name (NULL: any); @deleted (or NULL)
 *            receives what it was
 *  load_tmp: a node opened read-only reads as the snapshot with ID @id and name @name (NULL:
 *            any) until it is closed (convert -l); nothing is written
 * @made / @deleted are freed with blockdev_snapshot_list_free(p, 1) when malloc'd, or their
 * strings freed by the caller (blockdev_snapshot_clear).
 */
int blockdev_snapshot_create(struct blockdev *bs, const char *name, uint64_t vm_clock_nsec,
			     struct blockdev_snapshot *made, struct error **errp);
int blockdev_snapshot_goto(struct blockdev *bs, const char *id_or_name, struct error **errp);
int blockdev_snapshot_delete(struct blockdev *bs, const char *id, const char *name,
			     struct blockdev_snapshot *deleted, struct error **errp);
int blockdev_snapshot_load_tmp(struct blockdev *bs, const char *id, const char *name,
			       struct error **errp);
/* Frees the strings of one snapshot record (not the record). */
void blockdev_snapshot_clear(struct blockdev_snapshot *s);
/* The driver's check (see struct blockdev_driver); an error names a format without one. */
int blockdev_check(struct blockdev *bs, unsigned fix, struct blockdev_check_result *res,
		   struct error **errp);
/* Empties @bs so that it reads as its backing file; an error names a format that cannot. */
int blockdev_make_empty(struct blockdev *bs, struct error **errp);
/* The driver's populate (see struct blockdev_driver); -ENOTSUP for a format without backing. */
int blockdev_populate(struct blockdev *bs, uint64_t offset, const void *buf, uint64_t len);
/* Records @name (NULL: none) and @fmt as the image's backing file; an error names a format
 * that cannot. */
int blockdev_change_backing_file(struct blockdev *bs, const char *name, const char *fmt,
				 struct error **errp);
/*
 * @name as a path usable from here: as it is when absolute (or when @image has no directory
 * part), else relative to @image's directory, as qcow2 resolves its backing and data file
 * names. malloc'd; NULL when out of memory.
 */
char *blockdev_path_beside(const char *image, const char *name);
/* The driver name of the top node, e.g. "raw". */
const char *blockdev_format_name(const struct blockdev *bs);

/* ---------------------------------------------------------------------------------------------
 * Synchronous I/O (any thread; may block). Each returns 0 or -errno: -EINVAL for a range outside
 * bs->size (format nodes), -EROFS for a write to a read-only node. Protocol nodes accept
 * writes past their end (the file grows) and read zeroes there.
 */
int blockdev_pread(struct blockdev *bs, uint64_t offset, void *buf, size_t len);
int blockdev_pwrite(struct blockdev *bs, uint64_t offset, const void *buf, size_t len);
int blockdev_preadv(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
int blockdev_pwritev(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
int blockdev_flush(struct blockdev *bs);
int blockdev_discard(struct blockdev *bs, uint64_t offset, uint64_t len);
int blockdev_write_zeroes(struct blockdev *bs, uint64_t offset, uint64_t len, unsigned int flags);
/* One cluster stored compressed (offset cluster-aligned, len a cluster or the image's tail);
 * -ENOTSUP for a format that cannot compress. */
int blockdev_pwrite_compressed(struct blockdev *bs, uint64_t offset, const void *buf,
			       uint64_t len);
/* Returns BLOCKDEV_STATUS_* flags for the first *pnum bytes of the range, or -errno. */
int blockdev_block_status(struct blockdev *bs, uint64_t offset, uint64_t len, uint64_t *pnum,
			  uint64_t *map_offset, struct blockdev **map_file);
/* map() of the driver, or a SLOW extent covering the range when it has none. */
int blockdev_map(struct blockdev *bs, enum blockdev_op op, uint64_t offset, uint64_t len,
		 struct blockdev_extent *ext);

/* ---------------------------------------------------------------------------------------------
 * Asynchronous I/O on an iothread (blockdev/engine.c)
 */

/* Block-layer bookkeeping inside a request; devices do not touch it. */
struct blockdev_req_priv {
	struct blockdev_queue *q;
	struct iothread_op fin; /* runs done() in the completion phase */
	uint64_t len;           /* total bytes of READ/WRITE */
	unsigned int pending;   /* sub-I/Os in flight, +1 while issuing */
	int ret;                /* first error */
	struct blockdev_req *held_next; /* throttle: the next held or released request */
};

/*
 * Per request, a device (on its iothread, inside its source's poll()):
 *   1. copies the request header out of guest memory and validates it;
 *   2. fills a blockdev_req embedded in its own per-request struct: op, offset (bytes), iov
 *      pointing at guest buffers it bounded with gmem (or len for DISCARD/WRITE_ZEROES), done;
 *   3. calls blockdev_submit() and moves on to the next chain (nothing reaches the kernel yet:
 *      the iothread submits the whole turn's SQEs at once);
 *   4. in done(req, ret) (later, on the same iothread) writes the status byte, puts the chain
 *      on the used ring, and remembers that an interrupt may be due;
 *   5. in its source's flush() raises at most one interrupt per queue for the batch.
 * Guest buffers must stay mapped until done(). bs->align is the block size to advertise
 * (requests not aligned to it work, through the slow path).
 */

/**
 * struct blockdev_req - one asynchronous request
 * @op: what to do
 * @offset: byte offset in the node (READ, WRITE, DISCARD, WRITE_ZEROES)
 * @len: bytes for DISCARD and WRITE_ZEROES (READ/WRITE take their length from @iov)
 * @iov: buffers (guest memory already translated by the device); valid until done()
 * @iovcnt: entries in @iov, 1..BLOCKDEV_MAX_IOV (0 for FLUSH, DISCARD, WRITE_ZEROES)
 * @flags: WRITE_ZEROES: BLOCKDEV_ZERO_*; READ: BLOCKDEV_READ_SPLICE
 * @splice_fix: READ with BLOCKDEV_READ_SPLICE: the slot of a pipe's write end in the
 *              submitting iothread's fixed file table (iothread_file_index), with room for
 *              the whole read
 * @done: called exactly once on the submitting iothread with 0 or -errno
 * @priv: block layer's
 */
struct blockdev_req {
	enum blockdev_op op;
	uint64_t offset;
	uint64_t len;
	struct iovec *iov;
	int iovcnt;
	unsigned int flags;
	int splice_fix;
	void (*done)(struct blockdev_req *req, int ret);
	struct blockdev_req_priv priv;
};

/**
 * blockdev_queue_new - a node's queue context on one iothread
 * @bs: the top node
 * @it: the iothread that will submit on it (only that thread may use the queue)
 *
 * Control plane (one caller at a time per node). It registers the files of @bs's chain in
 * the iothread's ring (whose SQEs name registered files only): a ring whose fixed file table
 * cannot take them refuses the queue, naming the file. Free it on its iothread, which releases
 * them. The first queue on a node starts the node's slow-path worker thread. One per
 * (node, iothread): the virtqueues of one device served by the same iothread share it.
 */
struct blockdev_queue *blockdev_queue_new(struct blockdev *bs, struct iothread *it,
					  struct error **errp);

/**
 * blockdev_queue_free - release a queue
 *
 * Must be called on the queue's iothread (e.g. through iothread_run_sync) or after that
 * iothread was destroyed, with no request in flight (see blockdev_queue_drain).
 */
void blockdev_queue_free(struct blockdev_queue *q);

/**
 * blockdev_queue_forget_files - drop the queue's registered files of the nodes below its top
 *
 * On the queue's iothread, with no request in flight: the chain under the queue's node changed
 * (blockdev_set_backing), so files it registered may belong to nodes about to close. The next
 * request registers what it reaches again.
 */
void blockdev_queue_forget_files(struct blockdev_queue *q);

/**
 * blockdev_submit - start a request (on the queue's iothread only)
 *
 * Never calls req->done() itself; done() runs in the iothread's completion phase. Range and
 * read-only checks fail the request with -EINVAL / -EROFS through done().
 */
void blockdev_submit(struct blockdev_queue *q, struct blockdev_req *req);

/*
 * Requests the frontends (virtio devices, NBD exports: every queue's user) have submitted so
 * far, on all queues of the process; any thread. The sum only grows while queues live (a queue
 * freed takes its count with it): callers look for a change, not at the value. The job manager
 * yields to guests while it changes (job.c).
 */
uint64_t blockdev_frontend_requests(void);

/* Requests submitted on @q whose done() has not run yet (queue's iothread only). */
unsigned int blockdev_queue_inflight(const struct blockdev_queue *q);

/**
 * blockdev_queue_drain - wait until every request of @q has completed
 *
 * On the queue's iothread only (e.g. inside an iothread_run_sync callback, after the device
 * stopped taking guest requests): runs the iothread's completion processing until
 * blockdev_queue_inflight() is 0. Returns 0, or -errno if waiting on the ring failed.
 */
int blockdev_queue_drain(struct blockdev_queue *q);

#endif
