/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Probing and the generic calls that reach format-specific code: a file carrying a format's
 * magic is that format or refused (never raw), and generic calls on a node of any format never
 * cast it to another driver's state.
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
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "blockdev/vdi.h"
#include "blockdev/vhdx.h"
#include "blockdev/vpc.h"

static const struct blockdev_driver *probe(const void *buf, size_t len, struct error **errp)
{
	return blockdev_probe(buf, len, "img", errp);
}

static void plain_bytes_probe_as_raw(void **state)
{
	static const char text[] = "hello, this is not an image\n";
	uint8_t zeroes[512] = { 0 };
	struct error *err = NULL;

	assert_ptr_equal(probe(zeroes, sizeof(zeroes), &err), &blockdev_raw);
	assert_ptr_equal(probe(text, sizeof(text) - 1, &err), &blockdev_raw);
	assert_ptr_equal(probe(zeroes, 0, &err), &blockdev_raw);
	/* a magic cut short by the end of the file claims nothing */
	assert_ptr_equal(probe("vhdxfi", 6, &err), &blockdev_raw);
	assert_null(err);
}

static void qcow2_magic_is_qcow2_whatever_the_version(void **state)
{
	uint8_t h[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
	struct error *err = NULL;

	assert_ptr_equal(probe(h, sizeof(h), &err), &blockdev_qcow2);
	h[7] = 9; /* a damaged or future version: the header parser names it */
	assert_ptr_equal(probe(h, sizeof(h), &err), &blockdev_qcow2);
	h[7] = 0;
	assert_ptr_equal(probe(h, 4, &err), &blockdev_qcow2);
	assert_null(err);
}

/* The VHDX file identifier is vhdx's, whatever follows it (the driver names a damaged field). */
static void vhdx_magic_is_vhdx(void **state)
{
	uint8_t h[512] = { 'v', 'h', 'd', 'x', 'f', 'i', 'l', 'e' };
	struct error *err = NULL;

	assert_ptr_equal(probe(h, sizeof(h), &err), &blockdev_vhdx);
	assert_ptr_equal(probe(h, 8, &err), &blockdev_vhdx);
	assert_null(err);
}

/* A dynamic VHD's footer copy is vpc's whatever it holds (the driver names a damaged field);
 * a fixed VHD has nothing at its start and is raw, as QEMU probes it. */
static void vhd_magic_is_vpc(void **state)
{
	uint8_t h[512] = { 'c', 'o', 'n', 'e', 'c', 't', 'i', 'x' };
	struct error *err = NULL;

	assert_ptr_equal(probe(h, sizeof(h), &err), &blockdev_vpc);
	assert_ptr_equal(probe(h, 8, &err), &blockdev_vpc);
	assert_ptr_equal(probe(h, 7, &err), &blockdev_raw);
	assert_null(err);
}

/* The VDI signature at 0x40 is vdi's, whatever the banner before it says. */
static void vdi_signature_is_vdi(void **state)
{
	uint8_t h[512] = { 0 };
	struct error *err = NULL;

	memcpy(h + 0x40, "\x7f\x10\xda\xbe", 4);
	assert_ptr_equal(probe(h, sizeof(h), &err), &blockdev_vdi);
	assert_ptr_equal(probe(h, 0x44, &err), &blockdev_vdi);
	assert_ptr_equal(probe(h, 0x43, &err), &blockdev_raw);
	assert_null(err);
}

static void foreign_magic_is_refused_naming_the_format(void **state)
{
	static const struct {
		size_t off;
		const char *magic;
		size_t len;
		const char *name;
	} cases[] = {
		{ 0, "QFI\xfb\0\0\0\1", 8, "qcow (version 1)" },
		{ 0, "COWD", 4, "vmdk (ESX COWD)" },
		{ 0, "WithoutFreeSpace", 16, "parallels" },
		{ 0, "QED\0", 4, "qed" },
		{ 0, "LUKS\xba\xbe", 6, "luks (not version 1)" },
		{ 0, "LUKS\xba\xbe\0\2", 8, "luks (version 2)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t buf[512] = { 0 };
		struct error *err = NULL;
		char want[64];

		memcpy(buf + cases[i].off, cases[i].magic, cases[i].len);
		assert_null(probe(buf, sizeof(buf), &err));
		assert_non_null(err);
		snprintf(want, sizeof(want), "is a %s image", cases[i].name);
		if (!strstr(error_msg(err), want))
			fail_msg("case %zu: '%s' lacks '%s'", i, error_msg(err), want);
		assert_non_null(strstr(error_msg(err), "'img'"));
		error_free(err);
	}
}

/* A temp file holding @len bytes of @buf, on a disk file system. */
static void make_file(char *path, size_t size, const void *buf, size_t len)
{
	const char *dir = getenv("VIREO_TEST_TMPDIR");
	int fd;

	snprintf(path, 256, "%s/vireo-probe-XXXXXX", dir ? dir : "/var/tmp");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

static struct blockdev *open_rw(const char *path, const char *format, bool readonly,
			       struct error **errp)
{
	struct blockdev_opts o = { 0 };
	struct blockdev *bs;

	if (format)
		assert_int_equal(blockdev_opts_set(&o, "format", format, NULL), 0);
	o.readonly = readonly;
	bs = blockdev_open(path, &o, errp);
	blockdev_opts_free(&o);
	return bs;
}

static struct blockdev *open_as(const char *path, const char *format, struct error **errp)
{
	return open_rw(path, format, true, errp);
}

static void damaged_qcow2_is_refused_not_opened_as_raw(void **state)
{
	uint8_t h[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 9 };
	struct error *err = NULL;
	struct blockdev *bs;
	char path[256];

	make_file(path, 1 << 20, h, sizeof(h));
	assert_null(open_as(path, NULL, &err));
	assert_non_null(strstr(error_msg(err), "version (byte 4) is 9"));
	error_free(err);
	err = NULL;
	/* the user may still say it is raw */
	bs = open_as(path, "raw", &err);
	assert_non_null(bs);
	assert_string_equal(blockdev_format_name(bs), "raw");
	blockdev_close(bs);
	unlink(path);
}

static void foreign_image_opens_only_when_called_raw(void **state)
{
	struct error *err = NULL;
	struct blockdev *bs;
	char path[256];

	make_file(path, 65536, "QED\0", 4);
	assert_null(open_as(path, NULL, &err));
	assert_non_null(strstr(error_msg(err), "is a qed image"));
	error_free(err);
	err = NULL;
	bs = open_as(path, "raw", &err);
	assert_non_null(bs);
	blockdev_close(bs);
	unlink(path);
}

/* info, snapshot list, make_empty and the qcow2-only calls on a raw node: answers, no casts */
static void generic_calls_on_raw_never_reach_qcow2_code(void **state)
{
	struct blockdev_snapshot *snaps = (void *)1;
	struct qcow2_amend_opts amend = { .version = 3, .lazy_refcounts = -1 };
	struct blockdev_check_result res;
	struct blockdev_info info;
	struct error *err = NULL;
	struct blockdev *bs;
	size_t nr = 99;
	char path[256];

	make_file(path, 1 << 20, "", 0);
	bs = open_as(path, NULL, &err);
	assert_non_null(bs);
	assert_string_equal(blockdev_format_name(bs), "raw");
	assert_int_equal(blockdev_get_info(bs, &info, &err), 0);
	assert_null(info.backing_file);
	assert_null(info.backing_fmt);
	assert_int_equal(blockdev_snapshot_list(bs, &snaps, &nr, &err), 0);
	assert_null(snaps);
	assert_int_equal(nr, 0);

	assert_int_equal(blockdev_check(bs, 0, &res, &err), -1);
	assert_non_null(strstr(error_msg(err), "format 'raw' does not support checks"));
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_make_empty(bs, &err), -1);
	assert_non_null(strstr(error_msg(err), "format 'raw' cannot be emptied"));
	error_free(err);
	err = NULL;
	assert_null(qcow2_node(bs, &err));
	assert_non_null(strstr(error_msg(err), "is a raw image, not qcow2"));
	error_free(err);
	err = NULL;
	assert_int_equal(qcow2_check(bs, 0, &res, &err), -1);
	assert_non_null(strstr(error_msg(err), "not qcow2"));
	error_free(err);
	err = NULL;
	assert_int_equal(qcow2_amend(bs, &amend, &err), -1);
	assert_non_null(strstr(error_msg(err), "not qcow2"));
	error_free(err);
	err = NULL;
	assert_int_equal(qcow2_change_backing(bs, "b.raw", "raw", &err), -1);
	assert_non_null(strstr(error_msg(err), "not qcow2"));
	error_free(err);
	blockdev_close(bs);
	unlink(path);
}

/* A guest of a probed raw disk cannot turn it into a qcow2 (or other) image by writing a header */
static void probed_raw_refuses_writes_that_would_change_its_format(void **state)
{
	static const uint8_t qcow2_hdr[8] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
	struct blockdev_extent ext;
	uint8_t back[8];
	struct blockdev *bs;
	char path[256];

	make_file(path, 1 << 20, "", 0);
	bs = open_rw(path, NULL, false, NULL);
	assert_non_null(bs);
	assert_true(bs->probed);
	assert_int_equal(blockdev_pwrite(bs, 0, qcow2_hdr, sizeof(qcow2_hdr)), -EPERM);
	assert_int_equal(blockdev_pwrite(bs, 0, "KDMV", 4), -EPERM);
	assert_int_equal(blockdev_pwrite(bs, 0x40, "\x7f\x10\xda\xbe", 4), -EPERM); /* vdi */
	assert_int_equal(blockdev_pwrite(bs, 0, "conectix", 8), -EPERM); /* vpc */
	assert_int_equal(blockdev_pwrite(bs, 0, "hello", 5), 0);
	assert_int_equal(blockdev_pwrite(bs, 4096, qcow2_hdr, sizeof(qcow2_hdr)), 0);
	assert_int_equal(blockdev_pread(bs, 0, back, 5), 0);
	assert_memory_equal(back, "hello", 5);
	/* the fast path sends only the first sector's writes to the slow path, where they are checked */
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, 0, 8192, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_SLOW);
	assert_int_equal(ext.len, 512);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, 512, 8192, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_DATA);
	blockdev_close(bs);

	/* format=raw given: the user said what it is, nothing is checked */
	bs = open_rw(path, "raw", false, NULL);
	assert_non_null(bs);
	assert_false(bs->probed);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, 0, 8192, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_DATA);
	assert_int_equal(blockdev_pwrite(bs, 0, qcow2_hdr, sizeof(qcow2_hdr)), 0);
	blockdev_close(bs);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_bytes_probe_as_raw),
		cmocka_unit_test(qcow2_magic_is_qcow2_whatever_the_version),
		cmocka_unit_test(vhd_magic_is_vpc),
		cmocka_unit_test(vdi_signature_is_vdi),
		cmocka_unit_test(vhdx_magic_is_vhdx),
		cmocka_unit_test(foreign_magic_is_refused_naming_the_format),
		cmocka_unit_test(damaged_qcow2_is_refused_not_opened_as_raw),
		cmocka_unit_test(foreign_image_opens_only_when_called_raw),
		cmocka_unit_test(generic_calls_on_raw_never_reach_qcow2_code),
		cmocka_unit_test(probed_raw_refuses_writes_that_would_change_its_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
