/* SPDX-License-Identifier: Apache-2.0 */
/* qcow2 header parsing: each hostile field is refused with a message naming it; good ones parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "blockdev/qcow2_format.h"

#define FILE_SIZE (1ULL << 30)

static uint8_t img[1 << 21];
static unsigned cbits;

/* A valid v3 header: reftable at cluster 1, L1 at cluster 2, 1 GiB disk. */
static void make(unsigned version, unsigned cluster_bits, const char *backing)
{
	struct qcow2_header h = { 0 };

	memset(img, 0, sizeof(img));
	cbits = cluster_bits;
	h.version = version;
	h.cluster_bits = cluster_bits;
	h.size = 1ULL << 30;
	h.l1_size = (uint32_t)qcow2_l1_entries_for(h.size, cluster_bits, false);
	h.refcount_table_offset = 1ULL << cluster_bits;
	h.refcount_table_clusters = 1;
	h.l1_table_offset = 2ULL << cluster_bits;
	h.refcount_order = 4;
	if (backing) {
		strcpy(h.backing_file, backing);
		strcpy(h.backing_fmt, "raw");
		h.has_backing_fmt = true;
	}
	assert_int_equal(qcow2_header_serialize(&h, img, 1u << cluster_bits, NULL), 0);
}

static int parse(struct qcow2_header *h, struct error **err)
{
	return qcow2_header_parse(img, 1u << cbits, FILE_SIZE, h, err);
}

/* The image must be refused, with @field (and @also, if given) in the message. */
static void refused(const char *field, const char *also)
{
	struct qcow2_header h;
	struct error *err = NULL;

	assert_int_equal(parse(&h, &err), -1);
	assert_non_null(err);
	if (!strstr(error_msg(err), field) || (also && !strstr(error_msg(err), also)))
		fail_msg("message '%s' does not name '%s'", error_msg(err), field);
	error_free(err);
	qcow2_header_free(&h);
}

static void accepted(struct qcow2_header *h)
{
	struct error *err = NULL;

	if (parse(h, &err))
		fail_msg("refused: %s", error_msg(err));
}

static void be32(unsigned off, uint32_t v) { qcow2_put_be32(img + off, v); }
static void be64(unsigned off, uint64_t v) { qcow2_put_be64(img + off, v); }

static void valid_v2_and_v3_images_parse(void **state)
{
	struct qcow2_header h;

	for (unsigned v = 2; v <= 3; v++) {
		make(v, 16, "base.img");
		accepted(&h);
		assert_int_equal(h.version, v);
		assert_int_equal(h.cluster_bits, 16);
		assert_int_equal(h.refcount_order, 4);
		assert_string_equal(h.backing_file, "base.img");
		assert_true(h.has_backing_fmt);
		assert_string_equal(h.backing_fmt, "raw");
		qcow2_header_free(&h);
	}
}

static void every_cluster_size_from_512_to_2m_parses(void **state)
{
	struct qcow2_header h;

	for (unsigned b = 9; b <= 21; b++) {
		make(3, b, NULL);
		accepted(&h);
		assert_int_equal(h.cluster_bits, b);
		qcow2_header_free(&h);
	}
}

static void every_refcount_order_parses(void **state)
{
	struct qcow2_header h;

	for (unsigned o = 0; o <= 6; o++) {
		make(3, 16, NULL);
		be32(96, o);
		accepted(&h);
		assert_int_equal(h.refcount_order, o);
		qcow2_header_free(&h);
	}
}

static void bad_magic_version_and_truncation_are_refused(void **state)
{
	struct qcow2_header h;
	struct error *err = NULL;

	make(3, 16, NULL);
	img[3] = 0xfa;
	refused("magic", "byte 0");
	make(3, 16, NULL);
	be32(4, 1);
	refused("version", "byte 4");
	be32(4, 4);
	refused("version", NULL);
	make(3, 16, NULL);
	assert_int_equal(qcow2_header_parse(img, 50, FILE_SIZE, &h, &err), -1);
	assert_non_null(strstr(error_msg(err), "truncated"));
	error_free(err);
}

static void cluster_bits_outside_9_to_21_are_refused(void **state)
{
	static const uint32_t bad[] = { 0, 8, 22, 63, 0xffffffff };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make(3, 16, NULL);
		be32(20, bad[i]);
		refused("cluster_bits", "byte 20");
	}
}

static void bad_header_length_and_refcount_order_are_refused(void **state)
{
	static const uint32_t bad[] = { 0, 100, 105, 116, 1u << 17 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make(3, 16, NULL);
		be32(100, bad[i]);
		refused("header_length", "byte 100");
	}
	make(3, 16, NULL);
	be32(96, 7);
	refused("refcount_order", "byte 96");
	make(3, 16, NULL);
	be32(32, 2);
	refused("crypt_method", "encrypted");
}

