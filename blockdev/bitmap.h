/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dirty bitmaps: which parts of a node were written since a point in time, one bit per
 * @granularity bytes (QEMU's block-dirty-bitmap-*). Backup and mirror track their work with the
 * same structure. A bitmap lives in memory; a persistent one is also stored in its node's
 * image by the format driver (qcow2: loaded at open, stored at close when its bits changed,
 * taken out of the image at once by blockdev_bitmap_delete; blockdev/qcow2_bitmap.c), which
 * sees it here as any other and serializes its bits with the *_bytes calls.
 *
 * Threads. Every completed guest write, write-zeroes and discard on a node sets the bits of its
 * range in each enabled bitmap of the node, on whatever iothread it completed: one atomic OR per
 * 64 bits, no lock. The node's list of bitmaps is changed only by the control plane (add,
 * remove), with atomic pointer stores that a concurrent walker sees whole; a removed bitmap is
 * unlinked but freed only with the node, so a walker that had reached it keeps valid memory.
 * Readers (the query's count, a job's scan) see each word atomically; a bit set during a scan
 * may or may not be seen, and is then seen by the next one.
 */
#ifndef VIREO_BLOCKDEV_BITMAP_H
#define VIREO_BLOCKDEV_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct blockdev;
struct json_object;

#define BLOCKDEV_BITMAP_NAME_MAX 1024

struct blockdev_bitmap;

/* The smallest and largest granularity (bytes, a power of two), and the default (64 KiB). */
#define BLOCKDEV_BITMAP_GRAN_MIN 512
#define BLOCKDEV_BITMAP_GRAN_MAX (1ULL << 31)
#define BLOCKDEV_BITMAP_GRAN_DEFAULT 65536

/* A new bitmap @name on @bs (all clean, recording unless @disabled); refused, by name, when the
 * name is taken on the node, empty or too long, or the granularity is no power of two in
 * range (0: the default). @name NULL: a job's own, which no query lists and no name finds. */
struct blockdev_bitmap *blockdev_bitmap_add(struct blockdev *bs, const char *name,
					    uint64_t granularity, bool disabled,
					    struct error **errp);
/* The bitmap @name of @bs, or NULL with "Dirty bitmap 'X' not found". */
struct blockdev_bitmap *blockdev_bitmap_find(struct blockdev *bs, const char *name,
					     struct error **errp);
/* Unlinks @b (refused while a job uses it). */
int blockdev_bitmap_remove(struct blockdev *bs, struct blockdev_bitmap *b, struct error **errp);
/*
 * QMP's block-dirty-bitmap-remove: @b leaves the node and, when persistent, the image at once
 * (the format's bitmap_remove), as QEMU's; refused, nothing changed, while a job uses it or
 * when the format cannot change the image. Control plane.
 */
int blockdev_bitmap_delete(struct blockdev *bs, struct blockdev_bitmap *b, struct error **errp);
/* Frees every bitmap of @bs, removed ones too (the node is closing: nothing writes it). */
void blockdev_bitmaps_free(struct blockdev *bs);

void blockdev_bitmap_enable(struct blockdev_bitmap *b, bool on);
bool blockdev_bitmap_enabled(const struct blockdev_bitmap *b);
/* A job uses it: it cannot be removed, cleared, merged into, or enabled/disabled by QMP. */
void blockdev_bitmap_set_busy(struct blockdev_bitmap *b, bool busy);
bool blockdev_bitmap_busy(const struct blockdev_bitmap *b);
const char *blockdev_bitmap_name(const struct blockdev_bitmap *b);
uint64_t blockdev_bitmap_granularity(const struct blockdev_bitmap *b);

/* Sets the bits of [off, off+len) in every enabled bitmap of @bs (any thread). */
void blockdev_bitmaps_mark(struct blockdev *bs, uint64_t off, uint64_t len);
/* Sets / clears the bits covering [off, off+len) of one bitmap (any thread). */
void blockdev_bitmap_set(struct blockdev_bitmap *b, uint64_t off, uint64_t len);
void blockdev_bitmap_reset(struct blockdev_bitmap *b, uint64_t off, uint64_t len);
void blockdev_bitmap_clear(struct blockdev_bitmap *b);
/*
 * The first dirty range at or after @off: true with *start and *len (whole granules, cut at
 * the bitmap's end and at @max bytes), false when none is dirty.
 */
