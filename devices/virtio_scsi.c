/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-scsi device: config space, the request / control / event queues on their iothreads;
 * ownership and the task management protocol are in virtio_scsi.h. */
#include "devices/virtio_scsi.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "common/util.h"
#include "devices/scsi_disk.h"
#include "devices/virtio_pci.h"
#include "iothreads/iothread.h"

#define PCI_CLASS_STORAGE_SCSI 0x010000
#define VSCSI_MAX_CHAIN 256 /* buffers per chain we accept: seg_max + header + response */
#define VSCSI_EVQ_CAP 8     /* buffers of an event chain looked at */
#define Q_CTRL 0
#define Q_EVENT 1
#define Q_REQ0 2

struct vscsi_queue;
struct vscsi_tmf;

/* One guest request in flight; the pool of a queue holds queue_size of them. */
struct vscsi_req {
	struct scsi_req sr;
	struct vscsi_queue *q;
	struct vscsi_lun *lun;  /* executing on this LUN, NULL: answered by the transport */
	struct vscsi_req *next_free;
	uint16_t head;
	uint8_t response;
	bool inflight;          /* submitted to the LUN, done() owed */
	bool aborted;           /* a TMF aborted it: response ABORTED */
	uint64_t tag;
	uint64_t seq;           /* its queue's submission count when it started */
	struct iovec *resp;     /* the writable part, the response first */
	unsigned int resp_cnt;
	uint32_t sense_size;
	bool data_in;           /* the command's data moves to the driver */
	int acct;               /* enum vioq_acct, or -1 */
	uint64_t acct_end, start_ns;
	struct iovec *iov;      /* cap entries: the popped chain */
	struct iovec *data;     /* cap entries: data-out, data-in */
};

/* A TMF's visit to one request queue (see virtio_scsi.h). */
struct vscsi_visit {
	struct vscsi_tmf *tmf;
	struct vscsi_queue *q;
	uint64_t limit;         /* requests started before it (seq < limit) are looked at */
	struct vscsi_visit *next;
};

struct vscsi_queue {
	struct vioq ioq;
	struct vscsi *dev;
	unsigned int tix;       /* its iothread's index in dev->threads */
	struct vscsi_req *reqs, *free;
	struct iovec *iov_pool;
	unsigned int cap;
	uint64_t seq;           /* requests started (iothread) */
	struct vscsi_visit *visits; /* TMF visits waiting for aborted requests (iothread) */
};

struct vscsi_tmf {
	struct vscsi *dev;
	struct vscsi_tmf *next_free;
	uint16_t head;
	struct iovec iov[VSCSI_EVQ_CAP];
	struct iovec *resp;
	unsigned int resp_cnt;
	uint32_t subtype;
	struct vscsi_lun *lun;  /* LUN-scoped functions; NULL: the whole target */
	uint8_t target;
	uint64_t tag;
	_Atomic unsigned int pending;
	_Atomic bool found;
	struct vscsi_visit *visits; /* one per request queue */
};

struct vscsi_lun {
	struct vscsi *dev;
	uint8_t target;
	uint16_t lun;
	struct scsi_disk *disk;
	struct blockdev *bs;
	struct blockdev_queue **bqs;    /* per iothread of the device */
	struct vioq_counters *st;       /* per request queue */
};

struct vscsi {
	struct vpci_dev vpci;
	char name[32];
	unsigned int nr_queues;         /* request queues */
	unsigned int queue_size;
	struct vscsi_queue *queues;
	struct vioq ctrl, evq;
	struct vscsi_tmf *tmfs, *tmf_free;
	struct iovec ev_iov[VSCSI_EVQ_CAP];
	bool ev_missed;                 /* an event was dropped (event queue's iothread) */
	struct vioq_threads threads;
	struct vscsi_lun *luns[VSCSI_MAX_LUNS];
	unsigned int nr_luns;
	_Atomic uint32_t cdb_size, sense_size;
	unsigned int drain_nest;        /* drained sections open over its LUNs (control plane) */
};

/* ---------------------------------------------------------------------------------------------
 * LUN table (read by the iothreads, changed only with the queues drained)
 */

static struct vscsi_lun *lun_find(const struct vscsi *s, uint8_t target, uint16_t lun)
{
	for (unsigned int i = 0; i < s->nr_luns; i++)
		if (s->luns[i]->target == target && s->luns[i]->lun == lun)
			return s->luns[i];
	return NULL;
}

static struct vscsi_lun *target_any(const struct vscsi *s, uint8_t target)
{
	for (unsigned int i = 0; i < s->nr_luns; i++)
		if (s->luns[i]->target == target)
			return s->luns[i];
	return NULL;
}

/* REPORT LUNS of a LUN's target (scsi_disk's list_luns). */
static size_t list_luns(void *opaque, uint16_t *luns, size_t max)
{
	struct vscsi_lun *l = opaque;
	size_t n = 0;

	for (unsigned int i = 0; i < l->dev->nr_luns && n < max; i++)
		if (l->dev->luns[i]->target == l->target)
			luns[n++] = l->dev->luns[i]->lun;
	return n;
}

/* ---------------------------------------------------------------------------------------------
 * Request queues (their iothreads)
 */

static void visits_check(struct vscsi_queue *q);

static void req_free(struct vscsi_queue *q, struct vscsi_req *r)
{
	r->next_free = q->free;
	q->free = r;
}

