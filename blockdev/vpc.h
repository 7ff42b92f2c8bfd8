/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VHD ("vpc", Microsoft's Virtual Hard Disk Image Format Specification, as Virtual PC, Hyper-V,
 * Azure and QEMU write it): the on-disk structures (vpc_format.c: pure parse and serialize,
 * every field bounded) and the format driver (vpc.c).
 *
 * A VHD is a 512-byte footer (big-endian) at the end of the file, and:
 *  - fixed (disk type 2): the disk's bytes from offset 0, the footer right after them;
 *  - dynamic (disk type 3): a copy of the footer at offset 0, a 1024-byte dynamic header at
 *    the footer's data offset naming the block allocation table (BAT: one big-endian sector
 *    number per block of the disk, 0xffffffff for a block not allocated), and the blocks, each
 *    a sector bitmap (a bit per sector, rounded to whole sectors) followed by the block's data.
 * Differencing disks (type 4, with a parent) are refused.
 *
 * The disk's size is the footer's CHS geometry (cylinders x heads x sectors) for the images of
 * Virtual PC and QEMU, its current size field for those of Hyper-V, Disk2vhd, XenServer and
 * QEMU's force_size=on (told apart by the creator application, as QEMU does), and always the
 * current size when the geometry is the largest one (65535 x 16 x 255).
 */
#ifndef VIREO_BLOCKDEV_VPC_H
#define VIREO_BLOCKDEV_VPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct blockdev_driver;
/* The format driver (blockdev/vpc.c). */
extern const struct blockdev_driver blockdev_vpc;

#define VPC_SECTOR 512
#define VPC_FOOTER_LEN 512
#define VPC_DYN_LEN 1024
#define VPC_TYPE_FIXED 2
#define VPC_TYPE_DYNAMIC 3
#define VPC_TYPE_DIFF 4
#define VPC_BAT_FREE 0xffffffffu
#define VPC_NO_OFFSET 0xffffffffffffffffULL
#define VPC_BLOCK_DEFAULT (2u << 20)
#define VPC_BLOCK_MAX (256u << 20)
/* 2040 GiB: the largest disk QEMU and Hyper-V's VHD support */
#define VPC_MAX_SECTORS 0xff000000ULL
/* the largest CHS geometry, 65535 x 16 x 255 sectors: size from the current size field */
#define VPC_CHS_MAX_SECTORS (65535ULL * 16 * 255)
/* footer timestamps count seconds from 2000-01-01 00:00:00 UTC */
#define VPC_EPOCH 946684800ULL

/* How the disk size is read: as the creator application implies, or forced (force_size_calc). */
enum vpc_size_calc {
	VPC_SIZE_AUTO,
	VPC_SIZE_CHS,
	VPC_SIZE_CURRENT,
};

struct vpc_footer {
	uint32_t features;
	uint32_t version;
	uint64_t data_offset;    /* dynamic header's offset; VPC_NO_OFFSET for fixed disks */
	uint32_t timestamp;
	char creator_app[4];
	uint32_t creator_version;
	char creator_os[4];
	uint64_t orig_size;
	uint64_t current_size;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;         /* per track */
	uint32_t type;
	uint32_t checksum;       /* as read (vpc_footer_put computes it) */
	uint8_t uuid[16];
	uint8_t saved_state;
};

struct vpc_dyn {
	uint64_t data_offset;    /* unused: VPC_NO_OFFSET */
	uint64_t table_offset;   /* the BAT */
	uint32_t version;
	uint32_t max_entries;    /* BAT entries */
	uint32_t block_size;
	uint32_t checksum;
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
};

/* The footer's and dynamic header's checksum: the one's complement of the sum of their bytes,
 * the checksum field counted as zeroes (at @skip, 4 bytes). */
uint32_t vpc_checksum(const uint8_t *buf, size_t len, size_t skip);

