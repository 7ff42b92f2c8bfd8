/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD client driver over TLS (blockdev/nbd_tls_client.c, NBD_OPT_STARTTLS first) against
 * vireo's own TLS server, both sides' credentials as --object makes them (nbd_tls_obj.h): x509
 * on TCP with the host name checked (server.host, tls-hostname), pre-shared keys on a unix
 * socket; writes and reads from four threads at once (the receiver reads while the senders
 * write), a server restarted under an open node (the reconnection's TLS handshake), and the
 * refusals, each with its message: a CA that did not sign the server, a name the certificate
 * does not hold, a wrong key and an unknown user, a server without TLS, TLS credentials of the
 * wrong endpoint, no client certificate for a server that wants one. Then tls-authz: the client
 * whose certificate's DN the authz-simple object names is served, another is refused with an
 * access_denied alert, and the server refuses tls-authz without a certificate to check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/nbd_server.h"
#include "blockdev/nbd_tls.h"
#include "blockdev/nbd_tls_obj.h"
#include "iothreads/iothread.h"
#include "tests/unit/img_fixture.h"
#include "tests/unit/tls_fixture.h"

#define IMG_SIZE (16u << 20)
#define PSK_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define PSK_OTHER "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
/* the client's name as gnutls_x509_crt_get_dn prints it (tls-authz compares that, as QEMU) */
#define CLIENT_DN "C=GB,ST=London,L=London,O=Vireo Test,CN=client.example.com"
/* the same in an option string, its commas doubled (QEMU's escape) */
#define CLIENT_DN_OPT "C=GB,,ST=London,,L=London,,O=Vireo Test,,CN=client.example.com"

static struct iothread *it;
static struct blockdev *disk;

static const char *dir(const char *name)
{
	return imgfx_path(name);
}

static void mkdirs(const char *const *names)
{
	for (; *names; names++)
		assert_int_equal(mkdir(dir(*names), 0700), 0);
}

/*
 * srv: the CA, the server (CN=localhost, SAN localhost and 127.0.0.1); cli: the CA and a client
 * with CLIENT_DN; cli-noca: only the CA; cli-other: a client another CA signed, trusting the
 * right CA; ca2: another CA, as a client's CA (the server's is not trusted); psk-*: keys.psk.
 */
static void make_material(void)
{
	static const char *const dirs[] = { "srv", "cli", "cli-noca", "cli-other", "ca2",
					    "psk-srv", "psk-cli", "psk-wrong", NULL };
	struct tlsfx_pki ca, server, client, ca2, client2;

	mkdirs(dirs);
	tlsfx_make(&ca, TLSFX_CA, "CN=vireo test CA", NULL, 1);
	tlsfx_make(&server, TLSFX_SERVER, "O=Vireo Test,CN=localhost", &ca, 2);
	tlsfx_make(&client, TLSFX_CLIENT, CLIENT_DN, &ca, 3);
	tlsfx_make(&ca2, TLSFX_CA, "CN=another CA", NULL, 4);
	tlsfx_make(&client2, TLSFX_CLIENT, "CN=mallory.example.com", &ca2, 5);
	tlsfx_save(&ca, dir("srv"), "ca-cert.pem", NULL);
	tlsfx_save(&server, dir("srv"), "server-cert.pem", "server-key.pem");
	tlsfx_save(&ca, dir("cli"), "ca-cert.pem", NULL);
	tlsfx_save(&client, dir("cli"), "client-cert.pem", "client-key.pem");
	tlsfx_save(&ca, dir("cli-noca"), "ca-cert.pem", NULL);
	tlsfx_save(&ca, dir("cli-other"), "ca-cert.pem", NULL);
	tlsfx_save(&client2, dir("cli-other"), "client-cert.pem", "client-key.pem");
	tlsfx_save(&ca2, dir("ca2"), "ca-cert.pem", NULL);
	tlsfx_free(&ca);
	tlsfx_free(&server);
	tlsfx_free(&client);
	tlsfx_free(&ca2);
	tlsfx_free(&client2);
	tlsfx_write_psk(dir("psk-srv"), "alice", PSK_HEX);
	tlsfx_write_psk(dir("psk-cli"), "alice", PSK_HEX);
	tlsfx_write_psk(dir("psk-wrong"), "alice", PSK_OTHER);
}

static void object(const char *fmt, ...)
{
	struct error *err = NULL;
	char spec[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(spec, sizeof(spec), fmt, ap);
	va_end(ap);
	if (nbd_tls_obj_add_spec(spec, &err) < 0)
		fail_msg("%s: %s", spec, error_msg(err));
}

static int group_setup(void **state)
{
	struct iothread_opts io = { .serves_sockets = true };
	struct error *err = NULL;

	if (imgfx_setup("nbdctls") < 0)
		return -1;
	make_material();
	object("tls-creds-x509,id=srv,endpoint=server,dir=%s", dir("srv"));
	object("tls-creds-x509,id=srv-open,endpoint=server,dir=%s,verify-peer=off", dir("srv"));
	object("tls-creds-psk,id=psk-srv,endpoint=server,dir=%s", dir("psk-srv"));
	object("tls-creds-x509,id=cli,endpoint=client,dir=%s", dir("cli"));
	object("tls-creds-x509,id=cli-noca,dir=%s", dir("cli-noca")); /* endpoint=client: default */
	object("tls-creds-x509,id=cli-other,endpoint=client,dir=%s", dir("cli-other"));
	object("tls-creds-x509,id=cli-ca2,endpoint=client,dir=%s", dir("ca2"));
	object("tls-creds-psk,id=psk-cli,endpoint=client,dir=%s,username=alice", dir("psk-cli"));
	object("tls-creds-psk,id=psk-wrong,endpoint=client,dir=%s,username=alice",
	       dir("psk-wrong"));
	object("authz-simple,id=auth-ok,identity=" CLIENT_DN_OPT);
	object("authz-simple,id=auth-other,identity=CN=someone.else");
	imgfx_make_raw("disk.raw", IMG_SIZE);
	disk = imgfx_open("disk.raw", "raw", "tlsdisk", false);
	it = iothread_create("nbd-ctls", &io, &err);
	if (!it)
		fail_msg("%s", error_msg(err));
	return 0;
}

static int group_teardown(void **state)
{
	nbd_tls_obj_cleanup();
	iothread_destroy(it);
	blockdev_close(disk);
	return imgfx_teardown();
}

/* ---- the server ---------------------------------------------------------------------------- */

/* Serves "disk" with credentials @creds (NULL: no TLS) and tls-authz @authz (or NULL): on TCP
 * 127.0.0.1 (*port set) when @port, else on the unix socket "nbd.sock". */
static struct nbd_server *serve(const char *creds, const char *authz, int *port)
{
	struct nbd_server_opts so = {
		.type = port ? NBD_ADDR_INET : NBD_ADDR_UNIX, .host = "127.0.0.1", .port = "0",
		.path = dir("nbd.sock"), .iothread = it, .tls_creds = creds,
		.tls = creds ? nbd_tls_obj_creds(creds) : NULL, .tls_authz = authz,
		.authz = authz ? nbd_tls_obj_authz(authz) : NULL,
	};
	struct nbd_export_opts eo = { .id = "e0", .node = disk, .name = "disk", .writable = true,
				      .iothread = it };
	struct error *err = NULL;
	struct nbd_server *s = nbd_server_start(&so, &err);

	if (!s || nbd_export_add(s, &eo, &err) < 0)
		fail_msg("%s", error_msg(err));
	if (port)
		*port = nbd_server_port(s);
	return s;
}

/* ---- the client node ----------------------------------------------------------------------- */

/* A driver=nbd node from the JSON @fmt (printf'd); NULL with *errp. */
static struct blockdev *open_nbd(struct error **errp, const char *fmt, ...)
{
	struct json_object *o;
	struct blockdev *bs;
	char js[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(js, sizeof(js), fmt, ap);
	va_end(ap);
	o = json_tokener_parse(js);
	if (!o)
		fail_msg("bad JSON: %s", js);
	bs = blockdev_open_ref(o, "test", "nbd", errp);
	json_object_put(o);
	return bs;
}

static struct blockdev *open_tcp(int port, const char *host, const char *extra,
				 struct error **errp)
{
	return open_nbd(errp, "{\"driver\": \"nbd\", \"server\": {\"type\": \"inet\", \"host\": "
			"\"%s\", \"port\": \"%d\"}, \"export\": \"disk\"%s%s}", host, port,
			extra ? ", " : "", extra ? extra : "");
}

static struct blockdev *open_unix(const char *extra, struct error **errp)
{
	return open_nbd(errp, "{\"driver\": \"nbd\", \"server\": {\"type\": \"unix\", \"path\": "
			"\"%s\"}, \"export\": \"disk\"%s%s}", dir("nbd.sock"), extra ? ", " : "",
			extra ? extra : "");
}

/* Opening failed with a message holding each of the NULL-terminated strings after @errp
 * (*@errp is freed and cleared). */
static void assert_refused(struct blockdev *bs, struct error **errp, ...)
{
	const char *want;
	va_list ap;

	if (bs)
		fail_msg("opened, but should have been refused");
	assert_non_null(*errp);
	va_start(ap, errp);
	while ((want = va_arg(ap, const char *)))
		if (!strstr(error_msg(*errp), want))
			fail_msg("'%s' is not in: %s", want, error_msg(*errp));
	va_end(ap);
	error_free(*errp);
	*errp = NULL;
}

/* ---- I/O from several threads -------------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 24
#define CHUNK (96 * 1024) /* several TLS records each way */

struct worker {
	struct blockdev *bs;
	unsigned int id;
	int ret;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint8_t *buf = malloc(CHUNK), *back = malloc(CHUNK);

	assert_non_null(buf);
	assert_non_null(back);
	for (unsigned int i = 0; i < PER_THREAD && !w->ret; i++) {
		uint64_t off = ((uint64_t)w->id * PER_THREAD + i) * CHUNK;

		memset(buf, (int)(w->id * 64 + i), CHUNK);
		w->ret = blockdev_pwrite(w->bs, off, buf, CHUNK);
		if (!w->ret)
			w->ret = blockdev_pread(w->bs, off, back, CHUNK);
		if (!w->ret && memcmp(buf, back, CHUNK))
			w->ret = -EILSEQ;
	}
	free(buf);
	free(back);
	return NULL;
}

/* Writes and reads from THREADS threads at once, then checks the image under the server. */
static void hammer(struct blockdev *bs)
{
	struct worker w[THREADS];
	pthread_t t[THREADS];

	for (unsigned int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ bs, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (unsigned int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ret, 0);
	}
	assert_int_equal(blockdev_flush(bs), 0);
	for (unsigned int i = 0; i < THREADS; i++)
		for (unsigned int k = 0; k < PER_THREAD; k++)
			imgfx_assert_reads(disk, ((uint64_t)i * PER_THREAD + k) * CHUNK, CHUNK,
					   (uint8_t)(i * 64 + k));
}

/* One write and its read back through @bs, at the image's end (the other tests' data stays). */
static void assert_serves(struct blockdev *bs, uint8_t byte)
{
	uint8_t buf[4096];

	memset(buf, byte, sizeof(buf));
	assert_int_equal(blockdev_pwrite(bs, IMG_SIZE - sizeof(buf), buf, sizeof(buf)), 0);
	imgfx_assert_reads(bs, IMG_SIZE - sizeof(buf), sizeof(buf), byte);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void x509_on_tcp_checks_the_host_name(void **state)
{
	struct error *err = NULL;
	struct nbd_server *s;
	struct blockdev *bs;
	int port;

	s = serve("srv-open", NULL, &port);
	/* the name the client dialled (localhost), and an address the certificate holds */
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"cli\"", &err);
	if (!bs)
		fail_msg("%s", error_msg(err));
	hammer(bs);
	blockdev_close(bs);
	bs = open_tcp(port, "127.0.0.1", "\"tls-creds\": \"cli-noca\"", &err);
	if (!bs)
		fail_msg("%s", error_msg(err));
	assert_serves(bs, 0x71);
	blockdev_close(bs);
	/* tls-hostname overrides server.host */
	bs = open_tcp(port, "127.0.0.1", "\"tls-creds\": \"cli\", \"tls-hostname\": "
		      "\"disk.example.com\"", &err);
	assert_refused(bs, &err, "certificate was refused", "disk.example.com",
		       "does not match", NULL);
	/* a CA that did not sign the server's certificate */
	err = NULL;
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"cli-ca2\"", &err);
	assert_refused(bs, &err, "nbd://localhost:", "certificate was refused", "NOT trusted",
		       NULL);
	/* no credentials: the server says TLS is required */
	err = NULL;
	bs = open_tcp(port, "localhost", NULL, &err);
	assert_refused(bs, &err, "requires TLS", "tls-creds", NULL);
	/* credentials of the wrong end, and unknown ones */
	err = NULL;
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"srv\"", &err);
	assert_refused(bs, &err, "endpoint=server", NULL);
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"nope\"", &err);
	assert_refused(bs, &err, "no TLS credentials 'nope'", NULL);
	bs = open_tcp(port, "localhost", "\"tls-hostname\": \"localhost\"", &err);
	assert_refused(bs, &err, "tls-hostname needs tls-creds", NULL);
	nbd_server_stop(s);
}

