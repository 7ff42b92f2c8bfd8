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

#define PIT_HZ          1193182ULL
#define PIT_CH2         0x42
#define PIT_CMD         0x43
#define PIT_GATE_PORT   0x61

struct pit_sample {
	uint64_t tsc;           /* when the latch happened: the middle of its trap */
	uint64_t bracket;       /* how long the latch took: the uncertainty of tsc */
	uint64_t ticks;         /* PIT ticks counted since the start */
};

/* Latches and reads channel 2's count. */
static uint16_t pit_read(struct pit_sample *s)
{
	uint64_t a, b;
	uint8_t lo, hi;

	a = rdtsc();
	outb(PIT_CMD, 0x80);            /* latch channel 2 */
	b = rdtsc();
	lo = inb(PIT_CH2);
	hi = inb(PIT_CH2);
	s->tsc = a + (b - a) / 2;
	s->bracket = b - a;
	return lo | hi << 8;
}

/*
 * Channel 2 as a rate generator (mode 2) with a 65536 reload, gated on through port 0x61 with the
 * speaker off; we sample it faster than it wraps (every ~0.3 ms; it wraps every 55 ms) and add up
 * the decrements. A vCPU preempted long enough to miss a wrap would count too few ticks, so a gap
 * of more than 20 ms between two samples restarts the measurement. A vCPU preempted inside a
 * latch would misplace that sample in time, so each end of the window is the sample with the
 * tightest bracket among the first and the last PIT_ENDS samples.
 */
#define PIT_ENDS        16

static bool pit_measure(uint64_t want, uint64_t *tsc_ticks, uint64_t *pit_ticks)
{
	struct pit_sample first, last[PIT_ENDS], s;
	uint64_t ticks = 0, prev_t, gap = tsc_hz / 50;
	uint16_t prev, cur;
	unsigned still = 0, n = 0;

	prev = pit_read(&s);
	s.ticks = 0;
	first = s;
	prev_t = s.tsc;
	while (ticks < want || n < 2 * PIT_ENDS) {
		cur = pit_read(&s);
		if (s.tsc - prev_t > gap)
			return false;
		if (cur == prev && ++still > 1000)
			return false;
		ticks += (uint16_t)(prev - cur);
		s.ticks = ticks;
		prev = cur;
		prev_t = s.tsc;
		if (n < PIT_ENDS && s.bracket < first.bracket)
			first = s;
		last[n++ % PIT_ENDS] = s;
	}
	s = last[0];
	for (unsigned i = 1; i < PIT_ENDS; i++)
		if (last[i].bracket < s.bracket)
			s = last[i];
	if (s.ticks <= first.ticks)
		return false;
	*tsc_ticks = s.tsc - first.tsc;
	*pit_ticks = s.ticks - first.ticks;
	return true;
}

bool time_calibrate_pit(unsigned ms)
{
	uint64_t tsc_ticks = 0, pit_ticks = 0;

	outb(PIT_GATE_PORT, (inb(PIT_GATE_PORT) & ~0x02) | 0x01);
	outb(PIT_CMD, 0xb4);            /* channel 2, lo/hi byte, mode 2, binary */
	outb(PIT_CH2, 0);
	outb(PIT_CH2, 0);
	for (int tries = 0; tries < 5; tries++) {
		if (pit_measure(PIT_HZ * ms / 1000, &tsc_ticks, &pit_ticks)) {
			tsc_hz = tsc_ticks * PIT_HZ / pit_ticks;
			return true;
		}
	}
	return false;
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
