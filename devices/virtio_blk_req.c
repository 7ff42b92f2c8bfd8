/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk request parsing: a pure function of the popped element and the drive's limits.
 * Headers and segments are copied out of guest memory first; only the copies are checked.
 * Any framing is accepted (virtio 1.x has no fixed descriptor layout): the header is the first
 * 16 readable bytes, the status the last writable byte, the data what lies between.
 */
#include "devices/virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "common/util.h"

uint8_t vblk_err_status(enum vblk_err err)
{
	switch (err) {
	case VBLK_OK:
		return VIRTIO_BLK_S_OK;
	case VBLK_ERR_UNSUPP_TYPE:
	case VBLK_ERR_SEG_FLAGS:
		return VIRTIO_BLK_S_UNSUPP;
	default:
		return VIRTIO_BLK_S_IOERR;
	}
}

const char *vblk_err_name(enum vblk_err err)
{
	static const char *const names[] = {
		[VBLK_OK] = "ok",
		[VBLK_ERR_CHAIN] = "malformed descriptor chain",
		[VBLK_ERR_NO_STATUS] = "no writable status byte",
		[VBLK_ERR_SHORT_HDR] = "header shorter than 16 bytes",
		[VBLK_ERR_UNSUPP_TYPE] = "unsupported request type",
		[VBLK_ERR_UNALIGNED] = "data length not a multiple of 512",
		[VBLK_ERR_RANGE] = "sector out of range",
		[VBLK_ERR_READ_ONLY] = "write to a read-only drive",
		[VBLK_ERR_SEGS] = "bad discard/write-zeroes segment count",
		[VBLK_ERR_SEG_FLAGS] = "bad discard/write-zeroes flags",
		[VBLK_ERR_SEG_TOO_BIG] = "discard/write-zeroes segment too large",
		[VBLK_ERR_GET_ID_SHORT] = "GET_ID without a buffer",
	};

	return (unsigned int)err < ARRAY_SIZE(names) && names[err] ? names[err] : "?";
}

/* Copies @len bytes starting @skip bytes into @iov[0..cnt). Returns 0 or -EFAULT if short. */
static int iov_copy_out(const struct iovec *iov, unsigned int cnt, uint64_t skip, void *dst,
			size_t len)
{
	uint8_t *d = dst;

	for (unsigned int i = 0; i < cnt && len; i++) {
		size_t n;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		if (!iov[i].iov_base)
			return -EFAULT;
		n = MIN(len, iov[i].iov_len - skip);
		memcpy(d, (const uint8_t *)iov[i].iov_base + skip, n);
		d += n;
		len -= n;
		skip = 0;
	}
	return len ? -EFAULT : 0;
}

/* Makes @dst describe bytes [skip, skip+len) of @src; returns the number of entries. */
static unsigned int iov_slice(const struct iovec *src, unsigned int cnt, uint64_t skip,
			      uint64_t len, struct iovec *dst)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < cnt && len; i++) {
		uint64_t take;

		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		take = MIN(len, src[i].iov_len - skip);
		dst[n].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[n].iov_len = take;
		n++;
		len -= take;
		skip = 0;
	}
	return n;
}

static bool range_ok(const struct vblk_limits *lim, uint64_t sector, uint64_t sectors)
{
	return sector <= lim->capacity && sectors <= lim->capacity - sector;
}

static enum vblk_err parse_data(const struct virtq_elem *e, const struct vblk_limits *lim,
				struct vblk_parsed *p)
{
	const struct iovec *in = &e->iov[e->nr_out];
	uint64_t len = p->type == VIRTIO_BLK_T_IN ? e->in_len - 1 : e->out_len - VBLK_HDR_SIZE;

	if (p->type == VIRTIO_BLK_T_OUT && lim->read_only)
		return VBLK_ERR_READ_ONLY;
	if (len % VBLK_SECTOR)
		return VBLK_ERR_UNALIGNED;
	if (!range_ok(lim, p->sector, len / VBLK_SECTOR))
		return VBLK_ERR_RANGE;
	p->offset = p->sector * VBLK_SECTOR;
	p->len = len;
	if (p->type == VIRTIO_BLK_T_IN)
		p->data_cnt = iov_slice(in, e->nr_in, 0, len, p->data);
	else
		p->data_cnt = iov_slice(e->iov, e->nr_out, VBLK_HDR_SIZE, len, p->data);
	return VBLK_OK;
}

