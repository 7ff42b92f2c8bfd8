/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-scsi from the command line (vmm/scsi.c through drive.c's --device and --drive):
 * controllers with their queue mapping, several LUNs and controllers, if=scsi, bad keys,
 * buses, duplicate addresses and ids refused by name; resize and removal by id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "devices/pci.h"
#include "devices/virtio_scsi.h"
#include "vmm/drive.h"
#include "control/block_nodes.h"
#include "control/iothread_obj.h"
#include "vmm/layout.h"
#include "vmm/scsi.h"
#include "vmm/vm.h"
#include "vpci_fixture.h"

static char path[2][64];

static int setup(void **state)
{
	for (int i = 0; i < 2; i++) {
		int fd;

		snprintf(path[i], sizeof(path[i]), "/tmp/vireo-scsibus-XXXXXX");
		fd = mkstemp(path[i]);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 1 << 20), 0);
		close(fd);
	}
	return 0;
}

static int teardown(void **state)
{
	unlink(path[0]);
	unlink(path[1]);
	return 0;
}

static void rig_up(struct vm *vm, struct pci_bus *pci)
{
	vpcifx_vm_init(vm, 16 << 20);
	assert_int_equal(pci_bus_init(pci, &vm->mmio, &vm->pio, &layout_pci_bus, NULL), 0);
}

static void rig_down(struct vm *vm, struct pci_bus *pci)
{
	drive_cleanup();
	pci_bus_destroy(pci);
	vpcifx_vm_destroy(vm);
}

static void device_ok(struct vm *vm, struct pci_bus *pci, const char *spec)
{
	struct error *err = NULL;

	if (drive_device_add(vm, pci, spec, &err) < 0)
		fail_msg("--device %s: %s", spec, error_msg(err));
}

static void device_fails(struct vm *vm, struct pci_bus *pci, const char *want, const char *spec)
{
	struct error *err = NULL;

	assert_int_equal(drive_device_add(vm, pci, spec, &err), -1);
	if (!strstr(error_msg(err), want))
		fail_msg("--device %s: '%s' lacks '%s'", spec, error_msg(err), want);
	error_free(err);
}

static void node(const char *name, int file, bool ro)
{
	char spec[200];

	snprintf(spec, sizeof(spec), "driver=raw,node-name=%s,read-only=%s,file.driver=file,"
		 "file.filename=%s", name, ro ? "on" : "off", path[file]);
	assert_int_equal(block_nodes_add_spec(spec, NULL), 0);
}

