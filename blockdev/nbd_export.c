/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NBD exports: the registry the handshake looks names up in, and each export's data path on
 * the block layer.
 *
 * Ownership. The server's list of exports, their reference counts and connection counts are
 * guarded by srv->lock: a handshake on the server's iothread looks an export up and takes a
 * reference while the control plane adds or deletes. What the handshake reads of an export
 * (desc) never changes after it is published. An export's requests all run on its iothread
 * (exp->it): its blockdev queue, its adopted clients, the requests parked by a drained section
 * and the count of block status jobs are that thread's alone. Block status may block in the
 * block layer (qcow2 metadata reads), so it runs on the export's worker thread: a job is handed
 * over under exp->wlock and comes back with iothread_post, which orders what the worker wrote
 * into the reply before the iothread reads it.
 *
 * Reads. A structured read without NBD_CMD_FLAG_DF is answered with data and hole chunks. The
 * holes come from the driver's map() (lock-free, never blocks: unallocated qcow2 clusters, zero
 * clusters) and, for a read of at least HOLE_SEEK_MIN bytes mapped to a regular file, from the
 * file's own holes (SEEK_DATA/SEEK_HOLE, as qemu-nbd); the rest is one blockdev read of the
 * whole range, skipped when it is all holes. A read with no hole to describe on a plaintext
 * connection goes into one of the client's pipes instead of its buffer when the node maps it
 * to one page-cached extent (BLOCKDEV_READ_SPLICE: the pipe takes references to the page
 * cache, no copy), and the transport splices it on into the socket, so the bytes are copied
 * once, by the client's receive, instead of three times. A splice the block layer refuses or
 * that fails reads the range again into the buffer.
 *
 * Drained sections. The export is its node's root user with drain hooks: drained_begin posts to
 * the iothread a message that parks every new request (and the flush after a FUA write) and
 * waits there, running the ring, until nothing is in flight on the queue and no status job is
 * at the worker; drained_end restarts what was parked. So a block job or a graph change sees no
 * request of the export in flight, as with a virtio-blk disk. A mirror's pivot moves the export
 * to the target node (replace hook), with a new queue on the same iothread.
 *
 * Deletion. The export leaves the registry (no new connection can choose it), its clients are
 * disconnected on its iothread, and the caller waits for every connection that chose it to be
 * freed (each frees after its requests completed); then the node's user is detached, the queue
 * freed on the iothread and the worker stopped. The memory goes with the last reference.
 * Deletion waits for a drained section that parked the export's requests to end. It must not
 * overlap a drained section another thread (a block job) begins on the node: that one could
 * call the hooks of an export being freed. The caller serializes the two, as for devices.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/bitmap.h"
#include "blockdev/copy.h"
#include "blockdev/nbd_internal.h"
#include "common/util.h"
#include "seccomp/thread.h"

#define HOLE_SEEK_MIN (64 * 1024) /* reads this long ask the file for its holes */
#define MAP_DEPTH 16              /* backing nodes a read's hole search follows */

/* ---- the registry (nbd_conn_ops for the handshake) ------------------------------------------- */

static struct nbd_export *find_locked(struct nbd_server *srv, const char *id, const char *name)
{
	for (struct nbd_export *e = srv->exports; e; e = e->next)
		if ((id && !strcmp(e->id, id)) || (name && !strcmp(e->name, name)))
			return e;
	return NULL;
}

static struct nbd_export *exp_get(void *opaque, const char *name)
{
	struct nbd_client *cl = opaque;
	struct nbd_server *srv = cl->srv;
	struct nbd_export *e;

	pthread_mutex_lock(&srv->lock);
	e = srv->stopping ? NULL : find_locked(srv, NULL, name);
	if (e)
		e->refs++;
	pthread_mutex_unlock(&srv->lock);
	return e;
}

static void exp_free(struct nbd_export *exp)
{
	pthread_mutex_destroy(&exp->wlock);
	pthread_cond_destroy(&exp->wcond);
	free(exp->id);
	free(exp->name);
	free(exp->description);
	for (unsigned int k = 0; k < exp->nr_bitmaps; k++)
		free(exp->bitmap_names[k]);
	free(exp);
}

void nbd_export_unref_locked(struct nbd_export *exp)
{
	if (--exp->refs == 0)
		exp_free(exp);
}

