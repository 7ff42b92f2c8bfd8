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

/* Builds the map of a guest with ram bytes: n entries, want[] among them from index first on. */
static void check_map(uint64_t ram, unsigned int n, unsigned int first,
		      const struct e820_entry *want, size_t nwant)
{
	struct e820_entry map[E820_MAX];
	struct gmem m;

	assert_int_equal(gmem_init(&m, ram, false), 0);
	assert_int_equal(e820_build(&m, map), n);
	for (size_t i = 0; i < nwant; i++) {
		assert_int_equal(map[first + i].addr, want[i].addr);
		assert_int_equal(map[first + i].size, want[i].size);
		assert_int_equal(map[first + i].type, want[i].type);
	}
	gmem_destroy(&m);
}

static void e820_128m_has_low_ram_legacy_hole_acpi_high_ram_and_ecam(void **state)
{
	static const struct e820_entry want[] = {
		{ 0, 0x9fc00, E820_RAM },
		{ 0x9fc00, 0xe0000 - 0x9fc00, E820_RESERVED },
		{ 0xe0000, 0x20000, E820_ACPI },
		{ 0x100000, 127 * MiB, E820_RAM },
		{ 0xe0000000, 0x10000000, E820_RESERVED },
	};

	check_map(128 * MiB, 5, 0, want, ARRAY_SIZE(want));
}

static void e820_5g_splits_ram_around_the_32bit_hole(void **state)
{
	static const struct e820_entry want[] = {
		{ 0x100000, 3 * GiB - MiB, E820_RAM },
		{ 0xe0000000, 0x10000000, E820_RESERVED },
		{ 4 * GiB, 2 * GiB, E820_RAM },
	};

	check_map(5 * GiB, 6, 3, want, ARRAY_SIZE(want));
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
