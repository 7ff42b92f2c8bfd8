/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-blk device end to end without KVM: a tiny driver in this test programs the
 * virtio-pci transport through the MMIO bus, puts requests on split rings in fake guest RAM,
 * kicks through the notify region (forwarded to the queue's eventfd since there is no KVM
 * ioeventfd) and polls the used ring, while the device serves the queues on real iothreads
 * over a raw image file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "blockdev/bitmap.h"
#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "iothreads/iothread.h"
#include "vmm/layout.h"
#include "vmm/vm.h"
#include "vpci_fixture.h"

#define RAM (8u << 20)
#define QSZ 16
#define NQ 2
#define IMG (1u << 20)
#define BUF 0x100000ull

struct fx {
	struct vm vm;
	struct pci_bus pci;
	struct blockdev *bs;
	struct iothread *it[2];
	struct vblk *dev;
	uint64_t bar0;
	char path[64];
	struct vpcifx_ring q[NQ];
	uint64_t buf_next;
};

static void w(struct fx *f, uint64_t off, uint64_t v, unsigned int len)
{
	vpcifx_w(&f->vm, f->bar0 + off, v, len);
}

static uint64_t r(struct fx *f, uint64_t off, unsigned int len)
{
	return vpcifx_r(&f->vm, f->bar0 + off, len);
}

static void *gp(struct fx *f, uint64_t gpa, uint64_t len)
{
	return vpcifx_gp(&f->vm, gpa, len);
}

/* The driver side of initialisation (virtio 1.2 3.1.1), accepting every feature offered but
 * those in @refuse. */
static void driver_init_without(struct fx *f, uint64_t refuse)
{
	uint64_t feat = vpcifx_driver_init(&f->vm, f->bar0, refuse, f->q, NQ, QSZ, 0x10000);

	assert_true(feat & (1ull << VIRTIO_BLK_F_MQ));
}

