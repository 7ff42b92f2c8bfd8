/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img create: qemu-img's options (-f, -o, -b, -F, -q) for raw, qcow2 and luks, and for every
 * format whose driver creates its images (blockdev/create.h).
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/create.h"
#include "blockdev/luks.h"
#include "common/parse.h"
#include "common/util.h"

struct create_opts {
	const char *fmt;
	struct qcow2_create_opts q;
	char *backing, *backing_fmt;
	char *prealloc;
	char *compat; /* as given, for the "Formatting" line */
	char *data_file;
	uint64_t size;
	bool size_given;
	bool data_file_raw_given;
	char *key_secret;       /* luks: key-secret (qcow2: encrypt.key-secret) */
	unsigned int iter_time; /* luks: iter-time (ms), 0 = not given */
	bool encrypt, encrypt_opt; /* qcow2: encrypt.format=luks, another encrypt.* given */
};

/* luks's options: key-secret and iter-time; the algorithms only as vireo writes them. */
static int take_luks_option(struct create_opts *c, const char *key, const char *value,
			    struct error **errp)
{
	static const struct { const char *key, *only; } fixed[] = {
		{ "cipher-alg", "aes-256" }, { "cipher-mode", "xts" },
		{ "ivgen-alg", "plain64" }, { "hash-alg", "sha256" },
	};
	uint64_t v;

	if (!strcmp(key, "key-secret")) {
		free(c->key_secret);
		c->key_secret = strdup(value);
		return 0;
	}
	if (!strcmp(key, "iter-time")) {
		if (parse_u64("iter-time", value, 1, 600000, &v, errp))
			return -1;
		c->iter_time = (unsigned int)v;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
		if (strcmp(key, fixed[i].key))
			continue;
		if (strcmp(value, fixed[i].only)) {
			error_setg(errp, "%s: '%s' is not supported (vireo creates LUKS volumes with "
				   "%s)", key, value, fixed[i].only);
			return -1;
		}
		return 0;
	}
	error_setg(errp, "format luks does not support the option '%s'", key);
	return -1;
}

static int take_option(void *opaque, const char *key, const char *value, struct error **errp)
{
	struct create_opts *c = opaque;
	bool raw = !strcmp(c->fmt, "raw");
	uint64_t v;
	bool b;

	if (!strcmp(key, "size")) {
		if (parse_size("size", value, &c->size, errp))
			return -1;
		c->size_given = true;
	} else if (!strcmp(key, "preallocation")) {
		if (img_check_prealloc(value, errp) < 0)
			return -1;
		if (raw && !strcmp(value, "metadata")) {
			error_setg(errp, "preallocation: raw images take off, falloc or full");
			return -1;
		}
		free(c->prealloc);
		c->prealloc = strdup(value);
	} else if (!strcmp(c->fmt, "luks")) {
		return take_luks_option(c, key, value, errp);
	} else if (raw) {
		error_setg(errp, "format raw does not support the option '%s'", key);
		return -1;
	} else if (!strcmp(key, "encrypt.format")) {
		if (strcmp(value, "luks")) {
			error_setg(errp, "encrypt.format: '%s' is not supported (only luks)", value);
			return -1;
		}
		c->encrypt = true;
	} else if (!strncmp(key, "encrypt.", 8)) {
		c->encrypt_opt = true; /* checked once encrypt.format is known */
		return take_luks_option(c, key + 8, value, errp);
	} else if (!strcmp(key, "encryption")) {
		error_setg(errp, "encryption: the old AES encryption is not supported (use "
			   "encrypt.format=luks)");
		return -1;
	} else if (!strcmp(key, "cluster_size")) {
		if (img_parse_cluster_size(value, &c->q.cluster_bits, errp))
			return -1;
	} else if (!strcmp(key, "compat")) {
		if (!strcmp(value, "0.10") || !strcmp(value, "v2"))
			c->q.version = 2;
		else if (!strcmp(value, "1.1") || !strcmp(value, "v3"))
			c->q.version = 3;
		else {
			error_setg(errp, "compat: '%s' is not 0.10 or 1.1", value);
			return -1;
		}
		free(c->compat);
		c->compat = strdup(value);
	} else if (!strcmp(key, "backing_file")) {
		free(c->backing);
		c->backing = strdup(value);
	} else if (!strcmp(key, "backing_fmt")) {
		free(c->backing_fmt);
		c->backing_fmt = strdup(value);
	} else if (!strcmp(key, "data_file")) {
		free(c->data_file);
		c->data_file = strdup(value);
	} else if (!strcmp(key, "data_file_raw")) {
		if (parse_bool("data_file_raw", value, &b, errp))
			return -1;
		c->q.data_file_raw = b;
		c->data_file_raw_given = true;
	} else if (!strcmp(key, "lazy_refcounts")) {
		if (parse_bool("lazy_refcounts", value, &b, errp))
			return -1;
		c->q.lazy_refcounts = b;
	} else if (!strcmp(key, "extended_l2")) {
		if (parse_bool("extended_l2", value, &b, errp))
			return -1;
		c->q.extended_l2 = b;
	} else if (!strcmp(key, "refcount_bits")) {
		if (parse_u64("refcount_bits", value, 1, 64, &v, errp))
			return -1;
		c->q.refcount_bits = (unsigned)v;
	} else if (!strcmp(key, "compression_type")) {
		if (!strcmp(value, "zlib"))
			c->q.compression_type = QCOW2_COMPRESS_ZLIB;
		else if (!strcmp(value, "zstd"))
			c->q.compression_type = QCOW2_COMPRESS_ZSTD;
		else {
			error_setg(errp, "compression_type: '%s' is not zlib or zstd", value);
			return -1;
		}
	} else {
		error_setg(errp, "format qcow2 does not support the option '%s'", key);
		return -1;
	}
	return 0;
}

