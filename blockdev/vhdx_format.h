/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VHDX (Microsoft's "VHDX Format Specification" v1.00, [MS-VHDX]) on disk, for the `vhdx`
 * format driver (blockdev/vhdx.c). Pure code only: parsing and building the structures, every
 * field bounded, with no I/O of its own: a caller hands in a read (and, for replaying the log,
 * a write) callback on the image file, so the fuzz targets run the same code on bytes in memory.
 *
 * Layout. The first MiB is the header section: the file identifier at 0 ("vhdxfile"), header 1
 * at 64 KiB and header 2 at 128 KiB (4 KiB each; the valid one with the larger sequence number is
 * current), region table 1 at 192 KiB and its copy at 256 KiB (64 KiB each). The region table
 * places the BAT (block allocation table) and the metadata region anywhere past the first MiB,
 * MiB-aligned; the current header places the log. The metadata region starts with a 64 KiB table
 * of items (block size, virtual disk size, sector sizes, disk id, parent locator). The BAT maps
 * each payload block (1..256 MiB) of the virtual disk to a MiB-aligned file offset, with a
 * sector bitmap entry after every chunk_ratio payload entries (used by differencing images
 * only). Every header, region table and log entry carries a CRC-32C of itself.
 *
 * The log (vhdx_log.c) is a circular buffer of entries, each a set of 4 KiB sector writes and
 * zero ranges; metadata (BAT, metadata region) changes go through it so that a torn write can be
 * repaired: an image whose current header names a log GUID may hold entries to replay before
 * its metadata can be trusted.
 *
 * All integers are little-endian; GUIDs are kept as their 16 on-disk bytes.
 */
#ifndef VIREO_BLOCKDEV_VHDX_FORMAT_H
#define VIREO_BLOCKDEV_VHDX_FORMAT_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"

#define VHDX_KIB 1024ULL
#define VHDX_MIB (1024ULL * 1024)

#define VHDX_FILE_ID_SIG "vhdxfile"
#define VHDX_HEADER1_OFF (64 * VHDX_KIB)
#define VHDX_HEADER2_OFF (128 * VHDX_KIB)
#define VHDX_REGION1_OFF (192 * VHDX_KIB)
#define VHDX_REGION2_OFF (256 * VHDX_KIB)
#define VHDX_HEADER_LEN (4 * VHDX_KIB)
#define VHDX_REGION_LEN (64 * VHDX_KIB)
#define VHDX_HEADER_SECTION (1 * VHDX_MIB)
/* The smallest file that holds every structure of the header section we read. */
#define VHDX_MIN_FILE (VHDX_REGION2_OFF + VHDX_REGION_LEN)

#define VHDX_METADATA_TABLE_LEN (64 * VHDX_KIB)
#define VHDX_MAX_TABLE_ENTRIES 2047
#define VHDX_METADATA_ITEM_MAX (1 * VHDX_MIB)

#define VHDX_MIN_BLOCK (1 * VHDX_MIB)
#define VHDX_MAX_BLOCK (256 * VHDX_MIB)
#define VHDX_MAX_DISK_SIZE (64ULL * 1024 * 1024 * VHDX_MIB) /* 64 TiB */
#define VHDX_LOG_SECTOR 4096u
#define VHDX_LOG_ALIGN VHDX_MIB
/* Largest file offset a log may name or an image may need (a 64 TiB disk and its metadata,
 * with room to spare): anything past it is hostile. */
#define VHDX_MAX_FILE_OFFSET (128ULL * 1024 * 1024 * VHDX_MIB)

/* BAT entry: state in bits 0-2, file offset in MiB in bits 20-63. */
#define VHDX_BAT_STATE_MASK 7ull
#define VHDX_BAT_OFFSET_MASK (~(VHDX_MIB - 1))
enum vhdx_block_state {
	VHDX_BLOCK_NOT_PRESENT = 0,
	VHDX_BLOCK_UNDEFINED = 1,
	VHDX_BLOCK_ZERO = 2,
	VHDX_BLOCK_UNMAPPED = 3,
	VHDX_BLOCK_FULLY_PRESENT = 6,
	VHDX_BLOCK_PARTIALLY_PRESENT = 7, /* differencing images only */
};
#define VHDX_SB_PRESENT 6 /* a sector bitmap block's "present" state */

struct vhdx_guid {
	uint8_t b[16];
};

/* The GUIDs of the specification (on-disk byte order). */
extern const struct vhdx_guid vhdx_guid_bat, vhdx_guid_metadata, vhdx_guid_file_params,
	vhdx_guid_disk_size, vhdx_guid_page83, vhdx_guid_logical_sector,
	vhdx_guid_physical_sector, vhdx_guid_parent_locator;

/**
 * struct vhdx_header - one of the two headers (4 KiB; its fields, the rest is reserved)
 * @seq: sequence number: the valid header with the larger one is current
 * @file_write: changed before the file is first modified after each open
 * @data_write: changed before the disk's content is first modified after each open
 * @log_guid: zero: the log is empty; else entries with this GUID may need replaying
 * @log_version: 0
 * @version: 1
 * @log_length: bytes of the log (a multiple of 1 MiB)
 * @log_offset: file offset of the log (a multiple of 1 MiB)
 */
struct vhdx_header {
	uint64_t seq;
	struct vhdx_guid file_write, data_write, log_guid;
	uint16_t log_version, version;
	uint32_t log_length;
	uint64_t log_offset;
};

/**
 * struct vhdx_meta - what the header section and the metadata region say, checked
 * @hdr: the current header
 * @hdr_slot: 0 when it is header 1, 1 when header 2
 * @bat_offset, @bat_length: the BAT region
 * @meta_offset, @meta_length: the metadata region
 * @block_size: payload block size (power of two, 1 MiB .. 256 MiB)
 * @leave_allocated: LeaveBlocksAllocated (a fixed disk: blocks stay allocated)
 * @disk_size: virtual size in bytes
 * @logical_sector, @physical_sector: 512 or 4096
 * @page83: the disk's identifier (Page 83 data), all zero when the item is absent
 * @chunk_ratio: payload blocks per sector bitmap block
 * @data_blocks: payload blocks of the virtual disk
 * @bat_entries: entries of the BAT in use (payload and sector bitmap entries)
 */
struct vhdx_meta {
	struct vhdx_header hdr;
	int hdr_slot;
	uint64_t bat_offset, meta_offset;
	uint32_t bat_length, meta_length;
	uint32_t block_size;
	bool leave_allocated;
	uint64_t disk_size;
	uint32_t logical_sector, physical_sector;
	struct vhdx_guid page83;
	uint32_t chunk_ratio;
	uint64_t data_blocks, bat_entries;
};

/*
 * I/O on the image file for the pure code: read fails with -errno (a read past the end of the
 * file returns zeroes), write and zero (optional: a range reads zeroes after it) likewise;
 * @size is the file's size. Only the log replay writes.
 */
struct vhdx_io {
	int (*read)(void *opaque, uint64_t off, void *buf, size_t len);
	int (*write)(void *opaque, uint64_t off, const void *buf, size_t len);
	int (*zero)(void *opaque, uint64_t off, uint64_t len);
	void *opaque;
	uint64_t size;
};

/* Little-endian accessors. vhdx_le32 is one load (memcpy), not four: the same code at -O2, but
 * a sanitizer checks one access instead of four (the checksum's loop, 20 % of a fuzz target). */
static inline uint16_t vhdx_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t vhdx_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}
static inline uint64_t vhdx_le64(const uint8_t *p)
{
	return (uint64_t)vhdx_le32(p) | (uint64_t)vhdx_le32(p + 4) << 32;
}
static inline void vhdx_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void vhdx_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void vhdx_put64(uint8_t *p, uint64_t v)
{
	vhdx_put32(p, (uint32_t)v);
	vhdx_put32(p + 4, (uint32_t)(v >> 32));
}