/* Writes the response, returns the chain and the request to the pool. */
static void cmd_complete(struct vscsi_queue *q, struct vscsi_req *r)
{
	uint8_t h[VIRTIO_SCSI_RESP_HDR_SIZE];
	uint32_t sense_len = 0;
	uint64_t used = VIRTIO_SCSI_RESP_HDR_SIZE + (uint64_t)r->sense_size;

	if (r->aborted)
		r->response = VIRTIO_SCSI_S_ABORTED;
	if (r->response == VIRTIO_SCSI_S_OK && r->sr.status != SCSI_STATUS_GOOD)
		sense_len = MIN((uint32_t)r->sr.sense_len, r->sense_size);
	vio_put_le32(h, sense_len);
	vio_put_le32(h + 4, (uint32_t)MIN(r->sr.residual, (uint64_t)UINT32_MAX));
	h[8] = h[9] = 0; /* status_qualifier */
	h[10] = r->response == VIRTIO_SCSI_S_OK ? r->sr.status : 0;
	h[11] = r->response;
	vioq_iov_from_buf(r->resp, r->resp_cnt, 0, h, sizeof(h));
	vioq_iov_from_buf(r->resp, r->resp_cnt, sizeof(h), r->sr.sense, sense_len);
	if (r->response == VIRTIO_SCSI_S_OK && r->data_in)
		used += r->sr.xfer;
	vioq_push(&q->ioq, r->head, (uint32_t)MIN(used, (uint64_t)UINT32_MAX));
	req_free(q, r);
}

/* A response of the transport's own, nothing executed: every buffer byte is residual. */
static void cmd_fail(struct vscsi_queue *q, struct vscsi_req *r, uint8_t response,
		     uint64_t residual)
{
	r->response = response;
	r->sr.residual = residual;
	cmd_complete(q, r);
}

static void cmd_done(struct scsi_req *sr)
{
	struct vscsi_req *r = container_of(sr, struct vscsi_req, sr);
	struct vscsi_queue *q = r->q;

	r->inflight = false;
	if (r->acct >= 0)
		vioq_count(&r->lun->st[q->ioq.index - Q_REQ0], (unsigned int)r->acct, sr->xfer,
			   r->start_ns, iothread_turn_ns(q->ioq.it), sr->status != SCSI_STATUS_GOOD,
			   r->acct_end);
	cmd_complete(q, r);
	if (q->visits)
		visits_check(q);
}

/* A CHECK CONDITION the transport answers itself (a LUN that does not exist). */
static void check_condition(struct vscsi_req *r, struct scsi_sense_err e, uint64_t bufs)
{
	r->sr.status = SCSI_STATUS_CHECK_CONDITION;
	r->sr.sense_len = (uint8_t)scsi_sense_build(r->sr.sense, sizeof(r->sr.sense), false, &e);
	r->sr.residual = bufs;
}

/* Copies @n bytes of @buf to data-in; the rest of the buffers is residual. */
static void data_in(struct vscsi_req *r, const uint8_t *buf, uint64_t n, uint64_t din_len)
{
	n = MIN(n, din_len);
	vioq_iov_from_buf(r->sr.din, r->sr.din_cnt, 0, buf, n);
	r->data_in = true;
	r->sr.status = SCSI_STATUS_GOOD;
	r->sr.xfer = n;
	r->sr.residual = din_len - n;
}

/*
 * A command to a LUN that does not exist on an existing target (SPC-4 and Linux's scan):
 * INQUIRY answers peripheral qualifier 3, REQUEST SENSE returns LOGICAL UNIT NOT SUPPORTED
 * as its data, anything else gets it as a CHECK CONDITION. REPORT LUNS goes to a LUN of the
 * target (the caller's job).
 */
static void no_lun(struct vscsi_req *r, const struct vscsi_cmd_parsed *p)
{
	struct scsi_sense_err e = scsi_sense(SCSI_KEY_ILLEGAL_REQUEST, SCSI_ASC_LUN_NOT_SUPPORTED);
	uint64_t bufs = p->din_len + p->dout_len;
	uint8_t buf[36] = { 0 };
	size_t alloc;

	if (p->cdb_len >= 6 && p->cdb[0] == SCSI_OP_INQUIRY && p->dout_len == 0) {
		if (p->cdb[1] & 1) { /* EVPD: no pages for a LUN that is not there */
			check_condition(r, scsi_sense_cdb_field(1, 0), bufs);
			return;
		}
		alloc = scsi_be16(p->cdb + 3);
		buf[0] = 0x7f; /* qualifier 3 (not capable of a LUN here), type 1Fh */
		buf[2] = 0x05; /* SPC-3 */
		buf[3] = 0x02; /* response data format */
		buf[4] = sizeof(buf) - 5;
		memcpy(buf + 8, "VIREO   ", 8);
		memset(buf + 16, ' ', 16);
		memcpy(buf + 32, "1.0 ", 4);
		data_in(r, buf, MIN(alloc, sizeof(buf)), p->din_len);
		return;
	}
	if (p->cdb_len >= 6 && p->cdb[0] == SCSI_OP_REQUEST_SENSE && p->dout_len == 0) {
		alloc = p->cdb[4];
		data_in(r, r->sr.sense,
			MIN(alloc, scsi_sense_build(r->sr.sense, sizeof(r->sr.sense), false, &e)),
			p->din_len);
		r->sr.sense_len = 0;
		return;
	}
	check_condition(r, e, bufs);
}

/* The statistics class of a CDB by its opcode, or -1. */
static int acct_of(uint8_t opcode)
{
	switch (opcode) {
	case SCSI_OP_READ_6: case SCSI_OP_READ_10: case SCSI_OP_READ_12: case SCSI_OP_READ_16:
		return VIOQ_ACCT_READ;
	case SCSI_OP_WRITE_6: case SCSI_OP_WRITE_10: case SCSI_OP_WRITE_12: case SCSI_OP_WRITE_16:
	case SCSI_OP_WRITE_SAME_10: case SCSI_OP_WRITE_SAME_16:
		return VIOQ_ACCT_WRITE;
	case SCSI_OP_SYNC_CACHE_10: case SCSI_OP_SYNC_CACHE_16:
		return VIOQ_ACCT_FLUSH;
	case SCSI_OP_UNMAP:
		return VIOQ_ACCT_UNMAP;
	default:
		return -1;
	}
}

/*
 * Whether the buffers fit the command (QEMU's rule): data the wrong way, a write with less
 * data-out than its transfer, a read with less data-in than its blocks are an OVERRUN,
 * refused before anything executes. Data-in commands with an allocation length may get
 * less room than they asked (the data is cut). Also fills the statistics fields.
 */
