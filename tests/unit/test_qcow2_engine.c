/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 on the asynchronous path: requests submitted on an iothread go through qcow2's map()
 * (DATA extents to the io_uring engine, ZERO, BACKING to the backing file, SLOW for allocation
 * and cache misses to the slow-path worker). Random 4 KiB writes over a backing file, then
 * reads of every block, must give the model's content; the image must check clean afterwards.
 * Many allocating writes in flight at once go to the worker together and are committed as a
 * group: those sharing a cluster and those on distinct clusters must all read back, and one
 * failing write must fail alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "common/util.h"
#include "iothreads/iothread.h"

#define IMG_SIZE (8u << 20)
#define BASE_SIZE (6u << 20) /* shorter than the image: the tail reads zeroes */
#define BLK 4096u
#define NBLK (IMG_SIZE / BLK)

struct treq {
	struct blockdev_req req;
	struct iovec iov;
	int calls, ret;
};

struct dev {
	struct iothread_source src;
	struct blockdev_queue *q;
	struct treq *reqs;
	int n, next, inflight, completed, qd;
	atomic_bool go;
	sem_t finished;
};

static struct dev dev;
static char dir[] = "/var/tmp/vireo-qcow2-eng.XXXXXX";
static char img[256], base[256];

static void done(struct blockdev_req *req, int ret)
{
	struct treq *t = container_of(req, struct treq, req);

	t->calls++;
	t->ret = ret;
	dev.inflight--;
	if (++dev.completed == dev.n) {
		atomic_store(&dev.go, false);
		sem_post(&dev.finished);
	}
}

static int dev_poll(struct iothread_source *s)
{
	int taken = 0;

	if (!atomic_load(&dev.go))
		return 0;
	while (dev.next < dev.n && dev.inflight < dev.qd) {
		struct treq *t = &dev.reqs[dev.next++];

		t->req.done = done;
		dev.inflight++;
		blockdev_submit(dev.q, &t->req);
		taken++;
	}
	return taken;
}

static void dev_flush(struct iothread_source *s)
{
}

/* Runs @n requests, @qd in flight; all must succeed but request @bad, which must fail with
 * @bad_ret. */
static void run_expect(struct treq *reqs, int n, int qd, int bad, int bad_ret)
{
	struct timespec ts;
	uint64_t one = 1;

	dev.reqs = reqs;
	dev.n = n;
	dev.next = dev.completed = dev.inflight = 0;
	dev.qd = qd;
	atomic_store(&dev.go, true);
	assert_int_equal(write(dev.src.kick_fd, &one, sizeof(one)), sizeof(one));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 120;
	while (sem_timedwait(&dev.finished, &ts) < 0)
		assert_int_equal(errno, EINTR);
	for (int i = 0; i < n; i++) {
		assert_int_equal(reqs[i].calls, 1);
		if (i == bad) {
			if (reqs[i].ret != bad_ret)
				fail_msg("request %d: %d, expected %d", i, reqs[i].ret, bad_ret);
		} else if (reqs[i].ret)
			fail_msg("request %d (%s at %llu) failed: %s", i,
				 reqs[i].req.op == BLOCKDEV_OP_READ ? "read" : "write",
				 (unsigned long long)reqs[i].req.offset, strerror(-reqs[i].ret));
	}
}

static void run(struct treq *reqs, int n, int qd)
{
	run_expect(reqs, n, qd, -1, 0);
}

static uint8_t byte_of(uint32_t blk, uint32_t gen, size_t i)
{
	return (uint8_t)(blk * 7 + gen * 31 + i * 13 + 1);
}

static int free_queue(void *arg)
{
	int ret = blockdev_queue_drain(dev.q);

	blockdev_queue_free(dev.q);
	return ret;
}

