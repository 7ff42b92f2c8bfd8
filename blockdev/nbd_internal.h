/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server's shared structures: the server (nbd_server.c: listening sockets, accept),
 * a client connection's transport (nbd_transport.c: io_uring RECV/SENDMSG on an iothread) and
 * an export with its data path (nbd_export.c). Who owns what is said at each field:
 *   [lock]   srv->lock (any thread)
 *   [srv-it] the server's iothread only
 *   [exp-it] the export's iothread only
 *   [cl-it]  the iothread the client runs on now (cl->it)
 *   [fixed]  written before the object is published, read-only afterwards
 *   [ctl]    the control plane (nbd_server.h callers), one at a time
 */
#ifndef VIREO_BLOCKDEV_NBD_INTERNAL_H
#define VIREO_BLOCKDEV_NBD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "blockdev/blockdev.h"
#include "blockdev/nbd_conn.h"
#include "blockdev/nbd_server.h"
#include "iothreads/iothread.h"

#define NBD_MAX_LISTENERS 8  /* addresses one inet server listens on (IPv4 + IPv6, ...) */
#define NBD_TX_IOV 64        /* iovec entries per SENDMSG */
#define NBD_PIPES 16         /* pipes per connection: its spliced reads not yet sent */
#define NBD_PIPE_SIZE (256u << 10) /* each pipe's size (F_SETPIPE_SZ): the longest spliced read */
/* The shortest spliced read: a splice runs on io_uring's worker threads (two hand-offs per
 * read), which costs more than copying a few pages (4 KiB reads: 99k against 269k IOPS) */
#define NBD_SPLICE_MIN (128u << 10)
#define NBD_SERVER_PIPES 256 /* pipes of all connections, at most a 1/8 of RLIMIT_NOFILE */

struct nbd_export;
struct nbd_client;
struct nbd_status_job;

struct nbd_listener {
	struct nbd_server *srv;       /* [fixed] */
	int fd;                       /* [fixed] */
	int fix;                      /* [srv-it] fd's slot in the iothread's fixed file table */
	struct iothread_op op;        /* [srv-it] the armed ACCEPT */
	bool armed;                   /* [srv-it] */
	bool dead;                    /* [srv-it] accept failed for good */
	struct sockaddr_storage peer; /* [srv-it] where ACCEPT writes the client's address */
	socklen_t peer_len;
	struct iothread_timer retry;  /* [srv-it] re-arm after a transient error (EMFILE) */
};

struct nbd_server {
	pthread_mutex_t lock;
	pthread_cond_t cond;               /* broadcast when a connection is freed */
	struct iothread *it;               /* [fixed] accepts and handshakes */
	struct nbd_tls_creds *tls;         /* [fixed] a reference, or NULL: no TLS */
	struct nbd_tls_authz *authz;       /* [fixed] the server's copy, or NULL: no tls-authz */
	unsigned int max_conns;            /* [fixed] 0: no limit */
	unsigned int handshake_ms;         /* [fixed] */
	enum nbd_addr_type type;           /* [fixed] */
	char *unix_path;                   /* [fixed] unlinked at stop */
	int port;                          /* [fixed] */
	struct nbd_listener lis[NBD_MAX_LISTENERS];
	unsigned int nr_lis;               /* [fixed] */
	unsigned int nr_conns;             /* [lock] connections not yet freed */
	_Atomic int pipes_left;            /* pipes connections may still make (nbd_transport.c) */
	bool stopping;                     /* [lock] */
	struct nbd_export *exports;        /* [lock] oldest first */
	struct nbd_client *hs_clients;     /* [srv-it] connections in their handshake */
	struct iothread_op cancel_op;      /* [srv-it] completion of ACCEPT cancels */
};

struct nbd_export {
	struct nbd_server *srv;            /* [fixed] */
	char *id, *name, *description;     /* [fixed] */
	struct nbd_export_desc desc;       /* [fixed] */
	struct iothread *it;               /* [fixed] */
	/* [fixed] the dirty bitmaps it shows, and their names (desc.bitmaps) */
	struct blockdev_bitmap *bitmaps[NBD_MAX_EXPORT_BITMAPS];
	char *bitmap_names[NBD_MAX_EXPORT_BITMAPS];
	unsigned int nr_bitmaps;
	/* the node and its queue on @it: changed only in a drained section (a pivot), read by
	 * the iothread and the status worker outside of one */
	struct blockdev *bs;
	struct blockdev_queue *q;
	struct blockdev_user user;         /* [ctl] the export as the node's root user */
	unsigned int refs;                 /* [lock] the registry's, connections' and lookups' */
	unsigned int nr_conns;             /* [lock] connections that chose it, not yet freed */
	bool deleting;                     /* [lock] no new connection may choose it */
	struct nbd_export *next;           /* [lock] */
	struct nbd_client *clients;        /* [exp-it] connections adopted here */
	unsigned int quiesced;             /* [exp-it] drained sections open: park requests */
	struct nbd_bio *parked, **parked_tail; /* [exp-it] requests held by a drained section */
	unsigned int status_busy;          /* [exp-it] block status jobs at the worker */
	/* the block status worker: its queue is guarded by wlock */
	pthread_t worker;
	bool worker_started;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	struct nbd_bio *jobs, **jobs_tail;
	bool wstop;
};

