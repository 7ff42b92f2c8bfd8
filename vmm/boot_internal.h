/* SPDX-License-Identifier: Apache-2.0 */
/* Pieces shared by boot.c and the two protocol loaders; not for use outside vmm/boot*.c. */
#ifndef VIREO_VMM_BOOT_INTERNAL_H
#define VIREO_VMM_BOOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/boot.h"

/* The kernel file, read whole into host memory. */
struct boot_file {
	const char *path;
	const uint8_t *data;
	size_t size;
};

bool boot_pvh_probe(const struct boot_file *f);
bool boot_bzimage_probe(const struct boot_file *f);
/* Each fills out->loaded and the registers; errors start with "'<path>': ". */
int boot_pvh_load(struct gmem *mem, const struct boot_params_in *in, const struct boot_file *f,
		  struct boot_cpu_state *out, struct error **errp);
int boot_bzimage_load(struct gmem *mem, const struct boot_params_in *in,
		      const struct boot_file *f, struct boot_cpu_state *out, struct error **errp);

/*
 * Writes the command line (NULL = "") NUL-terminated at LAYOUT_CMDLINE. Refused when longer than
 * max_len bytes (without the NUL) or than LAYOUT_CMDLINE_MAX - 1; `who` names the limit's owner,
 * path the kernel (for the message).
 */
int boot_write_cmdline(struct gmem *mem, const char *path, const char *cmdline, uint64_t max_len,
		       const char *who, struct error **errp);

/*
 * Reads the initrd at path into guest RAM, page-aligned, as high as possible with its end at or
 * below `ceiling` and in RAM region 0, and its start at or above `floor` (the kernel's end).
 */
int boot_load_initrd(struct gmem *mem, const char *path, uint64_t floor, uint64_t ceiling,
		     uint64_t *gpa, uint64_t *size, struct error **errp);

/*
 * Fills the segment and descriptor-table part of s with flat 4 GiB segments (code BOOT_SEL_CS,
 * data BOOT_SEL_DS, a busy TSS at BOOT_SEL_TSS) for 64-bit (long_mode) or 32-bit code, and writes
 * the matching GDT at LAYOUT_BOOT_GDT.
 */
int boot_setup_gdt(struct gmem *mem, struct boot_cpu_state *s, bool long_mode,
		   struct error **errp);

/* 8-byte GDT descriptor for a segment (bits as in the SDM, limit scaled by g). */
uint64_t boot_gdt_entry(const struct boot_segment *seg);

/* Little-endian loads from a byte buffer the caller has bounded. */
static inline uint16_t boot_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t boot_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t boot_le64(const uint8_t *p)
{
	return boot_le32(p) | (uint64_t)boot_le32(p + 4) << 32;
}

#endif
