/* SPDX-License-Identifier: Apache-2.0 */
/* QMP wire protocol (QEMU docs/interop/qmp-spec.rst): greeting, negotiation, commands, events. */
#include "control/qmp_server.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

struct qmp_server {
	int listen_fd;
	int client_fd;
	bool negotiated;
	size_t msg_bytes; /* bytes of the message being parsed so far */
	json_tokener *tok;
	const struct qmp_command *cmds;
	unsigned int nr_cmds;
	void *opaque;
	char path[108];
};

static void qmp_drop_client(struct qmp_server *s);

/* Sends the @n pieces of @iov (which it advances) in as few sendmsg() calls as it takes. */
static int qmp_send_all(struct qmp_server *s, struct iovec *iov, size_t n)
{
	while (s->client_fd >= 0 && n) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = n };
		ssize_t r = sendmsg(s->client_fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		for (; n && (size_t)r >= iov->iov_len; iov++, n--)
			r -= (ssize_t)iov->iov_len;
		if (n) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static void qmp_send(struct qmp_server *s, struct json_object *obj)
{
	size_t len;
	const char *txt = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
	struct iovec line[2] = { { (void *)txt, len }, { "\r\n", 2 } };

	/*
	 * The client socket is non-blocking: a client that stops reading its replies must not
	 * stall the main thread (console, signals, stop requests). When its socket buffer is full
	 * it is dropped instead. The line and its CRLF go in one call (one syscall per reply).
	 */
	if (qmp_send_all(s, line, ARRAY_SIZE(line)) < 0)
		qmp_drop_client(s);
	json_object_put(obj);
}

static void qmp_send_error(struct qmp_server *s, struct json_object *id, const char *cls,
			   const char *desc)
{
	struct json_object *err = json_object_new_object(), *o = json_object_new_object();

	json_object_object_add(err, "class", json_object_new_string(cls));
	json_object_object_add(err, "desc", json_object_new_string(desc));
	json_object_object_add(o, "error", err);
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	qmp_send(s, o);
}

static void qmp_greet(struct qmp_server *s)
{
	struct json_object *o = json_object_new_object(), *qmp = json_object_new_object();
	struct json_object *ver = json_object_new_object(), *q = json_object_new_object();

	json_object_object_add(q, "major", json_object_new_int(0));
	json_object_object_add(q, "minor", json_object_new_int(1));
	json_object_object_add(q, "micro", json_object_new_int(0));
	json_object_object_add(ver, "qemu", q);
	json_object_object_add(ver, "package", json_object_new_string("vireo"));
	json_object_object_add(qmp, "version", ver);
	json_object_object_add(qmp, "capabilities", json_object_new_array());
	json_object_object_add(o, "QMP", qmp);
	qmp_send(s, o);
}

struct qmp_server *qmp_server_new(const char *path, const struct qmp_command *cmds,
				  unsigned int nr_cmds, void *opaque, struct error **errp)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct qmp_server *s;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		error_setg(errp, "socket path '%s' is longer than %zu bytes", path,
			   sizeof(addr.sun_path) - 1);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		error_setg(errp, "out of memory");
		return NULL;
	}
	s->client_fd = -1;
	s->cmds = cmds;
	s->nr_cmds = nr_cmds;
	s->opaque = opaque;
	strcpy(s->path, path);
	strcpy(addr.sun_path, path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0) {
		error_setg_errno(errp, errno, "cannot create a socket");
		goto fail;
	}
	unlink(path);
	if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(s->listen_fd, 4) < 0) {
		error_setg_errno(errp, errno, "cannot listen on '%s'", path);
		goto fail;
	}
	return s;
fail:
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	free(s);
	return NULL;
}

static void qmp_drop_client(struct qmp_server *s)
{
	if (s->client_fd >= 0)
		close(s->client_fd);
	s->client_fd = -1;
	if (s->tok)
		json_tokener_free(s->tok);
	s->tok = NULL;
	s->negotiated = false;
	s->msg_bytes = 0;
}

void qmp_server_free(struct qmp_server *s)
{
	if (!s)
		return;
	qmp_drop_client(s);
	close(s->listen_fd);
	unlink(s->path);
	free(s);
}

unsigned int qmp_fds(struct qmp_server *s, struct pollfd *pfd)
{
	pfd[0] = (struct pollfd){ .fd = s->client_fd >= 0 ? -1 : s->listen_fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = s->client_fd, .events = POLLIN };
	return 2;
}

static const struct qmp_command *qmp_find(struct qmp_server *s, const char *name)
{
	for (unsigned int i = 0; i < s->nr_cmds; i++)
		if (!strcmp(s->cmds[i].name, name))
			return &s->cmds[i];
	return NULL;
}

