/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A virtqueue served on an iothread: what virtio-blk and virtio-scsi share on their data path
 * and in their drained sections.
 *
 * Ownership. A struct vioq is one queue of a virtio-pci device. The control plane (a vCPU
 * thread at activation and reset, the main thread in drained sections; always under the
 * device's vpci lock) starts it (vioq_start: the source goes on its iothread), pauses and
 * resumes it (vioq_pause/vioq_resume: the source comes off and goes back) and stops it
 * (running = false). Between start and stop, only the queue's iothread pops, pushes and raises
 * the interrupt (vioq_pop, vioq_push, vioq_flush): iothread_add_source / _remove_source are
 * synchronous, so the hand-over needs no lock.
 *
 * struct vioq_threads lists the distinct iothreads of one device, so that per-thread work
 * (a blockdev queue per node and iothread, draining them) is done once per thread.
 *
 * struct vioq_counters are QEMU's block statistics of one queue: written by its iothread
 * alone with relaxed load + store (no lock prefix), summed by any thread with relaxed loads:
 * a sum may miss a request completing meanwhile, never tear a counter.
 */
#ifndef VIREO_DEVICES_VIRTIO_IOQ_H
#define VIREO_DEVICES_VIRTIO_IOQ_H

#include <endian.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "common/error.h"
#include "devices/virtqueue.h"
#include "iothreads/iothread.h"

struct blockdev;
struct blockdev_queue;
struct vpci_dev;

/**
 * struct vioq - one virtqueue of a device, served by one iothread
 * @vq: the transport's queue (ours while running)
 * @vpci: the device's transport (for DEVICE_NEEDS_RESET)
 * @name: the device's name, for messages
 * @index: the queue's index, for messages
 * @it: the iothread that serves it
 * @src: its source on @it (poll is the device's; the rest is set by vioq_start)
 * @pushed: used entries added since the last interrupt decision (iothread)
 * @broken_reported: the corrupt ring was reported (iothread)
 * @running: started and not stopped (control plane, under the vpci lock)
 */
struct vioq {
	struct virtq *vq;
	struct vpci_dev *vpci;
	const char *name;
	unsigned int index;
	struct iothread *it;
	struct iothread_source src;
	bool pushed;
	bool broken_reported;
	bool running;
};

/*
 * Iothread: the next chain, as virtq_pop (1, 0 when empty), or -EIO for a corrupt ring, which
 * is reported once and puts the device in DEVICE_NEEDS_RESET.
 */
int vioq_pop(struct vioq *q, struct virtq_elem *e);
/* Iothread: returns chain @head with @len bytes written; the interrupt waits for vioq_flush. */
void vioq_push(struct vioq *q, uint16_t head, uint32_t len);
/* Iothread: raises the queue's interrupt if entries were pushed and the driver wants one. */
void vioq_flush(struct vioq *q);

/*
 * Control plane: hand the queue to its iothread with @poll as the source's poll (the source's
 * notify_enable and flush are vioq's). Returns 0, or -1 with @errp set.
 */
int vioq_start(struct vioq *q, int (*poll)(struct iothread_source *src), struct error **errp);
/* Control plane: a running queue's source comes off its iothread (synchronous). */
void vioq_pause(struct vioq *q);
/* Control plane, after vioq_pause: the source goes back; on failure the device needs reset. */
void vioq_resume(struct vioq *q);

/**
 * struct vioq_status - what QMP x-query-virtio-queue-status shows of one queue
 * @running: the queue is enabled and served (DRIVER_OK, not reset); @inuse and @vq are zero
 *           if not
 * @inuse: chains popped and not yet completed
 * @iothread: the name of the iothread that serves it (iothread-vq-mapping)
 * @size_default: the queue size the device offers (queue-size=)
 */
struct vioq_status {
	bool running;
	unsigned int inuse;
	const char *iothread;
	unsigned int size_default;
	struct virtq_status vq;
};

/*
 * Control plane: a snapshot of @q for x-query-virtio-queue-status, under the device's vpci
 * lock (the guest cannot reset or activate the device meanwhile); a running queue's state is
 * copied on its iothread, where @inuse(@arg) counts the chains popped and not completed.
 * Fails for an iothread that cannot take the request (stopping).
 */
int vioq_get_status(struct vioq *q, unsigned int size_default,
		    unsigned int (*inuse)(void *arg), void *arg, struct vioq_status *st,
		    struct error **errp);

/*
 * Control plane: @nq queues (1..@max_nq) of @qs entries (a power of two, 4..VIRTQ_MAX_SIZE),
 * or -1 with @errp naming device @name.
 */
int vioq_check_geometry(const char *name, unsigned int nq, unsigned int max_nq,
			unsigned int qs, struct error **errp);

/* The distinct iothreads of a device. */
struct vioq_threads {
	unsigned int n;
	struct iothread **its; /* room for as many as the device has queues */
};

/* The index of @it in @t, added if new. */
unsigned int vioq_threads_add(struct vioq_threads *t, struct iothread *it);
/* The index of @it in @t, or -1. */
int vioq_threads_find(const struct vioq_threads *t, const struct iothread *it);

/*
 * Control plane: a blockdev queue of @bs on each thread of @t into @out, or -1 with none left
 * behind. vioq_bqs_free releases them (NULL entries skipped), vioq_bqs_drain waits for what is
 * in flight on them, vioq_bqs_forget drops the files they registered below their node (after a
 * change of the graph under it); each runs on the queue's own iothread.
 */
int vioq_bqs_new(const struct vioq_threads *t, struct blockdev *bs, struct blockdev_queue **out,
		 struct error **errp);
void vioq_bqs_free(const struct vioq_threads *t, struct blockdev_queue **bqs);
void vioq_bqs_drain(const struct vioq_threads *t, struct blockdev_queue **bqs, const char *name);
void vioq_bqs_forget(const struct vioq_threads *t, struct blockdev_queue **bqs);

/* The request classes QEMU's block statistics count (write-zeroes counts as a write). */
enum vioq_acct { VIOQ_ACCT_READ, VIOQ_ACCT_WRITE, VIOQ_ACCT_FLUSH, VIOQ_ACCT_UNMAP, VIOQ_ACCT_NR };

/**
 * struct vioq_stats - what a device did, QEMU's BlockDeviceStats (query-blockstats)
 * @ops: requests completed, by class
 * @bytes: their bytes (discard and write-zeroes: the range)
 * @total_ns: their time from submission to completion, summed (to the iothread's turn)
 * @failed: of @ops, those that completed with an error
 * @invalid: requests refused before submission (out of range, unaligned, to a read-only
 *           disk, bad segments), by class
 * @last_done_ns: CLOCK_MONOTONIC of the last completion, 0 if none
 * @wr_highest_offset: the end of the furthest write (or write-zeroes) that succeeded
 */
struct vioq_stats {
	uint64_t ops[VIOQ_ACCT_NR], bytes[VIOQ_ACCT_NR], total_ns[VIOQ_ACCT_NR];
	uint64_t failed[VIOQ_ACCT_NR], invalid[VIOQ_ACCT_NR];
	uint64_t last_done_ns;
	uint64_t wr_highest_offset;
};

/* One queue's counters (see the header comment). */
struct vioq_counters {
	_Atomic uint64_t ops[VIOQ_ACCT_NR], bytes[VIOQ_ACCT_NR], ns[VIOQ_ACCT_NR];
	_Atomic uint64_t failed[VIOQ_ACCT_NR], invalid[VIOQ_ACCT_NR];
	_Atomic uint64_t last_ns;
	_Atomic uint64_t wr_highest; /* end of the furthest write that succeeded */
};

/*
 * Iothread: one request of class @acct completed at @now_ns after starting at @start_ns,
 * moving @bytes; a successful write ending at @end moves wr_highest_offset.
 */
void vioq_count(struct vioq_counters *c, unsigned int acct, uint64_t bytes, uint64_t start_ns,
		uint64_t now_ns, bool failed, uint64_t end);
/* Iothread: one request of class @acct refused before submission. */
void vioq_count_invalid(struct vioq_counters *c, unsigned int acct);
/* Any thread: adds @c to @st. */
void vioq_counters_sum(const struct vioq_counters *c, struct vioq_stats *st);

/* Copies [@skip, @skip + @len) of @iov (which holds it) to @dst, and @src into it. */
void vioq_iov_to_buf(const struct iovec *iov, unsigned int cnt, uint64_t skip, void *dst,
		     uint64_t len);
void vioq_iov_from_buf(const struct iovec *iov, unsigned int cnt, uint64_t skip,
		       const void *src, uint64_t len);
/*
 * The part of @iov after its first @skip bytes into @out (room for @cnt entries, may be
 * @iov itself); returns the entries. An entry outside guest RAM (NULL base) stays NULL.
 */
unsigned int vioq_iov_tail(const struct iovec *iov, unsigned int cnt, uint64_t skip,
			   struct iovec *out);

/* Little-endian fields of config spaces and requests. */
static inline void vio_put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static inline void vio_put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static inline void vio_put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static inline uint32_t vio_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static inline uint64_t vio_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

#endif
