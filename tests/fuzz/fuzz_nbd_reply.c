/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: what an NBD server sends the client. The handshake (blockdev/nbd_client.c
 * nbd_handshake) or the transmission phase's replies (blockdev/nbd_reply.c nbd_reply_read)
 * read from the input as the server's bytes; what the client writes is dropped.
 *
 * Input: an option byte, then for replies a 32-byte table of 4 requests, then the stream.
 *   option bit 0: the handshake (the rest of the input is the server's side of it);
 *          else replies: bit 1 structured replies negotiated, bit 2 base:allocation selected
 *          (context id: bits 3-4), bit 5 extended headers negotiated (structured with them)
 *   each request (8 bytes): type (byte % 7: READ, WRITE, FLUSH, TRIM, WRITE_ZEROES,
 *          BLOCK_STATUS, or none), flags (REQ_ONE: bit 0), offset (16 bits, times 512), length
 *          (16 bits, + 1), where its bytes cross from its first buffer to its second (8
 *          bits), a reserved byte
 * Replies are read until the stream ends or one breaks the protocol; a finished request
 * leaves the table (a reply to it again is an unknown cookie), as in the driver.
 *
 * Invariants: a read lands only inside its request's bytes of its buffers (canaries around
 * them, the buffers malloc'd to size for ASan); a read that finished without error received
 * every byte; a finished block status without error has an extent of non-zero length, within
 * the request under REQ_ONE; an error is a positive errno with a printable message; a refused
 * reply has a reason and a detail; a handshake that succeeds agrees on sane sizes (power-of-2
 * minimum block up to 64 KiB, maximum payload a multiple of it up to 32 MiB, base:allocation
 * only with structured replies, extended headers only with them, a size below 2^63), one
 * that fails says why.
 */
#include <errno.h>

#include "blockdev/nbd_client.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

#define NREQ 4
#define CANARY 0xa5
#define PAD 16

struct stream {
	const uint8_t *p;
	size_t n;
};

static int s_read(void *opaque, void *buf, size_t len)
{
	struct stream *s = opaque;

	if (len > s->n)
		return -ECONNRESET;
	memcpy(buf, s->p, len);
	s->p += len;
	s->n -= len;
	return 0;
}

static int s_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++) {
		int ret = s_read(opaque, iov[i].iov_base, iov[i].iov_len);

		if (ret)
			return ret;
	}
	return 0;
}

static int s_write(void *opaque, const void *buf, size_t len)
{
	return 0;
}

struct req {
	struct nbd_creq cmd;
	bool live;
	uint64_t cookie;
	uint8_t *buf[2];   /* READ: PAD canary bytes, then the request's bytes, then PAD more */
	size_t size[2];
	struct iovec iov[2];
};

struct table {
	struct req r[NREQ];
};

static struct nbd_creq *lookup(void *opaque, uint64_t cookie)
{
	struct table *t = opaque;

	for (int i = 0; i < NREQ; i++)
		if (t->r[i].live && t->r[i].cookie == cookie)
			return &t->r[i].cmd;
	return NULL;
}

static void check_handshake(const uint8_t *data, size_t size)
{
	struct stream st = { data, size };
	struct nbd_stream s = { s_read, s_readv, s_write, &st };
	struct nbd_export_info info;
	struct error *err = NULL;

	if (nbd_handshake(&s, "fuzz", &info, &err) < 0) {
		FUZZ_CHECK(err && error_msg(err)[0], "handshake refused without a message");
		FUZZ_LOG("handshake: %s\n", error_msg(err));
		error_free(err);
		return;
	}
	FUZZ_CHECK(!err, "handshake succeeded with an error set");
	FUZZ_CHECK(info.min_block && !(info.min_block & (info.min_block - 1)) &&
		   info.min_block <= 65536, "minimum block %u", info.min_block);
	FUZZ_CHECK(info.max_payload <= NBD_MAX_PAYLOAD && info.max_payload % info.min_block == 0,
		   "maximum payload %u (minimum block %u)", info.max_payload, info.min_block);
	FUZZ_CHECK(!info.base_allocation || info.structured, "base:allocation without structured");
	FUZZ_CHECK(!info.extended || info.structured, "extended headers without structured");
	FUZZ_CHECK(info.size <= (uint64_t)INT64_MAX, "size %llu", (unsigned long long)info.size);
	FUZZ_CHECK(info.flags & NBD_FLAG_HAS_FLAGS, "flags %#x", info.flags);
	FUZZ_LOG("handshake: size %llu flags %#x structured %d extended %d\n",
		 (unsigned long long)info.size, info.flags, info.structured, info.extended);
}

static const uint16_t types[] = { NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM,
				  NBD_CMD_WRITE_ZEROES, NBD_CMD_BLOCK_STATUS };

