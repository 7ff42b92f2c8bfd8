/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job manager and the job thread (job.h has the states, the threads and who owns what).
 *
 * Everything below is guarded by m.lock, except a job's driver state while its step runs
 * (j->busy). The job thread waits on m.cond (new work, a request, a speed wait ending); the
 * control plane waits on m.idle for a step to end. Events are queued under the lock, in the
 * order the transitions happen, and handed to the program's emit callback by
 * job_manager_poll() on the control-plane thread; m.efd wakes that thread.
 */
#include "blockdev/job.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/copy.h"
#include "blockdev/job_yield.h"
#include "common/token_bucket.h"
#include "common/util.h"
#include "seccomp/thread.h"

#define JOB_ID_MAX 128
#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13
#define IOPRIO_WHO_PROCESS 1
#define JOB_WAIT_NS 10000000ULL /* 10 ms: how soon a job with nothing to do looks again */
#define JOB_STARVE_NS 1000000000ULL /* a job that could step and did not for 1 s is starving */
#define JOB_BOOST_NS 50000000ULL    /* then it steps at normal priority for 50 ms */
#define JOB_WATCH_MS 500            /* how often the control plane looks (job_manager_poll) */

struct job {
	char id[JOB_ID_MAX];
	const struct job_driver *drv;
	void *opaque;
	struct blockdev **nodes;
	size_t nr_nodes;
	/* m.lock */
	enum job_status status;
	uint64_t current, total, speed;
	unsigned int pause_count; /* job-pause (one) and on-error=stop */
	bool user_paused;
	bool cancelled;
	bool complete_req;
	bool busy;                /* in a step, without the lock */
	bool no_pivot;            /* cancelled in READY without force: complete, keep the source */
	uint64_t not_before;      /* JOB_STEP_WAIT, or nothing to do in READY: when to step again */
	bool auto_finalize, auto_dismiss;
	enum job_on_error on_error, on_target_error;
	int ret;                  /* the first error, or -ECANCELED */
	char error[256];
	struct token_bucket tb;
	uint64_t copied;          /* bytes of the current step, for the speed */
	struct job_yield_progress yield; /* the job thread's: does it keep up while yielding? */
	struct job *next;
};

struct event {
	char *name;
	struct json_object *data;
	struct event *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond, idle;
	pthread_t thread;
	pid_t tid;          /* the job thread's, for the boost */
	bool thread_started, stopping;
	uint64_t last_step_ns; /* when the job thread last ended a step (or started) */
	bool boosted;       /* given normal priority against starvation... */
	uint64_t boost_end; /* ...until then */
	struct job_yield yield; /* the job thread's look at the frontends' requests (job_yield.h) */
	bool yielding;      /* ...which found them busy: steps are small and spaced out */
	int efd;
	struct job *jobs;
	struct job *cursor; /* the job after which the thread looks first (round robin) */
	struct event *ev_head, **ev_tail;
	void (*emit)(void *opaque, const char *name, struct json_object *data);
	void *emit_opaque;
} m = { .lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1 };

static const char *const status_names[JOB_STATUS_NR] = {
	"undefined", "created", "running", "paused", "ready", "standby", "waiting", "pending",
	"aborting", "concluded", "null",
};

/* QEMU's transition table: may a job go from [row] to [column]? U C R P Y S W D X E N */
static const bool allowed[JOB_STATUS_NR][JOB_STATUS_NR] = {
	[JOB_STATUS_UNDEFINED] = { 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	[JOB_STATUS_CREATED]   = { 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1 },
	[JOB_STATUS_RUNNING]   = { 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0 },
	[JOB_STATUS_PAUSED]    = { 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
	[JOB_STATUS_READY]     = { 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0 },
	[JOB_STATUS_STANDBY]   = { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 },
	[JOB_STATUS_WAITING]   = { 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0 },
	[JOB_STATUS_PENDING]   = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0 },
	[JOB_STATUS_ABORTING]  = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0 },
	[JOB_STATUS_CONCLUDED] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
	[JOB_STATUS_NULL]      = { 0 },
};

