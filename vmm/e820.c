/* SPDX-License-Identifier: Apache-2.0 */
#include "vmm/e820.h"

#include "common/util.h"
#include "vmm/layout.h"

_Static_assert(LAYOUT_ACPI_BASE + LAYOUT_ACPI_SIZE == LAYOUT_HIGH_RAM_START,
	       "the ACPI window is expected to end the legacy hole below 1 MiB");

static unsigned int add(struct e820_entry *map, unsigned int n, uint64_t addr, uint64_t end,
			uint32_t type)
{
	if (end <= addr)
		return n;
	map[n] = (struct e820_entry){ .addr = addr, .size = end - addr, .type = type };
	return n + 1;
}

unsigned int e820_build(const struct gmem *m, struct e820_entry *map)
{
	uint64_t low_end = m->nr_regions ? m->regions[0].gpa + m->regions[0].size : 0;
	unsigned int n = 0;

	n = add(map, n, 0, MIN(low_end, LAYOUT_LOW_RAM_END), E820_RAM);
	n = add(map, n, LAYOUT_LOW_RAM_END, LAYOUT_ACPI_BASE, E820_RESERVED);
	n = add(map, n, LAYOUT_ACPI_BASE, LAYOUT_ACPI_BASE + LAYOUT_ACPI_SIZE, E820_ACPI);
	n = add(map, n, LAYOUT_HIGH_RAM_START, low_end, E820_RAM);
	n = add(map, n, LAYOUT_PCI_ECAM_BASE, LAYOUT_PCI_ECAM_BASE + LAYOUT_PCI_ECAM_SIZE,
		E820_RESERVED);
	for (unsigned int i = 1; i < m->nr_regions; i++) {
		const struct gmem_region *r = &m->regions[i];

		n = add(map, n, r->gpa, r->gpa + r->size, E820_RAM);
	}
	return n;
}
