/* SPDX-License-Identifier: Apache-2.0 */
/*
 * iothreads: one event loop thread per `struct iothread`, each with its own io_uring.
 *
 * Ownership. Everything inside an iothread (its ring, its registered-file table, its list of
 * sources, the blockdev queues bound to it) belongs to that thread alone: only it submits, reaps,
 * registers files, and calls the sources. Other threads reach it only through its message queue
 * (iothread_post / iothread_run_sync): a mutex-protected list plus an eventfd whose READ is kept
 * armed in the ring. The lock is taken by posters and by the iothread when a message is flagged,
 * never on the request path. The ring is created on the thread itself, so
 * IORING_SETUP_SINGLE_ISSUER holds (used when the kernel has it, as is COOP_TASKRUN).
 * io_uring operations bypass seccomp, so each ring is restricted before it is enabled to the
 * opcodes the engine uses (READV, WRITEV, READ_FIXED, WRITE_FIXED, FSYNC, FALLOCATE, READ,
 * POLL_ADD, ASYNC_CANCEL) and the NBD server's sockets use (ACCEPT, RECV, SENDMSG), the
 * IOSQE_FIXED_FILE flag, and the register operations FILES_UPDATE and (UN)REGISTER_BUFFERS;
 * anything else completes with -EACCES. An engine that needs a new
 * opcode adds it to allowed_sqe_ops in iothread.c.
 *
 * Sources. A device queue registers a `struct iothread_source` (iothread_add_source). The loop:
 *
 *   1. run posted messages (only when the atomic "pending" flag says there are any);
 *   2. call poll() of every source: it takes the guest requests available now and submits
 *      them (blockdev_submit queues SQEs; nothing is handed to the kernel yet);
 *   3. submit the SQEs of this turn in one io_uring_enter (batching); an engine may hand its
 *      SQEs to the kernel earlier with iothread_submit() (I/O a device serves: see there);
 *   4. reap every CQE, run the completions (blockdev done() callbacks), then call flush() of
 *      every source so that a device raises at most one interrupt per queue per turn;
 *   5. if step 2 or 4 found work, or less than the current poll time went by since the last
 *      work, loop again (with sched_yield() when nothing was found: on a shared host a spinning
 *      thread must yield); otherwise go to sleep:
 *   6. notify_enable(true) on every source, then poll() again: a request that arrived before
 *      notifications were on would have sent no kick, so it is caught here (the device's
 *      notify_enable must order its write of the "notify me" flag before this second read of
 *      the avail index with a full barrier). If none, sleep in io_uring_submit_and_wait: a READ
 *      on each source's kick eventfd, the message eventfd and in-flight I/O all wake it, and
 *      the earliest armed timer bounds the wait (the wait's own timeout, IORING_ENTER_EXT_ARG).
 *      Then notify_enable(false) and back to 1.
 *
 * Timers. A `struct iothread_timer` is armed for a CLOCK_MONOTONIC deadline on one iothread and
 * fires there, in step 3/4 of the first turn at or after its deadline (before the turn's
 * submit, so that what it issues goes with that submit). The armed timers are a list sorted by
 * deadline, touched only by the iothread (arm, cancel and fire all run there); a polling thread
 * compares the head against the clock once a turn, a sleeping one sleeps no longer than the
 * head's deadline. The wait's timeout is the ring's timer (an IORING_OP_TIMEOUT that liburing
 * would otherwise add needs no opcode in the allowlist this way, and no cancel when the
 * deadline moves). Nested waits (iothread_wait_once, so a drain) fire timers too.
 *
 * Adaptive polling (our own rule, same spirit as QEMU's IOThread aio-poll): let `poll_ns` be
 * the current busy-poll window, `block_ns` the time from starting to wait for work until work
 * came (polling plus sleeping). If block_ns <= poll_ns polling paid off: keep it. If block_ns >
 * poll_max_ns the wait was too long to be worth spinning: shrink (divide by poll_shrink, or
 * drop to 0 if poll_shrink is 0). Otherwise (work came after the window but within
 * poll_max_ns) grow: multiply by poll_grow (2 if 0), starting from 4 µs, capped at poll_max_ns.
 * poll_max_ns = 0 disables polling: the thread sleeps as soon as a turn finds nothing.
 * Contention back-off: a sched_yield() while polling that kept the core away for more than
 * IOTHREAD_POLL_STOLEN_NS, with none of our I/O completed meanwhile, means another thread (a
 * spinning vCPU) wants the core: polling stops for IOTHREAD_POLL_BACKOFF_NS (the guest's kicks
 * wake the sleeping thread at once). A yield shorter than IOTHREAD_POLL_SLICE_NS during which
 * our own completions arrived gave the core to the kernel's io-wq worker doing our I/O: no
 * back-off (iothread_poll_contended()). A thread about to sleep (backed off, or its window ran
 * out) with none of its I/O in flight first spins until IOTHREAD_SPIN_NS after its last work,
 * without yielding, as long as such spins keep finding work (a credit,
 * iothread_spin_credit()): the guest's next request comes
 * within microseconds when the vCPU runs on the other core, and a kick plus a wake-up cost
 * tens of microseconds here. Measured on 2 cores with 2 spinning vCPUs and 2 iothreads:
 * page-cached randread QD1 2 queues 38k -> 180k IOPS (medians of 4); without the credit, the
 * spins cost buffered randwrite QD32 2 queues a third of its IOPS (they rarely found work).
 *
 * Barriers. msg_pending is stored with release by posters (after linking the message, under
 * the lock) and loaded with acquire by the loop, so a loop that sees it set finds the message
 * when it takes the lock. The stop flag and the published poll window are relaxed (the join in
 * iothread_destroy and the message that set stop order the rest). Everything else is touched
 * by the iothread alone. The guest-facing barriers (avail index vs. notification flag) are the
 * device's, in its poll() and notify_enable().
 *
 * The engine interface (iothread_get_sqe, struct iothread_op, iothread_file_index) is what
 * blockdev/engine.c uses to put I/O on the ring; devices do not need it.
 */
