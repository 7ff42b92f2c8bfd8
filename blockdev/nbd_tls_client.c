/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD client's TLS session (nbd_client.h "TLS"): GnuTLS over the connection's blocking
 * socket, through push and pull functions of ours (send/recv, so that a timeout of the
 * handshake's socket options and the end of the stream keep their meaning: -ETIMEDOUT and
 * -ECONNRESET, as on a plain socket).
 *
 * Threads. GnuTLS lets one thread send and another receive on one session, provided nothing
 * else runs on it meanwhile: no TLS 1.2 renegotiation, no post-handshake authentication, no
 * false start, no key update of our own (GnuTLS's manual, "Thread safety"). This session does
 * none of those: the handshake runs before the session is handed out, a renegotiation request
 * from the server is ignored (the receiver never calls gnutls_handshake again), and
 * post-handshake authentication and false start are not enabled. A TLS 1.3 key update the
 * server asks for is answered by GnuTLS itself before the sender's next record. So the
 * driver's receiver thread only reads (nbd_tls_client_stream's read and readv) and its
 * senders, one at a time under the driver's send lock, only write (nbd_tls_client_writev,
 * nbd_tls_client_bye): the two sides keep apart state (rx_*, tx_*) and no lock is needed here.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "blockdev/nbd_client.h"
#include "blockdev/nbd_tls_priv.h"
#include "common/util.h"

#define RECORD 16384 /* a TLS record's largest plaintext: what one writev record carries */
#define MAX_WARNINGS 64 /* non-fatal returns of one handshake */

struct nbd_tls_client {
	gnutls_session_t gs;
	int fd;
	/* the receiver's side */
	int rx_err;          /* -errno of the last failed recv() */
	char rx_why[256];
	/* the sender's side */
	int tx_err;          /* -errno of the last failed send() */
	char tx_why[256];
	size_t tx_len;
	uint8_t tx[RECORD];  /* plaintext gathered into whole records */
};

/* ---- GnuTLS's transport ------------------------------------------------------------------ */

static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct nbd_tls_client *t = ptr;
	ssize_t n = recv(t->fd, buf, len, 0);

	if (n >= 0)
		return n;
	/* a blocking socket: EAGAIN is its receive timeout (the handshake's), not "try again" */
	t->rx_err = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	gnutls_transport_set_errno(t->gs, errno == EINTR ? EINTR : EIO);
	return -1;
}

static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct nbd_tls_client *t = ptr;
	struct pollfd p = { .fd = t->fd, .events = POLLIN };
	int n = poll(&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);

	if (n < 0)
		gnutls_transport_set_errno(t->gs, errno);
	return n;
}

static ssize_t push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
	struct nbd_tls_client *t = ptr;
	ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);

	if (n >= 0)
		return n;
	t->tx_err = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	gnutls_transport_set_errno(t->gs, errno == EINTR ? EINTR : EIO);
	return -1;
}

/* ---- failures ---------------------------------------------------------------------------- */

/* -errno for a GnuTLS failure @ret on one side; *@why gets the text of a TLS failure. */
static int failure(struct nbd_tls_client *t, int ret, int io_err, char *why, size_t len,
		   const char *what)
{
	if (ret == GNUTLS_E_PULL_ERROR || ret == GNUTLS_E_PUSH_ERROR)
		return io_err ? io_err : -EIO;
	if (ret == GNUTLS_E_PREMATURE_TERMINATION)
		return -ECONNRESET;
	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
		snprintf(why, len, "TLS %s: the server sent the alert '%s'", what,
			 gnutls_alert_get_name(gnutls_alert_get(t->gs)));
	else
		snprintf(why, len, "TLS %s failed: %s", what, gnutls_strerror(ret));
	return -EPROTO;
}

/* ---- the stream ---------------------------------------------------------------------------- */

/* The receiver's: exactly @len bytes of plaintext. */
static int tls_read(void *opaque, void *buf, size_t len)
{
	struct nbd_tls_client *t = opaque;
	uint8_t *p = buf;

	while (len) {
		ssize_t n = gnutls_record_recv(t->gs, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0) /* the server's close_notify */
			return -ECONNRESET;
		if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN || !gnutls_error_is_fatal((int)n))
			continue; /* a warning alert, a renegotiation request: ignored */
		return failure(t, (int)n, t->rx_err, t->rx_why, sizeof(t->rx_why), "receive");
	}
	return 0;
}

static int tls_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++) {
		int ret = tls_read(opaque, iov[i].iov_base, iov[i].iov_len);

		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The gathered plaintext as one record. */
static int flush_tx(struct nbd_tls_client *t)
{
	size_t off = 0;

	while (off < t->tx_len) {
		ssize_t n = gnutls_record_send(t->gs, t->tx + off, t->tx_len - off);

		if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
			continue; /* GnuTLS wants the same call again */
		if (n < 0) {
			t->tx_len = 0;
			return failure(t, (int)n, t->tx_err, t->tx_why, sizeof(t->tx_why), "send");
		}
		off += (size_t)n;
	}
	t->tx_len = 0;
	return 0;
}

int nbd_tls_client_writev(struct nbd_tls_client *t, const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left) {
			size_t n = MIN(left, sizeof(t->tx) - t->tx_len);

			memcpy(t->tx + t->tx_len, p, n);
			t->tx_len += n;
			p += n;
			left -= n;
			if (t->tx_len == sizeof(t->tx)) {
				int ret = flush_tx(t);

				if (ret < 0)
					return ret;
			}
		}
	}
	return flush_tx(t);
}

