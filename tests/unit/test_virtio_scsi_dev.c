/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-scsi device end to end without KVM, as test_virtio_blk_dev.c does for
 * virtio-blk: a tiny driver in this test programs the transport through the MMIO bus, puts
 * requests on split rings in fake guest RAM, kicks through the notify region and polls the
 * used rings, while the device serves its request queues on two real iothreads over raw
 * images: LUNs 0 and 2 on target 0, LUN 1 on target 1 (which has no LUN 0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "common/util.h"
#include "devices/pci.h"
#include "devices/scsi_disk.h"
#include "devices/virtio_pci.h"
#include "devices/virtio_scsi.h"
#include "iothreads/iothread.h"
#include "vmm/layout.h"
#include "vmm/vm.h"
#include "vpci_fixture.h"

#define RAM (32u << 20)
#define QSZ 64
#define NRQ 2               /* request queues */
#define NVQ (2 + NRQ)
#define IMG (8u << 20)
#define BUF 0x100000ull
#define NLUN 3

struct fx {
	struct vm vm;
	struct pci_bus pci;
	struct blockdev *bs[NLUN + 1];
	struct blockdev_user user[NLUN + 1];
	struct vscsi_lun *lun[NLUN + 1];
	struct iothread *it[2];
	struct vscsi *dev;
	uint64_t bar0;
	char path[NLUN + 1][64];
	struct vpcifx_ring q[NVQ];
	uint64_t buf_next;
	uint32_t cdb_size, sense_size;
};

static const struct { uint8_t target; uint16_t lun; } addr[NLUN + 1] = {
	{ 0, 0 }, { 0, 2 }, { 1, 1 }, { 0, 3 } /* the last one is hot-plugged */
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

static void driver_init(struct fx *f)
{
	uint64_t feat = vpcifx_driver_init(&f->vm, f->bar0, 0, f->q, NVQ, QSZ, 0x4000);

	assert_true(feat & (1ull << VIRTIO_SCSI_F_HOTPLUG));
	assert_true(feat & (1ull << VIRTIO_SCSI_F_CHANGE));
	f->cdb_size = 32;
	f->sense_size = 96;
}

static struct blockdev *open_image(char *path, const char *cache)
{
	struct blockdev_opts bo = { 0 };
	struct blockdev *bs;
	int fd;

	snprintf(path, 64, "/tmp/vireo-vscsi-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG), 0);
	close(fd);
	assert_int_equal(blockdev_opts_set(&bo, "format", "raw", NULL), 0);
	assert_int_equal(blockdev_opts_set(&bo, "cache", cache, NULL), 0);
	bs = blockdev_open(path, &bo, NULL);
	blockdev_opts_free(&bo);
	assert_non_null(bs);
	return bs;
}

static struct vscsi_lun *add_lun(struct fx *f, unsigned int i)
{
	struct vscsi_lun_opts lo = { .bs = f->bs[i], .target = addr[i].target,
				     .lun = addr[i].lun, .serial = "S1" };
	struct error *err = NULL;

	f->user[i] = (struct blockdev_user){ .role = "vscsi-test",
					     .perm = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE,
					     .shared = BLOCKDEV_PERM_READ };
	assert_int_equal(blockdev_attach(f->bs[i], &f->user[i], NULL), 0);
	f->lun[i] = vscsi_lun_add(f->dev, &lo, &err);
	if (!f->lun[i])
		fail_msg("vscsi_lun_add: %s", error_msg(err));
	f->user[i].ops = &vscsi_drain_ops;
	f->user[i].opaque = f->lun[i];
	return f->lun[i];
}

static void remove_lun(struct fx *f, unsigned int i)
{
	vscsi_lun_remove(f->lun[i]);
	f->lun[i] = NULL;
	f->user[i].ops = NULL;
	blockdev_detach(&f->user[i]);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct iothread_opts io = { .poll_max_ns = 0 };
	struct iothread *map[NRQ];
	struct vscsi_opts vo;
	struct vpci_host host;

	vpcifx_vm_init(&f->vm, RAM);
	assert_int_equal(pci_bus_init(&f->pci, &f->vm.mmio, &f->vm.pio, &layout_pci_bus, NULL), 0);
	for (unsigned int i = 0; i <= NLUN; i++)
		f->bs[i] = open_image(f->path[i], i == 0 ? "none" : "writeback");
	f->it[0] = iothread_create("t0", &io, NULL);
	f->it[1] = iothread_create("t1", &io, NULL);
	assert_non_null(f->it[0]);
	assert_non_null(f->it[1]);
	map[0] = f->it[0];
	map[1] = f->it[1];
	vo = (struct vscsi_opts){ .num_queues = NRQ, .queue_size = QSZ, .iothreads = map };
	host = vm_vpci_host(&f->vm);
	f->dev = vscsi_create(&host, "vscsi-test", &vo, NULL);
	assert_non_null(f->dev);
	for (unsigned int i = 0; i < NLUN; i++)
		add_lun(f, i);
	assert_true(pci_bus_add_device(&f->pci, vscsi_pci(f->dev), -1, NULL) > 0);
	f->bar0 = pci_bar_address(vscsi_pci(f->dev), 0);
	f->buf_next = BUF;
	driver_init(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	pci_bus_remove_device(&f->pci, vscsi_pci(f->dev));
	for (unsigned int i = 0; i <= NLUN; i++)
		if (f->lun[i])
			remove_lun(f, i);
	vscsi_destroy(f->dev);
	iothread_destroy(f->it[0]);
	iothread_destroy(f->it[1]);
	for (unsigned int i = 0; i <= NLUN; i++) {
		blockdev_close(f->bs[i]);
		unlink(f->path[i]);
	}
	pci_bus_destroy(&f->pci);
	vpcifx_vm_destroy(&f->vm);
	free(f);
	return 0;
}

static uint64_t alloc_buf(struct fx *f, uint64_t len)
{
	uint64_t a = f->buf_next;

	f->buf_next = (f->buf_next + len + 63) & ~63ull;
	if (f->buf_next >= RAM) { /* wrap: earlier requests are done */
		f->buf_next = BUF;
		return alloc_buf(f, len);
	}
	return a;
}

/* Puts a chain on queue @qi; kicks if @kick. Returns the head. */
static uint16_t post(struct fx *f, unsigned int qi, const struct vpcifx_seg *s, unsigned int n,
		     bool kick)
{
	uint16_t head = vpcifx_post(&f->vm, &f->q[qi], s, n);

	if (kick)
		w(f, 0x3000 + 4 * qi, qi, 2);
	return head;
}

static bool try_used(struct fx *f, unsigned int qi, int tries, struct virtq_used_elem *out)
{
	return vpcifx_try_used(&f->vm, &f->q[qi], tries, out);
}

static uint32_t wait_used(struct fx *f, unsigned int qi, uint16_t head)
{
	struct virtq_used_elem e;

	if (!try_used(f, qi, 25000, &e))
		fail_msg("queue %u: no completion", qi);
	assert_int_equal(e.id, head);
	return e.len;
}

/* A request as Linux builds it, taking its response and data from guest memory. */
struct cmd {
	uint8_t target;
	uint16_t lun;
	uint8_t lun0;       /* lun[0], 1 unless a test breaks it */
	uint64_t tag;
	uint8_t cdb[32];
	uint64_t dout, din; /* guest addresses of the data buffers */
	uint32_t dout_len, din_len;
	/* results */
	uint32_t used, sense_len, resid;
	uint8_t status, response;
	uint8_t sense[96];
	uint64_t resp;      /* guest address of the response */
	uint16_t head;
};

static unsigned int cmd_segs(struct fx *f, struct cmd *c, struct vpcifx_seg *s)
{
	uint32_t hl = VIRTIO_SCSI_REQ_HDR_SIZE + f->cdb_size;
	uint32_t rl = VIRTIO_SCSI_RESP_HDR_SIZE + f->sense_size;
	uint64_t hdr = alloc_buf(f, hl);
	uint8_t *h = gp(f, hdr, hl);
	unsigned int n = 0;

	memset(h, 0, hl);
	h[0] = c->lun0 ? c->lun0 : 1;
	h[1] = c->target;
	h[2] = (uint8_t)(0x40 | (c->lun >> 8));
	h[3] = (uint8_t)c->lun;
	memcpy(h + 8, &c->tag, 8);
	memcpy(h + VIRTIO_SCSI_REQ_HDR_SIZE, c->cdb, MIN(f->cdb_size, 32u));
	c->resp = alloc_buf(f, rl);
	memset(gp(f, c->resp, rl), 0xee, rl);
	s[n++] = (struct vpcifx_seg){ hdr, hl, false };
	if (c->dout_len)
		s[n++] = (struct vpcifx_seg){ c->dout, c->dout_len, false };
	s[n++] = (struct vpcifx_seg){ c->resp, rl, true };
	if (c->din_len)
		s[n++] = (struct vpcifx_seg){ c->din, c->din_len, true };
	return n;
}

static void cmd_results(struct fx *f, struct cmd *c)
{
	uint8_t *p = gp(f, c->resp, VIRTIO_SCSI_RESP_HDR_SIZE + f->sense_size);

	memcpy(&c->sense_len, p, 4);
	memcpy(&c->resid, p + 4, 4);
	c->status = p[10];
	c->response = p[11];
	memcpy(c->sense, p + 12, MIN(f->sense_size, sizeof(c->sense)));
}

static void cmd_post(struct fx *f, unsigned int rq, struct cmd *c)
{
	struct vpcifx_seg s[4];

	c->head = post(f, 2 + rq, s, cmd_segs(f, c, s), true);
}

static void cmd_wait(struct fx *f, unsigned int rq, struct cmd *c)
{
	c->used = wait_used(f, 2 + rq, c->head);
	cmd_results(f, c);
}

static void run(struct fx *f, unsigned int rq, struct cmd *c)
{
	cmd_post(f, rq, c);
	cmd_wait(f, rq, c);
}

/* The sense key and ASC/ASCQ of a finished command. */
static uint16_t sense_asc(const struct cmd *c, uint8_t *key)
{
	struct scsi_sense_err e;

	assert_true(scsi_sense_parse(c->sense, c->sense_len, &e));
	*key = e.key;
	return e.asc;
}

static void want_check(const struct cmd *c, uint8_t key, uint16_t asc)
{
	uint8_t k;

	assert_int_equal(c->response, VIRTIO_SCSI_S_OK);
	assert_int_equal(c->status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(sense_asc(c, &k), asc);
	assert_int_equal(k, key);
}

/* TEST UNIT READY until the power-on unit attention is gone. */
static void clear_ua(struct fx *f, uint8_t target, uint16_t lun)
{
	for (int i = 0; i < 4; i++) {
		struct cmd c = { .target = target, .lun = lun };

		run(f, 0, &c);
		assert_int_equal(c.response, VIRTIO_SCSI_S_OK);
		if (c.status == SCSI_STATUS_GOOD)
			return;
	}
	fail_msg("unit attention does not clear");
}

static void rw10(struct cmd *c, uint8_t op, uint32_t lba, uint16_t blocks)
{
	memset(c->cdb, 0, sizeof(c->cdb));
	c->cdb[0] = op;
	scsi_put_be32(c->cdb + 2, lba);
	scsi_put_be16(c->cdb + 7, blocks);
}

static void config_space_describes_the_host(void **state)
{
	struct fx *f = *state;

	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_NUM_QUEUES, 4), NRQ);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_SEG_MAX, 4), QSZ - 2);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_EVENT_INFO_SIZE, 4), 16);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_SENSE_SIZE, 4), 96);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_CDB_SIZE, 4), 32);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_MAX_CHANNEL, 2), 0);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_MAX_TARGET, 2), VSCSI_MAX_TARGET);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_MAX_LUN, 4), VSCSI_MAX_LUN);
}