static void make_base(void)
{
	uint8_t *b = malloc(BASE_SIZE);
	int fd = open(base, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	for (size_t i = 0; i < BASE_SIZE; i++)
		b[i] = byte_of((uint32_t)(i / BLK), 0, i % BLK);
	assert_int_equal(write(fd, b, BASE_SIZE), BASE_SIZE);
	close(fd);
	free(b);
}

struct variant {
	bool ext;
	const char *cache;
	unsigned cluster_bits; /* 0: 64 KiB clusters */
};

static struct blockdev *bs;
static struct iothread *it;

/* A fresh image over base.raw on one iothread with a queue; skips when O_DIRECT is refused. */
static void env_open(const struct variant *v)
{
	struct qcow2_create_opts co = { .size = IMG_SIZE, .version = 3,
					.cluster_bits = v->cluster_bits ? v->cluster_bits : 16,
					.refcount_bits = 16, .backing_file = "base.raw",
					.backing_fmt = "raw", .extended_l2 = v->ext };
	struct blockdev_opts o = { 0 };
	struct iothread_opts io = { .poll_max_ns = 0 };
	struct error *err = NULL;

	make_base();
	if (qcow2_create(img, &co, &err))
		fail_msg("create: %s", error_msg(err));
	blockdev_opts_set(&o, "cache", v->cache, NULL);
	bs = blockdev_open(img, &o, &err);
	blockdev_opts_free(&o);
	if (!bs && strstr(error_msg(err), "O_DIRECT")) {
		print_message("skipped: %s\n", error_msg(err));
		error_free(err);
		unlink(img);
		unlink(base);
		skip();
	}
	if (!bs)
		fail_msg("open: %s", error_msg(err));
	assert_string_equal(blockdev_format_name(bs), "qcow2");
	it = iothread_create("q2", &io, &err);
	assert_non_null(it);
	dev.q = blockdev_queue_new(bs, it, &err);
	assert_non_null(dev.q);
	dev.src.poll = dev_poll;
	dev.src.flush = dev_flush;
	dev.src.kick_fd = eventfd(0, EFD_CLOEXEC);
	sem_init(&dev.finished, 0, 0);
	assert_int_equal(iothread_add_source(it, &dev.src, NULL), 0);
}

/* Stops the queue, checks the image (no corruption, no leak) and removes it. */
static void env_close(void)
{
	struct blockdev_check_result cr;

	iothread_remove_source(it, &dev.src);
	assert_int_equal(iothread_run_sync(it, free_queue, NULL), 0);
	iothread_destroy(it);
	assert_int_equal(qcow2_check(bs, 0, &cr, NULL), 0);
	assert_int_equal(cr.corruptions, 0);
	assert_int_equal(cr.leaks, 0);
	blockdev_close(bs);
	close(dev.src.kick_fd);
	sem_destroy(&dev.finished);
	unlink(img);
	unlink(base);
}

static void set_req(struct treq *t, enum blockdev_op op, uint64_t off, void *p, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->req.op = op;
	t->req.offset = off;
	t->iov = (struct iovec){ p, len };
	t->req.iov = &t->iov;
	t->req.iovcnt = 1;
}

/* Reads every block back (cold: the slow path fills the cache; then warm: the fast path) and
 * compares with the model: gen[b] is the generation last written to block b, 0 = base. */
static void expect_model(struct treq *reqs, const uint32_t *gen, uint8_t *rbuf)
{
	for (int pass = 0; pass < 2; pass++) {
		memset(rbuf, 0xee, (size_t)NBLK * BLK);
		for (uint32_t b = 0; b < NBLK; b++)
			set_req(&reqs[b], BLOCKDEV_OP_READ, (uint64_t)b * BLK,
				rbuf + (size_t)b * BLK, BLK);
		run(reqs, NBLK, 32);
		for (size_t i = 0; i < (size_t)NBLK * BLK; i++) {
			uint32_t b = (uint32_t)(i / BLK);
			bool old = !gen[b] && b * BLK >= BASE_SIZE; /* past the base: zeroes */
			uint8_t want = old ? 0 : byte_of(b, gen[b], i % BLK);

			if (rbuf[i] != want)
				fail_msg("pass %d block %u byte %zu: 0x%02x, not 0x%02x", pass, b,
					 i % BLK, rbuf[i], want);
		}
	}
}

static void random_writes_over_a_backing_file_read_back_through_the_engine(void **state)
{
	enum { N = 600 };
	uint32_t *gen = calloc(NBLK, sizeof(*gen));
	struct treq *reqs = calloc(NBLK, sizeof(*reqs));
	uint8_t *wbuf = NULL, *rbuf = NULL;
	unsigned seed = 5;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, (size_t)N * BLK), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, (size_t)NBLK * BLK), 0);
	env_open(*state);

	/* writes: random blocks, some twice (the second one finds its cluster allocated) */
	for (int i = 0; i < N; i++) {
		uint32_t blk = (uint32_t)rand_r(&seed) % NBLK;
		uint8_t *p = wbuf + (size_t)i * BLK;

		gen[blk]++;
		for (size_t j = 0; j < BLK; j++)
			p[j] = byte_of(blk, gen[blk], j);
		set_req(&reqs[i], BLOCKDEV_OP_WRITE, (uint64_t)blk * BLK, p, BLK);
	}
	run(reqs, N, 1); /* one at a time: two writes of one block must not reorder */
	expect_model(reqs, gen, rbuf);
	env_close();
	free(gen);
	free(reqs);
	free(wbuf);
	free(rbuf);
}

/*
 * Waves of 64 writes in flight, each to a different 4 KiB block, so that many blocks of one
 * 64 KiB cluster and many new clusters are written by the same group (with 4 KiB clusters: new
 * L2 tables, the image spans four): no cluster may be allocated twice (that loses data and
 * leaks), none published before its data.
 */
