/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An NBD connection's core: the receive buffer and where input goes, the output queue, the
 * lifetime of requests, and the entry points' epilogue. The protocol itself is in nbd_opt.c
 * (handshake) and nbd_cmd.c (transmission).
 *
 * Ownership (see nbd_conn.h): one thread at a time, no locks. A request (struct nbd_io) lives
 * from its header until (a) the backend is done with it (at_backend cleared by
 * nbd_conn_io_done) and (b) its reply was sent or dropped (out_refs 0); only then are its
 * buffers freed and its share of the limits given back. Work that frees a share (a sent reply)
 * may let a stalled header in: that, and telling the transport, happens at the end of the
 * outermost entry point (depth), so no callback runs while the conn is half-updated and
 * nothing recurses.
 */
#include "blockdev/nbd_conn_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define IO_CACHE_MAX 16

/* ---- entry points ---------------------------------------------------------------------------- */

static void process(struct nbd_conn *c);
static void check_drained(struct nbd_conn *c);

static void enter(struct nbd_conn *c)
{
	c->depth++;
}

/* The outermost entry point's end: parse what became possible, then tell the transport. */
static void leave(struct nbd_conn *c)
{
	if (c->depth > 1) {
		c->depth--;
		return;
	}
	while (c->want_process) {
		c->want_process = false;
		process(c);
	}
	check_drained(c);
	c->depth = 0;
	if (c->want_wake) {
		c->want_wake = false;
		c->ops->wake(c->opaque, c); /* last: the transport may act on the conn now */
	}
}

/* ---- construction ---------------------------------------------------------------------------- */

struct nbd_conn *nbd_conn_new(const struct nbd_conn_ops *ops, void *opaque, size_t priv_size,
			      const struct nbd_conn_limits *lim, const char *peer)
{
	struct nbd_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rbuf = malloc(NBD_CONN_RBUF);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	c->ops = ops;
	c->opaque = opaque;
	c->priv_size = priv_size;
	if (lim)
		c->lim = *lim;
	if (!c->lim.max_requests)
		c->lim.max_requests = NBD_CONN_MAX_REQUESTS;
	if (!c->lim.max_bytes)
		c->lim.max_bytes = NBD_CONN_MAX_BYTES;
	snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "client");
	c->out_tail = &c->out_head;
	c->state = NBD_CONN_HANDSHAKE;
	c->rx = NBD_RX_CLIENT_FLAGS;
	if (!nbd_opt_greeting(c)) {
		free(c->rbuf);
		free(c);
		return NULL;
	}
	c->want_wake = false; /* the transport looks at a new conn anyway */
	return c;
}

static void out_free(struct nbd_out *o)
{
	free(o->heap);
	free(o);
}

static void drop_output(struct nbd_conn *c);

void nbd_conn_free(struct nbd_conn *c)
{
	if (!c)
		return;
	/* what a close left for the transport's SQEs to finish with: now nothing refers to it */
	drop_output(c);
	if (c->cur) {
		struct nbd_io *io = c->cur;

		c->cur = NULL;
		nbd_io_put(c, io);
	}
	while (c->io_cache) {
		struct nbd_io *io = c->io_cache;

		c->io_cache = io->next;
		free(io);
	}
	for (unsigned int k = 0; k < NBD_BUF_CLASSES; k++) {
		while (c->buf_cache[k]) {
			void *p = c->buf_cache[k];

			c->buf_cache[k] = *(void **)p;
			free(p);
		}
	}
	if (c->exp)
		c->ops->export_put(c->opaque, c->exp);
	free(c->opt_buf);
	free(c->meta_export);
	free(c->rbuf);
	free(c);
}

enum nbd_conn_state nbd_conn_state(const struct nbd_conn *c)
{
	return c->state;
}

bool nbd_conn_busy(const struct nbd_conn *c)
{
	return c->at_backend != 0;
}

struct nbd_export *nbd_conn_export(const struct nbd_conn *c)
{
	return c->exp;
}

