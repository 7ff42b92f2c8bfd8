/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 write side: where the clusters a write needs come from, and where the references it
 * drops go, with q->lock held. An L2 table is allocated (zeroed, then linked from the L1 table)
 * or, when an internal snapshot shares it, copied; a data cluster is allocated (with an
 * external data file: the guest offset itself) and given back if its data write fails; the
 * reference an old L2 entry held is dropped once no entry points there. New L2 tables are
 * published at once (contents, barrier, L1 entry), or in a group commit lazily (contents, the
 * L1 entry in memory, and in the file after the next barrier: "Lazy publication" in
 * qcow2_commit.c); data clusters are published by the commit, which also says in which order.
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <stdlib.h>

#include "common/util.h"

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
	ret = qcow2_lazy_sync(q); /* the table as the cache has it */
	if (!ret)
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
int qcow2_ensure_l2(struct qcow2 *q, uint64_t l1i, uint64_t *l2)
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
	if (!ret && qcow2_lazy_l1_ok(q)) /* the entry follows the next barrier */
		ret = qcow2_lazy_l1(q, l1i, (uint64_t)off | QCOW2_OFLAG_COPIED);
	else if (!ret && !(ret = qcow2_barrier(q)))
		ret = write_l1_entry(q, l1i, (uint64_t)off | QCOW2_OFLAG_COPIED);
	*l2 = (uint64_t)off;
	return ret;
}

/* Host cluster for a new guest cluster: allocated, or the guest offset in a data file. */
int64_t qcow2_new_cluster(struct qcow2 *q, uint64_t gco)
{
	if (q->data != q->file)
		return (int64_t)gco;
	return qcow2_alloc_clusters(q, 1);
}

/* Gives back a cluster qcow2_new_cluster() allocated that nothing points to yet (its data write
 * failed); a failure here only leaks it. */
void qcow2_drop_new_cluster(struct qcow2 *q, uint64_t host)
{
	if (q->data == q->file)
		qcow2_free_range(q, host, q->cluster_size);
}

/* Drops the reference an L2 entry held (after the entry no longer points there). */
int qcow2_release_entry(struct qcow2 *q, uint64_t e0)
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
