/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench: random-I/O benchmark of a virtio-blk device from CPL3 (not in "all").
 *
 * Each queue keeps bench-qd requests of bench-bs bytes in flight at random bs-aligned offsets in
 * the first bench-span bytes of the disk; queue i is driven by CPU i mod ncpus (the APs are started
 * as the smp case does), so bench-queues=2 uses two vCPUs. bench-wait=poll (the default): the used
 * rings are polled and no interrupts are asked for (see drivers/vring.c). bench-wait=irq: each
 * queue has an MSI-X vector aimed at its CPU, and a worker whose reap found nothing arms its
 * queues, looks again and sleeps in hlt until an interrupt (as a Linux guest waits for fio's
 * completions), with its LAPIC timer ticking every 100 ms as a backstop. Either way notifications
 * honour EVENT_IDX / VRING_USED_F_NO_NOTIFY: a polling device gets no kicks. Each completion is
 * timed from its submission to the moment the reap saw it, into a log-linear histogram (32 buckets
 * per power of two).
 *
 * Time line: bench-warmup-ms of I/O not counted, then "BENCH START ..." on the console and the
 * measured window of bench-secs seconds, then "BENCH END", a drain, and the result line
 *   BENCH iops=N p50_us=X p99_us=Y ios=N secs=S kicks=K irqs=I ...
 * (kicks: notifications written in the window, irqs: device interrupts taken in it, every CPU;
 * another CPU's counter is read while it runs, which is good enough for a statistic).
 * The TSC is recalibrated against the PIT first. A driver of this guest (bench/blk/run.sh) samples
 * the VMM's CPU time when it reads START and END.
 *
 * Options: bench-rw=randread|randwrite (randread), bench-wait=poll|irq (poll), bench-qd=N (1; at
 * most 32), bench-queues=N (1), bench-secs=N (10), bench-bs=N (4096; a multiple of 512, at most
 * 64 KiB), bench-span=SIZE (the whole disk; K/M/G suffixes), bench-warmup-ms=N (1000), and
 * blk-index / blk-features.
 * randwrite overwrites the disk.
 */
#include "cases/blk_util.h"
#include "drivers/lapic.h"
#include "drivers/smp.h"
#include "ring0/ring0.h"

#define MAX_QD          32
#define MAX_BS          65536
#define MAX_QUEUES      4
#define SUB_BITS        5
#define NBUCKETS        ((64 - SUB_BITS + 1) << SUB_BITS)
#define BACKSTOP_COUNT  6250000         /* LAPIC timer: 100 ms (62500 = 1 ms, timer.c) */

enum phase { WARMUP, MEASURE, STOP };

struct bq {
	unsigned q;
	struct blk_req req[MAX_QD];
	uint64_t t_submit[MAX_QD];
	uint64_t rng;
	uint64_t ios;
	uint64_t lat_sum, lat_max;      /* TSC ticks */
	uint32_t hist[NBUCKETS];
	char err[120];
};

static struct blk blk;
static struct bq bqs[MAX_QUEUES];
static uint8_t bufs[MAX_QUEUES][MAX_QD][MAX_BS] __attribute__((aligned(4096)));

static struct {
	uint32_t type;
	bool irq;                       /* bench-wait=irq */
	unsigned qd, nq, ncpus, bs;
	uint64_t span_blocks;           /* bs-sized blocks in the span */
	uint64_t warmup_tsc, window_tsc;
	volatile enum phase phase;
	uint64_t t_start, t_end;
	uint64_t kicks_start, kicks_end;        /* notifications written, at START and END */
	uint64_t irqs_start, irqs_end;          /* device interrupts taken, at START and END */
} b;

static unsigned bucket(uint64_t x)
{
	unsigned msb;

	if (x < (1u << SUB_BITS))
		return x;
	msb = 63 - __builtin_clzll(x);
	return ((msb - SUB_BITS + 1) << SUB_BITS) | ((x >> (msb - SUB_BITS)) & ((1u << SUB_BITS) - 1));
}

/* The middle of bucket i, in TSC ticks. */
static uint64_t bucket_mid(unsigned i)
{
	unsigned hi = i >> SUB_BITS, lo = i & ((1u << SUB_BITS) - 1);
	uint64_t base, width;

	if (hi == 0)
		return i;
	width = 1ULL << (hi - 1);
	base = (uint64_t)((1u << SUB_BITS) | lo) << (hi - 1);
	return base + width / 2;
}

static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static bool submit(struct bq *q, unsigned i)
{
	uint64_t block = next_rand(&q->rng) % b.span_blocks;
	struct vring_buf seg = { bufs[q - bqs][i], b.bs, false };

	q->t_submit[i] = rdtsc();
	if (blk_submit(&blk, q->q, &q->req[i], b.type, block * (b.bs / BLK_SECTOR), &seg, 1) < 0) {
		snprintf(q->err, sizeof(q->err), "queue %u: %s", q->q, err_get());
		return false;
	}
	return true;
}

/* Takes every completion of queue q, resubmits while running; returns completions or -1. */
static int reap(struct bq *q, bool resubmit)
{
	struct blk_req *req;
	int n = 0, r;

	while ((r = blk_poll(&blk, q->q, &req)) > 0) {
		uint64_t now = rdtsc();
		unsigned i = req - q->req;

		if (req->status != VIRTIO_BLK_S_OK) {
			snprintf(q->err, sizeof(q->err), "queue %u: status %u", q->q, req->status);
			return -1;
		}
		if (b.phase == MEASURE) {
			uint64_t lat = now - q->t_submit[i];

			q->ios++;
			q->lat_sum += lat;
			q->lat_max = MAX(q->lat_max, lat);
			q->hist[bucket(lat)]++;
		}
		if (resubmit && !submit(q, i))
			return -1;
		n++;
	}
	if (r < 0) {
		snprintf(q->err, sizeof(q->err), "queue %u: %s", q->q, err_get());
		return -1;
	}
	if (n && resubmit)
		blk_kick(&blk, q->q);
	return n;
}

static uint64_t dev_irqs(void)
{
	uint64_t n = 0;

	for (unsigned c = 0; c < b.ncpus; c++)
		n += cpus[c].dev_irqs;
	return n;
}

/*
 * bench-wait=irq, when a reap found nothing: arm this CPU's queues and halt until an interrupt,
 * unless a completion came in meanwhile (see blk_arm: the counter is read before arming).
 */
static void wait_irq(unsigned cpu)
{
	uint64_t seen = cpus[cpu].dev_irqs;

	for (unsigned k = cpu; k < b.nq; k += b.ncpus)
		if (blk_arm(&blk, bqs[k].q))
			return;
	cpu_wait_unchanged(&cpus[cpu].dev_irqs, seen);
}

/* The boot CPU moves the phases: warm-up, START, the window, END. */
static void drive_phase(void)
{
	uint64_t now = rdtsc();

	if (b.phase == WARMUP && now >= b.warmup_tsc) {
		printf("BENCH START rw=%s qd=%u queues=%u bs=%u\n",
		       b.type == VIRTIO_BLK_T_IN ? "randread" : "randwrite", b.qd, b.nq, b.bs);
		b.kicks_start = blk_kicks(&blk);
		b.irqs_start = dev_irqs();
		b.t_start = rdtsc();
		b.phase = MEASURE;
	} else if (b.phase == MEASURE && now - b.t_start >= b.window_tsc) {
		b.t_end = now;
		b.phase = STOP;
		b.kicks_end = blk_kicks(&blk);
		b.irqs_end = dev_irqs();
		printf("BENCH END\n");
	}
}

static void worker(unsigned cpu, void *arg)
{
	uint64_t end;
	unsigned inflight[MAX_QUEUES] = { 0 };

	if (b.irq)
		lapic_timer_periodic(VEC_TIMER, BACKSTOP_COUNT);
	for (unsigned k = cpu; k < b.nq; k += b.ncpus) {
		for (unsigned i = 0; i < b.qd; i++)
			if (!submit(&bqs[k], i))
				goto out;
		inflight[k] = b.qd;
		blk_kick(&blk, bqs[k].q);
	}
	while (b.phase != STOP) {
		int got = 0;

		for (unsigned k = cpu; k < b.nq; k += b.ncpus) {
			int n = reap(&bqs[k], true);

			if (n < 0)
				goto drain;
			got += n;
		}
		if (cpu == 0)
			drive_phase();
		if (b.irq && !got)
			wait_irq(cpu);
		else
			cpu_relax();
	}
drain:
	end = rdtsc() + 5 * tsc_hz;
	for (unsigned k = cpu; k < b.nq; k += b.ncpus) {
		while (inflight[k]) {
			int n = reap(&bqs[k], false);

			if (n < 0)
				break;
			if (b.irq && !n)
				wait_irq(cpu);
			inflight[k] -= n;
			if ((int64_t)(rdtsc() - end) > 0) {
				snprintf(bqs[k].err, sizeof(bqs[k].err), "queue %u: %u requests not "
					 "completed 5 s after the end", bqs[k].q, inflight[k]);
				break;
			}
		}
	}
	if (cpu == 0)
		b.phase = STOP;         /* a failure on the boot CPU stops the others */
out:
	if (b.irq)
		lapic_timer_stop();
}

static bool parse_size(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	unsigned shift = 0;

	if (n == 0 || n >= sizeof(num))
		return false;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	}
	if (shift)
		num[n - 1] = '\0';
	if (!parse_u64(num, out) || *out > (UINT64_MAX >> shift))
		return false;
	*out <<= shift;
	return true;
}

