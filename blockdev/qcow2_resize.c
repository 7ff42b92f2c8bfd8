/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 resize (block_resize, vireo-img resize). Growing may need a bigger L1 table: written
 * to fresh clusters, switched to in the header, and published by pointer; the old array is
 * retired rather than freed (until close), since a lock-free reader may still hold it.
 * Shrinking first frees the clusters past the new end and zeroes the kept tail of the last
 * cluster (internal snapshots keep theirs: a cluster they share loses one reference, and a
 * shared L2 table is copied first, as on any write). An external data file follows the virtual size. Control plane: runs with every
 * queue drained, and takes q->lock for the header and L1 changes.
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "common/util.h"

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

	if (keep > size)
		ret = qcow2_zero_range(q, size, MIN(keep, q->h.size) - size, 0);
	if (!ret && keep < q->h.size)
		ret = qcow2_deallocate_range(q, keep, q->h.size - keep);
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
