/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhdx: creating an image, with qemu-img's options and qemu-img's layout (the same file for the
 * same options: the log at 1 MiB, the BAT after it, the metadata region after the BAT, payload
 * blocks 4 MiB further on), so that `info` of either tool's image reads the same.
 *
 *  subformat=dynamic|fixed  fixed: the whole disk's blocks reserved in the file after the
 *                           metadata (LeaveBlocksAllocated set)
 *  block_size=SIZE          rounded up to MiB; 0: qemu-img's choice by disk size; at most
 *                           256 MiB; a power of two
 *  log_size=SIZE            rounded up to MiB, below 4 GiB
 *  block_state_zero=on|off  on (the default, as qemu-img): blocks start in the ZERO state
 *                           (a fixed image's then get their space when written, as qemu-img's);
 *                           off: NOT_PRESENT (dynamic) or FULLY_PRESENT in place (fixed)
 *  preallocation=off|falloc|full  a fixed image's blocks allocated on the host (qemu-img takes
 *                           the option and leaves the file sparse)
 *  nocow=on|off             as the file protocol's
 */
#include "blockdev/vhdx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/vhdx_format.h"
#include "common/util.h"

const struct blockdev_create_opt_desc vhdx_create_opts[] = {
	{ "log_size", BLOCKDEV_CREATE_SIZE, "1048576", NULL },
	{ "block_size", BLOCKDEV_CREATE_SIZE, "0", NULL },
	{ "subformat", BLOCKDEV_CREATE_STR, NULL, "dynamic|fixed" },
	{ "block_state_zero", BLOCKDEV_CREATE_BOOL, NULL, NULL },
	{ "preallocation", BLOCKDEV_CREATE_STR, NULL, "off|falloc|full" },
	{ "nocow", BLOCKDEV_CREATE_BOOL, NULL, NULL },
	{ NULL, 0, NULL, NULL },
};

struct params {
	struct vhdx_meta m;
	struct vhdx_layout l;
	bool fixed, zero_state;
	enum blockdev_prealloc prealloc;
	uint64_t file_size;
};

/* The options, checked and rounded as qemu-img does (its messages). */
static int params_of(const struct blockdev_create_ctx *ctx, struct params *p,
		     struct error **errp)
{
	uint64_t size = ALIGN_UP(ctx->size, 512), log = blockdev_create_size(ctx, "log_size", 0);
	uint64_t bsz = blockdev_create_size(ctx, "block_size", 0);
	const char *sub = blockdev_create_str(ctx, "subformat");
	const char *pre = blockdev_create_str(ctx, "preallocation");

	if (ctx->size > VHDX_MAX_DISK_SIZE) {
		error_setg(errp, "%s: Image size too large; max of 64TB", ctx->filename);
		return -1;
	}
	log = ALIGN_UP(log, VHDX_MIB);
	if (!log) {
		error_setg(errp, "%s: Log size must be a multiple of 1 MB", ctx->filename);
		return -1;
	}
	if (log >= 4096 * VHDX_MIB) {
		error_setg(errp, "%s: Log size must be smaller than 4 GB", ctx->filename);
		return -1;
	}
	bsz = bsz ? MIN(ALIGN_UP(bsz, VHDX_MIB), VHDX_MAX_BLOCK) : vhdx_default_block_size(size);
	if (bsz & (bsz - 1)) {
		error_setg(errp, "%s: Block size must be a power of two", ctx->filename);
		return -1;
	}
	p->fixed = sub && !strcmp(sub, "fixed");
	p->zero_state = !blockdev_create_given(ctx, "block_state_zero") ||
			blockdev_create_bool(ctx, "block_state_zero");
	p->prealloc = pre ? blockdev_prealloc_parse(pre) : BLOCKDEV_PREALLOC_OFF;
	p->m = (struct vhdx_meta){
		.disk_size = size, .block_size = (uint32_t)bsz, .leave_allocated = p->fixed,
		.logical_sector = 512, .physical_sector = 512,
	};
	vhdx_layout_new(&p->m, (uint32_t)log, &p->l);
	p->file_size = p->l.data_offset + (p->fixed ? size : 0);
	if (vhdx_guid_random(&p->m.page83)) {
		error_setg(errp, "%s: no random bytes for the disk's identifier", ctx->filename);
		return -1;
	}
	return 0;
}

