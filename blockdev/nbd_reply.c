/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replies in the NBD transmission phase, as the client reads them: one message at a time (a
 * simple reply, or one chunk of a structured reply, or with extended headers one extended
 * chunk), matched to its request by cookie and checked against that request before a byte of
 * payload lands anywhere.
 *
 * What is checked, each with its own enum nbd_reply_err: the magic (and that structured
 * replies were negotiated before one arrives; with extended headers, that nothing else does);
 * an extended header's offset is its request's; the cookie names a request in flight; the chunk
 * type is known and valid for the request's command; the length is exact for fixed-size
 * chunks and bounded for the others (data by the request's length, an error chunk by a 4 KiB
 * message, block status by 2^20 extents); data and holes lie inside the request and overlap
 * nothing received before (received ranges are tracked, at most NBD_REPLY_MAX_PIECES disjoint
 * ones at a time); error offsets lie inside the request; block status comes from the selected
 * context, once, as the negotiated chunk type (NBD_REPLY_TYPE_BLOCK_STATUS_EXT with extended
 * headers, its descriptor count matching), with extents of non-zero length that REQ_ONE bounds
 * by the request; and a
 * reply that ends without error has answered the whole request (every byte of a read, the
 * status of a block status).
 *
 * Pure apart from the stream it reads: no locks, no allocation, no clock. The driver's
 * receiver thread calls it with the socket; the unit tests and the fuzz target with memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "blockdev/internal.h"
#include "blockdev/nbd_client.h"
#include "common/util.h"

#define IOV_BATCH 64
/* An error chunk: error, message length, the message, and 8 bytes of offset at most. */
#define ERROR_CHUNK_MAX (NBD_ERROR_CHUNK_HDR_LEN + NBD_MAX_STRING + 8u)

const char *nbd_reply_err_name(enum nbd_reply_err err)
{
	static const char *const names[] = {
		[NBD_REPLY_OK] = "ok",
		[NBD_REPLY_IO] = "the connection failed",
		[NBD_REPLY_BAD_MAGIC] = "bad reply magic",
		[NBD_REPLY_UNKNOWN_COOKIE] = "reply to no request in flight",
		[NBD_REPLY_UNNEGOTIATED] = "structured reply that was not negotiated",
		[NBD_REPLY_SIMPLE_READ] = "simple reply to a read after structured replies",
		[NBD_REPLY_SIMPLE_STATUS] = "simple reply without status to a block status",
		[NBD_REPLY_BAD_TYPE] = "chunk type unknown or wrong for the request",
		[NBD_REPLY_BAD_LENGTH] = "chunk length wrong for its type",
		[NBD_REPLY_NONE_NOT_DONE] = "NBD_REPLY_TYPE_NONE without NBD_REPLY_FLAG_DONE",
		[NBD_REPLY_OUT_OF_RANGE] = "chunk outside the request",
		[NBD_REPLY_OVERLAP] = "chunk overlapping an earlier one",
		[NBD_REPLY_FRAGMENTED] = "read reply in too many disjoint pieces",
		[NBD_REPLY_ZERO_HOLE] = "hole of length 0",
		[NBD_REPLY_BAD_MSG_LEN] = "error message longer than its chunk",
		[NBD_REPLY_ZERO_ERROR] = "error chunk with error 0",
		[NBD_REPLY_BAD_CONTEXT] = "block status for a context not selected",
		[NBD_REPLY_BAD_EXTENT] = "extent of length 0 or longer than the request",
		[NBD_REPLY_TWO_STATUS] = "second block status chunk for the context",
		[NBD_REPLY_INCOMPLETE] = "reply ended before answering the whole request",
		[NBD_REPLY_WRONG_HEADER] = "reply header of a kind that was not negotiated",
		[NBD_REPLY_BAD_OFFSET] = "extended reply header with another request's offset",
	};

	return (unsigned int)err < ARRAY_SIZE(names) && names[err] ? names[err] : "?";
}

static int fail(struct nbd_reply_result *res, enum nbd_reply_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct nbd_reply_result *res, enum nbd_reply_err err, const char *fmt, ...)
{
	va_list ap;

	res->err = err;
	va_start(ap, fmt);
	vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
	return -1;
}

