/* SPDX-License-Identifier: Apache-2.0 */
/*
 * block-stream: the image @top takes in, range by range, what the images below it hold down to
 * @base (excluded), then backs onto @base. The guest keeps writing @top meanwhile: each range is
 * read through the chain and handed to the format's populate, which writes it only where @top
 * still does not hold the data, deciding under the lock the guest's allocating writes take too
 * (so an older byte never lands over a newer one). At the end, on the control plane, @top's
 * header names @base as its backing file and the backing link moves to @base; the images
 * between them close unless something else holds them.
 *
 * Ownership: the step (job thread) owns s->off and s->buf; the nodes are held by references
 * taken at start and dropped by clean; the job is @top's user for WRITE_UNCHANGED (it writes
 * only what reads return already), which the guest's frontend shares.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/copy.h"
#include "blockdev/job_chain.h"
#include "common/util.h"

struct stream {
	struct blockdev *top, *base;
	char *backing_name;        /* what @top's header will name (NULL: none) */
	struct blockdev_user user; /* the job as @top's user */
	uint64_t off;              /* where the next step starts */
	uint8_t *buf;
};

static int stream_step(struct job *job)
{
	struct stream *s = job_opaque(job);
	uint64_t size = s->top->size, n;
	bool read = true, copy = false;
	int st, ret = 0;

	if (s->off >= size)
		return JOB_STEP_DONE;
	n = MIN(job_step_bytes(job), size - s->off);
	/* what @top holds stays; of the rest, what the images above @base hold is copied */
	st = blockdev_chain_status(s->top, s->top->backing, s->off, &n);
	if (st >= 0 && !(st & BLOCKDEV_STATUS_ALLOCATED) && s->top->backing) {
		st = blockdev_chain_status(s->top->backing, s->base, s->off, &n);
		copy = st > 0 && (st & BLOCKDEV_STATUS_ALLOCATED);
	}
	if (st < 0)
		ret = st;
	if (copy) {
		ret = blockdev_pread(s->top, s->off, s->buf, n);
		if (!ret) {
			read = false;
			ret = blockdev_populate(s->top, s->off, s->buf, n);
		}
	}
	if (ret) {
		enum job_on_error a = job_io_error(job, ret, read);

		if (a == JOB_ON_ERROR_REPORT)
			return ret;
		if (a == JOB_ON_ERROR_STOP)
			return JOB_STEP_MORE; /* the same range after job-resume */
	}
	s->off += n;
	job_progress(job, s->off, size, copy && !ret ? n : 0);
	return JOB_STEP_MORE;
}

static int stream_prepare(struct job *job, struct error **errp)
{
	struct stream *s = job_opaque(job);

	if (blockdev_flush(s->top) < 0) {
		error_setg(errp, "'%s': flushing the streamed image failed", s->top->filename);
		return -1;
	}
	/* the header first: if the graph change failed after it, the chain on disk would still
	 * read the same, @top holding all that the images it skips hold */
	if (blockdev_change_backing_file(s->top, s->backing_name,
					 s->base ? blockdev_format_name(s->base) : NULL, errp) < 0)
		return -1;
	return blockdev_set_backing(s->top, s->base, errp);
}

static void stream_clean(struct job *job)
{
	struct stream *s = job_opaque(job);

	blockdev_detach(&s->user);
	blockdev_unref(s->base);
	blockdev_unref(s->top);
	free(s->backing_name);
	free(s->buf);
	free(s);
}

static const struct job_driver stream_driver = {
	.type = "stream",
	.step = stream_step,
	.prepare = stream_prepare,
	.clean = stream_clean,
};

struct job *job_stream_start(const struct job_opts *o, struct blockdev *top,
			     struct blockdev *base, const char *backing_file,
			     struct error **errp)
{
	struct blockdev *nodes[64];
	struct stream *s;
	struct job *job;
	size_t n = 0;

	if (!top->drv->populate || !top->drv->has_backing) {
		error_setg(errp, "node '%s' is a %s node, which has no backing file to stream from",
			   top->node_name, blockdev_format_name(top));
		return NULL;
	}
	if (base && !job_chain_below(top, base)) {
		error_setg(errp, "node '%s' is not in the backing chain of '%s'", base->node_name,
			   top->node_name);
		return NULL;
	}
	if (top->read_only) {
		error_setg(errp, "node '%s' is read-only: it cannot take in its backing chain",
			   top->node_name);
		return NULL;
	}
	/* the job works on @top and the images it skips */
	for (struct blockdev *cur = top; cur && cur != base && n + 1 < ARRAY_SIZE(nodes);
	     cur = cur->backing)
		nodes[n++] = cur;
	nodes[n] = NULL;
	s = calloc(1, sizeof(*s));
	if (!s || posix_memalign((void **)&s->buf, 4096, BLOCKDEV_COPY_CHUNK)) {
		free(s);
		error_setg(errp, "out of memory");
		return NULL;
	}
	s->user = (struct blockdev_user){
		.role = "block-stream job",
		.perm = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	s->backing_name = job_chain_backing_name(base, backing_file);
	if ((base && !s->backing_name) || blockdev_attach(top, &s->user, errp) < 0)
		goto fail;
	s->top = blockdev_ref(top);
	s->base = base ? blockdev_ref(base) : NULL;
	job = job_start(&stream_driver, s, o, nodes, errp);
	if (job)
		return job;
	blockdev_detach(&s->user);
	blockdev_unref(s->base);
	blockdev_unref(s->top);
fail:
	if (base && !s->backing_name)
		error_setg(errp, "out of memory");
	free(s->backing_name);
	free(s->buf);
	free(s);
	return NULL;
}
