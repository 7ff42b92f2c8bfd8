/* SPDX-License-Identifier: Apache-2.0 */
/* The KVM VM: creation, memory slots, interrupt routing, stop requests. Ownership is in vm.h. */
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "seccomp/thread.h"
#include "vmm/kvm_util.h"
#include "vmm/layout.h"

/* Where KVM may put its real-mode TSS and identity map (needed on Intel), out of everyone's way. */
#define VM_TSS_ADDR 0xfffbd000ULL
#define VM_IDENTITY_MAP_ADDR 0xfffbc000ULL

static const struct {
	int cap;
	const char *name;
} vm_required_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },     { KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" }, { KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	{ KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI" }, { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" }, { KVM_CAP_PIT2, "KVM_CAP_PIT2" },
};

static int vm_check_caps(struct vm *vm, struct error **errp)
{
	for (size_t i = 0; i < sizeof(vm_required_caps) / sizeof(vm_required_caps[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, vm_required_caps[i].cap) <= 0) {
			error_setg(errp, "/dev/kvm lacks %s, which vireo needs",
				   vm_required_caps[i].name);
			return -1;
		}
	}
	return 0;
}

/* GSIs 0..23 go to the in-kernel IOAPIC (and 0..15 also to the PIC), as KVM's default table. */
static void vm_default_routes(struct vm *vm)
{
	struct kvm_irq_routing_entry *e = vm->routes;
	unsigned int n = 0;

	for (uint32_t gsi = 0; gsi < LAYOUT_IOAPIC_PINS; gsi++) {
		if (gsi < 16 && gsi != 2) {
			e[n++] = (struct kvm_irq_routing_entry){
				.gsi = gsi,
				.type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
								 : KVM_IRQCHIP_PIC_SLAVE,
					       .pin = gsi % 8 },
			};
		}
		e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi == 0 ? 2 : gsi },
		};
	}
	vm->nr_routes = n;
	vm->next_gsi = LAYOUT_GSI_MSI_BASE;
}

/* Pushes the whole table (caller holds irq_lock). */
static int vm_push_routes(struct vm *vm)
{
	size_t sz = sizeof(struct kvm_irq_routing) + vm->nr_routes * sizeof(*vm->routes);
	struct kvm_irq_routing *r = calloc(1, sz);
	int ret;

	if (!r)
		return -ENOMEM;
	r->nr = vm->nr_routes;
	memcpy(r->entries, vm->routes, vm->nr_routes * sizeof(*vm->routes));
	ret = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, r) < 0 ? -errno : 0;
	free(r);
	return ret;
}

/*
 * KVM_SET_USER_MEMORY_REGION mostly waits: the kernel lets an SRCU grace period pass (1-10 ms
 * on a busy machine) while using little CPU. It runs on a short-lived thread so that the VM's
 * other set-up (vCPUs, devices, ACPI tables, kernel loading, which only write guest RAM through
 * our own mapping) overlaps the wait; vm_memory_wait() joins it before a vCPU may run.
 */
static void *vm_memslot_thread(void *arg)
{
	struct vm *vm = arg;

	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uintptr_t)vm->mem.regions[i].host,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
			vm->memslot_err = errno;
			break;
		}
	}
	return NULL;
}

static int vm_setup_memory(struct vm *vm, uint64_t ram_size, struct error **errp)
{
	int ret = gmem_init(&vm->mem, ram_size, true);

	if (ret < 0) {
		error_setg_errno(errp, ret, "cannot allocate %llu MiB of guest memory",
				 (unsigned long long)(ram_size >> 20));
		return -1;
	}
	if (sandbox_thread_spawn(&vm->memslot_thread, SANDBOX_ROLE_MEMSLOT, "memslot", NULL,
				 vm_memslot_thread, vm, errp) < 0)
		return -1;
	vm->memslot_pending = true;
	return 0;
}

int vm_memory_wait(struct vm *vm, struct error **errp)
{
	if (vm->memslot_pending) {
		pthread_join(vm->memslot_thread, NULL);
		vm->memslot_pending = false;
	}
	if (vm->memslot_err) {
		error_setg_errno(errp, vm->memslot_err, "KVM_SET_USER_MEMORY_REGION failed");
		return -1;
	}
	return 0;
}

