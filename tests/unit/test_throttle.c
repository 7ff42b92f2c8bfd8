/* SPDX-License-Identifier: Apache-2.0 */
/* The throttle arithmetic on a fake clock: an average limit holds, a burst runs at its rate for
 * its length and comes back after idling, iops-size counts large requests as several, reads,
 * writes and totals limit each other as QEMU's do, limits change live; QEMU's refusals; the
 * keys of the three vocabularies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <string.h>

#include "blockdev/throttle.h"
#include "common/keyval.h"

#define S 1000000000ULL
#define MS 1000000ULL

static void limits(struct throttle_limits *l, int kind, uint64_t avg, uint64_t max,
		   uint64_t len)
{
	l->l[kind].avg = avg;
	l->l[kind].max = max;
	l->l[kind].max_length = len;
}

/* A greedy requester: @bytes requests in direction @write, each as soon as it may go, from
 * *@now until @end; returns how many went (and the time of the last in *@now). */
static uint64_t greedy(struct throttle_state *ts, bool write, uint64_t bytes, uint64_t *now,
		       uint64_t end)
{
	uint64_t n = 0;

	for (;;) {
		uint64_t t = *now + throttle_wait_ns(ts, write, *now);

		if (t >= end)
			return n;
		*now = t;
		throttle_account(ts, write, bytes, t);
		n++;
	}
}

static void an_iops_limit_holds_after_a_tenth_of_a_second_passes_at_once(void **state)
{
	struct throttle_limits l;
	struct throttle_state ts;
	uint64_t now = 7 * S, n;

	throttle_limits_init(&l);
	limits(&l, THROTTLE_OPS_TOTAL, 100, 0, 1);
	assert_int_equal(throttle_limits_check(&l, NULL), 0);
	throttle_state_init(&ts, &l, now);
	/* the first tenth of a second's worth goes at once */
	assert_int_equal(greedy(&ts, false, 4096, &now, 7 * S + 1), 11);
	now = 7 * S;
	throttle_state_init(&ts, &l, now);
	n = greedy(&ts, false, 4096, &now, 17 * S);
	assert_true(n >= 1000 && n <= 1011); /* 10 s at 100/s, plus the first tenth */
	/* and the next 10 s exactly the rate */
	n = greedy(&ts, true, 4096, &now, 27 * S);
	assert_true(n >= 999 && n <= 1001);
}

static void a_bps_limit_holds_for_large_requests(void **state)
{
	struct throttle_limits l;
	struct throttle_state ts;
	uint64_t now = 0, n;

	throttle_limits_init(&l);
	limits(&l, THROTTLE_BPS_TOTAL, 1000000, 0, 1);
	throttle_state_init(&ts, &l, now);
	n = greedy(&ts, true, 65536, &now, 10 * S);
	/* 10 MB plus the 100 kB bucket, within one request */
	assert_true(n * 65536 >= 10000000 && n * 65536 <= 10100000 + 2 * 65536);
}

static void a_burst_runs_at_its_rate_for_its_length_then_the_average_holds(void **state)
{
	struct throttle_limits l;
	struct throttle_state ts;
	uint64_t now = 0, n, t_end = 0, prev = 0;

	throttle_limits_init(&l);
	limits(&l, THROTTLE_OPS_TOTAL, 100, 1000, 2);
	assert_int_equal(throttle_limits_check(&l, NULL), 0);
	throttle_state_init(&ts, &l, now);
	/* at the burst rate (the burst bucket holds a tenth of it), not faster */
	n = greedy(&ts, false, 512, &now, S);
	assert_true(n >= 1000 && n <= 1101);
	/* the burst ends when max * length is used up, the burst bucket's tenth having gone at
	 * once: (2000 - 100) / (1000 - 100) s = 2.11 s (QEMU's leaky buckets do the same) */
	now = 0;
	throttle_state_init(&ts, &l, now);
	for (;;) {
		uint64_t t = now + throttle_wait_ns(&ts, false, now);

		if (prev && t - prev > 5 * MS) { /* slower than 200/s: the burst is over */
			t_end = prev;
			break;
		}
		throttle_account(&ts, false, 512, t);
		prev = now = t;
	}
	assert_true(t_end >= 2100 * MS && t_end <= 2125 * MS);
	/* then the average */
	n = greedy(&ts, false, 512, &now, t_end + 10 * S);
	assert_true(n >= 999 && n <= 1001);
	/* idle long enough, and the bucket is full again: a whole burst */
	now += 30 * S;
	n = greedy(&ts, false, 512, &now, now + 2 * S);
	assert_true(n >= 1950 && n <= 2101);
}

