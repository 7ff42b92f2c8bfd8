/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the qcow2 header parser (blockdev/qcow2_header.c qcow2_header_parse), pure and
 * fast, plus a round trip: a header that parses is serialized (qcow2_header_serialize, as
 * vireo-img writes it) and must parse again to the same values.
 *
 * Input: u64 (little-endian) extra file size (masked to 2^40), then the image's first bytes; the
 * parser is told the file is that many bytes longer than the input.
 *
 * Invariants: the parser never reads past @len (the input is an exact-size buffer), fails with a
 * message, and what it accepts survives serialize + parse unchanged (fields, backing file and
 * format, data file, feature bits, extension counts).
 */
#include <stdlib.h>

#include "blockdev/qcow2_format.h"
#include "tests/fuzz/fuzz.h"

#define SAME(f) FUZZ_CHECK(a->f == b->f, "round trip changed " #f)
#define SAME_STR(f) FUZZ_CHECK(!strcmp(a->f, b->f), "round trip changed " #f " '%s' -> '%s'", \
			       a->f, b->f)

static void compare(const struct qcow2_header *a, const struct qcow2_header *b)
{
	SAME(version);
	SAME(cluster_bits);
	SAME(size);
	SAME(crypt_method);
	SAME(has_crypto_ext);
	SAME(crypto_offset);
	SAME(crypto_len);
	SAME(l1_size);
	SAME(l1_table_offset);
	SAME(refcount_table_offset);
	SAME(refcount_table_clusters);
	SAME(nb_snapshots);
	SAME(snapshots_offset);
	SAME(incompatible_features);
	SAME(compatible_features);
	SAME(autoclear_features);
	SAME(refcount_order);
	SAME(compression_type);
	SAME(has_backing_fmt);
	SAME(has_data_file_ext);
	SAME(has_bitmaps_ext);
	SAME(nb_unknown);
	/* a v3 header of 104 bytes comes back as the 112 we write: 7 bytes of zero padding */
	if (a->tail_len) {
		SAME(tail_len);
		FUZZ_CHECK(!memcmp(a->tail, b->tail, a->tail_len), "round trip changed the tail");
	} else {
		for (uint32_t i = 0; i < b->tail_len; i++)
			FUZZ_CHECK(b->tail[i] == 0, "round trip invented header bytes");
	}
	SAME_STR(backing_file);
	if (a->has_backing_fmt)
		SAME_STR(backing_fmt);
	if (a->has_data_file_ext)
		SAME_STR(data_file);
	if (a->has_bitmaps_ext)
		FUZZ_CHECK(!memcmp(a->bitmaps_ext, b->bitmaps_ext, sizeof(a->bitmaps_ext)),
			   "round trip changed the bitmaps extension");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct qcow2_header h1, h2;
	struct error *err = NULL;
	uint64_t file_size, cluster;
	uint8_t *buf, *out;
	size_t len;

	if (size < 8)
		return 0;
	file_size = fuzz_u64(&in) & ((1ULL << 40) - 1);
	len = in.n;
	file_size += len;
	buf = malloc(len ? len : 1); /* exact size: an over-read is an ASan error */
	if (!buf)
		abort();
	memcpy(buf, in.p, len);
	memset(&h1, 0, sizeof(h1));
	memset(&h2, 0, sizeof(h2));
	if (qcow2_header_parse(buf, len, file_size, &h1, &err) < 0) {
		FUZZ_CHECK(err && error_msg(err)[0], "header refused without a message");
		FUZZ_LOG("qcow2_header: %s\n", error_msg(err));
		error_free(err);
		goto out;
	}
	FUZZ_LOG("qcow2_header: parsed v%u, cluster_bits %u\n", h1.version, h1.cluster_bits);
	FUZZ_CHECK(h1.cluster_bits >= QCOW2_MIN_CLUSTER_BITS &&
		   h1.cluster_bits <= QCOW2_MAX_CLUSTER_BITS, "cluster_bits %u", h1.cluster_bits);

	cluster = 1ULL << h1.cluster_bits;
	out = calloc(1, cluster);
	if (!out)
		abort();
	if (qcow2_header_serialize(&h1, out, cluster, &err) == 0) {
		/* the re-read sees the whole header cluster, in a file at least that long */
		uint64_t fs2 = file_size > cluster ? file_size : cluster;

		if (qcow2_header_parse(out, cluster, fs2, &h2, &err) < 0)
			FUZZ_CHECK(0, "a serialized header does not parse: %s", error_msg(err));
		compare(&h1, &h2);
	} else {
		FUZZ_LOG("qcow2_header: serialize: %s\n", error_msg(err));
		error_free(err);
	}
	free(out);
out:
	qcow2_header_free(&h1);
	qcow2_header_free(&h2);
	free(buf);
	return 0;
}
