/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img: command dispatch and the helpers the commands share (image logic is in blockdev/). */
#include "tools/vireo-img.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "blockdev/nbd_tls_obj.h"
#include "common/keyval.h"
#include "common/parse.h"
#include "common/secret.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} commands[] = {
	{ "create", img_create,
	  "create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-o options] filename [size]" },
	{ "info", img_info, "info [-f fmt] [--output=human|json] [--backing-chain] [-U] filename" },
	{ "amend", img_amend, "amend [-q] [-p] [-f fmt] -o options filename" },
	{ "bitmap", img_bitmap,
	  "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... "
	  "[-b source_file [-F source_fmt]] [-g granularity] [-f fmt] filename bitmap" },
	{ "check", img_check, "check [-q] [-f fmt] [-r leaks|all] [--output=human|json] filename" },
	{ "commit", img_commit, "commit [-q] [-f fmt] [-b base] [-d] [-p] filename" },
	{ "compare", img_compare, "compare [-q] [-p] [-s] [-f fmt] [-F fmt] filename1 filename2" },
	{ "convert", img_convert,
	  "convert [-p] [-q] [-n] [-c] [-W] [-m num (1-16, 8)] [-f fmt] [-t cache] [-T src_cache] "
	  "[-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-S sparse_size] "
	  "[-l snapshot_param] filename output_filename" },
	{ "dd", img_dd,
	  "dd [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input "
	  "of=output" },
	{ "map", img_map, "map [-f fmt] [--output=human|json] filename" },
	{ "measure", img_measure,
	  "measure [-f fmt] [-O output_fmt] [-o options] [--output=human|json] "
	  "(--size N | filename)" },
	{ "rebase", img_rebase,
	  "rebase [-q] [-f fmt] [-u] [-p] -b backing_file [-F backing_fmt] filename" },
	{ "resize", img_resize, "resize [-f fmt] [--shrink] filename [+|-]size" },
	{ "snapshot", img_snapshot,
	  "snapshot [-q] [-U] [-f fmt] [-l | -a snapshot | -c snapshot | -d snapshot] filename" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: %s COMMAND [options]\n\nCommands:\n", IMG_PROG);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s %s\n", IMG_PROG, commands[i].usage);
	fprintf(f, "\nSizes take k, M, G, T suffixes (powers of 1024). Exit status: 0 success, 1 "
		"error; check: 2 corruptions, 3 leaks.\n");
}

int img_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", IMG_PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", IMG_PROG);
	return 1;
}

int img_each_option(const char *list, int (*fn)(void *opaque, const char *key, const char *value,
						struct error **errp),
		    void *opaque, struct error **errp)
{
	char *copy = strdup(list), *save = NULL, *item;
	int ret = 0;

	if (!copy) {
		error_setg(errp, "out of memory");
		return -1;
	}
	for (item = strtok_r(copy, ",", &save); item && !ret; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');

		if (eq)
			*eq = '\0';
		ret = fn(opaque, item, eq ? eq + 1 : "on", errp);
	}
	free(copy);
	return ret;
}

static int set_extra(void *opaque, const char *key, const char *value, struct error **errp)
{
	return blockdev_opts_set(opaque, key, value, errp);
}

bool img_image_opts;

/* The options under @prefix of --image-opts' object @v into @o (nested objects dotted). */
static int take_image_opts(struct json_object *v, const char *prefix, struct blockdev_opts *o,
			   const char **filename, struct error **errp)
{
	json_object_object_foreach(v, key, val) {
		char name[256];

		snprintf(name, sizeof(name), "%s%s", prefix, key);
		if (json_object_is_type(val, json_type_object)) {
			char sub[264];

			snprintf(sub, sizeof(sub), "%s.", name);
			if (take_image_opts(val, sub, o, filename, errp))
				return -1;
		} else if (!strcmp(name, "file.filename") ||
			   (!strcmp(name, "filename") && !*filename)) {
			*filename = json_object_get_string(val);
		} else if (!strcmp(name, "file.driver") || !strcmp(name, "driver")) {
			const char *d = json_object_get_string(val);

			if (!strcmp(name, "driver") && strcmp(d, "file") &&
			    blockdev_opts_set(o, "format", d, errp))
				return -1;
			if (!strcmp(name, "file.driver") && strcmp(d, "file")) {
				error_setg(errp, "--image-opts: file.driver '%s': only file", d);
				return -1;
			}
		} else if (blockdev_opts_set(o, name, json_object_get_string(val), errp)) {
			return -1;
		}
	}
	return 0;
}

/* Whether --image-opts' object @v puts its node on an NBD export (driver=nbd, or a format
 * whose file.driver=nbd). */
static bool names_nbd(struct json_object *v)
{
	struct json_object *d, *f;

	if (json_object_object_get_ex(v, "driver", &d) && json_object_is_type(d, json_type_string) &&
	    !strcmp(json_object_get_string(d), "nbd"))
		return true;
	return json_object_object_get_ex(v, "file", &f) && json_object_is_type(f, json_type_object) &&
	       names_nbd(f);
}

/* Whether a format a command names (convert's -O raw by default) is the options' driver: the
 * same, or raw over a plain export (driver=nbd). */
static bool fits_driver(struct json_object *spec, const char *fmt)
{
	struct json_object *d;
	const char *drv;

	if (!json_object_object_get_ex(spec, "driver", &d) || !json_object_is_type(d, json_type_string))
		return false;
	drv = json_object_get_string(d);
	return !strcmp(drv, fmt) || (!strcmp(drv, "nbd") && !strcmp(fmt, "raw"));
}

