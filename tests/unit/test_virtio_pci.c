/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-pci transport with a stub device: feature negotiation, queue registers and reset
 * without KVM; with /dev/kvm, the KVM wiring (ioeventfd per queue, moved with BAR 0; MSI route
 * + irqfd per unmasked vector; PBA pending bits while masked), checked by asking KVM itself
 * (assigning an existing ioeventfd fails with EEXIST, removing a missing one with ENOENT).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "devices/pci.h"
#include "devices/virtio_pci.h"
#include "vmm/layout.h"
#include "vmm/vm.h"
#include "vpci_fixture.h"

#define NQ 2
#define QSZ 64

struct fx {
	struct vm vm;
	bool kvm;
	struct pci_bus pci;
	struct vpci_dev v;
	uint64_t bar0, bar2;
	int activated, resets;
	uint8_t config[8];
};

static void cfg_read(void *opaque, uint32_t off, void *data, unsigned int len)
{
	struct fx *f = opaque;

	memcpy(data, &f->config[off], len);
}

static int activate(void *opaque, struct vpci_dev *v)
{
	struct fx *f = opaque;

	f->activated++;
	return 0;
}

static void reset(void *opaque, struct vpci_dev *v)
{
	struct fx *f = opaque;

	f->resets++;
}

static const struct virtio_device_ops stub_ops = { cfg_read, NULL, activate, reset };

static void w(struct fx *f, uint64_t off, uint64_t v, unsigned int len)
{
	bus_write(&f->vm.mmio, f->bar0 + off, &v, len);
}

static uint64_t r(struct fx *f, uint64_t off, unsigned int len)
{
	uint64_t v = 0;

	bus_read(&f->vm.mmio, f->bar0 + off, &v, len);
	return v;
}

static void cfg_write(struct fx *f, unsigned int off, uint32_t v, unsigned int len)
{
	pci_cfg_write(&f->pci, f->v.pci.slot, 0, off, len, v);
}

