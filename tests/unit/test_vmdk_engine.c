/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmdk on the asynchronous path: two iothreads, each with its queue on the same node, submit
 * requests that go through vmdk's map() (DATA extents of allocated grains and flat extents to
 * the io_uring engine, ZERO for unallocated grains, SLOW for table misses, allocation and
 * compressed grains to the slow-path worker). The two threads write interleaved 4 KiB blocks,
 * so that both allocate the same grains at once; everything reads back as the model says,
 * through the engine (cold tables, then warm) and after the image is closed, flushed and opened
 * again; the image checks clean. A streamOptimized image is read by both threads at once.
 * Variants: monolithicSparse (writeback and O_DIRECT), zeroed grains, twoGbMaxExtentFlat, and
 * a descriptor whose extents are a flat file, a sparse file and another range of the flat one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/create.h"
#include "blockdev/vmdk.h"
#include "common/util.h"
#include "iothreads/iothread.h"
#include "tests/unit/engine_fixture.h"

#define IMG_SIZE (8u << 20)
#define BLK 4096u
#define NBLK (IMG_SIZE / BLK)
#define NDEV 2

static struct engfx_dev devs[NDEV];
static char dir[] = "/var/tmp/vireo-vmdk-eng.XXXXXX";
static char img[256];
static struct blockdev *bs;

struct variant {
	const char *subformat;
	const char *cache;
	bool zeroed;
};

static struct blockdev *open_img(const char *cache, bool readonly)
{
	struct blockdev *b = engfx_open_image(img, "vmdk", cache, readonly, NULL, NULL);

	if (!b)
		skip();
	return b;
}

static void queues_open(void)
{
	engfx_devs_open(devs, NDEV, bs, "vm");
}

static void queues_close(void)
{
	engfx_devs_close(devs, NDEV);
}

static void create_at(const char *path, uint64_t size, const char *subformat, bool zeroed)
{
	struct blockdev_opt o[2] = { { "subformat", (char *)subformat },
				     { "zeroed_grain", zeroed ? "on" : "off" } };
	struct blockdev_create_ctx ctx;
	struct error *err = NULL;

	if (blockdev_create_prepare(&ctx, &blockdev_vmdk, path, size, o,
				    strstr(subformat, "Flat") ? 1 : 2, &err) ||
	    blockdev_create_run(&ctx, &err))
		fail_msg("create: %s", error_msg(err));
	blockdev_create_free(&ctx);
}

/* "mixed": a descriptor of three extents, a flat file, a sparse file and a flat range of the
 * same first file after its first range: requests cross from one file to another */
static void create(const char *subformat, bool zeroed)
{
	char path[300];
	FILE *f;

	if (strcmp(subformat, "mixed")) {
		create_at(img, IMG_SIZE, subformat, zeroed);
		return;
	}
	snprintf(path, sizeof(path), "%s/d-a.raw", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 4u << 20), 0);
	fclose(f);
	snprintf(path, sizeof(path), "%s/d-b.vmdk", dir);
	create_at(path, 3u << 20, "monolithicSparse", zeroed);
	f = fopen(img, "w");
	assert_non_null(f);
	fprintf(f, "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n"
		"createType=\"custom\"\nRW %u FLAT \"d-a.raw\" 0\nRW %u SPARSE \"d-b.vmdk\"\n"
		"RW %u FLAT \"d-a.raw\" %u\n", (3u << 20) / 512, (3u << 20) / 512,
		(2u << 20) / 512, (3u << 20) / 512);
	fclose(f);
}


