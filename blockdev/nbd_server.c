/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server: listening sockets, accepting on the server's iothread (IORING_OP_ACCEPT),
 * max-connections, and start / stop. Connections are nbd_transport.c's, exports nbd_export.c's.
 *
 * Ownership. The listening sockets are created and closed by the control plane; their ACCEPTs
 * are armed, completed and cancelled on the server's iothread only. srv->nr_conns counts every
 * connection from its accept until it is freed, under srv->lock; a full server leaves its
 * ACCEPTs unarmed, and the iothread re-arms them when a connection is freed
 * (nbd_server_conn_gone posts that). Stopping: the stopping flag (under the lock) keeps new
 * connections and exports out, a message on the iothread cancels the ACCEPTs and disconnects
 * the handshakes, every export is deleted (which disconnects its clients), and the caller waits
 * on srv->cond until no connection is left; only then are the sockets closed and the server
 * freed, so nothing on any iothread still refers to it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "blockdev/nbd_internal.h"
#include "blockdev/nbd_tls.h"
#include "common/util.h"

#define LISTEN_BACKLOG 128
#define ACCEPT_RETRY_NS (100 * 1000000ull)

static void arm_accepts(struct nbd_server *srv);

/* ---- accepting (the server's iothread) ------------------------------------------------------- */

static void peer_name(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, size, "unix socket");
	}
}

/* Counts a new connection in; false when the server is full or stopping. */
static bool take_slot(struct nbd_server *srv)
{
	bool ok;

	pthread_mutex_lock(&srv->lock);
	ok = !srv->stopping && (!srv->max_conns || srv->nr_conns < srv->max_conns);
	if (ok)
		srv->nr_conns++;
	pthread_mutex_unlock(&srv->lock);
	return ok;
}

