/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process's sandbox mode and its compiled filters (sandbox.h).
 *
 * Ownership: sandbox_init writes the mode and every role's program once, on the main thread
 * before any thread exists; from then on they are only read (pthread_create orders the writes
 * before each new thread's reads).
 */
#include "seccomp/sandbox_priv.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>


void (*sandbox_probe_hook)(enum sandbox_role role);

static enum sandbox_mode mode = SANDBOX_OFF;
static struct sandbox_filter filters[SANDBOX_ROLE_NR];

/* the calling thread: set by itself before its filter goes on, read by itself (and its SIGSYS
 * handler) only */
static __thread int self_role = -1;
static __thread char self_name[16];
static __thread bool self_locked;

void sandbox_self_set(enum sandbox_role role, const char *name)
{
	size_t n = strlen(name);

	self_role = (int)role;
	if (n >= sizeof(self_name))
		n = sizeof(self_name) - 1;
	memcpy(self_name, name, n);
	self_name[n] = '\0';
}

void sandbox_self_set_locked(void)
{
	self_locked = true;
}

int sandbox_self_locked_role(void)
{
	return self_locked ? self_role : -1;
}

int sandbox_self_role(void)
{
	return self_role;
}

const char *sandbox_self_name(void)
{
	return self_name;
}

const char *sandbox_role_name(enum sandbox_role role)
{
	return role < SANDBOX_ROLE_NR ? sandbox_roles[role].name : "?";
}

enum sandbox_mode sandbox_mode(void)
{
	return mode;
}

int sandbox_parse_mode(const char *s, enum sandbox_mode *m, const char *opt, struct error **errp)
{
	if (!strcmp(s, "on"))
		*m = SANDBOX_ON;
	else if (!strcmp(s, "log"))
		*m = SANDBOX_LOG;
	else if (!strcmp(s, "off"))
		*m = SANDBOX_OFF;
	else {
		error_setg(errp, "%s: '%s' is not on, log or off", opt, s);
		return -1;
	}
	return 0;
}

#ifdef VIREO_HAVE_SECCOMP

int sandbox_init(enum sandbox_mode m, const char *prog, struct error **errp)
{
	if (m == SANDBOX_OFF)
		return 0;
	/* roles.c allows the vCPU kick by number */
	if (SIGRTMIN + 1 != 35) {
		error_setg(errp, "sandbox: this C library's SIGRTMIN is %d, not the 34 the vCPU "
			   "kick rule expects: run with --sandbox off", SIGRTMIN);
		return -1;
	}
	if (sandbox_sigsys_init(m, prog, errp) < 0)
		return -1;
	mode = m;
	return 0;
}

/*
 * @role's program, compiled on first use (a role's first thread, or the main thread's lockdown,
 * which compiles every role left: threads started later run under a filter that may not allow
 * what compiling needs). Under filters_lock; a program never changes once made.
 */
static const struct sandbox_filter *filter_get(enum sandbox_role role, struct error **errp)
{
	static pthread_mutex_t filters_lock = PTHREAD_MUTEX_INITIALIZER;
	const struct sandbox_filter *f = &filters[role];
	bool unused;

	pthread_mutex_lock(&filters_lock);
	if (!filters[role].insns) {
		sandbox_role_has(role, 0, &unused); /* fills the SIGSYS handler's table too */
		if (sandbox_filter_build(role, mode, &filters[role], errp) < 0)
			f = NULL;
	}
	pthread_mutex_unlock(&filters_lock);
	return f;
}

int sandbox_lockdown_self(enum sandbox_role role, const char *name, struct error **errp)
{
	const struct sandbox_filter *f;
	char who[64];

	sandbox_self_set(role, name);
	if (mode == SANDBOX_OFF)
		return 0;
	snprintf(who, sizeof(who), "thread '%s' (%s)", name, sandbox_role_name(role));
	f = filter_get(role, errp);
	return f ? sandbox_filter_apply(f, who, errp) : -1;
}

/* Before the main thread's own filter: every role's program. */
static int compile_all(struct error **errp)
{
	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++)
		if (mode != SANDBOX_OFF && !filter_get(r, errp))
			return -1;
	return 0;
}

#else /* !VIREO_HAVE_SECCOMP */

int sandbox_init(enum sandbox_mode m, const char *prog, struct error **errp)
{
	if (m == SANDBOX_OFF)
		return 0;
	error_setg(errp, "this %s was built without libseccomp and cannot sandbox its threads: "
		   "run it with --sandbox off (or build it with libseccomp-dev and libcap-ng-dev)",
		   prog);
	return -1;
}

int sandbox_lockdown_self(enum sandbox_role role, const char *name, struct error **errp)
{
	sandbox_self_set(role, name);
	(void)errp;
	return 0;
}

static int compile_all(struct error **errp)
{
	(void)errp;
	return 0;
}

#endif

int sandbox_lockdown_main(enum sandbox_role role, struct error **errp)
{
	if (compile_all(errp) < 0 || sandbox_lockdown_self(role, "main", errp) < 0)
		return -1;
	if (sandbox_probe_hook && mode != SANDBOX_OFF)
		sandbox_probe_hook(role);
	return 0;
}
