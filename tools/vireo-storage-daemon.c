/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-storage-daemon: main() (the daemon's parts are described in tools/sd.h). */
#include <stddef.h>

#include "tools/sd.h"

int main(int argc, char **argv)
{
	struct error *err = NULL;
	struct sd_config cfg;
	int status = 1;

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
	/* before any thread: each one starts under its role's filter (seccomp/sandbox.h) */
	if (sandbox_init(cfg.sandbox, SD_PROG, &err) < 0)
		goto out;
	status = sd_run(&cfg, &err);
out:
	if (err)
		error_report_free(SD_PROG, err);
	sd_config_free(&cfg);
	return status;
}
