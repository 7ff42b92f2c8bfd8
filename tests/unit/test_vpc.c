/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VHD (blockdev/vpc_format.c, vpc.c, blocktab.c): the footer and dynamic header parsers refuse
 * hostile fields by name, the CHS geometry and disk sizes are qemu-img's, the layout and BAT
 * checks bound every table against the file; the driver places new blocks after the file with
 * aligned data, serves concurrent writers to the same unallocated blocks (each block placed
 * once, every write kept), and writes its BAT at flush so that a reopened image reads the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blockdev/blockdev.h"
#include "blockdev/vpc.h"
#include "tests/unit/img_fixture.h"

/* @ret is -1 and *@errp names @what (the call that set it is evaluated before this one) */
static void refused(int ret, struct error **errp, const char *what)
{
	struct error *err = *errp;

	*errp = NULL;
	assert_int_equal(ret, -1);
	assert_non_null(err);
	if (!strstr(error_msg(err), what))
		fail_msg("'%s' does not name '%s'", error_msg(err), what);
	error_free(err);
}

static void new_footer(struct vpc_footer *f, uint32_t type, uint8_t buf[VPC_FOOTER_LEN])
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(vpc_create_size(10 << 20, false, f, NULL), 0);
	f->features = 2;
	f->version = 0x00010000;
	f->data_offset = type == VPC_TYPE_DYNAMIC ? 512 : VPC_NO_OFFSET;
	f->type = type;
	vpc_footer_put(f, buf);
}

static void footer_round_trip_and_hostile_fields(void **state)
{
	uint8_t buf[VPC_FOOTER_LEN];
	struct vpc_footer f, g;
	struct error *err = NULL;

	new_footer(&f, VPC_TYPE_DYNAMIC, buf);
	assert_true(vpc_footer_intact(buf));
	assert_int_equal(vpc_footer_parse(buf, &g, &err), 0);
	assert_int_equal(g.current_size, f.current_size);
	assert_int_equal(g.cylinders, 302); /* 10 MiB: 302 x 4 x 17, as qemu-img makes it */
	assert_int_equal(g.heads, 4);
	assert_int_equal(g.sectors, 17);
	assert_memory_equal(g.creator_app, "qemu", 4);

	buf[100] ^= 1; /* reserved bytes count in the checksum */
	assert_false(vpc_footer_intact(buf));
	refused(vpc_footer_parse(buf, &g, &err), &err, "checksum");
	new_footer(&f, VPC_TYPE_DIFF, buf);
	refused(vpc_footer_parse(buf, &g, &err), &err, "differencing");
	new_footer(&f, 9, buf);
	refused(vpc_footer_parse(buf, &g, &err), &err, "disk type 9");
	new_footer(&f, VPC_TYPE_FIXED, buf);
	buf[0] = 'C';
	refused(vpc_footer_parse(buf, &g, &err), &err, "cookie");
}

static void dynamic_header_fields(void **state)
{
	struct vpc_dyn d = { .data_offset = VPC_NO_OFFSET, .table_offset = 1536,
			     .version = 0x00010000, .max_entries = 6,
			     .block_size = VPC_BLOCK_DEFAULT }, e;
	uint8_t buf[VPC_DYN_LEN];
	struct error *err = NULL;

	vpc_dyn_put(&d, buf);
	assert_int_equal(vpc_dyn_parse(buf, &e, &err), 0);
	assert_int_equal(e.table_offset, 1536);
	assert_int_equal(e.max_entries, 6);
	assert_int_equal(vpc_bitmap_size(e.block_size), 512);
	for (uint32_t bad = 0; bad < 4; bad++) {
		static const uint32_t sizes[] = { 0, 256, 3 << 20, 512u << 20 };

		d.block_size = sizes[bad];
		vpc_dyn_put(&d, buf);
		refused(vpc_dyn_parse(buf, &e, &err), &err, "block size");
	}
	d.block_size = VPC_BLOCK_DEFAULT;
	vpc_dyn_put(&d, buf);
	memcpy(buf, "cxsparsE", 8);
	refused(vpc_dyn_parse(buf, &e, &err), &err, "cxsparse");
	/* a wrong dynamic header checksum is accepted, as QEMU accepts it */
	vpc_dyn_put(&d, buf);
	buf[36] ^= 0xff;
	assert_int_equal(vpc_dyn_parse(buf, &e, NULL), 0);
}

