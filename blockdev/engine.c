/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The asynchronous engine: blockdev requests on an iothread's io_uring.
 *
 * Ownership. A `struct blockdev_queue` belongs to one iothread: its free list of sub-I/Os, its
 * registered-file cache and its in-flight count are touched only there, without locks. A request
 * is split by the node's map() into extents; each DATA extent on an fd becomes one sub-I/O
 * (`struct blk_io`, one SQE at a time: READV, WRITEV, FSYNC or FALLOCATE). A request counts its
 * pending pieces in req->priv.pending, with one extra reference held while it is being issued,
 * so done() cannot run before the last piece is issued; when the count drops to zero the
 * completion is deferred to the iothread's completion phase (iothread_defer). A sub-I/O on a
 * node with submit_eager (cache=none unless submit= says otherwise) is handed to the kernel as
 * soon as its request is issued, all its pieces in one iothread_submit; the rest (and re-issues
 * after a short transfer) wait for the turn's single submit.
 *
 * The slow path. Pieces a driver cannot map to a plain fd range (SLOW extents, O_DIRECT pieces
 * that are not aligned, drivers' own flush, write-zeroes the file system refuses) become a
 * `struct slow_job` queued to the top node's worker thread (`struct blockdev_slow`). The job
 * queue is a mutex + condition variable: it is taken only by iothreads handing off slow work
 * and by the worker, never for fast-path I/O. The worker takes every job queued at once, runs
 * the node's synchronous ops, and hands each job back with iothread_post(), so the piece
 * completes on the submitting iothread. Jobs run one after the other, which serializes a
 * driver's allocations per image, except that the WRITE jobs of one node found together go to
 * the driver's pwritev_group() in one call when it has one (group commit: qcow2 makes all of
 * their allocations durable with one barrier, see qcow2_write.c), and its READ jobs found
 * together to its preadv_group() likewise (an NBD export gets them pipelined instead of one
 * round trip each); none of them is handed back before the call returns. Grouping reorders
 * jobs of different requests only: concurrent requests have no order, and a FLUSH covers only
 * requests completed before it was submitted, which are not in the queue any more.
 *
 * Encrypted extents (a DATA extent with a key, see struct blockdev_extent) stay on the ring:
 * a read is decrypted in its buffers once the whole piece arrived, a write sends a copy that
 * was encrypted into the piece's bounce buffer, both on the iothread with the queue's own
 * cipher contexts (engine_crypt.c). When the ring cannot take such a piece (O_DIRECT
 * alignment), the node that mapped it does the whole piece on the slow path, decrypting and
 * encrypting itself.
 */
#include <errno.h>
#include <linux/falloc.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/bitmap.h"
#include "blockdev/engine_crypt.h"
#include "blockdev/internal.h"
#include "blockdev/throttle.h"
#include "common/util.h"
#include "seccomp/thread.h"

#define IO_INLINE_IOV 8
#define BOUNCE_KEEP (256u << 10) /* a sub-I/O keeps a bounce buffer up to this size for reuse */

struct blk_io {
	struct iothread_op op;
	struct blockdev_queue *q;
	struct blockdev_req *req;
	struct blockdev *file;    /* protocol node with the fd */
	enum blockdev_op opcode;
	uint64_t host_offset;     /* in @file */
	uint64_t req_off;         /* READ/WRITE: where the piece starts in the request's buffers */
	uint64_t len;
	uint64_t done;            /* bytes finished (short reads/writes) */
	struct iovec *iov;        /* what the SQE points at */
	int iovcnt;
	struct iovec inline_iov[IO_INLINE_IOV];
	struct iovec *heap_iov;
	int heap_cap;
	struct blk_io *next_free;
	/* an encrypted piece (extent @crypt): its key, the IV of its first byte, and the node
	 * and offset it was mapped from (where the slow path redoes it when the ring cannot) */
	const struct luks_key *crypt;
	uint64_t crypt_sector;
	struct blockdev *node;
	uint64_t node_off;
	bool in_bounce;           /* the I/O moves @bounce, not the request's buffers */
	bool splice;              /* a READ into the request's pipe (BLOCKDEV_READ_SPLICE) */
	uint8_t *bounce;          /* a write's ciphertext, or a read's when the buffers cannot */
	size_t bounce_cap;
};

struct blockdev_queue {
	struct blockdev *bs;
	struct iothread *it;
	unsigned int inflight;
	struct blk_io *free_ios;
	struct {
		struct blockdev *node;
		int index; /* its slot in the iothread ring's fixed file table */
	} *files;
	unsigned int nr_files, files_cap;
	bool files_refused; /* a file could not be registered: said once on stderr */
	bool eager_pending; /* a submit_eager node's SQE is queued: submit when the request is */
	struct throttle_member *thr; /* a throttle node's: its group holds requests (throttle.c) */
	struct blockdev_ciphers ciphers; /* encrypted extents' contexts (engine_crypt.c) */
	/* requests submitted: written by the queue's iothread only, read by the job thread
	 * (blockdev_frontend_requests); on the queue's own cache lines, so no bouncing */
	_Atomic uint64_t submitted;
	struct blockdev_queue *all_prev, *all_next; /* every queue (all_queues) */
};

