/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-blk device: config space and the iothread data path; ownership is in virtio_blk.h. */
#include "devices/virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/io_error.h"
#include "common/util.h"
#include "devices/virtio_ioq.h"
#include "devices/virtio_pci.h"
#include "iothreads/iothread.h"

#define VBLK_CONFIG_LEN 60
#define VBLK_MAX_DISCARD_SECTORS (UINT32_MAX / VBLK_SECTOR)
#define VBLK_SIZE_MAX (1u << 20) /* largest single segment we advertise */
#define PCI_CLASS_STORAGE_SCSI 0x010000
/* buffers per chain we accept: SEG_MAX data segments + header + status */
#define VBLK_MAX_CHAIN 256

struct vblk_queue;

/* One guest request in flight; the pool of a queue holds queue_size of them. */
struct vblk_req {
	struct blockdev_req breq;
	struct vblk_queue *q;
	uint16_t head;
	uint8_t *status;
	uint32_t used_len; /* bytes written into the writable part, status included */
	bool flush_after;  /* write-through: FLUSH was not negotiated */
	struct vblk_req *next_free;
	uint64_t start_ns;  /* iothread_turn_ns at submission */
	int acct;           /* enum vblk_acct, or -1: not counted (GET_ID, zero-length) */
	uint64_t acct_len;  /* its bytes, and where it ends, kept for the statistics (a */
	uint64_t acct_end;  /* write-through write's breq becomes a FLUSH before it completes) */
	struct iovec *iov;  /* cap entries: the popped chain */
	struct iovec *data; /* cap entries: the data part */
};

struct vblk_queue {
	struct vioq ioq;            /* the virtqueue on its iothread */
	struct vblk *dev;
	struct blockdev_queue *bq;  /* shared by the device's queues on the same iothread */
	struct vblk_req *reqs;
	struct vblk_req *free;
	struct iovec *iov_pool;
	unsigned int cap;           /* iovec entries per request */
	struct vioq_counters st;    /* block statistics (vblk_get_stats) */
};

struct vblk {
	struct vpci_dev vpci;
	char name[32];
	struct blockdev *bs;
	bool read_only;
	char serial[VIRTIO_BLK_ID_BYTES];
	size_t serial_len;
	unsigned int nr_queues;
	unsigned int queue_size;
	struct vblk_queue *queues;
	/* distinct iothreads of this device and the blockdev queue on each */
	struct vioq_threads threads;
	struct blockdev_queue **bqs;
	uint8_t config[VBLK_CONFIG_LEN];
	struct vblk_limits lim; /* parser limits; features filled in at activation */
	bool writethrough;      /* the driver did not negotiate FLUSH: writes are made stable */
	uint32_t blk_size;      /* the block size the config space advertises */
	bool config_pending;    /* a node swap in a drained section changed it: tell at its end */
};

/* ---------------------------------------------------------------------------------------------
 * Data path (the queue's iothread)
 */

/* The statistics class of request type @type, or -1. */
static int acct_of(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN: return VIOQ_ACCT_READ;
	case VIRTIO_BLK_T_OUT: return VIOQ_ACCT_WRITE;
	case VIRTIO_BLK_T_FLUSH: return VIOQ_ACCT_FLUSH;
	case VIRTIO_BLK_T_DISCARD: return VIOQ_ACCT_UNMAP;
	case VIRTIO_BLK_T_WRITE_ZEROES: return VIOQ_ACCT_WRITE;
	default: return -1;
	}
}

static void req_complete(struct vblk_queue *q, struct vblk_req *r, uint8_t status)
{
	if (r->status)
		*r->status = status; /* published by virtq_push's release store */
	vioq_push(&q->ioq, r->head, r->status ? r->used_len : 0);
	r->next_free = q->free;
	q->free = r;
}

static uint8_t errno_status(int ret)
{
	if (ret == 0)
		return VIRTIO_BLK_S_OK;
	if (ret == -EOPNOTSUPP || ret == -ENOTSUP)
		return VIRTIO_BLK_S_UNSUPP;
	return VIRTIO_BLK_S_IOERR;
}