#ifndef VIREO_IOTHREADS_IOTHREAD_H
#define VIREO_IOTHREADS_IOTHREAD_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

struct iothread;
struct io_uring_sqe;
struct iovec;

/*
 * Default busy-poll ceiling (128 µs), and where a growing window starts. Four times QEMU's
 * IOThread default: the window must outlast a disk's completion time (O_DIRECT on NVMe or a
 * cloud disk: 10-100 µs), or every completion pays a wake-up from sleep (~40 µs on this
 * project's nested KVM). With 32 µs, cache=none QD1 here ran at 12.7k IOPS, p50 79 µs; with
 * 128 µs 21.9k, p50 43 µs (QEMU 10, whose iothread spins through the completion too: 21.6k).
 */
#define IOTHREAD_POLL_MAX_NS_DEFAULT 131072
#define IOTHREAD_POLL_START_NS 4000
/*
 * Default shrink divisor for the VMM's iothreads (QEMU's is 0: reset to 0). Halving keeps the
 * window over a disk whose completions sometimes run late: with a reset, one slow write
 * (p99 ~100 µs here) dropped polling and the next writes each paid a wake-up while the window
 * grew back (cache=none QD1 randwrite 19-23k IOPS, p50 41-50 µs; halving: 24k, p50 39 µs).
 * An idle guest costs one window per halving, not more: the thread sleeps after each.
 */
#define IOTHREAD_POLL_SHRINK_DEFAULT 2
/* Default grow factor (QEMU's too: poll-grow=0 means it) */
#define IOTHREAD_POLL_GROW_DEFAULT 2
/* a sched_yield() that kept the CPU away longer than this means the core is contended */
#define IOTHREAD_POLL_STOLEN_NS 50000
/* ... even when our completions came meanwhile, if it lasted this long (a time slice) */
#define IOTHREAD_POLL_SLICE_NS 300000
/* how long polling stays off after that */
#define IOTHREAD_POLL_BACKOFF_NS 20000000
/* before sleeping: spin this long after the last work while the credit lasts; probe every 64th */
#define IOTHREAD_SPIN_NS 20000
#define IOTHREAD_SPIN_CREDIT_MAX 8
#define IOTHREAD_SPIN_PROBE 64

