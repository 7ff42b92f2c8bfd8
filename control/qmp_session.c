/* SPDX-License-Identifier: Apache-2.0 */
/* QMP wire protocol (QEMU docs/interop/qmp-spec.rst): greeting, negotiation, commands, events. */
#include "control/qmp_session.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

struct qmp_session {
	bool negotiated;
	bool overflowed;
	size_t msg_bytes; /* bytes of the message being parsed so far */
	json_tokener *tok;
	const struct qmp_command *cmds;
	unsigned int nr_cmds;
	void *opaque;
	char *out;        /* out[out_head, out_len) is queued for the client */
	size_t out_head, out_len, out_cap;
};

struct qmp_session *qmp_session_new(const struct qmp_command *cmds, unsigned int nr_cmds,
				    void *opaque)
{
	struct qmp_session *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->tok = json_tokener_new_ex(32);
	if (!q->tok) {
		free(q);
		return NULL;
	}
	q->cmds = cmds;
	q->nr_cmds = nr_cmds;
	q->opaque = opaque;
	return q;
}

void qmp_session_free(struct qmp_session *q)
{
	if (!q)
		return;
	json_tokener_free(q->tok);
	free(q->out);
	free(q);
}

const char *qmp_session_output(const struct qmp_session *q, size_t *len)
{
	*len = q->out_len - q->out_head;
	return q->out + q->out_head;
}

void qmp_session_sent(struct qmp_session *q, size_t n)
{
	q->out_head += MIN(n, q->out_len - q->out_head);
	if (q->out_head == q->out_len)
		q->out_head = q->out_len = 0;
}

bool qmp_session_overflowed(const struct qmp_session *q)
{
	return q->overflowed;
}

/* Appends @n bytes to the output; past QMP_MAX_OUTPUT the session is over. */
static void out_append(struct qmp_session *q, const char *p, size_t n)
{
	if (q->overflowed)
		return;
	if (q->out_len - q->out_head + n > QMP_MAX_OUTPUT) {
		q->overflowed = true;
		return;
	}
	if (q->out_head && q->out_len + n > q->out_cap) { /* move what is left to the front */
		memmove(q->out, q->out + q->out_head, q->out_len - q->out_head);
		q->out_len -= q->out_head;
		q->out_head = 0;
	}
	if (q->out_len + n > q->out_cap) {
		size_t cap = MAX(q->out_cap * 2, MAX(q->out_len + n, (size_t)4096));
		char *b = realloc(q->out, cap);

		if (!b) {
			q->overflowed = true;
			return;
		}
		q->out = b;
		q->out_cap = cap;
	}
	memcpy(q->out + q->out_len, p, n);
	q->out_len += n;
}

static void send_obj(struct qmp_session *q, struct json_object *obj)
{
	size_t len;
	const char *txt = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);

	out_append(q, txt, len);
	out_append(q, "\r\n", 2);
	json_object_put(obj);
}

static void send_error(struct qmp_session *q, struct json_object *id, const char *cls,
		       const char *desc)
{
	struct json_object *err = json_object_new_object(), *o = json_object_new_object();

	json_object_object_add(err, "class", json_object_new_string(cls));
	json_object_object_add(err, "desc", json_object_new_string(desc));
	json_object_object_add(o, "error", err);
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	send_obj(q, o);
}

void qmp_session_greet(struct qmp_session *q)
{
	struct json_object *o = json_object_new_object(), *qmp = json_object_new_object();
	struct json_object *ver = json_object_new_object(), *v = json_object_new_object();

	json_object_object_add(v, "major", json_object_new_int(0));
	json_object_object_add(v, "minor", json_object_new_int(1));
	json_object_object_add(v, "micro", json_object_new_int(0));
	json_object_object_add(ver, "qemu", v);
	json_object_object_add(ver, "package", json_object_new_string("vireo"));
	json_object_object_add(qmp, "version", ver);
	json_object_object_add(qmp, "capabilities", json_object_new_array());
	json_object_object_add(o, "QMP", qmp);
	send_obj(q, o);
}

