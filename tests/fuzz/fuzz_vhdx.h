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
 */
#ifndef VIREO_TESTS_FUZZ_FUZZ_VHDX_H
#define VIREO_TESTS_FUZZ_FUZZ_VHDX_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/vhdx_format.h"
#include "tests/fuzz/fuzz.h"

/* bytes of file at most: room for the header section, a 1 MiB log, BAT and metadata regions and
 * a few blocks (each allocation costs its size: the targets run a few hundred times a second) */
#define FUZZ_VHDX_MAX (6 * 1024 * 1024)

struct fuzz_vhdx {
	uint8_t *b;
	uint64_t size;
	uint8_t opt;
};

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
	memcpy(f->b + off, buf, len);
	return 0;
}

static struct vhdx_io fuzz_vhdx_io(struct fuzz_vhdx *f)
{
	return (struct vhdx_io){ fuzz_vhdx_read, fuzz_vhdx_write, NULL, f, f->size };
}

/* The log entries at every 4 KiB of @h's log get their checksum right (circular). */
static void fuzz_vhdx_fix_log(struct fuzz_vhdx *f, const uint8_t *h)
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
		for (uint32_t i = 0; i < n; i++)
			entry[i] = f->b[off + (s + i) % len];
		vhdx_put32(entry + 4, vhdx_checksum(entry, n, 4));
		memcpy(e + 4, entry + 4, 4);
	}
}

static void fuzz_vhdx_fix(struct fuzz_vhdx *f)
{
	static const uint64_t hdr[2] = { VHDX_HEADER1_OFF, VHDX_HEADER2_OFF };
	static const uint64_t reg[2] = { VHDX_REGION1_OFF, VHDX_REGION2_OFF };

	for (int i = 0; i < 2; i++) {
		if (hdr[i] + VHDX_HEADER_LEN <= f->size && !memcmp(f->b + hdr[i], "head", 4)) {
			fuzz_vhdx_fix_log(f, f->b + hdr[i]);
			vhdx_put32(f->b + hdr[i] + 4, vhdx_checksum(f->b + hdr[i], VHDX_HEADER_LEN, 4));
		}
		if (reg[i] + VHDX_REGION_LEN <= f->size && !memcmp(f->b + reg[i], "regi", 4))
			vhdx_put32(f->b + reg[i] + 4, vhdx_checksum(f->b + reg[i], VHDX_REGION_LEN, 4));
	}
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
	f->b = calloc(1, f->size ? f->size : 1);
	if (!f->b)
		abort();
	while (in.n >= 6) {
		uint64_t off = fuzz_u32(&in);
		size_t len = fuzz_u16(&in);

		if (len > in.n)
			len = in.n;
		if (off < f->size)
			memcpy(f->b + off, in.p, (size_t)(len < f->size - off ? len : f->size - off));
		in.p += len;
		in.n -= len;
	}
	if (f->opt & 1)
		fuzz_vhdx_fix(f);
	return true;
}

#endif
