/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the NBD server's connection state machine (blockdev/nbd_conn.c, nbd_opt.c,
 * nbd_cmd.c): the handshake and the command stream, driven without a socket through
 * nbd_conn.h, with a fake catalog (export "a": writable, 256 KiB, bitmaps "bm" and "b2"; export "":
 * read-only, 64 KiB, with a description) and a fake backend whose requests complete in an
 * order the input chooses.
 *
 * Input: an option byte, then the client's bytes as ops.
 *   option bit 0  a canned handshake first: fixed newstyle, STRUCTURED_REPLY (bit 1 clear),
 *                 EXTENDED_HEADERS (bit 5 set; after STRUCTURED_REPLY when both),
 *                 SET_META_CONTEXT base:allocation + qemu:dirty-bitmap:bm, GO "a" (bit 2: "")
 *   option bits 3-4  the size of the pieces the bytes are fed in (1 << value)
 *   option bit 5  extended headers (above): requests are 32 bytes, replies extended chunks
 *   option bit 6  the client reads its replies only at the end (the limits must hold)
 *   option bit 7  the server requires TLS (FORCEDTLS): the canned handshake starts with
 *                 NBD_OPT_STARTTLS, and the harness "completes" the TLS handshake at once
 *   ops (an op byte, then its arguments):
 *     0  a request: type, flags (2), offset (8), length (4) read from the input; the cookie is
 *        the harness's counter; with extended headers the flags' high byte shifts the length
 *        left (by its low 5 bits: lengths past 4 GiB); a write (and with extended headers a
 *        request with NBD_CMD_FLAG_PAYLOAD_LEN) gets a payload of min(length, 64 KiB) bytes
 *        (a longer one is cut short: the stream then desynchronizes, which is allowed)
 *     1  n (1 byte) raw bytes from the input, sent as they are (the stream may desynchronize)
 *     2  complete k (1 byte) of the requests at the backend, picked by the next bytes
 *     3  feed everything, complete everything, read every reply
 *     4  the client closes its side (end of stream)
 *     5  the transport fails (nbd_conn_close)
 *
 * Invariants: every request the backend gets is inside its export, of a type the backend
 * runs, with a buffer when it has data, and never a write to the read-only export; at most
 * LIM_REQUESTS (the limit it is given) are held; the server's output parses: the greeting,
 * option replies with the reply magic and bounded lengths, then (until the client
 * desynchronizes the stream) replies whose cookies are of requests sent and not yet answered,
 * simple replies only where allowed (never with extended headers), chunks of the negotiated
 * kind (extended ones echoing their request's offset, block status as BLOCK_STATUS_EXT with a
 * descriptor count that matches) with consistent lengths inside their request's range, a read
 * answered with exactly its bytes, and every request answered once when the connection ends
 * cleanly.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/nbd_conn.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

#define DISK_A (256u << 10)
#define DISK_RO (64u << 10)
#define MAX_PENDING 256
#define MAX_REQS 4096
#define MAX_WRITE (64u << 10)
#define STREAM_MAX (8u << 20)
/* small limits, so that a small input reaches them */
#define LIM_REQUESTS 16
#define LIM_BYTES (512u << 10)

static const struct nbd_conn_limits lim = { LIM_REQUESTS, LIM_BYTES };

/* ---- the fake catalog and backend ------------------------------------------------------------ */

struct fexp {
	struct nbd_export_desc d;
	int refs;
};

static struct fexp exps[2];
static uint8_t disk_a[DISK_A];

struct harness {
	struct nbd_conn *c;
	bool held, go_seen;
	uint64_t hs_end;          /* output offset where the handshake's replies end */
	struct nbd_io *pending[MAX_PENDING];
	unsigned int nr_pending;
	struct fuzz_in *in;
	uint64_t rng;
};

static struct harness h;

static struct nbd_export *x_get(void *opaque, const char *name)
{
	for (int i = 0; i < 2; i++) {
		if (!strcmp(exps[i].d.name, name)) {
			exps[i].refs++;
			return (struct nbd_export *)&exps[i];
		}
	}
	return NULL;
}

