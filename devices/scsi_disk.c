/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SCSI disk emulation: parameter data of the non-I/O commands, block I/O for the rest, unit
 * attention. Ownership and threads are described in scsi_disk.h.
 */
#include "devices/scsi_disk.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/io_error.h"
#include "common/util.h"

/* Parameter data built on the stack: the largest is REPORT LUNS (8 + 8 * SCSI_DISK_MAX_LUNS). */
#define RESP_MAX (8 + 8 * SCSI_DISK_MAX_LUNS)
/* WRITE SAME with a non-zero block writes its pattern from a buffer of at most this size. */
#define WS_CHUNK (1u << 20)

struct scsi_disk {
	struct blockdev *bs;
	const char *name;        /* for BLOCK_IO_ERROR */
	uint16_t lun;
	bool ro_opt;
	struct scsi_geom geom;
	uint32_t opt_gran;       /* optimal transfer / unmap granularity, blocks */
	char serial[SCSI_DISK_SERIAL_MAX + 1];
	char product[17];
	char revision[5];
	uint64_t wwn;
	struct scsi_mode def;    /* default mode parameters */
	atomic_bool wce;
	atomic_bool d_sense;
	atomic_uint ua;          /* SCSI_UA_* pending */
	size_t (*list_luns)(void *opaque, uint16_t *luns, size_t max);
	void *list_opaque;
};

/* ---------------------------------------------------------------------------------------------
 * Guest buffers
 */

static uint64_t iov_len(const struct iovec *iov, unsigned int cnt)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Shortens @iov to its first @len bytes (len <= its size); returns the entries left. */
static unsigned int iov_trim(struct iovec *iov, unsigned int cnt, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < cnt && len; i++) {
		if (iov[i].iov_len >= len) {
			iov[i].iov_len = len;
			return i + 1;
		}
		len -= iov[i].iov_len;
	}
	return i;
}

static void iov_from(const struct iovec *iov, unsigned int cnt, const uint8_t *src, uint64_t len)
{
	for (unsigned int i = 0; i < cnt && len; i++) {
		size_t n = MIN(len, (uint64_t)iov[i].iov_len);

		memcpy(iov[i].iov_base, src, n);
		src += n;
		len -= n;
	}
}

/* Copies [@skip, @skip+@len) of @iov to @dst; the range lies inside the buffers. */
static void iov_to(const struct iovec *iov, unsigned int cnt, uint64_t skip, uint8_t *dst,
		   uint64_t len)
{
	for (unsigned int i = 0; i < cnt && len; i++) {
		size_t n;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		n = MIN(len, (uint64_t)iov[i].iov_len - skip);
		memcpy(dst, (const uint8_t *)iov[i].iov_base + skip, n);
		dst += n;
		len -= n;
		skip = 0;
	}
}

/* ---------------------------------------------------------------------------------------------
 * Results
 */

static bool desc_sense(const struct scsi_disk *d)
{
	return atomic_load_explicit(&d->d_sense, memory_order_relaxed);
}

/* Ends @r with CHECK CONDITION and @e; nothing was moved. */
static bool check(struct scsi_req *r, const struct scsi_sense_err *e)
{
	r->status = SCSI_STATUS_CHECK_CONDITION;
	r->sense_len = (uint8_t)scsi_sense_build(r->sense, sizeof(r->sense),
						 desc_sense(r->priv.d), e);
	r->xfer = 0;
	r->residual = r->priv.have;
	r->overflow = 0;
	return true;
}

/* Ends @r with GOOD after moving @moved of the @want bytes the command meant to move. */
static bool good(struct scsi_req *r, uint64_t moved, uint64_t want)
{
	r->status = SCSI_STATUS_GOOD;
	r->sense_len = 0;
	r->xfer = moved;
	r->residual = r->priv.have - moved;
	r->overflow = want - moved;
	return true;
}

/* Returns @n bytes of parameter data (the command's allocation length applied). */
static bool data_in(struct scsi_req *r, const uint8_t *buf, uint64_t n)
{
	uint64_t want = MIN(n, (uint64_t)r->priv.cmd.xfer_len);
	uint64_t moved = MIN(want, r->priv.have);

	iov_from(r->din, r->din_cnt, buf, moved);
	return good(r, moved, want);
}

/* ---------------------------------------------------------------------------------------------
 * Unit attention
 */

void scsi_disk_unit_attention(struct scsi_disk *d, unsigned int ua)
{
	/* relaxed: the bits carry no data; a command sees the condition or the next one does */
	atomic_fetch_or_explicit(&d->ua, ua, memory_order_relaxed);
}

void scsi_disk_reset(struct scsi_disk *d)
{
	scsi_disk_unit_attention(d, SCSI_UA_POWER_ON);
}

unsigned int scsi_disk_pending_ua(const struct scsi_disk *d)
{
	return atomic_load_explicit(&d->ua, memory_order_relaxed);
}

/*
 * Takes the most important pending condition: clears its bit (a power-on clears them all) and
 * returns it as sense, or false when none is pending. Whoever clears a bit reports it.
 */
