/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the VHD parsers (blockdev/vpc_format.c), pure and fast, as the vpc driver runs
 * them at open: the footer (the copy at offset 0 when intact, else the last sector), the disk
 * size by each rule, and for a dynamic disk the dynamic header, the layout check and the BAT
 * check; then all of it again with the footer's checksum made right (so that mutations of its
 * fields get past the checksum). What parses is serialized and must parse again the same.
 *
 * Input: u64 (little-endian) file size (the image may be larger than the input: bytes past the
 * input read as zeroes, as a sparse file's), then the image's first bytes.
 *
 * Invariants: the parsers never read past their buffers and refuse with a message; an accepted
 * footer and dynamic header survive a round trip; an accepted layout keeps the dynamic header
 * and the BAT inside the file and apart; an accepted BAT (up to 4096 entries, checked by brute
 * force) has every block inside [metadata end, file size) and no two blocks overlapping, and
 * the next block's place at or past every block.
 */
#include <string.h>

#include "blockdev/vpc.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

#define MAX_ENTRIES 65536 /* the driver's BAT is bounded by the file; here by the run time */

/* @len bytes of the image at @off (zeroes past the input). */
static void image_read(const uint8_t *img, size_t n, uint64_t off, void *buf, size_t len)
{
	memset(buf, 0, len);
	if (off < n)
		memcpy(buf, img + off, MIN((uint64_t)len, n - off));
}

static void footer_round_trip(const struct vpc_footer *f)
{
	uint8_t buf[VPC_FOOTER_LEN];
	struct vpc_footer copy = *f, g;

	vpc_footer_put(&copy, buf);
	FUZZ_CHECK(vpc_footer_intact(buf), "a serialized footer has a bad checksum");
	FUZZ_CHECK(vpc_footer_parse(buf, &g, NULL) == 0, "a serialized footer no longer parses");
	FUZZ_CHECK(g.data_offset == f->data_offset && g.current_size == f->current_size &&
		   g.cylinders == f->cylinders && g.heads == f->heads &&
		   g.sectors == f->sectors && g.type == f->type &&
		   !memcmp(g.creator_app, f->creator_app, 4) && !memcmp(g.uuid, f->uuid, 16),
		   "the footer's round trip changed a field");
}

static void bat_brute_force(const uint32_t *bat, uint32_t n, uint32_t block_size,
			    uint64_t meta_end, uint64_t file_size, uint64_t next)
{
	uint64_t span = (uint64_t)vpc_bitmap_size(block_size) + block_size;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = (uint64_t)bat[i] * VPC_SECTOR;

		if (bat[i] == VPC_BAT_FREE)
			continue;
		FUZZ_CHECK(a >= meta_end && a + span <= file_size, "block %u outside", i);
		FUZZ_CHECK(next >= a + span, "the next block's place %llu is inside block %u",
			   (unsigned long long)next, i);
		for (uint32_t j = i + 1; j < n && n <= 4096; j++) {
			uint64_t b = (uint64_t)bat[j] * VPC_SECTOR;

			if (bat[j] != VPC_BAT_FREE)
				FUZZ_CHECK(a + span <= b || b + span <= a, "blocks %u and %u overlap",
					   i, j);
		}
	}
}

static void dynamic(const uint8_t *img, size_t n, uint64_t file_size,
		    const struct vpc_footer *f, uint64_t disk)
{
	uint8_t buf[VPC_DYN_LEN], again[VPC_DYN_LEN];
	struct vpc_dyn d, e;
	struct error *err = NULL;
	uint64_t meta_end, next;
	uint32_t *bat;

	image_read(img, n, f->data_offset, buf, sizeof(buf));
	if (vpc_dyn_parse(buf, &d, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "dynamic header refused without a message");
		FUZZ_LOG("vpc dynamic header: %s\n", error_msg(err));
		error_free(err);
		return;
	}
	e = d;
	vpc_dyn_put(&e, again);
	FUZZ_CHECK(vpc_dyn_parse(again, &e, NULL) == 0 && e.table_offset == d.table_offset &&
		   e.max_entries == d.max_entries && e.block_size == d.block_size,
		   "the dynamic header's round trip changed a field");
	if (vpc_layout_check(f, &d, disk, file_size, &meta_end, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "layout refused without a message");
		FUZZ_LOG("vpc layout: %s\n", error_msg(err));
		error_free(err);
		return;
	}
	FUZZ_CHECK(f->data_offset >= VPC_FOOTER_LEN && f->data_offset + VPC_DYN_LEN <= file_size &&
		   d.table_offset + (uint64_t)d.max_entries * 4 <= file_size &&
		   meta_end <= ALIGN_UP(file_size, (uint64_t)VPC_SECTOR) &&
		   (uint64_t)d.max_entries * d.block_size >= disk,
		   "an accepted layout is not inside the file or does not cover the disk");
	if (d.max_entries > MAX_ENTRIES)
		return;
	bat = malloc(sizeof(*bat) * (d.max_entries + 1));
	if (!bat)
		return;
	for (uint32_t i = 0; i < d.max_entries; i++) {
		uint8_t b[4];

		image_read(img, n, d.table_offset + (uint64_t)i * 4, b, 4);
		bat[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	}
	if (vpc_bat_check(bat, d.max_entries, d.block_size, meta_end, file_size, &next, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "BAT refused without a message");
		FUZZ_LOG("vpc BAT: %s\n", error_msg(err));
		error_free(err);
	} else {
		bat_brute_force(bat, d.max_entries, d.block_size, meta_end, file_size, next);
		FUZZ_LOG("vpc: dynamic, %u entries of %u bytes\n", d.max_entries, d.block_size);
	}
	free(bat);
}

/* The footer's checksum made right, so that mutated fields reach the checks after it. */
static void fix_checksum(uint8_t *buf)
{
	uint32_t sum = vpc_checksum(buf, VPC_FOOTER_LEN, 64);

	buf[64] = (uint8_t)(sum >> 24);
	buf[65] = (uint8_t)(sum >> 16);
	buf[66] = (uint8_t)(sum >> 8);
	buf[67] = (uint8_t)sum;
}

static void run(const uint8_t *data, size_t size, uint64_t file_size, bool fix)
{
	uint8_t buf[VPC_FOOTER_LEN];
	struct vpc_footer f;
	struct error *err = NULL;
	uint64_t disk;

	image_read(data, size, 0, buf, sizeof(buf));
	if (!vpc_probe(buf, sizeof(buf)) || (!fix && !vpc_footer_intact(buf)))
		image_read(data, size, file_size - VPC_FOOTER_LEN, buf, sizeof(buf));
	if (fix)
		fix_checksum(buf);
	if (vpc_footer_parse(buf, &f, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "footer refused without a message");
		FUZZ_LOG("vpc footer: %s\n", error_msg(err));
		error_free(err);
		return;
	}
	footer_round_trip(&f);
	disk = vpc_disk_size(&f, VPC_SIZE_AUTO);
	FUZZ_CHECK(disk % VPC_SECTOR == 0, "a disk size of partial sectors");
	(void)vpc_disk_size(&f, VPC_SIZE_CHS);
	(void)vpc_disk_size(&f, VPC_SIZE_CURRENT);
	if (f.type == VPC_TYPE_DYNAMIC)
		dynamic(data, size, file_size, &f, disk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t file_size = 0;

	if (size < 8)
		return 0;
	for (int i = 7; i >= 0; i--)
		file_size = file_size << 8 | data[i];
	if (file_size < VPC_FOOTER_LEN)
		return 0;
	run(data + 8, size - 8, file_size, false);
	run(data + 8, size - 8, file_size, true);
	return 0;
}
