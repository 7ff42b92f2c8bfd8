/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 refcounts: the refcount table (in memory), refcount blocks (a tiny write-through cache),
 * cluster allocation and freeing, and growth of the refcount table. Everything here runs with
 * q->lock held. Write order: a refcount reaches the file before anything that points to the
 * cluster (callers put a barrier between), so a crash can only leak clusters.
 *
 * A refcount change is written at once (the cached block is write-through), except inside a
 * group commit (q->grouping, qcow2_commit.c): there the cached block only records which bytes
 * changed, and they are written when the block is evicted, at every qcow2_barrier() (which
 * runs qcow2_rc_flush() before it flushes: so "refcount before barrier before pointer" holds
 * unchanged) and at the end of the group. The allocations of a group are mostly neighbours in
 * one block: one write for all of them instead of one each. Writes cover whole O_DIRECT blocks
 * of the cached copy, so they need no read-modify-write.
 */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

uint64_t qcow2_rc_max(const struct qcow2 *q)
{
	return q->refcount_bits == 64 ? UINT64_MAX : (1ULL << q->refcount_bits) - 1;
}

void qcow2_rb_drop_cache(struct qcow2 *q)
{
	for (unsigned i = 0; i < ARRAY_SIZE(q->rb); i++)
		q->rb[i].off = q->rb[i].dirty_lo = q->rb[i].dirty_hi = 0;
}

int qcow2_load_reftable(struct qcow2 *q, struct error **errp)
{
	uint64_t bytes = (uint64_t)q->h.refcount_table_clusters << q->cluster_bits;
	int ret;

	q->reftable_entries = bytes / 8;
	q->reftable = malloc(bytes);
	if (!q->reftable) {
		error_setg(errp, "out of memory for the refcount table");
		return -1;
	}
	ret = blockdev_pread(q->file, q->h.refcount_table_offset, q->reftable, bytes);
	if (ret) {
		error_setg_errno(errp, ret, "reading the refcount table at 0x%" PRIx64,
				 q->h.refcount_table_offset);
		return -1;
	}
	for (uint64_t i = 0; i < q->reftable_entries; i++) {
		uint64_t e = qcow2_be64((const uint8_t *)&q->reftable[i]);

		q->reftable[i] = e;
		if ((e & QCOW2_REFT_RESERVED) || e % q->cluster_size ||
		    (e && !range_within(e, q->cluster_size, q->file_size_at_open)) ||
		    (e && qcow2_overlaps_metadata(q, e, q->cluster_size))) {
			error_setg(errp, "'%s': refcount table entry %" PRIu64 " (at 0x%" PRIx64
				   ") is 0x%" PRIx64 ": misaligned, reserved bits set, inside the "
				   "header, L1 or refcount table, or past the end of the file",
				   q->bs->filename, i, q->h.refcount_table_offset + i * 8, e);
			return -1;
		}
	}
	return 0;
}

/* Writes the changed bytes of cached block @slot, widened to whole blocks of the file. */
static int rb_write(struct qcow2 *q, unsigned slot)
{
	uint64_t a = MAX(q->file->align, 1), lo = q->rb[slot].dirty_lo, hi = q->rb[slot].dirty_hi;
	int ret;

	if (lo == hi)
		return 0;
	if (a <= q->cluster_size) {
		lo = ALIGN_DOWN(lo, a);
		hi = MIN(ALIGN_UP(hi, a), q->cluster_size);
	}
	ret = blockdev_pwrite(q->file, q->rb[slot].off + lo, q->rb[slot].buf + lo, hi - lo);
	if (!ret)
		q->rb[slot].dirty_lo = q->rb[slot].dirty_hi = 0;
	return ret;
}

int qcow2_rc_flush(struct qcow2 *q)
{
	int ret = 0;

	for (unsigned i = 0; i < ARRAY_SIZE(q->rb) && !ret; i++)
		ret = rb_write(q, i);
	return ret;
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
	return ret ? ret : qcow2_lazy_write(q);
}

