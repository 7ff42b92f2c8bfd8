/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encrypted images on the iothreads (issue 18): a luks image and a qcow2 image with
 * encrypt.format=luks, each served by two queues on two iothreads at once (as a virtio-blk
 * disk with 2 queues), page-cached and O_DIRECT. Their allocated data maps to encrypted DATA
 * extents, which the engine decrypts and encrypts on the iothreads with each queue's own
 * cipher context. Both threads write interleaved blocks (neighbours in one cluster come from
 * different threads), overwrite half of them while reading the other half, then read
 * everything back, some requests with buffers split inside a sector, some not whole sectors
 * (those go through the slow path); every read must give the model's bytes, and so must a
 * second open of the image read through the synchronous path, whose decryption the interop
 * tests hold to qemu-img's. The file itself holds no plaintext. The in-place transform of split
 * buffers is checked against the flat one.
 */
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
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/engine_crypt.h"
#include "blockdev/luks.h"
#include "blockdev/qcow2.h"
#include "common/secret.h"
#include "common/util.h"
#include "iothreads/iothread.h"
#include "tests/unit/engine_fixture.h"

#define IMG_SIZE (4u << 20)
#define BLK 4096u
#define NBLK (IMG_SIZE / BLK)
#define SPLIT 100 /* a split buffer's first piece: inside the first sector */

static struct engfx_dev devs[2];
static char dir[] = "/var/tmp/vireo-luks-eng.XXXXXX";
static char img[256];
static uint8_t *model;
static struct blockdev *bs;

struct variant {
	const char *format; /* "luks" or "qcow2" */
	const char *cache;
};

/* Both queues run their lists at once; every request must succeed. */
static void run_both(void)
{
	engfx_run(devs, 2);
}

static uint8_t byte_of(uint64_t off, uint32_t gen)
{
	return (uint8_t)((off >> 12) * 7 + gen * 31 + (off & 4095) * 13 + 1);
}

/* Queue @k's next request: @len bytes at @off through @p, in one buffer or split in two. */
static struct engfx_req *add_req(int k, enum blockdev_op op, uint64_t off, uint8_t *p, size_t len,
			    bool split)
{
	struct engfx_dev *d = &devs[k];
	struct engfx_req *t = &d->reqs[d->n++];

	memset(t, 0, sizeof(*t));
	t->req.op = op;
	t->req.offset = off;
	t->req.iov = t->iov;
	if (split) {
		t->iov[0] = (struct iovec){ p, SPLIT };
		t->iov[1] = (struct iovec){ p + SPLIT, len - SPLIT };
		t->req.iovcnt = 2;
	} else {
		t->iov[0] = (struct iovec){ p, len };
		t->req.iovcnt = 1;
	}
	return t;
}

/* A write of generation @gen over [off, off+len), recorded in the model. */
static void add_write(int k, uint8_t *p, uint64_t off, size_t len, uint32_t gen, bool split)
{
	for (size_t i = 0; i < len; i++)
		p[i] = model[off + i] = byte_of(off + i, gen);
	add_req(k, BLOCKDEV_OP_WRITE, off, p, len, split);
}

/* Reads must give the model: @p holds [off, off+len) read. */
static void expect(const uint8_t *p, uint64_t off, size_t len, const char *what)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != model[off + i])
			fail_msg("%s: byte %llu: 0x%02x, not 0x%02x", what,
				 (unsigned long long)(off + i), p[i], model[off + i]);
}

/* The image opened as @v says; false when O_DIRECT is refused here. */
static bool open_image(const struct variant *v, const char *cache)
{
	bs = engfx_open_image(img, v->format, cache, false,
			      !strcmp(v->format, "luks") ? "key-secret" : "encrypt.key-secret",
			      "sec0");
	return bs != NULL;
}

static void env_open(const struct variant *v)
{
	struct error *err = NULL;

	if (!strcmp(v->format, "luks")) {
		if (luks_create(img, IMG_SIZE, "sec0", 1, &err))
			fail_msg("create: %s", error_msg(err));
	} else {
		struct qcow2_create_opts co = { .size = IMG_SIZE, .version = 3,
						.cluster_bits = 16, .refcount_bits = 16,
						.encrypt_secret = "sec0", .encrypt_iter_time = 1 };

		if (qcow2_create(img, &co, &err))
			fail_msg("create: %s", error_msg(err));
	}
	if (!open_image(v, v->cache)) {
		unlink(img);
		skip();
	}
	memset(model, 0, IMG_SIZE);
	engfx_devs_open(devs, 2, bs, "lk");
	for (int k = 0; k < 2; k++) {
		devs[k].reqs = calloc(2 * NBLK, sizeof(*devs[k].reqs));
		devs[k].qd = 16;
	}
}

static void env_close(void)
{
	engfx_devs_close(devs, 2);
	for (int k = 0; k < 2; k++)
		free(devs[k].reqs);
	blockdev_close(bs);
	bs = NULL;
}

