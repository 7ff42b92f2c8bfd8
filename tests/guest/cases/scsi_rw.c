/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scsi-rw: data through every request queue from every CPU, on two LUNs. The CPUs the MADT lists
 * are started (as blk-smp does); in round r CPU c owns the request queues q with
 * (q + r) mod ncpus == c, so every CPU drives every queue and all CPUs drive theirs at the same
 * time. On each queue it owns and on each of the two LUNs a CPU repeats scsi-rw-iters (4) times:
 * 8 x 4 KiB writes in flight (WRITE(10) and WRITE(16) alternately, every fourth with FUA),
 * SYNCHRONIZE CACHE (10 or 16), 8 reads (READ(16) and READ(10) alternately), compare, VERIFY(16)
 * with BYTCHK=1 of the whole region against the data (GOOD), and on the first pass the same
 * VERIFY with one byte changed (MISCOMPARE, 1Dh/00h). Each round, queue and LUN has a region of
 * its own. Then the boot CPU reads every region back through another queue, UNMAPs the first
 * region of each LUN and reads zeroes there (the LUNs report LBPRZ).
 *
 * Ownership: a queue has one owner per round (smp_wait between rounds orders the previous
 * owner's ring updates before the next owner's); each CPU writes only its own error slot and the
 * buffers and requests of its queues.
 *
 * The LUNs: the first two of 0, 1, ... that are not scsi-ro.
 */
#include "cases/scsi_util.h"
#include "drivers/smp.h"
#include "ring0/ring0.h"

#define BATCH           8
#define REQ_BYTES       4096
#define REQ_BLOCKS      (REQ_BYTES / SCSI_BLOCK)
#define REGION_BLOCKS   (BATCH * REQ_BLOCKS)
#define REGION_BYTES    (BATCH * REQ_BYTES)
#define NLUNS           2

static struct scsi scsi;
static struct scsi_env env;
static unsigned luns[NLUNS];
static struct scsi_req reqs[SCSI_MAX_REQ_QUEUES][BATCH];
static uint8_t wbuf[SCSI_MAX_REQ_QUEUES][REGION_BYTES] __attribute__((aligned(4096)));
static uint8_t rbuf[SCSI_MAX_REQ_QUEUES][REGION_BYTES] __attribute__((aligned(4096)));
static uint8_t param[SCSI_MAX_REQ_QUEUES][64];

static struct {
	unsigned round, ncpus, iters;
	char err[MAX_CPUS][200];
	uint64_t cmds[MAX_CPUS];
} rd;

static uint64_t region_lba(unsigned round, unsigned q)
{
	return (uint64_t)(round * scsi.nreq + q) * REGION_BLOCKS;
}

static uint64_t region_seed(unsigned round, unsigned q, unsigned iter)
{
	return 3000000 + round * 10000 + q * 100 + iter;
}

static bool cpu_fail(unsigned cpu, unsigned q, unsigned lun, const char *what)
{
	snprintf(rd.err[cpu], sizeof(rd.err[cpu]), "CPU %u, queue %u, LUN %u: %s", cpu, q, lun,
		 what);
	return false;
}

/* BATCH writes or reads over the region at lba, one kick, every status checked. */
static bool batch(unsigned cpu, unsigned q, unsigned lun, bool write, uint64_t lba,
		  uint8_t *bufs)
{
	char why[160];

	for (unsigned i = 0; i < BATCH; i++) {
		struct vring_buf seg = { bufs + i * REQ_BYTES, REQ_BYTES, !write };
		uint64_t at = lba + i * REQ_BLOCKS;
		uint8_t cdb[16], fua = write && i % 4 == 1 ? 0x08 : 0;
		unsigned len = (i % 2 == 0) == write ?
			cdb_rw10(cdb, write ? OP_WRITE_10 : OP_READ_10, at, REQ_BLOCKS, fua) :
			cdb_rw16(cdb, write ? OP_WRITE_16 : OP_READ_16, at, REQ_BLOCKS, fua);

		if (scsi_submit(&scsi, q, &reqs[q][i], env.target, lun, cdb, len, &seg, 1) < 0)
			return cpu_fail(cpu, q, lun, err_get());
	}
	scsi_kick(&scsi, q);
	if (scsi_wait(&scsi, q, BATCH, 5000) < 0)
		return cpu_fail(cpu, q, lun, err_get());
	for (unsigned i = 0; i < BATCH; i++) {
		const struct scsi_req *r = &reqs[q][i];

		if (!scsi_good(r, write ? "write" : "read", why, sizeof(why)))
			return cpu_fail(cpu, q, lun, why);
		/* QEMU's used length counts data-out too (spec 2.7.8: bytes written) */
		if (r->resp.residual || r->used_len != sizeof(r->resp) +
						       (write && !env.peer_qemu ? 0 : REQ_BYTES)) {
			snprintf(why, sizeof(why), "%s of LBA %lu: residual %u, used length %u",
				 write ? "write" : "read", lba + i * REQ_BLOCKS, r->resp.residual,
				 r->used_len);
			return cpu_fail(cpu, q, lun, why);
		}
	}
	rd.cmds[cpu] += BATCH;
	return true;
}

