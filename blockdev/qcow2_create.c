/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Creating a qcow2 image. Layout: header cluster, refcount table, refcount blocks, L1 table,
 * then (preallocation=metadata) every L2 table and a host cluster for every guest cluster.
 * The refcount table is sized to cover the whole virtual disk plus metadata, so that a
 * fully written image never needs to grow it; refcount blocks exist only for what is used.
 */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

struct layout {
	uint64_t cs;
	unsigned rb_bits;
	uint64_t rt_clusters, rb_count, l1_entries, l1_clusters;
	uint64_t l2_count, data_clusters, guest_clusters;
	uint64_t rt_off, rb_off, l1_off, l2_off, data_off;
	uint64_t used; /* clusters with refcount 1: [0, used) */
};

/* The options' names in each spelling (enum qcow2_create_names): qemu-img's -o, QMP's. */
enum key { K_SIZE, K_CLUSTER, K_REFCOUNT, K_LAZY, K_EXTL2, K_COMPRESSION, K_DATA_FILE,
	   K_DATA_RAW, K_BACKING, K_PREALLOC, K_V3, K_NR };
static const char *const key_names[][K_NR] = {
	[QCOW2_NAMES_IMG] = { "size", "cluster_size", "refcount_bits", "lazy_refcounts",
			      "extended_l2", "compression_type", "data_file", "data_file_raw",
			      "backing_file", "preallocation", "compat=1.1" },
	[QCOW2_NAMES_QMP] = { "size", "cluster-size", "refcount-bits", "lazy-refcounts",
			      "extended-l2", "compression-type", "data-file", "data-raw",
			      "backing-file", "preallocation", "version=v3" },
};

/* What needs version 3 with @o (the first such option), or K_NR. */
static enum key needs_v3(const struct qcow2_create_opts *o)
{
	if (o->refcount_bits != 16)
		return K_REFCOUNT;
	if (o->lazy_refcounts)
		return K_LAZY;
	if (o->extended_l2)
		return K_EXTL2;
	if (o->compression_type != QCOW2_COMPRESS_ZLIB)
		return K_COMPRESSION;
	return o->data_file ? K_DATA_FILE : K_NR;
}

int qcow2_create_check(const struct qcow2_create_opts *o, enum qcow2_create_names names,
		       struct error **errp)
{
	const char *const *k = key_names[names];
	enum key v3 = needs_v3(o);

	if (o->cluster_bits < QCOW2_MIN_CLUSTER_BITS || o->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
		error_setg(errp, "%s: must be a power of two from 512 to 2M", k[K_CLUSTER]);
		return -1;
	}
	if (o->refcount_bits == 0 || o->refcount_bits > 64 ||
	    (o->refcount_bits & (o->refcount_bits - 1))) {
		error_setg(errp, "%s: %u is not a power of two in 1..64", k[K_REFCOUNT],
			   o->refcount_bits);
		return -1;
	}
	if (o->version == 2 && v3 != K_NR) {
		static const char *const what[K_NR] = { [K_REFCOUNT] = " other than 16",
			[K_LAZY] = "=on", [K_EXTL2] = "=on", [K_COMPRESSION] = "=zstd" };

		error_setg(errp, "%s%s needs %s", k[v3], what[v3] ? what[v3] : "", k[K_V3]);
		return -1;
	}
	if (o->extended_l2 && o->cluster_bits < 14) {
		error_setg(errp, "%s: needs %s of at least 16k", k[K_EXTL2], k[K_CLUSTER]);
		return -1;
	}
	if (o->size > QCOW2_MAX_VIRTUAL_SIZE ||
	    qcow2_l1_entries_for(o->size, o->cluster_bits, o->extended_l2) * 8 >
		    QCOW2_MAX_L1_BYTES) {
		error_setg(errp, "%s: %" PRIu64 " bytes is too large for %llu-byte clusters",
			   k[K_SIZE], o->size, 1ULL << o->cluster_bits);
		return -1;
	}
	if (o->data_file && strlen(o->data_file) > QCOW2_MAX_BACKING_NAME) {
		error_setg(errp, "%s: a name of at most %u bytes", k[K_DATA_FILE],
			   QCOW2_MAX_BACKING_NAME);
		return -1;
	}
	if (o->data_file_raw && (!o->data_file || o->backing_file)) {
		error_setg(errp, "%s: needs %s and no %s", k[K_DATA_RAW], k[K_DATA_FILE],
			   k[K_BACKING]);
		return -1;
	}
	if (o->backing_file && strlen(o->backing_file) > QCOW2_MAX_BACKING_NAME) {
		error_setg(errp, "%s: longer than %u bytes", k[K_BACKING], QCOW2_MAX_BACKING_NAME);
		return -1;
	}
	/* preallocated clusters would hide the backing file, unless their subclusters can say
	 * "unallocated" (QEMU's rule) */
	if (o->backing_file && o->prealloc_metadata && !o->extended_l2) {
		error_setg(errp, "%s: with a %s needs %s=on", k[K_PREALLOC], k[K_BACKING],
			   k[K_EXTL2]);
		return -1;
	}
	/* preallocated clusters of an encrypted image would read as ciphertext of nothing */
	if (o->encrypt_secret && (o->prealloc_metadata || o->data_file_raw)) {
		error_setg(errp, "encryption: not with %s", o->prealloc_metadata ? k[K_PREALLOC] :
			   k[K_DATA_RAW]);
		return -1;
	}
	return 0;
}

