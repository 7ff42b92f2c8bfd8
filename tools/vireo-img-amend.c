/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img amend: change qcow2 options in place, as far as the format allows: compat
 * (0.10 <-> 1.1), lazy_refcounts, size (growing or shrinking, as resize), compression_type
 * (qemu-img takes it at create only: the compressed clusters are stored again in the new type).
 * The backing file is rebase's job, as qemu-img says. Options that would need the image
 * rewritten (cluster_size, refcount_bits, extended_l2, data_file, encryption, ...) are refused
 * by name.
 */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

struct amend {
	struct qcow2_amend_opts q;
	int compression; /* QCOW2_COMPRESS_*, -1 keeps it */
	uint64_t size;
	bool size_given;
};

static int take_option(void *opaque, const char *key, const char *value, struct error **errp)
{
	struct amend *a = opaque;
	bool b;

	if (!strcmp(key, "compat")) {
		if (!strcmp(value, "0.10") || !strcmp(value, "v2")) {
			a->q.version = 2;
		} else if (!strcmp(value, "1.1") || !strcmp(value, "v3")) {
			a->q.version = 3;
		} else {
			error_setg(errp, "compat: '%s' is not 0.10 or 1.1", value);
			return -1;
		}
	} else if (!strcmp(key, "lazy_refcounts")) {
		if (parse_bool("lazy_refcounts", value, &b, errp))
			return -1;
		a->q.lazy_refcounts = b;
	} else if (!strcmp(key, "backing_file") || !strcmp(key, "backing_fmt")) {
		error_setg(errp, "cannot amend the backing file; 'vireo-img rebase' changes it");
		return -1;
	} else if (!strcmp(key, "compression_type")) {
		if (!strcmp(value, "zlib")) {
			a->compression = QCOW2_COMPRESS_ZLIB;
		} else if (!strcmp(value, "zstd")) {
			a->compression = QCOW2_COMPRESS_ZSTD;
		} else {
			error_setg(errp, "compression_type: '%s' is not zlib or zstd", value);
			return -1;
		}
	} else if (!strcmp(key, "size")) {
		if (parse_size("size", value, &a->size, errp))
			return -1;
		a->size_given = true;
	} else {
		error_setg(errp, "amend: changing the option '%s' is not supported", key);
		return -1;
	}
	return 0;
}

static int amend(struct blockdev *bs, struct amend *a, const char *filename, struct error **errp)
{
	if (strcmp(blockdev_format_name(bs), "qcow2")) {
		error_setg(errp, "'%s': format '%s' has no options to amend", filename,
			   blockdev_format_name(bs));
		return -1;
	}
	/* zstd needs version 3: an upgrade first, a downgrade after leaving zstd */
	if (a->q.version == 3 && qcow2_amend(bs, &a->q, errp))
		return -1;
	if (a->compression >= 0 && qcow2_set_compression(bs, (unsigned)a->compression, errp))
		return -1;
	if (a->q.version != 3 && qcow2_amend(bs, &a->q, errp))
		return -1;
	if (a->size_given && a->size != bs->size && blockdev_truncate(bs, a->size, errp))
		return -1;
	return blockdev_flush(bs) ? error_setg(errp, "'%s': flush failed", filename), -1 : 0;
}

int img_amend(int argc, char **argv)
{
	struct amend a = { .q = { .lazy_refcounts = -1 }, .compression = -1 };
	const char *fmt = NULL;
	char *options = NULL;
	struct blockdev *bs = NULL;
	struct error *err = NULL;
	int opt, ret = 1;

	while ((opt = getopt(argc, argv, "+f:o:pqh")) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'o': options = optarg; break;
		case 'p': case 'q': break; /* amend finishes quickly: no progress to show */
		case 'h':
			printf("usage: %s amend [-q] [-f fmt] -o options filename\n", IMG_PROG);
			return 0;
		default: return img_usage_error("amend: bad option");
		}
	}
	if (optind + 1 != argc)
		return img_usage_error("amend: expecting one file name");
	if (!options)
		return img_usage_error("amend: -o options are required");
	if (img_each_option(options, take_option, &a, &err))
		goto fail;
	bs = img_open(argv[optind], fmt, false, NULL, &err);
	if (!bs || amend(bs, &a, argv[optind], &err))
		goto fail;
	ret = 0;
	goto out;
fail:
	error_report_free(IMG_PROG, err);
out:
	blockdev_close(bs);
	return ret;
}
