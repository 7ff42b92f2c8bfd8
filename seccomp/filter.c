/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Turns a role's table (roles.c) into a BPF program with libseccomp, and puts a program on the
 * calling thread.
 *
 * Every program is compiled once, by sandbox_init before any thread starts, and kept: a thread
 * locks itself down with four system calls (capget, capset, prctl, seccomp) and no allocation.
 * The default action is SECCOMP_RET_TRAP in both modes: the SIGSYS handler (sigsys.c) reports
 * the call and then kills the process (on) or makes the call itself (log). In log mode the
 * program starts with a test letting through the one syscall instruction the handler uses.
 */
#include "seccomp/sandbox_priv.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cap-ng.h>
#include <seccomp.h>

#include "common/util.h"

unsigned int sandbox_role_closure(enum sandbox_role role)
{
	unsigned int set = 1u << role, before;

	do {
		before = set;
		for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++)
			if (set & (1u << r))
				set |= sandbox_roles[r].spawns;
	} while (set != before);
	return set;
}

/* Calls f on @g's rules unless @seen holds @g already; returns the new count of @seen. */
static unsigned int visit(const struct sandbox_group *g, const struct sandbox_group **seen,
			  unsigned int nr_seen, void (*f)(const struct sandbox_rule *r, void *opaque),
			  void *opaque)
{
	unsigned int i;

	for (i = 0; i < nr_seen && seen[i] != g; i++)
		;
	if (i < nr_seen || nr_seen == 64)
		return nr_seen;
	seen[nr_seen++] = g;
	for (size_t k = 0; k < g->nr_rules; k++)
		f(&g->rules[k], opaque);
	return nr_seen;
}

/* Calls f(rule, opaque) for every rule of @role's filter: its groups, those of every role in its
 * closure and their set-up's, the sanitizers'. */
static void for_each_rule(enum sandbox_role role,
			  void (*f)(const struct sandbox_rule *r, void *opaque), void *opaque)
{
	const struct sandbox_group *seen[64];
	unsigned int nr_seen = 0, set = sandbox_role_closure(role);

	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++) {
		const struct sandbox_group *const *g = sandbox_roles[r].groups;

		if (!(set & (1u << r)))
			continue;
		for (; *g; g++)
			nr_seen = visit(*g, seen, nr_seen, f, opaque);
		if (r != role && sandbox_roles[r].setup) /* started under this filter */
			nr_seen = visit(sandbox_roles[r].setup, seen, nr_seen, f, opaque);
	}
	if (sandbox_sanitized())
		for (size_t k = 0; k < sandbox_group_sanitizer.nr_rules; k++)
			f(&sandbox_group_sanitizer.rules[k], opaque);
}

/* Per syscall number: what the role's rules say, merged (any unconditional rule wins). */
struct merged {
	uint8_t any[SANDBOX_MAX_NR];  /* an unconditional allow */
	uint8_t cond[SANDBOX_MAX_NR]; /* at least one conditional allow */
	int err[SANDBOX_MAX_NR];      /* a refusal with this errno */
};

static void merge_one(const struct sandbox_rule *r, void *opaque)
{
	struct merged *m = opaque;

	if (r->nr < 0 || r->nr >= SANDBOX_MAX_NR)
		return;
	if (r->err)
		m->err[r->nr] = r->err;
	else if (r->cond)
		m->cond[r->nr] = 1;
	else
		m->any[r->nr] = 1;
}

bool sandbox_role_has(enum sandbox_role role, int nr, bool *conditional)
{
	static struct merged m[SANDBOX_ROLE_NR];
	static bool done[SANDBOX_ROLE_NR];

	if (nr < 0 || nr >= SANDBOX_MAX_NR || role >= SANDBOX_ROLE_NR)
		return false;
	if (!done[role]) { /* filled by sandbox_init, before any thread reads it */
		for_each_rule(role, merge_one, &m[role]);
		done[role] = true;
	}
	*conditional = !m[role].any[nr] && m[role].cond[nr];
	return m[role].any[nr] || m[role].cond[nr];
}