static void x_put(void *opaque, struct nbd_export *e)
{
	struct fexp *x = (struct fexp *)e;

	FUZZ_CHECK(x->refs > 0, "export reference dropped twice");
	x->refs--;
}

static const struct nbd_export_desc *x_desc(struct nbd_export *e)
{
	return &((struct fexp *)e)->d;
}

static void x_list(void *opaque, void (*fn)(void *arg, const struct nbd_export_desc *d),
		   void *arg)
{
	for (int i = 0; i < 2; i++)
		fn(arg, &exps[i].d);
}

static uint64_t out_total; /* output bytes the client took so far */
static uint64_t out_queued(struct nbd_conn *c);

static void x_go(void *opaque, struct nbd_conn *c, struct nbd_export *e)
{
	FUZZ_CHECK(!h.go_seen, "two handshakes ended");
	h.go_seen = true;
	h.held = true;
	h.hs_end = out_total + out_queued(c); /* the GO's reply is queued already */
}

static void x_submit(void *opaque, struct nbd_io *io)
{
	const struct nbd_export_desc *d = x_desc(io->exp);

	FUZZ_CHECK(io->offset <= d->size && io->len <= d->size - io->offset,
		   "request [%llu, +%llu) outside a %llu-byte export",
		   (unsigned long long)io->offset, (unsigned long long)io->len,
		   (unsigned long long)d->size);
	switch (io->type) {
	case NBD_CMD_WRITE:
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		FUZZ_CHECK(d->writable, "a write reached the backend of a read-only export");
		FUZZ_CHECK(io->type != NBD_CMD_WRITE || io->buf, "a write without its payload");
		break;
	case NBD_CMD_READ:
		FUZZ_CHECK(io->buf && io->len, "a read without a buffer");
		break;
	case NBD_CMD_FLUSH:
	case NBD_CMD_BLOCK_STATUS:
		FUZZ_CHECK(io->type != NBD_CMD_BLOCK_STATUS || io->ctx_mask, "status of nothing");
		break;
	default:
		FUZZ_CHECK(false, "command %u reached the backend", io->type);
	}
	FUZZ_CHECK(h.nr_pending < LIM_REQUESTS, "%u requests held", h.nr_pending + 1);
	h.pending[h.nr_pending++] = io;
}

static void x_wake(void *opaque, struct nbd_conn *c)
{
}

static bool tls_pending;

static void x_starttls(void *opaque, struct nbd_conn *c)
{
	FUZZ_CHECK(!tls_pending, "STARTTLS twice");
	tls_pending = true;
}

static const struct nbd_conn_ops ops = {
	.export_get = x_get, .export_put = x_put, .export_desc = x_desc, .export_list = x_list,
	.go = x_go, .submit = x_submit, .wake = x_wake, .starttls = x_starttls,
};

static uint64_t rnd(void)
{
	h.rng ^= h.rng << 13;
	h.rng ^= h.rng >> 7;
	h.rng ^= h.rng << 17;
	return h.rng;
}

/* The backend finishes @io: data, holes, extents, or an error. */
static void finish(struct nbd_io *io, uint8_t how)
{
	int ret = (how & 7) == 7 ? -5 /* EIO */ : 0;
	struct fexp *x = (struct fexp *)io->exp;

	if (!ret) {
		switch (io->type) {
		case NBD_CMD_READ:
			if (x == &exps[0])
				memcpy(io->buf, disk_a + io->offset, (size_t)io->len);
			else
				memset(io->buf, 0x5a, (size_t)io->len);
			if (io->want_holes && (how & 8)) { /* some pieces, maybe a wrong sum */
				uint64_t left = io->len;

				io->nr_seg = 0;
				while (left && io->nr_seg < NBD_CONN_READ_SEGS) {
					uint32_t n = (uint32_t)MIN(left, 1 + rnd() % 9000);

					if (io->nr_seg + 1 == NBD_CONN_READ_SEGS || (how & 16))
						n = (uint32_t)left;
					io->seg[io->nr_seg++] = (struct nbd_read_seg){ n, rnd() & 1 };
					left -= n;
				}
				if (how & 32)
					io->seg[0].len ^= 1;
			}
			break;
		case NBD_CMD_WRITE:
			if (x == &exps[0])
				memcpy(disk_a + io->offset, io->buf, (size_t)io->len);
			break;
		case NBD_CMD_BLOCK_STATUS:
			for (int i = 0; i < NBD_CTX_COUNT; i++) {
				uint64_t off = 0;

				if (!(io->ctx_mask & (1u << i)) || (how & 64))
					continue; /* how & 64: no extents (the conn must cope) */
				while (off < io->len) {
					uint64_t n = MIN(io->len - off, 1 + rnd() % 70000);

					if (!nbd_extents_add(&io->ext[i], n, (uint32_t)(rnd() & 3)))
						break;
					off += n;
				}
			}
			break;
		default:
			break;
		}
	}
	nbd_conn_io_done(io, ret);
}

