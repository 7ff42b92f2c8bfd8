/* SPDX-License-Identifier: Apache-2.0 */
/* QMP's commands over the node graph (see block_qmp.h). Control-plane thread only. */
#include "control/block_qmp.h"

#include <json-c/json.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "blockdev/blockdev.h"
#include "blockdev/throttle.h"
#include "common/util.h"
#include "control/block_nodes.h"

/* block_resize sizes are whole sectors, as QEMU's */
#define BLOCK_QMP_SECTOR 512u

static struct block_qmp_hooks hooks;

void block_qmp_set_hooks(const struct block_qmp_hooks *h)
{
	hooks = *h;
}

uint64_t block_qmp_vm_clock_ns(void)
{
	return hooks.vm_clock_ns ? hooks.vm_clock_ns() : 0;
}

/* The node of the program's device @name; without devices, the node called @name. */
static struct blockdev *device_node(const char *name)
{
	return hooks.device_node ? hooks.device_node(name) : blockdev_find_node(name);
}

struct blockdev *block_qmp_find_node(const char *device, struct error **errp)
{
	struct blockdev *bs = hooks.device_node ? hooks.device_node(device) : NULL;

	if (!bs)
		bs = blockdev_find_node(device);
	if (!bs)
		error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device, device);
	return bs;
}