static void report_luns(struct fx *f, uint8_t target, uint16_t lun, uint16_t *luns,
			unsigned int *n)
{
	struct cmd c = { .target = target, .lun = lun, .din = alloc_buf(f, 256), .din_len = 256 };
	uint8_t *d = gp(f, c.din, 256);

	c.cdb[0] = SCSI_OP_REPORT_LUNS;
	scsi_put_be32(c.cdb + 6, 256);
	run(f, 1, &c);
	assert_int_equal(c.response, VIRTIO_SCSI_S_OK);
	assert_int_equal(c.status, SCSI_STATUS_GOOD);
	*n = scsi_be32(d) / 8;
	assert_int_equal(c.used, 12 + 96 + 8 + 8 * *n);
	assert_int_equal(c.resid, 256 - 8 - 8 * *n);
	for (unsigned int i = 0; i < *n; i++)
		luns[i] = (uint16_t)(scsi_be16(d + 8 + 8 * i) & 0x3fff);
}

static void inquiry_and_report_luns_find_every_lun(void **state)
{
	struct fx *f = *state;
	struct cmd c = { .target = 0, .lun = 2, .din = alloc_buf(f, 96), .din_len = 96 };
	uint8_t *d = gp(f, c.din, 96);
	uint16_t luns[8];
	unsigned int n;

	c.cdb[0] = SCSI_OP_INQUIRY;
	scsi_put_be16(c.cdb + 3, 96);
	run(f, 0, &c);
	assert_int_equal(c.status, SCSI_STATUS_GOOD);
	assert_int_equal(d[0], 0x00); /* a disk, connected */
	assert_int_equal(c.resid, 96 - (d[4] + 5));
	report_luns(f, 0, 0, luns, &n);
	assert_int_equal(n, 2);
	assert_int_equal(luns[0] + luns[1], 2); /* 0 and 2 */
	/* target 1 has no LUN 0: INQUIRY there says so, REPORT LUNS still answers */
	c = (struct cmd){ .target = 1, .lun = 0, .din = c.din, .din_len = 96 };
	c.cdb[0] = SCSI_OP_INQUIRY;
	scsi_put_be16(c.cdb + 3, 96);
	run(f, 1, &c);
	assert_int_equal(c.status, SCSI_STATUS_GOOD);
	assert_int_equal(d[0], 0x7f);
	report_luns(f, 1, 0, luns, &n);
	assert_int_equal(n, 1);
	assert_int_equal(luns[0], 1);
	/* another command to the missing LUN: LOGICAL UNIT NOT SUPPORTED */
	c = (struct cmd){ .target = 0, .lun = 7 };
	run(f, 0, &c);
	want_check(&c, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LUN_NOT_SUPPORTED);
	/* no such target, a LUN field that is not Linux's: BAD_TARGET */
	c = (struct cmd){ .target = 9, .lun = 0 };
	run(f, 0, &c);
	assert_int_equal(c.response, VIRTIO_SCSI_S_BAD_TARGET);
	c = (struct cmd){ .target = 0, .lun = 0, .lun0 = 2 };
	run(f, 1, &c);
	assert_int_equal(c.response, VIRTIO_SCSI_S_BAD_TARGET);
}

