/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the virtio-scsi cases (scsi-luns, scsi-rw, scsi-bad, scsi-tmf) share: finding the
 * controller, CDBs, sense data, unit attentions. Every LUN is on target scsi-target (0).
 *
 * Options: scsi-require=1 (fail, not skip, without a controller), scsi-index=N (the N-th
 * controller), scsi-target=T (0), scsi-luns=N (LUNs expected, 0..N-1 unless REPORT LUNS says
 * others), scsi-size-mib=N (each LUN's size), scsi-ro=LUN (a read-only LUN), scsi-direct=LUN
 * (the cache=none LUN scsi-tmf keeps busy), scsi-peer=qemu (QEMU's scsi-hd: vendor "QEMU", and
 * its known deviations, which the cases name).
 */
#ifndef GUEST_SCSI_UTIL_H
#define GUEST_SCSI_UTIL_H

#include "cases/cases.h"
#include "drivers/virtio_scsi.h"

#define SCSI_BLOCK              512     /* the block size the cases expect */
#define SCSI_MAX_LUNS           8       /* LUNs the cases look at */
#define SCSI_NO_LUN             0xffff

/* CDB opcodes */
#define OP_TEST_UNIT_READY      0x00
#define OP_REQUEST_SENSE        0x03
#define OP_INQUIRY              0x12
#define OP_READ_CAPACITY_10     0x25
#define OP_READ_10              0x28
#define OP_WRITE_10             0x2a
#define OP_VERIFY_10            0x2f
#define OP_SYNC_CACHE_10        0x35
#define OP_UNMAP                0x42
#define OP_MODE_SELECT_10       0x55
#define OP_MODE_SENSE_10        0x5a
#define OP_READ_16              0x88
#define OP_WRITE_16             0x8a
#define OP_VERIFY_16            0x8f
#define OP_SYNC_CACHE_16        0x91
#define OP_SERVICE_IN_16        0x9e    /* READ CAPACITY(16): service action 0x10 */
#define OP_REPORT_LUNS          0xa0

/* SCSI status, sense keys, ASC << 8 | ASCQ */
#define ST_GOOD                 0x00
#define ST_CHECK_CONDITION      0x02
#define KEY_NO_SENSE            0x0
#define KEY_ILLEGAL_REQUEST     0x5
#define KEY_UNIT_ATTENTION      0x6
#define KEY_DATA_PROTECT        0x7
#define KEY_MISCOMPARE          0xe
#define ASC_INVALID_OPCODE      0x2000
#define ASC_LBA_OUT_OF_RANGE    0x2100
#define ASC_INVALID_FIELD_CDB   0x2400
#define ASC_LUN_NOT_SUPPORTED   0x2500
#define ASC_WRITE_PROTECTED     0x2700
#define ASC_POWER_ON_RESET      0x2900
#define ASC_MISCOMPARE_VERIFY   0x1d00

/* Sense data read back (either format). */
struct sense {
	uint8_t code;           /* response code: 0x70/0x71 fixed, 0x72/0x73 descriptor */
	uint8_t key;
	uint16_t asc;
	bool sksv, cd, bpv;     /* the sense-key-specific field pointer */
	uint8_t bit;
	uint16_t field;
};

/* The options above; opened by scsi_open. */
struct scsi_env {
	unsigned target;
	unsigned nluns;                 /* scsi-luns (0: not given) */
	uint64_t size;                  /* scsi-size-mib in bytes (0: not given) */
	unsigned ro_lun, direct_lun;    /* SCSI_NO_LUN: not given */
	bool peer_qemu;                 /* scsi-peer=qemu */
	const char *vendor;             /* INQUIRY vendor: "VIREO   ", or "QEMU    " */
};

/*
 * Finds the virtio-scsi controller (1af4:1048 or transitional 1af4:1004) and brings it up;
 * prints its geometry when verbose. Returns a case result.
 */
int scsi_open(struct scsi *s, struct scsi_env *env, const struct scsi_cfg *cfg, bool verbose);

/* CDB builders: each returns its length. */
unsigned cdb_rw10(uint8_t *cdb, uint8_t op, uint32_t lba, uint16_t blocks, uint8_t flags);
unsigned cdb_rw16(uint8_t *cdb, uint8_t op, uint64_t lba, uint32_t blocks, uint8_t flags);
unsigned cdb_simple(uint8_t *cdb, uint8_t op);  /* a 6- or 10-byte CDB with only the opcode */
unsigned cdb_inquiry(uint8_t *cdb, bool evpd, uint8_t page, uint16_t alloc);
unsigned cdb_read_capacity16(uint8_t *cdb, uint32_t alloc);
unsigned cdb_report_luns(uint8_t *cdb, uint32_t alloc);
unsigned cdb_request_sense(uint8_t *cdb, bool desc, uint8_t alloc);

/* Reads back sense data of either format; false when it is too short or of no known format. */
bool sense_parse(const uint8_t *b, uint32_t len, struct sense *s);
/* "key 5 asc 24/00 field 6 bit 7 (desc)" into buf */
const char *sense_str(const struct sense *s, char *buf, size_t n);

/*
 * Whether r completed as VIRTIO_SCSI_S_OK with status GOOD; otherwise false with a message in
 * why (what, response, status, sense).
 */
bool scsi_good(const struct scsi_req *r, const char *what, char *why, size_t n);
/*
 * Whether r ended in CHECK CONDITION with the sense key and ASC given (asc ~0u: any) and a
 * parseable sense in *sn; otherwise false with a message.
 */
bool scsi_check(const struct scsi_req *r, const char *what, uint8_t key, unsigned asc,
		struct sense *sn, char *why, size_t n);
/*
 * TEST UNIT READY until GOOD, taking at most one unit attention on the way (reported in *ua as
 * its ASC, 0 for none). false with a message otherwise.
 */
bool scsi_clear_ua(struct scsi *s, unsigned q, unsigned target, unsigned lun, uint16_t *ua,
		   char *why, size_t n);
/* A pattern unique to (lun, lba, seed) over blocks * SCSI_BLOCK bytes (blk_fill's idea). */
void scsi_fill(void *buf, unsigned lun, uint64_t lba, unsigned blocks, uint64_t seed);
bool scsi_all_zero(const void *buf, size_t len);
/* Big-endian helpers */
static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}
static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

#endif
