/* SPDX-License-Identifier: Apache-2.0 */
/* The block layer's control plane and synchronous path on raw images (file protocol). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev/blockdev.h"

#define IMG_SIZE (4u << 20)

struct fixture {
	char path[256];
};

/* Temp files live on a disk file system (O_DIRECT): $VIREO_TEST_TMPDIR, else /var/tmp. */
static int make_image(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *dir = getenv("VIREO_TEST_TMPDIR");
	int fd;

	if (!f)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vireo-raw-XXXXXX", dir ? dir : "/var/tmp");
	fd = mkstemp(f->path);
	if (fd < 0 || ftruncate(fd, IMG_SIZE) < 0) {
		free(f);
		return -1;
	}
	close(fd);
	*state = f;
	return 0;
}

static int remove_image(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	free(f);
	return 0;
}

static struct blockdev *open_img(const char *path, const char *cache, bool readonly)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *bs;

	assert_int_equal(blockdev_opts_set(&o, "format", "raw", NULL), 0);
	assert_int_equal(blockdev_opts_set(&o, "cache", cache, NULL), 0);
	assert_int_equal(blockdev_opts_set(&o, "readonly", readonly ? "on" : "off", NULL), 0);
	bs = blockdev_open(path, &o, &err);
	blockdev_opts_free(&o);
	if (!bs && strstr(error_msg(err), "O_DIRECT")) {
		print_message("skipped: %s\n", error_msg(err));
		error_free(err);
		return NULL;
	}
	if (!bs)
		fail_msg("open: %s", error_msg(err));
	return bs;
}

