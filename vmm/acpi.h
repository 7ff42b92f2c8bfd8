/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACPI tables of a vireo microVM, written once into guest memory before the first vCPU runs:
 * RSDP (at LAYOUT_ACPI_BASE, so the legacy 0xe0000..0xfffff scan also finds it), RSDT, XSDT, FADT
 * (full, not hardware-reduced: the PM registers of devices/acpi_pm.h), FACS, DSDT, MADT and MCFG.
 * Every address and port comes from vmm/layout.h.
 *
 * The guest sees:
 *   - one CPU per vCPU, APIC ID = ACPI processor UID = vCPU index (xAPIC entries below 255,
 *     x2APIC entries above), one IOAPIC (GSI 0..23), ISA IRQ 0 on GSI 2, the SCI on GSI
 *     LAYOUT_IRQ_SCI level-triggered active-high;
 *   - a PCIe host bridge \_SB.PCI0 (ECAM through MCFG, reserved by a PNP0C02 device), with bridge
 *     windows for I/O 0x1000..0xffff, the 32-bit MMIO window and, if configured, a 64-bit window,
 *     and legacy INTx routed to IOAPIC pins as acpi_pci_intx_gsi() says;
 *   - COM1 (PNP0501) at LAYOUT_PORT_COM1 / LAYOUT_IRQ_COM1;
 *   - poweroff through \_S5 (SLP_TYP ACPI_SLP_TYP_S5, common/spec/acpi.h), a fixed-feature
 *     power button, reset through the FADT reset register (LAYOUT_PORT_RESET, value
 *     ACPI_RESET_VALUE);
 *   - no 8042, VGA or CMOS RTC (FADT IAPC_BOOT_ARCH), no SMM (SMI_CMD 0: always in ACPI mode).
 */
#ifndef VIREO_VMM_ACPI_H
#define VIREO_VMM_ACPI_H

#include <stdint.h>

#include "common/error.h"
#include "vmm/gmem.h"

#define ACPI_RESET_VALUE  0x06 /* FADT RESET_VALUE written to LAYOUT_PORT_RESET */
#define ACPI_MAX_VCPUS    1024 /* what the tables are sized for */

struct acpi_config {
	unsigned int nr_vcpus; /* 1 .. ACPI_MAX_VCPUS */
	/*
	 * The 64-bit PCI MMIO window, or size 0 for none. By layout.h it starts after high RAM,
	 * 1 GiB aligned: ALIGN_UP(MAX(gmem_end(mem), LAYOUT_4G), GiB), size LAYOUT_PCI_MMIO64_SIZE.
	 */
	uint64_t mmio64_base;
	uint64_t mmio64_size;
};

/*
 * Builds all tables into guest memory at LAYOUT_ACPI_BASE and stores the RSDP's address (for
 * hvm_start_info.rsdp_paddr / boot_params.acpi_rsdp_addr) in *rsdp_gpa. Returns 0, or -1 with
 * *errp set (bad configuration, tables too big, that guest range not RAM).
 */
int acpi_build(struct gmem *mem, const struct acpi_config *cfg, uint64_t *rsdp_gpa,
	       struct error **errp);

/*
 * The IOAPIC pin (GSI) that the DSDT's _PRT routes PCI bus 0 device `slot`'s INTx `pin` to
 * (pin 0 = INTA .. 3 = INTD): the eight PCI pins 16..23, swizzled. The guest programs these
 * level-triggered, active-low; a device asserts its line with vm_irq_line(vm, gsi, 1).
 */
static inline uint32_t acpi_pci_intx_gsi(unsigned int slot, unsigned int pin)
{
	return 16 + ((slot + pin) % 8);
}

#endif