static bool buffers_fit(struct vscsi_req *r, const struct vscsi_lun *l,
			const struct vscsi_cmd_parsed *p, struct scsi_cmd *c, bool *parsed)
{
	const struct scsi_geom *g = scsi_disk_geom(l->disk);
	struct scsi_sense_err e;

	r->acct = acct_of(p->cdb_len ? p->cdb[0] : 0xff);
	*parsed = scsi_cdb_parse(p->cdb, p->cdb_len, g, c, &e);
	if (!*parsed) {
		if (r->acct >= 0 && e.key != SCSI_KEY_UNIT_ATTENTION)
			vioq_count_invalid(&l->st[r->q->ioq.index - Q_REQ0], (unsigned int)r->acct);
		r->acct = -1;
		return true; /* the LUN reports it (after a pending unit attention) */
	}
	r->data_in = c->dir == SCSI_DIR_IN;
	r->acct_end = (c->lba + c->nblocks) * g->block_size;
	switch (c->dir) {
	case SCSI_DIR_OUT:
		return p->din_len == 0 && p->dout_len >= c->xfer_len;
	case SCSI_DIR_IN:
		return p->dout_len == 0 && (c->kind != SCSI_K_READ || p->din_len >= c->xfer_len);
	default:
		return p->din_len == 0 && p->dout_len == 0;
	}
}

/* Starts one popped request; every path ends in cmd_complete now or in cmd_done later. */
static void cmd_start(struct vscsi_queue *q, struct vscsi_req *r, const struct virtq_elem *e)
{
	struct vscsi *s = q->dev;
	uint32_t sense_size = atomic_load_explicit(&s->sense_size, memory_order_relaxed);
	uint32_t cdb_size = atomic_load_explicit(&s->cdb_size, memory_order_relaxed);
	struct vscsi_cmd_parsed p;
	struct scsi_cmd c;
	bool parsed;
	enum vscsi_err err = vscsi_parse_cmd(e, cdb_size, sense_size, r->data, &p);
	struct vscsi_lun *l;
	uint16_t lun;
	uint8_t target;

	r->head = e->head;
	r->lun = NULL;
	r->aborted = r->inflight = r->data_in = false;
	r->acct = -1;
	r->response = VIRTIO_SCSI_S_OK;
	r->resp = p.resp;
	r->resp_cnt = p.resp_cnt;
	r->sense_size = sense_size;
	r->sr.status = SCSI_STATUS_GOOD;
	r->sr.sense_len = 0;
	r->sr.xfer = r->sr.residual = r->sr.overflow = 0;
	if (err != VSCSI_OK) {
		if (!p.resp_ok) {
			vioq_push(&q->ioq, r->head, 0);
			req_free(q, r);
			return;
		}
		cmd_fail(q, r, VIRTIO_SCSI_S_FAILURE, 0);
		return;
	}
	r->tag = p.tag;
	memcpy(r->sr.cdb, p.cdb, p.cdb_len);
	r->sr.cdb_len = p.cdb_len;
	r->sr.din = p.din;
	r->sr.din_cnt = p.din_cnt;
	r->sr.dout = p.dout;
	r->sr.dout_cnt = p.dout_cnt;
	r->sr.done = cmd_done;
	if (!vscsi_lun_decode(p.lun, &target, &lun) || !target_any(s, target)) {
		cmd_fail(q, r, VIRTIO_SCSI_S_BAD_TARGET, p.din_len + p.dout_len);
		return;
	}
	l = lun_find(s, target, lun);
	if (!l && p.cdb_len && p.cdb[0] == SCSI_OP_REPORT_LUNS)
		l = target_any(s, target); /* the target answers, LUN 0 there or not */
	if (!l) {
		no_lun(r, &p);
		cmd_complete(q, r);
		return;
	}
	if (!buffers_fit(r, l, &p, &c, &parsed)) {
		cmd_fail(q, r, VIRTIO_SCSI_S_OVERRUN, p.din_len + p.dout_len);
		return;
	}
	r->lun = l;
	r->seq = q->seq++;
	r->start_ns = iothread_turn_ns(q->ioq.it);
	r->inflight = true;
	/* parsed once, here: the LUN does not parse the CDB again */
	if (scsi_disk_submit_parsed(l->disk, l->bqs[q->tix], &r->sr, parsed ? &c : NULL))
		cmd_done(&r->sr); /* completed inline */
}

static int queue_poll(struct iothread_source *src)
{
	struct vscsi_queue *q = container_of(src, struct vscsi_queue, ioq.src);
	int n = 0;

	while (q->free) {
		struct vscsi_req *r = q->free;
		struct virtq_elem e = { .iov = r->iov, .cap = q->cap };

		if (vioq_pop(&q->ioq, &e) <= 0)
			break;
		q->free = r->next_free;
		n++;
		cmd_start(q, r, &e);
	}
	/* requests completed right here have no CQE that would flush this turn */
	vioq_flush(&q->ioq);
	return n;
}

/* ---------------------------------------------------------------------------------------------
 * Task management: visits on the request queues' iothreads, the rest on the control queue's
 */

static void tmf_finish(struct vscsi_tmf *t);

static bool tmf_by_tag(uint32_t subtype)
{
	return subtype == VIRTIO_SCSI_T_TMF_ABORT_TASK || subtype == VIRTIO_SCSI_T_TMF_QUERY_TASK;
}

static bool tmf_is_query(uint32_t subtype)
{
	return subtype == VIRTIO_SCSI_T_TMF_QUERY_TASK ||
	       subtype == VIRTIO_SCSI_T_TMF_QUERY_TASK_SET;
}

static bool tmf_matches(const struct vscsi_visit *v, const struct vscsi_req *r)
{
	const struct vscsi_tmf *t = v->tmf;

	if (!r->inflight || r->seq >= v->limit)
		return false;
	if (t->lun ? r->lun != t->lun : r->lun->target != t->target)
		return false;
	return !tmf_by_tag(t->subtype) || r->tag == t->tag;
}

static void fin_on_ctrl(void *arg)
{
	tmf_finish(arg);
}