/* One command on queue q with one buffer; GOOD expected unless miscompare. */
static bool one(unsigned cpu, unsigned q, unsigned lun, const uint8_t *cdb, unsigned len,
		void *buf, uint32_t blen, bool miscompare, const char *what)
{
	struct scsi_req *r = &reqs[q][0];
	struct sense sn;
	char why[160];

	if (scsi_cmd(&scsi, q, r, env.target, lun, cdb, len, buf, blen, false) < 0)
		return cpu_fail(cpu, q, lun, err_get());
	rd.cmds[cpu]++;
	if (!miscompare ? scsi_good(r, what, why, sizeof(why)) :
	    scsi_check(r, what, KEY_MISCOMPARE, ASC_MISCOMPARE_VERIFY, &sn, why, sizeof(why)))
		return true;
	return cpu_fail(cpu, q, lun, why);
}

static bool pass(unsigned cpu, unsigned q, unsigned lun, unsigned it)
{
	uint64_t lba = region_lba(rd.round, q);
	uint8_t cdb[16];
	unsigned len;

	scsi_fill(wbuf[q], lun, lba, REGION_BLOCKS, region_seed(rd.round, q, it));
	if (!batch(cpu, q, lun, true, lba, wbuf[q]))
		return false;
	len = (it + rd.round) % 2 ? cdb_rw10(cdb, OP_SYNC_CACHE_10, lba, REGION_BLOCKS, 0) :
				    cdb_rw16(cdb, OP_SYNC_CACHE_16, lba, REGION_BLOCKS, 0);
	if (!one(cpu, q, lun, cdb, len, NULL, 0, false, "SYNCHRONIZE CACHE"))
		return false;
	memset(rbuf[q], 0, REGION_BYTES);
	if (!batch(cpu, q, lun, false, lba, rbuf[q]))
		return false;
	for (unsigned i = 0; i < BATCH; i++)
		if (memcmp(rbuf[q] + i * REQ_BYTES, wbuf[q] + i * REQ_BYTES, REQ_BYTES)) {
			char why[96];

			snprintf(why, sizeof(why), "LBA %lu-%lu read back differently (pass %u)",
				 lba + i * REQ_BLOCKS, lba + (i + 1) * REQ_BLOCKS - 1, it);
			return cpu_fail(cpu, q, lun, why);
		}
	len = cdb_rw16(cdb, OP_VERIFY_16, lba, REGION_BLOCKS, 0x02);   /* BYTCHK = 01b */
	if (!one(cpu, q, lun, cdb, len, wbuf[q], REGION_BYTES, false, "VERIFY(16) BYTCHK"))
		return false;
	if (it == 0) {
		wbuf[q][REGION_BYTES - 100] ^= 0x40;
		if (!one(cpu, q, lun, cdb, len, wbuf[q], REGION_BYTES, true,
			 "VERIFY(16) BYTCHK of changed data"))
			return false;
	}
	return true;
}

