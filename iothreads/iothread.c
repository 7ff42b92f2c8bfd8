/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The iothread event loop. The protocol (who owns what, the loop's steps, adaptive polling) is
 * described in iothread.h; this file adds the details of the message queue:
 *
 * Posters (any thread) append to msg_head/msg_tail under msg_lock, set msg_pending, and write the
 * eventfd when the list was empty. The iothread reads msg_pending (an atomic load, no lock) every
 * turn and takes the whole list under msg_lock only when it is set. A READ on the eventfd is
 * kept armed in the ring while the thread sleeps, so a post always wakes it: if the write comes
 * before the READ is armed, the eventfd counter is non-zero and the READ completes at once.
 *
 * A message may wait inside itself (a drain's iothread_wait_once, waiting for requests whose
 * completions come back as messages from the slow-path worker). So the messages a turn took
 * but has not run yet stay on the thread (msg_run, oldest first), not in a local list: the
 * nested wait runs them, and then what was posted since. Only the thread touches msg_run.
 */
#include "iothreads/iothread.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/affinity.h"
#include "common/util.h"
#include "seccomp/thread.h"

#define IOTHREAD_RING_DEFAULT 256

struct iothread_msg {
	void (*fn)(void *arg);
	void *arg;
	struct iothread_msg *next;
};

struct iothread_file {
	int fd;
	unsigned int refs;
};

struct iothread {
	char name[16];
	pthread_t thread;
	pid_t tid; /* the thread's id, set in its set-up (iothread_create waits for it) */
	struct iothread_opts opts;
	struct io_uring ring;
	_Atomic uint64_t poll_ns; /* current busy-poll window; written by the thread, relaxed */
	uint64_t poll_off_until;  /* CLOCK_MONOTONIC ns: the core was contended, do not poll before */
	unsigned int io_inflight; /* engine SQEs (iothread_get_sqe) not yet reaped */
	unsigned int io_elsewhere; /* I/O off the ring: iothread_io_begin minus iothread_io_end */
	uint64_t turn_ns;         /* CLOCK_MONOTONIC of this turn's phase (iothread_turn_ns) */
	int spin_credit;          /* pre-sleep spins: see iothread_spin_credit() */
	unsigned int spin_skips;  /* sleeps without a spin since the credit ran out */
	atomic_bool stop; /* relaxed: only ends the loop; the message or join orders the rest */

	/* message queue (see the essay above) */
	pthread_mutex_t msg_lock;
	struct iothread_msg *msg_head, *msg_tail;
	struct iothread_msg *msg_run; /* taken from the queue, not run yet (thread only) */
	atomic_bool msg_pending;
	int msg_fd;
	uint64_t msg_buf;
	bool msg_armed;
	struct iothread_op msg_op;

	struct iothread_source *sources;
	struct iothread_op *deferred, **deferred_tail;
	struct iothread_timer *timers; /* armed, sorted by deadline (see "Timers" in iothread.h) */

	/* the ring's fixed file table: slot i holds files[i].fd while files[i].refs > 0 */
	struct iothread_file *files;
	unsigned int files_cap;
	int msg_index; /* msg_fd's slot */

	struct iovec bufs[IOTHREAD_MAX_MEM_REGIONS]; /* registered fixed buffers */
	int nr_bufs;
};

static __thread struct iothread *current_it;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t iothread_poll_ns(const struct iothread *it)
{
	return atomic_load_explicit(&it->poll_ns, memory_order_relaxed);
}

struct iothread *iothread_current(void)
{
	return current_it;
}

bool iothread_is_current(const struct iothread *it)
{
	return current_it == it;
}

uint64_t iothread_turn_ns(const struct iothread *it)
{
	return it->turn_ns;
}

const char *iothread_name(const struct iothread *it)
{
	return it->name;
}

pid_t iothread_tid(const struct iothread *it)
{
	return it->tid;
}

const struct iothread_opts *iothread_get_opts(const struct iothread *it)
{
	return &it->opts;
}

/* ---- ring helpers ---------------------------------------------------------------------------- */

/* An SQE for the thread's own operations (kick and message READs, cancels): not counted. */
static struct io_uring_sqe *ring_get_sqe(struct iothread *it, struct iothread_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&it->ring);

	if (!sqe) {
		if (io_uring_submit(&it->ring) < 0)
			return NULL;
		sqe = io_uring_get_sqe(&it->ring);
		if (!sqe)
			return NULL;
	}
	/* liburing's prep helpers leave user_data alone, so it may be set before them */
	io_uring_sqe_set_data(sqe, op);
	if (op)
		op->counted = false;
	return sqe;
}

void iothread_io_begin(struct iothread *it)
{
	it->io_elsewhere++;
}

void iothread_io_end(struct iothread *it)
{
	it->io_elsewhere--;
}

