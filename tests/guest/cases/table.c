/* SPDX-License-Identifier: Apache-2.0 */
/* The case table, in the order "all" runs them. */
#include "cases/cases.h"

const struct guest_case guest_cases[] = {
	{ "madt", case_madt, true, "count enabled CPUs in the MADT (cpus=N: expect N)" },
	{ "pci", case_pci, true, "walk PCI config space (ECAM or CF8), check the host bridge" },
	{ "timer", case_timer, true, "take LAPIC timer interrupts" },
	{ "smp", case_smp, true, "start the other CPUs with INIT-SIPI-SIPI, IPI them" },
	{ "blk", case_blk, true, "virtio-blk on every queue: verify, flush, serial, discard, zeroes" },
	{ "idle", case_idle, false, "wait with hlt, taking timer interrupts, until powered off" },
};
const unsigned guest_ncases = ARRAY_SIZE(guest_cases);