int vm_create(struct vm *vm, uint64_t ram_size, unsigned int nr_vcpus, struct error **errp)
{
	int api, ret;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	vm->mem.memfd = -1;
	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&vm->irq_lock, NULL);
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_cond_init(&vm->stop_cond, NULL);
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	vm->nr_vcpus = nr_vcpus;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		error_setg_errno(errp, errno, "cannot open /dev/kvm");
		goto fail;
	}
	api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		error_setg(errp, "/dev/kvm speaks KVM API %d, vireo needs %d", api, KVM_API_VERSION);
		goto fail;
	}
	if (vm->stop_efd < 0) {
		error_setg_errno(errp, errno, "cannot create an eventfd");
		goto fail;
	}
	if (vm_check_caps(vm, errp) < 0)
		goto fail;
	ret = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (ret <= 0)
		ret = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (ret > 0 && nr_vcpus > (unsigned int)ret) {
		error_setg(errp, "--cpus %u: this KVM supports at most %d vCPUs", nr_vcpus, ret);
		goto fail;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		error_setg_errno(errp, errno, "KVM_GET_VCPU_MMAP_SIZE failed");
		goto fail;
	}
	vm->vm_fd = kvm_ioctl(vm->kvm_fd, KVM_CREATE_VM, 0, "KVM_CREATE_VM", errp);
	if (vm->vm_fd < 0)
		goto fail;
	if (kvm_ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)(uintptr_t)VM_TSS_ADDR,
		      "KVM_SET_TSS_ADDR", errp) < 0)
		goto fail;
	{
		uint64_t idmap = VM_IDENTITY_MAP_ADDR;

		if (kvm_ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap,
			      "KVM_SET_IDENTITY_MAP_ADDR", errp) < 0)
			goto fail;
	}
	if (kvm_ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL, "KVM_CREATE_IRQCHIP", errp) < 0)
		goto fail;
	{
		struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

		if (kvm_ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2", errp) < 0)
			goto fail;
	}
	vm->routes = calloc(VM_MAX_GSI, sizeof(*vm->routes));
	vm->vcpus = calloc(nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->routes || !vm->vcpus) {
		error_setg(errp, "out of memory creating the VM");
		goto fail;
	}
	/* KVM_CREATE_IRQCHIP installed the same table; it is pushed with the first MSI route */
	vm_default_routes(vm);
	if (vm_setup_memory(vm, ram_size, errp) < 0)
		goto fail;
	return 0;
fail:
	vm_destroy(vm);
	return -1;
}

void vm_destroy(struct vm *vm)
{
	vm_memory_wait(vm, NULL);
	gmem_destroy(&vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	vm->vm_fd = vm->kvm_fd = vm->stop_efd = -1;
	free(vm->routes);
	free(vm->vcpus);
	vm->routes = NULL;
	vm->vcpus = NULL;
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, unsigned int len, bool pio, int efd, bool assign,
		 struct error **errp)
{
	struct kvm_ioeventfd ev = {
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &ev) < 0) {
		error_setg_errno(errp, errno, "KVM_IOEVENTFD %s %s 0x%llx/%u failed",
				 assign ? "assign" : "deassign", pio ? "port" : "mmio",
				 (unsigned long long)addr, len);
		return -1;
	}
	return 0;
}

int vm_irqfd(struct vm *vm, uint32_t gsi, int efd, bool assign, struct error **errp)
{
	struct kvm_irqfd irqfd = { .fd = (uint32_t)efd, .gsi = gsi,
				   .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };

	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
		error_setg_errno(errp, errno, "KVM_IRQFD %s gsi %u failed",
				 assign ? "assign" : "deassign", gsi);
		return -1;
	}
	return 0;
}

