/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `vhdx` format driver: Hyper-V's VHDX images, dynamic and fixed, read and write
 * (differencing images are refused at open). Parsing lives in vhdx_format.c and vhdx_log.c
 * (pure, fuzzed), metadata writes in vhdx_commit.c, creation in vhdx_create.c.
 *
 * Who owns what.
 *  - Set at open and read-only afterwards: the geometry (struct vhdx_meta but its header),
 *    v->bat's address and length, v->read_only. The node has no truncate: none of it changes.
 *  - The BAT lives in memory (v->bat). An entry changes only under v->lock, and only from "not
 *    present" (NOT_PRESENT, ZERO, UNMAPPED, UNDEFINED: the block reads as zeroes) to
 *    FULLY_PRESENT at a new file offset, stored with release once the file covers the block;
 *    map() on any iothread and the synchronous reads load it with acquire. An entry never
 *    changes once present, so a fast-path request that mapped a block can never land in a
 *    block given to someone else.
 *  - A new block is appended at v->alloc_end (past everything in the file when it was opened:
 *    the range reads as zeroes, as the absent block did) and the file extended over it under
 *    the lock; the write that allocated it then writes its data in place like any other.
 *    Two writers to one absent block: the second finds it present under the lock. A commit
 *    that makes a new entry durable before that data is written (a flush racing the write)
 *    leaves zeroes there after a crash: the block's content before the unfinished write.
 *  - Writes to a present block need no lock: the block cannot move.
 *  - v->data_ready gates every change of the disk (WRITE, DISCARD, WRITE_ZEROES of present
 *    blocks: map() answers SLOW until it is set): the header's DataWriteGuid must be new and
 *    durable first ([MS-VHDX] 2.2.2.1). Set once per open, under v->lock, with release.
 *  - Under v->lock besides: the dirty BAT sectors, the log, header updates (vhdx_commit.c: the
 *    crash-safety protocol). The slow-path worker and the tools take it; map() never does.
 *
 * The log: an image whose header names a log GUID may hold entries to replay. Opened
 * read-write, the active sequence is replayed, flushed and the log emptied before anything else
 * is read; opened read-only, the open is refused (as qemu-img does) with the command that
 * replays it. An image is refused too when a present block lies past the end of the file (a
 * truncated image, as qemu-img), over the header section, the log, the BAT or the metadata
 * region, or over another block; check -r opens it to report those as corruptions.
 *
 * Options: close-flush=on|off (off: vireo-img convert's new target under -t unsafe; no flush
 * but those asked for, the BAT written in place at close; see vhdx_commit.c).
 */
#include "blockdev/vhdx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/internal.h"
#include "blockdev/vhdx_internal.h"
#include "common/parse.h"
#include "common/util.h"

static int vhdx_probe_score(const uint8_t *buf, size_t len, const char *filename)
{
	return vhdx_probe(buf, len) ? 100 : 0;
}

static bool present(uint64_t e)
{
	return (e & VHDX_BAT_STATE_MASK) == VHDX_BLOCK_FULLY_PRESENT;
}

static uint64_t entry_of(struct vhdx *v, uint64_t block)
{
	/* acquire: pairs with the release store of a new block (alloc_write) */
	return atomic_load_explicit(&v->bat[vhdx_bat_index(&v->m, block)], memory_order_acquire);
}

/* ---- open / close --------------------------------------------------------------------------- */

static int load_bat(struct vhdx *v, bool repair, struct vhdx_bat_report *rep,
		    struct error **errp)
{
	uint64_t n = ALIGN_UP(v->m.bat_entries, VHDX_BAT_PER_SECTOR), chunk = VHDX_MIB / 8;
	uint8_t *buf = malloc(VHDX_MIB);
	int ret;

	v->bat_len = n;
	v->bat = calloc(n ? n : 1, sizeof(*v->bat));
	v->dirty = calloc(DIV_ROUND_UP(n / VHDX_BAT_PER_SECTOR, 64) + 1, sizeof(*v->dirty));
	if (!buf || !v->bat || !v->dirty) {
		free(buf);
		error_setg(errp, "out of memory for a BAT of %" PRIu64 " entries", n);
		return -1;
	}
	for (uint64_t i = 0; i < n; i += chunk) {
		uint64_t k = MIN(chunk, n - i);

		ret = blockdev_pread(v->file, v->m.bat_offset + 8 * i, buf, 8 * k);
		if (ret) {
			free(buf);
			error_setg_errno(errp, ret, "reading the BAT at 0x%" PRIx64,
					 v->m.bat_offset + 8 * i);
			return -1;
		}
		for (uint64_t j = 0; j < k; j++)
			atomic_init(&v->bat[i + j], vhdx_le64(buf + 8 * j));
	}
	free(buf);
	/* nobody else sees the array yet: read it as the plain integers it holds */
	if (vhdx_bat_check(&v->m, (const uint64_t *)v->bat, v->file->size, rep)) {
		error_setg(errp, "out of memory checking the BAT");
		return -1;
	}
	if ((rep->bad || rep->past_eof) && !repair) {
		if (rep->first_bad == UINT64_MAX)
			error_setg(errp, "BAT at 0x%" PRIx64 ": %s", v->m.bat_offset,
				   rep->first_why);
		else
			error_setg(errp, "BAT entry %" PRIu64 " (at 0x%" PRIx64 "): %s",
				   rep->first_bad, v->m.bat_offset + 8 * rep->first_bad,
				   rep->first_why);
		return -1;
	}
	return 0;
}