static void req_done(struct blockdev_req *breq, int ret)
{
	struct vblk_req *r = container_of(breq, struct vblk_req, breq);

	if (ret == 0 && r->flush_after) {
		/* a driver without FLUSH expects a completed write to be stable */
		r->flush_after = false;
		memset(&r->breq, 0, sizeof(r->breq));
		r->breq.op = BLOCKDEV_OP_FLUSH;
		r->breq.done = req_done;
		blockdev_submit(r->q->bq, &r->breq);
		return;
	}
	if (ret < 0 && r->breq.op == BLOCKDEV_OP_READ)
		r->used_len = 1; /* nothing valid was read */
	if (ret < 0 && errno_status(ret) == VIRTIO_BLK_S_IOERR && ret != -EINVAL)
		blockdev_io_error(r->q->dev->name, r->q->dev->bs->node_name,
				  r->breq.op != BLOCKDEV_OP_READ, ret); /* the host failed it */
	if (r->acct >= 0)
		vioq_count(&r->q->st, (unsigned int)r->acct, r->acct_len, r->start_ns,
			   iothread_turn_ns(r->q->ioq.it), ret < 0, r->acct_end);
	req_complete(r->q, r, errno_status(ret));
}

static void copy_serial(struct vblk *b, const struct vblk_parsed *p)
{
	uint8_t id[VIRTIO_BLK_ID_BYTES] = { 0 };
	const uint8_t *s = id;

	memcpy(id, b->serial, b->serial_len);
	for (unsigned int i = 0; i < p->data_cnt; i++) {
		memcpy(p->data[i].iov_base, s, p->data[i].iov_len);
		s += p->data[i].iov_len;
	}
}

/* Starts one popped request; every path ends in req_complete now or in req_done later. */
static void req_start(struct vblk_queue *q, struct vblk_req *r, const struct virtq_elem *e)
{
	struct vblk *b = q->dev;
	struct vblk_parsed p = { .data = r->data };
	enum vblk_err err = vblk_parse(e, &b->lim, &p);

	r->head = e->head;
	r->status = p.status;
	r->used_len = 1;
	r->flush_after = false;
	r->acct = -1;
	if (err != VBLK_OK) {
		/* refused after the header was read: QEMU's "invalid" requests of that class */
		if (err >= VBLK_ERR_UNALIGNED && err <= VBLK_ERR_SEG_TOO_BIG && acct_of(p.type) >= 0)
			vioq_count_invalid(&q->st, (unsigned int)acct_of(p.type));
		req_complete(q, r, vblk_err_status(err));
		return;
	}
	memset(&r->breq, 0, sizeof(r->breq));
	r->breq.done = req_done;
	switch (p.type) {
	case VIRTIO_BLK_T_IN:
		r->used_len = (uint32_t)MIN(p.len + 1, (uint64_t)UINT32_MAX);
		r->breq.op = BLOCKDEV_OP_READ;
		break;
	case VIRTIO_BLK_T_OUT:
		r->breq.op = BLOCKDEV_OP_WRITE;
		r->flush_after = b->writethrough;
		break;
	case VIRTIO_BLK_T_FLUSH:
		r->breq.op = BLOCKDEV_OP_FLUSH;
		break;
	case VIRTIO_BLK_T_DISCARD:
		r->breq.op = BLOCKDEV_OP_DISCARD;
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		r->breq.op = BLOCKDEV_OP_WRITE_ZEROES;
		if (p.seg_flags & VIRTIO_BLK_SEG_F_UNMAP)
			r->breq.flags = BLOCKDEV_ZERO_MAY_UNMAP;
		break;
	case VIRTIO_BLK_T_GET_ID:
		copy_serial(b, &p);
		r->used_len = (uint32_t)p.len + 1;
		req_complete(q, r, VIRTIO_BLK_S_OK);
		return;
	}
	r->breq.offset = p.offset;
	r->breq.len = p.len;
	if (r->breq.op == BLOCKDEV_OP_READ || r->breq.op == BLOCKDEV_OP_WRITE) {
		if (p.data_cnt == 0) { /* zero-length transfer: nothing to do */
			req_complete(q, r, VIRTIO_BLK_S_OK);
			return;
		}
		r->breq.iov = p.data;
		r->breq.iovcnt = (int)p.data_cnt;
	}
	if ((r->breq.op == BLOCKDEV_OP_DISCARD || r->breq.op == BLOCKDEV_OP_WRITE_ZEROES) &&
	    p.len == 0) {
		req_complete(q, r, VIRTIO_BLK_S_OK);
		return;
	}
	r->acct = acct_of(p.type);
	r->acct_len = r->breq.len;
	r->acct_end = r->breq.offset + r->breq.len;
	r->start_ns = iothread_turn_ns(q->ioq.it);
	blockdev_submit(q->bq, &r->breq);
}