static void interleaved_writes_from_two_iothreads_read_back(void **state)
{
	const struct variant *v = *state;
	uint32_t *gen = calloc(NBLK, sizeof(*gen));
	struct engfx_req *reqs[NDEV];
	uint8_t *wbuf = NULL, *rbuf = NULL;
	int n[NDEV] = { 0 };
	unsigned seed = 3;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, IMG_SIZE), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, IMG_SIZE), 0);
	for (int i = 0; i < NDEV; i++)
		reqs[i] = calloc(NBLK, sizeof(struct engfx_req));
	snprintf(img, sizeof(img), "%s/d.vmdk", dir);
	create(v->subformat, v->zeroed);
	bs = open_img(v->cache, false);
	queues_open();
	/* every block once, half the disk: block b to device b % 2, grains shared by both */
	engfx_add_half_writes(reqs, n, NDEV, wbuf, gen, NBLK, BLK, &seed);
	engfx_run_lists(devs, NDEV, reqs, n, 32);
	/* some written blocks zeroed again, a whole grain among them */
	n[0] = n[1] = 0;
	for (uint32_t b = 0; b < 16; b++) {
		gen[b] = 0;
		engfx_set(&reqs[0][n[0]++], BLOCKDEV_OP_WRITE_ZEROES, (uint64_t)b * BLK, NULL, BLK);
	}
	gen[100] = 0;
	engfx_set(&reqs[1][n[1]++], BLOCKDEV_OP_WRITE_ZEROES, 100 * BLK, NULL, BLK);
	engfx_set(&reqs[1][n[1]++], BLOCKDEV_OP_FLUSH, 0, NULL, 0);
	engfx_run_lists(devs, NDEV, reqs, n, 8);
	engfx_read_model(devs, NDEV, gen, rbuf, NBLK, BLK);
	/* warm: the tables are loaded, reads go to the fast path */
	engfx_read_model(devs, NDEV, gen, rbuf, NBLK, BLK);
	queues_close();
	blockdev_close(bs);

	/* opened again (the tables were written at close), checked, read through the engine */
	bs = open_img(v->cache, true);
	{
		struct blockdev_check_result cr;

		assert_int_equal(blockdev_check(bs, 0, &cr, NULL), 0);
		assert_int_equal(cr.corruptions, 0);
	}
	queues_open();
	engfx_read_model(devs, NDEV, gen, rbuf, NBLK, BLK);
	queues_close();
	blockdev_close(bs);
	for (int i = 0; i < NDEV; i++)
		free(reqs[i]);
	free(gen);
	free(wbuf);
	free(rbuf);
	assert_int_equal(system("rm -f /var/tmp/vireo-vmdk-eng.*/d*"), 0);
}

/* A streamOptimized image (compressed grains: the slow path) read by both iothreads at once. */
static void a_stream_image_is_read_from_two_iothreads(void **state)
{
	uint32_t *gen = calloc(NBLK, sizeof(*gen));
	uint8_t *wbuf = NULL, *rbuf = NULL;
	struct blockdev_opts o = { 0 };
	struct blockdev *w;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, IMG_SIZE), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, IMG_SIZE), 0);
	snprintf(img, sizeof(img), "%s/s.vmdk", dir);
	create("streamOptimized", false);
	blockdev_opts_set(&o, "format", "vmdk", NULL);
	blockdev_opts_set(&o, "metadata-barriers", "off", NULL);
	w = blockdev_open(img, &o, NULL);
	blockdev_opts_free(&o);
	assert_non_null(w);
	for (uint32_t b = 0; b < NBLK; b++) {
		gen[b] = b % 3 ? 2 : 0;
		for (size_t j = 0; j < BLK; j++)
			wbuf[(size_t)b * BLK + j] = engfx_byte(b, gen[b], j);
	}
	/* in pieces: whole grains, partial ones, a hole */
	assert_int_equal(blockdev_pwrite(w, 0, wbuf, 3 << 20), 0);
	assert_int_equal(blockdev_pwrite(w, 3 << 20, wbuf + (3 << 20), 5000), 0);
	assert_int_equal(blockdev_pwrite(w, (3 << 20) + 5000, wbuf + (3 << 20) + 5000,
					 IMG_SIZE - (3 << 20) - 5000), 0);
	blockdev_close(w);
	bs = open_img("writeback", true);
	queues_open();
	engfx_read_model(devs, NDEV, gen, rbuf, NBLK, BLK);
	queues_close();
	blockdev_close(bs);
	free(gen);
	free(wbuf);
	free(rbuf);
}

static int setup(void **state)
{
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

int main(void)
{
	static const struct variant sparse = { "monolithicSparse", "writeback", false };
	static const struct variant sparse_direct = { "monolithicSparse", "none", false };
	static const struct variant zeroed = { "monolithicSparse", "writeback", true };
	static const struct variant flat = { "twoGbMaxExtentFlat", "writeback", false };
	static const struct variant mixed = { "mixed", "none", false };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&sparse),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&sparse_direct),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&zeroed),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&flat),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&mixed),
		cmocka_unit_test(a_stream_image_is_read_from_two_iothreads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
