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
#include "blockdev/vmdk.h"
#include "common/util.h"
#include "iothreads/iothread.h"

#define IMG_SIZE (8u << 20)
#define BLK 4096u
#define NBLK (IMG_SIZE / BLK)
#define NDEV 2

struct dev;

struct treq {
	struct blockdev_req req;
	struct iovec iov;
	struct dev *d; /* the device that submitted it */
	int calls, ret;
};

/* one iothread's requester: its queue and its share of the requests */
struct dev {
	struct iothread_source src;
	struct iothread *it;
	struct blockdev_queue *q;
	struct treq *reqs;
	int n, next, inflight, completed, qd;
	atomic_bool go;
	sem_t finished;
};

static struct dev devs[NDEV];
static char dir[] = "/var/tmp/vireo-vmdk-eng.XXXXXX";
static char img[256];
static struct blockdev *bs;

static struct dev *dev_of(struct iothread_source *s)
{
	return container_of(s, struct dev, src);
}

/* On the submitting device's iothread: its own counters only. */
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
	struct dev *d = dev_of(s);
	int taken = 0;

	if (!atomic_load(&d->go))
		return 0;
	while (d->next < d->n && d->inflight < d->qd) {
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

/* Each device runs its @n requests (@qd in flight), all at once; all must succeed. */
static void run(struct treq **reqs, const int *n, int qd)
{
	struct timespec ts;
	uint64_t one = 1;

	for (int i = 0; i < NDEV; i++) {
		struct dev *d = &devs[i];

		d->reqs = reqs[i];
		d->n = n[i];
		d->next = d->completed = d->inflight = 0;
		d->qd = qd;
		atomic_store(&d->go, n[i] > 0);
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
				fail_msg("device %d request %d (%s at %llu): %s", i, j,
					 reqs[i][j].req.op == BLOCKDEV_OP_READ ? "read" : "write",
					 (unsigned long long)reqs[i][j].req.offset,
					 strerror(-reqs[i][j].ret));
		}
}

static uint8_t byte_of(uint32_t blk, uint32_t gen, size_t i)
{
	return gen ? (uint8_t)(blk * 7 + gen * 31 + i * 13 + 1) : 0;
}

static int free_queue(void *arg)
{
	struct dev *d = arg;
	int ret = blockdev_queue_drain(d->q);

	blockdev_queue_free(d->q);
	return ret;
}

struct variant {
	const char *subformat;
	const char *cache;
	bool zeroed;
};

static struct blockdev *open_img(const char *cache, bool readonly)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *b;

	blockdev_opts_set(&o, "format", "vmdk", NULL);
	blockdev_opts_set(&o, "cache", cache, NULL);
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

static void queues_open(void)
{
	struct iothread_opts io = { .poll_max_ns = 0 };
	struct error *err = NULL;

	for (int i = 0; i < NDEV; i++) {
		struct dev *d = &devs[i];
		char name[8];

		snprintf(name, sizeof(name), "vm%d", i);
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

/* Every block, read through the engine by both devices (each half), matches the model. */
static void expect_model(const uint32_t *gen, uint8_t *rbuf)
{
	struct treq *reqs[NDEV];
	int n[NDEV] = { 0 };

	for (int i = 0; i < NDEV; i++)
		reqs[i] = calloc(NBLK, sizeof(struct treq));
	memset(rbuf, 0xee, IMG_SIZE);
	for (uint32_t b = 0; b < NBLK; b++) {
		int d = (int)(b / 7 % NDEV);

		set_req(&reqs[d][n[d]++], BLOCKDEV_OP_READ, (uint64_t)b * BLK,
			rbuf + (size_t)b * BLK, BLK);
	}
	run(reqs, n, 16);
	for (size_t i = 0; i < IMG_SIZE; i++) {
		uint32_t b = (uint32_t)(i / BLK);

		if (rbuf[i] != byte_of(b, gen[b], i % BLK))
			fail_msg("block %u byte %zu: 0x%02x, not 0x%02x", b, i % BLK, rbuf[i],
				 byte_of(b, gen[b], i % BLK));
	}
	for (int i = 0; i < NDEV; i++)
		free(reqs[i]);
}

static void interleaved_writes_from_two_iothreads_read_back(void **state)
{
	const struct variant *v = *state;
	uint32_t *gen = calloc(NBLK, sizeof(*gen));
	struct treq *reqs[NDEV];
	uint8_t *wbuf = NULL, *rbuf = NULL;
	int n[NDEV] = { 0 };
	unsigned seed = 3;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, IMG_SIZE), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, IMG_SIZE), 0);
	for (int i = 0; i < NDEV; i++)
		reqs[i] = calloc(NBLK, sizeof(struct treq));
	snprintf(img, sizeof(img), "%s/d.vmdk", dir);
	create(v->subformat, v->zeroed);
	bs = open_img(v->cache, false);
	queues_open();
	/* every block once, half the disk: block b to device b % 2, grains shared by both */
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
	/* some written blocks zeroed again, a whole grain among them */
	n[0] = n[1] = 0;
	for (uint32_t b = 0; b < 16; b++) {
		gen[b] = 0;
		set_req(&reqs[0][n[0]++], BLOCKDEV_OP_WRITE_ZEROES, (uint64_t)b * BLK, NULL, BLK);
	}
	gen[100] = 0;
	set_req(&reqs[1][n[1]++], BLOCKDEV_OP_WRITE_ZEROES, 100 * BLK, NULL, BLK);
	set_req(&reqs[1][n[1]++], BLOCKDEV_OP_FLUSH, 0, NULL, 0);
	run(reqs, n, 8);
	expect_model(gen, rbuf);
	expect_model(gen, rbuf); /* warm: the tables are loaded, reads go to the fast path */
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
	expect_model(gen, rbuf);
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
			wbuf[(size_t)b * BLK + j] = byte_of(b, gen[b], j);
	}
	/* in pieces: whole grains, partial ones, a hole */
	assert_int_equal(blockdev_pwrite(w, 0, wbuf, 3 << 20), 0);
	assert_int_equal(blockdev_pwrite(w, 3 << 20, wbuf + (3 << 20), 5000), 0);
	assert_int_equal(blockdev_pwrite(w, (3 << 20) + 5000, wbuf + (3 << 20) + 5000,
					 IMG_SIZE - (3 << 20) - 5000), 0);
	blockdev_close(w);
	bs = open_img("writeback", true);
	queues_open();
	expect_model(gen, rbuf);
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