static void exp_put(void *opaque, struct nbd_export *exp)
{
	struct nbd_server *srv = exp->srv;

	pthread_mutex_lock(&srv->lock);
	nbd_export_unref_locked(exp);
	pthread_mutex_unlock(&srv->lock);
}

static const struct nbd_export_desc *exp_desc(struct nbd_export *exp)
{
	return &exp->desc;
}

static void exp_list(void *opaque, void (*fn)(void *arg, const struct nbd_export_desc *d),
		     void *arg)
{
	struct nbd_client *cl = opaque;
	struct nbd_server *srv = cl->srv;

	pthread_mutex_lock(&srv->lock);
	for (struct nbd_export *e = srv->exports; e && !srv->stopping; e = e->next)
		fn(arg, &e->desc);
	pthread_mutex_unlock(&srv->lock);
}

static void exp_submit(void *opaque, struct nbd_io *io)
{
	nbd_export_submit(opaque, io);
}

const struct nbd_conn_ops nbd_server_conn_ops = {
	.export_get = exp_get,
	.export_put = exp_put,
	.export_desc = exp_desc,
	.export_list = exp_list,
	.go = nbd_client_go,
	.submit = exp_submit,
	.wake = nbd_client_wake,
	.starttls = nbd_client_starttls,
};

/* ---- block status (the worker thread) -------------------------------------------------------- */

/* base:allocation of [off, end) of the whole chain, as qemu-nbd reports it. */
static int status_allocation(struct blockdev *bs, struct nbd_extents *e, uint64_t off,
			     uint64_t end)
{
	while (off < end) {
		uint64_t n = end - off;
		int st = blockdev_chain_status(bs, NULL, off, &n);
		uint32_t flags;

		if (st < 0)
			return st;
		if (!n)
			return -EIO;
		/* nothing in the chain holds it: it reads as zeroes */
		if (!(st & BLOCKDEV_STATUS_ALLOCATED) && !(st & BLOCKDEV_STATUS_DATA))
			st |= BLOCKDEV_STATUS_ZERO;
		flags = (st & BLOCKDEV_STATUS_DATA ? 0 : NBD_STATE_HOLE) |
			(st & BLOCKDEV_STATUS_ZERO ? NBD_STATE_ZERO : 0);
		if (!nbd_extents_add(e, MIN(n, end - off), flags))
			return 0; /* full: the client asks again for the rest */
		off += n;
	}
	return 0;
}

/* qemu:dirty-bitmap:NAME of [off, end): NBD_STATE_DIRTY where the bitmap has bits set. */
static int status_dirty(struct blockdev_bitmap *b, struct nbd_extents *e, uint64_t off,
			uint64_t end)
{
	while (off < end) {
		uint64_t start, len;

		if (!blockdev_bitmap_next_dirty(b, off, end - off, &start, &len) || start >= end) {
			nbd_extents_add(e, end - off, 0);
			return 0;
		}
		if (start > off && !nbd_extents_add(e, start - off, 0))
			return 0;
		len = MIN(len, end - start);
		if (!nbd_extents_add(e, len, NBD_STATE_DIRTY))
			return 0;
		off = start + len;
	}
	return 0;
}

static int status_run(struct nbd_bio *b)
{
	struct nbd_io *io = b->io;
	uint64_t end = io->offset + io->len;
	int ret = 0;

	if (io->ctx_mask & (1u << NBD_CTX_BASE_ALLOCATION))
		ret = status_allocation(b->exp->bs, &io->ext[NBD_CTX_BASE_ALLOCATION],
					io->offset, end);
	for (unsigned int k = 0; !ret && k < b->exp->nr_bitmaps; k++)
		if (io->ctx_mask & (1u << (NBD_CTX_DIRTY_BITMAP + k)))
			ret = status_dirty(b->exp->bitmaps[k], &io->ext[NBD_CTX_DIRTY_BITMAP + k],
					   io->offset, end);
	return ret;
}

/* On the iothread: a job came back. */
static void status_done(void *arg)
{
	struct nbd_bio *b = arg;

	b->exp->status_busy--;
	iothread_io_end(b->exp->it);
	nbd_conn_io_done(b->io, b->ret);
}