/* A connection slot we took and did not use. */
static void give_slot(struct nbd_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->nr_conns--;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

static void accept_retry(struct iothread_timer *t)
{
	struct nbd_listener *l = container_of(t, struct nbd_listener, retry);

	arm_accepts(l->srv);
}

static void accept_done(struct iothread_op *op, int res)
{
	struct nbd_listener *l = container_of(op, struct nbd_listener, op);
	struct nbd_server *srv = l->srv;
	char peer[96];

	l->armed = false;
	if (res < 0) {
		switch (res) {
		case -ECANCELED: /* stopping */
			return;
		case -EINTR:
		case -EAGAIN:
		case -ECONNABORTED:
			break;
		case -EMFILE:
		case -ENFILE:
		case -ENOBUFS:
		case -ENOMEM: /* try again later, not in a loop */
			fprintf(stderr, "vireo: NBD server: accept: %s\n", strerror(-res));
			iothread_timer_arm(srv->it, &l->retry, iothread_clock_ns() + ACCEPT_RETRY_NS);
			return;
		default:
			fprintf(stderr, "vireo: NBD server: accept: %s; no longer listening there\n",
				strerror(-res));
			l->dead = true;
			return;
		}
		arm_accepts(srv);
		return;
	}
	if (l->peer.ss_family == AF_INET || l->peer.ss_family == AF_INET6) {
		int one = 1;

		/* replies are whole messages: do not wait for more (proto.md recommends it) */
		setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	peer_name(&l->peer, l->peer_len, peer, sizeof(peer));
	if (!take_slot(srv)) { /* raced with stop, or a client added by fd filled it */
		close(res);
	} else if (nbd_client_start(srv, res, peer) < 0) {
		give_slot(srv);
	}
	arm_accepts(srv);
}

/* Arms an ACCEPT on every listener that has none, unless the server is full or stopping. */
static void arm_accepts(struct nbd_server *srv)
{
	bool room;

	pthread_mutex_lock(&srv->lock);
	room = !srv->stopping && (!srv->max_conns || srv->nr_conns < srv->max_conns);
	pthread_mutex_unlock(&srv->lock);
	if (!room)
		return;
	for (unsigned int i = 0; i < srv->nr_lis; i++) {
		struct nbd_listener *l = &srv->lis[i];
		struct io_uring_sqe *sqe;

		if (l->armed || l->dead || iothread_timer_armed(&l->retry))
			continue;
		sqe = iothread_get_sqe(srv->it, &l->op);
		if (!sqe)
			return;
		l->peer_len = sizeof(l->peer);
		io_uring_prep_accept(sqe, l->fd, (struct sockaddr *)&l->peer, &l->peer_len,
				     SOCK_CLOEXEC);
		iothread_sqe_fixed(sqe, l->fix);
		l->armed = true;
	}
}

static void rearm_msg(void *arg)
{
	arm_accepts(arg);
}

void nbd_server_conn_gone(struct nbd_server *srv, struct nbd_export *exp)
{
	bool here = iothread_is_current(srv->it), rearm;

	pthread_mutex_lock(&srv->lock);
	if (exp) /* alive: its teardown waits for this count before dropping its reference */
		exp->nr_conns--;
	srv->nr_conns--;
	/* a full server left its ACCEPTs unarmed; a stopping one is not touched after the
	 * broadcast below (nbd_server_stop may free it), and posts no more messages to it */
	rearm = !srv->stopping && srv->max_conns;
	if (rearm && !here)
		iothread_post(srv->it, rearm_msg, srv); /* no memory: the next free tries again */
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	if (rearm && here)
		arm_accepts(srv);
}

struct start_call {
	struct nbd_server *srv;
	struct error **errp;
};

/* The listening sockets into the ring's fixed file table (its SQEs name no plain fd), then the
 * ACCEPTs. */
static int start_on_iothread(void *arg)
{
	struct start_call *c = arg;
	struct nbd_server *srv = c->srv;

	for (unsigned int i = 0; i < srv->nr_lis; i++) {
		srv->lis[i].fix = iothread_file_register(srv->it, srv->lis[i].fd,
							 "the NBD server's listening socket", c->errp);
		if (srv->lis[i].fix < 0) {
			while (i--)
				iothread_file_release(srv->it, srv->lis[i].fd);
			return -EMFILE;
		}
	}
	arm_accepts(srv);
	return 0;
}

/* ---- listening sockets (control plane) ------------------------------------------------------- */

static int listen_fd(int family, const struct sockaddr *sa, socklen_t len, const char *what,
		     struct error **errp)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0) {
		error_setg_errno(errp, errno, "Failed to create a socket for %s", what);
		return -1;
	}
	if (family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) /* the IPv4 addresses get their own socket */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) < 0) {
		error_setg_errno(errp, errno, "Failed to bind socket to %s", what);
		goto err;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		error_setg_errno(errp, errno, "Failed to listen on %s", what);
		goto err;
	}
	return fd;
err:
	close(fd);
	return -1;
}

static int listen_unix(struct nbd_server *srv, const char *path, struct error **errp)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (!path || !path[0] || strlen(path) >= sizeof(sun.sun_path)) {
		error_setg(errp, "NBD server: unix socket path '%s' is empty or too long",
			   path ? path : "");
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* a socket file left by an earlier run would make bind fail; anything else stays */
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = listen_fd(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), path, errp);
	if (fd < 0)
		return -1;
	srv->unix_path = strdup(path);
	srv->lis[srv->nr_lis++].fd = fd;
	return 0;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

