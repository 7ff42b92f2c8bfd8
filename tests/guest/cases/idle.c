/* SPDX-License-Identifier: Apache-2.0 */
/*
 * idle: halt forever, taking a 10 Hz LAPIC timer interrupt, so that a running VM can be inspected
 * and controlled; the VMM ends it (poweroff, quit). Not part of "all".
 */
#include "cases/cases.h"
#include "drivers/lapic.h"
#include "ring0/ring0.h"

int case_idle(void)
{
	printf("  idle: halting until the VMM powers the VM off\n");
	lapic_enable();
	lapic_timer_periodic(VEC_TIMER, 6250000);       /* 100 ms at 1 GHz / 16 */
	for (;;)
		cpu_wait();
}
