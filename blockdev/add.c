/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blockdev_add: nodes from a QEMU-shaped BlockdevOptions object, the one form that --blockdev
 * (dotted keys or JSON, through common/keyval.c) and QMP's blockdev-add both produce.
 *
 *   {"driver": "file", "filename": "disk.img", "node-name": "f0", "cache": {"direct": true}}
 *   {"driver": "qcow2", "node-name": "disk0", "file": "f0", "backing": null}
 *   {"driver": "qcow2", "node-name": "disk0",
 *    "file": {"driver": "file", "filename": "disk.qcow2"}, "l2-cache-size": "4M"}
 *
 * A child given by name ("file": "f0") is an existing node, which gains the new node as a user;
 * a child given as an object is created for the new node and closes with it. Children inherit
 * read-only and cache.direct unless they set them. The format is never probed: "driver" says
 * it. Every key is taken by someone or refused by name.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/internal.h"
#include "blockdev/throttle.h"
#include "common/keyval.h"

#define ADD_MAX_DEPTH 16 /* nested child objects */

/* What a child created inside a parent's object inherits from it. */
struct inherit {
	bool read_only;
	bool direct;
};

static struct blockdev *add_node(struct json_object *o, const struct inherit *in, int depth,
				 const char *where, struct error **errp);

/* "cache": {"direct": bool, "no-flush": bool} */
static int take_cache(struct json_object *o, bool *direct, const char *where,
		      struct error **errp)
{
	struct json_object *cache;
	bool no_flush = false;

	if (keyval_take_value(o, "cache", &cache))
		return 0;
	if (!json_object_is_type(cache, json_type_object)) {
		error_setg(errp, "%s: cache: expected an object with direct and no-flush", where);
		return -1;
	}
	if (keyval_take_bool(cache, "direct", direct, errp) < 0 ||
	    keyval_take_bool(cache, "no-flush", &no_flush, errp) < 0)
		return -1;
	if (no_flush) {
		error_setg(errp, "%s: cache.no-flush=on is not supported (flushes always reach the "
			   "host)", where);
		return -1;
	}
	return keyval_refuse_leftovers(cache, where, errp);
}

/*
 * A BlockdevRef @v: an existing node named by a string (a new reference), or a node created
 * from an object (nested @depth deep). Messages say "@where: @key: ...".
 */
static struct blockdev *open_ref(struct json_object *v, const struct inherit *in, int depth,
				 const char *where, const char *key, struct error **errp)
{
	struct blockdev *bs = NULL;
	char sub[96];

	if (json_object_is_type(v, json_type_string)) {
		bs = blockdev_find_node(json_object_get_string(v));
		if (!bs)
			error_setg(errp, "%s: %s: no node named '%s'", where, key,
				   json_object_get_string(v));
		else
			blockdev_ref(bs);
	} else if (json_object_is_type(v, json_type_object)) {
		snprintf(sub, sizeof(sub), "%s.%s", where, key);
		bs = add_node(v, in, depth, sub, errp);
	} else {
		error_setg(errp, "%s: %s: expected a node name or an object", where, key);
	}
	return bs;
}

/*
 * The child @key of @o: NULL with *absent set when not given; an existing node named by a
 * string (a new reference); or a node created from an object.
 */
static struct blockdev *take_child(struct json_object *o, const char *key,
				   const struct inherit *in, int depth, const char *where,
				   bool *absent, bool *null, struct error **errp)
{
	struct json_object *v;

	*absent = keyval_take_value(o, key, &v) != 0;
	if (null)
		*null = !*absent && json_object_is_type(v, json_type_null);
	if (*absent || (null && *null))
		return NULL;
	return open_ref(v, in, depth + 1, where, key, errp);
}

