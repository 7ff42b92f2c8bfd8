/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What happens on a system call outside a thread's allowlist: the filter answers
 * SECCOMP_RET_TRAP and the kernel sends the thread SIGSYS, handled here.
 *
 *   --sandbox on:  one line on stderr ("vireo: sandbox: thread 'io0' (iothread) made system call
 *                  openat (257), which its role does not allow: killed by SIGSYS"), then the same
 *                  call again: it traps again with SIGSYS blocked (we are in its handler), so the
 *                  kernel resets SIGSYS to its default action and the whole process dies by it.
 *   --sandbox log: the line says "let through (--sandbox log)", once per role and call, and the
 *                  handler makes the call itself from the one syscall instruction every log-mode
 *                  filter lets pass (filter.c), and hands its result back as the call's. Calls
 *                  that cannot be made from a handler (clone, fork, vfork, execve) fail with
 *                  EPERM instead, and a call from another ABI (int 0x80) with ENOSYS; the line
 *                  says so.
 *
 * Everything here is async-signal-safe: the syscall names were resolved by sandbox_init (with
 * libseccomp) into a table, the line is formatted by hand into a stack buffer and written with
 * one write(2), which every role allows; the once-only bits are atomics.
 *
 * Identity: each thread's role and name are thread-locals set by sandbox_thread_spawn (or
 * sandbox_lockdown_main) before its filter goes on; only that thread reads them.
 */
#include "seccomp/sandbox_priv.h"

#include <errno.h>
#include <linux/audit.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <seccomp.h>

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a seccomp SIGSYS (linux/signal.h's, not in every libc) */
#endif

#ifndef __x86_64__
#error "the sandbox's SIGSYS handler reads x86-64 registers"
#endif

static enum sandbox_mode sig_mode;
static char sig_prog[32];
static char *sysnames[SANDBOX_MAX_NR];
static _Atomic uint32_t logged[SANDBOX_ROLE_NR + 1][SANDBOX_MAX_NR / 32];

/* ---- the handler's own system call (log mode) ----------------------------------------------- */

long sandbox_raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
extern const char sandbox_raw_syscall_ret[];

/* System V AMD64: nr, a0..a4 in rdi, rsi, rdx, rcx, r8, r9; a5 on the stack. The kernel's
 * order: rax, then rdi, rsi, rdx, r10, r8, r9. */
__asm__(".text\n"
	".globl sandbox_raw_syscall\n"
	".hidden sandbox_raw_syscall\n"
	".type sandbox_raw_syscall, @function\n"
	"sandbox_raw_syscall:\n"
	"	mov %rdi, %rax\n"
	"	mov %rsi, %rdi\n"
	"	mov %rdx, %rsi\n"
	"	mov %rcx, %rdx\n"
	"	mov %r8, %r10\n"
	"	mov %r9, %r8\n"
	"	mov 8(%rsp), %r9\n"
	"	syscall\n"
	".globl sandbox_raw_syscall_ret\n"
	".hidden sandbox_raw_syscall_ret\n"
	"sandbox_raw_syscall_ret:\n"
	"	ret\n"
	".size sandbox_raw_syscall, .-sandbox_raw_syscall\n");

unsigned long sandbox_sigsys_trampoline_ip(void)
{
	return (unsigned long)sandbox_raw_syscall_ret;
}

/* ---- formatting without libc ----------------------------------------------------------------- */

struct line {
	char buf[512];
	size_t len;
};

static void put(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void put_num(struct line *l, unsigned long v, unsigned int base)
{
	char tmp[24];
	int n = 0;

	if (base == 16)
		put(l, "0x");
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && n < (int)sizeof(tmp));
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--n];
}

static void describe(struct line *l, const siginfo_t *si, const greg_t *g, int role)
{
	static const int argreg[6] = { REG_RDI, REG_RSI, REG_RDX, REG_R10, REG_R8, REG_R9 };
	int nr = si->si_syscall;
	bool native = si->si_arch == AUDIT_ARCH_X86_64 && nr >= 0 && nr < SANDBOX_MAX_NR;
	bool conditional = false;

	put(l, sig_prog);
	put(l, sig_mode == SANDBOX_LOG ? ": sandbox (log): thread '" : ": sandbox: thread '");
	put(l, role >= 0 ? sandbox_self_name() : "?");
	put(l, "' (");
	put(l, role >= 0 ? sandbox_role_name((enum sandbox_role)role) : "no role");
	put(l, ") made system call ");
	put(l, native && sysnames[nr] ? sysnames[nr] : "?");
	put(l, " (");
	put_num(l, (unsigned long)nr, 10);
	if (si->si_arch != AUDIT_ARCH_X86_64) {
		put(l, ", arch ");
		put_num(l, (unsigned long)(unsigned int)si->si_arch, 16);
	}
	put(l, ")(");
	for (int i = 0; i < 4; i++) {
		put_num(l, (unsigned long)g[argreg[i]], 16);
		put(l, ", ");
	}
	put(l, "...)");
	if (native && role >= 0 && sandbox_role_has((enum sandbox_role)role, nr, &conditional) &&
	    conditional)
		put(l, " with arguments its role does not allow");
	else
		put(l, ", which its role does not allow");
}

