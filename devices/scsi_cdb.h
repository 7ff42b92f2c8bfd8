/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SCSI command parsing for a direct-access block device (SPC-4, SBC-3): pure functions of the
 * CDB bytes, the parameter-list bytes and the logical unit's geometry, as vblk_parse is for
 * virtio-blk. Nothing here touches guest memory, a block node or any state: the caller copies
 * the CDB and the parameter lists out of the guest first, and executes what comes back
 * (devices/scsi_disk.c). Every refusal is an encoded sense condition (struct scsi_sense_err)
 * with the field pointer of the offending CDB or parameter-list field.
 *
 * One table (scsi_cdb.c) lists the commands: opcode, service action, CDB length and the CDB
 * usage bits. The parser refuses any bit outside the usage mask (INVALID FIELD IN CDB, pointing
 * at it), and REPORT SUPPORTED OPERATION CODES reports the same table, so what we say we accept
 * is what we accept.
 */
#ifndef VIREO_DEVICES_SCSI_CDB_H
#define VIREO_DEVICES_SCSI_CDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/scsi_sense.h"

/* Largest CDB looked at (virtio-scsi's default cdb_size); longer ones are cut by the caller. */
#define SCSI_CDB_MAX 32

/* Operation codes */
#define SCSI_OP_TEST_UNIT_READY 0x00
#define SCSI_OP_REQUEST_SENSE 0x03
#define SCSI_OP_READ_6 0x08
#define SCSI_OP_WRITE_6 0x0a
#define SCSI_OP_INQUIRY 0x12
#define SCSI_OP_MODE_SELECT_6 0x15
#define SCSI_OP_MODE_SENSE_6 0x1a
#define SCSI_OP_START_STOP_UNIT 0x1b
#define SCSI_OP_PREVENT_ALLOW 0x1e
#define SCSI_OP_READ_CAPACITY_10 0x25
#define SCSI_OP_READ_10 0x28
#define SCSI_OP_WRITE_10 0x2a
#define SCSI_OP_VERIFY_10 0x2f
#define SCSI_OP_SYNC_CACHE_10 0x35
#define SCSI_OP_WRITE_SAME_10 0x41
#define SCSI_OP_UNMAP 0x42
#define SCSI_OP_MODE_SELECT_10 0x55
#define SCSI_OP_MODE_SENSE_10 0x5a
#define SCSI_OP_READ_16 0x88
#define SCSI_OP_WRITE_16 0x8a
#define SCSI_OP_VERIFY_16 0x8f
#define SCSI_OP_SYNC_CACHE_16 0x91
#define SCSI_OP_WRITE_SAME_16 0x93
#define SCSI_OP_SERVICE_ACTION_IN_16 0x9e
#define SCSI_OP_REPORT_LUNS 0xa0
#define SCSI_OP_MAINTENANCE_IN 0xa3
#define SCSI_OP_READ_12 0xa8
#define SCSI_OP_WRITE_12 0xaa

/* Service actions */
#define SCSI_SA_READ_CAPACITY_16 0x10 /* SERVICE ACTION IN(16) */
#define SCSI_SA_REPORT_OPCODES 0x0c   /* MAINTENANCE IN */

/* VPD pages */
#define SCSI_VPD_SUPPORTED 0x00
#define SCSI_VPD_SERIAL 0x80
#define SCSI_VPD_DEVICE_ID 0x83
#define SCSI_VPD_BLOCK_LIMITS 0xb0
#define SCSI_VPD_BLOCK_CHARS 0xb1
#define SCSI_VPD_LB_PROVISIONING 0xb2

/* Mode pages */
#define SCSI_MODE_PAGE_RW_RECOVERY 0x01
#define SCSI_MODE_PAGE_CACHING 0x08
#define SCSI_MODE_PAGE_CONTROL 0x0a
#define SCSI_MODE_PAGE_ALL 0x3f
#define SCSI_MODE_PAGE_MAX 20 /* the longest page (caching), header included */

/* Page control (MODE SENSE byte 2 bits 7-6) */
#define SCSI_PC_CURRENT 0
#define SCSI_PC_CHANGEABLE 1
#define SCSI_PC_DEFAULT 2
#define SCSI_PC_SAVED 3

/* UNMAP block descriptors one command may carry, at most (the geometry may say fewer). */
#define SCSI_UNMAP_MAX_DESCS 256
/* Parameter-list bytes of UNMAP the executor copies (one descriptor more than the most
 * accepted, so a list that is too long is still told apart from a short one). */
#define SCSI_UNMAP_PARAM_MAX (8 + 16 * (SCSI_UNMAP_MAX_DESCS + 1))
/* Parameter-list bytes of MODE SELECT accepted (header, a long block descriptor, every page). */
#define SCSI_MODE_SELECT_MAX 256

enum scsi_dir {
	SCSI_DIR_NONE = 0, /* no data */
	SCSI_DIR_IN,       /* device to initiator (data-in) */
	SCSI_DIR_OUT,      /* initiator to device (data-out) */
};

