/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generic create hook (blockdev/create.c): a format's -o options are checked against its
 * table (unknown keys and bad values refused by name), shown as qemu-img's "Formatting" line
 * shows them, and read back by the driver with their defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/create.h"

static const struct blockdev_create_opt_desc fake_opts[] = {
	{ "subformat", BLOCKDEV_CREATE_STR, NULL, "dynamic|fixed" },
	{ "static", BLOCKDEV_CREATE_BOOL, "off", NULL },
	{ "log_size", BLOCKDEV_CREATE_SIZE, "1048576", NULL },
	{ "preallocation", BLOCKDEV_CREATE_STR, NULL, "off|falloc|full" },
	{ NULL },
};

static const struct blockdev_create_ctx *created;

static int fake_create(const struct blockdev_create_ctx *ctx, struct error **errp)
{
	created = ctx;
	return 0;
}

static const struct blockdev_driver fake = {
	.name = "fake",
	.create_opts = fake_opts,
	.create = fake_create,
};

static int prepare(struct blockdev_create_ctx *ctx, const struct blockdev_opt *o, size_t n,
		   struct error **errp)
{
	return blockdev_create_prepare(ctx, &fake, "img", 1 << 20, o, n, errp);
}

static void defaults_only_when_not_given(void **state)
{
	struct blockdev_create_ctx ctx;
	struct error *err = NULL;
	char *s;

	assert_int_equal(prepare(&ctx, NULL, 0, &err), 0);
	s = blockdev_create_summary(&ctx);
	assert_string_equal(s, "size=1048576 static=off log_size=1048576");
	assert_false(blockdev_create_given(&ctx, "subformat"));
	assert_null(blockdev_create_str(&ctx, "subformat"));
	assert_false(blockdev_create_bool(&ctx, "static"));
	assert_int_equal(blockdev_create_size(&ctx, "log_size", 7), 1048576);
	assert_int_equal(blockdev_create_run(&ctx, &err), 0);
	assert_ptr_equal(created, &ctx);
	free(s);
	blockdev_create_free(&ctx);
}

static void given_values_shown_in_table_order(void **state)
{
	struct blockdev_opt o[] = {
		{ "preallocation", "full" }, { "log_size", "2M" }, { "static", "yes" },
		{ "subformat", "dynamic" }, { "subformat", "fixed" },
	};
	struct blockdev_create_ctx ctx;
	struct error *err = NULL;
	char *s;

	assert_int_equal(prepare(&ctx, o, 5, &err), 0);
	s = blockdev_create_summary(&ctx);
	/* sizes in bytes, other values as given, the last of a key given twice */
	assert_string_equal(s, "size=1048576 subformat=fixed static=yes log_size=2097152 "
			       "preallocation=full");
	assert_string_equal(blockdev_create_str(&ctx, "subformat"), "fixed");
	assert_true(blockdev_create_bool(&ctx, "static"));
	assert_int_equal(blockdev_create_size(&ctx, "log_size", 0), 2 << 20);
	assert_true(blockdev_create_takes(&fake, "static"));
	assert_false(blockdev_create_takes(&fake, "cluster_size"));
	free(s);
	blockdev_create_free(&ctx);
}

static void refuses(const char *key, const char *value, const char *msg)
{
	struct blockdev_opt o = { (char *)key, (char *)value };
	struct blockdev_create_ctx ctx;
	struct error *err = NULL;

	assert_int_equal(prepare(&ctx, &o, 1, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(error_msg(err), msg));
	error_free(err);
	blockdev_create_free(&ctx);
}

static void unknown_keys_and_bad_values_named(void **state)
{
	refuses("cluster_size", "64k", "format fake does not support the option 'cluster_size'");
	refuses("subformat", "dyn", "subformat: 'dyn' is not one of dynamic|fixed");
	refuses("subformat", "", "subformat: '' is not one of");
	refuses("preallocation", "metadata", "preallocation: 'metadata' is not one of");
	refuses("static", "maybe", "static");
	refuses("log_size", "lots", "log_size");
}

static void format_without_create_refused(void **state)
{
	static const struct blockdev_driver plain = { .name = "plain" };
	struct blockdev_create_ctx ctx;
	struct error *err = NULL;

	assert_int_equal(blockdev_create_prepare(&ctx, &plain, "img", 512, NULL, 0, &err), -1);
	assert_string_equal(error_msg(err), "format plain cannot be created");
	error_free(err);
	blockdev_create_free(&ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_only_when_not_given),
		cmocka_unit_test(given_values_shown_in_table_order),
		cmocka_unit_test(unknown_keys_and_bad_values_named),
		cmocka_unit_test(format_without_create_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
