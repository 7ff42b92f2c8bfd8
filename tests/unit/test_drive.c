/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "blockdev/qcow2.h"
#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "vmm/drive.h"
#include "control/block_nodes.h"
#include "control/iothread_obj.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

static char path[64];
static char comma_path[80];
static char qpath[80];

static int setup(void **state)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/vireo-drive-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(comma_path, sizeof(comma_path), "%s,x", path);
	snprintf(qpath, sizeof(qpath), "%s.qcow2", path);
	fd = open(comma_path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	unlink(comma_path);
	unlink(qpath);
	return 0;
}

static struct drive_config cfg;

/* A VM without KVM (the transport skips ioeventfd/irqfd wiring) with a PCI bus. */
static void rig_up(struct vm *vm, struct pci_bus *pci)
{
	assert_int_equal(gmem_init(&vm->mem, 16 << 20, false), 0);
	vm->vm_fd = -1;
	bus_init(&vm->mmio, "mmio");
	bus_init(&vm->pio, "pio");
	assert_int_equal(pci_bus_init(pci, &vm->mmio, &vm->pio, &layout_pci_bus, NULL), 0);
}

static void rig_down(struct vm *vm, struct pci_bus *pci)
{
	pci_bus_destroy(pci);
	bus_destroy(&vm->mmio);
	bus_destroy(&vm->pio);
	gmem_destroy(&vm->mem);
}

static void parse_ok(const char *fmt, ...)
{
	char spec[512];
	struct error *err = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(spec, sizeof(spec), fmt, ap);
	va_end(ap);
	if (drive_parse(spec, &cfg, &err) < 0)
		fail_msg("'%s' refused: %s", spec, error_msg(err));
}

/* The spec must be refused with a message containing @needle. */
static void parse_fails(const char *needle, const char *fmt, ...)
{
	char spec[512];
	struct error *err = NULL;
	struct drive_config c;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(spec, sizeof(spec), fmt, ap);
	va_end(ap);
	assert_int_equal(drive_parse(spec, &c, &err), -1);
	assert_non_null(err);
	if (!strstr(error_msg(err), needle))
		fail_msg("'%s': message '%s' does not mention '%s'", spec, error_msg(err), needle);
	error_free(err);
}

static void defaults_are_filled_in(void **state)
{
	parse_ok("file=%s", path);
	assert_string_equal(cfg.file, path);
	assert_string_equal(cfg.format, "raw");
	assert_int_equal(cfg.num_queues, 1);
	assert_int_equal(cfg.iothreads, 1);
	assert_int_equal(cfg.queue_size, 256);
	assert_false(cfg.cache_none);
	assert_false(cfg.readonly);
	assert_null(cfg.serial);
	assert_int_equal(cfg.poll_max_ns, IOTHREAD_POLL_MAX_NS_DEFAULT);
	assert_int_equal(cfg.poll_max_ns, 131072);
	assert_int_equal(cfg.poll_grow, 2);
	assert_int_equal(cfg.poll_shrink, IOTHREAD_POLL_SHRINK_DEFAULT);
	assert_false(cfg.poll_keep);
	assert_false(cfg.iothread_nice_set); /* the iothreads keep the nice value vireo has */
	assert_false(cfg.register_memory);
	drive_config_free(&cfg);
}

static void every_key_is_parsed(void **state)
{
	parse_ok("file=%s,format=raw,if=virtio-blk,num-queues=4,iothreads=2,cache=none,"
		 "readonly=on,serial=disk-1,poll-max-ns=0,queue-size=128,poll-backoff=off,"
		 "register-memory=on,submit=batched,poll-grow=4,poll-shrink=0,iothread-nice=-5", path);
	assert_int_equal(cfg.num_queues, 4);
	assert_int_equal(cfg.iothreads, 2);
	assert_true(cfg.cache_none);
	assert_true(cfg.readonly);
	assert_string_equal(cfg.serial, "disk-1");
	assert_int_equal(cfg.poll_max_ns, 0);
	assert_true(cfg.poll_max_ns_set);
	assert_true(cfg.poll_keep);
	assert_true(cfg.poll_keep_set);
	assert_true(cfg.register_memory);
	assert_int_equal(cfg.driver_opts.submit, BLOCKDEV_SUBMIT_BATCHED);
	assert_int_equal(cfg.poll_grow, 4);
	assert_int_equal(cfg.poll_shrink, 0);
	assert_true(cfg.poll_grow_set && cfg.poll_shrink_set);
	assert_int_equal(cfg.iothread_nice, -5);
	assert_true(cfg.iothread_nice_set);
	assert_int_equal(cfg.queue_size, 128);
	/* default mapping: queue i on iothread i mod N */
	assert_int_equal(cfg.vq_map[0], 0);
	assert_int_equal(cfg.vq_map[1], 1);
	assert_int_equal(cfg.vq_map[2], 0);
	assert_int_equal(cfg.vq_map[3], 1);
	drive_config_free(&cfg);
}

