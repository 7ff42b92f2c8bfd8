/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk-crashwriter: a random stream of writes, write-zeroes, discards and flushes on a virtio-blk
 * disk, logged on the console so that a checker can tell, after the VMM was killed at any moment,
 * what the disk must still hold (not in "all"; tests/interop/qcow2-crash.sh runs it and kills
 * vireo with SIGKILL while it runs).
 *
 * The log is tests/interop/crash_pattern.h's: "@W ID OFF LEN SEED" (bytes) is printed before a
 * write is made available to the device, "@Z" / "@D" likewise before a write-zeroes / discard,
 * "@F ID" after a FLUSH completed that was submitted once every operation up to ID had completed,
 * "@E" at the end. The console is written out by the VMM at each port write, so a line the guest
 * finished printing is in the log before the request it announces exists. Write data is
 * crash_fill(SEED, ...): unique to the write and the disk offset.
 *
 * Up to crash-qd requests are in flight, spread over every queue; two requests in flight never
 * overlap (a write waits for an overlapping one to complete), and a discard runs alone, so the
 * order of completion never decides what the disk holds. A flush waits for every request in
 * flight first, as a Linux guest's REQ_PREFLUSH does.
 *
 * Options: crash-seed=N (0: the stream, and the data), crash-ops=N (2000 operations, flushes
 * included), crash-qd=N (8, at most 16), crash-maxlen=BYTES (262144, a multiple of 512, at most
 * 262144), crash-span=BYTES (the whole disk: operations stay below it), and blk-index /
 * blk-features / blk-require. **Overwrites the disk.**
 */
#include "cases/blk_util.h"
#include "tests/interop/crash_pattern.h"

#define MAX_QD          16
#define MAX_LEN         (256 * 1024)
#define BIG_DISCARD     (4 * 1024 * 1024)       /* discards may reach whole 2 MiB clusters */

struct slot {
	struct blk_req req;
	struct blk_range range;
	uint64_t off, len;              /* bytes; len 0: free */
	uint64_t id;
	unsigned q;
};

static struct blk blk;
static struct slot slots[MAX_QD];
static uint8_t bufs[MAX_QD][MAX_LEN] __attribute__((aligned(4096)));
static uint64_t rng;
static unsigned qd, inflight, next_q;

static uint64_t rand64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Takes one completion from any queue, if there is one: 0 (or none), or a case failure. */
static int reap(void)
{
	for (unsigned q = 0; q < blk.nqueues; q++) {
		struct blk_req *req;
		struct slot *s;
		int r = blk_poll(&blk, q, &req);

		if (r < 0)
			return case_fail("%s", err_get());
		if (r == 0)
			continue;
		s = (struct slot *)req; /* req is a slot's first member */
		if (req->status != VIRTIO_BLK_S_OK)
			return case_fail("op %lu (bytes %lu+%lu, queue %u): status %u", s->id, s->off,
					 s->len, s->q, req->status);
		s->len = 0;
		inflight--;
		return 0;
	}
	return 0;
}

/* Waits until no request in flight overlaps [off, off + len) (len 0: until none is in flight). */
static int wait_clear(uint64_t off, uint64_t len)
{
	uint64_t end = time_ns() + 10000000000ULL;

	for (;;) {
		bool busy = false;
		int r;

		for (unsigned i = 0; i < qd && !busy; i++)
			busy = slots[i].len &&
			       (!len || (slots[i].off < off + len && off < slots[i].off + slots[i].len));
		if (!busy)
			return 0;
		if ((r = reap()) != 0)
			return r;
		if (time_ns() > end)
			return case_fail("%u requests not completed within 10 s", inflight);
	}
}

/* A free slot (waiting for one if needed), or NULL after a case failure in *r. */
static struct slot *get_slot(int *r)
{
	for (;;) {
		for (unsigned i = 0; i < qd; i++)
			if (!slots[i].len)
				return &slots[i];
		if ((*r = reap()) != 0)
			return NULL;
	}
}

static int submit(struct slot *s, uint32_t type, void *data, uint32_t len)
{
	struct vring_buf seg = { data, len, false };

	s->q = next_q++ % blk.nqueues;
	if (blk_submit(&blk, s->q, &s->req, type, s->off / BLK_SECTOR, &seg, 1) < 0)
		return case_fail("%s", err_get());
	inflight++;
	blk_kick(&blk, s->q);
	return 0;
}

static int flush(uint64_t id)
{
	int s, r;

	if ((r = wait_clear(0, 0)) != 0)
		return r;
	if ((s = blk_sync(&blk, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0)) != VIRTIO_BLK_S_OK)
		return s < 0 ? case_fail("%s", err_get()) : case_fail("flush: status %d", s);
	printf("@F %lu\n", id);
	return 0;
}

