/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-scsi driver (virtio 1.2 §5.6) over virtio-pci, polled from CPL3: the control queue (TMF
 * and asynchronous notification requests), the event queue (SCSI_EVENT_BUFS buffers kept posted)
 * and every request queue (struct virtio_scsi_cmd_req + CDB, data-out, then
 * struct virtio_scsi_cmd_resp + sense, data-in). As the virtio-blk driver, a queue has one owner
 * CPU at a time; set-up and reset are the boot CPU's. No interrupts are asked for unless
 * scsi_cfg.irq: then request queue q has MSI-X vector VEC_DEV_BASE + q (table entry q), counted in
 * cpus[].irqs[q] of the CPU it is aimed at (ring0/ring0.h); the control and event queues have none.
 *
 * Queue numbers in this API: request queues are 0..nreq-1 (virtqueue 2 + q); the control and
 * event queues have their own functions.
 */
#ifndef GUEST_VIRTIO_SCSI_H
#define GUEST_VIRTIO_SCSI_H

#include "common/spec/virtio_scsi.h"
#include "drivers/virtio_pci.h"
#include "drivers/vring.h"

#define SCSI_MAX_REQ_QUEUES     8
#define SCSI_QUEUE_SIZE         128
#define SCSI_CDB_SIZE           VIRTIO_SCSI_CDB_DEFAULT_SIZE
#define SCSI_SENSE_SIZE         VIRTIO_SCSI_SENSE_DEFAULT_SIZE
#define SCSI_EVENT_BUFS         8
#define SCSI_VQ_CTRL            0
#define SCSI_VQ_EVENT           1
#define SCSI_VQ_REQ0            2
#define SCSI_NVQ                (SCSI_VQ_REQ0 + SCSI_MAX_REQ_QUEUES)

/* The device-readable header of a command (cdb_size 32, the default). */
struct scsi_cmd_hdr {
	uint8_t lun[8];
	uint64_t tag;
	uint8_t task_attr, prio, crn;
	uint8_t cdb[SCSI_CDB_SIZE];
} __packed;

/* The device-writable header of a command (sense_size 96, the default). */
struct scsi_resp_hdr {
	uint32_t sense_len;
	uint32_t residual;
	uint16_t status_qualifier;
	uint8_t status;
	uint8_t response;
	uint8_t sense[SCSI_SENSE_SIZE];
} __packed;

_Static_assert(sizeof(struct scsi_cmd_hdr) == VIRTIO_SCSI_REQ_HDR_SIZE + SCSI_CDB_SIZE, "req");
_Static_assert(sizeof(struct scsi_resp_hdr) == VIRTIO_SCSI_RESP_HDR_SIZE + SCSI_SENSE_SIZE, "resp");

/* One command; lives in memory the device can reach (static), not on a stack that may move. */
struct scsi_req {
	struct scsi_cmd_hdr cmd;
	struct scsi_resp_hdr resp;
	volatile bool done;
	uint32_t used_len;
};

/* One control request: a TMF or an asynchronous notification query / subscription. */
struct scsi_ctrl {
	union {
		struct {
			uint32_t type, subtype;
			uint8_t lun[8];
			uint64_t tag;
		} __packed tmf;
		struct {
			uint32_t type;
			uint8_t lun[8];
			uint32_t event_requested;
		} __packed an;
	} req;
	union {
		uint8_t response;               /* TMF */
		struct {
			uint32_t event_actual;
			uint8_t response;
		} __packed an;
	} resp;
	volatile bool done;
	uint32_t used_len;
};

_Static_assert(sizeof(((struct scsi_ctrl *)0)->req.tmf) == VIRTIO_SCSI_TMF_SIZE, "tmf");
_Static_assert(sizeof(((struct scsi_ctrl *)0)->req.an) == VIRTIO_SCSI_AN_SIZE, "an");

struct scsi_event {
	uint32_t event;
	uint8_t lun[8];
	uint32_t reason;
} __packed;

struct scsi {
	struct virtio_pci vp;
	uint64_t features;              /* negotiated */
	uint32_t num_queues, seg_max, max_sectors, cmd_per_lun, event_info_size;
	uint32_t sense_size, cdb_size, max_lun;
	uint16_t max_channel, max_target;
	uint16_t nreq;                  /* request queues driven (at most SCSI_MAX_REQ_QUEUES) */
	bool irq;                       /* MSI-X vectors assigned (scsi_cfg.irq) */
	struct vring q[SCSI_NVQ];
	void *inflight[SCSI_NVQ][SCSI_QUEUE_SIZE];
	uint64_t tags[SCSI_MAX_REQ_QUEUES];     /* the next tag of each request queue */
	struct scsi_event events[SCSI_EVENT_BUFS];
};

