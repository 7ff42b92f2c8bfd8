/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The asynchronous path: requests submitted from an iothread source (standing in for a
 * virtqueue) go through map() and the io_uring engine or the slow path, and each completes
 * exactly once, on the iothread, never inside blockdev_submit().
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
#include <linux/magic.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "common/util.h"
#include "iothreads/iothread.h"

#define IMG_SIZE (16u << 20)
#define BLK 4096u

struct treq {
	struct blockdev_req req;
	struct iovec iov[4];
	int calls;
	int ret;
	bool on_iothread;
};

/* A fake device queue: submits reqs[next..n) keeping at most qd in flight. */
struct fake_dev {
	struct iothread_source src;
	struct iothread *it;
	struct blockdev_queue *q;
	struct treq *reqs;
	int n, next, inflight, completed, qd;
	atomic_bool go;
	bool in_submit;
	bool done_inside_submit;
	unsigned int most_sqes_queued; /* after a blockdev_submit() returned, in this run */
	atomic_int flushes;
	sem_t finished;
};

static struct fake_dev *dev_of(struct blockdev_req *req);
static struct fake_dev *cur_dev;

static void treq_done(struct blockdev_req *req, int ret)
{
	struct treq *t = container_of(req, struct treq, req);
	struct fake_dev *d = dev_of(req);

	t->calls++;
	t->ret = ret;
	t->on_iothread = iothread_is_current(d->it);
	if (d->in_submit)
		d->done_inside_submit = true;
	d->inflight--;
	if (++d->completed == d->n) {
		atomic_store(&d->go, false);
		sem_post(&d->finished);
	}
}

static struct fake_dev *dev_of(struct blockdev_req *req)
{
	return cur_dev;
}

static int dev_poll(struct iothread_source *s)
{
	struct fake_dev *d = container_of(s, struct fake_dev, src);
	int taken = 0;

	if (!atomic_load(&d->go))
		return 0;
	while (d->next < d->n && d->inflight < d->qd) {
		struct treq *t = &d->reqs[d->next++];

		t->req.done = treq_done;
		d->inflight++;
		d->in_submit = true;
		blockdev_submit(d->q, &t->req);
		d->in_submit = false;
		d->most_sqes_queued = MAX(d->most_sqes_queued, iothread_sqes_queued(d->it));
		taken++;
	}
	return taken;
}

static void dev_flush(struct iothread_source *s)
{
	struct fake_dev *d = container_of(s, struct fake_dev, src);

	d->flushes++;
}

struct harness {
	char path[256];
	struct iothread *it;
	struct blockdev *bs;
	struct fake_dev dev;
};

static bool wait_sem(sem_t *s, int secs)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += secs;
	while (sem_timedwait(s, &ts) < 0)
		if (errno != EINTR)
			return false;
	return true;
}

/* Opens a fresh image; returns false (test skipped) if cache=none is not possible here. */
static const char *image_dir; /* NULL: $VIREO_TEST_TMPDIR, else /var/tmp */
static const char *submit_mode; /* NULL: auto */
static unsigned int max_files; /* the iothread's fixed file table ceiling; 0: the default */
static bool serves_sockets;   /* the ring takes SPLICE (an NBD server's) */

static bool setup(struct harness *h, const char *cache, bool readonly, uint64_t poll_max_ns)
{
	const char *dir = image_dir ? image_dir : getenv("VIREO_TEST_TMPDIR");
	struct iothread_opts io = { .poll_max_ns = poll_max_ns, .max_files = max_files,
				    .serves_sockets = serves_sockets };
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	int fd;

	memset(h, 0, sizeof(*h));
	snprintf(h->path, sizeof(h->path), "%s/vireo-eng-XXXXXX", dir ? dir : "/var/tmp");
	fd = mkstemp(h->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SIZE), 0);
	close(fd);
	blockdev_opts_set(&o, "cache", cache, NULL);
	blockdev_opts_set(&o, "readonly", readonly ? "on" : "off", NULL);
	if (submit_mode)
		assert_int_equal(blockdev_opts_set(&o, "submit", submit_mode, NULL), 0);
	h->bs = blockdev_open(h->path, &o, &err);
	blockdev_opts_free(&o);
	if (!h->bs) {
		unlink(h->path);
		if (strstr(error_msg(err), "O_DIRECT")) {
			print_message("skipped: %s\n", error_msg(err));
			error_free(err);
			return false;
		}
		fail_msg("open: %s", error_msg(err));
	}
	h->it = iothread_create("eng", &io, &err);
	assert_non_null(h->it);
	h->dev.it = h->it;
	h->dev.q = blockdev_queue_new(h->bs, h->it, &err);
	assert_non_null(h->dev.q);
	h->dev.src.poll = dev_poll;
	h->dev.src.flush = dev_flush;
	h->dev.src.kick_fd = eventfd(0, EFD_CLOEXEC);
	sem_init(&h->dev.finished, 0, 0);
	cur_dev = &h->dev;
	assert_int_equal(iothread_add_source(h->it, &h->dev.src, NULL), 0);
	return true;
}

