/* SPDX-License-Identifier: Apache-2.0 */
/* Requesters on iothreads for block-driver tests: see engine_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/unit/engine_fixture.h"

struct blockdev *engfx_open_image(const char *path, const char *format, const char *cache,
				  bool readonly, const char *key, const char *value)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *b;

	blockdev_opts_set(&o, "format", format, NULL);
	blockdev_opts_set(&o, "cache", cache, NULL);
	if (key)
		blockdev_opts_set(&o, key, value, NULL);
	o.readonly = readonly;
	b = blockdev_open(path, &o, &err);
	blockdev_opts_free(&o);
	if (!b && strstr(error_msg(err), "O_DIRECT")) {
		print_message("skipped: %s\n", error_msg(err));
		error_free(err);
		return NULL;
	}
	if (!b)
		fail_msg("open: %s", error_msg(err));
	return b;
}

/* On the submitting device's iothread: its own counters only. */
static void done(struct blockdev_req *req, int ret)
{
	struct engfx_req *t = container_of(req, struct engfx_req, req);
	struct engfx_dev *d = t->d;

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
	struct engfx_dev *d = container_of(s, struct engfx_dev, src);
	int taken = 0;

	while (atomic_load(&d->go) && d->next < d->n && d->inflight < d->qd) {
		struct engfx_req *t = &d->reqs[d->next++];

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
	(void)s;
}

void engfx_devs_open(struct engfx_dev *devs, int ndev, struct blockdev *bs, const char *prefix)
{
	struct iothread_opts io = { .poll_max_ns = 0 };
	struct error *err = NULL;

	for (int i = 0; i < ndev; i++) {
		struct engfx_dev *d = &devs[i];
		char name[16];

		snprintf(name, sizeof(name), "%s%d", prefix, i);
		d->it = iothread_create(name, &io, &err);
		if (!d->it)
			fail_msg("iothread: %s", error_msg(err));
		d->q = blockdev_queue_new(bs, d->it, &err);
		if (!d->q)
			fail_msg("queue: %s", error_msg(err));
		d->src.poll = dev_poll;
		d->src.flush = dev_flush;
		d->src.kick_fd = eventfd(0, EFD_CLOEXEC);
		sem_init(&d->finished, 0, 0);
		assert_int_equal(iothread_add_source(d->it, &d->src, NULL), 0);
	}
}

static int free_queue(void *arg)
{
	struct engfx_dev *d = arg;
	int ret = blockdev_queue_drain(d->q);

	blockdev_queue_free(d->q);
	return ret;
}

void engfx_devs_close(struct engfx_dev *devs, int ndev)
{
	for (int i = 0; i < ndev; i++) {
		struct engfx_dev *d = &devs[i];

		iothread_remove_source(d->it, &d->src);
		assert_int_equal(iothread_run_sync(d->it, free_queue, d), 0);
		iothread_destroy(d->it);
		close(d->src.kick_fd);
		sem_destroy(&d->finished);
	}
}

void engfx_run(struct engfx_dev *devs, int ndev)
{
	struct timespec ts;
	uint64_t one = 1;

	for (int i = 0; i < ndev; i++) {
		devs[i].next = devs[i].completed = devs[i].inflight = 0;
		atomic_store(&devs[i].go, devs[i].n > 0);
	}
	for (int i = 0; i < ndev; i++)
		assert_int_equal(write(devs[i].src.kick_fd, &one, sizeof(one)), sizeof(one));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 120;
	for (int i = 0; i < ndev; i++)
		while (devs[i].n && sem_timedwait(&devs[i].finished, &ts) < 0)
			assert_int_equal(errno, EINTR);
	for (int i = 0; i < ndev; i++)
		for (int j = 0; j < devs[i].n; j++) {
			struct engfx_req *t = &devs[i].reqs[j];
			size_t len = t->req.iovcnt ? 0 : t->req.len;

			for (int k = 0; k < t->req.iovcnt; k++)
				len += t->req.iov[k].iov_len;
			assert_int_equal(t->calls, 1);
			if (t->ret)
				fail_msg("device %d request %d (op %d at %llu, %zu bytes): %s", i, j,
					 (int)t->req.op, (unsigned long long)t->req.offset, len,
					 strerror(-t->ret));
		}
}

void engfx_run_lists(struct engfx_dev *devs, int ndev, struct engfx_req **reqs, const int *n,
		     int qd)
{
	for (int i = 0; i < ndev; i++) {
		devs[i].reqs = reqs[i];
		devs[i].n = n[i];
		devs[i].qd = qd;
	}
	engfx_run(devs, ndev);
}

void engfx_add_half_writes(struct engfx_req **reqs, int *n, int ndev, uint8_t *wbuf,
			   uint32_t *gen, uint32_t nblk, uint32_t bsize, unsigned int *seed)
{
	for (uint32_t b = 0; b < nblk; b++) {
		uint8_t *p = wbuf + (size_t)b * bsize;
		int d = (int)(b % (uint32_t)ndev);

		if (rand_r(seed) % 2)
			continue;
		gen[b] = 1;
		for (size_t j = 0; j < bsize; j++)
			p[j] = engfx_byte(b, 1, j);
		engfx_set(&reqs[d][n[d]++], BLOCKDEV_OP_WRITE, (uint64_t)b * bsize, p, bsize);
	}
}

void engfx_check_model(const uint32_t *gen, const uint8_t *rbuf, uint32_t nblk, uint32_t bsize)
{
	for (size_t i = 0; i < (size_t)nblk * bsize; i++) {
		uint32_t b = (uint32_t)(i / bsize);

		if (rbuf[i] != engfx_byte(b, gen[b], i % bsize))
			fail_msg("block %u byte %zu: 0x%02x, not 0x%02x", b, i % bsize, rbuf[i],
				 engfx_byte(b, gen[b], i % bsize));
	}
}

void engfx_read_model(struct engfx_dev *devs, int ndev, const uint32_t *gen, uint8_t *rbuf,
		      uint32_t nblk, uint32_t bsize)
{
	struct engfx_req *reqs[16];
	int n[16] = { 0 };

	assert_true(ndev <= 16);
	for (int i = 0; i < ndev; i++)
		assert_non_null(reqs[i] = calloc(nblk, sizeof(struct engfx_req)));
	memset(rbuf, 0xee, (size_t)nblk * bsize);
	for (uint32_t b = 0; b < nblk; b++) {
		int d = (int)(b / 7 % (uint32_t)ndev);

		engfx_set(&reqs[d][n[d]++], BLOCKDEV_OP_READ, (uint64_t)b * bsize,
			  rbuf + (size_t)b * bsize, bsize);
	}
	engfx_run_lists(devs, ndev, reqs, n, 16);
	engfx_check_model(gen, rbuf, nblk, bsize);
	for (int i = 0; i < ndev; i++)
		free(reqs[i]);
}

void engfx_set(struct engfx_req *t, enum blockdev_op op, uint64_t off, void *p, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->req.op = op;
	t->req.offset = off;
	t->req.len = len;
	t->iov[0] = (struct iovec){ p, len };
	t->req.iov = p ? t->iov : NULL;
	t->req.iovcnt = p ? 1 : 0;
}