enum scsi_kind {
	SCSI_K_TEST_UNIT_READY,
	SCSI_K_REQUEST_SENSE,
	SCSI_K_READ,
	SCSI_K_WRITE,
	SCSI_K_INQUIRY,
	SCSI_K_MODE_SELECT,
	SCSI_K_MODE_SENSE,
	SCSI_K_START_STOP,
	SCSI_K_PREVENT_ALLOW,
	SCSI_K_READ_CAPACITY_10,
	SCSI_K_READ_CAPACITY_16,
	SCSI_K_VERIFY,
	SCSI_K_SYNC_CACHE,
	SCSI_K_WRITE_SAME,
	SCSI_K_UNMAP,
	SCSI_K_REPORT_LUNS,
	SCSI_K_REPORT_OPCODES,
};

/**
 * struct scsi_geom - what a logical unit looks like to the parser
 * @block_size: bytes per logical block (power of two, 512..65536)
 * @nblocks: capacity in logical blocks
 * @read_only: writes get DATA PROTECT / WRITE PROTECTED
 * @unmap: logical block provisioning: UNMAP, WRITE SAME's UNMAP bit, VPD B2h
 * @max_xfer_blocks: READ/WRITE/VERIFY(BYTCHK) blocks per command (0: no limit)
 * @max_ws_blocks: WRITE SAME blocks per command (0: no limit)
 * @max_unmap_blocks: blocks per UNMAP command, all descriptors together (0: no limit)
 * @max_unmap_descs: block descriptors per UNMAP, 1..SCSI_UNMAP_MAX_DESCS
 */
struct scsi_geom {
	uint32_t block_size;
	uint64_t nblocks;
	bool read_only;
	bool unmap;
	uint32_t max_xfer_blocks;
	uint32_t max_ws_blocks;
	uint32_t max_unmap_blocks;
	uint32_t max_unmap_descs;
};

/**
 * struct scsi_cmd - a decoded, checked CDB
 * @opcode, @sa: operation code and service action (0 when the opcode has none)
 * @kind: what to do
 * @cdb_len: the CDB's length by its opcode (6, 10, 12, 16)
 * @dir: which way data moves
 * @xfer_len: bytes the command moves at most: the allocation length of a data-in command
 *            (the response may be shorter), the parameter list length, nblocks * block size
 * @lba, @nblocks: the range (READ, WRITE, VERIFY, WRITE SAME, SYNC CACHE; a SYNCHRONIZE CACHE
 *                 of 0 blocks has been turned into "to the end")
 * @fua, @dpo: READ/WRITE flags (DPO is accepted and has no effect)
 * @alloc_len: data-in commands: the allocation length (0 for READ CAPACITY(10): 8 bytes)
 * @param_len: UNMAP, MODE SELECT: the parameter list length
 * @evpd, @page, @subpage: INQUIRY (page: VPD page when evpd), MODE SENSE (page code, subpage)
 * @pc: MODE SENSE page control (SCSI_PC_CURRENT, CHANGEABLE, DEFAULT; SAVED is refused)
 * @dbd, @llbaa: MODE SENSE: no block descriptor; long LBA block descriptor (10-byte only)
 * @ten: MODE SENSE/SELECT(10) rather than (6)
 * @pf, @sp: MODE SELECT page format and save pages (sp is refused)
 * @desc: REQUEST SENSE in descriptor format
 * @unmap, @ndob: WRITE SAME: may unmap; no data-out buffer (the block is zeroes)
 * @bytchk: VERIFY compares the data-out buffer with the medium
 * @immed: SYNCHRONIZE CACHE, START STOP UNIT
 * @select_report: REPORT LUNS
 * @rep_opts, @req_opcode, @req_sa, @rctd: REPORT SUPPORTED OPERATION CODES
 * @start, @loej, @power_cond: START STOP UNIT
 * @prevent: PREVENT ALLOW MEDIUM REMOVAL
 */
struct scsi_cmd {
	uint8_t opcode;
	uint8_t sa;
	enum scsi_kind kind;
	uint8_t cdb_len;
	enum scsi_dir dir;
	uint64_t xfer_len;
	uint64_t lba;
	uint32_t nblocks;
	bool fua, dpo;
	uint32_t alloc_len;
	uint32_t param_len;
	bool evpd;
	uint8_t page, subpage, pc;
	bool dbd, llbaa, ten;
	bool pf, sp;
	bool desc;
	bool unmap, ndob;
	bool bytchk;
	bool immed;
	uint8_t select_report;
	uint8_t rep_opts, req_opcode;
	uint16_t req_sa;
	bool rctd;
	bool start, loej;
	uint8_t power_cond;
	bool prevent;
};

/**
 * scsi_cdb_parse - decode and check one CDB
 * @cdb: the CDB bytes (hostile)
 * @len: how many bytes of @cdb there are (0..SCSI_CDB_MAX; more are not looked at)
 * @g: the logical unit
 * @c: result, valid when true is returned
 * @err: the sense condition, set when false is returned
 *
 * Refusals, in this order: unknown opcode (or UNMAP without provisioning): INVALID COMMAND
 * OPERATION CODE; unknown service action, a CDB shorter than its opcode's group (pointer: the
 * first missing byte), a bit outside the command's usage mask, a bad field value: INVALID FIELD
 * IN CDB with the field pointer; MODE SENSE of saved values: SAVING PARAMETERS NOT SUPPORTED; a
 * write to a read-only unit: DATA PROTECT / WRITE PROTECTED; a range past the capacity:
 * LOGICAL BLOCK ADDRESS OUT OF RANGE.
 */