static struct blockdev *add_file(struct json_object *o, const struct blockdev_opts *opts,
				 const char *where, struct error **errp)
{
	const char *filename = NULL, *aio = NULL;
	struct blockdev *bs;

	if (keyval_take_string(o, "filename", &filename, errp) < 0 ||
	    keyval_take_string(o, "aio", &aio, errp) < 0)
		return NULL;
	if (!filename) {
		error_setg(errp, "%s: driver file needs a filename", where);
		return NULL;
	}
	if (aio && strcmp(aio, "io_uring")) {
		error_setg(errp, "%s: aio=%s is not supported (vireo's engine is io_uring)", where,
			   aio);
		return NULL;
	}
	if (keyval_refuse_leftovers(o, where, errp) < 0)
		return NULL;
	bs = blockdev_open_file(filename, opts, errp);
	if (!bs)
		error_prepend(errp, "%s", where);
	return bs;
}

/* The keys left for the format driver, as driver options ("l2-cache-size": "4M"); an object's
 * keys dotted under its own ("encrypt": {"key-secret": ...} is "encrypt.key-secret"). */
static int take_driver_options(struct json_object *o, const char *prefix,
			       struct blockdev_opts *opts, const char *where, struct error **errp)
{
	json_object_object_foreach(o, name, v) {
		char num[32], key[128];
		const char *s;

		snprintf(key, sizeof(key), "%s%s", prefix, name);
		switch (json_object_get_type(v)) {
		case json_type_object:
			if (strlen(key) > 64) {
				error_setg(errp, "%s: key '%.64s...' is too long", where, key);
				return -1;
			}
			strcat(key, ".");
			if (take_driver_options(v, key, opts, where, errp) < 0)
				return -1;
			continue;
		case json_type_string: s = json_object_get_string(v); break;
		case json_type_boolean: s = json_object_get_boolean(v) ? "on" : "off"; break;
		case json_type_int:
			snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
			s = num;
			break;
		default:
			error_setg(errp, "%s: unknown key '%s'", where, key);
			return -1;
		}
		if (blockdev_opts_set(opts, key, s, errp) < 0)
			return -1;
	}
	return 0;
}

static struct blockdev *add_format(struct json_object *o, const struct blockdev_driver *drv,
				   struct blockdev_opts *opts, int depth, const char *where,
				   struct error **errp)
{
	struct inherit mine = { .read_only = opts->readonly,
				.direct = opts->cache == BLOCKDEV_CACHE_NONE };
	struct blockdev_open_ctx ctx = { .opts = opts };
	struct blockdev *file, *bs = NULL;
	bool absent, null = false, qcow2 = !strcmp(drv->name, "qcow2");

	file = take_child(o, "file", &mine, depth, where, &absent, NULL, errp);
	if (!file) {
		if (absent)
			error_setg(errp, "%s: driver %s needs a file", where, drv->name);
		return NULL;
	}
	/* the engine throttles the requests of a queue on a throttle node: one at the top */
	if (blockdev_throttle_node_group(file) && drv != &blockdev_throttle) {
		error_setg(errp, "%s: file: node '%s' is a throttle node, which must be the top of "
			   "its chain (put the throttle node over the %s node instead)", where,
			   file->node_name, drv->name);
		goto out;
	}
	if (qcow2) {
		ctx.backing = take_child(o, "backing", &mine, depth, where, &absent, &null, errp);
		if (!ctx.backing && !absent && !null)
			goto out;
		opts->no_backing = null;
		ctx.data_file = take_child(o, "data-file", &mine, depth, where, &absent, NULL,
					   errp);
		if (!ctx.data_file && !absent)
			goto out;
	}
	if (take_driver_options(o, "", opts, where, errp) < 0)
		goto out;
	ctx.filename = file->filename;
	ctx.used = calloc(opts->nr_extra + 1, sizeof(bool));
	if (!ctx.used) {
		error_setg(errp, "%s: out of memory", where);
		goto out;
	}
	bs = blockdev_open_format(file, drv, &ctx, errp);
	if (bs)
		file = NULL; /* the new node took over our reference */
	else
		error_prepend(errp, "%s", where);
	if (bs && blockdev_refuse_unused(bs, &ctx, errp) < 0) {
		blockdev_close(bs);
		bs = NULL;
	}
	free(ctx.used);
out:
	/* the new node holds backing and data file through its own links */
	blockdev_close(ctx.data_file);
	blockdev_close(ctx.backing);
	blockdev_close(file);
	return bs;
}

