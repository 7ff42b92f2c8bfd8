/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What ring 0 shares with CPL3: the per-CPU records the interrupt handlers update and the test
 * cases read, and the symbols the AP start-up needs. Ring 0 writes a counter only from its own CPU's
 * handler; CPL3 reads them (volatile, single 64-bit loads are atomic on x86).
 */
#ifndef GUEST_RING0_H
#define GUEST_RING0_H

#include "layout.h"
#include "lib/sys.h"

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

struct cpu {
	volatile uint64_t ticks;        /* LAPIC timer interrupts taken */
	volatile uint64_t ipis;         /* VEC_IPI interrupts taken */
	volatile uint64_t dev_irqs;     /* device interrupts taken, every vector */
	volatile uint64_t irqs[NR_DEV_VECTORS]; /* per device vector VEC_DEV_BASE + i */
	volatile uint32_t online;       /* set by ring0_boot() when the CPU enters CPL3 */
};

extern struct cpu cpus[MAX_CPUS];
extern uint64_t pvh_info_pa;            /* EBX at PVH entry */
extern volatile uint32_t ap_boot_cpu;   /* slot the next AP to start takes */
extern uint64_t lapic_base;             /* from IA32_APIC_BASE, read at boot */
extern const char trampoline_start[], trampoline_end[];

/* CPL3 entry points (main.c, drivers/smp.c) */
__noreturn void guest_main(unsigned cpu);
__noreturn void ap_main(unsigned cpu);

#endif