static const struct qmp_command *find(struct qmp_session *q, const char *name)
{
	for (unsigned int i = 0; i < q->nr_cmds; i++)
		if (!strcmp(q->cmds[i].name, name))
			return &q->cmds[i];
	return NULL;
}

static void dispatch(struct qmp_session *q, struct json_object *req)
{
	struct json_object *id = NULL, *exec, *args = NULL, *ret = NULL, *o;
	const struct qmp_command *cmd;
	struct error *err = NULL;
	const char *name;
	char desc[160];

	if (!json_object_is_type(req, json_type_object)) {
		send_error(q, NULL, "GenericError", "QMP input must be a JSON object");
		return;
	}
	json_object_object_get_ex(req, "id", &id);
	if (!json_object_object_get_ex(req, "execute", &exec) ||
	    !json_object_is_type(exec, json_type_string)) {
		send_error(q, id, "GenericError", "QMP input lacks member 'execute' (a string)");
		return;
	}
	name = json_object_get_string(exec);
	if (json_object_object_get_ex(req, "arguments", &args) &&
	    !json_object_is_type(args, json_type_object)) {
		send_error(q, id, "GenericError", "QMP input member 'arguments' must be an object");
		return;
	}
	if (!q->negotiated && strcmp(name, "qmp_capabilities")) {
		send_error(q, id, "CommandNotFound",
			   "Expecting capabilities negotiation with 'qmp_capabilities'");
		return;
	}
	if (!strcmp(name, "qmp_capabilities")) {
		if (q->negotiated) {
			send_error(q, id, "CommandNotFound",
				   "Capabilities negotiation is already complete, command ignored");
			return;
		}
		q->negotiated = true;
	} else {
		cmd = find(q, name);
		if (!cmd) {
			snprintf(desc, sizeof(desc), "The command %s has not been found", name);
			send_error(q, id, "CommandNotFound", desc);
			return;
		}
		args = args ? json_object_get(args) : json_object_new_object();
		if (cmd->run(q->opaque, args, &ret, &err) < 0) {
			json_object_put(args);
			send_error(q, id, error_class_name(err), error_msg(err));
			error_free(err);
			return;
		}
		json_object_put(args);
	}
	o = json_object_new_object();
	json_object_object_add(o, "return", ret ? ret : json_object_new_object());
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	send_obj(q, o);
}

bool qmp_session_input(struct qmp_session *q, const char *buf, size_t len)
{
	while (len) {
		struct json_object *obj;
		size_t used;

		/* skip whitespace between messages so it does not count against a message */
		if (q->msg_bytes == 0 && (*buf == ' ' || *buf == '\n' || *buf == '\r' || *buf == '\t')) {
			buf++;
			len--;
			continue;
		}
		obj = json_tokener_parse_ex(q->tok, buf, (int)MIN(len, (size_t)INT32_MAX));
		used = json_tokener_get_parse_end(q->tok);
		if (used == 0 || used > len)
			used = len;
		buf += used;
		len -= used;
		q->msg_bytes += used;
		if (obj) {
			dispatch(q, obj);
			json_object_put(obj);
			q->msg_bytes = 0;
		} else if (json_tokener_get_error(q->tok) != json_tokener_continue) {
			send_error(q, NULL, "GenericError", "JSON parse error: malformed input");
			json_tokener_reset(q->tok);
			q->msg_bytes = 0;
			return true; /* the rest of this read is unreliable: drop it */
		} else if (q->msg_bytes > QMP_MAX_MESSAGE) {
			send_error(q, NULL, "GenericError",
				   "JSON parse error: message longer than 65536 bytes");
			return false;
		}
	}
	return true;
}

void qmp_session_event(struct qmp_session *q, const char *name, struct json_object *data)
{
	struct json_object *o, *ts;
	struct timespec now;

	if (!q->negotiated) {
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
	send_obj(q, o);
}