/**
 * struct iothread_opts - tuning of one iothread
 * @poll_max_ns: longest busy-poll window in ns; 0 = never poll, sleep when idle
 * @poll_grow: factor to grow the window by (0 = 2)
 * @poll_shrink: divisor to shrink it by (0 = reset to 0)
 * @ring_entries: io_uring SQ size (0 = 256)
 * @max_files: the most files its ring's fixed file table may grow to (0 = IOTHREAD_FILES_MAX;
 *       the kernel also holds it to RLIMIT_NOFILE)
 * @serves_sockets: the ring may carry the NBD server's socket operations (ACCEPT, RECV,
 *       SENDMSG) besides the block engine's; the storage daemon's iothreads only
 *
 * Zero-initialised opts mean: no polling. Most callers want poll_max_ns =
 * IOTHREAD_POLL_MAX_NS_DEFAULT.
 */
struct iothread_opts {
	uint64_t poll_max_ns;
	unsigned int poll_grow;
	unsigned int poll_shrink;
	unsigned int ring_entries;
	/*
	 * Keep polling even when a sched_yield shows the core is contended (see
	 * IOTHREAD_POLL_STOLEN_NS). For iothreads on cores of their own; by default polling backs
	 * off for IOTHREAD_POLL_BACKOFF_NS instead, so that spinning vCPUs do not starve it.
	 */
	bool poll_keep_on_contention;
	/*
	 * @nice_set: the thread sets its nice value to @nice (-20..19) before it starts. A
	 * negative one lets its wake-ups preempt a vCPU spinning on its core (see the drive key
	 * iothread-nice); lowering it needs CAP_SYS_NICE or a large enough RLIMIT_NICE, and
	 * iothread_create() fails with a message when the kernel refuses.
	 */
	int nice;
	bool nice_set;
	unsigned int max_files;
	bool serves_sockets;
};

/*
 * The ring's fixed file table: it starts with IOTHREAD_FILES_START slots and doubles when full,
 * up to IOTHREAD_FILES_MAX (or opts.max_files). Every SQE names a registered file: the ring
 * refuses a plain fd (IORING_RESTRICTION_SQE_FLAGS_REQUIRED), see ring_restrict() in
 * iothread.c.
 */
#define IOTHREAD_FILES_START 64
#define IOTHREAD_FILES_MAX 4096

/**
 * struct iothread_op - completion target of one SQE (engine interface)
 * @complete: called on the iothread with the CQE's res (bytes or -errno)
 *
 * Embed it in whatever tracks the I/O and pass it to iothread_get_sqe(); the loop calls
 * complete() once per CQE.
 */
struct iothread_op {
	void (*complete)(struct iothread_op *op, int res);
	/* iothread-private: deferred-completion list, in-flight accounting */
	struct iothread_op *next;
	int res;
	bool counted;
};

/**
 * struct iothread_source - something the loop polls: one virtqueue of a device
 * @poll: take the requests available now and submit them; return how many it took (0 = none;
 *        a negative value counts as 0: the device reports its own errors)
 * @notify_enable: turn guest notifications (kicks) on before sleeping, off while polling; with
 *        enable=true it must be followed (inside it) by a full barrier so that the caller's
 *        next poll() reads the avail index after the flag is visible to the guest. May be NULL.
 * @flush: called after each batch of completions: raise the interrupt if one is due (the
 *        device coalesces irqfd writes here). May be NULL.
 * @kick_fd: eventfd the guest's notification signals (KVM ioeventfd), or -1 (pure polling);
 *        blocking or not. The iothread reads it (resetting its counter) when it sleeps.
 *
 * The rest is the iothread's. A source is owned by its device; it must stay allocated until
 * iothread_remove_source() returned.
 */
struct iothread_source {
	int (*poll)(struct iothread_source *src);
	void (*notify_enable)(struct iothread_source *src, bool enable);
	void (*flush)(struct iothread_source *src);
	int kick_fd;

