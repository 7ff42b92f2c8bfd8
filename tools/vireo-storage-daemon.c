/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-storage-daemon: main() (the daemon's parts are described in tools/sd.h). */
#include <stddef.h>

#include "seccomp/privs.h"
#include "tools/sd.h"

int main(int argc, char **argv)
{
	struct error *err = NULL;
	struct sd_config cfg;
	int status = 1;

	/* before anything is opened: what the parent left open is not the daemon's */
	sandbox_close_inherited_fds();
	switch (sd_cmdline_parse(argc, argv, &cfg, &err)) {
	case SD_CMDLINE_EXIT_OK:
		status = 0;
		goto out;
	case SD_CMDLINE_ERROR:
		goto out;
	case SD_CMDLINE_RUN:
		break;
	}
	/* before any thread starts: the iothreads and the job thread are the child's */
	if (cfg.daemonize) {
		int r = sd_daemonize(&status, &err);

		if (r != 0) /* the parent, with the child's verdict, or a failure */
			goto out;
	}
	/* --jail, before any thread (after --daemonize: its parent waits outside, unjailed) */
	switch (sandbox_jail_enter(&cfg.jail, &status, &err)) {
	case -1:
		status = 1;
		goto out;
	case 1: /* the --new-pid-ns parent, once the jailed daemon ended */
		goto out;
	}
	/* every thread inherits it: no exec can give the daemon privileges back */
	if (sandbox_no_new_privs(&err) < 0)
		goto out;
	/* before any thread: each one starts under its role's filter (seccomp/sandbox.h) */
	if (sandbox_init(cfg.sandbox, SD_PROG, &err) < 0)
		goto out;
	status = sd_run(&cfg, &err);
	if (err && cfg.jail.dir) /* a path that is not there may be outside the jail */
		error_prepend(&err, "--jail %s (its paths are inside it)", cfg.jail.dir);
out:
	if (err)
		error_report_free(SD_PROG, err);
	sd_config_free(&cfg);
	return status;
}
