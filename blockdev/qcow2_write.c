/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 writes: in-place writes to clusters we own (no lock), and under q->lock allocation,
 * copy-on-write of partial clusters (from the backing file, a compressed or a shared cluster),
 * new L2 tables, write-zeroes as zero clusters, discard, and growing the L1 table.
 *
 * Write order, so that a crash leaves at most leaked clusters:
 *   refcount of a new cluster  ->  its contents (data, or a zeroed L2 table)  ->  barrier  ->
 *   the L2 (or L1) entry pointing to it  ->  barrier  ->  refcount decrement of what it replaced.
 * New L2 tables, L1 and refcount table growth publish immediately. L2 entries are staged
 * (commit_entry) and published together by qcow2_commit(): one barrier, then the entries (to the
 * file, then to the lock-free cache; with O_DIRECT one write per block of the file, made from
 * the cached slice with every staged entry of that block, instead of a read-modify-write per
 * entry), then, only if some entry replaced a cluster, a second barrier and the refcount
 * decrements. A staged entry is only ever in q->pending, never in the cache, so readers on
 * other iothreads see the old mapping until the entry's data is durable. qcow2_barrier()
 * writes the refcount changes held back (qcow2_rc_flush), then flushes the file (and data
 * file); the flush is skipped when the image was opened with metadata-barriers=off (vireo-img
 * convert to a new file: a crash loses the file anyway).
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
 */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

bool qcow2_overlaps_metadata(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t l1 = q->h.l1_table_offset, l1_len = ALIGN_UP((uint64_t)q->h.l1_size * 8,
							       q->cluster_size);
	uint64_t rt = q->h.refcount_table_offset;
	uint64_t rt_len = (uint64_t)q->h.refcount_table_clusters << q->cluster_bits;

	return off < q->cluster_size || (off < l1 + l1_len && l1 < off + len) ||
	       (off < rt + rt_len && rt < off + len);
}

/* A data cluster that points into metadata: writing it would destroy the image. */
static int check_data_target(struct qcow2 *q, uint64_t host, uint64_t len)
{
	if (q->data != q->file || !qcow2_overlaps_metadata(q, host, len))
		return 0;
	qcow2_signal_corruption(q, "data at host offset 0x%" PRIx64 " overlaps the header, L1 or "
				"refcount table", host);
	return -EIO;
}

int qcow2_barrier(struct qcow2 *q)
{
	/* refcount changes a group held back are written before whatever follows the barrier */
	int ret = qcow2_rc_flush(q);

	if (ret || !q->ordered)
		return ret;
	ret = blockdev_flush(q->file);
	if (!ret && q->data != q->file)
		ret = blockdev_flush(q->data);
	return ret;
}

int qcow2_header_update(struct qcow2 *q, unsigned from, unsigned to)
{
	uint8_t buf[QCOW2_HEADER_LEN] = { 0 };

	qcow2_header_put_fixed(&q->h, buf);
	return blockdev_pwrite(q->file, from, buf + from, to - from);
}

