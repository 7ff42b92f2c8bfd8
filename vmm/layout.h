/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest physical address map and port map of a vireo microVM. Every component that places
 * something in the guest takes its address from here, so that ACPI tables, e820, the PCI host bridge
 * and the boot code agree.
 *
 *   0x0000_0000 .. 0x0009_fc00   low RAM (usable)
 *   0x0000_6000                  PVH hvm_start_info + memmap (boot.c)
 *   0x0000_7000                  Linux boot_params, "zero page" (boot.c)
 *   0x0000_9000                  boot GDT, 0x0000_a000.. boot page tables (64-bit boot protocol)
 *   0x0002_0000                  kernel command line (up to 64 KiB)
 *   0x0009_fc00 .. 0x0010_0000   reserved (EBDA, legacy ROM area); ACPI tables at 0x000e_0000
 *   0x0010_0000 .. RAM_LOW_END   RAM (kernel loaded at 1 MiB)
 *   0xc000_0000 .. 0xe000_0000   32-bit PCI MMIO window (BARs)
 *   0xe000_0000 .. 0xf000_0000   PCI ECAM (bus 0 .. 255 reserved, we decode bus 0 only)
 *   0xfec0_0000                  IOAPIC
 *   0xfee0_0000                  LAPIC / MSI
 *   4 GiB ..                     RAM above 3 GiB, if any
 *   after high RAM, 1 GiB aligned: 64-bit PCI MMIO window
 */
#ifndef VIREO_VMM_LAYOUT_H
#define VIREO_VMM_LAYOUT_H

#define LAYOUT_LOW_RAM_END      0x0009fc00ULL
#define LAYOUT_PVH_INFO         0x00006000ULL
#define LAYOUT_ZERO_PAGE        0x00007000ULL
#define LAYOUT_BOOT_GDT         0x00009000ULL
#define LAYOUT_BOOT_PML4        0x0000a000ULL /* PML4 @a000, PDPT @b000, 4 PDs @c000..f000 */
#define LAYOUT_CMDLINE          0x00020000ULL
#define LAYOUT_CMDLINE_MAX      0x00010000ULL
#define LAYOUT_ACPI_BASE        0x000e0000ULL
#define LAYOUT_ACPI_SIZE        0x00020000ULL
#define LAYOUT_HIGH_RAM_START   0x00100000ULL
#define LAYOUT_KERNEL_LOAD      0x00100000ULL

#define LAYOUT_MEM32_HOLE       0xc0000000ULL /* RAM below 4 GiB ends here at most */
#define LAYOUT_PCI_MMIO32_BASE  0xc0000000ULL
#define LAYOUT_PCI_MMIO32_SIZE  0x20000000ULL
#define LAYOUT_PCI_ECAM_BASE    0xe0000000ULL
#define LAYOUT_PCI_ECAM_SIZE    0x10000000ULL /* 256 buses x 1 MiB */
#define LAYOUT_PCI_ECAM_BUSES   1             /* buses decoded (MCFG end bus = this - 1) */
#define LAYOUT_IOAPIC_BASE      0xfec00000ULL
#define LAYOUT_LAPIC_BASE       0xfee00000ULL
#define LAYOUT_4G               0x100000000ULL
#define LAYOUT_PCI_MMIO64_SIZE  0x1000000000ULL /* 64 GiB */

/* I/O ports */
#define LAYOUT_PORT_DEBUG_EXIT  0x00f4 /* QEMU isa-debug-exit compatible: status = (v << 1) | 1 */
#define LAYOUT_PORT_COM1        0x03f8
#define LAYOUT_PORT_PCI_CFG     0x0cf8 /* CF8 address, CFC..CFF data */
#define LAYOUT_PORT_RESET       0x0cf9 /* write 0x06/0x0e: reset (FADT RESET_REG) */
#define LAYOUT_PORT_I8042       0x0064 /* write 0xfe: reset */
#define LAYOUT_PORT_PM1A_EVT    0x0600 /* PM1a event block, 4 bytes (status, enable) */
#define LAYOUT_PORT_PM1A_CNT    0x0604 /* PM1a control block, 2 bytes */
#define LAYOUT_PORT_PM_TMR      0x0608 /* PM timer, 4 bytes */
#define LAYOUT_PORT_GPE0        0x0620 /* GPE0 block, 4 bytes */

/* Interrupts */
#define LAYOUT_IRQ_COM1         4
#define LAYOUT_IRQ_SCI          9
#define LAYOUT_IOAPIC_PINS      24
#define LAYOUT_GSI_MSI_BASE     24 /* first GSI handed out for MSI routes */

/* The same places as the devices take them (layout.c): pci_bus_init() and acpi_pm_init() */
extern const struct pci_bus_layout layout_pci_bus;
extern const struct acpi_pm_ports layout_acpi_pm_ports;

#endif
