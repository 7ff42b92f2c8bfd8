/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD client's protocol side on memory streams: the handshake against scripted servers
 * (blockdev/nbd_client.c) and every kind of reply, good and hostile (blockdev/nbd_reply.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "blockdev/nbd_client.h"
#include "common/util.h"

/* ---- a memory stream: what the server says, and what the client sent ---- */

struct mem {
	uint8_t in[65536];
	size_t in_len, pos;
	uint8_t out[65536];
	size_t out_len;
};

static int mem_read(void *opaque, void *buf, size_t len)
{
	struct mem *m = opaque;

	if (len > m->in_len - m->pos)
		return -ECONNRESET;
	memcpy(buf, m->in + m->pos, len);
	m->pos += len;
	return 0;
}

static int mem_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++) {
		int ret = mem_read(opaque, iov[i].iov_base, iov[i].iov_len);

		if (ret)
			return ret;
	}
	return 0;
}

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct mem *m = opaque;

	assert_true(len <= sizeof(m->out) - m->out_len);
	memcpy(m->out + m->out_len, buf, len);
	m->out_len += len;
	return 0;
}

static struct nbd_stream stream_of(struct mem *m)
{
	return (struct nbd_stream){ mem_read, mem_readv, mem_write, m };
}

static void put(struct mem *m, const void *p, size_t n)
{
	assert_true(n <= sizeof(m->in) - m->in_len);
	if (n)
		memcpy(m->in + m->in_len, p, n);
	m->in_len += n;
}

static void put16(struct mem *m, uint16_t v)
{
	uint8_t b[2];

	nbd_put_be16(b, v);
	put(m, b, 2);
}

static void put32(struct mem *m, uint32_t v)
{
	uint8_t b[4];

	nbd_put_be32(b, v);
	put(m, b, 4);
}

static void put64(struct mem *m, uint64_t v)
{
	uint8_t b[8];

	nbd_put_be64(b, v);
	put(m, b, 8);
}

/* ---- the handshake ---- */

static void greeting(struct mem *m, uint16_t flags)
{
	put64(m, NBD_INIT_PASSWD);
	put64(m, NBD_OPTS_MAGIC);
	put16(m, flags);
}

static void opt_reply(struct mem *m, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
	put64(m, NBD_REP_MAGIC);
	put32(m, opt);
	put32(m, type);
	put32(m, len);
	put(m, data, len);
}

static void info_export(struct mem *m, uint64_t size, uint16_t flags)
{
	uint8_t b[NBD_INFO_EXPORT_LEN];

	nbd_encode_info_export(b, &(struct nbd_info_export){ size, flags });
	opt_reply(m, NBD_OPT_GO, NBD_REP_INFO, b, sizeof(b));
}

static void info_block_size(struct mem *m, uint32_t min, uint32_t pref, uint32_t max)
{
	uint8_t b[NBD_INFO_BLOCK_SIZE_LEN];

	nbd_encode_info_block_size(b, &(struct nbd_info_block_size){ min, pref, max });
	opt_reply(m, NBD_OPT_GO, NBD_REP_INFO, b, sizeof(b));
}

static void meta_context(struct mem *m, uint32_t id, const char *name)
{
	uint8_t b[256];

	nbd_put_be32(b, id);
	memcpy(b + 4, name, strlen(name));
	opt_reply(m, NBD_OPT_SET_META_CONTEXT, NBD_REP_META_CONTEXT, b, 4 + (uint32_t)strlen(name));
}

/* A server without extended headers refuses the client's first option. */
static void no_extended(struct mem *m)
{
	opt_reply(m, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ERR_UNSUP, NULL, 0);
}

/* What a modern server without extended headers (qemu-nbd before 8.2) says to the client's
 * options. */
static void modern_server(struct mem *m, uint16_t tx_flags)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	no_extended(m);
	opt_reply(m, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK, NULL, 0);
	meta_context(m, 7, "base:allocation");
	opt_reply(m, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK, NULL, 0);
	info_export(m, 1 << 20, tx_flags);
	info_block_size(m, 512, 4096, 1 << 20);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
}

/* The option the client sent at @*off (its header), advancing past its data. */
static uint32_t sent_option(const struct mem *m, size_t *off, const uint8_t **data, uint32_t *len)
{
	struct nbd_opt_hdr h;

	assert_true(*off + NBD_OPT_HDR_LEN <= m->out_len);
	nbd_decode_opt_hdr(m->out + *off, &h);
	assert_true(h.magic == NBD_OPTS_MAGIC);
	*data = m->out + *off + NBD_OPT_HDR_LEN;
	*len = h.len;
	*off += NBD_OPT_HDR_LEN + h.len;
	assert_true(*off <= m->out_len);
	return h.option;
}

static void handshake_with_a_modern_server(void **state)
{
	struct mem *m = calloc(1, sizeof(*m));
	struct nbd_stream s = stream_of(m);
	struct nbd_export_info info;
	struct error *err = NULL;
	const uint8_t *d;
	uint32_t len;
	size_t off = 4;

	modern_server(m, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_TRIM);
	if (nbd_handshake(&s, "disk0", &info, &err) < 0)
		fail_msg("%s", error_msg(err));
	assert_int_equal(m->pos, m->in_len);
	assert_true(info.size == 1 << 20);
	assert_true(info.structured && info.base_allocation);
	assert_int_equal(info.meta_id, 7);
	assert_int_equal(info.min_block, 512);
	assert_int_equal(info.max_payload, 1 << 20);
	assert_int_equal(info.flags & NBD_FLAG_SEND_TRIM, NBD_FLAG_SEND_TRIM);
	assert_false(info.extended);
	/* what the client said: fixed newstyle and no zeroes, then its four options */
	assert_int_equal(nbd_get_be32(m->out), NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_EXTENDED_HEADERS);
	assert_int_equal(len, 0);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_STRUCTURED_REPLY);
	assert_int_equal(len, 0);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_SET_META_CONTEXT);
	assert_int_equal(len, 4 + 5 + 4 + 4 + 15);
	assert_memory_equal(d + 4, "disk0", 5);
	assert_int_equal(nbd_get_be32(d + 9), 1);
	assert_memory_equal(d + 17, "base:allocation", 15);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_GO);
	assert_int_equal(len, 4 + 5 + 2 + 2);
	assert_int_equal(nbd_get_be16(d + 9), 1);
	assert_int_equal(nbd_get_be16(d + 11), NBD_INFO_BLOCK_SIZE);
	assert_int_equal(off, m->out_len);
	free(m);
}

