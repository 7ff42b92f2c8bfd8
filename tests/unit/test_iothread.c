/* SPDX-License-Identifier: Apache-2.0 */
/* iothreads: cross-thread calls, sources, kicks, the notification re-check, adaptive polling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "iothreads/iothread.h"

/* Waits up to 5 s; false on timeout. */
static bool wait_sem(sem_t *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	while (sem_timedwait(s, &ts) < 0)
		if (errno != EINTR)
			return false;
	return true;
}

static struct iothread *start_opts(const struct iothread_opts *o)
{
	struct error *err = NULL;
	struct iothread *it = iothread_create("test-io", o, &err);

	if (!it)
		fail_msg("iothread_create: %s", error_msg(err));
	return it;
}

static struct iothread *start(uint64_t poll_max_ns)
{
	struct iothread_opts o = { .poll_max_ns = poll_max_ns };

	return start_opts(&o);
}

static int on_thread(void *arg)
{
	struct iothread *it = arg;

	return iothread_is_current(it) && iothread_current() == it ? 42 : -1;
}

static void run_sync_runs_on_the_iothread_and_returns_its_value(void **state)
{
	struct iothread *it = start(0);

	assert_false(iothread_is_current(it));
	assert_int_equal(iothread_run_sync(it, on_thread, it), 42);
	assert_string_equal(iothread_name(it), "test-io");
	iothread_destroy(it);
}

struct order {
	int seen[100];
	int n;
	sem_t done;
};

static struct order order;

static void record(void *arg)
{
	order.seen[order.n++] = (int)(intptr_t)arg;
	if (order.n == 100)
		sem_post(&order.done);
}

static void posted_messages_run_in_order(void **state)
{
	struct iothread *it = start(IOTHREAD_POLL_MAX_NS_DEFAULT);

	sem_init(&order.done, 0, 0);
	order.n = 0;
	for (int i = 0; i < 100; i++)
		assert_int_equal(iothread_post(it, record, (void *)(intptr_t)i), 0);
	assert_true(wait_sem(&order.done));
	for (int i = 0; i < 100; i++)
		assert_int_equal(order.seen[i], i);
	iothread_destroy(it);
	sem_destroy(&order.done);
}

struct fake_src {
	struct iothread_source src;
	atomic_int avail;       /* "guest requests" waiting */
	int taken;
	int notify_on;          /* last notify_enable state */
	int enables;            /* how many times notifications were turned on */
	bool race;              /* make work appear in notify_enable(true), without a kick */
	sem_t got;
};

static int fake_poll(struct iothread_source *s)
{
	struct fake_src *f = container_of(s, struct fake_src, src);
	int n = atomic_exchange(&f->avail, 0);

	for (int i = 0; i < n; i++) {
		f->taken++;
		sem_post(&f->got);
	}
	return n;
}

static void fake_notify(struct iothread_source *s, bool enable)
{
	struct fake_src *f = container_of(s, struct fake_src, src);

	f->notify_on = enable;
	if (enable) {
		f->enables++;
		if (f->race) {
			/* a request that arrived just before notifications were on: no kick */
			f->race = false;
			atomic_fetch_add(&f->avail, 1);
		}
	}
}

static struct fake_src *fake_new(bool with_kick)
{
	struct fake_src *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->src.poll = fake_poll;
	f->src.notify_enable = fake_notify;
	f->src.kick_fd = with_kick ? eventfd(0, EFD_CLOEXEC) : -1;
	sem_init(&f->got, 0, 0);
	return f;
}

static void fake_free(struct fake_src *f)
{
	if (f->src.kick_fd >= 0)
		close(f->src.kick_fd);
	sem_destroy(&f->got);
	free(f);
}

static void kick(struct fake_src *f)
{
	uint64_t one = 1;

	atomic_fetch_add(&f->avail, 1);
	assert_int_equal(write(f->src.kick_fd, &one, sizeof(one)), sizeof(one));
}

