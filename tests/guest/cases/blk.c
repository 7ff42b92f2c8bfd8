/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk: drive a virtio-blk device (modern 1af4:1042, or transitional 1af4:1001 through its modern
 * interface) on every queue: write patterns with many requests in flight, flush, read back and
 * verify, also with a request split over two data segments; check GET_ID's serial, that a read past
 * the end fails with IOERR, and that DISCARD and WRITE_ZEROES (when offered) read back as zeroes.
 *
 * Options: blk-serial=STR (expected serial), blk-features=MASK (accept only these feature bits),
 * blk-index=N (use the N-th virtio-blk device), blk-require=1 (fail, not skip, without a device),
 * blk-ro=1 (the drive is read-only: check that writes fail instead). The disk's contents are
 * overwritten: use a scratch image (at least 32 KiB plus 64 KiB per queue).
 */
#include "cases/blk_util.h"

#define BATCH           16              /* requests in flight per queue */
#define REQ_BYTES       4096
#define REQ_SECTORS     (REQ_BYTES / BLK_SECTOR)
#define QUEUE_SECTORS   (BATCH * REQ_SECTORS)
#define SPECIAL_BASE    0               /* sectors [0, 64): discard, write-zeroes, 2-segment I/O */
#define QUEUE_BASE      64              /* queue q uses [QUEUE_BASE + q * QUEUE_SECTORS, ...) */

static struct blk blk;
static struct blk_req reqs[BATCH];
static uint8_t wbuf[BATCH][REQ_BYTES] __attribute__((aligned(4096)));
static uint8_t rbuf[BATCH][REQ_BYTES] __attribute__((aligned(4096)));

static int batch(unsigned q, uint32_t type, uint64_t base, uint8_t (*bufs)[REQ_BYTES])
{
	return blk_batch(&blk, q, reqs, BATCH, type, base, &bufs[0][0], REQ_BYTES);
}

static int check_queue(unsigned q, uint64_t seed)
{
	uint64_t base = QUEUE_BASE + (uint64_t)q * QUEUE_SECTORS;
	int r, s;

	for (unsigned i = 0; i < BATCH; i++)
		blk_fill(wbuf[i], base + i * REQ_SECTORS, REQ_SECTORS, seed);
	if ((r = batch(q, VIRTIO_BLK_T_OUT, base, wbuf)) != CASE_OK)
		return r;
	if (blk_has(&blk, VIRTIO_BLK_F_FLUSH) &&
	    (s = blk_sync(&blk, q, VIRTIO_BLK_T_FLUSH, 0, NULL, 0)) != VIRTIO_BLK_S_OK)
		return s < 0 ? case_fail("%s", err_get()) :
			       case_fail("queue %u: flush: status %d", q, s);
	memset(rbuf, 0, sizeof(rbuf));
	if ((r = batch(q, VIRTIO_BLK_T_IN, base, rbuf)) != CASE_OK)
		return r;
	for (unsigned i = 0; i < BATCH; i++)
		if (memcmp(rbuf[i], wbuf[i], REQ_BYTES))
			return case_fail("queue %u: sectors %lu-%lu read back differently", q,
					 base + i * REQ_SECTORS, base + (i + 1) * REQ_SECTORS - 1);
	return CASE_OK;
}

/* One write and one read each split over two data segments of 2 KiB. */
static int check_segments(void)
{
	struct vring_buf w[2] = { { wbuf[0], 2048, false }, { wbuf[0] + 2048, 2048, false } };
	struct vring_buf rd[2] = { { rbuf[0], 2048, false }, { rbuf[0] + 2048, 2048, false } };

	blk_fill(wbuf[0], SPECIAL_BASE + 32, REQ_SECTORS, 7);
	memset(rbuf[0], 0, REQ_BYTES);
	if (blk_submit(&blk, 0, &reqs[0], VIRTIO_BLK_T_OUT, SPECIAL_BASE + 32, w, 2) < 0)
		return case_fail("%s", err_get());
	blk_kick(&blk, 0);
	if (blk_wait(&blk, 0, 1, 5000) < 0)
		return case_fail("%s", err_get());
	if (blk_submit(&blk, 0, &reqs[1], VIRTIO_BLK_T_IN, SPECIAL_BASE + 32, rd, 2) < 0)
		return case_fail("%s", err_get());
	blk_kick(&blk, 0);
	if (blk_wait(&blk, 0, 1, 5000) < 0)
		return case_fail("%s", err_get());
	if (reqs[0].status || reqs[1].status)
		return case_fail("2-segment write/read: status %u/%u", reqs[0].status,
				 reqs[1].status);
	if (memcmp(rbuf[0], wbuf[0], REQ_BYTES))
		return case_fail("2-segment write/read: data differs");
	return CASE_OK;
}

