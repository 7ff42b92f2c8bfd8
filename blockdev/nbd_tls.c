/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GnuTLS credentials and server sessions for the NBD server; see nbd_tls.h for who owns what.
 * A session's ciphertext buffers are its own: cin holds what the socket delivered and GnuTLS
 * has not pulled yet (at most NBD_TLS_CIN bytes: the transport stops receiving when it is
 * full), cout what GnuTLS pushed and the socket has not taken yet (the transport encrypts more
 * only while less than its own bound is queued).
 */
#include <errno.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/nbd_tls_priv.h"
#include "common/util.h"

#define NBD_TLS_CIN (64 * 1024)

#define COUT_CHUNK (64 * 1024)

struct cout_chunk {
	struct cout_chunk *next;
	size_t start, end; /* unsent bytes: data[start, end) */
	uint8_t data[COUT_CHUNK];
};

struct nbd_tls_session {
	struct nbd_tls_creds *creds;
	const struct nbd_tls_authz *authz;
	gnutls_session_t gs;
	uint8_t *cin;
	size_t cin_pos, cin_len;
	size_t cin_wr;   /* where the receive handed out by nbd_tls_cin_buf writes */
	bool cin_busy;   /* that receive has not completed: cin must not move */
	bool cin_eof;
	/* ciphertext to send, in chunks that never move (a SENDMSG may point into them) */
	struct cout_chunk *cout_head, *cout_tail;
	size_t cout_pending;
	bool cout_oom;
	char why[1200]; /* the last failure, for nbd_tls_*'s *why */
};

static const char *failed(struct nbd_tls_session *s, const char *what, int ret)
{
	snprintf(s->why, sizeof(s->why), "TLS %s failed: %s", what,
		 s->cout_oom ? "out of memory" : gnutls_strerror(ret));
	return s->why;
}

/* ---- GnuTLS's transport: our buffers --------------------------------------------------------- */

static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct nbd_tls_session *s = ptr;
	size_t n;

	if (!s->cin_len) {
		if (s->cin_eof)
			return 0;
		gnutls_transport_set_errno(s->gs, EAGAIN);
		return -1;
	}
	n = MIN(len, s->cin_len);
	memcpy(buf, s->cin + s->cin_pos, n);
	s->cin_pos += n;
	s->cin_len -= n;
	if (!s->cin_len && !s->cin_busy) /* a receive in flight writes past what we hold */
		s->cin_pos = 0;
	return (ssize_t)n;
}

static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct nbd_tls_session *s = ptr;

	return s->cin_len || s->cin_eof; /* never waits: the iothread does not block */
}

static ssize_t push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
	struct nbd_tls_session *s = ptr;
	const uint8_t *p = buf;
	size_t left = len;

	while (left) {
		struct cout_chunk *t = s->cout_tail;
		size_t n;

		if (!t || t->end == COUT_CHUNK) {
			t = malloc(sizeof(*t));
			if (!t) {
				s->cout_oom = true;
				gnutls_transport_set_errno(s->gs, ENOMEM);
				return len == left ? -1 : (ssize_t)(len - left);
			}
			t->next = NULL;
			t->start = t->end = 0;
			if (s->cout_tail)
				s->cout_tail->next = t;
			else
				s->cout_head = t;
			s->cout_tail = t;
		}
		n = MIN(left, COUT_CHUNK - t->end);
		memcpy(t->data + t->end, p, n);
		t->end += n;
		p += n;
		left -= n;
		s->cout_pending += n;
	}
	return (ssize_t)len;
}

/* ---- sessions -------------------------------------------------------------------------------- */

struct nbd_tls_session *nbd_tls_session_new(struct nbd_tls_creds *creds,
					    const struct nbd_tls_authz *authz,
					    struct error **errp)
{
	struct nbd_tls_session *s = calloc(1, sizeof(*s));
	const char *err_pos = NULL;
	int ret;

