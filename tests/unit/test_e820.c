/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/util.h"
#include "vmm/e820.h"
#include "vmm/layout.h"

static void check_entry(const struct e820_entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
	assert_int_equal(e->addr, addr);
	assert_int_equal(e->size, size);
	assert_int_equal(e->type, type);
}

static void e820_128m_has_low_ram_legacy_hole_acpi_high_ram_and_ecam(void **state)
{
	struct e820_entry map[E820_MAX];
	struct gmem m;
	unsigned int n;

	assert_int_equal(gmem_init(&m, 128 * MiB, false), 0);
	n = e820_build(&m, map);
	assert_int_equal(n, 5);
	check_entry(&map[0], 0, 0x9fc00, E820_RAM);
	check_entry(&map[1], 0x9fc00, 0xe0000 - 0x9fc00, E820_RESERVED);
	check_entry(&map[2], 0xe0000, 0x20000, E820_ACPI);
	check_entry(&map[3], 0x100000, 127 * MiB, E820_RAM);
	check_entry(&map[4], 0xe0000000, 0x10000000, E820_RESERVED);
	gmem_destroy(&m);
}

static void e820_5g_splits_ram_around_the_32bit_hole(void **state)
{
	struct e820_entry map[E820_MAX];
	struct gmem m;
	unsigned int n;

	assert_int_equal(gmem_init(&m, 5 * GiB, false), 0);
	n = e820_build(&m, map);
	assert_int_equal(n, 6);
	check_entry(&map[3], 0x100000, 3 * GiB - MiB, E820_RAM);
	check_entry(&map[4], 0xe0000000, 0x10000000, E820_RESERVED);
	check_entry(&map[5], 4 * GiB, 2 * GiB, E820_RAM);
	gmem_destroy(&m);
}

/* Sorted, disjoint, and the RAM entries add up to all of RAM but the legacy hole. */
static void e820_is_sorted_disjoint_and_counts_all_ram(void **state)
{
	static const uint64_t sizes[] = { MiB, 2 * MiB, 128 * MiB, 3 * GiB, 3 * GiB + 4096,
					  8 * GiB };

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		struct e820_entry map[E820_MAX];
		uint64_t ram = 0;
		struct gmem m;
		unsigned int n;

		assert_int_equal(gmem_init(&m, sizes[i], false), 0);
		n = e820_build(&m, map);
		assert_true(n <= E820_MAX);
		for (unsigned int j = 0; j < n; j++) {
			assert_true(map[j].size > 0);
			if (j)
				assert_true(map[j - 1].addr + map[j - 1].size <= map[j].addr);
			if (map[j].type == E820_RAM) {
				assert_non_null(gmem_ptr(&m, map[j].addr, map[j].size));
				ram += map[j].size;
			}
		}
		assert_int_equal(ram, sizes[i] - (LAYOUT_HIGH_RAM_START - LAYOUT_LOW_RAM_END));
		gmem_destroy(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(e820_128m_has_low_ram_legacy_hole_acpi_high_ram_and_ecam),
		cmocka_unit_test(e820_5g_splits_ram_around_the_32bit_hole),
		cmocka_unit_test(e820_is_sorted_disjoint_and_counts_all_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