/* Drops one count of @t; the last one finishes it on the control queue's iothread. */
static void tmf_put(struct vscsi_tmf *t)
{
	/* acq_rel: what each visit did (found, requests returned) happens before the finish */
	if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) != 1)
		return;
	if (iothread_is_current(t->dev->ctrl.it))
		tmf_finish(t);
	else if (iothread_post(t->dev->ctrl.it, fin_on_ctrl, t) < 0)
		fprintf(stderr, "vireo: %s: cannot answer a TMF: out of memory\n", t->dev->name);
}

/* Whether a request the visit waits for is still in flight on its queue. */
static bool visit_waits(const struct vscsi_visit *v)
{
	for (unsigned int i = 0; i < v->q->dev->queue_size; i++)
		if (tmf_matches(v, &v->q->reqs[i]))
			return true;
	return false;
}

static void visits_check(struct vscsi_queue *q)
{
	struct vscsi_visit **pp = &q->visits;

	while (*pp) {
		struct vscsi_visit *v = *pp;

		if (visit_waits(v)) {
			pp = &v->next;
			continue;
		}
		*pp = v->next;
		tmf_put(v->tmf);
	}
}

/* On the request queue's iothread: mark what the TMF names, wait for aborted ones. */
static void visit_run(void *arg)
{
	struct vscsi_visit *v = arg;
	struct vscsi_queue *q = v->q;
	bool query = tmf_is_query(v->tmf->subtype), wait = false;

	v->limit = q->seq;
	for (unsigned int i = 0; i < q->dev->queue_size; i++) {
		struct vscsi_req *r = &q->reqs[i];

		if (!tmf_matches(v, r))
			continue;
		if (query) {
			atomic_store_explicit(&v->tmf->found, true, memory_order_relaxed);
		} else {
			r->aborted = true;
			wait = true;
		}
	}
	if (!wait) {
		tmf_put(v->tmf);
		return;
	}
	v->next = q->visits;
	q->visits = v;
}

static void tmf_answer(struct vscsi *s, struct vscsi_tmf *t, uint8_t response)
{
	vioq_iov_from_buf(t->resp, t->resp_cnt, 0, &response, 1);
	vioq_push(&s->ctrl, t->head, 1);
	vioq_flush(&s->ctrl);
	t->next_free = s->tmf_free;
	s->tmf_free = t;
}

/* On the control queue's iothread, after every visit: resets, then the answer. */
static void tmf_finish(struct vscsi_tmf *t)
{
	struct vscsi *s = t->dev;
	uint8_t response = VIRTIO_SCSI_S_FUNCTION_COMPLETE;

	if (t->subtype == VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET)
		scsi_disk_reset(t->lun->disk);
	if (t->subtype == VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET)
		for (unsigned int i = 0; i < s->nr_luns; i++)
			if (s->luns[i]->target == t->target)
				scsi_disk_reset(s->luns[i]->disk);
	if (tmf_is_query(t->subtype) && atomic_load_explicit(&t->found, memory_order_relaxed))
		response = VIRTIO_SCSI_S_FUNCTION_SUCCEEDED;
	tmf_answer(s, t, response);
}

/* Starts a TMF: a visit to every running request queue, then the starter's count dropped. */
static void tmf_start(struct vscsi *s, struct vscsi_tmf *t)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < s->nr_queues; i++)
		n += s->queues[i].ioq.running;
	atomic_store_explicit(&t->found, false, memory_order_relaxed);
	atomic_store_explicit(&t->pending, n + 1, memory_order_relaxed);
	for (unsigned int i = 0; i < s->nr_queues; i++) {
		struct vscsi_visit *v = &t->visits[i];

		if (!s->queues[i].ioq.running)
			continue;
		*v = (struct vscsi_visit){ .tmf = t, .q = &s->queues[i] };
		/* the post's lock orders the TMF's fields before the visit reads them */
		if (iothread_post(v->q->ioq.it, visit_run, v) < 0)
			tmf_put(t); /* out of memory: that queue is not looked at */
	}
	tmf_put(t);
}

static void tmf_request(struct vscsi *s, struct vscsi_tmf *t, const struct vscsi_ctrl_parsed *p)
{
	uint16_t lun;
	bool have_target = vscsi_lun_decode(p->lun, &t->target, &lun) && target_any(s, t->target);

	t->subtype = p->subtype;
	t->tag = p->tag;
	t->lun = NULL;
	switch (p->subtype) {
	case VIRTIO_SCSI_T_TMF_ABORT_TASK:
	case VIRTIO_SCSI_T_TMF_ABORT_TASK_SET:
	case VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET:
	case VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET:
	case VIRTIO_SCSI_T_TMF_QUERY_TASK:
	case VIRTIO_SCSI_T_TMF_QUERY_TASK_SET:
		if (!have_target) {
			tmf_answer(s, t, VIRTIO_SCSI_S_BAD_TARGET);
			return;
		}
		t->lun = lun_find(s, t->target, lun);
		if (!t->lun) {
			tmf_answer(s, t, VIRTIO_SCSI_S_INCORRECT_LUN);
			return;
		}
		break;
	case VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET:
		if (!have_target) {
			tmf_answer(s, t, VIRTIO_SCSI_S_BAD_TARGET);
			return;
		}
		break;
	default: /* CLEAR ACA (no ACA is ever established), unknown functions */
		tmf_answer(s, t, VIRTIO_SCSI_S_FUNCTION_REJECTED);
		return;
	}
	tmf_start(s, t);
}

/* Asynchronous notification query / subscribe: no events are supported (event_actual 0). */
static void an_answer(struct vscsi *s, uint16_t head, const struct vscsi_ctrl_parsed *p)
{
	uint8_t resp[VIRTIO_SCSI_AN_RESP_SIZE] = { 0 };
	uint16_t lun;
	uint8_t target;

	if (!vscsi_lun_decode(p->lun, &target, &lun) || !target_any(s, target))
		resp[4] = VIRTIO_SCSI_S_BAD_TARGET;
	vioq_iov_from_buf(p->resp, p->resp_cnt, 0, resp, sizeof(resp));
	vioq_push(&s->ctrl, head, sizeof(resp));
}

