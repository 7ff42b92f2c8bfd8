/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-scsi: feature negotiation, the control, event and request queues, command submission
 * and polling. A queue has one owner at a time: a CPU may drive its request queues while other
 * CPUs drive theirs (each touches only q[i], inflight[i] and tags[] of its queues); set-up,
 * reset, the control and event queues are the boot CPU's. drivers/vring.c explains the ordering
 * against the device.
 */
#include "drivers/virtio_scsi.h"
#include "drivers/lapic.h"
#include "lib/lib.h"
#include "ring0/layout.h"

_Static_assert(SCSI_MAX_REQ_QUEUES <= NR_DEV_VECTORS, "an MSI-X vector (and IDT stub) per queue");

static struct vring_mem rings[SCSI_NVQ];

static uint64_t wanted_features(void)
{
	return 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX |
	       1ULL << VIRTIO_SCSI_F_HOTPLUG | 1ULL << VIRTIO_SCSI_F_CHANGE;
}

static void read_config(struct scsi *s)
{
	uint64_t c = s->vp.device;

	s->num_queues = mmio_read32(c + VIRTIO_SCSI_CFG_NUM_QUEUES);
	s->seg_max = mmio_read32(c + VIRTIO_SCSI_CFG_SEG_MAX);
	s->max_sectors = mmio_read32(c + VIRTIO_SCSI_CFG_MAX_SECTORS);
	s->cmd_per_lun = mmio_read32(c + VIRTIO_SCSI_CFG_CMD_PER_LUN);
	s->event_info_size = mmio_read32(c + VIRTIO_SCSI_CFG_EVENT_INFO_SIZE);
	s->sense_size = mmio_read32(c + VIRTIO_SCSI_CFG_SENSE_SIZE);
	s->cdb_size = mmio_read32(c + VIRTIO_SCSI_CFG_CDB_SIZE);
	s->max_channel = mmio_read16(c + VIRTIO_SCSI_CFG_MAX_CHANNEL);
	s->max_target = mmio_read16(c + VIRTIO_SCSI_CFG_MAX_TARGET);
	s->max_lun = mmio_read32(c + VIRTIO_SCSI_CFG_MAX_LUN);
}

static int post_event(struct scsi *s, unsigned i)
{
	struct vring_buf b = { &s->events[i], sizeof(s->events[i]), true };
	int head;

	memset(&s->events[i], 0, sizeof(s->events[i]));
	head = vring_add(&s->q[SCSI_VQ_EVENT], &b, 1);
	if (head < 0) {
		err_set("the event queue is full");
		return -1;
	}
	s->inflight[SCSI_VQ_EVENT][head] = &s->events[i];
	return 0;
}

static int setup_queues(struct scsi *s, uint16_t qsize)
{
	for (uint16_t q = 0; q < SCSI_VQ_REQ0 + s->nreq; q++) {
		struct vring_mem *m = &rings[q];
		uint16_t size = qsize;
		uint16_t vec = s->irq && q >= SCSI_VQ_REQ0 ? q - SCSI_VQ_REQ0 : VIRTIO_MSI_NO_VECTOR;
		uint64_t notify = virtio_pci_setup_queue(&s->vp, q, &size, (uintptr_t)m->desc,
							 (uintptr_t)m->avail,
							 (uintptr_t)m->used_hdr, vec);

		if (!notify)
			return -1;
		if (size & (size - 1)) {
			err_set("queue %u: size %u is not a power of two", q, size);
			return -1;
		}
		/* the device may not touch the rings before DRIVER_OK: initialize them first */
		vring_init(&s->q[q], m, size, q, scsi_has(s, VIRTIO_F_EVENT_IDX));
		s->q[q].notify = notify;
	}
	return 0;
}