static int io_fail(struct nbd_reply_result *res, int ret)
{
	res->io_errno = ret;
	return fail(res, NBD_REPLY_IO, "%s", strerror(-ret));
}

static int rd(const struct nbd_stream *s, void *buf, size_t len, struct nbd_reply_result *res)
{
	int ret = len ? s->read(s->opaque, buf, len) : 0;

	return ret < 0 ? io_fail(res, ret) : 0;
}

/* Reads @len bytes into [@skip, @skip+@len) of the request's buffers. */
static int rd_iov(const struct nbd_stream *s, const struct nbd_creq *cmd, uint64_t skip,
		  uint64_t len, struct nbd_reply_result *res)
{
	struct iovec v[IOV_BATCH];

	while (len) {
		int n = blockdev_iov_slice(cmd->iov, cmd->iovcnt, cmd->iov_skip + skip, len, v,
					   IOV_BATCH);
		uint64_t got = 0;
		int ret;

		if (n < 0) /* the driver gave buffers shorter than the request: its bug */
			return io_fail(res, -EFAULT);
		n = MIN(n, IOV_BATCH);
		for (int i = 0; i < n; i++)
			got += v[i].iov_len;
		ret = s->readv(s->opaque, v, n);
		if (ret < 0)
			return io_fail(res, ret);
		skip += got;
		len -= got;
	}
	return 0;
}

/* Reads and drops @len bytes. */
static int rd_discard(const struct nbd_stream *s, const struct nbd_reply_ctx *ctx, uint64_t len,
		      struct nbd_reply_result *res)
{
	while (len) {
		size_t n = (size_t)MIN(len, (uint64_t)ctx->discard_len);

		if (rd(s, ctx->discard, n, res) < 0)
			return -1;
		len -= n;
	}
	return 0;
}

static void set_err(struct nbd_creq *cmd, int err, const uint8_t *msg, size_t msg_len)
{
	size_t n = MIN(msg_len, sizeof(cmd->msg) - 1);

	if (cmd->err)
		return; /* the first error counts */
	cmd->err = err;
	for (size_t i = 0; i < n; i++)
		cmd->msg[i] = msg[i] >= 0x20 && msg[i] < 0x7f ? (char)msg[i] : '?';
	cmd->msg[n] = '\0';
}

/*
 * Records that [start, end) of the request arrived: refused when it overlaps what arrived
 * before, or when it would make more disjoint pieces than the client tracks.
 */
static int add_piece(struct nbd_creq *cmd, uint32_t start, uint32_t end,
		     struct nbd_reply_result *res)
{
	for (unsigned int i = 0; i < cmd->nr_pieces; i++)
		if (start < cmd->pieces[i].end && cmd->pieces[i].start < end)
			return fail(res, NBD_REPLY_OVERLAP, "bytes %u-%u of the read arrived twice",
				    MAX(start, cmd->pieces[i].start),
				    MIN(end, cmd->pieces[i].end) - 1);
	for (unsigned int i = 0; i < cmd->nr_pieces;) { /* merge with adjacent pieces */
		if (cmd->pieces[i].end == start || cmd->pieces[i].start == end) {
			start = MIN(start, cmd->pieces[i].start);
			end = MAX(end, cmd->pieces[i].end);
			cmd->pieces[i] = cmd->pieces[--cmd->nr_pieces];
			i = 0;
			continue;
		}
		i++;
	}
	if (cmd->nr_pieces == NBD_REPLY_MAX_PIECES)
		return fail(res, NBD_REPLY_FRAGMENTED, "more than %d disjoint pieces at once",
			    NBD_REPLY_MAX_PIECES);
	cmd->pieces[cmd->nr_pieces].start = start;
	cmd->pieces[cmd->nr_pieces].end = end;
	cmd->nr_pieces++;
	return 0;
}

bool nbd_creq_read_complete(const struct nbd_creq *cmd)
{
	if (!cmd->len)
		return true;
	return cmd->nr_pieces == 1 && cmd->pieces[0].start == 0 && cmd->pieces[0].end == cmd->len;
}

