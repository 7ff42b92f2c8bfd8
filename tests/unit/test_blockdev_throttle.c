/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Throttle nodes through the engine on real iothreads: requests over the limit are delayed,
 * never failed, and complete exactly once on their iothread; another queue of the same
 * iothread is served meanwhile; a group shared by queues on two iothreads lets requests go in
 * arrival order; limits changed live take effect at once; a drain does not wait for the limits;
 * the data passes to the file. Nothing here measures a rate (bench/throttle does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/throttle.h"
#include "common/util.h"
#include "iothreads/iothread.h"

#define IMG_SIZE (4u << 20)
#define BLK 4096u
#define NREQ 64

struct treq {
	struct blockdev_req req;
	struct iovec iov;
	struct iothread *it;
	int calls, ret, seq; /* seq: the order it completed in */
	bool on_iothread;
	uint8_t *buf;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int completed;
static sem_t one_done;

static void treq_done(struct blockdev_req *req, int ret)
{
	struct treq *t = container_of(req, struct treq, req);

	pthread_mutex_lock(&lock);
	t->calls++;
	t->ret = ret;
	t->seq = completed++;
	t->on_iothread = iothread_is_current(t->it);
	pthread_mutex_unlock(&lock);
	sem_post(&one_done);
}

struct fix {
	char path[256];
	struct iothread *a, *b;
	struct blockdev *disk, *thr;
	struct blockdev_throttle_group *g;
	struct blockdev_queue *qt_a, *qt_b, *qd_a; /* throttled on a and b, the disk itself on a */
	struct treq r[NREQ];
};

static struct iothread *start(const char *name)
{
	struct iothread_opts o = { .poll_max_ns = IOTHREAD_POLL_MAX_NS_DEFAULT };
	struct error *err = NULL;
	struct iothread *it = iothread_create(name, &o, &err);

	if (!it)
		fail_msg("%s", error_msg(err));
	return it;
}

static void setup(struct fix *f, uint64_t iops)
{
	const char *dir = getenv("VIREO_TEST_TMPDIR");
	struct throttle_limits l;
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct json_object *args;
	int fd;

	memset(f, 0, sizeof(*f));
	completed = 0;
	sem_init(&one_done, 0, 0);
	snprintf(f->path, sizeof(f->path), "%s/vireo-thr-XXXXXX", dir ? dir : "/var/tmp");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SIZE), 0);
	close(fd);
	blockdev_opts_set(&o, "format", "raw", NULL);
	blockdev_opts_set(&o, "node-name", "disk0", NULL);
	f->disk = blockdev_open(f->path, &o, &err);
	blockdev_opts_free(&o);
	if (!f->disk)
		fail_msg("%s", error_msg(err));
	throttle_limits_init(&l);
	l.l[THROTTLE_OPS_TOTAL].avg = iops;
	f->g = blockdev_throttle_group_new("tg0", &l, &err);
	assert_non_null(f->g);
	args = json_tokener_parse("{\"driver\": \"throttle\", \"node-name\": \"t0\", "
				  "\"throttle-group\": \"tg0\", \"file\": \"disk0\"}");
	f->thr = blockdev_add(args, "test", &err);
	json_object_put(args);
	if (!f->thr)
		fail_msg("%s", error_msg(err));
	assert_int_equal(f->thr->size, f->disk->size);
	f->a = start("thr-a");
	f->b = start("thr-b");
	f->qt_a = blockdev_queue_new(f->thr, f->a, &err);
	f->qt_b = blockdev_queue_new(f->thr, f->b, &err);
	f->qd_a = blockdev_queue_new(f->disk, f->a, &err);
	assert_true(f->qt_a && f->qt_b && f->qd_a);
	for (int i = 0; i < NREQ; i++) {
		f->r[i].buf = aligned_alloc(BLK, BLK);
		memset(f->r[i].buf, i, BLK);
	}
}

static int free_queue(void *arg)
{
	struct blockdev_queue *q = arg;
	int ret = blockdev_queue_drain(q);

	blockdev_queue_free(q);
	return ret;
}

static void teardown(struct fix *f)
{
	assert_int_equal(iothread_run_sync(f->a, free_queue, f->qt_a), 0);
	assert_int_equal(iothread_run_sync(f->b, free_queue, f->qt_b), 0);
	assert_int_equal(iothread_run_sync(f->a, free_queue, f->qd_a), 0);
	iothread_destroy(f->a);
	iothread_destroy(f->b);
	blockdev_close(f->thr);
	blockdev_close(f->disk);
	assert_null(blockdev_find_node("t0"));
	blockdev_throttle_group_unref(f->g);
	assert_null(blockdev_throttle_group_find("tg0"));
	for (int i = 0; i < NREQ; i++)
		free(f->r[i].buf);
	unlink(f->path);
	sem_destroy(&one_done);
}