/* A server that takes extended headers (qemu-nbd 8.2 on, vireo's): no STRUCTURED_REPLY then. */
static void handshake_with_extended_headers(void **state)
{
	struct mem *m = calloc(1, sizeof(*m));
	struct nbd_stream s = stream_of(m);
	struct nbd_export_info info;
	struct error *err = NULL;
	const uint8_t *d;
	uint32_t len;
	size_t off = 4;

	greeting(m, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	opt_reply(m, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK, NULL, 0);
	meta_context(m, 0, "base:allocation");
	opt_reply(m, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK, NULL, 0);
	info_export(m, 8ull << 30, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_WRITE_ZEROES);
	info_block_size(m, 1, 4096, 32 << 20);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
	if (nbd_handshake(&s, "big", &info, &err) < 0)
		fail_msg("%s", error_msg(err));
	assert_int_equal(m->pos, m->in_len);
	assert_true(info.extended && info.structured && info.base_allocation);
	assert_int_equal(info.meta_id, 0);
	assert_true(info.size == 8ull << 30);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_EXTENDED_HEADERS);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_SET_META_CONTEXT);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_GO);
	assert_int_equal(off, m->out_len);
	free(m);
}

static void handshake_falls_back_on_an_old_server(void **state)
{
	struct mem *m = calloc(1, sizeof(*m));
	struct nbd_stream s = stream_of(m);
	struct nbd_export_info info;
	struct error *err = NULL;
	const uint8_t *d;
	uint32_t len;
	size_t off = 4;
	uint8_t zeroes[NBD_ZERO_PAD_LEN] = { 0 };

	/* fixed newstyle, but no extended headers, no structured replies, no contexts, no
	 * NBD_OPT_GO */
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	no_extended(m);
	opt_reply(m, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_UNSUP, NULL, 0);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ERR_UNSUP, "no", 2);
	put64(m, 12345);
	put16(m, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
	put(m, zeroes, sizeof(zeroes));
	if (nbd_handshake(&s, "x", &info, &err) < 0)
		fail_msg("%s", error_msg(err));
	assert_int_equal(m->pos, m->in_len);
	assert_true(info.size == 12288); /* 12345 cut to whole 512-byte blocks */
	assert_false(info.structured);
	assert_false(info.base_allocation);
	assert_int_equal(info.min_block, 512); /* the cautious default without structured */
	assert_int_equal(info.max_payload, NBD_MAX_PAYLOAD);
	assert_int_equal(nbd_get_be32(m->out), NBD_FLAG_C_FIXED_NEWSTYLE);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_EXTENDED_HEADERS);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_STRUCTURED_REPLY);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_GO);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_EXPORT_NAME);
	assert_int_equal(len, 1);
	assert_memory_equal(d, "x", 1);
	free(m);

	/* not even fixed newstyle: the export by name at once */
	m = calloc(1, sizeof(*m));
	s = stream_of(m);
	greeting(m, 0);
	put64(m, 4096);
	put16(m, NBD_FLAG_HAS_FLAGS);
	put(m, zeroes, sizeof(zeroes));
	if (nbd_handshake(&s, "", &info, &err) < 0)
		fail_msg("%s", error_msg(err));
	assert_int_equal(nbd_get_be32(m->out), 0);
	off = 4;
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_EXPORT_NAME);
	assert_int_equal(info.size, 4096);
	free(m);
}

/* A server refusing GO for an unknown export: its message shown, then a soft disconnect. */
static void unknown_export_is_named_and_aborted(void **state)
{
	struct mem *m = calloc(1, sizeof(*m));
	struct nbd_stream s = stream_of(m);
	struct nbd_export_info info;
	struct error *err = NULL;
	const uint8_t *d;
	uint32_t len;
	size_t off = 4;

	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	no_extended(m);
	opt_reply(m, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK, NULL, 0);
	opt_reply(m, NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_UNKNOWN, NULL, 0);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, "no such\x01thing", 14);
	opt_reply(m, NBD_OPT_ABORT, NBD_REP_ACK, NULL, 0);
	assert_int_equal(nbd_handshake(&s, "gone", &info, &err), -1);
	assert_non_null(strstr(error_msg(err), "no export 'gone': no such?thing"));
	error_free(err);
	sent_option(m, &off, &d, &len);
	sent_option(m, &off, &d, &len);
	sent_option(m, &off, &d, &len);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_GO);
	assert_int_equal(sent_option(m, &off, &d, &len), NBD_OPT_ABORT);
	free(m);
}

struct bad_server {
	const char *name;
	void (*script)(struct mem *m);
	const char *what;
};

static void bs_not_nbd(struct mem *m)
{
	put(m, "HTTP/1.1 400 Bad Request\r\n", 26);
}

static void bs_oldstyle(struct mem *m)
{
	put64(m, NBD_INIT_PASSWD);
	put64(m, NBD_OLDSTYLE_MAGIC);
	put16(m, 0);
}

static void bs_huge_reply(struct mem *m)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	put64(m, NBD_REP_MAGIC);
	put32(m, NBD_OPT_EXTENDED_HEADERS);
	put32(m, NBD_REP_ACK);
	put32(m, 0xffffffff);
}

static void bs_wrong_option(struct mem *m)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
}

