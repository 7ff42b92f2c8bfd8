/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QMP's block job commands over the job manager (blockdev/job.h): arguments taken by name, as
 * QEMU spells them, anything left over refused by name.
 */
#include "control/job_qmp.h"

#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>

#include "blockdev/blockdev.h"
#include "blockdev/job_chain.h"
#include "common/keyval.h"

static struct blockdev *(*lookup)(const char *device);

void job_qmp_set_lookup(struct blockdev *(*fn)(const char *device))
{
	lookup = fn;
}

struct blockdev *job_qmp_find_node(const char *device, struct error **errp)
{
	struct blockdev *bs = lookup ? lookup(device) : NULL;

	if (!bs)
		bs = blockdev_find_node(device);
	if (!bs)
		error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device, device);
	return bs;
}

static int need_string(struct json_object *a, const char *key, const char **out,
		       struct error **errp)
{
	int r = keyval_take_string(a, key, out, errp);

	if (r > 0)
		error_setg(errp, "Parameter '%s' is missing", key);
	return r ? -1 : 0;
}

/* The live job @id, or NULL with QEMU's message. */
static struct job *find_job(const char *id, bool block, struct error **errp)
{
	struct job *j = job_find(id);

	if (!j) {
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

	if (need_string(a, key, &id, errp) < 0 || keyval_refuse_leftovers(a, NULL, errp) < 0)
		return NULL;
	return find_job(id, strcmp(key, "id"), errp);
}

int job_qmp_job_pause(void *o, struct json_object *a, struct json_object **ret,
		      struct error **errp)
{
	struct job *j = job_arg(a, "id", errp);

	return j ? job_pause(j, errp) : -1;
}

int job_qmp_block_job_pause(void *o, struct json_object *a, struct json_object **ret,
			    struct error **errp)
{
	struct job *j = job_arg(a, "device", errp);

	return j ? job_pause(j, errp) : -1;
}

int job_qmp_job_resume(void *o, struct json_object *a, struct json_object **ret,
		       struct error **errp)
{
	struct job *j = job_arg(a, "id", errp);

	return j ? job_resume(j, errp) : -1;
}

int job_qmp_block_job_resume(void *o, struct json_object *a, struct json_object **ret,
			     struct error **errp)
{
	struct job *j = job_arg(a, "device", errp);

	return j ? job_resume(j, errp) : -1;
}

int job_qmp_job_complete(void *o, struct json_object *a, struct json_object **ret,
			 struct error **errp)
{
	struct job *j = job_arg(a, "id", errp);

	return j ? job_complete(j, errp) : -1;
}

int job_qmp_block_job_complete(void *o, struct json_object *a, struct json_object **ret,
			       struct error **errp)
{
	struct job *j = job_arg(a, "device", errp);

	return j ? job_complete(j, errp) : -1;
}

/* job-finalize and block-job-finalize both take "id" */
int job_qmp_job_finalize(void *o, struct json_object *a, struct json_object **ret,
			 struct error **errp)
{
	struct job *j = job_arg(a, "id", errp);

	return j ? job_finalize(j, errp) : -1;
}

/* job-dismiss and block-job-dismiss both take "id" */
int job_qmp_job_dismiss(void *o, struct json_object *a, struct json_object **ret,
			struct error **errp)
{
	struct job *j = job_arg(a, "id", errp);

	return j ? job_dismiss(j, errp) : -1;
}

int job_qmp_job_cancel(void *o, struct json_object *a, struct json_object **ret,
		       struct error **errp)
{
	struct job *j = job_arg(a, "id", errp);

	return j ? job_cancel(j, true, errp) : -1;
}

int job_qmp_block_job_cancel(void *o, struct json_object *a, struct json_object **ret,
			     struct error **errp)
{
	const char *id;
	bool force = false;
	struct job *j;

	if (need_string(a, "device", &id, errp) < 0 ||
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

	if (need_string(a, "device", &id, errp) < 0)
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
	if (!on_error || !strcmp(on_error, "report"))
		o->on_error = JOB_ON_ERROR_REPORT;
	else if (!strcmp(on_error, "ignore"))
		o->on_error = JOB_ON_ERROR_IGNORE;
	else if (!strcmp(on_error, "stop"))
		o->on_error = JOB_ON_ERROR_STOP;
	else if (!strcmp(on_error, "enospc"))
		o->on_error = JOB_ON_ERROR_ENOSPC;
	else {
		error_setg(errp, "on-error: '%s' is not report, ignore, stop or enospc", on_error);
		return -1;
	}
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

	if (need_string(a, "device", &device, errp) < 0 || !(top = job_qmp_find_node(device, errp)) ||
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

	if (need_string(a, "device", &device, errp) < 0 || !(active = job_qmp_find_node(device, errp)) ||
	    job_opts(a, device, &jo, errp) < 0 ||
	    keyval_take_string(a, "backing-file", &backing_file, errp) < 0 ||
	    chain_node(a, active, "top-node", "top", &top, errp) < 0 ||
	    chain_node(a, active, "base-node", "base", &base, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	return job_commit_start(&jo, active, top ? top : active, base, backing_file, errp) ? 0 :
											       -1;
}