static bool take_ua(struct scsi_disk *d, struct scsi_sense_err *e)
{
	static const struct {
		unsigned int bit;
		uint16_t asc;
	} order[] = {
		{ SCSI_UA_POWER_ON, SCSI_ASC_POWER_ON_RESET },
		{ SCSI_UA_CAPACITY, SCSI_ASC_CAPACITY_CHANGED },
		{ SCSI_UA_MODE_PARAMS, SCSI_ASC_MODE_PARAMS_CHANGED },
	};
	unsigned int cur = atomic_load_explicit(&d->ua, memory_order_relaxed);

	while (cur) {
		for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
			unsigned int bit = order[i].bit;
			unsigned int clear = bit == SCSI_UA_POWER_ON ? ~0u : bit;

			if (!(cur & bit))
				continue;
			if (atomic_fetch_and_explicit(&d->ua, ~clear, memory_order_relaxed) & bit) {
				*e = scsi_sense(SCSI_KEY_UNIT_ATTENTION, order[i].asc);
				return true;
			}
			break; /* another queue took it: look again */
		}
		cur = atomic_load_explicit(&d->ua, memory_order_relaxed);
	}
	return false;
}

/* INQUIRY, REPORT LUNS and REQUEST SENSE neither report nor clear a unit attention. */
static bool ua_exempt(uint8_t opcode)
{
	return opcode == SCSI_OP_INQUIRY || opcode == SCSI_OP_REPORT_LUNS ||
	       opcode == SCSI_OP_REQUEST_SENSE;
}

/* ---------------------------------------------------------------------------------------------
 * Parameter data
 */

static void put_str(uint8_t *p, const char *s, size_t n)
{
	size_t l = strnlen(s, n);

	memcpy(p, s, l);
	memset(p + l, ' ', n - l);
}

static size_t inquiry_std(const struct scsi_disk *d, uint8_t *b)
{
	static const uint16_t versions[] = { 0x00a0 /* SAM-5 */, 0x0460 /* SPC-4 */,
					     0x04c0 /* SBC-3 */ };
	size_t len = 74;

	memset(b, 0, len);
	b[0] = 0x00;           /* connected, direct access block device */
	b[2] = 0x06;           /* SPC-4 */
	b[3] = 0x12;           /* HISUP, response data format 2 */
	b[4] = (uint8_t)(len - 5);
	b[7] = 0x02;           /* CMDQUE */
	put_str(b + 8, "VIREO", 8);
	put_str(b + 16, d->product, 16);
	put_str(b + 32, d->revision, 4);
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++)
		scsi_put_be16(b + 58 + 2 * i, versions[i]);
	return len;
}

static size_t vpd_header(uint8_t *b, uint8_t page, size_t body)
{
	b[0] = 0x00;
	b[1] = page;
	scsi_put_be16(b + 2, (uint16_t)body);
	return 4 + body;
}

static size_t vpd_supported(const struct scsi_disk *d, uint8_t *b)
{
	static const uint8_t pages[] = { SCSI_VPD_SUPPORTED, SCSI_VPD_SERIAL, SCSI_VPD_DEVICE_ID,
					 SCSI_VPD_BLOCK_LIMITS, SCSI_VPD_BLOCK_CHARS,
					 SCSI_VPD_LB_PROVISIONING };
	size_t n = ARRAY_SIZE(pages) - (d->geom.unmap ? 0 : 1);

	memcpy(b + 4, pages, n);
	return vpd_header(b, SCSI_VPD_SUPPORTED, n);
}

static size_t vpd_serial(const struct scsi_disk *d, uint8_t *b)
{
	size_t n = strlen(d->serial);

	memcpy(b + 4, d->serial, n);
	return vpd_header(b, SCSI_VPD_SERIAL, n);
}

static size_t vpd_device_id(const struct scsi_disk *d, uint8_t *b)
{
	uint8_t *p = b + 4;
	size_t n;

	/* NAA designator: binary, associated with the logical unit */
	p[0] = 0x01;
	p[1] = 0x03;
	p[2] = 0;
	p[3] = 8;
	scsi_put_be64(p + 4, d->wwn);
	p += 12;
	/* T10 vendor ID designator: ASCII, "VIREO   " then the serial (or the product) */
	n = strlen(d->serial) ? strlen(d->serial) : strnlen(d->product, 16);
	p[0] = 0x02;
	p[1] = 0x01;
	p[2] = 0;
	p[3] = (uint8_t)(8 + n);
	put_str(p + 4, "VIREO", 8);
	memcpy(p + 12, strlen(d->serial) ? d->serial : d->product, n);
	p += 12 + n;
	return vpd_header(b, SCSI_VPD_DEVICE_ID, (size_t)(p - b - 4));
}

