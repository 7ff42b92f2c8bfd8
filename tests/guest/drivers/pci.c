/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PCI configuration access. ECAM is MMIO (a CPL3 read is ~24 µs on this KVM); CF8/CFC costs two
 * traps per access, so enumeration walks bus 0 and the buses behind bridges, never all 256.
 */
#include "drivers/pci.h"
#include "drivers/acpi.h"
#include "lib/lib.h"
#include "ring0/layout.h"

#define PCI_CF8                 0xcf8
#define PCI_CFC                 0xcfc
/* Where unassigned memory BARs go when no firmware placed them (vireo's layout: 0xc0000000). */
#define MMIO32_FALLBACK_BASE    0xc0000000ULL
#define MMIO32_FALLBACK_END     0xe0000000ULL

static uint64_t ecam_base;
static uint8_t ecam_bus_start, ecam_bus_end;
static char method[64];
static uint64_t mmio32_next = MMIO32_FALLBACK_BASE;

int pci_init(void)
{
	if (acpi_mcfg(&ecam_base, &ecam_bus_start, &ecam_bus_end) &&
	    ecam_base + ((uint64_t)ecam_bus_end + 1) * (1 << 20) <= IDMAP_END) {
		snprintf(method, sizeof(method), "ECAM at %#lx, buses %u-%u", ecam_base,
			 ecam_bus_start, ecam_bus_end);
		return 0;
	}
	ecam_base = 0;
	snprintf(method, sizeof(method), "CF8/CFC");
	return 0;
}

const char *pci_method(void)
{
	return method;
}

static uint64_t ecam_addr(uint16_t bdf, unsigned off)
{
	if (PCI_BUS(bdf) < ecam_bus_start || PCI_BUS(bdf) > ecam_bus_end)
		return 0;
	return ecam_base + ((uint64_t)bdf << 12) + off;
}

static void cf8_select(uint16_t bdf, unsigned off)
{
	outl(PCI_CF8, 0x80000000u | (uint32_t)bdf << 8 | (off & 0xfc));
}

/* A config read of len (1, 2 or 4) bytes; a bus outside the ECAM reads all ones. */
static uint32_t cfg_read(uint16_t bdf, unsigned off, unsigned len)
{
	uint64_t a;

	if (!ecam_base) {
		cf8_select(bdf, off);
		if (len == 1)
			return inb(PCI_CFC + (off & 3));
		return len == 2 ? inw(PCI_CFC + (off & 2)) : inl(PCI_CFC);
	}
	a = ecam_addr(bdf, off);
	if (!a)
		return 0xffffffffu >> (32 - 8 * len);
	if (len == 1)
		return mmio_read8(a);
	return len == 2 ? mmio_read16(a) : mmio_read32(a);
}

/* A config write of len (1, 2 or 4) bytes; dropped for a bus outside the ECAM. */
static void cfg_write(uint16_t bdf, unsigned off, unsigned len, uint32_t v)
{
	uint64_t a;

	if (!ecam_base) {
		cf8_select(bdf, off);
		if (len == 1)
			outb(PCI_CFC + (off & 3), v);
		else if (len == 2)
			outw(PCI_CFC + (off & 2), v);
		else
			outl(PCI_CFC, v);
	} else if ((a = ecam_addr(bdf, off))) {
		if (len == 1)
			mmio_write8(a, v);
		else if (len == 2)
			mmio_write16(a, v);
		else
			mmio_write32(a, v);
	}
}

uint32_t pci_read32(uint16_t bdf, unsigned off)
{
	return cfg_read(bdf, off, 4);
}

uint16_t pci_read16(uint16_t bdf, unsigned off)
{
	return cfg_read(bdf, off, 2);
}

uint8_t pci_read8(uint16_t bdf, unsigned off)
{
	return cfg_read(bdf, off, 1);
}

void pci_write32(uint16_t bdf, unsigned off, uint32_t v)
{
	cfg_write(bdf, off, 4, v);
}

void pci_write16(uint16_t bdf, unsigned off, uint16_t v)
{
	cfg_write(bdf, off, 2, v);
}

void pci_write8(uint16_t bdf, unsigned off, uint8_t v)
{
	cfg_write(bdf, off, 1, v);
}

