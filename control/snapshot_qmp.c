/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QMP's snapshot commands (QEMU's names, arguments, answers and messages), for every program
 * with a block layer: each lists SNAPSHOT_QMP_COMMANDS in its command table. Control-plane
 * thread only.
 *
 *   blockdev-snapshot-internal-sync          an internal snapshot of a disk's image, taken
 *   blockdev-snapshot-delete-internal-sync   inside a drained section (no request runs meanwhile),
 *                                            recording the VM clock (block_qmp_vm_clock_ns)
 *   blockdev-snapshot-sync                   a new qcow2 overlay over a running disk: created
 *                                            (or opened, mode=existing) with the disk's image as
 *                                            its backing file, and the disk's users moved onto
 *                                            it inside a drained section
 *   blockdev-snapshot                        the same with an overlay node blockdev-add made
 *
 * A "device" names a program's device or a node (block_qmp_find_node). Internal snapshots go
 * through filter nodes (a throttle node over the image) to the image itself, as QEMU's do; an
 * external one goes over the top node only (a filter there is refused): its users, which must
 * all be able to move (a device, an export), move onto the overlay as a mirror's pivot moves
 * them, and hold it. Over a node nothing uses, the overlay is created (the file stays, its
 * backing file the node's) and then dropped, nothing holding it, as QEMU's (the node's own
 * reference is the monitor's, and moves to no one): the node stays as it was, where QEMU also
 * reopens it read-only (vireo cannot reopen an image).
 */
#include "control/snapshot_qmp.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/job.h"
#include "blockdev/qcow2.h"
#include "common/keyval.h"
#include "control/block_qmp.h"

/* The image under any filter nodes over it (what an internal snapshot is taken of). */
static struct blockdev *skip_filters(struct blockdev *bs)
{
	while (bs->drv->filter && bs->file)
		bs = bs->file;
	return bs;
}

static int not_busy(struct blockdev *bs, struct error **errp)
{
	if (!job_uses_node(bs))
		return 0;
	error_setg(errp, "Node '%s' is busy: block device is in use by a block job", bs->node_name);
	return -1;
}

/* Runs @fn inside a drained section over @bs. */
static int drained(struct blockdev *bs, int (*fn)(struct blockdev *bs, void *arg,
						   struct error **errp),
		   void *arg, struct error **errp)
{
	struct blockdev_drain d;
	int ret;

	if (blockdev_drained_begin(bs, &d, errp) < 0)
		return -1;
	ret = fn(bs, arg, errp);
	blockdev_drained_end(&d);
	return ret;
}

struct internal {
	const char *device, *id, *name;
	struct blockdev_snapshot sn;
};

static int create_internal(struct blockdev *bs, void *arg, struct error **errp)
{
	struct internal *in = arg;

	/* the guest's running time, as QEMU records it (0 in a program with no VM) */
	return blockdev_snapshot_create(bs, in->name, block_qmp_vm_clock_ns(), NULL, errp);
}

int snapshot_qmp_internal_sync(void *o, struct json_object *a, struct json_object **ret,
			       struct error **errp)
{
	struct internal in = { 0 };
	struct blockdev_snapshot *list = NULL;
	struct blockdev *bs;
	size_t n = 0;
	int r;

	if (keyval_need_string(a, "device", &in.device, errp) < 0 ||
	    keyval_need_string(a, "name", &in.name, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0 ||
	    !(bs = block_qmp_find_node(in.device, errp)))
		return -1;
	bs = skip_filters(bs);
	if (bs->read_only) {
		error_setg(errp, "Device '%s' is read only", in.device);
		return -1;
	}
	if (!bs->drv->snapshot_create) {
		error_setg(errp, "Block format '%s' used by device '%s' does not support internal "
			   "snapshots", bs->drv->name, in.device);
		return -1;
	}
	if (!in.name[0]) {
		error_setg(errp, "Name is empty");
		return -1;
	}
	if (not_busy(bs, errp) || blockdev_snapshot_list(bs, &list, &n, errp))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i].name, in.name)) {
			blockdev_snapshot_list_free(list, n);
			error_setg(errp, "Snapshot with name '%s' already exists on device '%s'",
				   in.name, in.device);
			return -1;
		}
	}
	blockdev_snapshot_list_free(list, n);
	r = drained(bs, create_internal, &in, errp);
	if (r == 0)
		*ret = json_object_new_object();
	return r;
}

static int delete_internal(struct blockdev *bs, void *arg, struct error **errp)
{
	struct internal *in = arg;

	return blockdev_snapshot_delete(bs, in->id, in->name, &in->sn, errp);
}

