/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the VDI parsers (blockdev/vdi_format.c), pure and fast, as the vdi driver runs
 * them at open: the header against the file, then the block map. A header that parses is
 * serialized and must parse again to the same bytes.
 *
 * Input: u64 (little-endian) file size (the image may be larger than the input: bytes past the
 * input read as zeroes, as a sparse file's), then the image's first bytes.
 *
 * Invariants: the parser never reads past its buffer and refuses with a message; an accepted
 * header survives a round trip, keeps the block map after the header and before the data area,
 * the data area inside the file and the disk inside its blocks; an accepted map (up to 65536
 * entries) has every allocated block inside the file, and its counts are those a brute-force
 * count gives (up to 2048 entries).
 */
#include <string.h>

#include "blockdev/vdi.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

#define MAX_ENTRIES 65536

static void image_read(const uint8_t *img, size_t n, uint64_t off, void *buf, size_t len)
{
	memset(buf, 0, len);
	if (off < n)
		memcpy(buf, img + off, MIN((uint64_t)len, n - off));
}

static void brute_force(const struct vdi_header *h, const uint32_t *map, uint64_t file_size,
			const struct vdi_map_report *r)
{
	uint32_t n = h->blocks_in_image, allocated = 0, bad = 0, dup = 0, max = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t e = map[i];
		bool seen = false;

		if (e == VDI_UNALLOCATED || e == VDI_DISCARDED)
			continue;
		FUZZ_CHECK(vdi_block_offset(h, e) + h->block_size <= file_size,
			   "entry %u's block is past the end of the file", i);
		max = MAX(max, e + 1);
		if (e >= n) {
			bad++;
			continue;
		}
		allocated++;
		for (uint32_t j = 0; j < i && !seen && n <= 2048; j++)
			seen = map[j] == e;
		dup += seen;
	}
	FUZZ_CHECK(r->allocated == allocated && r->bad_index == bad && r->max_index == max,
		   "counts %u/%u/%u, brute force %u/%u/%u", r->allocated, r->bad_index,
		   r->max_index, allocated, bad, max);
	FUZZ_CHECK(n > 2048 || r->duplicates == dup, "duplicates %u, brute force %u",
		   r->duplicates, dup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[VDI_HEADER_LEN], again[VDI_HEADER_LEN];
	struct vdi_header h, g;
	struct vdi_map_report r;
	struct error *err = NULL;
	uint64_t file_size = 0;
	uint32_t *map;

	if (size < 8)
		return 0;
	for (int i = 7; i >= 0; i--)
		file_size = file_size << 8 | data[i];
	data += 8;
	size -= 8;
	image_read(data, size, 0, buf, sizeof(buf));
	if (vdi_header_parse(buf, file_size, &h, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "header refused without a message");
		FUZZ_LOG("vdi header: %s\n", error_msg(err));
		error_free(err);
		return 0;
	}
	vdi_header_put(&h, again);
	FUZZ_CHECK(vdi_header_parse(again, file_size, &g, NULL) == 0, "round trip: refused");
	vdi_header_put(&g, buf);
	FUZZ_CHECK(!memcmp(buf, again, sizeof(buf)), "the header's round trip changed it");
	FUZZ_CHECK(h.offset_bmap >= VDI_HEADER_LEN &&
		   h.offset_bmap + (uint64_t)h.blocks_in_image * 4 <= h.offset_data &&
		   h.offset_data <= file_size &&
		   h.disk_size <= (uint64_t)h.blocks_in_image * h.block_size,
		   "an accepted header's areas overlap or leave the file");
	if (h.blocks_in_image > MAX_ENTRIES)
		return 0;
	map = malloc(sizeof(*map) * (h.blocks_in_image + 1));
	if (!map)
		return 0;
	for (uint32_t i = 0; i < h.blocks_in_image; i++) {
		uint8_t b[4];

		image_read(data, size, h.offset_bmap + (uint64_t)i * 4, b, 4);
		map[i] = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
			 (uint32_t)b[3] << 24;
	}
	if (vdi_map_check(&h, map, file_size, false, &r, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "map refused without a message");
		FUZZ_LOG("vdi map: %s\n", error_msg(err));
		error_free(err);
	} else {
		brute_force(&h, map, file_size, &r);
		FUZZ_LOG("vdi: %u blocks, %u allocated\n", h.blocks_in_image, r.allocated);
	}
	free(map);
	return 0;
}
