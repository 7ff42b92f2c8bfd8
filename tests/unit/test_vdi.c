/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VDI (blockdev/vdi_format.c, vdi.c): the header parser refuses each hostile field by name and
 * bounds the block map and data area against the header and the file; the map check counts
 * what qemu-img check counts; the driver serves concurrent writers to the same unallocated
 * blocks, appends blocks after every byte of the file, writes its map at flush, and opens a
 * corrupt map read-only only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blockdev/blockdev.h"
#include "blockdev/vdi.h"
#include "tests/unit/img_fixture.h"

/* A dynamic 4 MiB image's header as qemu-img writes it: map at 0x200, data at 0x400. */
static struct vdi_header good(void)
{
	struct vdi_header h = {
		.signature = VDI_SIGNATURE, .version = VDI_VERSION_1_1,
		.header_size = VDI_HEADER_SIZE_1_1, .type = VDI_TYPE_DYNAMIC,
		.offset_bmap = 0x200, .offset_data = 0x400, .sector_size = 512,
		.disk_size = 4 << 20, .block_size = 1 << 20, .blocks_in_image = 4,
	};

	return h;
}

/* @h serialized and parsed against a file of @file_size bytes: 0, or -1 naming @what. */
static void parses(const struct vdi_header *h, uint64_t file_size, const char *what)
{
	uint8_t buf[VDI_HEADER_LEN], again[VDI_HEADER_LEN];
	struct vdi_header back;
	struct error *err = NULL;
	int ret;

	vdi_header_put(h, buf);
	ret = vdi_header_parse(buf, file_size, &back, &err);
	if (!what) {
		assert_int_equal(ret, 0);
		vdi_header_put(&back, again);
		assert_memory_equal(buf, again, sizeof(buf));
		return;
	}
	assert_int_equal(ret, -1);
	assert_non_null(err);
	if (!strstr(error_msg(err), what))
		fail_msg("'%s' does not name '%s'", error_msg(err), what);
	error_free(err);
}

static void header_fields_refused_by_name(void **state)
{
	struct vdi_header h = good();

	parses(&h, 0x400, NULL);
	h.signature ^= 1;            parses(&h, 0x400, "signature");     h = good();
	h.version = 0x00010000;      parses(&h, 0x400, "version 1.0");   h = good();
	h.header_size = 0x100;       parses(&h, 0x400, "header size");   h = good();
	h.type = 4;                  parses(&h, 0x400, "differencing");  h = good();
	h.type = 3;                  parses(&h, 0x400, "undo");          h = good();
	h.uuid_parent[3] = 1;        parses(&h, 0x400, "parent");        h = good();
	h.uuid_link[0] = 1;          parses(&h, 0x400, "link");          h = good();
	h.sector_size = 4096;        parses(&h, 0x400, "sector size");   h = good();
	h.block_size = 3000;         parses(&h, 0x400, "block size");    h = good();
	h.block_size = 1u << 30;     parses(&h, 0x400, "block size");    h = good();
	h.block_extra = 512;         parses(&h, 0x400, "extra");         h = good();
	h.disk_size = (4 << 20) + 1; parses(&h, 0x400, "larger");        h = good();
	h.offset_bmap = 0x201;       parses(&h, 0x400, "multiple of 512"); h = good();
	h.offset_data = 0x401;       parses(&h, 0x400, "multiple of 512"); h = good();
	h.offset_bmap = 0;           parses(&h, 0x400, "overlaps the header"); h = good();
	h.header_size = 0x400;       parses(&h, 0x400, "overlaps the header"); h = good();
	h.blocks_in_image = 200;
	h.disk_size = 1;             parses(&h, 0x400, "runs into");     h = good();
	h.blocks_in_image = 0xffffffff; parses(&h, 0x400, "runs into");  h = good();
	parses(&h, 0x3ff, "past the end");
	/* the largest block count whose map fits before the data area */
	h.blocks_in_image = 128;
	h.disk_size = 128ULL << 20;
	parses(&h, 0x400, NULL);
}

static void map_check_counts_as_qemu_img(void **state)
{
	struct vdi_header h = good();
	uint32_t map[4] = { 0, VDI_UNALLOCATED, 1, VDI_DISCARDED };
	const uint64_t file = 0x400 + (4 << 20);
	struct vdi_map_report r;
	struct error *err = NULL;

	assert_int_equal(vdi_map_check(&h, map, file, false, &r, NULL), 0);
	assert_int_equal(r.allocated, 2);
	assert_int_equal(r.max_index, 2);
	assert_int_equal(r.bad_index + r.duplicates, 0);
	map[3] = 0; /* two entries on data block 0 */
	assert_int_equal(vdi_map_check(&h, map, file, false, &r, NULL), 0);
	assert_int_equal(r.duplicates, 1);
	assert_int_equal(r.allocated, 3);
	map[3] = 4; /* past the data area's 4 blocks, but inside the file */
	assert_int_equal(vdi_map_check(&h, map, file + (1 << 20), false, &r, NULL), 0);
	assert_int_equal(r.bad_index, 1);
	assert_int_equal(r.allocated, 2);
	assert_int_equal(r.max_index, 5);
	/* a block past the end of the file is refused: it cannot be read */
	assert_int_equal(vdi_map_check(&h, map, file, false, &r, &err), -1);
	assert_non_null(strstr(error_msg(err), "entry 3"));
	error_free(err);
	err = NULL;
	map[3] = 0xfffffffd; /* the largest index: no overflow */
	assert_int_equal(vdi_map_check(&h, map, file, false, &r, &err), -1);
	error_free(err);
}

