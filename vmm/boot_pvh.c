/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PVH boot of an ELF kernel (Xen docs/misc/pvh.pandoc): the PT_LOAD segments go to their
 * physical addresses, the entry point comes from the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY, and
 * the BSP starts in 32-bit protected mode, paging off, with EBX pointing at hvm_start_info.
 *
 * Every offset and size read from the file is bounded against the file before use; a file that
 * lies about them is refused naming the field.
 */
#include <elf.h>
#include <inttypes.h>
#include <stdio.h>

#include "common/spec/pvh.h"
#include "common/util.h"
#include "vmm/boot_internal.h"
#include "vmm/e820.h"
#include "vmm/layout.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PVH_START_VERSION 1

/* Where the pieces go inside the page at LAYOUT_PVH_INFO */
#define PVH_MODLIST_GPA (LAYOUT_PVH_INFO + 0x40)
#define PVH_MEMMAP_GPA  (LAYOUT_PVH_INFO + 0x80)
_Static_assert(0x80 + E820_MAX * sizeof(struct hvm_memmap_entry) <= 0x1000,
	       "start_info, modlist and memmap share one page");
_Static_assert(LAYOUT_PVH_INFO + 0x1000 <= LAYOUT_ZERO_PAGE, "the PVH page ends before the next");

/* The parts of an ELF32 or ELF64 file this loader uses, widened to 64 bits. */
struct elf {
	const struct boot_file *f;
	bool is64;
	uint64_t phoff, shoff;
	uint16_t phentsize, phnum, shentsize, shnum;
};

struct phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz, align;
};

bool boot_pvh_probe(const struct boot_file *f)
{
	return f->size >= SELFMAG && memcmp(f->data, ELFMAG, SELFMAG) == 0;
}

static const char *cls(const struct elf *e)
{
	return e->is64 ? "64-bit ELF" : "32-bit ELF";
}

/*
 * Copies the header fields this loader uses out of an Elf32_Ehdr or an Elf64_Ehdr @h (the same
 * names in both, other widths) into struct elf @e, e_machine and e_type into @machine, @type.
 */
#define ELF_TAKE_EHDR(e, h, machine, type)		\
	do {						\
		(machine) = (h).e_machine;		\
		(type) = (h).e_type;			\
		(e)->phoff = (h).e_phoff;		\
		(e)->shoff = (h).e_shoff;		\
		(e)->phentsize = (h).e_phentsize;	\
		(e)->phnum = (h).e_phnum;		\
		(e)->shentsize = (h).e_shentsize;	\
		(e)->shnum = (h).e_shnum;		\
	} while (0)

static int parse_ehdr(struct elf *e, const struct boot_file *f, struct error **errp)
{
	uint8_t ei_class = f->size > EI_CLASS ? f->data[EI_CLASS] : 0;
	uint16_t machine, type;
	size_t need;

	e->f = f;
	if (ei_class != ELFCLASS32 && ei_class != ELFCLASS64) {
		error_setg(errp, "'%s': not a bootable kernel: ELF of unknown class %u "
			   "(e_ident[%d])", f->path, ei_class, EI_CLASS);
		return -1;
	}
	e->is64 = ei_class == ELFCLASS64;
	need = e->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	if (f->size < need) {
		error_setg(errp, "'%s': truncated %s: the file has %zu bytes, the ELF header needs "
			   "%zu", f->path, cls(e), f->size, need);
		return -1;
	}
	if (f->data[EI_DATA] != ELFDATA2LSB) {
		error_setg(errp, "'%s': not a bootable kernel: big-endian %s "
			   "(e_ident[EI_DATA] = %u)", f->path, cls(e), f->data[EI_DATA]);
		return -1;
	}
	if (e->is64) {
		Elf64_Ehdr h;

		memcpy(&h, f->data, sizeof(h));
		ELF_TAKE_EHDR(e, h, machine, type);
	} else {
		Elf32_Ehdr h;

		memcpy(&h, f->data, sizeof(h));
		ELF_TAKE_EHDR(e, h, machine, type);
	}
	/* an ELF64 kernel must be x86-64; an ELF32 one may be i386 or x86-64 */
	if (machine != EM_X86_64 && (e->is64 || machine != EM_386))
		goto bad_machine;
	if (type != ET_EXEC)
		goto bad_type;
	return 0;
bad_machine:
	error_setg(errp, "'%s': not a bootable kernel: %s for machine %u (e_machine), not x86",
		   f->path, cls(e), boot_le16(f->data + offsetof(Elf32_Ehdr, e_machine)));
	return -1;
bad_type:
	error_setg(errp, "'%s': not a bootable kernel: %s of type %u (e_type), not an executable "
		   "(ET_EXEC)", f->path, cls(e), boot_le16(f->data + offsetof(Elf32_Ehdr, e_type)));
	return -1;
}