	/* iothread-private */
	int kick_index; /* kick_fd's slot in the ring's fixed file table */
	struct iothread_source *next;
	struct iothread_op kick_op; /* completion of the armed kick READ */
	uint64_t kick_buf;
	bool kick_armed;
	bool kick_poll; /* this kernel needs POLL_ADD + read() for the kick */
};

/**
 * iothread_create - start an iothread
 * @name: thread name (at most 15 characters are kept), e.g. "io0"
 * @opts: tuning (NULL = no polling)
 * @errp: error (ring set-up failure names the io_uring call)
 *
 * Creates the thread, which sets up its ring and eventfds; returns once it is running, or NULL.
 */
struct iothread *iothread_create(const char *name, const struct iothread_opts *opts,
				 struct error **errp);

/**
 * iothread_destroy - stop and join an iothread
 *
 * Call from another thread, after every source was removed and every blockdev queue on it was
 * drained. Frees @it. NULL is a no-op.
 */
void iothread_destroy(struct iothread *it);

/**
 * iothread_run_sync - run @fn(@arg) on the iothread and wait for it
 *
 * From any other thread: posts a message and waits; returns fn's return value, or -ENOMEM if
 * the message could not be allocated. Called on the iothread itself it runs fn inline. Used by
 * the control plane for set-up, drain, pause and stop; fn runs between loop turns, so it may
 * call blockdev_queue_drain().
 */
int iothread_run_sync(struct iothread *it, int (*fn)(void *arg), void *arg);

/**
 * iothread_post - run @fn(@arg) on the iothread soon, without waiting
 *
 * From any thread (also the iothread itself: it runs at the next turn). Returns 0 or -ENOMEM.
 */
int iothread_post(struct iothread *it, void (*fn)(void *arg), void *arg);

/* true when the calling thread is @it. */
bool iothread_is_current(const struct iothread *it);

/*
 * A timestamp of the iothread's current loop phase (CLOCK_MONOTONIC ns), read twice a turn:
 * at the start (what the sources poll and submit see it) and at the start of the completion
 * phase (what completes sees it). Devices time requests with it (block statistics) without a
 * clock read each; a request submitted and completed in one turn gets the time between the
 * two. On the iothread only.
 */
uint64_t iothread_turn_ns(const struct iothread *it);

/* The thread name given to iothread_create. */
const char *iothread_name(const struct iothread *it);
/* The thread's host id (as QMP's query-iothreads reports it), known once iothread_create returned. */
pid_t iothread_tid(const struct iothread *it);
/* The options it was created with. */
const struct iothread_opts *iothread_get_opts(const struct iothread *it);

/**
 * iothread_register_memory - let the ring do I/O into these regions with fixed buffers
 * @regions: host ranges (guest RAM), at most IOTHREAD_MAX_MEM_REGIONS after splitting each
 *           into pieces of at most 1 GiB
 * @n: entries in @regions; 0 unregisters
 *
 * Opt-in: registration pins every page of the regions (so guest RAM becomes resident and
 * counts against RLIMIT_MEMLOCK without CAP_IPC_LOCK), and in exchange the kernel does not pin
 * and unpin the buffer pages on each O_DIRECT request (single-buffer requests then use
 * READ_FIXED / WRITE_FIXED). From any thread (runs on the iothread); replaces an earlier
 * registration; requests in flight keep their buffers. Returns 0 or -1 (the iothread keeps
 * working without fixed buffers).
 */
#define IOTHREAD_MAX_MEM_REGIONS 16
int iothread_register_memory(struct iothread *it, const struct iovec *regions, int n,
			     struct error **errp);

/**
 * iothread_add_source - start polling @src on @it
 *
 * From any thread (runs on the iothread through iothread_run_sync). The source starts with
 * notifications disabled, i.e. the loop calls notify_enable(false) first. Its kick_fd (if any)
 * takes a slot of the ring's fixed file table until it is removed. Returns 0 or -1 (a full
 * table: the message says so).
 */
