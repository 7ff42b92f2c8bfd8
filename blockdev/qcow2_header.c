/* SPDX-License-Identifier: Apache-2.0 */
/* qcow2 header: parse and validate (every field bounded), serialize. Pure: no I/O. */
#include "blockdev/qcow2_format.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define FIELD_ERR(errp, name, off, fmt, ...)                                                       \
	error_setg(errp, "qcow2 header field %s (byte %u) " fmt, name, (unsigned)(off),            \
		   ##__VA_ARGS__)

static const struct {
	uint8_t type, bit;
	const char *name;
} known_features[] = {
	{ 0, 0, "dirty bit" },          { 0, 1, "corrupt bit" },
	{ 0, 2, "external data file" }, { 0, 3, "compression type" },
	{ 0, 4, "extended L2 entries" }, { 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" },            { 2, 1, "raw external data" },
};

bool qcow2_probe(const uint8_t *buf, size_t len)
{
	/* any version: a damaged or future qcow2 is refused by the header parser, naming the
	 * field, never opened as raw */
	return len >= 4 && qcow2_be32(buf) == QCOW2_MAGIC;
}

const char *qcow2_feature_name(const struct qcow2_header *h, unsigned type, unsigned bit)
{
	for (size_t i = 0; h && i < h->nb_features; i++)
		if (h->features[i].type == type && h->features[i].bit == bit &&
		    h->features[i].name[0])
			return h->features[i].name;
	for (size_t i = 0; i < ARRAY_SIZE(known_features); i++)
		if (known_features[i].type == type && known_features[i].bit == bit)
			return known_features[i].name;
	return NULL;
}

uint64_t qcow2_l1_entries_for(uint64_t size, unsigned cluster_bits, bool extended_l2)
{
	unsigned l2_bits = cluster_bits - (extended_l2 ? 4 : 3);
	uint64_t clusters = DIV_ROUND_UP(size, 1ULL << cluster_bits);

	return DIV_ROUND_UP(clusters, 1ULL << l2_bits);
}

void qcow2_header_free(struct qcow2_header *h)
{
	for (size_t i = 0; i < h->nb_unknown; i++)
		free(h->unknown[i].data);
	free(h->unknown);
	free(h->features);
	free(h->tail);
	h->unknown = NULL;
	h->features = NULL;
	h->tail = NULL;
	h->nb_unknown = h->nb_features = 0;
	h->tail_len = 0;
}

static void copy_string(char *dst, const uint8_t *src, size_t len)
{
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static int parse_fixed(const uint8_t *b, size_t len, struct qcow2_header *h, struct error **errp)
{
	if (len < QCOW2_V2_HEADER_LEN) {
		error_setg(errp, "qcow2 header truncated: %zu bytes, need at least %u", len,
			   QCOW2_V2_HEADER_LEN);
		return -1;
	}
	if (qcow2_be32(b) != QCOW2_MAGIC) {
		FIELD_ERR(errp, "magic", 0, "is 0x%08x, not QFI\\xfb", qcow2_be32(b));
		return -1;
	}
	h->version = qcow2_be32(b + 4);
	if (h->version != 2 && h->version != 3) {
		FIELD_ERR(errp, "version", 4, "is %u: only versions 2 and 3 exist", h->version);
		return -1;
	}
	h->backing_file_offset = qcow2_be64(b + 8);
	h->backing_file_size = qcow2_be32(b + 16);
	h->cluster_bits = qcow2_be32(b + 20);
	h->size = qcow2_be64(b + 24);
	h->crypt_method = qcow2_be32(b + 32);
	h->l1_size = qcow2_be32(b + 36);
	h->l1_table_offset = qcow2_be64(b + 40);
	h->refcount_table_offset = qcow2_be64(b + 48);
	h->refcount_table_clusters = qcow2_be32(b + 56);
	h->nb_snapshots = qcow2_be32(b + 60);
	h->snapshots_offset = qcow2_be64(b + 64);
	if (h->version == 2) {
		h->refcount_order = 4;
		h->header_length = QCOW2_V2_HEADER_LEN;
		return 0;
	}
	if (len < QCOW2_V3_HEADER_LEN) {
		error_setg(errp, "qcow2 v3 header truncated: %zu bytes, need %u", len,
			   QCOW2_V3_HEADER_LEN);
		return -1;
	}
	h->incompatible_features = qcow2_be64(b + 72);
	h->compatible_features = qcow2_be64(b + 80);
	h->autoclear_features = qcow2_be64(b + 88);
	h->refcount_order = qcow2_be32(b + 96);
	h->header_length = qcow2_be32(b + 100);
	return 0;
}

/* Checks that need only the fixed fields, in the order a reader depends on them. */
static int check_geometry(struct qcow2_header *h, size_t len, struct error **errp)
{
	uint64_t cs;

	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
		FIELD_ERR(errp, "cluster_bits", 20,
			  "is %u: cluster sizes from 512 B (9) to 2 MiB (21)"
			  " are supported",
			  h->cluster_bits);
		return -1;
	}
	cs = 1ULL << h->cluster_bits;
	if (h->version == 3) {
		if (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length % 8 ||
		    h->header_length > cs) {
			FIELD_ERR(errp, "header_length", 100, "is %u: must be a multiple of 8 in "
				  "[104, cluster size %" PRIu64 "]", h->header_length, cs);
			return -1;
		}
		if (h->header_length > len) {
			FIELD_ERR(errp, "header_length", 100,
				  "is %u but the file holds only %zu bytes", h->header_length, len);
			return -1;
		}
		if (h->refcount_order > 6) {
			FIELD_ERR(errp, "refcount_order", 96, "is %u: at most 6 (64-bit refcounts)",
				  h->refcount_order);
			return -1;
		}
	}
	if (h->crypt_method == QCOW2_CRYPT_AES) {
		FIELD_ERR(errp, "crypt_method", 32, "is 1: images encrypted with the old AES "
			  "method are not supported (QEMU only reads them: convert them there)");
		return -1;
	}
	if (h->crypt_method > QCOW2_CRYPT_LUKS) {
		FIELD_ERR(errp, "crypt_method", 32, "is %u: only 0 (none) and 2 (LUKS) are "
			  "supported for encrypted images", h->crypt_method);
		return -1;
	}
	return 0;
}

static int check_features(struct qcow2_header *h, const uint8_t *b, struct error **errp)
{
	uint64_t unknown = h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN;

	if (unknown) {
		unsigned bit = (unsigned)__builtin_ctzll(unknown);
		const char *name = qcow2_feature_name(h, 0, bit);

		FIELD_ERR(errp, "incompatible_features", 72,
			  "has unknown bit %u (%s) set: this image "
			  "needs a feature vireo does not implement",
			  bit, name ? name : "unnamed");
		return -1;
	}
	h->compression_type = QCOW2_COMPRESS_ZLIB;
	if (h->header_length > 104)
		h->compression_type = b[104];
	if (h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION) {
		if (h->header_length <= 104 || h->compression_type == QCOW2_COMPRESS_ZLIB) {
			FIELD_ERR(errp, "compression_type", 104, "is absent or zlib although "
				  "incompatible feature bit 3 (compression type) is set");
			return -1;
		}
	} else if (h->compression_type != QCOW2_COMPRESS_ZLIB) {
		FIELD_ERR(errp, "compression_type", 104, "is %u but incompatible feature bit 3 "
			  "(compression type) is clear", h->compression_type);
		return -1;
	}
	if (h->compression_type > QCOW2_COMPRESS_ZSTD) {
		FIELD_ERR(errp, "compression_type", 104, "is %u: only 0 (zlib) and 1 (zstd) exist",
			  h->compression_type);
		return -1;
	}
	if ((h->incompatible_features & QCOW2_INCOMPAT_EXTL2) && h->cluster_bits < 14) {
		FIELD_ERR(errp, "cluster_bits", 20,
			  "is %u: extended L2 entries need clusters of at "
			  "least 16 KiB (14)",
			  h->cluster_bits);
		return -1;
	}
	if ((h->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW) &&
	    !(h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE)) {
		FIELD_ERR(errp, "autoclear_features", 88, "has bit 1 (raw external data) without "
			  "incompatible bit 2 (external data file)");
		return -1;
	}
	return 0;
}

/* [off, off+len) must be cluster aligned (offset), non-empty and inside the file. */
static int check_table(const char *name, unsigned field_off, uint64_t off, uint64_t len,
		       uint64_t cs, uint64_t file_size, struct error **errp)
{
	if (off % cs) {
		FIELD_ERR(errp, name, field_off,
			  "is 0x%" PRIx64 ": not aligned to the cluster size "
			  "%" PRIu64,
			  off, cs);
		return -1;
	}
	if (off == 0) {
		FIELD_ERR(errp, name, field_off, "is 0: the table would overlap the header");
		return -1;
	}
	if (!range_within(off, len, file_size)) {
		FIELD_ERR(errp, name, field_off, "is 0x%" PRIx64 ": the table (%" PRIu64 " bytes) "
			  "ends past the end of the file (%" PRIu64 " bytes)", off, len, file_size);
		return -1;
	}
	return 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static int check_tables(struct qcow2_header *h, uint64_t file_size, struct error **errp)
{
	uint64_t cs = 1ULL << h->cluster_bits;
	bool ext = h->incompatible_features & QCOW2_INCOMPAT_EXTL2;
	uint64_t need = qcow2_l1_entries_for(h->size, h->cluster_bits, ext);
	uint64_t l1_len = (uint64_t)h->l1_size * 8, rt_len;

	if (h->size > QCOW2_MAX_VIRTUAL_SIZE) {
		FIELD_ERR(errp, "size", 24, "is %" PRIu64 ": larger than 2^61 bytes", h->size);
		return -1;
	}
	if (l1_len > QCOW2_MAX_L1_BYTES) {
		FIELD_ERR(errp, "l1_size", 36, "is %u entries: more than the %llu MiB limit",
			  h->l1_size, QCOW2_MAX_L1_BYTES >> 20);
		return -1;
	}
	if (h->l1_size < need) {
		FIELD_ERR(errp, "l1_size", 36,
			  "is %u entries but a disk of %" PRIu64 " bytes needs "
			  "%" PRIu64,
			  h->l1_size, h->size, need);
		return -1;
	}
	if (h->l1_size && check_table("l1_table_offset", 40, h->l1_table_offset, l1_len, cs,
				      file_size, errp))
		return -1;
	if (h->refcount_table_clusters == 0 ||
	    (uint64_t)h->refcount_table_clusters * cs > QCOW2_MAX_REFTABLE_BYTES) {
		FIELD_ERR(errp, "refcount_table_clusters", 56, "is %u: must be 1..%llu for %" PRIu64
			  "-byte clusters", h->refcount_table_clusters,
			  QCOW2_MAX_REFTABLE_BYTES / cs, cs);
		return -1;
	}
	rt_len = (uint64_t)h->refcount_table_clusters * cs;
	if (check_table("refcount_table_offset", 48, h->refcount_table_offset, rt_len, cs,
			file_size, errp))
		return -1;
	if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
		FIELD_ERR(errp, "nb_snapshots", 60, "is %u: more than %u", h->nb_snapshots,
			  QCOW2_MAX_SNAPSHOTS);
		return -1;
	}
	if (h->nb_snapshots && check_table("snapshots_offset", 64, h->snapshots_offset, 40, cs,
					   file_size, errp))
		return -1;
	if (overlaps(h->l1_table_offset, ALIGN_UP(l1_len, cs), h->refcount_table_offset, rt_len)) {
		FIELD_ERR(errp, "l1_table_offset", 40,
			  "is 0x%" PRIx64 ": the L1 table overlaps the "
			  "refcount table at 0x%" PRIx64,
			  h->l1_table_offset, h->refcount_table_offset);
		return -1;
	}
	return 0;
}

static int parse_bitmaps_ext(struct qcow2_header *h, const uint8_t *d, uint32_t len,
			     uint64_t off, uint64_t file_size, struct error **errp)
{
	uint64_t cs = 1ULL << h->cluster_bits;

	if (len != sizeof(h->bitmaps_ext)) {
		error_setg(errp,
			   "qcow2 bitmaps extension at byte %" PRIu64 " is %u bytes long, not "
			   "24",
			   off, len);
		return -1;
	}
	memcpy(h->bitmaps_ext, d, len);
	h->nb_bitmaps = qcow2_be32(d);
	h->bitmap_directory_size = qcow2_be64(d + 8);
	h->bitmap_directory_offset = qcow2_be64(d + 16);
	if (h->nb_bitmaps == 0 || h->nb_bitmaps > 65535 || qcow2_be32(d + 4) != 0) {
		error_setg(errp, "qcow2 bitmaps extension at byte %" PRIu64 ": nb_bitmaps %u must "
			   "be 1..65535 and the reserved word zero", off, h->nb_bitmaps);
		return -1;
	}
	if (h->bitmap_directory_offset % cs || h->bitmap_directory_offset == 0 ||
	    h->bitmap_directory_size > 64 * 1024 * 1024 ||
	    !range_within(h->bitmap_directory_offset, h->bitmap_directory_size, file_size)) {
		error_setg(errp, "qcow2 bitmaps extension at byte %" PRIu64 ": bitmap directory "
			   "(offset 0x%" PRIx64 ", %" PRIu64 " bytes) is misaligned, too large or "
			   "past the end of the file", off, h->bitmap_directory_offset,
			   h->bitmap_directory_size);
		return -1;
	}
	h->has_bitmaps_ext = true;
	return 0;
}

static int parse_crypto_ext(struct qcow2_header *h, const uint8_t *d, uint32_t len,
			    uint64_t off, uint64_t file_size, struct error **errp)
{
	uint64_t cs = 1ULL << h->cluster_bits;

	if (len != 16) {
		error_setg(errp, "qcow2 full disk encryption extension at byte %" PRIu64 " is %u "
			   "bytes long, not 16", off, len);
		return -1;
	}
	h->crypto_offset = qcow2_be64(d);
	h->crypto_len = qcow2_be64(d + 8);
	if (!h->crypto_offset || h->crypto_offset % cs || !h->crypto_len ||
	    h->crypto_len > 64 * 1024 * 1024 ||
	    !range_within(h->crypto_offset, h->crypto_len, file_size)) {
		error_setg(errp, "qcow2 full disk encryption extension at byte %" PRIu64 ": the "
			   "encryption header (offset 0x%" PRIx64 ", %" PRIu64 " bytes) is misaligned, "
			   "empty, too large or past the end of the file", off, h->crypto_offset,
			   h->crypto_len);
		return -1;
	}
	h->has_crypto_ext = true;
	return 0;
}

static int parse_feature_table(struct qcow2_header *h, const uint8_t *d, uint32_t len)
{
	size_t n = len / 48;

	h->features = calloc(n ? n : 1, sizeof(*h->features));
	if (!h->features)
		return -1;
	for (size_t i = 0; i < n; i++) {
		h->features[i].type = d[i * 48];
		h->features[i].bit = d[i * 48 + 1];
		copy_string(h->features[i].name, d + i * 48 + 2, 46);
		h->features[i].name[strnlen(h->features[i].name, 46)] = '\0';
	}
	h->nb_features = n;
	return 0;
}

static int keep_unknown(struct qcow2_header *h, uint32_t type, const uint8_t *d, uint32_t len)
{
	struct qcow2_unknown_ext *u = realloc(h->unknown, (h->nb_unknown + 1) * sizeof(*u));

	if (!u)
		return -1;
	h->unknown = u;
	u[h->nb_unknown].data = malloc(len ? len : 1);
	if (!u[h->nb_unknown].data)
		return -1;
	memcpy(u[h->nb_unknown].data, d, len);
	u[h->nb_unknown].type = type;
	u[h->nb_unknown].len = len;
	h->nb_unknown++;
	return 0;
}

static int parse_one_ext(struct qcow2_header *h, uint32_t type, const uint8_t *d, uint32_t len,
			 uint64_t off, uint64_t file_size, uint32_t *seen, struct error **errp)
{
	static const uint32_t known[] = {QCOW2_EXT_BACKING_FMT, QCOW2_EXT_FEATURE_TABLE,
					 QCOW2_EXT_BITMAPS, QCOW2_EXT_CRYPTO, QCOW2_EXT_DATA_FILE};

	for (unsigned i = 0; i < ARRAY_SIZE(known); i++) {
		if (type != known[i])
			continue;
		if (*seen & (1u << i)) {
			error_setg(errp,
				   "qcow2 header extension 0x%08x at byte %" PRIu64 " appears "
				   "twice",
				   type, off);
			return -1;
		}
		*seen |= 1u << i;
	}
	switch (type) {
	case QCOW2_EXT_BACKING_FMT:
	case QCOW2_EXT_DATA_FILE:
		if (len > QCOW2_MAX_BACKING_NAME) {
			error_setg(errp,
				   "qcow2 %s extension at byte %" PRIu64 " is %u bytes: longer "
				   "than %u",
				   type == QCOW2_EXT_DATA_FILE ? "data file name"
							       : "backing format",
				   off, len, QCOW2_MAX_BACKING_NAME);
			return -1;
		}
		if (type == QCOW2_EXT_DATA_FILE) {
			copy_string(h->data_file, d, len);
			h->has_data_file_ext = true;
		} else {
			copy_string(h->backing_fmt, d, len);
			h->has_backing_fmt = true;
		}
		return 0;
	case QCOW2_EXT_FEATURE_TABLE:
		if (parse_feature_table(h, d, len))
			goto nomem;
		return 0;
	case QCOW2_EXT_BITMAPS:
		return parse_bitmaps_ext(h, d, len, off, file_size, errp);
	case QCOW2_EXT_CRYPTO:
		return parse_crypto_ext(h, d, len, off, file_size, errp);
	default:
		if (keep_unknown(h, type, d, len))
			goto nomem;
		return 0;
	}
nomem:
	error_setg(errp, "out of memory parsing qcow2 header extensions");
	return -1;
}

static int parse_extensions(struct qcow2_header *h, const uint8_t *b, size_t len,
			    uint64_t file_size, struct error **errp)
{
	uint64_t off = h->header_length, end = MIN(len, 1ULL << h->cluster_bits);
	uint32_t seen = 0;

	if (h->backing_file_offset > off && h->backing_file_offset < end)
		end = h->backing_file_offset;
	while (off + 8 <= end) {
		uint32_t type = qcow2_be32(b + off), elen = qcow2_be32(b + off + 4);

		if (type == QCOW2_EXT_END)
			return 0;
		if (elen > end - off - 8) {
			error_setg(errp,
				   "qcow2 header extension 0x%08x at byte %" PRIu64 " claims %u "
				   "bytes, past the end of the header area (byte %" PRIu64 ")",
				   type, off, elen, end);
			return -1;
		}
		if (parse_one_ext(h, type, b + off + 8, elen, off, file_size, &seen, errp))
			return -1;
		off += 8 + ALIGN_UP((uint64_t)elen, 8);
	}
	return 0;
}

static int parse_backing(struct qcow2_header *h, const uint8_t *b, size_t len,
			 struct error **errp)
{
	/* an empty name is no backing file, as qemu reads it */
	if (!h->backing_file_offset || !h->backing_file_size)
		return 0;
	if (h->backing_file_size > QCOW2_MAX_BACKING_NAME) {
		FIELD_ERR(errp, "backing_file_size", 16, "is %u: must be 0..%u",
			  h->backing_file_size, QCOW2_MAX_BACKING_NAME);
		return -1;
	}
	if (h->backing_file_offset < h->header_length ||
	    !range_within(h->backing_file_offset, h->backing_file_size,
			  MIN(len, 1ULL << h->cluster_bits))) {
		FIELD_ERR(errp, "backing_file_offset", 8,
			  "is %" PRIu64 ": the %u-byte name must lie "
			  "in the first cluster, after the header",
			  h->backing_file_offset, h->backing_file_size);
		return -1;
	}
	copy_string(h->backing_file, b + h->backing_file_offset, h->backing_file_size);
	if (h->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW) {
		FIELD_ERR(errp, "backing_file_offset", 8, "is set on an image whose external data "
			  "file is raw (autoclear bit 1): the two are incompatible");
		return -1;
	}
	return 0;
}

static int keep_tail(struct qcow2_header *h, const uint8_t *b, struct error **errp)
{
	if (h->version < 3 || h->header_length <= 105)
		return 0;
	h->tail_len = h->header_length - 105;
	h->tail = malloc(h->tail_len);
	if (!h->tail) {
		error_setg(errp, "out of memory");
		return -1;
	}
	memcpy(h->tail, b + 105, h->tail_len);
	return 0;
}

int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size,
		       struct qcow2_header *h, struct error **errp)
{
	memset(h, 0, sizeof(*h));
	if (parse_fixed(buf, len, h, errp) || check_geometry(h, len, errp))
		return -1;
	/* the extensions first: the feature name table names unknown bits in the next check */
	if (parse_extensions(h, buf, len, file_size, errp))
		goto fail;
	if (check_features(h, buf, errp) || check_tables(h, file_size, errp) ||
	    parse_backing(h, buf, len, errp) || keep_tail(h, buf, errp))
		goto fail;
	if ((h->crypt_method == QCOW2_CRYPT_LUKS) != h->has_crypto_ext) {
		if (h->has_crypto_ext)
			error_setg(errp, "qcow2 full disk encryption extension present but "
				   "crypt_method (byte 32) is %u: the image is not encrypted",
				   h->crypt_method);
		else
			FIELD_ERR(errp, "crypt_method", 32, "is 2 (LUKS) but the full disk "
				  "encryption header extension is missing: the encrypted image is "
				  "damaged");
		goto fail;
	}
	if ((h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) && !h->has_bitmaps_ext) {
		FIELD_ERR(errp, "autoclear_features", 88,
			  "has bit 0 (bitmaps) set but the image has "
			  "no bitmaps extension");
		goto fail;
	}
	return 0;
fail:
	qcow2_header_free(h);
	return -1;
}

static int put_ext(uint8_t *buf, size_t len, size_t *off, uint32_t type, const void *d,
		   uint32_t dlen)
{
	size_t need = 8 + ALIGN_UP((size_t)dlen, 8);

	if (*off + need > len)
		return -1;
	qcow2_put_be32(buf + *off, type);
	qcow2_put_be32(buf + *off + 4, dlen);
	memcpy(buf + *off + 8, d, dlen);
	*off += need;
	return 0;
}

static int put_feature_table(const struct qcow2_header *h, uint8_t *buf, size_t len, size_t *off)
{
	uint8_t t[ARRAY_SIZE(known_features) * 48] = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(known_features); i++) {
		t[i * 48] = known_features[i].type;
		t[i * 48 + 1] = known_features[i].bit;
		memcpy(t + i * 48 + 2, known_features[i].name, strlen(known_features[i].name));
	}
	(void)h;
	return put_ext(buf, len, off, QCOW2_EXT_FEATURE_TABLE, t, sizeof(t));
}

