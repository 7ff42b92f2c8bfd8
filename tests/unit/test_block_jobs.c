/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Block jobs without a VM: block-stream and block-commit on real image chains (content kept,
 * the chain made shorter in memory and in the image headers), QEMU's events in QEMU's order,
 * pause, resume, cancel, manual finalize and dismiss, the verbs a state refuses, what a job
 * refuses to start on, and the mirror (and active commit) moving a device on job-complete;
 * blockdev-create (through its QMP command): files and qcow2 images on them with each option
 * set, read back, bad options refused by name before a job exists, QEMU's plain-job events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/bitmap.h"
#include "blockdev/job_backup.h"
#include "blockdev/job_chain.h"
#include "blockdev/job_create.h"
#include "blockdev/job_mirror.h"
#include "blockdev/qcow2.h"
#include "control/job_qmp.h"
#include "tests/unit/img_fixture.h"

#define MiB (1024 * 1024ULL)
#define SIZE (6 * MiB)

static char events[64][96]; /* "NAME" or "JOB_STATUS_CHANGE status" */
static unsigned nr_events;

static void emit(void *opaque, const char *name, struct json_object *data)
{
	struct json_object *st, *e;

	if (json_object_object_get_ex(data, "error", &e))
		print_message("%s: %s\n", name, json_object_get_string(e));
	if (nr_events < 64) {
		if (json_object_object_get_ex(data, "status", &st) &&
		    !strcmp(name, "JOB_STATUS_CHANGE"))
			snprintf(events[nr_events++], 96, "%s", json_object_get_string(st));
		else
			snprintf(events[nr_events++], 96, "%s", name);
	}
	json_object_put(data);
}

static int setup(void **state)
{
	if (imgfx_setup("jobs") < 0)
		return -1;
	return job_manager_init(emit, NULL, NULL);
}

static int teardown(void **state)
{
	job_manager_shutdown();
	return imgfx_teardown();
}

static void make_qcow2(const char *name, const char *backing, const char *fmt)
{
	imgfx_make_qcow2(name, SIZE, backing, fmt);
}

static struct blockdev *open_img(const char *name, const char *node, bool ro)
{
	return imgfx_open(name, NULL, node, ro);
}

static uint8_t *slurp(struct blockdev *bs)
{
	uint8_t *b = malloc(SIZE);

	assert_int_equal(blockdev_pread(bs, 0, b, SIZE), 0);
	return b;
}

/*
 * base.raw (0x11 everywhere) <- mid.qcow2 (0x22 at 1 MiB, zeroes at 3 MiB) <- top.qcow2 (0x33
 * at 0). Returns top, opened read-write with its chain.
 */
static struct blockdev *make_chain(void)
{
	struct blockdev *bs;
	int fd = open(imgfx_path("base.raw"), O_CREAT | O_TRUNC | O_WRONLY, 0644);
	uint8_t *b = malloc(SIZE);

	assert_true(fd >= 0);
	memset(b, 0x11, SIZE);
	assert_int_equal(write(fd, b, SIZE), SIZE);
	close(fd);
	free(b);
	make_qcow2("mid.qcow2", "base.raw", "raw");
	bs = open_img("mid.qcow2", NULL, false);
	imgfx_fill(bs, MiB, 512 * 1024, 0x22);
	assert_int_equal(blockdev_write_zeroes(bs, 3 * MiB, 256 * 1024, 0), 0);
	blockdev_close(bs);
	make_qcow2("top.qcow2", "mid.qcow2", "qcow2");
	bs = open_img("top.qcow2", "top", false);
	imgfx_fill(bs, 0, 64 * 1024, 0x33);
	nr_events = 0;
	return bs;
}

/* Runs the control plane until @j reaches @want (or, with NULL, until no job is left). */
static void wait_for(const char *id, enum job_status want)
{
	for (int i = 0; i < 2000; i++) {
		struct pollfd p = { .fd = job_manager_fd(), .events = POLLIN };
		struct job *j;

		poll(&p, 1, 10);
		job_manager_poll();
		j = job_find(id);
		if (want == JOB_STATUS_NULL ? !j : j && job_status(j) == want)
			return;
	}
	fail_msg("job '%s' did not reach %s", id, job_status_name(want));
}

static void assert_events(const char *const *want)
{
	unsigned n = 0;

	while (want[n])
		n++;
	for (unsigned i = 0; i < n && i < nr_events; i++)
		if (strcmp(events[i], want[i]))
			fail_msg("event %u is %s, not %s", i, events[i], want[i]);
	assert_int_equal(nr_events, n);
}

/* What @name's header records as its backing file. */
static void assert_header_backing(const char *name, const char *want)
{
	struct blockdev_opts o = { .readonly = true, .no_backing = true };
	struct blockdev_info info;
	struct blockdev *bs = blockdev_open(imgfx_path(name), &o, NULL);

	assert_non_null(bs);
	assert_int_equal(blockdev_get_info(bs, &info, NULL), 0);
	if (!want)
		assert_null(info.backing_file);
	else
		assert_string_equal(info.backing_file, want);
	json_object_put(info.specific);
	blockdev_close(bs);
}

