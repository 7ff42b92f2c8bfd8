/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QMP's and the command line's NBD server and exports (see nbd_qmp.h): arguments taken by
 * name as QEMU spells them, anything left over refused by name, then blockdev/nbd_server.h.
 * Control-plane thread only; the server's own iothread is made and stopped here.
 */
#include "control/nbd_qmp.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "blockdev/nbd_server.h"
#include "blockdev/nbd_tls_obj.h"
#include "common/keyval.h"
#include "control/iothread_obj.h"
#include "iothreads/iothread.h"

static struct nbd_server *srv;
static struct iothread *srv_iothread; /* accepts, runs handshakes and exports without iothread= */
static void (*emit)(void *opaque, const char *name, struct json_object *data);
static void *emit_opaque;

void nbd_qmp_init(void (*fn)(void *opaque, const char *name, struct json_object *data),
		  void *opaque)
{
	emit = fn;
	emit_opaque = opaque;
}

static void export_deleted(const char *id)
{
	struct json_object *data;

	if (!emit)
		return;
	data = json_object_new_object();
	json_object_object_add(data, "id", json_object_new_string(id));
	emit(emit_opaque, "BLOCK_EXPORT_DELETED", data);
}

/* "port": QAPI's string (a number or a service name); a JSON number is taken too. */
static int take_port(struct json_object *addr, char *buf, size_t len, const char **out,
		     struct error **errp)
{
	struct json_object *v;

