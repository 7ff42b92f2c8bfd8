/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QMP's block job commands over the job manager (blockdev/job.h): arguments taken by name, as
 * QEMU spells them, anything left over refused by name.
 */
#include "control/job_qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/bitmap.h"
#include "blockdev/job_backup.h"
#include "blockdev/job_chain.h"
#include "blockdev/job_create.h"
#include "blockdev/job_mirror.h"
#include "blockdev/qcow2.h"
#include "common/keyval.h"
#include "common/util.h"
#include "control/block_qmp.h"

/* The live job @id, or NULL with QEMU's message. */
static struct job *find_job(const char *id, bool block, struct error **errp)
{
	struct job *j = job_find(id);

	if (!j || (block && !job_is_block_job(j))) {
		if (block)
			error_setg(errp, "Block job '%s' not found", id);
		else
			error_setg(errp, "Job not found");
	}
	return j;
}

/* The job named by @key ("id" for job-*, "device" for block-job-*), every argument taken. */
static struct job *job_arg(struct json_object *a, const char *key, struct error **errp)
{
	const char *id;

	if (keyval_need_string(a, key, &id, errp) < 0 || keyval_refuse_leftovers(a, NULL, errp) < 0)
		return NULL;
	return find_job(id, strcmp(key, "id"), errp);
}

/* A verb on the job @key names ("id" for job-*, "device" for block-job-*). */
static int verb(struct json_object *a, const char *key, int (*fn)(struct job *, struct error **),
		struct error **errp)
{
	struct job *j = job_arg(a, key, errp);

	return j ? fn(j, errp) : -1;
}

static int cancel_forced(struct job *j, struct error **errp)
{
	return job_cancel(j, true, errp);
}

#define JOB_QMP_VERB(name, key, fn) \
	int name(void *o, struct json_object *a, struct json_object **ret, struct error **errp) \
	{ \
		return verb(a, key, fn, errp); \
	}
JOB_QMP_VERB(job_qmp_job_pause, "id", job_pause)
JOB_QMP_VERB(job_qmp_block_job_pause, "device", job_pause)
JOB_QMP_VERB(job_qmp_job_resume, "id", job_resume)
JOB_QMP_VERB(job_qmp_block_job_resume, "device", job_resume)
JOB_QMP_VERB(job_qmp_job_complete, "id", job_complete)
JOB_QMP_VERB(job_qmp_block_job_complete, "device", job_complete)
/* job-finalize and block-job-finalize both take "id"; so do the dismisses */
JOB_QMP_VERB(job_qmp_job_finalize, "id", job_finalize)
JOB_QMP_VERB(job_qmp_job_dismiss, "id", job_dismiss)
/* job-cancel has no force: QEMU's forces it */
JOB_QMP_VERB(job_qmp_job_cancel, "id", cancel_forced)

int job_qmp_block_job_cancel(void *o, struct json_object *a, struct json_object **ret,
			     struct error **errp)
{
	const char *id;
	bool force = false;
	struct job *j;

	if (keyval_need_string(a, "device", &id, errp) < 0 ||
	    keyval_take_bool(a, "force", &force, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0 || !(j = find_job(id, true, errp)))
		return -1;
	return job_cancel(j, force, errp);
}

int job_qmp_block_job_set_speed(void *o, struct json_object *a, struct json_object **ret,
				struct error **errp)
{
	uint64_t speed = 0;
	const char *id;
	struct job *j;

