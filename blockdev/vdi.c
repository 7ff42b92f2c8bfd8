/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `vdi` format driver: VirtualBox images, static and dynamic (blockdev/vdi.h), read and
 * written, live too.
 *
 * Both map through the block map, kept in a block table (blocktab.c, which says who owns
 * what): allocated blocks are fast-path DATA extents, unallocated and discarded ones read as
 * zeroes, and a write to one takes the slow path, which adds a data block after the last one
 * the map names (where QEMU adds its own: the data area's indexes are bounded), zeroing what a
 * crash may have left there, or writing its last 4 KiB past the end of the file, so that the
 * file covers it and its unwritten bytes read as zeroes. The header's count of
 * allocated blocks and the new map entries are written at the next flush (the count first: it
 * may run ahead of the map after a crash, never behind it, see write_map), the map after a
 * flush of the file, and when the image is closed (flushed first unless opened with
 * close-flush=off).
 *
 * A block map with an entry past the data area's blocks, or two entries sharing a data block,
 * is read (read-only) but not written: vireo-img check reports both, as qemu-img check does,
 * and check -r (an open for repair) says that vdi images are not repaired, as qemu-img does.
 */
#include "blockdev/vdi.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blocktab.h"
#include "blockdev/create.h"
#include "blockdev/internal.h"
#include "common/parse.h"
#include "common/util.h"

#define TRAILER 4096 /* zeroes written at the end of a new block: the file covers it */
#define DATA_ALIGN 4096 /* a new image's data area starts there */

struct vdi {
	struct blockdev *file;
	struct vdi_header h;
	bool close_flush;
	struct blocktab_disk map; /* the block map; its dirty_any also stands for the header's
				     count; under t.lock */
	uint32_t next;      /* the data block index a new block takes; under t.lock */
	uint64_t file_end;  /* bytes the file holds; under t.lock */
	uint8_t *zeroes;    /* TRAILER bytes */
	struct blocktab t;
};

static int vdi_probe_score(const uint8_t *buf, size_t len, const char *filename)
{
	return vdi_probe(buf, len) ? 100 : 0;
}

static int vdi_alloc(void *opaque, uint32_t idx, uint64_t *host);

/* The block map, checked, and the block table from it. */
static int load_map(struct vdi *v, struct blockdev *bs, struct blockdev_open_ctx *ctx,
		    uint64_t file_size, struct error **errp)
{
	uint32_t n = v->h.blocks_in_image, nr;
	struct vdi_map_report r;

	/* inside the file: checked */
	if (blocktab_disk_load(&v->map, v->file, v->h.offset_bmap, n, false, "block map", errp) ||
	    vdi_map_check(&v->h, v->map.e, file_size, false, &r, errp))
		return -1;
	if ((r.bad_index || r.duplicates) && !bs->read_only && !ctx->opts->repair) {
		error_setg(errp, "the block map has %" PRIu32 " entries past the data area and %"
			   PRIu32 " sharing a data block: open it read-only (vireo-img check "
			   "lists them)", r.bad_index, r.duplicates);
		return -1;
	}
	/* after every block the map names: the count QEMU places its next block at, as long as
	 * the map is dense (it is, unless another tool left holes in it) */
	v->next = r.max_index;
	v->file_end = file_size;
	nr = (uint32_t)DIV_ROUND_UP(v->h.disk_size, v->h.block_size); /* <= n: checked */
	if (blocktab_init(&v->t, nr, (unsigned int)__builtin_ctz(v->h.block_size), v->file,
			  vdi_alloc, v)) {
		error_setg(errp, "out of memory for a table of %" PRIu32 " blocks", nr);
		return -1;
	}
	v->t.recurse = v->h.type == VDI_TYPE_STATIC;
	for (uint32_t i = 0; i < nr; i++)
		if (v->map.e[i] != VDI_UNALLOCATED && v->map.e[i] != VDI_DISCARDED)
			blocktab_set(&v->t, i, vdi_block_offset(&v->h, v->map.e[i]));
	return 0;
}

static void free_state(struct vdi *v)
{
	blocktab_destroy(&v->t);
	blocktab_disk_free(&v->map);
	free(v->zeroes);
	free(v);
}

static int vdi_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct vdi *v = calloc(1, sizeof(*v));
	uint8_t buf[VDI_HEADER_LEN];
	const char *s;
	int ret;

	if (!v) {
		error_setg(errp, "out of memory");
		return -1;
	}
	v->file = bs->file;
	v->close_flush = true;
	s = blockdev_opt_get(ctx, "close-flush");
	if (s && parse_bool("close-flush", s, &v->close_flush, errp))
		goto fail;
	if (bs->file->size < VDI_HEADER_LEN) {
		error_setg(errp, "the file (%" PRIu64 " bytes) is too short for a VDI header",
			   bs->file->size);
		goto fail;
	}
	ret = blockdev_pread(v->file, 0, buf, sizeof(buf));
	if (ret) {
		error_setg_errno(errp, ret, "reading the VDI header");
		goto fail;
	}
	if (vdi_header_parse(buf, bs->file->size, &v->h, errp))
		goto fail;
	/* VBoxManage convertfromraw writes odd sizes: the last sector is whole, as QEMU reads it */
	bs->size = ALIGN_UP(v->h.disk_size, 512ULL);
	v->zeroes = calloc(1, TRAILER);
	if (!v->zeroes) {
		error_setg(errp, "out of memory");
		goto fail;
	}
	if (load_map(v, bs, ctx, bs->file->size, errp))
		goto fail;
	bs->opaque = v;
	return 0;
fail:
	error_prepend(errp, "'%s'", bs->filename);
	free_state(v);
	return -1;
}

