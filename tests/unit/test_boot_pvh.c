/* SPDX-License-Identifier: Apache-2.0 */
/* PVH ELF loading: synthetic ELF32/ELF64 kernels written to temp files, loaded into gmem. */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "boot_fixture.h"
#include "common/util.h"
#include "vmm/boot.h"
#include "vmm/e820.h"
#include "vmm/layout.h"

#define SEG_OFF    0x1000   /* file offset of the loadable segment */
#define SEG_FILESZ 0x3000
#define SEG_MEMSZ  0x5000   /* 0x2000 of bss */
#define NOTE_OFF   0x100
#define SHDR_OFF   0x200
#define FILE_SIZE  (SEG_OFF + SEG_FILESZ)

struct elf_opts {
	bool is64;
	bool note_in_section; /* SHT_NOTE section instead of a PT_NOTE segment */
	bool no_note;
	unsigned int desc_size; /* 4 or 8 */
	uint64_t paddr;
	uint64_t entry;
};

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

/*
 * Writes the ELF header, the program headers (PT_LOAD, PT_NOTE) and, with o->note_in_section, the
 * section headers of an ELF<W> image (W: 32 or 64) into buf. The entry point and the segment's
 * virtual address are vaddr.
 */
#define ELF_HEADERS(W, buf, o, machine, vaddr, phnum, note_size)                                \
	do {                                                                                    \
		Elf##W##_Ehdr eh = {                                                            \
			.e_type = ET_EXEC, .e_machine = (machine), .e_version = EV_CURRENT,     \
			.e_entry = (Elf##W##_Addr)(vaddr), .e_phoff = sizeof(Elf##W##_Ehdr),    \
			.e_ehsize = sizeof(Elf##W##_Ehdr), .e_phentsize = sizeof(Elf##W##_Phdr), \
			.e_phnum = (phnum),                                                     \
		};                                                                              \
		Elf##W##_Phdr ph[2] = {                                                         \
			{ .p_type = PT_LOAD, .p_offset = SEG_OFF,                               \
			  .p_vaddr = (Elf##W##_Addr)(vaddr),                                    \
			  .p_paddr = (Elf##W##_Addr)(o)->paddr, .p_filesz = SEG_FILESZ,         \
			  .p_memsz = SEG_MEMSZ, .p_align = 0x1000 },                            \
			{ .p_type = PT_NOTE, .p_offset = NOTE_OFF, .p_filesz = (note_size),     \
			  .p_align = 4 },                                                       \
		};                                                                              \
		Elf##W##_Shdr sh[2] = {                                                         \
			{ 0 },                                                                  \
			{ .sh_type = SHT_NOTE, .sh_offset = NOTE_OFF, .sh_size = (note_size),   \
			  .sh_addralign = 4 },                                                  \
		};                                                                              \
                                                                                                \
		memcpy(eh.e_ident, ELFMAG, SELFMAG);                                            \
		eh.e_ident[EI_CLASS] = ELFCLASS##W;                                             \
		eh.e_ident[EI_DATA] = ELFDATA2LSB;                                              \
		eh.e_ident[EI_VERSION] = EV_CURRENT;                                            \
		if ((o)->note_in_section) {                                                     \
			eh.e_shoff = SHDR_OFF;                                                  \
			eh.e_shentsize = sizeof(Elf##W##_Shdr);                                 \
			eh.e_shnum = 2;                                                         \
			memcpy((buf) + SHDR_OFF, sh, sizeof(sh));                               \
		}                                                                               \
		memcpy((buf), &eh, sizeof(eh));                                                 \
		memcpy((buf) + eh.e_phoff, ph, (phnum) * sizeof(ph[0]));                        \
	} while (0)

/* Builds a minimal PVH kernel image into buf (FILE_SIZE bytes). */
static void build_elf(uint8_t *buf, const struct elf_opts *o)
{
	uint8_t *note = buf + NOTE_OFF;
	uint32_t note_size = 12 + 4 + o->desc_size;
	uint16_t phnum = o->note_in_section ? 1 : 2;

	memset(buf, 0, FILE_SIZE);
	for (size_t i = 0; i < SEG_FILESZ; i++)
		buf[SEG_OFF + i] = pattern(i);
	/* note: namesz, descsz, type, "Xen\0", value */
	memcpy(note, &(uint32_t){ 4 }, 4);
	memcpy(note + 4, &(uint32_t){ o->desc_size }, 4);
	memcpy(note + 8, &(uint32_t){ o->no_note ? 17 : 18 }, 4);
	memcpy(note + 12, "Xen", 4);
	memcpy(note + 16, &o->entry, o->desc_size);

	if (o->is64)
		ELF_HEADERS(64, buf, o, EM_X86_64, 0xffffffff81000000ULL, phnum, note_size);
	else
		ELF_HEADERS(32, buf, o, EM_386, o->paddr, phnum, note_size);
}

static const struct elf_opts default64 = {
	.is64 = true, .desc_size = 8, .paddr = 0x100000, .entry = 0x100040,
};

/* Builds an image into buf (FILE_SIZE bytes) and loads it into a new guest of ram bytes. */
static void load_elf(struct gmem *m, uint64_t ram, uint8_t *buf, const struct elf_opts *o,
		     struct boot_cpu_state *st)
{
	assert_int_equal(gmem_init(m, ram, false), 0);
	build_elf(buf, o);
	assert_int_equal(bootfx_load(m, buf, FILE_SIZE, NULL, NULL, st, NULL, 0), 0);
}

static void pvh_elf64_loads_segment_and_zeroes_bss(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct boot_cpu_state st;
	struct gmem m;
	uint8_t *p;

	assert_int_equal(gmem_init(&m, 128 * MiB, false), 0);
	p = gmem_ptr(&m, 0x100000, SEG_MEMSZ);
	memset(p, 0xaa, SEG_MEMSZ); /* the bss must be cleared, not assumed zero */
	build_elf(buf, &default64);
	assert_int_equal(bootfx_load(&m, buf, sizeof(buf), NULL, NULL, &st, NULL, 0), 0);
	for (size_t i = 0; i < SEG_FILESZ; i++)
		assert_int_equal(p[i], pattern(i));
	for (size_t i = SEG_FILESZ; i < SEG_MEMSZ; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(st.loaded.kind, BOOT_PVH);
	assert_int_equal(st.loaded.kernel_start, 0x100000);
	assert_int_equal(st.loaded.kernel_end, 0x100000 + SEG_MEMSZ);
	gmem_destroy(&m);
}

static void pvh_start_info_has_cmdline_rsdp_memmap_and_initrd_module(void **state)
{
	static uint8_t buf[FILE_SIZE], initrd[10000];
	struct e820_entry map[E820_MAX];
	struct boot_cpu_state st;
	uint64_t si = LAYOUT_PVH_INFO, mod, mm, ird;
	char cmdline[64], *ipath;
	unsigned int n;
	struct gmem m;

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	ipath = bootfx_write_tmp(initrd, sizeof(initrd));
	assert_int_equal(gmem_init(&m, 128 * MiB, false), 0);
	build_elf(buf, &default64);
	assert_int_equal(bootfx_load(&m, buf, sizeof(buf), "console=ttyS0 hello", ipath, &st, NULL,
				  0), 0);
	assert_int_equal(bootfx_rd32(&m, si + 0), 0x336ec578);            /* magic */
	assert_int_equal(bootfx_rd32(&m, si + 4), 1);                     /* version */
	assert_int_equal(bootfx_rd32(&m, si + 8), 0);                     /* flags */
	assert_int_equal(bootfx_rd32(&m, si + 12), 1);                    /* nr_modules */
	assert_int_equal(bootfx_rd64(&m, si + 24), LAYOUT_CMDLINE);       /* cmdline_paddr */
	assert_int_equal(bootfx_rd64(&m, si + 32), LAYOUT_ACPI_BASE);     /* rsdp_paddr */
	assert_int_equal(gmem_read(&m, LAYOUT_CMDLINE, cmdline, 20), 0);
	assert_string_equal(cmdline, "console=ttyS0 hello");

	/* memmap: the e820 map, 24-byte entries */
	mm = bootfx_rd64(&m, si + 40);
	n = e820_build(&m, map);
	assert_int_equal(bootfx_rd32(&m, si + 48), n);
	for (unsigned int i = 0; i < n; i++) {
		assert_int_equal(bootfx_rd64(&m, mm + 24 * i), map[i].addr);
		assert_int_equal(bootfx_rd64(&m, mm + 24 * i + 8), map[i].size);
		assert_int_equal(bootfx_rd32(&m, mm + 24 * i + 16), map[i].type);
	}

	/* one module: the initrd, page-aligned, above the kernel, at the top of RAM */
	mod = bootfx_rd64(&m, si + 16);
	assert_true(mod >= LAYOUT_PVH_INFO && mod < LAYOUT_PVH_INFO + 0x1000);
	ird = bootfx_rd64(&m, mod);
	assert_int_equal(bootfx_rd64(&m, mod + 8), sizeof(initrd));
	assert_int_equal(bootfx_rd64(&m, mod + 16), 0);
	assert_true(IS_ALIGNED(ird, 4096));
	assert_true(ird >= st.loaded.kernel_end);
	assert_true(ird + sizeof(initrd) <= 128 * MiB);
	assert_true(ird + sizeof(initrd) > 128 * MiB - 4096);
	assert_memory_equal(gmem_ptr(&m, ird, sizeof(initrd)), initrd, sizeof(initrd));
	assert_int_equal(st.loaded.initrd_start, ird);
	assert_int_equal(st.loaded.initrd_size, sizeof(initrd));
	gmem_destroy(&m);
	bootfx_drop_tmp(ipath);
}

static void pvh_without_initrd_has_no_modules_and_empty_cmdline(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct boot_cpu_state st;
	struct gmem m;

	assert_int_equal(gmem_init(&m, 128 * MiB, false), 0);
	memset(gmem_ptr(&m, LAYOUT_CMDLINE, 1), 'x', 1);
	build_elf(buf, &default64);
	assert_int_equal(bootfx_load(&m, buf, sizeof(buf), NULL, NULL, &st, NULL, 0), 0);
	assert_int_equal(bootfx_rd32(&m, LAYOUT_PVH_INFO + 12), 0);
	assert_int_equal(bootfx_rd64(&m, LAYOUT_PVH_INFO + 16), 0);
	assert_int_equal(*(uint8_t *)gmem_ptr(&m, LAYOUT_CMDLINE, 1), 0);
	assert_int_equal(st.loaded.initrd_size, 0);
	gmem_destroy(&m);
}

static void pvh_cpu_state_is_flat_32bit_protected_mode_with_ebx_start_info(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct boot_cpu_state st;
	struct gmem m;

	load_elf(&m, 128 * MiB, buf, &default64, &st);
	assert_int_equal(st.rip, 0x100040);
	assert_int_equal(st.loaded.entry, 0x100040);
	assert_int_equal(st.rbx, LAYOUT_PVH_INFO);
	assert_int_equal(st.rflags, 0x2);
	assert_int_equal(st.cr0, 0x11); /* PE | ET, paging off */
	assert_int_equal(st.cr3, 0);
	assert_int_equal(st.cr4, 0);
	assert_int_equal(st.efer, 0);
	bootfx_check_flat(&st.cs, 0x10, 0xb, false);
	bootfx_check_flat(&st.ds, 0x18, 0x3, false);
	bootfx_check_flat(&st.es, 0x18, 0x3, false);
	bootfx_check_flat(&st.ss, 0x18, 0x3, false);
	bootfx_check_flat(&st.fs, 0x18, 0x3, false);
	bootfx_check_flat(&st.gs, 0x18, 0x3, false);
	/* pvh.pandoc: tr is a 32-bit TSS (active) with base 0 and limit 0x67 */
	assert_int_equal(st.tr.base, 0);
	assert_int_equal(st.tr.limit, 0x67);
	assert_int_equal(st.tr.type, 0xb);
	assert_int_equal(st.tr.present, 1);
	assert_int_equal(st.tr.s, 0);
	/* the GDT in guest memory matches the segment registers */
	assert_int_equal(st.gdt_base, LAYOUT_BOOT_GDT);
	assert_true(st.gdt_limit >= 0x27);
	assert_int_equal(bootfx_rd64(&m, LAYOUT_BOOT_GDT + 0x10), 0x00cf9b000000ffffULL);
	assert_int_equal(bootfx_rd64(&m, LAYOUT_BOOT_GDT + 0x18), 0x00cf93000000ffffULL);
	assert_int_equal(bootfx_rd64(&m, LAYOUT_BOOT_GDT + 0x20), 0x00008b0000000067ULL);
	gmem_destroy(&m);
}

static void pvh_elf32_with_4_byte_note_loads(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct elf_opts o = { .is64 = false, .desc_size = 4, .paddr = 0x200000,
			      .entry = 0x200100 };
	struct boot_cpu_state st;
	struct gmem m;

	load_elf(&m, 64 * MiB, buf, &o, &st);
	assert_int_equal(st.rip, 0x200100);
	assert_memory_equal(gmem_ptr(&m, 0x200000, SEG_FILESZ), buf + SEG_OFF, SEG_FILESZ);
	gmem_destroy(&m);
}

static void pvh_note_found_in_section_headers_without_pt_note(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct elf_opts o = default64;
	struct boot_cpu_state st;
	struct gmem m;

	assert_int_equal(gmem_init(&m, 64 * MiB, false), 0);
	for (int is64 = 0; is64 <= 1; is64++) {
		o.is64 = is64;
		o.note_in_section = true;
		build_elf(buf, &o);
		assert_int_equal(bootfx_load(&m, buf, sizeof(buf), NULL, NULL, &st, NULL, 0), 0);
		assert_int_equal(st.rip, o.entry);
	}
	gmem_destroy(&m);
}

static void pvh_refuses_elf_without_xen_note_saying_so(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct elf_opts o = default64;
	struct boot_cpu_state st;
	char msg[1024];
	struct gmem m;

	assert_int_equal(gmem_init(&m, 64 * MiB, false), 0);
	o.no_note = true;
	build_elf(buf, &o);
	assert_int_equal(bootfx_load(&m, buf, sizeof(buf), NULL, NULL, &st, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "not a bootable kernel: 64-bit ELF without a Xen PVH entry "
				    "note (XEN_ELFNOTE_PHYS32_ENTRY)"));
	o.is64 = false;
	o.desc_size = 4;
	build_elf(buf, &o);
	assert_int_equal(bootfx_load(&m, buf, sizeof(buf), NULL, NULL, &st, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "32-bit ELF without a Xen PVH entry note"));
	gmem_destroy(&m);
}

static void pvh_refuses_every_truncation(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct boot_cpu_state st;
	char msg[1024];
	struct gmem m;

	assert_int_equal(gmem_init(&m, 64 * MiB, false), 0);
	for (int is64 = 0; is64 <= 1; is64++) {
		struct elf_opts o = default64;

		o.is64 = is64;
		build_elf(buf, &o);
		for (size_t len = 0; len < FILE_SIZE; len++) {
			int r = bootfx_load(&m, buf, len, NULL, NULL, &st, msg, sizeof(msg));

			if (r != -1)
				fail_msg("ELF%d truncated to %zu bytes was accepted",
					 is64 ? 64 : 32, len);
		}
		assert_int_equal(bootfx_load(&m, buf, FILE_SIZE, NULL, NULL, &st, NULL, 0), 0);
	}
	/* a few messages name what is cut short */
	build_elf(buf, &default64);
	bootfx_load(&m, buf, 40, NULL, NULL, &st, msg, sizeof(msg));
	assert_non_null(strstr(msg, "truncated 64-bit ELF: the file has 40 bytes, the ELF header "
				    "needs 64"));
	bootfx_load(&m, buf, 100, NULL, NULL, &st, msg, sizeof(msg));
	assert_non_null(strstr(msg, "program header table"));
	bootfx_load(&m, buf, NOTE_OFF + 10, NULL, NULL, &st, msg, sizeof(msg));
	assert_non_null(strstr(msg, "program header 1 (PT_NOTE)"));
	bootfx_load(&m, buf, FILE_SIZE - 1, NULL, NULL, &st, msg, sizeof(msg));
	assert_non_null(strstr(msg, "program header 0 (PT_LOAD) p_offset 0x1000 + p_filesz 0x3000 "
				    "runs past the end of the file"));
	bootfx_load(&m, buf, 3, NULL, NULL, &st, msg, sizeof(msg));
	assert_non_null(strstr(msg, "not a bootable kernel: file of 3 bytes, no ELF or bzImage "
				    "header"));
	gmem_destroy(&m);
}

/* Patches a 64-bit test image, loads it, expects refusal with `want` in the message. */
static void expect_refused(struct gmem *m, void (*patch)(uint8_t *buf), const char *want)
{
	static uint8_t buf[FILE_SIZE];
	struct boot_cpu_state st;
	char msg[1024];

	build_elf(buf, &default64);
	patch(buf);
	assert_int_equal(bootfx_load(m, buf, sizeof(buf), NULL, NULL, &st, msg, sizeof(msg)), -1);
	if (!strstr(msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", msg, want);
}

#define PH64(buf, i) ((Elf64_Phdr *)((buf) + sizeof(Elf64_Ehdr)) + (i))
#define EH64(buf) ((Elf64_Ehdr *)(buf))

static void p_bad_phentsize(uint8_t *b) { EH64(b)->e_phentsize = 40; }
static void p_phoff_past_eof(uint8_t *b) { EH64(b)->e_phoff = FILE_SIZE - 8; }
static void p_phoff_huge(uint8_t *b) { EH64(b)->e_phoff = UINT64_MAX - 8; }
static void p_desc_size_6(uint8_t *b) { memcpy(b + NOTE_OFF + 4, &(uint32_t){ 6 }, 4); }
static void p_desc_size_huge(uint8_t *b) { memcpy(b + NOTE_OFF + 4, &(uint32_t){ -1u }, 4); }
static void p_filesz_gt_memsz(uint8_t *b) { PH64(b, 0)->p_filesz = SEG_MEMSZ + 1; }
static void p_seg_offset_huge(uint8_t *b) { PH64(b, 0)->p_offset = UINT64_MAX - 0x100; }
static void p_seg_outside_ram(uint8_t *b)
{
	PH64(b, 0)->p_paddr = 200 * MiB;
	memcpy(b + NOTE_OFF + 16, &(uint64_t){ 200 * MiB }, 8);
}
static void p_seg_wraps(uint8_t *b) { PH64(b, 0)->p_paddr = UINT64_MAX - 0x1000; }
static void p_seg_below_1m(uint8_t *b) { PH64(b, 0)->p_paddr = 0x8000; }
static void p_entry_outside(uint8_t *b) { memcpy(b + NOTE_OFF + 16, &(uint64_t){ 0x90000 }, 8); }
static void p_entry_64bit(uint8_t *b) { memcpy(b + NOTE_OFF + 16, &(uint64_t){ 1ULL << 32 }, 8); }
static void p_big_endian(uint8_t *b) { b[EI_DATA] = ELFDATA2MSB; }
static void p_bad_class(uint8_t *b) { b[EI_CLASS] = 7; }
static void p_arm(uint8_t *b) { EH64(b)->e_machine = EM_AARCH64; }
static void p_dyn(uint8_t *b) { EH64(b)->e_type = ET_DYN; }
static void p_no_load(uint8_t *b) { PH64(b, 0)->p_type = PT_NULL; }

static void pvh_refuses_corrupt_fields_naming_them(void **state)
{
	struct gmem m;

	assert_int_equal(gmem_init(&m, 128 * MiB, false), 0);
	expect_refused(&m, p_bad_phentsize, "program header entry size is 40, expected 56");
	expect_refused(&m, p_phoff_past_eof, "program header table (offset 0x3ff8");
	expect_refused(&m, p_phoff_huge, "runs past the end of the file");
	expect_refused(&m, p_desc_size_6, "holds 6 bytes, expected 4 or 8");
	expect_refused(&m, p_desc_size_huge, "note at file offset 0x100");
	expect_refused(&m, p_filesz_gt_memsz, "p_filesz 0x5001 exceeds p_memsz 0x5000");
	expect_refused(&m, p_seg_offset_huge, "program header 0 (PT_LOAD) p_offset");
	expect_refused(&m, p_seg_outside_ram, "lies outside guest RAM below 4 GiB");
	expect_refused(&m, p_seg_wraps, "lies outside guest RAM");
	expect_refused(&m, p_seg_below_1m, "below 1 MiB");
	expect_refused(&m, p_entry_outside, "PVH entry 0x90000 lies outside every loadable");
	expect_refused(&m, p_entry_64bit, "is not a 32-bit address");
	expect_refused(&m, p_big_endian, "big-endian 64-bit ELF");
	expect_refused(&m, p_bad_class, "ELF of unknown class 7");
	expect_refused(&m, p_arm, "for machine 183 (e_machine), not x86");
	expect_refused(&m, p_dyn, "not an executable (ET_EXEC)");
	expect_refused(&m, p_no_load, "without loadable segments (PT_LOAD)");
	gmem_destroy(&m);
}

static void pvh_refuses_cmdline_longer_than_the_cmdline_area(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct boot_cpu_state st;
	char *cmd = malloc(LAYOUT_CMDLINE_MAX + 1), msg[1024];
	struct gmem m;

	assert_int_equal(gmem_init(&m, 64 * MiB, false), 0);
	build_elf(buf, &default64);
	memset(cmd, 'a', LAYOUT_CMDLINE_MAX);
	cmd[LAYOUT_CMDLINE_MAX] = '\0';
	assert_int_equal(bootfx_load(&m, buf, sizeof(buf), cmd, NULL, &st, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "kernel command line of 65536 bytes is too long"));
	cmd[LAYOUT_CMDLINE_MAX - 1] = '\0'; /* 65535 + NUL fills the area exactly */
	assert_int_equal(bootfx_load(&m, buf, sizeof(buf), cmd, NULL, &st, NULL, 0), 0);
	assert_int_equal(*(uint8_t *)gmem_ptr(&m, LAYOUT_CMDLINE + LAYOUT_CMDLINE_MAX - 1, 1), 0);
	free(cmd);
	gmem_destroy(&m);
}

static void pvh_refuses_initrd_that_does_not_fit(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct boot_params_in in = { 0 };
	struct boot_cpu_state st;
	struct error *err = NULL;
	char *kpath, *ipath;
	struct gmem m;
	FILE *f;

	assert_int_equal(gmem_init(&m, 16 * MiB, false), 0);
	build_elf(buf, &default64);
	kpath = bootfx_write_tmp(buf, sizeof(buf));
	ipath = bootfx_write_tmp("", 0);
	f = fopen(ipath, "r+");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 15 * MiB), 0); /* kernel ends at 1 MiB + 20 KiB */
	fclose(f);
	in.kernel_path = kpath;
	in.initrd_path = ipath;
	assert_int_equal(boot_load(&m, &in, &st, &err), -1);
	assert_non_null(strstr(error_msg(err), ipath));
	assert_non_null(strstr(error_msg(err), "does not fit in guest RAM"));
	error_free(err);
	err = NULL;
	/* an empty initrd is refused too */
	assert_int_equal(truncate(ipath, 0), 0);
	assert_int_equal(boot_load(&m, &in, &st, &err), -1);
	assert_non_null(strstr(error_msg(err), "is empty"));
	error_free(err);
	bootfx_drop_tmp(kpath);
	bootfx_drop_tmp(ipath);
	gmem_destroy(&m);
}

static void pvh_memmap_covers_ram_above_4g(void **state)
{
	static uint8_t buf[FILE_SIZE];
	struct boot_cpu_state st;
	uint64_t mm, last;
	struct gmem m;
	uint32_t n;

	load_elf(&m, 5 * GiB, buf, &default64, &st);
	mm = bootfx_rd64(&m, LAYOUT_PVH_INFO + 40);
	n = bootfx_rd32(&m, LAYOUT_PVH_INFO + 48);
	assert_int_equal(n, 6);
	last = mm + 24 * (n - 1);
	assert_int_equal(bootfx_rd64(&m, last), 4 * GiB);
	assert_int_equal(bootfx_rd64(&m, last + 8), 2 * GiB);
	assert_int_equal(bootfx_rd32(&m, last + 16), 1);
	gmem_destroy(&m);
}

static void boot_refuses_missing_directory_and_tiny_ram(void **state)
{
	struct boot_params_in in = { .kernel_path = "/nonexistent/vmlinux" };
	struct boot_cpu_state st;
	struct error *err = NULL;
	struct gmem m;

	assert_int_equal(gmem_init(&m, 64 * MiB, false), 0);
	assert_int_equal(boot_load(&m, &in, &st, &err), -1);
	assert_non_null(strstr(error_msg(err), "'/nonexistent/vmlinux': cannot open"));
	error_free(err);
	err = NULL;
	in.kernel_path = "/";
	assert_int_equal(boot_load(&m, &in, &st, &err), -1);
	assert_non_null(strstr(error_msg(err), "'/': not a regular file"));
	error_free(err);
	err = NULL;
	gmem_destroy(&m);
	assert_int_equal(gmem_init(&m, 512 * KiB, false), 0);
	assert_int_equal(boot_load(&m, &in, &st, &err), -1);
	assert_non_null(strstr(error_msg(err), "too small"));
	error_free(err);
	gmem_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pvh_elf64_loads_segment_and_zeroes_bss),
		cmocka_unit_test(pvh_start_info_has_cmdline_rsdp_memmap_and_initrd_module),
		cmocka_unit_test(pvh_without_initrd_has_no_modules_and_empty_cmdline),
		cmocka_unit_test(pvh_cpu_state_is_flat_32bit_protected_mode_with_ebx_start_info),
		cmocka_unit_test(pvh_elf32_with_4_byte_note_loads),
		cmocka_unit_test(pvh_note_found_in_section_headers_without_pt_note),
		cmocka_unit_test(pvh_refuses_elf_without_xen_note_saying_so),
		cmocka_unit_test(pvh_refuses_every_truncation),
		cmocka_unit_test(pvh_refuses_corrupt_fields_naming_them),
		cmocka_unit_test(pvh_refuses_cmdline_longer_than_the_cmdline_area),
		cmocka_unit_test(pvh_refuses_initrd_that_does_not_fit),
		cmocka_unit_test(pvh_memmap_covers_ram_above_4g),
		cmocka_unit_test(boot_refuses_missing_directory_and_tiny_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
