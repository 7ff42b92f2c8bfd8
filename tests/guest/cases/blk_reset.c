/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk-reset: device reset and re-initialisation. Write a pattern on every queue; queue 16 writes
 * and reset the device (device_status = 0) while they are in flight; expect device_status and
 * every queue_enable to read 0, then bring the device up again on other ring memory with another
 * queue size, read the pattern back, write and verify a new one, and check the device never
 * touched the old rings after the reset. Three such cycles.
 *
 * Options: those of blk (blk-index, blk-require, blk-features).
 */
#include "cases/blk_util.h"

#define BATCH           16
#define REQ_BYTES       4096
#define REQ_SECTORS     (REQ_BYTES / BLK_SECTOR)
#define QUEUE_SECTORS   (BATCH * REQ_SECTORS)
#define INFLIGHT_BASE   64              /* the writes cut short by the reset go here */
#define QUEUE_BASE      (INFLIGHT_BASE + QUEUE_SECTORS)
#define CYCLES          3

static struct blk blk;
static struct blk_req reqs[BATCH];
static uint8_t wbuf[BATCH][REQ_BYTES] __attribute__((aligned(4096)));
static uint8_t rbuf[BATCH][REQ_BYTES] __attribute__((aligned(4096)));

static int io_batch(unsigned q, uint32_t type, uint64_t base, uint8_t (*bufs)[REQ_BYTES])
{
	return blk_batch(&blk, q, reqs, BATCH, type, base, &bufs[0][0], REQ_BYTES);
}

static int write_all(uint64_t seed)
{
	int r;

	for (unsigned q = 0; q < blk.nqueues; q++) {
		uint64_t base = QUEUE_BASE + (uint64_t)q * QUEUE_SECTORS;

		for (unsigned i = 0; i < BATCH; i++)
			blk_fill(wbuf[i], base + i * REQ_SECTORS, REQ_SECTORS, seed + q);
		if ((r = io_batch(q, VIRTIO_BLK_T_OUT, base, wbuf)) != CASE_OK)
			return r;
	}
	return CASE_OK;
}

static int verify_all(uint64_t seed, const char *when)
{
	int r;

	for (unsigned q = 0; q < blk.nqueues; q++) {
		uint64_t base = QUEUE_BASE + (uint64_t)q * QUEUE_SECTORS;

		memset(rbuf, 0, sizeof(rbuf));
		if ((r = io_batch(q, VIRTIO_BLK_T_IN, base, rbuf)) != CASE_OK)
			return r;
		for (unsigned i = 0; i < BATCH; i++) {
			blk_fill(wbuf[0], base + i * REQ_SECTORS, REQ_SECTORS, seed + q);
			if (memcmp(rbuf[i], wbuf[0], REQ_BYTES))
				return case_fail("%s: queue %u: sectors %lu-%lu differ", when, q,
						 base + i * REQ_SECTORS,
						 base + (i + 1) * REQ_SECTORS - 1);
		}
	}
	return CASE_OK;
}

/* Queues BATCH writes on queue 0, kicks, and resets at once. */
static int reset_in_flight(void)
{
	for (unsigned i = 0; i < BATCH; i++) {
		struct vring_buf seg = { wbuf[i], REQ_BYTES, false };

		if (blk_submit(&blk, 0, &reqs[i], VIRTIO_BLK_T_OUT, INFLIGHT_BASE + i * REQ_SECTORS,
			       &seg, 1) < 0)
			return case_fail("%s", err_get());
	}
	blk_kick(&blk, 0);
	if (!virtio_pci_reset(&blk.vp))
		return case_fail("device_status still reads %#x 1 s after writing 0",
				 virtio_pci_status(&blk.vp));
	for (unsigned q = 0; q < blk.nqueues; q++)
		if (virtio_pci_queue_enabled(&blk.vp, q))
			return case_fail("queue %u: queue_enable reads 1 after the reset", q);
	return CASE_OK;
}

int case_blk_reset(void)
{
	static const uint16_t sizes[CYCLES + 1] = { 128, 64, 128, 64 }; /* >= 3 * BATCH */
	struct blk_cfg cfg = { .queue_size = sizes[0] };
	volatile uint16_t *old_used;
	uint16_t old_idx, old_nq;
	int r;

	if ((r = blk_open(&blk, &cfg, false)) != CASE_OK)
		return r;
	if (blk_has(&blk, VIRTIO_BLK_F_RO)) {
		r = case_skip("the device is read-only");
		goto out;
	}
	if (blk.capacity < QUEUE_BASE + (uint64_t)blk.nqueues * QUEUE_SECTORS) {
		r = case_fail("the disk has %lu sectors, too few", blk.capacity);
		goto out;
	}
	if ((r = write_all(100)) != CASE_OK)
		goto out;
	for (unsigned c = 0; c < CYCLES; c++) {
		if ((r = reset_in_flight()) != CASE_OK)
			goto out;
		old_used = &blk.q[0].mem->used_hdr[1];
		old_idx = *old_used;
		old_nq = blk.nqueues;
		cfg = (struct blk_cfg){ .queue_size = sizes[c + 1], .ring_set = (c + 1) % 2 };
		if ((r = blk_open(&blk, &cfg, false)) != CASE_OK) {
			case_fail("re-initialisation %u: %s", c + 1, err_get());
			goto out;
		}
		if (blk.nqueues != old_nq) {
			r = case_fail("after reset %u the device has %u queues, before %u", c + 1,
				      blk.nqueues, old_nq);
			goto out;
		}
		if ((r = verify_all(100 + 10 * c, "after reset")) != CASE_OK)
			goto out;
		if ((r = write_all(100 + 10 * (c + 1))) != CASE_OK ||
		    (r = verify_all(100 + 10 * (c + 1), "after re-initialisation")) != CASE_OK)
			goto out;
		if (*old_used != old_idx) {
			r = case_fail("the device wrote the used ring it had before reset %u (idx %u "
				      "-> %u)", c + 1, old_idx, *old_used);
			goto out;
		}
		printf("  reset %u with %u writes in flight; up again with %u-entry queues on "
		       "new rings, data intact\n", c + 1, BATCH, blk.q[0].size);
	}
	r = CASE_OK;
out:
	virtio_pci_reset(&blk.vp);
	return r;
}
