/* SPDX-License-Identifier: Apache-2.0 */
/* What the virtio-pci device tests share: a VM without KVM to plug a function into. */
#ifndef VIREO_TESTS_UNIT_VPCI_FIXTURE_H
#define VIREO_TESTS_UNIT_VPCI_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtqueue.h"
#include "vmm/vm.h"

/* Guest RAM of @ram bytes, empty MMIO and port buses, no KVM (vm_fd -1). */
void vpcifx_vm_init(struct vm *vm, uint64_t ram);
/* Frees what vpcifx_vm_init() set up. */
void vpcifx_vm_destroy(struct vm *vm);

/* MMIO access at @addr, and a host pointer to @len bytes of guest RAM (asserted to exist). */
void vpcifx_w(struct vm *vm, uint64_t addr, uint64_t v, unsigned int len);
uint64_t vpcifx_r(struct vm *vm, uint64_t addr, unsigned int len);
void *vpcifx_gp(struct vm *vm, uint64_t gpa, uint64_t len);

/* The driver's side of one split ring in the fake guest RAM. */
struct vpcifx_ring {
	uint64_t desc, avail, used;
	uint16_t size;
	uint16_t avail_idx, used_seen;
	unsigned int next_desc;
};

struct vpcifx_seg {
	uint64_t addr;
	uint32_t len;
	bool writable;
};

/**
 * vpcifx_driver_init - the driver's side of initialisation (virtio 1.2 3.1.1) through the
 * common config at @bar0: accept every feature offered but @refuse, then @nq rings of
 * @size entries at 0x10000 + @stride * i (desc, avail +0x1000, used +0x2000, zeroed), queue i
 * on MSI-X vector i + 1, DRIVER_OK. Returns the features offered.
 */
uint64_t vpcifx_driver_init(struct vm *vm, uint64_t bar0, uint64_t refuse,
			    struct vpcifx_ring *rings, unsigned int nq, uint16_t size,
			    uint64_t stride);

/* Puts a chain of @n buffers on @q (descriptors taken round-robin) and publishes it; returns
 * its head. The caller kicks. */
uint16_t vpcifx_post(struct vm *vm, struct vpcifx_ring *q, const struct vpcifx_seg *s,
		     unsigned int n);
/* The next used element of @q, polling @tries times 0.2 ms; false if none came. */
bool vpcifx_try_used(struct vm *vm, struct vpcifx_ring *q, int tries,
		     struct virtq_used_elem *out);

#endif
