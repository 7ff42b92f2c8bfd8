/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `vmdk` format driver: VMware's virtual disks, as one file (monolithicSparse,
 * streamOptimized: a sparse extent with its descriptor embedded) or as a text descriptor naming
 * extent files (monolithicFlat, twoGbMaxExtentSparse/Flat, vmfs). Layout and parsers:
 * vmdk_format.h; a sparse extent's tables and grains: vmdk_sparse.c.
 *
 * Who owns what. The extents, their files and the descriptor are set at open and read-only
 * afterwards. A flat extent is a range of its file (map() answers DATA: the fast path goes to
 * its fd); a sparse extent answers for itself (vmdk_sparse.c's ownership essay: lock-free
 * tables, allocation under its lock on the slow path). The only state a write changes here is
 * the content id: the first write of a session gives the descriptor a new CID (as VMware and
 * QEMU do, so that images made over this one notice it changed). Until it is done, map()
 * sends writes to the slow path; the worker rewrites the descriptor under v->cid_lock and
 * publishes cid_done with a release store, which map() loads with acquire.
 *
 * Extent files are opened beside the descriptor: an absolute name, one whose "../" climbs out
 * of the descriptor's directory, or one whose symbolic links resolve outside it is refused
 * unless the node is opened with extents-outside=on. An extent naming the descriptor itself,
 * and two extents sharing a file (a sparse one, or overlapping flat ranges), are refused.
 *
 * Writes: flat and sparse extents are written live (new grains' table entries reach the file
 * at the next flush, after their data: a crash loses only unflushed writes). Compressed (streamOptimized) files are
 * written only as a new file by vireo-img (metadata-barriers=off): a stream file's tables and
 * footer are rewritten at its end at every flush, so a crash in between leaves it unreadable;
 * opened read-write otherwise, such an image is refused with that reason.
 */
#include "blockdev/vmdk.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/internal.h"
#include "common/parse.h"
#include "common/util.h"

struct vmdk_extent {
	enum vmdk_extent_type type; /* FLAT (VMFS too), SPARSE or ZERO */
	bool rdonly;                /* RDONLY in the descriptor, or ZERO */
	uint64_t start, len;        /* bytes of the disk */
	struct blockdev *file;      /* NULL: ZERO */
	struct blockdev_user link;  /* its own file's link (not for a monolithic file) */
	bool linked;
	char role[32];              /* "extents.N" */
	char *name;                 /* as the descriptor names it (monolithic: the image's name) */
	const char *format;         /* info's "format": the descriptor's type, "" if monolithic */
	uint64_t flat_off;          /* FLAT: bytes into the file */
	struct vmdk_sparse *sp;     /* SPARSE */
};

struct vmdk {
	struct vmdk_extent *ext;
	size_t nr;
	bool monolithic;
	uint32_t cid, parent_cid, next_cid;
	char *create_type;
	char *desc;             /* the descriptor's text (for the CID rewrite), NUL-terminated */
	size_t desc_len;
	bool barriers;
	bool close_flush;       /* flush the files at close (close-flush=off: convert -t unsafe) */
	pthread_mutex_t cid_lock;
	atomic_bool cid_done;   /* the first write's CID rewrite is done (or nothing to do) */
};

bool vmdk_probe(const uint8_t *buf, size_t len)
{
	return (len >= 4 && !memcmp(buf, VMDK_MAGIC, 4)) ||
	       (len >= strlen(VMDK_DESC_MAGIC) && !memcmp(buf, VMDK_DESC_MAGIC,
							   strlen(VMDK_DESC_MAGIC)));
}

static int vmdk_probe_score(const uint8_t *buf, size_t len, const char *filename)
{
	return vmdk_probe(buf, len) ? 100 : 0;
}

/* ---- opening ------------------------------------------------------------------------------------ */

static struct vmdk_extent *add_extent(struct vmdk *v, struct error **errp)
{
	struct vmdk_extent *e = realloc(v->ext, (v->nr + 1) * sizeof(*e));

	if (!e) {
		error_setg(errp, "out of memory");
		return NULL;
	}
	v->ext = e;
	e = &v->ext[v->nr];
	*e = (struct vmdk_extent){ 0 };
	snprintf(e->role, sizeof(e->role), "extents.%zu", v->nr);
	v->nr++;
	return e;
}

/* A content id for the first write: not 0, not "no parent" (made at open: the slow path's
 * sandbox has no getrandom) */