static void a_kick_wakes_a_sleeping_iothread(void **state)
{
	struct iothread *it = start(0);
	struct fake_src *f = fake_new(true);

	assert_int_equal(iothread_add_source(it, &f->src, NULL), 0);
	for (int i = 0; i < 50; i++) {
		usleep(i % 10 == 0 ? 2000 : 0); /* sometimes long enough to be asleep */
		kick(f);
		assert_true(wait_sem(&f->got));
	}
	iothread_remove_source(it, &f->src);
	assert_int_equal(f->taken, 50);
	assert_true(f->enables > 0);
	assert_false(f->notify_on); /* the loop turns them off again after waking */
	iothread_destroy(it);
	fake_free(f);
}

static void work_arriving_as_notifications_turn_on_is_not_lost(void **state)
{
	struct iothread *it = start(0);
	struct fake_src *f = fake_new(true);

	f->race = true;
	assert_int_equal(iothread_add_source(it, &f->src, NULL), 0);
	/* no kick is ever sent: only the re-check after notify_enable(true) can find it */
	assert_true(wait_sem(&f->got));
	iothread_remove_source(it, &f->src);
	iothread_destroy(it);
	fake_free(f);
}

static void removing_a_sleeping_source_cancels_its_kick_read(void **state)
{
	struct iothread *it = start(0);
	struct fake_src *f = fake_new(true);

	assert_int_equal(iothread_add_source(it, &f->src, NULL), 0);
	usleep(10000); /* asleep, with the kick READ armed */
	iothread_remove_source(it, &f->src);
	fake_free(f); /* ASan would catch a READ completing into freed memory */
	usleep(10000);
	iothread_destroy(it);
}

static int register_twice(void *arg)
{
	struct iothread *it = iothread_current();
	int fd = *(int *)arg;
	int a = iothread_file_index(it, fd), b = iothread_file_index(it, fd);

	if (a < 0 || a != b)
		return -1;
	iothread_file_release(it, fd);
	iothread_file_release(it, fd);
	return 0;
}

static void a_file_registers_once_per_ring(void **state)
{
	struct iothread *it = start(0);
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(iothread_run_sync(it, register_twice, &fd), 0);
	close(fd);
	iothread_destroy(it);
}

static void poll_window_grows_shrinks_and_is_capped(void **state)
{
	struct iothread_opts o = { .poll_max_ns = 32768 };

	/* work came within the window: keep */
	assert_int_equal(iothread_poll_adjust(8000, 5000, &o), 8000);
	/* after the window but within the ceiling: grow by 2 from 4 µs, capped */
	assert_int_equal(iothread_poll_adjust(0, 10000, &o), IOTHREAD_POLL_START_NS);
	assert_int_equal(iothread_poll_adjust(4000, 10000, &o), 8000);
	assert_int_equal(iothread_poll_adjust(20000, 30000, &o), 32768);
	/* longer than the ceiling: reset (shrink 0) or divide */
	assert_int_equal(iothread_poll_adjust(16000, 1000000, &o), 0);
	o.poll_shrink = 4;
	assert_int_equal(iothread_poll_adjust(16000, 1000000, &o), 4000);
	o.poll_grow = 3;
	assert_int_equal(iothread_poll_adjust(4000, 20000, &o), 12000);
	/* disabled */
	o.poll_max_ns = 0;
	assert_int_equal(iothread_poll_adjust(4000, 20000, &o), 0);
}

/* The VMM's defaults: one completion later than the ceiling halves the window, and the next
 * disk-speed wait (40 µs) is still inside it, where a reset would make it sleep. */
static void a_late_completion_halves_the_default_window_instead_of_dropping_it(void **state)
{
	struct iothread_opts o = { .poll_max_ns = IOTHREAD_POLL_MAX_NS_DEFAULT,
				   .poll_shrink = IOTHREAD_POLL_SHRINK_DEFAULT };
	uint64_t w = iothread_poll_adjust(IOTHREAD_POLL_MAX_NS_DEFAULT, 200000, &o);

	assert_int_equal(w, IOTHREAD_POLL_MAX_NS_DEFAULT / 2);
	_Static_assert(IOTHREAD_POLL_MAX_NS_DEFAULT / 2 > 40000, "a disk-speed wait fits");
	assert_int_equal(iothread_poll_adjust(w, 40000, &o), w);
}

