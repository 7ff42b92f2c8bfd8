/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-pci modern transport (virtio 1.2 §4.1). Polled by default (no MSI-X vectors assigned);
 * virtio_pci_msix_enable() and a vector per queue make it interrupt-driven.
 */
#ifndef GUEST_VIRTIO_PCI_H
#define GUEST_VIRTIO_PCI_H

#include "common/spec/virtio.h"
#include "drivers/msix.h"
#include "drivers/pci.h"

struct virtio_pci {
	struct pci_dev pci;
	uint64_t common;        /* MMIO addresses of the capability windows */
	uint64_t notify;
	uint32_t notify_mult;
	uint64_t isr;
	uint64_t device;
	uint32_t device_len;
	uint64_t features;      /* offered by the device */
	struct msix msix;       /* msix.cap 0 until virtio_pci_msix_enable() */
};

/*
 * Finds the capabilities, enables memory decoding and bus mastering, resets the device and sets
 * ACKNOWLEDGE | DRIVER. Returns -1 with err_set() on failure.
 */
int virtio_pci_init(struct virtio_pci *v, const struct pci_dev *d);
/* Writes the driver features, sets FEATURES_OK and checks the device kept it. */
int virtio_pci_set_features(struct virtio_pci *v, uint64_t features);
uint16_t virtio_pci_num_queues(struct virtio_pci *v);
/*
 * Sets up queue q with at most *size entries (the device's maximum if smaller; written back) on
 * rings at the given guest-physical addresses, with MSI-X table entry 'vector'
 * (VIRTIO_MSI_NO_VECTOR: none, polled), and enables it. A vector is read back: the device
 * answers NO_VECTOR when it refuses one (§4.1.4.3, §4.1.5.1.2). Returns the queue's notify
 * address, or 0 with err_set().
 */
uint64_t virtio_pci_setup_queue(struct virtio_pci *v, uint16_t q, uint16_t *size, uint64_t desc,
				uint64_t avail, uint64_t used, uint16_t vector);
/*
 * Enables MSI-X with table entries 0..n-1 sending vector vec_base + i to the local APIC apic_id
 * (the configuration change vector stays NO_VECTOR). Call it after virtio_pci_init(), before
 * setting the queues up. Returns -1 with err_set() without MSI-X or with fewer than n entries.
 */
int virtio_pci_msix_enable(struct virtio_pci *v, unsigned n, uint32_t apic_id, uint8_t vec_base);
/* Points table entry i at another vector and APIC; the queues keep their entries. */
void virtio_pci_msix_target(struct virtio_pci *v, unsigned i, uint32_t apic_id, uint8_t vector);
/* Writes queue q's queue_msix_vector and returns what it reads back (before DRIVER_OK). */
uint16_t virtio_pci_queue_vector(struct virtio_pci *v, uint16_t q, uint16_t vector);
/* Disables MSI-X again (after a reset: the device has no vectors assigned then). */
void virtio_pci_msix_disable(struct virtio_pci *v);
void virtio_pci_set_status(struct virtio_pci *v, uint8_t status);
uint8_t virtio_pci_status(struct virtio_pci *v);
/* Writes 0 to device_status and waits (1 s at most) for it to read 0; false if it did not. */
bool virtio_pci_reset(struct virtio_pci *v);
/* queue_enable of queue q as the device presents it. */
uint16_t virtio_pci_queue_enabled(struct virtio_pci *v, uint16_t q);

#endif
