/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The copy primitive (blockdev/copy.c): what reaches the target for each kind of source range,
 * a range, only the top layers, the progress callback (and stopping the copy from it), the same
 * target file whatever the parallelism, compressed clusters, and bad options.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/copy.h"
#include "blockdev/qcow2.h"
#include "tests/unit/img_fixture.h"

#define MiB (1024 * 1024ULL)
#define SIZE (9 * MiB) /* five chunks, the last one short */

static int setup(void **state)
{
	return imgfx_setup("copy");
}

static int teardown(void **state)
{
	return imgfx_teardown();
}

/* A qcow2 of @size, backed by the raw image @backing if any. */
static void make_qcow2(const char *name, uint64_t size, const char *backing)
{
	imgfx_make_qcow2(name, size, backing ? imgfx_path(backing) : NULL, backing ? "raw" : NULL);
}

/* A source with data in every chunk, a zeroed range, a hole and a data run of zeroes. */
static struct blockdev *patterned_qcow2(const char *name)
{
	struct blockdev *bs;

	make_qcow2(name, SIZE, NULL);
	bs = imgfx_open(name, "qcow2", NULL, false);
	for (uint64_t off = 0; off < SIZE; off += 2 * MiB)
		imgfx_fill(bs, off, 256 * 1024, (uint8_t)(0x10 + off / MiB));
	imgfx_fill(bs, 3 * MiB, 512 * 1024, 0);  /* data that is zeroes */
	assert_int_equal(blockdev_write_zeroes(bs, 5 * MiB, MiB, 0), 0);
	return bs;
}

static void copy_or_fail(struct blockdev_copy *o)
{
	int ret = blockdev_copy_run(o);

	if (ret)
		fail_msg("blockdev_copy_run: %s", strerror(-ret));
}

/* A raw target @name filled with 0xee, for copies that must overwrite (write_zeroes) */
static struct blockdev *dirty_raw_target(const char *name)
{
	struct blockdev *dst;

	imgfx_make_raw(name, SIZE);
	dst = imgfx_open(name, "raw", NULL, false);
	imgfx_fill(dst, 0, SIZE, 0xee);
	return dst;
}

static void whole_copy_reads_as_the_source(void **state)
{
	struct blockdev *src = patterned_qcow2("src.qcow2"), *dst;
	struct blockdev_copy o = { .length = SIZE, .sparse = 4096, .in_order = true,
				   .parallel = 4 };

	/* the target holds other bytes: without write_zeroes they would stay, with it they go */
	dst = dirty_raw_target("dst.raw");
	o.src = src;
	o.dst = dst;
	o.write_zeroes = true;
	copy_or_fail(&o);
	for (uint64_t off = 0; off < SIZE; off += 2 * MiB) {
		uint64_t end = off + 2 * MiB < SIZE ? off + 2 * MiB : SIZE;

		imgfx_assert_reads(dst, off, 256 * 1024, (uint8_t)(0x10 + off / MiB));
		imgfx_assert_reads(dst, off + 256 * 1024, end - off - 256 * 1024, 0);
	}
	imgfx_assert_reads(dst, 3 * MiB, MiB, 0);
	imgfx_assert_reads(dst, 5 * MiB, MiB, 0);
	blockdev_close(dst);
	blockdev_close(src);
}

/* Without write_zeroes, what reads as zeroes in the source is not written at all: a sparse
 * target stays unallocated there (the data run of zeroes too, found by the scan). */
static void zero_ranges_are_skipped_on_a_fresh_target(void **state)
{
	struct blockdev *src = patterned_qcow2("src2.qcow2"), *dst;
	struct blockdev_copy o = { .length = SIZE, .sparse = 4096, .in_order = true,
				   .parallel = 2 };
	uint64_t pnum, map;
	struct blockdev *file;

	make_qcow2("dst2.qcow2", SIZE, NULL);
	dst = imgfx_open("dst2.qcow2", "qcow2", NULL, false);
	o.src = src;
	o.dst = dst;
	copy_or_fail(&o);
	imgfx_assert_reads(dst, 2 * MiB, 256 * 1024, 0x12);
	/* the hole after a data run, the data run of zeroes, the zeroed range */
	static const uint64_t unallocated[][2] = {
		{ 2 * MiB + 256 * 1024, 3 * MiB }, { 3 * MiB, 4 * MiB }, { 5 * MiB, 6 * MiB },
	};
	for (size_t i = 0; i < 3; i++) {
		uint64_t off = unallocated[i][0], len = unallocated[i][1] - off;
		int st = blockdev_block_status(dst, off, len, &pnum, &map, &file);

		assert_true(st >= 0);
		assert_false(st & BLOCKDEV_STATUS_ALLOCATED);
		assert_int_equal(pnum, len);
	}
	blockdev_close(dst);
	blockdev_close(src);
}

