/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VMDK on disk (VMware's "Virtual Disk Format 1.1" and what qemu-img writes), and the pure
 * parsers of its two metadata formats: the hosted sparse extent header (magic "KDMV",
 * blockdev/vmdk_header.c) and the text descriptor (blockdev/vmdk_desc.c). Nothing here does
 * I/O: the driver (blockdev/vmdk.c) reads the bytes and hands them over, so every bound is
 * checked here and fuzzed (tests/fuzz/fuzz_vmdk_header.c, fuzz_vmdk_desc.c).
 *
 * A sparse extent: sector 0 holds the header; an optional embedded descriptor follows; the
 * grain directory (GD, one little-endian u32 per grain table: the table's sector, 0 = none)
 * and its redundant copy (RGD) point at grain tables (GT, u32 per grain: the grain's sector,
 * 0 = unallocated, 1 = reads zeroes when the zeroed-grain flag is set). Grains are
 * @grain_size sectors of data, or (compressed flag) a marker {u64 lba, u32 size} followed by
 * @size bytes of zlib stream. A streamOptimized file from VMware has gd_offset = GD_AT_END:
 * the real header is the footer, in the file's third-to-last sector pair:
 *   ... [marker: 1 sector, type FOOTER][footer header][EOS marker: a sector of zeroes]
 * Grain tables and the directory of such a file sit after the grains, each behind a marker
 * sector (type GT / GD) saying how many sectors follow.
 */
#ifndef VIREO_BLOCKDEV_VMDK_FORMAT_H
#define VIREO_BLOCKDEV_VMDK_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define VMDK_SECTOR ((uint64_t)512)
#define VMDK_MAGIC "KDMV"
#define VMDK_DESC_MAGIC "# Disk DescriptorFile"
#define VMDK_GD_AT_END 0xffffffffffffffffULL

/* header flags */
#define VMDK_FLAG_NL_DETECT  (1u << 0)  /* the newline bytes below are checked */
#define VMDK_FLAG_RGD        (1u << 1)  /* a redundant grain directory is kept */
#define VMDK_FLAG_ZERO_GRAIN (1u << 2)  /* GT entry 1 means "reads zeroes" */
#define VMDK_FLAG_COMPRESS   (1u << 16) /* grains are compressed */
#define VMDK_FLAG_MARKERS    (1u << 17) /* grains and metadata carry markers */
#define VMDK_FLAGS_KNOWN (VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD | VMDK_FLAG_ZERO_GRAIN | \
			  VMDK_FLAG_COMPRESS | VMDK_FLAG_MARKERS)

#define VMDK_COMPRESS_NONE    0
#define VMDK_COMPRESS_DEFLATE 1

/* stream markers (in a sector of their own, after u64 value and u32 size 0) */
#define VMDK_MARKER_EOS    0
#define VMDK_MARKER_GT     1
#define VMDK_MARKER_GD     2
#define VMDK_MARKER_FOOTER 3
#define VMDK_GRAIN_MARKER_LEN 12 /* u64 lba + u32 size, then the compressed bytes */

#define VMDK_GTE_ZEROED 1 /* a GT entry with the zeroed-grain flag: reads zeroes */

/* Bounds on hostile input. */
#define VMDK_MAX_GRAIN_SECTORS 2048          /* 1 MiB grains (qemu-img writes 64 KiB) */
#define VMDK_MAX_GTES 512                    /* entries per grain table (always 512) */
#define VMDK_MAX_GD_ENTRIES (1u << 24)       /* 64 MiB of directory: 512 TiB at 64 KiB */
#define VMDK_MAX_DESC_BYTES (1024 * 1024)    /* a descriptor, embedded or in its own file */
#define VMDK_MAX_EXTENTS 4096
#define VMDK_MAX_NAME 4096                   /* bytes of an extent's file name */
/* the largest disk vireo opens: 2^32 sectors per extent file offset limits sparse files to
 * 2 TiB each, and no descriptor may add up to more than this */
#define VMDK_MAX_CAPACITY_SECTORS (1ULL << 41) /* 1 PiB */

/**
 * struct vmdk_header - a hosted sparse extent header, host-endian (sizes in sectors)
 * @version: 1, 2 or 3 (3: compressed grains written by qemu-img, read-write still)
 * @flags: VMDK_FLAG_*
 * @capacity: the extent's size
 * @grain_size: sectors per grain, a power of two
 * @desc_offset, @desc_size: the embedded descriptor (0: none)
 * @gtes_per_gt: entries per grain table
 * @rgd_offset, @gd_offset: the directories (@gd_offset VMDK_GD_AT_END: see the footer)
 * @overhead: sectors of metadata before the first grain
 * @unclean: the unclean-shutdown byte
 * @compress: VMDK_COMPRESS_*
 */
struct vmdk_header {
	uint32_t version;
	uint32_t flags;
	uint64_t capacity;
	uint64_t grain_size;
	uint64_t desc_offset, desc_size;
	uint32_t gtes_per_gt;
	uint64_t rgd_offset, gd_offset;
	uint64_t overhead;
	uint8_t unclean;
	uint16_t compress;
};

/**
 * vmdk_header_parse - decode and check a sparse extent header
 * @buf: the first @len bytes of the extent file (512 needed)
 * @file_size: the extent file's size in bytes (the directories must lie inside it)
 * @h: the decoded header
 * @errp: names the field and its value when the header is refused
 *
 * A header with gd_offset == VMDK_GD_AT_END is returned as it is (the caller reads the
 * footer and parses it with vmdk_footer_parse). Returns 0 or -1.
 */
int vmdk_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct vmdk_header *h,
		      struct error **errp);