static uint32_t new_cid(const void *salt)
{
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_REALTIME, &ts);
	x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)(uintptr_t)salt ^
	    (uint64_t)getpid() << 16;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (uint32_t)x % 0xfffffffeu + 1;
}

/* Takes what the descriptor says about the image (content ids, type); a parent is refused. */
static int take_desc(struct vmdk *v, const struct vmdk_desc *d, struct error **errp)
{
	if (d->parent_hint || d->parent_cid != 0xffffffff) {
		error_setg(errp, "the image has a parent (parentFileNameHint \"%s\", parentCID %x): "
			   "vmdk images over a backing file are not supported",
			   d->parent_hint ? d->parent_hint : "", d->parent_cid);
		return -1;
	}
	v->cid = d->cid;
	v->parent_cid = d->parent_cid;
	if (d->create_type) {
		free(v->create_type);
		v->create_type = strdup(d->create_type);
		if (!v->create_type) {
			error_setg(errp, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* A sparse file that is the image itself (monolithicSparse, streamOptimized). */
static int open_monolithic(struct blockdev *bs, struct vmdk *v, struct error **errp)
{
	struct vmdk_extent *e = add_extent(v, errp);
	struct vmdk_desc d;
	const struct vmdk_header *h;
	int ret;

	if (!e)
		return -1;
	v->monolithic = true;
	e->type = VMDK_EXTENT_SPARSE;
	e->file = bs->file;
	e->format = "";
	e->name = strdup(bs->filename);
	v->create_type = strdup("monolithicSparse");
	if (!e->name || !v->create_type) {
		error_setg(errp, "out of memory");
		return -1;
	}
	if (vmdk_sparse_open(bs->file, !bs->read_only, v->barriers, &e->sp, errp))
		return -1;
	h = vmdk_sparse_header(e->sp);
	e->len = h->capacity * VMDK_SECTOR;
	ret = vmdk_sparse_read_desc(e->sp, &v->desc, &v->desc_len);
	if (ret) {
		error_setg_errno(errp, -ret, "reading the embedded descriptor");
		return -1;
	}
	if (!v->desc_len)
		return 0; /* an extent of a twoGbMaxExtentSparse disk opened alone: no descriptor */
	if (vmdk_desc_parse(v->desc, v->desc_len, &d, errp)) {
		error_prepend(errp, "the embedded descriptor");
		vmdk_desc_free(&d);
		return -1;
	}
	ret = take_desc(v, &d, errp);
	vmdk_desc_free(&d);
	return ret;
}

/* @a and @b name the same file (false when either cannot be stat'ed) */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * Where extent @de's file is: beside the descriptor, and (unless @outside) inside its
 * directory once every symbolic link is resolved; never the descriptor itself. malloc'd.
 */
static char *extent_path(struct blockdev *bs, const struct vmdk_desc_extent *de, size_t i,
			 bool outside, struct error **errp)
{
	char *path, *dcopy = NULL, dir[PATH_MAX], real[PATH_MAX];

	if (!outside && !vmdk_extent_path_ok(de->filename)) {
		error_setg(errp, "extent %zu (line %u) names '%s', which is absolute or climbs out "
			   "of the descriptor's directory (extents-outside=on allows it)", i,
			   de->line, de->filename);
		return NULL;
	}
	path = blockdev_path_beside(bs->filename, de->filename);
	if (!path) {
		error_setg(errp, "out of memory");
		return NULL;
	}
	if (same_file(path, bs->filename)) {
		error_setg(errp, "extent %zu (line %u) names the descriptor file itself", i, de->line);
		goto fail;
	}
	if (outside || !realpath(path, real))
		return path; /* a missing file: opening it says so */
	dcopy = strdup(bs->filename);
	if (!dcopy || !realpath(dirname(dcopy), dir)) {
		error_setg(errp, "cannot resolve the descriptor's directory");
		goto fail;
	}
	if (strcmp(dir, "/") && (strncmp(real, dir, strlen(dir)) || real[strlen(dir)] != '/')) {
		error_setg(errp, "extent %zu (line %u) '%s' resolves to '%s', outside the "
			   "descriptor's directory '%s' (extents-outside=on allows it)", i, de->line,
			   de->filename, real, dir);
		goto fail;
	}
	free(dcopy);
	return path;
fail:
	free(dcopy);
	free(path);
	return NULL;
}

/* Two extents may not share a file, except flat ones on ranges apart (each path stat'ed once:
 * a hostile descriptor may list thousands). */
static int check_shared(struct blockdev *bs, struct vmdk *v, const char **paths,
			struct error **errp)
{
	struct stat *st = calloc(v->nr + 1, sizeof(*st));
	bool *known = calloc(v->nr + 1, sizeof(*known));
	int ret = -1;

	if (!st || !known) {
		error_setg(errp, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < v->nr; i++)
		known[i] = paths[i] && !stat(paths[i], &st[i]);
	for (size_t i = 0; i < v->nr; i++) {
		for (size_t j = 0; j < i; j++) {
			struct vmdk_extent *a = &v->ext[i], *b = &v->ext[j];
			bool flat = a->type == VMDK_EXTENT_FLAT && b->type == VMDK_EXTENT_FLAT;

			if (!known[i] || !known[j] || st[i].st_dev != st[j].st_dev ||
			    st[i].st_ino != st[j].st_ino)
				continue;
			if (flat && (a->flat_off >= b->flat_off + b->len ||
				     b->flat_off >= a->flat_off + a->len))
				continue;
			error_setg(errp, "extents %zu and %zu share the file '%s'%s", j, i,
				   paths[i], flat ? " on overlapping ranges" : "");
			goto out;
		}
	}
	ret = 0;
out:
	free(st);
	free(known);
	return ret;
}

static int open_extent_file(struct blockdev *bs, struct vmdk *v, struct vmdk_extent *e,
			    const char *path, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct blockdev_opts o = *ctx->opts;
	struct blockdev *file;

	o.readonly = bs->read_only;
	o.format = NULL;
	o.node_name = NULL;
	file = blockdev_open_file(path, &o, errp);
	if (!file)
		return -1;
	if (blockdev_link_child(bs, &e->link, file, e->role, errp)) {
		blockdev_close(file);
		return -1;
	}
	e->linked = true;
	e->file = file;
	blockdev_unref(file); /* the link's reference keeps it */
	if (e->type != VMDK_EXTENT_SPARSE)
		return 0;
	if (vmdk_sparse_open(file, !bs->read_only, v->barriers, &e->sp, errp)) {
		error_prepend(errp, "extent file '%s'", path);
		return -1;
	}
	if (vmdk_sparse_header(e->sp)->capacity * VMDK_SECTOR < e->len) {
		error_setg(errp, "extent file '%s' holds %" PRIu64 " sectors, fewer than the %" PRIu64
			   " its descriptor line says", path, vmdk_sparse_header(e->sp)->capacity,
			   e->len / VMDK_SECTOR);
		return -1;
	}
	return 0;
}

static const char *const create_types[] = {
	"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
	"streamOptimized", "vmfs", "custom",
};

static int check_create_type(const char *ct, struct error **errp)
{
	if (!ct) {
		error_setg(errp, "the descriptor has no createType");
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(create_types); i++)
		if (!strcmp(ct, create_types[i]))
			return 0;
	error_setg(errp, "createType \"%s\" is not supported (vireo reads monolithicSparse, "
		   "monolithicFlat, twoGbMaxExtentSparse/Flat, streamOptimized and vmfs disks)", ct);
	return -1;
}

/* The extents of descriptor @d, each opened. */
static int open_extents(struct blockdev *bs, struct vmdk *v, const struct vmdk_desc *d,
			struct blockdev_open_ctx *ctx, bool outside, struct error **errp)
{
	char **paths = calloc(d->nr_extents + 1, sizeof(*paths));
	uint64_t start = 0;
	int ret = -1;

	if (!paths) {
		error_setg(errp, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < d->nr_extents; i++) {
		const struct vmdk_desc_extent *de = &d->extents[i];
		struct vmdk_extent *e;

		switch (de->type) {
		case VMDK_EXTENT_FLAT:
		case VMDK_EXTENT_VMFS:
		case VMDK_EXTENT_SPARSE:
		case VMDK_EXTENT_ZERO:
			break;
		default:
			error_setg(errp, "extent %zu (line %u) is of type %s, which vireo does not "
				   "read (FLAT, VMFS, SPARSE and ZERO only)", i, de->line,
				   vmdk_extent_type_name(de->type));
			goto out;
		}
		if (de->access == VMDK_ACCESS_NOACCESS) {
			error_setg(errp, "extent %zu (line %u) is NOACCESS", i, de->line);
			goto out;
		}
		e = add_extent(v, errp);
		if (!e)
			goto out;
		e->type = de->type == VMDK_EXTENT_VMFS ? VMDK_EXTENT_FLAT : de->type;
		e->format = vmdk_extent_type_name(de->type);
		e->rdonly = de->access == VMDK_ACCESS_RDONLY || de->type == VMDK_EXTENT_ZERO;
		e->start = start;
		e->len = de->sectors * VMDK_SECTOR;
		e->flat_off = de->offset * VMDK_SECTOR;
		start += e->len;
		if (de->type == VMDK_EXTENT_ZERO)
			continue;
		e->name = strdup(de->filename);
		if (!e->name) {
			error_setg(errp, "out of memory");
			goto out;
		}
		paths[i] = extent_path(bs, de, i, outside, errp);
		if (!paths[i])
			goto out;
	}
	if (check_shared(bs, v, (const char **)paths, errp))
		goto out;
	for (size_t i = 0; i < v->nr; i++)
		if (paths[i] && open_extent_file(bs, v, &v->ext[i], paths[i], ctx, errp))
			goto out;
	ret = 0;
out:
	for (size_t i = 0; i < d->nr_extents; i++)
		free(paths[i]);
	free(paths);
	return ret;
}

/* A text descriptor naming its extent files (monolithicFlat, twoGbMaxExtent*, vmfs). */
static int open_descriptor(struct blockdev *bs, struct vmdk *v, struct blockdev_open_ctx *ctx,
			   bool outside, struct error **errp)
{
	struct vmdk_desc d;
	int ret;

	if (bs->file->size > VMDK_MAX_DESC_BYTES) {
		error_setg(errp, "the descriptor file is %" PRIu64 " bytes long (at most %d)",
			   bs->file->size, VMDK_MAX_DESC_BYTES);
		return -1;
	}
	if (blockdev_is_nbd(bs->filename)) {
		error_setg(errp, "a descriptor on an NBD export cannot name extent files");
		return -1;
	}
	v->desc = calloc(1, bs->file->size + 1);
	if (!v->desc) {
		error_setg(errp, "out of memory");
		return -1;
	}
	ret = blockdev_pread(bs->file, 0, v->desc, bs->file->size);
	if (ret) {
		error_setg_errno(errp, -ret, "reading the descriptor");
		return -1;
	}
	v->desc_len = strlen(v->desc);
	if (vmdk_desc_parse(v->desc, v->desc_len, &d, errp)) {
		vmdk_desc_free(&d);
		return -1;
	}
	ret = check_create_type(d.create_type, errp) ?: take_desc(v, &d, errp);
	if (!ret && !d.nr_extents) {
		error_setg(errp, "the descriptor lists no extent");
		ret = -1;
	}
	if (!ret)
		ret = open_extents(bs, v, &d, ctx, outside, errp);
	vmdk_desc_free(&d);
	return ret;
}

/* A read-write open must be able to write every extent. */
static int check_writable(struct blockdev *bs, struct vmdk *v, struct error **errp)
{
	if (bs->read_only)
		return 0;
	for (size_t i = 0; i < v->nr; i++) {
		struct vmdk_extent *e = &v->ext[i];

		if (e->rdonly) {
			error_setg(errp, "extent %zu is %s: open the image read-only", i,
				   e->type == VMDK_EXTENT_ZERO ? "a ZERO extent" : "RDONLY");
			return -1;
		}
		if (e->sp && vmdk_sparse_compressed(e->sp) && v->barriers) {
			error_setg(errp, "a streamOptimized (compressed) vmdk image cannot be written "
				   "in place: its grain tables are rewritten at its end on every flush, "
				   "so a crash in between would lose the whole image; open it read-only "
				   "(readonly=on), or convert it to monolithicSparse (vireo-img convert "
				   "-O vmdk)");
			return -1;
		}
	}
	return 0;
}

static void vmdk_close(struct blockdev *bs);

static int vmdk_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct vmdk *v = calloc(1, sizeof(*v));
	uint8_t magic[4] = { 0 };
	bool outside = false;
	const char *opt;
	int ret;

	if (!v) {
		error_setg(errp, "out of memory");
		return -1;
	}
	pthread_mutex_init(&v->cid_lock, NULL);
	bs->opaque = v;
	v->barriers = true;
	v->parent_cid = 0xffffffff;
	opt = blockdev_opt_get(ctx, "metadata-barriers");
	if (opt && parse_bool("metadata-barriers", opt, &v->barriers, errp))
		goto fail;
	v->close_flush = true;
	opt = blockdev_opt_get(ctx, "close-flush");
	if (opt && parse_bool("close-flush", opt, &v->close_flush, errp))
		goto fail;
	opt = blockdev_opt_get(ctx, "extents-outside");
	if (opt && parse_bool("extents-outside", opt, &outside, errp))
		goto fail;
	ret = blockdev_pread(bs->file, 0, magic, MIN(bs->file->size, sizeof(magic)));
	if (ret) {
		error_setg_errno(errp, -ret, "reading its first bytes");
		goto fail_named;
	}
	if (!memcmp(magic, VMDK_MAGIC, 4) ? open_monolithic(bs, v, errp) :
					    open_descriptor(bs, v, ctx, outside, errp))
		goto fail_named;
	if (check_writable(bs, v, errp))
		goto fail_named;
	for (size_t i = 0; i < v->nr; i++)
		bs->size += v->ext[i].len;
	v->next_cid = new_cid(v);
	atomic_init(&v->cid_done, bs->read_only);
	return 0;
fail_named:
	error_prepend(errp, "'%s': vmdk image", bs->filename);
fail:
	vmdk_close(bs);
	return -1;
}

static void vmdk_close(struct blockdev *bs)
{
	struct vmdk *v = bs->opaque;

	if (!v)
		return;
	for (size_t i = 0; i < v->nr; i++) {
		struct vmdk_extent *e = &v->ext[i];

		vmdk_sparse_close(e->sp);
		if (e->file && !bs->read_only && v->close_flush && blockdev_flush(e->file))
			fprintf(stderr, "vireo: '%s': flushing '%s' at close failed\n", bs->filename,
				e->file->filename);
		if (e->linked)
			blockdev_detach(&e->link);
		free(e->name);
	}
	free(v->ext);
	free(v->create_type);
	free(v->desc);
	pthread_mutex_destroy(&v->cid_lock);
	free(v);
	bs->opaque = NULL;
}

/* ---- I/O ---------------------------------------------------------------------------------------- */

/* The extent holding byte @off of the disk (inside bs->size). */
static struct vmdk_extent *extent_at(struct vmdk *v, uint64_t off)
{
	size_t lo = 0, hi = v->nr;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->ext[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	return &v->ext[lo];
}

static int vmdk_map(struct blockdev *bs, enum blockdev_op op, uint64_t offset, uint64_t len,
		    struct blockdev_extent *ext)
{
	struct vmdk *v = bs->opaque;
	struct vmdk_extent *e = extent_at(v, offset);
	uint64_t in = offset - e->start, n = MIN(len, e->len - in);

	/* pairs with the release store of cid_update(): the descriptor is rewritten */
	if (op != BLOCKDEV_OP_READ && !atomic_load_explicit(&v->cid_done, memory_order_acquire)) {
		*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_SLOW, .len = n };
		return 0;
	}
	switch (e->type) {
	case VMDK_EXTENT_SPARSE:
		return vmdk_sparse_map(e->sp, op, in, n, ext);
	case VMDK_EXTENT_ZERO:
		*ext = (struct blockdev_extent){
			.kind = op == BLOCKDEV_OP_READ ? BLOCKDEV_EXTENT_ZERO : BLOCKDEV_EXTENT_SLOW,
			.len = n,
		};
		return 0;
	default:
		*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_DATA, .len = n,
						 .file = e->file, .host_offset = e->flat_off + in };
		return 0;
	}
}

/* The descriptor gets a new CID before the first write of the session changes the disk. */
static int cid_update(struct blockdev *bs)
{
	struct vmdk *v = bs->opaque;
	char *text;
	size_t len;
	int ret = 0;

	if (atomic_load_explicit(&v->cid_done, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&v->cid_lock);
	if (atomic_load_explicit(&v->cid_done, memory_order_relaxed))
		goto out;
	text = v->desc ? vmdk_desc_set_cid(v->desc, v->desc_len, v->next_cid, &len) : NULL;
	if (text) {
		if (v->monolithic) {
			ret = vmdk_sparse_write_desc(v->ext[0].sp, text, len);
		} else {
			ret = blockdev_pwrite(bs->file, 0, text, len);
			if (!ret && len < v->desc_len) {
				struct error *err = NULL;

				if (blockdev_truncate(bs->file, len, &err)) {
					error_free(err);
					ret = -EIO;
				}
			}
		}
		if (ret) {
			free(text);
			goto out;
		}
		free(v->desc);
		v->desc = text;
		v->desc_len = len;
		v->cid = v->next_cid;
	}
	/* pairs with the acquire loads in map() and above: the new CID is on disk */
	atomic_store_explicit(&v->cid_done, true, memory_order_release);
out:
	pthread_mutex_unlock(&v->cid_lock);
	return ret;
}

/* Calls @fn for each extent's part of [off, off + len) with the iov slice at @skip. */
typedef int extent_fn(struct vmdk_extent *e, uint64_t in, const struct iovec *iov, int iovcnt,
		      uint64_t n);

static int each_extent(struct vmdk *v, uint64_t off, const struct iovec *iov, int iovcnt,
		       uint64_t len, extent_fn *fn)
{
	uint64_t done = 0;
	int ret = 0;

	while (done < len && !ret) {
		struct vmdk_extent *e = extent_at(v, off + done);
		uint64_t in = off + done - e->start, n = MIN(len - done, e->len - in);
		struct iovec small[16], *s = small;
		int cnt = 0;

		if (iov) {
			cnt = blockdev_iov_slice(iov, iovcnt, done, n, small, (int)ARRAY_SIZE(small));
			if (cnt < 0)
				return cnt;
			if (cnt > (int)ARRAY_SIZE(small)) {
				s = malloc((size_t)cnt * sizeof(*s));
				if (!s)
					return -ENOMEM;
				cnt = blockdev_iov_slice(iov, iovcnt, done, n, s, cnt);
			}
		}
		ret = fn(e, in, iov ? s : NULL, cnt, n);
		if (s != small)
			free(s);
		done += n;
	}
	return ret;
}

static int read_extent(struct vmdk_extent *e, uint64_t in, const struct iovec *iov, int iovcnt,
		       uint64_t n)
{
	switch (e->type) {
	case VMDK_EXTENT_SPARSE:
		return vmdk_sparse_readv(e->sp, in, iov, iovcnt);
	case VMDK_EXTENT_ZERO:
		blockdev_iov_zero(iov, iovcnt, 0, n);
		return 0;
	default:
		return blockdev_preadv(e->file, e->flat_off + in, iov, iovcnt);
	}
}

static int write_extent(struct vmdk_extent *e, uint64_t in, const struct iovec *iov, int iovcnt,
			uint64_t n)
{
	switch (e->type) {
	case VMDK_EXTENT_SPARSE:
		return vmdk_sparse_writev(e->sp, in, iov, iovcnt);
	case VMDK_EXTENT_ZERO:
		return -EROFS;
	default:
		return blockdev_pwritev(e->file, e->flat_off + in, iov, iovcnt);
	}
}

static int zero_extent(struct vmdk_extent *e, uint64_t in, const struct iovec *iov, int iovcnt,
		       uint64_t n)
{
	switch (e->type) {
	case VMDK_EXTENT_SPARSE:
		return vmdk_sparse_zero(e->sp, in, n);
	case VMDK_EXTENT_ZERO:
		return -EROFS;
	default:
		return blockdev_write_zeroes(e->file, e->flat_off + in, n, 0);
	}
}

static int vmdk_preadv(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	return each_extent(bs->opaque, off, iov, iovcnt, blockdev_iov_size(iov, iovcnt),
			   read_extent);
}

static int vmdk_pwritev(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	return cid_update(bs) ?: each_extent(bs->opaque, off, iov, iovcnt,
					     blockdev_iov_size(iov, iovcnt), write_extent);
}

static int vmdk_write_zeroes(struct blockdev *bs, uint64_t off, uint64_t len, unsigned int flags)
{
	return cid_update(bs) ?: each_extent(bs->opaque, off, NULL, 0, len, zero_extent);
}

/* convert -c: a streamOptimized image's grains are compressed anyway; the other subformats
 * store the cluster as it is, as qemu-img's vmdk driver does */
static int vmdk_pwrite_compressed(struct blockdev *bs, uint64_t off, const void *buf,
				  uint64_t len)
{
	struct iovec v = { (void *)buf, len };

	return vmdk_pwritev(bs, off, &v, 1);
}

static int vmdk_discard(struct blockdev *bs, uint64_t off, uint64_t len)
{
	return 0; /* a hint; grains are never freed */
}

static int vmdk_flush(struct blockdev *bs)
{
	struct vmdk *v = bs->opaque;
	int ret = 0;

	if (bs->read_only)
		return 0;
	for (size_t i = 0; i < v->nr && !ret; i++) {
		struct vmdk_extent *e = &v->ext[i];

		if (e->sp)
			ret = vmdk_sparse_flush(e->sp);
		else if (e->file && e->file != bs->file)
			ret = blockdev_flush(e->file);
	}
	return ret ?: blockdev_flush(bs->file);
}

static int vmdk_block_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum,
			     uint64_t *map_offset, struct blockdev **map_file)
{
	struct vmdk *v = bs->opaque;
	struct vmdk_extent *e = extent_at(v, off);
	uint64_t in = off - e->start, n = MIN(len, e->len - in);

	switch (e->type) {
	case VMDK_EXTENT_SPARSE:
		return vmdk_sparse_status(e->sp, in, n, pnum, map_offset, map_file);
	case VMDK_EXTENT_ZERO:
		*pnum = n;
		return BLOCKDEV_STATUS_ZERO | BLOCKDEV_STATUS_ALLOCATED;
	default: {
		/* the file's holes read as zeroes; qemu-img shows them as data that is zero */
		int st = blockdev_block_status(e->file, e->flat_off + in, n, pnum, map_offset,
					       map_file);

		return st < 0 ? st : (int)(st | BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED);
	}
	}
}

/* ---- info and check ----------------------------------------------------------------------------- */

static void add_i64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

static int vmdk_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	struct vmdk *v = bs->opaque;
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();

	for (size_t i = 0; i < v->nr; i++) {
		struct vmdk_extent *e = &v->ext[i];
		struct json_object *x = json_object_new_object();

		if (e->sp && vmdk_sparse_compressed(e->sp))
			json_object_object_add(x, "compressed", json_object_new_boolean(true));
		add_i64(x, "virtual-size", e->len);
		json_object_object_add(x, "filename", json_object_new_string(e->name ? e->name : ""));
		if (e->sp)
			add_i64(x, "cluster-size", vmdk_sparse_header(e->sp)->grain_size * VMDK_SECTOR);
		json_object_object_add(x, "format", json_object_new_string(e->format));
		json_object_array_add(a, x);
		if (e->file && e->file != bs->file) {
			struct blockdev_info fi;

			if (!blockdev_get_info(e->file, &fi, NULL)) {
				info->actual_size += fi.actual_size;
				json_object_put(fi.specific);
			}
		}
	}
	if (v->nr && v->ext[0].sp)
		info->cluster_size = vmdk_sparse_header(v->ext[0].sp)->grain_size * VMDK_SECTOR;
	add_i64(o, "cid", v->cid);
	add_i64(o, "parent-cid", v->parent_cid);
	json_object_object_add(o, "create-type", json_object_new_string(v->create_type ?
									 v->create_type : ""));
	json_object_object_add(o, "extents", a);
	info->specific = o;
	return 0;
}

static int vmdk_check(struct blockdev *bs, unsigned fix, struct blockdev_check_result *res,
		      struct error **errp)
{
	struct vmdk *v = bs->opaque;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < v->nr; i++) {
		struct vmdk_extent *e = &v->ext[i];

		if (e->sp && vmdk_sparse_check(e->sp, e->name, fix & BLOCKDEV_CHECK_VERBOSE, res)) {
			error_setg(errp, "'%s': out of memory checking extent %zu", bs->filename, i);
			return -1;
		}
	}
	return 0;
}

const struct blockdev_driver blockdev_vmdk = {
	.name = "vmdk",
	.probe = vmdk_probe_score,
	.open = vmdk_open,
	.close = vmdk_close,
	.map = vmdk_map,
	.preadv = vmdk_preadv,
	.pwritev = vmdk_pwritev,
	.flush = vmdk_flush,
	.discard = vmdk_discard,
	.write_zeroes = vmdk_write_zeroes,
	.block_status = vmdk_block_status,
	.info = vmdk_info,
	.check = vmdk_check,
	.pwrite_compressed = vmdk_pwrite_compressed,
	.create_opts = vmdk_create_opts,
	.create = vmdk_create,
};