const char *nbd_conn_close_reason(const struct nbd_conn *c)
{
	return c->reason;
}

const char *nbd_conn_peer(const struct nbd_conn *c)
{
	return c->peer;
}

void nbd_conn_set_export(struct nbd_conn *c, struct nbd_export *exp)
{
	c->exp = exp;
	c->desc = c->ops->export_desc(exp);
	c->tx_flags = nbd_opt_tx_flags(c, c->desc);
}

/* ---- buffers --------------------------------------------------------------------------------- */

static unsigned int buf_class(size_t len)
{
	unsigned int k = 0;

	while (((size_t)1 << (NBD_BUF_MIN_SHIFT + k)) < len)
		k++;
	return k;
}

uint8_t *nbd_buf_get(struct nbd_conn *c, size_t len)
{
	unsigned int k = buf_class(len);
	void *p;

	if (k >= NBD_BUF_CLASSES)
		return NULL;
	p = c->buf_cache[k];
	if (p) {
		c->buf_cache[k] = *(void **)p;
		c->buf_cached -= (size_t)1 << (NBD_BUF_MIN_SHIFT + k);
		return p;
	}
	if (posix_memalign(&p, 4096, (size_t)1 << (NBD_BUF_MIN_SHIFT + k)))
		return NULL;
	return p;
}

static void buf_put(struct nbd_conn *c, void *p, size_t len)
{
	unsigned int k = buf_class(len);
	size_t size = (size_t)1 << (NBD_BUF_MIN_SHIFT + k);

	if (c->buf_cached + size > NBD_CONN_BUF_CACHE) {
		free(p);
		return;
	}
	*(void **)p = c->buf_cache[k];
	c->buf_cache[k] = p;
	c->buf_cached += size;
}

/* ---- requests -------------------------------------------------------------------------------- */

struct nbd_io *nbd_io_new(struct nbd_conn *c)
{
	struct nbd_io *io = c->io_cache;

	if (io) {
		c->io_cache = io->next;
		c->nr_io_cache--;
	} else {
		io = malloc(sizeof(*io) + c->priv_size);
		if (!io)
			return NULL;
	}
	memset(io, 0, sizeof(*io) + c->priv_size);
	io->conn = c;
	io->exp = c->exp;
	c->nr_io++;
	return io;
}

static void io_free(struct nbd_conn *c, struct nbd_io *io)
{
	if (io->buf)
		buf_put(c, io->buf, (size_t)io->len);
	for (unsigned int i = 0; i < NBD_CTX_COUNT; i++)
		free(io->ext[i].buf);
	c->nr_io--;
	c->io_bytes -= io->charge;
	if (c->nr_io_cache < IO_CACHE_MAX) {
		io->next = c->io_cache;
		c->io_cache = io;
		c->nr_io_cache++;
	} else {
		free(io);
	}
	/* room for a stalled header */
	if (c->stalled)
		c->want_process = true;
}

/* @io's reply is queued (or will never be): free it once nothing else refers to it. */
void nbd_io_put(struct nbd_conn *c, struct nbd_io *io)
{
	io->replied = true;
	if (!io->out_refs && !io->at_backend)
		io_free(c, io);
}

void nbd_conn_io_done(struct nbd_io *io, int ret)
{
	struct nbd_conn *c = io->conn;

	enter(c);
	io->at_backend = false;
	c->at_backend--;
	io->ret = ret;
	if (c->state == NBD_CONN_CLOSED) {
		nbd_io_put(c, io);
		if (!c->at_backend)
			c->want_wake = true; /* the transport may free the connection now */
	} else
		nbd_cmd_reply(c, io);
	leave(c);
}

/* ---- output ---------------------------------------------------------------------------------- */

struct nbd_out *nbd_out_new(struct nbd_conn *c, struct nbd_io *io, size_t hdr_len)
{
	struct nbd_out *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->io = io;
	o->hdr_len = hdr_len;
	return o;
}

