/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The qcow2 format driver: open/close, the ops table, info.
 *
 * Who owns what.
 *  - Read-mostly state set at open (header fields, geometry, q->data, the backing node) is
 *    immutable afterwards, except the virtual size and the L1 table, which only truncate changes
 *    (a control-plane operation run with every queue drained).
 *  - The active L1 table is an array published through q->l1. Its entries are written (with
 *    release stores) only under q->lock, after the L2 table they point to is on disk; readers
 *    load them with acquire. Growing the L1 table publishes a new array and retires the old one
 *    until close, so a reader holding the old pointer never touches freed memory.
 *  - L2 slices live in the lock-free cache (qcow2_cache.c: per-slot seqlocks, write-through,
 *    fixed memory): map() on any iothread reads them without a lock and returns SLOW on a miss.
 *  - q->lock serializes everything that changes metadata or fills the cache: allocation,
 *    refcounts (the refcount table and the refcount block cache are only touched under it), COW,
 *    discard, write-zeroes, L1 growth, header updates, and cache fills on a miss. The slow-path
 *    worker and the tools take it; map() never does.
 *  - Writes to a cluster we own (refcount 1, "copied") need no lock: the host offset cannot
 *    change while such a write is in flight, because only discard / write-zeroes of the same
 *    guest range could move it, and overlapping requests have no ordering guarantee anyway.
 *  - Freed clusters are not reused before the image is reopened (q->free_hint only grows), so a
 *    fast-path request that mapped a cluster before a discard freed it can never scribble over a
 *    cluster handed to someone else.
 *  - Refcounts are kept exact at all times (no lazy refcounts, even when the image allows
 *    them): on-disk order is refcount -> data -> barrier -> L2/L1 entry -> barrier -> decrement
 *    of what was replaced, so a crash leaves at most leaked clusters. L2 entries are staged and
 *    published together after a single barrier (qcow2_commit): those of one request, and on
 *    the slow path those of every write queued at the same time (group commit, pwritev_group;
 *    protocol in qcow2_commit.c), so allocating writes cost one flush per group, not per cluster.
 *  - An image found dirty (lazy refcounts, not closed cleanly) is recounted and repaired when
 *    opened read-write; one marked corrupt is only opened read-only (or by check -r).
 */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blockdev/bitmap.h"
#include "blockdev/internal.h"
#include "common/parse.h"
#include "common/util.h"

struct qcow2 *qcow2_node(struct blockdev *bs, struct error **errp)
{
	if (bs->drv == &blockdev_qcow2)
		return qcow2_of(bs);
	error_setg(errp, "'%s' is a %s image, not qcow2", bs->filename, bs->drv->name);
	return NULL;
}

static int qcow2_probe_score(const uint8_t *buf, size_t len, const char *filename)
{
	return qcow2_probe(buf, len) ? 100 : 0;
}

static int read_header(struct qcow2 *q, struct error **errp)
{
	uint64_t fsize = q->file->size;
	uint8_t probe[QCOW2_PROBE_LEN] = { 0 };
	uint8_t *buf;
	size_t len;
	int ret;

	ret = blockdev_pread(q->file, 0, probe, MIN(fsize, sizeof(probe)));
	if (ret) {
		error_setg_errno(errp, ret, "'%s': reading the qcow2 header", q->bs->filename);
		return -1;
	}
	if (fsize < QCOW2_V2_HEADER_LEN || qcow2_be32(probe + 20) < QCOW2_MIN_CLUSTER_BITS ||
	    qcow2_be32(probe + 20) > QCOW2_MAX_CLUSTER_BITS) {
		/* let the parser name the problem from what there is */
		ret = qcow2_header_parse(probe, MIN(fsize, sizeof(probe)), fsize, &q->h, errp);
		goto out;
	}
	len = MIN(fsize, 1ULL << qcow2_be32(probe + 20));
	buf = malloc(len);
	if (!buf) {
		error_setg(errp, "out of memory");
		return -1;
	}
	ret = blockdev_pread(q->file, 0, buf, len);
	if (ret)
		error_setg_errno(errp, ret, "'%s': reading the qcow2 header", q->bs->filename);
	else
		ret = qcow2_header_parse(buf, len, fsize, &q->h, errp);
	free(buf);
out:
	if (ret)
		error_prepend(errp, "'%s'", q->bs->filename);
	return ret ? -1 : 0;
}

