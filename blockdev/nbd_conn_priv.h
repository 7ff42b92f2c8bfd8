/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inside of an NBD connection (nbd_conn.h), shared by nbd_conn.c (buffers, output queue,
 * requests' lifetime), nbd_opt.c (the handshake) and nbd_cmd.c (the transmission phase). One
 * thread at a time; see nbd_conn.h.
 */
#ifndef VIREO_BLOCKDEV_NBD_CONN_PRIV_H
#define VIREO_BLOCKDEV_NBD_CONN_PRIV_H

#include "blockdev/nbd_conn.h"

#define NBD_CONN_RBUF 65536u /* the conn's receive buffer: headers, options, small payloads */
/* Payload and read buffers are powers of two from 4 KiB (class 0) to NBD_MAX_PAYLOAD; a freed
 * one is kept for the next request while the conn keeps less than NBD_CONN_BUF_CACHE bytes.
 * Fresh large buffers cost page faults and zeroing on every request (a third of the server's
 * time in an nbdcopy read before the cache). */
#define NBD_BUF_MIN_SHIFT 12
#define NBD_BUF_CLASSES (25 - NBD_BUF_MIN_SHIFT + 1)
#define NBD_CONN_BUF_CACHE (16u << 20)

/* What the bytes coming in are. */
enum nbd_rx {
	NBD_RX_CLIENT_FLAGS,  /* 32-bit client flags */
	NBD_RX_OPT_HDR,       /* IHAVEOPT, option, length */
	NBD_RX_OPT_DATA,      /* option data, into opt_buf */
	NBD_RX_REQ_HDR,       /* a request header */
	NBD_RX_PAYLOAD,       /* a write's payload, into cur->buf */
	NBD_RX_SKIP,          /* bytes to drop (an option or payload refused), then skip_done() */
};

/* One piece of output: a header kept inline and optional data elsewhere. */
struct nbd_out {
	struct nbd_out *next;
	struct nbd_io *io;    /* the request whose reply this is (released when sent), or NULL */
	uint8_t *heap;        /* freed once sent (data may point into it) */
	const uint8_t *data;  /* NULL when @pipe */
	int pipe;             /* 0, or 1 + the transport's pipe the data waits in (nbd_io.pipe) */
	size_t hdr_len, data_len;
	size_t sent;          /* of hdr_len + data_len */
	uint8_t hdr[48];      /* the longest: an extended reply header + a hole's payload (44) */
};

/* The transmission phase's messages, as the handshake negotiated them (each implies the ones
 * before it: extended headers carry structured replies). */
enum nbd_mode {
	NBD_MODE_SIMPLE,      /* compact requests, simple replies */
	NBD_MODE_STRUCTURED,  /* NBD_OPT_STRUCTURED_REPLY: compact requests, structured replies */
	NBD_MODE_EXTENDED,    /* NBD_OPT_EXTENDED_HEADERS: 32-byte requests and reply headers only */
};

/* What happens once a skip ends. */
enum nbd_skip_then {
	NBD_SKIP_OPT_REPLY,   /* reply skip_err to option opt (data too long / unknown option) */
	NBD_SKIP_ABORT,       /* NBD_OPT_ABORT's data: ACK and drain */
	NBD_SKIP_REQ_REPLY,   /* a refused write's payload: reply skip_err to cur */
};

struct nbd_conn {
	const struct nbd_conn_ops *ops;
	void *opaque;
	size_t priv_size;
	struct nbd_conn_limits lim;
	char peer[64];
	char reason[192];
	enum nbd_conn_state state;

	/* input: valid bytes are rbuf[rpos, rpos + rlen) */
	uint8_t *rbuf;
	size_t rpos, rlen;
	enum nbd_rx rx;
	bool stalled;          /* a request header waits for room (lim) */

	/* the option being received */
	uint32_t opt, opt_len, opt_got;
	uint8_t *opt_buf;
	/* a skip in progress */
	uint64_t skip;
	enum nbd_skip_then skip_then;
	uint32_t skip_err;
	const char *skip_msg;

	/* the write whose payload is being received, or whose payload is skipped */
	struct nbd_io *cur;
	uint64_t cur_got;

	/* negotiated */
	bool tls_required;     /* FORCEDTLS: nothing but STARTTLS and ABORT before TLS */
	bool tls_active;       /* STARTTLS succeeded */
	bool fixed;            /* the client set NBD_FLAG_C_FIXED_NEWSTYLE */
	bool no_zeroes;
	enum nbd_mode mode;
	char *meta_export;     /* NBD_OPT_SET_META_CONTEXT's export, NULL: none */
	unsigned int meta_mask;
	struct nbd_export *exp;
	const struct nbd_export_desc *desc;
	uint16_t tx_flags;

	/* output */
	struct nbd_out *out_head, **out_tail;
	size_t out_bytes;

	/* requests: every nbd_io allocated, and those at the backend */
	unsigned int nr_io, at_backend;
	size_t io_bytes;
	struct nbd_io *io_cache;
	unsigned int nr_io_cache;
	void *buf_cache[NBD_BUF_CLASSES]; /* singly linked through each buffer's first word */
	size_t buf_cached;

	/* entry points: work is finished at the outermost one's end */
	unsigned int depth;
	bool want_wake, want_process;
};

/* nbd_conn.c */
struct nbd_out *nbd_out_new(struct nbd_conn *c, struct nbd_io *io, size_t hdr_len);
void nbd_out_push(struct nbd_conn *c, struct nbd_out *o);
void nbd_conn_fail(struct nbd_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nbd_conn_skip(struct nbd_conn *c, uint64_t n, enum nbd_skip_then then, uint32_t err,
		   const char *msg);
struct nbd_io *nbd_io_new(struct nbd_conn *c);
/* A 4 KiB-aligned buffer of at least @len bytes (len <= NBD_MAX_PAYLOAD), or NULL. */
uint8_t *nbd_buf_get(struct nbd_conn *c, size_t len);
void nbd_io_put(struct nbd_conn *c, struct nbd_io *io);
void nbd_conn_set_export(struct nbd_conn *c, struct nbd_export *exp);

/* nbd_opt.c: the handshake */
bool nbd_opt_greeting(struct nbd_conn *c);
/* Consumes what it can of rbuf in the handshake states; false when it needs more bytes. */
bool nbd_opt_step(struct nbd_conn *c);
void nbd_opt_skip_done(struct nbd_conn *c);
/* The transmission flags of @d for this connection. */
uint16_t nbd_opt_tx_flags(const struct nbd_conn *c, const struct nbd_export_desc *d);

/* nbd_cmd.c: the transmission phase */
bool nbd_cmd_step(struct nbd_conn *c);
void nbd_cmd_skip_done(struct nbd_conn *c);
void nbd_cmd_reply(struct nbd_conn *c, struct nbd_io *io);

/*
 * nbd_cmd_check - the pure check of one request against its connection (fuzzed)
 * @r: the decoded request
 * @d: the export
 * @tx_flags: the transmission flags the client was given
 * @mode: what was negotiated (the header @r came in: compact, or extended)
 * @meta_mask: metadata contexts selected for this export
 * @msg: set to a message for the client when refused
 *
 * Returns 0 (go ahead), an NBD_E* error for the client, or -1: the client broke the framing
 * (a magic other than @mode's, or a payload beyond the export's maximum whose bytes we will not
 * read): hard disconnect. A refused request's payload (nbd_cmd_payload) is still read and
 * dropped before the error goes out.
 */
int nbd_cmd_check(const struct nbd_request *r, const struct nbd_export_desc *d, uint16_t tx_flags,
		  enum nbd_mode mode, unsigned int meta_mask, const char **msg);
/* The payload bytes that follow request @r's header in @mode: a write's length, or an extended
 * request's length when it has NBD_CMD_FLAG_PAYLOAD_LEN; else 0. */
uint64_t nbd_cmd_payload(const struct nbd_request *r, enum nbd_mode mode);

#endif