static void bs_bad_reply_magic(struct mem *m)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	put64(m, 0x1234);
	put32(m, NBD_OPT_EXTENDED_HEADERS);
	put32(m, NBD_REP_ACK);
	put32(m, 0);
}

static void bs_endless_contexts(struct mem *m)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	no_extended(m);
	opt_reply(m, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK, NULL, 0);
	for (int i = 0; i < 70; i++)
		meta_context(m, (uint32_t)i, "x:y");
}

static void bs_go_before(struct mem *m)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	no_extended(m);
	opt_reply(m, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_POLICY, NULL, 0);
}

/* extended headers taken, then NBD_OPT_GO unknown: NBD_OPT_EXPORT_NAME is not allowed now */
static void bs_extended_no_go(struct mem *m)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	opt_reply(m, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK, NULL, 0);
	opt_reply(m, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK, NULL, 0);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ERR_UNSUP, NULL, 0);
	opt_reply(m, NBD_OPT_ABORT, NBD_REP_ACK, NULL, 0);
}

/* an ACK with data to NBD_OPT_EXTENDED_HEADERS */
static void bs_extended_ack_data(struct mem *m)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	opt_reply(m, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK, "x", 1);
}

static void bs_no_export_info(struct mem *m)
{
	bs_go_before(m);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
}

static void bs_short_export_info(struct mem *m)
{
	uint8_t b[NBD_INFO_EXPORT_LEN] = { 0 };

	bs_go_before(m);
	opt_reply(m, NBD_OPT_GO, NBD_REP_INFO, b, 10);
}

static void bs_bad_block_size(struct mem *m)
{
	bs_go_before(m);
	info_block_size(m, 3, 4096, 1 << 20);
}

static void bs_no_has_flags(struct mem *m)
{
	bs_go_before(m);
	info_export(m, 512, NBD_FLAG_SEND_FLUSH);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
}

static void bs_tls_required(struct mem *m)
{
	bs_go_before(m);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ERR_TLS_REQD, NULL, 0);
}

static void bs_shutdown(struct mem *m)
{
	greeting(m, NBD_FLAG_FIXED_NEWSTYLE);
	opt_reply(m, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ERR_SHUTDOWN, "bye", 3);
}

static void bs_cut_off(struct mem *m)
{
	bs_go_before(m);
	put64(m, NBD_REP_MAGIC);
}

static void bs_closes_on_export_name(struct mem *m)
{
	greeting(m, 0);
}

