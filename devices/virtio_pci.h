/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The modern virtio-pci transport (virtio 1.2 section 4.1), device side.
 *
 * Layout. Vendor 0x1af4, device 0x1040 + virtio id, revision 1. BAR 0 (64-bit memory, 16 KiB):
 * common config at 0x0000, ISR at 0x1000, device config at 0x2000, notify at 0x3000 with
 * notify_off_multiplier 4 (queue i is kicked at 0x3000 + 4 * i). BAR 2 (32-bit memory): the
 * MSI-X table at 0, the PBA after it. Vectors: one per queue plus one for config changes; the
 * driver chooses the mapping (Linux: 0 = config, i + 1 = queue i). No INTx (interrupt pin 0).
 * A VIRTIO_PCI_CAP_PCI_CFG capability gives access to both BARs through config space.
 *
 * Who owns what.
 *  - `lock` (one per device) guards the transport state: feature words, status, selectors,
 *    queue configuration, the MSI-X table and each vector's KVM wiring. It is taken by the BAR
 *    handlers (vCPU threads) and by the PCI hooks (called under the PCI bus lock, so the order is
 *    pci bus lock -> vpci lock -> the host's locks, e.g. vireo's vm irq lock). Nothing on the data
 *    path takes it.
 *  - Each vector has an eventfd (`efd`). The data path (an iothread) raises a queue's interrupt
 *    by writing that eventfd, nothing else. While the vector is unmasked (MSI-X enabled, function
 *    not masked, vector control bit clear) the eventfd is a KVM irqfd on the vector's GSI, whose
 *    MSI route holds the table's address/data (the VMM wires both through struct vpci_host).
 *    Masking detaches the irqfd, so writes accumulate in the eventfd (= the PBA pending bit; a
 *    PBA read polls it); unmasking re-attaches it and KVM delivers a pending event at once.
 *    So masking needs no cooperation from the iothreads.
 *  - Each queue has a kick eventfd, registered as a KVM ioeventfd on the queue's notify address
 *    from DRIVER_OK until reset, and moved when the guest moves BAR 0. A notify write that
 *    reaches userspace anyway (no ioeventfd) is forwarded to the same eventfd.
 *  - The queues (struct virtq) are configured here while the device is not running; from
 *    DRIVER_OK the device model hands them to its iothreads (ops->activate) and gets them back
 *    synchronously on reset (ops->reset), called with `lock` held; the iothreads never take it.
 *  - From any thread, vpci_set_needs_reset() and vpci_config_changed() use atomics (status
 *    bits, ISR) and the config vector's eventfd only.
 */
#ifndef VIREO_DEVICES_VIRTIO_PCI_H
#define VIREO_DEVICES_VIRTIO_PCI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/spec/virtio.h"
#include "devices/pci.h"
#include "devices/virtqueue.h"

struct vpci_dev;

#define VPCI_MAX_QUEUES 1024

/**
 * struct vpci_host_ops - the KVM wiring the transport asks of the VMM (vireo: vmm/vm.c's
 * vm_ioeventfd, vm_irqfd, vm_gsi_alloc, vm_msi_route; see there for what each does)
 * @ioeventfd: register (@assign) or remove @efd as an ioeventfd on guest address @addr
 *             (@len 0: any write width; @pio: port I/O)
 * @irqfd: connect (@assign) or disconnect @efd to GSI @gsi
 * @gsi_alloc: an unused GSI for an MSI route, or -1
 * @msi_route: point GSI @gsi at the MSI address/data pair
 *
 * All return 0 (gsi_alloc: the GSI) or -1 with *errp set. Called with the transport lock held.
 */
struct vpci_host_ops {
	int (*ioeventfd)(void *opaque, uint64_t addr, unsigned int len, bool pio, int efd,
			 bool assign, struct error **errp);
	int (*irqfd)(void *opaque, uint32_t gsi, int efd, bool assign, struct error **errp);
	int (*gsi_alloc)(void *opaque, struct error **errp);
	int (*msi_route)(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data,
			 struct error **errp);
};

/**
 * struct vpci_host - what the machine gives a virtio-pci function (copied by vpci_init)
 * @mem: guest memory, which the queues translate their rings and buffers through
 * @ops: KVM wiring, or NULL for none (tests, vireo-blk-loop): no ioeventfd (a notify write is
 *       forwarded to the queue's kick eventfd) and no irqfd (the data path's writes to a
 *       vector's eventfd stay there, to be read by whoever waits on it)
 * @opaque: passed to @ops
 */
struct vpci_host {
	const struct gmem *mem;
	const struct vpci_host_ops *ops;
	void *opaque;
};

