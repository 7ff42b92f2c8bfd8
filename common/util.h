/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers every subsystem uses. Nothing here allocates or fails. */
#ifndef VIREO_COMMON_UTIL_H
#define VIREO_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

/* A checksum's inner loop that the fuzz builds' coverage leaves alone: a callback per byte
 * compared tells libFuzzer nothing and took a quarter of a VHDX target's time */
#if defined(__clang__) && __clang_major__ >= 13
#define NO_FUZZ_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_FUZZ_COVERAGE
#endif

/* Whether the @n bytes at @p are all zero. */
static inline int buf_is_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	return n == 0 || (b[0] == 0 && __builtin_memcmp(b, b + 1, n - 1) == 0);
}

/* true if [off, off+len) lies inside [0, size) without overflow */
static inline int range_within(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

#endif