static int queue_poll(struct iothread_source *src)
{
	struct vblk_queue *q = container_of(src, struct vblk_queue, ioq.src);
	int n = 0;

	while (q->free) {
		struct vblk_req *r = q->free;
		struct virtq_elem e = { .iov = r->iov, .cap = q->cap };
		int ret = vioq_pop(&q->ioq, &e);

		if (ret <= 0)
			break;
		q->free = r->next_free;
		n++;
		req_start(q, r, &e);
	}
	/*
	 * Requests completed right here (parse errors, GET_ID) have no CQE that would make the
	 * iothread call flush() this turn: raise their interrupt now.
	 */
	vioq_flush(&q->ioq);
	return n;
}

/* ---------------------------------------------------------------------------------------------
 * Control plane (vCPU thread under the vpci lock, or main)
 */

static void config_read(void *opaque, uint32_t off, void *data, unsigned int len)
{
	struct vblk *b = opaque;

	memcpy(data, &b->config[off], len);
}

static void pool_reset(struct vblk_queue *q)
{
	q->free = NULL;
	for (unsigned int i = q->dev->queue_size; i-- > 0;) {
		q->reqs[i].next_free = q->free;
		q->free = &q->reqs[i];
	}
}

void vblk_get_stats(const struct vblk *b, struct vioq_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < b->nr_queues; i++)
		vioq_counters_sum(&b->queues[i].st, st);
}

unsigned int vblk_nr_queues(const struct vblk *b)
{
	return b->nr_queues;
}

/* On the queue's iothread: chains popped and not completed. */
static unsigned int queue_inuse(void *arg)
{
	struct vblk_queue *q = arg;
	unsigned int free = 0;

	for (struct vblk_req *r = q->free; r; r = r->next_free)
		free++;
	return q->dev->queue_size - free;
}

int vblk_queue_status(struct vblk *b, unsigned int index, struct vioq_status *st,
		      struct error **errp)
{
	if (index >= b->nr_queues) {
		error_setg(errp, "%s has %u queues: there is no queue %u", b->name, b->nr_queues,
			   index);
		return -1;
	}
	return vioq_get_status(&b->queues[index].ioq, b->queue_size, queue_inuse,
			       &b->queues[index], st, errp);
}

/*
 * Under the vpci lock: stop taking guest requests on every queue, then wait for what is in
 * flight. Afterwards no iothread touches the device until its sources are added again.
 */
static void drain_all(struct vblk *b)
{
	for (unsigned int i = 0; i < b->nr_queues; i++)
		vioq_pause(&b->queues[i].ioq);
	vioq_bqs_drain(&b->threads, b->bqs, b->name);
}

static void vblk_reset(void *opaque, struct vpci_dev *v)
{
	struct vblk *b = opaque;

	drain_all(b);
	for (unsigned int i = 0; i < b->nr_queues; i++)
		b->queues[i].ioq.running = false;
}

