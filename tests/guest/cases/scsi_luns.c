/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scsi-luns: what the controller shows on its target. REPORT LUNS (to LUN 0, which need not
 * exist) must list scsi-luns=N LUNs; on each, INQUIRY must say a connected direct-access device
 * (byte 0 = 0) of vendor "VIREO" ("QEMU" with scsi-peer=qemu), READ CAPACITY(16) and (10) must give 512-byte blocks and, with
 * scsi-size-mib, that size, and TEST UNIT READY must succeed after at most one unit attention
 * (POWER ON). A LUN that REPORT LUNS does not list must answer INQUIRY with peripheral
 * qualifier 3 (byte 0 = 7Fh) and TEST UNIT READY with ILLEGAL REQUEST / LOGICAL UNIT NOT
 * SUPPORTED; a target with no LUN must answer with response BAD_TARGET. The control queue must
 * answer an asynchronous notification query (OK on the target, BAD_TARGET elsewhere; QEMU answers
 * OK for any target, which the spec does not forbid: accepted with scsi-peer=qemu), and no event
 * may be pending (nothing was plugged at run time).
 */
#include "cases/scsi_util.h"

static struct scsi scsi;
static struct scsi_env env;
static struct scsi_req req;
static struct scsi_ctrl ctrl;
static uint8_t buf[4096] __attribute__((aligned(64)));
static char why[200];

static int cmd(unsigned target, unsigned lun, const uint8_t *cdb, unsigned len, uint32_t alloc)
{
	memset(buf, 0xa5, sizeof(buf));
	if (scsi_cmd(&scsi, 0, &req, target, lun, cdb, len, alloc ? buf : NULL, alloc, true) < 0)
		return case_fail("%s", err_get());
	return CASE_OK;
}

/* REPORT LUNS: the LUN numbers into luns[], their count into *n. */
static int report_luns(uint16_t *luns, unsigned *n)
{
	uint8_t cdb[12];
	uint32_t len;
	int r;

	if ((r = cmd(env.target, 0, cdb, cdb_report_luns(cdb, sizeof(buf)), sizeof(buf))))
		return r;
	if (!scsi_good(&req, "REPORT LUNS", why, sizeof(why)))
		return case_fail("%s", why);
	len = be32(buf);
	if (len % 8 || len + 8 > sizeof(buf) || req.resp.residual != sizeof(buf) - (len + 8))
		return case_fail("REPORT LUNS: list length %u, residual %u of %zu bytes", len,
				 req.resp.residual, sizeof(buf));
	*n = len / 8;
	printf("  REPORT LUNS: %u LUNs:", *n);
	for (unsigned i = 0; i < *n && i < SCSI_MAX_LUNS; i++) {
		const uint8_t *e = buf + 8 + 8 * i;

		if ((e[0] >> 6) > 1 || e[2] || e[3] || e[4] || e[5] || e[6] || e[7])
			return case_fail("REPORT LUNS: entry %u is not a single-level LUN", i);
		luns[i] = (uint16_t)((e[0] & 0x3f) << 8 | e[1]);
		printf(" %u", luns[i]);
	}
	printf("\n");
	if (env.nluns && *n != env.nluns)
		return case_fail("REPORT LUNS lists %u LUNs; %u are configured", *n, env.nluns);
	if (*n > SCSI_MAX_LUNS)
		return case_fail("REPORT LUNS lists %u LUNs; the case looks at %u at most", *n,
				 SCSI_MAX_LUNS);
	return CASE_OK;
}

static int check_lun(unsigned lun)
{
	uint8_t cdb[16];
	uint64_t blocks;
	uint32_t bs;
	uint16_t ua;
	int r;

	if (!scsi_clear_ua(&scsi, 0, env.target, lun, &ua, why, sizeof(why)))
		return case_fail("LUN %u: %s", lun, why);
	if ((r = cmd(env.target, lun, cdb, cdb_inquiry(cdb, false, 0, 96), 96)))
		return r;
	if (!scsi_good(&req, "INQUIRY", why, sizeof(why)))
		return case_fail("LUN %u: %s", lun, why);
	if (buf[0] != 0 || memcmp(buf + 8, env.vendor, 8) || buf[4] + 5 < 36 ||
	    req.used_len != sizeof(req.resp) + MIN(96u, buf[4] + 5u))
		return case_fail("LUN %u: INQUIRY: byte 0 %#x, vendor \"%.8s\", additional length %u, "
				 "used length %u", lun, buf[0], (const char *)buf + 8, buf[4],
				 req.used_len);
	printf("  LUN %u: \"%.8s\" \"%.16s\" \"%.4s\"%s", lun, (const char *)buf + 8,
	       (const char *)buf + 16, (const char *)buf + 32, ua ? ", unit attention " : "");
	if (ua)
		printf("%02x/%02x", ua >> 8, ua & 0xff);
	if ((r = cmd(env.target, lun, cdb, cdb_read_capacity16(cdb, 32), 32)))
		return r;
	if (!scsi_good(&req, "READ CAPACITY(16)", why, sizeof(why)))
		return case_fail("\nLUN %u: %s", lun, why);
	blocks = be64(buf) + 1;
	bs = be32(buf + 8);
	printf(", %lu blocks of %u (LBPME %u LBPRZ %u)\n", blocks, bs, buf[14] >> 7,
	       (buf[14] >> 6) & 1);
	if (bs != SCSI_BLOCK || (env.size && blocks * bs != env.size))
		return case_fail("LUN %u: READ CAPACITY(16): %lu blocks of %u bytes; expected %lu bytes "
				 "in blocks of %u", lun, blocks, bs, env.size, SCSI_BLOCK);
	if ((r = cmd(env.target, lun, cdb, cdb_simple(cdb, OP_READ_CAPACITY_10), 8)))
		return r;
	if (!scsi_good(&req, "READ CAPACITY(10)", why, sizeof(why)))
		return case_fail("LUN %u: %s", lun, why);
	if (be32(buf) + 1ULL != blocks || be32(buf + 4) != bs)
		return case_fail("LUN %u: READ CAPACITY(10) says %u + 1 blocks of %u", lun, be32(buf),
				 be32(buf + 4));
	return CASE_OK;
}

