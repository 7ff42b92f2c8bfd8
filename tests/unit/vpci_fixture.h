/* SPDX-License-Identifier: Apache-2.0 */
/* What the virtio-pci device tests share: a VM without KVM to plug a function into. */
#ifndef VIREO_TESTS_UNIT_VPCI_FIXTURE_H
#define VIREO_TESTS_UNIT_VPCI_FIXTURE_H

#include <stdint.h>

#include "vmm/vm.h"

/* Guest RAM of @ram bytes, empty MMIO and port buses, no KVM (vm_fd -1). */
void vpcifx_vm_init(struct vm *vm, uint64_t ram);
/* Frees what vpcifx_vm_init() set up. */
void vpcifx_vm_destroy(struct vm *vm);

#endif