static int scan_bus(unsigned bus, struct pci_dev *devs, int max, int n, unsigned depth)
{
	for (unsigned dev = 0; dev < 32; dev++) {
		for (unsigned fn = 0; fn < 8; fn++) {
			uint16_t bdf = PCI_BDF(bus, dev, fn);
			uint32_t id = pci_read32(bdf, PCI_VENDOR_ID);
			uint8_t ht;
			struct pci_dev d;

			if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) {
				if (fn == 0)
					break;
				continue;
			}
			ht = pci_read8(bdf, PCI_HEADER_TYPE);
			d = (struct pci_dev){
				.bdf = bdf, .vendor = id & 0xffff, .device = id >> 16,
				.class = pci_read32(bdf, PCI_CLASS_REVISION) >> 8,
				.header_type = ht & 0x7f,
			};
			if (n < max)
				devs[n] = d;
			n++;
			if (d.header_type == 1 && depth < 8) {
				unsigned sec = pci_read8(bdf, PCI_SECONDARY_BUS);

				if (sec > bus)
					n = scan_bus(sec, devs, max, n, depth + 1);
			}
			if (fn == 0 && !(ht & 0x80))
				break;
		}
	}
	return n;
}

int pci_scan(struct pci_dev *devs, int max)
{
	return scan_bus(ecam_base ? ecam_bus_start : 0, devs, max, 0, 0);
}

bool pci_find(uint16_t vendor, const uint16_t *devices, unsigned idx, struct pci_dev *out)
{
	struct pci_dev devs[64];
	int n = MIN(pci_scan(devs, ARRAY_SIZE(devs)), (int)ARRAY_SIZE(devs));

	for (int i = 0; i < n; i++) {
		if (devs[i].vendor != vendor)
			continue;
		for (const uint16_t *d = devices; *d; d++) {
			if (devs[i].device == *d && idx-- == 0) {
				*out = devs[i];
				return true;
			}
		}
	}
	return false;
}

static uint64_t assign_mmio32(uint64_t size)
{
	uint64_t a = ALIGN_UP(mmio32_next, size);

	if (a + size > MMIO32_FALLBACK_END)
		return 0;
	mmio32_next = a + size;
	return a;
}

int pci_bar(const struct pci_dev *d, unsigned i, struct pci_bar *bar)
{
	unsigned off = PCI_BASE_ADDRESS_0 + 4 * i;
	uint16_t cmd = pci_read16(d->bdf, PCI_COMMAND);
	uint32_t lo = pci_read32(d->bdf, off), hi = 0, slo, shi = 0xffffffff;

	*bar = (struct pci_bar){ .io = lo & 1 };
	if (bar->io) {
		err_set("%02x:%02x.%x BAR %u is an I/O BAR", PCI_BUS(d->bdf), PCI_DEV(d->bdf),
			PCI_FN(d->bdf), i);
		return -1;
	}
	bar->is64 = ((lo >> 1) & 3) == 2;
	bar->prefetch = lo & 8;
	if (bar->is64)
		hi = pci_read32(d->bdf, off + 4);
	/* size it with memory decoding off */
	pci_write16(d->bdf, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
	pci_write32(d->bdf, off, 0xffffffff);
	slo = pci_read32(d->bdf, off);
	pci_write32(d->bdf, off, lo);
	if (bar->is64) {
		pci_write32(d->bdf, off + 4, 0xffffffff);
		shi = pci_read32(d->bdf, off + 4);
		pci_write32(d->bdf, off + 4, hi);
	}
	pci_write16(d->bdf, PCI_COMMAND, cmd);
	bar->size = ~(((uint64_t)shi << 32) | (slo & ~0xfULL)) + 1;
	if (!bar->is64)
		bar->size &= 0xffffffff;
	bar->addr = ((uint64_t)hi << 32) | (lo & ~0xfULL);
	if (!(slo & ~0xfULL)) {
		err_set("%02x:%02x.%x BAR %u is not implemented", PCI_BUS(d->bdf), PCI_DEV(d->bdf),
			PCI_FN(d->bdf), i);
		return -1;
	}
	if (!bar->addr) {
		bar->addr = assign_mmio32(bar->size);
		if (!bar->addr) {
			err_set("no room for BAR %u (%lu bytes) in [%#llx, %#llx)", i, bar->size,
				MMIO32_FALLBACK_BASE, MMIO32_FALLBACK_END);
			return -1;
		}
		pci_write32(d->bdf, off, bar->addr);
		if (bar->is64)
			pci_write32(d->bdf, off + 4, 0);
	}
	if (bar->addr + bar->size > IDMAP_END) {
		err_set("BAR %u at %#lx is outside the guest's identity map (%#llx)", i, bar->addr,
			IDMAP_END);
		return -1;
	}
	return 0;
}

unsigned pci_find_cap(uint16_t bdf, uint8_t id, unsigned from)
{
	unsigned off, guard = 0;

	if (!(pci_read16(bdf, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	off = from ? pci_read8(bdf, from + 1) : pci_read8(bdf, PCI_CAPABILITY_LIST);
	for (; off >= 0x40 && guard < 48; guard++) {
		off &= ~3u;
		if (pci_read8(bdf, off) == id)
			return off;
		off = pci_read8(bdf, off + 1);
	}
	return 0;
}