/* CRC-32C (Castagnoli), as the specification's checksums: crc32c(0, buf, len) of the whole
 * structure with its checksum field zeroed. @crc continues an earlier call's result. */
uint32_t vhdx_crc32c(uint32_t crc, const void *buf, size_t len);
/* The checksum of @len bytes whose checksum field is at @field (4 bytes, taken as zero). */
uint32_t vhdx_checksum(const uint8_t *buf, size_t len, size_t field);

static inline bool vhdx_guid_is_zero(const struct vhdx_guid *g)
{
	for (int i = 0; i < 16; i++)
		if (g->b[i])
			return false;
	return true;
}
bool vhdx_guid_eq(const struct vhdx_guid *a, const struct vhdx_guid *b);
/* A random (version 4) GUID; -errno when the kernel gives no random bytes. */
int vhdx_guid_random(struct vhdx_guid *g);
/* "{xxxxxxxx-xxxx-...}" in @out (39 bytes with the NUL), for messages. */
void vhdx_guid_str(const struct vhdx_guid *g, char out[39]);

/* Whether the first bytes of a file are a VHDX file identifier. */
bool vhdx_probe(const uint8_t *buf, size_t len);

/*
 * One header: 0 when valid (signature, checksum, versions, log placement MiB-aligned, the log
 * inside @file_size and past the header section), else -1 with *@why saying which field.
 */
