/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The qcow2 driver through the block layer: writes and reads, COW from a backing file, zero
 * clusters, discard, the fast-path map(), the consistency check, hostile metadata refused or
 * failing requests (never crashing), lookups racing with allocation, and group commit (many
 * writes, one barrier: overlapping ones, a failing one, readers racing with it).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "common/util.h"

static char dir[] = "/tmp/vireo-qcow2-test.XXXXXX";
static char path[256], base[256];

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/t.qcow2", dir);
	snprintf(base, sizeof(base), "%s/base.raw", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	unlink(base);
	rmdir(dir);
	return 0;
}

static void create(uint64_t size, unsigned cluster_bits, bool ext_l2, const char *backing)
{
	struct qcow2_create_opts o = {
		.size = size,
		.cluster_bits = cluster_bits,
		.version = 3,
		.refcount_bits = 16,
		.extended_l2 = ext_l2,
		.backing_file = backing,
		.backing_fmt = backing ? "raw" : NULL,
	};
	struct error *err = NULL;

	if (qcow2_create(path, &o, &err))
		fail_msg("create: %s", error_msg(err));
}

static struct blockdev *open_img(bool ro)
{
	struct blockdev_opts o = { .format = "qcow2", .readonly = ro };
	struct error *err = NULL;
	struct blockdev *bs = blockdev_open(path, &o, &err);

	if (!bs)
		fail_msg("open: %s", error_msg(err));
	return bs;
}

static void expect_bytes(struct blockdev *bs, uint64_t off, uint64_t len, int pattern)
{
	uint8_t *buf = malloc(len);

	assert_int_equal(blockdev_pread(bs, off, buf, len), 0);
	for (uint64_t i = 0; i < len; i++)
		if (buf[i] != pattern)
			fail_msg("byte %llu is 0x%02x, expected 0x%02x",
				 (unsigned long long)(off + i), buf[i], pattern);
	free(buf);
}

static void write_pattern(struct blockdev *bs, uint64_t off, uint64_t len, int pattern)
{
	uint8_t *buf = malloc(len);

	memset(buf, pattern, len);
	assert_int_equal(blockdev_pwrite(bs, off, buf, len), 0);
	free(buf);
}

static void expect_clean(struct blockdev *bs)
{
	struct blockdev_check_result r;

	assert_int_equal(qcow2_check(bs, 0, &r, NULL), 0);
	assert_int_equal(r.corruptions, 0);
	assert_int_equal(r.leaks, 0);
}

static void writes_read_back_across_cluster_sizes_and_reopen(void **state)
{
	static const unsigned bits[] = { 9, 12, 16, 21 };

	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		struct blockdev *bs;

		create(8 << 20, bits[i], false, NULL);
		bs = open_img(false);
		write_pattern(bs, 1000, 5000, 0x11);
		write_pattern(bs, (3 << 20) - 7, 70000, 0x22);
		expect_bytes(bs, 0, 1000, 0);
		expect_bytes(bs, 1000, 5000, 0x11);
		expect_bytes(bs, (3 << 20) - 7, 70000, 0x22);
		expect_clean(bs);
		blockdev_close(bs);
		bs = open_img(true);
		expect_bytes(bs, 1000, 5000, 0x11);
		expect_bytes(bs, 6000, 10000, 0);
		expect_bytes(bs, (3 << 20) - 7, 70000, 0x22);
		blockdev_close(bs);
	}
}

