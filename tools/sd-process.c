/* SPDX-License-Identifier: Apache-2.0 */
/* --daemonize and --pidfile (see sd.h). Main thread only. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seccomp/jail.h"
#include "tools/sd.h"

static int ready_fd = -1; /* --daemonize: the pipe to the waiting parent */
static int pid_fd = -1;   /* the pid file, open and locked while the daemon runs */
static char pid_path[PATH_MAX];

int sd_daemonize(int *parent_status, struct error **errp)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		error_setg_errno(errp, errno, "--daemonize: cannot create a pipe");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		error_setg_errno(errp, errno, "--daemonize: cannot fork");
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		char c = 1;
		ssize_t n;

		close(p[1]);
		do /* one 0 byte when the child is ready; EOF when it failed or died */
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		close(p[0]);
		*parent_status = n == 1 && c == 0 ? 0 : 1;
		return 1;
	}
	close(p[0]);
	ready_fd = p[1];
	if (setsid() < 0) {
		error_setg_errno(errp, errno, "--daemonize: setsid failed");
		return -1;
	}
	return 0;
}

void sd_daemon_ready(void)
{
	int null;

	if (ready_fd < 0)
		return;
	if (chdir("/") < 0)
		perror(SD_PROG ": chdir /");
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	/* last: the parent exits 0 on this byte, so everything above is done by then */
	if (write(ready_fd, "", 1) != 1) {
		/* the parent is gone: nobody waits for the answer */
	}
	close(ready_fd);
	ready_fd = -1;
}

/* Opens and locks @path; 1 when the file was replaced meanwhile (try again). */
static int pidfile_lock(const char *path, struct error **errp)
{
	struct stat a, b;

	pid_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (pid_fd < 0) {
		error_setg_errno(errp, errno, "--pidfile: cannot open '%s'", path);
		return -1;
	}
	if (lockf(pid_fd, F_TLOCK, 0) < 0) {
		error_setg_errno(errp, errno, "--pidfile: cannot lock '%s' (is another daemon "
				 "using it?)", path);
		goto err;
	}
	/* another daemon may have unlinked it at exit between our open and our lock */
	if (fstat(pid_fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev) {
		close(pid_fd);
		pid_fd = -1;
		return 1;
	}
	return 0;
err:
	close(pid_fd);
	pid_fd = -1;
	return -1;
}

int sd_pidfile_write(const char *path, struct error **errp)
{
	char buf[32];
	int len, r;

	while ((r = pidfile_lock(path, errp)) == 1)
		;
	if (r < 0)
		return -1;
	/* with --jail --new-pid-ns getpid() is 1: the pid the host knows */
	len = snprintf(buf, sizeof(buf), "%d\n", (int)sandbox_jail_host_pid());
	if (ftruncate(pid_fd, 0) < 0 || pwrite(pid_fd, buf, (size_t)len, 0) != len) {
		error_setg_errno(errp, errno, "--pidfile: cannot write '%s'", path);
		goto err;
	}
	/* unlinked at exit, after --daemonize moved to / */
	if (!realpath(path, pid_path)) {
		error_setg_errno(errp, errno, "--pidfile: '%s'", path);
		goto err;
	}
	return 0;
err:
	unlink(path);
	close(pid_fd);
	pid_fd = -1;
	return -1;
}

void sd_pidfile_remove(void)
{
	if (pid_fd < 0)
		return;
	unlink(pid_path);
	close(pid_fd); /* the lock goes with it */
	pid_fd = -1;
}
