/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 guest-to-host mapping: L1 -> L2 slice (through the lock-free cache) -> runs of equal
 * kind, the synchronous read path, compressed clusters, and the fast-path map() the iothreads
 * call. Ownership rules: see qcow2_driver.c.
 */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "common/util.h"

static uint64_t slice_bytes(const struct qcow2 *q)
{
	return (8ULL * q->entry_words) << q->slice_bits;
}

/* Loads the slice holding entry @idx of the L2 table at @l2 into the cache; lock held. */
static int load_slice(struct qcow2 *q, uint64_t key)
{
	uint64_t n = slice_bytes(q);
	uint64_t *slice = malloc(n);
	int ret;

	if (!slice)
		return -ENOMEM;
	ret = blockdev_pread(q->file, key, slice, n);
	if (ret == 0) {
		for (uint64_t i = 0; i < n / 8; i++)
			slice[i] = qcow2_be64((const uint8_t *)&slice[i]);
		qcow2_lazy_overlay(q, key, slice, n / 8); /* entries the file does not have yet */
		qcow2_cache_install(&q->cache, key, slice);
	}
	free(slice);
	return ret;
}

static void slice_pos(const struct qcow2 *q, uint64_t l2, uint64_t idx, uint64_t *key,
		      uint32_t *word)
{
	*key = l2 + (idx >> q->slice_bits) * slice_bytes(q);
	*word = (uint32_t)((idx & ((1ULL << q->slice_bits) - 1)) * q->entry_words);
}

int qcow2_l2_get(struct qcow2 *q, uint64_t l2, uint64_t idx, uint64_t *e)
{
	uint64_t key;
	uint32_t word;
	int ret;

	slice_pos(q, l2, idx, &key, &word);
	e[1] = 0;
	if (qcow2_cache_lookup(&q->cache, key, word, q->entry_words, e))
		return 0;
	ret = load_slice(q, key);
	if (ret)
		return ret;
	if (qcow2_cache_lookup(&q->cache, key, word, q->entry_words, e))
		return 0;
	return -EIO; /* unreachable: we hold the only writer's lock */
}

void qcow2_l2_cache_update(struct qcow2 *q, uint64_t l2, uint64_t idx, const uint64_t *e)
{
	uint64_t key;
	uint32_t word;

	slice_pos(q, l2, idx, &key, &word);
	qcow2_cache_update(&q->cache, key, word, q->entry_words, e);
}

int qcow2_l2_set(struct qcow2 *q, uint64_t l2, uint64_t idx, const uint64_t *e)
{
	uint8_t raw[16];
	uint64_t key;
	uint32_t word;
	int ret;

	for (unsigned i = 0; i < q->entry_words; i++)
		qcow2_put_be64(raw + 8 * i, e[i]);
	ret = blockdev_pwrite(q->file, l2 + idx * 8 * q->entry_words, raw, 8 * q->entry_words);
	if (ret)
		return ret;
	slice_pos(q, l2, idx, &key, &word);
	qcow2_cache_update(&q->cache, key, word, q->entry_words, e);
	return 0;
}

/* Kind of subcluster @sc of a cluster whose L2 entry is @e (+ @bitmap); -EIO if corrupt. */
int qcow2_decode(struct qcow2 *q, const uint64_t *e, unsigned sc, uint64_t l2, uint64_t idx,
		  struct qcow2_run *run)
{
	uint64_t off = e[0] & QCOW2_OFFSET_MASK;
	uint64_t reserved =
		QCOW2_L2_RESERVED | (q->ext_l2 || q->h.version < 3 ? QCOW2_OFLAG_ZERO : 0);
	bool has_data_file = q->data != q->file;

