/* SPDX-License-Identifier: Apache-2.0 */
/* bzImage loading through the 64-bit boot protocol: synthetic images, plus the real Debian one. */
#include <glob.h>
#include <linux/kvm.h>
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

#define PAYLOAD    0x10000
#define VERSION_AT 0x300 /* kernel version string, inside the setup code */
#define VERSION_STR "6.99.0-test (vireo@example) #1"

struct bz_opts {
	uint8_t setup_sects;
	uint16_t version;
	uint16_t xloadflags;
	uint8_t relocatable;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
};

static const struct bz_opts defaults = {
	.setup_sects = 1, .version = 0x020f, .xloadflags = 0x7f, .relocatable = 1,
	.kernel_alignment = 0x200000, .pref_address = 0x1000000, .init_size = 0x400000,
	.cmdline_size = 0x7ff, .initrd_addr_max = 0x7fffffff,
};

static void put16(uint8_t *b, size_t off, uint16_t v) { memcpy(b + off, &v, 2); }
static void put32(uint8_t *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }
static void put64(uint8_t *b, size_t off, uint64_t v) { memcpy(b + off, &v, 8); }

static size_t setup_size(const struct bz_opts *o)
{
	return ((size_t)(o->setup_sects ? o->setup_sects : 4) + 1) * 512;
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 13 + 1);
}

/* Builds a bzImage into a malloc'd buffer; returns it and its size. */
static uint8_t *build_bz(const struct bz_opts *o, size_t *len)
{
	size_t ss = setup_size(o);
	uint8_t *b = calloc(1, ss + PAYLOAD);

	assert_non_null(b);
	b[0x1f1] = o->setup_sects;
	put32(b, 0x1f4, PAYLOAD / 16);           /* syssize */
	put16(b, 0x1fe, 0xaa55);                 /* boot_flag */
	b[0x200] = 0xeb;                         /* jmp over the header ... */
	b[0x201] = 0x6a;                         /* ... which ends at 0x26c */
	memcpy(b + 0x202, "HdrS", 4);
	put16(b, 0x206, o->version);
	put16(b, 0x20e, VERSION_AT - 0x200);     /* kernel_version */
	b[0x211] = 0x01;                         /* loadflags: LOADED_HIGH */
	put32(b, 0x214, 0x100000);               /* code32_start */
	put32(b, 0x22c, o->initrd_addr_max);
	put32(b, 0x230, o->kernel_alignment);
	b[0x234] = o->relocatable;
	put16(b, 0x236, o->xloadflags);
	put32(b, 0x238, o->cmdline_size);
	put64(b, 0x258, o->pref_address);
	put32(b, 0x260, o->init_size);
	memcpy(b + VERSION_AT, VERSION_STR, sizeof(VERSION_STR));
	for (size_t i = 0; i < PAYLOAD; i++)
		b[ss + i] = pattern(i);
	*len = ss + PAYLOAD;
	return b;
}

/* Loads the default image into a new guest of ram bytes (gmem_destroy() it). */
static void load_defaults(struct gmem *m, uint64_t ram, struct boot_cpu_state *st)
{
	size_t len;
	uint8_t *bz = build_bz(&defaults, &len);

	assert_int_equal(gmem_init(m, ram, false), 0);
	assert_int_equal(bootfx_load(m, bz, len, NULL, NULL, st, NULL, 0), 0);
	free(bz);
}

#define ZP(off) (LAYOUT_ZERO_PAGE + (off))

