/* SPDX-License-Identifier: Apache-2.0 */
/* Process-level privileges: inherited fds, no_new_privs, resource limits (privs.h). */
#include "seccomp/privs.h"

#include <errno.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"

void sandbox_close_inherited_fds(void)
{
	struct rlimit rl;

	/* close_range (Linux 5.9) in one call; else one close per fd the limit allows */
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = 65536;
	for (rlim_t fd = 3; fd < rl.rlim_cur; fd++)
		close((int)fd);
}

int sandbox_no_new_privs(struct error **errp)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		error_setg_errno(errp, errno, "cannot set no_new_privs");
		return -1;
	}
	return 0;
}

int sandbox_highest_fd(unsigned int limit)
{
	struct pollfd pfd[512];
	int highest = -1;

	/* poll() answers POLLNVAL for a closed fd: 512 fds a call, no /proc/self/fd needed */
	for (unsigned int base = 0; base < limit; base += ARRAY_SIZE(pfd)) {
		unsigned int n = MIN((unsigned int)ARRAY_SIZE(pfd), limit - base);

		for (unsigned int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){ .fd = (int)(base + i) };
		if (poll(pfd, n, 0) < 0)
			return highest;
		for (unsigned int i = 0; i < n; i++)
			if (!(pfd[i].revents & POLLNVAL))
				highest = (int)(base + i);
	}
	return highest;
}

static int set_limit(int resource, const char *name, rlim_t value, struct error **errp)
{
	struct rlimit rl = { value, value };

	if (setrlimit(resource, &rl) < 0) {
		error_setg_errno(errp, errno, "cannot set %s to %llu", name,
				 (unsigned long long)value);
		return -1;
	}
	return 0;
}

int sandbox_limit_resources(unsigned int nofile_margin, unsigned long nproc,
			    struct error **errp)
{
	struct rlimit rl;
	rlim_t nofile;
	unsigned int scan;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		error_setg_errno(errp, errno, "cannot read RLIMIT_NOFILE");
		return -1;
	}
	/* fds past the soft limit cannot have been opened since it was set: scan below it */
	scan = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 20) ? 1u << 20
									 : (unsigned int)rl.rlim_cur;
	nofile = (rlim_t)sandbox_highest_fd(scan) + 1 + nofile_margin;
	if (rl.rlim_max != RLIM_INFINITY && nofile > rl.rlim_max)
		nofile = rl.rlim_max; /* raising it would need CAP_SYS_RESOURCE: keep what we have */
	if (set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", nofile, errp) < 0)
		return -1;
	if (nproc && getrlimit(RLIMIT_NPROC, &rl) == 0 &&
	    (rl.rlim_max == RLIM_INFINITY || nproc < rl.rlim_max) &&
	    set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", nproc, errp) < 0)
		return -1;
	return 0;
}