/* The first extent of a block status chunk of context @id: checked against the request and
 * kept (the rest are read and dropped). 0, or -1 with @res filled. */
static int first_extent(const struct nbd_reply_ctx *ctx, struct nbd_creq *cmd, uint32_t id,
			uint64_t elen, uint32_t flags, struct nbd_reply_result *res)
{
	if (id != ctx->meta_id)
		return fail(res, NBD_REPLY_BAD_CONTEXT, "context id %u (base:allocation is %u)",
			    id, ctx->meta_id);
	if (cmd->got_status)
		return fail(res, NBD_REPLY_TWO_STATUS, "context id %u", id);
	if (!elen || ((cmd->flags & NBD_CMD_FLAG_REQ_ONE) && elen > cmd->len))
		return fail(res, NBD_REPLY_BAD_EXTENT, "extent of %llu bytes for a request of %llu",
			    (unsigned long long)elen, (unsigned long long)cmd->len);
	cmd->got_status = true;
	cmd->status_len = elen;
	cmd->status_flags = flags;
	return 0;
}

/* [@off, @off+@len) inside the request? */
static bool in_request(const struct nbd_creq *cmd, uint64_t off, uint64_t len)
{
	return off >= cmd->offset && range_within(off - cmd->offset, len, cmd->len);
}

static int simple_reply(const struct nbd_stream *s, const struct nbd_reply_ctx *ctx,
			const uint8_t *hdr, struct nbd_reply_result *res)
{
	struct nbd_simple_reply r;
	struct nbd_creq *cmd;

	nbd_decode_simple_reply(hdr, &r);
	cmd = ctx->lookup(ctx->opaque, r.cookie);
	res->cookie = r.cookie;
	if (!cmd)
		return fail(res, NBD_REPLY_UNKNOWN_COOKIE, "simple reply with cookie %#llx",
			    (unsigned long long)r.cookie);
	res->cmd = cmd;
	if (cmd->type == NBD_CMD_READ && ctx->structured)
		return fail(res, NBD_REPLY_SIMPLE_READ, "simple reply (error %u) to a read",
			    r.error);
	res->done = true;
	if (r.error) {
		set_err(cmd, nbd_err_to_errno(r.error), NULL, 0);
		return 0;
	}
	if (cmd->type == NBD_CMD_BLOCK_STATUS)
		return fail(res, NBD_REPLY_SIMPLE_STATUS, "simple reply without error");
	if (cmd->type == NBD_CMD_READ) { /* no structured replies: the data follows */
		if (rd_iov(s, cmd, 0, cmd->len, res) < 0)
			return -1;
		cmd->nr_pieces = 0;
		if (cmd->len)
			return add_piece(cmd, 0, cmd->len, res);
	}
	return 0;
}

static int offset_data(const struct nbd_stream *s, struct nbd_creq *cmd, uint64_t len,
		       struct nbd_reply_result *res)
{
	uint8_t b[NBD_OFFSET_DATA_HDR_LEN];
	uint64_t off, n;

	if (len <= NBD_OFFSET_DATA_HDR_LEN || len - NBD_OFFSET_DATA_HDR_LEN > cmd->len)
		return fail(res, NBD_REPLY_BAD_LENGTH, "data chunk of %llu bytes for a read of %llu",
			    (unsigned long long)len, (unsigned long long)cmd->len);
	if (rd(s, b, sizeof(b), res) < 0)
		return -1;
	off = nbd_get_be64(b);
	n = len - NBD_OFFSET_DATA_HDR_LEN;
	if (!in_request(cmd, off, n))
		return fail(res, NBD_REPLY_OUT_OF_RANGE, "data at %llu+%llu for a read at %llu+%llu",
			    (unsigned long long)off, (unsigned long long)n,
			    (unsigned long long)cmd->offset, (unsigned long long)cmd->len);
	if (add_piece(cmd, (uint32_t)(off - cmd->offset), (uint32_t)(off - cmd->offset + n),
		      res) < 0)
		return -1;
	return rd_iov(s, cmd, off - cmd->offset, n, res);
}