enum verb { V_CANCEL, V_PAUSE, V_RESUME, V_SET_SPEED, V_COMPLETE, V_FINALIZE, V_DISMISS, V_NR };
static const char *const verb_names[V_NR] = {
	"cancel", "pause", "resume", "set-speed", "complete", "finalize", "dismiss",
};
/* QEMU's verb table: which states take which verb. U C R P Y S W D X E N */
static const bool takes[V_NR][JOB_STATUS_NR] = {
	[V_CANCEL]    = { 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0 },
	[V_PAUSE]     = { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
	[V_RESUME]    = { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
	[V_SET_SPEED] = { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
	[V_COMPLETE]  = { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 },
	[V_FINALIZE]  = { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 },
	[V_DISMISS]   = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 },
};

const char *job_status_name(enum job_status s)
{
	return s < JOB_STATUS_NR ? status_names[s] : "undefined";
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void notify(void)
{
	uint64_t one = 1;

	if (m.efd >= 0 && write(m.efd, &one, sizeof(one)) < 0)
		return; /* the counter is full: the control plane has been woken already */
}

/* Queues an event (lock held); takes @data. */
static void queue_event(const char *name, struct json_object *data)
{
	struct event *e = calloc(1, sizeof(*e));

	if (!e || !(e->name = strdup(name))) {
		free(e);
		json_object_put(data);
		return;
	}
	e->data = data;
	*m.ev_tail = e;
	m.ev_tail = &e->next;
	notify();
}

static void set_status(struct job *j, enum job_status s)
{
	struct json_object *d;

	if (!allowed[j->status][s])
		fprintf(stderr, "vireo: job '%s': %s -> %s is not a job transition\n", j->id,
			status_names[j->status], status_names[s]);
	j->status = s;
	d = json_object_new_object();
	json_object_object_add(d, "id", json_object_new_string(j->id));
	json_object_object_add(d, "status", json_object_new_string(status_names[s]));
	queue_event("JOB_STATUS_CHANGE", d);
}

/* The data of BLOCK_JOB_READY / COMPLETED / CANCELLED (lock held). */
static struct json_object *block_job_data(const struct job *j)
{
	struct json_object *d = json_object_new_object();

	json_object_object_add(d, "type", json_object_new_string(j->drv->type));
	json_object_object_add(d, "device", json_object_new_string(j->id));
	json_object_object_add(d, "len", json_object_new_int64((int64_t)j->total));
	json_object_object_add(d, "offset", json_object_new_int64((int64_t)j->current));
	json_object_object_add(d, "speed", json_object_new_int64((int64_t)j->speed));
	return d;
}

static void set_error(struct job *j, int ret, const char *msg)
{
	if (j->ret)
		return;
	j->ret = ret;
	snprintf(j->error, sizeof(j->error), "%s", msg ? msg : strerror(-ret));
}

/* The job failed or was cancelled: the control plane aborts it (lock held). */
static void to_aborting(struct job *j, int ret)
{
	set_error(j, ret, NULL);
	set_status(j, JOB_STATUS_ABORTING);
	pthread_cond_broadcast(&m.cond);
	/* job_manager_shutdown() waits on m.idle for every job to leave the moving states: a job
	 * the job thread aborts between steps (cancelled while READY or waiting) ends no step */
	pthread_cond_broadcast(&m.idle);
}

/* ---- the job thread ------------------------------------------------------------------------ */

static void lower_priority(void)
{
	struct sched_param sp = { 0 };

	m.tid = (pid_t)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), "job");
	/* best effort: a job at normal priority is slower to yield, not wrong */
	if (sched_setscheduler(0, SCHED_IDLE, &sp) < 0)
		fprintf(stderr, "vireo: job thread: SCHED_IDLE: %s\n", strerror(errno));
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0,
		    IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT) < 0)
		fprintf(stderr, "vireo: job thread: idle I/O priority: %s\n", strerror(errno));
}

/*
 * Applies what was asked of @j between steps; returns true when it should step now, else
 * lowers *wake to when it may (lock held).
 */