static void complete_one(unsigned int i, uint8_t how)
{
	struct nbd_io *io;

	if (!h.nr_pending)
		return;
	i %= h.nr_pending;
	io = h.pending[i];
	h.pending[i] = h.pending[--h.nr_pending];
	finish(io, how);
}

static void complete_all(void)
{
	while (h.nr_pending)
		complete_one((unsigned int)rnd(), (uint8_t)rnd());
}

/* ---- what the client sent and what it expects ------------------------------------------------ */

struct sent {
	uint64_t cookie, offset, len;
	uint16_t type;
	bool answered;
	uint64_t covered; /* read bytes received */
};

static struct sent reqs[MAX_REQS];
static unsigned int nr_reqs;
static bool desync;      /* the client sent bytes we do not model: stop checking replies */
static bool structured;  /* negotiated by the canned handshake */
static bool extended;    /* NBD_OPT_EXTENDED_HEADERS too */
static bool canned;

/* The client's byte stream, fed to the conn in pieces. */
static uint8_t *stream;
static size_t s_len, s_pos, piece;

static void out(const void *p, size_t n)
{
	if (s_len + n > STREAM_MAX) {
		desync = true;
		return;
	}
	memcpy(stream + s_len, p, n);
	s_len += n;
}

/* ---- the server's output, checked ------------------------------------------------------------ */

static uint8_t *rx;      /* output taken but not parsed yet */
static size_t rx_len, rx_cap;

static uint64_t out_queued(struct nbd_conn *c)
{
	struct iovec iov[64];
	uint64_t n = 0;
	int cnt = nbd_conn_tx_iov(c, iov, 64);

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n; /* a lower bound when there are more than 64 pieces: then hs_end is late */
}

static struct sent *find(uint64_t cookie)
{
	for (unsigned int i = 0; i < nr_reqs; i++)
		if (reqs[i].cookie == cookie && !reqs[i].answered)
			return &reqs[i];
	return NULL;
}

