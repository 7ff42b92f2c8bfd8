/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A KVM virtual machine: its fds, guest RAM, the two exit buses, interrupt routing and vCPUs.
 *
 * Ownership: the main thread builds the VM (vm_create, device set-up, boot) before any vCPU
 * runs; after vm_start() the vCPU threads read `mem`, `pio` and `mmio` (see bus.h for its lock)
 * and nothing else of struct vm without a helper below. Interrupt routes (GSI table) are changed
 * by devices from vCPU threads (MSI-X table writes) and by the main thread, under `irq_lock`; the
 * whole table is pushed to KVM on every change (KVM_SET_GSI_ROUTING replaces it), which is rare.
 * vm_request_stop() may be called from any thread; the first caller's status wins.
 */
#ifndef VIREO_VMM_VM_H
#define VIREO_VMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "devices/bus.h"
#include "devices/virtio_pci.h"
#include "vmm/gmem.h"

#define VM_MAX_GSI 1024

struct vcpu;
struct kvm_irq_routing_entry;

enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_POWEROFF,   /* ACPI S5 or QMP quit: exit 0 */
	VM_STOP_RESET,      /* guest reset: exit 0 (microVMs do not reboot) */
	VM_STOP_DEBUG_EXIT, /* test guest wrote the debug-exit port */
	VM_STOP_ERROR,      /* triple fault, internal error, ...: non-zero */
};

struct vm {
	int kvm_fd;
	int vm_fd;
	int run_size; /* mmap size of struct kvm_run */
	struct gmem mem;
	struct bus pio;
	struct bus mmio;

	unsigned int nr_vcpus;
	struct vcpu **vcpus;

	pthread_mutex_t irq_lock;
	struct kvm_irq_routing_entry *routes; /* VM_MAX_GSI entries */
	unsigned int nr_routes;
	uint32_t next_gsi;

	/* stop request: written once (first caller wins), read by everyone */
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	_Atomic int stop_reason;
	int exit_status;
	char stop_msg[256];
	int stop_efd; /* written once a stop is requested, so a poll loop can wake up */
	pthread_t memslot_thread; /* registers guest RAM with KVM while set-up goes on */
	bool memslot_pending;
	int memslot_err;
	uint64_t boot_timer_start_ns; /* non-zero: vCPU 0 reports its first exit (--boot-timer) */
};

int vm_create(struct vm *vm, uint64_t ram_size, unsigned int nr_vcpus, struct error **errp);
void vm_destroy(struct vm *vm);
/* Waits until guest RAM is registered with KVM; call before any vCPU runs. */
int vm_memory_wait(struct vm *vm, struct error **errp);

/* Registers (assign) or removes an ioeventfd on a guest address. len 0 = any size (MMIO only). */
int vm_ioeventfd(struct vm *vm, uint64_t addr, unsigned int len, bool pio, int efd, bool assign,
		 struct error **errp);
/* Connects an eventfd to a GSI so that a write to it injects that interrupt. */
int vm_irqfd(struct vm *vm, uint32_t gsi, int efd, bool assign, struct error **errp);
/* Hands out an unused GSI above the IOAPIC pins, for an MSI route. Returns the GSI or -1. */
int vm_gsi_alloc(struct vm *vm, struct error **errp);
/* Points an allocated GSI at an MSI address/data pair (and pushes the routing table to KVM). */
int vm_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data, struct error **errp);
/*
 * What a virtio-pci function needs of the VM: its guest memory, and the four calls above as
 * struct vpci_host ops. A struct vm without KVM (vm_fd < 0: tests, vireo-blk-loop) gives guest
 * memory only (ops NULL).
 */
struct vpci_host vm_vpci_host(struct vm *vm);
/* Sends one MSI directly (KVM_SIGNAL_MSI). Returns 0 or -errno. */
int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data);
/* Drives an IOAPIC pin (level 1/0); edge devices call it with 1 then 0. Returns 0 or -errno. */
int vm_irq_line(struct vm *vm, uint32_t irq, int level);

/* Asks the VM to stop; every vCPU leaves KVM_RUN soon after. Thread-safe; first request wins. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int exit_status, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));
/* Makes every running vCPU leave KVM_RUN (vcpu.c). */
void vm_kick_vcpus(struct vm *vm);
static inline bool vm_stopping(struct vm *vm)
{
	return atomic_load_explicit(&vm->stop_reason, memory_order_acquire) != VM_STOP_NONE;
}

#endif
