/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server's handshake (proto.md "Fixed newstyle negotiation" and "Option types"): the
 * greeting, the client flags, and one option at a time. Every option's data is bounded before
 * it is read (nbd_conn.c keeps at most NBD_CONN_MAX_OPTION bytes of it; a longer or unknown
 * option is skipped and refused), parsed from that buffer with every length checked against
 * what is left, and answered with a reply or an error reply; only what cannot be refused
 * (NBD_OPT_EXPORT_NAME of an export that does not exist, a broken magic, unknown client flags)
 * ends the connection. One thread at a time (nbd_conn.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/nbd_conn_priv.h"
#include "common/util.h"

/* ---- replies --------------------------------------------------------------------------------- */

/* Queues an option reply of @type to the current option with a copy of @data. */
static bool rep(struct nbd_conn *c, uint32_t type, const void *data, size_t len)
{
	struct nbd_out *o = nbd_out_new(c, NULL, NBD_OPT_REPLY_HDR_LEN);

	if (!o)
		goto oom;
	if (len) {
		o->heap = malloc(len);
		if (!o->heap) {
			free(o);
			goto oom;
		}
		memcpy(o->heap, data, len);
		o->data = o->heap;
		o->data_len = len;
	}
	nbd_encode_opt_reply_hdr(o->hdr, c->opt, type, (uint32_t)len);
	nbd_out_push(c, o);
	return true;
oom:
	nbd_conn_fail(c, "out of memory for a reply to %s", nbd_opt_name(c->opt));
	return false;
}

/* An error reply with a message for the user. */
static bool __attribute__((format(printf, 3, 4)))
rep_err(struct nbd_conn *c, uint32_t type, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return rep(c, type, msg, (size_t)MIN(MAX(n, 0), (int)sizeof(msg) - 1));
}

bool nbd_opt_greeting(struct nbd_conn *c)
{
	struct nbd_out *o = nbd_out_new(c, NULL, NBD_HANDSHAKE_LEN);

	if (!o)
		return false;
	nbd_encode_handshake(o->hdr, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	nbd_out_push(c, o);
	return true;
}

uint16_t nbd_opt_tx_flags(const struct nbd_conn *c, const struct nbd_export_desc *d)
{
	/* every connection to an export goes to the same node through the same block layer,
	 * so a flush or FUA on one covers the writes completed on all: multi-conn is safe */
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_CACHE |
		     NBD_FLAG_CAN_MULTI_CONN;

	if (d->writable)
		f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
		     NBD_FLAG_SEND_FAST_ZERO;
	else
		f |= NBD_FLAG_READ_ONLY;
	if (c->mode >= NBD_MODE_STRUCTURED)
		f |= NBD_FLAG_SEND_DF;
	/* not NBD_FLAG_BLOCK_STATUS_PAYLOAD: a BLOCK_STATUS with a payload is refused (nbd_cmd.c) */
	return f;
}

/* ---- names ----------------------------------------------------------------------------------- */

/* A NUL-terminated copy of a wire string, or NULL when it holds a NUL (no export has one). */
static char *wire_string(const uint8_t *p, size_t len)
{
	char *s;

	if (memchr(p, '\0', len))
		return NULL;
	s = malloc(len + 1);
	if (s) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

/* The export called by the @len bytes at @p; an error reply (or a failed connection) when
 * there is none. */
static struct nbd_export *find_export(struct nbd_conn *c, const uint8_t *p, size_t len,
				      char **name)
{
	struct nbd_export *exp = NULL;

	*name = NULL;
	if (memchr(p, '\0', len)) {
		rep_err(c, NBD_REP_ERR_UNKNOWN, "export names have no NUL byte");
		return NULL;
	}
	*name = wire_string(p, len);
	if (!*name) {
		nbd_conn_fail(c, "out of memory for an export name");
		return NULL;
	}
	exp = c->ops->export_get(c->opaque, *name);
	if (!exp)
		rep_err(c, NBD_REP_ERR_UNKNOWN, "export '%.256s' not present", *name);
	return exp;
}

/* The transmission phase will run on @exp (its reference is the conn's now). */
static void enter_transmission(struct nbd_conn *c, struct nbd_export *exp, const char *name)
{
	/* contexts selected for another export do not apply (proto.md, NBD_CMD_BLOCK_STATUS) */
	if (!c->meta_export || strcmp(c->meta_export, name))
		c->meta_mask = 0;
	nbd_conn_set_export(c, exp);
	c->state = NBD_CONN_HELD;
	c->want_wake = true;
	c->ops->go(c->opaque, c, exp);
}

/* ---- options --------------------------------------------------------------------------------- */

static void opt_export_name(struct nbd_conn *c, const uint8_t *p, uint32_t len)
{
	struct nbd_export *exp;
	const struct nbd_export_desc *d;
	struct nbd_out *o;
	char *name;

	if (c->mode == NBD_MODE_EXTENDED) { /* the client MUST NOT (proto.md); no reply can say no */
		nbd_conn_fail(c, "NBD_OPT_EXPORT_NAME after NBD_OPT_EXTENDED_HEADERS");
		return;
	}
	name = wire_string(p, len);
	if (!name) {
		nbd_conn_fail(c, "NBD_OPT_EXPORT_NAME: the name holds a NUL byte (or no memory)");
		return;
	}
	exp = c->ops->export_get(c->opaque, name);
	if (!exp) {
		/* this option cannot be refused with a reply: the session ends (proto.md) */
		nbd_conn_fail(c, "NBD_OPT_EXPORT_NAME: export '%.256s' not present", name);
		goto out;
	}
	d = c->ops->export_desc(exp);
	o = nbd_out_new(c, NULL, NBD_EXPORT_NAME_REPLY_LEN);
	if (o && !c->no_zeroes) {
		o->heap = calloc(1, NBD_ZERO_PAD_LEN);
		o->data = o->heap;
		o->data_len = NBD_ZERO_PAD_LEN;
	}
	if (!o || (!c->no_zeroes && !o->heap)) {
		free(o);
		c->ops->export_put(c->opaque, exp);
		nbd_conn_fail(c, "out of memory for the reply to NBD_OPT_EXPORT_NAME");
		goto out;
	}
	nbd_encode_export_name_reply(o->hdr, __atomic_load_n(&d->size, __ATOMIC_RELAXED),
				     nbd_opt_tx_flags(c, d));
	nbd_out_push(c, o);
	enter_transmission(c, exp, name);
out:
	free(name);
}

static void list_one(void *arg, const struct nbd_export_desc *d)
{
	struct nbd_conn *c = arg;
	size_t nlen = MIN(strlen(d->name), (size_t)NBD_MAX_STRING);
	size_t dlen = d->description ? MIN(strlen(d->description), (size_t)NBD_MAX_STRING) : 0;
	uint8_t *buf;

	if (c->state != NBD_CONN_HANDSHAKE)
		return; /* a reply failed */
	buf = malloc(4 + nlen + dlen);
	if (!buf) {
		nbd_conn_fail(c, "out of memory for NBD_OPT_LIST");
		return;
	}
	nbd_put_be32(buf, (uint32_t)nlen);
	memcpy(buf + 4, d->name, nlen);
	if (dlen)
		memcpy(buf + 4 + nlen, d->description, dlen); /* text for a human */
	rep(c, NBD_REP_SERVER, buf, 4 + nlen + dlen);
	free(buf);
}

static void opt_list(struct nbd_conn *c, uint32_t len)
{
	if (len) {
		rep_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
		return;
	}
	c->ops->export_list(c->opaque, list_one, c);
	if (c->state == NBD_CONN_HANDSHAKE)
		rep(c, NBD_REP_ACK, NULL, 0);
}

/* One NBD_REP_INFO: the 16-bit type, then @len bytes of @data. */
static bool rep_info_string(struct nbd_conn *c, uint16_t type, const char *s)
{
	size_t len = MIN(strlen(s), (size_t)NBD_MAX_STRING);
	uint8_t *buf = malloc(2 + len);
	bool ok;

	if (!buf) {
		nbd_conn_fail(c, "out of memory for NBD_REP_INFO");
		return false;
	}
	nbd_encode_info_string_hdr(buf, type);
	memcpy(buf + 2, s, len);
	ok = rep(c, NBD_REP_INFO, buf, 2 + len);
	free(buf);
	return ok;
}

/* NBD_OPT_INFO and NBD_OPT_GO: name length, name, number of requests, requests. */
static void opt_info_go(struct nbd_conn *c, const uint8_t *p, uint32_t len)
{
	uint8_t info_exp[NBD_INFO_EXPORT_LEN], info_bs[NBD_INFO_BLOCK_SIZE_LEN];
	bool want_name = false, want_desc = false;
	const struct nbd_export_desc *d;
	struct nbd_export *exp;
	uint32_t nlen;
	uint16_t nreq;
	char *name;

	if (len < 6) {
		rep_err(c, NBD_REP_ERR_INVALID, "%s: %u bytes of data, at least 6 needed",
			nbd_opt_name(c->opt), len);
		return;
	}
	nlen = nbd_get_be32(p);
	if (nlen > len - 6) {
		rep_err(c, NBD_REP_ERR_INVALID, "%s: a %u-byte name in %u bytes of data",
			nbd_opt_name(c->opt), nlen, len);
		return;
	}
	if (nlen > NBD_MAX_STRING) {
		rep_err(c, NBD_REP_ERR_TOO_BIG, "%s: the name is %u bytes, at most %u allowed",
			nbd_opt_name(c->opt), nlen, NBD_MAX_STRING);
		return;
	}
	nreq = nbd_get_be16(p + 4 + nlen);
	if ((uint64_t)4 + nlen + 2 + 2ull * nreq != len) {
		rep_err(c, NBD_REP_ERR_INVALID, "%s: %u information requests do not fill the %u "
			"bytes of data", nbd_opt_name(c->opt), nreq, len);
		return;
	}
	for (uint16_t i = 0; i < nreq; i++) {
		uint16_t t = nbd_get_be16(p + 4 + nlen + 2 + 2 * i);

		want_name |= t == NBD_INFO_NAME;
		want_desc |= t == NBD_INFO_DESCRIPTION;
	}
	exp = find_export(c, p + 4, nlen, &name);
	if (!exp)
		goto out;
	d = c->ops->export_desc(exp);
	nbd_encode_info_export(info_exp, &(struct nbd_info_export){
		__atomic_load_n(&d->size, __ATOMIC_RELAXED),
								   nbd_opt_tx_flags(c, d) });
	/* always sent (a client that did not ask ignores it): unaligned requests are served
	 * too, so nobody is refused for not asking (no NBD_REP_ERR_BLOCK_SIZE_REQD) */
	nbd_encode_info_block_size(info_bs, &(struct nbd_info_block_size){
					   d->min_block, d->pref_block, d->max_payload });
	if (!rep(c, NBD_REP_INFO, info_exp, sizeof(info_exp)) ||
	    !rep(c, NBD_REP_INFO, info_bs, sizeof(info_bs)) ||
	    (want_name && !rep_info_string(c, NBD_INFO_NAME, d->name)) ||
	    (want_desc && d->description &&
	     !rep_info_string(c, NBD_INFO_DESCRIPTION, d->description)) ||
	    !rep(c, NBD_REP_ACK, NULL, 0)) {
		c->ops->export_put(c->opaque, exp);
		goto out;
	}
	if (c->opt == NBD_OPT_GO)
		enter_transmission(c, exp, name);
	else
		c->ops->export_put(c->opaque, exp);
out:
	free(name);
}

/*
 * Which contexts of @d a query selects (bits of enum nbd_ctx). @list: NBD_OPT_LIST_META_CONTEXT,
 * where an empty leaf name is a wildcard of its namespace. Unknown namespaces and leaves
 * select nothing (proto.md: ignored, not an error).
 */
static unsigned int query_match(const struct nbd_export_desc *d, const uint8_t *q, size_t len,
				bool list)
{
	static const char base[] = NBD_META_NS_BASE, alloc[] = NBD_META_BASE_ALLOCATION;
	static const char qemu[] = NBD_META_NS_QEMU, dirty[] = NBD_META_QEMU_DIRTY_BITMAP_PREFIX;
	size_t dlen = sizeof(dirty) - 1;

#define IS(s) (len == sizeof(s) - 1 && !memcmp(q, s, len))
	if (IS(alloc) || (list && IS(base)))
		return 1u << NBD_CTX_BASE_ALLOCATION;
	if (list && (IS(qemu) || IS(dirty))) /* every bitmap */
		return ((1u << d->nr_bitmaps) - 1) << NBD_CTX_DIRTY_BITMAP;
	for (unsigned int k = 0; k < d->nr_bitmaps; k++)
		if (len == dlen + strlen(d->bitmaps[k]) && !memcmp(q, dirty, dlen) &&
		    !memcmp(q + dlen, d->bitmaps[k], len - dlen))
			return 1u << (NBD_CTX_DIRTY_BITMAP + k);
	return 0;
#undef IS
}

/* The name of context @ctx of @d. */
static void ctx_name(const struct nbd_export_desc *d, enum nbd_ctx ctx, char *buf, size_t len)
{
	if (ctx == NBD_CTX_BASE_ALLOCATION)
		snprintf(buf, len, "%s", NBD_META_BASE_ALLOCATION);
	else
		snprintf(buf, len, "%s%s", NBD_META_QEMU_DIRTY_BITMAP_PREFIX,
			 d->bitmaps[ctx - NBD_CTX_DIRTY_BITMAP]);
}

/* One NBD_REP_META_CONTEXT per selected context, then NBD_REP_ACK. */
static void rep_contexts(struct nbd_conn *c, const struct nbd_export_desc *d, unsigned int mask,
			 bool list)
{
	char name[NBD_MAX_STRING + 64];
	uint8_t buf[4 + sizeof(name)];

	for (unsigned int i = 0; i < NBD_CTX_COUNT; i++) {
		size_t n;

		if (!(mask & (1u << i)))
			continue;
		ctx_name(d, (enum nbd_ctx)i, name, sizeof(name));
		n = MIN(strlen(name), (size_t)NBD_MAX_STRING);
		/* listed ids are reserved (zero); a selected context's id is its index + 1 */
		nbd_put_be32(buf, list ? 0 : i + 1);
		memcpy(buf + 4, name, n);
		if (!rep(c, NBD_REP_META_CONTEXT, buf, 4 + n))
			return;
	}
	rep(c, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: export, queries. */
static void opt_meta(struct nbd_conn *c, const uint8_t *p, uint32_t len)
{
	bool list = c->opt == NBD_OPT_LIST_META_CONTEXT;
	const char *what = nbd_opt_name(c->opt);
	unsigned int mask = 0;
	struct nbd_export *exp;
	uint32_t nlen, nq;
	uint64_t pos;
	char *name;

	if (!list) { /* replaces the selection, even when it fails (proto.md) */
		free(c->meta_export);
		c->meta_export = NULL;
		c->meta_mask = 0;
	}
	if (c->mode == NBD_MODE_SIMPLE) {
		rep_err(c, NBD_REP_ERR_INVALID, "%s: negotiate structured replies or extended headers "
			"first", what);
		return;
	}
	if (len < 8 || (nlen = nbd_get_be32(p)) > len - 8) {
		rep_err(c, NBD_REP_ERR_INVALID, "%s: %u bytes of data do not hold an export name "
			"and a query count", what, len);
		return;
	}
	if (nlen > NBD_MAX_STRING) {
		rep_err(c, NBD_REP_ERR_TOO_BIG, "%s: the name is %u bytes, at most %u allowed",
			what, nlen, NBD_MAX_STRING);
		return;
	}
	nq = nbd_get_be32(p + 4 + nlen);
	if (nq > NBD_MAX_META_QUERIES) {
		rep_err(c, NBD_REP_ERR_TOO_BIG, "%s: %u queries, at most %u allowed", what, nq,
			NBD_MAX_META_QUERIES);
		return;
	}
	pos = 8 + (uint64_t)nlen;
	for (uint32_t i = 0; i < nq; i++) { /* syntax first: nothing is sent for a bad request */
		uint32_t ql;

		if (pos + 4 > len || (ql = nbd_get_be32(p + pos)) > len - pos - 4) {
			rep_err(c, NBD_REP_ERR_INVALID, "%s: query %u runs past the option's data",
				what, i);
			return;
		}
		pos += 4 + (uint64_t)ql;
	}
	if (pos != len) {
		rep_err(c, NBD_REP_ERR_INVALID, "%s: %" PRIu64 " bytes after the last query", what,
			len - pos);
		return;
	}
	exp = find_export(c, p + 4, nlen, &name);
	if (!exp)
		goto out;
	{
		const struct nbd_export_desc *d = c->ops->export_desc(exp);

		pos = 8 + (uint64_t)nlen;
		for (uint32_t i = 0; i < nq; i++) {
			uint32_t ql = nbd_get_be32(p + pos);

			mask |= query_match(d, p + pos + 4, ql, list);
			pos += 4 + (uint64_t)ql;
		}
		if (list && !nq) /* everything the export has */
			mask = 1u << NBD_CTX_BASE_ALLOCATION |
			       ((1u << d->nr_bitmaps) - 1) << NBD_CTX_DIRTY_BITMAP;
		rep_contexts(c, d, mask, list);
	}
	c->ops->export_put(c->opaque, exp);
	if (!list && c->state == NBD_CONN_HANDSHAKE && mask) {
		c->meta_export = name;
		c->meta_mask = mask;
		name = NULL;
	}
out:
	free(name);
}

static void opt_starttls(struct nbd_conn *c, uint32_t len)
{
	if (!c->tls_required) {
		rep_err(c, NBD_REP_ERR_UNSUP, "TLS is not configured on this server");
		return;
	}
	if (c->tls_active) {
		rep_err(c, NBD_REP_ERR_INVALID, "TLS is already running");
		return;
	}
	if (len) {
		rep_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
		return;
	}
	if (c->rlen) { /* the client MUST wait for the reply before its TLS handshake */
		nbd_conn_fail(c, "the client sent data after NBD_OPT_STARTTLS before its reply");
		return;
	}
	if (!rep(c, NBD_REP_ACK, NULL, 0))
		return;
	/* nothing negotiated in plaintext survives the upgrade (proto.md) */
	c->mode = NBD_MODE_SIMPLE;
	free(c->meta_export);
	c->meta_export = NULL;
	c->meta_mask = 0;
	c->rx = NBD_RX_OPT_HDR; /* the next option comes encrypted */
	c->state = NBD_CONN_STARTTLS;
	c->want_wake = true;
	c->ops->starttls(c->opaque, c);
}

static void opt_structured(struct nbd_conn *c, uint32_t len)
{
	if (len) {
		rep_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
		return;
	}
	if (c->mode == NBD_MODE_EXTENDED) { /* no way back to compact headers (proto.md) */
		rep_err(c, NBD_REP_ERR_EXT_HEADER_REQD, "extended headers are already negotiated");
		return;
	}
	c->mode = NBD_MODE_STRUCTURED;
	rep(c, NBD_REP_ACK, NULL, 0);
}

/* Extended headers (proto.md's EXTENDED_HEADERS extension): structured replies with them, after
 * structured replies or without. Contexts selected before stay: all of ours have 32-bit status,
 * which BLOCK_STATUS_EXT carries as well. */
static void opt_extended(struct nbd_conn *c, uint32_t len)
{
	if (len) {
		rep_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_EXTENDED_HEADERS takes no data");
		return;
	}
	c->mode = NBD_MODE_EXTENDED;
	rep(c, NBD_REP_ACK, NULL, 0);
}

static void opt_abort(struct nbd_conn *c)
{
	/* the client may not wait for it (proto.md): the send may fail, that is fine */
	if (rep(c, NBD_REP_ACK, NULL, 0))
		c->state = NBD_CONN_DRAINING;
}

/* Runs the option whose data (opt_len bytes) is in opt_buf. */
static void opt_run(struct nbd_conn *c)
{
	const uint8_t *p = c->opt_buf ? c->opt_buf : (const uint8_t *)"";
	uint32_t len = c->opt_len;

	switch (c->opt) {
	case NBD_OPT_EXPORT_NAME:
		opt_export_name(c, p, len);
		break;
	case NBD_OPT_ABORT:
		opt_abort(c);
		break;
	case NBD_OPT_LIST:
		opt_list(c, len);
		break;
	case NBD_OPT_STARTTLS:
		opt_starttls(c, len);
		break;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		opt_info_go(c, p, len);
		break;
	case NBD_OPT_STRUCTURED_REPLY:
		opt_structured(c, len);
		break;
	case NBD_OPT_EXTENDED_HEADERS:
		opt_extended(c, len);
		break;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		opt_meta(c, p, len);
		break;
	default: /* not reached: opt_begin skips options it does not know */
		rep_err(c, NBD_REP_ERR_UNSUP, "option %u is not supported", c->opt);
		break;
	}
}

static bool known(uint32_t opt)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
	case NBD_OPT_ABORT:
	case NBD_OPT_LIST:
	case NBD_OPT_STARTTLS:
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
	case NBD_OPT_STRUCTURED_REPLY:
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
	case NBD_OPT_EXTENDED_HEADERS:
		return true;
	default:
		return false;
	}
}

/* The header of option @opt with @len bytes of data arrived. */
static void opt_begin(struct nbd_conn *c, uint32_t opt, uint32_t len)
{
	c->opt = opt;
	c->opt_len = len;
	c->opt_got = 0;
	if (!c->fixed && opt != NBD_OPT_EXPORT_NAME) {
		/* without fixed newstyle there is no way to refuse an option */
		nbd_conn_fail(c, "%s from a client without fixed newstyle negotiation",
			      nbd_opt_name(opt));
		return;
	}
	if (c->tls_required && !c->tls_active && opt != NBD_OPT_STARTTLS &&
	    opt != NBD_OPT_ABORT) {
		if (opt == NBD_OPT_EXPORT_NAME) { /* it cannot be refused with a reply */
			nbd_conn_fail(c, "NBD_OPT_EXPORT_NAME before TLS, which this server requires");
			return;
		}
		nbd_conn_skip(c, len, NBD_SKIP_OPT_REPLY, NBD_REP_ERR_TLS_REQD,
			      "this server requires TLS: send NBD_OPT_STARTTLS first");
		return;
	}
	if (opt == NBD_OPT_EXPORT_NAME && len > NBD_MAX_STRING) {
		nbd_conn_fail(c, "NBD_OPT_EXPORT_NAME: a %u-byte name (at most %u)", len,
			      NBD_MAX_STRING);
		return;
	}
	if (opt == NBD_OPT_ABORT) { /* data ignored (proto.md) */
		nbd_conn_skip(c, len, NBD_SKIP_ABORT, 0, NULL);
		return;
	}
	if (!known(opt)) {
		nbd_conn_skip(c, len, NBD_SKIP_OPT_REPLY, NBD_REP_ERR_UNSUP,
			      "this option is not supported");
		return;
	}
	if (len > NBD_CONN_MAX_OPTION) {
		nbd_conn_skip(c, len, NBD_SKIP_OPT_REPLY, NBD_REP_ERR_TOO_BIG,
			      "the option's data is longer than this server accepts");
		return;
	}
	c->opt_buf = len ? malloc(len) : NULL;
	if (len && !c->opt_buf) {
		nbd_conn_fail(c, "out of memory for %u bytes of option data", len);
		return;
	}
	c->rx = NBD_RX_OPT_DATA;
}

void nbd_opt_skip_done(struct nbd_conn *c)
{
	c->rx = NBD_RX_OPT_HDR;
	if (c->skip_then == NBD_SKIP_ABORT)
		opt_abort(c);
	else
		rep_err(c, c->skip_err, "%s: %s", nbd_opt_name(c->opt), c->skip_msg);
}

bool nbd_opt_step(struct nbd_conn *c)
{
	const uint8_t *p = c->rbuf + c->rpos;
	struct nbd_opt_hdr h;
	uint32_t flags;

	switch (c->rx) {
	case NBD_RX_CLIENT_FLAGS:
		if (c->rlen < NBD_CLIENT_FLAGS_LEN)
			return false;
		flags = nbd_get_be32(p);
		c->rpos += NBD_CLIENT_FLAGS_LEN;
		c->rlen -= NBD_CLIENT_FLAGS_LEN;
		if (flags & ~NBD_FLAG_C_KNOWN) { /* the server MUST drop the connection */
			nbd_conn_fail(c, "unknown client flags 0x%x", flags & ~NBD_FLAG_C_KNOWN);
			return false;
		}
		c->fixed = flags & NBD_FLAG_C_FIXED_NEWSTYLE;
		c->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
		c->rx = NBD_RX_OPT_HDR;
		return true;
	case NBD_RX_OPT_HDR:
		if (c->rlen < NBD_OPT_HDR_LEN)
			return false;
		nbd_decode_opt_hdr(p, &h);
		c->rpos += NBD_OPT_HDR_LEN;
		c->rlen -= NBD_OPT_HDR_LEN;
		if (h.magic != NBD_OPTS_MAGIC) {
			nbd_conn_fail(c, "bad option magic 0x%016" PRIx64, h.magic);
			return false;
		}
		opt_begin(c, h.option, h.len);
		/* no data: run it now */
		if (c->rx == NBD_RX_OPT_DATA && !c->opt_len)
			return nbd_opt_step(c);
		return c->state == NBD_CONN_HANDSHAKE;
	case NBD_RX_OPT_DATA: /* all of it is in opt_buf */
		opt_run(c);
		free(c->opt_buf);
		c->opt_buf = NULL;
		if (c->state == NBD_CONN_HANDSHAKE)
			c->rx = NBD_RX_OPT_HDR;
		return c->state == NBD_CONN_HANDSHAKE;
	default:
		return false;
	}
}
