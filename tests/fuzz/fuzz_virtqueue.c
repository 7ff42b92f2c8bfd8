/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the split-virtqueue chain walker (devices/virtqueue.c) over guest memory the
 * input describes.
 *
 * Input: a 24-byte header, then the guest memory image.
 *   0  u16 size      queue size; with flag 0x04 used as is, else 1 << (size % 16)
 *   2  u8  flags     0x01 EVENT_IDX, 0x02 INDIRECT_DESC, 0x04 raw size, 0x08 disable
 *                    notifications before the second round
 *   3  u8  cap       iovec entries the device offers per chain: 1 + cap * 5
 *   4  u32 desc_gpa, 8 u32 avail_gpa, 12 u32 used_gpa
 *  16  u16 split     bytes of the image in RAM region 0 (GPA 0); the rest is region 1 at 1 MiB
 *  18  u16 bump      the guest then adds this to avail->idx (second round)
 *  20  u32 push_len  used.len reported for each chain
 *
 * Invariants: every popped chain is bounded (at most `size` chains per round, at most `cap`
 * buffers each, lengths add up), every buffer handed out lies inside one RAM region (and its
 * bytes are read or written, so ASan sees it), errors are the documented ones, and a broken
 * queue stays broken.
 */
#include <errno.h>
#include <stdlib.h>

#include "devices/virtqueue.h"
#include "tests/fuzz/fuzz.h"

#define HDR_SIZE 24

static bool known_err(int err)
{
	/* -ENXIO: an indirect table outside RAM (virtqueue.c walk_indirect) */
	return err == 0 || err == -EFAULT || err == -ELOOP || err == -E2BIG || err == -EINVAL ||
	       err == -ENXIO;
}

static void check_elem(const struct virtq *vq, const struct virtq_elem *e)
{
	uint64_t out = 0, in = 0;
	unsigned int n = e->nr_out + e->nr_in;

	FUZZ_CHECK(e->head < vq->size, "head %u, size %u", e->head, vq->size);
	FUZZ_CHECK(known_err(e->err), "err %d", e->err);
	FUZZ_CHECK(n <= e->cap, "%u buffers, cap %u", n, e->cap);
	for (unsigned int i = 0; i < n; i++) {
		const struct iovec *v = &e->iov[i];

		FUZZ_CHECK(v->iov_len > 0, "buffer %u has length 0", i);
		if (i < e->nr_out)
			out += v->iov_len;
		else
			in += v->iov_len;
		if (!v->iov_base) {
			FUZZ_CHECK(e->err != 0, "buffer %u outside RAM but err 0", i);
			continue;
		}
		FUZZ_CHECK(fuzz_gmem_owns(vq->mem, v->iov_base, v->iov_len),
			   "buffer %u (%zu bytes) is not inside one RAM region", i, v->iov_len);
		if (i < e->nr_out)
			(void)fuzz_touch_read(v->iov_base, v->iov_len);
		else
			memset(v->iov_base, 0xa5, v->iov_len); /* the device writes the guest */
	}
	FUZZ_CHECK(out == e->out_len && in == e->in_len, "lengths %llu/%llu, buffers add up to "
		   "%llu/%llu", (unsigned long long)e->out_len, (unsigned long long)e->in_len,
		   (unsigned long long)out, (unsigned long long)in);
}

/* Pops until empty or broken; returns the number of chains, which must not exceed the size. */
static unsigned int drain(struct virtq *vq, struct virtq_elem *e, uint16_t *heads)
{
	unsigned int popped = 0;
	int r;

	while ((r = virtq_pop(vq, e)) == 1) {
		FUZZ_LOG("virtqueue: chain %u: %u out, %u in, err %d\n", e->head, e->nr_out,
			 e->nr_in, e->err);
		check_elem(vq, e);
		FUZZ_CHECK(popped < vq->size, "more than %u chains popped in one round", vq->size);
		heads[popped++] = e->head;
	}
	FUZZ_CHECK(r == 0 || r == -EIO, "virtq_pop returned %d", r);
	FUZZ_LOG("virtqueue: round ends with %d\n", r);
	if (r == -EIO) {
		FUZZ_CHECK(vq->broken, "-EIO without marking the queue broken");
		FUZZ_CHECK(virtq_pop(vq, e) == -EIO, "a broken queue popped again");
		FUZZ_CHECK(virtq_pending(vq) == 0, "a broken queue has pending chains");
	}
	return popped;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct virtq vq = { 0 };
	struct virtq_elem e = { 0 };
	struct gmem m;
	uint16_t raw_size, split, bump, *heads;
	uint8_t flags, cap;
	uint32_t push_len;
	unsigned int popped;

	if (size < HDR_SIZE)
		return 0;
	raw_size = fuzz_u16(&in);
	flags = fuzz_u8(&in);
	cap = fuzz_u8(&in);
	vq.desc_gpa = fuzz_u32(&in);
	vq.avail_gpa = fuzz_u32(&in);
	vq.used_gpa = fuzz_u32(&in);
	split = fuzz_u16(&in);
	bump = fuzz_u16(&in);
	push_len = fuzz_u32(&in);

	vq.size = (flags & 0x04) ? raw_size : (uint16_t)(1u << (raw_size % 16));
	vq.event_idx = flags & 0x01;
	vq.indirect = flags & 0x02;
	vq.kick_fd = vq.call_fd = -1;
	fuzz_gmem_build(&m, in.p, in.n, split, 0);
	vq.mem = &m;
	if (virtq_start(&vq) < 0) {
		FUZZ_LOG("virtqueue: start refused the rings\n");
		goto out;
	}

	e.cap = 1 + cap * 5u;
	e.iov = malloc(e.cap * sizeof(*e.iov));
	heads = malloc(vq.size * sizeof(*heads));
	if (!e.iov || !heads)
		abort();

	/* round 1: what the guest made available */
	popped = drain(&vq, &e, heads);
	for (unsigned int i = 0; i < popped; i++)
		virtq_push(&vq, heads[i], push_len);
	(void)virtq_should_notify(&vq);
	(void)virtq_should_notify(&vq);
	(void)virtq_set_notify(&vq, !(flags & 0x08));

	/* round 2: the guest publishes more (possibly claiming too much: the queue breaks) */
	vq.avail->idx = (uint16_t)(vq.avail->idx + bump);
	popped = drain(&vq, &e, heads);
	for (unsigned int i = 0; i < popped; i++)
		virtq_push(&vq, heads[i], push_len);
	(void)virtq_should_notify(&vq);
	(void)virtq_set_notify(&vq, true);

	free(heads);
	free(e.iov);
out:
	fuzz_gmem_free(&m);
	return 0;
}
