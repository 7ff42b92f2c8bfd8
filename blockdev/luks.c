/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `luks` format: a LUKS1 volume (luks.h) whose payload is the disk, each 512-byte sector
 * encrypted with AES-XTS under the volume key, the IV its sector number in the payload (as
 * QEMU's luks driver and dm-crypt). Opened with key-secret=ID (common/secret.h): the passphrase
 * unlocks the volume key at open; a wrong one is refused there. Opened with no-io (info), it
 * needs no key and only shows the header.
 *
 * On the iothreads, map() gives whole sectors of reads and writes to the engine as encrypted
 * DATA extents of the file (the key, and the IV of the first sector: the engine decrypts and
 * encrypts with its own per-queue cipher contexts, blockdev/engine_crypt.c); discards are
 * nothing to do. The synchronous path (tools, jobs, and what the engine hands back: partial
 * sectors, write-zeroes) decrypts into the caller's buffer and encrypts a copy, sector by
 * sector, partial sectors read-modify-write. The key is read-only after open and luks_crypt
 * keeps no state, so requests need no lock between them.
 */
#include "blockdev/luks.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/internal.h"
#include "common/secret.h"
#include "common/util.h"

struct luks {
	struct luks_header h;
	struct luks_key key;
	bool locked;          /* opened with no-io: no key */
	uint64_t payload;     /* bytes of header before the payload */
};

static int luks_probe_score(const uint8_t *buf, size_t len, const char *filename)
{
	return luks_probe(buf, len) ? 100 : 0;
}

static int read_area(void *opaque, uint64_t off, void *buf, size_t len)
{
	return blockdev_pread(opaque, off, buf, len);
}

int luks_passphrase(struct blockdev_open_ctx *ctx, const char *key, const uint8_t **pass,
		    size_t *len, struct error **errp)
{
	const char *id = blockdev_opt_get(ctx, key);

	if (!id) {
		error_setg(errp, "Parameter '%s' is required for cipher", key);
		return -1;
	}
	return secret_lookup(id, pass, len, errp);
}

static int luks_open(struct blockdev *bs, struct blockdev_open_ctx *ctx, struct error **errp)
{
	struct luks *l = calloc(1, sizeof(*l));
	uint8_t buf[LUKS_HEADER_LEN] = { 0 };
	const uint8_t *pass;
	size_t len;
	int ret;

	if (!l) {
		error_setg(errp, "out of memory");
		return -1;
	}
	ret = blockdev_pread(bs->file, 0, buf, MIN(bs->file->size, sizeof(buf)));
	if (ret) {
		error_setg_errno(errp, ret, "'%s': reading the LUKS header", bs->filename);
		goto fail;
	}
	if (luks_header_parse(buf, MIN(bs->file->size, sizeof(buf)), bs->file->size, &l->h, errp))
		goto fail_named;
	l->payload = (uint64_t)l->h.payload_offset * LUKS_SECTOR;
	if (l->payload > bs->file->size) {
		error_setg(errp, "the payload offset %" PRIu64 " is past the end of the file",
			   l->payload);
		goto fail_named;
	}
	if (ctx->opts->no_io && !blockdev_opt_get(ctx, "key-secret")) {
		l->locked = true;
	} else if (luks_passphrase(ctx, "key-secret", &pass, &len, errp) ||
		   luks_unlock(&l->h, pass, len, read_area, bs->file, &l->key, errp)) {
		goto fail_named;
	}
	bs->size = ALIGN_DOWN(bs->file->size - l->payload, LUKS_SECTOR);
	bs->opaque = l;
	return 0;
fail_named:
	error_prepend(errp, "'%s'", bs->filename);
fail:
	free(l);
	return -1;
}

static void luks_close(struct blockdev *bs)
{
	struct luks *l = bs->opaque;

	if (l)
		luks_key_wipe(&l->key);
	free(l);
	bs->opaque = NULL;
}

/*
 * [off, off+len) of the disk through a bounce buffer of whole sectors: read and decrypt them,
 * then (@write) copy @in over them, encrypt and write them back; else copy them out to @out.
 */
static int rw(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt,
	      bool write)
{
	struct luks *l = bs->opaque;
	uint64_t len = blockdev_iov_size(iov, iovcnt), done = 0;
	int ret = 0;

	if (l->locked)
		return -EACCES;
	while (done < len && !ret) {
		uint64_t pos = off + done, a = ALIGN_DOWN(pos, LUKS_SECTOR);
		uint64_t end = MIN(off + len, a + (1ULL << 20)), b = ALIGN_UP(end, LUKS_SECTOR);
		uint8_t *buf = malloc(b - a);

		if (!buf)
			return -ENOMEM;
		if (!write || a != pos || b != end)
			ret = blockdev_pread(bs->file, l->payload + a, buf, b - a) ?:
			      luks_crypt(&l->key, false, a / LUKS_SECTOR, buf, b - a);
		if (!ret && write) {
			blockdev_iov_to_buf(iov, iovcnt, done, buf + (pos - a), end - pos);
			ret = luks_crypt(&l->key, true, a / LUKS_SECTOR, buf, b - a) ?:
			      blockdev_pwrite(bs->file, l->payload + a, buf, b - a);
		} else if (!ret) {
			blockdev_iov_from_buf(iov, iovcnt, done, buf + (pos - a), end - pos);
		}
		free(buf);
		done += end - pos;
	}
	return ret;
}

/* Fast path: whole sectors of reads and writes are encrypted DATA of the file. */
static int luks_map(struct blockdev *bs, enum blockdev_op op, uint64_t off, uint64_t len,
		    struct blockdev_extent *ext)
{
	struct luks *l = bs->opaque;
	uint64_t n = ALIGN_DOWN(len, LUKS_SECTOR);

	*ext = (struct blockdev_extent){ .kind = BLOCKDEV_EXTENT_SLOW, .len = len };
	if (op == BLOCKDEV_OP_DISCARD) {
		ext->kind = BLOCKDEV_EXTENT_ZERO; /* ignored, as luks_discard: nothing to do */
		return 0;
	}
	if ((op != BLOCKDEV_OP_READ && op != BLOCKDEV_OP_WRITE) || l->locked ||
	    off % LUKS_SECTOR || !n)
		return 0;
	ext->kind = BLOCKDEV_EXTENT_DATA;
	ext->len = n;
	ext->file = bs->file;
	ext->host_offset = l->payload + off;
	ext->crypt = &l->key;
	ext->crypt_sector = off / LUKS_SECTOR;
	return 0;
}

static int luks_preadv(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	return rw(bs, off, iov, iovcnt, false);
}

static int luks_pwritev(struct blockdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	return rw(bs, off, iov, iovcnt, true);
}

/* Zeroes are written encrypted (the payload has no holes that read as zero). */
static int luks_write_zeroes(struct blockdev *bs, uint64_t off, uint64_t len, unsigned int flags)
{
	uint64_t chunk = MIN(len, 1ULL << 20);
	uint8_t *zero = calloc(1, chunk ? chunk : 1);
	int ret = zero ? 0 : -ENOMEM;

	for (uint64_t done = 0; done < len && !ret; done += chunk) {
		struct iovec v = { zero, MIN(chunk, len - done) };

		ret = rw(bs, off + done, &v, 1, true);
	}
	free(zero);
	return ret;
}

static int luks_discard(struct blockdev *bs, uint64_t off, uint64_t len)
{
	return 0; /* a hint: the ciphertext stays */
}

static int luks_truncate(struct blockdev *bs, uint64_t size, struct error **errp)
{
	struct luks *l = bs->opaque;

	if (!IS_ALIGNED(size, LUKS_SECTOR)) {
		error_setg(errp, "'%s': a LUKS image's size is a multiple of 512 bytes",
			   bs->filename);
		return -1;
	}
	if (blockdev_truncate(bs->file, l->payload + size, errp))
		return -1;
	bs->size = size;
	return 0;
}

static int luks_block_status(struct blockdev *bs, uint64_t off, uint64_t len, uint64_t *pnum,
			     uint64_t *map_offset, struct blockdev **map_file)
{
	*pnum = len;
	return BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED;
}

static int luks_info(struct blockdev *bs, struct blockdev_info *info, struct error **errp)
{
	struct luks *l = bs->opaque;

	info->encrypted = true;
	info->specific = luks_info_json(&l->h, false);
	return 0;
}

const struct blockdev_driver blockdev_luks = {
	.name = "luks",
	.probe = luks_probe_score,
	.open = luks_open,
	.close = luks_close,
	.map = luks_map,
	.preadv = luks_preadv,
	.pwritev = luks_pwritev,
	.discard = luks_discard,
	.write_zeroes = luks_write_zeroes,
	.block_status = luks_block_status,
	.truncate = luks_truncate,
	.info = luks_info,
};

int luks_create(const char *filename, uint64_t size, const char *secret, unsigned int iter_time,
		struct error **errp)
{
	struct blockdev_opts o = { 0 };
	struct luks_header h;
	struct luks_key key;
	struct blockdev *file;
	uint8_t hdr[LUKS_HEADER_LEN], *m = NULL;
	const uint8_t *pass;
	size_t len, mlen;
	int ret;

	if (!secret) {
		error_setg(errp, "Parameter 'key-secret' is required for cipher");
		return -1;
	}
	if (secret_lookup(secret, &pass, &len, errp) ||
	    luks_format(&h, &key, pass, len, iter_time, &m, &mlen, errp))
		return -1;
	luks_key_wipe(&key); /* the payload starts out as the file's zeroes: never read as such */
	size = ALIGN_UP(size, LUKS_SECTOR);
	if (blockdev_file_create(filename, (uint64_t)h.payload_offset * LUKS_SECTOR + size,
				 BLOCKDEV_PREALLOC_OFF, false, errp))
		goto fail;
	file = blockdev_open_file(filename, &o, errp);
	if (!file)
		goto fail;
	luks_header_put(&h, hdr);
	ret = blockdev_pwrite(file, 0, hdr, sizeof(hdr));
	if (!ret)
		ret = blockdev_pwrite(file, (uint64_t)h.slots[0].key_offset * LUKS_SECTOR, m, mlen);
	if (!ret)
		ret = blockdev_flush(file);
	blockdev_close(file);
	free(m);
	if (ret) {
		error_setg_errno(errp, ret, "'%s': writing the LUKS header", filename);
		return -1;
	}
	return 0;
fail:
	free(m);
	return -1;
}

static int write_area(void *opaque, uint64_t off, const void *buf, size_t len)
{
	return blockdev_pwrite(opaque, off, buf, len) ?: blockdev_flush(opaque);
}

int luks_amend_node(struct blockdev *bs, const struct luks_amend *a, struct error **errp)
{
	struct luks *l = bs->opaque;

	if (bs->drv != &blockdev_luks || l->locked || bs->read_only) {
		error_setg(errp, "'%s': key slots change on a luks image opened read-write with "
			   "its key-secret", bs->filename);
		return -1;
	}
	if (luks_amend(&l->h, &l->key, a, read_area, write_area, bs->file, errp)) {
		error_prepend(errp, "'%s'", bs->filename);
		return -1;
	}
	return 0;
}