static int free_queue(void *arg)
{
	struct fake_dev *d = arg;
	int ret = blockdev_queue_drain(d->q);

	blockdev_queue_free(d->q);
	return ret;
}

static void teardown(struct harness *h)
{
	iothread_remove_source(h->it, &h->dev.src);
	assert_int_equal(iothread_run_sync(h->it, free_queue, &h->dev), 0);
	iothread_destroy(h->it);
	blockdev_close(h->bs);
	close(h->dev.src.kick_fd);
	sem_destroy(&h->dev.finished);
	unlink(h->path);
}

static int nop(void *arg)
{
	return 0;
}

/* Runs reqs[0..n) with at most qd in flight; every request must complete exactly once. */
static void run(struct harness *h, struct treq *reqs, int n, int qd)
{
	struct fake_dev *d = &h->dev;
	uint64_t one = 1;

	d->reqs = reqs;
	d->n = n;
	d->next = d->completed = d->inflight = 0;
	d->most_sqes_queued = 0;
	d->qd = qd;
	atomic_store(&d->go, true);
	assert_int_equal(write(d->src.kick_fd, &one, sizeof(one)), sizeof(one));
	assert_true(wait_sem(&d->finished, 60));
	for (int i = 0; i < n; i++) {
		assert_int_equal(reqs[i].calls, 1);
		assert_true(reqs[i].on_iothread);
	}
	assert_false(d->done_inside_submit);
	/* flush() runs after the batch whose done() woke us: wait for that turn to end */
	iothread_run_sync(h->it, nop, NULL);
	assert_true(d->flushes > 0);
}

static void set_rw(struct treq *t, enum blockdev_op op, uint64_t off, void *buf, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->req.op = op;
	t->req.offset = off;
	t->iov[0] = (struct iovec){ buf, len };
	t->req.iov = t->iov;
	t->req.iovcnt = 1;
}

static void fill(uint8_t *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 2654435761u + i * 13 + (i >> 8));
}

static bool all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

/* 1000 writes of 4 KiB to distinct random blocks, then reads of them, verified. */
static void random_writes_then_reads(const char *cache, uint64_t poll_max_ns, bool fixed)
{
	enum { N = 1000 };
	struct harness h;
	struct treq *reqs = calloc(N, sizeof(*reqs));
	uint32_t *blocks = malloc((IMG_SIZE / BLK) * sizeof(*blocks));
	uint8_t *wbuf = NULL, *rbuf = NULL, *check;

	if (!setup(&h, cache, false, poll_max_ns)) {
		free(reqs);
		free(blocks);
		skip();
	}
	assert_int_equal(posix_memalign((void **)&wbuf, 4096, (size_t)N * BLK), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, (size_t)N * BLK), 0);
	check = malloc(BLK);
	if (fixed) {
		struct iovec regions[2] = {
			{ wbuf, (size_t)N * BLK }, { rbuf, (size_t)N * BLK },
		};
		struct error *err = NULL;

		if (iothread_register_memory(h.it, regions, 2, &err) < 0)
			fail_msg("%s", error_msg(err));
	}
	srand(1234);
	for (uint32_t i = 0; i < IMG_SIZE / BLK; i++)
		blocks[i] = i;
	for (uint32_t i = IMG_SIZE / BLK - 1; i > 0; i--) {
		uint32_t j = (uint32_t)rand() % (i + 1), t = blocks[i];

		blocks[i] = blocks[j];
		blocks[j] = t;
	}
	for (int i = 0; i < N; i++) {
		fill(wbuf + (size_t)i * BLK, BLK, blocks[i]);
		set_rw(&reqs[i], BLOCKDEV_OP_WRITE, (uint64_t)blocks[i] * BLK,
		       wbuf + (size_t)i * BLK, BLK);
	}
	run(&h, reqs, N, 32);
	for (int i = 0; i < N; i++)
		assert_int_equal(reqs[i].ret, 0);

	memset(rbuf, 0xee, (size_t)N * BLK);
	for (int i = 0; i < N; i++) {
		/* split the buffer in two iovecs, so the slice logic is used */
		set_rw(&reqs[i], BLOCKDEV_OP_READ, (uint64_t)blocks[i] * BLK,
		       rbuf + (size_t)i * BLK, 1024);
		reqs[i].iov[1] = (struct iovec){ rbuf + (size_t)i * BLK + 1024, BLK - 1024 };
		reqs[i].req.iovcnt = 2;
	}
	run(&h, reqs, N, 32);
	for (int i = 0; i < N; i++) {
		assert_int_equal(reqs[i].ret, 0);
		assert_memory_equal(rbuf + (size_t)i * BLK, wbuf + (size_t)i * BLK, BLK);
	}
	/* and the synchronous path agrees */
	assert_int_equal(blockdev_pread(h.bs, (uint64_t)blocks[7] * BLK, check, BLK), 0);
	assert_memory_equal(check, wbuf + 7 * BLK, BLK);

	teardown(&h);
	free(check);
	free(wbuf);
	free(rbuf);
	free(reqs);
	free(blocks);
}

