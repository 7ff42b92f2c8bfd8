/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The driver side of a split virtqueue.
 *
 * Ownership: the descriptor table and the available ring are written only by us (one CPU, CPL3);
 * the device writes only the used ring and avail_event. We publish a chain by writing its
 * descriptors and its avail->ring slot, then avail->idx: x86 keeps stores in order, so a compiler
 * barrier suffices there. Before deciding whether to notify we must read used->flags or avail_event
 * after our avail->idx store became visible: that store->load order needs a full fence (mfence).
 * On the used side, used->idx is read before the entries it covers; x86 keeps loads in order, so a
 * compiler barrier suffices.
 *
 * Polling, we request no interrupts: without EVENT_IDX the avail ring carries
 * VRING_AVAIL_F_NO_INTERRUPT; with EVENT_IDX the device ignores that flag and interrupts when
 * used->idx passes used_event, so we keep used_event half the index space ahead of what we
 * consumed (it is never reached). A driver that wants to sleep arms the ring (vring_arm: used_event
 * = last_used, or the flag cleared), then must look at used->idx again: the device reads our
 * request only after it wrote used->idx (it fences in between), so an entry it wrote before seeing
 * the request is visible to our second look and one written after it raises an interrupt. Our
 * request store before that second load needs a full fence (mfence). Taking an entry disarms.
 * Several CPUs may use one struct blk at once as long as each queue has one owner at a time.
 */
#include "drivers/vring.h"
#include "lib/lib.h"

#define AVAIL_F_NO_INTERRUPT    1
#define USED_F_NO_NOTIFY        1
#define USED_EVENT_AHEAD        0x8000  /* used_event this far ahead of last_used: never reached */

void vring_init(struct vring *r, struct vring_mem *mem, uint16_t size, uint16_t index,
		bool event_idx)
{
	memset(mem, 0, sizeof(*mem));
	*r = (struct vring){ .mem = mem, .size = size, .nfree = size, .index = index,
			     .event_idx = event_idx };
	for (uint16_t i = 0; i + 1 < size; i++)
		mem->desc[i].next = i + 1;
	mem->avail[0] = AVAIL_F_NO_INTERRUPT;
	mem->avail[2 + size] = USED_EVENT_AHEAD;
}

int vring_add(struct vring *r, const struct vring_buf *bufs, unsigned n)
{
	uint16_t head = r->free_head, d = head;

	if (n == 0 || n > r->nfree)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		struct vring_desc *desc = &r->mem->desc[d];

		desc->addr = (uintptr_t)bufs[i].addr;
		desc->len = bufs[i].len;
		desc->flags = (bufs[i].device_writes ? VRING_DESC_F_WRITE : 0) |
			      (i + 1 < n ? VRING_DESC_F_NEXT : 0);
		if (i + 1 < n)
			d = desc->next;
	}
	r->free_head = r->mem->desc[d].next;
	r->nfree -= n;
	vring_publish(r, head);
	return head;
}

/* virtio 1.2 §2.7.10: notify if new_idx passed event_idx since old_idx */
static bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

void vring_kick(struct vring *r)
{
	volatile struct vring_mem *m = r->mem;
	uint16_t old = r->kicked_idx, now = r->avail_idx;
	bool kick;

	mb();           /* our avail->idx store before reading the device's suppression fields */
	if (r->event_idx) {
		volatile uint16_t *ev = &m->used_hdr[0] + 2 + 4 * r->size;

		kick = need_event(*ev, now, old);
	} else {
		kick = !(m->used_hdr[0] & USED_F_NO_NOTIFY);
	}
	r->kicked_idx = now;
	if (kick) {
		mmio_write16(r->notify, r->index);
		r->kicks++;
	}
}

static void write_used_event(struct vring *r, uint16_t v)
{
	volatile uint16_t *avail = r->mem->avail;

	avail[2 + r->size] = v;
}

static void write_avail_flags(struct vring *r, uint16_t v)
{
	volatile uint16_t *avail = r->mem->avail;

	avail[0] = v;
}

bool vring_arm(struct vring *r)
{
	r->armed = true;
	if (r->event_idx)
		write_used_event(r, r->last_used);
	else
		write_avail_flags(r, 0);
	mb();           /* the request above before our second look at used->idx */
	return vring_used_idx(r) != r->last_used;
}

uint16_t vring_used_idx(const struct vring *r)
{
	return ((volatile struct vring_mem *)r->mem)->used_hdr[1];
}

void vring_set_used_event(struct vring *r, uint16_t idx)
{
	write_used_event(r, idx);
}

/* After taking an entry: back to polling, used_event out of reach (and any request dropped). */
static void after_used(struct vring *r)
{
	if (r->event_idx)
		write_used_event(r, r->last_used + USED_EVENT_AHEAD);
	else if (r->armed)
		write_avail_flags(r, AVAIL_F_NO_INTERRUPT);
	r->armed = false;
}

int vring_get_used(struct vring *r, uint16_t *head, uint32_t *len)
{
	volatile struct vring_mem *m = r->mem;
	uint16_t d, n = 1;
	uint32_t id;

	if (m->used_hdr[1] == r->last_used)
		return 0;
	barrier();      /* used->idx before the entry it covers (x86: loads stay ordered) */
	id = m->used[r->last_used & (r->size - 1)].id;
	*len = m->used[r->last_used & (r->size - 1)].len;
	if (id >= r->size) {
		err_set("queue %u: used entry %u names descriptor %u (queue size %u)", r->index,
			r->last_used, id, r->size);
		return -1;
	}
	*head = id;
	r->last_used++;
	for (d = *head; m->desc[d].flags & VRING_DESC_F_NEXT; d = m->desc[d].next)
		n++;
	m->desc[d].next = r->free_head;
	r->free_head = *head;
	r->nfree += n;
	after_used(r);
	return 1;
}

bool vring_take_desc(struct vring *r, unsigned n, uint16_t *idx)
{
	uint16_t d = r->free_head;

	if (n == 0 || n > r->nfree)
		return false;
	for (unsigned i = 0; i < n; i++) {
		idx[i] = d;
		d = r->mem->desc[d].next;
	}
	r->free_head = d;
	r->nfree -= n;
	return true;
}

void vring_put_desc(struct vring *r, const uint16_t *idx, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		r->mem->desc[idx[i]].next = i + 1 < n ? idx[i + 1] : r->free_head;
	if (n) {
		r->free_head = idx[0];
		r->nfree += n;
	}
}

void vring_publish(struct vring *r, uint16_t head)
{
	volatile uint16_t *avail = r->mem->avail;

	avail[2 + (r->avail_idx & (r->size - 1))] = head;
	barrier();      /* descriptors and ring slot before the index (x86: stores stay ordered) */
	avail[1] = ++r->avail_idx;
}

int vring_get_used_raw(struct vring *r, uint16_t *id, uint32_t *len)
{
	volatile struct vring_mem *m = r->mem;

	if (m->used_hdr[1] == r->last_used)
		return 0;
	barrier();      /* used->idx before the entry it covers */
	*id = m->used[r->last_used & (r->size - 1)].id;
	*len = m->used[r->last_used & (r->size - 1)].len;
	r->last_used++;
	after_used(r);
	return 1;
}
