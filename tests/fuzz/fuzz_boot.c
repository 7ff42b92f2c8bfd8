/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the kernel loader (vmm/boot.c, boot_pvh.c, boot_bzimage.c) on a hostile kernel
 * file.
 *
 * Input: one option byte, then the kernel file (written to a memfd, loaded through
 * /proc/self/fd/N as `--kernel` would be).
 *   bits 0-2  initrd: 0-2 none, 3 an empty file, 4 1 byte, 5 4097 bytes, 6 3 MiB, 7 62 MiB
 *   bits 3-5  command line: NULL, "", a short one, or 255 / 2047 / 2048 / 65535 / 65536 bytes
 *   bit 6     an ACPI RSDP address
 *   bit 7     1 MiB + 64 KiB of guest RAM instead of 64 MiB
 * Guest RAM is one malloc'd buffer reused across runs (boot_load only writes guest RAM, so stale
 * bytes from an earlier run cannot change what it does).
 *
 * Invariants after a successful load: the kernel lies in RAM at or above 1 MiB, the entry point
 * is inside it (bzImage: load address + 0x200), the initrd is page-aligned, above the kernel,
 * inside RAM and whole, the command line is in guest RAM, NUL-terminated, and the version string
 * is terminated. After a failure: a message.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/boot.h"
#include "vmm/layout.h"

#define RAM_BIG (64 * MiB)
#define RAM_SMALL (1 * MiB + 64 * KiB)

static const uint64_t initrd_sizes[8] = { 0, 0, 0, 0, 1, 4097, 3 * MiB, 62 * MiB };
static const size_t cmdline_lens[8] = { 0, 0, 0, 255, 2047, 2048, 65535, 65536 };

static uint8_t *ram;
static int kernel_fd = -1;
static int initrd_fd[8] = { -1, -1, -1, -1, -1, -1, -1, -1 };
static char *long_cmdline;

static int make_memfd(const char *name, uint64_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		perror("fuzz_boot: memfd");
		abort();
	}
	return fd;
}

static void setup(void)
{
	ram = calloc(1, RAM_BIG);
	long_cmdline = malloc(65536 + 1);
	if (!ram || !long_cmdline)
		abort();
	for (size_t i = 0; i < 65536; i++)
		long_cmdline[i] = "console=ttyS0 "[i % 14];
	long_cmdline[65536] = '\0';
	kernel_fd = make_memfd("fuzz-kernel", 0);
	for (unsigned int i = 3; i < 8; i++) {
		initrd_fd[i] = make_memfd("fuzz-initrd", initrd_sizes[i]);
		if (initrd_sizes[i])
			(void)!pwrite(initrd_fd[i], "\x1f\x8b", 1, 0); /* a non-zero first byte */
	}
}

static const char *pick_cmdline(unsigned int sel, size_t *len)
{
	switch (sel) {
	case 0:
		*len = 0;
		return NULL;
	case 1:
		*len = 0;
		return "";
	case 2:
		*len = strlen("console=ttyS0 reboot=k panic=-1");
		return "console=ttyS0 reboot=k panic=-1";
	default:
		/* the tail of the long string, so it is NUL-terminated at the wanted length */
		*len = cmdline_lens[sel];
		return long_cmdline + 65536 - cmdline_lens[sel];
	}
}