static void bs_huge_export(struct mem *m)
{
	bs_go_before(m);
	info_export(m, UINT64_MAX, NBD_FLAG_HAS_FLAGS);
	opt_reply(m, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
}

static void hostile_handshakes_are_refused_with_a_message(void **state)
{
	static const struct bad_server bad[] = {
		{ "not nbd", bs_not_nbd, "not an NBD server" },
		{ "oldstyle", bs_oldstyle, "oldstyle" },
		{ "huge reply", bs_huge_reply, "a reply of 4294967295 bytes" },
		{ "wrong option", bs_wrong_option, "a reply to option 7" },
		{ "bad magic", bs_bad_reply_magic, "bad option reply magic" },
		{ "endless contexts", bs_endless_contexts, "more than 64 replies" },
		{ "GO without export info", bs_no_export_info, "without NBD_INFO_EXPORT" },
		{ "short export info", bs_short_export_info, "NBD_INFO_EXPORT of 10 bytes" },
		{ "bad block size", bs_bad_block_size, "minimum 3" },
		{ "no HAS_FLAGS", bs_no_has_flags, "lack NBD_FLAG_HAS_FLAGS" },
		{ "TLS required", bs_tls_required, "requires TLS" },
		{ "shutting down", bs_shutdown, "NBD_REP_ERR_SHUTDOWN: bye" },
		{ "cut off", bs_cut_off, "closed the connection" },
		{ "closes on export name", bs_closes_on_export_name, "has it an export" },
		{ "huge export", bs_huge_export, "too large" },
		{ "extended, no GO", bs_extended_no_go, "extended headers but not NBD_OPT_GO" },
		{ "extended ACK with data", bs_extended_ack_data, "unexpected NBD_REP_ACK" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct mem *m = calloc(1, sizeof(*m));
		struct nbd_stream s = stream_of(m);
		struct nbd_export_info info;
		struct error *err = NULL;

		bad[i].script(m);
		if (nbd_handshake(&s, "e", &info, &err) == 0)
			fail_msg("%s: accepted", bad[i].name);
		if (!err || !strstr(error_msg(err), bad[i].what))
			fail_msg("%s: message '%s' lacks '%s'", bad[i].name,
				 err ? error_msg(err) : "(none)", bad[i].what);
		error_free(err);
		free(m);
	}
}

/* ---- replies ---- */

#define NCMD 4

struct rx {
	struct mem m;
	struct nbd_creq cmd[NCMD];
	uint64_t cookie[NCMD];
	struct nbd_reply_ctx ctx;
	uint8_t discard[NBD_REPLY_DISCARD_LEN];
	uint8_t buf[2][4096];
	struct iovec iov[2];
};

static struct nbd_creq *rx_lookup(void *opaque, uint64_t cookie)
{
	struct rx *r = opaque;

	for (int i = 0; i < NCMD; i++)
		if (r->cookie[i] == cookie && r->cmd[i].type != 0xffff)
			return &r->cmd[i];
	return NULL;
}

/* A receiver with structured replies and base:allocation (id 3), no requests yet. */
static struct rx *rx_new(bool structured)
{
	struct rx *r = calloc(1, sizeof(*r));

	for (int i = 0; i < NCMD; i++) {
		r->cmd[i].type = 0xffff;
		r->cookie[i] = 0x1000 + (uint64_t)i;
	}
	r->ctx = (struct nbd_reply_ctx){ .structured = structured, .base_allocation = structured,
					 .meta_id = 3, .lookup = rx_lookup, .opaque = r,
					 .discard = r->discard, .discard_len = sizeof(r->discard) };
	memset(r->buf, 0x55, sizeof(r->buf));
	return r;
}

/* Request @i: a read of @len bytes at @off into two 4 KiB buffers from byte 100 on. */
static struct nbd_creq *rx_read(struct rx *r, int i, uint64_t off, uint32_t len)
{
	r->iov[0] = (struct iovec){ r->buf[0], 4096 };
	r->iov[1] = (struct iovec){ r->buf[1], 4096 };
	r->cmd[i] = (struct nbd_creq){ .type = NBD_CMD_READ, .offset = off, .len = len,
				       .iov = r->iov, .iovcnt = 2, .iov_skip = 100 };
	return &r->cmd[i];
}

static struct nbd_creq *rx_cmd(struct rx *r, int i, uint16_t type, uint16_t flags, uint64_t off,
			       uint64_t len)
{
	r->cmd[i] = (struct nbd_creq){ .type = type, .flags = flags, .offset = off, .len = len };
	return &r->cmd[i];
}

static void simple(struct mem *m, uint32_t error, uint64_t cookie)
{
	put32(m, NBD_SIMPLE_REPLY_MAGIC);
	put32(m, error);
	put64(m, cookie);
}

static void chunk_hdr(struct mem *m, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t len)
{
	put32(m, NBD_STRUCTURED_REPLY_MAGIC);
	put16(m, flags);
	put16(m, type);
	put64(m, cookie);
	put32(m, len);
}

static void data_chunk(struct mem *m, uint16_t flags, uint64_t cookie, uint64_t off, uint8_t fill,
		       uint32_t n)
{
	uint8_t b[8192];

	memset(b, fill, n);
	chunk_hdr(m, flags, NBD_REPLY_TYPE_OFFSET_DATA, cookie, 8 + n);
	put64(m, off);
	put(m, b, n);
}

static void hole_chunk(struct mem *m, uint16_t flags, uint64_t cookie, uint64_t off, uint32_t n)
{
	chunk_hdr(m, flags, NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12);
	put64(m, off);
	put32(m, n);
}

static void none_chunk(struct mem *m, uint64_t cookie)
{
	chunk_hdr(m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, cookie, 0);
}

static void error_chunk(struct mem *m, uint16_t flags, uint16_t type, uint64_t cookie,
			uint32_t error, const char *msg, uint16_t mlen_claimed, uint32_t extra)
{
	uint32_t mlen = (uint32_t)strlen(msg);

	chunk_hdr(m, flags, type, cookie, 6 + mlen + extra);
	put32(m, error);
	put16(m, mlen_claimed);
	put(m, msg, mlen);
}

static void status_chunk(struct mem *m, uint16_t flags, uint64_t cookie, uint32_t id,
			 uint32_t n, const uint32_t *extents)
{
	chunk_hdr(m, flags, NBD_REPLY_TYPE_BLOCK_STATUS, cookie, 4 + 8 * n);
	put32(m, id);
	for (uint32_t i = 0; i < 2 * n; i++)
		put32(m, extents[i]);
}

/* An extended chunk header (32 bytes: the request's offset, a 64-bit length). */
static void xchunk_hdr(struct mem *m, uint16_t flags, uint16_t type, uint64_t cookie,
		       uint64_t offset, uint64_t len)
{
	put32(m, NBD_EXTENDED_REPLY_MAGIC);
	put16(m, flags);
	put16(m, type);
	put64(m, cookie);
	put64(m, offset);
	put64(m, len);
}

/* NBD_REPLY_TYPE_BLOCK_STATUS_EXT: context @id, @n extents (length, flags) claimed as @count. */
static void xstatus_chunk(struct mem *m, uint16_t flags, uint64_t cookie, uint64_t offset,
			  uint32_t id, uint32_t count, uint32_t n, const uint64_t *extents)
{
	xchunk_hdr(m, flags, NBD_REPLY_TYPE_BLOCK_STATUS_EXT, cookie, offset, 8 + 16ull * n);
	put32(m, id);
	put32(m, count);
	for (uint32_t i = 0; i < 2 * n; i++)
		put64(m, extents[i]);
}

/* Reads every message in the stream; returns the last result. */
static int read_all(struct rx *r, struct nbd_reply_result *res)
{
	struct nbd_stream s = stream_of(&r->m);

	while (r->m.pos < r->m.in_len) {
		int ret = nbd_reply_read(&s, &r->ctx, res);

		if (ret)
			return ret;
	}
	return 0;
}

/* The byte @i of the read's destination (from byte 100 of the two buffers). */
static uint8_t dest(const struct rx *r, size_t i)
{
	i += 100;
	return i < 4096 ? r->buf[0][i] : r->buf[1][i - 4096];
}

static void simple_replies(void **state)
{
	struct rx *r = rx_new(false);
	struct nbd_reply_result res;
	struct nbd_creq *c = rx_read(r, 0, 0, 5000);
	uint8_t b[5000];

	/* a read without structured replies: the data follows the header, across the buffers */
	simple(&r->m, 0, r->cookie[0]);
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)i;
	put(&r->m, b, sizeof(b));
	/* a write failing with NBD_ENOSPC, a flush with an unknown error (EINVAL) */
	rx_cmd(r, 1, NBD_CMD_WRITE, 0, 0, 512);
	simple(&r->m, NBD_ENOSPC, r->cookie[1]);
	rx_cmd(r, 2, NBD_CMD_FLUSH, 0, 0, 0);
	simple(&r->m, 9999, r->cookie[2]);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(res.done);
	assert_int_equal(c->err, 0);
	assert_true(nbd_creq_read_complete(c));
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(dest(r, i), (uint8_t)i);
	assert_int_equal(r->buf[0][99], 0x55); /* nothing before the request's bytes */
	assert_int_equal(dest(r, 5000), 0x55); /* nor after */
	assert_int_equal(r->cmd[1].err, ENOSPC);
	assert_int_equal(r->cmd[2].err, EINVAL);
	free(r);
}

static void structured_read_in_pieces(void **state)
{
	struct rx *r = rx_new(true);
	struct nbd_reply_result res;
	struct nbd_creq *c = rx_read(r, 1, 1 << 20, 6000);
	struct nbd_stream s = stream_of(&r->m);
	uint64_t base = 1 << 20;

	/* out of order: data at 3000, a hole at 0, data at 1000, data at 5000, then NONE */
	data_chunk(&r->m, 0, r->cookie[1], base + 3000, 0xcc, 2000);
	hole_chunk(&r->m, 0, r->cookie[1], base, 1000);
	data_chunk(&r->m, 0, r->cookie[1], base + 1000, 0xbb, 2000);
	data_chunk(&r->m, 0, r->cookie[1], base + 5000, 0xdd, 1000);
	none_chunk(&r->m, r->cookie[1]);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(nbd_reply_read(&s, &r->ctx, &res), 0);
		assert_false(res.done);
		assert_ptr_equal(res.cmd, c);
	}
	assert_int_equal(nbd_reply_read(&s, &r->ctx, &res), 0);
	assert_true(res.done);
	assert_int_equal(res.cookie, r->cookie[1]);
	assert_true(nbd_creq_read_complete(c));
	assert_int_equal(c->nr_pieces, 1);
	for (size_t i = 0; i < 6000; i++)
		assert_int_equal(dest(r, i), i < 1000 ? 0 : i < 3000 ? 0xbb : i < 5000 ? 0xcc : 0xdd);
	assert_int_equal(dest(r, 6000), 0x55);
	free(r);
}

