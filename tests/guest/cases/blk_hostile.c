/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk-hostile: malformed requests on queue 0 while queue 1 must keep serving.
 *
 * Each item hand-builds one chain on queue 0 (drivers/vring.h raw access), kicks, and waits (a
 * bounded TSC wait, blk-hostile-ms, default 1000) for one of three outcomes:
 *   status  the chain came back with a status byte written (IOERR, UNSUPP; OK only where valid),
 *   bare    the chain came back with used length 0 and no status written (the device could not
 *           find a status byte: a looping chain, no writable descriptor),
 *   reset   the device set DEVICE_NEEDS_RESET (0x40) in device_status.
 * Neither within the wait is a failure ("no completion within X ms"). Then a normal write + read +
 * verify (a read on a read-only drive) must succeed on queue 1, and on queue 0 too unless the
 * device asked for a reset; after a reset the device is reset and brought up again.
 *
 * What each item accepts:
 *   request-level errors (short header, bad length, out-of-range sector, write to a read-only
 *   drive, unknown type, bad discard/write-zeroes flags): the status the spec names.
 *   ring-level corruption (addresses outside RAM, loops, over-long chains, bad indirect tables,
 *   bad avail entries, no status byte): status IOERR, bare or reset.
 * blk-hostile-peer=qemu: QEMU's known deviations are accepted (README.md): DEVICE_NEEDS_RESET for
 * every item, after which the other queue stops too until the driver resets the device (QEMU
 * marks the whole device broken), and DMA to addresses outside RAM completing as if it worked.
 *
 * The drive is overwritten (sectors [0, 128)); a read-only drive (blk-ro=1 options of blk) adds the
 * write-to-read-only item and skips the items that write.
 */
#include "cases/blk_util.h"

#define OUT_RAM         (1ULL << 45)    /* 32 TiB: no test VM has RAM there */
#define NEEDS_RESET     VIRTIO_STATUS_NEEDS_RESET
#define NO_STATUS       0xff

enum kind { VALID, REQUEST, RING };
enum outcome { O_STATUS, O_BARE, O_RESET, O_NONE, O_BAD };

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct item {
	const char *name;
	enum kind kind;
	uint8_t want;                   /* status for VALID and REQUEST items */
	unsigned (*build)(void);        /* builds the chain, returns its head (or a bad index) */
	bool write;                     /* needs a writable drive */
	bool read_only;                 /* needs a read-only drive */
	unsigned feature;               /* needs this feature bit negotiated (0: none) */
	bool qemu_dma_ok;               /* QEMU completes DMA to non-RAM as if it worked */
};

static struct blk blk;
static struct blk_cfg cfg;
static struct vring *hq;                /* queue 0, where the hostile chains go */
static uint16_t took[BLK_QUEUE_SIZE];
static unsigned ntook;
static struct hdr hdr;
static uint8_t status;
static uint8_t data[2][4096] __attribute__((aligned(4096)));
static struct vring_desc itable[8] __attribute__((aligned(16)));
static struct blk_range range;
static bool peer_qemu;
static uint64_t wait_ms;

static void set(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, unsigned next)
{
	struct vring_desc *d = &hq->mem->desc[took[i]];

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next < ntook ? took[next] : next;
}

/* Takes n free descriptors of queue 0 and fills the request header and status. */
static bool take(unsigned n, uint32_t type, uint64_t sector)
{
	if (!vring_take_desc(hq, n, took))
		return false;
	ntook = n;
	hdr = (struct hdr){ .type = type, .sector = sector };
	status = NO_STATUS;
	return true;
}

#define F_N     VRING_DESC_F_NEXT
#define F_W     VRING_DESC_F_WRITE
#define HDR     ((uintptr_t)&hdr)
#define STATUS  ((uintptr_t)&status)
#define DATA    ((uintptr_t)data[0])

/* a 3-descriptor request: header, data, status */
static unsigned three(uint32_t type, uint64_t sector, uint64_t daddr, uint32_t dlen,
		      uint64_t saddr)
{
	if (!take(3, type, sector))
		return ~0u;
	set(0, HDR, sizeof(hdr), F_N, 1);
	set(1, daddr, dlen, F_N | (type == VIRTIO_BLK_T_IN ? F_W : 0), 2);
	set(2, saddr, 1, F_W, 0);
	return took[0];
}

