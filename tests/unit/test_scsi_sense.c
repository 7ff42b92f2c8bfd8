/* SPDX-License-Identifier: Apache-2.0 */
/* SCSI sense data: fixed and descriptor formats, field pointers, cut to the room given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/scsi_sense.h"

static void fixed_format_layout(void **state)
{
	struct scsi_sense_err e = scsi_sense_cdb_field(7, 3);
	uint8_t s[SCSI_SENSE_MAX];

	memset(s, 0xaa, sizeof(s));
	assert_int_equal(scsi_sense_build(s, sizeof(s), false, &e), 18);
	assert_int_equal(s[0], 0x70); /* current error, INFORMATION not valid */
	assert_int_equal(s[1], 0);
	assert_int_equal(s[2], SCSI_KEY_ILLEGAL_REQUEST);
	assert_int_equal(s[7], 10); /* additional sense length */
	assert_int_equal(s[12], 0x24);
	assert_int_equal(s[13], 0x00);
	assert_int_equal(s[15], 0x80 | 0x40 | 0x08 | 3); /* SKSV, C/D, BPV, bit 3 */
	assert_int_equal(s[16], 0);
	assert_int_equal(s[17], 7);
	assert_int_equal(s[18], 0xaa); /* nothing past the data */
	assert_int_equal(scsi_sense_len(false, &e), 18);

	/* a parameter-list field without a bit pointer */
	e = scsi_sense_param_field(0x123, -1);
	scsi_sense_build(s, sizeof(s), false, &e);
	assert_int_equal(s[12], 0x26);
	assert_int_equal(s[15], 0x80);
	assert_int_equal(s[16], 0x01);
	assert_int_equal(s[17], 0x23);

	/* no sense-key-specific data */
	e = scsi_sense(SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_CAPACITY_CHANGED);
	scsi_sense_build(s, sizeof(s), false, &e);
	assert_int_equal(s[2], 6);
	assert_int_equal(s[12], 0x2a);
	assert_int_equal(s[13], 0x09);
	assert_int_equal(s[15], 0);
}

static void fixed_format_information(void **state)
{
	struct scsi_sense_err e = scsi_sense(SCSI_KEY_MISCOMPARE, SCSI_ASC_MISCOMPARE_VERIFY);
	uint8_t s[SCSI_SENSE_MAX];

	e.info_valid = true;
	e.info = 0x01020304;
	scsi_sense_build(s, sizeof(s), false, &e);
	assert_int_equal(s[0], 0xf0); /* VALID */
	assert_int_equal(s[3], 1);
	assert_int_equal(s[6], 4);
	/* does not fit 32 bits: VALID stays clear */
	e.info = 0x100000000ull;
	scsi_sense_build(s, sizeof(s), false, &e);
	assert_int_equal(s[0], 0x70);
	assert_int_equal(s[3] | s[4] | s[5] | s[6], 0);
}

static void descriptor_format_layout(void **state)
{
	struct scsi_sense_err e = scsi_sense_cdb_field(2, 7);
	uint8_t s[SCSI_SENSE_MAX];

	memset(s, 0xaa, sizeof(s));
	assert_int_equal(scsi_sense_build(s, sizeof(s), true, &e), 16);
	assert_int_equal(s[0], 0x72);
	assert_int_equal(s[1], SCSI_KEY_ILLEGAL_REQUEST);
	assert_int_equal(s[2], 0x24);
	assert_int_equal(s[3], 0x00);
	assert_int_equal(s[7], 8);
	/* sense key specific descriptor */
	assert_int_equal(s[8], 0x02);
	assert_int_equal(s[9], 0x06);
	assert_int_equal(s[12], 0x80 | 0x40 | 0x08 | 7);
	assert_int_equal(s[13], 0);
	assert_int_equal(s[14], 2);
	assert_int_equal(s[16], 0xaa);

	/* information descriptor (64 bits) before it */
	e = scsi_sense(SCSI_KEY_MISCOMPARE, SCSI_ASC_MISCOMPARE_VERIFY);
	e.info_valid = true;
	e.info = 0x1122334455667788ull;
	assert_int_equal(scsi_sense_build(s, sizeof(s), true, &e), 20);
	assert_int_equal(s[7], 12);
	assert_int_equal(s[8], 0x00);
	assert_int_equal(s[9], 0x0a);
	assert_int_equal(s[10], 0x80);
	assert_int_equal(s[12], 0x11);
	assert_int_equal(s[19], 0x88);

	/* nothing but the header */
	e = scsi_sense(SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_POWER_ON_RESET);
	assert_int_equal(scsi_sense_build(s, sizeof(s), true, &e), 8);
	assert_int_equal(s[7], 0);
	assert_int_equal(scsi_sense_len(true, &e), 8);
}