static void free_state(struct vhdx *v)
{
	free(v->bat);
	free(v->dirty);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* A log to replay: done on a read-write open, refused on a read-only one. */
static int open_log(struct vhdx *v, struct error **errp)
{
	struct vhdx_log_seq seq;
	struct vhdx_io io;

	vhdx_io_of(v, &io);
	if (vhdx_log_find(&io, &v->m.hdr, &seq, errp))
		return -1;
	if (!seq.found)
		return 0;
	if (v->read_only) {
		error_setg(errp, "VHDX image opened read-only, but contains a log that needs to be "
			   "replayed (%" PRIu32 " entr%s): open it read-write, or run "
			   "'vireo-img check -r all %s'", seq.count, seq.count == 1 ? "y" : "ies",
			   v->bs->filename);
		return -1;
	}
	if (vhdx_replay(v, &seq, errp))
		return -1;
	v->replayed = true;
	return 0;
}

static int vhdx_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct vhdx *v = calloc(1, sizeof(*v));
	const char *close_flush = blockdev_opt_get(ctx, "close-flush");
	struct vhdx_bat_report rep;
	struct vhdx_io io;
	bool flush = true;

	if (!v) {
		error_setg(errp, "out of memory");
		return -1;
	}
	if (close_flush && parse_bool("close-flush", close_flush, &flush, errp)) {
		free(v);
		return -1;
	}
	v->unsafe = !flush;
	pthread_mutex_init(&v->lock, NULL);
	v->bs = bs;
	v->file = bs->file;
	v->read_only = bs->read_only;
	vhdx_io_of(v, &io);
	if (vhdx_headers_load(&io, &v->m, errp) || open_log(v, errp))
		goto fail;
	vhdx_io_of(v, &io); /* a replay may have grown the file */
	if (vhdx_regions_load(&io, &v->m, errp) || load_bat(v, ctx->opts->repair, &rep, errp))
		goto fail;
	v->alloc_end = ALIGN_UP(MAX(v->file->size, rep.end), VHDX_MIB);
	bs->size = v->m.disk_size;
	bs->opaque = v;
	return 0;
fail:
	error_prepend(errp, "'%s'", bs->filename);
	free_state(v);
	return -1;
}

static void vhdx_close(struct blockdev *bs)
{
	struct vhdx *v = vhdx_of(bs);
	int ret;

	if (!v)
		return;
	if (!v->read_only) {
		pthread_mutex_lock(&v->lock);
		ret = vhdx_close_log(v);
		pthread_mutex_unlock(&v->lock);
		if (ret)
			fprintf(stderr, "vireo: '%s': closing the VHDX image: %s (its log will be "
				"replayed at the next read-write open)\n", bs->filename, strerror(-ret));
	}
	free_state(v);
	bs->opaque = NULL;
}

/* ---- the fast path -------------------------------------------------------------------------- */

static int vhdx_map(struct blockdev *bs, enum blockdev_op op, uint64_t off, uint64_t len,
		    struct blockdev_extent *ext)
{
	struct vhdx *v = vhdx_of(bs);
	uint64_t bsz = v->m.block_size, in = off % bsz, e = entry_of(v, off / bsz);
	bool ready = atomic_load_explicit(&v->data_ready, memory_order_acquire);
	enum blockdev_extent_kind kind;

	if (!present(e))
		kind = op == BLOCKDEV_OP_WRITE ? BLOCKDEV_EXTENT_SLOW : BLOCKDEV_EXTENT_ZERO;
	else if (op != BLOCKDEV_OP_READ && !ready)
		kind = BLOCKDEV_EXTENT_SLOW; /* the header first (vhdx_prepare_write) */
	else
		kind = BLOCKDEV_EXTENT_DATA;
	*ext = (struct blockdev_extent){ .kind = kind, .len = MIN(len, bsz - in) };
	if (kind == BLOCKDEV_EXTENT_DATA) {
		ext->file = v->file;
		ext->host_offset = (e & VHDX_BAT_OFFSET_MASK) + in;
	}
	return 0;
}

