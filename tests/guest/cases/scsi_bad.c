/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scsi-bad: commands the LUN must refuse with the right sense, and malformed requests the
 * transport must answer or drop while it keeps serving.
 *
 * CDBs (LUN 0; scsi-ro=LUN names a read-only LUN for DATA PROTECT), each answered with CHECK
 * CONDITION and sense data in the fixed format (70h):
 *   an unknown opcode                       ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE
 *   reserved bits (READ(10) group byte 6 bit 7, READ(16) RDPROTECT, INQUIRY page without EVPD)
 *                                           ILLEGAL REQUEST, INVALID FIELD IN CDB, SKSV with
 *                                           C/D = 1 and the byte and bit of the field
 *   READ(16) at the capacity, READ(10) across the end
 *                                           ILLEGAL REQUEST, LBA OUT OF RANGE
 *   WRITE(10) and UNMAP to the read-only LUN DATA PROTECT, WRITE PROTECTED
 * Then D_SENSE = 1 in the control mode page (MODE SENSE(10) + MODE SELECT(10)): the same reserved
 * bit gives descriptor-format sense (72h) with the field pointer in a sense-key-specific
 * descriptor; REQUEST SENSE answers NO SENSE in the format its DESC bit asks (70h / 72h); D_SENSE
 * back to 0 gives fixed sense again.
 *
 * Malformed requests, hand-built on request queue 0 (or the control queue), as blk-hostile does:
 * each waits (scsi-bad-ms, 1000) for a response written, the chain returned bare (used length
 * 0, nothing written), or DEVICE_NEEDS_RESET; then TEST UNIT READY + a READ(10) must succeed on
 * request queue 1 (unless scsi-peer=qemu) and, after a re-initialisation when the device
 * asked for one, on queue 0, and the control queue must answer a QUERY TASK. What each accepts (virtio 1.2 5.6.6.1):
 *   request errors: the response the spec names: VIRTIO_SCSI_S_OVERRUN when the CDB needs more
 *   data than the buffers in its direction hold (a READ with a data-out buffer, a WRITE with a
 *   data-in buffer, a READ longer than its buffer), VIRTIO_SCSI_S_FAILURE for data-out and
 *   data-in together without VIRTIO_SCSI_F_INOUT and for a header shorter than 19 + cdb_size
 *   bytes (QEMU: DEVICE_NEEDS_RESET, accepted with scsi-peer=qemu);
 *   ring errors (a loop, no writable descriptor, a response buffer shorter than 12 + sense_size,
 *   a buffer outside RAM, a bad avail entry, a control request shorter than its type): bare,
 *   DEVICE_NEEDS_RESET or VIRTIO_SCSI_S_FAILURE.
 * Overwrites nothing: every write goes to the read-only LUN or is refused.
 */
#include "cases/scsi_util.h"

#define OUT_RAM         (1ULL << 45)    /* 32 TiB: no test VM has RAM there */
#define UNTOUCHED       0xee            /* what scsi_submit leaves in the response */

enum kind { VALID, REQUEST, RING };
enum outcome { O_RESP, O_BARE, O_RESET, O_NONE, O_BAD };

struct item {
	const char *name;
	enum kind kind;
	uint8_t want;                   /* response for REQUEST items */
	unsigned (*build)(void);        /* builds the chain, returns its head (or a bad index) */
	bool ctrl;                      /* on the control queue */
};

static struct scsi scsi;
static struct scsi_env env;
static struct scsi_req req;
static struct scsi_ctrl ctrl;
static struct vring *hq;
static uint16_t took[SCSI_QUEUE_SIZE];
static unsigned ntook;
static uint8_t data[2][4096] __attribute__((aligned(4096)));
static uint8_t sense_buf[96];
static uint64_t nblocks, wait_ms;
static bool peer_qemu;
static char why[200];

/* ---------------------------------------------------------------------------------------------
 * Bad CDBs
 */

static int cmd(unsigned lun, const uint8_t *cdb, unsigned len, void *buf, uint32_t blen,
	       bool din)
{
	if (scsi_cmd(&scsi, 0, &req, env.target, lun, cdb, len, buf, blen, din) < 0)
		return case_fail("%s", err_get());
	return CASE_OK;
}