struct io_uring_sqe *iothread_get_sqe(struct iothread *it, struct iothread_op *op)
{
	struct io_uring_sqe *sqe = ring_get_sqe(it, op);

	if (sqe && op) {
		op->counted = true;
		it->io_inflight++;
	}
	return sqe;
}

void iothread_submit(struct iothread *it)
{
	if (io_uring_sq_ready(&it->ring))
		io_uring_submit(&it->ring);
}

unsigned int iothread_sqes_queued(struct iothread *it)
{
	return io_uring_sq_ready(&it->ring);
}

void iothread_defer(struct iothread *it, struct iothread_op *op, int res)
{
	op->res = res;
	op->next = NULL;
	*it->deferred_tail = op;
	it->deferred_tail = &op->next;
}

/*
 * The ceiling of the fixed file table: opts.max_files, and the kernel refuses a table larger
 * than RLIMIT_NOFILE (liburing raises the soft limit up to the hard one on the way).
 */
static unsigned int files_ceiling(const struct iothread *it)
{
	unsigned int max = it->opts.max_files ? it->opts.max_files : IOTHREAD_FILES_MAX;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
	    rl.rlim_max < max)
		max = (unsigned int)rl.rlim_max;
	return max;
}

/*
 * Doubles the table, up to its ceiling. The kernel has no resize: the table is unregistered and
 * registered again, bigger, with every file at its slot, so the indexes in use stay valid (SQEs
 * in flight hold references to their files, not to the table).
 */
