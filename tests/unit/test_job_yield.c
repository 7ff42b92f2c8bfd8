/* SPDX-License-Identifier: Apache-2.0 */
/* Yielding to guests (blockdev/job_yield.h): when a job steps small and waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "blockdev/job_yield.h"

#define MS 1000000ULL

static void the_first_look_is_a_baseline_not_activity(void **state)
{
	struct job_yield y = { 0 };

	assert_false(job_yield_active(&y, 12345, 100 * MS));
	assert_false(job_yield_active(&y, 12345, 101 * MS));
}

static void requests_since_the_last_look_make_the_job_yield(void **state)
{
	struct job_yield y = { 0 };

	job_yield_active(&y, 10, 100 * MS);
	assert_true(job_yield_active(&y, 11, 101 * MS));
	/* no new request, but the last came less than JOB_YIELD_IDLE_NS ago */
	assert_true(job_yield_active(&y, 11, 101 * MS + JOB_YIELD_IDLE_NS - 1));
}

static void a_quiet_spell_gives_the_job_its_full_speed_back(void **state)
{
	struct job_yield y = { 0 };

	job_yield_active(&y, 10, 100 * MS);
	assert_true(job_yield_active(&y, 20, 101 * MS));
	assert_false(job_yield_active(&y, 20, 101 * MS + JOB_YIELD_IDLE_NS));
	assert_true(job_yield_active(&y, 21, 200 * MS)); /* and busy again */
}

static void a_yielding_job_waits_as_long_as_its_step_took(void **state)
{
	assert_int_equal(job_yield_wait_ns(MS), MS);
	assert_int_equal(job_yield_wait_ns(0), 0);
}

static void a_job_that_keeps_up_yields_one_that_falls_behind_stops(void **state)
{
	struct job_yield_progress p = { 0 };
	const uint64_t w = JOB_YIELD_WINDOW_NS;

	assert_true(job_yield_keeps_up(&p, 1000, 100 * MS));
	assert_true(job_yield_keeps_up(&p, 1200, 100 * MS + w - 1)); /* within the window */
	assert_true(job_yield_keeps_up(&p, 900, 100 * MS + w));      /* shrank: a new window */
	assert_false(job_yield_keeps_up(&p, 950, 100 * MS + 2 * w)); /* grew: gives up */
	assert_false(job_yield_keeps_up(&p, 10, 100 * MS + 3 * w));  /* for good */
}

static void a_job_with_nothing_left_is_not_behind(void **state)
{
	struct job_yield_progress p = { 0 };

	assert_true(job_yield_keeps_up(&p, 0, 100 * MS));
	assert_true(job_yield_keeps_up(&p, 0, 100 * MS + 5 * JOB_YIELD_WINDOW_NS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_first_look_is_a_baseline_not_activity),
		cmocka_unit_test(requests_since_the_last_look_make_the_job_yield),
		cmocka_unit_test(a_quiet_spell_gives_the_job_its_full_speed_back),
		cmocka_unit_test(a_yielding_job_waits_as_long_as_its_step_took),
		cmocka_unit_test(a_job_that_keeps_up_yields_one_that_falls_behind_stops),
		cmocka_unit_test(a_job_with_nothing_left_is_not_behind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
