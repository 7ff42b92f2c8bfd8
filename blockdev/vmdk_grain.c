/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compressed grains of one sparse VMDK extent (streamOptimized), and a stream file's tail.
 *
 * A grain is stored behind a marker {u64 lba, u32 size} as a zlib stream, sector-padded.
 * Reading inflates it (no lock: an appended grain never changes). Writing appends: whole grains
 * are deflated outside sp->lock, by the writer and the extent's helper threads together
 * (struct vmdk_zpool), then appended under the lock in grain order with their table entries
 * set; a partial grain is merged into the pending grain (sp->pending_buf, under the lock),
 * which is deflated and appended when another grain is written, at flush and at close. A
 * stream file (directory at the end) gets its tail, every table behind a GT marker, the
 * directory behind a GD marker, the footer and the end-of-stream marker, at flush and close,
 * written where its grains end. Ownership of the shared state: vmdk_sparse.c's essay.
 */
#include "blockdev/vmdk_sparse_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/internal.h"
#include "common/util.h"
#include "seccomp/thread.h"

/* Grain @g stored compressed at entry @e, inflated into @out (sp->grain bytes). */
int vmdk_grain_inflate(struct vmdk_sparse *sp, uint64_t g, uint32_t e, uint8_t *out)
{
	uint64_t at = (uint64_t)e * VMDK_SECTOR, csize, max = 2 * sp->grain + 4096;
	uint8_t hdr[VMDK_GRAIN_MARKER_LEN], *cbuf;
	struct libdeflate_decompressor *d;
	enum libdeflate_result r = LIBDEFLATE_BAD_DATA;
	size_t in_used, outlen = 0;
	int ret;

	if (sp->markers) {
		ret = blockdev_pread(sp->file, at, hdr, sizeof(hdr));
		if (ret)
			return ret;
		csize = vmdk_le32(hdr + 8);
		at += VMDK_GRAIN_MARKER_LEN;
	} else {
		csize = MIN(max, sp->file->size > at ? sp->file->size - at : 0);
	}
	if (!csize || csize > max || !range_within(at, csize, MAX(sp->file->size, sp->end)))
		return vmdk_corrupt(sp, "the compressed grain at sector %" PRIu32 " says it holds "
				    "%" PRIu64 " bytes (past the end of the file, or more than a "
				    "grain can need)", e, csize);
	cbuf = malloc(csize);
	d = libdeflate_alloc_decompressor();
	if (!cbuf || !d) {
		free(cbuf);
		libdeflate_free_decompressor(d);
		return -ENOMEM;
	}
	ret = blockdev_pread(sp->file, at, cbuf, csize);
	if (!ret) {
		/* a zlib stream: what follows it (a marker's padding) is not looked at */
		r = libdeflate_zlib_decompress_ex(d, cbuf, csize, out, sp->grain, &in_used, &outlen);
		if (r != LIBDEFLATE_SUCCESS || outlen < vmdk_grain_len(sp, g))
			ret = vmdk_corrupt(sp, "the compressed grain at sector %" PRIu32 " does not "
					   "inflate to a grain (%s, %zu bytes)", e,
					   r == LIBDEFLATE_SUCCESS ? "short" :
					   r == LIBDEFLATE_INSUFFICIENT_SPACE ? "too long" : "bad data",
					   outlen);
		else if (outlen < sp->grain)
			memset(out + outlen, 0, sp->grain - outlen);
	}
	libdeflate_free_decompressor(d);
	free(cbuf);
	return ret;
}

/* The current content of grain @g (whose entry is @e) into @out (lock held or not needed). */
int vmdk_grain_content(struct vmdk_sparse *sp, uint64_t g, uint32_t e, uint8_t *out)
{
	switch (vmdk_kind(sp, e)) {
	case K_UNALLOC:
	case K_ZERO:
		memset(out, 0, sp->grain);
		return 0;
	case K_COMPRESSED:
		return vmdk_grain_inflate(sp, g, e, out);
	case K_DATA:
	default:
		return blockdev_pread(sp->file, (uint64_t)e * VMDK_SECTOR, out, vmdk_grain_len(sp, g));
	}
}

