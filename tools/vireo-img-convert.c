/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img convert: copy an image (its whole backing chain flattened) into a new one, or with
 * -B into a new one over a backing file (only what the source's top layer holds is written),
 * with -c into compressed qcow2 clusters.
 *
 * Parallel requests (-m N, qemu-img's default 8). The source is cut into chunks of CHUNK bytes
 * (a multiple of every cluster size), taken in order by N workers: the calling thread and N-1
 * more. A worker *prepares* its chunk on its own: the source's block status, reading what
 * holds data into its buffer (holes and zero clusters are never read), and the scan for
 * zeroes; that gives the chunk's list of requests for the target (data, zeroes, compressed
 * clusters), adjacent ones merged. Then it *commits* them. Without -W a chunk commits only
 * after every earlier one did, so the target receives the same requests in the same order
 * whatever N is (a qcow2 target gets the file -m 1 gives it, byte for byte); with -W commits
 * overlap. The block layer's synchronous calls may be made from any thread (blockdev.h); a
 * qcow2 target serializes its allocations itself.
 *
 * Read-ahead window: without -W at most c->window chunks are taken and not yet committed: N,
 * or for a page-cached source (reads are memory copies, not waits) N capped at the number of
 * CPUs. Measured on bench/img (2 CPUs): more would only cycle through more 2 MiB buffers that
 * have left the CPU caches, and switch threads, for ~15% more time (-m 8 took as long as -m 2
 * only once capped). An idle worker then simply waits; with -T none every worker reads.
 *
 * Ownership: a worker owns its buffer and its request list. Shared, and changed only under
 * c->lock: the cursor (the next chunk to take), the commit turn (the offset of the chunk to
 * commit next), the first error, the progress, and each worker's chunk and state. A worker
 * waits on its own condition variable, to take a chunk (IDLE) or for its commit turn (TURN);
 * wake() signals only the worker whose turn came (or every one after an error or once the
 * last chunk is taken): no herd of wake-ups per chunk. The worker that opens the window by
 * committing takes the next chunk itself, with its buffer still warm.
 *
 * Also measured: reading into the buffer and writing from it costs less than writing straight
 * from a mapping of the source file (the page-table work outweighs the copy saved), and 2 MiB
 * requests beat smaller ones (larger page-cache folios, fewer calls).
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/parse.h"
#include "common/util.h"

#define CHUNK (2 * 1024 * 1024ULL) /* a multiple of every qcow2 cluster size */
#define MAX_PARALLEL 16

struct convert {
	struct blockdev *src, *dst;
	uint64_t sparse;   /* zero runs of this size are skipped (0: write everything) */
	bool existing;     /* -n: the target may hold data: write zeroes explicitly */
	bool backing;      /* -B: the target has a backing file: zeroes must be written, and
			    * what the source's top layer does not hold is skipped */
	bool compress;     /* -c */
	uint64_t cluster_size; /* -c: the target's */
	bool sync_writes;  /* -t writethrough|directsync: flush after every write */
	bool no_flush;     /* -t unsafe: no flush at the end */
	bool in_order;     /* no -W: chunks commit in order */
	bool progress;     /* -p */
	unsigned parallel; /* -m */
	unsigned window;   /* chunks read ahead of the commit turn (in order) */
	const uint8_t *zeroes;   /* CHUNK zero bytes (-S 0 writes holes as data) */

	struct worker *workers;
	pthread_mutex_t lock;
	uint64_t next;     /* the next chunk to take */
	uint64_t commit;   /* without -W: the chunk whose turn it is to commit */
	int err;           /* first error */
	uint64_t done;     /* bytes of the source committed */
	struct img_progress prog;
};

/* Zeroes written explicitly: a target that may hold data, or one over a backing file. */
static bool must_zero(const struct convert *c)
{
	return c->existing || c->backing;
}

/* Lock held. */
static void progress(struct convert *c, uint64_t n)
{
	c->done += n;
	img_progress_update(&c->prog, c->done);
}

/* What the target needs for a source range of status @st. */
enum action { SKIP, ZERO, FILL, DATA };

static enum action action_of(const struct convert *c, int st)
{
	/* what the source's backing chain provides, the target's backing file provides (as in
	 * qemu-img); a source without one reads zeroes there, written as such over the target's */
	if (c->backing && !(st & BLOCKDEV_STATUS_ALLOCATED))
		return c->src->backing ? SKIP : ZERO;
	if ((st & BLOCKDEV_STATUS_ZERO) && !(st & BLOCKDEV_STATUS_DATA)) {
		if (!c->sparse)
			return FILL; /* -S 0: a fully allocated target, zeroes written as data */
		return must_zero(c) ? ZERO : SKIP;
	}
	return DATA;
}

/* One request for the target. */
enum wkind { W_DATA, W_ZERO, W_COMPRESS };

struct wreq {
	enum wkind kind;
	uint64_t off, len;
	const uint8_t *data; /* W_DATA, W_COMPRESS */
};

struct worker {
	struct convert *c;
	pthread_t thread;
	pthread_cond_t turn;  /* signalled when its chunk may commit or the copy failed */
	uint64_t chunk;       /* the chunk it works on (under c->lock) */
	enum { RUNNING, IDLE, TURN } state; /* IDLE: waits to take a chunk, TURN: to commit its
					     * chunk (under c->lock) */
	uint8_t *buf;         /* CHUNK bytes: source data read for the current chunk */
	struct wreq *w;       /* the chunk's requests, in offset order */
	size_t nr_w, cap_w;
};

/* Appends a request, merging it with the previous one when it continues it. */
static int add(struct worker *w, enum wkind kind, uint64_t off, uint64_t len, const uint8_t *p)
{
	struct wreq *last = w->nr_w ? &w->w[w->nr_w - 1] : NULL;

	if (last && kind != W_COMPRESS && last->kind == kind && last->off + last->len == off &&
	    (kind == W_ZERO || last->data + last->len == p)) {
		last->len += len;
		return 0;
	}
	if (w->nr_w == w->cap_w) {
		size_t cap = w->cap_w ? 2 * w->cap_w : 64;
		struct wreq *n = realloc(w->w, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		w->w = n;
		w->cap_w = cap;
	}
	w->w[w->nr_w++] = (struct wreq){ .kind = kind, .off = off, .len = len, .data = p };
	return 0;
}

/* Data for [off, off+len) at @p: runs of zeroes of at least c->sparse bytes (aligned to it)
 * are not written (or written as zeroes when the target needs it). */
static int add_data(struct worker *w, uint64_t off, uint64_t len, const uint8_t *p)
{
	struct convert *c = w->c;
	int ret = 0;

	if (!c->sparse)
		return add(w, W_DATA, off, len, p);
	for (uint64_t pos = 0; pos < len && !ret; ) {
		uint64_t n = MIN(c->sparse - (off + pos) % c->sparse, len - pos);

		if (!buf_is_zero(p + pos, n))
			ret = add(w, W_DATA, off + pos, n, p + pos);
		else if (must_zero(c))
			ret = add(w, W_ZERO, off + pos, n, NULL);
		pos += n;
	}
	return ret;
}

/* One whole cluster at @off (@n bytes: fewer only at the image's end): read, compress or zero. */
static int compress_cluster(struct worker *w, uint64_t chunk, uint64_t off, uint64_t n)
{
	struct convert *c = w->c;
	uint8_t *p = w->buf + (off - chunk);
	int ret = blockdev_pread(c->src, off, p, n);

	if (ret)
		return ret;
	if (c->sparse && buf_is_zero(p, n))
		return must_zero(c) ? add(w, W_ZERO, off, n, NULL) : 0;
	return add(w, W_COMPRESS, off, n, p);
}

/*
 * As prepare(), for a compressed target, whose unit is the cluster: block status is asked once
 * per extent, and the whole clusters an extent covers are skipped, zeroed or filled together; a
 * cluster that straddles extents is read whole and compressed (or found zero).
 */
static int prepare_compressed(struct worker *w, uint64_t chunk, uint64_t end)
{
	struct convert *c = w->c;
	uint64_t cs = c->cluster_size;

	for (uint64_t off = chunk; off < end;) {
		uint64_t pnum, map, whole;
		struct blockdev *file;
		int st = blockdev_block_status(c->src, off, end - off, &pnum, &map, &file), ret = 0;
		enum action act;

		if (st < 0)
			return st;
		if (!pnum || pnum > end - off)
			return -EIO;
		/* the clusters the extent covers entirely (the image's last one may be short) */
		whole = pnum == end - off ? pnum : pnum / cs * cs;
		act = whole ? action_of(c, st) : DATA;
		if (act == ZERO)
			ret = add(w, W_ZERO, off, whole, NULL);
		for (uint64_t o = off; act == FILL && !ret && o < off + whole; o += cs)
			ret = add(w, W_COMPRESS, o, MIN(cs, off + whole - o), c->zeroes);
		if (act == DATA) {
			whole = MAX(whole, MIN(cs, end - off));
			for (uint64_t o = off; !ret && o < off + whole; o += cs)
				ret = compress_cluster(w, chunk, o, MIN(cs, off + whole - o));
		}
		if (ret)
			return ret;
		off += whole;
	}
	return 0;
}

/* Turns source chunk [chunk, end) into the list of requests for the target. */
static int prepare(struct worker *w, uint64_t chunk, uint64_t end)
{
	struct convert *c = w->c;
	uint64_t pnum, map;
	struct blockdev *file;

	w->nr_w = 0;
	if (c->compress)
		return prepare_compressed(w, chunk, end);
	for (uint64_t off = chunk; off < end; off += pnum) {
		int st = blockdev_block_status(c->src, off, end - off, &pnum, &map, &file), ret;
		uint8_t *p = w->buf + (off - chunk);

		if (st < 0)
			return st;
		if (!pnum || pnum > end - off)
			return -EIO;
		switch (action_of(c, st)) {
		case SKIP: ret = 0; break;
		case ZERO: ret = add(w, W_ZERO, off, pnum, NULL); break;
		case FILL: ret = add(w, W_DATA, off, pnum, c->zeroes); break;
		case DATA:
		default:
			ret = blockdev_pread(c->src, off, p, pnum) ?: add_data(w, off, pnum, p);
			break;
		}
		if (ret)
			return ret;
	}
	return 0;
}

static int commit(struct worker *w)
{
	struct convert *c = w->c;
	int ret = 0;

	for (size_t i = 0; i < w->nr_w && !ret; i++) {
		const struct wreq *r = &w->w[i];

		switch (r->kind) {
		case W_DATA: ret = blockdev_pwrite(c->dst, r->off, r->data, r->len); break;
		case W_ZERO: /* as qemu-img: a zeroed range need not stay allocated */
			ret = blockdev_write_zeroes(c->dst, r->off, r->len, BLOCKDEV_ZERO_MAY_UNMAP);
			break;
		case W_COMPRESS:
			ret = blockdev_pwrite_compressed(c->dst, r->off, r->data, r->len);
			break;
		}
		if (!ret && c->sync_writes)
			ret = blockdev_flush(c->dst);
	}
	return ret;
}

/* May a worker take the next chunk? Without -W at most c->window chunks are taken and not yet
 * committed (lock held). */
static bool may_take(const struct convert *c)
{
	return !c->in_order || c->next - c->commit < c->window * CHUNK;
}

/*
 * Wakes the worker whose turn it is to commit, or all of them after an error or once the last
 * chunk was taken (lock held). An idle worker is not woken when the window opens: the worker
 * that just committed (and opened it) takes the next chunk itself, with a buffer still warm in
 * the CPU caches.
 */
static void wake(struct convert *c)
{
	for (unsigned i = 0; i < c->parallel; i++) {
		struct worker *w = &c->workers[i];

		if ((w->state == IDLE && (c->err || c->next >= c->src->size)) ||
		    (w->state == TURN && (c->err || w->chunk == c->commit)))
			pthread_cond_signal(&w->turn);
	}
}

static void *work(void *opaque)
{
	struct worker *w = opaque;
	struct convert *c = w->c;
	uint64_t size = c->src->size;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		uint64_t chunk, end;
		bool go;
		int ret;

		w->state = IDLE;
		while (!c->err && c->next < size && !may_take(c))
			pthread_cond_wait(&w->turn, &c->lock);
		w->state = RUNNING;
		if (c->err || c->next >= size)
			break;
		chunk = c->next;
		end = MIN(size, chunk + CHUNK);
		c->next = end;
		w->chunk = chunk;
		if (end == size)
			wake(c); /* idle workers may exit */
		pthread_mutex_unlock(&c->lock);
		ret = prepare(w, chunk, end);
		pthread_mutex_lock(&c->lock);
		w->state = TURN;
		while (!ret && c->in_order && c->commit != chunk && !c->err)
			pthread_cond_wait(&w->turn, &c->lock);
		w->state = RUNNING;
		go = !ret && !c->err;
		pthread_mutex_unlock(&c->lock);
		if (go)
			ret = commit(w);
		pthread_mutex_lock(&c->lock);
		if (ret && !c->err)
			c->err = ret;
		if (go && !ret) {
			c->commit = end;
			progress(c, end - chunk);
		}
		wake(c);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static int copy(struct convert *c)
{
	struct worker *w = calloc(c->parallel, sizeof(*w));
	unsigned started = 1;
	int ret = 0;

	if (!w)
		return -ENOMEM;
	c->workers = w;
	pthread_mutex_init(&c->lock, NULL);
	for (unsigned i = 0; i < c->parallel; i++) {
		w[i].c = c;
		pthread_cond_init(&w[i].turn, NULL);
	}
	for (unsigned i = 0; i < c->parallel; i++) {
		if (posix_memalign((void **)&w[i].buf, 4096, CHUNK)) {
			w[i].buf = NULL;
			ret = -ENOMEM;
			goto out;
		}
	}
	for (; started < c->parallel; started++) {
		if ((ret = -pthread_create(&w[started].thread, NULL, work, &w[started]))) {
			pthread_mutex_lock(&c->lock);
			c->err = ret;
			wake(c);
			pthread_mutex_unlock(&c->lock);
			break;
		}
	}
	work(&w[0]);
	for (unsigned i = 1; i < started; i++)
		pthread_join(w[i].thread, NULL);
	ret = c->err;
out:
	for (unsigned i = 0; i < c->parallel; i++) {
		free(w[i].buf);
		free(w[i].w);
		pthread_cond_destroy(&w[i].turn);
	}
	free(w);
	pthread_mutex_destroy(&c->lock);
	return ret;
}

/* Is @path the file of @bs or of an image in its backing chain? (qemu-img finds out by its image
 * lock; creating the target would truncate what convert is reading) */
static bool in_chain(const char *path, struct blockdev *bs)
{
	struct stat t, st;

	if (stat(path, &t))
		return false;
	for (; bs; bs = bs->backing)
		if (!stat(bs->filename, &st) && st.st_dev == t.st_dev && st.st_ino == t.st_ino)
			return true;
	return false;
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
	struct convert c = { .sparse = 4096, .no_flush = true,
			     .in_order = true, .parallel = 8 };
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
		case 'W': c.in_order = false; break;
		case 'U': break;
		case 'S':
			if (parse_size("-S", optarg, &c.sparse, &err))
				goto fail;
			break;
		case 'm':
			if (parse_u64("-m", optarg, 1, MAX_PARALLEL, &par, &err))
				goto fail;
			c.parallel = (unsigned)par;
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
	if (in_chain(argv[optind + 1], c.src)) {
		error_setg(&err, "'%s' is '%s' or in its backing chain: it cannot be the target",
			   argv[optind + 1], argv[optind]);
		goto fail;
	}
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
	if (c.compress) {
		struct blockdev_info info;

		if (blockdev_get_info(c.dst, &info, &err))
			goto fail;
		json_object_put(info.specific);
		c.cluster_size = info.cluster_size;
		if (!c.dst->drv->pwrite_compressed || !c.cluster_size ||
		    CHUNK % c.cluster_size) {
			error_setg(&err, "-c: '%s' is a %s image, which cannot hold compressed "
				   "clusters", argv[optind + 1], blockdev_format_name(c.dst));
			goto fail;
		}
	}
	if (c.dst->size < c.src->size) {
		error_setg(&err, "'%s' is smaller than '%s'", argv[optind + 1], argv[optind]);
		goto fail;
	}
	c.zeroes = c.sparse ? NULL : calloc(1, CHUNK);
	if (!c.sparse && !c.zeroes) {
		error_setg(&err, "out of memory");
		goto fail;
	}
	c.window = c.parallel;
	if (c.src->cache == BLOCKDEV_CACHE_WRITEBACK)
		c.window = MIN(c.parallel, (unsigned)MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L));
	img_progress_start(&c.prog, c.progress, c.src->size);
	ret = copy(&c);
	if (!ret && !c.no_flush)
		ret = blockdev_flush(c.dst);
	img_progress_end(&c.prog, !ret);
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
	free((void *)c.zeroes);
	blockdev_close(c.dst);
	blockdev_close(c.src);
	return ret;
}