	if (keyval_need_string(a, "device", &id, errp) < 0)
		return -1;
	if (keyval_take_u64(a, "speed", &speed, errp) != 0) {
		if (!errp || !*errp)
			error_setg(errp, "Parameter 'speed' is missing");
		return -1;
	}
	if (keyval_refuse_leftovers(a, NULL, errp) < 0 || !(j = find_job(id, true, errp)))
		return -1;
	return job_set_speed(j, speed, errp);
}

int job_qmp_query_jobs(void *o, struct json_object *a, struct json_object **ret,
		       struct error **errp)
{
	*ret = job_query_jobs();
	return 0;
}

int job_qmp_query_block_jobs(void *o, struct json_object *a, struct json_object **ret,
			     struct error **errp)
{
	*ret = job_query_block_jobs();
	return 0;
}

/* ---- starting jobs ------------------------------------------------------------------------- */

static int on_error_of(const char *key, const char *v, enum job_on_error *out,
		       struct error **errp)
{
	if (!v || !strcmp(v, "report"))
		*out = JOB_ON_ERROR_REPORT;
	else if (!strcmp(v, "ignore"))
		*out = JOB_ON_ERROR_IGNORE;
	else if (!strcmp(v, "stop"))
		*out = JOB_ON_ERROR_STOP;
	else if (!strcmp(v, "enospc"))
		*out = JOB_ON_ERROR_ENOSPC;
	else {
		error_setg(errp, "%s: '%s' is not report, ignore, stop or enospc", key, v);
		return -1;
	}
	return 0;
}

/* What every block job command takes: job-id (default @device), speed, on-error,
 * auto-finalize, auto-dismiss; filter-node-name is refused (no filter node is inserted). */
static int job_opts(struct json_object *a, const char *device, struct job_opts *o,
		    struct error **errp)
{
	const char *on_error = NULL, *filter = NULL;

	*o = (struct job_opts){ .id = device, .auto_finalize = true, .auto_dismiss = true };
	if (keyval_take_string(a, "job-id", &o->id, errp) < 0 ||
	    keyval_take_u64(a, "speed", &o->speed, errp) < 0 ||
	    keyval_take_string(a, "on-error", &on_error, errp) < 0 ||
	    keyval_take_bool(a, "auto-finalize", &o->auto_finalize, errp) < 0 ||
	    keyval_take_bool(a, "auto-dismiss", &o->auto_dismiss, errp) < 0 ||
	    keyval_take_string(a, "filter-node-name", &filter, errp) < 0)
		return -1;
	if (filter) {
		error_setg(errp, "filter-node-name: vireo's jobs insert no filter node");
		return -1;
	}
	if (on_error_of("on-error", on_error, &o->on_error, errp) < 0)
		return -1;
	o->on_target_error = o->on_error; /* one policy for stream's and commit's I/O */
	return 0;
}

/* The node that @node_key names, or the node of @top's chain below it that @file_key (may be
 * NULL) names by file (compared as files); 1 when neither is given. */
static int chain_node(struct json_object *a, struct blockdev *top, const char *node_key,
		      const char *file_key, struct blockdev **out, struct error **errp)
{
	const char *node = NULL, *file = NULL;
	struct stat want, st;

	if (keyval_take_string(a, node_key, &node, errp) < 0 ||
	    (file_key && keyval_take_string(a, file_key, &file, errp) < 0))
		return -1;
	if (node && file) {
		error_setg(errp, "'%s' and '%s' are mutually exclusive", node_key, file_key);
		return -1;
	}
	if (node) {
		*out = blockdev_find_node(node);
		if (!*out) {
			error_setg(errp, "Cannot find node '%s'", node);
			return -1;
		}
		return 0;
	}
	if (!file)
		return 1;
	for (struct blockdev *b = top->backing; b; b = b->backing) {
		if (!strcmp(b->filename, file) ||
		    (!stat(file, &want) && !stat(b->filename, &st) && want.st_dev == st.st_dev &&
		     want.st_ino == st.st_ino)) {
			*out = b;
			return 0;
		}
	}
	error_setg(errp, "Can't find '%s' in the backing chain", file);
	return -1;
}

int job_qmp_block_stream(void *o, struct json_object *a, struct json_object **ret,
			 struct error **errp)
{
	const char *device, *backing_file = NULL;
	struct blockdev *top, *base = NULL, *bottom = NULL;
	struct job_opts jo;
	int r;

