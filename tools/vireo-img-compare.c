/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img compare: do two images show the same guest content? qemu-img's semantics, messages
 * and walk: bytes past the end of the shorter image must be zero; a difference is reported at
 * the start of its 512-byte sector; -s (strict) also fails when the sizes differ or where the
 * block status differs (of the layer that provides each range: data, zero, allocated, at an
 * offset in a file, compressed, reaching the end). -F does not default to -f.
 * Exit 0 identical, 1 different (or a bad command line), 2 could not open, 3 block status
 * failed, 4 read failed.
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define CHUNK (1024 * 1024ULL)

/* qemu-img reports a difference at the start of the first 512-byte sector that differs. */
#define SECTOR 512ULL

/* Offset of the first sector of two buffers that differs, or @n if none. */
static uint64_t first_diff(const uint8_t *a, const uint8_t *b, uint64_t n)
{
	for (uint64_t i = 0; i < n; i += SECTOR)
		if (memcmp(a + i, b + i, MIN(SECTOR, n - i)))
			return i;
	return n;
}

/* Offset of the first sector of a buffer that is not zero, or @n if none. */
static uint64_t first_nonzero(const uint8_t *a, uint64_t n)
{
	for (uint64_t i = 0; i < n; i += SECTOR)
		if (!buf_is_zero(a + i, MIN(SECTOR, n - i)))
			return i;
	return n;
}

/* Reports a difference at @off (unless @quiet); returns 1, compare's "images differ". */
static int mismatch(bool quiet, uint64_t off)
{
	if (!quiet)
		printf("Content mismatch at offset %" PRIu64 "!\n", off);
	return 1;
}

/* A range that ends the image: qemu-img's block status says so (BDRV_BLOCK_EOF), and -s sees it */
#define STATUS_EOF (1u << 30)

/* The block status flags -s compares: qemu-img compare -s fails where they differ. */
#define STRICT_FLAGS                                                                  \
	(BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ZERO | BLOCKDEV_STATUS_ALLOCATED |   \
	 BLOCKDEV_STATUS_OFFSET | BLOCKDEV_STATUS_COMPRESSED | STATUS_EOF)

/*
 * Block status of what @bs shows from @off to its end (*pnum bytes of it): the flags of the
 * layer of its chain that provides it (zeroes past the end of a shorter backing file), and
 * STATUS_EOF when the range reaches the end. Returns the flags or -errno.
 */
static int chain_status(struct blockdev *bs, uint64_t off, uint64_t *pnum)
{
	uint64_t len = bs->size - off;
	int st;

	for (struct blockdev *cur = bs;; cur = cur->backing) {
		struct blockdev *file;
		uint64_t map;

		if (off >= cur->size) {
			*pnum = len;
			st = BLOCKDEV_STATUS_ZERO;
			break;
		}
		st = blockdev_block_status(cur, off, MIN(len, cur->size - off), pnum, &map, &file);
		if (st < 0)
			return st;
		if (!*pnum)
			return -EIO;
		if ((st & BLOCKDEV_STATUS_ALLOCATED) || !cur->backing)
			break;
		len = *pnum;
	}
	return st | (off + *pnum == bs->size ? STATUS_EOF : 0);
}

/* What failed, for the exit status (qemu-img's: 3 block status, 4 reading). */
struct failure {
	int status, err;
	const char *file;
};

static int fail(struct failure *f, int status, int err, struct blockdev *bs)
{
	*f = (struct failure){ .status = status, .err = -err, .file = bs->filename };
	return -1;
}

/* Is [off, off+n) of @bs zero? 0 yes, 1 no (message printed), -1 failed. */
static int check_zero(struct blockdev *bs, uint64_t off, uint64_t n, bool quiet, uint8_t *buf,
		      struct failure *f)
{
	int ret = blockdev_pread(bs, off, buf, n);
	uint64_t d;

	if (ret)
		return fail(f, 4, ret, bs);
	d = first_nonzero(buf, n);
	return d < n ? mismatch(quiet, off + d) : 0;
}

/*
 * 0 identical, 1 differ (message printed), -1 failed (*f says how). qemu-img's walk: by ranges
 * of one block status in both images; both zero: equal; both allocated: read and compared;
 * one allocated: it must read as zeroes; neither: equal (the same backing content).
 */
