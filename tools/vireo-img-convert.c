/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img convert: copy an image (its whole backing chain flattened) into a new one. */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/parse.h"
#include "common/util.h"

#define CHUNK (2 * 1024 * 1024ULL)

struct convert {
	struct blockdev *src, *dst;
	uint64_t sparse;   /* zero runs of this size are skipped (0: write everything) */
	bool existing;     /* -n: the target may hold data: write zeroes explicitly */
	bool progress;
	uint8_t *buf;
};

static bool all_zero(const uint8_t *p, uint64_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* Writes [off, off+n) from c->buf in as few requests as possible, skipping runs of zeroes of
 * at least c->sparse bytes (aligned to it). */
static int write_sparse(struct convert *c, uint64_t off, uint64_t n)
{
	uint64_t pos = 0, run = 0; /* [run, pos) holds data not written yet */

	if (!c->sparse)
		return blockdev_pwrite(c->dst, off, c->buf, n);
	while (pos < n) {
		uint64_t len = MIN(c->sparse - (off + pos) % c->sparse, n - pos);
		int ret = 0;

		if (all_zero(c->buf + pos, len)) {
			if (pos > run)
				ret = blockdev_pwrite(c->dst, off + run, c->buf + run, pos - run);
			if (!ret && c->existing)
				ret = blockdev_write_zeroes(c->dst, off + pos, len, 0);
			run = pos + len;
		}
		if (ret)
			return ret;
		pos += len;
	}
	return pos > run ? blockdev_pwrite(c->dst, off + run, c->buf + run, pos - run) : 0;
}

static int copy(struct convert *c)
{
	uint64_t size = c->src->size, off = 0, map;
	struct blockdev *file;
	int last = -1;

	while (off < size) {
		uint64_t pnum, n;
		int st = blockdev_block_status(c->src, off, MIN(size - off, CHUNK), &pnum, &map,
					       &file);
		int ret;

		if (st < 0)
			return st;
		n = MIN(pnum, CHUNK);
		if ((st & BLOCKDEV_STATUS_ZERO) && !(st & BLOCKDEV_STATUS_DATA)) {
			ret = c->existing ? blockdev_write_zeroes(c->dst, off, n, 0) : 0;
		} else {
			ret = blockdev_pread(c->src, off, c->buf, n);
			if (!ret)
				ret = write_sparse(c, off, n);
		}
		if (ret)
			return ret;
		off += n;
		if (c->progress && (int)(off * 100 / size) != last) {
			last = (int)(off * 100 / size);
			printf("    (%.2f/100%%)\r", off * 100.0 / size);
			fflush(stdout);
		}
	}
	if (c->progress)
		printf("    (100.00/100%%)\n");
	return blockdev_flush(c->dst);
}

int img_convert(int argc, char **argv)
{
	const char *fmt = NULL, *out_fmt = "raw";
	char *options = NULL;
	struct convert c = { .sparse = 4096 };
	struct error *err = NULL;
	bool quiet = false;
	int opt, ret = 1;

	while ((opt = getopt(argc, argv, "+f:O:o:S:pqnUW")) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'o': options = optarg; break;
		case 'p': c.progress = true; break;
		case 'q': quiet = true; break;
		case 'n': c.existing = true; break;
		case 'U': case 'W': break;
		case 'S':
			if (parse_size("-S", optarg, &c.sparse, &err)) {
				error_report_free(IMG_PROG, err);
				return 1;
			}
			break;
		default: return img_usage_error("convert: bad option");
		}
	}
	if (optind + 2 != argc)
		return img_usage_error("convert: expecting a source and a target file name");
	if (quiet)
		c.progress = false;
	c.src = img_open(argv[optind], fmt, true, NULL, &err);
	if (!c.src)
		goto fail;
	if (!c.existing && img_create_image(argv[optind + 1], out_fmt, options, c.src->size, true,
					    NULL, NULL, true, &err))
		goto fail;
	/* a new target: a crash leaves a useless file anyway, so skip the ordering flushes */
	c.dst = img_open(argv[optind + 1], out_fmt, false,
			 !strcmp(out_fmt, "qcow2") && !c.existing ? "metadata-barriers=off" : NULL,
			 &err);
	if (!c.dst)
		goto fail;
	if (c.dst->size < c.src->size) {
		error_setg(&err, "'%s' is smaller than '%s'", argv[optind + 1], argv[optind]);
		goto fail;
	}
	c.buf = malloc(CHUNK);
	if (!c.buf) {
		error_setg(&err, "out of memory");
		goto fail;
	}
	ret = copy(&c);
	if (ret) {
		error_setg_errno(&err, ret, "error while converting '%s' to '%s'", argv[optind],
				 argv[optind + 1]);
		ret = 1;
		goto fail;
	}
	goto out;
fail:
	error_report_free(IMG_PROG, err);
	ret = 1;
out:
	free(c.buf);
	blockdev_close(c.dst);
	blockdev_close(c.src);
	return ret;
}
