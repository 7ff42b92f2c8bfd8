/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img check: qemu-img's output and exit codes (0 clean, 1 error, 2 corruptions, 3 leaks). */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static void add_u64(struct json_object *o, const char *key, uint64_t v, bool always)
{
	if (v || always)
		json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

static void print_json(struct blockdev *bs, const struct blockdev_check_result *r)
{
	struct json_object *o = json_object_new_object();

	/* as qemu-img: a format whose check does not count them (vhdx) has neither */
	add_u64(o, "image-end-offset", r->image_end_offset, false);
	add_u64(o, "total-clusters", r->total_clusters, false);
	add_u64(o, "check-errors", r->check_errors, true);
	add_u64(o, "leaks", r->leaks, false);
	add_u64(o, "corruptions", r->corruptions, false);
	add_u64(o, "leaks-fixed", r->leaks_fixed, false);
	add_u64(o, "corruptions-fixed", r->corruptions_fixed, false);
	add_u64(o, "allocated-clusters", r->allocated_clusters, false);
	add_u64(o, "fragmented-clusters", r->fragmented_clusters, false);
	add_u64(o, "compressed-clusters", r->compressed_clusters, false);
	json_object_object_add(o, "filename", json_object_new_string(bs->filename));
	json_object_object_add(o, "format", json_object_new_string(blockdev_format_name(bs)));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void print_human(const struct blockdev_check_result *r)
{
	if (!r->corruptions && !r->leaks && !r->check_errors)
		printf("No errors were found on the image.\n");
	if (r->corruptions)
		printf("\n%" PRIu64 " errors were found on the image.\nData may be corrupted, or "
		       "further writes to the image may corrupt it.\n", r->corruptions);
	if (r->leaks)
		printf("\n%" PRIu64 " leaked clusters were found on the image.\nThis means "
		       "waste of disk space, but no harm to data.\n", r->leaks);
	if (r->total_clusters && r->allocated_clusters)
		printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% "
		       "compressed clusters\n", r->allocated_clusters, r->total_clusters,
		       r->allocated_clusters * 100.0 / r->total_clusters,
		       r->fragmented_clusters * 100.0 / r->allocated_clusters,
		       r->compressed_clusters * 100.0 / r->allocated_clusters);
	if (r->image_end_offset)
		printf("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

static int status_of(const struct blockdev_check_result *r)
{
	if (r->check_errors)
		return 1;
	if (r->corruptions)
		return 2;
	return r->leaks ? 3 : 0;
}

int img_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'O' },
		{ "repair", required_argument, NULL, 'r' },
		{ 0 },
	};
	const char *fmt = NULL, *output = "human";
	struct blockdev_check_result r, fixed;
	struct error *err = NULL;
	unsigned fix = 0;
	bool quiet = false, json;
	int ret;
	struct blockdev *bs;
	int c;

	while ((c = getopt_long(argc, argv, "+f:r:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'O': output = optarg; break;
		case 'q': quiet = true; break;
		case 'U': break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				fix = BLOCKDEV_FIX_LEAKS;
			else if (!strcmp(optarg, "all"))
				fix = BLOCKDEV_FIX_LEAKS | BLOCKDEV_FIX_ERRORS;
			else
				return img_usage_error("-r must be leaks or all, not '%s'", optarg);
			break;
		default: return img_usage_error("check: bad option");
		}
	}
	json = !strcmp(output, "json");
	if (!json && strcmp(output, "human"))
		return img_usage_error("--output must be human or json, not '%s'", output);
	if (optind + 1 != argc)
		return img_usage_error("check: expecting one file name");
	bs = img_open(argv[optind], fmt, !fix, fix ? "repair=on" : NULL, &err);
	if (!bs) {
		error_report_free(IMG_PROG, err);
		return 1;
	}
	if (!bs->drv->check) {
		fprintf(stderr, "%s: '%s': this image format (%s) does not support checks\n",
			IMG_PROG, argv[optind], blockdev_format_name(bs));
		blockdev_close(bs);
		return 63; /* qemu-img's status for "not supported" */
	}
	ret = blockdev_check(bs, fix | BLOCKDEV_CHECK_VERBOSE, &r, &err);
	if (ret) {
		error_report_free(IMG_PROG, err);
		blockdev_close(bs);
		return ret == -EOPNOTSUPP ? 63 : 1; /* 63: a repair the format cannot make */
	}
	if (fix && (r.leaks_fixed || r.corruptions_fixed)) {
		if (!quiet && !json)
			printf("The following inconsistencies were found and repaired:\n\n    "
			       "%" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n"
			       "Double checking the fixed image now...\n", r.leaks_fixed,
			       r.corruptions_fixed);
		if (blockdev_check(bs, 0, &fixed, &err)) {
			error_report_free(IMG_PROG, err);
			blockdev_close(bs);
			return 1;
		}
		fixed.leaks_fixed = r.leaks_fixed;
		fixed.corruptions_fixed = r.corruptions_fixed;
		r = fixed;
	}
	if (json)
		print_json(bs, &r);
	else if (!quiet)
		print_human(&r);
	blockdev_close(bs);
	return status_of(&r);
}
