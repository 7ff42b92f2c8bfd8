/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QMP's block-dirty-bitmap-* commands (QEMU's names, arguments and messages) over
 * blockdev/bitmap.h, for every program with a block layer: each lists BITMAP_QMP_COMMANDS in its
 * command table. persistent=true asks the node's format whether it can store the bitmap (qcow2
 * v3, writable): the driver writes it into the image when the node closes. Removing a
 * persistent bitmap takes it out of the image at once, as QEMU's. A bitmap found inconsistent
 * in the image can only be removed.
 */
#include "control/bitmap_qmp.h"

#include <json-c/json.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "blockdev/blockdev.h"
#include "common/keyval.h"
#include "control/block_qmp.h"

/* {"node", "name"}: the bitmap, every argument taken; NULL with the error. */
static struct blockdev_bitmap *node_and_name(struct json_object *a, struct blockdev **bs,
					     bool may_be_busy, struct error **errp)
{
	const char *node, *name;
	struct blockdev_bitmap *b;

	if (keyval_need_string(a, "node", &node, errp) < 0 ||
	    keyval_need_string(a, "name", &name, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0 || !(*bs = block_qmp_find_node(node, errp)) ||
	    !(b = blockdev_bitmap_find(*bs, name, errp)))
		return NULL;
	if (!may_be_busy && blockdev_bitmap_check(b, errp))
		return NULL;
	return b;
}

int bitmap_qmp_add(void *o, struct json_object *a, struct json_object **ret,
		   struct error **errp)
{
	const char *node, *name;
	uint64_t gran = 0;
	bool persistent = false, disabled = false;
	struct blockdev_bitmap *b;
	struct blockdev *bs;

	if (keyval_need_string(a, "node", &node, errp) < 0 ||
	    keyval_need_string(a, "name", &name, errp) < 0 ||
	    keyval_take_u64(a, "granularity", &gran, errp) < 0 ||
	    keyval_take_bool(a, "persistent", &persistent, errp) < 0 ||
	    keyval_take_bool(a, "disabled", &disabled, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0 || !(bs = block_qmp_find_node(node, errp)))
		return -1;
	if (persistent && blockdev_bitmap_can_store(bs, name, gran, errp))
		return -1;
	if (!(b = blockdev_bitmap_add(bs, name, gran, disabled, errp)))
		return -1;
	blockdev_bitmap_set_persistent(b, persistent);
	return 0;
}

int bitmap_qmp_remove(void *o, struct json_object *a, struct json_object **ret,
		      struct error **errp)
{
	struct blockdev *bs;
	struct blockdev_bitmap *b = node_and_name(a, &bs, true, errp);

	return b ? blockdev_bitmap_delete(bs, b, errp) : -1;
}

int bitmap_qmp_clear(void *o, struct json_object *a, struct json_object **ret,
		     struct error **errp)
{
	struct blockdev *bs;
	struct blockdev_bitmap *b = node_and_name(a, &bs, false, errp);

	if (!b)
		return -1;
	blockdev_bitmap_clear(b);
	return 0;
}

int bitmap_qmp_enable(void *o, struct json_object *a, struct json_object **ret,
		      struct error **errp)
{
	struct blockdev *bs;
	struct blockdev_bitmap *b = node_and_name(a, &bs, false, errp);

	if (!b)
		return -1;
	blockdev_bitmap_enable(b, true);
	return 0;
}

int bitmap_qmp_disable(void *o, struct json_object *a, struct json_object **ret,
		       struct error **errp)
{
	struct blockdev *bs;
	struct blockdev_bitmap *b = node_and_name(a, &bs, false, errp);

	if (!b)
		return -1;
	blockdev_bitmap_enable(b, false);
	return 0;
}

/* One source of block-dirty-bitmap-merge: a name on @bs, or {"node": N, "name": B}. */
static struct blockdev_bitmap *source(struct json_object *e, struct blockdev *bs, size_t i,
				      struct error **errp)
{
	struct json_object *node, *name;

	if (json_object_is_type(e, json_type_string))
		return blockdev_bitmap_find(bs, json_object_get_string(e), errp);
	if (!json_object_is_type(e, json_type_object) ||
	    !json_object_object_get_ex(e, "node", &node) ||
	    !json_object_object_get_ex(e, "name", &name) ||
	    !json_object_is_type(node, json_type_string) ||
	    !json_object_is_type(name, json_type_string) || json_object_object_length(e) != 2) {
		error_setg(errp, "bitmaps: entry %zu is not a bitmap name or {\"node\": N, \"name\": "
			   "B}", i);
		return NULL;
	}
	bs = block_qmp_find_node(json_object_get_string(node), errp);
	return bs ? blockdev_bitmap_find(bs, json_object_get_string(name), errp) : NULL;
}

int bitmap_qmp_merge(void *o, struct json_object *a, struct json_object **ret,
		     struct error **errp)
{
	const char *node, *target;
	struct json_object *list = NULL;
	struct blockdev_bitmap *dst, *srcs[64];
	struct blockdev *bs;
	size_t n;

	if (keyval_need_string(a, "node", &node, errp) < 0 ||
	    keyval_need_string(a, "target", &target, errp) < 0)
		return -1;
	if (keyval_take_value(a, "bitmaps", &list) != 0 ||
	    !json_object_is_type(list, json_type_array)) {
		error_setg(errp, "Parameter 'bitmaps' is missing or not a list");
		return -1;
	}
	if (keyval_refuse_leftovers(a, NULL, errp) < 0 || !(bs = block_qmp_find_node(node, errp)) ||
	    !(dst = blockdev_bitmap_find(bs, target, errp)))
		return -1;
	if (blockdev_bitmap_check(dst, errp))
		return -1;
	n = json_object_array_length(list);
	if (n > sizeof(srcs) / sizeof(srcs[0])) {
		error_setg(errp, "bitmaps: at most %zu sources", sizeof(srcs) / sizeof(srcs[0]));
		return -1;
	}
	/* every source found before any bit moves */
	for (size_t i = 0; i < n; i++)
		if (!(srcs[i] = source(json_object_array_get_idx(list, i), bs, i, errp)) ||
		    (blockdev_bitmap_inconsistent(srcs[i]) && blockdev_bitmap_check(srcs[i], errp)))
			return -1;
	for (size_t i = 0; i < n; i++)
		blockdev_bitmap_merge(dst, srcs[i]);
	return 0;
}
