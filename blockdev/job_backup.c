/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blockdev-backup / drive-backup: a point-in-time copy of a disk while the guest writes.
 *
 * At the start, inside a drained section over the source (nothing in flight), the job takes
 * its point in time: a copy bitmap of what is still to copy (everything for sync=full, what the
 * top image holds for top, the user's bitmap for bitmap/incremental, nothing for none), and a
 * copy-before-write hook on the source. From then on, before a guest write is issued, the hook
 * copies the old data of any part of its range still to copy to the target (the write waits
 * for it, on its iothread); the job's steps copy the rest, range by range, in the background.
 * A range is copied once: by the step or by a hook, whichever takes the job's copy lock for it
 * first, and its bits are cleared under that lock once its old data is on the target. So the
 * target ends up holding the disk as it was at the start.
 *
 * A failing copy in the hook breaks the backup, not the guest's write (QEMU's
 * on-cbw-error=break-snapshot): the job fails at its next step, the write goes on.
 *
 * Bitmaps (sync=bitmap / incremental, or a bitmap given to sync=full): the user's bitmap is
 * frozen at the start (it stops recording, and is busy) and a successor of the job's records
 * the writes that come; at the end, bitmap-mode decides: on-success (and incremental) leaves in
 * it only the writes since the start when the job succeeded, the old bits and the new ones when
 * it failed; never keeps the old bits and the new ones; always leaves the new ones and what was
 * not copied. sync=none copies only what the guest overwrites, and runs until cancelled.
 *
 * Ownership: b->lock guards the copy bitmap's check-copy-clear sequences (the step on the job
 * thread, hooks on iothreads); the step owns b->cursor and b->copied; b->cbw_error is atomic;
 * hooks are set and cleared inside drained sections, so none is running when the job's state
 * is freed; the nodes are held by references dropped by clean.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "blockdev/blockdev.h"
#include "blockdev/copy.h"
#include "blockdev/job_backup.h"
#include "blockdev/job_chain.h"
#include "common/util.h"

struct backup {
	struct blockdev *src, *target;
	struct blockdev *stop;          /* sync=top: the source's backing node */
	bool top_only, sync_none;
	struct blockdev_bitmap *copy;   /* still to copy: the job's own, on @src, not recording */
	pthread_mutex_t lock;
	bool write_failed;              /* lock: the last copy's error came from the target */
	atomic_int cbw_error;
	struct blockdev_bitmap *user, *successor;
	bool user_was_enabled;
	enum job_bitmap_mode mode;
	struct blockdev_user src_user, target_user;
	uint64_t cursor, copied, total;
	uint8_t *buf;              /* the copy's, kept from chunk to chunk (job_chunk_bufs) */
};

static int copy_range(struct backup *b, uint64_t off, uint64_t len)
{
	struct blockdev_copy o = {
		.src = b->src, .dst = b->target, .offset = off, .length = len,
		.top_only = b->top_only, .stop = b->stop, .write_zeroes = true,
		.zero_flags = BLOCKDEV_ZERO_MAY_UNMAP, .in_order = true, .parallel = 1,
		.write_failed = &b->write_failed, .bufs = job_chunk_bufs(&b->buf, 1),
	};

	return blockdev_copy_run(&o);
}

/* Copies what is still to copy in [off, off+len) (lock held); returns the bytes copied or
 * -errno (what failed stays to copy). */
static int64_t copy_pending(struct backup *b, uint64_t off, uint64_t len)
{
	uint64_t end = MIN(off + len, b->src->size), start, n;
	int64_t done = 0;

	while (off < end && blockdev_bitmap_next_dirty(b->copy, off, end - off, &start, &n)) {
		int ret;

		if (start >= end)
			break;
		n = MIN(n, end - start);
		ret = copy_range(b, start, n);
		if (ret)
			return ret;
		blockdev_bitmap_reset(b->copy, start, n);
		done += (int64_t)n;
		off = start + n;
	}
	return done;
}

/* The copy-before-write hook (a guest write's iothread, before it is issued). */
static int backup_before_write(void *opaque, uint64_t off, uint64_t len)
{
	struct backup *b = opaque;
	uint64_t gran = blockdev_bitmap_granularity(b->copy);
	uint64_t start = ALIGN_DOWN(off, gran), end = ALIGN_UP(off + len, gran);
	int64_t r;

	if (atomic_load(&b->cbw_error))
		return 0; /* broken already: the guest goes on */
	/* whole granules: a granule's old data goes out at once */
	pthread_mutex_lock(&b->lock);
	r = copy_pending(b, start, end - start);
	pthread_mutex_unlock(&b->lock);
	if (r < 0) {
		int none = 0;

		atomic_compare_exchange_strong(&b->cbw_error, &none, (int)r);
	}
	return 0;
}