static void writes_read_back_on_every_queue_and_lun(void **state)
{
	struct fx *f = *state;

	for (unsigned int l = 0; l < NLUN; l++) {
		clear_ua(f, addr[l].target, addr[l].lun);
		for (unsigned int rq = 0; rq < NRQ; rq++) {
			uint64_t wb = alloc_buf(f, 8192), rb = alloc_buf(f, 8192);
			uint8_t *wp = gp(f, wb, 8192), *rp = gp(f, rb, 8192);
			struct cmd c = { .target = addr[l].target, .lun = addr[l].lun,
					 .dout = wb, .dout_len = 8192 };

			for (unsigned int i = 0; i < 8192; i++)
				wp[i] = (uint8_t)(i * 7 + rq + 3 * l);
			rw10(&c, SCSI_OP_WRITE_10, 16 * rq + 4, 16);
			run(f, rq, &c);
			assert_int_equal(c.status, SCSI_STATUS_GOOD);
			assert_int_equal(c.used, 12 + 96);
			c = (struct cmd){ .target = addr[l].target, .lun = addr[l].lun, .din = rb,
					  .din_len = 8192 };
			memset(rp, 0, 8192);
			rw10(&c, SCSI_OP_READ_10, 16 * rq + 4, 16);
			run(f, rq ^ 1, &c);
			assert_int_equal(c.status, SCSI_STATUS_GOOD);
			assert_int_equal(c.used, 12 + 96 + 8192);
			assert_int_equal(c.resid, 0);
			assert_memory_equal(wp, rp, 8192);
		}
	}
	{
		struct vioq_stats st;

		vscsi_lun_get_stats(f->lun[1], &st);
		assert_int_equal(st.ops[VIOQ_ACCT_WRITE], NRQ);
		assert_int_equal(st.bytes[VIOQ_ACCT_READ], NRQ * 8192);
	}
}