static int parse_options(void)
{
	const char *rw = opt_get("bench-rw"), *span = opt_get("bench-span");
	const char *wait = opt_get("bench-wait");
	int64_t qd = opt_u64("bench-qd", 1), nq = opt_u64("bench-queues", 1);
	int64_t secs = opt_u64("bench-secs", 10), bs = opt_u64("bench-bs", 4096);
	int64_t warm = opt_u64("bench-warmup-ms", 1000);
	uint64_t span_bytes = blk.capacity * BLK_SECTOR;

	if (qd < 0 || nq < 0 || secs < 0 || bs < 0 || warm < 0)
		return case_fail("%s", err_get());
	if (!rw || !strcmp(rw, "randread"))
		b.type = VIRTIO_BLK_T_IN;
	else if (!strcmp(rw, "randwrite"))
		b.type = VIRTIO_BLK_T_OUT;
	else
		return case_fail("bench-rw=%s: expected randread or randwrite", rw);
	if (wait && strcmp(wait, "poll") && strcmp(wait, "irq"))
		return case_fail("bench-wait=%s: expected poll or irq", wait);
	b.irq = wait && !strcmp(wait, "irq");
	if (qd < 1 || qd > MAX_QD)
		return case_fail("bench-qd=%ld: expected 1..%u", qd, MAX_QD);
	if (nq < 1 || nq > MAX_QUEUES || nq > blk.nqueues)
		return case_fail("bench-queues=%ld: the device has %u queues (at most %u here)", nq,
				 blk.nqueues, MAX_QUEUES);
	if (3 * qd > blk.q[0].size)
		return case_fail("bench-qd=%ld needs %ld descriptors, the queues have %u", qd,
				 3 * qd, blk.q[0].size);
	if (secs < 1)
		return case_fail("bench-secs=%ld: at least 1", secs);
	if (bs < BLK_SECTOR || bs > MAX_BS || bs % BLK_SECTOR)
		return case_fail("bench-bs=%ld: a multiple of 512 up to %u", bs, MAX_BS);
	if (span && (!parse_size(span, &span_bytes) || span_bytes > blk.capacity * BLK_SECTOR))
		return case_fail("bench-span=%s: a size (K/M/G) up to the disk's %lu bytes", span,
				 blk.capacity * BLK_SECTOR);
	if (span_bytes < (uint64_t)bs)
		return case_fail("the span (%lu bytes) is smaller than one block", span_bytes);
	if (b.type == VIRTIO_BLK_T_OUT && blk_has(&blk, VIRTIO_BLK_F_RO))
		return case_fail("bench-rw=randwrite on a read-only drive");
	b.qd = qd;
	b.nq = nq;
	b.bs = bs;
	b.span_blocks = span_bytes / bs;
	b.window_tsc = secs * tsc_hz;
	b.warmup_tsc = warm * (tsc_hz / 1000);
	return CASE_OK;
}

