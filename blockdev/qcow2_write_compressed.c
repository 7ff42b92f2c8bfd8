/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 compressed writes, for the tools (the driver's pwrite_compressed op: vireo-img convert
 * -c; never the guest's path): a cluster is compressed in the image's compression type
 * (qcow2_compress.c), packed into a host cluster it may share with others, and its descriptor
 * staged as its L2 entry and committed (qcow2_commit.c). A cluster that does not shrink is
 * written as a normal one (qcow2_write.c).
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/*
 * Compressed clusters are packed: q->zhost is the host cluster the last one went to and q->zused
 * the bytes of it taken; the next one is appended there when it fits (one more reference on that
 * host cluster), else it starts a fresh host cluster. None crosses a host cluster boundary, so
 * each holds exactly one reference on exactly one host cluster. Lock held.
 */
static int place_compressed(struct qcow2 *q, uint64_t clen, uint64_t *coff)
{
	uint64_t c = q->zhost >> q->cluster_bits, rc = 0;
	int64_t h;
	int ret;

	if (q->zhost && q->zused + clen <= q->cluster_size) {
		if ((ret = qcow2_rc_get(q, c, &rc)))
			return ret;
		if (rc && rc < qcow2_rc_max(q)) {
			if ((ret = qcow2_rc_set(q, c, rc + 1)))
				return ret;
			goto place;
		}
	}
	h = qcow2_alloc_clusters(q, 1);
	if (h < 0)
		return (int)h;
	q->zhost = (uint64_t)h;
	q->zused = 0;
place:
	*coff = q->zhost + q->zused;
	q->zused += clen;
	return 0;
}

int qcow2_pwrite_compressed(struct blockdev *bs, uint64_t off, const void *buf, uint64_t len)
{
	return qcow2_write_compressed(qcow2_of(bs), off, buf, len);
}

int qcow2_write_compressed(struct qcow2 *q, uint64_t off, const void *buf, uint64_t len)
{
	uint64_t gc = off >> q->cluster_bits, idx = gc & ((1ULL << q->l2_bits) - 1);
	uint64_t l2, coff = 0, nsec, e[2] = { 0, 0 }, ne[2];
	unsigned x = 62 - (q->cluster_bits - 8);
	uint8_t *src, *dst;
	int64_t clen;
	int ret;

	if (q->read_only)
		return -EROFS;
	if (q->data != q->file || q->luks)
		return -ENOTSUP; /* an external data file (or encryption) has no compressed clusters */
	if (!IS_ALIGNED(off, q->cluster_size) || !len || len > q->cluster_size ||
	    (len < q->cluster_size && off + len != q->bs->size))
		return -EINVAL;
	src = calloc(1, q->cluster_size);
	dst = malloc(q->cluster_size);
	if (!src || !dst) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(src, buf, len); /* the image's last cluster: padded with zeroes */
	clen = qcow2_compress(q, src, dst, q->cluster_size - 1);
	if (clen == -ENOSPC) { /* does not shrink: store it as it is */
		ret = qcow2_write(q, off, buf, len);
		goto out;
	}
	if (clen < 0) {
		ret = (int)clen;
		goto out;
	}
	pthread_mutex_lock(&q->lock);
	if ((ret = qcow2_check_corrupt(q)) || (ret = qcow2_ensure_l2(q, gc >> q->l2_bits, &l2)) ||
	    (ret = qcow2_l2_get(q, l2, idx, e)) ||
	    (ret = place_compressed(q, (uint64_t)clen, &coff)) ||
	    (ret = qcow2_check_data_target(q, coff, (uint64_t)clen)) ||
	    (ret = blockdev_pwrite(q->file, coff, dst, (uint64_t)clen)))
		goto unlock;
	/* the descriptor: byte offset, then the 512-byte sectors touched beyond the first */
	nsec = ((coff & 511) + (uint64_t)clen + 511) / 512 - 1;
	ne[0] = QCOW2_OFLAG_COMPRESSED | (nsec << x) | coff;
	ne[1] = 0; /* extended L2: no subcluster bitmap for compressed clusters */
	ret = qcow2_commit_entry(q, l2, idx, e, ne);
unlock:
	ret = qcow2_unlock_commit(q, ret);
out:
	free(src);
	free(dst);
	return ret;
}