/* Disk sizes qemu-img 10 makes (measured), with and without force_size. */
static void geometry_and_sizes_as_qemu_img(void **state)
{
	static const struct { uint64_t asked, chs, forced; } cases[] = {
		{ 0, 0, 0 },
		{ 512, 34816, 512 },
		{ 1 << 20, 1079296, 1 << 20 },
		{ 10000001, 10027008, 10000384 },
		{ 127ULL << 20, 133171200, 127ULL << 20 },
		{ 4ULL << 30, 4295467008ULL, 4ULL << 30 },
		{ 127ULL << 30, 136365219840ULL, 127ULL << 30 },
		{ 130ULL << 30, 130ULL << 30, 130ULL << 30 }, /* past CHS: the size is kept */
		{ 2040ULL << 30, 2040ULL << 30, 2040ULL << 30 },
	};
	struct vpc_footer f;
	struct error *err = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&f, 0, sizeof(f));
		assert_int_equal(vpc_create_size(cases[i].asked, false, &f, NULL), 0);
		if (f.current_size != cases[i].chs)
			fail_msg("%llu: %llu, qemu-img makes %llu", (unsigned long long)cases[i].asked,
				 (unsigned long long)f.current_size,
				 (unsigned long long)cases[i].chs);
		assert_int_equal(vpc_disk_size(&f, VPC_SIZE_AUTO), cases[i].chs);
		assert_int_equal(vpc_create_size(cases[i].asked, true, &f, NULL), 0);
		assert_int_equal(f.current_size, cases[i].forced);
		assert_memory_equal(f.creator_app, "qem2", 4);
		assert_int_equal(vpc_disk_size(&f, VPC_SIZE_AUTO), cases[i].forced);
	}
	refused(vpc_create_size((2040ULL << 30) + 512, false, &f, &err), &err, "2040 GiB");
	refused(vpc_create_size((2040ULL << 30) + 512, true, &f, &err), &err, "2040 GiB");
}

/* The creator application says which size is the disk's; the largest geometry never does. */
static void disk_size_by_creator(void **state)
{
	struct vpc_footer f = { .cylinders = 302, .heads = 4, .sectors = 17,
				.current_size = 10 << 20 };

	memcpy(f.creator_app, "vpc ", 4);
	assert_int_equal(vpc_disk_size(&f, VPC_SIZE_AUTO), 302 * 4 * 17 * 512);
	assert_int_equal(vpc_disk_size(&f, VPC_SIZE_CURRENT), 10 << 20);
	memcpy(f.creator_app, "win ", 4);
	assert_int_equal(vpc_disk_size(&f, VPC_SIZE_AUTO), 10 << 20);
	assert_int_equal(vpc_disk_size(&f, VPC_SIZE_CHS), 302 * 4 * 17 * 512);
	memcpy(f.creator_app, "tap\0", 4);
	assert_int_equal(vpc_disk_size(&f, VPC_SIZE_AUTO), 10 << 20);
	memcpy(f.creator_app, "vpc ", 4);
	f.cylinders = 65535;
	f.heads = 16;
	f.sectors = 255;
	assert_int_equal(vpc_disk_size(&f, VPC_SIZE_CHS), 10 << 20);
	f.current_size = (10 << 20) + 100; /* never a partial sector */
	assert_int_equal(vpc_disk_size(&f, VPC_SIZE_AUTO), 10 << 20);
}

