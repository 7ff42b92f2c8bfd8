/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lock-free L2 slice cache: hits, misses, eviction, and a stress test where reader threads
 * look entries up while a writer keeps installing, updating and evicting slices. Every hit must
 * be a consistent copy of one version of the right slice. Run it under TSan too
 * (meson setup -Db_sanitize=thread).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "blockdev/qcow2_cache.h"

#define WORDS 64
#define KEYS 200

/* word i of slice @key at version @v */
static uint64_t val(uint64_t key, uint64_t v, uint64_t i)
{
	return (key << 32) | (v << 12) | i;
}

static void fill(uint64_t *s, uint64_t key, uint64_t v)
{
	for (uint64_t i = 0; i < WORDS; i++)
		s[i] = val(key, v, i);
}

static void lookup_hits_what_was_installed_and_misses_the_rest(void **state)
{
	struct qcow2_cache c;
	uint64_t s[WORDS], out[2];

	assert_int_equal(qcow2_cache_init(&c, 64 * WORDS * 8, WORDS), 0);
	fill(s, 4096, 1);
	qcow2_cache_install(&c, 4096, s);
	assert_true(qcow2_cache_lookup(&c, 4096, 10, 2, out));
	assert_int_equal(out[0], val(4096, 1, 10));
	assert_int_equal(out[1], val(4096, 1, 11));
	assert_false(qcow2_cache_lookup(&c, 8192, 0, 1, out));
	out[0] = 77;
	out[1] = 78;
	qcow2_cache_update(&c, 4096, 10, 2, out);
	assert_true(qcow2_cache_lookup(&c, 4096, 10, 2, out));
	assert_int_equal(out[0], 77);
	assert_int_equal(out[1], 78);
	qcow2_cache_update(&c, 8192, 0, 1, out); /* not cached: nothing happens */
	assert_false(qcow2_cache_lookup(&c, 8192, 0, 1, out));
	qcow2_cache_clear(&c);
	assert_false(qcow2_cache_lookup(&c, 4096, 10, 1, out));
	qcow2_cache_destroy(&c);
}

static void a_full_cache_evicts_and_stays_correct(void **state)
{
	struct qcow2_cache c;
	uint64_t s[WORDS], out;
	unsigned hits = 0;

	/* one set of 8 ways: installing 100 keys keeps at most 8 */
	assert_int_equal(qcow2_cache_init(&c, 8 * WORDS * 8, WORDS), 0);
	for (uint64_t k = 1; k <= 100; k++) {
		fill(s, k * 4096, 3);
		qcow2_cache_install(&c, k * 4096, s);
		assert_true(qcow2_cache_lookup(&c, k * 4096, 5, 1, &out));
		assert_int_equal(out, val(k * 4096, 3, 5));
	}
	for (uint64_t k = 1; k <= 100; k++) {
		if (qcow2_cache_lookup(&c, k * 4096, 7, 1, &out)) {
			assert_int_equal(out, val(k * 4096, 3, 7));
			hits++;
		}
	}
	assert_int_equal(hits, QCOW2_CACHE_WAYS);
	qcow2_cache_destroy(&c);
}

/*
 * The driver sizes the cache to twice the L2 tables; the slices of those tables are consecutive
 * 4 KiB keys, wherever the tables sit in the file. They must spread over the sets well enough
 * that all of them stay cached: a hash that crowds them into a few sets turns a steady stream of
 * lookups into misses (seen: a preallocated 1 GiB image at 0.39x raw's IOPS).
 */
static void consecutive_slices_of_two_tables_all_stay_cached(void **state)
{
	static uint64_t s[512];
	struct qcow2_cache c;
	uint64_t out;

	for (uint64_t base = 1; base < 64; base++) { /* first L2 table at cluster 1..63 */
		/* a 1 GiB image with 64 KiB clusters: 2 tables of 16 slices, 256 KiB of cache */
		assert_int_equal(qcow2_cache_init(&c, 2 * 2 * 65536, 512), 0);
		for (uint64_t k = 0; k < 32; k++)
			qcow2_cache_install(&c, base * 65536 + k * 4096, s);
		for (uint64_t k = 0; k < 32; k++)
			if (!qcow2_cache_lookup(&c, base * 65536 + k * 4096, 0, 1, &out))
				fail_msg("tables at 0x%llx: slice %llu was evicted",
					 (unsigned long long)base * 65536, (unsigned long long)k);
		assert_int_equal(atomic_load(&c.misses), 32);
		qcow2_cache_destroy(&c);
	}
}

struct stress {
	struct qcow2_cache c;
	atomic_bool stop;
	atomic_ulong hits, bad;
};

static void *reader(void *arg)
{
	struct stress *st = arg;
	unsigned seed = (unsigned)(uintptr_t)pthread_self();
	uint64_t out[2];

	while (!atomic_load(&st->stop)) {
		uint64_t key = (uint64_t)(rand_r(&seed) % KEYS + 1) * 4096;
		uint32_t idx = (uint32_t)(rand_r(&seed) % (WORDS / 2)) * 2;

		if (!qcow2_cache_lookup(&st->c, key, idx, 2, out))
			continue;
		atomic_fetch_add(&st->hits, 1);
		/* both words: this key, this index, and the same version */
		if (out[0] >> 32 != key || out[1] >> 32 != key || (out[0] & 0xfff) != idx ||
		    (out[1] & 0xfff) != idx + 1 || (out[0] >> 12) != (out[1] >> 12))
			atomic_fetch_add(&st->bad, 1);
	}
	return NULL;
}

static void readers_never_see_a_torn_or_foreign_entry_while_a_writer_churns(void **state)
{
	static struct stress st;
	pthread_t t[3];
	uint64_t s[WORDS], pair[2];
	unsigned seed = 1;

	assert_int_equal(qcow2_cache_init(&st.c, 32 * WORDS * 8, WORDS), 0);
	atomic_store(&st.stop, false);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &st), 0);
	for (uint64_t v = 1; v < 200000; v++) {
		uint64_t key = (uint64_t)(rand_r(&seed) % KEYS + 1) * 4096;

		if (v % 3 == 0) {
			fill(s, key, v & 0xfffff);
			qcow2_cache_install(&st.c, key, s);
		} else {
			uint32_t idx = (uint32_t)(rand_r(&seed) % (WORDS / 2)) * 2;

			pair[0] = val(key, v & 0xfffff, idx);
			pair[1] = val(key, v & 0xfffff, idx + 1);
			qcow2_cache_update(&st.c, key, idx, 2, pair);
		}
	}
	atomic_store(&st.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&st.bad), 0);
	assert_true(atomic_load(&st.hits) > 0);
	qcow2_cache_destroy(&st.c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lookup_hits_what_was_installed_and_misses_the_rest),
		cmocka_unit_test(consecutive_slices_of_two_tables_all_stay_cached),
		cmocka_unit_test(a_full_cache_evicts_and_stays_correct),
		cmocka_unit_test(readers_never_see_a_torn_or_foreign_entry_while_a_writer_churns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
