/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for the NBD server (proto.md "TLS support", NBD_OPT_STARTTLS) with GnuTLS: credentials
 * as QEMU's tls-creds-x509 and tls-creds-psk objects describe them, and a server session that
 * does no I/O of its own: the transport (nbd_transport.c) puts the ciphertext it received into
 * the session (nbd_tls_cin_*) and sends what the session queued (nbd_tls_cout_*), so the socket
 * stays on the iothread's io_uring. GnuTLS reads and writes those buffers through its push and
 * pull functions and never blocks (GNUTLS_NONBLOCK: "no data yet" is -EAGAIN).
 *
 * Threads. Credentials are made and freed on the control plane and only read by sessions,
 * which GnuTLS allows from several threads. A session belongs to its connection: one thread
 * at a time, no lock.
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
 * nbd_tls_creds_psk_new - server credentials from pre-shared keys (QEMU's tls-creds-psk with
 * endpoint=server)
 * @dir: holds keys.psk, lines of "username:hexkey" (psktool's format)
 */
struct nbd_tls_creds *nbd_tls_creds_psk_new(const char *dir, struct error **errp);

void nbd_tls_creds_free(struct nbd_tls_creds *creds);

/* A server session over @creds, waiting for the client's first handshake message. */
struct nbd_tls_session *nbd_tls_session_new(struct nbd_tls_creds *creds, struct error **errp);
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
 * Advances the handshake with what arrived: 0 once it is complete (and the peer verified),
 * -EAGAIN while it needs more bytes, -EPROTO when it failed (*why says how, static text or
 * GnuTLS's).
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