static void partial_writes_copy_the_rest_of_the_cluster_from_the_backing_file(void **state)
{
	int fd = open(base, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	uint8_t b[65536];
	struct blockdev *bs;

	memset(b, 0x5a, sizeof(b));
	for (int i = 0; i < 32; i++)
		assert_int_equal(write(fd, b, sizeof(b)), (ssize_t)sizeof(b));
	close(fd);
	for (int ext = 0; ext <= 1; ext++) {
		create(4 << 20, 16, ext, "base.raw");
		bs = open_img(false);
		write_pattern(bs, 70000, 100, 0x77);
		expect_bytes(bs, 65536, 70000 - 65536, 0x5a);
		expect_bytes(bs, 70000, 100, 0x77);
		expect_bytes(bs, 70100, 131072 - 70100, 0x5a);
		/* past the end of the 2 MiB backing file: zeroes */
		write_pattern(bs, (3 << 20) + 10, 10, 0x78);
		expect_bytes(bs, 3 << 20, 10, 0);
		expect_bytes(bs, (3 << 20) + 20, 65536 - 20, 0);
		expect_clean(bs);
		blockdev_close(bs);
	}
	unlink(base);
}

/*
 * An image opened without its backing file (backing=null: an incremental backup's target)
 * still has one in its header: zeroes and discards written then must read as zeroes when it is
 * opened again with its backing file, not show the backing file's data through.
 */
static void zeroes_written_without_the_backing_file_stay_zeroes_over_it(void **state)
{
	int fd = open(base, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	struct blockdev_opts o = { .format = "qcow2", .no_backing = true };
	uint8_t b[65536];
	struct error *err = NULL;
	struct blockdev *bs;

	memset(b, 0x5a, sizeof(b));
	for (int i = 0; i < 32; i++)
		assert_int_equal(write(fd, b, sizeof(b)), (ssize_t)sizeof(b));
	close(fd);
	for (int ext = 0; ext <= 1; ext++) {
		create(4 << 20, 16, ext, "base.raw");
		bs = blockdev_open(path, &o, &err);
		if (!bs)
			fail_msg("open with backing=null: %s", error_msg(err));
		assert_null(bs->backing);
		assert_int_equal(blockdev_write_zeroes(bs, 0, 131072, BLOCKDEV_ZERO_MAY_UNMAP), 0);
		assert_int_equal(blockdev_write_zeroes(bs, 262144, 65536, 0), 0);
		assert_int_equal(blockdev_discard(bs, 393216, 131072), 0);
		assert_int_equal(blockdev_discard(bs, 600000, 1000), 0); /* part of a cluster */
		blockdev_close(bs);
		bs = open_img(true);
		assert_non_null(bs->backing);
		expect_bytes(bs, 0, 131072, 0);
		expect_bytes(bs, 131072, 131072, 0x5a);
		expect_bytes(bs, 262144, 65536, 0);
		expect_bytes(bs, 327680, 65536, 0x5a);
		expect_bytes(bs, 393216, 131072, 0);
		expect_bytes(bs, 600000, 1000, 0);
		/* (the rest of that cluster was copied from no backing file: zeroes too) */
		expect_bytes(bs, 655360, 65536, 0x5a);
		blockdev_close(bs);
	}
	unlink(base);
}

static const struct blockdev *protocol_of(const struct blockdev *n)
{
	return n->file ? n->file : n;
}

/* submit=eager|batched reaches the backing file's node too, not only the image's own file */
static void the_submit_mode_reaches_the_backing_file(void **state)
{
	static const char *const modes[] = { "eager", "batched" };
	int fd = open(base, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	create(1 << 20, 16, false, "base.raw");
	for (int i = 0; i < 2; i++) {
		struct blockdev_opts o = { 0 };
		struct error *err = NULL;
		struct blockdev *bs;

		assert_int_equal(blockdev_opts_set(&o, "format", "qcow2", &err), 0);
		assert_int_equal(blockdev_opts_set(&o, "submit", modes[i], &err), 0);
		bs = blockdev_open(path, &o, &err);
		blockdev_opts_free(&o);
		if (!bs)
			fail_msg("open: %s", error_msg(err));
		assert_non_null(bs->backing);
		assert_int_equal(protocol_of(bs)->submit_eager, i == 0);
		assert_int_equal(protocol_of(bs->backing)->submit_eager, i == 0);
		blockdev_close(bs);
	}
	unlink(base);
}

static void write_zeroes_and_discard_leave_zero_clusters_and_free_space(void **state)
{
	struct blockdev *bs;
	struct blockdev *file;
	uint64_t pnum, map;
	int st;

	create(4 << 20, 16, false, NULL);
	bs = open_img(false);
	write_pattern(bs, 0, 1 << 20, 0x33);
	assert_int_equal(blockdev_write_zeroes(bs, 65536, 131072, 0), 0);
	expect_bytes(bs, 65536, 131072, 0);
	expect_bytes(bs, 0, 65536, 0x33);
	st = blockdev_block_status(bs, 65536, 131072, &pnum, &map, &file);
	assert_true(st & BLOCKDEV_STATUS_ZERO);
	assert_true(st & BLOCKDEV_STATUS_ALLOCATED); /* kept preallocated (no MAY_UNMAP) */
	assert_int_equal(blockdev_discard(bs, 262144, 65536 * 3), 0);
	expect_bytes(bs, 262144, 65536 * 3, 0);
	assert_int_equal(blockdev_write_zeroes(bs, 512 * 1024, 65536, BLOCKDEV_ZERO_MAY_UNMAP), 0);
	expect_bytes(bs, 512 * 1024, 65536, 0);
	/* an unaligned write-zeroes falls back to writing zeroes */
	assert_int_equal(blockdev_write_zeroes(bs, 700000, 1000, 0), 0);
	expect_bytes(bs, 700000, 1000, 0);
	expect_bytes(bs, 701000, 1000, 0x33);
	expect_clean(bs);
	blockdev_close(bs);
}

static void partial_cluster_discard_reads_back_as_zeroes_without_allocating(void **state)
{
	struct blockdev *bs, *file;
	uint64_t pnum, map;
	int st;

	create(4 << 20, 16, false, NULL);
	bs = open_img(false);
	write_pattern(bs, 0, 1 << 20, 0x44);
	/* head and tail of a range, and a range inside one cluster */
	assert_int_equal(blockdev_discard(bs, 65536 - 4096, 65536 + 8192), 0);
	expect_bytes(bs, 0, 65536 - 4096, 0x44);
	expect_bytes(bs, 65536 - 4096, 65536 + 8192, 0);
	expect_bytes(bs, 2 * 65536 + 4096, 4096, 0x44);
	assert_int_equal(blockdev_discard(bs, 5 * 65536 + 512, 4096), 0);
	expect_bytes(bs, 5 * 65536, 512, 0x44);
	expect_bytes(bs, 5 * 65536 + 512, 4096, 0);
	expect_bytes(bs, 5 * 65536 + 4608, 65536 - 4608, 0x44);
	/* an unallocated cluster stays unallocated */
	assert_int_equal(blockdev_discard(bs, (2 << 20) + 4096, 4096), 0);
	st = blockdev_block_status(bs, 2 << 20, 65536, &pnum, &map, &file);
	assert_false(st & BLOCKDEV_STATUS_ALLOCATED);
	expect_clean(bs);
	blockdev_close(bs);
}

static void map_gives_data_extents_on_the_fast_path(void **state)
{
	struct blockdev_extent ext;
	struct blockdev *bs;

	create(4 << 20, 16, false, NULL);
	bs = open_img(false);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_READ, 0, 4096, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_ZERO);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, 0, 4096, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_SLOW); /* needs allocation */
	write_pattern(bs, 0, 131072, 0x44);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, 4096, 200000, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_DATA);
	assert_ptr_equal(ext.file, bs->file);
	assert_int_equal(ext.len, 131072 - 4096); /* the two clusters are contiguous */
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_READ, 131072, 4096, &ext), 0);
	assert_int_equal(ext.kind, BLOCKDEV_EXTENT_ZERO);
	blockdev_close(bs);
}

