/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Application processors: start them (INIT-SIPI-SIPI through ring0/trampoline.S) and hand each a
 * function to run in CPL3. The boot CPU is CPU 0; APs take slots 1.. in MADT order.
 */
#ifndef GUEST_SMP_H
#define GUEST_SMP_H

#include "lib/sys.h"

typedef void (*smp_fn)(unsigned cpu, void *arg);

/*
 * Starts every CPU the MADT lists (once: later calls return at once). Returns how many CPUs are
 * online, the boot CPU included, or -1 with err_set(). verbose: print a line per CPU.
 */
int smp_start(bool verbose);
/* CPUs online (1 before smp_start). */
unsigned smp_ncpus(void);
/* The APIC ID of CPU slot cpu. */
uint32_t smp_apic_id(unsigned cpu);
/*
 * Makes CPU cpu (an AP) run fn(cpu, arg), waking it with IPIs until it starts; false (err_set) if
 * it did not start within 1 s or is still busy with an earlier call.
 */
bool smp_call(unsigned cpu, smp_fn fn, void *arg);
/* Waits until CPU cpu returned from its smp_call() function; false (err_set) after timeout_ms. */
bool smp_wait(unsigned cpu, uint64_t timeout_ms);
/*
 * Runs fn(cpu, arg) on every online CPU at once (the boot CPU's in line, after the APs were
 * started) and waits for all; false (err_set) if an AP did not start or finish in timeout_ms.
 */
bool smp_run_all(smp_fn fn, void *arg, uint64_t timeout_ms);

#endif
