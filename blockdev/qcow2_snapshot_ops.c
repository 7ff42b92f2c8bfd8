/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 internal snapshots: create, apply (goto), delete, and load one read-only (convert -l).
 * Control plane: the caller has drained every queue on the node (QMP) or is the image's only
 * user (vireo-img); everything runs with q->lock held.
 *
 * Refcounts stay exact. A data cluster's refcount counts the L1 tables (the active one and each
 * snapshot's) that reach it, and an L2 table's the L1 entries that point to it; the "copied"
 * flag of an active L1 or L2 entry says the refcount is 1 (written in place). So:
 *  - create: +1 on everything the active L1 table reaches, the active flags cleared, then a
 *    copy of the L1 table and the new snapshot table, then the header;
 *  - apply: +1 on what the snapshot reaches, its L1 table copied into fresh clusters, the
 *    header switched to it (and to the snapshot's disk size), then -1 on what the old active
 *    table reached, and the flags recomputed;
 *  - delete: the table without the entry, the header switched, then -1 on what the snapshot's
 *    L1 table reached, and the flags recomputed (a cluster only the active table holds now is
 *    written in place again).
 * Every step that can fail on a hostile image (a bad L2 offset, a refcount that would overflow
 * or is already 0) is found by a dry run over the same tables before anything is written, and
 * a barrier orders each step's refcounts before what points to them, so a crash leaves at most
 * leaked clusters.
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"
#include "blockdev/bitmap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

/* One pass over an L1 table: validate (dry) or add @addend to every refcount it reaches. */
struct walk {
	struct qcow2 *q;
	int addend;
	bool dry;
	const char *what; /* "snapshot 'NAME'", "the active L1 table" */
	uint8_t *l2;      /* a cluster of scratch */
	struct error **errp;
};

static int walk_cluster(struct walk *w, uint64_t c, uint64_t l2, uint64_t idx)
{
	struct qcow2 *q = w->q;
	uint64_t rc;
	int ret;

	if (c >= DIV_ROUND_UP(qcow2_file_end(q), q->cluster_size)) {
		error_setg(w->errp, "%s: L2 table 0x%" PRIx64 " entry %" PRIu64 " points past the "
			   "end of the file (cluster %" PRIu64 ")", w->what, l2, idx, c);
		return -EINVAL;
	}
	if ((ret = qcow2_rc_get(q, c, &rc)))
		goto io;
	if (w->dry && w->addend > 0 && rc > qcow2_rc_max(q) / 2) {
		error_setg(w->errp, "%s: the refcount of cluster %" PRIu64 " (%" PRIu64 ") could "
			   "overflow its %u bits", w->what, c, rc, q->refcount_bits);
		return -ERANGE;
	}
	if (w->dry && w->addend < 0 && !rc) {
		error_setg(w->errp, "%s: cluster %" PRIu64 " is referenced but its refcount is 0 "
			   "(repair the image with 'vireo-img check -r all')", w->what, c);
		return -EINVAL;
	}
	if (w->dry)
		return 0;
	ret = w->addend > 0 ? qcow2_rc_set(q, c, rc + 1) :
			      qcow2_free_range(q, c << q->cluster_bits, q->cluster_size);
	if (!ret)
		return 0;
io:
	error_setg_errno(w->errp, ret, "%s: updating the refcount of cluster %" PRIu64, w->what, c);
	return ret;
}

/* Every cluster the L2 entry whose first word is @e holds. */
static int walk_entry(struct walk *w, uint64_t e, uint64_t l2, uint64_t idx)
{
	struct qcow2 *q = w->q;
	uint64_t off = e & QCOW2_OFFSET_MASK, first, last;
	int ret = 0;

	if (e & QCOW2_OFLAG_COMPRESSED) {
		unsigned x = 62 - (q->cluster_bits - 8);
		uint64_t coff = ALIGN_DOWN(e & ((1ULL << x) - 1), 512);
		uint64_t nsec = (e >> x) & ((1ULL << (q->cluster_bits - 8)) - 1);

		first = coff >> q->cluster_bits;
		last = (coff + (nsec + 1) * 512 - 1) >> q->cluster_bits;
	} else if (!off) {
		return 0;
	} else if ((e & QCOW2_L2_RESERVED) || off % q->cluster_size) {
		error_setg(w->errp, "%s: L2 table 0x%" PRIx64 " entry %" PRIu64 " (0x%016" PRIx64
			   ") has reserved bits set or a misaligned offset", w->what, l2, idx, e);
		return -EINVAL;
	} else {
		first = last = off >> q->cluster_bits;
	}
	for (uint64_t c = first; c <= last && !ret; c++)
		ret = walk_cluster(w, c, l2, idx);
	return ret;
}

static int walk_l1(struct walk *w, const uint64_t *l1, uint32_t n)
{
	struct qcow2 *q = w->q;
	uint64_t per = 1ULL << q->l2_bits;
	int ret = 0;

	for (uint32_t i = 0; i < n && !ret; i++) {
		uint64_t l2 = l1[i] & QCOW2_OFFSET_MASK;

		if (!l2)
			continue;
		if ((l1[i] & QCOW2_L1_RESERVED) || l2 % q->cluster_size ||
		    !range_within(l2, q->cluster_size, qcow2_file_end(q)) ||
		    qcow2_overlaps_metadata(q, l2, q->cluster_size)) {
			error_setg(w->errp, "%s: L1 entry %u (0x%016" PRIx64 ") has reserved bits "
				   "set, or its L2 table is misaligned, inside the header, L1 or "
				   "refcount table, or past the end of the file", w->what, i, l1[i]);
			return -EINVAL;
		}
		if ((ret = qcow2_lazy_sync(q)) ||
		    (ret = blockdev_pread(q->file, l2, w->l2, q->cluster_size))) {
			error_setg_errno(w->errp, ret, "%s: reading the L2 table at 0x%" PRIx64,
					 w->what, l2);
			return ret;
		}
		for (uint64_t j = 0; j < per && !ret; j++)
			ret = walk_entry(w, qcow2_be64(w->l2 + 8 * q->entry_words * j), l2, j);
		if (!ret)
			ret = walk_cluster(w, l2 >> q->cluster_bits, l2, 0);
	}
	return ret;
}

/* A dry run (validation) then, unless @dry_only, the real one; a barrier after it. */
static int walk(struct qcow2 *q, const uint64_t *l1, uint32_t n, int addend, bool dry_only,
		const char *what, struct error **errp)
{
	struct walk w = { .q = q, .addend = addend, .dry = true, .what = what, .errp = errp };
	int ret;

	w.l2 = malloc(q->cluster_size);
	if (!w.l2) {
		error_setg(errp, "out of memory");
		return -ENOMEM;
	}
	ret = walk_l1(&w, l1, n);
	if (!ret && !dry_only) {
		w.dry = false;
		ret = walk_l1(&w, l1, n);
		if (!ret && (ret = qcow2_barrier(q)))
			error_setg_errno(errp, ret, "%s: flushing the refcounts", what);
	}
	free(w.l2);
	return ret;
}

/* The "copied" flag of an L2 entry whose first word is @e, from its cluster's refcount. */
static int want_copied(struct qcow2 *q, uint64_t e, bool *copied)
{
	uint64_t off = e & QCOW2_OFFSET_MASK, rc = 0;
	int ret = 0;

	if (!(e & QCOW2_OFLAG_COMPRESSED) && off)
		ret = qcow2_rc_get(q, off >> q->cluster_bits, &rc);
	*copied = rc == 1;
	return ret;
}

/* One L2 table's flags; *@changed when it had to be rewritten. */
static int fix_l2(struct qcow2 *q, uint64_t l2, uint8_t *buf)
{
	bool changed = false;
	int ret = qcow2_lazy_sync(q);

	if (!ret)
		ret = blockdev_pread(q->file, l2, buf, q->cluster_size);
	for (uint64_t j = 0; j < (1ULL << q->l2_bits) && !ret; j++) {
		uint8_t *p = buf + 8 * q->entry_words * j;
		uint64_t e = qcow2_be64(p);
		bool copied;

		if ((ret = want_copied(q, e, &copied)))
			break;
		if (copied != !!(e & QCOW2_OFLAG_COPIED)) {
			qcow2_put_be64(p, e ^ QCOW2_OFLAG_COPIED);
			changed = true;
		}
	}
	if (!ret && changed)
		ret = blockdev_pwrite(q->file, l2, buf, q->cluster_size);
	return ret;
}

/*
 * Recomputes the "copied" flags of the active L1 table and every L2 table it reaches from the
 * refcounts, on disk and in memory, then forgets the cached L2 slices. A barrier after.
 */
static int fix_copied(struct qcow2 *q, struct error **errp)
{
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	uint8_t *buf = malloc(MAX(q->cluster_size, (uint64_t)l1->size * 8 + 8));
	bool l1_changed = false;
	int ret = 0;

	if (!buf) {
		error_setg(errp, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < l1->size && !ret; i++) {
		uint64_t e = atomic_load_explicit(&l1->e[i], memory_order_relaxed), rc, ne;
		uint64_t l2 = e & QCOW2_OFFSET_MASK;

		if (!l2)
			continue;
		if ((ret = fix_l2(q, l2, buf)) || (ret = qcow2_rc_get(q, l2 >> q->cluster_bits, &rc)))
			break;
		ne = l2 | (rc == 1 ? QCOW2_OFLAG_COPIED : 0);
		if (ne != e) {
			/* the queues are drained: no reader maps through it meanwhile */
			atomic_store_explicit(&l1->e[i], ne, memory_order_release);
			l1_changed = true;
		}
	}
	if (!ret && l1_changed) {
		for (uint32_t i = 0; i < l1->size; i++)
			qcow2_put_be64(buf + 8 * i,
				       atomic_load_explicit(&l1->e[i], memory_order_relaxed));
		ret = blockdev_pwrite(q->file, q->h.l1_table_offset, buf, (uint64_t)l1->size * 8);
	}
	qcow2_cache_clear(&q->cache);
	if (!ret)
		ret = qcow2_barrier(q);
	free(buf);
	if (ret)
		error_setg_errno(errp, ret, "'%s': updating the copied flags of the L1 and L2 tables",
				 q->bs->filename);
	return ret;
}

/* The L1 table of @sn (@what in messages), in host order (@pad entries at least, zeroes past
 * its own). */
static int read_l1(struct qcow2 *q, const struct qcow2_snapshot *sn, uint32_t pad,
		   const char *what, uint64_t **out, struct error **errp)
{
	uint64_t n = MAX(sn->l1_size, pad), bytes = (uint64_t)sn->l1_size * 8;
	uint64_t *t = calloc(n + 1, 8);
	int ret;

	if (!t) {
		error_setg(errp, "out of memory");
		return -ENOMEM;
	}
	if (bytes && (!sn->l1_table_offset ||
		      !range_within(sn->l1_table_offset, bytes, qcow2_file_end(q)))) {
		error_setg(errp, "%s: its L1 table (0x%" PRIx64 ", %u entries) is not inside the "
			   "file", what, sn->l1_table_offset, sn->l1_size);
		free(t);
		return -EINVAL;
	}
	ret = bytes ? blockdev_pread(q->file, sn->l1_table_offset, t, bytes) : 0;
	if (ret) {
		error_setg_errno(errp, ret, "%s: reading its L1 table", what);
		free(t);
		return ret;
	}
	for (uint64_t i = 0; i < sn->l1_size; i++)
		t[i] = qcow2_be64((const uint8_t *)&t[i]);
	*out = t;
	return 0;
}

/* A copy of the active L1 table's entries. */
static uint64_t *active_l1(struct qcow2 *q, uint32_t *n)
{
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	uint64_t *t = calloc(l1->size + 1, 8);

	*n = l1->size;
	for (uint32_t i = 0; t && i < l1->size; i++)
		t[i] = atomic_load_explicit(&l1->e[i], memory_order_relaxed);
	return t;
}

/* Writes @n entries (host order, "copied" flags dropped) into fresh clusters; their offset. */
static int64_t write_l1_copy(struct qcow2 *q, const uint64_t *t, uint32_t n)
{
	uint64_t bytes = ALIGN_UP((uint64_t)n * 8, q->cluster_size);
	uint8_t *raw;
	int64_t off;
	int ret;

	if (!n)
		return 0;
	raw = calloc(1, bytes);
	if (!raw)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		qcow2_put_be64(raw + 8 * i, t[i] & ~QCOW2_OFLAG_COPIED);
	off = qcow2_alloc_clusters(q, bytes >> q->cluster_bits);
	ret = off < 0 ? (int)off : blockdev_pwrite(q->file, (uint64_t)off, raw, bytes);
	free(raw);
	return ret ? ret : off;
}

/* What the three operations refuse on any image: returns 0 or -1 with the reason. */
static int usable(struct qcow2 *q, bool write, struct error **errp)
{
	if (write && q->read_only) {
		error_setg(errp, "'%s' is open read-only", q->bs->filename);
		return -1;
	}
	if (q->data != q->file) {
		error_setg(errp, "'%s': internal snapshots are not supported with an external data "
			   "file", q->bs->filename);
		return -1;
	}
	if (write && qcow2_check_corrupt(q)) {
		error_setg(errp, "'%s' is marked corrupt: repair it with 'vireo-img check -r all' "
			   "first", q->bs->filename);
		return -1;
	}
	return 0;
}

static void to_info(const struct qcow2_snapshot *sn, struct blockdev_snapshot *out)
{
	if (!out)
		return;
	*out = (struct blockdev_snapshot){
		.id = strdup(sn->id), .name = strdup(sn->name), .date_sec = sn->date_sec,
		.date_nsec = sn->date_nsec, .vm_clock_nsec = sn->vm_clock_nsec,
		.vm_state_size = sn->vm_state_size, .icount = sn->icount,
	};
}

/* QEMU's new ID: one more than the largest number among the IDs. */
static void next_id(const struct qcow2_snapshot *s, uint32_t n, char *buf, size_t len)
{
	unsigned long max = 0;

	for (uint32_t i = 0; i < n; i++) {
		unsigned long v = strtoul(s[i].id, NULL, 10);

		max = MAX(max, v);
	}
	snprintf(buf, len, "%lu", max + 1);
}

static int create_locked(struct qcow2 *q, const char *name, uint64_t vm_clock_nsec,
			 struct blockdev_snapshot *made, struct error **errp)
{
	struct qcow2_snapshot *s = NULL, *all, *sn;
	uint64_t bytes = 0, *l1 = NULL;
	struct timespec now;
	uint32_t n = q->h.nb_snapshots, l1n;
	char id[24], active[96];
	int64_t off;
	int ret = -1;

	if (strlen(name) > UINT16_MAX) {
		error_setg(errp, "snapshot name of %zu bytes: at most %u", strlen(name), UINT16_MAX);
		return -1;
	}
	if (n >= QCOW2_MAX_SNAPSHOTS) {
		error_setg(errp, "'%s' already has %u snapshots, the most an image may have",
			   q->bs->filename, n);
		return -1;
	}
	if (qcow2_snapshots_read(q, &s, &bytes, errp))
		return -1;
	all = realloc(s, (n + 1) * sizeof(*all));
	if (!all) {
		qcow2_snapshots_free(s, n);
		error_setg(errp, "out of memory");
		return -1;
	}
	sn = memset(&all[n], 0, sizeof(*sn));
	next_id(all, n, id, sizeof(id));
	clock_gettime(CLOCK_REALTIME, &now);
	sn->id = strdup(id);
	sn->name = strdup(name);
	sn->extra = calloc(1, QCOW2_SNAPSHOT_EXTRA_LEN);
	l1 = active_l1(q, &l1n);
	if (!sn->id || !sn->name || !sn->extra || !l1) {
		error_setg(errp, "out of memory");
		goto out;
	}
	sn->l1_size = l1n;
	sn->date_sec = (uint32_t)now.tv_sec;
	sn->date_nsec = (uint32_t)(now.tv_nsec / 1000 * 1000); /* microseconds, as QEMU's */
	sn->vm_clock_nsec = vm_clock_nsec;
	sn->disk_size = q->h.size;
	sn->icount = 0;
	sn->extra_len = QCOW2_SNAPSHOT_EXTRA_LEN;
	qcow2_put_be64(sn->extra + 8, q->h.size); /* VM state size 0, disk size, icount 0 */
	snprintf(active, sizeof(active), "'%.64s': the active L1 table", q->bs->filename);
	if (walk(q, l1, l1n, +1, false, active, errp) || fix_copied(q, errp))
		goto out;
	off = write_l1_copy(q, l1, l1n);
	if (off < 0) {
		error_setg_errno(errp, (int)off, "'%s': writing the snapshot's L1 table",
				 q->bs->filename);
		goto out;
	}
	sn->l1_table_offset = (uint64_t)off;
	if ((ret = qcow2_snapshots_write(q, all, n + 1, bytes))) {
		error_setg_errno(errp, ret, "'%s': writing the snapshot table", q->bs->filename);
		goto out;
	}
	to_info(sn, made);
	ret = 0;
out:
	qcow2_snapshots_free(all, n + 1);
	free(l1);
	return ret ? -1 : 0;
}

/* The L2 tables in the file are the ones a snapshot operation works on: lazily published
 * entries go there first (lock held). 0, or -1 with the error. */
static int lazy_sync(struct qcow2 *q, struct error **errp)
{
	int ret = qcow2_lazy_sync(q);

	if (ret)
		error_setg_errno(errp, ret, "'%s': writing the last L2 entries", q->bs->filename);
	return ret ? -1 : 0;
}

int qcow2_snapshot_create(struct blockdev *bs, const char *name, uint64_t vm_clock_nsec,
			  struct blockdev_snapshot *made, struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	int ret;

	pthread_mutex_lock(&q->lock);
	if (lazy_sync(q, errp)) {
		pthread_mutex_unlock(&q->lock);
		return -1;
	}
	ret = usable(q, true, errp) ? -1 : create_locked(q, name, vm_clock_nsec, made, errp);
	q->zhost = 0; /* compressed writes start a fresh host cluster */
	pthread_mutex_unlock(&q->lock);
	return ret;
}

/* Switches the header to the L1 table at @off of @n entries and to @size; publishes @l1. */
static int switch_active(struct qcow2 *q, struct qcow2_l1 *l1, uint64_t off, uint64_t size,
			 struct error **errp)
{
	struct qcow2_header old = q->h;
	int ret;

	q->h.size = size;
	q->h.l1_size = l1->size;
	q->h.l1_table_offset = off;
	/* size, crypt_method, l1_size and l1_table_offset: one write */
	if ((ret = qcow2_header_update(q, 24, 48)) || (ret = qcow2_barrier(q))) {
		q->h.size = old.size;
		q->h.l1_size = old.l1_size;
		q->h.l1_table_offset = old.l1_table_offset;
		error_setg_errno(errp, ret, "'%s': writing the header", q->bs->filename);
		return ret;
	}
	/* release: the new table's entries before its pointer; the old array stays readable
	 * (retired) for whoever still holds it */
	q->l1_retired[q->nr_retired++] = atomic_load_explicit(&q->l1, memory_order_relaxed);
	atomic_store_explicit(&q->l1, l1, memory_order_release);
	return 0;
}

/* An in-memory L1 array holding @t's @n entries, "copied" flags dropped. */
static struct qcow2_l1 *new_l1(const uint64_t *t, uint32_t n)
{
	struct qcow2_l1 *l1 = calloc(1, sizeof(*l1) + (uint64_t)n * 8 + 8);

	if (!l1)
		return NULL;
	l1->size = n;
	for (uint32_t i = 0; i < n; i++)
		atomic_init(&l1->e[i], t[i] & ~QCOW2_OFLAG_COPIED);
	return l1;
}

/* The L1 entries (at least) a disk of the snapshot's size needs, and that size. */
static int snapshot_geometry(struct qcow2 *q, const struct qcow2_snapshot *sn, uint64_t *size,
			     uint32_t *entries, struct error **errp)
{
	uint64_t need;

	*size = sn->disk_size == UINT64_MAX ? q->h.size : sn->disk_size;
	need = qcow2_l1_entries_for(*size, q->cluster_bits, q->ext_l2);
	if (*size > QCOW2_MAX_VIRTUAL_SIZE || need * 8 > QCOW2_MAX_L1_BYTES) {
		error_setg(errp, "snapshot '%s': its disk size %" PRIu64 " is too large", sn->name,
			   *size);
		return -1;
	}
	*entries = (uint32_t)MAX(need, sn->l1_size);
	return 0;
}

static int goto_locked(struct qcow2 *q, const char *what, struct error **errp)
{
	struct qcow2_snapshot *s = NULL, *sn;
	uint64_t bytes, *st = NULL, *old = NULL, size, old_off = q->h.l1_table_offset;
	struct qcow2_l1 *l1 = NULL;
	uint32_t n = q->h.nb_snapshots, entries, oldn;
	int i, ret = -1;
	int64_t off;
	char label[160], active[96];

	if (qcow2_snapshots_read(q, &s, &bytes, errp))
		return -1;
	if ((i = qcow2_snapshot_find_id_or_name(s, n, what)) < 0) {
		error_setg(errp, "'%s' has no snapshot with the ID or name '%s'", q->bs->filename,
			   what);
		goto out;
	}
	sn = &s[i];
	snprintf(label, sizeof(label), "'%.64s': snapshot '%.64s'", q->bs->filename, sn->name);
	if (q->nr_retired == ARRAY_SIZE(q->l1_retired)) {
		error_setg(errp, "'%s': too many L1 table changes in one session: reopen it",
			   q->bs->filename);
		goto out;
	}
	if (snapshot_geometry(q, sn, &size, &entries, errp) ||
	    read_l1(q, sn, entries, label, &st, errp))
		goto out;
	old = active_l1(q, &oldn);
	l1 = new_l1(st, entries);
	if (!old || !l1) {
		error_setg(errp, "out of memory");
		goto out;
	}
	snprintf(active, sizeof(active), "'%.64s': the active L1 table", q->bs->filename);
	if (walk(q, old, oldn, -1, true, active, errp) ||
	    walk(q, st, sn->l1_size, +1, false, label, errp))
		goto out;
	off = write_l1_copy(q, st, entries);
	if (off < 0 || (ret = qcow2_barrier(q))) {
		error_setg_errno(errp, off < 0 ? (int)off : ret, "'%s': writing the new L1 table",
				 q->bs->filename);
		ret = -1;
		goto out;
	}
	if (switch_active(q, l1, (uint64_t)off, size, errp))
		goto out;
	l1 = NULL;
	if (size != q->bs->size && blockdev_bitmaps_resize(q->bs, size) < 0)
		fprintf(stderr, "qcow2: '%s': dirty bitmaps keep their old size (out of memory)\n",
			q->bs->filename);
	q->bs->size = size;
	if (walk(q, old, oldn, -1, false, active, errp))
		goto out;
	if (oldn && (ret = qcow2_free_range(q, old_off, ALIGN_UP((uint64_t)oldn * 8,
								  q->cluster_size)))) {
		error_setg_errno(errp, ret, "'%s': freeing the old L1 table", q->bs->filename);
		ret = -1;
		goto out;
	}
	ret = fix_copied(q, errp) ? -1 : 0;
out:
	free(l1);
	free(st);
	free(old);
	qcow2_snapshots_free(s, n);
	return ret;
}

int qcow2_snapshot_goto(struct blockdev *bs, const char *id_or_name, struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	int ret;

	pthread_mutex_lock(&q->lock);
	if (lazy_sync(q, errp)) {
		pthread_mutex_unlock(&q->lock);
		return -1;
	}
	ret = usable(q, true, errp) ? -1 : goto_locked(q, id_or_name, errp);
	q->zhost = 0;
	pthread_mutex_unlock(&q->lock);
	return ret;
}

static int delete_locked(struct qcow2 *q, const char *id, const char *name,
			 struct blockdev_snapshot *deleted, struct error **errp)
{
	struct qcow2_snapshot *s = NULL, gone;
	uint64_t bytes, *st = NULL;
	uint32_t n = q->h.nb_snapshots;
	int i, ret = -1;
	char label[160];

	if (qcow2_snapshots_read(q, &s, &bytes, errp))
		return -1;
	if ((i = qcow2_snapshot_find(s, n, id, name)) < 0) {
		error_setg(errp, "'%s' has no snapshot with %s%.256s%s%s%s%.256s%s", q->bs->filename,
			   id ? "the ID '" : "", id ? id : "", id ? "'" : "",
			   id && name ? " and " : "", name ? "the name '" : "", name ? name : "",
			   name ? "'" : "");
		goto out;
	}
	gone = s[i];
	snprintf(label, sizeof(label), "'%.64s': snapshot '%.64s'", q->bs->filename, gone.name);
	if (read_l1(q, &gone, 0, label, &st, errp) ||
	    walk(q, st, gone.l1_size, -1, true, label, errp))
		goto out;
	memmove(&s[i], &s[i + 1], (n - i - 1) * sizeof(*s));
	s[n - 1] = gone; /* still freed with the rest */
	if ((ret = qcow2_snapshots_write(q, s, n - 1, bytes))) {
		s[i] = gone; /* (order no longer matters: only freed) */
		error_setg_errno(errp, ret, "'%s': writing the snapshot table", q->bs->filename);
		ret = -1;
		goto out;
	}
	to_info(&gone, deleted);
	if (walk(q, st, gone.l1_size, -1, false, label, errp)) {
		ret = -1;
		goto out;
	}
	if (gone.l1_size && (ret = qcow2_free_range(q, gone.l1_table_offset,
						     ALIGN_UP((uint64_t)gone.l1_size * 8,
							      q->cluster_size)))) {
		error_setg_errno(errp, ret, "'%s': freeing the snapshot's L1 table",
				 q->bs->filename);
		ret = -1;
		goto out;
	}
	ret = fix_copied(q, errp) ? -1 : 0;
out:
	free(st);
	qcow2_snapshots_free(s, n);
	return ret;
}

int qcow2_snapshot_delete(struct blockdev *bs, const char *id, const char *name,
			  struct blockdev_snapshot *deleted, struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	int ret;

	pthread_mutex_lock(&q->lock);
	if (lazy_sync(q, errp)) {
		pthread_mutex_unlock(&q->lock);
		return -1;
	}
	ret = usable(q, true, errp) ? -1 : delete_locked(q, id, name, deleted, errp);
	q->zhost = 0;
	pthread_mutex_unlock(&q->lock);
	return ret;
}

int qcow2_snapshot_load_tmp(struct blockdev *bs, const char *id, const char *name,
			    struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	struct qcow2_snapshot *s = NULL, *sn;
	uint64_t bytes, *st = NULL, size;
	struct qcow2_l1 *l1 = NULL;
	uint32_t n, entries;
	int i, ret = -1;
	char label[160];

	if (!q->read_only) {
		error_setg(errp, "'%s': a snapshot is loaded only into an image opened read-only",
			   bs->filename);
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	n = q->h.nb_snapshots;
	if (usable(q, false, errp) || qcow2_snapshots_read(q, &s, &bytes, errp))
		goto out;
	if ((i = qcow2_snapshot_find(s, n, id, name)) < 0) {
		error_setg(errp, "Can't find snapshot");
		goto out;
	}
	sn = &s[i];
	if (q->nr_retired == ARRAY_SIZE(q->l1_retired)) {
		error_setg(errp, "'%s': too many L1 table changes in one session", bs->filename);
		goto out;
	}
	snprintf(label, sizeof(label), "'%.64s': snapshot '%.64s'", bs->filename, sn->name);
	if (snapshot_geometry(q, sn, &size, &entries, errp) ||
	    read_l1(q, sn, entries, label, &st, errp))
		goto out;
	for (uint32_t k = 0; k < sn->l1_size; k++) {
		uint64_t l2 = st[k] & QCOW2_OFFSET_MASK;

		if ((st[k] & QCOW2_L1_RESERVED) || l2 % q->cluster_size ||
		    (l2 && (!range_within(l2, q->cluster_size, qcow2_file_end(q)) ||
			    qcow2_overlaps_metadata(q, l2, q->cluster_size)))) {
			error_setg(errp, "%s: L1 entry %u (0x%016" PRIx64 ") has reserved bits "
				   "set, or its L2 table is misaligned, inside the header, L1 or "
				   "refcount table, or past the end of the file", label, k, st[k]);
			goto out;
		}
	}
	if (!(l1 = new_l1(st, entries))) {
		error_setg(errp, "out of memory");
		goto out;
	}
	/* nothing is written: the header and the file stay as they are */
	q->l1_retired[q->nr_retired++] = atomic_load_explicit(&q->l1, memory_order_relaxed);
	atomic_store_explicit(&q->l1, l1, memory_order_release);
	q->h.size = size;
	q->h.l1_size = sn->l1_size;
	q->h.l1_table_offset = sn->l1_table_offset;
	bs->size = size;
	ret = 0;
out:
	pthread_mutex_unlock(&q->lock);
	free(st);
	qcow2_snapshots_free(s, n);
	return ret;
}
