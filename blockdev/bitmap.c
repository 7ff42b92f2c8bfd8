/* SPDX-License-Identifier: Apache-2.0 */
/* Dirty bitmaps (bitmap.h says who may touch what). */
#include "blockdev/bitmap.h"

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "common/util.h"

struct blockdev_bitmap {
	char *name;
	uint64_t gran;
	unsigned int gran_bits;
	uint64_t size;            /* bytes covered */
	uint64_t nr_bits;
	_Atomic uint64_t *words;
	atomic_bool enabled;
	atomic_bool busy;
	atomic_bool changed;      /* bits changed since blockdev_bitmap_set_unchanged() */
	bool persistent;          /* control plane only */
	bool inconsistent;        /* control plane only */
	struct blockdev_bitmap *_Atomic next; /* the node's live list */
	struct blockdev_bitmap *all_next;     /* every bitmap of the node, removed ones too */
};

static uint64_t bits_for(uint64_t size, unsigned int gran_bits)
{
	return (size + (1ULL << gran_bits) - 1) >> gran_bits;
}

static _Atomic uint64_t *words_new(uint64_t nr_bits)
{
	return calloc(MAX((nr_bits + 63) / 64, 1), sizeof(uint64_t));
}

struct blockdev_bitmap *blockdev_bitmap_find(struct blockdev *bs, const char *name,
					     struct error **errp)
{
	for (struct blockdev_bitmap *b = atomic_load(&bs->bitmaps); b; b = atomic_load(&b->next))
		if (b->name[0] && !strcmp(b->name, name)) /* internal ones have no name */
			return b;
	error_setg(errp, "Dirty bitmap '%s' not found", name);
	return NULL;
}

struct blockdev_bitmap *blockdev_bitmap_add(struct blockdev *bs, const char *name,
					    uint64_t granularity, bool disabled,
					    struct error **errp)
{
	struct blockdev_bitmap *b;
	bool internal = !name;

	if (internal)
		name = "";
	else if (!name[0] || strlen(name) >= BLOCKDEV_BITMAP_NAME_MAX) {
		error_setg(errp, "Bitmap name '%.64s' is %s", name,
			   name[0] ? "too long" : "empty");
		return NULL;
	}
	if (!granularity)
		granularity = BLOCKDEV_BITMAP_GRAN_DEFAULT;
	if (granularity < BLOCKDEV_BITMAP_GRAN_MIN || granularity > BLOCKDEV_BITMAP_GRAN_MAX ||
	    (granularity & (granularity - 1))) {
		error_setg(errp, "Granularity must be power of 2 between 512 and 2147483648");
		return NULL;
	}
	if (!internal && blockdev_bitmap_find(bs, name, NULL)) {
		error_setg(errp, "Bitmap already exists: %s", name);
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b || !(b->name = strdup(name)))
		goto oom;
	b->gran = granularity;
	b->gran_bits = (unsigned int)__builtin_ctzll(granularity);
	b->size = bs->size;
	b->nr_bits = bits_for(bs->size, b->gran_bits);
	b->words = words_new(b->nr_bits);
	if (!b->words)
		goto oom;
	atomic_init(&b->enabled, !disabled);
	atomic_init(&b->busy, false);
	b->all_next = bs->bitmaps_all;
	bs->bitmaps_all = b;
	atomic_init(&b->next, atomic_load(&bs->bitmaps));
	atomic_store_explicit(&bs->bitmaps, b, memory_order_release); /* whole before seen */
	return b;
oom:
	if (b)
		free(b->name);
	free(b);
	error_setg(errp, "out of memory");
	return NULL;
}

int blockdev_bitmap_remove(struct blockdev *bs, struct blockdev_bitmap *b, struct error **errp)
{
	if (atomic_load(&b->busy)) {
		error_setg(errp, "Bitmap '%s' is currently in use by another operation and cannot "
			   "be used", b->name);
		return -1;
	}
	for (struct blockdev_bitmap *_Atomic *p = &bs->bitmaps; atomic_load(p);
	     p = &atomic_load(p)->next) {
		if (atomic_load(p) == b) {
			atomic_store(p, atomic_load(&b->next));
			atomic_store(&b->enabled, false);
			return 0;
		}
	}
	return 0;
}

