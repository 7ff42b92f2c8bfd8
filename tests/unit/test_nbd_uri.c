/* SPDX-License-Identifier: Apache-2.0 */
/* NBD filenames and --blockdev server keys (blockdev/nbd_uri.c). */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "blockdev/nbd_client.h"
#include "common/keyval.h"
#include "common/util.h"

/* @f parses to a TCP target. */
static void expect_inet(const char *f, const char *host, const char *port, const char *export)
{
	struct nbd_target t;
	struct error *err = NULL;

	assert_true(nbd_uri_is(f));
	if (nbd_uri_parse(f, &t, &err) < 0)
		fail_msg("'%s' refused: %s", f, error_msg(err));
	assert_int_equal(t.type, NBD_ADDR_INET);
	assert_string_equal(t.host, host);
	assert_string_equal(t.port, port);
	assert_string_equal(t.export, export);
	assert_null(t.path);
	nbd_target_free(&t);
}

static void expect_unix(const char *f, const char *path, const char *export)
{
	struct nbd_target t;
	struct error *err = NULL;

	if (nbd_uri_parse(f, &t, &err) < 0)
		fail_msg("'%s' refused: %s", f, error_msg(err));
	assert_int_equal(t.type, NBD_ADDR_UNIX);
	assert_string_equal(t.path, path);
	assert_string_equal(t.export, export);
	assert_null(t.host);
	nbd_target_free(&t);
}

/* @f is refused with a message holding the filename and @what. */
static void expect_error(const char *f, const char *what)
{
	struct nbd_target t;
	struct error *err = NULL;

	if (nbd_uri_parse(f, &t, &err) == 0)
		fail_msg("'%s' accepted", f);
	assert_non_null(err);
	if (!strstr(error_msg(err), what))
		fail_msg("'%s': message '%s' lacks '%s'", f, error_msg(err), what);
	assert_null(t.host);
	assert_null(t.export);
	error_free(err);
}

static void uri_tcp_forms(void **state)
{
	expect_inet("nbd://localhost/disk", "localhost", "10809", "disk");
	expect_inet("nbd://127.0.0.1:10810/disk", "127.0.0.1", "10810", "disk");
	expect_inet("nbd+tcp://host:1/", "host", "1", "");
	expect_inet("nbd://host:65535", "host", "65535", "");
	expect_inet("nbd://[::1]:2000/a/b", "::1", "2000", "a/b");
	expect_inet("nbd://[fe80::1]/x", "fe80::1", "10809", "x");
	expect_inet("nbd:///x", "localhost", "10809", "x");
	/* the export is the path without its first '/', percent escapes decoded */
	expect_inet("nbd://h//abs", "h", "10809", "/abs");
	expect_inet("nbd://h/with%20space%2Fslash", "h", "10809", "with space/slash");
}

static void uri_unix_forms(void **state)
{
	expect_unix("nbd+unix:///disk?socket=/run/nbd.sock", "/run/nbd.sock", "disk");
	expect_unix("nbd+unix://?socket=/s", "/s", "");
	expect_unix("nbd+unix:///?socket=rel/s%3F", "rel/s?", "");
}

static void legacy_forms(void **state)
{
	expect_inet("nbd:example.org:10809", "example.org", "10809", "");
	expect_inet("nbd:h:99:exportname=a:b=c", "h", "99", "a:b=c");
	expect_inet("nbd:[::1]:99:exportname=e", "::1", "99", "e");
	expect_unix("nbd:unix:/tmp/s", "/tmp/s", "");
	expect_unix("nbd:unix:/tmp/s:exportname=disk0", "/tmp/s", "disk0");
}

static void bad_filenames_refused_by_part(void **state)
{
	expect_error("nbd://h:0/x", "port '0'");
	expect_error("nbd://h:65536/x", "port '65536'");
	expect_error("nbd://h:12a/x", "port '12a'");
	expect_error("nbd://h:/x", "port ''");
	expect_error("nbd://::1/x", "[brackets]");
	expect_error("nbd://[::1/x", "closing ']'");
	expect_error("nbd://[::1]x/y", "':PORT'");
	expect_error("nbd://h/x?socket=/s", "no ?parameters");
	expect_error("nbd://h/x#frag", "fragment");
	expect_error("nbd://user@h/x", "holds '@'");
	expect_error("nbd://h/%zz", "percent escape");
	expect_error("nbd://h/a%00b", "percent escape");
	expect_error("nbd://h/a%2", "percent escape");
	expect_error("nbd+unix://h/x?socket=/s", "takes no host");
	expect_error("nbd+unix:///x", "needs ?socket=PATH");
	expect_error("nbd+unix:///x?socket=", "needs ?socket=PATH");
	expect_error("nbd+unix:///x?sock=/s", "unknown parameter 'sock=/s'");
	expect_error("nbd+unix:///x?socket=/a&socket=/b", "twice");
	expect_error("nbd:unix:", "nbd:unix:PATH");
	expect_error("nbd:host", "nbd:HOST:PORT");
	expect_error("nbd:", "nbd:HOST:PORT");
	expect_error("nbds://h/x", "TLS");
	expect_error("nbd+vsock://2/x", "not an NBD filename");
}

static void export_longer_than_the_protocol_allows_is_refused(void **state)
{
	char *f = malloc(NBD_MAX_STRING + 64);

	assert_non_null(f);
	strcpy(f, "nbd://h/");
	memset(f + 8, 'e', NBD_MAX_STRING + 1);
	f[8 + NBD_MAX_STRING + 1] = '\0';
	expect_error(f, "longer than 4096");
	f[8 + NBD_MAX_STRING] = '\0'; /* exactly the limit */
	expect_inet(f, "h", "10809", f + 8);
	free(f);
}

