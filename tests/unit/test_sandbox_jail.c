/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process-level sandbox (seccomp/privs.h, seccomp/jail.h): the jail's options, the /dev
 * paths it finds in option strings, inherited fds, resource limits, and a jail entered for real
 * in a child process (skipped without root's CAP_SYS_ADMIN).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp/jail.h"
#include "seccomp/privs.h"

/* @ret is -1 and *@errp says @msg; *@errp is freed and cleared. */
static void expect_error(int ret, struct error **errp, const char *msg)
{
	assert_int_equal(ret, -1);
	assert_non_null(*errp);
	if (!strstr(error_msg(*errp), msg))
		fail_msg("'%s' does not say '%s'", error_msg(*errp), msg);
	error_free(*errp);
	*errp = NULL;
}

static void jail_options_need_each_other_and_ids_are_numbers(void **state)
{
	struct sandbox_jail j = { 0 };
	struct error *err = NULL;

	assert_int_equal(sandbox_jail_option(&j, "kernel", "x", &err), 1); /* not ours */
	assert_int_equal(sandbox_jail_option(&j, "uid", "1000", &err), 0);
	expect_error(sandbox_jail_check(&j, &err), &err, "--uid needs --jail DIR");
	assert_int_equal(sandbox_jail_option(&j, "jail", "/srv/jail", &err), 0);
	expect_error(sandbox_jail_check(&j, &err), &err, "--jail needs --uid and --gid");
	expect_error(sandbox_jail_option(&j, "gid", "staff", &err), &err,
		     "'staff' is not a numeric id (0 to 4294967294)");
	expect_error(sandbox_jail_option(&j, "gid", "4294967295", &err), &err,
		     "'4294967295' is not a numeric id");
	assert_int_equal(sandbox_jail_option(&j, "gid", "100", &err), 0);
	assert_int_equal(sandbox_jail_option(&j, "new-pid-ns", NULL, &err), 0);
	assert_int_equal(sandbox_jail_check(&j, &err), 0);
	assert_int_equal(j.uid, 1000);
	assert_int_equal(j.gid, 100);
	assert_true(j.new_pid_ns);
	assert_false(j.new_net_ns);
	expect_error(sandbox_jail_option(&j, "jail", "", &err), &err, "empty directory");
}

static void device_paths_are_found_in_dotted_and_json_options(void **state)
{
	struct sandbox_jail j = { 0 };
	struct error *err = NULL;

	assert_int_equal(sandbox_jail_scan_devices(&j, "file=/dev/nbd0,format=raw,if=virtio-blk",
						   &err), 0);
	assert_int_equal(sandbox_jail_scan_devices(&j, "driver=raw,file.driver=host_device,"
						   "file.filename=/dev/disk/by-id/x,node-name=d",
						   &err), 0);
	assert_int_equal(sandbox_jail_scan_devices(&j, "{\"driver\": \"qcow2\", \"file\": "
						   "{\"driver\": \"file\", \"filename\": \"/dev/sdb\"},"
						   " \"backing\": {\"driver\": \"raw\", \"file\": "
						   "{\"filename\": \"/dev/nbd0\"}}}", &err), 0);
	/* not device paths, and a spec its own option will refuse */
	assert_int_equal(sandbox_jail_scan_devices(&j, "file=/images/dev/a.raw,serial=/dev", &err),
			 0);
	assert_int_equal(sandbox_jail_scan_devices(&j, "{bad json", &err), 0);
	assert_null(err);
	assert_int_equal(j.nr_devices, 3);
	assert_string_equal(j.devices[0], "/dev/nbd0");
	assert_string_equal(j.devices[1], "/dev/disk/by-id/x");
	assert_string_equal(j.devices[2], "/dev/sdb");
	sandbox_jail_free(&j);
}

/* Runs @fn in a child; its exit status. */
static int in_child(int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int close_and_limit(void *arg)
{
	struct error *err = NULL;
	struct rlimit rl;
	int fd = open("/dev/null", O_RDONLY); /* not O_CLOEXEC: as a parent would leave it */

	if (dup2(fd, 40) != 40)
		return 10;
	sandbox_close_inherited_fds();
	if (fcntl(fd, F_GETFD) != -1 || fcntl(40, F_GETFD) != -1 || fcntl(2, F_GETFD) < 0)
		return 11;
	if (sandbox_highest_fd(1024) != 2)
		return 12;
	if (open("/dev/null", O_RDONLY) != 3 || sandbox_highest_fd(1024) != 3)
		return 13;
	if (sandbox_limit_resources(16, 0, &err) < 0)
		return 14;
	/* the highest fd (3) + 1 + 16, soft and hard */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur != 20 || rl.rlim_max != 20)
		return 15;
	for (int i = 4; i < 20; i++)
		if (open("/dev/null", O_RDONLY) != i)
			return 16;
	if (open("/dev/null", O_RDONLY) != -1 || errno != EMFILE)
		return 17;
	if (sandbox_no_new_privs(&err) < 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 18;
	return 0;
}

static void inherited_fds_are_closed_and_nofile_is_what_is_open_plus_the_margin(void **state)
{
	assert_int_equal(in_child(close_and_limit, NULL), 0);
}

#define JAIL_UID 64123
#define JAIL_GID 64124

struct jail_case {
	char dir[64];
	bool kvm;
	bool pid_ns;
};

/* In the child: enter the jail, then look around. */
static int jailed(void *arg)
{
	struct jail_case *c = arg;
	struct sandbox_jail j = {
		.dir = c->dir, .uid = JAIL_UID, .gid = JAIL_GID, .uid_set = true, .gid_set = true,
		.kvm = c->kvm, .new_pid_ns = c->pid_ns, .new_net_ns = true,
	};
	struct error *err = NULL;
	struct stat st;
	char buf[16];
	int status = 0, fd, r;

	r = sandbox_jail_enter(&j, &status, &err);
	if (r < 0) {
		fprintf(stderr, "jail: %s\n", error_msg(err));
		return 20;
	}
	if (r == 1) /* the PID namespace's parent: the child's status */
		return status == 0 ? 0 : 40 + status;
	if (c->pid_ns && getpid() != 1)
		return 21;
	if (getuid() != JAIL_UID || geteuid() != JAIL_UID || getgid() != JAIL_GID ||
	    getgroups(0, NULL) != 0)
		return 22;
	/* the jail's own file at its root; nothing of the host */
	fd = open("/marker", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf)) != 6 || memcmp(buf, "jailed", 6))
		return 23;
	close(fd);
	if (access("/etc/hostname", F_OK) == 0 || access("/proc/self", F_OK) == 0 ||
	    access("/../../etc", F_OK) == 0)
		return 24;
	/* /dev: null, kvm when asked, owned by the jailed user */
	fd = open("/dev/null", O_WRONLY);
	if (fd < 0 || write(fd, "x", 1) != 1)
		return 25;
	close(fd);
	if (c->kvm && (stat("/dev/kvm", &st) < 0 || !S_ISCHR(st.st_mode) ||
		       st.st_uid != JAIL_UID || major(st.st_rdev) != 10 ||
		       (st.st_mode & 0777) != 0600))
		return 26;
	/* root is gone: no mount, no way back to uid 0 */
	if (setuid(0) == 0 || mknod("/dev/x", S_IFCHR | 0600, makedev(1, 3)) == 0)
		return 27;
	return 0;
}

