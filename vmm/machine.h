/* SPDX-License-Identifier: Apache-2.0 */
/* The microVM's parts, shared by machine.c (build, run) and machine_qmp.c (QMP commands). */
#ifndef VIREO_VMM_MACHINE_H
#define VIREO_VMM_MACHINE_H

#include <stdbool.h>
#include <termios.h>

#include "devices/acpi_pm.h"
#include "devices/debug_exit.h"
#include "devices/pci.h"
#include "devices/uart.h"
#include "vmm/config.h"
#include "control/qmp_server.h"
#include "vmm/vm.h"

struct machine {
	struct vm vm;
	struct uart uart;
	struct debug_exit debug_exit;
	struct acpi_pm pm;
	bool pm_ready;
	struct pci_bus pci;
	bool pci_ready;
	int serial_out; /* fd the console goes to, -1 for none */
	struct qmp_server *qmp;
	const char *host_stop_reason; /* QMP shutdown reason when the host asked, else NULL */
	bool tty_raw;
	struct termios tty_saved;
};

/* QMP commands the machine serves (machine_qmp.c). */
extern const struct qmp_command machine_qmp_commands[];
extern const unsigned int machine_qmp_nr_commands;
/* Sends the SHUTDOWN event for the stop that happened. */
void machine_qmp_shutdown_event(struct machine *m);

#endif
