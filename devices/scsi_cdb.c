/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SCSI CDB and parameter-list parsing: pure functions, see scsi_cdb.h. Field layouts are those
 * of SPC-4 (INQUIRY, MODE SENSE/SELECT, REQUEST SENSE, REPORT LUNS, REPORT SUPPORTED OPERATION
 * CODES, TEST UNIT READY) and SBC-3 (the rest).
 */
#include "devices/scsi_cdb.h"

#include <string.h>

#include "common/util.h"

/* Control byte: the vendor-specific bits 7-6 are ignored; NACA and LINK are not supported. */
#define CTL 0xc0
#define FF4 0xff, 0xff, 0xff, 0xff
#define FF8 FF4, FF4

/*
 * One supported command. @usage is the CDB usage data of REPORT SUPPORTED OPERATION CODES:
 * byte 0 the opcode, then for each byte the bits the command looks at. A bit outside it is
 * refused. For commands with service actions byte 1 bits 4-0 hold the service action.
 */
struct cmd_desc {
	uint8_t opcode;
	uint8_t sa;
	bool has_sa;
	uint8_t len;
	enum scsi_kind kind;
	const char *name;
	uint8_t usage[16];
};

static const struct cmd_desc cmds[] = {
	{ 0x00, 0, false, 6, SCSI_K_TEST_UNIT_READY, "TEST UNIT READY",
	  { 0x00, 0x00, 0x00, 0x00, 0x00, CTL } },
	{ 0x03, 0, false, 6, SCSI_K_REQUEST_SENSE, "REQUEST SENSE",
	  { 0x03, 0x01, 0x00, 0x00, 0xff, CTL } },
	{ 0x08, 0, false, 6, SCSI_K_READ, "READ(6)", { 0x08, 0x1f, 0xff, 0xff, 0xff, CTL } },
	{ 0x0a, 0, false, 6, SCSI_K_WRITE, "WRITE(6)", { 0x0a, 0x1f, 0xff, 0xff, 0xff, CTL } },
	{ 0x12, 0, false, 6, SCSI_K_INQUIRY, "INQUIRY", { 0x12, 0x01, 0xff, 0xff, 0xff, CTL } },
	{ 0x15, 0, false, 6, SCSI_K_MODE_SELECT, "MODE SELECT(6)",
	  { 0x15, 0x11, 0x00, 0x00, 0xff, CTL } },
	{ 0x1a, 0, false, 6, SCSI_K_MODE_SENSE, "MODE SENSE(6)",
	  { 0x1a, 0x08, 0xff, 0xff, 0xff, CTL } },
	{ 0x1b, 0, false, 6, SCSI_K_START_STOP, "START STOP UNIT",
	  { 0x1b, 0x01, 0x00, 0x0f, 0xf7, CTL } },
	{ 0x1e, 0, false, 6, SCSI_K_PREVENT_ALLOW, "PREVENT ALLOW MEDIUM REMOVAL",
	  { 0x1e, 0x00, 0x00, 0x00, 0x01, CTL } },
	{ 0x25, 0, false, 10, SCSI_K_READ_CAPACITY_10, "READ CAPACITY(10)",
	  { 0x25, 0x00, FF4, 0x00, 0x00, 0x01, CTL } },
	{ 0x28, 0, false, 10, SCSI_K_READ, "READ(10)", { 0x28, 0x18, FF4, 0x1f, 0xff, 0xff, CTL } },
	{ 0x2a, 0, false, 10, SCSI_K_WRITE, "WRITE(10)", { 0x2a, 0x18, FF4, 0x1f, 0xff, 0xff, CTL } },
	{ 0x2f, 0, false, 10, SCSI_K_VERIFY, "VERIFY(10)",
	  { 0x2f, 0x16, FF4, 0x1f, 0xff, 0xff, CTL } },
	{ 0x35, 0, false, 10, SCSI_K_SYNC_CACHE, "SYNCHRONIZE CACHE(10)",
	  { 0x35, 0x02, FF4, 0x1f, 0xff, 0xff, CTL } },
	{ 0x41, 0, false, 10, SCSI_K_WRITE_SAME, "WRITE SAME(10)",
	  { 0x41, 0x08, FF4, 0x1f, 0xff, 0xff, CTL } },
	{ 0x42, 0, false, 10, SCSI_K_UNMAP, "UNMAP", { 0x42, 0x00, 0, 0, 0, 0, 0x1f, 0xff, 0xff, CTL } },
	{ 0x55, 0, false, 10, SCSI_K_MODE_SELECT, "MODE SELECT(10)",
	  { 0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, CTL } },
	{ 0x5a, 0, false, 10, SCSI_K_MODE_SENSE, "MODE SENSE(10)",
	  { 0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, CTL } },
	{ 0x88, 0, false, 16, SCSI_K_READ, "READ(16)", { 0x88, 0x18, FF8, FF4, 0x1f, CTL } },
	{ 0x8a, 0, false, 16, SCSI_K_WRITE, "WRITE(16)", { 0x8a, 0x18, FF8, FF4, 0x1f, CTL } },
	{ 0x8f, 0, false, 16, SCSI_K_VERIFY, "VERIFY(16)", { 0x8f, 0x16, FF8, FF4, 0x1f, CTL } },
	{ 0x91, 0, false, 16, SCSI_K_SYNC_CACHE, "SYNCHRONIZE CACHE(16)",
	  { 0x91, 0x02, FF8, FF4, 0x1f, CTL } },
	{ 0x93, 0, false, 16, SCSI_K_WRITE_SAME, "WRITE SAME(16)",
	  { 0x93, 0x09, FF8, FF4, 0x1f, CTL } },
	{ 0x9e, 0x10, true, 16, SCSI_K_READ_CAPACITY_16, "READ CAPACITY(16)",
	  { 0x9e, 0x1f, FF8, FF4, 0x01, CTL } },
	{ 0xa0, 0, false, 12, SCSI_K_REPORT_LUNS, "REPORT LUNS",
	  { 0xa0, 0x00, 0xff, 0, 0, 0, FF4, 0x00, CTL } },
	{ 0xa3, 0x0c, true, 12, SCSI_K_REPORT_OPCODES, "REPORT SUPPORTED OPERATION CODES",
	  { 0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff, FF4, 0x00, CTL } },
	{ 0xa8, 0, false, 12, SCSI_K_READ, "READ(12)", { 0xa8, 0x18, FF4, FF4, 0x1f, CTL } },
	{ 0xaa, 0, false, 12, SCSI_K_WRITE, "WRITE(12)", { 0xaa, 0x18, FF4, FF4, 0x1f, CTL } },
};

