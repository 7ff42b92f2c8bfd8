/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GnuTLS credentials and server sessions for the NBD server; see nbd_tls.h for who owns what.
 * A session's ciphertext buffers are its own: cin holds what the socket delivered and GnuTLS
 * has not pulled yet (at most NBD_TLS_CIN bytes: the transport stops receiving when it is
 * full), cout what GnuTLS pushed and the socket has not taken yet (the transport encrypts more
 * only while less than its own bound is queued).
 */
#include "blockdev/nbd_tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#define NBD_TLS_CIN (64 * 1024)
/* TLS 1.2 at least (proto.md "TLS versions"); PSK suites only with PSK credentials */
#define PRIORITY_X509 "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"
#define PRIORITY_PSK "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:+ECDHE-PSK:+DHE-PSK:+PSK"

struct psk_key {
	char *user;
	gnutls_datum_t key;
};

struct nbd_tls_creds {
	bool psk;
	bool verify_peer;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_server_credentials_t pskc;
	/* keys.psk, read once here: a handshake runs on an iothread, whose sandbox opens nothing */
	struct psk_key *keys;
	size_t nr_keys;
};

#define COUT_CHUNK (64 * 1024)

struct cout_chunk {
	struct cout_chunk *next;
	size_t start, end; /* unsent bytes: data[start, end) */
	uint8_t data[COUT_CHUNK];
};

struct nbd_tls_session {
	struct nbd_tls_creds *creds;
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
	char why[160]; /* the last failure, for nbd_tls_*'s *why */
};

static const char *failed(struct nbd_tls_session *s, const char *what, int ret)
{
	snprintf(s->why, sizeof(s->why), "TLS %s failed: %s", what,
		 s->cout_oom ? "out of memory" : gnutls_strerror(ret));
	return s->why;
}

/* ---- credentials ----------------------------------------------------------------------------- */

static char *path_in(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

void nbd_tls_creds_free(struct nbd_tls_creds *c)
{
	if (!c)
		return;
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	if (c->pskc)
		gnutls_psk_free_server_credentials(c->pskc);
	for (size_t i = 0; i < c->nr_keys; i++) {
		free(c->keys[i].user);
		gnutls_memset(c->keys[i].key.data, 0, c->keys[i].key.size);
		gnutls_free(c->keys[i].key.data);
	}
	free(c->keys);
	free(c);
}

/* Loads @dir/@name with @load; -1 with a message naming the file when it fails. */
static int load_x509(struct nbd_tls_creds *c, const char *dir, const char *name, bool required,
		     int (*load)(gnutls_certificate_credentials_t, const char *,
				 gnutls_x509_crt_fmt_t),
		     const char *what, struct error **errp)
{
	char *p = path_in(dir, name);
	int ret;

	if (!p) {
		error_setg(errp, "out of memory");
		return -1;
	}
	if (!required && access(p, R_OK) != 0) {
		free(p);
		return 0;
	}
	ret = load(c->x509, p, GNUTLS_X509_FMT_PEM);
	if (ret < 0)
		error_setg(errp, "TLS: cannot load the %s '%s': %s", what, p, gnutls_strerror(ret));
	free(p);
	return ret < 0 ? -1 : 0;
}

struct nbd_tls_creds *nbd_tls_creds_x509_new(const char *dir, bool verify_peer,
					     struct error **errp)
{
	struct nbd_tls_creds *c = calloc(1, sizeof(*c));
	char *cert = NULL, *key = NULL;
	int ret;

	if (!c || gnutls_certificate_allocate_credentials(&c->x509) < 0) {
		error_setg(errp, "TLS: out of memory");
		goto err;
	}
	c->verify_peer = verify_peer;
	if (load_x509(c, dir, "ca-cert.pem", verify_peer, gnutls_certificate_set_x509_trust_file,
		      "CA certificate", errp) < 0 ||
	    load_x509(c, dir, "ca-crl.pem", false, gnutls_certificate_set_x509_crl_file,
		      "certificate revocation list", errp) < 0)
		goto err;
	cert = path_in(dir, "server-cert.pem");
	key = path_in(dir, "server-key.pem");
	if (!cert || !key) {
		error_setg(errp, "TLS: out of memory");
		goto err;
	}
	ret = gnutls_certificate_set_x509_key_file(c->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		error_setg(errp, "TLS: cannot load the server certificate '%s' and key '%s': %s",
			   cert, key, gnutls_strerror(ret));
		goto err;
	}
	gnutls_certificate_set_known_dh_params(c->x509, GNUTLS_SEC_PARAM_MEDIUM);
	free(cert);
	free(key);
	return c;
err:
	free(cert);
	free(key);
	nbd_tls_creds_free(c);
	return NULL;
}

/* One "username:hexkey" line of keys.psk (psktool's format); -1 when it is not one. */
static int psk_parse_line(struct nbd_tls_creds *c, char *line)
{
	char *colon = strchr(line, ':');
	size_t n = strcspn(line, "\r\n");
	struct psk_key *k;
	gnutls_datum_t hex;

	line[n] = '\0';
	if (!n)
		return 0; /* blank lines are allowed */
	if (!colon || colon == line)
		return -1;
	*colon = '\0';
	k = realloc(c->keys, (c->nr_keys + 1) * sizeof(*k));
	if (!k)
		return -1;
	c->keys = k;
	k = &c->keys[c->nr_keys];
	hex = (gnutls_datum_t){ (unsigned char *)colon + 1, (unsigned int)strlen(colon + 1) };
	if (!hex.size || gnutls_hex_decode2(&hex, &k->key) < 0)
		return -1;
	k->user = strdup(line);
	if (!k->user) {
		gnutls_free(k->key.data);
		return -1;
	}
	c->nr_keys++;
	return 0;
}

static int psk_load(struct nbd_tls_creds *c, const char *path, struct error **errp)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned int no = 0;
	int ret = 0;

	if (!f) {
		error_setg_errno(errp, errno, "TLS: cannot read the pre-shared keys '%s'", path);
		return -1;
	}
	while (!ret && getline(&line, &cap, f) >= 0) {
		no++;
		if (psk_parse_line(c, line) < 0) {
			error_setg(errp, "TLS: '%s' line %u is not username:hexkey", path, no);
			ret = -1;
		}
	}
	if (line)
		gnutls_memset(line, 0, cap);
	free(line);
	fclose(f);
	if (!ret && !c->nr_keys) {
		error_setg(errp, "TLS: '%s' holds no key", path);
		ret = -1;
	}
	return ret;
}