/* Writes the corrupt bit once a corruption was found (lock held). */
static int check_corrupt(struct qcow2 *q)
{
	if (!atomic_load_explicit(&q->corrupt, memory_order_relaxed))
		return 0;
	if (q->h.version >= 3 && !(q->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
		q->h.incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
		qcow2_header_update(q, 72, 80);
		blockdev_flush(q->file);
	}
	return -EIO;
}

static int write_l1_entry(struct qcow2 *q, uint64_t l1i, uint64_t v)
{
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	uint8_t raw[8];
	int ret;

	qcow2_put_be64(raw, v);
	ret = blockdev_pwrite(q->file, q->h.l1_table_offset + l1i * 8, raw, 8);
	if (!ret)
		/* release: the new L2 table's contents (file and cache) before its pointer */
		atomic_store_explicit(&l1->e[l1i], v, memory_order_release);
	return ret;
}

/*
 * The L2 table at @old (L1 index @l1i) has no "copied" flag: an internal snapshot may share it.
 * If its refcount is 1 it is ours after all; otherwise write a private copy whose entries lose
 * their "copied" flag (so data clusters are copied on their next write), point the L1 entry at
 * the copy, and drop our reference to the shared table. A data cluster's refcount counts the
 * L1 tables that reach it, which this does not change.
 */
static int cow_l2(struct qcow2 *q, uint64_t l1i, uint64_t *l2)
{
	uint64_t old = *l2, rc, n = 1ULL << q->l2_bits;

	uint8_t *buf;
	int64_t nl2;
	int ret;

	if (q->data != q->file)
		return -ENOTSUP; /* snapshots and external data files do not mix */
	if ((ret = qcow2_rc_get(q, old >> q->cluster_bits, &rc)))
		return ret;
	if (rc == 1)
		return write_l1_entry(q, l1i, old | QCOW2_OFLAG_COPIED);
	buf = malloc(q->cluster_size);
	if (!buf)
		return -ENOMEM;
	ret = blockdev_pread(q->file, old, buf, q->cluster_size);
	for (uint64_t i = 0; i < n && !ret; i++) {
		uint8_t *p = buf + 8 * q->entry_words * i;

		qcow2_put_be64(p, qcow2_be64(p) & ~QCOW2_OFLAG_COPIED);
	}
	nl2 = ret ? ret : qcow2_alloc_clusters(q, 1);
	if (nl2 < 0) {
		free(buf);
		return (int)nl2;
	}
	ret = blockdev_pwrite(q->file, (uint64_t)nl2, buf, q->cluster_size);
	free(buf);
	if (!ret)
		ret = qcow2_barrier(q);
	if (!ret)
		ret = write_l1_entry(q, l1i, (uint64_t)nl2 | QCOW2_OFLAG_COPIED);
	if (!ret)
		ret = qcow2_barrier(q);
	if (!ret)
		ret = qcow2_free_range(q, old, q->cluster_size);
	*l2 = (uint64_t)nl2;
	return ret;
}

/* The L2 table for L1 index @l1i, allocated if missing (lock held). */
static int ensure_l2(struct qcow2 *q, uint64_t l1i, uint64_t *l2)
{
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	uint64_t e = atomic_load_explicit(&l1->e[l1i], memory_order_relaxed);
	uint8_t *zero;
	int64_t off;
	int ret;

	*l2 = e & QCOW2_OFFSET_MASK;
	if (*l2 && (e & QCOW2_OFLAG_COPIED))
		return 0;
	if (*l2)
		return cow_l2(q, l1i, l2);
	off = qcow2_alloc_clusters(q, 1);
	if (off < 0)
		return (int)off;
	zero = calloc(1, q->cluster_size);
	if (!zero)
		return -ENOMEM;
	ret = blockdev_pwrite(q->file, (uint64_t)off, zero, q->cluster_size);
	free(zero);
	if (!ret)
		ret = qcow2_barrier(q);
	if (!ret)
		ret = write_l1_entry(q, l1i, (uint64_t)off | QCOW2_OFLAG_COPIED);
	*l2 = (uint64_t)off;
	return ret;
}

/* Current contents of guest bytes [gco+from, gco+to) of the cluster at guest offset @gco whose
 * L2 entry is @e, into @dst (which receives to-from bytes). Lock held. */
static int cur_content(struct qcow2 *q, uint64_t gco, const uint64_t *e, uint64_t l2,
		       uint64_t idx, uint64_t from, uint64_t to, uint8_t *dst)
{
	uint64_t unit = 1ULL << q->sc_bits;
	int ret = 0;

	if (from >= to)
		return 0;
	if (e[0] & QCOW2_OFLAG_COMPRESSED) {
		uint8_t *tmp = malloc(q->cluster_size);

		if (!tmp)
			return -ENOMEM;
		ret = qcow2_decompress(q, e[0], tmp);
		if (!ret)
			memcpy(dst, tmp + from, to - from);
		free(tmp);
		return ret;
	}
	for (uint64_t pos = from; pos < to && !ret;) {
		uint64_t n = MIN(to, ALIGN_DOWN(pos, unit) + unit) - pos;
		struct qcow2_run r;

		ret = qcow2_decode(q, e, (unsigned)(pos >> q->sc_bits), l2, idx, &r);
		if (ret)
			break;
		if (r.kind == QCOW2_DATA)
			ret = blockdev_pread(q->data, r.host + (pos & (unit - 1)), dst + pos - from,
					     n);
		else if (r.kind == QCOW2_ZERO)
			memset(dst + pos - from, 0, n);
		else
			ret = qcow2_read_backing(q, gco + pos, dst + pos - from, n);
		pos += n;
	}
	return ret;
}

/* Host cluster for a new guest cluster: allocated, or the guest offset in a data file. */
static int64_t new_cluster(struct qcow2 *q, uint64_t gco)
{
	if (q->data != q->file)
		return (int64_t)gco;
	return qcow2_alloc_clusters(q, 1);
}

/* Gives back a cluster new_cluster() allocated that nothing points to yet (its data write
 * failed); a failure here only leaks it. */
static void drop_new_cluster(struct qcow2 *q, uint64_t host)
{
	if (q->data == q->file)
		qcow2_free_range(q, host, q->cluster_size);
}

/* Drops the reference an L2 entry held (after the entry no longer points there). */
static int release_entry(struct qcow2 *q, uint64_t e0)
{
	if (q->data != q->file)
		return 0;
	if (e0 & QCOW2_OFLAG_COMPRESSED) {
		unsigned x = 62 - (q->cluster_bits - 8);
		uint64_t coff = e0 & ((1ULL << x) - 1);
		uint64_t nsec = (e0 >> x) & ((1ULL << (q->cluster_bits - 8)) - 1);

		return qcow2_free_range(q, ALIGN_DOWN(coff, 512), (nsec + 1) * 512);
	}
	if (e0 & QCOW2_OFFSET_MASK)
		return qcow2_free_range(q, e0 & QCOW2_OFFSET_MASK, q->cluster_size);
	return 0;
}

/*
 * Group commit: the data write of a fresh cluster (and the copy of the rest of it from the
 * backing file, or zeroes) is not done under the lock one after the other but kept with the
 * staged entry and run by the commit, before its barrier, by up to DATA_IO_THREADS threads at
 * once (this thread and the image's pool of helpers, qcow2_pool.c: they only read the backing
 * file and write q->data, never metadata). Until then the cluster is allocated (refcount 1) and its entry staged, which
 * nobody outside the group sees.
 */
#define DATA_IO_THREADS 8
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
	d->ret = ret ? ret : blockdev_pwrite(q->data, d->host, d->src ? d->src : d->buf, c);
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
static void drop_failed(struct qcow2 *q)
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

	for (size_t i = 0; i < b.n; i++)
		count += q->pending[i].io != NULL;
	if (!count)
		return;
	atomic_init(&b.next, 0);
	qcow2_pool_run(q, count > 1 ? DATA_IO_THREADS - 1 : 0, data_io_share, &b);
	for (size_t i = 0; i < q->nr_pending; i++) {
		struct qcow2_pending *p = &q->pending[i];

		if (p->io && p->io->ret && q->group_w[p->job].ret >= 0)
			q->group_w[p->job].ret = p->io->ret;
	}
	drop_failed(q);
	for (size_t i = 0; i < q->nr_pending; i++) {
		free(q->pending[i].io);
		q->pending[i].io = NULL;
	}
	q->deferred_bytes = 0;
}

