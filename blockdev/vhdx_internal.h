/* SPDX-License-Identifier: Apache-2.0 */
/* The vhdx driver's state, shared by its files (vhdx.c, vhdx_commit.c); see vhdx.c's essay. */
#ifndef VIREO_BLOCKDEV_VHDX_INTERNAL_H
#define VIREO_BLOCKDEV_VHDX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blockdev/blockdev.h"
#include "blockdev/vhdx_format.h"
#include "blockdev/vhdx_log.h"

#define VHDX_BAT_PER_SECTOR (VHDX_LOG_SECTOR / 8) /* BAT entries in a 4 KiB sector */

struct vhdx {
	struct blockdev *bs, *file;
	/* set at open; m.hdr and m.hdr_slot change under @lock (header updates) */
	struct vhdx_meta m;
	bool read_only;
	/* opened with close-flush=off (vireo-img convert's new target under -t unsafe): no
	 * flush is made but those the user asks for; at close the BAT goes in place, not
	 * through the log (a crash loses such an image anyway) */
	bool unsafe;
	bool replayed;    /* the log was replayed at open (check counts it as fixed) */
	uint64_t bat_len; /* entries of @bat: bat_entries rounded up to whole sectors */
	/* the BAT, host order; entries change only under @lock, with release stores after the
	 * block's data is written; map() and reads load them with acquire */
	_Atomic uint64_t *bat;
	/* the header's DataWriteGuid was changed in this open: writes may change the disk
	 * (release store under @lock once that header is durable; map() loads it, acquire) */
	atomic_bool data_ready;

	/* under @lock: allocation, the BAT sectors not yet committed, the log's state */
	pthread_mutex_t lock;
	uint64_t alloc_end; /* where the next payload block goes (MiB-aligned) */
	uint64_t *dirty;    /* bitmap of BAT sectors changed since the last commit */
	uint64_t ndirty;
	bool log_active;    /* the current header names our log GUID */
	uint64_t log_head;  /* log offset of the next entry */
	uint64_t log_seq;   /* its sequence number */
};

static inline struct vhdx *vhdx_of(struct blockdev *bs) { return bs->opaque; }

/* vhdx_commit.c, all under v->lock (or with no other user of the node: open, close) */

/* Writes @h (sequence number one past the current header's) over the other header slot, and
 * makes it current. -errno on failure. */
int vhdx_header_update(struct vhdx *v, const struct vhdx_header *h);
/* Before the first change of the disk: new FileWriteGuid and DataWriteGuid, header written
 * and flushed, then v->data_ready. */
int vhdx_prepare_write(struct vhdx *v);
/* Marks the BAT sector holding entry @i as changed. */
void vhdx_mark_dirty(struct vhdx *v, uint64_t i);
/* Every changed BAT sector through the log, then in place (see vhdx_commit.c). */
int vhdx_commit(struct vhdx *v);
/* Commit, flush, and empty the log (header with a zero log GUID), for a clean close; with
 * v->unsafe, the BAT sectors in place and no flush. */
int vhdx_close_log(struct vhdx *v);
/* Replays the log found at open (read-write), then flushes and empties it. */
int vhdx_replay(struct vhdx *v, const struct vhdx_log_seq *seq, struct error **errp);
/* The struct vhdx_io of @v's file. */
void vhdx_io_of(struct vhdx *v, struct vhdx_io *io);

#endif