/*
 * An NBD export by QEMU's BlockdevOptionsNbd keys (server.type, server.host, server.port,
 * server.path, export, tls-creds, tls-hostname, reconnect-delay, ...), under a format or as
 * it is: the nodes blockdev-add would make (the format is the options' driver, never probed).
 */
static struct blockdev *open_nbd_opts(struct json_object *spec, const char *fmt, bool readonly,
				      struct error **errp)
{
	static const char where[] = "--image-opts";
	struct json_object *ro;
	struct error *err = NULL;
	struct blockdev *bs;

	if (fmt && !fits_driver(spec, fmt)) {
		error_setg(errp, "%s: format %s: the options' driver says the format", where, fmt);
		return NULL;
	}
	if (!json_object_object_get_ex(spec, "read-only", &ro))
		json_object_object_add(spec, "read-only", json_object_new_boolean(readonly));
	bs = blockdev_open_ref(spec, where, "x", &err);
	if (err) { /* its messages name the object "--image-opts.x" (a child "--image-opts.x.file") */
		const char *m = error_msg(err);
		size_t n = strlen(where);

		if (!strncmp(m, where, n) && !strncmp(m + n, ".x", 2))
			error_setg(errp, "%s%s", where, m + n + 2);
		else
			error_setg(errp, "%s", m);
		error_free(err);
	}
	return bs;
}

struct blockdev *img_open(const char *filename, const char *fmt, bool readonly, const char *extra,
			  struct error **errp)
{
	struct blockdev_opts o = { 0 };
	struct json_object *spec = NULL;
	struct blockdev *bs = NULL;

	/* --image-opts: a user's image argument is an option string (a real path holding '=' is
	 * not expected there; the images vireo-img opens itself never go through this) */
	if (img_image_opts && strchr(filename, '=')) {
		const char *path = NULL;

		if (!(spec = keyval_parse(filename, NULL, errp)))
			goto out;
		if (names_nbd(spec)) {
			bs = open_nbd_opts(spec, fmt, readonly, errp);
			goto out;
		}
		if (take_image_opts(spec, "", &o, &path, errp))
			goto out;
		if (!path) {
			error_setg(errp, "--image-opts: '%s' names no file.filename", filename);
			goto out;
		}
		filename = path;
	}
	if ((fmt && blockdev_opts_set(&o, "format", fmt, errp)) ||
	    (extra && img_each_option(extra, set_extra, &o, errp)))
		goto out;
	o.readonly = readonly;
	bs = blockdev_open(filename, &o, errp);
out:
	json_object_put(spec);
	blockdev_opts_free(&o);
	return bs;
}

/*
 * qemu-img's options that may come before or after a command's own: --object (secrets, and
 * the NBD client's TLS credentials: tls-creds-x509 and tls-creds-psk with endpoint=client)
 * and --image-opts. Taken out of @argv (which keeps the rest in order); -1 with the error.
 */
/* --object: a secret, or TLS credentials for NBD exports */
static int add_object(const char *spec, struct error **errp)
{
	struct json_object *a = keyval_parse(spec, "qom-type", errp), *t;
	const char *type;
	int ret = -1;

	if (!a)
		return -1;
	type = json_object_object_get_ex(a, "qom-type", &t) && json_object_is_type(t, json_type_string)
		       ? json_object_get_string(t) : "";
	if (!strcmp(type, "secret"))
		ret = secret_add_json(a, errp);
	else if (nbd_tls_obj_handles(type) && strcmp(type, "authz-simple"))
		ret = nbd_tls_obj_add_json(a, errp);
	else
		error_setg(errp, "type '%s' is not supported (secret, tls-creds-x509, "
			   "tls-creds-psk)", type);
	json_object_put(a);
	return ret;
}

static int take_global_options(int *argc, char **argv, struct error **errp)
{
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		const char *spec = NULL;

		if (!strcmp(argv[i], "--object") && i + 1 < *argc)
			spec = argv[++i];
		else if (!strncmp(argv[i], "--object=", 9))
			spec = argv[i] + 9;
		else if (!strcmp(argv[i], "--image-opts")) {
			img_image_opts = true;
			continue;
		} else {
			argv[out++] = argv[i];
			continue;
		}
		if (add_object(spec, errp) < 0) {
			error_prepend(errp, "--object '%s'", spec);
			return -1;
		}
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

void img_human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%0.3g %s", v, units[u]);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("%s version 0.1.0\n", IMG_PROG);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		struct error *err = NULL;
		int status;

		if (strcmp(argv[1], commands[i].name))
			continue;
		if (take_global_options(&argc, argv, &err)) {
			error_report_free(IMG_PROG, err);
			nbd_tls_obj_cleanup();
			return 1;
		}
		status = commands[i].fn(argc - 1, argv + 1);
		nbd_tls_obj_cleanup(); /* nodes on the credentials hold their own reference */
		return status;
	}
	return img_usage_error("unknown command '%s'", argv[1]);
}

int img_parse_cluster_size(const char *value, unsigned *bits, struct error **errp)
{
	uint64_t v;

	if (parse_size("cluster_size", value, &v, errp))
		return -1;
	if (v < 512 || v > 2 * 1024 * 1024 || (v & (v - 1))) {
		error_setg(errp, "cluster_size: %s is not a power of two from 512 to 2M", value);
		return -1;
	}
	*bits = (unsigned)__builtin_ctzll(v);
	return 0;
}

int img_check_prealloc(const char *value, struct error **errp)
{
	static const char *const modes[] = { "off", "metadata", "falloc", "full" };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(value, modes[i]))
			return 0;
	error_setg(errp, "preallocation: '%s' is not off, metadata, falloc or full", value);
	return -1;
}