static const struct job_opts auto_opts = { .id = "j0", .auto_finalize = true,
					   .auto_dismiss = true };

static void stream_takes_in_the_chain_down_to_a_base(void **state)
{
	struct blockdev *top = make_chain();
	struct blockdev *base = top->backing->backing;
	uint8_t *before = slurp(top), *after;
	char *base_abs = realpath(imgfx_path("base.raw"), NULL);
	static const char *const want[] = { "created", "running", "waiting", "pending",
					    "BLOCK_JOB_COMPLETED", "concluded", "null", NULL };
	struct error *err = NULL;

	if (!job_stream_start(&auto_opts, top, base, NULL, &err))
		fail_msg("block-stream: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_NULL);
	assert_events(want);
	assert_ptr_equal(top->backing, base);
	after = slurp(top);
	assert_memory_equal(before, after, SIZE);
	assert_header_backing("top.qcow2", base_abs);
	free(before);
	free(after);
	free(base_abs);
	blockdev_close(top);
}

static void stream_of_the_whole_chain_leaves_no_backing(void **state)
{
	struct blockdev *top = make_chain();
	uint8_t *before = slurp(top), *after;
	struct error *err = NULL;

	if (!job_stream_start(&auto_opts, top, NULL, NULL, &err))
		fail_msg("block-stream: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_NULL);
	assert_null(top->backing);
	after = slurp(top);
	assert_memory_equal(before, after, SIZE);
	assert_header_backing("top.qcow2", NULL);
	free(before);
	free(after);
	blockdev_close(top);
}

static void commit_writes_an_intermediate_image_into_its_base(void **state)
{
	struct blockdev *top = make_chain(), *mid = top->backing, *base = mid->backing, *b;
	uint8_t *before = slurp(top), *after, byte = 0;
	char *base_abs = realpath(imgfx_path("base.raw"), NULL);
	struct error *err = NULL;

	if (!job_commit_start(&auto_opts, top, mid, base, NULL, &err))
		fail_msg("block-commit: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_NULL);
	/* mid and the read-only base node are gone: top backs onto the base opened read-write */
	assert_string_equal(top->backing->filename, imgfx_path("base.raw"));
	assert_false(top->backing->read_only);
	assert_null(top->backing->backing);
	after = slurp(top);
	assert_memory_equal(before, after, SIZE);
	assert_header_backing("top.qcow2", base_abs);
	blockdev_close(top);
	/* the base file itself now holds what mid held: its data and its zeroes */
	b = open_img("base.raw", NULL, true);
	assert_int_equal(blockdev_pread(b, MiB, &byte, 1), 0);
	assert_int_equal(byte, 0x22);
	assert_int_equal(blockdev_pread(b, 3 * MiB, &byte, 1), 0);
	assert_int_equal(byte, 0);
	assert_int_equal(blockdev_pread(b, 0, &byte, 1), 0);
	assert_int_equal(byte, 0x11); /* top's own data stays in top */
	blockdev_close(b);
	free(before);
	free(after);
	free(base_abs);
}

static void pause_resume_and_cancel_follow_qemus_states(void **state)
{
	struct blockdev *top = make_chain(), *mid = top->backing;
	struct job_opts o = auto_opts;
	static const char *const want[] = { "created", "running", "paused", "running", "aborting",
					    "BLOCK_JOB_CANCELLED", "concluded", "null", NULL };
	struct error *err = NULL;
	struct job *j;

	o.speed = 64 * 1024; /* a range a second and a half: it is still running below */
	j = job_stream_start(&o, top, NULL, NULL, &err);
	assert_non_null(j);
	assert_int_equal(job_pause(j, NULL), 0);
	wait_for("j0", JOB_STATUS_PAUSED);
	assert_int_equal(job_pause(j, &err), -1);
	assert_string_equal(error_msg(err), "Job 'j0' is already paused");
	error_free(err);
	err = NULL;
	assert_int_equal(job_resume(j, NULL), 0);
	wait_for("j0", JOB_STATUS_RUNNING);
	assert_int_equal(job_resume(j, &err), -1);
	assert_string_equal(error_msg(err), "Can't resume a job that was not paused");
	error_free(err);
	err = NULL;
	assert_int_equal(job_complete(j, &err), -1);
	assert_string_equal(error_msg(err), "Job 'j0' in state 'running' cannot accept command "
			    "verb 'complete'");
	error_free(err);
	assert_int_equal(job_cancel(j, false, NULL), 0);
	wait_for("j0", JOB_STATUS_NULL);
	assert_events(want);
	assert_ptr_equal(top->backing, mid); /* cancelled: the chain stays */
	blockdev_close(top);
}

static void manual_finalize_and_dismiss_wait_for_their_verbs(void **state)
{
	struct blockdev *top = make_chain(), *base = top->backing->backing;
	struct job_opts o = { .id = "manual" };
	struct json_object *list;
	struct error *err = NULL;
	struct job *j = job_stream_start(&o, top, base, NULL, &err);

	assert_non_null(j);
	wait_for("manual", JOB_STATUS_PENDING);
	assert_ptr_not_equal(top->backing, base); /* not before job-finalize */
	assert_int_equal(job_dismiss(j, &err), -1);
	assert_string_equal(error_msg(err), "Job 'manual' in state 'pending' cannot accept "
			    "command verb 'dismiss'");
	error_free(err);
	list = job_query_jobs();
	assert_string_equal(json_object_get_string(json_object_object_get(
				    json_object_array_get_idx(list, 0), "status")), "pending");
	json_object_put(list);
	assert_int_equal(job_finalize(j, NULL), 0);
	assert_ptr_equal(top->backing, base);
	assert_int_equal(job_status(j), JOB_STATUS_CONCLUDED);
	assert_int_equal(job_dismiss(j, NULL), 0);
	assert_null(job_find("manual"));
	blockdev_close(top);
}

static void jobs_refuse_busy_nodes_bad_chains_and_active_commit(void **state)
{
	struct blockdev *top = make_chain(), *mid = top->backing, *base = mid->backing;
	struct blockdev *other = open_img("base.raw", "other", true);
	struct job_opts slow = auto_opts, second = auto_opts;
	struct error *err = NULL;
	struct job *j;

	slow.speed = 65536;
	j = job_stream_start(&slow, top, base, NULL, NULL);
	assert_non_null(j);
	second.id = "j1";
	assert_null(job_commit_start(&second, top, mid, base, NULL, &err));
	assert_non_null(strstr(error_msg(err), "is busy: block device is in use by a block job"));
	error_free(err);
	err = NULL;
	assert_null(job_stream_start(&auto_opts, top, base, NULL, &err));
	assert_string_equal(error_msg(err), "Job ID 'j0' already in use");
	error_free(err);
	err = NULL;
	assert_int_equal(job_cancel(j, false, NULL), 0);
	wait_for("j0", JOB_STATUS_NULL);
	assert_null(job_stream_start(&second, top, other, NULL, &err));
	assert_string_equal(error_msg(err), "node 'other' is not in the backing chain of 'top'");
	error_free(err);
	err = NULL;
	assert_null(job_stream_start(&second, other, NULL, NULL, &err));
	assert_non_null(strstr(error_msg(err), "has no backing file to stream from"));
	error_free(err);
	blockdev_close(other);
	blockdev_close(top);
}

/* A stand-in device: the node it serves, and how often it was drained and moved. */
struct fake_dev {
	struct blockdev_user user;
	struct blockdev *bs;
	unsigned int drains, moves;
};

static void fake_begin(void *o) { ((struct fake_dev *)o)->drains++; }
static void fake_end(void *o) { (void)o; }
static int fake_replace(void *o, struct blockdev *bs, struct error **errp)
{
	struct fake_dev *d = o;

	d->bs = bs;
	d->moves++;
	return 0;
}

static const struct blockdev_user_ops fake_ops = { fake_begin, fake_end, fake_replace };

static void mirror_follows_writes_and_moves_the_device_on_complete(void **state)
{
	struct blockdev *top = make_chain(), *target;
	struct fake_dev dev = { .user = { .role = "fake-disk",
					   .perm = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE,
					   .shared = BLOCKDEV_PERM_READ |
						     BLOCKDEV_PERM_WRITE_UNCHANGED,
					   .ops = &fake_ops } };
	struct job_mirror_opts mo = { .sync = JOB_MIRROR_SYNC_FULL };
	struct error *err = NULL;
	uint8_t *before, *after;
	struct job *j;

	dev.user.opaque = &dev;
	dev.bs = top;
	assert_int_equal(blockdev_attach(top, &dev.user, NULL), 0);
	make_qcow2("target.qcow2", NULL, NULL);
	target = open_img("target.qcow2", "target", false);
	j = job_mirror_start(&auto_opts, top, target, &mo, &err);
	if (!j)
		fail_msg("mirror: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_READY);
	/* in sync, a write to the source reaches the target before the pivot */
	imgfx_fill(top, 5 * MiB, 4096, 0x44);
	before = slurp(top);
	assert_int_equal(job_complete(j, NULL), 0);
	wait_for("j0", JOB_STATUS_NULL);
	assert_ptr_equal(dev.bs, target);
	assert_int_equal(dev.moves, 1);
	assert_true(dev.drains >= 1);
	assert_ptr_equal(dev.user.node, target);
	after = slurp(target);
	assert_memory_equal(before, after, SIZE);
	assert_null(target->backing); /* sync=full: the whole chain, flattened */
	blockdev_detach(&dev.user);
	blockdev_close(target);
	blockdev_close(top);
	free(before);
	free(after);
}

static void active_commit_moves_the_device_onto_the_base(void **state)
{
	struct blockdev *top = make_chain(), *base = top->backing->backing;
	struct fake_dev dev = { .user = { .role = "fake-disk",
					   .perm = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE,
					   .shared = BLOCKDEV_PERM_READ |
						     BLOCKDEV_PERM_WRITE_UNCHANGED,
					   .ops = &fake_ops } };
	static const char *const want[] = { "created", "running", "ready", "BLOCK_JOB_READY",
					    "waiting", "pending", "BLOCK_JOB_COMPLETED",
					    "concluded", "null", NULL };
	struct error *err = NULL;
	uint8_t *before, *after;
	struct job *j;

	dev.user.opaque = &dev;
	dev.bs = top;
	assert_int_equal(blockdev_attach(top, &dev.user, NULL), 0);
	j = job_commit_start(&auto_opts, top, top, base, NULL, &err);
	if (!j)
		fail_msg("active commit: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_READY);
	imgfx_fill(top, 2 * MiB, 4096, 0x55); /* in sync: it follows */
	before = slurp(top);
	assert_int_equal(job_complete(j, NULL), 0);
	wait_for("j0", JOB_STATUS_NULL);
	assert_events(want);
	/* the device is on the base file, opened read-write, which holds everything now */
	assert_string_equal(dev.bs->filename, imgfx_path("base.raw"));
	assert_false(dev.bs->read_only);
	after = slurp(dev.bs);
	assert_memory_equal(before, after, SIZE);
	blockdev_detach(&dev.user);
	blockdev_close(top);
	free(before);
	free(after);
}

/* Backups without a guest: sync=bitmap copies what the bitmap marks and nothing else, and
 * bitmap-mode decides what the bitmap holds afterwards. (Copy-before-write under a writing
 * guest: tests/guest/qmp_backup_test.py.) */
static void backup_copies_what_the_bitmap_marks_and_settles_it(void **state)
{
	struct blockdev *top = make_chain(), *target;
	struct blockdev_bitmap *u = blockdev_bitmap_add(top, "u", 65536, false, NULL);
	struct job_backup_opts bo = { .sync = JOB_BACKUP_SYNC_BITMAP, .bitmap = u };
	struct error *err = NULL;
	uint8_t byte = 0xee;

	assert_non_null(u);
	imgfx_fill(top, 2 * MiB, 4096, 0x66); /* marks one granule */
	assert_int_equal(blockdev_bitmap_count(u), 65536);
	make_qcow2("bk.qcow2", NULL, NULL);
	target = open_img("bk.qcow2", "bk", false);
	if (!job_backup_start(&auto_opts, top, target, &bo, &err))
		fail_msg("backup: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_NULL);
	assert_int_equal(blockdev_pread(target, 2 * MiB, &byte, 1), 0);
	assert_int_equal(byte, 0x66);
	assert_int_equal(blockdev_pread(target, 2 * MiB + 65536, &byte, 1), 0);
	assert_int_equal(byte, 0); /* not marked: not copied */
	assert_int_equal(blockdev_bitmap_count(u), 0); /* on-success: synchronized */
	assert_true(blockdev_bitmap_enabled(u));
	assert_false(blockdev_bitmap_busy(u));
	/* never: the bits stay; a full backup copies everything, the chain's data too */
	imgfx_fill(top, 3 * MiB, 4096, 0x77);
	bo = (struct job_backup_opts){ .sync = JOB_BACKUP_SYNC_FULL, .bitmap = u,
				       .bitmap_mode = JOB_BITMAP_NEVER };
	if (!job_backup_start(&auto_opts, top, target, &bo, &err))
		fail_msg("backup: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_NULL);
	assert_int_equal(blockdev_bitmap_count(u), 65536);
	assert_int_equal(blockdev_pread(target, MiB, &byte, 1), 0);
	assert_int_equal(byte, 0x22); /* mid's data, through the chain */
	/* a bitmap that is busy, and sync=bitmap without one, are refused */
	bo = (struct job_backup_opts){ .sync = JOB_BACKUP_SYNC_BITMAP };
	assert_null(job_backup_start(&auto_opts, top, target, &bo, &err));
	assert_string_equal(error_msg(err), "Bitmap sync mode must be given a bitmap");
	error_free(err);
	blockdev_bitmap_remove(top, u, NULL);
	blockdev_close(target);
	blockdev_close(top);
}

/*
 * A job whose steps are smaller than its bitmap's granularity (a speed whose tenth of a second
 * is less than a granule, or a job yielding to guests) still clears every granule: steps cover
 * whole granules. Before, a 1 MiB step over 2 MiB granules cleared none, and the mirror and the
 * backup copied the same ranges for ever.
 */
static void steps_smaller_than_a_granule_still_finish(void **state)
{
	struct blockdev *top = make_chain(), *target;
	struct job_opts slow = auto_opts;
	struct job_mirror_opts mo = { .sync = JOB_MIRROR_SYNC_FULL, .granularity = 2 * MiB };
	struct job_backup_opts bo = { .sync = JOB_BACKUP_SYNC_FULL, .granularity = 2 * MiB };
	struct error *err = NULL;
	uint8_t *before, *after;
	struct job *j;

	slow.speed = 10 * MiB; /* steps of a tenth of that: 1 MiB */
	make_qcow2("target.qcow2", NULL, NULL);
	target = open_img("target.qcow2", "target", false);
	j = job_mirror_start(&slow, top, target, &mo, &err);
	if (!j)
		fail_msg("mirror: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_READY);
	assert_int_equal(job_cancel(j, false, NULL), 0); /* in READY: a point-in-time copy */
	wait_for("j0", JOB_STATUS_NULL);
	before = slurp(top);
	after = slurp(target);
	assert_memory_equal(before, after, SIZE);
	free(after);
	blockdev_close(target);
	make_qcow2("bk.qcow2", NULL, NULL);
	target = open_img("bk.qcow2", "bk", false);
	if (!job_backup_start(&slow, top, target, &bo, &err))
		fail_msg("backup: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_NULL);
	after = slurp(target);
	assert_memory_equal(before, after, SIZE);
	free(before);
	free(after);
	blockdev_close(target);
	blockdev_close(top);
}

/* ---- blockdev-create ----------------------------------------------------------------------- */

/* blockdev-create with @fmt's arguments (JSON; %s are filled from the varargs). */
static int qmp_create(struct error **errp, const char *fmt, ...)
{
	struct json_object *args, *ret = NULL;
	char buf[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	args = json_tokener_parse(buf);
	if (!args)
		fail_msg("bad JSON: %s", buf);
	r = job_qmp_blockdev_create(NULL, args, &ret, errp);
	json_object_put(args);
	json_object_put(ret);
	return r;
}

/* Runs the create job @id to CONCLUDED, checks it succeeded, and dismisses it. */
static void run_create(const char *id)
{
	struct json_object *list = job_query_jobs(), *e;

	json_object_put(list);
	wait_for(id, JOB_STATUS_CONCLUDED);
	list = job_query_jobs();
	if (json_object_object_get_ex(json_object_array_get_idx(list, 0), "error", &e))
		fail_msg("job %s: %s", id, json_object_get_string(e));
	json_object_put(list);
	assert_int_equal(job_dismiss(job_find(id), NULL), 0);
	job_manager_poll(); /* its "null" */
}

/* A file node called @node over @name (a new, empty file made with blockdev-create). */
static void add_file_node(const char *name, const char *node)
{
	char buf[512];
	struct json_object *o;
	struct error *err = NULL;

	if (qmp_create(&err, "{\"job-id\": \"mk\", \"options\": {\"driver\": \"file\", "
		       "\"filename\": \"%s\", \"size\": 0}}", imgfx_path(name)) < 0)
		fail_msg("create %s: %s", name, error_msg(err));
	run_create("mk");
	snprintf(buf, sizeof(buf), "{\"driver\": \"file\", \"filename\": \"%s\", "
		 "\"node-name\": \"%s\"}", imgfx_path(name), node);
	o = json_tokener_parse(buf);
	assert_non_null(blockdev_add(o, "blockdev-add", NULL));
	json_object_put(o);
}

static const char *info_str(struct json_object *sp, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(sp, key, &v) ? json_object_to_json_string(v) : "-";
}

static void file_then_qcow2_with_each_option_set(void **state)
{
	static const struct {
		const char *opts; /* the qcow2 options after "file" and "size" */
		uint64_t cluster;
		const char *compat, *lazy, *refcount, *ext_l2, *zstd;
	} sets[] = {
		{ "", 65536, "\"1.1\"", "false", "16", "false", "\"zlib\"" },
		{ ", \"version\": \"v2\", \"cluster-size\": 4096", 4096, "\"0.10\"", "-", "16",
		  "-", "\"zlib\"" },
		{ ", \"version\": \"v3\", \"cluster-size\": 131072, \"lazy-refcounts\": true, "
		  "\"refcount-bits\": 64, \"compression-type\": \"zstd\", \"extended-l2\": true, "
		  "\"preallocation\": \"metadata\"",
		  131072, "\"1.1\"", "true", "64", "true", "\"zstd\"" },
		{ ", \"cluster-size\": \"16k\", \"refcount-bits\": 1, \"preallocation\": "
		  "\"falloc\"", 16384, "\"1.1\"", "false", "1", "false", "\"zlib\"" },
		{ ", \"preallocation\": \"full\", \"lazy-refcounts\": false", 65536, "\"1.1\"",
		  "false", "16", "false", "\"zlib\"" },
	};
	static const char *const want[] = { "created", "running", "waiting", "pending",
					    "concluded", "null", NULL };

	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		struct blockdev_check_result res;
		struct blockdev_info info;
		struct error *err = NULL;
		struct blockdev *bs;
		uint8_t buf[4096], back[4096];

		add_file_node("c.qcow2", "cfile");
		nr_events = 0;
		if (qmp_create(&err, "{\"job-id\": \"c%zu\", \"options\": {\"driver\": \"qcow2\", "
			       "\"file\": \"cfile\", \"size\": %llu%s}}", i, 8 * MiB,
			       sets[i].opts) < 0)
			fail_msg("set %zu: %s", i, error_msg(err));
		char id[8];
		snprintf(id, sizeof(id), "c%zu", i);
		run_create(id);
		assert_events(want); /* no BLOCK_JOB_COMPLETED: a plain job */
		assert_int_equal(blockdev_node_del("cfile", NULL), 0);

		bs = open_img("c.qcow2", NULL, false);
		assert_string_equal(blockdev_format_name(bs), "qcow2");
		assert_int_equal(bs->size, 8 * MiB);
		assert_int_equal(blockdev_get_info(bs, &info, NULL), 0);
		assert_int_equal(info.cluster_size, sets[i].cluster);
		assert_string_equal(info_str(info.specific, "compat"), sets[i].compat);
		assert_string_equal(info_str(info.specific, "lazy-refcounts"), sets[i].lazy);
		assert_string_equal(info_str(info.specific, "refcount-bits"), sets[i].refcount);
		assert_string_equal(info_str(info.specific, "extended-l2"), sets[i].ext_l2);
		assert_string_equal(info_str(info.specific, "compression-type"), sets[i].zstd);
		json_object_put(info.specific);
		memset(buf, 0x5a, sizeof(buf));
		assert_int_equal(blockdev_pwrite(bs, 3 * MiB, buf, sizeof(buf)), 0);
		assert_int_equal(blockdev_pread(bs, 3 * MiB, back, sizeof(back)), 0);
		assert_memory_equal(buf, back, sizeof(buf));
		assert_int_equal(blockdev_check(bs, 0, &res, NULL), 0);
		assert_int_equal(res.corruptions + res.leaks + res.check_errors, 0);
		blockdev_close(bs);
	}
}

static void qcow2_with_a_backing_file_a_data_file_and_a_nested_file(void **state)
{
	struct error *err = NULL;
	struct blockdev_info info;
	struct blockdev *bs;
	uint8_t *b;
	int fd = open(imgfx_path("b.raw"), O_CREAT | O_TRUNC | O_WRONLY, 0644);

	/* a backing file: preallocated extended-L2 clusters leave its data visible */
	b = malloc(SIZE);
	memset(b, 0x11, SIZE);
	assert_int_equal(write(fd, b, SIZE), SIZE);
	close(fd);
	add_file_node("o.qcow2", "ofile");
	if (qmp_create(&err, "{\"job-id\": \"cb\", \"options\": {\"driver\": \"qcow2\", \"file\": "
		       "\"ofile\", \"size\": %llu, \"backing-file\": \"%s\", \"backing-fmt\": "
		       "\"raw\", \"extended-l2\": true, \"preallocation\": \"metadata\"}}", SIZE,
		       imgfx_path("b.raw")) < 0)
		fail_msg("backing: %s", error_msg(err));
	run_create("cb");
	assert_int_equal(blockdev_node_del("ofile", NULL), 0);
	bs = open_img("o.qcow2", NULL, true);
	assert_int_equal(blockdev_get_info(bs, &info, NULL), 0);
	assert_string_equal(info.backing_file, imgfx_path("b.raw"));
	assert_string_equal(info.backing_fmt, "raw");
	json_object_put(info.specific);
	free(b);
	b = slurp(bs);
	for (uint64_t i = 0; i < SIZE; i += 4096)
		assert_int_equal(b[i], 0x11);
	blockdev_close(bs);
	free(b);

	/* an external data file (data-raw), the image's file given as a nested BlockdevRef (of
	 * a file that exists: QEMU opens it, and so does vireo) */
	add_file_node("d.data", "dfile");
	assert_int_equal(qmp_create(NULL, "{\"job-id\": \"mk\", \"options\": {\"driver\": "
				    "\"file\", \"filename\": \"%s\", \"size\": 0}}",
				    imgfx_path("n.qcow2")), 0);
	run_create("mk");
	assert_int_equal(blockdev_find_node("dfile")->size, 0);
	if (qmp_create(&err, "{\"job-id\": \"cd\", \"options\": {\"driver\": \"qcow2\", \"file\": "
		       "{\"driver\": \"file\", \"filename\": \"%s\"}, \"size\": %llu, "
		       "\"data-file\": \"dfile\", \"data-raw\": true}}", imgfx_path("n.qcow2"), SIZE) < 0)
		fail_msg("data file: %s", error_msg(err));
	run_create("cd");
	assert_int_equal(blockdev_find_node("dfile")->size, SIZE); /* grown to the disk */
	assert_int_equal(blockdev_node_del("dfile", NULL), 0);
	bs = open_img("n.qcow2", NULL, false);
	assert_int_equal(blockdev_get_info(bs, &info, NULL), 0);
	/* the header names the data file as its node does (QEMU: the node's filename) */
	assert_string_equal(json_object_get_string(json_object_object_get(info.specific,
									  "data-file")),
			    imgfx_path("d.data"));
	assert_string_equal(info_str(info.specific, "data-file-raw"), "true");
	json_object_put(info.specific);
	imgfx_fill(bs, MiB, 4096, 0x77);
	blockdev_close(bs);
	/* data-raw: the bytes are in the data file, where the guest put them */
	fd = open(imgfx_path("d.data"), O_RDONLY);
	b = malloc(4096);
	assert_int_equal(pread(fd, b, 4096, MiB), 4096);
	assert_int_equal(b[0], 0x77);
	close(fd);
	free(b);
}

static void create_refuses_bad_options_by_name(void **state)
{
	static const struct {
		const char *options, *msg;
	} bad[] = {
		{ "{}", "Parameter 'options.driver' is missing" },
		{ "{\"driver\": \"raw\"}", "Driver does not support blockdev-create" },
		{ "{\"driver\": \"raw\", \"size\": 1}", "options: unknown key 'size'" },
		{ "{\"driver\": \"vmdk\"}", "Block driver 'vmdk' not found or not supported" },
		{ "{\"driver\": \"file\", \"filename\": \"x\"}", "Parameter 'options.size' is missing" },
		{ "{\"driver\": \"file\", \"size\": 0}", "Parameter 'options.filename' is missing" },
		{ "{\"driver\": \"file\", \"filename\": \"x\", \"size\": 0, \"preallocation\": "
		  "\"metadata\"}", "preallocation: 'metadata' is not off, falloc or full" },
		{ "{\"driver\": \"file\", \"filename\": \"x\", \"size\": 0, \"bogus\": 1}",
		  "options: unknown key 'bogus'" },
		{ "{\"driver\": \"qcow2\", \"size\": 0}", "Parameter 'options.file' is missing" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\"}", "Parameter 'options.size' is missing" },
		{ "{\"driver\": \"qcow2\", \"file\": \"nosuch\", \"size\": 0}",
		  "blockdev-create: file: no node named 'nosuch'" },
		{ "{\"driver\": \"qcow2\", \"file\": \"ro\", \"size\": 0}",
		  "file: node 'ro' is read-only" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 1000}",
		  "size: must be a multiple of 512 bytes" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"cluster-size\": 3000}",
		  "cluster-size: must be a power of two from 512 to 2M" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"cluster-size\": "
		  "4194304}", "cluster-size: must be a power of two from 512 to 2M" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"version\": \"v4\"}",
		  "version: 'v4' is not v2 or v3" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"version\": \"v2\", "
		  "\"lazy-refcounts\": true}", "lazy-refcounts=on needs version=v3" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"version\": \"v2\", "
		  "\"compression-type\": \"zstd\"}", "compression-type=zstd needs version=v3" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"version\": \"v2\", "
		  "\"refcount-bits\": 8}", "refcount-bits other than 16 needs version=v3" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"refcount-bits\": 3}",
		  "refcount-bits: 3 is not a power of two in 1..64" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"extended-l2\": true, "
		  "\"cluster-size\": 4096}", "extended-l2: needs cluster-size of at least 16k" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"compression-type\": "
		  "\"lz4\"}", "compression-type: 'lz4' is not zlib or zstd" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"preallocation\": "
		  "\"some\"}", "preallocation: 'some' is not off, metadata, falloc or full" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"encrypt\": "
		  "{\"format\": \"luks\"}}", "encrypt: vireo does not create encrypted qcow2 images" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"data-raw\": true}",
		  "data-raw: needs data-file and no backing-file" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"backing-fmt\": \"raw\"}",
		  "backing-fmt: cannot be used without backing-file" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"backing-file\": \"b\", "
		  "\"preallocation\": \"metadata\"}",
		  "preallocation: with a backing-file needs extended-l2=on" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"data-file\": \"nosuch\"}",
		  "blockdev-create: data-file: no node named 'nosuch'" },
		{ "{\"driver\": \"qcow2\", \"file\": \"cf\", \"size\": 0, \"cluster_size\": 4096}",
		  "options: unknown key 'cluster_size'" },
	};
	struct json_object *o;
	char buf[512];

	add_file_node("bad.qcow2", "cf");
	snprintf(buf, sizeof(buf), "{\"driver\": \"file\", \"filename\": \"%s\", \"node-name\": "
		 "\"ro\", \"read-only\": true}", imgfx_path("bad.qcow2"));
	o = json_tokener_parse(buf);
	assert_non_null(blockdev_add(o, "blockdev-add", NULL));
	json_object_put(o);
	nr_events = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct error *err = NULL;

		if (qmp_create(&err, "{\"job-id\": \"bad\", \"options\": %s}", bad[i].options) == 0)
			fail_msg("accepted: %s", bad[i].options);
		if (strcmp(error_msg(err), bad[i].msg))
			fail_msg("%s: '%s', not '%s'", bad[i].options, error_msg(err), bad[i].msg);
		error_free(err);
		assert_null(job_find("bad"));
	}
	assert_int_equal(nr_events, 0); /* refused before a job existed */
	assert_int_equal(blockdev_check_unused(blockdev_find_node("cf"), NULL), 0);
	assert_int_equal(blockdev_node_del("ro", NULL), 0);
	assert_int_equal(blockdev_node_del("cf", NULL), 0);
}

static void create_is_a_plain_job_that_waits_for_dismiss(void **state)
{
	/* QEMU's states of a failed job */
	static const char *const want[] = { "created", "running", "aborting", "concluded", NULL };
	static const char *const want_null[] = { "created", "running", "aborting", "concluded",
						 "null", NULL };
	struct json_object *list, *j, *v;
	struct error *err = NULL;
	char msg[300];

	nr_events = 0;
	/* a creation that fails fails the job, which concludes and waits all the same */
	assert_int_equal(qmp_create(NULL, "{\"job-id\": \"cx\", \"options\": {\"driver\": "
				    "\"file\", \"filename\": \"%s\", \"size\": 0}}",
				    imgfx_path("nodir/x.img")),
			 0);
	wait_for("cx", JOB_STATUS_CONCLUDED);
	for (int i = 0; i < 20; i++) { /* a dismissable job never moves on by itself */
		poll(NULL, 0, 5);
		job_manager_poll();
	}
	assert_events(want);
	list = job_query_jobs();
	j = json_object_array_get_idx(list, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(j, "type")), "create");
	assert_string_equal(json_object_get_string(json_object_object_get(j, "status")),
			    "concluded");
	assert_int_equal(json_object_get_int(json_object_object_get(j, "current-progress")), 1);
	assert_int_equal(json_object_get_int(json_object_object_get(j, "total-progress")), 1);
	assert_true(json_object_object_get_ex(j, "error", &v));
	snprintf(msg, sizeof(msg), "Could not create '%s': No such file or directory",
		 imgfx_path("nodir/x.img"));
	assert_string_equal(json_object_get_string(v), msg);
	json_object_put(list);
	/* not a block job: query-block-jobs and the block-job-* verbs do not see it */
	list = job_query_block_jobs();
	assert_int_equal(json_object_array_length(list), 0);
	json_object_put(list);
	list = json_tokener_parse("{\"device\": \"cx\"}");
	assert_int_equal(job_qmp_block_job_cancel(NULL, list, NULL, &err), -1);
	assert_string_equal(error_msg(err), "Block job 'cx' not found");
	error_free(err);
	err = NULL;
	json_object_put(list);
	/* the id stays taken until job-dismiss */
	assert_int_equal(qmp_create(&err, "{\"job-id\": \"cx\", \"options\": {\"driver\": "
				    "\"file\", \"filename\": \"%s\", \"size\": 0}}", imgfx_path("y.img")),
			 -1);
	assert_string_equal(error_msg(err), "Job ID 'cx' already in use");
	error_free(err);
	assert_int_equal(job_dismiss(job_find("cx"), NULL), 0);
	job_manager_poll();
	assert_events(want_null);
	assert_null(job_find("cx"));
	assert_int_equal(access(imgfx_path("y.img"), F_OK), -1);
}

static void *shutdown_thread(void *arg)
{
	job_manager_shutdown();
	return arg;
}

/*
 * quit with jobs that are not stepping at that moment (a READY mirror, a stream waiting for its
 * speed): job_manager_shutdown() cancels them and returns once each was aborted, instead of
 * waiting for a step that never comes (vireo hung in quit).
 */
static void shutdown_cancels_a_ready_mirror_and_a_throttled_stream(void **state)
{
	struct blockdev *top = make_chain(), *target, *other;
	struct job_mirror_opts mo = { .sync = JOB_MIRROR_SYNC_FULL };
	struct job_opts so = { .id = "slow", .speed = 1, .auto_finalize = true,
			       .auto_dismiss = true };
	struct error *err = NULL;
	struct timespec ts;
	pthread_t t;

	make_qcow2("target.qcow2", NULL, NULL);
	target = open_img("target.qcow2", "target", false);
	if (!job_mirror_start(&auto_opts, top, target, &mo, &err))
		fail_msg("mirror: %s", error_msg(err));
	wait_for("j0", JOB_STATUS_READY);
	make_qcow2("other.qcow2", "mid.qcow2", "qcow2");
	other = open_img("other.qcow2", "other", false);
	if (!job_stream_start(&so, other, NULL, NULL, &err))
		fail_msg("stream: %s", error_msg(err));
	wait_for("slow", JOB_STATUS_RUNNING);
	assert_int_equal(pthread_create(&t, NULL, shutdown_thread, NULL), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	if (pthread_timedjoin_np(t, NULL, &ts))
		fail_msg("job_manager_shutdown() did not return in 20 s");
	assert_null(job_find("j0"));
	assert_null(job_find("slow"));
	assert_int_equal(job_manager_init(emit, NULL, NULL), 0); /* for the tests after this one */
	blockdev_close(other);
	blockdev_close(target);
	blockdev_close(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stream_takes_in_the_chain_down_to_a_base),
		cmocka_unit_test(stream_of_the_whole_chain_leaves_no_backing),
		cmocka_unit_test(commit_writes_an_intermediate_image_into_its_base),
		cmocka_unit_test(pause_resume_and_cancel_follow_qemus_states),
		cmocka_unit_test(manual_finalize_and_dismiss_wait_for_their_verbs),
		cmocka_unit_test(jobs_refuse_busy_nodes_bad_chains_and_active_commit),
		cmocka_unit_test(mirror_follows_writes_and_moves_the_device_on_complete),
		cmocka_unit_test(active_commit_moves_the_device_onto_the_base),
		cmocka_unit_test(file_then_qcow2_with_each_option_set),
		cmocka_unit_test(qcow2_with_a_backing_file_a_data_file_and_a_nested_file),
		cmocka_unit_test(create_refuses_bad_options_by_name),
		cmocka_unit_test(create_is_a_plain_job_that_waits_for_dismiss),
		cmocka_unit_test(backup_copies_what_the_bitmap_marks_and_settles_it),
		cmocka_unit_test(steps_smaller_than_a_granule_still_finish),
		cmocka_unit_test(shutdown_cancels_a_ready_mirror_and_a_throttled_stream),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