static void plan(const struct qcow2_create_opts *o, struct layout *l)
{
	unsigned l2_bits = o->cluster_bits - (o->extended_l2 ? 4 : 3);
	uint64_t guest_clusters = DIV_ROUND_UP(o->size, 1ULL << o->cluster_bits);

	l->cs = 1ULL << o->cluster_bits;
	l->rb_bits = o->cluster_bits + 3 - (unsigned)__builtin_ctz(o->refcount_bits);
	l->l1_entries = qcow2_l1_entries_for(o->size, o->cluster_bits, o->extended_l2);
	l->l1_clusters = DIV_ROUND_UP(l->l1_entries * 8, l->cs); /* none for an empty image */
	l->l2_count = o->prealloc_metadata ? DIV_ROUND_UP(guest_clusters, 1ULL << l2_bits) : 0;
	/* with an external data file, guest cluster N lives at offset N there: nothing to
	 * allocate */
	l->data_clusters = o->prealloc_metadata && !o->data_file ? guest_clusters : 0;
	l->guest_clusters = guest_clusters;
	l->rt_clusters = 1;
	l->rb_count = 1;
	for (;;) {
		uint64_t used = 1 + l->rt_clusters + l->rb_count + l->l1_clusters + l->l2_count +
				l->data_clusters;
		uint64_t cover = used + guest_clusters + l->l2_count + 16;
		uint64_t rb = DIV_ROUND_UP(used, 1ULL << l->rb_bits);
		uint64_t rt = DIV_ROUND_UP(DIV_ROUND_UP(cover, 1ULL << l->rb_bits) * 8, l->cs);

		rt = MIN(MAX(rt, 1), QCOW2_MAX_REFTABLE_BYTES / l->cs);
		if (rb == l->rb_count && rt == l->rt_clusters) {
			l->used = used;
			break;
		}
		l->rb_count = rb;
		l->rt_clusters = rt;
	}
	l->rt_off = l->cs;
	l->rb_off = l->rt_off + l->rt_clusters * l->cs;
	l->l1_off = l->rb_off + l->rb_count * l->cs;
	l->l2_off = l->l1_off + l->l1_clusters * l->cs;
	l->data_off = l->l2_off + l->l2_count * l->cs;
}

