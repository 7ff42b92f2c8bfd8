/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img resize: set, grow (+) or shrink (-, with --shrink) the virtual size. */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/parse.h"

int img_resize(int argc, char **argv)
{
	static const struct option longopts[] = { { "shrink", no_argument, NULL, 's' }, { 0 } };
	const char *fmt = NULL, *arg;
	struct error *err = NULL;
	struct blockdev *bs;
	bool shrink = false, quiet = false;
	uint64_t size, delta;
	int c;

	while ((c = getopt_long(argc, argv, "+f:q", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'q': quiet = true; break;
		case 's': shrink = true; break;
		default: return img_usage_error("resize: bad option");
		}
	}
	if (optind + 2 != argc)
		return img_usage_error("resize: expecting a file name and a size");
	arg = argv[optind + 1];
	if (parse_size("size", arg[0] == '+' || arg[0] == '-' ? arg + 1 : arg, &delta, &err))
		goto fail;
	bs = img_open(argv[optind], fmt, false, NULL, &err);
	if (!bs)
		goto fail;
	if (arg[0] == '+')
		size = bs->size + delta;
	else if (arg[0] == '-')
		size = delta > bs->size ? 0 : bs->size - delta;
	else
		size = delta;
	if (size < bs->size && !shrink) {
		error_setg(&err,
			   "use the --shrink option to make '%s' smaller (data past the new end "
			   "is lost)",
			   argv[optind]);
		blockdev_close(bs);
		goto fail;
	}
	if (blockdev_truncate(bs, size, &err)) {
		blockdev_close(bs);
		goto fail;
	}
	blockdev_close(bs);
	if (!quiet)
		printf("Image resized.\n");
	return 0;
fail:
	error_report_free(IMG_PROG, err);
	return 1;
}