struct prog {
	uint64_t last, calls, stop_after;
};

static int count_progress(void *opaque, uint64_t done)
{
	struct prog *p = opaque;

	assert_true(done > p->last);
	p->last = done;
	if (++p->calls == p->stop_after)
		return -ECANCELED;
	return 0;
}

/* A range: the target gets the same offsets, and nothing outside it; progress counts the
 * range's bytes, one call per chunk (chunks are aligned, so a range starting mid-chunk has a
 * short first one). */
static void a_range_copies_only_that_range(void **state)
{
	struct blockdev *src = patterned_qcow2("src3.qcow2"), *dst;
	struct prog p = { 0 };
	struct blockdev_copy o = { .offset = MiB + 512 * 1024, .length = 5 * MiB,
				   .in_order = true, .parallel = 3, .progress = count_progress,
				   .opaque = &p };

	dst = dirty_raw_target("dst3.raw");
	o.src = src;
	o.dst = dst;
	o.write_zeroes = true;
	copy_or_fail(&o);
	assert_int_equal(p.last, 5 * MiB);
	assert_int_equal(p.calls, 4); /* [1.5,2) [2,4) [4,6) [6,6.5) */
	imgfx_assert_reads(dst, 0, MiB + 512 * 1024, 0xee);
	imgfx_assert_reads(dst, 2 * MiB, 256 * 1024, 0x12);
	imgfx_assert_reads(dst, 5 * MiB, MiB, 0);
	imgfx_assert_reads(dst, MiB + 512 * 1024 + 5 * MiB, SIZE - (MiB + 512 * 1024 + 5 * MiB), 0xee);
	blockdev_close(dst);
	blockdev_close(src);
}

/* A progress callback that returns an error stops the copy with it: later chunks are not
 * written. */
static void progress_callback_stops_the_copy(void **state)
{
	struct blockdev *src = patterned_qcow2("src4.qcow2"), *dst;
	struct prog p = { .stop_after = 2 };
	struct blockdev_copy o = { .length = SIZE, .in_order = true, .parallel = 1,
				   .progress = count_progress, .opaque = &p };

	imgfx_make_raw("dst4.raw", SIZE);
	dst = imgfx_open("dst4.raw", "raw", NULL, false);
	o.src = src;
	o.dst = dst;
	assert_int_equal(blockdev_copy_run(&o), -ECANCELED);
	assert_int_equal(p.calls, 2);
	imgfx_assert_reads(dst, 2 * MiB, 256 * 1024, 0x12);
	imgfx_assert_reads(dst, 4 * MiB, 256 * 1024, 0);  /* never written */
	imgfx_assert_reads(dst, 8 * MiB, 256 * 1024, 0);
	blockdev_close(dst);
	blockdev_close(src);
}

/* top_only down to a stop node: what the overlay holds reaches the base (zeroes it holds as
 * zeroes), what it does not hold is left as the base has it. This is commit. */
static void top_layers_only_reach_the_base(void **state)
{
	struct blockdev *top, *base;
	struct blockdev_copy o = { .length = SIZE, .top_only = true, .write_zeroes = true,
				   .in_order = true, .parallel = 2 };

	imgfx_make_raw("base.raw", SIZE);
	base = imgfx_open("base.raw", "raw", NULL, false);
	imgfx_fill(base, 0, SIZE, 0xaa);
	blockdev_close(base);
	make_qcow2("top.qcow2", SIZE, "base.raw");
	top = imgfx_open("top.qcow2", "qcow2", NULL, false);
	imgfx_fill(top, MiB, 64 * 1024, 0xbb);
	assert_int_equal(blockdev_write_zeroes(top, 4 * MiB, 128 * 1024, 0), 0);
	base = imgfx_open("base.raw", "raw", NULL, false);
	o.src = top;
	o.dst = base;
	o.stop = top->backing;
	copy_or_fail(&o);
	imgfx_assert_reads(base, 0, MiB, 0xaa);
	imgfx_assert_reads(base, MiB, 64 * 1024, 0xbb);
	imgfx_assert_reads(base, MiB + 64 * 1024, 3 * MiB - 64 * 1024, 0xaa);
	imgfx_assert_reads(base, 4 * MiB, 128 * 1024, 0);
	imgfx_assert_reads(base, 4 * MiB + 128 * 1024, SIZE - 4 * MiB - 128 * 1024, 0xaa);
	blockdev_close(base);
	blockdev_close(top);
}

