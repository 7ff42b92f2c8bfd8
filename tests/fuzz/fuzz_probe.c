/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: arbitrary bytes as an image file, opened read-only by every path a user can
 * take: once with probing (no format given: blockdev/probe.c picks the driver, or refuses), then
 * once forced as each driver of blockdev_formats[]. Whatever opens gets info, a block-status
 * walk through the backing chain (as vireo-img map does) and a few reads.
 *
 * Input: the file, byte for byte. It is written to "img" (no extension: probing must go by the
 * content) in a private temp directory that also holds backing.raw and data.raw (64 KiB each).
 * Sandbox: before writing, the harness replaces every '/' in the names an image can carry
 * (qcow/qcow2 backing file and data-file extension, QED backing file) with '_', so those names
 * stay in the temp directory; the fuzzer must not open host files (a FIFO or a tty would hang
 * the run). A driver added to blockdev_formats[] that opens files named by the image must get
 * its names confined here too: the invariant below catches one that escapes.
 *
 * Invariants: an open either succeeds or fails with a message; every node of an opened chain is
 * a file of the temp directory; forcing the format that probing picked opens the same image
 * (same driver, same size); a raw open reads back the input, then zeroes to the end of its last
 * 512-byte sector (raw sizes are whole sectors); block status describes a non-empty prefix of
 * what was asked; a read inside the virtual size returns 0 or -errno.
 * The probe may refuse what it cannot identify or what carries a format's magic but is not a
 * valid image of it: only a crash, a leak, UB or a broken invariant is a finding.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_image.h"

#define INPUT_MAX (128 * 1024)
#define READ_MAX (64 * 1024)
#define WALK_EXTENTS 32

static struct fuzz_image img;
static uint8_t *readbuf;


static void check_sandboxed(const struct blockdev *bs)
{
	size_t n = strlen(img.dir);

	for (int depth = 0; bs; bs = bs->backing, depth++) {
		for (const struct blockdev *f = bs; f; f = f->file)
			FUZZ_CHECK(f->filename && !strncmp(f->filename, img.dir, n) &&
					   f->filename[n] == '/' && !strstr(f->filename + n, "/.."),
				   "node %d opened '%s', outside the sandbox", depth,
				   f->filename ? f->filename : "(null)");
		FUZZ_CHECK(depth < 1000, "backing chain does not end");
	}
}

static int check_read(struct blockdev *bs, uint64_t off, uint64_t len)
{
	int r;

	len = MIN(len, (uint64_t)READ_MAX);
	if (!range_within(off, len, bs->size) || len == 0)
		return 1;
	r = blockdev_pread(bs, off, readbuf, len);
	FUZZ_LOG("probe: read %llu+%llu: %d\n", (unsigned long long)off,
		 (unsigned long long)len, r);
	FUZZ_CHECK(r <= 0, "pread returned %d", r);
	return r;
}

/* The first extent of [off, off+len) through the chain, as vireo-img map finds it: its length. */
static int chain_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *plen)
{
	for (struct blockdev *cur = bs; cur; cur = cur->backing) {
		uint64_t pnum = 0, map = 0, want;
		struct blockdev *file = NULL;
		int st;

		if (cur != bs && off >= cur->size) { /* past the end of a shorter backing file */
			*plen = len;
			return 0;
		}
		want = MIN(len, cur->size - off);
		st = blockdev_block_status(cur, off, want, &pnum, &map, &file);
		if (st < 0)
			return st;
		FUZZ_CHECK(pnum > 0 && pnum <= want, "block status of %llu bytes for %llu asked",
			   (unsigned long long)pnum, (unsigned long long)want);
		len = pnum;
		if ((st & BLOCKDEV_STATUS_ALLOCATED) || !cur->backing)
			break;
	}
	*plen = len;
	return 0;
}

static void walk(struct blockdev *bs)
{
	uint64_t off = 0, len;

	for (int i = 0; i < WALK_EXTENTS && off < bs->size; i++) {
		if (chain_status(bs, off, bs->size - off, &len) < 0)
			break;
		off += len;
	}
}

