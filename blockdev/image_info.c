/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QEMU's ImageInfo for one node: what `vireo-img info --output=json` prints and what QMP's
 * query-named-block-nodes and query-block show as "image", with qemu-img's field names.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "common/util.h"

static void add_i64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

static struct json_object *snapshots_json(const struct blockdev_snapshot *s, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();

		if (s[i].icount != UINT64_MAX)
			add_i64(o, "icount", s[i].icount);
		add_i64(o, "vm-clock-nsec", s[i].vm_clock_nsec % 1000000000);
		json_object_object_add(o, "name", json_object_new_string(s[i].name));
		add_i64(o, "date-sec", s[i].date_sec);
		add_i64(o, "date-nsec", s[i].date_nsec);
		add_i64(o, "vm-clock-sec", s[i].vm_clock_nsec / 1000000000);
		json_object_object_add(o, "id", json_object_new_string(s[i].id));
		add_i64(o, "vm-state-size", s[i].vm_state_size);
		json_object_array_add(a, o);
	}
	return a;
}

/* One entry of "children": the protocol node @f as the child @name, in whole 512-byte sectors
 * as qemu measures every node. */
static struct json_object *child_json(struct blockdev *f, const char *name)
{
	struct json_object *o, *fs, *c;
	struct blockdev_info fi = { 0 };

	if (blockdev_get_info(f, &fi, NULL))
		return NULL;
	json_object_put(fi.specific);
	o = json_object_new_object();
	json_object_object_add(o, "children", json_object_new_array());
	add_i64(o, "virtual-size", ALIGN_UP(f->size, 512));
	json_object_object_add(o, "filename", json_object_new_string(f->filename));
	json_object_object_add(o, "format", json_object_new_string(f->drv->name));
	if (f->drv == &blockdev_file) { /* an NBD export has no size on disk, as qemu-img */
		add_i64(o, "actual-size", fi.actual_size);
		fs = json_object_new_object();
		json_object_object_add(fs, "type", json_object_new_string("file"));
		json_object_object_add(fs, "data", json_object_new_object());
		json_object_object_add(o, "format-specific", fs);
		json_object_object_add(o, "dirty-flag", json_object_new_boolean(false));
	}
	c = json_object_new_object();
	json_object_object_add(c, "name", json_object_new_string(name));
	json_object_object_add(c, "info", o);
	return c;
}

/* The protocol children of a node other than its file (a vmdk's "extents.N"), found through
 * their links; the backing file and a data file are not listed, as qemu-img lists neither. */
struct extra_children {
	struct blockdev *parent;
	const struct blockdev_user *links[64];
	size_t nr;
};

static void find_children(struct blockdev *bs, void *opaque)
{
	struct extra_children *x = opaque;

	for (const struct blockdev_user *u = bs->users; u; u = u->next)
		if (u->parent == x->parent && bs->drv->protocol && strcmp(u->role, "file") &&
		    strcmp(u->role, "backing") && strcmp(u->role, "data-file") &&
		    x->nr < ARRAY_SIZE(x->links))
			x->links[x->nr++] = u;
}

/* qemu lists a node's children newest first: the file, linked at open, comes last */
static int newest_first(const void *a, const void *b)
{
	const struct blockdev_user *x = *(const struct blockdev_user *const *)a;
	const struct blockdev_user *y = *(const struct blockdev_user *const *)b;

	return strverscmp(y->role, x->role);
}

static struct json_object *children_json(struct blockdev *bs)
{
	struct json_object *a = json_object_new_array(), *c;
	struct extra_children x = { .parent = bs };

	blockdev_for_each_node(find_children, &x);
	qsort(x.links, x.nr, sizeof(x.links[0]), newest_first);
	for (size_t i = 0; i < x.nr; i++)
		if ((c = child_json(x.links[i]->node, x.links[i]->role)))
			json_object_array_add(a, c);
	if (bs->file && (c = child_json(bs->file, "file")))
		json_object_array_add(a, c);
	return a;
}

/* Whether @bs's bytes are an NBD export's, whose size on disk the client cannot know. */
static bool on_nbd(const struct blockdev *bs)
{
	while (bs->file)
		bs = bs->file;
	return bs->drv == &blockdev_nbd;
}

static struct json_object *image_json(struct blockdev *bs, const struct blockdev_info *info,
				      const struct blockdev_snapshot *snaps, size_t nr_snaps)
{
	struct json_object *o = json_object_new_object();
	const char *bfmt = info->backing_fmt, *bname = info->backing_file;

	json_object_object_add(o, "children", children_json(bs));
	if (nr_snaps)
		json_object_object_add(o, "snapshots", snapshots_json(snaps, nr_snaps));
	if (bname && bfmt)
		json_object_object_add(o, "backing-filename-format", json_object_new_string(bfmt));
	add_i64(o, "virtual-size", bs->size);
	json_object_object_add(o, "filename", json_object_new_string(bs->filename));
	if (info->cluster_size)
		add_i64(o, "cluster-size", info->cluster_size);
	json_object_object_add(o, "format", json_object_new_string(blockdev_format_name(bs)));
	if (!on_nbd(bs))
		add_i64(o, "actual-size", info->actual_size);
	if (info->specific) {
		struct json_object *fs = json_object_new_object();

		json_object_object_add(fs, "type", json_object_new_string(blockdev_format_name(bs)));
		json_object_object_add(fs, "data", json_object_get(info->specific));
		json_object_object_add(o, "format-specific", fs);
	}
	if (bname) {
		/* qemu-img's "full-backing-filename": resolved against the image's directory */
		char *full = blockdev_path_beside(bs->filename, bname);

		json_object_object_add(o, "full-backing-filename",
				       json_object_new_string(full ? full : bname));
		json_object_object_add(o, "backing-filename", json_object_new_string(bname));
		free(full);
	}
	if (info->encrypted)
		json_object_object_add(o, "encrypted", json_object_new_boolean(true));
	if (!on_nbd(bs) || info->dirty)
		json_object_object_add(o, "dirty-flag", json_object_new_boolean(info->dirty));
	return o;
}

struct json_object *blockdev_image_info(struct blockdev *bs, struct error **errp)
{
	struct blockdev_snapshot *snaps = NULL;
	struct blockdev_info info = { 0 };
	struct json_object *o = NULL;
	size_t nr_snaps = 0;

	if (!blockdev_get_info(bs, &info, errp) &&
	    !blockdev_snapshot_list(bs, &snaps, &nr_snaps, errp))
		o = image_json(bs, &info, snaps, nr_snaps);
	blockdev_snapshot_list_free(snaps, nr_snaps);
	json_object_put(info.specific);
	return o;
}