int iothread_add_source(struct iothread *it, struct iothread_source *src, struct error **errp);

/**
 * iothread_remove_source - stop polling @src
 *
 * From any thread. Returns once the iothread will not call @src again and its kick READ has
 * been cancelled and reaped, so the caller may then free @src and close kick_fd. Requests the
 * source submitted must be drained by the caller (before or after).
 */
void iothread_remove_source(struct iothread *it, struct iothread_source *src);

/* ---------------------------------------------------------------------------------------------
 * Engine interface: iothread only.
 */

/**
 * iothread_get_sqe - a free SQE of @it's ring whose completion goes to @op
 *
 * Submits the pending SQEs first if the SQ is full. The SQE is handed to the kernel at the end
 * of the current loop turn (or before the loop sleeps). Returns NULL only if the ring is broken
 * (the caller then fails its request with -EIO).
 */
struct io_uring_sqe *iothread_get_sqe(struct iothread *it, struct iothread_op *op);

/**
 * iothread_file_index - the registered-file index of @fd in @it's ring
 *
 * Registers @fd on first use (reference counted), growing the table when it is full. Returns
 * the index, which the SQE takes as its fd with IOSQE_FIXED_FILE (iothread_sqe_fixed), or
 * -errno: -EMFILE when the table holds as many files as it may (opts.max_files, RLIMIT_NOFILE),
 * -EBADF for a negative @fd, or what the kernel answered. There is no plain-fd fallback: the
 * ring refuses SQEs without IOSQE_FIXED_FILE (-EACCES).
 */
int iothread_file_index(struct iothread *it, int fd);

/*
 * iothread_file_register - iothread_file_index with a message: -1 and "iothread NAME: cannot
 * register WHAT in its ring's fixed file table: ..." (for a full table, how many it holds).
 */
int iothread_file_register(struct iothread *it, int fd, const char *what, struct error **errp);
/* The message iothread_file_register gives for iothread_file_index's -errno @err. */
void iothread_file_error(struct iothread *it, int err, const char *what, struct error **errp);

/* Points @sqe, prepared for a plain fd, at registered file @index (sets IOSQE_FIXED_FILE). */
void iothread_sqe_fixed(struct io_uring_sqe *sqe, int index);

/* Prepares @sqe to cancel @op's SQE (by user_data), as a restricted ring takes it. */
void iothread_prep_cancel(struct io_uring_sqe *sqe, struct iothread_op *op);

/* Slots of @it's fixed file table now (it grows when full; for tests). */
unsigned int iothread_files_capacity(const struct iothread *it);

/**
 * iothread_submit - hand the SQEs queued so far to the kernel now, not at the end of the turn
 *
 * For I/O that a device serves (O_DIRECT): the device starts on it while the loop prepares the
 * next request, where a batch would leave it idle until the whole turn was parsed and then give
 * it everything at once. On this project's machine that is worth 10-40 % IOPS at QD32 (the
 * disk behind an O_DIRECT file serves a stream of single requests faster than waves of 32:
 * host fio shows the same). Buffered I/O is done by the kernel inside the submit call, so it
 * stays batched: one syscall for the turn. On the iothread only; a refused submit (-EBUSY,
 * -EAGAIN) leaves the SQEs for step 3.
 */
void iothread_submit(struct iothread *it);

/*
 * iothread_io_begin / iothread_io_end - I/O of this thread's that is done off the ring (the block
 * layer's slow-path worker) starts / has completed. On the iothread only. Like ring I/O in
 * flight, it keeps the thread from spinning before it sleeps: the worker may need this core.
 */
void iothread_io_begin(struct iothread *it);
void iothread_io_end(struct iothread *it);

/* SQEs prepared on @it and not yet handed to the kernel (on the iothread; for tests). */
unsigned int iothread_sqes_queued(struct iothread *it);

/**
 * iothread_defer - complete @op with @res in this turn's completion phase, not now
 *
 * For results known at submission time (a range error, a read of a hole), so that callers of
 * blockdev_submit() never see their done() run inside it.
 */
void iothread_defer(struct iothread *it, struct iothread_op *op, int res);

