/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Builds the microVM from a vm_config, runs it, and tears it down.
 *
 * Threads: the main thread (this file) builds everything, starts the vCPUs and then serves the
 * console input, signals and the stop request in one poll loop. SIGINT/SIGTERM/SIGHUP are blocked
 * in every thread and read through a signalfd here.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/io_error.h"
#include "blockdev/job.h"
#include "common/util.h"
#include "control/block_nodes.h"
#include "control/block_qmp.h"
#include "control/job_qmp.h"
#include "vmm/acpi.h"
#include "vmm/boot.h"
#include "vmm/drive.h"
#include "control/iothread_obj.h"
#include "vmm/config.h"
#include "vmm/layout.h"
#include "vmm/machine.h"
#include "control/qmp_server.h"
#include "seccomp/privs.h"
#include "seccomp/sandbox.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"


static void machine_uart_irq(void *opaque, int level)
{
	struct machine *m = opaque;

	vm_irq_line(&m->vm, LAYOUT_IRQ_COM1, level);
}

static void machine_uart_output(void *opaque, const uint8_t *buf, size_t len)
{
	struct machine *m = opaque;

	while (m->serial_out >= 0 && len) {
		ssize_t n = write(m->serial_out, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/*
			 * Someone made our stdout non-blocking (it may be shared with a process that
			 * did) and the reader is behind: wait for room rather than drop console bytes.
			 */
			struct pollfd pfd = { .fd = m->serial_out, .events = POLLOUT };

			if (poll(&pfd, 1, 1000) > 0)
				continue;
		}
		if (n <= 0)
			break;
		buf += n;
		len -= (size_t)n;
	}
}

static const struct uart_ops machine_uart_ops = { machine_uart_irq, machine_uart_output };

static void machine_debug_exit(void *opaque, int status)
{
	struct machine *m = opaque;

	vm_request_stop(&m->vm, VM_STOP_DEBUG_EXIT, status, "guest wrote the debug-exit port");
}

static void machine_poweroff(void *opaque)
{
	struct machine *m = opaque;

	vm_request_stop(&m->vm, VM_STOP_POWEROFF, 0, "guest powered off (ACPI S5)");
}

static void machine_reset(void *opaque)
{
	struct machine *m = opaque;

	vm_request_stop(&m->vm, VM_STOP_RESET, 0, "guest reset");
}

static int machine_set_sci(void *opaque, int level)
{
	struct machine *m = opaque;

	return vm_irq_line(&m->vm, LAYOUT_IRQ_SCI, level);
}

static const struct acpi_pm_ops machine_pm_ops = { machine_poweroff, machine_reset, machine_set_sci };

/* CLOCK_MONOTONIC when the vCPUs were started (0 before): main thread only, as QMP. */
static uint64_t machine_started_ns;