void nbd_out_push(struct nbd_conn *c, struct nbd_out *o)
{
	if (c->state == NBD_CONN_CLOSED) { /* nobody will send it */
		out_free(o);
		return;
	}
	if (o->io)
		o->io->out_refs++;
	o->next = NULL;
	*c->out_tail = o;
	c->out_tail = &o->next;
	c->out_bytes += o->hdr_len + o->data_len;
	c->want_wake = true;
}

/* Unlinks and frees the head of the queue, releasing its request. */
static void out_pop(struct nbd_conn *c)
{
	struct nbd_out *o = c->out_head;
	struct nbd_io *io = o->io;

	c->out_head = o->next;
	if (!c->out_head)
		c->out_tail = &c->out_head;
	c->out_bytes -= o->hdr_len + o->data_len - o->sent;
	out_free(o);
	if (io && --io->out_refs == 0 && io->replied && !io->at_backend)
		io_free(c, io);
}

int nbd_conn_tx_iov(struct nbd_conn *c, struct iovec *iov, int max)
{
	int n = 0;

	if (c->state == NBD_CONN_CLOSED)
		return 0;
	for (struct nbd_out *o = c->out_head; o && n < max; o = o->next) {
		size_t off = o->sent;

		if (off < o->hdr_len) {
			iov[n++] = (struct iovec){ o->hdr + off, o->hdr_len - off };
			off = o->hdr_len;
		}
		if (o->pipe)
			break; /* its data goes by nbd_conn_tx_pipe */
		if (n < max && o->data_len && off < o->hdr_len + o->data_len) {
			size_t d = off - o->hdr_len;

			iov[n++] = (struct iovec){ (void *)(o->data + d), o->data_len - d };
		}
	}
	return n;
}

int nbd_conn_tx_pipe(struct nbd_conn *c, size_t *len)
{
	const struct nbd_out *o = c->out_head;

	if (c->state == NBD_CONN_CLOSED || !o || !o->pipe || o->sent < o->hdr_len)
		return 0;
	*len = o->hdr_len + o->data_len - o->sent;
	return o->pipe;
}

void nbd_conn_tx_done(struct nbd_conn *c, size_t n)
{
	enter(c);
	while (n && c->out_head) {
		struct nbd_out *o = c->out_head;
		size_t left = o->hdr_len + o->data_len - o->sent;

		if (n < left) {
			o->sent += n;
			c->out_bytes -= n;
			break;
		}
		n -= left;
		o->sent += left;
		c->out_bytes -= left;
		out_pop(c);
	}
	if (c->state == NBD_CONN_HANDSHAKE && c->out_bytes <= NBD_CONN_MAX_HS_BACKLOG)
		c->want_wake = true; /* reading may start again */
	leave(c);
}

/* ---- closing --------------------------------------------------------------------------------- */

static void drop_output(struct nbd_conn *c)
{
	while (c->out_head)
		out_pop(c);
	c->out_bytes = 0;
}

void nbd_conn_close(struct nbd_conn *c, const char *reason)
{
	enter(c);
	if (c->state != NBD_CONN_CLOSED) {
		if (reason && !c->reason[0])
			snprintf(c->reason, sizeof(c->reason), "%s", reason);
		/* nothing is freed here: a RECV may still be filling the write payload or the
		 * option buffer, a SENDMSG still reading the output; nbd_conn_free drops them */
		c->state = NBD_CONN_CLOSED;
		c->want_wake = true;
	}
	leave(c);
}

