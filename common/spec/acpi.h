/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACPI 6.5 table header and RSDP (sections 5.2.5, 5.2.6), little-endian packed wire format, as
 * vmm/acpi.c writes them and the test guest reads them; the fixed-hardware PM1 register bits
 * (4.8.4) that devices/acpi_pm.c decodes. Definitions only.
 */
#ifndef VIREO_COMMON_SPEC_ACPI_H
#define VIREO_COMMON_SPEC_ACPI_H

#include <stdint.h>

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_header) == 36, "ACPI header size");

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* over the first 20 bytes */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* over all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP size");

/* PM1 status / enable bits (4.8.4.1) */
#define ACPI_PM1_TMR          (1u << 0)
#define ACPI_PM1_BM           (1u << 4)
#define ACPI_PM1_GBL          (1u << 5)
#define ACPI_PM1_PWRBTN       (1u << 8)
#define ACPI_PM1_SLPBTN       (1u << 9)
#define ACPI_PM1_RTC          (1u << 10)
#define ACPI_PM1_PCIEXP_WAKE  (1u << 14)
#define ACPI_PM1_WAK          (1u << 15)
/* PM1 control bits (4.8.4.2) */
#define ACPI_PM1_SCI_EN       (1u << 0)
#define ACPI_PM1_BM_RLD       (1u << 1)
#define ACPI_PM1_GBL_RLS      (1u << 2)
#define ACPI_PM1_SLP_TYP_SHIFT 10
#define ACPI_PM1_SLP_TYP_MASK (7u << ACPI_PM1_SLP_TYP_SHIFT)
#define ACPI_PM1_SLP_EN       (1u << 13)

#define ACPI_PM_TIMER_HZ      3579545ULL /* the PM timer's frequency (4.8.3.3) */

/*
 * The SLP_TYP value that vireo's \_S5 object declares (the value is the platform's choice): the
 * DSDT (vmm/acpi.c) and the PM1 control register (devices/acpi_pm.c) agree on it through here.
 */
#define ACPI_SLP_TYP_S5       5

#endif
