/* SPDX-License-Identifier: Apache-2.0 */
/* Yielding to guests (job_yield.h): is a frontend submitting requests? */
#include "blockdev/job_yield.h"

bool job_yield_active(struct job_yield *y, uint64_t count, uint64_t now)
{
	if (!y->seen) { /* the first look is the baseline: nothing seen moving yet */
		y->seen = true;
		y->count = count;
		return false;
	}
	if (count != y->count) {
		y->count = count;
		y->last_change_ns = now;
		return true;
	}
	return y->last_change_ns && now - y->last_change_ns < JOB_YIELD_IDLE_NS;
}

bool job_yield_keeps_up(struct job_yield_progress *p, uint64_t remaining, uint64_t now)
{
	if (p->gave_up)
		return false;
	if (!p->since_ns) {
		p->since_ns = now;
		p->remaining = remaining;
		return true;
	}
	if (now - p->since_ns < JOB_YIELD_WINDOW_NS)
		return true;
	if (remaining && remaining >= p->remaining) {
		p->gave_up = true;
		return false;
	}
	p->since_ns = now;
	p->remaining = remaining;
	return true;
}