/*
 * Publishing L2 entries is batched per request: commit_entry() stages the new entry of a cluster
 * whose data (and refcount) were just written; qcow2_commit() then does one barrier for all of
 * them, writes the entries, and (after another barrier) drops the references to what they
 * replaced. Called before q->lock is released, so nobody sees a staged entry half done.
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
	ret = qcow2_barrier(q); /* refcounts and data before the entries that point to them */
	if (!ret)
		ret = publish(q, q->pending, n);
	for (size_t i = 0; i < n && !ret && !release; i++)
		release = replaces_cluster(&q->pending[i]);
	if (!ret && release) {
		ret = qcow2_barrier(q); /* the entries no longer point there before it is reused */
		for (size_t i = 0; i < n && !ret; i++)
			if (replaces_cluster(&q->pending[i]))
				ret = release_entry(q, q->pending[i].old[0]);
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

static int commit_entry(struct qcow2 *q, uint64_t l2, uint64_t idx, const uint64_t *old,
			const uint64_t *ne)
{
	return stage_entry(q, l2, idx, old, ne, NULL);
}

/* Whether the entry at index @idx of the L2 table at @l2 is staged (not yet published). */
static bool is_staged(const struct qcow2 *q, uint64_t l2, uint64_t idx)
{
	for (size_t i = q->nr_pending; i-- > 0;)
		if (q->pending[i].l2 == l2 && q->pending[i].idx == idx)
			return true;
	return false;
}

/* Commits what the locked section staged, then releases the lock. */
static int unlock_commit(struct qcow2 *q, int ret)
{
	int r = qcow2_commit(q);

	pthread_mutex_unlock(&q->lock);
	return ret ? ret : r;
}

/* In a group: stages the entry of the fresh cluster @host with its data write deferred. */
static int defer_whole(struct qcow2 *q, uint64_t gco, uint64_t l2, uint64_t idx,
		       const uint64_t *e, uint64_t host, uint64_t a, const uint8_t *p, uint64_t n,
		       bool zero_rest)
{
	bool whole = a == 0 && n == q->cluster_size;
	uint64_t ne[2] = { host | QCOW2_OFLAG_COPIED, 0xffffffffu };
	struct qcow2_data_io *d = NULL;
	int ret = check_data_target(q, host, q->cluster_size);

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
		drop_new_cluster(q, host);
		return ret;
	}
	if (!whole && (q->deferred_bytes += q->cluster_size) >= MAX_DEFERRED_BYTES)
		run_data_io(q);
	return 0;
}

/* Rewrites the whole cluster into a fresh host cluster (standard entries, or a compressed or
 * shared cluster with extended entries). @defer: in a group, with an unallocated or zero
 * cluster (whose current contents come from the backing file or are zeroes). */
static int write_whole(struct qcow2 *q, uint64_t gco, uint64_t l2, uint64_t idx,
		       const uint64_t *e, uint64_t a, const uint8_t *p, uint64_t n, bool zero_rest,
		       bool defer)
{
	uint64_t host = e[0] & QCOW2_OFFSET_MASK, ne[2];
	bool in_place = !(e[0] & QCOW2_OFLAG_COMPRESSED) && (e[0] & QCOW2_OFLAG_COPIED) &&
			(host || q->data != q->file);
	uint8_t *buf = q->cbuf2;
	int ret;

	if (!in_place) {
		int64_t h = new_cluster(q, gco);

		if (h < 0)
			return (int)h;
		host = (uint64_t)h;
		if (defer)
			return defer_whole(q, gco, l2, idx, e, host, a, p, n, zero_rest);
	}
	if (a == 0 && n == q->cluster_size) {
		buf = (uint8_t *)p; /* the whole cluster is new: write it straight from the caller */
		goto write;
	}
	if (zero_rest) {
		memset(buf, 0, q->cluster_size);
	} else {
		ret = cur_content(q, gco, e, l2, idx, 0, a, buf);
		if (!ret)
			ret = cur_content(q, gco, e, l2, idx, a + n, q->cluster_size, buf + a + n);
		if (ret)
			goto fail;
	}
	memcpy(buf + a, p, n);
write:
	ret = check_data_target(q, host, q->cluster_size) ?:
	      blockdev_pwrite(q->data, host, buf, q->cluster_size);
	if (ret)
		goto fail;
	ne[0] = host | QCOW2_OFLAG_COPIED;
	ne[1] = 0xffffffffu; /* extended: every subcluster allocated */
	return commit_entry(q, l2, idx, e, ne);
fail:
	if (!in_place)
		drop_new_cluster(q, host);
	return ret;
}

/* Extended L2, a cluster without a host cluster or one we own: touch only the subclusters
 * written, filling their unwritten parts from their current contents. */