static uint64_t machine_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * The guest's running time, QEMU's vm_clock (what internal snapshots record): it starts when
 * the vCPUs do and, vireo having no pause, runs with the host's monotonic clock from then on
 * (a reset does not restart it, as QEMU's).
 */
static uint64_t machine_vm_clock_ns(void)
{
	return machine_started_ns ? machine_now_ns() - machine_started_ns : 0;
}

static int machine_serial_open(struct machine *m, const struct vm_config *cfg, struct error **errp)
{
	switch (cfg->serial) {
	case SERIAL_STDIO:
		m->serial_out = STDOUT_FILENO;
		break;
	case SERIAL_NONE:
		m->serial_out = -1;
		break;
	case SERIAL_FILE:
		m->serial_out = open(cfg->serial_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (m->serial_out < 0) {
			error_setg_errno(errp, errno, "--serial: cannot open '%s'", cfg->serial_path);
			return -1;
		}
		break;
	}
	return 0;
}

/* --affinity ioN=...: the drives' iothreads exist now; a name no drive created is refused. */
static int machine_iothread_affinity(const struct vm_config *cfg, struct error **errp)
{
	for (unsigned int i = 0; i < cfg->nr_affinity; i++) {
		const struct vm_affinity *a = &cfg->affinity[i];
		struct iothread *it;

		if (!a->iothread)
			continue;
		it = drive_iothread(a->index);
		if (!it) {
			error_setg(errp, "--affinity %s: no drive has iothread io%u", a->spec,
				   a->index);
			return -1;
		}
		if (iothread_set_affinity(it, &a->cpus, errp) < 0) {
			error_prepend(errp, "--affinity %s", a->spec);
			return -1;
		}
	}
	return 0;
}

/* --affinity vcpuN=...: applied as the vCPUs start (cmdline.c checked the indexes). */
static int machine_vcpu_affinity(struct machine *m, const struct vm_config *cfg, unsigned int i,
				 struct error **errp)
{
	for (unsigned int k = 0; k < cfg->nr_affinity; k++) {
		const struct vm_affinity *a = &cfg->affinity[k];

		if (!a->iothread && a->index == i &&
		    vcpu_set_affinity(m->vm.vcpus[i], &a->cpus, errp) < 0) {
			error_prepend(errp, "--affinity %s", a->spec);
			return -1;
		}
	}
	return 0;
}

static int machine_devices(struct machine *m, const struct vm_config *cfg, struct error **errp)
{
	uart_init(&m->uart, &machine_uart_ops, m);
	if (bus_add(&m->vm.pio, LAYOUT_PORT_COM1, 8, &uart_bus_ops, &m->uart, "com1", errp) < 0)
		return -1;
	m->debug_exit = (struct debug_exit){ machine_debug_exit, m };
	if (bus_add(&m->vm.pio, LAYOUT_PORT_DEBUG_EXIT, 4, &debug_exit_bus_ops, &m->debug_exit,
		    "debug-exit", errp) < 0)
		return -1;
	if (acpi_pm_init(&m->pm, &m->vm.pio, &layout_acpi_pm_ports, &machine_pm_ops, m, errp) < 0)
		return -1;
	m->pm_ready = true;
	if (pci_bus_init(&m->pci, &m->vm.mmio, &m->vm.pio, &layout_pci_bus, errp) < 0)
		return -1;
	m->pci_ready = true;
	pci_bus_set_reset_hook(&m->pci, acpi_pm_reset_write, &m->pm);
	/* iothread objects first, as QEMU's -object: --drive shares io0, io1, ... if they exist */
	for (unsigned int i = 0; i < cfg->nr_objects; i++)
		if (iothread_obj_add_spec(cfg->objects[i], errp) < 0)
			return -1;
	for (unsigned int i = 0; i < cfg->nr_drives; i++)
		if (drive_add(&m->vm, &m->pci, cfg->drives[i], errp) < 0)
			return -1;
	for (unsigned int i = 0; i < cfg->nr_blockdevs; i++)
		if (block_nodes_add_spec(cfg->blockdevs[i], errp) < 0)
			return -1;
	for (unsigned int i = 0; i < cfg->nr_devices; i++)
		if (drive_device_add(&m->vm, &m->pci, cfg->devices[i], errp) < 0)
			return -1;
	return machine_iothread_affinity(cfg, errp);
}

static int machine_acpi(struct machine *m, const struct vm_config *cfg, uint64_t *rsdp,
			struct error **errp)
{
	struct acpi_config acfg = {
		.nr_vcpus = cfg->cpus,
		.mmio64_base = ALIGN_UP(MAX(gmem_end(&m->vm.mem), LAYOUT_4G), GiB),
		.mmio64_size = LAYOUT_PCI_MMIO64_SIZE,
	};

	return acpi_build(&m->vm.mem, &acfg, rsdp, errp);
}

static int machine_boot(struct machine *m, const struct vm_config *cfg, uint64_t rsdp,
			struct error **errp)
{
	struct boot_params_in in = {
		.kernel_path = cfg->kernel,
		.initrd_path = cfg->initrd,
		.cmdline = cfg->cmdline,
		.rsdp_gpa = rsdp,
	};
	struct boot_cpu_state st;
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (boot_load(&m->vm.mem, &in, &st, errp) < 0)
		return -1;
	/* start from KVM's reset state so that fields we do not set stay sane */
	if (ioctl(m->vm.vcpus[0]->fd, KVM_GET_SREGS, &sregs) < 0) {
		error_setg_errno(errp, errno, "KVM_GET_SREGS failed");
		return -1;
	}
	memset(&regs, 0, sizeof(regs));
	boot_cpu_to_kvm(&st, &regs, &sregs);
	return vcpu_set_state(m->vm.vcpus[0], &regs, &sregs, errp);
}

static void machine_tty_raw(struct machine *m)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &m->tty_saved) < 0)
		return;
	t = m->tty_saved;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_iflag &= ~(tcflag_t)(ICRNL);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		m->tty_raw = true;
}