/**
 * struct virtio_device_ops - what a virtio device model gives the transport
 * @config_read: read @len bytes at @off of the device-specific config (bounded by config_len)
 * @config_write: write to it (may be NULL: config is read-only)
 * @activate: DRIVER_OK was set: every queue with `enabled` set has been started (virtq_start
 *            succeeded, kick_fd/call_fd filled in); hand them to the iothreads. Return 0, or
 *            -errno to put the device in NEEDS_RESET.
 * @reset: stop every queue synchronously: on return no thread touches a ring or writes a
 *         call eventfd any more. Called only after a successful activate (guest reset, destroy).
 *
 * All are called with the transport lock held, from a vCPU thread (or main at destroy).
 */
struct virtio_device_ops {
	void (*config_read)(void *opaque, uint32_t off, void *data, unsigned int len);
	void (*config_write)(void *opaque, uint32_t off, const void *data, unsigned int len);
	int (*activate)(void *opaque, struct vpci_dev *v);
	void (*reset)(void *opaque, struct vpci_dev *v);
};

struct vpci_queue {
	struct virtq vq;          /* size and ring addresses as the driver programmed them */
	uint16_t max_size;
	uint16_t vector;          /* queue_msix_vector */
	bool enabled;
	int kick_fd;              /* eventfd; ioeventfd while running */
	uint64_t ioeventfd_addr;  /* where it is registered, or PCI_BAR_UNMAPPED */
};

struct vpci_vector {
	uint32_t addr_lo, addr_hi, data, ctrl; /* the MSI-X table entry */
	int efd;                  /* raised by the data path */
	int gsi;                  /* -1 until first unmasked */
	bool routed;              /* GSI route holds route_addr/route_data */
	uint64_t route_addr;
	uint32_t route_data;
	bool irqfd;               /* efd attached to the GSI */
};

struct vpci_dev {
	struct pci_device pci;
	struct vpci_host host;
	const char *name;
	const struct virtio_device_ops *ops;
	void *opaque;
	pthread_mutex_t lock;

	uint64_t host_features;
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	_Atomic uint8_t status;   /* written under lock; NEEDS_RESET is or-ed in from anywhere */
	uint8_t config_generation;
	_Atomic uint8_t isr;
	uint16_t queue_select;
	uint16_t config_vector;
	_Atomic int config_efd;   /* efd of config_vector while running, else -1 */
	uint32_t config_len;
	bool active;              /* activate() succeeded, reset() owed */

	unsigned int nr_queues;
	struct vpci_queue *queues;
	unsigned int nr_vectors;
	struct vpci_vector *vectors;
	int msix_cap;
	int pcicfg_cap;           /* VIRTIO_PCI_CAP_PCI_CFG offset */
	bool msix_enabled, msix_masked;
	uint64_t bar0;            /* where BAR 0 decodes, or PCI_BAR_UNMAPPED */
};

/**
 * vpci_init - build a virtio-pci function (then plug it with pci_bus_add_device(&v->pci))
 * @host: guest memory and KVM wiring (see struct vpci_host); NULL: neither
 * @name: for messages, e.g. "virtio-blk0"
 * @virtio_id: device type (2 = block, 8 = SCSI)
 * @class_code: PCI class (block: 0x010000)
 * @features: device feature bits; the transport adds VERSION_1, EVENT_IDX and INDIRECT_DESC
 * @nr_queues: 1..VPCI_MAX_QUEUES
 * @max_queue_size: power of two up to VIRTQ_MAX_SIZE (the driver may choose less)
 * @config_len: bytes of device config (<= 4096)
 * @ops, @opaque: the device model
 *
 * Returns 0 or -1 (eventfd creation, memory).
 */
int vpci_init(struct vpci_dev *v, const struct vpci_host *host, const char *name,
	      uint16_t virtio_id, uint32_t class_code, uint64_t features, unsigned int nr_queues,
	      uint16_t max_queue_size, uint32_t config_len, const struct virtio_device_ops *ops,
	      void *opaque, struct error **errp);

/* Stops the device if running (ops->reset), releases KVM wiring and eventfds. */
void vpci_destroy(struct vpci_dev *v);

/* The eventfd that raises MSI-X vector @vec (its irqfd while unmasked), or -1 if none. */
int vpci_vector_eventfd(const struct vpci_dev *v, uint16_t vec);

/* Whether the driver accepted feature @bit (valid from FEATURES_OK on). */
static inline bool vpci_has_feature(const struct vpci_dev *v, unsigned int bit)
{
	return (v->driver_features >> bit) & 1;
}

/*
 * Any thread: the device found the driver's rings corrupt. Sets DEVICE_NEEDS_RESET and raises
 * a config change interrupt.
 */
void vpci_set_needs_reset(struct vpci_dev *v);

/* Any thread: device config changed (e.g. capacity): bumps the generation, config interrupt. */
void vpci_config_changed(struct vpci_dev *v);

#endif
