/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The request-queue fixture of the device fuzz targets (virtio-blk, virtio-scsi): guest RAM
 * built from the rest of the input, one 16-entry split queue at fixed addresses in it, and a
 * chain element with room for @cap buffers, so each target only parses and checks what the
 * real virtqueue code pops.
 *
 * Layout: descriptors at 0x0, avail ring at 0x100, used ring at 0x140; region 0 is at least
 * 0x200 bytes; the image's last (split * 64) bytes go to RAM region 1 (fuzz_gmem_build).
 */
#ifndef VIREO_TESTS_FUZZ_FUZZ_VQ_H
#define VIREO_TESTS_FUZZ_FUZZ_VQ_H

#include <sys/uio.h>

#include "common/util.h"
#include "devices/virtqueue.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_VQ_SIZE 16

struct fuzz_vq {
	struct gmem m;
	struct virtq vq;
	struct virtq_elem e;
};

static inline void fuzz_vq_start(struct fuzz_vq *f, const struct fuzz_in *in, uint8_t split,
				 unsigned int cap, bool event_idx, bool indirect)
{
	size_t tail = MIN((size_t)split * 64, in->n);

	memset(f, 0, sizeof(*f));
	fuzz_gmem_build(&f->m, in->p, in->n, in->n - tail, 0x200);
	f->vq = (struct virtq){ .size = FUZZ_VQ_SIZE, .desc_gpa = 0x0, .avail_gpa = 0x100,
				.used_gpa = 0x140, .event_idx = event_idx, .indirect = indirect,
				.mem = &f->m, .kick_fd = -1, .call_fd = -1 };
	if (virtq_start(&f->vq) < 0)
		FUZZ_CHECK(0, "the fixed queue layout was refused");
	f->e.cap = cap;
	f->e.iov = malloc(cap * sizeof(*f->e.iov));
	if (!f->e.iov)
		abort();
}

/* After the last virtq_pop: it ended on an empty ring or a broken queue, nothing else. */
static inline void fuzz_vq_finish(struct fuzz_vq *f, int last_pop)
{
	FUZZ_CHECK(last_pop == 0 || last_pop == -EIO, "virtq_pop returned %d", last_pop);
	free(f->e.iov);
	fuzz_gmem_free(&f->m);
}

/* The sum of @n data buffers, each checked to be RAM; written (device-writable) or read. */
static inline uint64_t fuzz_iov_total(const struct iovec *v, unsigned int n, bool write,
				      const struct gmem *m)
{
	uint64_t sum = 0;

	for (unsigned int i = 0; i < n; i++) {
		FUZZ_CHECK(v[i].iov_base && fuzz_gmem_owns(m, v[i].iov_base, v[i].iov_len),
			   "data buffer %u (%zu bytes) is not inside RAM", i, v[i].iov_len);
		if (write)
			memset(v[i].iov_base, 0x5a, v[i].iov_len);
		else
			(void)fuzz_touch_read(v[i].iov_base, v[i].iov_len);
		sum += v[i].iov_len;
	}
	return sum;
}

#endif
