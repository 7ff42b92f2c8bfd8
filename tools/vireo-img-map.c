/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img map: where each guest range comes from, qemu-img map's human and JSON shapes. */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

struct extent {
	uint64_t start, len, offset;
	int depth;
	bool present, zero, data, compressed, has_offset;
	struct blockdev *file;
};

/* Status of the start of [off, off+len) through the chain: which layer answers, with what. */
static int chain_status(struct blockdev *bs, uint64_t off, uint64_t len, struct extent *e)
{
	struct blockdev *cur = bs;

	memset(e, 0, sizeof(*e));
	e->start = off;
	for (;;) {
		uint64_t pnum, map = 0;
		struct blockdev *file = NULL;
		int st;

		if (e->depth && off >= cur->size) { /* past the end of a shorter backing file */
			e->depth--;
			e->zero = true;
			e->len = len;
			return 0;
		}
		st = blockdev_block_status(cur, off, MIN(len, cur->size - off), &pnum, &map, &file);
		if (st < 0)
			return st;
		len = pnum;
		if ((st & BLOCKDEV_STATUS_ALLOCATED) || !cur->backing) {
			e->len = len;
			e->present = st & BLOCKDEV_STATUS_ALLOCATED;
			e->zero = st & BLOCKDEV_STATUS_ZERO;
			e->data = st & BLOCKDEV_STATUS_DATA;
			e->has_offset = st & BLOCKDEV_STATUS_OFFSET;
			e->offset = map;
			e->file = file;
			e->compressed = st & BLOCKDEV_STATUS_COMPRESSED;
			if (cur->drv != &blockdev_qcow2 && !(st & BLOCKDEV_STATUS_ZERO))
				e->present = e->data = true;
			return 0;
		}
		cur = cur->backing;
		e->depth++;
	}
}

static bool mergeable(const struct extent *a, const struct extent *b)
{
	return a->depth == b->depth && a->present == b->present && a->zero == b->zero &&
	       a->data == b->data && a->compressed == b->compressed &&
	       a->has_offset == b->has_offset && a->file == b->file &&
	       (!a->has_offset || a->offset + a->len == b->offset);
}

/*
 * Prints one extent (the JSON list's opening bracket before the first). Returns -1 with a
 * message when the human form cannot show it: data with no place in a file (a compressed
 * cluster), which qemu-img map refuses the same way rather than leave it out.
 */
static int print(struct blockdev *bs, const struct extent *e, bool json, bool *first)
{
	if (!json) {
		if (e->data && !e->has_offset) {
			fprintf(stderr, "%s: '%s': offset %" PRIu64 " holds compressed data, which "
				"has no offset in a file to show (--output=json shows it)\n",
				IMG_PROG, bs->filename, e->start);
			return -1;
		}
		if (e->data && !e->zero) /* data known to read as zeroes is not listed */
			printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start,
			       e->len, e->offset, e->file ? e->file->filename : "");
		return 0;
	}
	printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %d, "
	       "\"present\": %s, \"zero\": %s, \"data\": %s, \"compressed\": %s",
	       *first ? "[" : ",\n", e->start, e->len, e->depth, e->present ? "true" : "false",
	       e->zero ? "true" : "false", e->data ? "true" : "false",
	       e->compressed ? "true" : "false");
	if (e->has_offset)
		printf(", \"offset\": %" PRIu64, e->offset);
	printf("}");
	*first = false;
	return 0;
}

int img_map(int argc, char **argv)
{
	static const struct option longopts[] = {{"output", required_argument, NULL, 'O'}, {0}};
	const char *fmt = NULL, *output = "human";
	struct extent cur = { 0 }, next;
	struct error *err = NULL;
	struct blockdev *bs;
	bool json, first = true;
	uint64_t off = 0;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "+f:U", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'O': output = optarg; break;
		case 'U': break;
		default: return img_usage_error("map: bad option");
		}
	}
	json = !strcmp(output, "json");
	if (!json && strcmp(output, "human"))
		return img_usage_error("--output must be human or json, not '%s'", output);
	if (optind + 1 != argc)
		return img_usage_error("map: expecting one file name");
	bs = img_open(argv[optind], fmt, true, NULL, &err);
	if (!bs) {
		error_report_free(IMG_PROG, err);
		return 1;
	}
	if (!json)
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	while (off < bs->size) {
		ret = chain_status(bs, off, bs->size - off, &next);
		if (ret) {
			fprintf(stderr, "%s: '%s': mapping offset %" PRIu64 ": %s\n", IMG_PROG,
				bs->filename, off, strerror(-ret));
			ret = 1;
			break;
		}
		if (cur.len && mergeable(&cur, &next)) {
			cur.len += next.len;
		} else {
			if (cur.len && print(bs, &cur, json, &first)) {
				ret = 1;
				break;
			}
			cur = next;
		}
		off += next.len;
	}
	if (!ret && cur.len && print(bs, &cur, json, &first))
		ret = 1;
	if (json && !ret)
		printf("%s\n", first ? "[]" : "]");
	blockdev_close(bs);
	return ret;
}
