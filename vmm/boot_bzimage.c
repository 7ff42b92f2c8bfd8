/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Linux bzImage through the 64-bit boot protocol (Documentation/arch/x86/boot.rst): the
 * protected-mode kernel goes to its preferred address (or, if relocatable, the lowest suitably
 * aligned one at or above 1 MiB), the zero page (struct boot_params) gets the file's setup header
 * plus our loader fields and the e820 map, and the BSP enters at load address + 0x200 in long
 * mode, on identity-mapped page tables covering the first 4 GiB, with RSI = zero page.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>

#include "common/util.h"
#include "vmm/boot_internal.h"
#include "vmm/e820.h"
#include "vmm/layout.h"

#define BZ_HDR_OFFSET      0x1f1
#define BZ_MAGIC_OFFSET    0x202
#define BZ_MAGIC           0x53726448 /* "HdrS" */
#define BZ_BOOT_FLAG       0xaa55
#define BZ_MIN_VERSION     0x020c     /* 2.12: xloadflags, XLF_KERNEL_64 */
#define BZ_HDR_MAX_END     0x290      /* the setup header area of boot_params ends here */
#define BZ_ENTRY64_OFFSET  0x200
#define BZ_LOADED_HIGH     0x01       /* loadflags */
#define BZ_CAN_USE_HEAP    0x80
#define BZ_XLF_KERNEL_64   0x01       /* xloadflags */
#define BZ_LOADER_UNKNOWN  0xff       /* type_of_loader: no assigned id */
#define BZ_VID_MODE_NORMAL 0xffff
/* heap_end_ptr: end of the setup heap as an offset from the real-mode code minus 0x200; the
 * 64-bit entry runs no setup code, so it only has to be plausible (the usual 0xfe00). */
#define BZ_HEAP_END        0xfe00
#define BZ_E820_MAX        128

struct bz_setup_header {
	uint8_t setup_sects;
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;
	uint16_t jump;
	uint32_t header;
	uint16_t version;
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader;
	uint8_t loadflags;
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image;
	uint32_t ramdisk_size;
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;
	uint32_t initrd_addr_max;
	uint32_t kernel_alignment;
	uint8_t relocatable_kernel;
	uint8_t min_alignment;
	uint16_t xloadflags;
	uint32_t cmdline_size;
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t handover_offset;
	uint32_t kernel_info_offset;
} __attribute__((packed));

struct bz_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

struct bz_boot_params {
	uint8_t pad0[0x070];
	uint64_t acpi_rsdp_addr;
	uint8_t pad1[0x0c0 - 0x078];
	uint32_t ext_ramdisk_image;
	uint32_t ext_ramdisk_size;
	uint32_t ext_cmd_line_ptr;
	uint8_t pad2[0x1e8 - 0x0cc];
	uint8_t e820_entries;
	uint8_t pad3[BZ_HDR_OFFSET - 0x1e9];
	struct bz_setup_header hdr;
	uint8_t pad4[0x2d0 - 0x26c];
	struct bz_e820_entry e820_table[BZ_E820_MAX];
	uint8_t pad5[0x1000 - 0xcd0];
} __attribute__((packed));

