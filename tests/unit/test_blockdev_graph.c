/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node graph (blockdev/graph.c): names and the registry, users and their permissions,
 * references (what closes when).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "blockdev/throttle.h"

struct fixture {
	char raw[240], qcow2[256];
};

static int make_images(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *dir = getenv("VIREO_TEST_TMPDIR");
	struct qcow2_create_opts o = { .size = 1 << 20, .cluster_bits = 16, .version = 3,
				       .refcount_bits = 16 };
	int fd;

	snprintf(f->raw, sizeof(f->raw), "%s/vireo-graph-XXXXXX", dir ? dir : "/var/tmp");
	fd = mkstemp(f->raw);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return -1;
	close(fd);
	snprintf(f->qcow2, sizeof(f->qcow2), "%s.qcow2", f->raw);
	o.backing_file = f->raw; /* absolute: the overlay's backing file is the raw image */
	o.backing_fmt = "raw";
	if (qcow2_create(f->qcow2, &o, NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

static int remove_images(void **state)
{
	struct fixture *f = *state;

	unlink(f->raw);
	unlink(f->qcow2);
	free(f);
	return 0;
}

static struct blockdev *open_img(const char *path, const char *name, bool readonly)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *bs;

	if (name)
		assert_int_equal(blockdev_opts_set(&o, "node-name", name, NULL), 0);
	o.readonly = readonly;
	bs = blockdev_open(path, &o, &err);
	blockdev_opts_free(&o);
	if (!bs)
		fail_msg("open %s: %s", path, error_msg(err));
	return bs;
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

static void every_node_has_a_name_and_is_found_by_it(void **state)
{
	struct fixture *f = *state;
	struct blockdev *bs = open_img(f->qcow2, NULL, true);

	/* qcow2, its file, the raw backing node and its file */
	assert_int_equal(nodes(), 4);
	assert_true(!strncmp(bs->node_name, "#block", 6));
	assert_true(!strncmp(bs->file->node_name, "#block", 6));
	assert_string_not_equal(bs->node_name, bs->file->node_name);
	assert_ptr_equal(blockdev_find_node(bs->node_name), bs);
	assert_ptr_equal(blockdev_find_node(bs->backing->node_name), bs->backing);
	blockdev_close(bs);
	assert_int_equal(nodes(), 0); /* the children went with it */
	assert_null(blockdev_find_node("disk0"));
}

static void node_names_are_checked_and_unique(void **state)
{
	struct fixture *f = *state;
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	struct blockdev *a = open_img(f->raw, "disk0", true), *b;

	assert_string_equal(a->node_name, "disk0");
	assert_ptr_equal(blockdev_find_node("disk0"), a);
	/* a second node may not take the name */
	assert_int_equal(blockdev_opts_set(&o, "node-name", "disk0", NULL), 0);
	o.readonly = true;
	assert_null(blockdev_open(f->raw, &o, &err));
	assert_non_null(strstr(error_msg(err), "node-name 'disk0' is already in use"));
	error_free(err);
	err = NULL;
	blockdev_opts_free(&o);
	assert_int_equal(nodes(), 2); /* the refused open left nothing behind */
	/* QEMU's rules: a letter first, then letters, digits, '-', '.', '_', under 32 bytes */
	assert_int_equal(blockdev_opts_set(&o, "node-name", "#block1", &err), -1);
	assert_non_null(strstr(error_msg(err), "must start with a letter"));
	error_free(err);
	assert_false(blockdev_node_name_valid("9lives"));
	assert_false(blockdev_node_name_valid("a b"));
	assert_false(blockdev_node_name_valid("a23456789012345678901234567890123"));
	assert_true(blockdev_node_name_valid("a2345678901234567890123456789_1"));
	assert_true(blockdev_node_name_valid("disk-0.data_1"));
	b = open_img(f->raw, "disk1", true);
	assert_int_equal(blockdev_set_node_name(b, "disk0", NULL), -1);
	assert_int_equal(blockdev_set_node_name(b, "disk2", NULL), 0);
	assert_ptr_equal(blockdev_find_node("disk2"), b);
	blockdev_close(b);
	blockdev_close(a);
}

static struct blockdev_user frontend(const char *name, bool write)
{
	return (struct blockdev_user){
		.role = name,
		.perm = BLOCKDEV_PERM_READ | (write ? BLOCKDEV_PERM_WRITE : 0),
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
}

static void a_second_writer_is_refused_naming_both_users(void **state)
{
	struct fixture *f = *state;
	struct blockdev *bs = open_img(f->raw, "disk0", false);
	struct blockdev_user a = frontend("virtio-blk0", true), b = frontend("virtio-blk1", true);
	struct blockdev_user r = frontend("virtio-blk2", false);
	struct error *err = NULL;

	assert_int_equal(blockdev_attach(bs, &a, NULL), 0);
	assert_int_equal(blockdev_attach(bs, &b, &err), -1);
	assert_string_equal(error_msg(err), "node 'disk0': virtio-blk1 needs write, which "
			    "virtio-blk0, using it already, does not share");
	error_free(err);
	err = NULL;
	/* a reader that wants the image unchanged cannot join a writer either */
	assert_int_equal(blockdev_attach(bs, &r, &err), -1);
	assert_string_equal(error_msg(err), "node 'disk0': virtio-blk2 cannot use it: "
			    "virtio-blk0 uses it for write, which virtio-blk2 does not share");
	error_free(err);
	err = NULL;
	blockdev_detach(&a);
	/* two readers share it; then no writer may come */
	assert_int_equal(blockdev_attach(bs, &r, NULL), 0);
	assert_int_equal(blockdev_attach(bs, &a, &err), -1);
	assert_non_null(strstr(error_msg(err), "virtio-blk0 needs write"));
	error_free(err);
	blockdev_detach(&r);
	blockdev_close(bs);
}

static void a_backing_node_cannot_be_written_under_its_overlay(void **state)
{
	struct fixture *f = *state;
	struct blockdev *bs = open_img(f->qcow2, "top", false);
	struct blockdev_user w = frontend("virtio-blk0", true), r = frontend("virtio-blk1", false);
	struct error *err = NULL;
	char want[160];

	assert_non_null(bs->backing);
	snprintf(want, sizeof(want), "needs write, which node 'top' (as its backing), using it "
		 "already, does not share");
	assert_int_equal(blockdev_attach(bs->backing, &w, &err), -1);
	assert_non_null(strstr(error_msg(err), want));
	error_free(err);
	/* reading it is fine */
	assert_int_equal(blockdev_attach(bs->backing, &r, NULL), 0);
	blockdev_detach(&r);
	/* nor can anyone write to the file under the qcow2 node */
	err = NULL;
	assert_int_equal(blockdev_attach(bs->file, &w, &err), -1);
	assert_non_null(strstr(error_msg(err), "node 'top' (as its file)"));
	error_free(err);
	blockdev_close(bs);
}

static void a_node_in_use_is_not_deleted(void **state)
{
	struct fixture *f = *state;
	struct blockdev *bs = open_img(f->qcow2, "top", true);
	struct blockdev_user u = frontend("virtio-blk0", false);
	char file_name[BLOCKDEV_NODE_NAME_MAX];
	struct error *err = NULL;

	snprintf(file_name, sizeof(file_name), "%s", bs->file->node_name);
	assert_int_equal(blockdev_node_del(file_name, &err), -1);
	assert_non_null(strstr(error_msg(err), "is in use by node 'top' (as its file)"));
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_attach(bs, &u, NULL), 0);
	assert_int_equal(blockdev_node_del("top", &err), -1);
	assert_string_equal(error_msg(err), "node 'top' is in use by virtio-blk0");
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_node_del("nosuch", &err), -1);
	assert_string_equal(error_msg(err), "no node named 'nosuch'");
	error_free(err);
	blockdev_detach(&u);
	assert_int_equal(blockdev_node_del("top", NULL), 0);
	assert_null(blockdev_find_node("top"));
	assert_null(blockdev_find_node(file_name));
	assert_int_equal(nodes(), 0);
}

static void a_child_stays_while_a_parent_uses_it(void **state)
{
	struct fixture *f = *state;
	struct blockdev_opts o = { .readonly = true };
	struct blockdev_open_ctx ctx = { .filename = f->raw, .opts = &o };
	struct blockdev *file = blockdev_open_file(f->raw, &o, NULL), *a, *b;

	assert_non_null(file);
	/* two read-only raw nodes over one file node */
	a = blockdev_open_format(blockdev_ref(file), &blockdev_raw, &ctx, NULL);
	b = blockdev_open_format(blockdev_ref(file), &blockdev_raw, &ctx, NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_equal(a->file, file);
	blockdev_close(file); /* the creator's reference: the parents keep it */
	assert_int_equal(nodes(), 3);
	blockdev_close(a);
	assert_int_equal(nodes(), 2);
	assert_ptr_equal(b->file, file);
	blockdev_close(b);
	assert_int_equal(nodes(), 0);
}

struct drain_count {
	unsigned begin, end;
	bool inside;
};

static void count_begin(void *opaque)
{
	struct drain_count *c = opaque;

	assert_false(c->inside);
	c->inside = true;
	c->begin++;
}

static void count_end(void *opaque)
{
	struct drain_count *c = opaque;

	assert_true(c->inside);
	c->inside = false;
	c->end++;
}

static const struct blockdev_user_ops counting_ops = { count_begin, count_end };

/* a raw file of @size bytes of @byte beside the fixture's images */
static void make_filled(const char *path, uint8_t byte, size_t size)
{
	uint8_t *b = malloc(size);
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	memset(b, byte, size);
	assert_int_equal(fwrite(b, 1, size, fp), size);
	fclose(fp);
	free(b);
}

static uint8_t first_byte(struct blockdev *bs)
{
	uint8_t b = 0xee;

	assert_int_equal(blockdev_pread(bs, 0, &b, 1), 0);
	return b;
}

/* The chain under an overlay changes inside a drained section over the root users above it:
 * reads then reach the new backing node; the old one closes with its last reference. */
static void set_backing_swaps_the_chain_in_a_drained_section(void **state)
{
	struct fixture *f = *state;
	struct drain_count c = { 0 };
	struct blockdev_user u = frontend("virtio-blk0", true);
	struct blockdev *top = open_img(f->qcow2, "top", false), *other;
	struct error *err = NULL;
	char other_path[256];

	snprintf(other_path, sizeof(other_path), "%s.other", f->raw);
	make_filled(other_path, 0x5a, 1 << 20);
	other = open_img(other_path, "other", true);
	u.ops = &counting_ops;
	u.opaque = &c;
	assert_int_equal(blockdev_attach(top, &u, NULL), 0);
	assert_int_equal(first_byte(top), 0);
	assert_int_equal(nodes(), 6); /* top, the raw backing, other, and a file node each */
	if (blockdev_set_backing(top, other, &err))
		fail_msg("blockdev_set_backing: %s", error_msg(err));
	assert_int_equal(c.begin, 1);
	assert_int_equal(c.end, 1);
	assert_ptr_equal(top->backing, other);
	assert_int_equal(first_byte(top), 0x5a);
	assert_int_equal(nodes(), 4); /* the old backing node and its file closed */
	/* no backing: what the overlay does not hold reads as zeroes */
	assert_int_equal(blockdev_set_backing(top, NULL, NULL), 0);
	assert_int_equal(first_byte(top), 0);
	assert_int_equal(c.end, 2);
	assert_int_equal(blockdev_set_backing(top, other, NULL), 0);
	/* the same backing again: nothing to do, nothing drained */
	assert_int_equal(blockdev_set_backing(top, other, NULL), 0);
	assert_int_equal(c.begin, 3);
	blockdev_close(other); /* the backing link keeps it */
	assert_int_equal(first_byte(top), 0x5a);
	blockdev_detach(&u);
	blockdev_close(top);
	assert_int_equal(nodes(), 0);
	unlink(other_path);
}

static void set_backing_refuses_loops_writers_and_formats_without_backing(void **state)
{
	struct fixture *f = *state;
	struct qcow2_create_opts o = { .size = 1 << 20, .cluster_bits = 16, .version = 3,
				       .refcount_bits = 16 };
	struct blockdev_user w = frontend("virtio-blk1", true);
	struct blockdev *top = open_img(f->qcow2, "top", false), *mid, *raw;
	struct error *err = NULL;
	char mid_path[256], raw_path[256];

	snprintf(mid_path, sizeof(mid_path), "%s.mid.qcow2", f->raw);
	assert_true(qcow2_create(mid_path, &o, NULL) >= 0);
	mid = open_img(mid_path, "mid", false);
	snprintf(raw_path, sizeof(raw_path), "%s.w", f->raw);
	make_filled(raw_path, 1, 1 << 20);
	raw = open_img(raw_path, "scratch", false);

	assert_int_equal(blockdev_set_backing(top, top, &err), -1);
	assert_string_equal(error_msg(err), "node 'top' cannot back node 'top': it is the node "
			    "itself");
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_set_backing(top, mid, NULL), 0);
	assert_int_equal(blockdev_set_backing(mid, top, &err), -1);
	assert_string_equal(error_msg(err), "node 'top' cannot back node 'mid': its backing "
			    "chain holds that node (a loop)");
	error_free(err);
	err = NULL;
	assert_int_equal(blockdev_set_backing(raw, mid, &err), -1);
	assert_string_equal(error_msg(err), "node 'scratch' is a raw node, which has no backing "
			    "file");
	error_free(err);
	err = NULL;
	/* a node someone writes cannot become a backing node (what it reads would change) */
	assert_int_equal(blockdev_attach(raw, &w, NULL), 0);
	assert_int_equal(blockdev_set_backing(top, raw, &err), -1);
	assert_non_null(strstr(error_msg(err), "virtio-blk1 uses it for write"));
	error_free(err);
	assert_ptr_equal(top->backing, mid); /* unchanged */
	blockdev_detach(&w);
	blockdev_close(raw);
	blockdev_close(mid);
	blockdev_close(top);
	assert_int_equal(nodes(), 0);
	unlink(mid_path);
	unlink(raw_path);
}

struct mover {
	struct drain_count c;
	struct blockdev *served; /* what the replace hook was told */
};

static int mover_replace(void *opaque, struct blockdev *bs, struct error **errp)
{
	((struct mover *)opaque)->served = bs;
	return 0;
}

static void mover_begin(void *opaque)
{
	count_begin(&((struct mover *)opaque)->c);
}

static void mover_end(void *opaque)
{
	count_end(&((struct mover *)opaque)->c);
}

static const struct blockdev_user_ops mover_ops = { mover_begin, mover_end, mover_replace };

static struct blockdev *open_throttle(struct blockdev *bs, void *arg, struct error **errp)
{
	struct blockdev *t;

	if (!arg) {
		error_setg(errp, "refused as asked");
		return NULL;
	}
	t = blockdev_throttle_open_over(blockdev_ref(bs), arg, errp);
	if (!t)
		blockdev_unref(bs);
	return t;
}

/* A filter goes over a node a writer uses (its link would clash with that writer were the
 * writer not moving onto it); the writer then serves the filter. A failed open changes nothing. */
static void a_filter_goes_over_a_node_and_its_users_move_onto_it(void **state)
{
	struct fixture *f = *state;
	struct mover m = { 0 };
	struct blockdev_user u = frontend("virtio-blk0", true), other = frontend("x", true);
	struct blockdev *bs = open_img(f->raw, "disk0", false), *t;
	struct throttle_limits l;
	struct blockdev_drain d;
	struct error *err = NULL;

	throttle_limits_init(&l);
	assert_non_null(blockdev_throttle_group_new("g0", &l, NULL));
	u.ops = &mover_ops;
	u.opaque = &m;
	assert_int_equal(blockdev_attach(bs, &u, NULL), 0);
	assert_int_equal(blockdev_drained_begin(bs, &d, NULL), 0);
	assert_null(blockdev_insert_filter(bs, open_throttle, NULL, &err));
	assert_string_equal(error_msg(err), "refused as asked");
	error_free(err);
	assert_ptr_equal(u.node, bs);
	assert_null(m.served);
	t = blockdev_insert_filter(bs, open_throttle, "g0", &err);
	if (!t)
		fail_msg("blockdev_insert_filter: %s", error_msg(err));
	blockdev_drained_end(&d);
	assert_int_equal(m.c.begin, 1);
	assert_int_equal(m.c.end, 1);
	assert_ptr_equal(u.node, t);
	assert_ptr_equal(m.served, t);
	assert_ptr_equal(t->file, bs);
	assert_int_equal(first_byte(t), 0);
	/* the filter writes the node now: another writer is refused there */
	assert_int_equal(blockdev_attach(bs, &other, NULL), -1);
	blockdev_close(t); /* the user holds it */
	blockdev_close(bs); /* the filter holds it */
	assert_int_equal(nodes(), 3); /* the filter, the raw node, its file node */
	blockdev_detach(&u);
	assert_int_equal(nodes(), 0);
	blockdev_throttle_group_unref(blockdev_throttle_group_find("g0"));
}

int main(void)
{
#define WITH_IMAGES(t) cmocka_unit_test_setup_teardown(t, make_images, remove_images)
	const struct CMUnitTest tests[] = {
		WITH_IMAGES(every_node_has_a_name_and_is_found_by_it),
		WITH_IMAGES(node_names_are_checked_and_unique),
		WITH_IMAGES(a_second_writer_is_refused_naming_both_users),
		WITH_IMAGES(a_backing_node_cannot_be_written_under_its_overlay),
		WITH_IMAGES(a_node_in_use_is_not_deleted),
		WITH_IMAGES(a_child_stays_while_a_parent_uses_it),
		WITH_IMAGES(set_backing_swaps_the_chain_in_a_drained_section),
		WITH_IMAGES(set_backing_refuses_loops_writers_and_formats_without_backing),
		WITH_IMAGES(a_filter_goes_over_a_node_and_its_users_move_onto_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
