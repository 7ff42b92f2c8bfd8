/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sandbox_thread_spawn (thread.h): every thread of vireo and vireo-storage-daemon starts here.
 *
 * Ownership. The creator fills a struct start on its own stack and waits on its semaphore; the
 * new thread copies what it keeps (fn, arg) first, writes only s->err, and posts the semaphore
 * as the last thing it does with @s: after that the creator may return and the memory go. The
 * post orders the error's writes before the creator reads it.
 */
#include "seccomp/thread.h"

#include <errno.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "seccomp/sandbox_priv.h"

struct start {
	enum sandbox_role role;
	char name[16];
	int (*setup)(void *arg, struct error **errp);
	void *(*fn)(void *arg);
	void *arg;
	sem_t ready;
	struct error *err;
	bool failed_setup; /* err came from setup, not from the lockdown */
};

static void *thread_start(void *opaque)
{
	struct start *s = opaque;
	void *(*fn)(void *) = s->fn;
	void *arg = s->arg;
	enum sandbox_role role = s->role;

	/* its own name, with prctl: pthread_setname_np on another thread opens /proc */
	prctl(PR_SET_NAME, s->name, 0, 0, 0);
	sandbox_self_set(role, s->name); /* the SIGSYS report names it from here on */
	if (s->setup && s->setup(arg, &s->err) < 0) {
		if (!s->err)
			error_setg(&s->err, "thread %s: its set-up failed", s->name);
		s->failed_setup = true;
		sem_post(&s->ready);
		return NULL;
	}
	if (sandbox_lockdown_self(role, s->name, &s->err) < 0) {
		sem_post(&s->ready);
		return NULL;
	}
	sem_post(&s->ready); /* the last touch of @s */
	if (sandbox_probe_hook && sandbox_mode() != SANDBOX_OFF)
		sandbox_probe_hook(role);
	return fn(arg);
}

/* A thread under a filter starts only the roles its filter was made to let run. */
static int may_spawn(enum sandbox_role role, struct error **errp)
{
	int self = sandbox_self_locked_role();

	if (self < 0 || (sandbox_role_closure((enum sandbox_role)self) & (1u << role)))
		return 0;
	error_setg(errp, "sandbox: thread '%s' (role %s) may not start a thread of role %s once its "
		   "filter is on (seccomp/roles.c: the spawns of role %s)", sandbox_self_name(),
		   sandbox_role_name((enum sandbox_role)self), sandbox_role_name(role),
		   sandbox_role_name((enum sandbox_role)self));
	return -1;
}

int sandbox_thread_spawn(pthread_t *thread, enum sandbox_role role, const char *name,
			 int (*setup)(void *arg, struct error **errp), void *(*fn)(void *arg),
			 void *arg, struct error **errp)
{
	struct start s = { .role = role, .setup = setup, .fn = fn, .arg = arg };
	int ret;

	if (may_spawn(role, errp) < 0)
		return -EPERM;
	snprintf(s.name, sizeof(s.name), "%s", name);
	if (sem_init(&s.ready, 0, 0) < 0) {
		ret = errno;
		error_setg_errno(errp, ret, "thread %s: sem_init", s.name);
		return -ret;
	}
	ret = pthread_create(thread, NULL, thread_start, &s);
	if (ret) {
		sem_destroy(&s.ready);
		error_setg_errno(errp, ret, "cannot start thread %s", s.name);
		return -ret;
	}
	while (sem_wait(&s.ready) < 0 && errno == EINTR)
		;
	sem_destroy(&s.ready);
	if (s.err) {
		pthread_join(*thread, NULL);
		error_propagate(errp, s.err);
		return s.failed_setup ? -EINVAL : -EPERM;
	}
	return 0;
}