static void add_int(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

/* blockdev-add: QEMU's BlockdevOptions, the top node named; it lives until blockdev-del */
int block_qmp_blockdev_add(void *opaque, struct json_object *args, struct json_object **ret,
			   struct error **errp)
{
	if (!args) {
		error_setg(errp, "blockdev-add: arguments are missing");
		return -1;
	}
	if (block_nodes_add_json(args, "blockdev-add", errp) < 0)
		return -1;
	*ret = json_object_new_object();
	return 0;
}

int block_qmp_blockdev_del(void *opaque, struct json_object *args, struct json_object **ret,
			   struct error **errp)
{
	struct json_object *n;

	if (!args || !json_object_object_get_ex(args, "node-name", &n) ||
	    !json_object_is_type(n, json_type_string)) {
		error_setg(errp, "Parameter 'node-name' is missing or not a string");
		return -1;
	}
	if (block_nodes_del(json_object_get_string(n), errp) < 0)
		return -1;
	*ret = json_object_new_object();
	return 0;
}

/* blockdev_insert_filter's opener: a throttle node in group @arg over @bs. */
static struct blockdev *open_throttle(struct blockdev *bs, void *arg, struct error **errp)
{
	struct blockdev *t = blockdev_throttle_open_over(blockdev_ref(bs), arg, errp);

	if (!t)
		blockdev_unref(bs);
	return t;
}

/*
 * A device with no throttling gets it as QEMU gives it (throttling at the device): a throttle
 * node in group @group (default: named after the device) goes over the device's node, and the
 * device moves onto it, inside a drained section. Returns the group, or NULL with the error.
 */
static struct blockdev_throttle_group *throttle_insert(const char *dev, struct blockdev *bs,
							const char *group,
							const struct throttle_limits *l,
							struct error **errp)
{
	const char *name = group ? group : dev;
	struct blockdev_throttle_group *g = blockdev_throttle_group_get(name, l, errp);
	struct blockdev *t = NULL;
	struct blockdev_drain d;

	if (!g)
		return NULL;
	if (blockdev_drained_begin(bs, &d, errp) == 0) {
		t = blockdev_insert_filter(bs, open_throttle, (void *)name, errp);
		blockdev_drained_end(&d);
	}
	if (t)
		blockdev_close(t); /* the device holds it now */
	blockdev_throttle_group_unref(g); /* the node holds the group */
	return t ? g : NULL;
}

/* The throttle group of the node @name (a device's, or a node's): the device's is made when
 * it has none (throttle_insert); NULL with the error. */
static struct blockdev_throttle_group *throttled(const char *name, const char *group,
						 const struct throttle_limits *l,
						 struct error **errp)
{
	struct blockdev *bs = device_node(name);
	struct blockdev_throttle_group *g;

	if (!bs) {
		error_set_class(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found", name);
		return NULL;
	}
	g = blockdev_throttle_node_group(bs);
	if (!g && hooks.device_node)
		return throttle_insert(name, bs, group, l, errp);
	if (!g)
		error_setg(errp, "Node '%s' has no throttling to change: name a throttle node "
			   "(driver=throttle,throttle-group=G,file=NODE)", name);
	return g;
}

/*
 * block_set_io_throttle {device | id, bps, bps_rd, bps_wr, iops, iops_rd, iops_wr, and
 * optionally *_max, *_max_length, iops_size, group}: QEMU's BlockIOThrottle, every limit not
 * given 0 (lengths 1), set live on the group of the disk's throttle node (a program without
 * devices: of the throttle node so named). A disk without one gets one (throttle_insert).
 */
int block_qmp_set_io_throttle(void *opaque, struct json_object *args, struct json_object **ret,
			      struct error **errp)
{
	static const char *const required[] = { "bps", "bps_rd", "bps_wr", "iops", "iops_rd",
						"iops_wr" };
	const char *name = NULL, *group = NULL;
	struct blockdev_throttle_group *g;
	struct throttle_limits l;

	if (!args || !json_object_is_type(args, json_type_object)) {
		error_setg(errp, "block_set_io_throttle: arguments are missing");
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(required); i++) {
		if (!json_object_object_get_ex(args, required[i], NULL)) {
			error_setg(errp, "Parameter '%s' is missing", required[i]);
			return -1;
		}
	}
	throttle_limits_init(&l);
	json_object_object_foreach(args, key, val) {
		uint64_t dummy;

		if (!strcmp(key, "device") || !strcmp(key, "id") || !strcmp(key, "group")) {
			if (!json_object_is_type(val, json_type_string)) {
				error_setg(errp, "Parameter '%s' expects a string", key);
				return -1;
			}
			if (!strcmp(key, "group"))
				group = json_object_get_string(val);
			else
				name = json_object_get_string(val);
			continue;
		}
		if (!throttle_limits_get_key(&l, THROTTLE_KEYS_LEGACY, key, &dummy)) {
			error_setg(errp, "Parameter '%s' is unexpected", key);
			return -1;
		}
		if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) < 0) {
			error_setg(errp, "Parameter '%s' expects a non-negative integer", key);
			return -1;
		}
		if (throttle_limits_set_key(&l, THROTTLE_KEYS_LEGACY, key,
					    (uint64_t)json_object_get_int64(val), errp) < 0)
			return -1;
	}
	/* QEMU's lengths default to 1: a 0 given means "not set" there too */
	for (int k = 0; k < THROTTLE_KINDS; k++)
		if (!l.l[k].max_length)
			l.l[k].max_length = 1;
	if (!name) {
		error_setg(errp, "Need exactly one of 'device' and 'id'");
		return -1;
	}
	if (!throttle_limits_enabled(&l) && hooks.device_node) {
		struct blockdev *bs = device_node(name);

		/* all limits 0 on a disk without throttling: nothing to turn off (QEMU: the same) */
		if (bs && !blockdev_throttle_node_group(bs)) {
			*ret = json_object_new_object();
			return 0;
		}
	}
	g = throttled(name, group, &l, errp);
	if (!g)
		return -1;
	if (group && strcmp(group, blockdev_throttle_group_name(g))) {
		error_setg(errp, "Device '%s' is in throttle group '%s': moving it to '%s' is not "
			   "supported", name, blockdev_throttle_group_name(g), group);
		return -1;
	}
	if (blockdev_throttle_group_set_limits(g, &l, errp) < 0)
		return -1;
	*ret = json_object_new_object();
	return 0;
}

/* A node no device serves: resized inside a drained section over it (an export's queues, a
 * device above it, stop meanwhile). */
static int resize_node(const char *device, const char *node, uint64_t size, struct error **errp)
{
	struct blockdev *bs = node ? blockdev_find_node(node) : NULL;
	struct blockdev_drain d;
	int ret;

	if (!bs) {
		/* QEMU's words (a GenericError there too) */
		error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device ? device : "",
			   node ? node : "");
		return -1;
	}
	if (blockdev_drained_begin(bs, &d, errp) < 0)
		return -1;
	ret = blockdev_truncate(bs, size, errp);
	blockdev_drained_end(&d);
	return ret;
}

/* block_resize {device | node-name, size} */
int block_qmp_resize(void *opaque, struct json_object *args, struct json_object **ret,
		     struct error **errp)
{
	struct json_object *d = NULL, *n = NULL, *size = NULL;
	const char *device, *node;
	uint64_t bytes;
	int r = 1;

