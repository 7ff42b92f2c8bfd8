/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SCSI CDB parsing (scsi_cdb_parse), the UNMAP and MODE SELECT parameter-list parsers and
 * REPORT SUPPORTED OPERATION CODES data: pure functions, so every case is a byte array.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/util.h"
#include "devices/scsi_cdb.h"

#define BS 512u
#define CAP 8192u /* blocks */

static const struct scsi_geom geom = {
	.block_size = BS,
	.nblocks = CAP,
	.unmap = true,
	.max_xfer_blocks = 2048,
	.max_ws_blocks = 4096,
	.max_unmap_blocks = 4096,
	.max_unmap_descs = 8,
};

static struct scsi_cmd cmd;
static struct scsi_sense_err err;

static bool parse_g(const struct scsi_geom *g, const uint8_t *cdb, size_t len)
{
	return scsi_cdb_parse(cdb, len, g, &cmd, &err);
}

#define PARSE(...)                                                                              \
	({                                                                                      \
		const uint8_t c_[] = { __VA_ARGS__ };                                           \
		parse_g(&geom, c_, sizeof(c_));                                                 \
	})

#define PARSE_G(g, ...)                                                                         \
	({                                                                                      \
		const uint8_t c_[] = { __VA_ARGS__ };                                           \
		parse_g(g, c_, sizeof(c_));                                                     \
	})

static void expect_sense(uint8_t key, uint16_t asc)
{
	if (err.key != key || err.asc != asc)
		fail_msg("sense %x/%04x (%s), want %x/%04x (%s)", err.key, err.asc,
			 scsi_asc_name(err.asc), key, asc, scsi_asc_name(asc));
}

/* INVALID FIELD IN CDB pointing at @byte, bit @bit (-1: no bit pointer) */
static void expect_field(int byte, int bit)
{
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB);
	assert_true(err.sksv);
	assert_true(err.cd);
	assert_int_equal(err.field, byte);
	assert_int_equal(err.bpv, bit >= 0);
	if (bit >= 0)
		assert_int_equal(err.bit, bit);
}

static void expect_param_field(int byte, int bit)
{
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_PARAM);
	assert_true(err.sksv);
	assert_false(err.cd);
	assert_int_equal(err.field, byte);
	assert_int_equal(err.bit, bit);
}

/* ---------------------------------------------------------------------------------------------
 * Commands
 */

static void test_unit_ready_and_request_sense(void **state)
{
	assert_true(PARSE(0x00, 0, 0, 0, 0, 0));
	assert_int_equal(cmd.kind, SCSI_K_TEST_UNIT_READY);
	assert_int_equal(cmd.dir, SCSI_DIR_NONE);
	assert_int_equal(cmd.xfer_len, 0);
	assert_true(PARSE(0x03, 0x01, 0, 0, 252, 0));
	assert_int_equal(cmd.kind, SCSI_K_REQUEST_SENSE);
	assert_true(cmd.desc);
	assert_int_equal(cmd.alloc_len, 252);
	assert_int_equal(cmd.dir, SCSI_DIR_IN);
	assert_int_equal(cmd.xfer_len, 252);
	assert_false(PARSE(0x00, 0, 0, 0, 0x01, 0)); /* a reserved bit */
	expect_field(4, 0);
	assert_false(PARSE(0x03, 0x02, 0, 0, 18, 0));
	expect_field(1, 1);
}

static void read_write_every_size(void **state)
{
	struct scsi_geom big = geom;

	big.nblocks = 1ull << 40;
	/* READ(6): 21-bit LBA, 0 blocks means 256 */
	assert_true(PARSE_G(&big, 0x08, 0x01, 0x02, 0x03, 0x00, 0));
	assert_int_equal(cmd.kind, SCSI_K_READ);
	assert_int_equal(cmd.lba, 0x10203);
	assert_false(PARSE(0x08, 0x01, 0x02, 0x03, 0x00, 0)); /* past CAP */
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	assert_true(PARSE(0x08, 0x00, 0x10, 0x00, 0x00, 0));
	assert_int_equal(cmd.lba, 0x1000);
	assert_int_equal(cmd.nblocks, 256);
	assert_int_equal(cmd.xfer_len, 256 * BS);
	assert_int_equal(cmd.dir, SCSI_DIR_IN);
	assert_true(PARSE(0x0a, 0x00, 0x00, 0x10, 0x08, 0));
	assert_int_equal(cmd.kind, SCSI_K_WRITE);
	assert_int_equal(cmd.dir, SCSI_DIR_OUT);
	assert_int_equal(cmd.nblocks, 8);
	assert_false(cmd.fua);
	/* READ(10) with DPO and FUA */
	assert_true(PARSE(0x28, 0x18, 0, 0, 0x01, 0x00, 0, 0x00, 0x10, 0));
	assert_int_equal(cmd.lba, 256);
	assert_int_equal(cmd.nblocks, 16);
	assert_true(cmd.fua);
	assert_true(cmd.dpo);
	assert_int_equal(cmd.cdb_len, 10);
	/* WRITE(10) FUA */
	assert_true(PARSE(0x2a, 0x08, 0, 0, 0, 0x20, 0, 0, 1, 0));
	assert_int_equal(cmd.kind, SCSI_K_WRITE);
	assert_true(cmd.fua);
	assert_false(cmd.dpo);
	assert_int_equal(cmd.xfer_len, BS);
	/* READ(12), WRITE(12) */
	assert_true(PARSE(0xa8, 0, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0));
	assert_int_equal(cmd.lba, 4);
	assert_int_equal(cmd.nblocks, 2);
	assert_true(PARSE(0xaa, 0x08, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0));
	assert_int_equal(cmd.kind, SCSI_K_WRITE);
	assert_true(cmd.fua);
	/* READ(16), WRITE(16): the last block */
	assert_true(PARSE(0x88, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0xff, 0, 0, 0, 1, 0, 0));
	assert_int_equal(cmd.lba, CAP - 1);
	assert_int_equal(cmd.nblocks, 1);
	assert_true(PARSE(0x8a, 0x18, 0, 0, 0, 0, 0, 0, 0x1f, 0xf0, 0, 0, 0, 0x10, 0x1f, 0));
	assert_int_equal(cmd.kind, SCSI_K_WRITE);
	assert_true(cmd.fua);
	/* zero blocks: no transfer, not an error */
	assert_true(PARSE(0x28, 0, 0, 0, 0, 1, 0, 0, 0, 0));
	assert_int_equal(cmd.xfer_len, 0);
}

