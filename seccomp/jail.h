/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --jail DIR --uid N --gid N [--new-pid-ns] [--new-net-ns]: vireo and vireo-storage-daemon jail
 * themselves, as Firecracker's jailer jails Firecracker, but from inside, before any thread
 * exists (a process whose threads share its fs struct cannot unshare its mount namespace):
 *
 *   1. a new mount namespace (and network namespace with --new-net-ns), every mount private,
 *      so that nothing below propagates to the host or back;
 *   2. DIR bind-mounted on itself (with the mounts under it), so that it can be the root;
 *   3. DIR/dev replaced by a small tmpfs (nosuid, noexec) holding only device nodes made with
 *      mknod from the host's (same type and numbers), owned by N:N, mode 0600 (null 0666):
 *      /dev/kvm for vireo, /dev/null, and every /dev path a --drive or --blockdev names
 *      (a block device: /dev/nbd0, /dev/disk/by-id/..., made at the same path);
 *   4. pivot_root into DIR, the old root detached and unmounted (pivot_root(".", "."): no
 *      directory is made for it, so none is left to remove);
 *   5. with --new-pid-ns a new PID namespace;
 *   6. supplementary groups dropped, then gid and uid set to N (real, effective, saved): from
 *      here on the process has no capability at all;
 *   7. with --new-pid-ns a fork: the child is PID 1 of the new namespace and goes on; the parent
 *      stays (in the jail, as N) only to pass SIGINT, SIGTERM and SIGHUP on to it, reap it and
 *      exit with its status.
 *
 * After this every path vireo opens is inside DIR: the paths on the command line (kernel,
 * initrd, images, backing files, --serial file:, the QMP and NBD sockets, secret and TLS
 * files, --pidfile) are given as the jailed process sees them, relative to DIR, as
 * Firecracker's are; a host path outside DIR does not exist there. Putting the files in DIR
 * (copies, hard links, bind mounts) and giving N access to them is the caller's job.
 *
 * Every failure names the step and the path. Main thread only, before any other thread.
 */
#ifndef VIREO_SECCOMP_JAIL_H
#define VIREO_SECCOMP_JAIL_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"

#define SANDBOX_JAIL_MAX_DEVICES 32

struct sandbox_jail {
	const char *dir; /* --jail; NULL: no jail */
	uid_t uid;       /* --uid */
	gid_t gid;       /* --gid */
	bool uid_set, gid_set;
	bool new_pid_ns; /* --new-pid-ns */
	bool new_net_ns; /* --new-net-ns */
	bool kvm;        /* make /dev/kvm (vireo) */
	/* host device nodes the command line names (sandbox_jail_scan_devices) */
	char *devices[SANDBOX_JAIL_MAX_DEVICES];
	unsigned int nr_devices;
};

/* One line per option, for --help. */
#define SANDBOX_JAIL_HELP                                                                     \
	"  --jail DIR           run jailed in DIR (a new mount namespace whose root is DIR):\n"  \
	"                       every path on the command line is inside DIR, as the jailed\n"   \
	"                       process sees it; needs --uid and --gid, and root to start\n"     \
	"  --uid N, --gid N     the user and group the jailed process runs as\n"                 \
	"  --new-pid-ns         jailed in a new PID namespace too (the process is its PID 1;\n"  \
	"                       a parent stays outside to pass on signals and the exit status)\n"\
	"  --new-net-ns         jailed in a new, empty network namespace too\n"

/*
 * Takes one of the options above (@name without the dashes: "jail", "uid", "gid",
 * "new-pid-ns", "new-net-ns"; @arg NULL for the last two). 1 when @name is not one of them,
 * 0 when taken, -1 with a message about the value (the caller prefixes the option's name).
 */
int sandbox_jail_option(struct sandbox_jail *j, const char *name, const char *arg,
			struct error **errp);

/* After the whole command line: --uid and --gid need --jail, which needs both. */
int sandbox_jail_check(const struct sandbox_jail *j, struct error **errp);

/*
 * Notes every /dev path that option string @spec (--drive, --blockdev: dotted keys or JSON)
 * gives as a value, to be made in the jail's /dev. A spec that does not parse is left to its
 * own option to refuse. -1 only past SANDBOX_JAIL_MAX_DEVICES, or out of memory.
 */
int sandbox_jail_scan_devices(struct sandbox_jail *j, const char *spec, struct error **errp);

void sandbox_jail_free(struct sandbox_jail *j);

/*
 * Enters the jail (no-op without --jail): 0 in the process that goes on (jailed), 1 in the
 * --new-pid-ns parent once the jailed child ended (*status: the child's exit status, or 128 +
 * the signal that killed it), -1 on a failure (nothing of the VM exists yet: exit).
 */
int sandbox_jail_enter(const struct sandbox_jail *j, int *status, struct error **errp);

/* The host's view of the jailed process's pid: its pid, or as the parent outside the new PID
 * namespace knows it (for --pidfile). */
pid_t sandbox_jail_host_pid(void);

#endif