	run->l2e = e[0];
	run->copied = e[0] & QCOW2_OFLAG_COPIED;
	run->host = 0;
	if (e[0] & QCOW2_OFLAG_COMPRESSED) {
		if (has_data_file || (q->ext_l2 && e[1]) || run->copied)
			goto bad;
		run->kind = QCOW2_COMPRESSED;
		return 0;
	}
	if ((e[0] & reserved) || off % q->cluster_size)
		goto bad;
	if (!off && run->copied && !has_data_file)
		goto bad;
	if (q->ext_l2) {
		uint32_t alloc = (uint32_t)e[1], zero = (uint32_t)(e[1] >> 32);

		if ((alloc & zero) || (alloc && !off && !run->copied))
			goto bad;
		/* host is also set for zero / unallocated subclusters of an allocated cluster:
		 * block status reports it, as qemu-img map does */
		run->host = off ? off + ((uint64_t)sc << q->sc_bits) : 0;
		if (alloc & (1u << sc))
			run->kind = QCOW2_DATA;
		else
			run->kind = (zero & (1u << sc)) ? QCOW2_ZERO : QCOW2_UNALLOCATED;
		return 0;
	}
	if (e[0] & QCOW2_OFLAG_ZERO) {
		run->kind = QCOW2_ZERO;
		run->host = off;
	} else if (off || run->copied) {
		run->kind = QCOW2_DATA;
		run->host = off;
	} else {
		run->kind = QCOW2_UNALLOCATED;
	}
	return 0;
bad:
	qcow2_signal_corruption(q, "L2 table at 0x%" PRIx64 " entry %" PRIu64 " (0x%016" PRIx64
				"%s) is invalid: reserved bits, misaligned offset or bad flags", l2,
				idx, e[0], q->ext_l2 ? ", extended" : "");
	return -EIO;
}

static int l1_entry(struct qcow2 *q, uint64_t l1i, uint64_t *l2, bool *copied)
{
	struct qcow2_l1 *l1 = atomic_load_explicit(&q->l1, memory_order_acquire);
	uint64_t e;

	if (l1i >= l1->size) {
		*l2 = 0;
		return 0;
	}
	/* acquire: pairs with the release store that published a new L2 table, whose contents
	 * (on disk and in the cache) were written before */
	e = atomic_load_explicit(&l1->e[l1i], memory_order_acquire);
	*l2 = e & QCOW2_OFFSET_MASK;
	*copied = e & QCOW2_OFLAG_COPIED;
	if ((e & QCOW2_L1_RESERVED) || *l2 % q->cluster_size) {
		qcow2_signal_corruption(q, "L1 entry %" PRIu64 " (0x%016" PRIx64 ") is invalid: "
					"reserved bits set or misaligned L2 offset", l1i, e);
		return -EIO;
	}
	return 0;
}

static bool same_run(const struct qcow2_run *a, const struct qcow2_run *b, uint64_t done)
{
	if (a->kind != b->kind || a->kind == QCOW2_COMPRESSED)
		return false;
	if (a->kind == QCOW2_DATA || a->host || b->host)
		return b->host == a->host + done && a->copied == b->copied;
	return true;
}

int qcow2_lookup(struct qcow2 *q, uint64_t off, uint64_t len, bool may_block,
		 struct qcow2_run *run)
{
	uint64_t gc = off >> q->cluster_bits, l1i = gc >> q->l2_bits, l2, key0 = 0;
	uint64_t unit = 1ULL << q->sc_bits, done = 0;
	uint64_t idx_mask = (1ULL << q->l2_bits) - 1;
	bool l2_copied = false;
	int ret = l1_entry(q, l1i, &l2, &l2_copied);