static void layout_bounded_by_the_file(void **state)
{
	struct vpc_footer f = { .data_offset = 512 };
	struct vpc_dyn d = { .table_offset = 1536, .max_entries = 6,
			     .block_size = VPC_BLOCK_DEFAULT };
	struct error *err = NULL;
	uint64_t end;

	assert_int_equal(vpc_layout_check(&f, &d, 10 << 20, 2560, &end, &err), 0);
	assert_int_equal(end, 1536 + 512);
	refused(vpc_layout_check(&f, &d, 10 << 20, 1500, &end, &err), &err, "end of the file");
	f.data_offset = 0;
	refused(vpc_layout_check(&f, &d, 10 << 20, 2560, &end, &err), &err, "dynamic header");
	f.data_offset = 512;
	d.table_offset = 1024; /* inside the dynamic header */
	refused(vpc_layout_check(&f, &d, 10 << 20, 4096, &end, &err), &err, "overlaps");
	d.table_offset = 1536;
	d.max_entries = 0xffffffff;
	refused(vpc_layout_check(&f, &d, 10 << 20, 2560, &end, &err), &err, "BAT");
	d.max_entries = 4;
	refused(vpc_layout_check(&f, &d, 10 << 20, 2560, &end, &err), &err, "do not cover");
	d.max_entries = 0xffffffff;
	refused(vpc_layout_check(&f, &d, 2041ULL << 30, 1ULL << 40, &end, &err), &err, "2040 GiB");
}

static void bat_entries_bounded(void **state)
{
	const uint64_t span = 512 + VPC_BLOCK_DEFAULT, meta = 2048, file = meta + 2 * span + 512;
	uint32_t bat[4] = { VPC_BAT_FREE, 4, VPC_BAT_FREE, (uint32_t)((meta + span) / 512) };
	struct error *err = NULL;
	uint64_t next;

	assert_int_equal(vpc_bat_check(bat, 4, VPC_BLOCK_DEFAULT, meta, file, &next, &err), 0);
	assert_int_equal(next, meta + 2 * span);
	bat[0] = 1; /* inside the footer copy */
	refused(vpc_bat_check(bat, 4, VPC_BLOCK_DEFAULT, meta, file, &next, &err), &err, "metadata");
	bat[0] = (uint32_t)((meta + 2 * span) / 512); /* its data runs past the end */
	refused(vpc_bat_check(bat, 4, VPC_BLOCK_DEFAULT, meta, file, &next, &err), &err,
		"past the end");
	bat[0] = 5; /* 512 bytes after block 1: they overlap */
	refused(vpc_bat_check(bat, 4, VPC_BLOCK_DEFAULT, meta, file, &next, &err), &err, "overlap");
	bat[0] = 0xfffffffe; /* the largest sector number: no overflow */
	refused(vpc_bat_check(bat, 4, VPC_BLOCK_DEFAULT, meta, file, &next, &err), &err,
		"past the end");
}

/* ---- the driver ------------------------------------------------------------------------- */

static int create(const char *name, uint64_t size, const char *k, const char *v)
{
	return imgfx_create(&blockdev_vpc, name, size, k, v);
}

static void concurrent_writers_allocate_each_block_once(void **state)
{
	struct blockdev *bs;
	struct stat st;
	uint64_t pnum, map;
	struct blockdev *file;

	/* 8 writers, each writing its own 4 KiB of every 256 KiB in the first 4 blocks */
	assert_int_equal(create("c.vpc", 16 << 20, NULL, NULL), 0);
	bs = imgfx_open("c.vpc", "vpc", NULL, false);
	imgfx_pieces_write(bs, 8, 0x10, 8 << 20, 256 << 10);
	imgfx_assert_reads(bs, 8 << 20, 1 << 20, 0);
	/* 4 blocks placed, each once: the file holds the metadata, 4 blocks and a footer */
	assert_int_equal(stat(imgfx_path("c.vpc"), &st), 0);
	assert_true(st.st_size <= 8192 + 4 * (4096 + (2 << 20)) + 512);
	assert_true(st.st_size > 4 * (2 << 20));
	/* new blocks have their data 4 KiB-aligned */
	for (uint64_t off = 0; off < 8 << 20; off += 2 << 20) {
		int s = blockdev_block_status(bs, off, 2 << 20, &pnum, &map, &file);

		assert_true(s & BLOCKDEV_STATUS_OFFSET);
		assert_int_equal(map % 4096, 0);
	}
	assert_int_equal(blockdev_flush(bs), 0);
	blockdev_close(bs);
	/* the BAT reached the file: the same content after reopening, read-only */
	bs = imgfx_open("c.vpc", "vpc", NULL, true);
	imgfx_pieces_check(bs, 8, 0x10, 8 << 20, 256 << 10);
	blockdev_close(bs);
}

