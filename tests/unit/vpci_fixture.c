/* SPDX-License-Identifier: Apache-2.0 */
/* The virtio-pci device tests' shared fixture (vpci_fixture.h). */
#include "vpci_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

void vpcifx_vm_init(struct vm *vm, uint64_t ram)
{
	assert_int_equal(gmem_init(&vm->mem, ram, false), 0);
	vm->vm_fd = -1;
	bus_init(&vm->mmio, "mmio");
	bus_init(&vm->pio, "pio");
}

void vpcifx_w(struct vm *vm, uint64_t addr, uint64_t v, unsigned int len)
{
	bus_write(&vm->mmio, addr, &v, len);
}

uint64_t vpcifx_r(struct vm *vm, uint64_t addr, unsigned int len)
{
	uint64_t v = 0;

	bus_read(&vm->mmio, addr, &v, len);
	return v;
}

void *vpcifx_gp(struct vm *vm, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(&vm->mem, gpa, len);

	assert_non_null(p);
	return p;
}

uint64_t vpcifx_driver_init(struct vm *vm, uint64_t bar0, uint64_t refuse,
			    struct vpcifx_ring *rings, unsigned int nq, uint16_t size,
			    uint64_t stride)
{
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	uint64_t feat, acc;

	vpcifx_w(vm, bar0 + 0x14, 0, 1);
	assert_int_equal(vpcifx_r(vm, bar0 + 0x14, 1), 0);
	vpcifx_w(vm, bar0 + 0x14, st, 1);
	vpcifx_w(vm, bar0 + 0x00, 0, 4);
	feat = vpcifx_r(vm, bar0 + 0x04, 4);
	vpcifx_w(vm, bar0 + 0x00, 1, 4);
	feat |= vpcifx_r(vm, bar0 + 0x04, 4) << 32;
	assert_true(feat & (1ull << VIRTIO_F_VERSION_1));
	acc = feat & ~refuse;
	vpcifx_w(vm, bar0 + 0x08, 0, 4);
	vpcifx_w(vm, bar0 + 0x0c, (uint32_t)acc, 4);
	vpcifx_w(vm, bar0 + 0x08, 1, 4);
	vpcifx_w(vm, bar0 + 0x0c, (uint32_t)(acc >> 32), 4);
	st |= VIRTIO_STATUS_FEATURES_OK;
	vpcifx_w(vm, bar0 + 0x14, st, 1);
	assert_true(vpcifx_r(vm, bar0 + 0x14, 1) & VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(vpcifx_r(vm, bar0 + 0x12, 2), nq);
	for (unsigned int i = 0; i < nq; i++) {
		struct vpcifx_ring *q = &rings[i];
		uint64_t base = 0x10000 + stride * i;

		*q = (struct vpcifx_ring){ .desc = base, .avail = base + 0x1000,
					   .used = base + 0x2000, .size = size };
		memset(vpcifx_gp(vm, base, 0x3000), 0, 0x3000);
		vpcifx_w(vm, bar0 + 0x16, i, 2);
		assert_int_equal(vpcifx_r(vm, bar0 + 0x18, 2), 256 < size ? 256 : size);
		vpcifx_w(vm, bar0 + 0x18, size, 2);
		vpcifx_w(vm, bar0 + 0x20, q->desc, 8); /* a 64-bit access is split in two */
		vpcifx_w(vm, bar0 + 0x28, q->avail, 4);
		vpcifx_w(vm, bar0 + 0x2c, 0, 4);
		vpcifx_w(vm, bar0 + 0x30, q->used, 4);
		vpcifx_w(vm, bar0 + 0x34, 0, 4);
		vpcifx_w(vm, bar0 + 0x1a, i + 1, 2);
		assert_int_equal(vpcifx_r(vm, bar0 + 0x1a, 2), i + 1);
		assert_int_equal(vpcifx_r(vm, bar0 + 0x1e, 2), i);
		vpcifx_w(vm, bar0 + 0x1c, 1, 2);
	}
	vpcifx_w(vm, bar0 + 0x14, st | VIRTIO_STATUS_DRIVER_OK, 1);
	assert_int_equal(vpcifx_r(vm, bar0 + 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET, 0);
	return feat;
}

uint16_t vpcifx_post(struct vm *vm, struct vpcifx_ring *q, const struct vpcifx_seg *s,
		     unsigned int n)
{
	struct virtq_desc *d = vpcifx_gp(vm, q->desc, virtq_desc_bytes(q->size));
	struct virtq_avail *a = vpcifx_gp(vm, q->avail, virtq_avail_bytes(q->size));
	uint16_t head = (uint16_t)(q->next_desc % q->size);

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((q->next_desc + i) % q->size);

		d[idx] = (struct virtq_desc){ s[i].addr, s[i].len,
					      (uint16_t)((s[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
							 (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
					      (uint16_t)((idx + 1) % q->size) };
	}
	q->next_desc += n;
	a->ring[q->avail_idx % q->size] = head;
	__atomic_store_n(&a->idx, (uint16_t)(q->avail_idx + 1), __ATOMIC_RELEASE);
	q->avail_idx++;
	return head;
}

bool vpcifx_try_used(struct vm *vm, struct vpcifx_ring *q, int tries,
		     struct virtq_used_elem *out)
{
	struct virtq_used *u = vpcifx_gp(vm, q->used, virtq_used_bytes(q->size));
	struct timespec ts = { 0, 200000 };

	for (int i = 0; i <= tries; i++) {
		if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) != q->used_seen) {
			*out = u->ring[q->used_seen % q->size];
			q->used_seen++;
			return true;
		}
		if (i < tries)
			nanosleep(&ts, NULL);
	}
	return false;
}

void vpcifx_vm_destroy(struct vm *vm)
{
	bus_destroy(&vm->mmio);
	bus_destroy(&vm->pio);
	gmem_destroy(&vm->mem);
}
