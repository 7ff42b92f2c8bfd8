/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PCI host bridge: bus 0, one function per slot, conventional (type 0) devices.
 *
 * Config space is reached two ways, which agree: ECAM (MMIO, bus 0 only) and the CF8/CFC port
 * pair, where the machine's struct pci_bus_layout puts them (vireo: vmm/layout.h). Port 0xcf9
 * sits inside the CF8 dword; it is the reset control register, so the bridge owns 0xcf8..0xcfb
 * and hands byte writes to 0xcf9 to the hook set with pci_bus_set_reset_hook() (do not bus_add
 * 0xcf9 elsewhere).
 *
 * Locking. vCPUs access config space concurrently: one mutex per bus (`lock`) guards every
 * device's config bytes, its BAR state and the CF8 address latch. A BAR move (a config write
 * that changes a decoded BAR address or the COMMAND memory bit) is done under that lock: it
 * removes and adds the BAR's region on the MMIO bus (bus.h lets a handler do that) and then calls
 * the device's bar_moved hook, also under the lock. So the lock order is
 *   pci bus lock -> device locks (taken in cfg_write / bar_moved hooks) -> vm irq lock,
 * and a device must never take the pci bus lock from its own BAR handlers or hooks.
 * A device's BAR handlers are called by the MMIO bus without the pci lock.
 *
 * Devices are built (pci_device_init, pci_device_add_bar, pci_add_capability) and added to the
 * bus by the main thread before any vCPU runs. The VMM acts as the firmware would: it places
 * BARs in the 32-bit window (naturally aligned) and enables memory decode. A guest may move
 * them afterwards.
 */
#ifndef VIREO_DEVICES_PCI_H
#define VIREO_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/spec/pci.h"
#include "devices/bus.h"

#define PCI_CFG_SIZE 4096
#define PCI_SLOTS 32
#define PCI_NUM_BARS 6
#define PCI_BAR_UNMAPPED UINT64_MAX

/* flags for pci_device_add_bar */
#define PCI_BAR_F_MEM64 (1u << 0)
#define PCI_BAR_F_PREFETCH (1u << 1)

struct pci_bus;
struct pci_device;

/**
 * struct pci_device_ops - hooks of a device; all optional, all called with the bus lock held
 * @cfg_write: after a guest config write of @len bytes at @off was applied to the config bytes
 *             (the device may read d->cfg here: it holds the lock)
 * @bar_moved: BAR @bar now decodes at @new (PCI_BAR_UNMAPPED: not decoded any more); it
 *             decoded at @old before
 * @cfg_read: before a guest config read of @len bytes at @off is served from d->cfg: the
 *            device may refresh those bytes (a window register such as virtio's PCI_CFG)
 */
struct pci_device_ops {
	void (*cfg_write)(struct pci_device *d, uint32_t off, unsigned int len, uint32_t val);
	void (*bar_moved)(struct pci_device *d, unsigned int bar, uint64_t old, uint64_t new);
	void (*cfg_read)(struct pci_device *d, uint32_t off, unsigned int len);
};

struct pci_bar {
	uint64_t size;    /* power of two; 0 = BAR unused */
	bool is64;        /* takes this and the next BAR register */
	uint64_t mapped;  /* address it is registered at on the MMIO bus, or PCI_BAR_UNMAPPED */
	const struct bus_ops *ops;
	void *opaque;
	char name[48];
};

/**
 * struct pci_device - one PCI function
 * @cfg: config space bytes (guarded by the bus lock once added)
 * @wmask: bits the guest may write
 * @w1cmask: bits a guest write of 1 clears (PCI_STATUS error bits)
 * @opaque: the device model's pointer (container_of also works)
 */
struct pci_device {
	struct pci_bus *bus;
	const char *name;
	uint8_t slot;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];
	uint8_t w1cmask[PCI_CFG_SIZE];
	struct pci_bar bars[PCI_NUM_BARS];
	const struct pci_device_ops *ops;
	void *opaque;
	uint16_t cap_next; /* offset where the next capability goes */
	uint8_t cap_last;  /* offset of the last capability, 0 if none */
};

/**
 * struct pci_bus_layout - where the machine puts the host bridge's windows
 * @mmio32_base, @mmio32_size: the 32-bit MMIO window the VMM places BARs in
 * @ecam_base: ECAM (config space over MMIO), @ecam_buses buses of 1 MiB decoded from there
 *             (only bus 0 has functions)
 * @cf8_port: CONFIG_ADDRESS; the bridge owns the 8 ports from there (CFC..CFF data, and the
 *            reset register at CF8 + 1)
 */
struct pci_bus_layout {
	uint64_t mmio32_base;
	uint64_t mmio32_size;
	uint64_t ecam_base;
	unsigned int ecam_buses;
	uint16_t cf8_port;
};