/* How scsi_init() sets the device up; zeroes mean the defaults. */
struct scsi_cfg {
	uint64_t features_mask;         /* accept only these feature bits (0: every one we know) */
	uint16_t queue_size;            /* entries per queue, at most SCSI_QUEUE_SIZE (0: that) */
	bool no_events;                 /* post no event buffers */
	bool irq;                       /* MSI-X: a vector per request queue, aimed at the calling CPU */
};

/*
 * Finds the cap windows, resets the device, negotiates, reads the config, sets up every queue,
 * posts the event buffers, sets DRIVER_OK. Calling it again is a full reset and re-init.
 */
int scsi_init(struct scsi *s, const struct pci_dev *d, const struct scsi_cfg *cfg);
static inline bool scsi_has(const struct scsi *s, unsigned feature)
{
	return s->features & (1ULL << feature);
}
/* The 8-byte LUN field of target t, LUN l (single level, flat addressing above 255). */
void scsi_lun_field(uint8_t out[8], unsigned target, unsigned lun);

/*
 * Queues a command on request queue q for (target, lun): the CDB (at most SCSI_CDB_SIZE bytes,
 * the rest zero), then the data segments: those the device reads (data-out) go after the
 * header, those it writes (data-in) after the response, whatever their order in segs. The tag is
 * unique per queue (r->cmd.tag). Does not notify: call scsi_kick(). -1 (err_set) when full.
 */
int scsi_submit(struct scsi *s, unsigned q, struct scsi_req *r, unsigned target, unsigned lun,
		const uint8_t *cdb, unsigned cdb_len, const struct vring_buf *segs, unsigned nseg);
void scsi_kick(struct scsi *s, unsigned q);
/*
 * Interrupt mode (scsi_cfg.irq): asks for an interrupt on request queue q's next completion; true
 * when completions are already waiting. The race-free wait is blk_arm()'s (drivers/virtio_blk.h).
 */
bool scsi_arm(struct scsi *s, unsigned q);
/* Aims request queue q's interrupts at another local APIC (interrupt mode). */
void scsi_irq_target(struct scsi *s, unsigned q, uint32_t apic_id);
/* Takes one completion of request queue q: 1 and *r, 0 when none is ready, -1 on a bad entry. */
int scsi_poll(struct scsi *s, unsigned q, struct scsi_req **r);
/* Polls queue q until 'count' commands completed; -1 (err_set) on timeout. */
int scsi_wait(struct scsi *s, unsigned q, unsigned count, uint64_t timeout_ms);
/*
 * One command with one data buffer (none if buf is NULL; din: the device writes it), waited for
 * up to 5 s; 0 with the results in *r, -1 (err_set). Uses only queue q.
 */
int scsi_cmd(struct scsi *s, unsigned q, struct scsi_req *r, unsigned target, unsigned lun,
	     const uint8_t *cdb, unsigned cdb_len, void *buf, uint32_t len, bool din);

/* Control queue: a TMF (subtype VIRTIO_SCSI_T_TMF_*) naming tag, queued and kicked. */
int scsi_tmf_submit(struct scsi *s, struct scsi_ctrl *c, uint32_t subtype, unsigned target,
		    unsigned lun, uint64_t tag);
/* Control queue: an AN query or subscription (type VIRTIO_SCSI_T_AN_*), queued and kicked. */
int scsi_an_submit(struct scsi *s, struct scsi_ctrl *c, uint32_t type, unsigned target,
		   unsigned lun, uint32_t events);
/* Takes one completion of the control queue: 1 and *c, 0 none, -1 bad entry. */
int scsi_ctrl_poll(struct scsi *s, struct scsi_ctrl **c);
/* Waits for c to complete (taking other control completions on the way); -1 on timeout. */
int scsi_ctrl_wait(struct scsi *s, struct scsi_ctrl *c, uint64_t timeout_ms);
/* Takes one event: 1 and *ev (the buffer is posted again), 0 none, -1 bad entry. */
int scsi_event_poll(struct scsi *s, struct scsi_event *ev);

#endif
