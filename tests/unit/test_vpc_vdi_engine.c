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
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/create.h"
#include "blockdev/vdi.h"
#include "blockdev/vpc.h"
#include "common/util.h"
#include "iothreads/iothread.h"

#define IMG_SIZE (8u << 20)
#define BLK 4096u
#define NBLK (IMG_SIZE / BLK)
#define NDEV 2

struct treq {
	struct blockdev_req req;
	struct iovec iov;
	struct dev *d;
	int calls, ret;
};

/* One iothread's requester: its queue and its list of requests. */
struct dev {
	struct iothread_source src;
	struct iothread *it;
	struct blockdev_queue *q;
	struct treq *reqs;
	int n, next, inflight, completed, qd;
	atomic_bool go;
	sem_t finished;
};

struct variant {
	const struct blockdev_driver *drv;
	const char *key, *value; /* the create option that picks the subformat */
	const char *cache;
};

static struct dev devs[NDEV];
static char dir[] = "/var/tmp/vireo-vpc-vdi-eng.XXXXXX";
static char img[300];
static struct blockdev *bs;

/* On the device's iothread: its own counters only. */
static void done(struct blockdev_req *req, int ret)
{
	struct treq *t = container_of(req, struct treq, req);
	struct dev *d = t->d;

	t->calls++;
	t->ret = ret;
	d->inflight--;
	if (++d->completed == d->n) {
		atomic_store(&d->go, false);
		sem_post(&d->finished);
	}
}

static int dev_poll(struct iothread_source *s)
{
	struct dev *d = container_of(s, struct dev, src);
	int taken = 0;

	while (atomic_load(&d->go) && d->next < d->n && d->inflight < d->qd) {
		struct treq *t = &d->reqs[d->next++];

		t->req.done = done;
		t->d = d;
		d->inflight++;
		blockdev_submit(d->q, &t->req);
		taken++;
	}
	return taken;
}

static void dev_flush(struct iothread_source *s)
{
}

/* Each device runs its requests, @qd in flight; every one must succeed, once. */
static void run(struct treq **reqs, const int *n, int qd)
{
	struct timespec ts;
	uint64_t one = 1;

	for (int i = 0; i < NDEV; i++) {
		devs[i].reqs = reqs[i];
		devs[i].n = n[i];
		devs[i].next = devs[i].completed = devs[i].inflight = 0;
		devs[i].qd = qd;
		atomic_store(&devs[i].go, n[i] > 0);
	}
	for (int i = 0; i < NDEV; i++)
		assert_int_equal(write(devs[i].src.kick_fd, &one, sizeof(one)), sizeof(one));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 120;
	for (int i = 0; i < NDEV; i++)
		while (n[i] && sem_timedwait(&devs[i].finished, &ts) < 0)
			assert_int_equal(errno, EINTR);
	for (int i = 0; i < NDEV; i++)
		for (int j = 0; j < n[i]; j++) {
			assert_int_equal(reqs[i][j].calls, 1);
			if (reqs[i][j].ret)
				fail_msg("device %d request %d at %llu: %s", i, j,
					 (unsigned long long)reqs[i][j].req.offset,
					 strerror(-reqs[i][j].ret));
		}
}

static int free_queue(void *arg)
{
	struct dev *d = arg;
	int ret = blockdev_queue_drain(d->q);

	blockdev_queue_free(d->q);
	return ret;
}

static void queues_open(void)
{
	struct iothread_opts io = { .poll_max_ns = 0 };
	struct error *err = NULL;

	for (int i = 0; i < NDEV; i++) {
		struct dev *d = &devs[i];
		char name[8];

		snprintf(name, sizeof(name), "vv%d", i);
		d->it = iothread_create(name, &io, &err);
		assert_non_null(d->it);
		d->q = blockdev_queue_new(bs, d->it, &err);
		assert_non_null(d->q);
		d->src.poll = dev_poll;
		d->src.flush = dev_flush;
		d->src.kick_fd = eventfd(0, EFD_CLOEXEC);
		sem_init(&d->finished, 0, 0);
		assert_int_equal(iothread_add_source(d->it, &d->src, NULL), 0);
	}
}

static void queues_close(void)
{
	for (int i = 0; i < NDEV; i++) {
		struct dev *d = &devs[i];

		iothread_remove_source(d->it, &d->src);
		assert_int_equal(iothread_run_sync(d->it, free_queue, d), 0);
		iothread_destroy(d->it);
		close(d->src.kick_fd);
		sem_destroy(&d->finished);
	}
}

static struct blockdev *open_img(const struct variant *v, bool readonly)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *b;

	blockdev_opts_set(&o, "format", v->drv->name, NULL);
	blockdev_opts_set(&o, "cache", v->cache, NULL);
	o.readonly = readonly;
	b = blockdev_open(img, &o, &err);
	blockdev_opts_free(&o);
	if (!b && strstr(error_msg(err), "O_DIRECT")) {
		print_message("skipped: %s\n", error_msg(err));
		error_free(err);
		skip();
	}
	if (!b)
		fail_msg("open: %s", error_msg(err));
	return b;
}