static unsigned b_data_out_of_ram(void)
{
	return three(VIRTIO_BLK_T_IN, 0, OUT_RAM, 4096, STATUS);
}

static unsigned b_status_out_of_ram(void)
{
	return three(VIRTIO_BLK_T_IN, 0, DATA, 4096, OUT_RAM);
}

static unsigned b_loop(void)
{
	if (!take(2, VIRTIO_BLK_T_IN, 0))
		return ~0u;
	set(0, HDR, sizeof(hdr), F_N, 1);
	set(1, DATA, 4096, F_N, 0);                     /* data -> back to the header */
	return took[0];
}

static unsigned b_too_long(void)
{
	unsigned n = hq->size;

	if (!take(n, VIRTIO_BLK_T_IN, 0))
		return ~0u;
	set(0, HDR, sizeof(hdr), F_N, 1);
	for (unsigned i = 1; i < n; i++)                /* the whole table, then round again */
		set(i, DATA, 512, F_N, i + 1 < n ? i + 1 : 0);
	return took[0];
}

static unsigned b_short_header(void)
{
	if (!take(2, VIRTIO_BLK_T_IN, 0))
		return ~0u;
	set(0, HDR, 8, F_N, 1);
	set(1, STATUS, 1, F_W, 0);
	return took[0];
}

static unsigned b_split_header(void)
{
	if (!take(4, VIRTIO_BLK_T_IN, 0))
		return ~0u;
	set(0, HDR, 8, F_N, 1);
	set(1, HDR + 8, 8, F_N, 2);
	set(2, DATA, 512, F_W | F_N, 3);
	set(3, STATUS, 1, F_W, 0);
	return took[0];
}

static unsigned b_no_status(void)
{
	if (!take(2, VIRTIO_BLK_T_IN, 0))
		return ~0u;
	set(0, HDR, sizeof(hdr), F_N, 1);
	set(1, DATA, 512, 0, 0);
	return took[0];
}

static unsigned b_read_1000(void)
{
	return three(VIRTIO_BLK_T_IN, 0, DATA, 1000, STATUS);
}

static unsigned b_write_1000(void)
{
	return three(VIRTIO_BLK_T_OUT, 0, DATA, 1000, STATUS);
}

static unsigned b_past_end(void)
{
	return three(VIRTIO_BLK_T_IN, blk.capacity - 1, DATA, 1024, STATUS);
}

static unsigned b_sector_overflow(void)
{
	return three(VIRTIO_BLK_T_IN, 1ULL << 63, DATA, 4096, STATUS);
}

static unsigned b_ro_write(void)
{
	return three(VIRTIO_BLK_T_OUT, 0, DATA, 4096, STATUS);
}

static unsigned b_unknown_type(void)
{
	return three(0x7e57, 0, DATA, 512, STATUS);
}

static unsigned segment(uint32_t type, uint32_t flags)
{
	range = (struct blk_range){ .sector = 8, .num_sectors = 8, .flags = flags };
	return three(type, 0, (uintptr_t)&range, sizeof(range), STATUS);
}

static unsigned b_discard_unmap(void)
{
	return segment(VIRTIO_BLK_T_DISCARD, 1);
}

static unsigned b_zeroes_bad_flag(void)
{
	return segment(VIRTIO_BLK_T_WRITE_ZEROES, 0x80);
}

/* one descriptor pointing at an indirect table of len bytes at addr */
static unsigned indirect(uint64_t addr, uint32_t len)
{
	if (!take(1, VIRTIO_BLK_T_IN, 0))
		return ~0u;
	itable[0] = (struct vring_desc){ HDR, sizeof(hdr), F_N, 1 };
	itable[1] = (struct vring_desc){ DATA, 512, F_W | F_N, 2 };
	itable[2] = (struct vring_desc){ STATUS, 1, F_W, 0 };
	set(0, addr, len, VRING_DESC_F_INDIRECT, 0);
	return took[0];
}

