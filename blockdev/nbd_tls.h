/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for NBD (proto.md "TLS support", NBD_OPT_STARTTLS) with GnuTLS: credentials as QEMU's
 * tls-creds-x509 and tls-creds-psk objects describe them, for either end (nbd_tls_creds.c;
 * the client's sessions are nbd_tls_client.c's, see nbd_client.h), tls-authz identities, and
 * the server's session (nbd_tls.c), which does no I/O of its own: the transport (nbd_transport.c) puts the ciphertext it received into
 * the session (nbd_tls_cin_*) and sends what the session queued (nbd_tls_cout_*), so the socket
 * stays on the iothread's io_uring. GnuTLS reads and writes those buffers through its push and
 * pull functions and never blocks (GNUTLS_NONBLOCK: "no data yet" is -EAGAIN).
 *
 * Threads. Credentials are made on the control plane and only read by sessions, which GnuTLS
 * allows from several threads; they are freed by their last holder (nbd_tls_creds_unref). A
 * server session belongs to its connection: one thread at a time, no lock.
 */
#ifndef VIREO_BLOCKDEV_NBD_TLS_H
#define VIREO_BLOCKDEV_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/error.h"

struct nbd_tls_creds;
struct nbd_tls_session;
struct nbd_tls_authz;

/**
 * nbd_tls_creds_x509_new - server credentials from a directory of PEM files (QEMU's
 * tls-creds-x509 with endpoint=server)
 * @dir: holds ca-cert.pem, server-cert.pem, server-key.pem, and optionally ca-crl.pem
 * @verify_peer: clients must present a certificate the CA signed (QEMU's default: yes)
 *
 * Returns NULL with a message naming the file that could not be loaded.
 */
struct nbd_tls_creds *nbd_tls_creds_x509_new(const char *dir, bool verify_peer,
					     struct error **errp);

/**
 * nbd_tls_creds_x509_client_new - client credentials (tls-creds-x509 with endpoint=client)
 * @dir: holds ca-cert.pem (the CA that signed the servers' certificates), optionally
 *       ca-crl.pem, and client-cert.pem with client-key.pem for servers that verify clients
 * @verify_peer: check the server's certificate against the CA and the host name (off: any
 *               server is taken, and ca-cert.pem may be missing)
 */
struct nbd_tls_creds *nbd_tls_creds_x509_client_new(const char *dir, bool verify_peer,
						    struct error **errp);

/**
 * nbd_tls_creds_psk_new - server credentials from pre-shared keys (QEMU's tls-creds-psk with
 * endpoint=server)
 * @dir: holds keys.psk, lines of "username:hexkey" (psktool's format)
 */
struct nbd_tls_creds *nbd_tls_creds_psk_new(const char *dir, struct error **errp);

/* Client credentials from pre-shared keys: @username's key in @dir/keys.psk. */
struct nbd_tls_creds *nbd_tls_creds_psk_client_new(const char *dir, const char *username,
						   struct error **errp);

/* Credentials are counted: each new holder takes a reference, the last unref frees them. */
struct nbd_tls_creds *nbd_tls_creds_ref(struct nbd_tls_creds *creds);
void nbd_tls_creds_unref(struct nbd_tls_creds *creds);

/* endpoint=client; pre-shared keys (else x509); x509 checking the peer's certificate. */
bool nbd_tls_creds_is_client(const struct nbd_tls_creds *creds);
bool nbd_tls_creds_is_psk(const struct nbd_tls_creds *creds);
bool nbd_tls_creds_verify_peer(const struct nbd_tls_creds *creds);

/*
 * tls-authz (QEMU's authz-simple): the one client identity a server lets in, the
 * distinguished name of the client's x509 certificate as gnutls_x509_crt_get_dn prints it,
 * which is what QEMU compares: in the certificate's own (ASN.1) order, so for the names CAs and
 * certtool make "C=GB,ST=London,L=London,O=Example Org,CN=laptop.example.com" (certtool -i
 * shows RFC 4514's reverse order); compared exactly.
 */
struct nbd_tls_authz *nbd_tls_authz_new(const char *id, const char *identity,
					struct error **errp);
void nbd_tls_authz_free(struct nbd_tls_authz *authz);
const char *nbd_tls_authz_id(const struct nbd_tls_authz *authz);
const char *nbd_tls_authz_identity(const struct nbd_tls_authz *authz);
bool nbd_tls_authz_allows(const struct nbd_tls_authz *authz, const char *name);

/*
 * A server session over @creds (endpoint=server), waiting for the client's first handshake
 * message. @authz (or NULL; the caller's, kept while the session lives): after the handshake
 * the client's certificate must name its identity.
 */
struct nbd_tls_session *nbd_tls_session_new(struct nbd_tls_creds *creds,
					    const struct nbd_tls_authz *authz,
					    struct error **errp);
void nbd_tls_session_free(struct nbd_tls_session *s);

/* Ciphertext in: where the next received bytes go (*len 0: the buffer is full), and how many
 * arrived (0: end of stream). One receive at a time: the buffer handed out stays put (GnuTLS
 * may read what arrived earlier meanwhile) until nbd_tls_cin_done. */
void *nbd_tls_cin_buf(struct nbd_tls_session *s, size_t *len);
void nbd_tls_cin_done(struct nbd_tls_session *s, size_t n);

/* Ciphertext out: the bytes queued to send, and how many were sent. */
int nbd_tls_cout_iov(struct nbd_tls_session *s, struct iovec *iov, int max);
void nbd_tls_cout_done(struct nbd_tls_session *s, size_t n);
size_t nbd_tls_cout_pending(const struct nbd_tls_session *s);

/*
 * Advances the handshake with what arrived: 0 once it is complete (and the peer verified, and
 * let in by the tls-authz), -EAGAIN while it needs more bytes, -EPROTO when it failed (*why
 * says how, static text or GnuTLS's). A failed handshake queues the alert that tells the
 * client why (access_denied for a client the tls-authz refused): nbd_tls_cout_pending()
 * holds it.
 */
int nbd_tls_handshake(struct nbd_tls_session *s, const char **why);

/* Plaintext: bytes read (> 0), 0 at the end of the peer's stream, -EAGAIN (need ciphertext),
 * or -EPROTO (*why set). */
ssize_t nbd_tls_read(struct nbd_tls_session *s, void *buf, size_t len, const char **why);
/* Encrypts up to @len bytes into the output; returns how many were taken, or -EPROTO. */
ssize_t nbd_tls_write(struct nbd_tls_session *s, const void *buf, size_t len, const char **why);
/* Queues the closing alert (best effort). */
void nbd_tls_bye(struct nbd_tls_session *s);

#endif