/* Bounds a table of n entries of entsize bytes at off; entsize must be want when n > 0. */
static int check_table(const struct elf *e, const char *what, const char *fields, uint64_t off,
		       uint16_t n, uint16_t entsize, size_t want, struct error **errp)
{
	if (n == 0)
		return 0;
	if (entsize != want) {
		error_setg(errp, "'%s': corrupt %s: %s entry size is %u, expected %zu", e->f->path,
			   cls(e), fields, entsize, want);
		return -1;
	}
	if (!range_within(off, (uint64_t)n * entsize, e->f->size)) {
		error_setg(errp, "'%s': truncated or corrupt %s: %s (offset 0x%" PRIx64 ", %u "
			   "entries of %u bytes) runs past the end of the file (%zu bytes)",
			   e->f->path, cls(e), what, off, n, entsize, e->f->size);
		return -1;
	}
	return 0;
}

/* Refuses [off, off+size) of a segment or section that does not lie inside the file. */
static int past_eof(const struct elf *e, const char *where, const char *off_field,
		    const char *size_field, uint64_t off, uint64_t size, struct error **errp)
{
	if (range_within(off, size, e->f->size))
		return 0;
	error_setg(errp, "'%s': truncated or corrupt %s: %s %s 0x%" PRIx64 " + %s 0x%" PRIx64
		   " runs past the end of the file (%zu bytes)", e->f->path, cls(e), where,
		   off_field, off, size_field, size, e->f->size);
	return -1;
}

static void get_phdr(const struct elf *e, unsigned int i, struct phdr *p)
{
	const uint8_t *src = e->f->data + e->phoff + (uint64_t)i * e->phentsize;

	if (e->is64) {
		Elf64_Phdr h;

		memcpy(&h, src, sizeof(h));
		*p = (struct phdr){ h.p_type, h.p_offset, h.p_paddr, h.p_filesz, h.p_memsz,
				    h.p_align };
	} else {
		Elf32_Phdr h;

		memcpy(&h, src, sizeof(h));
		*p = (struct phdr){ h.p_type, h.p_offset, h.p_paddr, h.p_filesz, h.p_memsz,
				    h.p_align };
	}
}

/*
 * Scans the notes in [off, off+len) (already bounded) for the Xen PVH entry. Notes are padded to
 * 4 bytes, or 8 when the containing segment/section asks for 8-byte alignment. Returns 1 and
 * sets *entry when found, 0 when absent, -1 on a corrupt note.
 */
static int scan_notes(const struct elf *e, const char *where, uint64_t off, uint64_t len,
		      uint64_t align, uint64_t *entry, struct error **errp)
{
	const uint8_t *p = e->f->data + off;
	uint64_t pad = align == 8 ? 8 : 4, pos = 0;

	while (len - pos >= 12) {
		uint32_t namesz = boot_le32(p + pos), descsz = boot_le32(p + pos + 4);
		uint32_t type = boot_le32(p + pos + 8);
		uint64_t name = pos + 12, desc = name + ALIGN_UP((uint64_t)namesz, pad);
		uint64_t next = desc + ALIGN_UP((uint64_t)descsz, pad);

		if (!range_within(desc, descsz, len)) {
			error_setg(errp, "'%s': corrupt %s: note at file offset 0x%" PRIx64
				   " (name size %u, value size %u) runs past the end of %s",
				   e->f->path, cls(e), off + pos, namesz, descsz, where);
			return -1;
		}
		if (namesz == 4 && memcmp(p + name, "Xen", 4) == 0 &&
		    type == XEN_ELFNOTE_PHYS32_ENTRY) {
			if (descsz == 4) {
				*entry = boot_le32(p + desc);
			} else if (descsz == 8) {
				*entry = boot_le64(p + desc);
			} else {
				error_setg(errp, "'%s': corrupt %s: the Xen PVH entry note "
					   "(XEN_ELFNOTE_PHYS32_ENTRY) holds %u bytes, expected 4 "
					   "or 8", e->f->path, cls(e), descsz);
				return -1;
			}
			return 1;
		}
		if (next >= len)
			break;
		pos = next;
	}
	return 0;
}

