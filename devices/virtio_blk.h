/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (virtio 1.2 section 5.2): request parsing (virtio_blk_req.c, pure) and the device
 * (virtio_blk.c) whose queues run on iothreads.
 *
 * Ownership. The device is built by the main thread. Its transport state belongs to virtio-pci
 * (vpci lock). From DRIVER_OK until reset each enabled queue (struct vblk_queue: its virtq, its
 * request pool, its iothread_source) belongs to one iothread, which pops chains, submits
 * blockdev requests on that iothread's blockdev queue, completes them (status byte, used
 * element) and raises the queue's interrupt through its call eventfd; no lock is taken on that
 * path. Activation and reset run on a vCPU thread under the vpci lock and reach the iothreads
 * only through iothread_add_source / iothread_remove_source / iothread_run_sync, which are
 * synchronous: after reset returns, no iothread touches a ring of this device.
 *
 * Every popped chain completes exactly once: with the blockdev result, or with the status the
 * parser chose (IOERR, UNSUPP); a chain whose status byte cannot be located (no writable byte,
 * a loop, a bad descriptor index) is returned with used.len = 0 and no status. A corrupt ring
 * (avail index too far ahead, head out of range) puts the device in DEVICE_NEEDS_RESET.
 */
#ifndef VIREO_DEVICES_VIRTIO_BLK_H
#define VIREO_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/error.h"
#include "common/spec/virtio_blk.h"
#include "devices/virtio_ioq.h"
#include "devices/virtqueue.h"

struct blockdev;
struct iothread;
struct pci_device;
struct vblk;
struct vpci_host;

#define VBLK_SECTOR 512u
#define VBLK_HDR_SIZE 16
#define VBLK_SEG_SIZE 16
/* discard / write-zeroes segments per request that the device accepts (it advertises this) */
#define VBLK_MAX_SEGS 1

/* Why a request was refused; each maps to one status (vblk_err_status). */
enum vblk_err {
	VBLK_OK = 0,
	VBLK_ERR_CHAIN,       /* the descriptor chain is malformed (elem.err) */
	VBLK_ERR_NO_STATUS,   /* no device-writable byte at the end for the status */
	VBLK_ERR_SHORT_HDR,   /* fewer than 16 readable bytes of header */
	VBLK_ERR_UNSUPP_TYPE, /* unknown request type, or its feature was not negotiated */
	VBLK_ERR_UNALIGNED,   /* data length not a multiple of 512 */
	VBLK_ERR_RANGE,       /* sectors beyond the capacity */
	VBLK_ERR_READ_ONLY,   /* a write, discard or write-zeroes to a read-only drive */
	VBLK_ERR_SEGS,        /* discard/write-zeroes payload not 1..max segments of 16 bytes */
	VBLK_ERR_SEG_FLAGS,   /* unknown segment flags, or unmap on a discard */
	VBLK_ERR_SEG_TOO_BIG, /* num_sectors above max_discard/write_zeroes_sectors */
	VBLK_ERR_GET_ID_SHORT, /* GET_ID with no room for the id */
};

/* Status byte for @err: IOERR, or UNSUPP for UNSUPP_TYPE and SEG_FLAGS. */
uint8_t vblk_err_status(enum vblk_err err);
const char *vblk_err_name(enum vblk_err err);

/* What the parser checks against. */
struct vblk_limits {
	uint64_t capacity; /* sectors */
	bool read_only;
	bool discard;      /* VIRTIO_BLK_F_DISCARD negotiated */
	bool write_zeroes; /* VIRTIO_BLK_F_WRITE_ZEROES negotiated */
	uint32_t max_discard_sectors;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_segs; /* discard / write-zeroes segments, >= 1 */
};

/**
 * struct vblk_parsed - a request, checked
 * @type: VIRTIO_BLK_T_*
 * @sector: header sector (IN, OUT)
 * @offset, @len: bytes: IN/OUT the data range; DISCARD/WRITE_ZEROES the (single) segment's
 * @seg_flags: DISCARD/WRITE_ZEROES segment flags
 * @data: IN/OUT/GET_ID buffers (the header and status byte cut off), in the caller's array
 * @data_cnt: entries in @data
 * @status: host pointer to the status byte, or NULL when it cannot be located; set even when
 *          parsing fails, so the caller can write vblk_err_status()
 */
struct vblk_parsed {
	uint32_t type;
	uint64_t sector;
	uint64_t offset, len;
	uint32_t seg_flags;
	struct iovec *data;
	unsigned int data_cnt;
	uint8_t *status;
};

