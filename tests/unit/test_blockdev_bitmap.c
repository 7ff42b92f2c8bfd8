/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dirty bitmaps: names and granularities refused by QEMU's words, bits at the edges (a short last
 * granule, ranges across words), writes of every kind marking the enabled bitmaps only, merge
 * across granularities, a grown node, and many threads marking at once with no lock (TSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/bitmap.h"
#include "blockdev/blockdev.h"

#define KiB 1024ULL
#define SIZE (10 * 1024 * KiB + 4 * KiB) /* 10 MiB and a short last 64 KiB granule */

static char path[256];

static int setup(void **state)
{
	const char *tmp = getenv("VIREO_TEST_TMPDIR");
	struct blockdev_opts o = { 0 };
	int fd;

	snprintf(path, sizeof(path), "%s/vireo-bitmap-XXXXXX", tmp ? tmp : "/var/tmp");
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, (off_t)SIZE) < 0)
		return -1;
	close(fd);
	if (blockdev_opts_set(&o, "format", "raw", NULL))
		return -1;
	*state = blockdev_open(path, &o, NULL);
	blockdev_opts_free(&o);
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	blockdev_close(*state);
	unlink(path);
	return 0;
}

static void names_and_granularities_are_checked(void **state)
{
	struct blockdev *bs = *state;
	struct error *err = NULL;
	struct blockdev_bitmap *b = blockdev_bitmap_add(bs, "b0", 0, false, NULL);

	assert_non_null(b);
	assert_int_equal(blockdev_bitmap_granularity(b), 65536);
	assert_null(blockdev_bitmap_add(bs, "b0", 4096, false, &err));
	assert_string_equal(error_msg(err), "Bitmap already exists: b0");
	error_free(err);
	err = NULL;
	assert_null(blockdev_bitmap_add(bs, "b1", 3000, false, &err));
	assert_string_equal(error_msg(err), "Granularity must be power of 2 between 512 and "
			    "2147483648");
	error_free(err);
	err = NULL;
	assert_null(blockdev_bitmap_add(bs, "b1", 256, false, &err));
	error_free(err);
	err = NULL;
	assert_null(blockdev_bitmap_find(bs, "nope", &err));
	assert_string_equal(error_msg(err), "Dirty bitmap 'nope' not found");
	error_free(err);
	err = NULL;
	blockdev_bitmap_set_busy(b, true);
	assert_int_equal(blockdev_bitmap_remove(bs, b, &err), -1);
	assert_non_null(strstr(error_msg(err), "in use by another operation"));
	error_free(err);
	blockdev_bitmap_set_busy(b, false);
	assert_int_equal(blockdev_bitmap_remove(bs, b, NULL), 0);
	assert_null(blockdev_bitmap_find(bs, "b0", NULL));
	/* the name is free again */
	assert_non_null(blockdev_bitmap_add(bs, "b0", 512, false, NULL));
}

static void bits_at_the_edges(void **state)
{
	struct blockdev *bs = *state;
	struct blockdev_bitmap *b = blockdev_bitmap_add(bs, "edges", 65536, false, NULL);
	uint64_t start, len;

	assert_false(blockdev_bitmap_next_dirty(b, 0, UINT64_MAX / 2, &start, &len));
	assert_int_equal(blockdev_bitmap_count(b), 0);
	/* one byte dirties its whole granule; a range across a 64-bit word boundary */
	blockdev_bitmap_set(b, 100 * KiB, 1);
	blockdev_bitmap_set(b, 63 * 64 * KiB, 3 * 64 * KiB);
	assert_true(blockdev_bitmap_next_dirty(b, 0, UINT64_MAX / 2, &start, &len));
	assert_int_equal(start, 64 * KiB);
	assert_int_equal(len, 64 * KiB);
	assert_true(blockdev_bitmap_next_dirty(b, start + len, UINT64_MAX / 2, &start, &len));
	assert_int_equal(start, 63 * 64 * KiB);
	assert_int_equal(len, 3 * 64 * KiB);
	/* max cuts a run; a start inside a granule starts there */
	assert_true(blockdev_bitmap_next_dirty(b, 63 * 64 * KiB + 10, 64 * KiB, &start, &len));
	assert_int_equal(start, 63 * 64 * KiB + 10);
	assert_int_equal(len, 64 * KiB);
	/* the short last granule counts only its 4 KiB */
	blockdev_bitmap_set(b, SIZE - 1, 1);
	assert_int_equal(blockdev_bitmap_count(b), 4 * 64 * KiB + 4 * KiB);
	assert_true(blockdev_bitmap_next_dirty(b, 10 * 1024 * KiB, UINT64_MAX / 2, &start, &len));
	assert_int_equal(start + len, SIZE);
	/* past the end: nothing */
	blockdev_bitmap_set(b, SIZE, 65536);
	assert_int_equal(blockdev_bitmap_count(b), 4 * 64 * KiB + 4 * KiB);
	/* reset clears whole granules only; to the end, the short one too */
	blockdev_bitmap_reset(b, 64 * KiB + 1, 64 * KiB);
	assert_int_equal(blockdev_bitmap_count(b), 4 * 64 * KiB + 4 * KiB);
	blockdev_bitmap_reset(b, 64 * KiB, 64 * KiB);
	assert_int_equal(blockdev_bitmap_count(b), 3 * 64 * KiB + 4 * KiB);
	blockdev_bitmap_reset(b, 10 * 1024 * KiB, 4 * KiB);
	assert_int_equal(blockdev_bitmap_count(b), 3 * 64 * KiB);
	blockdev_bitmap_clear(b);
	assert_int_equal(blockdev_bitmap_count(b), 0);
	blockdev_bitmap_remove(bs, b, NULL);
}

