/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one way vireo and vireo-storage-daemon start a thread (sandbox.h says why).
 */
#ifndef VIREO_SECCOMP_THREAD_H
#define VIREO_SECCOMP_THREAD_H

#include <pthread.h>

#include "common/error.h"
#include "seccomp/sandbox.h"

/*
 * Starts a thread named @name (at most 15 bytes are kept) in @role and waits until it is ready:
 * the new thread names itself, runs @setup(@arg, errp) when given (the thread's own set-up that
 * needs what its filter forbids: a ring to create, a nice value to set), then drops its
 * capabilities, sets no_new_privs and loads its role's filter (when the sandbox is not off), and
 * only then runs @fn(@arg). When @setup or the lockdown fails, the thread ends without running
 * @fn and the error comes back here through @errp; the thread is joined. A thread already under
 * a filter may start only the roles its own allows (roles.c): others are refused here, by name,
 * instead of dying.
 * Returns 0 (and *@thread, to join), or a negative errno (for the data path's callers) with
 * *@errp set: pthread_create's, -EPERM when the sandbox refused, -EINVAL when @setup failed.
 */
int sandbox_thread_spawn(pthread_t *thread, enum sandbox_role role, const char *name,
			 int (*setup)(void *arg, struct error **errp), void *(*fn)(void *arg),
			 void *arg, struct error **errp);

#endif