/* Overwrites 8 bytes of the image file. */
static void poke(uint64_t off, uint64_t v)
{
	int fd = open(path, O_WRONLY);
	uint8_t b[8];

	qcow2_put_be64(b, v);
	assert_int_equal(pwrite(fd, b, 8, (off_t)off), 8);
	close(fd);
}

static uint64_t peek(uint64_t off)
{
	int fd = open(path, O_RDONLY);
	uint8_t b[8];

	assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
	close(fd);
	return qcow2_be64(b);
}

static void a_hostile_l2_entry_fails_the_request_and_marks_the_image_corrupt(void **state)
{
	struct blockdev_opts o = { .format = "qcow2" };
	struct error *err = NULL;
	struct blockdev *bs;
	uint64_t l1, l2;
	uint8_t buf[512];

	create(4 << 20, 16, false, NULL);
	bs = open_img(false);
	write_pattern(bs, 0, 65536, 0x55);
	blockdev_close(bs);
	l1 = peek(40);
	l2 = peek(l1) & QCOW2_OFFSET_MASK;
	poke(l2, peek(l2) | (1ULL << 57)); /* a reserved bit */
	bs = open_img(false);
	assert_int_equal(blockdev_pread(bs, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(blockdev_pwrite(bs, 0, buf, sizeof(buf)), -EIO);
	blockdev_close(bs);
	assert_true(peek(72) & QCOW2_INCOMPAT_CORRUPT);
	assert_null(blockdev_open(path, &o, &err));
	assert_non_null(strstr(error_msg(err), "corrupt"));
	error_free(err);
	err = NULL;
	/* read-only still opens */
	bs = open_img(true);
	blockdev_close(bs);
}

static void hostile_tables_are_refused_at_open_naming_the_entry(void **state)
{
	struct blockdev_opts o = { .format = "qcow2", .readonly = true };
	struct error *err = NULL;
	struct blockdev *bs;
	uint64_t l1, rt;

	create(4 << 20, 16, false, NULL);
	bs = open_img(false);
	write_pattern(bs, 0, 512, 0x66);
	blockdev_close(bs);
	l1 = peek(40);
	poke(l1, (1ULL << 40) | QCOW2_OFLAG_COPIED); /* L2 table far past the end */
	assert_null(blockdev_open(path, &o, &err));
	assert_non_null(strstr(error_msg(err), "L1 entry 0"));
	error_free(err);
	err = NULL;
	create(4 << 20, 16, false, NULL);
	rt = peek(48);
	poke(rt, 12345);
	assert_null(blockdev_open(path, &o, &err));
	assert_non_null(strstr(error_msg(err), "refcount table entry 0"));
	error_free(err);
}

static void check_counts_and_repairs_a_leak(void **state)
{
	struct blockdev_check_result r;
	struct blockdev *bs;
	struct qcow2 *q;

	create(4 << 20, 16, false, NULL);
	bs = open_img(false);
	write_pattern(bs, 0, 65536, 0x12);
	q = qcow2_of(bs);
	pthread_mutex_lock(&q->lock);
	assert_true(qcow2_alloc_clusters(q, 2) > 0); /* allocated, never referenced */
	pthread_mutex_unlock(&q->lock);
	assert_int_equal(qcow2_check(bs, 0, &r, NULL), 0);
	assert_int_equal(r.leaks, 2);
	assert_int_equal(r.corruptions, 0);
	assert_int_equal(qcow2_check(bs, BLOCKDEV_FIX_LEAKS, &r, NULL), 0);
	assert_int_equal(r.leaks_fixed, 2);
	expect_clean(bs);
	blockdev_close(bs);
}

/*
 * Snapshot L1 tables past the end of the file: each is one corruption, and none is read (past
 * the end the file reads as zeroes, which reference nothing). Reading them cost a hostile image
 * of a few KiB 32 MiB per snapshot, and one at an offset no read can reach failed the check.
 */
static void check_counts_tables_past_the_end_of_the_file_without_reading_them(void **state)
{
	enum { FAR = 64 };
	uint8_t tab[(FAR + 1) * 40] = { 0 };
	struct blockdev_check_result r;
	struct blockdev *bs;
	uint64_t at;
	int fd;

	create(4 << 20, 16, false, NULL);
	fd = open(path, O_RDWR);
	at = ALIGN_UP((uint64_t)lseek(fd, 0, SEEK_END), 65536); /* a cluster of its own */
	for (int i = 0; i <= FAR; i++) {
		/* 1 TiB apart past the end, then one where no read can go; 32 MiB L1s */
		qcow2_put_be64(tab + 40 * i, i < FAR ? (uint64_t)(i + 1) << 40 : 1ULL << 63);
		qcow2_put_be32(tab + 40 * i + 8, QCOW2_MAX_L1_BYTES / 8);
	}
	assert_int_equal(pwrite(fd, tab, sizeof(tab), (off_t)at), sizeof(tab));
	assert_int_equal(ftruncate(fd, (off_t)at + 65536), 0);
	close(fd);
	poke(56, (peek(56) & ~0xffffffffULL) | (FAR + 1)); /* nb_snapshots */
	poke(64, at);					  /* snapshots_offset */
	bs = open_img(true);
	assert_int_equal(qcow2_check(bs, 0, &r, NULL), 0);
	/* each table past the end, the one out of range, the snapshot table with refcount 0 */
	assert_int_equal(r.corruptions, FAR + 1 + 1);
	assert_int_equal(r.leaks, 0);
	assert_int_equal(r.check_errors, 0);
	blockdev_close(bs);
}

static void growing_the_image_grows_l1_and_keeps_data(void **state)
{
	struct blockdev *bs;

	create(1 << 20, 9, false, NULL); /* 512-byte clusters: 64 entries per L2 table */
	bs = open_img(false);
	write_pattern(bs, 1000, 100, 0x21);
	assert_int_equal(blockdev_truncate(bs, 64 << 20, NULL), 0);
	assert_int_equal(bs->size, 64 << 20);
	write_pattern(bs, 60 << 20, 4096, 0x22);
	/* and enough data that the refcount table must grow too (18k allocations: without the
	 * ordering flushes, which this test does not observe, to keep it fast) */
	qcow2_of(bs)->ordered = false;
	write_pattern(bs, 10 << 20, 9 << 20, 0x23);
	expect_bytes(bs, 1000, 100, 0x21);
	expect_bytes(bs, 60 << 20, 4096, 0x22);
	expect_bytes(bs, 10 << 20, 9 << 20, 0x23);
	expect_clean(bs);
	blockdev_close(bs);
	bs = open_img(true);
	assert_int_equal(bs->size, 64 << 20);
	expect_bytes(bs, 60 << 20, 4096, 0x22);
	expect_bytes(bs, 10 << 20, 9 << 20, 0x23);
	blockdev_close(bs);
}

static void a_tiny_l2_cache_evicts_and_stays_correct(void **state)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *bs;

	create(64 << 20, 12, false, NULL); /* a 4 KiB slice covers 2 MiB */
	assert_int_equal(blockdev_opts_set(&o, "format", "qcow2", NULL), 0);
	assert_int_equal(blockdev_opts_set(&o, "l2-cache-size", "4k", NULL), 0);
	bs = blockdev_open(path, &o, &err);
	if (!bs)
		fail_msg("open: %s", error_msg(err));
	assert_int_equal(qcow2_of(bs)->cache.nr_sets, 1); /* 8 slots for 32 slices */
	for (uint64_t off = 0; off < (64 << 20); off += 1 << 20)
		write_pattern(bs, off + 100, 10, (int)(off >> 20) + 1);
	for (int pass = 0; pass < 2; pass++)
		for (uint64_t off = 0; off < (64 << 20); off += 1 << 20) {
			expect_bytes(bs, off + 100, 10, (int)(off >> 20) + 1);
			expect_bytes(bs, off + 110, 100, 0);
		}
	assert_true(atomic_load(&qcow2_of(bs)->cache.misses) > 64);
	expect_clean(bs);
	blockdev_close(bs);
	blockdev_opts_free(&o);
	assert_int_equal(blockdev_opts_set(&o, "format", "qcow2", NULL), 0);
	assert_int_equal(blockdev_opts_set(&o, "l2-cache-size", "lots", NULL), 0);
	assert_null(blockdev_open(path, &o, &err));
	assert_non_null(strstr(error_msg(err), "l2-cache-size"));
	error_free(err);
	blockdev_opts_free(&o);
}

struct race {
	struct blockdev *bs;
	atomic_bool stop;
	atomic_ulong checked, bad, lookups;
};

#define RACE_CLUSTERS 512

static void *race_reader(void *arg)
{
	struct race *r = arg;
	unsigned seed = (unsigned)(uintptr_t)pthread_self();
	uint8_t buf[512];

	while (!atomic_load(&r->stop)) {
		uint64_t c = (uint64_t)(rand_r(&seed) % RACE_CLUSTERS), off = c * 4096 + 1024;
		struct blockdev_extent ext;
		uint8_t want = (uint8_t)(c % 251 + 1);

		atomic_fetch_add(&r->lookups, 1);
		if (blockdev_map(r->bs, BLOCKDEV_OP_READ, off, sizeof(buf), &ext))
			atomic_fetch_add(&r->bad, 1);
		else if (ext.kind == BLOCKDEV_EXTENT_DATA) {
			/* a published mapping: the data was written before it */
			if (blockdev_pread(ext.file, ext.host_offset, buf, sizeof(buf)) ||
			    buf[0] != want || buf[511] != want)
				atomic_fetch_add(&r->bad, 1);
			atomic_fetch_add(&r->checked, 1);
		} else if (blockdev_pread(r->bs, off, buf, sizeof(buf)) ||
			   (buf[0] != 0 && buf[0] != want) || buf[0] != buf[511]) {
			atomic_fetch_add(&r->bad, 1);
		}
	}
	return NULL;
}

static void lookups_race_with_allocation_and_always_see_the_right_cluster(void **state)
{
	static struct race r;
	pthread_t t[3];
	uint8_t buf[4096];

	create(RACE_CLUSTERS * 4096, 12, false, NULL);
	r.bs = open_img(false);
	qcow2_of(r.bs)->ordered = false;
	atomic_store(&r.stop, false);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_reader, &r), 0);
	for (uint64_t c = 0; c < RACE_CLUSTERS; c++) {
		uint64_t pick = (c * 211) % RACE_CLUSTERS; /* a scattered order */

		memset(buf, (int)(pick % 251 + 1), sizeof(buf));
		assert_int_equal(blockdev_pwrite(r.bs, pick * 4096, buf, sizeof(buf)), 0);
	}
	atomic_store(&r.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&r.bad), 0);
	expect_clean(r.bs);
	blockdev_close(r.bs);
}

