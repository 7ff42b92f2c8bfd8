/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server (blockdev/nbd_server.h) driven by a hand-written client over a socketpair (and
 * the server's unix socket): the handshake and each option, each command with simple and
 * structured replies, the protocol's errors (bad magic, unknown option, read past the end,
 * oversize lengths, truncated requests, writes to a read-only export), a client that does not
 * read its replies, drained sections, a pivot (the export moves to another node), export
 * deletion, max-connections, the handshake deadline, and a TCP listener; extended headers
 * (NBD_OPT_EXTENDED_HEADERS: the negotiation, 32-byte requests and replies, 64-bit lengths on
 * an 8 GiB sparse export, the framing rules). The image is a sparse raw file: data at
 * [64 KiB, 128 KiB) and [1 MiB, 1 MiB+4 KiB), holes elsewhere; writes go to [2 MiB, 4 MiB).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/bitmap.h"
#include "blockdev/blockdev.h"
#include "blockdev/nbd_proto.h"
#include "blockdev/nbd_server.h"
#include "iothreads/iothread.h"
#include "tests/unit/img_fixture.h"

#define IMG_SIZE (4u << 20)
#define DATA1_OFF (64u << 10)
#define DATA1_LEN (64u << 10)
#define DATA2_OFF (1u << 20)
#define DATA2_LEN 4096u
#define WR_OFF (2u << 20)
#define MAX_REP (1u << 20)

static struct iothread *it;
static struct blockdev *bs;
static struct nbd_server *srv;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* ---- fixture --------------------------------------------------------------------------------- */

static struct nbd_server *server_start(unsigned int max_conns, unsigned int handshake_ms)
{
	struct nbd_server_opts so = {
		.type = NBD_ADDR_UNIX, .path = sock_path, .iothread = it,
		.max_connections = max_conns, .handshake_ms = handshake_ms,
	};
	struct nbd_export_opts rw = {
		.id = "e-rw", .node = bs, .name = "rw", .writable = true,
		.bitmaps = (const char *const[]){ "b0", "b2" }, .nr_bitmaps = 2,
		.iothread = it,
	};
	struct nbd_export_opts ro = {
		.id = "e-ro", .node = bs, .name = "ro", .description = "a read-only view",
		.iothread = it,
	};
	struct error *err = NULL;
	struct nbd_server *s = nbd_server_start(&so, &err);

	if (!s || nbd_export_add(s, &rw, &err) < 0 || nbd_export_add(s, &ro, &err) < 0)
		fail_msg("%s", error_msg(err));
	return s;
}

static int group_setup(void **state)
{
	struct iothread_opts io = { .serves_sockets = true }; /* the NBD server's ring */
	struct error *err = NULL;

	if (imgfx_setup("nbd") < 0)
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s", imgfx_path("nbd.sock"));
	imgfx_make_raw("disk.raw", IMG_SIZE);
	bs = imgfx_open("disk.raw", "raw", "nbdtest", false);
	imgfx_fill(bs, DATA1_OFF, DATA1_LEN, 0xaa);
	imgfx_fill(bs, DATA2_OFF, DATA2_LEN, 0xbb);
	if (!blockdev_bitmap_add(bs, "b0", 65536, false, &err) ||
	    !blockdev_bitmap_add(bs, "b2", 65536, false, &err))
		fail_msg("%s", error_msg(err));
	it = iothread_create("nbd-test", &io, &err);
	if (!it)
		fail_msg("%s", error_msg(err));
	return 0;
}

static int group_teardown(void **state)
{
	iothread_destroy(it);
	blockdev_close(bs);
	return imgfx_teardown();
}

static int setup(void **state)
{
	srv = server_start(0, 0);
	return 0;
}

static int teardown(void **state)
{
	nbd_server_stop(srv);
	srv = NULL;
	return 0;
}

/* ---- a blocking client ----------------------------------------------------------------------- */

static void xwrite(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail_msg("send: %s", strerror(errno));
		b += r;
		n -= (size_t)r;
	}
}

/* false on end of stream or a 5 s timeout */
static bool xread(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = recv(fd, b, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		b += r;
		n -= (size_t)r;
	}
	return true;
}

static void must_read(int fd, void *p, size_t n)
{
	if (!xread(fd, p, n))
		fail_msg("the server closed the connection or went silent");
}

/* The server closes the connection within @ms (everything it sends before is dropped). */
static bool closed_within(int fd, int ms)
{
	uint8_t buf[4096];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		ssize_t r;

		if (poll(&p, 1, ms) <= 0)
			return false;
		r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return true;
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return false;
	}
}

/* Nothing arrives within @ms. */
static bool silent_for(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 0;
}

static int timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 5 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* A socketpair whose other end the server serves. */
static int connect_pair(void)
{
	struct error *err = NULL;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	if (nbd_server_add_client(srv, sv[0], &err) < 0)
		fail_msg("%s", error_msg(err));
	return timeouts(sv[1]);
}

/* A connection to the server's unix socket. */
static int connect_unix(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return timeouts(fd);
}

/* Reads the greeting and answers with @cflags. */
static void greet(int fd, uint32_t cflags)
{
	uint8_t g[NBD_HANDSHAKE_LEN], f[4];

	must_read(fd, g, sizeof(g));
	assert_true(nbd_get_be64(g) == NBD_INIT_PASSWD);
	assert_true(nbd_get_be64(g + 8) == NBD_OPTS_MAGIC);
	assert_int_equal(nbd_get_be16(g + 16), NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	nbd_put_be32(f, cflags);
	xwrite(fd, f, sizeof(f));
}

static int client(uint32_t cflags)
{
	int fd = connect_pair();

	greet(fd, cflags);
	return fd;
}

static void send_opt(int fd, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t h[NBD_OPT_HDR_LEN];

	nbd_encode_opt_hdr(h, opt, len);
	xwrite(fd, h, sizeof(h));
	if (len)
		xwrite(fd, data, len);
}

struct rep {
	uint32_t opt, type, len;
	uint8_t data[MAX_REP];
};

static struct rep *read_rep(int fd, struct rep *r)
{
	uint8_t h[NBD_OPT_REPLY_HDR_LEN];
	struct nbd_opt_reply_hdr rh;

	must_read(fd, h, sizeof(h));
	nbd_decode_opt_reply_hdr(h, &rh);
	assert_true(rh.magic == NBD_REP_MAGIC);
	assert_true(rh.len <= MAX_REP);
	r->opt = rh.option;
	r->type = rh.type;
	r->len = rh.len;
	must_read(fd, r->data, rh.len);
	return r;
}

/* One reply of @type to @opt. */
static void expect_rep(int fd, struct rep *r, uint32_t opt, uint32_t type)
{
	read_rep(fd, r);
	if (r->opt != opt || r->type != type)
		fail_msg("reply %#x to option %u, expected %#x to %u (%.*s)", r->type, r->opt, type,
			 opt, NBD_REP_IS_ERR(r->type) ? (int)r->len : 0, (char *)r->data);
}

/* NBD_OPT_INFO/GO data: name, then the info requests. */
static uint32_t info_data(uint8_t *buf, const char *name, const uint16_t *req, uint16_t n)
{
	uint32_t nl = (uint32_t)strlen(name);

	nbd_put_be32(buf, nl);
	memcpy(buf + 4, name, nl);
	nbd_put_be16(buf + 4 + nl, n);
	for (uint16_t i = 0; i < n; i++)
		nbd_put_be16(buf + 6 + nl + 2 * i, req[i]);
	return 6 + nl + 2u * n;
}

/* *_META_CONTEXT data: export name, queries. */
static uint32_t meta_data(uint8_t *buf, const char *name, const char *const *q, uint32_t n)
{
	uint32_t nl = (uint32_t)strlen(name), pos;

	nbd_put_be32(buf, nl);
	memcpy(buf + 4, name, nl);
	nbd_put_be32(buf + 4 + nl, n);
	pos = 8 + nl;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t ql = (uint32_t)strlen(q[i]);

		nbd_put_be32(buf + pos, ql);
		memcpy(buf + pos + 4, q[i], ql);
		pos += 4 + ql;
	}
	return pos;
}

enum mode { SIMPLE, STRUCTURED, EXTENDED };

/* Negotiates @mode (structured replies or extended headers, and base:allocation + the bitmap
 * with either), then GO on @name; returns the transmission flags. */