/* Every room from 0 to past the full length: exactly MIN(room, full) bytes, a prefix. */
static void cut_to_every_size(void **state)
{
	struct scsi_sense_err e = scsi_sense_cdb_field(9, 2);

	e.info_valid = true;
	e.info = 42;
	for (int desc = 0; desc < 2; desc++) {
		uint8_t full[SCSI_SENSE_MAX];
		size_t n = scsi_sense_build(full, sizeof(full), desc, &e);

		assert_int_equal(n, scsi_sense_len(desc, &e));
		for (size_t cap = 0; cap <= n + 2; cap++) {
			uint8_t s[SCSI_SENSE_MAX + 4];
			size_t got;

			memset(s, 0x5a, sizeof(s));
			got = scsi_sense_build(s, cap, desc, &e);
			assert_int_equal(got, cap < n ? cap : n);
			assert_memory_equal(s, full, got);
			for (size_t i = got; i < sizeof(s); i++)
				assert_int_equal(s[i], 0x5a);
		}
	}
	assert_int_equal(scsi_sense_build(NULL, 0, false, &e), 0);
}

static void parse_round_trip(void **state)
{
	struct scsi_sense_err e = scsi_sense_param_field(300, 6), back;
	uint8_t s[SCSI_SENSE_MAX];

	e.info_valid = true;
	e.info = 77;
	for (int desc = 0; desc < 2; desc++) {
		size_t n = scsi_sense_build(s, sizeof(s), desc, &e);

		assert_true(scsi_sense_parse(s, n, &back));
		assert_int_equal(back.key, e.key);
		assert_int_equal(back.asc, e.asc);
		assert_true(back.sksv);
		assert_false(back.cd);
		assert_true(back.bpv);
		assert_int_equal(back.bit, 6);
		assert_int_equal(back.field, 300);
		assert_true(back.info_valid);
		assert_int_equal(back.info, 77);
	}
	assert_false(scsi_sense_parse(s, 0, &back));
	s[0] = 0x71; /* deferred, fixed */
	assert_false(scsi_sense_parse(s, 13, &back));
	s[0] = 0x05;
	assert_false(scsi_sense_parse(s, sizeof(s), &back));
	/* a descriptor list whose length runs past the data */
	scsi_sense_build(s, sizeof(s), true, &e);
	s[7] = 200;
	assert_true(scsi_sense_parse(s, 20, &back));
	assert_int_equal(back.asc, e.asc);
}

static void names(void **state)
{
	assert_string_equal(scsi_asc_name(SCSI_ASC_INVALID_FIELD_CDB), "INVALID FIELD IN CDB");
	assert_string_equal(scsi_asc_name(0x7777), "?");
	assert_string_equal(scsi_key_name(SCSI_KEY_DATA_PROTECT), "DATA PROTECT");
	assert_string_equal(scsi_key_name(0x0f), "?");
	assert_string_equal(scsi_key_name(0xff), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fixed_format_layout),
		cmocka_unit_test(fixed_format_information),
		cmocka_unit_test(descriptor_format_layout),
		cmocka_unit_test(cut_to_every_size),
		cmocka_unit_test(parse_round_trip),
		cmocka_unit_test(names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
