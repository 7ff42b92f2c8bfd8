/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-pci modern transport: capability discovery and the common configuration structure. */
#include "drivers/virtio_pci.h"
#include "lib/lib.h"

#define NO_VECTOR               VIRTIO_MSI_NO_VECTOR

static int map_cap(struct virtio_pci *v, unsigned cap, uint64_t *addr, uint32_t *len)
{
	uint16_t bdf = v->pci.bdf;
	uint8_t bar = pci_read8(bdf, cap + 4);
	uint32_t off = pci_read32(bdf, cap + 8), length = pci_read32(bdf, cap + 12);
	struct pci_bar b;

	if (bar > 5 || pci_bar(&v->pci, bar, &b) < 0)
		return -1;
	if ((uint64_t)off + length > b.size) {
		err_set("virtio capability at %#x: [%#x, +%#x) exceeds BAR %u (%#lx bytes)", cap, off,
			length, bar, b.size);
		return -1;
	}
	*addr = b.addr + off;
	if (len)
		*len = length;
	return 0;
}

int virtio_pci_init(struct virtio_pci *v, const struct pci_dev *d)
{
	uint16_t bdf = d->bdf;
	unsigned cap = 0;

	*v = (struct virtio_pci){ .pci = *d };
	while ((cap = pci_find_cap(bdf, PCI_CAP_ID_VNDR, cap))) {
		uint8_t type = pci_read8(bdf, cap + 3);
		int r = 0;

		if (type == VIRTIO_PCI_CAP_COMMON_CFG && !v->common)
			r = map_cap(v, cap, &v->common, NULL);
		else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG && !v->notify) {
			r = map_cap(v, cap, &v->notify, NULL);
			v->notify_mult = pci_read32(bdf, cap + 16);
		} else if (type == VIRTIO_PCI_CAP_ISR_CFG && !v->isr)
			r = map_cap(v, cap, &v->isr, NULL);
		else if (type == VIRTIO_PCI_CAP_DEVICE_CFG && !v->device)
			r = map_cap(v, cap, &v->device, &v->device_len);
		if (r < 0)
			return -1;
	}
	if (!v->common || !v->notify || !v->device) {
		err_set("%02x:%02x.%x lacks a modern virtio capability (common %s, notify %s, device %s)",
			PCI_BUS(bdf), PCI_DEV(bdf), PCI_FN(bdf), v->common ? "ok" : "missing",
			v->notify ? "ok" : "missing", v->device ? "ok" : "missing");
		return -1;
	}
	pci_write16(bdf, PCI_COMMAND, pci_read16(bdf, PCI_COMMAND) | PCI_COMMAND_MEMORY |
		    PCI_COMMAND_MASTER);
	virtio_pci_reset(v);
	virtio_pci_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_pci_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_DFSELECT, 0);
	v->features = mmio_read32(v->common + VIRTIO_PCI_COMMON_DF);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_DFSELECT, 1);
	v->features |= (uint64_t)mmio_read32(v->common + VIRTIO_PCI_COMMON_DF) << 32;
	mmio_write16(v->common + VIRTIO_PCI_COMMON_MSIX, NO_VECTOR);
	return 0;
}

bool virtio_pci_reset(struct virtio_pci *v)
{
	uint64_t end;

	mmio_write8(v->common + VIRTIO_PCI_COMMON_STATUS, 0);
	end = time_ns() + 1000000000;
	while (mmio_read8(v->common + VIRTIO_PCI_COMMON_STATUS) != 0) {
		if (time_ns() > end)
			return false;
		cpu_relax();
	}
	return true;
}

uint16_t virtio_pci_queue_enabled(struct virtio_pci *v, uint16_t q)
{
	mmio_write16(v->common + VIRTIO_PCI_COMMON_Q_SELECT, q);
	return mmio_read16(v->common + VIRTIO_PCI_COMMON_Q_ENABLE);
}

void virtio_pci_set_status(struct virtio_pci *v, uint8_t status)
{
	mmio_write8(v->common + VIRTIO_PCI_COMMON_STATUS, status);
}

