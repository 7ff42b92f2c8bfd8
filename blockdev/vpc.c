/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `vpc` format driver: VHD images, fixed and dynamic (blockdev/vpc.h), read and written,
 * live too.
 *
 * A fixed image is the disk's bytes then the footer: every op goes to the file at the same
 * offset, and map() hands the whole range to the fast path. A dynamic image maps through its
 * BAT, kept in a block table (blocktab.c, which says who owns what): reads of allocated blocks
 * and writes to them are fast-path DATA extents, unallocated blocks read as zeroes, and a write
 * to one takes the slow path, which places the block after the end of the file (never over
 * bytes a crash may have left past the last block): its sector bitmap (all sectors present,
 * as QEMU writes it), its data from a 4 KiB-aligned offset (so that O_DIRECT I/O on a new
 * image needs no bounce), and the footer again after it. The BAT entries
 * of new blocks are written at the next flush, after the file is flushed (so that no entry on
 * disk points past what the file holds), and when the image is closed (flushed first unless
 * opened with close-flush=off, as vireo-img convert -t unsafe opens its new target).
 *
 * Options: force_size_calc=chs|current_size (QEMU's: which of the footer's sizes is the disk's
 * when the creator application does not tell), close-flush=on|off.
 */
#include "blockdev/vpc.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockdev/blocktab.h"
#include "blockdev/create.h"
#include "blockdev/internal.h"
#include "common/parse.h"
#include "common/util.h"

#define VPC_DATA_ALIGN 4096 /* where a new block's data starts */

struct vpc {
	struct blockdev *file;
	struct vpc_footer footer;
	uint8_t footer_buf[VPC_FOOTER_LEN];
	bool dynamic;
	bool close_flush;
	/* dynamic images */
	struct vpc_dyn dyn;
	uint32_t bitmap_size;
	uint8_t *bitmap;    /* a new block's sector bitmap: all ones */
	struct blocktab_disk bat; /* under t.lock */
	uint64_t next;      /* where the next block's room starts; under t.lock */
	struct blocktab t;
};

static int vpc_probe_score(const uint8_t *buf, size_t len, const char *filename)
{
	return vpc_probe(buf, len) ? 100 : 0;
}

/* The footer: the copy at offset 0 (dynamic images), else (or if that one's checksum shows it
 * damaged) the one in the last sector. *@at is where it was found. */
static int read_footer(struct vpc *v, uint64_t file_size, uint64_t *at, struct error **errp)
{
	uint8_t buf[VPC_FOOTER_LEN];
	struct error *first = NULL;
	int ret;

	if (file_size < VPC_FOOTER_LEN) {
		error_setg(errp, "the file (%" PRIu64 " bytes) is too short for a VHD footer",
			   file_size);
		return -1;
	}
	ret = blockdev_pread(v->file, 0, buf, sizeof(buf));
	if (!ret && vpc_probe(buf, sizeof(buf))) {
		*at = 0;
		if (vpc_footer_intact(buf))
			return vpc_footer_parse(buf, &v->footer, errp); /* intact: it says */
		vpc_footer_parse(buf, &v->footer, &first);
	}
	*at = file_size - VPC_FOOTER_LEN;
	if (!ret)
		ret = blockdev_pread(v->file, *at, buf, sizeof(buf));
	if (ret) {
		error_free(first);
		error_setg_errno(errp, ret, "reading the VHD footer");
		return -1;
	}
	if (vpc_footer_parse(buf, &v->footer, first ? NULL : errp)) {
		error_propagate(errp, first);
		return -1;
	}
	error_free(first); /* the copy at the start was damaged, the one at the end is good */
	return 0;
}

static int take_options(struct vpc *v, struct blockdev_open_ctx *ctx, enum vpc_size_calc *calc,
			struct error **errp)
{
	const char *s = blockdev_opt_get(ctx, "force_size_calc");

	*calc = VPC_SIZE_AUTO;
	if (s && !strcmp(s, "chs")) {
		*calc = VPC_SIZE_CHS;
	} else if (s && !strcmp(s, "current_size")) {
		*calc = VPC_SIZE_CURRENT;
	} else if (s) {
		error_setg(errp, "force_size_calc: '%s' is not chs or current_size", s);
		return -1;
	}
	v->close_flush = true;
	s = blockdev_opt_get(ctx, "close-flush");
	return s && parse_bool("close-flush", s, &v->close_flush, errp) ? -1 : 0;
}

static int vpc_alloc(void *opaque, uint32_t idx, uint64_t *host);