static int ctrl_poll(struct iothread_source *src)
{
	struct vscsi *s = container_of(src, struct vscsi, ctrl.src);
	int n = 0;

	while (s->tmf_free) {
		struct vscsi_tmf *t = s->tmf_free;
		struct virtq_elem e = { .iov = t->iov, .cap = ARRAY_SIZE(t->iov) };
		struct vscsi_ctrl_parsed p;
		enum vscsi_err err;

		if (vioq_pop(&s->ctrl, &e) <= 0)
			break;
		n++;
		err = vscsi_parse_ctrl(&e, &p);
		if (err != VSCSI_OK) {
			if (p.resp_ok) { /* answered as a failed function */
				uint8_t fail[VIRTIO_SCSI_AN_RESP_SIZE] = { 0 };
				size_t at = p.type == VIRTIO_SCSI_T_TMF ? 0 : 4;

				fail[at] = VIRTIO_SCSI_S_FAILURE;
				vioq_iov_from_buf(p.resp, p.resp_cnt, 0, fail, at + 1);
				vioq_push(&s->ctrl, e.head, (uint32_t)at + 1);
			} else {
				vioq_push(&s->ctrl, e.head, 0);
			}
			continue;
		}
		if (p.type != VIRTIO_SCSI_T_TMF) {
			an_answer(s, e.head, &p);
			continue;
		}
		s->tmf_free = t->next_free;
		t->head = e.head;
		t->resp = p.resp;
		t->resp_cnt = p.resp_cnt;
		tmf_request(s, t, &p);
	}
	vioq_flush(&s->ctrl);
	return n;
}

/* ---------------------------------------------------------------------------------------------
 * Event queue (the control queue's iothread)
 */

struct event {
	uint32_t event;
	uint8_t target;
	uint16_t lun;
	uint32_t reason;
};

/* Puts @ev in the next buffer; none: dropped, and the next event says events were missed. */
static int event_push(struct vscsi *s, const struct event *ev)
{
	struct virtq_elem e = { .iov = s->ev_iov, .cap = ARRAY_SIZE(s->ev_iov) };
	uint8_t b[VIRTIO_SCSI_EVENT_SIZE] = { 0 };

	if (vioq_pop(&s->evq, &e) <= 0) {
		if (ev->event != VIRTIO_SCSI_T_NO_EVENT)
			s->ev_missed = true;
		return 0;
	}
	if (e.err || e.nr_out || e.in_len < sizeof(b) ||
	    !e.iov[0].iov_base || e.iov[0].iov_len < sizeof(b)) {
		vioq_push(&s->evq, e.head, 0); /* unusable: the event is lost */
		s->ev_missed = true;
		vioq_flush(&s->evq);
		return 1;
	}
	vio_put_le32(b, ev->event | (s->ev_missed ? VIRTIO_SCSI_T_EVENTS_MISSED : 0));
	if (ev->event != VIRTIO_SCSI_T_NO_EVENT) {
		uint8_t lun[8];

		scsi_lun_encode(ev->lun, lun);
		b[4] = 1;
		b[5] = ev->target;
		memcpy(b + 6, lun, 2); /* the single-level LUN */
	}
	vio_put_le32(b + 12, ev->reason);
	s->ev_missed = false;
	memcpy(e.iov[0].iov_base, b, sizeof(b));
	vioq_push(&s->evq, e.head, sizeof(b));
	vioq_flush(&s->evq);
	return 1;
}

/* A buffer posted after a drop gets NO_EVENT with EVENTS_MISSED. */
static int event_poll(struct iothread_source *src)
{
	struct vscsi *s = container_of(src, struct vscsi, evq.src);
	struct event none = { .event = VIRTIO_SCSI_T_NO_EVENT };

	return s->ev_missed ? event_push(s, &none) : 0;
}

struct event_arg {
	struct vscsi *s;
	struct event ev;
};

static int event_on_iothread(void *arg)
{
	struct event_arg *a = arg;

	event_push(a->s, &a->ev);
	return 0;
}

/* Control plane: sends @ev when the driver negotiated @feature and the queue runs. */
static void send_event(struct vscsi *s, unsigned int feature, struct event ev)
{
	struct event_arg a = { s, ev };

	pthread_mutex_lock(&s->vpci.lock);
	if (s->evq.running && vpci_has_feature(&s->vpci, feature))
		iothread_run_sync(s->evq.it, event_on_iothread, &a);
	pthread_mutex_unlock(&s->vpci.lock);
}

/* ---------------------------------------------------------------------------------------------
 * Control plane (vCPU thread under the vpci lock, or main)
 */

static void config_read(void *opaque, uint32_t off, void *data, unsigned int len)
{
	struct vscsi *s = opaque;
	uint8_t c[VIRTIO_SCSI_CFG_LEN] = { 0 };

	vio_put_le32(c + VIRTIO_SCSI_CFG_NUM_QUEUES, s->nr_queues);
	vio_put_le32(c + VIRTIO_SCSI_CFG_SEG_MAX, MIN(s->queue_size, VSCSI_MAX_CHAIN) - 2);
	vio_put_le32(c + VIRTIO_SCSI_CFG_MAX_SECTORS, SCSI_DISK_MAX_XFER / 512);
	vio_put_le32(c + VIRTIO_SCSI_CFG_CMD_PER_LUN, s->queue_size);
	vio_put_le32(c + VIRTIO_SCSI_CFG_EVENT_INFO_SIZE, VIRTIO_SCSI_EVENT_SIZE);
	vio_put_le32(c + VIRTIO_SCSI_CFG_SENSE_SIZE, atomic_load(&s->sense_size));
	vio_put_le32(c + VIRTIO_SCSI_CFG_CDB_SIZE, atomic_load(&s->cdb_size));
	vio_put_le16(c + VIRTIO_SCSI_CFG_MAX_CHANNEL, 0);
	vio_put_le16(c + VIRTIO_SCSI_CFG_MAX_TARGET, VSCSI_MAX_TARGET);
	vio_put_le32(c + VIRTIO_SCSI_CFG_MAX_LUN, VSCSI_MAX_LUN);
	memcpy(data, c + off, len);
}