static void random_writes_then_reads_sleeping_writeback(void **state)
{
	random_writes_then_reads("writeback", 0, false);
}

static void random_writes_then_reads_polling_cache_none(void **state)
{
	random_writes_then_reads("none", IOTHREAD_POLL_MAX_NS_DEFAULT, false);
}

static void random_writes_then_reads_with_fixed_buffers(void **state)
{
	random_writes_then_reads("none", IOTHREAD_POLL_MAX_NS_DEFAULT, true);
}

static void unaligned_buffers_under_cache_none_take_the_slow_path(void **state)
{
	struct harness h;
	struct treq reqs[2];
	uint8_t *mem = NULL, *w, *r;

	if (!setup(&h, "none", false, 0))
		skip();
	assert_int_equal(posix_memalign((void **)&mem, 4096, 4 * BLK), 0);
	w = mem + 1; /* not 512-aligned */
	r = mem + 2 * BLK + 3;
	fill(w, BLK, 77);
	set_rw(&reqs[0], BLOCKDEV_OP_WRITE, 5 * BLK, w, BLK);
	run(&h, reqs, 1, 1);
	assert_int_equal(reqs[0].ret, 0);
	memset(r, 0, BLK);
	set_rw(&reqs[1], BLOCKDEV_OP_READ, 5 * BLK, r, BLK);
	run(&h, &reqs[1], 1, 1);
	assert_int_equal(reqs[1].ret, 0);
	assert_memory_equal(r, w, BLK);
	teardown(&h);
	free(mem);
}

static void reading_past_a_shrunken_file_returns_zeroes(void **state)
{
	struct harness h;
	struct treq t;
	uint8_t *buf;

	if (!setup(&h, "writeback", false, 0))
		skip();
	buf = malloc(2 * BLK);
	fill(buf, 2 * BLK, 5);
	assert_int_equal(blockdev_pwrite(h.bs, IMG_SIZE - 2 * BLK, buf, 2 * BLK), 0);
	/* someone cuts the file in the middle of the last two blocks */
	assert_int_equal(truncate(h.path, IMG_SIZE - BLK - 100), 0);
	memset(buf, 0xff, 2 * BLK);
	set_rw(&t, BLOCKDEV_OP_READ, IMG_SIZE - 2 * BLK, buf, 2 * BLK);
	run(&h, &t, 1, 1);
	assert_int_equal(t.ret, 0);
	{
		uint8_t want[2 * BLK];

		fill(want, sizeof(want), 5);
		assert_memory_equal(buf, want, BLK - 100);
		assert_true(all_zero(buf + BLK - 100, BLK + 100));
	}
	teardown(&h);
	free(buf);
}

/* ---- BLOCKDEV_READ_SPLICE ---------------------------------------------------------------------- */

struct spliced {
	struct harness h;
	int pipe[2];
	int fix; /* the write end's slot in the ring */
};

static int pipe_register(void *arg)
{
	struct spliced *s = arg;

	s->fix = iothread_file_index(iothread_current(), s->pipe[1]);
	return s->fix < 0 ? s->fix : 0;
}

static int pipe_release(void *arg)
{
	struct spliced *s = arg;

	iothread_file_release(iothread_current(), s->pipe[1]);
	return 0;
}

static bool splice_setup(struct spliced *s, const char *cache)
{
	bool ok;

	serves_sockets = true;
	ok = setup(&s->h, cache, false, 0);
	serves_sockets = false;
	if (!ok)
		return false;
	assert_int_equal(pipe2(s->pipe, O_CLOEXEC | O_NONBLOCK), 0);
	assert_true(fcntl(s->pipe[1], F_SETPIPE_SZ, 256 << 10) >= (256 << 10));
	assert_int_equal(iothread_run_sync(s->h.it, pipe_register, s), 0);
	return true;
}

static void splice_teardown(struct spliced *s)
{
	iothread_run_sync(s->h.it, pipe_release, s);
	teardown(&s->h);
	close(s->pipe[0]);
	close(s->pipe[1]);
}

