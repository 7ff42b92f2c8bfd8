/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devices/virtqueue.h"
#include "vmm/gmem.h"

#define RAM (1024 * 1024)
#define QSZ 16
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define TABLE 0x4000 /* indirect tables */
#define BUF 0x10000  /* data buffers */

struct fx {
	struct gmem m;
	struct virtq vq;
	struct iovec iov[64];
	struct virtq_elem e;
	uint16_t avail_idx;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_int_equal(gmem_init(&f->m, RAM, false), 0);
	f->vq = (struct virtq){ .size = QSZ, .desc_gpa = DESC, .avail_gpa = AVAIL, .used_gpa = USED,
				.indirect = true, .mem = &f->m, .kick_fd = -1, .call_fd = -1 };
	assert_int_equal(virtq_start(&f->vq), 0);
	f->e.iov = f->iov;
	f->e.cap = 64;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	gmem_destroy(&f->m);
	free(f);
	return 0;
}

static struct virtq_desc *desc_at(struct fx *f, uint64_t table, unsigned int i)
{
	return gmem_ptr(&f->m, table + 16ull * i, 16);
}

static void set_desc(struct fx *f, uint64_t table, unsigned int i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	*desc_at(f, table, i) = (struct virtq_desc){ addr, len, flags, next };
}

static void make_avail(struct fx *f, uint16_t head)
{
	struct virtq_avail *a = gmem_ptr(&f->m, AVAIL, virtq_avail_bytes(QSZ));

	a->ring[f->avail_idx % QSZ] = head;
	f->avail_idx++;
	a->idx = f->avail_idx;
}

static struct virtq_used *used(struct fx *f)
{
	return gmem_ptr(&f->m, USED, virtq_used_bytes(QSZ));
}

static struct virtq_avail *avail(struct fx *f)
{
	return gmem_ptr(&f->m, AVAIL, virtq_avail_bytes(QSZ));
}

/* Pops one well-formed chain: this head, nr_out readable and nr_in writable buffers. */
static void expect_chain(struct fx *f, uint16_t head, unsigned int nr_out, unsigned int nr_in)
{
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, 0);
	assert_int_equal(f->e.head, head);
	assert_int_equal(f->e.nr_out, nr_out);
	assert_int_equal(f->e.nr_in, nr_in);
}

static void pops_a_chain_split_into_readable_and_writable(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 3, BUF, 16, VIRTQ_DESC_F_NEXT, 7);
	set_desc(f, DESC, 7, BUF + 0x100, 512, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, BUF + 0x1000, 1, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 3);
	expect_chain(f, 3, 2, 1);
	assert_int_equal(f->e.out_len, 528);
	assert_int_equal(f->e.in_len, 1);
	assert_ptr_equal(f->iov[0].iov_base, gmem_ptr(&f->m, BUF, 16));
	assert_ptr_equal(f->iov[2].iov_base, gmem_ptr(&f->m, BUF + 0x1000, 1));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
}

static void pops_an_indirect_table(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(f, DESC, 2, TABLE, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(f, TABLE, 0, BUF + 0x200, 4096, VIRTQ_DESC_F_NEXT, 2);
	set_desc(f, TABLE, 2, BUF + 0x2000, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(f, TABLE, 1, BUF + 0x4000, 1, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	expect_chain(f, 0, 2, 2);
	assert_int_equal(f->e.in_len, 4097);
}

static void indirect_needs_the_feature_and_cannot_nest(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(f, TABLE, 0, TABLE + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -EINVAL);
	f->vq.indirect = false;
	set_desc(f, TABLE, 0, BUF, 16, 0, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -EINVAL);
	/* a table that is not a whole number of descriptors */
	f->vq.indirect = true;
	set_desc(f, DESC, 0, TABLE, 20, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -EINVAL);
	/* a table outside RAM */
	set_desc(f, DESC, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -ENXIO);
}

static void loops_are_detected(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -ELOOP);
	/* a loop of zero-length descriptors, which add no buffers, is caught too */
	set_desc(f, DESC, 0, BUF, 0, VIRTQ_DESC_F_NEXT, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -ELOOP);
	/* inside an indirect table */
	set_desc(f, DESC, 0, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(f, TABLE, 0, BUF, 0, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, TABLE, 1, BUF, 0, VIRTQ_DESC_F_NEXT, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -ELOOP);
	/* the queue keeps working afterwards */
	set_desc(f, DESC, 5, BUF, 8, 0, 0);
	make_avail(f, 5);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, 0);
}

static void a_chain_longer_than_the_iov_array_is_refused(void **state)
{
	struct fx *f = *state;

	for (unsigned int i = 0; i < QSZ; i++)
		set_desc(f, DESC, i, BUF + 64 * i, 64, i + 1 < QSZ ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	f->e.cap = 4;
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -E2BIG);
	/* all QSZ descriptors fit when the array is big enough */
	f->e.cap = 64;
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, 0);
	assert_int_equal(f->e.nr_out, QSZ);
}

static void buffers_outside_ram_are_marked_and_the_walk_goes_on(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, RAM - 100, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	set_desc(f, DESC, 2, BUF + 0x800, 1, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -EFAULT);
	assert_int_equal(f->e.nr_out, 1);
	assert_int_equal(f->e.nr_in, 2);
	assert_null(f->iov[1].iov_base);
	assert_non_null(f->iov[2].iov_base);
	/* an address that wraps around */
	set_desc(f, DESC, 0, UINT64_MAX - 8, 64, 0, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -EFAULT);
}

static void bad_next_and_readable_after_writable_are_refused(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, QSZ);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -EINVAL);
	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(f, DESC, 1, BUF, 16, 0, 0);
	make_avail(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.err, -EINVAL);
}