/* Block @b belongs to queue b % 2: neighbours (one cluster) come from both iothreads. */
static void two_iothreads_read_and_write_an_encrypted_image_at_once(void **state)
{
	const struct variant *v = *state;
	uint8_t *wbuf = NULL, *rbuf = NULL, *raw;
	struct blockdev_extent ext;
	unsigned seed = 7;
	struct error *err = NULL;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, 2 * (size_t)IMG_SIZE), 0);
	assert_int_equal(posix_memalign((void **)&rbuf, 4096, 3 * (size_t)IMG_SIZE), 0);
	env_open(v);

	/* 1. every block written once (qcow2: allocating, on the slow path), in random order */
	for (int k = 0; k < 2; k++)
		devs[k].n = 0;
	for (uint32_t i = 0; i < NBLK; i++) {
		uint32_t b = (i * 389) % NBLK; /* 389 is prime to NBLK: a permutation */

		add_write((int)(b % 2), wbuf + (size_t)b * BLK, (uint64_t)b * BLK, BLK, 1,
			  false);
	}
	run_both();
	/* the allocated data is now encrypted DATA for the engine */
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_READ, 8192, BLK, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_DATA);
	assert_non_null(ext.crypt);
	assert_int_equal(ext.len % LUKS_SECTOR, 0);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, 8192, BLK, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_DATA);
	assert_non_null(ext.crypt);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_READ, 8192 + 100, BLK, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_SLOW); /* not whole sectors */

	/* 2. blocks b % 4 < 2 written again (fast path, one in three with split buffers) while
	 * b % 4 >= 2 are read; no two requests in flight touch the same bytes */
	for (int k = 0; k < 2; k++)
		devs[k].n = 0;
	memset(rbuf, 0xee, IMG_SIZE);
	for (uint32_t i = 0; i < NBLK; i++) {
		uint32_t b = (i * 389) % NBLK;
		uint64_t off = (uint64_t)b * BLK;
		int k = (int)(b % 2);

		if (b % 4 < 2)
			add_write(k, wbuf + off, off, BLK, 2, b % 3 == 0);
		else
			add_req(k, BLOCKDEV_OP_READ, off, rbuf + off, BLK, false);
	}
	run_both();
	for (uint32_t b = 0; b < NBLK; b++)
		if (b % 4 >= 2)
			expect(rbuf + (size_t)b * BLK, (uint64_t)b * BLK, BLK, "read beside writes");
	/* and writes of partial sectors (the slow path: read, decrypt, merge, encrypt, write)
	 * beside whole blocks written on the fast path */
	for (int k = 0; k < 2; k++)
		devs[k].n = 0;
	for (uint32_t b = 0; b < NBLK; b++) {
		uint64_t off = (uint64_t)b * BLK;

		if (b % 8 < 2)
			add_write((int)(b % 2), wbuf + IMG_SIZE + off, off + 1000, 300, 3, false);
		else if (b % 8 < 4)
			add_write((int)(b % 2), wbuf + off, off, BLK, 4, b % 3 == 0);
	}
	run_both();

	/* 3. everything read back: single blocks (some split, some shifted by a partial sector),
	 * and 64 KiB reads across clusters */
	for (int k = 0; k < 2; k++)
		devs[k].n = 0;
	memset(rbuf, 0xee, 3 * (size_t)IMG_SIZE);
	for (uint32_t b = 0; b < NBLK; b++) {
		uint64_t off = (uint64_t)b * BLK;
		bool split = rand_r(&seed) % 3 == 0;

		if (b % 16 == 5 && b + 1 < NBLK) /* not whole sectors: the slow path */
			add_req((int)(b % 2), BLOCKDEV_OP_READ, off + 700,
				rbuf + 2 * (size_t)IMG_SIZE + off + 700, BLK, false);
		else
			add_req((int)(b % 2), BLOCKDEV_OP_READ, off, rbuf + off, BLK, split);
	}
	for (uint64_t off = 32768; off + 65536 <= IMG_SIZE; off += 1u << 20)
		add_req(0, BLOCKDEV_OP_READ, off, rbuf + IMG_SIZE + off, 65536, true);
	run_both();
	for (uint32_t b = 0; b < NBLK; b++) {
		uint64_t off = (uint64_t)b * BLK;

		if (b % 16 == 5 && b + 1 < NBLK)
			expect(rbuf + 2 * (size_t)IMG_SIZE + off + 700, off + 700, BLK,
			       "unaligned read");
		else
			expect(rbuf + off, off, BLK, "read back");
	}
	for (uint64_t off = 32768; off + 65536 <= IMG_SIZE; off += 1u << 20)
		expect(rbuf + IMG_SIZE + off, off, 65536, "64 KiB read");
	env_close();

	/* 4. a second open, read through the synchronous path (tools' and jobs' way) */
	assert_true(open_image(v, "writeback"));
	memset(rbuf, 0xee, IMG_SIZE);
	assert_int_equal(blockdev_pread(bs, 0, rbuf, IMG_SIZE), 0);
	expect(rbuf, 0, IMG_SIZE, "synchronous read after reopening");
	if (!strcmp(v->format, "qcow2")) {
		struct blockdev_check_result cr;

		assert_int_equal(qcow2_check(bs, 0, &cr, &err), 0);
		assert_int_equal(cr.corruptions, 0);
		assert_int_equal(cr.leaks, 0);
	}
	blockdev_close(bs);
	bs = NULL;

	/* 5. no plaintext in the file: no block's first 64 bytes are found in it */
	{
		int fd = open(img, O_RDONLY);
		ssize_t n;

		raw = wbuf; /* reused */
		assert_true(fd >= 0);
		n = pread(fd, raw, 2 * (size_t)IMG_SIZE, 0);
		close(fd);
		assert_true(n > IMG_SIZE);
		for (uint32_t b = 0; b < NBLK; b += 7)
			assert_null(memmem(raw, (size_t)n, model + (size_t)b * BLK, 64));
	}
	unlink(img);
	free(wbuf);
	free(rbuf);
}