void qcow2_header_put_fixed(const struct qcow2_header *h, uint8_t *b)
{
	qcow2_put_be32(b, QCOW2_MAGIC);
	qcow2_put_be32(b + 4, h->version);
	qcow2_put_be64(b + 8, h->backing_file_offset);
	qcow2_put_be32(b + 16, h->backing_file_size);
	qcow2_put_be32(b + 20, h->cluster_bits);
	qcow2_put_be64(b + 24, h->size);
	qcow2_put_be32(b + 32, h->crypt_method);
	qcow2_put_be32(b + 36, h->l1_size);
	qcow2_put_be64(b + 40, h->l1_table_offset);
	qcow2_put_be64(b + 48, h->refcount_table_offset);
	qcow2_put_be32(b + 56, h->refcount_table_clusters);
	qcow2_put_be32(b + 60, h->nb_snapshots);
	qcow2_put_be64(b + 64, h->snapshots_offset);
	if (h->version < 3)
		return;
	qcow2_put_be64(b + 72, h->incompatible_features);
	qcow2_put_be64(b + 80, h->compatible_features);
	qcow2_put_be64(b + 88, h->autoclear_features);
	qcow2_put_be32(b + 96, h->refcount_order);
	qcow2_put_be32(b + 100, h->header_length);
	b[104] = h->compression_type;
	if (h->tail)
		memcpy(b + 105, h->tail, h->tail_len);
}