/*
 * The header's count of allocated blocks, then the map sectors not written yet (t.lock held),
 * after a flush of the file when @ordered, so that the blocks they point to are stable first.
 * The count goes first: it may run ahead of the map, never behind it, because QEMU places a
 * new block at the index the count gives (a count behind the map would make it reuse a block).
 */
static int write_map(struct vdi *v, bool ordered)
{
	uint32_t le = htole32(v->h.blocks_allocated);

	if (!v->map.dirty_any)
		return 0;
	return blockdev_pwrite(v->file, VDI_OFF_BLOCKS_ALLOCATED, &le, 4) ?:
	       (ordered ? blockdev_flush(v->file) : 0) ?:
	       blocktab_disk_write(&v->map, v->file);
}

static void vdi_close(struct blockdev *bs)
{
	struct vdi *v = bs->opaque;

	if (!v)
		return;
	if (!bs->read_only) {
		pthread_mutex_lock(&v->t.lock);
		if (write_map(v, v->close_flush))
			fprintf(stderr, "vireo: '%s': writing the block map failed: blocks written "
				"since the last flush are lost\n", bs->filename);
		pthread_mutex_unlock(&v->t.lock);
		if (v->close_flush)
			blockdev_flush(v->file);
	}
	free_state(v);
	bs->opaque = NULL;
}

/*
 * blocktab_alloc_fn: a new data block after every block the map names (t.lock held). Bytes a
 * crash left there (a block written whose map entry never was) are zeroed first, as QEMU
 * writes its new blocks whole; past the end of the file, its last 4 KiB are written, so that
 * the file covers it and it reads as zeroes.
 */
static int vdi_alloc(void *opaque, uint32_t idx, uint64_t *host)
{
	struct vdi *v = opaque;
	uint64_t at = vdi_block_offset(&v->h, v->next);
	uint32_t tail = MIN((uint32_t)TRAILER, v->h.block_size);
	int ret = 0;

	if (v->next >= v->h.blocks_in_image)
		return -ENOSPC; /* the data area has no index left (a map with holes) */
	if (at < v->file_end)
		ret = blockdev_write_zeroes(v->file, at, MIN(v->h.block_size, v->file_end - at),
					    BLOCKDEV_ZERO_MAY_UNMAP);
	if (!ret)
		ret = blockdev_pwrite(v->file, at + v->h.block_size - tail, v->zeroes, tail);
	if (ret)
		return ret;
	v->file_end = MAX(v->file_end, at + v->h.block_size);
	blocktab_disk_set(&v->map, idx, v->next++);
	v->h.blocks_allocated++;
	*host = at;
	return 0;
}

