/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-blk request parsing (vblk_parse): pure, so the element is built over host buffers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/util.h"
#include "devices/virtio_blk.h"

static const struct vblk_limits lim = {
	.capacity = 2048, /* 1 MiB */
	.discard = true,
	.write_zeroes = true,
	.max_discard_sectors = 1024,
	.max_write_zeroes_sectors = 1024,
	.max_segs = 1,
};

struct req {
	uint8_t hdr[64];
	uint8_t data[8192];
	uint8_t status[4];
	struct iovec iov[8];
	struct iovec out[8];
	struct virtq_elem e;
	struct vblk_parsed p;
};

static void hdr_set(uint8_t *h, uint32_t type, uint64_t sector)
{
	memset(h, 0, 16);
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
}

static void seg_set(uint8_t *s, uint64_t sector, uint32_t n, uint32_t flags)
{
	memcpy(s, &sector, 8);
	memcpy(s + 8, &n, 4);
	memcpy(s + 12, &flags, 4);
}

/* header (hdr_len readable) [+ data readable or writable] + 1-byte status */
static void build(struct req *r, size_t hdr_len, size_t data_len, bool data_writable)
{
	unsigned int n = 0;

	memset(&r->e, 0, sizeof(r->e));
	r->e.iov = r->iov;
	r->e.cap = 8;
	r->iov[n++] = (struct iovec){ r->hdr, hdr_len };
	r->e.nr_out = 1;
	r->e.out_len = hdr_len;
	if (data_len) {
		r->iov[n++] = (struct iovec){ r->data, data_len };
		if (data_writable) {
			r->e.nr_in++;
			r->e.in_len += data_len;
		} else {
			r->e.nr_out++;
			r->e.out_len += data_len;
		}
	}
	r->iov[n++] = (struct iovec){ r->status, 1 };
	r->e.nr_in++;
	r->e.in_len += 1;
	r->p.data = r->out;
}

static enum vblk_err parse(struct req *r, const struct vblk_limits *l)
{
	r->p.data = r->out;
	return vblk_parse(&r->e, l, &r->p);
}

static void read_request_is_parsed(void **state)
{
	struct req r;

	hdr_set(r.hdr, VIRTIO_BLK_T_IN, 8);
	build(&r, 16, 4096, true);
	assert_int_equal(parse(&r, &lim), VBLK_OK);
	assert_int_equal(r.p.type, VIRTIO_BLK_T_IN);
	assert_int_equal(r.p.offset, 8 * 512);
	assert_int_equal(r.p.len, 4096);
	assert_int_equal(r.p.data_cnt, 1);
	assert_ptr_equal(r.p.data[0].iov_base, r.data);
	assert_ptr_equal(r.p.status, r.status);
}

static void any_layout_is_accepted(void **state)
{
	struct req r;

	/* OUT with header and data in one descriptor */
	hdr_set(r.hdr, VIRTIO_BLK_T_OUT, 1);
	build(&r, 16 + 512, 0, false);
	assert_int_equal(parse(&r, &lim), VBLK_OK);
	assert_int_equal(r.p.len, 512);
	assert_ptr_equal(r.p.data[0].iov_base, r.hdr + 16);
	/* IN with data and status in one descriptor */
	hdr_set(r.hdr, VIRTIO_BLK_T_IN, 0);
	build(&r, 16, 0, true);
	r.iov[1] = (struct iovec){ r.data, 1025 };
	r.e.in_len = 1025;
	assert_int_equal(parse(&r, &lim), VBLK_OK);
	assert_int_equal(r.p.len, 1024);
	assert_ptr_equal(r.p.status, r.data + 1024);
	/* header split over two descriptors */
	hdr_set(r.hdr, VIRTIO_BLK_T_IN, 3);
	build(&r, 16, 512, true);
	memmove(&r.iov[1], &r.iov[0], 3 * sizeof(r.iov[0]));
	r.iov[0] = (struct iovec){ r.hdr, 5 };
	r.iov[1] = (struct iovec){ r.hdr + 5, 11 };
	r.e.nr_out = 2;
	assert_int_equal(parse(&r, &lim), VBLK_OK);
	assert_int_equal(r.p.sector, 3);
}

static void short_header_is_ioerr(void **state)
{
	struct req r;

	hdr_set(r.hdr, VIRTIO_BLK_T_IN, 0);
	build(&r, 15, 512, true);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_SHORT_HDR);
	assert_ptr_equal(r.p.status, r.status);
	assert_int_equal(vblk_err_status(VBLK_ERR_SHORT_HDR), VIRTIO_BLK_S_IOERR);
}