static int write_subclusters(struct qcow2 *q, uint64_t gco, uint64_t l2, uint64_t idx,
			     const uint64_t *e, uint64_t a, const uint8_t *p, uint64_t n)
{
	uint64_t unit = 1ULL << q->sc_bits, lo = ALIGN_DOWN(a, unit), hi = ALIGN_UP(a + n, unit);
	uint64_t host = e[0] & QCOW2_OFFSET_MASK, ne[2];
	bool fresh = !host;
	uint32_t mask = 0;
	uint8_t *buf = q->cbuf2;
	int ret;

	if (!host && q->data == q->file) {
		int64_t h = new_cluster(q, gco);

		if (h < 0)
			return (int)h;
		host = (uint64_t)h;
	} else if (!host) {
		host = gco;
	}
	for (uint64_t s = lo >> q->sc_bits; s < hi >> q->sc_bits; s++)
		mask |= 1u << s;
	ret = cur_content(q, gco, e, l2, idx, lo, a, buf);
	if (!ret)
		ret = cur_content(q, gco, e, l2, idx, a + n, hi, buf + (a + n - lo));
	if (!ret) {
		memcpy(buf + (a - lo), p, n);
		ret = check_data_target(q, host + lo, hi - lo) ?:
		      blockdev_pwrite(q->data, host + lo, buf, hi - lo);
	}
	if (ret) {
		if (fresh)
			drop_new_cluster(q, host);
		return ret;
	}
	ne[0] = host | QCOW2_OFLAG_COPIED;
	ne[1] = (e[1] | mask) & ~((uint64_t)mask << 32);
	return commit_entry(q, l2, idx, e, ne);
}

/* One write inside one cluster (lock held). */
static int write_locked(struct qcow2 *q, uint64_t off, const uint8_t *p, uint64_t n)
{
	uint64_t gco = ALIGN_DOWN(off, q->cluster_size), a = off - gco, l2, e[2] = { 0, 0 };
	uint64_t gc = off >> q->cluster_bits, idx = gc & ((1ULL << q->l2_bits) - 1);
	uint64_t host;
	int ret = check_corrupt(q);

	if (ret || (ret = ensure_l2(q, gc >> q->l2_bits, &l2)) ||
	    /* in a group: publish an earlier write's entry for this cluster before reading it */
	    (q->grouping && is_staged(q, l2, idx) && (ret = qcow2_commit(q))) ||
	    (ret = qcow2_l2_get(q, l2, idx, e)))
		return ret;
	host = e[0] & QCOW2_OFFSET_MASK;
	if (!q->ext_l2) {
		struct qcow2_run r;
		bool fresh;

		if ((ret = qcow2_decode(q, e, 0, l2, idx, &r)))
			return ret;
		if (r.kind == QCOW2_DATA && r.copied)
			return check_data_target(q, r.host + a, n) ?:
			       blockdev_pwrite(q->data, r.host + a, p, n);
		fresh = r.kind == QCOW2_ZERO || r.kind == QCOW2_UNALLOCATED; /* 0s or backing */
		return write_whole(q, gco, l2, idx, e, a, p, n, r.kind == QCOW2_ZERO,
				   q->grouping && fresh);
	}
	if ((e[0] & QCOW2_OFLAG_COMPRESSED) || (host && !(e[0] & QCOW2_OFLAG_COPIED)))
		return write_whole(q, gco, l2, idx, e, a, p, n, false, false);
	return write_subclusters(q, gco, l2, idx, e, a, p, n);
}

/*
 * Whole fresh clusters from @off (cluster-aligned) on, in one L2 table: standard entries that
 * are unallocated (so nothing to copy: every byte is overwritten), without a data file. They
 * get one contiguous host run, one data write and their entries staged together, rather than
 * a 64 KiB write each (a fresh image filled by convert: ~25% less CPU, large page-cache folios).
 * Returns the bytes written, 0 when not applicable (go cluster by cluster), or -errno. Lock held.
 */
static int64_t write_fresh_run(struct qcow2 *q, uint64_t off, const uint8_t *p, uint64_t len)
{
	uint64_t gc = off >> q->cluster_bits, idx = gc & ((1ULL << q->l2_bits) - 1), l2, k;
	uint64_t max = MIN(len >> q->cluster_bits, (1ULL << q->l2_bits) - idx);
	int64_t host;
	int ret;

	if (q->ext_l2 || q->data != q->file || (off & (q->cluster_size - 1)) || max < 2 ||
	    (ret = check_corrupt(q)))
		return 0;
	if ((ret = ensure_l2(q, gc >> q->l2_bits, &l2)))
		return ret;
	for (k = 0; k < max; k++) {
		uint64_t e[2] = { 0, 0 };

		if ((ret = qcow2_l2_get(q, l2, idx + k, e)))
			return ret;
		if (e[0])
			break;
	}
	if (k < 2)
		return 0;
	host = qcow2_alloc_clusters(q, k);
	if (host < 0)
		return host;
	ret = check_data_target(q, (uint64_t)host, k << q->cluster_bits) ?:
	      blockdev_pwrite(q->data, (uint64_t)host, p, k << q->cluster_bits);
	if (ret) { /* nothing points at the run yet: give it back */
		qcow2_free_range(q, (uint64_t)host, k << q->cluster_bits);
		return ret;
	}
	for (uint64_t i = 0; i < k && !ret; i++) {
		uint64_t old[2] = { 0, 0 };
		uint64_t ne[2] = { ((uint64_t)host + (i << q->cluster_bits)) | QCOW2_OFLAG_COPIED, 0 };

		ret = commit_entry(q, l2, idx + i, old, ne);
	}
	return ret ? ret : (int64_t)(k << q->cluster_bits);
}

