/* SPDX-License-Identifier: Apache-2.0 */
/* Block layer control plane (options, opening chains) and the synchronous I/O entry points. */
#include "blockdev/blockdev.h"
#include "blockdev/bitmap.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/internal.h"
#include "common/parse.h"
#include "common/util.h"

#define PROBE_BYTES 512

/* ---- options --------------------------------------------------------------------------------- */

static int set_string(char **dst, const char *value, const char *key, struct error **errp)
{
	char *copy = strdup(value);

	if (!copy) {
		error_setg(errp, "%s: out of memory", key);
		return -1;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

int blockdev_opts_set(struct blockdev_opts *opts, const char *key, const char *value,
		      struct error **errp)
{
	struct blockdev_opt *extra;

	if (!strcmp(key, "format")) {
		if (!*value) {
			error_setg(errp, "format: empty value");
			return -1;
		}
		return set_string(&opts->format, value, key, errp);
	}
	if (!strcmp(key, "node-name")) {
		if (!blockdev_node_name_valid(value)) {
			error_setg(errp, "node-name '%s': must start with a letter and hold at most "
				   "%d letters, digits, '-', '.' or '_'", value,
				   BLOCKDEV_NODE_NAME_MAX - 1);
			return -1;
		}
		return set_string(&opts->node_name, value, key, errp);
	}
	if (!strcmp(key, "cache")) {
		if (!strcmp(value, "none")) {
			opts->cache = BLOCKDEV_CACHE_NONE;
		} else if (!strcmp(value, "writeback")) {
			opts->cache = BLOCKDEV_CACHE_WRITEBACK;
		} else {
			error_setg(errp, "cache: invalid value '%s' (expected none or writeback)",
				   value);
			return -1;
		}
		return 0;
	}
	if (!strcmp(key, "submit")) {
		static const char *const names[] = {
			[BLOCKDEV_SUBMIT_AUTO] = "auto",
			[BLOCKDEV_SUBMIT_EAGER] = "eager",
			[BLOCKDEV_SUBMIT_BATCHED] = "batched",
		};

		for (size_t i = 0; i < ARRAY_SIZE(names); i++)
			if (!strcmp(value, names[i])) {
				opts->submit = (enum blockdev_submit)i;
				return 0;
			}
		error_setg(errp, "submit: invalid value '%s' (expected auto, eager or batched)",
			   value);
		return -1;
	}
	if (!strcmp(key, "readonly"))
		return parse_bool("readonly", value, &opts->readonly, errp);
	if (!strcmp(key, "repair"))
		return parse_bool("repair", value, &opts->repair, errp);
	if (!strcmp(key, "no-io"))
		return parse_bool("no-io", value, &opts->no_io, errp);
	if (!strcmp(key, "backing")) {
		if (strcmp(value, "null")) {
			error_setg(errp, "backing: '%s' is not supported (only null: no backing file)",
				   value);
			return -1;
		}
		opts->no_backing = true;
		return 0;
	}

	for (size_t i = 0; i < opts->nr_extra; i++)
		if (!strcmp(opts->extra[i].key, key))
			return set_string(&opts->extra[i].value, value, key, errp);
	extra = realloc(opts->extra, (opts->nr_extra + 1) * sizeof(*extra));
	if (!extra) {
		error_setg(errp, "%s: out of memory", key);
		return -1;
	}
	opts->extra = extra;
	extra[opts->nr_extra].key = strdup(key);
	extra[opts->nr_extra].value = strdup(value);
	if (!extra[opts->nr_extra].key || !extra[opts->nr_extra].value) {
		free(extra[opts->nr_extra].key);
		free(extra[opts->nr_extra].value);
		error_setg(errp, "%s: out of memory", key);
		return -1;
	}
	opts->nr_extra++;
	return 0;
}

void blockdev_opts_free(struct blockdev_opts *opts)
{
	for (size_t i = 0; i < opts->nr_extra; i++) {
		free(opts->extra[i].key);
		free(opts->extra[i].value);
	}
	free(opts->extra);
	free(opts->format);
	free(opts->node_name);
	memset(opts, 0, sizeof(*opts));
}

const char *blockdev_opt_get(struct blockdev_open_ctx *ctx, const char *key)
{
	for (size_t i = 0; i < ctx->opts->nr_extra; i++) {
		if (!strcmp(ctx->opts->extra[i].key, key)) {
			if (ctx->used)
				ctx->used[i] = true;
			return ctx->opts->extra[i].value;
		}
	}
	return NULL;
}

/* ---- opening and closing --------------------------------------------------------------------- */

static struct blockdev *node_new(const struct blockdev_driver *drv, const char *filename,
				 const struct blockdev_opts *opts, struct error **errp)
{
	struct blockdev *bs = calloc(1, sizeof(*bs));

	if (!bs || !(bs->filename = strdup(filename))) {
		free(bs);
		error_setg(errp, "'%s': out of memory", filename);
		return NULL;
	}
	bs->drv = drv;
	bs->fd = -1;
	bs->cache = opts->cache;
	bs->submit = opts->submit;
	bs->submit_eager = opts->submit == BLOCKDEV_SUBMIT_EAGER ||
			   (opts->submit == BLOCKDEV_SUBMIT_AUTO && opts->cache == BLOCKDEV_CACHE_NONE);
	bs->read_only = opts->readonly;
	bs->align = 1;
	bs->mem_align = 1;
	blockdev_register(bs);
	return bs;
}

static void node_free(struct blockdev *bs)
{
	blockdev_unregister(bs);
	free(bs->filename);
	free(bs);
}

int blockdev_link_child(struct blockdev *parent, struct blockdev_user *link, struct blockdev *child,
			const char *role, struct error **errp)
{
	bool storage = strcmp(role, "backing"); /* file, data-file: the parent's bytes */

	*link = (struct blockdev_user){
		.parent = parent,
		.role = role,
		.perm = BLOCKDEV_PERM_READ |
			(storage && !parent->read_only ? BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_RESIZE : 0),
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	return blockdev_attach(child, link, errp);
}

struct blockdev *blockdev_open_file(const char *filename, const struct blockdev_opts *opts,
				    struct error **errp)
{
	static const struct blockdev_opts defaults;
	struct blockdev_open_ctx ctx;
	struct blockdev *bs;

	if (!opts)
		opts = &defaults;
	ctx = (struct blockdev_open_ctx){ .filename = filename, .opts = opts, .used = NULL };
	bs = node_new(&blockdev_file, filename, opts, errp);
	if (!bs)
		return NULL;
	if (blockdev_file.open(bs, &ctx, errp) < 0) {
		node_free(bs);
		return NULL;
	}
	return bs;
}

struct blockdev *blockdev_open_protocol(const struct blockdev_driver *drv,
					struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct blockdev *bs = node_new(drv, ctx->filename, ctx->opts, errp);

	if (!bs)
		return NULL;
	if (drv->open(bs, ctx, errp) < 0) {
		node_free(bs);
		return NULL;
	}
	return bs;
}

struct blockdev *blockdev_open_format(struct blockdev *file, const struct blockdev_driver *drv,
				      struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct blockdev *bs = node_new(drv, ctx->filename, ctx->opts, errp);

	if (!bs)
		return NULL;
	bs->probed = ctx->probed;
	bs->read_only = ctx->opts->readonly || file->read_only;
	bs->align = file->align;
	bs->mem_align = file->mem_align;
	if (blockdev_link_child(bs, &bs->file_link, file, "file", errp) < 0) {
		node_free(bs);
		return NULL;
	}
	bs->file = file;
	if (drv->open(bs, ctx, errp) < 0) {
		bs->file = NULL;
		blockdev_detach(&bs->file_link);
		node_free(bs);
		return NULL;
	}
	blockdev_unref(file); /* the caller's reference: the new node owns the child now */
	return bs;
}

static const struct blockdev_driver *probe_format(struct blockdev *file, struct error **errp)
{
	uint8_t buf[PROBE_BYTES];
	size_t len = MIN(file->size, sizeof(buf));
	int ret = len ? blockdev_pread(file, 0, buf, len) : 0;

	if (ret < 0) {
		error_setg_errno(errp, ret, "'%s': reading its first bytes to find its format",
				 file->filename);
		return NULL;
	}
	return blockdev_probe(buf, len, file->filename, errp);
}

int blockdev_refuse_unused(struct blockdev *bs, struct blockdev_open_ctx *ctx,
			   struct error **errp)
{
	for (size_t i = 0; i < ctx->opts->nr_extra; i++) {
		if (!ctx->used[i]) {
			error_setg(errp, "'%s': format '%s' does not support the option '%s'",
				   ctx->filename, bs->drv->name, ctx->opts->extra[i].key);
			return -1;
		}
	}
	return 0;
}

struct blockdev *blockdev_open(const char *filename, const struct blockdev_opts *opts,
			       struct error **errp)
{
	static const struct blockdev_opts defaults;
	const struct blockdev_driver *drv = NULL;
	struct blockdev_open_ctx ctx = { .filename = filename };
	struct blockdev *file, *bs;

	if (!opts)
		opts = &defaults;
	ctx.opts = opts;
	if (opts->format) {
		drv = blockdev_find_format(opts->format);
		if (!drv) {
			error_setg(errp, "'%s': unknown format '%s'", filename, opts->format);
			return NULL;
		}
	}
	ctx.used = calloc(opts->nr_extra + 1, sizeof(bool));
	if (!ctx.used) {
		error_setg(errp, "'%s': out of memory", filename);
		return NULL;
	}
	if (blockdev_is_nbd(filename))
		file = blockdev_open_protocol(&blockdev_nbd, &ctx, errp);
	else
		file = blockdev_open_file(filename, opts, errp);
	if (!file)
		goto err_used;
	ctx.filename = file->filename; /* an NBD node's is its canonical form */
	ctx.probed = !drv;
	if (!drv && !(drv = probe_format(file, errp)))
		goto err_file;
	bs = blockdev_open_format(file, drv, &ctx, errp);
	if (!bs)
		goto err_file;
	if (blockdev_refuse_unused(bs, &ctx, errp) < 0 ||
	    (opts->node_name && blockdev_set_node_name(bs, opts->node_name, errp) < 0))
		goto err_bs;
	free(ctx.used);
	return bs;

err_bs:
	blockdev_close(bs);
	free(ctx.used);
	return NULL;
err_file:
	blockdev_close(file);
err_used:
	free(ctx.used);
	return NULL;
}

void blockdev_close(struct blockdev *bs)
{
	blockdev_unref(bs);
}

void blockdev_destroy(struct blockdev *bs)
{
	blockdev_slow_stop(bs);
	if (bs->drv->close)
		bs->drv->close(bs);
	bs->file = bs->backing = NULL;
	blockdev_detach(&bs->file_link);
	blockdev_detach(&bs->backing_link);
	blockdev_bitmaps_free(bs);
	node_free(bs);
}

char *blockdev_path_beside(const char *image, const char *name)
{
	char *copy, *out = NULL;

	/* an NBD export is named as it is, and names nothing beside itself */
	if (name[0] == '/' || !strchr(image, '/') || blockdev_is_nbd(name) ||
	    blockdev_is_nbd(image))
		return strdup(name);
	copy = strdup(image);
	if (copy && asprintf(&out, "%s/%s", dirname(copy), name) < 0)
		out = NULL;
	free(copy);
	return out;
}

const char *blockdev_format_name(const struct blockdev *bs)
{
	return bs->drv->name;
}

int blockdev_truncate(struct blockdev *bs, uint64_t size, struct error **errp)
{
	if (bs->read_only) {
		error_setg(errp, "'%s': cannot resize a read-only image", bs->filename);
		return -1;
	}
	if (!bs->drv->truncate) {
		error_setg(errp, "'%s': format '%s' cannot be resized", bs->filename,
			   bs->drv->name);
		return -1;
	}
	/* a growing node's bitmaps cover the new part before anything can write it */
	if (size > bs->size && blockdev_bitmaps_resize(bs, size) < 0) {
		error_setg(errp, "'%s': out of memory for its dirty bitmaps", bs->filename);
		return -1;
	}
	if (bs->drv->truncate(bs, size, errp) < 0)
		return -1; /* bitmaps grown for nothing cover bytes nobody writes: harmless */
	if (blockdev_bitmaps_resize(bs, bs->size) < 0)
		fprintf(stderr, "vireo: '%s': dirty bitmaps keep their old size (out of memory)\n",
			bs->filename);
	return 0;
}

int blockdev_get_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	struct blockdev *bottom = bs;

	memset(info, 0, sizeof(*info));
	while (bottom->file)
		bottom = bottom->file;
	if (bottom != bs && bottom->drv->info) {
		struct blockdev_info file_info;

		if (bottom->drv->info(bottom, &file_info, errp) < 0)
			return -1;
		info->actual_size = file_info.actual_size;
	}
	if (bs->drv->info && bs->drv->info(bs, info, errp) < 0)
		return -1;
	return 0;
}

int blockdev_snapshot_list(struct blockdev *bs, struct blockdev_snapshot **out, size_t *nr,
			   struct error **errp)
{
	*out = NULL;
	*nr = 0;
	return bs->drv->snapshot_list ? bs->drv->snapshot_list(bs, out, nr, errp) : 0;
}

/* The driver of @bs has op @op, or -1 with the error naming its format. */
static int snapshot_op(struct blockdev *bs, const void *op, struct error **errp)
{
	if (op)
		return 0;
	error_setg(errp, "'%s': format '%s' does not support internal snapshots", bs->filename,
		   bs->drv->name);
	return -1;
}

int blockdev_snapshot_create(struct blockdev *bs, const char *name, uint64_t vm_clock_nsec,
			     struct blockdev_snapshot *made, struct error **errp)
{
	if (snapshot_op(bs, bs->drv->snapshot_create, errp))
		return -1;
	return bs->drv->snapshot_create(bs, name, vm_clock_nsec, made, errp);
}

int blockdev_snapshot_goto(struct blockdev *bs, const char *id_or_name, struct error **errp)
{
	if (snapshot_op(bs, bs->drv->snapshot_goto, errp))
		return -1;
	return bs->drv->snapshot_goto(bs, id_or_name, errp);
}

int blockdev_snapshot_delete(struct blockdev *bs, const char *id, const char *name,
			     struct blockdev_snapshot *deleted, struct error **errp)
{
	if (snapshot_op(bs, bs->drv->snapshot_delete, errp))
		return -1;
	return bs->drv->snapshot_delete(bs, id, name, deleted, errp);
}

int blockdev_snapshot_load_tmp(struct blockdev *bs, const char *id, const char *name,
			       struct error **errp)
{
	if (snapshot_op(bs, bs->drv->snapshot_load_tmp, errp))
		return -1;
	return bs->drv->snapshot_load_tmp(bs, id, name, errp);
}

void blockdev_snapshot_clear(struct blockdev_snapshot *s)
{
	free(s->id);
	free(s->name);
	s->id = s->name = NULL;
}

void blockdev_snapshot_list_free(struct blockdev_snapshot *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++) {
		free(list[i].id);
		free(list[i].name);
	}
	free(list);
}

int blockdev_check(struct blockdev *bs, unsigned fix, struct blockdev_check_result *res,
		   struct error **errp)
{
	if (!bs->drv->check) {
		error_setg(errp, "'%s': format '%s' does not support checks", bs->filename,
			   bs->drv->name);
		return -1;
	}
	return bs->drv->check(bs, fix, res, errp);
}

int blockdev_make_empty(struct blockdev *bs, struct error **errp)
{
	if (!bs->drv->make_empty) {
		error_setg(errp, "'%s': format '%s' cannot be emptied", bs->filename, bs->drv->name);
		return -1;
	}
	if (bs->read_only) {
		error_setg(errp, "'%s': cannot empty a read-only image", bs->filename);
		return -1;
	}
	return bs->drv->make_empty(bs, errp);
}

int blockdev_change_backing_file(struct blockdev *bs, const char *name, const char *fmt,
				 struct error **errp)
{
	if (!bs->drv->change_backing_file) {
		error_setg(errp, "'%s': format '%s' has no backing file", bs->filename,
			   bs->drv->name);
		return -1;
	}
	return bs->drv->change_backing_file(bs, name ? name : "", fmt, errp);
}

/* ---- synchronous I/O ------------------------------------------------------------------------- */

static int check_range(struct blockdev *bs, uint64_t offset, uint64_t len, bool write)
{
	if (write && bs->read_only)
		return -EROFS;
	if (!bs->drv->protocol && !range_within(offset, len, bs->size))
		return -EINVAL;
	return 0;
}

int blockdev_preadv(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	int ret = check_range(bs, offset, blockdev_iov_size(iov, iovcnt), false);

	if (ret < 0 || iovcnt <= 0)
		return ret;
	return bs->drv->preadv(bs, offset, iov, iovcnt);
}

int blockdev_pwritev(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	int ret = check_range(bs, offset, blockdev_iov_size(iov, iovcnt), true);

	if (ret < 0 || iovcnt <= 0)
		return ret;
	ret = bs->drv->pwritev(bs, offset, iov, iovcnt);
	/* a failed write may have written part: dirty either way */
	blockdev_bitmaps_mark(bs, offset, blockdev_iov_size(iov, iovcnt));
	return ret;
}

int blockdev_pread(struct blockdev *bs, uint64_t offset, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return blockdev_preadv(bs, offset, &iov, 1);
}

int blockdev_pwrite(struct blockdev *bs, uint64_t offset, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return blockdev_pwritev(bs, offset, &iov, 1);
}

int blockdev_populate(struct blockdev *bs, uint64_t offset, const void *buf, uint64_t len)
{
	int ret = check_range(bs, offset, len, true);

	if (ret < 0 || !len)
		return ret;
	if (!bs->drv->populate)
		return -ENOTSUP;
	return bs->drv->populate(bs, offset, buf, len);
}

int blockdev_flush(struct blockdev *bs)
{
	if (bs->read_only)
		return 0;
	if (bs->drv->flush)
		return bs->drv->flush(bs);
	return bs->file ? blockdev_flush(bs->file) : 0;
}

int blockdev_discard(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	int ret = check_range(bs, offset, len, true);

	if (ret < 0 || !len)
		return ret;
	if (!bs->drv->discard)
		return -ENOTSUP;
	ret = bs->drv->discard(bs, offset, len);
	blockdev_bitmaps_mark(bs, offset, len);
	return ret;
}

/* Writes zero buffers: the fallback for drivers without write_zeroes. */
static int write_zero_buffers(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	size_t chunk = MIN(len, 1 * MiB);
	void *buf;
	int ret = 0;

	if (posix_memalign(&buf, 4096, ALIGN_UP(chunk, 4096)))
		return -ENOMEM;
	memset(buf, 0, chunk);
	while (len && !ret) {
		size_t n = MIN(len, chunk);

		ret = bs->drv->pwritev(bs, offset, &(struct iovec){ buf, n }, 1);
		offset += n;
		len -= n;
	}
	free(buf);
	return ret;
}

int blockdev_pwrite_compressed(struct blockdev *bs, uint64_t offset, const void *buf,
			       uint64_t len)
{
	int ret = check_range(bs, offset, len, true);

	if (ret)
		return ret;
	return bs->drv->pwrite_compressed ? bs->drv->pwrite_compressed(bs, offset, buf, len) :
					    -ENOTSUP;
}

int blockdev_write_zeroes(struct blockdev *bs, uint64_t offset, uint64_t len, unsigned int flags)
{
	int ret = check_range(bs, offset, len, true);

	if (ret < 0 || !len)
		return ret;
	ret = bs->drv->write_zeroes ? bs->drv->write_zeroes(bs, offset, len, flags) :
				      write_zero_buffers(bs, offset, len);
	blockdev_bitmaps_mark(bs, offset, len);
	return ret;
}

int blockdev_block_status(struct blockdev *bs, uint64_t offset, uint64_t len, uint64_t *pnum,
			  uint64_t *map_offset, struct blockdev **map_file)
{
	int ret = check_range(bs, offset, len, false);

	if (ret < 0)
		return ret;
	if (!len) {
		*pnum = 0;
		return 0;
	}
	if (!bs->drv->block_status) {
		*pnum = len;
		return BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED;
	}
	return bs->drv->block_status(bs, offset, len, pnum, map_offset, map_file);
}

int blockdev_map(struct blockdev *bs, enum blockdev_op op, uint64_t offset, uint64_t len,
		 struct blockdev_extent *ext)
{
	ext->crypt = NULL; /* plain, unless an encrypting driver says otherwise */
	if (bs->drv->map)
		return bs->drv->map(bs, op, offset, len, ext);
	*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_SLOW, .len = len };
	return 0;
}
