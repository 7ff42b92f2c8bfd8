/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/pci.h"
#include "vmm/layout.h"

struct fixture {
	struct bus mmio, pio;
	struct pci_bus pci;
	struct pci_device dev;
	unsigned int moves;
	unsigned int last_bar;
	uint64_t last_old, last_new;
	unsigned int cfg_writes;
	uint64_t reg;
};

static void reg_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct fixture *f = opaque;

	bus_put(data, len, f->reg + off);
}

static void reg_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct fixture *f = opaque;

	f->reg = bus_get(data, len);
}

static const struct bus_ops reg_ops = { reg_read, reg_write };

static void on_bar_moved(struct pci_device *d, unsigned int bar, uint64_t old, uint64_t new)
{
	struct fixture *f = d->opaque;

	f->moves++;
	f->last_bar = bar;
	f->last_old = old;
	f->last_new = new;
}

static void on_cfg_write(struct pci_device *d, uint32_t off, unsigned int len, uint32_t val)
{
	struct fixture *f = d->opaque;

	f->cfg_writes++;
}

static const struct pci_device_ops dev_ops = { on_cfg_write, on_bar_moved };

static int setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	bus_init(&f.mmio, "mmio");
	bus_init(&f.pio, "pio");
	assert_int_equal(pci_bus_init(&f.pci, &f.mmio, &f.pio, &layout_pci_bus, NULL), 0);
	pci_device_init(&f.dev, "test", 0x1af4, 0x1042, 0x010000, 1, &dev_ops, &f);
	assert_int_equal(pci_device_add_bar(&f.dev, 0, 16 * 1024, PCI_BAR_F_MEM64, &reg_ops, &f,
					    NULL), 0);
	assert_int_equal(pci_device_add_bar(&f.dev, 2, 4096, 0, &reg_ops, &f, NULL), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pci_bus_destroy(&f->pci);
	bus_destroy(&f->mmio);
	bus_destroy(&f->pio);
	return 0;
}

static uint32_t ecam_read(struct fixture *f, unsigned int slot, unsigned int off, unsigned int len)
{
	uint32_t v = 0;

	bus_read(&f->mmio, LAYOUT_PCI_ECAM_BASE + (slot << 15) + off, &v, len);
	return v;
}

static void ecam_write(struct fixture *f, unsigned int slot, unsigned int off, unsigned int len,
		       uint32_t v)
{
	bus_write(&f->mmio, LAYOUT_PCI_ECAM_BASE + (slot << 15) + off, &v, len);
}

static uint32_t cf8_read(struct fixture *f, unsigned int slot, unsigned int off, unsigned int len)
{
	uint32_t a = 0x80000000u | slot << 11 | (off & 0xfc), v = 0;

	bus_write(&f->pio, LAYOUT_PORT_PCI_CFG, &a, 4);
	bus_read(&f->pio, 0xcfc + (off & 3), &v, len);
	return v;
}

static void host_bridge_is_at_slot_0_and_absent_devices_read_all_ones(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(ecam_read(f, 0, PCI_VENDOR_ID, 2), 0x1b36);
	assert_int_equal(ecam_read(f, 0, PCI_CLASS_PROG + 1, 2), 0x0600);
	assert_int_equal(ecam_read(f, 5, 0, 4), 0xffffffff);
	assert_int_equal(ecam_read(f, 5, 2, 2), 0xffff);
	/* function 1 of a present device is absent too */
	assert_int_equal(ecam_read(f, 0, (1 << 12) | 0, 4), 0xffffffff);
	assert_int_equal(cf8_read(f, 7, 0, 4), 0xffffffff);
}

static void ecam_and_cf8_agree(void **state)
{
	struct fixture *f = *state;
	int slot = pci_bus_add_device(&f->pci, &f->dev, -1, NULL);

	assert_int_equal(slot, 1);
	for (unsigned int off = 0; off < 64; off += 4)
		assert_int_equal(ecam_read(f, slot, off, 4), cf8_read(f, slot, off, 4));
	assert_int_equal(cf8_read(f, slot, 2, 2), 0x1042);
	assert_int_equal(cf8_read(f, slot, 8, 1), 1);
	/* a write through CF8/CFC is seen through ECAM */
	{
		uint32_t a = 0x80000000u | (uint32_t)slot << 11 | PCI_INTERRUPT_LINE, v = 11;

		bus_write(&f->pio, LAYOUT_PORT_PCI_CFG, &a, 4);
		bus_write(&f->pio, 0xcfc, &v, 1);
		assert_int_equal(ecam_read(f, slot, PCI_INTERRUPT_LINE, 1), 11);
	}
	/* CF8 with the enable bit clear reads all ones */
	{
		uint32_t a = (uint32_t)slot << 11, v = 0;

		bus_write(&f->pio, LAYOUT_PORT_PCI_CFG, &a, 4);
		bus_read(&f->pio, 0xcfc, &v, 4);
		assert_int_equal(v, 0xffffffff);
	}
}