/* ---- compiling ------------------------------------------------------------------------------- */

struct build {
	scmp_filter_ctx ctx;
	const struct merged *m;
	int ret;
	const char *bad; /* the rule that failed */
};

/* 32-bit arguments (ioctl commands, flags, families) compare on their low half, as the kernel
 * reads them; others whole. */
static uint64_t arg_mask(const struct sandbox_rule *r)
{
	return r->nr == __NR_mmap || r->nr == __NR_mprotect || r->nr == __NR_clone
		       ? ~0ull : 0xffffffffull;
}

static void add_cond(struct build *b, const struct sandbox_rule *r)
{
	const struct sandbox_cond *c = r->cond;
	uint64_t full = arg_mask(r);
	int ret = 0;

	switch (c->how) {
	case SANDBOX_ONE_OF:
		for (size_t i = 0; i < c->nr_vals && !ret; i++) {
			ret = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, r->nr, 1,
					       SCMP_CMP(c->arg, SCMP_CMP_MASKED_EQ, full,
							c->vals[i].v & full));
			if (ret == -EEXIST)
				ret = 0;
		}
		break;
	case SANDBOX_MASK_CLEAR:
		ret = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, r->nr, 1,
				       SCMP_CMP(c->arg, SCMP_CMP_MASKED_EQ, c->mask, 0));
		break;
	case SANDBOX_MASK_SET:
		ret = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, r->nr, 1,
				       SCMP_CMP(c->arg, SCMP_CMP_MASKED_EQ, c->mask, c->mask));
		break;
	case SANDBOX_MASK_ONLY:
		ret = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, r->nr, 1,
				       SCMP_CMP(c->arg, SCMP_CMP_MASKED_EQ, full & ~c->mask, 0));
		break;
	}
	if (ret == -EEXIST)
		ret = 0;
	if (ret && !b->ret) {
		b->ret = ret;
		b->bad = r->name;
	}
}

static void add_rule(const struct sandbox_rule *r, void *opaque)
{
	struct build *b = opaque;
	int ret = 0;

	if (b->ret || r->nr < 0 || r->nr >= SANDBOX_MAX_NR)
		return;
	if (r->err) {
		if (!b->m->any[r->nr] && !b->m->cond[r->nr])
			ret = seccomp_rule_add(b->ctx, SCMP_ACT_ERRNO((unsigned int)r->err), r->nr,
					       0);
	} else if (!r->cond) {
		ret = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, r->nr, 0);
	} else if (!b->m->any[r->nr]) {
		add_cond(b, r);
	}
	if (ret == -EEXIST)
		ret = 0;
	if (ret && !b->ret) {
		b->ret = ret;
		b->bad = r->name;
	}
}

/* Reads libseccomp's program back from a memfd. */
static int export(scmp_filter_ctx ctx, struct sandbox_filter *f, size_t prefix)
{
	int fd = (int)syscall(SYS_memfd_create, "vireo-sandbox", MFD_CLOEXEC), ret = -ENOMEM;
	off_t size;

	if (fd < 0)
		return -errno;
	ret = seccomp_export_bpf(ctx, fd);
	if (ret < 0)
		goto out;
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % sizeof(struct sock_filter) ||
	    (size_t)size / sizeof(struct sock_filter) + prefix > BPF_MAXINSNS) {
		ret = -E2BIG;
		goto out;
	}
	f->len = (unsigned short)((size_t)size / sizeof(struct sock_filter) + prefix);
	f->insns = calloc(f->len, sizeof(struct sock_filter));
	ret = -ENOMEM;
	if (!f->insns)
		goto out;
	ret = pread(fd, f->insns + prefix, (size_t)size, 0) == size ? 0 : -EIO;
	if (ret) {
		free(f->insns);
		f->insns = NULL;
	}
out:
	close(fd);
	return ret;
}

/* Log mode: the handler's own syscall instruction passes (its address, as seccomp reports it:
 * the instruction after). Four instructions before libseccomp's program. */
