/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <time.h>

#include "vmm/config.h"

int main(int argc, char **argv)
{
	struct error *err = NULL;
	struct vm_config cfg;
	struct timespec ts;
	int status;

	clock_gettime(CLOCK_MONOTONIC, &ts);

	switch (cmdline_parse(argc, argv, &cfg, &err)) {
	case CMDLINE_EXIT_OK:
		return 0;
	case CMDLINE_ERROR:
		error_report_free("vireo", err);
		return 2;
	case CMDLINE_RUN:
		break;
	}
	cfg.start_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	status = machine_run(&cfg, &err);
	if (err)
		error_report_free("vireo", err);
	return status;
}