int qcow2_write(struct qcow2 *q, uint64_t off, const void *buf, uint64_t len)
{
	const uint8_t *p = buf;
	bool locked = false;
	int ret = 0;

	if (q->read_only)
		return -EROFS;
	while (len && !ret) {
		uint64_t n = MIN(len, q->cluster_size - (off & (q->cluster_size - 1)));
		struct qcow2_run run;

		ret = qcow2_lookup(q, off, n, false, &run);
		if (!ret && run.kind == QCOW2_DATA && run.copied && run.len == n &&
		    !atomic_load_explicit(&q->corrupt, memory_order_relaxed)) {
			ret = check_data_target(q, run.host, n) ?:
			      blockdev_pwrite(q->data, run.host, p, n);
		} else if (ret == 0 || ret == -EAGAIN) {
			/* the rest of the request stays under the lock: one commit for all of it */
			int64_t r;

			if (!locked)
				pthread_mutex_lock(&q->lock);
			locked = true;
			r = write_fresh_run(q, off, p, len);
			if (r > 0)
				n = (uint64_t)r;
			ret = r < 0 ? (int)r : r > 0 ? 0 : write_locked(q, off, p, n);
		}
		off += n;
		p += n;
		len -= n;
	}
	return locked ? unlock_commit(q, ret) : ret;
}

/* One write of a group: 1 when it staged entries, 0 when it did not, or -errno (lock held). A
 * commit inside it may fail it meanwhile (w->ret < 0: a deferred data write of it failed). */
static int group_one(struct qcow2 *q, const struct blockdev_write *w)
{
	uint64_t staged = q->nr_staged, off = w->offset;
	int ret = 0;

	for (int i = 0; i < w->iovcnt && !ret && w->ret >= 0; i++) {
		const uint8_t *p = w->iov[i].iov_base;
		uint64_t len = w->iov[i].iov_len;

		if (!range_within(off, len, q->bs->size))
			ret = -EINVAL;
		while (len && !ret && w->ret >= 0) {
			uint64_t n = MIN(len, q->cluster_size - (off & (q->cluster_size - 1)));

			ret = write_locked(q, off, p, n);
			off += n;
			p += n;
			len -= n;
		}
	}
	return ret ? ret : q->nr_staged != staged;
}

void qcow2_write_group(struct qcow2 *q, struct blockdev_write *w, size_t n)
{
	int ret;

	for (size_t i = 0; i < n; i++)
		w[i].ret = q->read_only ? -EROFS : 0;
	if (q->read_only)
		return;
	pthread_mutex_lock(&q->lock);
	q->grouping = true;
	q->group_err = 0;
	q->group_w = w;
	for (size_t i = 0; i < n; i++) {
		int r;

		q->group_job = i;
		r = group_one(q, &w[i]);
		if (r < 0 && w[i].ret >= 0)
			w[i].ret = r;
		if (w[i].ret < 0)
			drop_failed(q); /* nothing of a failed write is published */
		else
			w[i].ret = r;
	}
	ret = qcow2_commit(q) ?: q->group_err;
	q->grouping = false;
	/* what no barrier covered: decrements (a failure keeps them held back for the next
	 * write; until then they are leaks, nothing any write depends on) */
	qcow2_rc_flush(q);
	q->group_w = NULL;
	q->group_job = 0;
	pthread_mutex_unlock(&q->lock);
	for (size_t i = 0; i < n; i++)
		if (w[i].ret > 0)
			w[i].ret = ret;
}

/*
 * Compressed clusters are packed: q->zhost is the host cluster the last one went to and q->zused
 * the bytes of it taken; the next one is appended there when it fits (one more reference on that
 * host cluster), else it starts a fresh host cluster. None crosses a host cluster boundary, so
 * each holds exactly one reference on exactly one host cluster. Lock held.
 */
static int place_compressed(struct qcow2 *q, uint64_t clen, uint64_t *coff)
{
	uint64_t c = q->zhost >> q->cluster_bits, rc = 0;
	int64_t h;
	int ret;

	if (q->zhost && q->zused + clen <= q->cluster_size) {
		if ((ret = qcow2_rc_get(q, c, &rc)))
			return ret;
		if (rc && rc < qcow2_rc_max(q)) {
			if ((ret = qcow2_rc_set(q, c, rc + 1)))
				return ret;
			goto place;
		}
	}
	h = qcow2_alloc_clusters(q, 1);
	if (h < 0)
		return (int)h;
	q->zhost = (uint64_t)h;
	q->zused = 0;
place:
	*coff = q->zhost + q->zused;
	q->zused += clen;
	return 0;
}

int qcow2_pwrite_compressed(struct blockdev *bs, uint64_t off, const void *buf, uint64_t len)
{
	return qcow2_write_compressed(qcow2_of(bs), off, buf, len);
}

int qcow2_write_compressed(struct qcow2 *q, uint64_t off, const void *buf, uint64_t len)
{
	uint64_t gc = off >> q->cluster_bits, idx = gc & ((1ULL << q->l2_bits) - 1);
	uint64_t l2, coff = 0, nsec, e[2] = { 0, 0 }, ne[2];
	unsigned x = 62 - (q->cluster_bits - 8);
	uint8_t *src, *dst;
	int64_t clen;
	int ret;

	if (q->read_only)
		return -EROFS;
	if (q->data != q->file)
		return -ENOTSUP; /* an external data file holds no compressed clusters */
	if (!IS_ALIGNED(off, q->cluster_size) || !len || len > q->cluster_size ||
	    (len < q->cluster_size && off + len != q->bs->size))
		return -EINVAL;
	src = calloc(1, q->cluster_size);
	dst = malloc(q->cluster_size);
	if (!src || !dst) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(src, buf, len); /* the image's last cluster: padded with zeroes */
	clen = qcow2_compress(q, src, dst, q->cluster_size - 1);
	if (clen == -ENOSPC) { /* does not shrink: store it as it is */
		ret = qcow2_write(q, off, buf, len);
		goto out;
	}
	if (clen < 0) {
		ret = (int)clen;
		goto out;
	}
	pthread_mutex_lock(&q->lock);
	if ((ret = check_corrupt(q)) || (ret = ensure_l2(q, gc >> q->l2_bits, &l2)) ||
	    (ret = qcow2_l2_get(q, l2, idx, e)) ||
	    (ret = place_compressed(q, (uint64_t)clen, &coff)) ||
	    (ret = check_data_target(q, coff, (uint64_t)clen)) ||
	    (ret = blockdev_pwrite(q->file, coff, dst, (uint64_t)clen)))
		goto unlock;
	/* the descriptor: byte offset, then the 512-byte sectors touched beyond the first */
	nsec = ((coff & 511) + (uint64_t)clen + 511) / 512 - 1;
	ne[0] = QCOW2_OFLAG_COMPRESSED | (nsec << x) | coff;
	ne[1] = 0; /* extended L2: no subcluster bitmap for compressed clusters */
	ret = commit_entry(q, l2, idx, e, ne);
unlock:
	ret = unlock_commit(q, ret);
out:
	free(src);
	free(dst);
	return ret;
}