static void *worker_main(void *arg)
{
	struct nbd_export *exp = arg;

	pthread_mutex_lock(&exp->wlock);
	for (;;) {
		struct nbd_bio *b;

		while (!exp->jobs && !exp->wstop)
			pthread_cond_wait(&exp->wcond, &exp->wlock);
		b = exp->jobs;
		if (!b)
			break;
		exp->jobs = b->next;
		if (!exp->jobs)
			exp->jobs_tail = &exp->jobs;
		pthread_mutex_unlock(&exp->wlock);
		b->ret = status_run(b);
		while (iothread_post(exp->it, status_done, b) < 0)
			usleep(1000); /* out of memory: the completion must not be lost */
		pthread_mutex_lock(&exp->wlock);
	}
	pthread_mutex_unlock(&exp->wlock);
	return NULL;
}

static void status_submit(struct nbd_export *exp, struct nbd_bio *b)
{
	exp->status_busy++;
	iothread_io_begin(exp->it);
	pthread_mutex_lock(&exp->wlock);
	b->next = NULL;
	*exp->jobs_tail = b;
	exp->jobs_tail = &b->next;
	pthread_cond_signal(&exp->wcond);
	pthread_mutex_unlock(&exp->wlock);
}

/* ---- reads: holes without blocking ----------------------------------------------------------- */

/*
 * The start of [off, off+len) of @bs: *run bytes that are a hole (read as zeroes) or data.
 * false: do not look for holes in this read.
 */
static bool map_one(struct blockdev *bs, uint64_t off, uint64_t len, bool seek, uint64_t *run,
		    bool *hole)
{
	for (int depth = 0; depth < MAP_DEPTH; depth++) {
		struct blockdev_extent ext;

		if (blockdev_map(bs, BLOCKDEV_OP_READ, off, len, &ext) < 0 || !ext.len ||
		    ext.len > len)
			return false;
		*run = ext.len;
		*hole = false;
		switch (ext.kind) {
		case BLOCKDEV_EXTENT_ZERO:
			*hole = true;
			return true;
		case BLOCKDEV_EXTENT_DATA: /* a hole under ciphertext does not read as zeroes */
			if (seek && ext.file && ext.file->drv == &blockdev_file && !ext.crypt) {
				uint64_t pnum, map;
				struct blockdev *file;
				int st = blockdev_block_status(ext.file, ext.host_offset, ext.len,
							       &pnum, &map, &file);

				if (st >= 0 && pnum && pnum <= ext.len) {
					*run = pnum;
					*hole = (st & BLOCKDEV_STATUS_ZERO) &&
						!(st & BLOCKDEV_STATUS_DATA);
				}
			}
			return true;
		case BLOCKDEV_EXTENT_BACKING:
			bs = bs->backing;
			if (!bs || off >= bs->size) { /* past the backing file: zeroes */
				*hole = true;
				return true;
			}
			len = MIN(ext.len, bs->size - off);
			continue;
		default: /* SLOW: the driver reads it; data as far as we know */
			return true;
		}
	}
	return false;
}

/* Fills io->seg with the read's data and hole pieces; false: send it all as data. */
static bool read_map(struct blockdev *bs, struct nbd_io *io)
{
	bool seek = io->len >= HOLE_SEEK_MIN;
	uint64_t off = io->offset, end = io->offset + io->len;
	unsigned int n = 0;

	while (off < end) {
		uint64_t run;
		bool hole;

		if (!map_one(bs, off, end - off, seek, &run, &hole))
			return false;
		if (n && io->seg[n - 1].hole == hole) {
			io->seg[n - 1].len += (uint32_t)run;
		} else if (n == NBD_CONN_READ_SEGS) { /* out of pieces: the rest goes as data */
			io->seg[n - 1].hole = false;
			io->seg[n - 1].len += (uint32_t)(end - off);
			break;
		} else {
			io->seg[n++] = (struct nbd_read_seg){ (uint32_t)run, hole };
		}
		off += run;
	}
	io->nr_seg = n;
	return true;
}

static bool all_holes(const struct nbd_io *io)
{
	for (unsigned int i = 0; i < io->nr_seg; i++)
		if (!io->seg[i].hole)
			return false;
	return io->nr_seg > 0;
}

