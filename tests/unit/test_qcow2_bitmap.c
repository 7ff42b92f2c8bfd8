/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 persistent dirty bitmaps: the directory entry's parser and serializer (round trip,
 * each hostile field refused by name), the serialized bit order of in-memory bitmaps, and
 * through the block layer: a persistent bitmap's bits survive close and reopen, a disabled one
 * stays disabled, one left in use (the file copied while the image was open) loads
 * inconsistent and refuses to be used, removing the last one drops the extension. Closing
 * rewrites only the bitmaps whose bits changed (the others keep their tables; with none
 * changed the directory stays and only its flags change), and removing a stored bitmap takes
 * it out of the image at once: a second open of the file sees it gone before the first closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "blockdev/qcow2.h"
#include "tests/unit/img_fixture.h"

static uint8_t entry[256];

/* A serialized entry: bitmap "bm0", 64 KiB granularity over a 1 MiB disk, table at 0x30000. */
static void make_entry(void)
{
	struct qcow2_bitmap bm = { .table_offset = 0x30000, .table_size = 1, .type = 1,
				   .gran_bits = 16, .flags = QCOW2_BITMAP_AUTO, .name = "bm0",
				   .extra = (uint8_t *)"" };

	memset(entry, 0, sizeof(entry));
	qcow2_bitmap_put(&bm, entry);
}

static void entry_round_trip(void **state)
{
	struct qcow2_bitmap bm;
	uint8_t again[sizeof(entry)] = { 0 };

	make_entry();
	assert_int_equal(qcow2_bitmap_entry_len(entry), 27);
	assert_int_equal(qcow2_bitmap_parse(entry, 0, 0x20000, 16, 1 << 20, &bm, NULL), 0);
	assert_string_equal(bm.name, "bm0");
	assert_int_equal(bm.gran_bits, 16);
	assert_int_equal(bm.flags, QCOW2_BITMAP_AUTO);
	assert_int_equal(qcow2_bitmap_size(&bm), 32);
	qcow2_bitmap_put(&bm, again);
	assert_memory_equal(entry, again, 32);
	qcow2_bitmap_free(&bm);
	/* table sizes: one bit per granule, rounded up to bytes, then to clusters */
	assert_int_equal(qcow2_bitmap_data_bytes(1 << 20, 16), 2);
	assert_int_equal(qcow2_bitmap_data_bytes((1 << 20) + 1, 16), 3);
	assert_int_equal(qcow2_bitmap_table_entries(1ULL << 40, 9, 16), 4096);
}

static void refused(const char *what)
{
	struct qcow2_bitmap bm;
	struct error *err = NULL;

	assert_int_equal(qcow2_bitmap_parse(entry, 2, 0x20000, 16, 1 << 20, &bm, &err), -1);
	if (!strstr(error_msg(err), what) || !strstr(error_msg(err), "bitmap 2") ||
	    !strstr(error_msg(err), "0x20000"))
		fail_msg("message '%s' does not name '%s', the entry and its offset",
			 error_msg(err), what);
	error_free(err);
	qcow2_bitmap_free(&bm);
}

static void entry_hostile(void **state)
{
	make_entry();
	entry[16] = 2;
	refused("type 2");
	make_entry();
	qcow2_put_be32(entry + 12, 1u << 5);
	refused("reserved flag bits");
	make_entry();
	entry[17] = 8;
	refused("granularity bits 8");
	make_entry();
	entry[17] = 32;
	refused("granularity bits 32");
	make_entry();
	qcow2_put_be64(entry, 0x30200);
	refused("not a cluster boundary");
	make_entry();
	qcow2_put_be32(entry + 8, 2);
	refused("needs 1");
	make_entry();
	entry[18] = entry[19] = 0;
	refused("name is 0 bytes");
	make_entry();
	entry[18] = 0x04; /* 1027 bytes */
	refused("1 to 1023");
}

static void bytes_bit_order(void **state)
{
	struct blockdev *bs;
	struct blockdev_bitmap *b;
	uint8_t buf[4] = { 0 }, in[2] = { 0x81, 0xff };

	imgfx_make_raw("o.raw", 10 * 512); /* ten granules of 512 bytes: two bytes of bits */
	bs = imgfx_open("o.raw", "raw", NULL, false);
	b = blockdev_bitmap_add(bs, "x", 512, false, NULL);
	assert_non_null(b);
	assert_int_equal(blockdev_bitmap_bytes(b), 2);
	blockdev_bitmap_set(b, 0, 1);        /* bit 0 */
	blockdev_bitmap_set(b, 9 * 512, 1);  /* bit 9: byte 1, bit 1 */
	blockdev_bitmap_get_bytes(b, 0, buf, 4);
	assert_int_equal(buf[0], 0x01);
	assert_int_equal(buf[1], 0x02);
	assert_int_equal(buf[2], 0);
	blockdev_bitmap_clear(b);
	blockdev_bitmap_set_bytes(b, 0, in, 2); /* bits past the tenth are ignored */
	assert_int_equal(blockdev_bitmap_count(b), 4 * 512);
	blockdev_bitmap_get_bytes(b, 0, buf, 2);
	assert_int_equal(buf[0], 0x81);
	assert_int_equal(buf[1], 0x03);
	blockdev_close(bs);
}