static void worker(unsigned cpu, void *arg)
{
	rd.err[cpu][0] = '\0';
	for (unsigned q = 0; q < scsi.nreq; q++) {
		if ((q + rd.round) % rd.ncpus != cpu)
			continue;
		for (unsigned it = 0; it < rd.iters; it++)
			for (unsigned l = 0; l < NLUNS; l++)
				if (!pass(cpu, q, luns[l], it))
					return;
	}
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

/* The boot CPU reads region (r, q) of each LUN through queue (q + 1) mod nreq. */
static int verify_all(void)
{
	for (unsigned r = 0; r < rd.ncpus; r++)
		for (unsigned q = 0; q < scsi.nreq; q++)
			for (unsigned l = 0; l < NLUNS; l++) {
				unsigned via = (q + 1) % scsi.nreq;
				uint64_t lba = region_lba(r, q);

				if (!batch(0, via, luns[l], false, lba, rbuf[via]))
					return case_fail("final read: %s", rd.err[0]);
				scsi_fill(wbuf[via], luns[l], lba, REGION_BLOCKS,
					  region_seed(r, q, rd.iters - 1));
				if (memcmp(rbuf[via], wbuf[via], REGION_BYTES))
					return case_fail("LUN %u, LBA %lu-%lu (round %u, queue %u) read "
							 "through queue %u differ", luns[l], lba,
							 lba + REGION_BLOCKS - 1, r, q, via);
			}
	return CASE_OK;
}

/* UNMAP of region (0, 0) on each LUN, then it reads as zeroes. */
static int unmap(void)
{
	uint8_t cdb[10], *p = param[0];

	for (unsigned l = 0; l < NLUNS; l++) {
		memset(p, 0, 24);
		put_be16(p, 22);                /* UNMAP data length */
		put_be16(p + 2, 16);            /* block descriptor data length */
		put_be64(p + 8, region_lba(0, 0));
		put_be32(p + 16, REGION_BLOCKS);
		memset(cdb, 0, sizeof(cdb));
		cdb[0] = OP_UNMAP;
		put_be16(cdb + 7, 24);
		if (!one(0, 0, luns[l], cdb, sizeof(cdb), p, 24, false, "UNMAP"))
			return case_fail("%s", rd.err[0]);
		memset(rbuf[0], 0xa5, REGION_BYTES);
		if (!batch(0, 0, luns[l], false, region_lba(0, 0), rbuf[0]))
			return case_fail("%s", rd.err[0]);
		if (!scsi_all_zero(rbuf[0], REGION_BYTES))
			return case_fail("LUN %u: LBA %lu-%lu do not read as zeroes after UNMAP", luns[l],
					 region_lba(0, 0), region_lba(0, 0) + REGION_BLOCKS - 1);
	}
	return CASE_OK;
}

static int pick_luns(void)
{
	char why[160];
	uint16_t ua;
	unsigned n = 0;

	for (unsigned l = 0; n < NLUNS && l < SCSI_MAX_LUNS; l++)
		if (l != env.ro_lun)
			luns[n++] = l;
	for (unsigned i = 0; i < NLUNS; i++)
		if (!scsi_clear_ua(&scsi, 0, env.target, luns[i], &ua, why, sizeof(why)))
			return case_fail("LUN %u: %s", luns[i], why);
	return CASE_OK;
}

int case_scsi_rw(void)
{
	int64_t iters = opt_u64("scsi-rw-iters", 4);
	uint64_t cmds = 0;
	int n, r;

	if (iters <= 0)
		return case_fail("scsi-rw-iters: %s", iters < 0 ? err_get() : "must be at least 1");
	if ((r = scsi_open(&scsi, &env, NULL, false)) != CASE_OK)
		return r;
	if ((r = pick_luns()) != CASE_OK)
		goto out;
	n = smp_start(false);
	if (n < 0) {
		r = case_fail("starting the CPUs: %s", err_get());
		goto out;
	}
	rd.round = 0;
	rd.ncpus = n;
	rd.iters = iters;
	if (env.size && region_lba(rd.ncpus, 0) * SCSI_BLOCK > env.size) {
		r = case_fail("the LUNs have %lu bytes, the case needs %lu", env.size,
			      region_lba(rd.ncpus, 0) * SCSI_BLOCK);
		goto out;
	}
	if ((r = run_rounds()) != CASE_OK || (r = verify_all()) != CASE_OK ||
	    (r = unmap()) != CASE_OK)
		goto out;
	for (int c = 0; c < n; c++)
		cmds += rd.cmds[c];
	printf("  %d CPUs x %u request queues x LUNs %u, %u: every CPU drove every queue (%u "
	       "rounds, %lu commands, %u x %u bytes in flight), verified across queues, UNMAP "
	       "reads zeroes\n", n, scsi.nreq, luns[0], luns[1], rd.ncpus, cmds, BATCH, REQ_BYTES);
out:
	virtio_pci_reset(&scsi.vp);
	return r;
}
