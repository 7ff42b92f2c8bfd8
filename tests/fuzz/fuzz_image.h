/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image sandbox of the fuzz targets that open image files (fuzz_qcow2_open, fuzz_probe): a
 * private temp directory holding the image file and, beside it, backing.raw and data.raw
 * (64 KiB of 0xbb and 0xdd) for the names an image may carry. Before an input is written as
 * the image, every file name it carries (the qcow/qcow2 backing file name, the qcow2 data-file
 * extension, the QED backing file name) has its '/' turned into '_', so that a hostile image
 * can only name files in that directory, never host files. The directory goes at exit.
 *
 * Speed (the targets open every input several times): the directory is on /dev/shm when it is
 * a writable directory (tmpfs), else in /tmp, and the image is one file overwritten in place
 * (pwrite, then ftruncate to the input's size), never created or unlinked per input. On a disk
 * file system a truncation to 0 followed by a write makes the next close() start writeback
 * (ext4's auto_da_alloc), one disk I/O per open of the image.
 */
#ifndef VIREO_TESTS_FUZZ_FUZZ_IMAGE_H
#define VIREO_TESTS_FUZZ_FUZZ_IMAGE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#define FUZZ_IMAGE_EXT_DATA_FILE 0x44415441u /* the qcow2 data-file header extension */

struct fuzz_image {
	char dir[64];
	char path[96]; /* the image file */
	int fd;
	uint8_t *buf; /* the input, names confined, before it is written */
	size_t cap;   /* bytes of buf: larger inputs are skipped */
};

static struct fuzz_image *fuzz_image_current; /* for the exit handler */

static inline void fuzz_image_cleanup(void)
{
	static const char *const names[] = { "backing.raw", "data.raw" };
	struct fuzz_image *fi = fuzz_image_current;
	char p[128];

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(p, sizeof(p), "%s/%s", fi->dir, names[i]);
		unlink(p);
	}
	unlink(fi->path);
	rmdir(fi->dir);
}

static inline void fuzz_image_file(const struct fuzz_image *fi, const char *name, uint8_t fill)
{
	uint8_t buf[64 * 1024];
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", fi->dir, name);
	memset(buf, fill, sizeof(buf));
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		abort();
	close(fd);
}

/* Makes the directory (DIR/vireo-fuzz-@tag-XXXXXX, DIR as above), its files; @name: the image's. */
static inline void fuzz_image_init(struct fuzz_image *fi, const char *tag, const char *name,
				   size_t cap)
{
	const char *top = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(fi->dir, sizeof(fi->dir), "%s/vireo-fuzz-%s-XXXXXX", top, tag);
	if (!mkdtemp(fi->dir)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	fuzz_image_current = fi;
	atexit(fuzz_image_cleanup);
	fuzz_image_file(fi, "backing.raw", 0xbb);
	fuzz_image_file(fi, "data.raw", 0xdd);
	snprintf(fi->path, sizeof(fi->path), "%s/%s", fi->dir, name);
	fi->fd = open(fi->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	fi->cap = cap;
	fi->buf = malloc(cap);
	if (fi->fd < 0 || !fi->buf)
		abort();
}

static inline uint64_t fuzz_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t fuzz_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* '/' -> '_' in the name at [off, off + len) of @p, when it lies inside the @size bytes */
static inline void fuzz_defang(uint8_t *p, uint64_t off, uint64_t len, size_t size)
{
	if (!range_within(off, len, size))
		return;
	for (uint64_t i = 0; i < len; i++)
		if (p[off + i] == '/')
			p[off + i] = '_';
}

/* qcow (v1) and qcow2: backing name at be64 @8, length be32 @16; qcow2's data-file extension */
static inline void fuzz_confine_qcow(uint8_t *p, size_t size)
{
	uint64_t off;

	fuzz_defang(p, fuzz_be(p + 8, 8), fuzz_be(p + 16, 4), size);
	if (fuzz_be(p + 4, 4) < 2)
		return;
	off = fuzz_be(p + 4, 4) >= 3 && size >= 104 ? fuzz_be(p + 100, 4) : 72;
	for (int n = 0; n < 4096 && range_within(off, 8, size); n++) {
		uint32_t type = (uint32_t)fuzz_be(p + off, 4), len = (uint32_t)fuzz_be(p + off + 4, 4);

		if (type == 0)
			break;
		if (type == FUZZ_IMAGE_EXT_DATA_FILE)
			fuzz_defang(p, off + 8, len, size);
		off += 8 + ALIGN_UP((uint64_t)len, 8);
	}
}

/* Writes @data as the image, its file names confined; false (nothing written) when too big. */
static inline bool fuzz_image_put(struct fuzz_image *fi, const uint8_t *data, size_t size)
{
	if (size > fi->cap)
		return false;
	memcpy(fi->buf, data, size);
	if (size >= 72 && !memcmp(fi->buf, "QFI\xfb", 4))
		fuzz_confine_qcow(fi->buf, size);
	if (size >= 64 && !memcmp(fi->buf, "QED\0", 4))
		fuzz_defang(fi->buf, fuzz_le(fi->buf + 56, 4), fuzz_le(fi->buf + 60, 4), size);
	if ((size && pwrite(fi->fd, fi->buf, size, 0) != (ssize_t)size) ||
	    ftruncate(fi->fd, (off_t)size) < 0)
		abort();
	return true;
}

/* FNV-1a of the input: picks offsets and choices from it deterministically */
static inline uint64_t fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

#endif