/* Every queue, for blockdev_frontend_requests(): added and removed on the control plane. */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blockdev_queue *all_queues;

struct slow_job {
	struct blockdev_queue *q;
	struct blockdev_req *req;
	struct blockdev *node;
	enum blockdev_op op;
	uint64_t offset;  /* in @node */
	uint64_t req_off; /* READ/WRITE: in the request's buffers */
	uint64_t len;
	unsigned int flags;
	int ret;
	struct slow_job *next;
};

struct blockdev_slow {
	pthread_t thread;
	pthread_mutex_t lock; /* guards head/tail/stop */
	pthread_cond_t cond;
	struct slow_job *head, **tail;
	bool stop;
};

static void issue_range(struct blockdev_queue *q, struct blockdev_req *req, struct blockdev *bs,
			enum blockdev_op op, uint64_t offset, uint64_t req_off, uint64_t len);

/* ---- requests -------------------------------------------------------------------------------- */

static void req_fail(struct blockdev_req *req, int ret)
{
	if (!req->priv.ret)
		req->priv.ret = ret;
}

static void req_fin(struct iothread_op *op, int res)
{
	struct blockdev_req *req = container_of(op, struct blockdev_req, priv.fin);

	req->priv.q->inflight--;
	/* dirty bitmaps see a write once it completed (a mirror that reads the range after
	 * finding it dirty reads the new data); a failed one may have written part of it */
	if (req->op != BLOCKDEV_OP_READ && req->op != BLOCKDEV_OP_FLUSH) {
		struct blockdev *bs = req->priv.q->bs;
		blockdev_write_hook_fn *hook;

		/* and those of the nodes under filters (a throttle node over the image): the
		 * request went to them too */
		for (struct blockdev *n = bs; n; n = n->drv->filter ? n->file : NULL)
			blockdev_bitmaps_mark(n, req->offset, req->priv.len);
		/* after the marks (blockdev_set_write_hook's users rely on the order) */
		hook = atomic_load(&bs->write_hook);
		if (hook && !req->priv.ret)
			hook(atomic_load(&bs->write_hook_opaque), req->offset,
			     req->op == BLOCKDEV_OP_WRITE ? req->iov : NULL,
			     req->op == BLOCKDEV_OP_WRITE ? req->iovcnt : 0, req->priv.len);
	}
	req->done(req, req->priv.ret);
}

static void req_put(struct blockdev_req *req)
{
	if (--req->priv.pending == 0)
		iothread_defer(req->priv.q->it, &req->priv.fin, 0);
}

/* ---- the slow path --------------------------------------------------------------------------- */

/* The job's part of its request's buffers, in a new array (*v, free it); count or -errno. */
static int slow_iov(const struct slow_job *job, struct iovec **v)
{
	const struct blockdev_req *req = job->req;
	int n = blockdev_iov_slice(req->iov, req->iovcnt, job->req_off, job->len, NULL, 0);

	if (n < 0)
		return n;
	*v = calloc((size_t)n + 1, sizeof(**v));
	if (!*v)
		return -ENOMEM;
	blockdev_iov_slice(req->iov, req->iovcnt, job->req_off, job->len, *v, n);
	return n;
}

static int slow_run(struct slow_job *job)
{
	struct iovec *v;
	int n, ret;

	switch (job->op) {
	case BLOCKDEV_OP_READ:
	case BLOCKDEV_OP_WRITE:
		n = slow_iov(job, &v);
		if (n < 0)
			return n;
		if (job->op == BLOCKDEV_OP_READ)
			ret = blockdev_preadv(job->node, job->offset, v, n);
		else
			ret = blockdev_pwritev(job->node, job->offset, v, n);
		free(v);
		return ret;
	case BLOCKDEV_OP_FLUSH:
		return blockdev_flush(job->node);
	case BLOCKDEV_OP_DISCARD:
		return blockdev_discard(job->node, job->offset, job->len);
	case BLOCKDEV_OP_WRITE_ZEROES:
		return blockdev_write_zeroes(job->node, job->offset, job->len, job->flags);
	}
	return -EINVAL;
}

/* On the iothread: the worker finished @arg. */
static void slow_done(void *arg)
{
	struct slow_job *job = arg;
	struct blockdev_req *req = job->req;

	iothread_io_end(job->q->it);
	if (job->ret < 0)
		req_fail(req, job->ret);
	free(job);
	req_put(req);
}

static void slow_post(struct slow_job *job)
{
	while (iothread_post(job->q->it, slow_done, job) < 0)
		usleep(1000); /* out of memory: the completion must not be lost */
}

static bool groupable(const struct slow_job *job)
{
	return (job->op == BLOCKDEV_OP_WRITE && job->node->drv->pwritev_group) ||
	       (job->op == BLOCKDEV_OP_READ && job->node->drv->preadv_group);
}