static int listen_inet(struct nbd_server *srv, const char *host, const char *port,
		       struct error **errp)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *res;
	char what[300];
	struct error *first = NULL;
	int ret;

	if (host && !host[0])
		host = NULL;
	if (!port || !port[0])
		port = "10809";
	snprintf(what, sizeof(what), "%s:%s", host ? host : "*", port);
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret) {
		error_setg(errp, "address resolution failed for %s: %s", what, gai_strerror(ret));
		return -1;
	}
	for (struct addrinfo *ai = res; ai && srv->nr_lis < NBD_MAX_LISTENERS; ai = ai->ai_next) {
		char name[INET6_ADDRSTRLEN + 16];
		int fd;

		peer_name((struct sockaddr_storage *)ai->ai_addr, ai->ai_addrlen, name,
			  sizeof(name));
		if (srv->port) { /* a port chosen by the kernel: the same on every address */
			if (ai->ai_family == AF_INET)
				((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)srv->port);
			else if (ai->ai_family == AF_INET6)
				((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)srv->port);
		}
		fd = listen_fd(ai->ai_family, ai->ai_addr, ai->ai_addrlen, what, &first);
		if (fd < 0)
			continue;
		srv->lis[srv->nr_lis++].fd = fd;
		if (!srv->port)
			srv->port = bound_port(fd);
	}
	freeaddrinfo(res);
	if (!srv->nr_lis) { /* every address failed: say why the first one did */
		error_propagate(errp, first);
		return -1;
	}
	error_free(first);
	return 0;
}

/* ---- start / stop ---------------------------------------------------------------------------- */

static void server_free(struct nbd_server *srv)
{
	for (unsigned int i = 0; i < srv->nr_lis; i++)
		close(srv->lis[i].fd);
	if (srv->unix_path)
		unlink(srv->unix_path);
	free(srv->unix_path);
	nbd_tls_creds_unref(srv->tls);
	nbd_tls_authz_free(srv->authz);
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

static void cancel_done(struct iothread_op *op, int res)
{
}

/* On the server's iothread: cancel the ACCEPTs and wait for them, end the handshakes. */
static int stop_on_iothread(void *arg)
{
	struct nbd_server *srv = arg;

	for (unsigned int i = 0; i < srv->nr_lis; i++) {
		struct nbd_listener *l = &srv->lis[i];
		struct io_uring_sqe *sqe;

		iothread_timer_cancel(srv->it, &l->retry);
		if (!l->armed)
			continue;
		sqe = iothread_get_sqe(srv->it, &srv->cancel_op);
		if (sqe)
			iothread_prep_cancel(sqe, &l->op);
	}
	for (unsigned int i = 0; i < srv->nr_lis; i++) {
		while (srv->lis[i].armed)
			if (iothread_wait_once(srv->it) < 0)
				break;
		if (srv->lis[i].fix >= 0)
			iothread_file_release(srv->it, srv->lis[i].fd);
		srv->lis[i].fix = -1;
	}
	nbd_clients_close(srv->hs_clients, "the server is stopping");
	return 0;
}

/* The TLS options fit together: server credentials, and a tls-authz that has a client
 * certificate to check. */
static int check_tls(const struct nbd_server_opts *o, struct error **errp)
{
	const char *name = o->tls_creds ? o->tls_creds : "";

	if (o->tls_creds && !o->tls) {
		error_setg(errp, "NBD server: TLS credentials '%s' not found", o->tls_creds);
		return -1;
	}
	if (o->tls && nbd_tls_creds_is_client(o->tls)) {
		error_setg(errp, "NBD server: TLS credentials '%s' are a client's (endpoint=client); "
			   "the server needs endpoint=server", name);
		return -1;
	}
	if (o->tls_authz && !o->authz) {
		error_setg(errp, "NBD server: tls-authz: no authz object '%s'", o->tls_authz);
		return -1;
	}
	if (!o->authz)
		return 0;
	if (!o->tls) {
		error_setg(errp, "NBD server: tls-authz '%s' needs tls-creds", o->tls_authz);
		return -1;
	}
	if (!nbd_tls_creds_verify_peer(o->tls)) {
		error_setg(errp, "NBD server: tls-authz '%s' checks the client's x509 certificate, "
			   "which TLS credentials '%s' do not ask for (%s)", o->tls_authz, name,
			   nbd_tls_creds_is_psk(o->tls) ? "tls-creds-psk" : "verify-peer=off");
		return -1;
	}
	return 0;
}

/* Pipes the server's connections may make for spliced reads: NBD_SERVER_PIPES, within an
 * eighth of the descriptors the process may have (two each: a quarter of them). */
static int pipe_budget(void)
{
	struct rlimit rl;
	rlim_t n = NBD_SERVER_PIPES;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = MIN(n, rl.rlim_cur / 8);
	return (int)n;
}

struct nbd_server *nbd_server_start(const struct nbd_server_opts *o, struct error **errp)
{
	struct nbd_server *srv;
	struct error *err = NULL;
	int ret;

	if (check_tls(o, errp) < 0)
		return NULL;
	if (!o->iothread) {
		error_setg(errp, "NBD server: no iothread given");
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		error_setg(errp, "NBD server: out of memory");
		return NULL;
	}
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->cond, NULL);
	srv->it = o->iothread;
	srv->tls = o->tls ? nbd_tls_creds_ref(o->tls) : NULL;
	if (o->authz && !(srv->authz = nbd_tls_authz_new(nbd_tls_authz_id(o->authz),
							 nbd_tls_authz_identity(o->authz),
							 errp)))
		goto err;
	srv->type = o->type;
	srv->max_conns = o->max_connections;
	srv->pipes_left = pipe_budget();
	srv->handshake_ms = o->handshake_ms ? o->handshake_ms : NBD_SERVER_HANDSHAKE_MS_DEFAULT;
	srv->cancel_op.complete = cancel_done;
	if (o->type == NBD_ADDR_UNIX)
		ret = listen_unix(srv, o->path, errp);
	else
		ret = listen_inet(srv, o->host, o->port, errp);
	if (ret < 0)
		goto err;
	for (unsigned int i = 0; i < srv->nr_lis; i++) {
		srv->lis[i].srv = srv;
		srv->lis[i].fix = -1;
		srv->lis[i].op.complete = accept_done;
		srv->lis[i].retry.fire = accept_retry;
	}
	ret = iothread_run_sync(srv->it, start_on_iothread, &(struct start_call){ srv, &err });
	if (ret < 0) {
		if (err)
			error_propagate(errp, err);
		else
			error_setg(errp, "NBD server: out of memory");
		goto err;
	}
	return srv;
err:
	server_free(srv);
	return NULL;
}