static void driver_init(struct fx *f)
{
	driver_init_without(f, 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct blockdev_opts bo = { 0 };
	struct iothread_opts io = { .poll_max_ns = 0 };
	struct iothread *map[NQ];
	struct vblk_opts vo;
	struct vpci_host host;
	int fd;

	vpcifx_vm_init(&f->vm, RAM);
	assert_int_equal(pci_bus_init(&f->pci, &f->vm.mmio, &f->vm.pio, &layout_pci_bus, NULL), 0);
	snprintf(f->path, sizeof(f->path), "/tmp/vireo-vblk-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG), 0);
	close(fd);
	assert_int_equal(blockdev_opts_set(&bo, "format", "raw", NULL), 0);
	f->bs = blockdev_open(f->path, &bo, NULL);
	blockdev_opts_free(&bo);
	assert_non_null(f->bs);
	f->it[0] = iothread_create("t0", &io, NULL);
	f->it[1] = iothread_create("t1", &io, NULL);
	assert_non_null(f->it[0]);
	assert_non_null(f->it[1]);
	map[0] = f->it[0];
	map[1] = f->it[1];
	vo = (struct vblk_opts){ .bs = f->bs, .serial = "SER123", .num_queues = NQ,
				 .queue_size = QSZ, .iothreads = map };
	host = vm_vpci_host(&f->vm);
	f->dev = vblk_create(&host, "vblk-test", &vo, NULL);
	assert_non_null(f->dev);
	assert_true(pci_bus_add_device(&f->pci, vblk_pci(f->dev), -1, NULL) > 0);
	f->bar0 = pci_bar_address(vblk_pci(f->dev), 0);
	assert_int_not_equal(f->bar0, PCI_BAR_UNMAPPED);
	f->buf_next = BUF;
	driver_init(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	pci_bus_remove_device(&f->pci, vblk_pci(f->dev));
	vblk_destroy(f->dev);
	iothread_destroy(f->it[0]);
	iothread_destroy(f->it[1]);
	blockdev_close(f->bs);
	pci_bus_destroy(&f->pci);
	vpcifx_vm_destroy(&f->vm);
	unlink(f->path);
	free(f);
	return 0;
}

static uint64_t alloc_buf(struct fx *f, uint64_t len)
{
	uint64_t a = f->buf_next;

	f->buf_next = (f->buf_next + len + 63) & ~63ull;
	assert_true(f->buf_next < RAM);
	return a;
}

/* Puts a chain on queue @qi and kicks. Returns the head. */
static uint16_t submit(struct fx *f, unsigned int qi, const struct vpcifx_seg *s, unsigned int n)
{
	uint16_t head = vpcifx_post(&f->vm, &f->q[qi], s, n);

	w(f, 0x3000 + 4 * qi, qi, 2); /* notify */
	return head;
}

/* Waits for the next used element of queue @qi; returns its len. */
static uint32_t wait_used(struct fx *f, unsigned int qi, uint16_t head)
{
	struct virtq_used_elem e;

	if (!vpcifx_try_used(&f->vm, &f->q[qi], 25000, &e))
		fail_msg("queue %u: no completion", qi);
	assert_int_equal(e.id, head);
	return e.len;
}

/* A request with a header, an optional data buffer and a status byte; returns the status. */
static uint8_t do_req(struct fx *f, unsigned int qi, uint32_t type, uint64_t sector,
		      uint64_t data, uint32_t len, bool data_writable, uint32_t *used_len)
{
	uint64_t hdr = alloc_buf(f, 16), st = alloc_buf(f, 1);
	uint8_t *h = gp(f, hdr, 16), *s = gp(f, st, 1);
	struct vpcifx_seg segs[3];
	unsigned int n = 0;
	uint32_t ul;

	memset(h, 0, 16);
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	*s = 0xee;
	segs[n++] = (struct vpcifx_seg){ hdr, 16, false };
	if (len)
		segs[n++] = (struct vpcifx_seg){ data, len, data_writable };
	segs[n++] = (struct vpcifx_seg){ st, 1, true };
	ul = wait_used(f, qi, submit(f, qi, segs, n));
	if (used_len)
		*used_len = ul;
	return *s;
}

static void writes_read_back_on_every_queue(void **state)
{
	struct fx *f = *state;

	for (unsigned int qi = 0; qi < NQ; qi++) {
		uint64_t wb = alloc_buf(f, 4096), rb = alloc_buf(f, 4096);
		uint8_t *wp = gp(f, wb, 4096), *rp = gp(f, rb, 4096);
		uint32_t ul;

		for (unsigned int i = 0; i < 4096; i++)
			wp[i] = (uint8_t)(i * 7 + qi);
		memset(rp, 0, 4096);
		assert_int_equal(do_req(f, qi, VIRTIO_BLK_T_OUT, 8 + 8 * qi, wb, 4096, false, &ul),
				 VIRTIO_BLK_S_OK);
		assert_int_equal(ul, 1);
		assert_int_equal(do_req(f, qi, VIRTIO_BLK_T_IN, 8 + 8 * qi, rb, 4096, true, &ul),
				 VIRTIO_BLK_S_OK);
		assert_int_equal(ul, 4097);
		assert_memory_equal(wp, rp, 4096);
		assert_int_equal(do_req(f, qi, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
				 VIRTIO_BLK_S_OK);
	}
}

static void get_id_returns_the_serial(void **state)
{
	struct fx *f = *state;
	uint64_t b = alloc_buf(f, 20);
	char *p = gp(f, b, 20);

	memset(p, 'x', 20);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_GET_ID, 0, b, 20, true, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(p, "SER123\0\0", 8);
}

static void write_zeroes_and_discard_read_back_zeroes(void **state)
{
	struct fx *f = *state;
	uint64_t wb = alloc_buf(f, 4096), seg = alloc_buf(f, 16);
	uint8_t *wp = gp(f, wb, 4096), *sp = gp(f, seg, 16);
	uint64_t sector = 64;
	uint32_t n = 8, flags = 0;
	uint64_t hdr = alloc_buf(f, 16), st = alloc_buf(f, 1);
	uint8_t *h = gp(f, hdr, 16), *s = gp(f, st, 1);
	uint32_t type = VIRTIO_BLK_T_WRITE_ZEROES;
	struct vpcifx_seg segs[3];

	memset(wp, 0xab, 4096);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_OUT, sector, wb, 4096, false, NULL), 0);
	memcpy(sp, &sector, 8);
	memcpy(sp + 8, &n, 4);
	memcpy(sp + 12, &flags, 4);
	for (int round = 0; round < 2; round++) {
		memset(h, 0, 16);
		memcpy(h, &type, 4);
		*s = 0xee;
		segs[0] = (struct vpcifx_seg){ hdr, 16, false };
		segs[1] = (struct vpcifx_seg){ seg, 16, false };
		segs[2] = (struct vpcifx_seg){ st, 1, true };
		wait_used(f, 1, submit(f, 1, segs, 3));
		assert_int_equal(*s, VIRTIO_BLK_S_OK);
		memset(wp, 0xcd, 4096);
		assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_IN, sector, wb, 4096, true, NULL), 0);
		if (type == VIRTIO_BLK_T_WRITE_ZEROES)
			for (unsigned int i = 0; i < 4096; i++)
				assert_int_equal(wp[i], 0);
		type = VIRTIO_BLK_T_DISCARD;
	}
}

