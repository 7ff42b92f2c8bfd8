/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SCSI disk emulation: one logical unit (a "scsi-hd") over a block node. It executes commands
 * that devices/scsi_cdb.c decoded: builds the parameter data of INQUIRY, READ CAPACITY, MODE
 * SENSE, REPORT LUNS, ..., and maps READ/WRITE/VERIFY/WRITE SAME/UNMAP/SYNCHRONIZE CACHE onto
 * block-layer requests. It knows nothing of virtio: a transport (virtio-scsi) copies the CDB out
 * of the guest, hands over the guest's data buffers as iovecs, and turns the result (status,
 * sense, residual) into its own response.
 *
 * Ownership and threads. A LUN is created and destroyed by the control plane. Its commands
 * may arrive on several iothreads at once (one per request queue of the transport), each with
 * that thread's blockdev queue for the LUN's node; the execution state of a command lives in
 * its struct scsi_req, which only the submitting iothread touches. The LUN's shared state is:
 *  - the geometry (capacity, block size, limits), written only by the control plane while
 *    every queue of the transport is stopped and drained (scsi_disk_resized, _set_node), read
 *    without a lock otherwise, as the block node's own fields are;
 *  - the unit attention conditions: a bit set (atomic); the control plane sets bits
 *    (fetch_or), the iothread that reports a condition clears its bit (fetch_and), so each is
 *    reported exactly once even when two queues race for it;
 *  - the mode parameters WCE and D_SENSE: atomics, written by MODE SELECT on any iothread or
 *    by the control plane, read at each use (a write that raced a MODE SELECT is flushed as the
 *    value it read decides; SPC allows either).
 *
 * Completion. scsi_disk_submit() either completes the command inline (parsing errors, unit
 * attention, every command without block I/O: it returns true, done() is not called) or
 * starts block-layer requests on the given blockdev queue and returns false; done() then
 * runs exactly once, later, on the same iothread (never inside scsi_disk_submit). Guest
 * buffers must stay mapped until then.
 *
 * Residuals. The command's transfer length (READ's blocks, an allocation length, a parameter
 * list length) and the buffers the transport gives need not agree: the LUN moves what both
 * allow (whole blocks for block I/O) and reports the rest: @residual, the bytes of the buffers
 * left unused (underflow), and @overflow, the bytes the command wanted beyond the buffers. It
 * never writes past the buffers.
 */
#ifndef VIREO_DEVICES_SCSI_DISK_H
#define VIREO_DEVICES_SCSI_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blockdev/blockdev.h"
#include "common/error.h"
#include "devices/scsi_cdb.h"
#include "devices/scsi_sense.h"

struct scsi_disk;

#define SCSI_DISK_SERIAL_MAX 36      /* bytes of serial= kept (VPD 80h) */
#define SCSI_DISK_MAX_XFER (4u << 20) /* default largest READ/WRITE, bytes */
#define SCSI_DISK_MAX_UNMAP (1u << 30) /* largest UNMAP and WRITE SAME, bytes */
#define SCSI_DISK_UNMAP_DESCS 64     /* UNMAP block descriptors per command */
#define SCSI_DISK_MAX_LUNS 510       /* LUNs REPORT LUNS lists at most */

/* Unit attention conditions (scsi_disk_unit_attention) */
#define SCSI_UA_POWER_ON (1u << 0)     /* 29h/00h: power on, reset */
#define SCSI_UA_CAPACITY (1u << 1)     /* 2Ah/09h: capacity data has changed */
#define SCSI_UA_MODE_PARAMS (1u << 2)  /* 2Ah/01h: mode parameters changed */

