/* SPDX-License-Identifier: Apache-2.0 */
/* PCI configuration space (ECAM from the MCFG, else CF8/CFC), enumeration and BARs. */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include "common/spec/pci.h"
#include "lib/sys.h"

#define PCI_BDF(b, d, f)        ((uint16_t)((b) << 8 | (d) << 3 | (f)))
#define PCI_BUS(bdf)            ((bdf) >> 8)
#define PCI_DEV(bdf)            (((bdf) >> 3) & 0x1f)
#define PCI_FN(bdf)             ((bdf) & 7)

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