static uint16_t go_mode(int fd, const char *name, enum mode mode)
{
	static struct rep r;
	uint8_t buf[512];
	uint16_t flags = 0;
	uint32_t len;

	if (mode == EXTENDED) {
		send_opt(fd, NBD_OPT_EXTENDED_HEADERS, NULL, 0);
		expect_rep(fd, &r, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK);
	}
	if (mode != SIMPLE) {
		const char *q[] = { NBD_META_BASE_ALLOCATION, "qemu:dirty-bitmap:b0" };

		if (mode == STRUCTURED) {
			send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
			expect_rep(fd, &r, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
		}
		len = meta_data(buf, name, q, 2);
		send_opt(fd, NBD_OPT_SET_META_CONTEXT, buf, len);
		for (;;) {
			read_rep(fd, &r);
			if (r.type == NBD_REP_ACK)
				break;
			assert_int_equal(r.type, NBD_REP_META_CONTEXT);
		}
	}
	len = info_data(buf, name, NULL, 0);
	send_opt(fd, NBD_OPT_GO, buf, len);
	for (;;) {
		read_rep(fd, &r);
		if (r.type == NBD_REP_ACK)
			break;
		if (r.type != NBD_REP_INFO)
			fail_msg("GO %s: reply %#x: %.*s", name, r.type, (int)r.len, (char *)r.data);
		if (nbd_get_be16(r.data) == NBD_INFO_EXPORT)
			flags = nbd_get_be16(r.data + 10);
	}
	return flags;
}

static uint16_t go(int fd, const char *name, bool structured)
{
	return go_mode(fd, name, structured ? STRUCTURED : SIMPLE);
}

static void send_req(int fd, uint16_t type, uint16_t flags, uint64_t cookie, uint64_t off,
		     uint32_t len, const void *payload)
{
	uint8_t h[NBD_REQUEST_LEN];

	nbd_encode_request(h, &(struct nbd_request){ .flags = flags, .type = type,
						     .cookie = cookie, .offset = off, .len = len });
	xwrite(fd, h, sizeof(h));
	if (payload)
		xwrite(fd, payload, len);
}

/* A simple reply; its error. */
static uint32_t simple_reply(int fd, uint64_t cookie)
{
	uint8_t h[NBD_SIMPLE_REPLY_LEN];
	struct nbd_simple_reply r;

	must_read(fd, h, sizeof(h));
	nbd_decode_simple_reply(h, &r);
	assert_true(r.magic == NBD_SIMPLE_REPLY_MAGIC);
	assert_true(r.cookie == cookie);
	return r.error;
}

struct chunk {
	uint16_t flags, type;
	uint64_t cookie;
	uint64_t offset; /* extended headers: the request's offset, echoed */
	uint32_t len;
	uint8_t *data; /* malloc'd */
};

static void read_chunk(int fd, struct chunk *c)
{
	uint8_t h[NBD_STRUCTURED_REPLY_LEN];
	struct nbd_chunk_hdr ch;

	must_read(fd, h, sizeof(h));
	nbd_decode_chunk_hdr(h, &ch);
	assert_true(ch.magic == NBD_STRUCTURED_REPLY_MAGIC);
	assert_true(ch.len <= NBD_MAX_PAYLOAD + 64);
	c->flags = ch.flags;
	c->type = ch.type;
	c->cookie = ch.cookie;
	c->offset = 0;
	c->len = (uint32_t)ch.len;
	c->data = malloc(c->len + 1);
	must_read(fd, c->data, c->len);
}

/* The error of a structured reply that is one error chunk. */
static uint32_t error_chunk(int fd, uint64_t cookie)
{
	struct chunk c;
	uint32_t err;

	read_chunk(fd, &c);
	assert_true(c.cookie == cookie);
	assert_int_equal(c.type, NBD_REPLY_TYPE_ERROR);
	assert_true(c.flags & NBD_REPLY_FLAG_DONE);
	assert_true(c.len >= 6);
	err = nbd_get_be32(c.data);
	assert_int_equal(nbd_get_be16(c.data + 4), c.len - 6);
	free(c.data);
	return err;
}

static void read_xchunk(int fd, struct chunk *c, uint64_t cookie, uint64_t off);

/* A read reply (compact chunks, or with @ext extended ones) assembled into @buf (holes as
 * zeroes); the number of hole chunks. */
static unsigned int read_chunks(int fd, uint64_t cookie, uint64_t off, uint8_t *buf,
				uint32_t len, bool ext)
{
	uint64_t covered = 0;
	unsigned int holes = 0;
	struct chunk c;

	do {
		if (ext) {
			read_xchunk(fd, &c, cookie, off);
		} else {
			read_chunk(fd, &c);
			assert_true(c.cookie == cookie);
		}
		if (c.type == NBD_REPLY_TYPE_OFFSET_DATA) {
			uint64_t o = nbd_get_be64(c.data);

			assert_true(c.len > 8 && o >= off && o - off + (c.len - 8) <= len);
			memcpy(buf + (o - off), c.data + 8, c.len - 8);
			covered += c.len - 8;
		} else if (c.type == NBD_REPLY_TYPE_OFFSET_HOLE) {
			uint64_t o = nbd_get_be64(c.data);
			uint32_t n = nbd_get_be32(c.data + 8);

			assert_int_equal(c.len, 12);
			assert_true(n && o >= off && o - off + n <= len);
			memset(buf + (o - off), 0, n);
			covered += n;
			holes++;
		} else if (c.type != NBD_REPLY_TYPE_NONE) {
			fail_msg("chunk type %#x in a read reply", c.type);
		}
		free(c.data);
	} while (!(c.flags & NBD_REPLY_FLAG_DONE));
	assert_true(covered == len);
	return holes;
}

/* A structured read reply assembled into @buf (holes as zeroes); the number of hole chunks. */
static unsigned int read_structured(int fd, uint64_t cookie, uint64_t off, uint8_t *buf,
				    uint32_t len)
{
	return read_chunks(fd, cookie, off, buf, len, false);
}

static void fill(uint8_t *p, size_t n, uint8_t b)
{
	memset(p, b, n);
}

static bool all(const uint8_t *p, size_t n, uint8_t b)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != b)
			return false;
	return true;
}

/* ---- handshake ------------------------------------------------------------------------------- */

static void test_greeting_and_unknown_client_flags(void **state)
{
	int fd = client(1u << 7); /* an unknown client flag: the server MUST drop us */

	assert_true(closed_within(fd, 3000));
	close(fd);
	fd = connect_unix(); /* and the listening socket serves the same */
	greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE);
	send_opt(fd, NBD_OPT_ABORT, NULL, 0);
	{
		static struct rep r;

		expect_rep(fd, &r, NBD_OPT_ABORT, NBD_REP_ACK);
	}
	assert_true(closed_within(fd, 3000));
	close(fd);
}

static void test_opt_list(void **state)
{
	static struct rep r;
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE), seen = 0;

	send_opt(fd, NBD_OPT_LIST, NULL, 0);
	for (;;) {
		read_rep(fd, &r);
		if (r.type == NBD_REP_ACK)
			break;
		assert_int_equal(r.type, NBD_REP_SERVER);
		uint32_t nl = nbd_get_be32(r.data);

		assert_true(nl <= r.len - 4);
		if (nl == 2 && !memcmp(r.data + 4, "rw", 2))
			seen |= 1;
		if (nl == 2 && !memcmp(r.data + 4, "ro", 2)) {
			seen |= 2;
			assert_int_equal(r.len - 4 - nl, strlen("a read-only view"));
		}
	}
	assert_int_equal(seen, 3);
	send_opt(fd, NBD_OPT_LIST, "x", 1); /* no data allowed */
	expect_rep(fd, &r, NBD_OPT_LIST, NBD_REP_ERR_INVALID);
	close(fd);
}

static void test_opt_info_and_go(void **state)
{
	static const uint16_t req[] = { NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE };
	static struct rep r;
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	bool got_exp = false, got_bs = false, got_name = false, got_desc = false;
	uint8_t buf[256];
	uint32_t len = info_data(buf, "ro", req, 3);

	send_opt(fd, NBD_OPT_INFO, buf, len);
	for (;;) {
		read_rep(fd, &r);
		if (r.type == NBD_REP_ACK)
			break;
		assert_int_equal(r.type, NBD_REP_INFO);
		switch (nbd_get_be16(r.data)) {
		case NBD_INFO_EXPORT: {
			struct nbd_info_export ie = { 0 };

			assert_true(nbd_decode_info_export(r.data, r.len, &ie));
			assert_true(ie.size == IMG_SIZE);
			assert_true(ie.flags & NBD_FLAG_HAS_FLAGS);
			assert_true(ie.flags & NBD_FLAG_READ_ONLY);
			assert_true(ie.flags & NBD_FLAG_CAN_MULTI_CONN);
			assert_false(ie.flags & NBD_FLAG_SEND_DF); /* no structured replies */
			got_exp = true;
			break;
		}
		case NBD_INFO_BLOCK_SIZE: {
			struct nbd_info_block_size b = { 0 };

			assert_true(nbd_decode_info_block_size(r.data, r.len, &b));
			assert_true(nbd_block_size_valid(&b));
			assert_int_equal(b.max, NBD_MAX_PAYLOAD);
			got_bs = true;
			break;
		}
		case NBD_INFO_NAME:
			assert_int_equal(r.len, 4);
			assert_memory_equal(r.data + 2, "ro", 2);
			got_name = true;
			break;
		case NBD_INFO_DESCRIPTION:
			assert_memory_equal(r.data + 2, "a read-only view", r.len - 2);
			got_desc = true;
			break;
		}
	}
	assert_true(got_exp && got_bs && got_name && got_desc);
	/* an unknown export: an error, and the session goes on */
	len = info_data(buf, "nope", NULL, 0);
	send_opt(fd, NBD_OPT_GO, buf, len);
	expect_rep(fd, &r, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN);
	/* information requests that do not fill the data: invalid */
	len = info_data(buf, "rw", req, 3);
	send_opt(fd, NBD_OPT_GO, buf, len - 1);
	expect_rep(fd, &r, NBD_OPT_GO, NBD_REP_ERR_INVALID);
	/* a name longer than the data */
	nbd_put_be32(buf, 1000);
	send_opt(fd, NBD_OPT_INFO, buf, len);
	expect_rep(fd, &r, NBD_OPT_INFO, NBD_REP_ERR_INVALID);
	/* then GO works, and the transmission phase with it */
	assert_true(go(fd, "rw", false) & NBD_FLAG_SEND_FUA);
	send_req(fd, NBD_CMD_FLUSH, 0, 7, 0, 0, NULL);
	assert_int_equal(simple_reply(fd, 7), 0);
	close(fd);
}

static void test_unknown_and_oversize_options(void **state)
{
	static struct rep r;
	static uint8_t big[70000]; /* more than the server keeps of an option */
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	memset(big, 0x5a, sizeof(big));
	send_opt(fd, 4242, big, 100); /* unknown: its data is skipped */
	expect_rep(fd, &r, 4242, NBD_REP_ERR_UNSUP);
	send_opt(fd, NBD_OPT_EXTENDED_HEADERS, "x", 1); /* no data allowed */
	expect_rep(fd, &r, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ERR_INVALID);
	send_opt(fd, NBD_OPT_STARTTLS, NULL, 0); /* no TLS */
	expect_rep(fd, &r, NBD_OPT_STARTTLS, NBD_REP_ERR_UNSUP);
	send_opt(fd, NBD_OPT_GO, big, sizeof(big)); /* longer than the server keeps */
	expect_rep(fd, &r, NBD_OPT_GO, NBD_REP_ERR_TOO_BIG);
	send_opt(fd, NBD_OPT_STRUCTURED_REPLY, "x", 1);
	expect_rep(fd, &r, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_INVALID);
	send_opt(fd, NBD_OPT_LIST, NULL, 0); /* still in sync */
	do
		read_rep(fd, &r);
	while (r.type == NBD_REP_SERVER);
	assert_int_equal(r.type, NBD_REP_ACK);
	close(fd);
}

