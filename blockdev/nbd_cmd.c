/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server's transmission phase (proto.md "Transmission" and "Request types"): request
 * headers are checked by one pure function (nbd_cmd_check, fuzzed), admitted only while the
 * connection's limits have room (nbd_conn.h "Memory"), run by the backend, and answered with a
 * simple reply or structured reply chunks built here. Every request gets exactly one reply,
 * except NBD_CMD_DISC (none, by the protocol) and the requests of a connection that closed.
 * With extended headers (proto.md's EXTENDED_HEADERS extension) requests are 32 bytes with a
 * 64-bit length, which is a payload's length when NBD_CMD_FLAG_PAYLOAD_LEN says so (a write's,
 * bounded by the maximum payload like a compact one) and else the range the command acts on
 * (bounded by the export only), and every reply is chunks with 32-byte headers carrying the
 * request's offset: a success without data is an NBD_REPLY_TYPE_NONE chunk, never a simple
 * reply. One thread at a time (nbd_conn.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/nbd_conn_priv.h"
#include "common/util.h"

/* ---- the check ------------------------------------------------------------------------------- */

/* Command flags valid for @type given @tx_flags. */
static uint16_t valid_flags(uint16_t type, uint16_t tx_flags)
{
	uint16_t f = tx_flags & NBD_FLAG_SEND_FUA ? NBD_CMD_FLAG_FUA : 0;

	switch (type) {
	case NBD_CMD_READ:
		return f | (tx_flags & NBD_FLAG_SEND_DF ? NBD_CMD_FLAG_DF : 0);
	case NBD_CMD_WRITE_ZEROES:
		return f | NBD_CMD_FLAG_NO_HOLE |
		       (tx_flags & NBD_FLAG_SEND_FAST_ZERO ? NBD_CMD_FLAG_FAST_ZERO : 0);
	case NBD_CMD_BLOCK_STATUS:
		return f | NBD_CMD_FLAG_REQ_ONE;
	default:
		return f;
	}
}

/* Why a request header starting with @magic cannot be read in @mode, or NULL. */
static const char *magic_error(uint32_t magic, enum nbd_mode mode)
{
	bool ext = mode == NBD_MODE_EXTENDED;

	if (magic == (ext ? NBD_EXTENDED_REQUEST_MAGIC : NBD_REQUEST_MAGIC))
		return NULL;
	if (magic == NBD_REQUEST_MAGIC)
		return "a compact request header after extended headers were negotiated";
	if (magic == NBD_EXTENDED_REQUEST_MAGIC)
		return "an extended request header, but extended headers were not negotiated";
	return "bad request magic";
}

/*
 * A write's length is its payload's, with extended headers too: proto.md has clients set
 * NBD_CMD_FLAG_PAYLOAD_LEN on every write, but QEMU 10's client does not, and a write has no
 * form without a payload, so the flag changes nothing for it. On other commands the flag says
 * the length is a payload's (which we read, and refuse: we offer no payload forms).
 */
uint64_t nbd_cmd_payload(const struct nbd_request *r, enum nbd_mode mode)
{
	if (r->type == NBD_CMD_WRITE)
		return r->len;
	return mode == NBD_MODE_EXTENDED && (r->flags & NBD_CMD_FLAG_PAYLOAD_LEN) ? r->len : 0;
}

int nbd_cmd_check(const struct nbd_request *r, const struct nbd_export_desc *d, uint16_t tx_flags,
		  enum nbd_mode mode, unsigned int meta_mask, const char **msg)
{
	bool writes = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM ||
		      r->type == NBD_CMD_WRITE_ZEROES;
	uint64_t size = __atomic_load_n(&d->size, __ATOMIC_RELAXED); /* block_resize changes it */
	uint16_t flags = r->flags;

	*msg = magic_error(r->magic, mode);
	if (*msg)
		return -1;
	if (nbd_cmd_payload(r, mode) > d->max_payload) {
		*msg = "a payload larger than the maximum payload size";
		return -1;
	}
	if (mode == NBD_MODE_EXTENDED && (flags & NBD_CMD_FLAG_PAYLOAD_LEN)) {
		if (r->type != NBD_CMD_WRITE) { /* no NBD_FLAG_BLOCK_STATUS_PAYLOAD: no payload form */
			*msg = "NBD_CMD_FLAG_PAYLOAD_LEN on a command that takes no payload here";
			return NBD_EINVAL;
		}
		flags &= (uint16_t)~NBD_CMD_FLAG_PAYLOAD_LEN;
	}
	switch (r->type) {
	case NBD_CMD_DISC:
		return 0; /* offset, length and flags do not matter any more */
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
	case NBD_CMD_FLUSH:
	case NBD_CMD_TRIM:
	case NBD_CMD_CACHE:
	case NBD_CMD_WRITE_ZEROES:
	case NBD_CMD_BLOCK_STATUS:
		break;
	default:
		*msg = "unknown command";
		return NBD_EINVAL;
	}
	if (flags & ~valid_flags(r->type, tx_flags)) {
		*msg = "a command flag not valid for this command";
		return NBD_EINVAL;
	}
	if (writes && !d->writable) {
		*msg = "the export is read-only";
		return NBD_EPERM;
	}
	if (r->type == NBD_CMD_FLUSH) {
		if (r->offset || r->len) {
			*msg = "a flush with a nonzero offset or length";
			return NBD_EINVAL;
		}
		return 0;
	}
	if (r->type == NBD_CMD_READ && r->len > d->max_payload) {
		*msg = "a read longer than the maximum payload size";
		return mode != NBD_MODE_SIMPLE ? NBD_EOVERFLOW : NBD_EINVAL;
	}
	if (r->offset > size || r->len > size - r->offset) {
		*msg = "the range goes past the end of the export";
		return r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC :
										     NBD_EINVAL;
	}
	if (r->type == NBD_CMD_BLOCK_STATUS) {
		if (mode == NBD_MODE_SIMPLE || !meta_mask) {
			*msg = "no metadata context was selected for this export";
			return NBD_EINVAL;
		}
		if (!r->len) {
			*msg = "a block status query of length 0";
			return NBD_EINVAL;
		}
	}
	return 0;
}

/* ---- replies --------------------------------------------------------------------------------- */

static bool push(struct nbd_conn *c, struct nbd_out *o)
{
	if (!o) {
		nbd_conn_fail(c, "out of memory for a reply");
		return false;
	}
	nbd_out_push(c, o);
	return true;
}

/* Compact or extended: the length of a chunk's header on this connection. */
static size_t chunk_hdr_len(const struct nbd_conn *c)
{
	return c->mode == NBD_MODE_EXTENDED ? NBD_EXTENDED_REPLY_LEN : NBD_STRUCTURED_REPLY_LEN;
}

/*
 * A chunk of @io's reply with its header encoded: @len bytes of payload, of which the first
 * @inline_len go in o->hdr after the header (at chunk_hdr_len) and the rest in o->data. An
 * extended header carries the request's offset (proto.md). NULL without memory.
 */
static struct nbd_out *chunk_new(struct nbd_conn *c, struct nbd_io *io, uint16_t flags,
				 uint16_t type, size_t inline_len, uint32_t len)
{
	struct nbd_out *o = nbd_out_new(c, io, chunk_hdr_len(c) + inline_len);

	if (!o)
		return NULL;
	if (c->mode == NBD_MODE_EXTENDED)
		nbd_encode_extended_reply_hdr(o->hdr, flags, type, io->cookie, io->offset, len);
	else
		nbd_encode_chunk_hdr(o->hdr, flags, type, io->cookie, len);
	return o;
}

/* Not with extended headers, which allow no simple reply. */
static void reply_simple(struct nbd_conn *c, struct nbd_io *io, uint32_t err)
{
	struct nbd_out *o = nbd_out_new(c, io, NBD_SIMPLE_REPLY_LEN);

	if (o)
		nbd_encode_simple_reply(o->hdr, err, io->cookie);
	push(c, o);
	nbd_io_put(c, io);
}

/* A structured reply with nothing in it: NBD_REPLY_TYPE_NONE, final. */
static void reply_none(struct nbd_conn *c, struct nbd_io *io)
{
	push(c, chunk_new(c, io, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0, 0));
	nbd_io_put(c, io);
}

/* Success without data: a simple reply, or with extended headers a NONE chunk. */
static void reply_ok(struct nbd_conn *c, struct nbd_io *io)
{
	if (c->mode == NBD_MODE_EXTENDED)
		reply_none(c, io);
	else
		reply_simple(c, io, 0);
}

/* An error: a structured NBD_REPLY_TYPE_ERROR chunk with @msg when negotiated, else simple. */
static void reply_err(struct nbd_conn *c, struct nbd_io *io, uint32_t err, const char *msg)
{
	size_t len = MIN(strlen(msg), (size_t)NBD_MAX_STRING);
	struct nbd_out *o;

	if (c->mode == NBD_MODE_SIMPLE) {
		reply_simple(c, io, err);
		return;
	}
	o = chunk_new(c, io, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, NBD_ERROR_CHUNK_HDR_LEN,
		      (uint32_t)(NBD_ERROR_CHUNK_HDR_LEN + len));
	if (o) {
		nbd_encode_error_chunk_hdr(o->hdr + chunk_hdr_len(c), err, (uint16_t)len);
		o->data = (const uint8_t *)msg; /* the messages are string constants */
		o->data_len = len;
	}
	push(c, o);
	nbd_io_put(c, io);
}

/* One content chunk of a structured read: data from buf, or a hole. */
static bool read_chunk(struct nbd_conn *c, struct nbd_io *io, uint64_t off, uint32_t len,
		       bool hole, bool last)
{
	uint16_t flags = last ? NBD_REPLY_FLAG_DONE : 0;
	struct nbd_out *o;

	if (hole) {
		o = chunk_new(c, io, flags, NBD_REPLY_TYPE_OFFSET_HOLE, NBD_OFFSET_HOLE_LEN,
			      NBD_OFFSET_HOLE_LEN);
		if (o)
			nbd_encode_offset_hole(o->hdr + chunk_hdr_len(c), io->offset + off, len);
	} else {
		o = chunk_new(c, io, flags, NBD_REPLY_TYPE_OFFSET_DATA, NBD_OFFSET_DATA_HDR_LEN,
			      NBD_OFFSET_DATA_HDR_LEN + len);
		if (o) {
			nbd_put_be64(o->hdr + chunk_hdr_len(c), io->offset + off);
			o->data = io->pipe ? NULL : io->buf + off; /* a pipe holds the whole read */
			o->pipe = io->pipe;
			o->data_len = len;
		}
	}
	return push(c, o);
}

/* Whether the backend's pieces describe the read exactly. */
static bool segs_valid(const struct nbd_io *io)
{
	uint64_t sum = 0;

	if (!io->want_holes || !io->nr_seg || io->nr_seg > NBD_CONN_READ_SEGS)
		return false;
	for (unsigned int i = 0; i < io->nr_seg; i++) {
		if (!io->seg[i].len)
			return false;
		sum += io->seg[i].len;
	}
	return sum == io->len;
}

static void reply_read(struct nbd_conn *c, struct nbd_io *io)
{
	struct nbd_out *o;
	uint64_t off = 0;

	if (c->mode == NBD_MODE_SIMPLE) {
		o = nbd_out_new(c, io, NBD_SIMPLE_REPLY_LEN);
		if (o) {
			nbd_encode_simple_reply(o->hdr, 0, io->cookie);
			o->data = io->pipe ? NULL : io->buf;
			o->pipe = io->pipe;
			o->data_len = io->len;
		}
		push(c, o);
	} else if (!segs_valid(io)) {
		read_chunk(c, io, 0, (uint32_t)io->len, false, true);
	} else {
		for (unsigned int i = 0; i < io->nr_seg; i++) {
			if (!read_chunk(c, io, off, io->seg[i].len, io->seg[i].hole,
					i + 1 == io->nr_seg))
				break;
			off += io->seg[i].len;
		}
	}
	nbd_io_put(c, io);
}

/* The payload of a block status chunk with @n descriptors: NBD_REPLY_TYPE_BLOCK_STATUS's, or
 * with extended headers (@wide) NBD_REPLY_TYPE_BLOCK_STATUS_EXT's. */
static size_t status_len(bool wide, uint32_t n)
{
	return wide ? NBD_BLOCK_STATUS_EXT_HDR_LEN + (size_t)n * NBD_EXTENT_EXT_LEN :
		      NBD_BLOCK_STATUS_HDR_LEN + (size_t)n * NBD_EXTENT_LEN;
}

/* One status chunk per selected context, the last one final. */
static void reply_status(struct nbd_conn *c, struct nbd_io *io)
{
	uint16_t type = c->mode == NBD_MODE_EXTENDED ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT :
						       NBD_REPLY_TYPE_BLOCK_STATUS;
	unsigned int left = (unsigned int)__builtin_popcount(io->ctx_mask);

	for (unsigned int i = 0; i < NBD_CTX_COUNT; i++) {
		struct nbd_extents *e = &io->ext[i];

		if ((io->ctx_mask & (1u << i)) && !e->n) {
			reply_err(c, io, NBD_EIO, "no block status was found for the range");
			return;
		}
	}
	for (unsigned int i = 0; i < NBD_CTX_COUNT; i++) {
		struct nbd_extents *e = &io->ext[i];
		size_t len = status_len(e->wide, e->n);
		struct nbd_out *o;

		if (!(io->ctx_mask & (1u << i)))
			continue;
		if (e->wide) /* the descriptor count, after the context id */
			nbd_put_be32(e->buf + NBD_BLOCK_STATUS_HDR_LEN, e->n);
		o = chunk_new(c, io, --left ? 0 : NBD_REPLY_FLAG_DONE, type, 0, (uint32_t)len);
		if (o) {
			o->data = e->buf;
			o->data_len = len;
		}
		if (!push(c, o))
			break;
	}
	nbd_io_put(c, io);
}

/* A message for a failure the backend reported. */
static const char *errno_msg(int ret)
{
	switch (-ret) {
	case EPERM:
	case EROFS: return "the export is read-only";
	case ENOSPC: return "no space left on the server";
	case EINVAL: return "the server refused the request";
	case ENOTSUP: return "the server cannot zero this range quickly";
	case ENOMEM: return "the server is out of memory";
	case ESHUTDOWN: return "the server is shutting down";
	default: return "I/O error on the server";
	}
}

void nbd_cmd_reply(struct nbd_conn *c, struct nbd_io *io)
{
	if (io->ret < 0) {
		reply_err(c, io, nbd_errno_to_err(io->ret), errno_msg(io->ret));
		return;
	}
	switch (io->type) {
	case NBD_CMD_READ:
		reply_read(c, io);
		break;
	case NBD_CMD_BLOCK_STATUS:
		reply_status(c, io);
		break;
	default:
		reply_ok(c, io);
		break;
	}
}

/* ---- requests -------------------------------------------------------------------------------- */

static void submit(struct nbd_conn *c, struct nbd_io *io)
{
	io->at_backend = true;
	c->at_backend++;
	c->ops->submit(c->opaque, io); /* may complete it at once: @io is not touched after */
}

/* Block status descriptors a reply to @r may carry per context. */
static uint32_t status_cap(const struct nbd_request *r)
{
	if (r->flags & NBD_CMD_FLAG_REQ_ONE)
		return 1;
	/* descriptors of at least 512 bytes each, save the first and the last */
	return (uint32_t)MIN((uint64_t)NBD_CONN_MAX_EXTENTS, r->len / 512 + 2);
}

/* Bytes a request holds (payload, read buffer, status replies): its share of lim.max_bytes. */
static size_t charge_of(const struct nbd_conn *c, const struct nbd_request *r)
{
	switch (r->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		return (size_t)r->len;
	case NBD_CMD_BLOCK_STATUS:
		return (size_t)__builtin_popcount(c->meta_mask) *
		       status_len(c->mode == NBD_MODE_EXTENDED, status_cap(r));
	default:
		return 0;
	}
}

static bool alloc_status(struct nbd_conn *c, struct nbd_io *io)
{
	uint32_t cap = status_cap(&(struct nbd_request){ .flags = io->flags, .len = io->len });

	io->ctx_mask = c->meta_mask;
	for (unsigned int i = 0; i < NBD_CTX_COUNT; i++) {
		if (!(io->ctx_mask & (1u << i)))
			continue;
		io->ext[i].wide = c->mode == NBD_MODE_EXTENDED;
		io->ext[i].buf = malloc(status_len(io->ext[i].wide, cap));
		if (!io->ext[i].buf)
			return false;
		nbd_put_be32(io->ext[i].buf, i + 1); /* the id nbd_opt.c gave the context */
		io->ext[i].cap = cap;
	}
	return true;
}

/* A request that passed the check, with its payload if any: run it. */
static void dispatch(struct nbd_conn *c, struct nbd_io *io)
{
	switch (io->type) {
	case NBD_CMD_DISC:
		c->state = NBD_CONN_DRAINING; /* what is in flight completes and is answered */
		c->want_wake = true;
		nbd_io_put(c, io);
		return;
	case NBD_CMD_CACHE: /* a hint; nothing to do for a server without a cache of its own */
		reply_ok(c, io);
		return;
	case NBD_CMD_FLUSH:
		if (!c->desc->writable) { /* nothing was written through this export */
			reply_ok(c, io);
			return;
		}
		break;
	case NBD_CMD_READ:
		if (!io->len)
			break;
		io->buf = nbd_buf_get(c, (size_t)io->len);
		if (!io->buf) {
			reply_err(c, io, NBD_ENOMEM, "the server is out of memory");
			return;
		}
		io->want_holes = c->mode != NBD_MODE_SIMPLE && !(io->flags & NBD_CMD_FLAG_DF);
		break;
	case NBD_CMD_BLOCK_STATUS:
		if (!alloc_status(c, io)) {
			reply_err(c, io, NBD_ENOMEM, "the server is out of memory");
			return;
		}
		break;
	default:
		break;
	}
	if (!io->len && (io->type == NBD_CMD_READ || io->type == NBD_CMD_WRITE ||
			 io->type == NBD_CMD_TRIM || io->type == NBD_CMD_WRITE_ZEROES)) {
		if (io->type == NBD_CMD_READ && c->mode != NBD_MODE_SIMPLE) /* no content */
			reply_none(c, io);
		else
			reply_ok(c, io);
		return;
	}
	submit(c, io);
}

void nbd_cmd_skip_done(struct nbd_conn *c)
{
	struct nbd_io *io = c->cur;

	c->cur = NULL;
	c->rx = NBD_RX_REQ_HDR;
	reply_err(c, io, c->skip_err, c->skip_msg);
}

/* A request header is at the front of rbuf: admit it (or stall), then receive or run it. */
static bool header(struct nbd_conn *c, size_t hdr_len)
{
	const char *msg = NULL;
	struct nbd_request r;
	struct nbd_io *io;
	uint64_t payload;
	size_t charge;
	int err;

	if (c->mode == NBD_MODE_EXTENDED)
		nbd_decode_extended_request(c->rbuf + c->rpos, &r);
	else
		nbd_decode_request(c->rbuf + c->rpos, &r);
	err = nbd_cmd_check(&r, c->desc, c->tx_flags, c->mode, c->meta_mask, &msg);
	if (err < 0) {
		nbd_conn_fail(c, "%s (%s, magic 0x%08x, %" PRIu64 " bytes)", msg,
			      nbd_cmd_name(r.type), r.magic, r.len);
		return false;
	}
	payload = nbd_cmd_payload(&r, c->mode);
	charge = err || r.type == NBD_CMD_DISC ? 0 : charge_of(c, &r);
	if (c->nr_io >= c->lim.max_requests ||
	    (c->io_bytes && c->io_bytes + charge > c->lim.max_bytes)) {
		c->stalled = true; /* read nothing more until a request's reply went out */
		return false;
	}
	c->stalled = false;
	io = nbd_io_new(c);
	if (!io) {
		nbd_conn_fail(c, "out of memory for a request");
		return false;
	}
	c->rpos += hdr_len;
	c->rlen -= hdr_len;
	if (!c->rlen)
		c->rpos = 0;
	io->type = r.type;
	io->flags = r.flags;
	io->cookie = r.cookie;
	io->offset = r.offset;
	io->len = r.len;
	io->charge = charge;
	c->io_bytes += charge;
	if (payload) { /* a write's (the check refused every other command with one) */
		c->cur = io;
		c->cur_got = 0;
		if (!err && !(io->buf = nbd_buf_get(c, (size_t)payload))) {
			err = NBD_ENOMEM;
			msg = "the server is out of memory";
		}
		if (err) /* the payload is read and dropped, then the error is the reply */
			nbd_conn_skip(c, payload, NBD_SKIP_REQ_REPLY, (uint32_t)err, msg);
		else
			c->rx = NBD_RX_PAYLOAD;
		return true;
	}
	if (err)
		reply_err(c, io, (uint32_t)err, msg);
	else
		dispatch(c, io);
	return c->state == NBD_CONN_TRANSMISSION;
}

bool nbd_cmd_step(struct nbd_conn *c)
{
	size_t hdr_len = c->mode == NBD_MODE_EXTENDED ? NBD_EXTENDED_REQUEST_LEN : NBD_REQUEST_LEN;
	const char *msg;

	if (c->rx == NBD_RX_PAYLOAD) { /* a write's payload is all there */
		struct nbd_io *io = c->cur;

		c->cur = NULL;
		c->rx = NBD_RX_REQ_HDR;
		dispatch(c, io);
		return c->state == NBD_CONN_TRANSMISSION;
	}
	/* the magic says at once whether the header can be framed: a compact header after
	 * extended headers were negotiated (or the reverse) cannot, and waiting for the rest of
	 * a header of the other length might wait forever */
	if (c->rlen >= 4 && (msg = magic_error(nbd_get_be32(c->rbuf + c->rpos), c->mode))) {
		nbd_conn_fail(c, "%s (magic 0x%08x)", msg, nbd_get_be32(c->rbuf + c->rpos));
		return false;
	}
	if (c->rlen < hdr_len)
		return false;
	return header(c, hdr_len);
}
