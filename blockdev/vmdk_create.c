/* SPDX-License-Identifier: Apache-2.0 */
/*
 * New vmdk images (vireo-img create -f vmdk, convert -O vmdk), with qemu-img's -o options and
 * the files it makes for each subformat:
 *   monolithicSparse      FILE: a sparse extent, descriptor embedded
 *   streamOptimized       FILE: compressed grains, directory and footer at the end (VMware's
 *                         stream layout, as OVA files and AWS import carry it)
 *   monolithicFlat        FILE (descriptor) + BASE-flat.vmdk
 *   twoGbMaxExtentSparse  FILE (descriptor) + BASE-s001.vmdk, ... (2 GiB each)
 *   twoGbMaxExtentFlat    FILE (descriptor) + BASE-f001.vmdk, ...
 * where BASE is FILE without its extension, and the extents keep FILE's extension
 * (disk.img: disk-flat.img), as qemu-img names them. The descriptor's geometry is qemu-img's: 16 heads
 * for IDE, 255 for the SCSI adapters, 63 sectors, cylinders = sectors / (heads * 63).
 */
#include "blockdev/vmdk_sparse_priv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define TWO_GB_SECTORS (2 * GiB / VMDK_SECTOR)

const struct blockdev_create_opt_desc vmdk_create_opts[] = {
	{ "adapter_type", BLOCKDEV_CREATE_STR, NULL, "ide|lsilogic|buslogic|legacyESX" },
	{ "compat6", BLOCKDEV_CREATE_BOOL, "off", NULL },
	{ "hwversion", BLOCKDEV_CREATE_STR, "undefined", NULL },
	{ "toolsversion", BLOCKDEV_CREATE_STR, NULL, NULL },
	{ "subformat", BLOCKDEV_CREATE_STR, NULL,
	  "monolithicSparse|monolithicFlat|twoGbMaxExtentSparse|twoGbMaxExtentFlat|"
	  "streamOptimized" },
	{ "zeroed_grain", BLOCKDEV_CREATE_BOOL, NULL, NULL },
	{ "preallocation", BLOCKDEV_CREATE_STR, NULL, "off|falloc|full" },
	{ "nocow", BLOCKDEV_CREATE_BOOL, NULL, NULL },
	{ NULL },
};

/**
 * struct vmdk_sparse_layout - a new sparse extent
 * @sectors: its capacity
 * @desc: the embedded descriptor's text (NULL: none)
 * @zeroed_grain: set the zeroed-grain flag (version 2)
 * @stream: streamOptimized: compressed grains with markers, directory at the end (version 3)
 */
struct vmdk_sparse_layout {
	uint64_t sectors;
	const char *desc;
	bool zeroed_grain;
	bool stream;
};

struct plan {
	const char *filename;
	const char *subformat;
	bool flat, split, stream, zeroed_grain, nocow;
	enum blockdev_prealloc prealloc;
	uint64_t sectors;
	struct vmdk_desc_new d;
	struct vmdk_desc_extent *ext;
	char **paths; /* each extent file's path (monolithic: none) */
	size_t nr;    /* entries of @ext and @paths */
};

/* a DDB value goes between quotes: printable, no quote or backslash */
static int ddb_value(const char *key, const char *v, struct error **errp)
{
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\' || *p == 0x7f) {
			error_setg(errp, "%s: '%s' holds a quote, a backslash or a control character",
				   key, v);
			return -1;
		}
	}
	if (!*v || strlen(v) > 64) {
		error_setg(errp, "%s: '%s' must be 1 to 64 characters", key, v);
		return -1;
	}
	return 0;
}

static uint32_t fresh_cid(void)
{
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_REALTIME, &ts);
	x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec ^
	    (uint64_t)getpid() << 20;
	x ^= x >> 31;
	return (uint32_t)x % 0xfffffffeu + 1;
}

static int read_options(const struct blockdev_create_ctx *ctx, struct plan *p,
			struct error **errp)
{
	const char *hw = blockdev_create_str(ctx, "hwversion");
	const char *adapter = blockdev_create_str(ctx, "adapter_type");
	const char *prealloc = blockdev_create_str(ctx, "preallocation");
	const char *tools = blockdev_create_str(ctx, "toolsversion");