static bool ready_to_step(struct job *j, uint64_t now, uint64_t *wake)
{
	uint64_t wait;

	if (j->status == JOB_STATUS_PAUSED || j->status == JOB_STATUS_STANDBY) {
		if (j->pause_count && !j->cancelled)
			return false;
		set_status(j, j->status == JOB_STATUS_PAUSED ? JOB_STATUS_RUNNING :
							       JOB_STATUS_READY);
	}
	if (j->status != JOB_STATUS_RUNNING && j->status != JOB_STATUS_READY)
		return false;
	if (j->cancelled) {
		to_aborting(j, -ECANCELED);
		return false;
	}
	if (j->pause_count) {
		set_status(j, j->status == JOB_STATUS_RUNNING ? JOB_STATUS_PAUSED :
								JOB_STATUS_STANDBY);
		return false;
	}
	if (j->status == JOB_STATUS_READY && j->complete_req) {
		set_status(j, JOB_STATUS_WAITING);
		return false;
	}
	if (now < j->not_before) {
		*wake = MIN(*wake, j->not_before);
		return false;
	}
	wait = token_bucket_wait_ns(&j->tb, now);
	if (wait) {
		*wake = MIN(*wake, now + wait);
		return false;
	}
	return true;
}

/* The next job to step, round robin after m.cursor (lock held). */
static struct job *pick(uint64_t now, uint64_t *wake)
{
	struct job *start = m.cursor && m.cursor->next ? m.cursor->next : m.jobs;

	for (struct job *j = start; j; j = j->next)
		if (ready_to_step(j, now, wake))
			return m.cursor = j;
	for (struct job *j = m.jobs; j && j != start; j = j->next)
		if (ready_to_step(j, now, wake))
			return m.cursor = j;
	return NULL;
}

/* What a step's result does to its job (lock held). */
static void after_step(struct job *j, int r)
{
	uint64_t now = now_ns();

	token_bucket_take(&j->tb, j->copied, now);
	j->copied = 0;
	if (r == JOB_STEP_MORE)
		return;
	if (r == JOB_STEP_WAIT) {
		j->not_before = now + JOB_WAIT_NS;
		return;
	}
	if (r < 0 || j->ret) { /* failed now, or at its end after ignored errors */
		to_aborting(j, r < 0 ? r : j->ret);
		return;
	}
	if (!j->drv->needs_complete) {
		set_status(j, JOB_STATUS_WAITING);
		return;
	}
	/* in sync: READY, and the job keeps following the writes that come */
	j->not_before = now + JOB_WAIT_NS;
	if (j->status == JOB_STATUS_RUNNING) {
		set_status(j, JOB_STATUS_READY);
		queue_event("BLOCK_JOB_READY", block_job_data(j));
	}
}

static void *job_thread(void *arg)
{
	lower_priority();
	pthread_mutex_lock(&m.lock);
	while (!m.stopping) {
		uint64_t wake = UINT64_MAX;
		struct job *j = pick(now_ns(), &wake);
		uint64_t step_start;
		int r;

		if (!j) {
			if (wake == UINT64_MAX) {
				pthread_cond_wait(&m.cond, &m.lock);
			} else {
				struct timespec ts = { (time_t)(wake / 1000000000ull),
						       (long)(wake % 1000000000ull) };

				pthread_cond_timedwait(&m.cond, &m.lock, &ts);
			}
			continue;
		}
		j->busy = true;
		step_start = now_ns();
		/* a job with a speed goes at it, one without takes what the guests leave, as
		 * long as it keeps up (job_yield.h) */
		m.yielding = job_yield_active(&m.yield, blockdev_frontend_requests(), step_start) &&
			     !j->speed &&
			     job_yield_keeps_up(&j->yield, j->total - MIN(j->current, j->total),
						step_start);
		pthread_mutex_unlock(&m.lock);
		r = j->drv->step(j);
		pthread_mutex_lock(&m.lock);
		j->busy = false;
		after_step(j, r);
		if (m.yielding)
			j->not_before = MAX(j->not_before,
					    now_ns() + job_yield_wait_ns(now_ns() - step_start));
		m.last_step_ns = now_ns();
		if (m.boosted && m.last_step_ns >= m.boost_end) { /* its time is up: idle again */
			struct sched_param sp = { 0 };

			sched_setscheduler(0, SCHED_IDLE, &sp);
			m.boosted = false;
		}
		pthread_cond_broadcast(&m.idle);
	}
	pthread_mutex_unlock(&m.lock);
	return arg;
}

