/* SPDX-License-Identifier: Apache-2.0 */
/* The case table, in the order "all" runs them. */
#include "cases/cases.h"

const struct guest_case guest_cases[] = {
	{ "madt", case_madt, true, "count enabled CPUs in the MADT (cpus=N: expect N)" },
	{ "pci", case_pci, true, "walk PCI config space (ECAM or CF8), check the host bridge" },
	{ "timer", case_timer, true, "take LAPIC timer interrupts" },
	{ "smp", case_smp, true, "start the other CPUs with INIT-SIPI-SIPI, IPI them" },
	{ "blk", case_blk, true, "virtio-blk on every queue: verify, flush, serial, discard, zeroes" },
	{ "blk-smp", case_blk_smp, true, "virtio-blk: every queue from every CPU, concurrently" },
	{ "blk-reset", case_blk_reset, true, "virtio-blk: reset with I/O in flight, re-initialise" },
	{ "blk-irq", case_blk_irq, true,
	  "virtio-blk: MSI-X completions on every queue, EVENT_IDX / NO_INTERRUPT suppression" },
	{ "blk-hostile", case_blk_hostile, false,
	  "virtio-blk: malformed requests on queue 0, queue 1 keeps serving" },
	{ "blk-crashwriter", case_blk_crashwriter, false,
	  "virtio-blk: random writes, zeroes, discards, flushes, logged for a crash check" },
	{ "blk-count", case_blk_count, false,
	  "virtio-blk: a known mix of requests for the host to count (query-blockstats)" },
	{ "scsi-luns", case_scsi_luns, false,
	  "virtio-scsi: REPORT LUNS, INQUIRY and READ CAPACITY of each LUN, absent LUN and target" },
	{ "scsi-rw", case_scsi_rw, false,
	  "virtio-scsi: write, read, verify on every queue from every CPU, FUA, sync, unmap" },
	{ "scsi-bad", case_scsi_bad, false,
	  "virtio-scsi: bad CDBs give the right sense; malformed requests; the device keeps serving" },
	{ "scsi-tmf", case_scsi_tmf, false,
	  "virtio-scsi: ABORT TASK, QUERY TASK, LUN and I_T nexus reset with I/O in flight" },
	{ "bench", case_bench, false, "virtio-blk random-I/O benchmark (bench-* options)" },
	{ "idle", case_idle, false, "wait with hlt, taking timer interrupts, until powered off" },
};
const unsigned guest_ncases = ARRAY_SIZE(guest_cases);