/* The backend's part of a request (nbd_io.priv). [exp-it], or the worker's while a job. */
struct nbd_bio {
	struct blockdev_req breq;
	struct iovec iov;
	struct nbd_io *io;
	struct nbd_export *exp;
	bool flushing;        /* a FUA write's flush */
	bool no_splice;       /* READ: a splice failed: read into the buffer */
	bool mapped;          /* READ: its data and hole pieces were found (read_map) */
	int pipe;             /* READ: 1 + the client's pipe being filled, or 0 */
	struct nbd_client *cl;
	int ret;
	struct nbd_bio *next; /* parked list or the worker's queue */
};

struct nbd_client {
	struct nbd_server *srv;            /* [fixed] */
	struct nbd_conn *conn;             /* [cl-it] */
	struct iothread *it;               /* [cl-it] changes when it moves to its export */
	struct nbd_export *exp;            /* [cl-it] set by go */
	int fd;                            /* [fixed] */
	int fix;                           /* [cl-it] fd's slot in cl->it's fixed files, or -1 */
	struct iothread_op recv_op, send_op, reap_op;
	bool recv_armed, send_armed, reap_pending;
	bool moving;                       /* go happened: move to exp->it once nothing is armed */
	bool shut;                         /* shutdown(2) done */
	bool forced;                       /* closed by the server (stop, export deletion) */
	bool send_failed;
	bool in_update, update_again;      /* update() runs; run it once more */
	struct nbd_tls_session *tls;       /* after NBD_OPT_STARTTLS */
	bool tls_start;                    /* STARTTLS accepted: start once its reply is sent */
	bool tls_ready;                    /* the TLS handshake completed */
	bool bye_done;                     /* close_notify queued */
	bool send_cipher;                  /* the armed SENDMSG sends the session's ciphertext */
	bool counted_on_exp;               /* [lock] counted in exp->nr_conns */
	/* [cl-it] plaintext connections in the transmission phase: pipes their reads are spliced
	 * through (page cache -> pipe -> socket, no copy: nbd_export.c fills one, the transport
	 * empties it into the socket); made on adoption, both ends in cl->it's fixed files */
	struct nbd_pipe {
		int fd[2], fix[2];             /* read and write end; their slots */
		bool busy;                     /* given to a read, until its bytes were sent */
		bool dead;                     /* closed */
	} pipes[NBD_PIPES];
	unsigned int nr_pipes;             /* made (pipes[0, nr_pipes)) */
	unsigned int live_pipes;           /* of them not closed */
	bool no_more_pipes;                /* making one failed: do not try again */
	struct nbd_bio *pipe_wait, **pipe_wait_tail; /* reads waiting for a free pipe */
	int splice_pipe;                   /* 1 + the pipe the armed send_op splices from, or 0 */
	struct msghdr msg;
	struct iovec iov[NBD_TX_IOV];
	struct iothread_timer hs_timer;    /* [srv-it] the handshake's deadline */
	struct nbd_client *next, **pprev;  /* srv->hs_clients or exp->clients */
};

/* nbd_export.c */
extern const struct nbd_conn_ops nbd_server_conn_ops;
void nbd_export_unref_locked(struct nbd_export *exp);
int nbd_export_del_all(struct nbd_server *srv);
void nbd_export_submit(struct nbd_client *cl, struct nbd_io *io);
/* Starts @b again (it waited for a pipe), or parks it while a drained section is open. */
void nbd_export_restart(struct nbd_bio *b);

/* nbd_transport.c */
/* A new connection on @fd (the server's iothread); -1 when it could not be set up (fd closed) */
int nbd_client_start(struct nbd_server *srv, int fd, const char *peer);
/* Disconnects every client of @list (on the iothread that owns the list). */
void nbd_clients_close(struct nbd_client *list, const char *reason);
/* nbd_conn_ops callbacks */
void nbd_client_go(void *opaque, struct nbd_conn *c, struct nbd_export *exp);
void nbd_client_wake(void *opaque, struct nbd_conn *c);
void nbd_client_starttls(void *opaque, struct nbd_conn *c);
/*
 * A pipe for read @b of @len bytes: 1 + the number of a free one of @cl, now busy; 0: the read
 * is not spliced (no pipes, too short or too long, the connection closing): read it into its
 * buffer;
 * -1: every pipe is busy and @b waits in cl->pipe_wait: nbd_export_restart(b) runs it when
 * one is free again (or, with b->no_splice set, once the connection closes).
 */
int nbd_client_pipe_get(struct nbd_client *cl, uint64_t len, struct nbd_bio *b);
/* A read gave back pipe @p (1 + its number) unused: with @dirty, what is in it is unknown and
 * the pipe is closed; else it is free again. */
void nbd_client_pipe_put(struct nbd_client *cl, int p, bool dirty);

/* nbd_server.c */
/* A connection was freed (counted in @exp's connections too when @exp): take it out of the
 * counts, wake the waiters, re-arm the ACCEPTs of a full server. Without srv->lock. */
void nbd_server_conn_gone(struct nbd_server *srv, struct nbd_export *exp);

#endif