static int vblk_activate(void *opaque, struct vpci_dev *v)
{
	struct vblk *b = opaque;

	b->lim.discard = vpci_has_feature(v, VIRTIO_BLK_F_DISCARD);
	b->lim.write_zeroes = vpci_has_feature(v, VIRTIO_BLK_F_WRITE_ZEROES);
	b->writethrough = !vpci_has_feature(v, VIRTIO_BLK_F_FLUSH);
	for (unsigned int i = 0; i < b->nr_queues; i++) {
		struct vblk_queue *q = &b->queues[i];
		struct error *err = NULL;

		if (!v->queues[i].enabled)
			continue;
		pool_reset(q);
		if (vioq_start(&q->ioq, queue_poll, &err) < 0) {
			fprintf(stderr, "vireo: %s: queue %u: %s\n", b->name, i, error_msg(err));
			error_free(err);
			goto fail;
		}
	}
	return 0;
fail:
	vblk_reset(b, v);
	return -EIO;
}

static const struct virtio_device_ops vblk_ops = {
	.config_read = config_read,
	.config_write = NULL, /* no writable fields: CONFIG_WCE is not offered */
	.activate = vblk_activate,
	.reset = vblk_reset,
};

/* struct virtio_blk_config, up to write_zeroes_may_unmap and its padding */
static void config_fill(struct vblk *b, uint32_t blk_size, uint32_t seg_max)
{
	uint8_t *c = b->config;
	uint32_t align_sectors = blk_size / VBLK_SECTOR;

	memset(c, 0, sizeof(b->config));
	vio_put_le64(c + 0, b->lim.capacity);
	vio_put_le32(c + 8, VBLK_SIZE_MAX);
	vio_put_le32(c + 12, seg_max);
	/* geometry (16..19) left 0: not offered */
	vio_put_le32(c + 20, blk_size);
	c[24] = 0;            /* physical_block_exp: one logical block per physical block */
	c[25] = 0;            /* alignment_offset */
	vio_put_le16(c + 26, 1);  /* min_io_size, in logical blocks */
	vio_put_le32(c + 28, 0);  /* opt_io_size */
	c[32] = 0;            /* writeback (CONFIG_WCE not offered) */
	vio_put_le16(c + 34, (uint16_t)b->nr_queues);
	vio_put_le32(c + 36, VBLK_MAX_DISCARD_SECTORS);
	vio_put_le32(c + 40, VBLK_MAX_SEGS);
	vio_put_le32(c + 44, align_sectors);
	vio_put_le32(c + 48, VBLK_MAX_DISCARD_SECTORS);
	vio_put_le32(c + 52, VBLK_MAX_SEGS);
	c[56] = 1; /* write_zeroes_may_unmap */
}

static void vblk_free(struct vblk *b)
{
	if (b->bqs)
		vioq_bqs_free(&b->threads, b->bqs);
	if (b->queues)
		for (unsigned int i = 0; i < b->nr_queues; i++) {
			free(b->queues[i].reqs);
			free(b->queues[i].iov_pool);
		}
	free(b->queues);
	free(b->threads.its);
	free(b->bqs);
	free(b);
}