static void concurrent_allocating_writes_to_shared_and_distinct_clusters_read_back(void **state)
{
	uint32_t *gen = calloc(NBLK, sizeof(*gen)), *order = malloc(NBLK * sizeof(*order));
	struct treq *reqs = calloc(NBLK, sizeof(*reqs));
	uint8_t *wbuf = NULL, *rbuf = NULL;
	unsigned seed = 11;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, (size_t)NBLK * BLK), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, (size_t)NBLK * BLK), 0);
	env_open(*state);
	for (uint32_t b = 0; b < NBLK; b++)
		order[b] = b;
	for (uint32_t b = NBLK - 1; b > 0; b--) { /* a random permutation of the blocks */
		uint32_t k = (uint32_t)rand_r(&seed) % (b + 1), t = order[b];

		order[b] = order[k];
		order[k] = t;
	}
	/* half of the blocks: neighbours in a wave often share a cluster, never a block */
	for (uint32_t i = 0; i < NBLK / 2; i++) {
		uint32_t blk = order[i];
		uint8_t *p = wbuf + (size_t)i * BLK;

		gen[blk] = 1;
		for (size_t j = 0; j < BLK; j++)
			p[j] = byte_of(blk, 1, j);
		set_req(&reqs[i], BLOCKDEV_OP_WRITE, (uint64_t)blk * BLK, p, BLK);
	}
	run(reqs, NBLK / 2, 64);
	expect_model(reqs, gen, rbuf);
	env_close();
	free(gen);
	free(order);
	free(reqs);
	free(wbuf);
	free(rbuf);
}

/*
 * One write among many in flight fails (its buffer is unreadable: EFAULT after its cluster was
 * allocated): it alone completes with the error, its cluster is given back (no leak) and keeps
 * reading the backing file; every other write succeeds and reads back.
 */
static void a_failing_write_among_concurrent_allocating_writes_fails_alone(void **state)
{
	enum { N = 96, CLU = 65536, BAD = 5 }; /* BAD: a cluster nobody else writes */
	uint32_t *gen = calloc(NBLK, sizeof(*gen));
	struct treq *reqs = calloc(NBLK, sizeof(*reqs));
	uint8_t *wbuf = NULL, *rbuf = NULL;
	uint8_t *bad = mmap(NULL, CLU, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int bad_at = N / 2;

	assert_ptr_not_equal(bad, MAP_FAILED);
	assert_int_equal(posix_memalign((void **)&wbuf, 4096, (size_t)N * BLK), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, (size_t)NBLK * BLK), 0);
	env_open(*state);
	for (int i = 0; i < N; i++) {
		/* blocks 0, 3, 6, ...; from the bad cluster on, 48 blocks (3 clusters) further */
		uint32_t blk = (uint32_t)i * 3 + (i * 3 >= BAD * 16 ? 48 : 0);
		uint8_t *p = wbuf + (size_t)i * BLK;

		if (i == bad_at) {
			set_req(&reqs[i], BLOCKDEV_OP_WRITE, (uint64_t)BAD * CLU, bad, CLU);
			continue;
		}
		gen[blk] = 1;
		for (size_t j = 0; j < BLK; j++)
			p[j] = byte_of(blk, 1, j);
		set_req(&reqs[i], BLOCKDEV_OP_WRITE, (uint64_t)blk * BLK, p, BLK);
	}
	run_expect(reqs, N, 64, bad_at, -EFAULT);
	expect_model(reqs, gen, rbuf);
	env_close();
	munmap(bad, CLU);
	free(gen);
	free(reqs);
	free(wbuf);
	free(rbuf);
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/t.qcow2", dir);
	snprintf(base, sizeof(base), "%s/base.raw", dir);
	return 0;
}

static int teardown(void **state)
{
	rmdir(dir);
	return 0;
}

int main(void)
{
	static const struct variant standard = { false, "writeback" };
	static const struct variant extended = { true, "writeback" }, direct = { false, "none" };
	static const struct variant small = { false, "writeback", 12 };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(
			random_writes_over_a_backing_file_read_back_through_the_engine,
			(void *)&standard),
		cmocka_unit_test_prestate(
			random_writes_over_a_backing_file_read_back_through_the_engine,
			(void *)&extended),
		cmocka_unit_test_prestate(
			random_writes_over_a_backing_file_read_back_through_the_engine,
			(void *)&direct),
		cmocka_unit_test_prestate(
			concurrent_allocating_writes_to_shared_and_distinct_clusters_read_back,
			(void *)&standard),
		cmocka_unit_test_prestate(
			concurrent_allocating_writes_to_shared_and_distinct_clusters_read_back,
			(void *)&extended),
		cmocka_unit_test_prestate(
			concurrent_allocating_writes_to_shared_and_distinct_clusters_read_back,
			(void *)&direct),
		cmocka_unit_test_prestate(
			concurrent_allocating_writes_to_shared_and_distinct_clusters_read_back,
			(void *)&small),
		cmocka_unit_test_prestate(
			a_failing_write_among_concurrent_allocating_writes_fails_alone,
			(void *)&standard),
		cmocka_unit_test_prestate(
			a_failing_write_among_concurrent_allocating_writes_fails_alone,
			(void *)&direct),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