static void setup(struct table *t, struct fuzz_in *in)
{
	for (int i = 0; i < NREQ; i++) {
		struct req *r = &t->r[i];
		uint8_t type = fuzz_u8(in), flags = fuzz_u8(in), skip;
		uint64_t off = (uint64_t)fuzz_u16(in) * 512;
		uint32_t len = (uint32_t)fuzz_u16(in) + 1;
		size_t first;

		skip = fuzz_u8(in);
		(void)fuzz_u8(in); /* reserved */
		r->cookie = 0x100 + (uint64_t)i * 0x1111;
		if (type % 7 == 6)
			continue;
		r->live = true;
		r->cmd.type = types[type % 7];
		r->cmd.flags = flags & 1 ? NBD_CMD_FLAG_REQ_ONE : 0;
		r->cmd.offset = off;
		r->cmd.len = r->cmd.type == NBD_CMD_FLUSH ? 0 : len;
		if (r->cmd.type != NBD_CMD_READ)
			continue;
		/* two buffers: the request's bytes start @skip into the first and cross into
		 * the second; canaries before and after */
		first = MIN((size_t)len, (size_t)skip + 1);
		r->size[0] = PAD + first;
		r->size[1] = len - first + PAD;
		for (int b = 0; b < 2; b++) {
			r->buf[b] = malloc(r->size[b]);
			if (!r->buf[b])
				abort();
			memset(r->buf[b], CANARY, r->size[b]);
		}
		r->iov[0] = (struct iovec){ r->buf[0], PAD + first };
		r->iov[1] = (struct iovec){ r->buf[1], r->size[1] - PAD };
		r->cmd.iov = r->iov;
		r->cmd.iovcnt = 2;
		r->cmd.iov_skip = PAD;
	}
}

/* Canaries intact; after a successful read, no canary byte left among the request's bytes is
 * not proof of anything (data may be 0xa5), so only the outside is checked. */
static void check_buffers(const struct req *r)
{
	if (!r->buf[0]) /* not a read */
		return;
	for (size_t i = 0; i < PAD; i++) {
		FUZZ_CHECK(r->buf[0][i] == CANARY, "read wrote before its bytes (%zu)", i);
		FUZZ_CHECK(r->buf[1][r->size[1] - PAD + i] == CANARY, "read wrote past its bytes");
	}
}

static void check_done(const struct req *r)
{
	const struct nbd_creq *c = &r->cmd;

	FUZZ_CHECK(c->err >= 0 && c->err < 4096, "err %d", c->err);
	FUZZ_CHECK(memchr(c->msg, 0, sizeof(c->msg)), "message not terminated");
	for (const char *p = c->msg; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p < 0x7f, "unprintable message byte %#x", *p);
	if (c->err)
		return;
	if (c->type == NBD_CMD_READ)
		FUZZ_CHECK(nbd_creq_read_complete(c), "read finished in part");
	if (c->type == NBD_CMD_BLOCK_STATUS) {
		FUZZ_CHECK(c->got_status && c->status_len, "status finished without an extent");
		FUZZ_CHECK(!(c->flags & NBD_CMD_FLAG_REQ_ONE) || c->status_len <= c->len,
			   "REQ_ONE extent of %llu for %llu", (unsigned long long)c->status_len,
			   (unsigned long long)c->len);
	}
}

static void check_replies(uint8_t opt, const uint8_t *data, size_t size)
{
	static uint8_t discard[NBD_REPLY_DISCARD_LEN];
	struct fuzz_in in = { data, size };
	struct table t = { 0 };
	struct stream st;
	struct nbd_stream s = { s_read, s_readv, s_write, &st };
	struct nbd_reply_ctx ctx = {
		.structured = opt & (2 | 32), .extended = opt & 32, .base_allocation = opt & 4,
		.meta_id = (opt >> 3) & 3,
		.lookup = lookup, .opaque = &t, .discard = discard, .discard_len = sizeof(discard),
	};
	struct nbd_reply_result res;

	setup(&t, &in);
	st = (struct stream){ in.p, in.n };
	while (st.n) {
		struct req *r;

		if (nbd_reply_read(&s, &ctx, &res) < 0) {
			FUZZ_CHECK(res.err != NBD_REPLY_OK && res.err < NBD_REPLY_ERR_NR,
				   "refused with reason %d", res.err);
			FUZZ_CHECK(res.detail[0], "refused without detail");
			FUZZ_CHECK(res.err != NBD_REPLY_IO || res.io_errno == -ECONNRESET,
				   "stream error %d", res.io_errno);
			FUZZ_LOG("reply: %s: %s\n", nbd_reply_err_name(res.err), res.detail);
			break;
		}
		FUZZ_CHECK(res.cmd && res.cmd == lookup(&t, res.cookie), "result for no request");
		r = container_of(res.cmd, struct req, cmd);
		check_buffers(r);
		if (res.done) {
			check_done(r);
			r->live = false;
			FUZZ_LOG("reply: %s done, err %d\n", nbd_cmd_name(r->cmd.type), r->cmd.err);
		}
	}
	for (int i = 0; i < NREQ; i++) {
		check_buffers(&t.r[i]);
		free(t.r[i].buf[0]);
		free(t.r[i].buf[1]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t opt;

	if (!fuzz_take_opt(&data, &size, &opt))
		return 0;
	if (opt & 1)
		check_handshake(data, size);
	else
		check_replies(opt, data, size);
	return 0;
}