static int write_header(struct blockdev *file, const struct qcow2_create_opts *o,
			const struct layout *l, struct error **errp)
{
	struct qcow2_header h = { 0 };
	uint8_t *buf = calloc(1, l->cs);
	int ret;

	if (!buf)
		return -ENOMEM;
	h.version = o->version;
	h.cluster_bits = o->cluster_bits;
	h.size = o->size;
	h.l1_size = (uint32_t)l->l1_entries;
	h.l1_table_offset = l->l1_clusters ? l->l1_off : 0; /* as qemu-img for size 0 */
	h.refcount_table_offset = l->rt_off;
	h.refcount_table_clusters = (uint32_t)l->rt_clusters;
	h.refcount_order = (uint32_t)__builtin_ctz(o->refcount_bits);
	if (o->lazy_refcounts)
		h.compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
	if (o->extended_l2)
		h.incompatible_features |= QCOW2_INCOMPAT_EXTL2;
	if (o->compression_type != QCOW2_COMPRESS_ZLIB) {
		h.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
		h.compression_type = (uint8_t)o->compression_type;
	}
	if (o->data_file) {
		h.incompatible_features |= QCOW2_INCOMPAT_DATA_FILE;
		snprintf(h.data_file, sizeof(h.data_file), "%s", o->data_file);
		h.has_data_file_ext = true;
		if (o->data_file_raw)
			h.autoclear_features |= QCOW2_AUTOCLEAR_DATA_FILE_RAW;
	}
	if (o->backing_file)
		snprintf(h.backing_file, sizeof(h.backing_file), "%s", o->backing_file);
	if (o->backing_fmt) {
		snprintf(h.backing_fmt, sizeof(h.backing_fmt), "%s", o->backing_fmt);
		h.has_backing_fmt = true;
	}
	if (qcow2_header_serialize(&h, buf, l->cs, errp)) {
		free(buf);
		return -EINVAL;
	}
	ret = blockdev_pwrite(file, 0, buf, l->cs);
	free(buf);
	return ret;
}

static void put_refcount(uint8_t *b, unsigned bits, uint64_t i)
{
	if (bits >= 8)
		b[i * (bits / 8) + bits / 8 - 1] = 1; /* big endian 1 */
	else
		b[i * bits / 8] |= (uint8_t)(1u << ((i * bits) % 8));
}

static int write_tables(struct blockdev *file, const struct qcow2_create_opts *o,
			const struct layout *l)
{
	uint64_t big = MAX(l->rt_clusters, MAX(l->rb_count, l->l1_clusters)) * l->cs;
	uint8_t *buf = calloc(1, MAX(big, l->cs));
	unsigned words = o->extended_l2 ? 2 : 1;
	int ret;

	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < l->rb_count; i++)
		qcow2_put_be64(buf + 8 * i, l->rb_off + i * l->cs);
	ret = blockdev_pwrite(file, l->rt_off, buf, l->rt_clusters * l->cs);
	memset(buf, 0, big);
	for (uint64_t c = 0; c < l->used; c++)
		put_refcount(buf, o->refcount_bits, c);
	if (!ret)
		ret = blockdev_pwrite(file, l->rb_off, buf, l->rb_count * l->cs);
	memset(buf, 0, big);
	for (uint64_t i = 0; i < l->l2_count; i++)
		qcow2_put_be64(buf + 8 * i, (l->l2_off + i * l->cs) | QCOW2_OFLAG_COPIED);
	if (!ret)
		ret = blockdev_pwrite(file, l->l1_off, buf, l->l1_clusters * l->cs);
	for (uint64_t t = 0; t < l->l2_count && !ret; t++) {
		uint64_t per = l->cs / (8 * words);

		memset(buf, 0, l->cs);
		for (uint64_t i = 0; i < per && t * per + i < l->guest_clusters; i++) {
			uint64_t host = o->data_file ? (t * per + i) * l->cs :
						       l->data_off + (t * per + i) * l->cs;

			qcow2_put_be64(buf + 8 * words * i, host | QCOW2_OFLAG_COPIED);
			/* extended: every subcluster reads as zeroes, the host cluster reserved;
			 * over a backing file they stay unallocated (read from it) */
			if (words == 2 && !o->backing_file)
				qcow2_put_be64(buf + 16 * i + 8, 0xffffffff00000000ULL);
		}
		ret = blockdev_pwrite(file, l->l2_off + t * l->cs, buf, l->cs);
	}
	free(buf);
	return ret;
}

/* The layout of @l onto @file, which covers at least its used clusters afterwards. */
static int write_image(struct blockdev *file, const struct qcow2_create_opts *o,
		       const struct layout *l, struct error **errp)
{
	uint64_t end = l->used * l->cs;
	int ret;

	/* grown first, so that the writes below stay inside; never shrunk (as QEMU: the node may
	 * be a block device, or a file the user sized) */
	if (file->size < end && blockdev_truncate(file, end, errp) < 0)
		return -1;
	ret = write_header(file, o, l, errp);
	if (ret == -EINVAL)
		return -1;
	if (!ret)
		ret = write_tables(file, o, l);
	if (ret) {
		error_setg_errno(errp, -ret, "'%s': writing the new image", file->filename);
		return -1;
	}
	if (o->prealloc_falloc && l->data_clusters &&
	    blockdev_file_preallocate(file, l->data_off, l->data_clusters * l->cs,
				      BLOCKDEV_PREALLOC_FALLOC, errp) < 0)
		return -1;
	return 0;
}

