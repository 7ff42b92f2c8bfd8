/* SPDX-License-Identifier: Apache-2.0 */
/* What the boot loader tests (test_boot_pvh.c, test_boot_bzimage.c) share: temp images, loads, reads. */
#ifndef VIREO_TESTS_UNIT_BOOT_FIXTURE_H
#define VIREO_TESTS_UNIT_BOOT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/boot.h"
#include "vmm/gmem.h"

/* Writes @len bytes to a new file under $TMPDIR (else /tmp); returns its malloc'd path. */
char *bootfx_write_tmp(const void *data, size_t len);
/* Unlinks the file and frees the path. */
void bootfx_drop_tmp(char *path);

/*
 * Writes @buf to a temp file and boot_load()s it into @m; returns boot_load's result. On
 * failure the error must name the file; its message goes to @msg (when not NULL), else "".
 */
int bootfx_load(struct gmem *m, const void *buf, size_t len, const char *cmdline,
		const char *initrd, struct boot_cpu_state *st, char *msg, size_t msglen);

/*
 * Asserts that @s is a present flat 4 GiB ring-0 segment with this selector and type: 64-bit code
 * when @long_code, else 32-bit (db set).
 */
void bootfx_check_flat(const struct boot_segment *s, uint16_t sel, uint8_t type, bool long_code);

/* Reads @len (1, 2, 4 or 8) little-endian bytes of guest memory at @gpa; asserts they exist. */
uint64_t bootfx_read(const struct gmem *m, uint64_t gpa, size_t len);

static inline uint8_t bootfx_rd8(const struct gmem *m, uint64_t gpa) { return bootfx_read(m, gpa, 1); }
static inline uint16_t bootfx_rd16(const struct gmem *m, uint64_t gpa) { return bootfx_read(m, gpa, 2); }
static inline uint32_t bootfx_rd32(const struct gmem *m, uint64_t gpa) { return bootfx_read(m, gpa, 4); }
static inline uint64_t bootfx_rd64(const struct gmem *m, uint64_t gpa) { return bootfx_read(m, gpa, 8); }

#endif
