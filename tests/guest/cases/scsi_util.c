/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the virtio-scsi cases: finding the controller, CDBs, sense data (SPC-4 4.5). */
#include "cases/scsi_util.h"

static int64_t opt_lun(const char *key)
{
	int64_t v = opt_u64(key, SCSI_NO_LUN);

	return v > 16383 && v != SCSI_NO_LUN ? -1 : v;
}

static int read_env(struct scsi_env *env)
{
	int64_t t = opt_u64("scsi-target", 0), n = opt_u64("scsi-luns", 0);
	int64_t mib = opt_u64("scsi-size-mib", 0), ro = opt_lun("scsi-ro");
	int64_t direct = opt_lun("scsi-direct");
	const char *peer = opt_get("scsi-peer");

	if (t < 0 || t > 255 || n < 0 || n > SCSI_MAX_LUNS || mib < 0 || ro < 0 || direct < 0)
		return case_fail("scsi options: %s", t > 255 ? "scsi-target above 255" :
				 n > SCSI_MAX_LUNS ? "scsi-luns above 8" :
				 ro < 0 || direct < 0 ? "a LUN above 16383" : err_get());
	if (peer && strcmp(peer, "qemu"))
		return case_fail("scsi-peer=%s: only \"qemu\" is known", peer);
	*env = (struct scsi_env){ .target = t, .nluns = n, .size = (uint64_t)mib << 20,
				  .ro_lun = ro, .direct_lun = direct, .peer_qemu = peer,
				  .vendor = peer ? "QEMU    " : "VIREO   " };
	return CASE_OK;
}

int scsi_open(struct scsi *s, struct scsi_env *env, const struct scsi_cfg *cfg, bool verbose)
{
	static const uint16_t ids[] = { 0x1048, 0x1004, 0 };
	int64_t idx = opt_u64("scsi-index", 0), require = opt_u64("scsi-require", 0);
	struct pci_dev d;
	int r;

	if (idx < 0 || require < 0)
		return case_fail("%s", err_get());
	if ((r = read_env(env)) != CASE_OK)
		return r;
	if (pci_init() < 0)
		return case_fail("%s", err_get());
	if (!pci_find(0x1af4, ids, idx, &d))
		return (require ? case_fail : case_skip)("no virtio-scsi controller #%ld (1af4:1048 "
							 "or 1af4:1004; %s)", idx, pci_method());
	if (scsi_init(s, &d, cfg) < 0)
		return case_fail("%02x:%02x.%x: %s", PCI_BUS(d.bdf), PCI_DEV(d.bdf), PCI_FN(d.bdf),
				 err_get());
	if (verbose)
		printf("  %02x:%02x.%x %04x:%04x: %u request queues (driving %u) of %u, seg_max %u, "
		       "max_sectors %u, cmd_per_lun %u, max_target %u, max_lun %u, features %#lx\n",
		       PCI_BUS(d.bdf), PCI_DEV(d.bdf), PCI_FN(d.bdf), d.vendor, d.device,
		       s->num_queues, s->nreq, s->q[SCSI_VQ_REQ0].size, s->seg_max, s->max_sectors,
		       s->cmd_per_lun, s->max_target, s->max_lun, s->features);
	return CASE_OK;
}

unsigned cdb_rw10(uint8_t *cdb, uint8_t op, uint32_t lba, uint16_t blocks, uint8_t flags)
{
	memset(cdb, 0, 10);
	cdb[0] = op;
	cdb[1] = flags;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, blocks);
	return 10;
}

unsigned cdb_rw16(uint8_t *cdb, uint8_t op, uint64_t lba, uint32_t blocks, uint8_t flags)
{
	memset(cdb, 0, 16);
	cdb[0] = op;
	cdb[1] = flags;
	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, blocks);
	return 16;
}

unsigned cdb_simple(uint8_t *cdb, uint8_t op)
{
	unsigned len = op < 0x20 ? 6 : op < 0x60 ? 10 : op >= 0xa0 && op < 0xc0 ? 12 : 16;

	memset(cdb, 0, len);
	cdb[0] = op;
	return len;
}

unsigned cdb_inquiry(uint8_t *cdb, bool evpd, uint8_t page, uint16_t alloc)
{
	memset(cdb, 0, 6);
	cdb[0] = OP_INQUIRY;
	cdb[1] = evpd;
	cdb[2] = page;
	put_be16(cdb + 3, alloc);
	return 6;
}

unsigned cdb_read_capacity16(uint8_t *cdb, uint32_t alloc)
{
	memset(cdb, 0, 16);
	cdb[0] = OP_SERVICE_IN_16;
	cdb[1] = 0x10;
	put_be32(cdb + 10, alloc);
	return 16;
}

unsigned cdb_report_luns(uint8_t *cdb, uint32_t alloc)
{
	memset(cdb, 0, 12);
	cdb[0] = OP_REPORT_LUNS;
	put_be32(cdb + 6, alloc);
	return 12;
}

unsigned cdb_request_sense(uint8_t *cdb, bool desc, uint8_t alloc)
{
	memset(cdb, 0, 6);
	cdb[0] = OP_REQUEST_SENSE;
	cdb[1] = desc;
	cdb[4] = alloc;
	return 6;
}