static void bzimage_loads_kernel_at_pref_address_and_fills_zero_page(void **state)
{
	static uint8_t initrd[20000];
	struct e820_entry map[E820_MAX];
	struct boot_cpu_state st;
	uint64_t ird;
	size_t len;
	uint8_t *bz = build_bz(&defaults, &len);
	char cmd[32], *ipath;
	unsigned int n;
	struct gmem m;

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i * 3);
	ipath = bootfx_write_tmp(initrd, sizeof(initrd));
	assert_int_equal(gmem_init(&m, 128 * MiB, false), 0);
	assert_int_equal(bootfx_load(&m, bz, len, "console=ttyS0", ipath, &st, NULL, 0), 0);

	/* the protected-mode kernel, at pref_address */
	assert_memory_equal(gmem_ptr(&m, 0x1000000, PAYLOAD), bz + 1024, PAYLOAD);
	assert_int_equal(st.loaded.kind, BOOT_BZIMAGE);
	assert_int_equal(st.loaded.kernel_start, 0x1000000);
	assert_int_equal(st.loaded.kernel_end, 0x1400000);
	assert_int_equal(st.loaded.protocol, 0x020f);
	assert_string_equal(st.loaded.version, VERSION_STR);

	/* setup header copied from the file, loader fields ours */
	assert_memory_equal(gmem_ptr(&m, ZP(0x1f1), 0x26c - 0x1f1), bz + 0x1f1, 0x1fa - 0x1f1);
	assert_int_equal(bootfx_rd32(&m, ZP(0x202)), 0x53726448);
	assert_int_equal(bootfx_rd16(&m, ZP(0x206)), 0x020f);
	assert_int_equal(bootfx_rd64(&m, ZP(0x258)), 0x1000000);
	assert_int_equal(bootfx_rd32(&m, ZP(0x260)), 0x400000);
	assert_int_equal(bootfx_rd16(&m, ZP(0x1fa)), 0xffff);       /* vid_mode */
	assert_int_equal(bootfx_rd8(&m, ZP(0x210)), 0xff);          /* type_of_loader */
	assert_int_equal(bootfx_rd8(&m, ZP(0x211)), 0x81);          /* LOADED_HIGH|CAN_USE_HEAP */
	assert_int_equal(bootfx_rd16(&m, ZP(0x224)), 0xfe00);       /* heap_end_ptr */
	assert_int_equal(bootfx_rd32(&m, ZP(0x228)), LAYOUT_CMDLINE); /* cmd_line_ptr */
	assert_int_equal(bootfx_rd32(&m, ZP(0x0c8)), 0);            /* ext_cmd_line_ptr */
	assert_int_equal(bootfx_rd64(&m, ZP(0x070)), LAYOUT_ACPI_BASE); /* acpi_rsdp_addr */
	assert_int_equal(gmem_read(&m, LAYOUT_CMDLINE, cmd, 14), 0);
	assert_string_equal(cmd, "console=ttyS0");

	/* initrd: page-aligned at the top of RAM, above the kernel's init_size */
	ird = bootfx_rd32(&m, ZP(0x218));
	assert_int_equal(bootfx_rd32(&m, ZP(0x0c0)), 0);
	assert_int_equal(bootfx_rd32(&m, ZP(0x21c)), sizeof(initrd));
	assert_int_equal(bootfx_rd32(&m, ZP(0x0c4)), 0);
	assert_true(IS_ALIGNED(ird, 4096));
	assert_true(ird >= 0x1400000);
	assert_true(ird + sizeof(initrd) <= 128 * MiB && ird + sizeof(initrd) > 128 * MiB - 4096);
	assert_memory_equal(gmem_ptr(&m, ird, sizeof(initrd)), initrd, sizeof(initrd));

	/* e820 */
	n = e820_build(&m, map);
	assert_int_equal(bootfx_rd8(&m, ZP(0x1e8)), n);
	for (unsigned int i = 0; i < n; i++) {
		assert_int_equal(bootfx_rd64(&m, ZP(0x2d0) + 20 * i), map[i].addr);
		assert_int_equal(bootfx_rd64(&m, ZP(0x2d0) + 20 * i + 8), map[i].size);
		assert_int_equal(bootfx_rd32(&m, ZP(0x2d0) + 20 * i + 16), map[i].type);
	}
	gmem_destroy(&m);
	bootfx_drop_tmp(ipath);
	free(bz);
}

/* Walks the guest's 4-level page tables like the MMU would; returns the physical address. */
static uint64_t translate(const struct gmem *m, uint64_t cr3, uint64_t va)
{
	uint64_t e = bootfx_rd64(m, (cr3 & ~0xfffULL) + ((va >> 39) & 511) * 8);

	assert_true(e & 1);
	e = bootfx_rd64(m, (e & 0xffffffffff000ULL) + ((va >> 30) & 511) * 8);
	assert_true(e & 1);
	if (e & 0x80)
		return (e & 0xfffffc0000000ULL) | (va & 0x3fffffff);
	e = bootfx_rd64(m, (e & 0xffffffffff000ULL) + ((va >> 21) & 511) * 8);
	assert_true(e & 1);
	assert_true(e & 2);
	assert_true(e & 0x80); /* 2 MiB pages */
	return (e & 0xfffffffe00000ULL) | (va & 0x1fffff);
}