/* after a long idle spell the halvings end at 0, and the next late wait grows from the start */
static void idle_shrinks_the_window_to_off_and_growth_restarts_at_the_start(void **state)
{
	struct iothread_opts o = { .poll_max_ns = IOTHREAD_POLL_MAX_NS_DEFAULT,
				   .poll_shrink = IOTHREAD_POLL_SHRINK_DEFAULT };
	uint64_t w = IOTHREAD_POLL_MAX_NS_DEFAULT;
	int halvings = 0;

	while (w) {
		uint64_t next = iothread_poll_adjust(w, 1000000000, &o);

		assert_true(next == 0 || next >= IOTHREAD_POLL_START_NS);
		assert_true(next < w);
		w = next;
		halvings++;
	}
	assert_true(halvings <= 6); /* 128 us -> 4 us -> off */
	assert_int_equal(iothread_poll_adjust(0, 10000, &o), IOTHREAD_POLL_START_NS);
}

static int own_affinity(void *arg)
{
	return sched_getaffinity(0, sizeof(cpu_set_t), arg);
}

static void affinity_confines_the_thread_and_refuses_cpus_that_are_not_there(void **state)
{
	struct iothread_opts o = { 0 };
	struct iothread *it = iothread_create("aff", &o, NULL);
	struct error *err = NULL;
	cpu_set_t want, got, bogus;
	int cpu = -1;

	assert_non_null(it);
	assert_int_equal(sched_getaffinity(0, sizeof(want), &want), 0);
	for (int c = CPU_SETSIZE - 1; c >= 0 && cpu < 0; c--)
		if (CPU_ISSET(c, &want))
			cpu = c; /* the last CPU we may use */
	CPU_ZERO(&want);
	CPU_SET(cpu, &want);
	assert_int_equal(iothread_set_affinity(it, &want, NULL), 0);
	assert_int_equal(iothread_run_sync(it, own_affinity, &got), 0);
	assert_true(CPU_EQUAL(&got, &want));
	CPU_ZERO(&bogus);
	CPU_SET(CPU_SETSIZE - 1, &bogus);
	assert_int_equal(iothread_set_affinity(it, &bogus, &err), -1);
	assert_non_null(strstr(error_msg(err), "iothread aff: none of these CPUs"));
	error_free(err);
	iothread_destroy(it);
}

static int own_nice(void *arg)
{
	errno = 0;
	*(int *)arg = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
	return errno ? -errno : 0;
}

/* Sets or clears CAP_SYS_NICE in this thread's effective set (threads it creates inherit it). */
static int set_cap_sys_nice(bool on)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	if (on)
		d[CAP_TO_INDEX(CAP_SYS_NICE)].effective |= CAP_TO_MASK(CAP_SYS_NICE);
	else
		d[CAP_TO_INDEX(CAP_SYS_NICE)].effective &= ~CAP_TO_MASK(CAP_SYS_NICE);
	return (int)syscall(SYS_capset, &h, d);
}

static void nice_is_set_on_the_thread_and_a_refusal_is_an_error(void **state)
{
	struct iothread_opts o = { .nice = 5, .nice_set = true };
	struct iothread *it = iothread_create("nice", &o, NULL);
	struct error *err = NULL;
	struct rlimit rl;
	int nice = 0;

	assert_non_null(it);
	assert_int_equal(iothread_run_sync(it, own_nice, &nice), 0);
	assert_int_equal(nice, 5); /* the thread's own, not the process's */
	assert_int_equal(getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)), 0);
	iothread_destroy(it);

	/* lowering it without CAP_SYS_NICE (and with RLIMIT_NICE at 0) is refused */
	assert_int_equal(getrlimit(RLIMIT_NICE, &rl), 0);
	if (rl.rlim_cur != 0)
		skip();
	assert_int_equal(set_cap_sys_nice(false), 0);
	o.nice = -5;
	it = iothread_create("nice", &o, &err);
	set_cap_sys_nice(true); /* back, if we had it (root) */
	assert_null(it);
	assert_non_null(err);
	assert_non_null(strstr(error_msg(err), "iothread nice: cannot set its nice value to -5"));
	error_free(err);
}