/* A CHECK CONDITION with key/asc, sense code (70h or 72h) and, when byte >= 0, the pointer. */
static int expect(const char *what, unsigned lun, const uint8_t *cdb, unsigned len, void *buf,
		  uint32_t blen, bool din, uint8_t key, uint16_t asc, uint8_t code, int byte,
		  int bit)
{
	struct sense sn;
	char sb[96];
	int r;

	if ((r = cmd(lun, cdb, len, buf, blen, din)) != CASE_OK)
		return r;
	if (!scsi_check(&req, what, key, asc, &sn, why, sizeof(why)))
		return case_fail("%s", why);
	if (sn.code != code || (byte >= 0 && (!sn.sksv || !sn.cd || sn.field != byte ||
					      (bit >= 0 && (!sn.bpv || sn.bit != bit)))))
		return case_fail("%s: %s; expected sense %#x%s", what, sense_str(&sn, sb, sizeof(sb)),
				 code, byte >= 0 ? " with the CDB field pointer" : "");
	if (req.resp.sense_len < (code == 0x70 ? 18u : 8u))
		return case_fail("%s: sense_len %u", what, req.resp.sense_len);
	printf("  %s: %s\n", what, sense_str(&sn, sb, sizeof(sb)));
	return CASE_OK;
}

static int invalid_field(uint8_t code)
{
	uint8_t cdb[16];

	cdb_rw10(cdb, OP_READ_10, 0, 1, 0);
	cdb[6] = 0x80;
	return expect("READ(10), reserved bit 7 of byte 6", 0, cdb, 10, data[0], 512, true,
		      KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_CDB, code, 6, 7);
}

static int bad_cdbs(void)
{
	uint8_t cdb[16];
	int r;

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x02;
	if ((r = expect("unknown opcode 02h", 0, cdb, 6, NULL, 0, false, KEY_ILLEGAL_REQUEST,
			ASC_INVALID_OPCODE, 0x70, -1, -1)) ||
	    (r = invalid_field(0x70)))
		return r;
	cdb_rw16(cdb, OP_READ_16, 0, 1, 0x20);
	if ((r = expect("READ(16), RDPROTECT 001b", 0, cdb, 16, data[0], 512, true,
			KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_CDB, 0x70, 1, 5)))
		return r;
	cdb_inquiry(cdb, false, 0x80, 36);
	if ((r = expect("INQUIRY of page 80h without EVPD", 0, cdb, 6, data[0], 36, true,
			KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_CDB, 0x70, 2, -1)))
		return r;
	cdb_rw16(cdb, OP_READ_16, nblocks, 1, 0);
	if ((r = expect("READ(16) at the capacity", 0, cdb, 16, data[0], 512, true,
			KEY_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0x70, -1, -1)))
		return r;
	cdb_rw10(cdb, OP_READ_10, (uint32_t)nblocks - 1, 2, 0);
	if ((r = expect("READ(10) across the end", 0, cdb, 10, data[0], 1024, true,
			KEY_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0x70, -1, -1)))
		return r;
	if (env.ro_lun == SCSI_NO_LUN) {
		printf("  write to a read-only LUN: not run (no scsi-ro=LUN)\n");
		return CASE_OK;
	}
	cdb_rw10(cdb, OP_WRITE_10, 0, 1, 0);
	if ((r = expect("WRITE(10) to the read-only LUN", env.ro_lun, cdb, 10, data[0], 512, false,
			KEY_DATA_PROTECT, ASC_WRITE_PROTECTED, 0x70, -1, -1)))
		return r;
	memset(data[0], 0, 24);
	put_be16(data[0], 22);
	put_be16(data[0] + 2, 16);
	put_be32(data[0] + 16, 8);
	memset(cdb, 0, 10);
	cdb[0] = OP_UNMAP;
	put_be16(cdb + 7, 24);
	return expect("UNMAP on the read-only LUN", env.ro_lun, cdb, 10, data[0], 24, false,
		      KEY_DATA_PROTECT, ASC_WRITE_PROTECTED, 0x70, -1, -1);
}

