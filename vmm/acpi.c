/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACPI table construction (what the guest sees is described in acpi.h). Tables are laid out in a
 * host buffer the size of the ACPI area, checksummed, and copied into guest RAM in one go.
 * Table layouts follow the ACPI 6.5 specification; x86 is little-endian, so the packed structs
 * below are the wire format.
 */
#include "vmm/acpi.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec/acpi.h"
#include "common/util.h"
#include "vmm/aml.h"
#include "vmm/layout.h"

#define ACPI_OEM_ID       "VIREO "
#define ACPI_OEM_TABLE_ID "VIREOVM "
#define ACPI_CREATOR_ID   "VIRO"

/* Generic Address Structure */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));
static_assert(sizeof(struct acpi_gas) == 12, "GAS size");

#define GAS_SYSTEM_IO     1
#define GAS_ACCESS_BYTE   1
#define GAS_ACCESS_WORD   2
#define GAS_ACCESS_DWORD  3

struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk;
	uint32_t gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len;
	uint8_t gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg, sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));
static_assert(sizeof(struct acpi_fadt) == 276, "FADT size");
static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags offset");
static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT offset");

#define FADT_WBINVD         (1u << 0)
#define FADT_PROC_C1        (1u << 2)
#define FADT_SLP_BUTTON     (1u << 5) /* no sleep button (PWR_BUTTON clear: fixed power button) */
#define FADT_FIX_RTC        (1u << 6)
#define FADT_TMR_VAL_EXT    (1u << 8) /* 32-bit PM timer */
#define FADT_RESET_REG_SUP  (1u << 10)

#define BOOT_ARCH_VGA_NOT_PRESENT  (1u << 2)
#define BOOT_ARCH_PCIE_ASPM_CTRLS  (1u << 4) /* OSPM must not enable ASPM */
#define BOOT_ARCH_CMOS_RTC_ABSENT  (1u << 5)

#define PM1_EVT_LEN 4
#define PM1_CNT_LEN 2
#define PM_TMR_LEN  4
#define GPE0_LEN    4

struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));
static_assert(sizeof(struct acpi_facs) == 64, "FACS size");