/* The dynamic header, the BAT (checked against the file), and the block table from it. */
static int open_dynamic(struct vpc *v, uint64_t size, uint64_t file_size, struct error **errp)
{
	uint8_t buf[VPC_DYN_LEN];
	uint64_t meta_end;
	uint32_t nr;
	int ret;

	if (!range_within(v->footer.data_offset, VPC_DYN_LEN, file_size)) {
		error_setg(errp, "the dynamic header offset %" PRIu64 " is past the end of the "
			   "file (%" PRIu64 " bytes)", v->footer.data_offset, file_size);
		return -1;
	}
	ret = blockdev_pread(v->file, v->footer.data_offset, buf, sizeof(buf));
	if (ret) {
		error_setg_errno(errp, ret, "reading the VHD dynamic header");
		return -1;
	}
	if (vpc_dyn_parse(buf, &v->dyn, errp) ||
	    vpc_layout_check(&v->footer, &v->dyn, size, file_size, &meta_end, errp))
		return -1;
	v->bitmap_size = vpc_bitmap_size(v->dyn.block_size);
	v->bitmap = malloc(v->bitmap_size);
	if (!v->bitmap) {
		error_setg(errp, "out of memory for a block bitmap of %" PRIu32 " bytes",
			   v->bitmap_size);
		return -1;
	}
	memset(v->bitmap, 0xff, v->bitmap_size);
	/* inside the file: checked above */
	if (blocktab_disk_load(&v->bat, v->file, v->dyn.table_offset, v->dyn.max_entries, true,
			       "BAT", errp))
		return -1;
	if (vpc_bat_check(v->bat.e, v->dyn.max_entries, v->dyn.block_size, meta_end, file_size,
			  &v->next, errp))
		return -1;
	/* new blocks go after every byte of the file but its footer: never over what a crash
	 * left between the last block and the end, which would then show in them */
	v->next = MAX(v->next, file_size - VPC_FOOTER_LEN);
	nr = (uint32_t)DIV_ROUND_UP(size, v->dyn.block_size); /* <= max_entries: checked */
	if (blocktab_init(&v->t, nr, (unsigned int)__builtin_ctz(v->dyn.block_size), v->file,
			  vpc_alloc, v)) {
		error_setg(errp, "out of memory for a table of %" PRIu32 " blocks", nr);
		return -1;
	}
	for (uint32_t i = 0; i < nr; i++)
		if (v->bat.e[i] != VPC_BAT_FREE)
			blocktab_set(&v->t, i, (uint64_t)v->bat.e[i] * VPC_SECTOR + v->bitmap_size);
	return 0;
}

static void free_state(struct vpc *v)
{
	blocktab_destroy(&v->t);
	blocktab_disk_free(&v->bat);
	free(v->bitmap);
	free(v);
}

static int vpc_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct vpc *v = calloc(1, sizeof(*v));
	uint64_t file_size = bs->file->size, at, size;
	enum vpc_size_calc calc;

	if (!v) {
		error_setg(errp, "out of memory");
		return -1;
	}
	v->file = bs->file;
	if (take_options(v, ctx, &calc, errp) || read_footer(v, file_size, &at, errp))
		goto fail;
	vpc_footer_put(&v->footer, v->footer_buf); /* the same footer, rewritten as it was */
	size = vpc_disk_size(&v->footer, calc);
	if (size > VPC_MAX_SECTORS * VPC_SECTOR) {
		error_setg(errp, "the disk size %" PRIu64 " is over 2040 GiB, the largest VHD", size);
		goto fail;
	}
	v->dynamic = v->footer.type == VPC_TYPE_DYNAMIC;
	if (v->dynamic) {
		if (open_dynamic(v, size, file_size, errp))
			goto fail;
	} else if (at == 0) {
		error_setg(errp, "the footer of a fixed disk is in its first sector, where its "
			   "data starts (a fixed VHD's footer is its last sector)");
		goto fail;
	} else if (size > file_size - VPC_FOOTER_LEN) {
		error_setg(errp, "the fixed disk's %" PRIu64 " bytes do not fit before its footer "
			   "(the file has %" PRIu64 " bytes: truncated?)", size, file_size);
		goto fail;
	}
	bs->size = size;
	bs->opaque = v;
	return 0;
fail:
	error_prepend(errp, "'%s'", bs->filename);
	free_state(v);
	return -1;
}

/*
 * Writes the BAT sectors holding entries not written yet (t.lock held): after a flush of the
 * file when @ordered, so that the blocks they point to are stable first.
 */
static int write_bat(struct vpc *v, bool ordered)
{
	if (!v->bat.dirty_any)
		return 0;
	return (ordered ? blockdev_flush(v->file) : 0) ?: blocktab_disk_write(&v->bat, v->file);
}

static void vpc_close(struct blockdev *bs)
{
	struct vpc *v = bs->opaque;

	if (!v)
		return;
	if (v->dynamic && !bs->read_only) {
		pthread_mutex_lock(&v->t.lock);
		if (write_bat(v, v->close_flush))
			fprintf(stderr, "vireo: '%s': writing the BAT failed: blocks written since "
				"the last flush are lost\n", bs->filename);
		pthread_mutex_unlock(&v->t.lock);
	}
	if (!bs->read_only && v->close_flush)
		blockdev_flush(v->file);
	free_state(v);
	bs->opaque = NULL;
}

