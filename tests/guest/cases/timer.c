/* SPDX-License-Identifier: Apache-2.0 */
/*
 * timer: take LAPIC timer interrupts, first while spinning in CPL3 (so a dead timer fails rather
 * than hangs), then while halted.
 */
#include "cases/cases.h"
#include "drivers/lapic.h"
#include "ring0/ring0.h"

#define TIMER_COUNT     62500   /* 1 ms with KVM's and QEMU's 1 GHz APIC bus, divided by 16 */
#define TICKS           5

int case_timer(void)
{
	volatile struct cpu *c = &cpus[0];
	uint64_t t0 = c->ticks, start = time_ns(), deadline = start + 2000000000, spin_ns, halt_ns;

	lapic_enable();
	lapic_timer_periodic(VEC_TIMER, TIMER_COUNT);
	while (c->ticks - t0 < TICKS && time_ns() < deadline)
		cpu_relax();
	spin_ns = time_ns() - start;
	if (c->ticks - t0 < TICKS) {
		lapic_timer_stop();
		return case_fail("%lu LAPIC timer interrupts in 2 s while spinning, expected %u",
				 c->ticks - t0, TICKS);
	}
	t0 = c->ticks;
	start = time_ns();
	while (c->ticks - t0 < TICKS)
		cpu_wait();
	halt_ns = time_ns() - start;
	lapic_timer_stop();
	printf("  %u ticks spinning in %lu us, %u ticks halted in %lu us\n", TICKS, spin_ns / 1000,
	       TICKS, halt_ns / 1000);
	return CASE_OK;
}
