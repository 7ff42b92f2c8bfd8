/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk: feature negotiation, one split ring per queue, request submission and polling.
 * A queue has one owner at a time: a CPU may drive its queues while other CPUs drive theirs (each
 * touches only q[i] and inflight[i] of its queues); set-up and reset are the boot CPU's alone.
 * drivers/vring.c explains the ordering against the device.
 */
#include "drivers/virtio_blk.h"
#include "drivers/lapic.h"
#include "lib/lib.h"
#include "ring0/layout.h"

#define CFG_CAPACITY            0
#define CFG_BLK_SIZE            20
#define CFG_NUM_QUEUES          34
#define CFG_MAX_DISCARD         36
#define CFG_MAX_WRITE_ZEROES    48

_Static_assert(BLK_MAX_QUEUES <= NR_DEV_VECTORS, "an MSI-X vector (and IDT stub) per queue");

static struct vring_mem rings[BLK_RING_SETS][BLK_MAX_QUEUES];

static uint64_t wanted_features(void)
{
	return 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX |
	       1ULL << VIRTIO_BLK_F_SIZE_MAX | 1ULL << VIRTIO_BLK_F_SEG_MAX |
	       1ULL << VIRTIO_BLK_F_RO | 1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH |
	       1ULL << VIRTIO_BLK_F_MQ | 1ULL << VIRTIO_BLK_F_DISCARD | 1ULL << VIRTIO_F_INDIRECT_DESC |
	       1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
}

static void read_config(struct blk *b)
{
	uint64_t cfg = b->vp.device;

	b->capacity = mmio_read32(cfg + CFG_CAPACITY) |
		      (uint64_t)mmio_read32(cfg + CFG_CAPACITY + 4) << 32;
	b->blk_size = blk_has(b, VIRTIO_BLK_F_BLK_SIZE) ? mmio_read32(cfg + CFG_BLK_SIZE) : 512;
	b->nqueues = blk_has(b, VIRTIO_BLK_F_MQ) ? mmio_read16(cfg + CFG_NUM_QUEUES) : 1;
	if (blk_has(b, VIRTIO_BLK_F_DISCARD))
		b->max_discard_sectors = mmio_read32(cfg + CFG_MAX_DISCARD);
	if (blk_has(b, VIRTIO_BLK_F_WRITE_ZEROES))
		b->max_write_zeroes_sectors = mmio_read32(cfg + CFG_MAX_WRITE_ZEROES);
}