static void explicit_queue_mapping_is_used_and_checked(void **state)
{
	parse_ok("file=%s,num-queues=3,iothreads=2,iothread-vq-mapping=1:1:0", path);
	assert_int_equal(cfg.vq_map[0], 1);
	assert_int_equal(cfg.vq_map[1], 1);
	assert_int_equal(cfg.vq_map[2], 0);
	drive_config_free(&cfg);
	parse_fails("iothread-vq-mapping lists 2 queues",
		    "file=%s,num-queues=3,iothreads=2,iothread-vq-mapping=0:1", path);
	parse_fails("names iothread 2", "file=%s,num-queues=2,iothreads=2,iothread-vq-mapping=0:2",
		    path);
	parse_fails("iothread-vq-mapping", "file=%s,iothread-vq-mapping=0:x", path);
	parse_fails("iothread-vq-mapping", "file=%s,iothread-vq-mapping=", path);
}

static void bad_values_name_their_key(void **state)
{
	parse_fails("num-queues", "file=%s,num-queues=0", path);
	parse_fails("num-queues", "file=%s,num-queues=many", path);
	parse_fails("iothreads", "file=%s,iothreads=0", path);
	parse_fails("queue-size", "file=%s,queue-size=100", path);
	parse_fails("queue-size", "file=%s,queue-size=65536", path);
	parse_fails("cache", "file=%s,cache=directsync", path);
	parse_fails("readonly", "file=%s,readonly=maybe", path);
	parse_fails("serial", "file=%s,serial=123456789012345678901", path);
	parse_fails("if", "file=%s,if=ide", path);
	parse_fails("format", "file=%s,format=qed", path);
	parse_fails("poll-max-ns", "file=%s,poll-max-ns=-1", path);
	parse_fails("poll-backoff", "file=%s,poll-backoff=sometimes", path);
	parse_fails("register-memory", "file=%s,register-memory=pinned", path);
	parse_fails("submit", "file=%s,submit=now", path);
	parse_fails("poll-grow", "file=%s,poll-grow=1025", path);
	parse_fails("poll-shrink", "file=%s,poll-shrink=-2", path);
	parse_fails("iothread-nice", "file=%s,iothread-nice=-21", path);
	parse_fails("iothread-nice", "file=%s,iothread-nice=low", path);
	parse_fails("not key=value", "file=%s,readonly", path);
}

static void unknown_keys_are_kept_for_the_driver(void **state)
{
	parse_ok("file=%s,l2-cache-size=1M,metadata-barriers=off,l2-cache-size=2M", path);
	assert_int_equal(cfg.driver_opts.nr_extra, 2);
	assert_string_equal(cfg.driver_opts.extra[0].key, "l2-cache-size");
	assert_string_equal(cfg.driver_opts.extra[0].value, "2M");
	assert_string_equal(cfg.driver_opts.extra[1].key, "metadata-barriers");
	assert_string_equal(cfg.driver_opts.extra[1].value, "off");
	drive_config_free(&cfg);
	assert_int_equal(cfg.driver_opts.nr_extra, 0);
	parse_fails("empty key", "file=%s,=1", path);
}

static void missing_or_absent_files_are_refused(void **state)
{
	parse_fails("file= is missing", "num-queues=2");
	parse_fails("/nonexistent/disk.img", "file=/nonexistent/disk.img");
	parse_fails("neither a regular file", "file=/tmp");
	parse_fails("file", "file=,num-queues=1");
}

static void double_comma_is_a_literal_comma(void **state)
{
	char spec[128];
	char *o = spec;

	/* the path holds a comma: write it doubled */
	for (const char *p = comma_path; *p; p++) {
		if (*p == ',')
			*o++ = ',';
		*o++ = *p;
	}
	*o = '\0';
	parse_ok("file=%s,serial=a,,b", spec);
	assert_string_equal(cfg.file, comma_path);
	assert_string_equal(cfg.serial, "a,b");
	drive_config_free(&cfg);
}

