/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img amend: change qcow2 options in place, as far as the format allows: compat
 * (0.10 <-> 1.1), lazy_refcounts, size (growing or shrinking, as resize), compression_type
 * (qemu-img takes it at create only: the compressed clusters are stored again in the new type),
 * and the LUKS key slots of an encrypted image (qcow2's encrypt.state=active|inactive,
 * encrypt.new-secret, encrypt.old-secret, encrypt.keyslot, encrypt.iter-time; a luks image's
 * the same without "encrypt."; --force erases the last one), opened with its key.
 * The backing file is rebase's job, as qemu-img says. Options that would need the image
 * rewritten (cluster_size, refcount_bits, extended_l2, data_file, encryption, ...) are refused
 * by name.
 */
#include "tools/vireo-img.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/luks.h"
#include "common/parse.h"
#include "common/secret.h"

struct amend {
	struct qcow2_amend_opts q;
	int compression; /* QCOW2_COMPRESS_*, -1 keeps it */
	/* LUKS key slots: [encrypt.]state, new-secret, old-secret, keyslot, iter-time */
	const char *state;
	char *new_secret, *old_secret;
	int keyslot;
	unsigned int iter_time;
	bool force;
	uint64_t size;
	bool size_given;
};

/* The key slot options (qcow2: under "encrypt."; luks: as they are). */
static int take_slot_option(struct amend *a, const char *prefix, const char *key,
			    const char *value, struct error **errp)
{
	uint64_t v;

	if (!strcmp(key, "state")) {
		if (strcmp(value, "active") && strcmp(value, "inactive")) {
			error_setg(errp, "state: '%s' is not active or inactive", value);
			return -1;
		}
		a->state = !strcmp(value, "active") ? "active" : "inactive";
	} else if (!strcmp(key, "new-secret")) {
		free(a->new_secret);
		a->new_secret = strdup(value); /* (the option string goes with the parse) */
	} else if (!strcmp(key, "old-secret")) {
		free(a->old_secret);
		a->old_secret = strdup(value);
	} else if (!strcmp(key, "keyslot")) {
		if (parse_u64("keyslot", value, 0, LUKS_SLOTS - 1, &v, errp))
			return -1;
		a->keyslot = (int)v;
	} else if (!strcmp(key, "iter-time")) {
		if (parse_u64("iter-time", value, 1, 600000, &v, errp))
			return -1;
		a->iter_time = (unsigned int)v;
	} else {
		error_setg(errp, "amend: changing the encryption option '%s%s' is not supported",
			   prefix, key);
		return -1;
	}
	return 0;
}

static int take_option(void *opaque, const char *key, const char *value, struct error **errp)
{
	struct amend *a = opaque;
	bool b;

	if (!strncmp(key, "encrypt.", 8))
		return take_slot_option(a, "encrypt.", key + 8, value, errp);
	if (!strcmp(key, "state") || !strcmp(key, "new-secret") || !strcmp(key, "old-secret") ||
	    !strcmp(key, "keyslot") || !strcmp(key, "iter-time"))
		return take_slot_option(a, "", key, value, errp);

	if (!strcmp(key, "compat")) {
		if (!strcmp(value, "0.10") || !strcmp(value, "v2")) {
			a->q.version = 2;
		} else if (!strcmp(value, "1.1") || !strcmp(value, "v3")) {
			a->q.version = 3;
		} else {
			error_setg(errp, "compat: '%s' is not 0.10 or 1.1", value);
			return -1;
		}
	} else if (!strcmp(key, "lazy_refcounts")) {
		if (parse_bool("lazy_refcounts", value, &b, errp))
			return -1;
		a->q.lazy_refcounts = b;
	} else if (!strcmp(key, "backing_file") || !strcmp(key, "backing_fmt")) {
		error_setg(errp, "cannot amend the backing file; 'vireo-img rebase' changes it");
		return -1;
	} else if (!strcmp(key, "compression_type")) {
		if (!strcmp(value, "zlib")) {
			a->compression = QCOW2_COMPRESS_ZLIB;
		} else if (!strcmp(value, "zstd")) {
			a->compression = QCOW2_COMPRESS_ZSTD;
		} else {
			error_setg(errp, "compression_type: '%s' is not zlib or zstd", value);
			return -1;
		}
	} else if (!strcmp(key, "size")) {
		if (parse_size("size", value, &a->size, errp))
			return -1;
		a->size_given = true;
	} else {
		error_setg(errp, "amend: changing the option '%s' is not supported", key);
		return -1;
	}
	return 0;
}