struct madt_lapic {
	uint8_t type, length, uid, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_x2apic {
	uint8_t type, length;
	uint16_t reserved;
	uint32_t x2apic_id, flags, uid;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length, id, reserved;
	uint32_t address, gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length, uid;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

struct madt_x2apic_nmi {
	uint8_t type, length;
	uint16_t flags;
	uint32_t uid;
	uint8_t lint, reserved[3];
} __attribute__((packed));

#define MADT_PCAT_COMPAT   1
#define MADT_LAPIC         0
#define MADT_IOAPIC        1
#define MADT_ISO           2
#define MADT_LAPIC_NMI     4
#define MADT_X2APIC        9
#define MADT_X2APIC_NMI    10
#define MADT_ENABLED       1
#define MPS_ACTIVE_HIGH    0x1
#define MPS_LEVEL          0xc
#define MADT_UID_ALL       0xff
#define MADT_X2UID_ALL     0xffffffffu
#define MADT_XAPIC_IDS     255 /* xAPIC IDs 0..254 (255 is the broadcast ID) */

struct mcfg_alloc {
	uint64_t base;
	uint16_t segment;
	uint8_t start_bus, end_bus;
	uint32_t reserved;
} __attribute__((packed));

/* The ACPI area being filled: a host copy of [LAYOUT_ACPI_BASE, + LAYOUT_ACPI_SIZE). */
struct acpi_area {
	uint8_t *buf;
	size_t used;
	bool full;       /* a table did not fit */
	bool aml_failed; /* the DSDT builder failed (errp says why) */
};

/* Reserves len bytes aligned to align; returns the offset (0, with `full` set, if it won't fit). */
static size_t area_alloc(struct acpi_area *ar, size_t len, size_t align)
{
	size_t off = ALIGN_UP(ar->used, align);

	if (ar->full || off > LAYOUT_ACPI_SIZE || len > LAYOUT_ACPI_SIZE - off) {
		ar->full = true;
		return 0;
	}
	ar->used = off + len;
	return off;
}

static uint32_t area_gpa(size_t off)
{
	return (uint32_t)(LAYOUT_ACPI_BASE + off);
}

static uint8_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return (uint8_t)-sum;
}

static void header_init(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

static void header_sum(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = checksum(h, h->length);
}

/* Allocates a table of len bytes with its header filled (checksum later). Returns its offset. */
static size_t table_new(struct acpi_area *ar, const char *sig, size_t len, uint8_t rev)
{
	size_t off = area_alloc(ar, len, 16);

	if (!ar->full)
		header_init((struct acpi_header *)(ar->buf + off), sig, (uint32_t)len, rev);
	return off;
}

static struct acpi_gas gas_io(uint16_t port, unsigned int bytes, uint8_t access)
{
	return (struct acpi_gas){ .space_id = GAS_SYSTEM_IO, .bit_width = (uint8_t)(8 * bytes),
				  .access_size = access, .address = port };
}

static size_t build_facs(struct acpi_area *ar)
{
	size_t off = area_alloc(ar, sizeof(struct acpi_facs), 64);
	struct acpi_facs *f = (struct acpi_facs *)(ar->buf + off);

	if (ar->full)
		return 0;
	memcpy(f->signature, "FACS", 4);
	f->length = sizeof(*f);
	f->version = 2;
	return off;
}

static size_t build_fadt(struct acpi_area *ar, size_t facs, size_t dsdt)
{
	size_t off = table_new(ar, "FACP", sizeof(struct acpi_fadt), 6);
	struct acpi_fadt *f = (struct acpi_fadt *)(ar->buf + off);

	if (ar->full)
		return 0;
	f->firmware_ctrl = area_gpa(facs);
	f->dsdt = area_gpa(dsdt);
	f->x_dsdt = area_gpa(dsdt);
	f->sci_int = LAYOUT_IRQ_SCI;
	f->smi_cmd = 0; /* no SMM: the platform is always in ACPI mode (SCI_EN reads as set) */
	f->pm1a_evt_blk = LAYOUT_PORT_PM1A_EVT;
	f->pm1a_cnt_blk = LAYOUT_PORT_PM1A_CNT;
	f->pm_tmr_blk = LAYOUT_PORT_PM_TMR;
	f->gpe0_blk = LAYOUT_PORT_GPE0;
	f->pm1_evt_len = PM1_EVT_LEN;
	f->pm1_cnt_len = PM1_CNT_LEN;
	f->pm_tmr_len = PM_TMR_LEN;
	f->gpe0_blk_len = GPE0_LEN;
	f->p_lvl2_lat = 101;  /* > 100: C2 not supported */
	f->p_lvl3_lat = 1001; /* > 1000: C3 not supported */
	f->iapc_boot_arch = BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_PCIE_ASPM_CTRLS |
			    BOOT_ARCH_CMOS_RTC_ABSENT; /* 8042 bit clear: no keyboard controller */
	f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC | FADT_TMR_VAL_EXT |
		   FADT_RESET_REG_SUP;
	f->reset_reg = gas_io(LAYOUT_PORT_RESET, 1, GAS_ACCESS_BYTE);
	f->reset_value = ACPI_RESET_VALUE;
	f->minor_version = 5;
	f->x_pm1a_evt_blk = gas_io(LAYOUT_PORT_PM1A_EVT, PM1_EVT_LEN, GAS_ACCESS_WORD);
	f->x_pm1a_cnt_blk = gas_io(LAYOUT_PORT_PM1A_CNT, PM1_CNT_LEN, GAS_ACCESS_WORD);
	f->x_pm_tmr_blk = gas_io(LAYOUT_PORT_PM_TMR, PM_TMR_LEN, GAS_ACCESS_DWORD);
	f->x_gpe0_blk = gas_io(LAYOUT_PORT_GPE0, GPE0_LEN, GAS_ACCESS_BYTE);
	return off;
}

static size_t build_madt(struct acpi_area *ar, unsigned int nr_vcpus)
{
	unsigned int nr_x = nr_vcpus > MADT_XAPIC_IDS ? nr_vcpus - MADT_XAPIC_IDS : 0;
	unsigned int nr_l = nr_vcpus - nr_x;
	size_t len = sizeof(struct acpi_header) + 8 + nr_l * sizeof(struct madt_lapic) +
		     nr_x * sizeof(struct madt_x2apic) + sizeof(struct madt_ioapic) +
		     2 * sizeof(struct madt_iso) + sizeof(struct madt_lapic_nmi) +
		     (nr_x ? sizeof(struct madt_x2apic_nmi) : 0);
	size_t off = table_new(ar, "APIC", len, 5);
	uint8_t *p = ar->buf + off + sizeof(struct acpi_header);
	uint32_t lapic = LAYOUT_LAPIC_BASE, flags = MADT_PCAT_COMPAT;

	if (ar->full)
		return 0;
	memcpy(p, &lapic, 4);
	memcpy(p + 4, &flags, 4);
	p += 8;
	for (unsigned int i = 0; i < nr_vcpus; i++) {
		if (i < nr_l) {
			struct madt_lapic e = { MADT_LAPIC, sizeof(e), (uint8_t)i, (uint8_t)i,
						MADT_ENABLED };

			memcpy(p, &e, sizeof(e));
			p += sizeof(e);
		} else {
			struct madt_x2apic e = { .type = MADT_X2APIC, .length = sizeof(e),
						 .x2apic_id = i, .flags = MADT_ENABLED, .uid = i };

			memcpy(p, &e, sizeof(e));
			p += sizeof(e);
		}
	}
	struct madt_ioapic io = { MADT_IOAPIC, sizeof(io), 0, 0, (uint32_t)LAYOUT_IOAPIC_BASE, 0 };
	struct madt_iso iso[2] = {
		{ MADT_ISO, sizeof(iso[0]), 0, 0, 2, 0 }, /* PIT: IRQ 0 on GSI 2, bus polarity */
		{ MADT_ISO, sizeof(iso[0]), 0, LAYOUT_IRQ_SCI, LAYOUT_IRQ_SCI,
		  MPS_ACTIVE_HIGH | MPS_LEVEL },
	};
	struct madt_lapic_nmi nmi = { MADT_LAPIC_NMI, sizeof(nmi), MADT_UID_ALL, 0, 1 /* LINT1 */ };

	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	memcpy(p, iso, sizeof(iso));
	p += sizeof(iso);
	memcpy(p, &nmi, sizeof(nmi));
	p += sizeof(nmi);
	if (nr_x) {
		struct madt_x2apic_nmi xnmi = { .type = MADT_X2APIC_NMI, .length = sizeof(xnmi),
						.uid = MADT_X2UID_ALL, .lint = 1 };

		memcpy(p, &xnmi, sizeof(xnmi));
	}
	return off;
}

static size_t build_mcfg(struct acpi_area *ar)
{
	size_t len = sizeof(struct acpi_header) + 8 + sizeof(struct mcfg_alloc);
	size_t off = table_new(ar, "MCFG", len, 1);
	struct mcfg_alloc e = { .base = LAYOUT_PCI_ECAM_BASE, .segment = 0, .start_bus = 0,
				.end_bus = LAYOUT_PCI_ECAM_BUSES - 1 };

	if (ar->full)
		return 0;
	memcpy(ar->buf + off + sizeof(struct acpi_header) + 8, &e, sizeof(e));
	return off;
}

/* \_SB.PCI0: the PCIe host bridge, its windows and INTx routing. */
static void dsdt_pci0(struct aml *a, const struct acpi_config *cfg)
{
	size_t dev = aml_device(a, "PCI0"), pkg;
	struct aml crs;

	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_SEG");
	aml_int(a, 0);
	aml_name(a, "_BBN");
	aml_int(a, 0);
	aml_name(a, "_UID");
	aml_int(a, 0);

	aml_init(&crs);
	aml_res_word_bus(&crs, 0, LAYOUT_PCI_ECAM_BUSES - 1);
	aml_res_io(&crs, LAYOUT_PORT_PCI_CFG, 8);
	aml_res_word_io(&crs, 0x1000, 0xffff);
	aml_res_dword_mem(&crs, (uint32_t)LAYOUT_PCI_MMIO32_BASE,
			  (uint32_t)(LAYOUT_PCI_MMIO32_BASE + LAYOUT_PCI_MMIO32_SIZE - 1));
	if (cfg->mmio64_size)
		aml_res_qword_mem(&crs, cfg->mmio64_base, cfg->mmio64_base + cfg->mmio64_size - 1);
	aml_res_end(&crs);
	aml_name(a, "_CRS");
	aml_buffer(a, &crs);
	aml_free(&crs);

	/* _PRT: Package { Package { slot << 16 | 0xffff, pin, 0 (no link device), GSI }, ... } */
	aml_name(a, "_PRT");
	pkg = aml_package(a, 32 * 4);
	for (unsigned int slot = 0; slot < 32; slot++) {
		for (unsigned int pin = 0; pin < 4; pin++) {
			size_t e = aml_package(a, 4);

			aml_int(a, (uint64_t)slot << 16 | 0xffff);
			aml_int(a, pin);
			aml_int(a, 0);
			aml_int(a, acpi_pci_intx_gsi(slot, pin));
			aml_end(a, e);
		}
	}
	aml_end(a, pkg);
	aml_end(a, dev);
}

/* \_SB.MRES: reserves the ECAM window as a motherboard resource (Linux checks for one). */
static void dsdt_mres(struct aml *a)
{
	size_t dev = aml_device(a, "MRES");
	struct aml crs;

	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0C02");
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_init(&crs);
	aml_res_mem32_fixed(&crs, (uint32_t)LAYOUT_PCI_ECAM_BASE,
			    (uint32_t)(LAYOUT_PCI_ECAM_BUSES * MiB));
	aml_res_end(&crs);
	aml_name(a, "_CRS");
	aml_buffer(a, &crs);
	aml_free(&crs);
	aml_end(a, dev);
}

static void dsdt_com1(struct aml *a)
{
	size_t dev = aml_device(a, "COM1");
	struct aml crs;

	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name(a, "_UID");
	aml_int(a, 1);
	aml_init(&crs);
	aml_res_io(&crs, LAYOUT_PORT_COM1, 8);
	aml_res_irq(&crs, 1u << LAYOUT_IRQ_COM1);
	aml_res_end(&crs);
	aml_name(a, "_CRS");
	aml_buffer(a, &crs);
	aml_free(&crs);
	aml_end(a, dev);
}

static void dsdt_body(struct aml *a, const struct acpi_config *cfg)
{
	size_t sb = aml_scope(a, "\\_SB_"), s5;

	dsdt_pci0(a, cfg);
	dsdt_mres(a);
	dsdt_com1(a);
	aml_end(a, sb);

	/* \_S5: {SLP_TYPa, SLP_TYPb, reserved, reserved} */
	aml_name(a, "\\_S5_");
	s5 = aml_package(a, 4);
	aml_int(a, ACPI_SLP_TYP_S5);
	aml_int(a, ACPI_SLP_TYP_S5);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_end(a, s5);
}

static size_t build_dsdt(struct acpi_area *ar, const struct acpi_config *cfg, struct error **errp)
{
	struct aml a;
	size_t off = 0;

	aml_init(&a);
	dsdt_body(&a, cfg);
	if (a.err) {
		error_setg(errp, "building the ACPI DSDT: %s", a.err);
		ar->aml_failed = true;
		ar->full = true; /* stops the build */
		goto out;
	}
	off = table_new(ar, "DSDT", sizeof(struct acpi_header) + a.len, 2);
	if (!ar->full)
		memcpy(ar->buf + off + sizeof(struct acpi_header), a.buf, a.len);
out:
	aml_free(&a);
	return off;
}

/* RSDT (32-bit entries) and XSDT (64-bit entries) listing the same tables. */
static void build_rsdt_xsdt(struct acpi_area *ar, size_t *rsdt, size_t *xsdt, const size_t *tables,
			    unsigned int n)
{
	size_t hl = sizeof(struct acpi_header);

	*rsdt = table_new(ar, "RSDT", hl + 4 * n, 1);
	*xsdt = table_new(ar, "XSDT", hl + 8 * n, 1);
	if (ar->full)
		return;
	for (unsigned int i = 0; i < n; i++) {
		uint32_t a32 = area_gpa(tables[i]);
		uint64_t a64 = a32;

		memcpy(ar->buf + *rsdt + hl + 4 * i, &a32, 4);
		memcpy(ar->buf + *xsdt + hl + 8 * i, &a64, 8);
	}
}

static void build_rsdp(struct acpi_area *ar, size_t off, size_t rsdt, size_t xsdt)
{
	struct acpi_rsdp *r = (struct acpi_rsdp *)(ar->buf + off);

	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, ACPI_OEM_ID, 6);
	r->revision = 2;
	r->rsdt_address = area_gpa(rsdt);
	r->length = sizeof(*r);
	r->xsdt_address = area_gpa(xsdt);
	r->checksum = checksum(r, 20);
	r->extended_checksum = checksum(r, sizeof(*r));
}

static int acpi_check_config(struct gmem *mem, const struct acpi_config *cfg, struct error **errp)
{
	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > ACPI_MAX_VCPUS) {
		error_setg(errp, "ACPI tables: %u vCPUs requested, the MADT supports 1 to %u",
			   cfg->nr_vcpus, ACPI_MAX_VCPUS);
		return -1;
	}
	if (cfg->mmio64_size && (cfg->mmio64_base < LAYOUT_4G ||
				 cfg->mmio64_base + cfg->mmio64_size - 1 < cfg->mmio64_base)) {
		error_setg(errp, "ACPI tables: bad 64-bit PCI window 0x%llx+0x%llx",
			   (unsigned long long)cfg->mmio64_base,
			   (unsigned long long)cfg->mmio64_size);
		return -1;
	}
	if (!gmem_ptr(mem, LAYOUT_ACPI_BASE, LAYOUT_ACPI_SIZE)) {
		error_setg(errp, "ACPI tables: guest range 0x%llx+0x%llx is not RAM",
			   (unsigned long long)LAYOUT_ACPI_BASE,
			   (unsigned long long)LAYOUT_ACPI_SIZE);
		return -1;
	}
	return 0;
}