	if (!s || !(s->cin = malloc(NBD_TLS_CIN))) {
		free(s);
		error_setg(errp, "TLS: out of memory");
		return NULL;
	}
	s->creds = creds;
	s->authz = authz;
	ret = gnutls_init(&s->gs, GNUTLS_SERVER | GNUTLS_NONBLOCK);
	if (ret < 0) {
		free(s->cin);
		free(s);
		error_setg(errp, "TLS: gnutls_init: %s", gnutls_strerror(ret));
		return NULL;
	}
	ret = gnutls_priority_set_direct(s->gs, creds->psk ? NBD_TLS_PRIORITY_PSK :
							     NBD_TLS_PRIORITY_X509, &err_pos);
	if (ret >= 0)
		ret = creds->psk ? gnutls_credentials_set(s->gs, GNUTLS_CRD_PSK, creds->psk_server) :
				   gnutls_credentials_set(s->gs, GNUTLS_CRD_CERTIFICATE, creds->x509);
	if (ret < 0) {
		error_setg(errp, "TLS: session set-up: %s", gnutls_strerror(ret));
		nbd_tls_session_free(s);
		return NULL;
	}
	if (!creds->psk)
		gnutls_certificate_server_set_request(s->gs, creds->verify_peer ?
							      GNUTLS_CERT_REQUIRE :
							      GNUTLS_CERT_IGNORE);
	gnutls_transport_set_ptr(s->gs, s);
	gnutls_session_set_ptr(s->gs, creds); /* for the PSK lookup (nbd_tls_creds.c) */
	gnutls_transport_set_push_function(s->gs, push);
	gnutls_transport_set_pull_function(s->gs, pull);
	gnutls_transport_set_pull_timeout_function(s->gs, pull_timeout);
	return s;
}

void nbd_tls_session_free(struct nbd_tls_session *s)
{
	if (!s)
		return;
	gnutls_deinit(s->gs);
	free(s->cin);
	while (s->cout_head) {
		struct cout_chunk *c = s->cout_head;

		s->cout_head = c->next;
		free(c);
	}
	free(s);
}

void *nbd_tls_cin_buf(struct nbd_tls_session *s, size_t *len)
{
	if (s->cin_pos) {
		memmove(s->cin, s->cin + s->cin_pos, s->cin_len);
		s->cin_pos = 0;
	}
	*len = s->cin_eof ? 0 : NBD_TLS_CIN - s->cin_len;
	/* until nbd_tls_cin_done, GnuTLS may pull what is held, but nothing moves */
	s->cin_wr = s->cin_len;
	s->cin_busy = *len > 0;
	return s->cin + s->cin_len;
}

void nbd_tls_cin_done(struct nbd_tls_session *s, size_t n)
{
	if (!s->cin_busy) /* nothing was handed out */
		return;
	s->cin_busy = false;
	if (!n)
		s->cin_eof = true;
	/* the bytes landed at cin_wr; GnuTLS consumed from cin_pos meanwhile, never past it */
	s->cin_len = s->cin_wr + n - s->cin_pos;
	if (!s->cin_len)
		s->cin_pos = 0;
}

int nbd_tls_cout_iov(struct nbd_tls_session *s, struct iovec *iov, int max)
{
	int n = 0;

	for (struct cout_chunk *c = s->cout_head; c && n < max; c = c->next)
		if (c->end > c->start)
			iov[n++] = (struct iovec){ c->data + c->start, c->end - c->start };
	return n;
}

void nbd_tls_cout_done(struct nbd_tls_session *s, size_t n)
{
	while (n && s->cout_head) {
		struct cout_chunk *c = s->cout_head;
		size_t k = MIN(n, c->end - c->start);

		c->start += k;
		n -= k;
		s->cout_pending -= k;
		if (c->start < c->end)
			break;
		if (c == s->cout_tail) { /* the last one: keep it for what comes next */
			c->start = c->end = 0;
			break;
		}
		s->cout_head = c->next;
		free(c);
	}
}

size_t nbd_tls_cout_pending(const struct nbd_tls_session *s)
{
	return s->cout_pending;
}