/* The refcount block for table index @rti, or NULL (*ret = 0) if there is none. */
static uint8_t *get_block(struct qcow2 *q, uint64_t rti, uint64_t *boff, int *ret)
{
	uint64_t off = rti < q->reftable_entries ? q->reftable[rti] : 0;
	unsigned slot;

	*ret = 0;
	*boff = off;
	if (!off)
		return NULL;
	for (unsigned i = 0; i < ARRAY_SIZE(q->rb); i++)
		if (q->rb[i].off == off)
			return q->rb[i].buf;
	slot = q->rb_next++ % ARRAY_SIZE(q->rb);
	if ((*ret = rb_write(q, slot))) /* the victim's held-back changes first */
		return NULL;
	q->rb[slot].off = 0;
	*ret = blockdev_pread(q->file, off, q->rb[slot].buf, q->cluster_size);
	if (*ret)
		return NULL;
	q->rb[slot].off = off;
	return q->rb[slot].buf;
}

static uint64_t entry_get(const struct qcow2 *q, const uint8_t *b, uint64_t i)
{
	unsigned bits = q->refcount_bits;

	switch (bits) {
	case 8:
		return b[i];
	case 16:
		return ((uint64_t)b[2 * i] << 8) | b[2 * i + 1];
	case 32:
		return qcow2_be32(b + 4 * i);
	case 64:
		return qcow2_be64(b + 8 * i);
	default:
		return (b[i * bits / 8] >> ((i * bits) % 8)) & ((1u << bits) - 1);
	}
}

/* Sets entry @i in @b; returns the byte range [*from, *from + *n) that changed. */
void qcow2_rb_entry_set(const struct qcow2 *q, uint8_t *b, uint64_t i, uint64_t v,
			uint64_t *from, unsigned *n)
{
	unsigned bits = q->refcount_bits;

	*n = bits < 8 ? 1 : bits / 8;
	*from = i * bits / 8;
	switch (bits) {
	case 8:
		b[i] = (uint8_t)v;
		break;
	case 16:
		b[2 * i] = (uint8_t)(v >> 8);
		b[2 * i + 1] = (uint8_t)v;
		break;
	case 32:
		qcow2_put_be32(b + 4 * i, (uint32_t)v);
		break;
	case 64:
		qcow2_put_be64(b + 8 * i, v);
		break;
	default: {
		unsigned shift = (unsigned)((i * bits) % 8), mask = ((1u << bits) - 1) << shift;

		b[*from] = (uint8_t)((b[*from] & ~mask) | ((v << shift) & mask));
	}
	}
}

int qcow2_rc_get(struct qcow2 *q, uint64_t cluster, uint64_t *rc)
{
	uint64_t boff;
	int ret;
	uint8_t *b = get_block(q, cluster >> q->rb_bits, &boff, &ret);

	*rc = b ? entry_get(q, b, cluster & ((1ULL << q->rb_bits) - 1)) : 0;
	return ret;
}

int qcow2_rc_set(struct qcow2 *q, uint64_t cluster, uint64_t rc)
{
	uint64_t boff, from;
	unsigned n, slot;
	int ret;
	uint8_t *b = get_block(q, cluster >> q->rb_bits, &boff, &ret);

	if (ret)
		return ret;
	if (!b) {
		if (!rc)
			return 0;
		qcow2_signal_corruption(q, "cluster %" PRIu64 " has no refcount block", cluster);
		return -EIO;
	}
	qcow2_rb_entry_set(q, b, cluster & ((1ULL << q->rb_bits) - 1), rc, &from, &n);
	for (slot = 0; q->rb[slot].buf != b; slot++)
		;
	if (q->rb[slot].dirty_lo == q->rb[slot].dirty_hi) {
		q->rb[slot].dirty_lo = (uint32_t)from;
		q->rb[slot].dirty_hi = (uint32_t)from + n;
	} else {
		q->rb[slot].dirty_lo = MIN(q->rb[slot].dirty_lo, (uint32_t)from);
		q->rb[slot].dirty_hi = MAX(q->rb[slot].dirty_hi, (uint32_t)from + n);
	}
	return q->grouping ? 0 : rb_write(q, slot);
}

