/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Yielding to guests: a block job's pace while frontends submit requests.
 *
 * The job thread's idle CPU and I/O priority (job.h) do not keep a job's requests from queueing
 * in the host's disk beside a guest's: the disk's own queue takes both at once, and a guest
 * reading at queue depth 1 waited behind a mirror's megabytes in flight and lost 70 % of its
 * IOPS (bench/jobs, cache=none). So while the frontends (virtio devices, NBD exports) submit
 * requests, a job steps small (at most JOB_YIELD_BYTES, one request at a time: the bytes a job
 * keeps in the disk's queue are what a guest's request waits behind) and after each step waits
 * JOB_YIELD_FACTOR times as long as the step took: it takes at most half of the disk's (and a
 * CPU's) time. Far less (a twentieth, 64 KiB steps) kept a mirror from ever converging under a
 * writing guest and stretched a backup so long that its bitmap caught every granule. Once no frontend request has come for JOB_YIELD_IDLE_NS, the
 * job goes at full speed again. A job given a `speed` does not yield: it goes at that speed,
 * guests or not (the user chose the rate); only one without takes what the guests leave. A
 * mirror that cannot converge so while the guest writes converges with copy-mode=write-blocking
 * or a speed.
 *
 * A job that yields but falls behind (its work left did not shrink over JOB_YIELD_WINDOW_NS:
 * a mirror or an active commit beside a guest that writes faster than the job copies while it
 * yields) stops yielding for good: a job that never ends is worse for the guest than one that
 * takes its full share for a while. A job reading beside a guest that only reads or writes
 * elsewhere keeps yielding.
 *
 * Pure: the job thread feeds it blockdev_frontend_requests(), the job's work left and the time
 * (job.c).
 */
#ifndef VIREO_BLOCKDEV_JOB_YIELD_H
#define VIREO_BLOCKDEV_JOB_YIELD_H

#include <stdbool.h>
#include <stdint.h>

#define JOB_YIELD_IDLE_NS 20000000ULL /* 20 ms without a frontend request: guests are idle */
#define JOB_YIELD_BYTES 262144ULL     /* the most a step copies while they are not */
#define JOB_YIELD_FACTOR 1ULL         /* a step's time, times this: the wait after it */

struct job_yield {
	bool seen;               /* a count was given before */
	uint64_t count;          /* the last one */
	uint64_t last_change_ns; /* when it last changed (0: never seen changing) */
};

#define JOB_YIELD_WINDOW_NS 1000000000ULL /* a yielding job's work left must shrink in this */

/* A job's own record: does it keep up while it yields? */
struct job_yield_progress {
	uint64_t since_ns;  /* the window's start (0: none yet) */
	uint64_t remaining; /* the work left then */
	bool gave_up;       /* fell behind: yields no more */
};

/* Should a job yield now? @count: blockdev_frontend_requests(); @now: now_ns(). */
bool job_yield_active(struct job_yield *y, uint64_t count, uint64_t now);

/* May a job whose work left is @remaining (total - current) go on yielding? Call it only when
 * the job would yield. */
bool job_yield_keeps_up(struct job_yield_progress *p, uint64_t remaining, uint64_t now);

/* How long a job that yields waits after a step that took @step_ns. */
static inline uint64_t job_yield_wait_ns(uint64_t step_ns)
{
	return step_ns * JOB_YIELD_FACTOR;
}

#endif