/* D_SENSE of the control mode page through MODE SENSE(10) + MODE SELECT(10). */
static int set_d_sense(bool on)
{
	uint8_t cdb[10], *m = data[1];
	uint32_t len;
	int r;

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = OP_MODE_SENSE_10;
	cdb[1] = 0x08;                  /* DBD */
	cdb[2] = 0x0a;                  /* current values, control page */
	put_be16(cdb + 7, 64);
	if ((r = cmd(0, cdb, 10, m, 64, true)) != CASE_OK)
		return r;
	if (!scsi_good(&req, "MODE SENSE(10) of the control page", why, sizeof(why)))
		return case_fail("%s", why);
	len = (uint32_t)(m[0] << 8 | m[1]) + 2;
	if (len != 8 + 12 || m[6] || m[7] || (m[8] & 0x3f) != 0x0a || m[9] != 10)
		return case_fail("MODE SENSE(10): %u bytes, block descriptors %u, page %#x of %u",
				 len, m[6] << 8 | m[7], m[8], m[9]);
	m[0] = m[1] = 0;                /* mode data length: reserved in MODE SELECT */
	m[8] &= 0x3f;                   /* PS */
	m[10] = (uint8_t)((m[10] & ~0x04) | (on ? 0x04 : 0));
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = OP_MODE_SELECT_10;
	cdb[1] = 0x10;                  /* PF */
	put_be16(cdb + 7, (uint16_t)len);
	if ((r = cmd(0, cdb, 10, m, len, false)) != CASE_OK)
		return r;
	if (!scsi_good(&req, "MODE SELECT(10) of the control page", why, sizeof(why)))
		return case_fail("%s", why);
	return CASE_OK;
}

static int request_sense(bool desc)
{
	struct sense sn;
	uint8_t cdb[6];
	int r;

	memset(sense_buf, 0xee, sizeof(sense_buf));
	if ((r = cmd(0, cdb, cdb_request_sense(cdb, desc, 96), sense_buf, 96, true)) != CASE_OK)
		return r;
	if (!scsi_good(&req, "REQUEST SENSE", why, sizeof(why)))
		return case_fail("%s", why);
	if (!sense_parse(sense_buf, 96 - req.resp.residual, &sn) || sn.code != (desc ? 0x72 : 0x70) ||
	    sn.key != KEY_NO_SENSE)
		return case_fail("REQUEST SENSE (DESC=%u): response code %#x key %#x, %u bytes", desc,
				 sense_buf[0], sn.key, 96 - req.resp.residual);
	return CASE_OK;
}

