/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2: changing an image's version (compat 0.10 <-> 1.1) and its lazy_refcounts bit in place,
 * for `vireo-img amend`. Control plane only: the image is open read-write by one tool, with no
 * queue on it. Downgrading first rewrites every zero cluster (of the active L1 table and of
 * every internal snapshot's) as version 2 can express it (a plain hole, or zeroes written into a
 * cluster), then the header,
 * so a crash in between leaves a valid version 3 image. Also the other in-place header change
 * of the tools: another backing file name and format (`vireo-img rebase`): one header
 * write and a flush.
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int qcow2_write_header(struct qcow2 *q, struct qcow2_header *h, struct error **errp)
{
	uint8_t *buf = calloc(1, q->cluster_size);
	int ret;

	if (!buf) {
		error_setg(errp, "out of memory");
		return -1;
	}
	ret = qcow2_header_serialize(h, buf, q->cluster_size, errp) ? -EINVAL : 0;
	if (!ret)
		ret = blockdev_pwrite(q->file, 0, buf, q->cluster_size);
	if (!ret)
		ret = blockdev_flush(q->file);
	if (!ret)
		q->h = *h;
	else if (ret != -EINVAL)
		error_setg_errno(errp, ret, "'%s': writing the header", q->bs->filename);
	free(buf);
	return ret ? -1 : 0;
}

/*
 * One zero-flagged entry of the L2 table at @l2 (which @l2rc L1 entries reach) as version 2
 * can say it: unallocated when nothing shows through, else a cluster of zeroes. A
 * preallocated cluster only this entry holds (its refcount is @l2rc) is zeroed in place;
 * otherwise a fresh one takes @l2rc references and the old one loses as many. Lock held.
 */
static int expand_zero(struct qcow2 *q, uint64_t l2, uint64_t l2rc, uint64_t idx,
		       const uint64_t *e, const uint8_t *zero, struct error **errp)
{
	uint64_t host = e[0] & QCOW2_OFFSET_MASK, old = host, hrc = 0, ne[2] = { 0, 0 };
	int ret;

	if (!host && !q->bs->backing && !q->h.backing_file[0])
		goto set; /* unallocated reads zeroes too (no backing file, linked or named) */
	if (host && (ret = qcow2_rc_get(q, host >> q->cluster_bits, &hrc)))
		goto io;
	if (!host || hrc != l2rc) {
		int64_t h = qcow2_alloc_clusters(q, 1);

		if (h < 0) {
			ret = (int)h;
			goto io;
		}
		host = (uint64_t)h;
		if (l2rc > 1 && (ret = qcow2_rc_set(q, host >> q->cluster_bits, l2rc)))
			goto io;
	}
	if ((ret = qcow2_data_pwrite(q, host, zero, q->cluster_size)) || /* encrypted: zeroes */
	    (ret = qcow2_barrier(q)))
		goto io;
	ne[0] = host | (l2rc == 1 && (host != old || hrc == 1) ? QCOW2_OFLAG_COPIED : 0);
set:
	if ((ret = qcow2_l2_set(q, l2, idx, ne)))
		goto io;
	for (uint64_t k = 0; old && host != old && k < l2rc && !ret; k++)
		ret = qcow2_free_range(q, old, q->cluster_size);
	if (!ret)
		return 0;
io:
	error_setg_errno(errp, ret, "'%s': expanding the zero cluster of L2 table 0x%" PRIx64
			 " entry %" PRIu64, q->bs->filename, l2, idx);
	return -1;
}

/* Every zero entry of the L2 tables the L1 table @l1 (@n entries) reaches. A table two L1
 * tables share is seen twice; the second time it has no zero entry left. */
static int expand_l1(struct qcow2 *q, const uint64_t *l1, uint64_t n, const uint8_t *zero,
		     struct error **errp)
{
	int ret = 0;

	for (uint64_t i = 0; i < n && !ret; i++) {
		uint64_t l2 = l1[i] & QCOW2_OFFSET_MASK, l2rc;

		if (!l2)
			continue;
		if (l2 % q->cluster_size || !range_within(l2, q->cluster_size, qcow2_file_end(q)) ||
		    (ret = qcow2_rc_get(q, l2 >> q->cluster_bits, &l2rc))) {
			error_setg(errp, "'%s': L1 entry %" PRIu64 " (0x%016" PRIx64 ") points "
				   "outside the file", q->bs->filename, i, l1[i]);
			return -1;
		}
		for (uint64_t idx = 0; idx < (1ULL << q->l2_bits) && !ret; idx++) {
			uint64_t e[2] = { 0, 0 };
			int r = qcow2_l2_get(q, l2, idx, e);

			if (r) {
				error_setg_errno(errp, r, "'%s': reading L2 table at 0x%" PRIx64,
						 q->bs->filename, l2);
				ret = -1;
			} else if ((e[0] & QCOW2_OFLAG_ZERO) && !(e[0] & QCOW2_OFLAG_COMPRESSED)) {
				ret = expand_zero(q, l2, l2rc, idx, e, zero, errp);
			}
		}
	}
	return ret;
}

/* The L1 table of @count entries at @off, host order (@n set), or NULL with the error. */
static uint64_t *read_table(struct qcow2 *q, uint64_t off, uint32_t count, struct error **errp)
{
	uint64_t *t = calloc((uint64_t)count + 1, 8);
	int ret = -ENOMEM;

	if (t && (!count || range_within(off, (uint64_t)count * 8, qcow2_file_end(q))))
		ret = count ? blockdev_pread(q->file, off, t, (uint64_t)count * 8) : 0;
	else if (t)
		ret = -EINVAL;
	if (ret) {
		error_setg_errno(errp, ret, "'%s': reading the L1 table at 0x%" PRIx64,
				 q->bs->filename, off);
		free(t);
		return NULL;
	}
	for (uint32_t i = 0; i < count; i++)
		t[i] = qcow2_be64((const uint8_t *)&t[i]);
	return t;
}