/* ---- synchronous I/O ------------------------------------------------------------------------ */

/* [@skip, @skip+@len) of @iov from or to the file at @host. */
static int file_io(struct vhdx *v, bool write, uint64_t host, const struct iovec *iov,
		   int iovcnt, uint64_t skip, uint64_t len)
{
	struct iovec local[16], *sub = local;
	int n = blockdev_iov_slice(iov, iovcnt, skip, len, local, ARRAY_SIZE(local)), ret;

	if (n < 0)
		return n;
	if (n > (int)ARRAY_SIZE(local)) {
		sub = malloc((size_t)n * sizeof(*sub));
		if (!sub)
			return -ENOMEM;
		n = blockdev_iov_slice(iov, iovcnt, skip, len, sub, n);
	}
	ret = write ? blockdev_pwritev(v->file, host, sub, n) : blockdev_preadv(v->file, host, sub, n);
	if (sub != local)
		free(sub);
	return ret;
}

static int vhdx_preadv(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct vhdx *v = vhdx_of(bs);
	uint64_t bsz = v->m.block_size, len = blockdev_iov_size(iov, iovcnt);

	for (uint64_t done = 0; done < len;) {
		uint64_t pos = off + done, n = MIN(len - done, bsz - pos % bsz), e;
		int ret = 0;

		e = entry_of(v, pos / bsz);
		if (present(e))
			ret = file_io(v, false, (e & VHDX_BAT_OFFSET_MASK) + pos % bsz, iov, iovcnt,
				      done, n);
		else
			blockdev_iov_zero(iov, iovcnt, done, n);
		if (ret)
			return ret;
		done += n;
	}
	return 0;
}