void blockdev_bitmaps_free(struct blockdev *bs)
{
	while (bs->bitmaps_all) {
		struct blockdev_bitmap *b = bs->bitmaps_all;

		bs->bitmaps_all = b->all_next;
		free((void *)b->words);
		free(b->name);
		free(b);
	}
	atomic_store(&bs->bitmaps, NULL);
}

void blockdev_bitmap_enable(struct blockdev_bitmap *b, bool on)
{
	atomic_store(&b->enabled, on);
}

bool blockdev_bitmap_enabled(const struct blockdev_bitmap *b)
{
	return atomic_load(&b->enabled);
}

void blockdev_bitmap_set_busy(struct blockdev_bitmap *b, bool busy)
{
	atomic_store(&b->busy, busy);
}

bool blockdev_bitmap_busy(const struct blockdev_bitmap *b)
{
	return atomic_load(&b->busy);
}

const char *blockdev_bitmap_name(const struct blockdev_bitmap *b)
{
	return b->name;
}

uint64_t blockdev_bitmap_granularity(const struct blockdev_bitmap *b)
{
	return b->gran;
}

/*
 * A bit of @b changed. Written once per change of state, read first: a write that finds its
 * bits set already (most of them, on a hot disk) stores nothing, so the line stays shared.
 * Relaxed: the control plane reads it after the writers stopped (the node's queues drained).
 */
static void note_change(struct blockdev_bitmap *b)
{
	if (!atomic_load_explicit(&b->changed, memory_order_relaxed))
		atomic_store_explicit(&b->changed, true, memory_order_relaxed);
}

/* Sets (@set) or clears bits [first, last] with one atomic operation per word. */
static void change_bits(struct blockdev_bitmap *b, uint64_t first, uint64_t last, bool set)
{
	for (uint64_t w = first / 64; w <= last / 64; w++) {
		unsigned int lo = w == first / 64 ? first % 64 : 0;
		unsigned int hi = w == last / 64 ? last % 64 : 63;
		uint64_t mask = (hi == 63 ? ~0ULL : ((1ULL << (hi + 1)) - 1)) & ~((1ULL << lo) - 1);
		uint64_t old;

		if (set) {
			old = atomic_fetch_or_explicit(&b->words[w], mask, memory_order_relaxed);
			if ((old & mask) != mask)
				note_change(b);
		} else {
			old = atomic_fetch_and_explicit(&b->words[w], ~mask, memory_order_relaxed);
			if (old & mask)
				note_change(b);
		}
	}
}

/* The bits covering [off, off+len), clipped to the bitmap; false when none. */
static bool bit_range(const struct blockdev_bitmap *b, uint64_t off, uint64_t len,
		      uint64_t *first, uint64_t *last)
{
	if (!len || off >= b->size)
		return false;
	len = MIN(len, b->size - off);
	*first = off >> b->gran_bits;
	*last = (off + len - 1) >> b->gran_bits;
	return true;
}

void blockdev_bitmap_set(struct blockdev_bitmap *b, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (bit_range(b, off, len, &first, &last))
		change_bits(b, first, last, true);
}

/* Only the granules @len covers whole are cleared (a part of one may still be dirty). */
void blockdev_bitmap_reset(struct blockdev_bitmap *b, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, first, last;

	if (end >= b->size)
		end = ALIGN_UP(b->size, b->gran); /* the last granule may be short */
	off = ALIGN_UP(off, b->gran);
	end = ALIGN_DOWN(end, b->gran);
	if (end > off && bit_range(b, off, end - off, &first, &last))
		change_bits(b, first, last, false);
}

void blockdev_bitmap_clear(struct blockdev_bitmap *b)
{
	for (uint64_t w = 0; w < (b->nr_bits + 63) / 64; w++)
		if (atomic_exchange_explicit(&b->words[w], 0, memory_order_relaxed))
			note_change(b);
}

void blockdev_bitmaps_mark(struct blockdev *bs, uint64_t off, uint64_t len)
{
	struct blockdev_bitmap *b = atomic_load_explicit(&bs->bitmaps, memory_order_acquire);

	for (; b; b = atomic_load_explicit(&b->next, memory_order_acquire))
		if (atomic_load_explicit(&b->enabled, memory_order_relaxed))
			blockdev_bitmap_set(b, off, len);
}

