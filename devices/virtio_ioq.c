/* SPDX-License-Identifier: Apache-2.0 */
/* A virtqueue served on an iothread; ownership is in virtio_ioq.h. */
#include "devices/virtio_ioq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "blockdev/blockdev.h"
#include "common/util.h"
#include "devices/virtio_pci.h"

int vioq_pop(struct vioq *q, struct virtq_elem *e)
{
	int ret = virtq_pop(q->vq, e);

	if (ret < 0 && !q->broken_reported) {
		q->broken_reported = true;
		fprintf(stderr, "vireo: %s: queue %u: the driver corrupted the ring; device needs "
			"reset\n", q->name, q->index);
		vpci_set_needs_reset(q->vpci);
	}
	return ret;
}

void vioq_push(struct vioq *q, uint16_t head, uint32_t len)
{
	virtq_push(q->vq, head, len);
	q->pushed = true;
}

void vioq_flush(struct vioq *q)
{
	if (!q->pushed)
		return;
	q->pushed = false;
	if (virtq_should_notify(q->vq) && q->vq->call_fd >= 0)
		eventfd_write(q->vq->call_fd, 1);
}

static void src_notify_enable(struct iothread_source *src, bool enable)
{
	struct vioq *q = container_of(src, struct vioq, src);

	/* virtq_set_notify ends with the full barrier the iothread's sleep protocol needs */
	virtq_set_notify(q->vq, enable);
}

static void src_flush(struct iothread_source *src)
{
	vioq_flush(container_of(src, struct vioq, src));
}

int vioq_start(struct vioq *q, int (*poll)(struct iothread_source *src), struct error **errp)
{
	q->pushed = false;
	q->broken_reported = false;
	q->src = (struct iothread_source){ .poll = poll,
					   .notify_enable = src_notify_enable,
					   .flush = src_flush,
					   .kick_fd = q->vq->kick_fd };
	if (iothread_add_source(q->it, &q->src, errp) < 0)
		return -1;
	q->running = true;
	return 0;
}

void vioq_pause(struct vioq *q)
{
	if (q->running)
		iothread_remove_source(q->it, &q->src);
}

void vioq_resume(struct vioq *q)
{
	struct error *err = NULL;

	if (q->running && iothread_add_source(q->it, &q->src, &err) < 0) {
		fprintf(stderr, "vireo: %s: queue %u: %s; device needs reset\n", q->name, q->index,
			error_msg(err));
		error_free(err);
		q->running = false;
		vpci_set_needs_reset(q->vpci);
	}
}

struct status_arg {
	struct vioq *q;
	unsigned int (*inuse)(void *arg);
	void *arg;
	struct vioq_status *st;
};

static int status_on_iothread(void *arg)
{
	struct status_arg *a = arg;

	a->st->inuse = a->inuse ? a->inuse(a->arg) : 0;
	virtq_get_status(a->q->vq, &a->st->vq);
	return 0;
}

int vioq_get_status(struct vioq *q, unsigned int size_default,
		    unsigned int (*inuse)(void *arg), void *arg, struct vioq_status *st,
		    struct error **errp)
{
	struct status_arg a = { q, inuse, arg, st };
	int ret = 0;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&q->vpci->lock);
	st->running = q->running;
	st->iothread = iothread_name(q->it);
	st->size_default = size_default;
	if (q->running)
		ret = iothread_run_sync(q->it, status_on_iothread, &a);
	pthread_mutex_unlock(&q->vpci->lock);
	if (ret < 0)
		error_setg_errno(errp, -ret, "%s: iothread %s did not answer for queue %u", q->name,
				 st->iothread, q->index);
	return ret < 0 ? -1 : 0;
}

int vioq_check_geometry(const char *name, unsigned int nq, unsigned int max_nq,
			unsigned int qs, struct error **errp)
{
	if (nq == 0 || nq > max_nq || qs < 4 || qs > VIRTQ_MAX_SIZE || (qs & (qs - 1))) {
		error_setg(errp, "%s: bad geometry: %u queues of size %u (1..%u queues; size: a "
			   "power of two, 4..%u)", name, nq, qs, max_nq, VIRTQ_MAX_SIZE);
		return -1;
	}
	return 0;
}

int vioq_threads_find(const struct vioq_threads *t, const struct iothread *it)
{
	for (unsigned int i = 0; i < t->n; i++)
		if (t->its[i] == it)
			return (int)i;
	return -1;
}

unsigned int vioq_threads_add(struct vioq_threads *t, struct iothread *it)
{
	int i = vioq_threads_find(t, it);

	if (i >= 0)
		return (unsigned int)i;
	t->its[t->n] = it;
	return t->n++;
}

static int free_on_iothread(void *arg)
{
	blockdev_queue_free(arg);
	return 0;
}

static int drain_on_iothread(void *arg)
{
	return blockdev_queue_drain(arg);
}

static int forget_on_iothread(void *arg)
{
	blockdev_queue_forget_files(arg);
	return 0;
}

