/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server's TLS (blockdev/nbd_tls.c, NBD_OPT_STARTTLS) driven by a GnuTLS client over a
 * socketpair: FORCEDTLS refusals before the upgrade (NBD_REP_ERR_TLS_REQD, NBD_OPT_EXPORT_NAME
 * disconnected, STARTTLS with data), then the upgrade with pre-shared keys and with x509
 * certificates (a CA, a server and a client certificate made here with GnuTLS, tls_fixture.h),
 * options and commands encrypted, STARTTLS twice refused, a wrong key, a client without a certificate and
 * a client whose certificate another CA signed are refused, 64 requests in flight (6 MiB each
 * way) come back intact, a clean NBD_CMD_DISC ends with the TLS close_notify, and credentials
 * that cannot be loaded are refused by file name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/nbd_proto.h"
#include "blockdev/nbd_server.h"
#include "blockdev/nbd_tls.h"
#include "iothreads/iothread.h"
#include "tests/unit/img_fixture.h"
#include "tests/unit/tls_fixture.h"

#define IMG_SIZE (4u << 20)
#define PSK_HEX "0123456789abcdef0123456789abcdef"

static struct iothread *it;
static struct blockdev *bs;
static char dir_x509[512], dir_bad[512], dir_psk[512];

/* ---- certificates ---------------------------------------------------------------------------- */

/* dir_x509: the CA and the server's and a client's certificates; dir_bad: a client
 * certificate from another CA. */
static void make_pki(void)
{
	struct tlsfx_pki ca, server, client, ca2, client2;

	tlsfx_make(&ca, TLSFX_CA, "CN=vireo test CA", NULL, 1);
	tlsfx_make(&server, TLSFX_SERVER, "CN=localhost", &ca, 2);
	tlsfx_make(&client, TLSFX_CLIENT, "CN=client", &ca, 3);
	tlsfx_make(&ca2, TLSFX_CA, "CN=another CA", NULL, 4);
	tlsfx_make(&client2, TLSFX_CLIENT, "CN=client", &ca2, 5);
	tlsfx_save(&ca, dir_x509, "ca-cert.pem", NULL);
	tlsfx_save(&server, dir_x509, "server-cert.pem", "server-key.pem");
	tlsfx_save(&client, dir_x509, "client-cert.pem", "client-key.pem");
	tlsfx_save(&ca, dir_bad, "ca-cert.pem", NULL);
	tlsfx_save(&client2, dir_bad, "client-cert.pem", "client-key.pem");
	tlsfx_free(&ca);
	tlsfx_free(&server);
	tlsfx_free(&client);
	tlsfx_free(&ca2);
	tlsfx_free(&client2);
}

static int group_setup(void **state)
{
	struct iothread_opts io = { .serves_sockets = true }; /* the NBD server's ring */
	struct error *err = NULL;

	if (imgfx_setup("nbdtls") < 0)
		return -1;
	snprintf(dir_x509, sizeof(dir_x509), "%s", imgfx_path("x509"));
	snprintf(dir_bad, sizeof(dir_bad), "%s", imgfx_path("bad"));
	snprintf(dir_psk, sizeof(dir_psk), "%s", imgfx_path("psk"));
	if (mkdir(dir_x509, 0700) || mkdir(dir_bad, 0700) || mkdir(dir_psk, 0700))
		return -1;
	make_pki();
	tlsfx_write_psk(dir_psk, "alice", PSK_HEX);
	imgfx_make_raw("disk.raw", IMG_SIZE);
	bs = imgfx_open("disk.raw", "raw", "tlsdisk", false);
	imgfx_fill(bs, 0, 4096, 0x42);
	it = iothread_create("nbd-tls", &io, &err);
	if (!it)
		fail_msg("%s", error_msg(err));
	return 0;
}

static int group_teardown(void **state)
{
	iothread_destroy(it);
	blockdev_close(bs);
	return imgfx_teardown();
}

/* ---- a server with credentials --------------------------------------------------------------- */

struct srv {
	struct nbd_server *s;
	struct nbd_tls_creds *creds;
};

static void start(struct srv *sv, struct nbd_tls_creds *creds)
{
	struct nbd_server_opts so = { .type = NBD_ADDR_UNIX, .path = imgfx_path("tls.sock"),
				      .iothread = it, .tls = creds, .tls_creds = "tls0" };
	struct nbd_export_opts eo = { .id = "e0", .node = bs, .name = "disk", .writable = true,
				      .iothread = it };
	struct error *err = NULL;

	sv->creds = creds;
	sv->s = nbd_server_start(&so, &err);
	if (!sv->s || nbd_export_add(sv->s, &eo, &err) < 0)
		fail_msg("%s", error_msg(err));
}

static void stop(struct srv *sv)
{
	nbd_server_stop(sv->s);
	nbd_tls_creds_unref(sv->creds);
}

