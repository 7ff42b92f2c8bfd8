/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scsi-tmf: task management functions while writes are in flight. LUN A (scsi-direct, 0 by
 * default: give it cache.direct=on so that its writes stay in flight a while) takes 16 writes of
 * 1 MiB on request queue 0; for the functions that reach further, LUN B (the next writable LUN)
 * takes 8 on request queue 1. scsi-tmf-delay-us (100) after the kick the TMF goes on the control
 * queue; the case takes no completion before the TMF's answer, then notes how many completions
 * each request queue had published by then, and reaps them all.
 *
 *   ABORT TASK (the last write's tag)   FUNCTION COMPLETE; only that write may come back ABORTED
 *   QUERY TASK (the last write's tag)   FUNCTION SUCCEEDED or COMPLETE; nothing aborted
 *   QUERY TASK (a tag never used)       FUNCTION COMPLETE
 *   QUERY TASK of an absent LUN / target  INCORRECT LUN / BAD TARGET
 *   ABORT TASK SET (LUN A)              FUNCTION COMPLETE; only A's writes may be ABORTED
 *   LOGICAL UNIT RESET (LUN A)          the same, and A reports POWER ON, RESET (29h/00h) once
 *   I_T NEXUS RESET                     FUNCTION COMPLETE; A's and B's writes may be ABORTED, both
 *                                       report 29h/00h once
 * Every write completes: GOOD, or ABORTED where the function allows it, and an ABORTED write must
 * have been published before the TMF's answer (the device returns what it aborted first). A write
 * the device received only after a reset may get the unit attention instead (counted as its one
 * report). Afterwards a write + read + compare on every request queue and LUN must succeed.
 * Overwrites LUN A's first 16 MiB and LUN B's first 8 MiB.
 */
#include "cases/scsi_util.h"

#define WRITE_BYTES     (1u << 20)
#define WRITE_BLOCKS    (WRITE_BYTES / SCSI_BLOCK)
#define NA              16
#define NB              8

static struct scsi scsi;
static struct scsi_env env;
static struct scsi_ctrl ctrl;
static struct scsi_req reqs[2][NA];
static uint8_t big[WRITE_BYTES] __attribute__((aligned(4096)));
static uint8_t small[2][4096] __attribute__((aligned(4096)));
static unsigned lun_a, lun_b;
static uint64_t delay;
static char why[200];

struct tmf_case {
	const char *name;
	uint32_t subtype;
	bool on_b;              /* LUN B busy too */
	bool by_tag;            /* names the last write of LUN A */
	bool abort_a, abort_b;  /* which writes may be aborted (by_tag: only the named one) */
	bool ua_a, ua_b;        /* a unit attention is owed afterwards */
};

struct tally {
	unsigned good, aborted, ua;
};

static void start(unsigned q, unsigned lun, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct vring_buf seg = { big, WRITE_BYTES, false };
		uint8_t cdb[10];

		cdb_rw10(cdb, OP_WRITE_10, i * WRITE_BLOCKS, WRITE_BLOCKS, 0);
		scsi_submit(&scsi, q, &reqs[q][i], env.target, lun, cdb, 10, &seg, 1);
	}
	scsi_kick(&scsi, q);
}

/* Reaps n writes of queue q; 'published' of them were visible at the TMF's answer. */
static int reap(const struct tmf_case *c, unsigned q, unsigned n, uint16_t published,
		struct tally *t)
{
	uint64_t end = time_ns() + 20000000000ULL;
	bool may_abort = q ? c->abort_b : c->abort_a, ua_owed = q ? c->ua_b : c->ua_a;

	for (unsigned k = 0; k < n;) {
		struct scsi_req *r;
		struct sense sn;
		int got = scsi_poll(&scsi, q, &r);

		if (got < 0)
			return case_fail("%s: %s", c->name, err_get());
		if (got == 0) {
			if (time_ns() > end)
				return case_fail("%s: queue %u: %u of %u writes never completed", c->name,
						 q, n - k, n);
			cpu_relax();
			continue;
		}
		if (r->resp.response == VIRTIO_SCSI_S_ABORTED) {
			bool named = r == &reqs[0][NA - 1];

			if (!may_abort || (c->by_tag && !named))
				return case_fail("%s: queue %u: write %ld came back ABORTED", c->name, q,
						 (long)(r - reqs[q]));
			if (k >= published)
				return case_fail("%s: queue %u: write %ld came back ABORTED after the "
						 "TMF's answer", c->name, q, (long)(r - reqs[q]));
			t->aborted++;
		} else if (ua_owed && r->resp.response == VIRTIO_SCSI_S_OK &&
			   r->resp.status == ST_CHECK_CONDITION &&
			   sense_parse(r->resp.sense, r->resp.sense_len, &sn) &&
			   sn.key == KEY_UNIT_ATTENTION && sn.asc == ASC_POWER_ON_RESET) {
			t->ua++;
		} else if (scsi_good(r, c->name, why, sizeof(why))) {
			t->good++;
		} else {
			return case_fail("queue %u, write %ld: %s", q, (long)(r - reqs[q]), why);
		}
		k++;
	}
	return CASE_OK;
}

static int tmf(uint32_t subtype, unsigned target, unsigned lun, uint64_t tag, uint8_t *resp)
{
	if (scsi_tmf_submit(&scsi, &ctrl, subtype, target, lun, tag) < 0 ||
	    scsi_ctrl_wait(&scsi, &ctrl, 20000) < 0)
		return case_fail("TMF %u: %s", subtype, err_get());
	*resp = ctrl.resp.response;
	return CASE_OK;
}

/* The unit attention a reset owes LUN lun: exactly one, counting what the writes took. */
static int check_ua(const char *name, unsigned lun, bool owed, unsigned taken)
{
	uint16_t ua;

	if (!scsi_clear_ua(&scsi, 0, env.target, lun, &ua, why, sizeof(why)))
		return case_fail("%s: LUN %u: %s", name, lun, why);
	if (ua && ua != ASC_POWER_ON_RESET)
		return case_fail("%s: LUN %u: unit attention %02x/%02x", name, lun, ua >> 8,
				 ua & 0xff);
	taken += ua != 0;
	if (taken != (owed ? 1u : 0u))
		return case_fail("%s: LUN %u reported POWER ON, RESET %u times; expected %u", name,
				 lun, taken, owed ? 1 : 0);
	return CASE_OK;
}

static int run(const struct tmf_case *c)
{
	struct tally ta = { 0 }, tb = { 0 };
	uint16_t published[2];
	uint8_t resp;
	bool query = c->subtype == VIRTIO_SCSI_T_TMF_QUERY_TASK;
	int r;

	start(0, lun_a, NA);
	if (c->on_b)
		start(1, lun_b, NB);
	delay_us(delay);
	if ((r = tmf(c->subtype, env.target, lun_a, c->by_tag ? reqs[0][NA - 1].cmd.tag : 0,
		     &resp)) != CASE_OK)
		return r;
	for (unsigned q = 0; q < 2; q++)       /* what the device had returned by its answer */
		published[q] = vring_used_idx(&scsi.q[SCSI_VQ_REQ0 + q]) -
			       scsi.q[SCSI_VQ_REQ0 + q].last_used;
	if ((r = reap(c, 0, NA, published[0], &ta)) != CASE_OK ||
	    (c->on_b && (r = reap(c, 1, NB, published[1], &tb)) != CASE_OK))
		return r;
	if (!(resp == VIRTIO_SCSI_S_FUNCTION_COMPLETE ||
	      (query && resp == VIRTIO_SCSI_S_FUNCTION_SUCCEEDED)))
		return case_fail("%s: response %u; expected FUNCTION COMPLETE%s", c->name, resp,
				 query ? " or SUCCEEDED" : "");
	if ((r = check_ua(c->name, lun_a, c->ua_a, ta.ua)) != CASE_OK ||
	    (r = check_ua(c->name, lun_b, c->ua_b, tb.ua)) != CASE_OK)
		return r;
	printf("  %s: response %u; LUN %u: %u GOOD, %u ABORTED%s", c->name, resp, lun_a, ta.good,
	       ta.aborted, c->ua_a ? ", POWER ON, RESET once" : "");
	if (c->on_b)
		printf("; LUN %u: %u GOOD, %u ABORTED%s", lun_b, tb.good, tb.aborted,
		       c->ua_b ? ", POWER ON, RESET once" : "");
	printf("\n");
	return CASE_OK;
}

static const struct tmf_case cases[] = {
	{ "ABORT TASK", VIRTIO_SCSI_T_TMF_ABORT_TASK, false, true, true, false, false, false },
	{ "QUERY TASK", VIRTIO_SCSI_T_TMF_QUERY_TASK, false, true, false, false, false, false },
	{ "ABORT TASK SET", VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, true, false, true, false, false,
	  false },
	{ "LOGICAL UNIT RESET", VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, true, false, true, false,
	  true, false },
	{ "I_T NEXUS RESET", VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, true, false, true, true, true,
	  true },
};

/* TMFs that name nothing in flight, or nothing at all. */
static int addressing(void)
{
	static const struct {
		const char *name;
		unsigned target, lun;
		uint8_t want;
	} a[] = {
		{ "QUERY TASK of a tag never used", 0, 0, VIRTIO_SCSI_S_FUNCTION_COMPLETE },
		{ "QUERY TASK of an absent LUN", 0, 511, VIRTIO_SCSI_S_INCORRECT_LUN },
		{ "QUERY TASK of an absent target", 1, 0, VIRTIO_SCSI_S_BAD_TARGET },
	};
	uint8_t resp;
	int r;

	for (unsigned i = 0; i < ARRAY_SIZE(a); i++) {
		unsigned target = (env.target + a[i].target) % 256;
		unsigned lun = a[i].lun ? a[i].lun : lun_a;

		if ((r = tmf(VIRTIO_SCSI_T_TMF_QUERY_TASK, target, lun, 0x7e57, &resp)) != CASE_OK)
			return r;
		if (resp != a[i].want)
			return case_fail("%s: response %u, expected %u", a[i].name, resp, a[i].want);
	}
	printf("  QUERY TASK: unused tag FUNCTION COMPLETE, absent LUN INCORRECT LUN, absent "
	       "target BAD TARGET\n");
	return CASE_OK;
}

/* After it all: a write + read + compare on every request queue and both LUNs. */
static int still_works(void)
{
	static struct scsi_req r;

	for (unsigned q = 0; q < scsi.nreq; q++)
		for (unsigned l = 0; l < 2; l++) {
			unsigned lun = l ? lun_b : lun_a;
			uint64_t lba = 64 + 8 * q;
			uint8_t cdb[10];

			scsi_fill(small[0], lun, lba, 8, q + 1);
			cdb_rw10(cdb, OP_WRITE_10, (uint32_t)lba, 8, 0);
			if (scsi_cmd(&scsi, q, &r, env.target, lun, cdb, 10, small[0], 4096, false) < 0)
				return case_fail("afterwards: %s", err_get());
			if (!scsi_good(&r, "a write afterwards", why, sizeof(why)))
				return case_fail("queue %u, LUN %u: %s", q, lun, why);
			memset(small[1], 0, 4096);
			cdb_rw10(cdb, OP_READ_10, (uint32_t)lba, 8, 0);
			if (scsi_cmd(&scsi, q, &r, env.target, lun, cdb, 10, small[1], 4096, true) < 0)
				return case_fail("afterwards: %s", err_get());
			if (!scsi_good(&r, "a read afterwards", why, sizeof(why)))
				return case_fail("queue %u, LUN %u: %s", q, lun, why);
			if (memcmp(small[0], small[1], 4096))
				return case_fail("queue %u, LUN %u: a write afterwards read back "
						 "differently", q, lun);
		}
	return CASE_OK;
}

int case_scsi_tmf(void)
{
	int64_t d = opt_u64("scsi-tmf-delay-us", 100);
	uint16_t ua;
	int r;

	if (d < 0)
		return case_fail("%s", err_get());
	delay = d;
	if ((r = scsi_open(&scsi, &env, NULL, false)) != CASE_OK)
		return r;
	lun_a = env.direct_lun == SCSI_NO_LUN ? 0 : env.direct_lun;
	for (lun_b = 0; lun_b == lun_a || lun_b == env.ro_lun; lun_b++)
		;
	if (scsi.nreq < 2) {
		r = case_fail("the controller has %u request queue; scsi-tmf needs 2", scsi.nreq);
		goto out;
	}
	if (env.size && env.size < NA * WRITE_BYTES) {
		r = case_fail("the LUNs have %lu bytes; scsi-tmf needs %u", env.size,
			      NA * WRITE_BYTES);
		goto out;
	}
	for (unsigned l = 0; l < 2; l++)
		if (!scsi_clear_ua(&scsi, 0, env.target, l ? lun_b : lun_a, &ua, why, sizeof(why))) {
			r = case_fail("%s", why);
			goto out;
		}
	memset(big, 0x5a, sizeof(big));
	printf("  LUN A %u (16 x 1 MiB on request queue 0), LUN B %u (8 x 1 MiB on queue 1), TMF %lu "
	       "us after the kick\n", lun_a, lun_b, delay);
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++)
		if ((r = run(&cases[i])) != CASE_OK)
			goto out;
	if ((r = addressing()) != CASE_OK || (r = still_works()) != CASE_OK)
		goto out;
	r = CASE_OK;
out:
	virtio_pci_reset(&scsi.vp);
	return r;
}