int acpi_build(struct gmem *mem, const struct acpi_config *cfg, uint64_t *rsdp_gpa,
	       struct error **errp)
{
	struct acpi_area ar = { 0 };
	size_t rsdp, rsdt, xsdt, facs, dsdt, tables[3];

	if (acpi_check_config(mem, cfg, errp) < 0)
		return -1;
	ar.buf = calloc(1, LAYOUT_ACPI_SIZE);
	if (!ar.buf) {
		error_setg(errp, "ACPI tables: out of memory");
		return -1;
	}
	rsdp = area_alloc(&ar, sizeof(struct acpi_rsdp), 16); /* first: at LAYOUT_ACPI_BASE */
	facs = build_facs(&ar);
	dsdt = build_dsdt(&ar, cfg, errp);
	tables[0] = build_fadt(&ar, facs, dsdt);
	tables[1] = build_madt(&ar, cfg->nr_vcpus);
	tables[2] = build_mcfg(&ar);
	build_rsdt_xsdt(&ar, &rsdt, &xsdt, tables, ARRAY_SIZE(tables));
	if (ar.aml_failed) {
		goto fail; /* build_dsdt said why */
	} else if (ar.full) {
		error_setg(errp, "ACPI tables for %u vCPUs do not fit in %llu KiB at 0x%llx",
			   cfg->nr_vcpus, (unsigned long long)(LAYOUT_ACPI_SIZE / KiB),
			   (unsigned long long)LAYOUT_ACPI_BASE);
		goto fail;
	}
	header_sum((struct acpi_header *)(ar.buf + dsdt));
	for (unsigned int i = 0; i < ARRAY_SIZE(tables); i++)
		header_sum((struct acpi_header *)(ar.buf + tables[i]));
	header_sum((struct acpi_header *)(ar.buf + rsdt));
	header_sum((struct acpi_header *)(ar.buf + xsdt));
	build_rsdp(&ar, rsdp, rsdt, xsdt);
	gmem_write(mem, LAYOUT_ACPI_BASE, ar.buf, LAYOUT_ACPI_SIZE);
	free(ar.buf);
	*rsdp_gpa = LAYOUT_ACPI_BASE + rsdp;
	return 0;
fail:
	free(ar.buf);
	return -1;
}
