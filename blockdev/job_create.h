/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blockdev-create as a job (QEMU's "create" job): a host file (driver "file") or a qcow2 image
 * written onto an open file node (driver "qcow2"), created by the job thread in one step. Like
 * QEMU's, it is a plain job (no BLOCK_JOB_* events) that waits in CONCLUDED for job-dismiss.
 */
#ifndef VIREO_BLOCKDEV_JOB_CREATE_H
#define VIREO_BLOCKDEV_JOB_CREATE_H

#include "blockdev/blockdev.h"
#include "blockdev/job.h"
#include "blockdev/qcow2.h"

enum job_create_driver { JOB_CREATE_FILE, JOB_CREATE_QCOW2 };

/**
 * struct job_create_opts - what to create (checked by the caller: qcow2_create_check)
 * @driver: JOB_CREATE_FILE or JOB_CREATE_QCOW2
 * @filename: file: the host file to create
 * @size: file: its size in bytes
 * @prealloc: file: OFF, FALLOC or FULL
 * @nocow: file: copy-on-write off (btrfs)
 * @file: qcow2: the open node the image is written onto (the job takes a reference)
 * @data_file: qcow2: the open external data file node, or NULL (qcow2.data_file names it)
 * @qcow2: qcow2: the image's options (the strings are copied)
 */
struct job_create_opts {
	enum job_create_driver driver;
	const char *filename;
	uint64_t size;
	enum blockdev_prealloc prealloc;
	bool nocow;
	struct blockdev *file;
	struct blockdev *data_file;
	struct qcow2_create_opts qcow2;
};

/*
 * Starts the create job @o->id. qcow2: the job becomes the writer of @file and @data_file
 * (refused, naming the node, when it is read-only, in a job or used by a writer). The defaults
 * of blockdev-create are the caller's: auto-finalize on, auto-dismiss off.
 */
struct job *job_create_start(const struct job_opts *o, const struct job_create_opts *co,
			     struct error **errp);

#endif