static struct json_object *specific(struct blockdev *bs)
{
	struct blockdev_info info = { 0 };

	assert_int_equal(blockdev_get_info(bs, &info, NULL), 0);
	return info.specific;
}

static size_t nr_stored(struct blockdev *bs)
{
	struct json_object *o = specific(bs), *a;
	size_t n = json_object_object_get_ex(o, "bitmaps", &a) ? json_object_array_length(a) : 0;

	json_object_put(o);
	return n;
}

static void copy_file(const char *from, const char *to)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", imgfx_path(from), imgfx_path(to));
	assert_int_equal(system(cmd), 0);
}

static void persistent_round_trip(void **state)
{
	struct blockdev_bitmap *b;
	struct error *err = NULL;
	struct blockdev *bs;

	imgfx_make_qcow2("p.qcow2", 4 << 20, NULL, NULL);
	bs = imgfx_open("p.qcow2", "qcow2", NULL, false);
	assert_int_equal(blockdev_bitmap_can_store(bs, "on", 0, NULL), 0);
	b = blockdev_bitmap_add(bs, "on", 0, false, NULL);
	blockdev_bitmap_set_persistent(b, true);
	b = blockdev_bitmap_add(bs, "off", 1 << 20, true, NULL);
	blockdev_bitmap_set_persistent(b, true);
	blockdev_bitmap_add(bs, "memory-only", 0, false, NULL);
	imgfx_fill(bs, 65536, 4096, 0x11);
	imgfx_fill(bs, 3 << 20, 100, 0x22);
	blockdev_close(bs);

	bs = imgfx_open("p.qcow2", "qcow2", NULL, false);
	assert_int_equal(nr_stored(bs), 2);
	assert_null(blockdev_bitmap_find(bs, "memory-only", NULL));
	b = blockdev_bitmap_find(bs, "on", NULL);
	assert_true(blockdev_bitmap_persistent(b) && blockdev_bitmap_enabled(b));
	assert_int_equal(blockdev_bitmap_count(b), 2 * 65536);
	b = blockdev_bitmap_find(bs, "off", NULL);
	assert_false(blockdev_bitmap_enabled(b));
	assert_int_equal(blockdev_bitmap_count(b), 0);
	/* a name stored but not loaded, another format's, and v2 images are refused */
	assert_int_equal(blockdev_bitmap_can_store(bs, "x", 512, &err), 0);
	copy_file("p.qcow2", "crashed.qcow2"); /* as a kill -9 leaves it: marked in use */
	blockdev_close(bs);

	bs = imgfx_open("crashed.qcow2", "qcow2", NULL, false);
	b = blockdev_bitmap_find(bs, "on", NULL);
	assert_true(blockdev_bitmap_inconsistent(b));
	assert_false(blockdev_bitmap_enabled(b));
	assert_int_equal(blockdev_bitmap_check(b, &err), -1);
	assert_non_null(strstr(error_msg(err), "inconsistent"));
	error_free(err);
	/* removing both stores no bitmap: the extension goes */
	assert_int_equal(blockdev_bitmap_remove(bs, b, NULL), 0);
	assert_int_equal(blockdev_bitmap_remove(bs, blockdev_bitmap_find(bs, "off", NULL), NULL),
			 0);
	blockdev_close(bs);
	bs = imgfx_open("crashed.qcow2", "qcow2", NULL, true);
	assert_int_equal(nr_stored(bs), 0);
	assert_int_equal(((struct qcow2 *)bs->opaque)->h.autoclear_features, 0);
	blockdev_close(bs);
}

/* Entry @name of the directory as a read-only open of @file finds it (copied), or fails. */
static struct qcow2_bitmap stored(const char *file, const char *name, uint64_t *dir_off)
{
	struct blockdev *bs = imgfx_open(file, "qcow2", NULL, true);
	struct qcow2 *q = bs->opaque;
	struct qcow2_bitmap found = { 0 };