static int sense_formats(void)
{
	int r;

	if ((r = set_d_sense(true)) || (r = invalid_field(0x72)) || (r = request_sense(false)) ||
	    (r = request_sense(true)) || (r = set_d_sense(false)) || (r = invalid_field(0x70)))
		return r;
	printf("  D_SENSE=1: descriptor sense; REQUEST SENSE DESC=0/1: 70h/72h; D_SENSE=0: fixed\n");
	return CASE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Malformed requests
 */

#define F_N     VRING_DESC_F_NEXT
#define F_W     VRING_DESC_F_WRITE
#define CMD     ((uintptr_t)&req.cmd)
#define RESP    ((uintptr_t)&req.resp)
#define DATA    ((uintptr_t)data[0])

static void set(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, unsigned next)
{
	struct vring_desc *d = &hq->mem->desc[took[i]];

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next < ntook ? took[next] : next;
}

/* Takes n descriptors of queue 0, fills the command header with cdb (lun 0), clears the resp. */
static bool take(unsigned n, const uint8_t *cdb, unsigned len)
{
	hq = &scsi.q[SCSI_VQ_REQ0];
	if (!vring_take_desc(hq, n, took))
		return false;
	ntook = n;
	memset(&req.cmd, 0, sizeof(req.cmd));
	scsi_lun_field(req.cmd.lun, env.target, 0);
	req.cmd.tag = 0xbad;
	memcpy(req.cmd.cdb, cdb, len);
	memset(&req.resp, UNTOUCHED, sizeof(req.resp));
	return true;
}

static unsigned read10(unsigned n, uint16_t blocks)
{
	uint8_t cdb[10];

	cdb_rw10(cdb, OP_READ_10, 0, blocks, 0);
	return take(n, cdb, 10) ? took[0] : ~0u;
}

static unsigned write10(unsigned n)
{
	uint8_t cdb[10];

	cdb_rw10(cdb, OP_WRITE_10, 0, 1, 0);
	return take(n, cdb, 10) ? took[0] : ~0u;
}

static unsigned b_split_header(void)
{
	if (read10(4, 1) == ~0u)
		return ~0u;
	set(0, CMD, 8, F_N, 1);
	set(1, CMD + 8, sizeof(req.cmd) - 8, F_N, 2);
	set(2, RESP, sizeof(req.resp), F_W | F_N, 3);
	set(3, DATA, 512, F_W, 0);
	return took[0];
}

static unsigned b_short_header(void)
{
	if (read10(2, 1) == ~0u)
		return ~0u;
	set(0, CMD, VIRTIO_SCSI_REQ_HDR_SIZE + 16, F_N, 1);     /* cdb_size is 32 */
	set(1, RESP, sizeof(req.resp), F_W, 0);
	return took[0];
}

static unsigned b_short_resp(void)
{
	if (read10(2, 1) == ~0u)
		return ~0u;
	set(0, CMD, sizeof(req.cmd), F_N, 1);
	set(1, RESP, 8, F_W, 0);
	return took[0];
}

static unsigned b_read_dataout(void)
{
	if (read10(3, 1) == ~0u)
		return ~0u;
	set(0, CMD, sizeof(req.cmd), F_N, 1);
	set(1, DATA, 512, F_N, 2);                              /* data-out for a READ */
	set(2, RESP, sizeof(req.resp), F_W, 0);
	return took[0];
}

static unsigned b_write_datain(void)
{
	if (write10(3) == ~0u)
		return ~0u;
	set(0, CMD, sizeof(req.cmd), F_N, 1);
	set(1, RESP, sizeof(req.resp), F_W | F_N, 2);
	set(2, DATA, 512, F_W, 0);                              /* data-in for a WRITE */
	return took[0];
}

static unsigned b_read_short_buf(void)
{
	if (read10(3, 8) == ~0u)
		return ~0u;
	set(0, CMD, sizeof(req.cmd), F_N, 1);
	set(1, RESP, sizeof(req.resp), F_W | F_N, 2);
	set(2, DATA, 512, F_W, 0);                              /* 4 KiB asked */
	return took[0];
}

static unsigned b_bidi(void)
{
	if (read10(4, 1) == ~0u)
		return ~0u;
	set(0, CMD, sizeof(req.cmd), F_N, 1);
	set(1, DATA + 2048, 512, F_N, 2);
	set(2, RESP, sizeof(req.resp), F_W | F_N, 3);
	set(3, DATA, 512, F_W, 0);
	return took[0];
}

static unsigned b_loop(void)
{
	if (read10(2, 1) == ~0u)
		return ~0u;
	set(0, CMD, sizeof(req.cmd), F_N, 1);
	set(1, RESP, sizeof(req.resp), F_W | F_N, 0);           /* response -> back to the header */
	return took[0];
}

static unsigned b_no_writable(void)
{
	if (read10(2, 1) == ~0u)
		return ~0u;
	set(0, CMD, sizeof(req.cmd), F_N, 1);
	set(1, DATA, 512, 0, 0);
	return took[0];
}

static unsigned b_data_out_of_ram(void)
{
	if (read10(3, 1) == ~0u)
		return ~0u;
	set(0, CMD, sizeof(req.cmd), F_N, 1);
	set(1, RESP, sizeof(req.resp), F_W | F_N, 2);
	set(2, OUT_RAM, 512, F_W, 0);
	return took[0];
}

static unsigned b_bad_head(void)
{
	hq = &scsi.q[SCSI_VQ_REQ0];
	ntook = 0;
	memset(&req.resp, UNTOUCHED, sizeof(req.resp));
	return hq->size + 3;
}

/* A TMF of 8 bytes (type and subtype only) on the control queue. */
static unsigned b_short_tmf(void)
{
	hq = &scsi.q[SCSI_VQ_CTRL];
	if (!vring_take_desc(hq, 2, took))
		return ~0u;
	ntook = 2;
	memset(&ctrl, 0, sizeof(ctrl));
	ctrl.req.tmf.type = VIRTIO_SCSI_T_TMF;
	ctrl.req.tmf.subtype = VIRTIO_SCSI_T_TMF_QUERY_TASK;
	ctrl.resp.response = UNTOUCHED;
	set(0, (uintptr_t)&ctrl.req, 8, F_N, 1);
	set(1, (uintptr_t)&ctrl.resp, 1, F_W, 0);
	return took[0];
}

static const struct item items[] = {
	{ "READ(10) with the header split over two descriptors (8 + 43 bytes)", VALID, 0,
	  b_split_header, false },
	{ "header shorter than 19 + cdb_size bytes (35)", REQUEST, VIRTIO_SCSI_S_FAILURE,
	  b_short_header, false },
	{ "READ(10) with a data-out buffer", REQUEST, VIRTIO_SCSI_S_OVERRUN, b_read_dataout, false },
	{ "WRITE(10) with a data-in buffer", REQUEST, VIRTIO_SCSI_S_OVERRUN, b_write_datain, false },
	{ "READ(10) of 8 blocks into 512 bytes", REQUEST, VIRTIO_SCSI_S_OVERRUN, b_read_short_buf, false },
	{ "data-out and data-in without VIRTIO_SCSI_F_INOUT", REQUEST, VIRTIO_SCSI_S_FAILURE,
	  b_bidi, false },
	{ "response buffer shorter than 12 + sense_size bytes (8)", RING, 0, b_short_resp, false },
	{ "looping chain (response -> header)", RING, 0, b_loop, false },
	{ "no writable descriptor", RING, 0, b_no_writable, false },
	{ "data-in buffer outside RAM", RING, 0, b_data_out_of_ram, false },
	{ "avail entry naming descriptor size + 3", RING, 0, b_bad_head, false },
	{ "control queue: TMF of 8 bytes", RING, 0, b_short_tmf, true },
};

static uint8_t response_of(const struct item *it)
{
	return it->ctrl ? *(volatile uint8_t *)&ctrl.resp.response :
			  *(volatile uint8_t *)&req.resp.response;
}

static enum outcome wait_outcome(unsigned head, uint32_t *len)
{
	uint64_t end = rdtsc() + wait_ms * (tsc_hz / 1000), next_status = 0;
	uint16_t id;

	for (;;) {
		if (vring_get_used_raw(hq, &id, len) > 0) {
			if (id != head) {
				snprintf(why, sizeof(why), "the used entry names descriptor %u, the "
					 "chain's head is %u", id, head);
				return O_BAD;
			}
			vring_put_desc(hq, took, ntook);
			ntook = 0;
			return *len == 0 ? O_BARE : O_RESP;
		}
		if (rdtsc() >= next_status) {
			if (virtio_pci_status(&scsi.vp) & VIRTIO_STATUS_NEEDS_RESET)
				return O_RESET;
			next_status = rdtsc() + tsc_hz / 1000;
		}
		if ((int64_t)(rdtsc() - end) > 0) {
			snprintf(why, sizeof(why), "no completion within %lu ms and no "
				 "DEVICE_NEEDS_RESET", wait_ms);
			return O_NONE;
		}
		cpu_relax();
	}
}

static bool accepted(const struct item *it, enum outcome o, uint32_t len)
{
	uint8_t resp = response_of(it);

	if (o == O_NONE || o == O_BAD)
		return false;
	if (o == O_BARE && resp != UNTOUCHED) {
		snprintf(why, sizeof(why), "used length 0, yet response %u was written", resp);
		return false;
	}
	if (o == O_RESET || o == O_BARE) {
		if (it->kind == RING || (o == O_RESET && peer_qemu))
			return true;
		snprintf(why, sizeof(why), "%s; expected response %u",
			 o == O_RESET ? "DEVICE_NEEDS_RESET" : "returned bare", it->want);
		return false;
	}
	if (it->kind == VALID && resp == VIRTIO_SCSI_S_OK && req.resp.status == ST_GOOD &&
	    len == sizeof(req.resp) + 512)
		return true;
	if (it->kind == REQUEST && resp == it->want)
		return true;
	if (it->kind == RING && resp == VIRTIO_SCSI_S_FAILURE)
		return true;
	snprintf(why, sizeof(why), "response %u status %#x (used length %u); expected %s", resp,
		 req.resp.status, len, it->kind == VALID ? "OK, GOOD" :
		 it->kind == RING ? "FAILURE, bare or DEVICE_NEEDS_RESET" :
		 it->want == VIRTIO_SCSI_S_OVERRUN ? "OVERRUN (1)" : "FAILURE (9)");
	return false;
}

/* TEST UNIT READY (one unit attention allowed) and a READ(10) on request queue q. */
static bool serves(unsigned q, char *w, size_t n)
{
	static struct scsi_req r;
	uint8_t cdb[10];
	uint16_t ua;

	if (!scsi_clear_ua(&scsi, q, env.target, 0, &ua, w, n))
		return false;
	cdb_rw10(cdb, OP_READ_10, 8, 1, 0);
	if (scsi_cmd(&scsi, q, &r, env.target, 0, cdb, 10, data[1], 512, true) < 0) {
		snprintf(w, n, "queue %u: %s", q, err_get());
		return false;
	}
	return scsi_good(&r, "READ(10)", w, n);
}

/* QUERY TASK of a tag never used: FUNCTION COMPLETE. */
static bool ctrl_serves(char *w, size_t n)
{
	if (scsi_tmf_submit(&scsi, &ctrl, VIRTIO_SCSI_T_TMF_QUERY_TASK, env.target, 0, 0x5ca1ab1e) < 0 ||
	    scsi_ctrl_wait(&scsi, &ctrl, 2000) < 0) {
		snprintf(w, n, "control queue: %s", err_get());
		return false;
	}
	if (ctrl.resp.response != VIRTIO_SCSI_S_FUNCTION_COMPLETE) {
		snprintf(w, n, "QUERY TASK of an unused tag: response %u, expected FUNCTION COMPLETE",
			 ctrl.resp.response);
		return false;
	}
	return true;
}

static int reinit(void)
{
	struct pci_dev d = scsi.vp.pci;         /* scsi_init clears scsi */

	if (scsi_init(&scsi, &d, NULL) < 0)
		return case_fail("re-initialisation: %s", err_get());
	return CASE_OK;
}

static unsigned failures;
static char first_failure[200];

static int item_failed(const struct item *it, const char *w)
{
	printf("  %s: FAILED: %s\n", it->name, w);
	if (!failures++)
		snprintf(first_failure, sizeof(first_failure), "%s: %s", it->name, w);
	return reinit();
}

static int run_item(const struct item *it)
{
	char w[160];
	enum outcome o;
	uint32_t len = 0;
	unsigned head = it->build();

	if (head == ~0u)
		return item_failed(it, "too few free descriptors");
	vring_publish(hq, head);
	vring_kick(hq);
	o = wait_outcome(head, &len);
	if (!accepted(it, o, len))
		return item_failed(it, why);
	printf("  %s: %s", it->name, o == O_RESP ? "response" : o == O_BARE ? "bare" :
	       "DEVICE_NEEDS_RESET");
	if (o == O_RESP)
		printf(" %u", response_of(it));
	if (o == O_RESET) {
		bool other = serves(1, w, sizeof(w));

		printf("; queue 1 %s", other ? "still served" : "stopped too");
		if (!other && !peer_qemu) {
			printf("\n");
			return item_failed(it, "after DEVICE_NEEDS_RESET request queue 1 stopped");
		}
		if (reinit() != CASE_OK)
			return CASE_FAIL;
	}
	if (!serves(1, w, sizeof(w)) || !serves(0, w, sizeof(w)) || !ctrl_serves(w, sizeof(w))) {
		printf("\n");
		return item_failed(it, w);
	}
	printf("; both request queues and the control queue serve\n");
	return CASE_OK;
}

static int hostile(void)
{
	int r;

	if (scsi.nreq < 2)
		return case_fail("the controller has %u request queue; scsi-bad needs 2", scsi.nreq);
	failures = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(items); i++)
		if ((r = run_item(&items[i])) != CASE_OK)
			return r;
	return failures ? case_fail("%u items failed; first: %s", failures, first_failure) :
			  CASE_OK;
}