static void x509_client_certificate(void **state)
{
	struct error *err = NULL;
	struct nbd_server *s;
	struct blockdev *bs;
	int port;

	s = serve("srv", NULL, &port); /* verify-peer=on: clients need a certificate */
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"cli\"", &err);
	if (!bs)
		fail_msg("%s", error_msg(err));
	assert_serves(bs, 0x72);
	blockdev_close(bs);
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"cli-noca\"", &err); /* none */
	assert_refused(bs, &err, "nbd://localhost:", NULL);
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"cli-other\"", &err); /* another CA's */
	assert_refused(bs, &err, "nbd://localhost:", NULL);
	nbd_server_stop(s);
}

static void psk_on_a_unix_socket(void **state)
{
	struct error *err = NULL;
	struct nbd_server *s;
	struct blockdev *bs;

	s = serve("psk-srv", NULL, NULL);
	bs = open_unix("\"tls-creds\": \"psk-cli\"", &err);
	if (!bs)
		fail_msg("%s", error_msg(err));
	hammer(bs);
	blockdev_close(bs);
	bs = open_unix("\"tls-creds\": \"psk-wrong\"", &err);
	assert_refused(bs, &err, "nbd+unix:///disk", "TLS", "user 'alice'", NULL);
	nbd_server_stop(s);
	/* a server without TLS: STARTTLS is refused, never plaintext */
	s = serve(NULL, NULL, NULL);
	bs = open_unix("\"tls-creds\": \"psk-cli\"", &err);
	assert_refused(bs, &err, "does not support TLS", "NBD_OPT_STARTTLS", NULL);
	nbd_server_stop(s);
}