/* Makes whole clusters or subclusters of one cluster read as zeroes (lock held). */
static int zero_locked(struct qcow2 *q, uint64_t off, uint64_t n, unsigned int flags)
{
	uint64_t gc = off >> q->cluster_bits, l1i = gc >> q->l2_bits, l2, e[2] = { 0, 0 }, ne[2];
	uint64_t idx = gc & ((1ULL << q->l2_bits) - 1), a = off & (q->cluster_size - 1);
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	uint64_t host;
	int ret = check_corrupt(q);

	if (ret)
		return ret;
	if (!(atomic_load_explicit(&l1->e[l1i], memory_order_relaxed) & QCOW2_OFFSET_MASK) &&
	    !q->bs->backing)
		return 0; /* no L2 table, no backing: already reads zeroes */
	if ((ret = ensure_l2(q, l1i, &l2)) || (ret = qcow2_l2_get(q, l2, idx, e)))
		return ret;
	host = e[0] & QCOW2_OFFSET_MASK;
	if (q->ext_l2 &&
	    ((e[0] & QCOW2_OFLAG_COMPRESSED) || (host && !(e[0] & QCOW2_OFLAG_COPIED)))) {
		uint8_t *zero = calloc(1, n);

		if (!zero)
			return -ENOMEM;
		ret = write_whole(q, off - a, l2, idx, e, a, zero, n, false, false);
		free(zero);
		return ret;
	}
	if (q->ext_l2) {
		uint32_t mask = 0;

		for (uint64_t s = a >> q->sc_bits; s < (a + n) >> q->sc_bits; s++)
			mask |= 1u << s;
		ne[0] = e[0];
		ne[1] = (e[1] & ~(uint64_t)mask) | ((uint64_t)mask << 32);
		if ((uint32_t)ne[1] == 0 && host && (flags & BLOCKDEV_ZERO_MAY_UNMAP)) {
			ne[0] = 0; /* nothing left allocated: give the cluster back */
		}
		return commit_entry(q, l2, idx, e, ne);
	}
	bool keep = host && (e[0] & QCOW2_OFLAG_COPIED) && !(flags & BLOCKDEV_ZERO_MAY_UNMAP) &&
		    !(e[0] & QCOW2_OFLAG_COMPRESSED);

	ne[0] = QCOW2_OFLAG_ZERO | (keep ? host | QCOW2_OFLAG_COPIED : 0);
	ne[1] = 0;
	return commit_entry(q, l2, idx, e, ne);
}

static bool can_zero_in_metadata(const struct qcow2 *q)
{
	return q->h.version >= 3 && !(q->h.autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW);
}

int qcow2_zero_range(struct qcow2 *q, uint64_t off, uint64_t len, unsigned int flags)
{
	uint64_t unit = 1ULL << q->sc_bits;
	uint8_t *zero = NULL;
	bool locked = false;
	int ret = 0;

	if (q->read_only)
		return -EROFS;
	while (len && !ret) {
		uint64_t n = MIN(len, q->cluster_size - (off & (q->cluster_size - 1)));

		if (can_zero_in_metadata(q) && IS_ALIGNED(off, unit) && n >= unit) {
			n = ALIGN_DOWN(n, unit);
			if (!locked)
				pthread_mutex_lock(&q->lock);
			locked = true;
			ret = zero_locked(q, off, n, flags);
		} else {
			if (locked && (ret = unlock_commit(q, 0)))
				break;
			locked = false;
			if (!can_zero_in_metadata(q) && !q->bs->backing) {
				struct qcow2_run run;

				ret = qcow2_lookup(q, off, n, false, &run);
				if (!ret && run.kind == QCOW2_UNALLOCATED) {
					n = run.len;
					goto next;
				}
			}
			n = MIN(n, IS_ALIGNED(off, unit) ? n : unit - (off & (unit - 1)));
			if (!zero && !(zero = calloc(1, q->cluster_size))) {
				ret = -ENOMEM;
				break;
			}
			ret = qcow2_write(q, off, zero, n);
		}
next:
		off += n;
		len -= n;
	}
	free(zero);
	return locked ? unlock_commit(q, ret) : ret;
}

/*
 * Discards a whole cluster that is unallocated (lock held). Without a backing file (or past its
 * end) it reads zeroes already. Over a backing file a v3 image makes it a zero cluster, so that
 * a discarded cluster reads zeroes whatever it held, as an allocated one does below and as
 * QEMU's qcow2 does (a v2 image cannot: its discarded clusters show the backing file).
 */