	if (args) {
		json_object_object_get_ex(args, "device", &d);
		json_object_object_get_ex(args, "node-name", &n);
		json_object_object_get_ex(args, "size", &size);
	}
	if (!json_object_is_type(size, json_type_int) || json_object_get_int64(size) < 0) {
		error_setg(errp, "Parameter 'size' is missing or not a size in bytes");
		return -1;
	}
	if ((d && !json_object_is_type(d, json_type_string)) ||
	    (n && !json_object_is_type(n, json_type_string))) {
		error_setg(errp, "Parameters 'device' and 'node-name' must be strings");
		return -1;
	}
	device = d ? json_object_get_string(d) : NULL;
	node = n ? json_object_get_string(n) : NULL;
	bytes = (uint64_t)json_object_get_int64(size);
	if (!device == !node) {
		error_setg(errp, "give either device or node-name");
		return -1;
	}
	if (bytes % BLOCK_QMP_SECTOR) {
		error_setg(errp, "size %llu is not a multiple of %u bytes", (unsigned long long)bytes,
			   BLOCK_QMP_SECTOR);
		return -1;
	}
	if (hooks.resize)
		r = hooks.resize(device, node, bytes, errp);
	if (r == 1)
		r = resize_node(device, node, bytes, errp);
	if (r < 0)
		return -1;
	*ret = json_object_new_object();
	return 0;
}

static const char *const no_limits[] = { "bps",	  "bps_rd",  "bps_wr",	      "iops",
					 "iops_rd", "iops_wr", "write_threshold" };

/* A throttle node's limits, as query-block's BlockDeviceInfo has them (and its group). */
static void throttle_info(struct json_object *o, struct blockdev_throttle_group *g)
{
	struct throttle_limits l;
	const char *key;

	blockdev_throttle_group_limits(g, &l);
	for (unsigned int i = 0; (key = throttle_key_name(THROTTLE_KEYS_LEGACY, i)); i++) {
		uint64_t v = 0;

		throttle_limits_get_key(&l, THROTTLE_KEYS_LEGACY, key, &v);
		json_object_object_add(o, key, json_object_new_int64((int64_t)v));
	}
	json_object_object_add(o, "group", json_object_new_string(blockdev_throttle_group_name(g)));
}

struct json_object *block_qmp_node_info(struct blockdev *bs)
{
	struct json_object *o = json_object_new_object(), *cache, *image;
	unsigned int depth = 0;

	for (struct blockdev *b = bs->backing; b; b = b->backing)
		depth++;
	json_object_object_add(o, "file", json_object_new_string(bs->filename));
	json_object_object_add(o, "node-name", json_object_new_string(bs->node_name));
	json_object_object_add(o, "ro", json_object_new_boolean(bs->read_only));
	json_object_object_add(o, "drv", json_object_new_string(blockdev_format_name(bs)));
	if (bs->backing)
		json_object_object_add(o, "backing_file",
				       json_object_new_string(bs->backing->filename));
	add_int(o, "backing_file_depth", depth);
	json_object_object_add(o, "encrypted", json_object_new_boolean(false));
	json_object_object_add(o, "detect_zeroes", json_object_new_string("off"));
	for (size_t i = 0; i < ARRAY_SIZE(no_limits); i++)
		add_int(o, no_limits[i], 0); /* 0 unless a throttle node (below) */
	if (blockdev_throttle_node_group(bs))
		throttle_info(o, blockdev_throttle_node_group(bs));
	cache = json_object_new_object();
	json_object_object_add(cache, "writeback", json_object_new_boolean(true));
	json_object_object_add(cache, "direct",
			       json_object_new_boolean(bs->cache == BLOCKDEV_CACHE_NONE));
	json_object_object_add(cache, "no-flush", json_object_new_boolean(false));
	json_object_object_add(o, "cache", cache);
	image = blockdev_image_info(bs, NULL);
	if (image)
		json_object_object_add(o, "image", image);
	if (bs->bitmaps)
		json_object_object_add(o, "dirty-bitmaps", blockdev_bitmaps_info(bs));
	return o;
}

static void add_node_info(struct blockdev *bs, void *array)
{
	json_object_array_add(array, block_qmp_node_info(bs));
}

int block_qmp_query_named_block_nodes(void *opaque, struct json_object *args,
				      struct json_object **ret, struct error **errp)
{
	*ret = json_object_new_array();
	blockdev_for_each_node(add_node_info, *ret);
	return 0;
}

/* x-debug-query-block-graph: nodes, devices and the links between them (QEMU's shape) */
int block_qmp_query_block_graph(void *opaque, struct json_object *args, struct json_object **ret,
				struct error **errp)
{
	*ret = blockdev_graph_json();
	return 0;
}