static void test_bad_option_magic(void **state)
{
	uint8_t h[NBD_OPT_HDR_LEN];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	nbd_encode_opt_hdr(h, NBD_OPT_LIST, 0);
	h[0] ^= 0xff;
	xwrite(fd, h, sizeof(h));
	assert_true(closed_within(fd, 3000));
	close(fd);
}

static void test_meta_contexts(void **state)
{
	static struct rep r;
	const char *q_all[] = { "base:", "qemu:", "x-unknown:thing" };
	const char *q_set[] = { "base:allocation", "qemu:dirty-bitmap:nope", "zzz:y" };
	const char *q_second[] = { "qemu:dirty-bitmap:b2" };
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE), n = 0;
	uint8_t buf[512];
	uint32_t len = meta_data(buf, "rw", NULL, 0);

	send_opt(fd, NBD_OPT_SET_META_CONTEXT, buf, len); /* before structured replies */
	expect_rep(fd, &r, NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_INVALID);
	send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	expect_rep(fd, &r, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
	send_opt(fd, NBD_OPT_LIST_META_CONTEXT, buf, len); /* no query: everything */
	for (;;) {
		read_rep(fd, &r);
		if (r.type == NBD_REP_ACK)
			break;
		assert_int_equal(r.type, NBD_REP_META_CONTEXT);
		assert_int_equal(nbd_get_be32(r.data), 0);
		n++;
	}
	assert_int_equal(n, 3); /* base:allocation and both bitmaps */
	len = meta_data(buf, "rw", q_all, 3); /* namespace wildcards */
	send_opt(fd, NBD_OPT_LIST_META_CONTEXT, buf, len);
	for (n = 0;; n++) {
		read_rep(fd, &r);
		if (r.type == NBD_REP_ACK)
			break;
	}
	assert_int_equal(n, 3);
	len = meta_data(buf, "rw", q_second, 1); /* the second bitmap: context id 3 */
	send_opt(fd, NBD_OPT_SET_META_CONTEXT, buf, len);
	expect_rep(fd, &r, NBD_OPT_SET_META_CONTEXT, NBD_REP_META_CONTEXT);
	assert_int_equal(nbd_get_be32(r.data), 3);
	assert_int_equal(r.len, 4 + strlen(q_second[0]));
	assert_memory_equal(r.data + 4, q_second[0], r.len - 4);
	expect_rep(fd, &r, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK);
	len = meta_data(buf, "ro", q_set, 3); /* one of three exists */
	send_opt(fd, NBD_OPT_SET_META_CONTEXT, buf, len);
	expect_rep(fd, &r, NBD_OPT_SET_META_CONTEXT, NBD_REP_META_CONTEXT);
	assert_int_equal(r.len, 4 + strlen("base:allocation"));
	assert_memory_equal(r.data + 4, "base:allocation", r.len - 4);
	expect_rep(fd, &r, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK);
	len = meta_data(buf, "nope", q_set, 1);
	send_opt(fd, NBD_OPT_SET_META_CONTEXT, buf, len);
	expect_rep(fd, &r, NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_UNKNOWN);
	len = meta_data(buf, "rw", q_set, 1);
	nbd_put_be32(buf + 6 + 4, 1000); /* the query's length runs past the data */
	send_opt(fd, NBD_OPT_SET_META_CONTEXT, buf, len);
	expect_rep(fd, &r, NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_INVALID);
	/* the failed SET cleared the selection: BLOCK_STATUS is refused after GO */
	go(fd, "ro", false);
	send_req(fd, NBD_CMD_BLOCK_STATUS, 0, 9, 0, 4096, NULL);
	assert_int_equal(error_chunk(fd, 9), NBD_EINVAL);
	close(fd);
}

static void test_export_name(void **state)
{
	uint8_t rep[NBD_EXPORT_NAME_REPLY_LEN + NBD_ZERO_PAD_LEN], data[512];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	send_opt(fd, NBD_OPT_EXPORT_NAME, "ro", 2);
	must_read(fd, rep, sizeof(rep)); /* with the 124 zeroes */
	assert_true(nbd_get_be64(rep) == IMG_SIZE);
	assert_true(nbd_get_be16(rep + 8) & NBD_FLAG_READ_ONLY);
	assert_true(all(rep + 10, NBD_ZERO_PAD_LEN, 0));
	send_req(fd, NBD_CMD_READ, 0, 1, DATA2_OFF, sizeof(data), NULL);
	assert_int_equal(simple_reply(fd, 1), 0);
	must_read(fd, data, sizeof(data));
	assert_true(all(data, sizeof(data), 0xbb));
	close(fd);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	send_opt(fd, NBD_OPT_EXPORT_NAME, "rw", 2);
	must_read(fd, rep, NBD_EXPORT_NAME_REPLY_LEN); /* no zeroes */
	send_req(fd, NBD_CMD_FLUSH, 0, 2, 0, 0, NULL);
	assert_int_equal(simple_reply(fd, 2), 0);
	close(fd);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	send_opt(fd, NBD_OPT_EXPORT_NAME, "nope", 4); /* cannot be refused: disconnect */
	assert_true(closed_within(fd, 3000));
	close(fd);
}

/* ---- commands -------------------------------------------------------------------------------- */

static void test_simple_commands(void **state)
{
	static uint8_t buf[65536], back[65536];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	uint16_t flags = go(fd, "rw", false);

	assert_true(flags & NBD_FLAG_SEND_WRITE_ZEROES);
	assert_false(flags & NBD_FLAG_READ_ONLY);
	fill(buf, sizeof(buf), 0x5c);
	send_req(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 1, WR_OFF, sizeof(buf), buf);
	assert_int_equal(simple_reply(fd, 1), 0);
	send_req(fd, NBD_CMD_READ, 0, 2, WR_OFF, sizeof(back), NULL);
	assert_int_equal(simple_reply(fd, 2), 0);
	must_read(fd, back, sizeof(back));
	assert_memory_equal(buf, back, sizeof(buf));
	send_req(fd, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 3, WR_OFF, 4096, NULL);
	assert_int_equal(simple_reply(fd, 3), 0);
	send_req(fd, NBD_CMD_TRIM, 0, 4, WR_OFF + 8192, 8192, NULL);
	assert_int_equal(simple_reply(fd, 4), 0);
	send_req(fd, NBD_CMD_CACHE, 0, 5, 0, 65536, NULL);
	assert_int_equal(simple_reply(fd, 5), 0);
	send_req(fd, NBD_CMD_FLUSH, 0, 6, 0, 0, NULL);
	assert_int_equal(simple_reply(fd, 6), 0);
	send_req(fd, NBD_CMD_READ, 0, 7, WR_OFF, 16384, NULL);
	assert_int_equal(simple_reply(fd, 7), 0);
	must_read(fd, back, 16384);
	assert_true(all(back, 4096, 0));          /* zeroed */
	assert_true(all(back + 4096, 4096, 0x5c)); /* untouched */
	/* the trimmed range's content is unspecified; the rest of the write is there */
	send_req(fd, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 8, WR_OFF, 4096, NULL);
	{
		uint32_t e = simple_reply(fd, 8);

		assert_true(e == 0 || e == NBD_ENOTSUP);
	}
	imgfx_assert_reads(bs, WR_OFF + 16384, sizeof(buf) - 16384, 0x5c);
	close(fd);
}

static void test_structured_reads(void **state)
{
	static uint8_t buf[2u << 20];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	unsigned int holes;
	struct chunk c;

	go(fd, "ro", true);
	/* [0, 2 MiB): hole, data (64 KiB of 0xaa), hole, data (4 KiB of 0xbb), hole */
	send_req(fd, NBD_CMD_READ, 0, 1, 0, sizeof(buf), NULL);
	holes = read_structured(fd, 1, 0, buf, sizeof(buf));
	assert_true(holes >= 3);
	assert_true(all(buf, DATA1_OFF, 0));
	assert_true(all(buf + DATA1_OFF, DATA1_LEN, 0xaa));
	assert_true(all(buf + DATA1_OFF + DATA1_LEN, DATA2_OFF - DATA1_OFF - DATA1_LEN, 0));
	assert_true(all(buf + DATA2_OFF, DATA2_LEN, 0xbb));
	assert_true(all(buf + DATA2_OFF + DATA2_LEN, sizeof(buf) - DATA2_OFF - DATA2_LEN, 0));
	/* don't fragment: one data chunk, the holes as zeroes */
	send_req(fd, NBD_CMD_READ, NBD_CMD_FLAG_DF, 2, 0, 256 << 10, NULL);
	read_chunk(fd, &c);
	assert_int_equal(c.type, NBD_REPLY_TYPE_OFFSET_DATA);
	assert_true(c.flags & NBD_REPLY_FLAG_DONE);
	assert_int_equal(c.len, 8 + (256 << 10));
	assert_true(all(c.data + 8 + DATA1_OFF, DATA1_LEN, 0xaa));
	assert_true(all(c.data + 8, DATA1_OFF, 0));
	free(c.data);
	/* a read of length 0: a final chunk with nothing in it */
	send_req(fd, NBD_CMD_READ, 0, 3, 0, 0, NULL);
	read_chunk(fd, &c);
	assert_true(c.type == NBD_REPLY_TYPE_NONE && (c.flags & NBD_REPLY_FLAG_DONE));
	free(c.data);
	/* past the end: an error chunk, and the connection goes on */
	send_req(fd, NBD_CMD_READ, 0, 4, IMG_SIZE - 4096, 8192, NULL);
	assert_int_equal(error_chunk(fd, 4), NBD_EINVAL);
	send_req(fd, NBD_CMD_READ, 0, 5, UINT64_MAX - 10, 4096, NULL); /* offset + len wraps */
	assert_int_equal(error_chunk(fd, 5), NBD_EINVAL);
	/* longer than the maximum payload */
	send_req(fd, NBD_CMD_READ, 0, 6, 0, NBD_MAX_PAYLOAD + 1, NULL);
	assert_int_equal(error_chunk(fd, 6), NBD_EOVERFLOW);
	/* a flag not valid for READ */
	send_req(fd, NBD_CMD_READ, NBD_CMD_FLAG_REQ_ONE, 7, 0, 4096, NULL);
	assert_int_equal(error_chunk(fd, 7), NBD_EINVAL);
	close(fd);
}