bool blockdev_bitmap_next_dirty(struct blockdev_bitmap *b, uint64_t off, uint64_t max,
				uint64_t *start, uint64_t *len)
{
	uint64_t bit = off >> b->gran_bits, first, end;

	while (bit < b->nr_bits) {
		uint64_t w = atomic_load_explicit(&b->words[bit / 64], memory_order_relaxed) >>
			     (bit % 64);

		if (!w) {
			bit = ALIGN_DOWN(bit, 64) + 64;
			continue;
		}
		bit += (uint64_t)__builtin_ctzll(w);
		break;
	}
	if (bit >= b->nr_bits)
		return false;
	first = bit;
	*start = MAX(first << b->gran_bits, off);
	/* the run of set bits from @first, up to @max bytes from *start */
	for (end = first + 1; end < b->nr_bits && (end << b->gran_bits) < *start + max; end++) {
		uint64_t w = atomic_load_explicit(&b->words[end / 64], memory_order_relaxed);

		if (!(w & (1ULL << (end % 64))))
			break;
	}
	*len = MIN(MIN(end << b->gran_bits, b->size), *start + max) - *start;
	return *len > 0;
}

uint64_t blockdev_bitmap_count(struct blockdev_bitmap *b)
{
	uint64_t n = 0, last_bit;

	for (uint64_t w = 0; w < (b->nr_bits + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(
			atomic_load_explicit(&b->words[w], memory_order_relaxed));
	n <<= b->gran_bits;
	/* the last granule counts only what the node has of it */
	last_bit = b->nr_bits - 1;
	if (b->nr_bits && (b->size & (b->gran - 1)) &&
	    (atomic_load_explicit(&b->words[last_bit / 64], memory_order_relaxed) &
	     (1ULL << (last_bit % 64))))
		n -= b->gran - (b->size & (b->gran - 1));
	return n;
}

void blockdev_bitmap_merge(struct blockdev_bitmap *dst, struct blockdev_bitmap *src)
{
	uint64_t off = 0, start, len;

	while (blockdev_bitmap_next_dirty(src, off, UINT64_MAX / 2, &start, &len)) {
		blockdev_bitmap_set(dst, start, len);
		off = start + len;
	}
}

int blockdev_bitmaps_resize(struct blockdev *bs, uint64_t size)
{
	struct blockdev_bitmap *b;
	size_t n = 0, i = 0;
	_Atomic uint64_t **fresh;

	for (b = bs->bitmaps_all; b; b = b->all_next)
		n++;
	fresh = calloc(MAX(n, 1), sizeof(*fresh));
	if (!fresh)
		return -1;
	for (b = bs->bitmaps_all; b; b = b->all_next, i++) {
		fresh[i] = words_new(bits_for(size, b->gran_bits));
		if (!fresh[i]) {
			while (i--)
				free((void *)fresh[i]);
			free(fresh);
			return -1;
		}
	}
	for (b = bs->bitmaps_all, i = 0; b; b = b->all_next, i++) {
		uint64_t keep = MIN(b->nr_bits, bits_for(size, b->gran_bits));

		for (uint64_t w = 0; w < (keep + 63) / 64; w++)
			fresh[i][w] = atomic_load(&b->words[w]);
		if (keep % 64) /* bits past the new end go */
			fresh[i][keep / 64] &= (1ULL << (keep % 64)) - 1;
		free((void *)b->words);
		b->words = fresh[i];
		b->size = size;
		b->nr_bits = bits_for(size, b->gran_bits);
		note_change(b); /* as many bits as the new size has */
	}
	free(fresh);
	return 0;
}

struct json_object *blockdev_bitmaps_info(struct blockdev *bs)
{
	struct json_object *a = json_object_new_array();

	for (struct blockdev_bitmap *b = atomic_load(&bs->bitmaps); b; b = atomic_load(&b->next)) {
		struct json_object *o;

		if (!b->name[0])
			continue; /* a job's own */
		o = json_object_new_object();

		json_object_object_add(o, "name", json_object_new_string(b->name));
		json_object_object_add(o, "count",
				       json_object_new_int64((int64_t)blockdev_bitmap_count(b)));
		json_object_object_add(o, "granularity", json_object_new_int64((int64_t)b->gran));
		json_object_object_add(o, "recording",
				       json_object_new_boolean(atomic_load(&b->enabled)));
		json_object_object_add(o, "busy", json_object_new_boolean(atomic_load(&b->busy)));
		json_object_object_add(o, "persistent", json_object_new_boolean(b->persistent));
		if (b->inconsistent)
			json_object_object_add(o, "inconsistent", json_object_new_boolean(true));
		json_object_array_add(a, o);
	}
	return a;
}

void blockdev_bitmap_set_persistent(struct blockdev_bitmap *b, bool on)
{
	b->persistent = on;
}

bool blockdev_bitmap_persistent(const struct blockdev_bitmap *b)
{
	return b->persistent;
}

void blockdev_bitmap_set_inconsistent(struct blockdev_bitmap *b)
{
	b->inconsistent = true;
	atomic_store(&b->enabled, false);
}

bool blockdev_bitmap_inconsistent(const struct blockdev_bitmap *b)
{
	return b->inconsistent;
}

int blockdev_bitmap_check(const struct blockdev_bitmap *b, struct error **errp)
{
	if (atomic_load(&b->busy)) {
		error_setg(errp, "Bitmap '%s' is currently in use by another operation and cannot "
			   "be used", b->name);
		return -1;
	}
	if (b->inconsistent) {
		error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used; try "
			   "block-dirty-bitmap-remove to delete this bitmap from disk", b->name);
		return -1;
	}
	return 0;
}

bool blockdev_bitmap_live(struct blockdev *bs, const struct blockdev_bitmap *b)
{
	for (struct blockdev_bitmap *x = atomic_load(&bs->bitmaps); x; x = atomic_load(&x->next))
		if (x == b)
			return true;
	return false;
}

void blockdev_bitmap_for_each(struct blockdev *bs,
			      void (*fn)(struct blockdev_bitmap *b, void *opaque), void *opaque)
{
	for (struct blockdev_bitmap *b = atomic_load(&bs->bitmaps); b; b = atomic_load(&b->next))
		if (b->name[0])
			fn(b, opaque);
}

uint64_t blockdev_bitmap_bytes(const struct blockdev_bitmap *b)
{
	return (b->nr_bits + 7) / 8;
}

void blockdev_bitmap_get_bytes(struct blockdev_bitmap *b, uint64_t off, uint8_t *buf,
			       uint64_t len)
{
	uint64_t words = (b->nr_bits + 63) / 64;

	for (uint64_t i = 0; i < len; i++) {
		uint64_t byte = off + i, w = byte / 8;

		buf[i] = w < words ? (uint8_t)(atomic_load_explicit(&b->words[w],
								    memory_order_relaxed) >>
					       (8 * (byte % 8))) : 0;
	}
}

void blockdev_bitmap_set_bytes(struct blockdev_bitmap *b, uint64_t off, const uint8_t *buf,
			       uint64_t len)
{
	for (uint64_t i = 0; i < len; i++) {
		uint64_t byte = off + i, bit = byte * 8, v = buf[i];

		if (!v || bit >= b->nr_bits)
			continue;
		if (b->nr_bits - bit < 8) /* the tail past the last granule stays clear */
			v &= (1u << (b->nr_bits - bit)) - 1;
		v <<= 8 * (byte % 8);
		if ((atomic_fetch_or_explicit(&b->words[byte / 8], v, memory_order_relaxed) & v) != v)
			note_change(b);
	}
}

bool blockdev_bitmap_changed(const struct blockdev_bitmap *b)
{
	return atomic_load_explicit(&b->changed, memory_order_relaxed);
}

void blockdev_bitmap_set_unchanged(struct blockdev_bitmap *b)
{
	atomic_store_explicit(&b->changed, false, memory_order_relaxed);
}

int blockdev_bitmap_delete(struct blockdev *bs, struct blockdev_bitmap *b, struct error **errp)
{
	if (atomic_load(&b->busy)) {
		error_setg(errp, "Bitmap '%s' is currently in use by another operation and cannot "
			   "be used", b->name);
		return -1;
	}
	/* out of the image first: when that fails, the bitmap stays, as QEMU's */
	if (b->persistent && bs->drv->bitmap_remove && bs->drv->bitmap_remove(bs, b->name, errp))
		return -1;
	return blockdev_bitmap_remove(bs, b, errp);
}

int blockdev_bitmap_can_store(struct blockdev *bs, const char *name, uint64_t granularity,
			      struct error **errp)
{
	if (!bs->drv->bitmap_can_store) {
		error_setg(errp, "Can't store persistent bitmaps to %s: format '%s' has no "
			   "persistent bitmaps", bs->node_name, bs->drv->name);
		return -1;
	}
	return bs->drv->bitmap_can_store(bs, name, granularity, errp);
}
