/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server's transport: one client connection's socket on an iothread's io_uring, moving
 * the bytes of its nbd_conn (nbd_conn.h) with IORING_OP_RECV and IORING_OP_SENDMSG.
 *
 * Ownership. A client (struct nbd_client) and its conn belong to one iothread at a time, cl->it:
 * the server's iothread from the accept through the handshake (linked in srv->hs_clients), then
 * the iothread of the export it chose (linked in exp->clients). Only that thread arms its SQEs,
 * runs their completions and calls into the conn, so neither has a lock. The handshake runs on
 * the server's iothread and not on a control thread: a slow or silent client then costs no
 * thread, only its handshake deadline (srv->handshake_ms, a timer on that iothread).
 *
 * The move. When the conn's handshake ends (nbd_conn_ops.go) the conn is held: it parses
 * nothing more. Once neither a RECV nor a SENDMSG of the client is armed on the server's ring
 * (a completion could not run anywhere else), the client leaves srv->hs_clients and its
 * adoption is posted to the export's iothread (iothread_post orders everything written before
 * it), which links it in exp->clients and resumes the conn; bytes the client sent early wait in
 * the conn's buffer. An export being deleted when the adoption runs closes the client instead.
 *
 * TLS. After NBD_OPT_STARTTLS's reply went out in plaintext, the client's bytes pass through
 * its GnuTLS session (nbd_tls.h), still on the same thread: a RECV fills the session's
 * ciphertext buffer (which stays put while the RECV is armed), update() decrypts as much as the
 * conn takes and encrypts the conn's replies a record at a time while less than TLS_COUT_MAX
 * bytes of ciphertext wait, and a SENDMSG sends the session's chunks (which never move while it
 * is armed). The plaintext iovecs live on the stack: cl->iov belongs to the armed SENDMSG.
 * A clean end sends the close_notify before the shutdown.
 *
 * Splice. A plaintext connection in the transmission phase makes up to NBD_PIPES pipes as its
 * reads want them (both ends in the export's ring's fixed file table), within the server's
 * budget (srv->pipes_left, shared by every iothread, so pipes never take the descriptors
 * new connections need), and a read waits for one of them to be free rather than be copied
 * while they are all busy (they are, while the socket is the slower). The export fills one with a
 * read's bytes (page-cache references: nbd_export.c), the conn queues the reply's header with
 * a note that its data waits in that pipe (nbd_conn_tx_pipe), and send_op sends the header
 * with SENDMSG, then splices the pipe into the socket (IORING_OP_SPLICE, which io_uring runs
 * on its own workers). The pipe is free again once it is empty. A pipe a failed read left
 * bytes in is closed, not reused; the pipes close with the client.
 *
 * The end. A conn that is closed (a hard disconnect, the end of a soft one, a failed socket)
 * gets shutdown(2), which completes an armed RECV or SENDMSG at once; once nothing is armed and
 * no request is at the backend, the client is freed from a deferred completion (never inside
 * a conn callback), its fd closed, and the server told (nbd_server_conn_gone) so that a full
 * server accepts again and nbd_server_stop / nbd_export_del can see the count drop.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/nbd_internal.h"
#include "blockdev/nbd_tls.h"
#include "common/util.h"

static void update(struct nbd_client *cl);

static void unlink_client(struct nbd_client *cl)
{
	if (!cl->pprev)
		return;
	*cl->pprev = cl->next;
	if (cl->next)
		cl->next->pprev = cl->pprev;
	cl->next = NULL;
	cl->pprev = NULL;
}

static void link_client(struct nbd_client **head, struct nbd_client *cl)
{
	cl->next = *head;
	if (*head)
		(*head)->pprev = &cl->next;
	*head = cl;
	cl->pprev = head;
}

/* ---- pipes ---------------------------------------------------------------------------------- */

