/* SPDX-License-Identifier: Apache-2.0 */
/* The virtio-pci device tests' shared fixture (vpci_fixture.h). */
#include "vpci_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

void vpcifx_vm_init(struct vm *vm, uint64_t ram)
{
	assert_int_equal(gmem_init(&vm->mem, ram, false), 0);
	vm->vm_fd = -1;
	bus_init(&vm->mmio, "mmio");
	bus_init(&vm->pio, "pio");
}

void vpcifx_vm_destroy(struct vm *vm)
{
	bus_destroy(&vm->mmio);
	bus_destroy(&vm->pio);
	gmem_destroy(&vm->mem);
}
