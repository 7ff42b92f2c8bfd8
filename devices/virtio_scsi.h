/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-scsi (virtio 1.2 section 5.6): request parsing (virtio_scsi_req.c, pure) and the
 * device (virtio_scsi.c): a SCSI host with one channel, targets 0..255 and LUNs 0..16383,
 * each LUN a devices/scsi_disk.h logical unit over a block node.
 *
 * Queues. 0 is the control queue, 1 the event queue, 2.. the request queues (num_queues of
 * them). Each request queue belongs to one iothread (iothread-vq-mapping) exactly as
 * virtio-blk's do (devices/virtio_ioq.h: polling, EVENT_IDX, its own MSI-X vector); the
 * control and event queues belong to the iothread of request queue 0.
 *
 * Ownership. The LUN table (struct vscsi's luns[]) and each LUN's blockdev queues are written
 * only by the control plane, under the vpci lock, with every queue of the device paused and
 * drained (drain_all): a LUN added or removed at run time, a resize, a node swapped. The
 * iothreads read them without a lock while the queues run. A request's state (struct
 * vscsi_req) belongs to its queue's iothread; the command on the LUN runs there too
 * (scsi_disk_submit on that thread's blockdev queue of the LUN's node).
 *
 * Task management. A TMF is parsed on the control queue's iothread, which posts a visit to
 * every running request queue's iothread (iothread_post). There the visit marks the
 * matching requests in flight (by LUN or target, and tag): ABORTED for the abort and reset
 * functions, "found" for the queries, and for the aborts waits until each of them
 * completed (with response ABORTED; block I/O is not cancelled, it is waited for). The
 * last visit to finish posts the TMF back to the control queue's iothread, which resets the
 * LUN(s) (unit attention) for LOGICAL UNIT RESET and I_T NEXUS RESET and answers: so an
 * aborted request is always returned before the TMF that aborted it. TMFs in flight hold a
 * count (pending) made of one per visit plus one for the starter: atomic, the last to drop
 * it finishes the TMF. drain_all waits for the visits and the TMFs they complete before it
 * returns.
 *
 * Events. The control plane queues an event on the event queue's iothread (iothread_run_sync);
 * with no buffer posted by the driver the event is dropped and the next event carries
 * VIRTIO_SCSI_T_EVENTS_MISSED (a buffer that arrives first gets NO_EVENT with the flag).
 *
 * Every popped chain completes exactly once: with the LUN's result, or with a response the
 * transport chose (BAD_TARGET, OVERRUN, FAILURE); a chain whose response cannot be written
 * (writable part shorter than the response, a loop, a bad descriptor) is returned with
 * used.len = 0.
 */
#ifndef VIREO_DEVICES_VIRTIO_SCSI_H
#define VIREO_DEVICES_VIRTIO_SCSI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/error.h"
#include "common/spec/virtio_scsi.h"
#include "devices/scsi_cdb.h"
#include "devices/virtio_ioq.h"
#include "devices/virtqueue.h"

struct blockdev;
struct iothread;
struct pci_device;
struct scsi_disk;
struct vpci_host;
struct vscsi;
struct vscsi_lun;

#define VSCSI_MAX_TARGET 255
#define VSCSI_MAX_LUN 16383
#define VSCSI_MAX_LUNS 256           /* LUNs per controller */
#define VSCSI_CDB_SIZE_MAX 255       /* cdb_size the driver may set (1..) */
#define VSCSI_SENSE_SIZE_MAX 4096    /* sense_size the driver may set (0..) */
#define VSCSI_NO_LUN 0xffff          /* vscsi_lun_decode: an address that names no LUN */