static int set_reftable_entry(struct qcow2 *q, uint64_t rti, uint64_t off)
{
	uint8_t raw[8];
	int ret;

	qcow2_put_be64(raw, off);
	ret = blockdev_pwrite(q->file, q->h.refcount_table_offset + rti * 8, raw, 8);
	if (!ret)
		q->reftable[rti] = off;
	return ret;
}

/* A new refcount block for table index @rti, stored in its own first cluster @c, which
 * it describes (every cluster it covers is free: no block means refcount 0). */
static int new_block_at(struct qcow2 *q, uint64_t rti, uint64_t c)
{
	uint8_t *b = calloc(1, q->cluster_size);
	uint64_t from;
	unsigned n;
	int ret;

	if (!b)
		return -ENOMEM;
	qcow2_rb_entry_set(q, b, c & ((1ULL << q->rb_bits) - 1), 1, &from, &n);
	ret = blockdev_pwrite(q->file, c << q->cluster_bits, b, q->cluster_size);
	free(b);
	if (!ret)
		ret = qcow2_barrier(q); /* the block is on disk before the table points to it */
	if (!ret)
		ret = set_reftable_entry(q, rti, c << q->cluster_bits);
	return ret;
}

/* Which of the clusters in [s, s+len) need a new refcount block, counted. */
static uint64_t missing_blocks(struct qcow2 *q, uint64_t s, uint64_t len)
{
	uint64_t n = 0;

	for (uint64_t b = s >> q->rb_bits; b <= (s + len - 1) >> q->rb_bits; b++)
		n += b >= q->reftable_entries || !q->reftable[b];
	return n;
}

static uint64_t file_end_cluster(struct qcow2 *q)
{
	return MAX(q->end_cluster, DIV_ROUND_UP(q->file->size, q->cluster_size));
}

/*
 * Grows the refcount table to cover index @need. The new refcount blocks and the new table go
 * in a fresh region at the end of the file, and the blocks describe the region itself; the
 * header switches to the new table only after all of it is on disk.
 */
static int grow_reftable(struct qcow2 *q, uint64_t need)
{
	uint64_t s = MAX(file_end_cluster(q), q->free_hint), k = 0, t = 0, entries = 0;
	uint64_t *table = NULL, old_off = q->h.refcount_table_offset;
	uint32_t old_clusters = q->h.refcount_table_clusters;
	uint8_t *blk = NULL;
	int ret = -ENOMEM;

	for (;;) {
		uint64_t want = MAX(need + 1, ((s + k + t) >> q->rb_bits) + 1);
		uint64_t t2 = DIV_ROUND_UP((want + want / 2) * 8, q->cluster_size);
		uint64_t k2 = missing_blocks(q, s, k + t2);

		if (t2 == t && k2 == k)
			break;
		t = t2;
		k = k2;
	}
	entries = (t << q->cluster_bits) / 8;
	if ((t << q->cluster_bits) > QCOW2_MAX_REFTABLE_BYTES)
		return -EFBIG;
	table = calloc(entries, 8);
	blk = malloc(q->cluster_size);
	if (!table || !blk)
		goto out;
	memcpy(table, q->reftable, q->reftable_entries * 8);
	/* blocks at [s, s+k), the table at [s+k, s+k+t): assign blocks to missing indexes */
	uint64_t next = s;

	for (uint64_t b = s >> q->rb_bits; b <= (s + k + t - 1) >> q->rb_bits; b++) {
		uint64_t first = MAX(s, b << q->rb_bits),
			 last = MIN(s + k + t, (b + 1) << q->rb_bits);

		if (b < q->reftable_entries && q->reftable[b]) {
			for (uint64_t c = first; c < last; c++)
				if ((ret = qcow2_rc_set(q, c, 1)))
					goto out;
			continue;
		}
		memset(blk, 0, q->cluster_size);
		for (uint64_t c = first; c < last; c++) {
			uint64_t from;
			unsigned n;

			qcow2_rb_entry_set(q, blk, c & ((1ULL << q->rb_bits) - 1), 1, &from, &n);
		}
		table[b] = next << q->cluster_bits;
		if ((ret = blockdev_pwrite(q->file, next << q->cluster_bits, blk, q->cluster_size)))
			goto out;
		next++;
	}
	for (uint64_t i = 0; i < entries; i++)
		qcow2_put_be64((uint8_t *)&table[i], table[i]);
	ret = blockdev_pwrite(q->file, (s + k) << q->cluster_bits, table, entries * 8);
	for (uint64_t i = 0; i < entries; i++)
		table[i] = qcow2_be64((const uint8_t *)&table[i]);
	if (ret || (ret = qcow2_barrier(q)))
		goto out;
	q->h.refcount_table_offset = (s + k) << q->cluster_bits;
	q->h.refcount_table_clusters = (uint32_t)t;
	if ((ret = qcow2_header_update(q, 48, 60)) || (ret = qcow2_barrier(q))) {
		q->h.refcount_table_offset = old_off;
		q->h.refcount_table_clusters = old_clusters;
		goto out;
	}
	free(q->reftable);
	q->reftable = table;
	q->reftable_entries = entries;
	table = NULL;
	q->free_hint = MAX(q->free_hint, s + k + t);
	q->end_cluster = MAX(q->end_cluster, s + k + t);
	ret = qcow2_free_range(q, old_off, (uint64_t)old_clusters << q->cluster_bits);
out:
	free(table);
	free(blk);
	return ret;
}

