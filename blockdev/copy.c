/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The copy primitive (copy.h): a range of one node's content into another, by parallel workers.
 *
 * The range is cut into chunks of BLOCKDEV_COPY_CHUNK bytes (aligned to the chunk size, so a
 * chunk never straddles a compressed target's cluster), taken in order by N workers: the
 * calling thread and N-1 more. A worker *prepares* its chunk on its own: the source's block
 * status, reading what holds data into its buffer (holes and zero ranges are never read), and
 * the scan for zeroes; that gives the chunk's list of requests for the target (data, zeroes,
 * compressed clusters), adjacent ones merged. Then it *commits* them. In order, a chunk commits
 * only after every earlier one did, so the target receives the same requests in the same order
 * whatever N is (a qcow2 target gets the file one worker gives it, byte for byte); otherwise
 * commits overlap. The block layer's synchronous calls may be made from any thread
 * (blockdev.h); a qcow2 target serializes its allocations itself.
 *
 * Read-ahead window: in order, at most `window` chunks are taken and not yet committed: N, or
 * for a page-cached source (reads are memory copies, not waits) N capped at the number of CPUs.
 * More would only cycle through more 2 MiB buffers that have left the CPU caches, and switch
 * threads (bench/img measures it). An idle worker then simply waits.
 *
 * Reading into the buffer and writing from it costs less than writing straight from a mapping
 * of the source file (the page-table work outweighs the copy saved), and 2 MiB requests beat
 * smaller ones (larger page-cache folios, fewer calls).
 *
 * Ownership: a worker owns its buffer and its request list. Shared, and changed only under
 * c->lock: the cursor (the next chunk to take), the commit turn (the offset of the chunk to
 * commit next), the first error, the bytes done (and the progress callback, called under it),
 * and each worker's chunk and state. A worker waits on its own condition variable, to take a
 * chunk (IDLE) or for its commit turn (TURN); wake() signals only the worker whose turn came
 * (or every one after an error or once the last chunk is taken): no herd of wake-ups per chunk.
 * The worker that opens the window by committing takes the next chunk itself, with its buffer
 * still warm.
 */
#include "blockdev/copy.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "common/util.h"
#include "seccomp/thread.h"

#define CHUNK BLOCKDEV_COPY_CHUNK

struct copy {
	const struct blockdev_copy *o;
	uint64_t end;            /* the range's end */
	unsigned window;
	const uint8_t *zeroes;   /* CHUNK zero bytes (fill_zeroes) */

	struct worker *workers;
	pthread_mutex_t lock;
	uint64_t next;     /* the next chunk to take */
	uint64_t commit;   /* in order: the chunk whose turn it is to commit */
	int err;           /* first error */
	bool err_write;    /* ... from a write to the target */
	uint64_t done;     /* bytes of the range committed */
};

/* What the target needs for a source range. */
enum action { SKIP, ZERO, FILL, DATA };

/* One request for the target. */
enum wkind { W_DATA, W_ZERO, W_COMPRESS };

struct wreq {
	enum wkind kind;
	uint64_t off, len;
	const uint8_t *data; /* W_DATA, W_COMPRESS */
};

struct worker {
	struct copy *c;
	pthread_t thread;
	pthread_cond_t turn;  /* signalled when its chunk may commit or the copy failed */
	uint64_t chunk;       /* the chunk it works on (under c->lock) */
	enum { RUNNING, IDLE, TURN } state; /* IDLE: waits to take a chunk, TURN: to commit its
					     * chunk (under c->lock) */
	uint8_t *buf;         /* CHUNK bytes: source data read for the current chunk */
	struct wreq *w;       /* the chunk's requests, in offset order */
	size_t nr_w, cap_w;
};

int blockdev_chain_status(struct blockdev *top, struct blockdev *stop, uint64_t off,
			  uint64_t *n)
{
	for (struct blockdev *cur = top; cur && cur != stop; cur = cur->backing) {
		uint64_t pnum, map;
		struct blockdev *file;
		int st;

		if (off >= cur->size)
			continue;
		st = blockdev_block_status(cur, off, MIN(*n, cur->size - off), &pnum, &map, &file);
		if (st < 0)
			return st;
		if (!pnum)
			return -EIO;
		*n = MIN(*n, pnum);
		if (st & BLOCKDEV_STATUS_ALLOCATED)
			return st;
	}
	return 0;
}

/* The status of [off, end) at its start: *pnum bytes of it have the returned flags. */
static int status(const struct copy *c, uint64_t off, uint64_t end, uint64_t *pnum)
{
	const struct blockdev_copy *o = c->o;
	uint64_t map;
	struct blockdev *file;
	int st;

	*pnum = end - off;
	if (o->top_only)
		st = blockdev_chain_status(o->src, o->stop, off, pnum);
	else
		st = blockdev_block_status(o->src, off, end - off, pnum, &map, &file);
	if (st >= 0 && (!*pnum || *pnum > end - off))
		return -EIO;
	return st;
}

