/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A token bucket: units (bytes, requests) flow in at @rate per second up to @burst; taking
 * more than the bucket holds leaves it in debt, and the taker waits until the debt is paid
 * before taking again. Jobs pace their copy with it (speed=); throttle groups will too.
 * Not thread-safe: one owner (the job thread, an iothread) takes from it.
 */
#ifndef VIREO_COMMON_TOKEN_BUCKET_H
#define VIREO_COMMON_TOKEN_BUCKET_H

#include <stdint.h>

struct token_bucket {
	uint64_t rate;   /* units per second; 0: unlimited */
	uint64_t burst;  /* the most it holds (at least one unit) */
	int64_t level;   /* units in it, in 1/1e9 units (negative: debt) */
	uint64_t last_ns;
};

/* A full bucket at @now_ns. */
void token_bucket_init(struct token_bucket *tb, uint64_t rate, uint64_t burst, uint64_t now_ns);
/* Changes the rate, keeping what the bucket holds (capped at the new burst). */
void token_bucket_set_rate(struct token_bucket *tb, uint64_t rate, uint64_t burst,
			   uint64_t now_ns);
/* Nanoseconds from @now_ns until the bucket is out of debt (0: take now). */
uint64_t token_bucket_wait_ns(struct token_bucket *tb, uint64_t now_ns);
/* Takes @n units at @now_ns, into debt if it must. */
void token_bucket_take(struct token_bucket *tb, uint64_t n, uint64_t now_ns);

#endif
