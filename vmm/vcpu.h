/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vCPU threads. Each vCPU has one thread that loops in KVM_RUN and dispatches port I/O and MMIO
 * exits to the VM's buses. Only that thread touches its kvm_run page, except `immediate_exit`,
 * which vm_kick_vcpus() sets from any thread before signalling the thread (KVM reads it on entry,
 * so a kick that lands between our stop check and KVM_RUN is not lost). The thread writes `tid`
 * in its set-up, which sandbox_thread_spawn() waits for, and it does not change afterwards, so
 * QMP reads `tid` from the main thread without a lock.
 */
#ifndef VIREO_VMM_VCPU_H
#define VIREO_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

#include "common/error.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	bool nice_set; /* --vcpu-nice: the thread sets its nice value to @nice before KVM_RUN */
	int nice;
	int tid; /* the thread's host id (QMP's thread-id); written by it before vcpu_start returns */
};

/* Creates vCPU `index` (CPUID, LAPIC LINT set-up). Does not start it. */
struct vcpu *vcpu_create(struct vm *vm, unsigned int index, struct error **errp);
void vcpu_destroy(struct vcpu *vcpu);
/* Loads registers (the BSP's boot state). */
int vcpu_set_state(struct vcpu *vcpu, const struct kvm_regs *regs, const struct kvm_sregs *sregs,
		   struct error **errp);
/*
 * Starts the thread running KVM_RUN (sandboxed as a vCPU) and waits until it has set itself up
 * (its thread id, its nice value, its filter): an error there is returned, and the thread is gone.
 */
int vcpu_start(struct vcpu *vcpu, struct error **errp);
/* Lets a started vCPU's thread run only on the host CPUs in @cpus (--affinity vcpuN=...). */
int vcpu_set_affinity(struct vcpu *vcpu, const cpu_set_t *cpus, struct error **errp);
/* The thread's host id once vcpu_start succeeded, else 0. */
int vcpu_tid(const struct vcpu *vcpu);
/* Joins the thread (after vm_kick_vcpus). */
void vcpu_join(struct vcpu *vcpu);

#endif
