/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `raw` format: the guest sees its file child byte for byte. Every op forwards to bs->file;
 * map() is the identity, so the fast path goes straight to the file's fd.
 */
#include <errno.h>

#include "blockdev/internal.h"

static int raw_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	bs->size = bs->file->size;
	return 0;
}

static int raw_map(struct blockdev *bs, enum blockdev_op op, uint64_t offset, uint64_t len,
		   struct blockdev_extent *ext)
{
	return blockdev_map(bs->file, op, offset, len, ext);
}

static int raw_preadv(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return blockdev_preadv(bs->file, offset, iov, iovcnt);
}

static int raw_pwritev(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return blockdev_pwritev(bs->file, offset, iov, iovcnt);
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
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
	.truncate = raw_truncate,
};