/* Parses what it can of rx from @off; returns the bytes used (0: need more). */
static size_t parse_one(uint64_t at, size_t off)
{
	const uint8_t *p = rx + off;
	size_t n = rx_len - off;

	if (at == 0) { /* the greeting */
		if (n < NBD_HANDSHAKE_LEN)
			return 0;
		FUZZ_CHECK(nbd_get_be64(p) == NBD_INIT_PASSWD && nbd_get_be64(p + 8) ==
			   NBD_OPTS_MAGIC, "bad greeting");
		return NBD_HANDSHAKE_LEN;
	}
	if (!h.go_seen || at < h.hs_end) { /* option replies (or EXPORT_NAME's) */
		if (!h.go_seen && !canned)
			return n; /* a raw handshake: framing depends on what it asked */
		if (n < 8)
			return 0;
		if (nbd_get_be64(p) != NBD_REP_MAGIC)
			return MIN(n, (size_t)(h.hs_end - at)); /* EXPORT_NAME's reply */
		if (n < NBD_OPT_REPLY_HDR_LEN)
			return 0;
		FUZZ_CHECK(nbd_get_be32(p + 16) <= 2 * NBD_MAX_STRING + 64,
			   "a %u-byte option reply", nbd_get_be32(p + 16));
		if (n < NBD_OPT_REPLY_HDR_LEN + nbd_get_be32(p + 16))
			return 0;
		return NBD_OPT_REPLY_HDR_LEN + nbd_get_be32(p + 16);
	}
	if (desync)
		return n;
	if (n < 4)
		return 0;
	if (nbd_get_be32(p) == NBD_SIMPLE_REPLY_MAGIC) {
		struct nbd_simple_reply r;
		struct sent *s;
		size_t need = NBD_SIMPLE_REPLY_LEN;

		FUZZ_CHECK(!extended, "a simple reply after extended headers were negotiated");
		if (n < need)
			return 0;
		nbd_decode_simple_reply(p, &r);
		s = find(r.cookie);
		FUZZ_CHECK(s, "a simple reply to cookie %llu, not in flight",
			   (unsigned long long)r.cookie);
		FUZZ_CHECK(!(structured && s->type == NBD_CMD_READ), "a simple reply to a read");
		if (s->type == NBD_CMD_READ && !r.error)
			need += (size_t)s->len;
		if (n < need)
			return 0;
		s->answered = true;
		return need;
	}
	FUZZ_CHECK(nbd_get_be32(p) == (extended ? NBD_EXTENDED_REPLY_MAGIC :
					   NBD_STRUCTURED_REPLY_MAGIC), "reply magic %08x",
		   nbd_get_be32(p));
	FUZZ_CHECK(structured, "a structured reply that was not negotiated");
	{
		size_t hlen = extended ? NBD_EXTENDED_REPLY_LEN : NBD_STRUCTURED_REPLY_LEN;
		struct nbd_chunk_hdr ch;
		const uint8_t *d = p + hlen;
		struct sent *s;

		if (n < hlen)
			return 0;
		if (extended)
			nbd_decode_extended_reply_hdr(p, &ch);
		else
			nbd_decode_chunk_hdr(p, &ch);
		FUZZ_CHECK(ch.len <= NBD_MAX_PAYLOAD + 8 + 16ull * NBD_CONN_MAX_EXTENTS,
			   "a %llu-byte chunk", (unsigned long long)ch.len);
		if (n < hlen + ch.len)
			return 0;
		s = find(ch.cookie);
		FUZZ_CHECK(s, "a chunk for cookie %llu, not in flight",
			   (unsigned long long)ch.cookie);
		FUZZ_CHECK(!extended || ch.offset == s->offset,
			   "an extended chunk with offset %llu for a request at %llu",
			   (unsigned long long)ch.offset, (unsigned long long)s->offset);
		switch (ch.type) {
		case NBD_REPLY_TYPE_NONE:
			FUZZ_CHECK(ch.len == 0 && (ch.flags & NBD_REPLY_FLAG_DONE), "bad NONE");
			break;
		case NBD_REPLY_TYPE_OFFSET_DATA:
		case NBD_REPLY_TYPE_OFFSET_HOLE: {
			uint64_t o, len;

			FUZZ_CHECK(s->type == NBD_CMD_READ, "content for a %u", s->type);
			if (ch.type == NBD_REPLY_TYPE_OFFSET_DATA) {
				FUZZ_CHECK(ch.len >= 9, "data chunk of %llu",
					   (unsigned long long)ch.len);
				len = ch.len - 8;
			} else {
				FUZZ_CHECK(ch.len == 12, "hole chunk of %llu",
					   (unsigned long long)ch.len);
				len = nbd_get_be32(d + 8);
				FUZZ_CHECK(len, "an empty hole");
			}
			o = nbd_get_be64(d);
			FUZZ_CHECK(o >= s->offset && o - s->offset + len <= s->len,
				   "content outside its read");
			s->covered += len;
			break;
		}
		case NBD_REPLY_TYPE_BLOCK_STATUS:
			FUZZ_CHECK(!extended, "compact block status with extended headers");
			FUZZ_CHECK(s->type == NBD_CMD_BLOCK_STATUS, "status for a %u", s->type);
			FUZZ_CHECK(ch.len >= 12 && (ch.len - 4) % 8 == 0, "status of %llu bytes",
				   (unsigned long long)ch.len);
			FUZZ_CHECK(nbd_get_be32(d) == 1 || nbd_get_be32(d) == 2, "context %u",
				   nbd_get_be32(d));
			for (uint64_t i = 4; i < ch.len; i += 8)
				FUZZ_CHECK(nbd_get_be32(d + i), "an empty extent");
			break;
		case NBD_REPLY_TYPE_BLOCK_STATUS_EXT:
			FUZZ_CHECK(extended, "BLOCK_STATUS_EXT without extended headers");
			FUZZ_CHECK(s->type == NBD_CMD_BLOCK_STATUS, "status for a %u", s->type);
			FUZZ_CHECK(ch.len >= 24 && (ch.len - 8) % 16 == 0, "status of %llu bytes",
				   (unsigned long long)ch.len);
			FUZZ_CHECK(nbd_get_be32(d) == 1 || nbd_get_be32(d) == 2, "context %u",
				   nbd_get_be32(d));
			FUZZ_CHECK(nbd_get_be32(d + 4) == (ch.len - 8) / 16,
				   "descriptor count %u in %llu bytes", nbd_get_be32(d + 4),
				   (unsigned long long)ch.len);
			for (uint64_t i = 8; i < ch.len; i += 16)
				FUZZ_CHECK(nbd_get_be64(d + i) && !(nbd_get_be64(d + i + 8) >> 32),
					   "an empty extent or 64-bit flags");
			break;
		case NBD_REPLY_TYPE_ERROR:
			FUZZ_CHECK(ch.len >= 6 && nbd_get_be16(d + 4) <= ch.len - 6 &&
				   nbd_get_be32(d), "bad error chunk");
			break;
		default:
			FUZZ_CHECK(false, "chunk type %u", ch.type);
		}
		if (ch.flags & NBD_REPLY_FLAG_DONE) {
			if (s->type == NBD_CMD_READ && ch.type != NBD_REPLY_TYPE_ERROR)
				FUZZ_CHECK(s->covered == s->len, "a read of %llu answered with %llu",
					   (unsigned long long)s->len,
					   (unsigned long long)s->covered);
			s->answered = true;
		}
		return hlen + (size_t)ch.len;
	}
}