static int queues_init(struct vblk *b, const struct vblk_opts *o, struct error **errp)
{
	b->queues = calloc(b->nr_queues, sizeof(*b->queues));
	b->threads.its = calloc(b->nr_queues, sizeof(*b->threads.its));
	b->bqs = calloc(b->nr_queues, sizeof(*b->bqs));
	if (!b->queues || !b->threads.its || !b->bqs)
		goto oom;
	for (unsigned int i = 0; i < b->nr_queues; i++)
		vioq_threads_add(&b->threads, o->iothreads[i]);
	if (vioq_bqs_new(&b->threads, b->bs, b->bqs, errp) < 0)
		return -1;
	for (unsigned int i = 0; i < b->nr_queues; i++) {
		struct vblk_queue *q = &b->queues[i];
		int j = vioq_threads_find(&b->threads, o->iothreads[i]);

		q->dev = b;
		q->ioq = (struct vioq){ .vpci = &b->vpci, .name = b->name, .index = i,
					.it = o->iothreads[i] };
		q->bq = b->bqs[j];
		q->cap = MIN(b->queue_size, VBLK_MAX_CHAIN);
		q->reqs = calloc(b->queue_size, sizeof(*q->reqs));
		q->iov_pool = calloc((size_t)b->queue_size * 2 * q->cap, sizeof(*q->iov_pool));
		if (!q->reqs || !q->iov_pool)
			goto oom;
		for (unsigned int r = 0; r < b->queue_size; r++) {
			q->reqs[r].q = q;
			q->reqs[r].iov = &q->iov_pool[(size_t)r * 2 * q->cap];
			q->reqs[r].data = q->reqs[r].iov + q->cap;
		}
	}
	return 0;
oom:
	error_setg(errp, "%s: out of memory for %u queues of %u", b->name, b->nr_queues,
		   b->queue_size);
	return -1;
}

struct vblk *vblk_create(const struct vpci_host *host, const char *name,
			 const struct vblk_opts *o, struct error **errp)
{
	struct vblk *b;
	uint64_t features;
	uint32_t blk_size;

	if (vioq_check_geometry(name, o->num_queues, VPCI_MAX_QUEUES - 1, o->queue_size,
				errp) < 0)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b) {
		error_setg(errp, "%s: out of memory", name);
		return NULL;
	}
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->bs = o->bs;
	b->read_only = o->read_only || o->bs->read_only;
	b->nr_queues = o->num_queues;
	b->queue_size = o->queue_size;
	if (o->serial) {
		b->serial_len = MIN(strlen(o->serial), sizeof(b->serial));
		memcpy(b->serial, o->serial, b->serial_len);
	}
	blk_size = MAX(VBLK_SECTOR, o->bs->file ? o->bs->file->align : o->bs->align);
	b->blk_size = blk_size;
	b->lim = (struct vblk_limits){
		.capacity = o->bs->size / VBLK_SECTOR,
		.read_only = b->read_only,
		.max_discard_sectors = VBLK_MAX_DISCARD_SECTORS,
		.max_write_zeroes_sectors = VBLK_MAX_DISCARD_SECTORS,
		.max_segs = VBLK_MAX_SEGS,
	};
	config_fill(b, blk_size, MIN(b->queue_size, VBLK_MAX_CHAIN) - 2);
	if (queues_init(b, o, errp) < 0)
		goto err;
	features = 1ull << VIRTIO_BLK_F_SIZE_MAX | 1ull << VIRTIO_BLK_F_SEG_MAX |
		   1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |
		   1ull << VIRTIO_BLK_F_TOPOLOGY | 1ull << VIRTIO_BLK_F_MQ;
	if (b->read_only)
		features |= 1ull << VIRTIO_BLK_F_RO;
	else
		features |= 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	if (vpci_init(&b->vpci, host, b->name, VIRTIO_ID_BLOCK, PCI_CLASS_STORAGE_SCSI, features,
		      b->nr_queues, (uint16_t)b->queue_size, VBLK_CONFIG_LEN, &vblk_ops, b,
		      errp) < 0)
		goto err;
	for (unsigned int i = 0; i < b->nr_queues; i++)
		b->queues[i].ioq.vq = &b->vpci.queues[i].vq;
	return b;
err:
	vblk_free(b);
	return NULL;
}

/* Under the vpci lock, after drain_all: the running queues take guest requests again. */
static void resume_all(struct vblk *b)
{
	for (unsigned int i = 0; i < b->nr_queues; i++)
		vioq_resume(&b->queues[i].ioq);
}