static size_t vpd_block_limits(const struct scsi_disk *d, uint8_t *b)
{
	const struct scsi_geom *g = &d->geom;

	memset(b + 4, 0, 0x3c);
	b[4] = 0x01; /* WSNZ: WRITE SAME of 0 blocks is refused */
	scsi_put_be16(b + 6, (uint16_t)MIN(d->opt_gran, 0xffffu));
	scsi_put_be32(b + 8, g->max_xfer_blocks);
	if (g->unmap) {
		scsi_put_be32(b + 20, g->max_unmap_blocks);
		scsi_put_be32(b + 24, g->max_unmap_descs);
		scsi_put_be32(b + 28, d->opt_gran);
		scsi_put_be32(b + 32, 0x80000000u); /* UGAVALID, alignment 0 */
	}
	scsi_put_be64(b + 36, g->max_ws_blocks);
	return vpd_header(b, SCSI_VPD_BLOCK_LIMITS, 0x3c);
}

static size_t vpd_block_chars(uint8_t *b)
{
	memset(b + 4, 0, 0x3c);
	scsi_put_be16(b + 4, 0x0001); /* MEDIUM ROTATION RATE: non-rotating */
	return vpd_header(b, SCSI_VPD_BLOCK_CHARS, 0x3c);
}

static size_t vpd_provisioning(uint8_t *b)
{
	memset(b + 4, 0, 4);
	b[5] = 0x80 | 0x40 | 0x20 | 0x04; /* LBPU, LBPWS, LBPWS10, LBPRZ=001b */
	b[6] = 0x02;                      /* PROVISIONING TYPE: thin */
	return vpd_header(b, SCSI_VPD_LB_PROVISIONING, 4);
}

static size_t inquiry(const struct scsi_disk *d, const struct scsi_cmd *c, uint8_t *b)
{
	if (!c->evpd)
		return inquiry_std(d, b);
	switch (c->page) {
	case SCSI_VPD_SUPPORTED: return vpd_supported(d, b);
	case SCSI_VPD_SERIAL: return vpd_serial(d, b);
	case SCSI_VPD_DEVICE_ID: return vpd_device_id(d, b);
	case SCSI_VPD_BLOCK_LIMITS: return vpd_block_limits(d, b);
	case SCSI_VPD_BLOCK_CHARS: return vpd_block_chars(b);
	default: return vpd_provisioning(b); /* the parser let only B2h through */
	}
}

static size_t read_capacity(const struct scsi_disk *d, const struct scsi_cmd *c, uint8_t *b)
{
	const struct scsi_geom *g = &d->geom;
	uint64_t last = g->nblocks ? g->nblocks - 1 : 0;

	if (c->kind == SCSI_K_READ_CAPACITY_10) {
		/* a last LBA that does not fit says: use READ CAPACITY(16) */
		scsi_put_be32(b, (uint32_t)MIN(last, (uint64_t)UINT32_MAX));
		scsi_put_be32(b + 4, g->block_size);
		return 8;
	}
	memset(b, 0, 32);
	scsi_put_be64(b, last);
	scsi_put_be32(b + 8, g->block_size);
	if (g->unmap)
		b[14] = 0x80 | 0x40; /* LBPME, LBPRZ */
	return 32;
}

static size_t mode_sense(const struct scsi_disk *d, const struct scsi_cmd *c, uint8_t *b)
{
	const struct scsi_geom *g = &d->geom;
	struct scsi_mode cur = { .wce = scsi_disk_write_cache(d), .d_sense = desc_sense(d) };
	static const uint8_t all[] = { SCSI_MODE_PAGE_RW_RECOVERY, SCSI_MODE_PAGE_CACHING,
				       SCSI_MODE_PAGE_CONTROL };
	size_t hdr = c->ten ? 8 : 4, bd = c->dbd ? 0 : (c->llbaa ? 16 : 8), len;

	memset(b, 0, hdr + bd);
	b[c->ten ? 3 : 2] = (uint8_t)((g->read_only ? 0x80 : 0) | 0x10); /* WP, DPOFUA */
	if (c->ten) {
		b[4] = c->llbaa && bd ? 0x01 : 0; /* LONGLBA */
		scsi_put_be16(b + 6, (uint16_t)bd);
	} else {
		b[3] = (uint8_t)bd;
	}
	if (bd && c->pc != SCSI_PC_CHANGEABLE) { /* nothing of it is changeable */
		if (bd == 16) {
			scsi_put_be64(b + hdr, g->nblocks);
			scsi_put_be32(b + hdr + 12, g->block_size);
		} else {
			scsi_put_be32(b + hdr, (uint32_t)MIN(g->nblocks, (uint64_t)UINT32_MAX));
			scsi_put_be32(b + hdr + 4, g->block_size & 0xffffff);
		}
	}
	len = hdr + bd;
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (c->page == SCSI_MODE_PAGE_ALL || c->page == all[i])
			len += scsi_mode_page(all[i], c->pc, &cur, &d->def, b + len);
	if (c->ten)
		scsi_put_be16(b, (uint16_t)(len - 2));
	else
		b[0] = (uint8_t)(len - 1);
	return len;
}