/* The key slot change the options ask for, on a luks or an encrypted qcow2 image. */
static int amend_slots(struct blockdev *bs, struct amend *a, struct error **errp)
{
	struct luks_amend la = { .slot = a->keyslot, .force = a->force,
				 .iter_time = a->iter_time ? a->iter_time : LUKS_DEFAULT_ITER_TIME };

	if (!a->state) {
		error_setg(errp, "the key slot options need state=active or state=inactive");
		return -1;
	}
	la.active = !strcmp(a->state, "active");
	if (la.active && (!a->new_secret ||
			  secret_lookup(a->new_secret, &la.new_pass, &la.new_len, errp))) {
		if (!a->new_secret)
			error_setg(errp, "state=active needs new-secret");
		return -1;
	}
	if (!la.active && a->old_secret &&
	    secret_lookup(a->old_secret, &la.old_pass, &la.old_len, errp))
		return -1;
	return !strcmp(blockdev_format_name(bs), "luks") ? luks_amend_node(bs, &la, errp) :
							    qcow2_amend_encryption(bs, &la, errp);
}

static int amend(struct blockdev *bs, struct amend *a, const char *filename, struct error **errp)
{
	if (a->state || a->new_secret || a->old_secret || a->keyslot >= 0) {
		if (amend_slots(bs, a, errp))
			return -1;
		if (!strcmp(blockdev_format_name(bs), "luks"))
			return 0;
	}
	if (strcmp(blockdev_format_name(bs), "qcow2")) {
		error_setg(errp, "'%s': format '%s' has no options to amend", filename,
			   blockdev_format_name(bs));
		return -1;
	}
	/* zstd needs version 3: an upgrade first, a downgrade after leaving zstd */
	if (a->q.version == 3 && qcow2_amend(bs, &a->q, errp))
		return -1;
	if (a->compression >= 0 && qcow2_set_compression(bs, (unsigned)a->compression, errp))
		return -1;
	if (a->q.version != 3 && qcow2_amend(bs, &a->q, errp))
		return -1;
	if (a->size_given && a->size != bs->size && blockdev_truncate(bs, a->size, errp))
		return -1;
	return blockdev_flush(bs) ? error_setg(errp, "'%s': flush failed", filename), -1 : 0;
}

int img_amend(int argc, char **argv)
{
	struct amend a = { .q = { .lazy_refcounts = -1 }, .compression = -1, .keyslot = -1 };
	static const struct option longopts[] = { { "force", no_argument, NULL, 'F' }, { 0 } };
	const char *fmt = NULL;
	char *options = NULL;
	struct blockdev *bs = NULL;
	struct error *err = NULL;
	int opt, ret = 1;

	while ((opt = getopt_long(argc, argv, "+f:o:pqh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'F': a.force = true; break;
		case 'f': fmt = optarg; break;
		case 'o': options = optarg; break;
		case 'p': case 'q': break; /* amend finishes quickly: no progress to show */
		case 'h':
			printf("usage: %s amend [-q] [-f fmt] -o options filename\n", IMG_PROG);
			return 0;
		default: return img_usage_error("amend: bad option");
		}
	}
	if (optind + 1 != argc)
		return img_usage_error("amend: expecting one file name");
	if (!options)
		return img_usage_error("amend: -o options are required");
	if (img_each_option(options, take_option, &a, &err))
		goto fail;
	bs = img_open(argv[optind], fmt, false, NULL, &err);
	if (!bs || amend(bs, &a, argv[optind], &err))
		goto fail;
	ret = 0;
	goto out;
fail:
	error_report_free(IMG_PROG, err);
out:
	blockdev_close(bs);
	free(a.new_secret);
	free(a.old_secret);
	return ret;
}
