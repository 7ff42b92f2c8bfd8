/* SPDX-License-Identifier: Apache-2.0 */
/* blockdev_add (blockdev/add.c): nodes from QEMU's BlockdevOptions objects, and bad objects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"

static char raw[240], qcow2[256];

static int make_images(void **state)
{
	const char *dir = getenv("VIREO_TEST_TMPDIR");
	struct qcow2_create_opts o = { .size = 1 << 20, .cluster_bits = 16, .version = 3,
				       .refcount_bits = 16, .backing_fmt = "raw" };
	int fd;

	snprintf(raw, sizeof(raw), "%s/vireo-add-XXXXXX", dir ? dir : "/var/tmp");
	fd = mkstemp(raw);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return -1;
	close(fd);
	snprintf(qcow2, sizeof(qcow2), "%s.qcow2", raw);
	o.backing_file = raw;
	return qcow2_create(qcow2, &o, NULL) < 0 ? -1 : 0;
}

static int remove_images(void **state)
{
	unlink(raw);
	unlink(qcow2);
	return 0;
}

static void count(struct blockdev *bs, void *opaque)
{
	(*(unsigned *)opaque)++;
}

static unsigned nodes(void)
{
	unsigned n = 0;

	blockdev_for_each_node(count, &n);
	return n;
}

/* @fmt: JSON with %s for the raw then the qcow2 image's path, as needed */
static struct blockdev *add(struct error **errp, const char *fmt, ...)
{
	struct json_object *o;
	struct blockdev *bs;
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	o = json_tokener_parse(text);
	if (!o)
		fail_msg("bad test JSON: %s", text);
	bs = blockdev_add(o, "--blockdev", errp);
	json_object_put(o);
	return bs;
}

static struct blockdev *add_ok(const char *fmt, const char *path)
{
	struct error *err = NULL;
	struct blockdev *bs = add(&err, fmt, path);

	if (!bs)
		fail_msg("refused: %s", error_msg(err));
	return bs;
}

/* the object is refused with a message holding @want, and leaves no node behind */
static void refused(const char *want, const char *fmt, const char *path)
{
	unsigned before = nodes();
	struct error *err = NULL;

	assert_null(add(&err, fmt, path));
	if (!err || !strstr(error_msg(err), want))
		fail_msg("'%s': message '%s' lacks '%s'", fmt, err ? error_msg(err) : "(none)", want);
	error_free(err);
	assert_int_equal(nodes(), before);
}

static void a_format_node_over_a_named_file_node(void **state)
{
	struct blockdev *f = add_ok("{\"driver\": \"file\", \"filename\": \"%s\", "
				    "\"node-name\": \"f0\"}", qcow2);
	struct blockdev *d = add_ok("{\"driver\": \"qcow2\", \"file\": \"f0\", "
				    "\"node-name\": \"d0\", \"backing\": null}", NULL);
	struct error *err = NULL;

	assert_string_equal(f->node_name, "f0");
	assert_ptr_equal(d->file, f);
	assert_null(d->backing); /* backing: null */
	assert_int_equal(nodes(), 2);
	assert_int_equal(blockdev_node_del("f0", &err), -1);
	assert_string_equal(error_msg(err), "node 'f0' is in use by node 'd0' (as its file)");
	error_free(err);
	assert_int_equal(blockdev_node_del("d0", NULL), 0);
	assert_ptr_equal(blockdev_find_node("f0"), f); /* created on its own: stays */
	assert_int_equal(blockdev_node_del("f0", NULL), 0);
	assert_int_equal(nodes(), 0);
}

static void nested_children_are_created_and_go_with_their_parent(void **state)
{
	struct blockdev *d = add_ok("{\"driver\": \"qcow2\", \"node-name\": \"d0\", "
				    "\"read-only\": true, \"cache\": {\"direct\": false}, "
				    "\"file\": {\"driver\": \"file\", \"filename\": \"%s\"}}", qcow2);

	assert_non_null(d->backing); /* the header's backing file, opened */
	assert_true(d->read_only);
	assert_true(d->file->read_only); /* inherited */
	assert_true(!strncmp(d->file->node_name, "#block", 6));
	assert_int_equal(nodes(), 4);
	assert_int_equal(blockdev_node_del("d0", NULL), 0);
	assert_int_equal(nodes(), 0);
}

