/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QMP server: one qmp_session (the protocol) carried over a unix socket, one client at a
 * time. The client socket is non-blocking: a client that stops reading its replies must not
 * stall the main thread (console, signals, stop requests). What the socket does not take at
 * once waits in the session's output buffer and goes when the socket is writable (POLLOUT);
 * a client that lets more than QMP_MAX_OUTPUT bytes pile up is dropped.
 */
#include "control/qmp_server.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "control/qmp_session.h"

struct qmp_server {
	int listen_fd;
	int client_fd;
	struct qmp_session *sess; /* the client's, while connected */
	const struct qmp_command *cmds;
	unsigned int nr_cmds;
	void *opaque;
	char path[108];
};

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
	qmp_session_free(s->sess);
	s->sess = NULL;
}

/* Sends what the session queued, as much as the socket takes now; drops a client that is
 * gone or lets too much pile up. */
static void qmp_flush(struct qmp_server *s)
{
	while (s->client_fd >= 0) {
		size_t len;
		const char *p = qmp_session_output(s->sess, &len);
		ssize_t r;

		if (qmp_session_overflowed(s->sess)) {
			qmp_drop_client(s);
			return;
		}
		if (!len)
			return;
		r = send(s->client_fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* POLLOUT tells when it takes more */
		if (r <= 0) {
			qmp_drop_client(s);
			return;
		}
		qmp_session_sent(s->sess, (size_t)r);
	}
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
	size_t pending = 0;

	if (s->sess)
		(void)qmp_session_output(s->sess, &pending);
	pfd[0] = (struct pollfd){ .fd = s->client_fd >= 0 ? -1 : s->listen_fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = s->client_fd,
				  .events = (short)(POLLIN | (pending ? POLLOUT : 0)) };
	return 2;
}

void qmp_handle(struct qmp_server *s, const struct pollfd *pfd, unsigned int n)
{
	char buf[4096];
	ssize_t r;

	if (n > 1 && pfd[1].fd >= 0 && s->client_fd >= 0) {
		if (pfd[1].revents & POLLOUT)
			qmp_flush(s);
		if (s->client_fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			r = recv(s->client_fd, buf, sizeof(buf), 0);
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				qmp_drop_client(s);
			} else if (r > 0) {
				bool go_on = qmp_session_input(s->sess, buf, (size_t)r);

				qmp_flush(s);
				if (!go_on)
					qmp_drop_client(s);
			}
		}
	}
	if (pfd[0].fd >= 0 && (pfd[0].revents & POLLIN) && s->client_fd < 0) {
		s->client_fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (s->client_fd >= 0) {
			s->sess = qmp_session_new(s->cmds, s->nr_cmds, s->opaque);
			if (!s->sess) {
				qmp_drop_client(s);
				return;
			}
			qmp_session_greet(s->sess);
			qmp_flush(s);
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
	if (!s || !s->sess) {
		json_object_put(data);
		return;
	}
	qmp_session_event(s->sess, name, data);
	qmp_flush(s);
}