static int files_grow(struct iothread *it)
{
	unsigned int cap = it->files_cap, max = files_ceiling(it), ncap;
	struct iothread_file *nf;
	int *fds, ret;

	if (cap >= max)
		return -EMFILE;
	ncap = MIN(cap * 2, max);
	nf = realloc(it->files, ncap * sizeof(*nf));
	if (!nf)
		return -ENOMEM;
	memset(nf + cap, 0, (ncap - cap) * sizeof(*nf));
	it->files = nf;
	fds = malloc(ncap * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	for (unsigned int i = 0; i < ncap; i++)
		fds[i] = i < cap && nf[i].refs ? nf[i].fd : -1;
	ret = io_uring_unregister_files(&it->ring);
	if (ret == 0) {
		ret = io_uring_register_files(&it->ring, fds, ncap);
		if (ret == 0)
			it->files_cap = ncap;
		else if (io_uring_register_files(&it->ring, fds, cap) < 0)
			/* not even the old size again: every request of this ring fails from now */
			fprintf(stderr, "vireo: iothread %s: lost its ring's fixed file table while "
				"growing it to %u files: its I/O fails\n", it->name, ncap);
	}
	free(fds);
	return ret < 0 ? ret : 0;
}

int iothread_file_index(struct iothread *it, int fd)
{
	unsigned int slot;
	int ret;

	if (fd < 0)
		return -EBADF;
	for (unsigned int i = 0; i < it->files_cap; i++)
		if (it->files[i].refs && it->files[i].fd == fd) {
			it->files[i].refs++;
			return (int)i;
		}
	for (slot = 0; slot < it->files_cap && it->files[slot].refs; slot++)
		;
	if (slot == it->files_cap) {
		ret = files_grow(it);
		if (ret < 0)
			return ret;
	}
	ret = io_uring_register_files_update(&it->ring, slot, &fd, 1);
	if (ret != 1)
		return ret < 0 ? ret : -EIO;
	it->files[slot].fd = fd;
	it->files[slot].refs = 1;
	return (int)slot;
}

/* The message of a failed iothread_file_index(). */
void iothread_file_error(struct iothread *it, int err, const char *what, struct error **errp)
{
	if (err == -EMFILE)
		error_setg(errp, "iothread %s: cannot register %s in its ring's fixed file table: "
			   "the table is full (%u files, the most it may hold: at most %u, and "
			   "RLIMIT_NOFILE)", it->name, what, it->files_cap,
			   it->opts.max_files ? it->opts.max_files : IOTHREAD_FILES_MAX);
	else
		error_setg_errno(errp, -err, "iothread %s: cannot register %s in its ring's fixed "
				 "file table", it->name, what);
}

int iothread_file_register(struct iothread *it, int fd, const char *what, struct error **errp)
{
	int ret = iothread_file_index(it, fd);

	if (ret < 0) {
		iothread_file_error(it, ret, what, errp);
		return -1;
	}
	return ret;
}

void iothread_file_release(struct iothread *it, int fd)
{
	int none = -1;

	for (unsigned int i = 0; i < it->files_cap; i++) {
		if (!it->files[i].refs || it->files[i].fd != fd)
			continue;
		if (--it->files[i].refs == 0)
			io_uring_register_files_update(&it->ring, i, &none, 1);
		return;
	}
}

void iothread_sqe_fixed(struct io_uring_sqe *sqe, int index)
{
	sqe->fd = index;
	sqe->flags |= IOSQE_FIXED_FILE;
}

void iothread_prep_cancel(struct io_uring_sqe *sqe, struct iothread_op *op)
{
	io_uring_prep_cancel(sqe, op, 0);
	/* a restricted ring requires the flag on every SQE; a cancel by user_data ignores it */
	sqe->flags |= IOSQE_FIXED_FILE;
}

unsigned int iothread_files_capacity(const struct iothread *it)
{
	return it->files_cap;
}

int iothread_buffer_index(const struct iothread *it, const void *buf, size_t len)
{
	uintptr_t p = (uintptr_t)buf;

	for (int i = 0; i < it->nr_bufs; i++) {
		uintptr_t base = (uintptr_t)it->bufs[i].iov_base;

		if (p >= base && range_within(p - base, len, it->bufs[i].iov_len))
			return i;
	}
	return -1;
}

struct mem_call {
	struct iothread *it;
	const struct iovec *regions;
	int n;
	struct error **errp;
};

static int register_memory_fn(void *arg)
{
	struct mem_call *c = arg;
	struct iothread *it = c->it;
	struct iovec bufs[IOTHREAD_MAX_MEM_REGIONS];
	int nr = 0, ret;

	for (int i = 0; i < c->n; i++) {
		char *base = c->regions[i].iov_base;
		size_t len = c->regions[i].iov_len;

		while (len) {
			size_t piece = MIN(len, (size_t)GiB);

			if (nr == IOTHREAD_MAX_MEM_REGIONS) {
				error_setg(c->errp, "iothread %s: more than %d memory regions of at "
					   "most 1 GiB to register", it->name, IOTHREAD_MAX_MEM_REGIONS);
				return -1;
			}
			bufs[nr++] = (struct iovec){ base, piece };
			base += piece;
			len -= piece;
		}
	}
	if (it->nr_bufs) {
		io_uring_unregister_buffers(&it->ring);
		it->nr_bufs = 0;
	}
	if (!nr)
		return 0;
	ret = io_uring_register_buffers(&it->ring, bufs, (unsigned int)nr);
	if (ret < 0) {
		error_setg_errno(c->errp, ret, "iothread %s: io_uring_register_buffers (%d regions; "
				 "RLIMIT_MEMLOCK?)", it->name, nr);
		return -1;
	}
	memcpy(it->bufs, bufs, (size_t)nr * sizeof(bufs[0]));
	it->nr_bufs = nr;
	return 0;
}

int iothread_register_memory(struct iothread *it, const struct iovec *regions, int n,
			     struct error **errp)
{
	struct mem_call c = { it, regions, n, errp };
	int ret = iothread_run_sync(it, register_memory_fn, &c);

	if (ret == -ENOMEM)
		error_setg(errp, "iothread %s: out of memory", it->name);
	return ret < 0 ? -1 : 0;
}

/* Runs deferred completions; returns how many. */
static int run_deferred(struct iothread *it)
{
	int n = 0;

	while (it->deferred) {
		struct iothread_op *op = it->deferred;

		it->deferred = op->next;
		if (!it->deferred)
			it->deferred_tail = &it->deferred;
		op->complete(op, op->res);
		n++;
	}
	return n;
}

/* Reaps every CQE available now; returns how many. */
static int reap(struct iothread *it)
{
	struct io_uring_cqe *cqe;
	int n = 0;

	while (io_uring_peek_cqe(&it->ring, &cqe) == 0) {
		struct iothread_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&it->ring, cqe);
		if (op && op->counted)
			it->io_inflight--;
		if (op)
			op->complete(op, res);
		n++;
	}
	return n;
}

static void flush_sources(struct iothread *it)
{
	for (struct iothread_source *s = it->sources; s; s = s->next)
		if (s->flush)
			s->flush(s);
}

/* ---- timers ---------------------------------------------------------------------------------- */

uint64_t iothread_clock_ns(void)
{
	return now_ns();
}

bool iothread_timer_armed(const struct iothread_timer *t)
{
	return t->armed;
}