/* Reads a block status reply: extents per context id (up to @max each); returns the count of
 * context 1 (base:allocation) and fills @ext with them. */
static unsigned int block_status(int fd, uint64_t cookie, uint32_t *ext, unsigned int max,
				 unsigned int *n_dirty, uint32_t *dirty)
{
	unsigned int n = 0;
	struct chunk c;

	*n_dirty = 0;
	do {
		read_chunk(fd, &c);
		assert_true(c.cookie == cookie);
		assert_int_equal(c.type, NBD_REPLY_TYPE_BLOCK_STATUS);
		assert_true(c.len >= 12 && (c.len - 4) % 8 == 0);
		uint32_t id = nbd_get_be32(c.data), cnt = (c.len - 4) / 8;

		for (uint32_t i = 0; i < cnt && i < max; i++) {
			uint32_t *dst = id == 1 ? ext + 2 * i : dirty + 2 * i;

			dst[0] = nbd_get_be32(c.data + 4 + 8 * i);
			dst[1] = nbd_get_be32(c.data + 8 + 8 * i);
			assert_true(dst[0] > 0);
		}
		if (id == 1)
			n = cnt;
		else
			*n_dirty = cnt;
		free(c.data);
	} while (!(c.flags & NBD_REPLY_FLAG_DONE));
	return n;
}

static void test_block_status(void **state)
{
	uint32_t ext[64], dirty[64];
	static uint8_t buf[4096];
	unsigned int n, nd;
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go(fd, "rw", true);
	send_req(fd, NBD_CMD_BLOCK_STATUS, 0, 1, 0, 2u << 20, NULL);
	n = block_status(fd, 1, ext, 32, &nd, dirty);
	/* hole, data, hole, data, hole: the raw file's own holes */
	assert_int_equal(n, 5);
	assert_int_equal(ext[0], DATA1_OFF);
	assert_int_equal(ext[1], NBD_STATE_HOLE | NBD_STATE_ZERO);
	assert_int_equal(ext[2], DATA1_LEN);
	assert_int_equal(ext[3], 0);
	assert_int_equal(ext[5], NBD_STATE_HOLE | NBD_STATE_ZERO);
	assert_int_equal(ext[6], DATA2_LEN);
	assert_int_equal(ext[7], 0);
	assert_true(nd >= 1);
	/* one extent only */
	send_req(fd, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 2, DATA1_OFF + 4096, 1u << 20,
		 NULL);
	n = block_status(fd, 2, ext, 32, &nd, dirty);
	assert_int_equal(n, 1);
	assert_int_equal(nd, 1);
	assert_int_equal(ext[0], DATA1_LEN - 4096);
	assert_int_equal(ext[1], 0);
	/* a write through the export dirties the bitmap's granules */
	fill(buf, sizeof(buf), 0x77);
	send_req(fd, NBD_CMD_WRITE, 0, 3, WR_OFF + (1u << 20), sizeof(buf), buf);
	assert_int_equal(simple_reply(fd, 3), 0);
	send_req(fd, NBD_CMD_BLOCK_STATUS, 0, 4, WR_OFF + (1u << 20) - 65536, 3 * 65536, NULL);
	n = block_status(fd, 4, ext, 32, &nd, dirty);
	assert_int_equal(nd, 3);
	assert_int_equal(dirty[0], 65536);
	assert_int_equal(dirty[1], 0);
	assert_int_equal(dirty[2], 65536);
	assert_int_equal(dirty[3], NBD_STATE_DIRTY);
	assert_int_equal(dirty[4], 65536);
	/* past the end, and length 0 */
	send_req(fd, NBD_CMD_BLOCK_STATUS, 0, 5, IMG_SIZE, 4096, NULL);
	assert_int_equal(error_chunk(fd, 5), NBD_EINVAL);
	send_req(fd, NBD_CMD_BLOCK_STATUS, 0, 6, 0, 0, NULL);
	assert_int_equal(error_chunk(fd, 6), NBD_EINVAL);
	close(fd);
}

static void test_errors_keep_the_connection(void **state)
{
	static uint8_t buf[8192];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go(fd, "rw", false);
	fill(buf, sizeof(buf), 0x11);
	/* a write past the end: its payload is read, ENOSPC, and the stream stays in step */
	send_req(fd, NBD_CMD_WRITE, 0, 1, IMG_SIZE - 4096, sizeof(buf), buf);
	assert_int_equal(simple_reply(fd, 1), NBD_ENOSPC);
	send_req(fd, NBD_CMD_READ, 0, 2, IMG_SIZE - 4096, 8192, NULL);
	assert_int_equal(simple_reply(fd, 2), NBD_EINVAL);
	send_req(fd, 99, 0, 3, 0, 0, NULL); /* unknown command */
	assert_int_equal(simple_reply(fd, 3), NBD_EINVAL);
	send_req(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_DF, 4, WR_OFF, 512, buf); /* DF on a write */
	assert_int_equal(simple_reply(fd, 4), NBD_EINVAL);
	send_req(fd, NBD_CMD_FLUSH, 0, 5, 4096, 0, NULL);
	assert_int_equal(simple_reply(fd, 5), NBD_EINVAL);
	/* without structured replies a read longer than the maximum payload is invalid */
	send_req(fd, NBD_CMD_READ, 0, 6, 0, NBD_MAX_PAYLOAD + 4096, NULL);
	assert_int_equal(simple_reply(fd, 6), NBD_EINVAL);
	send_req(fd, NBD_CMD_TRIM, 0, 7, IMG_SIZE, 1, NULL);
	assert_int_equal(simple_reply(fd, 7), NBD_EINVAL);
	send_req(fd, NBD_CMD_WRITE_ZEROES, 0, 8, IMG_SIZE - 1, 2, NULL);
	assert_int_equal(simple_reply(fd, 8), NBD_ENOSPC);
	send_req(fd, NBD_CMD_WRITE, 0, 9, WR_OFF, 512, buf); /* and a good one */
	assert_int_equal(simple_reply(fd, 9), 0);
	imgfx_assert_reads(bs, IMG_SIZE - 4096, 4096, 0);
	close(fd);
}

static void test_read_only_export(void **state)
{
	static uint8_t buf[4096];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	uint16_t flags = go(fd, "ro", false);

	assert_true(flags & NBD_FLAG_READ_ONLY);
	fill(buf, sizeof(buf), 0xee);
	send_req(fd, NBD_CMD_WRITE, 0, 1, DATA2_OFF, sizeof(buf), buf);
	assert_int_equal(simple_reply(fd, 1), NBD_EPERM);
	send_req(fd, NBD_CMD_TRIM, 0, 2, DATA2_OFF, 4096, NULL);
	assert_int_equal(simple_reply(fd, 2), NBD_EPERM);
	send_req(fd, NBD_CMD_WRITE_ZEROES, 0, 3, DATA2_OFF, 4096, NULL);
	assert_int_equal(simple_reply(fd, 3), NBD_EPERM);
	send_req(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 4, DATA2_OFF, sizeof(buf), buf);
	assert_int_equal(simple_reply(fd, 4), NBD_EINVAL); /* FUA was not offered */
	send_req(fd, NBD_CMD_FLUSH, 0, 5, 0, 0, NULL);
	assert_int_equal(simple_reply(fd, 5), 0);
	imgfx_assert_reads(bs, DATA2_OFF, DATA2_LEN, 0xbb);
	close(fd);
}

static void test_framing_violations_disconnect(void **state)
{
	uint8_t h[NBD_REQUEST_LEN];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go(fd, "rw", false);
	nbd_encode_request(h, &(struct nbd_request){ .type = NBD_CMD_READ, .len = 512 });
	h[0] ^= 1; /* bad magic */
	xwrite(fd, h, sizeof(h));
	assert_true(closed_within(fd, 3000));
	close(fd);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "rw", false);
	/* a write payload beyond the maximum: its bytes cannot be skipped safely */
	send_req(fd, NBD_CMD_WRITE, 0, 1, 0, 0x7fffffff, NULL);
	assert_true(closed_within(fd, 3000));
	close(fd);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "rw", false);
	xwrite(fd, h, 10); /* a truncated request, then the client goes */
	close(fd);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "rw", false);
	send_req(fd, NBD_CMD_WRITE, 0, 1, WR_OFF, 65536, NULL);
	{
		static const uint8_t part[100];

		xwrite(fd, part, sizeof(part)); /* a truncated payload */
	}
	close(fd);
}

/* ---- extended headers ------------------------------------------------------------------------ */

/* An extended request; @payload_len bytes of @payload follow (NBD_CMD_FLAG_PAYLOAD_LEN is the
 * caller's to set). */
static void send_xreq(int fd, uint16_t type, uint16_t flags, uint64_t cookie, uint64_t off,
		      uint64_t len, const void *payload, size_t payload_len)
{
	uint8_t h[NBD_EXTENDED_REQUEST_LEN];

	nbd_encode_extended_request(h, &(struct nbd_request){ .flags = flags, .type = type,
							      .cookie = cookie, .offset = off,
							      .len = len });
	xwrite(fd, h, sizeof(h));
	if (payload_len)
		xwrite(fd, payload, payload_len);
}

/* An extended reply chunk to @cookie, whose header must echo the request's offset @off. */
static void read_xchunk(int fd, struct chunk *c, uint64_t cookie, uint64_t off)
{
	uint8_t h[NBD_EXTENDED_REPLY_LEN];
	struct nbd_chunk_hdr ch;

	must_read(fd, h, sizeof(h));
	nbd_decode_extended_reply_hdr(h, &ch);
	if (ch.magic != NBD_EXTENDED_REPLY_MAGIC)
		fail_msg("reply magic %#x, not NBD_EXTENDED_REPLY_MAGIC", ch.magic);
	assert_true(ch.len <= NBD_MAX_PAYLOAD + 64);
	assert_true(ch.cookie == cookie);
	assert_true(ch.offset == off);
	c->flags = ch.flags;
	c->type = ch.type;
	c->cookie = ch.cookie;
	c->offset = ch.offset;
	c->len = (uint32_t)ch.len;
	c->data = malloc(c->len + 1);
	must_read(fd, c->data, c->len);
}

