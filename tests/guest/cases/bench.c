/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench: random-I/O benchmark of a virtio-blk device or a virtio-scsi LUN from CPL3 (not in
 * "all"). One loop drives either: bench-dev=blk|scsi picks the hooks (struct bench_dev) that
 * submit, reap, kick and arm; a virtio-scsi request is a READ/WRITE(10) (16 past 2^32 blocks) of
 * LUN bench-lun on target scsi-target, and a completion counts only with response OK, status GOOD
 * and no residual.
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
 * Options: bench-dev=blk|scsi (blk), bench-rw=randread|randwrite (randread), bench-wait=poll|irq
 * (poll), bench-qd=N (1; at most 32), bench-queues=N (1), bench-secs=N (10), bench-bs=N (4096; a
 * multiple of 512 and of the LUN's block size, at most 64 KiB), bench-span=SIZE (the whole disk;
 * K/M/G suffixes), bench-warmup-ms=N (1000), bench-lun=N (0; scsi), and blk-index / blk-features
 * (blk) or scsi-index / scsi-target (scsi).
 * randwrite overwrites the disk.
 */
#include "cases/blk_util.h"
#include "cases/scsi_util.h"
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

/*
 * The device under test, as the loop sees it: request slot i of queue q is always
 * bufs[q][i]; submit does not notify, poll takes one completion (1 and its slot, 0 none, -1
 * with err_set on a bad entry or a failed request), arm and irq_target are blk_arm()'s and
 * blk_irq_target()'s. open sets up the device (irq: MSI-X) and fills in the geometry.
 */
struct bench_dev {
	const char *name;
	int (*open)(bool irq);                          /* a case result */
	int (*submit)(unsigned q, unsigned i, uint64_t block);
	int (*poll)(unsigned q, unsigned *i);
	void (*kick)(unsigned q);
	bool (*arm)(unsigned q);
	void (*irq_target)(unsigned q, uint32_t apic_id);
	uint64_t (*kicks)(void);
	void (*close)(void);
};

/* What open() found */
static struct {
	uint64_t bytes;                 /* capacity */
	unsigned nqueues, qsize;        /* request queues and their size */
	unsigned lbs;                   /* logical block size */
	bool ro;
} geo;

struct bq {
	unsigned q;
	uint64_t t_submit[MAX_QD];
	uint64_t rng;
	uint64_t ios;
	uint64_t lat_sum, lat_max;      /* TSC ticks */
	uint32_t hist[NBUCKETS];
	char err[120];
};

static struct bq bqs[MAX_QUEUES];
static uint8_t bufs[MAX_QUEUES][MAX_QD][MAX_BS] __attribute__((aligned(4096)));