static void set_geometry(struct qcow2 *q)
{
	q->cluster_bits = q->h.cluster_bits;
	q->cluster_size = 1ULL << q->cluster_bits;
	q->ext_l2 = q->h.incompatible_features & QCOW2_INCOMPAT_EXTL2;
	q->entry_words = q->ext_l2 ? 2 : 1;
	q->l2_bits = q->cluster_bits - (q->ext_l2 ? 4 : 3);
	q->slice_bits =
		MIN(q->l2_bits, (unsigned)__builtin_ctz(QCOW2_SLICE_BYTES / (8 * q->entry_words)));
	q->sc_bits = q->ext_l2 ? q->cluster_bits - 5 : q->cluster_bits;
	q->refcount_bits = 1u << q->h.refcount_order;
	q->rb_bits = q->cluster_bits + 3 - q->h.refcount_order;
}

static int load_l1(struct qcow2 *q, struct error **errp)
{
	struct qcow2_l1 *l1 = calloc(1, sizeof(*l1) + (uint64_t)q->h.l1_size * 8 + 8);
	uint8_t *raw = malloc((uint64_t)q->h.l1_size * 8 + 8);
	int ret = 0;

	if (!l1 || !raw) {
		error_setg(errp, "out of memory for the L1 table");
		goto fail;
	}
	l1->size = q->h.l1_size;
	if (l1->size)
		ret = blockdev_pread(q->file, q->h.l1_table_offset, raw, (uint64_t)l1->size * 8);
	if (ret) {
		error_setg_errno(errp, ret, "'%s': reading the L1 table at 0x%" PRIx64,
				 q->bs->filename, q->h.l1_table_offset);
		goto fail;
	}
	for (uint32_t i = 0; i < l1->size; i++) {
		uint64_t e = qcow2_be64(raw + 8 * i), l2 = e & QCOW2_OFFSET_MASK;

		if ((e & QCOW2_L1_RESERVED) || l2 % q->cluster_size ||
		    (l2 && !range_within(l2, q->cluster_size, q->file->size)) ||
		    (l2 && qcow2_overlaps_metadata(q, l2, q->cluster_size))) {
			error_setg(errp,
				   "'%s': L1 entry %u (at 0x%" PRIx64 ") is 0x%016" PRIx64 ": "
				   "reserved bits set, or the L2 table is misaligned, inside the "
				   "header, L1 or refcount table, or past the end of the file",
				   q->bs->filename, i, q->h.l1_table_offset + (uint64_t)8 * i, e);
			goto fail;
		}
		atomic_init(&l1->e[i], e);
	}
	free(raw);
	atomic_init(&q->l1, l1);
	return 0;
fail:
	free(raw);
	free(l1);
	return -1;
}

#define QCOW2_MAX_CHAIN 64

/* The host files of the images whose backing files this thread is opening, outermost first. */
struct chain_file {
	dev_t dev;
	ino_t ino;
};
static __thread struct chain_file chain[QCOW2_MAX_CHAIN];
static __thread int depth; /* entries in chain[] */

/* Which entry of chain[] @path is, or -1. */
static int chain_find(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return -1; /* blockdev_open() names the problem */
	for (int i = 0; i < depth; i++)
		if (chain[i].dev == st.st_dev && chain[i].ino == st.st_ino)
			return i;
	return -1;
}

