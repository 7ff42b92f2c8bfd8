/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pci: enumerate configuration space through ECAM (MCFG) or CF8/CFC, print every function, check
 * that 00:00.0 is a host bridge, and when both mechanisms exist check that they agree.
 */
#include "cases/cases.h"
#include "drivers/pci.h"

static uint32_t cf8_read32(uint16_t bdf, unsigned off)
{
	outl(0xcf8, 0x80000000u | (uint32_t)bdf << 8 | off);
	return inl(0xcfc);
}

int case_pci(void)
{
	struct pci_dev devs[64];
	int n;

	if (pci_init() < 0)
		return case_fail("%s", err_get());
	printf("  config access: %s\n", pci_method());
	n = pci_scan(devs, ARRAY_SIZE(devs));
	for (int i = 0; i < n && i < (int)ARRAY_SIZE(devs); i++)
		printf("  %02x:%02x.%x %04x:%04x class %06x%s\n", PCI_BUS(devs[i].bdf),
		       PCI_DEV(devs[i].bdf), PCI_FN(devs[i].bdf), devs[i].vendor, devs[i].device,
		       devs[i].class, devs[i].header_type == 1 ? " (bridge)" : "");
	if (n == 0)
		return case_fail("no PCI function found");
	if (devs[0].bdf != 0)
		return case_fail("no function at 00:00.0");
	if (devs[0].class >> 8 != 0x0600)
		return case_fail("00:00.0 has class %06x, not a host bridge (0600xx)", devs[0].class);
	if (strncmp(pci_method(), "ECAM", 4) == 0) {
		uint32_t e = pci_read32(0, PCI_VENDOR_ID), c = cf8_read32(0, PCI_VENDOR_ID);

		if (e != c)
			return case_fail("00:00.0 ID reads %08x through ECAM but %08x through CF8", e,
					 c);
	}
	return CASE_OK;
}
