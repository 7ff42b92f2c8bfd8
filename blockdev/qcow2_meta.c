/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2: the guards that every layer writing to the image shares. Recording a corruption (a
 * message, and the image flagged so that writes are refused), setting the header's corrupt bit
 * once one was found, refusing a data write that would land on the header, the L1 table or the
 * refcount table, and rewriting fields of the fixed header. These sit at the bottom of the
 * driver's files: they call nothing of it but the header serializer (qcow2_header.c), so the
 * lookups (qcow2_map.c), the refcounts (qcow2_refcount.c) and the write side all use them
 * without depending on one another through them.
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void qcow2_signal_corruption(struct qcow2 *q, const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange_explicit(&q->corrupt, true, memory_order_relaxed))
		return; /* report the first one only */
	fprintf(stderr, "qcow2: %s: image is corrupt: ", q->bs->filename);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", q->read_only ? "" : "; further writes are refused");
}

bool qcow2_overlaps_metadata(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t l1 = q->h.l1_table_offset, l1_len = ALIGN_UP((uint64_t)q->h.l1_size * 8,
							       q->cluster_size);
	uint64_t rt = q->h.refcount_table_offset;
	uint64_t rt_len = (uint64_t)q->h.refcount_table_clusters << q->cluster_bits;

	return off < q->cluster_size || (off < l1 + l1_len && l1 < off + len) ||
	       (off < rt + rt_len && rt < off + len);
}

/* A data cluster that points into metadata: writing it would destroy the image. */
int qcow2_check_data_target(struct qcow2 *q, uint64_t host, uint64_t len)
{
	if (q->data != q->file || !qcow2_overlaps_metadata(q, host, len))
		return 0;
	qcow2_signal_corruption(q, "data at host offset 0x%" PRIx64 " overlaps the header, L1 or "
				"refcount table", host);
	return -EIO;
}

int qcow2_header_update(struct qcow2 *q, unsigned from, unsigned to)
{
	uint8_t buf[QCOW2_HEADER_LEN] = { 0 };

	qcow2_header_put_fixed(&q->h, buf);
	return blockdev_pwrite(q->file, from, buf + from, to - from);
}

/* Writes the corrupt bit once a corruption was found (lock held). */
int qcow2_check_corrupt(struct qcow2 *q)
{
	if (!atomic_load_explicit(&q->corrupt, memory_order_relaxed))
		return 0;
	if (q->h.version >= 3 && !(q->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
		q->h.incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
		qcow2_header_update(q, 72, 80);
		blockdev_flush(q->file);
	}
	return -EIO;
}

/* [host, host+len) of an encrypted image through a bounce buffer of whole sectors. */
static int crypt_rw(struct qcow2 *q, uint64_t host, void *rbuf, const void *wbuf, uint64_t len)
{
	uint64_t a = ALIGN_DOWN(host, LUKS_SECTOR), b = ALIGN_UP(host + len, LUKS_SECTOR);
	uint8_t *buf = malloc(b - a);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	if (rbuf || a != host || b != host + len)
		ret = blockdev_pread(q->data, a, buf, b - a) ?:
		      luks_crypt(q->crypto, false, a / LUKS_SECTOR, buf, b - a);
	if (!ret && rbuf) {
		memcpy(rbuf, buf + (host - a), len);
	} else if (!ret) {
		memcpy(buf + (host - a), wbuf, len);
		ret = luks_crypt(q->crypto, true, a / LUKS_SECTOR, buf, b - a) ?:
		      blockdev_pwrite(q->data, a, buf, b - a);
	}
	free(buf);
	return ret;
}

int qcow2_data_pread(struct qcow2 *q, uint64_t host, void *buf, uint64_t len)
{
	if (!q->luks)
		return blockdev_pread(q->data, host, buf, len);
	if (!q->crypto)
		return -EACCES; /* opened without its key (no-io) */
	return crypt_rw(q, host, buf, NULL, len);
}

int qcow2_data_pwrite(struct qcow2 *q, uint64_t host, const void *buf, uint64_t len)
{
	if (!q->luks)
		return blockdev_pwrite(q->data, host, buf, len);
	if (!q->crypto)
		return -EACCES;
	return crypt_rw(q, host, NULL, buf, len);
}