static void pre_sleep_spins_earn_and_lose_credit_within_bounds(void **state)
{
	int c = 1;

	/* spins that find the guest's next request keep the thread spinning, up to a cap */
	for (int i = 0; i < 20; i++)
		c = iothread_spin_credit(c, true);
	assert_int_equal(c, IOTHREAD_SPIN_CREDIT_MAX);
	/* as many that find nothing spend it, and no more than the cap below zero */
	for (int i = 0; i < IOTHREAD_SPIN_CREDIT_MAX; i++)
		c = iothread_spin_credit(c, false);
	assert_int_equal(c, 0);
	for (int i = 0; i < 20; i++)
		c = iothread_spin_credit(c, false);
	assert_int_equal(c, -IOTHREAD_SPIN_CREDIT_MAX);
	assert_int_equal(iothread_spin_credit(c, true), -IOTHREAD_SPIN_CREDIT_MAX + 1);
}

static void a_long_yield_backs_off_unless_our_io_completed_meanwhile(void **state)
{
	struct iothread_opts o = { .poll_max_ns = 32768 };

	assert_false(iothread_poll_contended(IOTHREAD_POLL_STOLEN_NS - 1, 0, &o));
	assert_true(iothread_poll_contended(IOTHREAD_POLL_STOLEN_NS, 0, &o));
	/* the core went to io-wq finishing our writes: not a rival */
	assert_false(iothread_poll_contended(IOTHREAD_POLL_SLICE_NS - 1, 1, &o));
	/* a whole slice away is a rival's, whatever completed meanwhile */
	assert_true(iothread_poll_contended(IOTHREAD_POLL_SLICE_NS, 1, &o));
	o.poll_keep_on_contention = true;
	assert_false(iothread_poll_contended(10 * IOTHREAD_POLL_STOLEN_NS, 0, &o));
}

static void a_polling_iothread_sees_work_without_kicks(void **state)
{
	const uint64_t max = 200000000ull; /* 200 ms ceiling */
	/*
	 * A source that never kicks is only served while the thread polls without end: keep
	 * polling on a busy machine too, or the contention back-off would put it to sleep.
	 */
	/* grow fast and never shrink: the growth rule itself is pinned by the test above, and
	 * must not make this one depend on wake-up latencies of a loaded machine */
	struct iothread_opts o = { .poll_max_ns = max, .poll_grow = 1000, .poll_shrink = 1,
				   .poll_keep_on_contention = true };
	struct iothread *it = start_opts(&o);
	struct fake_src *f = fake_new(false); /* no kick fd at all */
	int ok = 0;

	assert_int_equal(iothread_add_source(it, &f->src, NULL), 0);
	/* wake it after each window ran out: every wait was short enough to grow the window
	 * (on a loaded machine a wake-up may land while the thread is still in its window, found
	 * by polling, which leaves the window as it is: try many times) */
	for (int i = 0; i < 1000 && iothread_poll_ns(it) < max; i++) {
		usleep((useconds_t)(iothread_poll_ns(it) / 1000 + 2000));
		iothread_run_sync(it, on_thread, it);
	}
	assert_int_equal(iothread_poll_ns(it), max);
	/* now it spins between requests, so work without a kick is found */
	for (int i = 0; i < 200; i++) {
		atomic_fetch_add(&f->avail, 1);
		ok += wait_sem(&f->got);
	}
	assert_int_equal(ok, 200);
	iothread_remove_source(it, &f->src);
	iothread_destroy(it);
	fake_free(f);
}

struct probe_op {
	struct iothread_op op;
	bool done;
	int res;
};

static void probe_done(struct iothread_op *op, int res)
{
	struct probe_op *p = container_of(op, struct probe_op, op);

	p->done = true;
	p->res = res;
}

/* Submits one SQE prepared by @prep on the calling iothread and returns its result. */
static int submit_one(void (*prep)(struct io_uring_sqe *sqe, void *arg), void *arg)
{
	struct iothread *it = iothread_current();
	struct probe_op p = { .op.complete = probe_done };
	struct io_uring_sqe *sqe = iothread_get_sqe(it, &p.op);

	if (!sqe)
		return -EIO;
	prep(sqe, arg);
	while (!p.done)
		if (iothread_wait_once(it) < 0)
			return -EIO;
	return p.res;
}

