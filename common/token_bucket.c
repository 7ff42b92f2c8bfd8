/* SPDX-License-Identifier: Apache-2.0 */
/* The token bucket (token_bucket.h). Levels are kept in nano-units so that a slow rate (a few
 * units per second) refills exactly over short intervals. */
#include "common/token_bucket.h"

#include "common/util.h"

#define NANO 1000000000LL
#define DEBT_FLOOR (-(INT64_MAX / 2)) /* the deepest debt, in nano-units */

static void refill(struct token_bucket *tb, uint64_t now_ns)
{
	int64_t cap = (int64_t)MIN(tb->burst, (uint64_t)INT64_MAX / NANO) * NANO;
	uint64_t dt = now_ns > tb->last_ns ? now_ns - tb->last_ns : 0;

	tb->last_ns = MAX(tb->last_ns, now_ns);
	if (!tb->rate)
		return;
	/* rate * dt nano-units; capped so that a long idle time cannot overflow */
	if (dt > (uint64_t)(cap - tb->level) / tb->rate + 1)
		tb->level = cap;
	else
		tb->level = MIN(cap, tb->level + (int64_t)(tb->rate * dt));
}

void token_bucket_init(struct token_bucket *tb, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
	tb->rate = rate;
	tb->burst = MAX(burst, 1);
	tb->level = (int64_t)MIN(tb->burst, (uint64_t)INT64_MAX / NANO) * NANO;
	tb->last_ns = now_ns;
}

void token_bucket_set_rate(struct token_bucket *tb, uint64_t rate, uint64_t burst,
			   uint64_t now_ns)
{
	refill(tb, now_ns);
	tb->rate = rate;
	tb->burst = MAX(burst, 1);
	tb->level = MIN(tb->level, (int64_t)MIN(tb->burst, (uint64_t)INT64_MAX / NANO) * NANO);
}

uint64_t token_bucket_wait_ns(struct token_bucket *tb, uint64_t now_ns)
{
	if (!tb->rate)
		return 0;
	refill(tb, now_ns);
	if (tb->level >= 0)
		return 0;
	return ((uint64_t)-tb->level + tb->rate - 1) / tb->rate;
}

void token_bucket_take(struct token_bucket *tb, uint64_t n, uint64_t now_ns)
{
	if (!tb->rate)
		return;
	refill(tb, now_ns);
	if (n > (uint64_t)INT64_MAX / NANO)
		n = (uint64_t)INT64_MAX / NANO;
	/* saturate the debt at DEBT_FLOOR (the difference, in unsigned arithmetic, cannot wrap) */
	if ((uint64_t)tb->level - (uint64_t)DEBT_FLOOR < n * (uint64_t)NANO)
		tb->level = DEBT_FLOOR;
	else
		tb->level -= (int64_t)n * NANO;
}