static int tls_write(void *opaque, const void *buf, size_t len)
{
	return nbd_tls_client_writev(opaque, &(struct iovec){ (void *)buf, len }, 1);
}

/* What a -EPROTO of the stream was: the last TLS failure of either side. */
static const char *tls_why(void *opaque)
{
	struct nbd_tls_client *t = opaque;

	return t->rx_why[0] ? t->rx_why : t->tx_why[0] ? t->tx_why : NULL;
}

void nbd_tls_client_stream(struct nbd_stream *s, struct nbd_tls_client *t)
{
	*s = (struct nbd_stream){ tls_read, tls_readv, tls_write, t, tls_why };
}

const char *nbd_tls_client_error(const struct nbd_tls_client *t)
{
	return t->rx_why[0] ? t->rx_why : t->tx_why;
}

/* ---- the session --------------------------------------------------------------------------- */

void nbd_tls_client_free(struct nbd_tls_client *t)
{
	if (!t)
		return;
	if (t->gs)
		gnutls_deinit(t->gs);
	free(t);
}

void nbd_tls_client_bye(struct nbd_tls_client *t)
{
	gnutls_bye(t->gs, GNUTLS_SHUT_WR); /* best effort: the connection ends anyway */
}

static int session_setup(struct nbd_tls_client *t, struct nbd_tls_creds *c, const char *host,
			 struct error **errp)
{
	int ret = gnutls_init(&t->gs, GNUTLS_CLIENT);

	if (ret < 0) {
		t->gs = NULL;
		goto fail;
	}
	ret = gnutls_priority_set_direct(t->gs, c->psk ? NBD_TLS_PRIORITY_PSK :
							 NBD_TLS_PRIORITY_X509, NULL);
	if (ret >= 0)
		ret = c->psk ? gnutls_credentials_set(t->gs, GNUTLS_CRD_PSK, c->psk_client) :
			       gnutls_credentials_set(t->gs, GNUTLS_CRD_CERTIFICATE, c->x509);
	if (ret < 0)
		goto fail;
	/* x509 with verify-peer: the handshake fails unless the CA signed the server's
	 * certificate and, with a host name, the certificate names it */
	if (!c->psk && c->verify_peer)
		gnutls_session_set_verify_cert(t->gs, host, 0);
	gnutls_transport_set_ptr(t->gs, t);
	gnutls_transport_set_push_function(t->gs, push);
	gnutls_transport_set_pull_function(t->gs, pull);
	gnutls_transport_set_pull_timeout_function(t->gs, pull_timeout);
	/* the socket's own timeouts bound the handshake (nbd_connect) */
	gnutls_handshake_set_timeout(t->gs, 0);
	return 0;
fail:
	error_setg(errp, "TLS: session set-up: %s", gnutls_strerror(ret));
	return -1;
}

/* Why the handshake failed, for the user: what the certificate check found, above all. */
static void handshake_failed(struct nbd_tls_client *t, struct nbd_tls_creds *c, int ret,
			     const char *host, struct error **errp)
{
	gnutls_datum_t out = { 0 };

	if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
	    gnutls_certificate_verification_status_print(
		    gnutls_session_get_verify_cert_status(t->gs), GNUTLS_CRT_X509, &out, 0) >= 0) {
		error_setg(errp, "TLS: the server's certificate was refused%s%s%s: %s",
			   host ? " (host name '" : "", host ? host : "", host ? "')" : "",
			   (const char *)out.data);
		gnutls_free(out.data);
		return;
	}
	char hint[160] = "";

	ret = failure(t, ret, t->rx_err ? t->rx_err : t->tx_err, t->rx_why, sizeof(t->rx_why),
		      "handshake");
	if (c->psk && ret != -ETIMEDOUT) /* what a server does with a key it lacks varies */
		snprintf(hint, sizeof(hint), " (does the server hold this key for user '%s'?)",
			 c->psk_user);
	if (ret == -ECONNRESET)
		error_setg(errp, "TLS handshake: the server closed the connection%s", hint);
	else if (ret == -ETIMEDOUT)
		error_setg(errp, "TLS handshake: the server did not answer in time");
	else if (ret != -EPROTO)
		error_setg(errp, "TLS handshake: %s%s", strerror(-ret), hint);
	else
		error_setg(errp, "%s%s", t->rx_why, hint);
}

struct nbd_tls_client *nbd_tls_client_start(struct nbd_tls_creds *creds, int fd,
					    const char *hostname, struct error **errp)
{
	struct nbd_tls_client *t = calloc(1, sizeof(*t));
	int ret;

	if (!t) {
		error_setg(errp, "TLS: out of memory");
		return NULL;
	}
	t->fd = fd;
	if (session_setup(t, creds, hostname, errp) < 0)
		goto err;
	/* warning alerts go on; a server that sends nothing else is not let loop for ever */
	for (int i = 0; i < MAX_WARNINGS; i++) {
		ret = gnutls_handshake(t->gs);
		if (ret >= 0 || gnutls_error_is_fatal(ret))
			break;
	}
	if (ret < 0) {
		handshake_failed(t, creds, ret, hostname, errp);
		goto err;
	}
	t->rx_err = t->tx_err = 0;
	return t;
err:
	nbd_tls_client_free(t);
	return NULL;
}
