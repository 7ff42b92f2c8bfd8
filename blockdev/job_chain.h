/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The jobs that change a backing chain: block-stream (an image takes in what the images below
 * it hold, down to a base, and then backs onto that base) and block-commit (what images hold
 * goes down into a base, and the image above them backs onto the base). Their QMP arguments
 * resolved to nodes; each returns the started job, or NULL with a message naming what is
 * wrong (a base that is not in the chain, a node already in a job, an image that cannot be
 * written).
 */
#ifndef VIREO_BLOCKDEV_JOB_CHAIN_H
#define VIREO_BLOCKDEV_JOB_CHAIN_H

#include "blockdev/job.h"

struct blockdev;

/*
 * block-stream: @top takes in what the images from its backing node down to @base (excluded;
 * NULL: the whole chain) hold, then backs onto @base, recording @backing_file (NULL: @base's
 * file name) as its backing file.
 */
struct job *job_stream_start(const struct job_opts *o, struct blockdev *top,
			     struct blockdev *base, const char *backing_file,
			     struct error **errp);

/*
 * block-commit: what the images from @top down to @base (excluded) hold is written into @base,
 * then the image above @top (in @active's chain) backs onto @base, recording @backing_file
 * (NULL: @base's file name). @top == @active (active commit): a mirror of the disk into @base,
 * READY when in sync, and job-complete moves the disk's devices onto @base.
 */
struct job *job_commit_start(const struct job_opts *o, struct blockdev *active,
			     struct blockdev *top, struct blockdev *base,
			     const char *backing_file, struct error **errp);

/* Shared by both: the name an image records for @base as its backing file (@given, or @base's
 * file name made absolute), malloc'd, or NULL for no base. */
char *job_chain_backing_name(const struct blockdev *base, const char *given);
/* Is @b in the backing chain strictly below @top? */
bool job_chain_below(const struct blockdev *top, const struct blockdev *b);

#endif