struct delayed_restart {
	struct nbd_server **s;
	const char *creds;
};

static void *restart_later(void *arg)
{
	struct delayed_restart *r = arg;

	usleep(300 * 1000);
	*r->s = serve(r->creds, NULL, NULL);
	return NULL;
}

static void reconnection_redoes_tls(void **state)
{
	struct delayed_restart r;
	struct error *err = NULL;
	struct nbd_server *s;
	struct blockdev *bs;
	uint8_t buf[4096];
	pthread_t t;

	s = serve("psk-srv", NULL, NULL);
	bs = open_unix("\"tls-creds\": \"psk-cli\", \"reconnect-delay\": 10", &err);
	if (!bs)
		fail_msg("%s", error_msg(err));
	memset(buf, 0x3c, sizeof(buf));
	assert_int_equal(blockdev_pwrite(bs, 0, buf, sizeof(buf)), 0);
	/* the server goes; a write waits for the new connection and its TLS handshake */
	nbd_server_stop(s);
	r = (struct delayed_restart){ &s, "psk-srv" };
	assert_int_equal(pthread_create(&t, NULL, restart_later, &r), 0);
	memset(buf, 0x3d, sizeof(buf));
	assert_int_equal(blockdev_pwrite(bs, 4096, buf, sizeof(buf)), 0);
	pthread_join(t, NULL);
	imgfx_assert_reads(bs, 0, 4096, 0x3c);
	imgfx_assert_reads(bs, 4096, 4096, 0x3d);
	blockdev_close(bs);
	nbd_server_stop(s);
}

