/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACPI tables, read in place through the identity map. Every table's length is bounded (at most
 * MAX_TABLE) and its checksum checked before use; entries are walked only within the table.
 */
#include "drivers/acpi.h"
#include "lib/lib.h"
#include "ring0/layout.h"

#define MAX_TABLE       (1u << 20)

static const struct acpi_rsdp *rsdp;
static const struct acpi_header *root;
static unsigned root_entry_size;

static uint8_t sum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	while (n--)
		s += *b++;
	return s;
}

static bool rsdp_valid(const struct acpi_rsdp *r)
{
	if (memcmp(r->signature, "RSD PTR ", 8) || sum(r, 20))
		return false;
	return r->revision < 2 || (r->length >= sizeof(*r) && r->length < 4096 &&
				   !sum(r, r->length));
}

static const struct acpi_rsdp *rsdp_scan(uint64_t start, uint64_t end)
{
	for (uint64_t a = start; a + sizeof(struct acpi_rsdp) <= end; a += 16)
		if (rsdp_valid((const struct acpi_rsdp *)(uintptr_t)a))
			return (const struct acpi_rsdp *)(uintptr_t)a;
	return NULL;
}

static const struct acpi_header *table_at(uint64_t pa, const char *sig)
{
	const struct acpi_header *h = (const void *)(uintptr_t)pa;

	if (!pa || pa >= IDMAP_END - MAX_TABLE)
		return NULL;
	if (h->length < sizeof(*h) || h->length > MAX_TABLE || sum(h, h->length))
		return NULL;
	if (sig && memcmp(h->signature, sig, 4))
		return NULL;
	return h;
}

int acpi_init(uint64_t hint)
{
	uintptr_t bda = 0x40e;  /* BIOS data area: EBDA segment */
	uint64_t ebda;

	__asm__("" : "+r"(bda)); /* a fixed low address, not a null-pointer offset */
	ebda = (uint64_t)mmio_read16(bda) << 4;

	if (hint && rsdp_valid((const struct acpi_rsdp *)(uintptr_t)hint))
		rsdp = (const struct acpi_rsdp *)(uintptr_t)hint;
	if (!rsdp && ebda >= 0x80000 && ebda < 0xa0000)
		rsdp = rsdp_scan(ebda, ebda + 1024);
	if (!rsdp)
		rsdp = rsdp_scan(0xe0000, 0x100000);
	if (!rsdp) {
		err_set("no valid RSDP (hint %#lx, EBDA, 0xe0000-0xfffff)", hint);
		return -1;
	}
	if (rsdp->revision >= 2 && rsdp->xsdt_address) {
		root = table_at(rsdp->xsdt_address, "XSDT");
		root_entry_size = 8;
	}
	if (!root) {
		root = table_at(rsdp->rsdt_address, "RSDT");
		root_entry_size = 4;
	}
	if (!root) {
		err_set("RSDP at %p: neither XSDT %#lx nor RSDT %#x is a valid table", (void *)rsdp,
			rsdp->revision >= 2 ? rsdp->xsdt_address : 0, rsdp->rsdt_address);
		return -1;
	}
	return 0;
}

uint64_t acpi_rsdp_addr(void)
{
	return (uintptr_t)rsdp;
}

const char *acpi_root_name(void)
{
	return root_entry_size == 8 ? "XSDT" : "RSDT";
}

const struct acpi_header *acpi_find(const char *sig, unsigned idx)
{
	const uint8_t *ent;
	unsigned n;

	if (!root)
		return NULL;
	ent = (const uint8_t *)(root + 1);
	n = (root->length - sizeof(*root)) / root_entry_size;
	for (unsigned i = 0; i < n; i++) {
		uint64_t pa = 0;
		const struct acpi_header *h;

		memcpy(&pa, ent + i * root_entry_size, root_entry_size);
		h = table_at(pa, sig);
		if (h && idx-- == 0)
			return h;
	}
	return NULL;
}

struct madt {
	struct acpi_header h;
	uint32_t lapic;
	uint32_t flags;
} __packed;

int acpi_madt_cpus(uint32_t *apic_ids, unsigned max)
{
	const struct madt *m = (const void *)acpi_find("APIC", 0);
	const uint8_t *p, *end;
	int n = 0;

	if (!m) {
		err_set("no MADT (APIC) table");
		return -1;
	}
	p = (const uint8_t *)(m + 1);
	end = (const uint8_t *)m + m->h.length;
	for (; p + 2 <= end && p[1] >= 2 && p + p[1] <= end; p += p[1]) {
		uint32_t id, flags;

		if (p[0] == 0 && p[1] >= 8) {           /* processor local APIC */
			id = p[3];
			memcpy(&flags, p + 4, 4);
		} else if (p[0] == 9 && p[1] >= 16) {  /* processor local x2APIC */
			memcpy(&id, p + 4, 4);
			memcpy(&flags, p + 8, 4);
		} else {
			continue;
		}
		if (!(flags & 1))
			continue;
		if ((unsigned)n < max)
			apic_ids[n] = id;
		n++;
	}
	if (p != end) {
		err_set("MADT entry at offset %lu overruns the table (length %u)",
			(unsigned long)(p - (const uint8_t *)m), m->h.length);
		return -1;
	}
	return n;
}

uint64_t acpi_madt_lapic(void)
{
	const struct madt *m = (const void *)acpi_find("APIC", 0);

	return m ? m->lapic : 0;
}

bool acpi_mcfg(uint64_t *base, uint8_t *bus_start, uint8_t *bus_end)
{
	const struct acpi_header *h = acpi_find("MCFG", 0);
	const uint8_t *p, *end;

	if (!h)
		return false;
	end = (const uint8_t *)h + h->length;
	for (p = (const uint8_t *)h + 44; p + 16 <= end; p += 16) {
		uint16_t seg;

		memcpy(&seg, p + 8, 2);
		if (seg != 0)
			continue;
		memcpy(base, p, 8);
		*bus_start = p[10];
		*bus_end = p[11];
		return true;
	}
	return false;
}

bool acpi_pm_timer(uint16_t *port, unsigned *bits)
{
	const struct acpi_header *f = acpi_find("FACP", 0);
	const uint8_t *p = (const uint8_t *)f;
	uint32_t blk = 0, flags = 0;

	if (!f || f->length < 116)
		return false;
	memcpy(&blk, p + 76, 4);
	memcpy(&flags, p + 112, 4);
	if (!blk && f->length >= 220 && p[208] == 1) {  /* X_PM_TMR_BLK in system I/O space */
		uint64_t x;

		memcpy(&x, p + 212, 8);
		blk = x;
	}
	if (!blk || blk > 0xffff)
		return false;
	*port = blk;
	*bits = flags & (1u << 8) ? 32 : 24;
	return true;
}