/* sense_size and cdb_size: whole 4-byte writes within the limits; anything else is ignored. */
static void config_write(void *opaque, uint32_t off, const void *data, unsigned int len)
{
	struct vscsi *s = opaque;
	uint32_t v;

	if (len != 4)
		return;
	v = vio_le32(data);
	if (off == VIRTIO_SCSI_CFG_SENSE_SIZE && v <= VSCSI_SENSE_SIZE_MAX)
		atomic_store(&s->sense_size, v);
	else if (off == VIRTIO_SCSI_CFG_CDB_SIZE && v >= 1 && v <= VSCSI_CDB_SIZE_MAX)
		atomic_store(&s->cdb_size, v);
}

static int noop_on_iothread(void *arg)
{
	return 0;
}

/*
 * Under the vpci lock: stop taking guest requests on every queue, then wait for what is in
 * flight, the TMF visits and the answers they post. Afterwards no iothread touches the device
 * until its sources are added again.
 */
static void drain_all(struct vscsi *s)
{
	vioq_pause(&s->ctrl);
	vioq_pause(&s->evq);
	for (unsigned int i = 0; i < s->nr_queues; i++)
		vioq_pause(&s->queues[i].ioq);
	/* FIFO message queues: visits posted before the pause run before each drain */
	for (unsigned int i = 0; i < s->nr_luns; i++)
		vioq_bqs_drain(&s->threads, s->luns[i]->bqs, s->name);
	for (unsigned int i = 0; i < s->threads.n; i++)
		iothread_run_sync(s->threads.its[i], noop_on_iothread, NULL);
	/* ... and the TMF answers the last completions posted to the control queue's thread */
	iothread_run_sync(s->ctrl.it, noop_on_iothread, NULL);
}

static void resume_all(struct vscsi *s)
{
	for (unsigned int i = 0; i < s->nr_queues; i++)
		vioq_resume(&s->queues[i].ioq);
	vioq_resume(&s->ctrl);
	vioq_resume(&s->evq);
}

static void vscsi_reset(void *opaque, struct vpci_dev *v)
{
	struct vscsi *s = opaque;

	drain_all(s);
	for (unsigned int i = 0; i < s->nr_queues; i++)
		s->queues[i].ioq.running = false;
	s->ctrl.running = s->evq.running = false;
	atomic_store(&s->sense_size, VIRTIO_SCSI_SENSE_DEFAULT_SIZE);
	atomic_store(&s->cdb_size, VIRTIO_SCSI_CDB_DEFAULT_SIZE);
}

static void pools_reset(struct vscsi *s)
{
	for (unsigned int i = 0; i < s->nr_queues; i++) {
		struct vscsi_queue *q = &s->queues[i];

		q->free = NULL;
		for (unsigned int k = s->queue_size; k-- > 0;) {
			q->reqs[k].inflight = false;
			req_free(q, &q->reqs[k]);
		}
		q->visits = NULL;
	}
	s->tmf_free = NULL;
	for (unsigned int k = s->queue_size; k-- > 0;) {
		s->tmfs[k].next_free = s->tmf_free;
		s->tmf_free = &s->tmfs[k];
	}
	s->ev_missed = false;
}

static int vscsi_activate(void *opaque, struct vpci_dev *v)
{
	struct vscsi *s = opaque;
	struct error *err = NULL;

	pools_reset(s);
	for (unsigned int i = 0; i < Q_REQ0 + s->nr_queues; i++) {
		struct vioq *q = i == Q_CTRL ? &s->ctrl : i == Q_EVENT ? &s->evq :
			&s->queues[i - Q_REQ0].ioq;
		int (*poll)(struct iothread_source *) = i == Q_CTRL ? ctrl_poll :
			i == Q_EVENT ? event_poll : queue_poll;

		if (!v->queues[i].enabled)
			continue;
		if (vioq_start(q, poll, &err) < 0) {
			fprintf(stderr, "vireo: %s: queue %u: %s\n", s->name, i, error_msg(err));
			error_free(err);
			vscsi_reset(s, v);
			return -EIO;
		}
	}
	return 0;
}

static const struct virtio_device_ops vscsi_ops = {
	.config_read = config_read,
	.config_write = config_write,
	.activate = vscsi_activate,
	.reset = vscsi_reset,
};

static void lun_free(struct vscsi_lun *l)
{
	if (l->bqs)
		vioq_bqs_free(&l->dev->threads, l->bqs);
	scsi_disk_destroy(l->disk);
	free(l->bqs);
	free(l->st);
	free(l);
}

static void vscsi_free(struct vscsi *s)
{
	while (s->nr_luns)
		lun_free(s->luns[--s->nr_luns]);
	if (s->queues)
		for (unsigned int i = 0; i < s->nr_queues; i++) {
			free(s->queues[i].reqs);
			free(s->queues[i].iov_pool);
		}
	if (s->tmfs)
		free(s->tmfs[0].visits);
	free(s->tmfs);
	free(s->queues);
	free(s->threads.its);
	free(s);
}