/* The pm-th per-mille latency (500: the median), from the histogram. */
static uint64_t percentile(const uint32_t *hist, uint64_t total, unsigned pm)
{
	uint64_t want = (total * pm + 999) / 1000, seen = 0;

	for (unsigned i = 0; i < NBUCKETS; i++) {
		seen += hist[i];
		if (seen >= want && hist[i])
			return bucket_mid(i);
	}
	return 0;
}

/* TSC ticks as "12.3" microseconds */
static void fmt_us(char *buf, size_t n, uint64_t ticks)
{
	uint64_t tenths = ticks * 10000000ULL / tsc_hz;

	snprintf(buf, n, "%lu.%lu", tenths / 10, tenths % 10);
}

static int report(void)
{
	static uint32_t hist[NBUCKETS];
	uint64_t ios = 0, sum = 0, max = 0, ticks = b.t_end - b.t_start, ms = ticks * 1000 / tsc_hz;
	char p50[24], p90[24], p99[24], p999[24], mean[24], maxs[24];

	memset(hist, 0, sizeof(hist));
	for (unsigned k = 0; k < b.nq; k++) {
		ios += bqs[k].ios;
		sum += bqs[k].lat_sum;
		max = MAX(max, bqs[k].lat_max);
		for (unsigned i = 0; i < NBUCKETS; i++)
			hist[i] += bqs[k].hist[i];
	}
	if (!ios)
		return case_fail("no I/O completed in the measured window");
	fmt_us(p50, sizeof(p50), percentile(hist, ios, 500));
	fmt_us(p90, sizeof(p90), percentile(hist, ios, 900));
	fmt_us(p99, sizeof(p99), percentile(hist, ios, 990));
	fmt_us(p999, sizeof(p999), percentile(hist, ios, 999));
	fmt_us(mean, sizeof(mean), sum / ios);
	fmt_us(maxs, sizeof(maxs), max);
	printf("BENCH iops=%lu p50_us=%s p99_us=%s ios=%lu secs=%lu.%03lu kicks=%lu irqs=%lu "
	       "mean_us=%s p90_us=%s p999_us=%s max_us=%s rw=%s wait=%s qd=%u queues=%u cpus=%u "
	       "bs=%u tsc_mhz=%lu\n",
	       ios * tsc_hz / ticks, p50, p99, ios, ms / 1000, ms % 1000,
	       b.kicks_end - b.kicks_start, b.irqs_end - b.irqs_start, mean, p90, p999, maxs,
	       b.type == VIRTIO_BLK_T_IN ? "randread" : "randwrite", b.irq ? "irq" : "poll", b.qd,
	       b.nq, b.ncpus, b.bs, tsc_hz / 1000000);
	return CASE_OK;
}