static void sks(const uint8_t *p, struct sense *s)
{
	s->sksv = p[0] & 0x80;
	if (!s->sksv)
		return;
	s->cd = p[0] & 0x40;
	s->bpv = p[0] & 0x08;
	s->bit = p[0] & 7;
	s->field = (uint16_t)(p[1] << 8 | p[2]);
}

bool sense_parse(const uint8_t *b, uint32_t len, struct sense *s)
{
	memset(s, 0, sizeof(*s));
	if (len < 1)
		return false;
	s->code = b[0] & 0x7f;
	if (s->code == 0x70 || s->code == 0x71) {
		if (len < 14)
			return false;
		s->key = b[2] & 0x0f;
		s->asc = (uint16_t)(b[12] << 8 | b[13]);
		if (len >= 18 && b[7] >= 10)
			sks(b + 15, s);
		return true;
	}
	if (s->code != 0x72 && s->code != 0x73)
		return false;
	if (len < 8)
		return false;
	s->key = b[1] & 0x0f;
	s->asc = (uint16_t)(b[2] << 8 | b[3]);
	for (uint32_t off = 8, end = MIN(len, 8u + b[7]); off + 2 <= end; off += 2 + b[off + 1])
		if (b[off] == 0x02 && b[off + 1] >= 6 && off + 8 <= end)
			sks(b + off + 4, s);
	return true;
}

const char *sense_str(const struct sense *s, char *buf, size_t n)
{
	int k = snprintf(buf, n, "sense %#x key %#x asc %02x/%02x", s->code, s->key, s->asc >> 8,
			 s->asc & 0xff);

	if (s->sksv && k > 0 && (size_t)k < n)
		snprintf(buf + k, n - k, " field %s byte %u bit %d", s->cd ? "CDB" : "param",
			 s->field, s->bpv ? s->bit : -1);
	return buf;
}

static void describe(const struct scsi_req *r, const char *what, const char *want, char *why,
		     size_t n)
{
	struct sense sn;
	char sb[96] = "no sense";

	if (r->resp.sense_len && sense_parse(r->resp.sense, MIN(r->resp.sense_len, SCSI_SENSE_SIZE),
					     &sn))
		sense_str(&sn, sb, sizeof(sb));
	snprintf(why, n, "%s: response %u status %#x (%s, used length %u); expected %s", what,
		 r->resp.response, r->resp.status, sb, r->used_len, want);
}

bool scsi_good(const struct scsi_req *r, const char *what, char *why, size_t n)
{
	if (r->resp.response == VIRTIO_SCSI_S_OK && r->resp.status == ST_GOOD)
		return true;
	describe(r, what, "GOOD", why, n);
	return false;
}

bool scsi_check(const struct scsi_req *r, const char *what, uint8_t key, unsigned asc,
		struct sense *sn, char *why, size_t n)
{
	char want[48];

	snprintf(want, sizeof(want), "CHECK CONDITION key %#x asc %02x/%02x", key, (asc >> 8) & 0xff,
		 asc & 0xff);
	if (r->resp.response != VIRTIO_SCSI_S_OK || r->resp.status != ST_CHECK_CONDITION ||
	    r->resp.sense_len > SCSI_SENSE_SIZE ||
	    !sense_parse(r->resp.sense, r->resp.sense_len, sn) || sn->key != key ||
	    (asc != ~0u && sn->asc != asc)) {
		describe(r, what, want, why, n);
		return false;
	}
	return true;
}

bool scsi_clear_ua(struct scsi *s, unsigned q, unsigned target, unsigned lun, uint16_t *ua,
		   char *why, size_t n)
{
	static struct scsi_req rs[SCSI_MAX_REQ_QUEUES];
	struct scsi_req *r = &rs[q];
	uint8_t cdb[6];
	struct sense sn;

	*ua = 0;
	for (int i = 0; i < 2; i++) {
		if (scsi_cmd(s, q, r, target, lun, cdb, cdb_simple(cdb, OP_TEST_UNIT_READY), NULL, 0,
			     false) < 0) {
			snprintf(why, n, "TEST UNIT READY: %s", err_get());
			return false;
		}
		if (r->resp.response == VIRTIO_SCSI_S_OK && r->resp.status == ST_GOOD)
			return true;
		if (i == 0 && scsi_check(r, "TEST UNIT READY", KEY_UNIT_ATTENTION, ~0u, &sn, why, n)) {
			*ua = sn.asc;
			continue;
		}
		if (i == 0)
			return false;
	}
	return scsi_good(r, "TEST UNIT READY after a unit attention", why, n);
}

void scsi_fill(void *buf, unsigned lun, uint64_t lba, unsigned blocks, uint64_t seed)
{
	uint64_t *w = buf;

	for (unsigned i = 0; i < blocks * SCSI_BLOCK / 8; i++)
		w[i] = ((lba + i / (SCSI_BLOCK / 8)) << 20 ^ i ^ (uint64_t)lun << 56) ^
		       seed * 0x9e3779b97f4a7c15ULL;
}

bool scsi_all_zero(const void *buf, size_t len)
{
	const uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}
