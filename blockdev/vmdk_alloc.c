/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writes to one sparse VMDK extent: in place to allocated grains (no lock: they never move),
 * allocating grains at the end of the file (under sp->lock), zeroes, new grain tables for a
 * directory entry that had none, and the tables' way to the file at flush (below: a crash
 * leaves at most leaked grains, never an entry pointing at unwritten data). Compressed files go
 * to vmdk_grain.c. The ownership of what is shared is vmdk_sparse.c's essay.
 */
#include "blockdev/vmdk_sparse_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/internal.h"
#include "common/util.h"

/*
 * Table entries reach the file at flush and close, not with each allocation (as a qcow2 image's
 * metadata is cached until a flush): the grains written since the last flush are flushed first,
 * then the table sectors that point at them, so an entry on disk never points at a grain whose
 * data is not; a crash loses (leaks) only what the guest had not flushed. sp->gt_dirty (a byte
 * per table: a bit per 128-entry sector) and sp->dirty (the tables with a bit set) say what to
 * write; sp->dir_dirty that a new table's directory entries are to be written, after it.
 */
static int mark_dirty(struct vmdk_sparse *sp, uint64_t gi, uint32_t first, uint32_t last)
{
	uint8_t bits = 0;

	if (!sp->gt_dirty && !(sp->gt_dirty = calloc(sp->nr_gt, 1)))
		return -ENOMEM;
	for (uint32_t s = first / 128; s <= last / 128; s++)
		bits |= (uint8_t)(1u << s);
	if (!sp->gt_dirty[gi]) {
		if (sp->nr_dirty == sp->cap_dirty) {
			size_t cap = sp->cap_dirty ? 2 * sp->cap_dirty : 64;
			uint64_t *d = realloc(sp->dirty, cap * sizeof(*d));

			if (!d)
				return -ENOMEM;
			sp->dirty = d;
			sp->cap_dirty = cap;
		}
		sp->dirty[sp->nr_dirty++] = gi;
	}
	sp->gt_dirty[gi] |= bits;
	return 0;
}

/* The sectors @bits of table @gi (and of its redundant copy) to the file (lock held). */
static int gt_store(struct vmdk_sparse *sp, uint64_t gi, uint8_t bits)
{
	vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_relaxed);
	uint8_t buf[VMDK_SECTOR];
	int ret = 0;

	for (uint32_t s = 0; s < 8 && !ret; s++) {
		uint32_t a = s * 128, b = MIN(a + 128, sp->h.gtes_per_gt);

		if (!(bits & (1u << s)) || a >= b)
			continue;
		memset(buf, 0, sizeof(buf));
		for (uint32_t i = a; i < b; i++)
			vmdk_put32(buf + 4 * (i - a), atomic_load_explicit(&t[i],
									memory_order_relaxed));
		ret = blockdev_pwrite(sp->file, (uint64_t)sp->gd[gi] * VMDK_SECTOR + a * 4ULL, buf,
				      VMDK_SECTOR);
		if (!ret && sp->rgd && sp->rgd[gi])
			ret = blockdev_pwrite(sp->file, (uint64_t)sp->rgd[gi] * VMDK_SECTOR + a * 4ULL,
					      buf, VMDK_SECTOR);
	}
	return ret;
}

/* The whole directory @dir at @sector (lock held). */
static int dir_store(struct vmdk_sparse *sp, const uint32_t *dir, uint64_t sector)
{
	uint64_t bytes = ALIGN_UP(sp->nr_gt * 4, VMDK_SECTOR);
	uint8_t *buf = calloc(1, bytes);
	int ret;

	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < sp->nr_gt; i++)
		vmdk_put32(buf + 4 * i, dir[i]);
	ret = blockdev_pwrite(sp->file, sector * VMDK_SECTOR, buf, bytes);
	free(buf);
	return ret;
}