int vblk_resize(struct vblk *b, uint64_t size, struct error **errp)
{
	int ret;

	pthread_mutex_lock(&b->vpci.lock);
	drain_all(b);
	ret = blockdev_truncate(b->bs, size, errp);
	if (!ret) {
		/* no iothread reads lim or config now: adding the sources back publishes them */
		b->lim.capacity = b->bs->size / VBLK_SECTOR;
		vio_put_le64(b->config, b->lim.capacity);
	}
	resume_all(b);
	pthread_mutex_unlock(&b->vpci.lock);
	if (!ret)
		vpci_config_changed(&b->vpci); /* the driver rereads the capacity */
	return ret;
}

/* May the device serve @bs instead of its node? */
static int node_fits(const struct vblk *b, const struct blockdev *bs, struct error **errp)
{
	uint32_t blk_size = MAX(VBLK_SECTOR, bs->file ? bs->file->align : bs->align);

	if (!b->read_only && bs->read_only) {
		error_setg(errp, "%s: node '%s' is read-only and the device is not", b->name,
			   bs->node_name);
		return -1;
	}
	if (blk_size != b->blk_size) {
		error_setg(errp, "%s: node '%s' has %u-byte blocks, the device %u-byte ones", b->name,
			   bs->node_name, blk_size, b->blk_size);
		return -1;
	}
	return 0;
}

/* Moves the device's blockdev queues to @bs (vpci lock held, everything drained). */
static int swap_node(struct vblk *b, struct blockdev *bs, struct error **errp)
{
	struct blockdev_queue **bqs = calloc(b->threads.n, sizeof(*bqs));
	int ret = -1;

	if (!bqs) {
		error_setg(errp, "%s: out of memory", b->name);
		return -1;
	}
	if (vioq_bqs_new(&b->threads, bs, bqs, errp) == 0) {
		/* nothing in flight, no source on any iothread: swap, then free the old queues */
		for (unsigned int k = 0; k < b->nr_queues; k++)
			b->queues[k].bq = bqs[vioq_threads_find(&b->threads, b->queues[k].ioq.it)];
		vioq_bqs_free(&b->threads, b->bqs);
		memcpy(b->bqs, bqs, b->threads.n * sizeof(*bqs));
		b->bs = bs;
		b->lim.capacity = bs->size / VBLK_SECTOR;
		vio_put_le64(b->config, b->lim.capacity);
		ret = 0;
	}
	free(bqs);
	return ret;
}

int vblk_set_node(struct vblk *b, struct blockdev *bs, struct error **errp)
{
	int ret;

	if (node_fits(b, bs, errp) < 0)
		return -1;
	pthread_mutex_lock(&b->vpci.lock);
	drain_all(b);
	ret = swap_node(b, bs, errp);
	resume_all(b);
	pthread_mutex_unlock(&b->vpci.lock);
	if (!ret)
		vpci_config_changed(&b->vpci);
	return ret;
}

int vblk_set_node_drained(struct vblk *b, struct blockdev *bs, struct error **errp)
{
	if (node_fits(b, bs, errp) < 0 || swap_node(b, bs, errp) < 0)
		return -1;
	b->config_pending = true; /* told when the section ends */
	return 0;
}

static void vblk_drained_begin(void *opaque)
{
	struct vblk *b = opaque;

	pthread_mutex_lock(&b->vpci.lock);
	drain_all(b);
}

static void vblk_drained_end(void *opaque)
{
	struct vblk *b = opaque;
	bool changed = b->config_pending;

	vioq_bqs_forget(&b->threads, b->bqs);
	b->config_pending = false;
	resume_all(b);
	pthread_mutex_unlock(&b->vpci.lock);
	if (changed)
		vpci_config_changed(&b->vpci);
}

const struct blockdev_user_ops vblk_drain_ops = {
	.drained_begin = vblk_drained_begin,
	.drained_end = vblk_drained_end,
};

struct pci_device *vblk_pci(struct vblk *b)
{
	return &b->vpci.pci;
}

void vblk_destroy(struct vblk *b)
{
	if (!b)
		return;
	vpci_destroy(&b->vpci); /* resets the device: sources removed, requests drained */
	vblk_free(b);
}