/* blocktab_alloc_fn: a new block at the end of the file (t.lock held). */
static int vpc_alloc(void *opaque, uint32_t idx, uint64_t *host)
{
	struct vpc *v = opaque;
	uint64_t start = ALIGN_UP(v->next, (uint64_t)VPC_DATA_ALIGN);
	uint64_t data = ALIGN_UP(start + v->bitmap_size, (uint64_t)VPC_DATA_ALIGN);
	uint64_t bitmap = data - v->bitmap_size, end = data + v->dyn.block_size;
	int ret;

	if (bitmap / VPC_SECTOR >= VPC_BAT_FREE)
		return -EFBIG; /* a BAT entry cannot point there */
	/* the footer after the block extends the file over it: it reads as zeroes */
	ret = blockdev_pwrite(v->file, bitmap, v->bitmap, v->bitmap_size) ?:
	      blockdev_pwrite(v->file, end, v->footer_buf, VPC_FOOTER_LEN);
	if (ret)
		return ret;
	blocktab_disk_set(&v->bat, idx, (uint32_t)(bitmap / VPC_SECTOR));
	v->next = end;
	*host = data;
	return 0;
}

static int vpc_map(struct blockdev *bs, enum blockdev_op op, uint64_t off, uint64_t len,
		   struct blockdev_extent *ext)
{
	struct vpc *v = bs->opaque;

	if (v->dynamic)
		return blocktab_map(&v->t, op, off, len, ext);
	*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_DATA, .len = len,
					 .file = v->file, .host_offset = off };
	return 0;
}

static int vpc_preadv(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct vpc *v = bs->opaque;

	return v->dynamic ? blocktab_preadv(&v->t, off, iov, iovcnt) :
			    blockdev_preadv(v->file, off, iov, iovcnt);
}

static int vpc_pwritev(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct vpc *v = bs->opaque;

	return v->dynamic ? blocktab_pwritev(&v->t, off, iov, iovcnt) :
			    blockdev_pwritev(v->file, off, iov, iovcnt);
}

static int vpc_flush(struct blockdev *bs)
{
	struct vpc *v = bs->opaque;
	int ret = 0;

	if (v->dynamic) {
		pthread_mutex_lock(&v->t.lock);
		ret = write_bat(v, true);
		pthread_mutex_unlock(&v->t.lock);
	}
	return ret ?: blockdev_flush(v->file);
}

static int vpc_discard(struct blockdev *bs, uint64_t off, uint64_t len)
{
	struct vpc *v = bs->opaque;

	return v->dynamic ? blocktab_discard(&v->t, off, len) : blockdev_discard(v->file, off, len);
}

static int vpc_write_zeroes(struct blockdev *bs, uint64_t off, uint64_t len, unsigned int flags)
{
	struct vpc *v = bs->opaque;

	return v->dynamic ? blocktab_write_zeroes(&v->t, off, len, flags) :
			    blockdev_write_zeroes(v->file, off, len, flags);
}

static int vpc_block_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum,
			    uint64_t *map_offset, struct blockdev **map_file)
{
	struct vpc *v = bs->opaque;
	int st;

	if (v->dynamic)
		return blocktab_block_status(&v->t, off, len, pnum, map_offset, map_file);
	/* as QEMU: the disk's bytes are data, and zeroes where the file has a hole */
	st = blockdev_block_status(v->file, off, len, pnum, map_offset, map_file);
	if (st < 0)
		return st;
	*map_offset = off;
	*map_file = v->file;
	return (st & BLOCKDEV_STATUS_ZERO) | BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED |
	       BLOCKDEV_STATUS_OFFSET;
}

static int vpc_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	struct vpc *v = bs->opaque;

	if (v->dynamic)
		info->cluster_size = v->dyn.block_size;
	return 0;
}

/* ---- creating an image ----------------------------------------------------------------- */

static const struct blockdev_create_opt_desc vpc_create_opts[] = {
	{ "subformat", BLOCKDEV_CREATE_STR, NULL, "dynamic|fixed",
	  "Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} " },
	{ "force_size", BLOCKDEV_CREATE_BOOL, NULL, NULL,
	  "Force disk size calculation to use the actual size specified, rather than using the "
	  "nearest CHS-based calculation" },
	{ "preallocation", BLOCKDEV_CREATE_STR, NULL, "off|falloc|full",
	  "Preallocation mode (allowed values: off, falloc, full)" },
	{ "nocow", BLOCKDEV_CREATE_BOOL, NULL, NULL,
	  "Turn off copy-on-write (valid only on btrfs)" },
	{ NULL },
};