void nbd_conn_fail(struct nbd_conn *c, const char *fmt, ...)
{
	char msg[sizeof(c->reason)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	nbd_conn_close(c, msg);
}

/* A draining connection closes once every request completed and its reply went out. */
static void check_drained(struct nbd_conn *c)
{
	if (c->state == NBD_CONN_DRAINING && !c->at_backend && !c->out_head) {
		c->state = NBD_CONN_CLOSED;
		c->want_wake = true;
	}
}

/* ---- input ----------------------------------------------------------------------------------- */

void nbd_conn_skip(struct nbd_conn *c, uint64_t n, enum nbd_skip_then then, uint32_t err,
		   const char *msg)
{
	c->rx = NBD_RX_SKIP;
	c->skip = n;
	c->skip_then = then;
	c->skip_err = err;
	c->skip_msg = msg;
}

/* Moves up to what @want still needs from rbuf into @dst; returns the bytes moved. */
static size_t take(struct nbd_conn *c, uint8_t *dst, uint64_t want)
{
	size_t n = (size_t)MIN((uint64_t)c->rlen, want);

	if (dst)
		memcpy(dst, c->rbuf + c->rpos, n);
	c->rpos += n;
	c->rlen -= n;
	if (!c->rlen)
		c->rpos = 0;
	return n;
}

static void skip_done(struct nbd_conn *c)
{
	if (c->skip_then == NBD_SKIP_REQ_REPLY)
		nbd_cmd_skip_done(c);
	else
		nbd_opt_skip_done(c);
}

/* Parses whatever rbuf and the direct targets hold, until it needs more bytes or must wait. */
static void process(struct nbd_conn *c)
{
	for (;;) {
		if (c->state != NBD_CONN_HANDSHAKE && c->state != NBD_CONN_TRANSMISSION)
			return;
		switch (c->rx) {
		case NBD_RX_OPT_DATA:
			c->opt_got += (uint32_t)take(c, c->opt_buf + c->opt_got,
						     c->opt_len - c->opt_got);
			if (c->opt_got < c->opt_len)
				return;
			if (!nbd_opt_step(c))
				return;
			break;
		case NBD_RX_PAYLOAD:
			c->cur_got += take(c, c->cur->buf + c->cur_got, c->cur->len - c->cur_got);
			if (c->cur_got < c->cur->len)
				return;
			if (!nbd_cmd_step(c))
				return;
			break;
		case NBD_RX_SKIP:
			c->skip -= take(c, NULL, c->skip);
			if (c->skip)
				return;
			skip_done(c);
			break;
		case NBD_RX_CLIENT_FLAGS:
		case NBD_RX_OPT_HDR:
			if (!nbd_opt_step(c))
				return;
			break;
		case NBD_RX_REQ_HDR:
			if (!nbd_cmd_step(c))
				return;
			break;
		}
	}
}

void *nbd_conn_rx_buf(struct nbd_conn *c, size_t *len)
{
	*len = 0;
	if (c->state == NBD_CONN_HANDSHAKE) {
		if (c->out_bytes > NBD_CONN_MAX_HS_BACKLOG)
			return NULL; /* the client does not read its replies: wait */
	} else if (c->state != NBD_CONN_TRANSMISSION || c->stalled) {
		return NULL;
	}
	switch (c->rx) {
	case NBD_RX_OPT_DATA:
		*len = c->opt_len - c->opt_got;
		return c->opt_buf + c->opt_got;
	case NBD_RX_PAYLOAD:
		*len = (size_t)(c->cur->len - c->cur_got);
		return c->cur->buf + c->cur_got;
	case NBD_RX_SKIP: /* rbuf is empty here (process took what it held): scratch space */
		*len = (size_t)MIN(c->skip, (uint64_t)NBD_CONN_RBUF);
		return c->rbuf;
	default:
		if (c->rpos) {
			memmove(c->rbuf, c->rbuf + c->rpos, c->rlen);
			c->rpos = 0;
		}
		*len = NBD_CONN_RBUF - c->rlen;
		return c->rbuf + c->rlen;
	}
}

/* A message began and the stream ended in it. */
static bool mid_message(const struct nbd_conn *c)
{
	return c->rlen || c->rx == NBD_RX_OPT_DATA || c->rx == NBD_RX_PAYLOAD ||
	       c->rx == NBD_RX_SKIP;
}

void nbd_conn_rx_done(struct nbd_conn *c, size_t n)
{
	enter(c);
	if (c->state != NBD_CONN_HANDSHAKE && c->state != NBD_CONN_TRANSMISSION) {
		leave(c);
		return;
	}
	if (!n) {
		if (mid_message(c))
			nbd_conn_fail(c, "the client closed the connection in the middle of a%s",
				      c->state == NBD_CONN_HANDSHAKE ? "n option" : " request");
		else if (c->state == NBD_CONN_HANDSHAKE)
			nbd_conn_close(c, "the client closed the connection during the handshake");
		else /* finish what is in flight; the replies may still be read */
			c->state = NBD_CONN_DRAINING;
		c->want_wake = true;
		leave(c);
		return;
	}
	switch (c->rx) {
	case NBD_RX_OPT_DATA:
		c->opt_got += (uint32_t)n;
		break;
	case NBD_RX_PAYLOAD:
		c->cur_got += n;
		break;
	case NBD_RX_SKIP:
		c->skip -= n;
		break;
	default:
		c->rlen += n;
		break;
	}
	c->want_process = true;
	leave(c);
}

void nbd_conn_require_tls(struct nbd_conn *c)
{
	c->tls_required = true;
}

void nbd_conn_tls_done(struct nbd_conn *c)
{
	enter(c);
	if (c->state == NBD_CONN_STARTTLS) {
		c->state = NBD_CONN_HANDSHAKE;
		c->tls_active = true;
		c->want_process = true;
		c->want_wake = true;
	}
	leave(c);
}

void nbd_conn_resume(struct nbd_conn *c)
{
	enter(c);
	if (c->state == NBD_CONN_HELD) {
		c->state = NBD_CONN_TRANSMISSION;
		c->rx = NBD_RX_REQ_HDR;
		c->want_process = true;
		c->want_wake = true;
	}
	leave(c);
}

/* ---- block status replies -------------------------------------------------------------------- */

/* NBD_REPLY_TYPE_BLOCK_STATUS_EXT's descriptors: 64-bit length and flags. */
static bool extents_add_wide(struct nbd_extents *e, uint64_t len, uint32_t flags)
{
	if (e->n) {
		uint8_t *last = e->buf + NBD_BLOCK_STATUS_EXT_HDR_LEN +
				(size_t)(e->n - 1) * NBD_EXTENT_EXT_LEN;

		if (nbd_get_be64(last + 8) == flags) { /* lengths sum to at most the export */
			nbd_put_be64(last, nbd_get_be64(last) + len);
			e->covered += len;
			return true;
		}
	}
	if (e->n == e->cap)
		return false;
	nbd_encode_extent_ext(e->buf + NBD_BLOCK_STATUS_EXT_HDR_LEN +
			      (size_t)e->n * NBD_EXTENT_EXT_LEN, len, flags);
	e->n++;
	e->covered += len;
	return true;
}

bool nbd_extents_add(struct nbd_extents *e, uint64_t len, uint32_t flags)
{
	if (!len)
		return true;
	if (e->wide)
		return extents_add_wide(e, len, flags);
	if (e->n) {
		uint8_t *last = e->buf + NBD_BLOCK_STATUS_HDR_LEN +
				(size_t)(e->n - 1) * NBD_EXTENT_LEN;

		if (nbd_get_be32(last + 4) == flags &&
		    (uint64_t)nbd_get_be32(last) + len <= UINT32_MAX) {
			nbd_put_be32(last, (uint32_t)(nbd_get_be32(last) + len));
			e->covered += len;
			return true;
		}
	}
	if (e->n == e->cap || len > UINT32_MAX)
		return false;
	nbd_encode_extent(e->buf + NBD_BLOCK_STATUS_HDR_LEN + (size_t)e->n * NBD_EXTENT_LEN,
			  (uint32_t)len, flags);
	e->n++;
	e->covered += len;
	return true;
}