static int open_backing(struct qcow2 *q, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct blockdev_opts o = { 0 };
	struct blockdev *backing;
	struct stat st;
	char *path;
	int again, ret;

	if (ctx->backing) { /* the user's node, instead of what the header names */
		if (q->h.autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW) {
			error_setg(errp, "'%s': an image whose data file is raw cannot have a "
				   "backing file", q->bs->filename);
			return -1;
		}
		if (blockdev_link_child(q->bs, &q->bs->backing_link, ctx->backing, "backing", errp))
			return -1;
		q->bs->backing = ctx->backing;
		return 0;
	}
	if (!q->h.backing_file[0] || ctx->opts->no_backing)
		return 0;
	if (depth >= QCOW2_MAX_CHAIN) {
		error_setg(errp, "'%s': backing chain deeper than %d images", q->bs->filename,
			   QCOW2_MAX_CHAIN);
		return -1;
	}
	path = blockdev_path_beside(q->bs->filename, q->h.backing_file);
	if (!path) {
		error_setg(errp, "out of memory");
		return -1;
	}
	/* a chain that names an image of itself would recurse until the fds run out */
	chain[depth] = (struct chain_file){ 0 };
	if (!fstat(q->file->fd, &st))
		chain[depth] = (struct chain_file){ .dev = st.st_dev, .ino = st.st_ino };
	depth++;
	if ((again = chain_find(path)) >= 0) {
		error_setg(errp, "'%s': its backing file '%s' is %s: the backing chain loops",
			   q->bs->filename, q->h.backing_file, again == depth - 1 ? "the image itself" :
			   "an image whose backing chain holds it");
		depth--;
		free(path);
		return -1;
	}
	o.cache = q->bs->cache;
	o.submit = q->bs->submit;
	o.readonly = true;
	o.format = q->h.has_backing_fmt ? q->h.backing_fmt : NULL;
	backing = blockdev_open(path, &o, errp);
	depth--;
	free(path);
	if (!backing) {
		error_prepend(errp, "'%s': cannot open its backing file '%s'", q->bs->filename,
			      q->h.backing_file);
		return -1;
	}
	ret = blockdev_link_child(q->bs, &q->bs->backing_link, backing, "backing", errp);
	blockdev_close(backing); /* the link holds it now (or, on failure, nobody) */
	if (ret)
		return -1;
	q->bs->backing = backing;
	return 0;
}

static int open_data_file(struct qcow2 *q, struct blockdev_open_ctx *ctx, struct error **errp)
{
	const char *name = blockdev_opt_get(ctx, "data-file");
	struct blockdev_opts o = { 0 };
	struct blockdev *data;
	char *path;
	int ret;

	q->data = q->file;
	if (!(q->h.incompatible_features & QCOW2_INCOMPAT_DATA_FILE)) {
		if (name || ctx->data_file) {
			error_setg(errp,
				   "'%s': data-file given but the image has no external data file",
				   q->bs->filename);
			return -1;
		}
		return 0;
	}
	if (ctx->data_file) {
		if (blockdev_link_child(q->bs, &q->data_link, ctx->data_file, "data-file", errp))
			return -1;
		q->data = ctx->data_file;
		return 0;
	}
	if (!name && !q->h.has_data_file_ext) {
		error_setg(errp, "'%s': the image uses an external data file but names none: give "
			   "data-file=PATH", q->bs->filename);
		return -1;
	}
	path = name ? strdup(name) : blockdev_path_beside(q->bs->filename, q->h.data_file);
	if (!path) {
		error_setg(errp, "out of memory");
		return -1;
	}
	o.cache = q->bs->cache;
	o.submit = q->bs->submit;
	o.readonly = q->read_only;
	data = blockdev_open_file(path, &o, errp);
	if (!data)
		error_prepend(errp, "'%s': cannot open its data file '%s'", q->bs->filename, path);
	free(path);
	if (!data)
		return -1;
	ret = blockdev_link_child(q->bs, &q->data_link, data, "data-file", errp);
	blockdev_close(data); /* the link holds it now (or, on failure, nobody) */
	if (ret)
		return -1;
	q->data = data;
	return 0;
}

static int read_luks(void *opaque, uint64_t off, void *buf, size_t len)
{
	struct qcow2 *q = opaque;

	return blockdev_pread(q->file, q->h.crypto_offset + off, buf, len);
}

/* encrypt.format=luks: the LUKS header in its clusters, and the volume key unlocked with the
 * passphrase of encrypt.key-secret (none needed for no-io). */
