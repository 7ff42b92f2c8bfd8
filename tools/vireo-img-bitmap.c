/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img bitmap: qemu-img bitmap's --add, --remove, --clear, --enable, --disable and --merge
 * SOURCE on a persistent bitmap of a qcow2 image, run in the order given (-g granularity for
 * --add, -b file [-F fmt] for --merge's source). The image's bitmaps are loaded when it opens
 * and stored when it closes (blockdev/qcow2_bitmap.c): the operations work on them in memory.
 */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "common/parse.h"

enum { OP_ADD = 1, OP_REMOVE, OP_CLEAR, OP_ENABLE, OP_DISABLE, OP_MERGE };

struct op {
	int kind;
	const char *source; /* OP_MERGE */
};

static const char *const op_names[] = {
	[OP_ADD] = "add", [OP_REMOVE] = "remove", [OP_CLEAR] = "clear",
	[OP_ENABLE] = "enable", [OP_DISABLE] = "disable", [OP_MERGE] = "merge",
};

struct job {
	const char *name;        /* the bitmap */
	uint64_t granularity;    /* -g, 0 = the default */
	struct blockdev *source; /* -b: where --merge's sources are, else the image itself */
};

static int run_op(struct blockdev *bs, const struct job *j, const struct op *o,
		  struct error **errp)
{
	struct blockdev_bitmap *b, *src;

	if (o->kind == OP_ADD) {
		if (blockdev_bitmap_can_store(bs, j->name, j->granularity, errp) ||
		    !(b = blockdev_bitmap_add(bs, j->name, j->granularity, false, errp)))
			return -1;
		blockdev_bitmap_set_persistent(b, true);
		return 0;
	}
	if (!(b = blockdev_bitmap_find(bs, j->name, errp)))
		return -1;
	if (o->kind == OP_REMOVE)
		return blockdev_bitmap_remove(bs, b, errp);
	if (blockdev_bitmap_check(b, errp))
		return -1;
	switch (o->kind) {
	case OP_CLEAR:
		blockdev_bitmap_clear(b);
		return 0;
	case OP_ENABLE:
	case OP_DISABLE:
		blockdev_bitmap_enable(b, o->kind == OP_ENABLE);
		return 0;
	default:
		if (!(src = blockdev_bitmap_find(j->source ? j->source : bs, o->source, errp)) ||
		    blockdev_bitmap_check(src, errp))
			return -1;
		blockdev_bitmap_merge(b, src);
		return 0;
	}
}

int img_bitmap(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "add", no_argument, NULL, OP_ADD },
		{ "remove", no_argument, NULL, OP_REMOVE },
		{ "clear", no_argument, NULL, OP_CLEAR },
		{ "enable", no_argument, NULL, OP_ENABLE },
		{ "disable", no_argument, NULL, OP_DISABLE },
		{ "merge", required_argument, NULL, OP_MERGE },
		{ 0 },
	};
	const char *fmt = NULL, *src_file = NULL, *src_fmt = NULL;
	struct op *ops = calloc((size_t)argc + 1, sizeof(*ops));
	struct job j = { 0 };
	struct error *err = NULL;
	struct blockdev *bs = NULL;
	size_t n = 0;
	int opt, ret = 1;

	if (!ops)
		return 1;
	while ((opt = getopt_long(argc, argv, "f:b:F:g:qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'b': src_file = optarg; break;
		case 'F': src_fmt = optarg; break;
		case 'q': break;
		case 'g':
			if (parse_size("-g", optarg, &j.granularity, &err))
				goto fail;
			break;
		case 'h':
			printf("usage: %s bitmap (--merge SOURCE | --add | --remove | --clear | "
			       "--enable | --disable)... [-b source_file [-F source_fmt]] "
			       "[-g granularity] [-f fmt] filename bitmap\n", IMG_PROG);
			free(ops);
			return 0;
		case OP_ADD: case OP_REMOVE: case OP_CLEAR: case OP_ENABLE: case OP_DISABLE:
		case OP_MERGE:
			ops[n].kind = opt;
			ops[n++].source = opt == OP_MERGE ? optarg : NULL;
			break;
		default:
			free(ops);
			return img_usage_error("bitmap: bad option");
		}
	}
	if (optind + 2 != argc) {
		free(ops);
		return img_usage_error("bitmap: expecting a file name and a bitmap name");
	}
	j.name = argv[optind + 1];
	if (!n)
		error_setg(&err, "Need at least one of --add, --remove, --clear, --enable, "
			   "--disable, or --merge");
	if (!err && j.granularity) {
		bool add = false;

		for (size_t k = 0; k < n; k++)
			add |= ops[k].kind == OP_ADD;
		if (!add)
			error_setg(&err, "granularity only supported with --add");
	}
	if (!err && (src_file || src_fmt)) {
		bool merge = false;

		for (size_t k = 0; k < n; k++)
			merge |= ops[k].kind == OP_MERGE;
		if (!merge)
			error_setg(&err, "Merge bitmap source file only supported with --merge");
		else if (src_fmt && !src_file)
			error_setg(&err, "-F only supported with -b");
	}
	if (err)
		goto fail;
	bs = img_open(argv[optind], fmt, false, NULL, &err);
	if (!bs)
		goto fail;
	if (src_file && !(j.source = img_open(src_file, src_fmt, true, NULL, &err)))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (run_op(bs, &j, &ops[i], &err)) {
			error_prepend(&err, "Operation %s on bitmap %s failed", op_names[ops[i].kind],
				      j.name);
			goto fail;
		}
	}
	ret = 0;
	goto out;
fail:
	error_report_free(IMG_PROG, err);
out:
	blockdev_close(j.source);
	blockdev_close(bs); /* stores the bitmaps */
	free(ops);
	return ret;
}