static size_t report_luns(const struct scsi_disk *d, const struct scsi_cmd *c, uint8_t *b)
{
	uint16_t luns[SCSI_DISK_MAX_LUNS];
	size_t n = 0;

	if (c->select_report != 1) { /* 1: well-known LUNs only, and we have none */
		if (d->list_luns) {
			n = MIN(d->list_luns(d->list_opaque, luns, SCSI_DISK_MAX_LUNS),
				(size_t)SCSI_DISK_MAX_LUNS);
		} else {
			luns[0] = d->lun;
			n = 1;
		}
	}
	memset(b, 0, 8);
	scsi_put_be32(b, (uint32_t)(8 * n));
	for (size_t i = 0; i < n; i++)
		scsi_lun_encode(luns[i], b + 8 + 8 * i);
	return 8 + 8 * n;
}

static size_t request_sense(struct scsi_disk *d, const struct scsi_cmd *c, uint8_t *b)
{
	struct scsi_sense_err e = scsi_sense(SCSI_KEY_NO_SENSE, SCSI_ASC_NO_ADDITIONAL);

	take_ua(d, &e); /* a pending unit attention is the sense data, and is then cleared */
	return scsi_sense_build(b, SCSI_SENSE_MAX, c->desc, &e);
}

/* Copies the data-out parameter list (at most @max bytes of it) into @buf; returns its size. */
static size_t param_in(struct scsi_req *r, uint8_t *buf, size_t max)
{
	size_t n = (size_t)MIN(MIN((uint64_t)r->priv.cmd.param_len, r->priv.have), (uint64_t)max);

	iov_to(r->dout, r->dout_cnt, 0, buf, n);
	return n;
}

static bool mode_select(struct scsi_req *r)
{
	struct scsi_disk *d = r->priv.d;
	const struct scsi_cmd *c = &r->priv.cmd;
	struct scsi_mode cur = { .wce = scsi_disk_write_cache(d), .d_sense = desc_sense(d) }, next;
	uint8_t buf[SCSI_MODE_SELECT_MAX];
	struct scsi_sense_err e;
	size_t n;

	if (c->param_len > sizeof(buf))
		return check(r, &(struct scsi_sense_err){ .key = SCSI_KEY_ILLEGAL_REQUEST,
							    .asc = SCSI_ASC_PARAM_LIST_LENGTH });
	n = param_in(r, buf, sizeof(buf));
	if (!scsi_mode_select_parse(buf, n, c, &d->geom, &cur, &next, &e))
		return check(r, &e);
	/* one initiator: the one that changed the parameters gets no unit attention */
	atomic_store_explicit(&d->wce, next.wce, memory_order_relaxed);
	atomic_store_explicit(&d->d_sense, next.d_sense, memory_order_relaxed);
	return good(r, n, c->param_len);
}

