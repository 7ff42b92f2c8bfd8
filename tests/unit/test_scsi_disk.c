/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SCSI disk over real raw and qcow2 nodes on temp files: I/O through the block layer
 * (synchronously, and once through an iothread's engine as a transport would), parameter data
 * field by field, residuals, mode pages, unit attention.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "common/util.h"
#include "devices/scsi_disk.h"
#include "iothreads/iothread.h"

#define IMG_SIZE (4u << 20)
#define BS 512u

struct env {
	char path[64];
	struct blockdev *bs;
	struct scsi_disk *d;
};

static struct blockdev *open_img(const char *path, bool qcow2, bool ro)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *bs;

	if (qcow2) {
		struct qcow2_create_opts co = { .size = IMG_SIZE, .version = 3, .cluster_bits = 16,
						.refcount_bits = 16 };

		if (qcow2_create(path, &co, &err))
			fail_msg("create: %s", error_msg(err));
	} else {
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		assert_int_equal(ftruncate(fileno(f), IMG_SIZE), 0);
		fclose(f);
	}
	if (ro)
		blockdev_opts_set(&o, "readonly", "on", NULL);
	bs = blockdev_open(path, &o, &err);
	blockdev_opts_free(&o);
	if (!bs)
		fail_msg("open: %s", error_msg(err));
	return bs;
}

static void env_open(struct env *e, bool qcow2, const struct scsi_disk_opts *extra)
{
	struct scsi_disk_opts o = { 0 };
	struct error *err = NULL;

	snprintf(e->path, sizeof(e->path), "/tmp/vireo-scsi-XXXXXX");
	close(mkstemp(e->path));
	e->bs = open_img(e->path, qcow2, extra && extra->read_only);
	if (extra)
		o = *extra;
	o.bs = e->bs;
	e->d = scsi_disk_create(&o, &err);
	if (!e->d)
		fail_msg("create: %s", error_msg(err));
}

static void env_close(struct env *e)
{
	scsi_disk_destroy(e->d);
	blockdev_close(e->bs);
	unlink(e->path);
}

/* Runs one command synchronously with a data-in buffer @in (@inlen) or data-out @out. */
static void run(struct env *e, struct scsi_req *r, const uint8_t *cdb, size_t cdblen, void *in,
		size_t inlen, const void *out, size_t outlen)
{
	static struct iovec din, dout;

	memset(r, 0, sizeof(*r));
	memcpy(r->cdb, cdb, cdblen);
	r->cdb_len = (uint8_t)cdblen;
	din = (struct iovec){ in, inlen };
	dout = (struct iovec){ (void *)out, outlen };
	r->din = &din;
	r->din_cnt = in ? 1 : 0;
	r->dout = &dout;
	r->dout_cnt = out ? 1 : 0;
	scsi_disk_execute_sync(e->d, r);
}

#define CDB(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

static void expect_good(const struct scsi_req *r)
{
	if (r->status != SCSI_STATUS_GOOD) {
		struct scsi_sense_err s;

		scsi_sense_parse(r->sense, r->sense_len, &s);
		fail_msg("status %02x, sense %x/%04x %s", r->status, s.key, s.asc,
			 scsi_asc_name(s.asc));
	}
	assert_int_equal(r->sense_len, 0);
}

static struct scsi_sense_err expect_cc(const struct scsi_req *r, uint8_t key, uint16_t asc)
{
	struct scsi_sense_err s;

	assert_int_equal(r->status, SCSI_STATUS_CHECK_CONDITION);
	assert_true(scsi_sense_parse(r->sense, r->sense_len, &s));
	if (s.key != key || s.asc != asc)
		fail_msg("sense %x/%04x (%s), want %x/%04x (%s)", s.key, s.asc,
			 scsi_asc_name(s.asc), key, asc, scsi_asc_name(asc));
	return s;
}