static int queues_init(struct vscsi *s, const struct vscsi_opts *o, struct error **errp)
{
	struct vscsi_visit *visits;

	s->queues = calloc(s->nr_queues, sizeof(*s->queues));
	s->threads.its = calloc(s->nr_queues, sizeof(*s->threads.its));
	s->tmfs = calloc(s->queue_size, sizeof(*s->tmfs));
	visits = calloc((size_t)s->queue_size * s->nr_queues, sizeof(*visits));
	if (s->tmfs)
		s->tmfs[0].visits = visits; /* the array's owner, for vscsi_free */
	if (!s->queues || !s->threads.its || !s->tmfs || !visits)
		goto oom;
	for (unsigned int k = 0; k < s->queue_size; k++) {
		s->tmfs[k].dev = s;
		s->tmfs[k].visits = visits + (size_t)k * s->nr_queues;
	}
	for (unsigned int i = 0; i < s->nr_queues; i++) {
		struct vscsi_queue *q = &s->queues[i];

		q->dev = s;
		q->tix = vioq_threads_add(&s->threads, o->iothreads[i]);
		q->ioq = (struct vioq){ .vpci = &s->vpci, .name = s->name, .index = Q_REQ0 + i,
					.it = o->iothreads[i] };
		q->cap = MIN(s->queue_size, VSCSI_MAX_CHAIN);
		q->reqs = calloc(s->queue_size, sizeof(*q->reqs));
		q->iov_pool = calloc((size_t)s->queue_size * 2 * q->cap, sizeof(*q->iov_pool));
		if (!q->reqs || !q->iov_pool)
			goto oom;
		for (unsigned int r = 0; r < s->queue_size; r++) {
			q->reqs[r].q = q;
			q->reqs[r].iov = &q->iov_pool[(size_t)r * 2 * q->cap];
			q->reqs[r].data = q->reqs[r].iov + q->cap;
		}
	}
	s->ctrl = (struct vioq){ .vpci = &s->vpci, .name = s->name, .index = Q_CTRL,
				 .it = o->iothreads[0] };
	s->evq = (struct vioq){ .vpci = &s->vpci, .name = s->name, .index = Q_EVENT,
				.it = o->iothreads[0] };
	return 0;
oom:
	error_setg(errp, "%s: out of memory for %u queues of %u", s->name, s->nr_queues,
		   s->queue_size);
	return -1;
}

struct vscsi *vscsi_create(const struct vpci_host *host, const char *name,
			   const struct vscsi_opts *o, struct error **errp)
{
	uint64_t features = 1ull << VIRTIO_SCSI_F_HOTPLUG | 1ull << VIRTIO_SCSI_F_CHANGE;
	struct vscsi *s;

	if (vioq_check_geometry(name, o->num_queues, VPCI_MAX_QUEUES - Q_REQ0, o->queue_size,
				errp) < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		error_setg(errp, "%s: out of memory", name);
		return NULL;
	}
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->nr_queues = o->num_queues;
	s->queue_size = o->queue_size;
	atomic_init(&s->sense_size, VIRTIO_SCSI_SENSE_DEFAULT_SIZE);
	atomic_init(&s->cdb_size, VIRTIO_SCSI_CDB_DEFAULT_SIZE);
	if (queues_init(s, o, errp) < 0)
		goto err;
	if (vpci_init(&s->vpci, host, s->name, VIRTIO_ID_SCSI, PCI_CLASS_STORAGE_SCSI, features,
		      Q_REQ0 + s->nr_queues, (uint16_t)s->queue_size, VIRTIO_SCSI_CFG_LEN,
		      &vscsi_ops, s, errp) < 0)
		goto err;
	s->ctrl.vq = &s->vpci.queues[Q_CTRL].vq;
	s->evq.vq = &s->vpci.queues[Q_EVENT].vq;
	for (unsigned int i = 0; i < s->nr_queues; i++)
		s->queues[i].ioq.vq = &s->vpci.queues[Q_REQ0 + i].vq;
	return s;
err:
	vscsi_free(s);
	return NULL;
}

struct pci_device *vscsi_pci(struct vscsi *s)
{
	return &s->vpci.pci;
}

void vscsi_destroy(struct vscsi *s)
{
	if (!s)
		return;
	vpci_destroy(&s->vpci); /* resets the device: sources removed, requests drained */
	vscsi_free(s);
}

unsigned int vscsi_nr_queues(const struct vscsi *s)
{
	return s->nr_queues;
}

const char *vscsi_name(const struct vscsi *s)
{
	return s->name;
}

/* A LUN with its disk and blockdev queues, not yet in the table. */
static struct vscsi_lun *lun_new(struct vscsi *s, const struct vscsi_lun_opts *o,
				 struct error **errp)
{
	struct vscsi_lun *l = calloc(1, sizeof(*l));
	struct scsi_disk_opts d;

	if (!l || !(l->bqs = calloc(s->threads.n, sizeof(*l->bqs))) ||
	    !(l->st = calloc(s->nr_queues, sizeof(*l->st)))) {
		error_setg(errp, "%s: out of memory", s->name);
		if (l)
			free(l->bqs);
		free(l);
		return NULL;
	}
	l->dev = s;
	l->target = o->target;
	l->lun = o->lun;
	l->bs = o->bs;
	d = (struct scsi_disk_opts){ .bs = o->bs, .name = o->name, .lun = o->lun,
				     .read_only = o->read_only,
				     .serial = o->serial, .wwn = o->wwn, .discard = true,
				     .list_luns = list_luns, .list_opaque = l };
	l->disk = scsi_disk_create(&d, errp);
	if (!l->disk || vioq_bqs_new(&s->threads, o->bs, l->bqs, errp) < 0) {
		if (l->disk)
			scsi_disk_destroy(l->disk);
		free(l->bqs);
		free(l->st);
		free(l);
		return NULL;
	}
	return l;
}

struct vscsi_lun *vscsi_lun_add(struct vscsi *s, const struct vscsi_lun_opts *o,
				struct error **errp)
{
	struct vscsi_lun *l;

	if (o->lun > VSCSI_MAX_LUN) {
		error_setg(errp, "%s: lun %u is out of range (0..%u)", s->name, o->lun,
			   VSCSI_MAX_LUN);
		return NULL;
	}
	if (lun_find(s, o->target, o->lun)) {
		error_setg(errp, "%s: target %u lun %u is already in use", s->name, o->target,
			   o->lun);
		return NULL;
	}
	if (s->nr_luns == VSCSI_MAX_LUNS) {
		error_setg(errp, "%s: at most %d LUNs per controller", s->name, VSCSI_MAX_LUNS);
		return NULL;
	}
	l = lun_new(s, o, errp);
	if (!l)
		return NULL;
	pthread_mutex_lock(&s->vpci.lock);
	drain_all(s);
	s->luns[s->nr_luns++] = l;
	resume_all(s);
	pthread_mutex_unlock(&s->vpci.lock);
	send_event(s, VIRTIO_SCSI_F_HOTPLUG,
		   (struct event){ VIRTIO_SCSI_T_TRANSPORT_RESET, l->target, l->lun,
				   VIRTIO_SCSI_EVT_RESET_RESCAN });
	return l;
}