static unsigned b_indirect_ok(void)
{
	return indirect((uintptr_t)itable, 3 * sizeof(itable[0]));
}

static unsigned b_indirect_len0(void)
{
	return indirect((uintptr_t)itable, 0);
}

static unsigned b_indirect_len20(void)
{
	return indirect((uintptr_t)itable, 20);
}

static unsigned b_indirect_out_of_ram(void)
{
	return indirect(OUT_RAM, 3 * sizeof(itable[0]));
}

static unsigned b_indirect_loop(void)
{
	unsigned h = indirect((uintptr_t)itable, 3 * sizeof(itable[0]));

	itable[1] = (struct vring_desc){ DATA, 512, F_N, 0 };  /* data -> back to entry 0 */
	return h;
}

static unsigned b_bad_head(void)
{
	ntook = 0;
	status = NO_STATUS;
	return hq->size + 3;            /* an avail entry naming no descriptor */
}

static const struct item items[] = {
	{ .name = "valid request through an indirect table",
	  .kind = VALID, .want = VIRTIO_BLK_S_OK, .build = b_indirect_ok,
	  .feature = VIRTIO_F_INDIRECT_DESC },
	{ .name = "header split over two descriptors (8 + 8 bytes; any layout)",
	  .kind = VALID, .want = VIRTIO_BLK_S_OK, .build = b_split_header },
	{ .name = "data descriptor outside RAM",
	  .kind = RING, .want = 0, .build = b_data_out_of_ram, .qemu_dma_ok = true },
	{ .name = "status descriptor outside RAM",
	  .kind = RING, .want = 0, .build = b_status_out_of_ram, .qemu_dma_ok = true },
	{ .name = "looping chain (data -> header)",
	  .kind = RING, .want = 0, .build = b_loop },
	{ .name = "chain longer than the queue (every descriptor, then round again)",
	  .kind = RING, .want = 0, .build = b_too_long },
	{ .name = "no writable status descriptor",
	  .kind = RING, .want = 0, .build = b_no_status },
	{ .name = "header shorter than 16 bytes (8)",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_IOERR, .build = b_short_header },
	{ .name = "read of 1000 bytes (not a sector multiple)",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_IOERR, .build = b_read_1000 },
	{ .name = "write of 1000 bytes (not a sector multiple)",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_IOERR, .build = b_write_1000, .write = true },
	{ .name = "read across the end of the disk",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_IOERR, .build = b_past_end },
	{ .name = "read at sector 2^63 (byte offset overflows)",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_IOERR, .build = b_sector_overflow },
	{ .name = "write to a read-only drive",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_IOERR, .build = b_ro_write, .read_only = true },
	{ .name = "unknown request type 0x7e57",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_UNSUPP, .build = b_unknown_type },
	{ .name = "discard with the unmap flag",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_UNSUPP, .build = b_discard_unmap, .write = true,
	  .feature = VIRTIO_BLK_F_DISCARD },
	{ .name = "write-zeroes with an unknown flag (0x80)",
	  .kind = REQUEST, .want = VIRTIO_BLK_S_UNSUPP, .build = b_zeroes_bad_flag, .write = true,
	  .feature = VIRTIO_BLK_F_WRITE_ZEROES },
	{ .name = "indirect table of length 0",
	  .kind = RING, .want = 0, .build = b_indirect_len0, .feature = VIRTIO_F_INDIRECT_DESC },
	{ .name = "indirect table of length 20 (not a multiple of 16)",
	  .kind = RING, .want = 0, .build = b_indirect_len20, .feature = VIRTIO_F_INDIRECT_DESC },
	{ .name = "indirect table outside RAM",
	  .kind = RING, .want = 0, .build = b_indirect_out_of_ram,
	  .feature = VIRTIO_F_INDIRECT_DESC },
	{ .name = "looping indirect table",
	  .kind = RING, .want = 0, .build = b_indirect_loop, .feature = VIRTIO_F_INDIRECT_DESC },
	{ .name = "avail entry naming descriptor size + 3",
	  .kind = RING, .want = 0, .build = b_bad_head },
};