/* Copies the pending grain's part into @iov when [off, off+len) lies in it (lock held). */
bool vmdk_pending_read(struct vmdk_sparse *sp, uint64_t off, uint64_t len,
			 const struct iovec *iov, int iovcnt, uint64_t skip)
{
	if (sp->pending_grain != off / sp->grain)
		return false;
	blockdev_iov_from_buf(iov, iovcnt, skip, sp->pending_buf + off % sp->grain, len);
	return true;
}

/* ---- compressed grains -------------------------------------------------------------------------- */

static uint64_t pack_room(const struct vmdk_sparse *sp)
{
	return ALIGN_UP(libdeflate_zlib_compress_bound(NULL, sp->grain) + VMDK_GRAIN_MARKER_LEN,
			VMDK_SECTOR) + VMDK_SECTOR;
}

/*
 * Grain @g's @data (sp->grain bytes, its tail beyond the capacity ignored) deflated with @c (a
 * zlib stream at zlib's default level 6, as qemu-img writes it; libdeflate is 2.5 times as fast
 * as zlib here for a slightly smaller result) behind its marker into @out (pack_room bytes).
 * Returns the sector-padded length or -errno.
 */
static int64_t pack_grain(const struct vmdk_sparse *sp, struct libdeflate_compressor *c,
			  uint64_t g, const uint8_t *data, uint8_t *out)
{
	uint64_t hdr = sp->markers ? VMDK_GRAIN_MARKER_LEN : 0, total;
	size_t clen = libdeflate_zlib_compress(c, data, vmdk_grain_len(sp, g), out + hdr,
					       pack_room(sp) - hdr - VMDK_SECTOR);

	if (!clen)
		return -EIO;
	if (sp->markers) {
		vmdk_put64(out, g * sp->h.grain_size);
		vmdk_put32(out + 8, (uint32_t)clen);
	}
	total = ALIGN_UP(hdr + clen, VMDK_SECTOR);
	memset(out + hdr + clen, 0, total - hdr - clen);
	return (int64_t)total;
}

#define VMDK_DEFLATE_LEVEL 6

/*
 * The deflate helpers of one compressed extent being written (vireo-img convert's target): a
 * batch of whole grains is deflated by its writer and the helpers together, each taking the
 * next grain of the batch (an atomic counter) into its own slot of the output. One batch at a
 * time: a writer that finds the pool busy deflates its batch alone. The batch lives on the
 * writer's stack; z->lock orders its publication and its end: the writer waits until every
 * helper that took it has left it (z->busy) before it returns.
 */
#define VMDK_ZPOOL_MAX 7

struct vmdk_zbatch {
	const struct vmdk_sparse *sp;
	const uint8_t *in;   /* n grains, sp->grain bytes apart */
	uint64_t g0;         /* the first grain's number */
	uint32_t n;
	uint8_t *out;        /* n slots of pack_room bytes */
	int64_t *plen;       /* each grain's packed length, or -errno */
	atomic_uint next;    /* the next grain to take */
};

struct vmdk_zpool {
	pthread_mutex_t lock;
	pthread_cond_t cond;     /* a batch was posted, or stop */
	pthread_cond_t left;     /* a helper left its batch */
	struct vmdk_zbatch *batch;
	unsigned busy;           /* helpers working on @batch */
	bool stop;
	unsigned nr;
	pthread_t threads[VMDK_ZPOOL_MAX];
};

/* Takes grains of @b until none is left; *@c: the thread's compressor (made on first use). */
static void deflate_batch(struct vmdk_zbatch *b, struct libdeflate_compressor **c)
{
	for (uint32_t i; (i = atomic_fetch_add(&b->next, 1)) < b->n;) {
		if (!*c && !(*c = libdeflate_alloc_compressor(VMDK_DEFLATE_LEVEL))) {
			b->plen[i] = -ENOMEM;
			continue;
		}
		b->plen[i] = pack_grain(b->sp, *c, b->g0 + i, b->in + (uint64_t)i * b->sp->grain,
					b->out + (uint64_t)i * pack_room(b->sp));
	}
}

