/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 bitmap directory entries: parse (every field bounded) and serialize. Pure: no I/O; the
 * reader in qcow2_bitmap.c hands in one entry's bytes at a time.
 *
 * An entry: bitmap table offset (8), table entries (4), flags (4), type (1), granularity bits
 * (1), name length (2), extra data length (4), then the extra data and the name, padded to 8.
 */
#include "blockdev/qcow2_format.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

uint64_t qcow2_bitmap_entry_len(const uint8_t *hdr)
{
	return QCOW2_BITMAP_ENTRY_LEN + (uint64_t)qcow2_be32(hdr + 20) +
	       (uint16_t)((hdr[18] << 8) | hdr[19]);
}

uint64_t qcow2_bitmap_data_bytes(uint64_t disk_size, unsigned gran_bits)
{
	uint64_t bits = (disk_size >> gran_bits) + !!(disk_size & ((1ULL << gran_bits) - 1));

	return DIV_ROUND_UP(bits, 8);
}

uint64_t qcow2_bitmap_table_entries(uint64_t disk_size, unsigned gran_bits,
				    unsigned cluster_bits)
{
	return DIV_ROUND_UP(qcow2_bitmap_data_bytes(disk_size, gran_bits), 1ULL << cluster_bits);
}

void qcow2_bitmap_free(struct qcow2_bitmap *bm)
{
	free(bm->name);
	free(bm->extra);
	memset(bm, 0, sizeof(*bm));
}

void qcow2_bitmaps_free(struct qcow2_bitmap *bm, uint32_t n)
{
	for (uint32_t i = 0; bm && i < n; i++)
		qcow2_bitmap_free(&bm[i]);
	free(bm);
}

#define ENTRY_ERR(errp, fmt, ...)                                                                  \
	error_setg(errp, "qcow2 bitmap %u (directory entry at 0x%" PRIx64 "): " fmt, index, off,  \
		   ##__VA_ARGS__)

int qcow2_bitmap_parse(const uint8_t *b, uint32_t index, uint64_t off, unsigned cluster_bits,
		       uint64_t disk_size, struct qcow2_bitmap *bm, struct error **errp)
{
	uint16_t name_len = (uint16_t)((b[18] << 8) | b[19]);
	uint64_t want;

	memset(bm, 0, sizeof(*bm));
	bm->table_offset = qcow2_be64(b);
	bm->table_size = qcow2_be32(b + 8);
	bm->flags = qcow2_be32(b + 12);
	bm->type = b[16];
	bm->gran_bits = b[17];
	bm->extra_len = qcow2_be32(b + 20);
	if (!name_len || name_len > QCOW2_BITMAP_MAX_NAME) {
		ENTRY_ERR(errp, "its name is %u bytes long: 1 to %u", name_len,
			  QCOW2_BITMAP_MAX_NAME);
		return -1;
	}
	if (bm->extra_len > QCOW2_BITMAP_MAX_DIR) {
		ENTRY_ERR(errp, "%u bytes of extra data", bm->extra_len);
		return -1;
	}
	bm->name = malloc((size_t)name_len + 1);
	bm->extra = malloc(bm->extra_len ? bm->extra_len : 1);
	if (!bm->name || !bm->extra) {
		error_setg(errp, "out of memory reading the qcow2 bitmap directory");
		return -1;
	}
	memcpy(bm->extra, b + QCOW2_BITMAP_ENTRY_LEN, bm->extra_len);
	memcpy(bm->name, b + QCOW2_BITMAP_ENTRY_LEN + bm->extra_len, name_len);
	bm->name[name_len] = '\0';
	if (bm->type != QCOW2_BITMAP_TYPE_DIRTY) {
		ENTRY_ERR(errp, "bitmap '%s' is of type %u: only 1 (dirty tracking) exists", bm->name,
			  bm->type);
		return -1;
	}
	if (bm->flags & ~QCOW2_BITMAP_FLAGS_KNOWN) {
		ENTRY_ERR(errp, "bitmap '%s' has reserved flag bits set (0x%x)", bm->name, bm->flags);
		return -1;
	}
	if (bm->gran_bits < QCOW2_BITMAP_MIN_GRAN_BITS ||
	    bm->gran_bits > QCOW2_BITMAP_MAX_GRAN_BITS) {
		ENTRY_ERR(errp, "bitmap '%s' has granularity bits %u: %u to %u are supported",
			  bm->name, bm->gran_bits, QCOW2_BITMAP_MIN_GRAN_BITS,
			  QCOW2_BITMAP_MAX_GRAN_BITS);
		return -1;
	}
	if (bm->table_offset % (1ULL << cluster_bits) ||
	    (bm->table_offset & ~QCOW2_OFFSET_MASK) || (!bm->table_offset && bm->table_size)) {
		ENTRY_ERR(errp, "bitmap '%s': its table offset 0x%" PRIx64 " is not a cluster "
			  "boundary", bm->name, bm->table_offset);
		return -1;
	}
	want = qcow2_bitmap_table_entries(disk_size, bm->gran_bits, cluster_bits);
	if (qcow2_bitmap_data_bytes(disk_size, bm->gran_bits) > QCOW2_BITMAP_MAX_DATA ||
	    bm->table_size != want) {
		ENTRY_ERR(errp, "bitmap '%s': its table has %u entries, but a disk of %" PRIu64
			  " bytes at a granularity of %llu needs %" PRIu64 " (at most %llu MiB of "
			  "bitmap data)", bm->name, bm->table_size, disk_size,
			  1ULL << bm->gran_bits, want, QCOW2_BITMAP_MAX_DATA >> 20);
		return -1;
	}
	return 0;
}

uint64_t qcow2_bitmap_size(const struct qcow2_bitmap *bm)
{
	return ALIGN_UP(QCOW2_BITMAP_ENTRY_LEN + (uint64_t)bm->extra_len + strlen(bm->name), 8);
}

void qcow2_bitmap_put(const struct qcow2_bitmap *bm, uint8_t *b)
{
	size_t name_len = strlen(bm->name);

	qcow2_put_be64(b, bm->table_offset);
	qcow2_put_be32(b + 8, bm->table_size);
	qcow2_put_be32(b + 12, bm->flags);
	b[16] = bm->type;
	b[17] = bm->gran_bits;
	b[18] = (uint8_t)(name_len >> 8);
	b[19] = (uint8_t)name_len;
	qcow2_put_be32(b + 20, bm->extra_len);
	memcpy(b + QCOW2_BITMAP_ENTRY_LEN, bm->extra, bm->extra_len);
	memcpy(b + QCOW2_BITMAP_ENTRY_LEN + bm->extra_len, bm->name, name_len);
}