/* Why a request or control request was refused. */
enum vscsi_err {
	VSCSI_OK = 0,
	VSCSI_ERR_CHAIN,      /* the descriptor chain is malformed (elem.err) */
	VSCSI_ERR_FAULT,      /* a buffer is not guest RAM */
	VSCSI_ERR_SHORT_RESP, /* the writable part cannot hold the response */
	VSCSI_ERR_SHORT_HDR,  /* the readable part is shorter than the header */
	VSCSI_ERR_BIDI,       /* data-out and data-in both (VIRTIO_SCSI_F_INOUT is not offered) */
	VSCSI_ERR_CTRL_TYPE,  /* a control request of unknown type */
};

const char *vscsi_err_name(enum vscsi_err err);

/**
 * struct vscsi_cmd_parsed - a request queue element, checked
 * @lun, @tag, @task_attr, @prio, @crn: the header
 * @cdb, @cdb_len: the first MIN(cdb_size, SCSI_CDB_MAX) bytes of the CDB
 * @resp, @resp_cnt: the writable part; the response (12 + sense_size bytes) starts it
 * @resp_ok: the response can be written (set even when parsing fails)
 * @dout, @dout_cnt, @dout_len: data-out: the readable part after the header
 * @din, @din_cnt, @din_len: data-in: the writable part after the response
 */
struct vscsi_cmd_parsed {
	uint8_t lun[8];
	uint64_t tag;
	uint8_t task_attr, prio, crn;
	uint8_t cdb[SCSI_CDB_MAX];
	uint8_t cdb_len;
	struct iovec *resp;
	unsigned int resp_cnt;
	bool resp_ok;
	struct iovec *dout;
	unsigned int dout_cnt;
	uint64_t dout_len;
	struct iovec *din;
	unsigned int din_cnt;
	uint64_t din_len;
};

/**
 * vscsi_parse_cmd - check one request-queue chain (pure: reads the element and guest buffers)
 * @e: the element from virtq_pop
 * @cdb_size, @sense_size: the config space's current values
 * @data: room for e->nr_out + e->nr_in entries: data-out then data-in are cut into it
 * @p: result
 *
 * Copies the header and the CDB out of guest memory. Returns VSCSI_OK or the first reason the
 * request must fail; p->resp_ok says whether a response can still be written.
 */
enum vscsi_err vscsi_parse_cmd(const struct virtq_elem *e, uint32_t cdb_size,
			       uint32_t sense_size, struct iovec *data,
			       struct vscsi_cmd_parsed *p);

/**
 * struct vscsi_ctrl_parsed - a control queue element, checked
 * @type: VIRTIO_SCSI_T_TMF, _AN_QUERY or _AN_SUBSCRIBE
 * @subtype, @tag: TMF only
 * @event_requested: AN only
 * @lun: the LUN addressed
 * @resp, @resp_cnt: the writable part (TMF: response; AN: event_actual, response)
 * @resp_ok: the response can be written
 */
struct vscsi_ctrl_parsed {
	uint32_t type;
	uint32_t subtype;
	uint8_t lun[8];
	uint64_t tag;
	uint32_t event_requested;
	struct iovec *resp;
	unsigned int resp_cnt;
	bool resp_ok;
};

/* The same for the control queue (pure). */
enum vscsi_err vscsi_parse_ctrl(const struct virtq_elem *e, struct vscsi_ctrl_parsed *p);

/*
 * The target and LUN of an 8-byte LUN field as Linux's driver builds it: lun[0] = 1,
 * lun[1] = target, lun[2..3] = a single-level LUN (peripheral or flat addressing), the rest
 * 0. Returns false when lun[0] is not 1 (no such target); *lun is VSCSI_NO_LUN for another
 * addressing method or a non-zero second level.
 */
bool vscsi_lun_decode(const uint8_t lun[8], uint8_t *target, uint16_t *lun_out);

/**
 * struct vscsi_opts - one virtio-scsi controller
 * @num_queues: request queues, 1..VPCI_MAX_QUEUES - 2
 * @queue_size: power of two, 4..VIRTQ_MAX_SIZE
 * @iothreads: @num_queues entries: the iothread of each request queue (may repeat); the
 *             control and event queues are on iothreads[0]
 */