static void *zpool_main(void *arg)
{
	struct vmdk_zpool *z = arg;
	struct libdeflate_compressor *c = NULL;

	pthread_mutex_lock(&z->lock);
	for (;;) {
		struct vmdk_zbatch *b;

		while (!z->stop && (!z->batch || atomic_load(&z->batch->next) >= z->batch->n))
			pthread_cond_wait(&z->cond, &z->lock);
		if (z->stop)
			break;
		b = z->batch;
		z->busy++;
		pthread_mutex_unlock(&z->lock);
		deflate_batch(b, &c);
		pthread_mutex_lock(&z->lock);
		z->busy--;
		pthread_cond_broadcast(&z->left);
	}
	pthread_mutex_unlock(&z->lock);
	libdeflate_free_compressor(c);
	return NULL;
}

/* The helpers, one per other online CPU (none when the thread may not start threads). */
static struct vmdk_zpool *zpool_new(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct vmdk_zpool *z = calloc(1, sizeof(*z));
	unsigned want = cpus > 1 ? (unsigned)MIN(cpus - 1, VMDK_ZPOOL_MAX) : 0;

	if (!z)
		return NULL;
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->cond, NULL);
	pthread_cond_init(&z->left, NULL);
	while (z->nr < want && !sandbox_thread_spawn(&z->threads[z->nr], SANDBOX_ROLE_QCOW2_POOL,
						     "vmdk-deflate", NULL, zpool_main, z, NULL))
		z->nr++;
	return z;
}

void vmdk_zpool_free(struct vmdk_zpool *z)
{
	if (!z)
		return;
	pthread_mutex_lock(&z->lock);
	z->stop = true;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
	for (unsigned i = 0; i < z->nr; i++)
		pthread_join(z->threads[i], NULL);
	pthread_cond_destroy(&z->left);
	pthread_cond_destroy(&z->cond);
	pthread_mutex_destroy(&z->lock);
	free(z);
}

/* Deflates batch @b: with the helpers when the pool is free, else alone. */
static void zpool_run(struct vmdk_sparse *sp, struct vmdk_zbatch *b)
{
	struct libdeflate_compressor *c = NULL;
	struct vmdk_zpool *z;
	bool shared = false;

	pthread_mutex_lock(&sp->lock);
	if (!sp->zpool && b->n > 1)
		sp->zpool = zpool_new();
	z = sp->zpool;
	pthread_mutex_unlock(&sp->lock);
	if (z && z->nr) {
		pthread_mutex_lock(&z->lock);
		if (!z->batch) {
			z->batch = b;
			shared = true;
			pthread_cond_broadcast(&z->cond);
		}
		pthread_mutex_unlock(&z->lock);
	}
	deflate_batch(b, &c);
	if (shared) {
		/* every grain was taken; wait for the helpers still deflating theirs */
		pthread_mutex_lock(&z->lock);
		while (z->busy)
			pthread_cond_wait(&z->left, &z->lock);
		z->batch = NULL;
		pthread_mutex_unlock(&z->lock);
	}
	libdeflate_free_compressor(c);
}

/* Appends grains [g, g + n) of table @gi, packed in @v (one iovec each), and points their
 * entries at them (lock held). */
static int append_packed(struct vmdk_sparse *sp, uint64_t gi, uint64_t g, uint32_t n,
			 const struct iovec *v)
{
	uint32_t sectors[VMDK_MAX_GTES];
	uint64_t len = 0;
	int ret = vmdk_gt_place(sp, gi); /* may append a new table: before the grains' places */

	if (ret)
		return ret;
	for (uint32_t i = 0; i < n; i++) {
		sectors[i] = (uint32_t)((sp->end + len) / VMDK_SECTOR);
		len += v[i].iov_len;
	}
	if (sp->end / VMDK_SECTOR + len / VMDK_SECTOR > UINT32_MAX)
		return -ENOSPC;
	ret = blockdev_pwritev(sp->file, sp->end, v, (int)n);
	if (ret)
		return ret;
	sp->end += len;
	if (sp->pending_grain >= g && sp->pending_grain < g + n)
		sp->pending_grain = UINT64_MAX; /* overwritten whole */
	return vmdk_set_entries(sp, gi, (uint32_t)(g % sp->h.gtes_per_gt), n, sectors);
}

