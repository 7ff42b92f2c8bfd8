/* SPDX-License-Identifier: Apache-2.0 */
/* PCI host bridge, config space and BAR decoding; the locking rules are in pci.h. */
#include "devices/pci.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

#define PCI_HOST_VENDOR 0x1b36 /* Red Hat: "QEMU PCIe host bridge", no quirks in guests */
#define PCI_HOST_DEVICE 0x0008
#define PCI_CLASS_HOST_BRIDGE 0x060000
#define PCI_CAP_FIRST 0x40
#define PCI_CFG_LEGACY_SIZE 256

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static inline uint32_t get32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint8_t revision, const struct pci_device_ops *ops,
		     void *opaque)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	d->ops = ops;
	d->opaque = opaque;
	d->cap_next = PCI_CAP_FIRST;
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++)
		d->bars[i].mapped = PCI_BAR_UNMAPPED;
	put16(&d->cfg[PCI_VENDOR_ID], vendor);
	put16(&d->cfg[PCI_DEVICE_ID], device);
	d->cfg[PCI_REVISION_ID] = revision;
	d->cfg[PCI_CLASS_PROG] = (uint8_t)class_code;
	d->cfg[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
	d->cfg[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
	d->cfg[PCI_HEADER_TYPE] = 0;
	put16(&d->cfg[PCI_SUBSYSTEM_VENDOR_ID], vendor);
	put16(&d->cfg[PCI_SUBSYSTEM_ID], device);
	put16(&d->wmask[PCI_COMMAND], PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | 0x40 /* parity */ |
				      0x100 /* SERR */ | PCI_COMMAND_INTX_DISABLE);
	put16(&d->w1cmask[PCI_STATUS], 0xf900); /* error bits */
	d->wmask[0x0c] = 0xff; /* cache line size */
	d->wmask[0x0d] = 0xff; /* latency timer */
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

int pci_device_add_bar(struct pci_device *d, unsigned int bar, uint64_t size, unsigned int flags,
		       const struct bus_ops *ops, void *opaque, struct error **errp)
{
	bool is64 = flags & PCI_BAR_F_MEM64;
	struct pci_bar *b;
	uint32_t low;

	if (bar >= PCI_NUM_BARS || (is64 && bar + 1 >= PCI_NUM_BARS) || d->bars[bar].size ||
	    (bar > 0 && d->bars[bar - 1].is64)) {
		error_setg(errp, "%s: BAR %u is not free", d->name, bar);
		return -1;
	}
	if (size < 4 * KiB)
		size = 4 * KiB;
	if (size & (size - 1)) {
		error_setg(errp, "%s: BAR %u size 0x%llx is not a power of two",
			   d->name, bar, (unsigned long long)size);
		return -1;
	}
	b = &d->bars[bar];
	b->size = size;
	b->is64 = is64;
	b->ops = ops;
	b->opaque = opaque;
	snprintf(b->name, sizeof(b->name), "%s BAR%u", d->name, bar);
	low = is64 ? PCI_BAR_MEM_TYPE_64 : 0;
	if (flags & PCI_BAR_F_PREFETCH)
		low |= PCI_BAR_MEM_PREFETCH;
	put32(&d->cfg[PCI_BASE_ADDRESS_0 + 4 * bar], low);
	put32(&d->wmask[PCI_BASE_ADDRESS_0 + 4 * bar], (uint32_t)~(size - 1) & ~0xfu);
	if (is64)
		put32(&d->wmask[PCI_BASE_ADDRESS_0 + 4 * (bar + 1)], (uint32_t)(~(size - 1) >> 32));
	return 0;
}

int pci_add_capability(struct pci_device *d, uint8_t id, const void *body, unsigned int len,
		       const void *wmask, struct error **errp)
{
	unsigned int off = ALIGN_UP(d->cap_next, 4u);

	if (len < 2 || off + len > PCI_CFG_LEGACY_SIZE) {
		error_setg(errp, "%s: no room for a %u-byte capability 0x%02x in config space",
			   d->name, len, id);
		return -1;
	}
	memcpy(&d->cfg[off], body, len);
	if (wmask)
		memcpy(&d->wmask[off], wmask, len);
	d->wmask[off] = d->wmask[off + 1] = 0;
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	if (d->cap_last)
		d->cfg[d->cap_last + 1] = (uint8_t)off;
	else
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	d->cap_last = (uint8_t)off;
	d->cap_next = (uint16_t)(off + len);
	return (int)off;
}

int pci_add_msix_capability(struct pci_device *d, unsigned int nr_vectors, unsigned int table_bar,
			    uint32_t table_off, unsigned int pba_bar, uint32_t pba_off,
			    struct error **errp)
{
	uint8_t cap[12] = { 0 }, mask[12] = { 0 };

	if (nr_vectors == 0 || nr_vectors > 2048 || table_bar >= PCI_NUM_BARS ||
	    pba_bar >= PCI_NUM_BARS || (table_off & 7) || (pba_off & 7)) {
		error_setg(errp, "%s: bad MSI-X layout (%u vectors)", d->name, nr_vectors);
		return -1;
	}
	put16(&cap[2], (uint16_t)(nr_vectors - 1));
	put32(&cap[4], table_off | table_bar);
	put32(&cap[8], pba_off | pba_bar);
	mask[3] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	return pci_add_capability(d, PCI_CAP_ID_MSIX, cap, sizeof(cap), mask, errp);
}

uint16_t pci_msix_control(const struct pci_device *d, unsigned int cap)
{
	return (uint16_t)(d->cfg[cap + 2] | d->cfg[cap + 3] << 8);
}

/* ---------------------------------------------------------------------------------------------
 * BAR decoding (bus lock held)
 */

/* Address BAR @i decodes at from the config bytes, or PCI_BAR_UNMAPPED. */
static uint64_t bar_decoded(const struct pci_device *d, unsigned int i)
{
	const struct pci_bar *b = &d->bars[i];
	uint64_t addr, last;

	if (!(d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY))
		return PCI_BAR_UNMAPPED;
	addr = get32(&d->cfg[PCI_BASE_ADDRESS_0 + 4 * i]) & ~0xfull;
	if (b->is64)
		addr |= (uint64_t)get32(&d->cfg[PCI_BASE_ADDRESS_0 + 4 * (i + 1)]) << 32;
	last = addr + b->size - 1;
	/*
	 * 0 and the sizing pattern (all ones written: the BAR ends at the top of its address
	 * space) are not decoded, as a guest writes them with decode still on.
	 */
	if (addr == 0 || last < addr || (!b->is64 && last >= UINT32_MAX) || last == UINT64_MAX)
		return PCI_BAR_UNMAPPED;
	return addr;
}

static void bars_update(struct pci_device *d)
{
	struct pci_bus *bus = d->bus;

	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		uint64_t old = b->mapped, new;
		struct error *err = NULL;

		if (!b->size)
			continue;
		new = bar_decoded(d, i);
		if (new == old)
			continue;
		if (old != PCI_BAR_UNMAPPED && bus->mmio)
			bus_remove(bus->mmio, old, b->opaque);
		b->mapped = PCI_BAR_UNMAPPED;
		/* a guest may program overlapping BARs; such a BAR just stops decoding */
		if (new != PCI_BAR_UNMAPPED && bus->mmio &&
		    bus_add(bus->mmio, new, b->size, b->ops, b->opaque, b->name, &err) < 0) {
			fprintf(stderr, "vireo: %s: not decoded: %s\n", b->name, error_msg(err));
			error_free(err);
			new = PCI_BAR_UNMAPPED;
		}
		b->mapped = new;
		if (old != new && d->ops && d->ops->bar_moved)
			d->ops->bar_moved(d, i, old, new);
	}
}

uint64_t pci_bar_address(struct pci_device *d, unsigned int bar)
{
	uint64_t a;

	pthread_mutex_lock(&d->bus->lock);
	a = d->bars[bar].mapped;
	pthread_mutex_unlock(&d->bus->lock);
	return a;
}

/* ---------------------------------------------------------------------------------------------
 * Config access
 */

static struct pci_device *dev_at(struct pci_bus *b, unsigned int slot, unsigned int fn)
{
	if (slot >= PCI_SLOTS || fn != 0)
		return NULL;
	return b->slots[slot];
}

uint32_t pci_cfg_read(struct pci_bus *b, unsigned int slot, unsigned int fn, uint32_t off,
		      unsigned int len)
{
	struct pci_device *d;
	uint32_t v = 0;

	if (len == 0 || len > 4 || off >= PCI_CFG_SIZE || off + len > PCI_CFG_SIZE)
		return UINT32_MAX;
	pthread_mutex_lock(&b->lock);
	d = dev_at(b, slot, fn);
	if (!d) {
		v = len == 4 ? UINT32_MAX : (1u << (8 * len)) - 1;
	} else {
		if (d->ops && d->ops->cfg_read)
			d->ops->cfg_read(d, off, len);
		for (unsigned int i = 0; i < len; i++)
			v |= (uint32_t)d->cfg[off + i] << (8 * i);
	}
	pthread_mutex_unlock(&b->lock);
	return v;
}

void pci_cfg_write(struct pci_bus *b, unsigned int slot, unsigned int fn, uint32_t off,
		   unsigned int len, uint32_t val)
{
	struct pci_device *d;

	if (len == 0 || len > 4 || off >= PCI_CFG_SIZE || off + len > PCI_CFG_SIZE)
		return;
	pthread_mutex_lock(&b->lock);
	d = dev_at(b, slot, fn);
	if (!d)
		goto out;
	for (unsigned int i = 0; i < len; i++) {
		unsigned int o = off + i;
		uint8_t v = (uint8_t)(val >> (8 * i));

		d->cfg[o] = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (v & d->wmask[o]));
		d->cfg[o] &= (uint8_t)~(v & d->w1cmask[o]);
	}
	/* COMMAND or a BAR register changed: decoding may have moved */
	if ((off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) ||
	    (off < PCI_BASE_ADDRESS_0 + 24 && off + len > PCI_BASE_ADDRESS_0))
		bars_update(d);
	if (d->ops && d->ops->cfg_write)
		d->ops->cfg_write(d, off, len, val);
out:
	pthread_mutex_unlock(&b->lock);
}

