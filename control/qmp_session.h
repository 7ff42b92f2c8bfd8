/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One QMP session, without its socket: bytes in (qmp_session_input), bytes out (an output
 * buffer the transport sends from). It speaks the protocol (greeting, qmp_capabilities
 * negotiation, dispatch to a program's command table, errors, events); qmp_server.c carries it
 * over a unix socket, and the fuzz target drives it directly.
 *
 * Input is hostile: malformed JSON gets an error answer and the rest of that read is dropped; a
 * message over QMP_MAX_MESSAGE bytes ends the session. Output a client does not read piles up
 * to QMP_MAX_OUTPUT bytes at most: then the session is over (qmp_session_overflowed).
 */
#ifndef VIREO_CONTROL_QMP_SESSION_H
#define VIREO_CONTROL_QMP_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "control/qmp_server.h"

#define QMP_MAX_OUTPUT (4 * 1024 * 1024)

struct qmp_session;
struct json_object;

/* NULL when out of memory. */
struct qmp_session *qmp_session_new(const struct qmp_command *cmds, unsigned int nr_cmds,
				    void *opaque);
void qmp_session_free(struct qmp_session *q);
/* Queues the greeting. */
void qmp_session_greet(struct qmp_session *q);
/* Handles received bytes (every complete message is dispatched); false when the session must
 * end (a message too long to resynchronise after: its error answer is queued). */
bool qmp_session_input(struct qmp_session *q, const char *buf, size_t len);
/* Queues an event if the client negotiated (@data may be NULL; it is consumed). */
void qmp_session_event(struct qmp_session *q, const char *name, struct json_object *data);
/* The bytes queued for the client (*@len of them), and how many of them went out. */
const char *qmp_session_output(const struct qmp_session *q, size_t *len);
void qmp_session_sent(struct qmp_session *q, size_t n);
/* More than QMP_MAX_OUTPUT bytes were queued (or memory ran out): the client is not reading. */
bool qmp_session_overflowed(const struct qmp_session *q);

#endif