static const char *outcome_name(enum outcome o)
{
	static const char *const names[] = { "status", "bare", "DEVICE_NEEDS_RESET", "none", "bad" };

	return names[o];
}

/* Waits for the hostile chain's outcome on queue 0. */
static enum outcome wait_outcome(unsigned head, uint32_t *len, char *why, size_t whylen)
{
	uint64_t end = rdtsc() + wait_ms * (tsc_hz / 1000), next_status = 0;
	uint16_t id;

	for (;;) {
		if (vring_get_used_raw(hq, &id, len) > 0) {
			if (id != head) {
				snprintf(why, whylen, "the used entry names descriptor %u, the chain's "
					 "head is %u", id, head);
				return O_BAD;
			}
			vring_put_desc(hq, took, ntook);
			ntook = 0;
			barrier();
			return *(volatile uint8_t *)&status == NO_STATUS && *len == 0 ? O_BARE :
											 O_STATUS;
		}
		if (rdtsc() >= next_status) {   /* an MMIO read: every millisecond is plenty */
			if (virtio_pci_status(&blk.vp) & NEEDS_RESET)
				return O_RESET;
			next_status = rdtsc() + tsc_hz / 1000;
		}
		if ((int64_t)(rdtsc() - end) > 0) {
			snprintf(why, whylen, "no completion within %lu ms and no DEVICE_NEEDS_RESET",
				 wait_ms);
			return O_NONE;
		}
		cpu_relax();
	}
}

/* A normal request pair on queue q within ms: write + read + verify, or a read when read-only. */
static bool serves(unsigned q, uint64_t ms, char *why, size_t whylen)
{
	static struct blk_req req;
	uint64_t sector = 64 + 8 * q;
	bool ro = blk_has(&blk, VIRTIO_BLK_F_RO);
	struct vring_buf seg = { data[1], 4096, false };

	for (int pass = ro ? 1 : 0; pass < 2; pass++) {
		uint32_t type = pass ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;

		if (pass)
			memset(data[1], 0, 4096);
		else
			blk_fill(data[1], sector, 8, q + 77);
		if (blk_submit(&blk, q, &req, type, sector, &seg, 1) < 0 ||
		    (blk_kick(&blk, q), blk_wait(&blk, q, 1, ms) < 0)) {
			snprintf(why, whylen, "queue %u: %s", q, err_get());
			return false;
		}
		if (req.status != VIRTIO_BLK_S_OK) {
			snprintf(why, whylen, "queue %u: a normal %s returned status %u", q,
				 pass ? "read" : "write", req.status);
			return false;
		}
	}
	if (!ro) {
		blk_fill(data[0], sector, 8, q + 77);
		if (memcmp(data[0], data[1], 4096)) {
			snprintf(why, whylen, "queue %u: a normal write read back differently", q);
			return false;
		}
	}
	return true;
}

static bool reinit(char *why, size_t whylen)
{
	struct pci_dev d = blk.vp.pci;

	if (blk_init(&blk, &d, &cfg) < 0) {
		snprintf(why, whylen, "re-initialisation after DEVICE_NEEDS_RESET: %s", err_get());
		return false;
	}
	hq = &blk.q[0];
	return true;
}

static bool accepted(const struct item *it, enum outcome o, uint32_t len, char *why, size_t n)
{
	uint8_t s = *(volatile uint8_t *)&status;

	if (o == O_NONE || o == O_BAD)
		return false;
	if (peer_qemu && it->qemu_dma_ok)
		return true;
	if (o == O_RESET) {
		if (it->kind == RING || peer_qemu)
			return true;
		snprintf(why, n, "the device set DEVICE_NEEDS_RESET; expected status %u", it->want);
		return false;
	}
	if (o == O_BARE) {
		if (it->kind == RING)
			return true;
		snprintf(why, n, "returned with used length 0 and no status; expected status %u",
			 it->want);
		return false;
	}
	if (it->kind == RING && s == VIRTIO_BLK_S_IOERR)
		return true;
	if (it->kind != RING && s == it->want)
		return true;
	snprintf(why, n, "status %u (used length %u); expected %s", s, len,
		 it->kind == RING ? "IOERR, no status or DEVICE_NEEDS_RESET" :
		 it->want == VIRTIO_BLK_S_OK ? "OK (0)" :
		 it->want == VIRTIO_BLK_S_IOERR ? "IOERR (1)" : "UNSUPP (2)");
	return false;
}