static int open_encryption(struct qcow2 *q, struct blockdev_open_ctx *ctx, struct error **errp)
{
	const char *fmt = blockdev_opt_get(ctx, "encrypt.format");
	uint8_t buf[LUKS_HEADER_LEN];
	const uint8_t *pass;
	size_t len;

	if (fmt && (strcmp(fmt, "luks") || q->h.crypt_method != QCOW2_CRYPT_LUKS)) {
		error_setg(errp, "'%s': encrypt.format=%s does not match the image's encryption "
			   "(%s)", q->bs->filename, fmt,
			   q->h.crypt_method == QCOW2_CRYPT_LUKS ? "luks" : "none");
		return -1;
	}
	if (q->h.crypt_method != QCOW2_CRYPT_LUKS) {
		if (blockdev_opt_get(ctx, "encrypt.key-secret")) {
			error_setg(errp, "'%s': encrypt.key-secret given but the image is not "
				   "encrypted", q->bs->filename);
			return -1;
		}
		return 0;
	}
	if (q->h.crypto_len < LUKS_HEADER_LEN || blockdev_pread(q->file, q->h.crypto_offset, buf,
								  sizeof(buf))) {
		error_setg(errp, "'%s': reading the LUKS header at 0x%" PRIx64, q->bs->filename,
			   q->h.crypto_offset);
		return -1;
	}
	q->luks = calloc(1, sizeof(*q->luks));
	if (!q->luks) {
		error_setg(errp, "out of memory");
		return -1;
	}
	if (luks_header_parse(buf, sizeof(buf), q->h.crypto_len, q->luks, errp))
		goto fail;
	if (ctx->opts->no_io && !blockdev_opt_get(ctx, "encrypt.key-secret"))
		return 0; /* metadata only: no key */
	q->crypto = calloc(1, sizeof(*q->crypto));
	if (!q->crypto) {
		error_setg(errp, "out of memory");
		return -1;
	}
	if (luks_passphrase(ctx, "encrypt.key-secret", &pass, &len, errp) ||
	    luks_unlock(q->luks, pass, len, read_luks, q, q->crypto, errp))
		goto fail;
	return 0;
fail:
	error_prepend(errp, "'%s'", q->bs->filename);
	return -1;
}

static int take_options(struct qcow2 *q, struct blockdev_open_ctx *ctx, uint64_t *cache,
			struct error **errp)
{
	const char *v = blockdev_opt_get(ctx, "l2-cache-size");
	uint64_t table = (uint64_t)q->h.l1_size << q->cluster_bits;
	bool barriers = true;

	/* twice the L2 tables (up to twice the default's 64 GiB): a set-associative cache only
	 * as large as its working set loses slices to conflicts, and then most lookups miss */
	*cache = MIN(2 * QCOW2_DEFAULT_L2_CACHE, MAX(2 * table, 1ULL << 18));
	if (v && parse_size("l2-cache-size", v, cache, errp))
		return -1;
	if (*cache > (1ULL << 40)) {
		error_setg(errp, "l2-cache-size: %s is too large", v);
		return -1;
	}
	v = blockdev_opt_get(ctx, "metadata-barriers");
	if (v && parse_bool("metadata-barriers", v, &barriers, errp))
		return -1;
	q->ordered = barriers;
	v = blockdev_opt_get(ctx, "close-flush");
	q->close_flush = true;
	if (v && parse_bool("close-flush", v, &q->close_flush, errp))
		return -1;
	q->repair = ctx->opts->repair;
	return 0;
}

/* Read-write open: refuse what we must not write, clear autoclear bits we do not maintain. */
static int prepare_writes(struct qcow2 *q, struct error **errp)
{
	/* bit 0 stays when the bitmaps extension is there: we keep the bitmaps up to date */
	uint64_t keep = QCOW2_AUTOCLEAR_DATA_FILE_RAW |
			(q->h.has_bitmaps_ext ? QCOW2_AUTOCLEAR_BITMAPS : 0);

	if (q->repair)
		goto autoclear;

	if (q->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT) {
		error_setg(errp,
			   "'%s' is marked corrupt (incompatible feature bit 1): open it "
			   "read-only, or repair it with 'vireo-img check -r all'",
			   q->bs->filename);
		return -1;
	}
	if (q->h.incompatible_features & QCOW2_INCOMPAT_DIRTY) {
		/* lazy refcounts left them stale: recount before the first allocation */
		struct blockdev_check_result r;

		if (qcow2_check(q->bs, BLOCKDEV_FIX_LEAKS | BLOCKDEV_FIX_ERRORS, &r, errp) ||
		    qcow2_check(q->bs, 0, &r, errp) || r.corruptions || r.leaks) {
			error_setg(errp,
				   "'%s' was not closed cleanly (dirty bit) and its refcounts "
				   "could not be repaired: see 'vireo-img check -r all'",
				   q->bs->filename);
			return -1;
		}
	}
autoclear:
	/* the autoclear bits we do not maintain go, so that readers know what is stale */
	if (q->h.autoclear_features & ~keep) {
		q->h.autoclear_features &= keep;
		if (qcow2_header_update(q, 88, 96) || blockdev_flush(q->file)) {
			error_setg(errp, "'%s': cannot clear the autoclear feature bits",
				   q->bs->filename);
			return -1;
		}
	}
	return 0;
}

