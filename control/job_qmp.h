/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QMP commands of block jobs (QEMU's names and arguments), for every program that has a
 * job manager (vireo, the storage daemon): each lists them in its command table. They run on
 * the control-plane thread. A "device" argument names a node as block_qmp_find_node() says
 * (vireo: a disk's id, or a node name).
 */
#ifndef VIREO_CONTROL_JOB_QMP_H
#define VIREO_CONTROL_JOB_QMP_H

#include "control/qmp_server.h"

#define JOB_QMP_COMMANDS \
	{ "block-commit", job_qmp_block_commit }, \
	{ "block-job-cancel", job_qmp_block_job_cancel }, \
	{ "block-job-complete", job_qmp_block_job_complete }, \
	{ "block-job-dismiss", job_qmp_job_dismiss }, \
	{ "block-job-finalize", job_qmp_job_finalize }, \
	{ "block-job-pause", job_qmp_block_job_pause }, \
	{ "block-job-resume", job_qmp_block_job_resume }, \
	{ "block-job-set-speed", job_qmp_block_job_set_speed }, \
	{ "block-stream", job_qmp_block_stream }, \
	{ "blockdev-backup", job_qmp_blockdev_backup }, \
	{ "blockdev-create", job_qmp_blockdev_create }, \
	{ "blockdev-mirror", job_qmp_blockdev_mirror }, \
	{ "drive-backup", job_qmp_drive_backup }, \
	{ "drive-mirror", job_qmp_drive_mirror }, \
	{ "job-cancel", job_qmp_job_cancel }, \
	{ "job-complete", job_qmp_job_complete }, \
	{ "job-dismiss", job_qmp_job_dismiss }, \
	{ "job-finalize", job_qmp_job_finalize }, \
	{ "job-pause", job_qmp_job_pause }, \
	{ "job-resume", job_qmp_job_resume }, \
	{ "query-block-jobs", job_qmp_query_block_jobs }, \
	{ "query-jobs", job_qmp_query_jobs }

#define JOB_QMP_DECLARE(fn) \
	int fn(void *opaque, struct json_object *args, struct json_object **ret, \
	       struct error **errp)
JOB_QMP_DECLARE(job_qmp_block_commit);
JOB_QMP_DECLARE(job_qmp_block_stream);
JOB_QMP_DECLARE(job_qmp_blockdev_backup);
JOB_QMP_DECLARE(job_qmp_blockdev_create);
JOB_QMP_DECLARE(job_qmp_blockdev_mirror);
JOB_QMP_DECLARE(job_qmp_drive_backup);
JOB_QMP_DECLARE(job_qmp_drive_mirror);
JOB_QMP_DECLARE(job_qmp_block_job_cancel);
JOB_QMP_DECLARE(job_qmp_block_job_complete);
JOB_QMP_DECLARE(job_qmp_block_job_pause);
JOB_QMP_DECLARE(job_qmp_block_job_resume);
JOB_QMP_DECLARE(job_qmp_block_job_set_speed);
JOB_QMP_DECLARE(job_qmp_job_cancel);
JOB_QMP_DECLARE(job_qmp_job_complete);
JOB_QMP_DECLARE(job_qmp_job_dismiss);
JOB_QMP_DECLARE(job_qmp_job_finalize);
JOB_QMP_DECLARE(job_qmp_job_pause);
JOB_QMP_DECLARE(job_qmp_job_resume);
JOB_QMP_DECLARE(job_qmp_query_block_jobs);
JOB_QMP_DECLARE(job_qmp_query_jobs);

#endif