static void missing_status_byte_is_reported(void **state)
{
	struct req r;

	hdr_set(r.hdr, VIRTIO_BLK_T_OUT, 0);
	build(&r, 16, 512, false);
	r.e.nr_in = 0; /* the status descriptor became readable */
	r.e.nr_out++;
	r.e.out_len += 1;
	r.e.in_len = 0;
	assert_int_equal(parse(&r, &lim), VBLK_ERR_NO_STATUS);
	assert_null(r.p.status);
}

static void malformed_chain_keeps_the_status_only_if_its_shape_is_known(void **state)
{
	struct req r;

	hdr_set(r.hdr, VIRTIO_BLK_T_IN, 0);
	build(&r, 16, 512, true);
	r.e.err = -EFAULT;
	r.iov[1].iov_base = NULL;
	assert_int_equal(parse(&r, &lim), VBLK_ERR_CHAIN);
	assert_ptr_equal(r.p.status, r.status);
	r.e.err = -ELOOP;
	assert_int_equal(parse(&r, &lim), VBLK_ERR_CHAIN);
	assert_null(r.p.status);
}

static void data_not_a_sector_multiple_is_ioerr(void **state)
{
	struct req r;

	hdr_set(r.hdr, VIRTIO_BLK_T_IN, 0);
	build(&r, 16, 513, true);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_UNALIGNED);
	hdr_set(r.hdr, VIRTIO_BLK_T_OUT, 0);
	build(&r, 16, 100, false);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_UNALIGNED);
}

static void sectors_beyond_capacity_are_ioerr(void **state)
{
	struct req r;

	hdr_set(r.hdr, VIRTIO_BLK_T_IN, 2047);
	build(&r, 16, 512, true);
	assert_int_equal(parse(&r, &lim), VBLK_OK); /* the last sector */
	hdr_set(r.hdr, VIRTIO_BLK_T_IN, 2047);
	build(&r, 16, 1024, true);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_RANGE);
	hdr_set(r.hdr, VIRTIO_BLK_T_OUT, UINT64_MAX);
	build(&r, 16, 512, false);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_RANGE);
}

static void writes_to_a_read_only_drive_are_ioerr(void **state)
{
	struct vblk_limits ro = lim;
	struct req r;

	ro.read_only = true;
	hdr_set(r.hdr, VIRTIO_BLK_T_OUT, 0);
	build(&r, 16, 512, false);
	assert_int_equal(parse(&r, &ro), VBLK_ERR_READ_ONLY);
	assert_int_equal(vblk_err_status(VBLK_ERR_READ_ONLY), VIRTIO_BLK_S_IOERR);
	hdr_set(r.hdr, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	seg_set(r.hdr + 16, 0, 8, 0);
	build(&r, 32, 0, false);
	assert_int_equal(parse(&r, &ro), VBLK_ERR_READ_ONLY);
	/* reads and flushes are fine */
	hdr_set(r.hdr, VIRTIO_BLK_T_FLUSH, 0);
	build(&r, 16, 0, false);
	assert_int_equal(parse(&r, &ro), VBLK_OK);
}

static void unknown_types_and_unnegotiated_features_are_unsupp(void **state)
{
	struct vblk_limits nodisc = lim;
	struct req r;

	hdr_set(r.hdr, 99, 0);
	build(&r, 16, 0, false);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_UNSUPP_TYPE);
	assert_int_equal(vblk_err_status(VBLK_ERR_UNSUPP_TYPE), VIRTIO_BLK_S_UNSUPP);
	nodisc.discard = false;
	hdr_set(r.hdr, VIRTIO_BLK_T_DISCARD, 0);
	seg_set(r.hdr + 16, 0, 8, 0);
	build(&r, 32, 0, false);
	assert_int_equal(parse(&r, &nodisc), VBLK_ERR_UNSUPP_TYPE);
}

