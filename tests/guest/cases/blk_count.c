/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk-count: a known mix of requests for the host to count (QMP query-blockstats), on queue 0:
 * 3 reads of 4 KiB, 2 writes of 8 KiB, 1 flush, 1 discard of 4 KiB (when negotiated) and
 * 1 read at the capacity (refused: an invalid read). It prints "blk-count: done" with what it
 * sent; run "idle" after it so that the VM stays up to be asked.
 */
#include "cases/blk_util.h"

static struct blk blk;
static uint8_t buf[8192] __attribute__((aligned(4096)));

int case_blk_count(void)
{
	static struct blk_range range = { .sector = 64, .num_sectors = 8 };
	struct blk_cfg cfg = { 0 };
	unsigned discards = 0;
	int r, s;

	if ((r = blk_open(&blk, &cfg, false)) != CASE_OK)
		return r;
	for (unsigned i = 0; i < 3; i++)
		if ((s = blk_sync(&blk, 0, VIRTIO_BLK_T_IN, 8 * i, buf, 4096)) != 0)
			return case_fail("read %u: status %d (%s)", i, s, err_get());
	for (unsigned i = 0; i < 2; i++)
		if ((s = blk_sync(&blk, 0, VIRTIO_BLK_T_OUT, 32 + 16 * i, buf, 8192)) != 0)
			return case_fail("write %u: status %d (%s)", i, s, err_get());
	if ((s = blk_sync(&blk, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0)) != 0)
		return case_fail("flush: status %d (%s)", s, err_get());
	if (blk_has(&blk, VIRTIO_BLK_F_DISCARD)) {
		if ((s = blk_sync(&blk, 0, VIRTIO_BLK_T_DISCARD, 0, &range, sizeof(range))) != 0)
			return case_fail("discard: status %d (%s)", s, err_get());
		discards = 1;
	}
	if ((s = blk_sync(&blk, 0, VIRTIO_BLK_T_IN, blk.capacity, buf, 512)) !=
	    VIRTIO_BLK_S_IOERR)
		return case_fail("a read at the capacity returned %d, not IOERR", s);
	printf("  blk-count: done: reads 3 of 4096, writes 2 of 8192, flushes 1, discards %u of "
	       "4096, invalid reads 1\n", discards);
	return CASE_OK;
}