static void read_write_refusals(void **state)
{
	struct scsi_geom ro = geom;

	ro.read_only = true;
	/* RDPROTECT / WRPROTECT: no protection information */
	assert_false(PARSE(0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0));
	expect_field(1, 5);
	assert_false(PARSE(0x8a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0));
	expect_field(1, 7);
	/* READ(6): the obsolete LUN bits */
	assert_false(PARSE(0x08, 0x20, 0, 0, 1, 0));
	expect_field(1, 5);
	/* control byte: NACA and LINK are not supported, vendor bits are ignored */
	assert_false(PARSE(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x04));
	expect_field(9, 2);
	assert_false(PARSE(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x01));
	expect_field(9, 0);
	assert_true(PARSE(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0xc0));
	/* beyond the capacity */
	assert_false(PARSE(0x28, 0, 0, 0, 0x1f, 0xff, 0, 0, 2, 0));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	assert_false(PARSE(0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0, 0));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	assert_false(PARSE(0x28, 0, 0, 0, 0x20, 0x00, 0, 0, 0, 0)); /* 0 blocks at LBA CAP */
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	/* more than MAXIMUM TRANSFER LENGTH: the transfer length field */
	assert_false(PARSE(0x28, 0, 0, 0, 0, 0, 0, 0x08, 0x01, 0));
	expect_field(7, 7);
	assert_false(PARSE(0xa8, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x01, 0, 0));
	expect_field(6, 7);
	assert_false(PARSE(0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x01, 0, 0));
	expect_field(10, 7);
	/* read-only: writes are DATA PROTECT, reads are fine */
	assert_false(PARSE_G(&ro, 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0));
	expect_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
	assert_false(PARSE_G(&ro, 0x0a, 0, 0, 0, 1, 0));
	expect_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
	assert_true(PARSE_G(&ro, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0));
}

static void unknown_opcodes_and_service_actions(void **state)
{
	static const uint8_t unknown[] = { 0x01, 0x04, 0x07, 0x1d, 0x2b, 0x34, 0x3b, 0x3c, 0x4d,
					   0x5e, 0x7f, 0x83, 0x89, 0x9b, 0xa2, 0xb5, 0xc0, 0xff };
	struct scsi_geom thick = geom;
	uint8_t cdb[SCSI_CDB_MAX] = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++) {
		cdb[0] = unknown[i];
		assert_false(parse_g(&geom, cdb, sizeof(cdb)));
		expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE);
	}
	assert_false(parse_g(&geom, cdb, 0));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE);
	/* SERVICE ACTION IN(16) / GET LBA STATUS, MAINTENANCE IN / REPORT TMF: not ours */
	assert_false(PARSE(0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0));
	expect_field(1, 4);
	assert_false(PARSE(0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0));
	expect_field(1, 4);
	/* UNMAP without provisioning */
	thick.unmap = false;
	assert_false(PARSE_G(&thick, 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE);
	assert_non_null(scsi_cmd_name(0x28, 0));
	assert_string_equal(scsi_cmd_name(0x9e, 0x10), "READ CAPACITY(16)");
	assert_null(scsi_cmd_name(0x9e, 0x11));
	assert_null(scsi_cmd_name(0xff, 0));
}

/* Every supported opcode, every CDB length short of its group: the first missing byte. */
static void short_cdbs_point_at_the_first_missing_byte(void **state)
{
	static const uint8_t ops[] = { 0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x1e, 0x25,
				       0x28, 0x2a, 0x2f, 0x35, 0x41, 0x42, 0x55, 0x5a, 0x88, 0x8a,
				       0x8f, 0x91, 0x93, 0x9e, 0xa0, 0xa3, 0xa8, 0xaa };
	uint8_t cdb[SCSI_CDB_MAX] = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		unsigned int glen = scsi_cdb_group_len(ops[i]);

		assert_true(glen >= 6);
		cdb[0] = ops[i];
		for (size_t len = 1; len < glen; len++) {
			assert_false(parse_g(&geom, cdb, len));
			expect_field((int)len, -1);
		}
	}
	assert_int_equal(scsi_cdb_group_len(0x7f), 0);
	assert_int_equal(scsi_cdb_group_len(0xc0), 0);
	assert_int_equal(scsi_cdb_group_len(0xa0), 12);
	assert_int_equal(scsi_cdb_group_len(0x9e), 16);
	/* longer than the group: the extra bytes are not looked at */
	memset(cdb, 0xff, sizeof(cdb));
	memset(cdb, 0, 10);
	cdb[0] = 0x28;
	cdb[8] = 1;
	assert_true(parse_g(&geom, cdb, sizeof(cdb)));
}

