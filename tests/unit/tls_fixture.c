/* SPDX-License-Identifier: Apache-2.0 */
/* TLS material for unit tests (tls_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tests/unit/tls_fixture.h"

/*
 * The certificate's subject is @dn as gnutls_x509_crt_get_dn (and so QEMU's and vireo's
 * tls-authz) prints it: in the order of the certificate's ASN.1 sequence ("C=GB,...,CN=x" for
 * a name built as CAs build them). gnutls_x509_crt_set_dn takes RFC 4514's order, the reverse:
 * @dn is turned around for it, and the printed name checked (commas inside values are not
 * expected).
 */
static void set_dn(gnutls_x509_crt_t crt, const char *dn)
{
	char rev[512] = "", copy[512], got[512];
	size_t len = sizeof(got);
	const char *err = NULL;
	char *parts[16], *save = NULL;
	int n = 0;

	snprintf(copy, sizeof(copy), "%s", dn);
	for (char *t = strtok_r(copy, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
		parts[n++] = t;
	while (n--) {
		strncat(rev, parts[n], sizeof(rev) - strlen(rev) - 1);
		if (n)
			strncat(rev, ",", sizeof(rev) - strlen(rev) - 1);
	}
	if (gnutls_x509_crt_set_dn(crt, rev, &err) < 0)
		fail_msg("DN '%s': bad at '%s'", rev, err ? err : "?");
	assert_int_equal(gnutls_x509_crt_get_dn(crt, got, &len), 0);
	if (strcmp(got, dn))
		fail_msg("the certificate's DN is '%s', not '%s'", got, dn);
}

void tlsfx_make(struct tlsfx_pki *p, enum tlsfx_kind kind, const char *dn,
		const struct tlsfx_pki *issuer, unsigned int serial)
{
	unsigned char sn = (unsigned char)serial;
	time_t now = time(NULL);

	assert_int_equal(gnutls_x509_privkey_init(&p->key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(p->key, GNUTLS_PK_ECDSA,
			 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&p->crt), 0);
	gnutls_x509_crt_set_version(p->crt, 3);
	gnutls_x509_crt_set_serial(p->crt, &sn, 1);
	gnutls_x509_crt_set_activation_time(p->crt, now - 3600);
	gnutls_x509_crt_set_expiration_time(p->crt, now + 86400);
	set_dn(p->crt, dn);
	assert_int_equal(gnutls_x509_crt_set_key(p->crt, p->key), 0);
	gnutls_x509_crt_set_basic_constraints(p->crt, kind == TLSFX_CA, -1);
	if (kind == TLSFX_CA) {
		gnutls_x509_crt_set_key_usage(p->crt, GNUTLS_KEY_KEY_CERT_SIGN |
					      GNUTLS_KEY_CRL_SIGN);
	} else {
		static const unsigned char lo[4] = { 127, 0, 0, 1 };

		gnutls_x509_crt_set_key_usage(p->crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
		gnutls_x509_crt_set_key_purpose_oid(p->crt, kind == TLSFX_SERVER ?
						    GNUTLS_KP_TLS_WWW_SERVER :
						    GNUTLS_KP_TLS_WWW_CLIENT, 0);
		gnutls_x509_crt_set_subject_alt_name(p->crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
						     GNUTLS_FSAN_APPEND);
		gnutls_x509_crt_set_subject_alt_name(p->crt, GNUTLS_SAN_IPADDRESS, lo, sizeof(lo),
						     GNUTLS_FSAN_APPEND);
	}
	assert_int_equal(gnutls_x509_crt_sign2(p->crt, issuer ? issuer->crt : p->crt,
					       issuer ? issuer->key : p->key,
					       GNUTLS_DIG_SHA256, 0), 0);
}

static void write_datum(const char *dir, const char *name, const gnutls_datum_t *d)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
	fclose(f);
}

void tlsfx_save(const struct tlsfx_pki *p, const char *dir, const char *cert, const char *key)
{
	gnutls_datum_t d;

	assert_int_equal(gnutls_x509_crt_export2(p->crt, GNUTLS_X509_FMT_PEM, &d), 0);
	write_datum(dir, cert, &d);
	gnutls_free(d.data);
	if (key) {
		assert_int_equal(gnutls_x509_privkey_export2(p->key, GNUTLS_X509_FMT_PEM, &d), 0);
		write_datum(dir, key, &d);
		gnutls_free(d.data);
	}
}

void tlsfx_free(struct tlsfx_pki *p)
{
	gnutls_x509_crt_deinit(p->crt);
	gnutls_x509_privkey_deinit(p->key);
}

void tlsfx_write_psk(const char *dir, const char *user, const char *hex)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/keys.psk", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s:%s\n", user, hex);
	fclose(f);
}
