/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox's probe: vireo or vireo-storage-daemon (their main(), compiled in under another
 * name) with sandbox_probe_hook set, so that the threads of one role make one system call
 * outside its allowlist right after their filter goes on. Built for the tests only (probe_test):
 * the programs users run carry no probe.
 *
 *   VIREO_SANDBOX_PROBE=ROLE:SYSCALL vireo-sandbox-probe ARGS...
 *
 * ROLE as the log names it (vcpu, iothread, sd-main, ...), SYSCALL as libseccomp does (socket,
 * execve, ...). The call's arguments are all 0, harmless where the call is let through (log).
 */
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seccomp/sandbox.h"

#undef main
int probed_main(int argc, char **argv);

static int probe_role = -1;
static int probe_nr;

static void probe(enum sandbox_role role)
{
	if ((int)role == probe_role)
		syscall(probe_nr, 0, 0, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
	const char *spec = getenv("VIREO_SANDBOX_PROBE");
	const char *colon = spec ? strchr(spec, ':') : NULL;

	if (spec) {
		for (int r = 0; r < SANDBOX_ROLE_NR && colon; r++)
			if (strlen(sandbox_role_name(r)) == (size_t)(colon - spec) &&
			    !strncmp(spec, sandbox_role_name(r), (size_t)(colon - spec)))
				probe_role = r;
		probe_nr = colon ? seccomp_syscall_resolve_name(colon + 1) : __NR_SCMP_ERROR;
		if (probe_role < 0 || probe_nr < 0) {
			fprintf(stderr, "VIREO_SANDBOX_PROBE=%s is not ROLE:SYSCALL\n", spec);
			return 2;
		}
		sandbox_probe_hook = probe;
	}
	return probed_main(argc, argv);
}