static void bad_cdbs_get_the_right_sense(void **state)
{
	struct fx *f = *state;
	uint64_t b = alloc_buf(f, 4096);
	struct cmd c = { .target = 0, .lun = 0 };

	clear_ua(f, 0, 0);
	c.cdb[0] = 0xc7; /* vendor specific, unknown */
	run(f, 0, &c);
	want_check(&c, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE);
	c = (struct cmd){ .target = 0, .lun = 0, .din = b, .din_len = 4096 };
	rw10(&c, SCSI_OP_READ_10, IMG / 512 - 4, 8); /* past the end */
	run(f, 1, &c);
	want_check(&c, SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	assert_int_equal(c.resid, 4096);
	/* a read with data-out buffers, a write without enough data: OVERRUN, nothing done */
	c = (struct cmd){ .target = 0, .lun = 0, .dout = b, .dout_len = 4096 };
	rw10(&c, SCSI_OP_READ_10, 0, 8);
	run(f, 0, &c);
	assert_int_equal(c.response, VIRTIO_SCSI_S_OVERRUN);
	c = (struct cmd){ .target = 0, .lun = 0, .dout = b, .dout_len = 2048 };
	rw10(&c, SCSI_OP_WRITE_10, 0, 8);
	run(f, 0, &c);
	assert_int_equal(c.response, VIRTIO_SCSI_S_OVERRUN);
	/* INQUIRY with less room than its allocation length: cut, not refused */
	c = (struct cmd){ .target = 0, .lun = 0, .din = b, .din_len = 8 };
	c.cdb[0] = SCSI_OP_INQUIRY;
	scsi_put_be16(c.cdb + 3, 96);
	run(f, 1, &c);
	assert_int_equal(c.status, SCSI_STATUS_GOOD);
	assert_int_equal(c.used, 12 + 96 + 8);
}

static void hostile_descriptors_complete_and_the_queue_goes_on(void **state)
{
	struct fx *f = *state;
	struct vpcifx_ring *q = &f->q[2];
	uint64_t hdr = alloc_buf(f, 64), resp = alloc_buf(f, 128), b = alloc_buf(f, 512);
	struct vpcifx_seg s[3];
	struct cmd c;
	uint8_t *rp = gp(f, resp, 128);

	clear_ua(f, 0, 0);
	/* header shorter than 19 + cdb_size: FAILURE */
	memset(gp(f, hdr, 64), 0, 64);
	*(uint8_t *)gp(f, hdr, 1) = 1;
	s[0] = (struct vpcifx_seg){ hdr, 40, false };
	s[1] = (struct vpcifx_seg){ resp, 108, true };
	rp[11] = 0xee;
	assert_int_equal(wait_used(f, 2, post(f, 2, s, 2, true)), 12 + 96);
	assert_int_equal(rp[11], VIRTIO_SCSI_S_FAILURE);
	/* writable part shorter than the response: returned with nothing written */
	s[0] = (struct vpcifx_seg){ hdr, 51, false };
	s[1] = (struct vpcifx_seg){ resp, 100, true };
	assert_int_equal(wait_used(f, 2, post(f, 2, s, 2, true)), 0);
	/* data-in and data-out both: FAILURE */
	s[1] = (struct vpcifx_seg){ b, 512, false };
	s[2] = (struct vpcifx_seg){ resp, 128, true };
	rp[11] = 0xee;
	assert_int_equal(wait_used(f, 2, post(f, 2, s, 3, true)), 12 + 96);
	assert_int_equal(rp[11], VIRTIO_SCSI_S_FAILURE);
	/* a data buffer outside RAM: FAILURE, the response still arrives */
	s[1] = (struct vpcifx_seg){ RAM - 256, 4096, false };
	s[2] = (struct vpcifx_seg){ resp, 108, true };
	rp[11] = 0xee;
	wait_used(f, 2, post(f, 2, s, 3, true));
	assert_int_equal(rp[11], VIRTIO_SCSI_S_FAILURE);
	/* a looping chain: returned with used.len 0 */
	{
		struct virtq_desc *d = gp(f, q->desc, 16 * QSZ);
		struct virtq_avail *a = gp(f, q->avail, virtq_avail_bytes(QSZ));
		uint16_t head = (uint16_t)(q->next_desc % QSZ), other = (uint16_t)((head + 1) % QSZ);

		d[head] = (struct virtq_desc){ hdr, 51, VIRTQ_DESC_F_NEXT, other };
		d[other] = (struct virtq_desc){ resp, 108, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
						head };
		q->next_desc += 2;
		a->ring[q->avail_idx % QSZ] = head;
		__atomic_store_n(&a->idx, (uint16_t)(q->avail_idx + 1), __ATOMIC_RELEASE);
		q->avail_idx++;
		w(f, 0x3000 + 4 * 2, 2, 2);
		assert_int_equal(wait_used(f, 2, head), 0);
	}
	/* cdb_size and sense_size as the driver sets them, within bounds only */
	w(f, 0x2000 + VIRTIO_SCSI_CFG_CDB_SIZE, 0, 4);
	w(f, 0x2000 + VIRTIO_SCSI_CFG_CDB_SIZE, 300, 4);
	w(f, 0x2000 + VIRTIO_SCSI_CFG_SENSE_SIZE, 100000, 4);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_CDB_SIZE, 4), 32);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_SENSE_SIZE, 4), 96);
	w(f, 0x2000 + VIRTIO_SCSI_CFG_CDB_SIZE, 16, 4);
	w(f, 0x2000 + VIRTIO_SCSI_CFG_SENSE_SIZE, 8, 4);
	f->cdb_size = 16;
	f->sense_size = 8;
	c = (struct cmd){ .target = 0, .lun = 0 };
	c.cdb[0] = 0xc7;
	run(f, 1, &c);
	assert_int_equal(c.status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(c.sense_len, 8); /* cut to sense_size */
	assert_int_equal(c.used, 12 + 8);
	c = (struct cmd){ .target = 0, .lun = 0, .din = b, .din_len = 512 };
	rw10(&c, SCSI_OP_READ_10, 0, 1);
	run(f, 0, &c);
	assert_int_equal(c.status, SCSI_STATUS_GOOD);
	assert_int_equal(c.used, 12 + 8 + 512);
	/* a device reset brings the defaults back */
	driver_init(f);
	assert_int_equal(r(f, 0x2000 + VIRTIO_SCSI_CFG_CDB_SIZE, 4), 32);
	c = (struct cmd){ .target = 0, .lun = 0 };
	run(f, 0, &c);
	assert_int_equal(c.response, VIRTIO_SCSI_S_OK);
}

