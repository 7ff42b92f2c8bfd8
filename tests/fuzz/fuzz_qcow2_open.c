/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: opening a hostile qcow2 image read-only (blockdev/qcow2*.c through
 * blockdev_open), then info, snapshot list, check (no repair), block status, map and reads at a
 * few places.
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

#define READ_MAX (64 * 1024)
#define EXT_DATA_FILE 0x44415441u

static char dir[] = "/tmp/vireo-fuzz-qcow2-XXXXXX";
static char img_path[128];
static int img_fd = -1;
static uint8_t *scratch, *readbuf;

static void cleanup(void)
{
	static const char *const names[] = { "img.qcow2", "backing.raw", "data.raw" };
	char p[160];

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

static void make_file(const char *name, uint8_t fill)
{
	uint8_t buf[64 * 1024];
	char p[160];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	memset(buf, fill, sizeof(buf));
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		abort();
	close(fd);
}

static void setup(void)
{
	if (!mkdtemp(dir)) {
		perror("fuzz_qcow2_open: mkdtemp");
		abort();
	}
	atexit(cleanup);
	make_file("backing.raw", 0xbb);
	make_file("data.raw", 0xdd);
	snprintf(img_path, sizeof(img_path), "%s/img.qcow2", dir);
	img_fd = open(img_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	scratch = malloc(128 * 1024);
	readbuf = malloc(READ_MAX);
	if (img_fd < 0 || !scratch || !readbuf)
		abort();
}

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void defang(uint8_t *p, uint64_t off, uint64_t len, size_t size)
{
	if (!range_within(off, len, size))
		return;
	for (uint64_t i = 0; i < len; i++)
		if (p[off + i] == '/')
			p[off + i] = '_';
}

/* Keeps the backing and data file names inside the temp directory (see the top comment). */
static void confine_names(uint8_t *p, size_t size)
{
	uint64_t off;

	if (size < 72 || memcmp(p, "QFI\xfb", 4))
		return;
	defang(p, be(p + 8, 8), be(p + 16, 4), size);
	off = be(p + 4, 4) >= 3 && size >= 104 ? be(p + 100, 4) : 72;
	for (int n = 0; n < 4096 && range_within(off, 8, size); n++) {
		uint32_t type = (uint32_t)be(p + off, 4), len = (uint32_t)be(p + off + 4, 4);

		if (type == 0)
			break;
		if (type == EXT_DATA_FILE)
			defang(p, off + 8, len, size);
		off += 8 + ALIGN_UP((uint64_t)len, 8);
	}
}

static uint64_t hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *bs;

	if (!scratch)
		setup();
	if (size > 128 * 1024)
		return 0;
	memcpy(scratch, data, size);
	confine_names(scratch, size);
	if (ftruncate(img_fd, 0) < 0 || pwrite(img_fd, scratch, size, 0) != (ssize_t)size)
		abort();
	o.format = "qcow2";
	o.readonly = true;
	bs = blockdev_open(img_path, &o, &err);
	FUZZ_LOG("qcow2_open: %s\n", bs ? "opened" : error_msg(err));
	if (!bs) {
		FUZZ_CHECK(err && error_msg(err)[0], "open failed without a message");
		error_free(err);
		return 0;
	}
	exercise(bs, hash(data, size));
	blockdev_close(bs);
	return 0;
}