static void host_files_are_not_nbd(void **state)
{
	assert_false(nbd_uri_is("/tmp/nbd://x"));
	assert_false(nbd_uri_is("disk.qcow2"));
	assert_false(nbd_uri_is("nb"));
	assert_false(nbd_uri_is(""));
	assert_true(nbd_uri_is("nbd:x"));
	assert_true(nbd_uri_is("nbds://h/x"));
}

/* The canonical filename parses back to the same target, whatever the export holds. */
static void canonical_uri_round_trips(void **state)
{
	static const char *const exports[] = { "", "disk", "a b/c?d#e%f&g=h", "/lead", "\x01\xff" };
	struct nbd_target t = { 0 }, back;
	struct error *err = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(exports); i++) {
		for (int unix_sock = 0; unix_sock < 2; unix_sock++) {
			char *uri;

			t.type = unix_sock ? NBD_ADDR_UNIX : NBD_ADDR_INET;
			t.host = unix_sock ? NULL : (char *)(i % 2 ? "::1" : "host.example");
			t.port = unix_sock ? NULL : (char *)"4242";
			t.path = unix_sock ? (char *)"/run/a b&c=d?.sock" : NULL;
			t.export = (char *)exports[i];
			uri = nbd_target_uri(&t);
			assert_non_null(uri);
			if (nbd_uri_parse(uri, &back, &err) < 0)
				fail_msg("'%s' refused: %s", uri, error_msg(err));
			assert_int_equal(back.type, t.type);
			assert_string_equal(back.export, t.export);
			if (unix_sock) {
				assert_string_equal(back.path, t.path);
			} else {
				assert_string_equal(back.host, t.host);
				assert_string_equal(back.port, t.port);
			}
			nbd_target_free(&back);
			free(uri);
		}
	}
	/* QEMU's forms */
	{
		static const struct {
			struct nbd_target t;
			const char *uri;
		} forms[] = {
			{ { NBD_ADDR_INET, "h", "10809", NULL, "e" }, "nbd://h/e" },
			{ { NBD_ADDR_INET, "h", "99", NULL, "" }, "nbd://h:99" },
			{ { NBD_ADDR_INET, "::1", "10809", NULL, "" }, "nbd://[::1]" },
			{ { NBD_ADDR_UNIX, NULL, NULL, "/s", "e" }, "nbd+unix:///e?socket=/s" },
			{ { NBD_ADDR_UNIX, NULL, NULL, "/s", "" }, "nbd+unix://?socket=/s" },
		};

		for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
			char *uri = nbd_target_uri(&forms[i].t);

			assert_string_equal(uri, forms[i].uri);
			free(uri);
		}
	}
}

/* --blockdev driver=nbd's keys, through keyval as the command line gives them. */
static int from_keys(const char *keys, struct nbd_target *t, struct error **err,
		     struct json_object **left)
{
	struct json_object *o = keyval_parse(keys, NULL, err);
	int ret;

	assert_non_null(o);
	ret = nbd_target_from_json(o, t, "--blockdev", err);
	*left = o;
	return ret;
}

static void blockdev_keys(void **state)
{
	struct json_object *o;
	struct nbd_target t;
	struct error *err = NULL;

	assert_int_equal(from_keys("server.type=inet,server.host=h,server.port=123,export=e,"
				   "reconnect-delay=5", &t, &err, &o), 0);
	assert_int_equal(t.type, NBD_ADDR_INET);
	assert_string_equal(t.host, "h");
	assert_string_equal(t.port, "123");
	assert_string_equal(t.export, "e");
	/* the driver's own keys are left for it */
	assert_int_equal(json_object_object_length(o), 1);
	nbd_target_free(&t);
	json_object_put(o);

	assert_int_equal(from_keys("server.type=unix,server.path=/s", &t, &err, &o), 0);
	assert_int_equal(t.type, NBD_ADDR_UNIX);
	assert_string_equal(t.path, "/s");
	assert_string_equal(t.export, "");
	nbd_target_free(&t);
	json_object_put(o);

	assert_int_equal(from_keys("server.type=inet,server.host=h", &t, &err, &o), 0);
	assert_string_equal(t.port, "10809");
	nbd_target_free(&t);
	json_object_put(o);
}

static void blockdev_keys_refused_by_name(void **state)
{
	static const struct {
		const char *keys, *what;
	} bad[] = {
		{ "export=e", "needs server.type" },
		{ "server.host=h", "server.type is missing" },
		{ "server.type=vsock,server.cid=3", "'vsock' is not supported" },
		{ "server.type=inet,server.port=1", "server.host is missing" },
		{ "server.type=inet,server.host=h,server.port=0", "server.port: '0'" },
		{ "server.type=inet,server.host=h,server.numeric=on", "unknown key 'numeric'" },
		{ "server.type=unix", "server.path is missing" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct json_object *o;
		struct nbd_target t;
		struct error *err = NULL;

		if (from_keys(bad[i].keys, &t, &err, &o) == 0)
			fail_msg("'%s' accepted", bad[i].keys);
		if (!err || !strstr(error_msg(err), bad[i].what))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].keys,
				 err ? error_msg(err) : "(none)", bad[i].what);
		error_free(err);
		json_object_put(o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(uri_tcp_forms),
		cmocka_unit_test(uri_unix_forms),
		cmocka_unit_test(legacy_forms),
		cmocka_unit_test(bad_filenames_refused_by_part),
		cmocka_unit_test(export_longer_than_the_protocol_allows_is_refused),
		cmocka_unit_test(host_files_are_not_nbd),
		cmocka_unit_test(canonical_uri_round_trips),
		cmocka_unit_test(blockdev_keys),
		cmocka_unit_test(blockdev_keys_refused_by_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