	*dir_off = q->h.bitmap_directory_offset;
	for (uint32_t i = 0; i < q->nr_bm; i++) {
		if (!strcmp(q->bm[i].name, name)) {
			found = q->bm[i];
			found.name = NULL; /* freed with the node */
			found.extra = NULL;
		}
	}
	if (!found.gran_bits)
		fail_msg("%s: no bitmap '%s' stored", file, name);
	blockdev_close(bs);
	return found;
}

static bool is_stored(struct blockdev *bs, const char *name)
{
	struct qcow2 *q = bs->opaque;

	for (uint32_t i = 0; i < q->nr_bm; i++)
		if (!strcmp(q->bm[i].name, name))
			return true;
	return false;
}

static void check_clean(const char *file)
{
	struct blockdev *bs = imgfx_open(file, "qcow2", NULL, false);
	struct blockdev_check_result r;

	assert_int_equal(blockdev_check(bs, 0, &r, NULL), 0);
	assert_int_equal(r.corruptions, 0);
	assert_int_equal(r.leaks, 0);
	blockdev_close(bs);
}

/* Three stored bitmaps: a and b recording, c not; a and b dirty over the first 64 KiB. */
static void make_three(const char *file)
{
	struct blockdev *bs;

	imgfx_make_qcow2(file, 4 << 20, NULL, NULL);
	bs = imgfx_open(file, "qcow2", NULL, false);
	blockdev_bitmap_set_persistent(blockdev_bitmap_add(bs, "a", 0, false, NULL), true);
	blockdev_bitmap_set_persistent(blockdev_bitmap_add(bs, "b", 0, false, NULL), true);
	blockdev_bitmap_set_persistent(blockdev_bitmap_add(bs, "c", 0, true, NULL), true);
	imgfx_fill(bs, 0, 4096, 0x33);
	blockdev_close(bs);
}

static void only_changed_bitmaps_are_rewritten_at_close(void **state)
{
	struct qcow2_bitmap a0, b0, c0, a1, b1, c1;
	uint64_t dir0, dir1;
	struct blockdev *bs;

	make_three("ch.qcow2");
	a0 = stored("ch.qcow2", "a", &dir0);
	b0 = stored("ch.qcow2", "b", &dir0);
	c0 = stored("ch.qcow2", "c", &dir0);
	assert_int_not_equal(a0.table_offset, 0);

	/* opened and closed, a write over what is dirty already, b disabled: nothing is
	 * rewritten, the directory's flags change in place */
	bs = imgfx_open("ch.qcow2", "qcow2", NULL, false);
	imgfx_fill(bs, 0, 4096, 0x44);
	blockdev_bitmap_enable(blockdev_bitmap_find(bs, "b", NULL), false);
	blockdev_close(bs);
	a1 = stored("ch.qcow2", "a", &dir1);
	b1 = stored("ch.qcow2", "b", &dir1);
	assert_int_equal(dir1, dir0);
	assert_int_equal(a1.table_offset, a0.table_offset);
	assert_int_equal(b1.table_offset, b0.table_offset);
	assert_int_equal(a1.flags, QCOW2_BITMAP_AUTO); /* not in use */
	assert_int_equal(b1.flags, 0);                 /* no longer auto */
	check_clean("ch.qcow2");

	/* a write to a clean granule changes a (b and c do not record): a alone is rewritten */
	bs = imgfx_open("ch.qcow2", "qcow2", NULL, false);
	imgfx_fill(bs, 1 << 20, 4096, 0x55);
	blockdev_close(bs);
	a1 = stored("ch.qcow2", "a", &dir1);
	b1 = stored("ch.qcow2", "b", &dir1);
	c1 = stored("ch.qcow2", "c", &dir1);
	assert_int_not_equal(dir1, dir0); /* a new directory */
	assert_int_not_equal(a1.table_offset, a0.table_offset);
	assert_int_equal(b1.table_offset, b0.table_offset);
	assert_int_equal(c1.table_offset, c0.table_offset);
	assert_int_equal(a1.flags | b1.flags | c1.flags, QCOW2_BITMAP_AUTO);
	check_clean("ch.qcow2");
	bs = imgfx_open("ch.qcow2", "qcow2", NULL, true);
	assert_int_equal(blockdev_bitmap_count(blockdev_bitmap_find(bs, "a", NULL)), 2 * 65536);
	assert_int_equal(blockdev_bitmap_count(blockdev_bitmap_find(bs, "b", NULL)), 65536);
	blockdev_close(bs);

	/* clearing a dirty bitmap changes it; clearing a clean one does not */
	bs = imgfx_open("ch.qcow2", "qcow2", NULL, false);
	blockdev_bitmap_clear(blockdev_bitmap_find(bs, "b", NULL));
	blockdev_bitmap_clear(blockdev_bitmap_find(bs, "c", NULL));
	blockdev_close(bs);
	b1 = stored("ch.qcow2", "b", &dir1);
	c1 = stored("ch.qcow2", "c", &dir1);
	assert_int_not_equal(b1.table_offset, b0.table_offset);
	assert_int_equal(c1.table_offset, c0.table_offset);
	check_clean("ch.qcow2");
	bs = imgfx_open("ch.qcow2", "qcow2", NULL, true);
	assert_int_equal(blockdev_bitmap_count(blockdev_bitmap_find(bs, "b", NULL)), 0);
	blockdev_close(bs);
}

