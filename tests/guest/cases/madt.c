/* SPDX-License-Identifier: Apache-2.0 */
/* madt: count the enabled CPUs in the ACPI MADT; with cpus=N on the command line, expect N. */
#include "cases/cases.h"
#include "drivers/acpi.h"

int case_madt(void)
{
	uint32_t ids[ACPI_MAX_CPUS];
	int64_t want = opt_u64("cpus", 0);
	char line[160];
	int n, len;

	if (want < 0)
		return case_fail("%s", err_get());
	if (!acpi_rsdp_addr())
		return case_fail("no ACPI tables (no valid RSDP)");
	n = acpi_madt_cpus(ids, ARRAY_SIZE(ids));
	if (n < 0)
		return case_fail("%s", err_get());
	len = snprintf(line, sizeof(line), "  RSDP at %#lx (%s), MADT LAPIC %#lx: %d CPUs, APIC IDs",
		       acpi_rsdp_addr(), acpi_root_name(), acpi_madt_lapic(), n);
	for (int i = 0; i < n && i < (int)ARRAY_SIZE(ids) && len < (int)sizeof(line) - 12; i++)
		len += snprintf(line + len, sizeof(line) - len, " %u", ids[i]);
	printf("%s\n", line);
	if (n == 0)
		return case_fail("the MADT lists no enabled CPU");
	if (want && n != want)
		return case_fail("the MADT lists %d CPUs, expected cpus=%ld", n, want);
	return CASE_OK;
}
