/* SPDX-License-Identifier: Apache-2.0 */
#include "common/affinity.h"

#include <errno.h>

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
