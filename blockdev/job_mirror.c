/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blockdev-mirror / drive-mirror: copy a live disk to a target while the guest writes, follow
 * its writes until job-complete, then move the disk's devices onto the target (the pivot).
 *
 * A dirty bitmap of the job's own on the source records every write from the start (the engine
 * sets bits when a write completes). sync=full (and top) marks everything dirty at the start;
 * sync=none marks nothing. A step takes the next dirty range (a chunk at most), clears its bits,
 * then reads the source and writes the target: a guest write that lands after the read sets the
 * bits again, so the range is copied again later; none is lost. When a pass finds nothing dirty
 * the job is READY and keeps following the writes. On job-complete the control plane opens a
 * drained section over the source (no guest request in flight or coming), copies what is still
 * dirty, flushes the target, and moves the source's devices to the target
 * (blockdev_replace_node); the guest's next request goes to the target. Cancelled in READY
 * without force, it does the same without the move (QEMU: a point-in-time copy).
 *
 * copy-mode=write-blocking: every guest write completing on the source is also written to the
 * target before the guest sees it complete (blockdev_set_write_hook, on its iothread), so a
 * guest that writes faster than the background copy cannot keep the job from converging: only
 * a write that overlaps the range a step is copying at that moment is marked dirty again.
 *
 * sync=top copies only what the source's top image holds; the target must read the rest from a
 * backing file of its own (drive-mirror makes it so). block-commit of the active image is this
 * job too: a sync=top mirror of the disk into its base (opened again read-write), copying what
 * the images above the base hold; the pivot leaves the disk on the base.
 *
 * Ownership: the step (job thread) owns m->cursor and m->copied; the bitmap is shared as
 * bitmap.h says; m->busy_start/end (the range a step copies) are atomics the write hook reads;
 * the nodes are held by references dropped by clean.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "blockdev/blockdev.h"
#include "blockdev/copy.h"
#include "blockdev/job_chain.h"
#include "blockdev/job_mirror.h"
#include "common/util.h"

/*
 * At full speed a step copies up to MIRROR_STEP_MAX bytes of a dirty run with MIRROR_PARALLEL
 * chunks in flight (reads of the next chunks overlap the write of the first), as QEMU's mirror
 * keeps up to 16 MiB in flight; under a speed, a chunk at most, one at a time.
 */
#define MIRROR_PARALLEL 4
#define MIRROR_STEP_MAX (8 * BLOCKDEV_COPY_CHUNK)

struct mirror {
	struct job *job;
	struct blockdev *src, *target;
	struct blockdev *stop;          /* sync=top: the source's backing node, else NULL */
	bool top_only;
	bool write_blocking;
	struct blockdev_bitmap *dirty;  /* the job's own, on @src */
	struct blockdev_user src_user, target_user;
	uint64_t cursor, copied;
	_Atomic uint64_t busy_start, busy_end; /* the range a step copies now (end 0: none) */
	uint8_t *bufs[MIRROR_PARALLEL]; /* the copy's, kept from step to step */
};

/* Copies [off, off+len) of the source to the target: -errno (*@write_failed, if given: from a
 * write to the target), 0. */
static int copy_range(struct mirror *m, uint64_t off, uint64_t len, bool *write_failed)
{
	uint64_t chunks = (off + len + BLOCKDEV_COPY_CHUNK - 1) / BLOCKDEV_COPY_CHUNK -
			  off / BLOCKDEV_COPY_CHUNK;
	struct blockdev_copy o = {
		.src = m->src, .dst = m->target, .offset = off, .length = len,
		.top_only = m->top_only, .stop = m->stop, .write_zeroes = true,
		.zero_flags = BLOCKDEV_ZERO_MAY_UNMAP, .in_order = true,
		.parallel = (unsigned int)MIN(chunks, (uint64_t)MIRROR_PARALLEL),
		.write_failed = write_failed, .bufs = job_chunk_bufs(m->bufs, MIRROR_PARALLEL),
	};

	return blockdev_copy_run(&o);
}