bool blockdev_bitmap_next_dirty(struct blockdev_bitmap *b, uint64_t off, uint64_t max,
				uint64_t *start, uint64_t *len);
/* Dirty bytes (granules x granularity, the last one cut at the end). */
uint64_t blockdev_bitmap_count(struct blockdev_bitmap *b);
/* ORs @src's dirty ranges into @dst (granularities may differ). */
void blockdev_bitmap_merge(struct blockdev_bitmap *dst, struct blockdev_bitmap *src);
/* Makes every bitmap of @bs cover @size bytes (a resize, with the node's I/O drained). -1:
 * out of memory, nothing changed. */
int blockdev_bitmaps_resize(struct blockdev *bs, uint64_t size);

/*
 * Persistent bitmaps. @persistent: the node's format driver stores the bitmap in the image at
 * close (set by the driver for what it loaded, by QMP's add for persistent=true). An
 * inconsistent one was found in use in the image (not stored cleanly: its bits are unknown): it
 * records nothing and cannot be used, only removed. Control plane.
 */
void blockdev_bitmap_set_persistent(struct blockdev_bitmap *b, bool on);
bool blockdev_bitmap_persistent(const struct blockdev_bitmap *b);
void blockdev_bitmap_set_inconsistent(struct blockdev_bitmap *b);
bool blockdev_bitmap_inconsistent(const struct blockdev_bitmap *b);
/*
 * Whether a bit of @b changed (set, cleared, merged, resized) since
 * blockdev_bitmap_set_unchanged(): a format storing persistent bitmaps rewrites only those at
 * close. Writers set it on any thread; read it with the writers stopped (the node drained).
 */
bool blockdev_bitmap_changed(const struct blockdev_bitmap *b);
void blockdev_bitmap_set_unchanged(struct blockdev_bitmap *b);
/* 0 when @b may be used (changed, merged into, given to a job); else -1 with QEMU's message
 * (a job uses it, or it is inconsistent). */
int blockdev_bitmap_check(const struct blockdev_bitmap *b, struct error **errp);
/* Whether @b is among @bs's bitmaps (not removed). */
bool blockdev_bitmap_live(struct blockdev *bs, const struct blockdev_bitmap *b);
/* The live bitmaps of @bs in order, @fn called on each with the list unchanged meanwhile
 * (control plane). */
void blockdev_bitmap_for_each(struct blockdev *bs,
			      void (*fn)(struct blockdev_bitmap *b, void *opaque), void *opaque);
/*
 * The serialized form (qcow2's bitmap data): one bit per granule, bit k of the bitmap at byte
 * k / 8, bit k % 8 (least significant first); the bytes past the last granule's read as 0.
 * get copies bytes [@off, @off+@len) out; set ORs them in (bits past the end are ignored).
 */
uint64_t blockdev_bitmap_bytes(const struct blockdev_bitmap *b);
void blockdev_bitmap_get_bytes(struct blockdev_bitmap *b, uint64_t off, uint8_t *buf,
			       uint64_t len);
void blockdev_bitmap_set_bytes(struct blockdev_bitmap *b, uint64_t off, const uint8_t *buf,
			       uint64_t len);

/*
 * Whether @bs's format can store a new persistent bitmap @name of @granularity: 0, or -1 with
 * the reason (the driver's bitmap_can_store op; a format without one cannot).
 */
int blockdev_bitmap_can_store(struct blockdev *bs, const char *name, uint64_t granularity,
			      struct error **errp);

/* QEMU's BlockDirtyInfo list of @bs's bitmaps (query-block, query-named-block-nodes). */
struct json_object *blockdev_bitmaps_info(struct blockdev *bs);

#endif
