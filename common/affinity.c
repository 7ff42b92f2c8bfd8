/* SPDX-License-Identifier: Apache-2.0 */
#include "common/affinity.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int thread_set_affinity(pthread_t thread, const cpu_set_t *cpus, const char *who,
			struct error **errp)
{
	int ret = pthread_setaffinity_np(thread, sizeof(*cpus), cpus);

	if (ret == EINVAL) {
		error_setg(errp, "%s: none of these CPUs is online and allowed to vireo", who);
		return -1;
	}
	if (ret) {
		error_setg_errno(errp, ret, "%s: cannot set its CPU affinity", who);
		return -1;
	}
	return 0;
}

int thread_set_own_nice(int nice, const char *who, struct error **errp)
{
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) < 0) {
		error_setg_errno(errp, errno, "%s: cannot set its nice value to %d (a negative one "
				 "needs CAP_SYS_NICE or RLIMIT_NICE)", who, nice);
		return -1;
	}
	return 0;
}
