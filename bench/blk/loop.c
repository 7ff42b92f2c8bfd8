/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-blk-loop: vireo's virtio-blk data path measured without KVM.
 *
 *   vireo-blk-loop --drive SPEC [--rw randread|randwrite] [--qd N] [--bs N] [--secs N]
 *                  [--warmup-ms N] [--span SIZE] [--wait poll|irq] [--vcpu-nice N]
 *
 * The drive is built by the same code as `vireo run --drive SPEC` (vmm/drive.c: the image, its
 * iothreads, the virtio-blk function behind the virtio-pci transport), in a VM that has guest
 * RAM, an MMIO bus and a PCI bus but no KVM. One host thread per queue plays the guest driver
 * the test guest's benchmark mode is (tests/guest/cases/bench.c with bench-wait=poll): it keeps
 * --qd requests of --bs bytes in flight at random offsets, polls the used ring, resubmits what
 * completed, asks for no interrupts (VRING_AVAIL_F_NO_INTERRUPT, and with EVENT_IDX a used_event
 * it never reaches) and notifies only when VRING_USED_F_NO_NOTIFY / avail_event ask for it. A
 * notification is an MMIO write to the notify region, which the transport turns into a write to
 * the queue's eventfd (KVM's ioeventfd does that in the kernel).
 *
 * --wait irq plays bench-wait=irq instead, the way a Linux guest running fio waits: each queue
 * has its own MSI-X vector; when a look at the used ring finds nothing, the driver arms the ring
 * (used_event = the next entry), looks again, and sleeps in poll() on the vector's eventfd, the
 * one KVM would take as an irqfd. The sleep stands in for the vCPU's hlt and the wake-up for the
 * interrupt's; the guest's interrupt entry and exit are left out. Taking an entry disarms.
 *
 * --vcpu-nice N gives the driver threads, which stand for the vCPUs, that nice value, as
 * `vireo run --vcpu-nice N` does to its vCPU threads.
 *
 * What this leaves out of a real guest: VM exits (a notification's, and the guest's own page
 * faults), and the guest kernel's block layer. What it keeps: every instruction vireo runs per
 * request (virtqueue pop, request parsing, the block layer, the io_uring engine, completion,
 * used ring, notification suppression, the iothreads' polling), on the same file as fio on the
 * host. So "loop/host" bounds what vireo's own code leaves of the host's IOPS, and the run can
 * be profiled (perf record, valgrind --tool=callgrind) on a machine with no /dev/kvm.
 *
 * Output, after --warmup-ms of I/O not counted and a window of --secs seconds:
 *   BENCH iops=N p50_us=X p99_us=Y ios=N secs=S kicks=K cpu_us_per_io=C vmm_cpu_us_per_io=V
 *         wait=poll|irq irqs=I p999_us=Z max_us=M
 * cpu_us_per_io: the whole process's CPU time (utime+stime, the driver threads and io_uring's
 * workers included) per I/O, as bench/blk/run.sh counts a VMM's; vmm_cpu_us_per_io: the same
 * without the driver threads, i.e. what vireo's side spent. Latency is from a request's
 * submission to the moment its driver saw it in the used ring (TSC, calibrated against
 * CLOCK_MONOTONIC over the window), into a log-linear histogram. irqs: the wake-ups by the
 * device's signal in the window (--wait irq; 0 with poll).
 *
 * Threads: main sets up, moves the phases and reads the clocks; driver thread q owns queue q's
 * rings (the guest side) and its statistics until joined. The phase is the only shared state.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "common/affinity.h"
#include "common/error.h"
#include "common/parse.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "devices/virtqueue.h"
#include "vmm/drive.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

#define RAM_SIZE        (256ull << 20)
#define RING_BASE       0x100000ull     /* queue q's rings at RING_BASE + q * RING_STRIDE */
#define RING_STRIDE     0x10000ull
#define DATA_BASE       (16ull << 20)   /* then headers, status bytes and data buffers */
#define MAX_QUEUES      64
#define MAX_QD          256
#define MAX_BS          (1u << 20)
#define SUB_BITS        5
#define NBUCKETS        ((64 - SUB_BITS + 1) << SUB_BITS)
#define USED_EVENT_AHEAD 0x8000         /* used_event this far ahead: never reached */
#define DESC_PER_REQ    3               /* header, data, status: as the test guest's driver */