	if (keyval_need_string(a, "device", &device, errp) < 0 ||
	    !(top = block_qmp_find_node(device, errp)) ||
	    job_opts(a, device, &jo, errp) < 0 ||
	    keyval_take_string(a, "backing-file", &backing_file, errp) < 0 ||
	    (r = chain_node(a, top, "base-node", "base", &base, errp)) < 0 ||
	    chain_node(a, top, "bottom", NULL, &bottom, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (bottom) {
		if (!r) {
			error_setg(errp, "base and bottom cannot both be given");
			return -1;
		}
		if (!job_chain_below(top, bottom)) {
			error_setg(errp, "bottom: node '%s' is not in the backing chain of '%s'",
				   bottom->node_name, top->node_name);
			return -1;
		}
		base = bottom->backing;
	}
	return job_stream_start(&jo, top, base, backing_file, errp) ? 0 : -1;
}

int job_qmp_block_commit(void *o, struct json_object *a, struct json_object **ret,
			 struct error **errp)
{
	const char *device, *backing_file = NULL;
	struct blockdev *active, *top = NULL, *base = NULL;
	struct job_opts jo;

	if (keyval_need_string(a, "device", &device, errp) < 0 ||
	    !(active = block_qmp_find_node(device, errp)) ||
	    job_opts(a, device, &jo, errp) < 0 ||
	    keyval_take_string(a, "backing-file", &backing_file, errp) < 0 ||
	    chain_node(a, active, "top-node", "top", &top, errp) < 0 ||
	    chain_node(a, active, "base-node", "base", &base, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	return job_commit_start(&jo, active, top ? top : active, base, backing_file, errp) ? 0 :
											       -1;
}

/* ---- mirror -------------------------------------------------------------------------------- */

/* The arguments blockdev-mirror and drive-mirror share, after device and target. */
static int mirror_args(struct json_object *a, struct job_mirror_opts *mo, struct job_opts *jo,
		       struct error **errp)
{
	const char *sync = NULL, *mode = NULL, *src_err = NULL, *dst_err = NULL, *replaces = NULL;
	uint64_t buf_size;
	bool unmap = true;

	*mo = (struct job_mirror_opts){ 0 };
	if (keyval_take_string(a, "sync", &sync, errp) < 0 ||
	    keyval_take_string(a, "copy-mode", &mode, errp) < 0 ||
	    keyval_take_u64(a, "granularity", &mo->granularity, errp) < 0 ||
	    keyval_take_u64(a, "buf-size", &buf_size, errp) < 0 || /* ours is the chunk */
	    keyval_take_bool(a, "unmap", &unmap, errp) < 0 ||
	    keyval_take_string(a, "on-source-error", &src_err, errp) < 0 ||
	    keyval_take_string(a, "on-target-error", &dst_err, errp) < 0 ||
	    keyval_take_string(a, "replaces", &replaces, errp) < 0)
		return -1;
	if (!sync) {
		error_setg(errp, "Parameter 'sync' is missing");
		return -1;
	}
	if (!strcmp(sync, "full"))
		mo->sync = JOB_MIRROR_SYNC_FULL;
	else if (!strcmp(sync, "top"))
		mo->sync = JOB_MIRROR_SYNC_TOP;
	else if (!strcmp(sync, "none"))
		mo->sync = JOB_MIRROR_SYNC_NONE;
	else {
		error_setg(errp, "sync: '%s' is not full, top or none (bitmap syncs are backup's)",
			   sync);
		return -1;
	}
	if (mode && strcmp(mode, "background") && strcmp(mode, "write-blocking")) {
		error_setg(errp, "copy-mode: '%s' is not background or write-blocking", mode);
		return -1;
	}
	mo->write_blocking = mode && !strcmp(mode, "write-blocking");
	if (replaces) {
		error_setg(errp, "replaces: vireo's mirror replaces the device's node only");
		return -1;
	}
	/* QEMU's: on-source-error for reading the source, on-target-error for writing the target */
	if (on_error_of("on-source-error", src_err, &jo->on_error, errp) < 0 ||
	    on_error_of("on-target-error", dst_err, &jo->on_target_error, errp) < 0)
		return -1;
	return 0;
}

int job_qmp_blockdev_mirror(void *o, struct json_object *a, struct json_object **ret,
			    struct error **errp)
{
	const char *device, *target_name;
	struct blockdev *src, *target;
	struct job_mirror_opts mo;
	struct job_opts jo;

	if (keyval_need_string(a, "device", &device, errp) < 0 ||
	    keyval_need_string(a, "target", &target_name, errp) < 0 ||
	    !(src = block_qmp_find_node(device, errp)) || job_opts(a, device, &jo, errp) < 0 ||
	    mirror_args(a, &mo, &jo, errp) < 0 || keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	target = blockdev_find_node(target_name);
	if (!target) {
		error_setg(errp, "Cannot find node '%s'", target_name);
		return -1;
	}
	return job_mirror_start(&jo, src, target, &mo, errp) ? 0 : -1;
}

/* drive-mirror's and drive-backup's target, made (mode=absolute-paths) or opened (existing);
 * @top: it backs onto @src's backing file (sync=top). */
static struct blockdev *drive_job_target(struct blockdev *src, const char *path,
					 const char *format, const char *node_name, bool existing,
					 bool top, struct error **errp)
{
	struct blockdev_opts bo = { 0 };
	struct blockdev *bs = NULL;

	if (!format)
		format = blockdev_format_name(src);
	if (!existing) {
		if (!strcmp(format, "qcow2")) {
			struct qcow2_create_opts qo = { .size = src->size, .cluster_bits = 16,
							.version = 3, .refcount_bits = 16 };

			if (top && src->backing) {
				qo.backing_file = src->backing->filename;
				qo.backing_fmt = blockdev_format_name(src->backing);
			}
			if (qcow2_create(path, &qo, errp) < 0)
				return NULL;
		} else if (!strcmp(format, "raw")) {
			if (top && src->backing) {
				error_setg(errp, "sync=top needs a target with a backing file: format "
					   "raw has none");
				return NULL;
			}
			if (blockdev_file_create(path, src->size, BLOCKDEV_PREALLOC_OFF, false,
						 errp) < 0)
				return NULL;
		} else {
			error_setg(errp, "format: vireo creates raw and qcow2 images, not '%s'",
				   format);
			return NULL;
		}
	}
	if (blockdev_opts_set(&bo, "format", format, errp) == 0 &&
	    (!node_name || blockdev_opts_set(&bo, "node-name", node_name, errp) == 0))
		bs = blockdev_open(path, &bo, errp);
	blockdev_opts_free(&bo);
	return bs;
}

int job_qmp_drive_mirror(void *o, struct json_object *a, struct json_object **ret,
			 struct error **errp)
{
	const char *device, *path, *format = NULL, *node_name = NULL, *mode = NULL;
	struct blockdev *src, *target;
	struct job_mirror_opts mo;
	struct job_opts jo;
	struct job *job;

	if (keyval_need_string(a, "device", &device, errp) < 0 ||
	    keyval_need_string(a, "target", &path, errp) < 0 ||
	    !(src = block_qmp_find_node(device, errp)) || job_opts(a, device, &jo, errp) < 0 ||
	    mirror_args(a, &mo, &jo, errp) < 0 ||
	    keyval_take_string(a, "format", &format, errp) < 0 ||
	    keyval_take_string(a, "node-name", &node_name, errp) < 0 ||
	    keyval_take_string(a, "mode", &mode, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (mode && strcmp(mode, "absolute-paths") && strcmp(mode, "existing")) {
		error_setg(errp, "mode: '%s' is not absolute-paths or existing", mode);
		return -1;
	}
	target = drive_job_target(src, path, format, node_name, mode && !strcmp(mode, "existing"),
				  mo.sync == JOB_MIRROR_SYNC_TOP, errp);
	if (!target)
		return -1;
	job = job_mirror_start(&jo, src, target, &mo, errp);
	blockdev_close(target); /* the job's reference keeps it; the devices' after the pivot */
	return job ? 0 : -1;
}

/* ---- backup -------------------------------------------------------------------------------- */

/* The arguments blockdev-backup and drive-backup share, after device and target. */
static int backup_args(struct json_object *a, struct blockdev *src, struct job_backup_opts *bo,
		       struct job_opts *jo, const char **mode, struct error **errp)
{
	const char *sync = NULL, *bitmap = NULL, *bmode = NULL, *src_err = NULL, *dst_err = NULL;
	bool compress = false, discard_source = false;
	struct json_object *perf = NULL;

	*bo = (struct job_backup_opts){ 0 };
	if (keyval_take_string(a, "sync", &sync, errp) < 0 ||
	    keyval_take_string(a, "bitmap", &bitmap, errp) < 0 ||
	    keyval_take_string(a, "bitmap-mode", &bmode, errp) < 0 ||
	    keyval_take_bool(a, "compress", &compress, errp) < 0 ||
	    keyval_take_bool(a, "discard-source", &discard_source, errp) < 0 ||
	    keyval_take_value(a, "x-perf", &perf) < 0 ||
	    keyval_take_string(a, "on-source-error", &src_err, errp) < 0 ||
	    keyval_take_string(a, "on-target-error", &dst_err, errp) < 0 ||
	    (mode && keyval_take_string(a, "mode", mode, errp) < 0))
		return -1;
	if (!sync) {
		error_setg(errp, "Parameter 'sync' is missing");
		return -1;
	}
	if (!strcmp(sync, "full"))
		bo->sync = JOB_BACKUP_SYNC_FULL;
	else if (!strcmp(sync, "top"))
		bo->sync = JOB_BACKUP_SYNC_TOP;
	else if (!strcmp(sync, "none"))
		bo->sync = JOB_BACKUP_SYNC_NONE;
	else if (!strcmp(sync, "bitmap") || !strcmp(sync, "incremental"))
		bo->sync = JOB_BACKUP_SYNC_BITMAP;
	else {
		error_setg(errp, "sync: '%s' is not full, top, none, bitmap or incremental", sync);
		return -1;
	}
	if (compress || discard_source) {
		error_setg(errp, "%s: not supported by vireo's backup",
			   compress ? "compress" : "discard-source");
		return -1;
	}
	if (!bmode || !strcmp(bmode, "on-success"))
		bo->bitmap_mode = JOB_BITMAP_ON_SUCCESS;
	else if (!strcmp(bmode, "never"))
		bo->bitmap_mode = JOB_BITMAP_NEVER;
	else if (!strcmp(bmode, "always"))
		bo->bitmap_mode = JOB_BITMAP_ALWAYS;
	else {
		error_setg(errp, "bitmap-mode: '%s' is not on-success, never or always", bmode);
		return -1;
	}
	if (!strcmp(sync, "incremental") && bmode && bo->bitmap_mode != JOB_BITMAP_ON_SUCCESS) {
		error_setg(errp, "Bitmap sync mode must be 'on-success' when using sync mode "
			   "'incremental'");
		return -1;
	}
	if (bmode && !bitmap) {
		error_setg(errp, "Cannot specify bitmap sync mode without a bitmap");
		return -1;
	}
	if (bitmap) {
		if (bo->sync == JOB_BACKUP_SYNC_NONE || bo->sync == JOB_BACKUP_SYNC_TOP) {
			error_setg(errp, "a bitmap goes with sync=bitmap, incremental or full, not "
				   "'%s'", sync);
			return -1;
		}
		bo->bitmap = blockdev_bitmap_find(src, bitmap, errp);
		if (!bo->bitmap)
			return -1;
	}
	if (on_error_of("on-source-error", src_err, &jo->on_error, errp) < 0 ||
	    on_error_of("on-target-error", dst_err, &jo->on_target_error, errp) < 0)
		return -1;
	return 0;
}

int job_qmp_blockdev_backup(void *o, struct json_object *a, struct json_object **ret,
			    struct error **errp)
{
	const char *device, *target_name;
	struct blockdev *src, *target;
	struct job_backup_opts bo;
	struct job_opts jo;

	if (keyval_need_string(a, "device", &device, errp) < 0 ||
	    keyval_need_string(a, "target", &target_name, errp) < 0 ||
	    !(src = block_qmp_find_node(device, errp)) || job_opts(a, device, &jo, errp) < 0 ||
	    backup_args(a, src, &bo, &jo, NULL, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	target = blockdev_find_node(target_name);
	if (!target) {
		error_setg(errp, "Cannot find node '%s'", target_name);
		return -1;
	}
	return job_backup_start(&jo, src, target, &bo, errp) ? 0 : -1;
}

int job_qmp_drive_backup(void *o, struct json_object *a, struct json_object **ret,
			 struct error **errp)
{
	const char *device, *path, *format = NULL, *mode = NULL;
	struct blockdev *src, *target;
	struct job_backup_opts bo;
	struct job_opts jo;
	struct job *job;

	if (keyval_need_string(a, "device", &device, errp) < 0 ||
	    keyval_need_string(a, "target", &path, errp) < 0 ||
	    !(src = block_qmp_find_node(device, errp)) || job_opts(a, device, &jo, errp) < 0 ||
	    backup_args(a, src, &bo, &jo, &mode, errp) < 0 ||
	    keyval_take_string(a, "format", &format, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (mode && strcmp(mode, "absolute-paths") && strcmp(mode, "existing")) {
		error_setg(errp, "mode: '%s' is not absolute-paths or existing", mode);
		return -1;
	}
	target = drive_job_target(src, path, format, NULL, mode && !strcmp(mode, "existing"),
				  bo.sync == JOB_BACKUP_SYNC_TOP, errp);
	if (!target)
		return -1;
	job = job_backup_start(&jo, src, target, &bo, errp);
	blockdev_close(target); /* the job's reference keeps it until it ends */
	return job ? 0 : -1;
}

/* ---- blockdev-create ----------------------------------------------------------------------- */

/* A member of blockdev-create's "options" that must be given: 0, or -1 with QEMU's message. */
static int need_option(int taken, const char *key, struct error **errp)
{
	if (taken > 0)
		error_setg(errp, "Parameter 'options.%s' is missing", key);
	return taken ? -1 : 0;
}

static int prealloc_arg(const char *v, bool metadata, enum blockdev_prealloc *out,
			struct error **errp)
{
	int p = v ? blockdev_prealloc_parse(v) : BLOCKDEV_PREALLOC_OFF;

	if (p < 0 || (!metadata && p == BLOCKDEV_PREALLOC_METADATA)) {
		error_setg(errp, "preallocation: '%s' is not off, %sfalloc or full", v,
			   metadata ? "metadata, " : "");
		return -1;
	}
	*out = (enum blockdev_prealloc)p;
	return 0;
}

/* QEMU's BlockdevCreateOptionsFile. */
static int create_file_args(struct json_object *o, struct job_create_opts *co,
			    struct error **errp)
{
	const char *prealloc = NULL;

	co->driver = JOB_CREATE_FILE;
	if (need_option(keyval_take_string(o, "filename", &co->filename, errp), "filename",
			errp) < 0 ||
	    need_option(keyval_take_size(o, "size", &co->size, errp), "size", errp) < 0 ||
	    keyval_take_string(o, "preallocation", &prealloc, errp) < 0 ||
	    keyval_take_bool(o, "nocow", &co->nocow, errp) < 0 ||
	    keyval_refuse_leftovers(o, "options", errp) < 0)
		return -1;
	return prealloc_arg(prealloc, false, &co->prealloc, errp);
}

/* The scalar members of QEMU's BlockdevCreateOptionsQcow2, into @q. */
static int qcow2_args(struct json_object *o, struct qcow2_create_opts *q, struct error **errp)
{
	const char *version = NULL, *prealloc = NULL, *compression = NULL;
	uint64_t cluster = 65536, refcount = 16;
	enum blockdev_prealloc p;
	struct json_object *encrypt = NULL;

	*q = (struct qcow2_create_opts){ .version = 3 };
	if (need_option(keyval_take_size(o, "size", &q->size, errp), "size", errp) < 0 ||
	    keyval_take_string(o, "version", &version, errp) < 0 ||
	    keyval_take_string(o, "backing-file", &q->backing_file, errp) < 0 ||
	    keyval_take_string(o, "backing-fmt", &q->backing_fmt, errp) < 0 ||
	    keyval_take_value(o, "encrypt", &encrypt) < 0 ||
	    keyval_take_size(o, "cluster-size", &cluster, errp) < 0 ||
	    keyval_take_string(o, "preallocation", &prealloc, errp) < 0 ||
	    keyval_take_bool(o, "lazy-refcounts", &q->lazy_refcounts, errp) < 0 ||
	    keyval_take_u64(o, "refcount-bits", &refcount, errp) < 0 ||
	    keyval_take_bool(o, "data-raw", &q->data_file_raw, errp) < 0 ||
	    keyval_take_bool(o, "extended-l2", &q->extended_l2, errp) < 0 ||
	    keyval_take_string(o, "compression-type", &compression, errp) < 0 ||
	    keyval_refuse_leftovers(o, "options", errp) < 0 ||
	    prealloc_arg(prealloc, true, &p, errp) < 0)
		return -1;
	if (encrypt) {
		error_setg(errp, "encrypt: vireo does not create encrypted qcow2 images");
		return -1;
	}
	if (version && strcmp(version, "v2") && strcmp(version, "v3")) {
		error_setg(errp, "version: '%s' is not v2 or v3", version);
		return -1;
	}
	if (compression && strcmp(compression, "zlib") && strcmp(compression, "zstd")) {
		error_setg(errp, "compression-type: '%s' is not zlib or zstd", compression);
		return -1;
	}
	if (q->size % 512) {
		error_setg(errp, "size: must be a multiple of 512 bytes");
		return -1;
	}
	if (q->backing_fmt && !q->backing_file) {
		error_setg(errp, "backing-fmt: cannot be used without backing-file");
		return -1;
	}
	q->version = version && !strcmp(version, "v2") ? 2 : 3;
	q->compression_type = compression && !strcmp(compression, "zstd") ? QCOW2_COMPRESS_ZSTD :
									     QCOW2_COMPRESS_ZLIB;
	/* a size that is no power of two gets 0 bits, which the check refuses by name */
	q->cluster_bits = cluster && !(cluster & (cluster - 1)) ? (unsigned)__builtin_ctzll(cluster) :
								   0;
	q->refcount_bits = (unsigned)MIN(refcount, 4096);
	q->prealloc_metadata = p != BLOCKDEV_PREALLOC_OFF;
	q->prealloc_falloc = p == BLOCKDEV_PREALLOC_FALLOC || p == BLOCKDEV_PREALLOC_FULL;
	return 0;
}

/* QEMU's BlockdevCreateOptionsQcow2: "file" and "data-file" are BlockdevRefs of nodes that
 * exist (a node name) or that the job opens for itself (an object). */
static int create_qcow2_args(struct json_object *o, struct job_create_opts *co,
			     struct error **errp)
{
	struct json_object *file = NULL, *data = NULL;

	co->driver = JOB_CREATE_QCOW2;
	if (need_option(keyval_take_value(o, "file", &file), "file", errp) < 0 ||
	    keyval_take_value(o, "data-file", &data) < 0 || qcow2_args(o, &co->qcow2, errp) < 0)
		return -1;
	/* every option checked before a node is opened; the data file's name comes with it */
	co->qcow2.data_file = data ? "data-file" : NULL;
	if (qcow2_create_check(&co->qcow2, QCOW2_NAMES_QMP, errp) < 0)
		return -1;
	co->file = blockdev_open_ref(file, "blockdev-create", "file", errp);
	if (!co->file)
		return -1;
	if (data) {
		co->data_file = blockdev_open_ref(data, "blockdev-create", "data-file", errp);
		if (!co->data_file)
			return -1;
		co->qcow2.data_file = co->data_file->filename;
		return qcow2_create_check(&co->qcow2, QCOW2_NAMES_QMP, errp);
	}
	return 0;
}

int job_qmp_blockdev_create(void *o, struct json_object *a, struct json_object **ret,
			    struct error **errp)
{
	/* QEMU's create job: JOB_DEFAULT | JOB_MANUAL_DISMISS */
	struct job_opts jo = { .auto_finalize = true, .auto_dismiss = false };
	struct job_create_opts co = { 0 };
	struct json_object *opts = NULL;
	const char *driver = NULL;
	int r = -1;

	if (keyval_need_string(a, "job-id", &jo.id, errp) < 0 ||
	    keyval_take_value(a, "options", &opts) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (!opts || !json_object_is_type(opts, json_type_object)) {
		error_setg(errp, opts ? "Invalid parameter type for 'options', expected: object" :
					"Parameter 'options' is missing");
		return -1;
	}
	if (need_option(keyval_take_string(opts, "driver", &driver, errp), "driver", errp) < 0)
		return -1;
	if (!strcmp(driver, "file"))
		r = create_file_args(opts, &co, errp);
	else if (!strcmp(driver, "qcow2"))
		r = create_qcow2_args(opts, &co, errp);
	else if (!strcmp(driver, "raw")) { /* QEMU's raw has no bdrv_co_create */
		if (keyval_refuse_leftovers(opts, "options", errp) == 0)
			error_setg(errp, "Driver does not support blockdev-create");
	} else
		error_setg(errp, "Block driver '%s' not found or not supported", driver);
	if (r == 0)
		r = job_create_start(&jo, &co, errp) ? 0 : -1;
	blockdev_close(co.data_file); /* the job holds its own references */
	blockdev_close(co.file);
	return r;
}
