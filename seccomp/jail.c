/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entering the jail (the steps are listed in jail.h). Main thread, before any other thread
 * exists: unshare(CLONE_NEWNS) refuses a process whose threads share its fs struct, and the uid
 * change must reach every thread, which only holds when there is one.
 *
 * With --new-pid-ns the process forks after the uid change: the child (PID 1 of the new
 * namespace) goes on to build the VM; the parent stays in the jail as the unprivileged user,
 * holding no fd but a pipe end for a moment, and only forwards signals and reaps. Neither
 * shares memory with the other after the fork.
 */
#include "seccomp/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp/privs.h"

static pid_t host_pid; /* --new-pid-ns: our pid as the parent outside sees it */

pid_t sandbox_jail_host_pid(void)
{
	return host_pid ? host_pid : getpid();
}

/* "--jail DIR: STEP 'PATH': strerror" */
static int fail(const struct sandbox_jail *j, const char *step, const char *path,
		struct error **errp)
{
	if (path)
		error_setg_errno(errp, errno, "--jail %s: %s '%s'", j->dir, step, path);
	else
		error_setg_errno(errp, errno, "--jail %s: %s", j->dir, step);
	return -1;
}

/* Makes the directories of @at (an absolute path) below @from, which exists. */
static int make_parents(const struct sandbox_jail *j, char *at, size_t from, struct error **errp)
{
	for (char *p = at + from + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(at, 0755) < 0 && errno != EEXIST) {
			fail(j, "making the directory", at, errp);
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/*
 * Host device node @path, made again at the same path in the jail's /dev (@root: the jail
 * directory), owned by the jailed user.
 */
static int make_node(const struct sandbox_jail *j, const char *root, const char *path,
		     mode_t perm, struct error **errp)
{
	char at[PATH_MAX];
	struct stat st;

	if (strstr(path, "/../") || strstr(path, "/./") || strstr(path, "//")) {
		error_setg(errp, "--jail %s: device path '%s': '.', '..' and empty parts are "
			   "refused", j->dir, path);
		return -1;
	}
	if (stat(path, &st) < 0)
		return fail(j, "device on the host", path, errp);
	if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
		error_setg(errp, "--jail %s: '%s' is not a device node on the host, and the jail's "
			   "/dev holds device nodes only (put images elsewhere in %s)", j->dir, path,
			   j->dir);
		return -1;
	}
	if ((size_t)snprintf(at, sizeof(at), "%s%s", root, path) >= sizeof(at)) {
		error_setg(errp, "--jail %s: device path '%s' is too long", j->dir, path);
		return -1;
	}
	if (make_parents(j, at, strlen(root) + strlen("/dev"), errp) < 0)
		return -1;
	if (mknod(at, (st.st_mode & S_IFMT) | perm, st.st_rdev) < 0)
		return fail(j, "mknod", at, errp);
	/* mknod's mode went through the umask */
	if (chown(at, j->uid, j->gid) < 0 || chmod(at, perm) < 0)
		return fail(j, "giving the device to the jailed user", at, errp);
	return 0;
}

/* DIR/dev: a tmpfs of our own with the device nodes, nothing else. */
static int make_dev(const struct sandbox_jail *j, const char *root, struct error **errp)
{
	char dev[PATH_MAX];

	if ((size_t)snprintf(dev, sizeof(dev), "%s/dev", root) >= sizeof(dev)) {
		error_setg(errp, "--jail %s: the path is too long", j->dir);
		return -1;
	}
	if (mkdir(dev, 0755) < 0 && errno != EEXIST)
		return fail(j, "making the directory", dev, errp);
	if (mount("vireo-jail-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC,
		  "mode=755,size=64k,nr_inodes=256") < 0)
		return fail(j, "mounting a tmpfs on", dev, errp);
	if (make_node(j, root, "/dev/null", 0666, errp) < 0)
		return -1;
	if (j->kvm && make_node(j, root, "/dev/kvm", 0600, errp) < 0)
		return -1;
	for (unsigned int i = 0; i < j->nr_devices; i++)
		if (make_node(j, root, j->devices[i], 0600, errp) < 0)
			return -1;
	return 0;
}

/* Steps 1-4: the mount namespace whose root is @root. */
static int enter_root(const struct sandbox_jail *j, const char *root, struct error **errp)
{
	int flags = CLONE_NEWNS | (j->new_net_ns ? CLONE_NEWNET : 0);

	if (unshare(flags) < 0)
		return fail(j, j->new_net_ns ? "unshare (new mount and network namespaces; "
			    "jailing needs root)" : "unshare (a new mount namespace; jailing needs "
			    "root)", NULL, errp);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(j, "making every mount private", "/", errp);
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(j, "bind-mounting on itself", root, errp);
	if (make_dev(j, root, errp) < 0)
		return -1;
	if (chdir(root) < 0)
		return fail(j, "chdir", root, errp);
	/* the old root ends up stacked on the new one, where umount2 detaches it */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return fail(j, "pivot_root into", root, errp);
	if (umount2(".", MNT_DETACH) < 0)
		return fail(j, "unmounting the old root", NULL, errp);
	if (chdir("/") < 0)
		return fail(j, "chdir", "/", errp);
	return 0;
}

/* Step 6: from root to N:N, with no supplementary group; no capability survives it. */
static int drop_ids(const struct sandbox_jail *j, struct error **errp)
{
	char what[64];

	if (setgroups(0, NULL) < 0)
		return fail(j, "dropping the supplementary groups (setgroups)", NULL, errp);
	if (setresgid(j->gid, j->gid, j->gid) < 0) {
		snprintf(what, sizeof(what), "setresgid to %u", (unsigned int)j->gid);
		return fail(j, what, NULL, errp);
	}
	if (setresuid(j->uid, j->uid, j->uid) < 0) {
		snprintf(what, sizeof(what), "setresuid to %u", (unsigned int)j->uid);
		return fail(j, what, NULL, errp);
	}
	if (access("/", X_OK) < 0) {
		error_setg_errno(errp, errno, "--jail %s: uid %u cannot search the directory "
				 "(its owner or mode)", j->dir, (unsigned int)j->uid);
		return -1;
	}
	return 0;
}

/* The parent's life: forward the stop signals, reap the child, return its status. */
static int reap(pid_t child, const sigset_t *sigs)
{
	siginfo_t si;
	int st;

	/* the child has its own copies: ours would only keep a reader of them (a pipe, the
	 * storage daemon's --daemonize parent waiting for its ready byte) waiting */
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	close(STDERR_FILENO);
	sandbox_close_inherited_fds();
	for (;;) {
		if (sigwaitinfo(sigs, &si) < 0)
			continue;
		if (si.si_signo != SIGCHLD) {
			kill(child, si.si_signo);
			continue;
		}
		if (waitpid(child, &st, WNOHANG) == child)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
}

/* Step 7: fork; the child becomes PID 1 of the new namespace. */
static int fork_into_pid_ns(const struct sandbox_jail *j, int *status, struct error **errp)
{
	sigset_t sigs, old;
	int p[2];
	pid_t pid;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail(j, "pipe", NULL, errp);
	sigprocmask(SIG_BLOCK, &sigs, &old); /* no signal is lost between the fork and the wait */
	pid = fork();
	if (pid < 0) {
		fail(j, "fork (into the new PID namespace)", NULL, errp);
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		close(p[0]);
		if (write(p[1], &pid, sizeof(pid)) != sizeof(pid)) {
			/* the child reads getpid() then: a --pidfile would hold 1 */
		}
		close(p[1]);
		*status = reap(pid, &sigs);
		return 1;
	}
	close(p[1]);
	sigprocmask(SIG_SETMASK, &old, NULL);
	/* the parent is killed: so is the VM (the credentials do not change after this) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (read(p[0], &host_pid, sizeof(host_pid)) != sizeof(host_pid))
		host_pid = 0;
	close(p[0]);
	return 0;
}

int sandbox_jail_enter(const struct sandbox_jail *j, int *status, struct error **errp)
{
	char root[PATH_MAX];
	struct stat st;

	if (!j->dir)
		return 0;
	if (!realpath(j->dir, root))
		return fail(j, "resolving", j->dir, errp);
	if (stat(root, &st) < 0)
		return fail(j, "stat", root, errp);
	if (!S_ISDIR(st.st_mode) || !strcmp(root, "/")) {
		error_setg(errp, "--jail %s: not a directory other than /", j->dir);
		return -1;
	}
	if (enter_root(j, root, errp) < 0)
		return -1;
	if (j->new_pid_ns && unshare(CLONE_NEWPID) < 0)
		return fail(j, "unshare (a new PID namespace)", NULL, errp);
	if (drop_ids(j, errp) < 0 || sandbox_no_new_privs(errp) < 0)
		return -1;
	if (j->new_pid_ns)
		return fork_into_pid_ns(j, status, errp);
	return 0;
}