bool scsi_cdb_parse(const uint8_t *cdb, size_t len, const struct scsi_geom *g,
		    struct scsi_cmd *c, struct scsi_sense_err *err);

/* The CDB length of @opcode's group (6, 10, 12, 16), 0 for the reserved and vendor groups. */
unsigned int scsi_cdb_group_len(uint8_t opcode);

/* "READ(10)", ... for messages; NULL for an opcode (and service action) not in the table. */
const char *scsi_cmd_name(uint8_t opcode, uint8_t sa);

/* One range of an UNMAP parameter list. */
struct scsi_unmap_desc {
	uint64_t lba;
	uint32_t nblocks;
};

/**
 * scsi_unmap_parse - check an UNMAP parameter list (SBC-3 5.28.2)
 * @buf, @len: the data-out bytes received (at most the CDB's parameter list length)
 * @g: limits: capacity, max_unmap_descs, max_unmap_blocks
 * @d: room for g->max_unmap_descs descriptors
 * @n: descriptors stored (those of 0 blocks are dropped)
 *
 * A list of 1..7 bytes, or whose data lengths claim more than was received: PARAMETER LIST
 * LENGTH ERROR. More descriptors than max_unmap_descs, or more blocks in all than
 * max_unmap_blocks: INVALID FIELD IN PARAMETER LIST. A range past the capacity: LBA OUT OF
 * RANGE. An incomplete last descriptor is ignored. Returns false with @err set.
 */
bool scsi_unmap_parse(const uint8_t *buf, size_t len, const struct scsi_geom *g,
		      struct scsi_unmap_desc *d, unsigned int *n, struct scsi_sense_err *err);

/* The mode parameters a logical unit can change (everything else is fixed). */
struct scsi_mode {
	bool wce;     /* caching page: write cache enabled */
	bool d_sense; /* control page: descriptor-format sense data */
};

/**
 * scsi_mode_page - one mode page as MODE SENSE returns it
 * @page: SCSI_MODE_PAGE_RW_RECOVERY, _CACHING or _CONTROL
 * @pc: SCSI_PC_CURRENT (from @cur), _CHANGEABLE (the mask), _DEFAULT (from @def)
 * @buf: room for SCSI_MODE_PAGE_MAX bytes
 *
 * Returns the page's length (header included), 0 for a page we do not have.
 */
size_t scsi_mode_page(uint8_t page, uint8_t pc, const struct scsi_mode *cur,
		      const struct scsi_mode *def, uint8_t *buf);

/**
 * scsi_mode_select_parse - check a MODE SELECT parameter list
 * @buf, @len: the data-out bytes received
 * @c: the MODE SELECT command (ten, pf)
 * @g: the block size the block descriptor must carry
 * @cur: the current parameters
 * @out: the parameters after the command (a copy of @cur changed by the pages)
 *
 * The header, an optional block descriptor (its block length must be ours) and any number of
 * our pages, each of the right length and changing only changeable bits (caching WCE, control
 * D_SENSE). A list shorter than its header or a page cut off: PARAMETER LIST LENGTH ERROR; bad
 * descriptor length, unknown page, wrong page length, a fixed bit changed: INVALID FIELD IN
 * PARAMETER LIST, pointing at it; pages with PF=0: INVALID FIELD IN CDB. An empty list changes
 * nothing. Returns false with @err set (nothing applied).
 */
bool scsi_mode_select_parse(const uint8_t *buf, size_t len, const struct scsi_cmd *c,
			    const struct scsi_geom *g, const struct scsi_mode *cur,
			    struct scsi_mode *out, struct scsi_sense_err *err);

/**
 * scsi_report_opcodes - REPORT SUPPORTED OPERATION CODES parameter data for @c
 * @c: the decoded command (reporting options 0, 1 or 2, already checked)
 * @g: the logical unit (UNMAP is listed only with provisioning)
 * @buf, @cap: where to write; the data is cut to @cap
 *
 * Returns the full length of the data (which may exceed @cap).
 */
size_t scsi_report_opcodes(const struct scsi_cmd *c, const struct scsi_geom *g, uint8_t *buf,
			   size_t cap);

/* Encodes @lun (0..16383) as a SAM single-level LUN: peripheral (< 256) or flat addressing. */
void scsi_lun_encode(uint16_t lun, uint8_t out[8]);

/* Big-endian fields. */
static inline uint16_t scsi_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t scsi_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t scsi_be64(const uint8_t *p)
{
	return (uint64_t)scsi_be32(p) << 32 | scsi_be32(p + 4);
}

static inline void scsi_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void scsi_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void scsi_put_be64(uint8_t *p, uint64_t v)
{
	scsi_put_be32(p, (uint32_t)(v >> 32));
	scsi_put_be32(p + 4, (uint32_t)v);
}

#endif