/* Whether @d is offered on @g (UNMAP only with logical block provisioning). */
static bool offered(const struct cmd_desc *d, const struct scsi_geom *g)
{
	return d->kind != SCSI_K_UNMAP || g->unmap;
}

/* The usage mask of byte @i of @d on @g (WRITE SAME's UNMAP bit only with provisioning). */
static uint8_t usage_of(const struct cmd_desc *d, const struct scsi_geom *g, unsigned int i)
{
	uint8_t u = d->usage[i];

	if (i == 1 && d->kind == SCSI_K_WRITE_SAME && !g->unmap)
		u &= (uint8_t)~0x08;
	return u;
}

static const struct cmd_desc *find_opcode(uint8_t opcode)
{
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (cmds[i].opcode == opcode)
			return &cmds[i];
	return NULL;
}

static const struct cmd_desc *find_cmd(uint8_t opcode, uint8_t sa)
{
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (cmds[i].opcode == opcode && (!cmds[i].has_sa || cmds[i].sa == sa))
			return &cmds[i];
	return NULL;
}

unsigned int scsi_cdb_group_len(uint8_t opcode)
{
	static const uint8_t len[8] = { 6, 10, 10, 0, 16, 12, 0, 0 };

	return len[opcode >> 5];
}

const char *scsi_cmd_name(uint8_t opcode, uint8_t sa)
{
	const struct cmd_desc *d = find_cmd(opcode, sa);

	return d ? d->name : NULL;
}

