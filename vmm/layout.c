/* SPDX-License-Identifier: Apache-2.0 */
/* layout.h's addresses and ports, in the shape the devices take them. */
#include "vmm/layout.h"

#include "devices/acpi_pm.h"
#include "devices/pci.h"

const struct pci_bus_layout layout_pci_bus = {
	.mmio32_base = LAYOUT_PCI_MMIO32_BASE,
	.mmio32_size = LAYOUT_PCI_MMIO32_SIZE,
	.ecam_base = LAYOUT_PCI_ECAM_BASE,
	.ecam_buses = LAYOUT_PCI_ECAM_BUSES,
	.cf8_port = LAYOUT_PORT_PCI_CFG,
};

const struct acpi_pm_ports layout_acpi_pm_ports = {
	.pm1a_evt = LAYOUT_PORT_PM1A_EVT,
	.pm1a_cnt = LAYOUT_PORT_PM1A_CNT,
	.pm_tmr = LAYOUT_PORT_PM_TMR,
	.gpe0 = LAYOUT_PORT_GPE0,
	.i8042 = LAYOUT_PORT_I8042,
};