/* An error chunk keeps its message; a data chunk may be the last one (DONE on it). */
static void error_chunks(void **state)
{
	struct rx *r = rx_new(true);
	struct nbd_reply_result res;
	struct nbd_creq *w = rx_cmd(r, 0, NBD_CMD_WRITE, 0, 4096, 4096);

	error_chunk(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie[0], NBD_EPERM,
		    "read-only\n", 10, 0);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(res.done);
	assert_int_equal(w->err, EPERM);
	assert_string_equal(w->msg, "read-only?");

	/* ERROR_OFFSET inside the request, then an unknown error type: the first error stays */
	r->m.in_len = r->m.pos = 0;
	rx_read(r, 1, 0, 512);
	error_chunk(&r->m, 0, NBD_REPLY_TYPE_ERROR_OFFSET, r->cookie[1], NBD_EIO, "bad sector", 10,
		    8);
	put64(&r->m, 100);
	error_chunk(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR_BIT | 77, r->cookie[1],
		    NBD_ENOMEM, "", 0, 3);
	put(&r->m, "xyz", 3);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(res.done);
	assert_int_equal(r->cmd[1].err, EIO);
	assert_string_equal(r->cmd[1].msg, "bad sector");

	/* a read whose last data chunk carries DONE */
	r->m.in_len = r->m.pos = 0;
	rx_read(r, 2, 0, 512);
	data_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[2], 0, 0x11, 512);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(res.done && nbd_creq_read_complete(&r->cmd[2]) && !r->cmd[2].err);
	free(r);
}

static void block_status_replies(void **state)
{
	static const uint32_t one[] = { 65536, NBD_STATE_HOLE | NBD_STATE_ZERO };
	static const uint32_t three[] = { 4096, 0, 4096, NBD_STATE_ZERO, 8192, 0 };
	struct rx *r = rx_new(true);
	struct nbd_reply_result res;
	struct nbd_creq *c = rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 1 << 20);

	status_chunk(&r->m, 0, r->cookie[0], 3, 1, one);
	none_chunk(&r->m, r->cookie[0]);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(res.done && c->got_status);
	assert_int_equal(c->status_len, 65536);
	assert_int_equal(c->status_flags, NBD_STATE_HOLE | NBD_STATE_ZERO);

	/* without REQ_ONE the first extent counts, the others are read past */
	r->m.in_len = r->m.pos = 0;
	c = rx_cmd(r, 1, NBD_CMD_BLOCK_STATUS, 0, 0, 4096);
	status_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[1], 3, 3, three);
	simple(&r->m, 0, r->cookie[2]);
	rx_cmd(r, 2, NBD_CMD_FLUSH, 0, 0, 0);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(c->got_status);
	assert_int_equal(c->status_len, 4096);
	assert_int_equal(c->status_flags, 0);
	assert_true(res.done && res.cmd == &r->cmd[2]);
	free(r);
}