static void unknown_incompatible_bits_are_refused_by_number_and_name(void **state)
{
	make(3, 16, NULL);
	be64(72, 1ULL << 5);
	refused("incompatible_features", "bit 5");
	/* the image's feature name table (the first extension here) names the bit */
	make(3, 16, NULL);
	assert_int_equal(qcow2_be32(img + 112), QCOW2_EXT_FEATURE_TABLE);
	be64(72, 1ULL << 9);
	img[112 + 8] = 0;
	img[112 + 9] = 9;
	memset(img + 112 + 10, 0, 46);
	memcpy(img + 112 + 10, "quantum entanglement", 20);
	refused("bit 9", "quantum entanglement");
}

static void compression_type_must_match_its_feature_bit(void **state)
{
	struct qcow2_header h;

	make(3, 16, NULL);
	be64(72, QCOW2_INCOMPAT_COMPRESSION);
	refused("compression_type", "byte 104");
	img[104] = 2;
	refused("compression_type", NULL);
	make(3, 16, NULL);
	img[104] = 1;
	refused("compression_type", "clear");
	be64(72, QCOW2_INCOMPAT_COMPRESSION);
	accepted(&h);
	assert_int_equal(h.compression_type, QCOW2_COMPRESS_ZSTD);
	qcow2_header_free(&h);
}

static void extended_l2_needs_16k_clusters(void **state)
{
	struct qcow2_header h;

	make(3, 13, NULL);
	be64(72, QCOW2_INCOMPAT_EXTL2);
	refused("cluster_bits", "extended L2");
	make(3, 14, NULL);
	be64(72, QCOW2_INCOMPAT_EXTL2);
	refused("l1_size", "needs"); /* extended entries: half as many per table */
	be32(36, (uint32_t)qcow2_l1_entries_for(1ULL << 30, 14, true));
	accepted(&h);
	qcow2_header_free(&h);
}

static void autoclear_bits_are_checked(void **state)
{
	make(3, 16, NULL);
	be64(88, QCOW2_AUTOCLEAR_DATA_FILE_RAW);
	refused("autoclear_features", "external data");
	make(3, 16, NULL);
	be64(88, QCOW2_AUTOCLEAR_BITMAPS);
	refused("autoclear_features", "bitmaps");
}

static void tables_out_of_bounds_or_misaligned_are_refused(void **state)
{
	make(3, 16, NULL);
	be64(24, (1ULL << 61) + 1);
	refused("size", "byte 24");
	make(3, 16, NULL);
	be32(36, 5 * 1024 * 1024);
	refused("l1_size", "byte 36");
	make(3, 16, NULL);
	be32(36, 1);
	refused("l1_size", "needs");
	make(3, 16, NULL);
	be64(40, (2ULL << 16) + 512);
	refused("l1_table_offset", "aligned");
	be64(40, FILE_SIZE);
	refused("l1_table_offset", "end of the file");
	be64(40, 1ULL << 16);
	refused("l1_table_offset", "overlaps");
	make(3, 16, NULL);
	be32(56, 0);
	refused("refcount_table_clusters", "byte 56");
	be32(56, 1u << 20);
	refused("refcount_table_clusters", NULL);
	make(3, 16, NULL);
	be64(48, 0);
	refused("refcount_table_offset", "header");
	be64(48, 4096);
	refused("refcount_table_offset", "aligned");
	be64(48, UINT64_MAX & ~0xffffULL);
	refused("refcount_table_offset", "end of the file");
	make(3, 16, NULL);
	be32(60, 70000);
	refused("nb_snapshots", "byte 60");
	be32(60, 1);
	be64(64, 12345);
	refused("snapshots_offset", "aligned");
}

static void backing_file_name_must_be_sane(void **state)
{
	make(3, 16, "b.img");
	be32(16, 2000);
	refused("backing_file_size", "byte 16");
	make(3, 16, "b.img");
	be64(8, (1ULL << 16) - 2);
	refused("backing_file_offset", "first cluster");
	make(3, 16, "b.img");
	be64(88, QCOW2_AUTOCLEAR_DATA_FILE_RAW);
	be64(72, QCOW2_INCOMPAT_DATA_FILE);
	refused("backing_file_offset", "incompatible");
}

