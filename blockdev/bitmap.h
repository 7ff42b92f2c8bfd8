/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dirty bitmaps: which parts of a node were written since a point in time, one bit per
 * @granularity bytes (QEMU's block-dirty-bitmap-*). Backup and mirror track their work with the
 * same structure; a bitmap lives in memory only (persistent ones, stored in qcow2, come with
 * qcow2's bitmaps).
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

/* QEMU's BlockDirtyInfo list of @bs's bitmaps (query-block, query-named-block-nodes). */
struct json_object *blockdev_bitmaps_info(struct blockdev *bs);

#endif