/* Bytes waiting in the pipe, read out into @buf (at most @len). */
static size_t pipe_drain(struct spliced *s, uint8_t *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len && (n = read(s->pipe[0], buf + got, len - got)) > 0)
		got += (size_t)n;
	return got;
}

static void run_spliced(struct spliced *s, struct treq *t, uint64_t off, uint8_t *buf,
			size_t len)
{
	set_rw(t, BLOCKDEV_OP_READ, off, buf, len);
	t->req.flags = BLOCKDEV_READ_SPLICE;
	t->req.splice_fix = s->fix;
	run(&s->h, t, 1, 1);
}

static void a_spliced_read_puts_the_bytes_in_the_pipe_not_the_buffer(void **state)
{
	enum { LEN = 192 << 10 };
	static uint8_t want[LEN], buf[LEN], back[LEN + 1];
	struct spliced s;
	struct treq t;

	if (!splice_setup(&s, "writeback"))
		skip();
	fill(want, LEN, 9);
	assert_int_equal(blockdev_pwrite(s.h.bs, 3 * BLK, want, LEN), 0);
	run_spliced(&s, &t, 3 * BLK, buf, LEN);
	assert_int_equal(t.ret, 0);
	assert_true(all_zero(buf, LEN)); /* the buffer is only the read's length */
	assert_int_equal(pipe_drain(&s, back, sizeof(back)), LEN);
	assert_memory_equal(back, want, LEN);
	splice_teardown(&s);
}

static void a_read_the_page_cache_cannot_serve_is_refused_before_a_byte_moves(void **state)
{
	static uint8_t buf[4 * BLK], back[4 * BLK];
	struct spliced s;
	struct treq t;

	/* O_DIRECT: no page cache to take the pages of */
	if (splice_setup(&s, "none")) {
		run_spliced(&s, &t, 0, buf, BLK);
		assert_int_equal(t.ret, -EOPNOTSUPP);
		assert_int_equal(pipe_drain(&s, back, sizeof(back)), 0);
		splice_teardown(&s);
	}
	/* the file ends inside the range: what is there goes, then -ENODATA (the caller empties
	 * the pipe and reads the range again, where the rest reads as zeroes) */
	if (!splice_setup(&s, "writeback"))
		skip();
	fill(buf, 2 * BLK, 4);
	assert_int_equal(blockdev_pwrite(s.h.bs, IMG_SIZE - 2 * BLK, buf, 2 * BLK), 0);
	assert_int_equal(truncate(s.h.path, IMG_SIZE - BLK), 0);
	run_spliced(&s, &t, IMG_SIZE - 2 * BLK, back, 2 * BLK);
	assert_int_equal(t.ret, -ENODATA);
	assert_int_equal(pipe_drain(&s, back, sizeof(back)), BLK);
	assert_memory_equal(back, buf, BLK);
	splice_teardown(&s);
}