int blk_init(struct blk *b, const struct pci_dev *d, const struct blk_cfg *cfg)
{
	static const struct blk_cfg defaults;
	uint64_t features_mask;
	uint16_t total, qsize;

	if (!cfg)
		cfg = &defaults;
	features_mask = cfg->features_mask ? cfg->features_mask : ~0ULL;
	qsize = cfg->queue_size && cfg->queue_size < BLK_QUEUE_SIZE ? cfg->queue_size : BLK_QUEUE_SIZE;
	if (cfg->ring_set >= BLK_RING_SETS) {
		err_set("ring set %u: there are %u", cfg->ring_set, BLK_RING_SETS);
		return -1;
	}
	memset(b, 0, sizeof(*b));
	if (virtio_pci_init(&b->vp, d) < 0)
		return -1;
	if (!(b->vp.features & (1ULL << VIRTIO_F_VERSION_1))) {
		err_set("the device does not offer VIRTIO_F_VERSION_1 (features %#lx)",
			b->vp.features);
		goto fail;
	}
	b->features = b->vp.features & wanted_features() & features_mask;
	if (virtio_pci_set_features(&b->vp, b->features) < 0)
		goto fail;
	read_config(b);
	total = virtio_pci_num_queues(&b->vp);
	if (b->nqueues == 0 || b->nqueues > total) {
		err_set("the device config says %u queues, the transport %u", b->nqueues, total);
		goto fail;
	}
	if (b->nqueues > BLK_MAX_QUEUES)
		b->nqueues = BLK_MAX_QUEUES;
	b->irq = cfg->irq;
	if (b->irq && virtio_pci_msix_enable(&b->vp, b->nqueues, lapic_id(), VEC_DEV_BASE) < 0)
		goto fail;
	for (uint16_t q = 0; q < b->nqueues; q++) {
		struct vring_mem *m = &rings[cfg->ring_set][q];
		uint16_t size = qsize;
		uint64_t notify = virtio_pci_setup_queue(&b->vp, q, &size, (uintptr_t)m->desc,
							 (uintptr_t)m->avail,
							 (uintptr_t)m->used_hdr,
							 b->irq ? q : VIRTIO_MSI_NO_VECTOR);

		if (!notify)
			goto fail;
		if (size & (size - 1)) {
			err_set("queue %u: size %u is not a power of two", q, size);
			goto fail;
		}
		/* the device may not touch the rings before DRIVER_OK: initialize them first */
		vring_init(&b->q[q], m, size, q, blk_has(b, VIRTIO_F_EVENT_IDX));
		b->q[q].notify = notify;
	}
	virtio_pci_set_status(&b->vp, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	return 0;
fail:
	virtio_pci_set_status(&b->vp, VIRTIO_STATUS_FAILED);
	return -1;
}

int blk_submit(struct blk *b, unsigned q, struct blk_req *req, uint32_t type, uint64_t sector,
	       const struct vring_buf *segs, unsigned nseg)
{
	struct vring_buf bufs[2 + 8];
	bool dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	int head;

	if (nseg > 8) {
		err_set("%u data segments, at most 8", nseg);
		return -1;
	}
	req->hdr.type = type;
	req->hdr.reserved = 0;
	req->hdr.sector = sector;
	req->status = 0xff;
	req->done = false;
	bufs[0] = (struct vring_buf){ &req->hdr, sizeof(req->hdr), false };
	for (unsigned i = 0; i < nseg; i++)
		bufs[1 + i] = (struct vring_buf){ segs[i].addr, segs[i].len, dev_writes };
	bufs[1 + nseg] = (struct vring_buf){ &req->status, 1, true };
	head = vring_add(&b->q[q], bufs, nseg + 2);
	if (head < 0) {
		err_set("queue %u is full", q);
		return -1;
	}
	b->inflight[q][head] = req;
	return 0;
}

void blk_kick(struct blk *b, unsigned q)
{
	vring_kick(&b->q[q]);
}

bool blk_arm(struct blk *b, unsigned q)
{
	return vring_arm(&b->q[q]);
}

void blk_irq_target(struct blk *b, unsigned q, uint32_t apic_id)
{
	virtio_pci_msix_target(&b->vp, q, apic_id, VEC_DEV_BASE + q);
}

int blk_poll(struct blk *b, unsigned q, struct blk_req **reqp)
{
	uint16_t head;
	uint32_t len;
	int r = vring_get_used(&b->q[q], &head, &len);
	struct blk_req *req;

	if (r <= 0)
		return r;
	req = b->inflight[q][head];
	if (!req) {
		err_set("queue %u: the device completed descriptor %u, which is not in flight", q,
			head);
		return -1;
	}
	b->inflight[q][head] = NULL;
	req->used_len = len;
	req->done = true;
	*reqp = req;
	return 1;
}

int blk_wait(struct blk *b, unsigned q, unsigned count, uint64_t timeout_ms)
{
	uint64_t end = time_ns() + timeout_ms * 1000000;

	while (count) {
		struct blk_req *req;
		int r = blk_poll(b, q, &req);

		if (r < 0)
			return -1;
		if (r == 0) {
			if (time_ns() > end) {
				err_set("queue %u: %u requests not completed within %lu ms", q, count,
					timeout_ms);
				return -1;
			}
			cpu_relax();
			continue;
		}
		count--;
	}
	return 0;
}

int blk_sync(struct blk *b, unsigned q, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	static struct blk_req reqs[BLK_MAX_QUEUES];
	struct blk_req *req = &reqs[q];
	struct vring_buf seg = { buf, len, false };

	if (blk_submit(b, q, req, type, sector, &seg, buf ? 1 : 0) < 0)
		return -1;
	blk_kick(b, q);
	if (blk_wait(b, q, 1, 5000) < 0)
		return -1;
	return req->status;
}
