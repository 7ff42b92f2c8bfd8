/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `file` protocol: a host regular file or block device. cache=none opens it O_DIRECT (the
 * synchronous path bounces and read-modify-writes requests that are not aligned to the logical
 * block size; the fast path sends those to the slow path), cache=writeback uses the page cache.
 * Flush is fdatasync, discard is PUNCH_HOLE, write-zeroes is ZERO_RANGE with fallbacks.
 *
 * A large buffered write to a file on ext4 first allocates its range with one fallocate():
 * ext4 then skips its block-by-block delayed-allocation reservations in the write, which
 * measured ~25% less CPU for vireo-img convert to a raw file (and tmpfs, measured too, gains
 * nothing). Allocating never changes the content; the write still sets the file size.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "blockdev/internal.h"
#include "common/util.h"

#define DIO_ALIGN_FALLBACK 4096
#define FALLOC_WRITE_MIN (256 * KiB) /* buffered writes this large allocate first (ext4) */
#define EXT4_MAGIC 0xEF53

struct file_state {
	bool is_blk;
	atomic_bool falloc_writes; /* cleared (by any thread) when fallocate is not supported */
};

/* Direct-I/O alignment: statx(STATX_DIOALIGN) where the kernel has it, else 4096 (safe). */
static void dio_align(struct blockdev *bs, bool is_blk)
{
	struct statx stx;
	int lbs;

	bs->align = bs->mem_align = DIO_ALIGN_FALLBACK;
	if (is_blk && ioctl(bs->fd, BLKSSZGET, &lbs) == 0 && lbs > 0) {
		bs->align = bs->mem_align = (uint32_t)lbs;
		return;
	}
#ifdef STATX_DIOALIGN
	if (statx(bs->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		bs->align = stx.stx_dio_offset_align;
		bs->mem_align = MAX(stx.stx_dio_mem_align, 1u);
	}
#else
	(void)stx;
#endif
}

static int file_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	int flags = (bs->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct file_state *s;
	struct statfs fs;
	struct stat st;

	if (bs->cache == BLOCKDEV_CACHE_NONE)
		flags |= O_DIRECT;
	/* O_NONBLOCK: opening a FIFO (a hostile backing file name) must not hang; cleared below */
	bs->fd = open(ctx->filename, flags | O_NONBLOCK);
	if (bs->fd < 0) {
		int err = errno;

		if (err == EINVAL && (flags & O_DIRECT))
			error_setg(errp, "'%s': the file system does not support O_DIRECT "
				   "(cache=none); use cache=writeback", ctx->filename);
		else if ((err == EACCES || err == EROFS) && !bs->read_only)
			error_setg_errno(errp, err, "could not open '%s' read-write (readonly=on "
					 "opens it read-only)", ctx->filename);
		else
			error_setg_errno(errp, err, "could not open '%s'", ctx->filename);
		return -1;
	}
	if (fstat(bs->fd, &st) < 0) {
		error_setg_errno(errp, errno, "'%s': fstat", ctx->filename);
		goto err_close;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		error_setg(errp, "'%s': not a regular file or block device", ctx->filename);
		goto err_close;
	}
	if (fcntl(bs->fd, F_SETFL, flags & ~(O_RDONLY | O_RDWR | O_CLOEXEC)) < 0) {
		error_setg_errno(errp, errno, "'%s': fcntl(F_SETFL)", ctx->filename);
		goto err_close;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		error_setg(errp, "'%s': out of memory", ctx->filename);
		goto err_close;
	}
	s->is_blk = S_ISBLK(st.st_mode);
	atomic_init(&s->falloc_writes, !s->is_blk && !(flags & O_DIRECT) && !bs->read_only &&
		    fstatfs(bs->fd, &fs) == 0 && fs.f_type == EXT4_MAGIC);
	bs->opaque = s;
	if (s->is_blk) {
		if (ioctl(bs->fd, BLKGETSIZE64, &bs->size) < 0) {
			error_setg_errno(errp, errno, "'%s': BLKGETSIZE64", ctx->filename);
			goto err_free;
		}
	} else {
		bs->size = (uint64_t)st.st_size;
	}
	if (flags & O_DIRECT)
		dio_align(bs, s->is_blk);
	return 0;

err_free:
	free(s);
	bs->opaque = NULL;
err_close:
	close(bs->fd);
	bs->fd = -1;
	return -1;
}

static void file_close(struct blockdev *bs)
{
	free(bs->opaque);
	if (bs->fd >= 0)
		close(bs->fd);
	bs->fd = -1;
}

/*
 * The whole of @iov at @offset, synchronously, whatever short transfers the kernel makes: a read
 * past EOF fills the rest with zeroes, a write the kernel takes nothing of fails with -ENOSPC.
 */
static int rw_full(int fd, bool write, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct iovec local[64], *cur = (struct iovec *)iov;
	uint64_t total = blockdev_iov_size(iov, iovcnt), done = 0;
	int cnt = iovcnt;

	while (done < total) {
		int c = MIN(cnt, IOV_MAX);
		off_t at = (off_t)(offset + done);
		ssize_t n = write ? pwritev(fd, cur, c, at) : preadv(fd, cur, c, at);

		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0) {
			if (write)
				return -ENOSPC;
			blockdev_iov_zero(iov, iovcnt, done, total - done); /* EOF */
			return 0;
		}
		done += (uint64_t)n;
		if (done == total)
			break;
		/* short transfer: go on from where it stopped (a prefix of the rest if it is long) */
		cnt = blockdev_iov_slice(iov, iovcnt, done, total - done, local, ARRAY_SIZE(local));
		cnt = MIN(cnt, (int)ARRAY_SIZE(local));
		cur = local;
	}
	return 0;
}