/* Compresses and appends the pending grain (lock held). */
static int pending_out(struct vmdk_sparse *sp)
{
	uint64_t g = sp->pending_grain;
	struct libdeflate_compressor *c;
	struct iovec v;
	uint8_t *packed;
	int64_t len;
	int ret;

	if (g == UINT64_MAX)
		return 0;
	packed = malloc(pack_room(sp));
	c = libdeflate_alloc_compressor(VMDK_DEFLATE_LEVEL);
	if (!packed || !c) {
		free(packed);
		libdeflate_free_compressor(c);
		return -ENOMEM;
	}
	len = pack_grain(sp, c, g, sp->pending_buf, packed);
	libdeflate_free_compressor(c);
	v = (struct iovec){ packed, (size_t)len };
	ret = len < 0 ? (int)len : append_packed(sp, g * sp->grain / sp->cover, g, 1, &v);
	free(packed);
	if (!ret)
		sp->pending_grain = UINT64_MAX;
	return ret;
}

/* [off, off + len) inside grain @g, partial: merged into the pending grain (lock held). */
int vmdk_pending_write(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
			 int iovcnt, uint64_t skip, uint64_t len)
{
	uint64_t g = off / sp->grain;
	int ret = 0;

	if (sp->pending_grain != g) {
		vmdk_gte *t;

		ret = pending_out(sp);
		if (ret)
			return ret;
		t = vmdk_gt_load(sp, off / sp->cover, &ret);
		if (!t)
			return ret;
		if (!sp->pending_buf && !(sp->pending_buf = malloc(sp->grain)))
			return -ENOMEM;
		ret = vmdk_grain_content(sp, g, atomic_load_explicit(&t[g % sp->h.gtes_per_gt],
								memory_order_relaxed),
				    sp->pending_buf);
		if (ret)
			return ret;
		sp->pending_grain = g;
	}
	if (iov)
		blockdev_iov_to_buf(iov, iovcnt, skip, sp->pending_buf + off % sp->grain, len);
	else
		memset(sp->pending_buf + off % sp->grain, 0, len);
	return 0;
}

/* Whole grains [off, off + len) of one table (len > 0, grain-aligned, or reaching the end of
 * the capacity): deflated outside the lock (by the deflate helpers too), appended under it. */
static int write_whole(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
		       int iovcnt, uint64_t skip, uint64_t len)
{
	uint32_t n = (uint32_t)DIV_ROUND_UP(len, sp->grain);
	uint64_t g = off / sp->grain, room = pack_room(sp);
	struct vmdk_zbatch b = { .sp = sp, .g0 = g, .n = n };
	uint8_t *in = calloc(n, sp->grain);
	struct iovec v[VMDK_MAX_GTES];
	int ret = 0;

	b.out = malloc(room * n);
	b.plen = calloc(n, sizeof(*b.plen));
	if (!in || !b.out || !b.plen) {
		ret = -ENOMEM;
		goto out;
	}
	blockdev_iov_to_buf(iov, iovcnt, skip, in, len);
	b.in = in;
	atomic_init(&b.next, 0);
	zpool_run(sp, &b);
	for (uint32_t i = 0; i < n && !ret; i++) {
		if (b.plen[i] < 0)
			ret = (int)b.plen[i];
		v[i] = (struct iovec){ b.out + (uint64_t)i * room, (size_t)b.plen[i] };
	}
	if (ret)
		goto out;
	pthread_mutex_lock(&sp->lock);
	if (!vmdk_gt_load(sp, off / sp->cover, &ret))
		goto unlock;
	/* the pending grain goes first when it precedes these: the file stays in grain order */
	if (sp->pending_grain < g)
		ret = pending_out(sp);
	if (!ret)
		ret = append_packed(sp, off / sp->cover, g, n, v);
unlock:
	pthread_mutex_unlock(&sp->lock);
out:
	free(in);
	free(b.out);
	free(b.plen);
	return ret;
}

int vmdk_write_compressed(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
			    int iovcnt, uint64_t len)
{
	uint64_t done = 0;
	int ret = 0;

	while (done < len && !ret) {
		uint64_t pos = off + done, in = pos % sp->grain;
		uint64_t n = MIN(len - done, sp->cover - pos % sp->cover);
		bool last = pos + n == sp->size; /* the capacity's end counts as a grain's end */

		if (in || (n < sp->grain && !last)) {
			n = MIN(n, sp->grain - in);
			pthread_mutex_lock(&sp->lock);
			ret = vmdk_pending_write(sp, pos, iov, iovcnt, done, n);
			pthread_mutex_unlock(&sp->lock);
		} else {
			if (!last)
				n = ALIGN_DOWN(n, sp->grain);
			ret = write_whole(sp, pos, iov, iovcnt, done, n);
		}
		done += n;
	}
	return ret;
}

