/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image files for block-layer unit tests: a temporary directory per test program (under
 * $VIREO_TEST_TMPDIR, else /var/tmp), raw and qcow2 images in it, nodes opened on them, and
 * content written and checked by byte pattern. Failures end the test (cmocka fail_msg).
 */
#ifndef VIREO_TESTS_UNIT_IMG_FIXTURE_H
#define VIREO_TESTS_UNIT_IMG_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "blockdev/blockdev.h"

/* Makes the directory "<tmp>/vireo-<prefix>-XXXXXX"; 0, or -1 (a cmocka group setup's result). */
int imgfx_setup(const char *prefix);
/* Removes it with everything in it; 0 or -1. */
int imgfx_teardown(void);
/* @name inside the directory (four rotating buffers: valid for the next three calls). */
const char *imgfx_path(const char *name);
void imgfx_make_raw(const char *name, uint64_t size);
/* A qcow2 v3 image, 64 KiB clusters; @backing (a name in the directory, or NULL) of @fmt. */
void imgfx_make_qcow2(const char *name, uint64_t size, const char *backing, const char *fmt);
/* Opens @name (@fmt, or probed when NULL) as node @node (or an automatic name). */
struct blockdev *imgfx_open(const char *name, const char *fmt, const char *node, bool ro);
/* Writes @len bytes of @byte at @off (synchronously). */
void imgfx_fill(struct blockdev *bs, uint64_t off, uint64_t len, uint8_t byte);
/* [off, off+len) reads as @byte. */
void imgfx_assert_reads(struct blockdev *bs, uint64_t off, uint64_t len, uint8_t byte);
/* An image of @drv made by its create hook, with one create option (@key=@value) or none
 * (@key NULL); 0 or -errno. */
int imgfx_create(const struct blockdev_driver *drv, const char *name, uint64_t size,
		 const char *key, const char *value);
/* @nthreads (at most 16) threads write into @bs at once, thread i a 4 KiB piece of byte @byte0+i at
 * i*4096 + k*@stride for every k below @end (so that they reach the same blocks together);
 * then, and with _check, every piece reads back and what lies between reads as zeroes. */
void imgfx_pieces_write(struct blockdev *bs, unsigned int nthreads, uint8_t byte0, uint64_t end,
			uint64_t stride);
void imgfx_pieces_check(struct blockdev *bs, unsigned int nthreads, uint8_t byte0, uint64_t end,
			uint64_t stride);

#endif
