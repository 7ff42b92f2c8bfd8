/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the NBD TLS files share (nbd_tls_creds.c makes credentials; nbd_tls.c runs the
 * server's sessions, nbd_tls_client.c the client's): the credentials' insides. Credentials
 * are immutable once made; sessions on any thread only read them (GnuTLS allows several
 * threads to read one credentials structure). Their life is counted (refs): the --object
 * registry holds one, and each server or client node that uses them holds one.
 */
#ifndef VIREO_BLOCKDEV_NBD_TLS_PRIV_H
#define VIREO_BLOCKDEV_NBD_TLS_PRIV_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>

#include "blockdev/nbd_tls.h"

/* TLS 1.2 at least (proto.md "TLS versions"); PSK suites only with PSK credentials */
#define NBD_TLS_PRIORITY_X509 "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"
#define NBD_TLS_PRIORITY_PSK "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:+ECDHE-PSK:+DHE-PSK:+PSK"

struct nbd_tls_psk_key {
	char *user;
	gnutls_datum_t key;
};

struct nbd_tls_creds {
	_Atomic unsigned int refs;  /* atomic */
	bool client;                /* endpoint=client */
	bool psk;
	bool verify_peer;           /* x509: check the peer's certificate */
	gnutls_certificate_credentials_t x509;
	gnutls_psk_server_credentials_t psk_server;
	gnutls_psk_client_credentials_t psk_client;
	/* a server's keys.psk, read once: a handshake runs on an iothread, which opens nothing */
	struct nbd_tls_psk_key *keys;
	size_t nr_keys;
	char *psk_user;             /* a client's username */
};

struct nbd_tls_authz {
	char *id;
	char *identity;
};

#endif