static void writes_mark_the_enabled_bitmaps(void **state)
{
	struct blockdev *bs = *state;
	struct blockdev_bitmap *on = blockdev_bitmap_add(bs, "on", 4096, false, NULL);
	struct blockdev_bitmap *off = blockdev_bitmap_add(bs, "off", 4096, true, NULL);
	uint8_t buf[8192] = { 1 };

	assert_int_equal(blockdev_pwrite(bs, 8192, buf, 8192), 0);
	assert_int_equal(blockdev_write_zeroes(bs, 1024 * KiB, 4096, 0), 0);
	assert_int_equal(blockdev_discard(bs, 2048 * KiB, 4096), 0);
	assert_int_equal(blockdev_pread(bs, 4 * 1024 * KiB, buf, 4096), 0); /* no mark */
	assert_int_equal(blockdev_bitmap_count(on), 4 * 4096);
	assert_int_equal(blockdev_bitmap_count(off), 0);
	blockdev_bitmap_enable(off, true);
	blockdev_bitmap_enable(on, false);
	assert_int_equal(blockdev_pwrite(bs, 0, buf, 512), 0);
	assert_int_equal(blockdev_bitmap_count(on), 4 * 4096);
	assert_int_equal(blockdev_bitmap_count(off), 4096);
	blockdev_bitmap_remove(bs, on, NULL);
	blockdev_bitmap_remove(bs, off, NULL);
}

static void merge_spans_granularities_and_a_grown_node_is_covered(void **state)
{
	struct blockdev *bs = *state;
	struct blockdev_bitmap *fine = blockdev_bitmap_add(bs, "fine", 512, false, NULL);
	struct blockdev_bitmap *coarse = blockdev_bitmap_add(bs, "coarse", 1024 * KiB, true, NULL);
	uint8_t buf[512] = { 0 };

	blockdev_bitmap_set(fine, 3 * 1024 * KiB + 512, 512);
	blockdev_bitmap_merge(coarse, fine);
	assert_int_equal(blockdev_bitmap_count(coarse), 1024 * KiB);
	blockdev_bitmap_merge(fine, coarse);
	assert_int_equal(blockdev_bitmap_count(fine), 1024 * KiB);
	assert_int_equal(blockdev_truncate(bs, SIZE + 2048 * KiB, NULL), 0);
	assert_int_equal(blockdev_pwrite(bs, SIZE + 1024 * KiB, buf, 512), 0);
	assert_int_equal(blockdev_bitmap_count(fine), 1024 * KiB + 512);
	assert_int_equal(blockdev_bitmap_count(coarse), 1024 * KiB); /* disabled */
	assert_int_equal(blockdev_truncate(bs, SIZE, NULL), 0);
	assert_int_equal(blockdev_bitmap_count(fine), 1024 * KiB);
	blockdev_bitmap_remove(bs, fine, NULL);
	blockdev_bitmap_remove(bs, coarse, NULL);
}

struct marker {
	struct blockdev *bs;
	unsigned int id;
};

/* each thread marks its own interleaved 4 KiB granules, many times */
static void *mark_thread(void *arg)
{
	struct marker *m = arg;

	for (unsigned int round = 0; round < 50; round++)
		for (uint64_t g = m->id; g < SIZE / 4096; g += 4)
			blockdev_bitmaps_mark(m->bs, g * 4096, 1);
	return NULL;
}

static void threads_mark_at_once_without_a_lock(void **state)
{
	struct blockdev *bs = *state;
	struct blockdev_bitmap *b = blockdev_bitmap_add(bs, "mt", 4096, false, NULL);
	struct marker m[4];
	pthread_t t[4];

	for (unsigned int i = 0; i < 4; i++) {
		m[i] = (struct marker){ bs, i };
		assert_int_equal(pthread_create(&t[i], NULL, mark_thread, &m[i]), 0);
	}
	/* meanwhile the control plane adds and removes another bitmap and reads the count */
	for (unsigned int i = 0; i < 100; i++) {
		struct blockdev_bitmap *x = blockdev_bitmap_add(bs, "churn", 65536, false, NULL);

		assert_non_null(x);
		(void)blockdev_bitmap_count(b);
		assert_int_equal(blockdev_bitmap_remove(bs, x, NULL), 0);
	}
	for (unsigned int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(blockdev_bitmap_count(b), SIZE / 4096 * 4096);
	blockdev_bitmap_remove(bs, b, NULL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(names_and_granularities_are_checked),
		T(bits_at_the_edges),
		T(writes_mark_the_enabled_bitmaps),
		T(merge_spans_granularities_and_a_grown_node_is_covered),
		T(threads_mark_at_once_without_a_lock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