static void avail_index_too_far_ahead_breaks_the_queue(void **state)
{
	struct fx *f = *state;

	avail(f)->idx = QSZ + 1;
	assert_int_equal(virtq_pop(&f->vq, &f->e), -EIO);
	assert_true(f->vq.broken);
	assert_int_equal(virtq_pop(&f->vq, &f->e), -EIO);
	assert_int_equal(virtq_pending(&f->vq), 0);
}

static void head_index_out_of_range_breaks_the_queue(void **state)
{
	struct fx *f = *state;

	make_avail(f, QSZ);
	assert_int_equal(virtq_pop(&f->vq, &f->e), -EIO);
	assert_true(f->vq.broken);
}

static void start_checks_size_alignment_and_placement(void **state)
{
	struct fx *f = *state;
	struct virtq q = f->vq;

	q.size = 12;
	assert_int_equal(virtq_start(&q), -EINVAL);
	q = f->vq;
	q.desc_gpa = DESC + 8;
	assert_int_equal(virtq_start(&q), -EINVAL);
	q = f->vq;
	q.used_gpa = RAM - 8;
	assert_int_equal(virtq_start(&q), -EFAULT);
	q = f->vq;
	q.size = 0;
	assert_int_equal(virtq_start(&q), -EINVAL);
}

static void push_publishes_the_used_element(void **state)
{
	struct fx *f = *state;

	virtq_push(&f->vq, 9, 513);
	assert_int_equal(used(f)->idx, 1);
	assert_int_equal(used(f)->ring[0].id, 9);
	assert_int_equal(used(f)->ring[0].len, 513);
	for (unsigned int i = 0; i < QSZ; i++)
		virtq_push(&f->vq, (uint16_t)i, 0);
	assert_int_equal(used(f)->idx, QSZ + 1);
	assert_int_equal(used(f)->ring[0].id, QSZ - 1); /* wrapped */
}

static void notify_follows_no_interrupt_without_event_idx(void **state)
{
	struct fx *f = *state;

	virtq_push(&f->vq, 0, 0);
	assert_true(virtq_should_notify(&f->vq));
	assert_false(virtq_should_notify(&f->vq)); /* nothing new */
	avail(f)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	virtq_push(&f->vq, 0, 0);
	assert_false(virtq_should_notify(&f->vq));
}

static void notify_follows_used_event_with_event_idx(void **state)
{
	struct fx *f = *state;
	uint16_t *used_event = &avail(f)->ring[QSZ];

	f->vq.event_idx = true;
	/* the first decision always notifies */
	virtq_push(&f->vq, 0, 0);
	assert_true(virtq_should_notify(&f->vq));
	/* driver wants an interrupt when used idx passes 3 (i.e. after entry 3 is used) */
	*used_event = 3;
	virtq_push(&f->vq, 0, 0); /* idx 2 */
	assert_false(virtq_should_notify(&f->vq));
	virtq_push(&f->vq, 0, 0); /* idx 3 */
	assert_false(virtq_should_notify(&f->vq));
	virtq_push(&f->vq, 0, 0); /* idx 4: crosses 3 */
	assert_true(virtq_should_notify(&f->vq));
	/* several pushes at once crossing the event in the middle */
	*used_event = 5;
	for (int i = 0; i < 3; i++)
		virtq_push(&f->vq, 0, 0); /* 5, 6, 7 */
	assert_true(virtq_should_notify(&f->vq));
	/* an event index behind us is not crossed again */
	virtq_push(&f->vq, 0, 0);
	assert_false(virtq_should_notify(&f->vq));
}

