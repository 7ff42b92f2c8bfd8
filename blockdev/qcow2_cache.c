/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The qcow2 L2 slice cache: who owns what.
 *
 * An L2 table is one cluster; we cache it in slices of at most 4 KiB (512 standard or 256
 * extended entries), each named by its host offset in the image file ("key"; never 0, which is
 * the header). The cache is set-associative: a key hashes to one set of QCOW2_CACHE_WAYS slots.
 *
 * Readers are the iothreads (map() on the fast path) and any thread of the slow path. They take
 * no lock and write nothing shared except a slot's CLOCK reference bit (a relaxed hint, stored
 * only when it was clear). They keep no statistics either: one shared counter bumped per lookup
 * made the iothreads pass its cache line (which also holds the slots/words pointers every
 * lookup reads) back and forth on every request; the miss count is kept by the writer. Each
 * slot is a seqlock: `seq` is even when the slot is stable and odd while a writer changes its
 * key or its words. A reader loads seq (acquire), the key and the words it wants (relaxed
 * atomics), an acquire fence, then seq again; if both seq values are equal and even, the copy
 * is a consistent snapshot of one version of that slice. Otherwise it retries a few times and
 * then reports a miss; a miss is always safe because the caller falls back to the slow path.
 *
 * Writers are whoever holds the image's allocation lock (qcow2->lock), so there is at most one
 * at a time and they need no atomic read-modify-write. They fill a slot after reading a slice
 * from disk, update an entry after writing it to disk (the cache is write-through: it never
 * holds anything the file does not already have, so eviction is just overwriting a slot), and
 * choose victims with a per-set CLOCK hand that only they touch.
 *
 * Nothing is ever freed while readers run: slots and words are allocated once at open and
 * released at close, when no queue is left. That is why no epoch/RCU reclamation is needed.
 * The price is that a slot's memory is fixed-size: the cache size is chosen at open
 * (l2-cache-size).
 */
#include "blockdev/qcow2_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * The set of @key: a multiplicative hash whose top bits (the well-mixed ones) pick the set, by
 * scaling them to [0, nr_sets) with a multiply and shift (any number of sets, no division).
 * Taking `% nr_sets` of its middle bits instead crowded the consecutive slices of a small
 * image's L2 tables into a few sets, where they evicted each other (with preallocated
 * metadata, most lookups missed).
 */
static uint32_t set_of(const struct qcow2_cache *c, uint64_t key)
{
	uint64_t h = (key >> 9) * 0x9e3779b97f4a7c15ULL;

	return (uint32_t)(((h >> 32) * c->nr_sets) >> 32);
}

int qcow2_cache_init(struct qcow2_cache *c, uint64_t bytes, uint32_t slice_words)
{
	uint64_t slots = bytes / ((uint64_t)slice_words * 8);

	memset(c, 0, sizeof(*c));
	c->slice_words = slice_words;
	c->nr_sets = (uint32_t)(slots / QCOW2_CACHE_WAYS);
	if (c->nr_sets == 0)
		c->nr_sets = 1;
	slots = (uint64_t)c->nr_sets * QCOW2_CACHE_WAYS;
	c->slots = calloc(slots, sizeof(*c->slots));
	c->words = calloc(slots * slice_words, sizeof(*c->words));
	c->hand = calloc(c->nr_sets, 1);
	if (!c->slots || !c->words || !c->hand) {
		qcow2_cache_destroy(c);
		return -ENOMEM;
	}
	return 0;
}

void qcow2_cache_destroy(struct qcow2_cache *c)
{
	free(c->slots);
	free(c->words);
	free(c->hand);
	c->slots = NULL;
	c->words = NULL;
	c->hand = NULL;
}

static _Atomic uint64_t *slot_words(struct qcow2_cache *c, uint32_t slot)
{
	return c->words + (uint64_t)slot * c->slice_words;
}

