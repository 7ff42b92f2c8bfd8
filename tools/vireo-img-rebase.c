/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img rebase: give a qcow2 image another backing file. Safe mode (default) first copies
 * into the image every range it does not allocate itself where the old and the new backing
 * files differ, so the guest sees the same content; -u only rewrites the header.
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"

#define CHUNK (64 * 1024ULL)

/* Content of [off, off+n) of @b (NULL: no backing file), zeroes past its end. */
static int read_or_zero(struct blockdev *b, uint64_t off, uint8_t *buf, uint64_t n)
{
	uint64_t have = b && off < b->size ? MIN(n, b->size - off) : 0;
	int ret = have ? blockdev_pread(b, off, buf, have) : 0;

	memset(buf + have, 0, n - have);
	return ret;
}

static int copy_differences(struct blockdev *bs, struct blockdev *nb, bool progress)
{
	uint8_t *a = malloc(CHUNK), *b = malloc(CHUNK);
	uint64_t off = 0;
	struct img_progress prog;
	int ret = a && b ? 0 : -ENOMEM;

	img_progress_start(&prog, progress, bs->size);
	while (!ret && off < bs->size) {
		uint64_t n = MIN(CHUNK, bs->size - off), pnum, map;
		struct blockdev *file;
		int st = blockdev_block_status(bs, off, n, &pnum, &map, &file);

		if (st < 0) {
			ret = st;
			break;
		}
		n = MIN(n, pnum);
		if (!(st & BLOCKDEV_STATUS_ALLOCATED)) {
			ret = read_or_zero(bs->backing, off, a, n);
			if (!ret)
				ret = read_or_zero(nb, off, b, n);
			if (!ret && memcmp(a, b, n))
				ret = blockdev_pwrite(bs, off, a, n);
		}
		off += n;
		img_progress_update(&prog, off);
	}
	img_progress_end(&prog, !ret);
	free(a);
	free(b);
	return ret;
}

/* true if @path, or an image of @nb's backing chain (@nb: @path opened, or NULL), is @bs's file */
static bool in_chain(struct blockdev *bs, const char *path, struct blockdev *nb)
{
	struct stat self, st;

	if (fstat(bs->file->fd, &self))
		return false;
	if (!stat(path, &st) && st.st_dev == self.st_dev && st.st_ino == self.st_ino)
		return true;
	for (struct blockdev *cur = nb; cur; cur = cur->backing)
		if (!stat(cur->filename, &st) && st.st_dev == self.st_dev &&
		    st.st_ino == self.st_ino)
			return true;
	return false;
}

int img_rebase(int argc, char **argv)
{
	const char *fmt = NULL, *bfile = NULL, *bfmt = NULL;
	struct blockdev *bs = NULL, *nb = NULL;
	struct error *err = NULL;
	bool unsafe = false, progress = false, quiet = false;
	int c, ret;

	while ((c = getopt(argc, argv, "+f:b:F:upqU")) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'b': bfile = optarg; break;
		case 'F': bfmt = optarg; break;
		case 'u': unsafe = true; break;
		case 'p': progress = true; break;
		case 'q': quiet = true; break;
		case 'U': break;
		default: return img_usage_error("rebase: bad option");
		}
	}
	if (optind + 1 != argc || !bfile)
		return img_usage_error("rebase: expecting -b backing_file and one file name");
	if (bfile[0] && !bfmt) {
		/* as qemu-img: a backing file is never probed, its format is recorded */
		fprintf(stderr, "%s: could not change the backing file to '%s': backing format must "
			"be specified (-F)\n", IMG_PROG, bfile);
		return 1;
	}
	/* -u may mend a chain whose old backing file is gone: leave it closed */
	bs = img_open(argv[optind], fmt, false, unsafe ? "backing=null" : NULL, &err);
	if (!bs)
		goto fail;
	if (bs->drv != &blockdev_qcow2) {
		error_setg(&err, "'%s' is %s: only qcow2 images have a backing file", argv[optind],
			   blockdev_format_name(bs));
		goto fail;
	}
	if (bfile[0]) {
		char *path = blockdev_path_beside(argv[optind], bfile);

		if (!path) {
			error_setg(&err, "out of memory");
			goto fail;
		}
		/* -u: a new backing file that does not open (yet) is allowed, one that does is
		 * still checked for a loop */
		nb = img_open(path, bfmt, true, NULL, &err);
		if (!nb && unsafe) {
			error_free(err);
			err = NULL;
		}
		if (!nb && !unsafe)
			error_prepend(&err, "could not open the new backing file '%s'", bfile);
		else if (in_chain(bs, path, nb))
			error_setg(&err, "'%s' cannot be the backing file of '%s': that would make "
				   "the backing chain loop", bfile, argv[optind]);
		free(path);
		if (err)
			goto fail;
	}
	if (!unsafe && (ret = copy_differences(bs, nb, progress && !quiet))) {
		error_setg_errno(&err, ret, "'%s': copying the data the backing files disagree on",
				 argv[optind]);
		goto fail;
	}
	if (qcow2_change_backing(bs, bfile, bfmt, &err))
		goto fail;
	blockdev_close(nb);
	blockdev_close(bs);
	return 0;
fail:
	error_report_free(IMG_PROG, err);
	blockdev_close(nb);
	blockdev_close(bs);
	return 1;
}