static void check_loaded(const struct gmem *m, const struct boot_cpu_state *s, bool elf,
			 const char *cmdline, size_t cmdline_len, uint64_t initrd_size)
{
	const struct boot_loaded *ld = &s->loaded;
	uint64_t ram_end = m->regions[0].size;
	const char *cl;

	FUZZ_CHECK(ld->kind == (elf ? BOOT_PVH : BOOT_BZIMAGE), "kind %d", ld->kind);
	FUZZ_CHECK(ld->kernel_start >= LAYOUT_HIGH_RAM_START && ld->kernel_start < ld->kernel_end &&
		   ld->kernel_end <= ram_end, "kernel at [0x%llx, 0x%llx), RAM ends at 0x%llx",
		   (unsigned long long)ld->kernel_start, (unsigned long long)ld->kernel_end,
		   (unsigned long long)ram_end);
	FUZZ_CHECK(s->rip == ld->entry, "rip 0x%llx, entry 0x%llx", (unsigned long long)s->rip,
		   (unsigned long long)ld->entry);
	if (elf)
		FUZZ_CHECK(ld->entry >= ld->kernel_start && ld->entry < ld->kernel_end,
			   "PVH entry 0x%llx outside the kernel", (unsigned long long)ld->entry);
	else
		FUZZ_CHECK(ld->entry == ld->kernel_start + 0x200, "bzImage entry 0x%llx",
			   (unsigned long long)ld->entry);
	FUZZ_CHECK(memchr(ld->version, '\0', sizeof(ld->version)), "version not terminated");
	if (initrd_size) {
		FUZZ_CHECK(ld->initrd_size == initrd_size, "initrd of %llu bytes, file has %llu",
			   (unsigned long long)ld->initrd_size, (unsigned long long)initrd_size);
		FUZZ_CHECK(ld->initrd_start % 4096 == 0 && ld->initrd_start >= ld->kernel_end &&
			   ld->initrd_start + ld->initrd_size <= ram_end,
			   "initrd at [0x%llx, +0x%llx), kernel ends at 0x%llx",
			   (unsigned long long)ld->initrd_start,
			   (unsigned long long)ld->initrd_size, (unsigned long long)ld->kernel_end);
		FUZZ_CHECK(ram[ld->initrd_start] == 0x1f, "initrd content not in guest RAM");
	} else {
		FUZZ_CHECK(ld->initrd_size == 0 && ld->initrd_start == 0, "phantom initrd");
	}
	cl = (const char *)gmem_ptr(m, LAYOUT_CMDLINE, cmdline_len + 1);
	FUZZ_CHECK(cl && cl[cmdline_len] == '\0' && !memcmp(cl, cmdline ? cmdline : "",
							       cmdline_len),
		   "command line not at 0x%llx", (unsigned long long)LAYOUT_CMDLINE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct boot_params_in p = { 0 };
	struct boot_cpu_state s;
	struct error *err = NULL;
	char kpath[64], ipath[64];
	const char *cmdline;
	size_t cmdline_len;
	struct gmem m;
	uint8_t opt;
	int ret;

	if (!ram)
		setup();
	if (!fuzz_take_opt(&data, &size, &opt))
		return 0;
	if (ftruncate(kernel_fd, 0) < 0 || pwrite(kernel_fd, data, size, 0) != (ssize_t)size)
		abort();
	snprintf(kpath, sizeof(kpath), "/proc/self/fd/%d", kernel_fd);
	p.kernel_path = kpath;
	if (initrd_fd[opt & 7] >= 0) {
		snprintf(ipath, sizeof(ipath), "/proc/self/fd/%d", initrd_fd[opt & 7]);
		p.initrd_path = ipath;
	}
	cmdline = pick_cmdline((opt >> 3) & 7, &cmdline_len);
	p.cmdline = cmdline;
	p.rsdp_gpa = (opt & 0x40) ? LAYOUT_ACPI_BASE : 0;

	memset(&m, 0, sizeof(m));
	m.memfd = -1;
	m.ram_size = (opt & 0x80) ? RAM_SMALL : RAM_BIG;
	m.regions[0] = (struct gmem_region){ 0, m.ram_size, ram };
	m.nr_regions = 1;

	ret = boot_load(&m, &p, &s, &err);
	FUZZ_LOG("boot: %s\n", ret ? error_msg(err) : "loaded");
	if (ret == 0) {
		FUZZ_CHECK(!err, "success with an error set");
		check_loaded(&m, &s, size >= 4 && !memcmp(data, "\177ELF", 4), cmdline, cmdline_len,
			     p.initrd_path ? initrd_sizes[opt & 7] : 0);
	} else {
		FUZZ_CHECK(ret == -1 && err && error_msg(err)[0], "failure %d without a message",
			   ret);
		error_free(err);
	}
	return 0;
}
