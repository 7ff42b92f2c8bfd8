/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 internal snapshots: the table entry's parser and serializer (round trip, unknown extra
 * data kept, each hostile field refused by name), and the driver's ops through the block layer
 * (IDs, create / write / goto / delete with the refcounts checked clean after each step, load_tmp
 * read-only, refusals on a read-only node and for a missing snapshot).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "blockdev/qcow2.h"
#include "tests/unit/img_fixture.h"

static uint8_t entry[2048];

/* A serialized entry: L1 at @l1 (@n entries), ID "7", name "snap", 24 bytes of extra data. */
static uint64_t make_entry(uint64_t l1, uint32_t n)
{
	uint8_t extra[24] = { 0 };
	struct qcow2_snapshot sn = { .l1_table_offset = l1, .l1_size = n, .id = "7",
				     .name = "snap", .date_sec = 1700000000, .date_nsec = 5000,
				     .vm_clock_nsec = 3000000001ULL, .extra_len = 24,
				     .extra = extra };

	qcow2_put_be64(extra + 8, 1 << 20); /* disk size */
	qcow2_put_be64(extra + 16, 42);     /* icount */
	memset(entry, 0, sizeof(entry));
	qcow2_snapshot_put(&sn, entry);
	return qcow2_snapshot_size(&sn);
}

static void entry_round_trip(void **state)
{
	uint64_t len = make_entry(0x30000, 2);
	struct qcow2_snapshot sn;
	uint8_t again[sizeof(entry)] = { 0 };

	assert_int_equal(len, 72); /* 40 + 24 + 1 + 4, padded */
	assert_int_equal(qcow2_snapshot_entry_len(entry), 69);
	assert_int_equal(qcow2_snapshot_parse(entry, 0, 0x10000, 16, &sn, NULL), 0);
	assert_int_equal(sn.l1_table_offset, 0x30000);
	assert_int_equal(sn.l1_size, 2);
	assert_string_equal(sn.id, "7");
	assert_string_equal(sn.name, "snap");
	assert_int_equal(sn.date_sec, 1700000000);
	assert_int_equal(sn.vm_clock_nsec, 3000000001ULL);
	assert_int_equal(sn.disk_size, 1 << 20);
	assert_int_equal(sn.icount, 42);
	qcow2_snapshot_put(&sn, again);
	assert_memory_equal(again, entry, len);
	qcow2_snapshot_free(&sn);
}

/* Extra data we do not know (past the 24 bytes) survives a rewrite; short extra data leaves the
 * disk size and icount unrecorded. */
static void entry_extra_data(void **state)
{
	uint8_t extra[40];
	struct qcow2_snapshot in = { .l1_table_offset = 0x20000, .id = "1", .name = "",
				     .extra_len = 40, .extra = extra }, out;
	uint8_t buf[256] = { 0 }, again[256] = { 0 };

	for (unsigned i = 0; i < sizeof(extra); i++)
		extra[i] = (uint8_t)(i * 7);
	qcow2_snapshot_put(&in, buf);
	assert_int_equal(qcow2_snapshot_parse(buf, 0, 0, 16, &out, NULL), 0);
	qcow2_snapshot_put(&out, again);
	assert_memory_equal(buf, again, qcow2_snapshot_size(&in));
	qcow2_snapshot_free(&out);
	in.extra_len = 8;
	memset(buf, 0, sizeof(buf));
	qcow2_snapshot_put(&in, buf);
	assert_int_equal(qcow2_snapshot_parse(buf, 0, 0, 16, &out, NULL), 0);
	assert_int_equal(out.disk_size, UINT64_MAX);
	assert_int_equal(out.icount, UINT64_MAX);
	qcow2_snapshot_free(&out);
}

static void refused(const char *what)
{
	struct qcow2_snapshot sn;
	struct error *err = NULL;

	assert_int_equal(qcow2_snapshot_parse(entry, 3, 0x50000, 16, &sn, &err), -1);
	assert_non_null(err);
	if (!strstr(error_msg(err), what) || !strstr(error_msg(err), "snapshot 3") ||
	    !strstr(error_msg(err), "0x50000"))
		fail_msg("message '%s' does not name '%s', the entry and its offset",
			 error_msg(err), what);
	error_free(err);
	qcow2_snapshot_free(&sn);
}

static void entry_hostile(void **state)
{
	make_entry(0x30000, 2);
	qcow2_put_be32(entry + 36, 1025);
	refused("extra data");
	make_entry(0x30200, 2);
	refused("not a cluster boundary");
	make_entry(0x30000 | (1ULL << 60), 2);
	refused("not a cluster boundary");
	make_entry(0x30000, (uint32_t)(QCOW2_MAX_L1_BYTES / 8 + 1));
	refused("over the 32 MiB limit");
}

static void list_of(struct blockdev *bs, size_t want)
{
	struct blockdev_snapshot *l = NULL;
	size_t n = 0;

	assert_int_equal(blockdev_snapshot_list(bs, &l, &n, NULL), 0);
	assert_int_equal(n, want);
	blockdev_snapshot_list_free(l, n);
}

static void check_clean(struct blockdev *bs)
{
	struct blockdev_check_result r;
	struct error *err = NULL;

	if (blockdev_check(bs, 0, &r, &err))
		fail_msg("check: %s", error_msg(err));
	if (r.corruptions || r.leaks)
		fail_msg("check: %llu corruptions, %llu leaks", (unsigned long long)r.corruptions,
			 (unsigned long long)r.leaks);
}