static int absent_lun(unsigned lun)
{
	struct sense sn;
	uint8_t cdb[6];
	int r;

	if ((r = cmd(env.target, lun, cdb, cdb_inquiry(cdb, false, 0, 36), 36)))
		return r;
	if (!scsi_good(&req, "INQUIRY of an absent LUN", why, sizeof(why)))
		return case_fail("LUN %u: %s", lun, why);
	if (buf[0] != 0x7f)
		return case_fail("LUN %u (absent): INQUIRY byte 0 is %#x, expected 7Fh (qualifier 3, "
				 "type 1Fh)", lun, buf[0]);
	if ((r = cmd(env.target, lun, cdb, cdb_simple(cdb, OP_TEST_UNIT_READY), 0)))
		return r;
	if (!scsi_check(&req, "TEST UNIT READY of an absent LUN", KEY_ILLEGAL_REQUEST,
			ASC_LUN_NOT_SUPPORTED, &sn, why, sizeof(why)))
		return case_fail("LUN %u: %s", lun, why);
	printf("  LUN %u (absent): INQUIRY qualifier 3, TEST UNIT READY: LOGICAL UNIT NOT "
	       "SUPPORTED\n", lun);
	return CASE_OK;
}

static int absent_target(unsigned target)
{
	uint8_t cdb[6];
	int r;

	if ((r = cmd(target, 0, cdb, cdb_inquiry(cdb, false, 0, 36), 36)))
		return r;
	/* residual: vireo counts every buffer byte as not moved; QEMU leaves it 0 */
	if (req.resp.response != VIRTIO_SCSI_S_BAD_TARGET ||
	    req.resp.residual != (env.peer_qemu ? 0u : 36u))
		return case_fail("target %u (absent): INQUIRY: response %u, residual %u; expected "
				 "BAD_TARGET (3), residual %u", target, req.resp.response,
				 req.resp.residual, env.peer_qemu ? 0 : 36);
	printf("  target %u (absent): BAD_TARGET\n", target);
	return CASE_OK;
}

static int an_query(unsigned target, uint8_t want)
{
	if (scsi_an_submit(&scsi, &ctrl, VIRTIO_SCSI_T_AN_QUERY, target, 0, 0xfe) < 0 ||
	    scsi_ctrl_wait(&scsi, &ctrl, 5000) < 0)
		return case_fail("AN query: %s", err_get());
	if (env.peer_qemu && want == VIRTIO_SCSI_S_BAD_TARGET && ctrl.resp.an.response == 0)
		return CASE_OK;
	if (ctrl.resp.an.response != want || (want == 0 && ctrl.resp.an.event_actual != 0))
		return case_fail("AN query of target %u: response %u, event_actual %#x; expected "
				 "response %u", target, ctrl.resp.an.response,
				 ctrl.resp.an.event_actual, want);
	return CASE_OK;
}

static bool listed(const uint16_t *luns, unsigned n, unsigned lun)
{
	for (unsigned i = 0; i < n; i++)
		if (luns[i] == lun)
			return true;
	return false;
}

int case_scsi_luns(void)
{
	uint16_t luns[SCSI_MAX_LUNS];
	struct scsi_event ev;
	unsigned n = 0, absent = 0;
	int r;

	if ((r = scsi_open(&scsi, &env, NULL, true)) != CASE_OK)
		return r;
	if ((r = report_luns(luns, &n)) != CASE_OK)
		goto out;
	for (unsigned i = 0; i < n; i++)
		if ((r = check_lun(luns[i])) != CASE_OK)
			goto out;
	while (listed(luns, n, absent))
		absent++;
	if ((r = absent_lun(absent)) != CASE_OK || (r = absent_lun(511)) != CASE_OK ||
	    (r = absent_target((env.target + 1) % 256)) != CASE_OK ||
	    (r = an_query(env.target, VIRTIO_SCSI_S_OK)) != CASE_OK ||
	    (r = an_query((env.target + 1) % 256, VIRTIO_SCSI_S_BAD_TARGET)) != CASE_OK)
		goto out;
	if ((r = scsi_event_poll(&scsi, &ev)) != 0) {
		r = r < 0 ? case_fail("event queue: %s", err_get()) :
			    case_fail("an event is pending: %#x reason %u", ev.event, ev.reason);
		goto out;
	}
	r = CASE_OK;
out:
	virtio_pci_reset(&scsi.vp);
	return r;
}
