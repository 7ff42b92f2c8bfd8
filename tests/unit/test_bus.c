/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/bus.h"

struct reg {
	uint64_t last_off;
	uint64_t value;
};

static void reg_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct reg *r = opaque;

	r->last_off = off;
	bus_put(data, len, r->value);
}

static void reg_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct reg *r = opaque;

	r->last_off = off;
	r->value = bus_get(data, len);
}

static const struct bus_ops reg_ops = { reg_read, reg_write };

static void bus_dispatches_relative_offsets(void **state)
{
	struct bus b;
	struct reg a = { 0 }, c = { 0 };
	uint32_t v = 0x12345678;
	uint16_t r16;

	bus_init(&b, "mmio");
	assert_int_equal(bus_add(&b, 0x1000, 0x100, &reg_ops, &a, "a", NULL), 0);
	assert_int_equal(bus_add(&b, 0x3000, 0x10, &reg_ops, &c, "c", NULL), 0);
	assert_true(bus_write(&b, 0x1010, &v, 4));
	assert_int_equal(a.last_off, 0x10);
	assert_int_equal(a.value, 0x12345678);
	assert_true(bus_read(&b, 0x300e, &r16, 2));
	assert_int_equal(c.last_off, 0xe);
	bus_destroy(&b);
}

static void bus_unclaimed_reads_all_ones_and_straddles_miss(void **state)
{
	struct bus b;
	struct reg a = { .value = 0 };
	uint32_t v = 0;

	bus_init(&b, "pio");
	assert_int_equal(bus_add(&b, 0x10, 4, &reg_ops, &a, "a", NULL), 0);
	assert_false(bus_read(&b, 0x20, &v, 4));
	assert_int_equal(v, 0xffffffff);
	/* an access that runs past the region's end is not the region's */
	assert_false(bus_read(&b, 0x12, &v, 4));
	bus_destroy(&b);
}

static void bus_refuses_overlap_and_removes(void **state)
{
	struct bus b;
	struct reg a, c;
	struct error *err = NULL;
	uint8_t x;

	bus_init(&b, "mmio");
	assert_int_equal(bus_add(&b, 0x1000, 0x1000, &reg_ops, &a, "first", NULL), 0);
	assert_int_equal(bus_add(&b, 0x1800, 0x1000, &reg_ops, &c, "second", &err), -1);
	assert_non_null(strstr(error_msg(err), "first"));
	error_free(err);
	assert_int_equal(bus_add(&b, 0x0, 0x1000, &reg_ops, &c, "below", NULL), 0);
	assert_int_equal(bus_remove(&b, 0x1000, &a), 0);
	assert_false(bus_read(&b, 0x1000, &x, 1));
	assert_int_equal(bus_remove(&b, 0x1000, &a), -ENOENT);
	bus_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bus_dispatches_relative_offsets),
		cmocka_unit_test(bus_unclaimed_reads_all_ones_and_straddles_miss),
		cmocka_unit_test(bus_refuses_overlap_and_removes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