static int vdi_map(struct blockdev *bs, enum blockdev_op op, uint64_t off, uint64_t len,
		   struct blockdev_extent *ext)
{
	return blocktab_map(&((struct vdi *)bs->opaque)->t, op, off, len, ext);
}

static int vdi_preadv(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	return blocktab_preadv(&((struct vdi *)bs->opaque)->t, off, iov, iovcnt);
}

static int vdi_pwritev(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	return blocktab_pwritev(&((struct vdi *)bs->opaque)->t, off, iov, iovcnt);
}

static int vdi_flush(struct blockdev *bs)
{
	struct vdi *v = bs->opaque;
	int ret;

	pthread_mutex_lock(&v->t.lock);
	ret = write_map(v, true);
	pthread_mutex_unlock(&v->t.lock);
	return ret ?: blockdev_flush(v->file);
}

static int vdi_discard(struct blockdev *bs, uint64_t off, uint64_t len)
{
	return blocktab_discard(&((struct vdi *)bs->opaque)->t, off, len);
}

static int vdi_write_zeroes(struct blockdev *bs, uint64_t off, uint64_t len, unsigned int flags)
{
	return blocktab_write_zeroes(&((struct vdi *)bs->opaque)->t, off, len, flags);
}

static int vdi_block_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum,
			    uint64_t *map_offset, struct blockdev **map_file)
{
	return blocktab_block_status(&((struct vdi *)bs->opaque)->t, off, len, pnum, map_offset,
				     map_file);
}

static int vdi_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	info->cluster_size = ((struct vdi *)bs->opaque)->h.block_size;
	return 0;
}

/* As qemu-img check: data block indexes past the data area, shared data blocks, and a count
 * of allocated blocks in the header that the map does not match. Nothing is repaired. */
static int vdi_check(struct blockdev *bs, unsigned fix, struct blockdev_check_result *res,
		     struct error **errp)
{
	struct vdi *v = bs->opaque;
	struct vdi_map_report r;
	int ret;

	if (fix & (BLOCKDEV_FIX_LEAKS | BLOCKDEV_FIX_ERRORS)) {
		error_setg(errp, "'%s': vdi images cannot be repaired (check them without -r)",
			   bs->filename);
		return -EOPNOTSUPP;
	}
	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&v->t.lock);
	ret = vdi_map_check(&v->h, v->map.e, bs->file->size, fix & BLOCKDEV_CHECK_VERBOSE, &r, errp);
	if (!ret && r.allocated != v->h.blocks_allocated) {
		if (fix & BLOCKDEV_CHECK_VERBOSE)
			fprintf(stderr, "ERROR: allocated blocks mismatch, is %" PRIu32 ", should "
				"be %" PRIu32 "\n", r.allocated, v->h.blocks_allocated);
		res->corruptions++;
	}
	pthread_mutex_unlock(&v->t.lock);
	if (ret) {
		error_prepend(errp, "'%s'", bs->filename);
		return -1;
	}
	res->corruptions += r.bad_index + r.duplicates;
	return 0;
}

/* ---- creating an image ----------------------------------------------------------------- */

static const struct blockdev_create_opt_desc vdi_create_opts[] = {
	{ "static", BLOCKDEV_CREATE_BOOL, "off", NULL, "VDI static (pre-allocated) image" },
	{ "preallocation", BLOCKDEV_CREATE_STR, NULL, "off|falloc|full",
	  "Preallocation mode (allowed values: off, falloc, full)" },
	{ "nocow", BLOCKDEV_CREATE_BOOL, NULL, NULL,
	  "Turn off copy-on-write (valid only on btrfs)" },
	{ NULL },
};

