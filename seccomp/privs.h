/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process-level privileges of vireo and vireo-storage-daemon (the per-thread part, filters and
 * capabilities, is sandbox.h's):
 *
 *   at start, before anything is opened   sandbox_close_inherited_fds()
 *   before the first thread               sandbox_no_new_privs() (every thread inherits it)
 *   once set up, before the main thread   sandbox_limit_resources()
 *   locks itself down
 *
 * None of them needs a capability: closing, no_new_privs and lowering limits are open to any
 * process, so nothing here has to run before the capabilities go.
 */
#ifndef VIREO_SECCOMP_PRIVS_H
#define VIREO_SECCOMP_PRIVS_H

#include <stdbool.h>

#include "common/error.h"

/*
 * RLIMIT_NOFILE after set-up: the highest fd open then, plus this room for what the control
 * plane opens later (QMP clients, blockdev-add's files, snapshot overlays, NBD connections).
 */
#define SANDBOX_NOFILE_MARGIN_VMM 256
#define SANDBOX_NOFILE_MARGIN_DAEMON 1024
/*
 * RLIMIT_NPROC in a jail (a uid of its own): every task of that uid. Room for the threads a
 * VM or the daemon starts later (block jobs, blockdev-add's workers, NBD exports), on top of
 * the vCPUs; a fork loop stops there.
 */
#define SANDBOX_NPROC_MARGIN 512

/* Closes every fd but 0, 1 and 2: what the parent left open is not ours to use. */
void sandbox_close_inherited_fds(void);

/* prctl(PR_SET_NO_NEW_PRIVS): no exec can give this process (or its threads) privileges. */
int sandbox_no_new_privs(struct error **errp);

/* The highest open fd below @limit (-1 when none), found without /proc (a jail has none). */
int sandbox_highest_fd(unsigned int limit);

/*
 * Lowers RLIMIT_NOFILE (soft and hard) to the highest open fd + 1 + @nofile_margin (never
 * above the current hard limit), and with @nproc > 0 RLIMIT_NPROC to @nproc. RLIMIT_FSIZE is
 * left alone: images grow (qcow2 allocation, block_resize, snapshots, blockdev-create), so no
 * bound known at set-up is safe, and a write past one would kill the process (SIGXFSZ) in the
 * middle of a guest's request. -1 with the limit and the value when the kernel refuses.
 */
int sandbox_limit_resources(unsigned int nofile_margin, unsigned long nproc,
			    struct error **errp);

#endif