/* The size of backing file @backing of image @filename (opened as @backing_fmt) into *@size. */
static int backing_size(const char *filename, const char *backing, const char *backing_fmt,
			uint64_t *size, struct error **errp)
{
	char *path = blockdev_path_beside(filename, backing);
	struct blockdev *b;
	int ret = -1;

	if (!path)
		return -1;
	b = img_open(path, backing_fmt, true, NULL, errp);
	if (!b) {
		error_prepend(errp, "could not open backing file '%s'", backing);
		goto out;
	}
	*size = b->size;
	blockdev_close(b);
	ret = 0;
out:
	free(path);
	return ret;
}

/* Size (when not given) of the backing file. */
static int inspect_backing(const char *filename, struct create_opts *c, struct error **errp)
{
	uint64_t size;

	if (backing_size(filename, c->backing, c->backing_fmt, &size, errp))
		return -1;
	if (!c->size_given)
		c->size = size;
	return 0;
}

/* qemu-img's "Formatting ..." line: the options it prints, in its order (defaults included). */
static void print_qcow2(const char *filename, const struct create_opts *c)
{
	printf("Formatting '%s', fmt=qcow2", filename);
	if (c->encrypt) {
		printf(" encrypt.format=luks encrypt.key-secret=%s", c->key_secret);
		if (c->iter_time)
			printf(" encrypt.iter-time=%u", c->iter_time);
	}
	printf(" cluster_size=%llu extended_l2=%s", 1ULL << c->q.cluster_bits,
	       c->q.extended_l2 ? "on" : "off");
	if (c->prealloc)
		printf(" preallocation=%s", c->prealloc);
	printf(" compression_type=%s size=%" PRIu64,
	       c->q.compression_type == QCOW2_COMPRESS_ZSTD ? "zstd" : "zlib", c->size);
	if (c->compat)
		printf(" compat=%s", c->compat);
	if (c->backing)
		printf(" backing_file=%s backing_fmt=%s", c->backing, c->backing_fmt);
	if (c->data_file)
		printf(" data_file=%s", c->data_file);
	if (c->data_file_raw_given)
		printf(" data_file_raw=%s", c->q.data_file_raw ? "on" : "off");
	printf(" lazy_refcounts=%s refcount_bits=%u\n", c->q.lazy_refcounts ? "on" : "off",
	       c->q.refcount_bits);
}