/* The register holding the path of a call that takes one, or -1. */
static int path_arg(int nr)
{
	switch (nr) {
	case __NR_open: case __NR_stat: case __NR_lstat: case __NR_unlink: case __NR_readlink:
	case __NR_chdir: case __NR_statfs: case __NR_mkdir: case __NR_access: case __NR_rmdir:
		return REG_RDI;
	case __NR_openat: case __NR_newfstatat: case __NR_unlinkat: case __NR_faccessat:
	case __NR_faccessat2: case __NR_statx: case __NR_mkdirat: case __NR_readlinkat:
		return REG_RSI;
	default:
		return -1;
	}
}

static void put_path(struct line *l, const char *p)
{
	for (int i = 0; p[i] && i < 160 && l->len < sizeof(l->buf) - 2; i++)
		l->buf[l->len++] = p[i];
}

static bool first_time(int role, int nr)
{
	uint32_t bit = 1u << (nr % 32);
	int r = role < 0 ? SANDBOX_ROLE_NR : role;

	if (nr < 0 || nr >= SANDBOX_MAX_NR)
		return true;
	return !(atomic_fetch_or(&logged[r][nr / 32], bit) & bit);
}

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
	int nr = si->si_syscall, saved = errno;
	struct line l = { .len = 0 };
	long ret;

	(void)sig;
	if (si->si_code != SYS_SECCOMP)
		return;
	if (sig_mode != SANDBOX_LOG) {
		describe(&l, si, g, sandbox_self_role());
		put(&l, ": killed by SIGSYS (--sandbox log would let it through)\n");
		(void)!write(STDERR_FILENO, l.buf, l.len);
		/* denied again, with SIGSYS blocked: the kernel kills the process by SIGSYS */
		syscall(si->si_arch == AUDIT_ARCH_X86_64 ? nr : __NR_acct, g[REG_RDI], g[REG_RSI],
			g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9]);
		_exit(128 + SIGSYS); /* not reached */
	}
	if (si->si_arch != AUDIT_ARCH_X86_64) {
		ret = -ENOSYS;
	} else if (nr == __NR_clone || nr == __NR_fork || nr == __NR_vfork || nr == __NR_execve ||
		   nr == __NR_execveat) {
		ret = -EPERM;
	} else {
		ret = sandbox_raw_syscall(nr, g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10],
					  g[REG_R8], g[REG_R9]);
	}
	if (first_time(sandbox_self_role(), nr)) {
		int pa = path_arg(nr);

		describe(&l, si, g, sandbox_self_role());
		/* the path the kernel read without a fault, so it may be read here too */
		if (pa >= 0 && ret != -EFAULT && g[pa]) {
			put(&l, " on '");
			put_path(&l, (const char *)g[pa]);
			put(&l, "'");
		}
		if (si->si_arch != AUDIT_ARCH_X86_64)
			put(&l, ": failed with ENOSYS (another ABI)\n");
		else if (nr == __NR_clone || nr == __NR_fork || nr == __NR_vfork ||
			 nr == __NR_execve || nr == __NR_execveat)
			put(&l, ": failed with EPERM (cannot be made from the handler)\n");
		else
			put(&l, ": let through\n");
		sandbox_raw_syscall(__NR_write, STDERR_FILENO, (long)l.buf, (long)l.len, 0, 0, 0);
	}
	g[REG_RAX] = ret;
	errno = saved;
}

int sandbox_sigsys_init(enum sandbox_mode mode, const char *prog, struct error **errp)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	size_t n = strlen(prog);

	sig_mode = mode;
	if (n >= sizeof(sig_prog))
		n = sizeof(sig_prog) - 1;
	memcpy(sig_prog, prog, n);
	sig_prog[n] = '\0';
	for (int nr = 0; nr < SANDBOX_MAX_NR; nr++)
		if (!sysnames[nr])
			sysnames[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		error_setg_errno(errp, errno, "sandbox: cannot handle SIGSYS");
		return -1;
	}
	/* a SIGSYS blocked by whoever started us would kill without a word (the kernel forces
	 * it): every thread inherits this mask */
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sa.sa_mask, NULL);
	return 0;
}
