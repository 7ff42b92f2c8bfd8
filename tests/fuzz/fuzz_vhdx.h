/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the VHDX fuzz targets (fuzz_vhdx_header, fuzz_vhdx_log) share: a VHDX file built in
 * memory from a compact input, so that seeds made from real images stay small (a VHDX file is
 * MiBs of mostly zeroes), and a checksum fixer, so that mutations reach the parsers past the
 * CRC-32C of every structure.
 *
 * Input: byte 0 options (bit 0: fix the checksums of both headers, both region tables and every
 * log entry the headers' logs hold; bit 1: replay the log found, fuzz_vhdx_log only), u32 file
 * size in KiB (at most FUZZ_VHDX_MAX; the file is that many zeroes), then records until the
 * end: u32 file offset, u16 length, that many bytes (cut at the input's end) written there
 * (cut at the file's end).
 *
 * Speed: the file lives in one buffer of FUZZ_VHDX_MAX bytes made once, and only the 4 KiB
 * pages the last input wrote are zeroed again (a calloc and free of MiBs per input spent half
 * the time in page faults); under ASan the bytes past the file are poisoned, so that a read
 * past its end is still caught.
 */
#ifndef VIREO_TESTS_FUZZ_FUZZ_VHDX_H
#define VIREO_TESTS_FUZZ_FUZZ_VHDX_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define FUZZ_VHDX_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define FUZZ_VHDX_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#endif
#endif
#ifndef FUZZ_VHDX_POISON
#define FUZZ_VHDX_POISON(p, n) ((void)(p), (void)(n))
#define FUZZ_VHDX_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include "blockdev/vhdx_format.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

/* bytes of file at most: room for the header section, a 1 MiB log, BAT and metadata regions and
 * a few blocks (each allocation costs its size: the targets run a few hundred times a second) */
#define FUZZ_VHDX_MAX (6 * 1024 * 1024)

#define FUZZ_VHDX_PAGES (FUZZ_VHDX_MAX / 4096)

struct fuzz_vhdx {
	uint8_t *b;
	uint64_t size;
	uint8_t opt;
};

/* the one file buffer, and which of its pages hold something other than zeroes */
static uint8_t *fuzz_vhdx_mem;
static uint8_t fuzz_vhdx_dirty[FUZZ_VHDX_PAGES];

/* Writes @len bytes at @off of @f (inside the file), marking their pages for the next input. */
NO_FUZZ_COVERAGE static void fuzz_vhdx_put(struct fuzz_vhdx *f, uint64_t off, const void *src, size_t len)
{
	if (!len)
		return;
	memcpy(f->b + off, src, len);
	for (uint64_t pg = off / 4096; pg <= (off + len - 1) / 4096; pg++)
		fuzz_vhdx_dirty[pg] = 1;
}

static int fuzz_vhdx_read(void *o, uint64_t off, void *buf, size_t len)
{
	struct fuzz_vhdx *f = o;

	memset(buf, 0, len);
	if (off < f->size)
		memcpy(buf, f->b + off, (size_t)(len < f->size - off ? len : f->size - off));
	return 0;
}

/* Writes inside the buffer only: the file does not grow in memory (-ENOSPC past it). */
static int fuzz_vhdx_write(void *o, uint64_t off, const void *buf, size_t len)
{
	struct fuzz_vhdx *f = o;

	if (off > f->size || len > f->size - off)
		return -ENOSPC;
	fuzz_vhdx_put(f, off, buf, len);
	return 0;
}

static struct vhdx_io fuzz_vhdx_io(struct fuzz_vhdx *f)
{
	return (struct vhdx_io){ fuzz_vhdx_read, fuzz_vhdx_write, NULL, f, f->size };
}

/* The log entries at every 4 KiB of @h's log get their checksum right (circular). The harness's
 * own loops are left out of the coverage (NO_FUZZ_COVERAGE): they are not what is fuzzed. */
NO_FUZZ_COVERAGE static void fuzz_vhdx_fix_log(struct fuzz_vhdx *f, const uint8_t *h)
{
	uint64_t off = vhdx_le64(h + 72), len = vhdx_le32(h + 68);
	static uint8_t entry[1 << 20];

	if (!len || len % 4096 || off >= f->size || len > f->size - off)
		return;
	for (uint64_t s = 0; s < len; s += 4096) {
		uint8_t *e = f->b + off + s;
		uint32_t n = vhdx_le32(e + 8);

		if (memcmp(e, "loge", 4) || !n || n % 4096 || n > len || n > sizeof(entry))
			continue;
		uint64_t first = MIN(n, len - s); /* the entry may wrap to the log's start */

		memcpy(entry, f->b + off + s, first);
		memcpy(entry + first, f->b + off, n - first);
		vhdx_put32(entry + 4, vhdx_checksum(entry, n, 4));
		fuzz_vhdx_put(f, off + s + 4, entry + 4, 4);
	}
}

static void fuzz_vhdx_fix(struct fuzz_vhdx *f)
{
	static const uint64_t hdr[2] = { VHDX_HEADER1_OFF, VHDX_HEADER2_OFF };
	static const uint64_t reg[2] = { VHDX_REGION1_OFF, VHDX_REGION2_OFF };
	uint8_t c[4];

	for (int i = 0; i < 2; i++) {
		if (hdr[i] + VHDX_HEADER_LEN <= f->size && !memcmp(f->b + hdr[i], "head", 4)) {
			fuzz_vhdx_fix_log(f, f->b + hdr[i]);
			vhdx_put32(c, vhdx_checksum(f->b + hdr[i], VHDX_HEADER_LEN, 4));
			fuzz_vhdx_put(f, hdr[i] + 4, c, 4);
		}
		if (reg[i] + VHDX_REGION_LEN <= f->size && !memcmp(f->b + reg[i], "regi", 4)) {
			vhdx_put32(c, vhdx_checksum(f->b + reg[i], VHDX_REGION_LEN, 4));
			fuzz_vhdx_put(f, reg[i] + 4, c, 4);
		}
	}
}

/* Zeroes the pages the last input wrote, and poisons what lies past a file of @size bytes. */
NO_FUZZ_COVERAGE static void fuzz_vhdx_reset(uint8_t *b, uint64_t size)
{
	FUZZ_VHDX_UNPOISON(b, FUZZ_VHDX_MAX);
	for (size_t pg = 0; pg < FUZZ_VHDX_PAGES; pg++)
		if (fuzz_vhdx_dirty[pg]) {
			memset(b + pg * 4096, 0, 4096);
			fuzz_vhdx_dirty[pg] = 0;
		}
	FUZZ_VHDX_POISON(b + size, FUZZ_VHDX_MAX - size);
}

/* Builds the file from the input; false when the input is too short to say anything. */
static bool fuzz_vhdx_build(struct fuzz_vhdx *f, const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };

	if (size < 5)
		return false;
	f->opt = fuzz_u8(&in);
	f->size = (uint64_t)fuzz_u32(&in) * 1024;
	if (f->size > FUZZ_VHDX_MAX)
		f->size = FUZZ_VHDX_MAX;
	if (!fuzz_vhdx_mem) {
		fuzz_vhdx_mem = calloc(1, FUZZ_VHDX_MAX);
		if (!fuzz_vhdx_mem)
			abort();
	}
	f->b = fuzz_vhdx_mem;
	fuzz_vhdx_reset(f->b, f->size);
	while (in.n >= 6) {
		uint64_t off = fuzz_u32(&in);
		size_t len = fuzz_u16(&in);

		if (len > in.n)
			len = in.n;
		if (off < f->size)
			fuzz_vhdx_put(f, off, in.p,
				      (size_t)(len < f->size - off ? len : f->size - off));
		in.p += len;
		in.n -= len;
	}
	if (f->opt & 1)
		fuzz_vhdx_fix(f);
	return true;
}

#endif