static void prep_nop(struct io_uring_sqe *sqe, void *arg)
{
	io_uring_prep_nop(sqe);
}

static void prep_openat(struct io_uring_sqe *sqe, void *arg)
{
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/hostname", O_RDONLY, 0);
}

static void prep_read(struct io_uring_sqe *sqe, void *arg)
{
	static char buf[16];

	io_uring_prep_read(sqe, *(int *)arg, buf, sizeof(buf), 0);
}

/* A file and the slot it got in the ring's fixed file table. */
struct fixed {
	int fd;
	int index;
};

static void prep_read_fixed_file(struct io_uring_sqe *sqe, void *arg)
{
	static char buf[16];
	struct fixed *f = arg;

	io_uring_prep_read(sqe, f->fd, buf, sizeof(buf), 0);
	iothread_sqe_fixed(sqe, f->index);
}

static void prep_recv_fixed_file(struct io_uring_sqe *sqe, void *arg)
{
	static char buf[16];
	struct fixed *f = arg;

	io_uring_prep_recv(sqe, f->fd, buf, sizeof(buf), 0);
	iothread_sqe_fixed(sqe, f->index);
}

static int try_nop(void *arg)
{
	return submit_one(prep_nop, arg);
}

static int try_openat(void *arg)
{
	return submit_one(prep_openat, arg);
}

static int try_read(void *arg)
{
	return submit_one(prep_read, arg);
}

/* Registers @f->fd, submits what @prep makes of it, releases it: the SQE's result. */
static int try_fixed(struct fixed *f, void (*prep)(struct io_uring_sqe *sqe, void *arg))
{
	struct iothread *it = iothread_current();
	int ret;

	f->index = iothread_file_index(it, f->fd);
	if (f->index < 0)
		return f->index;
	ret = submit_one(prep, f);
	iothread_file_release(it, f->fd);
	return ret;
}

static int try_read_fixed(void *arg)
{
	return try_fixed(arg, prep_read_fixed_file);
}

static int try_recv_fixed(void *arg)
{
	return try_fixed(arg, prep_recv_fixed_file);
}

static void the_ring_refuses_operations_outside_its_allowlist(void **state)
{
	struct iothread *it = start(0);
	int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	struct fixed zero = { fd, -1 };

	assert_int_equal(iothread_run_sync(it, try_nop, NULL), -EACCES);
	assert_int_equal(iothread_run_sync(it, try_openat, NULL), -EACCES);
	/* the same READ: refused on a plain fd, done on a registered one */
	assert_int_equal(iothread_run_sync(it, try_read, &fd), -EACCES);
	assert_int_equal(iothread_run_sync(it, try_read_fixed, &zero), 16);
	close(fd);
	iothread_destroy(it);
}

/* A block iothread's ring takes no socket operation; one that serves sockets (the storage
 * daemon's, for the NBD server) takes RECV, on a registered socket only. */
static void only_a_ring_that_serves_sockets_takes_socket_operations(void **state)
{
	struct iothread_opts net = { .serves_sockets = true };
	struct iothread *blk = start(0), *srv = start_opts(&net);
	int sv[2];
	struct fixed f;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f = (struct fixed){ sv[0], -1 };
	assert_int_equal(write(sv[1], "0123456789abcdef", 16), 16);
	assert_int_equal(iothread_run_sync(blk, try_recv_fixed, &f), -EACCES);
	assert_int_equal(iothread_run_sync(srv, try_recv_fixed, &f), 16);
	assert_int_equal(write(sv[1], "0123456789abcdef", 16), 16);
	assert_int_equal(iothread_run_sync(srv, try_read, &sv[0]), -EACCES); /* plain fd */
	close(sv[0]);
	close(sv[1]);
	iothread_destroy(blk);
	iothread_destroy(srv);
}

#define MANY_FILES 256

struct many {
	int fds[MANY_FILES];
	int index[MANY_FILES];
	unsigned int caps[MANY_FILES];
	int refused;
	struct error *err;
};

