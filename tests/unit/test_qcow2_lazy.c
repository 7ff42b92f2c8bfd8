/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 lazy publication (blockdev/qcow2_commit.c): the L2 entries of allocating writes that
 * the slow-path worker grouped are in the cache at once but reach the file only after the next
 * barrier (a FLUSH, close, a commit that needs one), and a slice the cache loads again from the
 * file meanwhile gets them overlaid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "tests/unit/engine_fixture.h"

#define CL (64u << 10)
#define SLICE_CLUSTERS (QCOW2_SLICE_BYTES / 8) /* guest clusters one cached slice maps */

static char dir[] = "/var/tmp/vireo-qcow2-lazy.XXXXXX";
static char img[256];

static void create(uint64_t size)
{
	struct qcow2_create_opts co = { .size = size, .version = 3, .cluster_bits = 16,
					.refcount_bits = 16 };
	struct error *err = NULL;

	if (qcow2_create(img, &co, &err))
		fail_msg("create: %s", error_msg(err));
}

static uint64_t be64_at(int fd, uint64_t off)
{
	uint8_t b[8];
	uint64_t v = 0;

	assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* The L2 entry of guest cluster @c as the image file has it now (0: none). */
static uint64_t file_entry(uint64_t c)
{
	int fd = open(img, O_RDONLY | O_CLOEXEC);
	uint64_t l1 = be64_at(fd, 40), per_table = CL / 8, l2, e = 0;

	l2 = be64_at(fd, l1 + 8 * (c / per_table)) & 0x00fffffffffffe00ULL;
	if (l2)
		e = be64_at(fd, l2 + 8 * (c % per_table));
	close(fd);
	return e;
}

/* @n requests of @op, one cluster (or @len bytes) at guest cluster offsets[i], data gen @gen. */
static void run_clusters(struct engfx_dev *dev, enum blockdev_op op, const uint64_t *clusters,
			 int n, size_t len, uint32_t gen, uint8_t *buf)
{
	struct engfx_req *reqs = calloc((size_t)n, sizeof(*reqs));
	int count = n;

	for (int i = 0; i < n; i++) {
		uint8_t *p = buf + (size_t)i * len;

		if (op == BLOCKDEV_OP_WRITE)
			for (size_t k = 0; k < len; k++)
				p[k] = engfx_byte((uint32_t)clusters[i], gen, k);
		else
			memset(p, 0xee, len);
		reqs[i].req.op = op;
		reqs[i].req.offset = clusters[i] * CL;
		reqs[i].iov[0] = (struct iovec){ p, len };
		reqs[i].req.iov = reqs[i].iov;
		reqs[i].req.iovcnt = 1;
	}
	engfx_run_lists(dev, 1, &reqs, &count, 16);
	free(reqs);
}

static void expect_clusters(const uint64_t *clusters, int n, size_t len, uint32_t gen,
			    const uint8_t *buf)
{
	for (int i = 0; i < n; i++)
		for (size_t k = 0; k < len; k++)
			if (buf[(size_t)i * len + k] != engfx_byte((uint32_t)clusters[i], gen, k))
				fail_msg("cluster %llu byte %zu: 0x%02x, wrote 0x%02x",
					 (unsigned long long)clusters[i], k,
					 buf[(size_t)i * len + k],
					 engfx_byte((uint32_t)clusters[i], gen, k));
}

static void flush(struct engfx_dev *dev)
{
	struct engfx_req r = { .req = { .op = BLOCKDEV_OP_FLUSH } };
	struct engfx_req *list = &r;
	int one = 1;

	engfx_run_lists(dev, 1, &list, &one, 1);
}

static void check_clean(struct blockdev *bs)
{
	struct blockdev_check_result cr;

	assert_int_equal(qcow2_check(bs, 0, &cr, NULL), 0);
	assert_int_equal(cr.corruptions, 0);
	assert_int_equal(cr.leaks, 0);
}

static void allocating_writes_reach_the_file_after_a_flush_and_are_read_before(void **state)
{
	enum { N = 16 };
	uint64_t clusters[N];
	static uint8_t buf[N * CL];
	struct engfx_dev dev = { 0 };
	struct blockdev *bs;

	for (int i = 0; i < N; i++)
		clusters[i] = 3 + 2 * (uint64_t)i;
	create(64u << 20);
	bs = engfx_open_image(img, "qcow2", "writeback", false, NULL, NULL);
	engfx_devs_open(&dev, 1, bs, "lazy");
	run_clusters(&dev, BLOCKDEV_OP_WRITE, clusters, N, CL, 1, buf);
	for (int i = 0; i < N; i++) /* mapped in the cache only */
		assert_int_equal(file_entry(clusters[i]), 0);
	run_clusters(&dev, BLOCKDEV_OP_READ, clusters, N, CL, 1, buf);
	expect_clusters(clusters, N, CL, 1, buf);
	flush(&dev);
	for (int i = 0; i < N; i++)
		assert_true(file_entry(clusters[i]) & QCOW2_OFLAG_COPIED);
	engfx_devs_close(&dev, 1);
	check_clean(bs);
	blockdev_close(bs);
	/* a new open reads what the file has */
	bs = engfx_open_image(img, "qcow2", "writeback", false, NULL, NULL);
	for (int i = 0; i < N; i++)
		assert_int_equal(blockdev_pread(bs, clusters[i] * CL, buf + (size_t)i * CL, CL), 0);
	expect_clusters(clusters, N, CL, 1, buf);
	blockdev_close(bs);
	unlink(img);
}

/*
 * A cache of one set (8 slices) and writes in 48 slices: slices holding lazy entries are
 * evicted and loaded again from the file. Reads find the data, writes again to the same
 * clusters write in place (no second allocation: check finds no leak), close writes it all.
 */
static void slices_loaded_again_keep_their_lazy_entries(void **state)
{
	enum { N = 48 };
	uint64_t clusters[N];
	static uint8_t buf[N * 4096];
	struct engfx_dev dev = { 0 };
	struct blockdev *bs;

	for (int i = 0; i < N; i++)
		clusters[i] = (uint64_t)i * SLICE_CLUSTERS + (uint64_t)(i % 7);
	create((uint64_t)N * SLICE_CLUSTERS * CL);
	bs = engfx_open_image(img, "qcow2", "writeback", false, "l2-cache-size", "4096");
	engfx_devs_open(&dev, 1, bs, "lazy");
	run_clusters(&dev, BLOCKDEV_OP_WRITE, clusters, N, 4096, 1, buf);
	/* a new L2 table's barrier wrote the entries before it; the last ones wait */
	assert_int_equal(file_entry(clusters[N - 1]), 0);
	run_clusters(&dev, BLOCKDEV_OP_READ, clusters, N, 4096, 1, buf);
	expect_clusters(clusters, N, 4096, 1, buf);
	run_clusters(&dev, BLOCKDEV_OP_WRITE, clusters, N, 4096, 2, buf);
	run_clusters(&dev, BLOCKDEV_OP_READ, clusters, N, 4096, 2, buf);
	expect_clusters(clusters, N, 4096, 2, buf);
	engfx_devs_close(&dev, 1);
	check_clean(bs); /* check reads the tables from the file: the entries go there first */
	assert_true(file_entry(clusters[N - 1]) & QCOW2_OFLAG_COPIED);
	blockdev_close(bs);
	bs = engfx_open_image(img, "qcow2", "writeback", false, NULL, NULL);
	for (int i = 0; i < N; i++)
		assert_int_equal(blockdev_pread(bs, clusters[i] * CL, buf + (size_t)i * 4096, 4096),
				 0);
	expect_clusters(clusters, N, 4096, 2, buf);
	blockdev_close(bs);
	unlink(img);
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/lazy.qcow2", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(img);
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(allocating_writes_reach_the_file_after_a_flush_and_are_read_before),
		cmocka_unit_test(slices_loaded_again_keep_their_lazy_entries),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