static uint64_t parsed; /* output bytes parsed */

static void take_output(size_t max)
{
	struct iovec iov[64];
	int n = nbd_conn_tx_iov(h.c, iov, 64);
	size_t got = 0;

	for (int i = 0; i < n && got < max; i++) {
		size_t k = MIN(iov[i].iov_len, max - got);

		if (rx_len + k > rx_cap) {
			rx_cap = (rx_len + k) * 2;
			rx = realloc(rx, rx_cap);
			if (!rx)
				abort();
		}
		memcpy(rx + rx_len, iov[i].iov_base, k);
		rx_len += k;
		got += k;
	}
	if (!got)
		return;
	out_total += got;
	nbd_conn_tx_done(h.c, got);
	/* parsed replies are dropped once at the end: a memmove per reply made a client that
	 * reads only at the end (option bit 6) quadratic */
	for (size_t used, off = 0;; off += used) {
		used = off < rx_len ? parse_one(parsed, off) : 0;
		parsed += used;
		if (!used) {
			memmove(rx, rx + off, rx_len - off);
			rx_len -= off;
			break;
		}
	}
}

/* Feeds the stream while the conn takes it; reads replies unless told not to. */
static void pump(bool read_replies)
{
	for (;;) { /* until nothing moves: the stream and the output are finite */
		size_t room, n;
		uint8_t *buf;
		bool moved = false;

		if (tls_pending && nbd_conn_state(h.c) == NBD_CONN_STARTTLS) {
			/* the ACK is the last plaintext: nothing may follow it before TLS */
			take_output(SIZE_MAX);
			tls_pending = false;
			nbd_conn_tls_done(h.c);
			moved = true;
		}
		if (h.held && nbd_conn_state(h.c) == NBD_CONN_HELD) {
			h.held = false;
			nbd_conn_resume(h.c);
			moved = true;
		}
		buf = nbd_conn_rx_buf(h.c, &room);
		if (room && s_pos < s_len) {
			n = MIN(MIN(room, s_len - s_pos), piece);
			memcpy(buf, stream + s_pos, n);
			s_pos += n;
			nbd_conn_rx_done(h.c, n);
			moved = true;
		}
		if (read_replies) {
			uint64_t before = out_total;

			take_output(SIZE_MAX);
			moved |= out_total != before;
		}
		if (!moved)
			return;
	}
}