/* A block job's event, to the QMP client. */
static void machine_job_event(void *opaque, const char *name, struct json_object *data)
{
	struct machine *m = opaque;

	qmp_event(m->qmp, name, data);
}

/* Serves console input, signals, QMP, block jobs and the devices' I/O error reports until a
 * stop is requested. */
static void machine_loop(struct machine *m, const struct vm_config *cfg, int sigfd)
{
	int held = -1; /* ms until a held BLOCK_IO_ERROR is due */
	struct pollfd pfd[7] = {
		{ .fd = m->vm.stop_efd, .events = POLLIN },
		{ .fd = sigfd, .events = POLLIN },
		{ .fd = cfg->serial == SERIAL_STDIO ? STDIN_FILENO : -1, .events = POLLIN },
		{ .fd = -1 },
		{ .fd = -1 },
		{ .fd = job_manager_fd(), .events = POLLIN },
		{ .fd = blockdev_io_error_fd(), .events = POLLIN },
	};

	while (!vm_stopping(&m->vm)) {
		int jobs = job_manager_timeout_ms();
		int wait = held < 0 ? jobs : jobs < 0 ? held : MIN(held, jobs);

		if (m->qmp)
			qmp_fds(m->qmp, &pfd[3]);
		if (poll(pfd, 7, wait) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				m->host_stop_reason = "host-signal";
				vm_request_stop(&m->vm, VM_STOP_POWEROFF, 0,
						"terminating on signal %u", si.ssi_signo);
			}
		}
		if (pfd[2].revents & (POLLIN | POLLHUP)) {
			uint8_t buf[256];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

			if (n > 0)
				uart_receive(&m->uart, buf, (size_t)n);
			else
				pfd[2].fd = -1; /* EOF: stop reading, keep running */
		}
		if (m->qmp)
			qmp_handle(m->qmp, &pfd[3], 2);
		/* events, jobs to finalize, and while jobs run a look for one starved of CPU */
		if ((pfd[5].revents & POLLIN) || jobs >= 0)
			job_manager_poll();
		if ((pfd[6].revents & POLLIN) || held >= 0) /* without QMP: dropped */
			held = blockdev_io_error_poll(m->qmp ? machine_job_event : NULL, m);
	}
	machine_qmp_shutdown_event(m);
}