/* Registers every fd of @m (one slot each), then one more than the table may hold. */
static int register_many(void *arg)
{
	struct iothread *it = iothread_current();
	struct many *m = arg;
	struct fixed last;
	int ret;

	/* the message eventfd holds slot 0: MANY_FILES - 1 more fill a table of MANY_FILES */
	for (int i = 0; i < MANY_FILES - 1; i++) {
		m->index[i] = iothread_file_index(it, m->fds[i]);
		m->caps[i] = iothread_files_capacity(it);
	}
	m->refused = iothread_file_index(it, m->fds[MANY_FILES - 1]);
	ret = iothread_file_register(it, m->fds[MANY_FILES - 1], "'one too many'", &m->err);
	/* a file at a slot past the first table's still works: the table grew under it */
	last = (struct fixed){ m->fds[MANY_FILES - 2], m->index[MANY_FILES - 2] };
	if (ret != -1 || submit_one(prep_read_fixed_file, &last) != 16)
		return -1;
	for (int i = 0; i < MANY_FILES - 1; i++)
		iothread_file_release(it, m->fds[i]);
	return 0;
}

static void the_file_table_grows_then_refuses_with_a_message(void **state)
{
	struct iothread_opts o = { .max_files = MANY_FILES };
	struct rlimit rl;
	struct iothread *it;
	struct many *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 2 * MANY_FILES) {
		print_message("skipped: RLIMIT_NOFILE is below %d\n", 2 * MANY_FILES);
		free(m);
		skip();
	}
	it = start_opts(&o);
	assert_int_equal(iothread_files_capacity(it), IOTHREAD_FILES_START);
	for (int i = 0; i < MANY_FILES; i++) {
		m->fds[i] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
		assert_true(m->fds[i] >= 0);
	}
	assert_int_equal(iothread_run_sync(it, register_many, m), 0);
	for (int i = 0; i < MANY_FILES - 1; i++) {
		assert_true(m->index[i] > 0 && m->index[i] < MANY_FILES);
		for (int k = 0; k < i; k++)
			assert_int_not_equal(m->index[i], m->index[k]);
	}
	/* it doubled as it filled: 64, 128, 256 */
	assert_int_equal(m->caps[IOTHREAD_FILES_START - 2], IOTHREAD_FILES_START);
	assert_int_equal(m->caps[IOTHREAD_FILES_START - 1], 2 * IOTHREAD_FILES_START);
	assert_int_equal(m->caps[MANY_FILES - 2], MANY_FILES);
	assert_int_equal(m->refused, -EMFILE);
	assert_non_null(m->err);
	assert_non_null(strstr(error_msg(m->err), "iothread test-io: cannot register 'one too "
				"many' in its ring's fixed file table: the table is full (256 files"));
	error_free(m->err);
	for (int i = 0; i < MANY_FILES; i++)
		close(m->fds[i]);
	iothread_destroy(it);
	free(m);
}

static int fill_table(void *arg)
{
	struct many *m = arg;

	for (int i = 0; i < IOTHREAD_FILES_START - 1; i++)
		if (iothread_file_index(iothread_current(), m->fds[i]) < 0)
			return -1;
	return 0;
}

/* A queue's kick eventfd takes a slot too: a full table refuses the source, saying why. */
static void a_source_is_refused_when_the_table_is_full(void **state)
{
	struct iothread_opts o = { .max_files = IOTHREAD_FILES_START };
	struct iothread *it = start_opts(&o);
	struct fake_src *f = fake_new(true);
	struct many *m = calloc(1, sizeof(*m));
	struct error *err = NULL;

	assert_non_null(m);
	for (int i = 0; i < IOTHREAD_FILES_START - 1; i++)
		m->fds[i] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	assert_int_equal(iothread_run_sync(it, fill_table, m), 0);
	assert_int_equal(iothread_add_source(it, &f->src, &err), -1);
	assert_non_null(strstr(error_msg(err), "cannot register a queue's notification eventfd "
				"in its ring's fixed file table: the table is full"));
	error_free(err);
	iothread_destroy(it);
	for (int i = 0; i < IOTHREAD_FILES_START - 1; i++)
		close(m->fds[i]);
	fake_free(f);
	free(m);
}

/* ---- timers ---- */

struct tmr {
	struct iothread_timer t;
	struct iothread *it;
	int id;
	uint64_t deadline, fired_at;
	int rearm;              /* fire arms it again this many times */
	sem_t *done;
};