static void iops_size_counts_a_large_request_as_several(void **state)
{
	struct throttle_limits l;
	struct throttle_state ts;
	uint64_t now = 0, n;

	throttle_limits_init(&l);
	limits(&l, THROTTLE_OPS_TOTAL, 100, 0, 1);
	l.iops_size = 4096;
	assert_int_equal(throttle_limits_check(&l, NULL), 0);
	throttle_state_init(&ts, &l, now);
	n = greedy(&ts, false, 16384, &now, 10 * S); /* four I/Os each: 25/s */
	assert_true(n >= 250 && n <= 254);
	now = 0;
	throttle_state_init(&ts, &l, now);
	n = greedy(&ts, false, 6144, &now, 10 * S); /* one and a half */
	assert_true(n >= 666 && n <= 675);
	now = 0;
	throttle_state_init(&ts, &l, now);
	n = greedy(&ts, false, 512, &now, 10 * S); /* smaller ones count as one */
	assert_true(n >= 1000 && n <= 1011);
}

/* Reads and writes, each as soon as it may go; counts them over @secs. */
static void both(struct throttle_state *ts, uint64_t secs, uint64_t *reads, uint64_t *writes)
{
	uint64_t now = 0, end = secs * S;
	bool last_w = true;

	*reads = *writes = 0;
	for (;;) {
		uint64_t tr = now + throttle_wait_ns(ts, false, now);
		uint64_t tw = now + throttle_wait_ns(ts, true, now);
		bool w = tw < tr || (tw == tr && !last_w); /* ties: take turns */

		last_w = w;
		now = w ? tw : tr;
		if (now >= end)
			return;
		throttle_account(ts, w, 4096, now);
		++*(w ? writes : reads);
	}
}

static void reads_writes_and_totals_limit_each_other_as_qemus_do(void **state)
{
	struct throttle_limits l;
	struct throttle_state ts;
	uint64_t r, w, now = 0;

	throttle_limits_init(&l);
	limits(&l, THROTTLE_OPS_READ, 100, 0, 1);
	limits(&l, THROTTLE_OPS_WRITE, 50, 0, 1);
	throttle_state_init(&ts, &l, 0);
	both(&ts, 10, &r, &w);
	assert_true(r >= 1000 && r <= 1011);
	assert_true(w >= 500 && w <= 506);
	/* a read limit alone never holds a write */
	throttle_limits_init(&l);
	limits(&l, THROTTLE_OPS_READ, 10, 0, 1);
	throttle_state_init(&ts, &l, 0);
	for (int i = 0; i < 100; i++)
		throttle_account(&ts, false, 4096, 0);
	assert_true(throttle_wait_ns(&ts, false, 0) > 0);
	assert_int_equal(throttle_wait_ns(&ts, true, 0), 0);
	/* a total covers both together; a byte limit on writes holds only writes */
	throttle_limits_init(&l);
	limits(&l, THROTTLE_OPS_TOTAL, 100, 0, 1);
	limits(&l, THROTTLE_BPS_WRITE, 40960, 0, 1);
	throttle_state_init(&ts, &l, 0);
	both(&ts, 10, &r, &w);
	assert_true(r + w >= 1000 && r + w <= 1011);
	assert_true(w >= 100 && w <= 102); /* 10 writes of 4 kB a second */
	(void)now;
}

static void limits_change_live_and_the_buckets_keep_what_they_hold(void **state)
{
	struct throttle_limits l;
	struct throttle_state ts;
	uint64_t now = 0, n;

	throttle_limits_init(&l);
	limits(&l, THROTTLE_OPS_TOTAL, 100, 0, 1);
	throttle_state_init(&ts, &l, now);
	n = greedy(&ts, false, 4096, &now, 5 * S);
	assert_true(n >= 500 && n <= 511);
	limits(&l, THROTTLE_OPS_TOTAL, 1000, 0, 1);
	throttle_state_set(&ts, &l, now);
	n = greedy(&ts, false, 4096, &now, 10 * S);
	/* 1000/s from the last request (just before 5 s), no new burst: the bucket was empty */
	assert_true(n >= 5000 && n <= 5012);
	throttle_limits_init(&l); /* no limits: nothing waits */
	throttle_state_set(&ts, &l, now);
	for (int i = 0; i < 100000; i++)
		throttle_account(&ts, false, 4096, now);
	assert_int_equal(throttle_wait_ns(&ts, false, now), 0);
	assert_false(throttle_limits_enabled(&l));
}

static void expect_refused(struct throttle_limits *l, const char *msg)
{
	struct error *err = NULL;

	assert_int_equal(throttle_limits_check(l, &err), -1);
	if (!strstr(error_msg(err), msg))
		fail_msg("'%s' does not say '%s'", error_msg(err), msg);
	error_free(err);
	throttle_limits_init(l);
}