static void inquiry_pages(void **state)
{
	static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };
	struct scsi_geom thick = geom;

	assert_true(PARSE(0x12, 0, 0, 0, 96, 0));
	assert_int_equal(cmd.kind, SCSI_K_INQUIRY);
	assert_false(cmd.evpd);
	assert_int_equal(cmd.alloc_len, 96);
	assert_int_equal(cmd.xfer_len, 96);
	assert_int_equal(cmd.dir, SCSI_DIR_IN);
	for (size_t i = 0; i < ARRAY_SIZE(pages); i++) {
		assert_true(PARSE(0x12, 0x01, pages[i], 0x01, 0x00, 0));
		assert_true(cmd.evpd);
		assert_int_equal(cmd.page, pages[i]);
		assert_int_equal(cmd.alloc_len, 256);
	}
	/* a page code without EVPD; a page we do not have; B2h without provisioning */
	assert_false(PARSE(0x12, 0, 0x80, 0, 96, 0));
	expect_field(2, 7);
	assert_false(PARSE(0x12, 0x01, 0x86, 0, 96, 0));
	expect_field(2, 7);
	thick.unmap = false;
	assert_false(PARSE_G(&thick, 0x12, 0x01, 0xb2, 0, 96, 0));
	expect_field(2, 7);
	/* CMDDT (obsolete) */
	assert_false(PARSE(0x12, 0x02, 0, 0, 96, 0));
	expect_field(1, 1);
}

static void read_capacity(void **state)
{
	assert_true(PARSE(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0));
	assert_int_equal(cmd.kind, SCSI_K_READ_CAPACITY_10);
	assert_int_equal(cmd.xfer_len, 8);
	assert_int_equal(cmd.dir, SCSI_DIR_IN);
	assert_false(PARSE(0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0)); /* LBA without PMI */
	expect_field(2, 7);
	assert_true(PARSE(0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0));
	assert_true(PARSE(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0));
	assert_int_equal(cmd.kind, SCSI_K_READ_CAPACITY_16);
	assert_int_equal(cmd.sa, 0x10);
	assert_int_equal(cmd.alloc_len, 32);
	assert_false(PARSE(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 32, 0, 0));
	expect_field(2, 7);
	assert_false(PARSE(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0x02, 0));
	expect_field(14, 1);
}

static void write_same(void **state)
{
	struct scsi_geom ro = geom, thick = geom;

	ro.read_only = true;
	thick.unmap = false;
	assert_true(PARSE(0x41, 0x08, 0, 0, 0, 0x10, 0, 0, 0x20, 0));
	assert_int_equal(cmd.kind, SCSI_K_WRITE_SAME);
	assert_true(cmd.unmap);
	assert_int_equal(cmd.lba, 16);
	assert_int_equal(cmd.nblocks, 32);
	assert_int_equal(cmd.dir, SCSI_DIR_OUT);
	assert_int_equal(cmd.xfer_len, BS);
	assert_true(PARSE(0x93, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0));
	assert_true(cmd.ndob);
	assert_int_equal(cmd.dir, SCSI_DIR_NONE);
	assert_int_equal(cmd.xfer_len, 0);
	assert_int_equal(cmd.nblocks, 4096);
	assert_false(PARSE(0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0)); /* 0 blocks (WSNZ) */
	expect_field(7, 7);
	assert_false(PARSE(0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x01, 0, 0));
	expect_field(10, 7);
	assert_false(PARSE(0x41, 0x10, 0, 0, 0, 0, 0, 0, 1, 0)); /* ANCHOR */
	expect_field(1, 4);
	assert_false(PARSE(0x41, 0x02, 0, 0, 0, 0, 0, 0, 1, 0)); /* LBDATA (obsolete) */
	expect_field(1, 1);
	assert_false(PARSE_G(&thick, 0x41, 0x08, 0, 0, 0, 0, 0, 0, 1, 0));
	expect_field(1, 3);
	assert_true(PARSE_G(&thick, 0x41, 0x00, 0, 0, 0, 0, 0, 0, 1, 0));
	assert_false(PARSE_G(&ro, 0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0));
	expect_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
	assert_false(PARSE(0x41, 0, 0, 0, 0x1f, 0xff, 0, 0, 2, 0));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
}

static void unmap_and_sync_cache(void **state)
{
	struct scsi_geom ro = geom;

	ro.read_only = true;
	assert_true(PARSE(0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0));
	assert_int_equal(cmd.kind, SCSI_K_UNMAP);
	assert_int_equal(cmd.param_len, 24);
	assert_int_equal(cmd.dir, SCSI_DIR_OUT);
	assert_int_equal(cmd.xfer_len, 24);
	assert_false(PARSE(0x42, 0x01, 0, 0, 0, 0, 0, 0, 24, 0)); /* ANCHOR */
	expect_field(1, 0);
	assert_false(PARSE_G(&ro, 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0));
	expect_sense(SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);

	assert_true(PARSE(0x35, 0x02, 0, 0, 0, 0, 0, 0, 0, 0));
	assert_int_equal(cmd.kind, SCSI_K_SYNC_CACHE);
	assert_true(cmd.immed);
	assert_int_equal(cmd.nblocks, CAP); /* 0: to the end */
	assert_int_equal(cmd.dir, SCSI_DIR_NONE);
	assert_true(PARSE(0x91, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0));
	assert_int_equal(cmd.lba, 8);
	assert_int_equal(cmd.nblocks, 8);
	assert_false(PARSE(0x35, 0, 0, 0, 0x20, 0, 0, 0, 0, 0));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	assert_false(PARSE(0x35, 0x04, 0, 0, 0, 0, 0, 0, 0, 0)); /* SYNC_NV (obsolete) */
	expect_field(1, 2);
	assert_true(PARSE_G(&ro, 0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0)); /* read-only may sync */
}

