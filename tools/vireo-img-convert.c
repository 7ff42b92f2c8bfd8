/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img convert: copy an image (its whole backing chain flattened) into a new one, or with
 * -B into a new one over a backing file (only what the source's top layer holds is written),
 * with -c into compressed qcow2 clusters.
 */
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
	bool backing;      /* -B: the target has a backing file: zeroes must be written, and
			    * what the source's top layer does not hold is skipped */
	bool compress;     /* -c */
	bool sync_writes;  /* -t writethrough|directsync: flush after every write */
	bool no_flush;     /* -t unsafe: no flush at the end */
	bool progress;
	uint64_t done, last; /* progress */
	uint8_t *buf;
};

/* Zeroes written explicitly: a target that may hold data, or one over a backing file. */
static bool must_zero(const struct convert *c)
{
	return c->existing || c->backing;
}

static void progress(struct convert *c, uint64_t n)
{
	uint64_t size = c->src->size;

	c->done += n;
	if (c->progress && size && c->done * 100 / size != c->last) {
		c->last = c->done * 100 / size;
		printf("    (%.2f/100%%)\r", c->done * 100.0 / size);
		fflush(stdout);
	}
}

static int written(struct convert *c, int ret)
{
	return !ret && c->sync_writes ? blockdev_flush(c->dst) : ret;
}

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
			if (!ret && must_zero(c))
				ret = blockdev_write_zeroes(c->dst, off + pos, len, 0);
			run = pos + len;
		}
		if (ret)
			return ret;
		pos += len;
	}
	return pos > run ? blockdev_pwrite(c->dst, off + run, c->buf + run, pos - run) : 0;
}

/* -c: whole target clusters, each compressed unless it reads as zeroes. */
static int copy_compressed(struct convert *c)
{
	struct qcow2 *q = qcow2_of(c->dst);
	uint64_t size = c->src->size, cs = q->cluster_size, map;
	struct blockdev *file;

	for (uint64_t off = 0; off < size; off += cs) {
		uint64_t n = MIN(cs, size - off), pnum;
		int st = blockdev_block_status(c->src, off, n, &pnum, &map, &file), ret = 0;

		if (st < 0)
			return st;
		if (pnum == n && c->backing && !(st & BLOCKDEV_STATUS_ALLOCATED)) {
			/* the backing file provides it */
		} else if (pnum == n && (st & BLOCKDEV_STATUS_ZERO) && !(st & BLOCKDEV_STATUS_DATA)) {
			ret = must_zero(c) ? blockdev_write_zeroes(c->dst, off, n, 0) : 0;
		} else if (!(ret = blockdev_pread(c->src, off, c->buf, n))) {
			if (all_zero(c->buf, n))
				ret = must_zero(c) ? blockdev_write_zeroes(c->dst, off, n, 0) : 0;
			else
				ret = qcow2_write_compressed(q, off, c->buf, n);
		}
		if ((ret = written(c, ret)))
			return ret;
		progress(c, n);
	}
	return 0;
}

static int copy(struct convert *c)
{
	uint64_t size = c->src->size, off = 0, map;
	struct blockdev *file;

	while (off < size) {
		uint64_t pnum, n;
		int st = blockdev_block_status(c->src, off, MIN(size - off, CHUNK), &pnum, &map,
					       &file);
		int ret;

		if (st < 0)
			return st;
		n = MIN(pnum, CHUNK);
		if (c->backing && !(st & BLOCKDEV_STATUS_ALLOCATED)) {
			ret = 0; /* the target's backing file provides it */
		} else if ((st & BLOCKDEV_STATUS_ZERO) && !(st & BLOCKDEV_STATUS_DATA)) {
			ret = must_zero(c) ? blockdev_write_zeroes(c->dst, off, n, 0) : 0;
		} else {
			ret = blockdev_pread(c->src, off, c->buf, n);
			if (!ret)
				ret = write_sparse(c, off, n);
		}
		if ((ret = written(c, ret)))
			return ret;
		off += n;
		progress(c, n);
	}
	return 0;
}

/* qemu-img's cache modes: the block layer's cache= plus when to flush. */
static int cache_mode(const char *opt, const char *mode, bool target, struct convert *c,
		      const char **cache, struct error **errp)
{
	if (!strcmp(mode, "none") || !strcmp(mode, "directsync"))
		*cache = "none";
	else if (!strcmp(mode, "writeback") || !strcmp(mode, "writethrough") ||
		 !strcmp(mode, "unsafe"))
		*cache = "writeback";
	else {
		error_setg(errp, "%s: invalid cache mode '%s' (expected none, writeback, "
			   "writethrough, directsync or unsafe)", opt, mode);
		return -1;
	}
	if (target) {
		c->sync_writes = !strcmp(mode, "writethrough") || !strcmp(mode, "directsync");
		c->no_flush = !strcmp(mode, "unsafe");
	}
	return 0;
}