static int read_full(int fd, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return rw_full(fd, false, offset, iov, iovcnt);
}

static int write_full(int fd, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return rw_full(fd, true, offset, iov, iovcnt);
}

static bool needs_bounce(struct blockdev *bs, uint64_t offset, const struct iovec *iov,
			 int iovcnt)
{
	uint64_t len = blockdev_iov_size(iov, iovcnt);

	if (bs->align <= 1 && bs->mem_align <= 1)
		return false;
	return !IS_ALIGNED(offset | len, (uint64_t)bs->align) ||
	       !blockdev_iov_dio_ok(iov, iovcnt, bs->mem_align, bs->align);
}

/* An aligned buffer covering [start, end) for an unaligned O_DIRECT request. */
static void *bounce_alloc(struct blockdev *bs, uint64_t len)
{
	void *buf;

	if (posix_memalign(&buf, MAX(bs->mem_align, (uint32_t)sizeof(void *)), len))
		return NULL;
	return buf;
}

static int file_preadv(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	uint64_t len = blockdev_iov_size(iov, iovcnt), start, end;
	struct iovec biov;
	void *buf;
	int ret;

	if (!needs_bounce(bs, offset, iov, iovcnt))
		return read_full(bs->fd, offset, iov, iovcnt);
	start = ALIGN_DOWN(offset, (uint64_t)bs->align);
	end = ALIGN_UP(offset + len, (uint64_t)bs->align);
	buf = bounce_alloc(bs, end - start);
	if (!buf)
		return -ENOMEM;
	biov = (struct iovec){ buf, end - start };
	ret = read_full(bs->fd, start, &biov, 1);
	if (!ret)
		blockdev_iov_from_buf(iov, iovcnt, 0, (char *)buf + (offset - start), len);
	free(buf);
	return ret;
}

/* See the opening comment; a failure here is left to the write to report. */
static void allocate_for_write(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	struct file_state *s = bs->opaque;

	if (len < FALLOC_WRITE_MIN ||
	    !atomic_load_explicit(&s->falloc_writes, memory_order_relaxed))
		return;
	if (fallocate(bs->fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) < 0 &&
	    (errno == EOPNOTSUPP || errno == ENOSYS))
		atomic_store_explicit(&s->falloc_writes, false, memory_order_relaxed);
}

static int file_pwritev(struct blockdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	uint64_t len = blockdev_iov_size(iov, iovcnt), start, end, a = bs->align;
	struct iovec biov;
	void *buf;
	int ret = 0;

	if (!needs_bounce(bs, offset, iov, iovcnt)) {
		allocate_for_write(bs, offset, len);
		return write_full(bs->fd, offset, iov, iovcnt);
	}
	start = ALIGN_DOWN(offset, a);
	end = ALIGN_UP(offset + len, a);
	buf = bounce_alloc(bs, end - start);
	if (!buf)
		return -ENOMEM;
	/* read-modify-write of the partly covered first and last blocks */
	if (start != offset)
		ret = read_full(bs->fd, start, &(struct iovec){ buf, a }, 1);
	if (!ret && end != offset + len && (end - a != start || start == offset))
		ret = read_full(bs->fd, end - a,
				&(struct iovec){ (char *)buf + (end - a - start), a }, 1);
	if (!ret) {
		blockdev_iov_to_buf(iov, iovcnt, 0, (char *)buf + (offset - start), len);
		biov = (struct iovec){ buf, end - start };
		ret = write_full(bs->fd, start, &biov, 1);
	}
	free(buf);
	return ret;
}

