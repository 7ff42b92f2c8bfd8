/* SPDX-License-Identifier: Apache-2.0 */
/*
 * block-commit of an intermediate image: what the images from @top down to @base (excluded)
 * hold is written into @base, range by range (the copy primitive on one chunk a step), then the
 * image above @top backs onto @base. The guest writes only the active image, above @top, so
 * nothing it does changes what is copied.
 *
 * @base is in the chain read-only; the job opens its file a second time, read-write (base_rw),
 * and writes there. Readers of the chain reach @base only for ranges no image above it holds,
 * which the copy never writes, so the two nodes agree on everything anyone reads. At the end
 * (control plane) base_rw takes @base's place under the image above @top, whose header then
 * names it; @top and the images down to @base close unless something else holds them.
 *
 * Ownership: the step owns c->off; the nodes are held by references dropped by clean; the job
 * is base_rw's writer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/copy.h"
#include "blockdev/job_chain.h"
#include "blockdev/job_mirror.h"
#include "common/util.h"

struct commit {
	struct blockdev *top, *base, *above; /* @above: the image whose backing node is @top */
	struct blockdev *base_rw;
	char *backing_name;
	struct blockdev_user user; /* the job as base_rw's writer */
	uint64_t off, size;
	uint8_t *buf;              /* the copy's, kept from chunk to chunk (job_chunk_bufs) */
};

static int commit_step(struct job *job)
{
	struct commit *c = job_opaque(job);
	bool write_failed = false;
	struct blockdev_copy o = {
		.src = c->top, .dst = c->base_rw, .offset = c->off, .top_only = true,
		.stop = c->base, .write_zeroes = true, .in_order = true, .parallel = 1,
		.write_failed = &write_failed, .bufs = job_chunk_bufs(&c->buf, 1),
	};
	int ret;

	if (c->off >= c->size)
		return JOB_STEP_DONE;
	o.length = MIN(job_step_bytes(job), c->size - c->off);
	ret = blockdev_copy_run(&o);
	if (ret) {
		enum job_on_error a = job_io_error(job, ret, !write_failed);

		if (a == JOB_ON_ERROR_REPORT)
			return ret;
		if (a == JOB_ON_ERROR_STOP)
			return JOB_STEP_MORE;
	}
	c->off += o.length;
	job_progress(job, c->off, c->size, ret ? 0 : o.length);
	return JOB_STEP_MORE;
}

/*
 * Records @name as @bs's backing file. An image in the middle of the chain is open read-only:
 * its header is rewritten through a second, read-write node on its file that opens no backing
 * chain (the read-only node keeps the old name in memory; nothing reads it there but info).
 */
static int record_backing(struct blockdev *bs, const char *name, const char *fmt,
			  struct error **errp)
{
	struct blockdev_opts o = { .no_backing = true };
	struct blockdev *rw = NULL;
	int ret = -1;

	if (!bs->read_only)
		return blockdev_change_backing_file(bs, name, fmt, errp);
	if (blockdev_opts_set(&o, "format", blockdev_format_name(bs), errp) == 0)
		rw = blockdev_open(bs->filename, &o, errp);
	blockdev_opts_free(&o);
	if (rw)
		ret = blockdev_change_backing_file(rw, name, fmt, errp);
	blockdev_close(rw);
	return ret;
}

static int commit_prepare(struct job *job, struct error **errp)
{
	struct commit *c = job_opaque(job);

	if (blockdev_flush(c->base_rw) < 0) {
		error_setg(errp, "'%s': flushing the base image failed", c->base_rw->filename);
		return -1;
	}
	/* the copy is over: the job writes base_rw no more, and its backing link only reads */
	blockdev_detach(&c->user);
	if (record_backing(c->above, c->backing_name, blockdev_format_name(c->base_rw), errp) < 0)
		return -1;
	return blockdev_set_backing(c->above, c->base_rw, errp);
}

static void commit_clean(struct job *job)
{
	struct commit *c = job_opaque(job);

	blockdev_detach(&c->user);
	blockdev_close(c->base_rw);
	blockdev_unref(c->base);
	blockdev_unref(c->top);
	blockdev_unref(c->above);
	free(c->backing_name);
	job_chunk_bufs_free(&c->buf, 1);
	free(c);
}

