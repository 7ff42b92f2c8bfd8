/* SPDX-License-Identifier: Apache-2.0 */
/* What the files of seccomp/ share: compiled filters, the SIGSYS handler, thread identity. */
#ifndef VIREO_SECCOMP_SANDBOX_PRIV_H
#define VIREO_SECCOMP_SANDBOX_PRIV_H

#include <linux/filter.h>
#include <stdbool.h>

#include "seccomp/roles.h"

/* Syscall numbers the log and the tables know by name (x86-64 has fewer than 512). */
#define SANDBOX_MAX_NR 512

/* A compiled filter: a BPF program to hand to seccomp(SECCOMP_SET_MODE_FILTER). */
struct sandbox_filter {
	struct sock_filter *insns;
	unsigned short len;
};

/*
 * The roles whose groups go into @role's filter: itself and every role it may start, and those
 * roles' own, and so on (a bit per role).
 */
unsigned int sandbox_role_closure(enum sandbox_role role);

/* Whether @role's filter holds a rule for @nr, and whether every rule for it has a condition. */
bool sandbox_role_has(enum sandbox_role role, int nr, bool *conditional);

/* Compiles @role's filter for @mode (log or on) with libseccomp. */
int sandbox_filter_build(enum sandbox_role role, enum sandbox_mode mode, struct sandbox_filter *f,
			 struct error **errp);

/*
 * Drops the calling thread's capabilities, sets its no_new_privs and loads @f; @who names the
 * thread in the messages.
 */
int sandbox_filter_apply(const struct sandbox_filter *f, const char *who, struct error **errp);

/* The SIGSYS handler (sigsys.c): installed once by sandbox_init. */
int sandbox_sigsys_init(enum sandbox_mode mode, const char *prog, struct error **errp);

/* The address right after the log mode's own syscall instruction (sigsys.c). */
unsigned long sandbox_sigsys_trampoline_ip(void);

/*
 * Locks the calling thread down in @role (capabilities, no_new_privs, its filter); @name is how
 * the log names it. Only records who it is when the mode is off.
 */
int sandbox_lockdown_self(enum sandbox_role role, const char *name, struct error **errp);

/* What the calling thread is, for the SIGSYS handler's message and spawn checks. */
void sandbox_self_set(enum sandbox_role role, const char *name);
/* The calling thread's role once its filter is on, or -1. */
int sandbox_self_locked_role(void);
void sandbox_self_set_locked(void);
/* Its role (-1: none set) and name, for the SIGSYS handler (async-signal-safe). */
int sandbox_self_role(void);
const char *sandbox_self_name(void);

#endif