/* Executes a command without block I/O; returns true (it always completes inline). */
static bool emulate(struct scsi_req *r)
{
	struct scsi_disk *d = r->priv.d;
	const struct scsi_cmd *c = &r->priv.cmd;
	uint8_t buf[RESP_MAX];

	switch (c->kind) {
	case SCSI_K_INQUIRY:
		return data_in(r, buf, inquiry(d, c, buf));
	case SCSI_K_READ_CAPACITY_10:
	case SCSI_K_READ_CAPACITY_16:
		return data_in(r, buf, read_capacity(d, c, buf));
	case SCSI_K_MODE_SENSE:
		return data_in(r, buf, mode_sense(d, c, buf));
	case SCSI_K_REPORT_LUNS:
		return data_in(r, buf, report_luns(d, c, buf));
	case SCSI_K_REPORT_OPCODES:
		return data_in(r, buf, scsi_report_opcodes(c, &d->geom, buf, sizeof(buf)));
	case SCSI_K_REQUEST_SENSE:
		return data_in(r, buf, request_sense(d, c, buf));
	case SCSI_K_MODE_SELECT:
		return mode_select(r);
	default: /* TEST UNIT READY, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL */
		return good(r, 0, 0);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Block I/O
 *
 * A command is a sequence of block-layer operations in r->priv.breq: the main ones (one READ
 * or WRITE; WRITE SAME's chunks; one WRITE_ZEROES per UNMAP descriptor) and a FLUSH after them
 * when the data must be stable (FUA, WCE=0, SYNCHRONIZE CACHE). io_issue() starts one; io_next()
 * takes its result and starts the next or ends the command.
 */

static void breq_done(struct blockdev_req *breq, int ret);

static void io_issue(struct scsi_req *r)
{
	struct blockdev_req *b = &r->priv.breq;
	struct blockdev *bs = r->priv.d->bs;

	b->done = breq_done;
	if (r->priv.q) {
		blockdev_submit(r->priv.q, b);
		return;
	}
	switch (b->op) {
	case BLOCKDEV_OP_READ:
		r->priv.sync_ret = blockdev_preadv(bs, b->offset, b->iov, b->iovcnt);
		break;
	case BLOCKDEV_OP_WRITE:
		r->priv.sync_ret = blockdev_pwritev(bs, b->offset, b->iov, b->iovcnt);
		break;
	case BLOCKDEV_OP_FLUSH:
		r->priv.sync_ret = blockdev_flush(bs);
		break;
	case BLOCKDEV_OP_DISCARD:
		r->priv.sync_ret = blockdev_discard(bs, b->offset, b->len);
		break;
	case BLOCKDEV_OP_WRITE_ZEROES:
		r->priv.sync_ret = blockdev_write_zeroes(bs, b->offset, b->len, b->flags);
		break;
	}
	r->priv.sync_pending = true;
}

static void io_start(struct scsi_req *r, enum blockdev_op op, uint64_t offset, uint64_t len,
		     struct iovec *iov, unsigned int iovcnt, unsigned int flags)
{
	struct blockdev_req *b = &r->priv.breq;

	memset(b, 0, sizeof(*b));
	b->op = op;
	b->offset = offset;
	b->len = len;
	b->iov = iov;
	b->iovcnt = (int)iovcnt;
	b->flags = flags;
	io_issue(r);
}

static void io_free(struct scsi_req *r)
{
	free(r->priv.bounce);
	r->priv.bounce = NULL;
	free(r->priv.descs);
	r->priv.descs = NULL;
}

/* The sense of a failed block operation. */
static struct scsi_sense_err errno_sense(const struct scsi_req *r, int ret)
{
	bool reading = r->priv.cmd.kind == SCSI_K_READ || r->priv.cmd.kind == SCSI_K_VERIFY;

	switch (ret) {
	case -EROFS:
		return scsi_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
	case -ENOSPC:
	case -EDQUOT:
		return scsi_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_SPACE_ALLOC_FAILED);
	case -EINVAL:
		return scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	case -ENOMEM:
		return scsi_sense(SCSI_KEY_HARDWARE_ERROR, SCSI_ASC_INTERNAL_FAILURE);
	default:
		return scsi_sense(SCSI_KEY_MEDIUM_ERROR,
				  reading ? SCSI_ASC_UNRECOVERED_READ : SCSI_ASC_WRITE_ERROR);
	}
}

/* VERIFY with BYTCHK: the blocks read are compared with the data-out buffer. */
static bool verify_done(struct scsi_req *r)
{
	uint8_t chunk[512];
	uint64_t len = r->priv.io_len;

	for (uint64_t off = 0; off < len; off += sizeof(chunk)) {
		size_t n = (size_t)MIN((uint64_t)sizeof(chunk), len - off);

		iov_to(r->dout, r->dout_cnt, off, chunk, n);
		for (size_t i = 0; i < n; i++) {
			if (chunk[i] != r->priv.bounce[off + i]) {
				struct scsi_sense_err e = scsi_sense(SCSI_KEY_MISCOMPARE,
								     SCSI_ASC_MISCOMPARE_VERIFY);

				e.info_valid = true;
				e.info = off + i; /* offset of the first byte that differs */
				return check(r, &e);
			}
		}
	}
	return good(r, len, r->priv.cmd.xfer_len);
}

/* The next WRITE SAME chunk, from byte r->priv.pos of the range. */
static void write_same_next(struct scsi_req *r)
{
	uint64_t off = r->priv.cmd.lba * r->priv.d->geom.block_size + r->priv.pos;
	uint64_t n = MIN(r->priv.end - r->priv.pos, (uint64_t)r->priv.bounce_iov.iov_len);

	r->priv.bounce_iov.iov_len = n;
	io_start(r, BLOCKDEV_OP_WRITE, off, 0, &r->priv.bounce_iov, 1, 0);
}

static void unmap_next(struct scsi_req *r)
{
	const struct scsi_unmap_desc *u = &r->priv.descs[r->priv.idx];
	uint32_t bsz = r->priv.d->geom.block_size;

	io_start(r, BLOCKDEV_OP_WRITE_ZEROES, u->lba * bsz, (uint64_t)u->nblocks * bsz, NULL, 0,
		 BLOCKDEV_ZERO_MAY_UNMAP);
}

/* Ends the command; a FLUSH first when its writes must be stable. */
static bool io_finish(struct scsi_req *r)
{
	if (r->priv.flush_after && !r->priv.flushing) {
		r->priv.flushing = true;
		io_start(r, BLOCKDEV_OP_FLUSH, 0, 0, NULL, 0, 0);
		return false;
	}
	io_free(r);
	return good(r, r->priv.io_len, r->priv.cmd.xfer_len);
}

/* The operation in r->priv.breq completed with @ret: start the next, or end (true). */
static bool io_next(struct scsi_req *r, int ret)
{
	if (ret < 0) {
		struct scsi_sense_err e = errno_sense(r, ret);

		if (ret != -EINVAL && ret != -EOPNOTSUPP) /* the host's failure, not the request's */
			blockdev_io_error(r->priv.d->name, r->priv.d->bs->node_name,
					  r->priv.breq.op != BLOCKDEV_OP_READ, ret);
		io_free(r);
		return check(r, &e);
	}
	if (r->priv.flushing)
		return io_finish(r);
	switch (r->priv.cmd.kind) {
	case SCSI_K_VERIFY: {
		bool done = verify_done(r);

		io_free(r);
		return done;
	}
	case SCSI_K_WRITE_SAME:
		if (r->priv.breq.op == BLOCKDEV_OP_WRITE) {
			r->priv.pos += r->priv.breq.iov[0].iov_len;
			if (r->priv.pos < r->priv.end) {
				write_same_next(r);
				return false;
			}
		}
		return io_finish(r);
	case SCSI_K_UNMAP:
		if (++r->priv.idx < r->priv.ndesc) {
			unmap_next(r);
			return false;
		}
		return io_finish(r);
	default:
		return io_finish(r);
	}
}

static void breq_done(struct blockdev_req *breq, int ret)
{
	struct scsi_req *r = container_of(breq, struct scsi_req, priv.breq);

	if (io_next(r, ret))
		r->done(r);
}

/* Whole blocks of the transfer that the buffers hold, in bytes. */
static uint64_t whole_blocks(const struct scsi_req *r)
{
	uint32_t bsz = r->priv.d->geom.block_size;

	return MIN(r->priv.cmd.xfer_len, r->priv.have) / bsz * bsz;
}

static bool start_rw(struct scsi_req *r)
{
	const struct scsi_cmd *c = &r->priv.cmd;
	bool write = c->kind == SCSI_K_WRITE;
	struct iovec *iov = write ? r->dout : r->din;
	unsigned int cnt;
	uint64_t len = whole_blocks(r);

	if (len == 0)
		return good(r, 0, c->xfer_len);
	cnt = iov_trim(iov, write ? r->dout_cnt : r->din_cnt, len);
	if (cnt > BLOCKDEV_MAX_IOV)
		return check(r, &(struct scsi_sense_err){ .key = SCSI_KEY_HARDWARE_ERROR,
							    .asc = SCSI_ASC_INTERNAL_FAILURE });
	if (write) {
		r->dout_cnt = cnt;
		r->priv.flush_after = c->fua || !scsi_disk_write_cache(r->priv.d);
	} else {
		r->din_cnt = cnt;
	}
	r->priv.io_len = len;
	io_start(r, write ? BLOCKDEV_OP_WRITE : BLOCKDEV_OP_READ,
		 c->lba * r->priv.d->geom.block_size, 0, iov, cnt, 0);
	return false;
}

static bool start_verify(struct scsi_req *r)
{
	uint64_t len = whole_blocks(r);

	if (!r->priv.cmd.bytchk || len == 0) /* BYTCHK=0: the medium has nothing to check */
		return good(r, 0, r->priv.cmd.xfer_len);
	r->priv.bounce = malloc(len);
	if (!r->priv.bounce)
		return check(r, &(struct scsi_sense_err){ .key = SCSI_KEY_HARDWARE_ERROR,
							    .asc = SCSI_ASC_INTERNAL_FAILURE });
	r->priv.io_len = len;
	r->priv.bounce_iov = (struct iovec){ r->priv.bounce, len };
	io_start(r, BLOCKDEV_OP_READ, r->priv.cmd.lba * r->priv.d->geom.block_size, 0,
		 &r->priv.bounce_iov, 1, 0);
	return false;
}

static bool start_write_same(struct scsi_req *r)
{
	const struct scsi_cmd *c = &r->priv.cmd;
	uint32_t bsz = r->priv.d->geom.block_size;
	uint64_t off = c->lba * bsz, len = (uint64_t)c->nblocks * bsz;
	uint8_t *blk = calloc(1, bsz);
	size_t chunk;

	if (!blk)
		return check(r, &(struct scsi_sense_err){ .key = SCSI_KEY_HARDWARE_ERROR,
							    .asc = SCSI_ASC_INTERNAL_FAILURE });
	if (!c->ndob) {
		if (r->priv.have < bsz) { /* the block to write is not all there */
			free(blk);
			return check(r, &(struct scsi_sense_err){
				.key = SCSI_KEY_ILLEGAL_REQUEST, .asc = SCSI_ASC_PARAM_LIST_LENGTH });
		}
		iov_to(r->dout, r->dout_cnt, 0, blk, bsz);
		r->priv.io_len = bsz;
	}
	r->priv.flush_after = !scsi_disk_write_cache(r->priv.d);
	if (buf_is_zero(blk, bsz)) {
		unsigned int flags = c->unmap ? BLOCKDEV_ZERO_MAY_UNMAP : 0;

		free(blk);
		io_start(r, BLOCKDEV_OP_WRITE_ZEROES, off, len, NULL, 0, flags);
		return false;
	}
	/* a pattern: written from a buffer holding it as many times as fit in a chunk */
	chunk = (size_t)MIN(len, (uint64_t)MAX(WS_CHUNK, bsz));
	r->priv.bounce = realloc(blk, chunk);
	if (!r->priv.bounce) {
		free(blk);
		return check(r, &(struct scsi_sense_err){ .key = SCSI_KEY_HARDWARE_ERROR,
							    .asc = SCSI_ASC_INTERNAL_FAILURE });
	}
	for (size_t i = bsz; i < chunk; i += bsz)
		memcpy(r->priv.bounce + i, r->priv.bounce, bsz);
	r->priv.pos = 0;
	r->priv.end = len;
	r->priv.bounce_iov = (struct iovec){ r->priv.bounce, chunk };
	write_same_next(r);
	return false;
}

static bool start_unmap(struct scsi_req *r)
{
	struct scsi_disk *d = r->priv.d;
	uint8_t buf[SCSI_UNMAP_PARAM_MAX];
	struct scsi_sense_err e;
	size_t n = param_in(r, buf, sizeof(buf));

	r->priv.descs = calloc(d->geom.max_unmap_descs, sizeof(*r->priv.descs));
	if (!r->priv.descs)
		return check(r, &(struct scsi_sense_err){ .key = SCSI_KEY_HARDWARE_ERROR,
							    .asc = SCSI_ASC_INTERNAL_FAILURE });
	if (!scsi_unmap_parse(buf, n, &d->geom, r->priv.descs, &r->priv.ndesc, &e)) {
		io_free(r);
		return check(r, &e);
	}
	r->priv.io_len = n;
	if (r->priv.ndesc == 0) {
		io_free(r);
		return good(r, n, r->priv.cmd.xfer_len);
	}
	r->priv.idx = 0;
	unmap_next(r);
	return false;
}

/* ---------------------------------------------------------------------------------------------
 * Submission
 */

static void req_init(struct scsi_disk *d, struct blockdev_queue *q, struct scsi_req *r)
{
	memset(&r->priv, 0, sizeof(r->priv));
	r->priv.d = d;
	r->priv.q = q;
	r->priv.have = iov_len(r->din, r->din_cnt) + iov_len(r->dout, r->dout_cnt);
	r->status = SCSI_STATUS_GOOD;
	r->sense_len = 0;
	r->xfer = 0;
	r->residual = 0;
	r->overflow = 0;
}

bool scsi_disk_submit(struct scsi_disk *d, struct blockdev_queue *q, struct scsi_req *r)
{
	return scsi_disk_submit_parsed(d, q, r, NULL);
}

bool scsi_disk_submit_parsed(struct scsi_disk *d, struct blockdev_queue *q, struct scsi_req *r,
			     const struct scsi_cmd *parsed)
{
	struct scsi_cmd *c = &r->priv.cmd;
	struct scsi_sense_err e;
	size_t len = MIN((size_t)r->cdb_len, sizeof(r->cdb));

	req_init(d, q, r);
	if ((len == 0 || !ua_exempt(r->cdb[0])) && take_ua(d, &e))
		return check(r, &e);
	if (parsed)
		*c = *parsed;
	else if (!scsi_cdb_parse(r->cdb, len, &d->geom, c, &e))
		return check(r, &e);
	switch (c->dir) {
	case SCSI_DIR_IN:
		r->priv.have = iov_len(r->din, r->din_cnt);
		break;
	case SCSI_DIR_OUT:
		r->priv.have = iov_len(r->dout, r->dout_cnt);
		break;
	default:
		break;
	}
	switch (c->kind) {
	case SCSI_K_READ:
	case SCSI_K_WRITE:
		return start_rw(r);
	case SCSI_K_VERIFY:
		return start_verify(r);
	case SCSI_K_WRITE_SAME:
		return start_write_same(r);
	case SCSI_K_UNMAP:
		return start_unmap(r);
	case SCSI_K_SYNC_CACHE:
		r->priv.flush_after = true;
		return io_finish(r);
	default:
		return emulate(r);
	}
}

void scsi_disk_execute_sync(struct scsi_disk *d, struct scsi_req *r)
{
	if (scsi_disk_submit(d, NULL, r))
		return;
	while (r->priv.sync_pending) {
		r->priv.sync_pending = false;
		if (io_next(r, r->priv.sync_ret))
			return;
	}
}

/* ---------------------------------------------------------------------------------------------
 * Control plane
 */

/* 64-bit FNV-1a */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* A locally assigned NAA identifier (NAA 3h) from the serial, or the node name and LUN. */
static uint64_t derive_wwn(const struct scsi_disk *d)
{
	uint64_t h = 0xcbf29ce484222325ull;

	if (d->serial[0]) {
		h = fnv1a(h, d->serial, strlen(d->serial));
	} else {
		h = fnv1a(h, d->bs->node_name, strlen(d->bs->node_name));
		h = fnv1a(h, &d->lun, sizeof(d->lun));
	}
	return 3ull << 60 | (h & ((1ull << 60) - 1));
}

static uint32_t node_block_size(const struct blockdev *bs)
{
	return MAX(512u, bs->file ? bs->file->align : bs->align);
}

/* The allocation unit of @bs in blocks of @bsz: qcow2's cluster, else 1. */
static uint32_t node_granularity(struct blockdev *bs, uint32_t bsz)
{
	struct blockdev_info info = { 0 };
	uint64_t g = bsz;

	if (blockdev_get_info(bs, &info, NULL) == 0 && info.cluster_size > bsz)
		g = info.cluster_size;
	if (info.specific)
		json_object_put(info.specific);
	return (uint32_t)MIN(g / bsz, (uint64_t)UINT32_MAX);
}

static void geom_fill(struct scsi_disk *d, uint32_t max_xfer)
{
	struct scsi_geom *g = &d->geom;

	g->nblocks = d->bs->size / g->block_size;
	g->read_only = d->ro_opt || d->bs->read_only;
	g->max_xfer_blocks = max_xfer / g->block_size;
	g->max_ws_blocks = SCSI_DISK_MAX_UNMAP / g->block_size;
	g->max_unmap_blocks = SCSI_DISK_MAX_UNMAP / g->block_size;
	g->max_unmap_descs = SCSI_DISK_UNMAP_DESCS;
	d->opt_gran = node_granularity(d->bs, g->block_size);
}

struct scsi_disk *scsi_disk_create(const struct scsi_disk_opts *o, struct error **errp)
{
	struct scsi_disk *d;
	uint32_t bsz = o->block_size ? o->block_size : node_block_size(o->bs);
	uint32_t max_xfer = o->max_xfer ? o->max_xfer : SCSI_DISK_MAX_XFER;

	if (bsz < 512 || bsz > 65536 || (bsz & (bsz - 1)) || bsz < node_block_size(o->bs)) {
		error_setg(errp, "scsi-hd: logical block size %u is not a power of two from %u to "
			   "65536", bsz, node_block_size(o->bs));
		return NULL;
	}
	if (o->bs->size < bsz) {
		error_setg(errp, "scsi-hd: node '%s' is smaller than one block (%u bytes)",
			   o->bs->node_name, bsz);
		return NULL;
	}
	if (o->lun > 16383) {
		error_setg(errp, "scsi-hd: lun %u is above 16383", o->lun);
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		error_setg(errp, "scsi-hd: out of memory");
		return NULL;
	}
	d->bs = o->bs;
	d->name = o->name ? o->name : "";
	d->lun = o->lun;
	d->ro_opt = o->read_only;
	d->geom.block_size = bsz;
	d->geom.unmap = o->discard;
	geom_fill(d, MAX(max_xfer, bsz));
	snprintf(d->serial, sizeof(d->serial), "%s", o->serial ? o->serial : "");
	snprintf(d->product, sizeof(d->product), "%s", o->product ? o->product : "VIREO HARDDISK");
	snprintf(d->revision, sizeof(d->revision), "%s", o->revision ? o->revision : "1.0");
	d->wwn = o->wwn ? o->wwn : derive_wwn(d);
	d->def = (struct scsi_mode){ .wce = !o->writethrough, .d_sense = false };
	atomic_init(&d->wce, d->def.wce);
	atomic_init(&d->d_sense, false);
	atomic_init(&d->ua, SCSI_UA_POWER_ON);
	d->list_luns = o->list_luns;
	d->list_opaque = o->list_opaque;
	return d;
}

void scsi_disk_destroy(struct scsi_disk *d)
{
	free(d);
}

bool scsi_disk_resized(struct scsi_disk *d)
{
	uint64_t before = d->geom.nblocks;

	d->geom.nblocks = d->bs->size / d->geom.block_size;
	if (d->geom.nblocks == before)
		return false;
	scsi_disk_unit_attention(d, SCSI_UA_CAPACITY);
	return true;
}

int scsi_disk_set_node(struct scsi_disk *d, struct blockdev *bs, struct error **errp)
{
	if (node_block_size(bs) > d->geom.block_size) {
		error_setg(errp, "scsi-hd: node '%s' needs blocks of %u bytes, the disk has %u",
			   bs->node_name, node_block_size(bs), d->geom.block_size);
		return -1;
	}
	if (bs->read_only && !d->geom.read_only) {
		error_setg(errp, "scsi-hd: node '%s' is read-only", bs->node_name);
		return -1;
	}
	d->bs = bs;
	d->opt_gran = node_granularity(bs, d->geom.block_size);
	scsi_disk_resized(d);
	return 0;
}

bool scsi_disk_write_cache(const struct scsi_disk *d)
{
	return atomic_load_explicit(&d->wce, memory_order_relaxed);
}

void scsi_disk_set_write_cache(struct scsi_disk *d, bool wce)
{
	if (atomic_exchange_explicit(&d->wce, wce, memory_order_relaxed) != wce)
		scsi_disk_unit_attention(d, SCSI_UA_MODE_PARAMS);
}

const struct scsi_geom *scsi_disk_geom(const struct scsi_disk *d)
{
	return &d->geom;
}

struct blockdev *scsi_disk_node(const struct scsi_disk *d)
{
	return d->bs;
}

uint16_t scsi_disk_lun(const struct scsi_disk *d)
{
	return d->lun;
}
