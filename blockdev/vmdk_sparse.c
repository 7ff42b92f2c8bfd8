/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One hosted sparse VMDK extent (layout in vmdk_format.h): opening it, its grain tables and
 * their lookups, map(), reads and block status. Writes are in vmdk_alloc.c, compressed grains
 * and a stream's tail in vmdk_grain.c (vmdk_sparse_priv.h lists the files); what they share is
 * owned as follows.
 *
 * Who owns what.
 *  - Set at open and read-only afterwards: the header, the geometry, @stream/@compressed, the
 *    directory's length.
 *  - sp->gt[] is an array of pointers to loaded grain tables, one per directory entry, NULL
 *    until loaded. A table is loaded (read, every entry checked) under sp->lock and published
 *    with a release store; map() on any iothread loads the pointer with acquire (pairs with that
 *    store: the entries are initialised before the pointer is seen) and answers SLOW while it
 *    is NULL. Tables stay until close: memory grows with the part of the disk touched, 2 KiB
 *    per 32 MiB at qemu-img's geometry.
 *  - Table entries are atomics. An entry changes only under sp->lock, after the grain's data
 *    was written: a release store that pairs with the acquire load in map() and lookups, so
 *    whoever sees the new entry reads the new grain. The on-disk table (and its redundant
 *    copy) is written at the next flush, after the data it points at was flushed
 *    (vmdk_alloc.c).
 *  - Allocated uncompressed grains never move and are never freed, so a write to one needs no
 *    lock: the fast path and the synchronous path write them in place. A grain set to read
 *    zeroes (write-zeroes of a whole grain) is simply forgotten (leaked), as QEMU does.
 *  - sp->lock also covers the directories (gd, rgd), the sorted list of table sectors used for
 *    overlap checks, the append point @end, the tables still to write, the pending partial
 *    grain of a compressed file, and the stream tail's state. It is held while an allocating write's data goes to the file
 *    (allocations are serialized per extent: the slow path's worker and vireo-img only).
 *
 * Compressed files (streamOptimized) are written by appending: a whole grain is compressed
 * (outside the lock) and appended behind a grain marker; a partial one is merged into a
 * pending grain kept in memory until another grain is written, a flush or close (so that a
 * copy that skips zero runs inside a grain still writes it once). A stream file (directory at
 * the end) keeps its tables in memory while open for writing and writes them, the directory,
 * the footer and the end-of-stream marker at flush and close, after the last grain: between
 * flushes the file has no valid footer, which is why vireo writes such files only with
 * metadata-barriers=off (a new convert target) and never live.
 */
#include "blockdev/vmdk_sparse_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/internal.h"
#include "common/util.h"

const struct vmdk_header *vmdk_sparse_header(const struct vmdk_sparse *sp)
{
	return &sp->h;
}

bool vmdk_sparse_compressed(const struct vmdk_sparse *sp)
{
	return sp->compressed;
}

bool vmdk_sparse_stream(const struct vmdk_sparse *sp)
{
	return sp->stream;
}

/* A corruption found while running: said once on stderr, the request fails with -EIO. */
int vmdk_corrupt(struct vmdk_sparse *sp, const char *fmt, ...)
{
	va_list ap;

	if (!sp->corrupt_said) {
		sp->corrupt_said = true;
		fprintf(stderr, "vireo: '%s' is vmdk_corrupt: ", sp->file->filename);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	return -EIO;
}

/* ---- metadata ranges --------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

/* What metadata [start, start+len) overlaps, or NULL (lock held or open). */
const char *vmdk_meta_hit(const struct vmdk_sparse *sp, uint64_t start, uint64_t len)
{
	size_t lo = 0, hi = sp->nr_gt_sectors;

	for (size_t i = 0; i < sp->nr_fixed; i++)
		if (overlap(start, len, sp->fixed[i].start, sp->fixed[i].len))
			return sp->fixed[i].what;
	/* the last table starting before the range's end */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((uint64_t)sp->gt_sectors[mid] * VMDK_SECTOR < start + len)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && overlap(start, len, (uint64_t)sp->gt_sectors[lo - 1] * VMDK_SECTOR, sp->gt_bytes))
		return "a grain table";
	return NULL;
}

int vmdk_add_gt_sector(struct vmdk_sparse *sp, uint32_t sector)
{
	if (sp->nr_gt_sectors == sp->cap_gt_sectors) {
		size_t cap = sp->cap_gt_sectors ? 2 * sp->cap_gt_sectors : 64;
		uint32_t *n = realloc(sp->gt_sectors, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		sp->gt_sectors = n;
		sp->cap_gt_sectors = cap;
	}
	sp->gt_sectors[sp->nr_gt_sectors++] = sector;
	return 0;
}

/*
 * Every table of both directories lies inside the file (before @limit) and overlaps no other
 * table and no fixed metadata: sorts the table sectors for vmdk_meta_hit().
 */
static int check_tables(struct vmdk_sparse *sp, uint64_t limit, struct error **errp)
{
	for (int copy = 0; copy < 2; copy++) {
		const uint32_t *dir = copy ? sp->rgd : sp->gd;

		for (uint64_t i = 0; dir && i < sp->nr_gt; i++) {
			uint64_t at = (uint64_t)dir[i] * VMDK_SECTOR;
			const char *hit;

			if (!dir[i])
				continue;
			if (!range_within(at, sp->gt_bytes, limit)) {
				error_setg(errp, "grain table %" PRIu64 " of the %sgrain directory (sector "
					   "%" PRIu32 ") lies past the end of the file", i,
					   copy ? "redundant " : "", dir[i]);
				return -1;
			}
			hit = vmdk_meta_hit(sp, at, sp->gt_bytes);
			if (hit) {
				error_setg(errp, "grain table %" PRIu64 " of the %sgrain directory (sector "
					   "%" PRIu32 ") overlaps %s", i, copy ? "redundant " : "",
					   dir[i], hit);
				return -1;
			}
			if (vmdk_add_gt_sector(sp, dir[i])) {
				error_setg(errp, "out of memory");
				return -1;
			}
		}
	}
	if (sp->nr_gt_sectors)
		qsort(sp->gt_sectors, sp->nr_gt_sectors, sizeof(uint32_t), cmp_u32);
	for (size_t i = 1; i < sp->nr_gt_sectors; i++) {
		if ((uint64_t)sp->gt_sectors[i] * VMDK_SECTOR <
		    (uint64_t)sp->gt_sectors[i - 1] * VMDK_SECTOR + sp->gt_bytes) {
			error_setg(errp, "grain tables at sectors %" PRIu32 " and %" PRIu32 " overlap "
				   "(or one is listed twice)", sp->gt_sectors[i - 1], sp->gt_sectors[i]);
			return -1;
		}
	}
	return 0;
}

/* ---- opening ------------------------------------------------------------------------------------ */

static int read_dir(struct vmdk_sparse *sp, uint64_t sector, uint32_t **out, struct error **errp)
{
	uint64_t bytes = sp->nr_gt * 4;
	uint8_t *raw = malloc(bytes ? bytes : 1);
	uint32_t *dir = calloc(sp->nr_gt ? sp->nr_gt : 1, sizeof(*dir));
	int ret;

	if (!raw || !dir) {
		free(raw);
		free(dir);
		error_setg(errp, "out of memory for the grain directory");
		return -1;
	}
	ret = bytes ? blockdev_pread(sp->file, sector * VMDK_SECTOR, raw, bytes) : 0;
	if (ret) {
		free(raw);
		free(dir);
		error_setg_errno(errp, -ret, "reading the grain directory at sector %" PRIu64, sector);
		return -1;
	}
	for (uint64_t i = 0; i < sp->nr_gt; i++)
		dir[i] = vmdk_le32(raw + 4 * i);
	free(raw);
	*out = dir;
	return 0;
}

static void add_fixed(struct vmdk_sparse *sp, uint64_t start, uint64_t len, const char *what)
{
	if (len && sp->nr_fixed < VMDK_MAX_FIXED_META)
		sp->fixed[sp->nr_fixed++] = (struct vmdk_meta){ start, len, what };
}

/* The header, or for a stream file the footer's. */
static int read_header(struct vmdk_sparse *sp, struct error **errp)
{
	uint64_t fsize = sp->file->size;
	uint8_t buf[3 * VMDK_SECTOR] = { 0 };
	int ret = blockdev_pread(sp->file, 0, buf, MIN(fsize, VMDK_SECTOR));

	if (ret) {
		error_setg_errno(errp, -ret, "reading the VMDK header");
		return -1;
	}
	if (vmdk_header_parse(buf, MIN(fsize, VMDK_SECTOR), fsize, &sp->h, errp))
		return -1;
	if (sp->h.gd_offset != VMDK_GD_AT_END)
		return 0;
	sp->stream = true;
	if (fsize < 4 * VMDK_SECTOR) {
		error_setg(errp, "the header says the grain directory is at the end, but the file "
			   "(%" PRIu64 " bytes) has no room for a footer", fsize);
		return -1;
	}
	ret = blockdev_pread(sp->file, ALIGN_DOWN(fsize, VMDK_SECTOR) - 3 * VMDK_SECTOR, buf,
			     sizeof(buf));
	if (ret) {
		error_setg_errno(errp, -ret, "reading the stream footer");
		return -1;
	}
	return vmdk_footer_parse(buf, sizeof(buf), fsize, &sp->h, errp);
}

/*
 * A stream file opened for writing: new grains go where its directory's marker sits (the end
 * of the old tail is rewritten at the next flush); every grain and table must lie before it.
 */
static int stream_append_point(struct vmdk_sparse *sp, struct error **errp)
{
	uint8_t m[VMDK_SECTOR];
	uint64_t value;
	uint32_t size, type;
	int ret;

	if (sp->h.gd_offset < 1 ||
	    (ret = blockdev_pread(sp->file, (sp->h.gd_offset - 1) * VMDK_SECTOR, m, sizeof(m)))) {
		error_setg(errp, "cannot read the grain directory's marker");
		return -1;
	}
	if (!vmdk_marker_get(m, &value, &size, &type) || type != VMDK_MARKER_GD) {
		error_setg(errp, "no grain directory marker before the grain directory (sector "
			   "%" PRIu64 "): vireo cannot append to this stream", sp->h.gd_offset);
		return -1;
	}
	sp->end = (sp->h.gd_offset - 1) * VMDK_SECTOR;
	return 0;
}

static int setup(struct vmdk_sparse *sp, struct error **errp)
{
	struct vmdk_header *h = &sp->h;
	uint64_t dir_bytes;

	sp->compressed = h->flags & VMDK_FLAG_COMPRESS;
	sp->markers = h->flags & VMDK_FLAG_MARKERS;
	sp->zero_grain = h->flags & VMDK_FLAG_ZERO_GRAIN;
	sp->grain = h->grain_size * VMDK_SECTOR;
	sp->cover = sp->grain * h->gtes_per_gt;
	sp->gt_bytes = ALIGN_UP((uint64_t)h->gtes_per_gt * 4, VMDK_SECTOR);
	sp->nr_gt = vmdk_gd_entries(h);
	sp->size = h->capacity * VMDK_SECTOR;
	sp->end = ALIGN_UP(sp->file->size, VMDK_SECTOR);
	sp->pending_grain = UINT64_MAX;
	dir_bytes = ALIGN_UP(sp->nr_gt * 4, VMDK_SECTOR);
	add_fixed(sp, 0, VMDK_SECTOR, "the header");
	add_fixed(sp, h->desc_offset * VMDK_SECTOR, h->desc_size * VMDK_SECTOR,
		  "the embedded descriptor");
	add_fixed(sp, h->gd_offset * VMDK_SECTOR, dir_bytes, "the grain directory");
	if (sp->stream)
		add_fixed(sp, ALIGN_DOWN(sp->file->size, VMDK_SECTOR) - 3 * VMDK_SECTOR,
			  3 * VMDK_SECTOR, "the stream footer");
	if (read_dir(sp, h->gd_offset, &sp->gd, errp))
		return -1;
	if ((h->flags & VMDK_FLAG_RGD) && h->rgd_offset && !sp->stream) {
		add_fixed(sp, h->rgd_offset * VMDK_SECTOR, dir_bytes,
			  "the redundant grain directory");
		if (read_dir(sp, h->rgd_offset, &sp->rgd, errp))
			return -1;
	}
	if (sp->writable && sp->stream && stream_append_point(sp, errp))
		return -1;
	if (check_tables(sp, sp->stream && sp->writable ? sp->end : sp->file->size, errp))
		return -1;
	sp->gt = calloc(sp->nr_gt ? sp->nr_gt : 1, sizeof(*sp->gt));
	if (!sp->gt) {
		error_setg(errp, "out of memory for %" PRIu64 " grain tables", sp->nr_gt);
		return -1;
	}
	return 0;
}

static void sparse_free(struct vmdk_sparse *sp)
{
	for (uint64_t i = 0; sp->gt && i < sp->nr_gt; i++)
		free((void *)atomic_load_explicit(&sp->gt[i], memory_order_relaxed));
	free(sp->gt);
	free(sp->gd);
	free(sp->rgd);
	free(sp->gt_sectors);
	free(sp->pending_buf);
	free(sp->gt_dirty);
	free(sp->dirty);
	vmdk_zpool_free(sp->zpool);
	pthread_mutex_destroy(&sp->lock);
	free(sp);
}

int vmdk_sparse_open(struct blockdev *file, bool writable, bool barriers,
		     struct vmdk_sparse **out, struct error **errp)
{
	struct vmdk_sparse *sp = calloc(1, sizeof(*sp));

	if (!sp) {
		error_setg(errp, "out of memory");
		return -1;
	}
	pthread_mutex_init(&sp->lock, NULL);
	sp->file = file;
	sp->writable = writable;
	sp->barriers = barriers;
	if (read_header(sp, errp) || setup(sp, errp))
		goto fail;
	if (writable && sp->stream) {
		/* its tables are rewritten at the end: all of them are needed in memory */
		for (uint64_t i = 0; i < sp->nr_gt; i++) {
			int err;

			if (!vmdk_gt_load(sp, i, &err)) {
				error_setg_errno(errp, -err, "loading grain table %" PRIu64, i);
				goto fail;
			}
		}
	}
	*out = sp;
	return 0;
fail:
	sparse_free(sp);
	return -1;
}

/* ---- grain tables ------------------------------------------------------------------------------- */

/* Whether entry @e of a loaded table may be used: a grain inside the file and not on metadata. */
static bool entry_ok(struct vmdk_sparse *sp, uint32_t e, const char **why)
{
	uint64_t at = (uint64_t)e * VMDK_SECTOR;

	if (e == 0 || (e == VMDK_GTE_ZEROED && sp->zero_grain))
		return true;
	if (at >= sp->end) {
		*why = "lies past the end of the file";
		return false;
	}
	*why = vmdk_meta_hit(sp, at, sp->compressed ? VMDK_GRAIN_MARKER_LEN : sp->grain);
	if (*why)
		return false;
	if (!sp->compressed && at + sp->grain > sp->end)
		sp->end = ALIGN_UP(at + sp->grain, VMDK_SECTOR); /* a short last grain: allocate after it */
	return true;
}

/* Table @gi, loaded and checked if it was not (lock held); NULL with *err. */
vmdk_gte *vmdk_gt_load(struct vmdk_sparse *sp, uint64_t gi, int *err)
{
	vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_relaxed);
	uint32_t n = sp->h.gtes_per_gt;
	uint8_t *raw;

	if (t)
		return t;
	t = calloc(n, sizeof(*t));
	raw = malloc(sp->gt_bytes);
	if (!t || !raw) {
		*err = -ENOMEM;
		goto fail;
	}
	if (sp->gd[gi]) {
		*err = blockdev_pread(sp->file, (uint64_t)sp->gd[gi] * VMDK_SECTOR, raw, sp->gt_bytes);
		if (*err)
			goto fail;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t e = vmdk_le32(raw + 4 * i);
			const char *why;

			if (!entry_ok(sp, e, &why)) {
				*err = vmdk_corrupt(sp, "entry %" PRIu32 " of grain table %" PRIu64 " (sector "
					       "%" PRIu32 ") points at sector %" PRIu32 ", which %s%s",
					       i, gi, sp->gd[gi], e, why[0] == 'l' ? "" : "overlaps ",
					       why);
				goto fail;
			}
			atomic_init(&t[i], e);
		}
	}
	free(raw);
	/* publishes the initialised entries: pairs with the acquire loads of map() and lookups */
	atomic_store_explicit(&sp->gt[gi], t, memory_order_release);
	return t;
fail:
	free(raw);
	free(t);
	return NULL;
}

