/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The driver side of a split virtqueue (virtio 1.2 §2.7), polled from CPL3; vring_arm() asks for
 * an interrupt on the next completion when the caller wants to sleep instead.
 */
#ifndef GUEST_VRING_H
#define GUEST_VRING_H

#include "lib/sys.h"

#define VRING_MAX_SIZE          128
#define VRING_DESC_F_NEXT       1
#define VRING_DESC_F_WRITE      2
#define VRING_DESC_F_INDIRECT   4

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_buf {
	void *addr;
	uint32_t len;
	bool device_writes;
};

/*
 * Two pages per queue: descriptors and the available ring, then the used ring. For a queue smaller
 * than VRING_MAX_SIZE, used_event and avail_event sit right after that queue's ring entries.
 */
struct vring_mem {
	struct vring_desc desc[VRING_MAX_SIZE];
	uint16_t avail[3 + VRING_MAX_SIZE];             /* flags, idx, ring[size], used_event */
	uint8_t pad0[4096 - 16 * VRING_MAX_SIZE - 2 * (3 + VRING_MAX_SIZE)];
	uint16_t used_hdr[2];                           /* flags, idx */
	struct { uint32_t id, len; } used[VRING_MAX_SIZE];
	uint16_t used_tail;                             /* avail_event, for size VRING_MAX_SIZE */
} __attribute__((aligned(4096)));

struct vring {
	struct vring_mem *mem;
	uint16_t size;
	uint16_t free_head, nfree;
	uint16_t avail_idx;     /* next avail->idx we publish */
	uint16_t kicked_idx;    /* avail->idx at the last notification decision */
	uint16_t last_used;     /* used entries consumed */
	bool event_idx;
	bool armed;             /* an interrupt is asked for (vring_arm) */
	uint64_t notify;        /* MMIO address to write the queue index to */
	uint16_t index;
	uint64_t kicks;         /* notifications written (statistics) */
};

/* Initializes the rings for size entries (a power of two <= VRING_MAX_SIZE). */
void vring_init(struct vring *r, struct vring_mem *mem, uint16_t size, uint16_t index,
		bool event_idx);
/* Queues a chain; returns its head descriptor, or -1 when there are too few free descriptors. */
int vring_add(struct vring *r, const struct vring_buf *bufs, unsigned n);
/* Notifies the device of new buffers unless it said it does not need it. */
void vring_kick(struct vring *r);
/*
 * Takes one used entry: 1 with its head and length, 0 when none is ready, -1 (err_set) when the
 * device returned a head that is not a descriptor index.
 */
int vring_get_used(struct vring *r, uint16_t *head, uint32_t *len);

/*
 * Asks the device to interrupt on its next used entry (EVENT_IDX: used_event = last_used; else
 * VRING_AVAIL_F_NO_INTERRUPT cleared), then looks at the used ring again: true when entries are
 * already waiting, whose completion came before the request and raised no interrupt, so the
 * caller must reap them rather than sleep. Taking an entry (vring_get_used) disarms again.
 */
bool vring_arm(struct vring *r);
/* used->idx as the device last wrote it (for tests that watch completions without taking them). */
uint16_t vring_used_idx(const struct vring *r);
/* Writes used_event (EVENT_IDX) as given; a test's tool: vring_get_used() overwrites it. */
void vring_set_used_event(struct vring *r, uint16_t idx);

/*
 * Raw access for hand-made (possibly malformed) chains, as the blk-hostile case builds them:
 * vring_take_desc() unlinks n free descriptors (their indices in idx[], in list order; false if
 * fewer are free), the caller writes them into r->mem->desc freely, vring_publish() makes head
 * available, vring_get_used_raw() takes a used entry without walking its chain, and
 * vring_put_desc() gives the n descriptors back to the free list.
 */
bool vring_take_desc(struct vring *r, unsigned n, uint16_t *idx);
void vring_put_desc(struct vring *r, const uint16_t *idx, unsigned n);
void vring_publish(struct vring *r, uint16_t head);
int vring_get_used_raw(struct vring *r, uint16_t *id, uint32_t *len);

#endif