static void vring_need_event_matches_the_spec_formula(void **state)
{
	assert_true(vring_need_event(0, 1, 0));
	assert_false(vring_need_event(1, 1, 0));
	assert_true(vring_need_event(65535, 0, 65535)); /* wrap */
	assert_true(vring_need_event(2, 5, 1));
	assert_false(vring_need_event(7, 5, 1));
}

static void set_notify_writes_the_flag_or_avail_event(void **state)
{
	struct fx *f = *state;

	assert_false(virtq_set_notify(&f->vq, false));
	assert_int_equal(used(f)->flags, VRING_USED_F_NO_NOTIFY);
	set_desc(f, DESC, 0, BUF, 8, 0, 0);
	make_avail(f, 0);
	assert_true(virtq_set_notify(&f->vq, true)); /* pending work is reported */
	assert_int_equal(used(f)->flags, 0);
	f->vq.event_idx = true;
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_false(virtq_set_notify(&f->vq, true));
	assert_int_equal(*(uint16_t *)&used(f)->ring[QSZ], 1);
}

static void status_shows_our_indexes_and_the_drivers_words(void **state)
{
	struct fx *f = *state;
	struct virtq_status st;

	f->vq.event_idx = true;
	set_desc(f, DESC, 0, BUF, 8, 0, 0);
	make_avail(f, 0);
	make_avail(f, 0);
	make_avail(f, 0);
	avail(f)->ring[QSZ] = 1; /* used_event */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, f->e.head, 8);
	assert_true(virtq_should_notify(&f->vq));
	virtq_set_notify(&f->vq, false);
	virtq_get_status(&f->vq, &st);
	assert_int_equal(st.size, QSZ);
	assert_int_equal(st.desc_gpa, DESC);
	assert_int_equal(st.avail_gpa, AVAIL);
	assert_int_equal(st.used_gpa, USED);
	assert_int_equal(st.last_avail, 1);
	assert_int_equal(st.shadow_avail, 3); /* the driver's index, two chains not popped yet */
	assert_int_equal(st.used_idx, 1);
	assert_int_equal(st.signalled_used, 1);
	assert_true(st.signalled_valid);
	assert_true(st.event_idx);
	assert_false(st.notify_enabled);
	assert_false(st.broken);
	assert_int_equal(st.used_event, 1);
	assert_int_equal(st.avail_event, 1); /* set at the pop, left behind once notify is off */
	avail(f)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	virtq_get_status(&f->vq, &st);
	assert_int_equal(st.avail_flags, VRING_AVAIL_F_NO_INTERRUPT);
}

/*
 * Randomized: well-formed chains of random shape (direct part, optional indirect tail, random
 * descriptor slots) are popped exactly as built; random garbage never breaks the invariants.
 */
static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