static int offset_hole(const struct nbd_stream *s, struct nbd_creq *cmd, uint64_t len,
		       struct nbd_reply_result *res)
{
	uint8_t b[NBD_OFFSET_HOLE_LEN];
	uint64_t off;
	uint32_t n;

	if (len != NBD_OFFSET_HOLE_LEN)
		return fail(res, NBD_REPLY_BAD_LENGTH, "hole chunk of %llu bytes (12 expected)",
			    (unsigned long long)len);
	if (rd(s, b, sizeof(b), res) < 0)
		return -1;
	off = nbd_get_be64(b);
	n = nbd_get_be32(b + 8);
	if (!n)
		return fail(res, NBD_REPLY_ZERO_HOLE, "hole at %llu", (unsigned long long)off);
	if (!in_request(cmd, off, n))
		return fail(res, NBD_REPLY_OUT_OF_RANGE, "hole at %llu+%u for a read at %llu+%llu",
			    (unsigned long long)off, n, (unsigned long long)cmd->offset,
			    (unsigned long long)cmd->len);
	if (add_piece(cmd, (uint32_t)(off - cmd->offset), (uint32_t)(off - cmd->offset + n),
		      res) < 0)
		return -1;
	blockdev_iov_zero(cmd->iov, cmd->iovcnt, cmd->iov_skip + (off - cmd->offset), n);
	return 0;
}

static int block_status(const struct nbd_stream *s, const struct nbd_reply_ctx *ctx,
			struct nbd_creq *cmd, uint64_t len, struct nbd_reply_result *res)
{
	uint8_t b[NBD_BLOCK_STATUS_HDR_LEN + NBD_EXTENT_LEN];
	uint32_t id, elen;
	bool one = cmd->flags & NBD_CMD_FLAG_REQ_ONE;

	if (!ctx->base_allocation)
		return fail(res, NBD_REPLY_BAD_CONTEXT, "block status, no context was selected");
	if (len < sizeof(b) || (len - NBD_BLOCK_STATUS_HDR_LEN) % NBD_EXTENT_LEN ||
	    (len - NBD_BLOCK_STATUS_HDR_LEN) / NBD_EXTENT_LEN > NBD_MAX_EXTENTS ||
	    (one && len != sizeof(b)))
		return fail(res, NBD_REPLY_BAD_LENGTH, "block status chunk of %llu bytes%s",
			    (unsigned long long)len, one ? " (12 expected with REQ_ONE)" : "");
	if (rd(s, b, sizeof(b), res) < 0)
		return -1;
	id = nbd_get_be32(b);
	elen = nbd_get_be32(b + 4);
	if (first_extent(ctx, cmd, id, elen, nbd_get_be32(b + 8), res) < 0)
		return -1;
	return rd_discard(s, ctx, len - sizeof(b), res); /* the extents after the first */
}

/* NBD_REPLY_TYPE_BLOCK_STATUS_EXT: context id, descriptor count, 64-bit extents. */
static int block_status_ext(const struct nbd_stream *s, const struct nbd_reply_ctx *ctx,
			    struct nbd_creq *cmd, uint64_t len, struct nbd_reply_result *res)
{
	uint8_t b[NBD_BLOCK_STATUS_EXT_HDR_LEN + NBD_EXTENT_EXT_LEN];
	uint32_t id, count;
	uint64_t elen, n;
	bool one = cmd->flags & NBD_CMD_FLAG_REQ_ONE;