/* The most significant set bit of @v (v != 0). */
static int top_bit(uint8_t v)
{
	return 31 - __builtin_clz(v);
}

static bool fail(struct scsi_sense_err *err, struct scsi_sense_err e)
{
	*err = e;
	return false;
}

/* [lba, lba+n) must lie in the unit; with n == 0, lba must still name a block of it. */
static bool range_ok(const struct scsi_geom *g, uint64_t lba, uint64_t n)
{
	if (n == 0)
		return lba < g->nblocks;
	return range_within(lba, n, g->nblocks);
}

/* Where the LBA and the transfer length live in a READ/WRITE/VERIFY/... CDB of @len bytes. */
static void rw_fields(const uint8_t *cdb, unsigned int len, struct scsi_cmd *c,
		      unsigned int *nblk_off)
{
	switch (len) {
	case 6:
		c->lba = (uint32_t)(cdb[1] & 0x1f) << 16 | scsi_be16(cdb + 2);
		c->nblocks = cdb[4];
		*nblk_off = 4;
		break;
	case 10:
		c->lba = scsi_be32(cdb + 2);
		c->nblocks = scsi_be16(cdb + 7);
		*nblk_off = 7;
		break;
	case 12:
		c->lba = scsi_be32(cdb + 2);
		c->nblocks = scsi_be32(cdb + 6);
		*nblk_off = 6;
		break;
	default:
		c->lba = scsi_be64(cdb + 2);
		c->nblocks = scsi_be32(cdb + 10);
		*nblk_off = 10;
		break;
	}
}

static bool parse_rw(const uint8_t *cdb, const struct scsi_geom *g, struct scsi_cmd *c,
		     struct scsi_sense_err *err)
{
	unsigned int noff;
	bool write = c->kind == SCSI_K_WRITE;

	rw_fields(cdb, c->cdb_len, c, &noff);
	if (c->cdb_len == 6 && c->nblocks == 0)
		c->nblocks = 256; /* READ(6)/WRITE(6): 0 means 256 blocks */
	if (c->cdb_len > 6) {
		c->dpo = cdb[1] & 0x10;
		c->fua = cdb[1] & 0x08;
	}
	if (g->max_xfer_blocks && c->nblocks > g->max_xfer_blocks)
		return fail(err, scsi_sense_cdb_field((uint16_t)noff, 7));
	if (write && g->read_only)
		return fail(err, scsi_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED));
	if (!range_ok(g, c->lba, c->nblocks))
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE));
	c->dir = write ? SCSI_DIR_OUT : SCSI_DIR_IN;
	c->xfer_len = (uint64_t)c->nblocks * g->block_size;
	return true;
}

static bool parse_verify(const uint8_t *cdb, const struct scsi_geom *g, struct scsi_cmd *c,
			 struct scsi_sense_err *err)
{
	unsigned int noff;
	uint8_t bytchk = (cdb[1] >> 1) & 3;

	rw_fields(cdb, c->cdb_len, c, &noff);
	c->dpo = cdb[1] & 0x10;
	if (bytchk > 1) /* 10b is reserved, 11b (one block against each) is not supported */
		return fail(err, scsi_sense_cdb_field(1, 2));
	c->bytchk = bytchk;
	if (c->bytchk && g->max_xfer_blocks && c->nblocks > g->max_xfer_blocks)
		return fail(err, scsi_sense_cdb_field((uint16_t)noff, 7));
	if (!range_ok(g, c->lba, c->nblocks))
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE));
	if (c->bytchk) {
		c->dir = SCSI_DIR_OUT;
		c->xfer_len = (uint64_t)c->nblocks * g->block_size;
	}
	return true;
}

static bool parse_write_same(const uint8_t *cdb, const struct scsi_geom *g, struct scsi_cmd *c,
			     struct scsi_sense_err *err)
{
	unsigned int noff;