static enum action action_of(const struct copy *c, int st)
{
	const struct blockdev_copy *o = c->o;

	/* none of the layers copied holds it: what @stop reads, the target reads already; past
	 * the chain's end the source reads zeroes, written as such over what the target holds */
	if (o->top_only && !(st & BLOCKDEV_STATUS_ALLOCATED))
		return o->stop ? SKIP : o->write_zeroes ? ZERO : SKIP;
	/* reads as zeroes: a hole, or a format's data over a hole of its file (DATA|ZERO) */
	if (st & BLOCKDEV_STATUS_ZERO) {
		if (o->fill_zeroes)
			return FILL;
		return o->write_zeroes ? ZERO : SKIP;
	}
	return DATA;
}

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

/* Data for [off, off+len) at @p: runs of zeroes of at least .sparse bytes (aligned to it) are
 * not written (or written as zeroes when the target needs it). */
static int add_data(struct worker *w, uint64_t off, uint64_t len, const uint8_t *p)
{
	const struct blockdev_copy *o = w->c->o;
	int ret = 0;

	if (!o->sparse)
		return add(w, W_DATA, off, len, p);
	for (uint64_t pos = 0; pos < len && !ret; ) {
		uint64_t n = MIN(o->sparse - (off + pos) % o->sparse, len - pos);

		if (!buf_is_zero(p + pos, n))
			ret = add(w, W_DATA, off + pos, n, p + pos);
		else if (o->write_zeroes)
			ret = add(w, W_ZERO, off + pos, n, NULL);
		pos += n;
	}
	return ret;
}

/* One whole cluster at @off (@n bytes: fewer only at the image's end): read, compress or zero. */
static int compress_cluster(struct worker *w, uint64_t chunk, uint64_t off, uint64_t n)
{
	const struct blockdev_copy *o = w->c->o;
	uint8_t *p = w->buf + (off - chunk);
	int ret = blockdev_pread(o->src, off, p, n);

	if (ret)
		return ret;
	if (o->sparse && buf_is_zero(p, n))
		return o->write_zeroes ? add(w, W_ZERO, off, n, NULL) : 0;
	return add(w, W_COMPRESS, off, n, p);
}

/*
 * As prepare(), for a compressed target, whose unit is the cluster: block status is asked once
 * per extent, and the whole clusters an extent covers are skipped, zeroed or filled together; a
 * cluster that straddles extents is read whole and compressed (or found zero).
 */
