/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Throttle groups and the `throttle` filter driver (see throttle.h for the arithmetic).
 *
 * Who owns what.
 *  - A `struct blockdev_throttle_group` is created and found by the control plane (the
 *    registry below, its own mutex) and lives while a reference is held: its creator's (an
 *    --object throttle-group, or a --drive that gave limits) and one per throttle node.
 *  - Its buckets, its two FIFOs of held requests (reads, writes) and every member's `ready`
 *    list and flags are guarded by the group's `lock`. Requests of several drives on several
 *    iothreads meet there, so it is the one lock on this path; every critical section is a
 *    few list operations and bucket updates, never I/O, never a wait. Lock order: the group's
 *    lock, then an iothread's message lock (iothread_post is called with it held).
 *  - A `struct throttle_member` is one throttle node's queue on one iothread (created with the
 *    engine's blockdev_queue). Its timer and everything it issues belong to that iothread: a
 *    request is only ever issued by its own queue's iothread.
 *
 * How a request goes. blockdev_hold() on the submitting iothread: if nothing of its direction
 * is held and the buckets allow it, it is accounted and goes at once (the common case under
 * the limit: one lock round trip). Otherwise it joins the tail of its direction's FIFO, and
 * release() runs: while the head of a FIFO may go, it is accounted and moved to its member's
 * ready list, so requests leave in the group's arrival order. A member finds its ready
 * requests and issues them (blockdev_queue_issue) when it runs release() itself (its submit,
 * its timer, a drain) or when another iothread that released them posts it a kick (one
 * message at most in flight per member: kick_pending). When the heads must wait, the member
 * running release() arms its own iothread's timer for the earliest moment one may go and
 * records itself as the group's timer owner; a member that leaves while owning it hands the
 * wake-up to the member holding a head. So held requests wait on a timer in their
 * iothread's ring (or another member's), and nothing else on that iothread waits: other
 * queues keep being served.
 *
 * Limits changed live (block_set_io_throttle, any thread): under the lock, the buckets take
 * the new rates and the members holding the heads are kicked, so the wait is computed again.
 * A drain lets the member's held requests go at once (accounted), as QEMU does, so that a
 * drained section does not wait for the limits.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/internal.h"
#include "blockdev/throttle.h"
#include "common/util.h"

struct blockdev_throttle_group {
	char *name;
	unsigned int refs; /* control plane, under registry_lock */
	struct blockdev_throttle_group *next;

	pthread_mutex_t lock; /* guards what follows, and the members' lists and flags */
	struct throttle_state ts;
	struct blockdev_req *head[2], **tail[2]; /* held, per direction (0 read, 1 write) */
	struct throttle_member *members;
	struct throttle_member *timer_owner; /* the member whose timer will run release() */
	uint64_t timer_deadline;
};

struct throttle_member {
	struct blockdev_throttle_group *g;
	struct blockdev_queue *q;
	struct iothread *it;
	struct iothread_timer timer;
	struct throttle_member *next;
	/* under g->lock */
	struct blockdev_req *ready, **ready_tail; /* released, to issue on our iothread */
	bool kick_pending;                        /* a kick message is posted to it */
	/* iothread only */
	bool dead; /* left the group; a kick still posted finds it so and does nothing */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blockdev_throttle_group *groups;

static uint64_t clock_ns(void)
{
	return iothread_clock_ns();
}

/* ---- groups ---------------------------------------------------------------------------------- */

struct blockdev_throttle_group *blockdev_throttle_group_find(const char *name)
{
	struct blockdev_throttle_group *g;

	pthread_mutex_lock(&registry_lock);
	for (g = groups; g; g = g->next)
		if (!strcmp(g->name, name))
			break;
	pthread_mutex_unlock(&registry_lock);
	return g;
}

struct blockdev_throttle_group *blockdev_throttle_group_new(const char *name,
							    const struct throttle_limits *l,
							    struct error **errp)
{
	struct blockdev_throttle_group *g;

