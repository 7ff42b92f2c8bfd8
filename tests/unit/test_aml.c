/* SPDX-License-Identifier: Apache-2.0 */
/* AML encodings checked against byte sequences worked out from the ACPI 6.5 specification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/aml.h"

static void expect(struct aml *a, const uint8_t *want, size_t len)
{
	assert_null(a->err);
	assert_int_equal(a->len, len);
	assert_memory_equal(a->buf, want, len);
	aml_free(a);
}

static void expect_namestring(const char *name, const uint8_t *want, size_t len)
{
	struct aml a;

	aml_init(&a);
	aml_namestring(&a, name);
	expect(&a, want, len);
}

static void aml_namestring_encodes_root_dual_and_padded_segments(void **state)
{
	static const uint8_t dual[] = { '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0' };
	static const uint8_t padded[] = { '_', 'S', '5', '_' };
	static const uint8_t multi[] = { 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_',
					 'C', '_', '_', '_' };

	expect_namestring("\\_SB.PCI0", dual, sizeof(dual));
	expect_namestring("_S5", padded, sizeof(padded));
	expect_namestring("A.B.C", multi, sizeof(multi));
}

static void aml_namestring_refuses_bad_names(void **state)
{
	static const char *const bad[] = { "", "TOOLONG", "1ABC", "a", "A..B", "A.", "\\" };
	struct aml a;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a);
		aml_namestring(&a, bad[i]);
		assert_non_null(a.err);
		aml_int(&a, 5); /* errors are sticky: nothing more is appended */
		assert_int_equal(a.len, 0);
		aml_free(&a);
	}
}

static void aml_int_picks_the_shortest_encoding(void **state)
{
	static const uint8_t want[] = { 0x00, 0x01, 0xff, 0x0a, 0x05, 0x0b, 0x00, 0x01,
					0x0c, 0x00, 0x00, 0x01, 0x00,
					0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00 };
	struct aml a;

	aml_init(&a);
	aml_int(&a, 0);
	aml_int(&a, 1);
	aml_int(&a, UINT64_MAX);
	aml_int(&a, 5);
	aml_int(&a, 0x100);
	aml_int(&a, 0x10000);
	aml_int(&a, 0x100000000ULL);
	expect(&a, want, sizeof(want));
}

static void aml_eisaid_matches_asl(void **state)
{
	/* ASL EisaId("PNP0A08") == 0x080AD041 */
	static const uint8_t want[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x08 };
	struct aml a;

	aml_init(&a);
	aml_eisaid(&a, "PNP0A08");
	expect(&a, want, sizeof(want));
	aml_init(&a);
	aml_eisaid(&a, "pnp0a08");
	assert_non_null(a.err);
	aml_free(&a);
}

/* Builds a Package of n Zero elements into a (aml_free() it). */
static void zero_package(struct aml *a, int n)
{
	size_t m;

	aml_init(a);
	m = aml_package(a, n);
	for (int i = 0; i < n; i++)
		aml_int(a, 0);
	aml_end(a, m);
	assert_null(a->err);
}

/* A package whose PkgLength needs one byte below 64 and two bytes from there on. */
static void aml_end_inserts_one_and_two_byte_pkglength(void **state)
{
	struct aml a;

	zero_package(&a, 61); /* NumElements + 61 = 62 body bytes, +1 = 63: one byte */
	assert_int_equal(a.len, 1 + 1 + 62);
	assert_int_equal(a.buf[0], 0x12);
	assert_int_equal(a.buf[1], 63);
	assert_int_equal(a.buf[2], 61);
	aml_free(&a);

	zero_package(&a, 62); /* 63 body bytes + 2 = 65 = 0x41: 0x41 & 0xf | 1 << 6, 0x41 >> 4 */
	assert_int_equal(a.len, 1 + 2 + 63);
	assert_int_equal(a.buf[1], 0x41);
	assert_int_equal(a.buf[2], 0x04);
	assert_int_equal(a.buf[3], 62);
	aml_free(&a);
}

static void aml_buffer_wraps_a_resource_template(void **state)
{
	/* Buffer(){IRQNoFlags(){4}, EndTag}: 11 08 0A 05 22 10 00 79 00 */
	static const uint8_t want[] = { 0x11, 0x08, 0x0a, 0x05, 0x22, 0x10, 0x00, 0x79, 0x00 };
	struct aml a, r;

	aml_init(&a);
	aml_init(&r);
	aml_res_irq(&r, 1u << 4);
	aml_res_end(&r);
	aml_buffer(&a, &r);
	aml_free(&r);
	expect(&a, want, sizeof(want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(aml_namestring_encodes_root_dual_and_padded_segments),
		cmocka_unit_test(aml_namestring_refuses_bad_names),
		cmocka_unit_test(aml_int_picks_the_shortest_encoding),
		cmocka_unit_test(aml_eisaid_matches_asl),
		cmocka_unit_test(aml_end_inserts_one_and_two_byte_pkglength),
		cmocka_unit_test(aml_buffer_wraps_a_resource_template),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