static void removing_a_stored_bitmap_takes_it_out_of_the_image_at_once(void **state)
{
	struct blockdev *bs, *other, *ro;
	struct blockdev_bitmap *b;
	struct error *err = NULL;
	uint64_t dir;

	make_three("rm.qcow2");
	bs = imgfx_open("rm.qcow2", "qcow2", NULL, false);
	blockdev_bitmap_set_persistent(blockdev_bitmap_add(bs, "new", 0, false, NULL), true);
	assert_int_equal(blockdev_bitmap_delete(bs, blockdev_bitmap_find(bs, "b", NULL), &err),
			 0);
	assert_null(blockdev_bitmap_find(bs, "b", NULL));
	/* not yet stored: nothing to take out */
	assert_int_equal(blockdev_bitmap_delete(bs, blockdev_bitmap_find(bs, "new", NULL), &err),
			 0);
	/* what another program opening the file now sees (as qemu-img info -U would) */
	other = imgfx_open("rm.qcow2", "qcow2", NULL, true);
	assert_true(is_stored(other, "a") && is_stored(other, "c"));
	assert_false(is_stored(other, "b"));
	assert_true(blockdev_bitmap_inconsistent(blockdev_bitmap_find(other, "a", NULL)));
	/* a read-only node refuses, keeping it */
	b = blockdev_bitmap_find(other, "c", NULL);
	assert_int_equal(blockdev_bitmap_delete(other, b, &err), -1);
	assert_non_null(strstr(error_msg(err), "readonly"));
	error_free(err);
	err = NULL;
	assert_non_null(blockdev_bitmap_find(other, "c", NULL));
	blockdev_close(other);
	/* the last one out drops the extension, while the node is still open */
	assert_int_equal(blockdev_bitmap_delete(bs, blockdev_bitmap_find(bs, "a", NULL), &err), 0);
	assert_int_equal(blockdev_bitmap_delete(bs, blockdev_bitmap_find(bs, "c", NULL), &err), 0);
	ro = imgfx_open("rm.qcow2", "qcow2", NULL, true);
	assert_int_equal(nr_stored(ro), 0);
	assert_false(((struct qcow2 *)ro->opaque)->h.has_bitmaps_ext);
	blockdev_close(ro);
	blockdev_close(bs);
	check_clean("rm.qcow2");

	/* an inconsistent one (a crash left it in use) goes at once too */
	make_three("rm2.qcow2");
	bs = imgfx_open("rm2.qcow2", "qcow2", NULL, false);
	copy_file("rm2.qcow2", "rm3.qcow2"); /* as a kill -9 leaves it */
	blockdev_close(bs);
	bs = imgfx_open("rm3.qcow2", "qcow2", NULL, false);
	b = blockdev_bitmap_find(bs, "a", NULL);
	assert_true(blockdev_bitmap_inconsistent(b));
	assert_int_equal(blockdev_bitmap_delete(bs, b, &err), 0);
	other = imgfx_open("rm3.qcow2", "qcow2", NULL, true);
	assert_false(is_stored(other, "a"));
	assert_true(is_stored(other, "b"));
	blockdev_close(other);
	blockdev_close(bs);
	(void)stored("rm3.qcow2", "c", &dir);
	check_clean("rm3.qcow2");
}

static int setup(void **state)
{
	return imgfx_setup("qcow2-bitmap");
}

static int teardown(void **state)
{
	return imgfx_teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(entry_round_trip),
		cmocka_unit_test(entry_hostile),
		cmocka_unit_test(bytes_bit_order),
		cmocka_unit_test(persistent_round_trip),
		cmocka_unit_test(only_changed_bitmaps_are_rewritten_at_close),
		cmocka_unit_test(removing_a_stored_bitmap_takes_it_out_of_the_image_at_once),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
