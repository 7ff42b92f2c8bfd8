/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: virtio-blk request parsing (devices/virtio_blk_req.c, vblk_parse) on chains
 * popped by the real virtqueue code from guest memory the input describes.
 *
 * Input: a 24-byte header, then the guest memory image (region 0 at GPA 0, padded to 0x200).
 *   0  u64 capacity   sectors (masked to 2^55 - 1: a disk is at most 2^64 bytes)
 *   8  u8  flags      0x01 read-only, 0x02 DISCARD, 0x04 WRITE_ZEROES, 0x08 INDIRECT_DESC,
 *                     0x10 EVENT_IDX
 *   9  u8  max_segs   1 + max_segs % 4
 *  10  u8  cap        iovec entries per chain: 1 + cap % 64
 *  11  u8  split      the image's last (split * 64) bytes go to RAM region 1 (at 1 MiB), if any
 *  12  u32 max_discard_sectors, 16 u32 max_write_zeroes_sectors, 20 u32 (unused)
 * The queue has 16 entries: descriptors at 0x0, avail ring at 0x100, used ring at 0x140; the
 * guest's buffers live anywhere else in the image.
 *
 * Invariants for an accepted request: data buffers lie in RAM and add up to the request length,
 * the byte range fits the capacity, features and read-only are honoured, and the status byte is
 * known; for every request, the status byte (when located) is inside RAM and gets written.
 */
#include <errno.h>
#include <stdlib.h>

#include "common/util.h"
#include "devices/virtio_blk.h"
#include "tests/fuzz/fuzz_vq.h"

#define HDR_SIZE 24

static void check_ok(const struct virtq_elem *e, const struct vblk_limits *lim,
		     const struct vblk_parsed *p, const struct gmem *m)
{
	uint64_t bytes = lim->capacity * VBLK_SECTOR;

	FUZZ_CHECK(p->status, "request accepted without a status byte");
	FUZZ_CHECK(p->data_cnt <= e->nr_out + e->nr_in, "%u data buffers from a chain of %u",
		   p->data_cnt, e->nr_out + e->nr_in);
	switch (p->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		FUZZ_CHECK(p->type == VIRTIO_BLK_T_IN || !lim->read_only, "write to a read-only "
			   "drive accepted");
		FUZZ_CHECK(p->len % VBLK_SECTOR == 0, "length %llu", (unsigned long long)p->len);
		FUZZ_CHECK(p->offset == p->sector * VBLK_SECTOR, "offset/sector mismatch");
		FUZZ_CHECK(p->offset <= bytes && p->len <= bytes - p->offset, "range [%llu, +%llu) "
			   "past the capacity %llu", (unsigned long long)p->offset,
			   (unsigned long long)p->len, (unsigned long long)bytes);
		FUZZ_CHECK(fuzz_iov_total(p->data, p->data_cnt, p->type == VIRTIO_BLK_T_IN, m) == p->len,
			   "data buffers do not add up to %llu", (unsigned long long)p->len);
		break;
	case VIRTIO_BLK_T_GET_ID:
		FUZZ_CHECK(p->len >= 1 && p->len <= VIRTIO_BLK_ID_BYTES && p->len < e->in_len,
			   "GET_ID length %llu", (unsigned long long)p->len);
		FUZZ_CHECK(fuzz_iov_total(p->data, p->data_cnt, true, m) == p->len,
			   "GET_ID buffers do not add up");
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool discard = p->type == VIRTIO_BLK_T_DISCARD;
		uint64_t max = discard ? lim->max_discard_sectors : lim->max_write_zeroes_sectors;

		FUZZ_CHECK(discard ? lim->discard : lim->write_zeroes, "feature not negotiated");
		FUZZ_CHECK(!lim->read_only, "discard/write-zeroes on a read-only drive accepted");
		FUZZ_CHECK(p->len % VBLK_SECTOR == 0 && p->len <= max * VBLK_SECTOR,
			   "segment of %llu bytes", (unsigned long long)p->len);
		FUZZ_CHECK(p->offset <= bytes && p->len <= bytes - p->offset, "segment past the "
			   "capacity");
		FUZZ_CHECK(!(p->seg_flags & ~VIRTIO_BLK_SEG_F_UNMAP) &&
			   !(discard && p->seg_flags), "segment flags 0x%x", p->seg_flags);
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		break;
	default:
		FUZZ_CHECK(0, "unknown type %u accepted", p->type);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct vblk_limits lim = { 0 };
	struct fuzz_vq f;
	uint8_t flags, split, cap;
	int r;

	if (size < HDR_SIZE)
		return 0;
	lim.capacity = fuzz_u64(&in) & ((1ULL << 55) - 1);
	flags = fuzz_u8(&in);
	lim.read_only = flags & 0x01;
	lim.discard = flags & 0x02;
	lim.write_zeroes = flags & 0x04;
	lim.max_segs = 1 + fuzz_u8(&in) % 4;
	cap = fuzz_u8(&in);
	split = fuzz_u8(&in);
	lim.max_discard_sectors = fuzz_u32(&in);
	lim.max_write_zeroes_sectors = fuzz_u32(&in);
	(void)fuzz_u32(&in);
	fuzz_vq_start(&f, &in, split, 1 + cap % 64, flags & 0x10, flags & 0x08);

	for (unsigned int chains = 0; (r = virtq_pop(&f.vq, &f.e)) == 1; chains++) {
		unsigned int nr = f.e.nr_out + f.e.nr_in;
		struct vblk_parsed p;
		enum vblk_err err;
		uint32_t used_len = 0;

		FUZZ_CHECK(chains < FUZZ_VQ_SIZE, "more chains than the queue holds");
		/* exactly what the header promises the caller must provide */
		p.data = malloc((nr ? nr : 1) * sizeof(*p.data));
		if (!p.data)
			abort();
		err = vblk_parse(&f.e, &lim, &p);
		FUZZ_LOG("virtio_blk_req: chain %u type %u: %s\n", f.e.head, p.type,
			 vblk_err_name(err));
		FUZZ_CHECK(vblk_err_name(err) != NULL, "no name for %d", err);
		if (err == VBLK_OK)
			check_ok(&f.e, &lim, &p, &f.m);
		else
			FUZZ_CHECK(vblk_err_status(err) != VIRTIO_BLK_S_OK,
				   "error %d gives status OK", err);
		if (p.status) {
			FUZZ_CHECK(fuzz_gmem_owns(&f.m, p.status, 1), "status byte outside RAM");
			*p.status = vblk_err_status(err);
			used_len = 1;
		}
		virtq_push(&f.vq, f.e.head, used_len);
		free(p.data);
	}
	fuzz_vq_finish(&f, r);
	return 0;
}