void iothread_timer_cancel(struct iothread *it, struct iothread_timer *t)
{
	if (!t->armed)
		return;
	for (struct iothread_timer **p = &it->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->armed = false;
}

void iothread_timer_arm(struct iothread *it, struct iothread_timer *t, uint64_t deadline_ns)
{
	struct iothread_timer **p = &it->timers;

	iothread_timer_cancel(it, t);
	while (*p && (*p)->deadline_ns <= deadline_ns) /* after those due at the same time */
		p = &(*p)->next;
	t->deadline_ns = deadline_ns;
	t->next = *p;
	*p = t;
	t->armed = true;
}

/* Fires the timers due by now; returns how many. */
static int run_timers(struct iothread *it)
{
	uint64_t now;
	int n = 0;

	if (!it->timers)
		return 0;
	now = now_ns();
	while (it->timers && it->timers->deadline_ns <= now) {
		struct iothread_timer *t = it->timers;

		it->timers = t->next;
		t->armed = false;
		t->fire(t);
		n++;
	}
	return n;
}

/*
 * Waits in the ring for a CQE, no longer than the earliest timer: io_uring_submit_and_wait
 * with the wait's own timeout. 0 (also when the timeout ran out), or -errno.
 */
static int ring_wait(struct iothread *it)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	uint64_t now;
	int ret;

	if (!it->timers)
		return io_uring_submit_and_wait(&it->ring, 1);
	now = now_ns();
	if (it->timers->deadline_ns <= now)
		return io_uring_submit(&it->ring) < 0 ? -EIO : 0;
	ts.tv_sec = (long long)((it->timers->deadline_ns - now) / 1000000000ull);
	ts.tv_nsec = (long long)((it->timers->deadline_ns - now) % 1000000000ull);
	ret = io_uring_submit_and_wait_timeout(&it->ring, &cqe, 1, &ts, NULL);
	return ret == -ETIME ? 0 : ret;
}

/* Step 3 and 4 of the loop: submit this turn's SQEs, complete what is done. */
static int complete_turn(struct iothread *it)
{
	int n;

	n = run_timers(it); /* before the submit: what a timer issues goes with it */
	if (io_uring_sq_ready(&it->ring))
		io_uring_submit(&it->ring);
	n += reap(it);
	n += run_deferred(it);
	if (n)
		flush_sources(it);
	return n;
}

static int run_messages(struct iothread *it);
static void arm_msg_read(struct iothread *it);

int iothread_wait_once(struct iothread *it)
{
	int ret;

	/* work already there (posted messages, deferred completions, CQEs) counts as one wait */
	if (run_messages(it) + complete_turn(it))
		return 0;
	arm_msg_read(it);
	do
		ret = ring_wait(it);
	while (ret == -EINTR);
	if (ret < 0)
		return ret;
	complete_turn(it);
	return 0;
}

/* ---- messages -------------------------------------------------------------------------------- */

static void msg_read_done(struct iothread_op *op, int res)
{
	struct iothread *it = container_of(op, struct iothread, msg_op);

	it->msg_armed = false;
}

static void arm_msg_read(struct iothread *it)
{
	struct io_uring_sqe *sqe;

	if (it->msg_armed)
		return;
	sqe = ring_get_sqe(it, &it->msg_op);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, it->msg_fd, &it->msg_buf, sizeof(it->msg_buf), 0);
	iothread_sqe_fixed(sqe, it->msg_index);
	it->msg_armed = true;
}

static int run_messages(struct iothread *it)
{
	int n = 0;

	/* acquire: pairs with the release store in iothread_post, though the lock orders too */
	if (atomic_load_explicit(&it->msg_pending, memory_order_acquire)) {
		struct iothread_msg **tail = &it->msg_run;

		while (*tail) /* only inside a nested wait: older messages first */
			tail = &(*tail)->next;
		pthread_mutex_lock(&it->msg_lock);
		*tail = it->msg_head;
		it->msg_head = it->msg_tail = NULL;
		atomic_store_explicit(&it->msg_pending, false, memory_order_relaxed);
		pthread_mutex_unlock(&it->msg_lock);
	}
	while (it->msg_run) {
		struct iothread_msg *m = it->msg_run;

		it->msg_run = m->next; /* before the call: a wait inside it runs the rest */
		m->fn(m->arg);
		free(m);
		n++;
	}
	return n;
}

int iothread_post(struct iothread *it, void (*fn)(void *arg), void *arg)
{
	struct iothread_msg *m = malloc(sizeof(*m));
	uint64_t one = 1;
	bool was_empty;

	if (!m)
		return -ENOMEM;
	m->fn = fn;
	m->arg = arg;
	m->next = NULL;
	pthread_mutex_lock(&it->msg_lock);
	was_empty = !it->msg_head;
	if (it->msg_tail)
		it->msg_tail->next = m;
	else
		it->msg_head = m;
	it->msg_tail = m;
	/* release: a polling iothread that sees the flag also sees the list (it then locks) */
	atomic_store_explicit(&it->msg_pending, true, memory_order_release);
	/*
	 * Wake it inside the lock: the message cannot run (and so its sender cannot go on to
	 * destroy the iothread and close msg_fd) before this write is done.
	 */
	if (was_empty && !iothread_is_current(it)) {
		ssize_t r = write(it->msg_fd, &one, sizeof(one));

		(void)r; /* fails only when the counter is saturated: already signalled */
	}
	pthread_mutex_unlock(&it->msg_lock);
	return 0;
}

struct sync_call {
	int (*fn)(void *arg);
	void *arg;
	int ret;
	sem_t done;
};

static void sync_call_run(void *arg)
{
	struct sync_call *c = arg;

	c->ret = c->fn(c->arg);
	sem_post(&c->done);
}