/* A TMF on the control queue; returns its response byte. */
static uint16_t tmf_post(struct fx *f, uint32_t subtype, uint8_t target, uint16_t lun,
			 uint64_t tag, uint64_t *respp)
{
	uint64_t req = alloc_buf(f, 24), resp = alloc_buf(f, 1);
	uint8_t *p = gp(f, req, 24);
	uint32_t type = VIRTIO_SCSI_T_TMF;
	struct vpcifx_seg s[2] = { { req, 24, false }, { resp, 1, true } };

	memset(p, 0, 24);
	memcpy(p, &type, 4);
	memcpy(p + 4, &subtype, 4);
	p[8] = 1;
	p[9] = target;
	p[10] = (uint8_t)(0x40 | (lun >> 8));
	p[11] = (uint8_t)lun;
	memcpy(p + 16, &tag, 8);
	*(uint8_t *)gp(f, resp, 1) = 0xee;
	*respp = resp;
	return post(f, 0, s, 2, true);
}

static uint8_t tmf(struct fx *f, uint32_t subtype, uint8_t target, uint16_t lun, uint64_t tag)
{
	uint64_t resp;
	uint16_t head = tmf_post(f, subtype, target, lun, tag, &resp);

	assert_int_equal(wait_used(f, 0, head), 1);
	return *(uint8_t *)gp(f, resp, 1);
}