static size_t unknown_bytes(const struct qcow2_header *h)
{
	size_t n = 0;

	for (size_t i = 0; i < h->nb_unknown; i++)
		n += 8 + ALIGN_UP((size_t)h->unknown[i].len, 8);
	return n;
}

int qcow2_header_serialize(struct qcow2_header *h, uint8_t *buf, size_t len, struct error **errp)
{
	size_t off, blen = strlen(h->backing_file);

	h->header_length = h->version < 3 ? QCOW2_V2_HEADER_LEN :
		(h->tail ? 105 + h->tail_len : QCOW2_HEADER_LEN);
	off = h->header_length;
	if (h->has_backing_fmt &&
	    put_ext(buf, len, &off, QCOW2_EXT_BACKING_FMT, h->backing_fmt, strlen(h->backing_fmt)))
		goto full;
	if (h->has_data_file_ext &&
	    put_ext(buf, len, &off, QCOW2_EXT_DATA_FILE, h->data_file, strlen(h->data_file)))
		goto full;
	if (h->has_crypto_ext) {
		uint8_t c[16];

		qcow2_put_be64(c, h->crypto_offset);
		qcow2_put_be64(c + 8, h->crypto_len);
		if (put_ext(buf, len, &off, QCOW2_EXT_CRYPTO, c, sizeof(c)))
			goto full;
	}
	/* the feature name table only helps other readers' messages: drop it when a small
	 * cluster has no room for it next to the backing file name */
	if (h->version >= 3 && (len - off >= 8 + ARRAY_SIZE(known_features) * 48 + 8 +
				 strlen(h->backing_file) + (h->has_bitmaps_ext ? 32 : 0) +
				 unknown_bytes(h)) && put_feature_table(h, buf, len, &off))
		goto full;
	if (h->has_bitmaps_ext &&
	    put_ext(buf, len, &off, QCOW2_EXT_BITMAPS, h->bitmaps_ext, sizeof(h->bitmaps_ext)))
		goto full;
	for (size_t i = 0; i < h->nb_unknown; i++)
		if (put_ext(buf, len, &off, h->unknown[i].type, h->unknown[i].data,
			    h->unknown[i].len))
			goto full;
	if (off + 8 + blen > len)
		goto full;
	memset(buf + off, 0, 8); /* end of extensions */
	off += 8;
	h->backing_file_offset = blen ? off : 0;
	h->backing_file_size = (uint32_t)blen;
	memcpy(buf + off, h->backing_file, blen);
	qcow2_header_put_fixed(h, buf);
	return 0;
full:
	error_setg(errp, "qcow2 header, its extensions and the backing file name do not fit in one "
		   "%zu-byte cluster", len);
	return -1;
}