/* ---- the stream tail ---------------------------------------------------------------------------- */

/*
 * A stream file's tail at the append point (lock held): each table holding an entry behind a
 * GT marker, the directory behind a GD marker, the footer (the header with the directory's
 * place) behind its marker, and the end-of-stream marker; the file ends there.
 */
static int write_tail(struct vmdk_sparse *sp)
{
	uint64_t gt_sec = sp->gt_bytes / VMDK_SECTOR, dir_sec = DIV_ROUND_UP(sp->nr_gt * 4,
									  VMDK_SECTOR);
	uint64_t nonempty = 0, bytes, pos = 0, base = sp->end / VMDK_SECTOR;
	struct vmdk_header f = sp->h;
	uint8_t *buf;
	int ret;

	for (uint64_t i = 0; i < sp->nr_gt; i++) {
		vmdk_gte *t = atomic_load_explicit(&sp->gt[i], memory_order_relaxed);

		for (uint32_t j = 0; t && j < sp->h.gtes_per_gt; j++) {
			if (atomic_load_explicit(&t[j], memory_order_relaxed)) {
				nonempty++;
				break;
			}
		}
	}
	bytes = (nonempty * (1 + gt_sec) + 1 + dir_sec + 3) * VMDK_SECTOR;
	if (base + bytes / VMDK_SECTOR > UINT32_MAX)
		return -ENOSPC;
	buf = calloc(1, bytes);
	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < sp->nr_gt; i++) {
		vmdk_gte *t = atomic_load_explicit(&sp->gt[i], memory_order_relaxed);
		bool any = false;

		for (uint32_t j = 0; t && j < sp->h.gtes_per_gt && !any; j++)
			any = atomic_load_explicit(&t[j], memory_order_relaxed) != 0;
		sp->gd[i] = 0;
		if (!any)
			continue;
		vmdk_marker_put(buf + pos, gt_sec, VMDK_MARKER_GT);
		pos += VMDK_SECTOR;
		sp->gd[i] = (uint32_t)(base + pos / VMDK_SECTOR);
		for (uint32_t j = 0; j < sp->h.gtes_per_gt; j++)
			vmdk_put32(buf + pos + 4 * j, atomic_load_explicit(&t[j], memory_order_relaxed));
		pos += sp->gt_bytes;
	}
	vmdk_marker_put(buf + pos, dir_sec, VMDK_MARKER_GD);
	pos += VMDK_SECTOR;
	f.gd_offset = base + pos / VMDK_SECTOR;
	f.rgd_offset = 0;
	for (uint64_t i = 0; i < sp->nr_gt; i++)
		vmdk_put32(buf + pos + 4 * i, sp->gd[i]);
	pos += dir_sec * VMDK_SECTOR;
	vmdk_marker_put(buf + pos, 1, VMDK_MARKER_FOOTER);
	pos += VMDK_SECTOR;
	vmdk_header_put(&f, buf + pos);
	pos += 2 * VMDK_SECTOR; /* the footer, then the end-of-stream marker: a sector of zeroes */
	ret = blockdev_pwrite(sp->file, sp->end, buf, bytes);
	free(buf);
	if (!ret) {
		struct error *err = NULL;

		if (blockdev_truncate(sp->file, sp->end + bytes, &err)) {
			error_free(err);
			return -EIO;
		}
		sp->tail_dirty = false;
	}
	return ret;
}

/* What flush and close write (lock held): the pending grain, then a stream's tail or the
 * tables changed since the last flush. */
int vmdk_settle(struct vmdk_sparse *sp)
{
	int ret = 0;

	if (!sp->writable)
		return 0;
	if (sp->compressed)
		ret = pending_out(sp);
	if (!ret && sp->stream && sp->tail_dirty)
		ret = write_tail(sp);
	if (!ret && !sp->stream)
		ret = vmdk_tables_out(sp);
	return ret;
}
