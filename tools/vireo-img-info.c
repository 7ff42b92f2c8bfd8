/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img info: qemu-img info's human and JSON output (same field names). */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

/* qemu-img's "full-backing-filename": the name resolved against the image's directory. */
static char *full_backing(const char *image, const char *backing)
{
	char *copy, *out = NULL;

	if (backing[0] == '/' || !strchr(image, '/'))
		return strdup(backing);
	copy = strdup(image);
	if (copy && asprintf(&out, "%s/%s", dirname(copy), backing) < 0)
		out = NULL;
	free(copy);
	return out;
}

static struct json_object *snapshots_json(const struct blockdev_snapshot *s, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();

		if (s[i].icount != UINT64_MAX)
			json_object_object_add(o, "icount",
					       json_object_new_int64((int64_t)s[i].icount));
		json_object_object_add(
			o, "vm-clock-nsec",
			json_object_new_int64((int64_t)(s[i].vm_clock_nsec % 1000000000)));
		json_object_object_add(o, "name", json_object_new_string(s[i].name));
		json_object_object_add(o, "date-sec", json_object_new_int64(s[i].date_sec));
		json_object_object_add(o, "date-nsec", json_object_new_int64(s[i].date_nsec));
		json_object_object_add(
			o, "vm-clock-sec",
			json_object_new_int64((int64_t)(s[i].vm_clock_nsec / 1000000000)));
		json_object_object_add(o, "id", json_object_new_string(s[i].id));
		json_object_object_add(o, "vm-state-size",
				       json_object_new_int64((int64_t)s[i].vm_state_size));
		json_object_array_add(a, o);
	}
	return a;
}

static void snapshots_human(const struct blockdev_snapshot *s, size_t n)
{
	printf("Snapshot list:\n%-7s %-17s %7s %19s %15s %10s\n", "ID", "TAG", "VM_SIZE", "DATE",
	       "VM_CLOCK", "ICOUNT");
	for (size_t i = 0; i < n; i++) {
		time_t t = (time_t)s[i].date_sec;
		uint64_t secs = s[i].vm_clock_nsec / 1000000000;
		char date[32], size[32];
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		img_human_size(s[i].vm_state_size, size, sizeof(size));
		printf("%-7s %-17s %7s %19s %04" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64
		       " %10" PRIu64 "\n",
		       s[i].id, s[i].name, size, date, secs / 3600, secs / 60 % 60, secs % 60,
		       s[i].vm_clock_nsec / 1000000 % 1000,
		       s[i].icount == UINT64_MAX ? 0 : s[i].icount);
	}
}

/*
 * The protocol node under a format node, as qemu-img shows it ("children" / "Child node
 * '/file'"): its length in whole 512-byte sectors, as qemu measures every node.
 */
struct file_child {
	const char *filename;
	uint64_t length;
	uint64_t actual_size;
};

static bool file_child(struct blockdev *bs, struct file_child *fc)
{
	struct blockdev_info fi = { 0 };

	if (!bs->file || blockdev_get_info(bs->file, &fi, NULL))
		return false;
	json_object_put(fi.specific);
	fc->filename = bs->file->filename;
	fc->length = ALIGN_UP(bs->file->size, 512);
	fc->actual_size = fi.actual_size;
	return true;
}

static struct json_object *children_json(struct blockdev *bs)
{
	struct json_object *a = json_object_new_array(), *o, *fs, *c;
	struct file_child fc;

	if (!file_child(bs, &fc))
		return a;
	o = json_object_new_object();
	json_object_object_add(o, "children", json_object_new_array());
	json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)fc.length));
	json_object_object_add(o, "filename", json_object_new_string(fc.filename));
	json_object_object_add(o, "format", json_object_new_string("file"));
	json_object_object_add(o, "actual-size", json_object_new_int64((int64_t)fc.actual_size));
	fs = json_object_new_object();
	json_object_object_add(fs, "type", json_object_new_string("file"));
	json_object_object_add(fs, "data", json_object_new_object());
	json_object_object_add(o, "format-specific", fs);
	json_object_object_add(o, "dirty-flag", json_object_new_boolean(false));
	c = json_object_new_object();
	json_object_object_add(c, "name", json_object_new_string("file"));
	json_object_object_add(c, "info", o);
	json_object_array_add(a, c);
	return a;
}

static void children_human(struct blockdev *bs)
{
	struct file_child fc;
	char len[32], ds[32];

	if (!file_child(bs, &fc))
		return;
	img_human_size(fc.length, len, sizeof(len));
	img_human_size(fc.actual_size, ds, sizeof(ds));
	printf("Child node '/file':\n    filename: %s\n    protocol type: file\n"
	       "    file length: %s (%" PRIu64 " bytes)\n    disk size: %s\n",
	       fc.filename, len, fc.length, ds);
}