int vm_gsi_alloc(struct vm *vm, struct error **errp)
{
	int gsi = -1;

	pthread_mutex_lock(&vm->irq_lock);
	if (vm->next_gsi < VM_MAX_GSI && vm->nr_routes < VM_MAX_GSI)
		gsi = (int)vm->next_gsi++;
	pthread_mutex_unlock(&vm->irq_lock);
	if (gsi < 0)
		error_setg(errp, "out of interrupt routes (%d GSIs in use)", VM_MAX_GSI);
	return gsi;
}

int vm_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data, struct error **errp)
{
	struct kvm_irq_routing_entry *e = NULL;
	int ret;

	pthread_mutex_lock(&vm->irq_lock);
	for (unsigned int i = 0; i < vm->nr_routes; i++) {
		if (vm->routes[i].gsi == gsi && vm->routes[i].type == KVM_IRQ_ROUTING_MSI) {
			e = &vm->routes[i];
			break;
		}
	}
	if (!e) {
		if (vm->nr_routes == VM_MAX_GSI || gsi < LAYOUT_GSI_MSI_BASE || gsi >= vm->next_gsi) {
			pthread_mutex_unlock(&vm->irq_lock);
			error_setg(errp, "GSI %u was not allocated for MSI", gsi);
			return -1;
		}
		e = &vm->routes[vm->nr_routes++];
	}
	*e = (struct kvm_irq_routing_entry){
		.gsi = gsi,
		.type = KVM_IRQ_ROUTING_MSI,
		.u.msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32),
			   .data = data },
	};
	ret = vm_push_routes(vm);
	pthread_mutex_unlock(&vm->irq_lock);
	if (ret < 0) {
		error_setg_errno(errp, ret, "KVM_SET_GSI_ROUTING (MSI route for GSI %u) failed", gsi);
		return -1;
	}
	return 0;
}

/* The virtio-pci transport's view of the VM: vm_ioeventfd and friends behind struct vpci_host */
static int host_ioeventfd(void *vm, uint64_t addr, unsigned int len, bool pio, int efd,
			  bool assign, struct error **errp)
{
	return vm_ioeventfd(vm, addr, len, pio, efd, assign, errp);
}

static int host_irqfd(void *vm, uint32_t gsi, int efd, bool assign, struct error **errp)
{
	return vm_irqfd(vm, gsi, efd, assign, errp);
}

static int host_gsi_alloc(void *vm, struct error **errp)
{
	return vm_gsi_alloc(vm, errp);
}

static int host_msi_route(void *vm, uint32_t gsi, uint64_t addr, uint32_t data,
			  struct error **errp)
{
	return vm_msi_route(vm, gsi, addr, data, errp);
}

static const struct vpci_host_ops vm_vpci_host_ops = {
	.ioeventfd = host_ioeventfd,
	.irqfd = host_irqfd,
	.gsi_alloc = host_gsi_alloc,
	.msi_route = host_msi_route,
};

struct vpci_host vm_vpci_host(struct vm *vm)
{
	return (struct vpci_host){
		.mem = &vm->mem,
		.ops = vm->vm_fd >= 0 ? &vm_vpci_host_ops : NULL,
		.opaque = vm,
	};
}

int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32),
			       .data = data };

	return ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

int vm_irq_line(struct vm *vm, uint32_t irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int exit_status, const char *fmt,
		     ...)
{
	va_list ap;

	pthread_mutex_lock(&vm->stop_lock);
	if (atomic_load_explicit(&vm->stop_reason, memory_order_relaxed) == VM_STOP_NONE) {
		vm->exit_status = exit_status;
		va_start(ap, fmt);
		vsnprintf(vm->stop_msg, sizeof(vm->stop_msg), fmt, ap);
		va_end(ap);
		/* release: exit_status and stop_msg are visible to whoever sees the reason */
		atomic_store_explicit(&vm->stop_reason, reason, memory_order_release);
		pthread_cond_broadcast(&vm->stop_cond);
		if (vm->stop_efd >= 0) {
			uint64_t one = 1;

			(void)!write(vm->stop_efd, &one, sizeof(one));
		}
	}
	pthread_mutex_unlock(&vm->stop_lock);
	vm_kick_vcpus(vm);
}