enum phase { WARMUP, MEASURE, STOP };

struct lq {
	unsigned int index;
	pthread_t thread;
	uint16_t size;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t *used_event;           /* avail->ring[size] */
	volatile uint16_t *avail_event; /* used->ring[size] */
	uint16_t avail_idx, last_used;
	uint64_t notify_addr;
	int irq_fd;                     /* --wait irq: the queue vector's eventfd */
	struct vlbuf {
		uint64_t hdr_gpa, data_gpa, status_gpa;
		uint8_t *hdr, *status;
		uint64_t t_submit;
	} req[MAX_QD];
	uint64_t rng;
	uint64_t ios, kicks, irqs;
	uint32_t hist[NBUCKETS];
	uint64_t max_lat;        /* the longest request of the window, in TSC ticks */
	clockid_t cpu_clock;
	char err[160];
};

static struct {
	struct vm vm;
	struct pci_bus pci;
	uint64_t common;        /* guest address of the common configuration */
	uint64_t device_cfg;    /* ... and of virtio-blk's configuration (capacity first) */
	bool event_idx;
	bool irq;               /* --wait irq */
	bool vcpu_nice_set;     /* --vcpu-nice: the drivers' nice value, as vireo's vCPUs' */
	int vcpu_nice;
	struct vpci_dev *vpci;
	uint32_t type;
	unsigned int qd, bs, nq;
	uint64_t span_blocks;
	_Atomic int phase;
	struct lq q[MAX_QUEUES];
} L;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("vireo-blk-loop: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void mmio_w(uint64_t addr, uint64_t v, unsigned int len)
{
	if (!bus_write(&L.vm.mmio, addr, &v, len))
		die("no device at 0x%" PRIx64, addr);
}

static uint64_t mmio_r(uint64_t addr, unsigned int len)
{
	uint64_t v = 0;

	if (!bus_read(&L.vm.mmio, addr, &v, len))
		die("no device at 0x%" PRIx64, addr);
	return v;
}

static void *gpa(uint64_t addr, uint64_t len)
{
	void *p = gmem_ptr(&L.vm.mem, addr, len);

	if (!p)
		die("guest address 0x%" PRIx64 "+%" PRIu64 " outside RAM (--qd or --bs too large)",
		    addr, len);
	return p;
}

/* Finds the virtio-blk function and its common and notify regions, as a guest driver does. */
static void find_device(uint64_t *notify, uint32_t *notify_mult)
{
	for (unsigned int slot = 0; slot < 32; slot++) {
		uint32_t id = pci_cfg_read(&L.pci, slot, 0, 0, 4);
		uint32_t cap;

		if (id != (VIRTIO_PCI_VENDOR | (uint32_t)(VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_BLOCK) << 16))
			continue;
		*notify = 0;
		L.common = L.device_cfg = 0;
		for (cap = pci_cfg_read(&L.pci, slot, 0, PCI_CAPABILITY_LIST, 1) & 0xfc; cap;
		     cap = pci_cfg_read(&L.pci, slot, 0, cap + 1, 1) & 0xfc) {
			uint8_t type = (uint8_t)pci_cfg_read(&L.pci, slot, 0, cap + 3, 1);
			unsigned int bar = pci_cfg_read(&L.pci, slot, 0, cap + 4, 1);
			uint64_t base, off = pci_cfg_read(&L.pci, slot, 0, cap + 8, 4);
			uint32_t lo;

			if (pci_cfg_read(&L.pci, slot, 0, cap, 1) != PCI_CAP_ID_VNDR || bar > 5)
				continue;
			lo = pci_cfg_read(&L.pci, slot, 0, PCI_BASE_ADDRESS_0 + 4 * bar, 4);
			base = lo & ~0xfull;
			if (lo & PCI_BAR_MEM_TYPE_64)
				base |= (uint64_t)pci_cfg_read(&L.pci, slot, 0,
							       PCI_BASE_ADDRESS_0 + 4 * (bar + 1), 4) << 32;
			if (type == VIRTIO_PCI_CAP_COMMON_CFG) {
				L.common = base + off;
			} else if (type == VIRTIO_PCI_CAP_DEVICE_CFG) {
				L.device_cfg = base + off;
			} else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
				*notify = base + off;
				*notify_mult = pci_cfg_read(&L.pci, slot, 0, cap + 16, 4);
			}
		}
		if (!L.common || !*notify || !L.device_cfg)
			die("the virtio-blk function lacks a common, notify or device capability");
		L.vpci = L.pci.slots[slot]->opaque; /* for the vectors' eventfds (--wait irq) */
		return;
	}
	die("no virtio-blk function on the PCI bus");
}