static int backup_step(struct job *job)
{
	struct backup *b = job_opaque(job);
	uint64_t start, len;
	int64_t r;
	bool write_failed;
	int err = atomic_load(&b->cbw_error);

	if (err)
		return err; /* a hook could not copy: the point in time is lost */
	pthread_mutex_lock(&b->lock);
	/* whole granules: a step's bits are cleared only where it covers a granule whole */
	if (!blockdev_bitmap_next_dirty(b->copy, b->cursor,
					ALIGN_UP(job_step_bytes(job),
						 blockdev_bitmap_granularity(b->copy)),
					&start, &len)) {
		pthread_mutex_unlock(&b->lock);
		if (b->cursor) {
			b->cursor = 0;
			return JOB_STEP_MORE;
		}
		job_progress(job, b->copied, b->total, 0);
		/* sync=none copies what the guest overwrites until it is cancelled */
		return b->sync_none ? JOB_STEP_WAIT : JOB_STEP_DONE;
	}
	r = copy_pending(b, start, len);
	write_failed = b->write_failed;
	pthread_mutex_unlock(&b->lock);
	if (r < 0) {
		enum job_on_error a = job_io_error(job, (int)r, !write_failed);

		if (a == JOB_ON_ERROR_REPORT)
			return (int)r;
		if (a == JOB_ON_ERROR_STOP)
			return JOB_STEP_MORE;
		blockdev_bitmap_reset(b->copy, start, len); /* ignore: skipped; fails at the end */
		r = 0;
	}
	b->cursor = start + len;
	b->copied += (uint64_t)r;
	job_progress(job, b->copied, b->total, (uint64_t)r);
	return JOB_STEP_MORE;
}

/* The user's bitmap after the job, by bitmap-mode (see the top of the file). */
static void settle_bitmap(struct backup *b, bool ok)
{
	if (!b->user)
		return;
	if ((ok && b->mode != JOB_BITMAP_NEVER) ||
	    (!ok && b->mode == JOB_BITMAP_ALWAYS)) {
		blockdev_bitmap_clear(b->user);
		if (!ok) /* always, after a failure: what was not copied stays to copy */
			blockdev_bitmap_merge(b->user, b->copy);
	}
	blockdev_bitmap_merge(b->user, b->successor);
	blockdev_bitmap_enable(b->user, b->user_was_enabled);
	blockdev_bitmap_set_busy(b->user, false);
	blockdev_bitmap_remove(b->src, b->successor, NULL);
	b->user = NULL;
}

/*
 * Ends the copy-before-write and settles the user's bitmap, with no guest write in flight
 * (control plane): a write completing while the successor is merged into the user's bitmap
 * could set its bit in the successor after the merge read it (its iothread saw the user's
 * bitmap still disabled), and be lost with the successor.
 */
static void end_point_in_time(struct backup *b, bool ok)
{
	struct blockdev_drain d;
	bool drained = blockdev_drained_begin(b->src, &d, NULL) == 0;

	blockdev_set_before_write(b->src, NULL, NULL);
	settle_bitmap(b, ok);
	if (drained)
		blockdev_drained_end(&d);
}

static int backup_prepare(struct job *job, struct error **errp)
{
	struct backup *b = job_opaque(job);

	if (blockdev_flush(b->target) < 0) {
		error_setg(errp, "flushing the backup target '%s' failed", b->target->node_name);
		return -1; /* abort ends it */
	}
	end_point_in_time(b, true);
	return 0;
}

static void backup_abort(struct job *job)
{
	struct backup *b = job_opaque(job);

	end_point_in_time(b, false);
}

static void backup_clean(struct job *job)
{
	struct backup *b = job_opaque(job);

	blockdev_detach(&b->target_user);
	blockdev_detach(&b->src_user);
	blockdev_bitmap_remove(b->src, b->copy, NULL);
	pthread_mutex_destroy(&b->lock);
	job_chunk_bufs_free(&b->buf, 1);
	blockdev_unref(b->target);
	blockdev_unref(b->src);
	free(b);
}

