/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img measure: the file size a new image needs, as qemu-img measure computes it.
 *
 * raw: the virtual size (holes count: a raw file may need them all).
 * qcow2: "fully allocated" is the image with every cluster written (qcow2_measure_full);
 * "required" is that minus the data clusters nothing will write: with a source image, every
 * cluster its whole chain holds data in is counted (zeroes and holes are not); with --size,
 * none; preallocation=falloc|full counts them all. Metadata is always counted whole.
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "common/util.h"

struct measure {
	const char *out_fmt;
	unsigned cluster_bits, refcount_bits, version;
	bool extended_l2, prealloc_all;
	uint64_t size;
	bool size_given;
};

static int take_option(void *opaque, const char *key, const char *value, struct error **errp)
{
	struct measure *m = opaque;
	bool raw = !strcmp(m->out_fmt, "raw");
	uint64_t v;

	if (!strcmp(key, "size")) {
		if (parse_size("size", value, &m->size, errp))
			return -1;
		m->size_given = true;
	} else if (!strcmp(key, "preallocation")) {
		if (img_check_prealloc(value, errp) < 0)
			return -1;
		m->prealloc_all = !strcmp(value, "falloc") || !strcmp(value, "full");
	} else if (raw) {
		error_setg(errp, "format raw does not support the option '%s'", key);
		return -1;
	} else if (!strcmp(key, "cluster_size")) {
		if (img_parse_cluster_size(value, &m->cluster_bits, errp))
			return -1;
	} else if (!strcmp(key, "refcount_bits")) {
		if (parse_u64("refcount_bits", value, 1, 64, &v, errp))
			return -1;
		if (v & (v - 1)) {
			error_setg(errp, "refcount_bits: %s is not a power of two", value);
			return -1;
		}
		m->refcount_bits = (unsigned)v;
	} else if (!strcmp(key, "extended_l2")) {
		return parse_bool("extended_l2", value, &m->extended_l2, errp);
	} else if (!strcmp(key, "compat")) {
		if (!strcmp(value, "0.10") || !strcmp(value, "v2")) {
			m->version = 2;
		} else if (!strcmp(value, "1.1") || !strcmp(value, "v3")) {
			m->version = 3;
		} else {
			error_setg(errp, "compat: '%s' is not 0.10 or 1.1", value);
			return -1;
		}
	} else if (strcmp(key, "lazy_refcounts") && strcmp(key, "compression_type") &&
		   strcmp(key, "backing_file") && strcmp(key, "backing_fmt")) {
		/* those four change no size; anything else (encryption, data_file) we cannot
		 * measure */
		error_setg(errp, "measure: the qcow2 option '%s' is not supported", key);
		return -1;
	}
	return 0;
}

/* Block status of the whole chain: a range the top does not hold is asked of the backing. */
static int chain_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct blockdev *file;
	uint64_t map;
	int st = blockdev_block_status(bs, off, len, pnum, &map, &file);

	if (st < 0 || (st & BLOCKDEV_STATUS_ALLOCATED) || !bs->backing)
		return st;
	if (off >= bs->backing->size)
		return BLOCKDEV_STATUS_ZERO; /* past the backing file's end: zeroes */
	return chain_status(bs->backing, off, MIN(*pnum, bs->backing->size - off), pnum);
}

/* Bytes of whole clusters in which @src holds data (qemu-img's count, cluster by cluster). */
static int data_clusters(struct blockdev *src, uint64_t cs, uint64_t *out)
{
	uint64_t size = src->size, off = 0, pnum, req = 0;

	while (off < size) {
		int st = chain_status(src, off, size - off, &pnum);

		if (st < 0)
			return st;
		if (!pnum)
			return -EIO;
		if (!(st & BLOCKDEV_STATUS_ZERO) && (st & BLOCKDEV_STATUS_DATA)) {
			/* to the end of the cluster: the next lookup starts on a fresh one */
			pnum = ALIGN_UP(off + pnum, cs) - off;
			req += off % cs + pnum;
		}
		off += pnum;
	}
	*out = req;
	return 0;
}