static void a_backing_node_given_by_name_replaces_the_header_one(void **state)
{
	struct blockdev *base = add_ok("{\"driver\": \"raw\", \"node-name\": \"base\", "
				       "\"read-only\": true, \"file\": {\"driver\": \"file\", "
				       "\"filename\": \"%s\"}}", raw);
	struct blockdev *d = add_ok("{\"driver\": \"qcow2\", \"node-name\": \"d0\", "
				    "\"backing\": \"base\", \"l2-cache-size\": \"1M\", "
				    "\"cache\": {\"direct\": true}, \"file\": {\"driver\": "
				    "\"file\", \"filename\": \"%s\", \"aio\": \"io_uring\"}}",
				    qcow2);

	assert_ptr_equal(d->backing, base);
	assert_int_equal(d->file->cache, BLOCKDEV_CACHE_NONE); /* cache.direct inherited */
	assert_int_equal(nodes(), 4);
	assert_int_equal(blockdev_node_del("base", NULL), -1); /* the overlay uses it */
	assert_int_equal(blockdev_node_del("d0", NULL), 0);
	assert_int_equal(blockdev_node_del("base", NULL), 0);
	assert_int_equal(nodes(), 0);
}

static void bad_objects_are_refused_by_name(void **state)
{
	refused("driver is missing", "{\"node-name\": \"x\", \"filename\": \"%s\"}", raw);
	refused("driver 'qed' is not supported", "{\"driver\": \"qed\", \"node-name\": \"x\"}",
		NULL);
	refused("node-name is missing", "{\"driver\": \"file\", \"filename\": \"%s\"}", raw);
	refused("node-name '9x'", "{\"driver\": \"file\", \"node-name\": \"9x\", "
		"\"filename\": \"%s\"}", raw);
	refused("driver file needs a filename", "{\"driver\": \"file\", \"node-name\": \"x\"}",
		NULL);
	refused("driver qcow2 needs a file", "{\"driver\": \"qcow2\", \"node-name\": \"x\"}",
		NULL);
	refused("file: no node named 'nosuch'", "{\"driver\": \"qcow2\", \"node-name\": \"x\", "
		"\"file\": \"nosuch\"}", NULL);
	refused("aio=threads is not supported", "{\"driver\": \"file\", \"node-name\": \"x\", "
		"\"aio\": \"threads\", \"filename\": \"%s\"}", raw);
	refused("cache.no-flush=on is not supported", "{\"driver\": \"file\", \"node-name\": "
		"\"x\", \"cache\": {\"no-flush\": true}, \"filename\": \"%s\"}", raw);
	refused("'foo'", "{\"driver\": \"file\", \"node-name\": \"x\", \"foo\": 1, "
		"\"filename\": \"%s\"}", raw);
	refused("'foo'", "{\"driver\": \"qcow2\", \"node-name\": \"x\", \"foo\": \"1\", "
		"\"file\": {\"driver\": \"file\", \"filename\": \"%s\"}}", qcow2);
	refused("'backing'", "{\"driver\": \"raw\", \"node-name\": \"x\", \"backing\": null, "
		"\"file\": {\"driver\": \"file\", \"filename\": \"%s\"}}", raw);
	refused("--blockdev.file", "{\"driver\": \"raw\", \"node-name\": \"x\", "
		"\"file\": {\"driver\": \"file\"}}", NULL);
	refused("expected a node name or an object", "{\"driver\": \"raw\", \"node-name\": "
		"\"x\", \"file\": 7}", NULL);
	add_ok("{\"driver\": \"file\", \"node-name\": \"dup\", \"filename\": \"%s\"}", raw);
	refused("node-name 'dup' is already in use", "{\"driver\": \"file\", \"node-name\": "
		"\"dup\", \"filename\": \"%s\"}", raw);
	assert_int_equal(blockdev_node_del("dup", NULL), 0);
	assert_int_equal(nodes(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_format_node_over_a_named_file_node),
		cmocka_unit_test(nested_children_are_created_and_go_with_their_parent),
		cmocka_unit_test(a_backing_node_given_by_name_replaces_the_header_one),
		cmocka_unit_test(bad_objects_are_refused_by_name),
	};

	return cmocka_run_group_tests(tests, make_images, remove_images);
}