static void tls_authz_lets_in_one_identity(void **state)
{
	struct nbd_server_opts so = { .type = NBD_ADDR_UNIX, .path = dir("x.sock"), .iothread = it };
	struct error *err = NULL;
	struct nbd_server *s;
	struct blockdev *bs;
	int port;

	s = serve("srv", "auth-ok", &port);
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"cli\"", &err);
	if (!bs)
		fail_msg("%s", error_msg(err));
	assert_serves(bs, 0x73);
	blockdev_close(bs);
	nbd_server_stop(s);
	s = serve("srv", "auth-other", &port);
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"cli\"", &err);
	assert_refused(bs, &err, "nbd://localhost:", "Access was denied", NULL);
	bs = open_tcp(port, "localhost", "\"tls-creds\": \"cli-other\"", &err);
	assert_refused(bs, &err, "nbd://localhost:", NULL);
	nbd_server_stop(s);
	/* nothing to check, or nothing to check it with: refused at start */
	so.tls_creds = "psk-srv";
	so.tls = nbd_tls_obj_creds("psk-srv");
	so.tls_authz = "auth-ok";
	so.authz = nbd_tls_obj_authz("auth-ok");
	assert_null(nbd_server_start(&so, &err));
	if (!strstr(error_msg(err), "tls-creds-psk"))
		fail_msg("%s", error_msg(err));
	error_free(err);
	err = NULL;
	so.tls_creds = "srv-open";
	so.tls = nbd_tls_obj_creds("srv-open");
	assert_null(nbd_server_start(&so, &err));
	assert_non_null(strstr(error_msg(err), "verify-peer=off"));
	error_free(err);
	err = NULL;
	so.tls_creds = "cli";
	so.tls = nbd_tls_obj_creds("cli");
	assert_null(nbd_server_start(&so, &err));
	assert_non_null(strstr(error_msg(err), "endpoint=client"));
	error_free(err);
	err = NULL;
	so.tls_creds = NULL;
	so.tls = NULL;
	assert_null(nbd_server_start(&so, &err));
	assert_non_null(strstr(error_msg(err), "needs tls-creds"));
	error_free(err);
	err = NULL;
	so.tls_authz = "nope";
	so.authz = NULL;
	assert_null(nbd_server_start(&so, &err));
	assert_non_null(strstr(error_msg(err), "no authz object 'nope'"));
	error_free(err);
}