	p->subformat = blockdev_create_str(ctx, "subformat");
	if (!p->subformat)
		p->subformat = "monolithicSparse";
	p->flat = strstr(p->subformat, "Flat") != NULL;
	p->split = !strncmp(p->subformat, "twoGb", 5);
	p->stream = !strcmp(p->subformat, "streamOptimized");
	p->zeroed_grain = blockdev_create_bool(ctx, "zeroed_grain");
	p->nocow = blockdev_create_bool(ctx, "nocow");
	p->prealloc = prealloc ? (enum blockdev_prealloc)blockdev_prealloc_parse(prealloc) :
				 BLOCKDEV_PREALLOC_OFF;
	if (p->flat && p->zeroed_grain) {
		error_setg(errp, "Flat image can't enable zeroed grain");
		return -1;
	}
	if (p->stream && p->prealloc != BLOCKDEV_PREALLOC_OFF) {
		error_setg(errp, "preallocation: a streamOptimized image is created with off only");
		return -1;
	}
	if (blockdev_create_bool(ctx, "compat6")) {
		if (hw && strcmp(hw, "undefined")) {
			error_setg(errp, "compat6 cannot be enabled with hwversion set");
			return -1;
		}
		hw = "6";
	} else if (!hw || !strcmp(hw, "undefined")) {
		hw = "4";
	}
	if (!adapter)
		adapter = "ide";
	if (!tools)
		tools = "2147483647";
	if (ddb_value("hwversion", hw, errp) || ddb_value("toolsversion", tools, errp))
		return -1;
	p->sectors = DIV_ROUND_UP(ctx->size, VMDK_SECTOR);
	if (p->sectors > VMDK_MAX_CAPACITY_SECTORS) {
		error_setg(errp, "a vmdk image holds at most %llu bytes",
			   VMDK_MAX_CAPACITY_SECTORS * VMDK_SECTOR);
		return -1;
	}
	p->d = (struct vmdk_desc_new){
		.create_type = p->subformat,
		.cid = fresh_cid(),
		.hw_version = hw,
		.adapter_type = adapter,
		.tools_version = tools,
		.heads = strcmp(adapter, "ide") ? 255 : 16,
		.sectors = 63,
	};
	p->d.cylinders = p->sectors / (p->d.heads * 63ULL);
	return 0;
}

/* FILE without its extension ("dir/disk.vmdk" -> "dir/disk"), malloc'd */
static char *base_of(const char *filename)
{
	const char *slash = strrchr(filename, '/'), *dot = strrchr(filename, '.');

	if (dot && (!slash || dot > slash) && dot != (slash ? slash + 1 : filename))
		return strndup(filename, (size_t)(dot - filename));
	return strdup(filename);
}

/* The extents: one, or 2 GiB ones for twoGbMaxExtent*, each with its file name. */
static int plan_extents(struct plan *p, struct error **errp)
{
	uint64_t per = p->split ? TWO_GB_SECTORS : p->sectors ? p->sectors : 1;
	size_t n = p->split ? (size_t)MAX(DIV_ROUND_UP(p->sectors, per), 1) : 1;
	char *base = base_of(p->filename);
	const char *bname, *ext = p->filename + (base ? strlen(base) : 0);
	int ret = -1;

	p->ext = calloc(n, sizeof(*p->ext));
	p->paths = calloc(n, sizeof(*p->paths));
	if (!base || !p->ext || !p->paths)
		goto oom;
	p->nr = n;
	bname = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
	for (size_t i = 0; i < n; i++) {
		struct vmdk_desc_extent *e = &p->ext[i];

		e->access = VMDK_ACCESS_RW;
		e->sectors = MIN(per, p->sectors - i * per);
		e->type = p->flat ? VMDK_EXTENT_FLAT : VMDK_EXTENT_SPARSE;
		if (!p->flat && !p->split) { /* the file itself, named as qemu-img names it */
			const char *s = strrchr(p->filename, '/');

			e->filename = strdup(s ? s + 1 : p->filename);
			if (!e->filename)
				goto oom;
			continue;
		}
		/* qemu-img's names: BASE-flat.EXT, BASE-s001.EXT, ... (EXT: FILE's extension) */
		if ((p->split ? asprintf(&e->filename, "%s-%c%03zu%s", bname, p->flat ? 'f' : 's',
					 i + 1, ext) :
				asprintf(&e->filename, "%s-flat%s", bname, ext)) < 0) {
			e->filename = NULL;
			goto oom;
		}
		if (asprintf(&p->paths[i], "%.*s%s", (int)(bname - base), base, e->filename) < 0) {
			p->paths[i] = NULL;
			goto oom;
		}
	}
	p->d.extents = p->ext;
	p->d.nr_extents = n;
	ret = 0;
	goto out;
oom:
	error_setg(errp, "out of memory");
out:
	free(base);
	return ret;
}

