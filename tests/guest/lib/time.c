/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Time from the TSC. CPUID gives no TSC frequency here (AMD, and KVM does not offer leaf
 * 0x40000010), so time_init() counts TSC ticks over ~10 ms of the ACPI PM timer (3.579545 MHz).
 * Each PM timer read is a trap from CPL3 (~100 µs), which bounds the error to ~1 %: plenty for
 * timeouts and start-up delays. Without a PM timer we assume a fast TSC (3 GHz), which only makes
 * delays longer than asked.
 */
#include "lib/lib.h"
#include "drivers/acpi.h"

#define PMT_HZ          3579545ULL
#define ASSUMED_TSC_HZ  3000000000ULL

uint64_t tsc_hz = ASSUMED_TSC_HZ;

void time_init(void)
{
	uint16_t port;
	unsigned bits;
	uint32_t mask, t0, t;
	uint64_t c0, c1;
	unsigned spins = 0;

	if (!acpi_pm_timer(&port, &bits)) {
		printf("time: no ACPI PM timer, assuming a %lu MHz TSC\n", tsc_hz / 1000000);
		return;
	}
	mask = bits == 32 ? 0xffffffffu : 0xffffffu;
	t0 = inl(port) & mask;
	c0 = rdtsc();
	do {
		t = inl(port) & mask;
		if (++spins > 2000 && t == t0) {
			printf("time: PM timer at %#x does not count, assuming a %lu MHz TSC\n", port,
			       tsc_hz / 1000000);
			return;
		}
	} while (((t - t0) & mask) < PMT_HZ / 100);
	c1 = rdtsc();
	tsc_hz = (c1 - c0) * PMT_HZ / ((t - t0) & mask);
}

uint64_t time_ns(void)
{
	uint64_t t = rdtsc();

	return t / tsc_hz * 1000000000ULL + t % tsc_hz * 1000000000ULL / tsc_hz;
}

void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + us * (tsc_hz / 1000000);

	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
}
