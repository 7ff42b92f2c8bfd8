/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The block table of dynamic VHD and VDI images (blocktab.h).
 *
 * Who owns what.
 *  - t->host[] holds, per block, the host offset of its data or 0. An entry goes from 0 to an
 *    offset once (a block is never freed or moved while the node is open) and never changes
 *    again, so map() on any iothread reads it with one acquire load and no lock, and a range
 *    it mapped stays the block's for as long as the request takes.
 *  - t->lock serializes the allocation of blocks and whatever metadata the format keeps for
 *    them (its table's copy in the file, its dirty marks, its flush). Nothing on the fast path
 *    takes it: a write to an unallocated block is SLOW, and the slow-path worker or a tool's
 *    thread allocates it here.
 *  - Allocating: under the lock the entry is read again (another writer may have placed the
 *    block meanwhile), the format's alloc callback places the block at the end of the file,
 *    extending the file over it (so its bytes read as zeroes until written), and the entry is
 *    published with a release store. The data is written after the lock is dropped, like any
 *    write to an allocated block: a reader racing that write sees zeroes or the new data, as a
 *    read racing any write may, and writers of other parts of the block proceed in parallel
 *    (vireo-img convert's workers).
 *  - The format writes its table entries to the file only at its flush (and close), after a
 *    flush of the file: on disk, an entry never points at a block the file does not cover yet.
 */
#include "blockdev/blocktab.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "blockdev/internal.h"
#include "common/util.h"

int blocktab_init(struct blocktab *t, uint32_t nr, unsigned int bits, struct blockdev *file,
		  blocktab_alloc_fn *alloc, void *opaque)
{
	*t = (struct blocktab){ .nr = nr, .bits = bits, .file = file, .alloc = alloc,
				.opaque = opaque };
	t->host = calloc(nr ? nr : 1, sizeof(*t->host));
	if (!t->host)
		return -1;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void blocktab_destroy(struct blocktab *t)
{
	if (!t->host)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->host);
	t->host = NULL;
}

/* [@off, @off + *@len) cut at the end of its block; the block's index. */
static uint32_t piece(const struct blocktab *t, uint64_t off, uint64_t *len)
{
	uint64_t size = 1ULL << t->bits;

	*len = MIN(*len, size - (off & (size - 1)));
	return (uint32_t)(off >> t->bits);
}

static uint64_t in_block(const struct blocktab *t, uint64_t off)
{
	return off & ((1ULL << t->bits) - 1);
}

int blocktab_map(struct blocktab *t, enum blockdev_op op, uint64_t off, uint64_t len,
		 struct blockdev_extent *ext)
{
	uint32_t idx = piece(t, off, &len);
	uint64_t host;

	if (idx >= t->nr)
		return -EIO;
	host = blocktab_get(t, idx);
	ext->len = len;
	if (host) {
		/* DISCARD punches the range in the file, WRITE_ZEROES zeroes it */
		ext->kind = BLOCKDEV_EXTENT_DATA;
		ext->file = t->file;
		ext->host_offset = host + in_block(t, off);
	} else {
		/* reads and zeroes need nothing; a write allocates on the slow path */
		ext->kind = op == BLOCKDEV_OP_WRITE ? BLOCKDEV_EXTENT_SLOW : BLOCKDEV_EXTENT_ZERO;
	}
	return 0;
}

/* Reads or writes [@skip, @skip + @len) of @iov at @host in the file. */
static int file_io(struct blocktab *t, bool write, uint64_t host, const struct iovec *iov,
		   int iovcnt, uint64_t skip, uint64_t len)
{
	struct iovec local[16], *v = local;
	int n = blockdev_iov_slice(iov, iovcnt, skip, len, local, ARRAY_SIZE(local)), ret;

	if (n < 0)
		return n;
	if (n > (int)ARRAY_SIZE(local)) {
		v = malloc(sizeof(*v) * (size_t)n);
		if (!v)
			return -ENOMEM;
		blockdev_iov_slice(iov, iovcnt, skip, len, v, n);
	}
	ret = write ? blockdev_pwritev(t->file, host, v, n) : blockdev_preadv(t->file, host, v, n);
	if (v != local)
		free(v);
	return ret;
}

int blocktab_preadv(struct blocktab *t, uint64_t off, const struct iovec *iov, int iovcnt)
{
	uint64_t total = blockdev_iov_size(iov, iovcnt);

	for (uint64_t done = 0, n; done < total; done += n) {
		uint32_t idx;
		uint64_t host;
		int ret = 0;

		n = total - done;
		idx = piece(t, off + done, &n);
		if (idx >= t->nr)
			return -EIO;
		host = blocktab_get(t, idx);
		if (!host)
			blockdev_iov_zero(iov, iovcnt, done, n);
		else
			ret = file_io(t, false, host + in_block(t, off + done), iov, iovcnt, done, n);
		if (ret)
			return ret;
	}
	return 0;
}

/* The host offset of block @idx, placing it first if it has none. */
static int allocate(struct blocktab *t, uint32_t idx, uint64_t *host)
{
	int ret = 0;

	*host = blocktab_get(t, idx);
	if (*host)
		return 0;
	pthread_mutex_lock(&t->lock);
	*host = blocktab_get(t, idx);
	if (!*host) {
		ret = t->alloc(t->opaque, idx, host);
		if (!ret && !*host)
			ret = -EIO;
		if (!ret) /* the file covers the block: readers may go there now */
			atomic_store_explicit(&t->host[idx], *host, memory_order_release);
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int blocktab_pwritev(struct blocktab *t, uint64_t off, const struct iovec *iov, int iovcnt)
{
	uint64_t total = blockdev_iov_size(iov, iovcnt);

	for (uint64_t done = 0, n; done < total; done += n) {
		uint32_t idx;
		uint64_t host;
		int ret;

		n = total - done;
		idx = piece(t, off + done, &n);
		if (idx >= t->nr)
			return -EIO;
		ret = allocate(t, idx, &host);
		if (!ret)
			ret = file_io(t, true, host + in_block(t, off + done), iov, iovcnt, done, n);
		if (ret)
			return ret;
	}
	return 0;
}

/* Calls @fn on the file for each allocated part of the range (unallocated parts read zeroes). */
static int each_allocated(struct blocktab *t, uint64_t off, uint64_t len, unsigned int flags,
			  bool zero)
{
	for (uint64_t done = 0, n; done < len; done += n) {
		uint32_t idx;
		uint64_t host;
		int ret = 0;

		n = len - done;
		idx = piece(t, off + done, &n);
		if (idx >= t->nr)
			return -EIO;
		host = blocktab_get(t, idx);
		if (host && zero)
			ret = blockdev_write_zeroes(t->file, host + in_block(t, off + done), n, flags);
		else if (host)
			ret = blockdev_discard(t->file, host + in_block(t, off + done), n);
		if (ret)
			return ret;
	}
	return 0;
}

int blocktab_write_zeroes(struct blocktab *t, uint64_t off, uint64_t len, unsigned int flags)
{
	return each_allocated(t, off, len, flags, true);
}

int blocktab_discard(struct blocktab *t, uint64_t off, uint64_t len)
{
	return each_allocated(t, off, len, 0, false);
}

int blocktab_block_status(struct blocktab *t, uint64_t off, uint64_t len, uint64_t *pnum,
			  uint64_t *map_offset, struct blockdev **map_file)
{
	uint64_t n = len, host;
	uint32_t idx = piece(t, off, &n);
	int st;

	if (idx >= t->nr)
		return -EIO;
	host = blocktab_get(t, idx);
	if (!host) { /* with the unallocated blocks after it */
		while (n < len && idx + 1 < t->nr && !blocktab_get(t, idx + 1)) {
			idx++;
			n += MIN(len - n, 1ULL << t->bits);
		}
		*pnum = n;
		return BLOCKDEV_STATUS_ZERO | BLOCKDEV_STATUS_ALLOCATED;
	}
	/* with the blocks after it that follow it in the file too (VDI images, mostly) */
	for (uint32_t i = idx + 1; n < len && i < t->nr &&
	     blocktab_get(t, i) == host + ((uint64_t)(i - idx) << t->bits); i++)
		n += MIN(len - n, 1ULL << t->bits);
	host += in_block(t, off);
	*pnum = n;
	*map_offset = host;
	*map_file = t->file;
	st = BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED | BLOCKDEV_STATUS_OFFSET;
	if (t->recurse) {
		uint64_t m;
		struct blockdev *f;
		int fst = blockdev_block_status(t->file, host, n, pnum, &m, &f);

		if (fst < 0)
			return fst;
		st |= fst & BLOCKDEV_STATUS_ZERO;
	}
	return st;
}

uint32_t blocktab_allocated(struct blocktab *t)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < t->nr; i++)
		n += blocktab_get(t, i) != 0;
	return n;
}

int blocktab_disk_load(struct blocktab_disk *d, struct blockdev *file, uint64_t offset,
		       uint32_t n, bool big_endian, const char *what, struct error **errp)
{
	int ret;

	*d = (struct blocktab_disk){ .n = n, .offset = offset, .big_endian = big_endian };
	d->e = malloc(n ? (size_t)n * 4 : 1);
	d->dirty = calloc(DIV_ROUND_UP(n, BLOCKTAB_DISK_PER_SECTOR) + 1, 1);
	if (!d->e || !d->dirty) {
		error_setg(errp, "out of memory for a %s of %" PRIu32 " entries", what, n);
		return -1;
	}
	ret = n ? blockdev_pread(file, offset, d->e, (size_t)n * 4) : 0;
	if (ret) {
		error_setg_errno(errp, ret, "reading the %s", what);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		d->e[i] = big_endian ? be32toh(d->e[i]) : le32toh(d->e[i]);
	return 0;
}

int blocktab_disk_write(struct blocktab_disk *d, struct blockdev *file)
{
	int ret = 0;

	if (!d->dirty_any)
		return 0;
	for (uint32_t s = 0; !ret && s < DIV_ROUND_UP(d->n, BLOCKTAB_DISK_PER_SECTOR); s++) {
		uint32_t buf[BLOCKTAB_DISK_PER_SECTOR], first = s * BLOCKTAB_DISK_PER_SECTOR;
		uint32_t cnt = MIN(BLOCKTAB_DISK_PER_SECTOR, d->n - first);

		if (!d->dirty[s])
			continue;
		for (uint32_t i = 0; i < cnt; i++)
			buf[i] = d->big_endian ? htobe32(d->e[first + i]) : htole32(d->e[first + i]);
		ret = blockdev_pwrite(file, d->offset + (uint64_t)first * 4, buf, cnt * 4);
		if (!ret)
			d->dirty[s] = 0;
	}
	if (!ret)
		d->dirty_any = false;
	return ret;
}

void blocktab_disk_free(struct blocktab_disk *d)
{
	free(d->e);
	free(d->dirty);
	d->e = NULL;
	d->dirty = NULL;
}