	if (ret)
		return ret;
	if (!l2) {
		uint64_t end = (l1i + 1) << (q->l2_bits + q->cluster_bits);

		run->kind = QCOW2_UNALLOCATED;
		run->len = MIN(len, end - off);
		run->copied = false;
		run->host = 0;
		return 0;
	}
	while (done < len) {
		uint64_t cur = off + done, idx = (cur >> q->cluster_bits) & idx_mask, e[2] = {0, 0};
		uint64_t key;
		uint32_t word;
		unsigned sc = (unsigned)((cur & (q->cluster_size - 1)) >> q->sc_bits);
		struct qcow2_run r;

		if (cur >> (q->cluster_bits + q->l2_bits) != l1i)
			break;
		slice_pos(q, l2, idx, &key, &word);
		if (done && key != key0)
			break; /* stay in one slice: one lookup per cluster, no extra misses */
		key0 = key;
		if (!qcow2_cache_lookup(&q->cache, key, word, q->entry_words, e)) {
			if (done)
				break;
			if (!may_block)
				return -EAGAIN;
			ret = qcow2_l2_get(q, l2, idx, e);
			if (ret)
				return ret;
		}
		ret = qcow2_decode(q, e, sc, l2, idx, &r);
		if (ret)
			return ret;
		if (r.kind == QCOW2_DATA || r.host)
			r.host += cur & (unit - 1);
		/* a shared L2 table: nothing in it is ours alone */
		r.copied = r.copied && l2_copied;
		if (!done)
			*run = r;
		else if (!same_run(run, &r, done))
			break;
		done += MIN(unit - (cur & (unit - 1)), len - done);
		if (r.kind == QCOW2_COMPRESSED)
			break;
	}
	if (run->kind == QCOW2_COMPRESSED)
		done = MIN(len, q->cluster_size - (off & (q->cluster_size - 1)));
	run->len = done;
	return 0;
}

/* Lookup from a thread that may block: lock-free first, then under the lock. */
static int lookup_blocking(struct qcow2 *q, uint64_t off, uint64_t len, struct qcow2_run *run)
{
	int ret = qcow2_lookup(q, off, len, false, run);

	if (ret != -EAGAIN)
		return ret;
	pthread_mutex_lock(&q->lock);
	ret = qcow2_lookup(q, off, len, true, run);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

int qcow2_decompress(struct qcow2 *q, uint64_t desc, uint8_t *out)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t coff = desc & ((1ULL << x) - 1);
	uint64_t nsec = (desc >> x) & ((1ULL << (q->cluster_bits - 8)) - 1);
	uint64_t csize = (nsec + 1) * 512 - (coff & 511);
	int ret;

	if (coff & ~QCOW2_OFFSET_MASK & ~0x1ffULL)
		goto bad;
	ret = blockdev_pread(q->file, coff, q->cbuf, csize);
	if (ret)
		return ret;
	if (q->h.compression_type == QCOW2_COMPRESS_ZLIB) {
		z_stream z = { 0 };

		if (inflateInit2(&z, -12) != Z_OK)
			return -ENOMEM;
		z.next_in = q->cbuf;
		z.avail_in = (uInt)csize;
		z.next_out = out;
		z.avail_out = (uInt)q->cluster_size;
		ret = inflate(&z, Z_FINISH);
		inflateEnd(&z);
		if ((ret != Z_STREAM_END && ret != Z_BUF_ERROR) || z.avail_out)
			goto bad;
		return 0;
	} else {
		ZSTD_inBuffer in = { q->cbuf, csize, 0 };
		ZSTD_outBuffer o = { out, q->cluster_size, 0 };
		ZSTD_DCtx *dctx = ZSTD_createDCtx();
		size_t zr = 0;

		if (!dctx)
			return -ENOMEM;
		while (o.pos < o.size && in.pos < in.size) {
			zr = ZSTD_decompressStream(dctx, &o, &in);
			if (ZSTD_isError(zr) || zr == 0)
				break;
		}
		ZSTD_freeDCtx(dctx);
		if (ZSTD_isError(zr) || o.pos != o.size)
			goto bad;
		return 0;
	}
bad:
	qcow2_signal_corruption(q, "compressed cluster at 0x%" PRIx64 " (descriptor 0x%016" PRIx64
				") does not decompress to %" PRIu64 " bytes", coff, desc,
				q->cluster_size);
	return -EIO;
}