static void print(const char *output, uint64_t required, uint64_t full, bool bitmaps)
{
	if (!strcmp(output, "json")) {
		struct json_object *o = json_object_new_object();

		if (bitmaps)
			json_object_object_add(o, "bitmaps", json_object_new_int64(0));
		json_object_object_add(o, "required", json_object_new_int64((int64_t)required));
		json_object_object_add(o, "fully-allocated", json_object_new_int64((int64_t)full));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return;
	}
	printf("required size: %" PRIu64 "\nfully allocated size: %" PRIu64 "\n", required, full);
	if (bitmaps)
		printf("bitmaps size: 0\n");
}

int img_measure(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'J' },
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct measure m = { .out_fmt = "raw", .cluster_bits = 16, .refcount_bits = 16,
			     .version = 3 };
	const char *fmt = NULL, *output = "human", *options = NULL;
	struct blockdev *src = NULL;
	struct error *err = NULL;
	uint64_t required, full, data = 0, virt;
	bool bitmaps = false;
	int opt, ret = 1;

	while ((opt = getopt_long(argc, argv, "+f:O:o:Uh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'O': m.out_fmt = optarg; break;
		case 'o': options = optarg; break;
		case 'U': break;
		case 'J': output = optarg; break;
		case 's':
			if (parse_size("--size", optarg, &m.size, &err))
				goto fail;
			m.size_given = true;
			break;
		case 'h':
			printf("usage: %s measure [-f fmt] [-O output_fmt] [-o options] "
			       "[--output=human|json] (--size N | filename)\n", IMG_PROG);
			return 0;
		default: return img_usage_error("measure: bad option");
		}
	}
	if (strcmp(output, "human") && strcmp(output, "json"))
		return img_usage_error("--output must be human or json, not '%s'", output);
	if (strcmp(m.out_fmt, "raw") && strcmp(m.out_fmt, "qcow2")) {
		error_setg(&err, "measure: format '%s' is not supported (raw or qcow2)", m.out_fmt);
		goto fail;
	}
	if (options && img_each_option(options, take_option, &m, &err))
		goto fail;
	if (optind + 1 < argc)
		return img_usage_error("measure: expecting at most one file name");
	if (optind < argc && m.size_given)
		return img_usage_error("measure: --size N cannot be used together with a file name");
	if (optind == argc && !m.size_given)
		return img_usage_error("measure: either --size N or one file name must be given");
	if (m.version == 2 && (m.refcount_bits != 16 || m.extended_l2)) {
		error_setg(&err, "compat=0.10 takes neither refcount_bits other than 16 nor "
			   "extended_l2");
		goto fail;
	}
	if (m.extended_l2 && m.cluster_bits < 14) {
		error_setg(&err, "extended_l2 needs a cluster size of at least 16 KiB");
		goto fail;
	}
	if (optind < argc) {
		src = img_open(argv[optind], fmt, true, NULL, &err);
		if (!src)
			goto fail;
		m.size = src->size;
	}
	if (!strcmp(m.out_fmt, "raw")) {
		required = full = src ? m.size : ALIGN_UP(m.size, 512);
	} else {
		uint64_t cs = 1ULL << m.cluster_bits;
		int r;

		virt = ALIGN_UP(m.size, cs);
		if (m.prealloc_all) {
			data = virt;
		} else if (src && (r = data_clusters(src, cs, &data))) {
			error_setg_errno(&err, -r, "'%s': cannot read its allocation", argv[optind]);
			goto fail;
		}
		full = qcow2_measure_full(m.size, m.cluster_bits, m.refcount_bits, m.extended_l2);
		required = full - virt + data;
		bitmaps = m.version >= 3 && src && src->drv == &blockdev_qcow2 &&
			  qcow2_of(src)->h.version >= 3;
	}
	print(output, required, full, bitmaps);
	ret = 0;
	goto out;
fail:
	error_report_free(IMG_PROG, err);
out:
	blockdev_close(src);
	return ret;
}