	rw_fields(cdb, c->cdb_len, c, &noff);
	c->unmap = cdb[1] & 0x08;
	c->ndob = c->cdb_len == 16 && (cdb[1] & 0x01);
	/* WSNZ is set in the Block Limits page: 0 blocks ("to the end") is refused */
	if (c->nblocks == 0 || (g->max_ws_blocks && c->nblocks > g->max_ws_blocks))
		return fail(err, scsi_sense_cdb_field((uint16_t)noff, 7));
	if (g->read_only)
		return fail(err, scsi_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED));
	if (!range_ok(g, c->lba, c->nblocks))
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE));
	if (!c->ndob) {
		c->dir = SCSI_DIR_OUT;
		c->xfer_len = g->block_size;
	}
	return true;
}

static bool parse_sync_cache(const uint8_t *cdb, const struct scsi_geom *g, struct scsi_cmd *c,
			     struct scsi_sense_err *err)
{
	unsigned int noff;

	rw_fields(cdb, c->cdb_len, c, &noff);
	c->immed = cdb[1] & 0x02;
	if (!range_ok(g, c->lba, c->nblocks))
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE));
	if (c->nblocks == 0) /* to the end of the medium */
		c->nblocks = (uint32_t)MIN(g->nblocks - c->lba, (uint64_t)UINT32_MAX);
	return true;
}

static bool parse_inquiry(const uint8_t *cdb, const struct scsi_geom *g, struct scsi_cmd *c,
			  struct scsi_sense_err *err)
{
	c->evpd = cdb[1] & 0x01;
	c->page = cdb[2];
	c->alloc_len = scsi_be16(cdb + 3);
	if (!c->evpd && c->page)
		return fail(err, scsi_sense_cdb_field(2, 7));
	if (c->evpd) {
		switch (c->page) {
		case SCSI_VPD_SUPPORTED:
		case SCSI_VPD_SERIAL:
		case SCSI_VPD_DEVICE_ID:
		case SCSI_VPD_BLOCK_LIMITS:
		case SCSI_VPD_BLOCK_CHARS:
			break;
		case SCSI_VPD_LB_PROVISIONING:
			if (g->unmap)
				break;
			/* fall through */
		default:
			return fail(err, scsi_sense_cdb_field(2, 7));
		}
	}
	return true;
}

static bool parse_read_capacity(const uint8_t *cdb, struct scsi_cmd *c,
				struct scsi_sense_err *err)
{
	bool pmi;

	if (c->kind == SCSI_K_READ_CAPACITY_10) {
		c->lba = scsi_be32(cdb + 2);
		pmi = cdb[8] & 0x01;
		c->xfer_len = 8;
	} else {
		c->lba = scsi_be64(cdb + 2);
		c->alloc_len = scsi_be32(cdb + 10);
		pmi = cdb[14] & 0x01;
	}
	/* PMI (obsolete in SBC-4) is answered as PMI=0; without it the LBA must be 0 */
	if (!pmi && c->lba)
		return fail(err, scsi_sense_cdb_field(2, 7));
	return true;
}

static bool parse_mode_sense(const uint8_t *cdb, struct scsi_cmd *c, struct scsi_sense_err *err)
{
	c->ten = c->cdb_len == 10;
	c->dbd = cdb[1] & 0x08;
	c->llbaa = c->ten && (cdb[1] & 0x10);
	c->pc = cdb[2] >> 6;
	c->page = cdb[2] & 0x3f;
	c->subpage = cdb[3];
	c->alloc_len = c->ten ? scsi_be16(cdb + 7) : cdb[4];
	if (c->pc == SCSI_PC_SAVED) {
		struct scsi_sense_err e = scsi_sense_cdb_field(2, 7);

		e.asc = SCSI_ASC_SAVING_NOT_SUPPORTED;
		return fail(err, e);
	}
	switch (c->page) {
	case SCSI_MODE_PAGE_RW_RECOVERY:
	case SCSI_MODE_PAGE_CACHING:
	case SCSI_MODE_PAGE_CONTROL:
	case SCSI_MODE_PAGE_ALL:
		break;
	default:
		return fail(err, scsi_sense_cdb_field(2, 5));
	}
	/* no page has subpages: subpage 0, or FFh (every subpage: page 0 only) */
	if (c->subpage != 0 && c->subpage != 0xff)
		return fail(err, scsi_sense_cdb_field(3, 7));
	return true;
}