/* Table @gi for a lookup: lock-free when loaded, else loaded under the lock. */
vmdk_gte *vmdk_gt_get(struct vmdk_sparse *sp, uint64_t gi, int *err)
{
	vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_acquire);

	if (t)
		return t;
	pthread_mutex_lock(&sp->lock);
	t = vmdk_gt_load(sp, gi, err);
	pthread_mutex_unlock(&sp->lock);
	return t;
}

/* Classifies [off, off + max) from table @t: the first grain's kind, and how far the same kind
 * goes (data only while the grains are contiguous in the file; compressed: one grain). */
void vmdk_classify(const struct vmdk_sparse *sp, vmdk_gte *t, uint64_t off, uint64_t max,
		     struct vmdk_piece *p)
{
	uint64_t in_gt = off % sp->cover, in_grain = off % sp->grain;
	uint32_t idx = (uint32_t)(in_gt / sp->grain), n = sp->h.gtes_per_gt;
	uint64_t len = MIN(max, sp->grain - in_grain), room = MIN(max, sp->cover - in_gt);

	p->e = atomic_load_explicit(&t[idx], memory_order_acquire);
	p->kind = vmdk_kind(sp, p->e);
	p->host = (uint64_t)p->e * VMDK_SECTOR + in_grain;
	if (p->kind != K_COMPRESSED) {
		for (uint32_t i = idx + 1; i < n && len < room; i++) {
			uint32_t e = atomic_load_explicit(&t[i], memory_order_acquire);
			enum vmdk_kind k = vmdk_kind(sp, e);

			if (p->kind == K_DATA ? e != p->e + (i - idx) * sp->h.grain_size :
						(k != K_UNALLOC && k != K_ZERO) || k != p->kind)
				break;
			len = MIN(room, len + sp->grain);
		}
	}
	p->len = len;
}