/**
 * struct scsi_disk_opts - one logical unit
 * @bs: the node (the LUN does not own it; the caller attached itself as the node's user)
 * @lun: its LUN on the target (0..16383), for REPORT LUNS without a callback and the WWN
 * @read_only: refuse writes with DATA PROTECT (also when @bs is read-only)
 * @serial: VPD 80h (at most SCSI_DISK_SERIAL_MAX bytes kept), NULL or "" for none
 * @wwn: the NAA identifier of VPD 83h; 0: derived from the serial (or the node name and LUN)
 * @product: INQUIRY product identification (16 bytes kept), NULL: "VIREO HARDDISK"
 * @revision: INQUIRY product revision level (4 bytes kept), NULL: "1.0"
 * @block_size: logical block size, 0: the node's (its alignment, at least 512)
 * @discard: offer logical block provisioning (UNMAP, WRITE SAME with UNMAP, VPD B2h, LBPME)
 * @writethrough: start with the write cache disabled (WCE=0): every write is flushed
 * @max_xfer: largest READ/WRITE in bytes, 0: SCSI_DISK_MAX_XFER (the transport's segment
 *            limits decide what fits)
 * @list_luns: REPORT LUNS: writes the target's LUNs (at most @max) into @luns and returns how
 *             many; called on an iothread, so the transport keeps the list safe to read
 *             there. NULL: the target has this LUN only.
 * @list_opaque: passed to @list_luns
 * @name: the device's name in its BLOCK_IO_ERROR events (the caller keeps it while the disk
 *        lives), NULL: ""
 */
struct scsi_disk_opts {
	struct blockdev *bs;
	const char *name;
	uint16_t lun;
	bool read_only;
	const char *serial;
	uint64_t wwn;
	const char *product;
	const char *revision;
	uint32_t block_size;
	bool discard;
	bool writethrough;
	uint32_t max_xfer;
	size_t (*list_luns)(void *opaque, uint16_t *luns, size_t max);
	void *list_opaque;
};

/* The disk's part of a request; the transport does not touch it. */
struct scsi_req_priv {
	struct scsi_disk *d;
	struct blockdev_queue *q; /* NULL: synchronous execution (scsi_disk_execute_sync) */
	struct scsi_cmd cmd;
	struct blockdev_req breq;
	struct iovec bounce_iov;
	uint8_t *bounce;           /* VERIFY's read buffer, WRITE SAME's pattern */
	struct scsi_unmap_desc *descs;
	unsigned int ndesc, idx;   /* UNMAP: descriptors, the one in flight */
	uint64_t pos, end;         /* WRITE SAME: bytes done, bytes in all */
	uint64_t io_len;           /* bytes of the buffers the command moves */
	uint64_t have;             /* bytes of the buffers in the command's direction */
	bool flush_after;          /* FUA or WCE=0: flush once the writes completed */
	bool flushing;
	bool sync_pending;         /* synchronous execution: an operation ran, sync_ret is its result */
	int sync_ret;
};

/**
 * struct scsi_req - one SCSI command, embedded in the transport's request
 * @cdb, @cdb_len: the CDB, copied out of the guest (at most SCSI_CDB_MAX bytes)
 * @din, @din_cnt: device-writable guest buffers (data-in), may be empty
 * @dout, @dout_cnt: device-readable guest buffers (data-out), may be empty. The LUN may
 *                   shorten both arrays in place (the last entry, the count) to what it moves.
 * @done: called once when scsi_disk_submit returned false (on the submitting iothread)
 * @status: SCSI_STATUS_GOOD, CHECK_CONDITION, BUSY
 * @sense, @sense_len: sense data of a CHECK CONDITION (fixed or descriptor format, as the
 *                     control mode page's D_SENSE says), else 0 bytes; the transport copies
 *                     what fits its own sense buffer
 * @xfer: bytes moved to or from the buffers
 * @residual: bytes of the buffers (in the command's direction) not used: underflow
 * @overflow: bytes the command wanted to move beyond the buffers
 */