static enum vblk_err parse_segments(const struct virtq_elem *e, const struct vblk_limits *lim,
				    struct vblk_parsed *p)
{
	bool discard = p->type == VIRTIO_BLK_T_DISCARD;
	uint64_t payload = e->out_len - VBLK_HDR_SIZE;
	uint32_t max = discard ? lim->max_discard_sectors : lim->max_write_zeroes_sectors;

	if (discard ? !lim->discard : !lim->write_zeroes)
		return VBLK_ERR_UNSUPP_TYPE;
	if (lim->read_only)
		return VBLK_ERR_READ_ONLY;
	if (payload == 0 || payload % VBLK_SEG_SIZE || payload / VBLK_SEG_SIZE > lim->max_segs)
		return VBLK_ERR_SEGS;
	for (uint64_t i = 0; i < payload / VBLK_SEG_SIZE; i++) {
		uint8_t raw[VBLK_SEG_SIZE];
		uint64_t sector;
		uint32_t n, flags;

		if (iov_copy_out(e->iov, e->nr_out, VBLK_HDR_SIZE + i * VBLK_SEG_SIZE, raw,
				 sizeof(raw)) < 0)
			return VBLK_ERR_CHAIN;
		memcpy(&sector, raw, 8);
		memcpy(&n, raw + 8, 4);
		memcpy(&flags, raw + 12, 4);
		sector = le64toh(sector);
		n = le32toh(n);
		flags = le32toh(flags);
		if ((flags & ~VIRTIO_BLK_SEG_F_UNMAP) ||
		    (discard && (flags & VIRTIO_BLK_SEG_F_UNMAP)))
			return VBLK_ERR_SEG_FLAGS;
		if (n > max)
			return VBLK_ERR_SEG_TOO_BIG;
		if (!range_ok(lim, sector, n))
			return VBLK_ERR_RANGE;
		if (i == 0) {
			p->offset = sector * VBLK_SECTOR;
			p->len = (uint64_t)n * VBLK_SECTOR;
			p->seg_flags = flags;
		}
	}
	return VBLK_OK;
}

enum vblk_err vblk_parse(const struct virtq_elem *e, const struct vblk_limits *lim,
			 struct vblk_parsed *p)
{
	unsigned int nr = e->nr_out + e->nr_in;
	struct iovec *data = p->data;
	uint8_t hdr[VBLK_HDR_SIZE];
	uint32_t type;
	uint64_t sector;

	memset(p, 0, sizeof(*p));
	p->data = data;
	/* the status byte is the last writable byte, if the chain's shape is known */
	if ((e->err == 0 || e->err == -EFAULT) && e->nr_in > 0 && e->iov[nr - 1].iov_base)
		p->status = (uint8_t *)e->iov[nr - 1].iov_base + e->iov[nr - 1].iov_len - 1;
	if (e->err)
		return VBLK_ERR_CHAIN;
	if (!p->status)
		return VBLK_ERR_NO_STATUS;
	if (e->out_len < VBLK_HDR_SIZE)
		return VBLK_ERR_SHORT_HDR;
	if (iov_copy_out(e->iov, e->nr_out, 0, hdr, sizeof(hdr)) < 0)
		return VBLK_ERR_CHAIN;
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	p->type = le32toh(type);
	p->sector = le64toh(sector);
	switch (p->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return parse_data(e, lim, p);
	case VIRTIO_BLK_T_FLUSH:
		return VBLK_OK;
	case VIRTIO_BLK_T_GET_ID:
		if (e->in_len < 2)
			return VBLK_ERR_GET_ID_SHORT;
		p->len = MIN(e->in_len - 1, (uint64_t)VIRTIO_BLK_ID_BYTES);
		p->data_cnt = iov_slice(&e->iov[e->nr_out], e->nr_in, 0, p->len, p->data);
		return VBLK_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return parse_segments(e, lim, p);
	default:
		return VBLK_ERR_UNSUPP_TYPE;
	}
}