static bool parse_report_opcodes(const uint8_t *cdb, const struct scsi_geom *g,
				 struct scsi_cmd *c, struct scsi_sense_err *err)
{
	const struct cmd_desc *d;

	c->rctd = cdb[2] & 0x80;
	c->rep_opts = cdb[2] & 0x07;
	c->req_opcode = cdb[3];
	c->req_sa = scsi_be16(cdb + 4);
	c->alloc_len = scsi_be32(cdb + 6);
	if (c->rep_opts > 2)
		return fail(err, scsi_sense_cdb_field(2, 2));
	if (c->rep_opts == 0)
		return true;
	d = find_opcode(c->req_opcode);
	if (d && !offered(d, g))
		d = NULL;
	/* options 1: an opcode without service actions; 2: one with them */
	if (d && d->has_sa != (c->rep_opts == 2))
		return fail(err, scsi_sense_cdb_field(3, 7));
	return true;
}

static bool power_cond_ok(uint8_t pc)
{
	/* SBC-3 START STOP UNIT: START_VALID, ACTIVE, IDLE, STANDBY, LU_CONTROL, FORCE_*_0 */
	return pc <= 3 || pc == 7 || pc == 0xa || pc == 0xb;
}

/* Whether @k returns parameter data (up to its allocation length). */
static bool data_in(enum scsi_kind k)
{
	switch (k) {
	case SCSI_K_REQUEST_SENSE:
	case SCSI_K_INQUIRY:
	case SCSI_K_MODE_SENSE:
	case SCSI_K_READ_CAPACITY_10:
	case SCSI_K_READ_CAPACITY_16:
	case SCSI_K_REPORT_LUNS:
	case SCSI_K_REPORT_OPCODES:
		return true;
	default:
		return false;
	}
}

/* The fields of the commands that move no blocks. */
static bool parse_other(const uint8_t *cdb, const struct scsi_geom *g, struct scsi_cmd *c,
			struct scsi_sense_err *err)
{
	switch (c->kind) {
	case SCSI_K_TEST_UNIT_READY:
		return true;
	case SCSI_K_REQUEST_SENSE:
		c->desc = cdb[1] & 0x01;
		c->alloc_len = cdb[4];
		return true;
	case SCSI_K_INQUIRY:
		return parse_inquiry(cdb, g, c, err);
	case SCSI_K_READ_CAPACITY_10:
	case SCSI_K_READ_CAPACITY_16:
		return parse_read_capacity(cdb, c, err);
	case SCSI_K_MODE_SENSE:
		return parse_mode_sense(cdb, c, err);
	case SCSI_K_MODE_SELECT:
		c->ten = c->cdb_len == 10;
		c->pf = cdb[1] & 0x10;
		c->sp = cdb[1] & 0x01;
		c->param_len = c->ten ? scsi_be16(cdb + 7) : cdb[4];
		if (c->sp) /* no saved pages */
			return fail(err, scsi_sense_cdb_field(1, 0));
		c->dir = SCSI_DIR_OUT;
		c->xfer_len = c->param_len;
		return true;
	case SCSI_K_UNMAP:
		if (g->read_only)
			return fail(err, scsi_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED));
		c->param_len = scsi_be16(cdb + 7);
		c->dir = SCSI_DIR_OUT;
		c->xfer_len = c->param_len;
		return true;
	case SCSI_K_REPORT_LUNS:
		c->select_report = cdb[2];
		c->alloc_len = scsi_be32(cdb + 6);
		if (c->select_report > 2)
			return fail(err, scsi_sense_cdb_field(2, 7));
		return true;
	case SCSI_K_REPORT_OPCODES:
		return parse_report_opcodes(cdb, g, c, err);
	case SCSI_K_START_STOP:
		c->immed = cdb[1] & 0x01;
		c->power_cond = cdb[4] >> 4;
		c->loej = cdb[4] & 0x02;
		c->start = cdb[4] & 0x01;
		if (!power_cond_ok(c->power_cond))
			return fail(err, scsi_sense_cdb_field(4, 7));
		return true;
	case SCSI_K_PREVENT_ALLOW:
		c->prevent = cdb[4] & 0x01;
		return true;
	default:
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE));
	}
}