static int compare(struct blockdev *a, struct blockdev *b, bool strict, bool quiet, uint8_t *ba,
		   uint8_t *bb, struct img_progress *prog, struct failure *f)
{
	uint64_t common = MIN(a->size, b->size), off = 0;
	struct blockdev *longer = a->size > b->size ? a : b;
	int ret;

	while (off < common) {
		uint64_t pa, pb, n, d;
		int sa = chain_status(a, off, &pa), sb;
		bool alloc_a, alloc_b;

		if (sa < 0)
			return fail(f, 3, sa, a);
		sb = chain_status(b, off, &pb);
		if (sb < 0)
			return fail(f, 3, sb, b);
		n = MIN(pa, pb);
		if (strict && (sa & STRICT_FLAGS) != (sb & STRICT_FLAGS)) {
			if (!quiet)
				printf("Strict mode: Offset %" PRIu64 " block status mismatch!\n", off);
			return 1;
		}
		alloc_a = sa & BLOCKDEV_STATUS_ALLOCATED;
		alloc_b = sb & BLOCKDEV_STATUS_ALLOCATED;
		if ((sa & BLOCKDEV_STATUS_ZERO) && (sb & BLOCKDEV_STATUS_ZERO)) {
			/* both read as zeroes */
		} else if (alloc_a && alloc_b) {
			n = MIN(n, CHUNK);
			if ((ret = blockdev_pread(a, off, ba, n)))
				return fail(f, 4, ret, a);
			if ((ret = blockdev_pread(b, off, bb, n)))
				return fail(f, 4, ret, b);
			d = first_diff(ba, bb, n);
			if (d < n)
				return mismatch(quiet, off + d);
		} else if (alloc_a != alloc_b) {
			n = MIN(n, CHUNK);
			ret = check_zero(alloc_a ? a : b, off, n, quiet, ba, f);
			if (ret)
				return ret;
		}
		off += n;
		img_progress_update(prog, off);
	}
	if (a->size != b->size && !quiet)
		printf("Warning: Image size mismatch!\n");
	while (off < longer->size) {
		uint64_t n;
		int st = chain_status(longer, off, &n);

		if (st < 0)
			return fail(f, 3, st, longer);
		if ((st & BLOCKDEV_STATUS_ALLOCATED) && !(st & BLOCKDEV_STATUS_ZERO)) {
			n = MIN(n, CHUNK);
			ret = check_zero(longer, off, n, quiet, ba, f);
			if (ret)
				return ret;
		}
		off += n;
		img_progress_update(prog, off);
	}
	return 0;
}

int img_compare(int argc, char **argv)
{
	const char *fmt1 = NULL, *fmt2 = NULL;
	struct blockdev *a = NULL, *b = NULL;
	struct error *err = NULL;
	bool strict = false, quiet = false, progress = false;
	struct img_progress prog;
	struct failure failure;
	uint8_t *ba = NULL, *bb = NULL;
	int c, ret = 2;

	while ((c = getopt(argc, argv, "+f:F:sqpU")) != -1) {
		switch (c) {
		case 'f': fmt1 = optarg; break;
		case 'F': fmt2 = optarg; break;
		case 's': strict = true; break;
		case 'q': quiet = true; break;
		case 'p': progress = true; break;
		case 'U': break;
		default: return img_usage_error("compare: bad option"); /* 1, as qemu-img */
		}
	}
	if (optind + 2 != argc)
		return img_usage_error("compare: expecting two file names");
	a = img_open(argv[optind], fmt1, true, NULL, &err);
	if (a)
		b = img_open(argv[optind + 1], fmt2, true, NULL, &err);
	ba = malloc(CHUNK);
	bb = malloc(CHUNK);
	if (!a || !b || !ba || !bb) {
		if (!err)
			error_setg(&err, "out of memory");
		error_report_free(IMG_PROG, err);
		goto out;
	}
	if (strict && a->size != b->size) {
		if (!quiet)
			printf("Strict mode: Image size mismatch!\n");
		ret = 1;
		goto out;
	}
	img_progress_start(&prog, progress && !quiet, MAX(a->size, b->size));
	ret = compare(a, b, strict, quiet, ba, bb, &prog, &failure);
	img_progress_end(&prog, ret == 0);
	if (ret < 0) {
		fprintf(stderr, "%s: '%s': %s: %s\n", IMG_PROG, failure.file,
			failure.status == 3 ? "block status failed" : "read failed",
			strerror(failure.err));
		ret = failure.status;
	} else if (ret == 0 && !quiet) {
		printf("Images are identical.\n");
	}
out:
	free(ba);
	free(bb);
	blockdev_close(b);
	blockdev_close(a);
	return ret;
}