static void verify(void **state)
{
	assert_true(PARSE(0x2f, 0x00, 0, 0, 0, 4, 0, 0, 8, 0));
	assert_int_equal(cmd.kind, SCSI_K_VERIFY);
	assert_false(cmd.bytchk);
	assert_int_equal(cmd.dir, SCSI_DIR_NONE);
	assert_int_equal(cmd.xfer_len, 0);
	assert_true(PARSE(0x2f, 0x02, 0, 0, 0, 4, 0, 0, 8, 0));
	assert_true(cmd.bytchk);
	assert_int_equal(cmd.dir, SCSI_DIR_OUT);
	assert_int_equal(cmd.xfer_len, 8 * BS);
	assert_true(PARSE(0x8f, 0x12, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0));
	assert_true(cmd.bytchk);
	assert_true(cmd.dpo);
	assert_false(PARSE(0x2f, 0x04, 0, 0, 0, 4, 0, 0, 8, 0)); /* BYTCHK 10b */
	expect_field(1, 2);
	assert_false(PARSE(0x2f, 0x06, 0, 0, 0, 4, 0, 0, 8, 0)); /* BYTCHK 11b */
	expect_field(1, 2);
	assert_false(PARSE(0x2f, 0x08, 0, 0, 0, 4, 0, 0, 8, 0)); /* bit 3 is reserved */
	expect_field(1, 3);
	assert_false(PARSE(0x2f, 0, 0, 0, 0x1f, 0xff, 0, 0, 2, 0));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	/* BYTCHK=0 moves nothing: the transfer limit does not apply */
	assert_true(PARSE(0x2f, 0, 0, 0, 0, 0, 0, 0x10, 0, 0));
	assert_false(PARSE(0x2f, 0x02, 0, 0, 0, 0, 0, 0x10, 0, 0));
	expect_field(7, 7);
}

static void mode_sense(void **state)
{
	assert_true(PARSE(0x1a, 0x08, 0x08, 0, 0xff, 0));
	assert_int_equal(cmd.kind, SCSI_K_MODE_SENSE);
	assert_false(cmd.ten);
	assert_true(cmd.dbd);
	assert_int_equal(cmd.page, 0x08);
	assert_int_equal(cmd.pc, SCSI_PC_CURRENT);
	assert_int_equal(cmd.alloc_len, 255);
	assert_true(PARSE(0x5a, 0x10, 0x7f, 0xff, 0, 0, 0, 0x10, 0x00, 0));
	assert_true(cmd.ten);
	assert_true(cmd.llbaa);
	assert_int_equal(cmd.page, 0x3f);
	assert_int_equal(cmd.subpage, 0xff);
	assert_int_equal(cmd.pc, SCSI_PC_CHANGEABLE);
	assert_int_equal(cmd.alloc_len, 4096);
	assert_true(PARSE(0x1a, 0, 0x81, 0, 64, 0));
	assert_int_equal(cmd.pc, SCSI_PC_DEFAULT);
	assert_int_equal(cmd.page, 0x01);
	assert_true(PARSE(0x1a, 0, 0x0a, 0, 64, 0));
	/* saved values */
	assert_false(PARSE(0x1a, 0, 0xc8, 0, 64, 0));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_SAVING_NOT_SUPPORTED);
	assert_int_equal(err.field, 2);
	/* a page we do not have, a subpage */
	assert_false(PARSE(0x1a, 0, 0x1c, 0, 64, 0));
	expect_field(2, 5);
	assert_false(PARSE(0x5a, 0, 0x08, 0x01, 0, 0, 0, 0, 64, 0));
	expect_field(3, 7);
	/* LLBAA in the 6-byte form is reserved */
	assert_false(PARSE(0x1a, 0x10, 0x08, 0, 64, 0));
	expect_field(1, 4);
}

static void mode_select(void **state)
{
	assert_true(PARSE(0x15, 0x10, 0, 0, 24, 0));
	assert_int_equal(cmd.kind, SCSI_K_MODE_SELECT);
	assert_true(cmd.pf);
	assert_false(cmd.ten);
	assert_int_equal(cmd.param_len, 24);
	assert_int_equal(cmd.dir, SCSI_DIR_OUT);
	assert_int_equal(cmd.xfer_len, 24);
	assert_true(PARSE(0x55, 0x10, 0, 0, 0, 0, 0, 0x01, 0x00, 0));
	assert_true(cmd.ten);
	assert_int_equal(cmd.param_len, 256);
	assert_false(PARSE(0x15, 0x11, 0, 0, 24, 0)); /* SP: nothing can be saved */
	expect_field(1, 0);
}