int case_scsi_bad(void)
{
	int64_t ms = opt_u64("scsi-bad-ms", 1000);
	uint8_t cdb[16];
	uint16_t ua;
	int r;

	if (ms <= 0)
		return case_fail("scsi-bad-ms: %s", ms == 0 ? "a wait of 0 ms" : err_get());
	wait_ms = ms;
	if ((r = scsi_open(&scsi, &env, NULL, false)) != CASE_OK)
		return r;
	peer_qemu = env.peer_qemu;
	for (unsigned l = 0; l < 2; l++) {
		unsigned lun = l ? env.ro_lun : 0;

		if (lun != SCSI_NO_LUN && !scsi_clear_ua(&scsi, 0, env.target, lun, &ua, why,
							 sizeof(why))) {
			r = case_fail("LUN %u: %s", lun, why);
			goto out;
		}
	}
	if ((r = cmd(0, cdb, cdb_read_capacity16(cdb, 32), data[0], 32, true)) != CASE_OK)
		goto out;
	if (!scsi_good(&req, "READ CAPACITY(16)", why, sizeof(why))) {
		r = case_fail("%s", why);
		goto out;
	}
	nblocks = be64(data[0]) + 1;
	if ((r = bad_cdbs()) != CASE_OK || (r = sense_formats()) != CASE_OK ||
	    (r = hostile()) != CASE_OK)
		goto out;
	r = CASE_OK;
out:
	virtio_pci_reset(&scsi.vp);
	return r;
}