static void task_management_answers_when_idle(void **state)
{
	struct fx *f = *state;
	uint64_t req = alloc_buf(f, 16), resp = alloc_buf(f, 5);
	uint8_t *p = gp(f, req, 16), *rp = gp(f, resp, 5);
	struct vpcifx_seg s[2] = { { req, 16, false }, { resp, 5, true } };
	struct cmd c = { .target = 0, .lun = 2 };
	uint32_t type = VIRTIO_SCSI_T_AN_QUERY, req_ev = 0xff;

	clear_ua(f, 0, 2);
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_QUERY_TASK, 0, 2, 5),
			 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_QUERY_TASK_SET, 0, 2, 0),
			 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 2, 5),
			 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, 0, 0, 0),
			 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_CLEAR_ACA, 0, 0, 0),
			 VIRTIO_SCSI_S_FUNCTION_REJECTED);
	assert_int_equal(tmf(f, 99, 0, 0, 0), VIRTIO_SCSI_S_FUNCTION_REJECTED);
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_ABORT_TASK, 9, 0, 0), VIRTIO_SCSI_S_BAD_TARGET);
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 5, 0),
			 VIRTIO_SCSI_S_INCORRECT_LUN);
	/* LOGICAL UNIT RESET: the next command gets the reset's unit attention */
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 0, 2, 0),
			 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	run(f, 0, &c);
	want_check(&c, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_POWER_ON_RESET);
	assert_int_equal(tmf(f, VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, 1, 0, 0),
			 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	c = (struct cmd){ .target = 1, .lun = 1 };
	run(f, 1, &c);
	want_check(&c, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_POWER_ON_RESET);
	/* asynchronous notification query: none supported */
	memset(p, 0, 16);
	memcpy(p, &type, 4);
	p[4] = 1;
	memcpy(p + 12, &req_ev, 4);
	memset(rp, 0xee, 5);
	assert_int_equal(wait_used(f, 0, post(f, 0, s, 2, true)), 5);
	assert_int_equal(rp[0] | rp[1] | rp[2] | rp[3], 0);
	assert_int_equal(rp[4], VIRTIO_SCSI_S_OK);
	/* a control request too short: FAILURE */
	s[0].len = 8;
	type = VIRTIO_SCSI_T_TMF;
	memcpy(p, &type, 4);
	s[1].len = 1;
	assert_int_equal(wait_used(f, 0, post(f, 0, s, 2, true)), 1);
	assert_int_equal(rp[0], VIRTIO_SCSI_S_FAILURE);
}