static int file_flush(struct blockdev *bs)
{
	if (bs->read_only)
		return 0;
	return fdatasync(bs->fd) < 0 ? -errno : 0;
}

static int file_discard(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	if (fallocate(bs->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
		      (off_t)len) == 0)
		return 0;
	/* discard is a hint: a file system that cannot punch holes keeps the data */
	if (errno == EOPNOTSUPP || errno == ENOSYS)
		return 0;
	return -errno;
}

static int zero_by_writing(struct blockdev *bs, uint64_t offset, uint64_t len)
{
	size_t chunk = MIN(len, 1 * MiB);
	void *buf = bounce_alloc(bs, ALIGN_UP(chunk, 4096));
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0, ALIGN_UP(chunk, 4096));
	while (len && !ret) {
		size_t n = MIN(len, chunk);

		ret = file_pwritev(bs, offset, &(struct iovec){ buf, n }, 1);
		offset += n;
		len -= n;
	}
	free(buf);
	return ret;
}

static int file_write_zeroes(struct blockdev *bs, uint64_t offset, uint64_t len,
			     unsigned int flags)
{
	static const int modes[] = {
		FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	};
	uint64_t size = bs->size;

	/* a hole reads as zeroes (block devices: punching zeroes too); past EOF, extend first */
	for (size_t i = (flags & BLOCKDEV_ZERO_MAY_UNMAP) ? 1 : 0; i < ARRAY_SIZE(modes); i++) {
		int mode = modes[i];

		if (offset + len > size && mode == modes[0])
			mode &= ~FALLOC_FL_KEEP_SIZE;
		if (fallocate(bs->fd, mode, (off_t)offset, (off_t)len) == 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
			return -errno;
	}
	return zero_by_writing(bs, offset, len);
}

static int file_map(struct blockdev *bs, enum blockdev_op op, uint64_t offset, uint64_t len,
		    struct blockdev_extent *ext)
{
	*ext = (struct blockdev_extent){
		.kind = BLOCKDEV_EXTENT_DATA, .len = len, .file = bs, .host_offset = offset,
	};
	return 0;
}

static int file_block_status(struct blockdev *bs, uint64_t offset, uint64_t len, uint64_t *pnum,
			     uint64_t *map_offset, struct blockdev **map_file)
{
	struct file_state *s = bs->opaque;
	int flags = BLOCKDEV_STATUS_ALLOCATED | BLOCKDEV_STATUS_OFFSET;
	off_t data, hole;

	*map_offset = offset;
	*map_file = bs;
	*pnum = len;
	if (s->is_blk)
		return flags | BLOCKDEV_STATUS_DATA;
	data = lseek(bs->fd, (off_t)offset, SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO) /* only a hole up to EOF */
			return flags | BLOCKDEV_STATUS_ZERO;
		return flags | BLOCKDEV_STATUS_DATA; /* SEEK_DATA unsupported: assume data */
	}
	if ((uint64_t)data > offset) {
		*pnum = MIN(len, (uint64_t)data - offset);
		return flags | BLOCKDEV_STATUS_ZERO;
	}
	hole = lseek(bs->fd, (off_t)offset, SEEK_HOLE);
	if (hole > (off_t)offset)
		*pnum = MIN(len, (uint64_t)hole - offset);
	return flags | BLOCKDEV_STATUS_DATA;
}

static int file_truncate(struct blockdev *bs, uint64_t size, struct error **errp)
{
	struct file_state *s = bs->opaque;

	if (s->is_blk) {
		error_setg(errp, "'%s': cannot resize a block device", bs->filename);
		return -1;
	}
	if (ftruncate(bs->fd, (off_t)size) < 0) {
		error_setg_errno(errp, errno, "'%s': cannot resize to %llu bytes", bs->filename,
				 (unsigned long long)size);
		return -1;
	}
	bs->size = size;
	return 0;
}

static int file_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	struct stat st;

	if (fstat(bs->fd, &st) < 0) {
		error_setg_errno(errp, errno, "'%s': fstat", bs->filename);
		return -1;
	}
	memset(info, 0, sizeof(*info));
	info->actual_size = (uint64_t)st.st_blocks * 512;
	return 0;
}