static void qmp_dispatch(struct qmp_server *s, struct json_object *req)
{
	struct json_object *id = NULL, *exec, *args = NULL, *ret = NULL, *o;
	const struct qmp_command *cmd;
	struct error *err = NULL;
	const char *name;
	char desc[160];

	if (!json_object_is_type(req, json_type_object)) {
		qmp_send_error(s, NULL, "GenericError", "QMP input must be a JSON object");
		return;
	}
	json_object_object_get_ex(req, "id", &id);
	if (!json_object_object_get_ex(req, "execute", &exec) ||
	    !json_object_is_type(exec, json_type_string)) {
		qmp_send_error(s, id, "GenericError", "QMP input lacks member 'execute' (a string)");
		return;
	}
	name = json_object_get_string(exec);
	if (json_object_object_get_ex(req, "arguments", &args) &&
	    !json_object_is_type(args, json_type_object)) {
		qmp_send_error(s, id, "GenericError", "QMP input member 'arguments' must be an object");
		return;
	}
	if (!s->negotiated && strcmp(name, "qmp_capabilities")) {
		qmp_send_error(s, id, "CommandNotFound",
			       "Expecting capabilities negotiation with 'qmp_capabilities'");
		return;
	}
	if (!strcmp(name, "qmp_capabilities")) {
		if (s->negotiated) {
			qmp_send_error(s, id, "CommandNotFound",
				       "Capabilities negotiation is already complete, command ignored");
			return;
		}
		s->negotiated = true;
	} else {
		cmd = qmp_find(s, name);
		if (!cmd) {
			snprintf(desc, sizeof(desc), "The command %s has not been found", name);
			qmp_send_error(s, id, "CommandNotFound", desc);
			return;
		}
		args = args ? json_object_get(args) : json_object_new_object();
		if (cmd->run(s->opaque, args, &ret, &err) < 0) {
			json_object_put(args);
			qmp_send_error(s, id, error_class_name(err), error_msg(err));
			error_free(err);
			return;
		}
		json_object_put(args);
	}
	o = json_object_new_object();
	json_object_object_add(o, "return", ret ? ret : json_object_new_object());
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	qmp_send(s, o);
}

/* Feeds received bytes to the tokenizer; dispatches each complete message. */
static void qmp_input(struct qmp_server *s, const char *buf, size_t len)
{
	while (len && s->client_fd >= 0) {
		struct json_object *obj;
		size_t used;

		/* skip whitespace between messages so it does not count against a message */
		if (s->msg_bytes == 0 && (*buf == ' ' || *buf == '\n' || *buf == '\r' || *buf == '\t')) {
			buf++;
			len--;
			continue;
		}
		obj = json_tokener_parse_ex(s->tok, buf, (int)len);
		used = json_tokener_get_parse_end(s->tok);
		if (used == 0 || used > len)
			used = len;
		buf += used;
		len -= used;
		s->msg_bytes += used;
		if (obj) {
			qmp_dispatch(s, obj);
			json_object_put(obj);
			s->msg_bytes = 0;
		} else if (json_tokener_get_error(s->tok) != json_tokener_continue) {
			qmp_send_error(s, NULL, "GenericError", "JSON parse error: malformed input");
			json_tokener_reset(s->tok);
			s->msg_bytes = 0;
			return; /* the rest of this read is unreliable: drop it */
		} else if (s->msg_bytes > QMP_MAX_MESSAGE) {
			qmp_send_error(s, NULL, "GenericError",
				       "JSON parse error: message longer than 65536 bytes");
			qmp_drop_client(s);
			return;
		}
	}
}

void qmp_handle(struct qmp_server *s, const struct pollfd *pfd, unsigned int n)
{
	char buf[4096];
	ssize_t r;

	if (n > 1 && pfd[1].fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
		r = recv(s->client_fd, buf, sizeof(buf), 0);
		if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
			qmp_drop_client(s);
		else if (r > 0)
			qmp_input(s, buf, (size_t)r);
	}
	if (pfd[0].fd >= 0 && (pfd[0].revents & POLLIN) && s->client_fd < 0) {
		s->client_fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (s->client_fd >= 0) {
			s->tok = json_tokener_new_ex(32);
			if (!s->tok) {
				qmp_drop_client(s);
				return;
			}
			qmp_greet(s);
		}
	}
}

struct json_object *qmp_command_list(const struct qmp_command *cmds, unsigned int nr_cmds)
{
	struct json_object *list = json_object_new_array();

	for (unsigned int i = 0; i < nr_cmds; i++) {
		struct json_object *c = json_object_new_object();

		json_object_object_add(c, "name", json_object_new_string(cmds[i].name));
		json_object_array_add(list, c);
	}
	return list;
}

void qmp_event(struct qmp_server *s, const char *name, struct json_object *data)
{
	struct json_object *o, *ts;
	struct timespec now;

	if (!s || s->client_fd < 0 || !s->negotiated) {
		json_object_put(data);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	o = json_object_new_object();
	ts = json_object_new_object();
	json_object_object_add(o, "event", json_object_new_string(name));
	if (data)
		json_object_object_add(o, "data", data);
	json_object_object_add(ts, "seconds", json_object_new_int64(now.tv_sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(now.tv_nsec / 1000));
	json_object_object_add(o, "timestamp", ts);
	qmp_send(s, o);
}