/* Drops one reference taken by iothread_file_index(); the slot is cleared at zero. */
void iothread_file_release(struct iothread *it, int fd);

/**
 * iothread_buffer_index - the registered buffer that holds [@buf, @buf+@len), or -1
 *
 * For READ_FIXED / WRITE_FIXED (see iothread_register_memory).
 */
int iothread_buffer_index(const struct iothread *it, const void *buf, size_t len);

/**
 * iothread_wait_once - on the iothread: submit, wait for at least one CQE and process it
 *
 * For nested waits such as blockdev_queue_drain(); sources are not polled. Returns 0 or -errno.
 */
int iothread_wait_once(struct iothread *it);

/**
 * iothread_poll_adjust - the adaptive polling rule (see the essay above), as a pure function
 * @poll_ns: current busy-poll window
 * @block_ns: time from starting to wait until work came
 * @opts: poll_max_ns, poll_grow, poll_shrink
 *
 * Returns the next window. Exposed for tests.
 */
uint64_t iothread_poll_adjust(uint64_t poll_ns, uint64_t block_ns,
			      const struct iothread_opts *opts);

/**
 * iothread_poll_contended - the contention back-off rule (see the essay above), pure
 * @yield_ns: how long the polling loop's sched_yield() kept the core away
 * @cqes_ready: completions of ours that arrived meanwhile
 * @opts: poll_keep_on_contention
 *
 * Returns true when polling should stop for IOTHREAD_POLL_BACKOFF_NS. Exposed for tests.
 */
bool iothread_poll_contended(uint64_t yield_ns, unsigned int cqes_ready,
			     const struct iothread_opts *opts);

/**
 * iothread_set_affinity - let @it run only on the host CPUs in @cpus (--affinity ioN=...)
 *
 * From any thread. Fails naming the thread when no CPU of @cpus is available to the process.
 */
int iothread_set_affinity(struct iothread *it, const cpu_set_t *cpus, struct error **errp);

/**
 * iothread_spin_credit - the pre-sleep spin's credit after one spin (see the essay), pure
 * @credit: the credit before
 * @found_work: whether the spin found work before IOTHREAD_SPIN_NS ran out
 *
 * +1 for a spin that found work, -1 for one that did not, within +-IOTHREAD_SPIN_CREDIT_MAX.
 * Exposed for tests.
 */
int iothread_spin_credit(int credit, bool found_work);

/* The current busy-poll window of @it in ns (read without synchronisation: for statistics). */
uint64_t iothread_poll_ns(const struct iothread *it);

/* The calling thread's iothread, or NULL on any other thread. */
struct iothread *iothread_current(void);

/* ---------------------------------------------------------------------------------------------
 * Timers (see "Timers" in the essay above): iothread only.
 */

/**
 * struct iothread_timer - a one-shot timer on an iothread
 * @fire: called on the iothread once the deadline passed (the timer is disarmed first, so
 *        fire may arm it again)
 *
 * Zero-initialise it and set @fire; the rest is the iothread's. It must stay allocated while
 * armed.
 */
struct iothread_timer {
	void (*fire)(struct iothread_timer *t);
	/* iothread-private */
	uint64_t deadline_ns;
	struct iothread_timer *next;
	bool armed;
};

/* CLOCK_MONOTONIC now, in ns (the clock timers' deadlines are in). */
uint64_t iothread_clock_ns(void);

/**
 * iothread_timer_arm - fire @t on @it at @deadline_ns (CLOCK_MONOTONIC)
 *
 * On @it only. Re-arming an armed timer moves its deadline. A deadline already past fires in
 * the current turn's completion phase, never inside this call. Timers with the same deadline
 * fire in the order they were armed.
 */
void iothread_timer_arm(struct iothread *it, struct iothread_timer *t, uint64_t deadline_ns);

/* Disarms @t (nothing when it is not armed). On @it only. */
void iothread_timer_cancel(struct iothread *it, struct iothread_timer *t);

/* true while @t is armed. */
bool iothread_timer_armed(const struct iothread_timer *t);

#endif
