/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SCSI sense data in the fixed and descriptor formats (SPC-4 4.5.2, 4.5.3). The data is built
 * whole in a local buffer and then cut to the caller's room, so no length check is spread over
 * the encoders.
 */
#include "devices/scsi_sense.h"

#include <string.h>

#include "common/util.h"

struct scsi_sense_err scsi_sense_cdb_field(uint16_t byte, int bit)
{
	return (struct scsi_sense_err){ .key = SCSI_KEY_ILLEGAL_REQUEST,
					.asc = SCSI_ASC_INVALID_FIELD_CDB, .sksv = true,
					.cd = true, .bpv = bit >= 0, .bit = bit >= 0 ? bit & 7 : 0,
					.field = byte };
}

struct scsi_sense_err scsi_sense_param_field(uint16_t byte, int bit)
{
	return (struct scsi_sense_err){ .key = SCSI_KEY_ILLEGAL_REQUEST,
					.asc = SCSI_ASC_INVALID_FIELD_PARAM, .sksv = true,
					.cd = false, .bpv = bit >= 0,
					.bit = bit >= 0 ? bit & 7 : 0, .field = byte };
}

/* The first byte of the field pointer's three bytes (SKSV, C/D, BPV, BIT POINTER). */
static uint8_t sks_byte(const struct scsi_sense_err *e)
{
	return (uint8_t)(0x80 | (e->cd ? 0x40 : 0) | (e->bpv ? 0x08 : 0) | (e->bit & 7));
}

static size_t build_fixed(uint8_t *s, const struct scsi_sense_err *e)
{
	memset(s, 0, SCSI_SENSE_FIXED_LEN);
	s[0] = 0x70;
	s[2] = e->key & 0x0f;
	if (e->info_valid && e->info <= UINT32_MAX) {
		s[0] |= 0x80; /* VALID: the INFORMATION field is meaningful */
		s[3] = (uint8_t)(e->info >> 24);
		s[4] = (uint8_t)(e->info >> 16);
		s[5] = (uint8_t)(e->info >> 8);
		s[6] = (uint8_t)e->info;
	}
	s[7] = SCSI_SENSE_FIXED_LEN - 8;
	s[12] = (uint8_t)(e->asc >> 8);
	s[13] = (uint8_t)e->asc;
	if (e->sksv) {
		s[15] = sks_byte(e);
		s[16] = (uint8_t)(e->field >> 8);
		s[17] = (uint8_t)e->field;
	}
	return SCSI_SENSE_FIXED_LEN;
}

static size_t build_desc(uint8_t *s, const struct scsi_sense_err *e)
{
	size_t n = 8;

	memset(s, 0, SCSI_SENSE_MAX);
	s[0] = 0x72;
	s[1] = e->key & 0x0f;
	s[2] = (uint8_t)(e->asc >> 8);
	s[3] = (uint8_t)e->asc;
	if (e->info_valid) { /* information descriptor, type 00h */
		s[n] = 0x00;
		s[n + 1] = 0x0a;
		s[n + 2] = 0x80; /* VALID */
		for (int i = 0; i < 8; i++)
			s[n + 4 + i] = (uint8_t)(e->info >> (56 - 8 * i));
		n += 12;
	}
	if (e->sksv) { /* sense key specific descriptor, type 02h */
		s[n] = 0x02;
		s[n + 1] = 0x06;
		s[n + 4] = sks_byte(e);
		s[n + 5] = (uint8_t)(e->field >> 8);
		s[n + 6] = (uint8_t)e->field;
		n += 8;
	}
	s[7] = (uint8_t)(n - 8);
	return n;
}

size_t scsi_sense_len(bool desc, const struct scsi_sense_err *e)
{
	if (!desc)
		return SCSI_SENSE_FIXED_LEN;
	return 8 + (e->info_valid ? 12 : 0) + (e->sksv ? 8 : 0);
}

size_t scsi_sense_build(uint8_t *buf, size_t cap, bool desc, const struct scsi_sense_err *e)
{
	uint8_t s[SCSI_SENSE_MAX];
	size_t n = desc ? build_desc(s, e) : build_fixed(s, e);

	n = MIN(n, cap);
	if (n)
		memcpy(buf, s, n);
	return n;
}

static void parse_sks(const uint8_t *p, struct scsi_sense_err *e)
{
	if (!(p[0] & 0x80))
		return;
	e->sksv = true;
	e->cd = p[0] & 0x40;
	e->bpv = p[0] & 0x08;
	e->bit = p[0] & 7;
	e->field = (uint16_t)(p[1] << 8 | p[2]);
}