static int find_entry_note(const struct elf *e, uint64_t *entry, struct error **errp)
{
	char where[64];
	int r;

	if (check_table(e, "program header table", "program header", e->phoff, e->phnum,
			e->phentsize, e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr), errp))
		return -1;
	for (unsigned int i = 0; i < e->phnum; i++) {
		struct phdr ph;

		get_phdr(e, i, &ph);
		if (ph.type != PT_NOTE)
			continue;
		snprintf(where, sizeof(where), "program header %u (PT_NOTE)", i);
		if (past_eof(e, where, "p_offset", "p_filesz", ph.offset, ph.filesz, errp))
			return -1;
		r = scan_notes(e, where, ph.offset, ph.filesz, ph.align, entry, errp);
		if (r)
			return r;
	}
	/* No note segment named it: look at SHT_NOTE sections (files linked without PT_NOTE). */
	if (check_table(e, "section header table", "section header", e->shoff, e->shnum,
			e->shentsize, e->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr), errp))
		return -1;
	for (unsigned int i = 0; i < e->shnum; i++) {
		const uint8_t *src = e->f->data + e->shoff + (uint64_t)i * e->shentsize;
		uint64_t off, size, align;
		uint32_t type;

		if (e->is64) {
			Elf64_Shdr h;

			memcpy(&h, src, sizeof(h));
			type = h.sh_type, off = h.sh_offset, size = h.sh_size;
			align = h.sh_addralign;
		} else {
			Elf32_Shdr h;

			memcpy(&h, src, sizeof(h));
			type = h.sh_type, off = h.sh_offset, size = h.sh_size;
			align = h.sh_addralign;
		}
		if (type != SHT_NOTE)
			continue;
		snprintf(where, sizeof(where), "section %u (SHT_NOTE)", i);
		if (past_eof(e, where, "sh_offset", "sh_size", off, size, errp))
			return -1;
		r = scan_notes(e, where, off, size, align, entry, errp);
		if (r)
			return r;
	}
	error_setg(errp, "'%s': not a bootable kernel: %s without a Xen PVH entry note "
		   "(XEN_ELFNOTE_PHYS32_ENTRY)", e->f->path, cls(e));
	return -1;
}

/* Copies the PT_LOAD segments into guest RAM; returns the lowest start and highest end. */
static int load_segments(const struct elf *e, struct gmem *mem, uint64_t entry, uint64_t *lo,
			 uint64_t *hi, struct error **errp)
{
	uint64_t ram_end = mem->regions[0].gpa + mem->regions[0].size;
	char where[64];
	bool entry_loaded = false;
	unsigned int nr_load = 0;

	*lo = UINT64_MAX;
	*hi = 0;
	for (unsigned int i = 0; i < e->phnum; i++) {
		struct phdr ph;
		uint8_t *host;

		get_phdr(e, i, &ph);
		if (ph.type != PT_LOAD || ph.memsz == 0)
			continue;
		if (ph.filesz > ph.memsz) {
			error_setg(errp, "'%s': corrupt %s: program header %u (PT_LOAD) p_filesz "
				   "0x%" PRIx64 " exceeds p_memsz 0x%" PRIx64, e->f->path, cls(e),
				   i, ph.filesz, ph.memsz);
			return -1;
		}
		snprintf(where, sizeof(where), "program header %u (PT_LOAD)", i);
		if (past_eof(e, where, "p_offset", "p_filesz", ph.offset, ph.filesz, errp))
			return -1;
		if (ph.paddr < LAYOUT_HIGH_RAM_START) {
			error_setg(errp, "'%s': program header %u (PT_LOAD) loads at p_paddr "
				   "0x%" PRIx64 ", below 1 MiB, where vireo keeps boot data and "
				   "ACPI tables; link the kernel at 1 MiB or above", e->f->path, i,
				   ph.paddr);
			return -1;
		}
		host = gmem_ptr(mem, ph.paddr, ph.memsz);
		if (!host || ph.paddr + ph.memsz > LAYOUT_4G) {
			error_setg(errp, "'%s': %s [0x%" PRIx64 ", 0x%" PRIx64 ") lies outside "
				   "guest RAM below 4 GiB (0x0-0x%" PRIx64 "); give the VM more "
				   "--memory or fix p_paddr/p_memsz", e->f->path, where, ph.paddr,
				   ph.paddr + ph.memsz, ram_end);
			return -1;
		}
		memcpy(host, e->f->data + ph.offset, ph.filesz);
		memset(host + ph.filesz, 0, ph.memsz - ph.filesz);
		*lo = MIN(*lo, ph.paddr);
		*hi = MAX(*hi, ph.paddr + ph.memsz);
		if (entry >= ph.paddr && entry - ph.paddr < ph.memsz)
			entry_loaded = true;
		nr_load++;
	}
	if (nr_load == 0) {
		error_setg(errp, "'%s': not a bootable kernel: %s without loadable segments "
			   "(PT_LOAD)", e->f->path, cls(e));
		return -1;
	}
	if (!entry_loaded) {
		error_setg(errp, "'%s': corrupt %s: the PVH entry 0x%" PRIx64 " lies outside every "
			   "loadable segment", e->f->path, cls(e), entry);
		return -1;
	}
	return 0;
}

