/* SPDX-License-Identifier: Apache-2.0 */
/*
 * smp: start every other CPU the MADT lists with INIT-SIPI-SIPI (drivers/smp.c), let each report
 * its APIC ID from CPL3 and take a fixed IPI, then run a function on each through its mailbox.
 * If another case already started the CPUs, the IPI and mailbox checks run on them again.
 */
#include "cases/cases.h"
#include "drivers/lapic.h"
#include "drivers/smp.h"
#include "ring0/ring0.h"

static volatile uint32_t ran_on[MAX_CPUS];

static void hello(unsigned cpu, void *arg)
{
	ran_on[cpu] = lapic_id() + 1;
}

static int ipi_check(unsigned cpu)
{
	uint64_t ipis = cpus[cpu].ipis, end;

	if (!lapic_send_ipi(smp_apic_id(cpu), LAPIC_ICR_FIXED | VEC_IPI))
		return case_fail("IPI to APIC ID %u stayed pending", smp_apic_id(cpu));
	end = time_ns() + 1000000000;
	while (cpus[cpu].ipis == ipis)
		if (time_ns() > end)
			return case_fail("APIC ID %u took no IPI within 1 s", smp_apic_id(cpu));
	return CASE_OK;
}

int case_smp(void)
{
	bool again = smp_ncpus() > 1;
	int n = smp_start(true);

	if (n < 0)
		return case_fail("%s", err_get());
	if (n < 2)
		return case_skip("the MADT lists %d CPU", n);
	for (int cpu = 1; cpu < n; cpu++) {
		int r;

		if (again && (r = ipi_check(cpu)) != CASE_OK)
			return r;
		ran_on[cpu] = 0;
		if (!smp_call(cpu, hello, NULL) || !smp_wait(cpu, 1000))
			return case_fail("%s", err_get());
		if (ran_on[cpu] != smp_apic_id(cpu) + 1)
			return case_fail("CPU %d ran its call as APIC ID %d, expected %u", cpu,
					 (int)ran_on[cpu] - 1, smp_apic_id(cpu));
	}
	printf("  %d CPUs online, each ran a call from the boot CPU\n", n);
	return CASE_OK;
}