static void flush_discard_and_write_zeroes_complete(void **state)
{
	struct harness h;
	struct treq t[4];
	uint8_t *buf;

	if (!setup(&h, "writeback", false, 0))
		skip();
	buf = malloc(64 * 1024);
	fill(buf, 64 * 1024, 9);
	assert_int_equal(blockdev_pwrite(h.bs, 0, buf, 64 * 1024), 0);

	memset(t, 0, sizeof(t));
	t[0].req.op = BLOCKDEV_OP_FLUSH;
	t[1].req.op = BLOCKDEV_OP_DISCARD;
	t[1].req.offset = 0;
	t[1].req.len = 16 * 1024;
	t[2].req.op = BLOCKDEV_OP_WRITE_ZEROES;
	t[2].req.offset = 20 * 1024;
	t[2].req.len = 8 * 1024;
	t[3].req.op = BLOCKDEV_OP_WRITE_ZEROES;
	t[3].req.offset = 40 * 1024;
	t[3].req.len = 8 * 1024;
	t[3].req.flags = BLOCKDEV_ZERO_MAY_UNMAP;
	run(&h, t, 4, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(t[i].ret, 0);

	{
		static uint8_t r[64 * 1024];

		assert_int_equal(blockdev_pread(h.bs, 0, r, sizeof(r)), 0);
		assert_true(all_zero(r, 16 * 1024));
		assert_memory_equal(r + 16 * 1024, buf + 16 * 1024, 4 * 1024);
		assert_true(all_zero(r + 20 * 1024, 8 * 1024));
		assert_memory_equal(r + 28 * 1024, buf + 28 * 1024, 12 * 1024);
		assert_true(all_zero(r + 40 * 1024, 8 * 1024));
		assert_memory_equal(r + 48 * 1024, buf + 48 * 1024, 16 * 1024);
	}
	teardown(&h);
	free(buf);
}

static void bad_requests_fail_through_done(void **state)
{
	struct harness h;
	struct treq t[4];
	uint8_t buf[BLK];

	if (!setup(&h, "writeback", false, 0))
		skip();
	set_rw(&t[0], BLOCKDEV_OP_READ, IMG_SIZE - 512, buf, BLK); /* crosses the end */
	set_rw(&t[1], BLOCKDEV_OP_WRITE, UINT64_MAX - 511, buf, BLK); /* wraps */
	set_rw(&t[2], BLOCKDEV_OP_READ, 0, buf, BLK);
	t[2].req.iovcnt = 0; /* no buffers */
	memset(&t[3], 0, sizeof(t[3]));
	t[3].req.op = BLOCKDEV_OP_DISCARD;
	t[3].req.offset = IMG_SIZE;
	t[3].req.len = 1;
	run(&h, t, 4, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(t[i].ret, -EINVAL);
	teardown(&h);
}

/*
 * The kernel writes only part of a request when it crosses RLIMIT_FSIZE (a genuine short write):
 * the engine must issue the rest, which then fails with EFBIG, instead of taking the part for
 * the whole. The bytes below the limit are on disk, those above it are not.
 */
static void short_write_is_continued_to_its_end(const char *cache)
{
	const uint64_t limit = IMG_SIZE - BLK - 512;
	struct rlimit old, lim;
	struct harness h;
	struct treq t;
	uint8_t *buf = NULL, *got; /* set by posix_memalign below */

	if (!setup(&h, cache, false, 0))
		skip();
	assert_int_equal(posix_memalign((void **)&buf, BLK, 2 * BLK), 0);
	got = malloc(2 * BLK);
	fill(buf, 2 * BLK, 9);
	signal(SIGXFSZ, SIG_IGN); /* past the limit: EFBIG instead of the signal's default, a kill */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = (struct rlimit){ .rlim_cur = limit, .rlim_max = old.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	set_rw(&t, BLOCKDEV_OP_WRITE, IMG_SIZE - 2 * BLK, buf, 2 * BLK);
	run(&h, &t, 1, 1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(t.ret, -EFBIG);
	{
		int fd = open(h.path, O_RDONLY);

		assert_true(fd >= 0);
		assert_int_equal(pread(fd, got, 2 * BLK, IMG_SIZE - 2 * BLK), 2 * BLK);
		close(fd);
	}
	assert_memory_equal(got, buf, BLK - 512);
	assert_true(all_zero(got + BLK - 512, BLK + 512));
	teardown(&h);
	free(buf);
	free(got);
}

static void a_short_write_is_continued_not_taken_for_whole_writeback(void **state)
{
	short_write_is_continued_to_its_end("writeback");
}

static void a_short_write_is_continued_not_taken_for_whole_cache_none(void **state)
{
	short_write_is_continued_to_its_end("none");
}

static void writes_to_a_read_only_image_fail_with_erofs(void **state)
{
	struct harness h;
	struct treq t[3];
	uint8_t buf[BLK];

	if (!setup(&h, "writeback", true, 0))
		skip();
	set_rw(&t[0], BLOCKDEV_OP_WRITE, 0, buf, BLK);
	memset(&t[1], 0, sizeof(t[1]));
	t[1].req.op = BLOCKDEV_OP_WRITE_ZEROES;
	t[1].req.len = BLK;
	set_rw(&t[2], BLOCKDEV_OP_READ, 0, buf, BLK);
	run(&h, t, 3, 3);
	assert_int_equal(t[0].ret, -EROFS);
	assert_int_equal(t[1].ret, -EROFS);
	assert_int_equal(t[2].ret, 0);
	teardown(&h);
}

/*
 * A test format over a raw file: guest block i is DATA (in place) when i % 4 == 0, ZERO when
 * 1, BACKING when 2 and SLOW when 3 (its synchronous read fills a pattern). Writes are DATA
 * for i % 4 == 0 and SLOW otherwise (written in place by pwritev). Extents stop at block
 * boundaries, so one request is split into pieces of every kind.
 */
static atomic_int striped_slow_reads, striped_slow_writes;

static unsigned int kind_of(uint64_t off)
{
	return (unsigned int)((off / BLK) % 4);
}

static int striped_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	bs->size = bs->file->size;
	return 0;
}

static int striped_map(struct blockdev *bs, enum blockdev_op op, uint64_t off, uint64_t len,
		       struct blockdev_extent *ext)
{
	unsigned int k = kind_of(off);

	ext->len = MIN(len, BLK - off % BLK);
	ext->file = bs->file;
	ext->host_offset = off;
	if (k == 0)
		ext->kind = BLOCKDEV_EXTENT_DATA;
	else if (op != BLOCKDEV_OP_READ)
		ext->kind = BLOCKDEV_EXTENT_SLOW;
	else
		ext->kind = k == 1 ? BLOCKDEV_EXTENT_ZERO : k == 2 ? BLOCKDEV_EXTENT_BACKING :
				     BLOCKDEV_EXTENT_SLOW;
	return 0;
}

static int striped_preadv(struct blockdev *bs, uint64_t off, const struct iovec *iov, int cnt)
{
	uint64_t pos = 0;

	atomic_fetch_add(&striped_slow_reads, 1);
	for (int i = 0; i < cnt; i++)
		for (size_t j = 0; j < iov[i].iov_len; j++, pos++)
			((uint8_t *)iov[i].iov_base)[j] = (uint8_t)((off + pos) / BLK + 0x40);
	return 0;
}

static int striped_pwritev(struct blockdev *bs, uint64_t off, const struct iovec *iov, int cnt)
{
	atomic_fetch_add(&striped_slow_writes, 1);
	return blockdev_pwritev(bs->file, off, iov, cnt);
}

static const struct blockdev_driver striped_drv = {
	.name = "striped",
	.open = striped_open,
	.map = striped_map,
	.preadv = striped_preadv,
	.pwritev = striped_pwritev,
};

static uint8_t expect_byte(uint64_t off, const uint8_t *file_pattern,
			   const uint8_t *backing_pattern)
{
	switch (kind_of(off)) {
	case 0:
		return file_pattern[off];
	case 1:
		return 0;
	case 2:
		return backing_pattern[off];
	default:
		return (uint8_t)(off / BLK + 0x40);
	}
}

static void requests_split_over_every_extent_kind_complete_once(void **state)
{
	struct harness h;
	struct blockdev *file, *striped, *backing;
	struct blockdev_open_ctx ctx = { 0 };
	struct blockdev_opts o = { 0 };
	char bpath[300];
	uint8_t *pattern, *fpattern, *buf, *w;
	struct treq t[8];
	int fd;

	if (!setup(&h, "writeback", false, 0))
		skip();
	/* a backing image with a known pattern */
	snprintf(bpath, sizeof(bpath), "%s.backing", h.path);
	fd = open(bpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	pattern = malloc(IMG_SIZE);
	fill(pattern, IMG_SIZE, 99);
	assert_int_equal(pwrite(fd, pattern, IMG_SIZE, 0), IMG_SIZE);
	close(fd);
	backing = blockdev_open(bpath, NULL, NULL);
	assert_non_null(backing);
	/* and another in the image file itself */
	fpattern = malloc(IMG_SIZE);
	fill(fpattern, IMG_SIZE, 7);
	assert_int_equal(blockdev_pwrite(h.bs, 0, fpattern, IMG_SIZE), 0);

	/* replace the harness's queue with one on a striped node over the same file */
	assert_int_equal(iothread_run_sync(h.it, free_queue, &h.dev), 0);
	file = blockdev_open_file(h.path, &o, NULL);
	assert_non_null(file);
	ctx.filename = h.path;
	ctx.opts = &o;
	striped = blockdev_open_format(file, &striped_drv, &ctx, NULL);
	assert_non_null(striped);
	striped->backing = backing;
	h.dev.q = blockdev_queue_new(striped, h.it, NULL);
	assert_non_null(h.dev.q);

	/* reads of 8 blocks from every starting phase, unaligned to blocks too */
	buf = malloc(8 * 9 * BLK);
	memset(buf, 0xcc, 8 * 9 * BLK);
	for (int i = 0; i < 8; i++)
		set_rw(&t[i], BLOCKDEV_OP_READ, (uint64_t)i * BLK + (i & 1) * 100,
		       buf + (size_t)i * 9 * BLK, 8 * BLK);
	run(&h, t, 8, 8);
	for (int i = 0; i < 8; i++) {
		uint64_t off = (uint64_t)i * BLK + (i & 1) * 100;

		assert_int_equal(t[i].ret, 0);
		for (uint64_t b = 0; b < 8 * BLK; b++)
			if (buf[(size_t)i * 9 * BLK + b] != expect_byte(off + b, fpattern, pattern))
				fail_msg("request %d byte %llu: %#x, want %#x", i,
					 (unsigned long long)b, buf[(size_t)i * 9 * BLK + b],
					 expect_byte(off + b, fpattern, pattern));
	}
	assert_true(atomic_load(&striped_slow_reads) >= 8);

	/* a write over 8 blocks: two pieces in place, six through the slow path */
	w = malloc(8 * BLK);
	fill(w, 8 * BLK, 3);
	set_rw(&t[0], BLOCKDEV_OP_WRITE, 16 * BLK, w, 8 * BLK);
	run(&h, t, 1, 1);
	assert_int_equal(t[0].ret, 0);
	assert_int_equal(atomic_load(&striped_slow_writes), 6);
	assert_int_equal(blockdev_pread(file, 16 * BLK, buf, 8 * BLK), 0);
	assert_memory_equal(buf, w, 8 * BLK);

	assert_int_equal(iothread_run_sync(h.it, free_queue, &h.dev), 0);
	h.dev.q = blockdev_queue_new(h.bs, h.it, NULL); /* for teardown */
	blockdev_close(striped); /* closes file and backing too */
	teardown(&h);
	unlink(bpath);
	free(pattern);
	free(fpattern);
	free(buf);
	free(w);
}

struct filler {
	int fds[IOTHREAD_FILES_START];
	int n;
};

/* Fills the ring's fixed file table with /dev/zero fds until it refuses one. */
static int fill_table(void *arg)
{
	struct filler *f = arg;

	while (f->n < IOTHREAD_FILES_START) {
		int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);

		if (iothread_file_index(iothread_current(), fd) == -EMFILE) {
			close(fd);
			return 0;
		}
		f->fds[f->n++] = fd;
	}
	return -1;
}

static int release_one(void *arg)
{
	struct filler *f = arg;

	iothread_file_release(iothread_current(), f->fds[--f->n]);
	close(f->fds[f->n]);
	return 0;
}

static int release_all(void *arg)
{
	struct filler *f = arg;

	while (f->n)
		release_one(f);
	return 0;
}

/*
 * The ring takes no plain fd: a node whose file its full fixed file table cannot take is
 * refused when its queue is made (so the drive is refused at start), naming the file.
 */
static void a_full_file_table_refuses_a_new_queue_naming_the_file(void **state)
{
	struct blockdev_opts o = { 0 };
	struct blockdev_queue *q;
	struct blockdev *other;
	struct error *err = NULL;
	struct filler f = { .n = 0 };
	struct harness h;
	char path[300];
	int fd;

	max_files = IOTHREAD_FILES_START;
	if (!setup(&h, "writeback", false, 0)) {
		max_files = 0;
		skip();
	}
	max_files = 0;
	snprintf(path, sizeof(path), "%s.other", h.path);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SIZE), 0);
	close(fd);
	blockdev_opts_set(&o, "cache", "writeback", NULL);
	other = blockdev_open(path, &o, &err);
	blockdev_opts_free(&o);
	assert_non_null(other);
	/* the harness's image, its kick eventfd and the message eventfd hold three slots */
	assert_int_equal(iothread_run_sync(h.it, fill_table, &f), 0);
	assert_null(blockdev_queue_new(other, h.it, &err));
	assert_non_null(err);
	assert_non_null(strstr(error_msg(err), "iothread eng: cannot register '"));
	assert_non_null(strstr(error_msg(err), ".other' (node '"));
	assert_non_null(strstr(error_msg(err), "in its ring's fixed file table: the table is full"));
	error_free(err);
	err = NULL;
	/* one slot free: the same node gets its queue */
	assert_int_equal(iothread_run_sync(h.it, release_one, &f), 0);
	q = blockdev_queue_new(other, h.it, &err);
	assert_non_null(q);
	{
		struct fake_dev d = { .q = q };

		assert_int_equal(iothread_run_sync(h.it, free_queue, &d), 0);
	}
	assert_int_equal(iothread_run_sync(h.it, release_all, &f), 0);
	blockdev_close(other);
	unlink(path);
	teardown(&h);
}

static void write_zeroes_falls_back_where_zero_range_is_refused(void **state)
{
	struct harness h;
	struct treq t;
	struct statfs sfs;
	uint8_t *buf;

	/* tmpfs punches holes but refuses FALLOC_FL_ZERO_RANGE */
	if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != TMPFS_MAGIC) {
		print_message("skipped: /dev/shm is not a tmpfs\n");
		skip();
	}
	image_dir = "/dev/shm";
	if (!setup(&h, "writeback", false, 0)) {
		image_dir = NULL;
		skip();
	}
	image_dir = NULL;
	buf = malloc(64 * 1024);
	fill(buf, 64 * 1024, 11);
	assert_int_equal(blockdev_pwrite(h.bs, 0, buf, 64 * 1024), 0);
	memset(&t, 0, sizeof(t));
	t.req.op = BLOCKDEV_OP_WRITE_ZEROES;
	t.req.offset = 4096 + 512;
	t.req.len = 16 * 1024;
	run(&h, &t, 1, 1);
	assert_int_equal(t.ret, 0);
	{
		static uint8_t r[64 * 1024];

		assert_int_equal(blockdev_pread(h.bs, 0, r, sizeof(r)), 0);
		assert_memory_equal(r, buf, 4608);
		assert_true(all_zero(r + 4608, 16 * 1024));
		assert_memory_equal(r + 4608 + 16 * 1024, buf + 4608 + 16 * 1024,
				    sizeof(r) - 4608 - 16 * 1024);
	}
	teardown(&h);
	free(buf);
}

