/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img convert: copy an image (its whole backing chain flattened) into a new one, or with
 * -B into a new one over a backing file (only what the source's top layer holds is written),
 * with -c into compressed qcow2 clusters.
 */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
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

/* Writes [off, off+n) from @buf in as few requests as possible, skipping runs of zeroes of
 * at least c->sparse bytes (aligned to it). */
static int write_sparse(struct convert *c, const uint8_t *buf, uint64_t off, uint64_t n)
{
	uint64_t pos = 0, run = 0; /* [run, pos) holds data not written yet */

	if (!c->sparse)
		return blockdev_pwrite(c->dst, off, buf, n);
	while (pos < n) {
		uint64_t len = MIN(c->sparse - (off + pos) % c->sparse, n - pos);
		int ret = 0;

		if (all_zero(buf + pos, len)) {
			if (pos > run)
				ret = blockdev_pwrite(c->dst, off + run, buf + run, pos - run);
			if (!ret && must_zero(c))
				ret = blockdev_write_zeroes(c->dst, off + pos, len, 0);
			run = pos + len;
		}
		if (ret)
			return ret;
		pos += len;
	}
	return pos > run ? blockdev_pwrite(c->dst, off + run, buf + run, pos - run) : 0;
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

/*
 * The plain copy is a two-stage pipeline, so that reading the source overlaps writing the
 * target: a reader thread asks the source's block status, reads data into the next free slot
 * and publishes it (head); the main thread takes slots in order (tail), writes them and hands
 * them back. A slot between tail and head belongs to the main thread, any other to the reader;
 * head, tail, stop and eof change only under p->lock. The block layer's synchronous calls may
 * be made from any thread (blockdev.h).
 */
#define SLOTS 4

struct slot {
	uint64_t off, n;
	int st;  /* block status flags, or -errno */
	uint8_t *buf;
};

struct pipeline {
	struct convert *c;
	struct slot slot[SLOTS];
	unsigned head, tail;
	bool stop, eof;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/* What the target needs for a source range of status @st. */
enum action { SKIP, ZERO, DATA };

static enum action action_of(const struct convert *c, int st)
{
	if (c->backing && !(st & BLOCKDEV_STATUS_ALLOCATED))
		return SKIP; /* the target's backing file provides it */
	if ((st & BLOCKDEV_STATUS_ZERO) && !(st & BLOCKDEV_STATUS_DATA))
		return must_zero(c) ? ZERO : SKIP;
	return DATA;
}

static void *reader(void *opaque)
{
	struct pipeline *p = opaque;
	struct convert *c = p->c;
	uint64_t size = c->src->size, off = 0, map;
	struct blockdev *file;

	while (off < size) {
		struct slot *s;
		uint64_t pnum;

		pthread_mutex_lock(&p->lock);
		while (p->head - p->tail == SLOTS && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		s = &p->slot[p->head % SLOTS];
		pthread_mutex_unlock(&p->lock);
		s->off = off;
		s->st = blockdev_block_status(c->src, off, MIN(size - off, CHUNK), &pnum, &map,
					      &file);
		s->n = s->st < 0 ? 0 : MIN(pnum, CHUNK);
		if (s->st >= 0 && action_of(c, s->st) == DATA) {
			int ret = blockdev_pread(c->src, off, s->buf, s->n);

			if (ret)
				s->st = ret;
		}
		off += s->n;
		pthread_mutex_lock(&p->lock);
		p->head++;
		if (s->st < 0)
			off = size; /* the error ends the copy */
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_lock(&p->lock);
	p->eof = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static int write_slot(struct convert *c, const struct slot *s)
{
	int ret = 0;

	if (s->st < 0)
		return s->st;
	switch (action_of(c, s->st)) {
	case SKIP: break;
	case ZERO: ret = blockdev_write_zeroes(c->dst, s->off, s->n, 0); break;
	case DATA: ret = write_sparse(c, s->buf, s->off, s->n); break;
	}
	return written(c, ret);
}

static int copy(struct convert *c)
{
	struct pipeline p = { .c = c };
	pthread_t t;
	int ret = 0;

	for (unsigned i = 0; i < SLOTS; i++)
		p.slot[i].buf = c->buf + i * CHUNK;
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	if ((ret = -pthread_create(&t, NULL, reader, &p)))
		goto out;
	pthread_mutex_lock(&p.lock);
	for (;;) {
		struct slot *s;

		while (p.tail == p.head && !p.eof)
			pthread_cond_wait(&p.cond, &p.lock);
		if (p.tail == p.head)
			break;
		s = &p.slot[p.tail % SLOTS];
		pthread_mutex_unlock(&p.lock);
		ret = write_slot(c, s);
		if (!ret)
			progress(c, s->n);
		pthread_mutex_lock(&p.lock);
		p.tail++;
		if (ret)
			p.stop = true;
		pthread_cond_broadcast(&p.cond);
		if (ret)
			break;
	}
	pthread_mutex_unlock(&p.lock);
	pthread_join(t, NULL);
out:
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	return ret;
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
	/* -t unsafe is qemu-img convert's default: the page cache, no flush at the end */
	struct convert c = { .sparse = 4096, .last = UINT64_MAX, .no_flush = true };
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
	snprintf(dst_opts, sizeof(dst_opts), "cache=%s%s%s", dst_cache,
		 qcow2_out && !c.existing ? ",metadata-barriers=off" : "",
		 qcow2_out && c.no_flush ? ",close-flush=off" : "");
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
	if (posix_memalign((void **)&c.buf, 4096, SLOTS * CHUNK)) {
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