/* query-blockstats' counters: by class, on whichever queue, with failures and refusals */
static void statistics_count_requests_by_class(void **state)
{
	struct fx *f = *state;
	uint64_t b = alloc_buf(f, 8192);
	struct vioq_stats st;

	vblk_get_stats(f->dev, &st);
	assert_int_equal(st.ops[VIOQ_ACCT_READ] + st.ops[VIOQ_ACCT_WRITE], 0);
	assert_int_equal(st.last_done_ns, 0);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_OUT, 0, b, 4096, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_OUT, 8, b, 8192, false, NULL), VIRTIO_BLK_S_OK);
	for (unsigned int i = 0; i < 3; i++)
		assert_int_equal(do_req(f, i % NQ, VIRTIO_BLK_T_IN, 0, b, 4096, true, NULL),
				 VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	/* past the end: refused before submission, an invalid read */
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, IMG / 512, b, 4096, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	vblk_get_stats(f->dev, &st);
	assert_int_equal(st.ops[VIOQ_ACCT_WRITE], 2);
	assert_int_equal(st.bytes[VIOQ_ACCT_WRITE], 4096 + 8192);
	assert_int_equal(st.ops[VIOQ_ACCT_READ], 3);
	assert_int_equal(st.bytes[VIOQ_ACCT_READ], 3 * 4096);
	assert_int_equal(st.ops[VIOQ_ACCT_FLUSH], 1);
	assert_int_equal(st.invalid[VIOQ_ACCT_READ], 1);
	assert_int_equal(st.failed[VIOQ_ACCT_READ] + st.failed[VIOQ_ACCT_WRITE], 0);
	assert_int_equal(st.ops[VIOQ_ACCT_UNMAP], 0);
	assert_true(st.last_done_ns > 0);
	assert_int_equal(st.wr_highest_offset, 8 * 512 + 8192);
}

/* Guest writes, write-zeroes and discards mark the node's dirty bitmap when they complete, on
 * the iothread that served them; reads and flushes do not. */
static void guest_writes_mark_the_nodes_dirty_bitmap(void **state)
{
	struct fx *f = *state;
	struct blockdev_bitmap *bm = blockdev_bitmap_add(f->bs, "dirty", 4096, false, NULL);
	uint64_t b = alloc_buf(f, 8192);

	assert_non_null(bm);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_OUT, 16, b, 8192, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_IN, 64, b, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(blockdev_bitmap_count(bm), 8192);
	assert_int_equal(blockdev_bitmap_remove(f->bs, bm, NULL), 0);
}

/* A driver without FLUSH gets write-through: each write is followed by a flush before it
 * completes, and still counts as one write of its bytes. */
static void write_through_writes_count_as_writes_of_their_bytes(void **state)
{
	struct fx *f = *state;
	uint64_t b = alloc_buf(f, 8192);
	struct vioq_stats st;

	driver_init_without(f, 1ull << VIRTIO_BLK_F_FLUSH);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_OUT, 16, b, 8192, false, NULL),
			 VIRTIO_BLK_S_OK);
	vblk_get_stats(f->dev, &st);
	assert_int_equal(st.ops[VIOQ_ACCT_WRITE], 1);
	assert_int_equal(st.bytes[VIOQ_ACCT_WRITE], 8192);
	assert_int_equal(st.ops[VIOQ_ACCT_FLUSH], 0);
	assert_int_equal(st.wr_highest_offset, 16 * 512 + 8192);
}

static void malformed_requests_get_error_statuses(void **state)
{
	struct fx *f = *state;
	uint64_t b = alloc_buf(f, 4096);

	/* not a sector multiple, beyond the end, unknown type */
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, 0, b, 100, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, IMG / 512, b, 512, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_req(f, 0, 77, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	/* a data buffer outside RAM: the status still arrives */
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, 0, RAM - 256, 4096, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* the queue still serves good requests */
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, 0, b, 512, true, NULL), VIRTIO_BLK_S_OK);
}