/* ---- ops ------------------------------------------------------------------------------------- */

static void op_request(struct fuzz_in *in)
{
	uint8_t hd[NBD_EXTENDED_REQUEST_LEN];
	struct nbd_request r = { 0 };
	uint64_t size = DISK_A;
	uint16_t flags;
	bool payload;

	/* one statement each: the order of an initializer list's calls is unspecified */
	r.type = fuzz_u8(in) % 10;
	flags = fuzz_u16(in);
	r.flags = flags & 0x3f;
	r.offset = fuzz_u64(in);
	r.len = fuzz_u32(in);
	if (extended)
		r.len <<= (flags >> 8) & 31;

	/* most requests inside the export, some anywhere */
	if (!(r.offset >> 63)) {
		r.offset %= size + 1;
		if (!(r.len >> 31))
			r.len %= (size - r.offset) + 1;
	}
	r.cookie = nr_reqs + 1000;
	if (extended) {
		nbd_encode_extended_request(hd, &r);
		out(hd, NBD_EXTENDED_REQUEST_LEN);
	} else {
		nbd_encode_request(hd, &r);
		out(hd, NBD_REQUEST_LEN);
	}
	payload = r.type == NBD_CMD_WRITE || (extended && (r.flags & NBD_CMD_FLAG_PAYLOAD_LEN));
	if (payload) {
		size_t n = (size_t)MIN(r.len, (uint64_t)MAX_WRITE);
		uint8_t *pl = calloc(1, n + 1);

		if (!pl)
			abort();
		memset(pl, (int)(r.cookie & 0xff), n);
		out(pl, n);
		free(pl);
		if (n < r.len)
			desync = true; /* the rest of the payload never comes: later bytes are in it */
	}
	if (r.type == NBD_CMD_DISC) {
		desync = true; /* nothing after it is read; replies end with what is in flight */
		return;
	}
	if (nr_reqs < MAX_REQS)
		reqs[nr_reqs++] = (struct sent){ r.cookie, r.offset, r.len, r.type, false, 0 };
	else
		desync = true;
}