/* Whether zeroing the range is quicker than writing it (NBD_CMD_FLAG_FAST_ZERO). */
static bool zero_is_fast(struct blockdev *bs, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	while (off < end) {
		struct blockdev_extent ext;

		if (blockdev_map(bs, BLOCKDEV_OP_WRITE_ZEROES, off, end - off, &ext) < 0 ||
		    !ext.len)
			return false;
		switch (ext.kind) {
		case BLOCKDEV_EXTENT_ZERO: /* already zero */
			break;
		case BLOCKDEV_EXTENT_DATA: /* the engine zeroes the file range (fallocate) */
			if (!ext.file || ext.file->drv != &blockdev_file)
				return false;
			break;
		case BLOCKDEV_EXTENT_SLOW: /* the driver zeroes it itself: metadata, not data */
			if (!bs->drv->write_zeroes)
				return false;
			break;
		default:
			return false;
		}
		off += ext.len;
	}
	return true;
}

/* ---- the data path (the export's iothread) --------------------------------------------------- */

/* A read with no hole to describe: its bytes may be spliced (see start()). */
static bool read_all_data(const struct nbd_io *io)
{
	return !io->want_holes || !io->nr_seg || (io->nr_seg == 1 && !io->seg[0].hole);
}

static void issue(struct nbd_export *exp, struct nbd_bio *b);

static void bio_done(struct blockdev_req *req, int ret)
{
	struct nbd_bio *b = container_of(req, struct nbd_bio, breq);
	struct nbd_io *io = b->io;

	if (b->pipe) {
		int p = b->pipe;

		b->pipe = 0;
		if (!ret) { /* the bytes wait in the pipe: the reply sends them from there */
			io->pipe = p;
		} else { /* read it into the buffer instead (a real error repeats there) */
			nbd_client_pipe_put(b->cl, p, ret != -EOPNOTSUPP);
			b->no_splice = true;
			issue(b->exp, b);
			return;
		}
	}
	if (!ret && (io->flags & NBD_CMD_FLAG_FUA) && !b->flushing &&
	    (io->type == NBD_CMD_WRITE || io->type == NBD_CMD_WRITE_ZEROES ||
	     io->type == NBD_CMD_TRIM)) {
		/* the reply waits until the data is stable (proto.md, NBD_CMD_FLAG_FUA) */
		b->flushing = true;
		issue(b->exp, b);
		return;
	}
	nbd_conn_io_done(io, ret);
}

/* Fills the block request of @b for its stage and submits it, or completes @b. */
static void start(struct nbd_export *exp, struct nbd_bio *b)
{
	struct nbd_io *io = b->io;
	struct blockdev_req *r = &b->breq;

	*r = (struct blockdev_req){ .offset = io->offset, .done = bio_done };
	if (b->flushing) {
		r->op = BLOCKDEV_OP_FLUSH;
		r->offset = 0;
		blockdev_submit(exp->q, r);
		return;
	}
	switch (io->type) {
	case NBD_CMD_READ:
		/* once: a read started again (it waited for a pipe) keeps its pieces, no lseek */
		if (io->want_holes && !b->mapped) {
			b->mapped = true;
			if (read_map(exp->bs, io) && all_holes(io)) {
				nbd_conn_io_done(io, 0); /* nothing to read */
				return;
			}
		}
		/* fall through */
	case NBD_CMD_WRITE:
		b->iov = (struct iovec){ io->buf, (size_t)io->len };
		r->op = io->type == NBD_CMD_READ ? BLOCKDEV_OP_READ : BLOCKDEV_OP_WRITE;
		r->iov = &b->iov;
		r->iovcnt = 1;
		if (io->type == NBD_CMD_READ && !b->no_splice && read_all_data(io)) {
			int p = nbd_client_pipe_get(b->cl, io->len, b);

			if (p < 0)
				return; /* waits for a pipe */
			if (p) {
				b->pipe = p;
				r->flags = BLOCKDEV_READ_SPLICE;
				r->splice_fix = b->cl->pipes[p - 1].fix[1];
			}
		}
		break;
	case NBD_CMD_FLUSH:
		r->op = BLOCKDEV_OP_FLUSH;
		r->offset = 0;
		break;
	case NBD_CMD_TRIM:
		r->op = BLOCKDEV_OP_DISCARD;
		r->len = io->len;
		break;
	case NBD_CMD_WRITE_ZEROES:
		if ((io->flags & NBD_CMD_FLAG_FAST_ZERO) &&
		    !zero_is_fast(exp->bs, io->offset, io->len)) {
			nbd_conn_io_done(io, -ENOTSUP); /* fail fast, change nothing */
			return;
		}
		r->op = BLOCKDEV_OP_WRITE_ZEROES;
		r->len = io->len;
		r->flags = io->flags & NBD_CMD_FLAG_NO_HOLE ? 0 : BLOCKDEV_ZERO_MAY_UNMAP;
		break;
	case NBD_CMD_BLOCK_STATUS:
		status_submit(exp, b);
		return;
	default:
		nbd_conn_io_done(io, -EINVAL);
		return;
	}
	blockdev_submit(exp->q, r);
}