int iothread_run_sync(struct iothread *it, int (*fn)(void *arg), void *arg)
{
	struct sync_call c = { .fn = fn, .arg = arg };
	int ret;

	if (iothread_is_current(it))
		return fn(arg);
	sem_init(&c.done, 0, 0);
	ret = iothread_post(it, sync_call_run, &c);
	if (ret < 0) {
		sem_destroy(&c.done);
		return ret;
	}
	while (sem_wait(&c.done) < 0 && errno == EINTR)
		;
	sem_destroy(&c.done);
	return c.ret;
}

/* ---- sources --------------------------------------------------------------------------------- */

/*
 * A kick is a READ of the eventfd, which also resets its counter. Kernels that answer a READ of
 * a non-blocking eventfd with -EAGAIN instead of waiting get a POLL_ADD plus a read() instead.
 */
static void kick_read_done(struct iothread_op *op, int res)
{
	struct iothread_source *src = container_of(op, struct iothread_source, kick_op);

	src->kick_armed = false;
	if (res == -EAGAIN && !src->kick_poll) {
		src->kick_poll = true;
	} else if (res > 0 && src->kick_poll) {
		ssize_t r = read(src->kick_fd, &src->kick_buf, sizeof(src->kick_buf));

		(void)r; /* only resets the counter; the loop polls the source anyway */
	}
}

static void arm_kicks(struct iothread *it)
{
	for (struct iothread_source *s = it->sources; s; s = s->next) {
		struct io_uring_sqe *sqe;

		if (s->kick_fd < 0 || s->kick_armed)
			continue;
		sqe = ring_get_sqe(it, &s->kick_op);
		if (!sqe)
			return;
		if (s->kick_poll)
			io_uring_prep_poll_add(sqe, s->kick_fd, POLLIN);
		else
			io_uring_prep_read(sqe, s->kick_fd, &s->kick_buf, sizeof(s->kick_buf), 0);
		iothread_sqe_fixed(sqe, s->kick_index);
		s->kick_armed = true;
	}
}

static int poll_sources(struct iothread *it)
{
	int n = 0;

	for (struct iothread_source *s = it->sources; s; s = s->next) {
		int r = s->poll(s);

		if (r > 0)
			n += r;
	}
	return n;
}

static void notify_sources(struct iothread *it, bool enable)
{
	for (struct iothread_source *s = it->sources; s; s = s->next)
		if (s->notify_enable)
			s->notify_enable(s, enable);
}

struct source_call {
	struct iothread *it;
	struct iothread_source *src;
};

static int add_source_fn(void *arg)
{
	struct source_call *c = arg;

	if (c->src->kick_fd >= 0) {
		int index = iothread_file_index(c->it, c->src->kick_fd);

		if (index < 0)
			return index;
		c->src->kick_index = index;
	}
	c->src->kick_op.complete = kick_read_done;
	c->src->kick_armed = false;
	c->src->kick_poll = false;
	if (c->src->notify_enable)
		c->src->notify_enable(c->src, false);
	c->src->next = c->it->sources;
	c->it->sources = c->src;
	return 0;
}

int iothread_add_source(struct iothread *it, struct iothread_source *src, struct error **errp)
{
	struct source_call c = { it, src };
	int ret = iothread_run_sync(it, add_source_fn, &c);

	if (ret == -ENOMEM) {
		error_setg(errp, "iothread %s: cannot add a source: out of memory", it->name);
		return -1;
	}
	if (ret < 0) {
		iothread_file_error(it, ret, "a queue's notification eventfd", errp);
		return -1;
	}
	return 0;
}

static int remove_source_fn(void *arg)
{
	struct source_call *c = arg;
	struct iothread *it = c->it;

	for (struct iothread_source **p = &it->sources; *p; p = &(*p)->next) {
		if (*p == c->src) {
			*p = c->src->next;
			break;
		}
	}
	if (c->src->kick_armed) {
		struct io_uring_sqe *sqe = ring_get_sqe(it, NULL);

		if (sqe)
			iothread_prep_cancel(sqe, &c->src->kick_op);
		/* the READ's CQE (cancelled or completed) clears kick_armed */
		while (c->src->kick_armed)
			if (iothread_wait_once(it) < 0)
				break;
	}
	if (c->src->kick_fd >= 0)
		iothread_file_release(it, c->src->kick_fd);
	return 0;
}

void iothread_remove_source(struct iothread *it, struct iothread_source *src)
{
	struct source_call c = { it, src };

	iothread_run_sync(it, remove_source_fn, &c);
}

/* ---- the loop -------------------------------------------------------------------------------- */