/* With extended headers: 32-byte chunks carrying the request's offset, 64-bit extents. */
static void extended_replies(void **state)
{
	static const uint64_t big[] = { 5ull << 30, NBD_STATE_HOLE | NBD_STATE_ZERO };
	static const uint64_t two[] = { 4096, 0, 1ull << 40, NBD_STATE_ZERO };
	struct rx *r = rx_new(true);
	struct nbd_reply_result res;
	struct nbd_creq *c = rx_read(r, 0, 1 << 20, 3000);
	uint64_t base = 1 << 20;
	uint8_t b[1000];

	r->ctx.extended = true;
	/* a read: a hole, then data, each header echoing the request's offset; NONE ends it */
	xchunk_hdr(&r->m, 0, NBD_REPLY_TYPE_OFFSET_HOLE, r->cookie[0], base, 12);
	put64(&r->m, base);
	put32(&r->m, 2000);
	memset(b, 0x3e, sizeof(b));
	xchunk_hdr(&r->m, 0, NBD_REPLY_TYPE_OFFSET_DATA, r->cookie[0], base, 8 + sizeof(b));
	put64(&r->m, base + 2000);
	put(&r->m, b, sizeof(b));
	xchunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r->cookie[0], base, 0);
	/* a write-zeroes of 6 GiB answered by NONE, a trim by an error */
	rx_cmd(r, 1, NBD_CMD_WRITE_ZEROES, 0, 4096, 6ull << 30);
	xchunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r->cookie[1], 4096, 0);
	rx_cmd(r, 2, NBD_CMD_TRIM, 0, 0, 1ull << 33);
	xchunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie[2], 0, 6 + 4);
	put32(&r->m, NBD_ENOSPC);
	put16(&r->m, 4);
	put(&r->m, "full", 4);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(res.done);
	assert_true(nbd_creq_read_complete(c) && !c->err);
	for (size_t i = 0; i < 3000; i++)
		assert_int_equal(dest(r, i), i < 2000 ? 0 : 0x3e);
	assert_int_equal(r->cmd[1].err, 0);
	assert_int_equal(r->cmd[2].err, ENOSPC);
	assert_string_equal(r->cmd[2].msg, "full");

	/* block status: an extent past 4 GiB under REQ_ONE; without it the first of two */
	r->m.in_len = r->m.pos = 0;
	c = rx_cmd(r, 3, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 8ull << 30);
	xstatus_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[3], 0, 3, 1, 1, big);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(res.done && c->got_status);
	assert_true(c->status_len == 5ull << 30);
	assert_int_equal(c->status_flags, NBD_STATE_HOLE | NBD_STATE_ZERO);
	r->m.in_len = r->m.pos = 0;
	c = rx_cmd(r, 3, NBD_CMD_BLOCK_STATUS, 0, 4096, 1ull << 40);
	xstatus_chunk(&r->m, 0, r->cookie[3], 4096, 3, 2, 2, two);
	xchunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r->cookie[3], 4096, 0);
	assert_int_equal(read_all(r, &res), 0);
	assert_true(res.done && c->got_status && c->status_len == 4096 && !c->status_flags);
	free(r);
}

struct bad_reply {
	const char *name;
	void (*script)(struct rx *r);
	enum nbd_reply_err err;
};

static void br_magic(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	put32(&r->m, 0xdeadbeef);
	put(&r->m, "0123456789abcdef", 16);
}

static void br_cookie(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	none_chunk(&r->m, 0x999);
}

static void br_cookie_simple(struct rx *r)
{
	simple(&r->m, 0, r->cookie[0]); /* no request in flight at all */
}

static void br_unnegotiated(struct rx *r)
{
	r->ctx.structured = false;
	rx_cmd(r, 0, NBD_CMD_WRITE, 0, 0, 512);
	none_chunk(&r->m, r->cookie[0]);
}

static void br_simple_read(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	simple(&r->m, NBD_EINVAL, r->cookie[0]);
}

static void br_simple_status(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	simple(&r->m, 0, r->cookie[0]);
}

static void br_data_for_write(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_WRITE, 0, 0, 512);
	data_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 0, 0, 512);
}

static void br_unknown_type(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	chunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, 42, r->cookie[0], 0);
}

static void br_status_for_read(struct rx *r)
{
	static const uint32_t e[] = { 512, 0 };

	rx_read(r, 0, 0, 512);
	status_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 3, 1, e);
}

static void br_none_with_payload(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_FLUSH, 0, 0, 0);
	chunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r->cookie[0], 4);
	put32(&r->m, 0);
}

static void br_none_not_done(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_FLUSH, 0, 0, 0);
	chunk_hdr(&r->m, 0, NBD_REPLY_TYPE_NONE, r->cookie[0], 0);
}

static void br_data_too_long(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	chunk_hdr(&r->m, 0, NBD_REPLY_TYPE_OFFSET_DATA, r->cookie[0], 8 + 513);
}

static void br_data_empty(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	chunk_hdr(&r->m, 0, NBD_REPLY_TYPE_OFFSET_DATA, r->cookie[0], 8);
	put64(&r->m, 0);
}

static void br_data_huge_len(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	chunk_hdr(&r->m, 0, NBD_REPLY_TYPE_OFFSET_DATA, r->cookie[0], 0xffffffff);
}

static void br_data_before(struct rx *r)
{
	rx_read(r, 0, 4096, 512);
	data_chunk(&r->m, 0, r->cookie[0], 4095, 0, 1);
}

static void br_data_past(struct rx *r)
{
	rx_read(r, 0, 4096, 512);
	data_chunk(&r->m, 0, r->cookie[0], 4096 + 256, 0, 257);
}

static void br_data_wraps(struct rx *r)
{
	rx_read(r, 0, 4096, 512);
	data_chunk(&r->m, 0, r->cookie[0], UINT64_MAX - 10, 0, 100);
}

static void br_overlap(struct rx *r)
{
	rx_read(r, 0, 0, 1024);
	data_chunk(&r->m, 0, r->cookie[0], 0, 0, 512);
	hole_chunk(&r->m, 0, r->cookie[0], 511, 2);
}

static void br_fragmented(struct rx *r)
{
	rx_read(r, 0, 0, (NBD_REPLY_MAX_PIECES + 1) * 128);
	for (uint64_t i = 0; i <= NBD_REPLY_MAX_PIECES; i++) /* every other 64 bytes */
		hole_chunk(&r->m, 0, r->cookie[0], i * 128, 64);
}

static void br_incomplete(struct rx *r)
{
	rx_read(r, 0, 0, 1024);
	data_chunk(&r->m, 0, r->cookie[0], 0, 0, 512);
	none_chunk(&r->m, r->cookie[0]);
}

static void br_incomplete_status(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	none_chunk(&r->m, r->cookie[0]);
}

static void br_hole_zero(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	hole_chunk(&r->m, 0, r->cookie[0], 0, 0);
}

static void br_hole_len(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	chunk_hdr(&r->m, 0, NBD_REPLY_TYPE_OFFSET_HOLE, r->cookie[0], 16);
	put64(&r->m, 0);
	put64(&r->m, 0);
}

static void br_hole_past(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	hole_chunk(&r->m, 0, r->cookie[0], 0, 0xffffffff);
}