/* A new image's footer, of @type, for a disk of @size bytes (rounded as vpc_create_size). */
static int new_footer(uint64_t size, bool force, uint32_t type, struct vpc_footer *f,
		      struct error **errp)
{
	int ret;

	memset(f, 0, sizeof(*f));
	if (vpc_create_size(size, force, f, errp))
		return -1;
	f->features = 2; /* "reserved": always set */
	f->version = 0x00010000;
	f->data_offset = type == VPC_TYPE_DYNAMIC ? VPC_FOOTER_LEN : VPC_NO_OFFSET;
	f->timestamp = (uint32_t)((uint64_t)time(NULL) - VPC_EPOCH);
	f->creator_version = 0x00050003; /* Virtual PC 2007, as qemu-img writes */
	memcpy(f->creator_os, "Wi2k", 4);
	f->type = type;
	ret = blockdev_create_uuid(f->uuid);
	if (ret) {
		error_setg_errno(errp, ret, "generating the image's UUID");
		return -1;
	}
	return 0;
}

/* Footer copy, dynamic header, BAT (all blocks free), footer: a dynamic disk with no block. */
static int write_dynamic(struct blockdev *file, struct vpc_footer *f)
{
	struct vpc_dyn d = { .data_offset = VPC_NO_OFFSET, .version = 0x00010000,
			     .table_offset = VPC_FOOTER_LEN + VPC_DYN_LEN,
			     .block_size = VPC_BLOCK_DEFAULT };
	uint64_t bat_len;
	uint8_t *buf;
	int ret;

	d.max_entries = (uint32_t)DIV_ROUND_UP(f->current_size, (uint64_t)VPC_BLOCK_DEFAULT);
	bat_len = ALIGN_UP((uint64_t)d.max_entries * 4, (uint64_t)VPC_SECTOR);
	buf = malloc(d.table_offset + bat_len + VPC_FOOTER_LEN);
	if (!buf)
		return -ENOMEM;
	vpc_footer_put(f, buf);
	vpc_dyn_put(&d, buf + VPC_FOOTER_LEN);
	memset(buf + d.table_offset, 0xff, bat_len);
	memcpy(buf + d.table_offset + bat_len, buf, VPC_FOOTER_LEN);
	ret = blockdev_pwrite(file, 0, buf, d.table_offset + bat_len + VPC_FOOTER_LEN);
	free(buf);
	return ret;
}

static int vpc_create(const struct blockdev_create_ctx *ctx, struct error **errp)
{
	const char *sub = blockdev_create_str(ctx, "subformat");
	const char *pre = blockdev_create_str(ctx, "preallocation");
	bool fixed = sub && !strcmp(sub, "fixed");
	enum blockdev_prealloc mode = pre ? blockdev_prealloc_parse(pre) : BLOCKDEV_PREALLOC_OFF;
	struct blockdev_opts o = { 0 };
	struct vpc_footer f;
	uint8_t buf[VPC_FOOTER_LEN];
	struct blockdev *file;
	int ret;

	if (!fixed && mode != BLOCKDEV_PREALLOC_OFF) {
		error_setg(errp, "preallocation: a dynamic vpc image allocates its blocks as they "
			   "are written (off only; subformat=fixed preallocates)");
		return -1;
	}
	if (new_footer(ctx->size, blockdev_create_bool(ctx, "force_size"),
		       fixed ? VPC_TYPE_FIXED : VPC_TYPE_DYNAMIC, &f, errp) ||
	    blockdev_file_create(ctx->filename, fixed ? f.current_size + VPC_FOOTER_LEN : 0,
				 fixed ? mode : BLOCKDEV_PREALLOC_OFF,
				 blockdev_create_bool(ctx, "nocow"), errp))
		return -1;
	file = blockdev_open_file(ctx->filename, &o, errp);
	if (!file)
		return -1;
	if (fixed) {
		vpc_footer_put(&f, buf);
		ret = blockdev_pwrite(file, f.current_size, buf, sizeof(buf));
	} else {
		ret = write_dynamic(file, &f);
	}
	if (!ret)
		ret = blockdev_flush(file);
	blockdev_close(file);
	if (ret) {
		error_setg_errno(errp, ret, "'%s': writing the VHD metadata", ctx->filename);
		return -1;
	}
	return 0;
}

const struct blockdev_driver blockdev_vpc = {
	.name = "vpc",
	.probe = vpc_probe_score,
	.open = vpc_open,
	.close = vpc_close,
	.map = vpc_map,
	.preadv = vpc_preadv,
	.pwritev = vpc_pwritev,
	.flush = vpc_flush,
	.discard = vpc_discard,
	.write_zeroes = vpc_write_zeroes,
	.block_status = vpc_block_status,
	.info = vpc_info,
	.create_opts = vpc_create_opts,
	.create = vpc_create,
};
