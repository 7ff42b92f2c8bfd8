/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the VMDK sparse extent header and stream footer parsers (blockdev/vmdk_header.c
 * vmdk_header_parse, vmdk_footer_parse), pure and fast, plus a round trip: a header that
 * parses is encoded (vmdk_header_put) and must parse again to the same fields.
 *
 * Input: one byte (bit 0: parse the rest as a stream footer, 3 sectors), u64 (little-endian)
 * size of the file the header claims to come from, then the header's (or footer's) bytes.
 *
 * Invariants: the parsers never read past the input, fail with a message, and what they accept
 * has its directories inside the file, a power-of-two grain of at most 1 MiB, at most 512
 * entries per table, and survives encode + parse unchanged.
 */
#include <string.h>

#include "blockdev/vmdk_format.h"
#include "tests/fuzz/fuzz.h"

#define SAME(f) FUZZ_CHECK(a->f == b->f, "round trip changed " #f)

static void same(const struct vmdk_header *a, const struct vmdk_header *b)
{
	SAME(version);
	SAME(flags);
	SAME(capacity);
	SAME(grain_size);
	SAME(desc_offset);
	SAME(desc_size);
	SAME(gtes_per_gt);
	SAME(rgd_offset);
	SAME(gd_offset);
	SAME(overhead);
	SAME(unclean);
	SAME(compress);
}

static void bounded(const struct vmdk_header *h, uint64_t fsize)
{
	FUZZ_CHECK(h->grain_size && !(h->grain_size & (h->grain_size - 1)) &&
		   h->grain_size <= VMDK_MAX_GRAIN_SECTORS, "grain size %llu accepted",
		   (unsigned long long)h->grain_size);
	FUZZ_CHECK(h->gtes_per_gt && h->gtes_per_gt <= VMDK_MAX_GTES, "%u entries per table",
		   h->gtes_per_gt);
	if (h->gd_offset == VMDK_GD_AT_END)
		return;
	FUZZ_CHECK(vmdk_gd_entries(h) <= VMDK_MAX_GD_ENTRIES, "a directory of %llu entries",
		   (unsigned long long)vmdk_gd_entries(h));
	FUZZ_CHECK(h->gd_offset && h->gd_offset <= fsize / 512 &&
		   h->gd_offset * 512 + vmdk_gd_entries(h) * 4 <= fsize,
		   "a directory past the end of the file accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmdk_header a, b;
	struct error *err = NULL;
	uint8_t again[512];
	uint64_t fsize = 0;
	bool footer;
	int ret;

	if (size < 9)
		return 0;
	footer = data[0] & 1;
	for (int i = 0; i < 8; i++)
		fsize |= (uint64_t)data[1 + i] << (8 * i);
	data += 9;
	size -= 9;
	ret = footer ? vmdk_footer_parse(data, size, fsize, &a, &err) :
		       vmdk_header_parse(data, size, fsize, &a, &err);
	if (ret) {
		FUZZ_CHECK(err && error_msg(err)[0], "refused without a message");
		FUZZ_LOG("vmdk_header: %s\n", error_msg(err));
		error_free(err);
		return 0;
	}
	FUZZ_CHECK(size >= (footer ? 1536u : 512u), "accepted %zu bytes", size);
	FUZZ_CHECK(!footer || a.gd_offset != VMDK_GD_AT_END, "a footer saying GD_AT_END");
	bounded(&a, fsize);
	vmdk_header_put(&a, again);
	FUZZ_CHECK(vmdk_header_parse(again, sizeof(again), fsize, &b, NULL) == 0,
		   "the encoded header no longer parses");
	same(&a, &b);
	return 0;
}