static void canned_handshake(uint8_t opt)
{
	static const char q1[] = NBD_META_BASE_ALLOCATION, q2[] = "qemu:dirty-bitmap:bm";
	const char *name = opt & 4 ? "" : "a";
	uint8_t b[256], hd[NBD_OPT_HDR_LEN];
	uint32_t nl = (uint32_t)strlen(name), pos;

	nbd_put_be32(b, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	out(b, 4);
	if (opt & 128) { /* a client waits for STARTTLS's reply before anything else */
		nbd_encode_opt_hdr(hd, NBD_OPT_STARTTLS, 0);
		out(hd, sizeof(hd));
		pump(true);
	}
	extended = opt & 32;
	structured = !(opt & 2) || extended;
	if (!(opt & 2)) {
		nbd_encode_opt_hdr(hd, NBD_OPT_STRUCTURED_REPLY, 0);
		out(hd, sizeof(hd));
	}
	if (extended) {
		nbd_encode_opt_hdr(hd, NBD_OPT_EXTENDED_HEADERS, 0);
		out(hd, sizeof(hd));
	}
	if (structured) {
		nbd_put_be32(b, nl);
		memcpy(b + 4, name, nl);
		nbd_put_be32(b + 4 + nl, 2);
		pos = 8 + nl;
		nbd_put_be32(b + pos, sizeof(q1) - 1);
		memcpy(b + pos + 4, q1, sizeof(q1) - 1);
		pos += 4 + sizeof(q1) - 1;
		nbd_put_be32(b + pos, sizeof(q2) - 1);
		memcpy(b + pos + 4, q2, sizeof(q2) - 1);
		pos += 4 + sizeof(q2) - 1;
		nbd_encode_opt_hdr(hd, NBD_OPT_SET_META_CONTEXT, pos);
		out(hd, sizeof(hd));
		out(b, pos);
	}
	nbd_put_be32(b, nl);
	memcpy(b + 4, name, nl);
	nbd_put_be16(b + 4 + nl, 1);
	nbd_put_be16(b + 6 + nl, NBD_INFO_BLOCK_SIZE);
	nbd_encode_opt_hdr(hd, NBD_OPT_GO, 8 + nl);
	out(hd, sizeof(hd));
	out(b, 8 + nl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t opt = fuzz_u8(&in);
	bool lazy = opt & 64, ended = false;

	exps[0] = (struct fexp){ { .name = "a", .size = DISK_A, .writable = true,
				   .bitmaps = (const char *const[]){ "bm", "b2" }, .nr_bitmaps = 2,
				   .min_block = 1, .pref_block = 4096,
				   .max_payload = NBD_MAX_PAYLOAD } };
	exps[1] = (struct fexp){ { .name = "", .description = "read-only", .size = DISK_RO,
				   .min_block = 512, .pref_block = 4096,
				   .max_payload = NBD_MAX_PAYLOAD } };
	memset(&h, 0, sizeof(h));
	h.rng = 0x9e3779b97f4a7c15ull ^ size;
	nr_reqs = 0;
	desync = structured = extended = false;
	canned = opt & 1;
	out_total = parsed = 0;
	rx_len = 0;
	if (!stream && !(stream = malloc(STREAM_MAX)))
		abort();
	s_len = s_pos = 0;
	piece = (size_t)1 << ((opt >> 3) & 3);
	h.c = nbd_conn_new(&ops, NULL, 0, &lim, "fuzz");
	if (!h.c)
		abort();
	tls_pending = false;
	if (opt & 128)
		nbd_conn_require_tls(h.c);
	if (canned)
		canned_handshake(opt);
	else
		desync = true; /* a raw handshake: replies are framed by what it negotiated */
	while (in.n && !ended) {
		uint8_t o = fuzz_u8(&in), n;

		switch (o % 6) {
		case 0:
			op_request(&in);
			break;
		case 1:
			n = fuzz_u8(&in);
			for (uint8_t i = 0; i < n && in.n; i++) {
				uint8_t b = fuzz_u8(&in);

				out(&b, 1);
			}
			if (canned)
				desync = true;
			break;
		case 2:
			pump(!lazy);
			n = fuzz_u8(&in);
			for (uint8_t i = 0; i < n; i++) {
				uint8_t which = fuzz_u8(&in);

				complete_one(which, fuzz_u8(&in));
			}
			break;
		case 3:
			pump(!lazy);
			complete_all();
			pump(!lazy);
			break;
		case 4:
			pump(!lazy);
			nbd_conn_rx_done(h.c, 0);
			ended = true;
			break;
		case 5:
			nbd_conn_close(h.c, "fuzz: the transport failed");
			ended = true;
			break;
		}
		FUZZ_CHECK(h.nr_pending <= LIM_REQUESTS, "%u requests held", h.nr_pending);
	}
	/* the end: everything sent, every request completed, every reply read */
	for (int round = 0; round < 100000; round++) {
		pump(true);
		if (!h.nr_pending)
			break;
		complete_all();
	}
	FUZZ_LOG("end: stream %zu/%zu, %u pending, rx %zu unparsed\n", s_pos, s_len, h.nr_pending,
		 rx_len);
	if (!ended && !desync && nbd_conn_state(h.c) == NBD_CONN_TRANSMISSION)
		for (unsigned int i = 0; i < nr_reqs; i++)
			FUZZ_CHECK(reqs[i].answered, "request %llu (command %u) never answered",
				   (unsigned long long)reqs[i].cookie, reqs[i].type);
	FUZZ_LOG("state %d, closed: '%s'\n", nbd_conn_state(h.c), nbd_conn_close_reason(h.c));
	nbd_conn_close(h.c, NULL);
	complete_all();
	FUZZ_CHECK(!nbd_conn_busy(h.c), "requests left at the backend");
	nbd_conn_free(h.c);
	FUZZ_CHECK(exps[0].refs == 0 && exps[1].refs == 0, "export references leaked");
	FUZZ_LOG("%u requests, %llu output bytes, desync %d\n", nr_reqs,
		 (unsigned long long)out_total, desync);
	return 0;
}
