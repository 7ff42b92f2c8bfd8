/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img commit: write what a qcow2 image allocates into its backing file, then (unless -d)
 * empty the image so that it shows the backing file's (now identical) content. -b BASE commits
 * into a deeper file of the chain what every image above it holds, and (as qemu-img) leaves
 * those images as they are.
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blockdev/copy.h"
#include "common/util.h"

static int commit_progress(void *opaque, uint64_t done)
{
	img_progress_update(opaque, done);
	return 0;
}

/* Writes into @base what the layers from @top down to @stop (the base's node in the chain,
 * excluded) hold, then flushes it. */
static int copy_allocated(struct blockdev *top, struct blockdev *stop, struct blockdev *base,
			  bool progress)
{
	struct img_progress prog;
	/* zeroes a layer holds are written as zeroes over what the base holds; in order, so the
	 * base gets the same file whatever the parallelism */
	struct blockdev_copy o = {
		.src = top, .dst = base, .length = top->size, .top_only = true, .stop = stop,
		.write_zeroes = true, .in_order = true, .parallel = 8,
		.progress = commit_progress, .opaque = &prog,
	};
	int ret;

	img_progress_start(&prog, progress, top->size);
	ret = blockdev_copy_run(&o);
	img_progress_end(&prog, !ret);
	return ret ? ret : blockdev_flush(base);
}

/* true if @path is the host file of @node */
static bool same_file(const char *path, struct blockdev *node)
{
	struct stat a, b;

	return !stat(path, &a) && !stat(node->filename, &b) && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/*
 * The node of @top's chain that -b names (by the name the images record, or the same file),
 * or the immediate backing file without -b.
 */
static struct blockdev *find_base(struct blockdev *top, const char *image,
				  const struct blockdev_info *info, const char *want)
{
	if (!want || !strcmp(want, info->backing_file))
		return top->backing;
	for (struct blockdev *cur = top->backing; cur; cur = cur->backing) {
		char *path = blockdev_path_beside(image, want);
		bool found = path && (!strcmp(want, cur->filename) || same_file(path, cur));

		free(path);
		if (found)
			return cur;
	}
	return NULL;
}

int img_commit(int argc, char **argv)
{
	const char *fmt = NULL, *want_base = NULL;
	struct blockdev *top = NULL, *base = NULL, *stop;
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
	stop = find_base(top, argv[optind], &info, want_base);
	if (!stop) {
		error_setg(&err, "-b %s: not a file of the backing chain of '%s'", want_base,
			   argv[optind]);
		goto fail;
	}
	/* as qemu-img: committing into a deeper base leaves the images above it as they are */
	if (stop != top->backing)
		keep = true;
	/* the chain's node is read-only: open the base's file again, read-write */
	base = img_open(stop->filename, blockdev_format_name(stop), false, NULL, &err);
	if (!base)
		goto fail;
	if (base->size < top->size && blockdev_truncate(base, top->size, &err))
		goto fail;
	if ((ret = copy_allocated(top, stop, base, progress && !quiet))) {
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
