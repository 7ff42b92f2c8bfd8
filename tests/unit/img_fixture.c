/* SPDX-License-Identifier: Apache-2.0 */
/* Image files for block-layer unit tests (see img_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/qcow2.h"
#include "tests/unit/img_fixture.h"

static char dir[200];

int imgfx_setup(const char *prefix)
{
	const char *tmp = getenv("VIREO_TEST_TMPDIR");

	snprintf(dir, sizeof(dir), "%s/vireo-%s-XXXXXX", tmp ? tmp : "/var/tmp", prefix);
	return mkdtemp(dir) ? 0 : -1;
}

int imgfx_teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

const char *imgfx_path(const char *name)
{
	static char buf[4][256];
	static unsigned int i;
	char *p = buf[i++ % 4];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

void imgfx_make_raw(const char *name, uint64_t size)
{
	int fd = open(imgfx_path(name), O_CREAT | O_TRUNC | O_WRONLY, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

void imgfx_make_qcow2(const char *name, uint64_t size, const char *backing, const char *fmt)
{
	struct qcow2_create_opts o = { .size = size, .cluster_bits = 16, .version = 3,
				       .refcount_bits = 16, .backing_file = backing,
				       .backing_fmt = fmt };
	struct error *err = NULL;

	if (qcow2_create(imgfx_path(name), &o, &err) < 0)
		fail_msg("create %s: %s", name, error_msg(err));
}

struct blockdev *imgfx_open(const char *name, const char *fmt, const char *node, bool ro)
{
	struct blockdev_opts o = { .readonly = ro };
	struct error *err = NULL;
	struct blockdev *bs;

	if (fmt)
		assert_int_equal(blockdev_opts_set(&o, "format", fmt, NULL), 0);
	if (node)
		assert_int_equal(blockdev_opts_set(&o, "node-name", node, NULL), 0);
	bs = blockdev_open(imgfx_path(name), &o, &err);
	blockdev_opts_free(&o);
	if (!bs)
		fail_msg("open %s: %s", name, error_msg(err));
	return bs;
}

void imgfx_fill(struct blockdev *bs, uint64_t off, uint64_t len, uint8_t byte)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	memset(b, byte, len);
	assert_int_equal(blockdev_pwrite(bs, off, b, len), 0);
	free(b);
}

void imgfx_assert_reads(struct blockdev *bs, uint64_t off, uint64_t len, uint8_t byte)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	assert_int_equal(blockdev_pread(bs, off, b, len), 0);
	for (uint64_t i = 0; i < len; i++)
		if (b[i] != byte)
			fail_msg("byte %llu reads %#x, not %#x", (unsigned long long)(off + i),
				 b[i], byte);
	free(b);
}
