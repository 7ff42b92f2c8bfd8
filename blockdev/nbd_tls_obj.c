/* SPDX-License-Identifier: Apache-2.0 */
/* TLS objects by id (nbd_tls_obj.h): credentials and tls-authz identities. Control plane only. */
#include "blockdev/nbd_tls_obj.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/nbd_tls.h"
#include "common/keyval.h"

#define IDENTITY_MAX 1024 /* bytes of an authz-simple identity */

struct tls_obj {
	char id[BLOCKDEV_NODE_NAME_MAX];
	struct nbd_tls_creds *creds; /* a reference; or */
	struct nbd_tls_authz *authz;
	struct tls_obj *next;
};

static struct tls_obj *objs;

static struct tls_obj *find(const char *id)
{
	for (struct tls_obj *o = objs; o; o = o->next)
		if (!strcmp(o->id, id))
			return o;
	return NULL;
}

bool nbd_tls_obj_handles(const char *qom_type)
{
	return qom_type && (!strcmp(qom_type, "tls-creds-x509") ||
			    !strcmp(qom_type, "tls-creds-psk") || !strcmp(qom_type, "authz-simple"));
}

struct nbd_tls_creds *nbd_tls_obj_creds(const char *id)
{
	struct tls_obj *o = find(id);

	return o ? o->creds : NULL;
}

const struct nbd_tls_authz *nbd_tls_obj_authz(const char *id)
{
	struct tls_obj *o = find(id);

	return o ? o->authz : NULL;
}

/* A new, valid id. */
static int check_id(const char *type, const char *id, struct error **errp)
{
	if (!id || !blockdev_node_name_valid(id)) {
		error_setg(errp, "id '%s': %s needs an id that starts with a letter and holds at most "
			   "%d letters, digits, '-', '.' or '_'", id ? id : "", type,
			   BLOCKDEV_NODE_NAME_MAX - 1);
		return -1;
	}
	if (find(id)) {
		error_setg(errp, "id '%s' is already in use", id);
		return -1;
	}
	return 0;
}

/* tls-creds-x509 and tls-creds-psk: endpoint, dir, and their own keys. */
static struct nbd_tls_creds *creds_new(const char *type, struct json_object *a,
				       struct error **errp)
{
	const char *endpoint = "client", *dir = NULL, *user = NULL; /* QEMU's default endpoint */
	bool x509 = !strcmp(type, "tls-creds-x509"), verify = true, client;

	if (keyval_take_string(a, "endpoint", &endpoint, errp) < 0 ||
	    keyval_take_string(a, "dir", &dir, errp) < 0 ||
	    (x509 && keyval_take_bool(a, "verify-peer", &verify, errp) < 0) ||
	    (!x509 && keyval_take_string(a, "username", &user, errp) < 0) ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return NULL;
	if (strcmp(endpoint, "server") && strcmp(endpoint, "client")) {
		error_setg(errp, "endpoint '%s' is not server or client", endpoint);
		return NULL;
	}
	client = !strcmp(endpoint, "client");
	if (!dir || !*dir) {
		error_setg(errp, "dir= (the directory of the credentials' files) is missing");
		return NULL;
	}
	if (x509)
		return client ? nbd_tls_creds_x509_client_new(dir, verify, errp) :
				nbd_tls_creds_x509_new(dir, verify, errp);
	if (!client && user) {
		error_setg(errp, "username= is a client's (endpoint=client): a server takes every "
			   "user of keys.psk");
		return NULL;
	}
	return client ? nbd_tls_creds_psk_client_new(dir, user ? user : "qemu", errp) :
			nbd_tls_creds_psk_new(dir, errp);
}

static struct nbd_tls_authz *authz_new(const char *id, struct json_object *a,
				       struct error **errp)
{
	const char *identity = NULL;

	if (keyval_need_string(a, "identity", &identity, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return NULL;
	if (!*identity || strlen(identity) > IDENTITY_MAX) {
		error_setg(errp, "identity: 1 to %d bytes (a certificate's distinguished name, "
			   "e.g. CN=client.example.com,O=Example)", IDENTITY_MAX);
		return NULL;
	}
	return nbd_tls_authz_new(id, identity, errp);
}

int nbd_tls_obj_add(const char *type, const char *id, struct json_object *a,
		    struct error **errp)
{
	struct tls_obj *o;

	if (!nbd_tls_obj_handles(type)) {
		error_setg(errp, "type '%s' is not a TLS object (tls-creds-x509, tls-creds-psk, "
			   "authz-simple)", type ? type : "");
		return -1;
	}
	if (check_id(type, id, errp) < 0)
		return -1;
	o = calloc(1, sizeof(*o));
	if (!o) {
		error_setg(errp, "out of memory");
		return -1;
	}
	snprintf(o->id, sizeof(o->id), "%s", id);
	if (!strcmp(type, "authz-simple"))
		o->authz = authz_new(id, a, errp);
	else
		o->creds = creds_new(type, a, errp);
	if (!o->authz && !o->creds) {
		free(o);
		return -1;
	}
	o->next = objs;
	objs = o;
	return 0;
}

int nbd_tls_obj_add_json(struct json_object *a, struct error **errp)
{
	const char *type = NULL, *id = NULL;

	if (keyval_take_string(a, "qom-type", &type, errp) < 0 ||
	    keyval_take_string(a, "id", &id, errp) < 0)
		return -1;
	return nbd_tls_obj_add(type, id, a, errp);
}

int nbd_tls_obj_add_spec(const char *spec, struct error **errp)
{
	struct json_object *a = keyval_parse(spec, "qom-type", errp);
	int ret;

	if (!a)
		return -1;
	ret = nbd_tls_obj_add_json(a, errp);
	json_object_put(a);
	return ret;
}

void nbd_tls_obj_cleanup(void)
{
	while (objs) {
		struct tls_obj *o = objs;

		objs = o->next;
		nbd_tls_creds_unref(o->creds);
		nbd_tls_authz_free(o->authz);
		free(o);
	}
}