static int mirror_step(struct job *job)
{
	struct mirror *m = job_opaque(job);
	uint64_t start, len;
	bool write_failed = false;
	int ret;

	/* whole granules: a step's bits are cleared only where it covers a granule whole */
	if (!blockdev_bitmap_next_dirty(m->dirty, m->cursor,
					ALIGN_UP(job_step_bytes_up_to(job, MIRROR_STEP_MAX),
						 blockdev_bitmap_granularity(m->dirty)),
					&start, &len)) {
		job_progress(job, m->copied, m->copied, 0);
		if (m->cursor) { /* look from the start again before saying it is in sync */
			m->cursor = 0;
			return JOB_STEP_MORE;
		}
		return JOB_STEP_DONE;
	}
	/* clear first, then read: a write completing after the read sets the bits again */
	blockdev_bitmap_reset(m->dirty, start, len);
	atomic_store(&m->busy_start, start);
	atomic_store(&m->busy_end, start + len);
	ret = copy_range(m, start, len, &write_failed);
	atomic_store(&m->busy_end, 0);
	if (ret) {
		enum job_on_error a;

		blockdev_bitmap_set(m->dirty, start, len); /* still to copy */
		a = job_io_error(job, ret, !write_failed);
		if (a == JOB_ON_ERROR_REPORT)
			return ret;
		if (a == JOB_ON_ERROR_STOP)
			return JOB_STEP_MORE;
		/* ignore: go on past it; the job fails at its end */
	}
	m->cursor = start + len;
	m->copied += ret ? 0 : len;
	job_progress(job, m->copied, m->copied + blockdev_bitmap_count(m->dirty), ret ? 0 : len);
	return JOB_STEP_MORE;
}

/* write-blocking: a guest write completed on the source; the target gets it too (iothread). */
static int mirror_write_hook(void *opaque, uint64_t off, const struct iovec *iov, int iovcnt,
			     uint64_t len)
{
	struct mirror *m = opaque;
	uint64_t bs = atomic_load(&m->busy_start), be = atomic_load(&m->busy_end);
	int ret = iov ? blockdev_pwritev(m->target, off, iov, iovcnt) :
			blockdev_write_zeroes(m->target, off, len, BLOCKDEV_ZERO_MAY_UNMAP);

	/* a step copying an overlapping range may have read the source before this write */
	if (ret || (be && off < be && off + len > bs))
		blockdev_bitmap_set(m->dirty, off, len);
	return 0; /* the guest's write succeeded on the source: a target error only re-copies */
}

/* The rest, with nothing in flight on the source (control plane, drained). */
static int copy_the_rest(struct mirror *m, struct error **errp)
{
	uint64_t start, len;

	while (blockdev_bitmap_next_dirty(m->dirty, 0, BLOCKDEV_COPY_CHUNK, &start, &len)) {
		int ret;

		blockdev_bitmap_reset(m->dirty, start, len);
		ret = copy_range(m, start, len, NULL);
		if (ret) {
			error_setg_errno(errp, -ret, "copying to '%s'", m->target->node_name);
			return -1;
		}
		m->copied += len;
	}
	if (blockdev_flush(m->target) < 0) {
		error_setg(errp, "flushing '%s' failed", m->target->node_name);
		return -1;
	}
	return 0;
}

static int mirror_prepare(struct job *job, struct error **errp)
{
	struct mirror *m = job_opaque(job);
	struct blockdev_drain d;
	int ret;

	if (blockdev_drained_begin(m->src, &d, errp) < 0)
		return -1;
	blockdev_set_write_hook(m->src, NULL, NULL);
	ret = copy_the_rest(m, errp);
	if (!ret) /* all copied: BLOCK_JOB_COMPLETED's offset is its len, as QEMU's */
		job_progress(job, m->copied, m->copied, 0);
	if (!ret && !job_no_pivot(job)) {
		/* the job writes no more: the devices take the target with their own rights */
		blockdev_detach(&m->target_user);
		blockdev_detach(&m->src_user);
		ret = blockdev_replace_node(m->src, m->target, errp);
	}
	blockdev_drained_end(&d);
	return ret;
}

