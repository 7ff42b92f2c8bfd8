/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the QMP monitor's protocol (control/qmp_session.c), the part of the QMP server
 * that reads what a client sends, driven directly, without its socket (control/qmp_server.c
 * only moves the bytes; tests/integration/qmp_test.py covers it over a real socket).
 *
 * A session with a tiny command table (echo, fail, query-status). Each input is one client
 * session: greeting, the bytes fed in pieces, the replies taken out in pieces, all checked.
 *
 * Input: one option byte, then the bytes the client sends.
 *   bits 0-5  chunk size: the bytes go to the session in pieces of c bytes (so messages are
 *             split across reads at every position): c = value + 1 for 0..31, else
 *             (value - 31) * 256 (256 .. 8192); past the first 512 bytes of a feed, pieces are
 *             4 KiB. After each piece the client takes c bytes of the replies (all of them at
 *             the end), so the output buffer is read from its middle and refilled.
 *   bit 6     send qmp_capabilities first (so commands reach the table)
 *   bit 7     send the bytes three times over (reaches the 64 KiB message limit from a small
 *             input)
 *
 * Invariants: the session never crashes, it never holds more than QMP_MAX_OUTPUT bytes of
 * replies, and every line it sends is one JSON object carrying "QMP", "return", "error" or
 * "event".
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "control/qmp_session.h"
#include "tests/fuzz/fuzz.h"

/* What the client received in one session (buf and cap kept from one session to the next). */
struct replies {
	char *buf;
	size_t len, cap;
};

static struct replies client;

static int cmd_echo(void *opaque, struct json_object *args, struct json_object **ret,
		    struct error **errp)
{
	*ret = json_object_get(args);
	return 0;
}

static int cmd_fail(void *opaque, struct json_object *args, struct json_object **ret,
		    struct error **errp)
{
	error_setg(errp, "failed as asked, with %s", json_object_to_json_string(args));
	return -1;
}

static int cmd_query_status(void *opaque, struct json_object *args, struct json_object **ret,
			    struct error **errp)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "running", json_object_new_boolean(1));
	json_object_object_add(o, "status", json_object_new_string("running"));
	*ret = o;
	return 0;
}

static const struct qmp_command cmds[] = {
	{ "echo", cmd_echo },
	{ "fail", cmd_fail },
	{ "query-status", cmd_query_status },
};

/*
 * Every complete line must be one QMP message; a session may end inside a line (dropped). A
 * line equal to the one before it (the same error, again) has been checked already.
 */
static void check_lines(struct replies *r)
{
	char *start = r->buf, *end = r->buf + r->len, *nl, *prev = NULL;
	size_t prev_n = 0;

	while (start < end && (nl = memchr(start, '\n', (size_t)(end - start)))) {
		struct json_object *o;
		size_t n = (size_t)(nl - start);

		FUZZ_CHECK(n >= 1 && start[n - 1] == '\r', "reply line not ended by CRLF");
		if (prev && n == prev_n && !memcmp(start, prev, n - 1)) { /* prev's CR is a NUL */
			start = nl + 1;
			continue;
		}
		prev = start;
		prev_n = n;
		start[n - 1] = '\0';
		o = json_tokener_parse(start);
		FUZZ_CHECK(o && json_object_is_type(o, json_type_object) &&
			   (json_object_object_get_ex(o, "QMP", NULL) ||
			    json_object_object_get_ex(o, "return", NULL) ||
			    json_object_object_get_ex(o, "error", NULL) ||
			    json_object_object_get_ex(o, "event", NULL)),
			   "reply is not a QMP message: %.200s", start);
		json_object_put(o);
		start = nl + 1;
	}
}

/* The client takes up to @max bytes of the replies. */
static void take(struct qmp_session *q, struct replies *r, size_t max)
{
	size_t len;
	const char *p = qmp_session_output(q, &len);

	FUZZ_CHECK(len <= QMP_MAX_OUTPUT, "%zu bytes of replies held", len);
	len = MIN(len, max);
	if (r->cap - r->len < len) {
		r->cap = MAX(r->cap * 2, r->len + len);
		r->buf = realloc(r->buf, r->cap);
		if (!r->buf)
			abort();
	}
	memcpy(r->buf + r->len, p, len);
	r->len += len;
	qmp_session_sent(q, len);
}

/* Feeds in pieces of @chunk bytes, past the first 512 bytes in 4 KiB ones; false when the
 * session ended. */
static bool feed(struct qmp_session *q, struct replies *r, const uint8_t *p, size_t len,
		 size_t chunk)
{
	size_t sent = 0;

	while (len) {
		size_t n = MIN(len, sent < 512 ? chunk : 4096);
		bool go_on = qmp_session_input(q, (const char *)p, n);

		p += n;
		len -= n;
		sent += n;
		take(q, r, chunk);
		if (!go_on || qmp_session_overflowed(q))
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char caps[] = "{\"execute\": \"qmp_capabilities\"}";
	struct replies *r = &client;
	struct qmp_session *q;
	size_t chunk;
	uint8_t opt;
	bool live = true;

	if (!fuzz_take_opt(&data, &size, &opt))
		return 0;
	chunk = (opt & 63) < 32 ? (opt & 63) + 1u : ((opt & 63) - 31u) * 256;
	r->len = 0;
	q = qmp_session_new(cmds, ARRAY_SIZE(cmds), NULL);
	FUZZ_CHECK(q, "out of memory");
	qmp_session_greet(q);
	if (opt & 0x40)
		live = feed(q, r, (const uint8_t *)caps, sizeof(caps) - 1, chunk);
	for (int i = 0; live && i < ((opt & 0x80) ? 3 : 1); i++)
		live = feed(q, r, data, size, chunk);
	qmp_session_event(q, "SHUTDOWN", NULL);
	take(q, r, SIZE_MAX);
	qmp_session_free(q);
	FUZZ_LOG("qmp: %.*s\n", (int)MIN(r->len, 2000), r->buf ? r->buf : "");
	check_lines(r);
	return 0;
}