bool scsi_cdb_parse(const uint8_t *cdb, size_t len, const struct scsi_geom *g,
		    struct scsi_cmd *c, struct scsi_sense_err *err)
{
	const struct cmd_desc *d;

	memset(c, 0, sizeof(*c));
	memset(err, 0, sizeof(*err));
	if (len == 0 || !(d = find_opcode(cdb[0])) || !offered(d, g))
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE));
	if (len < d->len) /* the CDB ends before its group's length: point at the first gap */
		return fail(err, scsi_sense_cdb_field((uint16_t)len, -1));
	if (d->has_sa && !(d = find_cmd(cdb[0], cdb[1] & 0x1f)))
		return fail(err, scsi_sense_cdb_field(1, 4));
	for (unsigned int i = 1; i < d->len; i++) {
		uint8_t bad = cdb[i] & (uint8_t)~usage_of(d, g, i);

		if (bad)
			return fail(err, scsi_sense_cdb_field((uint16_t)i, top_bit(bad)));
	}
	c->opcode = d->opcode;
	c->sa = d->has_sa ? d->sa : 0;
	c->kind = d->kind;
	c->cdb_len = d->len;
	switch (c->kind) {
	case SCSI_K_READ:
	case SCSI_K_WRITE:
		return parse_rw(cdb, g, c, err);
	case SCSI_K_VERIFY:
		return parse_verify(cdb, g, c, err);
	case SCSI_K_WRITE_SAME:
		return parse_write_same(cdb, g, c, err);
	case SCSI_K_SYNC_CACHE:
		return parse_sync_cache(cdb, g, c, err);
	default:
		if (!parse_other(cdb, g, c, err))
			return false;
		if (c->dir == SCSI_DIR_NONE && data_in(c->kind)) {
			c->dir = SCSI_DIR_IN;
			c->xfer_len = c->kind == SCSI_K_READ_CAPACITY_10 ? 8 : c->alloc_len;
		}
		return true;
	}
}

/* ---------------------------------------------------------------------------------------------
 * UNMAP parameter list
 */

bool scsi_unmap_parse(const uint8_t *buf, size_t len, const struct scsi_geom *g,
		      struct scsi_unmap_desc *d, unsigned int *n, struct scsi_sense_err *err)
{
	uint32_t data_len, bd_len, ndesc;
	uint64_t total = 0;

	*n = 0;
	memset(err, 0, sizeof(*err));
	if (len == 0)
		return true;
	if (len < 8)
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH));
	data_len = scsi_be16(buf);
	bd_len = scsi_be16(buf + 2);
	ndesc = bd_len / 16; /* an incomplete last descriptor is ignored */
	if (ndesc > g->max_unmap_descs || ndesc > SCSI_UNMAP_MAX_DESCS)
		return fail(err, scsi_sense_param_field(2, 7));
	if ((uint64_t)data_len + 2 > len || (uint64_t)bd_len + 8 > len)
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH));
	for (uint32_t i = 0; i < ndesc; i++) {
		const uint8_t *p = buf + 8 + 16 * i;
		uint64_t lba = scsi_be64(p);
		uint32_t nb = scsi_be32(p + 8);

		if (!range_within(lba, nb, g->nblocks))
			return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST,
						    SCSI_ASC_LBA_OUT_OF_RANGE));
		total += nb;
		if (g->max_unmap_blocks && total > g->max_unmap_blocks)
			return fail(err, scsi_sense_param_field((uint16_t)(8 + 16 * i + 8), 7));
		if (nb == 0)
			continue;
		d[*n].lba = lba;
		d[*n].nblocks = nb;
		(*n)++;
	}
	return true;
}

