/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AP start-up and a one-slot mailbox per AP.
 *
 * Ownership: the boot CPU writes ap_boot_cpu and starts one AP at a time; an AP writes only its
 * own ap_state[] fields (apic_id, then alive; later started and done) and its ring-0 handler only
 * its own cpus[] counters; the boot CPU writes only fn, arg and seq of a mailbox. x86 keeps stores
 * in order and loads in order, so publishing "fn, arg, then seq" and "results, then done" needs
 * only compiler barriers.
 *
 * An idle AP halts. A wake-up IPI can land between its check of seq and its hlt (the check runs
 * in CPL3, the hlt traps to ring 0), so smp_call() repeats the IPI every millisecond until the AP
 * says it started.
 */
#include "drivers/smp.h"
#include "drivers/acpi.h"
#include "drivers/lapic.h"
#include "lib/lib.h"
#include "ring0/ring0.h"

struct ap_state {
	volatile uint32_t apic_id;
	volatile uint32_t alive;
	volatile smp_fn fn;
	void *volatile arg;
	volatile uint64_t seq;          /* calls posted (boot CPU) */
	volatile uint64_t started;      /* calls begun (AP) */
	volatile uint64_t done;         /* calls finished (AP) */
};

static struct ap_state ap_state[MAX_CPUS];
static unsigned ncpus = 1;
static bool started;

__noreturn void ap_main(unsigned cpu)
{
	struct ap_state *s = &ap_state[cpu];

	lapic_enable();
	s->apic_id = lapic_id();
	barrier();
	s->alive = 1;
	for (;;) {
		uint64_t seq = s->seq;

		if (seq == s->done) {
			cpu_wait();
			continue;
		}
		barrier();      /* seq before the fn and arg stored ahead of it */
		s->started = seq;
		s->fn(cpu, s->arg);
		barrier();      /* the function's results before done */
		s->done = seq;
	}
}

static bool wait_for(volatile uint32_t *flag, uint64_t ms)
{
	uint64_t end = time_ns() + ms * 1000000;

	while (!*flag)
		if (time_ns() > end)
			return false;
	return true;
}

static int start_ap(unsigned slot, uint32_t apic_id, bool verbose)
{
	uint64_t ipis, end;

	ap_state[slot] = (struct ap_state){ 0 };
	ap_boot_cpu = slot;
	barrier();
	if (!lapic_send_ipi(apic_id, LAPIC_ICR_INIT | LAPIC_ICR_LEVEL_ASSERT)) {
		err_set("INIT to APIC ID %u stayed pending", apic_id);
		return -1;
	}
	delay_us(10000);
	for (int i = 0; i < 2 && !ap_state[slot].alive; i++) {
		if (!lapic_send_ipi(apic_id, LAPIC_ICR_STARTUP | (TRAMPOLINE_PA >> 12))) {
			err_set("SIPI to APIC ID %u stayed pending", apic_id);
			return -1;
		}
		delay_us(200);
	}
	if (!wait_for(&ap_state[slot].alive, 2000)) {
		err_set("the CPU with APIC ID %u did not come up within 2 s", apic_id);
		return -1;
	}
	if (ap_state[slot].apic_id != apic_id) {
		err_set("started APIC ID %u but that CPU reports ID %u", apic_id,
			ap_state[slot].apic_id);
		return -1;
	}
	ipis = cpus[slot].ipis;
	if (!lapic_send_ipi(apic_id, LAPIC_ICR_FIXED | VEC_IPI)) {
		err_set("IPI to APIC ID %u stayed pending", apic_id);
		return -1;
	}
	end = time_ns() + 1000000000;
	while (cpus[slot].ipis == ipis) {
		if (time_ns() > end) {
			err_set("APIC ID %u took no IPI within 1 s", apic_id);
			return -1;
		}
	}
	if (verbose)
		printf("  CPU %u (APIC ID %u) online in CPL3, took an IPI\n", slot, apic_id);
	return 0;
}

int smp_start(bool verbose)
{
	uint32_t ids[ACPI_MAX_CPUS], self = lapic_id();
	size_t tsize = trampoline_end - trampoline_start;
	int n;

	if (started)
		return ncpus;
	n = acpi_madt_cpus(ids, ARRAY_SIZE(ids));
	if (n < 0)
		return -1;
	started = true;
	ap_state[0].apic_id = self;
	memcpy((void *)TRAMPOLINE_PA, trampoline_start, tsize);
	for (int i = 0; i < n && i < (int)ARRAY_SIZE(ids); i++) {
		if (ids[i] == self)
			continue;
		if (ncpus >= MAX_CPUS) {
			printf("  only %u CPUs supported, not starting the rest\n", MAX_CPUS);
			break;
		}
		if (start_ap(ncpus, ids[i], verbose) < 0)
			return -1;
		ncpus++;
	}
	return ncpus;
}

unsigned smp_ncpus(void)
{
	return ncpus;
}

uint32_t smp_apic_id(unsigned cpu)
{
	return cpu < ncpus ? ap_state[cpu].apic_id : 0;
}

bool smp_call(unsigned cpu, smp_fn fn, void *arg)
{
	struct ap_state *s = &ap_state[cpu];
	uint64_t seq, end;

	if (cpu == 0 || cpu >= ncpus) {
		err_set("smp_call: CPU %u is not an online AP (%u CPUs)", cpu, ncpus);
		return false;
	}
	if (s->done != s->seq) {
		err_set("smp_call: CPU %u is still running an earlier call", cpu);
		return false;
	}
	seq = s->seq + 1;
	s->fn = fn;
	s->arg = arg;
	barrier();      /* fn and arg before seq */
	s->seq = seq;
	end = time_ns() + 1000000000;
	while (s->started != seq && s->done != seq) {
		if (time_ns() > end) {
			err_set("CPU %u did not start its call within 1 s", cpu);
			return false;
		}
		lapic_send_ipi(s->apic_id, LAPIC_ICR_FIXED | VEC_IPI);
		delay_us(1000);
	}
	return true;
}

bool smp_wait(unsigned cpu, uint64_t timeout_ms)
{
	struct ap_state *s = &ap_state[cpu];
	uint64_t end = time_ns() + timeout_ms * 1000000;

	while (s->done != s->seq) {
		if (time_ns() > end) {
			err_set("CPU %u did not finish within %lu ms", cpu, timeout_ms);
			return false;
		}
		cpu_relax();
	}
	barrier();      /* done before the results stored ahead of it */
	return true;
}

bool smp_run_all(smp_fn fn, void *arg, uint64_t timeout_ms)
{
	unsigned n = smp_ncpus();

	for (unsigned c = 1; c < n; c++)
		if (!smp_call(c, fn, arg))
			return false;
	fn(0, arg);
	for (unsigned c = 1; c < n; c++)
		if (!smp_wait(c, timeout_ms))
			return false;
	return true;
}