static const struct job_driver backup_driver = {
	.type = "backup",
	.step = backup_step,
	.prepare = backup_prepare,
	.abort = backup_abort,
	.clean = backup_clean,
};

/* The copy bitmap at the point in time, and the user's bitmap frozen (drained, lock free). */
static int take_point_in_time(struct backup *b, const struct job_backup_opts *bo,
			      struct error **errp)
{
	b->copy = blockdev_bitmap_add(b->src, NULL, bo->granularity, true, errp);
	if (!b->copy)
		return -1;
	if (bo->sync == JOB_BACKUP_SYNC_FULL || bo->sync == JOB_BACKUP_SYNC_TOP)
		blockdev_bitmap_set(b->copy, 0, b->src->size);
	else if (bo->sync == JOB_BACKUP_SYNC_BITMAP)
		blockdev_bitmap_merge(b->copy, bo->bitmap);
	if (bo->bitmap) {
		b->successor = blockdev_bitmap_add(b->src, NULL,
						   blockdev_bitmap_granularity(bo->bitmap), false,
						   errp);
		if (!b->successor)
			return -1;
		b->user = bo->bitmap;
		b->user_was_enabled = blockdev_bitmap_enabled(b->user);
		blockdev_bitmap_enable(b->user, false);
		blockdev_bitmap_set_busy(b->user, true);
	}
	b->total = blockdev_bitmap_count(b->copy);
	return 0;
}

struct job *job_backup_start(const struct job_opts *o, struct blockdev *src,
			     struct blockdev *target, const struct job_backup_opts *bo,
			     struct error **errp)
{
	struct blockdev *nodes[] = { src, target, NULL };
	struct blockdev_drain d;
	struct backup *b;
	struct job *job;

	if (target == src || job_chain_below(src, target) || job_chain_below(target, src)) {
		error_setg(errp, "target: node '%s' is the source or in its backing chain",
			   target->node_name);
		return NULL;
	}
	if (target->size < src->size) {
		error_setg(errp, "target: node '%s' is smaller than the disk", target->node_name);
		return NULL;
	}
	if (bo->sync == JOB_BACKUP_SYNC_BITMAP && !bo->bitmap) {
		error_setg(errp, "Bitmap sync mode must be given a bitmap");
		return NULL;
	}
	if (bo->bitmap && blockdev_bitmap_check(bo->bitmap, errp))
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b) {
		error_setg(errp, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&b->lock, NULL);
	b->src = src;
	b->target = target;
	b->top_only = bo->sync == JOB_BACKUP_SYNC_TOP;
	b->stop = b->top_only ? src->backing : NULL;
	b->sync_none = bo->sync == JOB_BACKUP_SYNC_NONE;
	b->mode = bo->bitmap_mode;
	b->src_user = (struct blockdev_user){
		.role = "backup job (source)", .perm = 0,
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	b->target_user = (struct blockdev_user){
		.role = "backup job (target)",
		.perm = BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_WRITE_UNCHANGED,
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	if (blockdev_attach(src, &b->src_user, errp) < 0)
		goto fail;
	if (blockdev_attach(target, &b->target_user, errp) < 0)
		goto fail_src;
	/* the point in time: nothing in flight while it is taken and the hook goes in */
	if (blockdev_drained_begin(src, &d, errp) < 0)
		goto fail_target;
	if (take_point_in_time(b, bo, errp) < 0) {
		blockdev_drained_end(&d);
		goto fail_bitmaps;
	}
	blockdev_ref(src);
	blockdev_ref(target);
	job = job_start(&backup_driver, b, o, nodes, errp);
	if (job)
		blockdev_set_before_write(src, backup_before_write, b);
	blockdev_drained_end(&d);
	if (job)
		return job;
	blockdev_unref(target);
	blockdev_unref(src);
fail_bitmaps:
	if (b->user) {
		blockdev_bitmap_enable(b->user, b->user_was_enabled);
		blockdev_bitmap_set_busy(b->user, false);
	}
	if (b->successor)
		blockdev_bitmap_remove(src, b->successor, NULL);
	if (b->copy)
		blockdev_bitmap_remove(src, b->copy, NULL);
fail_target:
	blockdev_detach(&b->target_user);
fail_src:
	blockdev_detach(&b->src_user);
fail:
	pthread_mutex_destroy(&b->lock);
	free(b);
	return NULL;
}