static int write_start_info(struct gmem *mem, const struct boot_params_in *in,
			    const struct boot_loaded *ld, struct error **errp)
{
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = PVH_START_VERSION,
		.cmdline_paddr = LAYOUT_CMDLINE,
		.rsdp_paddr = in->rsdp_gpa,
		.memmap_paddr = PVH_MEMMAP_GPA,
	};
	struct hvm_memmap_entry mm[E820_MAX];
	struct e820_entry map[E820_MAX];
	unsigned int n = e820_build(mem, map);

	memset(mm, 0, sizeof(mm));
	for (unsigned int i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_entry){ map[i].addr, map[i].size, map[i].type, 0 };
	si.memmap_entries = n;
	if (ld->initrd_size) {
		struct hvm_modlist_entry mod = { .paddr = ld->initrd_start,
						 .size = ld->initrd_size };

		si.nr_modules = 1;
		si.modlist_paddr = PVH_MODLIST_GPA;
		if (gmem_write(mem, PVH_MODLIST_GPA, &mod, sizeof(mod)) < 0)
			goto err;
	}
	if (gmem_write(mem, PVH_MEMMAP_GPA, mm, n * sizeof(mm[0])) < 0 ||
	    gmem_write(mem, LAYOUT_PVH_INFO, &si, sizeof(si)) < 0)
		goto err;
	return 0;
err:
	error_setg(errp, "guest RAM does not cover hvm_start_info at 0x%llx",
		   (unsigned long long)LAYOUT_PVH_INFO);
	return -1;
}

int boot_pvh_load(struct gmem *mem, const struct boot_params_in *in, const struct boot_file *f,
		  struct boot_cpu_state *out, struct error **errp)
{
	struct boot_loaded *ld = &out->loaded;
	struct elf e;
	uint64_t entry;

	if (parse_ehdr(&e, f, errp) || find_entry_note(&e, &entry, errp) < 0)
		return -1;
	if (entry >= LAYOUT_4G) {
		error_setg(errp, "'%s': corrupt %s: the PVH entry 0x%" PRIx64 " is not a 32-bit "
			   "address", f->path, cls(&e), entry);
		return -1;
	}
	if (load_segments(&e, mem, entry, &ld->kernel_start, &ld->kernel_end, errp))
		return -1;
	if (boot_write_cmdline(mem, f->path, in->cmdline, LAYOUT_CMDLINE_MAX - 1, "vireo", errp))
		return -1;
	/* the initrd must stay below 4 GiB: start_info addresses are read by 32-bit code */
	if (in->initrd_path && boot_load_initrd(mem, in->initrd_path, ld->kernel_end, LAYOUT_4G,
						&ld->initrd_start, &ld->initrd_size, errp))
		return -1;
	if (write_start_info(mem, in, ld, errp) || boot_setup_gdt(mem, out, false, errp))
		return -1;
	ld->kind = BOOT_PVH;
	ld->entry = entry;
	out->rip = entry;
	out->rbx = LAYOUT_PVH_INFO;
	out->rflags = 0x2; /* IF, TF, VM clear; bit 1 is always set */
	out->cr0 = BOOT_CR0_PE | BOOT_CR0_ET;
	return 0;
}