static void objects_are_refused_by_key(void **state)
{
	static const struct {
		const char *spec, *want;
	} bad[] = {
		{ "tls-creds-x509,id=b1,endpoint=both,dir=/tmp", "endpoint 'both'" },
		{ "tls-creds-x509,id=b2,endpoint=client", "dir=" },
		{ "tls-creds-x509,id=srv,endpoint=client,dir=/tmp", "already in use" },
		{ "tls-creds-x509,id=b3,endpoint=client,dir=/nonexistent", "ca-cert.pem" },
		{ "tls-creds-x509,id=b4,endpoint=client,dir=/tmp,priority=NORMAL", "priority" },
		{ "tls-creds-psk,id=b5,endpoint=server,dir=/tmp,username=x", "username=" },
		{ "tls-creds-psk,id=b6,endpoint=client,dir=/nonexistent", "keys.psk" },
		{ "authz-simple,id=b7", "identity" },
		{ "authz-simple,id=9x,identity=CN=x", "id '9x'" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct error *err = NULL;

		assert_int_equal(nbd_tls_obj_add_spec(bad[i].spec, &err), -1);
		if (!strstr(error_msg(err), bad[i].want))
			fail_msg("%s: '%s' is not in: %s", bad[i].spec, bad[i].want, error_msg(err));
		error_free(err);
	}
	{
		struct error *err = NULL;
		char spec[700];

		/* a user keys.psk does not hold */
		snprintf(spec, sizeof(spec), "tls-creds-psk,id=b8,dir=%s,username=bob",
			 dir("psk-cli"));
		assert_int_equal(nbd_tls_obj_add_spec(spec, &err), -1);
		assert_non_null(strstr(error_msg(err), "no key for the user 'bob'"));
		error_free(err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(x509_on_tcp_checks_the_host_name),
		cmocka_unit_test(x509_client_certificate),
		cmocka_unit_test(psk_on_a_unix_socket),
		cmocka_unit_test(reconnection_redoes_tls),
		cmocka_unit_test(tls_authz_lets_in_one_identity),
		cmocka_unit_test(objects_are_refused_by_key),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
