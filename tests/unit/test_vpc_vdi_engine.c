/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vpc and vdi on the asynchronous path: two iothreads, each with its queue on the same node,
 * submit requests that go through the block table's map() (DATA extents of allocated blocks to
 * the io_uring engine, ZERO for unallocated ones, SLOW for writes to them, which the node's
 * worker allocates). The two threads write interleaved 4 KiB pieces, so that both reach the
 * same unallocated blocks at once, then zero and discard some (the engine zeroes and punches
 * the file under allocated blocks); everything reads back as the model says through the engine
 * and, once the node is closed and opened again, through the synchronous path; a VDI checks
 * clean. Variants: dynamic VHD and VDI (page cache and O_DIRECT), fixed VHD, static VDI.
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
#include "blockdev/vdi.h"
#include "blockdev/vpc.h"
#include "common/util.h"
#include "iothreads/iothread.h"
#include "tests/unit/engine_fixture.h"

#define IMG_SIZE (8u << 20)
#define BLK 4096u
#define NBLK (IMG_SIZE / BLK)
#define NDEV 2

struct variant {
	const struct blockdev_driver *drv;
	const char *key, *value; /* the create option that picks the subformat */
	const char *cache;
};

static struct engfx_dev devs[NDEV];
static char dir[] = "/var/tmp/vireo-vpc-vdi-eng.XXXXXX";
static char img[300];
static struct blockdev *bs;

static void queues_open(void)
{
	engfx_devs_open(devs, NDEV, bs, "vv");
}

static void queues_close(void)
{
	engfx_devs_close(devs, NDEV);
}

static struct blockdev *open_img(const struct variant *v, bool readonly)
{
	struct blockdev *b = engfx_open_image(img, v->drv->name, v->cache, readonly, NULL, NULL);

	if (!b)
		skip();
	return b;
}


static void interleaved_writes_from_two_iothreads_read_back(void **state)
{
	const struct variant *v = *state;
	struct blockdev_opt opt = { (char *)v->key, (char *)v->value };
	uint32_t *gen = calloc(NBLK, sizeof(*gen));
	struct blockdev_create_ctx ctx;
	struct engfx_req *reqs[NDEV];
	uint8_t *wbuf = NULL, *rbuf = NULL;
	int n[NDEV] = { 0 };
	unsigned int seed = 7;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, IMG_SIZE), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, IMG_SIZE), 0);
	for (int i = 0; i < NDEV; i++)
		reqs[i] = calloc(NBLK, sizeof(struct engfx_req));
	snprintf(img, sizeof(img), "%s/d.%s", dir, v->drv->name);
	assert_int_equal(blockdev_create_prepare(&ctx, v->drv, img, IMG_SIZE, &opt, 1, NULL), 0);
	assert_int_equal(blockdev_create_run(&ctx, NULL), 0);
	blockdev_create_free(&ctx);
	bs = open_img(v, false);
	assert_true(bs->size >= IMG_SIZE);
	queues_open();
	/* about half the blocks, block b from device b % 2: the same disk blocks from both */
	engfx_add_half_writes(reqs, n, NDEV, wbuf, gen, NBLK, BLK, &seed);
	engfx_run_lists(devs, NDEV, reqs, n, 32);
	/* zeroes and discards over written and unwritten blocks, then a flush */
	n[0] = n[1] = 0;
	for (uint32_t b = 0; b < 16; b++) {
		gen[b] = 0;
		engfx_set(&reqs[0][n[0]++], BLOCKDEV_OP_WRITE_ZEROES, (uint64_t)b * BLK, NULL, BLK);
	}
	for (uint32_t b = 600; b < 700; b++)
		gen[b] = 0;
	engfx_set(&reqs[1][n[1]++], BLOCKDEV_OP_DISCARD, 600 * BLK, NULL, 100 * BLK);
	engfx_set(&reqs[1][n[1]++], BLOCKDEV_OP_FLUSH, 0, NULL, 0);
	engfx_run_lists(devs, NDEV, reqs, n, 8);
	engfx_read_model(devs, NDEV, gen, rbuf, NBLK, BLK);
	queues_close();
	blockdev_close(bs);

	/* the table reached the file: the same through the synchronous path */
	bs = open_img(v, true);
	memset(rbuf, 0xee, IMG_SIZE);
	assert_int_equal(blockdev_pread(bs, 0, rbuf, IMG_SIZE), 0);
	engfx_check_model(gen, rbuf, NBLK, BLK);
	if (bs->drv->check) {
		struct blockdev_check_result cr;

		assert_int_equal(blockdev_check(bs, 0, &cr, NULL), 0);
		assert_int_equal(cr.corruptions, 0);
	}
	blockdev_close(bs);
	unlink(img);
	for (int i = 0; i < NDEV; i++)
		free(reqs[i]);
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
	return rmdir(dir);
}

int main(void)
{
	static const struct variant vpc_dyn = { &blockdev_vpc, "subformat", "dynamic", "writeback" };
	static const struct variant vpc_dyn_direct = { &blockdev_vpc, "subformat", "dynamic", "none" };
	static const struct variant vpc_fixed = { &blockdev_vpc, "subformat", "fixed", "writeback" };
	static const struct variant vdi_dyn = { &blockdev_vdi, "static", "off", "writeback" };
	static const struct variant vdi_dyn_direct = { &blockdev_vdi, "static", "off", "none" };
	static const struct variant vdi_static = { &blockdev_vdi, "static", "on", "none" };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&vpc_dyn),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&vpc_dyn_direct),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&vpc_fixed),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&vdi_dyn),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&vdi_dyn_direct),
		cmocka_unit_test_prestate(interleaved_writes_from_two_iothreads_read_back,
					  (void *)&vdi_static),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