/* blockdev_crypt_iov over buffers split anywhere gives what luks_crypt gives on a flat copy. */
static void split_buffers_transform_as_a_flat_one(void **state)
{
	struct luks_key key = { .key_bytes = 64 };
	struct luks_cipher *c;
	uint8_t flat[2 * 4096], split[2 * 4096];
	static const size_t cuts[][4] = {
		{ 4096, 0, 0, 0 },     { 100, 3996, 0, 0 },  { 512, 0, 3584, 0 },
		{ 1, 510, 1, 3584 },   { 700, 700, 700, 1996 }, { 4000, 96, 0, 0 },
	};

	for (unsigned i = 0; i < sizeof(key.key); i++)
		key.key[i] = (uint8_t)(i * 11 + 3);
	c = luks_cipher_new(&key);
	assert_non_null(c);
	for (size_t t = 0; t < sizeof(cuts) / sizeof(cuts[0]); t++) {
		for (int enc = 0; enc < 2; enc++) {
			struct iovec iov[5];
			size_t at = 0;
			int n = 0;

			for (size_t i = 0; i < sizeof(flat); i++)
				flat[i] = split[i] = (uint8_t)(i * 7 + t);
			/* a skipped buffer first: the transform starts after it */
			iov[n++] = (struct iovec){ split, 0 };
			for (int p = 0; p < 4; p++) {
				iov[n++] = (struct iovec){ split + 4096 + at, cuts[t][p] };
				at += cuts[t][p];
			}
			assert_int_equal(at, 4096);
			assert_int_equal(luks_crypt(&key, enc, 77, flat + 4096, 4096), 0);
			assert_int_equal(blockdev_crypt_iov(c, enc, 77, iov, n, 0, 4096), 0);
			assert_memory_equal(flat, split, sizeof(flat));
			/* the same from an offset inside the buffers: their last 3 sectors */
			assert_int_equal(luks_crypt(&key, enc, 9, flat + 4096 + 1536, 2560), 0);
			assert_int_equal(blockdev_crypt_iov(c, enc, 9, iov, n, 1536, 2560), 0);
			assert_memory_equal(flat, split, sizeof(flat));
		}
	}
	assert_int_equal(blockdev_crypt_iov(c, false, 0, (struct iovec[]){ { flat, 512 } }, 1, 0,
					    1024), -EIO); /* shorter than the length */
	assert_int_equal(blockdev_crypt_iov(c, false, 0, (struct iovec[]){ { flat, 512 } }, 1, 0,
					    100), -EIO); /* not whole sectors */
	luks_cipher_free(c);
}

static int setup(void **state)
{
	struct error *err = NULL;

	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/t.img", dir);
	model = malloc(IMG_SIZE);
	if (!model || secret_add_spec("secret,id=sec0,data=engine-pass", &err))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	unlink(img);
	rmdir(dir);
	free(model);
	secret_cleanup();
	return 0;
}

int main(void)
{
	static const struct variant luks_wb = { "luks", "writeback" }, luks_dio = { "luks", "none" };
	static const struct variant qcow2_wb = { "qcow2", "writeback" };
	static const struct variant qcow2_dio = { "qcow2", "none" };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_buffers_transform_as_a_flat_one),
		cmocka_unit_test_prestate(two_iothreads_read_and_write_an_encrypted_image_at_once,
					  (void *)&luks_wb),
		cmocka_unit_test_prestate(two_iothreads_read_and_write_an_encrypted_image_at_once,
					  (void *)&luks_dio),
		cmocka_unit_test_prestate(two_iothreads_read_and_write_an_encrypted_image_at_once,
					  (void *)&qcow2_wb),
		cmocka_unit_test_prestate(two_iothreads_read_and_write_an_encrypted_image_at_once,
					  (void *)&qcow2_dio),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