struct vscsi_opts {
	unsigned int num_queues;
	unsigned int queue_size;
	struct iothread **iothreads;
};

/* Builds the PCI function (plug it with pci_bus_add_device(bus, vscsi_pci(s), -1, errp)). */
struct vscsi *vscsi_create(const struct vpci_host *host, const char *name,
			   const struct vscsi_opts *o, struct error **errp);
struct pci_device *vscsi_pci(struct vscsi *s);
/* Stops the queues (as a guest reset), removes the LUNs left, frees. Iothreads still run. */
void vscsi_destroy(struct vscsi *s);
unsigned int vscsi_nr_queues(const struct vscsi *s);
const char *vscsi_name(const struct vscsi *s);

/**
 * struct vscsi_lun_opts - one LUN (scsi-hd)
 * @bs: its node (the LUN does not own it; the caller attached its user)
 * @target, @lun: its address (0..VSCSI_MAX_TARGET, 0..VSCSI_MAX_LUN)
 * @read_only: DATA PROTECT on writes (also when @bs is read-only)
 * @serial, @wwn: VPD 80h and 83h (see struct scsi_disk_opts)
 * @name: the scsi-hd's id, in its BLOCK_IO_ERROR events (kept by the caller while the LUN is)
 */
struct vscsi_lun_opts {
	struct blockdev *bs;
	const char *name;
	uint8_t target;
	uint16_t lun;
	bool read_only;
	const char *serial;
	uint64_t wwn;
};

/**
 * vscsi_lun_add - a LUN on the controller, at run time too
 *
 * Control plane. Refuses an address in use. While the driver runs, the LUN goes in inside a
 * drained section and, with VIRTIO_SCSI_F_HOTPLUG, a TRANSPORT_RESET / RESCAN event tells the
 * driver. Returns the LUN or NULL.
 */
struct vscsi_lun *vscsi_lun_add(struct vscsi *s, const struct vscsi_lun_opts *o,
				struct error **errp);
/* Control plane: the LUN goes (drained), with a TRANSPORT_RESET / REMOVED event (F_HOTPLUG). */
void vscsi_lun_remove(struct vscsi_lun *l);

/**
 * vscsi_lun_resize - block_resize on a LUN's node
 *
 * Drained: truncates the node, takes the new capacity (CAPACITY DATA HAS CHANGED unit
 * attention) and, with VIRTIO_SCSI_F_CHANGE, sends a PARAM_CHANGE event with that ASC/ASCQ.
 */
int vscsi_lun_resize(struct vscsi_lun *l, uint64_t size, struct error **errp);

/* Drained: the LUN serves another node (see scsi_disk_set_node); the caller keeps the users. */
int vscsi_lun_set_node(struct vscsi_lun *l, struct blockdev *bs, struct error **errp);
/* The same inside a drained section over @l's node (vscsi_drain_ops): a mirror's pivot. */
int vscsi_lun_set_node_drained(struct vscsi_lun *l, struct blockdev *bs, struct error **errp);

/* A LUN's drain hooks as the root user of its node (opaque: the struct vscsi_lun). */
extern const struct blockdev_user_ops vscsi_drain_ops;

struct scsi_disk *vscsi_lun_disk(const struct vscsi_lun *l);
struct blockdev *vscsi_lun_node(const struct vscsi_lun *l);
/* The LUN's block statistics, summed over the request queues (any thread). */
void vscsi_lun_get_stats(const struct vscsi_lun *l, struct vioq_stats *st);

/**
 * vscsi_queue_status - a snapshot of virtqueue @index (0 control, 1 event, 2.. requests),
 * taken on its iothread (control plane), as vblk_queue_status
 */
int vscsi_queue_status(struct vscsi *s, unsigned int index, struct vioq_status *st,
		       struct error **errp);

#endif