/* Device initialisation as a driver does it (virtio 1.2 section 3.1.1). */
static void driver_init(void)
{
	uint64_t notify, feat, want;
	uint32_t mult = 0;
	uint64_t c;
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	uint64_t buf = DATA_BASE;

	find_device(&notify, &mult);
	c = L.common;
	mmio_w(c + VIRTIO_PCI_COMMON_STATUS, 0, 1);
	mmio_w(c + VIRTIO_PCI_COMMON_STATUS, st, 1);
	mmio_w(c + VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	feat = mmio_r(c + VIRTIO_PCI_COMMON_DF, 4);
	mmio_w(c + VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	feat |= mmio_r(c + VIRTIO_PCI_COMMON_DF, 4) << 32;
	want = feat & ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_MQ) |
		       (1ull << VIRTIO_F_EVENT_IDX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
		       (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_FLUSH));
	if (!(want & (1ull << VIRTIO_F_VERSION_1)))
		die("the device does not offer VIRTIO_F_VERSION_1");
	L.event_idx = want & (1ull << VIRTIO_F_EVENT_IDX);
	mmio_w(c + VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	mmio_w(c + VIRTIO_PCI_COMMON_GF, (uint32_t)want, 4);
	mmio_w(c + VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	mmio_w(c + VIRTIO_PCI_COMMON_GF, (uint32_t)(want >> 32), 4);
	st |= VIRTIO_STATUS_FEATURES_OK;
	mmio_w(c + VIRTIO_PCI_COMMON_STATUS, st, 1);
	if (!(mmio_r(c + VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK))
		die("the device refused the features");
	L.nq = (unsigned int)mmio_r(c + VIRTIO_PCI_COMMON_NUMQ, 2);
	if (L.nq == 0 || L.nq > MAX_QUEUES)
		die("%u queues: this harness drives 1 to %u", L.nq, MAX_QUEUES);
	for (unsigned int i = 0; i < L.nq; i++) {
		struct lq *q = &L.q[i];
		uint64_t base = RING_BASE + RING_STRIDE * i;

		q->index = i;
		mmio_w(c + VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
		q->size = (uint16_t)mmio_r(c + VIRTIO_PCI_COMMON_Q_SIZE, 2);
		if (q->size * 16ull + virtq_avail_bytes(q->size) + virtq_used_bytes(q->size) + 8192 >
		    RING_STRIDE)
			die("queue %u: size %u too large for this harness", i, q->size);
		if (L.qd * DESC_PER_REQ > q->size)
			die("--qd %u needs %u descriptors; queue %u has %u (queue-size=)", L.qd,
			    L.qd * DESC_PER_REQ, i, q->size);
		q->desc = gpa(base, 16ull * q->size);
		q->avail = gpa(base + 0x4000, virtq_avail_bytes(q->size));
		q->used = gpa(base + 0x8000, virtq_used_bytes(q->size));
		memset(q->desc, 0, 16ull * q->size);
		memset(q->avail, 0, virtq_avail_bytes(q->size));
		memset(q->used, 0, virtq_used_bytes(q->size));
		q->used_event = &q->avail->ring[q->size];
		q->avail_event = (volatile uint16_t *)&q->used->ring[q->size];
		q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
		*q->used_event = USED_EVENT_AHEAD;
		mmio_w(c + VIRTIO_PCI_COMMON_Q_DESCLO, base, 4);
		mmio_w(c + VIRTIO_PCI_COMMON_Q_DESCHI, 0, 4);
		mmio_w(c + VIRTIO_PCI_COMMON_Q_AVAILLO, base + 0x4000, 4);
		mmio_w(c + VIRTIO_PCI_COMMON_Q_AVAILHI, 0, 4);
		mmio_w(c + VIRTIO_PCI_COMMON_Q_USEDLO, base + 0x8000, 4);
		mmio_w(c + VIRTIO_PCI_COMMON_Q_USEDHI, 0, 4);
		q->notify_addr = notify + (uint64_t)mult * mmio_r(c + VIRTIO_PCI_COMMON_Q_NOFF, 2);
		q->irq_fd = -1;
		if (L.irq) { /* vector 0 is the configuration's, as Linux has it */
			mmio_w(c + VIRTIO_PCI_COMMON_Q_MSIX, i + 1, 2);
			if (mmio_r(c + VIRTIO_PCI_COMMON_Q_MSIX, 2) != i + 1)
				die("queue %u: the device refused MSI-X vector %u", i, i + 1);
			q->irq_fd = vpci_vector_eventfd(L.vpci, (uint16_t)(i + 1));
		}
		mmio_w(c + VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
		/* every request's descriptors and buffers are fixed: slot k uses 3k, 3k+1, 3k+2 */
		for (unsigned int k = 0; k < L.qd; k++) {
			struct vlbuf *r = &q->req[k];
			uint16_t d = (uint16_t)(k * DESC_PER_REQ);

			r->data_gpa = buf = (buf + 4095) & ~4095ull;
			buf += L.bs;
			r->hdr_gpa = buf;
			r->status_gpa = buf + 16;
			buf += 64;
			r->hdr = gpa(r->hdr_gpa, 16);
			r->status = gpa(r->status_gpa, 1);
			gpa(r->data_gpa, L.bs);
			q->desc[d] = (struct virtq_desc){ r->hdr_gpa, 16, VIRTQ_DESC_F_NEXT,
							  (uint16_t)(d + 1) };
			q->desc[d + 1] = (struct virtq_desc){
				r->data_gpa, L.bs,
				(uint16_t)(VIRTQ_DESC_F_NEXT |
					   (L.type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0)),
				(uint16_t)(d + 2) };
			q->desc[d + 2] = (struct virtq_desc){ r->status_gpa, 1, VIRTQ_DESC_F_WRITE, 0 };
		}
		q->rng = 0x9e3779b97f4a7c15ull * (i + 1);
	}
	mmio_w(c + VIRTIO_PCI_COMMON_STATUS, st | VIRTIO_STATUS_DRIVER_OK, 1);
	if (mmio_r(c + VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET)
		die("the device needs a reset right after DRIVER_OK");
}

static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Puts request slot @k on the avail ring (not yet published). */
static void submit(struct lq *q, unsigned int k)
{
	struct vlbuf *r = &q->req[k];
	uint64_t sector = next_rand(&q->rng) % L.span_blocks * (L.bs / VBLK_SECTOR);

	memcpy(r->hdr, &L.type, 4);
	memset(r->hdr + 4, 0, 4);
	memcpy(r->hdr + 8, &sector, 8);
	*r->status = 0xff;
	q->avail->ring[q->avail_idx % q->size] = (uint16_t)(k * DESC_PER_REQ);
	q->avail_idx++;
	r->t_submit = __rdtsc();
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/* Publishes the avail index and notifies if the device asked for it. */
static void publish(struct lq *q, uint16_t old)
{
	bool kick;

	__atomic_store_n(&q->avail->idx, q->avail_idx, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* the index before reading the device's flag */
	if (L.event_idx)
		kick = need_event(*q->avail_event, q->avail_idx, old);
	else
		kick = !(__atomic_load_n(&q->used->flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY);
	if (kick) {
		mmio_w(q->notify_addr, q->index, 2);
		q->kicks += atomic_load_explicit(&L.phase, memory_order_relaxed) == MEASURE;
	}
}

static unsigned int bucket(uint64_t x)
{
	unsigned int msb;

	if (x < (1u << SUB_BITS))
		return (unsigned int)x;
	msb = 63 - (unsigned int)__builtin_clzll(x);
	return ((msb - SUB_BITS + 1) << SUB_BITS) | ((x >> (msb - SUB_BITS)) & ((1u << SUB_BITS) - 1));
}

static uint64_t bucket_mid(unsigned int i)
{
	unsigned int hi = i >> SUB_BITS, lo = i & ((1u << SUB_BITS) - 1);

	if (hi == 0)
		return i;
	return ((uint64_t)((1u << SUB_BITS) | lo) << (hi - 1)) + (1ull << (hi - 1)) / 2;
}

/* Takes the used ring's new entries; resubmits them unless stopping. Returns the count or -1. */
static int reap(struct lq *q, bool resubmit)
{
	uint16_t end = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE), old = q->avail_idx;
	bool measure = atomic_load_explicit(&L.phase, memory_order_relaxed) == MEASURE;
	int n = 0;

	for (; q->last_used != end; q->last_used++, n++) {
		struct virtq_used_elem e = q->used->ring[q->last_used % q->size];
		unsigned int k = e.id / DESC_PER_REQ;
		uint64_t now = __rdtsc();

		if (e.id % DESC_PER_REQ || k >= L.qd) {
			snprintf(q->err, sizeof(q->err), "queue %u: used id %u was never submitted",
				 q->index, e.id);
			return -1;
		}
		if (*q->req[k].status != VIRTIO_BLK_S_OK) {
			snprintf(q->err, sizeof(q->err), "queue %u: status %u", q->index,
				 *q->req[k].status);
			return -1;
		}
		if (measure) {
			uint64_t lat = now - q->req[k].t_submit;

			q->ios++;
			q->hist[bucket(lat)]++;
			if (lat > q->max_lat)
				q->max_lat = lat;
		}
		if (resubmit)
			submit(q, k);
	}
	if (n) {
		*q->used_event = (uint16_t)(q->last_used + USED_EVENT_AHEAD);
		if (resubmit)
			publish(q, old);
	}
	return n;
}

/*
 * --wait irq, after a look found nothing: arm the ring, look again, and sleep until the device
 * signals the vector (or 100 ms pass, so that the end of the run is seen).
 */
static void wait_irq(struct lq *q)
{
	struct pollfd p = { .fd = q->irq_fd, .events = POLLIN };
	uint64_t cnt;

	if (L.event_idx)
		__atomic_store_n(q->used_event, q->last_used, __ATOMIC_RELAXED);
	else
		q->avail->flags = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* arming before the second look */
	if (__atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE) == q->last_used &&
	    poll(&p, 1, 100) == 1 && read(q->irq_fd, &cnt, sizeof(cnt)) == sizeof(cnt))
		q->irqs += atomic_load_explicit(&L.phase, memory_order_relaxed) == MEASURE;
	if (!L.event_idx)
		q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	/* with EVENT_IDX, reap() moves used_event out of reach again when it takes an entry */
}

static void *driver(void *arg)
{
	struct lq *q = arg;
	unsigned int inflight = L.qd;
	struct timespec deadline, now;

	pthread_getcpuclockid(pthread_self(), &q->cpu_clock);
	if (L.vcpu_nice_set) {
		struct error *err = NULL;
		char who[32];

		snprintf(who, sizeof(who), "driver of queue %u", q->index);
		if (thread_set_own_nice(L.vcpu_nice, who, &err) < 0)
			die("%s", error_msg(err));
	}
	for (unsigned int k = 0; k < L.qd; k++)
		submit(q, k);
	publish(q, 0);
	while (atomic_load_explicit(&L.phase, memory_order_relaxed) != STOP) {
		int n = reap(q, true);

		if (n < 0)
			goto fail;
		if (!n && L.irq)
			wait_irq(q);
		else
			_mm_pause();
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 5;
	while (inflight) {
		int n = reap(q, false);

		if (n < 0)
			goto fail;
		inflight -= (unsigned int)n;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec ||
		    (now.tv_sec == deadline.tv_sec && now.tv_nsec > deadline.tv_nsec)) {
			snprintf(q->err, sizeof(q->err), "queue %u: %u requests not completed 5 s "
				 "after the end", q->index, inflight);
			goto fail;
		}
		if (!n)
			sched_yield();
	}
	return NULL;
fail:
	atomic_store(&L.phase, STOP);
	return NULL;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t process_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t drivers_cpu_ns(void)
{
	uint64_t sum = 0;

	for (unsigned int i = 0; i < L.nq; i++) {
		struct timespec ts;

		if (clock_gettime(L.q[i].cpu_clock, &ts) == 0)
			sum += (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	return sum;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The latency at quantile @p of the merged histograms, in µs. */
static double quantile_us(const uint32_t *hist, uint64_t total, double p, double tsc_per_us)
{
	uint64_t want = (uint64_t)(p * (double)total), seen = 0;

	for (unsigned int i = 0; i < NBUCKETS; i++) {
		seen += hist[i];
		if (seen > want)
			return (double)bucket_mid(i) / tsc_per_us;
	}
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: vireo-blk-loop --drive SPEC [--rw randread|randwrite] [--qd N] [--bs N]\n"
	      "                      [--secs N] [--warmup-ms N] [--span SIZE] [--wait poll|irq]\n"
	      "                      [--vcpu-nice N]\n"
	      "Drives vireo's virtio-blk device with host threads in place of a guest (no KVM)\n"
	      "and prints a BENCH line; see bench/blk/loop.c.\n", f);
}

/* A number option: parse_u64's checks and message, or exit. */
static uint64_t num_opt(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
	struct error *err = NULL;
	uint64_t v;

	if (parse_u64(opt, s, lo, hi, &v, &err) < 0)
		die("%s", error_msg(err));
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "drive", required_argument, NULL, 'd' }, { "rw", required_argument, NULL, 'r' },
		{ "qd", required_argument, NULL, 'q' },    { "bs", required_argument, NULL, 'b' },
		{ "secs", required_argument, NULL, 's' },  { "warmup-ms", required_argument, NULL, 'w' },
		{ "span", required_argument, NULL, 'S' },  { "wait", required_argument, NULL, 'W' },
		{ "vcpu-nice", required_argument, NULL, 'n' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *spec = NULL;
	uint64_t secs = 10, warmup_ms = 1000;
	uint64_t span = 0, capacity;
	struct error *err = NULL;
	uint64_t t0, t1, tsc0, tsc1, cpu0, cpu1, drv0, drv1, ios = 0, kicks = 0, irqs = 0;
	static uint32_t hist[NBUCKETS];
	uint64_t max_lat = 0;
	double tsc_per_us;
	int c, rc = 0;

	L.type = VIRTIO_BLK_T_IN;
	L.qd = 1;
	L.bs = 4096;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			spec = optarg;
			break;
		case 'r':
			if (!strcmp(optarg, "randread"))
				L.type = VIRTIO_BLK_T_IN;
			else if (!strcmp(optarg, "randwrite"))
				L.type = VIRTIO_BLK_T_OUT;
			else
				die("--rw %s: expected randread or randwrite", optarg);
			break;
		case 'q':
			L.qd = (unsigned int)num_opt("--qd", optarg, 1, MAX_QD);
			break;
		case 'b':
			L.bs = (unsigned int)num_opt("--bs", optarg, VBLK_SECTOR, MAX_BS);
			if (L.bs % VBLK_SECTOR)
				die("--bs %s: not a multiple of %u", optarg, VBLK_SECTOR);
			break;
		case 's':
			secs = num_opt("--secs", optarg, 1, 3600);
			break;
		case 'w':
			warmup_ms = num_opt("--warmup-ms", optarg, 0, 600000);
			break;
		case 'S':
			if (parse_size("--span", optarg, &span, &err) < 0)
				die("%s", error_msg(err));
			break;
		case 'W':
			if (strcmp(optarg, "poll") && strcmp(optarg, "irq"))
				die("--wait %s: expected poll or irq", optarg);
			L.irq = !strcmp(optarg, "irq");
			break;
		case 'n':
			if (parse_int("--vcpu-nice", optarg, -20, 19, &L.vcpu_nice, &err) < 0)
				die("%s", error_msg(err));
			L.vcpu_nice_set = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!spec || optind != argc) {
		usage(stderr);
		return 2;
	}

	if (gmem_init(&L.vm.mem, RAM_SIZE, false) < 0)
		die("cannot allocate %llu MiB of guest RAM", RAM_SIZE >> 20);
	L.vm.kvm_fd = L.vm.vm_fd = -1; /* no KVM: the transport forwards notifications itself */
	L.vm.stop_efd = -1;
	pthread_mutex_init(&L.vm.irq_lock, NULL);
	pthread_mutex_init(&L.vm.stop_lock, NULL);
	pthread_cond_init(&L.vm.stop_cond, NULL);
	bus_init(&L.vm.mmio, "mmio");
	bus_init(&L.vm.pio, "pio");
	if (pci_bus_init(&L.pci, &L.vm.mmio, &L.vm.pio, &layout_pci_bus, &err) < 0 ||
	    drive_add(&L.vm, &L.pci, spec, &err) < 0)
		die("%s", error_msg(err));
	driver_init();
	capacity = mmio_r(L.device_cfg, 4) | mmio_r(L.device_cfg + 4, 4) << 32;
	capacity *= VBLK_SECTOR;
	if (!span || span > capacity)
		span = capacity;
	L.span_blocks = span / L.bs;
	if (!L.span_blocks)
		die("the disk (%" PRIu64 " bytes) is smaller than one --bs block", capacity);

	for (unsigned int i = 0; i < L.nq; i++)
		if ((errno = pthread_create(&L.q[i].thread, NULL, driver, &L.q[i])))
			die("pthread_create: %s", strerror(errno));
	sleep_ns(warmup_ms * 1000000ull);
	cpu0 = process_cpu_ns();
	drv0 = drivers_cpu_ns();
	tsc0 = __rdtsc();
	t0 = mono_ns();
	atomic_store(&L.phase, MEASURE);
	for (uint64_t left = secs * 1000000000ull; left && atomic_load(&L.phase) == MEASURE;) {
		uint64_t step = left < 100000000ull ? left : 100000000ull;

		sleep_ns(step);
		left -= step;
	}
	atomic_store(&L.phase, STOP);
	t1 = mono_ns();
	tsc1 = __rdtsc();
	cpu1 = process_cpu_ns();
	drv1 = drivers_cpu_ns();
	for (unsigned int i = 0; i < L.nq; i++) {
		pthread_join(L.q[i].thread, NULL);
		if (L.q[i].err[0]) {
			fprintf(stderr, "vireo-blk-loop: %s\n", L.q[i].err);
			rc = 1;
		}
		ios += L.q[i].ios;
		kicks += L.q[i].kicks;
		irqs += L.q[i].irqs;
		for (unsigned int b = 0; b < NBUCKETS; b++)
			hist[b] += L.q[i].hist[b];
		if (L.q[i].max_lat > max_lat)
			max_lat = L.q[i].max_lat;
	}
	if (mmio_r(L.common + VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET) {
		fprintf(stderr, "vireo-blk-loop: the device set DEVICE_NEEDS_RESET\n");
		rc = 1;
	}
	mmio_w(L.common + VIRTIO_PCI_COMMON_STATUS, 0, 1); /* reset: the queues stop */
	if (!rc && ios) {
		double s = (double)(t1 - t0) / 1e9;

		tsc_per_us = (double)(tsc1 - tsc0) / ((double)(t1 - t0) / 1e3);
		printf("BENCH iops=%.0f p50_us=%.1f p99_us=%.1f ios=%" PRIu64 " secs=%.2f kicks=%" PRIu64
		       " cpu_us_per_io=%.2f vmm_cpu_us_per_io=%.2f wait=%s irqs=%" PRIu64
		       " p999_us=%.1f max_us=%.1f\n",
		       (double)ios / s, quantile_us(hist, ios, 0.50, tsc_per_us),
		       quantile_us(hist, ios, 0.99, tsc_per_us), ios, s, kicks,
		       (double)(cpu1 - cpu0) / 1e3 / (double)ios,
		       (double)((cpu1 - cpu0) - (drv1 - drv0)) / 1e3 / (double)ios,
		       L.irq ? "irq" : "poll", irqs, quantile_us(hist, ios, 0.999, tsc_per_us),
		       (double)max_lat / tsc_per_us);
	} else if (!rc) {
		fprintf(stderr, "vireo-blk-loop: no I/O completed in the window\n");
		rc = 1;
	}
	drive_cleanup();
	pci_bus_destroy(&L.pci);
	bus_destroy(&L.vm.mmio);
	bus_destroy(&L.vm.pio);
	gmem_destroy(&L.vm.mem);
	return rc;
}