static unsigned failures;
static char first_failure[200];

/* Records a failed item, brings the device up again for the next one. */
static int item_failed(const struct item *it, const char *why)
{
	char w2[160];

	printf("  %s: FAILED: %s\n", it->name, why);
	if (!failures++)
		snprintf(first_failure, sizeof(first_failure), "%s: %s", it->name, why);
	if (!reinit(w2, sizeof(w2)))
		return case_fail("%s", w2);
	return CASE_OK;
}

static int run_item(const struct item *it)
{
	char why[160] = "";
	enum outcome o;
	uint32_t len = 0;
	unsigned head;
	bool ro = blk_has(&blk, VIRTIO_BLK_F_RO);

	if ((it->write && ro) || (it->read_only && !ro) ||
	    (it->feature && !blk_has(&blk, it->feature))) {
		printf("  %s: not run (%s)\n", it->name, it->read_only ? "the drive is writable" :
		       it->write ? "the drive is read-only" : "feature not negotiated");
		return CASE_OK;
	}
	head = it->build();
	if (head == ~0u)
		return item_failed(it, "too few free descriptors on queue 0");
	vring_publish(hq, head);
	vring_kick(hq);
	o = wait_outcome(head, &len, why, sizeof(why));
	if (!accepted(it, o, len, why, sizeof(why)))
		return item_failed(it, why);
	printf("  %s: %s", it->name, outcome_name(o));
	if (o == O_STATUS)
		printf(" %u", *(volatile uint8_t *)&status);
	if (o == O_RESET) {
		bool other = serves(1, 200, why, sizeof(why));

		printf("; queue 1 %s", other ? "still served" : "stopped too");
		if (!other && !peer_qemu) {
			printf("\n");
			return item_failed(it, "after DEVICE_NEEDS_RESET the other queue stopped");
		}
		if (!reinit(why, sizeof(why)) || !serves(0, 2000, why, sizeof(why)) ||
		    !serves(1, 2000, why, sizeof(why))) {
			printf("\n");
			return item_failed(it, why);
		}
		printf("; reset, up again\n");
		return CASE_OK;
	}
	if (!serves(1, 2000, why, sizeof(why)) || !serves(0, 2000, why, sizeof(why))) {
		printf("\n");
		return item_failed(it, why);
	}
	printf("; both queues still serve\n");
	return CASE_OK;
}

int case_blk_hostile(void)
{
	int64_t ms = opt_u64("blk-hostile-ms", 1000);
	const char *peer = opt_get("blk-hostile-peer");
	int r;

	if (ms <= 0)
		return case_fail("blk-hostile-ms: %s", ms == 0 ? "a wait of 0 ms" : err_get());
	if (peer && strcmp(peer, "qemu"))
		return case_fail("blk-hostile-peer=%s: only \"qemu\" is known", peer);
	wait_ms = ms;
	peer_qemu = peer;
	cfg = (struct blk_cfg){ 0 };
	if ((r = blk_open(&blk, &cfg, true)) != CASE_OK)
		return r;
	hq = &blk.q[0];
	if (blk.nqueues < 2) {
		r = case_fail("the device has %u queue; blk-hostile needs 2 (num-queues=2)",
			      blk.nqueues);
		goto out;
	}
	if (blk.capacity < 128) {
		r = case_fail("the disk has %lu sectors, the case needs 128", blk.capacity);
		goto out;
	}
	failures = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(items); i++)
		if ((r = run_item(&items[i])) != CASE_OK)
			goto out;
	r = failures ? case_fail("%u items failed; first: %s", failures, first_failure) : CASE_OK;
out:
	virtio_pci_reset(&blk.vp);
	return r;
}
