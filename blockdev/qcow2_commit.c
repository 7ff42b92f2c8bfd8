/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2: publishing L2 entries in crash-safe order, and group commit. The write paths
 * (qcow2_write.c, qcow2_zero.c, qcow2_write_compressed.c) allocate clusters and write data,
 * then stage the L2 entries that point to it; this file decides what reaches the file in which
 * order, and when.
 *
 * Write order, so that a crash leaves at most leaked clusters:
 *   refcount of a new cluster  ->  its contents (data, or a zeroed L2 table)  ->  barrier  ->
 *   the L2 (or L1) entry pointing to it  ->  barrier  ->  refcount decrement of what it replaced.
 * New L2 tables, L1 and refcount table growth publish immediately. L2 entries are staged
 * (qcow2_commit_entry) and published together by qcow2_commit(): one barrier, then the entries
 * (to the file, then to the lock-free cache; with O_DIRECT one write per block of the file,
 * made from the cached slice with every staged entry of that block, instead of a
 * read-modify-write per entry), then, only if some entry replaced a cluster, a second barrier
 * and the refcount decrements. A staged entry is only ever in q->pending, never in the cache,
 * so readers on other iothreads see the old mapping until the entry's data is durable.
 * qcow2_barrier() writes the refcount changes held back (qcow2_rc_flush), then flushes the
 * file (and data file); the flush is skipped when the image was opened with
 * metadata-barriers=off (vireo-img convert to a new file: a crash loses the file anyway).
 *
 * Who commits when. A synchronous caller (qcow2_write, zero, discard, the tools) commits before
 * it drops q->lock: one barrier per request. The slow-path worker instead hands every write
 * queued at the same time to qcow2_write_group() (group commit): under one hold of q->lock it
 * runs each write's allocation (refcounts) and stages its entries, then one qcow2_commit() for
 * all, then the engine completes them; so N allocating writes share one barrier. The data
 * writes of fresh clusters, with their copy from the backing file, are kept with the staged
 * entries and run by that commit in parallel, before its barrier (see "Group commit: the data
 * write" below), and refcount changes are held in the refcount block cache until a barrier
 * (qcow2_refcount.c): refcount and data then reach the file in either order, but both before
 * the barrier, which is all the entry pointing to them needs. Rules inside a group
 * (q->grouping, q->group_w; each staged entry records the write that staged it):
 *  - a write about to touch a guest cluster that already has a staged entry (an earlier write
 *    of the group, or an earlier buffer of the same request) commits the group so far first,
 *    so it sees that entry published and never allocates the cluster twice;
 *  - a write that fails (at once, or when its deferred data write fails in a commit) has all
 *    its staged entries dropped and the clusters they allocated given back; it stops there;
 *    the other writes' entries are published;
 *  - a commit whose barrier or entry writes fail fails every write of the group that staged an
 *    entry; writes that only wrote in place, or staged nothing, keep their status;
 *  - nothing of the group is completed before its final commit, so a request is complete only
 *    once its entries are published, and a guest FLUSH (run after the requests it covers
 *    completed) finds every entry in the file.
 * Like every other holder of q->lock, a group leaves q->pending empty when it drops the lock.
 *
 * Lazy publication. A group's commit whose entries replace nothing (fresh allocations: no
 * refcount to drop after them) skips its barrier: it puts the entries in the cache, where every
 * reader sees them at once, and keeps them in q->lazy, not yet in the file. The next barrier,
 * whoever makes it (a commit that needs one, a FLUSH, close, QCOW2_MAX_LAZY entries waiting),
 * makes their data and refcounts durable with everything else and then writes them
 * (qcow2_lazy_write), so the order above holds: an entry reaches the file only after what it
 * points to. A crash before loses those writes, which no FLUSH covered, and leaks their clusters.
 * The L1 entry of an L2 table a group allocates is lazy the same way (qcow2_lazy_l1): the
 * zeroed table is written, the entry set in memory at once, in the file after a barrier.
 * So a stream of allocating writes pays one barrier per QCOW2_MAX_LAZY clusters, or per FLUSH,
 * instead of one per group and two per new L2 table. What reads L2 tables from the file sees them too: a slice loaded
 * into the cache gets them overlaid (qcow2_lazy_overlay), and the few readers that go to the
 * file itself (COW of a shared L2 table, snapshots, check, amend, recompress) call
 * qcow2_lazy_sync() first.
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/*
 * Group commit: the data write of a fresh cluster (and the copy of the rest of it from the
 * backing file, or zeroes) is not done under the lock one after the other but kept with the
 * staged entry and run by the commit, before its barrier, by up to DATA_IO_THREADS threads at
 * once (this thread and the image's pool of helpers, qcow2_pool.c: they only read the backing
 * file and write q->data, never metadata). Until then the cluster is allocated (refcount 1)
 * and its entry staged, which nobody outside the group sees.
 */