int vmdk_tables_out(struct vmdk_sparse *sp)
{
	int ret = 0;

	if (!sp->nr_dirty && !sp->dir_dirty)
		return 0;
	/* the grains (and new tables' zeroes) before the entries that point at them */
	if (sp->barriers)
		ret = blockdev_flush(sp->file);
	for (size_t i = 0; i < sp->nr_dirty && !ret; i++) {
		ret = gt_store(sp, sp->dirty[i], sp->gt_dirty[sp->dirty[i]]);
		if (!ret)
			sp->gt_dirty[sp->dirty[i]] = 0;
	}
	if (ret)
		return ret;
	sp->nr_dirty = 0;
	if (sp->dir_dirty) {
		/* the new tables before the directory entries that point at them */
		if (sp->barriers)
			ret = blockdev_flush(sp->file);
		if (!ret)
			ret = dir_store(sp, sp->gd, sp->h.gd_offset);
		if (!ret && sp->rgd)
			ret = dir_store(sp, sp->rgd, sp->h.rgd_offset);
		if (!ret)
			sp->dir_dirty = false;
	}
	return ret;
}

/* Table @gi has a place on disk (lock held): a new zeroed one (and its redundant copy) is
 * appended, the directories pointing at it from the next flush on. A stream file keeps its
 * tables in memory. */
int vmdk_gt_place(struct vmdk_sparse *sp, uint64_t gi)
{
	uint64_t at = sp->end, bytes = sp->rgd ? 2 * sp->gt_bytes : sp->gt_bytes;
	uint8_t *zero;
	int ret;

	if (sp->stream || sp->gd[gi])
		return 0;
	if (sp->end / VMDK_SECTOR + bytes / VMDK_SECTOR > UINT32_MAX)
		return -ENOSPC;
	zero = calloc(1, bytes);
	if (!zero)
		return -ENOMEM;
	ret = blockdev_pwrite(sp->file, at, zero, bytes);
	free(zero);
	if (ret)
		return ret;
	sp->gd[gi] = (uint32_t)(at / VMDK_SECTOR);
	if (sp->rgd)
		sp->rgd[gi] = (uint32_t)((at + sp->gt_bytes) / VMDK_SECTOR);
	sp->dir_dirty = true;
	sp->end += bytes;
	ret = vmdk_add_gt_sector(sp, sp->gd[gi]);
	if (!ret && sp->rgd)
		ret = vmdk_add_gt_sector(sp, sp->rgd[gi]);
	return ret;
}

/* Points entries [idx, idx + n) of table @gi at the grains at @sectors (lock held; the grains
 * are written): at once for readers, on disk at the next flush. */
int vmdk_set_entries(struct vmdk_sparse *sp, uint64_t gi, uint32_t idx, uint32_t n,
		     const uint32_t *sectors)
{
	vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_relaxed);

	if (!n)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		/* pairs with the acquire loads of map() and lookups: the grain is written */
		atomic_store_explicit(&t[idx + i], sectors[i], memory_order_release);
	if (sp->stream) {
		sp->tail_dirty = true;
		return 0;
	}
	return mark_dirty(sp, gi, idx, idx + n - 1);
}

/*
 * Uncompressed: [off, off + len) (inside one table) where grains are not allocated: as many
 * unallocated grains as follow are appended together, the partial first and last filled from
 * what they read now (zeroes). Returns the bytes written or -errno.
 */
