/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk-smp: every queue from every CPU, concurrently. The CPUs the MADT lists are started (as the
 * smp case does); in round r CPU c owns the queues q with (q + r) mod ncpus == c, so over ncpus
 * rounds every CPU drives every queue, and within a round all CPUs drive their queues at the same
 * time. On each queue it owns a CPU repeats: 16 x 4 KiB writes in flight, flush, 16 reads, verify,
 * each round and queue on its own disk region. At the end the boot CPU reads every region back
 * through a different queue than the one that wrote it.
 *
 * Ownership: a queue has one owner per round (the rounds are separated by smp_wait, which orders
 * the previous owner's ring updates before the next owner's). Each CPU writes only its own
 * results slot and the buffers and requests of the queues it owns.
 *
 * Options: blk-smp-iters=N (write/verify passes per queue and round, default 8), and those of blk.
 */
#include "cases/blk_util.h"
#include "drivers/smp.h"
#include "ring0/ring0.h"

#define BATCH           16
#define REQ_BYTES       4096
#define REQ_SECTORS     (REQ_BYTES / BLK_SECTOR)
#define REGION_SECTORS  (BATCH * REQ_SECTORS)
#define REGION_BASE     64

static struct blk blk;
static struct blk_req reqs[BLK_MAX_QUEUES][BATCH];
static uint8_t wbuf[BLK_MAX_QUEUES][BATCH][REQ_BYTES] __attribute__((aligned(4096)));
static uint8_t rbuf[BLK_MAX_QUEUES][BATCH][REQ_BYTES] __attribute__((aligned(4096)));

struct round {
	unsigned round, ncpus, iters;
	char err[MAX_CPUS][160];        /* CPU c's failure, "" if none */
	uint64_t ios[MAX_CPUS];
};

static struct round rd;

static uint64_t region_sector(unsigned round, unsigned q)
{
	return REGION_BASE + (uint64_t)(round * blk.nqueues + q) * REGION_SECTORS;
}

static uint64_t region_seed(unsigned round, unsigned q, unsigned iter)
{
	return 1000000 + round * 10000 + q * 100 + iter;
}

static bool cpu_fail(unsigned cpu, const char *what, unsigned q)
{
	snprintf(rd.err[cpu], sizeof(rd.err[cpu]), "CPU %u, queue %u: %s: %s", cpu, q, what,
		 err_get());
	return false;
}

/* BATCH requests of one type on queue q over a region, one kick, all statuses checked. */
static bool batch(unsigned cpu, unsigned q, uint32_t type, uint64_t base,
		  uint8_t (*bufs)[REQ_BYTES])
{
	for (unsigned i = 0; i < BATCH; i++) {
		struct vring_buf seg = { bufs[i], REQ_BYTES, false };

		if (blk_submit(&blk, q, &reqs[q][i], type, base + i * REQ_SECTORS, &seg, 1) < 0)
			return cpu_fail(cpu, "submit", q);
	}
	blk_kick(&blk, q);
	if (blk_wait(&blk, q, BATCH, 5000) < 0)
		return cpu_fail(cpu, type == VIRTIO_BLK_T_IN ? "read" : "write", q);
	for (unsigned i = 0; i < BATCH; i++) {
		if (reqs[q][i].status != VIRTIO_BLK_S_OK) {
			snprintf(rd.err[cpu], sizeof(rd.err[cpu]), "CPU %u, queue %u: %s of sector "
				 "%lu: status %u", cpu, q, type == VIRTIO_BLK_T_IN ? "read" : "write",
				 base + i * REQ_SECTORS, reqs[q][i].status);
			return false;
		}
	}
	rd.ios[cpu] += BATCH;
	return true;
}