static void ops_create_goto_delete(void **state)
{
	struct blockdev_snapshot made = { 0 }, gone = { 0 };
	struct error *err = NULL;
	struct blockdev *bs;

	imgfx_make_qcow2("a.qcow2", 4 << 20, NULL, NULL);
	bs = imgfx_open("a.qcow2", "qcow2", NULL, false);
	imgfx_fill(bs, 0, 1 << 20, 0x11);
	assert_int_equal(blockdev_snapshot_create(bs, "one", 77, &made, NULL), 0);
	assert_string_equal(made.id, "1");
	assert_string_equal(made.name, "one");
	assert_int_equal(made.vm_clock_nsec, 77);
	blockdev_snapshot_clear(&made);
	check_clean(bs);
	imgfx_fill(bs, 0, 64 << 10, 0x22);  /* copies the shared L2 table and cluster */
	imgfx_fill(bs, 2 << 20, 4096, 0x33); /* a new cluster */
	check_clean(bs);
	assert_int_equal(blockdev_snapshot_create(bs, "two", 0, &made, NULL), 0);
	assert_string_equal(made.id, "2");
	blockdev_snapshot_clear(&made);
	list_of(bs, 2);
	assert_int_equal(blockdev_snapshot_goto(bs, "one", NULL), 0);
	check_clean(bs);
	imgfx_assert_reads(bs, 0, 1 << 20, 0x11);
	imgfx_assert_reads(bs, 2 << 20, 4096, 0);
	imgfx_fill(bs, 4096, 4096, 0x44);
	assert_int_equal(blockdev_snapshot_goto(bs, "2", NULL), 0); /* by ID */
	imgfx_assert_reads(bs, 0, 64 << 10, 0x22);
	imgfx_assert_reads(bs, 64 << 10, (1 << 20) - (64 << 10), 0x11);
	imgfx_assert_reads(bs, 2 << 20, 4096, 0x33);
	assert_int_equal(blockdev_snapshot_delete(bs, NULL, "one", &gone, NULL), 0);
	assert_string_equal(gone.id, "1");
	blockdev_snapshot_clear(&gone);
	check_clean(bs);
	assert_int_equal(blockdev_snapshot_delete(bs, "9", NULL, NULL, &err), -1);
	assert_non_null(strstr(error_msg(err), "no snapshot with the ID '9'"));
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_snapshot_goto(bs, "one", &err), -1);
	assert_non_null(strstr(error_msg(err), "'one'"));
	error_free(err);
	/* the last one goes: IDs start again from the largest left (none: 1) */
	assert_int_equal(blockdev_snapshot_delete(bs, "2", "two", NULL, NULL), 0);
	list_of(bs, 0);
	check_clean(bs);
	assert_int_equal(blockdev_snapshot_create(bs, "three", 0, &made, NULL), 0);
	assert_string_equal(made.id, "1");
	blockdev_snapshot_clear(&made);
	check_clean(bs);
	blockdev_close(bs);
}

static void ops_read_only(void **state)
{
	struct error *err = NULL;
	struct blockdev *bs;

	imgfx_make_qcow2("b.qcow2", 1 << 20, NULL, NULL);
	bs = imgfx_open("b.qcow2", "qcow2", NULL, false);
	imgfx_fill(bs, 0, 1 << 20, 0x55);
	assert_int_equal(blockdev_snapshot_create(bs, "s", 0, NULL, NULL), 0);
	imgfx_fill(bs, 0, 1 << 20, 0x66);
	assert_int_equal(blockdev_snapshot_load_tmp(bs, NULL, "s", &err), -1);
	assert_non_null(strstr(error_msg(err), "read-only"));
	error_free(err);
	blockdev_close(bs);
	bs = imgfx_open("b.qcow2", "qcow2", NULL, true);
	err = NULL;
	assert_int_equal(blockdev_snapshot_create(bs, "t", 0, NULL, &err), -1);
	assert_non_null(strstr(error_msg(err), "read-only"));
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_snapshot_load_tmp(bs, "1", "x", &err), -1);
	assert_non_null(strstr(error_msg(err), "Can't find snapshot"));
	error_free(err);
	imgfx_assert_reads(bs, 0, 1 << 20, 0x66);
	assert_int_equal(blockdev_snapshot_load_tmp(bs, "1", "s", NULL), 0);
	imgfx_assert_reads(bs, 0, 1 << 20, 0x55);
	blockdev_close(bs);
}

static void ops_raw_refused(void **state)
{
	struct error *err = NULL;
	struct blockdev *bs;

	imgfx_make_raw("c.raw", 1 << 20);
	bs = imgfx_open("c.raw", "raw", NULL, false);
	assert_int_equal(blockdev_snapshot_create(bs, "s", 0, NULL, &err), -1);
	assert_non_null(strstr(error_msg(err), "format 'raw' does not support internal snapshots"));
	error_free(err);
	blockdev_close(bs);
}

static int setup(void **state)
{
	return imgfx_setup("qcow2-snapshot");
}

static int teardown(void **state)
{
	return imgfx_teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(entry_round_trip),
		cmocka_unit_test(entry_extra_data),
		cmocka_unit_test(entry_hostile),
		cmocka_unit_test(ops_create_goto_delete),
		cmocka_unit_test(ops_read_only),
		cmocka_unit_test(ops_raw_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