static struct blockdev *add_node(struct json_object *o, const struct inherit *in, int depth,
				 const char *where, struct error **errp)
{
	const struct blockdev_driver *drv = NULL;
	const char *driver = NULL, *name = NULL;
	struct blockdev_opts opts = { 0 };
	struct blockdev *bs = NULL;
	bool ro = in->read_only, direct = in->direct;

	if (depth > ADD_MAX_DEPTH) {
		error_setg(errp, "%s: nested deeper than %d nodes", where, ADD_MAX_DEPTH);
		return NULL;
	}
	if (keyval_take_string(o, "driver", &driver, errp) < 0 ||
	    keyval_take_string(o, "node-name", &name, errp) < 0 ||
	    keyval_take_bool(o, "read-only", &ro, errp) < 0 ||
	    take_cache(o, &direct, where, errp) < 0)
		return NULL;
	if (!driver) {
		error_setg(errp, "%s: driver is missing (file, nbd, raw, qcow2 or throttle)", where);
		return NULL;
	}
	if (!depth && !name) {
		error_setg(errp, "%s: node-name is missing (the top node needs one)", where);
		return NULL;
	}
	if (!strcmp(driver, "throttle"))
		drv = &blockdev_throttle; /* a filter: never probed, not a format of images */
	else if (!strcmp(driver, "nbd"))
		drv = &blockdev_nbd; /* a protocol, as file */
	else if (strcmp(driver, "file") && !(drv = blockdev_find_format(driver))) {
		error_setg(errp, "%s: driver '%s' is not supported (file, nbd, raw, qcow2 or "
			   "throttle)", where, driver);
		return NULL;
	}
	opts.readonly = ro;
	opts.cache = direct ? BLOCKDEV_CACHE_NONE : BLOCKDEV_CACHE_WRITEBACK;
	if (name && !blockdev_node_name_valid(name)) {
		error_setg(errp, "%s: node-name '%s': must start with a letter and hold at most %d "
			   "letters, digits, '-', '.' or '_'", where, name, BLOCKDEV_NODE_NAME_MAX - 1);
		return NULL;
	}
	if (name && blockdev_find_node(name)) {
		error_setg(errp, "%s: node-name '%s' is already in use", where, name);
		return NULL;
	}
	if (drv == &blockdev_nbd)
		bs = blockdev_nbd_add(o, &opts, where, errp);
	else if (drv)
		bs = add_format(o, drv, &opts, depth, where, errp);
	else
		bs = add_file(o, &opts, where, errp);
	if (bs && name && blockdev_set_node_name(bs, name, errp) < 0) {
		blockdev_close(bs);
		bs = NULL;
	}
	blockdev_opts_free(&opts);
	return bs;
}

struct blockdev *blockdev_add(struct json_object *args, const char *where, struct error **errp)
{
	static const struct inherit defaults;
	struct json_object *copy = NULL;
	struct blockdev *bs;

	if (!json_object_is_type(args, json_type_object)) {
		error_setg(errp, "%s: expected an object", where);
		return NULL;
	}
	/* the keys are taken out as they are used: work on a copy, the caller keeps its own */
	if (json_object_deep_copy(args, &copy, NULL) < 0) {
		error_setg(errp, "%s: out of memory", where);
		return NULL;
	}
	bs = add_node(copy, &defaults, 0, where, errp);
	json_object_put(copy);
	return bs;
}

struct blockdev *blockdev_open_ref(struct json_object *ref, const char *where, const char *key,
				   struct error **errp)
{
	static const struct inherit defaults;
	struct json_object *copy = NULL;
	struct blockdev *bs;

	if (!json_object_is_type(ref, json_type_object))
		return open_ref(ref, &defaults, 1, where, key, errp);
	if (json_object_deep_copy(ref, &copy, NULL) < 0) {
		error_setg(errp, "%s: out of memory", where);
		return NULL;
	}
	bs = open_ref(copy, &defaults, 1, where, key, errp); /* nested: no node-name needed */
	json_object_put(copy);
	return bs;
}
