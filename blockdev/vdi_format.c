/* SPDX-License-Identifier: Apache-2.0 */
/* VDI on-disk structures (blockdev/vdi.h): pure parsing and serializing, every field bounded. */
#include "blockdev/vdi.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Field offsets. */
enum {
	H_TEXT = 0x00, H_SIGNATURE = 0x40, H_VERSION = 0x44, H_HEADER_SIZE = 0x48, H_TYPE = 0x4c,
	H_FLAGS = 0x50, H_DESCRIPTION = 0x54, H_OFFSET_BMAP = 0x154, H_OFFSET_DATA = 0x158,
	H_CYLINDERS = 0x15c, H_HEADS = 0x160, H_SECTORS = 0x164, H_SECTOR_SIZE = 0x168,
	H_DISK_SIZE = 0x170, H_BLOCK_SIZE = 0x178, H_BLOCK_EXTRA = 0x17c,
	H_BLOCKS_IN_IMAGE = 0x180, H_BLOCKS_ALLOCATED = 0x184, H_UUID_IMAGE = 0x188,
	H_UUID_LAST_SNAP = 0x198, H_UUID_LINK = 0x1a8, H_UUID_PARENT = 0x1b8, H_REST = 0x1c8,
};

bool vdi_probe(const uint8_t *buf, size_t len)
{
	return len >= H_SIGNATURE + 4 && le32(buf + H_SIGNATURE) == VDI_SIGNATURE;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return buf_is_zero(p, n);
}

static void get(const uint8_t *buf, struct vdi_header *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->text, buf + H_TEXT, sizeof(h->text));
	h->signature = le32(buf + H_SIGNATURE);
	h->version = le32(buf + H_VERSION);
	h->header_size = le32(buf + H_HEADER_SIZE);
	h->type = le32(buf + H_TYPE);
	h->flags = le32(buf + H_FLAGS);
	memcpy(h->description, buf + H_DESCRIPTION, sizeof(h->description));
	h->offset_bmap = le32(buf + H_OFFSET_BMAP);
	h->offset_data = le32(buf + H_OFFSET_DATA);
	h->cylinders = le32(buf + H_CYLINDERS);
	h->heads = le32(buf + H_HEADS);
	h->sectors = le32(buf + H_SECTORS);
	h->sector_size = le32(buf + H_SECTOR_SIZE);
	h->disk_size = le64(buf + H_DISK_SIZE);
	h->block_size = le32(buf + H_BLOCK_SIZE);
	h->block_extra = le32(buf + H_BLOCK_EXTRA);
	h->blocks_in_image = le32(buf + H_BLOCKS_IN_IMAGE);
	h->blocks_allocated = le32(buf + H_BLOCKS_ALLOCATED);
	memcpy(h->uuid_image, buf + H_UUID_IMAGE, 16);
	memcpy(h->uuid_last_snap, buf + H_UUID_LAST_SNAP, 16);
	memcpy(h->uuid_link, buf + H_UUID_LINK, 16);
	memcpy(h->uuid_parent, buf + H_UUID_PARENT, 16);
	memcpy(h->rest, buf + H_REST, sizeof(h->rest));
}

/* The header's own fields, each alone. */
static int check_fields(const struct vdi_header *h, struct error **errp)
{
	if (h->signature != VDI_SIGNATURE) {
		error_setg(errp, "no VDI signature at offset 0x40");
		return -1;
	}
	if (h->version != VDI_VERSION_1_1) {
		error_setg(errp, "VDI version %" PRIu32 ".%" PRIu32 " is not supported (1.1 only)",
			   h->version >> 16, h->version & 0xffff);
		return -1;
	}
	if (h->header_size < VDI_HEADER_SIZE_1_1) {
		error_setg(errp, "the VDI header size %" PRIu32 " is smaller than version 1.1's "
			   "%u bytes", h->header_size, VDI_HEADER_SIZE_1_1);
		return -1;
	}
	if (h->type != VDI_TYPE_DYNAMIC && h->type != VDI_TYPE_STATIC) {
		error_setg(errp, "VDI image type %" PRIu32 "%s is not supported (dynamic or static "
			   "only)", h->type, h->type == 3 ? " (undo)" : h->type == 4 ?
			   " (differencing)" : "");
		return -1;
	}
	if (!all_zero(h->uuid_link, 16) || !all_zero(h->uuid_parent, 16)) {
		error_setg(errp, "the VDI image names a %s UUID: differencing images are not "
			   "supported", all_zero(h->uuid_parent, 16) ? "link" : "parent");
		return -1;
	}
	if (h->sector_size != 512) {
		error_setg(errp, "the VDI sector size %" PRIu32 " is not 512", h->sector_size);
		return -1;
	}
	if (h->block_size < 512 || h->block_size > VDI_BLOCK_MAX ||
	    (h->block_size & (h->block_size - 1))) {
		error_setg(errp, "the VDI block size %" PRIu32 " is not a power of two from 512 "
			   "bytes to %u MiB", h->block_size, VDI_BLOCK_MAX >> 20);
		return -1;
	}
	if (h->block_extra) {
		error_setg(errp, "the VDI blocks carry %" PRIu32 " extra bytes (block_extra): not "
			   "supported", h->block_extra);
		return -1;
	}
	return 0;
}

int vdi_header_parse(const uint8_t *buf, uint64_t file_size, struct vdi_header *h,
		     struct error **errp)
{
	uint64_t bmap_end, header_end;