static void report_luns_and_opcodes(void **state)
{
	assert_true(PARSE(0xa0, 0, 0x02, 0, 0, 0, 0, 0, 0x10, 0, 0, 0));
	assert_int_equal(cmd.kind, SCSI_K_REPORT_LUNS);
	assert_int_equal(cmd.select_report, 2);
	assert_int_equal(cmd.alloc_len, 4096);
	assert_false(PARSE(0xa0, 0, 0x10, 0, 0, 0, 0, 0, 0x10, 0, 0, 0));
	expect_field(2, 7);

	assert_true(PARSE(0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0));
	assert_int_equal(cmd.kind, SCSI_K_REPORT_OPCODES);
	assert_true(cmd.rctd);
	assert_int_equal(cmd.rep_opts, 0);
	assert_true(PARSE(0xa3, 0x0c, 0x01, 0x28, 0, 0, 0, 0, 0, 64, 0, 0));
	assert_int_equal(cmd.req_opcode, 0x28);
	assert_true(PARSE(0xa3, 0x0c, 0x02, 0x9e, 0, 0x10, 0, 0, 0, 64, 0, 0));
	assert_int_equal(cmd.req_sa, 0x10);
	assert_true(PARSE(0xa3, 0x0c, 0x01, 0xd0, 0, 0, 0, 0, 0, 64, 0, 0)); /* unsupported: data */
	assert_false(PARSE(0xa3, 0x0c, 0x03, 0x28, 0, 0, 0, 0, 0, 64, 0, 0));
	expect_field(2, 2);
	assert_false(PARSE(0xa3, 0x0c, 0x01, 0x9e, 0, 0, 0, 0, 0, 64, 0, 0));
	expect_field(3, 7);
	assert_false(PARSE(0xa3, 0x0c, 0x02, 0x28, 0, 0, 0, 0, 0, 64, 0, 0));
	expect_field(3, 7);
}

static void start_stop_and_prevent(void **state)
{
	assert_true(PARSE(0x1b, 0x01, 0, 0, 0x01, 0));
	assert_int_equal(cmd.kind, SCSI_K_START_STOP);
	assert_true(cmd.immed);
	assert_true(cmd.start);
	assert_true(PARSE(0x1b, 0, 0, 0, 0x30, 0));
	assert_int_equal(cmd.power_cond, 3);
	assert_false(PARSE(0x1b, 0, 0, 0, 0x40, 0));
	expect_field(4, 7);
	assert_false(PARSE(0x1b, 0, 0, 0, 0x08, 0)); /* reserved bit 3 */
	expect_field(4, 3);
	assert_true(PARSE(0x1e, 0, 0, 0, 0x01, 0));
	assert_int_equal(cmd.kind, SCSI_K_PREVENT_ALLOW);
	assert_true(cmd.prevent);
	assert_true(PARSE(0x1e, 0, 0, 0, 0x00, 0));
	assert_false(cmd.prevent);
	assert_false(PARSE(0x1e, 0, 0, 0, 0x02, 0)); /* obsolete values */
	expect_field(4, 1);
}

/* Allocation lengths 0, 1 and the largest are all valid: the data is cut, never refused. */
static void allocation_length_edges(void **state)
{
	static const uint32_t lens[] = { 0, 1, 2, 3, 4, 5, 7, 8, 17, 18, 31, 32, 35, 36, 255 };

	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		uint32_t l = lens[i];

		assert_true(PARSE(0x12, 0, 0, (uint8_t)(l >> 8), (uint8_t)l, 0));
		assert_int_equal(cmd.xfer_len, l);
		assert_true(PARSE(0x12, 1, 0x83, (uint8_t)(l >> 8), (uint8_t)l, 0));
		assert_int_equal(cmd.xfer_len, l);
		assert_true(PARSE(0x03, 0, 0, 0, (uint8_t)l, 0));
		assert_int_equal(cmd.xfer_len, l);
		assert_true(PARSE(0x1a, 0, 0x3f, 0, (uint8_t)l, 0));
		assert_int_equal(cmd.xfer_len, l);
		assert_true(PARSE(0x5a, 0, 0x3f, 0, 0, 0, 0, (uint8_t)(l >> 8), (uint8_t)l, 0));
		assert_int_equal(cmd.xfer_len, l);
		assert_true(PARSE(0xa0, 0, 0, 0, 0, 0, 0, 0, (uint8_t)(l >> 8), (uint8_t)l, 0, 0));
		assert_int_equal(cmd.xfer_len, l);
		assert_true(PARSE(0xa3, 0x0c, 0, 0, 0, 0, 0, 0, (uint8_t)(l >> 8), (uint8_t)l, 0, 0));
		assert_int_equal(cmd.xfer_len, l);
		assert_true(PARSE(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (uint8_t)(l >> 8),
				  (uint8_t)l, 0, 0));
		assert_int_equal(cmd.xfer_len, l);
	}
	assert_true(PARSE(0x12, 0, 0, 0xff, 0xff, 0));
	assert_int_equal(cmd.xfer_len, 0xffff);
	assert_true(PARSE(0xa0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0));
	assert_int_equal(cmd.xfer_len, 0xffffffffu);
	assert_true(PARSE(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0));
	assert_int_equal(cmd.xfer_len, 0xffffffffu);
}

static bool sense_known(const struct scsi_sense_err *e)
{
	switch (e->asc) {
	case SCSI_ASC_INVALID_OPCODE:
	case SCSI_ASC_INVALID_FIELD_CDB:
	case SCSI_ASC_LBA_OUT_OF_RANGE:
	case SCSI_ASC_SAVING_NOT_SUPPORTED:
		return e->key == SCSI_KEY_ILLEGAL_REQUEST;
	case SCSI_ASC_WRITE_PROTECTED:
		return e->key == SCSI_KEY_DATA_PROTECT;
	default:
		return false;
	}
}