static struct {
	const struct bench_dev *dev;
	bool write;                     /* bench-rw=randwrite */
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

/* ---- virtio-blk */

static struct blk blk;
static struct blk_req blk_reqs[MAX_QUEUES][MAX_QD];

static int blkd_open(bool irq)
{
	struct blk_cfg cfg = { .irq = irq };
	int r = blk_open(&blk, &cfg, true);

	if (r != CASE_OK)
		return r == CASE_SKIP ? case_fail("no virtio-blk device to measure") : r;
	geo.bytes = blk.capacity * BLK_SECTOR;
	geo.nqueues = blk.nqueues;
	geo.qsize = blk.q[0].size;
	geo.lbs = BLK_SECTOR;
	geo.ro = blk_has(&blk, VIRTIO_BLK_F_RO);
	return CASE_OK;
}

static int blkd_submit(unsigned q, unsigned i, uint64_t block)
{
	struct vring_buf seg = { bufs[q][i], b.bs, false };

	return blk_submit(&blk, q, &blk_reqs[q][i], b.write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
			  block * (b.bs / BLK_SECTOR), &seg, 1);
}

static int blkd_poll(unsigned q, unsigned *i)
{
	struct blk_req *req;
	int r = blk_poll(&blk, q, &req);

	if (r <= 0)
		return r;
	*i = req - blk_reqs[q];
	if (req->status != VIRTIO_BLK_S_OK) {
		err_set("status %u", req->status);
		return -1;
	}
	return 1;
}

static void blkd_kick(unsigned q) { blk_kick(&blk, q); }
static bool blkd_arm(unsigned q) { return blk_arm(&blk, q); }
static void blkd_irq_target(unsigned q, uint32_t apic) { blk_irq_target(&blk, q, apic); }
static uint64_t blkd_kicks(void) { return blk_kicks(&blk); }

static void blkd_close(void)
{
	virtio_pci_reset(&blk.vp);
	virtio_pci_msix_disable(&blk.vp);
}

static const struct bench_dev blk_dev = {
	"blk", blkd_open, blkd_submit, blkd_poll, blkd_kick, blkd_arm, blkd_irq_target,
	blkd_kicks, blkd_close,
};

/* ---- virtio-scsi: LUN bench-lun of target scsi-target */

static struct scsi scsi;
static struct scsi_env scsi_env;
static struct scsi_req scsi_reqs[MAX_QUEUES][MAX_QD];
static unsigned scsi_lun;

/* READ CAPACITY(16) into geo, after the LUN's power-on unit attention is taken. */
static int scsid_capacity(void)
{
	static uint8_t cap[32] __attribute__((aligned(64)));
	static struct scsi_req r;
	char why[200];
	uint16_t ua;
	uint8_t cdb[16];

	if (!scsi_clear_ua(&scsi, 0, scsi_env.target, scsi_lun, &ua, why, sizeof(why)))
		return case_fail("LUN %u: %s", scsi_lun, why);
	if (scsi_cmd(&scsi, 0, &r, scsi_env.target, scsi_lun, cdb, cdb_read_capacity16(cdb, 32),
		     cap, sizeof(cap), true) < 0)
		return case_fail("READ CAPACITY(16): %s", err_get());
	if (!scsi_good(&r, "READ CAPACITY(16)", why, sizeof(why)))
		return case_fail("LUN %u: %s", scsi_lun, why);
	geo.lbs = be32(cap + 8);
	if (geo.lbs < 512 || geo.lbs > MAX_BS || geo.lbs & (geo.lbs - 1))
		return case_fail("LUN %u: logical block size %u", scsi_lun, geo.lbs);
	geo.bytes = (be64(cap) + 1) * geo.lbs;
	return CASE_OK;
}

static int scsid_open(bool irq)
{
	struct scsi_cfg cfg = { .irq = irq };
	int64_t lun = opt_u64("bench-lun", 0);
	int r;

	if (lun < 0 || lun > 16383)
		return case_fail("bench-lun: %s", lun < 0 ? err_get() : "above 16383");
	scsi_lun = lun;
	if ((r = scsi_open(&scsi, &scsi_env, &cfg, true)) != CASE_OK)
		return r == CASE_SKIP ? case_fail("no virtio-scsi controller to measure") : r;
	geo.nqueues = scsi.nreq;
	geo.qsize = scsi.q[SCSI_VQ_REQ0].size;
	geo.ro = false;         /* a write to a read-only LUN fails with DATA PROTECT */
	return scsid_capacity();
}

static int scsid_submit(unsigned q, unsigned i, uint64_t block)
{
	struct vring_buf seg = { bufs[q][i], b.bs, !b.write };
	uint64_t lba = block * (b.bs / geo.lbs);
	uint32_t n = b.bs / geo.lbs;
	uint8_t cdb[16], op10 = b.write ? OP_WRITE_10 : OP_READ_10;
	unsigned len = lba + n <= UINT32_MAX ? cdb_rw10(cdb, op10, lba, n, 0) :
		       cdb_rw16(cdb, b.write ? OP_WRITE_16 : OP_READ_16, lba, n, 0);

	return scsi_submit(&scsi, q, &scsi_reqs[q][i], scsi_env.target, scsi_lun, cdb, len, &seg, 1);
}

static int scsid_poll(unsigned q, unsigned *i)
{
	struct scsi_req *req;
	char why[200];
	int r = scsi_poll(&scsi, q, &req);

	if (r <= 0)
		return r;
	*i = req - scsi_reqs[q];
	if (!scsi_good(req, b.write ? "WRITE" : "READ", why, sizeof(why))) {
		err_set("%s", why);
		return -1;
	}
	if (req->resp.residual) {
		err_set("%s: residual %u", b.write ? "WRITE" : "READ", req->resp.residual);
		return -1;
	}
	return 1;
}

static void scsid_kick(unsigned q) { scsi_kick(&scsi, q); }
static bool scsid_arm(unsigned q) { return scsi_arm(&scsi, q); }
static void scsid_irq_target(unsigned q, uint32_t apic) { scsi_irq_target(&scsi, q, apic); }

static uint64_t scsid_kicks(void)
{
	uint64_t n = 0;

	for (unsigned q = 0; q < scsi.nreq; q++)
		n += scsi.q[SCSI_VQ_REQ0 + q].kicks;
	return n;
}

static void scsid_close(void)
{
	virtio_pci_reset(&scsi.vp);
	virtio_pci_msix_disable(&scsi.vp);
}

static const struct bench_dev scsi_dev = {
	"scsi", scsid_open, scsid_submit, scsid_poll, scsid_kick, scsid_arm, scsid_irq_target,
	scsid_kicks, scsid_close,
};

/* ---- the loop */

static bool submit(struct bq *q, unsigned i)
{
	uint64_t block = next_rand(&q->rng) % b.span_blocks;

	q->t_submit[i] = rdtsc();
	if (b.dev->submit(q->q, i, block) < 0) {
		snprintf(q->err, sizeof(q->err), "queue %u: %s", q->q, err_get());
		return false;
	}
	return true;
}

/* Takes every completion of queue q, resubmits while running; returns completions or -1. */
static int reap(struct bq *q, bool resubmit)
{
	unsigned i;
	int n = 0, r;

	while ((r = b.dev->poll(q->q, &i)) > 0) {
		uint64_t now = rdtsc();

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
		b.dev->kick(q->q);
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
		if (b.dev->arm(bqs[k].q))
			return;
	cpu_wait_unchanged(&cpus[cpu].dev_irqs, seen);
}

/* The boot CPU moves the phases: warm-up, START, the window, END. */
static void drive_phase(void)
{
	uint64_t now = rdtsc();

	if (b.phase == WARMUP && now >= b.warmup_tsc) {
		printf("BENCH START rw=%s qd=%u queues=%u bs=%u dev=%s\n",
		       b.write ? "randwrite" : "randread", b.qd, b.nq, b.bs, b.dev->name);
		b.kicks_start = b.dev->kicks();
		b.irqs_start = dev_irqs();
		b.t_start = rdtsc();
		b.phase = MEASURE;
	} else if (b.phase == MEASURE && now - b.t_start >= b.window_tsc) {
		b.t_end = now;
		b.phase = STOP;
		b.kicks_end = b.dev->kicks();
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
		b.dev->kick(bqs[k].q);
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
	uint64_t span_bytes = geo.bytes;

	if (qd < 0 || nq < 0 || secs < 0 || bs < 0 || warm < 0)
		return case_fail("%s", err_get());
	if (!rw || !strcmp(rw, "randread"))
		b.write = false;
	else if (!strcmp(rw, "randwrite"))
		b.write = true;
	else
		return case_fail("bench-rw=%s: expected randread or randwrite", rw);
	if (wait && strcmp(wait, "poll") && strcmp(wait, "irq"))
		return case_fail("bench-wait=%s: expected poll or irq", wait);
	b.irq = wait && !strcmp(wait, "irq");
	if (qd < 1 || qd > MAX_QD)
		return case_fail("bench-qd=%ld: expected 1..%u", qd, MAX_QD);
	if (nq < 1 || nq > MAX_QUEUES || nq > geo.nqueues)
		return case_fail("bench-queues=%ld: the device has %u queues (at most %u here)", nq,
				 geo.nqueues, MAX_QUEUES);
	if (3 * qd > geo.qsize)         /* both devices: header, data, status */
		return case_fail("bench-qd=%ld needs %ld descriptors, the queues have %u", qd,
				 3 * qd, geo.qsize);
	if (secs < 1)
		return case_fail("bench-secs=%ld: at least 1", secs);
	if (bs < BLK_SECTOR || bs > MAX_BS || bs % BLK_SECTOR || bs % geo.lbs)
		return case_fail("bench-bs=%ld: a multiple of 512 and of the block size %u up to %u",
				 bs, geo.lbs, MAX_BS);
	if (span && (!parse_size(span, &span_bytes) || span_bytes > geo.bytes))
		return case_fail("bench-span=%s: a size (K/M/G) up to the disk's %lu bytes", span,
				 geo.bytes);
	if (span_bytes < (uint64_t)bs)
		return case_fail("the span (%lu bytes) is smaller than one block", span_bytes);
	if (b.write && geo.ro)
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
	       "bs=%u tsc_mhz=%lu dev=%s\n",
	       ios * tsc_hz / ticks, p50, p99, ios, ms / 1000, ms % 1000,
	       b.kicks_end - b.kicks_start, b.irqs_end - b.irqs_start, mean, p90, p999, maxs,
	       b.write ? "randwrite" : "randread", b.irq ? "irq" : "poll", b.qd,
	       b.nq, b.ncpus, b.bs, tsc_hz / 1000000, b.dev->name);
	return CASE_OK;
}

int case_bench(void)
{
	static const struct bench_dev *const devs[] = { &blk_dev, &scsi_dev };
	const char *wait = opt_get("bench-wait"), *dev = opt_get("bench-dev");
	uint64_t pm_hz = tsc_hz;
	int n, r;

	b.dev = NULL;
	for (unsigned i = 0; i < ARRAY_SIZE(devs); i++)
		if (!strcmp(dev ? dev : "blk", devs[i]->name))
			b.dev = devs[i];
	if (!b.dev)
		return case_fail("bench-dev=%s: expected blk or scsi", dev);
	if ((r = b.dev->open(wait && !strcmp(wait, "irq"))) != CASE_OK)
		return r;
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
		b.dev->irq_target(k, smp_apic_id(k % b.ncpus));
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
	b.dev->close();
	return r;
}