	if (!ctx->base_allocation)
		return fail(res, NBD_REPLY_BAD_CONTEXT, "block status, no context was selected");
	n = len >= NBD_BLOCK_STATUS_EXT_HDR_LEN ?
		    (len - NBD_BLOCK_STATUS_EXT_HDR_LEN) / NBD_EXTENT_EXT_LEN : 0;
	if (len < sizeof(b) || (len - NBD_BLOCK_STATUS_EXT_HDR_LEN) % NBD_EXTENT_EXT_LEN ||
	    n > NBD_MAX_EXTENTS || (one && len != sizeof(b)))
		return fail(res, NBD_REPLY_BAD_LENGTH, "block status chunk of %llu bytes%s",
			    (unsigned long long)len, one ? " (24 expected with REQ_ONE)" : "");
	if (rd(s, b, sizeof(b), res) < 0)
		return -1;
	id = nbd_get_be32(b);
	count = nbd_get_be32(b + 4);
	if (count != n)
		return fail(res, NBD_REPLY_BAD_LENGTH, "descriptor count %u in a chunk of %llu "
			    "descriptors", count, (unsigned long long)n);
	elen = nbd_get_be64(b + NBD_BLOCK_STATUS_EXT_HDR_LEN);
	/* base:allocation's status is 32 bits (proto.md: the high ones are zero) */
	if (first_extent(ctx, cmd, id, elen,
			 (uint32_t)nbd_get_be64(b + NBD_BLOCK_STATUS_EXT_HDR_LEN + 8), res) < 0)
		return -1;
	return rd_discard(s, ctx, len - sizeof(b), res); /* the extents after the first */
}

/* NBD_REPLY_TYPE_ERROR, _ERROR_OFFSET, or an unknown type with the error bit. */
static int error_chunk(const struct nbd_stream *s, const struct nbd_reply_ctx *ctx,
		       struct nbd_creq *cmd, uint16_t type, uint64_t len,
		       struct nbd_reply_result *res)
{
	uint64_t fixed = NBD_ERROR_CHUNK_HDR_LEN + (type == NBD_REPLY_TYPE_ERROR_OFFSET ? 8 : 0);
	uint8_t *b = ctx->discard;
	uint32_t err;
	uint16_t mlen;

	if (len < fixed || len > ERROR_CHUNK_MAX || len > ctx->discard_len)
		return fail(res, NBD_REPLY_BAD_LENGTH, "error chunk (type %#x) of %llu bytes",
			    type, (unsigned long long)len);
	if (rd(s, b, (size_t)len, res) < 0)
		return -1;
	err = nbd_get_be32(b);
	mlen = nbd_get_be16(b + 4);
	if (!err)
		return fail(res, NBD_REPLY_ZERO_ERROR, "error chunk (type %#x)", type);
	if (mlen > len - fixed)
		return fail(res, NBD_REPLY_BAD_MSG_LEN, "message of %u bytes in a chunk of %llu",
			    mlen, (unsigned long long)len);
	if (type == NBD_REPLY_TYPE_ERROR_OFFSET) {
		uint64_t off = nbd_get_be64(b + NBD_ERROR_CHUNK_HDR_LEN + mlen);

		if (cmd->type == NBD_CMD_FLUSH)
			return fail(res, NBD_REPLY_BAD_TYPE, "error offset in a reply to a flush");
		if (!in_request(cmd, off, 1))
			return fail(res, NBD_REPLY_OUT_OF_RANGE, "error at %llu for a request at "
				    "%llu+%llu", (unsigned long long)off,
				    (unsigned long long)cmd->offset, (unsigned long long)cmd->len);
	}
	set_err(cmd, nbd_err_to_errno(err), b + NBD_ERROR_CHUNK_HDR_LEN, mlen);
	return 0;
}

