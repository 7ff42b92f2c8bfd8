/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the virtio-blk cases: finding and opening the device, data patterns. */
#include "cases/blk_util.h"

int blk_find(struct pci_dev *d)
{
	static const uint16_t ids[] = { 0x1042, 0x1001, 0 };
	int64_t idx = opt_u64("blk-index", 0), require = opt_u64("blk-require", 0);

	if (idx < 0 || require < 0)
		return case_fail("%s", err_get());
	if (pci_init() < 0)
		return case_fail("%s", err_get());
	if (!pci_find(0x1af4, ids, idx, d))
		return (require ? case_fail : case_skip)("no virtio-blk device #%ld (1af4:1042 or "
							 "1af4:1001; %s)", idx, pci_method());
	return CASE_OK;
}

int blk_open(struct blk *b, struct blk_cfg *cfg, bool verbose)
{
	int64_t mask = opt_u64("blk-features", 0);
	struct pci_dev d;
	int r;

	if (mask < 0)
		return case_fail("%s", err_get());
	if ((r = blk_find(&d)) != CASE_OK)
		return r;
	if (mask)
		cfg->features_mask = cfg->features_mask ? cfg->features_mask & mask : (uint64_t)mask;
	if (blk_init(b, &d, cfg) < 0)
		return case_fail("%02x:%02x.%x: %s", PCI_BUS(d.bdf), PCI_DEV(d.bdf), PCI_FN(d.bdf),
				 err_get());
	if (verbose) {
		printf("  %02x:%02x.%x %04x:%04x: %lu sectors, block %u, %u queues of %u, "
		       "features %#lx\n", PCI_BUS(d.bdf), PCI_DEV(d.bdf), PCI_FN(d.bdf), d.vendor,
		       d.device, b->capacity, b->blk_size, b->nqueues, b->q[0].size, b->features);
		printf("  common config at %#lx, notify at %#lx (x%u), device config at %#lx\n",
		       b->vp.common, b->vp.notify, b->vp.notify_mult, b->vp.device);
	}
	return CASE_OK;
}

void blk_fill(void *buf, uint64_t sector, unsigned sectors, uint64_t seed)
{
	uint64_t *w = buf;

	for (unsigned i = 0; i < sectors * BLK_SECTOR / 8; i++)
		w[i] = (sector + i / (BLK_SECTOR / 8)) << 20 ^ i ^ seed * 0x9e3779b97f4a7c15ULL;
}

bool blk_all_zero(const void *buf, size_t len)
{
	const uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

uint64_t blk_kicks(const struct blk *b)
{
	uint64_t n = 0;

	for (unsigned q = 0; q < b->nqueues; q++)
		n += b->q[q].kicks;
	return n;
}

int blk_batch(struct blk *b, unsigned q, struct blk_req *reqs, unsigned n, uint32_t type,
	      uint64_t base, uint8_t *bufs, uint32_t bytes)
{
	uint32_t sectors = bytes / BLK_SECTOR;

	for (unsigned i = 0; i < n; i++) {
		struct vring_buf seg = { bufs + (size_t)i * bytes, bytes, false };

		if (blk_submit(b, q, &reqs[i], type, base + i * sectors, &seg, 1) < 0)
			return case_fail("%s", err_get());
	}
	blk_kick(b, q);
	if (blk_wait(b, q, n, 5000) < 0)
		return case_fail("%s", err_get());
	for (unsigned i = 0; i < n; i++)
		if (reqs[i].status != VIRTIO_BLK_S_OK)
			return case_fail("queue %u: %s of sector %lu: status %u", q,
					 type == VIRTIO_BLK_T_IN ? "read" : "write",
					 base + i * sectors, reqs[i].status);
	return CASE_OK;
}
