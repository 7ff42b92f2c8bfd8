/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One hosted sparse VMDK extent: grain tables, allocation, compressed grains and the stream
 * footer (layout in vmdk_format.h).
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
 *    was written (and, with barriers, made durable): a release store that pairs with the
 *    acquire load in map() and lookups, so whoever sees the new entry reads the new grain.
 *    The on-disk table (and its redundant copy) is written after the entry is stored.
 *  - Allocated uncompressed grains never move and are never freed, so a write to one needs no
 *    lock: the fast path and the synchronous path write them in place. A grain set to read
 *    zeroes (write-zeroes of a whole grain) is simply forgotten (leaked), as QEMU does.
 *  - sp->lock also covers the directories (gd, rgd), the sorted list of table sectors used for
 *    overlap checks, the append point @end, the pending partial grain of a compressed file,
 *    and the stream tail's state. It is held while an allocating write's data goes to the file
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
#include "blockdev/vmdk.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "blockdev/internal.h"
#include "common/util.h"

typedef _Atomic uint32_t vmdk_gte;

/* a fixed metadata range (bytes) and what it is, for messages */
struct meta {
	uint64_t start, len;
	const char *what;
};

#define MAX_FIXED_META 5

struct vmdk_sparse {
	struct blockdev *file;
	struct vmdk_header h;       /* the footer's header for a stream file */
	bool stream, compressed, markers, zero_grain;
	bool writable, barriers;
	uint64_t grain;             /* bytes per grain */
	uint64_t cover;             /* bytes one grain table covers */
	uint64_t gt_bytes;          /* a table on disk, whole sectors */
	uint64_t nr_gt;             /* directory entries */
	uint64_t size;              /* capacity in bytes */
	vmdk_gte *_Atomic *gt;

	pthread_mutex_t lock;
	uint32_t *gd, *rgd;         /* table sectors (rgd NULL: no redundant copy) */
	struct meta fixed[MAX_FIXED_META];
	size_t nr_fixed;
	uint32_t *gt_sectors;       /* every table's sector (both copies), sorted */
	size_t nr_gt_sectors, cap_gt_sectors;
	uint64_t end;               /* where the next grain goes */
	bool tail_dirty;            /* stream: tables, directory and footer to write */
	uint64_t pending_grain;     /* compressed: the grain in @pending_buf, UINT64_MAX: none */
	uint8_t *pending_buf;
	bool corrupt_said;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

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
static int corrupt(struct vmdk_sparse *sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int corrupt(struct vmdk_sparse *sp, const char *fmt, ...)
{
	va_list ap;

	if (!sp->corrupt_said) {
		sp->corrupt_said = true;
		fprintf(stderr, "vireo: '%s' is corrupt: ", sp->file->filename);
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
static const char *meta_hit(const struct vmdk_sparse *sp, uint64_t start, uint64_t len)
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

static int add_gt_sector(struct vmdk_sparse *sp, uint32_t sector)
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
 * table and no fixed metadata: sorts the table sectors for meta_hit().
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
			hit = meta_hit(sp, at, sp->gt_bytes);
			if (hit) {
				error_setg(errp, "grain table %" PRIu64 " of the %sgrain directory (sector "
					   "%" PRIu32 ") overlaps %s", i, copy ? "redundant " : "",
					   dir[i], hit);
				return -1;
			}
			if (add_gt_sector(sp, dir[i])) {
				error_setg(errp, "out of memory");
				return -1;
			}
		}
	}
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
		dir[i] = le32(raw + 4 * i);
	free(raw);
	*out = dir;
	return 0;
}

static void add_fixed(struct vmdk_sparse *sp, uint64_t start, uint64_t len, const char *what)
{
	if (len && sp->nr_fixed < MAX_FIXED_META)
		sp->fixed[sp->nr_fixed++] = (struct meta){ start, len, what };
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
	pthread_mutex_destroy(&sp->lock);
	free(sp);
}

static vmdk_gte *gt_load(struct vmdk_sparse *sp, uint64_t gi, int *err);

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