static void a_looping_chain_completes_without_status_and_the_queue_goes_on(void **state)
{
	struct fx *f = *state;
	struct vpcifx_ring *q = &f->q[0];
	struct virtq_desc *d = gp(f, q->desc, 16 * QSZ);
	struct virtq_avail *a = gp(f, q->avail, virtq_avail_bytes(QSZ));
	uint64_t b = alloc_buf(f, 512);
	uint16_t head = (uint16_t)(q->next_desc % QSZ), other = (uint16_t)((head + 1) % QSZ);

	d[head] = (struct virtq_desc){ b, 16, VIRTQ_DESC_F_NEXT, other };
	d[other] = (struct virtq_desc){ b, 16, VIRTQ_DESC_F_NEXT, head };
	q->next_desc += 2;
	a->ring[q->avail_idx % QSZ] = head;
	__atomic_store_n(&a->idx, (uint16_t)(q->avail_idx + 1), __ATOMIC_RELEASE);
	q->avail_idx++;
	w(f, 0x3000, 0, 2);
	assert_int_equal(wait_used(f, 0, head), 0);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

static void a_corrupt_avail_index_sets_needs_reset_and_reset_recovers(void **state)
{
	struct fx *f = *state;
	struct virtq_avail *a = gp(f, f->q[1].avail, virtq_avail_bytes(QSZ));
	struct timespec ts = { 0, 1000000 };
	int i;

	__atomic_store_n(&a->idx, (uint16_t)(f->q[1].avail_idx + QSZ + 5), __ATOMIC_RELEASE);
	w(f, 0x3004, 1, 2);
	for (i = 0; i < 5000 && !(r(f, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET); i++)
		nanosleep(&ts, NULL);
	assert_true(r(f, 0x14, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* queue 0 is unaffected */
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	/* reset and bring the device up again */
	driver_init(f);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

static void kicks_follow_a_moved_bar(void **state)
{
	struct fx *f = *state;
	struct pci_device *d = vblk_pci(f->dev);
	uint64_t old = f->bar0, new = 0xd8000000;
	uint32_t lo = (uint32_t)new | 0xc, hi = 0;

	/* the guest reprograms BAR 0 (64-bit) through ECAM while the device runs */
	bus_write(&f->vm.mmio, 0xe0000000ull + (d->slot << 15) + 0x10, &lo, 4);
	bus_write(&f->vm.mmio, 0xe0000000ull + (d->slot << 15) + 0x14, &hi, 4);
	assert_int_equal(pci_bar_address(d, 0), new);
	f->bar0 = new;
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	f->bar0 = old;
	assert_int_equal(r(f, 0x14, 1), 0xffffffffffffffffull & 0xff); /* nothing decodes here */
}

/* Asks for an interrupt at the next used entry of queue @qi; returns the vector's eventfd. */
static int want_interrupt(struct fx *f, unsigned int qi)
{
	struct vpci_dev *v = vblk_pci(f->dev)->opaque;
	struct virtq_avail *a = gp(f, f->q[qi].avail, virtq_avail_bytes(QSZ));
	int efd = v->vectors[qi + 1].efd; /* the driver mapped queue i to vector i + 1 */
	eventfd_t cnt;

	eventfd_read(efd, &cnt); /* clear (non-blocking) */
	__atomic_store_n(&a->ring[QSZ], f->q[qi].used_seen, __ATOMIC_SEQ_CST); /* used_event */
	return efd;
}

static bool interrupted(int efd)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };

	return poll(&p, 1, 2000) == 1;
}

static void every_completion_raises_the_interrupt_the_driver_asked_for(void **state)
{
	struct fx *f = *state;
	uint64_t b = alloc_buf(f, 4096);
	int efd;

	/* completed by the block layer */
	efd = want_interrupt(f, 0);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, 0, b, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_true(interrupted(efd));
	/* completed by the device itself, without a block-layer completion in that turn */
	efd = want_interrupt(f, 0);
	assert_int_equal(do_req(f, 0, 77, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_true(interrupted(efd));
	efd = want_interrupt(f, 1);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_GET_ID, 0, b, 20, true, NULL), VIRTIO_BLK_S_OK);
	assert_true(interrupted(efd));
}

static void config_space_describes_the_disk(void **state)
{
	struct fx *f = *state;

	assert_int_equal(r(f, 0x2000, 8), IMG / 512);          /* capacity */
	assert_int_equal(r(f, 0x2000 + 12, 4), QSZ - 2);       /* seg_max */
	assert_int_equal(r(f, 0x2000 + 20, 4), 512);           /* blk_size */
	assert_int_equal(r(f, 0x2000 + 34, 2), NQ);            /* num_queues */
	assert_int_equal(r(f, 0x2000 + 40, 4), 1);             /* max_discard_seg */
}

/* block_resize: the capacity follows, the driver is told, and every queue serves past the old end */
static void resize_changes_capacity_with_a_config_change(void **state)
{
	struct fx *f = *state;
	uint8_t gen = (uint8_t)r(f, 0x15, 1);
	uint64_t b = alloc_buf(f, 4096);
	struct error *err = NULL;

	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, IMG / 512, b, 4096, true, NULL),
			 VIRTIO_BLK_S_IOERR); /* past the end */
	if (vblk_resize(f->dev, 2 * IMG, &err) < 0)
		fail_msg("vblk_resize: %s", error_msg(err));
	assert_int_equal(r(f, 0x2000, 8), 2 * IMG / 512);
	assert_int_not_equal((uint8_t)r(f, 0x15, 1), gen); /* config_generation moved */
	for (unsigned int qi = 0; qi < NQ; qi++) {
		assert_int_equal(do_req(f, qi, VIRTIO_BLK_T_OUT, IMG / 512 + 8 * qi, b, 4096, false,
					NULL), VIRTIO_BLK_S_OK);
		assert_int_equal(do_req(f, qi, VIRTIO_BLK_T_IN, 2 * IMG / 512 - 8, b, 4096, true,
					NULL), VIRTIO_BLK_S_OK);
	}
	/* shrinking back works too; a read-only node refuses and nothing changes */
	assert_int_equal(vblk_resize(f->dev, IMG, NULL), 0);
	assert_int_equal(r(f, 0x2000, 8), IMG / 512);
	f->bs->read_only = true;
	assert_int_equal(vblk_resize(f->dev, 4 * IMG, &err), -1);
	f->bs->read_only = false;
	assert_non_null(strstr(error_msg(err), "read-only"));
	error_free(err);
	assert_int_equal(r(f, 0x2000, 8), IMG / 512);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_IN, 0, b, 4096, true, NULL), VIRTIO_BLK_S_OK);
}

