/* SPDX-License-Identifier: Apache-2.0 */
/* vCPU creation and the KVM_RUN loop; who touches what is in vcpu.h. */
#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/affinity.h"
#include "seccomp/thread.h"
#include "vmm/kvm_util.h"
#include "vmm/vm.h"

#define VCPU_KICK_SIGNAL (SIGRTMIN + 1)
#define VCPU_CPUID_MAX 256

/* APIC register offsets and LVT delivery modes (Intel SDM vol. 3, 11.5.1) */
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI 0x400
#define APIC_MODE_EXTINT 0x700

static void vcpu_kick_handler(int sig)
{
	(void)sig; /* only here so that the signal interrupts KVM_RUN */
}

static int vcpu_setup_cpuid(struct vcpu *vcpu, struct error **errp)
{
	struct kvm_cpuid2 *cpuid;
	int ret = -1;

	cpuid = calloc(1, sizeof(*cpuid) + VCPU_CPUID_MAX * sizeof(cpuid->entries[0]));
	if (!cpuid) {
		error_setg(errp, "out of memory for CPUID");
		return -1;
	}
	cpuid->nent = VCPU_CPUID_MAX;
	if (kvm_ioctl(vcpu->vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID",
		      errp) < 0)
		goto out;
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case 1:
			/* initial APIC ID; logical processor count; "running on a hypervisor" */
			e->ebx = (e->ebx & 0x0000ffffu) | (vcpu->index << 24) |
				 ((vcpu->vm->nr_vcpus & 0xff) << 16);
			e->ecx |= 1u << 31;
			break;
		case 0xb:
		case 0x1f:
			e->edx = vcpu->index; /* x2APIC ID */
			break;
		default:
			break;
		}
	}
	if (kvm_ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2", errp) < 0)
		goto out;
	ret = 0;
out:
	free(cpuid);
	return ret;
}

/* LINT0 as ExtINT (the PIC), LINT1 as NMI, as firmware leaves them for Linux. */
static int vcpu_setup_lapic(struct vcpu *vcpu, struct error **errp)
{
	struct kvm_lapic_state lapic;
	uint32_t v;

	if (kvm_ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC", errp) < 0)
		return -1;
	memcpy(&v, &lapic.regs[APIC_LVT_LINT0], 4);
	v = (v & ~0x700u) | APIC_MODE_EXTINT;
	memcpy(&lapic.regs[APIC_LVT_LINT0], &v, 4);
	memcpy(&v, &lapic.regs[APIC_LVT_LINT1], 4);
	v = (v & ~0x700u) | APIC_MODE_NMI;
	memcpy(&lapic.regs[APIC_LVT_LINT1], &v, 4);
	return kvm_ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", errp) < 0 ? -1 : 0;
}

static int vcpu_setup_fpu(struct vcpu *vcpu, struct error **errp)
{
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	return kvm_ioctl(vcpu->fd, KVM_SET_FPU, &fpu, "KVM_SET_FPU", errp) < 0 ? -1 : 0;
}

struct vcpu *vcpu_create(struct vm *vm, unsigned int index, struct error **errp)
{
	static _Atomic int handler_installed;
	struct vcpu *vcpu = calloc(1, sizeof(*vcpu));

	if (!vcpu) {
		error_setg(errp, "out of memory creating vCPU %u", index);
		return NULL;
	}
	if (!atomic_exchange(&handler_installed, 1)) {
		struct sigaction sa = { .sa_handler = vcpu_kick_handler };

		sigemptyset(&sa.sa_mask);
		sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
	}
	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fd = kvm_ioctl(vm->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)index, "KVM_CREATE_VCPU",
			     errp);
	if (vcpu->fd < 0)
		goto fail;
	vcpu->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		error_setg_errno(errp, errno, "cannot map vCPU %u's kvm_run", index);
		goto fail;
	}
	if (vcpu_setup_cpuid(vcpu, errp) < 0 || vcpu_setup_lapic(vcpu, errp) < 0 ||
	    vcpu_setup_fpu(vcpu, errp) < 0)
		goto fail;
	return vcpu;
fail:
	error_prepend(errp, "vCPU %u", index);
	vcpu_destroy(vcpu);
	return NULL;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (!vcpu)
		return;
	if (vcpu->run)
		munmap(vcpu->run, (size_t)vcpu->vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	free(vcpu);
}

int vcpu_set_state(struct vcpu *vcpu, const struct kvm_regs *regs, const struct kvm_sregs *sregs,
		   struct error **errp)
{
	if (kvm_ioctl(vcpu->fd, KVM_SET_SREGS, (void *)sregs, "KVM_SET_SREGS", errp) < 0)
		return -1;
	if (kvm_ioctl(vcpu->fd, KVM_SET_REGS, (void *)regs, "KVM_SET_REGS", errp) < 0)
		return -1;
	return 0;
}

static uint64_t vcpu_rip(struct vcpu *vcpu)
{
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		return ~0ULL;
	return regs.rip;
}

/*
 * A triple fault. On AMD, KVM re-initialises the vCPU when it intercepts the shutdown (the VMCB
 * is undefined after one), so the registers read back are the reset state, CS:IP f000:fff0:
 * say that rather than print the reset vector as where the guest failed.
 */