static void exercise(struct blockdev *bs, uint64_t h)
{
	struct blockdev_info info = { 0 };
	struct error *err = NULL;
	uint64_t size = bs->size;

	if (blockdev_get_info(bs, &info, &err) == 0) {
		if (info.specific)
			(void)json_object_to_json_string(info.specific);
		json_object_put(info.specific);
	} else {
		FUZZ_CHECK(err && error_msg(err)[0], "info failed without a message");
		error_free(err);
		err = NULL;
	}
	walk(bs);
	check_read(bs, 0, size);
	check_read(bs, size - MIN(size, 4096), 4096);
	for (int i = 0; i < 3 && size; i++) {
		uint64_t at = (h >> (i * 16)) * 2654435761ULL % size;

		check_read(bs, at, 1 + (h >> (i * 8)) % READ_MAX);
		check_read(bs, at & ~511ULL, 512);
	}
}

/* Opens img read-only as @format (NULL: probe); NULL when refused, with the message checked. */
static struct blockdev *open_as(const char *format)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *bs;

	o.format = (char *)format;
	o.readonly = true;
	bs = blockdev_open(img.path, &o, &err);
	FUZZ_LOG("probe: as %s: %s%s\n", format ? format : "(probe)", bs ? "opened as " : "",
		 bs ? blockdev_format_name(bs) : error_msg(err));
	if (!bs) {
		FUZZ_CHECK(err && error_msg(err)[0], "open as %s failed without a message",
			   format ? format : "(probe)");
		error_free(err);
		return NULL;
	}
	FUZZ_CHECK(!err, "open as %s succeeded and set an error", format ? format : "(probe)");
	FUZZ_CHECK(blockdev_format_name(bs) && blockdev_format_name(bs)[0], "node without a name");
	check_sandboxed(bs);
	return bs;
}

/*
 * A raw node is the file in whole sectors (as qemu sizes raw images): the file's bytes, then
 * zeroes to the end of a partial last sector.
 */
static void check_raw(struct blockdev *bs, const uint8_t *data, size_t size)
{
	FUZZ_CHECK(bs->size == ALIGN_UP((uint64_t)size, 512), "raw size %llu for a %zu-byte file",
		   (unsigned long long)bs->size, size);
	if (!bs->size || bs->size > READ_MAX || check_read(bs, 0, bs->size) != 0)
		return;
	FUZZ_CHECK(!memcmp(readbuf, data, size), "raw read differs from the file");
	for (uint64_t i = size; i < bs->size; i++)
		FUZZ_CHECK(!readbuf[i], "raw read past the end of the file gives %#x at %llu",
			   readbuf[i], (unsigned long long)i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *probed_fmt = NULL;
	uint64_t probed_size = 0, h;
	struct blockdev *bs;

	if (!readbuf) {
		fuzz_image_init(&img, "probe", "img", INPUT_MAX);
		readbuf = malloc(READ_MAX);
		if (!readbuf)
			abort();
	}
	if (!fuzz_image_put(&img, data, size))
		return 0;
	h = fuzz_hash(data, size);

	bs = open_as(NULL);
	if (bs) {
		probed_fmt = bs->drv->name;
		probed_size = bs->size;
		exercise(bs, h);
		blockdev_close(bs);
	}
	for (size_t i = 0; blockdev_formats[i]; i++) {
		const char *name = blockdev_formats[i]->name;

		bs = open_as(name);
		if (probed_fmt && !strcmp(probed_fmt, name))
			FUZZ_CHECK(bs && bs->size == probed_size,
				   "probing opened it as %s (%llu bytes), forcing %s %s", name,
				   (unsigned long long)probed_size, name,
				   bs ? "gives another size" : "fails");
		if (!bs)
			continue;
		FUZZ_CHECK(bs->drv == blockdev_formats[i], "forced %s, opened as %s", name,
			   blockdev_format_name(bs));
		if (bs->drv == &blockdev_raw)
			check_raw(bs, img.buf, size);
		exercise(bs, h);
		blockdev_close(bs);
	}
	return 0;
}