static int setup_common(void **state, bool want_kvm)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vpci_host host;
	struct error *err = NULL;

	if (want_kvm) {
		if (vm_create(&f->vm, 16 << 20, 1, &err) < 0) {
			fprintf(stderr, "skipping KVM tests: %s\n", error_msg(err));
			error_free(err);
			free(f);
			*state = NULL;
			return 0;
		}
		f->kvm = true;
	} else {
		vpcifx_vm_init(&f->vm, 16 << 20);
	}
	assert_int_equal(pci_bus_init(&f->pci, &f->vm.mmio, &f->vm.pio, &layout_pci_bus, NULL), 0);
	memcpy(f->config, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	host = vm_vpci_host(&f->vm);
	assert_int_equal(vpci_init(&f->v, &host, "stub", 5, 0xff0000, 1ull << 3, NQ, QSZ, 8,
				   &stub_ops, f, NULL), 0);
	assert_true(pci_bus_add_device(&f->pci, &f->v.pci, -1, NULL) > 0);
	f->bar0 = pci_bar_address(&f->v.pci, 0);
	f->bar2 = pci_bar_address(&f->v.pci, 2);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_kvm(void **state)
{
	return setup_common(state, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (!f)
		return 0;
	pci_bus_remove_device(&f->pci, &f->v.pci);
	vpci_destroy(&f->v);
	pci_bus_destroy(&f->pci);
	if (f->kvm)
		vm_destroy(&f->vm);
	else
		vpcifx_vm_destroy(&f->vm);
	free(f);
	return 0;
}

static void bring_up(struct fx *f)
{
	w(f, 0x14, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	w(f, 0x08, 1, 4);
	w(f, 0x0c, 1, 4); /* VERSION_1 */
	w(f, 0x14, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
	for (unsigned int i = 0; i < NQ; i++) {
		w(f, 0x16, i, 2);
		w(f, 0x20, 0x100000 + 0x10000 * i, 8);
		w(f, 0x28, 0x104000 + 0x10000 * i, 8);
		w(f, 0x30, 0x108000 + 0x10000 * i, 8);
		w(f, 0x1a, i + 1, 2);
		w(f, 0x1c, 1, 2);
	}
	w(f, 0x10, 0, 2);
	w(f, 0x14, 0xf, 1);
}

static void ids_and_capabilities_follow_the_spec(void **state)
{
	struct fx *f = *state;
	unsigned int cap, types = 0;

	assert_int_equal(pci_cfg_read(&f->pci, f->v.pci.slot, 0, 0, 4), 0x10451af4);
	assert_int_equal(pci_cfg_read(&f->pci, f->v.pci.slot, 0, PCI_REVISION_ID, 1), 1);
	for (cap = pci_cfg_read(&f->pci, f->v.pci.slot, 0, PCI_CAPABILITY_LIST, 1); cap;
	     cap = pci_cfg_read(&f->pci, f->v.pci.slot, 0, cap + 1, 1)) {
		unsigned int id = pci_cfg_read(&f->pci, f->v.pci.slot, 0, cap, 1);

		if (id == PCI_CAP_ID_VNDR) {
			unsigned int type = pci_cfg_read(&f->pci, f->v.pci.slot, 0, cap + 3, 1);

			types |= 1u << type;
			assert_int_equal(pci_cfg_read(&f->pci, f->v.pci.slot, 0, cap + 4, 1), 0);
			if (type == 2) /* notify_off_multiplier */
				assert_int_equal(pci_cfg_read(&f->pci, f->v.pci.slot, 0, cap + 16,
							      4), 4);
		}
	}
	assert_int_equal(types, 0x3e); /* common, notify, ISR, device, PCI config window */
}

static void pci_cfg_window_reaches_the_bars(void **state)
{
	struct fx *f = *state;
	unsigned int c = (unsigned int)f->v.pcicfg_cap, slot = f->v.pci.slot;

	/* num_queues (2 bytes at 0x12 of BAR 0) */
	pci_cfg_write(&f->pci, slot, 0, c + 4, 1, 0);
	pci_cfg_write(&f->pci, slot, 0, c + 8, 4, 0x12);
	pci_cfg_write(&f->pci, slot, 0, c + 12, 4, 2);
	assert_int_equal(pci_cfg_read(&f->pci, slot, 0, c + 16, 4) & 0xffff, NQ);
	/* device_status written through the window */
	pci_cfg_write(&f->pci, slot, 0, c + 8, 4, 0x14);
	pci_cfg_write(&f->pci, slot, 0, c + 12, 4, 1);
	pci_cfg_write(&f->pci, slot, 0, c + 16, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(r(f, 0x14, 1), VIRTIO_STATUS_ACKNOWLEDGE);
	/* a misaligned or oversized access does nothing and reads 0 */
	pci_cfg_write(&f->pci, slot, 0, c + 8, 4, 0x13);
	pci_cfg_write(&f->pci, slot, 0, c + 12, 4, 2);
	assert_int_equal(pci_cfg_read(&f->pci, slot, 0, c + 16, 4), 0);
	pci_cfg_write(&f->pci, slot, 0, c + 12, 4, 3);
	assert_int_equal(pci_cfg_read(&f->pci, slot, 0, c + 16, 4), 0);
}

static void features_are_negotiated_in_two_words(void **state)
{
	struct fx *f = *state;

	w(f, 0x00, 0, 4);
	assert_int_equal(r(f, 0x04, 4), 1u << 3 | 1u << 28 | 1u << 29);
	w(f, 0x00, 1, 4);
	assert_int_equal(r(f, 0x04, 4), 1); /* VERSION_1 */
	w(f, 0x00, 2, 4);
	assert_int_equal(r(f, 0x04, 4), 0);
	/* FEATURES_OK is refused without VERSION_1 */
	w(f, 0x14, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	w(f, 0x08, 0, 4);
	w(f, 0x0c, 0xffffffff, 4); /* unoffered bits are dropped */
	assert_int_equal(r(f, 0x0c, 4), 1u << 3 | 1u << 28 | 1u << 29);
	w(f, 0x14, 0xb, 1);
	assert_int_equal(r(f, 0x14, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
	w(f, 0x08, 1, 4);
	w(f, 0x0c, 1, 4);
	w(f, 0x14, 0xb, 1);
	assert_true(r(f, 0x14, 1) & VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(r(f, 0x2000, 4), 0x44332211); /* device config */
}

static void queue_registers_and_reset(void **state)
{
	struct fx *f = *state;

	w(f, 0x16, 1, 2);
	assert_int_equal(r(f, 0x18, 2), QSZ);
	w(f, 0x18, 48, 2); /* not a power of two: ignored */
	assert_int_equal(r(f, 0x18, 2), QSZ);
	w(f, 0x18, 128, 2); /* above the maximum: ignored */
	assert_int_equal(r(f, 0x18, 2), QSZ);
	w(f, 0x18, 16, 2);
	assert_int_equal(r(f, 0x18, 2), 16);
	w(f, 0x1a, 9, 2); /* no such vector */
	assert_int_equal(r(f, 0x1a, 2), VIRTIO_MSI_NO_VECTOR);
	w(f, 0x16, 7, 2); /* no such queue */
	assert_int_equal(r(f, 0x18, 2), 0);
	bring_up(f);
	assert_int_equal(f->activated, 1);
	assert_true(r(f, 0x14, 1) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->v.queues[0].vq.call_fd, f->v.vectors[1].efd);
	w(f, 0x14, 0, 1);
	assert_int_equal(f->resets, 1);
	assert_int_equal(r(f, 0x14, 1), 0);
	w(f, 0x16, 1, 2);
	assert_int_equal(r(f, 0x18, 2), QSZ);
	assert_int_equal(r(f, 0x1c, 2), 0);
}

static void rings_outside_ram_set_needs_reset(void **state)
{
	struct fx *f = *state;

	w(f, 0x14, 3, 1);
	w(f, 0x08, 1, 4);
	w(f, 0x0c, 1, 4);
	w(f, 0x14, 0xb, 1);
	w(f, 0x16, 0, 2);
	w(f, 0x20, 0x7ffff000ull, 8); /* beyond 16 MiB of RAM */
	w(f, 0x1c, 1, 2);
	w(f, 0x14, 0xf, 1);
	assert_int_equal(f->activated, 0);
	assert_true(r(f, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
}

static void kvm_ioeventfds_are_registered_and_moved(void **state)
{
	struct fx *f = *state;
	uint64_t notify0;
	int kick;
	uint32_t lo;

	if (!f)
		skip();
	notify0 = f->bar0 + 0x3000;
	kick = f->v.queues[0].kick_fd;
	bring_up(f);
	/* it exists: KVM refuses a second one */
	assert_int_equal(vm_ioeventfd(&f->vm, notify0, 0, false, kick, true, NULL), -1);
	/* the guest moves BAR 0 */
	lo = 0xd0000000u | 0xc;
	cfg_write(f, PCI_BASE_ADDRESS_0, lo, 4);
	assert_int_equal(vm_ioeventfd(&f->vm, notify0, 0, false, kick, false, NULL), -1); /* gone */
	assert_int_equal(vm_ioeventfd(&f->vm, 0xd0003000, 0, false, kick, true, NULL), -1);
	/* reset removes it */
	f->bar0 = 0xd0000000;
	w(f, 0x14, 0, 1);
	assert_int_equal(vm_ioeventfd(&f->vm, 0xd0003000, 0, false, kick, false, NULL), -1);
}

static void kvm_msix_vectors_follow_masks(void **state)
{
	struct fx *f = *state;
	unsigned int cap = (unsigned int)0;
	struct vpci_vector *x;
	uint32_t v32, pba;

	if (!f)
		skip();
	cap = (unsigned int)f->v.msix_cap;
	x = &f->v.vectors[1];
	bring_up(f);
	/* program vector 1 while MSI-X is off: nothing attached */
	v32 = (uint32_t)LAYOUT_LAPIC_BASE;
	bus_write(&f->vm.mmio, f->bar2 + 16, &v32, 4);
	v32 = 0x31;
	bus_write(&f->vm.mmio, f->bar2 + 24, &v32, 4);
	v32 = 0;
	bus_write(&f->vm.mmio, f->bar2 + 28, &v32, 4);
	assert_false(x->irqfd);
	cfg_write(f, cap + 2, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_true(x->irqfd);
	assert_true(x->gsi >= LAYOUT_GSI_MSI_BASE);
	assert_true(x->routed);
	/* function mask detaches; an event then shows in the PBA */
	cfg_write(f, cap + 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	assert_false(x->irqfd);
	eventfd_write(x->efd, 1);
	bus_read(&f->vm.mmio, f->bar2 + ((f->v.nr_vectors * 16 + 7) & ~7u), &pba, 4);
	assert_int_equal(pba & 2, 2);
	cfg_write(f, cap + 2, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_true(x->irqfd);
	/* attached: KVM consumed the pending event, the PBA bit is clear again */
	bus_read(&f->vm.mmio, f->bar2 + ((f->v.nr_vectors * 16 + 7) & ~7u), &pba, 4);
	assert_int_equal(pba & 2, 0);
	/* per-vector mask */
	v32 = 1;
	bus_write(&f->vm.mmio, f->bar2 + 28, &v32, 4);
	assert_false(x->irqfd);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TK(fn) cmocka_unit_test_setup_teardown(fn, setup_kvm, teardown)
	const struct CMUnitTest tests[] = {
		T(ids_and_capabilities_follow_the_spec),
		T(features_are_negotiated_in_two_words),
		T(pci_cfg_window_reaches_the_bars),
		T(queue_registers_and_reset),
		T(rings_outside_ram_set_needs_reset),
		TK(kvm_ioeventfds_are_registered_and_moved),
		TK(kvm_msix_vectors_follow_masks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
