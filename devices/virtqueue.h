/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split virtqueues (virtio 1.2, section 2.7), device side.
 *
 * Ownership. The transport configures a queue (size, ring addresses, features) from a vCPU
 * thread while the queue is stopped, then virtq_start() resolves the rings and hands the queue
 * to exactly one iothread. From then on only that thread calls virtq_pop/push/should_notify/
 * set_notify; the transport touches the queue again only after the owning iothread let it go
 * (device reset goes through iothread_run_sync). So nothing here takes a lock.
 *
 * The guest shares the rings and may rewrite them at any moment: every index read from guest
 * memory is bounded before use, descriptors are copied out before they are trusted, every
 * buffer range goes through gmem_ptr(), chains are bounded (loop detection), and an avail index
 * more than `size` ahead of what we consumed marks the queue broken (the device then sets
 * DEVICE_NEEDS_RESET). The host is x86-64 (little endian, TSO); the barriers below are written
 * with C11 atomics so that they say what they order anyway.
 */
#ifndef VIREO_DEVICES_VIRTQUEUE_H
#define VIREO_DEVICES_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/spec/virtio.h"
#include "common/gmem.h"

#define VIRTQ_MAX_SIZE 32768
/* an indirect table holds at most this many descriptors */
#define VIRTQ_INDIRECT_MAX 1024

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* [size], then le16 used_event */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* [size], then le16 avail_event */
};

/**
 * struct virtq - one split virtqueue
 * @size: queue size (power of two, 1..VIRTQ_MAX_SIZE)
 * @desc_gpa, @avail_gpa, @used_gpa: ring addresses the driver programmed
 * @event_idx: VIRTIO_F_EVENT_IDX negotiated
 * @indirect: VIRTIO_F_INDIRECT_DESC negotiated
 * @mem: guest RAM
 * @kick_fd: eventfd signalled by the guest's notify (KVM ioeventfd), -1 if none
 * @call_fd: eventfd that raises this queue's interrupt (irqfd), -1 if none
 * @broken: the driver corrupted the ring; nothing more is popped until reset
 *
 * The rest is the owning iothread's state.
 */
struct virtq {
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;
	bool indirect;
	const struct gmem *mem;
	int kick_fd;
	int call_fd;
	bool broken;

	/* resolved by virtq_start */
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;

	uint16_t last_avail;     /* next avail ring entry to consume */
	uint16_t used_idx;       /* our shadow of used->idx */
	uint16_t signalled_used; /* used_idx when we last decided about an interrupt */
	bool signalled_valid;
	bool notify_enabled;     /* the guest is asked to kick */
};

/**
 * struct virtq_elem - one popped descriptor chain
 * @head: head descriptor index (what goes back in the used ring)
 * @iov: caller-provided array of @cap entries: readable buffers first (@nr_out of them), then
 *       writable ones (@nr_in); zero-length descriptors are skipped. An entry whose range is
 *       not guest RAM has iov_base NULL (and @err is -EFAULT).
 * @out_len, @in_len: bytes in the readable / writable parts
 * @err: 0, or why the chain is malformed (the element must still be completed, with an error):
 *       -EFAULT a buffer outside RAM (the walk went on, so the chain's shape is known),
 *       -ELOOP  a loop, or more descriptors than the queue / indirect table holds,
 *       -E2BIG  more buffers than @cap,
 *       -EINVAL a bad next index, a nested or empty indirect table, INDIRECT not negotiated,
 *               or a readable descriptor after a writable one.
 *       For every error but -EFAULT the iov array holds only what was walked before it.
 */
struct virtq_elem {
	uint16_t head;
	unsigned int nr_out, nr_in;
	uint64_t out_len, in_len;
	int err;
	struct iovec *iov;
	unsigned int cap;
};

/**
 * virtq_start - resolve and check the rings before the queue runs
 *
 * Checks size, alignment (desc 16, avail 2, used 4) and that all three rings lie in RAM; resets
 * the device-side indices to 0 (a fresh queue) and leaves notifications enabled. Returns 0 or
 * -EINVAL / -EFAULT (the driver programmed a bad queue: the transport sets NEEDS_RESET).
 */
int virtq_start(struct virtq *vq);

/**
 * virtq_pop - take the next available chain
 *
 * Returns 1 with @e filled (check e->err), 0 if the ring is empty, or -EIO if the ring itself is
 * corrupt (avail index too far ahead, head index out of range): the queue is then broken.
 */
int virtq_pop(struct virtq *vq, struct virtq_elem *e);

/* Chains the guest made available that we have not popped yet (0 if broken). */
unsigned int virtq_pending(struct virtq *vq);

/**
 * virtq_push - return chain @head to the driver with @len bytes written
 *
 * Writes the used element, then publishes the used index (release: the element and the data
 * written into the buffers become visible before the index does).
 */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/**
 * virtq_should_notify - does the driver want an interrupt for what we pushed since last time?
 *
 * EVENT_IDX: vring_need_event(used_event, used_idx, used_idx at the last call); else the
 * avail ring's NO_INTERRUPT flag. Call after one or more virtq_push(); true means write call_fd.
 */
bool virtq_should_notify(struct virtq *vq);

/**
 * struct virtq_status - a snapshot of a started queue, for debugging (x-query-virtio-queue-status)
 * @last_avail, @used_idx, @signalled_used, @signalled_valid, @notify_enabled, @broken: ours
 * @shadow_avail: the driver's avail->idx as read now; @avail_flags, @used_flags: both rings' flags
 * @used_event, @avail_event: the EVENT_IDX words (the driver's and ours), 0 without EVENT_IDX
 */
struct virtq_status {
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx, signalled_valid, notify_enabled, broken;
	uint16_t last_avail, shadow_avail, used_idx, signalled_used;
	uint16_t avail_flags, used_flags, used_event, avail_event;
};

/* Fills @st; call on the thread that owns the started queue (the guest's words may change). */
void virtq_get_status(struct virtq *vq, struct virtq_status *st);

/**
 * virtq_set_notify - ask the driver to kick us (enable) or not to bother (while we poll)
 *
 * Uses avail_event with EVENT_IDX, else VRING_USED_F_NO_NOTIFY. When enabling, a full barrier
 * orders the flag write before the caller's next read of the avail index. Returns true if
 * chains are pending right now (the caller must poll again rather than sleep).
 */
bool virtq_set_notify(struct virtq *vq, bool enable);

/* The classic rule: should an event at @event_idx fire when the index moved from @old to @new? */
static inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

/* Bytes of each ring for a queue of @size entries (with the event index fields). */
static inline uint64_t virtq_desc_bytes(unsigned int size)
{
	return 16ull * size;
}
static inline uint64_t virtq_avail_bytes(unsigned int size)
{
	return 6ull + 2ull * size;
}
static inline uint64_t virtq_used_bytes(unsigned int size)
{
	return 6ull + 8ull * size;
}

#endif
