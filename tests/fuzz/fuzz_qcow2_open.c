/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: opening a hostile qcow2 image read-only (blockdev/qcow2*.c through
 * blockdev_open), then info, snapshot list, check (no repair), block status, map and reads at a
 * few places; then, when it lists internal snapshots, the first one loaded (load_tmp: the
 * snapshot table entry and its L1 table) and block status, map and reads again through it.
 *
 * Input: the image file, byte for byte. It is written to img.qcow2 in a private temp directory
 * that also holds backing.raw and data.raw (64 KiB each), so images naming those as backing or
 * external data file open them. Before writing, the harness replaces every '/' in the backing
 * file name and in the data-file extension with '_' (as the qcow2 spec lays them out), so a
 * name cannot leave the temp directory: the fuzzer must not open arbitrary host files (a FIFO
 * or a tty would hang the run).
 *
 * Invariants: open either succeeds or fails with a message; a read inside the virtual size
 * returns 0 or -errno; block status and map describe a non-empty prefix of what was asked.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_image.h"

#define READ_MAX (64 * 1024)

static struct fuzz_image img;
static uint8_t *readbuf;


static void check_read(struct blockdev *bs, uint64_t off, uint64_t len)
{
	int r;

	len = MIN(len, (uint64_t)READ_MAX);
	if (!range_within(off, len, bs->size) || len == 0)
		return;
	r = blockdev_pread(bs, off, readbuf, len);
	FUZZ_LOG("qcow2_open: read %llu+%llu: %d\n", (unsigned long long)off,
		 (unsigned long long)len, r);
	FUZZ_CHECK(r <= 0, "pread returned %d", r);
}

static void exercise(struct blockdev *bs, uint64_t h)
{
	uint64_t size = bs->size, off = 0;
	struct blockdev_info info = { 0 };
	struct error *err = NULL;

	if (blockdev_get_info(bs, &info, &err) == 0) {
		if (info.specific)
			(void)json_object_to_json_string(info.specific);
		json_object_put(info.specific);
	} else {
		FUZZ_CHECK(err, "info failed without a message");
		error_free(err);
		err = NULL;
	}
	for (int i = 0; i < 16 && off < size; i++) {
		uint64_t want = size - off, pnum = 0, map_off = 0;
		struct blockdev *map_file = NULL;
		int st = blockdev_block_status(bs, off, want, &pnum, &map_off, &map_file);

		if (st < 0)
			break;
		FUZZ_CHECK(pnum > 0 && pnum <= want, "block status of %llu bytes for %llu asked",
			   (unsigned long long)pnum, (unsigned long long)want);
		off += pnum;
	}
	for (int i = 0; i < 2 && size; i++) {
		struct blockdev_extent ext = { 0 };
		uint64_t at = i ? (h % size) & ~511ULL : 0, want = MIN(size - at, 1ULL << 20);

		if (blockdev_map(bs, BLOCKDEV_OP_READ, at, want, &ext) == 0)
			FUZZ_CHECK(ext.len > 0 && ext.len <= want, "map of %llu bytes for %llu",
				   (unsigned long long)ext.len, (unsigned long long)want);
	}
	{
		struct blockdev_snapshot *snaps = NULL;
		size_t nr = 0;

		if (blockdev_snapshot_list(bs, &snaps, &nr, &err) == 0)
			blockdev_snapshot_list_free(snaps, nr);
		else
			error_free(err);
		err = NULL;
	}
	if (!strcmp(blockdev_format_name(bs), "qcow2")) {
		struct blockdev_check_result res;

		/* count only (fix 0): the node is read-only */
		if (qcow2_check(bs, 0, &res, &err) == 0)
			FUZZ_LOG("qcow2_open: check: %llu corruptions, %llu leaks\n",
				 (unsigned long long)res.corruptions, (unsigned long long)res.leaks);
		else
			error_free(err);
		err = NULL;
	}
	check_read(bs, 0, size);
	check_read(bs, size - MIN(size, 4096), 4096);
	for (int i = 0; i < 4 && size; i++) {
		uint64_t at = (h >> (i * 16)) * 2654435761ULL % size;

		check_read(bs, at, 1 + (h >> (i * 8)) % READ_MAX);
		check_read(bs, at & ~511ULL, 512);
	}
}

/* The first snapshot listed, loaded read-only, then read through as the image was. */
static void load_first_snapshot(struct blockdev *bs, uint64_t h)
{
	struct blockdev_snapshot *snaps = NULL;
	struct error *err = NULL;
	size_t nr = 0;
	int r;

	if (blockdev_snapshot_list(bs, &snaps, &nr, NULL) || !nr) {
		blockdev_snapshot_list_free(snaps, nr);
		return;
	}
	r = blockdev_snapshot_load_tmp(bs, snaps[0].id, NULL, &err);
	FUZZ_LOG("qcow2_open: load snapshot %s: %s\n", snaps[0].id, r ? error_msg(err) : "ok");
	FUZZ_CHECK(!r || (err && error_msg(err)[0]), "load_tmp failed without a message");
	error_free(err);
	blockdev_snapshot_list_free(snaps, nr);
	if (!r)
		exercise(bs, h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *bs;

	if (!readbuf) {
		fuzz_image_init(&img, "qcow2", "img.qcow2", 128 * 1024);
		readbuf = malloc(READ_MAX);
		if (!readbuf)
			abort();
	}
	if (!fuzz_image_put(&img, data, size))
		return 0;
	o.format = "qcow2";
	o.readonly = true;
	bs = blockdev_open(img.path, &o, &err);
	FUZZ_LOG("qcow2_open: %s\n", bs ? "opened" : error_msg(err));
	if (!bs) {
		FUZZ_CHECK(err && error_msg(err)[0], "open failed without a message");
		error_free(err);
		return 0;
	}
	exercise(bs, fuzz_hash(data, size));
	load_first_snapshot(bs, fuzz_hash(data, size));
	blockdev_close(bs);
	return 0;
}
