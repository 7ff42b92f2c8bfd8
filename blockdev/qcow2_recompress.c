/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2: another compression type for an image in place (vireo-img amend -o compression_type=;
 * qemu-img takes the option at create only). Every compressed cluster is bound to the type the
 * header names, so the header cannot change while one exists: the compressed clusters of the
 * active disk are first rewritten as plain clusters (ordinary copy-on-write writes), then the
 * header switches (compression_type and incompatible bit 3, one header write), then each of
 * those clusters is compressed again in the new type. A crash at any point leaves an image whose
 * every cluster reads as before (some merely no longer compressed). A snapshot that holds
 * compressed clusters of its own would be misread after the switch: refused, by name. Tools
 * only (an image open read-write by one tool, no queue on it).
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* The guest offsets of the active disk's compressed clusters. */
struct offsets {
	uint64_t *v;
	size_t n, cap;
};

static int add(struct offsets *o, uint64_t off)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint64_t *v = realloc(o->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = off;
	return 0;
}

static int find_compressed(struct qcow2 *q, struct offsets *o)
{
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_relaxed);
	int ret = 0;

	pthread_mutex_lock(&q->lock);
	ret = qcow2_lazy_sync(q); /* the L2 tables are read from the file */
	for (uint32_t i = 0; i < l1->size && !ret; i++) {
		uint64_t l2 = atomic_load_explicit(&l1->e[i], memory_order_relaxed) &
			      QCOW2_OFFSET_MASK;

		for (uint64_t j = 0; l2 && j < (1ULL << q->l2_bits) && !ret; j++) {
			uint64_t e[2], off = (((uint64_t)i << q->l2_bits) + j) << q->cluster_bits;

			ret = qcow2_l2_get(q, l2, j, e);
			if (!ret && (e[0] & QCOW2_OFLAG_COMPRESSED) && off < q->h.size)
				ret = add(o, off);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

/* Into @name: the first snapshot that reaches a compressed cluster, or "" when none does. */
static int snapshot_obstacle(struct qcow2 *q, char *name, size_t len, struct error **errp)
{
	struct qcow2_snapshot *s = NULL;
	uint64_t bytes, *t = NULL;
	uint8_t *l2buf = malloc(q->cluster_size);
	uint32_t i;
	int ret = 0;

	name[0] = '\0';
	if (!l2buf || qcow2_snapshots_read(q, &s, &bytes, errp)) {
		free(l2buf);
		return -1;
	}
	for (i = 0; i < q->h.nb_snapshots && !ret && !name[0]; i++) {
		uint64_t n = s[i].l1_size;

		free(t);
		t = calloc(n + 1, 8);
		if (!t || (n && !range_within(s[i].l1_table_offset, n * 8, qcow2_file_end(q))) ||
		    (n && blockdev_pread(q->file, s[i].l1_table_offset, t, n * 8))) {
			ret = -1;
			break;
		}
		for (uint64_t k = 0; k < n && !ret && !name[0]; k++) {
			uint64_t l2 = qcow2_be64((const uint8_t *)&t[k]) & QCOW2_OFFSET_MASK;

			if (!l2)
				continue;
			if (!range_within(l2, q->cluster_size, qcow2_file_end(q)) ||
			    blockdev_pread(q->file, l2, l2buf, q->cluster_size)) {
				ret = -1;
				break;
			}
			for (uint64_t j = 0; j < (1ULL << q->l2_bits); j++)
				if (qcow2_be64(l2buf + 8 * q->entry_words * j) &
				    QCOW2_OFLAG_COMPRESSED) {
					snprintf(name, len, "%s", s[i].name);
					break;
				}
		}
	}
	if (ret)
		error_setg(errp, "'%s': reading the L1 and L2 tables of snapshot '%s'",
			   q->bs->filename, s[i].name);
	free(t);
	free(l2buf);
	qcow2_snapshots_free(s, q->h.nb_snapshots);
	return ret;
}

/* Each of @o's clusters rewritten: plainly (@compress false) or compressed. */
static int rewrite(struct qcow2 *q, const struct offsets *o, bool compress, struct error **errp)
{
	uint8_t *buf = malloc(q->cluster_size);
	int ret = 0;

	if (!buf)
		ret = -ENOMEM;
	for (size_t i = 0; i < o->n && !ret; i++) {
		uint64_t len = MIN(q->cluster_size, q->h.size - o->v[i]);

		ret = qcow2_read(q, o->v[i], buf, len);
		if (!ret)
			ret = compress ? qcow2_write_compressed(q, o->v[i], buf, len) :
					 qcow2_write(q, o->v[i], buf, len);
	}
	free(buf);
	if (ret)
		error_setg_errno(errp, ret, "'%s': %s the compressed clusters", q->bs->filename,
				 compress ? "compressing again" : "storing plainly");
	return ret ? -1 : 0;
}

int qcow2_set_compression(struct blockdev *bs, unsigned type, struct error **errp)
{
	struct qcow2 *q = qcow2_node(bs, errp);
	struct offsets o = { 0 };
	struct qcow2_header h;
	char name[256];
	int ret = -1;

	if (!q)
		return -1;
	if (type == q->h.compression_type)
		return 0;
	if (q->read_only) {
		error_setg(errp, "'%s' is open read-only", bs->filename);
		return -1;
	}
	if (type != QCOW2_COMPRESS_ZLIB && q->h.version < 3) {
		error_setg(errp, "'%s': compression_type=zstd needs compat=1.1", bs->filename);
		return -1;
	}
	if (snapshot_obstacle(q, name, sizeof(name), errp))
		return -1;
	if (name[0]) {
		error_setg(errp, "'%s': snapshot '%s' holds compressed clusters, which would be read "
			   "in the new compression type: delete it, or convert the image",
			   bs->filename, name);
		return -1;
	}
	if (find_compressed(q, &o)) {
		error_setg(errp, "'%s': reading the L2 tables", bs->filename);
		goto out;
	}
	if (rewrite(q, &o, false, errp) || blockdev_flush(bs))
		goto out;
	pthread_mutex_lock(&q->lock);
	h = q->h; /* shares the extension arrays: the serializer only reads them */
	h.compression_type = (uint8_t)type;
	if (type == QCOW2_COMPRESS_ZLIB)
		h.incompatible_features &= ~QCOW2_INCOMPAT_COMPRESSION;
	else
		h.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
	q->zhost = 0; /* compressed writes start a fresh host cluster */
	ret = qcow2_write_header(q, &h, errp);
	pthread_mutex_unlock(&q->lock);
	if (!ret)
		ret = rewrite(q, &o, true, errp);
out:
	free(o.v);
	return ret;
}
