/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One NBD server connection as a state machine without I/O of its own: the fixed newstyle
 * handshake (nbd_opt.c) and the transmission phase (nbd_cmd.c) over byte buffers. A transport
 * (nbd_server.c: io_uring on an iothread; the fuzz target and tests: plain buffers) moves the
 * bytes, a backend (nbd_export.c: the block layer) runs the commands, a catalog finds exports.
 *
 * Ownership. A conn is owned by one thread at a time and every call below, the ops' callbacks
 * included, happens on that thread: nothing in it is locked or atomic. The transport may move
 * it to another thread while it is held (after nbd_conn_ops.go, until nbd_conn_resume); the
 * move must order everything (a message post does).
 *
 * Memory. Nothing a client sends grows memory without bound: an option's data is kept only up
 * to NBD_CONN_MAX_OPTION (longer ones are skipped and refused), the handshake stops reading
 * while more than NBD_CONN_MAX_HS_BACKLOG bytes of replies wait to be sent, and in the
 * transmission phase a request is admitted only while fewer than lim.max_requests requests and
 * lim.max_bytes bytes of payload, read buffers and status replies are held; a request holds its
 * share until its reply was sent. A client that stops reading its replies stops being read.
 *
 * Input. nbd_conn_rx_buf() says where the next bytes go (the conn's own buffer, or straight
 * into a write's payload buffer) and how many it takes now (0: do not read now);
 * nbd_conn_rx_done() hands them in. Output is a queue of byte ranges that nbd_conn_tx_iov()
 * lists and nbd_conn_tx_done() consumes.
 */
#ifndef VIREO_BLOCKDEV_NBD_CONN_H
#define VIREO_BLOCKDEV_NBD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blockdev/nbd_proto.h"

struct nbd_conn;
struct nbd_export; /* the catalog's; opaque here */

/* Metadata contexts a connection may select (the bit of nbd_io.ctx_mask and the context id
 * minus one): base:allocation, then the export's bitmaps in order. */
enum nbd_ctx {
	NBD_CTX_BASE_ALLOCATION = 0,
	NBD_CTX_DIRTY_BITMAP = 1, /* the first bitmap; bitmap k is NBD_CTX_DIRTY_BITMAP + k */
	NBD_CTX_COUNT = NBD_CTX_DIRTY_BITMAP + NBD_MAX_EXPORT_BITMAPS
};

/* What the handshake tells a client about an export; fixed while the export exists. */
struct nbd_export_desc {
	const char *name;
	const char *description;  /* NULL: none */
	uint64_t size;
	bool writable;
	const char *const *bitmaps; /* each exposed as qemu:dirty-bitmap:NAME */
	unsigned int nr_bitmaps;    /* <= NBD_MAX_EXPORT_BITMAPS */
	uint32_t min_block;       /* NBD_INFO_BLOCK_SIZE */
	uint32_t pref_block;
	uint32_t max_payload;     /* <= NBD_MAX_PAYLOAD */
};

/* Requests held by one connection and their bytes (payloads, read buffers, status replies). */
struct nbd_conn_limits {
	unsigned int max_requests;  /* 0: NBD_CONN_MAX_REQUESTS */
	size_t max_bytes;           /* 0: NBD_CONN_MAX_BYTES (one request is always let in) */
};
#define NBD_CONN_MAX_REQUESTS 128
#define NBD_CONN_MAX_BYTES (2 * (size_t)NBD_MAX_PAYLOAD)
#define NBD_CONN_MAX_OPTION 65536u          /* option data kept; longer: NBD_REP_ERR_TOO_BIG */
#define NBD_CONN_MAX_HS_BACKLOG 65536u      /* unsent handshake replies before reading stops */
#define NBD_CONN_MAX_EXTENTS 32768u         /* block status descriptors per context and reply */
#define NBD_CONN_READ_SEGS 32u              /* data/hole chunks of one structured read reply */

/* One piece of a structured read: data (from nbd_io.buf) or a hole. */
struct nbd_read_seg {
	uint32_t len;
	bool hole;
};

/* A block status reply being built: wire bytes (context id, then descriptors). */
struct nbd_extents {
	uint8_t *buf;       /* 4 + 8 * cap bytes; wide: 8 + 16 * cap */
	uint32_t n, cap;
	uint64_t covered;   /* bytes the descriptors cover so far */
	bool wide;          /* extended headers: NBD_REPLY_TYPE_BLOCK_STATUS_EXT's 64-bit lengths */
};

/**
 * struct nbd_io - one transmission request handed to the backend
 * @conn, @exp: its connection and export
 * @type, @flags, @cookie, @offset, @len: the request, checked against the export and
 *                                        what was negotiated
 * @buf: READ: where the data goes (len bytes); WRITE: the payload; else NULL. Aligned to 4 KiB.
 * @want_holes: READ: the reply may describe holes; the backend may then fill @seg (the bytes of
 *              a hole in @buf are not sent). Otherwise every byte of @buf is sent.
 * @seg, @nr_seg: READ: the range as data/hole pieces in order, summing to @len (0: all data)
 * @pipe: READ: 0, or 1 + the number of the transport's pipe that holds the read's @len bytes
 *        instead of @buf (the backend spliced them there; no holes then): the reply's data
 *        goes out of that pipe (nbd_conn_tx_pipe)
 * @ctx_mask: BLOCK_STATUS: the selected contexts (1 << enum nbd_ctx)
 * @ext: BLOCK_STATUS: one reply per selected context, filled with nbd_extents_add()
 * @priv: @priv_size bytes for the backend (nbd_conn_new), zeroed for each request
 */
struct nbd_io {
	struct nbd_conn *conn;
	struct nbd_export *exp;
	uint16_t type, flags;
	uint64_t cookie, offset, len;
	uint8_t *buf;
	bool want_holes;
	unsigned int nr_seg;
	struct nbd_read_seg seg[NBD_CONN_READ_SEGS];
	int pipe;
	unsigned int ctx_mask;
	struct nbd_extents ext[NBD_CTX_COUNT];
	/* the conn's */
	int ret;
	size_t charge;
	unsigned int out_refs;
	bool at_backend;
	bool replied;
	struct nbd_io *next;
	_Alignas(16) unsigned char priv[];
};

/**
 * struct nbd_conn_ops - what the conn needs from its transport, catalog and backend
 * @export_get: the export called @name (a reference the conn later drops with @export_put),
 *              or NULL
 * @export_put: drop a reference from @export_get
 * @export_desc: the export's description (valid while a reference is held)
 * @export_list: calls @fn for each export (NBD_OPT_LIST), under whatever lock the catalog needs
 * @go: the handshake ended on @exp (the conn keeps its reference and is held: it reads and
 *      parses nothing until nbd_conn_resume); the transport moves it to the export's thread
 * @submit: run @io (not CACHE, DISC or a request the conn refused) and call nbd_conn_io_done
 *          once, on the conn's thread, then or later
 * @wake: the conn has output to send, takes input again, or closed: the transport should
 *        look at it (called at the end of a conn entry point, never inside the conn's work)
 * @starttls: NBD_OPT_STARTTLS was accepted (its NBD_REP_ACK is the last plaintext queued):
 *        once that is sent the transport runs the TLS handshake, then calls nbd_conn_tls_done;
 *        the conn reads nothing meanwhile (state NBD_CONN_STARTTLS). Only with
 *        nbd_conn_require_tls().
 */
struct nbd_conn_ops {
	struct nbd_export *(*export_get)(void *opaque, const char *name);
	void (*export_put)(void *opaque, struct nbd_export *exp);
	const struct nbd_export_desc *(*export_desc)(struct nbd_export *exp);
	void (*export_list)(void *opaque,
			    void (*fn)(void *arg, const struct nbd_export_desc *d), void *arg);
	void (*go)(void *opaque, struct nbd_conn *c, struct nbd_export *exp);
	void (*submit)(void *opaque, struct nbd_io *io);
	void (*wake)(void *opaque, struct nbd_conn *c);
	void (*starttls)(void *opaque, struct nbd_conn *c);
};

/* Where a connection is. */
enum nbd_conn_state {
	NBD_CONN_HANDSHAKE,   /* option haggling */
	NBD_CONN_STARTTLS,    /* the TLS handshake runs (the transport's): nothing is read */
	NBD_CONN_HELD,        /* the handshake ended; waiting for nbd_conn_resume */
	NBD_CONN_TRANSMISSION,
	NBD_CONN_DRAINING,    /* soft disconnect (NBD_OPT_ABORT, NBD_CMD_DISC): reads nothing
			       * more, sends what is queued once every request completed */
	NBD_CONN_CLOSED,      /* hard disconnect or done: close the socket; output dropped */
};

/**
 * nbd_conn_new - a connection that starts with the server's greeting queued
 * @ops, @opaque: callbacks and their argument
 * @priv_size: bytes of nbd_io.priv for the backend
 * @lim: per-connection limits (NULL: defaults)
 * @peer: for messages ("unix socket", "127.0.0.1:40112"), copied
 *
 * Returns NULL without memory.
 */
struct nbd_conn *nbd_conn_new(const struct nbd_conn_ops *ops, void *opaque, size_t priv_size,
			      const struct nbd_conn_limits *lim, const char *peer);

/*
 * The server insists on TLS (proto.md's FORCEDTLS mode): before NBD_OPT_STARTTLS succeeded,
 * every option but STARTTLS and ABORT is refused with NBD_REP_ERR_TLS_REQD and
 * NBD_OPT_EXPORT_NAME ends the connection. Call before any input.
 */
void nbd_conn_require_tls(struct nbd_conn *c);
/* The transport's TLS handshake succeeded: option haggling goes on, encrypted, with nothing
 * negotiated before it kept (proto.md, NBD_OPT_STARTTLS). */
void nbd_conn_tls_done(struct nbd_conn *c);

/* Frees a connection in state NBD_CONN_CLOSED with no request at the backend (nbd_conn_busy
 * false) and no transfer of the transport's in progress on its buffers (a closed conn keeps
 * its output and receive buffers until here). Drops its export reference. */
void nbd_conn_free(struct nbd_conn *c);

enum nbd_conn_state nbd_conn_state(const struct nbd_conn *c);
/* Requests at the backend (submitted, not yet nbd_conn_io_done). */
bool nbd_conn_busy(const struct nbd_conn *c);
/* The export of the transmission phase (NULL before). */
struct nbd_export *nbd_conn_export(const struct nbd_conn *c);
/* Why the connection closed ("" while open or after a clean disconnect). */
const char *nbd_conn_close_reason(const struct nbd_conn *c);
const char *nbd_conn_peer(const struct nbd_conn *c);

/* Where the next received bytes go; *len 0: read nothing now. */
void *nbd_conn_rx_buf(struct nbd_conn *c, size_t *len);
/* @n bytes arrived at the last nbd_conn_rx_buf(); 0 means end of stream. */
void nbd_conn_rx_done(struct nbd_conn *c, size_t n);

/* Fills @iov (at most @max entries) with the output waiting; returns the count. The list
 * stops before bytes that wait in a pipe (nbd_io.pipe). */
int nbd_conn_tx_iov(struct nbd_conn *c, struct iovec *iov, int max);
/* The next bytes of the output wait in a pipe: returns 1 + its number and sets *@len to how
 * many of them go next (the transport moves them and calls nbd_conn_tx_done); 0: use
 * nbd_conn_tx_iov. */
int nbd_conn_tx_pipe(struct nbd_conn *c, size_t *len);
/* @n bytes of the output were sent. */
void nbd_conn_tx_done(struct nbd_conn *c, size_t n);

/* The transport failed or the server closes the connection: hard disconnect. Frees nothing:
 * transfers the transport has started on the conn's buffers may finish. */
void nbd_conn_close(struct nbd_conn *c, const char *reason);
/* Ends a hold (NBD_CONN_HELD): the transmission phase starts; parses what was received. */
void nbd_conn_resume(struct nbd_conn *c);
/* The backend finished @io with 0 or -errno. */
void nbd_conn_io_done(struct nbd_io *io, int ret);

/*
 * nbd_extents_add - append a descriptor to a block status reply (merging with the last one
 * when the flags are the same); false when the reply is full (the caller stops). Without
 * extended headers a descriptor holds at most UINT32_MAX bytes: a longer @len is refused as
 * a full reply would be.
 */
bool nbd_extents_add(struct nbd_extents *e, uint64_t len, uint32_t flags);

#endif