int img_convert(int argc, char **argv)
{
	const char *fmt = NULL, *out_fmt = "raw", *backing = NULL, *backing_fmt = NULL;
	const char *src_cache = "writeback", *dst_cache = "writeback";
	char *options = NULL, dst_opts[96];
	struct convert c = { .sparse = 4096, .last = UINT64_MAX };
	struct error *err = NULL;
	bool quiet = false, qcow2_out;
	uint64_t par;
	int opt, ret = 1;

	while ((opt = getopt(argc, argv, "+f:O:o:S:pqnUWcB:F:m:t:T:")) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'o': options = optarg; break;
		case 'p': c.progress = true; break;
		case 'q': quiet = true; break;
		case 'n': c.existing = true; break;
		case 'c': c.compress = true; break;
		case 'B': backing = optarg; break;
		case 'F': backing_fmt = optarg; break;
		/* -W allows writes out of order: this copy is sequential, which that includes */
		case 'U': case 'W': break;
		case 'S':
			if (parse_size("-S", optarg, &c.sparse, &err))
				goto fail;
			break;
		case 'm':
			if (parse_u64("-m", optarg, 1, 16, &par, &err))
				goto fail;
			if (par != 1) {
				error_setg(&err, "-m %s: parallel requests are not supported (only "
					   "-m 1: one request at a time)", optarg);
				goto fail;
			}
			break;
		case 't':
			if (cache_mode("-t", optarg, true, &c, &dst_cache, &err))
				goto fail;
			break;
		case 'T':
			if (cache_mode("-T", optarg, false, &c, &src_cache, &err))
				goto fail;
			break;
		default: return img_usage_error("convert: bad option");
		}
	}
	if (optind + 2 != argc)
		return img_usage_error("convert: expecting a source and a target file name");
	if (quiet)
		c.progress = false;
	qcow2_out = !strcmp(out_fmt, "qcow2");
	c.backing = backing != NULL;
	if (c.compress && !qcow2_out) {
		error_setg(&err, "-c: compression is not supported for format '%s' (only qcow2)",
			   out_fmt);
		goto fail;
	}
	if (backing && c.existing) {
		error_setg(&err, "-B: a backing file cannot be set on an existing target (-n)");
		goto fail;
	}
	if (backing_fmt && !backing) {
		error_setg(&err, "-F: a backing format needs a backing file (-B)");
		goto fail;
	}
	snprintf(dst_opts, sizeof(dst_opts), "cache=%s", src_cache);
	c.src = img_open(argv[optind], fmt, true, dst_opts, &err);
	if (!c.src)
		goto fail;
	if (!c.existing && img_create_image(argv[optind + 1], out_fmt, options, c.src->size, true,
					    backing, backing_fmt, true, &err))
		goto fail;
	/* a new target: a crash leaves a useless file anyway, so skip the ordering flushes */
	snprintf(dst_opts, sizeof(dst_opts), "cache=%s%s", dst_cache,
		 qcow2_out && !c.existing ? ",metadata-barriers=off" : "");
	c.dst = img_open(argv[optind + 1], out_fmt, false, dst_opts, &err);
	if (!c.dst)
		goto fail;
	if (c.compress && strcmp(blockdev_format_name(c.dst), "qcow2")) {
		error_setg(&err, "-c: '%s' is not a qcow2 image", argv[optind + 1]);
		goto fail;
	}
	if (c.dst->size < c.src->size) {
		error_setg(&err, "'%s' is smaller than '%s'", argv[optind + 1], argv[optind]);
		goto fail;
	}
	if (posix_memalign((void **)&c.buf, 4096, CHUNK)) {
		c.buf = NULL;
		error_setg(&err, "out of memory");
		goto fail;
	}
	ret = c.compress ? copy_compressed(&c) : copy(&c);
	if (!ret && !c.no_flush)
		ret = blockdev_flush(c.dst);
	if (c.progress)
		printf("    (100.00/100%%)\n");
	if (ret) {
		error_setg_errno(&err, -ret, "error while converting '%s' to '%s'", argv[optind],
				 argv[optind + 1]);
		goto fail;
	}
	ret = 0;
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