static void fill(uint8_t *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static bool all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

static void rw_roundtrip(const char *path, const char *cache)
{
	struct blockdev *bs = open_img(path, cache, false);
	uint8_t *orig = NULL, *w = NULL, *r = NULL;

	if (!bs)
		skip();
	assert_int_equal(bs->size, IMG_SIZE);
	assert_string_equal(blockdev_format_name(bs), "raw");
	assert_int_equal(posix_memalign((void **)&orig, 4096, 65536), 0);
	assert_int_equal(posix_memalign((void **)&w, 4096, 65536), 0);
	assert_int_equal(posix_memalign((void **)&r, 4096, 65536), 0);

	/* aligned */
	fill(orig, 65536, 1);
	assert_int_equal(blockdev_pwrite(bs, 65536, orig, 65536), 0);
	memset(r, 0xaa, 65536);
	assert_int_equal(blockdev_pread(bs, 65536, r, 65536), 0);
	assert_memory_equal(orig, r, 65536);

	/* unaligned offset, length and buffer (bounced and read-modify-written under O_DIRECT) */
	fill(w, 3000, 2);
	assert_int_equal(blockdev_pwrite(bs, 65536 + 100, w + 1, 2999), 0);
	assert_int_equal(blockdev_pread(bs, 65536, r, 8192), 0);
	assert_memory_equal(r, orig, 100);
	assert_memory_equal(r + 100, w + 1, 2999);
	assert_memory_equal(r + 3099, orig + 3099, 8192 - 3099);
	/* an unaligned read into an unaligned buffer */
	assert_int_equal(blockdev_pread(bs, 65536 + 101, r + 3, 2998), 0);
	assert_memory_equal(r + 3, w + 2, 2998);

	/* a hole reads as zeroes */
	assert_int_equal(blockdev_pread(bs, 1 << 20, r, 4096), 0);
	assert_true(all_zero(r, 4096));

	assert_int_equal(blockdev_flush(bs), 0);
	blockdev_close(bs);

	/* persists across a reopen */
	bs = open_img(path, cache, true);
	assert_non_null(bs);
	assert_int_equal(blockdev_pread(bs, 65536 + 100, r, 2999), 0);
	assert_memory_equal(r, w + 1, 2999);
	blockdev_close(bs);
	free(orig);
	free(w);
	free(r);
}

static void sync_rw_roundtrips_with_writeback(void **state)
{
	rw_roundtrip(((struct fixture *)*state)->path, "writeback");
}

static void sync_rw_roundtrips_with_cache_none(void **state)
{
	rw_roundtrip(((struct fixture *)*state)->path, "none");
}

static void discard_and_write_zeroes_read_back_zeroes(void **state)
{
	struct fixture *f = *state;
	struct blockdev *bs = open_img(f->path, "writeback", false);
	static uint8_t w[65536], r[65536];
	uint64_t pnum, off;
	struct blockdev *map;
	int st;

	fill(w, sizeof(w), 3);
	assert_int_equal(blockdev_pwrite(bs, 0, w, sizeof(w)), 0);
	assert_int_equal(blockdev_pwrite(bs, 1 << 20, w, sizeof(w)), 0);
	assert_int_equal(blockdev_flush(bs), 0);

	assert_int_equal(blockdev_discard(bs, 0, 65536), 0);
	assert_int_equal(blockdev_pread(bs, 0, r, sizeof(r)), 0);
	assert_true(all_zero(r, sizeof(r)));

	assert_int_equal(blockdev_write_zeroes(bs, (1 << 20) + 512, 4096, 0), 0);
	assert_int_equal(blockdev_pread(bs, 1 << 20, r, sizeof(r)), 0);
	assert_memory_equal(r, w, 512);
	assert_true(all_zero(r + 512, 4096));
	assert_memory_equal(r + 4608, w + 4608, sizeof(r) - 4608);

	assert_int_equal(blockdev_write_zeroes(bs, 1 << 20, 65536, BLOCKDEV_ZERO_MAY_UNMAP), 0);
	assert_int_equal(blockdev_pread(bs, 1 << 20, r, sizeof(r)), 0);
	assert_true(all_zero(r, sizeof(r)));

	/* the discarded start is a hole: block_status says zero */
	st = blockdev_block_status(bs, 0, IMG_SIZE, &pnum, &off, &map);
	assert_true(st >= 0);
	assert_true(st & BLOCKDEV_STATUS_ZERO);
	assert_true(pnum >= 65536);
	blockdev_close(bs);
}

static void out_of_range_and_read_only_requests_fail(void **state)
{
	struct fixture *f = *state;
	struct blockdev *bs = open_img(f->path, "writeback", true);
	uint8_t buf[512] = { 0 };

	assert_true(bs->read_only);
	assert_int_equal(blockdev_pwrite(bs, 0, buf, sizeof(buf)), -EROFS);
	assert_int_equal(blockdev_discard(bs, 0, 512), -EROFS);
	assert_int_equal(blockdev_write_zeroes(bs, 0, 512, 0), -EROFS);
	assert_int_equal(blockdev_pread(bs, IMG_SIZE - 256, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(blockdev_pread(bs, UINT64_MAX - 100, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(blockdev_pread(bs, IMG_SIZE - 512, buf, sizeof(buf)), 0);
	blockdev_close(bs);
}

static void truncate_grows_and_info_reports_size(void **state)
{
	struct fixture *f = *state;
	struct blockdev *bs = open_img(f->path, "writeback", false);
	struct blockdev_info info;
	struct error *err = NULL;
	struct stat st;

	assert_int_equal(blockdev_truncate(bs, 2 * IMG_SIZE, &err), 0);
	assert_int_equal(bs->size, 2 * IMG_SIZE);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 2 * IMG_SIZE);
	assert_int_equal(blockdev_get_info(bs, &info, &err), 0);
	assert_null(info.specific);
	blockdev_close(bs);
}

static void unknown_option_is_refused_by_name(void **state)
{
	struct fixture *f = *state;
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;

	assert_int_equal(blockdev_opts_set(&o, "l2-cache-size", "4M", NULL), 0);
	assert_null(blockdev_open(f->path, &o, &err));
	assert_non_null(err);
	assert_non_null(strstr(error_msg(err), "l2-cache-size"));
	assert_non_null(strstr(error_msg(err), "raw"));
	error_free(err);
	blockdev_opts_free(&o);
}

static void bad_option_values_are_refused_by_name(void **state)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;

	assert_int_equal(blockdev_opts_set(&o, "cache", "directsync", &err), -1);
	assert_non_null(strstr(error_msg(err), "cache"));
	assert_non_null(strstr(error_msg(err), "directsync"));
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_opts_set(&o, "readonly", "maybe", &err), -1);
	assert_non_null(strstr(error_msg(err), "readonly"));
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_opts_set(&o, "format", "qed", NULL), 0);
	assert_null(blockdev_open("/nonexistent", &o, &err));
	assert_non_null(strstr(error_msg(err), "qed"));
	error_free(err);
	blockdev_opts_free(&o);
}

static void missing_file_is_named_in_the_error(void **state)
{
	struct error *err = NULL;

	assert_null(blockdev_open("/nonexistent/vireo-disk.img", NULL, &err));
	assert_non_null(err);
	assert_non_null(strstr(error_msg(err), "/nonexistent/vireo-disk.img"));
	assert_non_null(strstr(error_msg(err), "No such file"));
	error_free(err);
}

static void a_directory_is_refused(void **state)
{
	struct error *err = NULL;

	assert_null(blockdev_open("/", NULL, &err));
	assert_non_null(strstr(error_msg(err), "directory"));
	assert_non_null(strstr(error_msg(err), "'/'"));
	error_free(err);
}

/* a FIFO (say, a hostile backing file name) is refused at once: opening it must not block */
static void a_fifo_is_refused_without_hanging(void **state)
{
	char path[64] = "/tmp/vireo-test-fifo-XXXXXX";
	struct error *err = NULL;

	assert_non_null(mkdtemp(path));
	strcat(path, "/fifo");
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_null(blockdev_open(path, NULL, &err));
	assert_non_null(strstr(error_msg(err), "not a regular file"));
	error_free(err);
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
}

static void probing_falls_back_to_raw(void **state)
{
	struct fixture *f = *state;
	struct blockdev *bs = blockdev_open(f->path, NULL, NULL);

	assert_non_null(bs);
	assert_string_equal(blockdev_format_name(bs), "raw");
	assert_non_null(bs->file);
	assert_string_equal(blockdev_format_name(bs->file), "file");
	assert_true(bs->file->fd >= 0);
	blockdev_close(bs);
}

int main(void)
{
#define WITH_IMAGE(t) cmocka_unit_test_setup_teardown(t, make_image, remove_image)
	const struct CMUnitTest tests[] = {
		WITH_IMAGE(sync_rw_roundtrips_with_writeback),
		WITH_IMAGE(sync_rw_roundtrips_with_cache_none),
		WITH_IMAGE(discard_and_write_zeroes_read_back_zeroes),
		WITH_IMAGE(out_of_range_and_read_only_requests_fail),
		WITH_IMAGE(truncate_grows_and_info_reports_size),
		WITH_IMAGE(unknown_option_is_refused_by_name),
		cmocka_unit_test(bad_option_values_are_refused_by_name),
		cmocka_unit_test(missing_file_is_named_in_the_error),
		cmocka_unit_test(a_directory_is_refused),
		cmocka_unit_test(a_fifo_is_refused_without_hanging),
		WITH_IMAGE(probing_falls_back_to_raw),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
