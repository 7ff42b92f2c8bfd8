/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"

static void error_setg_keeps_the_first_error(void **state)
{
	struct error *err = NULL;

	error_setg(&err, "first %d", 1);
	error_setg(&err, "second");
	assert_string_equal(error_msg(err), "first 1");
	error_free(err);
	error_setg(NULL, "nobody listens");
}

static void error_setg_errno_appends_strerror_of_either_sign(void **state)
{
	struct error *err = NULL;

	error_setg_errno(&err, -ENOENT, "open %s", "disk.img");
	assert_string_equal(error_msg(err), "open disk.img: No such file or directory");
	error_free(err);
	err = NULL;
	error_setg_errno(&err, EACCES, "x");
	assert_string_equal(error_msg(err), "x: Permission denied");
	error_free(err);
}

static void error_prepend_adds_context_and_cuts_a_long_message_at_the_end(void **state)
{
	struct error *err = NULL;
	char long_msg[2000];

	error_prepend(&err, "nothing to prepend to");
	assert_null(err);
	error_setg(&err, "bad size");
	error_prepend(&err, "drive %d", 0);
	assert_string_equal(error_msg(err), "drive 0: bad size");
	error_free(err);

	err = NULL;
	memset(long_msg, 'x', sizeof(long_msg) - 1);
	long_msg[sizeof(long_msg) - 1] = '\0';
	error_setg(&err, "%s", long_msg);
	error_prepend(&err, "ctx");
	assert_int_equal(strlen(error_msg(err)), sizeof(err->msg) - 1);
	assert_memory_equal(error_msg(err), "ctx: xxx", 8);
	error_free(err);
}

static void error_propagate_hands_over_once_and_frees_the_rest(void **state)
{
	struct error *err = NULL, *a = NULL, *b = NULL;

	error_setg(&a, "from the thread");
	error_setg(&b, "a later one");
	error_propagate(&err, a);
	error_propagate(&err, b); /* freed: the first error wins (ASan checks no leak) */
	assert_ptr_equal(err, a);
	assert_string_equal(error_msg(err), "from the thread");
	error_free(err);
	err = NULL;
	b = NULL;
	error_setg(&b, "nobody listens");
	error_propagate(NULL, b);
	error_propagate(&err, NULL);
	assert_null(err);
}

static void error_classes_name_qmp_classes_and_survive_prepend(void **state)
{
	struct error *err = NULL;

	assert_string_equal(error_class_name(NULL), "GenericError");
	error_set_class(&err, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found", "x");
	error_prepend(&err, "device_del");
	assert_string_equal(error_class_name(err), "DeviceNotFound");
	assert_string_equal(error_msg(err), "device_del: Device 'x' not found");
	error_free(err);
	err = NULL;
	error_setg(&err, "plain");
	assert_string_equal(error_class_name(err), "GenericError");
	error_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(error_setg_keeps_the_first_error),
		cmocka_unit_test(error_setg_errno_appends_strerror_of_either_sign),
		cmocka_unit_test(error_prepend_adds_context_and_cuts_a_long_message_at_the_end),
		cmocka_unit_test(error_propagate_hands_over_once_and_frees_the_rest),
		cmocka_unit_test(error_classes_name_qmp_classes_and_survive_prepend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
