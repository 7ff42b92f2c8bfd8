/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACPI fixed-hardware power-management registers that vmm/acpi.c's FADT points at, on the
 * port I/O bus at the ports of struct acpi_pm_ports (vireo: vmm/layout.h's LAYOUT_PORT_*):
 *
 *   pm1a_evt  4 bytes  PM1a status (write 1 to clear) and enable
 *   pm1a_cnt  2 bytes  PM1a control: SCI_EN always set; SLP_EN with SLP_TYP ACPI_SLP_TYP_S5
 *                      powers off
 *   pm_tmr    4 bytes  PM timer, 3.579545 MHz, 32 bits, from CLOCK_MONOTONIC
 *   gpe0      4 bytes  GPE0 status (2 bytes, write 1 to clear) and enable (2 bytes)
 *   i8042     1 byte   i8042 command/status: 0xfe resets; reads "no data, not busy"
 *
 * The register bits are in common/spec/acpi.h.
 *
 * The reset register (0xcf9) sits inside the PCI CONFIG_ADDRESS dword at 0xcf8, which the PCI
 * host owns on the bus; it passes single-byte writes to 0xcf9 on to acpi_pm_reset_write():
 * pci_bus_set_reset_hook(pci, acpi_pm_reset_write, pm).
 *
 * The SCI is level-triggered: the line is held asserted while any enabled status bit is set.
 * Only the power button (acpi_pm_press_power_button) sets status bits; the other enable bits are
 * plain storage so that the guest's read-back checks pass, and nothing raises a GPE.
 *
 * Concurrency: vCPU threads call the handlers concurrently and the main thread presses the power
 * button; one mutex guards the register state and orders the SCI line changes. The poweroff and
 * reset hooks are called without the mutex held.
 */
#ifndef VIREO_DEVICES_ACPI_PM_H
#define VIREO_DEVICES_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/spec/acpi.h"
#include "devices/bus.h"

/*
 * What the device asks of the machine. In vireo: poweroff -> vm_request_stop(vm,
 * VM_STOP_POWEROFF, 0, "guest powered off (ACPI S5)"), reset -> vm_request_stop(vm,
 * VM_STOP_RESET, 0, ...), set_sci -> vm_irq_line(vm, LAYOUT_IRQ_SCI, level).
 */
struct acpi_pm_ops {
	void (*poweroff)(void *opaque);
	void (*reset)(void *opaque);
	int (*set_sci)(void *opaque, int level);
};

/* Where the registers are on the port bus */
struct acpi_pm_ports {
	uint16_t pm1a_evt;
	uint16_t pm1a_cnt;
	uint16_t pm_tmr;
	uint16_t gpe0;
	uint16_t i8042;
};

struct acpi_pm {
	pthread_mutex_t lock;
	uint16_t pm1_sts, pm1_en, pm1_cnt;
	uint16_t gpe0_sts, gpe0_en;
	bool sci_level;   /* what set_sci was last told */
	uint64_t tmr_ns0; /* CLOCK_MONOTONIC at init: the timer counts from 0 */
	const struct acpi_pm_ops *ops;
	void *opaque;
	struct bus *pio;
	struct acpi_pm_ports ports;
};

/* Registers the ports on `pio`. Returns 0, or -1 with *errp set (a port already taken). */
int acpi_pm_init(struct acpi_pm *pm, struct bus *pio, const struct acpi_pm_ports *ports,
		 const struct acpi_pm_ops *ops, void *opaque, struct error **errp);
void acpi_pm_destroy(struct acpi_pm *pm);

/* Sets PWRBTN_STS and raises the SCI if the guest enabled the power button. Any thread. */
void acpi_pm_press_power_button(struct acpi_pm *pm);
/*
 * A byte written to the reset register (0xcf9; opaque is the struct acpi_pm): a value
 * with RST_CPU (bit 2) set, as 0x06 and 0x0e, resets the VM. Fits pci_bus_set_reset_hook().
 */
void acpi_pm_reset_write(void *opaque, uint8_t value);

#endif