#define LOG_PREFIX 5

static void log_prefix(struct sock_filter *p)
{
	unsigned long ip = sandbox_sigsys_trampoline_ip();
	size_t ip_off = offsetof(struct seccomp_data, instruction_pointer);

	p[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)ip_off + 4);
	p[1] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(ip >> 32), 0, 3);
	p[2] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)ip_off);
	p[3] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)ip, 0, 1);
	p[4] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
}

int sandbox_filter_build(enum sandbox_role role, enum sandbox_mode mode, struct sandbox_filter *f,
			 struct error **errp)
{
	static struct merged m;
	struct build b = { 0 };
	const char *name = sandbox_role_name(role);
	int ret;

	memset(&m, 0, sizeof(m));
	for_each_rule(role, merge_one, &m);
	b.m = &m;
	b.ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!b.ctx) {
		error_setg(errp, "sandbox: role %s: seccomp_init failed", name);
		return -1;
	}
	/* no_new_privs is set by sandbox_filter_apply, with the capabilities dropped first */
	ret = seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (!ret)
		ret = seccomp_attr_set(b.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP);
	if (ret) {
		error_setg_errno(errp, -ret, "sandbox: role %s: seccomp_attr_set", name);
		goto out;
	}
	/* a binary search over the syscall numbers, not a linear chain (libseccomp 2.5) */
	(void)seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; i < ARRAY_SIZE(sandbox_roles[role].hot) && sandbox_roles[role].hot[i];
	     i++)
		seccomp_syscall_priority(b.ctx, sandbox_roles[role].hot[i], 255);
	for_each_rule(role, add_rule, &b);
	if (b.ret) {
		error_setg_errno(errp, -b.ret, "sandbox: role %s: rule for %s", name, b.bad);
		ret = b.ret;
		goto out;
	}
	ret = export(b.ctx, f, mode == SANDBOX_LOG ? LOG_PREFIX : 0);
	if (ret) {
		error_setg_errno(errp, -ret, "sandbox: role %s: exporting its filter", name);
		goto out;
	}
	if (mode == SANDBOX_LOG)
		log_prefix(f->insns);
out:
	seccomp_release(b.ctx);
	return ret ? -1 : 0;
}

/* ---- applying -------------------------------------------------------------------------------- */

/* Whether the thread holds any capability (a raw capget: libcap-ng's reads /proc). */
static bool thread_has_caps(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d) < 0)
		return true; /* try the full drop: its error says what is wrong */
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			return true;
	return false;
}

static int drop_caps(const char *who, struct error **errp)
{
	int ret;

	capng_clear(CAPNG_SELECT_ALL);
	/*
	 * The bounding set can only shrink with CAP_SETPCAP, which a thread started by an already
	 * locked-down one no longer has (and its bounding set is its creator's, empty when that
	 * one could drop it). Ambient capabilities go with the permitted ones.
	 */
	if (thread_has_caps()) {
		ret = capng_apply(CAPNG_SELECT_BOTH);
		if (ret == -4) /* no CAP_SETPCAP: a non-root user's bounding set stays */
			ret = capng_apply(CAPNG_SELECT_CAPS);
	} else {
		ret = capng_apply(CAPNG_SELECT_CAPS);
	}
	if (ret < 0) {
		error_setg(errp, "sandbox: %s: cannot drop its capabilities (capng_apply: %d)", who,
			   ret);
		return -1;
	}
	return 0;
}

int sandbox_filter_apply(const struct sandbox_filter *f, const char *who, struct error **errp)
{
	struct sock_fprog prog = { f->len, f->insns };

	if (drop_caps(who, errp) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		error_setg_errno(errp, errno, "sandbox: %s: PR_SET_NO_NEW_PRIVS", who);
		return -1;
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
		error_setg_errno(errp, errno, "sandbox: %s: cannot load its seccomp filter", who);
		return -1;
	}
	sandbox_self_set_locked();
	return 0;
}