static void pipe_close(struct nbd_client *cl, struct nbd_pipe *p)
{
	for (int e = 0; e < 2; e++) {
		if (p->fd[e] < 0)
			continue;
		if (p->fix[e] >= 0)
			iothread_file_release(cl->it, p->fd[e]);
		close(p->fd[e]);
		p->fd[e] = p->fix[e] = -1;
	}
	if (!p->dead) {
		cl->live_pipes--;
		atomic_fetch_add(&cl->srv->pipes_left, 1);
	}
	p->dead = true;
	p->busy = true; /* never given out again */
}

/* A pipe is free again, or there is no pipe to wait for any more: one waiter (every waiter
 * when @all) goes on, the ones that cannot have a pipe any more reading into their buffers. */
static void pipe_wake(struct nbd_client *cl, bool all)
{
	bool none = !cl->live_pipes || nbd_conn_state(cl->conn) == NBD_CONN_CLOSED;

	while (cl->pipe_wait) {
		struct nbd_bio *b = cl->pipe_wait;

		cl->pipe_wait = b->next;
		if (!cl->pipe_wait)
			cl->pipe_wait_tail = &cl->pipe_wait;
		b->no_splice = none;
		nbd_export_restart(b);
		if (!all && !none)
			break;
	}
}

static void pipes_free(struct nbd_client *cl)
{
	for (unsigned int i = 0; i < cl->nr_pipes; i++)
		pipe_close(cl, &cl->pipes[i]);
	cl->nr_pipes = 0;
}

/*
 * One more pipe for @cl, of NBD_PIPE_SIZE bytes, both ends in the ring: 1 + its number, or 0
 * when the server's budget (srv->pipes_left), the fd limit, the user's pipe pages or the
 * ring's table say no (the connection then stops asking: its reads are copied instead).
 */
static int pipe_make(struct nbd_client *cl)
{
	struct nbd_pipe *p = &cl->pipes[cl->nr_pipes];

	if (cl->no_more_pipes || cl->nr_pipes == NBD_PIPES)
		return 0;
	if (atomic_fetch_sub(&cl->srv->pipes_left, 1) <= 0) {
		atomic_fetch_add(&cl->srv->pipes_left, 1);
		cl->no_more_pipes = true;
		return 0;
	}
	*p = (struct nbd_pipe){ .fd = { -1, -1 }, .fix = { -1, -1 } };
	cl->nr_pipes++;
	cl->live_pipes++;
	if (pipe2(p->fd, O_CLOEXEC) < 0 ||
	    fcntl(p->fd[1], F_SETPIPE_SZ, (int)NBD_PIPE_SIZE) < (int)NBD_PIPE_SIZE ||
	    (p->fix[0] = iothread_file_index(cl->it, p->fd[0])) < 0 ||
	    (p->fix[1] = iothread_file_index(cl->it, p->fd[1])) < 0) {
		pipe_close(cl, p);
		cl->nr_pipes--;
		cl->no_more_pipes = true;
		return 0;
	}
	p->busy = true;
	return (int)cl->nr_pipes;
}

int nbd_client_pipe_get(struct nbd_client *cl, uint64_t len, struct nbd_bio *b)
{
	int p;

	if (len < NBD_SPLICE_MIN || len > NBD_PIPE_SIZE || cl->tls ||
	    nbd_conn_state(cl->conn) == NBD_CONN_CLOSED)
		return 0;
	for (unsigned int i = 0; i < cl->nr_pipes; i++) {
		if (!cl->pipes[i].busy) {
			cl->pipes[i].busy = true;
			return (int)i + 1;
		}
	}
	p = pipe_make(cl);
	if (p || !cl->live_pipes)
		return p;
	b->next = NULL;
	*cl->pipe_wait_tail = b;
	cl->pipe_wait_tail = &b->next;
	return -1;
}

void nbd_client_pipe_put(struct nbd_client *cl, int p, bool dirty)
{
	if (dirty)
		pipe_close(cl, &cl->pipes[p - 1]);
	else
		cl->pipes[p - 1].busy = false;
	pipe_wake(cl, false);
}

/* ---- freeing --------------------------------------------------------------------------------- */

static bool finished(const struct nbd_client *cl)
{
	return nbd_conn_state(cl->conn) == NBD_CONN_CLOSED && !cl->recv_armed &&
	       !cl->send_armed && !nbd_conn_busy(cl->conn) && !cl->moving;
}

