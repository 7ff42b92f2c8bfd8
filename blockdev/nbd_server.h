/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server (issue 17): what vireo-storage-daemon's --nbd-server / --export and QMP's
 * nbd-server-start, nbd-server-stop, block-export-add, block-export-del and query-block-exports
 * call. The protocol is NetworkBlockDevice/nbd doc/proto.md: fixed newstyle handshake with
 * NBD_OPT_GO / INFO / EXPORT_NAME / LIST / ABORT / STRUCTURED_REPLY / LIST_META_CONTEXT /
 * SET_META_CONTEXT (base:allocation, qemu:dirty-bitmap:NAME) / EXTENDED_HEADERS; READ
 * (structured replies with holes), WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES (NO_HOLE, FAST_ZERO),
 * BLOCK_STATUS, CACHE, DISC; TLS (NBD_OPT_STARTTLS, GnuTLS x509 or PSK credentials:
 * blockdev/nbd_tls.h), required for every export when the server has credentials (proto.md's
 * FORCEDTLS mode). Extended headers (the EXTENDED_HEADERS extension, its branch of proto.md):
 * 32-byte requests and reply headers, structured replies with them (NBD_OPT_STRUCTURED_REPLY
 * after them: NBD_REP_ERR_EXT_HEADER_REQD), 64-bit effect lengths for TRIM, WRITE_ZEROES, CACHE
 * and BLOCK_STATUS (NBD_REPLY_TYPE_BLOCK_STATUS_EXT) bounded by the export, READ and WRITE by
 * the maximum payload (32 MiB); NBD_FLAG_BLOCK_STATUS_PAYLOAD is not offered (a payload on
 * BLOCK_STATUS, or any command but WRITE, is read and refused with NBD_EINVAL). A request
 * header of the kind not negotiated ends the connection, as a broken magic does.
 *
 * Threads. Everything here is control plane: one caller at a time (the daemon's main thread),
 * and these calls may block (they wait for iothreads). The server accepts connections and runs
 * their handshakes on the iothread given to nbd_server_start; a connection that chose an
 * export moves to the export's iothread, where its socket I/O (io_uring RECV / SENDMSG) and its
 * block requests (blockdev_submit on the export's queue) run. Block status queries run on a
 * worker thread of the export (they may block in the block layer). See nbd_transport.c and
 * nbd_export.c for who owns what.
 *
 * Limits. Per connection at most NBD_CONN_MAX_REQUESTS requests and NBD_CONN_MAX_BYTES bytes of
 * payloads and replies are held (nbd_conn.h); a client that does not read its replies is not
 * read either. A handshake must end within the server's handshake_ms.
 */
#ifndef VIREO_BLOCKDEV_NBD_SERVER_H
#define VIREO_BLOCKDEV_NBD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "blockdev/nbd_proto.h"
#include "common/error.h"

struct nbd_server;
struct nbd_tls_creds;
struct nbd_tls_authz;
struct blockdev;
struct iothread;

#define NBD_SERVER_HANDSHAKE_MS_DEFAULT 10000 /* QEMU's handshake-max-seconds default */

enum nbd_addr_type {
	NBD_ADDR_INET, /* TCP: host (NULL or "": every address) and port */
	NBD_ADDR_UNIX, /* a unix socket at path (a stale socket file there is replaced) */
};

/**
 * struct nbd_server_opts - how to start the server (QEMU's nbd-server-start arguments)
 * @type: address family
 * @host: NBD_ADDR_INET: name or address to listen on; NULL or "": all of them
 * @port: NBD_ADDR_INET: port number or service name; NULL: "10809"; "0": any free port
 *        (nbd_server_port says which)
 * @path: NBD_ADDR_UNIX: the socket's path
 * @max_connections: connections at a time (0: no limit); further clients wait in the listen
 *                   backlog until one ends
 * @iothread: where connections are accepted and their handshakes run (required)
 * @handshake_ms: a client that has not finished its handshake by then is disconnected
 *                (0: NBD_SERVER_HANDSHAKE_MS_DEFAULT)
 * @tls: server credentials (nbd_tls_creds_x509_new / _psk_new; the server takes a reference):
 *       every client must start TLS before anything else (FORCEDTLS); NULL: no TLS
 * @tls_creds: the name the user gave the credentials (for messages); set without @tls, it is
 *             refused as not found
 * @authz: the identity a client's x509 certificate must name (the server keeps a copy); needs
 *         x509 credentials with verify-peer; NULL: every client with valid credentials
 * @tls_authz: its name (for messages); set without @authz, it is refused as not found
 */
struct nbd_server_opts {
	enum nbd_addr_type type;
	const char *host;
	const char *port;
	const char *path;
	unsigned int max_connections;
	struct iothread *iothread;
	unsigned int handshake_ms;
	struct nbd_tls_creds *tls;
	const char *tls_creds;
	const struct nbd_tls_authz *authz;
	const char *tls_authz;
};

/**
 * nbd_server_start - listen for NBD clients
 *
 * Returns the server, or NULL with a message naming the address and what failed ("Failed to
 * bind socket to 127.0.0.1:10809: Address already in use").
 */
struct nbd_server *nbd_server_start(const struct nbd_server_opts *o, struct error **errp);

/**
 * nbd_server_stop - close the listening sockets, disconnect every client and delete every
 * export (as QEMU's nbd-server-stop does), then free the server
 *
 * Waits until every connection's requests completed. NULL is a no-op.
 */
void nbd_server_stop(struct nbd_server *srv);

/* The TCP port the server listens on (an NBD_ADDR_INET server), else 0. */
int nbd_server_port(const struct nbd_server *srv);

/**
 * nbd_server_add_client - serve one already connected socket (socket activation, tests)
 * @fd: a connected stream socket; the server owns it from now on, also on failure
 *
 * Counts against max_connections like an accepted one (refused when the server is full).
 */
int nbd_server_add_client(struct nbd_server *srv, int fd, struct error **errp);

/**
 * struct nbd_export_opts - one export (QEMU's block-export-add with type=nbd)
 * @id: the export's id (unique among exports)
 * @node: the node to export; NULL: the node called @node_name
 * @node_name: used when @node is NULL
 * @name: the name clients ask for (NULL: the node's name); unique, at most NBD_MAX_STRING bytes
 * @description: shown by NBD_OPT_LIST and NBD_INFO_DESCRIPTION (NULL: none)
 * @writable: clients may write (the node must be writable)
 * @bitmaps, @nr_bitmaps: dirty bitmaps of the node, each exposed as the metadata context
 *          qemu:dirty-bitmap:NAME (at most NBD_MAX_EXPORT_BITMAPS, none twice); each is busy
 *          while exported; an enabled one only on a writable export
 * @iothread: where the export's connections and requests run (required: the daemon gives its
 *            default one)
 */
struct nbd_export_opts {
	const char *id;
	struct blockdev *node;
	const char *node_name;
	const char *name;
	const char *description;
	bool writable;
	const char *const *bitmaps;
	unsigned int nr_bitmaps;
	struct iothread *iothread;
};

/**
 * nbd_export_add - make a node available to the server's clients
 *
 * The export becomes a user of the node (it may read, and write if @writable; it shares
 * everything with other users, as QEMU's exports) with drain hooks, so block jobs and graph
 * changes on the node drain its requests, and a mirror's pivot moves it to the target node.
 * Refused, with a message, when the server is stopping, the id or name is taken, the node or
 * bitmap does not exist, or the node cannot be exported as asked.
 */
int nbd_export_add(struct nbd_server *srv, const struct nbd_export_opts *o, struct error **errp);

enum nbd_export_del_mode {
	NBD_EXPORT_DEL_SAFE, /* refused while clients are connected */
	NBD_EXPORT_DEL_HARD, /* disconnects them (their requests in flight complete first) */
};

/**
 * nbd_export_del - remove the export @id (QEMU's block-export-del)
 *
 * Returns once it is gone: no connection uses it, the node's user is detached. Refused when
 * there is no such export, or (mode safe) while clients are connected to it.
 */
int nbd_export_del(struct nbd_server *srv, const char *id, enum nbd_export_del_mode mode,
		   struct error **errp);

/**
 * struct nbd_export_info - one export as nbd_export_list reports it (query-block-exports)
 * @id, @name, @description, @node_name, @bitmaps: as added (the node's name as it is now)
 * @writable: as added
 * @connections: connected clients that chose this export
 */
struct nbd_export_info {
	const char *id;
	const char *name;
	const char *description;
	const char *node_name;
	const char *const *bitmaps;
	unsigned int nr_bitmaps;
	bool writable;
	unsigned int connections;
};

/* Calls @fn for every export, oldest first, under the server's lock (@fn must not call back
 * into the server). */
void nbd_export_list(struct nbd_server *srv,
		     void (*fn)(void *opaque, const struct nbd_export_info *info), void *opaque);

#endif