int qcow2_read_backing(struct qcow2 *q, uint64_t off, uint8_t *buf, uint64_t n)
{
	struct blockdev *b = q->bs->backing;
	uint64_t have = 0;

	if (b && off < b->size) {
		have = MIN(n, b->size - off);
		int ret = blockdev_pread(b, off, buf, have);

		if (ret)
			return ret;
	}
	memset(buf + have, 0, n - have);
	return 0;
}

static int read_compressed(struct qcow2 *q, uint64_t off, uint8_t *buf, uint64_t n,
			   uint64_t desc)
{
	int ret;

	pthread_mutex_lock(&q->lock);
	ret = qcow2_decompress(q, desc, q->cbuf2);
	if (!ret)
		memcpy(buf, q->cbuf2 + (off & (q->cluster_size - 1)), n);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

int qcow2_read(struct qcow2 *q, uint64_t off, void *buf, uint64_t len)
{
	uint8_t *p = buf;

	while (len) {
		struct qcow2_run run;
		int ret = lookup_blocking(q, off, len, &run);

		if (ret)
			return ret;
		switch (run.kind) {
		case QCOW2_DATA:
			ret = qcow2_data_pread(q, run.host, p, run.len);
			break;
		case QCOW2_ZERO:
			memset(p, 0, run.len);
			break;
		case QCOW2_UNALLOCATED:
			ret = qcow2_read_backing(q, off, p, run.len);
			break;
		case QCOW2_COMPRESSED:
			ret = read_compressed(q, off, p, run.len, run.l2e);
			break;
		}
		if (ret)
			return ret;
		off += run.len;
		p += run.len;
		len -= run.len;
	}
	return 0;
}

/*
 * Allocated data of an encrypted image (ext->kind SLOW, len the run's): whole sectors go to
 * the engine as ciphertext to decrypt (encrypt) with the image's key, the IV the host sector
 * (as the slow path's qcow2_data_pread/pwrite); partial sectors, and an image opened without
 * its key, stay SLOW.
 */
static int crypt_extent(struct qcow2 *q, uint64_t off, struct blockdev_extent *ext,
			const struct qcow2_run *run)
{
	uint64_t n = ALIGN_DOWN(run->len, LUKS_SECTOR);

	if (!q->crypto || off % LUKS_SECTOR || !n)
		return 0;
	ext->kind = BLOCKDEV_EXTENT_DATA;
	ext->len = n;
	ext->file = q->data;
	ext->host_offset = run->host;
	ext->crypt = q->crypto;
	ext->crypt_sector = run->host / LUKS_SECTOR;
	return 0;
}

int qcow2_map_op(struct blockdev *bs, enum blockdev_op op, uint64_t off, uint64_t len,
		 struct blockdev_extent *ext)
{
	struct qcow2 *q = qcow2_of(bs);
	struct qcow2_run run;
	int ret;

	ext->kind = BLOCKDEV_EXTENT_SLOW;
	ext->len = len;
	if (op != BLOCKDEV_OP_READ && op != BLOCKDEV_OP_WRITE)
		return 0;
	/* clusters smaller than the O_DIRECT block: a metadata read-modify-write of a shared
	 * block could undo a concurrent fast-path data write, so every write goes the slow way */
	if (op == BLOCKDEV_OP_WRITE && q->cluster_size < q->file->align)
		return 0;
	if (atomic_load_explicit(&q->corrupt, memory_order_relaxed) && op == BLOCKDEV_OP_WRITE)
		return -EIO;
	ret = qcow2_lookup(q, off, len, false, &run);
	if (ret == -EAGAIN)
		return 0; /* cache miss: the slow path loads the slice */
	if (ret)
		return ret;
	ext->len = run.len;
	if (run.kind == QCOW2_DATA && (op == BLOCKDEV_OP_READ || run.copied) &&
	    (op == BLOCKDEV_OP_READ || q->data != q->file ||
	     !qcow2_overlaps_metadata(q, run.host, run.len))) {
		if (q->luks)
			return crypt_extent(q, off, ext, &run);
		ext->kind = BLOCKDEV_EXTENT_DATA;
		ext->file = q->data;
		ext->host_offset = run.host;
	} else if (op == BLOCKDEV_OP_WRITE || run.kind == QCOW2_COMPRESSED) {
		return 0;
	} else if (run.kind == QCOW2_ZERO || !bs->backing || off >= bs->backing->size) {
		ext->kind = BLOCKDEV_EXTENT_ZERO;
	} else {
		ext->kind = BLOCKDEV_EXTENT_BACKING;
		ext->len = MIN(run.len, bs->backing->size - off);
	}
	return 0;
}

/*
 * Whether the image looks made with preallocation=metadata: more clusters carry a refcount
 * than the file has allocated blocks for (with 10% slack). Only then does block status ask the
 * file which data clusters are holes, as qemu-img map does. Computed once.
 */
static bool metadata_preallocated(struct qcow2 *q)
{
	struct blockdev_info info;
	uint64_t real, threshold, n = 0, end;
	int v = atomic_load_explicit(&q->prealloc_state, memory_order_relaxed);

	if (v)
		return v == 2;
	if (blockdev_get_info(q->file, &info, NULL) || !q->file->drv->info) {
		v = 1;
		goto out;
	}
	real = info.actual_size / q->cluster_size;
	threshold = MAX(real * 10 / 9, real + 2);
	end = DIV_ROUND_UP(q->file->size, q->cluster_size);
	v = 1;
	pthread_mutex_lock(&q->lock);
	for (uint64_t c = 0; c < end; c++) {
		uint64_t rc;

		if (qcow2_rc_get(q, c, &rc))
			break;
		if (rc && ++n > threshold) {
			v = 2;
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
out:
	atomic_store_explicit(&q->prealloc_state, v, memory_order_relaxed);
	return v == 2;
}

int qcow2_block_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum,
		       uint64_t *map_offset, struct blockdev **map_file)
{
	struct qcow2 *q = qcow2_of(bs);
	struct qcow2_run run;
	int ret = lookup_blocking(q, off, len, &run), flags = 0;

	if (ret)
		return ret;
	*pnum = run.len;
	/* a host cluster behind the run (preallocated zero clusters and unallocated subclusters
	 * of an allocated cluster have one too); data always has one: 0 is a legal offset in an
	 * external data file */
	if ((run.kind == QCOW2_DATA || (run.host && run.kind != QCOW2_COMPRESSED)) &&
	    !q->luks) { /* an encrypted image's host bytes are ciphertext: no offset, as QEMU */
		*map_offset = run.host;
		*map_file = q->data;
		flags = BLOCKDEV_STATUS_OFFSET;
	}
	switch (run.kind) {
	case QCOW2_DATA: {
		/* a data cluster in a hole of the file reads as zeroes (preallocation=metadata) */
		uint64_t fnum = 0, fmap;
		struct blockdev *ffile;
		int fst = metadata_preallocated(q) && !q->luks ?
			blockdev_block_status(q->data, run.host, run.len, &fnum, &fmap, &ffile) : 0;

		if (fst > 0 && fnum) {
			*pnum = MIN(run.len, fnum);
			if (fst & BLOCKDEV_STATUS_ZERO)
				flags |= BLOCKDEV_STATUS_ZERO;
		}
		return flags | BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED;
	}
	case QCOW2_ZERO:
		return flags | BLOCKDEV_STATUS_ZERO | BLOCKDEV_STATUS_ALLOCATED;
	case QCOW2_COMPRESSED:
		return BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED | BLOCKDEV_STATUS_COMPRESSED;
	case QCOW2_UNALLOCATED:
	default:
		return flags | (bs->backing ? 0 : BLOCKDEV_STATUS_ZERO);
	}
}