bool qcow2_cache_lookup(struct qcow2_cache *c, uint64_t key, uint32_t idx, uint32_t n,
			uint64_t *out)
{
	uint32_t base = set_of(c, key) * QCOW2_CACHE_WAYS;

	for (uint32_t w = 0; w < QCOW2_CACHE_WAYS; w++) {
		struct qcow2_cache_slot *s = &c->slots[base + w];
		_Atomic uint64_t *words = slot_words(c, base + w);

		for (int tries = 0; tries < 8; tries++) {
			/* acquire: pairs with the writer's release store ending a change, so
			 * the words of that version are visible below */
			uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire), s2;

			if (s1 & 1) {
				__builtin_ia32_pause();
				continue;
			}
			if (atomic_load_explicit(&s->key, memory_order_relaxed) != key)
				break; /* another slice (or a torn key: a harmless false miss) */
			for (uint32_t i = 0; i < n; i++)
				out[i] =
					atomic_load_explicit(&words[idx + i], memory_order_relaxed);
			/* acquire fence: the loads of key and words above happen before the
			 * re-read of seq; pairs with the writer's release fence after it made
			 * seq odd */
			atomic_thread_fence(memory_order_acquire);
			s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
			if (s1 != s2)
				continue;
			/* store only when clear: a hot slot's line stays shared between the
			 * iothreads instead of bouncing on every hit */
			if (!atomic_load_explicit(&s->ref, memory_order_relaxed))
				atomic_store_explicit(&s->ref, 1, memory_order_relaxed);
			return true;
		}
	}
	return false;
}

static void write_begin(struct qcow2_cache_slot *s)
{
	uint32_t v = atomic_load_explicit(&s->seq, memory_order_relaxed);

	atomic_store_explicit(&s->seq, v + 1, memory_order_relaxed);
	/* release fence: the odd seq is ordered before the key/word stores that follow, so a
	 * reader that sees any of them also sees seq changed on its second load */
	atomic_thread_fence(memory_order_release);
}

static void write_end(struct qcow2_cache_slot *s)
{
	uint32_t v = atomic_load_explicit(&s->seq, memory_order_relaxed);

	/* release: the key/word stores above are visible to whoever acquires the even seq */
	atomic_store_explicit(&s->seq, v + 1, memory_order_release);
}

static int find_slot(struct qcow2_cache *c, uint64_t key)
{
	uint32_t base = set_of(c, key) * QCOW2_CACHE_WAYS;

	for (uint32_t w = 0; w < QCOW2_CACHE_WAYS; w++)
		if (atomic_load_explicit(&c->slots[base + w].key, memory_order_relaxed) == key)
			return (int)(base + w);
	return -1;
}

static uint32_t pick_victim(struct qcow2_cache *c, uint32_t set)
{
	uint32_t base = set * QCOW2_CACHE_WAYS;

	for (uint32_t w = 0; w < QCOW2_CACHE_WAYS; w++)
		if (!atomic_load_explicit(&c->slots[base + w].key, memory_order_relaxed))
			return base + w;
	for (;;) {
		struct qcow2_cache_slot *s = &c->slots[base + c->hand[set]];
		uint32_t slot = base + c->hand[set];

		c->hand[set] = (uint8_t)((c->hand[set] + 1) % QCOW2_CACHE_WAYS);
		if (!atomic_load_explicit(&s->ref, memory_order_relaxed))
			return slot;
		atomic_store_explicit(&s->ref, 0, memory_order_relaxed);
	}
}

void qcow2_cache_install(struct qcow2_cache *c, uint64_t key, const uint64_t *slice)
{
	int found = find_slot(c, key);
	uint32_t slot = found >= 0 ? (uint32_t)found : pick_victim(c, set_of(c, key));
	struct qcow2_cache_slot *s = &c->slots[slot];
	_Atomic uint64_t *words = slot_words(c, slot);

	write_begin(s);
	atomic_store_explicit(&s->key, key, memory_order_relaxed);
	for (uint32_t i = 0; i < c->slice_words; i++)
		atomic_store_explicit(&words[i], slice[i], memory_order_relaxed);
	atomic_store_explicit(&s->ref, 1, memory_order_relaxed);
	write_end(s);
	/* one writer at a time: no read-modify-write needed */
	atomic_store_explicit(&c->misses, atomic_load_explicit(&c->misses, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

void qcow2_cache_update(struct qcow2_cache *c, uint64_t key, uint32_t idx, uint32_t n,
			const uint64_t *val)
{
	int slot = find_slot(c, key);
	_Atomic uint64_t *words;

	if (slot < 0)
		return;
	words = slot_words(c, (uint32_t)slot);
	write_begin(&c->slots[slot]);
	for (uint32_t i = 0; i < n; i++)
		atomic_store_explicit(&words[idx + i], val[i], memory_order_relaxed);
	write_end(&c->slots[slot]);
}

void qcow2_cache_clear(struct qcow2_cache *c)
{
	for (uint32_t i = 0; i < c->nr_sets * QCOW2_CACHE_WAYS; i++) {
		write_begin(&c->slots[i]);
		atomic_store_explicit(&c->slots[i].key, 0, memory_order_relaxed);
		write_end(&c->slots[i]);
	}
}