/* The zero clusters of the active L1 table and of every snapshot's. */
static int expand_zero_clusters(struct qcow2 *q, const struct qcow2_snapshot *s, uint32_t ns,
				struct error **errp)
{
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	uint8_t *zero = calloc(1, q->cluster_size);
	uint64_t *t = calloc((uint64_t)l1->size + 1, 8);
	int ret = 0;

	if (!zero || !t) {
		error_setg(errp, "out of memory");
		ret = -1;
		goto out;
	}
	for (uint32_t i = 0; i < l1->size; i++)
		t[i] = atomic_load_explicit(&l1->e[i], memory_order_relaxed);
	ret = expand_l1(q, t, l1->size, zero, errp);
	for (uint32_t i = 0; i < ns && !ret; i++) {
		uint64_t *st = read_table(q, s[i].l1_table_offset, s[i].l1_size, errp);

		ret = st ? expand_l1(q, st, s[i].l1_size, zero, errp) : -1;
		free(st);
	}
out:
	free(t);
	free(zero);
	return ret;
}

/* What keeps @q from being written as version 2, or NULL. */
static const char *v2_obstacle(const struct qcow2 *q)
{
	const struct qcow2_header *h = &q->h;

	if (h->incompatible_features & QCOW2_INCOMPAT_DIRTY)
		return "it is dirty (repair it with 'vireo-img check -r all' first)";
	if (h->incompatible_features & QCOW2_INCOMPAT_CORRUPT)
		return "it is marked corrupt";
	if (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE)
		return "it has an external data file (data_file)";
	if (h->incompatible_features & QCOW2_INCOMPAT_EXTL2)
		return "it uses extended L2 entries (extended_l2=on)";
	if (h->compression_type != QCOW2_COMPRESS_ZLIB)
		return "its compression_type is zstd";
	if (h->refcount_order != 4)
		return "its refcount_bits is not 16";
	if (h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)
		return "it holds persistent bitmaps";
	if (h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN)
		return "it has unknown incompatible features";
	return NULL;
}

int qcow2_amend(struct blockdev *bs, const struct qcow2_amend_opts *o, struct error **errp)
{
	struct qcow2 *q = qcow2_node(bs, errp);
	unsigned version;
	bool lazy;
	struct qcow2_header h;
	struct qcow2_snapshot *snaps = NULL;
	uint64_t snap_bytes;
	uint8_t *old_tail;
	const char *why;
	int ret = -1, sync;

	if (!q)
		return -1;
	version = o->version ? o->version : q->h.version;
	/* downgrading drops lazy refcounts unless they were asked for (which is refused) */
	lazy = o->lazy_refcounts >= 0 ? o->lazy_refcounts :
	       version == 3 && (q->h.compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS);
	old_tail = q->h.tail;
	if (q->read_only) {
		error_setg(errp, "'%s' is open read-only", bs->filename);
		return -1;
	}
	if (version == 2 && lazy) {
		error_setg(errp, "lazy_refcounts=on needs compat=1.1 (version 3)");
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	h = q->h; /* shares the extension arrays: serialize only reads them */
	if ((sync = qcow2_lazy_sync(q))) { /* the L2 tables as the cache has them */
		error_setg_errno(errp, sync, "'%s': writing the last L2 entries", bs->filename);
		goto out;
	}
	if (version == 2 && q->h.version == 3) {
		if ((why = v2_obstacle(q))) {
			error_setg(errp, "'%s': cannot amend to compat=0.10: %s", bs->filename, why);
			goto out;
		}
		if (qcow2_snapshots_read(q, &snaps, &snap_bytes, errp))
			goto out;
		/* version 2 keeps snapshots, but not of another size nor with VM state */
		for (uint32_t i = 0; i < q->h.nb_snapshots; i++) {
			if (snaps[i].vm_state_size || (snaps[i].disk_size != UINT64_MAX &&
						       snaps[i].disk_size != q->h.size)) {
				error_setg(errp, "'%s': Internal snapshots prevent downgrade of image "
					   "(snapshot '%s' %s)", bs->filename, snaps[i].name,
					   snaps[i].vm_state_size ? "holds VM state" :
					   "is of another size");
				goto out;
			}
		}
		if (expand_zero_clusters(q, snaps, q->h.nb_snapshots, errp))
			goto out;
		h.version = 2;
		h.incompatible_features = h.compatible_features = h.autoclear_features = 0;
		h.tail = NULL; /* version 2 has no room for header bytes past its 72 */
		h.tail_len = 0;
	} else if (version == 3 && q->h.version == 2) {
		h.version = 3;
		h.refcount_order = 4;
		h.incompatible_features = h.compatible_features = h.autoclear_features = 0;
		h.compression_type = QCOW2_COMPRESS_ZLIB;
	}
	if (version == 3) {
		if (!lazy && (h.incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
			error_setg(errp, "'%s' is dirty: repair it with 'vireo-img check -r all' "
				   "before turning lazy_refcounts off", bs->filename);
			goto out;
		}
		h.compatible_features = lazy ? h.compatible_features | QCOW2_COMPAT_LAZY_REFCOUNTS :
					       h.compatible_features & ~QCOW2_COMPAT_LAZY_REFCOUNTS;
	}
	ret = qcow2_write_header(q, &h, errp);
	if (!ret && q->h.tail != old_tail)
		free(old_tail);
out:
	pthread_mutex_unlock(&q->lock);
	qcow2_snapshots_free(snaps, q->h.nb_snapshots);
	return ret;
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
