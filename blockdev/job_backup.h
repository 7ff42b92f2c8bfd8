/* SPDX-License-Identifier: Apache-2.0 */
/* blockdev-backup / drive-backup (blockdev/job_backup.c says how it works). */
#ifndef VIREO_BLOCKDEV_JOB_BACKUP_H
#define VIREO_BLOCKDEV_JOB_BACKUP_H

#include "blockdev/job.h"

struct blockdev_bitmap;

enum job_backup_sync {
	JOB_BACKUP_SYNC_FULL,   /* the whole disk, its backing chain flattened */
	JOB_BACKUP_SYNC_TOP,    /* what the disk's top image holds */
	JOB_BACKUP_SYNC_BITMAP, /* what the bitmap marks (incremental) */
	JOB_BACKUP_SYNC_NONE,   /* only the old data of what the guest overwrites, until cancelled */
};

/* What becomes of the user's bitmap (QEMU's BitmapSyncMode). */
enum job_bitmap_mode {
	JOB_BITMAP_ON_SUCCESS,
	JOB_BITMAP_NEVER,
	JOB_BITMAP_ALWAYS,
};

struct job_backup_opts {
	enum job_backup_sync sync;
	struct blockdev_bitmap *bitmap; /* sync=bitmap's, or one sync=full synchronizes */
	enum job_bitmap_mode bitmap_mode;
	uint64_t granularity;           /* of the copy bitmap; 0: 64 KiB */
};

/* Starts a point-in-time backup of @src into @target (at least @src's size). */
struct job *job_backup_start(const struct job_opts *o, struct blockdev *src,
			     struct blockdev *target, const struct job_backup_opts *bo,
			     struct error **errp);

#endif