static void br_msg_len(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_WRITE, 0, 0, 512);
	error_chunk(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie[0], NBD_EIO, "ab",
		    3, 0);
}

static void br_msg_len_offset(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_WRITE, 0, 0, 512);
	/* the message would run into the 8 offset bytes */
	error_chunk(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR_OFFSET, r->cookie[0], NBD_EIO,
		    "abcd", 6, 8);
	put64(&r->m, 0);
}

static void br_error_zero(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_WRITE, 0, 0, 512);
	error_chunk(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie[0], 0, "", 0, 0);
}

static void br_error_short(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_WRITE, 0, 0, 512);
	chunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie[0], 5);
	put(&r->m, "12345", 5);
}

static void br_error_huge(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_WRITE, 0, 0, 512);
	chunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie[0], 1 << 20);
}

static void br_error_offset_outside(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_TRIM, 0, 4096, 512);
	error_chunk(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR_OFFSET, r->cookie[0], NBD_EIO,
		    "", 0, 8);
	put64(&r->m, 4096 + 512);
}

static void br_error_offset_flush(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_FLUSH, 0, 0, 0);
	error_chunk(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR_OFFSET, r->cookie[0], NBD_EIO,
		    "", 0, 8);
	put64(&r->m, 0);
}

static void br_status_context(struct rx *r)
{
	static const uint32_t e[] = { 512, 0 };

	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	status_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 4, 1, e);
}

static void br_status_unselected(struct rx *r)
{
	static const uint32_t e[] = { 512, 0 };

	r->ctx.base_allocation = false;
	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	status_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 3, 1, e);
}

static void br_status_req_one_many(struct rx *r)
{
	static const uint32_t e[] = { 256, 0, 256, 1 };

	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	status_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 3, 2, e);
}

static void br_status_odd_len(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, 0, 0, 512);
	chunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, r->cookie[0], 4 + 9);
}

static void br_status_huge(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, 0, 0, 512);
	chunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, r->cookie[0],
		  4 + 8 * (NBD_MAX_EXTENTS + 1));
}

static void br_extent_zero(struct rx *r)
{
	static const uint32_t e[] = { 0, 0 };

	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	status_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 3, 1, e);
}

static void br_extent_long(struct rx *r)
{
	static const uint32_t e[] = { 1024, 0 };

	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	status_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 3, 1, e);
}

static void br_two_status(struct rx *r)
{
	static const uint32_t e[] = { 512, 0 };

	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	status_chunk(&r->m, 0, r->cookie[0], 3, 1, e);
	status_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 3, 1, e);
}

static void br_truncated(struct rx *r)
{
	rx_read(r, 0, 0, 512);
	chunk_hdr(&r->m, 0, NBD_REPLY_TYPE_OFFSET_DATA, r->cookie[0], 8 + 512);
	put64(&r->m, 0);
	put(&r->m, "only a little", 13);
}

static void br_x_simple(struct rx *r)
{
	r->ctx.extended = true;
	rx_cmd(r, 0, NBD_CMD_WRITE, 0, 0, 512);
	simple(&r->m, 0, r->cookie[0]);
}

static void br_x_structured(struct rx *r)
{
	r->ctx.extended = true;
	rx_cmd(r, 0, NBD_CMD_FLUSH, 0, 0, 0);
	none_chunk(&r->m, r->cookie[0]);
}

static void br_x_unnegotiated(struct rx *r)
{
	rx_cmd(r, 0, NBD_CMD_FLUSH, 0, 0, 0);
	xchunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r->cookie[0], 0, 0);
}

static void br_x_offset(struct rx *r)
{
	r->ctx.extended = true;
	rx_cmd(r, 0, NBD_CMD_TRIM, 0, 4096, 4096);
	xchunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r->cookie[0], 0, 0);
}

static void br_x_compact_status(struct rx *r)
{
	static const uint32_t e[] = { 512, 0 };

	r->ctx.extended = true;
	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	xchunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, r->cookie[0], 0, 12);
	put32(&r->m, 3);
	put32(&r->m, e[0]);
	put32(&r->m, e[1]);
}

static void br_x_status_without(struct rx *r)
{
	static const uint64_t e[] = { 512, 0 };

	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512);
	/* a compact chunk header announcing the extended chunk type */
	chunk_hdr(&r->m, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS_EXT, r->cookie[0], 24);
	put32(&r->m, 3);
	put32(&r->m, 1);
	put64(&r->m, e[0]);
	put64(&r->m, e[1]);
}

static void br_x_count(struct rx *r)
{
	static const uint64_t e[] = { 256, 0, 256, 1 };

	r->ctx.extended = true;
	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, 0, 0, 512);
	xstatus_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 0, 3, 3, 2, e);
}

static void br_x_extent_long(struct rx *r)
{
	static const uint64_t e[] = { 1ull << 32, 0 };

	r->ctx.extended = true;
	rx_cmd(r, 0, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 1ull << 31);
	xstatus_chunk(&r->m, NBD_REPLY_FLAG_DONE, r->cookie[0], 0, 3, 1, 1, e);
}

static void br_x_data_huge(struct rx *r)
{
	r->ctx.extended = true;
	rx_read(r, 0, 0, 512);
	xchunk_hdr(&r->m, 0, NBD_REPLY_TYPE_OFFSET_DATA, r->cookie[0], 0, 1ull << 40);
}

