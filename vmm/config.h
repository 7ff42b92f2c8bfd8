/* SPDX-License-Identifier: Apache-2.0 */
/* What `vireo run` was asked to build, as parsed from the command line (cmdline.c). */
#ifndef VIREO_VMM_CONFIG_H
#define VIREO_VMM_CONFIG_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "seccomp/jail.h"
#include "seccomp/sandbox.h"

#define VM_CONFIG_MAX_DRIVES 16
#define VM_CONFIG_MAX_VCPUS 255
#define VM_CONFIG_MAX_AFFINITY 64

/* --affinity vcpuN=CPUS | ioN=CPUS: the host CPUs one of vireo's threads may run on. */
struct vm_affinity {
	const char *spec;  /* as given, for messages */
	bool iothread;     /* ioN (a drive's iothread), else vcpuN */
	unsigned int index;
	cpu_set_t cpus;
};

enum serial_mode { SERIAL_STDIO, SERIAL_FILE, SERIAL_NONE };

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned int cpus;
	uint64_t memory;
	enum serial_mode serial;
	const char *serial_path;
	const char *drives[VM_CONFIG_MAX_DRIVES];
	unsigned int nr_drives;
	/* --object, --blockdev, --device: set up in this order, after --drive's disks */
	const char *objects[VM_CONFIG_MAX_DRIVES];
	unsigned int nr_objects;
	const char *blockdevs[VM_CONFIG_MAX_DRIVES];
	unsigned int nr_blockdevs;
	const char *devices[VM_CONFIG_MAX_DRIVES];
	unsigned int nr_devices;
	struct vm_affinity affinity[VM_CONFIG_MAX_AFFINITY];
	unsigned int nr_affinity;
	bool vcpu_nice_set; /* --vcpu-nice given: each vCPU thread sets its nice value */
	int vcpu_nice;
	const char *qmp_path; /* unix socket for the QMP monitor, NULL: none */
	bool boot_timer;   /* report the time from start to the first guest exit */
	enum sandbox_mode sandbox; /* --sandbox: on by default */
	uint64_t start_ns; /* CLOCK_MONOTONIC when main() began */
	/* --jail DIR --uid N --gid N [--new-pid-ns] [--new-net-ns]: main() enters it */
	struct sandbox_jail jail;
};

enum cmdline_result { CMDLINE_RUN, CMDLINE_EXIT_OK, CMDLINE_ERROR };

/* Parses argv (after the program name). On CMDLINE_ERROR *errp says which option is wrong. */
enum cmdline_result cmdline_parse(int argc, char **argv, struct vm_config *cfg,
				  struct error **errp);
void cmdline_usage(void);
/* The kernel and initrd are readable (where the VM will open them: inside a jail, once in it). */
int cmdline_check_files(const struct vm_config *cfg, struct error **errp);

/* Builds and runs the VM; returns the process exit status (vm.h's stop reasons). */
int machine_run(const struct vm_config *cfg, struct error **errp);

#endif