#define DATA_IO_THREADS (QCOW2_POOL_HELPERS + 1)
#define MAX_DEFERRED_BYTES (32ULL << 20) /* cluster copies held: beyond, run them early */

struct qcow2_data_io {
	uint64_t gco, host;  /* guest and host offset of the cluster */
	uint64_t a, n;       /* the new bytes: [a, a+n) of the cluster */
	const uint8_t *src;  /* the whole new cluster, the caller's (valid until the group ends) */
	bool zero_rest;      /* the rest of the cluster reads zeroes; else the backing file's */
	int ret;
	uint8_t buf[];       /* without @src: a cluster, the new bytes already in place */
};

struct data_io_batch {
	struct qcow2 *q;
	struct qcow2_pending *p;
	size_t n;
	atomic_size_t next; /* relaxed: the pool's mutex orders everything else */
};

static void data_io_run(struct qcow2 *q, struct qcow2_data_io *d)
{
	uint64_t c = q->cluster_size, tail = d->a + d->n;
	int ret = 0;

	if (!d->src && d->zero_rest) {
		memset(d->buf, 0, d->a);
		memset(d->buf + tail, 0, c - tail);
	} else if (!d->src) {
		if (d->a)
			ret = qcow2_read_backing(q, d->gco, d->buf, d->a);
		if (!ret && tail < c)
			ret = qcow2_read_backing(q, d->gco + tail, d->buf + tail, c - tail);
	}
	d->ret = ret ? ret : qcow2_data_pwrite(q, d->host, d->src ? d->src : d->buf, c);
}

static void data_io_share(void *arg)
{
	struct data_io_batch *b = arg;
	size_t i;

	while ((i = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed)) < b->n)
		if (b->p[i].io)
			data_io_run(b->q, b->p[i].io);
}

/* Drops the staged entries of the group's failed writes and gives back the clusters they
 * allocated, which nothing points to (a failure there only leaks them). Lock held. */
void qcow2_drop_failed(struct qcow2 *q)
{
	size_t k = 0;

	for (size_t i = 0; i < q->nr_pending; i++) {
		struct qcow2_pending *p = &q->pending[i];
		uint64_t nh = p->ne[0] & QCOW2_OFFSET_MASK;

		if (q->group_w[p->job].ret >= 0) {
			q->pending[k++] = *p;
			continue;
		}
		free(p->io);
		if (q->data == q->file && nh && !(p->ne[0] & QCOW2_OFLAG_COMPRESSED) &&
		    nh != (p->old[0] & QCOW2_OFFSET_MASK))
			qcow2_free_range(q, nh, q->cluster_size);
	}
	q->nr_pending = k;
}

/* Runs the deferred data writes of the staged entries; a write whose data write failed fails,
 * and its entries are dropped. Lock held, in a group. */
static void run_data_io(struct qcow2 *q)
{
	struct data_io_batch b = { .q = q, .p = q->pending, .n = q->nr_pending };
	size_t count = 0;
	bool parallel;

	for (size_t i = 0; i < b.n; i++)
		count += q->pending[i].io != NULL;
	if (!count)
		return;
	atomic_init(&b.next, 0);
	/* Helpers only where writes can overlap: O_DIRECT (each in flight on the device) or
	 * encryption (the CPU's work). Page-cached writes to one file serialize on its inode lock,
	 * which 8 threads spun on: an NBD client's 1 GiB into a fresh image took 5 s instead of 1. */
	parallel = count > 1 && (q->data->cache == BLOCKDEV_CACHE_NONE || q->luks);
	qcow2_pool_run(q, parallel ? DATA_IO_THREADS - 1 : 0, data_io_share, &b);
	for (size_t i = 0; i < q->nr_pending; i++) {
		struct qcow2_pending *p = &q->pending[i];

		if (p->io && p->io->ret && q->group_w[p->job].ret >= 0)
			q->group_w[p->job].ret = p->io->ret;
	}
	qcow2_drop_failed(q);
	for (size_t i = 0; i < q->nr_pending; i++) {
		free(q->pending[i].io);
		q->pending[i].io = NULL;
	}
	q->deferred_bytes = 0;
}