static int sparse_format(struct blockdev *file, const struct vmdk_sparse_layout *l,
		       struct error **errp)
{
	struct vmdk_header h = {
		.version = l->stream ? 3 : l->zeroed_grain ? 2 : 1,
		.flags = VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD,
		.capacity = l->sectors,
		.grain_size = 128,
		.desc_offset = 1,
		.desc_size = 20,
		.gtes_per_gt = 512,
	};
	uint64_t nr_gt = vmdk_gd_entries(&h), gt_sec = 4, dir_sec = DIV_ROUND_UP(nr_gt * 4, 512);
	uint64_t meta_end, bytes;
	uint8_t *buf;
	int ret;

	if (l->zeroed_grain)
		h.flags |= VMDK_FLAG_ZERO_GRAIN;
	if (l->stream) {
		h.flags = VMDK_FLAG_NL_DETECT | VMDK_FLAG_COMPRESS | VMDK_FLAG_MARKERS;
		h.compress = VMDK_COMPRESS_DEFLATE;
		h.gd_offset = VMDK_GD_AT_END;
		h.overhead = 128;
		meta_end = 128;
	} else {
		h.rgd_offset = 21;
		h.gd_offset = h.rgd_offset + dir_sec + nr_gt * gt_sec;
		meta_end = h.gd_offset + dir_sec + nr_gt * gt_sec;
		h.overhead = ALIGN_UP(meta_end, h.grain_size);
	}
	if (nr_gt > VMDK_MAX_GD_ENTRIES || h.overhead + 2 * nr_gt * gt_sec > UINT32_MAX) {
		error_setg(errp, "a size of %" PRIu64 " bytes is too large for a sparse extent",
			   l->sectors * VMDK_SECTOR);
		return -1;
	}
	/* a stream file starts as its header and descriptor, an empty directory and the footer */
	bytes = h.overhead * VMDK_SECTOR + (l->stream ? (1 + dir_sec + 3) * VMDK_SECTOR : 0);
	buf = calloc(1, l->stream ? bytes : meta_end * VMDK_SECTOR);
	if (!buf) {
		error_setg(errp, "out of memory");
		return -1;
	}
	vmdk_header_put(&h, buf);
	if (l->desc)
		memcpy(buf + VMDK_SECTOR, l->desc, MIN(strlen(l->desc), 20 * VMDK_SECTOR));
	if (l->stream) {
		uint8_t *p = buf + h.overhead * VMDK_SECTOR;
		struct vmdk_header f = h;

		vmdk_marker_put(p, dir_sec, VMDK_MARKER_GD);
		f.gd_offset = h.overhead + 1;
		p += (1 + dir_sec) * VMDK_SECTOR;
		vmdk_marker_put(p, 1, VMDK_MARKER_FOOTER);
		vmdk_header_put(&f, p + VMDK_SECTOR);
	} else {
		for (int copy = 0; copy < 2; copy++) {
			uint64_t dir = copy ? h.gd_offset : h.rgd_offset;

			for (uint64_t i = 0; i < nr_gt; i++)
				vmdk_put32(buf + dir * VMDK_SECTOR + 4 * i,
				      (uint32_t)(dir + dir_sec + i * gt_sec));
		}
		/* the file covers its metadata and reads as zeroes up to the first grain */
	}
	if (l->stream) {
		ret = blockdev_pwrite(file, 0, buf, bytes);
	} else {
		/* the header, the descriptor and the two directories: the zeroed tables stay holes */
		ret = blockdev_pwrite(file, 0, buf, (1 + h.desc_size + dir_sec) * VMDK_SECTOR);
		if (!ret)
			ret = blockdev_pwrite(file, h.gd_offset * VMDK_SECTOR,
					      buf + h.gd_offset * VMDK_SECTOR, dir_sec * VMDK_SECTOR);
		if (!ret && h.overhead == meta_end)
			ret = blockdev_pwrite(file, (meta_end - 1) * VMDK_SECTOR,
					      buf + (meta_end - 1) * VMDK_SECTOR, VMDK_SECTOR);
	}
	free(buf);
	if (!ret && !l->stream && h.overhead > meta_end) { /* the first grain's place */
		struct error *err = NULL;

		if (blockdev_truncate(file, h.overhead * VMDK_SECTOR, &err)) {
			error_propagate(errp, err);
			return -1;
		}
	}
	if (ret) {
		error_setg_errno(errp, -ret, "'%s': writing the sparse extent's header",
				 file->filename);
		return -1;
	}
	return 0;
}