/* The BAT: every payload entry ZERO, NOT_PRESENT, or (fixed, not zero_state) in place. */
static int write_bat(struct blockdev *file, const struct params *p)
{
	const struct vhdx_meta *m = &p->m;
	uint64_t chunk = VHDX_MIB / 8, state = p->zero_state ? VHDX_BLOCK_ZERO : 0;
	uint8_t *buf;
	int ret = 0;

	if (!state && !p->fixed)
		return 0; /* all NOT_PRESENT: the file's zeroes */
	buf = malloc(VHDX_MIB);
	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < m->bat_entries && !ret; i += chunk) {
		uint64_t k = MIN(chunk, m->bat_entries - i);

		memset(buf, 0, VHDX_MIB);
		for (uint64_t j = 0; j < k; j++) {
			uint64_t idx = i + j, block = idx - idx / (m->chunk_ratio + 1ull), e = state;

			if (vhdx_bat_is_bitmap(m, idx))
				continue;
			if (!state)
				e = (p->l.data_offset + block * m->block_size) |
				    VHDX_BLOCK_FULLY_PRESENT;
			vhdx_put64(buf + 8 * j, e);
		}
		ret = blockdev_pwrite(file, m->bat_offset + 8 * i, buf, 8 * k);
	}
	free(buf);
	return ret;
}

/* The header section, the metadata region and the BAT. */
static int write_image(struct blockdev *file, const struct params *p)
{
	struct vhdx_header h = {
		.seq = 1, .version = 1, .log_length = p->l.log_length,
		.log_offset = p->l.log_offset,
	};
	uint8_t *buf = malloc(2 * VHDX_METADATA_TABLE_LEN);
	int ret = -ENOMEM;

	if (!buf)
		return ret;
	ret = vhdx_guid_random(&h.file_write) ?: vhdx_guid_random(&h.data_write);
	if (ret)
		goto out;
	vhdx_file_id_put(buf);
	ret = blockdev_pwrite(file, 0, buf, 64 * VHDX_KIB);
	for (int i = 0; i < 2 && !ret; i++, h.seq++) {
		vhdx_header_put(&h, buf);
		ret = blockdev_pwrite(file, i ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF, buf,
				      VHDX_HEADER_LEN);
	}
	if (ret)
		goto out;
	vhdx_region_put(&p->l, buf);
	ret = blockdev_pwrite(file, VHDX_REGION1_OFF, buf, VHDX_REGION_LEN) ?:
	      blockdev_pwrite(file, VHDX_REGION2_OFF, buf, VHDX_REGION_LEN);
	if (ret)
		goto out;
	vhdx_metadata_put(&p->m, buf);
	ret = blockdev_pwrite(file, p->l.meta_offset, buf, 2 * VHDX_METADATA_TABLE_LEN) ?:
	      write_bat(file, p);
out:
	free(buf);
	return ret;
}

int vhdx_create(const struct blockdev_create_ctx *ctx, struct error **errp)
{
	struct blockdev_opts o = { 0 };
	struct blockdev *file;
	struct params p;
	int ret;

	if (params_of(ctx, &p, errp))
		return -1;
	if (blockdev_file_create(ctx->filename, p.file_size, BLOCKDEV_PREALLOC_OFF,
				 blockdev_create_bool(ctx, "nocow"), errp))
		return -1;
	file = blockdev_open_file(ctx->filename, &o, errp);
	if (!file)
		return -1;
	ret = write_image(file, &p);
	if (ret) {
		error_setg_errno(errp, ret, "'%s': writing the VHDX image", ctx->filename);
		goto out;
	}
	if (p.fixed && p.prealloc != BLOCKDEV_PREALLOC_OFF &&
	    blockdev_file_preallocate(file, p.l.data_offset, p.m.disk_size, p.prealloc, errp)) {
		ret = -1;
		goto out;
	}
	ret = blockdev_flush(file);
	if (ret)
		error_setg_errno(errp, ret, "'%s': flushing the new VHDX image", ctx->filename);
out:
	blockdev_close(file);
	return ret ? -1 : 0;
}