static void *slurp(const char *name, size_t *len)
{
	FILE *f = fopen(imgfx_path(name), "rb");
	void *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void copy_to_new_qcow2(struct blockdev *src, const char *name, unsigned parallel,
			      bool compress)
{
	struct blockdev *dst;
	struct blockdev_copy o = { .length = SIZE, .sparse = 4096, .in_order = true,
				   .parallel = parallel, .compress = compress,
				   .cluster_size = compress ? 65536 : 0 };

	make_qcow2(name, SIZE, NULL);
	dst = imgfx_open(name, "qcow2", NULL, false);
	o.src = src;
	o.dst = dst;
	copy_or_fail(&o);
	imgfx_assert_reads(dst, 8 * MiB, 256 * 1024, 0x18);
	imgfx_assert_reads(dst, 5 * MiB, MiB, 0);
	blockdev_close(dst);
}

/* In order, a qcow2 target is the same file whatever the number of workers. */
static void in_order_gives_the_same_file_at_any_parallelism(void **state)
{
	struct blockdev *src = patterned_qcow2("src5.qcow2");
	size_t n1, n8;
	void *a, *b;

	copy_to_new_qcow2(src, "one.qcow2", 1, false);
	copy_to_new_qcow2(src, "eight.qcow2", 8, false);
	a = slurp("one.qcow2", &n1);
	b = slurp("eight.qcow2", &n8);
	assert_int_equal(n1, n8);
	assert_memory_equal(a, b, n1);
	free(a);
	free(b);
	blockdev_close(src);
}

/* Compressed clusters read back as the source; the file is smaller than the data. */
static void compressed_copy_reads_back(void **state)
{
	struct blockdev *src = patterned_qcow2("src6.qcow2");
	size_t n;
	void *a;

	copy_to_new_qcow2(src, "c.qcow2", 4, true);
	a = slurp("c.qcow2", &n);
	assert_true(n < 5 * 256 * 1024);
	free(a);
	blockdev_close(src);
}

static void bad_options_are_refused_before_copying(void **state)
{
	struct blockdev *src = patterned_qcow2("src7.qcow2"), *dst;
	struct blockdev_copy o = { .length = SIZE, .parallel = 1 };

	imgfx_make_raw("dst7.raw", SIZE / 2);
	dst = imgfx_open("dst7.raw", "raw", NULL, false);
	o.src = src;
	o.dst = dst;
	assert_int_equal(blockdev_copy_run(&o), -EINVAL); /* past the target's end */
	o.length = SIZE / 2;
	o.parallel = 0;
	assert_int_equal(blockdev_copy_run(&o), -EINVAL);
	o.parallel = BLOCKDEV_COPY_MAX_PARALLEL + 1;
	assert_int_equal(blockdev_copy_run(&o), -EINVAL);
	o.parallel = 1;
	o.offset = SIZE;
	assert_int_equal(blockdev_copy_run(&o), -EINVAL); /* past the source's end */
	o.offset = 0;
	o.compress = true;
	o.cluster_size = 3 * 65536;                      /* does not divide a chunk */
	assert_int_equal(blockdev_copy_run(&o), -EINVAL);
	o.compress = false;
	o.length = 0;
	assert_int_equal(blockdev_copy_run(&o), 0);      /* nothing to copy */
	imgfx_assert_reads(dst, 0, SIZE / 2, 0);
	blockdev_close(dst);
	blockdev_close(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(whole_copy_reads_as_the_source),
		cmocka_unit_test(zero_ranges_are_skipped_on_a_fresh_target),
		cmocka_unit_test(a_range_copies_only_that_range),
		cmocka_unit_test(progress_callback_stops_the_copy),
		cmocka_unit_test(top_layers_only_reach_the_base),
		cmocka_unit_test(in_order_gives_the_same_file_at_any_parallelism),
		cmocka_unit_test(compressed_copy_reads_back),
		cmocka_unit_test(bad_options_are_refused_before_copying),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