/* ---- the driver ------------------------------------------------------------------------- */

static int create(const char *name, uint64_t size, bool is_static)
{
	return imgfx_create(&blockdev_vdi, name, size, "static", is_static ? "on" : "off");
}

/* 8 writers, each writing its own 4 KiB of every 128 KiB in the first 6 blocks */
static void concurrent_writers_and_reopen(void **state)
{
	struct blockdev *bs;
	struct stat st;

	assert_int_equal(create("c.vdi", 8 << 20, false), 0);
	bs = imgfx_open("c.vdi", "vdi", NULL, false);
	imgfx_pieces_write(bs, 8, 0x20, 6 << 20, 128 << 10);
	imgfx_assert_reads(bs, 6 << 20, 2 << 20, 0);
	assert_int_equal(stat(imgfx_path("c.vdi"), &st), 0);
	assert_int_equal(st.st_size, 4096 + (6 << 20)); /* 6 blocks, each placed once */
	blockdev_close(bs);
	bs = imgfx_open("c.vdi", "vdi", NULL, true);
	imgfx_pieces_check(bs, 8, 0x20, 6 << 20, 128 << 10);
	blockdev_close(bs);
}

/* Bytes past the last block (a block whose map entry a crash lost) never show in a new one. */
static void new_blocks_after_the_file(void **state)
{
	struct blockdev *bs;
	uint8_t junk[8192];
	FILE *f;

	assert_int_equal(create("j.vdi", 4 << 20, false), 0);
	memset(junk, 0xee, sizeof(junk));
	f = fopen(imgfx_path("j.vdi"), "a");
	assert_non_null(f);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
	fclose(f);
	bs = imgfx_open("j.vdi", "vdi", NULL, false);
	imgfx_fill(bs, 4096, 4096, 0x5a);
	imgfx_assert_reads(bs, 0, 4096, 0);
	imgfx_assert_reads(bs, 8192, 8192, 0);
	assert_int_equal(blockdev_flush(bs), 0);
	blockdev_close(bs);
}

static void corrupt_map_opens_read_only(void **state)
{
	struct blockdev_check_result r;
	struct error *err = NULL;
	struct blockdev *bs;
	uint32_t zero = 0;
	FILE *f;

	assert_int_equal(create("d.vdi", 4 << 20, true), 0);
	f = fopen(imgfx_path("d.vdi"), "r+");
	assert_non_null(f);
	fseek(f, 0x200 + 4, SEEK_SET); /* entry 1 on data block 0 too */
	assert_int_equal(fwrite(&zero, 4, 1, f), 1);
	fclose(f);
	bs = imgfx_open("d.vdi", "vdi", NULL, true);
	assert_int_equal(blockdev_check(bs, 0, &r, NULL), 0);
	assert_int_equal(r.corruptions, 1);
	assert_int_equal(blockdev_check(bs, BLOCKDEV_FIX_ERRORS, &r, &err), -EOPNOTSUPP);
	assert_non_null(strstr(error_msg(err), "cannot be repaired"));
	error_free(err);
	err = NULL;
	blockdev_close(bs);
	{
		struct blockdev_opts o = { 0 };

		assert_int_equal(blockdev_opts_set(&o, "format", "vdi", NULL), 0);
		assert_null(blockdev_open(imgfx_path("d.vdi"), &o, &err));
		assert_non_null(strstr(error_msg(err), "read-only"));
		error_free(err);
		blockdev_opts_free(&o);
	}
}

static void static_image_is_allocated(void **state)
{
	struct blockdev_extent ext;
	struct blockdev *bs;
	struct stat st;

	assert_int_equal(create("s.vdi", 3 << 20, true), 0);
	assert_int_equal(stat(imgfx_path("s.vdi"), &st), 0);
	assert_int_equal(st.st_size, 4096 + (3 << 20));
	bs = imgfx_open("s.vdi", "vdi", NULL, false);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, (1 << 20) + 512, 4096, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_DATA);
	assert_int_equal(ext.host_offset, 4096 + (1 << 20) + 512);
	imgfx_fill(bs, (3 << 20) - 512, 512, 0x66);
	blockdev_close(bs);
	assert_int_equal(stat(imgfx_path("s.vdi"), &st), 0);
	assert_int_equal(st.st_size, 4096 + (3 << 20)); /* nothing appended */
}

static int setup(void **state)
{
	return imgfx_setup("vdi");
}

static int teardown(void **state)
{
	return imgfx_teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(header_fields_refused_by_name),
		cmocka_unit_test(map_check_counts_as_qemu_img),
		cmocka_unit_test(concurrent_writers_and_reopen),
		cmocka_unit_test(new_blocks_after_the_file),
		cmocka_unit_test(corrupt_map_opens_read_only),
		cmocka_unit_test(static_image_is_allocated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