/*
 * An image on an NBD export, which cannot be created or resized (qemu-img does the same): a raw
 * image needs an export of at least @size bytes, a qcow2 image (@q) is written into it.
 */
static int create_on_nbd(const char *filename, uint64_t size, const struct qcow2_create_opts *q,
			 struct error **errp)
{
	struct blockdev *bs;
	int ret = 0;

	if (q && q->data_file) {
		error_setg(errp, "'%s': an image on an NBD export cannot have a data file",
			   filename);
		return -1;
	}
	bs = blockdev_nbd_create(filename, size, errp);
	if (!bs)
		return -1;
	if (q)
		ret = qcow2_create_on(bs, NULL, q, errp);
	blockdev_close(bs);
	return ret;
}

/* ", vpc, vdi": the formats created through their drivers, for messages. */
static const char *creatable_formats(void)
{
	static char buf[256];
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; blockdev_formats[i]; i++)
		if (blockdev_formats[i]->create && n < sizeof(buf))
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, ", %s",
					      blockdev_formats[i]->name);
	return buf;
}

/* The -o options of a format created through its driver (blockdev/create.h), size apart. */
struct driver_opts {
	struct blockdev_opt *v;
	size_t n;
	uint64_t size;
	bool size_given;
};

static int add_driver_opt(struct driver_opts *d, const char *key, const char *value,
			  struct error **errp)
{
	struct blockdev_opt *v = realloc(d->v, (d->n + 1) * sizeof(*v));

	if (!v) {
		error_setg(errp, "out of memory");
		return -1;
	}
	d->v = v;
	v[d->n].key = strdup(key);
	v[d->n].value = strdup(value);
	d->n++;
	if (!v[d->n - 1].key || !v[d->n - 1].value) {
		error_setg(errp, "out of memory");
		return -1;
	}
	return 0;
}

static int take_driver_option(void *opaque, const char *key, const char *value,
			      struct error **errp)
{
	struct driver_opts *d = opaque;

	if (strcmp(key, "size"))
		return add_driver_opt(d, key, value, errp);
	if (parse_size("size", value, &d->size, errp))
		return -1;
	d->size_given = true;
	return 0;
}

/* The last value of @key among @d's options, or NULL. */
static const char *driver_opt(const struct driver_opts *d, const char *key)
{
	for (size_t i = d->n; i-- > 0;)
		if (!strcmp(d->v[i].key, key))
			return d->v[i].value;
	return NULL;
}

/*
 * A format whose driver creates its images (vpc, vdi, ...): the options are checked against the
 * driver's table, -b / -F become its backing_file / backing_fmt options (refused for a format
 * without them), and qemu-img's "Formatting" line is printed from the same table.
 */
static int create_by_driver(const struct blockdev_driver *drv, const char *filename,
			    const char *options, uint64_t size, bool size_given,
			    const char *backing, const char *backing_fmt, bool quiet,
			    struct error **errp)
{
	struct driver_opts d = { .size = size, .size_given = size_given };
	struct blockdev_create_ctx ctx = { 0 };
	char *summary = NULL;
	int ret = -1;