/* Runs 16 writes at QD16 with submit=@mode on a @cache image; returns the most SQEs left queued. */
static int sqes_left_queued(const char *cache, const char *mode)
{
	static uint8_t buf[16][BLK] __attribute__((aligned(4096)));
	struct treq reqs[16];
	struct harness h;
	unsigned int most;

	bool ok;

	submit_mode = mode;
	ok = setup(&h, cache, false, 0);
	submit_mode = NULL;
	if (!ok)
		return -1;
	for (int i = 0; i < 16; i++) {
		fill(buf[i], BLK, (unsigned int)i);
		set_rw(&reqs[i], BLOCKDEV_OP_WRITE, (uint64_t)i * 3 * BLK, buf[i], BLK);
	}
	run(&h, reqs, 16, 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(reqs[i].ret, 0);
	most = h.dev.most_sqes_queued;
	teardown(&h);
	return (int)most;
}

/* cache=none: a device serves the I/O; it starts on each request while the next is parsed. */
static void cache_none_requests_reach_the_kernel_as_soon_as_prepared(void **state)
{
	int most = sqes_left_queued("none", NULL);

	if (most < 0)
		skip();
	assert_int_equal(most, 0);
	assert_int_equal(sqes_left_queued("none", "eager"), 0);
}

/* writeback: the kernel copies inside the submit call, so the turn's requests share one. */
static void writeback_requests_share_the_turns_one_submit(void **state)
{
	assert_true(sqes_left_queued("writeback", NULL) >= 2);
	assert_true(sqes_left_queued("writeback", "batched") >= 2);
	assert_int_equal(sqes_left_queued("writeback", "eager"), 0);
}

static void submit_option_takes_auto_eager_batched_and_names_a_bad_value(void **state)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;

	assert_int_equal(o.submit, BLOCKDEV_SUBMIT_AUTO);
	assert_int_equal(blockdev_opts_set(&o, "submit", "eager", NULL), 0);
	assert_int_equal(o.submit, BLOCKDEV_SUBMIT_EAGER);
	assert_int_equal(blockdev_opts_set(&o, "submit", "batched", NULL), 0);
	assert_int_equal(o.submit, BLOCKDEV_SUBMIT_BATCHED);
	assert_int_equal(blockdev_opts_set(&o, "submit", "auto", NULL), 0);
	assert_int_equal(o.submit, BLOCKDEV_SUBMIT_AUTO);
	assert_int_equal(blockdev_opts_set(&o, "submit", "eagerly", &err), -1);
	assert_non_null(strstr(error_msg(err), "submit: invalid value 'eagerly'"));
	error_free(err);
	assert_int_equal(o.submit, BLOCKDEV_SUBMIT_AUTO);
	blockdev_opts_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_writes_then_reads_sleeping_writeback),
		cmocka_unit_test(random_writes_then_reads_polling_cache_none),
		cmocka_unit_test(random_writes_then_reads_with_fixed_buffers),
		cmocka_unit_test(unaligned_buffers_under_cache_none_take_the_slow_path),
		cmocka_unit_test(reading_past_a_shrunken_file_returns_zeroes),
		cmocka_unit_test(a_spliced_read_puts_the_bytes_in_the_pipe_not_the_buffer),
		cmocka_unit_test(a_read_the_page_cache_cannot_serve_is_refused_before_a_byte_moves),
		cmocka_unit_test(flush_discard_and_write_zeroes_complete),
		cmocka_unit_test(write_zeroes_falls_back_where_zero_range_is_refused),
		cmocka_unit_test(a_full_file_table_refuses_a_new_queue_naming_the_file),
		cmocka_unit_test(bad_requests_fail_through_done),
		cmocka_unit_test(writes_to_a_read_only_image_fail_with_erofs),
		cmocka_unit_test(a_short_write_is_continued_not_taken_for_whole_writeback),
		cmocka_unit_test(a_short_write_is_continued_not_taken_for_whole_cache_none),
		cmocka_unit_test(requests_split_over_every_extent_kind_complete_once),
		cmocka_unit_test(cache_none_requests_reach_the_kernel_as_soon_as_prepared),
		cmocka_unit_test(writeback_requests_share_the_turns_one_submit),
		cmocka_unit_test(submit_option_takes_auto_eager_batched_and_names_a_bad_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