static void random_wellformed_chains_match_the_model(void **state)
{
	struct fx *f = *state;

	for (int iter = 0; iter < 2000; iter++) {
		unsigned int nd = 1 + rnd() % 6, ni = (rnd() % 3) ? 0 : 1 + rnd() % 8;
		unsigned int total = nd + ni, nout = rnd() % (total + 1);
		uint16_t slots[QSZ];
		uint64_t addr[16];
		uint32_t len[16];
		unsigned int k = 0;

		for (unsigned int i = 0; i < QSZ; i++)
			slots[i] = (uint16_t)i;
		for (unsigned int i = QSZ - 1; i > 0; i--) { /* shuffle */
			unsigned int j = rnd() % (i + 1);
			uint16_t t = slots[i];

			slots[i] = slots[j];
			slots[j] = t;
		}
		for (unsigned int i = 0; i < total; i++) {
			len[i] = 1 + rnd() % 8192;
			addr[i] = BUF + (rnd() % (RAM - BUF - 8192));
		}
		/* direct part; if there is an indirect tail, one more direct slot points at it */
		for (unsigned int i = 0; i < nd; i++) {
			bool last = i + 1 == nd;
			uint16_t fl = (k >= nout ? VIRTQ_DESC_F_WRITE : 0);

			if (!last || ni)
				fl |= VIRTQ_DESC_F_NEXT;
			set_desc(f, DESC, slots[i], addr[k], len[k], fl, slots[i + 1]);
			k++;
		}
		if (ni) {
			set_desc(f, DESC, slots[nd], TABLE, ni * 16, VIRTQ_DESC_F_INDIRECT, 0);
			/* the walk starts at entry 0, then goes through ni-1, ni-2, ..., 1 */
			for (unsigned int i = 0; i < ni; i++) {
				unsigned int slot = i ? ni - i : 0, next = ni - (i + 1);
				uint16_t fl = (k >= nout ? VIRTQ_DESC_F_WRITE : 0);

				if (i + 1 < ni)
					fl |= VIRTQ_DESC_F_NEXT;
				set_desc(f, TABLE, slot, addr[k], len[k], fl, (uint16_t)next);
				k++;
			}
		}
		make_avail(f, slots[0]);
		expect_chain(f, slots[0], nout, total - nout);
		for (unsigned int i = 0; i < total; i++) {
			assert_ptr_equal(f->iov[i].iov_base, gmem_ptr(&f->m, addr[i], len[i]));
			assert_int_equal(f->iov[i].iov_len, len[i]);
		}
		virtq_push(&f->vq, f->e.head, 0);
	}
}

static void random_garbage_keeps_the_invariants(void **state)
{
	struct fx *f = *state;
	uint8_t *desc = gmem_ptr(&f->m, DESC, 16 * QSZ), *table = gmem_ptr(&f->m, TABLE, 4096);

	for (int iter = 0; iter < 20000; iter++) {
		int ret;

		for (unsigned int i = 0; i < 16 * QSZ; i++)
			desc[i] = (uint8_t)rnd();
		for (unsigned int i = 0; i < 4096; i++)
			table[i] = (uint8_t)rnd();
		/* make some addresses point into RAM and some lengths small */
		for (unsigned int i = 0; i < QSZ; i++) {
			struct virtq_desc *d = desc_at(f, DESC, i);

			if (rnd() % 2)
				d->addr = rnd() % RAM;
			if (rnd() % 2)
				d->len = rnd() % 4096;
			if (rnd() % 2)
				d->next %= QSZ;
			if ((d->flags & VIRTQ_DESC_F_INDIRECT) && rnd() % 2) {
				d->addr = TABLE;
				d->len = 16 * (rnd() % 300);
			}
		}
		for (unsigned int i = 0; i < 256; i++) {
			struct virtq_desc *d = desc_at(f, TABLE, i);

			if (rnd() % 2)
				d->next %= 256;
			if (rnd() % 2)
				d->addr = rnd() % RAM;
			d->len %= 8192;
		}
		make_avail(f, (uint16_t)(rnd() % QSZ));
		ret = virtq_pop(&f->vq, &f->e);
		assert_int_equal(ret, 1);
		assert_true(f->e.nr_out + f->e.nr_in <= f->e.cap);
		for (unsigned int i = 0; i < f->e.nr_out + f->e.nr_in; i++) {
			if (f->iov[i].iov_base) {
				uint8_t *p = f->iov[i].iov_base;
				uint8_t *lo = f->m.regions[0].host;

				assert_true(p >= lo && p + f->iov[i].iov_len <= lo + RAM);
			} else {
				assert_int_not_equal(f->e.err, 0);
			}
		}
		virtq_push(&f->vq, f->e.head, 0);
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(pops_a_chain_split_into_readable_and_writable),
		T(pops_an_indirect_table),
		T(indirect_needs_the_feature_and_cannot_nest),
		T(loops_are_detected),
		T(a_chain_longer_than_the_iov_array_is_refused),
		T(buffers_outside_ram_are_marked_and_the_walk_goes_on),
		T(bad_next_and_readable_after_writable_are_refused),
		T(avail_index_too_far_ahead_breaks_the_queue),
		T(head_index_out_of_range_breaks_the_queue),
		T(start_checks_size_alignment_and_placement),
		T(push_publishes_the_used_element),
		T(notify_follows_no_interrupt_without_event_idx),
		T(notify_follows_used_event_with_event_idx),
		T(vring_need_event_matches_the_spec_formula),
		T(set_notify_writes_the_flag_or_avail_event),
		T(status_shows_our_indexes_and_the_drivers_words),
		T(random_wellformed_chains_match_the_model),
		T(random_garbage_keeps_the_invariants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