/* ECAM: bus 0 only; [19:15] device, [14:12] function, [11:0] register. */
static void ecam_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pci_bus *b = opaque;

	if (len == 8) { /* a 64-bit access is two dword accesses */
		ecam_read(opaque, off, data, 4);
		ecam_read(opaque, off + 4, (uint8_t *)data + 4, 4);
		return;
	}
	bus_put(data, len, pci_cfg_read(b, (off >> 15) & 31, (off >> 12) & 7, off & 0xfff, len));
}

static void ecam_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pci_bus *b = opaque;

	if (len == 8) {
		ecam_write(opaque, off, data, 4);
		ecam_write(opaque, off + 4, (const uint8_t *)data + 4, 4);
		return;
	}
	pci_cfg_write(b, (off >> 15) & 31, (off >> 12) & 7, off & 0xfff, len,
		      (uint32_t)bus_get(data, len));
}

static const struct bus_ops ecam_ops = { ecam_read, ecam_write };

/*
 * CF8/CFC: the region covers ports 0xcf8..0xcff. A dword at 0xcf8 is the address latch
 * (bit 31 enable, [23:16] bus, [15:11] device, [10:8] function, [7:2] register, and the AMD
 * extension [27:24] = register bits 11:8); a byte at 0xcf9 is the reset control register;
 * 0xcfc..0xcff is the data window.
 */