void nbd_server_stop(struct nbd_server *srv)
{
	if (!srv)
		return;
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_mutex_unlock(&srv->lock);
	while (iothread_run_sync(srv->it, stop_on_iothread, srv) < 0)
		usleep(1000); /* out of memory for the message */
	nbd_export_del_all(srv);
	pthread_mutex_lock(&srv->lock);
	while (srv->nr_conns)
		pthread_cond_wait(&srv->cond, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
	server_free(srv);
}

int nbd_server_port(const struct nbd_server *srv)
{
	return srv->type == NBD_ADDR_INET ? srv->port : 0;
}

struct add_client_arg {
	struct nbd_server *srv;
	int fd;
};

static int add_client_on_iothread(void *arg)
{
	struct add_client_arg *a = arg;

	return nbd_client_start(a->srv, a->fd, "client by fd");
}

int nbd_server_add_client(struct nbd_server *srv, int fd, struct error **errp)
{
	struct add_client_arg a = { srv, fd };
	int ret;

	if (!take_slot(srv)) {
		close(fd);
		error_setg(errp, "the NBD server is full or stopping");
		return -1;
	}
	ret = iothread_run_sync(srv->it, add_client_on_iothread, &a);
	if (ret == -ENOMEM) /* the message was not posted: the fd is still ours */
		close(fd);
	if (ret < 0) {
		give_slot(srv);
		error_setg(errp, "NBD server: out of memory for a new client");
		return -1;
	}
	return 0;
}