static void client_free(struct nbd_client *cl)
{
	struct nbd_server *srv = cl->srv;
	const char *why = nbd_conn_close_reason(cl->conn);
	struct nbd_export *exp;

	if (why[0])
		fprintf(stderr, "vireo: NBD client %s: %s\n", nbd_conn_peer(cl->conn), why);
	iothread_timer_cancel(cl->it, &cl->hs_timer);
	unlink_client(cl);
	pipes_free(cl);
	if (cl->fix >= 0)
		iothread_file_release(cl->it, cl->fd);
	close(cl->fd);
	nbd_tls_session_free(cl->tls);
	nbd_conn_free(cl->conn); /* drops its export reference (takes srv->lock) */
	exp = cl->counted_on_exp ? cl->exp : NULL;
	free(cl);
	nbd_server_conn_gone(srv, exp);
}

static void move(struct nbd_client *cl);

/* Moving and freeing happen here, in the completion phase after the callbacks that asked for
 * them returned: a client posted to another iothread or freed is not touched again. */
static void reap(struct iothread_op *op, int res)
{
	struct nbd_client *cl = container_of(op, struct nbd_client, reap_op);

	cl->reap_pending = false;
	if (cl->moving && !cl->recv_armed && !cl->send_armed)
		move(cl);
	else if (finished(cl))
		client_free(cl);
	else
		update(cl);
}

static void schedule_reap(struct nbd_client *cl)
{
	if (!cl->reap_pending) {
		cl->reap_pending = true;
		iothread_defer(cl->it, &cl->reap_op, 0);
	}
}

/* ---- socket I/O ------------------------------------------------------------------------------ */

static void recv_done(struct iothread_op *op, int res)
{
	struct nbd_client *cl = container_of(op, struct nbd_client, recv_op);

	cl->recv_armed = false;
	if (res < 0 && res != -EINTR && res != -EAGAIN)
		nbd_conn_close(cl->conn, res == -ECONNRESET ? "connection reset by the client" :
				 "receive failed");
	else if (res >= 0 && cl->tls) /* ciphertext: update() decrypts what the conn takes */
		nbd_tls_cin_done(cl->tls, (size_t)res);
	else if (res >= 0)
		nbd_conn_rx_done(cl->conn, (size_t)res); /* 0: end of stream */
	update(cl);
}

static void send_done(struct iothread_op *op, int res)
{
	struct nbd_client *cl = container_of(op, struct nbd_client, send_op);
	int p = cl->splice_pipe;

	cl->send_armed = false;
	cl->splice_pipe = 0;
	if (p && !res)
		res = -EIO; /* the pipe had nothing: never expected */
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		cl->send_failed = true;
		nbd_conn_close(cl->conn, res == -EPIPE || res == -ECONNRESET ?
				 "the client went away before reading its replies" : "send failed");
	} else if (res > 0 && cl->send_cipher) {
		nbd_tls_cout_done(cl->tls, (size_t)res);
	} else if (res > 0) {
		nbd_conn_tx_done(cl->conn, (size_t)res);
	}
	if (p && res > 0 && nbd_conn_tx_pipe(cl->conn, &(size_t){ 0 }) != p) {
		cl->pipes[p - 1].busy = false; /* its reply went out (or never will: closed) */
		pipe_wake(cl, false);
	}
	update(cl);
}

static bool arm_recv(struct nbd_client *cl, void *buf, size_t len)
{
	struct io_uring_sqe *sqe = iothread_get_sqe(cl->it, &cl->recv_op);

	if (!sqe)
		return false;
	io_uring_prep_recv(sqe, cl->fd, buf, len, 0);
	iothread_sqe_fixed(sqe, cl->fix);
	cl->recv_armed = true;
	return true;
}

