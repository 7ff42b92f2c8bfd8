/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img snapshot: qemu-img snapshot's -l (list, the default), -c (create), -a (apply: by ID,
 * else by name) and -d (delete: by name) on a qcow2 image's internal snapshots.
 */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static int list(struct blockdev *bs, struct error **errp)
{
	struct json_object *o = blockdev_image_info(bs, errp), *v;

	if (!o)
		return -1;
	if (json_object_object_get_ex(o, "snapshots", &v))
		img_print_snapshots(v);
	json_object_put(o);
	return 0;
}

static int act(struct blockdev *bs, char action, const char *name, struct error **errp)
{
	const char *what = action == 'c' ? "create" : action == 'a' ? "apply" : "delete";
	int ret;

	if (action == 'c')
		ret = blockdev_snapshot_create(bs, name, 0, NULL, errp);
	else if (action == 'a')
		ret = blockdev_snapshot_goto(bs, name, errp);
	else
		ret = blockdev_snapshot_delete(bs, NULL, name, NULL, errp);
	if (ret)
		error_prepend(errp, "Could not %s snapshot '%s'", what, name);
	return ret;
}

int img_snapshot(int argc, char **argv)
{
	const char *fmt = NULL, *name = NULL;
	struct error *err = NULL;
	struct blockdev *bs;
	char action = 0;
	int opt, ret;

	while ((opt = getopt(argc, argv, "+f:la:c:d:qUh")) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'q': case 'U': break;
		case 'l': case 'a': case 'c': case 'd':
			if (action)
				return img_usage_error("snapshot: Cannot mix '-l', '-a', '-c', '-d'");
			action = (char)opt;
			name = optarg;
			break;
		case 'h':
			printf("usage: %s snapshot [-q] [-U] [-f fmt] [-l | -a snapshot | -c snapshot "
			       "| -d snapshot] filename\n", IMG_PROG);
			return 0;
		default: return img_usage_error("snapshot: bad option");
		}
	}
	if (optind + 1 != argc)
		return img_usage_error("snapshot: expecting one file name");
	if (!action)
		action = 'l';
	bs = img_open(argv[optind], fmt, action == 'l', NULL, &err);
	if (!bs) {
		error_report_free(IMG_PROG, err);
		return 1;
	}
	ret = action == 'l' ? list(bs, &err) : act(bs, action, name, &err);
	if (!ret && action != 'l' && blockdev_flush(bs))
		error_setg(&err, "'%s': flush failed", argv[optind]), ret = -1;
	blockdev_close(bs);
	if (ret) {
		error_report_free(IMG_PROG, err);
		return 1;
	}
	return 0;
}