static void parse_desc_list(const uint8_t *buf, size_t len, struct scsi_sense_err *e)
{
	size_t end = MIN(len, (size_t)8 + buf[7]);

	for (size_t off = 8; off + 2 <= end; off += 2 + (size_t)buf[off + 1]) {
		const uint8_t *d = buf + off;

		if (off + 2 + d[1] > end)
			break;
		if (d[0] == 0x00 && d[1] >= 0x0a) {
			e->info_valid = d[2] & 0x80;
			e->info = 0;
			for (int i = 0; i < 8; i++)
				e->info = e->info << 8 | d[4 + i];
		} else if (d[0] == 0x02 && d[1] >= 0x06) {
			parse_sks(d + 4, e);
		}
	}
}

bool scsi_sense_parse(const uint8_t *buf, size_t len, struct scsi_sense_err *e)
{
	memset(e, 0, sizeof(*e));
	if (len < 1)
		return false;
	switch (buf[0] & 0x7f) {
	case 0x70:
	case 0x71:
		if (len < 14)
			return false;
		e->key = buf[2] & 0x0f;
		e->asc = (uint16_t)(buf[12] << 8 | buf[13]);
		if (buf[0] & 0x80) {
			e->info_valid = true;
			e->info = (uint32_t)buf[3] << 24 | buf[4] << 16 | buf[5] << 8 | buf[6];
		}
		if (len >= 18)
			parse_sks(buf + 15, e);
		return true;
	case 0x72:
	case 0x73:
		if (len < 8)
			return false;
		e->key = buf[1] & 0x0f;
		e->asc = (uint16_t)(buf[2] << 8 | buf[3]);
		parse_desc_list(buf, len, e);
		return true;
	default:
		return false;
	}
}

const char *scsi_asc_name(uint16_t asc)
{
	static const struct {
		uint16_t asc;
		const char *name;
	} names[] = {
		{ SCSI_ASC_NO_ADDITIONAL, "NO ADDITIONAL SENSE INFORMATION" },
		{ SCSI_ASC_WRITE_ERROR, "WRITE ERROR" },
		{ SCSI_ASC_UNRECOVERED_READ, "UNRECOVERED READ ERROR" },
		{ SCSI_ASC_PARAM_LIST_LENGTH, "PARAMETER LIST LENGTH ERROR" },
		{ SCSI_ASC_MISCOMPARE_VERIFY, "MISCOMPARE DURING VERIFY OPERATION" },
		{ SCSI_ASC_INVALID_OPCODE, "INVALID COMMAND OPERATION CODE" },
		{ SCSI_ASC_LBA_OUT_OF_RANGE, "LOGICAL BLOCK ADDRESS OUT OF RANGE" },
		{ SCSI_ASC_INVALID_FIELD_CDB, "INVALID FIELD IN CDB" },
		{ SCSI_ASC_LUN_NOT_SUPPORTED, "LOGICAL UNIT NOT SUPPORTED" },
		{ SCSI_ASC_INVALID_FIELD_PARAM, "INVALID FIELD IN PARAMETER LIST" },
		{ SCSI_ASC_WRITE_PROTECTED, "WRITE PROTECTED" },
		{ SCSI_ASC_SPACE_ALLOC_FAILED, "SPACE ALLOCATION FAILED WRITE PROTECT" },
		{ SCSI_ASC_POWER_ON_RESET, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED" },
		{ SCSI_ASC_MODE_PARAMS_CHANGED, "MODE PARAMETERS CHANGED" },
		{ SCSI_ASC_CAPACITY_CHANGED, "CAPACITY DATA HAS CHANGED" },
		{ SCSI_ASC_SAVING_NOT_SUPPORTED, "SAVING PARAMETERS NOT SUPPORTED" },
		{ SCSI_ASC_INTERNAL_FAILURE, "INTERNAL TARGET FAILURE" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].asc == asc)
			return names[i].name;
	return "?";
}

const char *scsi_key_name(uint8_t key)
{
	static const char *const names[16] = {
		[SCSI_KEY_NO_SENSE] = "NO SENSE",
		[0x1] = "RECOVERED ERROR",
		[SCSI_KEY_NOT_READY] = "NOT READY",
		[SCSI_KEY_MEDIUM_ERROR] = "MEDIUM ERROR",
		[SCSI_KEY_HARDWARE_ERROR] = "HARDWARE ERROR",
		[SCSI_KEY_ILLEGAL_REQUEST] = "ILLEGAL REQUEST",
		[SCSI_KEY_UNIT_ATTENTION] = "UNIT ATTENTION",
		[SCSI_KEY_DATA_PROTECT] = "DATA PROTECT",
		[SCSI_KEY_ABORTED_COMMAND] = "ABORTED COMMAND",
		[SCSI_KEY_MISCOMPARE] = "MISCOMPARE",
	};

	return key < 16 && names[key] ? names[key] : "?";
}