uint64_t iothread_poll_adjust(uint64_t poll_ns, uint64_t block_ns, const struct iothread_opts *o)
{
	uint64_t max = o->poll_max_ns;

	if (!max || block_ns <= poll_ns)
		return max ? poll_ns : 0; /* polling paid off (or is off): keep */
	if (block_ns > max) { /* too long a wait to be worth spinning: shrink */
		poll_ns = o->poll_shrink ? poll_ns / o->poll_shrink : 0;
		/* below the starting window: off, so that the next grow starts there again */
		return poll_ns < IOTHREAD_POLL_START_NS ? 0 : poll_ns;
	}
	if (poll_ns < max) { /* work came just after the window: grow */
		unsigned int grow = o->poll_grow ? o->poll_grow : IOTHREAD_POLL_GROW_DEFAULT;

		poll_ns = poll_ns ? poll_ns * grow : IOTHREAD_POLL_START_NS;
		return MIN(poll_ns, max);
	}
	return poll_ns;
}

/* CQEs posted, or completion work the kernel flagged for us to run (COOP_TASKRUN) */
static unsigned int completions_pending(struct iothread *it)
{
	return io_uring_cq_ready(&it->ring) +
	       !!(IO_URING_READ_ONCE(*it->ring.sq.kflags) & IORING_SQ_TASKRUN);
}

int iothread_spin_credit(int credit, bool found_work)
{
	if (found_work)
		return MIN(credit + 1, IOTHREAD_SPIN_CREDIT_MAX);
	return MAX(credit - 1, -IOTHREAD_SPIN_CREDIT_MAX);
}

/*
 * About to sleep (backed off, or the polling window ran out): may the thread spin, without
 * yielding, until IOTHREAD_SPIN_NS after its last work? Only when none of our I/O is in flight
 * (with I/O in flight the kernel's worker doing it may need this core) and the recent spins
 * found work; once the credit is spent, every IOTHREAD_SPIN_PROBE-th sleep tries again.
 */
static bool spin_before_sleeping(struct iothread *it, uint64_t idle_ns)
{
	if (it->io_inflight || it->io_elsewhere || idle_ns >= IOTHREAD_SPIN_NS)
		return false;
	if (it->spin_credit > 0)
		return true;
	if (++it->spin_skips % IOTHREAD_SPIN_PROBE == 0)
		it->spin_credit = 1;
	return false;
}

bool iothread_poll_contended(uint64_t yield_ns, unsigned int cqes_ready,
			     const struct iothread_opts *o)
{
	/*
	 * The yield gave the CPU away for a while: another thread (a vCPU) wants this core.
	 * Polling on would only make the guest, told not to kick us, wait for our next time
	 * slice; sleeping with notifications on lets its next kick wake us at once. Unless
	 * completions of ours came in meanwhile and the yield was short: then the core went to
	 * the kernel's io-wq worker doing our I/O (buffered writes on ext4 are punted to one), the
	 * work we poll for. A yield of a whole time slice is a rival's even if completions (of
	 * O_DIRECT I/O, from the disk's interrupt) arrived meanwhile.
	 */
	if (yield_ns < IOTHREAD_POLL_STOLEN_NS || o->poll_keep_on_contention)
		return false;
	return !cqes_ready || yield_ns >= IOTHREAD_POLL_SLICE_NS;
}

/* Step 6: notifications on, re-check, sleep in the ring. Returns the requests the re-check took. */
static int idle_wait(struct iothread *it)
{
	int n, ret;

	notify_sources(it, true);
	n = poll_sources(it);
	if (!n && !it->deferred && !atomic_load_explicit(&it->msg_pending, memory_order_acquire)) {
		arm_kicks(it);
		arm_msg_read(it);
		do
			ret = ring_wait(it);
		while (ret == -EINTR);
		if (ret < 0 && ret != -EBUSY && ret != -EAGAIN) {
			fprintf(stderr, "vireo: iothread %s: io_uring_submit_and_wait: %s\n",
				it->name, strerror(-ret));
			sched_yield();
		}
	}
	notify_sources(it, false);
	return n;
}

static void loop(struct iothread *it)
{
	uint64_t idle_since = now_ns(), poll_ns;
	bool spinning = false; /* in a spin before sleeping (spin_before_sleeping) */

	while (!atomic_load_explicit(&it->stop, memory_order_relaxed)) {
		int work;

		/* two clock reads a turn, for what the devices time: submissions see the turn's
		 * start, completions the start of its completion phase */
		it->turn_ns = now_ns();
		work = run_messages(it);

		work += poll_sources(it);
		it->turn_ns = now_ns();
		work += complete_turn(it);
		if (work) {
			if (spinning)
				it->spin_credit = iothread_spin_credit(it->spin_credit, true);
			spinning = false;
			idle_since = 0;
			continue;
		}
		if (!idle_since)
			idle_since = now_ns();
		poll_ns = atomic_load_explicit(&it->poll_ns, memory_order_relaxed);
		if (poll_ns && now_ns() - idle_since < poll_ns && now_ns() >= it->poll_off_until) {
			uint64_t before = now_ns();

			/* a busy-polling host thread must yield (TESTBEDS.md) */
			sched_yield();
			if (!iothread_poll_contended(now_ns() - before, completions_pending(it),
						     &it->opts))
				continue;
			it->poll_off_until = now_ns() + IOTHREAD_POLL_BACKOFF_NS;
		} else if (poll_ns && spin_before_sleeping(it, now_ns() - idle_since)) {
			/* no yield: that would hand a spinning vCPU the core for a time slice */
			spinning = true;
			continue;
		}
		if (spinning)
			it->spin_credit = iothread_spin_credit(it->spin_credit, false);
		spinning = false;
		if (atomic_load_explicit(&it->stop, memory_order_relaxed))
			break;
		idle_wait(it);
		it->turn_ns = now_ns();
		complete_turn(it);
		poll_ns = iothread_poll_adjust(poll_ns, now_ns() - idle_since, &it->opts);
		atomic_store_explicit(&it->poll_ns, poll_ns, memory_order_relaxed);
		idle_since = 0;
	}
}

