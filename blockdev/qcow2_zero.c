/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 write-zeroes and discard. On a version 3 image (without a raw external data file)
 * whole clusters or subclusters become zero clusters in their L2 entries, with no data
 * written; otherwise the zeroes are written as data (qcow2_write.c). Discard gives clusters
 * back and makes a discarded range read zeroes where the format can say so; make_empty (for
 * commit) makes every cluster unallocated, so that the image reads its backing file again.
 * The new entries are staged and committed as every write's are (qcow2_commit.c).
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <stdlib.h>

#include "common/util.h"

/* Makes whole clusters or subclusters of one cluster read as zeroes (lock held). */
static int zero_locked(struct qcow2 *q, uint64_t off, uint64_t n, unsigned int flags)
{
	uint64_t gc = off >> q->cluster_bits, l1i = gc >> q->l2_bits, l2, e[2] = { 0, 0 }, ne[2];
	uint64_t idx = gc & ((1ULL << q->l2_bits) - 1), a = off & (q->cluster_size - 1);
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	uint64_t host;
	int ret = qcow2_check_corrupt(q);

	if (ret)
		return ret;
	if (!(atomic_load_explicit(&l1->e[l1i], memory_order_relaxed) & QCOW2_OFFSET_MASK) &&
	    !qcow2_backing_shows(q, off))
		return 0; /* no L2 table, no backing: already reads zeroes */
	if ((ret = qcow2_ensure_l2(q, l1i, &l2)) || (ret = qcow2_l2_get(q, l2, idx, e)))
		return ret;
	host = e[0] & QCOW2_OFFSET_MASK;
	if (q->ext_l2 &&
	    ((e[0] & QCOW2_OFLAG_COMPRESSED) || (host && !(e[0] & QCOW2_OFLAG_COPIED)))) {
		uint8_t *zero = calloc(1, n);

		if (!zero)
			return -ENOMEM;
		ret = qcow2_write_whole(q, off - a, l2, idx, e, a, zero, n, false, false);
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
		return qcow2_commit_entry(q, l2, idx, e, ne);
	}
	bool keep = host && (e[0] & QCOW2_OFLAG_COPIED) && !(flags & BLOCKDEV_ZERO_MAY_UNMAP) &&
		    !(e[0] & QCOW2_OFLAG_COMPRESSED);

	ne[0] = QCOW2_OFLAG_ZERO | (keep ? host | QCOW2_OFLAG_COPIED : 0);
	ne[1] = 0;
	return qcow2_commit_entry(q, l2, idx, e, ne);
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
			if (locked && (ret = qcow2_unlock_commit(q, 0)))
				break;
			locked = false;
			if (!can_zero_in_metadata(q) && !qcow2_backing_shows(q, off)) {
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
	return locked ? qcow2_unlock_commit(q, ret) : ret;
}

/*
 * Discards a whole cluster that is unallocated (lock held). Without a backing file (or past its
 * end) it reads zeroes already. Over a backing file a v3 image makes it a zero cluster, so that
 * a discarded cluster reads zeroes whatever it held, as an allocated one does below and as
 * QEMU's qcow2 does (a v2 image cannot: its discarded clusters show the backing file).
 */
static int discard_unallocated(struct qcow2 *q, uint64_t off, bool full)
{
	if (full || !qcow2_backing_shows(q, off) || !can_zero_in_metadata(q))
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
	int ret = qcow2_check_corrupt(q);

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
	if (!full && !qcow2_backing_shows(q, off) && !(e[0] & QCOW2_OFFSET_MASK) &&
	    !(e[0] & QCOW2_OFLAG_COMPRESSED))
		return 0;
	return qcow2_commit_entry(q, l2, idx, e, ne);
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
		       (run.kind == QCOW2_UNALLOCATED && !qcow2_backing_shows(q, off));
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
	return qcow2_unlock_commit(q, ret);
}

int qcow2_discard_range(struct qcow2 *q, uint64_t off, uint64_t len)
{
	return discard(q, off, len, false);
}

int qcow2_deallocate_range(struct qcow2 *q, uint64_t off, uint64_t len)
{
	return discard(q, off, len, true);
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