	if (keyval_take_value(addr, "port", &v) != 0)
		return 0;
	if (json_object_is_type(v, json_type_string)) {
		*out = json_object_get_string(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0 &&
	    json_object_get_int64(v) <= 65535) {
		snprintf(buf, len, "%d", (int)json_object_get_int64(v));
		*out = buf;
		return 0;
	}
	error_setg(errp, "port: '%s' is not a port number or service name",
		   json_object_to_json_string(v));
	return -1;
}

/* A flat SocketAddress {type: inet, host, port | type: unix, path} into @o. */
static int take_addr(struct json_object *addr, struct nbd_server_opts *o, char *port,
		     size_t port_len, struct error **errp)
{
	const char *type;

	if (!json_object_is_type(addr, json_type_object)) {
		error_setg(errp, "expected an object (type=inet,host=...,port=... or "
			   "type=unix,path=...)");
		return -1;
	}
	if (keyval_need_string(addr, "type", &type, errp) < 0)
		return -1;
	if (!strcmp(type, "inet")) {
		o->type = NBD_ADDR_INET;
		if (keyval_take_string(addr, "host", &o->host, errp) < 0 ||
		    take_port(addr, port, port_len, &o->port, errp) < 0)
			return -1;
	} else if (!strcmp(type, "unix")) {
		o->type = NBD_ADDR_UNIX;
		if (keyval_need_string(addr, "path", &o->path, errp) < 0)
			return -1;
	} else {
		error_setg(errp, "type '%s' is not supported (inet, unix)", type);
		return -1;
	}
	return keyval_refuse_leftovers(addr, NULL, errp);
}

/* The server's keys besides addr (@a) and the flat address (@addr); starts the server. */
static int server_start(struct json_object *a, struct json_object *addr, struct error **errp)
{
	struct nbd_server_opts o = { 0 };
	uint64_t max_conns = 0, handshake_s = 0;
	char port[8];
	int r;

	if (srv) {
		error_setg(errp, "NBD server already running");
		return -1;
	}
	if (take_addr(addr, &o, port, sizeof(port), errp) < 0) {
		error_prepend(errp, "addr");
		return -1;
	}
	if (keyval_take_u64(a, "max-connections", &max_conns, errp) < 0 ||
	    (r = keyval_take_u64(a, "handshake-max-seconds", &handshake_s, errp)) < 0 ||
	    keyval_take_string(a, "tls-creds", &o.tls_creds, errp) < 0 ||
	    keyval_take_string(a, "tls-authz", &o.tls_authz, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (max_conns > UINT_MAX) {
		error_setg(errp, "max-connections: at most %u", UINT_MAX);
		return -1;
	}
	if (r == 0 && (handshake_s == 0 || handshake_s > UINT_MAX / 1000)) {
		error_setg(errp, "handshake-max-seconds: 1 to %u (a client must finish its "
			   "handshake in a bounded time)", UINT_MAX / 1000);
		return -1;
	}
	/* names without objects: the server says so */
	o.tls = o.tls_creds ? nbd_tls_obj_creds(o.tls_creds) : NULL;
	o.authz = o.tls_authz ? nbd_tls_obj_authz(o.tls_authz) : NULL;
	o.max_connections = (unsigned int)max_conns;
	o.handshake_ms = (unsigned int)(handshake_s * 1000);
	/* no polling: idle sleeps; its ring carries the sockets */
	srv_iothread = iothread_create("nbd-server", &(struct iothread_opts){ .serves_sockets = true },
				       errp);
	if (!srv_iothread)
		return -1;
	o.iothread = srv_iothread;
	srv = nbd_server_start(&o, errp);
	if (!srv) {
		iothread_destroy(srv_iothread);
		srv_iothread = NULL;
		return -1;
	}
	return 0;
}

/* QMP's SocketAddressLegacy {type, data: {...}} as the flat SocketAddress (a new object). */
static struct json_object *flatten_legacy(struct json_object *addr, struct error **errp)
{
	struct json_object *type, *data, *flat;

	if (!json_object_is_type(addr, json_type_object) ||
	    !json_object_object_get_ex(addr, "type", &type) ||
	    !json_object_object_get_ex(addr, "data", &data) ||
	    !json_object_is_type(data, json_type_object)) {
		error_setg(errp, "addr: expected {\"type\": \"inet\"|\"unix\", \"data\": {...}}");
		return NULL;
	}
	json_object_object_foreach(addr, key, val) {
		(void)val;
		if (strcmp(key, "type") && strcmp(key, "data")) {
			error_setg(errp, "addr: unknown key '%s'", key);
			return NULL;
		}
	}
	flat = json_object_new_object();
	json_object_object_add(flat, "type", json_object_get(type));
	json_object_object_foreach(data, k, v)
		json_object_object_add(flat, k, json_object_get(v));
	return flat;
}

int nbd_qmp_nbd_server_start(void *opaque, struct json_object *a, struct json_object **ret,
			     struct error **errp)
{
	struct json_object *legacy, *flat;
	int r;

	if (keyval_take_value(a, "addr", &legacy) != 0) {
		error_setg(errp, "Parameter 'addr' is missing");
		return -1;
	}
	flat = flatten_legacy(legacy, errp);
	if (!flat)
		return -1;
	r = server_start(a, flat, errp);
	json_object_put(flat);
	return r;
}

int nbd_qmp_server_start_spec(const char *spec, struct error **errp)
{
	struct json_object *a = keyval_parse(spec, NULL, errp), *addr;
	int r = -1;

	if (!a)
		goto out;
	if (keyval_take_value(a, "addr", &addr) != 0)
		error_setg(errp, "addr.type is missing (addr.type=inet,addr.host=H,addr.port=P or "
			   "addr.type=unix,addr.path=PATH)");
	else
		r = server_start(a, addr, errp);
out:
	json_object_put(a);
	if (r < 0)
		error_prepend(errp, "--nbd-server");
	return r;
}

/* bitmap=B or bitmaps=[B, ...] (QEMU's older and newer spellings) into @names (at most
 * NBD_MAX_EXPORT_BITMAPS; the strings stay @a's). */
static int take_bitmaps(struct json_object *a, const char **names, unsigned int *nr,
			struct error **errp)
{
	struct json_object *list = NULL, *b;
	const char *one = NULL;
	size_t n;

	*nr = 0;
	if (keyval_take_string(a, "bitmap", &one, errp) < 0 ||
	    keyval_take_value(a, "bitmaps", &list) < 0)
		return -1;
	if (one && list) {
		error_setg(errp, "bitmap and bitmaps: give one of them");
		return -1;
	}
	if (one) {
		names[(*nr)++] = one;
		return 0;
	}
	if (!list)
		return 0;
	if (!json_object_is_type(list, json_type_array)) {
		error_setg(errp, "bitmaps: a list of bitmap names ([\"A\", \"B\"] or "
			   "bitmaps.0=A,bitmaps.1=B)");
		return -1;
	}
	n = json_object_array_length(list);
	if (n > NBD_MAX_EXPORT_BITMAPS) {
		error_setg(errp, "bitmaps: %zu bitmaps, an export shows at most %d", n,
			   NBD_MAX_EXPORT_BITMAPS);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		b = json_object_array_get_idx(list, i);
		if (!json_object_is_type(b, json_type_string)) {
			error_setg(errp, "bitmaps: give each bitmap by its name on the exported node");
			return -1;
		}
		names[(*nr)++] = json_object_get_string(b);
	}
	return 0;
}

/* The keys QEMU's exports have and these cannot honour, refused when asked for. */
static int take_unsupported(struct json_object *a, struct error **errp)
{
	bool writethrough = false, depth = false, fixed = false;

	if (keyval_take_bool(a, "writethrough", &writethrough, errp) < 0 ||
	    keyval_take_bool(a, "allocation-depth", &depth, errp) < 0 ||
	    keyval_take_bool(a, "fixed-iothread", &fixed, errp) < 0) /* exports never move */
		return -1;
	if (writethrough) {
		error_setg(errp, "writethrough=on is not supported (clients make writes durable "
			   "with FUA or NBD_CMD_FLUSH)");
		return -1;
	}
	if (depth) {
		error_setg(errp, "allocation-depth=on is not supported (no qemu:allocation-depth "
			   "metadata context)");
		return -1;
	}
	return 0;
}

/* block-export-add's BlockExportOptions, type nbd. */
static int export_add(struct json_object *a, struct error **errp)
{
	struct nbd_export_opts o = { 0 };
	const char *type, *iothread = NULL, *bitmaps[NBD_MAX_EXPORT_BITMAPS];
	struct iothread_obj *it;

	if (keyval_need_string(a, "type", &type, errp) < 0)
		return -1;
	if (strcmp(type, "nbd")) {
		error_setg(errp, "type '%s' is not supported (nbd)", type);
		return -1;
	}
	if (keyval_need_string(a, "id", &o.id, errp) < 0 ||
	    keyval_need_string(a, "node-name", &o.node_name, errp) < 0 ||
	    keyval_take_string(a, "name", &o.name, errp) < 0 ||
	    keyval_take_string(a, "description", &o.description, errp) < 0 ||
	    keyval_take_bool(a, "writable", &o.writable, errp) < 0 ||
	    keyval_take_string(a, "iothread", &iothread, errp) < 0 ||
	    take_bitmaps(a, bitmaps, &o.nr_bitmaps, errp) < 0 || take_unsupported(a, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (!srv) {
		error_setg(errp, "NBD server not running (nbd-server-start, --nbd-server)");
		return -1;
	}
	o.bitmaps = bitmaps;
	o.iothread = srv_iothread;
	if (iothread) {
		it = iothread_obj_find(iothread);
		if (!it) {
			error_setg(errp, "iothread '%s' not found (--object iothread,id=%s)",
				   iothread, iothread);
			return -1;
		}
		o.iothread = it->it;
	}
	return nbd_export_add(srv, &o, errp);
}

int nbd_qmp_block_export_add(void *opaque, struct json_object *a, struct json_object **ret,
			     struct error **errp)
{
	return export_add(a, errp);
}

int nbd_qmp_export_add_spec(const char *spec, struct error **errp)
{
	struct json_object *a = keyval_parse(spec, "type", errp);
	int r = a ? export_add(a, errp) : -1;

	json_object_put(a);
	if (r < 0)
		error_prepend(errp, "--export");
	return r;
}

int nbd_qmp_block_export_del(void *opaque, struct json_object *a, struct json_object **ret,
			     struct error **errp)
{
	enum nbd_export_del_mode mode = NBD_EXPORT_DEL_SAFE;
	const char *id, *m = NULL;

	if (keyval_need_string(a, "id", &id, errp) < 0 ||
	    keyval_take_string(a, "mode", &m, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (m && !strcmp(m, "hard")) {
		mode = NBD_EXPORT_DEL_HARD;
	} else if (m && strcmp(m, "safe")) {
		error_setg(errp, "mode: '%s' is not safe or hard", m);
		return -1;
	}
	if (!srv) {
		error_setg(errp, "Export '%s' is not found", id);
		return -1;
	}
	if (nbd_export_del(srv, id, mode, errp) < 0)
		return -1;
	export_deleted(id);
	return 0;
}

static void add_id(void *array, const struct nbd_export_info *e)
{
	json_object_array_add(array, json_object_new_string(e->id));
}

int nbd_qmp_nbd_server_stop(void *opaque, struct json_object *a, struct json_object **ret,
			    struct error **errp)
{
	struct json_object *ids;

	if (keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (!srv) {
		error_setg(errp, "NBD server not running");
		return -1;
	}
	ids = json_object_new_array();
	nbd_export_list(srv, add_id, ids);
	nbd_qmp_cleanup();
	for (size_t i = 0; i < json_object_array_length(ids); i++)
		export_deleted(json_object_get_string(json_object_array_get_idx(ids, i)));
	json_object_put(ids);
	return 0;
}

/* QEMU's BlockExportInfo */
static void add_info(void *array, const struct nbd_export_info *e)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(e->id));
	json_object_object_add(o, "type", json_object_new_string("nbd"));
	json_object_object_add(o, "node-name", json_object_new_string(e->node_name));
	json_object_object_add(o, "shutting-down", json_object_new_boolean(false));
	json_object_array_add(array, o);
}

int nbd_qmp_query_block_exports(void *opaque, struct json_object *a, struct json_object **ret,
				struct error **errp)
{
	*ret = json_object_new_array();
	if (srv)
		nbd_export_list(srv, add_info, *ret);
	return 0;
}

void nbd_qmp_cleanup(void)
{
	nbd_server_stop(srv);
	srv = NULL;
	iothread_destroy(srv_iothread);
	srv_iothread = NULL;
}