static int start_thread(struct error **errp)
{
	pthread_condattr_t ca;
	int ret;

	if (m.thread_started)
		return 0;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m.cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&m.idle, NULL);
	m.stopping = false;
	ret = sandbox_thread_spawn(&m.thread, SANDBOX_ROLE_JOB, "job", NULL, job_thread, NULL,
				   errp);
	if (ret < 0) {
		error_prepend(errp, "the job thread");
		pthread_cond_destroy(&m.cond);
		pthread_cond_destroy(&m.idle);
		return -1;
	}
	m.thread_started = true;
	m.last_step_ns = now_ns();
	return 0;
}

/* A job's bucket holds a tenth of a second at its speed (as QEMU's), at least a chunk: with a
 * chunk only, a step and a late wake-up that took longer than a chunk's time at high speed lost
 * that time (100 MiB/s ran 12 % slow). */
static uint64_t speed_burst(uint64_t speed)
{
	return MAX(BLOCKDEV_COPY_CHUNK, speed / 10);
}

/* ---- the step side ------------------------------------------------------------------------- */

void *job_opaque(struct job *job)
{
	return job->opaque;
}

const char *job_id(const struct job *job)
{
	return job->id;
}

void job_progress(struct job *job, uint64_t current, uint64_t total, uint64_t copied)
{
	pthread_mutex_lock(&m.lock);
	job->current = current;
	job->total = total;
	job->copied += copied;
	pthread_mutex_unlock(&m.lock);
}

uint64_t job_step_bytes_up_to(struct job *job, uint64_t max)
{
	uint64_t speed;

	pthread_mutex_lock(&m.lock);
	speed = job->speed;
	if (m.yielding) /* frontends are busy: a small step (job_yield.h) */
		max = MIN(max, JOB_YIELD_BYTES);
	pthread_mutex_unlock(&m.lock);
	/* a tenth of a second's worth under a speed, so the pace is even, in 64 KiB units */
	if (!speed)
		return max;
	return MIN(max, MIN(BLOCKDEV_COPY_CHUNK, MAX(speed / 10, 65536) / 65536 * 65536));
}

uint64_t job_step_bytes(struct job *job)
{
	return job_step_bytes_up_to(job, BLOCKDEV_COPY_CHUNK);
}

int job_step_fail(struct job *job, int ret, const char *msg)
{
	pthread_mutex_lock(&m.lock);
	set_error(job, ret, msg);
	pthread_mutex_unlock(&m.lock);
	return ret;
}

bool job_is_block_job(const struct job *job)
{
	return !job->drv->plain;
}

uint8_t *const *job_chunk_bufs(uint8_t **bufs, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (!bufs[i] && posix_memalign((void **)&bufs[i], 4096, BLOCKDEV_COPY_CHUNK)) {
			bufs[i] = NULL;
			return NULL;
		}
	return bufs;
}

void job_chunk_bufs_free(uint8_t **bufs, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		free(bufs[i]);
		bufs[i] = NULL;
	}
}

enum job_on_error job_io_error(struct job *job, int ret, bool read)
{
	static const char *const actions[] = { "report", "ignore", "stop" };
	struct json_object *d = json_object_new_object();
	enum job_on_error a;

	pthread_mutex_lock(&m.lock);
	a = read ? job->on_error : job->on_target_error;
	if (a == JOB_ON_ERROR_ENOSPC)
		a = ret == -ENOSPC ? JOB_ON_ERROR_STOP : JOB_ON_ERROR_REPORT;
	json_object_object_add(d, "device", json_object_new_string(job->id));
	json_object_object_add(d, "operation", json_object_new_string(read ? "read" : "write"));
	json_object_object_add(d, "action", json_object_new_string(actions[a]));
	queue_event("BLOCK_JOB_ERROR", d);
	if (a == JOB_ON_ERROR_IGNORE)
		set_error(job, ret, NULL);
	if (a == JOB_ON_ERROR_STOP)
		job->pause_count++; /* job-resume takes it back */
	pthread_mutex_unlock(&m.lock);
	return a;
}

/* ---- the control plane --------------------------------------------------------------------- */