void vscsi_lun_remove(struct vscsi_lun *l)
{
	struct vscsi *s = l->dev;
	struct event ev = { VIRTIO_SCSI_T_TRANSPORT_RESET, l->target, l->lun,
			    VIRTIO_SCSI_EVT_RESET_REMOVED };

	pthread_mutex_lock(&s->vpci.lock);
	drain_all(s);
	for (unsigned int i = 0; i < s->nr_luns; i++) {
		if (s->luns[i] == l) {
			memmove(&s->luns[i], &s->luns[i + 1], (s->nr_luns - i - 1) * sizeof(l));
			s->nr_luns--;
			break;
		}
	}
	resume_all(s);
	pthread_mutex_unlock(&s->vpci.lock);
	lun_free(l);
	send_event(s, VIRTIO_SCSI_F_HOTPLUG, ev);
}

int vscsi_lun_resize(struct vscsi_lun *l, uint64_t size, struct error **errp)
{
	struct vscsi *s = l->dev;
	bool changed = false;
	int ret;

	pthread_mutex_lock(&s->vpci.lock);
	drain_all(s);
	ret = blockdev_truncate(l->bs, size, errp);
	if (!ret)
		changed = scsi_disk_resized(l->disk);
	resume_all(s);
	pthread_mutex_unlock(&s->vpci.lock);
	if (changed)
		send_event(s, VIRTIO_SCSI_F_CHANGE,
			   (struct event){ VIRTIO_SCSI_T_PARAM_CHANGE, l->target, l->lun,
					   (SCSI_ASC_CAPACITY_CHANGED >> 8) |
						   (SCSI_ASC_CAPACITY_CHANGED & 0xff) << 8 });
	return ret;
}

/* Moves @l's blockdev queues to @bs (vpci lock held, everything drained). */
static int lun_swap_node(struct vscsi_lun *l, struct blockdev *bs, struct error **errp)
{
	struct vscsi *s = l->dev;
	struct blockdev_queue **bqs = calloc(s->threads.n, sizeof(*bqs));
	int ret = -1;

	if (!bqs) {
		error_setg(errp, "%s: out of memory", s->name);
		return -1;
	}
	if (vioq_bqs_new(&s->threads, bs, bqs, errp) == 0) {
		if (scsi_disk_set_node(l->disk, bs, errp) == 0) {
			vioq_bqs_free(&s->threads, l->bqs);
			memcpy(l->bqs, bqs, s->threads.n * sizeof(*bqs));
			l->bs = bs;
			ret = 0;
		} else {
			vioq_bqs_free(&s->threads, bqs);
		}
	}
	free(bqs);
	return ret;
}

int vscsi_lun_set_node(struct vscsi_lun *l, struct blockdev *bs, struct error **errp)
{
	struct vscsi *s = l->dev;
	int ret;

	pthread_mutex_lock(&s->vpci.lock);
	drain_all(s);
	ret = lun_swap_node(l, bs, errp);
	resume_all(s);
	pthread_mutex_unlock(&s->vpci.lock);
	return ret;
}

int vscsi_lun_set_node_drained(struct vscsi_lun *l, struct blockdev *bs, struct error **errp)
{
	return lun_swap_node(l, bs, errp);
}

/*
 * Several LUNs of one controller may be under the same drained section (their nodes share a
 * backing node): the first begin takes the transport lock and drains, the last end resumes.
 */
static void vscsi_drained_begin(void *opaque)
{
	struct vscsi_lun *l = opaque;

	if (l->dev->drain_nest++)
		return;
	pthread_mutex_lock(&l->dev->vpci.lock);
	drain_all(l->dev);
}

static void vscsi_drained_end(void *opaque)
{
	struct vscsi_lun *l = opaque;

	vioq_bqs_forget(&l->dev->threads, l->bqs);
	if (--l->dev->drain_nest)
		return;
	resume_all(l->dev);
	pthread_mutex_unlock(&l->dev->vpci.lock);
}

const struct blockdev_user_ops vscsi_drain_ops = {
	.drained_begin = vscsi_drained_begin,
	.drained_end = vscsi_drained_end,
};

struct scsi_disk *vscsi_lun_disk(const struct vscsi_lun *l)
{
	return l->disk;
}

struct blockdev *vscsi_lun_node(const struct vscsi_lun *l)
{
	return l->bs;
}

void vscsi_lun_get_stats(const struct vscsi_lun *l, struct vioq_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < l->dev->nr_queues; i++)
		vioq_counters_sum(&l->st[i], st);
}

struct status_arg {
	struct vscsi *s;
	struct vioq *q;
};

/* On the queue's iothread: chains popped and not completed (the event queue keeps none). */
static unsigned int queue_inuse(void *arg)
{
	struct status_arg *a = arg;
	unsigned int n = 0;

	if (a->q->index >= Q_REQ0) {
		struct vscsi_queue *q = container_of(a->q, struct vscsi_queue, ioq);

		for (struct vscsi_req *r = q->free; r; r = r->next_free)
			n++;
		return a->s->queue_size - n;
	}
	if (a->q->index == Q_CTRL) {
		for (struct vscsi_tmf *t = a->s->tmf_free; t; t = t->next_free)
			n++;
		return a->s->queue_size - n;
	}
	return 0;
}

int vscsi_queue_status(struct vscsi *s, unsigned int index, struct vioq_status *st,
		       struct error **errp)
{
	struct status_arg a = { s, NULL };

	if (index >= Q_REQ0 + s->nr_queues) {
		error_setg(errp, "%s has %u queues: there is no queue %u", s->name,
			   Q_REQ0 + s->nr_queues, index);
		return -1;
	}
	a.q = index == Q_CTRL ? &s->ctrl : index == Q_EVENT ? &s->evq :
		&s->queues[index - Q_REQ0].ioq;
	return vioq_get_status(a.q, s->queue_size, queue_inuse, &a, st, errp);
}