struct batch {
	struct blockdev_queue *q;
	struct treq *r;
	int first; /* index of r[0]: its offset, in blocks */
	struct iothread *it;
	int n;
	enum blockdev_op op;
};

/* On the queue's iothread: submits r[0..n), each 4 KiB at its own offset. */
static int submit_fn(void *arg)
{
	struct batch *b = arg;

	for (int i = 0; i < b->n; i++) {
		struct treq *t = &b->r[i];
		uint64_t off = (uint64_t)(b->first + i) * BLK;

		t->it = b->it;
		t->iov = (struct iovec){ t->buf, BLK };
		t->req = (struct blockdev_req){ .op = b->op, .offset = off, .iov = &t->iov,
						.iovcnt = 1, .done = treq_done };
		blockdev_submit(b->q, &t->req);
	}
	return 0;
}

static void submit(struct fix *f, struct blockdev_queue *q, struct iothread *it, int first,
		   int n, enum blockdev_op op)
{
	struct batch b = { q, &f->r[first], first, it, n, op };

	assert_int_equal(iothread_run_sync(it, submit_fn, &b), 0);
}

static bool wait_done(int n, int secs)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += secs;
	for (int i = 0; i < n; i++)
		if (sem_timedwait(&one_done, &ts) < 0)
			return false;
	return true;
}

/* Waits up to @secs until r[from..to) completed. */
static bool wait_range(struct fix *f, int from, int to, int secs)
{
	for (int ms = 0; ms < secs * 1000; ms++) {
		bool all = true;

		pthread_mutex_lock(&lock);
		for (int i = from; i < to; i++)
			all &= f->r[i].calls > 0;
		pthread_mutex_unlock(&lock);
		if (all)
			return true;
		usleep(1000);
	}
	return false;
}

static int done_count(void)
{
	int n;

	pthread_mutex_lock(&lock);
	n = completed;
	pthread_mutex_unlock(&lock);
	return n;
}

static void held_requests_wait_and_the_iothreads_other_queues_do_not(void **state)
{
	struct fix f;

	setup(&f, 20); /* two at once (a tenth of a second), then one per 50 ms */
	submit(&f, f.qt_a, f.a, 0, 12, BLOCKDEV_OP_WRITE);
	assert_true(done_count() <= 4);
	/* the disk's own queue on the same iothread goes at once */
	submit(&f, f.qd_a, f.a, 20, 8, BLOCKDEV_OP_READ);
	assert_true(wait_range(&f, 20, 28, 10));
	assert_true(done_count() < 20); /* most throttled writes still wait (0.5 s of them) */
	assert_true(wait_range(&f, 0, 12, 30));
	for (int i = 0; i < 12; i++) {
		assert_int_equal(f.r[i].calls, 1);
		assert_int_equal(f.r[i].ret, 0); /* delayed, not failed */
		assert_true(f.r[i].on_iothread);
	}
	for (int i = 4; i < 11; i++) /* the held ones went in the order they came */
		assert_true(f.r[i].seq < f.r[i + 1].seq);
	teardown(&f);
}

static void a_group_shared_by_two_iothreads_lets_requests_go_in_arrival_order(void **state)
{
	struct fix f;

	setup(&f, 50);
	submit(&f, f.qt_a, f.a, 0, 6, BLOCKDEV_OP_READ);
	submit(&f, f.qt_b, f.b, 6, 6, BLOCKDEV_OP_READ);
	submit(&f, f.qt_a, f.a, 12, 6, BLOCKDEV_OP_READ);
	assert_true(wait_done(18, 30));
	for (int i = 0; i < 18; i++) {
		assert_int_equal(f.r[i].calls, 1);
		assert_int_equal(f.r[i].ret, 0);
		assert_true(f.r[i].on_iothread);
		assert_ptr_equal(f.r[i].it, i < 6 || i >= 12 ? f.a : f.b);
	}
	for (int i = 6; i < 17; i++) /* 20 ms apart once the first ones went */
		assert_true(f.r[i].seq < f.r[i + 1].seq);
	teardown(&f);
}