static bool cf8_target(struct pci_bus *b, uint64_t port_off, unsigned int *slot, unsigned int *fn,
		       uint32_t *reg)
{
	uint32_t a = b->cf8;

	if (!(a & 0x80000000u) || ((a >> 16) & 0xff) != 0)
		return false;
	*slot = (a >> 11) & 31;
	*fn = (a >> 8) & 7;
	*reg = (a & 0xfc) | ((a >> 16) & 0xf00);
	*reg += (uint32_t)(port_off - 4);
	return true;
}

static void cf8_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pci_bus *b = opaque;
	unsigned int slot, fn;
	uint32_t reg, v = UINT32_MAX;
	bool ok;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&b->lock);
		v = b->cf8;
		pthread_mutex_unlock(&b->lock);
	} else if (off == 1 && len == 1) {
		pthread_mutex_lock(&b->lock);
		v = b->cf9;
		pthread_mutex_unlock(&b->lock);
	} else if (off >= 4 && off + len <= 8) {
		pthread_mutex_lock(&b->lock);
		ok = cf8_target(b, off, &slot, &fn, &reg);
		pthread_mutex_unlock(&b->lock);
		/* the latch may change between here and the read: so it does on hardware */
		if (ok)
			v = pci_cfg_read(b, slot, fn, reg, len);
	}
	bus_put(data, len, v);
}

static void cf8_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pci_bus *b = opaque;
	uint32_t v = (uint32_t)bus_get(data, len), reg;
	unsigned int slot, fn;
	bool ok;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&b->lock);
		b->cf8 = v & 0x8ffffffcu;
		pthread_mutex_unlock(&b->lock);
	} else if (off == 1 && len == 1) {
		void (*fnp)(void *, uint8_t);
		void *o;

		pthread_mutex_lock(&b->lock);
		b->cf9 = (uint8_t)v;
		fnp = b->reset_hook;
		o = b->reset_opaque;
		pthread_mutex_unlock(&b->lock);
		if (fnp)
			fnp(o, (uint8_t)v);
	} else if (off >= 4 && off + len <= 8) {
		pthread_mutex_lock(&b->lock);
		ok = cf8_target(b, off, &slot, &fn, &reg);
		pthread_mutex_unlock(&b->lock);
		if (ok)
			pci_cfg_write(b, slot, fn, reg, len, v);
	}
}

static const struct bus_ops cf8_ops = { cf8_read, cf8_write };

void pci_bus_set_reset_hook(struct pci_bus *b, void (*fn)(void *opaque, uint8_t val), void *opaque)
{
	pthread_mutex_lock(&b->lock);
	b->reset_hook = fn;
	b->reset_opaque = opaque;
	pthread_mutex_unlock(&b->lock);
}

