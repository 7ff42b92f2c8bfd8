/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: SCSI CDB parsing (devices/scsi_cdb.c scsi_cdb_parse), sense building
 * (devices/scsi_sense.c), the UNMAP and MODE SELECT parameter-list parsers, mode pages and
 * REPORT SUPPORTED OPERATION CODES data.
 *
 * Input: an option byte (bit 0 read-only, bit 1 provisioning, bits 2-4 block size 512 << n
 * (n mod 8), bit 5 descriptor sense, bit 6 MODE SELECT(10) for the direct list parse, bit 7
 * PF), a 4-byte capacity in blocks (little endian, times 1..256 from the next byte), a byte of
 * UNMAP descriptor limit, a 2-byte sense buffer size, a CDB length byte (mod 33), the CDB, and
 * the rest as a parameter list.
 *
 * Invariants: a decode has cdb_len <= the bytes given, no data length without a direction,
 * READ/WRITE/VERIFY/WRITE SAME ranges inside the capacity and within the limits, no write to a
 * read-only unit; a refusal is ILLEGAL REQUEST or DATA PROTECT with a known code and a CDB field
 * pointer inside the CDB; sense data is exactly MIN(room, full length) bytes, nothing written
 * past it, and parses back to its key and code; UNMAP descriptors lie inside the capacity and
 * the limits; MODE SELECT changes nothing on refusal; REPORT SUPPORTED OPERATION CODES writes
 * no more than its room.
 */
#include "devices/scsi_cdb.h"
#include "tests/fuzz/fuzz.h"

#define GUARD 0xa5

static void check_sense(const struct scsi_sense_err *e, bool desc, size_t room)
{
	uint8_t buf[SCSI_SENSE_MAX + 16];
	size_t full = scsi_sense_len(desc, e), n;
	struct scsi_sense_err back;

	room %= sizeof(buf) - 8;
	memset(buf, GUARD, sizeof(buf));
	n = scsi_sense_build(buf, room, desc, e);
	FUZZ_CHECK(n == (room < full ? room : full), "sense length %zu, room %zu full %zu", n,
		   room, full);
	for (size_t i = n; i < sizeof(buf); i++)
		FUZZ_CHECK(buf[i] == GUARD, "sense byte %zu written past %zu", i, n);
	if (n == full) {
		FUZZ_CHECK(scsi_sense_parse(buf, n, &back), "sense does not parse back");
		FUZZ_CHECK(back.key == e->key && back.asc == e->asc, "sense %x/%04x back as %x/%04x",
			   e->key, e->asc, back.key, back.asc);
		FUZZ_CHECK(back.sksv == e->sksv, "SKSV lost");
		if (e->sksv)
			FUZZ_CHECK(back.field == e->field && back.cd == e->cd, "field pointer lost");
	}
}

static void check_refusal(const struct scsi_sense_err *e, size_t cdb_len)
{
	switch (e->asc) {
	case SCSI_ASC_INVALID_OPCODE:
	case SCSI_ASC_INVALID_FIELD_CDB:
	case SCSI_ASC_LBA_OUT_OF_RANGE:
	case SCSI_ASC_SAVING_NOT_SUPPORTED:
		FUZZ_CHECK(e->key == SCSI_KEY_ILLEGAL_REQUEST, "key %x for %04x", e->key, e->asc);
		break;
	case SCSI_ASC_WRITE_PROTECTED:
		FUZZ_CHECK(e->key == SCSI_KEY_DATA_PROTECT, "key %x for write protect", e->key);
		break;
	default:
		FUZZ_CHECK(0, "unexpected sense %x/%04x", e->key, e->asc);
	}
	if (e->sksv && e->cd)
		FUZZ_CHECK(e->field <= cdb_len && e->field < SCSI_CDB_MAX, "pointer %u past the CDB",
			   e->field);
}

static void check_decode(const struct scsi_cmd *c, const struct scsi_geom *g, size_t len)
{
	FUZZ_CHECK(c->cdb_len <= len, "decoded %u bytes of %zu", c->cdb_len, len);
	FUZZ_CHECK(c->dir != SCSI_DIR_NONE || c->xfer_len == 0, "length %llu without direction",
		   (unsigned long long)c->xfer_len);
	switch (c->kind) {
	case SCSI_K_WRITE:
	case SCSI_K_WRITE_SAME:
	case SCSI_K_UNMAP:
		FUZZ_CHECK(!g->read_only, "write to a read-only unit");
		/* fall through */
	case SCSI_K_READ:
	case SCSI_K_VERIFY:
		if (c->kind == SCSI_K_UNMAP)
			break;
		FUZZ_CHECK(c->lba < g->nblocks && c->nblocks <= g->nblocks - c->lba,
			   "range %llu+%u past %llu", (unsigned long long)c->lba, c->nblocks,
			   (unsigned long long)g->nblocks);
		if (c->kind == SCSI_K_READ || c->kind == SCSI_K_WRITE)
			FUZZ_CHECK(c->nblocks <= g->max_xfer_blocks &&
					   c->xfer_len == (uint64_t)c->nblocks * g->block_size,
				   "transfer %u blocks", c->nblocks);
		if (c->kind == SCSI_K_WRITE_SAME)
			FUZZ_CHECK(c->nblocks >= 1 && c->nblocks <= g->max_ws_blocks &&
					   (!c->unmap || g->unmap),
				   "write same %u blocks", c->nblocks);
		break;
	default:
		break;
	}
}

