/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox of vireo and vireo-storage-daemon: every thread runs under a seccomp filter made
 * for its role (roles.c holds the allowlists), with no capabilities and no_new_privs.
 *
 * A process chooses its mode once, in main() before any thread starts (sandbox_init). Threads
 * then start through sandbox_thread_spawn() (thread.h), which locks each one down inside itself
 * before it runs its code; the main thread locks itself down with sandbox_lockdown_main() once
 * its set-up is done. Without sandbox_init (vireo-img, the unit tests) the mode is off: threads
 * are only named.
 *
 * What a thread may not do: with --sandbox on the process dies by SIGSYS, after a line on stderr
 * naming the thread, its role and the system call; with log the call goes through and the same
 * line says so (once per role and call). See sigsys.c.
 */
#ifndef VIREO_SECCOMP_SANDBOX_H
#define VIREO_SECCOMP_SANDBOX_H

#include <stdbool.h>
#include <stdio.h>

#include "common/error.h"

enum sandbox_mode {
	SANDBOX_OFF, /* no filter, capabilities kept */
	SANDBOX_LOG, /* filters that let everything through and report what is outside the list */
	SANDBOX_ON,  /* filters that kill the process on a call outside the list */
};

/* The thread roles; each has its allowlist in roles.c. */
enum sandbox_role {
	SANDBOX_ROLE_MAIN,       /* vireo's main thread after set-up: QMP, signals, console */
	SANDBOX_ROLE_SD_MAIN,    /* vireo-storage-daemon's main thread after set-up */
	SANDBOX_ROLE_VCPU,       /* KVM_RUN and the devices' PIO/MMIO handlers */
	SANDBOX_ROLE_IOTHREAD,   /* an iothread: virtqueues or NBD connections on its io_uring */
	SANDBOX_ROLE_MEMSLOT,    /* the set-up thread that registers guest memory with KVM */
	SANDBOX_ROLE_ENGINE,     /* a node's slow-path worker (blocking calls of the drivers) */
	SANDBOX_ROLE_QCOW2_POOL, /* a qcow2 image's group-commit helpers */
	SANDBOX_ROLE_JOB,        /* the block job thread */
	SANDBOX_ROLE_COPY,       /* the copy primitive's extra workers (a mirror's) */
	SANDBOX_ROLE_NBD_EXPORT, /* an NBD export's block status worker */
	SANDBOX_ROLE_NBD_RX,     /* an NBD client's receiver (and reconnecter) */
	SANDBOX_ROLE_NR,
};

/* "iothread", "vcpu", ... as the log and the README name them. */
const char *sandbox_role_name(enum sandbox_role role);

/* Parses --sandbox's value (on, log, off); the message names @opt. */
int sandbox_parse_mode(const char *s, enum sandbox_mode *mode, const char *opt,
		       struct error **errp);

/*
 * Chooses the process's mode and prepares the filters of every role (log and on), with @prog
 * ("vireo") starting the log lines. Call once, from main(), before any thread starts. A build
 * without libseccomp refuses log and on, saying how to run without the sandbox.
 */
int sandbox_init(enum sandbox_mode mode, const char *prog, struct error **errp);

/* The mode sandbox_init chose (SANDBOX_OFF without it). */
enum sandbox_mode sandbox_mode(void);

/*
 * Locks the calling (main) thread down in @role (SANDBOX_ROLE_MAIN or SANDBOX_ROLE_SD_MAIN):
 * capabilities dropped, no_new_privs, its filter. Call once its set-up is done. No-op when off.
 */
int sandbox_lockdown_main(enum sandbox_role role, struct error **errp);

/*
 * Test builds only (tests/sandbox): called by each thread right after its filter is on, with
 * its role; NULL in vireo and the daemon.
 */
extern void (*sandbox_probe_hook)(enum sandbox_role role);

#endif