/* Writes a pattern over 8 sectors, applies DISCARD or WRITE_ZEROES, expects zeroes back. */
static int check_zeroing(uint32_t type, const char *what, uint64_t sector, uint32_t flags)
{
	static struct blk_range range;
	int s;

	blk_fill(wbuf[0], sector, REQ_SECTORS, 3);
	if ((s = blk_sync(&blk, 0, VIRTIO_BLK_T_OUT, sector, wbuf[0], REQ_BYTES)) != 0)
		return case_fail("%s: pattern write: status %d (%s)", what, s, err_get());
	range = (struct blk_range){ .sector = sector, .num_sectors = REQ_SECTORS, .flags = flags };
	if ((s = blk_sync(&blk, 0, type, 0, &range, sizeof(range))) != 0)
		return s < 0 ? case_fail("%s: %s", what, err_get()) :
			       case_fail("%s of sectors %lu-%lu: status %d", what, sector,
					 sector + REQ_SECTORS - 1, s);
	memset(rbuf[0], 0xa5, REQ_BYTES);
	if ((s = blk_sync(&blk, 0, VIRTIO_BLK_T_IN, sector, rbuf[0], REQ_BYTES)) != 0)
		return case_fail("%s: read back: status %d (%s)", what, s, err_get());
	if (!blk_all_zero(rbuf[0], REQ_BYTES))
		return case_fail("sectors %lu-%lu do not read back as zeroes after %s", sector,
				 sector + REQ_SECTORS - 1, what);
	printf("  %s: reads back as zeroes\n", what);
	return CASE_OK;
}

static int check_serial(void)
{
	static char id[20];
	const char *want = opt_get("blk-serial");
	int s;

	memset(id, 0, sizeof(id));
	s = blk_sync(&blk, 0, VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id));
	if (s != VIRTIO_BLK_S_OK)
		return s < 0 ? case_fail("GET_ID: %s", err_get()) :
			       case_fail("GET_ID: status %d", s);
	printf("  serial \"%.20s\"\n", id);
	if (want && strncmp(id, want, sizeof(id)))
		return case_fail("GET_ID returned \"%.20s\", expected blk-serial=%s", id, want);
	return CASE_OK;
}

/*
 * blk-ro=1: the drive is read-only. Expect VIRTIO_BLK_F_RO, reads on every queue, and every write
 * (OUT, and DISCARD / WRITE_ZEROES when offered) completing with an error status while the data
 * stays as it was.
 */