	get(buf, h);
	if (check_fields(h, errp))
		return -1;
	if ((uint64_t)h->blocks_in_image * h->block_size < h->disk_size) {
		error_setg(errp, "the VDI disk size %" PRIu64 " is larger than its %" PRIu32
			   " blocks of %" PRIu32 " bytes", h->disk_size, h->blocks_in_image,
			   h->block_size);
		return -1;
	}
	if (h->offset_bmap % 512 || h->offset_data % 512) {
		error_setg(errp, "the VDI %s offset 0x%" PRIx32 " is not a multiple of 512",
			   h->offset_bmap % 512 ? "block map" : "data",
			   h->offset_bmap % 512 ? h->offset_bmap : h->offset_data);
		return -1;
	}
	header_end = MAX((uint64_t)VDI_HEADER_LEN, (uint64_t)H_HEADER_SIZE + h->header_size);
	if (h->offset_bmap < header_end) {
		error_setg(errp, "the VDI block map at offset 0x%" PRIx32 " overlaps the header "
			   "(%" PRIu64 " bytes)", h->offset_bmap, header_end);
		return -1;
	}
	bmap_end = h->offset_bmap + (uint64_t)h->blocks_in_image * 4;
	if (bmap_end > h->offset_data) {
		error_setg(errp, "the VDI block map (%" PRIu32 " entries at offset 0x%" PRIx32
			   ") runs into the data area at offset 0x%" PRIx32, h->blocks_in_image,
			   h->offset_bmap, h->offset_data);
		return -1;
	}
	if (h->offset_data > file_size) {
		error_setg(errp, "the VDI data area offset 0x%" PRIx32 " is past the end of the "
			   "file (%" PRIu64 " bytes)", h->offset_data, file_size);
		return -1;
	}
	return 0;
}

void vdi_header_put(const struct vdi_header *h, uint8_t *buf)
{
	memset(buf, 0, VDI_HEADER_LEN);
	memcpy(buf + H_TEXT, h->text, sizeof(h->text));
	put_le32(buf + H_SIGNATURE, h->signature);
	put_le32(buf + H_VERSION, h->version);
	put_le32(buf + H_HEADER_SIZE, h->header_size);
	put_le32(buf + H_TYPE, h->type);
	put_le32(buf + H_FLAGS, h->flags);
	memcpy(buf + H_DESCRIPTION, h->description, sizeof(h->description));
	put_le32(buf + H_OFFSET_BMAP, h->offset_bmap);
	put_le32(buf + H_OFFSET_DATA, h->offset_data);
	put_le32(buf + H_CYLINDERS, h->cylinders);
	put_le32(buf + H_HEADS, h->heads);
	put_le32(buf + H_SECTORS, h->sectors);
	put_le32(buf + H_SECTOR_SIZE, h->sector_size);
	put_le64(buf + H_DISK_SIZE, h->disk_size);
	put_le32(buf + H_BLOCK_SIZE, h->block_size);
	put_le32(buf + H_BLOCK_EXTRA, h->block_extra);
	put_le32(buf + H_BLOCKS_IN_IMAGE, h->blocks_in_image);
	put_le32(buf + H_BLOCKS_ALLOCATED, h->blocks_allocated);
	memcpy(buf + H_UUID_IMAGE, h->uuid_image, 16);
	memcpy(buf + H_UUID_LAST_SNAP, h->uuid_last_snap, 16);
	memcpy(buf + H_UUID_LINK, h->uuid_link, 16);
	memcpy(buf + H_UUID_PARENT, h->uuid_parent, 16);
	memcpy(buf + H_REST, h->rest, sizeof(h->rest));
}

int vdi_map_check(const struct vdi_header *h, const uint32_t *map, uint64_t file_size,
		  bool print, struct vdi_map_report *r, struct error **errp)
{
	uint32_t n = h->blocks_in_image, *owner;

	memset(r, 0, sizeof(*r));
	/* which entry first used each data block (UINT32_MAX: none); n * 4 bytes, as the map */
	owner = malloc(sizeof(*owner) * (n ? n : 1));
	if (!owner) {
		error_setg(errp, "out of memory for a block map of %" PRIu32 " entries", n);
		return -1;
	}
	memset(owner, 0xff, sizeof(*owner) * (n ? n : 1));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t e = map[i];

		if (e == VDI_UNALLOCATED || e == VDI_DISCARDED)
			continue;
		if (!range_within(vdi_block_offset(h, e), h->block_size, file_size)) {
			error_setg(errp, "VDI block map entry %" PRIu32 " puts its block at offset "
				   "%" PRIu64 ", past the end of the file (%" PRIu64 " bytes: "
				   "truncated?)", i, vdi_block_offset(h, e), file_size);
			free(owner);
			return -1;
		}
		r->max_index = MAX(r->max_index, e + 1);
		if (e < n)
			r->allocated++;
		if (e >= n) {
			r->bad_index++;
			if (print)
				fprintf(stderr, "ERROR: block index %" PRIu32 " too large, is %" PRIu32
					"\n", i, e);
		} else if (owner[e] != UINT32_MAX) {
			r->duplicates++;
			if (print)
				fprintf(stderr, "ERROR: block index %" PRIu32 " also used by %" PRIu32
					"\n", owner[e], i);
		} else {
			owner[e] = i;
		}
	}
	free(owner);
	return 0;
}