/* One write, write-zeroes or discard of [off, off + len) bytes as op id. */
static int one_op(uint64_t id, uint64_t seed, uint32_t type, uint64_t off, uint64_t len)
{
	struct slot *s;
	int r;

	if ((r = wait_clear(type == VIRTIO_BLK_T_DISCARD ? 0 : off,
			    type == VIRTIO_BLK_T_DISCARD ? 0 : len)) != 0)
		return r;
	if (!(s = get_slot(&r)))
		return r;
	s->off = off;
	s->len = len;
	s->id = id;
	if (type == VIRTIO_BLK_T_OUT) {
		uint8_t *buf = bufs[s - slots];

		crash_fill(buf, seed, off, len);
		printf("@W %lu %lu %lu %lu\n", id, off, len, seed);
		return submit(s, type, buf, (uint32_t)len);
	}
	s->range = (struct blk_range){ .sector = off / BLK_SECTOR,
				       .num_sectors = (uint32_t)(len / BLK_SECTOR),
				       .flags = type == VIRTIO_BLK_T_WRITE_ZEROES && (seed & 1) };
	printf("@%c %lu %lu %lu\n", type == VIRTIO_BLK_T_DISCARD ? 'D' : 'Z', id, off, len);
	if ((r = submit(s, type, &s->range, sizeof(s->range))) != 0)
		return r;
	return type == VIRTIO_BLK_T_DISCARD ? wait_clear(0, 0) : 0;
}

int case_blk_crashwriter(void)
{
	struct blk_cfg cfg = { 0 };
	int64_t seed = opt_u64("crash-seed", 0), nops = opt_u64("crash-ops", 2000);
	int64_t oqd = opt_u64("crash-qd", 8), maxlen = opt_u64("crash-maxlen", MAX_LEN);
	int64_t span = opt_u64("crash-span", 0);
	uint64_t sectors, id = 0;
	int r;

	if (seed < 0 || nops < 0 || oqd < 0 || maxlen < 0 || span < 0)
		return case_fail("%s", err_get());
	if (oqd < 1 || oqd > MAX_QD || maxlen < BLK_SECTOR || maxlen > MAX_LEN ||
	    maxlen % BLK_SECTOR || span % BLK_SECTOR)
		return case_fail("crash-qd must be 1..%d, crash-maxlen and crash-span multiples of "
				 "512 (crash-maxlen at most %d)", MAX_QD, MAX_LEN);
	qd = (unsigned)oqd;
	if ((r = blk_open(&blk, &cfg, true)) != CASE_OK)
		return r;
	sectors = span ? (uint64_t)span / BLK_SECTOR : blk.capacity;
	if (sectors > blk.capacity || sectors < (uint64_t)maxlen / BLK_SECTOR) {
		r = case_fail("crash-span: the disk has %lu sectors", blk.capacity);
		goto out;
	}
	if (blk_has(&blk, VIRTIO_BLK_F_RO) || !blk_has(&blk, VIRTIO_BLK_F_FLUSH)) {
		r = case_fail("the disk must be writable and offer FLUSH (features %#lx)",
			      blk.features);
		goto out;
	}
	rng = (uint64_t)seed * 0x9e3779b97f4a7c15ULL + 1;
	printf("  seed %ld, %ld operations, %u in flight, up to %ld bytes, %lu sectors\n", seed,
	       nops, qd, maxlen, sectors);
	r = 0;
	while (!r && id < (uint64_t)nops) {
		uint64_t pick = rand64() % 100, len = (rand64() % ((uint64_t)maxlen / 512) + 1) * 512;
		uint64_t off;
		uint32_t type = VIRTIO_BLK_T_OUT;

		id++;
		if (pick < 8) {
			r = flush(id);
			continue;
		}
		if (pick < 16 && blk_has(&blk, VIRTIO_BLK_F_DISCARD)) {
			type = VIRTIO_BLK_T_DISCARD;
			if (pick < 11) /* some large: whole clusters up to 2 MiB */
				len = (rand64() % (BIG_DISCARD / 512) + 1) * 512;
		} else if (pick < 24 && blk_has(&blk, VIRTIO_BLK_F_WRITE_ZEROES)) {
			type = VIRTIO_BLK_T_WRITE_ZEROES;
		}
		if (len / 512 > sectors)
			len = sectors * 512;
		off = rand64() % (sectors - len / 512 + 1) * 512;
		r = one_op(id, (uint64_t)seed << 32 | id, type, off, len);
	}
	if (!r)
		r = flush(id);
	if (!r) {
		printf("@E\n");
		r = CASE_OK;
	}
out:
	virtio_pci_reset(&blk.vp);        /* stop the device using our rings */
	return r;
}
