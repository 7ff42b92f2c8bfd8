/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The data the crash-consistency writers put on a disk, and the log they keep of it.
 *
 * Writers: img_io -l (tests/interop/img_io.c, through vireo's block layer) and the test guest's
 * case blk-crashwriter (tests/guest/cases/blk_crashwriter.c, through vireo's virtio-blk).
 * Checker: crash_check (tests/interop/crash_check.c). All three include this header, so the
 * bytes a writer wrote and the bytes the checker expects come from the same function. It is
 * freestanding (no libc): the guest compiles it too.
 *
 * The log: one line per event, each written out (unbuffered) at the moment it says:
 *   @W ID OFF LEN SEED   write ID of LEN bytes at byte OFF is about to be issued; its data is
 *                        crash_byte(SEED, b) at every disk byte b of the range
 *   @Z ID OFF LEN        write-zeroes ID is about to be issued
 *   @D ID OFF LEN        discard ID is about to be issued
 *   @F ID                a flush completed, issued after every operation with an ID <= ID had
 *                        completed: all of them must survive a crash
 *   @E                   the writer finished (every operation issued, completed and flushed)
 * IDs grow in issue order. Operations in flight at the same time never overlap (the guest waits
 * for every request in flight before a discard, and before a write that overlaps one).
 */
#ifndef VIREO_CRASH_PATTERN_H
#define VIREO_CRASH_PATTERN_H

#include <stdint.h>

/* A mix of (seed, 8-byte word of the disk): different for every write and every word. */
static inline uint64_t crash_word(uint64_t seed, uint64_t word)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL ^ (word + 1) * 0xbf58476d1ce4e5b9ULL;

	x ^= x >> 31;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 29;
	return x;
}

/* The byte a write seeded @seed puts at disk byte @b. */
static inline uint8_t crash_byte(uint64_t seed, uint64_t b)
{
	return (uint8_t)(crash_word(seed, b >> 3) >> ((b & 7) * 8));
}

/* Fills buf with what a write seeded @seed puts at disk bytes [off, off + len). */
static inline void crash_fill(uint8_t *buf, uint64_t seed, uint64_t off, uint64_t len)
{
	uint64_t i = 0;

	for (; i < len && ((off + i) & 7); i++)
		buf[i] = crash_byte(seed, off + i);
	for (; i + 8 <= len; i += 8) {
		uint64_t w = crash_word(seed, (off + i) >> 3);

		for (unsigned k = 0; k < 8; k++)
			buf[i + k] = (uint8_t)(w >> (k * 8));
	}
	for (; i < len; i++)
		buf[i] = crash_byte(seed, off + i);
}

#endif