int pci_bus_init(struct pci_bus *b, struct bus *mmio, struct bus *pio,
		 const struct pci_bus_layout *layout, struct error **errp)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	b->layout = *layout;
	b->mmio = mmio;
	b->pio = pio;
	b->mmio32_next = layout->mmio32_base;
	b->mmio32_end = layout->mmio32_base + layout->mmio32_size;
	if (mmio) {
		if (bus_add(mmio, layout->ecam_base, layout->ecam_buses * MiB, &ecam_ops, b,
			    "pci-ecam", errp) < 0)
			goto err;
		b->ecam_registered = true;
	}
	if (pio) {
		if (bus_add(pio, layout->cf8_port, 8, &cf8_ops, b, "pci-cf8", errp) < 0)
			goto err;
		b->pio_registered = true;
	}
	pci_device_init(&b->host_bridge, "host-bridge", PCI_HOST_VENDOR, PCI_HOST_DEVICE,
			PCI_CLASS_HOST_BRIDGE, 0, NULL, NULL);
	if (pci_bus_add_device(b, &b->host_bridge, 0, errp) < 0)
		goto err;
	return 0;
err:
	pci_bus_destroy(b);
	return -1;
}

void pci_bus_remove_device(struct pci_bus *b, struct pci_device *d)
{
	pthread_mutex_lock(&b->lock);
	if (d->slot < PCI_SLOTS && b->slots[d->slot] == d) {
		for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
			struct pci_bar *bar = &d->bars[i];

			if (bar->size && bar->mapped != PCI_BAR_UNMAPPED && b->mmio)
				bus_remove(b->mmio, bar->mapped, bar->opaque);
			bar->mapped = PCI_BAR_UNMAPPED;
		}
		b->slots[d->slot] = NULL;
	}
	pthread_mutex_unlock(&b->lock);
}

void pci_bus_destroy(struct pci_bus *b)
{
	if (b->ecam_registered)
		bus_remove(b->mmio, b->layout.ecam_base, b);
	if (b->pio_registered)
		bus_remove(b->pio, b->layout.cf8_port, b);
	for (unsigned int s = 0; s < PCI_SLOTS; s++) {
		struct pci_device *d = b->slots[s];

		if (!d || !b->mmio)
			continue;
		for (unsigned int i = 0; i < PCI_NUM_BARS; i++)
			if (d->bars[i].size && d->bars[i].mapped != PCI_BAR_UNMAPPED)
				bus_remove(b->mmio, d->bars[i].mapped, d->bars[i].opaque);
	}
	b->ecam_registered = b->pio_registered = false;
	memset(b->slots, 0, sizeof(b->slots));
	pthread_mutex_destroy(&b->lock);
}

/* Places every BAR of @d (bus lock held). */
static int bars_place(struct pci_bus *b, struct pci_device *d, struct error **errp)
{
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *bar = &d->bars[i];
		uint64_t addr;

		if (!bar->size)
			continue;
		addr = ALIGN_UP(b->mmio32_next, bar->size);
		if (addr + bar->size > b->mmio32_end || addr + bar->size < addr) {
			error_setg(errp, "%s: no room for BAR %u (0x%llx bytes) in the PCI MMIO "
				   "window", d->name, i, (unsigned long long)bar->size);
			return -1;
		}
		b->mmio32_next = addr + bar->size;
		put32(&d->cfg[PCI_BASE_ADDRESS_0 + 4 * i],
		      (uint32_t)addr | (get32(&d->cfg[PCI_BASE_ADDRESS_0 + 4 * i]) & 0xf));
		if (bar->is64)
			put32(&d->cfg[PCI_BASE_ADDRESS_0 + 4 * (i + 1)], (uint32_t)(addr >> 32));
	}
	return 0;
}

int pci_bus_add_device(struct pci_bus *b, struct pci_device *d, int slot, struct error **errp)
{
	int ret = -1;
	bool has_bars = false;

	pthread_mutex_lock(&b->lock);
	if (slot < 0) {
		for (slot = 1; slot < PCI_SLOTS && b->slots[slot]; slot++)
			;
	}
	if (slot >= PCI_SLOTS || b->slots[slot]) {
		error_setg(errp, "%s: no free PCI slot on bus 0", d->name);
		goto out;
	}
	d->bus = b;
	d->slot = (uint8_t)slot;
	if (bars_place(b, d, errp) < 0)
		goto out;
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++)
		has_bars |= d->bars[i].size != 0;
	b->slots[slot] = d;
	if (has_bars) {
		d->cfg[PCI_COMMAND] |= PCI_COMMAND_MEMORY; /* as firmware would */
		bars_update(d);
	}
	ret = slot;
out:
	pthread_mutex_unlock(&b->lock);
	return ret;
}
