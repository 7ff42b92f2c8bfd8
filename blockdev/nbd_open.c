/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NBD nodes on the control plane: --blockdev driver=nbd (QEMU's BlockdevOptionsNbd keys),
 * and an export as the target of a new image. Both come down to the one way an NBD node
 * opens: blockdev_open_protocol() with the export's canonical filename (nbd_target_uri) and
 * the driver's options (reconnect-delay, open-timeout, tls-creds, tls-hostname), as
 * blockdev_open() does for a filename.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/internal.h"
#include "blockdev/nbd_client.h"
#include "common/keyval.h"

bool blockdev_is_nbd(const char *filename)
{
	return filename && nbd_uri_is(filename);
}

/* @key (seconds) from @o into the driver options, as the text blockdev_opt_get() gives. */
static int take_option(struct json_object *o, const char *key, struct blockdev_opts *opts,
		       struct error **errp)
{
	uint64_t v;
	char num[24];
	int r = keyval_take_u64(o, key, &v, errp);

	if (r)
		return r < 0 ? -1 : 0;
	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	return blockdev_opts_set(opts, key, num, errp);
}

/* String @key from @o into the driver options. */
static int take_string(struct json_object *o, const char *key, struct blockdev_opts *opts,
		       struct error **errp)
{
	const char *v;
	int r = keyval_take_string(o, key, &v, errp);

	if (r)
		return r < 0 ? -1 : 0;
	return blockdev_opts_set(opts, key, v, errp);
}

/* The node of @uri with @opts; every driver option must be taken. */
static struct blockdev *open_uri(const char *uri, const struct blockdev_opts *opts,
				 struct error **errp)
{
	struct blockdev_open_ctx ctx = { .filename = uri, .opts = opts };
	struct blockdev *bs;

	ctx.used = calloc(opts->nr_extra + 1, sizeof(bool));
	if (!ctx.used) {
		error_setg(errp, "'%s': out of memory", uri);
		return NULL;
	}
	bs = blockdev_open_protocol(&blockdev_nbd, &ctx, errp);
	if (bs && blockdev_refuse_unused(bs, &ctx, errp) < 0) {
		blockdev_close(bs);
		bs = NULL;
	}
	free(ctx.used);
	return bs;
}

struct blockdev *blockdev_nbd_add(struct json_object *o, struct blockdev_opts *opts,
				  const char *where, struct error **errp)
{
	struct nbd_target t;
	struct blockdev *bs = NULL;
	char *uri = NULL;

	if (nbd_target_from_json(o, &t, where, errp) < 0)
		return NULL;
	if (take_option(o, "reconnect-delay", opts, errp) < 0 ||
	    take_option(o, "open-timeout", opts, errp) < 0 ||
	    take_string(o, "tls-creds", opts, errp) < 0 ||
	    take_string(o, "tls-hostname", opts, errp) < 0 ||
	    keyval_refuse_leftovers(o, where, errp) < 0)
		goto out;
	uri = nbd_target_uri(&t);
	if (!uri) {
		error_setg(errp, "%s: out of memory", where);
		goto out;
	}
	bs = open_uri(uri, opts, errp);
	if (!bs)
		error_prepend(errp, "%s", where);
out:
	free(uri);
	nbd_target_free(&t);
	return bs;
}

struct blockdev *blockdev_nbd_create(const char *filename, uint64_t min_size,
				     struct error **errp)
{
	static const struct blockdev_opts rw;
	static const uint8_t zero[512];
	struct blockdev *bs = open_uri(filename, &rw, errp);
	int ret;

	if (!bs)
		return NULL;
	if (bs->size < min_size) {
		error_setg(errp, "'%s': the NBD export holds %llu bytes, the image needs %llu (an "
			   "export cannot be resized)", filename, (unsigned long long)bs->size,
			   (unsigned long long)min_size);
		goto err;
	}
	ret = bs->size ? blockdev_pwrite(bs, 0, zero, bs->size < 512 ? bs->size : 512) : 0;
	if (ret < 0) {
		error_setg_errno(errp, ret, "'%s': zeroing the export's first sector", filename);
		goto err;
	}
	return bs;
err:
	blockdev_close(bs);
	return NULL;
}