/*
 * Publishing L2 entries is batched per request: qcow2_commit_entry() stages the new entry of a
 * cluster whose data (and refcount) were just written; qcow2_commit() then does one barrier
 * for all of them, writes the entries, and (after another barrier) drops the references to
 * what they replaced. Called before q->lock is released, so nobody sees a staged entry half done.
 */
#define QCOW2_MAX_PENDING 4096

/* Writes @n staged entries for consecutive indexes of one L2 table, then updates the cache. */
static int write_entries(struct qcow2 *q, const struct qcow2_pending *p, size_t n)
{
	uint8_t raw[512 * 16];
	size_t w = q->entry_words;
	int ret;

	if (n == 1)
		return qcow2_l2_set(q, p->l2, p->idx, p->ne);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < w; k++)
			qcow2_put_be64(raw + 8 * (i * w + k), p[i].ne[k]);
	ret = blockdev_pwrite(q->file, p->l2 + p->idx * 8 * w, raw, n * 8 * w);
	for (size_t i = 0; i < n && !ret; i++)
		qcow2_l2_cache_update(q, p[i].l2, p[i].idx, p[i].ne);
	return ret;
}

/* The block of the file (O_DIRECT alignment) holding staged entry @p. */
static uint64_t entry_block(const struct qcow2 *q, const struct qcow2_pending *p)
{
	return ALIGN_DOWN(p->l2 + p->idx * 8 * q->entry_words, (uint64_t)q->file->align);
}

/*
 * O_DIRECT: writing one entry is a read-modify-write of a whole block of the file. When the
 * block's L2 slice is cached (the entry's write loaded it, unless it was evicted since), this
 * writes the block from the cached copy with every staged entry in it applied (later ones win):
 * no read, and one write for all of them; marks them in @done. Returns 1 when written, 0 on a
 * cache miss (nothing done), or -errno.
 */
static int write_block(struct qcow2 *q, const struct qcow2_pending *p, size_t i, size_t n,
		       bool *done)
{
	uint64_t w = q->entry_words, sb = (8 * w) << q->slice_bits, words[512];
	uint64_t blk = entry_block(q, &p[i]), a = q->file->align;
	uint64_t key = p[i].l2 + ALIGN_DOWN(blk - p[i].l2, sb);
	uint8_t raw[4096];
	int ret;

	if (!qcow2_cache_lookup(&q->cache, key, (uint32_t)((blk - key) / 8), (uint32_t)(a / 8),
				words))
		return 0;
	for (size_t j = i; j < n; j++) {
		if (done[j] || p[j].l2 != p[i].l2 || entry_block(q, &p[j]) != blk)
			continue;
		for (size_t k = 0; k < w; k++)
			words[(p[j].l2 + p[j].idx * 8 * w - blk) / 8 + k] = p[j].ne[k];
		done[j] = true;
	}
	for (uint64_t k = 0; k < a / 8; k++)
		qcow2_put_be64(raw + 8 * k, words[k]);
	ret = blockdev_pwrite(q->file, blk, raw, a);
	for (size_t j = i; j < n && !ret; j++) /* then the cache: file first, as always */
		if (done[j] && p[j].l2 == p[i].l2 && entry_block(q, &p[j]) == blk)
			qcow2_l2_cache_update(q, p[j].l2, p[j].idx, p[j].ne);
	return ret ? ret : 1;
}

/* Writes the staged entries @p[0..n) to the file and the cache. */
static int publish(struct qcow2 *q, const struct qcow2_pending *p, size_t n)
{
	uint64_t a = q->file->align, sb = (8ULL * q->entry_words) << q->slice_bits;
	bool *done = a > 1 && a <= sb && a <= 4096 ? calloc(n, sizeof(*done)) : NULL;
	int ret = 0;

	for (size_t i = 0, run; i < n && !ret; i += run) {
		run = 1;
		if (done && (done[i] || (ret = write_block(q, p, i, n, done)) != 0)) {
			ret = MIN(ret, 0);
			continue;
		}
		/* consecutive entries of one L2 table go out in one write */
		for (; i + run < n && run < 512 && p[run + i].l2 == p[i].l2 &&
		       p[run + i].idx == p[i].idx + run && !(done && done[i + run]); run++)
			;
		ret = write_entries(q, p + i, run);
	}
	free(done);
	return ret;
}