/* One structured or extended chunk whose header is @h (its payload follows on @s). */
static int chunk(const struct nbd_stream *s, const struct nbd_reply_ctx *ctx,
		 const struct nbd_chunk_hdr *hp, struct nbd_reply_result *res)
{
	const struct nbd_chunk_hdr h = *hp;
	uint16_t status_type = ctx->extended ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT :
					       NBD_REPLY_TYPE_BLOCK_STATUS;
	struct nbd_creq *cmd;
	int ret;

	cmd = ctx->lookup(ctx->opaque, h.cookie);
	res->cookie = h.cookie;
	if (!cmd)
		return fail(res, NBD_REPLY_UNKNOWN_COOKIE, "chunk (type %u) with cookie %#llx",
			    h.type, (unsigned long long)h.cookie);
	res->cmd = cmd;
	if (ctx->extended && h.offset != cmd->offset)
		return fail(res, NBD_REPLY_BAD_OFFSET, "offset %llu in a reply to a request at %llu",
			    (unsigned long long)h.offset, (unsigned long long)cmd->offset);
	if (NBD_REPLY_TYPE_IS_ERR(h.type)) {
		ret = error_chunk(s, ctx, cmd, h.type, h.len, res);
	} else if (h.type == NBD_REPLY_TYPE_NONE) {
		if (h.len)
			return fail(res, NBD_REPLY_BAD_LENGTH, "NBD_REPLY_TYPE_NONE of %llu bytes",
				    (unsigned long long)h.len);
		if (!(h.flags & NBD_REPLY_FLAG_DONE))
			return fail(res, NBD_REPLY_NONE_NOT_DONE, "flags %#x", h.flags);
		ret = 0;
	} else if (h.type == NBD_REPLY_TYPE_OFFSET_DATA && cmd->type == NBD_CMD_READ) {
		ret = offset_data(s, cmd, h.len, res);
	} else if (h.type == NBD_REPLY_TYPE_OFFSET_HOLE && cmd->type == NBD_CMD_READ) {
		ret = offset_hole(s, cmd, h.len, res);
	} else if (h.type == status_type && cmd->type == NBD_CMD_BLOCK_STATUS) {
		ret = ctx->extended ? block_status_ext(s, ctx, cmd, h.len, res) :
				      block_status(s, ctx, cmd, h.len, res);
	} else {
		return fail(res, NBD_REPLY_BAD_TYPE, "chunk type %u in a reply to %s", h.type,
			    nbd_cmd_name(cmd->type));
	}
	if (ret < 0)
		return -1;
	if (!(h.flags & NBD_REPLY_FLAG_DONE))
		return 0;
	res->done = true;
	if (cmd->err)
		return 0;
	if (cmd->type == NBD_CMD_READ && !nbd_creq_read_complete(cmd))
		return fail(res, NBD_REPLY_INCOMPLETE, "a read of %llu bytes answered in part",
			    (unsigned long long)cmd->len);
	if (cmd->type == NBD_CMD_BLOCK_STATUS && !cmd->got_status)
		return fail(res, NBD_REPLY_INCOMPLETE, "block status without a status chunk");
	return 0;
}

int nbd_reply_read(const struct nbd_stream *s, const struct nbd_reply_ctx *ctx,
		   struct nbd_reply_result *res)
{
	uint8_t hdr[NBD_EXTENDED_REPLY_LEN];
	struct nbd_chunk_hdr h;
	uint32_t magic;

	memset(res, 0, sizeof(*res));
	if (rd(s, hdr, 4, res) < 0)
		return -1;
	magic = nbd_get_be32(hdr);
	if (ctx->extended != (magic == NBD_EXTENDED_REPLY_MAGIC) &&
	    (magic == NBD_SIMPLE_REPLY_MAGIC || magic == NBD_STRUCTURED_REPLY_MAGIC ||
	     magic == NBD_EXTENDED_REPLY_MAGIC))
		return fail(res, NBD_REPLY_WRONG_HEADER, "magic %#x %s extended headers", magic,
			    ctx->extended ? "after" : "without");
	if (magic == NBD_SIMPLE_REPLY_MAGIC) {
		if (rd(s, hdr + 4, NBD_SIMPLE_REPLY_LEN - 4, res) < 0)
			return -1;
		return simple_reply(s, ctx, hdr, res);
	}
	if (magic == NBD_STRUCTURED_REPLY_MAGIC) {
		if (!ctx->structured)
			return fail(res, NBD_REPLY_UNNEGOTIATED, "magic %#x", magic);
		if (rd(s, hdr + 4, NBD_STRUCTURED_REPLY_LEN - 4, res) < 0)
			return -1;
		nbd_decode_chunk_hdr(hdr, &h);
		return chunk(s, ctx, &h, res);
	}
	if (magic == NBD_EXTENDED_REPLY_MAGIC) {
		if (rd(s, hdr + 4, NBD_EXTENDED_REPLY_LEN - 4, res) < 0)
			return -1;
		nbd_decode_extended_reply_hdr(hdr, &h);
		return chunk(s, ctx, &h, res);
	}
	return fail(res, NBD_REPLY_BAD_MAGIC, "magic %#x", magic);
}
