/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Placing one of vireo's threads (a vCPU, an iothread) on the host: the CPUs it may run on
 * (--affinity) and its nice value (--vcpu-nice, the drives' iothread-nice).
 */
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

/*
 * Sets the calling thread's own nice value (Linux keeps one per thread; setpriority() with the
 * process id would change only the main thread's). @who names it in the message. Raising it is
 * always allowed; lowering it below the current value needs CAP_SYS_NICE or RLIMIT_NICE, and
 * the message says so. Returns 0 or -1.
 */
int thread_set_own_nice(int nice, const char *who, struct error **errp);

#endif