static void bzimage_cpu_state_is_long_mode_on_identity_map(void **state)
{
	static const uint64_t vas[] = { 0, LAYOUT_ZERO_PAGE, LAYOUT_CMDLINE, 0x1000200, 0x13fffff,
					0x7ffff000, 0xfffff000 };
	struct boot_cpu_state st;
	struct gmem m;

	load_defaults(&m, 128 * MiB, &st);
	assert_int_equal(st.rip, 0x1000200);
	assert_int_equal(st.loaded.entry, 0x1000200);
	assert_int_equal(st.rsi, LAYOUT_ZERO_PAGE);
	assert_int_equal(st.rflags, 0x2);
	assert_int_equal(st.cr0, 0x80000011);
	assert_int_equal(st.cr3, LAYOUT_BOOT_PML4);
	assert_int_equal(st.cr4, 0x20);
	assert_int_equal(st.efer, 0x500);
	bootfx_check_flat(&st.cs, 0x10, 0xb, true);
	bootfx_check_flat(&st.ds, 0x18, 0x3, false);
	bootfx_check_flat(&st.es, 0x18, 0x3, false);
	bootfx_check_flat(&st.ss, 0x18, 0x3, false);
	assert_int_equal(st.tr.type, 0xb);
	assert_int_equal(st.tr.limit, 0x67);
	assert_int_equal(st.gdt_base, LAYOUT_BOOT_GDT);
	assert_int_equal(bootfx_rd64(&m, LAYOUT_BOOT_GDT + 0x10), 0x00af9b000000ffffULL);
	assert_int_equal(bootfx_rd64(&m, LAYOUT_BOOT_GDT + 0x18), 0x00cf93000000ffffULL);
	for (size_t i = 0; i < ARRAY_SIZE(vas); i++)
		assert_int_equal(translate(&m, st.cr3, vas[i]), vas[i]);
	/* the tables live where layout.h reserves room for them */
	assert_int_equal(bootfx_rd64(&m, LAYOUT_BOOT_PML4) & ~0xfffULL, 0xb000);
	assert_int_equal(bootfx_rd64(&m, 0xb000 + 3 * 8) & ~0xfffULL, 0xf000);
	gmem_destroy(&m);
}

static void bzimage_setup_sects_zero_means_four(void **state)
{
	struct bz_opts o = defaults;
	struct boot_cpu_state st;
	struct gmem m;
	uint8_t *bz;
	size_t len;

	o.setup_sects = 0;
	bz = build_bz(&o, &len);
	assert_int_equal(len, 5 * 512 + PAYLOAD);
	assert_int_equal(gmem_init(&m, 128 * MiB, false), 0);
	assert_int_equal(bootfx_load(&m, bz, len, NULL, NULL, &st, NULL, 0), 0);
	assert_memory_equal(gmem_ptr(&m, 0x1000000, PAYLOAD), bz + 5 * 512, PAYLOAD);
	gmem_destroy(&m);
	free(bz);
}

static void bzimage_relocates_when_pref_address_does_not_fit(void **state)
{
	struct boot_cpu_state st;
	size_t len;
	uint8_t *bz = build_bz(&defaults, &len);
	struct gmem m;

	assert_int_equal(gmem_init(&m, 16 * MiB, false), 0); /* pref 16 MiB + 4 MiB > RAM */
	assert_int_equal(bootfx_load(&m, bz, len, NULL, NULL, &st, NULL, 0), 0);
	assert_int_equal(st.loaded.kernel_start, 0x200000); /* 1 MiB rounded to 2 MiB alignment */
	assert_int_equal(st.rip, 0x200200);
	assert_memory_equal(gmem_ptr(&m, 0x200000, PAYLOAD), bz + 1024, PAYLOAD);
	gmem_destroy(&m);
	free(bz);
}

