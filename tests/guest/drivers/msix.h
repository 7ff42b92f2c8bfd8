/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PCI MSI-X (PCI Local Bus 3.0 §6.8.2): the capability, the vector table in a memory BAR, and
 * fixed-delivery messages to one local APIC (physical destination mode, edge).
 */
#ifndef GUEST_MSIX_H
#define GUEST_MSIX_H

#include "drivers/pci.h"

struct msix {
	uint16_t bdf;
	unsigned cap;           /* config-space offset of the capability, 0: none */
	unsigned size;          /* table entries */
	uint64_t table;         /* MMIO address of entry 0 */
};

/*
 * Finds the MSI-X capability of d and maps its table BAR (assigning it if nobody did); leaves
 * MSI-X disabled. Returns -1 with err_set() when there is none or the table is unreachable.
 */
int msix_init(struct msix *m, const struct pci_dev *d);
/*
 * Enables MSI-X with the function mask set and every entry masked: nothing is delivered until
 * msix_set() unmasks entries and msix_unmask_function() lifts the function mask.
 */
void msix_enable_masked(struct msix *m);
void msix_unmask_function(struct msix *m);
void msix_disable(struct msix *m);
/*
 * Points entry i at vector 'vector' of the local APIC 'apic_id' and unmasks it (masked while it
 * is rewritten, so the device never sends half an update).
 */
void msix_set(struct msix *m, unsigned i, uint32_t apic_id, uint8_t vector);

#endif
