/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACPI 6.5 table header and RSDP (sections 5.2.5, 5.2.6), little-endian packed wire format, as
 * vmm/acpi.c writes them and the test guest reads them. Definitions only.
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

#endif