/*
 * TMFs while writes are in flight on both request queues (a cache=none LUN: each 512 KiB
 * write takes the disk's time): the aborting function is answered only after every request
 * it aborted was returned (ABORTED); a request its queue had not taken yet when the function
 * reached it completes normally, later; the queries find in-flight tasks. Rounds repeat until
 * the abort caught requests in flight.
 */
static void aborts_wait_for_the_requests_in_flight(void **state)
{
	struct fx *f = *state;
	const unsigned int nw = 6, len = 512 << 10;
	unsigned int aborted = 0, found = 0, round;

	clear_ua(f, 0, 0);
	for (round = 0; round < 40 && (!aborted || !found); round++) {
		struct cmd c[6];
		uint32_t sub = round % 2 ? VIRTIO_SCSI_T_TMF_ABORT_TASK_SET :
			       VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET;
		uint64_t resp, qresp;
		uint16_t qhead, head;
		uint8_t qr;

		for (unsigned int i = 0; i < nw; i++) {
			c[i] = (struct cmd){ .target = 0, .lun = 0, .tag = 100 + i,
					     .dout = alloc_buf(f, len), .dout_len = len };
			rw10(&c[i], SCSI_OP_WRITE_10, (uint32_t)(i * (len / 512)), len / 512);
			cmd_post(f, i % NRQ, &c[i]);
		}
		qhead = tmf_post(f, VIRTIO_SCSI_T_TMF_QUERY_TASK, 0, 0, 100 + nw - 1, &qresp);
		head = tmf_post(f, sub, 0, 0, 0, &resp);
		assert_int_equal(wait_used(f, 0, qhead), 1);
		qr = *(uint8_t *)gp(f, qresp, 1);
		assert_true(qr == VIRTIO_SCSI_S_FUNCTION_COMPLETE ||
			    qr == VIRTIO_SCSI_S_FUNCTION_SUCCEEDED);
		found += qr == VIRTIO_SCSI_S_FUNCTION_SUCCEEDED;
		assert_int_equal(wait_used(f, 0, head), 1);
		assert_int_equal(*(uint8_t *)gp(f, resp, 1), VIRTIO_SCSI_S_FUNCTION_COMPLETE);
		/* what the answer aborted was returned before it; the rest comes now, done */
		for (unsigned int rq = 0; rq < NRQ; rq++) {
			struct virtq_used_elem e;
			bool before = true;

			for (unsigned int i = rq; i < nw; i += NRQ) {
				if (before && !try_used(f, 2 + rq, 0, &e))
					before = false;
				if (!before && !try_used(f, 2 + rq, 25000, &e))
					fail_msg("queue %u: no completion", rq);
				for (unsigned int k = rq; k < nw; k += NRQ) {
					if (c[k].head != e.id)
						continue;
					cmd_results(f, &c[k]);
					assert_true(c[k].response == VIRTIO_SCSI_S_OK ||
						    (before &&
						     c[k].response == VIRTIO_SCSI_S_ABORTED));
					aborted += c[k].response == VIRTIO_SCSI_S_ABORTED;
				}
			}
		}
		if (sub == VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET)
			clear_ua(f, 0, 0);
	}
	print_message("%u rounds, %u aborted, %u found in flight\n", round, aborted, found);
	assert_true(aborted > 0);
	assert_true(found > 0);
}

/* Posts @n event buffers of 16 bytes; returns the first one's address. */
static uint64_t post_event_bufs(struct fx *f, unsigned int n)
{
	uint64_t b = alloc_buf(f, 16 * n);

	for (unsigned int i = 0; i < n; i++) {
		struct vpcifx_seg s = { b + 16 * i, 16, true };

		memset(gp(f, b + 16 * i, 16), 0xee, 16);
		post(f, 1, &s, 1, true);
	}
	return b;
}

static void expect_event(struct fx *f, uint64_t buf, uint32_t event, uint8_t target,
			 uint16_t lun, uint32_t reason)
{
	struct virtq_used_elem e;
	uint8_t *p;
	uint32_t ev, rs;

	assert_true(try_used(f, 1, 10000, &e));
	assert_int_equal(e.len, 16);
	p = gp(f, buf, 16);
	memcpy(&ev, p, 4);
	memcpy(&rs, p + 12, 4);
	assert_int_equal(ev, event);
	if ((event & ~VIRTIO_SCSI_T_EVENTS_MISSED) != VIRTIO_SCSI_T_NO_EVENT) {
		assert_int_equal(p[4], 1);
		assert_int_equal(p[5], target);
		assert_int_equal(((p[6] << 8) | p[7]) & 0x3fff, lun);
		assert_int_equal(rs, reason);
	}
}