/*
 * Runs @first and the other jobs of its node and op (WRITE or READ) in *@rest (taken out of that
 * list) as one group, then hands them all back. Without memory for the group they run one by
 * one.
 */
static void slow_run_group(struct slow_job *first, struct slow_job **rest)
{
	struct slow_job *g = first, **gt = &first->next, **pp = rest;
	struct blockdev_write *w;
	size_t n = 1, k = 0;

	first->next = NULL;
	while (*pp) { /* move the node's writes (reads) from *rest to the group, in order */
		struct slow_job *j = *pp;

		if (groupable(j) && j->node == first->node && j->op == first->op) {
			*pp = j->next;
			j->next = NULL;
			*gt = j;
			gt = &j->next;
			n++;
		} else {
			pp = &j->next;
		}
	}
	w = calloc(n, sizeof(*w));
	if (!w) {
		for (struct slow_job *j = g, *next; j; j = next) {
			next = j->next;
			j->ret = slow_run(j);
			slow_post(j);
		}
		return;
	}
	for (struct slow_job *j = g; j; j = j->next) {
		struct iovec *v = NULL;
		int cnt = slow_iov(j, &v);

		j->ret = cnt < 0 ? cnt : 0; /* fails alone: not part of the group */
		if (cnt >= 0)
			w[k++] = (struct blockdev_write){ j->offset, v, cnt, 0 };
	}
	if (k && first->op == BLOCKDEV_OP_READ)
		first->node->drv->preadv_group(first->node, w, k);
	else if (k)
		first->node->drv->pwritev_group(first->node, w, k);
	k = 0;
	for (struct slow_job *j = g, *next; j; j = next) {
		next = j->next;
		if (!j->ret) {
			j->ret = w[k].ret;
			free((void *)w[k++].iov);
		}
		slow_post(j); /* the iothread frees the job */
	}
	free(w);
}

static void *slow_main(void *arg)
{
	struct blockdev_slow *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct slow_job *list;

		while (!s->head && !s->stop)
			pthread_cond_wait(&s->cond, &s->lock);
		list = s->head; /* take everything queued: one group per node */
		if (!list)
			break;
		s->head = NULL;
		s->tail = &s->head;
		pthread_mutex_unlock(&s->lock);
		while (list) {
			struct slow_job *job = list;

			list = job->next;
			if (groupable(job)) {
				slow_run_group(job, &list);
				continue;
			}
			job->ret = slow_run(job);
			slow_post(job);
		}
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int blockdev_slow_start(struct blockdev *bs, struct error **errp)
{
	struct blockdev_slow *s;

	if (bs->slow)
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s) {
		error_setg(errp, "'%s': out of memory", bs->filename);
		return -1;
	}
	s->tail = &s->head;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (sandbox_thread_spawn(&s->thread, SANDBOX_ROLE_ENGINE, "blk-slow", NULL, slow_main, s,
				 errp) < 0) {
		error_prepend(errp, "'%s': the slow-path thread", bs->filename);
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return -1;
	}
	bs->slow = s;
	return 0;
}

void blockdev_slow_stop(struct blockdev *bs)
{
	struct blockdev_slow *s = bs->slow;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	bs->slow = NULL;
}

/* Hands [offset, offset+len) of @node to the worker; the piece completes through slow_done. */
static void slow_submit(struct blockdev_queue *q, struct blockdev_req *req, struct blockdev *node,
			enum blockdev_op op, uint64_t offset, uint64_t req_off, uint64_t len)
{
	struct blockdev_slow *s = q->bs->slow;
	struct slow_job *job = malloc(sizeof(*job));

	if (!job) {
		req_fail(req, -ENOMEM);
		return;
	}
	*job = (struct slow_job){
		.q = q, .req = req, .node = node, .op = op, .offset = offset, .req_off = req_off,
		.len = len, .flags = req->flags,
	};
	req->priv.pending++;
	iothread_io_begin(q->it);
	pthread_mutex_lock(&s->lock);
	*s->tail = job;
	s->tail = &job->next;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* ---- sub-I/Os on the ring -------------------------------------------------------------------- */

/*
 * @node's slot in the ring's fixed file table, registered on first use (the queue's chain is
 * registered when the queue is made; a node that joins it later, here). -errno when the table
 * cannot take it: the ring takes no plain fd, so the piece fails.
 */
static int queue_file_index(struct blockdev_queue *q, struct blockdev *node)
{
	int index;

	for (unsigned int i = 0; i < q->nr_files; i++)
		if (q->files[i].node == node)
			return q->files[i].index;
	if (q->nr_files == q->files_cap) {
		unsigned int cap = q->files_cap ? 2 * q->files_cap : 4;
		void *p = realloc(q->files, cap * sizeof(*q->files));

		if (!p)
			return -ENOMEM;
		q->files = p;
		q->files_cap = cap;
	}
	index = iothread_file_index(q->it, node->fd);
	if (index < 0)
		return index;
	q->files[q->nr_files].node = node;
	q->files[q->nr_files++].index = index;
	return index;
}

/* A piece on @node failed because its file has no slot: said once per queue. */
static void queue_file_refused(struct blockdev_queue *q, struct blockdev *node, int err)
{
	struct error *e = NULL;
	char what[300];

	if (q->files_refused)
		return;
	q->files_refused = true;
	snprintf(what, sizeof(what), "'%s' (node '%s')", node->filename, node->node_name);
	iothread_file_error(q->it, err, what, &e);
	fprintf(stderr, "vireo: blockdev '%s': %s: its requests fail\n", q->bs->node_name,
		error_msg(e));
	error_free(e);
}

static void io_complete(struct iothread_op *op, int res);

static struct blk_io *io_get(struct blockdev_queue *q)
{
	struct blk_io *io = q->free_ios;