/* drive_add() of the formatted spec fails with a message holding @want. */
static void __attribute__((format(printf, 4, 5)))
add_fails(struct vm *vm, struct pci_bus *pci, const char *want, const char *fmt, ...)
{
	struct error *err = NULL;
	char spec[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(spec, sizeof(spec), fmt, ap);
	va_end(ap);
	if (drive_add(vm, pci, spec, &err) != -1)
		fail_msg("drive_add(%s) succeeded", spec);
	if (!strstr(error_msg(err), want))
		fail_msg("drive_add(%s): '%s' does not say '%s'", spec, error_msg(err), want);
	error_free(err);
}

static void drive_add_plugs_a_virtio_blk_function_and_shares_iothreads(void **state)
{
	static struct vm vm;
	struct pci_bus pci;
	struct qcow2_create_opts qo = { .size = 1 << 20, .cluster_bits = 16, .version = 3,
					.refcount_bits = 16 };
	struct error *err = NULL;
	char spec[256];

	rig_up(&vm, &pci);
	snprintf(spec, sizeof(spec), "file=%s,num-queues=2,iothreads=2,poll-max-ns=1000", path);
	if (drive_add(&vm, &pci, spec, &err) < 0)
		fail_msg("drive_add: %s", error_msg(err));
	assert_int_equal(pci_cfg_read(&pci, 1, 0, 0, 4), 0x10421af4);
	/* a second drive on the same iothreads with another poll-max-ns is refused */
	add_fails(&vm, &pci, "shared", "file=%s,iothreads=1,poll-max-ns=5", path);
	/* ... and so is one that wants polling kept where io0 backs off */
	add_fails(&vm, &pci, "poll-backoff=off, but iothread io0 is shared with an earlier drive "
		  "that set on", "file=%s,iothreads=1,poll-backoff=off", path);
	add_fails(&vm, &pci, "poll-shrink=0, but iothread io0 is shared with an earlier drive "
		  "that set 2", "file=%s,iothreads=1,poll-shrink=0", path);
	add_fails(&vm, &pci, "poll-grow=3", "file=%s,iothreads=1,poll-grow=3", path);
	add_fails(&vm, &pci, "iothread-nice=3, but iothread io0 is shared with an earlier drive "
		  "that set none", "file=%s,iothreads=1,iothread-nice=3", path);
	/* poll-grow=0 and 2 both mean the default factor the first drive has: shared */
	snprintf(spec, sizeof(spec), "file=%s,readonly=on,poll-max-ns=1000,poll-grow=0", path);
	if (drive_add(&vm, &pci, spec, &err) < 0)
		fail_msg("poll-grow=0 on a shared iothread: %s", error_msg(err));
	snprintf(spec, sizeof(spec), "file=%s,readonly=on,poll-max-ns=1000,poll-grow=2", path);
	if (drive_add(&vm, &pci, spec, &err) < 0)
		fail_msg("poll-grow=2 on a shared iothread: %s", error_msg(err));
	/* without poll settings it shares them, and may register guest RAM with them */
	snprintf(spec, sizeof(spec), "file=%s,readonly=on,register-memory=on", path);
	assert_int_equal(drive_add(&vm, &pci, spec, NULL), 0);
	assert_int_equal(pci_cfg_read(&pci, 4, 0, 0, 4), 0x10421af4);
	add_fails(&vm, &pci, "--drive: file=/nonexistent", "file=/nonexistent");
	/* driver options reach the format: raw takes none, qcow2 takes its own and no other */
	add_fails(&vm, &pci, "format 'raw' does not support the option 'l2-cache-size'",
		  "file=%s,l2-cache-size=1M", path);
	if (qcow2_create(qpath, &qo, &err) < 0)
		fail_msg("qcow2_create: %s", error_msg(err));
	snprintf(spec, sizeof(spec), "file=%s,format=qcow2,l2-cache-size=1M,metadata-barriers=off",
		 qpath);
	if (drive_add(&vm, &pci, spec, &err) < 0)
		fail_msg("qcow2 with its options: %s", error_msg(err));
	add_fails(&vm, &pci, "'bogus'", "file=%s,format=qcow2,bogus=1", qpath);
	drive_cleanup();
	assert_int_equal(pci_cfg_read(&pci, 1, 0, 0, 4), 0xffffffff);
	rig_down(&vm, &pci);
}

/* the formatted --device / --blockdev / --object spec fails with a message holding @want */
static void __attribute__((format(printf, 5, 6)))
setup_fails(struct vm *vm, struct pci_bus *pci, int kind, const char *want, const char *fmt, ...)
{
	struct error *err = NULL;
	char spec[512];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(spec, sizeof(spec), fmt, ap);
	va_end(ap);
	ret = kind == 'D' ? drive_device_add(vm, pci, spec, &err) :
	      kind == 'b' ? block_nodes_add_spec(spec, &err) : iothread_obj_add_spec(spec, &err);
	if (ret != -1)
		fail_msg("'%s' succeeded", spec);
	if (!strstr(error_msg(err), want))
		fail_msg("'%s': '%s' does not say '%s'", spec, error_msg(err), want);
	error_free(err);
}

/* the iothreads serving device @i's queues, in queue order, are @want ("a:b:...") */
static void assert_queues_on(unsigned int i, const char *want)
{
	struct vblk *b = drive_device(i);
	char got[256] = "";

	for (unsigned int q = 0; q < vblk_nr_queues(b); q++) {
		struct vioq_status st;

		assert_int_equal(vblk_queue_status(b, q, &st, NULL), 0);
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", q ? ":" : "",
			 st.iothread);
	}
	assert_string_equal(got, want);
}

