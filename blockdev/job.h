/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Block jobs: long operations on the node graph (stream, commit; later mirror, backup, create)
 * run as state machines on one job thread per process, at idle CPU and I/O priority, with
 * QEMU's job states, verbs and events so that QMP clients drive them unchanged.
 *
 * States (QEMU's JobStatus): created -> running <-> paused; running -> ready <-> standby (jobs
 * that wait for job-complete); running|ready -> waiting -> pending -> concluded -> null, or
 * on failure and cancel -> aborting -> concluded -> null.
 *
 * Threads. The job thread calls each running job's step() in turn, one bounded piece of work at
 * a time (a chunk of a copy), and between steps applies what was asked of the job (pause,
 * cancel, complete) and its speed (a token bucket: after a step that copied N bytes the job
 * waits until the bucket has paid them off). It runs at SCHED_IDLE, and its synchronous
 * block-layer I/O at the idle I/O priority, so guests' vCPUs and iothreads go first; on a host
 * whose cores are all busy that leaves a job nothing, so the control plane lets a job that
 * could step and has not for a second step at normal priority for 50 ms (job_manager_poll). Whatever
 * changes the graph (prepare, abort, clean: the chain made shorter, a backing link dropped) runs
 * on the control-plane thread, in job_manager_poll(), which the program calls when the fd of
 * job_manager_fd() is readable; events are queued by either thread and handed to the program's
 * emit callback there too, in order.
 *
 * Ownership. A job's state (status, progress, requests, error) is guarded by the manager's
 * lock; a step runs without it and touches only its driver's own state, which nothing else
 * touches while the job is running (the control plane reads or changes it only when the job
 * is not in a step: waiting, pending, aborting or concluded).
 */
#ifndef VIREO_BLOCKDEV_JOB_H
#define VIREO_BLOCKDEV_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

struct job;
struct json_object;
struct blockdev;

enum job_status {
	JOB_STATUS_UNDEFINED,
	JOB_STATUS_CREATED,
	JOB_STATUS_RUNNING,
	JOB_STATUS_PAUSED,
	JOB_STATUS_READY,
	JOB_STATUS_STANDBY,
	JOB_STATUS_WAITING,
	JOB_STATUS_PENDING,
	JOB_STATUS_ABORTING,
	JOB_STATUS_CONCLUDED,
	JOB_STATUS_NULL,
	JOB_STATUS_NR,
};

/* What to do when a step fails (QEMU's BlockdevOnError for the job's own I/O). */
enum job_on_error {
	JOB_ON_ERROR_REPORT, /* the job fails */
	JOB_ON_ERROR_IGNORE, /* the job goes on past the failed piece, and fails at its end */
	JOB_ON_ERROR_STOP,   /* the job pauses (BLOCK_JOB_ERROR); job-resume tries again */
	JOB_ON_ERROR_ENOSPC, /* STOP when out of space, else REPORT */
};

/* Step results besides -errno. */
#define JOB_STEP_DONE 0 /* no work left (a job that needs complete: in sync, READY) */
#define JOB_STEP_MORE 1 /* call again */
#define JOB_STEP_WAIT 2 /* nothing to do right now: call again a little later */

/**
 * struct job_driver - one kind of job
 * @type: QEMU's JobType ("stream", "commit", ...)
 * @plain: a QEMU Job that is not a BlockJob (blockdev-create): JOB_STATUS_CHANGE only, no
 *         BLOCK_JOB_* event, not in query-block-jobs, not found by the block-job-* verbs
 * @needs_complete: the job reaches READY when its work is done, keeps stepping there (every
 *                  10 ms when a step says it is done) and waits for job-complete (mirror,
 *                  active commit); otherwise it goes on to WAITING
 * @step: job thread: a bounded piece of work; JOB_STEP_MORE, JOB_STEP_DONE, or -errno (the
 *        job fails with it)
 * @prepare: control plane, after the work succeeded: make the result visible (change the
 *           graph, rewrite a header). -1 with @errp set: the job fails, and @abort runs
 * @abort: control plane, after a failure or a cancel: undo what the job set up (may be NULL)
 * @clean: control plane, last: drop every reference the job holds and free @opaque (may be
 *         NULL)
 *
 * A step whose I/O fails calls job_io_error() and does what it returns: REPORT, return the
 * error; IGNORE, go past the failed piece (the job still fails at its end, with that error);
 * STOP, keep the piece for the next step and return JOB_STEP_MORE (the job pauses first).
 */
struct job_driver {
	const char *type;
	bool plain;
	bool needs_complete;
	int (*step)(struct job *job);
	int (*prepare)(struct job *job, struct error **errp);
	void (*abort)(struct job *job);
	void (*clean)(struct job *job);
};