int case_bench(void)
{
	const char *wait = opt_get("bench-wait");
	struct blk_cfg cfg = { .irq = wait && !strcmp(wait, "irq") };
	uint64_t pm_hz = tsc_hz;
	int n, r;

	if ((r = blk_open(&blk, &cfg, true)) != CASE_OK)
		return r == CASE_SKIP ? case_fail("no virtio-blk device to measure") : r;
	if ((r = parse_options()) != CASE_OK)
		goto out;
	if (time_calibrate_pit(200))
		printf("  TSC %lu kHz against the PIT (%lu kHz against the PM timer)\n",
		       tsc_hz / 1000, pm_hz / 1000);
	else
		printf("  the PIT does not count: TSC %lu kHz from the PM timer\n", tsc_hz / 1000);
	parse_options();        /* the windows in TSC ticks, with the new tsc_hz */
	b.ncpus = 1;
	if (b.nq > 1) {
		n = smp_start(false);
		if (n < 0) {
			r = case_fail("starting the CPUs: %s", err_get());
			goto out;
		}
		b.ncpus = MIN((unsigned)n, b.nq);
	}
	for (unsigned k = 0; b.irq && b.ncpus > 1 && k < b.nq; k++)      /* else: all on CPU 0 */
		blk_irq_target(&blk, k, smp_apic_id(k % b.ncpus));
	memset(bqs, 0, sizeof(bqs));
	for (unsigned k = 0; k < b.nq; k++) {
		bqs[k].q = k;
		bqs[k].rng = (k + 1) * 0x9e3779b97f4a7c15ULL ^ rdtsc();
		for (unsigned i = 0; i < b.qd; i++)
			blk_fill(bufs[k][i], i, b.bs / BLK_SECTOR, k);
	}
	b.phase = WARMUP;
	b.warmup_tsc += rdtsc();
	for (unsigned c = 1; c < b.ncpus; c++)
		if (!smp_call(c, worker, NULL)) {
			b.phase = STOP;
			r = case_fail("%s", err_get());
			goto out;
		}
	worker(0, NULL);
	for (unsigned c = 1; c < b.ncpus; c++)
		if (!smp_wait(c, 10000)) {
			r = case_fail("%s", err_get());
			goto out;
		}
	for (unsigned k = 0; k < b.nq; k++)
		if (bqs[k].err[0]) {
			r = case_fail("%s", bqs[k].err);
			goto out;
		}
	r = report();
out:
	virtio_pci_reset(&blk.vp);
	virtio_pci_msix_disable(&blk.vp);
	return r;
}
