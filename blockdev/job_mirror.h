/* SPDX-License-Identifier: Apache-2.0 */
/* blockdev-mirror / drive-mirror (blockdev/job_mirror.c says how it works). */
#ifndef VIREO_BLOCKDEV_JOB_MIRROR_H
#define VIREO_BLOCKDEV_JOB_MIRROR_H

#include "blockdev/job.h"

enum job_mirror_sync {
	JOB_MIRROR_SYNC_FULL, /* the whole disk, its backing chain flattened */
	JOB_MIRROR_SYNC_TOP,  /* what the source's top image holds (the target has the backing) */
	JOB_MIRROR_SYNC_NONE, /* only what the guest writes from now on */
};

struct job_mirror_opts {
	enum job_mirror_sync sync;
	uint64_t granularity;  /* of the dirty bitmap; 0: 64 KiB */
	bool write_blocking;   /* copy-mode=write-blocking */
	/* block-commit of the active image: reported as a commit job; sync=top copies what the
	 * images above @stop hold (the base the target is opened from) */
	bool active_commit;
	struct blockdev *stop;
};

/*
 * Mirrors @src (a disk's node) to @target (a node of the same size, not in @src's chain) until
 * job-complete moves @src's devices onto @target. NULL with the reason when refused.
 */
struct job *job_mirror_start(const struct job_opts *o, struct blockdev *src,
			     struct blockdev *target, const struct job_mirror_opts *mo,
			     struct error **errp);

#endif