static void bars_are_placed_aligned_and_decoded(void **state)
{
	struct fixture *f = *state;
	int slot = pci_bus_add_device(&f->pci, &f->dev, -1, NULL);
	uint64_t b0 = pci_bar_address(&f->dev, 0), b2 = pci_bar_address(&f->dev, 2);
	uint32_t v = 0;

	assert_true(slot > 0);
	assert_true(b0 >= LAYOUT_PCI_MMIO32_BASE && b0 % (16 * 1024) == 0);
	assert_true(b2 >= LAYOUT_PCI_MMIO32_BASE && b2 % 4096 == 0);
	assert_int_not_equal(b0, b2);
	assert_true(ecam_read(f, slot, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	assert_int_equal(ecam_read(f, slot, PCI_BASE_ADDRESS_0, 4), (uint32_t)b0 | 0x4);
	f->reg = 0x100;
	assert_true(bus_read(&f->mmio, b0 + 8, &v, 4));
	assert_int_equal(v, 0x108);
}

static void bar_sizing_reads_back_the_size_mask(void **state)
{
	struct fixture *f = *state;
	int slot = pci_bus_add_device(&f->pci, &f->dev, -1, NULL);

	ecam_write(f, slot, PCI_COMMAND, 2, 0); /* decode off, as guests do while sizing */
	ecam_write(f, slot, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	ecam_write(f, slot, PCI_BASE_ADDRESS_0 + 4, 4, 0xffffffff);
	ecam_write(f, slot, PCI_BASE_ADDRESS_0 + 8, 4, 0xffffffff);
	ecam_write(f, slot, PCI_BASE_ADDRESS_0 + 12, 4, 0xffffffff);
	assert_int_equal(ecam_read(f, slot, PCI_BASE_ADDRESS_0, 4), 0xffffc004);
	assert_int_equal(ecam_read(f, slot, PCI_BASE_ADDRESS_0 + 4, 4), 0xffffffff);
	assert_int_equal(ecam_read(f, slot, PCI_BASE_ADDRESS_0 + 8, 4), 0xfffff000);
	/* the BAR after a 32-bit BAR's size is unused: reads 0 */
	assert_int_equal(ecam_read(f, slot, PCI_BASE_ADDRESS_0 + 12, 4), 0);
	/* unimplemented BARs read 0 whatever is written */
	ecam_write(f, slot, PCI_BASE_ADDRESS_0 + 16, 4, 0xffffffff);
	assert_int_equal(ecam_read(f, slot, PCI_BASE_ADDRESS_0 + 16, 4), 0);
	assert_int_equal(pci_bar_address(&f->dev, 0), PCI_BAR_UNMAPPED);
}

static void sizing_with_decode_on_does_not_decode_the_pattern(void **state)
{
	struct fixture *f = *state;
	int slot = pci_bus_add_device(&f->pci, &f->dev, -1, NULL);
	uint64_t b2 = pci_bar_address(&f->dev, 2);
	uint32_t v;

	ecam_write(f, slot, PCI_BASE_ADDRESS_0 + 8, 4, 0xffffffff);
	assert_int_equal(pci_bar_address(&f->dev, 2), PCI_BAR_UNMAPPED);
	assert_false(bus_read(&f->mmio, b2, &v, 4));
	ecam_write(f, slot, PCI_BASE_ADDRESS_0 + 8, 4, (uint32_t)b2);
	assert_int_equal(pci_bar_address(&f->dev, 2), b2);
	assert_true(bus_read(&f->mmio, b2, &v, 4));
}

static void bar_move_reregisters_and_calls_the_hook(void **state)
{
	struct fixture *f = *state;
	int slot = pci_bus_add_device(&f->pci, &f->dev, -1, NULL);
	uint64_t old = pci_bar_address(&f->dev, 2), new = 0xd0000000;
	uint32_t v;

	f->moves = 0;
	ecam_write(f, slot, PCI_BASE_ADDRESS_0 + 8, 4, (uint32_t)new);
	assert_int_equal(f->moves, 1);
	assert_int_equal(f->last_bar, 2);
	assert_int_equal(f->last_old, old);
	assert_int_equal(f->last_new, new);
	assert_false(bus_read(&f->mmio, old, &v, 4));
	assert_true(bus_read(&f->mmio, new + 4, &v, 4));
	/* memory decode off unmaps every BAR */
	ecam_write(f, slot, PCI_COMMAND, 2, 0);
	assert_int_equal(pci_bar_address(&f->dev, 2), PCI_BAR_UNMAPPED);
	assert_int_equal(f->last_new, PCI_BAR_UNMAPPED);
	assert_false(bus_read(&f->mmio, new, &v, 4));
	ecam_write(f, slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(pci_bar_address(&f->dev, 2), new);
	/* a 64-bit BAR moved above 4 GiB by writing both halves */
	ecam_write(f, slot, PCI_BASE_ADDRESS_0 + 4, 4, 0x10);
	assert_int_equal(pci_bar_address(&f->dev, 0) >> 32, 0x10);
	assert_true(f->cfg_writes > 0);
}

static void read_only_fields_and_status_write_one_to_clear(void **state)
{
	struct fixture *f = *state;
	int slot = pci_bus_add_device(&f->pci, &f->dev, -1, NULL);

	ecam_write(f, slot, PCI_VENDOR_ID, 4, 0x12345678);
	assert_int_equal(ecam_read(f, slot, PCI_VENDOR_ID, 4), 0x10421af4);
	f->dev.cfg[PCI_STATUS + 1] = 0x80; /* detected parity error */
	ecam_write(f, slot, PCI_STATUS, 2, 0x8000);
	assert_int_equal(ecam_read(f, slot, PCI_STATUS + 1, 1), 0);
}

static void capabilities_are_chained(void **state)
{
	struct fixture *f = *state;
	uint8_t vndr[8] = { 0, 0, 8, 0xaa };
	int c1, c2, slot;

	c1 = pci_add_capability(&f->dev, PCI_CAP_ID_VNDR, vndr, sizeof(vndr), NULL, NULL);
	c2 = pci_add_msix_capability(&f->dev, 3, 2, 0, 2, 0x800, NULL);
	assert_true(c1 >= 0x40 && c2 > c1 && c2 % 4 == 0);
	slot = pci_bus_add_device(&f->pci, &f->dev, -1, NULL);
	assert_true(ecam_read(f, slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(ecam_read(f, slot, PCI_CAPABILITY_LIST, 1), c1);
	assert_int_equal(ecam_read(f, slot, c1, 2), (unsigned)(c2 << 8 | PCI_CAP_ID_VNDR));
	assert_int_equal(ecam_read(f, slot, c1 + 3, 1), 0xaa);
	assert_int_equal(ecam_read(f, slot, c2, 2), PCI_CAP_ID_MSIX);
	assert_int_equal(ecam_read(f, slot, c2 + 2, 2), 2); /* table size - 1 */
	assert_int_equal(ecam_read(f, slot, c2 + 8, 4), 0x802);
	/* only enable and function mask are writable */
	ecam_write(f, slot, c2 + 2, 2, 0xffff);
	assert_int_equal(pci_msix_control(&f->dev, c2), 0xc002);
}

static int reset_value;

static void reset_hook(void *opaque, uint8_t v)
{
	reset_value = v;
}

static void port_cf9_goes_to_the_reset_hook(void **state)
{
	struct fixture *f = *state;
	uint8_t v = 0x06;

	pci_bus_set_reset_hook(&f->pci, reset_hook, NULL);
	assert_true(bus_write(&f->pio, LAYOUT_PORT_RESET, &v, 1));
	assert_int_equal(reset_value, 6);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(host_bridge_is_at_slot_0_and_absent_devices_read_all_ones),
		T(ecam_and_cf8_agree),
		T(bars_are_placed_aligned_and_decoded),
		T(bar_sizing_reads_back_the_size_mask),
		T(sizing_with_decode_on_does_not_decode_the_pattern),
		T(bar_move_reregisters_and_calls_the_hook),
		T(read_only_fields_and_status_write_one_to_clear),
		T(capabilities_are_chained),
		T(port_cf9_goes_to_the_reset_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
