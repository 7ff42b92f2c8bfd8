/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img dd: copy part of an image into a new image, dd-style operands.
 *
 *   dd [-f fmt] [-O output_fmt] [bs=SIZE] [count=N] [skip=N] if=INPUT of=OUTPUT
 *
 * bs (default 512, k/M/G suffixes) is the block size of count and skip; the output (created, or
 * overwritten, in output_fmt, default raw) holds the input's blocks [skip, skip + count), or up
 * to the input's end without count. Unlike qemu-img, whose count counts from the start of the
 * input rather than from skip, count is the number of blocks copied, as in dd(1).
 * Blocks that read as zeroes are not written: the new image leaves them unallocated.
 * Exit 0 on success, 1 on any error (qemu-img's).
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "common/util.h"

#define DD_CHUNK (2 * 1024 * 1024ULL)

struct dd {
	const char *in, *out, *fmt, *out_fmt;
	uint64_t bs, count, skip; /* count: UINT64_MAX = to the input's end */
};

/* One operand KEY=VALUE; -1 with a message naming it when it is unknown or bad. */
static int dd_operand(struct dd *d, const char *arg, struct error **errp)
{
	const char *eq = strchr(arg, '=');
	const char *val = eq ? eq + 1 : NULL;
	size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);

	if (!eq) {
		error_setg(errp, "'%s': operands are KEY=VALUE (bs, count, skip, if, of)", arg);
		return -1;
	}
	if (klen == 2 && !strncmp(arg, "if", 2)) {
		d->in = val;
	} else if (klen == 2 && !strncmp(arg, "of", 2)) {
		d->out = val;
	} else if (klen == 2 && !strncmp(arg, "bs", 2)) {
		if (parse_size("bs", val, &d->bs, errp))
			return -1;
		if (d->bs == 0 || d->bs > INT32_MAX) {
			error_setg(errp, "bs=%s: must be between 1 and 2147483647 bytes", val);
			return -1;
		}
	} else if (klen == 5 && !strncmp(arg, "count", 5)) {
		if (parse_u64("count", val, 0, UINT64_MAX, &d->count, errp))
			return -1;
	} else if (klen == 4 && !strncmp(arg, "skip", 4)) {
		if (parse_u64("skip", val, 0, UINT64_MAX, &d->skip, errp))
			return -1;
	} else {
		error_setg(errp, "'%.*s': unknown operand (bs, count, skip, if, of)", (int)klen, arg);
		return -1;
	}
	return 0;
}

/* Copies [from, from+len) of @in to [0, len) of @out. Returns 0 or -errno. */
static int dd_copy(struct blockdev *in, struct blockdev *out, uint64_t from, uint64_t len)
{
	uint8_t *buf = malloc(DD_CHUNK);
	int ret = buf ? 0 : -ENOMEM;

	for (uint64_t done = 0; !ret && done < len;) {
		uint64_t n = MIN(DD_CHUNK, len - done);

		ret = blockdev_pread(in, from + done, buf, n);
		if (!ret && !buf_is_zero(buf, n))
			ret = blockdev_pwrite(out, done, buf, n);
		done += n;
	}
	free(buf);
	return ret ? ret : blockdev_flush(out);
}

int img_dd(int argc, char **argv)
{
	struct dd d = { .bs = 512, .count = UINT64_MAX, .out_fmt = "raw" };
	struct blockdev *in = NULL, *out = NULL;
	struct error *err = NULL;
	uint64_t from, len;
	int c, ret;

	while ((c = getopt(argc, argv, "+f:O:U")) != -1) {
		switch (c) {
		case 'f': d.fmt = optarg; break;
		case 'O': d.out_fmt = optarg; break;
		case 'U': break;
		default: return img_usage_error("dd: bad option");
		}
	}
	for (int i = optind; i < argc; i++)
		if (dd_operand(&d, argv[i], &err) < 0)
			goto fail;
	if (!d.in || !d.out) {
		error_setg(&err, "dd: both if=INPUT and of=OUTPUT are needed");
		goto fail;
	}
	in = img_open(d.in, d.fmt, true, NULL, &err);
	if (!in)
		goto fail;
	if (d.skip > in->size / d.bs) {
		/* as dd(1) and qemu-img dd: a warning, and an empty output */
		fprintf(stderr, "%s: '%s': cannot skip to specified offset (skip=%" PRIu64
			" blocks of %" PRIu64 " bytes is past its end, %" PRIu64 " bytes)\n",
			IMG_PROG, d.in, d.skip, d.bs, in->size);
		d.skip = in->size / d.bs;
		d.count = 0;
	}
	from = d.skip * d.bs;
	len = in->size - from;
	if (d.count <= len / d.bs)
		len = d.count * d.bs;
	if (img_create_image(d.out, d.out_fmt, NULL, len, true, NULL, NULL, true, &err) < 0)
		goto fail;
	out = img_open(d.out, d.out_fmt, false, NULL, &err);
	if (!out)
		goto fail;
	ret = dd_copy(in, out, from, len);
	if (ret) {
		error_setg_errno(&err, -ret, "copying '%s' to '%s'", d.in, d.out);
		goto fail;
	}
	blockdev_close(out);
	blockdev_close(in);
	return 0;
fail:
	error_report_free(IMG_PROG, err);
	blockdev_close(out);
	blockdev_close(in);
	return 1;
}
