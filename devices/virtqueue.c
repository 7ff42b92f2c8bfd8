/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueue, device side; ownership and the hostile-guest rules are in virtqueue.h. */
#include "devices/virtqueue.h"

#include <errno.h>
#include <string.h>

/* Guest ring fields are read and written with atomics: the driver changes them concurrently. */
#define LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static inline uint16_t *used_event_ptr(struct virtq *vq)
{
	return &vq->avail->ring[vq->size];
}

static inline uint16_t *avail_event_ptr(struct virtq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

int virtq_start(struct virtq *vq)
{
	unsigned int n = vq->size;

	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return -EINVAL;
	vq->desc = gmem_ptr(vq->mem, vq->desc_gpa, virtq_desc_bytes(n));
	vq->avail = gmem_ptr(vq->mem, vq->avail_gpa, virtq_avail_bytes(n));
	vq->used = gmem_ptr(vq->mem, vq->used_gpa, virtq_used_bytes(n));
	if (!vq->desc || !vq->avail || !vq->used)
		return -EFAULT;
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_valid = false;
	vq->notify_enabled = true;
	vq->broken = false;
	return 0;
}

/* Copies descriptor @d out of guest memory (it may change under us; we check the copy). */
static inline void desc_load(const struct virtq_desc *src, struct virtq_desc *d)
{
	memcpy(d, src, sizeof(*d));
}

/* Adds one buffer to the element. */
static int elem_add(struct virtq *vq, struct virtq_elem *e, const struct virtq_desc *d)
{
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	struct iovec *iov;

	if (d->len == 0)
		return 0;
	if (!writable && e->nr_in)
		return -EINVAL; /* readable after writable */
	if (e->nr_out + e->nr_in >= e->cap)
		return -E2BIG;
	iov = &e->iov[e->nr_out + e->nr_in];
	iov->iov_base = gmem_ptr(vq->mem, d->addr, d->len);
	iov->iov_len = d->len;
	if (!iov->iov_base && !e->err)
		e->err = -EFAULT; /* keep walking: the chain's shape stays known */
	if (writable) {
		e->nr_in++;
		e->in_len += d->len;
	} else {
		e->nr_out++;
		e->out_len += d->len;
	}
	return 0;
}

/* Walks the indirect table described by @d; it ends the chain. */
static int walk_indirect(struct virtq *vq, struct virtq_elem *e, const struct virtq_desc *d)
{
	const struct virtq_desc *table;
	unsigned int n, walked = 0;
	uint16_t i = 0;

	if (!vq->indirect || (d->flags & VIRTQ_DESC_F_NEXT) || d->len == 0 || d->len % 16)
		return -EINVAL;
	n = d->len / 16;
	if (n > VIRTQ_INDIRECT_MAX)
		return -ELOOP;
	table = gmem_ptr(vq->mem, d->addr, d->len);
	if (!table)
		return -ENXIO;
	for (;;) {
		struct virtq_desc x;
		int ret;

		if (++walked > n)
			return -ELOOP;
		desc_load(&table[i], &x);
		if (x.flags & VIRTQ_DESC_F_INDIRECT)
			return -EINVAL; /* no nested tables */
		ret = elem_add(vq, e, &x);
		if (ret)
			return ret;
		if (!(x.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (x.next >= n)
			return -EINVAL;
		i = x.next;
	}
}

/* Walks the chain starting at @head; returns 0 or the element's error. */
static int walk(struct virtq *vq, struct virtq_elem *e, uint16_t head)
{
	unsigned int walked = 0;
	uint16_t i = head;

	for (;;) {
		struct virtq_desc d;
		int ret;

		if (++walked > vq->size)
			return -ELOOP;
		desc_load(&vq->desc[i], &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return walk_indirect(vq, e, &d);
		ret = elem_add(vq, e, &d);
		if (ret)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= vq->size)
			return -EINVAL;
		i = d.next;
	}
}

/* Avail entries not consumed yet; marks the queue broken if the driver claims too many. */
static unsigned int avail_pending(struct virtq *vq)
{
	/*
	 * Acquire: the ring entries and descriptors the driver wrote before publishing this
	 * index are read after it (pairs with the driver's write barrier before its idx store).
	 */
	uint16_t idx = __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
	uint16_t n = (uint16_t)(idx - vq->last_avail);

	if (n > vq->size) {
		vq->broken = true;
		return 0;
	}
	return n;
}

unsigned int virtq_pending(struct virtq *vq)
{
	if (vq->broken)
		return 0;
	return avail_pending(vq);
}

int virtq_pop(struct virtq *vq, struct virtq_elem *e)
{
	uint16_t head;
	int err;

	if (vq->broken)
		return -EIO;
	if (!avail_pending(vq))
		return vq->broken ? -EIO : 0;
	head = LOAD_RELAXED(&vq->avail->ring[vq->last_avail & (vq->size - 1)]);
	if (head >= vq->size) {
		vq->broken = true;
		return -EIO;
	}
	vq->last_avail++;
	if (vq->event_idx && vq->notify_enabled)
		STORE_RELAXED(avail_event_ptr(vq), vq->last_avail);
	e->head = head;
	e->nr_out = e->nr_in = 0;
	e->out_len = e->in_len = 0;
	e->err = 0;
	err = walk(vq, e, head);
	if (err)
		e->err = err;
	return 1;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	struct virtq_used_elem *u = &vq->used->ring[vq->used_idx & (vq->size - 1)];

	STORE_RELAXED(&u->id, (uint32_t)head);
	STORE_RELAXED(&u->len, len);
	vq->used_idx++;
	/*
	 * Release: the used element above, and the bytes the device wrote into the chain's
	 * buffers before this call, are visible to the driver before the new index is.
	 */
	__atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old = vq->signalled_used, new = vq->used_idx;
	bool valid = vq->signalled_valid;

	if (valid && old == new)
		return false; /* nothing pushed since the last decision */
	/*
	 * Full barrier: our used->idx store is ordered before the loads of the driver's
	 * used_event / flags below. Without it we could read a stale "no interrupt" while the
	 * driver, having seen the old used->idx, re-enables interrupts and goes to sleep.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->signalled_used = new;
	vq->signalled_valid = true;
	if (vq->event_idx)
		return !valid || vring_need_event(LOAD_RELAXED(used_event_ptr(vq)), new, old);
	return !(LOAD_RELAXED(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
}

bool virtq_set_notify(struct virtq *vq, bool enable)
{
	vq->notify_enabled = enable;
	if (vq->broken)
		return false;
	if (vq->event_idx) {
		/* disabling: leave avail_event behind, the driver stops crossing it */
		if (enable)
			STORE_RELAXED(avail_event_ptr(vq), vq->last_avail);
	} else {
		STORE_RELAXED(&vq->used->flags, enable ? 0 : VRING_USED_F_NO_NOTIFY);
	}
	/*
	 * Full barrier: the flag / avail_event store above is ordered before the avail->idx
	 * load below, so a chain the driver published without kicking (it saw the old flag) is
	 * seen here.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return avail_pending(vq) != 0;
}

void virtq_get_status(struct virtq *vq, struct virtq_status *st)
{
	*st = (struct virtq_status){
		.size = vq->size, .desc_gpa = vq->desc_gpa, .avail_gpa = vq->avail_gpa,
		.used_gpa = vq->used_gpa, .event_idx = vq->event_idx,
		.signalled_valid = vq->signalled_valid, .notify_enabled = vq->notify_enabled,
		.broken = vq->broken, .last_avail = vq->last_avail, .used_idx = vq->used_idx,
		.signalled_used = vq->signalled_used,
	};
	if (!vq->avail || !vq->used)
		return; /* not started */
	st->shadow_avail = LOAD_RELAXED(&vq->avail->idx);
	st->avail_flags = LOAD_RELAXED(&vq->avail->flags);
	st->used_flags = LOAD_RELAXED(&vq->used->flags);
	if (vq->event_idx) {
		st->used_event = LOAD_RELAXED(used_event_ptr(vq));
		st->avail_event = LOAD_RELAXED(avail_event_ptr(vq));
	}
}