static void hotplug_and_unplug_send_events(void **state)
{
	struct fx *f = *state;
	uint64_t ev = post_event_bufs(f, 2);
	uint16_t luns[8];
	unsigned int n;

	add_lun(f, NLUN);
	expect_event(f, ev, VIRTIO_SCSI_T_TRANSPORT_RESET, 0, 3, VIRTIO_SCSI_EVT_RESET_RESCAN);
	report_luns(f, 0, 0, luns, &n);
	assert_int_equal(n, 3);
	clear_ua(f, 0, 3);
	remove_lun(f, NLUN);
	expect_event(f, ev + 16, VIRTIO_SCSI_T_TRANSPORT_RESET, 0, 3,
		     VIRTIO_SCSI_EVT_RESET_REMOVED);
	report_luns(f, 0, 0, luns, &n);
	assert_int_equal(n, 2);
	/* no buffer posted: the event is dropped, the next buffer says so */
	add_lun(f, NLUN);
	ev = post_event_bufs(f, 1);
	expect_event(f, ev, VIRTIO_SCSI_T_NO_EVENT | VIRTIO_SCSI_T_EVENTS_MISSED, 0, 0, 0);
	ev = post_event_bufs(f, 1);
	remove_lun(f, NLUN);
	expect_event(f, ev, VIRTIO_SCSI_T_TRANSPORT_RESET, 0, 3, VIRTIO_SCSI_EVT_RESET_REMOVED);
}

static void resize_raises_the_unit_attention_and_the_event(void **state)
{
	struct fx *f = *state;
	uint64_t ev = post_event_bufs(f, 1), b = alloc_buf(f, 32);
	uint8_t *d = gp(f, b, 32);
	struct error *err = NULL;
	struct cmd c = { .target = 0, .lun = 2 };

	clear_ua(f, 0, 2);
	if (vscsi_lun_resize(f->lun[1], 2 * IMG, &err) < 0)
		fail_msg("vscsi_lun_resize: %s", error_msg(err));
	expect_event(f, ev, VIRTIO_SCSI_T_PARAM_CHANGE, 0, 2, 0x2a | 0x09 << 8);
	run(f, 0, &c);
	want_check(&c, SCSI_KEY_UNIT_ATTENTION, SCSI_ASC_CAPACITY_CHANGED);
	c = (struct cmd){ .target = 0, .lun = 2, .din = b, .din_len = 32 };
	c.cdb[0] = SCSI_OP_SERVICE_ACTION_IN_16;
	c.cdb[1] = SCSI_SA_READ_CAPACITY_16;
	scsi_put_be32(c.cdb + 10, 32);
	run(f, 1, &c);
	assert_int_equal(c.status, SCSI_STATUS_GOOD);
	assert_int_equal(scsi_be64(d) + 1, 2 * IMG / 512);
	/* the other LUNs saw nothing */
	c = (struct cmd){ .target = 0, .lun = 0 };
	clear_ua(f, 0, 0);
	run(f, 0, &c);
	assert_int_equal(c.status, SCSI_STATUS_GOOD);
}

/* Each request queue raises its own MSI-X vector (the driver mapped queue i to vector i+1). */
static void every_queue_raises_its_own_vector(void **state)
{
	struct fx *f = *state;
	struct vpci_dev *v = vscsi_pci(f->dev)->opaque;

	clear_ua(f, 0, 0);
	for (unsigned int rq = 0; rq < NRQ; rq++) {
		int efd = v->vectors[2 + rq + 1].efd;
		struct pollfd p = { .fd = efd, .events = POLLIN };
		struct cmd c = { .target = 0, .lun = 0 };
		eventfd_t cnt;
		struct virtq_avail *a = gp(f, f->q[2 + rq].avail, virtq_avail_bytes(QSZ));

		eventfd_read(efd, &cnt); /* clear (non-blocking) */
		__atomic_store_n(&a->ring[QSZ], f->q[2 + rq].used_seen, __ATOMIC_SEQ_CST);
		run(f, rq, &c);
		assert_int_equal(poll(&p, 1, 2000), 1);
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(config_space_describes_the_host),
		T(inquiry_and_report_luns_find_every_lun),
		T(writes_read_back_on_every_queue_and_lun),
		T(bad_cdbs_get_the_right_sense),
		T(hostile_descriptors_complete_and_the_queue_goes_on),
		T(task_management_answers_when_idle),
		T(aborts_wait_for_the_requests_in_flight),
		T(hotplug_and_unplug_send_events),
		T(resize_raises_the_unit_attention_and_the_event),
		T(every_queue_raises_its_own_vector),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