/**
 * vblk_parse - check one popped chain (pure: reads the element and guest buffers, writes @p)
 * @e: the element from virtq_pop
 * @lim: capacity, features, limits
 * @p: result; p->data must point to an array of at least e->nr_out + e->nr_in entries
 *
 * Copies the header (and segments) out of guest memory before looking at them. Returns VBLK_OK
 * or the first reason the request must fail.
 */
enum vblk_err vblk_parse(const struct virtq_elem *e, const struct vblk_limits *lim,
			 struct vblk_parsed *p);

/**
 * struct vblk_opts - one virtio-blk device
 * @bs: the image (top node); the device does not own it
 * @read_only: offer VIRTIO_BLK_F_RO (writes get IOERR)
 * @serial: GET_ID string (up to 20 bytes kept), may be NULL
 * @num_queues: 1..VPCI_MAX_QUEUES - 1
 * @queue_size: power of two, 2..VIRTQ_MAX_SIZE (SEG_MAX is queue_size - 2, at most
 *              BLOCKDEV_MAX_IOV)
 * @iothreads: @num_queues entries: the iothread owning each queue (may repeat)
 */
struct vblk_opts {
	struct blockdev *bs;
	bool read_only;
	const char *serial;
	unsigned int num_queues;
	unsigned int queue_size;
	struct iothread **iothreads;
};

/**
 * vblk_create - build a virtio-blk PCI function
 *
 * Creates the blockdev queues on the iothreads and the virtio-pci transport over @host (guest
 * memory and KVM wiring, see struct vpci_host in virtio_pci.h); plug it with
 * pci_bus_add_device(bus, vblk_pci(b), -1, errp). Returns the device or NULL.
 */
struct vblk *vblk_create(const struct vpci_host *host, const char *name,
			 const struct vblk_opts *o, struct error **errp);
struct pci_device *vblk_pci(struct vblk *b);
/* Stops the queues (as a guest reset), frees the blockdev queues. The iothreads must still run. */
void vblk_destroy(struct vblk *b);

/**
 * vblk_resize - block_resize: change the size of the device's node, and tell the driver
 *
 * Control plane. Holds the transport lock (the guest cannot reset or activate the device
 * meanwhile), stops every queue and drains what is in flight, truncates the node, updates
 * the capacity, restarts the queues, and raises a configuration change interrupt. Fails (the
 * size unchanged) when the node cannot be resized (read-only, a format that cannot).
 */
int vblk_resize(struct vblk *b, uint64_t size, struct error **errp);

/**
 * vblk_set_node - serve another node (a mirror's pivot, a chain made shorter)
 *
 * Control plane. Under the transport lock, stops every queue and drains what is in flight,
 * moves the device's blockdev queues to @bs (on the same iothreads), then restarts the
 * queues: no guest request sees half of it. The capacity follows @bs (a configuration change
 * interrupt tells the driver). Refused, nothing changed, when @bs is read-only under a
 * writable device or needs another block size. The caller keeps the graph's users right.
 */
int vblk_set_node(struct vblk *b, struct blockdev *bs, struct error **errp);
/* The same, inside a drained section over the device's node (vblk_drain_ops), which has the
 * transport lock and everything drained already (a mirror's pivot): the configuration change
 * interrupt goes out when the section ends. */
int vblk_set_node_drained(struct vblk *b, struct blockdev *bs, struct error **errp);

/*
 * The device's drain hooks as the root user of its node (opaque: the struct vblk): a drained
 * section holds the transport lock with every queue stopped and nothing in flight, and its end
 * makes the queues forget the files they registered below the node before they run again.
 */
extern const struct blockdev_user_ops vblk_drain_ops;

/*
 * The sums over the device's queues (struct vioq_stats, devices/virtio_ioq.h). Any thread: a
 * sum may miss a request completing meanwhile, never tear a counter.
 */
void vblk_get_stats(const struct vblk *b, struct vioq_stats *st);

/* Number of queues (num-queues). */
unsigned int vblk_nr_queues(const struct vblk *b);

/**
 * vblk_queue_status - a snapshot of queue @index, taken on its iothread (control plane)
 *
 * Holds the transport lock (so the guest cannot reset or activate the device meanwhile) and
 * waits for the queue's iothread to copy the state out. Fails for an index out of range, or
 * an iothread that cannot take the request (stopping).
 */
int vblk_queue_status(struct vblk *b, unsigned int index, struct vioq_status *st,
		      struct error **errp);

#endif