/* Sends cl->iov[0, n): the session's ciphertext when @cipher, else the conn's plaintext. */
static bool arm_send(struct nbd_client *cl, int n, bool cipher)
{
	struct io_uring_sqe *sqe = iothread_get_sqe(cl->it, &cl->send_op);

	if (!sqe)
		return false;
	cl->msg = (struct msghdr){ .msg_iov = cl->iov, .msg_iovlen = (size_t)n };
	io_uring_prep_sendmsg(sqe, cl->fd, &cl->msg, MSG_NOSIGNAL);
	iothread_sqe_fixed(sqe, cl->fix);
	cl->send_armed = true;
	cl->send_cipher = cipher;
	return true;
}

/* Splices the next @len bytes of pipe @p (1 + its number) into the socket. */
static bool arm_splice(struct nbd_client *cl, int p, size_t len)
{
	struct io_uring_sqe *sqe = iothread_get_sqe(cl->it, &cl->send_op);

	if (!sqe)
		return false;
	io_uring_prep_splice(sqe, cl->pipes[p - 1].fix[0], -1, cl->fix, -1,
			     (unsigned int)MIN(len, (size_t)UINT32_MAX),
			     SPLICE_F_FD_IN_FIXED | SPLICE_F_MOVE);
	iothread_sqe_fixed(sqe, cl->fix);
	cl->send_armed = true;
	cl->send_cipher = false;
	cl->splice_pipe = p;
	return true;
}

/* ---- the move to the export's iothread ------------------------------------------------------- */

static void adopt(void *arg)
{
	struct nbd_client *cl = arg;
	struct nbd_export *exp = cl->exp;
	bool gone;

	cl->it = exp->it;
	cl->moving = false;
	pthread_mutex_lock(&exp->srv->lock);
	gone = exp->deleting;
	pthread_mutex_unlock(&exp->srv->lock);
	link_client(&exp->clients, cl);
	cl->fix = gone ? -1 : iothread_file_index(cl->it, cl->fd);
	if (gone)
		nbd_conn_close(cl->conn, "the export was deleted");
	else if (cl->fix < 0)
		nbd_conn_close(cl->conn, cl->fix == -EMFILE ? "the export's iothread cannot take "
			       "the socket: its ring's fixed file table is full" : "the export's "
			       "iothread cannot register the socket in its ring");
	else
		nbd_conn_resume(cl->conn);
	update(cl);
}

static void move(struct nbd_client *cl)
{
	iothread_timer_cancel(cl->it, &cl->hs_timer);
	unlink_client(cl);
	/* the slot is this ring's: the export's iothread registers the socket in its own */
	iothread_file_release(cl->it, cl->fd);
	cl->fix = -1;
	if (iothread_post(cl->exp->it, adopt, cl) == 0)
		return;
	/* no memory for the message: stay, and end the connection here */
	link_client(&cl->srv->hs_clients, cl);
	cl->moving = false;
	nbd_conn_close(cl->conn, "out of memory while entering the transmission phase");
	update(cl);
}

void nbd_client_go(void *opaque, struct nbd_conn *c, struct nbd_export *exp)
{
	struct nbd_client *cl = opaque;

	cl->exp = exp;
	cl->moving = true;
	pthread_mutex_lock(&cl->srv->lock);
	exp->nr_conns++;
	cl->counted_on_exp = true;
	pthread_mutex_unlock(&cl->srv->lock);
}

/* ---- what to do next ------------------------------------------------------------------------- */

#define TLS_COUT_MAX (256 * 1024) /* ciphertext queued before encrypting more replies */

/* A closed conn: shut the socket down (after a clean TLS close_notify), free it when idle. */
static void update_closed(struct nbd_client *cl)
{
	bool clean = !nbd_conn_close_reason(cl->conn)[0] && !cl->forced && !cl->send_failed;
	/* a client refused at the end of its TLS handshake: the access_denied alert goes out */
	bool refused = cl->tls && !cl->tls_ready && !cl->forced && !cl->send_failed;

	cl->moving = false;
	pipe_wake(cl, true); /* reads waiting for a pipe read into their buffers and end */
	if (clean && cl->tls && cl->tls_ready && !cl->bye_done) {
		cl->bye_done = true;
		nbd_tls_bye(cl->tls);
	}
	if (!cl->shut && (clean || refused) && cl->tls && nbd_tls_cout_pending(cl->tls)) {
		int n = cl->send_armed ? 0 : nbd_tls_cout_iov(cl->tls, cl->iov, NBD_TX_IOV);

		if (!cl->send_armed && (!n || !arm_send(cl, n, true)))
			cl->send_failed = true;
		if (!cl->send_failed)
			return; /* the alert goes first */
	}
	if (!cl->shut) {
		shutdown(cl->fd, SHUT_RDWR); /* completes what is armed */
		cl->shut = true;
	}
	if (finished(cl))
		schedule_reap(cl);
}