/*
 * vmdk_footer_parse - the footer of a stream file: @buf holds its last 3 sectors (footer
 * marker, footer header, end-of-stream marker); @h receives the footer's header, checked as
 * vmdk_header_parse checks one and refused when it still says GD_AT_END.
 */
int vmdk_footer_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct vmdk_header *h,
		      struct error **errp);

/* Encodes @h into a 512-byte sector (newline bytes and padding included). */
void vmdk_header_put(const struct vmdk_header *h, uint8_t *sector);

/* Sectors in the grain directory of @h: one entry per grain table, rounded up. */
uint64_t vmdk_gd_entries(const struct vmdk_header *h);

/* A metadata marker sector (GT, GD, FOOTER, EOS): @sectors that follow it. */
void vmdk_marker_put(uint8_t *sector, uint64_t sectors, uint32_t type);
/* Decodes a marker sector: its value, size and type. Returns true when it is a metadata
 * marker (size 0), false for a grain marker. */
bool vmdk_marker_get(const uint8_t *sector, uint64_t *value, uint32_t *size, uint32_t *type);

/* ---------------------------------------------------------------------------------------------
 * The descriptor
 */

enum vmdk_access { VMDK_ACCESS_RW, VMDK_ACCESS_RDONLY, VMDK_ACCESS_NOACCESS };

enum vmdk_extent_type {
	VMDK_EXTENT_FLAT,       /* raw bytes at an offset of a file */
	VMDK_EXTENT_SPARSE,     /* a hosted sparse file (KDMV) */
	VMDK_EXTENT_ZERO,       /* no file: reads zeroes */
	VMDK_EXTENT_VMFS,       /* a flat extent on VMFS: raw bytes, as FLAT */
	VMDK_EXTENT_VMFSSPARSE, /* ESX's COWD delta: not read */
	VMDK_EXTENT_VMFSRDM,    /* raw device maps: not read */
	VMDK_EXTENT_VMFSRAW,
	VMDK_EXTENT_SESPARSE,   /* ESX's space-efficient sparse: not read */
};

/* The type's name as a descriptor spells it ("FLAT"). */
const char *vmdk_extent_type_name(enum vmdk_extent_type t);

/**
 * struct vmdk_desc_extent - one extent line: ACCESS SECTORS TYPE ["FILE" [OFFSET]]
 * @line: its line number in the descriptor, for messages
 */
struct vmdk_desc_extent {
	enum vmdk_access access;
	uint64_t sectors;
	enum vmdk_extent_type type;
	char *filename; /* NULL for ZERO */
	uint64_t offset; /* sectors into the file (FLAT, VMFS) */
	unsigned line;
};

/**
 * struct vmdk_desc - what vireo uses of a descriptor
 * @version: its version= (1, 2 or 3)
 * @cid, @parent_cid: content ids (0xffffffff: no parent)
 * @has_cid: a CID= line was there
 * @create_type: createType= ("monolithicSparse", ...), NULL when absent
 * @parent_hint: parentFileNameHint=, NULL when absent
 * @extents, @nr_extents: the extent lines in order
 * @capacity: the sum of the extents' sectors
 */
struct vmdk_desc {
	unsigned version;
	uint32_t cid, parent_cid;
	bool has_cid;
	char *create_type;
	char *parent_hint;
	struct vmdk_desc_extent *extents;
	size_t nr_extents;
	uint64_t capacity;
};

/**
 * vmdk_desc_parse - parse a descriptor's text
 * @text: the bytes (a NUL ends the text early: an embedded descriptor is padded with zeroes)
 * @len: at most VMDK_MAX_DESC_BYTES
 * @d: filled; release with vmdk_desc_free() (also after a failure)
 * @errp: names the line and what is wrong with it
 *
 * Comments (#) and blank lines are skipped, unknown keys (ddb.*, encoding, ...) ignored. Refused:
 * a missing or unknown version, malformed numbers or quotes, an extent line that is not
 * ACCESS SECTORS TYPE "FILE" [OFFSET] (ZERO: no file), an unknown access or type, a FLAT
 * extent without its offset, a name holding a control character, more than VMDK_MAX_EXTENTS
 * extents, or sizes adding up past VMDK_MAX_CAPACITY_SECTORS. Returns 0 or -1.
 */
int vmdk_desc_parse(const char *text, size_t len, struct vmdk_desc *d, struct error **errp);
void vmdk_desc_free(struct vmdk_desc *d);

/**
 * vmdk_desc_set_cid - the descriptor @text with its CID= line's value replaced by @cid
 *
 * Returns a malloc'd NUL-terminated copy (*@out_len bytes without the NUL), the rest of the
 * text as it was, or NULL (no CID line, or no memory).
 */
char *vmdk_desc_set_cid(const char *text, size_t len, uint32_t cid, size_t *out_len);

/**
 * vmdk_extent_path_ok - whether an extent's file name stays in the descriptor's directory
 *
 * false for an absolute name or one whose ".." components climb above the directory
 * ("a/../../b"); what a symbolic link points at is checked by the caller after resolving.
 */
bool vmdk_extent_path_ok(const char *name);

/**
 * struct vmdk_desc_new - what vireo writes in a new descriptor (vmdk_desc_print)
 * @create_type: createType
 * @cid: the content id
 * @extents: the extent lines (access RW)
 * @hw_version, @adapter_type, @tools_version: the DDB's values
 * @cylinders, @heads, @sectors: the DDB geometry
 */
struct vmdk_desc_new {
	const char *create_type;
	uint32_t cid;
	const struct vmdk_desc_extent *extents;
	size_t nr_extents;
	const char *hw_version, *adapter_type, *tools_version;
	uint64_t cylinders;
	unsigned heads, sectors;
};

/* The descriptor text of @n (malloc'd, NUL-terminated), laid out as qemu-img writes one. */
char *vmdk_desc_print(const struct vmdk_desc_new *n);

#endif