static int alloc_buffers(struct qcow2 *q)
{
	q->cbuf = malloc(2 * q->cluster_size);
	q->cbuf2 = malloc(q->cluster_size);
	if (!q->cbuf || !q->cbuf2)
		return -1;
	for (unsigned i = 0; i < ARRAY_SIZE(q->rb); i++)
		if (!(q->rb[i].buf = malloc(q->cluster_size)))
			return -1;
	return 0;
}

static void free_state(struct qcow2 *q)
{
	qcow2_pool_free(q->pool);
	for (unsigned i = 0; i < ARRAY_SIZE(q->rb); i++)
		free(q->rb[i].buf);
	free(q->cbuf);
	free(q->cbuf2);
	free(q->pending);
	free(q->lazy);
	free(q->lazy_l1);
	free(q->reftable);
	free(atomic_load_explicit(&q->l1, memory_order_relaxed));
	for (unsigned i = 0; i < q->nr_retired; i++)
		free(q->l1_retired[i]);
	qcow2_cache_destroy(&q->cache);
	qcow2_bitmaps_release(q);
	if (q->crypto)
		luks_key_wipe(q->crypto);
	free(q->crypto);
	free(q->luks);
	blockdev_detach(&q->data_link);
	qcow2_header_free(&q->h);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static int qcow2_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	uint64_t cache_bytes;

	if (!q) {
		error_setg(errp, "out of memory");
		return -1;
	}
	pthread_mutex_init(&q->lock, NULL);
	bs->opaque = q;
	q->bs = bs;
	q->file = bs->file;
	q->read_only = bs->read_only;
	q->file_size_at_open = bs->file->size;
	q->end_cluster = 0;
	if (read_header(q, errp))
		goto fail;
	set_geometry(q);
	q->end_cluster = DIV_ROUND_UP(bs->file->size, q->cluster_size);
	if (take_options(q, ctx, &cache_bytes, errp) || load_l1(q, errp) ||
	    qcow2_load_reftable(q, errp) || open_data_file(q, ctx, errp) ||
	    open_encryption(q, ctx, errp))
		goto fail;
	if (qcow2_cache_init(&q->cache, cache_bytes, (1u << q->slice_bits) * q->entry_words) ||
	    alloc_buffers(q)) {
		error_setg(errp, "out of memory for the qcow2 caches");
		goto fail;
	}
	if (!q->read_only && prepare_writes(q, errp))
		goto fail;
	if (!q->read_only) /* now, not at the first commit: see qcow2_pool.c */
		qcow2_pool_start(q, QCOW2_POOL_HELPERS);
	bs->size = q->h.size; /* the size the node's bitmaps cover */
	if (qcow2_bitmaps_load(q, errp) || open_backing(q, ctx, errp))
		goto fail;
	return 0;
fail:
	error_prepend(errp, "qcow2");
	blockdev_bitmaps_free(bs); /* what loading added to the node */
	free_state(q);
	bs->opaque = NULL;
	return -1;
}

