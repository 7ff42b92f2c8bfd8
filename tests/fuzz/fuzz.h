/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the fuzz targets: invariant checks, an input reader, and guest memory built
 * from malloc'd buffers of exactly the guest's size (so an access past a region is an ASan
 * error, which an mmap'd gmem would hide).
 */
#ifndef VIREO_TESTS_FUZZ_FUZZ_H
#define VIREO_TESTS_FUZZ_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/gmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: say which, then abort so the fuzzer keeps the input. */
#define FUZZ_CHECK(cond, ...)                                                                   \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			fprintf(stderr, "%s:%d: fuzz invariant broken: %s: ", __FILE__,          \
				__LINE__, #cond);                                                \
			fprintf(stderr, __VA_ARGS__);                                            \
			fputc('\n', stderr);                                                     \
			abort();                                                                 \
		}                                                                               \
	} while (0)

/* With FUZZ_VERBOSE=1 in the environment, targets say what each input did (for seed writing). */
static inline bool fuzz_verbose(void)
{
	static int v = -1;

	if (v < 0)
		v = getenv("FUZZ_VERBOSE") && getenv("FUZZ_VERBOSE")[0] == '1';
	return v;
}

#define FUZZ_LOG(...)                                                                           \
	do {                                                                                    \
		if (fuzz_verbose())                                                             \
			fprintf(stderr, __VA_ARGS__);                                           \
	} while (0)

/* Consumes the input front to back; reads past its end give zeroes. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint64_t fuzz_take(struct fuzz_in *in, size_t bytes)
{
	uint64_t v = 0;

	for (size_t i = 0; i < bytes; i++) {
		if (in->n) {
			v |= (uint64_t)in->p[0] << (8 * i);
			in->p++;
			in->n--;
		}
	}
	return v;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in) { return (uint8_t)fuzz_take(in, 1); }
static inline uint16_t fuzz_u16(struct fuzz_in *in) { return (uint16_t)fuzz_take(in, 2); }
static inline uint32_t fuzz_u32(struct fuzz_in *in) { return (uint32_t)fuzz_take(in, 4); }
static inline uint64_t fuzz_u64(struct fuzz_in *in) { return fuzz_take(in, 8); }

/* Splits the option byte off the front of an input: false when the input is empty. */
static inline bool fuzz_take_opt(const uint8_t **data, size_t *size, uint8_t *opt)
{
	if (*size < 1)
		return false;
	*opt = (*data)[0];
	(*data)++;
	(*size)--;
	return true;
}

/* Guest address of the second RAM region in fuzz_gmem_build (far above any first region). */
#define FUZZ_GMEM_REGION1_GPA 0x100000ULL

/*
 * Builds guest RAM from @img: region 0 at GPA 0 holds img[0..split) padded with zeroes to
 * @min0 bytes, region 1 at FUZZ_GMEM_REGION1_GPA holds img[split..len) (absent when empty).
 * Each region is its own malloc of exactly its size. Free with fuzz_gmem_free().
 */
static inline void fuzz_gmem_build(struct gmem *m, const uint8_t *img, size_t len, size_t split,
				   size_t min0)
{
	size_t len0 = split < len ? split : len, size0 = len0 > min0 ? len0 : min0;

	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	if (size0) {
		uint8_t *h = calloc(1, size0);

		if (!h)
			abort();
		memcpy(h, img, len0);
		m->regions[m->nr_regions++] = (struct gmem_region){ 0, size0, h };
		m->ram_size += size0;
	}
	if (len > len0) {
		uint8_t *h = malloc(len - len0);

		if (!h)
			abort();
		memcpy(h, img + len0, len - len0);
		m->regions[m->nr_regions++] =
			(struct gmem_region){ FUZZ_GMEM_REGION1_GPA, len - len0, h };
		m->ram_size += len - len0;
	}
}

static inline void fuzz_gmem_free(struct gmem *m)
{
	for (unsigned int i = 0; i < m->nr_regions; i++)
		free(m->regions[i].host);
	memset(m, 0, sizeof(*m));
}

/* Is [p, p+len) inside one region's host buffer? */
static inline bool fuzz_gmem_owns(const struct gmem *m, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (unsigned int i = 0; i < m->nr_regions; i++) {
		const struct gmem_region *r = &m->regions[i];

		if (b >= r->host && (size_t)(b - r->host) <= r->size &&
		    len <= r->size - (size_t)(b - r->host))
			return true;
	}
	return false;
}

/* Reads every byte of a buffer (ASan checks each access); returns a value the compiler keeps. */
static inline uint8_t fuzz_touch_read(const void *p, size_t len)
{
	const volatile uint8_t *b = p;
	uint8_t x = 0;

	for (size_t i = 0; i < len; i++)
		x ^= b[i];
	return x;
}

#endif