const struct blockdev_driver blockdev_file = {
	.name = "file",
	.protocol = true,
	.open = file_open,
	.close = file_close,
	.map = file_map,
	.preadv = file_preadv,
	.pwritev = file_pwritev,
	.flush = file_flush,
	.discard = file_discard,
	.write_zeroes = file_write_zeroes,
	.block_status = file_block_status,
	.truncate = file_truncate,
	.info = file_info,
};

/* ---- creating a file (QEMU's blockdev-create with driver "file", and vireo-img create) ------ */

/* Writes zeroes over [@off, @off + @len) of @fd (preallocation=full). */
static int write_zeroes_fd(int fd, uint64_t off, uint64_t len)
{
	size_t chunk = 1 * MiB;
	void *buf;
	int ret = 0;

	if (posix_memalign(&buf, 4096, chunk)) /* aligned for an O_DIRECT node's fd */
		return -ENOMEM;
	memset(buf, 0, chunk);
	while (len && !ret) {
		ssize_t w = pwrite(fd, buf, (size_t)MIN(chunk, len), (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ret = w < 0 ? -errno : -EIO;
		} else {
			off += (uint64_t)w;
			len -= (uint64_t)w;
		}
	}
	free(buf);
	return ret;
}

/* Allocates [@off, @off + @len) of @fd as @mode says (OFF and METADATA: nothing). */
static int preallocate_fd(int fd, const char *filename, uint64_t off, uint64_t len,
			  enum blockdev_prealloc mode, struct error **errp)
{
	int ret = 0;

	if (mode == BLOCKDEV_PREALLOC_FALLOC && len)
		ret = -posix_fallocate(fd, (off_t)off, (off_t)len);
	else if (mode == BLOCKDEV_PREALLOC_FULL)
		ret = write_zeroes_fd(fd, off, len);
	if (ret)
		error_setg_errno(errp, -ret, "'%s': %s", filename,
				 mode == BLOCKDEV_PREALLOC_FULL ?
					 "Could not write zeros for preallocation" :
					 "Could not preallocate new data");
	return ret ? -1 : 0;
}

int blockdev_file_preallocate(struct blockdev *bs, uint64_t off, uint64_t len,
			      enum blockdev_prealloc mode, struct error **errp)
{
	if (bs->drv != &blockdev_file) {
		error_setg(errp, "'%s': only a file node can be preallocated", bs->filename);
		return -1;
	}
	if (preallocate_fd(bs->fd, bs->filename, off, len, mode, errp) < 0)
		return -1;
	if (off + len > bs->size && !((struct file_state *)bs->opaque)->is_blk)
		bs->size = off + len; /* the file grew */
	return 0;
}

/* Copy-on-write off (btrfs): only an empty file takes the flag; others ignore it, as QEMU does. */
static void set_nocow(int fd)
{
#ifdef FS_NOCOW_FL
	int attr;

	if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
		attr |= FS_NOCOW_FL;
		(void)ioctl(fd, FS_IOC_SETFLAGS, &attr);
	}
#else
	(void)fd;
#endif
}

int blockdev_file_create(const char *filename, uint64_t size, enum blockdev_prealloc prealloc,
			 bool nocow, struct error **errp)
{
	int fd;

	if (prealloc == BLOCKDEV_PREALLOC_METADATA) {
		error_setg(errp, "preallocation: a file takes off, falloc or full, not metadata");
		return -1;
	}
	fd = open(filename, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		error_setg_errno(errp, errno, "Could not create '%s'", filename);
		return -1;
	}
	if (nocow)
		set_nocow(fd);
	if (ftruncate(fd, (off_t)size) < 0) {
		error_setg_errno(errp, errno, "'%s': could not resize to %" PRIu64 " bytes",
				 filename, size);
		goto err_close;
	}
	if (preallocate_fd(fd, filename, 0, size, prealloc, errp) < 0)
		goto err_close;
	if (fsync(fd) < 0) {
		error_setg_errno(errp, errno, "'%s': fsync", filename);
		goto err_close;
	}
	close(fd);
	return 0;

err_close:
	close(fd);
	return -1;
}

int blockdev_prealloc_parse(const char *name)
{
	static const char *const names[] = { "off", "metadata", "falloc", "full" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(name, names[i]))
			return (int)i;
	return -1;
}
