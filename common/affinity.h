/* SPDX-License-Identifier: Apache-2.0 */
/* Confining one of vireo's threads (a vCPU, an iothread) to host CPUs (--affinity). */
#ifndef VIREO_COMMON_AFFINITY_H
#define VIREO_COMMON_AFFINITY_H

#include <pthread.h>
#include <sched.h>

#include "common/error.h"

/*
 * Lets @thread run only on @cpus. @who names it in the message ("iothread io0", "vCPU 1");
 * a set with no online CPU the process may use is refused as such. Returns 0 or -1.
 */
int thread_set_affinity(pthread_t thread, const cpu_set_t *cpus, const char *who,
			struct error **errp);

#endif
