/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `nbd` protocol driver: a node whose bytes are an export of an NBD server.
 *
 * How I/O runs. The driver has no map(): every request of a device takes the block layer's
 * slow path (engine.c), so the iothreads never block and the driver only implements the
 * synchronous ops, which block. Those are called by the node's slow-path worker (for the
 * devices of all iothreads: the reads, and the writes, it finds queued together go in one
 * preadv_group / pwritev_group call), by the job thread, by vireo-img's copy workers (several
 * at once) and by the control plane, concurrently. The socket is blocking. A call
 * turns its range into wire requests of at most the server's maximum payload (aligned to its
 * minimum block size; unaligned edges are read-modify-written under one lock; with extended
 * headers a trim or write-zeroes goes whole, with its 64-bit length), sends them
 * pipelined (up to NBD_SLOTS in flight on the connection, from every caller together), and
 * sleeps until each is answered. One receiver thread per node reads every reply through the
 * socket's buffer (nbd_reply.c checks it against its request) and hands it to its request by
 * cookie. Read-modify-write covers only unaligned requests against each other: an aligned write
 * into a block that an unaligned one is rewriting meanwhile may be lost, as concurrent writes
 * to one block may be anyway (and with a minimum block size of 1, qemu-nbd's, none is needed).
 *
 * Ownership.
 *   s->lock guards the connection's state (state, gen, fail_fast, drop_ns, rx_fd), the slot
 *     table (which request each in-flight cookie is) and every request's state and result;
 *     s->cond (CLOCK_MONOTONIC) is broadcast when any of them changes.
 *   s->send_lock guards sending: send_fd, send_tls and send_gen, and the bytes of a request
 *     going out whole. A caller takes a slot under s->lock, then sends under s->send_lock only if
 *     send_gen is still the generation it took the slot in; so a request is never written to
 *     a socket other than the one its cookie belongs to, even if the fd number was reused.
 *   The receiver thread owns the socket's reading side and the socket's life: it alone
 *     connects, reads replies, closes and reconnects, and it alone completes a request. A
 *     caller's buffers are written by the receiver only while the caller sleeps on its request
 *     (state INFLIGHT); completion is published under s->lock, so the data it read happens
 *     before the caller sees DONE.
 *   The export's geometry and flags (s->info) are fixed at open: a reconnection must offer at
 *     least what the first connection did, the same size, or it is refused and retried.
 *
 * TLS (tls-creds=ID: client credentials of the --object registry, nbd_tls_obj.h). Each
 * connection, the first and every reconnection, sends NBD_OPT_STARTTLS first and runs the TLS
 * handshake (the server's certificate checked against the CA and tls-hostname, else
 * server.host) before anything else; from then on its bytes go through its GnuTLS session
 * (nbd_tls_client.c). GnuTLS lets one thread receive while another sends on a session, and no
 * more: so the receiver alone reads through it (s->tls) and the senders write through it
 * (s->send_tls) one at a time under s->send_lock, as they write the socket; the receiver makes
 * the session before it publishes it (go_live, under send_lock) and frees it only after it
 * took it back (drop, under send_lock), so no sender holds a freed session. Requests are
 * gathered into whole TLS records.
 *
 * Reconnection. When the connection drops (end of stream, a socket error, or a reply that
 * breaks the protocol, which fails its own request with -EIO), the receiver shuts the socket,
 * bumps the generation and hands back every request in flight: DROPPED (to be sent again on
 * the next connection) while reconnect-delay runs, else failed with -EIO. It then connects
 * again, backing off from 100 ms to 1 s between attempts. Requests wait while the delay runs;
 * once it has passed since the drop (immediately with reconnect-delay=0), waiting and new
 * requests fail with -EIO until a connection is back, which ends the failing. Closing the node
 * sends NBD_CMD_DISC, shuts the socket down (which ends the receiver's read or handshake) and
 * joins the receiver (which may first finish a connect() under way: RECONNECT_TIMEOUT_MS at
 * most, to a host that drops packets).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/internal.h"
#include "blockdev/nbd_client.h"
#include "blockdev/nbd_tls.h"
#include "blockdev/nbd_tls_obj.h"
#include "common/keyval.h"
#include "common/parse.h"
#include "common/util.h"
#include "seccomp/thread.h"

#define NBD_SLOTS 16              /* requests in flight on one connection */
#define BATCH NBD_SLOTS           /* wire requests one call prepares at a time */
#define OPEN_TIMEOUT_MS 10000u    /* connect + handshake at open */
#define RECONNECT_TIMEOUT_MS 5000u /* connect + handshake of one reconnection attempt */
#define RETRY_MIN_MS 100u
#define RETRY_MAX_MS 1000u
#define RECONNECT_DELAY_MAX 3600u /* seconds */
#define IOV_BATCH 64
#define ZERO_CHUNK (1 * MiB)      /* zeroes written as data when the server has no zeroing */

enum conn_state { CONNECTED, RECONNECTING, CLOSING };
enum op_state { OP_TODO, OP_INFLIGHT, OP_DONE, OP_DROPPED };

/* One wire request of a caller. */
struct nbd_op {
	struct nbd_creq cmd;   /* what the reply reader checks and fills */
	uint64_t cookie;
	uint64_t gen;         /* the connection it was sent on */
	enum op_state state;  /* under s->lock */
	int ret;              /* OP_DONE: 0 or -errno */
};

struct nbd_state {
	struct blockdev *bs;
	struct nbd_target target;
	struct nbd_export_info info; /* the first connection's; read-only after open */
	bool opened;                 /* info is set: later connections are checked against it */
	uint64_t reconnect_ns;
	struct nbd_tls_creds *creds; /* a reference, or NULL: no TLS */
	char *tls_hostname;          /* what the server's certificate must name, or NULL */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum conn_state state;
	uint64_t gen;
	bool fail_fast;
	uint64_t drop_ns;     /* when the connection dropped (RECONNECTING) */
	int rx_fd;            /* the socket the receiver works on, for close to shut down */
	struct nbd_op *slot[NBD_SLOTS];
	uint64_t seq;

	pthread_mutex_t send_lock;
	int send_fd;
	struct nbd_tls_client *send_tls; /* send_fd's session, or NULL */
	uint64_t send_gen;

	pthread_mutex_t rmw_lock; /* read-modify-write of partly covered blocks */

	/* the receiver's own */
	pthread_t rx;
	int fd;
	struct nbd_tls_client *tls; /* fd's session, or NULL */
	struct nbd_reply_ctx ctx;
	struct nbd_socket sock;
	uint8_t discard[NBD_REPLY_DISCARD_LEN];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void log_msg(struct nbd_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_msg(struct nbd_state *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: NBD '%s': %s\n", program_invocation_short_name, s->bs->filename, buf);
}

/* ---- sending ----------------------------------------------------------------------------- */

/* @n iovecs on the connection: through its TLS session, or all of them with sendmsg(). */
static int send_iov(int fd, struct nbd_tls_client *tls, struct iovec *v, int n)
{
	struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)n };

	if (tls)
		return nbd_tls_client_writev(tls, v, n);
	while (m.msg_iovlen) {
		ssize_t sent = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (sent < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (m.msg_iovlen && (size_t)sent >= m.msg_iov->iov_len) {
			sent -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen) {
			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + sent;
			m.msg_iov->iov_len -= (size_t)sent;
		}
	}
	return 0;
}

/* A request header, compact or extended (a write's with NBD_CMD_FLAG_PAYLOAD_LEN, as
 * proto.md asks); its length. */
static size_t encode_request(uint8_t *hdr, const struct nbd_request *r, bool extended)
{
	struct nbd_request x = *r;

	if (!extended) {
		nbd_encode_request(hdr, &x);
		return NBD_REQUEST_LEN;
	}
	if (x.type == NBD_CMD_WRITE)
		x.flags |= NBD_CMD_FLAG_PAYLOAD_LEN;
	nbd_encode_extended_request(hdr, &x);
	return NBD_EXTENDED_REQUEST_LEN;
}

/* The request header and, for a write, its data, whole (under send_lock); 0 or -errno. */
static int send_request(int fd, struct nbd_tls_client *tls, const struct nbd_op *op,
			bool extended)
{
	const struct nbd_creq *c = &op->cmd;
	struct nbd_request r = { .flags = c->flags, .type = c->type, .cookie = op->cookie,
				 .offset = c->offset, .len = c->len };
	uint8_t hdr[NBD_EXTENDED_REQUEST_LEN];
	size_t hdr_len = encode_request(hdr, &r, extended);
	uint64_t len = c->type == NBD_CMD_WRITE ? c->len : 0, done = 0;
	bool first = true;

	while (first || done < len) {
		struct iovec v[IOV_BATCH];
		int n = 0, k, ret;
		uint64_t batch;

		if (first)
			v[n++] = (struct iovec){ hdr, hdr_len };
		if (done < len) {
			k = blockdev_iov_slice(c->iov, c->iovcnt, c->iov_skip + done, len - done,
					       v + n, IOV_BATCH - n);
			if (k < 0)
				return -EFAULT;
			n += MIN(k, IOV_BATCH - n);
		}
		batch = blockdev_iov_size(v, n) - (first ? hdr_len : 0);
		ret = send_iov(fd, tls, v, n);
		if (ret < 0)
			return ret;
		done += batch;
		first = false;
	}
	return 0;
}

/*
 * Puts @op in flight: waits for the connection and a free slot, then sends it. Returns 0 (the
 * receiver will complete it: DONE or DROPPED) or -EIO when the connection is down for longer
 * than reconnect-delay, or the node is closing.
 */
static int submit(struct nbd_state *s, struct nbd_op *op)
{
	struct nbd_creq *c = &op->cmd;
	int idx = -1, ret;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (s->state == CLOSING || (s->state == RECONNECTING && s->fail_fast)) {
			pthread_mutex_unlock(&s->lock);
			return -EIO;
		}
		if (s->state == CONNECTED)
			for (idx = 0; idx < NBD_SLOTS && s->slot[idx]; idx++)
				;
		if (idx >= 0 && idx < NBD_SLOTS)
			break;
		pthread_cond_wait(&s->cond, &s->lock);
	}
	op->cookie = ++s->seq << 8 | (uint64_t)idx;
	op->gen = s->gen;
	op->state = OP_INFLIGHT;
	c->err = 0;
	c->msg[0] = '\0';
	c->nr_pieces = 0;
	c->got_status = false;
	s->slot[idx] = op;
	pthread_mutex_unlock(&s->lock);

	pthread_mutex_lock(&s->send_lock);
	if (s->send_gen != op->gen || s->send_fd < 0) {
		ret = -ECONNRESET; /* dropped meanwhile: the receiver hands the request back */
	} else {
		ret = send_request(s->send_fd, s->send_tls, op, s->info.extended);
		if (ret < 0) /* the stream is broken: make the receiver see it at once */
			shutdown(s->send_fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&s->send_lock);
	return 0;
}

/*
 * Runs @n wire requests pipelined and waits for all; each gets its own op->ret. Requests the
 * connection dropped go again while reconnect-delay allows. Returns the first error or 0.
 */
static int run_ops(struct nbd_state *s, struct nbd_op *ops, size_t n)
{
	int first = 0;
	bool again = true;

	for (size_t i = 0; i < n; i++)
		ops[i].state = OP_TODO;
	while (again) {
		again = false;
		for (size_t i = 0; i < n; i++) {
			if (ops[i].state == OP_TODO && submit(s, &ops[i]) < 0) {
				ops[i].state = OP_DONE;
				ops[i].ret = -EIO;
			}
		}
		pthread_mutex_lock(&s->lock);
		for (size_t i = 0; i < n; i++) {
			while (ops[i].state == OP_INFLIGHT)
				pthread_cond_wait(&s->cond, &s->lock);
			if (ops[i].state == OP_DROPPED) {
				ops[i].state = OP_TODO;
				again = true;
			}
		}
		pthread_mutex_unlock(&s->lock);
	}
	for (size_t i = 0; i < n && !first; i++)
		first = ops[i].ret;
	return first;
}

static void op_init(struct nbd_op *op, uint16_t type, uint16_t flags, uint64_t offset,
		    uint64_t len, const struct iovec *iov, int iovcnt, uint64_t skip)
{
	memset(op, 0, sizeof(*op));
	op->cmd.type = type;
	op->cmd.flags = flags;
	op->cmd.offset = offset;
	op->cmd.len = len;
	op->cmd.iov = iov;
	op->cmd.iovcnt = iovcnt;
	op->cmd.iov_skip = skip;
}

/*
 * [@offset, @offset+@len) as wire requests of @type of at most @max bytes, BATCH at a time
 * (READ and WRITE: bytes @skip.. of @iov).
 */
static int run_range(struct nbd_state *s, uint16_t type, uint16_t flags, uint64_t offset,
		     uint64_t len, const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t max)
{
	struct nbd_op ops[BATCH];
	uint64_t pos = 0;
	int ret = 0;

	while (pos < len && !ret) {
		size_t n = 0;

		for (; n < BATCH && pos < len; n++) {
			uint64_t piece = MIN(len - pos, max);

			op_init(&ops[n], type, flags, offset + pos, piece, iov, iovcnt, skip + pos);
			pos += piece;
		}
		ret = run_ops(s, ops, n);
	}
	return ret;
}

/* ---- the receiver ------------------------------------------------------------------------ */

static struct nbd_creq *lookup(void *opaque, uint64_t cookie)
{
	struct nbd_state *s = opaque;
	uint64_t idx = cookie & 0xff;
	struct nbd_op *op = NULL;

	pthread_mutex_lock(&s->lock);
	if (idx < NBD_SLOTS && s->slot[idx] && s->slot[idx]->cookie == cookie)
		op = s->slot[idx];
	pthread_mutex_unlock(&s->lock);
	return op ? &op->cmd : NULL;
}

/* Completes the request in @slot (under s->lock). */
static void finish(struct nbd_state *s, int idx, enum op_state state, int ret)
{
	struct nbd_op *op = s->slot[idx];

	s->slot[idx] = NULL;
	op->state = state;
	op->ret = ret;
}

static int slot_of(struct nbd_state *s, uint64_t cookie)
{
	return (int)(cookie & 0xff);
}

/*
 * The connection is gone (@bad: a request whose reply broke the protocol, failed with -EIO):
 * close the socket, hand back what was in flight, start reconnecting.
 */
static void drop(struct nbd_state *s, struct nbd_creq *bad)
{
	int fd = s->fd;

	shutdown(fd, SHUT_RDWR); /* a sender blocked in sendmsg returns */
	pthread_mutex_lock(&s->send_lock);
	s->send_fd = -1;
	s->send_tls = NULL; /* no sender uses the session past this point */
	pthread_mutex_unlock(&s->send_lock);
	pthread_mutex_lock(&s->lock);
	s->rx_fd = -1;
	s->gen++;
	if (s->state != CLOSING) {
		s->state = RECONNECTING;
		s->drop_ns = now_ns();
		s->fail_fast = !s->reconnect_ns;
	}
	for (int i = 0; i < NBD_SLOTS; i++) {
		struct nbd_op *op = s->slot[i];

		if (!op)
			continue;
		if (&op->cmd == bad || s->fail_fast || s->state == CLOSING)
			finish(s, i, OP_DONE, -EIO);
		else
			finish(s, i, OP_DROPPED, 0);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	nbd_tls_client_free(s->tls);
	s->tls = NULL;
	close(fd);
	s->fd = -1;
}

/* Reads replies until the connection fails; then drops it. */
static void receive(struct nbd_state *s)
{
	struct nbd_stream st;
	struct nbd_reply_result res;

	if (s->tls)
		nbd_tls_client_stream(&st, s->tls);
	else
		nbd_stream_socket(&st, &s->sock, s->fd);
	while (nbd_reply_read(&st, &s->ctx, &res) == 0) {
		struct nbd_op *op;

		if (!res.done)
			continue;
		op = container_of(res.cmd, struct nbd_op, cmd);
		pthread_mutex_lock(&s->lock);
		finish(s, slot_of(s, res.cookie), OP_DONE, op->cmd.err ? -op->cmd.err : 0);
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_lock(&s->lock);
	if (s->state != CLOSING) {
		if (res.err == NBD_REPLY_IO)
			log_msg(s, "connection lost (%s); %s",
				res.io_errno == -EPROTO && s->tls ? nbd_tls_client_error(s->tls) :
								     strerror(-res.io_errno),
				s->reconnect_ns ? "reconnecting, requests wait" :
						  "reconnecting, requests fail until it is back");
		else
			log_msg(s, "bad reply from the server (%s: %s); dropping the connection",
				nbd_reply_err_name(res.err), res.detail);
	}
	pthread_mutex_unlock(&s->lock);
	drop(s, res.err == NBD_REPLY_IO ? NULL : res.cmd);
}

/* Whether a new connection serves the export the node was opened on. */
static int compatible(struct nbd_state *s, const struct nbd_export_info *n, struct error **errp)
{
	const struct nbd_export_info *o = &s->info;
	uint16_t need = o->flags & (NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_TRIM |
				    NBD_FLAG_SEND_WRITE_ZEROES);

	if (n->size != o->size) {
		error_setg(errp, "the export's size changed from %" PRIu64 " to %" PRIu64, o->size,
			   n->size);
		return -1;
	}
	if (!s->bs->read_only && (n->flags & NBD_FLAG_READ_ONLY)) {
		error_setg(errp, "the export is read-only now");
		return -1;
	}
	if ((n->flags & need) != need || n->structured != o->structured ||
	    n->extended != o->extended ||
	    (o->base_allocation && !n->base_allocation) || n->min_block > o->min_block ||
	    n->max_payload < o->max_payload) {
		error_setg(errp, "the server offers less than before (flags %#x, were %#x)",
			   n->flags, o->flags);
		return -1;
	}
	return 0;
}

struct tls_start {
	struct nbd_state *s;
	int fd;
	struct nbd_tls_client *tls; /* made once the server accepted NBD_OPT_STARTTLS */
};

/* The server accepted NBD_OPT_STARTTLS: the TLS handshake, then the stream through it. */
static int start_tls(void *opaque, struct nbd_stream *st, struct error **errp)
{
	struct tls_start *t = opaque;
	struct nbd_state *s = t->s;

	if (s->sock.pos != s->sock.len) { /* it must wait for our first TLS message */
		error_setg(errp, "the NBD server sent data after accepting NBD_OPT_STARTTLS");
		return -1;
	}
	t->tls = nbd_tls_client_start(s->creds, t->fd, s->tls_hostname, errp);
	if (!t->tls)
		return -1;
	nbd_tls_client_stream(st, t->tls);
	return 0;
}

/* One connection attempt: connect, (TLS,) handshake, check; the new fd (and its TLS session in
 * *@tls) or -1. */
static int try_connect(struct nbd_state *s, unsigned int timeout_ms,
		       struct nbd_export_info *info, struct nbd_tls_client **tls,
		       struct error **errp)
{
	struct nbd_stream st;
	int fd = nbd_connect(&s->target, timeout_ms, errp);
	struct tls_start ts = { s, fd, NULL };
	struct nbd_starttls hook = { start_tls, &ts };

	*tls = NULL;
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&s->lock); /* close() shuts a handshake down through rx_fd */
	if (s->state == CLOSING) {
		pthread_mutex_unlock(&s->lock);
		close(fd);
		error_setg(errp, "closing");
		return -1;
	}
	s->rx_fd = fd;
	pthread_mutex_unlock(&s->lock);
	nbd_stream_socket(&st, &s->sock, fd); /* the receiver's buffer: it is not reading now */
	if (nbd_handshake_tls(&st, s->target.export, s->creds ? &hook : NULL, info, errp) < 0 ||
	    (s->opened && compatible(s, info, errp) < 0)) {
		pthread_mutex_lock(&s->lock);
		s->rx_fd = -1;
		pthread_mutex_unlock(&s->lock);
		nbd_tls_client_free(ts.tls);
		close(fd);
		return -1;
	}
	nbd_socket_timeouts(fd, 0);
	*tls = ts.tls;
	return fd;
}

/* Makes @fd (and its TLS session @tls) the connection requests go to (the receiver's, or
 * open's before it starts). */
static void go_live(struct nbd_state *s, int fd, struct nbd_tls_client *tls,
		    const struct nbd_export_info *info)
{
	s->fd = fd;
	s->tls = tls;
	s->ctx.meta_id = info->meta_id; /* context ids are per connection */
	pthread_mutex_lock(&s->send_lock);
	s->send_fd = fd;
	s->send_tls = tls; /* made and handshaken before: the unlock publishes it */
	s->send_gen = s->gen; /* only the receiver changes gen: no lock needed to read it */
	pthread_mutex_unlock(&s->send_lock);
	pthread_mutex_lock(&s->lock);
	s->rx_fd = fd;
	if (s->state != CLOSING) { /* closing: the receiver reads the shut socket's end */
		s->state = CONNECTED;
		s->fail_fast = false;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Connects again until it works (0) or the node closes (-1). */
static int reconnect(struct nbd_state *s)
{
	unsigned int wait_ms = RETRY_MIN_MS;
	bool told = false;

	for (;;) {
		struct nbd_export_info info;
		struct nbd_tls_client *tls;
		struct error *err = NULL;
		struct timespec ts;
		uint64_t deadline;
		int fd;

		pthread_mutex_lock(&s->lock);
		if (s->state == CLOSING) {
			pthread_mutex_unlock(&s->lock);
			return -1;
		}
		if (!s->fail_fast && now_ns() - s->drop_ns >= s->reconnect_ns) {
			s->fail_fast = true; /* the waiting requests fail now */
			log_msg(s, "not back within reconnect-delay: requests fail until it is");
			pthread_cond_broadcast(&s->cond);
		}
		pthread_mutex_unlock(&s->lock);
		fd = try_connect(s, RECONNECT_TIMEOUT_MS, &info, &tls, &err);
		if (fd >= 0) {
			go_live(s, fd, tls, &info);
			log_msg(s, "reconnected");
			return 0;
		}
		if (!told)
			log_msg(s, "reconnecting: %s", error_msg(err));
		told = true;
		error_free(err);
		deadline = now_ns() + wait_ms * 1000000ull;
		if (!s->fail_fast && s->drop_ns + s->reconnect_ns < deadline)
			deadline = s->drop_ns + s->reconnect_ns; /* wake up to fail the waiters */
		ts.tv_sec = (time_t)(deadline / 1000000000ull);
		ts.tv_nsec = (long)(deadline % 1000000000ull);
		pthread_mutex_lock(&s->lock);
		if (s->state != CLOSING)
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		pthread_mutex_unlock(&s->lock);
		wait_ms = MIN(wait_ms * 2, RETRY_MAX_MS);
	}
}

static void *rx_main(void *arg)
{
	struct nbd_state *s = arg;

	do
		receive(s);
	while (reconnect(s) == 0);
	return NULL;
}

/* ---- the driver's ops -------------------------------------------------------------------- */

static bool aligned(struct nbd_state *s, uint64_t offset, uint64_t len)
{
	return IS_ALIGNED(offset | len, (uint64_t)s->info.min_block);
}

static int read_aligned(struct nbd_state *s, uint64_t offset, const struct iovec *iov,
			int iovcnt, uint64_t skip, uint64_t len)
{
	return run_range(s, NBD_CMD_READ, 0, offset, len, iov, iovcnt, skip, s->info.max_payload);
}

/*
 * The aligned blocks around [@offset, @offset+@len) into a bounce buffer (*@start, *@blen);
 * for a write the first and last ones are read first, under rmw_lock (the caller unlocks).
 */
static int bounce(struct nbd_state *s, uint64_t offset, uint64_t len, bool write, uint8_t **buf,
		  uint64_t *start, uint64_t *blen)
{
	uint64_t a = s->info.min_block, end = ALIGN_UP(offset + len, a);
	int ret = 0;

	*start = ALIGN_DOWN(offset, a);
	*blen = end - *start;
	*buf = malloc(*blen);
	if (!*buf)
		return -ENOMEM;
	if (!write)
		return read_aligned(s, *start, &(struct iovec){ *buf, *blen }, 1, 0, *blen);
	if (*start != offset)
		ret = read_aligned(s, *start, &(struct iovec){ *buf, a }, 1, 0, a);
	if (!ret && end != offset + len && (end - a != *start || *start == offset))
		ret = read_aligned(s, end - a, &(struct iovec){ *buf + (end - a - *start), a }, 1, 0,
				   a);
	return ret;
}

static int nbd_preadv(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct nbd_state *s = bs->opaque;
	uint64_t len = blockdev_iov_size(iov, iovcnt), in, start, blen;
	uint8_t *buf;
	int ret;

	/* past the end of the export reads as zeroes, as past the end of a file */
	in = offset < bs->size ? MIN(len, bs->size - offset) : 0;
	if (in < len)
		blockdev_iov_zero(iov, iovcnt, in, len - in);
	if (!in)
		return 0;
	if (aligned(s, offset, in))
		return read_aligned(s, offset, iov, iovcnt, 0, in);
	ret = bounce(s, offset, in, false, &buf, &start, &blen);
	if (!ret)
		blockdev_iov_from_buf(iov, iovcnt, 0, buf + (offset - start), in);
	free(buf);
	return ret;
}

static int nbd_pwritev(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct nbd_state *s = bs->opaque;
	uint64_t len = blockdev_iov_size(iov, iovcnt), start, blen;
	uint8_t *buf = NULL;
	int ret;

	if (!range_within(offset, len, bs->size))
		return -ENOSPC; /* an export does not grow */
	if (aligned(s, offset, len))
		return run_range(s, NBD_CMD_WRITE, 0, offset, len, iov, iovcnt, 0,
				 s->info.max_payload);
	pthread_mutex_lock(&s->rmw_lock);
	ret = bounce(s, offset, len, true, &buf, &start, &blen);
	if (!ret) {
		blockdev_iov_to_buf(iov, iovcnt, 0, buf + (offset - start), len);
		ret = run_range(s, NBD_CMD_WRITE, 0, start, blen, &(struct iovec){ buf, blen }, 1,
				0, s->info.max_payload);
	}
	pthread_mutex_unlock(&s->rmw_lock);
	free(buf);
	return ret;
}

/* Runs the @n ops of @ops, each a piece of request @owner[i] of @w, and records the results. */
static void run_group(struct nbd_state *s, struct nbd_op *ops, const size_t *owner, size_t n,
		      struct blockdev_write *w)
{
	run_ops(s, ops, n);
	for (size_t i = 0; i < n; i++)
		if (!w[owner[i]].ret)
			w[owner[i]].ret = ops[i].ret;
}

/*
 * The slow-path worker's reads or writes found together (the devices' requests of all
 * iothreads): sent pipelined, BATCH wire requests at a time, rather than one after the other.
 * A request that is not aligned, or not inside the export, goes alone through @one.
 */
static void run_requests(struct blockdev *bs, uint16_t type, struct blockdev_write *w, size_t n,
			 int (*one)(struct blockdev *, uint64_t, const struct iovec *, int))
{
	struct nbd_state *s = bs->opaque;
	struct nbd_op ops[BATCH];
	size_t owner[BATCH], k = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t len = blockdev_iov_size(w[i].iov, w[i].iovcnt), pos = 0;

		w[i].ret = 0;
		if (!range_within(w[i].offset, len, bs->size) || !aligned(s, w[i].offset, len)) {
			w[i].ret = one(bs, w[i].offset, w[i].iov, w[i].iovcnt);
			continue;
		}
		while (pos < len) {
			uint32_t piece = (uint32_t)MIN(len - pos, (uint64_t)s->info.max_payload);

			op_init(&ops[k], type, 0, w[i].offset + pos, piece, w[i].iov, w[i].iovcnt,
				pos);
			owner[k++] = i;
			pos += piece;
			if (k == BATCH) {
				run_group(s, ops, owner, k, w);
				k = 0;
			}
		}
	}
	if (k)
		run_group(s, ops, owner, k, w);
}

static void nbd_pwritev_group(struct blockdev *bs, struct blockdev_write *w, size_t n)
{
	run_requests(bs, NBD_CMD_WRITE, w, n, nbd_pwritev);
}

static void nbd_preadv_group(struct blockdev *bs, struct blockdev_write *r, size_t n)
{
	run_requests(bs, NBD_CMD_READ, r, n, nbd_preadv);
}

static int nbd_flush(struct blockdev *bs)
{
	struct nbd_state *s = bs->opaque;
	struct nbd_op op;

	if (!(s->info.flags & NBD_FLAG_SEND_FLUSH))
		return 0;
	op_init(&op, NBD_CMD_FLUSH, 0, 0, 0, NULL, 0, 0);
	return run_ops(s, &op, 1);
}

/*
 * TRIM and WRITE_ZEROES carry no payload: with extended headers a range goes as one request of
 * up to 2^63 bytes, else in pieces of the maximum payload (what QEMU's server takes). A server
 * may still refuse a long one as too costly (NBD_EOVERFLOW, proto.md): then in pieces again.
 */
static int run_effect(struct nbd_state *s, uint16_t type, uint16_t flags, uint64_t offset,
		      uint64_t len)
{
	int ret;

	if (s->info.extended && len > s->info.max_payload) {
		ret = run_range(s, type, flags, offset, len, NULL, 0, 0,
				ALIGN_DOWN((uint64_t)INT64_MAX, (uint64_t)s->info.min_block));
		if (ret != -EOVERFLOW)
			return ret;
	}
	return run_range(s, type, flags, offset, len, NULL, 0, 0, s->info.max_payload);
}

static int nbd_discard(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	struct nbd_state *s = bs->opaque;
	uint64_t a = s->info.min_block, start, end;
	int ret;

	if (!(s->info.flags & NBD_FLAG_SEND_TRIM) || offset >= bs->size)
		return 0; /* a hint */
	end = ALIGN_DOWN(MIN(offset + len, bs->size), a);
	start = ALIGN_UP(offset, a);
	if (end <= start)
		return 0;
	ret = run_effect(s, NBD_CMD_TRIM, 0, start, end - start);
	return ret == -ENOTSUP || ret == -EINVAL ? 0 : ret;
}

static int write_zero_buffers(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	uint8_t *zero = calloc(1, (size_t)MIN(len, ZERO_CHUNK));
	int ret = 0;

	if (!zero)
		return -ENOMEM;
	while (len && !ret) {
		uint64_t n = MIN(len, ZERO_CHUNK);

		ret = nbd_pwritev(bs, offset, &(struct iovec){ zero, n }, 1);
		offset += n;
		len -= n;
	}
	free(zero);
	return ret;
}

static int nbd_write_zeroes(struct blockdev *bs, uint64_t offset, uint64_t len,
			    unsigned int flags)
{
	struct nbd_state *s = bs->opaque;
	uint64_t a = s->info.min_block, start = ALIGN_UP(offset, a), end;
	int ret = 0;

	if (!range_within(offset, len, bs->size))
		return -ENOSPC;
	end = ALIGN_DOWN(offset + len, a);
	if (!(s->info.flags & NBD_FLAG_SEND_WRITE_ZEROES) || end <= start)
		return write_zero_buffers(bs, offset, len);
	if (start > offset) /* the partly covered edges as data */
		ret = write_zero_buffers(bs, offset, start - offset);
	if (!ret && end < offset + len)
		ret = write_zero_buffers(bs, end, offset + len - end);
	if (!ret)
		ret = run_effect(s, NBD_CMD_WRITE_ZEROES,
				 flags & BLOCKDEV_ZERO_MAY_UNMAP ? 0 : NBD_CMD_FLAG_NO_HOLE, start,
				 end - start);
	return ret;
}

static int nbd_block_status(struct blockdev *bs, uint64_t offset, uint64_t len, uint64_t *pnum,
			    uint64_t *map_offset, struct blockdev **map_file)
{
	struct nbd_state *s = bs->opaque;
	const int known = BLOCKDEV_STATUS_ALLOCATED | BLOCKDEV_STATUS_OFFSET;
	uint64_t a = s->info.min_block, q;
	struct nbd_op op;
	int ret;

	*map_offset = offset;
	*map_file = bs;
	*pnum = len;
	if (offset >= bs->size)
		return known | BLOCKDEV_STATUS_ZERO;
	len = MIN(len, bs->size - offset);
	*pnum = len;
	q = ALIGN_DOWN(s->info.extended ? len : MIN(len, (uint64_t)UINT32_MAX), a);
	if (!s->info.base_allocation || !IS_ALIGNED(offset, a) || !q) {
		if (!IS_ALIGNED(offset, a))
			*pnum = MIN(len, ALIGN_UP(offset, a) - offset);
		return known | BLOCKDEV_STATUS_DATA;
	}
	op_init(&op, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, offset, q, NULL, 0, 0);
	ret = run_ops(s, &op, 1);
	if (ret < 0)
		return ret;
	*pnum = MIN(op.cmd.status_len, q);
	return known | (op.cmd.status_flags & NBD_STATE_HOLE ? 0 : BLOCKDEV_STATUS_DATA) |
	       (op.cmd.status_flags & NBD_STATE_ZERO ? BLOCKDEV_STATUS_ZERO : 0);
}

static int nbd_truncate(struct blockdev *bs, uint64_t size, struct error **errp)
{
	if (size == bs->size)
		return 0;
	error_setg(errp, "'%s': an NBD export cannot be resized", bs->filename);
	return -1;
}

static int nbd_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	memset(info, 0, sizeof(*info)); /* the size on the server's disk is not known here */
	return 0;
}

/* ---- opening and closing ----------------------------------------------------------------- */

static int take_seconds(struct blockdev_open_ctx *ctx, const char *key, uint64_t *out,
			struct error **errp)
{
	const char *v = blockdev_opt_get(ctx, key);

	*out = 0;
	if (!v)
		return 0;
	if (parse_u64(key, v, 0, RECONNECT_DELAY_MAX, out, errp) < 0) {
		error_prepend(errp, "'%s'", ctx->filename);
		return -1;
	}
	return 0;
}

/* The first connection, retried for @timeout_s seconds when the server is not there yet. */
static int first_connect(struct nbd_state *s, uint64_t timeout_s, struct nbd_tls_client **tls,
			 struct error **errp)
{
	uint64_t end = now_ns() + timeout_s * 1000000000ull;
	unsigned int wait_ms = RETRY_MIN_MS;
	struct nbd_export_info info;

	for (;;) {
		struct error *err = NULL;
		int fd = try_connect(s, OPEN_TIMEOUT_MS, &info, tls, &err);

		if (fd >= 0) {
			s->info = info;
			s->opened = true;
			return fd;
		}
		if (!timeout_s || now_ns() >= end) {
			error_propagate(errp, err);
			return -1;
		}
		error_free(err);
		usleep(wait_ms * 1000);
		wait_ms = MIN(wait_ms * 2, RETRY_MAX_MS);
	}
}

static void state_free(struct nbd_state *s)
{
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->send_lock);
	pthread_mutex_destroy(&s->rmw_lock);
	nbd_target_free(&s->target);
	nbd_tls_creds_unref(s->creds);
	free(s->tls_hostname);
	free(s);
}

static struct nbd_state *state_new(struct blockdev *bs)
{
	struct nbd_state *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;

	if (!s)
		return NULL;
	s->bs = bs;
	s->fd = s->rx_fd = s->send_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->send_lock, NULL);
	pthread_mutex_init(&s->rmw_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	s->ctx = (struct nbd_reply_ctx){ .lookup = lookup, .opaque = s, .discard = s->discard,
					 .discard_len = sizeof(s->discard) };
	return s;
}

/* The node is known by its export's canonical filename, whatever form the user wrote. */
static int set_canonical_name(struct blockdev *bs, const struct nbd_target *t)
{
	char *uri = nbd_target_uri(t);

	if (!uri)
		return -1;
	free(bs->filename);
	bs->filename = uri;
	return 0;
}

/* tls-creds (client credentials by id) and tls-hostname (else server.host; none on a unix
 * socket: the CA's signature is checked, no name). */
static int take_tls(struct nbd_state *s, struct blockdev_open_ctx *ctx, struct error **errp)
{
	const char *id = blockdev_opt_get(ctx, "tls-creds");
	const char *host = blockdev_opt_get(ctx, "tls-hostname");
	struct nbd_tls_creds *c;

	if (!id) {
		if (!host)
			return 0;
		error_setg(errp, "'%s': tls-hostname needs tls-creds", ctx->filename);
		return -1;
	}
	c = nbd_tls_obj_creds(id);
	if (!c) {
		error_setg(errp, "'%s': tls-creds: no TLS credentials '%s' (an --object "
			   "tls-creds-x509 or tls-creds-psk with endpoint=client)", ctx->filename, id);
		return -1;
	}
	if (!nbd_tls_creds_is_client(c)) {
		error_setg(errp, "'%s': TLS credentials '%s' are a server's (endpoint=server); the "
			   "NBD client needs endpoint=client", ctx->filename, id);
		return -1;
	}
	s->creds = nbd_tls_creds_ref(c);
	if (!host && s->target.type == NBD_ADDR_INET)
		host = s->target.host;
	if (host && !(s->tls_hostname = strdup(host))) {
		error_setg(errp, "'%s': out of memory", ctx->filename);
		return -1;
	}
	return 0;
}

static int nbd_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct nbd_state *s = state_new(bs);
	struct nbd_tls_client *tls = NULL;
	uint64_t delay, open_timeout;
	int fd;

	if (!s) {
		error_setg(errp, "'%s': out of memory", ctx->filename);
		return -1;
	}
	if (take_seconds(ctx, "reconnect-delay", &delay, errp) < 0 ||
	    take_seconds(ctx, "open-timeout", &open_timeout, errp) < 0 ||
	    nbd_uri_parse(ctx->filename, &s->target, errp) < 0 || take_tls(s, ctx, errp) < 0)
		goto err;
	s->reconnect_ns = delay * 1000000000ull;
	if (set_canonical_name(bs, &s->target) < 0) {
		error_setg(errp, "'%s': out of memory", ctx->filename);
		goto err;
	}
	fd = first_connect(s, open_timeout, &tls, errp);
	if (fd < 0) {
		error_prepend(errp, "'%s'", ctx->filename);
		goto err;
	}
	if ((s->info.flags & NBD_FLAG_READ_ONLY) && !bs->read_only) {
		error_setg(errp, "'%s': the NBD export is read-only (open it read-only: readonly=on, "
			   "read-only=on)", ctx->filename);
		nbd_tls_client_free(tls);
		close(fd);
		goto err;
	}
	s->ctx.structured = s->info.structured;
	s->ctx.extended = s->info.extended;
	s->ctx.base_allocation = s->info.base_allocation;
	bs->size = s->info.size;
	bs->align = s->info.min_block;
	bs->opaque = s;
	go_live(s, fd, tls, &s->info);
	if (sandbox_thread_spawn(&s->rx, SANDBOX_ROLE_NBD_RX, "nbd-rx", NULL, rx_main, s,
				 errp) < 0) {
		error_prepend(errp, "'%s': the NBD receiver thread", ctx->filename);
		nbd_tls_client_free(tls);
		close(fd);
		bs->opaque = NULL;
		goto err;
	}
	return 0;
err:
	state_free(s);
	return -1;
}

static void nbd_close(struct blockdev *bs)
{
	struct nbd_state *s = bs->opaque;
	uint8_t disc[NBD_EXTENDED_REQUEST_LEN];
	size_t disc_len;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->state = CLOSING;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* no request is in flight (the node has no user left): a soft disconnect */
	disc_len = encode_request(disc, &(struct nbd_request){ .type = NBD_CMD_DISC },
				  s->info.extended);
	pthread_mutex_lock(&s->send_lock);
	if (s->send_fd >= 0 && s->send_tls) {
		if (!nbd_tls_client_writev(s->send_tls, &(struct iovec){ disc, disc_len }, 1))
			nbd_tls_client_bye(s->send_tls); /* the sender's end of the session */
	} else if (s->send_fd >= 0) {
		(void)!send(s->send_fd, disc, disc_len, MSG_NOSIGNAL);
	}
	pthread_mutex_unlock(&s->send_lock);
	pthread_mutex_lock(&s->lock);
	if (s->rx_fd >= 0) /* ends the receiver's read, or a reconnection's handshake */
		shutdown(s->rx_fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->rx, NULL);
	nbd_tls_client_free(s->tls); /* the receiver's drop freed it already, unless it never ran */
	if (s->fd >= 0)
		close(s->fd);
	state_free(s);
	bs->opaque = NULL;
}

const struct blockdev_driver blockdev_nbd = {
	.name = "nbd",
	.protocol = true,
	.open = nbd_open,
	.close = nbd_close,
	.preadv = nbd_preadv,
	.pwritev = nbd_pwritev,
	.pwritev_group = nbd_pwritev_group,
	.preadv_group = nbd_preadv_group,
	.flush = nbd_flush,
	.discard = nbd_discard,
	.write_zeroes = nbd_write_zeroes,
	.block_status = nbd_block_status,
	.truncate = nbd_truncate,
	.info = nbd_info,
};