int vioq_bqs_new(const struct vioq_threads *t, struct blockdev *bs, struct blockdev_queue **out,
		 struct error **errp)
{
	for (unsigned int i = 0; i < t->n; i++) {
		out[i] = blockdev_queue_new(bs, t->its[i], errp);
		if (!out[i]) {
			while (i--) {
				iothread_run_sync(t->its[i], free_on_iothread, out[i]);
				out[i] = NULL;
			}
			return -1;
		}
	}
	return 0;
}

void vioq_bqs_free(const struct vioq_threads *t, struct blockdev_queue **bqs)
{
	for (unsigned int i = 0; i < t->n; i++) {
		if (bqs[i])
			iothread_run_sync(t->its[i], free_on_iothread, bqs[i]);
		bqs[i] = NULL;
	}
}

void vioq_bqs_drain(const struct vioq_threads *t, struct blockdev_queue **bqs, const char *name)
{
	for (unsigned int i = 0; i < t->n; i++) {
		int ret = iothread_run_sync(t->its[i], drain_on_iothread, bqs[i]);

		if (ret < 0)
			fprintf(stderr, "vireo: %s: draining requests on %s failed: %s\n", name,
				iothread_name(t->its[i]), strerror(-ret));
	}
}

void vioq_bqs_forget(const struct vioq_threads *t, struct blockdev_queue **bqs)
{
	for (unsigned int i = 0; i < t->n; i++)
		iothread_run_sync(t->its[i], forget_on_iothread, bqs[i]);
}

/* Adds @v to a counter only this queue's iothread writes. */
static void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

void vioq_count(struct vioq_counters *c, unsigned int acct, uint64_t bytes, uint64_t start_ns,
		uint64_t now_ns, bool failed, uint64_t end)
{
	stat_add(&c->ops[acct], 1);
	stat_add(&c->bytes[acct], bytes);
	stat_add(&c->ns[acct], now_ns - start_ns);
	if (failed)
		stat_add(&c->failed[acct], 1);
	else if (acct == VIOQ_ACCT_WRITE &&
		 end > atomic_load_explicit(&c->wr_highest, memory_order_relaxed))
		atomic_store_explicit(&c->wr_highest, end, memory_order_relaxed);
	atomic_store_explicit(&c->last_ns, now_ns, memory_order_relaxed);
}

void vioq_count_invalid(struct vioq_counters *c, unsigned int acct)
{
	stat_add(&c->invalid[acct], 1);
}

void vioq_counters_sum(const struct vioq_counters *c, struct vioq_stats *st)
{
	uint64_t last = atomic_load_explicit(&c->last_ns, memory_order_relaxed);
	uint64_t wr = atomic_load_explicit(&c->wr_highest, memory_order_relaxed);

	for (unsigned int k = 0; k < VIOQ_ACCT_NR; k++) {
		st->ops[k] += atomic_load_explicit(&c->ops[k], memory_order_relaxed);
		st->bytes[k] += atomic_load_explicit(&c->bytes[k], memory_order_relaxed);
		st->total_ns[k] += atomic_load_explicit(&c->ns[k], memory_order_relaxed);
		st->failed[k] += atomic_load_explicit(&c->failed[k], memory_order_relaxed);
		st->invalid[k] += atomic_load_explicit(&c->invalid[k], memory_order_relaxed);
	}
	st->last_done_ns = MAX(st->last_done_ns, last);
	st->wr_highest_offset = MAX(st->wr_highest_offset, wr);
}

/* Calls @fn on each piece of [@skip, @skip + @len) of @iov. */
static void iov_walk(const struct iovec *iov, unsigned int cnt, uint64_t skip, uint64_t len,
		     void (*fn)(uint8_t *piece, size_t n, uint8_t *buf), uint8_t *buf)
{
	for (unsigned int i = 0; i < cnt && len; i++) {
		size_t n;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		n = (size_t)MIN(len, (uint64_t)iov[i].iov_len - skip);
		fn((uint8_t *)iov[i].iov_base + skip, n, buf);
		buf += n;
		len -= n;
		skip = 0;
	}
}

static void to_buf(uint8_t *piece, size_t n, uint8_t *buf)
{
	memcpy(buf, piece, n);
}

static void from_buf(uint8_t *piece, size_t n, uint8_t *buf)
{
	memcpy(piece, buf, n);
}

void vioq_iov_to_buf(const struct iovec *iov, unsigned int cnt, uint64_t skip, void *dst,
		     uint64_t len)
{
	iov_walk(iov, cnt, skip, len, to_buf, dst);
}

void vioq_iov_from_buf(const struct iovec *iov, unsigned int cnt, uint64_t skip,
		       const void *src, uint64_t len)
{
	iov_walk(iov, cnt, skip, len, from_buf, (uint8_t *)src);
}

unsigned int vioq_iov_tail(const struct iovec *iov, unsigned int cnt, uint64_t skip,
			   struct iovec *out)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < cnt; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		/* a buffer outside guest RAM (NULL) stays NULL for the caller to refuse */
		uint8_t *base = iov[i].iov_base ? (uint8_t *)iov[i].iov_base + skip : NULL;
		struct iovec v = { base, iov[i].iov_len - skip };

		out[n++] = v; /* read before written: @out may be @iov */
		skip = 0;
	}
	return n;
}
