/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the QMP monitor's input path (control/qmp_server.c) through its real socket.
 *
 * One qmp_server lives for the whole process, on a socket in a private temp directory, with a
 * tiny command table (echo, fail, query-status). Each input is one client session: connect,
 * accept (greeting), feed the bytes, let the server handle them, drain and check the replies,
 * disconnect.
 *
 * Input: one option byte, then the bytes the client sends.
 *   bits 0-5  chunk size: the bytes go to the server in writes of c bytes, each handled before
 *             the next (so messages are split across reads at every position): c = value + 1
 *             for 0..31, else (value - 31) * 256 (256 .. 8192); past the first 512 bytes of a
 *             feed, writes are 4 KiB
 *   bit 6     send qmp_capabilities first (so commands reach the table)
 *   bit 7     send the bytes three times over (reaches the 64 KiB message limit from a small
 *             input)
 * The client reads the replies between two turns of the server, all that is there: the server
 * sends without blocking (a client that does not read is dropped once its socket buffer is
 * full), so what one turn sends must fit in that buffer, as for a client that reads in its own
 * poll loop. One thread does both sides, so a session is the same every time it runs.
 *
 * Invariants: the server never crashes, and every line it sends is one JSON object carrying
 * "QMP", "return", "error" or "event".
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/fuzz/fuzz.h"
#include "control/qmp_server.h"

static struct qmp_server *srv;
static struct sockaddr_un addr = { .sun_family = AF_UNIX };
static char dir[] = "/tmp/vireo-fuzz-qmp-XXXXXX";

/* What the client received in one session (buf and cap kept from one session to the next). */
struct replies {
	int fd;
	char *buf;
	size_t len, cap;
	bool eof; /* the server closed its end */
};

static struct replies client = { .fd = -1 };

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

static void cleanup(void)
{
	qmp_server_free(srv); /* unlinks the socket */
	free(client.buf);
	rmdir(dir);
}

static void setup(void)
{
	struct error *err = NULL;

	if (!mkdtemp(dir)) {
		perror("fuzz_qmp: mkdtemp");
		abort();
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/qmp.sock", dir);
	srv = qmp_server_new(addr.sun_path, cmds, ARRAY_SIZE(cmds), NULL, &err);
	if (!srv) {
		fprintf(stderr, "fuzz_qmp: %s\n", error_msg(err));
		abort();
	}
	atexit(cleanup);
}

/* Reads what the server sent so far (@wait: until it closes its end). */
static void drain(struct replies *r, bool wait)
{
	while (!r->eof) {
		size_t space;
		ssize_t n;

		if (r->cap - r->len < 65536) {
			r->cap = r->cap ? r->cap * 2 : 262144;
			r->buf = realloc(r->buf, r->cap);
			if (!r->buf)
				abort();
		}
		space = r->cap - r->len;
		n = recv(r->fd, r->buf + r->len, space, wait ? 0 : MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !wait)
			return;
		/* the server closed its end (a reset when it left some of our bytes unread) */
		FUZZ_CHECK(n >= 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
		r->eof = n <= 0;
		if (n > 0)
			r->len += (size_t)n;
		/* a stream recv takes all that is queued, up to @space: the socket is empty now,
		 * and nothing sends to it while we are here (one thread plays both sides) */
		if (!wait && (size_t)n < space)
			return;
	}
}

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

static bool connected(void)
{
	struct pollfd pfd[2];

	qmp_fds(srv, pfd);
	return pfd[1].fd >= 0;
}

/*
 * Lets the server handle what is ready (a pending connection, or readable client bytes), then
 * the client read what it sent.
 */
static void serve(struct replies *r)
{
	struct pollfd pfd[2];
	unsigned int n = qmp_fds(srv, pfd);

	FUZZ_CHECK(poll(pfd, n, 5000) > 0, "the server has nothing to handle");
	qmp_handle(srv, pfd, n);
	drain(r, false);
}

/* Sends in writes of @chunk bytes, past the first 512 bytes in 4 KiB ones (fewer round trips). */
static void feed(struct replies *r, const uint8_t *p, size_t len, size_t chunk)
{
	size_t sent = 0;

	while (len && connected()) {
		ssize_t n = send(r->fd, p, MIN(len, sent < 512 ? chunk : 4096), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
		sent += (size_t)n;
		serve(r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char caps[] = "{\"execute\": \"qmp_capabilities\"}";
	struct replies *r = &client;
	size_t chunk;
	uint8_t opt;

	if (!srv)
		setup();
	if (!fuzz_take_opt(&data, &size, &opt))
		return 0;
	chunk = (opt & 63) < 32 ? (opt & 63) + 1u : ((opt & 63) - 31u) * 256;

	r->len = 0;
	r->eof = false;
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(r->fd >= 0, "socket: %s", strerror(errno));
	FUZZ_CHECK(connect(r->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect: %s",
		   strerror(errno));
	serve(r);
	FUZZ_CHECK(connected(), "the server did not accept the client");
	if (opt & 0x40)
		feed(r, (const uint8_t *)caps, sizeof(caps) - 1, chunk);
	for (int i = 0; i < ((opt & 0x80) ? 3 : 1); i++)
		feed(r, data, size, chunk);
	/* hang up our sending side: the server sees EOF, drops the session, closes its end */
	shutdown(r->fd, SHUT_WR);
	for (int i = 0; i < 100 && connected(); i++)
		serve(r);
	FUZZ_CHECK(!connected(), "the server kept a session whose client hung up");
	drain(r, true);
	close(r->fd);
	FUZZ_LOG("qmp: %.*s\n", (int)MIN(r->len, 2000), r->buf ? r->buf : "");
	check_lines(r);
	return 0;
}
