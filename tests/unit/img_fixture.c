/* SPDX-License-Identifier: Apache-2.0 */
/* Image files for block-layer unit tests (see img_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/create.h"
#include "blockdev/qcow2.h"
#include "common/util.h"
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

int imgfx_create(const struct blockdev_driver *drv, const char *name, uint64_t size,
		 const char *key, const char *value)
{
	struct blockdev_opt o = { (char *)key, (char *)value };
	struct blockdev_create_ctx ctx;
	int ret = blockdev_create_prepare(&ctx, drv, imgfx_path(name), size, &o, key ? 1 : 0,
					  NULL);

	if (!ret)
		ret = blockdev_create_run(&ctx, NULL);
	blockdev_create_free(&ctx);
	return ret;
}

struct pieces {
	struct blockdev *bs;
	unsigned int id;
	uint8_t byte0;
	uint64_t end, stride;
};

static void *pieces_thread(void *arg)
{
	struct pieces *p = arg;
	uint8_t buf[4096];

	memset(buf, p->byte0 + p->id, sizeof(buf));
	for (uint64_t off = p->id * 4096ULL; off < p->end; off += p->stride)
		if (blockdev_pwrite(p->bs, off, buf, sizeof(buf)))
			return (void *)1;
	return NULL;
}

void imgfx_pieces_write(struct blockdev *bs, unsigned int nthreads, uint8_t byte0, uint64_t end,
			uint64_t stride)
{
	pthread_t th[16];
	struct pieces p[16];

	assert_true(nthreads <= 16);
	for (unsigned int i = 0; i < nthreads; i++) {
		p[i] = (struct pieces){ bs, i, byte0, end, stride };
		assert_int_equal(pthread_create(&th[i], NULL, pieces_thread, &p[i]), 0);
	}
	for (unsigned int i = 0; i < nthreads; i++) {
		void *r;

		pthread_join(th[i], &r);
		if (r)
			fail_msg("writer %u: a write failed", i);
	}
	imgfx_pieces_check(bs, nthreads, byte0, end, stride);
}

void imgfx_pieces_check(struct blockdev *bs, unsigned int nthreads, uint8_t byte0, uint64_t end,
			uint64_t stride)
{
	for (uint64_t base = 0; base < end; base += stride) {
		for (unsigned int id = 0; id < nthreads && base + id * 4096ULL < end; id++)
			imgfx_assert_reads(bs, base + id * 4096ULL, 4096, byte0 + id);
		if (base + nthreads * 4096ULL < end) /* between the pieces: never written */
			imgfx_assert_reads(bs, base + nthreads * 4096ULL,
					   MIN(stride, end - base) - nthreads * 4096ULL, 0);
	}
}
