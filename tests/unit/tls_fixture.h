/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS material for the NBD TLS unit tests, made with GnuTLS in the test's directory: a CA,
 * certificates it signs for a server (SAN localhost and 127.0.0.1) or a client, with any
 * distinguished name, PEM files under QEMU's names, and keys.psk files. Failures end the test.
 */
#ifndef VIREO_TESTS_UNIT_TLS_FIXTURE_H
#define VIREO_TESTS_UNIT_TLS_FIXTURE_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>

struct tlsfx_pki {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
};

enum tlsfx_kind { TLSFX_CA, TLSFX_SERVER, TLSFX_CLIENT };

/* A key and a certificate of @kind for @dn as gnutls_x509_crt_get_dn prints it (the ASN.1
 * order: "C=GB,O=Example,CN=client"), signed by @issuer (NULL: self-signed), with serial
 * number @serial. */
void tlsfx_make(struct tlsfx_pki *p, enum tlsfx_kind kind, const char *dn,
		const struct tlsfx_pki *issuer, unsigned int serial);
/* Writes the certificate as @dir/@cert, and the key as @dir/@key unless NULL (PEM). */
void tlsfx_save(const struct tlsfx_pki *p, const char *dir, const char *cert, const char *key);
void tlsfx_free(struct tlsfx_pki *p);
/* @dir/keys.psk holding "@user:@hex". */
void tlsfx_write_psk(const char *dir, const char *user, const char *hex);

#endif