static void set_req(struct treq *t, enum blockdev_op op, uint64_t off, void *p, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->req.op = op;
	t->req.offset = off;
	t->req.len = len;
	t->iov = (struct iovec){ p, len };
	t->req.iov = p ? &t->iov : NULL;
	t->req.iovcnt = p ? 1 : 0;
}

static uint8_t byte_of(uint32_t blk, uint32_t gen, size_t i)
{
	return gen ? (uint8_t)(blk * 7 + gen * 31 + i * 13 + 1) : 0;
}

static void check_model(const uint32_t *gen, const uint8_t *rbuf)
{
	for (size_t i = 0; i < IMG_SIZE; i++) {
		uint32_t b = (uint32_t)(i / BLK);

		if (rbuf[i] != byte_of(b, gen[b], i % BLK))
			fail_msg("block %u byte %zu: 0x%02x, not 0x%02x", b, i % BLK, rbuf[i],
				 byte_of(b, gen[b], i % BLK));
	}
}

/* Every block read through the engine, 7-block runs to each device in turn. */
static void engine_reads_model(const uint32_t *gen, uint8_t *rbuf)
{
	struct treq *reqs[NDEV];
	int n[NDEV] = { 0 };

	for (int i = 0; i < NDEV; i++)
		reqs[i] = calloc(NBLK, sizeof(struct treq));
	memset(rbuf, 0xee, IMG_SIZE);
	for (uint32_t b = 0; b < NBLK; b++) {
		int d = (int)(b / 7 % NDEV);

		set_req(&reqs[d][n[d]++], BLOCKDEV_OP_READ, (uint64_t)b * BLK,
			(uint8_t *)rbuf + (size_t)b * BLK, BLK);
	}
	run(reqs, n, 16);
	check_model(gen, rbuf);
	for (int i = 0; i < NDEV; i++)
		free(reqs[i]);
}

static void interleaved_writes_from_two_iothreads_read_back(void **state)
{
	const struct variant *v = *state;
	struct blockdev_opt opt = { (char *)v->key, (char *)v->value };
	uint32_t *gen = calloc(NBLK, sizeof(*gen));
	struct blockdev_create_ctx ctx;
	struct treq *reqs[NDEV];
	uint8_t *wbuf = NULL, *rbuf = NULL;
	int n[NDEV] = { 0 };
	unsigned int seed = 7;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, IMG_SIZE), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, IMG_SIZE), 0);
	for (int i = 0; i < NDEV; i++)
		reqs[i] = calloc(NBLK, sizeof(struct treq));
	snprintf(img, sizeof(img), "%s/d.%s", dir, v->drv->name);
	assert_int_equal(blockdev_create_prepare(&ctx, v->drv, img, IMG_SIZE, &opt, 1, NULL), 0);
	assert_int_equal(blockdev_create_run(&ctx, NULL), 0);
	blockdev_create_free(&ctx);
	bs = open_img(v, false);
	assert_true(bs->size >= IMG_SIZE);
	queues_open();
	/* about half the blocks, block b from device b % 2: the same disk blocks from both */
	for (uint32_t b = 0; b < NBLK; b++) {
		uint8_t *p = wbuf + (size_t)b * BLK;
		int d = (int)(b % NDEV);

		if (rand_r(&seed) % 2)
			continue;
		gen[b] = 1;
		for (size_t j = 0; j < BLK; j++)
			p[j] = byte_of(b, 1, j);
		set_req(&reqs[d][n[d]++], BLOCKDEV_OP_WRITE, (uint64_t)b * BLK, p, BLK);
	}
	run(reqs, n, 32);
	/* zeroes and discards over written and unwritten blocks, then a flush */
	n[0] = n[1] = 0;
	for (uint32_t b = 0; b < 16; b++) {
		gen[b] = 0;
		set_req(&reqs[0][n[0]++], BLOCKDEV_OP_WRITE_ZEROES, (uint64_t)b * BLK, NULL, BLK);
	}
	for (uint32_t b = 600; b < 700; b++)
		gen[b] = 0;
	set_req(&reqs[1][n[1]++], BLOCKDEV_OP_DISCARD, 600 * BLK, NULL, 100 * BLK);
	set_req(&reqs[1][n[1]++], BLOCKDEV_OP_FLUSH, 0, NULL, 0);
	run(reqs, n, 8);
	engine_reads_model(gen, rbuf);
	queues_close();
	blockdev_close(bs);

	/* the table reached the file: the same through the synchronous path */
	bs = open_img(v, true);
	memset(rbuf, 0xee, IMG_SIZE);
	assert_int_equal(blockdev_pread(bs, 0, rbuf, IMG_SIZE), 0);
	check_model(gen, rbuf);
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
