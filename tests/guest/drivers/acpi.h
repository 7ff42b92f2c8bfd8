/* SPDX-License-Identifier: Apache-2.0 */
/* ACPI table discovery (RSDP -> XSDT/RSDT) and the few tables the cases read. */
#ifndef GUEST_ACPI_H
#define GUEST_ACPI_H

#include "common/spec/acpi.h"
#include "lib/sys.h"

/* Finds and checks the RSDP (at hint if non-zero, else in the EBDA and 0xe0000-0xfffff). */
int acpi_init(uint64_t rsdp_hint);
/* Where the RSDP was found, and which root table is used ("XSDT"/"RSDT"). */
uint64_t acpi_rsdp_addr(void);
const char *acpi_root_name(void);
/* The idx-th table with this signature whose checksum is valid, or NULL. */
const struct acpi_header *acpi_find(const char *sig, unsigned idx);

#define ACPI_MAX_CPUS 64
/* Enabled processors in the MADT (LAPIC and x2APIC entries): count, and their APIC IDs. */
int acpi_madt_cpus(uint32_t *apic_ids, unsigned max);
/* The MADT's LAPIC address, or 0. */
uint64_t acpi_madt_lapic(void);
/* ECAM of PCI segment 0 from the MCFG: false when there is no MCFG. */
bool acpi_mcfg(uint64_t *base, uint8_t *bus_start, uint8_t *bus_end);
/* The FADT's PM timer port and width (24 or 32 bits): false when absent. */
bool acpi_pm_timer(uint16_t *port, unsigned *bits);

#endif
