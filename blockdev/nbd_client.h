/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD client's pieces (the driver itself is blockdev/nbd_driver.c):
 *   nbd_uri.c     where an export is: the filenames nbd://, nbd+unix://, nbd:HOST:PORT, and
 *                 the --blockdev keys server.type/host/port/path + export
 *   nbd_client.c  connecting and the fixed-newstyle handshake, over a byte stream (with
 *                 NBD_OPT_STARTTLS first when the node has tls-creds)
 *   nbd_tls_client.c  the TLS session the stream then goes through (GnuTLS)
 *   nbd_reply.c   the transmission phase's replies, read and checked against the request
 *                 they answer (pure: a byte stream in, the request's result out; fuzzed)
 * Everything a server sends is hostile: every length is bounded before anything is read into
 * memory, every offset is checked against the request it answers, and a reply that breaks the
 * protocol ends the connection with a message naming what was wrong.
 */
#ifndef VIREO_BLOCKDEV_NBD_CLIENT_H
#define VIREO_BLOCKDEV_NBD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blockdev/nbd_proto.h"
#include "common/error.h"

struct json_object;

/* ---- where the export is (nbd_uri.c) ----------------------------------------------------- */

enum nbd_addr_type {
	NBD_ADDR_INET,
	NBD_ADDR_UNIX,
};

/**
 * struct nbd_target - a server address and an export name, all malloc'd
 * @type: TCP or a unix socket
 * @host: INET: host name or address (an IPv6 address without its brackets)
 * @port: INET: port number or service name ("10809" when not given)
 * @path: UNIX: the socket's path
 * @export: the export name ("" is the server's default export)
 */
struct nbd_target {
	enum nbd_addr_type type;
	char *host;
	char *port;
	char *path;
	char *export;
};

/* true when @filename names an NBD export rather than a host file (by its nbd: prefix) */
bool nbd_uri_is(const char *filename);

/**
 * nbd_uri_parse - the target of an NBD filename
 * @filename: nbd://HOST[:PORT][/EXPORT], nbd+tcp://..., nbd+unix:///EXPORT?socket=PATH,
 *            nbd:HOST:PORT[:exportname=EXPORT] or nbd:unix:PATH[:exportname=EXPORT]
 *            (percent escapes are decoded in the URI forms' export and socket)
 * @t: filled on success (free with nbd_target_free), zeroed on failure
 *
 * Returns 0, or -1 with a message naming what is wrong with the filename.
 */
int nbd_uri_parse(const char *filename, struct nbd_target *t, struct error **errp);

/**
 * nbd_target_from_json - the target of QEMU's BlockdevOptionsNbd keys
 * @o: the node's object; "server" ({"type": "inet", "host", "port"} or {"type": "unix",
 *     "path"}) and "export" are taken from it (keyval_take_*), other keys are left
 * @where: for messages
 */
int nbd_target_from_json(struct json_object *o, struct nbd_target *t, const char *where,
			 struct error **errp);

/* The filename naming @t as QEMU shows an NBD node's (nbd://host[:port][/export],
 * nbd+unix://[/export]?socket=...; unusual bytes percent-escaped), malloc'd; NULL when out of
 * memory. nbd_uri_parse() gives @t back from it. */
char *nbd_target_uri(const struct nbd_target *t);

void nbd_target_free(struct nbd_target *t);

/* ---- a byte stream (a socket, or memory in tests and fuzzing) ------------------------------ */

/**
 * struct nbd_stream - how the handshake and the reply reader move bytes
 * @read: fill @buf with exactly @len bytes: 0, or -errno (-ECONNRESET at end of stream,
 *        -ETIMEDOUT when the peer is silent too long, -EPROTO when TLS failed)
 * @readv: the same into an iovec array (the bytes of @iov in order)
 * @write: send exactly @len bytes: 0 or -errno
 * @why: optional: what an -EPROTO was (a TLS stream's failure), or NULL
 */
struct nbd_stream {
	int (*read)(void *opaque, void *buf, size_t len);
	int (*readv)(void *opaque, const struct iovec *iov, int iovcnt);
	int (*write)(void *opaque, const void *buf, size_t len);
	void *opaque;
	const char *(*why)(void *opaque);
};

/* A connected socket and the bytes read from it ahead of its reader. */
struct nbd_socket {
	int fd;
	size_t pos, len;
	uint8_t buf[16384];
};

/* A stream over the blocking socket @fd, reading through @sk's buffer. */
void nbd_stream_socket(struct nbd_stream *s, struct nbd_socket *sk, int fd);

/* ---- TLS (nbd_tls_client.c) ---------------------------------------------------------------- */

struct nbd_tls_creds;
struct nbd_tls_client;

/**
 * nbd_tls_client_start - the client's side of the TLS handshake, after NBD_OPT_STARTTLS
 * @creds: client credentials (endpoint=client: nbd_tls_creds_x509_client_new / _psk_client_new)
 * @fd: the connected socket, blocking, with the handshake's timeouts
 * @hostname: x509 with verify-peer: the name the server's certificate must hold (NULL: the
 *            CA's signature only)
 *
 * Returns the session, or NULL with a message saying what failed: the certificate check (what
 * was wrong with it), an alert from the server, a key the server did not take.
 *
 * A session is used by two threads at most: one reads (its stream's read/readv), one at a time
 * writes (nbd_tls_client_writev, the stream's write, nbd_tls_client_bye); see nbd_tls_client.c.
 */
struct nbd_tls_client *nbd_tls_client_start(struct nbd_tls_creds *creds, int fd,
					    const char *hostname, struct error **errp);

/* A stream through the session (its read side and its write side). */
void nbd_tls_client_stream(struct nbd_stream *s, struct nbd_tls_client *t);

/* Sends the bytes of @iov (whole TLS records of them): 0, or -errno (-EPROTO: TLS failed). */
int nbd_tls_client_writev(struct nbd_tls_client *t, const struct iovec *iov, int iovcnt);

/* The last TLS failure's text ("" if none). */
const char *nbd_tls_client_error(const struct nbd_tls_client *t);

/* The close_notify (best effort; by the writing side). */
void nbd_tls_client_bye(struct nbd_tls_client *t);

/* Frees the session (neither side uses it any more; the socket is the caller's). */
void nbd_tls_client_free(struct nbd_tls_client *t);

/* ---- connecting and the handshake (nbd_client.c) ----------------------------------------- */

/**
 * struct nbd_export_info - what the handshake agreed on
 * @size: the export's size in bytes
 * @flags: its transmission flags (NBD_FLAG_*)
 * @structured: structured replies were negotiated (extended headers carry them too)
 * @extended: extended headers were negotiated (NBD_OPT_EXTENDED_HEADERS): 32-byte requests and
 *            replies, 64-bit lengths
 * @meta_id: the context id of base:allocation (valid when @base_allocation)
 * @base_allocation: the server selected base:allocation (block status works)
 * @min_block, @pref_block, @max_payload: size constraints (the server's, or the defaults)
 * @block_size_given: the server sent NBD_INFO_BLOCK_SIZE
 */
struct nbd_export_info {
	uint64_t size;
	uint16_t flags;
	bool structured;
	bool extended;
	bool base_allocation;
	uint32_t meta_id;
	uint32_t min_block, pref_block, max_payload;
	bool block_size_given;
};

/* The largest request payload the client sends (and a server may send back in one chunk). */
#define NBD_CLIENT_MAX_PAYLOAD NBD_MAX_PAYLOAD
/* The longest option reply the client reads (a message, a context name: a string + header). */
#define NBD_CLIENT_MAX_OPT_REPLY (NBD_MAX_STRING + 64u)

/**
 * nbd_handshake - fixed newstyle negotiation up to the transmission phase
 * @s: the connection
 * @export: the export's name
 * @info: filled on success
 * @errp: what failed, with the server's message when it sent one
 *
 * Asks for extended headers (or, refused, structured replies), then for base:allocation, then
 * NBD_OPT_GO with NBD_INFO_BLOCK_SIZE. A server that refuses extended headers, structured
 * replies or metadata contexts is used without them; one that does not know NBD_OPT_GO (or is
 * not fixed newstyle) gets NBD_OPT_EXPORT_NAME. Returns 0 or -1.
 */
int nbd_handshake(const struct nbd_stream *s, const char *export, struct nbd_export_info *info,
		  struct error **errp);

/**
 * struct nbd_starttls - TLS for nbd_handshake_tls
 * @start: the server accepted NBD_OPT_STARTTLS: run the TLS handshake and make *@s a stream
 *         through the session; 0, or -1 with a message
 * @opaque: for @start
 */
struct nbd_starttls {
	int (*start)(void *opaque, struct nbd_stream *s, struct error **errp);
	void *opaque;
};

/**
 * nbd_handshake_tls - nbd_handshake, over TLS when @tls is given
 *
 * With @tls, NBD_OPT_STARTTLS goes first, and everything after its NBD_REP_ACK (the rest of
 * the negotiation and, through the stream @tls made, the transmission phase) runs over TLS.
 * A server that is not fixed newstyle or refuses STARTTLS is refused: never plaintext.
 * *@s is the stream to go on with afterwards (the TLS one).
 */
int nbd_handshake_tls(struct nbd_stream *s, const char *export, const struct nbd_starttls *tls,
		      struct nbd_export_info *info, struct error **errp);

/**
 * nbd_connect - a connected socket to @t's server
 * @timeout_ms: for the connection and (as socket timeouts) for the handshake after it
 *
 * Returns the fd (blocking, close-on-exec, with the send/receive timeouts set: clear them with
 * nbd_socket_timeouts(fd, 0) once the handshake is done), or -1 with a message.
 */
int nbd_connect(const struct nbd_target *t, unsigned int timeout_ms, struct error **errp);
/* Sets (0: clears) @fd's send and receive timeouts. */
void nbd_socket_timeouts(int fd, unsigned int timeout_ms);

/* ---- replies in the transmission phase (nbd_reply.c) ------------------------------------- */

/* Byte ranges of a read that arrived in chunks; disjoint, each [start, end) in the request. */
#define NBD_REPLY_MAX_PIECES 32

/**
 * struct nbd_creq - one request as the reply reader sees it
 * @type: NBD_CMD_READ, WRITE, FLUSH, TRIM, WRITE_ZEROES or BLOCK_STATUS
 * @flags: the request's NBD_CMD_FLAG_*
 * @offset, @len: the request's range (READ and WRITE: at most the maximum payload; more than
 *                4 GiB only with extended headers)
 * @iov, @iovcnt, @iov_skip: READ: where the data goes (bytes @iov_skip.. of @iov)
 * The rest is the reader's, zeroed before the request is sent:
 * @err: the first error the server reported (a positive errno), 0 if none
 * @msg: its message, if it sent one (NUL-terminated, cut to fit)
 * @pieces, @nr_pieces: READ: the ranges received, relative to @offset, merged when adjacent
 * @status_flags, @status_len: BLOCK_STATUS: the first extent of the base:allocation context
 *                             (its flags' low 32 bits: base:allocation has no more)
 * @got_status: BLOCK_STATUS: that extent arrived
 */
struct nbd_creq {
	uint16_t type;
	uint16_t flags;
	uint64_t offset;
	uint64_t len;
	const struct iovec *iov;
	int iovcnt;
	uint64_t iov_skip;

	int err;
	char msg[128];
	struct {
		uint32_t start, end;
	} pieces[NBD_REPLY_MAX_PIECES];
	unsigned int nr_pieces;
	uint32_t status_flags;
	uint64_t status_len;
	bool got_status;
};

/* Why a reply broke the protocol (the connection cannot go on after one). */
enum nbd_reply_err {
	NBD_REPLY_OK = 0,
	NBD_REPLY_IO,             /* the stream failed (the errno is returned apart) */
	NBD_REPLY_BAD_MAGIC,
	NBD_REPLY_UNKNOWN_COOKIE,
	NBD_REPLY_UNNEGOTIATED,   /* a structured reply though none was negotiated */
	NBD_REPLY_SIMPLE_READ,    /* a simple reply to a read after structured replies */
	NBD_REPLY_SIMPLE_STATUS,  /* a successful simple reply to BLOCK_STATUS */
	NBD_REPLY_BAD_TYPE,       /* a chunk type unknown, or wrong for the request */
	NBD_REPLY_BAD_LENGTH,     /* a chunk's length wrong for its type, or too long */
	NBD_REPLY_NONE_NOT_DONE,  /* NBD_REPLY_TYPE_NONE without NBD_REPLY_FLAG_DONE */
	NBD_REPLY_OUT_OF_RANGE,   /* data, a hole or an error offset outside the request */
	NBD_REPLY_OVERLAP,        /* content that overlaps content received before */
	NBD_REPLY_FRAGMENTED,     /* more disjoint pieces than the client tracks */
	NBD_REPLY_ZERO_HOLE,
	NBD_REPLY_BAD_MSG_LEN,    /* an error message longer than its chunk */
	NBD_REPLY_ZERO_ERROR,     /* an error chunk whose error is 0 */
	NBD_REPLY_BAD_CONTEXT,    /* block status for a context that was not selected */
	NBD_REPLY_BAD_EXTENT,     /* an extent of length 0, or longer than the request */
	NBD_REPLY_TWO_STATUS,     /* a second status chunk for the context */
	NBD_REPLY_INCOMPLETE,     /* a successful end before the request was answered whole */
	NBD_REPLY_WRONG_HEADER,   /* a compact reply after extended headers, or the reverse */
	NBD_REPLY_BAD_OFFSET,     /* an extended header whose offset is not its request's */
	NBD_REPLY_ERR_NR,
};

/* A human name of @err ("chunk outside the request", ...). */
const char *nbd_reply_err_name(enum nbd_reply_err err);

/**
 * struct nbd_reply_ctx - what the reader needs besides the stream
 * @structured: structured replies were negotiated
 * @extended: extended headers were negotiated (then @structured too): only extended chunks
 * @meta_id: the base:allocation context id (when @base_allocation)
 * @base_allocation: a context was selected
 * @lookup: the in-flight request with @cookie, or NULL (the request stays valid until the
 *          reader reports it complete)
 * @opaque: for @lookup
 * @discard: scratch space for payload the client does not keep, NBD_REPLY_DISCARD_LEN bytes
 *           (an error chunk is read whole into it)
 */
#define NBD_REPLY_DISCARD_LEN 8192u
struct nbd_reply_ctx {
	bool structured;
	bool extended;
	bool base_allocation;
	uint32_t meta_id;
	struct nbd_creq *(*lookup)(void *opaque, uint64_t cookie);
	void *opaque;
	uint8_t *discard;
	size_t discard_len;
};

/**
 * struct nbd_reply_result - what one reply message did
 * @cookie: the request it answered
 * @cmd: that request
 * @done: it was the request's last message (its result is in @cmd->err)
 * @err: NBD_REPLY_OK, or why the connection must end
 * @io_errno: NBD_REPLY_IO: the stream's -errno
 * @detail: a message naming the bad value, for the log
 */
struct nbd_reply_result {
	uint64_t cookie;
	struct nbd_creq *cmd;
	bool done;
	enum nbd_reply_err err;
	int io_errno;
	char detail[160];
};

/**
 * nbd_reply_read - read one reply message (a simple reply, or one structured or extended
 * chunk) from @s
 *
 * Finds the request it answers through ctx->lookup, checks the message against it, and puts
 * what it carries where the request wants it: read data into the request's buffers, a hole as
 * zeroes, an error into cmd->err, block status into cmd->status_*. Returns 0 (see res->done)
 * or -1 with res->err set: the stream is out of step with the protocol and must be dropped
 * (res->cmd, when set, is the request whose reply was bad).
 */
int nbd_reply_read(const struct nbd_stream *s, const struct nbd_reply_ctx *ctx,
		   struct nbd_reply_result *res);

/*
 * Whether a finished READ of @cmd received every byte (the reader checks it at the end of a
 * structured reply without error; a simple reply always carries the whole).
 */
bool nbd_creq_read_complete(const struct nbd_creq *cmd);

#endif