static void hostile_replies_are_refused_by_kind(void **state)
{
	static const struct bad_reply bad[] = {
		{ "bad magic", br_magic, NBD_REPLY_BAD_MAGIC },
		{ "unknown cookie", br_cookie, NBD_REPLY_UNKNOWN_COOKIE },
		{ "simple reply to nothing", br_cookie_simple, NBD_REPLY_UNKNOWN_COOKIE },
		{ "structured unnegotiated", br_unnegotiated, NBD_REPLY_UNNEGOTIATED },
		{ "simple reply to a read", br_simple_read, NBD_REPLY_SIMPLE_READ },
		{ "simple reply to status", br_simple_status, NBD_REPLY_SIMPLE_STATUS },
		{ "data for a write", br_data_for_write, NBD_REPLY_BAD_TYPE },
		{ "unknown type", br_unknown_type, NBD_REPLY_BAD_TYPE },
		{ "status for a read", br_status_for_read, NBD_REPLY_BAD_TYPE },
		{ "NONE with payload", br_none_with_payload, NBD_REPLY_BAD_LENGTH },
		{ "NONE not done", br_none_not_done, NBD_REPLY_NONE_NOT_DONE },
		{ "data too long", br_data_too_long, NBD_REPLY_BAD_LENGTH },
		{ "data empty", br_data_empty, NBD_REPLY_BAD_LENGTH },
		{ "data of 4 GiB", br_data_huge_len, NBD_REPLY_BAD_LENGTH },
		{ "data before", br_data_before, NBD_REPLY_OUT_OF_RANGE },
		{ "data past", br_data_past, NBD_REPLY_OUT_OF_RANGE },
		{ "data wraps", br_data_wraps, NBD_REPLY_OUT_OF_RANGE },
		{ "overlap", br_overlap, NBD_REPLY_OVERLAP },
		{ "fragmented", br_fragmented, NBD_REPLY_FRAGMENTED },
		{ "read incomplete", br_incomplete, NBD_REPLY_INCOMPLETE },
		{ "status missing", br_incomplete_status, NBD_REPLY_INCOMPLETE },
		{ "hole of 0", br_hole_zero, NBD_REPLY_ZERO_HOLE },
		{ "hole chunk of 16", br_hole_len, NBD_REPLY_BAD_LENGTH },
		{ "hole past", br_hole_past, NBD_REPLY_OUT_OF_RANGE },
		{ "message too long", br_msg_len, NBD_REPLY_BAD_MSG_LEN },
		{ "message into offset", br_msg_len_offset, NBD_REPLY_BAD_MSG_LEN },
		{ "error 0", br_error_zero, NBD_REPLY_ZERO_ERROR },
		{ "error chunk short", br_error_short, NBD_REPLY_BAD_LENGTH },
		{ "error chunk huge", br_error_huge, NBD_REPLY_BAD_LENGTH },
		{ "error offset outside", br_error_offset_outside, NBD_REPLY_OUT_OF_RANGE },
		{ "error offset in flush", br_error_offset_flush, NBD_REPLY_BAD_TYPE },
		{ "status context", br_status_context, NBD_REPLY_BAD_CONTEXT },
		{ "status unselected", br_status_unselected, NBD_REPLY_BAD_CONTEXT },
		{ "REQ_ONE, two extents", br_status_req_one_many, NBD_REPLY_BAD_LENGTH },
		{ "status odd length", br_status_odd_len, NBD_REPLY_BAD_LENGTH },
		{ "status too many", br_status_huge, NBD_REPLY_BAD_LENGTH },
		{ "extent of 0", br_extent_zero, NBD_REPLY_BAD_EXTENT },
		{ "extent past REQ_ONE", br_extent_long, NBD_REPLY_BAD_EXTENT },
		{ "two status chunks", br_two_status, NBD_REPLY_TWO_STATUS },
		{ "truncated", br_truncated, NBD_REPLY_IO },
		{ "simple after extended", br_x_simple, NBD_REPLY_WRONG_HEADER },
		{ "structured after extended", br_x_structured, NBD_REPLY_WRONG_HEADER },
		{ "extended unnegotiated", br_x_unnegotiated, NBD_REPLY_WRONG_HEADER },
		{ "extended, wrong offset", br_x_offset, NBD_REPLY_BAD_OFFSET },
		{ "extended, compact status", br_x_compact_status, NBD_REPLY_BAD_TYPE },
		{ "STATUS_EXT without extended", br_x_status_without, NBD_REPLY_BAD_TYPE },
		{ "STATUS_EXT count", br_x_count, NBD_REPLY_BAD_LENGTH },
		{ "STATUS_EXT past REQ_ONE", br_x_extent_long, NBD_REPLY_BAD_EXTENT },
		{ "extended data of 1 TiB", br_x_data_huge, NBD_REPLY_BAD_LENGTH },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct rx *r = rx_new(true);
		struct nbd_reply_result res;

		bad[i].script(r);
		if (read_all(r, &res) == 0)
			fail_msg("%s: accepted", bad[i].name);
		if (res.err != bad[i].err)
			fail_msg("%s: %s (%s), expected %s", bad[i].name, nbd_reply_err_name(res.err),
				 res.detail, nbd_reply_err_name(bad[i].err));
		assert_true(res.detail[0]);
		if (res.err == NBD_REPLY_IO)
			assert_int_equal(res.io_errno, -ECONNRESET);
		/* the read's buffers hold nothing outside the request */
		assert_int_equal(r->buf[0][99], 0x55);
		assert_int_equal(r->buf[1][4095], 0x55);
		free(r);
	}
	for (int e = 0; e < NBD_REPLY_ERR_NR; e++)
		assert_string_not_equal(nbd_reply_err_name((enum nbd_reply_err)e), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(handshake_with_a_modern_server),
		cmocka_unit_test(handshake_with_extended_headers),
		cmocka_unit_test(handshake_falls_back_on_an_old_server),
		cmocka_unit_test(unknown_export_is_named_and_aborted),
		cmocka_unit_test(hostile_handshakes_are_refused_with_a_message),
		cmocka_unit_test(simple_replies),
		cmocka_unit_test(structured_read_in_pieces),
		cmocka_unit_test(error_chunks),
		cmocka_unit_test(block_status_replies),
		cmocka_unit_test(extended_replies),
		cmocka_unit_test(hostile_replies_are_refused_by_kind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
