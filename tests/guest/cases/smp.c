/* SPDX-License-Identifier: Apache-2.0 */
/*
 * smp: start every other CPU the MADT lists with INIT-SIPI-SIPI through the real-mode trampoline
 * (ring0/trampoline.S), let each report its APIC ID from CPL3, then send it a fixed IPI and see its
 * handler count it.
 *
 * Ownership: the BSP writes ap_boot_cpu and starts one AP at a time; an AP writes only its own
 * ap_reports[] slot (apic_id, then alive: x86 keeps the two stores in order) and its ring-0 handler
 * only its own cpus[] counters. The BSP only reads them.
 */
#include "cases/cases.h"
#include "drivers/acpi.h"
#include "drivers/lapic.h"
#include "ring0/ring0.h"

struct ap_report {
	volatile uint32_t apic_id;
	volatile uint32_t alive;
};

static struct ap_report ap_reports[MAX_CPUS];

__noreturn void ap_main(unsigned cpu)
{
	lapic_enable();
	ap_reports[cpu].apic_id = lapic_id();
	barrier();
	ap_reports[cpu].alive = 1;
	for (;;)
		cpu_wait();
}

static bool wait_for(volatile uint32_t *flag, uint64_t ms)
{
	uint64_t end = time_ns() + ms * 1000000;

	while (!*flag)
		if (time_ns() > end)
			return false;
	return true;
}

static int start_ap(unsigned slot, uint32_t apic_id)
{
	uint64_t ipis, end;

	ap_reports[slot] = (struct ap_report){ 0 };
	ap_boot_cpu = slot;
	barrier();
	if (!lapic_send_ipi(apic_id, LAPIC_ICR_INIT | LAPIC_ICR_LEVEL_ASSERT))
		return case_fail("INIT to APIC ID %u stayed pending", apic_id);
	delay_us(10000);
	for (int i = 0; i < 2 && !ap_reports[slot].alive; i++) {
		if (!lapic_send_ipi(apic_id, LAPIC_ICR_STARTUP | (TRAMPOLINE_PA >> 12)))
			return case_fail("SIPI to APIC ID %u stayed pending", apic_id);
		delay_us(200);
	}
	if (!wait_for(&ap_reports[slot].alive, 2000))
		return case_fail("the CPU with APIC ID %u did not come up within 2 s", apic_id);
	if (ap_reports[slot].apic_id != apic_id)
		return case_fail("started APIC ID %u but that CPU reports ID %u", apic_id,
				 ap_reports[slot].apic_id);
	ipis = cpus[slot].ipis;
	if (!lapic_send_ipi(apic_id, LAPIC_ICR_FIXED | VEC_IPI))
		return case_fail("IPI to APIC ID %u stayed pending", apic_id);
	end = time_ns() + 1000000000;
	while (cpus[slot].ipis == ipis)
		if (time_ns() > end)
			return case_fail("APIC ID %u took no IPI within 1 s", apic_id);
	printf("  CPU %u (APIC ID %u) online in CPL3, took an IPI\n", slot, apic_id);
	return CASE_OK;
}

int case_smp(void)
{
	uint32_t ids[ACPI_MAX_CPUS], self = lapic_id();
	size_t tsize = trampoline_end - trampoline_start;
	unsigned slot = 1;
	int n, r;

	n = acpi_madt_cpus(ids, ARRAY_SIZE(ids));
	if (n < 0)
		return case_fail("%s", err_get());
	if (n < 2)
		return case_skip("the MADT lists %d CPU", n);
	memcpy((void *)TRAMPOLINE_PA, trampoline_start, tsize);
	for (int i = 0; i < n && i < (int)ARRAY_SIZE(ids); i++) {
		if (ids[i] == self)
			continue;
		if (slot >= MAX_CPUS) {
			printf("  only %u CPUs supported, not starting the rest\n", MAX_CPUS);
			break;
		}
		r = start_ap(slot++, ids[i]);
		if (r != CASE_OK)
			return r;
	}
	return CASE_OK;
}