/* The mapping of the byte at @off, looked up under the allocation lock. */
static struct qcow2_run lookup_at(struct blockdev *bs, uint64_t off)
{
	struct qcow2_run run;
	struct qcow2 *q = qcow2_of(bs);
	int ret;

	pthread_mutex_lock(&q->lock);
	ret = qcow2_lookup(q, off, 1, true, &run);
	pthread_mutex_unlock(&q->lock);
	assert_int_equal(ret, 0);
	return run;
}

static bool unallocated(struct blockdev *bs, uint64_t off)
{
	return lookup_at(bs, off).kind == QCOW2_UNALLOCATED;
}

static uint64_t host_of(struct blockdev *bs, uint64_t off)
{
	struct qcow2_run run = lookup_at(bs, off);

	assert_int_equal(run.kind, QCOW2_DATA);
	return run.host;
}

static void writes_over_runs_of_fresh_clusters_land_contiguous_read_back_and_leak_nothing(void **state)
{
	const uint64_t cs = 64 * 1024;
	struct blockdev *bs;
	uint64_t first;

	create(64ULL << 20, 16, false, NULL);
	bs = open_img(false);
	write_pattern(bs, cs, 8 * cs, 0x5a);
	/* a lone cluster in between, then a run that starts on a fresh cluster after it */
	write_pattern(bs, 20 * cs, cs, 0x11);
	write_pattern(bs, 21 * cs, 3 * cs + 512, 0x22);
	first = host_of(bs, cs);
	for (uint64_t i = 1; i < 8; i++)
		assert_int_equal(host_of(bs, (1 + i) * cs), first + i * cs);
	first = host_of(bs, 21 * cs);
	for (uint64_t i = 1; i < 4; i++)
		assert_int_equal(host_of(bs, (21 + i) * cs), first + i * cs);
	expect_bytes(bs, cs, 8 * cs, 0x5a);
	expect_bytes(bs, 20 * cs, cs, 0x11);
	expect_bytes(bs, 21 * cs, 3 * cs + 512, 0x22);
	expect_bytes(bs, 24 * cs + 512, cs - 512, 0);
	expect_clean(bs);
	blockdev_close(bs);
}