/* Starts @b, or parks it while a drained section is open. */
static void issue(struct nbd_export *exp, struct nbd_bio *b)
{
	if (exp->quiesced) {
		b->next = NULL;
		*exp->parked_tail = b;
		exp->parked_tail = &b->next;
		return;
	}
	start(exp, b);
}

void nbd_export_restart(struct nbd_bio *b)
{
	issue(b->exp, b);
}

void nbd_export_submit(struct nbd_client *cl, struct nbd_io *io)
{
	struct nbd_bio *b = (struct nbd_bio *)io->priv;

	b->io = io;
	b->cl = cl;
	b->exp = io->exp;
	issue(b->exp, b);
}

/* ---- drained sections ------------------------------------------------------------------------ */

static int quiesce_on_iothread(void *arg)
{
	struct nbd_export *exp = arg;

	exp->quiesced++;
	while (blockdev_queue_inflight(exp->q) || exp->status_busy) {
		int ret = iothread_wait_once(exp->it);

		if (ret < 0)
			return ret;
	}
	return 0;
}

static int resume_on_iothread(void *arg)
{
	struct nbd_export *exp = arg;
	struct nbd_bio *list;

	if (--exp->quiesced)
		return 0;
	blockdev_queue_forget_files(exp->q); /* the chain below may have changed */
	list = exp->parked;
	exp->parked = NULL;
	exp->parked_tail = &exp->parked;
	while (list) {
		struct nbd_bio *b = list;

		list = b->next;
		issue(exp, b);
	}
	return 0;
}

static void exp_drained_begin(void *opaque)
{
	struct nbd_export *exp = opaque;
	int ret = iothread_run_sync(exp->it, quiesce_on_iothread, exp);

	if (ret < 0)
		fprintf(stderr, "vireo: NBD export '%s': draining its requests failed: %s\n",
			exp->id, strerror(-ret));
}

static void exp_drained_end(void *opaque)
{
	struct nbd_export *exp = opaque;

	/* a block_resize in the section: clients see the new size from their next handshake
	 * and their requests' range checks (read by connections on other threads: atomic) */
	__atomic_store_n(&exp->desc.size, exp->bs->size, __ATOMIC_RELAXED);
	iothread_run_sync(exp->it, resume_on_iothread, exp);
}

struct swap_arg {
	struct nbd_export *exp;
	struct blockdev_queue *q;
	struct blockdev *bs;
};

static int swap_on_iothread(void *arg)
{
	struct swap_arg *a = arg;
	struct blockdev_queue *old = a->exp->q;

	a->exp->q = a->q;
	pthread_mutex_lock(&a->exp->srv->lock); /* nbd_export_list reads the node's name */
	a->exp->bs = a->bs;
	pthread_mutex_unlock(&a->exp->srv->lock);
	blockdev_queue_free(old); /* drained: nothing in flight on it */
	return 0;
}

/* Inside a drained section: serve @bs instead (a mirror's pivot). */
static int exp_replace(void *opaque, struct blockdev *bs, struct error **errp)
{
	struct nbd_export *exp = opaque;
	struct swap_arg a = { exp, NULL, bs };

	if (bs->size != exp->desc.size) {
		error_setg(errp, "NBD export '%s': node '%s' is %" PRIu64 " bytes, the export %"
			   PRIu64, exp->id, bs->node_name, bs->size, exp->desc.size);
		return -1;
	}
	if (exp->desc.writable && bs->read_only) {
		error_setg(errp, "NBD export '%s' is writable and node '%s' is read-only", exp->id,
			   bs->node_name);
		return -1;
	}
	if (exp->nr_bitmaps) {
		error_setg(errp, "NBD export '%s' exports a dirty bitmap of node '%s'", exp->id,
			   exp->bs->node_name);
		return -1;
	}
	a.q = blockdev_queue_new(bs, exp->it, errp);
	if (!a.q)
		return -1;
	if (iothread_run_sync(exp->it, swap_on_iothread, &a) < 0) {
		error_setg(errp, "NBD export '%s': out of memory", exp->id);
		blockdev_queue_free(a.q); /* never used: the iothread touched no ring for it */
		return -1;
	}
	return 0;
}