/* Closing writes the BAT (no flush needed); a crash's leftovers past the last block never show
 * in a new block. */
static void close_writes_bat_and_new_blocks_read_zero(void **state)
{
	struct blockdev_opts o = { 0 };
	struct blockdev *bs;
	struct stat st;
	uint8_t junk[65536];
	FILE *f;

	assert_int_equal(create("z.vpc", 16 << 20, "subformat", "dynamic"), 0);
	assert_int_equal(stat(imgfx_path("z.vpc"), &st), 0);
	/* bytes past the footer as a crash may leave them (a block whose BAT entry was lost) */
	memset(junk, 0xee, sizeof(junk));
	f = fopen(imgfx_path("z.vpc"), "r+");
	assert_non_null(f);
	assert_int_equal(fseek(f, st.st_size - 512, SEEK_SET), 0);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
	fseek(f, st.st_size - 512, SEEK_SET);
	fclose(f);
	assert_int_equal(blockdev_opts_set(&o, "format", "vpc", NULL), 0);
	assert_int_equal(blockdev_opts_set(&o, "close-flush", "off", NULL), 0);
	bs = blockdev_open(imgfx_path("z.vpc"), &o, NULL);
	assert_non_null(bs);
	imgfx_fill(bs, 4096, 4096, 0x5a);
	imgfx_assert_reads(bs, 0, 4096, 0);
	imgfx_assert_reads(bs, 8192, 60000, 0);
	blockdev_close(bs);
	blockdev_opts_free(&o);
	bs = imgfx_open("z.vpc", "vpc", NULL, true);
	imgfx_assert_reads(bs, 4096, 4096, 0x5a);
	imgfx_assert_reads(bs, 0, 4096, 0);
	blockdev_close(bs);
}

static void fixed_image_is_its_file(void **state)
{
	struct blockdev_extent ext;
	struct blockdev *bs;
	struct stat st;

	assert_int_equal(create("f.vpc", 4 << 20, "subformat", "fixed"), 0);
	assert_int_equal(stat(imgfx_path("f.vpc"), &st), 0);
	bs = imgfx_open("f.vpc", "vpc", NULL, false);
	assert_int_equal((uint64_t)st.st_size, bs->size + 512);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, 4096, 8192, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_DATA);
	assert_int_equal(ext.host_offset, 4096);
	imgfx_fill(bs, bs->size - 512, 512, 0x77);
	blockdev_close(bs);
	bs = imgfx_open("f.vpc", "vpc", NULL, true); /* the footer is intact */
	imgfx_assert_reads(bs, bs->size - 512, 512, 0x77);
	blockdev_close(bs);
	/* probing takes a fixed VHD for raw, as QEMU does: it has no header */
	bs = imgfx_open("f.vpc", NULL, NULL, true);
	assert_string_equal(blockdev_format_name(bs), "raw");
	blockdev_close(bs);
}

static int setup(void **state)
{
	return imgfx_setup("vpc");
}

static int teardown(void **state)
{
	return imgfx_teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(footer_round_trip_and_hostile_fields),
		cmocka_unit_test(dynamic_header_fields),
		cmocka_unit_test(geometry_and_sizes_as_qemu_img),
		cmocka_unit_test(disk_size_by_creator),
		cmocka_unit_test(layout_bounded_by_the_file),
		cmocka_unit_test(bat_entries_bounded),
		cmocka_unit_test(concurrent_writers_allocate_each_block_once),
		cmocka_unit_test(close_writes_bat_and_new_blocks_read_zero),
		cmocka_unit_test(fixed_image_is_its_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