/* STARTTLS was accepted: once its plaintext reply is out, the session starts. */
static bool start_tls(struct nbd_client *cl)
{
	struct error *err = NULL;
	int n;

	if (cl->send_armed)
		return false;
	n = nbd_conn_tx_iov(cl->conn, cl->iov, NBD_TX_IOV);
	if (n) {
		if (!arm_send(cl, n, false))
			nbd_conn_close(cl->conn, "the iothread's ring is broken");
		return false;
	}
	cl->tls_start = false;
	cl->tls = nbd_tls_session_new(cl->srv->tls, cl->srv->authz, &err);
	if (!cl->tls) {
		nbd_conn_close(cl->conn, error_msg(err));
		error_free(err);
		return false;
	}
	return true;
}

/* TLS: handshake, then encrypt replies and decrypt requests as the conn takes them. */
static void update_tls(struct nbd_client *cl)
{
	struct nbd_conn *c = cl->conn;
	const char *why = NULL;
	size_t room = 0;
	void *buf;

	if (!cl->tls_ready) {
		int r = nbd_tls_handshake(cl->tls, &why);

		if (r == -EPROTO) {
			nbd_conn_close(c, why);
			return;
		}
		if (!r) {
			cl->tls_ready = true;
			nbd_conn_tls_done(c); /* calls back: update() runs again */
		}
	}
	while (cl->tls_ready && nbd_tls_cout_pending(cl->tls) < TLS_COUT_MAX) {
		/* not cl->iov: an armed SENDMSG's msghdr points at it */
		struct iovec plain[16];
		int n = nbd_conn_tx_iov(c, plain, (int)ARRAY_SIZE(plain));
		size_t taken = 0;

		if (!n)
			break;
		for (int i = 0; i < n; i++) {
			ssize_t w = nbd_tls_write(cl->tls, plain[i].iov_base, plain[i].iov_len, &why);

			if (w < 0) {
				nbd_conn_close(c, why);
				return;
			}
			taken += (size_t)w;
			if ((size_t)w < plain[i].iov_len)
				break; /* one record at a time */
		}
		nbd_conn_tx_done(c, taken);
	}
	if (!cl->send_armed) {
		int n = nbd_tls_cout_iov(cl->tls, cl->iov, NBD_TX_IOV);

		if (n && !arm_send(cl, n, true)) {
			nbd_conn_close(c, "the iothread's ring is broken");
			return;
		}
	}
	while (cl->tls_ready && (buf = nbd_conn_rx_buf(c, &room)) && room) {
		ssize_t r = nbd_tls_read(cl->tls, buf, room, &why);

		if (r == -EAGAIN)
			break;
		if (r < 0) {
			nbd_conn_close(c, why);
			return;
		}
		nbd_conn_rx_done(c, (size_t)r); /* 0: the end of the client's stream */
		if (!r)
			return;
	}
	if (!cl->recv_armed && (!cl->tls_ready || room)) {
		buf = nbd_tls_cin_buf(cl->tls, &room);
		if (room && !arm_recv(cl, buf, room))
			nbd_conn_close(c, "the iothread's ring is broken");
	}
}