static int fired[8], nr_fired;

static void tmr_fire(struct iothread_timer *t)
{
	struct tmr *m = container_of(t, struct tmr, t);

	m->fired_at = iothread_clock_ns();
	fired[nr_fired++] = m->id;
	if (m->rearm > 0) {
		m->rearm--;
		m->deadline = m->fired_at + 1000000;
		iothread_timer_arm(m->it, &m->t, m->deadline);
		return;
	}
	if (m->done)
		sem_post(m->done);
}

struct arm_call {
	struct tmr *m;
	uint64_t at;
	bool cancel;
};

static int arm_fn(void *arg)
{
	struct arm_call *c = arg;

	if (c->cancel) {
		iothread_timer_cancel(c->m->it, &c->m->t);
		return 0;
	}
	c->m->deadline = c->at;
	iothread_timer_arm(c->m->it, &c->m->t, c->at);
	/* never fired inside arm, even when due */
	return nr_fired;
}

/* arm_fn for each call of a list ended by one without a timer */
static int arm_all_fn(void *arg)
{
	for (struct arm_call *c = arg; c->m; c++)
		arm_fn(c);
	return 0;
}

/* a sleeping iothread (no polling) wakes for its timers, in deadline order, never early; a
 * cancelled one does not fire, a re-armed one fires at its new deadline, fire may re-arm */
static void timers_wake_a_sleeping_iothread_in_deadline_order(void **state)
{
	struct iothread *it = start(0);
	struct tmr m[4] = { 0 };
	sem_t done;
	uint64_t now = iothread_clock_ns();
	struct arm_call cancel = { &m[3], 0, true };

	sem_init(&done, 0, 0);
	nr_fired = 0;
	for (int i = 0; i < 4; i++)
		m[i] = (struct tmr){ .t.fire = tmr_fire, .it = it, .id = i };
	m[0].done = &done;
	m[0].rearm = 2;
	/* all in one call on the thread: on a loaded machine, separate calls could let the
	 * first timers come due before the last ones are armed or cancelled */
	iothread_run_sync(it, arm_all_fn, (struct arm_call[]){
		{ &m[0], now + 60000000 }, /* 60 ms, then twice 1 ms more */
		{ &m[1], now + 20000000 },
		{ &m[2], now + 90000000 },
		{ &m[2], now + 40000000 }, /* moved earlier */
		{ &m[3], now + 30000000 },
		cancel,
		{ NULL } });
	assert_true(wait_sem(&done));
	assert_int_equal(nr_fired, 5);
	assert_int_equal(fired[0], 1);
	assert_int_equal(fired[1], 2);
	assert_int_equal(fired[2], 0);
	assert_int_equal(fired[3], 0);
	assert_int_equal(fired[4], 0);
	for (int i = 0; i < 3; i++)
		assert_true(m[i].fired_at >= m[i].deadline);
	assert_int_equal(m[3].fired_at, 0);
	assert_false(iothread_timer_armed(&m[0].t));
	iothread_destroy(it);
	sem_destroy(&done);
}

static int due_now_fn(void *arg)
{
	struct tmr *m = arg;

	iothread_timer_arm(m->it, &m->t, iothread_clock_ns() - 1);
	return nr_fired; /* a due timer does not fire inside arm */
}

static int wait_for_timer_fn(void *arg)
{
	struct tmr *m = arg;

	iothread_timer_arm(m->it, &m->t, iothread_clock_ns() + 5000000);
	while (iothread_timer_armed(&m->t)) /* a nested wait (a drain) fires timers too */
		if (iothread_wait_once(m->it) < 0)
			return -1;
	return nr_fired;
}

static void a_due_timer_fires_in_the_turn_and_nested_waits_fire_timers(void **state)
{
	struct iothread *it = start(IOTHREAD_POLL_MAX_NS_DEFAULT);
	struct tmr m = { .t.fire = tmr_fire, .id = 5 };
	sem_t done;

	sem_init(&done, 0, 0);
	m.it = it;
	m.done = &done;
	nr_fired = 0;
	assert_int_equal(iothread_run_sync(it, due_now_fn, &m), 0);
	assert_true(wait_sem(&done));
	assert_int_equal(nr_fired, 1);
	assert_int_equal(iothread_run_sync(it, wait_for_timer_fn, &m), 2);
	iothread_destroy(it);
	sem_destroy(&done);
}

