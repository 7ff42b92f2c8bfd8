/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 writes of guest data: in-place writes to clusters we own (no lock), and under q->lock
 * allocation and copy-on-write of partial clusters (from the backing file, a compressed or a
 * shared cluster): the whole cluster rewritten, or with extended L2 entries only the
 * subclusters written. qcow2_write() (the tools, zeroes written as data) keeps the rest of a
 * request under the lock once one cluster needs it and commits once at its end;
 * qcow2_write_group() runs every write the slow-path worker queued at the same time under one
 * hold of the lock, with one commit for all. What a commit orders, and the rules inside a
 * group, are in qcow2_commit.c.
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

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
			ret = qcow2_data_pread(q, r.host + (pos & (unit - 1)), dst + pos - from,
					     n);
		else if (r.kind == QCOW2_ZERO)
			memset(dst + pos - from, 0, n);
		else
			ret = qcow2_read_backing(q, gco + pos, dst + pos - from, n);
		pos += n;
	}
	return ret;
}

/* Rewrites the whole cluster into a fresh host cluster (standard entries, or a compressed or
 * shared cluster with extended entries). @defer: in a group, with an unallocated or zero
 * cluster (whose current contents come from the backing file or are zeroes). */
int qcow2_write_whole(struct qcow2 *q, uint64_t gco, uint64_t l2, uint64_t idx,
		      const uint64_t *e, uint64_t a, const uint8_t *p, uint64_t n, bool zero_rest,
		      bool defer)
{
	uint64_t host = e[0] & QCOW2_OFFSET_MASK, ne[2];
	bool in_place = !(e[0] & QCOW2_OFLAG_COMPRESSED) && (e[0] & QCOW2_OFLAG_COPIED) &&
			(host || q->data != q->file);
	uint8_t *buf = q->cbuf2;
	int ret;

	if (!in_place) {
		int64_t h = qcow2_new_cluster(q, gco);

		if (h < 0)
			return (int)h;
		host = (uint64_t)h;
		if (defer)
			return qcow2_defer_whole(q, gco, l2, idx, e, host, a, p, n, zero_rest);
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
	ret = qcow2_check_data_target(q, host, q->cluster_size) ?:
	      qcow2_data_pwrite(q, host, buf, q->cluster_size);
	if (ret)
		goto fail;
	ne[0] = host | QCOW2_OFLAG_COPIED;
	ne[1] = 0xffffffffu; /* extended: every subcluster allocated */
	return qcow2_commit_entry(q, l2, idx, e, ne);
fail:
	if (!in_place)
		qcow2_drop_new_cluster(q, host);
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
		int64_t h = qcow2_new_cluster(q, gco);

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
		ret = qcow2_check_data_target(q, host + lo, hi - lo) ?:
		      qcow2_data_pwrite(q, host + lo, buf, hi - lo);
	}
	if (ret) {
		if (fresh)
			qcow2_drop_new_cluster(q, host);
		return ret;
	}
	ne[0] = host | QCOW2_OFLAG_COPIED;
	ne[1] = (e[1] | mask) & ~((uint64_t)mask << 32);
	return qcow2_commit_entry(q, l2, idx, e, ne);
}

/* One write inside one cluster (lock held). */
static int write_locked(struct qcow2 *q, uint64_t off, const uint8_t *p, uint64_t n)
{
	uint64_t gco = ALIGN_DOWN(off, q->cluster_size), a = off - gco, l2, e[2] = { 0, 0 };
	uint64_t gc = off >> q->cluster_bits, idx = gc & ((1ULL << q->l2_bits) - 1);
	uint64_t host;
	int ret = qcow2_check_corrupt(q);

	if (ret || (ret = qcow2_ensure_l2(q, gc >> q->l2_bits, &l2)) ||
	    /* in a group: publish an earlier write's entry for this cluster before reading it */
	    (q->grouping && qcow2_is_staged(q, l2, idx) && (ret = qcow2_commit(q))) ||
	    (ret = qcow2_l2_get(q, l2, idx, e)))
		return ret;
	host = e[0] & QCOW2_OFFSET_MASK;
	if (!q->ext_l2) {
		struct qcow2_run r;
		bool fresh;

		if ((ret = qcow2_decode(q, e, 0, l2, idx, &r)))
			return ret;
		if (r.kind == QCOW2_DATA && r.copied)
			return qcow2_check_data_target(q, r.host + a, n) ?:
			       qcow2_data_pwrite(q, r.host + a, p, n);
		fresh = r.kind == QCOW2_ZERO || r.kind == QCOW2_UNALLOCATED; /* 0s or backing */
		return qcow2_write_whole(q, gco, l2, idx, e, a, p, n, r.kind == QCOW2_ZERO,
					 q->grouping && fresh);
	}
	if ((e[0] & QCOW2_OFLAG_COMPRESSED) || (host && !(e[0] & QCOW2_OFLAG_COPIED)))
		return qcow2_write_whole(q, gco, l2, idx, e, a, p, n, false, false);
	return write_subclusters(q, gco, l2, idx, e, a, p, n);
}