uint8_t virtio_pci_status(struct virtio_pci *v)
{
	return mmio_read8(v->common + VIRTIO_PCI_COMMON_STATUS);
}

int virtio_pci_set_features(struct virtio_pci *v, uint64_t features)
{
	uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	mmio_write32(v->common + VIRTIO_PCI_COMMON_GFSELECT, 0);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_GF, features);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_GFSELECT, 1);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_GF, features >> 32);
	virtio_pci_set_status(v, s | VIRTIO_STATUS_FEATURES_OK);
	if (!(virtio_pci_status(v) & VIRTIO_STATUS_FEATURES_OK)) {
		err_set("the device refused features %#lx (status %#x)", features,
			virtio_pci_status(v));
		return -1;
	}
	return 0;
}

uint16_t virtio_pci_num_queues(struct virtio_pci *v)
{
	return mmio_read16(v->common + VIRTIO_PCI_COMMON_NUMQ);
}

uint64_t virtio_pci_setup_queue(struct virtio_pci *v, uint16_t q, uint16_t *size, uint64_t desc,
				uint64_t avail, uint64_t used, uint16_t vector)
{
	uint16_t max, noff, got;

	mmio_write16(v->common + VIRTIO_PCI_COMMON_Q_SELECT, q);
	max = mmio_read16(v->common + VIRTIO_PCI_COMMON_Q_SIZE);
	if (max == 0) {
		err_set("queue %u is not available (size 0)", q);
		return 0;
	}
	if (max < *size)
		*size = max;
	mmio_write16(v->common + VIRTIO_PCI_COMMON_Q_SIZE, *size);
	mmio_write16(v->common + VIRTIO_PCI_COMMON_Q_MSIX, vector);
	if (vector != NO_VECTOR && (got = mmio_read16(v->common + VIRTIO_PCI_COMMON_Q_MSIX)) != vector) {
		err_set("queue %u: the device refused MSI-X vector %u (queue_msix_vector reads %#x)",
			q, vector, got);
		return 0;
	}
	mmio_write32(v->common + VIRTIO_PCI_COMMON_Q_DESCLO, desc);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_Q_DESCLO + 4, desc >> 32);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_Q_AVAILLO, avail);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_Q_AVAILLO + 4, avail >> 32);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_Q_USEDLO, used);
	mmio_write32(v->common + VIRTIO_PCI_COMMON_Q_USEDLO + 4, used >> 32);
	noff = mmio_read16(v->common + VIRTIO_PCI_COMMON_Q_NOFF);
	mmio_write16(v->common + VIRTIO_PCI_COMMON_Q_ENABLE, 1);
	return v->notify + (uint64_t)noff * v->notify_mult;
}

int virtio_pci_msix_enable(struct virtio_pci *v, unsigned n, uint32_t apic_id, uint8_t vec_base)
{
	if (msix_init(&v->msix, &v->pci) < 0)
		return -1;
	if (v->msix.size < n) {
		err_set("the MSI-X table has %u entries, %u queues need as many", v->msix.size, n);
		v->msix.cap = 0;
		return -1;
	}
	/* PCI 3.0 §6.8.2.3: program the entries under the function mask, then lift it */
	msix_enable_masked(&v->msix);
	for (unsigned i = 0; i < n; i++)
		msix_set(&v->msix, i, apic_id, vec_base + i);
	msix_unmask_function(&v->msix);
	return 0;
}

void virtio_pci_msix_target(struct virtio_pci *v, unsigned i, uint32_t apic_id, uint8_t vector)
{
	if (v->msix.cap && i < v->msix.size)
		msix_set(&v->msix, i, apic_id, vector);
}

uint16_t virtio_pci_queue_vector(struct virtio_pci *v, uint16_t q, uint16_t vector)
{
	mmio_write16(v->common + VIRTIO_PCI_COMMON_Q_SELECT, q);
	mmio_write16(v->common + VIRTIO_PCI_COMMON_Q_MSIX, vector);
	return mmio_read16(v->common + VIRTIO_PCI_COMMON_Q_MSIX);
}

void virtio_pci_msix_disable(struct virtio_pci *v)
{
	if (v->msix.cap)
		msix_disable(&v->msix);
}