/* A sparse extent file at @path: created empty, formatted, its metadata preallocated as asked. */
static int make_sparse(const struct plan *p, const char *path, uint64_t sectors, const char *desc,
		       struct error **errp)
{
	struct vmdk_sparse_layout l = { .sectors = sectors, .desc = desc,
					.zeroed_grain = p->zeroed_grain, .stream = p->stream };
	struct blockdev_opts o = { 0 };
	struct blockdev *file;
	int ret;

	if (blockdev_file_create(path, 0, BLOCKDEV_PREALLOC_OFF, p->nocow, errp))
		return -1;
	file = blockdev_open_file(path, &o, errp);
	if (!file)
		return -1;
	ret = sparse_format(file, &l, errp);
	if (!ret && p->prealloc != BLOCKDEV_PREALLOC_OFF)
		ret = blockdev_file_preallocate(file, 0, file->size, p->prealloc, errp);
	if (!ret && blockdev_flush(file)) {
		error_setg(errp, "'%s': flushing the new extent", path);
		ret = -1;
	}
	blockdev_close(file);
	return ret;
}

/* The descriptor file @filename holding @text. */
static int write_text_file(const char *filename, const char *text, bool nocow,
			   struct error **errp)
{
	struct blockdev_opts o = { 0 };
	struct blockdev *file;
	int ret;

	if (blockdev_file_create(filename, 0, BLOCKDEV_PREALLOC_OFF, nocow, errp))
		return -1;
	file = blockdev_open_file(filename, &o, errp);
	if (!file)
		return -1;
	ret = blockdev_pwrite(file, 0, text, strlen(text)) ?: blockdev_flush(file);
	blockdev_close(file);
	if (ret) {
		error_setg_errno(errp, -ret, "'%s': writing the descriptor", filename);
		return -1;
	}
	return 0;
}

int vmdk_create(const struct blockdev_create_ctx *ctx, struct error **errp)
{
	struct plan p = { .filename = ctx->filename };
	char *desc = NULL;
	int ret = -1;

	if (read_options(ctx, &p, errp) || plan_extents(&p, errp))
		goto out;
	desc = vmdk_desc_print(&p.d);
	if (!desc) {
		error_setg(errp, "out of memory");
		goto out;
	}
	if (!p.flat && !p.split) { /* monolithicSparse, streamOptimized: one file */
		if (strlen(desc) > 20 * VMDK_SECTOR) {
			error_setg(errp, "the descriptor does not fit in its 10 KiB");
			goto out;
		}
		ret = make_sparse(&p, ctx->filename, p.sectors, desc, errp);
		goto out;
	}
	for (size_t i = 0; i < p.d.nr_extents; i++) {
		uint64_t bytes = p.ext[i].sectors * VMDK_SECTOR;

		if (p.flat ? blockdev_file_create(p.paths[i], bytes, p.prealloc, p.nocow, errp) :
			     make_sparse(&p, p.paths[i], p.ext[i].sectors, NULL, errp))
			goto out;
	}
	ret = write_text_file(ctx->filename, desc, p.nocow, errp);
out:
	for (size_t i = 0; i < p.nr; i++) {
		free(p.ext[i].filename);
		free(p.paths[i]);
	}
	free(p.ext);
	free(p.paths);
	free(desc);
	return ret;
}