int64_t qcow2_alloc_clusters(struct qcow2 *q, uint64_t n)
{
	uint64_t c = q->free_hint, start = 0, run = 0, first_free = UINT64_MAX;
	int ret;

	if (q->read_only)
		return -EROFS;
	for (;; c++) {
		uint64_t rti = c >> q->rb_bits, rc;

		if (c >= (1ULL << (56 - q->cluster_bits)))
			return -ENOSPC;
		if (rti >= q->reftable_entries) {
			if ((ret = grow_reftable(q, rti)))
				return ret;
			c = q->free_hint - 1;
			run = 0;
			continue;
		}
		if (!q->reftable[rti]) {
			if ((ret = new_block_at(q, rti, c)))
				return ret;
			run = 0;
			continue;
		}
		if ((ret = qcow2_rc_get(q, c, &rc)))
			return ret;
		if (rc) {
			run = 0;
			continue;
		}
		if (!run)
			start = c;
		if (first_free == UINT64_MAX)
			first_free = c;
		if (++run == n)
			break;
	}
	for (uint64_t i = 0; i < n; i++)
		if ((ret = qcow2_rc_set(q, start + i, 1)))
			return ret;
	q->free_hint = first_free == start ? start + n : MAX(q->free_hint, first_free);
	q->end_cluster = MAX(q->end_cluster, start + n);
	return (int64_t)(start << q->cluster_bits);
}

int qcow2_free_range(struct qcow2 *q, uint64_t off, uint64_t len)
{
	for (uint64_t c = off >> q->cluster_bits; c < DIV_ROUND_UP(off + len, q->cluster_size);
	     c++) {
		uint64_t rc;
		int ret = qcow2_rc_get(q, c, &rc);

		if (ret)
			return ret;
		if (!rc) {
			qcow2_signal_corruption(q, "freeing cluster %" PRIu64 " (0x%" PRIx64
						") whose refcount is already 0", c,
						c << q->cluster_bits);
			return -EIO;
		}
		if ((ret = qcow2_rc_set(q, c, rc - 1)))
			return ret;
		if (c == q->zhost >> q->cluster_bits)
			q->zhost = 0; /* compressed writes no longer append to it */
		/* a freed cluster is not reused in this session: a fast-path request mapped
		 * before the free may still be doing I/O on it (blockdev.h, "Reuse of freed
		 * host ranges") */
		if (rc == 1)
			q->free_hint = MAX(q->free_hint, c + 1);
	}
	return 0;
}