static void vcpu_report_shutdown(struct vcpu *vcpu)
{
	struct kvm_sregs sregs;
	uint64_t rip = vcpu_rip(vcpu);

	if (rip == 0xfff0 && ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) == 0 &&
	    sregs.cs.selector == 0xf000) {
		vm_request_stop(vcpu->vm, VM_STOP_ERROR, 1,
				"vCPU %u: guest triple-faulted (KVM_EXIT_SHUTDOWN); where is unknown: "
				"KVM reset the vCPU (as it does on AMD)",
				vcpu->index);
		return;
	}
	vm_request_stop(vcpu->vm, VM_STOP_ERROR, 1,
			"vCPU %u: guest triple-faulted (KVM_EXIT_SHUTDOWN) at RIP 0x%llx", vcpu->index,
			(unsigned long long)rip);
}

static void vcpu_handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(&vcpu->vm->pio, run->io.port, data, run->io.size);
		else
			bus_read(&vcpu->vm->pio, run->io.port, data, run->io.size);
	}
}

static void vcpu_handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	unsigned int len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	if (run->mmio.is_write)
		bus_write(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
	else
		bus_read(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
}

static void vcpu_system_event(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_stop(vm, VM_STOP_POWEROFF, 0, "guest powered off");
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_stop(vm, VM_STOP_RESET, 0, "guest reset");
		break;
	default:
		vm_request_stop(vm, VM_STOP_ERROR, 1, "vCPU %u: guest system event %u (crash)",
				vcpu->index, vcpu->run->system_event.type);
		break;
	}
}

/* Handles one exit. Returns false when the vCPU must stop. */
static bool vcpu_handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(vcpu);
		return true;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(vcpu);
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		vcpu_report_shutdown(vcpu);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vcpu_system_event(vcpu);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_request_stop(vm, VM_STOP_ERROR, 1,
				"vCPU %u: KVM internal error (KVM_EXIT_INTERNAL_ERROR), suberror %u, "
				"at RIP 0x%llx",
				vcpu->index, run->internal.suberror,
				(unsigned long long)vcpu_rip(vcpu));
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vm_request_stop(vm, VM_STOP_ERROR, 1,
				"vCPU %u: VM entry failed (KVM_EXIT_FAIL_ENTRY), reason 0x%llx, at RIP "
				"0x%llx",
				vcpu->index,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason,
				(unsigned long long)vcpu_rip(vcpu));
		return false;
	default:
		vm_request_stop(vm, VM_STOP_ERROR, 1, "vCPU %u: unexpected KVM exit %u at RIP 0x%llx",
				vcpu->index, run->exit_reason, (unsigned long long)vcpu_rip(vcpu));
		return false;
	}
}

/* --boot-timer: vCPU 0's first exit is the guest's first I/O, as near to its start as we can see */
static void vcpu_boot_timer(struct vm *vm)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	fprintf(stderr, "vireo: boot timer: first guest exit %.3f ms after start\n",
		(double)(now - vm->boot_timer_start_ns) / 1e6);
	vm->boot_timer_start_ns = 0; /* once; only vCPU 0 reads or writes it */
}

/* The thread's own set-up, before its filter: the kick signal, its id, its nice value. */
static int vcpu_thread_setup(void *arg, struct error **errp)
{
	struct vcpu *vcpu = arg;
	sigset_t set;
	char who[32];

	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	vcpu->tid = (int)syscall(SYS_gettid);
	if (!vcpu->nice_set)
		return 0;
	snprintf(who, sizeof(who), "vCPU %u", vcpu->index);
	return thread_set_own_nice(vcpu->nice, who, errp);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;

	while (!vm_stopping(vm)) {
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* a kick: clear it, then look at the stop flag again */
				atomic_store_explicit((_Atomic uint8_t *)&vcpu->run->immediate_exit, 0,
						      memory_order_relaxed);
				continue;
			}
			vm_request_stop(vm, VM_STOP_ERROR, 1, "vCPU %u: KVM_RUN failed: %s",
					vcpu->index, strerror(errno));
			break;
		}
		if (vcpu->index == 0 && vm->boot_timer_start_ns)
			vcpu_boot_timer(vm);
		if (!vcpu_handle_exit(vcpu))
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *vcpu, struct error **errp)
{
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", vcpu->index); /* as --affinity names it */
	if (sandbox_thread_spawn(&vcpu->thread, SANDBOX_ROLE_VCPU, name, vcpu_thread_setup,
				 vcpu_thread, vcpu, errp) < 0) {
		vcpu->tid = 0;
		return -1;
	}
	vcpu->started = true;
	return 0;
}

void vcpu_join(struct vcpu *vcpu)
{
	if (vcpu && vcpu->started) {
		pthread_join(vcpu->thread, NULL);
		vcpu->started = false;
	}
}

void vm_kick_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *vcpu = vm->vcpus ? vm->vcpus[i] : NULL;

		if (!vcpu || !vcpu->run)
			continue;
		/* seen by KVM on the next entry, so a kick before KVM_RUN is not lost */
		atomic_store_explicit((_Atomic uint8_t *)&vcpu->run->immediate_exit, 1,
				      memory_order_release);
		if (vcpu->started)
			pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
	}
}

int vcpu_tid(const struct vcpu *vcpu)
{
	return vcpu->started ? vcpu->tid : 0;
}

int vcpu_set_affinity(struct vcpu *vcpu, const cpu_set_t *cpus, struct error **errp)
{
	char who[32];

	snprintf(who, sizeof(who), "vCPU %u", vcpu->index);
	return thread_set_affinity(vcpu->thread, cpus, who, errp);
}