/* The distinguished name of the client's certificate into @dn, as QEMU's tls-authz takes it
 * (gnutls_x509_crt_get_dn); -1 when there is no certificate or it cannot be read. */
static int peer_dn(struct nbd_tls_session *s, char *dn, size_t len)
{
	unsigned int n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(s->gs, &n);
	gnutls_x509_crt_t crt;
	size_t size = len;
	int ret;

	if (!certs || !n || gnutls_x509_crt_init(&crt) < 0)
		return -1;
	ret = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
	if (ret >= 0)
		ret = gnutls_x509_crt_get_dn(crt, dn, &size);
	gnutls_x509_crt_deinit(crt);
	return ret < 0 ? -1 : 0;
}

/* The handshake is done: the client's certificate, and whom the tls-authz lets in. */
static int check_peer(struct nbd_tls_session *s, const char **why)
{
	unsigned int status = 0;
	char dn[1025]; /* nbd_tls_obj.c takes identities of up to 1024 bytes */
	int ret;

	if (s->creds->psk || !s->creds->verify_peer)
		return 0;
	ret = gnutls_certificate_verify_peers2(s->gs, &status);
	if (ret < 0 || status) {
		*why = "TLS: the client's certificate was not verified by the CA";
		return -EPROTO;
	}
	if (!s->authz)
		return 0;
	if (peer_dn(s, dn, sizeof(dn)) < 0) {
		snprintf(s->why, sizeof(s->why), "TLS: the client's certificate has no "
			 "distinguished name that tls-authz '%s' could check (at most %zu bytes)",
			 nbd_tls_authz_id(s->authz), sizeof(dn) - 1);
	} else if (!nbd_tls_authz_allows(s->authz, dn)) {
		snprintf(s->why, sizeof(s->why), "TLS: the client's certificate '%s' is not "
			 "allowed by tls-authz '%s'", dn, nbd_tls_authz_id(s->authz));
	} else {
		return 0;
	}
	/* the client learns why from the alert, rather than from a closed connection */
	gnutls_alert_send(s->gs, GNUTLS_AL_FATAL, GNUTLS_A_ACCESS_DENIED);
	*why = s->why;
	return -EPROTO;
}

int nbd_tls_handshake(struct nbd_tls_session *s, const char **why)
{
	for (;;) {
		int ret = gnutls_handshake(s->gs);

		if (ret == 0)
			return check_peer(s, why);
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			if (s->cin_eof) {
				*why = "TLS: the client closed the connection during the handshake";
				return -EPROTO;
			}
			return -EAGAIN;
		}
		if (gnutls_error_is_fatal(ret)) {
			*why = failed(s, "handshake", ret);
			/* queued for the client (the transport sends it before the end) */
			gnutls_alert_send_appropriate(s->gs, ret);
			return -EPROTO;
		}
		/* a warning alert: go on */
	}
}

ssize_t nbd_tls_read(struct nbd_tls_session *s, void *buf, size_t len, const char **why)
{
	for (;;) {
		ssize_t ret = gnutls_record_recv(s->gs, buf, len);

		if (ret >= 0)
			return ret;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			return s->cin_eof ? 0 : -EAGAIN; /* no close_notify: the stream just ended */
		if (ret == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		if (gnutls_error_is_fatal((int)ret)) {
			*why = failed(s, "receive", (int)ret);
			return -EPROTO;
		}
		/* a warning alert, or a renegotiation request we ignore: read on */
	}
}

ssize_t nbd_tls_write(struct nbd_tls_session *s, const void *buf, size_t len, const char **why)
{
	ssize_t ret;

	do
		ret = gnutls_record_send(s->gs, buf, len);
	while (ret == GNUTLS_E_INTERRUPTED);
	if (ret < 0) {
		*why = failed(s, "send", (int)ret);
		return -EPROTO;
	}
	return ret;
}

void nbd_tls_bye(struct nbd_tls_session *s)
{
	gnutls_bye(s->gs, GNUTLS_SHUT_WR);
}
