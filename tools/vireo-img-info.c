/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img info: qemu-img info's human and JSON output (same field names). */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

static int64_t get_i64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

void img_print_snapshots(struct json_object *list)
{
	printf("Snapshot list:\n%-7s %-17s %7s %19s %15s %10s\n", "ID", "TAG", "VM_SIZE", "DATE",
	       "VM_CLOCK", "ICOUNT");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *s = json_object_array_get_idx(list, i);
		time_t t = (time_t)get_i64(s, "date-sec");
		uint64_t secs = (uint64_t)get_i64(s, "vm-clock-sec");
		char date[32], size[32], clock[48];
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		img_human_size((uint64_t)get_i64(s, "vm-state-size"), size, sizeof(size));
		snprintf(clock, sizeof(clock), "%04" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64,
			 secs / 3600, secs / 60 % 60, secs % 60,
			 (uint64_t)get_i64(s, "vm-clock-nsec") / 1000000);
		printf("%-7s %-17s %7s %19s %15s %10" PRIu64 "\n", get_str(s, "id"),
		       get_str(s, "name"), size, date, clock, (uint64_t)get_i64(s, "icount"));
	}
}

/* One value of the format-specific data at @indent spaces, as qemu-img nests them: an object's
 * keys and a list's "[i]" each on a line of their own, below the key, four spaces further in. */
static void print_value(const char *key, struct json_object *val, int indent)
{
	char name[64];

	snprintf(name, sizeof(name), "%s", key);
	for (char *p = name; *p; p++)
		if (*p == '-')
			*p = ' ';
	if (json_object_is_type(val, json_type_object)) {
		printf("%*s%s:\n", indent, "", name);
		json_object_object_foreach(val, k, v)
			print_value(k, v, indent + 4);
	} else if (json_object_is_type(val, json_type_array)) {
		printf("%*s%s:\n", indent, "", name);
		for (size_t i = 0; i < json_object_array_length(val); i++) {
			snprintf(name, sizeof(name), "[%zu]", i);
			print_value(name, json_object_array_get_idx(val, i), indent + 4);
		}
	} else {
		printf("%*s%s: %s\n", indent, "", name, json_object_get_string(val));
	}
}

static void print_specific(struct json_object *data)
{
	printf("Format specific information:\n");
	json_object_object_foreach(data, key, val)
		print_value(key, val, 4);
}

/* "disk size": what @o's actual-size says, or "unavailable" (an NBD export's) */
static void disk_size(struct json_object *o, char *buf, size_t len)
{
	if (json_object_object_get_ex(o, "actual-size", NULL))
		img_human_size((uint64_t)get_i64(o, "actual-size"), buf, len);
	else
		snprintf(buf, len, "unavailable");
}

/* qemu-img's human form of an ImageInfo object (blockdev_image_info). */
static void info_human(struct json_object *o)
{
	struct json_object *v, *fs, *child, *ci;
	const char *bname = get_str(o, "backing-filename");
	char vs[32], ds[32];

	img_human_size((uint64_t)get_i64(o, "virtual-size"), vs, sizeof(vs));
	disk_size(o, ds, sizeof(ds));
	printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRId64 " bytes)\ndisk size: %s\n",
	       get_str(o, "filename"), get_str(o, "format"), vs, get_i64(o, "virtual-size"), ds);
	if (json_object_object_get_ex(o, "encrypted", &v) && json_object_get_boolean(v))
		printf("encrypted: yes\n");
	if (json_object_object_get_ex(o, "cluster-size", &v))
		printf("cluster_size: %" PRId64 "\n", json_object_get_int64(v));
	if (bname) {
		printf("backing file: %s\n", bname);
		if (get_str(o, "backing-filename-format"))
			printf("backing file format: %s\n", get_str(o, "backing-filename-format"));
	}
	if (json_object_object_get_ex(o, "snapshots", &v))
		img_print_snapshots(v);
	if (json_object_object_get_ex(o, "dirty-flag", &v) && json_object_get_boolean(v))
		printf("cleanly shut down: no\n");
	if (json_object_object_get_ex(o, "format-specific", &fs) &&
	    json_object_object_get_ex(fs, "data", &v))
		print_specific(v);
	if (json_object_object_get_ex(o, "children", &v)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			child = json_object_array_get_idx(v, i);
			if (!json_object_object_get_ex(child, "info", &ci))
				continue;
			img_human_size((uint64_t)get_i64(ci, "virtual-size"), vs, sizeof(vs));
			disk_size(ci, ds, sizeof(ds));
			printf("Child node '/%s':\n    filename: %s\n    protocol type: %s\n"
			       "    file length: %s (%" PRId64 " bytes)\n    disk size: %s\n",
			       get_str(child, "name"), get_str(ci, "filename"), get_str(ci, "format"),
			       vs, get_i64(ci, "virtual-size"), ds);
		}
	}
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
	bs = img_open(argv[optind], fmt, true, backing_chain ? "no-io=on" : "backing=null,no-io=on",
		      &err);
	if (!bs) {
		error_report_free(IMG_PROG, err);
		return 1;
	}
	if (backing_chain && !strcmp(output, "json"))
		chain = json_object_new_array();
	for (struct blockdev *cur = bs; cur; cur = backing_chain ? cur->backing : NULL) {
		struct json_object *o = blockdev_image_info(cur, &err);

		if (!o) {
			error_report_free(IMG_PROG, err);
			ret = 1;
			break;
		}
		if (strcmp(output, "json")) {
			if (cur != bs)
				printf("\n");
			info_human(o);
			json_object_put(o);
		} else if (chain) {
			json_object_array_add(chain, o);
		} else {
			printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
				JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(o);
		}
	}
	if (chain) {
		printf("%s\n", json_object_to_json_string_ext(chain, JSON_C_TO_STRING_PRETTY |
			JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(chain);
	}
	blockdev_close(bs);
	return ret;
}
