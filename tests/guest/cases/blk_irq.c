/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk-irq: virtio-blk completions by MSI-X interrupt, and the device's interrupt suppression.
 *
 * First, before DRIVER_OK, queue_msix_vector must read back a table entry it was given and
 * NO_VECTOR for one past the table (§4.1.5.1.2: the device's way to refuse).
 * Then the device gets one MSI-X vector per queue (blk_cfg.irq), queue q's aimed at CPU
 * q mod ncpus (the CPUs are started as the smp case does), which drives that queue:
 * 1. On every queue, from its CPU: 16 x 4 KiB writes in flight, then 16 reads and a verify (reads
 *    only on a read-only drive), waiting for completions in hlt between reaps (arm, re-check,
 *    cpu_wait_unchanged). Every queue's interrupts must land on its CPU only, never more than
 *    its completions, and at least one if the CPU slept (a device that completes everything
 *    before the CPU looks twice owes no interrupt).
 * 2. With EVENT_IDX, on every queue: used_event far ahead, a request completes: no interrupt;
 *    used_event = the index of the next-but-one entry: the next completion raises none, the one
 *    after exactly one. (The first completion after DRIVER_OK may interrupt whatever used_event
 *    says, as QEMU and vireo both do; step 1 has had it.)
 *    Without EVENT_IDX: VRING_AVAIL_F_NO_INTERRUPT set, a request completes: no interrupt; flag
 *    cleared: the next completion raises one.
 * Steps 1-2 run with the features negotiated (EVENT_IDX when the device offers it), then again
 * after a reset without EVENT_IDX. "No interrupt" means none within SETTLE_MS (50 ms) of the
 * completion; the case prints how long the expected ones took.
 *
 * Ownership: a queue is driven by one CPU at a time; step 1 hands queues to their CPUs through
 * smp_call and takes them back with smp_wait (which orders the rings' updates). Each CPU's
 * LAPIC timer ticks every 10 ms while it waits, so a lost interrupt ends in a failure, not a hang.
 * Options: those of blk. Overwrites 64 KiB per queue, from 4 MiB into the disk.
 */
#include "cases/blk_util.h"
#include "drivers/lapic.h"
#include "drivers/smp.h"
#include "ring0/ring0.h"

#define NREQ            16
#define REQ_BYTES       4096
#define REQ_SECTORS     (REQ_BYTES / BLK_SECTOR)
#define REGION_BASE     8192            /* sector: 4 MiB into the disk */
#define WAIT_MS         2000            /* bound on every wait for a completion or interrupt */
#define SETTLE_MS       50              /* time an unwanted interrupt is given to show up */
#define BACKSTOP_COUNT  625000          /* LAPIC timer: 10 ms (62500 = 1 ms, timer.c) */
#define FAR_AHEAD       0x4000

static struct blk blk;
static struct blk_req reqs[BLK_MAX_QUEUES][NREQ];
static uint8_t wbuf[BLK_MAX_QUEUES][NREQ][REQ_BYTES] __attribute__((aligned(4096)));
static uint8_t rbuf[BLK_MAX_QUEUES][NREQ][REQ_BYTES] __attribute__((aligned(4096)));

struct qjob {
	unsigned q;
	uint64_t seed;
	uint64_t waits;         /* sleeps in hlt */
	char err[160];          /* "" if it passed */
};

static struct qjob jobs[BLK_MAX_QUEUES];
static unsigned ncpus;

static unsigned queue_cpu(unsigned q)
{
	return q % ncpus;
}

static uint64_t region(unsigned q)
{
	return REGION_BASE + (uint64_t)q * NREQ * REQ_SECTORS;
}

/* Interrupts of queue q's vector taken on CPU cpu, or on every CPU (cpu = MAX_CPUS). */
static uint64_t irqs(unsigned q, unsigned cpu)
{
	uint64_t n = 0;

	if (cpu < MAX_CPUS)
		return cpus[cpu].irqs[q];
	for (unsigned c = 0; c < MAX_CPUS; c++)
		n += cpus[c].irqs[q];
	return n;
}

static bool job_fail(struct qjob *j, const char *what)
{
	snprintf(j->err, sizeof(j->err), "queue %u: %s: %s", j->q, what, err_get());
	return false;
}

/*
 * Reaps n completions of queue j->q on CPU cpu, sleeping for its interrupt whenever the used ring
 * is empty: read the counter, arm, and halt unless a completion was already there or the counter
 * moved (the ring-0 side of cpu_wait_unchanged closes the window).
 */
static bool irq_reap(struct qjob *j, unsigned cpu, unsigned n)
{
	uint64_t end = time_ns() + WAIT_MS * 1000000ULL;

	while (n) {
		struct blk_req *req;
		uint64_t seen;
		int r = blk_poll(&blk, j->q, &req);

		if (r < 0)
			return job_fail(j, "completion");
		if (r > 0) {
			n--;
			continue;
		}
		seen = cpus[cpu].irqs[j->q];
		if (blk_arm(&blk, j->q))
			continue;
		if (time_ns() > end) {
			snprintf(j->err, sizeof(j->err), "queue %u: %u requests not completed within "
				 "%u ms of waiting for interrupts (%lu taken on CPU %u)", j->q, n,
				 WAIT_MS, cpus[cpu].irqs[j->q], cpu);
			return false;
		}
		cpu_wait_unchanged(&cpus[cpu].irqs[j->q], seen);
		j->waits++;
	}
	return true;
}

static bool irq_batch(struct qjob *j, unsigned cpu, uint32_t type, uint8_t (*bufs)[REQ_BYTES])
{
	for (unsigned i = 0; i < NREQ; i++) {
		struct vring_buf seg = { bufs[i], REQ_BYTES, false };

		if (blk_submit(&blk, j->q, &reqs[j->q][i], type, region(j->q) + i * REQ_SECTORS,
			       &seg, 1) < 0)
			return job_fail(j, "submit");
	}
	blk_kick(&blk, j->q);
	if (!irq_reap(j, cpu, NREQ))
		return false;
	for (unsigned i = 0; i < NREQ; i++) {
		if (reqs[j->q][i].status != VIRTIO_BLK_S_OK) {
			snprintf(j->err, sizeof(j->err), "queue %u: %s of sector %lu: status %u", j->q,
				 type == VIRTIO_BLK_T_IN ? "read" : "write",
				 region(j->q) + i * REQ_SECTORS, reqs[j->q][i].status);
			return false;
		}
	}
	return true;
}

/* Step 1 for one queue, on its CPU (through smp_call, or directly on the boot CPU). */
static void queue_io(unsigned cpu, void *arg)
{
	struct qjob *j = arg;
	bool ro = blk_has(&blk, VIRTIO_BLK_F_RO);

	lapic_timer_periodic(VEC_TIMER, BACKSTOP_COUNT);
	for (unsigned i = 0; i < NREQ; i++)
		blk_fill(wbuf[j->q][i], region(j->q) + i * REQ_SECTORS, REQ_SECTORS, j->seed);
	if (!ro && !irq_batch(j, cpu, VIRTIO_BLK_T_OUT, wbuf[j->q]))
		goto out;
	memset(rbuf[j->q], 0, sizeof(rbuf[j->q]));
	if (!irq_batch(j, cpu, VIRTIO_BLK_T_IN, rbuf[j->q]))
		goto out;
	for (unsigned i = 0; !ro && i < NREQ; i++) {
		if (memcmp(rbuf[j->q][i], wbuf[j->q][i], REQ_BYTES)) {
			snprintf(j->err, sizeof(j->err), "queue %u: sector %lu reads back other data",
				 j->q, region(j->q) + i * REQ_SECTORS);
			break;
		}
	}
out:
	lapic_timer_stop();
}

static int step_io(uint64_t seed)
{
	unsigned ios = blk_has(&blk, VIRTIO_BLK_F_RO) ? NREQ : 2 * NREQ;

	for (unsigned q = 0; q < blk.nqueues; q++) {
		unsigned cpu = queue_cpu(q);
		uint64_t before[MAX_CPUS], got;

		for (unsigned c = 0; c < MAX_CPUS; c++)
			before[c] = irqs(q, c);
		jobs[q] = (struct qjob){ .q = q, .seed = seed + q };
		if (cpu == 0) {
			queue_io(0, &jobs[q]);
		} else if (!smp_call(cpu, queue_io, &jobs[q]) || !smp_wait(cpu, 10000)) {
			return case_fail("queue %u on CPU %u: %s", q, cpu, err_get());
		}
		if (jobs[q].err[0])
			return case_fail("%s", jobs[q].err);
		delay_us(SETTLE_MS * 1000);     /* an interrupt still on its way counts too */
		for (unsigned c = 0; c < MAX_CPUS; c++)
			if (c != cpu && irqs(q, c) != before[c])
				return case_fail("queue %u: aimed at CPU %u (APIC ID %u), %lu of its "
						 "interrupts arrived on CPU %u", q, cpu,
						 smp_apic_id(cpu), irqs(q, c) - before[c], c);
		got = irqs(q, cpu) - before[cpu];
		if ((got == 0 && jobs[q].waits) || got > ios)
			return case_fail("queue %u: %lu interrupts for %u completions, %lu waits in "
					 "hlt", q, got, ios, jobs[q].waits);
		printf("  queue %u on CPU %u: %u requests, %lu interrupts, %lu waits in hlt\n", q,
		       cpu, ios, got, jobs[q].waits);
	}
	return CASE_OK;
}

/* Submits one read on queue q and waits (polling) for used->idx to reach idx. */
static int one_read(unsigned q, unsigned slot, uint16_t idx, uint64_t *done_ns)
{
	struct vring_buf seg = { rbuf[q][slot], REQ_BYTES, false };
	uint64_t end;

	if (blk_submit(&blk, q, &reqs[q][slot], VIRTIO_BLK_T_IN, region(q) + slot * REQ_SECTORS,
		       &seg, 1) < 0)
		return case_fail("queue %u: %s", q, err_get());
	blk_kick(&blk, q);
	end = time_ns() + WAIT_MS * 1000000ULL;
	while (vring_used_idx(&blk.q[q]) != idx) {
		if (time_ns() > end)
			return case_fail("queue %u: used->idx %u, expected %u within %u ms", q,
					 vring_used_idx(&blk.q[q]), idx, WAIT_MS);
		cpu_relax();
	}
	*done_ns = time_ns();
	return CASE_OK;
}

/* No interrupt of queue q within SETTLE_MS: the count stays c0. */
static int expect_none(unsigned q, uint64_t c0, const char *why)
{
	delay_us(SETTLE_MS * 1000);
	if (irqs(q, MAX_CPUS) != c0)
		return case_fail("queue %u: %lu interrupts %s", q, irqs(q, MAX_CPUS) - c0, why);
	return CASE_OK;
}

/* Exactly one interrupt of queue q (count c0 + 1) within WAIT_MS; its latency into *us. */
static int expect_one(unsigned q, uint64_t c0, uint64_t done_ns, const char *why, uint64_t *us)
{
	uint64_t end = done_ns + WAIT_MS * 1000000ULL;

	while (irqs(q, MAX_CPUS) == c0) {
		if (time_ns() > end)
			return case_fail("queue %u: no interrupt within %u ms %s", q, WAIT_MS, why);
		cpu_relax();
	}
	*us = (time_ns() - done_ns) / 1000;
	return expect_none(q, c0 + 1, why);
}

/* Takes the n completions one_read() left on queue q; all must be OK. */
static int take(unsigned q, unsigned n)
{
	if (blk_wait(&blk, q, n, WAIT_MS) < 0)
		return case_fail("%s", err_get());
	for (unsigned i = 0; i < n; i++)
		if (reqs[q][i].status != VIRTIO_BLK_S_OK)
			return case_fail("queue %u: read %u: status %u", q, i, reqs[q][i].status);
	return CASE_OK;
}

/* Step 2 with EVENT_IDX on queue q, driven from the boot CPU (polled: the ring is not armed). */
static int step_event_idx(unsigned q)
{
	uint16_t l = blk.q[q].last_used;
	uint64_t c0 = irqs(q, MAX_CPUS), t, us;
	int r;

	vring_set_used_event(&blk.q[q], l + FAR_AHEAD);
	if ((r = one_read(q, 0, l + 1, &t)) || (r = expect_none(q, c0, "although used_event was "
								 "far ahead")))
		return r;
	/* the device interrupts when it writes the entry at index used_event: l + 2 */
	vring_set_used_event(&blk.q[q], l + 2);
	if ((r = one_read(q, 1, l + 2, &t)) ||
	    (r = expect_none(q, c0, "when the entry before used_event was written")) ||
	    (r = one_read(q, 2, l + 3, &t)) ||
	    (r = expect_one(q, c0, t, "when the entry at used_event was written", &us)))
		return r;
	printf("  queue %u, EVENT_IDX: no interrupt before used_event, one at it (counted %lu us "
	       "after the poll saw the entry)\n", q, us);
	return take(q, 3);
}

/* Step 2 without EVENT_IDX on queue q, driven from the boot CPU. */
static int step_no_interrupt(unsigned q)
{
	uint16_t l = blk.q[q].last_used;
	uint64_t c0 = irqs(q, MAX_CPUS), t, us;
	int r;

	/* disarmed since the last completion we took: VRING_AVAIL_F_NO_INTERRUPT is set */
	if ((r = one_read(q, 0, l + 1, &t)) ||
	    (r = expect_none(q, c0, "although VRING_AVAIL_F_NO_INTERRUPT was set")))
		return r;
	blk_arm(&blk, q);
	if ((r = one_read(q, 1, l + 2, &t)) ||
	    (r = expect_one(q, c0, t, "with VRING_AVAIL_F_NO_INTERRUPT clear", &us)))
		return r;
	printf("  queue %u, no EVENT_IDX: no interrupt with NO_INTERRUPT set, one without it "
	       "(counted %lu us after the poll saw the entry)\n", q, us);
	return take(q, 2);
}

/* A vector in the table is kept, one past it refused (reads NO_VECTOR); leaves the device reset. */
static int vector_refusal(const struct pci_dev *d)
{
	struct virtio_pci *v = &blk.vp;
	uint16_t got;
	int r = CASE_OK;

	if (virtio_pci_init(v, d) < 0 || msix_init(&v->msix, d) < 0)
		return case_fail("%s", err_get());
	if ((got = virtio_pci_queue_vector(v, 0, 0)) != 0)
		r = case_fail("queue 0: queue_msix_vector 0 reads back %#x", got);
	else if ((got = virtio_pci_queue_vector(v, 0, v->msix.size)) != VIRTIO_MSI_NO_VECTOR)
		r = case_fail("queue 0: queue_msix_vector %u (past the table of %u) reads back %#x, "
			      "not NO_VECTOR", v->msix.size, v->msix.size, got);
	else
		printf("  queue_msix_vector: entry 0 kept, %u (past the table) refused\n",
		       v->msix.size);
	virtio_pci_reset(v);
	return r;
}

static int run_mode(uint64_t features_mask, uint64_t seed)
{
	struct blk_cfg cfg = { .irq = true, .features_mask = features_mask };
	bool event_idx;
	int r;

	if ((r = blk_open(&blk, &cfg, false)) != CASE_OK)
		return r;
	event_idx = blk_has(&blk, VIRTIO_F_EVENT_IDX);
	printf("  %s: %u queues, MSI-X table of %u at %#lx\n", event_idx ? "EVENT_IDX" :
	       "without EVENT_IDX", blk.nqueues, blk.vp.msix.size, blk.vp.msix.table);
	if (region(blk.nqueues) > blk.capacity)
		return case_fail("the disk (%lu sectors) is too small: %lu needed", blk.capacity,
				 region(blk.nqueues));
	for (unsigned q = 0; q < blk.nqueues; q++)
		blk_irq_target(&blk, q, smp_apic_id(queue_cpu(q)));
	if ((r = step_io(seed)) != CASE_OK)
		return r;
	for (unsigned q = 0; q < blk.nqueues; q++)
		if ((r = event_idx ? step_event_idx(q) : step_no_interrupt(q)) != CASE_OK)
			return r;
	return CASE_OK;
}

int case_blk_irq(void)
{
	struct pci_dev d;
	int n, r;

	if ((r = blk_find(&d)) != CASE_OK)
		return r;
	n = smp_start(false);
	if (n < 0)
		return case_fail("starting the CPUs: %s", err_get());
	ncpus = n;
	r = vector_refusal(&d);
	if (r == CASE_OK)
		r = run_mode(0, 7000);
	if (r == CASE_OK && blk_has(&blk, VIRTIO_F_EVENT_IDX))
		r = run_mode(blk.features & ~(1ULL << VIRTIO_F_EVENT_IDX), 8000);
	if (blk.vp.common) {
		virtio_pci_reset(&blk.vp);
		virtio_pci_msix_disable(&blk.vp);
	}
	return r;
}
