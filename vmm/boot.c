/* SPDX-License-Identifier: Apache-2.0 */
/* boot_load(): reads the kernel file, recognises its format and hands it to the protocol loader. */
#include "vmm/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "vmm/boot_internal.h"
#include "vmm/layout.h"

#define PAGE_SIZE 4096ULL

/* Reads exactly len bytes at offset off; returns 0, -errno, or -ENODATA at a premature EOF. */
static int read_full(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Opens a regular file for reading and returns its fd and size, or -1 with *errp set. */
static int open_regular(const char *what, const char *path, uint64_t *size, struct error **errp)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		error_setg_errno(errp, errno, "%s'%s': cannot open", what, path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		error_setg_errno(errp, errno, "%s'%s': cannot stat", what, path);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		error_setg(errp, "%s'%s': not a regular file", what, path);
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

static uint64_t region0_end(const struct gmem *mem)
{
	return mem->nr_regions ? mem->regions[0].gpa + mem->regions[0].size : 0;
}

int boot_load(struct gmem *mem, const struct boot_params_in *in, struct boot_cpu_state *out,
	      struct error **errp)
{
	struct boot_file f = { .path = in->kernel_path };
	uint8_t *data = NULL;
	uint64_t size;
	int fd, ret = -1, err;

	memset(out, 0, sizeof(*out));
	if (region0_end(mem) < LAYOUT_HIGH_RAM_START) {
		error_setg(errp, "guest RAM of %llu bytes is too small: boot data and ACPI tables "
			   "need the first 1 MiB", (unsigned long long)mem->ram_size);
		return -1;
	}
	fd = open_regular("", in->kernel_path, &size, errp);
	if (fd < 0)
		return -1;
	if (size > mem->ram_size) {
		error_setg(errp, "'%s': kernel file of %llu bytes is larger than guest RAM (%llu "
			   "bytes)", in->kernel_path, (unsigned long long)size,
			   (unsigned long long)mem->ram_size);
		goto out_close;
	}
	data = malloc(size ? size : 1);
	if (!data) {
		error_setg_errno(errp, ENOMEM, "'%s': cannot buffer %llu bytes", in->kernel_path,
				 (unsigned long long)size);
		goto out_close;
	}
	err = read_full(fd, data, size, 0);
	if (err) {
		error_setg_errno(errp, err, "'%s': cannot read", in->kernel_path);
		goto out_free;
	}
	f.data = data;
	f.size = size;
	if (boot_pvh_probe(&f))
		ret = boot_pvh_load(mem, in, &f, out, errp);
	else if (boot_bzimage_probe(&f))
		ret = boot_bzimage_load(mem, in, &f, out, errp);
	else
		error_setg(errp, "'%s': not a bootable kernel: file of %llu bytes, no ELF or "
			   "bzImage header", in->kernel_path, (unsigned long long)size);
out_free:
	free(data);
out_close:
	close(fd);
	return ret;
}

int boot_write_cmdline(struct gmem *mem, const char *path, const char *cmdline, uint64_t max_len,
		       const char *who, struct error **errp)
{
	size_t len = cmdline ? strlen(cmdline) : 0;

	if (len > max_len || len > LAYOUT_CMDLINE_MAX - 1) {
		error_setg(errp, "'%s': kernel command line of %zu bytes is too long: %s accepts "
			   "at most %llu", path, len, who,
			   (unsigned long long)MIN(max_len, LAYOUT_CMDLINE_MAX - 1));
		return -1;
	}
	if (gmem_write(mem, LAYOUT_CMDLINE, cmdline ? cmdline : "", len) < 0 ||
	    gmem_write(mem, LAYOUT_CMDLINE + len, "", 1) < 0) {
		error_setg(errp, "guest RAM does not cover the command line at 0x%llx",
			   (unsigned long long)LAYOUT_CMDLINE);
		return -1;
	}
	return 0;
}

int boot_load_initrd(struct gmem *mem, const char *path, uint64_t floor, uint64_t ceiling,
		     uint64_t *gpa, uint64_t *size, struct error **errp)
{
	uint64_t top = ALIGN_DOWN(MIN(ceiling, region0_end(mem)), PAGE_SIZE), start, len;
	void *host;
	int fd, err;

	fd = open_regular("initrd ", path, &len, errp);
	if (fd < 0)
		return -1;
	if (len == 0) {
		error_setg(errp, "initrd '%s': file is empty", path);
		goto err;
	}
	floor = ALIGN_UP(floor, PAGE_SIZE);
	if (len > top || ALIGN_DOWN(top - len, PAGE_SIZE) < floor) {
		error_setg(errp, "initrd '%s' of %llu bytes does not fit in guest RAM: %llu bytes "
			   "free between the kernel's end (0x%llx) and 0x%llx; give the VM more "
			   "--memory", path, (unsigned long long)len,
			   (unsigned long long)(top > floor ? top - floor : 0),
			   (unsigned long long)floor, (unsigned long long)top);
		goto err;
	}
	start = ALIGN_DOWN(top - len, PAGE_SIZE);
	host = gmem_ptr(mem, start, len);
	if (!host) {
		error_setg(errp, "initrd '%s': [0x%llx, 0x%llx) is not guest RAM", path,
			   (unsigned long long)start, (unsigned long long)(start + len));
		goto err;
	}
	err = read_full(fd, host, len, 0);
	if (err) {
		error_setg_errno(errp, err == -ENODATA ? EIO : err, "initrd '%s': cannot read %llu "
				 "bytes%s", path, (unsigned long long)len,
				 err == -ENODATA ? " (file shrank while being read)" : "");
		goto err;
	}
	close(fd);
	*gpa = start;
	*size = len;
	return 0;
err:
	close(fd);
	return -1;
}

uint64_t boot_gdt_entry(const struct boot_segment *seg)
{
	uint64_t raw = seg->g ? seg->limit >> 12 : seg->limit;

	return (raw & 0xffff) | (seg->base & 0xffffff) << 16 | (uint64_t)(seg->type & 0xf) << 40 |
	       (uint64_t)(seg->s & 1) << 44 | (uint64_t)(seg->dpl & 3) << 45 |
	       (uint64_t)(seg->present & 1) << 47 | ((raw >> 16) & 0xf) << 48 |
	       (uint64_t)(seg->avl & 1) << 52 | (uint64_t)(seg->l & 1) << 53 |
	       (uint64_t)(seg->db & 1) << 54 | (uint64_t)(seg->g & 1) << 55 |
	       ((seg->base >> 24) & 0xff) << 56;
}

int boot_setup_gdt(struct gmem *mem, struct boot_cpu_state *s, bool long_mode,
		   struct error **errp)
{
	/* null, null, code, data, TSS (16 bytes: a system descriptor in long mode) */
	uint64_t gdt[6] = { 0 };
	struct boot_segment code = {
		.limit = 0xffffffff, .selector = BOOT_SEL_CS, .type = 0xb, .present = 1, .s = 1,
		.g = 1, .l = long_mode, .db = !long_mode,
	};
	struct boot_segment data = {
		.limit = 0xffffffff, .selector = BOOT_SEL_DS, .type = 0x3, .present = 1, .s = 1,
		.g = 1, .db = 1,
	};
	/* busy TSS (type 11: 32-bit busy, or 64-bit busy in long mode), as pvh.pandoc asks for */
	struct boot_segment tss = { .limit = 0x67, .selector = BOOT_SEL_TSS, .type = 0xb,
				    .present = 1 };

	gdt[BOOT_SEL_CS / 8] = boot_gdt_entry(&code);
	gdt[BOOT_SEL_DS / 8] = boot_gdt_entry(&data);
	gdt[BOOT_SEL_TSS / 8] = boot_gdt_entry(&tss);
	if (gmem_write(mem, LAYOUT_BOOT_GDT, gdt, sizeof(gdt)) < 0) {
		error_setg(errp, "guest RAM does not cover the boot GDT at 0x%llx",
			   (unsigned long long)LAYOUT_BOOT_GDT);
		return -1;
	}
	s->gdt_base = LAYOUT_BOOT_GDT;
	s->gdt_limit = sizeof(gdt) - 1;
	s->idt_base = 0;
	s->idt_limit = 0;
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->tr = tss;
	s->ldt = (struct boot_segment){ .unusable = 1 };
	return 0;
}