/* Random CDBs (random geometry, random length) always decode consistently or give a sense. */
static void random_cdbs_decode_or_refuse(void **state)
{
	uint64_t x = 0x5eed5c5100000001ull;
	unsigned int decoded = 0;

	for (int i = 0; i < 300000; i++) {
		uint8_t cdb[SCSI_CDB_MAX];
		struct scsi_geom g = geom;
		size_t len;

		for (size_t j = 0; j < sizeof(cdb); j++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			cdb[j] = (uint8_t)x;
		}
		/* mostly known opcodes with mostly clear bytes, so deep paths are reached */
		if (x & 1) {
			static const uint8_t ops[] = { 0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x1a,
						       0x1b, 0x1e, 0x25, 0x28, 0x2a, 0x2f, 0x35,
						       0x41, 0x42, 0x55, 0x5a, 0x88, 0x8a, 0x8f,
						       0x91, 0x93, 0x9e, 0xa0, 0xa3, 0xa8, 0xaa };

			cdb[0] = ops[(x >> 8) % ARRAY_SIZE(ops)];
			for (size_t j = 1; j < sizeof(cdb); j++)
				if ((x >> (j % 60)) & 2)
					cdb[j] = 0;
		}
		len = (x >> 40) % (SCSI_CDB_MAX + 1);
		g.nblocks = (x >> 20) & 0xffff;
		g.read_only = x & 4;
		g.unmap = x & 8;
		g.block_size = 512u << ((x >> 50) % 8);
		if (scsi_cdb_parse(cdb, len, &g, &cmd, &err)) {
			decoded++;
			assert_true(cmd.cdb_len <= len);
			assert_int_equal(cmd.opcode, cdb[0]);
			if (cmd.kind == SCSI_K_READ || cmd.kind == SCSI_K_WRITE) {
				assert_true(range_within(cmd.lba, cmd.nblocks, g.nblocks));
				assert_int_equal(cmd.xfer_len, (uint64_t)cmd.nblocks * g.block_size);
				assert_true(cmd.nblocks <= g.max_xfer_blocks);
				assert_false(cmd.kind == SCSI_K_WRITE && g.read_only);
			}
			if (cmd.dir == SCSI_DIR_NONE)
				assert_int_equal(cmd.xfer_len, 0);
			assert_false(cmd.kind == SCSI_K_UNMAP && !g.unmap);
		} else {
			if (!sense_known(&err))
				fail_msg("cdb %02x len %zu: unexpected sense %x/%04x", cdb[0], len,
					 err.key, err.asc);
			if (err.sksv && err.cd)
				assert_true(err.field < SCSI_CDB_MAX);
		}
	}
	assert_true(decoded > 1000);
}

/* ---------------------------------------------------------------------------------------------
 * UNMAP parameter list
 */

static size_t unmap_list(uint8_t *b, const uint64_t *lba, const uint32_t *n, size_t nd)
{
	memset(b, 0, 8 + 16 * nd);
	scsi_put_be16(b, (uint16_t)(6 + 16 * nd));
	scsi_put_be16(b + 2, (uint16_t)(16 * nd));
	for (size_t i = 0; i < nd; i++) {
		scsi_put_be64(b + 8 + 16 * i, lba[i]);
		scsi_put_be32(b + 16 + 16 * i, n[i]);
	}
	return 8 + 16 * nd;
}

static void unmap_parameter_list(void **state)
{
	struct scsi_unmap_desc d[8];
	uint8_t b[8 + 16 * 10];
	unsigned int n;
	uint64_t lba[10] = { 0, 100, 200, CAP - 1 };
	uint32_t nb[10] = { 8, 0, 16, 1 };
	size_t len = unmap_list(b, lba, nb, 4);

	assert_true(scsi_unmap_parse(b, len, &geom, d, &n, &err));
	assert_int_equal(n, 3); /* the 0-block descriptor is dropped */
	assert_int_equal(d[0].lba, 0);
	assert_int_equal(d[0].nblocks, 8);
	assert_int_equal(d[1].lba, 200);
	assert_int_equal(d[2].lba, CAP - 1);
	/* nothing; a header with no descriptors */
	assert_true(scsi_unmap_parse(b, 0, &geom, d, &n, &err));
	assert_int_equal(n, 0);
	len = unmap_list(b, lba, nb, 0);
	assert_true(scsi_unmap_parse(b, len, &geom, d, &n, &err));
	assert_int_equal(n, 0);
	/* 1..7 bytes */
	for (size_t l = 1; l < 8; l++) {
		assert_false(scsi_unmap_parse(b, l, &geom, d, &n, &err));
		expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	}
	/* data lengths beyond what was received */
	len = unmap_list(b, lba, nb, 2);
	assert_false(scsi_unmap_parse(b, len - 1, &geom, d, &n, &err));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	/* an incomplete last descriptor is ignored */
	scsi_put_be16(b + 2, 16 + 8);
	assert_true(scsi_unmap_parse(b, len, &geom, d, &n, &err));
	assert_int_equal(n, 1);
	/* more descriptors than the limit */
	len = unmap_list(b, lba, nb, 9);
	assert_false(scsi_unmap_parse(b, len, &geom, d, &n, &err));
	expect_param_field(2, 7);
	/* past the capacity; an LBA that wraps */
	lba[0] = CAP - 4;
	nb[0] = 5;
	len = unmap_list(b, lba, nb, 1);
	assert_false(scsi_unmap_parse(b, len, &geom, d, &n, &err));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	lba[0] = UINT64_MAX;
	nb[0] = 2;
	len = unmap_list(b, lba, nb, 1);
	assert_false(scsi_unmap_parse(b, len, &geom, d, &n, &err));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	/* more blocks in all than MAXIMUM UNMAP LBA COUNT: the descriptor that crosses it */
	lba[0] = 0, nb[0] = 4000;
	lba[1] = 4000, nb[1] = 97;
	len = unmap_list(b, lba, nb, 2);
	assert_false(scsi_unmap_parse(b, len, &geom, d, &n, &err));
	expect_param_field(8 + 16 + 8, 7);
}

/* ---------------------------------------------------------------------------------------------
 * MODE SELECT parameter list
 */

