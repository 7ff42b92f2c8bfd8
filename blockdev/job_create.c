/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The create job (blockdev-create). Its one step, on the job thread, creates the file or writes
 * the qcow2 image; progress goes from 0 to 1 of 1, as QEMU's. Nothing changes the graph, so
 * there is no prepare: the image is opened afterwards with blockdev-add.
 *
 * Ownership: the job owns its copy of the options (strings included). For qcow2 it holds a
 * reference on the file (and data file) node and is attached to each as a writer that may
 * resize, so that no other writer can come while the step writes: the step is the nodes' only
 * writer, and the control plane touches neither until clean.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/job_create.h"

struct create {
	struct job_create_opts o;
	char *filename, *backing_file, *backing_fmt, *data_name; /* the copies o points to */
	struct blockdev_user file_user, data_user;
};

static int create_step(struct job *job)
{
	struct create *c = job_opaque(job);
	struct error *err = NULL;
	int r;

	job_progress(job, 0, 1, 0);
	if (c->o.driver == JOB_CREATE_FILE)
		r = blockdev_file_create(c->o.filename, c->o.size, c->o.prealloc, c->o.nocow, &err);
	else
		r = qcow2_create_on(c->o.file, c->o.data_file, &c->o.qcow2, &err);
	job_progress(job, 1, 1, 0);
	if (r < 0) {
		r = job_step_fail(job, -EIO, error_msg(err));
		error_free(err);
		return r;
	}
	return JOB_STEP_DONE;
}

static void create_free(struct create *c)
{
	blockdev_detach(&c->data_user);
	blockdev_detach(&c->file_user);
	free(c->filename);
	free(c->backing_file);
	free(c->backing_fmt);
	free(c->data_name);
	free(c);
}

static void create_clean(struct job *job)
{
	create_free(job_opaque(job));
}

static const struct job_driver create_driver = {
	.type = "create",
	.plain = true,
	.step = create_step,
	.clean = create_clean,
};

/* A malloc'd copy of @s in *@copy (NULL stays NULL); false when out of memory. */
static bool dup_str(const char *s, char **copy)
{
	*copy = s ? strdup(s) : NULL;
	return !s || *copy;
}

/* The job as the writer of @bs, which the option @key named. */
static int attach_writer(struct blockdev *bs, struct blockdev_user *u, const char *key,
			 struct error **errp)
{
	if (bs->read_only) {
		error_setg(errp, "%s: node '%s' is read-only", key, bs->node_name);
		return -1;
	}
	*u = (struct blockdev_user){
		.role = "blockdev-create job",
		.perm = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_RESIZE,
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	return blockdev_attach(bs, u, errp);
}

struct job *job_create_start(const struct job_opts *o, const struct job_create_opts *co,
			     struct error **errp)
{
	struct blockdev *nodes[3] = { co->file, co->data_file, NULL };
	struct create *c = calloc(1, sizeof(*c));
	struct job *job;

	if (!c || !dup_str(co->filename, &c->filename) ||
	    !dup_str(co->qcow2.backing_file, &c->backing_file) ||
	    !dup_str(co->qcow2.backing_fmt, &c->backing_fmt) ||
	    !dup_str(co->qcow2.data_file, &c->data_name)) {
		error_setg(errp, "out of memory");
		goto fail;
	}
	c->o = *co;
	c->o.filename = c->filename;
	c->o.qcow2.backing_file = c->backing_file;
	c->o.qcow2.backing_fmt = c->backing_fmt;
	c->o.qcow2.data_file = c->data_name;
	if (!co->data_file)
		nodes[1] = NULL;
	/* the users hold the references the job keeps on its nodes */
	if ((co->file && attach_writer(co->file, &c->file_user, "file", errp)) ||
	    (co->data_file && attach_writer(co->data_file, &c->data_user, "data-file", errp)))
		goto fail;
	job = job_start(&create_driver, c, o, nodes, errp);
	if (job)
		return job;
fail:
	if (c)
		create_free(c);
	return NULL;
}