int qcow2_create_on(struct blockdev *file, struct blockdev *data,
		    const struct qcow2_create_opts *o, struct error **errp)
{
	struct layout l;
	int ret;

	if (qcow2_create_check(o, QCOW2_NAMES_IMG, errp))
		return -1;
	plan(o, &l);
	if (data && data->size < o->size && blockdev_truncate(data, o->size, errp) < 0)
		return -1;
	if (data && o->prealloc_falloc &&
	    blockdev_file_preallocate(data, 0, o->size, BLOCKDEV_PREALLOC_FALLOC, errp) < 0)
		return -1;
	if (write_image(file, o, &l, errp) < 0)
		return -1;
	ret = blockdev_flush(file);
	if (!ret && data)
		ret = blockdev_flush(data);
	if (ret) {
		error_setg_errno(errp, -ret, "'%s': flushing the new image", file->filename);
		return -1;
	}
	return 0;
}

/* encrypt.format=luks: the new image opened and given its LUKS header. */
static int encrypt(const char *filename, const struct qcow2_create_opts *o,
		   struct error **errp)
{
	struct blockdev_opts bo = { .format = "qcow2" };
	struct blockdev *bs = blockdev_open(filename, &bo, errp);
	int ret;

	if (!bs)
		return -1;
	ret = qcow2_encrypt_new(bs, o->encrypt_secret,
				o->encrypt_iter_time ? o->encrypt_iter_time :
						       LUKS_DEFAULT_ITER_TIME, errp);
	blockdev_close(bs);
	return ret;
}

int qcow2_create(const char *filename, const struct qcow2_create_opts *o, struct error **errp)
{
	struct blockdev *file, *data = NULL;
	char *data_path = NULL;
	int ret = -1;

	if (qcow2_create_check(o, QCOW2_NAMES_IMG, errp))
		return -1;
	/* the data file is named relative to the image's directory */
	if (o->data_file) {
		data_path = blockdev_path_beside(filename, o->data_file);
		if (!data_path) {
			error_setg(errp, "out of memory");
			return -1;
		}
		if (blockdev_file_create(data_path, o->size, BLOCKDEV_PREALLOC_OFF, false, errp) ||
		    !(data = blockdev_open_file(data_path, NULL, errp)))
			goto out;
	}
	if (blockdev_file_create(filename, 0, BLOCKDEV_PREALLOC_OFF, false, errp) < 0)
		goto out;
	file = blockdev_open_file(filename, NULL, errp);
	if (file) {
		ret = qcow2_create_on(file, data, o, errp);
		blockdev_close(file);
	}
	if (!ret && o->encrypt_secret)
		ret = encrypt(filename, o, errp);
out:
	blockdev_close(data);
	free(data_path);
	return ret;
}

uint64_t qcow2_measure_full(uint64_t size, unsigned cluster_bits, unsigned refcount_bits,
			    bool extended_l2)
{
	uint64_t cs = 1ULL << cluster_bits, data = ALIGN_UP(size, cs);
	uint64_t l2e = extended_l2 ? 16 : 8, meta = cs; /* the header cluster */
	uint64_t nl2e = ALIGN_UP(data / cs, cs / l2e), nl1e, clusters;
	uint64_t per_block = cs * 8 / refcount_bits, per_table = cs / 8;
	uint64_t blocks = 0, table = 0, n = 0, last;

	meta += nl2e * l2e;                              /* L2 tables */
	nl1e = ALIGN_UP(nl2e * l2e / cs, cs / 8);
	meta += nl1e * 8;                                /* the L1 table */
	clusters = (meta + data) / cs;
	do { /* refcount blocks and table that also count themselves */
		last = n;
		blocks = DIV_ROUND_UP(clusters + table + blocks, per_block);
		table = DIV_ROUND_UP(blocks, per_table);
		n = clusters + blocks + table;
	} while (n != last);
	return meta + (blocks + table) * cs + data;
}