struct scsi_req {
	uint8_t cdb[SCSI_CDB_MAX];
	uint8_t cdb_len;
	struct iovec *din;
	unsigned int din_cnt;
	struct iovec *dout;
	unsigned int dout_cnt;
	void (*done)(struct scsi_req *r);
	uint8_t status;
	uint8_t sense_len;
	uint8_t sense[SCSI_SENSE_MAX];
	uint64_t xfer;
	uint64_t residual;
	uint64_t overflow;
	struct scsi_req_priv priv;
};

/**
 * scsi_disk_create - a logical unit over o->bs
 *
 * Control plane. Reads the node's size and block size; starts with a power-on unit attention
 * pending. Returns NULL with @errp set for a bad block size or a node smaller than a block.
 */
struct scsi_disk *scsi_disk_create(const struct scsi_disk_opts *o, struct error **errp);
/* No command may be in flight. */
void scsi_disk_destroy(struct scsi_disk *d);

/**
 * scsi_disk_submit - execute one command (on the iothread owning @q)
 * @d: the LUN the command is addressed to
 * @q: the blockdev queue of @d's node on the calling iothread
 * @r: the command; the caller set the CDB, the buffers and done
 *
 * Returns true when the command completed inline (results in @r; done() is not called), false
 * when it went to the block layer (done() comes later). See the header comment.
 */
bool scsi_disk_submit(struct scsi_disk *d, struct blockdev_queue *q, struct scsi_req *r);
/* The same, for a caller that parsed the CDB already against this LUN's geometry (@c, with
 * scsi_cdb_parse): it is not parsed a second time. */
bool scsi_disk_submit_parsed(struct scsi_disk *d, struct blockdev_queue *q, struct scsi_req *r,
			     const struct scsi_cmd *c);

/**
 * scsi_disk_execute_sync - execute one command to the end on the calling thread
 *
 * The same execution with the block layer's synchronous calls (tests, tools); done() is not
 * called. Not for iothreads: it blocks.
 */
void scsi_disk_execute_sync(struct scsi_disk *d, struct scsi_req *r);

/**
 * scsi_disk_unit_attention - establish unit attention conditions (SCSI_UA_* bits)
 *
 * Any thread. Each is reported once, to the next command that is not INQUIRY, REPORT LUNS or
 * REQUEST SENSE (which returns it as its data); a power-on condition clears the others.
 */
void scsi_disk_unit_attention(struct scsi_disk *d, unsigned int ua);

/* LOGICAL UNIT RESET, I_T NEXUS RESET: a power-on/reset unit attention (commands in flight are
 * the transport's to abort or drain). */
void scsi_disk_reset(struct scsi_disk *d);

/* The pending conditions (tests, QMP). */
unsigned int scsi_disk_pending_ua(const struct scsi_disk *d);

/**
 * scsi_disk_resized - the node's size changed (block_resize)
 *
 * Control plane, with the transport's queues stopped and drained. Takes the new capacity and,
 * when it differs, establishes CAPACITY DATA HAS CHANGED. Returns true when it changed.
 */
bool scsi_disk_resized(struct scsi_disk *d);

/**
 * scsi_disk_set_node - serve another node (a mirror's pivot), queues stopped and drained
 *
 * Refused when @bs needs another block size, or is read-only under a writable LUN. The
 * capacity follows (with its unit attention).
 */
int scsi_disk_set_node(struct scsi_disk *d, struct blockdev *bs, struct error **errp);

/* The write cache setting (WCE), e.g. for QMP; setting it from the control plane establishes
 * MODE PARAMETERS CHANGED. */
bool scsi_disk_write_cache(const struct scsi_disk *d);
void scsi_disk_set_write_cache(struct scsi_disk *d, bool wce);

/* The geometry the LUN checks commands against. */
const struct scsi_geom *scsi_disk_geom(const struct scsi_disk *d);
struct blockdev *scsi_disk_node(const struct scsi_disk *d);
uint16_t scsi_disk_lun(const struct scsi_disk *d);

#endif