/*
 * A message that waits inside itself (a drain waiting for a request whose completion comes back
 * as a message from the slow-path worker) while that message was taken from the queue in the
 * same batch: the nested wait must run it. A timer bounds the wait so a failure is not a hang.
 */
struct nested {
	struct iothread *it;
	sem_t gate, done;
	struct iothread_timer limit;
	bool limit_hit;
	atomic_bool completion_ran;
	bool seen_inside;
};

static struct nested nested;

static void nested_limit(struct iothread_timer *t)
{
	nested.limit_hit = true;
}

static void nested_block(void *arg)
{
	while (sem_wait(&nested.gate) < 0 && errno == EINTR)
		;
}

static void nested_drain(void *arg)
{
	nested.limit.fire = nested_limit;
	iothread_timer_arm(nested.it, &nested.limit, iothread_clock_ns() + 2000000000ull);
	while (!atomic_load(&nested.completion_ran) && !nested.limit_hit)
		if (iothread_wait_once(nested.it) < 0)
			break;
	nested.seen_inside = atomic_load(&nested.completion_ran);
	iothread_timer_cancel(nested.it, &nested.limit);
	sem_post(&nested.done);
}

static void nested_completion(void *arg)
{
	atomic_store(&nested.completion_ran, true);
}

static void a_message_waiting_inside_itself_runs_the_messages_taken_with_it(void **state)
{
	nested.it = start(0);
	sem_init(&nested.gate, 0, 0);
	sem_init(&nested.done, 0, 0);
	/* the thread is held in the first message while the next two queue up: one batch */
	assert_int_equal(iothread_post(nested.it, nested_block, NULL), 0);
	usleep(20000);
	assert_int_equal(iothread_post(nested.it, nested_drain, NULL), 0);
	assert_int_equal(iothread_post(nested.it, nested_completion, NULL), 0);
	sem_post(&nested.gate);
	assert_true(wait_sem(&nested.done));
	assert_false(nested.limit_hit);
	assert_true(nested.seen_inside);
	iothread_destroy(nested.it);
	sem_destroy(&nested.gate);
	sem_destroy(&nested.done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(run_sync_runs_on_the_iothread_and_returns_its_value),
		cmocka_unit_test(posted_messages_run_in_order),
		cmocka_unit_test(nice_is_set_on_the_thread_and_a_refusal_is_an_error),
		cmocka_unit_test(a_kick_wakes_a_sleeping_iothread),
		cmocka_unit_test(work_arriving_as_notifications_turn_on_is_not_lost),
		cmocka_unit_test(removing_a_sleeping_source_cancels_its_kick_read),
		cmocka_unit_test(a_file_registers_once_per_ring),
		cmocka_unit_test(the_ring_refuses_operations_outside_its_allowlist),
		cmocka_unit_test(only_a_ring_that_serves_sockets_takes_socket_operations),
		cmocka_unit_test(the_file_table_grows_then_refuses_with_a_message),
		cmocka_unit_test(a_source_is_refused_when_the_table_is_full),
		cmocka_unit_test(poll_window_grows_shrinks_and_is_capped),
		cmocka_unit_test(a_late_completion_halves_the_default_window_instead_of_dropping_it),
		cmocka_unit_test(idle_shrinks_the_window_to_off_and_growth_restarts_at_the_start),
		cmocka_unit_test(pre_sleep_spins_earn_and_lose_credit_within_bounds),
		cmocka_unit_test(affinity_confines_the_thread_and_refuses_cpus_that_are_not_there),
		cmocka_unit_test(a_long_yield_backs_off_unless_our_io_completed_meanwhile),
		cmocka_unit_test(a_polling_iothread_sees_work_without_kicks),
		cmocka_unit_test(timers_wake_a_sleeping_iothread_in_deadline_order),
		cmocka_unit_test(a_due_timer_fires_in_the_turn_and_nested_waits_fire_timers),
		cmocka_unit_test(a_message_waiting_inside_itself_runs_the_messages_taken_with_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