/* QEMU's SnapshotInfo. */
static struct json_object *snapshot_info(const struct blockdev_snapshot *s)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(s->id));
	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "vm-state-size", json_object_new_int64((int64_t)s->vm_state_size));
	json_object_object_add(o, "date-sec", json_object_new_int64(s->date_sec));
	json_object_object_add(o, "date-nsec", json_object_new_int64(s->date_nsec));
	json_object_object_add(o, "vm-clock-sec",
			       json_object_new_int64((int64_t)(s->vm_clock_nsec / 1000000000)));
	json_object_object_add(o, "vm-clock-nsec",
			       json_object_new_int64((int64_t)(s->vm_clock_nsec % 1000000000)));
	if (s->icount != UINT64_MAX)
		json_object_object_add(o, "icount", json_object_new_int64((int64_t)s->icount));
	return o;
}

int snapshot_qmp_delete_internal_sync(void *o, struct json_object *a, struct json_object **ret,
				      struct error **errp)
{
	struct internal in = { 0 };
	struct blockdev_snapshot *list = NULL;
	struct blockdev *bs;
	size_t n = 0, i;

	if (keyval_need_string(a, "device", &in.device, errp) < 0 ||
	    keyval_take_string(a, "id", &in.id, errp) < 0 ||
	    keyval_take_string(a, "name", &in.name, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0 ||
	    !(bs = block_qmp_find_node(in.device, errp)))
		return -1;
	bs = skip_filters(bs);
	if (!bs->drv->snapshot_delete) {
		error_setg(errp, "Block format '%s' used by device '%s' does not support internal "
			   "snapshots", bs->drv->name, in.device);
		return -1;
	}
	if (!in.id && !in.name) {
		error_setg(errp, "Name or id must be provided");
		return -1;
	}
	if (bs->read_only) {
		error_setg(errp, "Device '%s' is read only", in.device);
		return -1;
	}
	if (not_busy(bs, errp) || blockdev_snapshot_list(bs, &list, &n, errp))
		return -1;
	for (i = 0; i < n; i++)
		if ((!in.id || !strcmp(list[i].id, in.id)) &&
		    (!in.name || !strcmp(list[i].name, in.name)))
			break;
	blockdev_snapshot_list_free(list, n);
	if (i == n) {
		error_setg(errp, "Snapshot with id '%s' and name '%s' does not exist on device '%s'",
			   in.id ? in.id : "(null)", in.name ? in.name : "(null)", in.device);
		return -1;
	}
	if (drained(bs, delete_internal, &in, errp))
		return -1;
	*ret = snapshot_info(&in.sn);
	blockdev_snapshot_clear(&in.sn);
	return 0;
}

/* --- external snapshots --- */

struct external {
	struct blockdev *overlay;    /* blockdev-snapshot: the node to put over */
	struct json_object *options; /* blockdev-snapshot-sync: the overlay to open */
};

/* blockdev_insert_filter's opener: the overlay, with @bs (its users stepped off) as backing. */
static struct blockdev *open_overlay(struct blockdev *bs, void *arg, struct error **errp)
{
	struct external *x = arg;
	struct blockdev *ov;

	if (x->overlay) {
		if (blockdev_set_backing(x->overlay, bs, errp) < 0)
			return NULL;
		return blockdev_ref(x->overlay);
	}
	json_object_object_add(x->options, "backing", json_object_new_string(bs->node_name));
	/* a BlockdevRef object: the node-name is optional, as snapshot-node-name is */
	ov = blockdev_open_ref(x->options, "blockdev-snapshot-sync", "snapshot-file", errp);
	return ov;
}

static int put_over(struct blockdev *bs, void *arg, struct error **errp)
{
	struct blockdev *ov = blockdev_insert_filter(bs, open_overlay, arg, errp);

	if (!ov)
		return -1;
	blockdev_close(ov); /* the users that moved hold it now */
	return 0;
}

/* What an external snapshot refuses on the node it goes over. */
static int snapshot_target_ok(struct blockdev *bs, struct error **errp)
{
	if (not_busy(bs, errp))
		return -1;
	if (bs->drv->filter) {
		/* over the filter, the overlay would take the writes unfiltered; under it, the
		 * filter's own link would have to move, which the graph does not do yet */
		error_setg(errp, "node '%s' is a %s filter: an external snapshot of a filtered disk "
			   "is not supported", bs->node_name, bs->drv->name);
		return -1;
	}
	if (blockdev_flush(bs) < 0) {
		error_setg(errp, "Failed to flush node '%s'", bs->node_name);
		return -1;
	}
	return 0;
}

/* The backing file name the new image records: an absolute path (mode absolute-paths). */
static int absolute_backing(struct blockdev *bs, char *buf, size_t len, struct error **errp)
{
	if (bs->filename[0] == '/' || blockdev_is_nbd(bs->filename) || !realpath(bs->filename, buf))
		snprintf(buf, len, "%s", bs->filename);
	if (strlen(buf) > QCOW2_MAX_BACKING_NAME) {
		error_setg(errp, "the backing file name '%.64s...' is over %d bytes", buf,
			   QCOW2_MAX_BACKING_NAME);
		return -1;
	}
	return 0;
}

static int create_overlay(struct blockdev *bs, const char *file, struct error **errp)
{
	char backing[PATH_MAX];
	struct qcow2_create_opts o = { .size = bs->size, .cluster_bits = 16, .version = 3,
				       .refcount_bits = 16, .backing_file = backing,
				       .backing_fmt = blockdev_format_name(bs) };

	if (absolute_backing(bs, backing, sizeof(backing), errp))
		return -1;
	return qcow2_create(file, &o, errp) < 0 ? -1 : 0;
}

int snapshot_qmp_sync(void *o, struct json_object *a, struct json_object **ret,
		      struct error **errp)
{
	const char *device = NULL, *node = NULL, *file, *snode = NULL, *format = "qcow2";
	const char *mode = "absolute-paths";
	struct external x = { 0 };
	struct json_object *f;
	struct blockdev *bs = NULL;
	int r;

