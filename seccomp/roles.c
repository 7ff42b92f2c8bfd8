/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The allowlists of every thread role (roles.h says how they are shaped). The README's table is
 * printed from these arrays by sandbox-table; a test checks that it is current.
 *
 * How to read a role: its groups, plus the groups of every role it may start once its own filter
 * is on (`spawns`): a thread inherits its creator's filter and adds its own, the kernel answering
 * with the stricter of the two, so the creator's filter must let the new thread run. Everything
 * else kills the process (--sandbox on) or is logged (--sandbox log).
 *
 * What no role may do after start: exec, fork, ptrace, mount or any namespace call, create an
 * io_uring (iothreads make theirs in their set-up, before the filter), map anything executable,
 * open a socket of a family other than unix, IPv4 and IPv6, or use an ioctl not listed here.
 */
#include "seccomp/roles.h"

#include <asm/unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/ioctl.h>

#include "common/util.h"

#define SYS(n, w) { __NR_##n, #n, NULL, 0, NULL, w }
#define SYSC(n, c, w) { __NR_##n, #n, &(c), 0, NULL, w }
#define SYSE(n, e, w) { __NR_##n, #n, NULL, e, #e, w }
#define V(x) { x, #x }
#define ONE_OF(a, l, v) { a, SANDBOX_ONE_OF, 0, v, ARRAY_SIZE(v), l }
#define GROUP(id, what, ...)                                                                  \
	static const struct sandbox_rule id##_rules[] = { __VA_ARGS__ };                       \
	static const struct sandbox_group id = { #id, what, id##_rules, ARRAY_SIZE(id##_rules), 0 }

/* The vCPU kick (vmm/vcpu.c: SIGRTMIN + 1 with glibc's SIGRTMIN of 34; sandbox.c checks it). */
#define SANDBOX_SIG_VCPU_KICK 35

/* ---- argument conditions ---------------------------------------------------------------------- */

static const struct sandbox_val prot_exec[] = { V(PROT_EXEC) };
static const struct sandbox_cond no_exec = { 2, SANDBOX_MASK_CLEAR, PROT_EXEC, prot_exec, 1, "prot" };

static const struct sandbox_val clone_thread_v[] = { V(CLONE_THREAD), V(CLONE_VM) };
static const struct sandbox_cond clone_thread = { 0, SANDBOX_MASK_SET, CLONE_THREAD | CLONE_VM,
						  clone_thread_v, 2, "flags" };

static const struct sandbox_val abort_sig_v[] = { V(SIGABRT) };
static const struct sandbox_cond abort_sig = ONE_OF(2, "sig", abort_sig_v);
/* signals sent with every signal blocked (glibc's pthread_kill): never reportable, so allowed */
static const struct sandbox_val kick_sig_v[] = { V(SIGABRT), { SANDBOX_SIG_VCPU_KICK,
							       "SIGRTMIN+1" } };
static const struct sandbox_cond kick_sig = ONE_OF(2, "sig", kick_sig_v);

static const struct sandbox_val spawn_prctl_v[] = { V(PR_SET_NAME), V(PR_SET_NO_NEW_PRIVS) };
static const struct sandbox_cond spawn_prctl = ONE_OF(0, "option", spawn_prctl_v);

static const struct sandbox_val filter_op_v[] = { V(SECCOMP_SET_MODE_FILTER) };
static const struct sandbox_cond filter_op = ONE_OF(0, "operation", filter_op_v);

static const struct sandbox_val socket_families_v[] = { V(AF_UNIX), V(AF_INET), V(AF_INET6) };
static const struct sandbox_cond socket_families = ONE_OF(0, "domain", socket_families_v);

static const struct sandbox_val uring_enter_v[] = {
	V(IORING_ENTER_GETEVENTS), V(IORING_ENTER_SQ_WAKEUP), V(IORING_ENTER_SQ_WAIT),
	V(IORING_ENTER_EXT_ARG),
};
static const struct sandbox_cond uring_enter_flags = {
	3, SANDBOX_MASK_ONLY,
	IORING_ENTER_GETEVENTS | IORING_ENTER_SQ_WAKEUP | IORING_ENTER_SQ_WAIT | IORING_ENTER_EXT_ARG,
	uring_enter_v, ARRAY_SIZE(uring_enter_v), "flags"
};

/* what iothread.c's ring_restrict lets the ring register after it is enabled */
static const struct sandbox_val uring_register_v[] = {
	V(IORING_REGISTER_FILES_UPDATE), V(IORING_REGISTER_FILES), V(IORING_UNREGISTER_FILES),
	V(IORING_REGISTER_BUFFERS), V(IORING_UNREGISTER_BUFFERS),
};
static const struct sandbox_cond uring_register_ops = ONE_OF(1, "opcode", uring_register_v);

static const struct sandbox_val empty_path_v[] = { V(AT_EMPTY_PATH) };
static const struct sandbox_cond empty_path = { 3, SANDBOX_MASK_SET, AT_EMPTY_PATH, empty_path_v,
						1, "flags" };

static const struct sandbox_val fcntl_v[] = {
	V(F_GETFL), V(F_SETFL), V(F_GETFD), V(F_SETFD), V(F_DUPFD_CLOEXEC),
};
static const struct sandbox_cond fcntl_cmds = ONE_OF(1, "cmd", fcntl_v);
static const struct sandbox_val fcntl_pipe_v[] = { V(F_SETPIPE_SZ) };
static const struct sandbox_cond fcntl_pipe = ONE_OF(1, "cmd", fcntl_pipe_v);

/* ioctl's command is its second argument */
static const struct sandbox_val ioctl_vcpu_v[] = {
	V(KVM_RUN), V(KVM_GET_REGS), V(KVM_GET_SREGS),
	V(KVM_IRQ_LINE), V(KVM_SIGNAL_MSI), V(KVM_IOEVENTFD), V(KVM_IRQFD), V(KVM_SET_GSI_ROUTING),
};
static const struct sandbox_cond ioctl_vcpu = ONE_OF(1, "request", ioctl_vcpu_v);

static const struct sandbox_val ioctl_memslot_v[] = { V(KVM_SET_USER_MEMORY_REGION) };
static const struct sandbox_cond ioctl_memslot = ONE_OF(1, "request", ioctl_memslot_v);

static const struct sandbox_val ioctl_block_v[] = {
	V(BLKGETSIZE64), V(BLKSSZGET), V(FS_IOC_GETFLAGS), V(FS_IOC_SETFLAGS), V(TCGETS),
};
static const struct sandbox_cond ioctl_block = ONE_OF(1, "request", ioctl_block_v);

static const struct sandbox_val ioctl_main_v[] = {
	V(BLKGETSIZE64), V(BLKSSZGET), V(FS_IOC_GETFLAGS), V(FS_IOC_SETFLAGS), V(TCGETS),
	V(TCSETS), V(KVM_IRQ_LINE), V(KVM_SIGNAL_MSI), V(KVM_IOEVENTFD), V(KVM_IRQFD),
	V(KVM_SET_GSI_ROUTING),
};
static const struct sandbox_cond ioctl_main = ONE_OF(1, "request", ioctl_main_v);

/* ---- groups ------------------------------------------------------------------------------------ */

GROUP(base, "every thread: memory, locks, time, its own end",
	SYS(futex, "mutexes, condition variables, semaphores, joins"),
	SYS(write, "log lines on stderr; eventfd and console writes"),
	SYSC(mmap, no_exec, "malloc arenas and large blocks, thread stacks"),
	SYSC(mprotect, no_exec, "malloc heap growth, stack guard pages"),
	SYS(munmap, "free of large blocks, thread stacks"),
	SYS(mremap, "realloc of large blocks"),
	SYS(madvise, "malloc trimming; a thread's stack given back as it ends"),
	SYS(brk, "the main malloc arena"),
	SYS(rt_sigprocmask, "glibc blocks signals around thread start and end, abort()"),
	SYS(rt_sigreturn, "return from a signal handler"),
	SYS(restart_syscall, "a call interrupted by a signal resumes"),
	SYS(clock_gettime, "time (the vDSO's fallback)"),
	SYS(gettimeofday, "time (the vDSO's fallback)"),
	SYS(clock_nanosleep, "short sleeps (retries, back-offs)"),
	SYS(nanosleep, "short sleeps (retries, back-offs)"),
	SYS(sched_yield, "polling loops give the core away"),
	SYS(getpid, "log lines, thread ids"),
	SYS(gettid, "thread ids (query-iothreads, query-cpus-fast)"),
	SYSC(tgkill, abort_sig, "abort() on a failed assertion"),
	SYS(getrandom, "OpenSSL and GnuTLS randomness, malloc's tcache seed"),
	SYS(sched_getaffinity, "sysconf(_SC_NPROCESSORS_ONLN) once /sys is refused"),
	SYS(exit, "the thread ends"),
	SYS(exit_group, "the process ends"),
	SYSE(clone3, ENOSYS, "refused: glibc then uses clone, whose flags a filter can check"),
	SYSE(openat, EACCES, "refused where not allowed: glibc opens /proc/sys/vm/overcommit_memory "
	     "(malloc, the first heap shrink) and /sys/devices/system/cpu/online (sysconf) from any "
	     "thread, and copes"),
	SYSE(open, EACCES, "as openat"),
);

GROUP(spawn, "a thread that starts threads once under its filter (the new one runs under it too)",
	SYSC(clone, clone_thread, "pthread_create: threads only, never a process"),
	SYS(set_robust_list, "the new thread registers its robust futex list"),
	SYS(rseq, "the new thread registers its restartable sequence area"),
	SYSC(prctl, spawn_prctl, "the new thread names itself and sets no_new_privs"),
	SYS(capget, "the new thread drops its capabilities (libcap-ng)"),
	SYS(capset, "the new thread drops its capabilities (libcap-ng)"),
	SYSC(seccomp, filter_op, "the new thread loads its own filter"),
);

GROUP(fd_io, "data path on files already open",
	SYS(read, "eventfds, pipes, files"),
	SYS(pread64, "image data and metadata"),
	SYS(pwrite64, "image data and metadata"),
	SYS(preadv, "image data"),
	SYS(pwritev, "image data"),
	SYS(preadv2, "image data"),
	SYS(pwritev2, "image data (RWF_DSYNC for FUA)"),
	SYS(fsync, "flush"),
	SYS(fdatasync, "flush"),
	SYS(fallocate, "write zeroes, discard, preallocation"),
	SYS(ftruncate, "resize"),
	SYS(lseek, "SEEK_DATA/SEEK_HOLE for block status"),
	SYS(fstat, "sizes of open files"),
	SYSC(newfstatat, empty_path, "fstat(), as glibc makes it: an fd and an empty path"),
	SYSC(fcntl, fcntl_cmds, "file status flags"),
	SYSC(ioctl, ioctl_block, "block device size and sector size, nocow flag, isatty()"),
	SYS(close, "files and sockets this thread is done with"),
);

GROUP(uring, "an iothread: its own ring, and the NBD server's connections on it",
	SYSC(io_uring_enter, uring_enter_flags, "submit to and wait on its own ring"),
	SYSC(io_uring_register, uring_register_ops,
	     "its fixed file table and buffers, as the ring's restrictions allow"),
	SYS(prlimit64, "the fixed file table's ceiling (RLIMIT_NOFILE) when it grows"),
	SYS(close, "files and connections it is done with"),
	SYS(lseek, "SEEK_DATA/SEEK_HOLE: the holes an NBD read skips"),
	SYS(setsockopt, "NBD server: TCP_NODELAY on accepted connections"),
	SYS(shutdown, "NBD server: a connection that ends"),
	SYS(pipe2, "NBD server: the pipes a connection's reads are spliced through"),
	SYSC(fcntl, fcntl_pipe, "NBD server: those pipes' size (F_SETPIPE_SZ)"),
);

GROUP(vcpu, "a vCPU",
	SYSC(ioctl, ioctl_vcpu,
	     "KVM_RUN; registers for error messages; the devices' interrupts and eventfds"),
	SYSC(tgkill, kick_sig, "a vCPU that stops the VM kicks the others (pthread_kill)"),
	SYS(poll, "the console's output, when its reader is behind"),
);

GROUP(memslot, "the memory registration thread",
	SYSC(ioctl, ioctl_memslot, "KVM_SET_USER_MEMORY_REGION"),
);

GROUP(nbd_io, "requests to an NBD server on a connection already made (any thread doing I/O)",
	SYS(sendmsg, "requests"),
	SYS(sendto, "requests"),
	SYS(recvfrom, "replies"),
	SYS(recvmsg, "replies"),
	SYS(shutdown, "a connection that failed"),
	SYS(poll, "waits on the socket"),
	SYS(ppoll, "waits on the socket"),
);

static const struct sandbox_val ro_open_v[] = { V(O_WRONLY), V(O_RDWR), V(O_CREAT), V(O_TRUNC) };
static const struct sandbox_cond ro_open = { 2, SANDBOX_MASK_CLEAR,
					     O_WRONLY | O_RDWR | O_CREAT | O_TRUNC, ro_open_v,
					     ARRAY_SIZE(ro_open_v), "flags" };

GROUP(nbd_connect, "connecting to an NBD server (again): sockets and name resolution",
	SYSC(socket, socket_families, "unix, IPv4 and IPv6 stream sockets; the resolver's UDP"),
	SYS(connect, "the server; the resolver's name servers"),
	SYS(setsockopt, "TCP_NODELAY, timeouts"),
	SYS(getsockopt, "SO_ERROR of a non-blocking connect"),
	SYS(getsockname, "the resolver"),
	SYS(bind, "the resolver"),
	SYS(sendmmsg, "the resolver's queries"),
	SYSC(fcntl, fcntl_cmds, "blocking mode"),
	SYSC(openat, ro_open, "the resolver reads /etc/hosts, resolv.conf, nsswitch.conf, gai.conf"),
	SYS(read, "the resolver's files"),
	SYS(close, "sockets, the resolver's files"),
	SYS(newfstatat, "the resolver's files"),
	SYS(fstat, "the resolver's files"),
	SYS(uname, "the TLS client's handshake (GnuTLS asks for the host's name)"),
);

GROUP(control, "the control plane: QMP, blockdev-add, snapshots, images opened and created",
	SYS(openat, "blockdev-add, snapshot overlays, mirror targets; /dev/null (--daemonize)"),
	SYS(newfstatat, "stat() of image paths"),
	SYS(statx, "the direct-I/O alignment of an image opened with cache=none (STATX_DIOALIGN)"),
	SYS(readlink, "realpath() of backing file names"),
	SYS(getcwd, "realpath() of relative names"),
	SYS(unlink, "the QMP socket and the pid file at exit"),
	SYS(fstatfs, "the file system of an image opened (ext4's preallocation)"),
	SYS(eventfd2, "eventfds of new queues, nodes and jobs"),
	SYSC(ioctl, ioctl_main,
	     "block device geometry and the nocow flag of new images; the console's mode; the "
	     "VM's interrupts (block_resize's configuration change)"),
	SYS(poll, "the main loop"),
	SYS(accept4, "QMP clients"),
	SYS(bind, "nbd-server-start"),
	SYS(listen, "nbd-server-start"),
	SYS(getsockname, "nbd-server-start on port 0: the port it got"),
	SYSC(tgkill, kick_sig, "vCPU kicks (pthread_kill) when the VM stops"),
	SYS(rt_sigaction, "signal dispositions at exit"),
	SYS(chdir, "--daemonize: the daemon moves to / once it is ready"),
	SYS(dup2, "--daemonize: stdio onto /dev/null once it is ready"),
);

GROUP(job_prio, "the job thread's priority",
	SYS(sched_setscheduler, "SCHED_IDLE, and normal priority while it is starved"),
	SYS(sched_getscheduler, "its policy"),
	SYS(ioprio_set, "the idle I/O class"),
	SYS(setpriority, "nice"),
);

GROUP(files_open, "a thread that opens or creates images (blockdev-create, mirror targets)",
	SYS(openat, "images opened and created by jobs"),
	SYS(unlink, "a failed create cleans up"),
	SYS(eventfd2, "eventfds of new nodes"),
	SYS(readlink, "realpath()"),
	SYS(getcwd, "relative paths"),
	SYS(newfstatat, "stat() of image paths"),
	SYS(statx, "the direct-I/O alignment of an image opened with cache=none (STATX_DIOALIGN)"),
	SYS(fstatfs, "the file system of an image opened (ext4's preallocation)"),
);

GROUP(nice_setup, "a thread's set-up: its nice value (--vcpu-nice, iothread-nice)",
	SYS(setpriority, "the thread's own nice value"),
	SYS(getpriority, "the thread's own nice value"),
);

GROUP(uring_setup, "an iothread's set-up: its ring, made disabled, restricted, then enabled",
	SYS(io_uring_setup, "the ring (IORING_SETUP_R_DISABLED)"),
	SYS(io_uring_register, "sparse fixed files, the restrictions, enabling the ring"),
	SYS(setpriority, "the thread's own nice value (iothread-nice)"),
	SYS(getpriority, "the thread's own nice value"),
	SYS(prlimit64, "the fixed file table's ceiling (RLIMIT_NOFILE)"),
);

/* ---- roles ------------------------------------------------------------------------------------ */

#define ROLE(...) (const struct sandbox_group *const[]) { __VA_ARGS__, NULL }
#define BIT(r) (1u << (r))

const struct sandbox_role_def sandbox_roles[SANDBOX_ROLE_NR] = {
	[SANDBOX_ROLE_MAIN] = {
		.name = "main",
		.what = "vireo's main thread once the VM is built: QMP, signals, the console",
		.groups = ROLE(&base, &spawn, &fd_io, &control, &nbd_io, &nbd_connect),
		.spawns = BIT(SANDBOX_ROLE_ENGINE) | BIT(SANDBOX_ROLE_QCOW2_POOL) |
			  BIT(SANDBOX_ROLE_JOB) | BIT(SANDBOX_ROLE_NBD_RX),
		.hot = { __NR_poll },
	},
	[SANDBOX_ROLE_SD_MAIN] = {
		.name = "sd-main",
		.what = "vireo-storage-daemon's main thread once set up: QMP, signals",
		.groups = ROLE(&base, &spawn, &fd_io, &control, &nbd_io, &nbd_connect),
		.spawns = BIT(SANDBOX_ROLE_ENGINE) | BIT(SANDBOX_ROLE_QCOW2_POOL) |
			  BIT(SANDBOX_ROLE_JOB) | BIT(SANDBOX_ROLE_NBD_RX) |
			  BIT(SANDBOX_ROLE_NBD_EXPORT) | BIT(SANDBOX_ROLE_IOTHREAD),
		.hot = { __NR_poll },
	},
	[SANDBOX_ROLE_VCPU] = {
		.name = "vcpu",
		.what = "a vCPU: KVM_RUN and the devices' port and MMIO handlers",
		.groups = ROLE(&base, &vcpu),
		.setup = &nice_setup,
		.hot = { __NR_ioctl },
	},
	[SANDBOX_ROLE_IOTHREAD] = {
		.name = "iothread",
		.what = "an iothread: its virtqueues or NBD connections, on its io_uring",
		/* fd_io: a backup's copy-before-write reads the old data on the guest's
		 * iothread, before its write goes on */
		.groups = ROLE(&base, &uring, &fd_io),
		.setup = &uring_setup,
		.hot = { __NR_io_uring_enter },
	},
	[SANDBOX_ROLE_MEMSLOT] = {
		.name = "memslot",
		.what = "registers guest memory with KVM while the VM is built, then ends",
		.groups = ROLE(&base, &memslot),
	},
	[SANDBOX_ROLE_ENGINE] = {
		.name = "engine",
		.what = "a node's slow-path worker: the drivers' blocking calls (NBD, LUKS, ...)",
		.groups = ROLE(&base, &fd_io, &nbd_io),
	},
	[SANDBOX_ROLE_QCOW2_POOL] = {
		.name = "qcow2-pool",
		.what = "a qcow2 image's group-commit helpers (data writes of one commit)",
		.groups = ROLE(&base, &fd_io, &nbd_io),
	},
	[SANDBOX_ROLE_JOB] = {
		.name = "job",
		.what = "the block job thread: stream, commit, mirror, backup, create",
		.groups = ROLE(&base, &spawn, &fd_io, &job_prio, &files_open, &nbd_io, &nbd_connect),
		.spawns = BIT(SANDBOX_ROLE_COPY) | BIT(SANDBOX_ROLE_ENGINE) |
			  BIT(SANDBOX_ROLE_QCOW2_POOL),
	},
	[SANDBOX_ROLE_COPY] = {
		.name = "copy",
		.what = "a mirror's extra copy workers (they live for one copy)",
		.groups = ROLE(&base, &fd_io, &nbd_io),
	},
	[SANDBOX_ROLE_NBD_EXPORT] = {
		.name = "nbd-export",
		.what = "an NBD export's block status worker",
		.groups = ROLE(&base, &fd_io, &nbd_io),
	},
	[SANDBOX_ROLE_NBD_RX] = {
		.name = "nbd-rx",
		.what = "an NBD client node's receiver: replies, and reconnecting",
		.groups = ROLE(&base, &nbd_io, &nbd_connect),
		.hot = { __NR_recvfrom },
	},
};

/* ---- the sanitizers' runtimes ------------------------------------------------------------------ */

static const struct sandbox_rule sanitizer_rules[] = {
	SYS(sigaltstack, "the runtimes' alternate signal stacks"),
	SYS(rt_sigaction, "the runtimes' signal handlers"),
	SYS(prctl, "the runtimes' settings; LeakSanitizer's PR_SET_PTRACER, PR_SET_PDEATHSIG"),
	SYS(clone, "LeakSanitizer's tracer task, at exit"),
	SYS(ptrace, "LeakSanitizer's tracer stops the threads to scan their registers"),
	SYS(wait4, "LeakSanitizer and its tracer wait for each other"),
	SYS(getppid, "LeakSanitizer's tracer"),
	SYS(kill, "the runtimes' reports"),
	/* the runtimes' own calls on x86-64 are the old ones (open, not openat) */
	SYS(open, "reports read /proc/self/maps; the tracer lists /proc/PID/task"),
	SYS(openat, "the same, from glibc"),
	SYS(getdents, "the tracer lists /proc/PID/task"),
	SYS(getdents64, "the same, from glibc"),
	SYS(read, "/proc files"),
	SYS(close, "/proc files"),
	SYS(stat, "the runtimes' file checks"),
	SYS(lstat, "the runtimes' file checks"),
	SYS(fstat, "the runtimes' file checks"),
	SYS(newfstatat, "the runtimes' file checks"),
	SYS(readlink, "/proc/self/exe for reports"),
	SYS(lseek, "files the reports read"),
	SYS(pipe, "the symbolizer"),
	SYS(pipe2, "the symbolizer"),
	SYS(dup2, "the symbolizer"),
	SYS(getrlimit, "stack limits"),
	SYS(prlimit64, "stack limits"),
	SYS(tgkill, "the runtimes' reports (any signal)"),
};
const struct sandbox_group sandbox_group_sanitizer = {
	"sanitizer", "sanitizer builds only (ASan, UBSan, TSan runtimes)", sanitizer_rules,
	ARRAY_SIZE(sanitizer_rules), 1,
};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                      \
	__has_feature(undefined_behavior_sanitizer)
#define SANITIZED 1
#endif
#endif

int sandbox_sanitized(void)
{
#if defined(SANITIZED) || defined(VIREO_SANITIZED)
	return 1;
#else
	return 0;
#endif
}