static const struct scsi_mode cur = { .wce = true, .d_sense = false };

/* header(6), optional short block descriptor, then the current caching page */
static size_t caching_list(uint8_t *b, bool ten, bool bd, bool wce)
{
	size_t hdr = ten ? 8 : 4, off;

	memset(b, 0, 64);
	if (ten)
		b[7] = bd ? 8 : 0;
	else
		b[3] = bd ? 8 : 0;
	off = hdr;
	if (bd) {
		scsi_put_be32(b + off, CAP);
		scsi_put_be32(b + off + 4, BS);
		off += 8;
	}
	off += scsi_mode_page(SCSI_MODE_PAGE_CACHING, SCSI_PC_CURRENT, &cur, &cur, b + off);
	if (!wce)
		b[off - 20 + 2] &= (uint8_t)~0x04;
	return off;
}

static void mode_select_parameter_list(void **state)
{
	struct scsi_cmd c6 = { .kind = SCSI_K_MODE_SELECT, .pf = true };
	struct scsi_cmd c10 = { .kind = SCSI_K_MODE_SELECT, .pf = true, .ten = true };
	struct scsi_mode out;
	uint8_t b[64] = { 0 };
	size_t len;

	/* nothing, or a header alone: no change */
	assert_true(scsi_mode_select_parse(b, 0, &c6, &geom, &cur, &out, &err));
	assert_true(out.wce);
	memset(b, 0, sizeof(b));
	assert_true(scsi_mode_select_parse(b, 4, &c6, &geom, &cur, &out, &err));
	/* WCE off, with and without a block descriptor, both sizes */
	len = caching_list(b, false, true, false);
	assert_true(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	assert_false(out.wce);
	len = caching_list(b, true, false, false);
	assert_true(scsi_mode_select_parse(b, len, &c10, &geom, &cur, &out, &err));
	assert_false(out.wce);
	assert_false(out.d_sense);
	/* shorter than the header, a page cut off */
	assert_false(scsi_mode_select_parse(b, 3, &c6, &geom, &cur, &out, &err));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	len = caching_list(b, false, false, false);
	assert_false(scsi_mode_select_parse(b, len - 1, &c6, &geom, &cur, &out, &err));
	expect_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	/* a fixed bit changed (caching RCD, byte 2 bit 0 of the page at offset 4) */
	b[4 + 2] |= 0x01;
	assert_false(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	expect_param_field(6, 0);
	/* wrong page length; a page we do not have; a subpage */
	len = caching_list(b, false, false, true);
	b[5] = 0x10;
	assert_false(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	expect_param_field(5, 7);
	len = caching_list(b, false, false, true);
	b[4] = 0x1c;
	assert_false(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	expect_param_field(4, 5);
	b[4] = 0x48;
	assert_false(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	expect_param_field(4, 5);
	/* block descriptor: a bad length, another block size */
	len = caching_list(b, false, true, true);
	b[3] = 5;
	assert_false(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	expect_param_field(3, 7);
	len = caching_list(b, false, true, true);
	scsi_put_be32(b + 8, 4096);
	assert_false(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	expect_param_field(9, 7);
	/* PF=0 with pages */
	len = caching_list(b, false, false, false);
	c6.pf = false;
	assert_false(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	expect_field(1, 4);
	c6.pf = true;
	/* the control page: D_SENSE is changeable; a long LBA block descriptor */
	memset(b, 0, sizeof(b));
	b[4] = 0x01; /* LONGLBA */
	b[7] = 16;
	scsi_put_be64(b + 8, CAP);
	scsi_put_be32(b + 20, BS);
	len = 24 + scsi_mode_page(SCSI_MODE_PAGE_CONTROL, SCSI_PC_CURRENT, &cur, &cur, b + 24);
	b[24 + 2] |= 0x04;
	assert_true(scsi_mode_select_parse(b, len, &c10, &geom, &cur, &out, &err));
	assert_true(out.d_sense);
	assert_true(out.wce);
	/* two pages at once; the read-write error recovery page unchanged is accepted */
	len = caching_list(b, false, false, false);
	len += scsi_mode_page(SCSI_MODE_PAGE_RW_RECOVERY, SCSI_PC_CURRENT, &cur, &cur, b + len);
	assert_true(scsi_mode_select_parse(b, len, &c6, &geom, &cur, &out, &err));
	assert_false(out.wce);
}

/* ---------------------------------------------------------------------------------------------
 * REPORT SUPPORTED OPERATION CODES
 */

static void report_opcodes_data(void **state)
{
	struct scsi_geom thick = geom;
	uint8_t b[1024];
	size_t n, n2, entries;
	bool unmap_seen = false;

	assert_true(PARSE(0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0));
	n = scsi_report_opcodes(&cmd, &geom, b, sizeof(b));
	assert_int_equal(scsi_be32(b), n - 4);
	entries = (n - 4) / 8;
	assert_int_equal(entries * 8 + 4, n);
	for (size_t i = 0; i < entries; i++) {
		const uint8_t *e = b + 4 + 8 * i;

		assert_non_null(scsi_cmd_name(e[0], e[3]));
		assert_int_equal(scsi_be16(e + 6), scsi_cdb_group_len(e[0]));
		assert_int_equal(e[5] & 1, e[0] == 0x9e || e[0] == 0xa3); /* SERVACTV */
		unmap_seen |= e[0] == 0x42;
	}
	assert_true(unmap_seen);
	thick.unmap = false;
	n2 = scsi_report_opcodes(&cmd, &thick, b, sizeof(b));
	assert_int_equal(n2, n - 8);
	/* with command timeouts descriptors */
	assert_true(PARSE(0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x04, 0, 0, 0));
	n2 = scsi_report_opcodes(&cmd, &geom, b, sizeof(b));
	assert_int_equal(n2, 4 + entries * 20);
	assert_int_equal(b[4 + 5] & 2, 2); /* CTDP */
	assert_int_equal(scsi_be16(b + 4 + 8), 0x0a);
	/* cut to the room given, the full length still returned */
	memset(b, 0xaa, sizeof(b));
	assert_int_equal(scsi_report_opcodes(&cmd, &geom, b, 5), n2);
	assert_int_equal(b[5], 0xaa);

	/* one command: READ(10) supported, with its usage data */
	assert_true(PARSE(0xa3, 0x0c, 0x01, 0x28, 0, 0, 0, 0, 0, 64, 0, 0));
	n = scsi_report_opcodes(&cmd, &geom, b, sizeof(b));
	assert_int_equal(n, 4 + 10);
	assert_int_equal(b[1] & 7, 3);
	assert_int_equal(scsi_be16(b + 2), 10);
	assert_int_equal(b[4], 0x28);
	assert_int_equal(b[5], 0x18); /* DPO, FUA */
	/* READ CAPACITY(16) by service action, with timeouts */
	assert_true(PARSE(0xa3, 0x0c, 0x82, 0x9e, 0, 0x10, 0, 0, 0, 64, 0, 0));
	n = scsi_report_opcodes(&cmd, &geom, b, sizeof(b));
	assert_int_equal(n, 4 + 16 + 12);
	assert_int_equal(b[1], 0x83);
	assert_int_equal(b[4], 0x9e);
	/* not supported: an unknown opcode, an unknown service action, UNMAP when thick */
	assert_true(PARSE(0xa3, 0x0c, 0x01, 0xd0, 0, 0, 0, 0, 0, 64, 0, 0));
	assert_int_equal(scsi_report_opcodes(&cmd, &geom, b, sizeof(b)), 4);
	assert_int_equal(b[1] & 7, 1);
	assert_true(PARSE(0xa3, 0x0c, 0x02, 0x9e, 0, 0x12, 0, 0, 0, 64, 0, 0));
	assert_int_equal(scsi_report_opcodes(&cmd, &geom, b, sizeof(b)), 4);
	assert_int_equal(b[1] & 7, 1);
	assert_true(PARSE_G(&thick, 0xa3, 0x0c, 0x01, 0x42, 0, 0, 0, 0, 0, 64, 0, 0));
	assert_int_equal(scsi_report_opcodes(&cmd, &thick, b, sizeof(b)), 4);
}

/* The usage data we report is what the parser accepts: each bit outside it is refused. */
static void usage_data_matches_the_parser(void **state)
{
	static const uint8_t ops[] = { 0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x1e, 0x25,
				       0x28, 0x2a, 0x2f, 0x35, 0x41, 0x42, 0x55, 0x5a, 0x88, 0x8a,
				       0x8f, 0x91, 0x93, 0xa0, 0xa8, 0xaa };
	uint8_t b[64];

	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		struct scsi_cmd q;
		unsigned int len;

		assert_true(PARSE(0xa3, 0x0c, 0x01, ops[i], 0, 0, 0, 0, 0, 64, 0, 0));
		q = cmd;
		scsi_report_opcodes(&q, &geom, b, sizeof(b));
		len = scsi_be16(b + 2);
		assert_int_equal(len, scsi_cdb_group_len(ops[i]));
		for (unsigned int byte = 1; byte < len; byte++) {
			for (int bit = 0; bit < 8; bit++) {
				uint8_t cdb[16] = { ops[i] };

				if (b[4 + byte] & (1u << bit))
					continue;
				cdb[byte] = (uint8_t)(1u << bit);
				assert_false(parse_g(&geom, cdb, len));
				expect_field((int)byte, bit);
			}
		}
	}
}

static void lun_encoding(void **state)
{
	uint8_t l[8];

	scsi_lun_encode(0, l);
	assert_true(buf_is_zero(l, 8));
	scsi_lun_encode(5, l);
	assert_int_equal(l[0], 0);
	assert_int_equal(l[1], 5);
	scsi_lun_encode(300, l);
	assert_int_equal(l[0], 0x41);
	assert_int_equal(l[1], 0x2c);
	assert_true(buf_is_zero(l + 2, 6));
	scsi_lun_encode(16383, l);
	assert_int_equal(l[0], 0x7f);
	assert_int_equal(l[1], 0xff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unit_ready_and_request_sense),
		cmocka_unit_test(read_write_every_size),
		cmocka_unit_test(read_write_refusals),
		cmocka_unit_test(unknown_opcodes_and_service_actions),
		cmocka_unit_test(short_cdbs_point_at_the_first_missing_byte),
		cmocka_unit_test(inquiry_pages),
		cmocka_unit_test(read_capacity),
		cmocka_unit_test(write_same),
		cmocka_unit_test(unmap_and_sync_cache),
		cmocka_unit_test(verify),
		cmocka_unit_test(mode_sense),
		cmocka_unit_test(mode_select),
		cmocka_unit_test(report_luns_and_opcodes),
		cmocka_unit_test(start_stop_and_prevent),
		cmocka_unit_test(allocation_length_edges),
		cmocka_unit_test(random_cdbs_decode_or_refuse),
		cmocka_unit_test(unmap_parameter_list),
		cmocka_unit_test(mode_select_parameter_list),
		cmocka_unit_test(report_opcodes_data),
		cmocka_unit_test(usage_data_matches_the_parser),
		cmocka_unit_test(lun_encoding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