static void expect_refused(struct gmem *m, const struct bz_opts *o, size_t truncate_to,
			   const char *cmdline, const char *want)
{
	struct boot_cpu_state st;
	char msg[1024];
	size_t len;
	uint8_t *bz = build_bz(o, &len);

	if (truncate_to)
		len = truncate_to;
	assert_int_equal(bootfx_load(m, bz, len, cmdline, NULL, &st, msg, sizeof(msg)), -1);
	if (!strstr(msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", msg, want);
	free(bz);
}

static void bzimage_refuses_what_it_cannot_boot_saying_why(void **state)
{
	struct bz_opts o;
	struct gmem m;

	assert_int_equal(gmem_init(&m, 16 * MiB, false), 0);
	o = defaults;
	o.relocatable = 0;
	expect_refused(&m, &o, 0, NULL, "not relocatable and needs [0x1000000, 0x1400000)");
	o.pref_address = 0x10000;
	expect_refused(&m, &o, 0, NULL, "wants to load at 0x10000 (pref_address), below 1 MiB");
	o = defaults;
	o.init_size = 15 * MiB;
	expect_refused(&m, &o, 0, NULL, "needs 15728640 bytes of RAM (init_size)");
	o = defaults;
	o.version = 0x0205;
	expect_refused(&m, &o, 0, NULL, "not a bootable kernel: bzImage boot protocol 2.05 is too "
				       "old (need 2.12 for 64-bit entry)");
	o = defaults;
	o.xloadflags = 0x02;
	expect_refused(&m, &o, 0, NULL, "xloadflags 0x2 lacks XLF_KERNEL_64");
	o = defaults;
	o.kernel_alignment = 0x300000;
	expect_refused(&m, &o, 0, NULL, "kernel_alignment 0x300000 is not a power of two");
	o = defaults;
	o.cmdline_size = 10;
	expect_refused(&m, &o, 0, "console=ttyS0", "command line of 13 bytes is too long: the "
						   "kernel (setup header cmdline_size) accepts "
						   "at most 10");
	gmem_destroy(&m);
}

static void bzimage_refuses_bad_boot_flag_and_short_header(void **state)
{
	struct boot_cpu_state st;
	char msg[1024];
	size_t len;
	uint8_t *bz = build_bz(&defaults, &len);
	struct gmem m;

	assert_int_equal(gmem_init(&m, 64 * MiB, false), 0);
	put16(bz, 0x1fe, 0x1234);
	assert_int_equal(bootfx_load(&m, bz, len, NULL, NULL, &st, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "boot_flag at 0x1fe is 0x1234"));
	put16(bz, 0x1fe, 0xaa55);
	bz[0x201] = 0x40; /* header would end at 0x242, before init_size */
	assert_int_equal(bootfx_load(&m, bz, len, NULL, NULL, &st, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "setup header ends at 0x242"));
	gmem_destroy(&m);
	free(bz);
}

static void bzimage_refuses_truncation_at_every_header_field_boundary(void **state)
{
	/* field boundaries of the setup header, the end of the setup code, inside the kernel */
	static const size_t cuts[] = {
		0, 1, 0x1f1, 0x1f2, 0x1f4, 0x1f8, 0x1fa, 0x1fc, 0x1fe, 0x200, 0x202, 0x206, 0x208,
		0x20c, 0x20e, 0x210, 0x211, 0x212, 0x214, 0x218, 0x21c, 0x220, 0x224, 0x226,
		0x227, 0x228, 0x22c, 0x230, 0x234, 0x235, 0x236, 0x238, 0x23c, 0x240, 0x248,
		0x24c, 0x250, 0x258, 0x260, 0x264, 0x268, 0x26c, 0x300, 0x3ff, 0x400, 0x401,
		0x400 + PAYLOAD / 2, 0x400 + PAYLOAD - 1,
	};
	struct boot_cpu_state st;
	char msg[1024];
	size_t len;
	uint8_t *bz = build_bz(&defaults, &len);
	struct gmem m;

	assert_int_equal(gmem_init(&m, 64 * MiB, false), 0);
	for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
		if (bootfx_load(&m, bz, cuts[i], NULL, NULL, &st, msg, sizeof(msg)) != -1)
			fail_msg("bzImage truncated to %zu bytes was accepted", cuts[i]);
		if (cuts[i] < 0x206)
			assert_non_null(strstr(msg, "no ELF or bzImage header"));
		else if (cuts[i] < 0x26c)
			assert_non_null(strstr(msg, "truncated bzImage"));
	}
	bootfx_load(&m, bz, 0x300, NULL, NULL, &st, msg, sizeof(msg));
	assert_non_null(strstr(msg, "setup code of 1 sectors (setup_sects) ends at 0x400"));
	bootfx_load(&m, bz, 0x401, NULL, NULL, &st, msg, sizeof(msg));
	assert_non_null(strstr(msg, "the protected-mode kernel is 65536 bytes (syssize) but only "
				    "1 follow"));
	assert_int_equal(bootfx_load(&m, bz, len, NULL, NULL, &st, NULL, 0), 0);
	gmem_destroy(&m);
	free(bz);
}

static void bzimage_initrd_respects_initrd_addr_max_and_ram(void **state)
{
	struct bz_opts o = defaults;
	struct boot_params_in in = { 0 };
	struct boot_cpu_state st;
	struct error *err = NULL;
	char *kpath, *ipath;
	struct gmem m;
	uint8_t *bz;
	size_t len;

	o.initrd_addr_max = 24 * MiB - 1;
	bz = build_bz(&o, &len);
	kpath = bootfx_write_tmp(bz, len);
	ipath = bootfx_write_tmp("0123456789", 10);
	in.kernel_path = kpath;
	in.initrd_path = ipath;
	assert_int_equal(gmem_init(&m, 128 * MiB, false), 0);
	assert_int_equal(boot_load(&m, &in, &st, &err), 0);
	assert_int_equal(st.loaded.initrd_start, 24 * MiB - 4096);
	assert_int_equal(bootfx_rd32(&m, ZP(0x218)), 24 * MiB - 4096);
	/* 24 MiB - 20 MiB (kernel end) = 4 MiB free: a 5 MiB initrd does not fit */
	assert_int_equal(truncate(ipath, 5 * MiB), 0);
	assert_int_equal(boot_load(&m, &in, &st, &err), -1);
	assert_non_null(strstr(error_msg(err), "does not fit in guest RAM: 4194304 bytes free "
					       "between the kernel's end (0x1400000) and "
					       "0x1800000"));
	error_free(err);
	gmem_destroy(&m);
	bootfx_drop_tmp(kpath);
	bootfx_drop_tmp(ipath);
	free(bz);
}

static void bzimage_zero_page_e820_covers_ram_above_4g(void **state)
{
	struct boot_cpu_state st;
	struct gmem m;
	uint64_t last;

	load_defaults(&m, 5 * GiB, &st);
	assert_int_equal(bootfx_rd8(&m, ZP(0x1e8)), 6);
	last = ZP(0x2d0) + 20 * 5;
	assert_int_equal(bootfx_rd64(&m, last), 4 * GiB);
	assert_int_equal(bootfx_rd64(&m, last + 8), 2 * GiB);
	assert_int_equal(bootfx_rd32(&m, last + 16), 1);
	gmem_destroy(&m);
}

static void boot_refuses_unknown_file_saying_what_was_found(void **state)
{
	static const char text[] = "#!/bin/sh\necho this is not a kernel\n";
	struct boot_cpu_state st;
	char msg[1024], want[128];
	struct gmem m;

	assert_int_equal(gmem_init(&m, 64 * MiB, false), 0);
	assert_int_equal(bootfx_load(&m, text, sizeof(text) - 1, NULL, NULL, &st, msg, sizeof(msg)),
			 -1);
	snprintf(want, sizeof(want), "not a bootable kernel: file of %zu bytes, no ELF or bzImage "
		 "header", sizeof(text) - 1);
	assert_non_null(strstr(msg, want));
	assert_int_equal(bootfx_load(&m, "", 0, NULL, NULL, &st, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "file of 0 bytes"));
	gmem_destroy(&m);
}

static void boot_cpu_to_kvm_fills_regs_and_keeps_kvm_owned_sregs(void **state)
{
	struct boot_cpu_state st;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct gmem m;

	load_defaults(&m, 128 * MiB, &st);
	memset(&regs, 0x55, sizeof(regs));
	memset(&sregs, 0, sizeof(sregs));
	sregs.apic_base = 0xfee00900;
	sregs.cr8 = 7;
	boot_cpu_to_kvm(&st, &regs, &sregs);
	assert_int_equal(regs.rip, 0x1000200);
	assert_int_equal(regs.rsi, LAYOUT_ZERO_PAGE);
	assert_int_equal(regs.rflags, 2);
	assert_int_equal(regs.rax, 0);
	assert_int_equal(regs.rbp, 0);
	assert_int_equal(sregs.apic_base, 0xfee00900);
	assert_int_equal(sregs.cr8, 7);
	assert_int_equal(sregs.cr0, 0x80000011);
	assert_int_equal(sregs.cr3, LAYOUT_BOOT_PML4);
	assert_int_equal(sregs.cr4, 0x20);
	assert_int_equal(sregs.efer, 0x500);
	assert_int_equal(sregs.gdt.base, LAYOUT_BOOT_GDT);
	assert_int_equal(sregs.gdt.limit, st.gdt_limit);
	assert_int_equal(sregs.cs.selector, 0x10);
	assert_int_equal(sregs.cs.l, 1);
	assert_int_equal(sregs.cs.limit, 0xffffffff);
	assert_int_equal(sregs.cs.type, 0xb);
	assert_int_equal(sregs.ss.selector, 0x18);
	assert_int_equal(sregs.ss.db, 1);
	assert_int_equal(sregs.tr.type, 0xb);
	assert_int_equal(sregs.ldt.unusable, 1);
	gmem_destroy(&m);
}

/* The distribution's kernel: the loader must accept it as Debian's bootloaders do. */
static void bzimage_loads_the_installed_debian_kernel(void **state)
{
	struct boot_params_in in = { .cmdline = "console=ttyS0" };
	struct boot_cpu_state st;
	struct error *err = NULL;
	const char *path, *ver;
	char initrd[4096];
	uint8_t hdr[0x400];
	uint64_t pref;
	struct gmem m;
	glob_t g;
	FILE *f;

	if (glob("/boot/vmlinuz-*-cloud-amd64", 0, NULL, &g) != 0) {
		print_message("skipped: no /boot/vmlinuz-*-cloud-amd64 "
			      "(package linux-image-cloud-amd64)\n");
		skip();
	}
	path = g.gl_pathv[g.gl_pathc - 1];
	ver = path + strlen("/boot/vmlinuz-");
	f = fopen(path, "rb");
	if (!f) {
		print_message("skipped: cannot read %s\n", path);
		globfree(&g);
		skip();
	}
	assert_int_equal(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
	fclose(f);
	memcpy(&pref, hdr + 0x258, 8);
	snprintf(initrd, sizeof(initrd), "/boot/initrd.img-%s", ver);
	in.kernel_path = path;
	in.initrd_path = access(initrd, R_OK) == 0 ? initrd : NULL;

	assert_int_equal(gmem_init(&m, 256 * MiB, false), 0);
	if (boot_load(&m, &in, &st, &err) != 0)
		fail_msg("%s", error_msg(err));
	assert_int_equal(st.loaded.kind, BOOT_BZIMAGE);
	assert_true(st.loaded.protocol >= 0x020c);
	assert_int_equal(st.loaded.kernel_start, pref);
	assert_int_equal(st.rip, pref + 0x200);
	assert_int_equal(strncmp(st.loaded.version, ver, strlen(ver)), 0);
	assert_int_equal(bootfx_rd32(&m, ZP(0x202)), 0x53726448);
	assert_int_equal(bootfx_rd8(&m, ZP(0x210)), 0xff);
	if (in.initrd_path) {
		assert_true(st.loaded.initrd_size > 0);
		assert_true(st.loaded.initrd_start >= st.loaded.kernel_end);
		assert_int_equal(bootfx_rd32(&m, ZP(0x21c)), st.loaded.initrd_size);
	}
	print_message("%s: protocol %u.%02u at 0x%llx, \"%s\"\n", path, st.loaded.protocol >> 8,
		      st.loaded.protocol & 0xff, (unsigned long long)st.loaded.kernel_start,
		      st.loaded.version);
	gmem_destroy(&m);
	globfree(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bzimage_loads_kernel_at_pref_address_and_fills_zero_page),
		cmocka_unit_test(bzimage_cpu_state_is_long_mode_on_identity_map),
		cmocka_unit_test(bzimage_setup_sects_zero_means_four),
		cmocka_unit_test(bzimage_relocates_when_pref_address_does_not_fit),
		cmocka_unit_test(bzimage_refuses_what_it_cannot_boot_saying_why),
		cmocka_unit_test(bzimage_refuses_bad_boot_flag_and_short_header),
		cmocka_unit_test(bzimage_refuses_truncation_at_every_header_field_boundary),
		cmocka_unit_test(bzimage_initrd_respects_initrd_addr_max_and_ram),
		cmocka_unit_test(bzimage_zero_page_e820_covers_ram_above_4g),
		cmocka_unit_test(boot_refuses_unknown_file_saying_what_was_found),
		cmocka_unit_test(boot_cpu_to_kvm_fills_regs_and_keeps_kvm_owned_sregs),
		cmocka_unit_test(bzimage_loads_the_installed_debian_kernel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