	if (throttle_limits_check(l, errp) < 0)
		return NULL;
	if (blockdev_throttle_group_find(name)) {
		error_setg(errp, "throttle group '%s' already exists", name);
		return NULL;
	}
	g = calloc(1, sizeof(*g));
	if (!g || !(g->name = strdup(name))) {
		free(g);
		error_setg(errp, "throttle group '%s': out of memory", name);
		return NULL;
	}
	g->refs = 1;
	pthread_mutex_init(&g->lock, NULL);
	throttle_state_init(&g->ts, l, clock_ns());
	for (int d = 0; d < 2; d++)
		g->tail[d] = &g->head[d];
	pthread_mutex_lock(&registry_lock);
	g->next = groups;
	groups = g;
	pthread_mutex_unlock(&registry_lock);
	return g;
}

void blockdev_throttle_group_ref(struct blockdev_throttle_group *g)
{
	pthread_mutex_lock(&registry_lock);
	g->refs++;
	pthread_mutex_unlock(&registry_lock);
}

void blockdev_throttle_group_unref(struct blockdev_throttle_group *g)
{
	bool last;

	if (!g)
		return;
	pthread_mutex_lock(&registry_lock);
	last = --g->refs == 0;
	if (last) {
		for (struct blockdev_throttle_group **p = &groups; *p; p = &(*p)->next) {
			if (*p == g) {
				*p = g->next;
				break;
			}
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (!last)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g->name);
	free(g);
}

const char *blockdev_throttle_group_name(const struct blockdev_throttle_group *g)
{
	return g->name;
}

void blockdev_throttle_group_limits(struct blockdev_throttle_group *g, struct throttle_limits *l)
{
	pthread_mutex_lock(&g->lock);
	*l = g->ts.lim;
	pthread_mutex_unlock(&g->lock);
}

static void kick(struct throttle_member *m);

int blockdev_throttle_group_set_limits(struct blockdev_throttle_group *g,
				       const struct throttle_limits *l, struct error **errp)
{
	if (throttle_limits_check(l, errp) < 0)
		return -1;
	pthread_mutex_lock(&g->lock);
	throttle_state_set(&g->ts, l, clock_ns());
	/* the heads' wait changed: their members compute it again (and re-arm a timer) */
	for (int d = 0; d < 2; d++)
		if (g->head[d])
			kick(blockdev_queue_throttle(g->head[d]->priv.q));
	pthread_mutex_unlock(&g->lock);
	return 0;
}

/* ---- releasing held requests ----------------------------------------------------------------- */

static bool is_write(const struct blockdev_req *req)
{
	return req->op != BLOCKDEV_OP_READ;
}

/* Counted by the throttle? Flushes are not (as QEMU's): they pass at once. */
static bool throttled_op(const struct blockdev_req *req)
{
	return req->op != BLOCKDEV_OP_FLUSH;
}

static void kick_fn(void *arg);

/* Under g->lock: make @m look at its ready list (and run release()) on its iothread. */
static void kick(struct throttle_member *m)
{
	if (m->kick_pending)
		return;
	if (iothread_post(m->it, kick_fn, m) < 0)
		return; /* out of memory: its own timer or next submit finds the list */
	m->kick_pending = true;
}

static void to_ready(struct throttle_member *m, struct blockdev_req *req)
{
	req->priv.held_next = NULL;
	*m->ready_tail = req;
	m->ready_tail = &req->priv.held_next;
}

/*
 * Under g->lock, on @self's iothread: lets the heads go while the buckets allow, in order,
 * onto their members' ready lists (kicking the other members), and arms @self's timer for
 * the earliest head that must wait.
 */
static void release(struct blockdev_throttle_group *g, struct throttle_member *self)
{
	uint64_t now = clock_ns(), wait = UINT64_MAX;

	for (int d = 0; d < 2; d++) {
		while (g->head[d]) {
			struct blockdev_req *req = g->head[d];
			struct throttle_member *m = blockdev_queue_throttle(req->priv.q);
			uint64_t w = throttle_wait_ns(&g->ts, d, now);

			if (w) {
				wait = MIN(wait, w);
				break;
			}
			g->head[d] = req->priv.held_next;
			if (!g->head[d])
				g->tail[d] = &g->head[d];
			throttle_account(&g->ts, d, req->priv.len, now);
			to_ready(m, req);
			if (m != self)
				kick(m);
		}
	}
	if (wait == UINT64_MAX)
		return;
	if (g->timer_owner && g->timer_deadline <= now + wait)
		return; /* a timer that fires soon enough is armed already */
	g->timer_owner = self;
	g->timer_deadline = now + wait;
	iothread_timer_arm(self->it, &self->timer, now + wait);
}

/* Runs release() for @m, then issues what is ready for it (on its iothread). */
static void run(struct throttle_member *m)
{
	struct blockdev_throttle_group *g = m->g;
	struct blockdev_req *list;

	pthread_mutex_lock(&g->lock);
	release(g, m);
	list = m->ready;
	m->ready = NULL;
	m->ready_tail = &m->ready;
	pthread_mutex_unlock(&g->lock);
	while (list) {
		struct blockdev_req *req = list;

		list = req->priv.held_next;
		blockdev_queue_issue(m->q, req);
	}
}

static void kick_fn(void *arg)
{
	struct throttle_member *m = arg;

	if (m->dead) { /* left the group after this was posted: the message frees it */
		free(m);
		return;
	}
	pthread_mutex_lock(&m->g->lock);
	m->kick_pending = false;
	pthread_mutex_unlock(&m->g->lock);
	run(m);
}

static void timer_fire(struct iothread_timer *t)
{
	struct throttle_member *m = container_of(t, struct throttle_member, timer);

	pthread_mutex_lock(&m->g->lock);
	if (m->g->timer_owner == m)
		m->g->timer_owner = NULL;
	pthread_mutex_unlock(&m->g->lock);
	run(m);
}

bool blockdev_throttle_hold(struct throttle_member *m, struct blockdev_req *req)
{
	struct blockdev_throttle_group *g = m->g;
	int d = is_write(req);

	if (!throttled_op(req))
		return false;
	pthread_mutex_lock(&g->lock);
	if (!g->head[d] && !throttle_wait_ns(&g->ts, d, clock_ns())) {
		throttle_account(&g->ts, d, req->priv.len, clock_ns());
		pthread_mutex_unlock(&g->lock);
		return false;
	}
	req->priv.held_next = NULL;
	*g->tail[d] = req;
	g->tail[d] = &req->priv.held_next;
	pthread_mutex_unlock(&g->lock);
	/* the head may go now (a timer elsewhere is late): release() finds it, or arms ours */
	run(m);
	return true;
}

void blockdev_throttle_flush(struct throttle_member *m)
{
	struct blockdev_throttle_group *g = m->g;
	uint64_t now = clock_ns();

	pthread_mutex_lock(&g->lock);
	for (int d = 0; d < 2; d++) { /* take ours out, keep the others in their order */
		struct blockdev_req *list = g->head[d];

		g->head[d] = NULL;
		g->tail[d] = &g->head[d];
		while (list) {
			struct blockdev_req *req = list;

			list = req->priv.held_next;
			if (blockdev_queue_throttle(req->priv.q) == m) {
				throttle_account(&g->ts, d, req->priv.len, now);
				to_ready(m, req);
				continue;
			}
			req->priv.held_next = NULL;
			*g->tail[d] = req;
			g->tail[d] = &req->priv.held_next;
		}
	}
	pthread_mutex_unlock(&g->lock);
	run(m);
}

/* ---- members --------------------------------------------------------------------------------- */

struct throttle_member *blockdev_throttle_member_new(struct blockdev *bs,
						     struct blockdev_queue *q, struct iothread *it,
						     struct error **errp)
{
	struct blockdev_throttle_group *g = bs->opaque;
	struct throttle_member *m = calloc(1, sizeof(*m));

	if (!m) {
		error_setg(errp, "'%s': out of memory", bs->node_name);
		return NULL;
	}
	m->g = g;
	m->q = q;
	m->it = it;
	m->timer.fire = timer_fire;
	m->ready_tail = &m->ready;
	pthread_mutex_lock(&g->lock);
	m->next = g->members;
	g->members = m;
	pthread_mutex_unlock(&g->lock);
	return m;
}

void blockdev_throttle_member_free(struct throttle_member *m)
{
	struct blockdev_throttle_group *g;
	bool posted;

	if (!m)
		return;
	g = m->g;
	pthread_mutex_lock(&g->lock);
	for (struct throttle_member **p = &g->members; *p; p = &(*p)->next) {
		if (*p == m) {
			*p = m->next;
			break;
		}
	}
	if (g->timer_owner == m) { /* hand the wake-up to a member that holds a head */
		g->timer_owner = NULL;
		for (int d = 0; d < 2; d++)
			if (g->head[d])
				kick(blockdev_queue_throttle(g->head[d]->priv.q));
	}
	posted = m->kick_pending;
	pthread_mutex_unlock(&g->lock);
	if (iothread_is_current(m->it))
		iothread_timer_cancel(m->it, &m->timer);
	m->dead = true;
	if (!posted || !iothread_is_current(m->it))
		free(m); /* not on its iothread: that iothread is gone, and its messages with it */
	/* else the kick still posted frees it (kick_fn) */
}

/* ---- the throttle filter driver -------------------------------------------------------------- */

struct blockdev_throttle_group *blockdev_throttle_node_group(const struct blockdev *bs)
{
	return bs->drv == &blockdev_throttle ? bs->opaque : NULL;
}

static int thr_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	const char *name = blockdev_opt_get(ctx, "throttle-group");
	struct blockdev_throttle_group *g;

	if (!name) {
		error_setg(errp, "driver throttle needs a throttle-group (an --object "
			   "throttle-group id)");
		return -1;
	}
	g = blockdev_throttle_group_find(name);
	if (!g) {
		error_setg(errp, "throttle-group: no throttle group named '%s'", name);
		return -1;
	}
	if (blockdev_throttle_node_group(bs->file)) {
		error_setg(errp, "file: node '%s' is a throttle node already (one throttle node "
			   "per chain)", bs->file->node_name);
		return -1;
	}
	blockdev_throttle_group_ref(g);
	bs->opaque = g;
	bs->size = bs->file->size;
	return 0;
}

static void thr_close(struct blockdev *bs)
{
	blockdev_throttle_group_unref(bs->opaque);
}

/*
 * The synchronous path (a job thread, a tool) waits by sleeping, its turn among the held
 * requests not kept: it is never an iothread's.
 */
static void sync_wait(struct blockdev *bs, bool write, uint64_t len)
{
	struct blockdev_throttle_group *g = bs->opaque;

	for (;;) {
		struct timespec ts;
		uint64_t w;

		pthread_mutex_lock(&g->lock);
		w = throttle_wait_ns(&g->ts, write, clock_ns());
		if (!w)
			throttle_account(&g->ts, write, len, clock_ns());
		pthread_mutex_unlock(&g->lock);
		if (!w)
			return;
		ts.tv_sec = (time_t)(w / 1000000000u);
		ts.tv_nsec = (long)(w % 1000000000u);
		nanosleep(&ts, NULL);
	}
}

static int thr_map(struct blockdev *bs, enum blockdev_op op, uint64_t offset, uint64_t len,
		   struct blockdev_extent *ext)
{
	/* the engine issues a throttle node's requests on its file: only a caller of
	 * blockdev_map lands here, and asks about the data */
	return blockdev_map(bs->file, op, offset, len, ext);
}

static int thr_preadv(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	sync_wait(bs, false, blockdev_iov_size(iov, iovcnt));
	return blockdev_preadv(bs->file, offset, iov, iovcnt);
}

static int thr_pwritev(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	sync_wait(bs, true, blockdev_iov_size(iov, iovcnt));
	return blockdev_pwritev(bs->file, offset, iov, iovcnt);
}

static int thr_flush(struct blockdev *bs)
{
	return blockdev_flush(bs->file);
}

static int thr_discard(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	sync_wait(bs, true, len);
	return blockdev_discard(bs->file, offset, len);
}

static int thr_write_zeroes(struct blockdev *bs, uint64_t offset, uint64_t len,
			    unsigned int flags)
{
	sync_wait(bs, true, len);
	return blockdev_write_zeroes(bs->file, offset, len, flags);
}

static int thr_block_status(struct blockdev *bs, uint64_t offset, uint64_t len, uint64_t *pnum,
			    uint64_t *map_offset, struct blockdev **map_file)
{
	return blockdev_block_status(bs->file, offset, len, pnum, map_offset, map_file);
}

static int thr_truncate(struct blockdev *bs, uint64_t size, struct error **errp)
{
	if (blockdev_truncate(bs->file, size, errp) < 0)
		return -1;
	bs->size = bs->file->size;
	return 0;
}

const struct blockdev_driver blockdev_throttle = {
	.name = "throttle",
	.filter = true,
	.open = thr_open,
	.close = thr_close,
	.map = thr_map,
	.preadv = thr_preadv,
	.pwritev = thr_pwritev,
	.flush = thr_flush,
	.discard = thr_discard,
	.write_zeroes = thr_write_zeroes,
	.block_status = thr_block_status,
	.truncate = thr_truncate,
};

struct blockdev *blockdev_throttle_open_over(struct blockdev *bs, const char *group,
					     struct error **errp)
{
	struct blockdev_opts o = { .readonly = bs->read_only };
	struct blockdev_open_ctx ctx = { .filename = bs->filename, .opts = &o };
	struct blockdev *t = NULL;
	bool used[1] = { false };

	ctx.used = used;
	if (blockdev_opts_set(&o, "throttle-group", group, errp) == 0)
		t = blockdev_open_format(bs, &blockdev_throttle, &ctx, errp);
	blockdev_opts_free(&o);
	return t;
}

struct blockdev_throttle_group *blockdev_throttle_group_get(const char *name,
							    const struct throttle_limits *l,
							    struct error **errp)
{
	struct blockdev_throttle_group *g = blockdev_throttle_group_find(name);

	if (!g)
		return blockdev_throttle_group_new(name, l, errp);
	if (blockdev_throttle_group_set_limits(g, l, errp) < 0)
		return NULL;
	blockdev_throttle_group_ref(g);
	return g;
}