static void blockdev_object_and_device_build_a_disk_and_refuse_bad_keys(void **state)
{
	static struct vm vm;
	struct pci_bus pci;
	struct error *err = NULL;
	char spec[256];

	rig_up(&vm, &pci);
	assert_int_equal(iothread_obj_add_spec("iothread,id=a,poll-max-ns=0,nice=0", NULL), 0);
	assert_int_equal(iothread_obj_add_spec("{\"qom-type\": \"iothread\", \"id\": \"b\", "
					       "\"poll-grow\": 4}", NULL), 0);
	assert_int_equal(iothread_obj_find("b")->opts.poll_grow, 4);
	assert_false(iothread_obj_find("a")->opts.poll_max_ns);
	setup_fails(&vm, &pci, 'o', "--object: id 'a' is already in use", "iothread,id=a");
	setup_fails(&vm, &pci, 'o', "nice", "iothread,id=c,nice=-30");
	setup_fails(&vm, &pci, 'o', "unknown key 'poll'", "iothread,id=c,poll=1");
	setup_fails(&vm, &pci, 'o', "needs an id", "iothread");
	snprintf(spec, sizeof(spec), "driver=raw,node-name=d0,file.driver=file,file.filename=%s",
		 path);
	if (block_nodes_add_spec(spec, &err) < 0)
		fail_msg("--blockdev: %s", error_msg(err));
	setup_fails(&vm, &pci, 'b', "--blockdev", "driver=raw,node-name=d1,file=nosuch");
	setup_fails(&vm, &pci, 'b', "--blockdev", "driver=raw,,node-name=x");
	if (drive_device_add(&vm, &pci, "virtio-blk-pci,drive=d0,id=disk,num-queues=2,"
			     "iothread-vq-mapping=a:b,serial=s1", &err) < 0)
		fail_msg("--device: %s", error_msg(err));
	assert_int_equal(pci_cfg_read(&pci, 1, 0, 0, 4), 0x10421af4);
	assert_string_equal(drive_name(0), "disk");
	setup_fails(&vm, &pci, 'D', "needs write, which disk, using it already, does not share",
		    "virtio-blk-pci,drive=d0");
	setup_fails(&vm, &pci, 'D', "iothread-vq-mapping lists 2 iothreads for 1 queues",
		    "virtio-blk-pci,drive=d0,num-queues=1,iothread-vq-mapping=a:b");
	setup_fails(&vm, &pci, 'D', "give \"vqs\" on every entry or on none",
		    "{\"driver\": \"virtio-blk-pci\", \"drive\": \"d0\", \"iothread-vq-mapping\": "
		    "[{\"iothread\": \"a\", \"vqs\": [0]}, {\"iothread\": \"b\"}]}");
	setup_fails(&vm, &pci, 'D', "vqs of 'a': 5 is not a queue of the device (0..1)",
		    "{\"driver\": \"virtio-blk-pci\", \"drive\": \"d0\", \"num-queues\": 2, "
		    "\"iothread-vq-mapping\": [{\"iothread\": \"a\", \"vqs\": [0, 5]}]}");
	setup_fails(&vm, &pci, 'D', "queue 0 is mapped twice ('a' and 'b')",
		    "{\"driver\": \"virtio-blk-pci\", \"drive\": \"d0\", \"iothread-vq-mapping\": "
		    "[{\"iothread\": \"a\", \"vqs\": [0]}, {\"iothread\": \"b\", \"vqs\": [0]}]}");
	setup_fails(&vm, &pci, 'D', "queue 1 has no iothread",
		    "{\"driver\": \"virtio-blk-pci\", \"drive\": \"d0\", \"num-queues\": 3, "
		    "\"iothread-vq-mapping\": [{\"iothread\": \"a\", \"vqs\": [0]}, "
		    "{\"iothread\": \"b\", \"vqs\": [2]}]}");
	setup_fails(&vm, &pci, 'D', "entry 0 is not an iothread id",
		    "{\"driver\": \"virtio-blk-pci\", \"drive\": \"d0\", \"iothread-vq-mapping\": "
		    "[{\"iothread\": \"a\", \"queues\": [0]}]}");
	setup_fails(&vm, &pci, 'D', "exclude each other",
		    "virtio-blk-pci,drive=d0,iothread=a,iothread-vq-mapping=a");
	setup_fails(&vm, &pci, 'D', "queue-size=100", "virtio-blk-pci,drive=d0,queue-size=100");
	setup_fails(&vm, &pci, 'D', "longer than 20 bytes",
		    "virtio-blk-pci,drive=d0,serial=123456789012345678901");
	setup_fails(&vm, &pci, 'D', "drive= (the node to serve) is missing", "virtio-blk-pci");
	setup_fails(&vm, &pci, 'D', "'virtio-net-pci' is not supported", "virtio-net-pci");
	setup_fails(&vm, &pci, 'D', "entry 1 is not an iothread id",
		    "{\"driver\": \"virtio-blk-pci\", \"drive\": \"d0\", "
		    "\"iothread-vq-mapping\": [{\"iothread\": \"a\"}, 3]}");
	/* a second device may read it when the first does not write: a read-only node */
	snprintf(spec, sizeof(spec), "driver=raw,node-name=r0,read-only=on,file.driver=file,"
		 "file.filename=%s", path);
	assert_int_equal(block_nodes_add_spec(spec, NULL), 0);
	assert_int_equal(drive_device_add(&vm, &pci, "virtio-blk-pci,drive=r0", NULL), 0);
	assert_int_equal(drive_device_add(&vm, &pci, "virtio-blk-pci,drive=r0,id=disk2,"
					  "iothread=b", NULL), 0);
	setup_fails(&vm, &pci, 'D', "id 'disk2' is already in use",
		    "virtio-blk-pci,drive=r0,id=disk2");
	/* as QEMU: without vqs, the queues go round-robin over the iothreads listed; with them,
	 * each queue where it is named */
	assert_int_equal(drive_device_add(&vm, &pci, "virtio-blk-pci,drive=r0,id=rr,num-queues=4,"
					  "iothread-vq-mapping=a:b", NULL), 0);
	assert_queues_on(drive_count() - 1, "a:b:a:b");
	assert_int_equal(drive_device_add(&vm, &pci, "{\"driver\": \"virtio-blk-pci\", "
					  "\"drive\": \"r0\", \"id\": \"vq\", "
					  "\"iothread-vq-mapping\": [{\"iothread\": \"b\", "
					  "\"vqs\": [0, 2]}, {\"iothread\": \"a\", \"vqs\": [1]}]}",
					  NULL), 0);
	assert_queues_on(drive_count() - 1, "b:a:b");
	drive_cleanup();
	assert_null(iothread_obj_find("a"));
	assert_null(blockdev_find_node("d0"));
	assert_null(blockdev_find_node("r0"));
	rig_down(&vm, &pci);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_are_filled_in),
		cmocka_unit_test(every_key_is_parsed),
		cmocka_unit_test(explicit_queue_mapping_is_used_and_checked),
		cmocka_unit_test(bad_values_name_their_key),
		cmocka_unit_test(unknown_keys_are_kept_for_the_driver),
		cmocka_unit_test(missing_or_absent_files_are_refused),
		cmocka_unit_test(double_comma_is_a_literal_comma),
		cmocka_unit_test(drive_add_plugs_a_virtio_blk_function_and_shares_iothreads),
		cmocka_unit_test(blockdev_object_and_device_build_a_disk_and_refuse_bad_keys),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