#define BP_AT(field, off) \
	_Static_assert(offsetof(struct bz_boot_params, field) == (off), #field " offset")
BP_AT(acpi_rsdp_addr, 0x070);
BP_AT(ext_ramdisk_image, 0x0c0);
BP_AT(ext_ramdisk_size, 0x0c4);
BP_AT(ext_cmd_line_ptr, 0x0c8);
BP_AT(e820_entries, 0x1e8);
BP_AT(hdr, 0x1f1);
BP_AT(hdr.syssize, 0x1f4);
BP_AT(hdr.vid_mode, 0x1fa);
BP_AT(hdr.boot_flag, 0x1fe);
BP_AT(hdr.header, 0x202);
BP_AT(hdr.version, 0x206);
BP_AT(hdr.kernel_version, 0x20e);
BP_AT(hdr.type_of_loader, 0x210);
BP_AT(hdr.loadflags, 0x211);
BP_AT(hdr.code32_start, 0x214);
BP_AT(hdr.ramdisk_image, 0x218);
BP_AT(hdr.ramdisk_size, 0x21c);
BP_AT(hdr.heap_end_ptr, 0x224);
BP_AT(hdr.cmd_line_ptr, 0x228);
BP_AT(hdr.initrd_addr_max, 0x22c);
BP_AT(hdr.kernel_alignment, 0x230);
BP_AT(hdr.relocatable_kernel, 0x234);
BP_AT(hdr.xloadflags, 0x236);
BP_AT(hdr.cmdline_size, 0x238);
BP_AT(hdr.pref_address, 0x258);
BP_AT(hdr.init_size, 0x260);
BP_AT(hdr.kernel_info_offset, 0x268);
BP_AT(e820_table, 0x2d0);
_Static_assert(sizeof(struct bz_boot_params) == 0x1000, "the zero page is one page");

/* Identity page tables: PML4, one PDPT, four page directories of 2 MiB pages (4 GiB). */
#define PT_PML4  LAYOUT_BOOT_PML4
#define PT_PDPT  (LAYOUT_BOOT_PML4 + 0x1000)
#define PT_PD    (LAYOUT_BOOT_PML4 + 0x2000)
#define PT_NR_PD 4
#define PTE_P    0x001ULL
#define PTE_RW   0x002ULL
#define PTE_PS   0x080ULL
_Static_assert(PT_PD + PT_NR_PD * 0x1000 <= 0x10000, "layout.h reserves 0xa000-0xffff");
_Static_assert(LAYOUT_BOOT_GDT + 0x1000 <= LAYOUT_BOOT_PML4, "GDT page ends before the PML4");
_Static_assert(LAYOUT_ZERO_PAGE + 0x1000 <= LAYOUT_BOOT_GDT, "zero page ends before the GDT");

bool boot_bzimage_probe(const struct boot_file *f)
{
	return f->size >= BZ_MAGIC_OFFSET + 4 && boot_le32(f->data + BZ_MAGIC_OFFSET) == BZ_MAGIC;
}

/* Validates the header and copies it into bp->hdr. Returns the setup size in bytes or 0. */
static uint64_t check_header(const struct boot_file *f, struct bz_boot_params *bp,
			     struct error **errp)
{
	const struct bz_setup_header *h = &bp->hdr;
	uint64_t hdr_end, setup_size;
	uint16_t version;

	if (f->size < 0x208) {
		error_setg(errp, "'%s': truncated bzImage: the file has %zu bytes, the setup "
			   "header's version field ends at 0x208", f->path, f->size);
		return 0;
	}
	version = boot_le16(f->data + 0x206);
	if (boot_le16(f->data + 0x1fe) != BZ_BOOT_FLAG) {
		error_setg(errp, "'%s': corrupt bzImage: boot_flag at 0x1fe is 0x%04x, expected "
			   "0x%04x", f->path, boot_le16(f->data + 0x1fe), BZ_BOOT_FLAG);
		return 0;
	}
	if (version < BZ_MIN_VERSION) {
		error_setg(errp, "'%s': not a bootable kernel: bzImage boot protocol %u.%02u is "
			   "too old (need 2.12 for 64-bit entry)", f->path, version >> 8,
			   version & 0xff);
		return 0;
	}
	/* the jump at 0x200 skips the header: its end is 0x202 + the jump's 8-bit offset */
	hdr_end = 0x202 + (uint64_t)f->data[0x201];
	if (hdr_end < offsetof(struct bz_boot_params, hdr.handover_offset)) {
		error_setg(errp, "'%s': corrupt bzImage: the setup header ends at 0x%" PRIx64 " "
			   "(jump at 0x200), before init_size which protocol %u.%02u has",
			   f->path, hdr_end, version >> 8, version & 0xff);
		return 0;
	}
	if (f->size < hdr_end) {
		error_setg(errp, "'%s': truncated bzImage: the setup header ends at 0x%" PRIx64
			   " but the file has %zu bytes", f->path, hdr_end, f->size);
		return 0;
	}
	memcpy((uint8_t *)bp + BZ_HDR_OFFSET, f->data + BZ_HDR_OFFSET,
	       MIN(hdr_end, BZ_HDR_MAX_END) - BZ_HDR_OFFSET);
	setup_size = ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	if (f->size <= setup_size) {
		error_setg(errp, "'%s': truncated bzImage: setup code of %u sectors (setup_sects) "
			   "ends at 0x%" PRIx64 " but the file has %zu bytes", f->path,
			   h->setup_sects, setup_size, f->size);
		return 0;
	}
	if ((uint64_t)h->syssize * 16 > f->size - setup_size) {
		error_setg(errp, "'%s': truncated bzImage: the protected-mode kernel is %llu bytes "
			   "(syssize) but only %" PRIu64 " follow the setup code", f->path,
			   (unsigned long long)h->syssize * 16, f->size - setup_size);
		return 0;
	}
	if (!(h->xloadflags & BZ_XLF_KERNEL_64)) {
		error_setg(errp, "'%s': not a bootable kernel: bzImage without a 64-bit entry "
			   "point (xloadflags 0x%x lacks XLF_KERNEL_64)", f->path, h->xloadflags);
		return 0;
	}
	if (h->relocatable_kernel && (h->kernel_alignment < 4096 ||
				      (h->kernel_alignment & (h->kernel_alignment - 1)))) {
		error_setg(errp, "'%s': corrupt bzImage: kernel_alignment 0x%x is not a power of "
			   "two >= 4096", f->path, h->kernel_alignment);
		return 0;
	}
	return setup_size;
}

/* Picks where the protected-mode kernel goes: pref_address, else (relocatable) low and aligned. */
static int place_kernel(const struct boot_file *f, const struct gmem *mem,
			const struct bz_setup_header *h, uint64_t need, uint64_t *load,
			struct error **errp)
{
	uint64_t ram_end = mem->regions[0].gpa + mem->regions[0].size, at;

	if (h->pref_address >= LAYOUT_HIGH_RAM_START && h->pref_address < ram_end &&
	    need <= ram_end - h->pref_address) {
		*load = h->pref_address;
		return 0;
	}
	if (!h->relocatable_kernel && h->pref_address < LAYOUT_HIGH_RAM_START) {
		error_setg(errp, "'%s': the kernel is not relocatable and wants to load at "
			   "0x%" PRIx64 " (pref_address), below 1 MiB where vireo keeps boot data",
			   f->path, h->pref_address);
		return -1;
	}
	if (!h->relocatable_kernel) {
		error_setg(errp, "'%s': the kernel is not relocatable and needs [0x%" PRIx64 ", "
			   "0x%" PRIx64 ") (pref_address + init_size), but guest RAM below 4 GiB "
			   "ends at 0x%" PRIx64 "; give the VM more --memory", f->path,
			   h->pref_address, h->pref_address + need, ram_end);
		return -1;
	}
	at = ALIGN_UP(LAYOUT_KERNEL_LOAD, (uint64_t)h->kernel_alignment);
	if (at >= ram_end || need > ram_end - at) {
		error_setg(errp, "'%s': the kernel needs %" PRIu64 " bytes of RAM (init_size) at "
			   "0x%" PRIx64 ", but guest RAM below 4 GiB ends at 0x%" PRIx64 "; give "
			   "the VM more --memory", f->path, need, at, ram_end);
		return -1;
	}
	*load = at;
	return 0;
}

static void read_version(const struct boot_file *f, const struct bz_setup_header *h,
			 uint64_t setup_size, char *buf, size_t len)
{
	uint64_t off = 0x200 + (uint64_t)h->kernel_version;
	size_t n = 0;

	if (h->kernel_version)
		for (; off < setup_size && n + 1 < len; off++, n++) {
			uint8_t c = f->data[off];

			if (c < 0x20 || c > 0x7e)
				break;
			buf[n] = (char)c;
		}
	buf[n] = '\0';
}

static int write_page_tables(struct gmem *mem, struct error **errp)
{
	uint64_t pml4[512] = { PT_PDPT | PTE_P | PTE_RW }, pdpt[512] = { 0 }, pd[512];

	for (unsigned int i = 0; i < PT_NR_PD; i++) {
		pdpt[i] = (PT_PD + i * 0x1000ULL) | PTE_P | PTE_RW;
		for (unsigned int j = 0; j < 512; j++)
			pd[j] = ((uint64_t)i << 30 | (uint64_t)j << 21) | PTE_P | PTE_RW | PTE_PS;
		if (gmem_write(mem, PT_PD + i * 0x1000ULL, pd, sizeof(pd)) < 0)
			goto err;
	}
	if (gmem_write(mem, PT_PML4, pml4, sizeof(pml4)) < 0 ||
	    gmem_write(mem, PT_PDPT, pdpt, sizeof(pdpt)) < 0)
		goto err;
	return 0;
err:
	error_setg(errp, "guest RAM does not cover the boot page tables at 0x%llx",
		   (unsigned long long)PT_PML4);
	return -1;
}

static void fill_zero_page(struct bz_boot_params *bp, const struct gmem *mem,
			   const struct boot_params_in *in, const struct boot_loaded *ld)
{
	struct e820_entry map[E820_MAX];
	unsigned int n = e820_build(mem, map);

	_Static_assert(E820_MAX <= BZ_E820_MAX, "the zero page holds the whole map");
	bp->hdr.vid_mode = BZ_VID_MODE_NORMAL;
	bp->hdr.type_of_loader = BZ_LOADER_UNKNOWN;
	bp->hdr.loadflags |= BZ_LOADED_HIGH | BZ_CAN_USE_HEAP;
	bp->hdr.heap_end_ptr = BZ_HEAP_END;
	bp->hdr.code32_start = (uint32_t)ld->kernel_start;
	bp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	bp->ext_cmd_line_ptr = (uint32_t)(LAYOUT_CMDLINE >> 32);
	bp->hdr.ramdisk_image = (uint32_t)ld->initrd_start;
	bp->ext_ramdisk_image = (uint32_t)(ld->initrd_start >> 32);
	bp->hdr.ramdisk_size = (uint32_t)ld->initrd_size;
	bp->ext_ramdisk_size = (uint32_t)(ld->initrd_size >> 32);
	bp->acpi_rsdp_addr = in->rsdp_gpa;
	bp->e820_entries = (uint8_t)n;
	for (unsigned int i = 0; i < n; i++)
		bp->e820_table[i] = (struct bz_e820_entry){ map[i].addr, map[i].size, map[i].type };
}

int boot_bzimage_load(struct gmem *mem, const struct boot_params_in *in,
		      const struct boot_file *f, struct boot_cpu_state *out, struct error **errp)
{
	struct bz_boot_params bp;
	struct boot_loaded *ld = &out->loaded;
	const struct bz_setup_header *h = &bp.hdr;
	uint64_t setup_size, pm_size, need, load, initrd_ceiling;

	memset(&bp, 0, sizeof(bp));
	setup_size = check_header(f, &bp, errp);
	if (!setup_size)
		return -1;
	pm_size = f->size - setup_size;
	need = MAX(pm_size, (uint64_t)h->init_size);
	if (place_kernel(f, mem, h, need, &load, errp))
		return -1;
	/* place_kernel bounded [load, load + need) to region 0 */
	memcpy(gmem_ptr(mem, load, pm_size), f->data + setup_size, pm_size);
	ld->kind = BOOT_BZIMAGE;
	ld->kernel_start = load;
	ld->kernel_end = load + need;
	ld->entry = load + BZ_ENTRY64_OFFSET;
	ld->protocol = h->version;
	read_version(f, h, setup_size, ld->version, sizeof(ld->version));

	if (boot_write_cmdline(mem, f->path, in->cmdline, h->cmdline_size,
			       "the kernel (setup header cmdline_size)", errp))
		return -1;
	/* initrd_addr_max is the highest address the initrd may occupy */
	initrd_ceiling = MIN((uint64_t)h->initrd_addr_max + 1, LAYOUT_4G);
	if (in->initrd_path && boot_load_initrd(mem, in->initrd_path, ld->kernel_end,
						initrd_ceiling, &ld->initrd_start,
						&ld->initrd_size, errp))
		return -1;
	fill_zero_page(&bp, mem, in, ld);
	if (gmem_write(mem, LAYOUT_ZERO_PAGE, &bp, sizeof(bp)) < 0) {
		error_setg(errp, "guest RAM does not cover the zero page at 0x%llx",
			   (unsigned long long)LAYOUT_ZERO_PAGE);
		return -1;
	}
	if (write_page_tables(mem, errp) || boot_setup_gdt(mem, out, true, errp))
		return -1;
	out->rip = ld->entry;
	out->rsi = LAYOUT_ZERO_PAGE;
	out->rflags = 0x2; /* interrupts off; bit 1 is always set */
	out->cr0 = BOOT_CR0_PE | BOOT_CR0_PG | BOOT_CR0_ET;
	out->cr3 = PT_PML4;
	out->cr4 = BOOT_CR4_PAE;
	out->efer = BOOT_EFER_LME | BOOT_EFER_LMA;
	return 0;
}
