/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 consistency check: count every reference to every host cluster (header, L1, refcount
 * table and blocks, L2 tables, data and compressed clusters, snapshot tables and their L1/L2,
 * the bitmap directory, tables and data), then compare with the stored refcounts. A stored
 * refcount above the references is a leak; below is a corruption (a cluster could be handed
 * out twice). Repair sets the stored refcount to the counted one where a refcount block exists.
 */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "common/util.h"

struct counter {
	struct qcow2 *q;
	uint32_t *refs;
	uint64_t nr;
	uint64_t limit; /* clusters in the file: references past it are corruptions */
	uint64_t unfixable; /* differences a refcount block update cannot fix */
	bool verbose;
	struct blockdev_check_result *res;
};

static void report(const struct counter *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(const struct counter *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static int ref_range(struct counter *c, uint64_t off, uint64_t len, const char *what)
{
	struct qcow2 *q = c->q;

	if (!len)
		return 0;
	if (off + len < off || off + len > (1ULL << 56)) {
		report(c, "ERROR %s at 0x%" PRIx64 ": offset out of range\n", what, off);
		c->res->corruptions++;
		return 0;
	}
	for (uint64_t cl = off >> q->cluster_bits; cl <= (off + len - 1) >> q->cluster_bits; cl++) {
		if (cl >= c->limit) {
			report(c, "ERROR %s at 0x%" PRIx64 ": cluster %" PRIu64 " is past the end "
				"of the file\n", what, off, cl);
			c->res->corruptions++;
			return 0;
		}
		if (cl >= c->nr) {
			uint64_t n = MAX(cl + 1, c->nr * 2);
			uint32_t *r = realloc(c->refs, n * sizeof(*r));

			if (!r)
				return -ENOMEM;
			memset(r + c->nr, 0, (n - c->nr) * sizeof(*r));
			c->refs = r;
			c->nr = n;
		}
		if (c->refs[cl] != UINT32_MAX)
			c->refs[cl]++;
	}
	return 0;
}

/*
 * Reads the table of @n big-endian words at @off into *@out, in host order. Only the words that
 * start inside the file (c->limit clusters) are read; *@have says how many, and the word after
 * them is 0 (*@out has room for *@have + 1 words). Past its end the file reads as zeroes, and a
 * zero entry references nothing, so callers look at the first *@have words only: a hostile
 * image can carry thousands of snapshots, each with a 32 MiB L1 table past the end of a small
 * file, or reaching far past it.
 */
static int read_be64s(const struct counter *c, uint64_t off, uint64_t n, uint64_t **out,
		      uint64_t *have)
{
	uint64_t end = c->limit << c->q->cluster_bits, *t;
	int ret;

	n = off < end ? MIN(n, DIV_ROUND_UP(end - off, 8)) : 0;
	t = malloc(n * 8 + 8);
	if (!t)
		return -ENOMEM;
	ret = n ? blockdev_pread(c->q->file, off, t, n * 8) : 0;
	for (uint64_t i = 0; i < n && !ret; i++)
		t[i] = qcow2_be64((const uint8_t *)&t[i]);
	if (ret) {
		free(t);
		return ret;
	}
	t[n] = 0;
	*out = t;
	*have = n;
	return 0;
}

static int count_l2(struct counter *c, uint64_t l2, bool active, uint64_t first_gc)
{
	struct qcow2 *q = c->q;
	uint64_t n = 1ULL << q->l2_bits, *t, have, prev_end = 0;
	int ret = read_be64s(c, l2, n * q->entry_words, &t, &have);

	if (ret)
		return ret;
	n = MIN(n, DIV_ROUND_UP(have, q->entry_words)); /* an entry's second word may be t[have] */
	for (uint64_t i = 0; i < n && !ret; i++) {
		uint64_t e = t[i * q->entry_words], off = e & QCOW2_OFFSET_MASK, rc;
		uint64_t words[2] = { e, q->ext_l2 ? t[i * 2 + 1] : 0 };
		struct qcow2_run r;
		bool has_host;

		if (!e && !words[1])
			continue;
		if (qcow2_decode(q, words, 0, l2, i, &r)) {
			report(c, "ERROR: invalid L2 entry 0x%016" PRIx64 " (L2 table 0x%" PRIx64
				", index %" PRIu64 ")\n", e, l2, i);
			c->res->corruptions++;
			continue;
		}
		/* offset 0 is a cluster of an external data file when the entry says "copied"
		 * (its clusters always have refcount 1) and is not a plain zero entry */
		has_host = off || (q->data != q->file && (e & QCOW2_OFLAG_COPIED) &&
				   (q->ext_l2 || !(e & QCOW2_OFLAG_ZERO)));
		if (active && (has_host || (e & QCOW2_OFLAG_COMPRESSED)) &&
		    (first_gc + i) << q->cluster_bits < q->h.size)
			c->res->allocated_clusters++;
		if (e & QCOW2_OFLAG_COMPRESSED) {
			unsigned x = 62 - (q->cluster_bits - 8);
			uint64_t coff = e & ((1ULL << x) - 1);
			uint64_t nsec = (e >> x) & ((1ULL << (q->cluster_bits - 8)) - 1);

			/* compressed clusters count as fragmented, as qemu-img check counts them:
			 * reading neighbours re-reads shared sectors */
			if (active) {
				c->res->compressed_clusters++;
				c->res->fragmented_clusters++;
			}
			ret = ref_range(c, ALIGN_DOWN(coff, 512), (nsec + 1) * 512,
					"compressed cluster");
			continue;
		}
		if (!has_host)
			continue;
		if (active) {
			if (prev_end && off != prev_end)
				c->res->fragmented_clusters++;
			prev_end = off + q->cluster_size;
		}
		if (q->data != q->file)
			continue; /* data file clusters are not refcounted */
		if (active) {
			if ((ret = qcow2_rc_get(q, off >> q->cluster_bits, &rc)))
				break;
			if (((e & QCOW2_OFLAG_COPIED) != 0) != (rc == 1)) {
				report(c, "ERROR OFLAG_COPIED data cluster: l2_entry=%" PRIx64
					" refcount=%" PRIu64 "\n", e, rc);
				c->res->corruptions++;
			}
		}
		ret = ref_range(c, off, q->cluster_size, "data cluster");
	}
	free(t);
	return ret;
}

static int count_l1(struct counter *c, uint64_t off, uint32_t size, bool active)
{
	struct qcow2 *q = c->q;
	uint64_t *t, have;
	int ret;

	if (!size)
		return 0;
	if ((ret = ref_range(c, off, (uint64_t)size * 8, "L1 table")) ||
	    (ret = read_be64s(c, off, size, &t, &have)))
		return ret;
	for (uint32_t i = 0; i < have && !ret; i++) {
		uint64_t l2 = t[i] & QCOW2_OFFSET_MASK, rc;

		if (!l2)
			continue;
		if ((t[i] & QCOW2_L1_RESERVED) || l2 % q->cluster_size) {
			report(c, "ERROR: invalid L1 entry %u: 0x%016" PRIx64 "\n", i, t[i]);
			c->res->corruptions++;
			continue;
		}
		if (active) {
			if ((ret = qcow2_rc_get(q, l2 >> q->cluster_bits, &rc)))
				break;
			if (((t[i] & QCOW2_OFLAG_COPIED) != 0) != (rc == 1)) {
				report(c, "ERROR OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%"
					PRIx64 " refcount=%" PRIu64 "\n", i, t[i], rc);
				c->res->corruptions++;
			}
		}
		if ((ret = ref_range(c, l2, q->cluster_size, "L2 table")))
			break;
		ret = count_l2(c, l2, active, (uint64_t)i << q->l2_bits);
	}
	free(t);
	return ret;
}

static int count_snapshots(struct counter *c)
{
	struct qcow2 *q = c->q;
	uint64_t off = q->h.snapshots_offset;
	uint8_t e[40];
	int ret = 0;

	for (uint32_t i = 0; i < q->h.nb_snapshots && !ret; i++) {
		uint64_t l1;
		uint32_t l1_size, extra;
		uint16_t id_len, name_len;

		if ((ret = blockdev_pread(q->file, off, e, sizeof(e))))
			break;
		l1 = qcow2_be64(e);
		l1_size = qcow2_be32(e + 8);
		id_len = (uint16_t)((e[12] << 8) | e[13]);
		name_len = (uint16_t)((e[14] << 8) | e[15]);
		extra = qcow2_be32(e + 36);
		if (l1 % q->cluster_size || (uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES) {
			report(c, "ERROR: snapshot %u has an invalid L1 table\n", i);
			c->res->corruptions++;
		} else {
			ret = count_l1(c, l1, l1_size, false);
		}
		off += ALIGN_UP(40ULL + extra + id_len + name_len, 8);
	}
	if (!ret && q->h.nb_snapshots)
		ret = ref_range(c, q->h.snapshots_offset, off - q->h.snapshots_offset,
				"snapshot table");
	return ret;
}

static int count_bitmaps(struct counter *c)
{
	struct qcow2 *q = c->q;
	uint64_t size = q->h.bitmap_directory_size, pos = 0, have;
	uint8_t *dir;
	int ret;

	if (!q->h.has_bitmaps_ext)
		return 0;
	if ((ret = ref_range(c, q->h.bitmap_directory_offset, size, "bitmap directory")))
		return ret;
	dir = malloc(size + 1);
	if (!dir)
		return -ENOMEM;
	ret = blockdev_pread(q->file, q->h.bitmap_directory_offset, dir, size);
	while (!ret && pos + 24 <= size) {
		uint64_t t = qcow2_be64(dir + pos), *tab;
		uint32_t n = qcow2_be32(dir + pos + 8), extra = qcow2_be32(dir + pos + 20);
		uint16_t name = (uint16_t)((dir[pos + 18] << 8) | dir[pos + 19]);

		if (t % q->cluster_size || (uint64_t)n * 8 > QCOW2_MAX_L1_BYTES) {
			c->res->corruptions++;
			break;
		}
		if ((ret = ref_range(c, t, (uint64_t)n * 8, "bitmap table")) ||
		    (ret = read_be64s(c, t, n, &tab, &have)))
			break;
		for (uint32_t i = 0; i < have && !ret; i++)
			if (tab[i] & QCOW2_OFFSET_MASK)
				ret = ref_range(c, tab[i] & QCOW2_OFFSET_MASK, q->cluster_size,
						"bitmap data");
		free(tab);
		pos += ALIGN_UP(24ULL + extra + name, 8);
	}
	free(dir);
	return ret;
}

/*
 * Bitmaps found in use at open (not stored cleanly; QEMU shows them with the "in-use" flag and
 * refuses to use them): reported, not counted as corruptions (the metadata is sound, only the
 * bits are stale), and with -r all removed, which closing the image writes.
 */
static void stale_bitmaps(struct counter *c, unsigned fix)
{
	struct qcow2 *q = c->q;

	for (uint32_t i = 0; i < q->nr_bm; i++) {
		struct blockdev_bitmap *m = q->bm_mem[i];
		bool drop = (fix & BLOCKDEV_FIX_ERRORS) && m && !q->read_only;

		if (m ? !blockdev_bitmap_inconsistent(m) || !blockdev_bitmap_live(q->bs, m) :
			!(q->bm[i].flags & QCOW2_BITMAP_IN_USE))
			continue;
		report(c, "%s bitmap '%s': it was in use when the image was last closed, so its "
		       "bits are inconsistent%s\n", drop ? "Removing" : "Warning:", q->bm[i].name,
		       drop || (fix & BLOCKDEV_FIX_ERRORS) ? "" : " ('check -r all' removes it)");
		if (drop)
			blockdev_bitmap_remove(q->bs, m, NULL);
	}
}

static int compare(struct counter *c, unsigned fix)
{
	struct qcow2 *q = c->q;
	uint64_t last = q->reftable_entries << q->rb_bits, end = 0;
	int ret = 0;

	for (uint64_t cl = 0; cl < last && !ret; cl++) {
		uint64_t stored, want = cl < c->nr ? c->refs[cl] : 0;

		if (!q->reftable[cl >> q->rb_bits] && cl == ALIGN_DOWN(cl, 1ULL << q->rb_bits)) {
			uint64_t next = cl + (1ULL << q->rb_bits), i = cl;

			while (i < MIN(next, c->nr) && !c->refs[i])
				i++;
			if (i >= MIN(next, c->nr)) { /* no block, nothing referenced: all zero */
				cl = next - 1;
				continue;
			}
		}
		if ((ret = qcow2_rc_get(q, cl, &stored)))
			break;
		if (want || stored)
			end = cl + 1;
		if (stored == want)
			continue;
		bool leak = stored > want;

		report(c, "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64 "\n",
			leak ? "Leaked" : "ERROR", cl, stored, want);
		if (leak)
			c->res->leaks++;
		else
			c->res->corruptions++;
		if (!(fix & (leak ? BLOCKDEV_FIX_LEAKS : BLOCKDEV_FIX_ERRORS)))
			continue;
		if (want > qcow2_rc_max(q) || !q->reftable[cl >> q->rb_bits]) {
			c->unfixable++;
			continue;
		}
		if ((ret = qcow2_rc_set(q, cl, want)))
			break;
		if (leak)
			c->res->leaks_fixed++;
		else
			c->res->corruptions_fixed++;
	}
	for (uint64_t cl = last; cl < c->nr; cl++) {
		if (!c->refs[cl])
			continue;
		report(c, "ERROR cluster %" PRIu64 " is referenced but has no refcount block\n",
			cl);
		c->res->corruptions++;
		c->unfixable++;
		end = cl + 1;
	}
	c->res->image_end_offset = end << q->cluster_bits;
	return ret;
}

/*
 * The counted references are the truth: write a whole new refcount structure (blocks, then the
 * table) into clusters past everything referenced, switch the header to it, and leave the old
 * one unreferenced (its clusters are then free). Used by -r all when a referenced cluster has
 * no refcount block or an entry too narrow for its count.
 */
static void unref(struct counter *c, uint64_t cl)
{
	if (cl < c->nr && c->refs[cl] && c->refs[cl] != UINT32_MAX)
		c->refs[cl]--;
}

static int rebuild(struct counter *c)
{
	struct qcow2 *q = c->q;
	uint64_t s = MAX(c->nr, MAX(q->end_cluster, DIV_ROUND_UP(q->file->size, q->cluster_size)));
	uint64_t k = 0, t = 0, per = 1ULL << q->rb_bits, *table = NULL;
	uint8_t *blocks = NULL;
	int ret = -ENOMEM;

	for (;;) { /* k blocks and a t-cluster table must describe [0, s + k + t) */
		uint64_t k2 = DIV_ROUND_UP(s + k + t, per);
		uint64_t t2 = DIV_ROUND_UP(k2 * 8, q->cluster_size);

		if (k2 == k && t2 == t)
			break;
		k = k2;
		t = t2;
	}
	if ((t << q->cluster_bits) > QCOW2_MAX_REFTABLE_BYTES)
		return -EFBIG;
	blocks = calloc(k, q->cluster_size);
	table = calloc(t << q->cluster_bits, 1);
	if (!blocks || !table)
		goto out;
	/* the old table and blocks were counted: they are about to be unreferenced */
	for (uint64_t i = 0; i < q->h.refcount_table_clusters; i++)
		unref(c, (q->h.refcount_table_offset >> q->cluster_bits) + i);
	for (uint64_t i = 0; i < q->reftable_entries; i++)
		if (q->reftable[i])
			unref(c, q->reftable[i] >> q->cluster_bits);
	for (uint64_t cl = 0; cl < s + k + t; cl++) {
		uint64_t v = cl >= s ? 1 : cl < c->nr ? MIN(c->refs[cl], qcow2_rc_max(q)) : 0;
		uint64_t from;
		unsigned n;

		if (v)
			qcow2_rb_entry_set(q, blocks + (cl / per) * q->cluster_size, cl % per, v,
					   &from, &n);
	}
	for (uint64_t b = 0; b < k; b++)
		qcow2_put_be64((uint8_t *)&table[b], (s + b) << q->cluster_bits);
	ret = blockdev_pwrite(q->file, s << q->cluster_bits, blocks, k << q->cluster_bits);
	if (!ret)
		ret = blockdev_pwrite(q->file, (s + k) << q->cluster_bits, table, t << q->cluster_bits);
	if (!ret)
		ret = blockdev_flush(q->file);
	if (ret)
		goto out;
	q->h.refcount_table_offset = (s + k) << q->cluster_bits;
	q->h.refcount_table_clusters = (uint32_t)t;
	ret = qcow2_header_update(q, 48, 60);
	if (!ret)
		ret = blockdev_flush(q->file);
	if (ret)
		goto out;
	free(q->reftable);
	q->reftable = table;
	q->reftable_entries = (t << q->cluster_bits) / 8;
	for (uint64_t i = 0; i < q->reftable_entries; i++)
		table[i] = qcow2_be64((const uint8_t *)&table[i]);
	table = NULL;
	qcow2_rb_drop_cache(q);
	q->free_hint = MAX(q->free_hint, s + k + t);
	q->end_cluster = MAX(q->end_cluster, s + k + t);
out:
	free(blocks);
	free(table);
	return ret;
}

int qcow2_check(struct blockdev *bs, unsigned fix, struct blockdev_check_result *res,
		struct error **errp)
{
	struct qcow2 *q = qcow2_node(bs, errp);
	struct counter c = { 0 };
	bool was_corrupt;
	int ret;

	if (!q)
		return -1;
	memset(res, 0, sizeof(*res));
	c.q = q;
	c.res = res;
	was_corrupt = atomic_load(&q->corrupt);
	c.verbose = fix & BLOCKDEV_CHECK_VERBOSE;
	c.limit = MAX(q->end_cluster, DIV_ROUND_UP(q->file->size, q->cluster_size));
	res->total_clusters = DIV_ROUND_UP(q->h.size, q->cluster_size);
	pthread_mutex_lock(&q->lock);
	ret = qcow2_lazy_sync(q); /* the L2 tables are read from the file */
	if (!ret)
		ret = ref_range(&c, 0, q->cluster_size, "header");
	if (!ret)
		ret = ref_range(&c, q->h.refcount_table_offset,
				(uint64_t)q->h.refcount_table_clusters << q->cluster_bits,
				"refcount table");
	for (uint64_t i = 0; i < q->reftable_entries && !ret; i++)
		ret = ref_range(&c, q->reftable[i], q->reftable[i] ? q->cluster_size : 0,
				"refcount block");
	if (!ret)
		ret = count_l1(&c, q->h.l1_table_offset, q->h.l1_size, true);
	if (!ret)
		ret = count_snapshots(&c);
	if (!ret)
		ret = count_bitmaps(&c);
	if (!ret && q->h.has_crypto_ext) /* the LUKS header and key material (encrypt.format) */
		ret = ref_range(&c, q->h.crypto_offset, q->h.crypto_len, "encryption header");
	if (!ret)
		stale_bitmaps(&c, fix);
	if (!ret)
		ret = compare(&c, fix);
	if (!ret && (fix & BLOCKDEV_FIX_ERRORS) && c.unfixable) {
		report(&c, "Rebuilding the refcount structure\n");
		ret = rebuild(&c);
		if (!ret)
			res->corruptions_fixed = res->corruptions;
	}
	fix &= BLOCKDEV_FIX_LEAKS | BLOCKDEV_FIX_ERRORS;
	/* the dirty / corrupt bits go when a pass finds nothing left to fix */
	if (!ret && !res->corruptions && !res->leaks && !q->read_only &&
	    (q->h.incompatible_features & (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT))) {
		q->h.incompatible_features &= ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT);
		ret = qcow2_header_update(q, 72, 80);
		fix = 1;
	}
	if (!ret && fix)
		ret = blockdev_flush(q->file);
	atomic_store(&q->corrupt, !ret && !res->corruptions ? false : was_corrupt);
	pthread_mutex_unlock(&q->lock);
	free(c.refs);
	if (ret) {
		error_setg_errno(errp, ret, "'%s': checking the image", bs->filename);
		res->check_errors++;
		return -1;
	}
	return 0;
}
