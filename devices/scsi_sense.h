/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SCSI sense data (SPC-4 4.5): what went wrong with a command, as a sense key, an additional
 * sense code and qualifier (ASC/ASCQ), and optionally where (the sense-key-specific field
 * pointer into the CDB or the parameter list) or which block (the INFORMATION field). Built in
 * the fixed (response code 70h) or the descriptor format (72h), as the initiator asked (the
 * DESC bit of REQUEST SENSE, the D_SENSE bit of the control mode page). Pure code.
 */
#ifndef VIREO_DEVICES_SCSI_SENSE_H
#define VIREO_DEVICES_SCSI_SENSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes (SAM-5) */
#define SCSI_STATUS_GOOD 0x00
#define SCSI_STATUS_CHECK_CONDITION 0x02
#define SCSI_STATUS_BUSY 0x08
#define SCSI_STATUS_TASK_SET_FULL 0x28

/* Sense keys */
#define SCSI_KEY_NO_SENSE 0x0
#define SCSI_KEY_NOT_READY 0x2
#define SCSI_KEY_MEDIUM_ERROR 0x3
#define SCSI_KEY_HARDWARE_ERROR 0x4
#define SCSI_KEY_ILLEGAL_REQUEST 0x5
#define SCSI_KEY_UNIT_ATTENTION 0x6
#define SCSI_KEY_DATA_PROTECT 0x7
#define SCSI_KEY_ABORTED_COMMAND 0xb
#define SCSI_KEY_MISCOMPARE 0xe

/* Additional sense codes and qualifiers, as (ASC << 8 | ASCQ) */
#define SCSI_ASC_NO_ADDITIONAL 0x0000
#define SCSI_ASC_WRITE_ERROR 0x0c00
#define SCSI_ASC_UNRECOVERED_READ 0x1100
#define SCSI_ASC_PARAM_LIST_LENGTH 0x1a00
#define SCSI_ASC_MISCOMPARE_VERIFY 0x1d00
#define SCSI_ASC_INVALID_OPCODE 0x2000
#define SCSI_ASC_LBA_OUT_OF_RANGE 0x2100
#define SCSI_ASC_INVALID_FIELD_CDB 0x2400
#define SCSI_ASC_LUN_NOT_SUPPORTED 0x2500
#define SCSI_ASC_INVALID_FIELD_PARAM 0x2600
#define SCSI_ASC_WRITE_PROTECTED 0x2700
#define SCSI_ASC_SPACE_ALLOC_FAILED 0x2707
#define SCSI_ASC_POWER_ON_RESET 0x2900
#define SCSI_ASC_MODE_PARAMS_CHANGED 0x2a01
#define SCSI_ASC_CAPACITY_CHANGED 0x2a09
#define SCSI_ASC_SAVING_NOT_SUPPORTED 0x3900
#define SCSI_ASC_INTERNAL_FAILURE 0x4400

/* Largest sense data scsi_sense_build writes (descriptor format with both descriptors) */
#define SCSI_SENSE_MAX 32
/* Fixed format length (additional sense length 10) */
#define SCSI_SENSE_FIXED_LEN 18

/**
 * struct scsi_sense_err - one sense condition, before it is encoded
 * @key: SCSI_KEY_*
 * @asc: SCSI_ASC_* (ASC in the high byte, ASCQ in the low byte)
 * @sksv: the sense-key-specific field pointer is valid (@cd, @field, @bpv, @bit)
 * @cd: the pointer is into the CDB (1) or the parameter list (0)
 * @bpv: @bit is valid
 * @bit: the bit (0..7) of byte @field, the most significant bit of the bad field
 * @field: the byte of the bad field
 * @info_valid: @info holds the INFORMATION field (e.g. the first miscompared byte)
 * @info: the INFORMATION field
 */
struct scsi_sense_err {
	uint8_t key;
	uint16_t asc;
	bool sksv, cd, bpv;
	uint8_t bit;
	uint16_t field;
	bool info_valid;
	uint64_t info;
};

/* A condition with no sense-key-specific data. */
static inline struct scsi_sense_err scsi_sense(uint8_t key, uint16_t asc)
{
	return (struct scsi_sense_err){ .key = key, .asc = asc };
}

/* ILLEGAL REQUEST, INVALID FIELD IN CDB, pointing at bit @bit of CDB byte @byte (@bit < 0: no bit). */
struct scsi_sense_err scsi_sense_cdb_field(uint16_t byte, int bit);
/* ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST, pointing into the parameter list. */
struct scsi_sense_err scsi_sense_param_field(uint16_t byte, int bit);

/**
 * scsi_sense_build - encode @e
 * @buf: where to write (may be NULL when @cap is 0)
 * @cap: room in @buf; the sense data is cut to it (never written past)
 * @desc: descriptor format (72h) rather than fixed (70h)
 * @e: the condition
 *
 * Fixed: 18 bytes, the INFORMATION field when it fits 32 bits (VALID bit), the field pointer in
 * bytes 15-17. Descriptor: 8 bytes of header, then an information descriptor (12 bytes) and a
 * sense-key-specific descriptor (8 bytes) when they apply. Returns the bytes written, i.e.
 * MIN(@cap, the full length).
 */
size_t scsi_sense_build(uint8_t *buf, size_t cap, bool desc, const struct scsi_sense_err *e);

/* The full length scsi_sense_build would give @e with unlimited room. */
size_t scsi_sense_len(bool desc, const struct scsi_sense_err *e);

/**
 * scsi_sense_parse - read back the key, ASC/ASCQ and field pointer of encoded sense data
 *
 * For tests and messages: accepts both formats (70h/71h, 72h/73h), ignores what is cut off.
 * Returns false when @len is too short for the key and ASC, or the response code is unknown.
 */
bool scsi_sense_parse(const uint8_t *buf, size_t len, struct scsi_sense_err *e);

/* "INVALID FIELD IN CDB", ... for messages; "?" for codes this layer never builds. */
const char *scsi_asc_name(uint16_t asc);
const char *scsi_key_name(uint8_t key);

#endif