	if (options && img_each_option(options, take_driver_option, &d, errp))
		goto out;
	if ((backing && add_driver_opt(&d, "backing_file", backing, errp)) ||
	    (backing_fmt && add_driver_opt(&d, "backing_fmt", backing_fmt, errp)))
		goto out;
	backing = driver_opt(&d, "backing_file");
	backing_fmt = driver_opt(&d, "backing_fmt");
	if (backing && !blockdev_create_takes(drv, "backing_file")) {
		error_setg(errp, "format %s has no backing file", drv->name);
		goto out;
	}
	if (backing && !backing_fmt) {
		error_setg(errp, "'%s': backing file '%s' given without its format (-F or "
			   "backing_fmt=): its format is not probed", filename, backing);
		goto out;
	}
	if (backing && !d.size_given) {
		if (backing_size(filename, backing, backing_fmt, &d.size, errp))
			goto out;
		d.size_given = true;
	}
	if (!d.size_given) {
		error_setg(errp, "image size missing (give it after the file name)");
		goto out;
	}
	if (blockdev_create_prepare(&ctx, drv, filename, d.size, d.v, d.n, errp))
		goto out;
	if (!quiet) {
		summary = blockdev_create_summary(&ctx);
		if (!summary) {
			error_setg(errp, "out of memory");
			goto out;
		}
		printf("Formatting '%s', fmt=%s %s\n", filename, drv->name, summary);
	}
	if (blockdev_is_nbd(filename)) {
		error_setg(errp, "'%s': a %s image on an NBD export is not supported", filename,
			   drv->name);
		goto out;
	}
	ret = blockdev_create_run(&ctx, errp);
out:
	blockdev_create_free(&ctx);
	free(summary);
	for (size_t i = 0; i < d.n; i++) {
		free(d.v[i].key);
		free(d.v[i].value);
	}
	free(d.v);
	return ret;
}

int img_create_image(const char *filename, const char *fmt, const char *options, uint64_t size,
		     bool size_given, const char *backing, const char *backing_fmt, bool quiet,
		     struct error **errp)
{
	struct create_opts c = { .fmt = fmt, .size = size, .size_given = size_given };
	int ret = -1;

	c.q.cluster_bits = 16;
	c.q.version = 3;
	c.q.refcount_bits = 16;
	if (strcmp(fmt, "raw") && strcmp(fmt, "qcow2") && strcmp(fmt, "luks")) {
		const struct blockdev_driver *drv = blockdev_find_format(fmt);

		if (drv && drv->create)
			return create_by_driver(drv, filename, options, size, size_given, backing,
						backing_fmt, quiet, errp);
		error_setg(errp, "unknown format '%s': vireo-img creates raw, qcow2, luks%s", fmt,
			   creatable_formats());
		return -1;
	}
	if (backing)
		c.backing = strdup(backing);
	if (backing_fmt)
		c.backing_fmt = strdup(backing_fmt);
	if (options && img_each_option(options, take_option, &c, errp))
		goto out;
	if (c.backing && strcmp(fmt, "qcow2")) {
		error_setg(errp, "format %s has no backing file", fmt);
		goto out;
	}
	if (c.backing && !c.backing_fmt) {
		/* qemu-img's rule: a probed backing file could be taken for another format */
		error_setg(errp, "'%s': backing file '%s' given without its format (-F or "
			   "backing_fmt=): its format is not probed", filename, c.backing);
		goto out;
	}
	if (c.backing && inspect_backing(filename, &c, errp))
		goto out;
	if (!c.size_given && !c.backing) {
		error_setg(errp, "image size missing (give it after the file name)");
		goto out;
	}
	if (!strcmp(fmt, "luks")) {
		if (c.prealloc && strcmp(c.prealloc, "off")) {
			error_setg(errp, "preallocation: luks images are created with off only");
			goto out;
		}
		if (!quiet) {
			printf("Formatting '%s', fmt=luks size=%" PRIu64, filename, c.size);
			if (c.key_secret)
				printf(" key-secret=%s", c.key_secret);
			if (c.iter_time)
				printf(" iter-time=%u", c.iter_time);
			printf("\n");
		}
		if (blockdev_is_nbd(filename)) {
			error_setg(errp, "'%s': a luks image on an NBD export is not supported",
				   filename);
			goto out;
		}
		ret = luks_create(filename, c.size, c.key_secret,
				  c.iter_time ? c.iter_time : LUKS_DEFAULT_ITER_TIME, errp);
		goto out;
	}
	if (!strcmp(fmt, "raw")) {
		if (!quiet)
			printf("Formatting '%s', fmt=raw size=%" PRIu64 "%s%s\n", filename, c.size,
			       c.prealloc ? " preallocation=" : "", c.prealloc ? c.prealloc : "");
		if (blockdev_is_nbd(filename)) { /* an export is there already: check it */
			ret = create_on_nbd(filename, c.size, NULL, errp);
			goto out;
		}
		c.size = ALIGN_UP(c.size, 512); /* whole sectors, as qemu-img creates them */
		ret = blockdev_file_create(filename, c.size,
					   c.prealloc ? blockdev_prealloc_parse(c.prealloc) :
							BLOCKDEV_PREALLOC_OFF,
					   false, errp);
		goto out;
	}
	if (c.encrypt_opt && !c.encrypt) {
		error_setg(errp, "encrypt.* options need encrypt.format=luks");
		goto out;
	}
	if (c.encrypt) {
		c.q.encrypt_secret = c.key_secret;
		c.q.encrypt_iter_time = c.iter_time;
		if (!c.key_secret) {
			error_setg(errp, "Parameter 'encrypt.key-secret' is required for cipher");
			goto out;
		}
	}
	c.q.size = ALIGN_UP(c.size, 512);
	c.q.backing_file = c.backing;
	c.q.backing_fmt = c.backing_fmt;
	c.q.prealloc_metadata = c.prealloc && strcmp(c.prealloc, "off");
	c.q.prealloc_falloc = c.prealloc && (!strcmp(c.prealloc, "falloc") ||
					     !strcmp(c.prealloc, "full"));
	c.q.data_file = c.data_file;
	if (!quiet)
		print_qcow2(filename, &c);
	if (blockdev_is_nbd(filename))
		ret = create_on_nbd(filename, 0, &c.q, errp);
	else
		ret = qcow2_create(filename, &c.q, errp);
out:
	free(c.backing);
	free(c.backing_fmt);
	free(c.prealloc);
	free(c.compat);
	free(c.data_file);
	free(c.key_secret);
	return ret;
}