/* A success without data: one NBD_REPLY_TYPE_NONE chunk, final. */
static void xnone(int fd, uint64_t cookie, uint64_t off)
{
	struct chunk c;

	read_xchunk(fd, &c, cookie, off);
	assert_int_equal(c.type, NBD_REPLY_TYPE_NONE);
	assert_true(c.flags & NBD_REPLY_FLAG_DONE);
	assert_int_equal(c.len, 0);
	free(c.data);
}

/* A reply that is one error chunk; its error. */
static uint32_t xerror(int fd, uint64_t cookie, uint64_t off)
{
	struct chunk c;
	uint32_t err;

	read_xchunk(fd, &c, cookie, off);
	assert_int_equal(c.type, NBD_REPLY_TYPE_ERROR);
	assert_true(c.flags & NBD_REPLY_FLAG_DONE);
	assert_true(c.len > 6); /* with a message */
	err = nbd_get_be32(c.data);
	assert_int_equal(nbd_get_be16(c.data + 4), c.len - 6);
	free(c.data);
	return err;
}

/* A read reply of extended chunks assembled into @buf; the number of hole chunks. */
static unsigned int xread_reply(int fd, uint64_t cookie, uint64_t off, uint8_t *buf, uint32_t len)
{
	return read_chunks(fd, cookie, off, buf, len, true);
}

struct xext {
	uint64_t len, flags;
};

/* A block status reply of NBD_REPLY_TYPE_BLOCK_STATUS_EXT chunks: base:allocation's extents
 * (context 1) into @ext, the bitmap's (context 2) into @dirty (up to @max each); returns the
 * count of base:allocation's. */
static unsigned int xstatus(int fd, uint64_t cookie, uint64_t off, struct xext *ext,
			    unsigned int max, unsigned int *n_dirty, struct xext *dirty)
{
	unsigned int n = 0;
	struct chunk c;

	*n_dirty = 0;
	do {
		uint32_t id, cnt;

		read_xchunk(fd, &c, cookie, off);
		assert_int_equal(c.type, NBD_REPLY_TYPE_BLOCK_STATUS_EXT);
		assert_true(c.len >= 24 && (c.len - 8) % 16 == 0);
		id = nbd_get_be32(c.data);
		cnt = nbd_get_be32(c.data + 4);
		assert_int_equal(cnt, (c.len - 8) / 16); /* the descriptor count field */
		for (uint32_t i = 0; i < cnt && i < max; i++) {
			struct xext *dst = id == 1 ? &ext[i] : &dirty[i];

			dst->len = nbd_get_be64(c.data + 8 + 16 * i);
			dst->flags = nbd_get_be64(c.data + 16 + 16 * i);
			assert_true(dst->len > 0);
			assert_true(dst->flags >> 32 == 0); /* 32-bit contexts */
		}
		if (id == 1)
			n = cnt;
		else
			*n_dirty = cnt;
		free(c.data);
	} while (!(c.flags & NBD_REPLY_FLAG_DONE));
	return n;
}

/* GO's transmission flags, its replies read. */
static uint16_t go_flags(int fd, const char *name)
{
	static struct rep r;
	uint8_t buf[64];
	uint16_t flags = 0;

	send_opt(fd, NBD_OPT_GO, buf, info_data(buf, name, NULL, 0));
	for (;;) {
		read_rep(fd, &r);
		if (r.type == NBD_REP_ACK)
			return flags;
		assert_int_equal(r.type, NBD_REP_INFO);
		if (nbd_get_be16(r.data) == NBD_INFO_EXPORT)
			flags = nbd_get_be16(r.data + 10);
	}
}

/* Sends SET_META_CONTEXT for @q on @name and reads its replies; the contexts selected. */
static int set_meta(int fd, const char *name, const char *q)
{
	static struct rep r;
	uint8_t buf[256];
	int n = 0;

	send_opt(fd, NBD_OPT_SET_META_CONTEXT, buf, meta_data(buf, name, &q, 1));
	for (;; n++) {
		read_rep(fd, &r);
		if (r.type == NBD_REP_ACK)
			return n;
		assert_int_equal(r.type, NBD_REP_META_CONTEXT);
	}
}

static void test_extended_negotiation(void **state)
{
	static struct rep r;
	struct xext ext[8], dirty[8];
	unsigned int nd;
	uint16_t flags;
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	/* ACK, and structured replies come with it: contexts may be selected at once */
	send_opt(fd, NBD_OPT_EXTENDED_HEADERS, NULL, 0);
	expect_rep(fd, &r, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK);
	assert_int_equal(set_meta(fd, "rw", NBD_META_BASE_ALLOCATION), 1);
	/* no way back to compact structured replies */
	send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	expect_rep(fd, &r, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_EXT_HEADER_REQD);
	send_opt(fd, NBD_OPT_EXTENDED_HEADERS, NULL, 0); /* asking again changes nothing */
	expect_rep(fd, &r, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK);
	flags = go_flags(fd, "rw");
	assert_true(flags & NBD_FLAG_SEND_DF);                 /* structured replies: yes */
	assert_false(flags & NBD_FLAG_BLOCK_STATUS_PAYLOAD);   /* not offered */
	send_xreq(fd, NBD_CMD_FLUSH, 0, 1, 0, 0, NULL, 0);
	xnone(fd, 1, 0);
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, 0, 2, 0, DATA1_OFF + 4096, NULL, 0);
	assert_int_equal(xstatus(fd, 2, 0, ext, 8, &nd, dirty), 2);
	assert_int_equal(nd, 0); /* only base:allocation was selected */
	close(fd);

	/* the other order: structured replies and a context first, then extended headers; the
	 * contexts stay selected (they are 32-bit, which BLOCK_STATUS_EXT carries too) */
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	expect_rep(fd, &r, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
	assert_int_equal(set_meta(fd, "ro", NBD_META_BASE_ALLOCATION), 1);
	send_opt(fd, NBD_OPT_EXTENDED_HEADERS, NULL, 0);
	expect_rep(fd, &r, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK);
	assert_true(go_flags(fd, "ro") & NBD_FLAG_READ_ONLY);
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 3, DATA1_OFF, 1u << 20, NULL, 0);
	assert_int_equal(xstatus(fd, 3, DATA1_OFF, ext, 8, &nd, dirty), 1);
	assert_true(ext[0].len == DATA1_LEN && ext[0].flags == 0);
	/* a write to the read-only export: an error chunk, not a simple reply */
	memset(r.data, 0xee, 512);
	send_xreq(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 4, DATA2_OFF, 512, r.data, 512);
	assert_int_equal(xerror(fd, 4, DATA2_OFF), NBD_EPERM);
	imgfx_assert_reads(bs, DATA2_OFF, DATA2_LEN, 0xbb);
	close(fd);

	/* NBD_OPT_EXPORT_NAME is not allowed after it, and cannot be refused: disconnect */
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	send_opt(fd, NBD_OPT_EXTENDED_HEADERS, NULL, 0);
	expect_rep(fd, &r, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK);
	send_opt(fd, NBD_OPT_EXPORT_NAME, "rw", 2);
	assert_true(closed_within(fd, 3000));
	close(fd);
}

static void test_extended_read(void **state)
{
	static uint8_t buf[2u << 20];
	const uint64_t off = DATA1_OFF - 8192; /* not 0: the headers must carry it */
	const uint32_t len = WR_OFF - off; /* earlier tests write from WR_OFF on */
	unsigned int holes;
	struct chunk c;
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go_mode(fd, "ro", EXTENDED);
	/* hole, data (64 KiB of 0xaa), hole, data (4 KiB of 0xbb), hole */
	send_xreq(fd, NBD_CMD_READ, 0, 1, off, len, NULL, 0);
	holes = xread_reply(fd, 1, off, buf, len);
	assert_true(holes >= 3);
	assert_true(all(buf, 8192, 0));
	assert_true(all(buf + 8192, DATA1_LEN, 0xaa));
	assert_true(all(buf + DATA2_OFF - off, DATA2_LEN, 0xbb));
	assert_true(all(buf + DATA2_OFF - off + DATA2_LEN, len - (DATA2_OFF - off) - DATA2_LEN,
			0));
	/* don't fragment: one data chunk whose payload offset is the request's */
	send_xreq(fd, NBD_CMD_READ, NBD_CMD_FLAG_DF, 2, off, 65536, NULL, 0);
	read_xchunk(fd, &c, 2, off);
	assert_int_equal(c.type, NBD_REPLY_TYPE_OFFSET_DATA);
	assert_true(c.flags & NBD_REPLY_FLAG_DONE);
	assert_int_equal(c.len, 8 + 65536);
	assert_true(nbd_get_be64(c.data) == off);
	assert_true(all(c.data + 8, 8192, 0) && all(c.data + 8 + 8192, 65536 - 8192, 0xaa));
	free(c.data);
	/* length 0: NONE */
	send_xreq(fd, NBD_CMD_READ, 0, 3, 4096, 0, NULL, 0);
	xnone(fd, 3, 4096);
	/* longer than the maximum payload, also beyond 32 bits: refused up front, nothing kept */
	send_xreq(fd, NBD_CMD_READ, 0, 4, 0, NBD_MAX_PAYLOAD + 1, NULL, 0);
	assert_int_equal(xerror(fd, 4, 0), NBD_EOVERFLOW);
	send_xreq(fd, NBD_CMD_READ, 0, 5, 0, 1ull << 33, NULL, 0);
	assert_int_equal(xerror(fd, 5, 0), NBD_EOVERFLOW);
	/* past the end, and an offset + length that wraps */
	send_xreq(fd, NBD_CMD_READ, 0, 6, IMG_SIZE - 4096, 8192, NULL, 0);
	assert_int_equal(xerror(fd, 6, IMG_SIZE - 4096), NBD_EINVAL);
	send_xreq(fd, NBD_CMD_READ, 0, 7, 4096, UINT64_MAX - 100, NULL, 0);
	assert_int_equal(xerror(fd, 7, 4096), NBD_EOVERFLOW);
	send_xreq(fd, NBD_CMD_READ, 0, 8, UINT64_MAX - 10, 4096, NULL, 0);
	assert_int_equal(xerror(fd, 8, UINT64_MAX - 10), NBD_EINVAL);
	/* and the connection is still in step */
	send_xreq(fd, NBD_CMD_READ, 0, 9, DATA2_OFF, DATA2_LEN, NULL, 0);
	xread_reply(fd, 9, DATA2_OFF, buf, DATA2_LEN);
	assert_true(all(buf, DATA2_LEN, 0xbb));
	close(fd);
}