static const struct blockdev_user_ops exp_user_ops = {
	.drained_begin = exp_drained_begin,
	.drained_end = exp_drained_end,
	.replace = exp_replace,
};

/* ---- add ------------------------------------------------------------------------------------- */

static int free_queue_on_iothread(void *arg)
{
	blockdev_queue_free(arg);
	return 0;
}

static int check_opts(struct nbd_server *srv, const struct nbd_export_opts *o,
		      struct blockdev **bs, struct error **errp)
{
	if (!o->id || !o->id[0]) {
		error_setg(errp, "an NBD export needs an id");
		return -1;
	}
	if (!o->iothread) {
		error_setg(errp, "NBD export '%s': no iothread given", o->id);
		return -1;
	}
	*bs = o->node ? o->node : o->node_name ? blockdev_find_node(o->node_name) : NULL;
	if (!*bs) {
		error_set_class(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
				"Cannot find device='' nor node-name='%s'",
				o->node_name ? o->node_name : "");
		return -1;
	}
	if (o->name && strlen(o->name) > NBD_MAX_STRING) {
		error_setg(errp, "NBD export '%s': the name is longer than %u bytes", o->id,
			   NBD_MAX_STRING);
		return -1;
	}
	if (o->description && strlen(o->description) > NBD_MAX_STRING) {
		error_setg(errp, "NBD export '%s': the description is longer than %u bytes", o->id,
			   NBD_MAX_STRING);
		return -1;
	}
	if (o->writable && (*bs)->read_only) {
		error_setg(errp, "NBD export '%s': node '%s' is read-only, it cannot be exported "
			   "writable", o->id, (*bs)->node_name);
		return -1;
	}
	return 0;
}

/* The registry's checks: the server runs, the id and the name are free. */
static int check_free_locked(struct nbd_server *srv, const char *id, const char *name,
			     struct error **errp)
{
	if (srv->stopping) {
		error_setg(errp, "the NBD server is stopping");
		return -1;
	}
	if (find_locked(srv, id, NULL)) {
		error_setg(errp, "Block export id '%s' is already in use", id);
		return -1;
	}
	if (find_locked(srv, NULL, name)) {
		error_setg(errp, "NBD export '%s': an export named '%.256s' already exists", id,
			   name);
		return -1;
	}
	return 0;
}

/* Releases the bitmaps bitmaps_take() made busy. */
static void bitmaps_release(struct nbd_export *exp)
{
	for (unsigned int k = 0; k < exp->nr_bitmaps; k++)
		blockdev_bitmap_set_busy(exp->bitmaps[k], false);
}

/* One of @o's bitmaps, checked and made busy: the export's next one. */
static int bitmap_take(struct nbd_export *exp, const struct nbd_export_opts *o, const char *name,
		       struct error **errp)
{
	struct blockdev_bitmap *b = blockdev_bitmap_find(exp->bs, name, errp);
	unsigned int k = exp->nr_bitmaps;

	if (!b)
		return -1;
	for (unsigned int i = 0; i < k; i++)
		if (exp->bitmaps[i] == b) {
			error_setg(errp, "Bitmap '%s' is given twice", name);
			return -1;
		}
	if (blockdev_bitmap_busy(b)) {
		error_setg(errp, "Bitmap '%s' is in use", name);
		return -1;
	}
	if (!o->writable && blockdev_bitmap_enabled(b)) {
		error_setg(errp, "Enabled bitmap '%s' incompatible with readonly export", name);
		return -1;
	}
	if (strlen(NBD_META_QEMU_DIRTY_BITMAP_PREFIX) + strlen(name) > NBD_MAX_STRING) {
		error_setg(errp, "Bitmap '%s': its name is too long for NBD", name);
		return -1;
	}
	exp->bitmap_names[k] = strdup(name);
	if (!exp->bitmap_names[k]) {
		error_setg(errp, "out of memory");
		return -1;
	}
	exp->bitmaps[k] = b;
	exp->nr_bitmaps++;
	blockdev_bitmap_set_busy(b, true);
	return 0;
}