static int is_help(void *opaque, const char *key, const char *value, struct error **errp)
{
	*(bool *)opaque |= !strcmp(key, "help") || !strcmp(key, "?");
	return 0;
}

/* -o help (or -o ?) for a format created through its driver: its options listed, true. */
static bool format_help(const char *fmt, const char *options)
{
	const struct blockdev_driver *drv = blockdev_find_format(fmt);
	bool help = false;

	if (!drv || !drv->create || img_each_option(options, is_help, &help, NULL) || !help)
		return false;
	blockdev_create_help(drv, stdout);
	return true;
}

int img_create(int argc, char **argv)
{
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	const char *fmt = "raw", *backing = NULL, *backing_fmt = NULL;
	char *options = NULL;
	struct error *err = NULL;
	bool quiet = false, size_given = false;
	uint64_t size = 0;
	int c;

	while ((c = getopt_long(argc, argv, "+f:o:b:F:quh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'b': backing = optarg; break;
		case 'F': backing_fmt = optarg; break;
		case 'q': quiet = true; break;
		case 'u': break; /* we never need to open the backing file if the size is given */
		case 'o':
			if (options) {
				char *joined;

				if (asprintf(&joined, "%s,%s", options, optarg) < 0)
					return 1;
				free(options);
				options = joined;
			} else {
				options = strdup(optarg);
			}
			break;
		case 'h':
			printf("usage: %s create [-q] [-f fmt] [-b backing [-F fmt]] [-o options] "
			       "filename [size]\n", IMG_PROG);
			return 0;
		default:
			return img_usage_error("create: bad option");
		}
	}
	if (optind >= argc)
		return img_usage_error("create: expecting a file name");
	if (optind + 1 < argc) {
		if (parse_size("size", argv[optind + 1], &size, &err)) {
			error_report_free(IMG_PROG, err);
			return 1;
		}
		size_given = true;
	}
	if (options && format_help(fmt, options)) {
		free(options);
		return 0;
	}
	if (img_create_image(argv[optind], fmt, options, size, size_given, backing, backing_fmt,
			     quiet, &err)) {
		error_report_free(IMG_PROG, err);
		free(options);
		return 1;
	}
	free(options);
	return 0;
}