int vmdk_sparse_map(struct vmdk_sparse *sp, enum blockdev_op op, uint64_t off, uint64_t len,
		    struct blockdev_extent *ext)
{
	vmdk_gte *t = atomic_load_explicit(&sp->gt[off / sp->cover], memory_order_acquire);
	struct vmdk_piece p;

	if (!t || (sp->compressed && sp->writable)) {
		*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_SLOW,
						 .len = MIN(len, sp->cover - off % sp->cover) };
		return 0;
	}
	vmdk_classify(sp, t, off, len, &p);
	*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_SLOW, .len = p.len };
	switch (p.kind) {
	case K_UNALLOC:
	case K_ZERO:
		if (op != BLOCKDEV_OP_WRITE)
			ext->kind = BLOCKDEV_EXTENT_ZERO; /* reads zeroes; discard, zeroes: done */
		break;
	case K_DATA:
		ext->kind = BLOCKDEV_EXTENT_DATA;
		ext->file = sp->file;
		ext->host_offset = p.host;
		break;
	case K_COMPRESSED:
		if (op == BLOCKDEV_OP_DISCARD)
			ext->kind = BLOCKDEV_EXTENT_ZERO; /* a hint: nothing to do */
		break;
	}
	return 0;
}

/* ---- reading ------------------------------------------------------------------------------------ */