/* @o's bitmaps, each shown as qemu:dirty-bitmap:NAME and busy while exported. */
static int bitmaps_take(struct nbd_export *exp, const struct nbd_export_opts *o,
			struct error **errp)
{
	if (o->nr_bitmaps > NBD_MAX_EXPORT_BITMAPS) {
		error_setg(errp, "%u bitmaps: an export shows at most %d", o->nr_bitmaps,
			   NBD_MAX_EXPORT_BITMAPS);
		return -1;
	}
	for (unsigned int k = 0; k < o->nr_bitmaps; k++)
		if (bitmap_take(exp, o, o->bitmaps[k], errp) < 0) {
			bitmaps_release(exp);
			return -1;
		}
	exp->desc.bitmaps = (const char *const *)exp->bitmap_names;
	exp->desc.nr_bitmaps = exp->nr_bitmaps;
	return 0;
}

static struct nbd_export *exp_new(struct nbd_server *srv, const struct nbd_export_opts *o,
				  struct blockdev *bs)
{
	struct nbd_export *exp = calloc(1, sizeof(*exp));
	uint32_t align;

	if (!exp)
		return NULL;
	pthread_mutex_init(&exp->wlock, NULL);
	pthread_cond_init(&exp->wcond, NULL);
	exp->srv = srv;
	exp->bs = bs;
	exp->it = o->iothread;
	exp->refs = 1;
	exp->parked_tail = &exp->parked;
	exp->jobs_tail = &exp->jobs;
	exp->id = strdup(o->id);
	exp->name = strdup(o->name ? o->name : bs->node_name);
	exp->description = o->description ? strdup(o->description) : NULL;
	if (!exp->id || !exp->name || (o->description && !exp->description)) {
		exp_free(exp);
		return NULL;
	}
	/* the block size O_DIRECT needs, as virtio-blk advertises it; smaller requests are
	 * served too (through the slow path) */
	align = MAX(1u, bs->file ? bs->file->align : bs->align);
	exp->desc = (struct nbd_export_desc){
		.name = exp->name, .description = exp->description, .size = bs->size,
		.writable = o->writable, .min_block = align, .pref_block = MAX(4096u, align),
		.max_payload = NBD_MAX_PAYLOAD,
	};
	return exp;
}

int nbd_export_add(struct nbd_server *srv, const struct nbd_export_opts *o, struct error **errp)
{
	struct nbd_export *exp;
	struct blockdev *bs;
	int ret;

	if (check_opts(srv, o, &bs, errp) < 0)
		return -1;
	pthread_mutex_lock(&srv->lock);
	ret = check_free_locked(srv, o->id, o->name ? o->name : bs->node_name, errp);
	pthread_mutex_unlock(&srv->lock);
	if (ret < 0)
		return -1;
	exp = exp_new(srv, o, bs);
	if (!exp) {
		error_setg(errp, "NBD export '%s': out of memory", o->id);
		return -1;
	}
	if (bitmaps_take(exp, o, errp) < 0)
		goto err_free;
	exp->user = (struct blockdev_user){
		.role = exp->id,
		.perm = BLOCKDEV_PERM_READ | (o->writable ? BLOCKDEV_PERM_WRITE : 0),
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE | BLOCKDEV_PERM_WRITE_UNCHANGED |
			  BLOCKDEV_PERM_RESIZE,
	};
	if (blockdev_attach(bs, &exp->user, errp) < 0)
		goto err_bitmap;
	exp->q = blockdev_queue_new(bs, exp->it, errp);
	if (!exp->q)
		goto err_detach;
	if (sandbox_thread_spawn(&exp->worker, SANDBOX_ROLE_NBD_EXPORT, "nbd-status", NULL,
				 worker_main, exp, errp) < 0) {
		error_prepend(errp, "NBD export '%s': its worker thread", o->id);
		goto err_queue;
	}
	exp->worker_started = true;
	pthread_mutex_lock(&srv->lock);
	ret = check_free_locked(srv, exp->id, exp->name, errp); /* again: the lock was dropped */
	if (!ret) {
		struct nbd_export **p = &srv->exports;

		while (*p)
			p = &(*p)->next;
		*p = exp;
	}
	pthread_mutex_unlock(&srv->lock);
	if (ret < 0)
		goto err_worker;
	/* graph changes under the node drain the export from now on */
	exp->user.ops = &exp_user_ops;
	exp->user.opaque = exp;
	return 0;

err_worker:
	pthread_mutex_lock(&exp->wlock);
	exp->wstop = true;
	pthread_cond_signal(&exp->wcond);
	pthread_mutex_unlock(&exp->wlock);
	pthread_join(exp->worker, NULL);
err_queue:
	iothread_run_sync(exp->it, free_queue_on_iothread, exp->q);
err_detach:
	blockdev_detach(&exp->user);
err_bitmap:
	bitmaps_release(exp);
err_free:
	exp_free(exp);
	return -1;
}