/*
 * Whole fresh clusters from @off (cluster-aligned) on, in one L2 table: standard entries that
 * are unallocated (so nothing to copy: every byte is overwritten), without a data file. They
 * get one contiguous host run, one data write and their entries staged together, rather than
 * a cluster-sized write each: fewer system calls, and larger page-cache folios, when convert
 * fills a fresh image.
 * Returns the bytes written, 0 when not applicable (go cluster by cluster), or -errno. Lock held.
 */
static int64_t write_fresh_run(struct qcow2 *q, uint64_t off, const uint8_t *p, uint64_t len)
{
	uint64_t gc = off >> q->cluster_bits, idx = gc & ((1ULL << q->l2_bits) - 1), l2, k;
	uint64_t max = MIN(len >> q->cluster_bits, (1ULL << q->l2_bits) - idx);
	int64_t host;
	int ret;

	if (q->ext_l2 || q->data != q->file || (off & (q->cluster_size - 1)) || max < 2 ||
	    (ret = qcow2_check_corrupt(q)))
		return 0;
	if ((ret = qcow2_ensure_l2(q, gc >> q->l2_bits, &l2)))
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
	ret = qcow2_check_data_target(q, (uint64_t)host, k << q->cluster_bits) ?:
	      qcow2_data_pwrite(q, (uint64_t)host, p, k << q->cluster_bits);
	if (ret) { /* nothing points at the run yet: give it back */
		qcow2_free_range(q, (uint64_t)host, k << q->cluster_bits);
		return ret;
	}
	for (uint64_t i = 0; i < k && !ret; i++) {
		uint64_t old[2] = { 0, 0 };
		uint64_t ne[2] = { ((uint64_t)host + (i << q->cluster_bits)) | QCOW2_OFLAG_COPIED, 0 };

		ret = qcow2_commit_entry(q, l2, idx + i, old, ne);
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
			ret = qcow2_check_data_target(q, run.host, n) ?:
			      qcow2_data_pwrite(q, run.host, p, n);
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
	return locked ? qcow2_unlock_commit(q, ret) : ret;
}

/*
 * block-stream's write: @buf over the parts of [off, off+len) this image does not hold (those
 * that read from the backing file), the rest left as it is. Decided and written under the
 * lock, where a guest write to an unallocated cluster is decided too: the guest's write either
 * came first (the cluster is allocated, and left alone here) or comes after and overwrites
 * what this wrote. Never older data over newer.
 */
int qcow2_populate(struct blockdev *bs, uint64_t off, const void *buf, uint64_t len)
{
	struct qcow2 *q = bs->opaque;
	uint64_t unit = 1ULL << q->sc_bits;
	const uint8_t *p = buf;
	int ret;

	if (q->read_only)
		return -EROFS;
	pthread_mutex_lock(&q->lock);
	ret = qcow2_check_corrupt(q);
	while (len && !ret) {
		uint64_t n = MIN(len, unit - (off & (unit - 1)));
		uint64_t gc = off >> q->cluster_bits, idx = gc & ((1ULL << q->l2_bits) - 1);
		unsigned sc = (unsigned)((off & (q->cluster_size - 1)) >> q->sc_bits);
		uint64_t l2, e[2] = { 0, 0 };
		struct qcow2_run r;

		/* another subcluster of a cluster written just before: publish that entry first,
		 * so this one is read, and staged, with it */
		if ((ret = qcow2_ensure_l2(q, gc >> q->l2_bits, &l2)) ||
		    (qcow2_is_staged(q, l2, idx) && (ret = qcow2_commit(q))) ||
		    (ret = qcow2_l2_get(q, l2, idx, e)) ||
		    (ret = qcow2_decode(q, e, sc, l2, idx, &r)))
			break;
		if (r.kind == QCOW2_UNALLOCATED)
			ret = write_locked(q, off, p, n);
		off += n;
		p += n;
		len -= n;
	}
	return qcow2_unlock_commit(q, ret);
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
			qcow2_drop_failed(q); /* nothing of a failed write is published */
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