static int discard_unallocated(struct qcow2 *q, uint64_t off, bool full)
{
	if (full || !q->bs->backing || off >= q->bs->backing->size || !can_zero_in_metadata(q))
		return 0;
	return zero_locked(q, off, q->cluster_size, 0);
}

/* Discards one cluster; @full: it becomes unallocated (reads the backing file again). */
static int discard_locked(struct qcow2 *q, uint64_t off, bool full)
{
	uint64_t gc = off >> q->cluster_bits, l1i = gc >> q->l2_bits, l2, e[2] = { 0, 0 }, ne[2];
	uint64_t idx = gc & ((1ULL << q->l2_bits) - 1);
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	uint64_t l1e = atomic_load_explicit(&l1->e[l1i], memory_order_relaxed);
	int ret = check_corrupt(q);

	if (ret)
		return ret;
	if (!(l1e & QCOW2_OFFSET_MASK))
		return discard_unallocated(q, off, full);
	if (!(l1e & QCOW2_OFLAG_COPIED))
		return 0; /* shared with a snapshot: leave it */
	l2 = l1e & QCOW2_OFFSET_MASK;
	if ((ret = qcow2_l2_get(q, l2, idx, e)))
		return ret;
	if (!e[0] && !e[1])
		return discard_unallocated(q, off, full);
	/* v3: the cluster reads as zeroes (not the backing file's data, not stale data) */
	ne[0] = q->h.version >= 3 && !q->ext_l2 && !full ? QCOW2_OFLAG_ZERO : 0;
	ne[1] = q->ext_l2 && !full ? 0xffffffff00000000ULL : 0;
	if (!full && !q->bs->backing && !(e[0] & QCOW2_OFFSET_MASK) &&
	    !(e[0] & QCOW2_OFLAG_COMPRESSED))
		return 0;
	return commit_entry(q, l2, idx, e, ne);
}

/*
 * The part of a discard that covers a cluster only partly: zeroed, so that a discarded range
 * always reads back as zeroes (as whole clusters do above, and as a hole punched in a raw file
 * does), unless it reads as zeroes already. Called without the lock (qcow2_zero_range takes it).
 */
static int discard_partial(struct qcow2 *q, uint64_t off, uint64_t n)
{
	struct qcow2_run run;
	int ret;

	while (n) {
		uint64_t len;
		bool zero;

		ret = qcow2_lookup(q, off, n, false, &run);
		if (ret == -EAGAIN) { /* cache miss: load the slice under the lock */
			pthread_mutex_lock(&q->lock);
			ret = qcow2_lookup(q, off, n, true, &run);
			pthread_mutex_unlock(&q->lock);
		}
		if (ret)
			return ret;
		len = MIN(run.len, n);
		zero = run.kind == QCOW2_ZERO ||
		       (run.kind == QCOW2_UNALLOCATED &&
			(!q->bs->backing || off >= q->bs->backing->size));
		if (!zero && (ret = qcow2_zero_range(q, off, len, 0)))
			return ret;
		off += len;
		n -= len;
	}
	return 0;
}

static int discard(struct qcow2 *q, uint64_t off, uint64_t len, bool full)
{
	uint64_t end = off + len, head, tail;
	int ret = 0;

	if (q->read_only)
		return -EROFS;
	if (q->h.autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW)
		return 0; /* the data file must stay a faithful raw image: keep the data */
	head = MIN(ALIGN_UP(off, q->cluster_size), end);
	tail = end == q->bs->size ? end : MAX(ALIGN_DOWN(end, q->cluster_size), head);
	if (!full && ((ret = discard_partial(q, off, head - off)) ||
		      (ret = discard_partial(q, tail, end - tail))))
		return ret;
	off = head;
	end = tail;
	pthread_mutex_lock(&q->lock);
	for (; off < end && !ret; off += q->cluster_size)
		ret = discard_locked(q, off, full);
	return unlock_commit(q, ret);
}

int qcow2_discard_range(struct qcow2 *q, uint64_t off, uint64_t len)
{
	return discard(q, off, len, false);
}

int qcow2_make_empty(struct blockdev *bs, struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	int ret;

	if (q->data != q->file) {
		/* guest clusters of a data file are not refcounted: keep them */
		error_setg(errp, "'%s': an image with an external data file cannot be emptied",
			   bs->filename);
		return -1;
	}
	ret = discard(q, 0, q->bs->size, true);
	if (ret)
		error_setg_errno(errp, ret, "'%s': emptying the image", bs->filename);
	return ret ? -1 : 0;
}

int qcow2_change_backing(struct blockdev *bs, const char *name, const char *fmt,
			 struct error **errp)
{
	struct qcow2 *q = qcow2_node(bs, errp);
	struct qcow2_header h;
	uint8_t *buf;
	int ret;