/**
 * struct job_opts - what a job-starting command says
 * @id: job id (QEMU: job-id, default the device's name); unique among live jobs
 * @speed: bytes per second, 0 for no limit
 * @auto_finalize: go from pending to concluded without job-finalize
 * @auto_dismiss: go from concluded to null without job-dismiss
 * @on_error: what a failed step does (a mirror's or backup's: when reading the source)
 * @on_target_error: what a failed write to a mirror's or backup's target does (other jobs:
 *                   the same as @on_error)
 */
struct job_opts {
	const char *id;
	uint64_t speed;
	bool auto_finalize;
	bool auto_dismiss;
	enum job_on_error on_error;
	enum job_on_error on_target_error;
};

/*
 * The manager: one per process. @emit receives each event (name, data it takes over) on the
 * control-plane thread, from job_manager_poll(). Starts the job thread. -1 on failure.
 */
int job_manager_init(void (*emit)(void *opaque, const char *name, struct json_object *data),
		     void *opaque, struct error **errp);
/* Cancels every job, waits for the job thread, finishes them (abort, clean) and stops it. */
void job_manager_shutdown(void);
/* An eventfd: readable when job_manager_poll() has work (events, jobs to finalize). */
int job_manager_fd(void);
/* Control plane: emits queued events, finalizes and dismisses what may be, and lets a job
 * starved of CPU time step at normal priority for a while. */
void job_manager_poll(void);
/* How long the control plane may wait before calling job_manager_poll() again even with its fd
 * quiet (the starvation watch while jobs run): milliseconds, or -1 for no limit. */
int job_manager_timeout_ms(void);

/*
 * Creates a job (CREATED) with @drv and its state @opaque, and starts it (RUNNING). On
 * failure (bad or taken id) nothing is kept: @drv->clean is not called, the caller frees
 * @opaque. @nodes (NULL-terminated) are the nodes the job works on: a node already in another
 * job's list is refused.
 */
struct job *job_start(const struct job_driver *drv, void *opaque, const struct job_opts *o,
		      struct blockdev *const *nodes, struct error **errp);

/* Control plane, in prepare: was the job cancelled in READY without force? (QEMU's mirror
 * then completes without pivoting.) */
bool job_no_pivot(struct job *job);
/* The driver's state of @job. */
void *job_opaque(struct job *job);
const char *job_id(const struct job *job);
/* Step side: progress so far (@current of @total bytes); @copied bytes count for the speed. */
void job_progress(struct job *job, uint64_t current, uint64_t total, uint64_t copied);
/* Bytes a step should work on: the chunk, or less under a low speed. */
uint64_t job_step_bytes(struct job *job);
/* The same for a job whose steps may be larger when it runs at full speed: @max then. */
uint64_t job_step_bytes_up_to(struct job *job, uint64_t max);
/* A job's @n copy buffers (BLOCKDEV_COPY_CHUNK bytes each) in @bufs, allocated on first use
 * and kept from step to step (blockdev_copy's .bufs); NULL if one cannot be allocated (the copy
 * then allocates its own). The job frees them (job_chunk_bufs_free). */
uint8_t *const *job_chunk_bufs(uint8_t **bufs, unsigned int n);
void job_chunk_bufs_free(uint8_t **bufs, unsigned int n);
/* Step side: the step fails with @ret (returned) and @msg as the job's error (default:
 * strerror). */
int job_step_fail(struct job *job, int ret, const char *msg);
/* Is @job a block job (see struct job_driver, @plain)? */
bool job_is_block_job(const struct job *job);
/* Step side: I/O of the step failed with @ret, reading (@read: the source policy, on-error or
 * on-source-error) or writing (on-target-error); reports BLOCK_JOB_ERROR and says what to do
 * (REPORT, IGNORE or STOP: ENOSPC is resolved to one of them). */
enum job_on_error job_io_error(struct job *job, int ret, bool read);

/* The live job called @id, or NULL. */
struct job *job_find(const char *id);
/* Is @bs in the node list of a live job? */
bool job_uses_node(const struct blockdev *bs);

/* QMP verbs. Each refuses, with QEMU's message, a state that does not take it. */
int job_pause(struct job *job, struct error **errp);
int job_resume(struct job *job, struct error **errp);
int job_cancel(struct job *job, bool force, struct error **errp);
int job_complete(struct job *job, struct error **errp);
int job_finalize(struct job *job, struct error **errp);
int job_dismiss(struct job *job, struct error **errp);
int job_set_speed(struct job *job, uint64_t speed, struct error **errp);

/* query-jobs: QEMU's JobInfo list; query-block-jobs: its BlockJobInfo list. */
struct json_object *job_query_jobs(void);
struct json_object *job_query_block_jobs(void);

const char *job_status_name(enum job_status s);
enum job_status job_status(struct job *job);

#endif
