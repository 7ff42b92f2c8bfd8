/* SPDX-License-Identifier: Apache-2.0 */
/* The jail's options and the device paths the command line names (jail.h). Main thread. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyval.h"
#include "common/parse.h"
#include "seccomp/jail.h"

/* A numeric id (as Firecracker's jailer takes them): 0 .. 2^32 - 2 (-1 means "unchanged"). */
static int take_id(const char *arg, unsigned int *out, struct error **errp)
{
	uint64_t v;

	if (parse_u64("id", arg, 0, 0xfffffffeu, &v, NULL) < 0) {
		error_setg(errp, "'%s' is not a numeric id (0 to 4294967294)", arg);
		return -1;
	}
	*out = (unsigned int)v;
	return 0;
}

int sandbox_jail_option(struct sandbox_jail *j, const char *name, const char *arg,
			struct error **errp)
{
	unsigned int id;

	if (!strcmp(name, "jail")) {
		if (!arg || !*arg) {
			error_setg(errp, "empty directory");
			return -1;
		}
		j->dir = arg;
	} else if (!strcmp(name, "uid")) {
		if (take_id(arg, &id, errp) < 0)
			return -1;
		j->uid = (uid_t)id;
		j->uid_set = true;
	} else if (!strcmp(name, "gid")) {
		if (take_id(arg, &id, errp) < 0)
			return -1;
		j->gid = (gid_t)id;
		j->gid_set = true;
	} else if (!strcmp(name, "new-pid-ns")) {
		j->new_pid_ns = true;
	} else if (!strcmp(name, "new-net-ns")) {
		j->new_net_ns = true;
	} else {
		return 1;
	}
	return 0;
}

int sandbox_jail_check(const struct sandbox_jail *j, struct error **errp)
{
	if (!j->dir && (j->uid_set || j->gid_set || j->new_pid_ns || j->new_net_ns)) {
		error_setg(errp, "--%s needs --jail DIR", j->uid_set ? "uid" : j->gid_set ? "gid" :
			   j->new_pid_ns ? "new-pid-ns" : "new-net-ns");
		return -1;
	}
	if (j->dir && (!j->uid_set || !j->gid_set)) {
		error_setg(errp, "--jail needs --uid and --gid (the jailed process must not stay "
			   "root)");
		return -1;
	}
	return 0;
}

static int add_device(struct sandbox_jail *j, const char *path, struct error **errp)
{
	for (unsigned int i = 0; i < j->nr_devices; i++)
		if (!strcmp(j->devices[i], path))
			return 0;
	if (j->nr_devices == SANDBOX_JAIL_MAX_DEVICES) {
		error_setg(errp, "--jail: at most %d device paths under /dev", SANDBOX_JAIL_MAX_DEVICES);
		return -1;
	}
	j->devices[j->nr_devices] = strdup(path);
	if (!j->devices[j->nr_devices]) {
		error_setg(errp, "--jail: out of memory");
		return -1;
	}
	j->nr_devices++;
	return 0;
}

/* Every string value under @v (any depth) that is a /dev path. */
static int scan_value(struct sandbox_jail *j, struct json_object *v, struct error **errp)
{
	switch (json_object_get_type(v)) {
	case json_type_string: {
		const char *s = json_object_get_string(v);

		return strncmp(s, "/dev/", 5) ? 0 : add_device(j, s, errp);
	}
	case json_type_object: {
		json_object_object_foreach(v, key, child) {
			(void)key;
			if (scan_value(j, child, errp) < 0)
				return -1;
		}
		return 0;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (scan_value(j, json_object_array_get_idx(v, i), errp) < 0)
				return -1;
		return 0;
	default:
		return 0;
	}
}

int sandbox_jail_scan_devices(struct sandbox_jail *j, const char *spec, struct error **errp)
{
	struct error *ignored = NULL;
	struct json_object *o = keyval_parse(spec, NULL, &ignored);
	int ret;

	if (!o) { /* its own option refuses it, with the better message */
		error_free(ignored);
		return 0;
	}
	ret = scan_value(j, o, errp);
	json_object_put(o);
	return ret;
}

void sandbox_jail_free(struct sandbox_jail *j)
{
	for (unsigned int i = 0; i < j->nr_devices; i++)
		free(j->devices[i]);
	j->nr_devices = 0;
}