static int drain_fn(void *arg)
{
	return blockdev_queue_drain(arg);
}

static void limits_change_live_and_a_drain_does_not_wait_for_them(void **state)
{
	struct throttle_limits l;
	struct fix f;
	uint64_t t0;

	setup(&f, 1); /* one at once, then one a second */
	submit(&f, f.qt_a, f.a, 0, 6, BLOCKDEV_OP_WRITE);
	assert_true(wait_done(1, 10));
	usleep(100000);
	assert_int_equal(done_count(), 1);
	throttle_limits_init(&l); /* no limits: the rest go now, not in 5 s */
	t0 = iothread_clock_ns();
	assert_int_equal(blockdev_throttle_group_set_limits(f.g, &l, NULL), 0);
	assert_true(wait_done(5, 10));
	assert_true(iothread_clock_ns() - t0 < 2000000000ull);
	/* back to one a second: a drain lets the held ones go at once */
	l.l[THROTTLE_OPS_TOTAL].avg = 1;
	assert_int_equal(blockdev_throttle_group_set_limits(f.g, &l, NULL), 0);
	submit(&f, f.qt_a, f.a, 10, 6, BLOCKDEV_OP_READ);
	t0 = iothread_clock_ns();
	assert_int_equal(iothread_run_sync(f.a, drain_fn, f.qt_a), 0);
	assert_true(iothread_clock_ns() - t0 < 2000000000ull);
	assert_int_equal(done_count(), 12);
	/* bad limits are refused and change nothing */
	l.l[THROTTLE_OPS_READ].avg = 5;
	assert_int_equal(blockdev_throttle_group_set_limits(f.g, &l, NULL), -1);
	blockdev_throttle_group_limits(f.g, &l);
	assert_int_equal(l.l[THROTTLE_OPS_READ].avg, 0);
	teardown(&f);
}

static void the_data_passes_to_the_file_and_a_throttle_node_stays_on_top(void **state)
{
	struct fix f;
	struct error *err = NULL;
	struct json_object *args;
	uint8_t buf[BLK];

	setup(&f, 1000);
	submit(&f, f.qt_a, f.a, 0, 4, BLOCKDEV_OP_WRITE);
	assert_true(wait_done(4, 10));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(blockdev_pread(f.disk, (uint64_t)i * BLK, buf, BLK), 0);
		assert_int_equal(buf[0], i);
		assert_int_equal(blockdev_pread(f.thr, (uint64_t)i * BLK, buf, BLK), 0);
		assert_int_equal(buf[BLK - 1], i);
	}
	/* a format over a throttle node, a throttle over a throttle, an unknown group */
	args = json_tokener_parse("{\"driver\": \"raw\", \"node-name\": \"r1\", \"file\": \"t0\"}");
	assert_null(blockdev_add(args, "test", &err));
	assert_non_null(strstr(error_msg(err), "must be the top"));
	error_free(err);
	err = NULL;
	json_object_put(args);
	args = json_tokener_parse("{\"driver\": \"throttle\", \"node-name\": \"t1\", "
				  "\"throttle-group\": \"tg0\", \"file\": \"t0\"}");
	assert_null(blockdev_add(args, "test", &err));
	assert_non_null(strstr(error_msg(err), "throttle node already"));
	error_free(err);
	err = NULL;
	json_object_put(args);
	args = json_object_new_object(); /* over a node of its own (disk0 shares no writer) */
	json_object_object_add(args, "driver", json_object_new_string("throttle"));
	json_object_object_add(args, "node-name", json_object_new_string("t1"));
	json_object_object_add(args, "throttle-group", json_object_new_string("nope"));
	json_object_object_add(args, "read-only", json_object_new_boolean(true));
	json_object_object_add(args, "file", json_tokener_parse("{\"driver\": \"file\"}"));
	json_object_object_add(json_object_object_get(args, "file"), "filename",
			       json_object_new_string(f.path));
	assert_null(blockdev_add(args, "test", &err));
	if (!strstr(error_msg(err), "no throttle group named 'nope'"))
		fail_msg("%s", error_msg(err));
	error_free(err);
	json_object_put(args);
	teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(held_requests_wait_and_the_iothreads_other_queues_do_not),
		cmocka_unit_test(a_group_shared_by_two_iothreads_lets_requests_go_in_arrival_order),
		cmocka_unit_test(limits_change_live_and_a_drain_does_not_wait_for_them),
		cmocka_unit_test(the_data_passes_to_the_file_and_a_throttle_node_stays_on_top),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
