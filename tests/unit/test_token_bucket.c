/* SPDX-License-Identifier: Apache-2.0 */
/* The token bucket: the average rate holds, a burst is taken at once, debt is waited out, no
 * rate is no limit, and long idle times or huge takes do not overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/token_bucket.h"

#define S 1000000000ULL

static void the_average_rate_holds_over_many_takes(void **state)
{
	struct token_bucket tb;
	uint64_t now = 5 * S, start = now, taken = 0;

	token_bucket_init(&tb, 1000000, 100000, now); /* 1 MB/s, 100 kB burst */
	/* take 64 kB whenever allowed, for 10 simulated seconds */
	while (now < start + 10 * S) {
		now += token_bucket_wait_ns(&tb, now);
		token_bucket_take(&tb, 65536, now);
		taken += 65536;
	}
	/* 10 s at 1 MB/s plus the burst, within one take */
	assert_true(taken >= 10 * 1000000ULL);
	assert_true(taken <= 10 * 1000000ULL + 100000 + 2 * 65536);
}

static void a_burst_is_taken_at_once_then_debt_is_waited_out(void **state)
{
	struct token_bucket tb;

	token_bucket_init(&tb, 1000, 500, 0);
	assert_int_equal(token_bucket_wait_ns(&tb, 0), 0);
	token_bucket_take(&tb, 500, 0);
	assert_int_equal(token_bucket_wait_ns(&tb, 0), 0); /* empty, not in debt */
	token_bucket_take(&tb, 250, 0);
	assert_int_equal(token_bucket_wait_ns(&tb, 0), S / 4); /* 250 units at 1000/s */
	assert_int_equal(token_bucket_wait_ns(&tb, S / 8), S / 8);
	assert_int_equal(token_bucket_wait_ns(&tb, S / 4), 0);
	/* idle for an hour: full again, no more */
	token_bucket_take(&tb, 500, 3600 * S);
	assert_int_equal(token_bucket_wait_ns(&tb, 3600 * S), 0);
	token_bucket_take(&tb, 1, 3600 * S);
	assert_int_equal(token_bucket_wait_ns(&tb, 3600 * S), S / 1000);
}

static void no_rate_is_no_limit_and_a_new_rate_applies_at_once(void **state)
{
	struct token_bucket tb;

	token_bucket_init(&tb, 0, 1, 0);
	token_bucket_take(&tb, UINT64_MAX, 0);
	assert_int_equal(token_bucket_wait_ns(&tb, 0), 0);
	token_bucket_set_rate(&tb, 100, 100, 0);
	token_bucket_take(&tb, 201, 0); /* it held its first burst of 1 */
	assert_int_equal(token_bucket_wait_ns(&tb, 0), 2 * S); /* 200 of debt at 100/s */
	token_bucket_set_rate(&tb, 200, 100, 0);
	assert_int_equal(token_bucket_wait_ns(&tb, 0), S);
	/* a huge take saturates, it does not wrap into credit */
	token_bucket_take(&tb, UINT64_MAX, 0);
	assert_true(token_bucket_wait_ns(&tb, 0) > 1000 * S);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_average_rate_holds_over_many_takes),
		cmocka_unit_test(a_burst_is_taken_at_once_then_debt_is_waited_out),
		cmocka_unit_test(no_rate_is_no_limit_and_a_new_rate_applies_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