/* Reads or writes [skip, skip + len) of @iov at @host of the file. */
int vmdk_file_io(struct vmdk_sparse *sp, bool write, uint64_t host, const struct iovec *iov,
		   int iovcnt, uint64_t skip, uint64_t len)
{
	struct iovec small[16], *v = small;
	int n = blockdev_iov_slice(iov, iovcnt, skip, len, small, (int)ARRAY_SIZE(small)), ret;

	if (n < 0)
		return n;
	if (n > (int)ARRAY_SIZE(small)) {
		v = malloc((size_t)n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		n = blockdev_iov_slice(iov, iovcnt, skip, len, v, n);
	}
	ret = write ? blockdev_pwritev(sp->file, host, v, n) : blockdev_preadv(sp->file, host, v, n);
	if (v != small)
		free(v);
	return ret;
}

int vmdk_sparse_readv(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov, int iovcnt)
{
	uint64_t len = blockdev_iov_size(iov, iovcnt), done = 0;
	uint8_t *gbuf = NULL;
	int ret = 0;

	while (done < len && !ret) {
		uint64_t pos = off + done;
		vmdk_gte *t = vmdk_gt_get(sp, pos / sp->cover, &ret);
		struct vmdk_piece p;

		if (!t)
			break;
		vmdk_classify(sp, t, pos, len - done, &p);
		if (sp->compressed && sp->writable) {
			bool hit;

			p.len = MIN(p.len, sp->grain - pos % sp->grain);
			pthread_mutex_lock(&sp->lock);
			hit = vmdk_pending_read(sp, pos, p.len, iov, iovcnt, done);
			pthread_mutex_unlock(&sp->lock);
			if (hit) {
				done += p.len;
				continue;
			}
		}
		switch (p.kind) {
		case K_UNALLOC:
		case K_ZERO:
			blockdev_iov_zero(iov, iovcnt, done, p.len);
			break;
		case K_DATA:
			ret = vmdk_file_io(sp, false, p.host, iov, iovcnt, done, p.len);
			break;
		case K_COMPRESSED:
			if (!gbuf && !(gbuf = malloc(sp->grain))) {
				ret = -ENOMEM;
				break;
			}
			ret = vmdk_grain_inflate(sp, pos / sp->grain, p.e, gbuf);
			if (!ret)
				blockdev_iov_from_buf(iov, iovcnt, done, gbuf + pos % sp->grain, p.len);
			break;
		}
		done += p.len;
	}
	free(gbuf);
	return ret;
}

int vmdk_sparse_status(struct vmdk_sparse *sp, uint64_t off, uint64_t len, uint64_t *pnum,
		       uint64_t *map_offset, struct blockdev **map_file)
{
	uint64_t done = 0;
	enum vmdk_kind kind = K_UNALLOC;
	int ret = 0;

	/* runs of one kind, across tables; data only while contiguous in the file */
	while (done < len) {
		vmdk_gte *t = vmdk_gt_get(sp, (off + done) / sp->cover, &ret);
		struct vmdk_piece p;
		bool pending;

		if (!t)
			return ret;
		vmdk_classify(sp, t, off + done, len - done, &p);
		pending = false;
		if (sp->compressed && sp->writable) {
			pthread_mutex_lock(&sp->lock);
			pending = sp->pending_grain == (off + done) / sp->grain;
			pthread_mutex_unlock(&sp->lock);
		}
		if (pending) {
			p.kind = K_COMPRESSED;
			p.len = MIN(p.len, sp->grain - (off + done) % sp->grain);
		}
		if (!done) {
			kind = p.kind;
			*map_offset = p.host;
			*map_file = sp->file;
		} else if (p.kind != kind || kind == K_COMPRESSED ||
			   (kind == K_DATA && p.host != *map_offset + done)) {
			break;
		}
		done += p.len;
		if (kind == K_DATA || kind == K_COMPRESSED)
			break; /* one contiguous run is enough: the caller asks again */
	}
	*pnum = done;
	switch (kind) {
	case K_UNALLOC:
		return BLOCKDEV_STATUS_ZERO;
	case K_ZERO:
		return BLOCKDEV_STATUS_ZERO | BLOCKDEV_STATUS_ALLOCATED;
	case K_COMPRESSED:
		return BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED | BLOCKDEV_STATUS_COMPRESSED;
	case K_DATA:
	default:
		return BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED | BLOCKDEV_STATUS_OFFSET;
	}
}


int vmdk_sparse_flush(struct vmdk_sparse *sp)
{
	int ret;

	pthread_mutex_lock(&sp->lock);
	ret = vmdk_settle(sp);
	pthread_mutex_unlock(&sp->lock);
	return ret ?: blockdev_flush(sp->file);
}

int vmdk_sparse_close(struct vmdk_sparse *sp)
{
	int ret;

	if (!sp)
		return 0;
	pthread_mutex_lock(&sp->lock);
	ret = vmdk_settle(sp);
	pthread_mutex_unlock(&sp->lock);
	if (ret)
		fprintf(stderr, "vireo: '%s': writing the grain tables at close: %s\n",
			sp->file->filename, strerror(-ret));
	sparse_free(sp);
	return ret;
}


/* ---- the embedded descriptor -------------------------------------------------------------------- */

int vmdk_sparse_read_desc(struct vmdk_sparse *sp, char **text, size_t *len)
{
	uint64_t bytes = sp->h.desc_size * VMDK_SECTOR;
	char *buf;
	int ret;

	*text = NULL;
	*len = 0;
	if (!bytes)
		return 0;
	buf = malloc(bytes + 1);
	if (!buf)
		return -ENOMEM;
	ret = blockdev_pread(sp->file, sp->h.desc_offset * VMDK_SECTOR, buf, bytes);
	if (ret) {
		free(buf);
		return ret;
	}
	buf[bytes] = '\0';
	*text = buf;
	*len = strlen(buf);
	return 0;
}

int vmdk_sparse_write_desc(struct vmdk_sparse *sp, const char *text, size_t len)
{
	uint64_t bytes = sp->h.desc_size * VMDK_SECTOR;
	char *buf;
	int ret;

	if (len > bytes)
		return -ENOSPC;
	buf = calloc(1, bytes);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, text, len);
	ret = blockdev_pwrite(sp->file, sp->h.desc_offset * VMDK_SECTOR, buf, bytes);
	free(buf);
	return ret;
}

