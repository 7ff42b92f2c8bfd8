/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QMP server: QEMU's JSON control protocol on a unix socket, so QMP clients work unchanged.
 * It speaks the protocol (greeting, qmp_capabilities negotiation, dispatch, errors, events) and
 * knows no command of its own: each program hands it its table (vireo: vmm/machine_qmp.c), so
 * that vireo and the storage daemon share it.
 *
 * Only the main thread touches a qmp_server: it polls the fds qmp_fds() names and calls
 * qmp_handle() when one is ready. One client at a time (a second connection waits in the
 * backlog). Commands run synchronously on the main thread; each answers once. The protocol
 * itself is qmp_session.h's: input is hostile (a message over QMP_MAX_MESSAGE bytes or
 * malformed JSON gets an error answer, and the connection is dropped if it cannot be
 * resynchronised); replies the client does not read wait in a bounded buffer.
 */
#ifndef VIREO_CONTROL_QMP_SERVER_H
#define VIREO_CONTROL_QMP_SERVER_H

#include <poll.h>
#include <stdbool.h>

#include "common/error.h"

#define QMP_MAX_MESSAGE (64 * 1024)

struct json_object;

struct qmp_command {
	const char *name;
	/*
	 * Runs the command. args is the "arguments" object (never NULL: an empty object when the
	 * client sent none). On success return 0 and optionally set *ret (default: {}); on failure
	 * return -1 with *errp set (sent as a GenericError).
	 */
	int (*run)(void *opaque, struct json_object *args, struct json_object **ret,
		   struct error **errp);
};

struct qmp_server;

/* Listens on a unix socket at path (an existing socket file is replaced); the caller prefixes
 * an error with the option that gave the path. */
struct qmp_server *qmp_server_new(const char *path, const struct qmp_command *cmds,
				  unsigned int nr_cmds, void *opaque, struct error **errp);
void qmp_server_free(struct qmp_server *s);
/* Fills up to 2 pollfds (listener, client); returns how many. */
unsigned int qmp_fds(struct qmp_server *s, struct pollfd *pfd);
/* Handles readiness reported in the pollfds qmp_fds() filled. */
void qmp_handle(struct qmp_server *s, const struct pollfd *pfd, unsigned int n);
/* query-commands' answer: the names of @cmds (a program's table; a new array). */
struct json_object *qmp_command_list(const struct qmp_command *cmds, unsigned int nr_cmds);
/* Sends an event to the connected client, if any (data may be NULL; it is consumed). */
void qmp_event(struct qmp_server *s, const char *name, struct json_object *data);

#endif