int job_manager_init(void (*emit)(void *opaque, const char *name, struct json_object *data),
		     void *opaque, struct error **errp)
{
	m.emit = emit;
	m.emit_opaque = opaque;
	m.ev_tail = &m.ev_head;
	m.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m.efd < 0) {
		error_setg_errno(errp, errno, "job manager: eventfd");
		return -1;
	}
	return 0;
}

int job_manager_fd(void)
{
	return m.efd;
}

static bool node_in_job(const struct blockdev *bs)
{
	for (struct job *j = m.jobs; j; j = j->next)
		for (size_t i = 0; i < j->nr_nodes; i++)
			if (j->nodes[i] == bs)
				return true;
	return false;
}

bool job_uses_node(const struct blockdev *bs)
{
	bool used;

	pthread_mutex_lock(&m.lock);
	used = node_in_job(bs);
	pthread_mutex_unlock(&m.lock);
	return used;
}

static struct job *find_locked(const char *id)
{
	for (struct job *j = m.jobs; j; j = j->next)
		if (!strcmp(j->id, id))
			return j;
	return NULL;
}

struct job *job_find(const char *id)
{
	struct job *j;

	pthread_mutex_lock(&m.lock);
	j = find_locked(id);
	pthread_mutex_unlock(&m.lock);
	return j;
}

struct job *job_start(const struct job_driver *drv, void *opaque, const struct job_opts *o,
		      struct blockdev *const *nodes, struct error **errp)
{
	struct job *j;
	size_t n = 0;

	if (m.efd < 0) {
		error_setg(errp, "jobs are not available (no job manager)");
		return NULL;
	}
	if (!o->id || !o->id[0] || strlen(o->id) >= JOB_ID_MAX) {
		error_setg(errp, "job-id: '%s' is not a job id (1 to %d bytes)", o->id ? o->id : "",
			   JOB_ID_MAX - 1);
		return NULL;
	}
	while (nodes && nodes[n])
		n++;
	j = calloc(1, sizeof(*j));
	if (!j || (n && !(j->nodes = calloc(n, sizeof(*j->nodes))))) {
		free(j);
		error_setg(errp, "out of memory");
		return NULL;
	}
	snprintf(j->id, sizeof(j->id), "%s", o->id);
	if (n)
		memcpy(j->nodes, nodes, n * sizeof(*nodes));
	j->nr_nodes = n;
	j->drv = drv;
	j->opaque = opaque;
	j->speed = o->speed;
	j->auto_finalize = o->auto_finalize;
	j->auto_dismiss = o->auto_dismiss;
	j->on_error = o->on_error;
	j->on_target_error = o->on_target_error;
	token_bucket_init(&j->tb, o->speed, speed_burst(o->speed), now_ns());
	pthread_mutex_lock(&m.lock);
	if (find_locked(j->id)) {
		pthread_mutex_unlock(&m.lock);
		error_setg(errp, "Job ID '%s' already in use", j->id);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (node_in_job(nodes[i])) {
			pthread_mutex_unlock(&m.lock);
			error_setg(errp, "Node '%s' is busy: block device is in use by a block job",
				   nodes[i]->node_name);
			goto fail;
		}
	}
	if (start_thread(errp)) {
		pthread_mutex_unlock(&m.lock);
		goto fail;
	}
	j->next = m.jobs;
	m.jobs = j;
	set_status(j, JOB_STATUS_CREATED);
	set_status(j, JOB_STATUS_RUNNING);
	pthread_cond_broadcast(&m.cond);
	pthread_mutex_unlock(&m.lock);
	return j;
fail:
	free(j->nodes);
	free(j);
	return NULL;
}

static int verb_check(const struct job *j, enum verb v, struct error **errp)
{
	if (takes[v][j->status])
		return 0;
	error_setg(errp, "Job '%s' in state '%s' cannot accept command verb '%s'", j->id,
		   status_names[j->status], verb_names[v]);
	return -1;
}

int job_pause(struct job *j, struct error **errp)
{
	int ret = -1;

	pthread_mutex_lock(&m.lock);
	if (verb_check(j, V_PAUSE, errp) == 0) {
		if (j->user_paused) {
			error_setg(errp, "Job '%s' is already paused", j->id);
		} else {
			j->user_paused = true;
			j->pause_count++;
			pthread_cond_broadcast(&m.cond);
			ret = 0;
		}
	}
	pthread_mutex_unlock(&m.lock);
	return ret;
}

