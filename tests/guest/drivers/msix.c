/* SPDX-License-Identifier: Apache-2.0 */
/* PCI MSI-X: capability, table and the messages the local APIC takes (msix.h). */
#include "drivers/msix.h"
#include "lib/lib.h"

#define MSIX_CTRL               2       /* message control */
#define  MSIX_CTRL_SIZE         0x07ff  /* table size - 1 */
#define  MSIX_CTRL_MASKALL      0x4000
#define  MSIX_CTRL_ENABLE       0x8000
#define MSIX_TABLE              4       /* table offset | BIR */
#define MSIX_ENTRY_SIZE         16
#define ENTRY_ADDR_LO           0
#define ENTRY_ADDR_HI           4
#define ENTRY_DATA              8
#define ENTRY_CTRL              12
#define  ENTRY_CTRL_MASKED      1

/* Interrupt message address of the local APICs (Intel SDM vol. 3 §11.11.1) */
#define APIC_MSG_ADDR           0xfee00000u

int msix_init(struct msix *m, const struct pci_dev *d)
{
	uint32_t tab;
	struct pci_bar bar;
	unsigned int cap = pci_find_cap(d->bdf, PCI_CAP_ID_MSIX, 0);

	*m = (struct msix){ .bdf = d->bdf }; /* cap and table stay 0 until both are checked */
	if (!cap) {
		err_set("%02x:%02x.%x has no MSI-X capability", PCI_BUS(d->bdf), PCI_DEV(d->bdf),
			PCI_FN(d->bdf));
		return -1;
	}
	m->size = (pci_read16(d->bdf, cap + MSIX_CTRL) & MSIX_CTRL_SIZE) + 1;
	tab = pci_read32(d->bdf, cap + MSIX_TABLE);
	if ((tab & 7) > 5) {
		err_set("MSI-X table in reserved BAR indicator %u", tab & 7);
		return -1;
	}
	if (pci_bar(d, tab & 7, &bar) < 0)
		return -1;
	if ((tab & ~7u) + (uint64_t)m->size * MSIX_ENTRY_SIZE > bar.size) {
		err_set("MSI-X table of %u entries at %#x exceeds BAR %u (%#lx bytes)", m->size,
			tab & ~7u, tab & 7, bar.size);
		return -1;
	}
	m->cap = cap;
	m->table = bar.addr + (tab & ~7u);
	return 0;
}

static void set_ctrl(struct msix *m, uint16_t clear, uint16_t set)
{
	uint16_t c = pci_read16(m->bdf, m->cap + MSIX_CTRL);

	pci_write16(m->bdf, m->cap + MSIX_CTRL, (c & ~clear) | set);
}

void msix_enable_masked(struct msix *m)
{
	set_ctrl(m, 0, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	for (unsigned i = 0; i < m->size; i++)
		mmio_write32(m->table + i * MSIX_ENTRY_SIZE + ENTRY_CTRL, ENTRY_CTRL_MASKED);
}

void msix_unmask_function(struct msix *m)
{
	set_ctrl(m, MSIX_CTRL_MASKALL, 0);
}

void msix_disable(struct msix *m)
{
	set_ctrl(m, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL, 0);
}

void msix_set(struct msix *m, unsigned i, uint32_t apic_id, uint8_t vector)
{
	uint64_t e = m->table + i * MSIX_ENTRY_SIZE;

	mmio_write32(e + ENTRY_CTRL, ENTRY_CTRL_MASKED);
	mmio_write32(e + ENTRY_ADDR_LO, APIC_MSG_ADDR | (apic_id & 0xff) << 12);
	mmio_write32(e + ENTRY_ADDR_HI, 0);
	mmio_write32(e + ENTRY_DATA, vector);   /* fixed delivery, edge */
	mmio_write32(e + ENTRY_CTRL, 0);
}