static void group_commits_share_one_pool_of_helper_threads(void **state)
{
	enum { C = 65536, N = 8 };
	uint8_t *buf = malloc(N * C);
	struct iovec v[N];
	struct blockdev_write w[N];
	struct qcow2_pool *pool;
	struct blockdev *bs;

	create(4 << 20, 16, false, NULL);
	bs = open_img(false);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++) { /* partial writes to fresh clusters: deferred data */
			memset(buf + i * C, 0x40 + round * N + i, C);
			v[i] = (struct iovec){ buf + i * C, 4096 };
			w[i] = (struct blockdev_write){ (uint64_t)(round * N + i) * C, &v[i], 1, 1 };
		}
		qcow2_write_group(qcow2_of(bs), w, N);
		for (int i = 0; i < N; i++)
			assert_int_equal(w[i].ret, 0);
		if (round == 0)
			pool = qcow2_of(bs)->pool;
	}
	/* started by the first group with several data writes, kept for the next */
	assert_non_null(pool);
	assert_ptr_equal(qcow2_of(bs)->pool, pool);
	for (int i = 0; i < 2 * N; i++) {
		expect_bytes(bs, (uint64_t)i * C, 4096, 0x40 + i);
		expect_bytes(bs, (uint64_t)i * C + 4096, C - 4096, 0);
	}
	expect_clean(bs);
	blockdev_close(bs);
	free(buf);
}