static int64_t alloc_run(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
			 int iovcnt, uint64_t skip, uint64_t len)
{
	uint64_t gi = off / sp->cover, head = off % sp->grain;
	uint32_t idx = (uint32_t)(off % sp->cover / sp->grain), n = 0;
	uint32_t sectors[VMDK_MAX_GTES];
	uint64_t bytes, end;
	uint8_t *buf = NULL;
	vmdk_gte *t;
	int ret = 0;

	pthread_mutex_lock(&sp->lock);
	t = vmdk_gt_load(sp, gi, &ret);
	if (!t || (ret = vmdk_gt_place(sp, gi)))
		goto out;
	len = MIN(len, sp->cover - off % sp->cover);
	/* the grains the range touches that are still unallocated (another write may have
	 * allocated the first meanwhile: then write in place, as the caller would) */
	while (idx + n < sp->h.gtes_per_gt && (uint64_t)n * sp->grain < head + len &&
	       vmdk_kind(sp, atomic_load_explicit(&t[idx + n], memory_order_relaxed)) != K_DATA)
		n++;
	if (!n) {
		ret = 0;
		goto out;
	}
	end = MIN(head + len, (uint64_t)n * sp->grain); /* bytes of the run from the first grain */
	bytes = (uint64_t)n * sp->grain;
	if (sp->end / VMDK_SECTOR + bytes / VMDK_SECTOR > UINT32_MAX) {
		ret = -ENOSPC; /* a sparse file addresses 2 TiB */
		goto out;
	}
	if (head || end < bytes) {
		/* partial grains at the edges: the whole run through a buffer of zeroes */
		buf = calloc(1, bytes);
		if (!buf) {
			ret = -ENOMEM;
			goto out;
		}
		blockdev_iov_to_buf(iov, iovcnt, skip, buf + head, end - head);
		ret = blockdev_pwrite(sp->file, sp->end, buf, bytes);
	} else {
		ret = vmdk_file_io(sp, true, sp->end, iov, iovcnt, skip, bytes);
	}
	for (uint32_t i = 0; i < n && !ret; i++)
		sectors[i] = (uint32_t)(sp->end / VMDK_SECTOR + i * sp->h.grain_size);
	if (!ret) {
		sp->end += bytes;
		ret = vmdk_set_entries(sp, gi, idx, n, sectors);
	}
	free(buf);
	pthread_mutex_unlock(&sp->lock);
	return ret ? ret : (int64_t)(end - head);
out:
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int vmdk_sparse_writev(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
		       int iovcnt)
{
	uint64_t len = blockdev_iov_size(iov, iovcnt), done = 0;
	int ret = 0;

	if (!sp->writable)
		return -EROFS;
	if (sp->compressed)
		return vmdk_write_compressed(sp, off, iov, iovcnt, len);
	while (done < len && !ret) {
		uint64_t pos = off + done;
		vmdk_gte *t = vmdk_gt_get(sp, pos / sp->cover, &ret);
		struct vmdk_piece p;
		int64_t n;

		if (!t)
			break;
		vmdk_classify(sp, t, pos, len - done, &p);
		if (p.kind == K_DATA) {
			ret = vmdk_file_io(sp, true, p.host, iov, iovcnt, done, p.len);
			done += p.len;
			continue;
		}
		n = alloc_run(sp, pos, iov, iovcnt, done, len - done);
		if (n < 0)
			ret = (int)n;
		else
			done += (uint64_t)n; /* 0: allocated meanwhile, written in place next turn */
	}
	return ret;
}

/*
 * Zeroes: whole grains read zeroes afterwards without data (the zeroed-grain entry when the
 * file has the flag, else unallocated: nothing lies under a vmdk extent), parts of grains are
 * written as zeroes.
 */
int vmdk_sparse_zero(struct vmdk_sparse *sp, uint64_t off, uint64_t len)
{
	uint64_t done = 0;
	int ret = 0;

	if (!sp->writable)
		return -EROFS;
	while (done < len && !ret) {
		uint64_t pos = off + done, in = pos % sp->grain, g = pos / sp->grain;
		uint64_t n = MIN(len - done, sp->grain - in);
		vmdk_gte *t = vmdk_gt_get(sp, pos / sp->cover, &ret);
		uint32_t idx = (uint32_t)(g % sp->h.gtes_per_gt), e;

		if (!t)
			break;
		e = atomic_load_explicit(&t[idx], memory_order_acquire);
		if (n == vmdk_grain_len(sp, g) || n == sp->grain) {
			uint32_t z = sp->zero_grain && !sp->stream ? VMDK_GTE_ZEROED : 0;

			pthread_mutex_lock(&sp->lock);
			if (sp->pending_grain == g)
				sp->pending_grain = UINT64_MAX;
			if (vmdk_kind(sp, atomic_load_explicit(&t[idx], memory_order_relaxed)) !=
			    vmdk_kind(sp, z))
				ret = vmdk_set_entries(sp, pos / sp->cover, idx, 1, &z);
			pthread_mutex_unlock(&sp->lock);
		} else if (vmdk_kind(sp, e) == K_UNALLOC || vmdk_kind(sp, e) == K_ZERO) {
			ret = 0; /* reads zeroes already */
		} else if (sp->compressed) {
			pthread_mutex_lock(&sp->lock);
			ret = vmdk_pending_write(sp, pos, NULL, 0, 0, n);
			pthread_mutex_unlock(&sp->lock);
		} else {
			uint8_t *zero = calloc(1, n);

			ret = zero ? blockdev_pwrite(sp->file, (uint64_t)e * VMDK_SECTOR + in, zero, n) :
				     -ENOMEM;
			free(zero);
		}
		done += n;
	}
	return ret;
}

