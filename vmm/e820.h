/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest's physical memory map as firmware would report it (BIOS e820 types), built from the
 * guest RAM regions and layout.h. Both boot protocols hand it to the guest: Linux's zero page
 * (e820_table) and PVH's hvm_start_info memmap use the same types.
 */
#ifndef VIREO_VMM_E820_H
#define VIREO_VMM_E820_H

#include <stdint.h>

#include "vmm/gmem.h"

enum e820_type {
	E820_RAM = 1,
	E820_RESERVED = 2,
	E820_ACPI = 3, /* ACPI tables (reclaimable once read) */
};

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* Upper bound of entries e820_build() produces. */
#define E820_MAX 8

/*
 * Fills map (E820_MAX entries) with the memory map of m, sorted by address, without overlaps:
 *   [0, LAYOUT_LOW_RAM_END)                   RAM
 *   [LAYOUT_LOW_RAM_END, LAYOUT_ACPI_BASE)    reserved (EBDA, legacy ROM area)
 *   [LAYOUT_ACPI_BASE, +LAYOUT_ACPI_SIZE)     ACPI tables
 *   [LAYOUT_HIGH_RAM_START, end of region 0)  RAM
 *   [LAYOUT_PCI_ECAM_BASE, +SIZE)             reserved (Linux uses MMCONFIG only if reserved)
 *   region 1 (at 4 GiB), if any               RAM
 * RAM entries are clipped to the RAM that exists. Returns the number of entries.
 */
unsigned int e820_build(const struct gmem *m, struct e820_entry *map);

#endif