static void test_extended_write_trim_zeroes(void **state)
{
	static uint8_t buf[65536], back[65536];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	assert_true(go_mode(fd, "rw", EXTENDED) & NBD_FLAG_SEND_WRITE_ZEROES);
	fill(buf, sizeof(buf), 0x6d);
	send_xreq(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN | NBD_CMD_FLAG_FUA, 1, WR_OFF,
		  sizeof(buf), buf, sizeof(buf));
	xnone(fd, 1, WR_OFF);
	send_xreq(fd, NBD_CMD_READ, NBD_CMD_FLAG_DF, 2, WR_OFF, sizeof(back), NULL, 0);
	xread_reply(fd, 2, WR_OFF, back, sizeof(back));
	assert_memory_equal(buf, back, sizeof(buf));
	imgfx_assert_reads(bs, WR_OFF, sizeof(buf), 0x6d);
	send_xreq(fd, NBD_CMD_WRITE_ZEROES, 0, 3, WR_OFF, 4096, NULL, 0);
	xnone(fd, 3, WR_OFF);
	send_xreq(fd, NBD_CMD_TRIM, 0, 4, WR_OFF + 8192, 8192, NULL, 0);
	xnone(fd, 4, WR_OFF + 8192);
	send_xreq(fd, NBD_CMD_CACHE, 0, 5, 0, IMG_SIZE, NULL, 0);
	xnone(fd, 5, 0);
	imgfx_assert_reads(bs, WR_OFF, 4096, 0);
	imgfx_assert_reads(bs, WR_OFF + 4096, 4096, 0x6d);
	imgfx_assert_reads(bs, WR_OFF + 16384, sizeof(buf) - 16384, 0x6d);
	/* a write without NBD_CMD_FLAG_PAYLOAD_LEN, as QEMU 10's client sends it: its length is
	 * still its payload's */
	fill(buf, 4096, 0x6e);
	send_xreq(fd, NBD_CMD_WRITE, 0, 6, WR_OFF + 4096, 4096, buf, 4096);
	xnone(fd, 6, WR_OFF + 4096);
	imgfx_assert_reads(bs, WR_OFF + 4096, 4096, 0x6e);
	/* a payload on a command that takes none here (we do not offer BLOCK_STATUS's payload
	 * form): read and dropped, then NBD_EINVAL, and the stream stays in step */
	{
		uint8_t pl[12];

		nbd_put_be64(pl, 4096);
		nbd_put_be32(pl + 8, 1);
		send_xreq(fd, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 7, 0, sizeof(pl), pl,
			  sizeof(pl));
		assert_int_equal(xerror(fd, 7, 0), NBD_EINVAL);
		send_xreq(fd, NBD_CMD_FLUSH, NBD_CMD_FLAG_PAYLOAD_LEN, 8, 0, sizeof(pl), pl,
			  sizeof(pl));
		assert_int_equal(xerror(fd, 8, 0), NBD_EINVAL);
	}
	/* past the end: ENOSPC for writes, EINVAL for trim; the reply carries the offset */
	send_xreq(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 9, IMG_SIZE - 4096, 8192, buf, 8192);
	assert_int_equal(xerror(fd, 9, IMG_SIZE - 4096), NBD_ENOSPC);
	send_xreq(fd, NBD_CMD_WRITE_ZEROES, 0, 10, 4096, 1ull << 40, NULL, 0);
	assert_int_equal(xerror(fd, 10, 4096), NBD_ENOSPC);
	send_xreq(fd, NBD_CMD_TRIM, 0, 11, IMG_SIZE, 1, NULL, 0);
	assert_int_equal(xerror(fd, 11, IMG_SIZE), NBD_EINVAL);
	send_xreq(fd, NBD_CMD_FLUSH, 0, 12, 0, 0, NULL, 0);
	xnone(fd, 12, 0);
	/* DISC: what is in flight is answered, then the server closes */
	send_xreq(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 13, WR_OFF + 4096, 4096, buf, 4096);
	send_xreq(fd, NBD_CMD_DISC, 0, 14, 0, 0, NULL, 0);
	xnone(fd, 13, WR_OFF + 4096);
	assert_true(closed_within(fd, 3000));
	close(fd);
}

static void test_extended_block_status(void **state)
{
	struct xext ext[32], dirty[32];
	static uint8_t buf[4096];
	unsigned int n, nd;
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go_mode(fd, "rw", EXTENDED);
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, 0, 1, 0, 2u << 20, NULL, 0);
	n = xstatus(fd, 1, 0, ext, 32, &nd, dirty);
	assert_int_equal(n, 5); /* hole, data, hole, data, hole */
	assert_true(ext[0].len == DATA1_OFF && ext[0].flags == (NBD_STATE_HOLE | NBD_STATE_ZERO));
	assert_true(ext[1].len == DATA1_LEN && ext[1].flags == 0);
	assert_true(ext[2].flags == (NBD_STATE_HOLE | NBD_STATE_ZERO));
	assert_true(ext[3].len == DATA2_LEN && ext[3].flags == 0);
	assert_true(nd >= 1);
	/* REQ_ONE: one descriptor per context, within the request */
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 2, DATA1_OFF + 4096, 1u << 20,
		  NULL, 0);
	n = xstatus(fd, 2, DATA1_OFF + 4096, ext, 32, &nd, dirty);
	assert_int_equal(n, 1);
	assert_int_equal(nd, 1);
	assert_true(ext[0].len == DATA1_LEN - 4096 && ext[0].flags == 0);
	/* a write through the export dirties the bitmap's granule */
	fill(buf, sizeof(buf), 0x42);
	send_xreq(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 3, WR_OFF + (1u << 20), sizeof(buf),
		  buf, sizeof(buf));
	xnone(fd, 3, WR_OFF + (1u << 20));
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, 0, 4, WR_OFF + (1u << 20) - 65536, 3 * 65536, NULL, 0);
	xstatus(fd, 4, WR_OFF + (1u << 20) - 65536, ext, 32, &nd, dirty);
	assert_int_equal(nd, 3);
	assert_true(dirty[0].len == 65536 && dirty[0].flags == 0);
	assert_true(dirty[1].len == 65536 && dirty[1].flags == NBD_STATE_DIRTY);
	assert_true(dirty[2].len == 65536 && dirty[2].flags == 0);
	/* refusals are error chunks */
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, 0, 5, IMG_SIZE, 4096, NULL, 0);
	assert_int_equal(xerror(fd, 5, IMG_SIZE), NBD_EINVAL);
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, 0, 6, 0, 0, NULL, 0);
	assert_int_equal(xerror(fd, 6, 0), NBD_EINVAL);
	close(fd);
}

/* 64-bit effect lengths: write-zeroes, trim and block status over more than 4 GiB of an 8 GiB
 * sparse export (hole punching: cheap), answered in one request each. */
static void test_extended_beyond_4g(void **state)
{
	const uint64_t size = 8ull << 30, big = 5ull << 30;
	struct nbd_export_opts o = { .id = "e-big", .node_name = "big", .name = "big",
				     .writable = true, .iothread = it };
	struct xext ext[8], dirty[8];
	static uint8_t buf[65536];
	struct blockdev *b;
	struct error *err = NULL;
	unsigned int n, nd;
	int fd;

	imgfx_make_raw("big.raw", size);
	b = imgfx_open("big.raw", "raw", "big", false);
	imgfx_fill(b, 4096, 4096, 0x31);
	imgfx_fill(b, big + 65536, 4096, 0x32);
	if (nbd_export_add(srv, &o, &err) < 0)
		fail_msg("%s", error_msg(err));
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go_mode(fd, "big", EXTENDED);
	/* [0, 5 GiB + 64 KiB) + 4 KiB: hole, data, hole (> 4 GiB), data, hole */
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, 0, 1, 0, size, NULL, 0);
	n = xstatus(fd, 1, 0, ext, 8, &nd, dirty);
	assert_int_equal(n, 5);
	assert_true(ext[1].len == 4096 && ext[1].flags == 0);
	assert_true(ext[2].len == big + 65536 - 8192 && ext[2].len > UINT32_MAX);
	assert_true(ext[2].flags == (NBD_STATE_HOLE | NBD_STATE_ZERO));
	assert_true(ext[3].len == 4096 && ext[3].flags == 0);
	/* zero everything after the first 64 KiB up to past the second piece of data */
	send_xreq(fd, NBD_CMD_WRITE_ZEROES, 0, 2, 65536, big + 8192, NULL, 0);
	xnone(fd, 2, 65536);
	imgfx_assert_reads(b, big + 65536, 4096, 0);
	send_xreq(fd, NBD_CMD_TRIM, 0, 3, 0, size, NULL, 0);
	xnone(fd, 3, 0);
	send_xreq(fd, NBD_CMD_CACHE, 0, 4, 0, size, NULL, 0);
	xnone(fd, 4, 0);
	/* REQ_ONE over all of it: one descriptor, as long as the whole (now empty) export */
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 5, 0, size, NULL, 0);
	n = xstatus(fd, 5, 0, ext, 8, &nd, dirty);
	assert_int_equal(n, 1);
	assert_true(ext[0].len == size && (ext[0].flags & NBD_STATE_ZERO));
	/* the export's end still bounds them */
	send_xreq(fd, NBD_CMD_WRITE_ZEROES, 0, 6, 65536, size, NULL, 0);
	assert_int_equal(xerror(fd, 6, 65536), NBD_ENOSPC);
	/* and a read is still bounded by the maximum payload */
	send_xreq(fd, NBD_CMD_READ, 0, 7, 0, big, NULL, 0);
	assert_int_equal(xerror(fd, 7, 0), NBD_EOVERFLOW);
	send_xreq(fd, NBD_CMD_READ, 0, 8, big, sizeof(buf), NULL, 0);
	xread_reply(fd, 8, big, buf, sizeof(buf));
	assert_true(all(buf, sizeof(buf), 0));
	close(fd);
	assert_int_equal(nbd_export_del(srv, "e-big", NBD_EXPORT_DEL_HARD, NULL), 0);
	blockdev_close(b);
}