static const struct job_driver commit_driver = {
	.type = "commit",
	.step = commit_step,
	.prepare = commit_prepare,
	.clean = commit_clean,
};

/* @base's file again, read-write, with @base's format and cache mode. */
static struct blockdev *open_base_rw(struct blockdev *base, struct error **errp)
{
	struct blockdev_opts o = { 0 };
	struct blockdev *bs = NULL;

	if (blockdev_opts_set(&o, "format", blockdev_format_name(base), errp) == 0 &&
	    blockdev_opts_set(&o, "cache",
			      base->cache == BLOCKDEV_CACHE_NONE ? "none" : "writeback", errp) == 0)
		bs = blockdev_open(base->filename, &o, errp);
	blockdev_opts_free(&o);
	if (!bs)
		error_prepend(errp, "opening the base image '%s' read-write", base->filename);
	return bs;
}

/*
 * block-commit of the active image: a mirror of the disk into @base opened read-write, which
 * the disk's devices move onto on job-complete (job_mirror.c).
 */
static struct job *active_commit(const struct job_opts *o, struct blockdev *active,
				 struct blockdev *base, struct error **errp)
{
	struct job_mirror_opts mo = { .sync = JOB_MIRROR_SYNC_TOP, .active_commit = true };
	struct blockdev *base_rw;
	struct job *job;

	if (!base)
		for (base = active->backing; base && base->backing; base = base->backing)
			;
	if (!base || !job_chain_below(active, base)) {
		error_setg(errp, "base: %s is not in the backing chain of '%s'",
			   base ? base->node_name : "nothing", active->node_name);
		return NULL;
	}
	base_rw = open_base_rw(base, errp);
	if (!base_rw)
		return NULL;
	if (base_rw->size != active->size && blockdev_truncate(base_rw, active->size, errp) < 0) {
		blockdev_close(base_rw);
		return NULL;
	}
	mo.stop = base;
	job = job_mirror_start(o, active, base_rw, &mo, errp);
	blockdev_close(base_rw); /* the job holds it, then the devices */
	return job;
}

struct job *job_commit_start(const struct job_opts *o, struct blockdev *active,
			     struct blockdev *top, struct blockdev *base,
			     const char *backing_file, struct error **errp)
{
	struct blockdev *nodes[64], *above = active;
	struct commit *c;
	struct job *job;
	size_t n = 0;

	if (top == active)
		return active_commit(o, active, base, errp);
	if (!job_chain_below(active, top)) {
		error_setg(errp, "top: node '%s' is not in the backing chain of '%s'",
			   top->node_name, active->node_name);
		return NULL;
	}
	if (!base)
		for (base = top->backing; base && base->backing; base = base->backing)
			;
	if (!base || !job_chain_below(top, base)) {
		error_setg(errp, "base: %s is not in the backing chain of '%s' below it",
			   base ? base->node_name : "nothing", top->node_name);
		return NULL;
	}
	while (above->backing != top)
		above = above->backing;
	for (struct blockdev *cur = above; cur && cur != base && n + 2 < ARRAY_SIZE(nodes);
	     cur = cur->backing)
		nodes[n++] = cur;
	nodes[n++] = base;
	nodes[n] = NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		error_setg(errp, "out of memory");
		return NULL;
	}
	c->size = top->size;
	c->backing_name = job_chain_backing_name(base, backing_file);
	if (!c->backing_name) {
		error_setg(errp, "out of memory");
		goto fail;
	}
	c->base_rw = open_base_rw(base, errp);
	if (!c->base_rw)
		goto fail;
	if (c->base_rw->size < c->size && blockdev_truncate(c->base_rw, c->size, errp) < 0)
		goto fail_close;
	c->user = (struct blockdev_user){
		.role = "block-commit job",
		.perm = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_RESIZE,
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	if (blockdev_attach(c->base_rw, &c->user, errp) < 0)
		goto fail_close;
	c->top = blockdev_ref(top);
	c->base = blockdev_ref(base);
	c->above = blockdev_ref(above);
	job = job_start(&commit_driver, c, o, nodes, errp);
	if (job)
		return job;
	blockdev_detach(&c->user);
	blockdev_unref(c->above);
	blockdev_unref(c->base);
	blockdev_unref(c->top);
fail_close:
	blockdev_close(c->base_rw);
fail:
	free(c->backing_name);
	free(c);
	return NULL;
}