/* true when the VPC_FOOTER_LEN bytes at @buf hold a footer whose checksum is right */
bool vpc_footer_intact(const uint8_t *buf);

/* true when @buf (@len bytes) starts with a footer copy ("conectix"): a dynamic VHD */
bool vpc_probe(const uint8_t *buf, size_t len);

/**
 * vpc_footer_parse - parse a footer
 * @buf: VPC_FOOTER_LEN bytes
 *
 * Refuses, naming the field: a cookie other than "conectix", a bad checksum, a disk type other
 * than fixed or dynamic (differencing disks named as such). Returns 0 or -1.
 */
int vpc_footer_parse(const uint8_t *buf, struct vpc_footer *f, struct error **errp);
/* Serializes @f into VPC_FOOTER_LEN bytes, with its checksum (also stored in f->checksum). */
void vpc_footer_put(struct vpc_footer *f, uint8_t *buf);

/**
 * vpc_dyn_parse - parse a dynamic disk header
 * @buf: VPC_DYN_LEN bytes
 *
 * Refuses, naming the field: a cookie other than "cxsparse", a block size that is not a power
 * of two from 512 bytes to VPC_BLOCK_MAX. Its checksum is not checked (QEMU does not either:
 * tools write it wrong). Returns 0 or -1.
 */
int vpc_dyn_parse(const uint8_t *buf, struct vpc_dyn *d, struct error **errp);
void vpc_dyn_put(struct vpc_dyn *d, uint8_t *buf);

/* Bytes of a block's sector bitmap: a bit per sector, whole sectors. */
uint32_t vpc_bitmap_size(uint32_t block_size);

/* The disk size in bytes the footer gives (see the opening comment). */
uint64_t vpc_disk_size(const struct vpc_footer *f, enum vpc_size_calc calc);

/* The CHS geometry the VHD specification gives a disk of @sectors (its appendix algorithm);
 * at most 65535 x 16 x 255. */
void vpc_chs(uint64_t sectors, uint16_t *c, uint8_t *h, uint8_t *s);

/**
 * vpc_create_size - the size and geometry of a new disk, as qemu-img makes them
 * @size: bytes asked for (rounded up to whole sectors)
 * @force: force_size=on: keep the size exactly, the geometry the largest (creator "qem2")
 *
 * Without @force the size grows to the first CHS geometry that holds it (Virtual PC reads a
 * disk by its geometry), unless that is the largest geometry. Fills @f's sizes, geometry and
 * creator application; -1 with a message over 2040 GiB.
 */
int vpc_create_size(uint64_t size, bool force, struct vpc_footer *f, struct error **errp);

/**
 * vpc_layout_check - a dynamic disk's tables against each other and the file
 * @f, @d: the parsed footer and dynamic header
 * @disk_size: the disk's size (vpc_disk_size)
 * @file_size: bytes of the image file
 * @meta_end: set to the end of the metadata (footer copy, dynamic header, BAT), sector-aligned
 *
 * Refuses, naming the field: a dynamic header or BAT past the end of the file or overlapping
 * the footer copy or each other, a BAT too small for the disk, a disk over 2040 GiB.
 */
int vpc_layout_check(const struct vpc_footer *f, const struct vpc_dyn *d, uint64_t disk_size,
		     uint64_t file_size, uint64_t *meta_end, struct error **errp);

/**
 * vpc_bat_check - the BAT's entries (host byte order) against the file
 * @bat: @n entries
 * @meta_end, @file_size: blocks must lie in [meta_end, file_size)
 * @next: set to the end of the last block (or @meta_end): where a new block goes
 *
 * Refuses, naming the entry: a block (bitmap and data) before @meta_end or past the end of the
 * file, two blocks that overlap. Returns 0 or -1 (also when out of memory).
 */
int vpc_bat_check(const uint32_t *bat, uint32_t n, uint32_t block_size, uint64_t meta_end,
		  uint64_t file_size, uint64_t *next, struct error **errp);

#endif
