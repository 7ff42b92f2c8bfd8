/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The qcow2 L2 slice cache: lookups from any thread without a lock, fills and updates by the
 * one thread holding the image's allocation lock. The protocol is described in qcow2_cache.c.
 */
#ifndef VIREO_BLOCKDEV_QCOW2_CACHE_H
#define VIREO_BLOCKDEV_QCOW2_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define QCOW2_CACHE_WAYS 8

struct qcow2_cache_slot {
	_Atomic uint32_t seq;   /* odd while a writer changes key or words */
	_Atomic uint8_t ref;    /* CLOCK reference bit, set by readers */
	_Atomic uint64_t key;   /* host offset of the cached slice, 0 = empty */
};

struct qcow2_cache {
	struct qcow2_cache_slot *slots;
	_Atomic uint64_t *words; /* slot i's slice: words[i * slice_words ...], CPU byte order */
	uint32_t nr_sets;
	uint32_t slice_words;
	uint8_t *hand;           /* per-set CLOCK hand (writers only) */
	/* slices loaded after a miss: written by the writer only (install), read relaxed. Readers
	 * keep no statistics: a counter every lookup bumps is a cache line the iothreads steal
	 * from each other on every request, and it shared this line with the fields above */
	_Atomic uint64_t misses;
};

/* Sizes the cache to @bytes of slice data (at least one set). Returns 0 or -ENOMEM. */
int qcow2_cache_init(struct qcow2_cache *c, uint64_t bytes, uint32_t slice_words);
void qcow2_cache_destroy(struct qcow2_cache *c);

/**
 * qcow2_cache_lookup - lock-free read of @n consecutive words of a cached slice
 * @key: host offset of the slice (never 0)
 * @idx: index of the first word in the slice
 * Returns true and fills @out with a consistent copy, false on a miss (or persistent
 * contention: then the caller takes the slow path, which is always correct).
 */
bool qcow2_cache_lookup(struct qcow2_cache *c, uint64_t key, uint32_t idx, uint32_t n,
			uint64_t *out);

/* Writers (the image lock held): install a whole slice, replacing a victim. */
void qcow2_cache_install(struct qcow2_cache *c, uint64_t key, const uint64_t *slice);
/* Writers: change @n words of a slice if it is cached (a miss re-reads the disk, which the
 * writer already updated). */
void qcow2_cache_update(struct qcow2_cache *c, uint64_t key, uint32_t idx, uint32_t n,
			const uint64_t *val);
/* Writers: forget every slice. */
void qcow2_cache_clear(struct qcow2_cache *c);

#endif