/* Clears the power-on unit attention every new LUN has. */
static void clear_ua(struct env *e)
{
	struct scsi_req r;

	run(e, &r, CDB(0x00, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_cc(&r, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_POWER_ON_RESET);
	run(e, &r, CDB(0x00, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_good(&r);
}

static void fill(uint8_t *b, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

/* ---------------------------------------------------------------------------------------------
 * I/O
 */

static void write_read_back(bool qcow2)
{
	struct env e;
	struct scsi_req r;
	uint8_t w[16 * BS], rd[16 * BS];

	env_open(&e, qcow2, NULL);
	clear_ua(&e);
	fill(w, sizeof(w), 3);
	/* WRITE(10) at LBA 100, 16 blocks */
	run(&e, &r, CDB(0x2a, 0, 0, 0, 0, 100, 0, 0, 16, 0), NULL, 0, w, sizeof(w));
	expect_good(&r);
	assert_int_equal(r.xfer, sizeof(w));
	assert_int_equal(r.residual, 0);
	assert_int_equal(r.overflow, 0);
	/* READ(16) back */
	memset(rd, 0, sizeof(rd));
	run(&e, &r, CDB(0x88, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 16, 0, 0), rd, sizeof(rd),
	    NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, sizeof(rd));
	assert_memory_equal(rd, w, sizeof(w));
	/* WRITE(16) with FUA over half of it, READ(6) and READ(12) */
	fill(w, 8 * BS, 9);
	run(&e, &r, CDB(0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 104, 0, 0, 0, 8, 0, 0), NULL, 0, w,
	    8 * BS);
	expect_good(&r);
	run(&e, &r, CDB(0x08, 0, 0, 104, 8, 0), rd, 8 * BS, NULL, 0);
	expect_good(&r);
	assert_memory_equal(rd, w, 8 * BS);
	run(&e, &r, CDB(0xa8, 0, 0, 0, 0, 104, 0, 0, 0, 8, 0, 0), rd, 8 * BS, NULL, 0);
	expect_good(&r);
	assert_memory_equal(rd, w, 8 * BS);
	/* SYNCHRONIZE CACHE(10) and (16) */
	run(&e, &r, CDB(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_good(&r);
	run(&e, &r, CDB(0x91, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0), NULL, 0, NULL, 0);
	expect_good(&r);
	/* WRITE(6) */
	run(&e, &r, CDB(0x0a, 0, 0, 7, 1, 0), NULL, 0, w, BS);
	expect_good(&r);
	env_close(&e);
}

static void write_read_back_raw(void **state) { write_read_back(false); }
static void write_read_back_qcow2(void **state) { write_read_back(true); }

static void expect_zero_blocks(struct env *e, uint64_t lba, unsigned int n)
{
	uint8_t rd[32 * BS];
	struct scsi_req r;

	assert_true(n <= 32);
	memset(rd, 0xee, sizeof(rd));
	run(e, &r, CDB(0x28, 0, 0, 0, (uint8_t)(lba >> 8), (uint8_t)lba, 0, 0, (uint8_t)n, 0), rd,
	    n * BS, NULL, 0);
	expect_good(&r);
	assert_true(buf_is_zero(rd, n * BS));
}

static void unmap_and_write_same(bool qcow2)
{
	struct scsi_disk_opts o = { .discard = true };
	uint8_t w[32 * BS], param[8 + 32], rd[4 * BS], blk[BS];
	struct env e;
	struct scsi_req r;

	env_open(&e, qcow2, &o);
	clear_ua(&e);
	fill(w, sizeof(w), 1);
	run(&e, &r, CDB(0x2a, 0, 0, 0, 0, 0, 0, 0, 32, 0), NULL, 0, w, sizeof(w));
	expect_good(&r);
	run(&e, &r, CDB(0x2a, 0, 0, 0, 1, 0, 0, 0, 32, 0), NULL, 0, w, sizeof(w));
	expect_good(&r);
	/* UNMAP two ranges */
	memset(param, 0, sizeof(param));
	scsi_put_be16(param, 6 + 32);
	scsi_put_be16(param + 2, 32);
	scsi_put_be64(param + 8, 0);
	scsi_put_be32(param + 16, 8);
	scsi_put_be64(param + 24, 16);
	scsi_put_be32(param + 32, 4);
	run(&e, &r, CDB(0x42, 0, 0, 0, 0, 0, 0, 0, sizeof(param), 0), NULL, 0, param, sizeof(param));
	expect_good(&r);
	assert_int_equal(r.xfer, sizeof(param));
	expect_zero_blocks(&e, 0, 8);
	expect_zero_blocks(&e, 16, 4);
	run(&e, &r, CDB(0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0), rd, BS, NULL, 0);
	assert_memory_equal(rd, w + 8 * BS, BS); /* between the ranges: kept */
	/* UNMAP past the end */
	scsi_put_be64(param + 24, IMG_SIZE / BS - 2);
	run(&e, &r, CDB(0x42, 0, 0, 0, 0, 0, 0, 0, sizeof(param), 0), NULL, 0, param, sizeof(param));
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	/* WRITE SAME(16) with UNMAP and a zero block */
	memset(blk, 0, sizeof(blk));
	run(&e, &r, CDB(0x93, 0x08, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 32, 0, 0), NULL, 0, blk, BS);
	expect_good(&r);
	expect_zero_blocks(&e, 256, 32);
	/* WRITE SAME(10) with a pattern */
	fill(blk, BS, 77);
	run(&e, &r, CDB(0x41, 0, 0, 0, 0, 40, 0, 0, 4, 0), NULL, 0, blk, BS);
	expect_good(&r);
	run(&e, &r, CDB(0x28, 0, 0, 0, 0, 40, 0, 0, 4, 0), rd, sizeof(rd), NULL, 0);
	expect_good(&r);
	for (int i = 0; i < 4; i++)
		assert_memory_equal(rd + i * BS, blk, BS);
	/* WRITE SAME(16) with NDOB: zeroes, no buffer */
	run(&e, &r, CDB(0x93, 0x01, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 4, 0, 0), NULL, 0, NULL, 0);
	expect_good(&r);
	expect_zero_blocks(&e, 40, 4);
	/* WRITE SAME without its block */
	run(&e, &r, CDB(0x41, 0, 0, 0, 0, 40, 0, 0, 4, 0), NULL, 0, blk, 100);
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	env_close(&e);
}

static void unmap_and_write_same_raw(void **state) { unmap_and_write_same(false); }
static void unmap_and_write_same_qcow2(void **state) { unmap_and_write_same(true); }

static void read_only_and_out_of_range(void **state)
{
	struct scsi_disk_opts o = { .read_only = true, .discard = true };
	uint8_t b[BS] = { 0 }, param[24] = { 0, 22, 0, 16 };
	struct env e;
	struct scsi_req r;

	env_open(&e, false, &o);
	clear_ua(&e);
	run(&e, &r, CDB(0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0), NULL, 0, b, BS);
	expect_cc(&r, SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
	assert_int_equal(r.xfer, 0);
	assert_int_equal(r.residual, BS);
	run(&e, &r, CDB(0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0), NULL, 0, param, sizeof(param));
	expect_cc(&r, SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
	run(&e, &r, CDB(0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0), NULL, 0, b, BS);
	expect_cc(&r, SCSI_KEY_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
	run(&e, &r, CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), b, BS, NULL, 0);
	expect_good(&r);
	/* MODE SENSE says WP */
	run(&e, &r, CDB(0x1a, 0x08, 0x08, 0, 64, 0), b, 64, NULL, 0);
	expect_good(&r);
	assert_int_equal(b[2] & 0x80, 0x80);
	/* the last block is readable, the one after it is not */
	run(&e, &r, CDB(0x28, 0, 0, 0, 0x1f, 0xff, 0, 0, 1, 0), b, BS, NULL, 0);
	expect_good(&r);
	run(&e, &r, CDB(0x28, 0, 0, 0, 0x20, 0x00, 0, 0, 1, 0), b, BS, NULL, 0);
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	run(&e, &r, CDB(0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0),
	    b, BS, NULL, 0);
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	env_close(&e);
}

/* Buffers shorter or longer than the transfer: whole blocks move, the rest is reported. */
static void residuals(void **state)
{
	uint8_t w[8 * BS], rd[8 * BS + 100];
	struct env e;
	struct scsi_req r;

	env_open(&e, false, NULL);
	clear_ua(&e);
	fill(w, sizeof(w), 5);
	/* WRITE of 8 blocks with 5.5 blocks of data: 5 written, overflow reported */
	run(&e, &r, CDB(0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0), NULL, 0, w, 5 * BS + 256);
	expect_good(&r);
	assert_int_equal(r.xfer, 5 * BS);
	assert_int_equal(r.residual, 256);
	assert_int_equal(r.overflow, 3 * BS);
	/* READ of 2 blocks into a bigger buffer: underflow */
	memset(rd, 0xcc, sizeof(rd));
	run(&e, &r, CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0), rd, sizeof(rd), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 2 * BS);
	assert_int_equal(r.residual, sizeof(rd) - 2 * BS);
	assert_int_equal(r.overflow, 0);
	assert_memory_equal(rd, w, 2 * BS);
	assert_int_equal(rd[2 * BS], 0xcc); /* nothing past the transfer */
	/* READ into too small a buffer: whole blocks only */
	run(&e, &r, CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 4, 0), rd, BS + 10, NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, BS);
	assert_int_equal(r.overflow, 3 * BS);
	assert_int_equal(r.residual, 10);
	/* INQUIRY: allocation length under and over the buffer */
	run(&e, &r, CDB(0x12, 0, 0, 0, 5, 0), rd, 96, NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 5);
	assert_int_equal(r.residual, 91);
	assert_int_equal(r.overflow, 0);
	memset(rd, 0xcc, sizeof(rd));
	run(&e, &r, CDB(0x12, 0, 0, 0, 96, 0), rd, 10, NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 10);
	assert_int_equal(r.residual, 0);
	assert_int_equal(r.overflow, 74 - 10);
	assert_int_equal(rd[10], 0xcc);
	/* allocation length 0 and 1 */
	run(&e, &r, CDB(0x12, 0, 0, 0, 0, 0), rd, 96, NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 0);
	assert_int_equal(r.residual, 96);
	run(&e, &r, CDB(0x12, 0, 0, 0, 1, 0), rd, 96, NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 1);
	assert_int_equal(rd[0], 0);
	/* a no-data command with buffers: all of them left */
	run(&e, &r, CDB(0x00, 0, 0, 0, 0, 0), rd, 32, NULL, 0);
	expect_good(&r);
	assert_int_equal(r.residual, 32);
	env_close(&e);
}

static void verify(void **state)
{
	uint8_t w[4 * BS], c[4 * BS];
	struct env e;
	struct scsi_req r;
	struct scsi_sense_err s;

	env_open(&e, true, NULL);
	clear_ua(&e);
	fill(w, sizeof(w), 11);
	run(&e, &r, CDB(0x2a, 0, 0, 0, 0, 9, 0, 0, 4, 0), NULL, 0, w, sizeof(w));
	expect_good(&r);
	memcpy(c, w, sizeof(c));
	run(&e, &r, CDB(0x2f, 0x02, 0, 0, 0, 9, 0, 0, 4, 0), NULL, 0, c, sizeof(c));
	expect_good(&r);
	assert_int_equal(r.xfer, sizeof(c));
	c[1000] ^= 1;
	run(&e, &r, CDB(0x8f, 0x02, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0), NULL, 0, c,
	    sizeof(c));
	s = expect_cc(&r, SCSI_KEY_MISCOMPARE, SCSI_ASC_MISCOMPARE_VERIFY);
	assert_true(s.info_valid);
	assert_int_equal(s.info, 1000);
	run(&e, &r, CDB(0x2f, 0, 0, 0, 0, 9, 0, 0, 4, 0), NULL, 0, NULL, 0); /* BYTCHK 0 */
	expect_good(&r);
	env_close(&e);
}

/* ---------------------------------------------------------------------------------------------
 * Parameter data
 */

static void inquiry_standard_and_vpd(void **state)
{
	struct scsi_disk_opts o = { .serial = "SER-42", .wwn = 0x5000c50012345678ull,
				    .discard = true, .product = "TESTDISK", .revision = "2.5" };
	uint8_t b[256];
	struct env e;
	struct scsi_req r;

	env_open(&e, true, &o);
	/* INQUIRY does not report the power-on unit attention, nor clear it */
	run(&e, &r, CDB(0x12, 0, 0, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 74);
	assert_int_equal(b[0], 0x00); /* direct access block device */
	assert_int_equal(b[1], 0x00); /* not removable */
	assert_int_equal(b[2], 0x06); /* SPC-4 */
	assert_int_equal(b[3], 0x12); /* HISUP, format 2 */
	assert_int_equal(b[4], 74 - 5);
	assert_int_equal(b[7], 0x02); /* CMDQUE */
	assert_memory_equal(b + 8, "VIREO   ", 8);
	assert_memory_equal(b + 16, "TESTDISK        ", 16);
	assert_memory_equal(b + 32, "2.5 ", 4);
	assert_int_equal(scsi_be16(b + 58), 0x00a0);
	assert_int_equal(scsi_be16(b + 60), 0x0460);
	assert_int_equal(scsi_be16(b + 62), 0x04c0);
	assert_int_equal(scsi_disk_pending_ua(e.d), SCSI_UA_POWER_ON);

	/* 00h: the supported pages, in order */
	run(&e, &r, CDB(0x12, 1, 0x00, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(b[1], 0x00);
	assert_int_equal(scsi_be16(b + 2), 6);
	assert_memory_equal(b + 4, ((uint8_t[]){ 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 }), 6);
	/* 80h: the serial */
	run(&e, &r, CDB(0x12, 1, 0x80, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(b[1], 0x80);
	assert_int_equal(scsi_be16(b + 2), 6);
	assert_memory_equal(b + 4, "SER-42", 6);
	/* 83h: NAA from wwn=, then T10 vendor ID with the serial */
	run(&e, &r, CDB(0x12, 1, 0x83, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(b[1], 0x83);
	assert_int_equal(scsi_be16(b + 2), 12 + 4 + 8 + 6);
	assert_int_equal(b[4], 0x01);
	assert_int_equal(b[5], 0x03);
	assert_int_equal(b[7], 8);
	assert_int_equal(scsi_be64(b + 8), 0x5000c50012345678ull);
	assert_int_equal(b[16], 0x02);
	assert_int_equal(b[17], 0x01);
	assert_int_equal(b[19], 14);
	assert_memory_equal(b + 20, "VIREO   SER-42", 14);
	/* B0h: block limits */
	run(&e, &r, CDB(0x12, 1, 0xb0, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 64);
	assert_int_equal(scsi_be16(b + 2), 0x3c);
	assert_int_equal(b[4] & 1, 1);                                 /* WSNZ */
	assert_int_equal(scsi_be16(b + 6), 65536 / BS);                /* cluster granularity */
	assert_int_equal(scsi_be32(b + 8), SCSI_DISK_MAX_XFER / BS);
	assert_int_equal(scsi_be32(b + 20), SCSI_DISK_MAX_UNMAP / BS);
	assert_int_equal(scsi_be32(b + 24), SCSI_DISK_UNMAP_DESCS);
	assert_int_equal(scsi_be32(b + 28), 65536 / BS);
	assert_int_equal(scsi_be32(b + 32), 0x80000000u);
	assert_int_equal(scsi_be64(b + 36), SCSI_DISK_MAX_UNMAP / BS);
	/* B1h: non-rotating */
	run(&e, &r, CDB(0x12, 1, 0xb1, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be16(b + 4), 1);
	/* B2h: thin provisioning, UNMAP and WRITE SAME, reads zeroes */
	run(&e, &r, CDB(0x12, 1, 0xb2, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be16(b + 2), 4);
	assert_int_equal(b[5], 0xe4);
	assert_int_equal(b[6] & 7, 2);
	/* READ CAPACITY(10) and (16): LBPME, LBPRZ */
	clear_ua(&e);
	run(&e, &r, CDB(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), b, 8, NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be32(b), IMG_SIZE / BS - 1);
	assert_int_equal(scsi_be32(b + 4), BS);
	run(&e, &r, CDB(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0), b, 32, NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be64(b), IMG_SIZE / BS - 1);
	assert_int_equal(scsi_be32(b + 8), BS);
	assert_int_equal(b[14] & 0xc0, 0xc0);
	env_close(&e);
}

static void vpd_without_serial_wwn_or_discard(void **state)
{
	uint8_t b[256];
	struct env e;
	struct scsi_req r;

	env_open(&e, false, NULL);
	run(&e, &r, CDB(0x12, 1, 0x00, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be16(b + 2), 5); /* no B2h */
	run(&e, &r, CDB(0x12, 1, 0xb2, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB);
	run(&e, &r, CDB(0x12, 1, 0x80, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be16(b + 2), 0);
	/* a derived, locally assigned NAA; the T10 designator carries the product */
	run(&e, &r, CDB(0x12, 1, 0x83, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(b[8] >> 4, 3);
	assert_memory_equal(b + 20, "VIREO   VIREO HARDDISK", 22);
	/* the block limits page has no unmap limits */
	run(&e, &r, CDB(0x12, 1, 0xb0, 0, 255, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be32(b + 20), 0);
	assert_int_equal(scsi_be32(b + 24), 0);
	/* UNMAP is not a command of this LUN */
	clear_ua(&e);
	run(&e, &r, CDB(0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE);
	run(&e, &r, CDB(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0), b, 32, NULL, 0);
	assert_int_equal(b[14] & 0xc0, 0);
	env_close(&e);
}

/* MODE SENSE of the caching page, MODE SELECT turning WCE off, and back. */
static void mode_caching_round_trip(void **state)
{
	static uint8_t blk[BS];
	uint8_t b[128];
	struct env e;
	struct scsi_req r;

	env_open(&e, true, NULL);
	clear_ua(&e);
	/* MODE SENSE(6), with a block descriptor */
	run(&e, &r, CDB(0x1a, 0, 0x08, 0, 128, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 4 + 8 + 20);
	assert_int_equal(b[0], 4 + 8 + 20 - 1);
	assert_int_equal(b[2], 0x10); /* DPOFUA, not WP */
	assert_int_equal(b[3], 8);
	assert_int_equal(scsi_be32(b + 4), IMG_SIZE / BS);
	assert_int_equal(scsi_be32(b + 8) & 0xffffff, BS);
	assert_int_equal(b[12], 0x08);
	assert_int_equal(b[13], 0x12);
	assert_int_equal(b[14] & 0x04, 0x04); /* WCE */
	assert_true(scsi_disk_write_cache(e.d));
	/* changeable: only WCE */
	run(&e, &r, CDB(0x1a, 0x08, 0x48, 0, 128, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(b[3], 0);
	assert_int_equal(b[4 + 2], 0x04);
	assert_true(buf_is_zero(b + 4 + 3, 17));
	/* saved values: not supported */
	run(&e, &r, CDB(0x1a, 0x08, 0xc8, 0, 128, 0), b, sizeof(b), NULL, 0);
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_SAVING_NOT_SUPPORTED);
	/* MODE SELECT(10): the current page with WCE cleared */
	run(&e, &r, CDB(0x5a, 0x08, 0x08, 0, 0, 0, 0, 0, 28, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 28);
	assert_int_equal(scsi_be16(b), 26);
	{
		uint8_t list[28] = { 0 };

		memcpy(list + 8, b + 8, 20);
		list[8 + 2] &= (uint8_t)~0x04;
		run(&e, &r, CDB(0x55, 0x10, 0, 0, 0, 0, 0, 0, 28, 0), NULL, 0, list, sizeof(list));
		expect_good(&r);
		assert_int_equal(r.xfer, 28);
		assert_false(scsi_disk_write_cache(e.d));
		/* no unit attention for the initiator that changed it */
		assert_int_equal(scsi_disk_pending_ua(e.d), 0);
		/* writes still work (each is flushed now) */
		run(&e, &r, CDB(0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0), NULL, 0, blk, BS);
		expect_good(&r);
		assert_int_equal(r.xfer, BS);
		/* a fixed bit changed: refused, pointing at it */
		list[8 + 2] |= 0x01;
		run(&e, &r, CDB(0x55, 0x10, 0, 0, 0, 0, 0, 0, 28, 0), NULL, 0, list, sizeof(list));
		{
			struct scsi_sense_err s = expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST,
							       SCSI_ASC_INVALID_FIELD_PARAM);

			assert_int_equal(s.field, 10);
			assert_int_equal(s.bit, 0);
			assert_false(s.cd);
		}
		assert_false(scsi_disk_write_cache(e.d));
	}
	run(&e, &r, CDB(0x1a, 0x08, 0x08, 0, 128, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(b[4 + 2] & 0x04, 0);
	/* the default is still on */
	run(&e, &r, CDB(0x1a, 0x08, 0x88, 0, 128, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(b[4 + 2] & 0x04, 0x04);
	/* all pages, MODE SENSE(10) with a long LBA block descriptor */
	run(&e, &r, CDB(0x5a, 0x10, 0x3f, 0, 0, 0, 0, 0, 128, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 8 + 16 + 12 + 20 + 12);
	assert_int_equal(b[4] & 1, 1);
	assert_int_equal(scsi_be16(b + 6), 16);
	assert_int_equal(scsi_be64(b + 8), IMG_SIZE / BS);
	assert_int_equal(b[24], 0x01);
	assert_int_equal(b[36], 0x08);
	assert_int_equal(b[56], 0x0a);
	/* the control plane turns it back on: the initiator is told */
	scsi_disk_set_write_cache(e.d, true);
	run(&e, &r, CDB(0x00, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_cc(&r, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_MODE_PARAMS_CHANGED);
	run(&e, &r, CDB(0x00, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_good(&r);
	env_close(&e);
}

/* D_SENSE set through MODE SELECT: CHECK CONDITION sense comes in descriptor format. */
static void descriptor_sense_by_control_page(void **state)
{
	uint8_t list[4 + 12] = { 0 }, b[BS];
	struct scsi_mode m = { 0 };
	struct env e;
	struct scsi_req r;

	env_open(&e, false, NULL);
	clear_ua(&e);
	run(&e, &r, CDB(0x28, 0, 0, 0, 0x20, 0x00, 0, 0, 1, 0), b, BS, NULL, 0);
	assert_int_equal(r.sense[0], 0x70);
	scsi_mode_page(SCSI_MODE_PAGE_CONTROL, SCSI_PC_CURRENT, &m, &m, list + 4);
	list[4 + 2] |= 0x04;
	run(&e, &r, CDB(0x15, 0x10, 0, 0, sizeof(list), 0), NULL, 0, list, sizeof(list));
	expect_good(&r);
	run(&e, &r, CDB(0x28, 0, 0, 0, 0x20, 0x00, 0, 0, 1, 0), b, BS, NULL, 0);
	assert_int_equal(r.sense[0], 0x72);
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	/* REQUEST SENSE follows its own DESC bit */
	run(&e, &r, CDB(0x03, 0, 0, 0, 18, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 18);
	assert_int_equal(b[0], 0x70);
	assert_int_equal(b[2], 0);
	env_close(&e);
}

static void unit_attention_after_resize(void **state)
{
	uint8_t b[BS];
	struct env e;
	struct scsi_req r;

	env_open(&e, true, NULL);
	/* REQUEST SENSE returns the power-on condition as data and clears it */
	run(&e, &r, CDB(0x03, 0, 0, 0, 252, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 18);
	assert_int_equal(b[2], SCSI_KEY_UNIT_ATTENTION);
	assert_int_equal(b[12], 0x29);
	run(&e, &r, CDB(0x03, 0x01, 0, 0, 252, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 8);
	assert_int_equal(b[0], 0x72);
	assert_int_equal(b[1], SCSI_KEY_NO_SENSE);
	/* grow the node, as block_resize does with the queues drained */
	assert_int_equal(blockdev_truncate(e.bs, 2 * IMG_SIZE, NULL), 0);
	assert_false(scsi_disk_resized(e.d) == false);
	assert_false(scsi_disk_resized(e.d)); /* no change the second time */
	/* INQUIRY and REPORT LUNS leave it pending */
	run(&e, &r, CDB(0x12, 0, 0, 0, 36, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	run(&e, &r, CDB(0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	/* reported once to the next command, which is not executed */
	run(&e, &r, CDB(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0), b, 32, NULL, 0);
	expect_cc(&r, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_CAPACITY_CHANGED);
	assert_int_equal(r.xfer, 0);
	run(&e, &r, CDB(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0), b, 32, NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be64(b), 2 * IMG_SIZE / BS - 1);
	/* the new blocks are usable */
	run(&e, &r, CDB(0x28, 0, 0, 0, 0x3f, 0xff, 0, 0, 1, 0), b, BS, NULL, 0);
	expect_good(&r);
	/* a reset: power-on again, and it supersedes what else is pending */
	scsi_disk_unit_attention(e.d, SCSI_UA_CAPACITY | SCSI_UA_MODE_PARAMS);
	scsi_disk_reset(e.d);
	run(&e, &r, CDB(0x00, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_cc(&r, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_POWER_ON_RESET);
	run(&e, &r, CDB(0x00, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_good(&r);
	/* without a reset, several are reported one by one */
	scsi_disk_unit_attention(e.d, SCSI_UA_CAPACITY | SCSI_UA_MODE_PARAMS);
	run(&e, &r, CDB(0x00, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_cc(&r, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_CAPACITY_CHANGED);
	run(&e, &r, CDB(0xff, 0, 0, 0, 0, 0), NULL, 0, NULL, 0); /* even for an unknown opcode */
	expect_cc(&r, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_MODE_PARAMS_CHANGED);
	run(&e, &r, CDB(0xff, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	expect_cc(&r, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE);
	env_close(&e);
}

static size_t three_luns(void *opaque, uint16_t *luns, size_t max)
{
	static const uint16_t l[] = { 0, 1, 300 };

	(void)opaque;
	assert_true(max >= 3);
	memcpy(luns, l, sizeof(l));
	return 3;
}

static void report_luns_and_opcodes(void **state)
{
	struct scsi_disk_opts o = { .lun = 1, .list_luns = three_luns };
	uint8_t b[1024];
	struct env e;
	struct scsi_req r;

	env_open(&e, false, &o);
	run(&e, &r, CDB(0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 8 + 24);
	assert_int_equal(scsi_be32(b), 24);
	assert_true(buf_is_zero(b + 8, 8));
	assert_int_equal(b[17], 1);
	assert_int_equal(b[24], 0x41);
	assert_int_equal(b[25], 0x2c);
	/* well-known only: none; allocation length 4 cuts the header */
	run(&e, &r, CDB(0xa0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be32(b), 0);
	run(&e, &r, CDB(0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(r.xfer, 4);
	assert_int_equal(r.overflow, 0);
	/* REPORT SUPPORTED OPERATION CODES, all commands */
	clear_ua(&e);
	run(&e, &r, CDB(0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(scsi_be32(b) + 4, r.xfer);
	run(&e, &r, CDB(0xa3, 0x0c, 1, 0x2a, 0, 0, 0, 0, 0, 64, 0, 0), b, sizeof(b), NULL, 0);
	expect_good(&r);
	assert_int_equal(b[1] & 7, 3);
	/* START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL */
	run(&e, &r, CDB(0x1b, 0, 0, 0, 0x01, 0), NULL, 0, NULL, 0);
	expect_good(&r);
	run(&e, &r, CDB(0x1e, 0, 0, 0, 0x01, 0), NULL, 0, NULL, 0);
	expect_good(&r);
	env_close(&e);
}

/* ---------------------------------------------------------------------------------------------
 * The asynchronous path, on an iothread's engine, as the transport uses it
 */

struct async_ctx {
	struct scsi_disk *d;
	struct blockdev_queue *q;
	struct scsi_req r;
	struct iovec iov;
	bool inline_done;
	bool on_iothread;
	struct iothread *it;
	sem_t done;
};

static void async_done(struct scsi_req *r)
{
	struct async_ctx *c = container_of(r, struct async_ctx, r);

	c->on_iothread = iothread_is_current(c->it);
	sem_post(&c->done);
}

static int async_submit(void *arg)
{
	struct async_ctx *c = arg;

	c->r.done = async_done;
	c->inline_done = scsi_disk_submit(c->d, c->q, &c->r);
	if (c->inline_done)
		sem_post(&c->done);
	return 0;
}

static int async_queue_new(void *arg)
{
	struct async_ctx *c = arg;

	c->q = blockdev_queue_new(scsi_disk_node(c->d), c->it, NULL);
	return c->q ? 0 : -1;
}

static int async_queue_free(void *arg)
{
	struct async_ctx *c = arg;

	blockdev_queue_free(c->q);
	return 0;
}

static void async_run(struct async_ctx *c, const uint8_t *cdb, size_t len, void *in,
		      size_t inlen, void *out, size_t outlen)
{
	struct timespec ts;

	memset(&c->r, 0, sizeof(c->r));
	memcpy(c->r.cdb, cdb, len);
	c->r.cdb_len = (uint8_t)len;
	c->iov = (struct iovec){ in ? in : out, in ? inlen : outlen };
	if (in) {
		c->r.din = &c->iov;
		c->r.din_cnt = 1;
	} else if (out) {
		c->r.dout = &c->iov;
		c->r.dout_cnt = 1;
	}
	assert_int_equal(iothread_run_sync(c->it, async_submit, c), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	assert_int_equal(sem_timedwait(&c->done, &ts), 0);
}

static void async_through_the_engine(void **state)
{
	struct async_ctx c = { 0 };
	struct iothread_opts io = { .poll_max_ns = 0 };
	uint8_t w[8 * BS], rd[8 * BS];
	struct env e;

	env_open(&e, true, &(struct scsi_disk_opts){ .discard = true });
	c.d = e.d;
	sem_init(&c.done, 0, 0);
	c.it = iothread_create("scsi0", &io, NULL);
	assert_non_null(c.it);
	assert_int_equal(iothread_run_sync(c.it, async_queue_new, &c), 0);
	/* the unit attention completes inline */
	async_run(&c, CDB(0x00, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	assert_true(c.inline_done);
	assert_int_equal(c.r.status, SCSI_STATUS_CHECK_CONDITION);
	/* WRITE(10) with FUA, then READ(16): done() later, on the iothread */
	fill(w, sizeof(w), 21);
	async_run(&c, CDB(0x2a, 0x08, 0, 0, 0, 3, 0, 0, 8, 0), NULL, 0, w, sizeof(w));
	assert_false(c.inline_done);
	assert_true(c.on_iothread);
	expect_good(&c.r);
	assert_int_equal(c.r.xfer, sizeof(w));
	async_run(&c, CDB(0x88, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 8, 0, 0), rd, sizeof(rd),
		  NULL, 0);
	assert_false(c.inline_done);
	expect_good(&c.r);
	assert_memory_equal(rd, w, sizeof(w));
	/* WRITE SAME with UNMAP, SYNCHRONIZE CACHE */
	memset(w, 0, BS);
	async_run(&c, CDB(0x41, 0x08, 0, 0, 0, 3, 0, 0, 8, 0), NULL, 0, w, BS);
	expect_good(&c.r);
	async_run(&c, CDB(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), NULL, 0, NULL, 0);
	assert_false(c.inline_done);
	expect_good(&c.r);
	async_run(&c, CDB(0x28, 0, 0, 0, 0, 3, 0, 0, 8, 0), rd, sizeof(rd), NULL, 0);
	expect_good(&c.r);
	assert_true(buf_is_zero(rd, sizeof(rd)));
	assert_int_equal(iothread_run_sync(c.it, async_queue_free, &c), 0);
	iothread_destroy(c.it);
	sem_destroy(&c.done);
	env_close(&e);
}

static void create_refusals(void **state)
{
	struct env e;
	struct error *err = NULL;
	struct scsi_disk_opts o = { 0 };

	env_open(&e, false, NULL);
	o.bs = e.bs;
	o.block_size = 1000;
	assert_null(scsi_disk_create(&o, &err));
	assert_non_null(strstr(error_msg(err), "block size"));
	error_free(err);
	err = NULL;
	o.block_size = 4096;
	o.lun = 16384;
	assert_null(scsi_disk_create(&o, &err));
	error_free(err);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(write_read_back_raw),
		cmocka_unit_test(write_read_back_qcow2),
		cmocka_unit_test(unmap_and_write_same_raw),
		cmocka_unit_test(unmap_and_write_same_qcow2),
		cmocka_unit_test(read_only_and_out_of_range),
		cmocka_unit_test(residuals),
		cmocka_unit_test(verify),
		cmocka_unit_test(inquiry_standard_and_vpd),
		cmocka_unit_test(vpd_without_serial_wwn_or_discard),
		cmocka_unit_test(mode_caching_round_trip),
		cmocka_unit_test(descriptor_sense_by_control_page),
		cmocka_unit_test(unit_attention_after_resize),
		cmocka_unit_test(report_luns_and_opcodes),
		cmocka_unit_test(async_through_the_engine),
		cmocka_unit_test(create_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
