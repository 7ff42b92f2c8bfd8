/* SPDX-License-Identifier: Apache-2.0 */
/* The guest's little C library: strings, formatted output, time. */
#ifndef GUEST_LIB_H
#define GUEST_LIB_H

#include <stdarg.h>
#include "lib/sys.h"

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
/* Parses an unsigned decimal or 0x-hex number filling the whole string; false if it isn't one. */
bool parse_u64(const char *s, uint64_t *out);

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
/* Formats to the UART (%d %i %u %x %X %p %s %c %%, flags '-' '0' '#', width, precision for %s,
 * length l, ll, z). */
int printf(const char *fmt, ...) __printf(1, 2);

/*
 * The last error a driver met, for the test case to report: drivers return -1 / NULL / false and
 * call err_set() with a message naming what was wrong.
 */
void err_set(const char *fmt, ...) __printf(1, 2);
const char *err_get(void);

/* Time (lib/time.c): the TSC, calibrated once by time_init() against the ACPI PM timer. */
extern uint64_t tsc_hz;
void time_init(void);
/*
 * Recalibrates tsc_hz against PIT channel 2 over about ms milliseconds (for benchmarks, ~0.05 %:
 * each PIT read is bracketed by TSC reads). Returns false (tsc_hz unchanged) when the PIT does not
 * count.
 */
bool time_calibrate_pit(unsigned ms);
uint64_t time_ns(void);
void delay_us(uint64_t us);

#endif