static void mirror_abort(struct job *job)
{
	struct mirror *m = job_opaque(job);
	struct blockdev_drain d;

	if (!m->write_blocking)
		return;
	/* no guest write may be in the hook when clean frees what it uses */
	if (blockdev_drained_begin(m->src, &d, NULL) == 0) {
		blockdev_set_write_hook(m->src, NULL, NULL);
		blockdev_drained_end(&d);
	} else {
		blockdev_set_write_hook(m->src, NULL, NULL);
	}
}

static void mirror_clean(struct job *job)
{
	struct mirror *m = job_opaque(job);

	blockdev_detach(&m->target_user);
	blockdev_detach(&m->src_user);
	blockdev_bitmap_remove(m->src, m->dirty, NULL);
	blockdev_unref(m->target);
	blockdev_unref(m->src);
	job_chunk_bufs_free(m->bufs, MIRROR_PARALLEL);
	free(m);
}

static const struct job_driver mirror_driver = {
	.type = "mirror",
	.needs_complete = true,
	.step = mirror_step,
	.prepare = mirror_prepare,
	.abort = mirror_abort,
	.clean = mirror_clean,
};

/* block-commit of the active image is a mirror into the base, under QEMU's name for it */
static const struct job_driver active_commit_driver = {
	.type = "commit",
	.needs_complete = true,
	.step = mirror_step,
	.prepare = mirror_prepare,
	.abort = mirror_abort,
	.clean = mirror_clean,
};

struct job *job_mirror_start(const struct job_opts *o, struct blockdev *src,
			     struct blockdev *target, const struct job_mirror_opts *mo,
			     struct error **errp)
{
	struct blockdev *nodes[] = { src, target, NULL };
	struct mirror *m;
	struct job *job;

	if (target == src || (!mo->active_commit && job_chain_below(src, target)) ||
	    job_chain_below(target, src)) {
		error_setg(errp, "target: node '%s' is the source or in its backing chain",
			   target->node_name);
		return NULL;
	}
	if (target->size != src->size) {
		error_setg(errp, "Source and target image have different sizes");
		return NULL;
	}
	if (target->read_only) {
		error_setg(errp, "target: node '%s' is read-only", target->node_name);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		error_setg(errp, "out of memory");
		return NULL;
	}
	m->src = src;
	m->target = target;
	m->top_only = mo->sync == JOB_MIRROR_SYNC_TOP;
	m->stop = m->top_only ? (mo->stop ? mo->stop : src->backing) : NULL;
	m->write_blocking = mo->write_blocking;
	/* the source changes under the guest, and the job needs nothing of it but reads; the
	 * target is the job's to write until the pivot */
	m->src_user = (struct blockdev_user){
		.role = "mirror job (source)", .perm = 0,
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	m->target_user = (struct blockdev_user){
		.role = "mirror job (target)",
		.perm = BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_WRITE_UNCHANGED,
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	m->dirty = blockdev_bitmap_add(src, NULL, mo->granularity, false, errp);
	if (!m->dirty)
		goto fail;
	if (mo->sync != JOB_MIRROR_SYNC_NONE)
		blockdev_bitmap_set(m->dirty, 0, src->size);
	if (blockdev_attach(src, &m->src_user, errp) < 0)
		goto fail_bitmap;
	if (blockdev_attach(target, &m->target_user, errp) < 0)
		goto fail_src;
	blockdev_ref(src);
	blockdev_ref(target);
	job = job_start(mo->active_commit ? &active_commit_driver : &mirror_driver, m, o, nodes,
			errp);
	if (!job) {
		blockdev_unref(target);
		blockdev_unref(src);
		goto fail_target;
	}
	m->job = job;
	if (m->write_blocking) {
		/* the hook first, then the bitmap stops recording: a write completing in between
		 * is mirrored and marked, none is neither (the engine marks, then calls the hook) */
		blockdev_set_write_hook(src, mirror_write_hook, m);
		blockdev_bitmap_enable(m->dirty, false);
	}
	return job;
fail_target:
	blockdev_detach(&m->target_user);
fail_src:
	blockdev_detach(&m->src_user);
fail_bitmap:
	blockdev_bitmap_remove(src, m->dirty, NULL);
fail:
	free(m);
	return NULL;
}