/* ---------------------------------------------------------------------------------------------
 * Mode pages
 */

size_t scsi_mode_page(uint8_t page, uint8_t pc, const struct scsi_mode *cur,
		      const struct scsi_mode *def, uint8_t *buf)
{
	const struct scsi_mode *m = pc == SCSI_PC_DEFAULT ? def : cur;
	bool mask = pc == SCSI_PC_CHANGEABLE;
	size_t len;

	switch (page) {
	case SCSI_MODE_PAGE_RW_RECOVERY:
		len = 12;
		memset(buf, 0, len);
		if (!mask)
			buf[2] = 0x80; /* AWRE */
		break;
	case SCSI_MODE_PAGE_CACHING:
		len = 20;
		memset(buf, 0, len);
		buf[2] = mask ? 0x04 : (m->wce ? 0x04 : 0); /* WCE */
		break;
	case SCSI_MODE_PAGE_CONTROL:
		len = 12;
		memset(buf, 0, len);
		if (mask) {
			buf[2] = 0x04; /* D_SENSE */
		} else {
			buf[2] = (m->d_sense ? 0x04 : 0) | 0x02; /* D_SENSE, GLTSD */
			buf[3] = 0x10; /* QUEUE ALGORITHM MODIFIER: unrestricted reordering */
		}
		break;
	default:
		return 0;
	}
	buf[0] = page;
	buf[1] = (uint8_t)(len - 2);
	return len;
}

/* Compares one received page with the current one: only changeable bits may differ. */
static bool select_page(const uint8_t *p, size_t off, const struct scsi_mode *cur,
			struct scsi_mode *out, struct scsi_sense_err *err)
{
	uint8_t now[SCSI_MODE_PAGE_MAX], chg[SCSI_MODE_PAGE_MAX];
	size_t len = scsi_mode_page(p[0] & 0x3f, SCSI_PC_CURRENT, cur, cur, now);

	if (len == 0 || (p[0] & 0x40)) /* not ours, or a subpage (SPF) */
		return fail(err, scsi_sense_param_field((uint16_t)off, 5));
	if (p[1] != len - 2)
		return fail(err, scsi_sense_param_field((uint16_t)(off + 1), 7));
	scsi_mode_page(p[0] & 0x3f, SCSI_PC_CHANGEABLE, cur, cur, chg);
	for (size_t i = 2; i < len; i++) {
		uint8_t bad = (uint8_t)((p[i] ^ now[i]) & ~chg[i]);

		if (bad)
			return fail(err, scsi_sense_param_field((uint16_t)(off + i), top_bit(bad)));
	}
	if ((p[0] & 0x3f) == SCSI_MODE_PAGE_CACHING)
		out->wce = p[2] & 0x04;
	else if ((p[0] & 0x3f) == SCSI_MODE_PAGE_CONTROL)
		out->d_sense = p[2] & 0x04;
	return true;
}

bool scsi_mode_select_parse(const uint8_t *buf, size_t len, const struct scsi_cmd *c,
			    const struct scsi_geom *g, const struct scsi_mode *cur,
			    struct scsi_mode *out, struct scsi_sense_err *err)
{
	size_t hdr = c->ten ? 8 : 4, bd_len, off;
	struct scsi_mode next = *cur;
	bool longlba;

	memset(err, 0, sizeof(*err));
	*out = *cur;
	if (len == 0)
		return true;
	if (len < hdr)
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH));
	/* mode data length, medium type and device-specific parameter are ignored here */
	bd_len = c->ten ? scsi_be16(buf + 6) : buf[3];
	longlba = c->ten && (buf[4] & 0x01);
	if (bd_len != 0 && bd_len != (longlba ? 16u : 8u))
		return fail(err, scsi_sense_param_field(c->ten ? 6 : 3, 7));
	if (hdr + bd_len > len)
		return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH));
	if (bd_len) { /* the number of blocks is ignored; the block length must stay */
		const uint8_t *b = buf + hdr;
		uint32_t blen = longlba ? scsi_be32(b + 12) : scsi_be32(b + 4) & 0xffffff;

		if (blen != g->block_size)
			return fail(err, scsi_sense_param_field(
						 (uint16_t)(hdr + (longlba ? 12 : 5)), 7));
	}
	for (off = hdr + bd_len; off < len;) {
		const uint8_t *p = buf + off;

		if (!c->pf)
			return fail(err, scsi_sense_cdb_field(1, 4));
		if (len - off < 2 || len - off < 2u + p[1])
			return fail(err, scsi_sense(SCSI_KEY_ILLEGAL_REQUEST,
						    SCSI_ASC_PARAM_LIST_LENGTH));
		if (!select_page(p, off, cur, &next, err))
			return false;
		off += 2u + p[1];
	}
	*out = next;
	return true;
}

