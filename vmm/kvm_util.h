/* SPDX-License-Identifier: Apache-2.0 */
/* ioctl wrappers that name the ioctl in their error (kvm selftests' kvm_util.h in spirit). */
#ifndef VIREO_VMM_KVM_UTIL_H
#define VIREO_VMM_KVM_UTIL_H

#include <errno.h>
#include <sys/ioctl.h>

#include "common/error.h"

/* Returns ioctl's non-negative result, or -1 with "NAME failed: strerror" in *errp. */
static inline int kvm_ioctl(int fd, unsigned long req, void *arg, const char *name,
			    struct error **errp)
{
	int ret = ioctl(fd, req, arg);

	if (ret < 0)
		error_setg_errno(errp, errno, "%s failed", name);
	return ret;
}

#endif
