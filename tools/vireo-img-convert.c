/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img convert: copy an image (its whole backing chain flattened) into a new one, or with
 * -B into a new one over a backing file (only what the source's top layer holds is written),
 * with -c into compressed qcow2 clusters.
 *
 * Parallel requests (-m N, qemu-img's default 8) and the copy itself are the block layer's copy
 * primitive (blockdev/copy.c); without -W chunks are written in offset order, so a qcow2 target
 * gets the file -m 1 gives it, byte for byte.
 */
#include "tools/vireo-img.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev/copy.h"
#include "common/parse.h"
#include "common/util.h"

struct convert {
	struct blockdev_copy copy;
	bool existing;     /* -n */
	bool backing;      /* -B */
	bool no_flush;     /* -t unsafe: no flush at the end */
	bool progress;     /* -p */
	struct img_progress prog;
};

static int convert_progress(void *opaque, uint64_t done)
{
	img_progress_update(opaque, done);
	return 0;
}

/* Is @path the file of @bs or of an image in its backing chain? (qemu-img finds out by its image
 * lock; creating the target would truncate what convert is reading) */
static bool in_chain(const char *path, struct blockdev *bs)
{
	struct stat t, st;

	if (stat(path, &t))
		return false;
	for (; bs; bs = bs->backing)
		if (!stat(bs->filename, &st) && st.st_dev == t.st_dev && st.st_ino == t.st_ino)
			return true;
	return false;
}

/*
 * -l: "snapshot.id=ID,snapshot.name=NAME" (either or both; both must match), or an ID or a name
 * (the ID first), as qemu-img; @bs (read-only) then reads as that snapshot.
 */
static int load_snapshot(struct blockdev *bs, const char *param, struct error **errp)
{
	char *copy, *save = NULL, *id = NULL, *name = NULL;
	int ret = -1;

	if (strncmp(param, "snapshot.", 9))
		return blockdev_snapshot_load_tmp(bs, param, NULL, NULL) &&
		       blockdev_snapshot_load_tmp(bs, NULL, param, errp) ? -1 : 0;
	copy = strdup(param);
	if (!copy) {
		error_setg(errp, "out of memory");
		return -1;
	}
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		if (!strncmp(kv, "snapshot.id=", 12)) {
			id = kv + 12;
		} else if (!strncmp(kv, "snapshot.name=", 14)) {
			name = kv + 14;
		} else {
			error_setg(errp, "-l: '%s' is not snapshot.id=ID or snapshot.name=NAME", kv);
			goto out;
		}
	}
	ret = blockdev_snapshot_load_tmp(bs, id, name, errp);
out:
	free(copy);
	return ret;
}

/* Appends to @opts the key option among -o @options that opens an encrypted target
 * (key-secret= for luks, encrypt.key-secret= for qcow2). */
static int secret_option(const char *options, const char *fmt, char *opts, size_t len,
			 struct error **errp)
{
	const char *key = !strcmp(fmt, "luks") ? "key-secret=" : "encrypt.key-secret=";
	const char *p = options;
	size_t klen = strlen(key), n = strlen(opts);

	while (p && *p) {
		if (!strncmp(p, key, klen)) {
			size_t vlen = strcspn(p + klen, ",");

			if (n + 1 + klen + vlen >= len) {
				error_setg(errp, "-o %s: the secret's id is too long", key);
				return -1;
			}
			snprintf(opts + n, len - n, ",%s%.*s", key, (int)vlen, p + klen);
			return 0;
		}
		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
	}
	return 0;
}

/* qemu-img's cache modes: the block layer's cache= plus when to flush. */
static int cache_mode(const char *opt, const char *mode, bool target, struct convert *c,
		      const char **cache, struct error **errp)
{
	if (!strcmp(mode, "none") || !strcmp(mode, "directsync"))
		*cache = "none";
	else if (!strcmp(mode, "writeback") || !strcmp(mode, "writethrough") ||
		 !strcmp(mode, "unsafe"))
		*cache = "writeback";
	else {
		error_setg(errp, "%s: invalid cache mode '%s' (expected none, writeback, "
			   "writethrough, directsync or unsafe)", opt, mode);
		return -1;
	}
	if (target) {
		c->copy.sync_writes = !strcmp(mode, "writethrough") || !strcmp(mode, "directsync");
		c->no_flush = !strcmp(mode, "unsafe");
	}
	return 0;
}

int img_convert(int argc, char **argv)
{
	const char *fmt = NULL, *out_fmt = "raw", *backing = NULL, *backing_fmt = NULL;
	const char *snapshot = NULL;
	const struct blockdev_driver *out_drv;
	const char *src_cache = "writeback", *dst_cache = "writeback";
	char *options = NULL, dst_opts[256];
	/* -t unsafe is qemu-img convert's default: the page cache, no flush at the end */
	struct convert c = { .no_flush = true };
	struct blockdev_copy *o = &c.copy;
	struct error *err = NULL;
	bool quiet = false, qcow2_out;
	uint64_t par, sparse = 4096;
	int opt, ret = 1;

	o->in_order = true;
	o->parallel = 8;
	while ((opt = getopt(argc, argv, "+f:O:o:S:pqnUWcB:F:m:t:T:l:")) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'o': options = optarg; break;
		case 'p': c.progress = true; break;
		case 'q': quiet = true; break;
		case 'n': c.existing = true; break;
		case 'c': o->compress = true; break;
		case 'B': backing = optarg; break;
		case 'F': backing_fmt = optarg; break;
		case 'W': o->in_order = false; break;
		case 'l': snapshot = optarg; break;
		case 'U': break;
		case 'S':
			if (parse_size("-S", optarg, &sparse, &err))
				goto fail;
			break;
		case 'm':
			if (parse_u64("-m", optarg, 1, BLOCKDEV_COPY_MAX_PARALLEL, &par, &err))
				goto fail;
			o->parallel = (unsigned)par;
			break;
		case 't':
			if (cache_mode("-t", optarg, true, &c, &dst_cache, &err))
				goto fail;
			break;
		case 'T':
			if (cache_mode("-T", optarg, false, &c, &src_cache, &err))
				goto fail;
			break;
		default: return img_usage_error("convert: bad option");
		}
	}
	if (optind + 2 != argc)
		return img_usage_error("convert: expecting a source and a target file name");
	if (quiet)
		c.progress = false;
	qcow2_out = !strcmp(out_fmt, "qcow2");
	c.backing = backing != NULL;
	if (o->compress && !(blockdev_find_format(out_fmt) &&
			     blockdev_find_format(out_fmt)->pwrite_compressed)) {
		error_setg(&err, "-c: compression is not supported for format '%s' (qcow2, vmdk)",
			   out_fmt);
		goto fail;
	}
	if (backing && c.existing) {
		error_setg(&err, "-B: a backing file cannot be set on an existing target (-n)");
		goto fail;
	}
	if (backing_fmt && !backing) {
		error_setg(&err, "-F: a backing format needs a backing file (-B)");
		goto fail;
	}
	snprintf(dst_opts, sizeof(dst_opts), "cache=%s", src_cache);
	o->src = img_open(argv[optind], fmt, true, dst_opts, &err);
	if (!o->src)
		goto fail;
	if (snapshot && load_snapshot(o->src, snapshot, &err)) {
		error_prepend(&err, "Failed to load snapshot");
		goto fail;
	}
	if (in_chain(argv[optind + 1], o->src)) {
		error_setg(&err, "'%s' is '%s' or in its backing chain: it cannot be the target",
			   argv[optind + 1], argv[optind]);
		goto fail;
	}
	if (!c.existing && img_create_image(argv[optind + 1], out_fmt, options, o->src->size, true,
					    backing, backing_fmt, true, &err))
		goto fail;
	/* a new target: a crash leaves a useless file anyway, so skip the ordering flushes */
	/* qcow2 and the formats created through their drivers take close-flush (create.h) */
	out_drv = blockdev_find_format(out_fmt);
	snprintf(dst_opts, sizeof(dst_opts), "cache=%s%s%s", dst_cache,
		 (qcow2_out || !strcmp(out_fmt, "vmdk")) && !c.existing ? ",metadata-barriers=off" :
									     "",
		 (qcow2_out || (out_drv && out_drv->create)) && c.no_flush ? ",close-flush=off" :
									     "");
	/* an encrypted target opens with the key it was created with (-o key-secret=ID) */
	if (secret_option(options, out_fmt, dst_opts, sizeof(dst_opts), &err))
		goto fail;
	o->dst = img_open(argv[optind + 1], out_fmt, false, dst_opts, &err);
	if (!o->dst)
		goto fail;
	if (o->compress) {
		struct blockdev_info info;

		if (blockdev_get_info(o->dst, &info, &err))
			goto fail;
		json_object_put(info.specific);
		if (info.encrypted) {
			error_setg(&err, "-c: '%s' is encrypted, and compressed clusters cannot "
				   "be", argv[optind + 1]);
			goto fail;
		}
		o->cluster_size = info.cluster_size;
		if (!o->dst->drv->pwrite_compressed || !o->cluster_size ||
		    BLOCKDEV_COPY_CHUNK % o->cluster_size) {
			error_setg(&err, "-c: '%s' is a %s image, which cannot hold compressed "
				   "clusters", argv[optind + 1], blockdev_format_name(o->dst));
			goto fail;
		}
	}
	if (o->dst->size < o->src->size) {
		error_setg(&err, "'%s' is smaller than '%s'", argv[optind + 1], argv[optind]);
		goto fail;
	}
	o->length = o->src->size;
	/* -S 0: a fully allocated target, zeroes written as data */
	o->sparse = sparse;
	o->fill_zeroes = !sparse;
	/* a target that may hold data, or one over a backing file, gets zeroes written
	 * explicitly; as qemu-img, a zeroed range need not stay allocated */
	o->write_zeroes = c.existing || c.backing || !strcmp(out_fmt, "luks");
	o->zero_flags = BLOCKDEV_ZERO_MAY_UNMAP;
	/* -B: what the source's backing chain provides, the target's backing file provides; a
	 * source without one reads zeroes there */
	o->top_only = c.backing;
	o->stop = o->src->backing;
	o->progress = convert_progress;
	o->opaque = &c.prog;
	img_progress_start(&c.prog, c.progress, o->src->size);
	ret = blockdev_copy_run(o);
	if (!ret && !c.no_flush)
		ret = blockdev_flush(o->dst);
	img_progress_end(&c.prog, !ret);
	if (ret) {
		error_setg_errno(&err, -ret, "error while converting '%s' to '%s'", argv[optind],
				 argv[optind + 1]);
		goto fail;
	}
	ret = 0;
	goto out;
fail:
	error_report_free(IMG_PROG, err);
	ret = 1;
out:
	blockdev_close(o->dst);
	blockdev_close(o->src);
	return ret;
}
