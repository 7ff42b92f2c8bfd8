/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hosted sparse extent header of VMDK (vmdk_format.h): decoding with every field checked
 * against the file it came from, the stream footer, markers, and encoding. Pure: no I/O.
 */
#include <inttypes.h>
#include <string.h>

#include "blockdev/vmdk_format.h"
#include "common/util.h"

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* field offsets of the 512-byte header */
enum {
	H_MAGIC = 0, H_VERSION = 4, H_FLAGS = 8, H_CAPACITY = 12, H_GRAIN = 20, H_DESC_OFF = 28,
	H_DESC_SIZE = 36, H_GTES = 44, H_RGD = 48, H_GD = 56, H_OVERHEAD = 64, H_UNCLEAN = 72,
	H_NL = 73, H_COMPRESS = 77,
};

static const uint8_t newline_bytes[4] = { '\n', ' ', '\r', '\n' };

uint64_t vmdk_gd_entries(const struct vmdk_header *h)
{
	uint64_t per_gt = h->grain_size * h->gtes_per_gt;

	return per_gt ? DIV_ROUND_UP(h->capacity, per_gt) : 0;
}

static void decode(const uint8_t *b, struct vmdk_header *h)
{
	*h = (struct vmdk_header){
		.version = le32(b + H_VERSION),
		.flags = le32(b + H_FLAGS),
		.capacity = le64(b + H_CAPACITY),
		.grain_size = le64(b + H_GRAIN),
		.desc_offset = le64(b + H_DESC_OFF),
		.desc_size = le64(b + H_DESC_SIZE),
		.gtes_per_gt = le32(b + H_GTES),
		.rgd_offset = le64(b + H_RGD),
		.gd_offset = le64(b + H_GD),
		.overhead = le64(b + H_OVERHEAD),
		.unclean = b[H_UNCLEAN],
		.compress = le16(b + H_COMPRESS),
	};
}

/* [@sector, @sector + @bytes) of the file lies inside its @file_size bytes */
static bool in_file(uint64_t sector, uint64_t bytes, uint64_t file_size)
{
	return sector <= file_size / VMDK_SECTOR &&
	       range_within(sector * VMDK_SECTOR, bytes, file_size);
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

/* The directory at @sector of @entries u32 entries, called @what, fits the file. */
static int check_dir(const char *what, uint64_t sector, uint64_t entries, uint64_t file_size,
		     struct error **errp)
{
	if (!sector) {
		error_setg(errp, "the %s offset is 0 (it would overlap the header)", what);
		return -1;
	}
	if (!in_file(sector, entries * 4, file_size)) {
		error_setg(errp, "the %s (sector %" PRIu64 ", %" PRIu64 " entries) lies past the end "
			   "of the file (%" PRIu64 " bytes)", what, sector, entries, file_size);
		return -1;
	}
	return 0;
}

static int check(const uint8_t *b, const struct vmdk_header *h, uint64_t file_size,
		 struct error **errp)
{
	uint64_t gd_entries;

	if (h->version < 1 || h->version > 3) {
		error_setg(errp, "version %" PRIu32 " is not supported (1, 2 or 3)", h->version);
		return -1;
	}
	if ((h->flags & VMDK_FLAG_NL_DETECT) && memcmp(b + H_NL, newline_bytes, 4)) {
		error_setg(errp, "the newline detection bytes are %02x %02x %02x %02x, not 0a 20 "
			   "0d 0a: the file was damaged (copied in text mode?)", b[H_NL],
			   b[H_NL + 1], b[H_NL + 2], b[H_NL + 3]);
		return -1;
	}
	if (!h->grain_size || (h->grain_size & (h->grain_size - 1)) ||
	    h->grain_size > VMDK_MAX_GRAIN_SECTORS) {
		error_setg(errp, "the grain size of %" PRIu64 " sectors is not a power of two up to "
			   "%u", h->grain_size, VMDK_MAX_GRAIN_SECTORS);
		return -1;
	}
	if (!h->gtes_per_gt || h->gtes_per_gt > VMDK_MAX_GTES) {
		error_setg(errp, "%" PRIu32 " entries per grain table is not supported (1 to %u)",
			   h->gtes_per_gt, VMDK_MAX_GTES);
		return -1;
	}
	if (h->capacity > VMDK_MAX_CAPACITY_SECTORS) {
		error_setg(errp, "the capacity of %" PRIu64 " sectors is too large (at most %llu)",
			   h->capacity, VMDK_MAX_CAPACITY_SECTORS);
		return -1;
	}
	if ((h->flags & VMDK_FLAG_COMPRESS) && h->compress != VMDK_COMPRESS_DEFLATE) {
		error_setg(errp, "compression algorithm %u is not supported (1: deflate)",
			   h->compress);
		return -1;
	}
	if (h->desc_size > VMDK_MAX_DESC_BYTES / VMDK_SECTOR) {
		error_setg(errp, "the embedded descriptor of %" PRIu64 " sectors is larger than "
			   "%d bytes", h->desc_size, VMDK_MAX_DESC_BYTES);
		return -1;
	}
	if (h->desc_size && (!h->desc_offset ||
			     !in_file(h->desc_offset, h->desc_size * VMDK_SECTOR, file_size))) {
		error_setg(errp, "the embedded descriptor (sector %" PRIu64 ", %" PRIu64 " sectors) "
			   "overlaps the header or lies past the end of the file", h->desc_offset,
			   h->desc_size);
		return -1;
	}
	if (h->gd_offset == VMDK_GD_AT_END)
		return 0;
	gd_entries = vmdk_gd_entries(h);
	if (gd_entries > VMDK_MAX_GD_ENTRIES) {
		error_setg(errp, "the grain directory would hold %" PRIu64 " entries (at most %u): "
			   "capacity %" PRIu64 ", grain %" PRIu64 ", %" PRIu32 " per table",
			   gd_entries, VMDK_MAX_GD_ENTRIES, h->capacity, h->grain_size,
			   h->gtes_per_gt);
		return -1;
	}
	if (check_dir("grain directory", h->gd_offset, gd_entries, file_size, errp))
		return -1;
	if ((h->flags & VMDK_FLAG_RGD) && h->rgd_offset) {
		if (check_dir("redundant grain directory", h->rgd_offset, gd_entries, file_size,
			      errp))
			return -1;
		if (overlap(h->gd_offset, DIV_ROUND_UP(gd_entries * 4, VMDK_SECTOR), h->rgd_offset,
			    DIV_ROUND_UP(gd_entries * 4, VMDK_SECTOR))) {
			error_setg(errp, "the grain directory (sector %" PRIu64 ") and its redundant "
				   "copy (sector %" PRIu64 ") overlap", h->gd_offset, h->rgd_offset);
			return -1;
		}
	}
	if (overlap(h->gd_offset, DIV_ROUND_UP(gd_entries * 4, VMDK_SECTOR), h->desc_offset,
		    h->desc_size)) {
		error_setg(errp, "the grain directory (sector %" PRIu64 ") overlaps the embedded "
			   "descriptor", h->gd_offset);
		return -1;
	}
	return 0;
}

int vmdk_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct vmdk_header *h,
		      struct error **errp)
{
	if (len < VMDK_SECTOR) {
		error_setg(errp, "the VMDK header is truncated (%zu of 512 bytes)", len);
		return -1;
	}
	if (memcmp(buf, VMDK_MAGIC, 4)) {
		error_setg(errp, "no VMDK sparse extent magic (KDMV)");
		return -1;
	}
	decode(buf, h);
	return check(buf, h, file_size, errp);
}

