/* SPDX-License-Identifier: Apache-2.0 */
/* Local APIC in xAPIC (MMIO) mode, driven from CPL3. */
#ifndef GUEST_LAPIC_H
#define GUEST_LAPIC_H

#include "lib/sys.h"

#define LAPIC_ICR_INIT          0x00000500
#define LAPIC_ICR_STARTUP       0x00000600
#define LAPIC_ICR_LEVEL_ASSERT  0x00004000
#define LAPIC_ICR_FIXED         0x00000000

/* Software-enables this CPU's LAPIC (spurious vector VEC_SPURIOUS) and sets TPR to 0. */
void lapic_enable(void);
uint32_t lapic_id(void);
/* Periodic timer: vector, initial count, divide by 16. count 0 stops it. */
void lapic_timer_periodic(uint8_t vector, uint32_t count);
void lapic_timer_stop(void);
/* Sends an IPI (ICR low bits) to an APIC ID; false if delivery stayed pending ~100 ms. */
bool lapic_send_ipi(uint32_t apic_id, uint32_t icr_low);

#endif