/* ---- delete ---------------------------------------------------------------------------------- */

static int close_clients_on_iothread(void *arg)
{
	struct nbd_export *exp = arg;

	nbd_clients_close(exp->clients, "the export was deleted");
	return 0;
}

/* Takes @exp (already out of the registry) down; drops the registry's reference. */
static void teardown(struct nbd_server *srv, struct nbd_export *exp)
{
	while (iothread_run_sync(exp->it, close_clients_on_iothread, exp) < 0)
		usleep(1000); /* out of memory for the message */
	pthread_mutex_lock(&srv->lock);
	while (exp->nr_conns)
		pthread_cond_wait(&srv->cond, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
	exp->user.ops = NULL;
	blockdev_detach(&exp->user);
	while (iothread_run_sync(exp->it, free_queue_on_iothread, exp->q) < 0)
		usleep(1000);
	exp->q = NULL;
	pthread_mutex_lock(&exp->wlock);
	exp->wstop = true;
	pthread_cond_signal(&exp->wcond);
	pthread_mutex_unlock(&exp->wlock);
	pthread_join(exp->worker, NULL);
	bitmaps_release(exp);
	pthread_mutex_lock(&srv->lock);
	nbd_export_unref_locked(exp);
	pthread_mutex_unlock(&srv->lock);
}

static void unlink_locked(struct nbd_server *srv, struct nbd_export *exp)
{
	for (struct nbd_export **p = &srv->exports; *p; p = &(*p)->next) {
		if (*p == exp) {
			*p = exp->next;
			break;
		}
	}
	exp->deleting = true;
}

int nbd_export_del(struct nbd_server *srv, const char *id, enum nbd_export_del_mode mode,
		   struct error **errp)
{
	struct nbd_export *exp;

	pthread_mutex_lock(&srv->lock);
	exp = id ? find_locked(srv, id, NULL) : NULL;
	if (!exp) {
		pthread_mutex_unlock(&srv->lock);
		error_setg(errp, "Export '%s' is not found", id ? id : "");
		return -1;
	}
	if (mode == NBD_EXPORT_DEL_SAFE && exp->nr_conns) {
		pthread_mutex_unlock(&srv->lock);
		error_setg(errp, "export '%s' still in use (%u connection%s); use mode 'hard' to "
			   "disconnect them", id, exp->nr_conns, exp->nr_conns == 1 ? "" : "s");
		return -1;
	}
	unlink_locked(srv, exp);
	pthread_mutex_unlock(&srv->lock);
	teardown(srv, exp);
	return 0;
}

int nbd_export_del_all(struct nbd_server *srv)
{
	int n = 0;

	for (;;) {
		struct nbd_export *exp;

		pthread_mutex_lock(&srv->lock);
		exp = srv->exports;
		if (exp)
			unlink_locked(srv, exp);
		pthread_mutex_unlock(&srv->lock);
		if (!exp)
			return n;
		teardown(srv, exp);
		n++;
	}
}

void nbd_export_list(struct nbd_server *srv,
		     void (*fn)(void *opaque, const struct nbd_export_info *info), void *opaque)
{
	pthread_mutex_lock(&srv->lock);
	for (struct nbd_export *e = srv->exports; e; e = e->next) {
		struct nbd_export_info info = {
			.id = e->id, .name = e->name, .description = e->description,
			.node_name = e->bs->node_name,
			.bitmaps = (const char *const *)e->bitmap_names, .nr_bitmaps = e->nr_bitmaps,
			.writable = e->desc.writable, .connections = e->nr_conns,
		};

		fn(opaque, &info);
	}
	pthread_mutex_unlock(&srv->lock);
}