static void discard_and_write_zeroes_segments_are_checked(void **state)
{
	struct req r;

	hdr_set(r.hdr, VIRTIO_BLK_T_DISCARD, 0);
	seg_set(r.hdr + 16, 100, 8, 0);
	build(&r, 32, 0, false);
	assert_int_equal(parse(&r, &lim), VBLK_OK);
	assert_int_equal(r.p.offset, 100 * 512);
	assert_int_equal(r.p.len, 8 * 512);
	/* no segment, a partial one, two with max 1 */
	build(&r, 16, 0, false);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_SEGS);
	build(&r, 33, 0, false);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_SEGS);
	seg_set(r.hdr + 32, 0, 1, 0);
	build(&r, 48, 0, false);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_SEGS);
	/* unmap on a discard, unknown flags on write-zeroes */
	seg_set(r.hdr + 16, 0, 8, VIRTIO_BLK_SEG_F_UNMAP);
	build(&r, 32, 0, false);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_SEG_FLAGS);
	assert_int_equal(vblk_err_status(VBLK_ERR_SEG_FLAGS), VIRTIO_BLK_S_UNSUPP);
	hdr_set(r.hdr, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	seg_set(r.hdr + 16, 0, 8, VIRTIO_BLK_SEG_F_UNMAP);
	build(&r, 32, 0, false);
	assert_int_equal(parse(&r, &lim), VBLK_OK);
	assert_int_equal(r.p.seg_flags, VIRTIO_BLK_SEG_F_UNMAP);
	seg_set(r.hdr + 16, 0, 8, 2);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_SEG_FLAGS);
	/* too many sectors, out of range */
	seg_set(r.hdr + 16, 0, 1025, 0);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_SEG_TOO_BIG);
	seg_set(r.hdr + 16, 2040, 16, 0);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_RANGE);
}

static void get_id_fills_at_most_20_bytes(void **state)
{
	struct req r;

	hdr_set(r.hdr, VIRTIO_BLK_T_GET_ID, 0);
	build(&r, 16, 64, true);
	assert_int_equal(parse(&r, &lim), VBLK_OK);
	assert_int_equal(r.p.len, VIRTIO_BLK_ID_BYTES);
	build(&r, 16, 0, true);
	assert_int_equal(parse(&r, &lim), VBLK_ERR_GET_ID_SHORT);
}

static uint32_t rs = 0x9e3779b9;

static uint32_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 17;
	rs ^= rs << 5;
	return rs;
}

static void random_requests_never_break_the_invariants(void **state)
{
	static uint8_t pool[65536];
	struct iovec iov[8], out[8];

	for (int iter = 0; iter < 200000; iter++) {
		struct virtq_elem e = { .iov = iov, .cap = 8 };
		struct vblk_parsed p = { .data = out };
		unsigned int n = rnd() % 9;
		enum vblk_err err;

		for (unsigned int i = 0; i < n; i++) {
			size_t len = rnd() % 3 ? rnd() % 40 : rnd() % 4096;
			size_t off = rnd() % (sizeof(pool) - len);

			iov[i] = (struct iovec){ pool + off, len };
			if (i < 2 && rnd() % 2) { /* plausible header */
				uint32_t t = rnd() % 16;

				memcpy(pool + off, &t, MIN(len, 4));
			}
		}
		for (unsigned int i = 0; i < 64; i++)
			pool[rnd() % sizeof(pool)] = (uint8_t)rnd();
		e.nr_out = n ? rnd() % (n + 1) : 0;
		e.nr_in = n - e.nr_out;
		for (unsigned int i = 0; i < n; i++) {
			if (i < e.nr_out)
				e.out_len += iov[i].iov_len;
			else
				e.in_len += iov[i].iov_len;
		}
		if (rnd() % 16 == 0)
			e.err = -EFAULT;
		err = vblk_parse(&e, &lim, &p);
		assert_true(err >= VBLK_OK && err <= VBLK_ERR_GET_ID_SHORT);
		assert_true(p.data_cnt <= n);
		if (p.status)
			assert_true(p.status >= pool && p.status < pool + sizeof(pool));
		if (err == VBLK_OK) {
			uint64_t sum = 0;

			assert_non_null(p.status);
			for (unsigned int i = 0; i < p.data_cnt; i++)
				sum += p.data[i].iov_len;
			if (p.type == VIRTIO_BLK_T_IN || p.type == VIRTIO_BLK_T_OUT) {
				assert_int_equal(sum, p.len);
				assert_int_equal(p.len % 512, 0);
				assert_true(p.offset / 512 + p.len / 512 <= lim.capacity);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(read_request_is_parsed),
		cmocka_unit_test(any_layout_is_accepted),
		cmocka_unit_test(short_header_is_ioerr),
		cmocka_unit_test(missing_status_byte_is_reported),
		cmocka_unit_test(malformed_chain_keeps_the_status_only_if_its_shape_is_known),
		cmocka_unit_test(data_not_a_sector_multiple_is_ioerr),
		cmocka_unit_test(sectors_beyond_capacity_are_ioerr),
		cmocka_unit_test(writes_to_a_read_only_drive_are_ioerr),
		cmocka_unit_test(unknown_types_and_unnegotiated_features_are_unsupp),
		cmocka_unit_test(discard_and_write_zeroes_segments_are_checked),
		cmocka_unit_test(get_id_fills_at_most_20_bytes),
		cmocka_unit_test(random_requests_never_break_the_invariants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