int scsi_init(struct scsi *s, const struct pci_dev *d, const struct scsi_cfg *cfg)
{
	static const struct scsi_cfg defaults;
	uint64_t mask;
	uint16_t total, qsize;

	if (!cfg)
		cfg = &defaults;
	mask = cfg->features_mask ? cfg->features_mask : ~0ULL;
	qsize = cfg->queue_size && cfg->queue_size < SCSI_QUEUE_SIZE ? cfg->queue_size :
								      SCSI_QUEUE_SIZE;
	memset(s, 0, sizeof(*s));
	if (virtio_pci_init(&s->vp, d) < 0)
		return -1;
	if (!(s->vp.features & (1ULL << VIRTIO_F_VERSION_1))) {
		err_set("the device does not offer VIRTIO_F_VERSION_1 (features %#lx)",
			s->vp.features);
		goto fail;
	}
	s->features = s->vp.features & wanted_features() & mask;
	if (virtio_pci_set_features(&s->vp, s->features) < 0)
		goto fail;
	read_config(s);
	total = virtio_pci_num_queues(&s->vp);
	if (s->num_queues == 0 || s->num_queues + SCSI_VQ_REQ0 > total) {
		err_set("the device config says %u request queues, the transport %u queues in all",
			s->num_queues, total);
		goto fail;
	}
	if (s->sense_size != SCSI_SENSE_SIZE || s->cdb_size != SCSI_CDB_SIZE) {
		err_set("sense_size %u, cdb_size %u after reset: expected the defaults %u, %u",
			s->sense_size, s->cdb_size, SCSI_SENSE_SIZE, SCSI_CDB_SIZE);
		goto fail;
	}
	s->nreq = MIN(s->num_queues, SCSI_MAX_REQ_QUEUES);
	s->irq = cfg->irq;
	if (s->irq && virtio_pci_msix_enable(&s->vp, s->nreq, lapic_id(), VEC_DEV_BASE) < 0)
		goto fail;
	if (setup_queues(s, qsize) < 0)
		goto fail;
	for (unsigned i = 0; !cfg->no_events && i < SCSI_EVENT_BUFS; i++)
		if (post_event(s, i) < 0)
			goto fail;
	for (unsigned q = 0; q < s->nreq; q++)
		s->tags[q] = (uint64_t)(q + 1) << 48;
	virtio_pci_set_status(&s->vp, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	if (!cfg->no_events)
		vring_kick(&s->q[SCSI_VQ_EVENT]);
	return 0;
fail:
	virtio_pci_set_status(&s->vp, VIRTIO_STATUS_FAILED);
	return -1;
}

void scsi_lun_field(uint8_t out[8], unsigned target, unsigned lun)
{
	memset(out, 0, 8);
	out[0] = 1;
	out[1] = (uint8_t)target;
	out[2] = (uint8_t)(lun > 255 ? 0x40 | (lun >> 8) : 0);
	out[3] = (uint8_t)lun;
}

int scsi_submit(struct scsi *s, unsigned q, struct scsi_req *r, unsigned target, unsigned lun,
		const uint8_t *cdb, unsigned cdb_len, const struct vring_buf *segs, unsigned nseg)
{
	struct vring_buf bufs[2 + 8];
	unsigned n = 0;
	int head;

	if (nseg > 8 || cdb_len > SCSI_CDB_SIZE) {
		err_set("%u data segments (at most 8), a CDB of %u bytes (at most %u)", nseg,
			cdb_len, SCSI_CDB_SIZE);
		return -1;
	}
	memset(&r->cmd, 0, sizeof(r->cmd));
	scsi_lun_field(r->cmd.lun, target, lun);
	r->cmd.tag = s->tags[q]++;
	r->cmd.task_attr = VIRTIO_SCSI_S_SIMPLE;
	memcpy(r->cmd.cdb, cdb, cdb_len);
	memset(&r->resp, 0xee, sizeof(r->resp));        /* what the device did not write shows */
	r->done = false;
	r->used_len = 0;
	bufs[n++] = (struct vring_buf){ &r->cmd, sizeof(r->cmd), false };
	for (unsigned i = 0; i < nseg; i++)
		if (!segs[i].device_writes)
			bufs[n++] = segs[i];
	bufs[n++] = (struct vring_buf){ &r->resp, sizeof(r->resp), true };
	for (unsigned i = 0; i < nseg; i++)
		if (segs[i].device_writes)
			bufs[n++] = segs[i];
	head = vring_add(&s->q[SCSI_VQ_REQ0 + q], bufs, n);
	if (head < 0) {
		err_set("request queue %u is full", q);
		return -1;
	}
	s->inflight[SCSI_VQ_REQ0 + q][head] = r;
	return 0;
}

void scsi_kick(struct scsi *s, unsigned q)
{
	vring_kick(&s->q[SCSI_VQ_REQ0 + q]);
}

bool scsi_arm(struct scsi *s, unsigned q)
{
	return vring_arm(&s->q[SCSI_VQ_REQ0 + q]);
}

void scsi_irq_target(struct scsi *s, unsigned q, uint32_t apic_id)
{
	virtio_pci_msix_target(&s->vp, q, apic_id, VEC_DEV_BASE + q);
}

/* Takes a used entry of virtqueue vq: 1 with the object it carried. */
static int take(struct scsi *s, unsigned vq, void **obj, uint32_t *len)
{
	uint16_t head;
	int r = vring_get_used(&s->q[vq], &head, len);

	if (r <= 0)
		return r;
	*obj = s->inflight[vq][head];
	if (!*obj) {
		err_set("virtqueue %u: the device completed descriptor %u, which is not in flight",
			vq, head);
		return -1;
	}
	s->inflight[vq][head] = NULL;
	return 1;
}

int scsi_poll(struct scsi *s, unsigned q, struct scsi_req **rp)
{
	uint32_t len;
	void *obj;
	int r = take(s, SCSI_VQ_REQ0 + q, &obj, &len);

	if (r <= 0)
		return r;
	*rp = obj;
	(*rp)->used_len = len;
	(*rp)->done = true;
	return 1;
}

int scsi_wait(struct scsi *s, unsigned q, unsigned count, uint64_t timeout_ms)
{
	uint64_t end = time_ns() + timeout_ms * 1000000;

	while (count) {
		struct scsi_req *r;
		int n = scsi_poll(s, q, &r);

		if (n < 0)
			return -1;
		if (n == 0) {
			if (time_ns() > end) {
				err_set("request queue %u: %u commands not completed within %lu ms",
					q, count, timeout_ms);
				return -1;
			}
			cpu_relax();
			continue;
		}
		count--;
	}
	return 0;
}

int scsi_cmd(struct scsi *s, unsigned q, struct scsi_req *r, unsigned target, unsigned lun,
	     const uint8_t *cdb, unsigned cdb_len, void *buf, uint32_t len, bool din)
{
	struct vring_buf seg = { buf, len, din };

	if (scsi_submit(s, q, r, target, lun, cdb, cdb_len, &seg, buf ? 1 : 0) < 0)
		return -1;
	scsi_kick(s, q);
	return scsi_wait(s, q, 1, 5000);
}

static int ctrl_submit(struct scsi *s, struct scsi_ctrl *c, uint32_t in_len, uint32_t out_len)
{
	struct vring_buf bufs[2] = { { &c->req, in_len, false }, { &c->resp, out_len, true } };
	int head;

	memset(&c->resp, 0xee, sizeof(c->resp));
	c->done = false;
	c->used_len = 0;
	head = vring_add(&s->q[SCSI_VQ_CTRL], bufs, 2);
	if (head < 0) {
		err_set("the control queue is full");
		return -1;
	}
	s->inflight[SCSI_VQ_CTRL][head] = c;
	vring_kick(&s->q[SCSI_VQ_CTRL]);
	return 0;
}

int scsi_tmf_submit(struct scsi *s, struct scsi_ctrl *c, uint32_t subtype, unsigned target,
		    unsigned lun, uint64_t tag)
{
	memset(&c->req, 0, sizeof(c->req));
	c->req.tmf.type = VIRTIO_SCSI_T_TMF;
	c->req.tmf.subtype = subtype;
	scsi_lun_field(c->req.tmf.lun, target, lun);
	c->req.tmf.tag = tag;
	return ctrl_submit(s, c, sizeof(c->req.tmf), 1);
}

int scsi_an_submit(struct scsi *s, struct scsi_ctrl *c, uint32_t type, unsigned target,
		   unsigned lun, uint32_t events)
{
	memset(&c->req, 0, sizeof(c->req));
	c->req.an.type = type;
	scsi_lun_field(c->req.an.lun, target, lun);
	c->req.an.event_requested = events;
	return ctrl_submit(s, c, sizeof(c->req.an), sizeof(c->resp.an));
}

int scsi_ctrl_poll(struct scsi *s, struct scsi_ctrl **cp)
{
	uint32_t len;
	void *obj;
	int r = take(s, SCSI_VQ_CTRL, &obj, &len);

	if (r <= 0)
		return r;
	*cp = obj;
	(*cp)->used_len = len;
	(*cp)->done = true;
	return 1;
}

int scsi_ctrl_wait(struct scsi *s, struct scsi_ctrl *c, uint64_t timeout_ms)
{
	uint64_t end = time_ns() + timeout_ms * 1000000;

	while (!c->done) {
		struct scsi_ctrl *got;

		if (scsi_ctrl_poll(s, &got) < 0)
			return -1;
		if (time_ns() > end) {
			err_set("the control request was not answered within %lu ms", timeout_ms);
			return -1;
		}
		cpu_relax();
	}
	return 0;
}

int scsi_event_poll(struct scsi *s, struct scsi_event *ev)
{
	uint32_t len;
	void *obj;
	int r = take(s, SCSI_VQ_EVENT, &obj, &len);
	unsigned i;

	if (r <= 0)
		return r;
	i = (unsigned)((struct scsi_event *)obj - s->events);
	*ev = s->events[i];
	if (len < sizeof(*ev)) {
		err_set("an event buffer came back with used length %u (< %zu)", len, sizeof(*ev));
		return -1;
	}
	if (post_event(s, i) < 0)
		return -1;
	vring_kick(&s->q[SCSI_VQ_EVENT]);
	return 1;
}
