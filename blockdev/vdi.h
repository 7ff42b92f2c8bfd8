/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VDI (VirtualBox's Virtual Disk Image, version 1.1, as VirtualBox and QEMU write it): the
 * header (vdi_format.c: pure parse and serialize, every field bounded) and the format driver
 * (vdi.c).
 *
 * Little-endian: a 64-byte text banner, the signature 0xbeda107f at 0x40, the header, the block
 * map at offset_bmap (one 32-bit entry per block of the disk: the index of its block in the data
 * area, 0xffffffff for a block never written, 0xfffffffe for one discarded; both read as
 * zeroes), and the data area at offset_data, block after block. A static image (type 2) has
 * every block allocated at creation, a dynamic one (type 1) allocates them as they are written.
 * Undo and differencing images (types 3 and 4, with a parent) are refused.
 */
#ifndef VIREO_BLOCKDEV_VDI_H
#define VIREO_BLOCKDEV_VDI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct blockdev_driver;
/* The format driver (blockdev/vdi.c). */
extern const struct blockdev_driver blockdev_vdi;

#define VDI_HEADER_LEN 512
#define VDI_OFF_BLOCKS_ALLOCATED 0x184 /* the header's count, rewritten as blocks are added */
#define VDI_SIGNATURE 0xbeda107fu
#define VDI_VERSION_1_1 0x00010001u
#define VDI_HEADER_SIZE_1_1 0x180u /* the header_size QEMU writes (from 0x48 to 0x1c8) */
#define VDI_TYPE_DYNAMIC 1
#define VDI_TYPE_STATIC 2
#define VDI_UNALLOCATED 0xffffffffu
#define VDI_DISCARDED 0xfffffffeu
#define VDI_BLOCK_DEFAULT (1u << 20)
#define VDI_BLOCK_MAX (256u << 20)
/* the largest disk qemu-img creates (VirtualBox's limit) */
#define VDI_DISK_MAX 0x1fffff8000000ULL

struct vdi_header {
	char text[64];
	uint32_t signature;
	uint32_t version;
	uint32_t header_size;
	uint32_t type;
	uint32_t flags;
	char description[256];
	uint32_t offset_bmap;
	uint32_t offset_data;
	uint32_t cylinders, heads, sectors; /* legacy geometry, kept as found */
	uint32_t sector_size;
	uint64_t disk_size;
	uint32_t block_size;
	uint32_t block_extra;
	uint32_t blocks_in_image;
	uint32_t blocks_allocated;
	uint8_t uuid_image[16], uuid_last_snap[16], uuid_link[16], uuid_parent[16];
	uint8_t rest[56];                    /* 0x1c8..0x200: the LCHS geometry, kept as found */
};

/* true when @buf (@len bytes) carries the VDI signature at 0x40 */
bool vdi_probe(const uint8_t *buf, size_t len);

/**
 * vdi_header_parse - parse and check a VDI header
 * @buf: VDI_HEADER_LEN bytes
 * @file_size: bytes of the image file
 *
 * Refuses, naming the field: a bad signature, a version other than 1.1, a header size too
 * small or running into the block map, an undo or differencing image (or one with a parent or
 * link UUID), a sector size other than 512, a block size that is not a power of two from 512
 * bytes to 256 MiB or has extra bytes, a disk larger than its blocks, a block map or data area
 * that is not sector-aligned, overlaps the header or the other, or lies past the end of the
 * file. Returns 0 or -1.
 */
int vdi_header_parse(const uint8_t *buf, uint64_t file_size, struct vdi_header *h,
		     struct error **errp);
void vdi_header_put(const struct vdi_header *h, uint8_t *buf);

/* Where the data area's block @index starts in the file. */
static inline uint64_t vdi_block_offset(const struct vdi_header *h, uint32_t index)
{
	return h->offset_data + (uint64_t)index * h->block_size;
}

/*
 * struct vdi_map_report - what vdi_map_check found in a block map
 * @allocated: entries pointing at a data block of the data area (as the header counts them)
 * @max_index: the largest data block index used + 1 (0: none)
 * @bad_index: entries whose index is not below blocks_in_image
 * @duplicates: entries pointing at a data block an earlier entry points at
 */
struct vdi_map_report {
	uint32_t allocated;
	uint32_t max_index;
	uint32_t bad_index;
	uint32_t duplicates;
};

/**
 * vdi_map_check - a block map (entries in host order) against the header and the file
 * @print: when set, each problem is printed on stderr as qemu-img check prints it
 *
 * Fills @r. Refuses, naming the entry, a data block past the end of the file (truncated
 * image). An index past blocks_in_image or shared by two entries is counted, not refused: a
 * read-only open may read such an image, vireo-img check reports them. -1 also when out of
 * memory.
 */
int vdi_map_check(const struct vdi_header *h, const uint32_t *map, uint64_t file_size,
		  bool print, struct vdi_map_report *r, struct error **errp);

#endif
