/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img compare: do two images show the same guest content? qemu-img's semantics: bytes past
 * the end of the shorter image must be zero (unless -s, strict, where sizes must match too).
 * Exit 0 identical, 1 different, 2 error.
 */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define CHUNK (1024 * 1024ULL)

/* Offset of the first differing byte of two buffers, or @n if none. */
static uint64_t first_diff(const uint8_t *a, const uint8_t *b, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (a[i] != b[i])
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

/* Both zero for the next *pnum bytes, known without reading? */
static bool known_zero(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum)
{
	uint64_t map;
	struct blockdev *file;
	int st = blockdev_block_status(bs, off, len, pnum, &map, &file);

	if (st < 0) {
		*pnum = len;
		return false;
	}
	return (st & BLOCKDEV_STATUS_ZERO) && !(st & BLOCKDEV_STATUS_DATA) && !bs->backing;
}

/* 0 identical, 1 differ (message printed), -errno */
static int compare(struct blockdev *a, struct blockdev *b, bool quiet, uint8_t *ba, uint8_t *bb,
		   struct img_progress *prog)
{
	uint64_t common = MIN(a->size, b->size), off = 0;
	struct blockdev *longer = a->size > b->size ? a : b;
	int ret;

	while (off < common) {
		uint64_t n = MIN(common - off, CHUNK), pa, pb, d;

		if (known_zero(a, off, n, &pa) && known_zero(b, off, MIN(n, pa), &pb)) {
			off += MIN(pa, pb);
			img_progress_update(prog, off);
			continue;
		}
		if ((ret = blockdev_pread(a, off, ba, n)) || (ret = blockdev_pread(b, off, bb, n)))
			return ret;
		d = first_diff(ba, bb, n);
		if (d < n)
			return mismatch(quiet, off + d);
		off += n;
		img_progress_update(prog, off);
	}
	while (off < longer->size) {
		uint64_t n = MIN(longer->size - off, CHUNK), d;

		if ((ret = blockdev_pread(longer, off, ba, n)))
			return ret;
		if (!buf_is_zero(ba, n)) {
			for (d = 0; !ba[d]; d++)
				;
			return mismatch(quiet, off + d);
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
		default: img_usage_error("compare: bad option"); return 2;
		}
	}
	if (optind + 2 != argc) {
		img_usage_error("compare: expecting two file names");
		return 2;
	}
	if (!fmt2)
		fmt2 = fmt1;
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
	ret = compare(a, b, quiet, ba, bb, &prog);
	img_progress_end(&prog, ret == 0);
	if (ret < 0) {
		fprintf(stderr, "%s: error while comparing '%s' and '%s': %s\n", IMG_PROG,
			argv[optind], argv[optind + 1], strerror(-ret));
		ret = 2;
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