			if (!gt_load(sp, i, &err)) {
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
	*why = meta_hit(sp, at, sp->compressed ? VMDK_GRAIN_MARKER_LEN : sp->grain);
	if (*why)
		return false;
	if (!sp->compressed && at + sp->grain > sp->end)
		sp->end = ALIGN_UP(at + sp->grain, VMDK_SECTOR); /* a short last grain: allocate after it */
	return true;
}

/* Table @gi, loaded and checked if it was not (lock held); NULL with *err. */
static vmdk_gte *gt_load(struct vmdk_sparse *sp, uint64_t gi, int *err)
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
			uint32_t e = le32(raw + 4 * i);
			const char *why;

			if (!entry_ok(sp, e, &why)) {
				*err = corrupt(sp, "entry %" PRIu32 " of grain table %" PRIu64 " (sector "
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
static vmdk_gte *gt_get(struct vmdk_sparse *sp, uint64_t gi, int *err)
{
	vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_acquire);

	if (t)
		return t;
	pthread_mutex_lock(&sp->lock);
	t = gt_load(sp, gi, err);
	pthread_mutex_unlock(&sp->lock);
	return t;
}

enum kind { K_UNALLOC, K_ZERO, K_DATA, K_COMPRESSED };

static enum kind kind_of(const struct vmdk_sparse *sp, uint32_t e)
{
	if (!e)
		return K_UNALLOC;
	if (e == VMDK_GTE_ZEROED && sp->zero_grain)
		return K_ZERO;
	return sp->compressed ? K_COMPRESSED : K_DATA;
}

/* A run of grains of one kind from @off, inside one table. */
struct piece {
	enum kind kind;
	uint64_t len;
	uint32_t e;      /* the first grain's entry */
	uint64_t host;   /* K_DATA: the byte in the file */
};

/* Classifies [off, off + max) from table @t: the first grain's kind, and how far the same kind
 * goes (data only while the grains are contiguous in the file; compressed: one grain). */
static void classify(const struct vmdk_sparse *sp, vmdk_gte *t, uint64_t off, uint64_t max,
		     struct piece *p)
{
	uint64_t in_gt = off % sp->cover, in_grain = off % sp->grain;
	uint32_t idx = (uint32_t)(in_gt / sp->grain), n = sp->h.gtes_per_gt;
	uint64_t len = MIN(max, sp->grain - in_grain), room = MIN(max, sp->cover - in_gt);

	p->e = atomic_load_explicit(&t[idx], memory_order_acquire);
	p->kind = kind_of(sp, p->e);
	p->host = (uint64_t)p->e * VMDK_SECTOR + in_grain;
	if (p->kind != K_COMPRESSED) {
		for (uint32_t i = idx + 1; i < n && len < room; i++) {
			uint32_t e = atomic_load_explicit(&t[i], memory_order_acquire);
			enum kind k = kind_of(sp, e);

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
	struct piece p;

	if (!t || (sp->compressed && sp->writable)) {
		*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_SLOW,
						 .len = MIN(len, sp->cover - off % sp->cover) };
		return 0;
	}
	classify(sp, t, off, len, &p);
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
static int file_io(struct vmdk_sparse *sp, bool write, uint64_t host, const struct iovec *iov,
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

/* The bytes of grain @g that lie inside the capacity (fewer only for the last grain). */
static uint64_t grain_len(const struct vmdk_sparse *sp, uint64_t g)
{
	return MIN(sp->grain, sp->size - g * sp->grain);
}

/* Grain @g stored compressed at entry @e, inflated into @out (sp->grain bytes). */
static int read_compressed(struct vmdk_sparse *sp, uint64_t g, uint32_t e, uint8_t *out)
{
	uint64_t at = (uint64_t)e * VMDK_SECTOR, csize, max = 2 * sp->grain + 4096;
	uint8_t hdr[VMDK_GRAIN_MARKER_LEN], *cbuf;
	uLongf outlen = (uLongf)sp->grain;
	int ret, zret;

	if (sp->markers) {
		ret = blockdev_pread(sp->file, at, hdr, sizeof(hdr));
		if (ret)
			return ret;
		csize = le32(hdr + 8);
		at += VMDK_GRAIN_MARKER_LEN;
	} else {
		csize = MIN(max, sp->file->size > at ? sp->file->size - at : 0);
	}
	if (!csize || csize > max || !range_within(at, csize, MAX(sp->file->size, sp->end)))
		return corrupt(sp, "the compressed grain at sector %" PRIu32 " says it holds %" PRIu64
			       " bytes (past the end of the file, or more than a grain can need)",
			       e, csize);
	cbuf = malloc(csize);
	if (!cbuf)
		return -ENOMEM;
	ret = blockdev_pread(sp->file, at, cbuf, csize);
	if (!ret) {
		zret = uncompress(out, &outlen, cbuf, (uLong)csize);
		if ((zret != Z_OK && !(zret == Z_BUF_ERROR && !sp->markers)) ||
		    outlen < grain_len(sp, g))
			ret = corrupt(sp, "the compressed grain at sector %" PRIu32 " does not inflate "
				      "to a grain (zlib %d, %lu bytes)", e, zret,
				      (unsigned long)outlen);
		else if (outlen < sp->grain)
			memset(out + outlen, 0, sp->grain - outlen);
	}
	free(cbuf);
	return ret;
}

/* The current content of grain @g (whose entry is @e) into @out (lock held or not needed). */
static int grain_content(struct vmdk_sparse *sp, uint64_t g, uint32_t e, uint8_t *out)
{
	switch (kind_of(sp, e)) {
	case K_UNALLOC:
	case K_ZERO:
		memset(out, 0, sp->grain);
		return 0;
	case K_COMPRESSED:
		return read_compressed(sp, g, e, out);
	case K_DATA:
	default:
		return blockdev_pread(sp->file, (uint64_t)e * VMDK_SECTOR, out, grain_len(sp, g));
	}
}

/* Copies the pending grain's part into @iov when [off, off+len) lies in it (lock held). */
static bool read_pending(struct vmdk_sparse *sp, uint64_t off, uint64_t len,
			 const struct iovec *iov, int iovcnt, uint64_t skip)
{
	if (sp->pending_grain != off / sp->grain)
		return false;
	blockdev_iov_from_buf(iov, iovcnt, skip, sp->pending_buf + off % sp->grain, len);
	return true;
}

int vmdk_sparse_readv(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov, int iovcnt)
{
	uint64_t len = blockdev_iov_size(iov, iovcnt), done = 0;
	uint8_t *gbuf = NULL;
	int ret = 0;

	while (done < len && !ret) {
		uint64_t pos = off + done;
		vmdk_gte *t = gt_get(sp, pos / sp->cover, &ret);
		struct piece p;

		if (!t)
			break;
		classify(sp, t, pos, len - done, &p);
		if (sp->compressed && sp->writable) {
			bool hit;

			p.len = MIN(p.len, sp->grain - pos % sp->grain);
			pthread_mutex_lock(&sp->lock);
			hit = read_pending(sp, pos, p.len, iov, iovcnt, done);
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
			ret = file_io(sp, false, p.host, iov, iovcnt, done, p.len);
			break;
		case K_COMPRESSED:
			if (!gbuf && !(gbuf = malloc(sp->grain))) {
				ret = -ENOMEM;
				break;
			}
			ret = read_compressed(sp, pos / sp->grain, p.e, gbuf);
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
	enum kind kind = K_UNALLOC;
	int ret = 0;

	/* runs of one kind, across tables; data only while contiguous in the file */
	while (done < len) {
		vmdk_gte *t = gt_get(sp, (off + done) / sp->cover, &ret);
		struct piece p;
		bool pending;

		if (!t)
			return ret;
		classify(sp, t, off + done, len - done, &p);
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

/* ---- writing ------------------------------------------------------------------------------------ */

/* Writes the on-disk sectors of table @gi holding entries [first, last] (and the redundant
 * copy's), from the in-memory table (lock held). */
static int gt_store(struct vmdk_sparse *sp, uint64_t gi, uint32_t first, uint32_t last)
{
	vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_relaxed);
	uint32_t a = first / 128 * 128, b = MIN(last / 128 * 128 + 128, sp->h.gtes_per_gt);
	uint64_t bytes = ALIGN_UP((uint64_t)(b - a) * 4, VMDK_SECTOR);
	uint8_t buf[VMDK_MAX_GTES * 4] = { 0 };
	int ret = 0;

	if (sp->stream) {
		sp->tail_dirty = true;
		return 0;
	}
	for (uint32_t i = a; i < b; i++)
		put32(buf + 4 * (i - a), atomic_load_explicit(&t[i], memory_order_relaxed));
	ret = blockdev_pwrite(sp->file, (uint64_t)sp->gd[gi] * VMDK_SECTOR + (uint64_t)a * 4, buf,
			      bytes);
	if (!ret && sp->rgd && sp->rgd[gi])
		ret = blockdev_pwrite(sp->file, (uint64_t)sp->rgd[gi] * VMDK_SECTOR + (uint64_t)a * 4,
				      buf, bytes);
	return ret;
}

/* Writes directory entry @gi of @dir (at @sector) to the file (lock held). */
static int dir_store(struct vmdk_sparse *sp, const uint32_t *dir, uint64_t sector, uint64_t gi)
{
	uint64_t a = gi / 128 * 128, b = MIN(a + 128, sp->nr_gt);
	uint8_t buf[VMDK_SECTOR] = { 0 };

	for (uint64_t i = a; i < b; i++)
		put32(buf + 4 * (i - a), dir[i]);
	return blockdev_pwrite(sp->file, sector * VMDK_SECTOR + a * 4, buf, VMDK_SECTOR);
}

/* Table @gi has a place on disk (lock held): a new zeroed one (and its redundant copy) is
 * appended and the directories point at it. A stream file keeps its tables in memory. */
static int gt_place(struct vmdk_sparse *sp, uint64_t gi)
{
	uint8_t *zero;
	uint64_t at = sp->end, rat = 0;
	int ret;

	if (sp->stream || sp->gd[gi])
		return 0;
	if (sp->end / VMDK_SECTOR + 2 * sp->gt_bytes / VMDK_SECTOR > UINT32_MAX)
		return -ENOSPC;
	zero = calloc(1, 2 * sp->gt_bytes);
	if (!zero)
		return -ENOMEM;
	if (sp->rgd)
		rat = at + sp->gt_bytes;
	ret = blockdev_pwrite(sp->file, at, zero, sp->rgd ? 2 * sp->gt_bytes : sp->gt_bytes);
	free(zero);
	if (!ret && sp->barriers)
		ret = blockdev_flush(sp->file);
	if (ret)
		return ret;
	sp->gd[gi] = (uint32_t)(at / VMDK_SECTOR);
	if (sp->rgd)
		sp->rgd[gi] = (uint32_t)(rat / VMDK_SECTOR);
	ret = dir_store(sp, sp->gd, sp->h.gd_offset, gi);
	if (!ret && sp->rgd)
		ret = dir_store(sp, sp->rgd, sp->h.rgd_offset, gi);
	if (ret)
		return ret;
	sp->end += sp->rgd ? 2 * sp->gt_bytes : sp->gt_bytes;
	ret = add_gt_sector(sp, sp->gd[gi]);
	if (!ret && sp->rgd)
		ret = add_gt_sector(sp, sp->rgd[gi]);
	return ret;
}

/* Points entries [idx, idx + n) of table @gi at the grains from sector @first, @step apart
 * (0: the given sectors), then writes the table (lock held; the grains are written). */
static int set_entries(struct vmdk_sparse *sp, uint64_t gi, uint32_t idx, uint32_t n,
		       const uint32_t *sectors)
{
	vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_relaxed);

	if (!n)
		return 0;
	if (sp->barriers && !sp->stream) {
		int ret = blockdev_flush(sp->file); /* the data before the entries that point at it */

		if (ret)
			return ret;
	}
	for (uint32_t i = 0; i < n; i++)
		/* pairs with the acquire loads of map() and lookups: the grain is written */
		atomic_store_explicit(&t[idx + i], sectors[i], memory_order_release);
	return gt_store(sp, gi, idx, idx + n - 1);
}

/*
 * Uncompressed: [off, off + len) (inside one table) where grains are not allocated: as many
 * unallocated grains as follow are appended together, the partial first and last filled from
 * what they read now (zeroes). Returns the bytes written or -errno.
 */
static int64_t alloc_run(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
			 int iovcnt, uint64_t skip, uint64_t len)
{
	uint64_t gi = off / sp->cover, g0 = off / sp->grain, head = off % sp->grain;
	uint32_t idx = (uint32_t)(off % sp->cover / sp->grain), n = 0;
	uint32_t sectors[VMDK_MAX_GTES];
	uint64_t bytes, end;
	uint8_t *buf = NULL;
	vmdk_gte *t;
	int ret = 0;

	pthread_mutex_lock(&sp->lock);
	t = gt_load(sp, gi, &ret);
	if (!t || (ret = gt_place(sp, gi)))
		goto out;
	len = MIN(len, sp->cover - off % sp->cover);
	/* the grains the range touches that are still unallocated (another write may have
	 * allocated the first meanwhile: then write in place, as the caller would) */
	while (idx + n < sp->h.gtes_per_gt && (uint64_t)n * sp->grain < head + len &&
	       kind_of(sp, atomic_load_explicit(&t[idx + n], memory_order_relaxed)) != K_DATA)
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
		ret = file_io(sp, true, sp->end, iov, iovcnt, skip, bytes);
	}
	for (uint32_t i = 0; i < n && !ret; i++)
		sectors[i] = (uint32_t)(sp->end / VMDK_SECTOR + i * sp->h.grain_size);
	if (!ret) {
		sp->end += bytes;
		ret = set_entries(sp, gi, idx, n, sectors);
	}
	(void)g0;
	free(buf);
	pthread_mutex_unlock(&sp->lock);
	return ret ? ret : (int64_t)(end - head);
out:
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

/* ---- compressed grains -------------------------------------------------------------------------- */

/* Grain @g's @data (sp->grain bytes, its tail beyond the capacity ignored) compressed behind
 * its marker into @out (room: compressBound + marker + a sector); returns the sector-padded
 * length or -errno. */
static int64_t pack_grain(const struct vmdk_sparse *sp, uint64_t g, const uint8_t *data,
			  uint8_t *out, uint64_t room)
{
	uint64_t hdr = sp->markers ? VMDK_GRAIN_MARKER_LEN : 0, glen = grain_len(sp, g);
	uLongf clen = (uLongf)(room - hdr);
	uint64_t total;

	if (compress2(out + hdr, &clen, data, (uLong)glen, Z_DEFAULT_COMPRESSION) != Z_OK)
		return -EIO;
	if (sp->markers) {
		put64(out, g * sp->h.grain_size);
		put32(out + 8, (uint32_t)clen);
	}
	total = ALIGN_UP(hdr + clen, VMDK_SECTOR);
	memset(out + hdr + clen, 0, total - hdr - clen);
	return (int64_t)total;
}

static uint64_t pack_room(const struct vmdk_sparse *sp)
{
	return ALIGN_UP(compressBound((uLong)sp->grain) + VMDK_GRAIN_MARKER_LEN, VMDK_SECTOR) +
	       VMDK_SECTOR;
}

/* Appends @len packed bytes holding grains [g, g + n) of table @gi at @sectors' offsets (lock
 * held) and points their entries at them. */
static int append_packed(struct vmdk_sparse *sp, uint64_t gi, uint64_t g, uint32_t n,
			 const uint8_t *packed, const uint64_t *offs, uint64_t len)
{
	uint32_t sectors[VMDK_MAX_GTES];
	int ret;

	if (sp->end / VMDK_SECTOR + len / VMDK_SECTOR > UINT32_MAX)
		return -ENOSPC;
	ret = gt_place(sp, gi) ?: blockdev_pwrite(sp->file, sp->end, packed, len);
	if (ret)
		return ret;
	for (uint32_t i = 0; i < n; i++)
		sectors[i] = (uint32_t)((sp->end + offs[i]) / VMDK_SECTOR);
	sp->end += len;
	if (sp->pending_grain >= g && sp->pending_grain < g + n)
		sp->pending_grain = UINT64_MAX; /* overwritten whole */
	return set_entries(sp, gi, (uint32_t)(g % sp->h.gtes_per_gt), n, sectors);
}

/* Compresses and appends the pending grain (lock held). */
static int pending_out(struct vmdk_sparse *sp)
{
	uint64_t g = sp->pending_grain, off = 0;
	uint8_t *packed;
	int64_t len;
	int ret;

	if (g == UINT64_MAX)
		return 0;
	packed = malloc(pack_room(sp));
	if (!packed)
		return -ENOMEM;
	len = pack_grain(sp, g, sp->pending_buf, packed, pack_room(sp));
	ret = len < 0 ? (int)len :
			append_packed(sp, g * sp->grain / sp->cover, g, 1, packed, &off,
				      (uint64_t)len);
	free(packed);
	if (!ret)
		sp->pending_grain = UINT64_MAX;
	return ret;
}

/* [off, off + len) inside grain @g, partial: merged into the pending grain (lock held). */
static int write_partial(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
			 int iovcnt, uint64_t skip, uint64_t len)
{
	uint64_t g = off / sp->grain;
	int ret = 0;

	if (sp->pending_grain != g) {
		vmdk_gte *t;

		ret = pending_out(sp);
		if (ret)
			return ret;
		t = gt_load(sp, off / sp->cover, &ret);
		if (!t)
			return ret;
		if (!sp->pending_buf && !(sp->pending_buf = malloc(sp->grain)))
			return -ENOMEM;
		ret = grain_content(sp, g, atomic_load_explicit(&t[g % sp->h.gtes_per_gt],
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
 * the capacity): compressed outside the lock, appended under it. */
static int write_whole(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
		       int iovcnt, uint64_t skip, uint64_t len)
{
	uint64_t g = off / sp->grain, room = pack_room(sp), used = 0;
	uint32_t n = (uint32_t)DIV_ROUND_UP(len, sp->grain);
	uint64_t offs[VMDK_MAX_GTES];
	uint8_t *packed = malloc(room * n), *gbuf = malloc(sp->grain);
	int ret = 0;

	if (!packed || !gbuf) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t glen = MIN(sp->grain, len - (uint64_t)i * sp->grain);
		int64_t plen;

		blockdev_iov_to_buf(iov, iovcnt, skip + (uint64_t)i * sp->grain, gbuf, glen);
		if (glen < sp->grain)
			memset(gbuf + glen, 0, sp->grain - glen);
		plen = pack_grain(sp, g + i, gbuf, packed + used, room);
		if (plen < 0) {
			ret = (int)plen;
			goto out;
		}
		offs[i] = used;
		used += (uint64_t)plen;
	}
	pthread_mutex_lock(&sp->lock);
	if (!gt_load(sp, off / sp->cover, &ret))
		goto unlock;
	/* the pending grain goes first when it precedes these: the file stays in grain order */
	if (sp->pending_grain < g)
		ret = pending_out(sp);
	if (!ret)
		ret = append_packed(sp, off / sp->cover, g, n, packed, offs, used);
unlock:
	pthread_mutex_unlock(&sp->lock);
out:
	free(packed);
	free(gbuf);
	return ret;
}

static int write_compressed(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
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
			ret = write_partial(sp, pos, iov, iovcnt, done, n);
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

int vmdk_sparse_writev(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
		       int iovcnt)
{
	uint64_t len = blockdev_iov_size(iov, iovcnt), done = 0;
	int ret = 0;

	if (!sp->writable)
		return -EROFS;
	if (sp->compressed)
		return write_compressed(sp, off, iov, iovcnt, len);
	while (done < len && !ret) {
		uint64_t pos = off + done;
		vmdk_gte *t = gt_get(sp, pos / sp->cover, &ret);
		struct piece p;
		int64_t n;

		if (!t)
			break;
		classify(sp, t, pos, len - done, &p);
		if (p.kind == K_DATA) {
			ret = file_io(sp, true, p.host, iov, iovcnt, done, p.len);
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
		vmdk_gte *t = gt_get(sp, pos / sp->cover, &ret);
		uint32_t idx = (uint32_t)(g % sp->h.gtes_per_gt), e;

		if (!t)
			break;
		e = atomic_load_explicit(&t[idx], memory_order_acquire);
		if (n == grain_len(sp, g) || n == sp->grain) {
			uint32_t z = sp->zero_grain && !sp->stream ? VMDK_GTE_ZEROED : 0;

			pthread_mutex_lock(&sp->lock);
			if (sp->pending_grain == g)
				sp->pending_grain = UINT64_MAX;
			if (kind_of(sp, atomic_load_explicit(&t[idx], memory_order_relaxed)) !=
			    kind_of(sp, z))
				ret = set_entries(sp, pos / sp->cover, idx, 1, &z);
			pthread_mutex_unlock(&sp->lock);
		} else if (kind_of(sp, e) == K_UNALLOC || kind_of(sp, e) == K_ZERO) {
			ret = 0; /* reads zeroes already */
		} else if (sp->compressed) {
			pthread_mutex_lock(&sp->lock);
			ret = write_partial(sp, pos, NULL, 0, 0, n);
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
			put32(buf + pos + 4 * j, atomic_load_explicit(&t[j], memory_order_relaxed));
		pos += sp->gt_bytes;
	}
	vmdk_marker_put(buf + pos, dir_sec, VMDK_MARKER_GD);
	pos += VMDK_SECTOR;
	f.gd_offset = base + pos / VMDK_SECTOR;
	f.rgd_offset = 0;
	for (uint64_t i = 0; i < sp->nr_gt; i++)
		put32(buf + pos + 4 * i, sp->gd[i]);
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

/* What flush and close write (lock held): the pending grain, then a stream's tail. */
static int settle(struct vmdk_sparse *sp)
{
	int ret = 0;

	if (!sp->writable)
		return 0;
	if (sp->compressed)
		ret = pending_out(sp);
	if (!ret && sp->stream && sp->tail_dirty)
		ret = write_tail(sp);
	return ret;
}

int vmdk_sparse_flush(struct vmdk_sparse *sp)
{
	int ret;

	pthread_mutex_lock(&sp->lock);
	ret = settle(sp);
	pthread_mutex_unlock(&sp->lock);
	return ret ?: blockdev_flush(sp->file);
}

int vmdk_sparse_close(struct vmdk_sparse *sp)
{
	int ret;

	if (!sp)
		return 0;
	pthread_mutex_lock(&sp->lock);
	ret = settle(sp);
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

/* ---- check -------------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int vmdk_sparse_check(struct vmdk_sparse *sp, const char *name, bool verbose,
		      struct blockdev_check_result *res)
{
	uint64_t *grains = NULL, nr = 0, cap = 0, fsize = sp->file->size;
	int ret = 0;

	for (uint64_t gi = 0; gi < sp->nr_gt && !ret; gi++) {
		uint8_t raw[VMDK_MAX_GTES * 4];
		vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_acquire);

		if (!sp->gd[gi] && !t)
			continue;
		if (!t && blockdev_pread(sp->file, (uint64_t)sp->gd[gi] * VMDK_SECTOR, raw,
					 sp->gt_bytes)) {
			res->check_errors++;
			continue;
		}
		for (uint32_t i = 0; i < sp->h.gtes_per_gt; i++) {
			uint32_t e = t ? atomic_load_explicit(&t[i], memory_order_relaxed) :
					 le32(raw + 4 * i);
			uint64_t sector = (gi * sp->h.gtes_per_gt + i) * sp->h.grain_size;
			uint64_t at = (uint64_t)e * VMDK_SECTOR, need;
			const char *hit;

			if (kind_of(sp, e) == K_UNALLOC || kind_of(sp, e) == K_ZERO)
				continue;
			need = sp->compressed ? VMDK_GRAIN_MARKER_LEN : grain_len(sp, sector /
										  sp->h.grain_size);
			hit = meta_hit(sp, at, need);
			if (at >= fsize || hit) {
				res->corruptions++;
				if (verbose)
					fprintf(stderr, "ERROR: %s: the grain of sector %" PRIu64 " (at "
						"sector %" PRIu32 ") %s%s\n", name, sector, e,
						hit ? "overlaps " : "points past the end of the file",
						hit ? hit : "");
				continue;
			}
			if (nr == cap) {
				uint64_t *g = realloc(grains, (cap ? 2 * cap : 1024) * sizeof(*g));

				if (!g) {
					ret = -ENOMEM;
					break;
				}
				grains = g;
				cap = cap ? 2 * cap : 1024;
			}
			grains[nr++] = e;
		}
	}
	/* two entries on one grain: writing one changes the other */
	qsort(grains, nr, sizeof(*grains), cmp_u64);
	for (uint64_t i = 1; !sp->compressed && i < nr; i++) {
		if (grains[i] < grains[i - 1] + sp->h.grain_size) {
			res->corruptions++;
			if (verbose)
				fprintf(stderr, "ERROR: %s: grains at sectors %" PRIu64 " and %" PRIu64
					" overlap\n", name, grains[i - 1], grains[i]);
		}
	}
	free(grains);
	return ret;
}

/* ---- new files ---------------------------------------------------------------------------------- */

int vmdk_sparse_format(struct blockdev *file, const struct vmdk_sparse_layout *l,
		       struct error **errp)
{
	struct vmdk_header h = {
		.version = l->stream ? 3 : l->zeroed_grain ? 2 : 1,
		.flags = VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD,
		.capacity = l->sectors,
		.grain_size = 128,
		.desc_offset = 1,
		.desc_size = 20,
		.gtes_per_gt = 512,
	};
	uint64_t nr_gt = vmdk_gd_entries(&h), gt_sec = 4, dir_sec = DIV_ROUND_UP(nr_gt * 4, 512);
	uint64_t meta_end, bytes;
	uint8_t *buf;
	int ret;

	if (l->zeroed_grain)
		h.flags |= VMDK_FLAG_ZERO_GRAIN;
	if (l->stream) {
		h.flags = VMDK_FLAG_NL_DETECT | VMDK_FLAG_COMPRESS | VMDK_FLAG_MARKERS;
		h.compress = VMDK_COMPRESS_DEFLATE;
		h.gd_offset = VMDK_GD_AT_END;
		h.overhead = 128;
		meta_end = 128;
	} else {
		h.rgd_offset = 21;
		h.gd_offset = h.rgd_offset + dir_sec + nr_gt * gt_sec;
		meta_end = h.gd_offset + dir_sec + nr_gt * gt_sec;
		h.overhead = ALIGN_UP(meta_end, h.grain_size);
	}
	if (nr_gt > VMDK_MAX_GD_ENTRIES || h.overhead + 2 * nr_gt * gt_sec > UINT32_MAX) {
		error_setg(errp, "a size of %" PRIu64 " bytes is too large for a sparse extent",
			   l->sectors * VMDK_SECTOR);
		return -1;
	}
	/* a stream file starts as its header and descriptor, an empty directory and the footer */
	bytes = h.overhead * VMDK_SECTOR + (l->stream ? (1 + dir_sec + 3) * VMDK_SECTOR : 0);
	buf = calloc(1, l->stream ? bytes : meta_end * VMDK_SECTOR);
	if (!buf) {
		error_setg(errp, "out of memory");
		return -1;
	}
	vmdk_header_put(&h, buf);
	if (l->desc)
		memcpy(buf + VMDK_SECTOR, l->desc, MIN(strlen(l->desc), 20 * VMDK_SECTOR));
	if (l->stream) {
		uint8_t *p = buf + h.overhead * VMDK_SECTOR;
		struct vmdk_header f = h;

		vmdk_marker_put(p, dir_sec, VMDK_MARKER_GD);
		f.gd_offset = h.overhead + 1;
		p += (1 + dir_sec) * VMDK_SECTOR;
		vmdk_marker_put(p, 1, VMDK_MARKER_FOOTER);
		vmdk_header_put(&f, p + VMDK_SECTOR);
	} else {
		for (int copy = 0; copy < 2; copy++) {
			uint64_t dir = copy ? h.gd_offset : h.rgd_offset;

			for (uint64_t i = 0; i < nr_gt; i++)
				put32(buf + dir * VMDK_SECTOR + 4 * i,
				      (uint32_t)(dir + dir_sec + i * gt_sec));
		}
		/* the file covers its metadata and reads as zeroes up to the first grain */
	}
	if (l->stream) {
		ret = blockdev_pwrite(file, 0, buf, bytes);
	} else {
		/* the header, the descriptor and the two directories: the zeroed tables stay holes */
		ret = blockdev_pwrite(file, 0, buf, (1 + h.desc_size + dir_sec) * VMDK_SECTOR);
		if (!ret)
			ret = blockdev_pwrite(file, h.gd_offset * VMDK_SECTOR,
					      buf + h.gd_offset * VMDK_SECTOR, dir_sec * VMDK_SECTOR);
		if (!ret && h.overhead == meta_end)
			ret = blockdev_pwrite(file, (meta_end - 1) * VMDK_SECTOR,
					      buf + (meta_end - 1) * VMDK_SECTOR, VMDK_SECTOR);
	}
	free(buf);
	if (!ret && !l->stream && h.overhead > meta_end) { /* the first grain's place */
		struct error *err = NULL;

		if (blockdev_truncate(file, h.overhead * VMDK_SECTOR, &err)) {
			error_propagate(errp, err);
			return -1;
		}
	}
	if (ret) {
		error_setg_errno(errp, -ret, "'%s': writing the sparse extent's header",
				 file->filename);
		return -1;
	}
	return 0;
}
