/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>

#include "vmm/config.h"

int main(int argc, char **argv)
{
	struct error *err = NULL;
	struct vm_config cfg;
	int status;

	switch (cmdline_parse(argc, argv, &cfg, &err)) {
	case CMDLINE_EXIT_OK:
		return 0;
	case CMDLINE_ERROR:
		error_report_free("vireo", err);
		return 2;
	case CMDLINE_RUN:
		break;
	}
	status = machine_run(&cfg, &err);
	if (err)
		error_report_free("vireo", err);
	return status;
}