/* an offset with an empty name is no backing file, as qemu reads it */
static void empty_backing_file_name_is_no_backing_file(void **state)
{
	struct qcow2_header h;

	make(3, 16, "b.img");
	be32(16, 0);
	accepted(&h);
	assert_string_equal(h.backing_file, "");
	qcow2_header_free(&h);
}

static void hostile_extensions_are_refused(void **state)
{
	/* the first extension (backing format) claims more bytes than the cluster has */
	make(3, 16, "b.img");
	be32(112 + 4, 1u << 20);
	refused("extension", "past the end");
	/* a second backing format extension */
	make(3, 16, "b.img");
	memcpy(img + 112 + 16, img + 112, 16);
	refused("appears twice", NULL);
	/* bitmaps: wrong length */
	make(3, 16, "b.img");
	be32(112, QCOW2_EXT_BITMAPS);
	refused("bitmaps extension", "24");
	/* encryption header */
	make(3, 16, "b.img");
	be32(112, QCOW2_EXT_CRYPTO);
	refused("encryption", NULL);
}

static void unknown_extensions_and_header_tail_survive_a_round_trip(void **state)
{
	struct qcow2_header h, h2;
	static uint8_t out[1 << 16];
	uint8_t ext[16] = { 0 };

	make(3, 16, "b.img");
	/* header_length 120: 8 unknown bytes after compression_type's padding */
	memmove(img + 120, img + 112, 2048);
	be32(100, 120);
	img[113] = 0x5a;
	img[119] = 0xa5;
	qcow2_put_be32(ext, 0x12345678);
	qcow2_put_be32(ext + 4, 5);
	memcpy(ext + 8, "hello", 5);
	memmove(img + 120 + sizeof(ext), img + 120, 2048);
	memcpy(img + 120, ext, sizeof(ext));
	be64(8, qcow2_be64(img + 8) + 8 + sizeof(ext));
	accepted(&h);
	assert_int_equal(h.nb_unknown, 1);
	assert_int_equal(h.unknown[0].type, 0x12345678);
	assert_memory_equal(h.unknown[0].data, "hello", 5);
	assert_int_equal(h.tail_len, 15);
	assert_string_equal(h.backing_file, "b.img");
	memset(out, 0, sizeof(out));
	assert_int_equal(qcow2_header_serialize(&h, out, sizeof(out), NULL), 0);
	memcpy(img, out, sizeof(out));
	accepted(&h2);
	assert_int_equal(h2.header_length, 120);
	assert_int_equal(h2.nb_unknown, 1);
	assert_memory_equal(h2.unknown[0].data, "hello", 5);
	assert_int_equal(img[113], 0x5a);
	assert_int_equal(img[119], 0xa5);
	assert_string_equal(h2.backing_file, "b.img");
	assert_string_equal(h2.backing_fmt, "raw");
	qcow2_header_free(&h);
	qcow2_header_free(&h2);
}

static void a_small_cluster_header_drops_the_feature_table_to_fit(void **state)
{
	struct qcow2_header h = { 0 };
	uint8_t buf[512] = { 0 };

	h.version = 3;
	h.cluster_bits = 9;
	h.refcount_order = 4;
	memset(h.backing_file, 'x', 300);
	strcpy(h.backing_fmt, "qcow2");
	h.has_backing_fmt = true;
	assert_int_equal(qcow2_header_serialize(&h, buf, sizeof(buf), NULL), 0);
	memset(h.backing_file, 'x', 500);
	assert_int_equal(qcow2_header_serialize(&h, buf, sizeof(buf), NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_v2_and_v3_images_parse),
		cmocka_unit_test(every_cluster_size_from_512_to_2m_parses),
		cmocka_unit_test(every_refcount_order_parses),
		cmocka_unit_test(bad_magic_version_and_truncation_are_refused),
		cmocka_unit_test(cluster_bits_outside_9_to_21_are_refused),
		cmocka_unit_test(bad_header_length_and_refcount_order_are_refused),
		cmocka_unit_test(unknown_incompatible_bits_are_refused_by_number_and_name),
		cmocka_unit_test(compression_type_must_match_its_feature_bit),
		cmocka_unit_test(extended_l2_needs_16k_clusters),
		cmocka_unit_test(autoclear_bits_are_checked),
		cmocka_unit_test(tables_out_of_bounds_or_misaligned_are_refused),
		cmocka_unit_test(backing_file_name_must_be_sane),
		cmocka_unit_test(empty_backing_file_name_is_no_backing_file),
		cmocka_unit_test(hostile_extensions_are_refused),
		cmocka_unit_test(unknown_extensions_and_header_tail_survive_a_round_trip),
		cmocka_unit_test(a_small_cluster_header_drops_the_feature_table_to_fit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
