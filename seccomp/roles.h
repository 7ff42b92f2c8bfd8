/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The allowlists as data (roles.c), read by the filter compiler (filter.c) and by the README's
 * table (sandbox-table.c). A role is a list of groups; a group is a list of rules, each one
 * system call with a reason and, where it matters, a condition on one argument.
 */
#ifndef VIREO_SECCOMP_ROLES_H
#define VIREO_SECCOMP_ROLES_H

#include <stddef.h>
#include <stdint.h>

#include "seccomp/sandbox.h"

struct sandbox_val {
	uint64_t v;
	const char *name;
};

/* A condition on one argument of a call. */
struct sandbox_cond {
	unsigned int arg; /* 0-based */
	enum {
		SANDBOX_ONE_OF,     /* the argument is one of vals */
		SANDBOX_MASK_CLEAR, /* none of mask's bits is set (mmap without PROT_EXEC) */
		SANDBOX_MASK_SET,   /* all of mask's bits are set (clone with CLONE_THREAD) */
		SANDBOX_MASK_ONLY,  /* no bit outside mask is set (io_uring_enter's flags) */
	} how;
	uint64_t mask;                 /* the MASK_ kinds */
	const struct sandbox_val *vals; /* ONE_OF; for MASK_ kinds, the bits' names */
	size_t nr_vals;
	const char *label; /* the argument's name in the man page ("prot", "request") */
};

struct sandbox_rule {
	int nr;                          /* the syscall's number (__NR_*) */
	const char *name;                /* as libseccomp and strace name it */
	const struct sandbox_cond *cond; /* NULL: any arguments */
	int err;                         /* 0: allowed; else the call fails with this errno */
	const char *err_name;            /* ... "ENOSYS" */
	const char *why;
};

struct sandbox_group {
	const char *name;
	const char *what;
	const struct sandbox_rule *rules;
	size_t nr_rules;
	int sanitizer_only; /* in the filters of sanitizer builds only */
};

struct sandbox_role_def {
	const char *name;  /* "iothread" */
	const char *what;  /* a line for the README */
	const struct sandbox_group *const *groups; /* NULL-terminated */
	/* what its thread's set-up needs before its own filter goes on (a ring to create): in
	 * the filters of the roles that start it once under theirs, not in its own; or NULL */
	const struct sandbox_group *setup;
	unsigned int spawns; /* 1u << role: what it may start once under its filter */
	int hot[4];        /* calls made on the data path, tested first (0-terminated) */
};

extern const struct sandbox_role_def sandbox_roles[SANDBOX_ROLE_NR];

/* The sanitizer runtimes' own calls: added to every role in a sanitizer build. */
extern const struct sandbox_group sandbox_group_sanitizer;

/* True when this binary was built with ASan, UBSan or TSan. */
int sandbox_sanitized(void);

#endif