static void check_unmap(const uint8_t *p, size_t n, const struct scsi_geom *g)
{
	struct scsi_unmap_desc d[SCSI_UNMAP_MAX_DESCS];
	struct scsi_sense_err e;
	unsigned int nd;
	uint64_t total = 0;

	if (scsi_unmap_parse(p, n, g, d, &nd, &e)) {
		FUZZ_CHECK(nd <= g->max_unmap_descs, "%u descriptors", nd);
		for (unsigned int i = 0; i < nd; i++) {
			FUZZ_CHECK(d[i].nblocks && d[i].lba < g->nblocks &&
					   d[i].nblocks <= g->nblocks - d[i].lba,
				   "descriptor %u out of range", i);
			total += d[i].nblocks;
		}
		FUZZ_CHECK(total <= g->max_unmap_blocks, "%llu blocks", (unsigned long long)total);
	} else {
		FUZZ_CHECK(e.key == SCSI_KEY_ILLEGAL_REQUEST &&
				   (e.asc == SCSI_ASC_PARAM_LIST_LENGTH ||
				    e.asc == SCSI_ASC_INVALID_FIELD_PARAM ||
				    e.asc == SCSI_ASC_LBA_OUT_OF_RANGE),
			   "unmap sense %x/%04x", e.key, e.asc);
	}
}

static void check_mode_select(const uint8_t *p, size_t n, const struct scsi_cmd *c,
			      const struct scsi_geom *g, bool wce)
{
	struct scsi_mode cur = { .wce = wce, .d_sense = !wce }, out;
	struct scsi_sense_err e;

	if (!scsi_mode_select_parse(p, n, c, g, &cur, &out, &e)) {
		FUZZ_CHECK(out.wce == cur.wce && out.d_sense == cur.d_sense, "refused but changed");
		FUZZ_CHECK(e.key == SCSI_KEY_ILLEGAL_REQUEST &&
				   (e.asc == SCSI_ASC_PARAM_LIST_LENGTH ||
				    e.asc == SCSI_ASC_INVALID_FIELD_PARAM ||
				    e.asc == SCSI_ASC_INVALID_FIELD_CDB),
			   "mode select sense %x/%04x", e.key, e.asc);
		FUZZ_CHECK(!e.sksv || e.cd || e.field < n, "pointer %u past the list", e.field);
	}
}

static void check_pages(const struct scsi_cmd *c, const struct scsi_geom *g)
{
	static uint8_t buf[4096 + 16];
	struct scsi_mode m = { .wce = true };
	size_t room = c->alloc_len % 4096, n;

	memset(buf, GUARD, sizeof(buf));
	n = scsi_report_opcodes(c, g, buf, room);
	for (size_t i = (n < room ? n : room); i < sizeof(buf); i++)
		FUZZ_CHECK(buf[i] == GUARD, "opcodes byte %zu written past room %zu", i, room);
	for (uint8_t pc = 0; pc < 3; pc++) {
		n = scsi_mode_page(c->page, pc, &m, &m, buf);
		FUZZ_CHECK(n <= SCSI_MODE_PAGE_MAX, "mode page of %zu bytes", n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t opt = fuzz_u8(&in);
	struct scsi_geom g = { 0 };
	struct scsi_cmd c, sel = { .kind = SCSI_K_MODE_SELECT };
	struct scsi_sense_err e;
	uint8_t cdb[SCSI_CDB_MAX] = { 0 };
	size_t room, len;
	uint32_t cap;

	g.read_only = opt & 1;
	g.unmap = opt & 2;
	g.block_size = 512u << ((opt >> 2) & 7);
	cap = fuzz_u32(&in);
	g.nblocks = (uint64_t)cap * (1 + fuzz_u8(&in));
	g.max_unmap_descs = 1 + fuzz_u8(&in) % SCSI_UNMAP_MAX_DESCS;
	g.max_xfer_blocks = (4u << 20) / g.block_size;
	g.max_ws_blocks = g.max_unmap_blocks = (1u << 30) / g.block_size;
	room = fuzz_u16(&in);
	len = fuzz_u8(&in) % (SCSI_CDB_MAX + 1);
	len = len < in.n ? len : in.n;
	memcpy(cdb, in.p, len);
	in.p += len;
	in.n -= len;
	FUZZ_LOG("cdb %02x len %zu cap %llu\n", cdb[0], len, (unsigned long long)g.nblocks);

	if (scsi_cdb_parse(cdb, len, &g, &c, &e)) {
		FUZZ_LOG("decoded %s\n", scsi_cmd_name(c.opcode, c.sa));
		check_decode(&c, &g, len);
		if (c.kind == SCSI_K_UNMAP)
			check_unmap(in.p, in.n < c.param_len ? in.n : c.param_len, &g);
		if (c.kind == SCSI_K_MODE_SELECT)
			check_mode_select(in.p, in.n < c.param_len ? in.n : c.param_len, &c, &g,
					  opt & 0x80);
		if (c.kind == SCSI_K_REPORT_OPCODES || c.kind == SCSI_K_MODE_SENSE)
			check_pages(&c, &g);
	} else {
		FUZZ_LOG("refused %s\n", scsi_asc_name(e.asc));
		check_refusal(&e, len);
		check_sense(&e, opt & 0x20, room);
	}
	/* the parameter-list parsers on the rest, whatever the CDB was */
	check_unmap(in.p, in.n, &g);
	sel.ten = opt & 0x40;
	sel.pf = opt & 0x80;
	check_mode_select(in.p, in.n, &sel, &g, opt & 0x10);
	/* sense of arbitrary fields */
	e = (struct scsi_sense_err){ .key = (uint8_t)(room & 0xf), .asc = (uint16_t)cap,
				     .sksv = opt & 0x01, .cd = opt & 0x02, .bpv = opt & 0x04,
				     .bit = (uint8_t)(opt >> 5), .field = (uint16_t)(cap >> 16),
				     .info_valid = opt & 0x08, .info = g.nblocks };
	check_sense(&e, opt & 0x10, room >> 4);
	return 0;
}