static void qcow2_close(struct blockdev *bs)
{
	struct qcow2 *q = qcow2_of(bs);

	if (!q)
		return;
	if (!q->read_only) {
		qcow2_bitmaps_store(q);
		pthread_mutex_lock(&q->lock);
		if (qcow2_lazy_sync(q))
			fprintf(stderr, "vireo: qcow2 '%s': the last L2 entries could not be written at "
				"close: the writes they map are lost\n", q->bs->filename);
		if (atomic_load_explicit(&q->corrupt, memory_order_relaxed) && q->h.version >= 3 &&
		    !(q->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
			q->h.incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
			qcow2_header_update(q, 72, 80);
		}
		pthread_mutex_unlock(&q->lock);
		if (q->close_flush) {
			blockdev_flush(q->file);
			if (q->data != q->file)
				blockdev_flush(q->data);
		}
	}
	free_state(q);
	bs->opaque = NULL;
}

static int qcow2_preadv(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct qcow2 *q = qcow2_of(bs);

	for (int i = 0; i < iovcnt; i++) {
		int ret = qcow2_read(q, off, iov[i].iov_base, iov[i].iov_len);

		if (ret)
			return ret;
		off += iov[i].iov_len;
	}
	return 0;
}

static int qcow2_pwritev(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct qcow2 *q = qcow2_of(bs);

	for (int i = 0; i < iovcnt; i++) {
		int ret = qcow2_write(q, off, iov[i].iov_base, iov[i].iov_len);

		if (ret)
			return ret;
		off += iov[i].iov_len;
	}
	return 0;
}

static void qcow2_pwritev_group(struct blockdev *bs, struct blockdev_write *w, size_t n)
{
	qcow2_write_group(qcow2_of(bs), w, n);
}

static int qcow2_flush(struct blockdev *bs)
{
	struct qcow2 *q = qcow2_of(bs);
	int ret;

	pthread_mutex_lock(&q->lock);
	ret = qcow2_lazy_sync(q); /* the entries a flush must find in the file */
	pthread_mutex_unlock(&q->lock);
	if (!ret)
		ret = blockdev_flush(q->file);

	if (!ret && q->data != q->file)
		ret = blockdev_flush(q->data);
	return ret;
}

static int qcow2_discard(struct blockdev *bs, uint64_t off, uint64_t len)
{
	return qcow2_discard_range(qcow2_of(bs), off, len);
}

static int qcow2_write_zeroes(struct blockdev *bs, uint64_t off, uint64_t len,
			      unsigned int flags)
{
	return qcow2_zero_range(qcow2_of(bs), off, len, flags);
}

static int qcow2_truncate(struct blockdev *bs, uint64_t size, struct error **errp)
{
	return qcow2_resize(qcow2_of(bs), size, errp);
}

static int qcow2_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	struct json_object *o = json_object_new_object(), *bitmaps;
	bool v3 = q->h.version >= 3;

	if (!o) {
		error_setg(errp, "out of memory");
		return -1;
	}
	info->cluster_size = q->cluster_size;
	if (q->h.backing_file[0]) {
		info->backing_file = q->h.backing_file;
		info->backing_fmt = q->h.has_backing_fmt ? q->h.backing_fmt : NULL;
	}
	info->dirty = q->h.incompatible_features & QCOW2_INCOMPAT_DIRTY;
	info->encrypted = q->luks != NULL;
	/* in qemu-img's order: the human output prints the keys as they come */
	json_object_object_add(o, "compat", json_object_new_string(v3 ? "1.1" : "0.10"));
	json_object_object_add(o, "compression-type", json_object_new_string(
		q->h.compression_type == QCOW2_COMPRESS_ZSTD ? "zstd" : "zlib"));
	if (v3)
		json_object_object_add(o, "lazy-refcounts", json_object_new_boolean(
			q->h.compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS));
	if (v3 && (bitmaps = qcow2_bitmaps_info(q)))
		json_object_object_add(o, "bitmaps", bitmaps);
	json_object_object_add(o, "refcount-bits", json_object_new_int(q->refcount_bits));
	if (q->luks)
		json_object_object_add(o, "encrypt", luks_info_json(q->luks, true));
	if (v3 && q->data != q->file) {
		json_object_object_add(o, "data-file", json_object_new_string(
			q->h.has_data_file_ext ? q->h.data_file : q->data->filename));
		json_object_object_add(o, "data-file-raw", json_object_new_boolean(
			q->h.autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW));
	}
	if (v3) {
		json_object_object_add(o, "corrupt", json_object_new_boolean(
			(q->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT) ||
			atomic_load_explicit(&q->corrupt, memory_order_relaxed)));
		json_object_object_add(o, "extended-l2", json_object_new_boolean(q->ext_l2));
	}
	info->specific = o;
	return 0;
}

const struct blockdev_driver blockdev_qcow2 = {
	.name = "qcow2",
	.has_backing = true,
	.probe = qcow2_probe_score,
	.open = qcow2_open,
	.close = qcow2_close,
	.map = qcow2_map_op,
	.preadv = qcow2_preadv,
	.pwritev = qcow2_pwritev,
	.pwritev_group = qcow2_pwritev_group,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.block_status = qcow2_block_status,
	.truncate = qcow2_truncate,
	.info = qcow2_info,
	.snapshot_list = qcow2_snapshot_list,
	.snapshot_create = qcow2_snapshot_create,
	.snapshot_goto = qcow2_snapshot_goto,
	.snapshot_delete = qcow2_snapshot_delete,
	.snapshot_load_tmp = qcow2_snapshot_load_tmp,
	.check = qcow2_check,
	.pwrite_compressed = qcow2_pwrite_compressed,
	.make_empty = qcow2_make_empty,
	.populate = qcow2_populate,
	.change_backing_file = qcow2_change_backing,
	.bitmap_can_store = qcow2_bitmap_can_store,
	.bitmap_remove = qcow2_bitmap_remove,
};