int job_resume(struct job *j, struct error **errp)
{
	int ret = -1;

	pthread_mutex_lock(&m.lock);
	if (verb_check(j, V_RESUME, errp) == 0) {
		if (!j->user_paused && !j->pause_count) {
			error_setg(errp, "Can't resume a job that was not paused");
		} else {
			/* job-pause's, and the one an on-error=stop took */
			j->pause_count = 0;
			j->user_paused = false;
			pthread_cond_broadcast(&m.cond);
			ret = 0;
		}
	}
	pthread_mutex_unlock(&m.lock);
	return ret;
}

int job_set_speed(struct job *j, uint64_t speed, struct error **errp)
{
	int ret = -1;

	pthread_mutex_lock(&m.lock);
	if (verb_check(j, V_SET_SPEED, errp) == 0) {
		j->speed = speed;
		token_bucket_set_rate(&j->tb, speed, speed_burst(speed), now_ns());
		pthread_cond_broadcast(&m.cond);
		ret = 0;
	}
	pthread_mutex_unlock(&m.lock);
	return ret;
}

int job_complete(struct job *j, struct error **errp)
{
	int ret = -1;

	pthread_mutex_lock(&m.lock);
	if (verb_check(j, V_COMPLETE, errp) == 0) {
		if (j->pause_count || j->cancelled || !j->drv->needs_complete) {
			error_setg(errp, "The active block job '%s' cannot be completed", j->id);
		} else {
			j->complete_req = true;
			pthread_cond_broadcast(&m.cond);
			ret = 0;
		}
	}
	pthread_mutex_unlock(&m.lock);
	return ret;
}

int job_cancel(struct job *j, bool force, struct error **errp)
{
	int ret = -1;

	pthread_mutex_lock(&m.lock);
	if (verb_check(j, V_CANCEL, errp) < 0)
		goto out;
	ret = 0;
	if (!force && j->drv->needs_complete &&
	    (j->status == JOB_STATUS_READY || j->status == JOB_STATUS_STANDBY)) {
		/* QEMU's block-job-cancel of a job in sync: it completes, but does not pivot */
		j->no_pivot = true;
		j->complete_req = true;
		j->pause_count = 0;
		j->user_paused = false;
	} else {
		j->cancelled = true;
		/* the thread aborts a stepping job; the control plane one that is not stepped */
		if (j->status == JOB_STATUS_WAITING || j->status == JOB_STATUS_PENDING ||
		    j->status == JOB_STATUS_CREATED)
			to_aborting(j, -ECANCELED);
		notify();
	}
	pthread_cond_broadcast(&m.cond);
out:
	pthread_mutex_unlock(&m.lock);
	return ret;
}

bool job_no_pivot(struct job *j)
{
	bool v;

	pthread_mutex_lock(&m.lock);
	v = j->no_pivot;
	pthread_mutex_unlock(&m.lock);
	return v;
}

