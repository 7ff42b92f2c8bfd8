/* SPDX-License-Identifier: Apache-2.0 */
/* Local APIC registers through MMIO at the base ring 0 read from IA32_APIC_BASE. */
#include "drivers/lapic.h"
#include "lib/lib.h"
#include "ring0/ring0.h"

#define LAPIC_ID        0x020
#define LAPIC_TPR       0x080
#define LAPIC_SVR       0x0f0
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_ICR 0x380
#define LAPIC_TIMER_DCR 0x3e0
#define ICR_PENDING     (1u << 12)
#define LVT_MASKED      (1u << 16)
#define LVT_PERIODIC    (1u << 17)

static uint32_t rd(unsigned reg)
{
	return mmio_read32(lapic_base + reg);
}

static void wr(unsigned reg, uint32_t v)
{
	mmio_write32(lapic_base + reg, v);
}

void lapic_enable(void)
{
	wr(LAPIC_TPR, 0);
	wr(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
}

uint32_t lapic_id(void)
{
	return rd(LAPIC_ID) >> 24;
}

void lapic_timer_periodic(uint8_t vector, uint32_t count)
{
	wr(LAPIC_TIMER_DCR, 0x3);       /* divide by 16 */
	wr(LAPIC_LVT_TIMER, LVT_PERIODIC | vector);
	wr(LAPIC_TIMER_ICR, count);
}

void lapic_timer_stop(void)
{
	wr(LAPIC_LVT_TIMER, LVT_MASKED);
	wr(LAPIC_TIMER_ICR, 0);
}

bool lapic_send_ipi(uint32_t apic_id, uint32_t icr_low)
{
	uint64_t end;

	wr(LAPIC_ICR_HI, apic_id << 24);
	wr(LAPIC_ICR_LO, icr_low);
	end = time_ns() + 100000000;
	while (rd(LAPIC_ICR_LO) & ICR_PENDING)
		if (time_ns() > end)
			return false;
	return true;
}
