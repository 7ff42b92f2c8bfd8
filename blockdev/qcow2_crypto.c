/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 encrypt.format=luks at creation: a new, still empty image gets a LUKS header (luks.h)
 * in clusters of its own, named by the full disk encryption header extension, and
 * crypt_method 2. The header and key material are written and flushed before one header write
 * switches the image to encrypted, so a crash leaves a plain empty image (and leaked clusters)
 * or an encrypted one. Its data is then encrypted on every write (qcow2_data_pwrite).
 */
#include "blockdev/qcow2.h"
#include "blockdev/qcow2_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "common/util.h"

int qcow2_encrypt_new(struct blockdev *bs, const char *secret, unsigned int iter_time,
		      struct error **errp)
{
	struct qcow2 *q = qcow2_node(bs, errp);
	struct qcow2_header h;
	struct luks_header lh;
	struct luks_key key;
	uint8_t *m = NULL, *buf = NULL;
	const uint8_t *pass;
	uint64_t area;
	size_t len, mlen;
	int64_t off;
	int ret = -1;

	if (!q)
		return -1;
	if (!secret) {
		error_setg(errp, "Parameter 'encrypt.key-secret' is required for cipher");
		return -1;
	}
	if (secret_lookup(secret, &pass, &len, errp) ||
	    luks_format(&lh, &key, pass, len, iter_time, &m, &mlen, errp))
		return -1;
	area = (uint64_t)lh.payload_offset * LUKS_SECTOR;
	buf = calloc(1, ALIGN_UP(area, q->cluster_size));
	if (!buf) {
		error_setg(errp, "out of memory");
		goto out;
	}
	luks_header_put(&lh, buf);
	memcpy(buf + (uint64_t)lh.slots[0].key_offset * LUKS_SECTOR, m, mlen);
	pthread_mutex_lock(&q->lock);
	off = qcow2_alloc_clusters(q, DIV_ROUND_UP(area, q->cluster_size));
	ret = off < 0 ? (int)off :
	      blockdev_pwrite(q->file, (uint64_t)off, buf, ALIGN_UP(area, q->cluster_size));
	if (!ret)
		ret = qcow2_barrier(q);
	if (ret) {
		pthread_mutex_unlock(&q->lock);
		error_setg_errno(errp, ret, "'%s': writing the LUKS header", bs->filename);
		ret = -1;
		goto out;
	}
	h = q->h; /* shares the extension arrays: serialize only reads them */
	h.crypt_method = QCOW2_CRYPT_LUKS;
	h.has_crypto_ext = true;
	h.crypto_offset = (uint64_t)off;
	h.crypto_len = area;
	ret = qcow2_write_header(q, &h, errp);
	pthread_mutex_unlock(&q->lock);
out:
	luks_key_wipe(&key);
	free(m);
	free(buf);
	return ret ? -1 : 0;
}

static int read_area(void *opaque, uint64_t off, void *buf, size_t len)
{
	struct qcow2 *q = opaque;

	return blockdev_pread(q->file, q->h.crypto_offset + off, buf, len);
}

static int write_area(void *opaque, uint64_t off, const void *buf, size_t len)
{
	struct qcow2 *q = opaque;

	if (off + len > q->h.crypto_len)
		return -EINVAL;
	return blockdev_pwrite(q->file, q->h.crypto_offset + off, buf, len) ?:
	       blockdev_flush(q->file);
}

int qcow2_amend_encryption(struct blockdev *bs, const struct luks_amend *a,
			   struct error **errp)
{
	struct qcow2 *q = qcow2_node(bs, errp);
	int ret;

	if (!q)
		return -1;
	if (!q->luks || !q->crypto || q->read_only) {
		error_setg(errp, "'%s': %s", bs->filename, !q->luks ? "the image is not encrypted" :
			   "key slots change on an image opened read-write with its "
			   "encrypt.key-secret");
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	ret = luks_amend(q->luks, q->crypto, a, read_area, write_area, q, errp);
	pthread_mutex_unlock(&q->lock);
	if (ret)
		error_prepend(errp, "'%s'", bs->filename);
	return ret;
}
