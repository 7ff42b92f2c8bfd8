/* SPDX-License-Identifier: Apache-2.0 */
/* PCI configuration space (ECAM from the MCFG, else CF8/CFC), enumeration and BARs. */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include "lib/sys.h"

#define PCI_BDF(b, d, f)        ((uint16_t)((b) << 8 | (d) << 3 | (f)))
#define PCI_BUS(bdf)            ((bdf) >> 8)
#define PCI_DEV(bdf)            (((bdf) >> 3) & 0x1f)
#define PCI_FN(bdf)             ((bdf) & 7)

#define PCI_VENDOR_ID           0x00
#define PCI_DEVICE_ID           0x02
#define PCI_COMMAND             0x04
#define  PCI_COMMAND_IO         0x1
#define  PCI_COMMAND_MEMORY     0x2
#define  PCI_COMMAND_MASTER     0x4
#define PCI_STATUS              0x06
#define  PCI_STATUS_CAP_LIST    0x10
#define PCI_CLASS_REVISION      0x08
#define PCI_HEADER_TYPE         0x0e
#define PCI_BAR0                0x10
#define PCI_SECONDARY_BUS       0x19
#define PCI_SUBSYSTEM_ID        0x2e
#define PCI_CAP_PTR             0x34

struct pci_dev {
	uint16_t bdf;
	uint16_t vendor, device;
	uint32_t class;         /* class << 16 | subclass << 8 | prog-if */
	uint8_t header_type;    /* without the multi-function bit */
};

struct pci_bar {
	uint64_t addr;
	uint64_t size;
	bool io, is64, prefetch;
};

/* Chooses the access method: ECAM when the MCFG describes segment 0, else CF8/CFC. */
int pci_init(void);
/* "ECAM at 0x..., buses 0-255" or "CF8/CFC". */
const char *pci_method(void);

uint32_t pci_read32(uint16_t bdf, unsigned off);
uint16_t pci_read16(uint16_t bdf, unsigned off);
uint8_t pci_read8(uint16_t bdf, unsigned off);
void pci_write32(uint16_t bdf, unsigned off, uint32_t v);
void pci_write16(uint16_t bdf, unsigned off, uint16_t v);
void pci_write8(uint16_t bdf, unsigned off, uint8_t v);

/* Functions present on bus 0 and behind bridges; returns how many (may exceed max). */
int pci_scan(struct pci_dev *devs, int max);
/* Finds the idx-th function with this vendor and one of the device IDs (0-terminated list). */
bool pci_find(uint16_t vendor, const uint16_t *devices, unsigned idx, struct pci_dev *out);
/*
 * Reads BAR i of a type-0 function (sizing it with the decoders off); assigns an unassigned memory
 * BAR from the free 32-bit MMIO window. Returns -1 with err_set() on failure.
 */
int pci_bar(const struct pci_dev *d, unsigned i, struct pci_bar *bar);
/* Offset of the next capability with this ID after 'from' (0: first), or 0. */
unsigned pci_find_cap(uint16_t bdf, uint8_t id, unsigned from);

#endif