int vhdx_header_parse(const uint8_t buf[VHDX_HEADER_LEN], uint64_t file_size,
		      struct vhdx_header *h, char *why, size_t why_len);
/* The header's 4 KiB, checksum included. */
void vhdx_header_put(const struct vhdx_header *h, uint8_t buf[VHDX_HEADER_LEN]);

/*
 * vhdx_headers_load - the file identifier and the current header (m->hdr, m->hdr_slot)
 *
 * Both headers are read; the valid one with the larger sequence number is current. When
 * neither is valid the message says why each is not. The log is not looked at.
 */
int vhdx_headers_load(const struct vhdx_io *io, struct vhdx_meta *m, struct error **errp);

/*
 * vhdx_regions_load - read and check the region table and the metadata region
 *
 * After vhdx_headers_load (and the log's replay, which may rewrite them): the region table
 * (table 1, or its copy when table 1 is damaged), the metadata table and its items, and the
 * geometry they give: the BAT region must hold every entry the disk needs, and no two
 * structures may overlap (header section, log, BAT, metadata). Refuses, naming the structure,
 * the field and its file offset, anything it does not understand (an unknown required region or
 * metadata item, a differencing image). Reads at most 64 KiB at a time; keeps nothing allocated.
 */
int vhdx_regions_load(const struct vhdx_io *io, struct vhdx_meta *m, struct error **errp);

/* Index in the BAT of payload block @block's entry. */
static inline uint64_t vhdx_bat_index(const struct vhdx_meta *m, uint64_t block)
{
	return block + block / m->chunk_ratio;
}
/* Whether BAT index @i is a sector bitmap entry. */
static inline bool vhdx_bat_is_bitmap(const struct vhdx_meta *m, uint64_t i)
{
	return i % (m->chunk_ratio + 1ull) == m->chunk_ratio;
}

/**
 * struct vhdx_bat_report - what vhdx_bat_check found
 * @bad: entries that are invalid (unknown state, a block over the header section, the log,
 *       the BAT or the metadata region, two blocks on the same file range)
 * @past_eof: present blocks that end past the end of the file (a truncated image)
 * @present: present payload blocks
 * @end: the file offset past the last present block (0 if none)
 * @first_bad, @first_why: the first bad entry's index and reason (for the message)
 */
struct vhdx_bat_report {
	uint64_t bad, past_eof, present, end;
	uint64_t first_bad;
	char first_why[160];
};

/*
 * Checks the BAT (@bat: m->bat_entries host-order entries) against the layout: payload entries
 * in a known state (PARTIALLY_PRESENT is for differencing images only), present blocks on
 * MiB-aligned file ranges that overlap no structure and no other block; sector bitmap entries
 * NOT_PRESENT or PRESENT. Fills @r; returns -ENOMEM or 0. O(n log n) in present blocks.
 */
int vhdx_bat_check(const struct vhdx_meta *m, const uint64_t *bat, uint64_t file_size,
		   struct vhdx_bat_report *r);

/* ---- creating an image (vhdx_create.c writes what these build) ------------------------------ */

/**
 * struct vhdx_layout - where a new image puts its structures (as qemu-img lays them out)
 * @log_offset, @log_length: the log
 * @bat_offset, @bat_length: the BAT region (MiB-rounded)
 * @meta_offset: the metadata region (1 MiB)
 * @data_offset: the first payload block (the file's size for a dynamic image)
 */
struct vhdx_layout {
	uint64_t log_offset, bat_offset, meta_offset, data_offset;
	uint32_t log_length, bat_length;
};

/* The block size qemu-img picks for @size when none is given (block_size=0). */
uint32_t vhdx_default_block_size(uint64_t size);
/* The layout of a new image; @m's disk_size, block_size and logical_sector are set, the
 * geometry (chunk_ratio, data_blocks, bat_entries) is filled in. */
void vhdx_layout_new(struct vhdx_meta *m, uint32_t log_length, struct vhdx_layout *l);
/* The file identifier (64 KiB: signature and creator). */
void vhdx_file_id_put(uint8_t buf[64 * 1024]);
/* A region table naming the BAT and metadata regions of @l (64 KiB, checksum included). */
void vhdx_region_put(const struct vhdx_layout *l, uint8_t buf[VHDX_REGION_LEN]);
/* The metadata table and items of @m (the first 64 KiB + 64 KiB of the region). */
void vhdx_metadata_put(const struct vhdx_meta *m, uint8_t buf[2 * VHDX_METADATA_TABLE_LEN]);

#endif