static void what_qemu_refuses_is_refused_with_its_message(void **state)
{
	struct throttle_limits l;

	throttle_limits_init(&l);
	limits(&l, THROTTLE_OPS_TOTAL, 100, 0, 1);
	limits(&l, THROTTLE_OPS_READ, 100, 0, 1);
	expect_refused(&l, "cannot be used at the same time");
	limits(&l, THROTTLE_BPS_TOTAL, 100, 50, 1);
	expect_refused(&l, "cannot be lower than");
	limits(&l, THROTTLE_BPS_READ, 0, 50, 1);
	expect_refused(&l, "require corresponding");
	limits(&l, THROTTLE_BPS_READ, 10, 0, 5);
	expect_refused(&l, "burst length set without burst rate");
	limits(&l, THROTTLE_BPS_READ, 10, 0, 0);
	expect_refused(&l, "burst length cannot be 0");
	limits(&l, THROTTLE_BPS_READ, 10, 1000000000000ull, 10000);
	expect_refused(&l, "burst length too high");
	limits(&l, THROTTLE_BPS_READ, THROTTLE_VALUE_MAX + 1, 0, 1);
	expect_refused(&l, "must be within");
	l.iops_size = 4096;
	limits(&l, THROTTLE_BPS_READ, 10, 0, 1);
	expect_refused(&l, "iops size requires an iops value");
}

static void the_keys_of_each_vocabulary_set_the_same_fields(void **state)
{
	struct throttle_limits a, b;
	struct error *err = NULL;
	struct json_object *o;
	uint64_t v;

	throttle_limits_init(&a);
	throttle_limits_init(&b);
	for (unsigned int i = 0; throttle_key_name(THROTTLE_KEYS_GROUP, i); i++) {
		assert_int_equal(throttle_limits_set_key(&a, THROTTLE_KEYS_GROUP,
				 throttle_key_name(THROTTLE_KEYS_GROUP, i), i + 1, NULL), 1);
		assert_int_equal(throttle_limits_set_key(&b, THROTTLE_KEYS_LEGACY,
				 throttle_key_name(THROTTLE_KEYS_LEGACY, i), i + 1, NULL), 1);
	}
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(a.l[THROTTLE_OPS_WRITE].max, 17);
	assert_int_equal(a.iops_size, 19);
	assert_true(throttle_limits_get_key(&a, THROTTLE_KEYS_LEGACY, "bps_rd_max_length", &v));
	assert_int_equal(v, 6);
	assert_int_equal(throttle_limits_set_key(&a, THROTTLE_KEYS_LEGACY, "iops-total", 1, NULL),
			 0);
	assert_int_equal(throttle_limits_set_key(&a, THROTTLE_KEYS_GROUP, "iops-total",
			 THROTTLE_VALUE_MAX + 1, &err), -1);
	error_free(err);
	err = NULL;

	/* a throttle-group's properties: limits.* (dotted) and the x- keys */
	o = keyval_parse("id=tg0,limits.iops-total=100,limits.iops-total-max=200,"
			 "limits.iops-total-max-length=3,x-bps-read=1000", NULL, NULL);
	assert_non_null(o);
	assert_int_equal(throttle_limits_take(o, &a, "tg0", &err), 0);
	assert_int_equal(a.l[THROTTLE_OPS_TOTAL].avg, 100);
	assert_int_equal(a.l[THROTTLE_OPS_TOTAL].max, 200);
	assert_int_equal(a.l[THROTTLE_OPS_TOTAL].max_length, 3);
	assert_int_equal(a.l[THROTTLE_BPS_READ].avg, 1000);
	assert_true(json_object_object_get_ex(o, "id", NULL)); /* left for the caller */
	json_object_put(o);
	o = keyval_parse("limits.iops-totl=100", NULL, NULL);
	assert_int_equal(throttle_limits_take(o, &a, "tg0", &err), -1);
	assert_non_null(strstr(error_msg(err), "iops-totl"));
	error_free(err);
	err = NULL;
	json_object_put(o);
	o = keyval_parse("limits.iops-total=100,limits.iops-read=5", NULL, NULL);
	assert_int_equal(throttle_limits_take(o, &a, "tg0", &err), -1);
	assert_non_null(strstr(error_msg(err), "at the same time"));
	error_free(err);
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_iops_limit_holds_after_a_tenth_of_a_second_passes_at_once),
		cmocka_unit_test(a_bps_limit_holds_for_large_requests),
		cmocka_unit_test(a_burst_runs_at_its_rate_for_its_length_then_the_average_holds),
		cmocka_unit_test(iops_size_counts_a_large_request_as_several),
		cmocka_unit_test(reads_writes_and_totals_limit_each_other_as_qemus_do),
		cmocka_unit_test(limits_change_live_and_the_buckets_keep_what_they_hold),
		cmocka_unit_test(what_qemu_refuses_is_refused_with_its_message),
		cmocka_unit_test(the_keys_of_each_vocabulary_set_the_same_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