static void unlink_job(struct job *j)
{
	for (struct job **p = &m.jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	if (m.cursor == j)
		m.cursor = NULL;
}

/* CONCLUDED -> NULL, and the job is gone (lock held). */
static void dismiss_locked(struct job *j)
{
	set_status(j, JOB_STATUS_NULL);
	unlink_job(j);
	free(j->nodes);
	free(j);
}

/*
 * The end of a job on the control plane (lock held, dropped around the driver's calls): a
 * pending job's prepare, or an aborting one's abort, then the event, CONCLUDED, clean, and
 * NULL when it dismisses itself.
 */
static void conclude(struct job *j)
{
	struct error *err = NULL;

	if (j->status == JOB_STATUS_PENDING) {
		int r = 0;

		if (j->drv->prepare) {
			pthread_mutex_unlock(&m.lock);
			r = j->drv->prepare(j, &err);
			pthread_mutex_lock(&m.lock);
		}
		if (r) {
			set_error(j, -EIO, error_msg(err));
			error_free(err);
			set_status(j, JOB_STATUS_ABORTING);
		}
	}
	if (j->status == JOB_STATUS_ABORTING && j->drv->abort) {
		pthread_mutex_unlock(&m.lock);
		j->drv->abort(j);
		pthread_mutex_lock(&m.lock);
	}
	if (j->drv->plain) {
		/* a plain job's end shows in its status (and query-jobs' error) only */
	} else if (j->ret == -ECANCELED && j->cancelled) {
		queue_event("BLOCK_JOB_CANCELLED", block_job_data(j));
	} else {
		struct json_object *d = block_job_data(j);

		if (j->ret)
			json_object_object_add(d, "error", json_object_new_string(j->error));
		queue_event("BLOCK_JOB_COMPLETED", d);
	}
	set_status(j, JOB_STATUS_CONCLUDED);
	if (j->drv->clean) {
		pthread_mutex_unlock(&m.lock);
		j->drv->clean(j);
		pthread_mutex_lock(&m.lock);
	}
	j->opaque = NULL;
	j->nr_nodes = 0; /* its nodes are free for another job */
	if (j->auto_dismiss)
		dismiss_locked(j);
}

int job_finalize(struct job *j, struct error **errp)
{
	int ret = -1;

	pthread_mutex_lock(&m.lock);
	if (verb_check(j, V_FINALIZE, errp) == 0) {
		conclude(j);
		ret = 0;
	}
	pthread_mutex_unlock(&m.lock);
	return ret;
}

int job_dismiss(struct job *j, struct error **errp)
{
	int ret = -1;

	pthread_mutex_lock(&m.lock);
	if (verb_check(j, V_DISMISS, errp) == 0) {
		dismiss_locked(j);
		ret = 0;
	}
	pthread_mutex_unlock(&m.lock);
	return ret;
}

/* Runs what the control plane owes the jobs (lock held); true when it did something. */
static bool advance_one(void)
{
	for (struct job *j = m.jobs; j; j = j->next) {
		if (j->status == JOB_STATUS_WAITING) {
			set_status(j, JOB_STATUS_PENDING);
			if (j->auto_finalize)
				conclude(j);
			return true;
		}
		if (j->status == JOB_STATUS_ABORTING && !j->busy) {
			conclude(j);
			return true;
		}
	}
	return false;
}

/*
 * Jobs run on the CPU time guests leave (SCHED_IDLE), which on a host whose cores are all busy
 * is none: a job that could step and has not for JOB_STARVE_NS steps at normal priority for
 * JOB_BOOST_NS, so it goes on at a twentieth of its pace instead of never (lock held).
 */
static void watch_starvation(void)
{
	struct sched_param sp = { 0 };
	uint64_t now = now_ns();
	bool wants = false;

	if (!m.thread_started || m.boosted || now - m.last_step_ns < JOB_STARVE_NS)
		return;
	for (struct job *j = m.jobs; j && !wants; j = j->next)
		wants = !j->busy && !j->pause_count && now >= j->not_before &&
			(j->status == JOB_STATUS_RUNNING || j->status == JOB_STATUS_READY) &&
			!token_bucket_wait_ns(&j->tb, now);
	if (wants && sched_setscheduler(m.tid, SCHED_OTHER, &sp) == 0) {
		m.boosted = true;
		m.boost_end = now + JOB_BOOST_NS;
	}
}

int job_manager_timeout_ms(void)
{
	int ms = -1;

	pthread_mutex_lock(&m.lock);
	for (struct job *j = m.jobs; j && ms < 0; j = j->next)
		if (j->status == JOB_STATUS_RUNNING || j->status == JOB_STATUS_READY)
			ms = JOB_WATCH_MS;
	pthread_mutex_unlock(&m.lock);
	return ms;
}

void job_manager_poll(void)
{
	struct event *e;
	uint64_t v;

	if (m.efd < 0)
		return;
	if (read(m.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&m.lock);
	watch_starvation();
	while (advance_one())
		;
	e = m.ev_head;
	m.ev_head = NULL;
	m.ev_tail = &m.ev_head;
	pthread_mutex_unlock(&m.lock);
	while (e) {
		struct event *next = e->next;

		if (m.emit)
			m.emit(m.emit_opaque, e->name, e->data);
		else
			json_object_put(e->data);
		free(e->name);
		free(e);
		e = next;
	}
}

void job_manager_shutdown(void)
{
	pthread_mutex_lock(&m.lock);
	for (struct job *j = m.jobs; j; j = j->next) {
		j->cancelled = true;
		j->auto_dismiss = true;
		if (j->status == JOB_STATUS_WAITING || j->status == JOB_STATUS_PENDING)
			to_aborting(j, -ECANCELED);
	}
	pthread_cond_broadcast(&m.cond);
	/* every stepping job reaches ABORTING at its next pick; wait for that */
	for (;;) {
		bool moving = false;

		for (struct job *j = m.jobs; j; j = j->next)
			moving |= j->busy || j->status == JOB_STATUS_RUNNING ||
				   j->status == JOB_STATUS_READY || j->status == JOB_STATUS_PAUSED ||
				   j->status == JOB_STATUS_STANDBY;
		if (!moving || !m.thread_started)
			break;
		pthread_cond_wait(&m.idle, &m.lock);
	}
	m.stopping = true;
	pthread_cond_broadcast(&m.cond);
	pthread_mutex_unlock(&m.lock);
	if (m.thread_started) {
		pthread_join(m.thread, NULL);
		m.thread_started = false;
		pthread_cond_destroy(&m.cond);
		pthread_cond_destroy(&m.idle);
	}
	pthread_mutex_lock(&m.lock);
	while (m.jobs) {
		struct job *j = m.jobs;

		if (j->status == JOB_STATUS_CONCLUDED)
			dismiss_locked(j);
		else
			conclude(j); /* ABORTING: abort, clean, dismiss */
	}
	pthread_mutex_unlock(&m.lock);
	m.emit = NULL;
	job_manager_poll(); /* frees the queued events */
	pthread_mutex_lock(&m.lock);
	if (m.efd >= 0)
		close(m.efd);
	m.efd = -1;
	pthread_mutex_unlock(&m.lock);
}

/* ---- queries ------------------------------------------------------------------------------- */

enum job_status job_status(struct job *job)
{
	enum job_status s;

	pthread_mutex_lock(&m.lock);
	s = job->status;
	pthread_mutex_unlock(&m.lock);
	return s;
}

struct json_object *job_query_jobs(void)
{
	struct json_object *a = json_object_new_array();

	pthread_mutex_lock(&m.lock);
	for (struct job *j = m.jobs; j; j = j->next) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_string(j->id));
		json_object_object_add(o, "type", json_object_new_string(j->drv->type));
		json_object_object_add(o, "status", json_object_new_string(status_names[j->status]));
		json_object_object_add(o, "current-progress",
				       json_object_new_int64((int64_t)j->current));
		json_object_object_add(o, "total-progress", json_object_new_int64((int64_t)j->total));
		if (j->ret)
			json_object_object_add(o, "error", json_object_new_string(j->error));
		json_object_array_add(a, o);
	}
	pthread_mutex_unlock(&m.lock);
	return a;
}

struct json_object *job_query_block_jobs(void)
{
	struct json_object *a = json_object_new_array();

	pthread_mutex_lock(&m.lock);
	for (struct job *j = m.jobs; j; j = j->next) {
		struct json_object *o;

		if (j->drv->plain)
			continue;
		o = block_job_data(j);

		json_object_object_add(o, "busy", json_object_new_boolean(j->busy));
		json_object_object_add(o, "paused", json_object_new_boolean(j->pause_count > 0));
		json_object_object_add(o, "io-status", json_object_new_string("ok"));
		json_object_object_add(o, "ready", json_object_new_boolean(
			j->status == JOB_STATUS_READY || j->status == JOB_STATUS_STANDBY));
		json_object_object_add(o, "status", json_object_new_string(status_names[j->status]));
		json_object_object_add(o, "auto-finalize", json_object_new_boolean(j->auto_finalize));
		json_object_object_add(o, "auto-dismiss", json_object_new_boolean(j->auto_dismiss));
		if (j->ret)
			json_object_object_add(o, "error", json_object_new_string(j->error));
		json_object_array_add(a, o);
	}
	pthread_mutex_unlock(&m.lock);
	return a;
}