static bool drive_queue(unsigned cpu, unsigned q)
{
	uint64_t base = region_sector(rd.round, q);
	int s;

	for (unsigned it = 0; it < rd.iters; it++) {
		for (unsigned i = 0; i < BATCH; i++)
			blk_fill(wbuf[q][i], base + i * REQ_SECTORS, REQ_SECTORS,
				 region_seed(rd.round, q, it));
		if (!batch(cpu, q, VIRTIO_BLK_T_OUT, base, wbuf[q]))
			return false;
		if (blk_has(&blk, VIRTIO_BLK_F_FLUSH)) {
			s = blk_sync(&blk, q, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
			if (s < 0)
				return cpu_fail(cpu, "flush", q);
			if (s != VIRTIO_BLK_S_OK) {
				snprintf(rd.err[cpu], sizeof(rd.err[cpu]), "CPU %u, queue %u: flush: "
					 "status %d", cpu, q, s);
				return false;
			}
		}
		memset(rbuf[q], 0, sizeof(rbuf[q]));
		if (!batch(cpu, q, VIRTIO_BLK_T_IN, base, rbuf[q]))
			return false;
		for (unsigned i = 0; i < BATCH; i++) {
			if (memcmp(rbuf[q][i], wbuf[q][i], REQ_BYTES)) {
				snprintf(rd.err[cpu], sizeof(rd.err[cpu]), "CPU %u, queue %u: sectors "
					 "%lu-%lu read back differently (pass %u)", cpu, q,
					 base + i * REQ_SECTORS, base + (i + 1) * REQ_SECTORS - 1, it);
				return false;
			}
		}
	}
	return true;
}

static void worker(unsigned cpu, void *arg)
{
	rd.err[cpu][0] = '\0';
	for (unsigned q = 0; q < blk.nqueues; q++)
		if ((q + rd.round) % rd.ncpus == cpu && !drive_queue(cpu, q))
			return;
}

/* The boot CPU reads region (r, q) through queue (q + 1) mod nqueues and checks the last pass. */
static int verify_all(void)
{
	for (unsigned r = 0; r < rd.ncpus; r++) {
		for (unsigned q = 0; q < blk.nqueues; q++) {
			unsigned via = (q + 1) % blk.nqueues;
			uint64_t base = region_sector(r, q);

			rd.err[0][0] = '\0';
			if (!batch(0, via, VIRTIO_BLK_T_IN, base, rbuf[via]))
				return case_fail("final read: %s", rd.err[0]);
			for (unsigned i = 0; i < BATCH; i++) {
				blk_fill(wbuf[via][0], base + i * REQ_SECTORS, REQ_SECTORS,
					 region_seed(r, q, rd.iters - 1));
				if (memcmp(rbuf[via][i], wbuf[via][0], REQ_BYTES))
					return case_fail("sectors %lu-%lu (round %u, queue %u) read "
							 "through queue %u differ", base + i * REQ_SECTORS,
							 base + (i + 1) * REQ_SECTORS - 1, r, q, via);
			}
		}
	}
	return CASE_OK;
}

static int run_rounds(void)
{
	for (rd.round = 0; rd.round < rd.ncpus; rd.round++) {
		if (!smp_run_all(worker, NULL, 60000))
			return case_fail("round %u: %s", rd.round, err_get());
		for (unsigned c = 0; c < rd.ncpus; c++)
			if (rd.err[c][0])
				return case_fail("round %u: %s", rd.round, rd.err[c]);
	}
	return CASE_OK;
}

int case_blk_smp(void)
{
	struct blk_cfg cfg = { 0 };
	int64_t iters = opt_u64("blk-smp-iters", 8);
	uint64_t need, ios = 0;
	int n, r;

	if (iters <= 0)
		return case_fail("blk-smp-iters: %s", iters < 0 ? err_get() : "must be at least 1");
	if ((r = blk_open(&blk, &cfg, false)) != CASE_OK)
		return r;
	n = smp_start(false);
	if (n < 0) {
		r = case_fail("starting the CPUs: %s", err_get());
		goto out;
	}
	rd = (struct round){ .ncpus = n, .iters = iters };
	need = region_sector(rd.ncpus, 0);
	if (blk_has(&blk, VIRTIO_BLK_F_RO)) {
		r = case_skip("the device is read-only");
		goto out;
	}
	if (blk.capacity < need) {
		r = case_fail("the disk has %lu sectors, the case needs %lu", blk.capacity, need);
		goto out;
	}
	if ((r = run_rounds()) != CASE_OK || (r = verify_all()) != CASE_OK)
		goto out;
	for (int c = 0; c < n; c++)
		ios += rd.ios[c];
	printf("  %d CPUs x %u queues: every CPU drove every queue (%u rounds, %lu I/Os of %u "
	       "bytes, %u in flight per queue), verified across queues\n", n, blk.nqueues,
	       rd.ncpus, ios, REQ_BYTES, BATCH);
out:
	printf("  %lu notifications written\n", blk_kicks(&blk));
	virtio_pci_reset(&blk.vp);
	return r;
}