struct pci_bus {
	pthread_mutex_t lock;
	struct pci_bus_layout layout;
	struct bus *mmio;
	struct bus *pio;
	struct pci_device *slots[PCI_SLOTS];
	uint32_t cf8;         /* CF8 address latch */
	uint64_t mmio32_next; /* VMM BAR allocator in the 32-bit window */
	uint64_t mmio32_end;
	void (*reset_hook)(void *opaque, uint8_t val);
	void *reset_opaque;
	uint8_t cf9;
	bool ecam_registered;
	bool pio_registered;
	struct pci_device host_bridge;
};

/**
 * pci_bus_init - create bus 0 with its host bridge at 00:00.0
 * @b: the bus
 * @mmio: MMIO bus (ECAM and BARs are registered there); may be NULL in tests (no ECAM)
 * @pio: port bus (CF8/CFC); may be NULL in tests
 * @layout: where ECAM, CF8 and the BAR window are (copied)
 * @errp: error
 *
 * Returns 0 or -1.
 */
int pci_bus_init(struct pci_bus *b, struct bus *mmio, struct bus *pio,
		 const struct pci_bus_layout *layout, struct error **errp);
void pci_bus_destroy(struct pci_bus *b);

/* Sets the handler for byte writes to port 0xcf9 (reset control); reads return the last value. */
void pci_bus_set_reset_hook(struct pci_bus *b, void (*fn)(void *opaque, uint8_t val), void *opaque);

/**
 * pci_device_init - set up the header of a type 0 function
 * @class_code: 24 bits: class << 16 | subclass << 8 | prog-if
 *
 * Interrupt pin is 0 (no INTx): devices here interrupt through MSI-X.
 */
void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint8_t revision, const struct pci_device_ops *ops,
		     void *opaque);

/**
 * pci_device_add_bar - declare a memory BAR (before pci_bus_add_device)
 * @bar: 0..5 (a 64-bit BAR also takes @bar + 1)
 * @size: power of two, at least 4 KiB (rounded up to it)
 * @flags: PCI_BAR_F_*
 * @ops: handlers for accesses while it is decoded (offset relative to the BAR)
 */
int pci_device_add_bar(struct pci_device *d, unsigned int bar, uint64_t size, unsigned int flags,
		       const struct bus_ops *ops, void *opaque, struct error **errp);

/**
 * pci_add_capability - append a capability to the list (before pci_bus_add_device)
 * @id: capability ID
 * @body: @len bytes, the whole capability; bytes 0 and 1 (ID, next) are filled in here
 * @len: total length, >= 2
 * @wmask: @len bytes of guest-writable bits, or NULL (read-only)
 *
 * Returns the capability's offset in config space, or -1.
 */
int pci_add_capability(struct pci_device *d, uint8_t id, const void *body, unsigned int len,
		       const void *wmask, struct error **errp);

/**
 * pci_add_msix_capability - add an MSI-X capability
 * @nr_vectors: table size, 1..2048
 * @table_bar, @table_off: where the table lives (@table_off 8-byte aligned)
 * @pba_bar, @pba_off: where the pending bit array lives (8-byte aligned)
 *
 * Message Control's enable and function-mask bits become writable; the device watches them
 * through its cfg_write hook (see pci_msix_control()). Returns the capability offset or -1.
 */
int pci_add_msix_capability(struct pci_device *d, unsigned int nr_vectors, unsigned int table_bar,
			    uint32_t table_off, unsigned int pba_bar, uint32_t pba_off,
			    struct error **errp);

/* MSI-X Message Control at capability offset @cap (call with the bus lock, e.g. in cfg_write). */
uint16_t pci_msix_control(const struct pci_device *d, unsigned int cap);

/**
 * pci_bus_add_device - plug @d into the first free slot (or @slot if >= 0)
 *
 * Places every BAR in the 32-bit window, naturally aligned, registers it on the MMIO bus and
 * sets COMMAND.MEMORY, as firmware would. Returns the slot or -1.
 */
int pci_bus_add_device(struct pci_bus *b, struct pci_device *d, int slot, struct error **errp);

/* Unplugs @d: its BARs stop decoding, its slot reads all ones. For teardown (vCPUs stopped). */
void pci_bus_remove_device(struct pci_bus *b, struct pci_device *d);

/*
 * Config space access as the guest does it (both ECAM and CF8/CFC end here). @off is the
 * register offset, @len 1, 2 or 4 and within one dword. Absent devices read all ones.
 */
uint32_t pci_cfg_read(struct pci_bus *b, unsigned int slot, unsigned int fn, uint32_t off,
		      unsigned int len);
void pci_cfg_write(struct pci_bus *b, unsigned int slot, unsigned int fn, uint32_t off,
		   unsigned int len, uint32_t val);

/* Address BAR @bar of @d decodes at now, or PCI_BAR_UNMAPPED (takes the bus lock). */
uint64_t pci_bar_address(struct pci_device *d, unsigned int bar);

#endif