/* The header's DataWriteGuid changed before the first change of the disk in this open. */
static int ready(struct vhdx *v)
{
	int ret;

	/* acquire: pairs with vhdx_prepare_write's release */
	if (atomic_load_explicit(&v->data_ready, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&v->lock);
	ret = vhdx_prepare_write(v);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/*
 * A write into block @block, absent when looked at: allocate it unless someone just did, then
 * write in place. The lock covers the allocation only (a new range of the file, extended over
 * it, and the entry published), not the data write: the new block reads as zeroes, which is
 * what the absent block read, so a reader (or a commit making the entry durable) that sees it
 * before the data is there sees the disk as it was, as with any write still in flight.
 */
static int alloc_write(struct vhdx *v, uint64_t block, uint64_t in, const struct iovec *iov,
		       int iovcnt, uint64_t skip, uint64_t len)
{
	uint64_t i = vhdx_bat_index(&v->m, block), bsz = v->m.block_size, e, off;

	pthread_mutex_lock(&v->lock);
	e = atomic_load_explicit(&v->bat[i], memory_order_relaxed);
	if (!present(e)) {
		off = v->alloc_end;
		if (off + bsz > VHDX_MAX_FILE_OFFSET ||
		    blockdev_truncate(v->file, off + bsz, NULL)) {
			pthread_mutex_unlock(&v->lock);
			return -ENOSPC;
		}
		v->alloc_end = off + bsz;
		e = off | VHDX_BLOCK_FULLY_PRESENT;
		/* release: the file extended over the block before anyone uses the entry */
		atomic_store_explicit(&v->bat[i], e, memory_order_release);
		vhdx_mark_dirty(v, i);
	}
	pthread_mutex_unlock(&v->lock);
	return file_io(v, true, (e & VHDX_BAT_OFFSET_MASK) + in, iov, iovcnt, skip, len);
}

static int vhdx_pwritev(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct vhdx *v = vhdx_of(bs);
	uint64_t bsz = v->m.block_size, len = blockdev_iov_size(iov, iovcnt);
	int ret = ready(v);

	for (uint64_t done = 0; done < len && !ret; ) {
		uint64_t pos = off + done, n = MIN(len - done, bsz - pos % bsz);
		uint64_t e = entry_of(v, pos / bsz);

		if (present(e))
			ret = file_io(v, true, (e & VHDX_BAT_OFFSET_MASK) + pos % bsz, iov, iovcnt,
				      done, n);
		else
			ret = alloc_write(v, pos / bsz, pos % bsz, iov, iovcnt, done, n);
		done += n;
	}
	return ret;
}

static int vhdx_flush(struct blockdev *bs)
{
	struct vhdx *v = vhdx_of(bs);
	int ret;

	pthread_mutex_lock(&v->lock);
	ret = v->ndirty ? vhdx_commit(v) : blockdev_flush(v->file);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* Discard and write-zeroes: only present blocks hold anything; the file range under them is
 * punched or zeroed (a block stays present: a fixed disk keeps its blocks, and reads zeroes
 * there as a raw disk does after a discard). */
static int zero_present(struct blockdev *bs, uint64_t off, uint64_t len, bool discard,
			unsigned int flags)
{
	struct vhdx *v = vhdx_of(bs);
	uint64_t bsz = v->m.block_size;
	int ret = 0;

	for (uint64_t done = 0; done < len && !ret;) {
		uint64_t pos = off + done, n = MIN(len - done, bsz - pos % bsz);
		uint64_t e = entry_of(v, pos / bsz), host = (e & VHDX_BAT_OFFSET_MASK) + pos % bsz;

		if (present(e))
			ret = ready(v) ?: discard ? blockdev_discard(v->file, host, n) :
				 blockdev_write_zeroes(v->file, host, n, flags);
		done += n;
	}
	return ret;
}

static int vhdx_discard(struct blockdev *bs, uint64_t off, uint64_t len)
{
	return zero_present(bs, off, len, true, 0);
}

static int vhdx_write_zeroes(struct blockdev *bs, uint64_t off, uint64_t len, unsigned int flags)
{
	return zero_present(bs, off, len, false, flags);
}

/* Runs of blocks alike: present ones contiguous in the file, or all zero-state, or absent. */
static int vhdx_block_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum,
			     uint64_t *map_offset, struct blockdev **map_file)
{
	struct vhdx *v = vhdx_of(bs);
	uint64_t bsz = v->m.block_size, e = entry_of(v, off / bsz), st = e & VHDX_BAT_STATE_MASK;
	uint64_t host = (e & VHDX_BAT_OFFSET_MASK) + off % bsz, n = MIN(len, bsz - off % bsz);

	while (n < len) {
		uint64_t f = entry_of(v, (off + n) / bsz), fs = f & VHDX_BAT_STATE_MASK;

		if (present(e) ? !present(f) || (f & VHDX_BAT_OFFSET_MASK) != host + n :
				 (fs == VHDX_BLOCK_ZERO) != (st == VHDX_BLOCK_ZERO) || present(f))
			break;
		n += MIN(len - n, bsz);
	}
	*pnum = n;
	if (present(e)) {
		*map_offset = host;
		*map_file = v->file;
		return BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED | BLOCKDEV_STATUS_OFFSET;
	}
	/* an explicit zero block is the image's own content; an absent one reads zeroes too */
	return BLOCKDEV_STATUS_ZERO | (st == VHDX_BLOCK_ZERO ? BLOCKDEV_STATUS_ALLOCATED : 0);
}

static int vhdx_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	info->cluster_size = vhdx_of(bs)->m.block_size;
	return 0;
}

/*
 * As qemu-img's check: a log replayed at open is one corruption fixed; bad BAT entries (only
 * an open with repair=on gets this far with any) are corruptions nothing repairs.
 */
static int vhdx_check(struct blockdev *bs, unsigned fix, struct blockdev_check_result *res,
		      struct error **errp)
{
	struct vhdx *v = vhdx_of(bs);
	struct vhdx_bat_report rep;

	memset(res, 0, sizeof(*res));
	if (vhdx_bat_check(&v->m, (const uint64_t *)v->bat, v->file->size, &rep)) {
		error_setg(errp, "'%s': out of memory checking the BAT", bs->filename);
		return -1;
	}
	res->corruptions = rep.bad + rep.past_eof;
	if (res->corruptions && (fix & BLOCKDEV_CHECK_VERBOSE))
		fprintf(stderr, "ERROR VHDX BAT: %" PRIu64 " bad entr%s, the first: %s\n",
			res->corruptions, res->corruptions == 1 ? "y" : "ies", rep.first_why);
	if (v->replayed)
		res->corruptions_fixed = 1;
	return 0;
}

const struct blockdev_driver blockdev_vhdx = {
	.name = "vhdx",
	.probe = vhdx_probe_score,
	.open = vhdx_open,
	.close = vhdx_close,
	.map = vhdx_map,
	.preadv = vhdx_preadv,
	.pwritev = vhdx_pwritev,
	.flush = vhdx_flush,
	.discard = vhdx_discard,
	.write_zeroes = vhdx_write_zeroes,
	.block_status = vhdx_block_status,
	.info = vhdx_info,
	.check = vhdx_check,
	.create_opts = vhdx_create_opts,
	.create = vhdx_create,
};