/*
 * io_uring operations bypass seccomp, so each ring is locked to what its users submit: created
 * disabled, given its sparse file table, restricted to the opcodes below, to SQEs that name a
 * registered file (IOSQE_FIXED_FILE required, no other flag) and to the register operations
 * the table and the fixed buffers need, then enabled (on this thread, which so becomes its
 * single issuer). A plain fd in an SQE, or another opcode, completes with -EACCES.
 */
static const uint8_t engine_sqe_ops[] = {
	/* blockdev/engine.c: guest I/O, with or without registered buffers, flush, discard */
	IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED,
	IORING_OP_FSYNC, IORING_OP_FALLOCATE,
	/* this loop: the message and kick eventfds (READ, or POLL_ADD on old kernels), and the
	 * cancel of a removed source's kick */
	IORING_OP_READ, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL,
};
/* the NBD server's sockets (blockdev/nbd_server.c, nbd_transport.c): opts.serves_sockets;
 * SPLICE: an NBD read's bytes from the image's page cache into a pipe (blockdev/engine.c,
 * BLOCKDEV_READ_SPLICE) and from the pipe into the socket */
static const uint8_t socket_sqe_ops[] = {
	IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SENDMSG, IORING_OP_SPLICE,
};
static const uint8_t allowed_register_ops[] = {
	IORING_REGISTER_FILES_UPDATE,                      /* a file in or out of a slot */
	IORING_UNREGISTER_FILES, IORING_REGISTER_FILES,    /* the table grows (files_grow) */
	IORING_REGISTER_BUFFERS, IORING_UNREGISTER_BUFFERS, /* register-memory=on */
};

static int ring_restrict(struct iothread *it, struct error **errp)
{
	struct io_uring_restriction res[ARRAY_SIZE(engine_sqe_ops) + ARRAY_SIZE(socket_sqe_ops) +
					ARRAY_SIZE(allowed_register_ops) + 1];
	unsigned int n = 0;
	int ret;

	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < ARRAY_SIZE(engine_sqe_ops); i++) {
		res[n].opcode = IORING_RESTRICTION_SQE_OP;
		res[n++].sqe_op = engine_sqe_ops[i];
	}
	for (size_t i = 0; it->opts.serves_sockets && i < ARRAY_SIZE(socket_sqe_ops); i++) {
		res[n].opcode = IORING_RESTRICTION_SQE_OP;
		res[n++].sqe_op = socket_sqe_ops[i];
	}
	for (size_t i = 0; i < ARRAY_SIZE(allowed_register_ops); i++) {
		res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
		res[n++].register_op = allowed_register_ops[i];
	}
	res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
	res[n++].sqe_flags = IOSQE_FIXED_FILE;
	/* Debian's liburing 2.3 does not export its wrappers for these two: use the syscall */
	ret = (int)syscall(__NR_io_uring_register, it->ring.ring_fd, IORING_REGISTER_RESTRICTIONS,
			   res, n);
	if (ret < 0) {
		error_setg_errno(errp, errno, "iothread %s: IORING_REGISTER_RESTRICTIONS", it->name);
		return -1;
	}
	ret = (int)syscall(__NR_io_uring_register, it->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
			   NULL, 0);
	if (ret < 0) {
		error_setg_errno(errp, errno, "iothread %s: IORING_REGISTER_ENABLE_RINGS", it->name);
		return -1;
	}
	return 0;
}