static void controllers_and_luns_from_device_options(void **state)
{
	static struct vm vm;
	struct pci_bus pci;
	struct vioq_status st;
	struct error *err = NULL;

	rig_up(&vm, &pci);
	assert_int_equal(iothread_obj_add_spec("iothread,id=a,poll-max-ns=0", NULL), 0);
	assert_int_equal(iothread_obj_add_spec("iothread,id=b,poll-max-ns=0", NULL), 0);
	node("d0", 0, false);
	node("d1", 1, false);
	node("r0", 0, true);
	device_fails(&vm, &pci, "no virtio-scsi controller", "scsi-hd,drive=d0");
	device_fails(&vm, &pci, "needs an id=", "virtio-scsi-pci,num-queues=2");
	device_fails(&vm, &pci, "'foo'", "virtio-scsi-pci,id=scsi0,foo=1");
	device_fails(&vm, &pci, "iothread-vq-mapping lists 2 iothreads for 1 queues",
		     "virtio-scsi-pci,id=scsi0,num-queues=1,iothread-vq-mapping=a:b");
	device_ok(&vm, &pci, "virtio-scsi-pci,id=scsi0,num-queues=4,iothread-vq-mapping=a:b");
	assert_int_equal(pci_cfg_read(&pci, 1, 0, 0, 4), 0x10481af4);
	assert_int_equal(scsibus_nr_controllers(), 1);
	assert_int_equal(vscsi_nr_queues(scsibus_controller(0)), 4);
	/* control and event on the first request queue's iothread, requests round-robin */
	assert_int_equal(vscsi_queue_status(scsibus_controller(0), 0, &st, NULL), 0);
	assert_string_equal(st.iothread, "a");
	assert_int_equal(vscsi_queue_status(scsibus_controller(0), 3, &st, NULL), 0);
	assert_string_equal(st.iothread, "b");
	assert_int_equal(vscsi_queue_status(scsibus_controller(0), 6, &st, NULL), -1);
	device_fails(&vm, &pci, "id 'scsi0' is already in use", "virtio-scsi-pci,id=scsi0");
	device_ok(&vm, &pci, "scsi-hd,drive=d0,bus=scsi0.0,lun=0");
	device_ok(&vm, &pci, "scsi-hd,drive=d1,bus=scsi0.0,lun=3,id=hd1,serial=SER,"
		  "wwn=0x5000c50015ea71ac");
	assert_int_equal(scsibus_nr_disks(), 2);
	assert_string_equal(scsibus_disk_id(0), "scsi0-0-0");
	assert_string_equal(scsibus_disk_id(1), "hd1");
	device_fails(&vm, &pci, "target 0 lun 3 is already in use",
		     "scsi-hd,drive=r0,bus=scsi0.0,lun=3");
	device_fails(&vm, &pci, "bus 'nope.0' not found", "scsi-hd,drive=r0,bus=nope.0");
	device_fails(&vm, &pci, "lun=20000 is out of range", "scsi-hd,drive=r0,lun=20000");
	device_fails(&vm, &pci, "scsi-id=256 is out of range", "scsi-hd,drive=r0,scsi-id=256");
	device_fails(&vm, &pci, "channel=1", "scsi-hd,drive=r0,channel=1");
	device_fails(&vm, &pci, "'bogus'", "scsi-hd,drive=r0,bogus=1");
	device_fails(&vm, &pci, "wwn", "scsi-hd,drive=r0,lun=9,wwn=xyz");
	device_fails(&vm, &pci, "drive=nosuch", "scsi-hd,drive=nosuch,lun=9");
	device_fails(&vm, &pci, "drive= (the node to serve) is missing", "scsi-hd,lun=9");
	device_fails(&vm, &pci, "id 'hd1' is already in use", "scsi-hd,drive=r0,lun=9,id=hd1");
	device_fails(&vm, &pci, "id 'hd1' is already in use", "virtio-blk-pci,drive=r0,id=hd1");
	device_fails(&vm, &pci, "writ", "scsi-hd,drive=d0,bus=scsi0.0,lun=5");
	/* a second controller: bus= becomes needed */
	device_ok(&vm, &pci, "virtio-scsi-pci,id=scsi1,iothread=b");
	device_fails(&vm, &pci, "bus= is missing", "scsi-hd,drive=r0,lun=9");
	device_ok(&vm, &pci, "scsi-hd,drive=r0,bus=scsi1.0,scsi-id=2,lun=1,id=ro");
	/* resize and removal by id */
	assert_int_equal(drive_block_resize("hd1", NULL, 2 << 20, &err), 0);
	assert_int_equal(blockdev_find_node("d1")->size, 2 << 20);
	assert_int_equal(drive_block_resize(NULL, "d1", 3 << 20, NULL), 0);
	assert_int_equal(blockdev_find_node("d1")->size, 3 << 20);
	assert_int_equal(scsibus_device_del("hd1", NULL), 0);
	assert_int_equal(scsibus_device_del("hd1", NULL), 1);
	assert_int_equal(scsibus_device_del("scsi1", &err), -1);
	assert_non_null(strstr(error_msg(err), "cannot be hot-unplugged"));
	error_free(err);
	assert_int_equal(scsibus_nr_disks(), 2);
	rig_down(&vm, &pci);
	assert_int_equal(scsibus_nr_controllers(), 0);
	assert_null(blockdev_find_node("d0"));
}

static void if_scsi_drives_share_one_controller(void **state)
{
	static struct vm vm;
	struct pci_bus pci;
	struct error *err = NULL;
	char spec[200];

	rig_up(&vm, &pci);
	for (int i = 0; i < 2; i++) {
		snprintf(spec, sizeof(spec), "file=%s,if=scsi,num-queues=2,iothreads=2", path[i]);
		if (drive_add(&vm, &pci, spec, &err) < 0)
			fail_msg("--drive %s: %s", spec, error_msg(err));
	}
	assert_int_equal(drive_count(), 0);
	assert_int_equal(scsibus_nr_controllers(), 1);
	assert_string_equal(scsibus_controller_id(0), "scsi0");
	assert_int_equal(vscsi_nr_queues(scsibus_controller(0)), 2);
	assert_int_equal(scsibus_nr_disks(), 2);
	assert_string_equal(scsibus_disk_id(1), "scsi-hd1");
	snprintf(spec, sizeof(spec), "file=%s,if=ide", path[0]);
	assert_int_equal(drive_add(&vm, &pci, spec, &err), -1);
	assert_non_null(strstr(error_msg(err), "expected virtio-blk or scsi"));
	error_free(err);
	rig_down(&vm, &pci);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(controllers_and_luns_from_device_options),
		cmocka_unit_test(if_scsi_drives_share_one_controller),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