static int try_unshare(void *arg)
{
	return unshare(CLONE_NEWNS) == 0 ? 0 : 1;
}

static bool can_jail(void)
{
	if (geteuid() != 0) {
		print_message("skipped: jailing needs root\n");
		return false;
	}
	if (in_child(try_unshare, NULL) != 0) {
		print_message("skipped: no CAP_SYS_ADMIN (cannot unshare a mount namespace)\n");
		return false;
	}
	return true;
}

static void run_jail_case(struct jail_case *c)
{
	char path[128];
	FILE *f;

	snprintf(c->dir, sizeof(c->dir), "/tmp/vireo-jail-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	assert_int_equal(chmod(c->dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/marker", c->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("jailed", f);
	fclose(f);
	assert_int_equal(in_child(jailed, c), 0);
	/* nothing was left in the directory but an empty dev/ (its tmpfs went with the
	 * namespace) */
	snprintf(path, sizeof(path), "%s/dev/kvm", c->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/dev", c->dir);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/marker", c->dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(c->dir), 0);
}

static void a_jailed_process_sees_only_its_directory_as_an_unprivileged_user(void **state)
{
	struct jail_case c = { .kvm = access("/dev/kvm", F_OK) == 0 };

	if (!can_jail())
		skip();
	run_jail_case(&c);
}

static void in_a_new_pid_namespace_the_jailed_process_is_pid_1(void **state)
{
	struct jail_case c = { .pid_ns = true };

	if (!can_jail())
		skip();
	run_jail_case(&c);
}

static int jail_refused(void *arg)
{
	struct sandbox_jail j = {
		.dir = arg, .uid = JAIL_UID, .gid = JAIL_GID, .uid_set = true, .gid_set = true,
	};
	struct error *err = NULL;
	int status;

	if (sandbox_jail_enter(&j, &status, &err) != -1)
		return 1;
	/* the step and the path */
	return strstr(error_msg(err), "--jail /nonexistent/jail: resolving '/nonexistent/jail'") ? 0
													   : 2;
}

static void a_jail_that_cannot_be_made_says_which_step_and_path(void **state)
{
	assert_int_equal(in_child(jail_refused, "/nonexistent/jail"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jail_options_need_each_other_and_ids_are_numbers),
		cmocka_unit_test(device_paths_are_found_in_dotted_and_json_options),
		cmocka_unit_test(inherited_fds_are_closed_and_nofile_is_what_is_open_plus_the_margin),
		cmocka_unit_test(a_jailed_process_sees_only_its_directory_as_an_unprivileged_user),
		cmocka_unit_test(in_a_new_pid_namespace_the_jailed_process_is_pid_1),
		cmocka_unit_test(a_jail_that_cannot_be_made_says_which_step_and_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