static void update_plain(struct nbd_client *cl)
{
	struct nbd_conn *c = cl->conn;
	size_t len;
	void *buf;

	if (!cl->send_armed) {
		size_t plen;
		int p = nbd_conn_tx_pipe(c, &plen);
		int n = p ? 0 : nbd_conn_tx_iov(c, cl->iov, NBD_TX_IOV);

		if ((p && !arm_splice(cl, p, plen)) || (n && !arm_send(cl, n, false))) {
			nbd_conn_close(c, "the iothread's ring is broken");
			return;
		}
	}
	if (!cl->recv_armed && nbd_conn_state(c) != NBD_CONN_HELD) {
		buf = nbd_conn_rx_buf(c, &len);
		if (len && !arm_recv(cl, buf, len))
			nbd_conn_close(c, "the iothread's ring is broken");
	}
}

static void update_once(struct nbd_client *cl)
{
	if (nbd_conn_state(cl->conn) == NBD_CONN_CLOSED) {
		update_closed(cl);
		return;
	}
	if (cl->moving) {
		if (!cl->recv_armed && !cl->send_armed)
			schedule_reap(cl);
		return;
	}
	if (cl->tls_start && !start_tls(cl))
		return;
	if (cl->tls)
		update_tls(cl);
	else
		update_plain(cl);
}

/*
 * Arms what the conn wants (one RECV, one SENDMSG at most), moves it, or frees it (deferred).
 * The conn's entry points called from here call back (nbd_client_wake): that only asks for
 * another round.
 */
static void update(struct nbd_client *cl)
{
	if (cl->in_update) {
		cl->update_again = true;
		return;
	}
	cl->in_update = true;
	do {
		cl->update_again = false;
		update_once(cl);
	} while (cl->update_again);
	cl->in_update = false;
}

void nbd_client_wake(void *opaque, struct nbd_conn *c)
{
	update(opaque);
}

void nbd_client_starttls(void *opaque, struct nbd_conn *c)
{
	struct nbd_client *cl = opaque;

	cl->tls_start = true; /* update() starts the session once the reply is sent */
}

/* ---- start and forced ends ------------------------------------------------------------------- */

static void handshake_late(struct iothread_timer *t)
{
	struct nbd_client *cl = container_of(t, struct nbd_client, hs_timer);

	if (nbd_conn_state(cl->conn) == NBD_CONN_HANDSHAKE)
		nbd_conn_close(cl->conn, "the handshake did not finish in time");
}

int nbd_client_start(struct nbd_server *srv, int fd, const char *peer)
{
	struct nbd_client *cl = calloc(1, sizeof(*cl));

	if (!cl)
		goto err;
	cl->conn = nbd_conn_new(&nbd_server_conn_ops, cl, sizeof(struct nbd_bio), NULL, peer);
	if (!cl->conn)
		goto err;
	cl->srv = srv;
	cl->fd = fd;
	cl->it = srv->it;
	cl->fix = iothread_file_index(cl->it, fd);
	if (cl->fix < 0) {
		fprintf(stderr, "vireo: NBD client %s: refused: the server's iothread cannot "
			"register its socket in its ring's fixed file table: %s\n", peer,
			cl->fix == -EMFILE ? "the table is full" : strerror(-cl->fix));
		nbd_conn_free(cl->conn);
		free(cl);
		close(fd);
		return -1;
	}
	cl->pipe_wait_tail = &cl->pipe_wait;
	cl->recv_op.complete = recv_done;
	cl->send_op.complete = send_done;
	cl->reap_op.complete = reap;
	cl->hs_timer.fire = handshake_late;
	if (srv->tls)
		nbd_conn_require_tls(cl->conn);
	link_client(&srv->hs_clients, cl);
	iothread_timer_arm(cl->it, &cl->hs_timer,
			   iothread_clock_ns() + (uint64_t)srv->handshake_ms * 1000000);
	update(cl); /* the greeting */
	return 0;
err:
	fprintf(stderr, "vireo: NBD client %s: out of memory\n", peer);
	free(cl);
	close(fd);
	return -1;
}

void nbd_clients_close(struct nbd_client *list, const char *reason)
{
	for (struct nbd_client *cl = list, *next; cl; cl = next) {
		next = cl->next; /* update() may only defer the free: the list stays */
		cl->forced = true; /* no close_notify waits for a client that may not read */
		nbd_conn_close(cl->conn, reason);
		update(cl);
	}
}