static struct json_object *info_json(struct blockdev *bs, const struct blockdev_info *info,
				     const struct blockdev_snapshot *snaps, size_t nr_snaps)
{
	struct json_object *o = json_object_new_object();
	const char *bfmt = info->backing_fmt, *bname = info->backing_file;

	json_object_object_add(o, "children", children_json(bs));
	if (nr_snaps)
		json_object_object_add(o, "snapshots", snapshots_json(snaps, nr_snaps));

	if (bname && bfmt)
		json_object_object_add(o, "backing-filename-format", json_object_new_string(bfmt));
	json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)bs->size));
	json_object_object_add(o, "filename", json_object_new_string(bs->filename));
	if (info->cluster_size)
		json_object_object_add(o, "cluster-size",
				       json_object_new_int64((int64_t)info->cluster_size));
	json_object_object_add(o, "format", json_object_new_string(blockdev_format_name(bs)));
	json_object_object_add(o, "actual-size", json_object_new_int64((int64_t)info->actual_size));
	if (info->specific) {
		struct json_object *fs = json_object_new_object();

		json_object_object_add(fs, "type",
				       json_object_new_string(blockdev_format_name(bs)));
		json_object_object_add(fs, "data", json_object_get(info->specific));
		json_object_object_add(o, "format-specific", fs);
	}
	if (bname) {
		char *full = full_backing(bs->filename, bname);

		json_object_object_add(o, "full-backing-filename",
				       json_object_new_string(full ? full : bname));
		json_object_object_add(o, "backing-filename", json_object_new_string(bname));
		free(full);
	}
	json_object_object_add(o, "dirty-flag", json_object_new_boolean(info->dirty));
	return o;
}

static void print_specific(struct json_object *data)
{
	printf("Format specific information:\n");
	json_object_object_foreach(data, key, val) {
		char name[64];

		snprintf(name, sizeof(name), "%s", key);
		for (char *p = name; *p; p++)
			if (*p == '-')
				*p = ' ';
		printf("    %s: %s\n", name, json_object_get_string(val));
	}
}

static void info_human(struct blockdev *bs, const struct blockdev_info *info,
		       const struct blockdev_snapshot *snaps, size_t nr_snaps)
{
	const char *bfmt = info->backing_fmt, *bname = info->backing_file;
	char vs[32], ds[32];

	img_human_size(bs->size, vs, sizeof(vs));
	img_human_size(info->actual_size, ds, sizeof(ds));
	printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRIu64 " bytes)\ndisk size: %s\n",
	       bs->filename, blockdev_format_name(bs), vs, bs->size, ds);
	if (info->cluster_size)
		printf("cluster_size: %" PRIu64 "\n", info->cluster_size);
	if (bname) {
		printf("backing file: %s\n", bname);
		if (bfmt)
			printf("backing file format: %s\n", bfmt);
	}
	if (nr_snaps)
		snapshots_human(snaps, nr_snaps);
	if (info->dirty)
		printf("cleanly shut down: no\n");
	if (info->specific)
		print_specific(info->specific);
	children_human(bs);
}

int img_info(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'O' },
		{ "backing-chain", no_argument, NULL, 'B' },
		{ "force-share", no_argument, NULL, 'U' },
		{ 0 },
	};
	const char *fmt = NULL, *output = "human";
	struct json_object *chain = NULL;
	struct error *err = NULL;
	bool backing_chain = false;
	struct blockdev *bs;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "+f:U", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'O': output = optarg; break;
		case 'B': backing_chain = true; break;
		case 'U': break;
		default: return img_usage_error("info: bad option");
		}
	}
	if (strcmp(output, "human") && strcmp(output, "json"))
		return img_usage_error("--output must be human or json, not '%s'", output);
	if (optind + 1 != argc)
		return img_usage_error("info: expecting one file name");
	/* as qemu-img: the image alone unless the chain is asked for, so that an image whose
	 * backing file is missing still shows what it is */
	bs = img_open(argv[optind], fmt, true, backing_chain ? NULL : "backing=null", &err);
	if (!bs) {
		error_report_free(IMG_PROG, err);
		return 1;
	}
	if (backing_chain && !strcmp(output, "json"))
		chain = json_object_new_array();
	for (struct blockdev *cur = bs; cur; cur = backing_chain ? cur->backing : NULL) {
		struct blockdev_snapshot *snaps = NULL;
		struct blockdev_info info = { 0 };
		size_t nr_snaps = 0;

		if (blockdev_get_info(cur, &info, &err) ||
		    blockdev_snapshot_list(cur, &snaps, &nr_snaps, &err)) {
			json_object_put(info.specific);
			error_report_free(IMG_PROG, err);
			ret = 1;
			break;
		}
		if (!strcmp(output, "json")) {
			struct json_object *o = info_json(cur, &info, snaps, nr_snaps);

			if (chain)
				json_object_array_add(chain, o);
			else {
				printf("%s\n", json_object_to_json_string_ext(
						       o, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
				json_object_put(o);
			}
		} else {
			if (cur != bs)
				printf("\n");
			info_human(cur, &info, snaps, nr_snaps);
		}
		blockdev_snapshot_list_free(snaps, nr_snaps);
		json_object_put(info.specific);
	}
	if (chain) {
		printf("%s\n", json_object_to_json_string_ext(chain, JSON_C_TO_STRING_PRETTY |
			JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(chain);
	}
	blockdev_close(bs);
	return ret;
}
