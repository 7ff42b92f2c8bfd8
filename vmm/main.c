/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "seccomp/jail.h"
#include "seccomp/privs.h"
#include "vmm/config.h"

/* --jail: entered before any thread. true: exit with *status (a failure, or the --new-pid-ns
 * parent once the jailed child ended); false: go on, jailed. */
static bool main_jail(struct vm_config *cfg, int *status, struct error **errp)
{
	int r = sandbox_jail_enter(&cfg->jail, status, errp);

	if (r < 0) {
		*status = 1;
		return true;
	}
	if (r == 1)
		return true;
	if (cfg->jail.dir && cmdline_check_files(cfg, errp) < 0) {
		error_prepend(errp, "--jail %s (its paths are inside it)", cfg->jail.dir);
		*status = 1;
		return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct error *err = NULL;
	struct vm_config cfg;
	struct timespec ts;
	int status;

	/* before anything is opened: what the parent left open is not vireo's */
	sandbox_close_inherited_fds();
	clock_gettime(CLOCK_MONOTONIC, &ts);

	switch (cmdline_parse(argc, argv, &cfg, &err)) {
	case CMDLINE_EXIT_OK:
		return 0;
	case CMDLINE_ERROR:
		error_report_free("vireo", err);
		sandbox_jail_free(&cfg.jail);
		return 2;
	case CMDLINE_RUN:
		break;
	}
	if (main_jail(&cfg, &status, &err))
		goto out;
	/* every thread inherits it: no exec can give vireo privileges back */
	if (sandbox_no_new_privs(&err) < 0) {
		status = 1;
		goto out;
	}
	cfg.start_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	status = machine_run(&cfg, &err);
	if (err && cfg.jail.dir) /* a path that is not there may be outside the jail */
		error_prepend(&err, "--jail %s (its paths are inside it)", cfg.jail.dir);
out:
	if (err)
		error_report_free("vireo", err);
	sandbox_jail_free(&cfg.jail);
	return status;
}