static void a_group_publishes_overlapping_writes_once_and_nothing_of_a_failed_one(void **state)
{
	enum { C = 65536 };
	uint8_t *p1 = malloc(C), *p2 = malloc(C), *p3 = malloc(C);
	/* the failing write's second cluster comes from memory the kernel cannot read: EFAULT
	 * after its first cluster was allocated, written and staged */
	uint8_t *bad = mmap(NULL, C, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec v0 = { p1, 4096 }, v1 = { p2, 4096 }, v2[2] = { { p3, C }, { bad, C } };
	struct iovec v3 = { p3, 4096 }, v4 = { p1, 8192 }, v5[2] = { { p1, 2048 }, { p2, 2048 } };
	struct blockdev_write w[] = {
		{ 0, &v0, 1, 1 },            /* cluster 0, block 0: allocates it */
		{ 8192, &v1, 1, 1 },         /* cluster 0, block 2: must see the staged entry */
		{ 4 * C, v2, 2, 1 },         /* clusters 4 and 5: fails */
		{ 8 * C + 512, &v3, 1, 1 },  /* cluster 8 */
		{ (4 << 20) - 4096, &v4, 1, 1 }, /* past the end: fails */
		{ 12 * C, v5, 2, 1 },        /* cluster 12, twice in one request */
	};
	static const int want[] = { 0, 0, -EFAULT, 0, -EINVAL, 0 };
	struct blockdev *bs;

	assert_ptr_not_equal(bad, MAP_FAILED);
	memset(p1, 0x31, C);
	memset(p2, 0x32, C);
	memset(p3, 0x33, C);
	create(4 << 20, 16, false, NULL);
	bs = open_img(false);
	qcow2_write_group(qcow2_of(bs), w, ARRAY_SIZE(w));
	for (size_t i = 0; i < ARRAY_SIZE(w); i++)
		if (w[i].ret != want[i])
			fail_msg("write %zu: %d, expected %d", i, w[i].ret, want[i]);
	assert_int_equal(qcow2_of(bs)->nr_pending, 0);
	assert_false(qcow2_of(bs)->grouping);
	expect_bytes(bs, 0, 4096, 0x31);
	expect_bytes(bs, 4096, 4096, 0);
	expect_bytes(bs, 8192, 4096, 0x32);
	expect_bytes(bs, 12288, C - 12288, 0);
	assert_true(unallocated(bs, 4 * C));
	assert_true(unallocated(bs, 5 * C));
	expect_bytes(bs, 8 * C, 512, 0);
	expect_bytes(bs, 8 * C + 512, 4096, 0x33);
	expect_bytes(bs, 12 * C, 2048, 0x31);
	expect_bytes(bs, 12 * C + 2048, 2048, 0x32);
	expect_bytes(bs, 12 * C + 4096, C - 4096, 0);
	expect_clean(bs); /* the failed write's clusters were given back, not leaked */
	blockdev_close(bs);
	/* and the same from the file, reopened */
	bs = open_img(true);
	expect_bytes(bs, 0, 4096, 0x31);
	expect_bytes(bs, 8192, 4096, 0x32);
	expect_bytes(bs, 4 * C, 2 * C, 0);
	blockdev_close(bs);
	munmap(bad, C);
	free(p1);
	free(p2);
	free(p3);
}

/* Groups of writes (each cluster written twice in its group) while readers map on other
 * threads: a published mapping always finds its data already there. */
static void lookups_race_with_group_commits_and_never_see_a_staged_entry(void **state)
{
	enum { G = 16 };
	static struct race r;
	uint8_t *buf = malloc(RACE_CLUSTERS * 4096);
	struct blockdev_write w[2 * G];
	struct iovec v[2 * G];
	pthread_t t[3];

	create(RACE_CLUSTERS * 4096, 12, false, NULL);
	r.bs = open_img(false);
	atomic_store(&r.stop, false);
	atomic_store(&r.bad, 0);
	atomic_store(&r.lookups, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_reader, &r), 0);
	/* the readers run before the first group: without barriers (lazy publication) the
	 * groups are over in a moment */
	for (int i = 0; i < 5000 && atomic_load(&r.lookups) < 3; i++)
		usleep(1000);
	for (uint64_t c = 0; c < RACE_CLUSTERS; c += G) {
		for (int i = 0; i < G; i++) {
			uint64_t pick = ((c + (uint64_t)i) * 211) % RACE_CLUSTERS;
			uint8_t *p = buf + pick * 4096;

			memset(p, (int)(pick % 251 + 1), 4096);
			/* the first half, then (later in the group) the whole cluster */
			v[i] = (struct iovec){ p, 2048 };
			v[G + i] = (struct iovec){ p, 4096 };
			w[i] = (struct blockdev_write){ pick * 4096, &v[i], 1, 1 };
			w[G + i] = (struct blockdev_write){ pick * 4096, &v[G + i], 1, 1 };
		}
		qcow2_write_group(qcow2_of(r.bs), w, 2 * G);
		for (int i = 0; i < 2 * G; i++)
			assert_int_equal(w[i].ret, 0);
	}
	for (int i = 0; i < 5000 && !atomic_load(&r.checked); i++)
		usleep(1000); /* a mapping checked, at least after the last group */
	atomic_store(&r.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&r.bad), 0);
	assert_true(atomic_load(&r.checked) > 0);
	for (uint64_t c = 0; c < RACE_CLUSTERS; c++)
		expect_bytes(r.bs, c * 4096, 4096, (int)(c % 251 + 1));
	expect_clean(r.bs);
	blockdev_close(r.bs);
	free(buf);
}

