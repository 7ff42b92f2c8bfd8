/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 persistent dirty bitmaps: the bitmaps header extension, the bitmap directory, each
 * bitmap's table and data clusters, kept in step with the node's in-memory bitmaps (bitmap.h).
 *
 * Who owns what. The directory as the file holds it is read at open into q->bm (with each
 * entry's in-memory bitmap in q->bm_mem); only the control plane touches it, at open, close,
 * info and check. While the node is open its bitmaps live in memory: guest writes set their
 * bits on the iothreads without a lock (bitmap.c), QMP adds, removes, clears and merges them.
 *
 * On disk. Opening a writable image sets the "in use" flag of every bitmap it loaded, in place
 * (one 4-byte write per entry, then a flush): until the image is closed cleanly the stored bits
 * are stale, and a crash leaves them marked so; such a bitmap loads as inconsistent (it records
 * nothing and can only be removed; check -r all removes it). Closing writes afresh the
 * persistent bitmaps whose bits changed since they were loaded (or that are new): their data
 * clusters (an all-zero cluster is left out of the table as a zero entry), their tables, then
 * a new directory with the flags clear (the other entries keep their tables and data), a
 * barrier, and the header switched to the directory (the bitmaps extension and autoclear bit
 * 0 in one header write); only then are the replaced directory, tables and data freed. A
 * crash at any point leaves the old directory (in use) or the new one, and at most leaked
 * clusters. When no bitmap changed, came or went, the directory stays where it is and only
 * its flags are rewritten in place (in use cleared, "auto" as the bitmap records or not), one
 * 4-byte write per entry and a flush, as opening set them. Entries this code does not load
 * (unknown extra data without the "compatible" flag) and inconsistent bitmaps are written
 * back as they were.
 *
 * QMP's block-dirty-bitmap-remove of a stored bitmap takes it out of the image at once, as
 * QEMU's: a new directory without its entry (the others as the file holds them, in use), a
 * barrier, the header switched, then its table, data and the old directory freed and the
 * refcounts flushed.
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "common/util.h"

/* The bitmaps extension (and autoclear bit 0) rewritten: @n entries at @off, @size bytes. */
static int set_ext(struct qcow2 *q, uint32_t n, uint64_t off, uint64_t size,
		   struct error **errp)
{
	struct qcow2_header h = q->h; /* shares the extension arrays: serialize only reads them */

	memset(h.bitmaps_ext, 0, sizeof(h.bitmaps_ext));
	qcow2_put_be32(h.bitmaps_ext, n);
	qcow2_put_be64(h.bitmaps_ext + 8, size);
	qcow2_put_be64(h.bitmaps_ext + 16, off);
	h.has_bitmaps_ext = n > 0;
	h.nb_bitmaps = n;
	h.bitmap_directory_size = n ? size : 0;
	h.bitmap_directory_offset = n ? off : 0;
	if (n)
		h.autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
	else
		h.autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
	return qcow2_write_header(q, &h, errp);
}

static int read_dir(struct qcow2 *q, struct error **errp)
{
	uint64_t size = q->h.bitmap_directory_size, off = q->h.bitmap_directory_offset, pos = 0;
	uint32_t n = q->h.nb_bitmaps;
	uint8_t *dir = malloc(size + 1);
	int ret = -1;

	q->bm = calloc(n, sizeof(*q->bm));
	q->bm_mem = calloc(n, sizeof(*q->bm_mem));
	if (!dir || !q->bm || !q->bm_mem) {
		error_setg(errp, "out of memory for the bitmap directory");
		goto out;
	}
	q->nr_bm = n;
	if (blockdev_pread(q->file, off, dir, size)) {
		error_setg(errp, "reading the bitmap directory at 0x%" PRIx64, off);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t len = pos + QCOW2_BITMAP_ENTRY_LEN <= size ?
			       qcow2_bitmap_entry_len(dir + pos) : UINT64_MAX;

		if (len > size - pos) {
			error_setg(errp, "qcow2 bitmap %u (directory entry at 0x%" PRIx64 ") ends "
				   "past the %" PRIu64 "-byte bitmap directory", i, off + pos, size);
			goto out;
		}
		if (qcow2_bitmap_parse(dir + pos, i, off + pos, q->cluster_bits, q->h.size,
				       &q->bm[i], errp))
			goto out;
		if (strlen(q->bm[i].name) != len - QCOW2_BITMAP_ENTRY_LEN - q->bm[i].extra_len) {
			error_setg(errp, "qcow2 bitmap %u: its name holds a NUL byte", i);
			goto out;
		}
		for (uint32_t j = 0; j < i; j++) {
			if (!strcmp(q->bm[j].name, q->bm[i].name)) {
				error_setg(errp, "qcow2 bitmaps %u and %u are both called '%s'", j, i,
					   q->bm[i].name);
				goto out;
			}
		}
		pos += ALIGN_UP(len, 8);
	}
	if (pos < size) {
		error_setg(errp, "the bitmap directory (%" PRIu64 " bytes) holds %" PRIu64 " bytes "
			   "past its %u entries", size, size - pos, n);
		goto out;
	}
	ret = 0;
out:
	free(dir);
	return ret;
}

/* Bitmap @bm's table in host order, every entry checked; NULL with the error. */
static uint64_t *read_table(struct qcow2 *q, const struct qcow2_bitmap *bm, struct error **errp)
{
	uint64_t bytes = (uint64_t)bm->table_size * 8, *t = malloc(bytes + 8);

	if (!t) {
		error_setg(errp, "out of memory");
		return NULL;
	}
	if (bytes && (!range_within(bm->table_offset, bytes, qcow2_file_end(q)) ||
		      qcow2_overlaps_metadata(q, bm->table_offset, bytes))) {
		error_setg(errp, "bitmap '%s': its table (0x%" PRIx64 ", %u entries) is past the end "
			   "of the file or on the header, L1 or refcount table", bm->name,
			   bm->table_offset, bm->table_size);
		goto fail;
	}
	if (bytes && blockdev_pread(q->file, bm->table_offset, t, bytes)) {
		error_setg(errp, "bitmap '%s': reading its table", bm->name);
		goto fail;
	}
	for (uint32_t k = 0; k < bm->table_size; k++) {
		uint64_t e = qcow2_be64((const uint8_t *)&t[k]), off = e & QCOW2_OFFSET_MASK;

		t[k] = e;
		if ((e & QCOW2_BITMAP_TABLE_RESERVED) || (off && (e & 1)) || off % q->cluster_size ||
		    (off && (!range_within(off, q->cluster_size, qcow2_file_end(q)) ||
			     qcow2_overlaps_metadata(q, off, q->cluster_size)))) {
			error_setg(errp, "bitmap '%s': table entry %u (0x%016" PRIx64 ") has reserved "
				   "bits set, or its data cluster is misaligned, past the end of the "
				   "file or on the header, L1 or refcount table", bm->name, k, e);
			goto fail;
		}
	}
	return t;
fail:
	free(t);
	return NULL;
}

/* Entry @i into an in-memory bitmap of the node (unless it must be kept as it is). */
static int load_one(struct qcow2 *q, uint32_t i, uint8_t *buf, struct error **errp)
{
	const struct qcow2_bitmap *bm = &q->bm[i];
	uint64_t total = qcow2_bitmap_data_bytes(q->h.size, bm->gran_bits), *t;
	struct blockdev_bitmap *b;

	if (bm->extra_len && !(bm->flags & QCOW2_BITMAP_EXTRA_COMPAT))
		return 0; /* extra data we do not know, which must not be ignored: kept, unused */
	b = blockdev_bitmap_add(q->bs, bm->name, 1ULL << bm->gran_bits,
				!(bm->flags & QCOW2_BITMAP_AUTO), errp);
	if (!b)
		return -1;
	blockdev_bitmap_set_persistent(b, true);
	q->bm_mem[i] = b;
	if (bm->flags & QCOW2_BITMAP_IN_USE) {
		blockdev_bitmap_set_inconsistent(b);
		return 0;
	}
	if (!(t = read_table(q, bm, errp)))
		return -1;
	for (uint32_t k = 0; k < bm->table_size; k++) {
		uint64_t off = t[k] & QCOW2_OFFSET_MASK, at = (uint64_t)k << q->cluster_bits;
		uint64_t n = MIN(q->cluster_size, total - at);

		if (!off && !(t[k] & 1))
			continue; /* all zeroes */
		if (!off)
			memset(buf, 0xff, n);
		else if (blockdev_pread(q->file, off, buf, n)) {
			error_setg(errp, "bitmap '%s': reading its data at 0x%" PRIx64, bm->name, off);
			free(t);
			return -1;
		}
		blockdev_bitmap_set_bytes(b, at, buf, n);
	}
	free(t);
	blockdev_bitmap_set_unchanged(b); /* what the image holds: closing keeps it as it is */
	return 0;
}

/* Sets the "in use" flag of every bitmap loaded consistent, in place, then flushes. */
static int mark_in_use(struct qcow2 *q, struct error **errp)
{
	uint64_t pos = q->h.bitmap_directory_offset;
	bool any = false;

	for (uint32_t i = 0; i < q->nr_bm; i++) {
		struct qcow2_bitmap *bm = &q->bm[i];
		uint8_t flags[4];

		if (q->bm_mem[i] && !blockdev_bitmap_inconsistent(q->bm_mem[i])) {
			bm->flags |= QCOW2_BITMAP_IN_USE;
			qcow2_put_be32(flags, bm->flags);
			if (blockdev_pwrite(q->file, pos + 12, flags, sizeof(flags))) {
				error_setg(errp, "marking bitmap '%s' in use", bm->name);
				return -1;
			}
			any = true;
		}
		pos += qcow2_bitmap_size(bm);
	}
	if (any && blockdev_flush(q->file)) {
		error_setg(errp, "flushing the bitmap directory");
		return -1;
	}
	return 0;
}

void qcow2_bitmaps_release(struct qcow2 *q)
{
	qcow2_bitmaps_free(q->bm, q->nr_bm);
	free(q->bm_mem);
	q->bm = NULL;
	q->bm_mem = NULL;
	q->nr_bm = 0;
}

/* Loading failed: the bitmaps loaded so far leave the node. */
static void unload(struct qcow2 *q)
{
	for (uint32_t i = 0; i < q->nr_bm; i++)
		if (q->bm_mem[i])
			blockdev_bitmap_remove(q->bs, q->bm_mem[i], NULL);
	qcow2_bitmaps_release(q);
}

int qcow2_bitmaps_load(struct qcow2 *q, struct error **errp)
{
	uint8_t *buf;
	int ret = 0;

	if (!q->h.has_bitmaps_ext)
		return 0;
	if (!(q->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
		/* a program without bitmap support wrote the image: the bitmaps are stale */
		fprintf(stderr, "qcow2: '%s': its bitmaps extension is marked stale (autoclear bit 0 "
			"clear): the bitmaps are ignored%s\n", q->bs->filename,
			q->read_only ? "" : " and dropped");
		if (!q->read_only) {
			pthread_mutex_lock(&q->lock);
			ret = set_ext(q, 0, 0, 0, errp);
			pthread_mutex_unlock(&q->lock);
		}
		return ret ? -1 : 0;
	}
	buf = malloc(q->cluster_size);
	if (!buf) {
		error_setg(errp, "out of memory");
		return -1;
	}
	ret = read_dir(q, errp);
	for (uint32_t i = 0; i < q->nr_bm && !ret; i++)
		ret = load_one(q, i, buf, errp);
	free(buf);
	if (!ret && !q->read_only)
		ret = mark_in_use(q, errp);
	if (!ret)
		return 0;
	unload(q);
	error_prepend(errp, "'%s'", q->bs->filename);
	if (!q->repair)
		return -1;
	/* check -r: the image is repaired without its bitmaps (their clusters become leaks) */
	fprintf(stderr, "qcow2: %s: dropping the bitmaps\n", error_msg(*errp));
	error_free(*errp);
	*errp = NULL;
	pthread_mutex_lock(&q->lock);
	ret = set_ext(q, 0, 0, 0, errp);
	pthread_mutex_unlock(&q->lock);
	return ret ? -1 : 0;
}

/* --- storing --- */

struct live {
	struct blockdev_bitmap **v;
	uint32_t n, cap;
	bool oom;
};

static void collect(struct blockdev_bitmap *b, void *opaque)
{
	struct live *l = opaque;

	if (!blockdev_bitmap_persistent(b))
		return;
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 8;
		struct blockdev_bitmap **v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->oom = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = b;
}

/* Writes @b's data and table into fresh clusters; *@out describes it. Lock held. */
static int write_fresh(struct qcow2 *q, struct blockdev_bitmap *b, struct qcow2_bitmap *out)
{
	uint64_t bytes = blockdev_bitmap_bytes(b), cs = q->cluster_size;
	uint64_t entries = DIV_ROUND_UP(bytes, cs), tbytes = ALIGN_UP(entries * 8, cs);
	uint8_t *table = calloc(1, tbytes + 8), *buf = malloc(cs);
	int64_t off;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	out->name = strdup(blockdev_bitmap_name(b));
	out->extra = malloc(1);
	if (!table || !buf || !out->name || !out->extra) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t k = 0; k < entries && !ret; k++) {
		memset(buf, 0, cs);
		blockdev_bitmap_get_bytes(b, k * cs, buf, MIN(cs, bytes - k * cs));
		if (buf_is_zero(buf, cs))
			continue;
		off = qcow2_alloc_clusters(q, 1);
		ret = off < 0 ? (int)off : blockdev_pwrite(q->file, (uint64_t)off, buf, cs);
		if (!ret)
			qcow2_put_be64(table + 8 * k, (uint64_t)off);
	}
	if (!ret && entries) {
		off = qcow2_alloc_clusters(q, tbytes / cs);
		ret = off < 0 ? (int)off : blockdev_pwrite(q->file, (uint64_t)off, table, tbytes);
		out->table_offset = off < 0 ? 0 : (uint64_t)off;
	}
	out->table_size = (uint32_t)entries;
	out->flags = blockdev_bitmap_enabled(b) ? QCOW2_BITMAP_AUTO : 0;
	out->type = QCOW2_BITMAP_TYPE_DIRTY;
	out->gran_bits = (uint8_t)__builtin_ctzll(blockdev_bitmap_granularity(b));
out:
	free(table);
	free(buf);
	return ret;
}

/* A copy of @bm (to write back as it was). */
static int copy_entry(const struct qcow2_bitmap *bm, struct qcow2_bitmap *out)
{
	*out = *bm;
	out->name = strdup(bm->name);
	out->extra = malloc(bm->extra_len ? bm->extra_len : 1);
	if (!out->name || !out->extra)
		return -ENOMEM;
	memcpy(out->extra, bm->extra, bm->extra_len);
	return 0;
}

/* Entry @bm as closing leaves it for in-memory bitmap @m: not in use, "auto" if it records. */
static uint32_t closed_flags(const struct qcow2_bitmap *bm, struct blockdev_bitmap *m)
{
	uint32_t f = bm->flags & ~(QCOW2_BITMAP_IN_USE | QCOW2_BITMAP_AUTO);

	return f | (blockdev_bitmap_enabled(m) ? QCOW2_BITMAP_AUTO : 0);
}

/* Loaded entry @i is stored again as it is (its data did not change since open)? */
static bool unchanged(struct qcow2 *q, uint32_t i)
{
	struct blockdev_bitmap *m = q->bm_mem[i];

	return m && blockdev_bitmap_live(q->bs, m) && !blockdev_bitmap_inconsistent(m) &&
	       !blockdev_bitmap_changed(m);
}

/*
 * No bitmap changed, came or went: the directory's flags rewritten in place (in use cleared,
 * "auto" as each records), then a flush. 1 when it cannot be done this way, 0 or -errno.
 * Lock held.
 */
static int flags_in_place(struct qcow2 *q, const struct live *l)
{
	uint64_t pos = q->h.bitmap_directory_offset;
	bool any = false;
	int ret;

	for (uint32_t i = 0; i < q->nr_bm; i++) {
		struct blockdev_bitmap *m = q->bm_mem[i];

		if (m && (!blockdev_bitmap_live(q->bs, m) ||
			  (!blockdev_bitmap_inconsistent(m) && blockdev_bitmap_changed(m))))
			return 1; /* removed or changed (an inconsistent one stays as it is) */
	}
	for (uint32_t k = 0; k < l->n; k++) {
		bool known = false;

		for (uint32_t i = 0; i < q->nr_bm; i++)
			known |= q->bm_mem[i] == l->v[k];
		if (!known)
			return 1; /* new */
	}
	for (uint32_t i = 0; i < q->nr_bm; i++) {
		struct qcow2_bitmap *bm = &q->bm[i];
		uint8_t flags[4];

		if (unchanged(q, i) && closed_flags(bm, q->bm_mem[i]) != bm->flags) {
			bm->flags = closed_flags(bm, q->bm_mem[i]);
			qcow2_put_be32(flags, bm->flags);
			if ((ret = blockdev_pwrite(q->file, pos + 12, flags, sizeof(flags))))
				return ret;
			any = true;
		}
		pos += qcow2_bitmap_size(bm);
	}
	return any ? blockdev_flush(q->file) : 0;
}

/* Frees bitmap @bm's data and table clusters (its table was checked at load). Lock held. */
static int free_clusters(struct qcow2 *q, const struct qcow2_bitmap *bm)
{
	uint64_t *t = read_table(q, bm, NULL);
	int ret = t ? 0 : -EIO;

	for (uint32_t k = 0; t && k < bm->table_size && !ret; k++)
		if (t[k] & QCOW2_OFFSET_MASK)
			ret = qcow2_free_range(q, t[k] & QCOW2_OFFSET_MASK, q->cluster_size);
	if (!ret && bm->table_size)
		ret = qcow2_free_range(q, bm->table_offset,
				       ALIGN_UP((uint64_t)bm->table_size * 8, q->cluster_size));
	free(t);
	return ret;
}

/* The new directory: @n entries into fresh clusters, the header switched to it. Lock held. */
static int write_dir(struct qcow2 *q, const struct qcow2_bitmap *d, uint32_t n,
		     struct error **errp)
{
	uint64_t size = 0, pos = 0;
	uint8_t *buf;
	int64_t off = 0;
	int ret;

	for (uint32_t i = 0; i < n; i++)
		size += qcow2_bitmap_size(&d[i]);
	if (size > QCOW2_BITMAP_MAX_DIR) {
		error_setg(errp, "the bitmap directory would take %" PRIu64 " bytes", size);
		return -1;
	}
	buf = calloc(1, ALIGN_UP(size, q->cluster_size) + 8);
	if (!buf) {
		error_setg(errp, "out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		qcow2_bitmap_put(&d[i], buf + pos);
		pos += qcow2_bitmap_size(&d[i]);
	}
	if (n) {
		off = qcow2_alloc_clusters(q, DIV_ROUND_UP(size, q->cluster_size));
		ret = off < 0 ? (int)off :
		      blockdev_pwrite(q->file, (uint64_t)off, buf, ALIGN_UP(size, q->cluster_size));
		if (ret) {
			free(buf);
			error_setg_errno(errp, ret, "writing the bitmap directory");
			return -1;
		}
	}
	free(buf);
	if ((ret = qcow2_barrier(q))) {
		error_setg_errno(errp, ret, "flushing the bitmaps");
		return -1;
	}
	return set_ext(q, n, (uint64_t)off, size, errp);
}

static int store_locked(struct qcow2 *q, const struct live *l, struct error **errp)
{
	uint64_t old_off = q->h.bitmap_directory_offset, old_size = q->h.bitmap_directory_size;
	bool had_dir = q->h.has_bitmaps_ext;
	struct qcow2_bitmap *d = calloc((size_t)q->nr_bm + l->n + 1, sizeof(*d));
	bool *replaced = calloc((size_t)q->nr_bm + 1, sizeof(*replaced));
	uint32_t n = 0;
	int ret = 0;

	if (!d || !replaced) {
		error_setg(errp, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < q->nr_bm && !ret; i++) {
		struct blockdev_bitmap *m = q->bm_mem[i];

		if (m && !blockdev_bitmap_live(q->bs, m)) {
			replaced[i] = true; /* removed */
		} else if (!m || blockdev_bitmap_inconsistent(m)) {
			ret = copy_entry(&q->bm[i], &d[n++]);
		} else if (unchanged(q, i)) { /* its table and data stay */
			ret = copy_entry(&q->bm[i], &d[n]);
			d[n].flags = closed_flags(&q->bm[i], m);
			n++;
		} else {
			replaced[i] = true;
			ret = write_fresh(q, m, &d[n++]);
		}
	}
	for (uint32_t k = 0; k < l->n && !ret; k++) {
		bool known = false;

		for (uint32_t i = 0; i < q->nr_bm; i++)
			known |= q->bm_mem[i] == l->v[k];
		if (!known)
			ret = write_fresh(q, l->v[k], &d[n++]);
	}
	if (ret) {
		error_setg_errno(errp, ret, "writing the bitmaps");
		goto out;
	}
	if ((!n && !had_dir) || write_dir(q, d, n, errp)) {
		ret = n || had_dir ? -1 : 0;
		goto out;
	}
	/* the header names the new directory: what the old one held can go */
	for (uint32_t i = 0; i < q->nr_bm && !ret; i++)
		if (replaced[i])
			ret = free_clusters(q, &q->bm[i]);
	if (!ret && had_dir)
		ret = qcow2_free_range(q, old_off, ALIGN_UP(old_size, q->cluster_size));
	if (ret)
		error_setg_errno(errp, ret, "freeing the old bitmaps (leaked clusters)");
out:
	qcow2_bitmaps_free(d, n);
	free(replaced);
	return ret ? -1 : 0;
}

void qcow2_bitmaps_store(struct qcow2 *q)
{
	struct live l = { 0 };
	struct error *err = NULL;

	blockdev_bitmap_for_each(q->bs, collect, &l);
	if (l.oom) {
		fprintf(stderr, "qcow2: '%s': out of memory storing the bitmaps\n", q->bs->filename);
	} else if ((l.n || q->nr_bm) && !atomic_load(&q->corrupt)) {
		int ret;

		pthread_mutex_lock(&q->lock);
		ret = flags_in_place(q, &l);
		if (ret < 0)
			error_setg_errno(&err, -ret, "clearing the in-use flags");
		else if (ret > 0)
			store_locked(q, &l, &err);
		if (err)
			fprintf(stderr, "qcow2: '%s': storing the persistent bitmaps: %s\n",
				q->bs->filename, error_msg(err));
		pthread_mutex_unlock(&q->lock);
		error_free(err);
	}
	free(l.v);
}

/* --- QMP and info --- */

int qcow2_bitmap_remove(struct blockdev *bs, const char *name, struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	uint64_t old_off = q->h.bitmap_directory_offset, old_size = q->h.bitmap_directory_size;
	struct qcow2_bitmap *d = NULL, gone;
	uint32_t i, n = 0;
	int ret = 0;

	for (i = 0; i < q->nr_bm; i++)
		if (q->bm_mem[i] && !strcmp(q->bm[i].name, name))
			break;
	if (i == q->nr_bm)
		return 0; /* added since open: nothing stored yet */
	if (q->read_only || atomic_load(&q->corrupt)) {
		error_setg(errp, "Bitmap '%s' is readonly and cannot be modified", name);
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	d = calloc((size_t)q->nr_bm, sizeof(*d));
	if (!d)
		ret = -ENOMEM;
	for (uint32_t k = 0; k < q->nr_bm && !ret; k++)
		if (k != i)
			ret = copy_entry(&q->bm[k], &d[n++]); /* as the file holds it (in use) */
	if (ret) {
		error_setg_errno(errp, -ret, "Failed to remove bitmap '%s' from the image", name);
		goto out;
	}
	if (write_dir(q, d, n, errp)) {
		error_prepend(errp, "Failed to remove bitmap '%s' from the image: ", name);
		ret = -1;
		goto out;
	}
	/* the image no longer names it: its clusters and the old directory go */
	ret = free_clusters(q, &q->bm[i]);
	if (!ret)
		ret = qcow2_free_range(q, old_off, ALIGN_UP(old_size, q->cluster_size));
	if (!ret)
		ret = qcow2_barrier(q);
	if (ret)
		fprintf(stderr, "qcow2: '%s': bitmap '%s' removed, but freeing its clusters failed "
			"(%s): they are leaked ('check -r leaks' frees them)\n", bs->filename, name,
			strerror(-ret));
	ret = 0;
	gone = q->bm[i];
	memmove(&q->bm[i], &q->bm[i + 1], (q->nr_bm - i - 1) * sizeof(*q->bm));
	memmove(&q->bm_mem[i], &q->bm_mem[i + 1], (q->nr_bm - i - 1) * sizeof(*q->bm_mem));
	q->nr_bm--;
	qcow2_bitmap_free(&gone);
out:
	pthread_mutex_unlock(&q->lock);
	qcow2_bitmaps_free(d, n);
	return ret ? -1 : 0;
}

int qcow2_bitmap_can_store(struct blockdev *bs, const char *name, uint64_t granularity,
			   struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	unsigned bits = granularity ? (unsigned)__builtin_ctzll(granularity) : 16;
	const char *why = NULL;
	struct live l = { 0 };

	if (q->h.version < 3) {
		error_setg(errp, "Cannot store dirty bitmaps in qcow2 v2 files");
		return -1;
	}
	blockdev_bitmap_for_each(bs, collect, &l);
	free(l.v);
	if (q->read_only)
		why = "the image is read-only";
	else if (strlen(name) > QCOW2_BITMAP_MAX_NAME)
		why = "Name length exceeds maximum";
	else if (qcow2_bitmap_data_bytes(bs->size, bits) > QCOW2_BITMAP_MAX_DATA)
		why = "Too much space will be occupied by the bitmap. Use larger granularity";
	else if (l.n + 1 > QCOW2_MAX_BITMAPS)
		why = "Maximum number of persistent bitmaps is already reached";
	for (uint32_t i = 0; !why && i < q->nr_bm; i++)
		if (!q->bm_mem[i] && !strcmp(q->bm[i].name, name))
			why = "Bitmap with the same name is already stored";
	if (!why)
		return 0;
	error_setg(errp, "Can't make bitmap '%s' persistent in '%s': %s", name, bs->node_name,
		   why);
	return -1;
}

struct json_object *qcow2_bitmaps_info(struct qcow2 *q)
{
	struct json_object *a;

	if (!q->nr_bm)
		return NULL;
	a = json_object_new_array();
	for (uint32_t i = 0; i < q->nr_bm; i++) {
		struct json_object *o = json_object_new_object(), *flags = json_object_new_array();

		if (q->bm[i].flags & QCOW2_BITMAP_IN_USE)
			json_object_array_add(flags, json_object_new_string("in-use"));
		if (q->bm[i].flags & QCOW2_BITMAP_AUTO)
			json_object_array_add(flags, json_object_new_string("auto"));
		json_object_object_add(o, "flags", flags);
		json_object_object_add(o, "name", json_object_new_string(q->bm[i].name));
		json_object_object_add(o, "granularity",
				       json_object_new_int64(1LL << q->bm[i].gran_bits));
		json_object_array_add(a, o);
	}
	return a;
}