static int ring_init(struct iothread *it, struct error **errp)
{
	unsigned int entries = it->opts.ring_entries ?: IOTHREAD_RING_DEFAULT;
	/*
	 * SINGLE_ISSUER (Linux 6.0) and COOP_TASKRUN (5.19) save the kernel work; TASKRUN_FLAG
	 * makes it flag pending completion work, so that io_uring_peek_cqe enters the kernel only
	 * then. Older kernels refuse unknown flags with -EINVAL: try less (R_DISABLED, for the
	 * restrictions, is from 5.10 like everything else the engine uses).
	 */
	static const unsigned int tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < ARRAY_SIZE(tries) && ret == -EINVAL; i++)
		ret = io_uring_queue_init(entries, &it->ring, tries[i] | IORING_SETUP_R_DISABLED);
	if (ret < 0) {
		error_setg_errno(errp, ret, "iothread %s: io_uring_queue_init(%u)", it->name,
				 entries);
		return -1;
	}
	it->files = calloc(IOTHREAD_FILES_START, sizeof(*it->files));
	if (!it->files) {
		error_setg(errp, "iothread %s: out of memory", it->name);
		goto err_ring;
	}
	/* every SQE names a registered file: without a table the ring could do nothing */
	ret = io_uring_register_files_sparse(&it->ring, IOTHREAD_FILES_START);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "iothread %s: io_uring_register_files_sparse(%u)",
				 it->name, IOTHREAD_FILES_START);
		goto err_files;
	}
	it->files_cap = IOTHREAD_FILES_START;
	it->msg_index = iothread_file_register(it, it->msg_fd, "its message eventfd", errp);
	if (it->msg_index < 0 || ring_restrict(it, errp) < 0)
		goto err_files;
	return 0;

err_files:
	free(it->files);
	it->files = NULL;
	it->files_cap = 0;
err_ring:
	io_uring_queue_exit(&it->ring);
	return -1;
}

static void stop_fn(void *arg)
{
	struct iothread *it = arg;

	atomic_store_explicit(&it->stop, true, memory_order_relaxed);
}

/* The thread's own set-up, before its sandbox filter: its nice value and its ring. */
static int iothread_setup(void *arg, struct error **errp)
{
	struct iothread *it = arg;
	char who[sizeof(it->name) + 16];

	current_it = it;
	it->tid = (pid_t)syscall(SYS_gettid);
	snprintf(who, sizeof(who), "iothread %s", it->name);
	if (it->opts.nice_set && thread_set_own_nice(it->opts.nice, who, errp) < 0)
		return -1;
	return ring_init(it, errp);
}

static void *iothread_main(void *arg)
{
	struct iothread *it = arg;

	loop(it);
	/* run what raced with the stop, so no run_sync caller waits forever */
	run_messages(it);
	io_uring_queue_exit(&it->ring);
	free(it->files);
	current_it = NULL;
	return NULL;
}

struct iothread *iothread_create(const char *name, const struct iothread_opts *opts,
				 struct error **errp)
{
	struct iothread *it = calloc(1, sizeof(*it));

	if (!it) {
		error_setg(errp, "iothread %s: out of memory", name);
		return NULL;
	}
	snprintf(it->name, sizeof(it->name), "%s", name);
	if (opts)
		it->opts = *opts;
	it->poll_ns = it->opts.poll_max_ns ? MIN(it->opts.poll_max_ns, IOTHREAD_POLL_START_NS) : 0;
	it->deferred_tail = &it->deferred;
	it->msg_op.complete = msg_read_done;
	it->spin_credit = 1;
	pthread_mutex_init(&it->msg_lock, NULL);
	/* blocking: a READ on a non-blocking fd may complete with -EAGAIN instead of waiting */
	it->msg_fd = eventfd(0, EFD_CLOEXEC);
	if (it->msg_fd < 0) {
		error_setg_errno(errp, errno, "iothread %s: eventfd", name);
		goto err_free;
	}
	if (sandbox_thread_spawn(&it->thread, SANDBOX_ROLE_IOTHREAD, it->name, iothread_setup,
				 iothread_main, it, errp) < 0)
		goto err_fd;
	return it;

err_fd:
	close(it->msg_fd);
err_free:
	pthread_mutex_destroy(&it->msg_lock);
	free(it);
	return NULL;
}

int iothread_set_affinity(struct iothread *it, const cpu_set_t *cpus, struct error **errp)
{
	char who[32];

	snprintf(who, sizeof(who), "iothread %s", it->name);
	return thread_set_affinity(it->thread, cpus, who, errp);
}

void iothread_destroy(struct iothread *it)
{
	if (!it)
		return;
	if (iothread_post(it, stop_fn, it) < 0) {
		/* cannot allocate a message: set the flag directly and wake the thread */
		uint64_t one = 1;
		ssize_t r;

		atomic_store_explicit(&it->stop, true, memory_order_relaxed);
		atomic_store_explicit(&it->msg_pending, true, memory_order_release);
		r = write(it->msg_fd, &one, sizeof(one));
		(void)r;
	}
	pthread_join(it->thread, NULL);
	/* a poster still inside iothread_post holds the lock: wait for it before closing */
	pthread_mutex_lock(&it->msg_lock);
	pthread_mutex_unlock(&it->msg_lock);
	close(it->msg_fd);
	pthread_mutex_destroy(&it->msg_lock);
	free(it);
}
