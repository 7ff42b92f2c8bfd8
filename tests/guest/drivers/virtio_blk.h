/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk driver (virtio 1.2 §5.2) over virtio-pci, every queue usable, polled from CPL3 or,
 * with blk_cfg.irq, with an MSI-X vector per queue: queue q interrupts on vector VEC_DEV_BASE + q,
 * counted in cpus[].irqs[q] of the CPU it is aimed at (ring0/ring0.h).
 */
#ifndef GUEST_VIRTIO_BLK_H
#define GUEST_VIRTIO_BLK_H

#include "common/spec/virtio_blk.h"
#include "drivers/virtio_pci.h"
#include "drivers/vring.h"

#define BLK_MAX_QUEUES                  16
#define BLK_QUEUE_SIZE                  128
#define BLK_SECTOR                      512

/* One request; lives in memory the device can reach (static), not on a stack that may move. */
struct blk_req {
	struct {
		uint32_t type;
		uint32_t reserved;
		uint64_t sector;
	} hdr;
	uint8_t status;
	volatile bool done;
	uint32_t used_len;
};

/* The body of a DISCARD / WRITE_ZEROES request */
struct blk_range {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;         /* bit 0: unmap (write-zeroes) */
};

struct blk {
	struct virtio_pci vp;
	uint64_t features;      /* negotiated */
	uint64_t capacity;      /* in 512-byte sectors */
	uint32_t blk_size;
	uint32_t max_discard_sectors, max_write_zeroes_sectors;
	uint16_t nqueues;
	bool irq;               /* MSI-X vectors assigned (blk_cfg.irq) */
	struct vring q[BLK_MAX_QUEUES];
	struct blk_req *inflight[BLK_MAX_QUEUES][BLK_QUEUE_SIZE];
};

/* How blk_init() sets the device up; zeroes mean the defaults. */
struct blk_cfg {
	uint64_t features_mask;         /* accept only these feature bits (0: every one we know) */
	uint16_t queue_size;            /* entries per queue, at most BLK_QUEUE_SIZE (0: that) */
	unsigned ring_set;              /* which of BLK_RING_SETS ring memories to use */
	bool irq;                       /* MSI-X: a vector per queue, aimed at the calling CPU */
};
#define BLK_RING_SETS                   2

/*
 * Finds the cap windows, resets the device, negotiates, sets up every queue, sets DRIVER_OK.
 * Calling it again on the same device is a full reset and re-initialisation. cfg may be NULL.
 */
int blk_init(struct blk *b, const struct pci_dev *d, const struct blk_cfg *cfg);
static inline bool blk_has(const struct blk *b, unsigned feature)
{
	return b->features & (1ULL << feature);
}
/*
 * Queues a request on queue q: header, nseg data buffers (the device writes them for IN/GET_ID),
 * status. Does not notify: call blk_kick(). Returns -1 (err_set) when the queue is full.
 */
int blk_submit(struct blk *b, unsigned q, struct blk_req *req, uint32_t type, uint64_t sector,
	       const struct vring_buf *segs, unsigned nseg);
void blk_kick(struct blk *b, unsigned q);
/*
 * Interrupt mode (blk_cfg.irq): asks for an interrupt on queue q's next completion and returns
 * true when completions are already waiting (reap them instead of sleeping). The race-free wait
 * is: read the interrupt counter, arm, and only if this returned false,
 * cpu_wait_unchanged(counter, value read). Taking a completion disarms the queue again.
 */
bool blk_arm(struct blk *b, unsigned q);
/* Aims queue q's interrupts at another local APIC (interrupt mode). */
void blk_irq_target(struct blk *b, unsigned q, uint32_t apic_id);
/*
 * Takes one completion from queue q: 1 and *req (its status and used_len filled in), 0 when none
 * is ready, -1 (err_set) on a bad used entry.
 */
int blk_poll(struct blk *b, unsigned q, struct blk_req **req);
/* Polls queue q until 'count' requests completed; -1 (err_set) on timeout or a bad used entry. */
int blk_wait(struct blk *b, unsigned q, unsigned count, uint64_t timeout_ms);
/*
 * Submits one request with one data buffer (none if buf is NULL), waits up to 5 s, returns its
 * status or -1. Uses a request slot of queue q's own: CPUs may call it on different queues at once.
 */
int blk_sync(struct blk *b, unsigned q, uint32_t type, uint64_t sector, void *buf, uint32_t len);

#endif