static int check_read_only(void)
{
	static struct blk_range range;
	int s;

	if (!blk_has(&blk, VIRTIO_BLK_F_RO))
		return case_fail("blk-ro=1 but the device does not offer VIRTIO_BLK_F_RO (features "
				 "%#lx)", blk.features);
	for (unsigned q = 0; q < blk.nqueues; q++) {
		uint64_t sector = QUEUE_BASE + (uint64_t)q * QUEUE_SECTORS;
		int r = batch(q, VIRTIO_BLK_T_IN, sector, rbuf);

		if (r != CASE_OK)
			return r;
		memset(wbuf[0], 0x5a, REQ_BYTES);
		s = blk_sync(&blk, q, VIRTIO_BLK_T_OUT, sector, wbuf[0], REQ_BYTES);
		if (s != VIRTIO_BLK_S_IOERR)
			return s < 0 ? case_fail("write on a read-only drive: %s", err_get()) :
				       case_fail("queue %u: a write to a read-only drive returned "
						 "status %d, expected IOERR (1)", q, s);
		if ((s = blk_sync(&blk, q, VIRTIO_BLK_T_IN, sector, rbuf[1], REQ_BYTES)) != 0)
			return case_fail("queue %u: read after the refused write: status %d (%s)", q,
					 s, err_get());
		if (memcmp(rbuf[0], rbuf[1], REQ_BYTES))
			return case_fail("queue %u: sector %lu changed after a refused write", q,
					 sector);
	}
	printf("  every queue: reads OK, writes refused with IOERR, data unchanged\n");
	for (unsigned i = 0; i < 2; i++) {
		uint32_t type = i ? VIRTIO_BLK_T_WRITE_ZEROES : VIRTIO_BLK_T_DISCARD;
		const char *what = i ? "write-zeroes" : "discard";

		if (!blk_has(&blk, i ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD))
			continue;
		range = (struct blk_range){ .sector = QUEUE_BASE, .num_sectors = REQ_SECTORS };
		s = blk_sync(&blk, 0, type, 0, &range, sizeof(range));
		if (s != VIRTIO_BLK_S_IOERR && s != VIRTIO_BLK_S_UNSUPP)
			return s < 0 ? case_fail("%s: %s", what, err_get()) :
				       case_fail("%s on a read-only drive returned status %d, "
						 "expected IOERR or UNSUPP", what, s);
		printf("  %s refused with %s\n", what, s == VIRTIO_BLK_S_IOERR ? "IOERR" : "UNSUPP");
	}
	return CASE_OK;
}

int case_blk(void)
{
	struct blk_cfg cfg = { 0 };
	int64_t ro = opt_u64("blk-ro", 0);
	uint64_t need;
	int r;

	if (ro < 0)
		return case_fail("%s", err_get());
	if ((r = blk_open(&blk, &cfg, true)) != CASE_OK)
		return r;
	if ((r = check_serial()) != CASE_OK)
		goto out;
	if ((r = blk_sync(&blk, 0, VIRTIO_BLK_T_IN, blk.capacity, rbuf[0], BLK_SECTOR)) !=
	    VIRTIO_BLK_S_IOERR) {
		r = case_fail("a read at sector %lu (the capacity) returned %d, expected IOERR (%d)",
			      blk.capacity, r, VIRTIO_BLK_S_IOERR);
		goto out;
	}
	need = QUEUE_BASE + (uint64_t)blk.nqueues * QUEUE_SECTORS;
	if (blk.capacity < need) {
		r = case_fail("the disk has %lu sectors, the case needs %lu", blk.capacity, need);
		goto out;
	}
	if (ro) {
		r = check_read_only();
		goto out;
	}
	if (blk_has(&blk, VIRTIO_BLK_F_RO)) {
		r = case_skip("the device is read-only: write tests need a writable scratch disk "
			      "(blk-ro=1 checks a read-only one)");
		goto out;
	}
	for (unsigned q = 0; q < blk.nqueues; q++)
		if ((r = check_queue(q, q + 1)) != CASE_OK)
			goto out;
	printf("  every queue: %u x %u-byte writes in flight, flush, reads verified\n", BATCH,
	       REQ_BYTES);
	if ((r = check_segments()) != CASE_OK)
		goto out;
	if (blk_has(&blk, VIRTIO_BLK_F_DISCARD) &&
	    (r = check_zeroing(VIRTIO_BLK_T_DISCARD, "discard", SPECIAL_BASE, 0)) != CASE_OK)
		goto out;
	if (blk_has(&blk, VIRTIO_BLK_F_WRITE_ZEROES) &&
	    (r = check_zeroing(VIRTIO_BLK_T_WRITE_ZEROES, "write-zeroes", SPECIAL_BASE + 8, 0)) !=
	    CASE_OK)
		goto out;
	if (blk_has(&blk, VIRTIO_BLK_F_WRITE_ZEROES) &&
	    (r = check_zeroing(VIRTIO_BLK_T_WRITE_ZEROES, "write-zeroes (unmap)",
			       SPECIAL_BASE + 16, 1)) != CASE_OK)
		goto out;
	r = CASE_OK;
out:
	printf("  %lu notifications written\n", blk_kicks(&blk));
	virtio_pci_reset(&blk.vp);        /* stop the device using our rings */
	return r;
}