bool vmdk_marker_get(const uint8_t *sector, uint64_t *value, uint32_t *size, uint32_t *type)
{
	*value = le64(sector);
	*size = le32(sector + 8);
	*type = le32(sector + 12);
	return *size == 0;
}

void vmdk_marker_put(uint8_t *sector, uint64_t sectors, uint32_t type)
{
	memset(sector, 0, VMDK_SECTOR);
	put64(sector, sectors);
	put32(sector + 12, type);
}

int vmdk_footer_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct vmdk_header *h,
		      struct error **errp)
{
	uint64_t value;
	uint32_t size, type;

	if (len < 3 * VMDK_SECTOR) {
		error_setg(errp, "the file is too short (%zu bytes) to end with a stream footer",
			   len);
		return -1;
	}
	if (!vmdk_marker_get(buf, &value, &size, &type) || type != VMDK_MARKER_FOOTER) {
		error_setg(errp, "the stream footer's marker is missing (size %" PRIu32 ", type "
			   "%" PRIu32 " at the end of the file, not a footer marker)", size, type);
		return -1;
	}
	if (!vmdk_marker_get(buf + 2 * VMDK_SECTOR, &value, &size, &type) || value ||
	    type != VMDK_MARKER_EOS) {
		error_setg(errp, "the file does not end with an end-of-stream marker");
		return -1;
	}
	if (vmdk_header_parse(buf + VMDK_SECTOR, VMDK_SECTOR, file_size, h, errp)) {
		error_prepend(errp, "stream footer");
		return -1;
	}
	if (h->gd_offset == VMDK_GD_AT_END) {
		error_setg(errp, "the stream footer does not say where the grain directory is");
		return -1;
	}
	return 0;
}

void vmdk_header_put(const struct vmdk_header *h, uint8_t *b)
{
	memset(b, 0, VMDK_SECTOR);
	memcpy(b + H_MAGIC, VMDK_MAGIC, 4);
	put32(b + H_VERSION, h->version);
	put32(b + H_FLAGS, h->flags);
	put64(b + H_CAPACITY, h->capacity);
	put64(b + H_GRAIN, h->grain_size);
	put64(b + H_DESC_OFF, h->desc_offset);
	put64(b + H_DESC_SIZE, h->desc_size);
	put32(b + H_GTES, h->gtes_per_gt);
	put64(b + H_RGD, h->rgd_offset);
	put64(b + H_GD, h->gd_offset);
	put64(b + H_OVERHEAD, h->overhead);
	b[H_UNCLEAN] = h->unclean;
	memcpy(b + H_NL, newline_bytes, 4);
	put16(b + H_COMPRESS, h->compress);
}
