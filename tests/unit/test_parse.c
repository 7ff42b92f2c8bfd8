/* SPDX-License-Identifier: Apache-2.0 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/parse.h"

static void parse_size_accepts_suffixes(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "0", 0 }, { "4096", 4096 }, { "64k", 65536 }, { "64K", 65536 }, { "1M", 1 << 20 },
		{ "2G", 2ULL << 30 }, { "1T", 1ULL << 40 }, { "1GiB", 1ULL << 30 }, { "512B", 512 },
		{ "0x1000", 4096 },
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(parse_size("size", ok[i].s, &v, NULL), 0);
		assert_int_equal(v, ok[i].v);
	}
}

static void parse_size_refuses_garbage_naming_the_option(void **state)
{
	static const char *const bad[] = { "", "-1", "1X", "k", "1kk", " 1", "18446744073709551615k" };
	struct error *err = NULL;
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_size("--memory", bad[i], &v, &err), -1);
		assert_non_null(err);
		assert_non_null(strstr(error_msg(err), "--memory"));
		error_free(err);
		err = NULL;
	}
}

static void parse_u64_bounds(void **state)
{
	struct error *err = NULL;
	uint64_t v;

	assert_int_equal(parse_u64("--cpus", "2", 1, 4, &v, NULL), 0);
	assert_int_equal(v, 2);
	assert_int_equal(parse_u64("--cpus", "0", 1, 4, &v, &err), -1);
	assert_non_null(strstr(error_msg(err), "out of range"));
	error_free(err);
	err = NULL;
	assert_int_equal(parse_u64("--cpus", "two", 1, 4, &v, &err), -1);
	assert_non_null(strstr(error_msg(err), "not a number"));
	error_free(err);
	err = NULL;
	assert_int_equal(parse_u64("x", "18446744073709551615", 0, UINT64_MAX, &v, NULL), 0);
	assert_true(v == UINT64_MAX);
}

/* A number with more digits than 64 bits hold is a number, just too large: say so. */
static void parse_u64_calls_a_number_past_64_bits_out_of_range(void **state)
{
	static const char *const big[] = { "18446744073709551616", "0x10000000000000000",
					   "99999999999999999999999" };
	struct error *err = NULL;
	uint64_t v = 7;

	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		assert_int_equal(parse_u64("poll-max-ns", big[i], 0, UINT64_MAX, &v, &err), -1);
		assert_non_null(strstr(error_msg(err), "poll-max-ns:"));
		assert_non_null(strstr(error_msg(err), "out of range"));
		error_free(err);
		err = NULL;
		assert_int_equal(parse_size("size", big[i], &v, &err), -1);
		assert_non_null(strstr(error_msg(err), "too large"));
		error_free(err);
		err = NULL;
	}
	assert_int_equal(v, 7);
	assert_int_equal(parse_size("size", "16E", &v, &err), -1);
	assert_non_null(strstr(error_msg(err), "too large"));
	error_free(err);
	assert_int_equal(parse_size("size", "15E", &v, NULL), 0);
	assert_true(v == 15ULL << 60);
}

static void parse_int_takes_a_sign_within_bounds(void **state)
{
	static const char *const not_numbers[] = { "", "-", "--1", "+1", "- 1", "1x", "x" };
	static const char *const out_of_range[] = { "-21", "20", "99999999999", "-99999999999",
						    "2147483648", "-2147483649",
						    "99999999999999999999999",
						    "-99999999999999999999999" };
	struct error *err = NULL;
	int v;

	assert_int_equal(parse_int("iothread-nice", "-10", -20, 19, &v, NULL), 0);
	assert_int_equal(v, -10);
	assert_int_equal(parse_int("iothread-nice", "-20", -20, 19, &v, NULL), 0);
	assert_int_equal(v, -20);
	assert_int_equal(parse_int("iothread-nice", "19", -20, 19, &v, NULL), 0);
	assert_int_equal(v, 19);
	assert_int_equal(parse_int("x", "-2147483648", INT_MIN, INT_MAX, &v, NULL), 0);
	assert_int_equal(v, INT_MIN);
	assert_int_equal(parse_int("x", "2147483648", INT_MIN, INT_MAX, &v, NULL), -1);
	for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++) {
		assert_int_equal(parse_int("iothread-nice", not_numbers[i], -20, 19, &v, &err), -1);
		assert_non_null(strstr(error_msg(err), "iothread-nice: '"));
		assert_non_null(strstr(error_msg(err), "is not a number"));
		error_free(err);
		err = NULL;
	}
	for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
		assert_int_equal(parse_int("iothread-nice", out_of_range[i], -20, 19, &v, &err), -1);
		assert_non_null(strstr(error_msg(err), "is out of range [-20, 19]"));
		error_free(err);
		err = NULL;
	}
}

static void parse_bool_words(void **state)
{
	bool b;

	assert_int_equal(parse_bool("readonly", "on", &b, NULL), 0);
	assert_true(b);
	assert_int_equal(parse_bool("readonly", "off", &b, NULL), 0);
	assert_false(b);
	assert_int_equal(parse_bool("readonly", "maybe", &b, NULL), -1);
}

static void parse_cpu_list_takes_tasksets_syntax(void **state)
{
	cpu_set_t set;
	struct error *err = NULL;
	static const char *const bad[] = { "", "a", "3-1", "1,", ",1", "1024", "0-", "-1",
					   "1,,2", "1-2-3", "0x1", " 1" };

	assert_int_equal(parse_cpu_list("--affinity", "3", &set, NULL), 0);
	assert_int_equal(CPU_COUNT(&set), 1);
	assert_true(CPU_ISSET(3, &set));
	assert_int_equal(parse_cpu_list("--affinity", "0,2-4,1023", &set, NULL), 0);
	assert_int_equal(CPU_COUNT(&set), 5);
	assert_true(CPU_ISSET(0, &set) && CPU_ISSET(2, &set) && CPU_ISSET(4, &set));
	assert_true(CPU_ISSET(1023, &set) && !CPU_ISSET(1, &set));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_cpu_list("--affinity", bad[i], &set, &err), -1);
		assert_non_null(strstr(error_msg(err), "--affinity"));
		error_free(err);
		err = NULL;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_size_accepts_suffixes),
		cmocka_unit_test(parse_size_refuses_garbage_naming_the_option),
		cmocka_unit_test(parse_u64_bounds),
		cmocka_unit_test(parse_u64_calls_a_number_past_64_bits_out_of_range),
		cmocka_unit_test(parse_int_takes_a_sign_within_bounds),
		cmocka_unit_test(parse_bool_words),
		cmocka_unit_test(parse_cpu_list_takes_tasksets_syntax),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
