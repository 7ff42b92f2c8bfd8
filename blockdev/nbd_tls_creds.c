/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS credentials for the NBD server and client, from the files QEMU's tls-creds-x509 and
 * tls-creds-psk objects name, and tls-authz identities (QEMU's authz-simple). Made on the
 * control plane; read-only afterwards (nbd_tls_priv.h says who shares them).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/nbd_tls_priv.h"

static char *path_in(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static struct nbd_tls_creds *creds_alloc(bool client, bool psk, struct error **errp)
{
	struct nbd_tls_creds *c = calloc(1, sizeof(*c));

	if (!c) {
		error_setg(errp, "TLS: out of memory");
		return NULL;
	}
	c->refs = 1;
	c->client = client;
	c->psk = psk;
	return c;
}

static void creds_free(struct nbd_tls_creds *c)
{
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	if (c->psk_server)
		gnutls_psk_free_server_credentials(c->psk_server);
	if (c->psk_client)
		gnutls_psk_free_client_credentials(c->psk_client);
	for (size_t i = 0; i < c->nr_keys; i++) {
		free(c->keys[i].user);
		gnutls_memset(c->keys[i].key.data, 0, c->keys[i].key.size);
		gnutls_free(c->keys[i].key.data);
	}
	free(c->keys);
	free(c->psk_user);
	free(c);
}

struct nbd_tls_creds *nbd_tls_creds_ref(struct nbd_tls_creds *c)
{
	/* a new holder of a pointer it already has: nothing to order */
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void nbd_tls_creds_unref(struct nbd_tls_creds *c)
{
	/* acq_rel: every holder's use happens before the last one frees */
	if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		creds_free(c);
}

bool nbd_tls_creds_is_client(const struct nbd_tls_creds *c)
{
	return c->client;
}

bool nbd_tls_creds_is_psk(const struct nbd_tls_creds *c)
{
	return c->psk;
}

bool nbd_tls_creds_verify_peer(const struct nbd_tls_creds *c)
{
	return !c->psk && c->verify_peer;
}

/* ---- x509 ------------------------------------------------------------------------------------ */

/* Loads @dir/@name with @load (a missing file that is not @required is skipped); -1 with a
 * message naming the file. */
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

/* @who's certificate and key (@who-cert.pem, @who-key.pem); not @required: both or neither. */
static int load_x509_key(struct nbd_tls_creds *c, const char *dir, const char *who,
			 bool required, struct error **errp)
{
	char name[32];
	char *cert, *key;
	int ret = -1, r;

	snprintf(name, sizeof(name), "%s-cert.pem", who);
	cert = path_in(dir, name);
	snprintf(name, sizeof(name), "%s-key.pem", who);
	key = path_in(dir, name);
	if (!cert || !key) {
		error_setg(errp, "TLS: out of memory");
		goto out;
	}
	if (!required && access(cert, F_OK) != 0 && access(key, F_OK) != 0) {
		ret = 0; /* a client without a certificate */
		goto out;
	}
	r = gnutls_certificate_set_x509_key_file(c->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		error_setg(errp, "TLS: cannot load the %s certificate '%s' and key '%s': %s", who,
			   cert, key, gnutls_strerror(r));
		goto out;
	}
	ret = 0;
out:
	free(cert);
	free(key);
	return ret;
}

static struct nbd_tls_creds *x509_new(const char *dir, bool client, bool verify_peer,
				      struct error **errp)
{
	struct nbd_tls_creds *c = creds_alloc(client, false, errp);

	if (!c)
		return NULL;
	if (gnutls_certificate_allocate_credentials(&c->x509) < 0) {
		error_setg(errp, "TLS: out of memory");
		goto err;
	}
	c->verify_peer = verify_peer;
	if (load_x509(c, dir, "ca-cert.pem", verify_peer, gnutls_certificate_set_x509_trust_file,
		      "CA certificate", errp) < 0 ||
	    load_x509(c, dir, "ca-crl.pem", false, gnutls_certificate_set_x509_crl_file,
		      "certificate revocation list", errp) < 0 ||
	    load_x509_key(c, dir, client ? "client" : "server", !client, errp) < 0)
		goto err;
	if (!client)
		gnutls_certificate_set_known_dh_params(c->x509, GNUTLS_SEC_PARAM_MEDIUM);
	return c;
err:
	creds_free(c);
	return NULL;
}

struct nbd_tls_creds *nbd_tls_creds_x509_new(const char *dir, bool verify_peer,
					     struct error **errp)
{
	return x509_new(dir, false, verify_peer, errp);
}

struct nbd_tls_creds *nbd_tls_creds_x509_client_new(const char *dir, bool verify_peer,
						    struct error **errp)
{
	return x509_new(dir, true, verify_peer, errp);
}

/* ---- pre-shared keys ------------------------------------------------------------------------- */

/* One "username:hexkey" line of keys.psk (psktool's format); -1 when it is not one. */
static int psk_parse_line(struct nbd_tls_creds *c, char *line)
{
	char *colon = strchr(line, ':');
	size_t n = strcspn(line, "\r\n");
	struct nbd_tls_psk_key *k;
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

static int psk_load(struct nbd_tls_creds *c, const char *dir, struct error **errp)
{
	char *path = path_in(dir, "keys.psk");
	FILE *f = path ? fopen(path, "re") : NULL;
	char *line = NULL;
	size_t cap = 0;
	unsigned int no = 0;
	int ret = 0;

	if (!f) {
		error_setg_errno(errp, errno, "TLS: cannot read the pre-shared keys '%s'",
				 path ? path : dir);
		free(path);
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
	free(path);
	return ret;
}

/* A copy of @user's key (gnutls_malloc'd), or -1. */
static int psk_key(const struct nbd_tls_creds *c, const char *user, size_t user_len,
		   gnutls_datum_t *key)
{
	for (size_t i = 0; i < c->nr_keys; i++) {
		const struct nbd_tls_psk_key *k = &c->keys[i];

		if (strlen(k->user) != user_len || memcmp(k->user, user, user_len))
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

/* A server session asks for a client's key during its handshake: from memory. */
static int psk_lookup(gnutls_session_t gs, const gnutls_datum_t *user, gnutls_datum_t *key)
{
	const struct nbd_tls_creds *c = gnutls_session_get_ptr(gs);

	return c ? psk_key(c, (const char *)user->data, user->size, key) : -1;
}

struct nbd_tls_creds *nbd_tls_creds_psk_new(const char *dir, struct error **errp)
{
	struct nbd_tls_creds *c = creds_alloc(false, true, errp);

	if (!c)
		return NULL;
	if (gnutls_psk_allocate_server_credentials(&c->psk_server) < 0) {
		error_setg(errp, "TLS: out of memory");
		goto err;
	}
	if (psk_load(c, dir, errp) < 0)
		goto err;
	gnutls_psk_set_server_credentials_function2(c->psk_server, psk_lookup);
	gnutls_psk_set_server_known_dh_params(c->psk_server, GNUTLS_SEC_PARAM_MEDIUM);
	return c;
err:
	creds_free(c);
	return NULL;
}

struct nbd_tls_creds *nbd_tls_creds_psk_client_new(const char *dir, const char *username,
						   struct error **errp)
{
	struct nbd_tls_creds *c = creds_alloc(true, true, errp);
	gnutls_datum_t key = { 0 };
	int ret;

	if (!c)
		return NULL;
	if (gnutls_psk_allocate_client_credentials(&c->psk_client) < 0 ||
	    !(c->psk_user = strdup(username))) {
		error_setg(errp, "TLS: out of memory");
		goto err;
	}
	if (psk_load(c, dir, errp) < 0)
		goto err;
	if (psk_key(c, username, strlen(username), &key) < 0) {
		error_setg(errp, "TLS: '%s/keys.psk' holds no key for the user '%s'", dir,
			   username);
		goto err;
	}
	ret = gnutls_psk_set_client_credentials(c->psk_client, username, &key,
						GNUTLS_PSK_KEY_RAW);
	gnutls_memset(key.data, 0, key.size);
	gnutls_free(key.data);
	if (ret < 0) {
		error_setg(errp, "TLS: the key of user '%s': %s", username, gnutls_strerror(ret));
		goto err;
	}
	return c;
err:
	creds_free(c);
	return NULL;
}

/* ---- tls-authz ------------------------------------------------------------------------------- */

struct nbd_tls_authz *nbd_tls_authz_new(const char *id, const char *identity,
					struct error **errp)
{
	struct nbd_tls_authz *a = calloc(1, sizeof(*a));

	if (!a || !(a->id = strdup(id)) || !(a->identity = strdup(identity))) {
		error_setg(errp, "out of memory");
		nbd_tls_authz_free(a);
		return NULL;
	}
	return a;
}

void nbd_tls_authz_free(struct nbd_tls_authz *a)
{
	if (!a)
		return;
	free(a->id);
	free(a->identity);
	free(a);
}

const char *nbd_tls_authz_id(const struct nbd_tls_authz *a)
{
	return a->id;
}

const char *nbd_tls_authz_identity(const struct nbd_tls_authz *a)
{
	return a->identity;
}

bool nbd_tls_authz_allows(const struct nbd_tls_authz *a, const char *name)
{
	return !strcmp(a->identity, name); /* authz-simple: the one identity, exactly */
}