/* A new image's header: @size bytes (whole sectors) in 1 MiB blocks. */
static int new_header(uint64_t size, bool is_static, struct vdi_header *h, struct error **errp)
{
	uint64_t blocks;
	int ret;

	size = ALIGN_UP(size, 512ULL);
	if (size > VDI_DISK_MAX) {
		error_setg(errp, "size: %" PRIu64 " bytes is larger than a VDI image can be (%llu)",
			   size, VDI_DISK_MAX);
		return -1;
	}
	blocks = DIV_ROUND_UP(size, (uint64_t)VDI_BLOCK_DEFAULT);
	memset(h, 0, sizeof(*h));
	snprintf(h->text, sizeof(h->text), "<<< QEMU VM Virtual Disk Image >>>\n");
	h->signature = VDI_SIGNATURE;
	h->version = VDI_VERSION_1_1;
	h->header_size = VDI_HEADER_SIZE_1_1;
	h->type = is_static ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC;
	h->offset_bmap = VDI_HEADER_LEN;
	h->offset_data = (uint32_t)ALIGN_UP(VDI_HEADER_LEN + blocks * 4, (uint64_t)DATA_ALIGN);
	h->sector_size = 512;
	h->disk_size = size;
	h->block_size = VDI_BLOCK_DEFAULT;
	h->blocks_in_image = (uint32_t)blocks;
	h->blocks_allocated = is_static ? (uint32_t)blocks : 0;
	ret = blockdev_create_uuid(h->uuid_image) ?: blockdev_create_uuid(h->uuid_last_snap);
	if (ret) {
		error_setg_errno(errp, ret, "generating the image's UUIDs");
		return -1;
	}
	return 0;
}

static int vdi_create(const struct blockdev_create_ctx *ctx, struct error **errp)
{
	const char *pre = blockdev_create_str(ctx, "preallocation");
	bool is_static = blockdev_create_bool(ctx, "static");
	enum blockdev_prealloc mode = pre ? blockdev_prealloc_parse(pre) : BLOCKDEV_PREALLOC_OFF;
	struct blockdev_opts o = { 0 };
	struct blockdev *file;
	struct vdi_header h;
	uint8_t *buf;
	uint64_t meta;
	int ret;

	if (!is_static && mode != BLOCKDEV_PREALLOC_OFF) {
		error_setg(errp, "preallocation: a dynamic vdi image allocates its blocks as they "
			   "are written (off only; static=on preallocates)");
		return -1;
	}
	if (new_header(ctx->size, is_static, &h, errp))
		return -1;
	if (blockdev_file_create(ctx->filename,
				 vdi_block_offset(&h, is_static ? h.blocks_in_image : 0),
				 is_static ? mode : BLOCKDEV_PREALLOC_OFF,
				 blockdev_create_bool(ctx, "nocow"), errp))
		return -1;
	meta = h.offset_bmap + (uint64_t)h.blocks_in_image * 4;
	buf = malloc(meta);
	if (!buf) {
		error_setg(errp, "out of memory for a block map of %" PRIu32 " entries",
			   h.blocks_in_image);
		return -1;
	}
	vdi_header_put(&h, buf);
	for (uint32_t i = 0; i < h.blocks_in_image; i++) {
		uint32_t le = htole32(is_static ? i : VDI_UNALLOCATED);

		memcpy(buf + h.offset_bmap + (uint64_t)i * 4, &le, 4);
	}
	file = blockdev_open_file(ctx->filename, &o, errp);
	ret = file ? blockdev_pwrite(file, 0, buf, meta) ?: blockdev_flush(file) : -1;
	free(buf);
	if (!file)
		return -1;
	blockdev_close(file);
	if (ret) {
		error_setg_errno(errp, ret, "'%s': writing the VDI header", ctx->filename);
		return -1;
	}
	return 0;
}

const struct blockdev_driver blockdev_vdi = {
	.name = "vdi",
	.probe = vdi_probe_score,
	.open = vdi_open,
	.close = vdi_close,
	.map = vdi_map,
	.preadv = vdi_preadv,
	.pwritev = vdi_pwritev,
	.flush = vdi_flush,
	.discard = vdi_discard,
	.write_zeroes = vdi_write_zeroes,
	.block_status = vdi_block_status,
	.info = vdi_info,
	.check = vdi_check,
	.create_opts = vdi_create_opts,
	.create = vdi_create,
};