static void test_extended_framing_violations(void **state)
{
	uint8_t h[NBD_EXTENDED_REQUEST_LEN];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	/* a compact header once extended headers were negotiated */
	go_mode(fd, "rw", EXTENDED);
	send_xreq(fd, NBD_CMD_FLUSH, 0, 1, 0, 0, NULL, 0);
	xnone(fd, 1, 0);
	send_req(fd, NBD_CMD_FLUSH, 0, 2, 0, 0, NULL);
	assert_true(closed_within(fd, 3000));
	close(fd);
	/* an extended header without them: compact only, and with structured replies */
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "rw", false);
	send_xreq(fd, NBD_CMD_FLUSH, 0, 1, 0, 0, NULL, 0);
	assert_true(closed_within(fd, 3000));
	close(fd);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "rw", true);
	nbd_encode_extended_request(h, &(struct nbd_request){ .type = NBD_CMD_FLUSH });
	xwrite(fd, h, 4); /* its magic is enough: the server does not wait for more */
	assert_true(closed_within(fd, 3000));
	close(fd);
	/* a payload beyond the maximum: its bytes cannot be skipped safely */
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go_mode(fd, "rw", EXTENDED);
	send_xreq(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 1, 0, NBD_MAX_PAYLOAD + 1, NULL, 0);
	assert_true(closed_within(fd, 3000));
	close(fd);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go_mode(fd, "rw", EXTENDED);
	send_xreq(fd, NBD_CMD_WRITE, 0, 1, 0, 1ull << 32, NULL, 0); /* without the flag too */
	assert_true(closed_within(fd, 3000));
	close(fd);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go_mode(fd, "rw", EXTENDED);
	send_xreq(fd, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 1, 0, 1ull << 40, NULL, 0);
	assert_true(closed_within(fd, 3000));
	close(fd);
}

/* Connections of export @name as nbd_export_list sees them. */
struct count_arg {
	const char *name;
	unsigned int n;
};

static void count_one(void *opaque, const struct nbd_export_info *info)
{
	struct count_arg *a = opaque;

	if (!strcmp(info->name, a->name))
		a->n = info->connections;
}

static unsigned int connections(const char *name)
{
	struct count_arg a = { name, 0 };

	nbd_export_list(srv, count_one, &a);
	return a.n;
}

/* Waits up to 3 s for export @name to have @n connections. */
static bool wait_connections(const char *name, unsigned int n)
{
	for (int i = 0; i < 300; i++) {
		if (connections(name) == n)
			return true;
		usleep(10000);
	}
	return false;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, rss = 0;

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The export's block layer queue recycles its sub-I/Os across connections: a trim on a new
 * connection after a write on one that is gone must not look at the gone write's buffers
 * (ASan: a use after free in the engine, before it looked at buffers only for reads and
 * writes). */
static void test_trim_after_another_clients_write(void **state)
{
	static uint8_t buf[65536];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go(fd, "rw", false);
	fill(buf, sizeof(buf), 0x2b);
	send_req(fd, NBD_CMD_WRITE, 0, 1, WR_OFF, sizeof(buf), buf);
	assert_int_equal(simple_reply(fd, 1), 0);
	close(fd);
	assert_true(wait_connections("rw", 0)); /* its requests are freed */
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "rw", false);
	send_req(fd, NBD_CMD_TRIM, 0, 2, WR_OFF, 4096, NULL);
	assert_int_equal(simple_reply(fd, 2), 0);
	send_req(fd, NBD_CMD_WRITE_ZEROES, 0, 3, WR_OFF + 4096, 4096, NULL);
	assert_int_equal(simple_reply(fd, 3), 0);
	send_req(fd, NBD_CMD_FLUSH, 0, 4, 0, 0, NULL);
	assert_int_equal(simple_reply(fd, 4), 0);
	close(fd);
	imgfx_assert_reads(bs, WR_OFF + 4096, 4096, 0);
	imgfx_assert_reads(bs, WR_OFF + 8192, sizeof(buf) - 8192, 0x2b);
}

static void test_client_not_reading_replies(void **state)
{
	enum { N = 400, LEN = 1u << 20 };
	static uint8_t back[LEN];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE), sent = 0;
	long before;

	go(fd, "ro", false);
	before = rss_kib();
	/* 400 MiB of replies asked for, none read: the server must stop reading the requests
	 * (our sends stall) and hold no more than its limit */
	for (sent = 0; sent < N; sent++) {
		uint8_t h[NBD_REQUEST_LEN];
		ssize_t r;

		nbd_encode_request(h, &(struct nbd_request){ .type = NBD_CMD_READ,
							     .cookie = (uint64_t)sent,
							     .offset = 0, .len = LEN });
		r = send(fd, h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			if (poll(&p, 1, 500) <= 0)
				break; /* the server stopped reading: what we wanted */
			r = send(fd, h, sizeof(h), MSG_NOSIGNAL);
		}
		assert_int_equal(r, sizeof(h));
	}
	usleep(200000);
	assert_true(rss_kib() - before < 200 * 1024);
	/* every request sent is answered, in full, once we read; the rest go as the socket takes
	 * them (the server reads requests again only once enough of its replies left: a blocking
	 * send here could wait for replies we have not read) */
	for (int i = 0, next = sent; i < N; i++) {
		uint8_t r[NBD_SIMPLE_REPLY_LEN], h[NBD_REQUEST_LEN];
		struct nbd_simple_reply sr;

		while (next < N) {
			ssize_t n;

			nbd_encode_request(h, &(struct nbd_request){ .type = NBD_CMD_READ,
								     .cookie = (uint64_t)next,
								     .offset = 0, .len = LEN });
			n = send(fd, h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && next > i)
				break; /* full: read a reply first */
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				n = 0; /* nothing in flight to read: the server must take it */
			assert_true(n >= 0);
			if ((size_t)n < sizeof(h))
				xwrite(fd, h + n, sizeof(h) - (size_t)n);
			next++;
		}
		must_read(fd, r, sizeof(r));
		nbd_decode_simple_reply(r, &sr);
		assert_true(sr.magic == NBD_SIMPLE_REPLY_MAGIC && sr.error == 0);
		assert_true(sr.cookie < N);
		must_read(fd, back, LEN);
		assert_true(all(back + DATA1_OFF, DATA1_LEN, 0xaa));
	}
	close(fd);
}

/* Pipes this process has open (/proc/self/fd links "pipe:[N]"). */
static int pipes_open(void)
{
	char path[64], link[64];
	int n = 0;

	for (int fd = 0; fd < 4096; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len > 0 && !strncmp(link, "pipe:", 5))
			n++;
	}
	return n;
}

/*
 * Page-cached reads go from the page cache through a pipe into the socket: more reads in
 * flight than a connection has pipes wait for one to be free, and are answered in full; a
 * client that goes away while reads wait for pipes is freed, its pipes with it.
 */
static void test_reads_are_spliced_and_wait_for_a_free_pipe(void **state)
{
	/* 40 reads of 128 KiB (the shortest spliced) over 8 places of [WR_OFF, +1 MiB), whose
	 * 4 KiB blocks each hold their own byte */
	enum { N = 40, LEN = 128u << 10, BLOCK = 4096 };
	static uint8_t back[LEN];
	int before = pipes_open(), fd, after;
	bool seen[N] = { false };

	for (unsigned int b = 0; b < (1u << 20) / BLOCK; b++)
		imgfx_fill(bs, WR_OFF + (uint64_t)b * BLOCK, BLOCK, (uint8_t)(0x10 + b));
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "rw", false);
	for (int i = 0; i < N; i++)
		send_req(fd, NBD_CMD_READ, 0, (uint64_t)i, WR_OFF + (uint64_t)(i % 8) * LEN, LEN,
			 NULL);
	for (int i = 0; i < N; i++) {
		uint8_t r[NBD_SIMPLE_REPLY_LEN];
		struct nbd_simple_reply sr;

		must_read(fd, r, sizeof(r));
		nbd_decode_simple_reply(r, &sr);
		assert_true(sr.magic == NBD_SIMPLE_REPLY_MAGIC && sr.error == 0);
		assert_true(sr.cookie < N && !seen[sr.cookie]);
		seen[sr.cookie] = true;
		must_read(fd, back, LEN);
		for (unsigned int k = 0; k < LEN / BLOCK; k++)
			assert_true(all(back + k * BLOCK, BLOCK,
					(uint8_t)(0x10 + (sr.cookie % 8) * (LEN / BLOCK) + k)));
	}
	after = pipes_open();
	assert_true(after > before);            /* the reads went through pipes */
	assert_true(after - before <= 2 * 16);  /* both ends of at most NBD_PIPES */
	/* reads waiting for pipes, then the client goes */
	for (int i = 0; i < N; i++)
		send_req(fd, NBD_CMD_READ, 0, (uint64_t)i, WR_OFF + (uint64_t)(i % 8) * LEN, LEN,
			 NULL);
	close(fd);
	assert_true(wait_connections("rw", 0));
	assert_int_equal(pipes_open(), before);
}

static void test_disc_answers_what_is_in_flight(void **state)
{
	static uint8_t buf[65536];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go(fd, "rw", false);
	fill(buf, sizeof(buf), 0x3c);
	for (int i = 0; i < 8; i++)
		send_req(fd, NBD_CMD_WRITE, 0, (uint64_t)i, WR_OFF + (uint64_t)i * sizeof(buf),
			 sizeof(buf), buf);
	send_req(fd, NBD_CMD_DISC, 0, 100, 0, 0, NULL);
	for (int i = 0; i < 8; i++) {
		uint8_t r[NBD_SIMPLE_REPLY_LEN];

		must_read(fd, r, sizeof(r));
		assert_int_equal(nbd_get_be32(r + 4), 0);
	}
	assert_true(closed_within(fd, 3000));
	close(fd);
	imgfx_assert_reads(bs, WR_OFF, 8 * sizeof(buf), 0x3c);
	assert_true(wait_connections("rw", 0));
}