	if (io) {
		q->free_ios = io->next_free;
	} else {
		io = calloc(1, sizeof(*io));
		if (!io)
			return NULL;
		io->op.complete = io_complete;
		io->q = q;
	}
	return io;
}

static void io_put(struct blk_io *io)
{
	if (io->bounce_cap > BOUNCE_KEEP) {
		free(io->bounce);
		io->bounce = NULL;
		io->bounce_cap = 0;
	}
	io->next_free = io->q->free_ios;
	io->q->free_ios = io;
}

static void io_finish(struct blk_io *io, int ret)
{
	struct blockdev_req *req = io->req;

	if (ret < 0)
		req_fail(req, ret);
	io_put(io);
	req_put(req);
}

/* Points io->iov at the not yet done part of the piece. Returns 0 or -ENOMEM. */
static int io_set_iov(struct blk_io *io)
{
	struct blockdev_req *req = io->req;
	uint64_t skip = io->req_off + io->done, len = io->len - io->done;
	int n;

	if (io->in_bounce) {
		io->inline_iov[0] = (struct iovec){ io->bounce + io->done, len };
		io->iov = io->inline_iov;
		io->iovcnt = 1;
		return 0;
	}
	if (skip == 0 && len == req->priv.len) {
		io->iov = req->iov;
		io->iovcnt = req->iovcnt;
		return 0;
	}
	n = blockdev_iov_slice(req->iov, req->iovcnt, skip, len, io->inline_iov, IO_INLINE_IOV);
	if (n < 0)
		return n;
	if (n <= IO_INLINE_IOV) {
		io->iov = io->inline_iov;
	} else {
		if (n > io->heap_cap) {
			struct iovec *v = realloc(io->heap_iov, (size_t)n * sizeof(*v));

			if (!v)
				return -ENOMEM;
			io->heap_iov = v;
			io->heap_cap = n;
		}
		blockdev_iov_slice(req->iov, req->iovcnt, skip, len, io->heap_iov, n);
		io->iov = io->heap_iov;
	}
	io->iovcnt = n;
	return 0;
}

/* O_DIRECT takes the rest of this piece as is? */
static bool io_dio_ok(struct blk_io *io)
{
	struct blockdev *f = io->file;
	uint64_t pos = io->host_offset + io->done, rest = io->len - io->done;

	if (f->align <= 1 && f->mem_align <= 1)
		return true;
	return IS_ALIGNED(pos | rest, (uint64_t)f->align) &&
	       blockdev_iov_dio_ok(io->iov, io->iovcnt, f->mem_align, f->align);
}

/*
 * Moves the rest of @io to the slow path (on its protocol node) and retires the sub-I/O. An
 * encrypted piece goes whole to the node that mapped it, which decrypts (encrypts) it there:
 * what a read brought in so far is ciphertext, and a write's is written again, the same.
 */
static void io_to_slow(struct blk_io *io)
{
	if (io->crypt)
		slow_submit(io->q, io->req, io->node, io->opcode, io->node_off, io->req_off,
			    io->len);
	else
		slow_submit(io->q, io->req, io->file, io->opcode, io->host_offset + io->done,
			    io->req_off + io->done, io->len - io->done);
	io_finish(io, 0);
}

/* An aligned bounce buffer of at least @io->len bytes in io->bounce; 0 or -ENOMEM. */
static int io_bounce(struct blk_io *io)
{
	void *p;

	if (io->bounce_cap >= io->len)
		return 0;
	if (posix_memalign(&p, MAX(io->file->mem_align, 4096u), io->len))
		return -ENOMEM;
	free(io->bounce);
	io->bounce = p;
	io->bounce_cap = io->len;
	return 0;
}

/*
 * An encrypted write's data, encrypted into the bounce buffer that the ring then writes (the
 * guest's memory is read once and never changed). 0 or -errno.
 */
static int crypt_write_prepare(struct blk_io *io)
{
	struct blockdev_req *req = io->req;
	struct luks_cipher *c = blockdev_ciphers_get(&io->q->ciphers, io->crypt);
	int ret = c ? io_bounce(io) : -ENOMEM;

	if (ret)
		return ret;
	blockdev_iov_to_buf(req->iov, req->iovcnt, io->req_off, io->bounce, io->len);
	io->in_bounce = true;
	return luks_cipher_run(c, true, io->crypt_sector, io->bounce, io->len);
}

/*
 * An encrypted read whose buffers O_DIRECT cannot take as they are reads into the bounce
 * buffer instead (when nothing arrived yet and the file range itself is aligned). true when
 * it switched.
 */
static bool crypt_read_to_bounce(struct blk_io *io)
{
	struct blockdev *f = io->file;

	if (!io->crypt || io->opcode != BLOCKDEV_OP_READ || io->in_bounce || io->done ||
	    !IS_ALIGNED(io->host_offset | io->len, (uint64_t)MAX(f->align, 1u)) || io_bounce(io))
		return false;
	io->in_bounce = true;
	return true;
}

/* The whole encrypted read arrived: decrypt it into the request's buffers. 0 or -errno. */
static int crypt_read_done(struct blk_io *io)
{
	struct blockdev_req *req = io->req;
	struct luks_cipher *c = blockdev_ciphers_get(&io->q->ciphers, io->crypt);
	int ret;

	if (!c)
		return -ENOMEM;
	if (!io->in_bounce)
		return blockdev_crypt_iov(c, false, io->crypt_sector, req->iov, req->iovcnt,
					  io->req_off, io->len);
	ret = luks_cipher_run(c, false, io->crypt_sector, io->bounce, io->len);
	if (!ret)
		blockdev_iov_from_buf(req->iov, req->iovcnt, io->req_off, io->bounce, io->len);
	return ret;
}

static void io_issue(struct blk_io *io)
{
	struct blockdev_queue *q = io->q;
	struct io_uring_sqe *sqe;
	int index, fd, mode, ret, buf;
	uint64_t off = io->host_offset + io->done;

	if (!io->splice && (io->opcode == BLOCKDEV_OP_READ || io->opcode == BLOCKDEV_OP_WRITE)) {
		ret = io_set_iov(io);
		if (!ret && !io_dio_ok(io) && crypt_read_to_bounce(io))
			ret = io_set_iov(io);
		if (ret < 0) {
			io_finish(io, ret);
			return;
		}
		if (!io_dio_ok(io)) {
			io_to_slow(io);
			return;
		}
	}
	index = queue_file_index(q, io->file);
	if (index < 0) {
		queue_file_refused(q, io->file, index);
		io_finish(io, index);
		return;
	}
	sqe = iothread_get_sqe(q->it, &io->op);
	if (!sqe) {
		io_finish(io, -EIO);
		return;
	}
	fd = index; /* a slot of the fixed file table: IOSQE_FIXED_FILE below */
	if (io->splice) { /* file (fixed: SPLICE_F_FD_IN_FIXED) -> the pipe (IOSQE_FIXED_FILE) */
		io_uring_prep_splice(sqe, fd, (int64_t)off, io->req->splice_fix, -1,
				     (unsigned int)(io->len - io->done),
				     SPLICE_F_FD_IN_FIXED | SPLICE_F_MOVE);
		sqe->flags |= IOSQE_FIXED_FILE;
		return;
	}
	buf = -1;
	/* io->iov is set (io_set_iov) for reads and writes only: a recycled sub-I/O's is stale */
	if ((io->opcode == BLOCKDEV_OP_READ || io->opcode == BLOCKDEV_OP_WRITE) &&
	    io->iovcnt == 1 && io->iov[0].iov_len <= UINT32_MAX)
		buf = iothread_buffer_index(q->it, io->iov[0].iov_base, io->iov[0].iov_len);
	switch (io->opcode) {
	case BLOCKDEV_OP_READ:
		if (buf >= 0)
			io_uring_prep_read_fixed(sqe, fd, io->iov[0].iov_base,
						 (unsigned int)io->iov[0].iov_len, off, buf);
		else
			io_uring_prep_readv(sqe, fd, io->iov, (unsigned int)io->iovcnt, off);
		break;
	case BLOCKDEV_OP_WRITE:
		if (buf >= 0)
			io_uring_prep_write_fixed(sqe, fd, io->iov[0].iov_base,
						  (unsigned int)io->iov[0].iov_len, off, buf);
		else
			io_uring_prep_writev(sqe, fd, io->iov, (unsigned int)io->iovcnt, off);
		break;
	case BLOCKDEV_OP_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case BLOCKDEV_OP_DISCARD:
	case BLOCKDEV_OP_WRITE_ZEROES:
		if (io->opcode == BLOCKDEV_OP_DISCARD || (io->req->flags & BLOCKDEV_ZERO_MAY_UNMAP))
			mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		else
			mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		io_uring_prep_fallocate(sqe, fd, mode, (off_t)off, (off_t)io->len);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	/* one submit per request (blockdev_submit), not per piece; a re-issue goes with the turn */
	q->eager_pending |= io->file->submit_eager;
}

static void io_complete(struct iothread_op *op, int res)
{
	struct blk_io *io = container_of(op, struct blk_io, op);

	if (res == -EAGAIN || res == -EINTR) {
		io_issue(io);
		return;
	}
	if (res < 0) {
		bool unsupported = res == -EOPNOTSUPP || res == -EINVAL || res == -ENODEV;

		/* discard is a hint; write-zeroes falls back to the driver's own way */
		if (io->opcode == BLOCKDEV_OP_DISCARD && unsupported)
			res = 0;
		else if (io->opcode == BLOCKDEV_OP_WRITE_ZEROES && unsupported) {
			io_to_slow(io);
			return;
		}
		io_finish(io, res);
		return;
	}
	if (io->opcode == BLOCKDEV_OP_READ || io->opcode == BLOCKDEV_OP_WRITE) {
		if (res == 0) {
			if (io->opcode == BLOCKDEV_OP_WRITE) {
				io_finish(io, -ENOSPC);
				return;
			}
			if (io->splice) { /* no zeroes to splice: the caller reads it again */
				io_finish(io, -ENODATA);
				return;
			}
			/* end of file: the rest reads as zeroes (encrypted: as the sync path, zeroes
			 * of the file, decrypted) */
			if (io->in_bounce)
				memset(io->bounce + io->done, 0, io->len - io->done);
			else
				blockdev_iov_zero(io->req->iov, io->req->iovcnt,
						  io->req_off + io->done, io->len - io->done);
			io_finish(io, io->crypt ? crypt_read_done(io) : 0);
			return;
		}
		io->done += (uint64_t)res;
		if (io->done < io->len) { /* short: issue the rest */
			io_issue(io);
			return;
		}
		if (io->crypt && io->opcode == BLOCKDEV_OP_READ) {
			io_finish(io, crypt_read_done(io));
			return;
		}
	}
	io_finish(io, 0);
}

/* A DATA extent of @bs at @offset (the request's bytes from @req_off) onto the ring. */
static void issue_data(struct blockdev_queue *q, struct blockdev_req *req, struct blockdev *bs,
		       enum blockdev_op op, const struct blockdev_extent *ext, uint64_t offset,
		       uint64_t req_off)
{
	struct blk_io *io;
	int ret;

	if (ext->crypt && (op != BLOCKDEV_OP_READ && op != BLOCKDEV_OP_WRITE)) {
		req_fail(req, -EIO); /* driver bug: only data is encrypted */
		return;
	}
	io = io_get(q);
	if (!io) {
		req_fail(req, -ENOMEM);
		return;
	}
	io->req = req;
	io->file = ext->file;
	io->opcode = op;
	io->host_offset = ext->host_offset;
	io->req_off = req_off;
	io->len = ext->len;
	io->done = 0;
	io->crypt = ext->crypt;
	io->crypt_sector = ext->crypt_sector;
	io->node = bs;
	io->node_off = offset;
	io->in_bounce = false;
	io->splice = op == BLOCKDEV_OP_READ && (req->flags & BLOCKDEV_READ_SPLICE);
	req->priv.pending++;
	if (io->crypt && op == BLOCKDEV_OP_WRITE) {
		ret = crypt_write_prepare(io);
		if (ret < 0) {
			io_finish(io, ret);
			return;
		}
	}
	io_issue(io);
}

/* ---- splitting a request into extents -------------------------------------------------------- */

static void issue_backing(struct blockdev_queue *q, struct blockdev_req *req, struct blockdev *bs,
			  uint64_t offset, uint64_t req_off, uint64_t len)
{
	struct blockdev *b = bs->backing;
	uint64_t in = 0;

	if (b && offset < b->size)
		in = MIN(len, b->size - offset);
	if (in)
		issue_range(q, req, b, BLOCKDEV_OP_READ, offset, req_off, in);
	if (in < len) /* past the end of a shorter backing file: zeroes */
		blockdev_iov_zero(req->iov, req->iovcnt, req_off + in, len - in);
}

static void issue_range(struct blockdev_queue *q, struct blockdev_req *req, struct blockdev *bs,
			enum blockdev_op op, uint64_t offset, uint64_t req_off, uint64_t len)
{
	while (len && !req->priv.ret) {
		struct blockdev_extent ext;
		int ret = blockdev_map(bs, op, offset, len, &ext);

		if (ret < 0) {
			req_fail(req, ret);
			return;
		}
		if (ext.len == 0 || ext.len > len) {
			req_fail(req, -EIO); /* driver bug: refuse rather than loop */
			return;
		}
		switch (ext.kind) {
		case BLOCKDEV_EXTENT_DATA:
			if (ext.file && ext.file->fd >= 0)
				issue_data(q, req, bs, op, &ext, offset, req_off);
			else
				slow_submit(q, req, bs, op, offset, req_off, ext.len);
			break;
		case BLOCKDEV_EXTENT_ZERO:
			if (op == BLOCKDEV_OP_READ)
				blockdev_iov_zero(req->iov, req->iovcnt, req_off, ext.len);
			else if (op == BLOCKDEV_OP_WRITE)
				req_fail(req, -EIO);
			/* DISCARD, WRITE_ZEROES: already zero, nothing to do */
			break;
		case BLOCKDEV_EXTENT_BACKING:
			if (op == BLOCKDEV_OP_READ)
				issue_backing(q, req, bs, offset, req_off, ext.len);
			else
				req_fail(req, -EIO);
			break;
		case BLOCKDEV_EXTENT_SLOW:
			slow_submit(q, req, bs, op, offset, req_off, ext.len);
			break;
		default:
			req_fail(req, -EIO);
			return;
		}
		offset += ext.len;
		if (op == BLOCKDEV_OP_READ || op == BLOCKDEV_OP_WRITE)
			req_off += ext.len;
		len -= ext.len;
	}
}

/*
 * A BLOCKDEV_READ_SPLICE read: one piece from the file into the pipe, which keeps the bytes in
 * order. The pipe holds references to the file's page-cache pages, so a range that is freed
 * and reused later would show its new bytes: a driver reuses freed ranges only after every
 * queue drained (see "Reuse of freed host ranges" in blockdev.h), which waits for this
 * request, and the caller sends the pipe's bytes on before it tells anyone the read is done.
 */
static void issue_splice(struct blockdev_queue *q, struct blockdev_req *req, struct blockdev *bs)
{
	struct blockdev_extent ext;
	int ret = req->priv.len ? blockdev_map(bs, BLOCKDEV_OP_READ, req->offset, req->priv.len,
					       &ext) : -EOPNOTSUPP;

	if (ret < 0) {
		req_fail(req, ret); /* -EOPNOTSUPP: nothing moved, the caller reads it into @iov */
		return;
	}
	if (ext.kind != BLOCKDEV_EXTENT_DATA || ext.len != req->priv.len || ext.crypt ||
	    !ext.file || ext.file->fd < 0 || ext.file->align > 1) {
		req_fail(req, -EOPNOTSUPP); /* nothing moved: the caller reads it into @iov */
		return;
	}
	issue_data(q, req, bs, BLOCKDEV_OP_READ, &ext, req->offset, 0);
}

static void issue_flush(struct blockdev_queue *q, struct blockdev_req *req, struct blockdev *bs)
{
	if (bs->read_only)
		return;
	if (bs->fd >= 0) {
		struct blockdev_extent ext = { .kind = BLOCKDEV_EXTENT_DATA, .file = bs };

		issue_data(q, req, bs, BLOCKDEV_OP_FLUSH, &ext, 0, 0);
	} else if (bs->drv->flush) {
		slow_submit(q, req, bs, BLOCKDEV_OP_FLUSH, 0, 0, 0);
	} else if (bs->file) {
		issue_flush(q, req, bs->file);
	}
}

static int check_req(struct blockdev_queue *q, struct blockdev_req *req)
{
	struct blockdev *bs = q->bs;
	bool write = req->op != BLOCKDEV_OP_READ;

	switch (req->op) {
	case BLOCKDEV_OP_READ:
	case BLOCKDEV_OP_WRITE:
		if (req->iovcnt < 1 || req->iovcnt > BLOCKDEV_MAX_IOV || !req->iov)
			return -EINVAL;
		req->priv.len = blockdev_iov_size(req->iov, req->iovcnt);
		break;
	case BLOCKDEV_OP_DISCARD:
	case BLOCKDEV_OP_WRITE_ZEROES:
		req->priv.len = req->len;
		break;
	case BLOCKDEV_OP_FLUSH:
		return 0;
	default:
		return -EINVAL;
	}
	if (write && bs->read_only)
		return -EROFS;
	if (!range_within(req->offset, req->priv.len, bs->size))
		return -EINVAL;
	return 0;
}

/* A backup's copy-before-write, if the node has one (see blockdev_before_write_fn). */
static int before_write(struct blockdev *bs, uint64_t off, uint64_t len)
{
	blockdev_before_write_fn *fn = atomic_load(&bs->before_write);

	return fn ? fn(atomic_load(&bs->before_write_opaque), off, len) : 0;
}

void blockdev_submit(struct blockdev_queue *q, struct blockdev_req *req)
{
	int ret;

	req->priv.q = q;
	req->priv.fin.complete = req_fin;
	req->priv.ret = 0;
	req->priv.pending = 1; /* held while issuing */
	q->inflight++;
	atomic_store_explicit(&q->submitted,
			      atomic_load_explicit(&q->submitted, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	ret = check_req(q, req);
	if (ret >= 0 && req->op != BLOCKDEV_OP_READ && req->op != BLOCKDEV_OP_FLUSH)
		ret = before_write(q->bs, req->offset, req->priv.len);
	if (ret < 0) {
		req_fail(req, ret);
		req_put(req);
		return;
	}
	if (q->thr && blockdev_throttle_hold(q->thr, req))
		return; /* the throttle issues it when its group lets it go (blockdev_queue_issue) */
	blockdev_queue_issue(q, req);
}

void blockdev_queue_issue(struct blockdev_queue *q, struct blockdev_req *req)
{
	/* a throttle node passes its requests to its file child */
	struct blockdev *bs = q->thr ? q->bs->file : q->bs;

	if (req->op == BLOCKDEV_OP_FLUSH)
		issue_flush(q, req, bs);
	else if (req->op == BLOCKDEV_OP_READ && (req->flags & BLOCKDEV_READ_SPLICE))
		issue_splice(q, req, bs);
	else
		issue_range(q, req, bs, req->op, req->offset, 0, req->priv.len);
	req_put(req);
	if (q->eager_pending) {
		q->eager_pending = false;
		iothread_submit(q->it);
	}
}

struct throttle_member *blockdev_queue_throttle(const struct blockdev_queue *q)
{
	return q->thr;
}

/* ---- queues ---------------------------------------------------------------------------------- */

/* Registers the files of @n and of the nodes under it (file, backing) in the queue's ring. */
static int register_chain(struct blockdev_queue *q, struct blockdev *n, struct error **errp)
{
	char what[300];
	int ret;

	if (!n)
		return 0;
	if (n->fd >= 0) {
		ret = queue_file_index(q, n);
		if (ret < 0) {
			snprintf(what, sizeof(what), "'%s' (node '%s')", n->filename, n->node_name);
			iothread_file_error(q->it, ret, what, errp);
			return -1;
		}
	}
	if (register_chain(q, n->file, errp) < 0)
		return -1;
	return register_chain(q, n->backing, errp);
}

struct chain_call {
	struct blockdev_queue *q;
	struct error **errp;
};

/* On the queue's iothread: 0, or 1 when a file could not be registered (none stays). */
static int register_chain_fn(void *arg)
{
	struct chain_call *c = arg;

	if (register_chain(c->q, c->q->bs, c->errp) == 0)
		return 0;
	blockdev_queue_forget_files(c->q);
	return 1;
}

struct blockdev_queue *blockdev_queue_new(struct blockdev *bs, struct iothread *it,
					  struct error **errp)
{
	struct blockdev_queue *q = calloc(1, sizeof(*q));
	int ret;

	if (!q) {
		error_setg(errp, "'%s': out of memory", bs->filename);
		return NULL;
	}
	if (blockdev_slow_start(bs, errp) < 0) {
		free(q);
		return NULL;
	}
	q->bs = bs;
	q->it = it;
	if (blockdev_throttle_node_group(bs)) {
		q->thr = blockdev_throttle_member_new(bs, q, it, errp);
		if (!q->thr) {
			free(q);
			return NULL;
		}
	}
	/* the chain's files into the ring now: a ring whose table cannot take them refuses the
	 * queue (and so the drive) here, with a message, rather than failing its requests */
	ret = iothread_run_sync(it, register_chain_fn, &(struct chain_call){ q, errp });
	if (ret) {
		if (ret < 0)
			error_setg(errp, "'%s': out of memory", bs->filename);
		blockdev_throttle_member_free(q->thr);
		free(q->files);
		free(q);
		return NULL;
	}
	pthread_mutex_lock(&all_lock);
	q->all_next = all_queues;
	if (all_queues)
		all_queues->all_prev = q;
	all_queues = q;
	pthread_mutex_unlock(&all_lock);
	return q;
}

uint64_t blockdev_frontend_requests(void)
{
	uint64_t n = 0;

	pthread_mutex_lock(&all_lock);
	for (struct blockdev_queue *q = all_queues; q; q = q->all_next)
		n += atomic_load_explicit(&q->submitted, memory_order_relaxed);
	pthread_mutex_unlock(&all_lock);
	return n;
}

void blockdev_queue_free(struct blockdev_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&all_lock);
	if (q->all_prev)
		q->all_prev->all_next = q->all_next;
	else
		all_queues = q->all_next;
	if (q->all_next)
		q->all_next->all_prev = q->all_prev;
	pthread_mutex_unlock(&all_lock);
	if (q->inflight)
		fprintf(stderr, "vireo: blockdev '%s': queue freed with %u requests in flight\n",
			q->bs->filename, q->inflight);
	if (iothread_is_current(q->it))
		blockdev_queue_forget_files(q);
	blockdev_throttle_member_free(q->thr);
	while (q->free_ios) {
		struct blk_io *io = q->free_ios;

		q->free_ios = io->next_free;
		free(io->heap_iov);
		free(io->bounce);
		free(io);
	}
	blockdev_ciphers_clear(&q->ciphers);
	free(q->files);
	free(q);
}

void blockdev_queue_forget_files(struct blockdev_queue *q)
{
	for (unsigned int i = 0; i < q->nr_files; i++)
		if (q->files[i].index >= 0)
			iothread_file_release(q->it, q->files[i].node->fd);
	q->nr_files = 0;
	blockdev_ciphers_clear(&q->ciphers); /* the keys of the chain's nodes may go too */
}

unsigned int blockdev_queue_inflight(const struct blockdev_queue *q)
{
	return q->inflight;
}

int blockdev_queue_drain(struct blockdev_queue *q)
{
	if (q->thr) /* what the throttle holds goes now: a drain does not wait for the limits */
		blockdev_throttle_flush(q->thr);
	while (q->inflight) {
		int ret = iothread_wait_once(q->it);

		if (ret < 0)
			return ret;
	}
	return 0;
}