	if (!q)
		return -1;
	if (q->read_only || strlen(name) > QCOW2_MAX_BACKING_NAME ||
	    (fmt && strlen(fmt) > QCOW2_MAX_BACKING_NAME)) {
		error_setg(errp, "'%s': cannot change the backing file: %s", bs->filename,
			   q->read_only ? "read-only" : "name too long");
		return -1;
	}
	if (name[0] && (q->h.autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW)) {
		error_setg(errp, "'%s': an image with a raw data file cannot have a backing file",
			   bs->filename);
		return -1;
	}
	buf = calloc(1, q->cluster_size);
	if (!buf) {
		error_setg(errp, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	h = q->h; /* shares the extension arrays: serialize only reads them */
	snprintf(h.backing_file, sizeof(h.backing_file), "%s", name);
	snprintf(h.backing_fmt, sizeof(h.backing_fmt), "%s", fmt && name[0] ? fmt : "");
	h.has_backing_fmt = fmt && name[0];
	ret = qcow2_header_serialize(&h, buf, q->cluster_size, errp) ? -EINVAL : 0;
	if (!ret)
		ret = blockdev_pwrite(q->file, 0, buf, q->cluster_size);
	if (!ret)
		ret = blockdev_flush(q->file);
	if (!ret)
		q->h = h;
	else if (ret != -EINVAL)
		error_setg_errno(errp, ret, "'%s': writing the header", bs->filename);
	pthread_mutex_unlock(&q->lock);
	free(buf);
	return ret ? -1 : 0;
}

/* A bigger L1 table, written to fresh clusters and switched to in the header (lock held). */
static int grow_l1(struct qcow2 *q, uint64_t need, struct error **errp)
{
	struct qcow2_l1 *old = atomic_load_explicit(&q->l1, memory_order_relaxed), *nl1;
	uint64_t bytes = ALIGN_UP(need * 8, q->cluster_size), entries = bytes / 8;
	uint64_t old_off = q->h.l1_table_offset, old_size = q->h.l1_size;
	uint8_t *raw;
	int64_t off;
	int ret;

	if (bytes > QCOW2_MAX_L1_BYTES || q->nr_retired == ARRAY_SIZE(q->l1_retired)) {
		error_setg(errp, "the L1 table would need %" PRIu64 " entries: too many (or too "
			   "many resizes in one session)", need);
		return -1;
	}
	nl1 = calloc(1, sizeof(*nl1) + entries * 8);
	raw = calloc(1, bytes);
	if (!nl1 || !raw) {
		ret = -ENOMEM;
		goto fail;
	}
	nl1->size = (uint32_t)entries;
	for (uint32_t i = 0; i < old->size; i++) {
		uint64_t v = atomic_load_explicit(&old->e[i], memory_order_relaxed);

		atomic_store_explicit(&nl1->e[i], v, memory_order_relaxed);
		qcow2_put_be64(raw + 8 * i, v);
	}
	off = qcow2_alloc_clusters(q, bytes >> q->cluster_bits);
	ret = off < 0 ? (int)off : blockdev_pwrite(q->file, (uint64_t)off, raw, bytes);
	if (!ret)
		ret = qcow2_barrier(q);
	if (ret)
		goto fail;
	q->h.l1_table_offset = (uint64_t)off;
	q->h.l1_size = (uint32_t)entries;
	ret = qcow2_header_update(q, 36, 48);
	if (!ret)
		ret = qcow2_barrier(q);
	if (ret) {
		q->h.l1_table_offset = old_off;
		q->h.l1_size = (uint32_t)old_size;
		goto fail;
	}
	/* release: the copied entries before the new table's pointer; the old array stays alive
	 * (retired) because a reader may still hold it */
	atomic_store_explicit(&q->l1, nl1, memory_order_release);
	q->l1_retired[q->nr_retired++] = old;
	free(raw);
	if (old_size)
		return qcow2_free_range(q, old_off, ALIGN_UP(old_size * 8, q->cluster_size)) ? -1
											     : 0;
	return 0;
fail:
	error_setg_errno(errp, ret, "growing the L1 table");
	free(nl1);
	free(raw);
	return -1;
}

/*
 * Before the size drops: the guest clusters past the new end become unallocated (their host
 * clusters are freed) and the kept part of the last cluster past the end is zeroed, so that
 * growing the image later shows zeroes there, not old data. The L1 table keeps its size.
 */
static int drop_tail(struct qcow2 *q, uint64_t size, struct error **errp)
{
	uint64_t keep = ALIGN_UP(size, q->cluster_size);
	int ret = 0;

	if (q->h.nb_snapshots) {
		error_setg(errp, "'%s': shrinking an image with internal snapshots is not supported",
			   q->bs->filename);
		return -1;
	}
	if (keep > size)
		ret = qcow2_zero_range(q, size, MIN(keep, q->h.size) - size, 0);
	if (!ret && keep < q->h.size)
		ret = discard(q, keep, q->h.size - keep, true);
	if (ret)
		error_setg_errno(errp, ret, "'%s': freeing the clusters past the new end",
				 q->bs->filename);
	return ret ? -1 : 0;
}

int qcow2_resize(struct qcow2 *q, uint64_t size, struct error **errp)
{
	uint64_t need = qcow2_l1_entries_for(size, q->cluster_bits, q->ext_l2), old = q->h.size;
	int ret = 0;

	if (q->read_only) {
		error_setg(errp, "%s is read-only", q->bs->filename);
		return -1;
	}
	if (size < q->h.size && drop_tail(q, size, errp))
		return -1;
	/* an external data file follows the virtual size (it is the disk when raw): grown before
	 * the header says more, cut after it says less */
	if (q->data != q->file && size > q->data->size && blockdev_truncate(q->data, size, errp))
		return -1;
	pthread_mutex_lock(&q->lock);
	if (need > atomic_load_explicit(&q->l1, memory_order_relaxed)->size &&
	    grow_l1(q, need, errp))
		ret = -1;
	if (!ret) {
		q->h.size = size;
		if (qcow2_header_update(q, 24, 32) || qcow2_barrier(q)) {
			q->h.size = old;
			error_setg(errp, "writing the new size into the header of %s",
				   q->bs->filename);
			ret = -1;
		}
	}
	pthread_mutex_unlock(&q->lock);
	if (ret)
		return ret;
	q->bs->size = size;
	if (q->data != q->file && size < q->data->size && blockdev_truncate(q->data, size, errp))
		return -1;
	return 0;
}