/* ---- a client: plaintext, then through a GnuTLS session -------------------------------------- */

struct cli {
	int fd;
	gnutls_session_t gs;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_client_credentials_t psk;
};

static void cl_write(struct cli *c, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = c->gs ? gnutls_record_send(c->gs, b, n) : send(c->fd, b, n, MSG_NOSIGNAL);

		if (r <= 0)
			fail_msg("send: %zd", r);
		b += r;
		n -= (size_t)r;
	}
}

/* false at the end of the stream (or a TLS error) */
static bool cl_read(struct cli *c, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = c->gs ? gnutls_record_recv(c->gs, b, n) : recv(c->fd, b, n, 0);

		if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN)
			continue;
		if (r <= 0)
			return false;
		b += r;
		n -= (size_t)r;
	}
	return true;
}

static struct cli connect_client(struct srv *sv)
{
	struct timeval tv = { .tv_sec = 5 };
	struct error *err = NULL;
	struct cli c = { 0 };
	uint8_t g[NBD_HANDSHAKE_LEN], f[4];
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	setsockopt(sp[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (nbd_server_add_client(sv->s, sp[0], &err) < 0)
		fail_msg("%s", error_msg(err));
	c.fd = sp[1];
	assert_true(cl_read(&c, g, sizeof(g)));
	assert_true(nbd_get_be64(g + 8) == NBD_OPTS_MAGIC);
	nbd_put_be32(f, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	cl_write(&c, f, 4);
	return c;
}

static void cl_close(struct cli *c)
{
	if (c->gs)
		gnutls_deinit(c->gs);
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	if (c->psk)
		gnutls_psk_free_client_credentials(c->psk);
	close(c->fd);
}

/* In one write: a server that refuses the option at its header and hangs up must not turn
 * a second write of its data into a failed send (the test would stop there). */
static void send_opt(struct cli *c, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t *m = malloc(NBD_OPT_HDR_LEN + len);

	assert_non_null(m);
	nbd_encode_opt_hdr(m, opt, len);
	if (len)
		memcpy(m + NBD_OPT_HDR_LEN, data, len);
	cl_write(c, m, NBD_OPT_HDR_LEN + len);
	free(m);
}

/* The reply type to @opt (its data dropped); 0 when the connection ended. */
static uint32_t read_rep(struct cli *c, uint32_t opt)
{
	uint8_t h[NBD_OPT_REPLY_HDR_LEN], data[4096];
	struct nbd_opt_reply_hdr r;

	if (!cl_read(c, h, sizeof(h)))
		return 0;
	nbd_decode_opt_reply_hdr(h, &r);
	assert_true(r.magic == NBD_REP_MAGIC);
	assert_int_equal(r.option, opt);
	assert_true(r.len <= sizeof(data));
	assert_true(cl_read(c, data, r.len));
	return r.type;
}

/* Reads replies to @opt up to the final one; returns its type. */
static uint32_t final_rep(struct cli *c, uint32_t opt)
{
	uint32_t t;

	do
		t = read_rep(c, opt);
	while (t == NBD_REP_SERVER || t == NBD_REP_INFO || t == NBD_REP_META_CONTEXT);
	return t;
}

/* NBD_OPT_STARTTLS, then the client side of the TLS handshake; its result. */
static int starttls(struct cli *c, const char *psk_user, const char *psk_hex,
		    const char *x509_dir)
{
	int ret;

	send_opt(c, NBD_OPT_STARTTLS, NULL, 0);
	assert_int_equal(read_rep(c, NBD_OPT_STARTTLS), NBD_REP_ACK);
	assert_int_equal(gnutls_init(&c->gs, GNUTLS_CLIENT), 0);
	if (psk_user) {
		gnutls_datum_t key = { (unsigned char *)psk_hex, (unsigned int)strlen(psk_hex) };

		assert_int_equal(gnutls_psk_allocate_client_credentials(&c->psk), 0);
		assert_int_equal(gnutls_psk_set_client_credentials(c->psk, psk_user, &key,
								   GNUTLS_PSK_KEY_HEX), 0);
		assert_int_equal(gnutls_priority_set_direct(c->gs, "NORMAL:+ECDHE-PSK:+PSK", NULL), 0);
		gnutls_credentials_set(c->gs, GNUTLS_CRD_PSK, c->psk);
	} else {
		char ca[600], cert[600], key[600];

		assert_int_equal(gnutls_certificate_allocate_credentials(&c->x509), 0);
		snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir_x509);
		assert_true(gnutls_certificate_set_x509_trust_file(c->x509, ca,
								   GNUTLS_X509_FMT_PEM) > 0);
		if (x509_dir) {
			snprintf(cert, sizeof(cert), "%s/client-cert.pem", x509_dir);
			snprintf(key, sizeof(key), "%s/client-key.pem", x509_dir);
			assert_int_equal(gnutls_certificate_set_x509_key_file(c->x509, cert, key,
					 GNUTLS_X509_FMT_PEM), 0);
		}
		gnutls_set_default_priority(c->gs);
		gnutls_credentials_set(c->gs, GNUTLS_CRD_CERTIFICATE, c->x509);
		gnutls_session_set_verify_cert(c->gs, "localhost", 0);
	}
	gnutls_transport_set_int(c->gs, c->fd);
	gnutls_handshake_set_timeout(c->gs, 5000);
	do
		ret = gnutls_handshake(c->gs);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	return ret;
}

/* GO "disk", a write and a read back, then DISC: the server ends TLS cleanly. */
static void go_and_use(struct cli *c)
{
	uint8_t buf[64], h[NBD_REQUEST_LEN], r[NBD_SIMPLE_REPLY_LEN], data[4096];

	nbd_put_be32(buf, 4);
	memcpy(buf + 4, "disk", 4);
	nbd_put_be16(buf + 8, 0);
	send_opt(c, NBD_OPT_GO, buf, 10);
	assert_int_equal(final_rep(c, NBD_OPT_GO), NBD_REP_ACK);
	memset(data, 0x77, sizeof(data));
	nbd_encode_request(h, &(struct nbd_request){ .type = NBD_CMD_WRITE, .cookie = 1,
						     .offset = 8192, .len = sizeof(data) });
	cl_write(c, h, sizeof(h));
	cl_write(c, data, sizeof(data));
	assert_true(cl_read(c, r, sizeof(r)));
	assert_int_equal(nbd_get_be32(r + 4), 0);
	nbd_encode_request(h, &(struct nbd_request){ .type = NBD_CMD_READ, .cookie = 2,
						     .offset = 0, .len = sizeof(data) });
	cl_write(c, h, sizeof(h));
	assert_true(cl_read(c, r, sizeof(r)));
	assert_int_equal(nbd_get_be32(r + 4), 0);
	assert_true(cl_read(c, data, sizeof(data)));
	for (size_t i = 0; i < sizeof(data); i++)
		assert_int_equal(data[i], 0x42);
	/* a burst: 32 writes and 32 reads in flight, many records each way */
	{
		enum { N = 32, LEN = 96 * 1024 };
		static uint8_t big[LEN];
		unsigned int writes = 0, reads = 0;

		for (unsigned int i = 0; i < N; i++) {
			memset(big, (int)(0x80 + i), sizeof(big));
			nbd_encode_request(h, &(struct nbd_request){
				.type = NBD_CMD_WRITE, .cookie = 100 + i,
				.offset = 65536 + (uint64_t)i * LEN, .len = LEN });
			cl_write(c, h, sizeof(h));
			cl_write(c, big, sizeof(big));
			nbd_encode_request(h, &(struct nbd_request){
				.type = NBD_CMD_READ, .cookie = 200 + i, .offset = 0, .len = LEN });
			cl_write(c, h, sizeof(h));
		}
		while (writes + reads < 2 * N) {
			uint64_t cookie;

			assert_true(cl_read(c, r, sizeof(r)));
			assert_true(nbd_get_be32(r) == NBD_SIMPLE_REPLY_MAGIC);
			assert_int_equal(nbd_get_be32(r + 4), 0);
			cookie = nbd_get_be64(r + 8);
			if (cookie >= 200) {
				assert_true(cl_read(c, big, sizeof(big)));
				for (size_t k = 0; k < 4096; k++)
					assert_int_equal(big[k], 0x42);
				reads++;
			} else {
				writes++;
			}
		}
		for (unsigned int i = 0; i < N; i++)
			imgfx_assert_reads(bs, 65536 + (uint64_t)i * LEN, LEN, (uint8_t)(0x80 + i));
	}
	nbd_encode_request(h, &(struct nbd_request){ .type = NBD_CMD_DISC, .cookie = 3 });
	cl_write(c, h, sizeof(h));
	/* the server's close_notify ends the stream: gnutls_record_recv returns 0 */
	assert_int_equal(gnutls_record_recv(c->gs, data, sizeof(data)), 0);
	imgfx_assert_reads(bs, 8192, 4096, 0x77);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_forcedtls_refusals(void **state)
{
	struct error *err = NULL;
	struct srv sv;
	struct cli c;
	uint8_t buf[16];

	start(&sv, nbd_tls_creds_psk_new(dir_psk, &err));
	c = connect_client(&sv);
	send_opt(&c, NBD_OPT_LIST, NULL, 0);
	assert_int_equal(read_rep(&c, NBD_OPT_LIST), NBD_REP_ERR_TLS_REQD);
	nbd_put_be32(buf, 4);
	memcpy(buf + 4, "disk", 4);
	nbd_put_be16(buf + 8, 0);
	send_opt(&c, NBD_OPT_GO, buf, 10);
	assert_int_equal(read_rep(&c, NBD_OPT_GO), NBD_REP_ERR_TLS_REQD);
	send_opt(&c, 4242, "xyz", 3);
	assert_int_equal(read_rep(&c, 4242), NBD_REP_ERR_TLS_REQD);
	send_opt(&c, NBD_OPT_EXTENDED_HEADERS, NULL, 0); /* nothing is negotiated in plaintext */
	assert_int_equal(read_rep(&c, NBD_OPT_EXTENDED_HEADERS), NBD_REP_ERR_TLS_REQD);
	send_opt(&c, NBD_OPT_STARTTLS, "x", 1);
	assert_int_equal(read_rep(&c, NBD_OPT_STARTTLS), NBD_REP_ERR_INVALID);
	send_opt(&c, NBD_OPT_EXPORT_NAME, "disk", 4); /* cannot be refused: disconnected */
	assert_int_equal(read_rep(&c, NBD_OPT_EXPORT_NAME), 0);
	cl_close(&c);
	stop(&sv);
}

static void test_psk(void **state)
{
	struct error *err = NULL;
	struct srv sv;
	struct cli c;

	start(&sv, nbd_tls_creds_psk_new(dir_psk, &err));
	c = connect_client(&sv);
	assert_int_equal(starttls(&c, "alice", PSK_HEX, NULL), 0);
	send_opt(&c, NBD_OPT_STARTTLS, NULL, 0); /* TLS already runs */
	assert_int_equal(read_rep(&c, NBD_OPT_STARTTLS), NBD_REP_ERR_INVALID);
	send_opt(&c, NBD_OPT_LIST, NULL, 0);
	assert_int_equal(final_rep(&c, NBD_OPT_LIST), NBD_REP_ACK);
	go_and_use(&c);
	cl_close(&c);
	/* a wrong key: the handshake fails, nothing is served */
	c = connect_client(&sv);
	assert_true(starttls(&c, "alice", "00112233445566778899aabbccddeeff", NULL) < 0);
	cl_close(&c);
	c = connect_client(&sv);
	assert_true(starttls(&c, "mallory", PSK_HEX, NULL) < 0);
	cl_close(&c);
	stop(&sv);
}

static void test_x509(void **state)
{
	struct error *err = NULL;
	struct srv sv;
	struct cli c;

	start(&sv, nbd_tls_creds_x509_new(dir_x509, true, &err));
	c = connect_client(&sv);
	assert_int_equal(starttls(&c, NULL, NULL, dir_x509), 0);
	go_and_use(&c);
	cl_close(&c);
	/* no client certificate, and one another CA signed: refused */
	c = connect_client(&sv);
	{
		int r = starttls(&c, NULL, NULL, NULL);
		uint8_t x[16];

		/* TLS 1.3 ends the handshake before the server checked: the next read fails */
		assert_true(r < 0 || !cl_read(&c, x, 1));
	}
	cl_close(&c);
	c = connect_client(&sv);
	{
		int r = starttls(&c, NULL, NULL, dir_bad);
		uint8_t x[16];

		assert_true(r < 0 || !cl_read(&c, x, 1));
	}
	cl_close(&c);
	stop(&sv);
	/* without verify-peer a client needs no certificate */
	start(&sv, nbd_tls_creds_x509_new(dir_x509, false, &err));
	c = connect_client(&sv);
	assert_int_equal(starttls(&c, NULL, NULL, NULL), 0);
	go_and_use(&c);
	cl_close(&c);
	stop(&sv);
}

static void test_bad_credentials(void **state)
{
	struct nbd_server_opts so = { .type = NBD_ADDR_UNIX, .path = imgfx_path("x.sock"),
				      .iothread = it, .tls_creds = "nope" };
	struct error *err = NULL;

	assert_null(nbd_tls_creds_x509_new(dir_psk, true, &err)); /* no ca-cert.pem there */
	assert_non_null(strstr(error_msg(err), "ca-cert.pem"));
	error_free(err);
	err = NULL;
	assert_null(nbd_tls_creds_x509_new(dir_bad, false, &err)); /* no server certificate */
	assert_non_null(strstr(error_msg(err), "server-cert.pem"));
	error_free(err);
	err = NULL;
	assert_null(nbd_tls_creds_psk_new(dir_x509, &err));
	assert_non_null(strstr(error_msg(err), "keys.psk"));
	error_free(err);
	err = NULL;
	assert_null(nbd_server_start(&so, &err)); /* a name without credentials */
	assert_non_null(strstr(error_msg(err), "nope"));
	error_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forcedtls_refusals),
		cmocka_unit_test(test_psk),
		cmocka_unit_test(test_x509),
		cmocka_unit_test(test_bad_credentials),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
