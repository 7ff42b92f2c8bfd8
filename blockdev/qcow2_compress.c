/* SPDX-License-Identifier: Apache-2.0 */
/* qcow2: compressing one cluster for a compressed write (the reader is in qcow2_map.c). */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <zlib.h>
#include <zstd.h>

/* zlib: raw deflate with a 4 KiB window, what qcow2 readers (QEMU's and ours) inflate with. */
static int64_t deflate_cluster(const struct qcow2 *q, const void *src, void *dst, uint64_t cap)
{
	z_stream z = { 0 };
	int64_t ret;

	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)src;
	z.avail_in = (uInt)q->cluster_size;
	z.next_out = dst;
	z.avail_out = (uInt)cap;
	ret = deflate(&z, Z_FINISH) == Z_STREAM_END ? (int64_t)(cap - z.avail_out) : -ENOSPC;
	deflateEnd(&z);
	return ret;
}

int64_t qcow2_compress(const struct qcow2 *q, const void *src, void *dst, uint64_t cap)
{
	size_t n;

	if (q->h.compression_type == QCOW2_COMPRESS_ZLIB)
		return deflate_cluster(q, src, dst, cap);
	n = ZSTD_compress(dst, cap, src, q->cluster_size, ZSTD_CLEVEL_DEFAULT);
	if (ZSTD_isError(n))
		return -ENOSPC; /* (mostly "destination too small"; the caller stores it plainly) */
	return (int64_t)n;
}