/* Whether publishing @p left its old cluster unreferenced (compressed, or another cluster). */
static bool replaces_cluster(const struct qcow2_pending *p)
{
	uint64_t old = p->old[0] & QCOW2_OFFSET_MASK;

	return (p->old[0] & QCOW2_OFLAG_COMPRESSED) ||
	       (old && old != (p->ne[0] & QCOW2_OFFSET_MASK));
}

#define QCOW2_MAX_LAZY 65536 /* lazily published entries before a barrier writes them */

int qcow2_lazy_write(struct qcow2 *q)
{
	size_t n = q->nr_lazy;
	int ret = 0;

	for (size_t i = 0; i < q->nr_lazy_l1 && !ret; i++) {
		uint8_t raw[8];

		qcow2_put_be64(raw, q->lazy_l1[i].v);
		ret = blockdev_pwrite(q->file, q->h.l1_table_offset + q->lazy_l1[i].l1i * 8, raw, 8);
	}
	if (ret)
		return ret; /* kept for the next barrier */
	q->nr_lazy_l1 = 0;
	q->nr_lazy = 0;
	return n ? publish(q, q->lazy, n) : 0;
}

int qcow2_lazy_sync(struct qcow2 *q)
{
	return q->nr_lazy || q->nr_lazy_l1 ? qcow2_barrier(q) : 0;
}

bool qcow2_lazy_l1_ok(const struct qcow2 *q)
{
	return q->grouping && q->ordered;
}

int qcow2_lazy_l1(struct qcow2 *q, uint64_t l1i, uint64_t v)
{
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);

	if (q->nr_lazy_l1 == q->cap_lazy_l1) {
		size_t cap = q->cap_lazy_l1 ? 2 * q->cap_lazy_l1 : 8;
		void *p = realloc(q->lazy_l1, cap * sizeof(*q->lazy_l1));

		if (!p)
			return -ENOMEM;
		q->lazy_l1 = p;
		q->cap_lazy_l1 = cap;
	}
	q->lazy_l1[q->nr_lazy_l1].l1i = l1i;
	q->lazy_l1[q->nr_lazy_l1++].v = v;
	/* release: the new table's (zeroed) contents before its pointer */
	atomic_store_explicit(&l1->e[l1i], v, memory_order_release);
	return 0;
}

void qcow2_lazy_overlay(const struct qcow2 *q, uint64_t key, uint64_t *words, uint64_t nwords)
{
	uint64_t w = q->entry_words;

	for (size_t i = 0; i < q->nr_lazy; i++) { /* in order: a later entry wins */
		const struct qcow2_pending *p = &q->lazy[i];
		uint64_t at = p->l2 + p->idx * 8 * w;

		if (at < key || at >= key + nwords * 8)
			continue;
		for (uint64_t k = 0; k < w; k++)
			words[(at - key) / 8 + k] = p->ne[k];
	}
}

/* A group's entries that replace nothing go to the cache now and to the file after the next
 * barrier (see "Lazy publication" above); false: publish them the usual way. */
static bool publish_lazily(struct qcow2 *q, size_t n)
{
	if (!q->grouping || !q->ordered)
		return false;
	for (size_t i = 0; i < n; i++)
		if (replaces_cluster(&q->pending[i]))
			return false;
	if (q->nr_lazy + n > q->cap_lazy) {
		size_t cap = MAX(q->nr_lazy + n, q->cap_lazy ? 2 * q->cap_lazy : 256);
		struct qcow2_pending *p = realloc(q->lazy, cap * sizeof(*p));

		if (!p)
			return false;
		q->lazy = p;
		q->cap_lazy = cap;
	}
	for (size_t i = 0; i < n; i++) {
		const struct qcow2_pending *p = &q->pending[i];

		q->lazy[q->nr_lazy++] = (struct qcow2_pending){ .l2 = p->l2, .idx = p->idx,
								 .old = { p->old[0], p->old[1] },
								 .ne = { p->ne[0], p->ne[1] } };
		qcow2_l2_cache_update(q, p->l2, p->idx, p->ne);
	}
	return true;
}