/* GnuTLS asks for a client's key during the handshake: from memory. */
static int psk_lookup(gnutls_session_t gs, const gnutls_datum_t *user, gnutls_datum_t *key)
{
	struct nbd_tls_session *s = gnutls_session_get_ptr(gs);

	for (size_t i = 0; s && i < s->creds->nr_keys; i++) {
		const struct psk_key *k = &s->creds->keys[i];

		if (strlen(k->user) != user->size || memcmp(k->user, user->data, user->size))
			continue;
		key->data = gnutls_malloc(k->key.size);
		if (!key->data)
			return -1;
		memcpy(key->data, k->key.data, k->key.size);
		key->size = k->key.size;
		return 0;
	}
	return -1;
}

struct nbd_tls_creds *nbd_tls_creds_psk_new(const char *dir, struct error **errp)
{
	struct nbd_tls_creds *c = calloc(1, sizeof(*c));
	char *keys = path_in(dir, "keys.psk");

	if (!c || !keys || gnutls_psk_allocate_server_credentials(&c->pskc) < 0) {
		error_setg(errp, "TLS: out of memory");
		goto err;
	}
	c->psk = true;
	if (psk_load(c, keys, errp) < 0)
		goto err;
	gnutls_psk_set_server_credentials_function2(c->pskc, psk_lookup);
	gnutls_psk_set_server_known_dh_params(c->pskc, GNUTLS_SEC_PARAM_MEDIUM);
	free(keys);
	return c;
err:
	free(keys);
	nbd_tls_creds_free(c);
	return NULL;
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

struct nbd_tls_session *nbd_tls_session_new(struct nbd_tls_creds *creds, struct error **errp)
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
	ret = gnutls_init(&s->gs, GNUTLS_SERVER | GNUTLS_NONBLOCK);
	if (ret < 0) {
		free(s->cin);
		free(s);
		error_setg(errp, "TLS: gnutls_init: %s", gnutls_strerror(ret));
		return NULL;
	}
	ret = gnutls_priority_set_direct(s->gs, creds->psk ? PRIORITY_PSK : PRIORITY_X509,
					 &err_pos);
	if (ret >= 0)
		ret = creds->psk ? gnutls_credentials_set(s->gs, GNUTLS_CRD_PSK, creds->pskc) :
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
	gnutls_session_set_ptr(s->gs, s); /* for psk_lookup */
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

int nbd_tls_handshake(struct nbd_tls_session *s, const char **why)
{
	for (;;) {
		int ret = gnutls_handshake(s->gs);
		unsigned int status = 0;

		if (ret == 0) {
			if (s->creds->psk || !s->creds->verify_peer)
				return 0;
			ret = gnutls_certificate_verify_peers2(s->gs, &status);
			if (ret < 0 || status) {
				*why = "TLS: the client's certificate was not verified by the CA";
				return -EPROTO;
			}
			return 0;
		}
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			if (s->cin_eof) {
				*why = "TLS: the client closed the connection during the handshake";
				return -EPROTO;
			}
			return -EAGAIN;
		}
		if (gnutls_error_is_fatal(ret)) {
			*why = failed(s, "handshake", ret);
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
