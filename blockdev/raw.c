/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `raw` format: the guest sees its file child byte for byte. Every op forwards to bs->file;
 * map() is the identity, so the fast path goes straight to the file's fd.
 *
 * A raw node whose format was probed (the user did not say raw) refuses, with -EPERM, a write
 * that would make its first bytes probe as another format: otherwise a guest could write a
 * qcow2 header naming a host file as its backing file, and the next probing open would follow
 * it. Such writes (only those touching the first RAW_GUARD bytes) take the slow path, where
 * the new first sector is checked; with format=raw given, nothing is checked.
 */
#include <errno.h>
#include <string.h>

#include "blockdev/bitmap.h"
#include "blockdev/internal.h"
#include "common/util.h"

#define RAW_GUARD 512 /* bytes blockdev_probe() looks at */

static int raw_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	/* whole sectors, as qemu sizes a raw image: a partial last sector reads its tail as
	 * zeroes (the file reads zeroes past its end) and a write there grows the file */
	bs->size = ALIGN_UP(bs->file->size, 512);
	return 0;
}

static int raw_map(struct blockdev *bs, enum blockdev_op op, uint64_t offset, uint64_t len,
		   struct blockdev_extent *ext)
{
	if (op == BLOCKDEV_OP_WRITE && bs->probed && offset < RAW_GUARD) {
		*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_SLOW,
						 .len = MIN(len, RAW_GUARD - offset) };
		return 0;
	}
	return blockdev_map(bs->file, op, offset, len, ext);
}

/* -EPERM when writing @iov at @offset would make the first bytes claim another format. */
static int guard_first_sector(struct blockdev *bs, uint64_t offset, const struct iovec *iov,
			      int iovcnt)
{
	uint64_t len = blockdev_iov_size(iov, iovcnt);
	uint64_t n = MIN(RAW_GUARD, MAX(bs->size, offset + len));
	const struct blockdev_driver *drv;
	uint8_t buf[RAW_GUARD];
	int ret = blockdev_pread(bs->file, 0, buf, n); /* zeroes past the end of the file */

	if (ret)
		return ret;
	blockdev_iov_to_buf(iov, iovcnt, 0, buf + offset, MIN(len, n - offset));
	drv = blockdev_probe(buf, n, bs->filename, NULL);
	return drv == &blockdev_raw ? 0 : -EPERM;
}

static int raw_preadv(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return blockdev_preadv(bs->file, offset, iov, iovcnt);
}

static int raw_pwritev(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	if (bs->probed && offset < RAW_GUARD) {
		int ret = guard_first_sector(bs, offset, iov, iovcnt);

		if (ret)
			return ret;
	}
	return blockdev_pwritev(bs->file, offset, iov, iovcnt);
}

/*
 * The slow-path worker's writes found together go on to the file's group commit when it has one
 * (an NBD export pipelines them), each write as raw_pwritev() would do it otherwise: one that
 * touches a probed image's first sector is checked alone.
 */
static void raw_pwritev_group(struct blockdev *bs, struct blockdev_write *w, size_t n)
{
	bool alone = !bs->file->drv->pwritev_group;

	for (size_t i = 0; i < n && !alone; i++)
		alone = bs->probed && w[i].offset < RAW_GUARD;
	if (alone) {
		for (size_t i = 0; i < n; i++)
			w[i].ret = raw_pwritev(bs, w[i].offset, w[i].iov, w[i].iovcnt);
		return;
	}
	bs->file->drv->pwritev_group(bs->file, w, n);
	for (size_t i = 0; i < n; i++) /* as blockdev_pwritev() on the file would */
		blockdev_bitmaps_mark(bs->file, w[i].offset, blockdev_iov_size(w[i].iov, w[i].iovcnt));
}

/* The worker's reads found together, to the file's preadv_group when it has one (NBD). */
static void raw_preadv_group(struct blockdev *bs, struct blockdev_write *r, size_t n)
{
	if (bs->file->drv->preadv_group) {
		bs->file->drv->preadv_group(bs->file, r, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		r[i].ret = raw_preadv(bs, r[i].offset, r[i].iov, r[i].iovcnt);
}

static int raw_discard(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	return blockdev_discard(bs->file, offset, len);
}

static int raw_write_zeroes(struct blockdev *bs, uint64_t offset, uint64_t len,
			    unsigned int flags)
{
	return blockdev_write_zeroes(bs->file, offset, len, flags);
}

static int raw_block_status(struct blockdev *bs, uint64_t offset, uint64_t len, uint64_t *pnum,
			    uint64_t *map_offset, struct blockdev **map_file)
{
	return blockdev_block_status(bs->file, offset, len, pnum, map_offset, map_file);
}

static int raw_truncate(struct blockdev *bs, uint64_t size, struct error **errp)
{
	if (blockdev_truncate(bs->file, size, errp) < 0)
		return -1;
	bs->size = size;
	return 0;
}

const struct blockdev_driver blockdev_raw = {
	.name = "raw",
	.open = raw_open,
	.map = raw_map,
	.preadv = raw_preadv,
	.pwritev = raw_pwritev,
	.pwritev_group = raw_pwritev_group,
	.preadv_group = raw_preadv_group,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
	.truncate = raw_truncate,
};
