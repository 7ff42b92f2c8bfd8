/* SPDX-License-Identifier: Apache-2.0 */
/* TLS credentials objects (see tls_obj.h). Main thread only. */
#include "control/tls_obj.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/nbd_tls.h"
#include "common/keyval.h"
#include "common/util.h"

struct tls_obj {
	char id[BLOCKDEV_NODE_NAME_MAX];
	struct nbd_tls_creds *creds;
};

static struct tls_obj objs[8];
static unsigned int nr_objs;

bool tls_obj_handles(const char *qom_type)
{
	return qom_type && (!strcmp(qom_type, "tls-creds-x509") || !strcmp(qom_type, "tls-creds-psk"));
}

struct nbd_tls_creds *tls_obj_find(const char *id)
{
	for (unsigned int i = 0; i < nr_objs; i++)
		if (!strcmp(objs[i].id, id))
			return objs[i].creds;
	return NULL;
}

/* The keys both types take: a new id, endpoint=server, dir. */
static int common_keys(struct json_object *a, const char **id, const char **dir,
		       struct error **errp)
{
	const char *endpoint = "client"; /* QEMU's default */

	if (keyval_take_string(a, "id", id, errp) < 0 ||
	    keyval_take_string(a, "endpoint", &endpoint, errp) < 0 ||
	    keyval_take_string(a, "dir", dir, errp) < 0)
		return -1;
	if (!*id || !blockdev_node_name_valid(*id)) {
		error_setg(errp, "id '%s': TLS credentials need an id that starts with a letter "
			   "and holds at most %d letters, digits, '-', '.' or '_'", *id ? *id : "",
			   BLOCKDEV_NODE_NAME_MAX - 1);
		return -1;
	}
	if (tls_obj_find(*id)) {
		error_setg(errp, "id '%s' is already in use", *id);
		return -1;
	}
	if (strcmp(endpoint, "server")) {
		error_setg(errp, "endpoint=%s is not supported: these credentials are the NBD "
			   "server's (endpoint=server)", endpoint);
		return -1;
	}
	if (!*dir || !**dir) {
		error_setg(errp, "dir= (the directory of the credentials' files) is missing");
		return -1;
	}
	return 0;
}

int tls_obj_add_json(struct json_object *a, struct error **errp)
{
	const char *type = NULL, *id = NULL, *dir = NULL;
	bool verify = true;
	struct nbd_tls_creds *creds;

	if (nr_objs == ARRAY_SIZE(objs)) {
		error_setg(errp, "at most %zu TLS credentials", ARRAY_SIZE(objs));
		return -1;
	}
	if (keyval_take_string(a, "qom-type", &type, errp) < 0 ||
	    common_keys(a, &id, &dir, errp) < 0 ||
	    (!strcmp(type, "tls-creds-x509") &&
	     keyval_take_bool(a, "verify-peer", &verify, errp) < 0) ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (!strcmp(type, "tls-creds-x509"))
		creds = nbd_tls_creds_x509_new(dir, verify, errp);
	else
		creds = nbd_tls_creds_psk_new(dir, errp);
	if (!creds)
		return -1;
	snprintf(objs[nr_objs].id, sizeof(objs[nr_objs].id), "%s", id);
	objs[nr_objs++].creds = creds;
	return 0;
}

void tls_obj_cleanup(void)
{
	while (nr_objs)
		nbd_tls_creds_free(objs[--nr_objs].creds);
}