static void test_drained_section_parks_requests(void **state)
{
	struct blockdev_drain d;
	static uint8_t buf[4096];
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go(fd, "rw", false);
	send_req(fd, NBD_CMD_FLUSH, 0, 1, 0, 0, NULL);
	assert_int_equal(simple_reply(fd, 1), 0);
	assert_int_equal(blockdev_drained_begin(bs, &d, NULL), 0);
	fill(buf, sizeof(buf), 0x99);
	send_req(fd, NBD_CMD_WRITE, 0, 2, WR_OFF, sizeof(buf), buf);
	assert_true(silent_for(fd, 200)); /* held while the section is open */
	imgfx_assert_reads(bs, WR_OFF, 4096, 0x3c); /* and not written */
	blockdev_drained_end(&d);
	assert_int_equal(simple_reply(fd, 2), 0);
	imgfx_assert_reads(bs, WR_OFF, 4096, 0x99);
	close(fd);
}

/* A node resized inside a drained section (block_resize): a new client sees the new size, and
 * the export serves the new range. */
static void test_resize_is_seen_by_new_clients(void **state)
{
	uint8_t rep[NBD_EXPORT_NAME_REPLY_LEN + NBD_ZERO_PAD_LEN];
	struct blockdev_drain d;
	int fd;

	assert_int_equal(blockdev_drained_begin(bs, &d, NULL), 0);
	assert_int_equal(blockdev_truncate(bs, IMG_SIZE + 1048576, NULL), 0);
	blockdev_drained_end(&d);
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	send_opt(fd, NBD_OPT_EXPORT_NAME, "rw", 2);
	must_read(fd, rep, sizeof(rep));
	assert_true(nbd_get_be64(rep) == IMG_SIZE + 1048576);
	send_req(fd, NBD_CMD_WRITE_ZEROES, 0, 1, IMG_SIZE, 65536, NULL);
	assert_int_equal(simple_reply(fd, 1), 0);
	close(fd);
}

static void test_export_del(void **state)
{
	struct error *err = NULL;
	int fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go(fd, "ro", false);
	assert_true(wait_connections("ro", 1));
	assert_int_equal(nbd_export_del(srv, "e-ro", NBD_EXPORT_DEL_SAFE, &err), -1);
	assert_non_null(strstr(error_msg(err), "in use"));
	error_free(err);
	err = NULL;
	assert_int_equal(nbd_export_del(srv, "e-ro", NBD_EXPORT_DEL_HARD, &err), 0);
	assert_true(closed_within(fd, 3000));
	close(fd);
	assert_int_equal(nbd_export_del(srv, "e-ro", NBD_EXPORT_DEL_HARD, &err), -1);
	error_free(err);
	err = NULL;
	/* a new client cannot choose it */
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	{
		static struct rep r;
		uint8_t buf[64];
		uint32_t len = info_data(buf, "ro", NULL, 0);

		send_opt(fd, NBD_OPT_GO, buf, len);
		expect_rep(fd, &r, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN);
	}
	close(fd);
	/* add errors: a taken id, a taken name, no node, a read-only node exported writable */
	{
		struct nbd_export_opts o = { .id = "e-rw", .node = bs, .iothread = it };

		assert_int_equal(nbd_export_add(srv, &o, &err), -1);
		error_free(err);
		err = NULL;
		o = (struct nbd_export_opts){ .id = "x", .node = bs, .name = "rw", .iothread = it };
		assert_int_equal(nbd_export_add(srv, &o, &err), -1);
		error_free(err);
		err = NULL;
		o = (struct nbd_export_opts){ .id = "x", .node_name = "nonode", .iothread = it };
		assert_int_equal(nbd_export_add(srv, &o, &err), -1);
		assert_non_null(strstr(error_msg(err), "nonode"));
		error_free(err);
		err = NULL;
		o = (struct nbd_export_opts){ .id = "x", .node = bs, .name = "x",
					      .bitmaps = (const char *const[]){ "b1" },
					      .nr_bitmaps = 1, .iothread = it };
		assert_int_equal(nbd_export_add(srv, &o, &err), -1); /* no such bitmap */
		error_free(err);
	}
}

static void test_max_connections_and_handshake_deadline(void **state)
{
	int a, b, c;

	nbd_server_stop(srv);
	srv = server_start(2, 300);
	a = connect_unix();
	b = connect_unix();
	c = connect_unix();
	greet(a, NBD_FLAG_C_FIXED_NEWSTYLE);
	greet(b, NBD_FLAG_C_FIXED_NEWSTYLE);
	assert_true(silent_for(c, 150)); /* waits in the backlog: the server is full */
	/* a and b say nothing more: their handshakes time out, and c gets its turn */
	assert_true(closed_within(a, 3000));
	assert_true(closed_within(b, 3000));
	greet(c, NBD_FLAG_C_FIXED_NEWSTYLE);
	go(c, "rw", false); /* in time */
	usleep(500 * 1000); /* past the deadline: transmission is not timed */
	send_req(c, NBD_CMD_FLUSH, 0, 1, 0, 0, NULL);
	assert_int_equal(simple_reply(c, 1), 0);
	close(a);
	close(b);
	close(c);
}

static void test_stop_with_clients(void **state)
{
	int a = client(NBD_FLAG_C_FIXED_NEWSTYLE), b = client(NBD_FLAG_C_FIXED_NEWSTYLE);

	go(a, "rw", true);
	nbd_server_stop(srv);
	srv = NULL;
	assert_true(closed_within(a, 3000));
	assert_true(closed_within(b, 3000));
	close(a);
	close(b);
	srv = server_start(0, 0); /* for the teardown */
}

static void test_pivot_moves_the_export(void **state)
{
	struct nbd_export_opts o = { .id = "e-p", .node_name = "pivsrc", .name = "p",
				     .writable = true, .iothread = it };
	struct blockdev *src, *dst;
	struct blockdev_drain d;
	struct error *err = NULL;
	static uint8_t buf[4096];
	int fd;

	imgfx_make_raw("piv-src.raw", IMG_SIZE);
	imgfx_make_raw("piv-dst.raw", IMG_SIZE);
	src = imgfx_open("piv-src.raw", "raw", "pivsrc", false);
	dst = imgfx_open("piv-dst.raw", "raw", "pivdst", false);
	imgfx_fill(src, 0, 4096, 0x01);
	imgfx_fill(dst, 0, 4096, 0x02);
	if (nbd_export_add(srv, &o, &err) < 0)
		fail_msg("%s", error_msg(err));
	fd = client(NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "p", false);
	send_req(fd, NBD_CMD_READ, 0, 1, 0, sizeof(buf), NULL);
	assert_int_equal(simple_reply(fd, 1), 0);
	must_read(fd, buf, sizeof(buf));
	assert_true(all(buf, sizeof(buf), 0x01));
	/* a mirror's pivot: the export's requests go to the target from now on */
	assert_int_equal(blockdev_drained_begin(src, &d, NULL), 0);
	if (blockdev_replace_node(src, dst, &err) < 0)
		fail_msg("%s", error_msg(err));
	blockdev_drained_end(&d);
	send_req(fd, NBD_CMD_READ, 0, 2, 0, sizeof(buf), NULL);
	assert_int_equal(simple_reply(fd, 2), 0);
	must_read(fd, buf, sizeof(buf));
	assert_true(all(buf, sizeof(buf), 0x02));
	fill(buf, sizeof(buf), 0x03);
	send_req(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 3, 4096, sizeof(buf), buf);
	assert_int_equal(simple_reply(fd, 3), 0);
	imgfx_assert_reads(dst, 4096, 4096, 0x03);
	imgfx_assert_reads(src, 4096, 4096, 0x00);
	close(fd);
	assert_int_equal(nbd_export_del(srv, "e-p", NBD_EXPORT_DEL_HARD, NULL), 0);
	assert_int_equal(blockdev_check_unused(src, NULL), 0);
	assert_int_equal(blockdev_check_unused(dst, NULL), 0);
	blockdev_close(src);
	blockdev_close(dst);
}

static void test_tcp_listener(void **state)
{
	struct nbd_server_opts so = { .type = NBD_ADDR_INET, .host = "127.0.0.1", .port = "0",
				      .iothread = it };
	struct nbd_export_opts eo = { .id = "e-tcp", .node = bs, .name = "tcp", .iothread = it };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct nbd_server *tcp;
	struct error *err = NULL;
	uint8_t data[4096];
	int fd, port;

	tcp = nbd_server_start(&so, &err);
	if (!tcp || nbd_export_add(tcp, &eo, &err) < 0)
		fail_msg("%s", error_msg(err));
	port = nbd_server_port(tcp);
	assert_true(port > 0);
	/* a second server on the same port is refused with the address in the message */
	{
		char p[16];
		struct nbd_server_opts again = so;

		snprintf(p, sizeof(p), "%d", port);
		again.port = p;
		assert_null(nbd_server_start(&again, &err));
		assert_non_null(strstr(error_msg(err), "127.0.0.1"));
		error_free(err);
		err = NULL;
	}
	/* TLS is refused, by name */
	so.tls_creds = "tls0";
	assert_null(nbd_server_start(&so, &err));
	assert_non_null(strstr(error_msg(err), "TLS"));
	error_free(err);
	fd = timeouts(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE);
	go(fd, "tcp", true);
	send_req(fd, NBD_CMD_READ, NBD_CMD_FLAG_DF, 1, DATA2_OFF, sizeof(data), NULL);
	{
		struct chunk c;

		read_chunk(fd, &c);
		assert_int_equal(c.type, NBD_REPLY_TYPE_OFFSET_DATA);
		assert_true(all(c.data + 8, sizeof(data), 0xbb));
		free(c.data);
	}
	close(fd);
	nbd_server_stop(tcp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_greeting_and_unknown_client_flags, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_opt_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_opt_info_and_go, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_and_oversize_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_option_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_contexts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simple_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_structured_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_keep_the_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_framing_violations_disconnect, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_extended_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extended_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extended_write_trim_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extended_block_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extended_beyond_4g, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extended_framing_violations, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_trim_after_another_clients_write, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_client_not_reading_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reads_are_spliced_and_wait_for_a_free_pipe,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_disc_answers_what_is_in_flight, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_resize_is_seen_by_new_clients, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drained_section_parks_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_export_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_connections_and_handshake_deadline, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pivot_moves_the_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_listener, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