int qcow2_commit(struct qcow2 *q)
{
	bool release = false;
	size_t n;
	int ret;

	if (q->grouping)
		run_data_io(q); /* the data before the barrier; drops the entries of failed writes */
	n = q->nr_pending;
	if (!n)
		return 0;
	q->nr_pending = 0;
	if (publish_lazily(q, n)) {
		ret = q->nr_lazy >= QCOW2_MAX_LAZY ? qcow2_barrier(q) : 0;
		if (ret && !q->group_err)
			q->group_err = ret;
		return ret;
	}
	ret = qcow2_barrier(q); /* refcounts and data before the entries that point to them */
	if (!ret)
		ret = publish(q, q->pending, n);
	for (size_t i = 0; i < n && !ret && !release; i++)
		release = replaces_cluster(&q->pending[i]);
	if (!ret && release) {
		ret = qcow2_barrier(q); /* the entries no longer point there before it is reused */
		for (size_t i = 0; i < n && !ret; i++)
			if (replaces_cluster(&q->pending[i]))
				ret = qcow2_release_entry(q, q->pending[i].old[0]);
	}
	if (ret && q->grouping && !q->group_err)
		q->group_err = ret; /* some writes of the group lost their entries */
	return ret;
}

/* Stages the entry (with @io: its data write, deferred to the commit; see above). */
static int stage_entry(struct qcow2 *q, uint64_t l2, uint64_t idx, const uint64_t *old,
		       const uint64_t *ne, struct qcow2_data_io *io)
{
	struct qcow2_pending *p;
	int ret;

	if (!io && old[0] == ne[0] && (!q->ext_l2 || old[1] == ne[1]))
		return 0;
	if (q->nr_pending == QCOW2_MAX_PENDING && (ret = qcow2_commit(q)))
		return ret;
	if (q->nr_pending == q->cap_pending) {
		size_t cap = q->cap_pending ? q->cap_pending * 2 : 16;

		p = realloc(q->pending, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		q->pending = p;
		q->cap_pending = cap;
	}
	p = &q->pending[q->nr_pending++];
	q->nr_staged++;
	*p = (struct qcow2_pending){ .l2 = l2, .idx = idx, .old = { old[0], old[1] },
				     .ne = { ne[0], ne[1] }, .job = q->group_job, .io = io };
	return 0;
}

int qcow2_commit_entry(struct qcow2 *q, uint64_t l2, uint64_t idx, const uint64_t *old,
		       const uint64_t *ne)
{
	return stage_entry(q, l2, idx, old, ne, NULL);
}

/* Whether the entry at index @idx of the L2 table at @l2 is staged (not yet published). */
bool qcow2_is_staged(const struct qcow2 *q, uint64_t l2, uint64_t idx)
{
	for (size_t i = q->nr_pending; i-- > 0;)
		if (q->pending[i].l2 == l2 && q->pending[i].idx == idx)
			return true;
	return false;
}

/* Commits what the locked section staged, then releases the lock. */
int qcow2_unlock_commit(struct qcow2 *q, int ret)
{
	int r = qcow2_commit(q);

	pthread_mutex_unlock(&q->lock);
	return ret ? ret : r;
}

/* In a group: stages the entry of the fresh cluster @host with its data write deferred. */
int qcow2_defer_whole(struct qcow2 *q, uint64_t gco, uint64_t l2, uint64_t idx,
		      const uint64_t *e, uint64_t host, uint64_t a, const uint8_t *p, uint64_t n,
		      bool zero_rest)
{
	bool whole = a == 0 && n == q->cluster_size;
	uint64_t ne[2] = { host | QCOW2_OFLAG_COPIED, 0xffffffffu };
	struct qcow2_data_io *d = NULL;
	int ret = qcow2_check_data_target(q, host, q->cluster_size);

	if (!ret && !(d = malloc(sizeof(*d) + (whole ? 0 : q->cluster_size))))
		ret = -ENOMEM;
	if (!ret) {
		*d = (struct qcow2_data_io){ .gco = gco, .host = host, .a = a, .n = n,
					     .src = whole ? p : NULL, .zero_rest = zero_rest };
		if (!whole)
			memcpy(d->buf + a, p, n);
		ret = stage_entry(q, l2, idx, e, ne, d);
	}
	if (ret) {
		free(d);
		qcow2_drop_new_cluster(q, host);
		return ret;
	}
	if (!whole && (q->deferred_bytes += q->cluster_size) >= MAX_DEFERRED_BYTES)
		run_data_io(q);
	return 0;
}
