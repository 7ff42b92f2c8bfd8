/* SPDX-License-Identifier: Apache-2.0 */
/* A program's iothread and throttle-group objects by id (see iothread_obj.h). Main thread only. */
#include "control/iothread_obj.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/nbd_tls_obj.h"
#include "blockdev/throttle.h"
#include "common/keyval.h"
#include "common/secret.h"
#include "common/parse.h"
#include "common/util.h"

static struct iothread_obj objs[IOTHREAD_OBJ_MAX];
static unsigned int nr_objs;
static struct blockdev_throttle_group *groups[32]; /* --object throttle-group: ours to drop */
static unsigned int nr_groups;
static bool serve_sockets; /* iothread_obj_serve_sockets() was called */

void iothread_obj_serve_sockets(void)
{
	serve_sockets = true;
}

struct iothread_obj *iothread_obj_find(const char *id)
{
	for (unsigned int i = 0; i < nr_objs; i++)
		if (!strcmp(objs[i].id, id))
			return &objs[i];
	return NULL;
}

struct iothread_obj *iothread_obj_at(unsigned int i)
{
	return i < nr_objs ? &objs[i] : NULL;
}

struct iothread_obj *iothread_obj_create(const char *id, const struct iothread_opts *opts,
					 const char *who, struct error **errp)
{
	struct iothread_obj *o = &objs[nr_objs];

	if (nr_objs == IOTHREAD_OBJ_MAX) {
		error_setg(errp, "at most %d iothreads", IOTHREAD_OBJ_MAX);
		goto err;
	}
	*o = (struct iothread_obj){ .opts = *opts };
	o->opts.serves_sockets |= serve_sockets;
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->it = iothread_create(id, &o->opts, errp); /* its messages name the iothread */
	if (!o->it)
		goto err;
	nr_objs++;
	return o;
err:
	if (who)
		error_prepend(errp, "%s", who);
	return NULL;
}

/* The --object iothread keys, into @opts (defaults: --drive's). */
static int take_iothread_keys(struct json_object *a, struct iothread_opts *opts,
			      struct error **errp)
{
	uint64_t grow = IOTHREAD_POLL_GROW_DEFAULT, shrink = IOTHREAD_POLL_SHRINK_DEFAULT;
	bool backoff = true;
	struct json_object *v;
	char num[32];

	opts->poll_max_ns = IOTHREAD_POLL_MAX_NS_DEFAULT;
	if (keyval_take_u64(a, "poll-max-ns", &opts->poll_max_ns, errp) < 0 ||
	    keyval_take_u64(a, "poll-grow", &grow, errp) < 0 ||
	    keyval_take_u64(a, "poll-shrink", &shrink, errp) < 0 ||
	    keyval_take_bool(a, "poll-backoff", &backoff, errp) < 0)
		return -1;
	if (opts->poll_max_ns > 1000000000ull || grow > 1024 || shrink > 1024) {
		error_setg(errp, "poll-max-ns is at most 1000000000, poll-grow and poll-shrink at "
			   "most 1024");
		return -1;
	}
	opts->poll_grow = grow ? (unsigned int)grow : IOTHREAD_POLL_GROW_DEFAULT; /* 0: default */
	opts->poll_shrink = (unsigned int)shrink;
	opts->poll_keep_on_contention = !backoff;
	/* nice may be negative: a JSON integer, or a string as parse_int reads it */
	if (keyval_take_value(a, "nice", &v) == 0) {
		if (json_object_is_type(v, json_type_int))
			snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
		else if (json_object_is_type(v, json_type_string))
			snprintf(num, sizeof(num), "%s", json_object_get_string(v));
		else
			num[0] = '\0';
		if (parse_int("nice", num, -20, 19, &opts->nice, errp) < 0)
			return -1;
		opts->nice_set = true;
	}
	return 0;
}

/* --object throttle-group,id=ID,limits.iops-total=N,... (or x-iops-total=N, QEMU's legacy) */
static int throttle_group_add(struct json_object *a, const char *id, struct error **errp)
{
	struct throttle_limits l;
	struct blockdev_throttle_group *g;

	if (!id || !blockdev_node_name_valid(id)) {
		error_setg(errp, "id '%s': a throttle-group needs an id that starts with a letter "
			   "and holds at most %d letters, digits, '-', '.' or '_'", id ? id : "",
			   BLOCKDEV_NODE_NAME_MAX - 1);
		return -1;
	}
	if (nr_groups == ARRAY_SIZE(groups)) {
		error_setg(errp, "at most %zu throttle groups", ARRAY_SIZE(groups));
		return -1;
	}
	if (throttle_limits_take(a, &l, id, errp) < 0 || keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	g = blockdev_throttle_group_new(id, &l, errp);
	if (!g)
		return -1;
	groups[nr_groups++] = g;
	return 0;
}

int iothread_obj_add_json(struct json_object *a, struct error **errp)
{
	struct iothread_opts opts = { 0 };
	const char *type = NULL, *id = NULL;

	if (keyval_take_string(a, "qom-type", &type, errp) < 0 ||
	    keyval_take_string(a, "id", &id, errp) < 0)
		return -1;
	if (type && !strcmp(type, "throttle-group"))
		return throttle_group_add(a, id, errp);
	if (type && !strcmp(type, "secret")) { /* an encrypted image's passphrase */
		if (!id) {
			error_setg(errp, "Parameter 'id' is missing");
			return -1;
		}
		return secret_add(id, a, errp);
	}
	if (nbd_tls_obj_handles(type)) /* TLS credentials, tls-authz */
		return nbd_tls_obj_add(type, id, a, errp);
	if (!type || strcmp(type, "iothread")) {
		error_setg(errp, "type '%s' is not supported (iothread, throttle-group, secret, "
			   "tls-creds-x509, tls-creds-psk, authz-simple)", type ? type : "");
		return -1;
	}
	if (!id || !blockdev_node_name_valid(id)) {
		error_setg(errp, "id '%s': an iothread needs an id that starts with a letter and "
			   "holds at most %d letters, digits, '-', '.' or '_'", id ? id : "",
			   IOTHREAD_OBJ_ID_MAX - 1);
		return -1;
	}
	if (iothread_obj_find(id)) {
		error_setg(errp, "id '%s' is already in use", id);
		return -1;
	}
	if (take_iothread_keys(a, &opts, errp) < 0 || keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	return iothread_obj_create(id, &opts, NULL, errp) ? 0 : -1;
}

int iothread_obj_add_spec(const char *spec, struct error **errp)
{
	struct json_object *a = keyval_parse(spec, "qom-type", errp);
	int ret = a ? iothread_obj_add_json(a, errp) : -1;

	json_object_put(a);
	if (ret < 0)
		error_prepend(errp, "--object");
	return ret;
}

int iothread_obj_register_memory(struct iothread_obj *o, const struct iovec *regions, int n,
				 struct error **errp)
{
	if (o->has_memory)
		return 0;
	if (iothread_register_memory(o->it, regions, n, errp) < 0)
		return -1;
	o->has_memory = true;
	return 0;
}

void iothread_obj_cleanup(void)
{
	for (unsigned int i = 0; i < nr_objs; i++) {
		iothread_destroy(objs[i].it);
		objs[i] = (struct iothread_obj){ 0 };
	}
	nr_objs = 0;
	for (unsigned int i = 0; i < nr_groups; i++)
		blockdev_throttle_group_unref(groups[i]);
	nr_groups = 0;
	nbd_tls_obj_cleanup(); /* their users hold their own references */
}
