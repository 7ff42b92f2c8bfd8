/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img commit: write what a qcow2 image allocates into its backing file, then (unless -d)
 * empty the image so that it shows the backing file's (now identical) content.
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define CHUNK (1024 * 1024ULL)

static int copy_allocated(struct blockdev *top, struct blockdev *base, bool progress)
{
	uint8_t *buf = malloc(CHUNK);
	uint64_t off = 0;
	struct img_progress prog;
	int ret = buf ? 0 : -ENOMEM;

	img_progress_start(&prog, progress, top->size);
	while (!ret && off < top->size) {
		uint64_t n = MIN(CHUNK, top->size - off), pnum, map;
		struct blockdev *file;
		int st = blockdev_block_status(top, off, n, &pnum, &map, &file);

		if (st < 0) {
			ret = st;
			break;
		}
		n = MIN(n, pnum);
		if (st & BLOCKDEV_STATUS_ALLOCATED) {
			if (st & BLOCKDEV_STATUS_ZERO && !(st & BLOCKDEV_STATUS_DATA))
				ret = blockdev_write_zeroes(base, off, n, 0);
			else if (!(ret = blockdev_pread(top, off, buf, n)))
				ret = blockdev_pwrite(base, off, buf, n);
		}
		off += n;
		img_progress_update(&prog, off);
	}
	img_progress_end(&prog, !ret);
	free(buf);
	return ret ? ret : blockdev_flush(base);
}

/* The backing file of @top opened read-write, as the image names it (@info). */
static struct blockdev *open_base(const char *filename, const struct blockdev_info *info,
				  struct error **errp)
{
	char *path = blockdev_path_beside(filename, info->backing_file);
	struct blockdev *base;

	if (!path) {
		error_setg(errp, "out of memory");
		return NULL;
	}
	base = img_open(path, info->backing_fmt, false, NULL, errp);
	free(path);
	return base;
}

int img_commit(int argc, char **argv)
{
	const char *fmt = NULL, *want_base = NULL;
	struct blockdev *top = NULL, *base = NULL;
	struct blockdev_info info = { 0 };
	struct error *err = NULL;
	bool keep = false, progress = false, quiet = false;
	int c, ret;

	while ((c = getopt(argc, argv, "+f:b:dpqt:")) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'b': want_base = optarg; break;
		case 'd': keep = true; break;
		case 'p': progress = true; break;
		case 'q': quiet = true; break;
		case 't': break;
		default: return img_usage_error("commit: bad option");
		}
	}
	if (optind + 1 != argc)
		return img_usage_error("commit: expecting one file name");
	top = img_open(argv[optind], fmt, false, NULL, &err);
	if (!top)
		goto fail;
	if (blockdev_get_info(top, &info, &err))
		goto fail;
	if (!info.backing_file || !top->backing) {
		error_setg(&err, "'%s' has no backing file to commit into", argv[optind]);
		goto fail;
	}
	if (want_base && strcmp(want_base, info.backing_file) &&
	    strcmp(want_base, top->backing->filename)) {
		error_setg(&err, "-b %s: only the image's own backing file ('%s') can be the base",
			   want_base, info.backing_file);
		goto fail;
	}
	base = open_base(argv[optind], &info, &err);
	if (!base)
		goto fail;
	if (base->size < top->size && blockdev_truncate(base, top->size, &err))
		goto fail;
	if ((ret = copy_allocated(top, base, progress && !quiet))) {
		error_setg_errno(&err, ret, "committing '%s' into '%s'", argv[optind],
				 base->filename);
		goto fail;
	}
	if (!keep && blockdev_make_empty(top, &err)) {
		error_prepend(&err, "after the commit");
		goto fail;
	}
	json_object_put(info.specific);
	blockdev_close(base);
	blockdev_close(top);
	if (!quiet)
		printf("Image committed.\n");
	return 0;
fail:
	error_report_free(IMG_PROG, err);
	json_object_put(info.specific);
	blockdev_close(base);
	blockdev_close(top);
	return 1;
}