/* Groups allocating ~33k 512-byte clusters, with refcount changes held back: first with new L2
 * tables and refcount blocks (each one a barrier, which writes them), then again after a
 * discard and a reopen, when the freed clusters are reused: the L2 tables and refcount blocks
 * exist, and nothing writes the changes before a commit but the eviction of a dirty block
 * from the 4-slot refcount block cache. Every refcount must still be exact. */
static void a_group_over_many_refcount_blocks_keeps_refcounts_exact(void **state)
{
	enum { N = 256, LEN = 65536 };
	uint8_t *buf = malloc((size_t)N * LEN);
	struct blockdev_write w[N];
	struct iovec v[N];
	struct blockdev *bs;

	create(64 << 20, 9, false, NULL);
	bs = open_img(false);
	for (int i = 0; i < N; i++) {
		uint64_t off = (uint64_t)((i * 97) % N) * 256 * 1024; /* scattered: new L2 tables */

		memset(buf + (size_t)i * LEN, i % 255 + 1, LEN);
		v[i] = (struct iovec){ buf + (size_t)i * LEN, LEN };
		w[i] = (struct blockdev_write){ off, &v[i], 1, 0 };
	}
	for (int pass = 0; pass < 2; pass++) {
		if (pass) {
			assert_int_equal(blockdev_discard(bs, 0, 64 << 20), 0);
			blockdev_close(bs);
			bs = open_img(false);
		}
		qcow2_write_group(qcow2_of(bs), w, N);
		for (int i = 0; i < N; i++)
			assert_int_equal(w[i].ret, 0);
		for (int i = 0; i < N; i++)
			expect_bytes(bs, w[i].offset, LEN, i % 255 + 1);
		expect_clean(bs);
	}
	blockdev_close(bs);
	bs = open_img(true);
	expect_clean(bs);
	expect_bytes(bs, w[N - 1].offset, LEN, (N - 1) % 255 + 1);
	blockdev_close(bs);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(writes_read_back_across_cluster_sizes_and_reopen),
		cmocka_unit_test(partial_writes_copy_the_rest_of_the_cluster_from_the_backing_file),
		cmocka_unit_test(the_submit_mode_reaches_the_backing_file),
		cmocka_unit_test(write_zeroes_and_discard_leave_zero_clusters_and_free_space),
		cmocka_unit_test(zeroes_written_without_the_backing_file_stay_zeroes_over_it),
		cmocka_unit_test(partial_cluster_discard_reads_back_as_zeroes_without_allocating),
		cmocka_unit_test(map_gives_data_extents_on_the_fast_path),
		cmocka_unit_test(a_hostile_l2_entry_fails_the_request_and_marks_the_image_corrupt),
		cmocka_unit_test(hostile_tables_are_refused_at_open_naming_the_entry),
		cmocka_unit_test(check_counts_and_repairs_a_leak),
		cmocka_unit_test(check_counts_tables_past_the_end_of_the_file_without_reading_them),
		cmocka_unit_test(growing_the_image_grows_l1_and_keeps_data),
		cmocka_unit_test(a_tiny_l2_cache_evicts_and_stays_correct),
		cmocka_unit_test(lookups_race_with_allocation_and_always_see_the_right_cluster),
		cmocka_unit_test(writes_over_runs_of_fresh_clusters_land_contiguous_read_back_and_leak_nothing),
		cmocka_unit_test(group_commits_share_one_pool_of_helper_threads),
		cmocka_unit_test(
			a_group_publishes_overlapping_writes_once_and_nothing_of_a_failed_one),
		cmocka_unit_test(lookups_race_with_group_commits_and_never_see_a_staged_entry),
		cmocka_unit_test(a_group_over_many_refcount_blocks_keeps_refcounts_exact),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