/* ---------------------------------------------------------------------------------------------
 * REPORT SUPPORTED OPERATION CODES (SPC-4 6.35)
 */

/* A command timeouts descriptor with no timeouts given (CTDP). */
static size_t put_timeouts(uint8_t *p)
{
	memset(p, 0, 12);
	scsi_put_be16(p, 0x0a);
	return 12;
}

/* Writes @n bytes of @src at offset @off of a @cap-byte buffer, as far as it fits. */
static void put(uint8_t *buf, size_t cap, size_t off, const uint8_t *src, size_t n)
{
	if (off < cap)
		memcpy(buf + off, src, MIN(n, cap - off));
}

static size_t report_all(const struct scsi_cmd *c, const struct scsi_geom *g, uint8_t *buf,
			 size_t cap)
{
	size_t off = 4;
	uint8_t hdr[4];

	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		const struct cmd_desc *d = &cmds[i];
		uint8_t e[20] = { d->opcode, 0, 0, d->sa, 0, 0, 0, d->len };
		size_t n = 8;

		if (!offered(d, g))
			continue;
		e[5] = (uint8_t)((c->rctd ? 0x02 : 0) | (d->has_sa ? 0x01 : 0)); /* CTDP, SERVACTV */
		if (c->rctd)
			n += put_timeouts(e + 8);
		put(buf, cap, off, e, n);
		off += n;
	}
	scsi_put_be32(hdr, (uint32_t)(off - 4));
	put(buf, cap, 0, hdr, 4);
	return off;
}

static size_t report_one(const struct scsi_cmd *c, const struct scsi_geom *g, uint8_t *buf,
			 size_t cap)
{
	const struct cmd_desc *d = c->rep_opts == 2 && c->req_sa <= 0xff
		? find_cmd(c->req_opcode, (uint8_t)c->req_sa) : find_opcode(c->req_opcode);
	uint8_t e[4 + 16 + 12] = { 0 };
	size_t n = 4;

	if (d && (!offered(d, g) || (c->rep_opts == 2 && (!d->has_sa || d->sa != c->req_sa))))
		d = NULL;
	if (!d) {
		e[1] = 0x01; /* SUPPORT: not supported */
	} else {
		e[1] = (uint8_t)((c->rctd ? 0x80 : 0) | 0x03); /* CTDP, SUPPORT: as the standard */
		scsi_put_be16(e + 2, d->len);
		for (unsigned int i = 0; i < d->len; i++)
			e[4 + i] = i == 0 ? d->opcode : usage_of(d, g, i);
		n += d->len;
		if (c->rctd)
			n += put_timeouts(e + n);
	}
	put(buf, cap, 0, e, n);
	return n;
}

size_t scsi_report_opcodes(const struct scsi_cmd *c, const struct scsi_geom *g, uint8_t *buf,
			   size_t cap)
{
	return c->rep_opts == 0 ? report_all(c, g, buf, cap) : report_one(c, g, buf, cap);
}

void scsi_lun_encode(uint16_t lun, uint8_t out[8])
{
	memset(out, 0, 8);
	if (lun < 256) {
		out[1] = (uint8_t)lun; /* peripheral device addressing */
	} else {
		out[0] = (uint8_t)(0x40 | ((lun >> 8) & 0x3f)); /* flat space addressing */
		out[1] = (uint8_t)lun;
	}
}