/* the device moves to another node between two requests: reads then come from the new one */
static void set_node_moves_every_queue_to_the_new_node(void **state)
{
	struct fx *f = *state;
	struct blockdev_opts bo = { 0 };
	uint64_t b = alloc_buf(f, 4096);
	uint8_t *p = gp(f, b, 4096);
	struct error *err = NULL;
	struct blockdev *other;
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/vireo-vblk-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(p, 0x5a, 4096);
	assert_int_equal(pwrite(fd, p, 4096, 0), 4096);
	assert_int_equal(ftruncate(fd, 2 * IMG), 0);
	close(fd);
	assert_int_equal(blockdev_opts_set(&bo, "format", "raw", NULL), 0);
	other = blockdev_open(path, &bo, NULL);
	blockdev_opts_free(&bo);
	assert_non_null(other);
	memset(p, 0, 4096);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, 0, b, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(p[0], 0); /* the old node's bytes */
	if (vblk_set_node(f->dev, other, &err) < 0)
		fail_msg("vblk_set_node: %s", error_msg(err));
	assert_int_equal(r(f, 0x2000, 8), 2 * IMG / 512);
	for (unsigned int qi = 0; qi < NQ; qi++) {
		memset(p, 0, 4096);
		assert_int_equal(do_req(f, qi, VIRTIO_BLK_T_IN, 0, b, 4096, true, NULL),
				 VIRTIO_BLK_S_OK);
		assert_int_equal(p[0], 0x5a);
		assert_int_equal(p[4095], 0x5a);
	}
	/* back to the first node; a read-only node under this writable device is refused */
	assert_int_equal(vblk_set_node(f->dev, f->bs, NULL), 0);
	assert_int_equal(r(f, 0x2000, 8), IMG / 512);
	other->read_only = true;
	assert_int_equal(vblk_set_node(f->dev, other, &err), -1);
	assert_non_null(strstr(error_msg(err), "read-only"));
	error_free(err);
	other->read_only = false;
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_IN, 0, b, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(p[0], 0);
	blockdev_close(other);
	unlink(path);
}