	if (keyval_take_string(a, "device", &device, errp) < 0 ||
	    keyval_take_string(a, "node-name", &node, errp) < 0 ||
	    keyval_need_string(a, "snapshot-file", &file, errp) < 0 ||
	    keyval_take_string(a, "snapshot-node-name", &snode, errp) < 0 ||
	    keyval_take_string(a, "format", &format, errp) < 0 ||
	    keyval_take_string(a, "mode", &mode, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (device)
		bs = block_qmp_find_node(device, NULL);
	if (!bs && node)
		bs = blockdev_find_node(node);
	if (!bs) {
		error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device ? device : "",
			   node ? node : "");
		return -1;
	}
	if (strcmp(mode, "absolute-paths") && strcmp(mode, "existing")) {
		error_setg(errp, "Parameter 'mode' does not accept value '%s'", mode);
		return -1;
	}
	if (strcmp(format, "qcow2")) {
		error_setg(errp, "format '%s': vireo's overlays are qcow2 images", format);
		return -1;
	}
	if (node && !snode) {
		error_setg(errp, "New overlay node-name missing");
		return -1;
	}
	if (snode && block_qmp_find_node(snode, NULL)) { /* a node or a device: one namespace */
		error_setg(errp, "New overlay node-name already in use");
		return -1;
	}
	if (snapshot_target_ok(bs, errp) ||
	    (!strcmp(mode, "absolute-paths") && create_overlay(bs, file, errp)))
		return -1;
	x.options = json_object_new_object();
	f = json_object_new_object();
	json_object_object_add(f, "driver", json_object_new_string("file"));
	json_object_object_add(f, "filename", json_object_new_string(file));
	json_object_object_add(x.options, "driver", json_object_new_string("qcow2"));
	if (snode)
		json_object_object_add(x.options, "node-name", json_object_new_string(snode));
	json_object_object_add(x.options, "file", f);
	if (bs->cache == BLOCKDEV_CACHE_NONE) {
		struct json_object *c = json_object_new_object();

		json_object_object_add(c, "direct", json_object_new_boolean(true));
		json_object_object_add(x.options, "cache", c);
	}
	r = drained(bs, put_over, &x, errp);
	json_object_put(x.options);
	if (r == 0)
		*ret = json_object_new_object();
	return r;
}

int snapshot_qmp_external(void *o, struct json_object *a, struct json_object **ret,
			  struct error **errp)
{
	const char *node, *overlay;
	struct external x = { 0 };
	struct blockdev *bs;

	if (keyval_need_string(a, "node", &node, errp) < 0 ||
	    keyval_need_string(a, "overlay", &overlay, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0 || !(bs = block_qmp_find_node(node, errp)))
		return -1;
	if (!(x.overlay = blockdev_find_node(overlay))) {
		error_setg(errp, "Cannot find device='%s' nor node-name='%s'", overlay, overlay);
		return -1;
	}
	if (x.overlay == bs) {
		error_setg(errp, "node '%s' cannot be its own overlay", node);
		return -1;
	}
	if (x.overlay->users) {
		error_setg(errp, "The overlay is already in use");
		return -1;
	}
	if (!x.overlay->drv->has_backing) {
		error_setg(errp, "The overlay does not support backing images");
		return -1;
	}
	if (x.overlay->backing) {
		error_setg(errp, "The overlay already has a backing image");
		return -1;
	}
	if (snapshot_target_ok(bs, errp) || drained(bs, put_over, &x, errp))
		return -1;
	*ret = json_object_new_object();
	return 0;
}