int machine_run(const struct vm_config *cfg, struct error **errp)
{
	struct machine *m = calloc(1, sizeof(*m));
	sigset_t sigs;
	int sigfd = -1, status = 1;
	uint64_t rsdp = 0;
	unsigned int i;

	if (!m) {
		error_setg(errp, "out of memory");
		return 1;
	}
	m->serial_out = -1;
	/* before any thread: each one starts under its role's filter (seccomp/sandbox.h) */
	if (sandbox_init(cfg->sandbox, "vireo", errp) < 0)
		goto out_free;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sigfd < 0) {
		error_setg_errno(errp, errno, "cannot create a signalfd");
		goto out_free;
	}
	if (machine_serial_open(m, cfg, errp) < 0)
		goto out_sigfd;
	if (vm_create(&m->vm, cfg->memory, cfg->cpus, errp) < 0)
		goto out_serial;
	for (i = 0; i < cfg->cpus; i++) {
		m->vm.vcpus[i] = vcpu_create(&m->vm, i, errp);
		if (!m->vm.vcpus[i])
			goto out_vm;
		m->vm.vcpus[i]->nice_set = cfg->vcpu_nice_set;
		m->vm.vcpus[i]->nice = cfg->vcpu_nice;
	}
	if (machine_devices(m, cfg, errp) < 0 || machine_acpi(m, cfg, &rsdp, errp) < 0 ||
	    machine_boot(m, cfg, rsdp, errp) < 0)
		goto out_vm;
	if (cfg->qmp_path) {
		m->qmp = qmp_server_new(cfg->qmp_path, machine_qmp_commands, machine_qmp_nr_commands,
					m, errp);
		if (!m->qmp) {
			error_prepend(errp, "--qmp");
			goto out_vm;
		}
		/* block jobs are started, driven and reported over QMP */
		if (job_manager_init(machine_job_event, m, errp) < 0)
			goto out_vm;
		block_qmp_set_hooks(&(struct block_qmp_hooks){ drive_find_node,
							       drive_block_resize,
							       machine_vm_clock_ns });
	}
	if (vm_memory_wait(&m->vm, errp) < 0)
		goto out_vm;
	machine_tty_raw(m);
	if (cfg->boot_timer)
		m->vm.boot_timer_start_ns = cfg->start_ns;
	machine_started_ns = machine_now_ns();
	for (i = 0; i < cfg->cpus; i++) {
		if (vcpu_start(m->vm.vcpus[i], errp) < 0 ||
		    machine_vcpu_affinity(m, cfg, i, errp) < 0) {
			vm_request_stop(&m->vm, VM_STOP_ERROR, 1, "vCPU start failed");
			break;
		}
	}
	/* set-up done: the fds it opened bound RLIMIT_NOFILE; in a jail (a uid of its own) its
	 * tasks are bounded too (seccomp/privs.h) */
	if (!vm_stopping(&m->vm) &&
	    sandbox_limit_resources(SANDBOX_NOFILE_MARGIN_VMM,
				    cfg->jail.dir ? cfg->cpus + SANDBOX_NPROC_MARGIN : 0, errp) < 0)
		vm_request_stop(&m->vm, VM_STOP_ERROR, 1, "the process's limits could not be set");
	/* set-up done: from here on the main thread serves QMP, signals and the console, and
	 * tears the VM down (a guest may have stopped it already) */
	if (sandbox_lockdown_main(SANDBOX_ROLE_MAIN, errp) < 0)
		vm_request_stop(&m->vm, VM_STOP_ERROR, 1, "sandbox: the main thread's lockdown failed");
	machine_loop(m, cfg, sigfd);
	vm_kick_vcpus(&m->vm);
	for (i = 0; i < cfg->cpus; i++)
		vcpu_join(m->vm.vcpus[i]);
	if (m->tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &m->tty_saved);
	status = m->vm.exit_status;
	if (atomic_load(&m->vm.stop_reason) == VM_STOP_ERROR && !(errp && *errp))
		error_setg(errp, "%s", m->vm.stop_msg);
out_vm:
	job_manager_shutdown(); /* before the nodes its jobs hold go */
	qmp_server_free(m->qmp);
	drive_cleanup();
	if (m->pci_ready)
		pci_bus_destroy(&m->pci);
	if (m->pm_ready)
		acpi_pm_destroy(&m->pm);
	for (i = 0; i < cfg->cpus && m->vm.vcpus; i++)
		vcpu_destroy(m->vm.vcpus[i]);
	vm_destroy(&m->vm);
out_serial:
	if (m->serial_out > STDERR_FILENO)
		close(m->serial_out);
out_sigfd:
	close(sigfd);
out_free:
	free(m);
	return status;
}