/* The backing node under the device's overlay changes while the device runs: the queues,
 * which registered the old backing file on their iothreads, read the new one afterwards, and
 * the old node closes under them without a stale registration (ASan would see its use). */
static void backing_swap_under_the_device_reaches_every_queue(void **state)
{
	struct fx *f = *state;
	struct qcow2_create_opts qo = { .size = IMG, .cluster_bits = 16, .version = 3,
					.refcount_bits = 16, .backing_file = f->path,
					.backing_fmt = "raw" };
	struct blockdev_user u = { .role = "vblk-test",
				   .perm = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE,
				   .shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
				   .ops = &vblk_drain_ops, .opaque = f->dev };
	struct blockdev_opts bo = { 0 };
	uint64_t b = alloc_buf(f, 4096);
	uint8_t *p = gp(f, b, 4096);
	struct error *err = NULL;
	struct blockdev *ov, *other;
	char ov_path[80], other_path[64];
	int fd;

	snprintf(ov_path, sizeof(ov_path), "%s.qcow2", f->path);
	assert_true(qcow2_create(ov_path, &qo, NULL) >= 0);
	snprintf(other_path, sizeof(other_path), "/tmp/vireo-vblk-XXXXXX");
	fd = mkstemp(other_path);
	assert_true(fd >= 0);
	memset(p, 0x5a, 4096);
	for (unsigned int i = 0; i < IMG / 4096; i++)
		assert_int_equal(pwrite(fd, p, 4096, (off_t)i * 4096), 4096);
	close(fd);
	ov = blockdev_open(ov_path, NULL, NULL);
	assert_non_null(ov);
	assert_int_equal(blockdev_opts_set(&bo, "format", "raw", NULL), 0);
	bo.readonly = true;
	other = blockdev_open(other_path, &bo, NULL);
	blockdev_opts_free(&bo);
	assert_non_null(other);
	assert_int_equal(vblk_set_node(f->dev, ov, NULL), 0);
	assert_int_equal(blockdev_attach(ov, &u, NULL), 0);
	for (unsigned int qi = 0; qi < NQ; qi++) {
		memset(p, 0xee, 4096);
		assert_int_equal(do_req(f, qi, VIRTIO_BLK_T_IN, 0, b, 4096, true, NULL),
				 VIRTIO_BLK_S_OK);
		assert_int_equal(p[0], 0); /* through the overlay to the zeroed raw file */
	}
	if (blockdev_set_backing(ov, other, &err))
		fail_msg("blockdev_set_backing: %s", error_msg(err));
	blockdev_close(other); /* the overlay's backing link holds it */
	for (unsigned int qi = 0; qi < NQ; qi++) {
		memset(p, 0, 4096);
		assert_int_equal(do_req(f, qi, VIRTIO_BLK_T_IN, 8 * qi, b, 4096, true, NULL),
				 VIRTIO_BLK_S_OK);
		assert_int_equal(p[0], 0x5a);
		assert_int_equal(p[4095], 0x5a);
	}
	/* a write allocates in the overlay, with the rest of its cluster copied from the new
	 * backing node */
	memset(p, 0x11, 4096);
	assert_int_equal(do_req(f, 1, VIRTIO_BLK_T_OUT, 16, b, 4096, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(do_req(f, 0, VIRTIO_BLK_T_IN, 24, b, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(p[0], 0x5a);
	blockdev_detach(&u);
	assert_int_equal(vblk_set_node(f->dev, f->bs, NULL), 0);
	blockdev_close(ov);
	unlink(ov_path);
	unlink(other_path);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(config_space_describes_the_disk),
		T(writes_read_back_on_every_queue),
		T(get_id_returns_the_serial),
		T(write_zeroes_and_discard_read_back_zeroes),
		T(malformed_requests_get_error_statuses),
		T(a_looping_chain_completes_without_status_and_the_queue_goes_on),
		T(a_corrupt_avail_index_sets_needs_reset_and_reset_recovers),
		T(kicks_follow_a_moved_bar),
		T(every_completion_raises_the_interrupt_the_driver_asked_for),
		T(resize_changes_capacity_with_a_config_change),
		T(set_node_moves_every_queue_to_the_new_node),
		T(backing_swap_under_the_device_reaches_every_queue),
		T(statistics_count_requests_by_class),
		T(write_through_writes_count_as_writes_of_their_bytes),
		T(guest_writes_mark_the_nodes_dirty_bitmap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