static int prepare_compressed(struct worker *w, uint64_t chunk, uint64_t end)
{
	struct copy *c = w->c;
	uint64_t cs = c->o->cluster_size;

	for (uint64_t off = chunk; off < end;) {
		uint64_t pnum, whole;
		int st = status(c, off, end, &pnum), ret = 0;
		enum action act;

		if (st < 0)
			return st;
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
	struct copy *c = w->c;
	uint64_t pnum;

	w->nr_w = 0;
	if (c->o->compress)
		return prepare_compressed(w, chunk, end);
	for (uint64_t off = chunk; off < end; off += pnum) {
		int st = status(c, off, end, &pnum), ret;
		uint8_t *p = w->buf + (off - chunk);

		if (st < 0)
			return st;
		switch (action_of(c, st)) {
		case SKIP: ret = 0; break;
		case ZERO: ret = add(w, W_ZERO, off, pnum, NULL); break;
		case FILL: ret = add(w, W_DATA, off, pnum, c->zeroes); break;
		case DATA:
		default:
			ret = blockdev_pread(c->o->src, off, p, pnum) ?: add_data(w, off, pnum, p);
			break;
		}
		if (ret)
			return ret;
	}
	return 0;
}

static int commit(struct worker *w)
{
	const struct blockdev_copy *o = w->c->o;
	int ret = 0;

	for (size_t i = 0; i < w->nr_w && !ret; i++) {
		const struct wreq *r = &w->w[i];

		switch (r->kind) {
		case W_DATA: ret = blockdev_pwrite(o->dst, r->off, r->data, r->len); break;
		case W_ZERO:
			ret = blockdev_write_zeroes(o->dst, r->off, r->len, o->zero_flags);
			break;
		case W_COMPRESS:
			ret = blockdev_pwrite_compressed(o->dst, r->off, r->data, r->len);
			break;
		}
		if (!ret && o->sync_writes)
			ret = blockdev_flush(o->dst);
	}
	return ret;
}

/* May a worker take the next chunk? In order, at most c->window chunks are taken and not yet
 * committed (lock held). */
static bool may_take(const struct copy *c)
{
	return !c->o->in_order || c->next - c->commit < c->window * CHUNK;
}

/*
 * Wakes the worker whose turn it is to commit, or all of them after an error or once the last
 * chunk was taken (lock held). An idle worker is not woken when the window opens: the worker
 * that just committed (and opened it) takes the next chunk itself, with a buffer still warm in
 * the CPU caches.
 */
static void wake(struct copy *c)
{
	for (unsigned i = 0; i < c->o->parallel; i++) {
		struct worker *w = &c->workers[i];

		if ((w->state == IDLE && (c->err || c->next >= c->end)) ||
		    (w->state == TURN && (c->err || w->chunk == c->commit)))
			pthread_cond_signal(&w->turn);
	}
}

/* A chunk of @n bytes reached the target (lock held). */
static void chunk_done(struct copy *c, uint64_t n)
{
	int ret;

	c->done += n;
	if (c->o->progress && (ret = c->o->progress(c->o->opaque, c->done)) && !c->err)
		c->err = ret;
}

static void *work(void *opaque)
{
	struct worker *w = opaque;
	struct copy *c = w->c;
	bool in_order = c->o->in_order;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		uint64_t chunk, end;
		bool go;
		int ret;

		w->state = IDLE;
		while (!c->err && c->next < c->end && !may_take(c))
			pthread_cond_wait(&w->turn, &c->lock);
		w->state = RUNNING;
		if (c->err || c->next >= c->end)
			break;
		chunk = c->next;
		end = MIN(c->end, (chunk / CHUNK + 1) * CHUNK);
		c->next = end;
		w->chunk = chunk;
		if (end == c->end)
			wake(c); /* idle workers may exit */
		pthread_mutex_unlock(&c->lock);
		ret = prepare(w, chunk, end);
		pthread_mutex_lock(&c->lock);
		w->state = TURN;
		while (!ret && in_order && c->commit != chunk && !c->err)
			pthread_cond_wait(&w->turn, &c->lock);
		w->state = RUNNING;
		go = !ret && !c->err;
		pthread_mutex_unlock(&c->lock);
		if (go)
			ret = commit(w);
		pthread_mutex_lock(&c->lock);
		if (ret && !c->err) {
			c->err = ret;
			c->err_write = go; /* commit()'s error, not prepare()'s */
		}
		if (go && !ret) {
			c->commit = end;
			chunk_done(c, end - chunk);
		}
		wake(c);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static int check(const struct blockdev_copy *o)
{
	if (!o->src || !o->dst || !o->parallel || o->parallel > BLOCKDEV_COPY_MAX_PARALLEL)
		return -EINVAL;
	if (o->offset > o->src->size || o->length > o->src->size - o->offset ||
	    o->offset + o->length > o->dst->size)
		return -EINVAL;
	if (o->compress && (!o->cluster_size || CHUNK % o->cluster_size ||
			    o->offset % o->cluster_size))
		return -EINVAL;
	return 0;
}

static unsigned default_window(const struct blockdev_copy *o)
{
	if (o->window)
		return o->window;
	if (o->src->cache == BLOCKDEV_CACHE_WRITEBACK)
		return MIN(o->parallel, (unsigned)MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L));
	return o->parallel;
}

int blockdev_copy_run(const struct blockdev_copy *o)
{
	struct copy c = { .o = o };
	struct worker *w;
	unsigned started = 1;
	int ret = check(o);

	if (ret)
		return ret;
	if (!o->length)
		return 0;
	c.end = o->offset + o->length;
	c.next = c.commit = o->offset;
	c.window = default_window(o);
	if (o->fill_zeroes && !(c.zeroes = calloc(1, CHUNK)))
		return -ENOMEM;
	w = calloc(o->parallel, sizeof(*w));
	if (!w) {
		free((void *)c.zeroes);
		return -ENOMEM;
	}
	c.workers = w;
	pthread_mutex_init(&c.lock, NULL);
	for (unsigned i = 0; i < o->parallel; i++) {
		w[i].c = &c;
		pthread_cond_init(&w[i].turn, NULL);
	}
	for (unsigned i = 0; i < o->parallel; i++) {
		if (o->bufs) { /* the caller's, kept between copies */
			w[i].buf = o->bufs[i];
			continue;
		}
		if (posix_memalign((void **)&w[i].buf, 4096, CHUNK)) {
			w[i].buf = NULL;
			ret = -ENOMEM;
			goto out;
		}
	}
	for (; started < o->parallel; started++) {
		if ((ret = sandbox_thread_spawn(&w[started].thread, SANDBOX_ROLE_COPY, "blk-copy",
						NULL, work, &w[started], NULL))) {
			pthread_mutex_lock(&c.lock);
			c.err = ret;
			wake(&c);
			pthread_mutex_unlock(&c.lock);
			break;
		}
	}
	work(&w[0]);
	for (unsigned i = 1; i < started; i++)
		pthread_join(w[i].thread, NULL);
	ret = c.err;
	if (o->write_failed)
		*o->write_failed = ret && c.err_write;
out:
	for (unsigned i = 0; i < o->parallel; i++) {
		if (!o->bufs)
			free(w[i].buf);
		free(w[i].w);
		pthread_cond_destroy(&w[i].turn);
	}
	free(w);
	free((void *)c.zeroes);
	pthread_mutex_destroy(&c.lock);
	return ret;
}
