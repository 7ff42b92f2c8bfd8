/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-scsi controllers and disks from the command line and QMP; the syntax is in scsi.h. */
#include "vmm/scsi.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "common/keyval.h"
#include "common/parse.h"
#include "common/util.h"
#include "devices/pci.h"
#include "devices/scsi_disk.h"
#include "devices/virtio_scsi.h"
#include "vmm/devopts.h"
#include "vmm/drive.h"
#include "vmm/vm.h"

#define SCSIBUS_MAX_CTLS 8
#define SCSIBUS_MAX_DISKS 64
#define ID_MAX 32

struct scsi_ctl {
	char id[ID_MAX];
	struct vscsi *dev;
	struct pci_bus *bus;
};

struct scsi_hd {
	char id[ID_MAX];
	struct scsi_ctl *ctl;
	struct blockdev *bs;       /* a reference of the disk's own */
	struct blockdev_user user; /* registered with the node: the struct does not move */
	struct vscsi_lun *lun;
};

static struct scsi_ctl ctls[SCSIBUS_MAX_CTLS];
static unsigned int nr_ctls;
static struct scsi_hd *hds[SCSIBUS_MAX_DISKS];
static unsigned int nr_hds;
static unsigned int nr_if_scsi; /* --drive if=scsi disks made, for their targets */

bool scsibus_handles(const char *driver)
{
	return driver && (!strcmp(driver, "virtio-scsi-pci") || !strcmp(driver, "scsi-hd"));
}

bool scsibus_id_in_use(const char *id)
{
	for (unsigned int i = 0; i < nr_ctls; i++)
		if (!strcmp(ctls[i].id, id))
			return true;
	for (unsigned int i = 0; i < nr_hds; i++)
		if (!strcmp(hds[i]->id, id))
			return true;
	return false;
}

/* @id is free among every device of the VM, and a valid id. */
static int id_check(const char *id, struct error **errp)
{
	if (!blockdev_node_name_valid(id) || strlen(id) >= ID_MAX) {
		error_setg(errp, "id '%s': must start with a letter and hold at most %d letters, "
			   "digits, '-', '.' or '_'", id, ID_MAX - 1);
		return -1;
	}
	for (unsigned int i = 0; i < drive_count(); i++) {
		if (!strcmp(drive_name(i), id)) {
			error_setg(errp, "id '%s' is already in use", id);
			return -1;
		}
	}
	if (scsibus_id_in_use(id)) {
		error_setg(errp, "id '%s' is already in use", id);
		return -1;
	}
	return 0;
}

static struct scsi_ctl *ctl_new(struct vm *vm, struct pci_bus *bus, const char *id,
				const struct vscsi_opts *o, struct error **errp)
{
	struct scsi_ctl *c = &ctls[nr_ctls];
	struct vpci_host host;

	if (nr_ctls == SCSIBUS_MAX_CTLS) {
		error_setg(errp, "at most %d virtio-scsi controllers", SCSIBUS_MAX_CTLS);
		return NULL;
	}
	if (id_check(id, errp) < 0)
		return NULL;
	snprintf(c->id, sizeof(c->id), "%s", id);
	host = vm_vpci_host(vm);
	c->dev = vscsi_create(&host, c->id, o, errp);
	if (!c->dev)
		return NULL;
	if (pci_bus_add_device(bus, vscsi_pci(c->dev), -1, errp) < 0) {
		vscsi_destroy(c->dev);
		c->dev = NULL;
		return NULL;
	}
	c->bus = bus;
	nr_ctls++;
	return c;
}

static int ctl_add(struct vm *vm, struct pci_bus *bus, struct json_object *a, const char *id,
		   struct error **errp)
{
	struct iothread *map[DRIVE_MAX_QUEUES];
	struct devopts_queues *d = malloc(sizeof(*d));
	struct vscsi_opts o = { .iothreads = map };
	int ret = -1;

	if (!d) {
		error_setg(errp, "out of memory");
		return -1;
	}
	if (!id) {
		error_setg(errp, "virtio-scsi-pci needs an id= (its disks name it in bus=ID.0)");
		goto out;
	}
	if (devopts_take_queues(a, 128, d, errp) < 0 || keyval_refuse_leftovers(a, NULL, errp) < 0 ||
	    devopts_resolve_queues(d, map, &o.num_queues, &o.queue_size, errp) < 0)
		goto out;
	ret = ctl_new(vm, bus, id, &o, errp) ? 0 : -1;
out:
	free(d);
	return ret;
}

/* The controller bus= names ("ID.0"), or the only one there is. */
static struct scsi_ctl *ctl_for_bus(const char *bus, struct error **errp)
{
	size_t n;

	if (!bus) {
		if (nr_ctls == 1)
			return &ctls[0];
		error_setg(errp, nr_ctls ? "bus= is missing: there are %u virtio-scsi controllers" :
			   "no virtio-scsi controller (add --device virtio-scsi-pci,id=ID)%.0u",
			   nr_ctls);
		return NULL;
	}
	n = strlen(bus);
	for (unsigned int i = 0; i < nr_ctls; i++) {
		size_t k = strlen(ctls[i].id);

		if (n == k + 2 && !strncmp(bus, ctls[i].id, k) && !strcmp(bus + k, ".0"))
			return &ctls[i];
	}
	error_setg(errp, "bus '%s' not found (a virtio-scsi-pci's bus is ID.0)", bus);
	return NULL;
}

/*
 * A disk on @c over @bs (the reference goes to the disk, or is dropped on failure): attaches
 * as the node's user (others may read, not write), then the LUN.
 */
/* A scsi-hd as its node's root user: the controller's drain hooks, and a move to another node
 * (a mirror's pivot) that moves the disk's own reference too. */
static void hd_drained_begin(void *opaque)
{
	struct scsi_hd *h = opaque;

	vscsi_drain_ops.drained_begin(h->lun);
}

static void hd_drained_end(void *opaque)
{
	struct scsi_hd *h = opaque;

	vscsi_drain_ops.drained_end(h->lun);
}

static int hd_replace(void *opaque, struct blockdev *bs, struct error **errp)
{
	struct scsi_hd *h = opaque;
	struct blockdev *old = h->bs;

	if (vscsi_lun_set_node_drained(h->lun, bs, errp) < 0)
		return -1;
	h->bs = blockdev_ref(bs);
	blockdev_unref(old);
	return 0;
}

static const struct blockdev_user_ops hd_user_ops = {
	.drained_begin = hd_drained_begin,
	.drained_end = hd_drained_end,
	.replace = hd_replace,
};

static int hd_plug(struct scsi_ctl *c, struct blockdev *bs, const char *id,
		   struct vscsi_lun_opts *lo, struct error **errp)
{
	struct scsi_hd *h;

	if (nr_hds == SCSIBUS_MAX_DISKS) {
		error_setg(errp, "at most %d scsi-hd disks", SCSIBUS_MAX_DISKS);
		goto err_close;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		error_setg(errp, "out of memory");
		goto err_close;
	}
	snprintf(h->id, sizeof(h->id), "%s", id);
	h->ctl = c;
	h->bs = bs;
	lo->bs = bs;
	lo->name = h->id;
	lo->read_only = lo->read_only || bs->read_only;
	h->user = (struct blockdev_user){
		.role = h->id,
		.perm = BLOCKDEV_PERM_READ | (lo->read_only ? 0 : BLOCKDEV_PERM_WRITE),
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	if (blockdev_attach(bs, &h->user, errp) < 0)
		goto err_free;
	h->lun = vscsi_lun_add(c->dev, lo, errp);
	if (!h->lun)
		goto err_detach;
	/* a change of the graph under the node drains the controller first */
	h->user.ops = &hd_user_ops;
	h->user.opaque = h;
	hds[nr_hds++] = h;
	return 0;
err_detach:
	blockdev_detach(&h->user);
err_free:
	free(h);
err_close:
	blockdev_close(bs);
	return -1;
}

static int take_small(struct json_object *a, const char *key, uint64_t max, uint64_t *v,
		      struct error **errp)
{
	if (keyval_take_u64(a, key, v, errp) < 0)
		return -1;
	if (*v > max) {
		error_setg(errp, "%s=%llu is out of range (0..%llu)", key, (unsigned long long)*v,
			   (unsigned long long)max);
		return -1;
	}
	return 0;
}

static int hd_add(struct json_object *a, const char *node, const char *id, bool hotplug,
		  struct error **errp)
{
	const char *bus = NULL, *serial = NULL, *wwn = NULL;
	uint64_t target = 0, lun = 0, channel = 0;
	struct vscsi_lun_opts lo = { 0 };
	struct blockdev *bs;
	struct scsi_ctl *c;
	char auto_id[ID_MAX + 16];

	if (keyval_take_string(a, "bus", &bus, errp) < 0 ||
	    take_small(a, "scsi-id", VSCSI_MAX_TARGET, &target, errp) < 0 ||
	    take_small(a, "lun", VSCSI_MAX_LUN, &lun, errp) < 0 ||
	    take_small(a, "channel", 0, &channel, errp) < 0 ||
	    keyval_take_string(a, "serial", &serial, errp) < 0 ||
	    keyval_take_string(a, "wwn", &wwn, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (serial && strlen(serial) > SCSI_DISK_SERIAL_MAX) {
		error_setg(errp, "serial: '%s' is longer than %d bytes", serial,
			   SCSI_DISK_SERIAL_MAX);
		return -1;
	}
	if (wwn) {
		char *end;

		errno = 0;
		lo.wwn = strtoull(wwn, &end, 0);
		if (errno || end == wwn || *end || *wwn == '-') {
			error_setg(errp, "wwn: '%s' is not a 64-bit number (0x...)", wwn);
			return -1;
		}
	}
	if (!node) {
		error_setg(errp, "drive= (the node to serve) is missing");
		return -1;
	}
	bs = blockdev_find_node(node);
	if (!bs) {
		error_setg(errp, "drive=%s: no node of that name (create it with --blockdev)", node);
		return -1;
	}
	c = ctl_for_bus(bus, errp);
	if (!c)
		return -1;
	if (!id) {
		snprintf(auto_id, sizeof(auto_id), "%s-%u-%u", c->id, (unsigned int)target,
			 (unsigned int)lun);
		id = auto_id;
	}
	if (id_check(id, errp) < 0)
		return -1;
	lo.target = (uint8_t)target;
	lo.lun = (uint16_t)lun;
	lo.serial = serial;
	(void)hotplug; /* the controller sends the event when its driver runs */
	return hd_plug(c, blockdev_ref(bs), id, &lo, errp);
}

int scsibus_device_add(struct vm *vm, struct pci_bus *bus, const char *driver,
		       struct json_object *a, bool hotplug, struct error **errp)
{
	const char *node = NULL, *id = NULL;

	if (keyval_take_string(a, "drive", &node, errp) < 0 ||
	    keyval_take_string(a, "id", &id, errp) < 0)
		return -1;
	if (!strcmp(driver, "scsi-hd"))
		return hd_add(a, node, id, hotplug, errp);
	if (hotplug) {
		error_setg(errp, "virtio-scsi-pci cannot be hot-plugged (only scsi-hd)");
		return -1;
	}
	if (node) {
		error_setg(errp, "virtio-scsi-pci takes no drive= (its disks are scsi-hd devices)");
		return -1;
	}
	return ctl_add(vm, bus, a, id, errp);
}

int scsibus_drive_add(struct vm *vm, struct pci_bus *bus, struct blockdev *bs, bool read_only,
		      const char *serial, unsigned int nq, unsigned int qs, struct iothread **map,
		      struct error **errp)
{
	struct vscsi_lun_opts lo = { .read_only = read_only, .serial = serial };
	struct scsi_ctl *c = NULL;
	char id[ID_MAX];

	for (unsigned int i = 0; i < nr_ctls; i++)
		if (!strcmp(ctls[i].id, "scsi0"))
			c = &ctls[i];
	if (!c) {
		struct vscsi_opts o = { .num_queues = nq, .queue_size = qs, .iothreads = map };

		c = ctl_new(vm, bus, "scsi0", &o, errp);
		if (!c) {
			blockdev_close(bs);
			return -1;
		}
	}
	if (nr_if_scsi > VSCSI_MAX_TARGET) {
		error_setg(errp, "if=scsi: at most %d disks", VSCSI_MAX_TARGET + 1);
		blockdev_close(bs);
		return -1;
	}
	lo.target = (uint8_t)nr_if_scsi;
	snprintf(id, sizeof(id), "scsi-hd%u", nr_if_scsi);
	if (id_check(id, errp) < 0) {
		blockdev_close(bs);
		return -1;
	}
	if (hd_plug(c, bs, id, &lo, errp) < 0)
		return -1;
	nr_if_scsi++;
	return 0;
}

static void hd_remove(unsigned int i)
{
	struct scsi_hd *h = hds[i];

	vscsi_lun_remove(h->lun);
	h->user.ops = NULL;
	blockdev_detach(&h->user);
	blockdev_close(h->bs);
	free(h);
	memmove(&hds[i], &hds[i + 1], (nr_hds - i - 1) * sizeof(hds[0]));
	nr_hds--;
}

int scsibus_device_del(const char *id, struct error **errp)
{
	for (unsigned int i = 0; i < nr_hds; i++) {
		if (!strcmp(hds[i]->id, id)) {
			hd_remove(i);
			return 0;
		}
	}
	for (unsigned int i = 0; i < nr_ctls; i++) {
		if (!strcmp(ctls[i].id, id)) {
			error_setg(errp, "Device '%s' (virtio-scsi-pci) cannot be hot-unplugged", id);
			return -1;
		}
	}
	return 1;
}

int scsibus_block_resize(const char *device, const char *node, uint64_t size,
			 struct error **errp)
{
	for (unsigned int i = 0; i < nr_hds; i++) {
		struct scsi_hd *h = hds[i];

		if (device ? !strcmp(h->id, device) : !strcmp(vscsi_lun_node(h->lun)->node_name, node))
			return vscsi_lun_resize(h->lun, size, errp);
	}
	return 1;
}

unsigned int scsibus_nr_controllers(void)
{
	return nr_ctls;
}

struct vscsi *scsibus_controller(unsigned int i)
{
	return i < nr_ctls ? ctls[i].dev : NULL;
}

const char *scsibus_controller_id(unsigned int i)
{
	return i < nr_ctls ? ctls[i].id : NULL;
}

unsigned int scsibus_nr_disks(void)
{
	return nr_hds;
}

const char *scsibus_disk_id(unsigned int i)
{
	return i < nr_hds ? hds[i]->id : NULL;
}

struct blockdev *scsibus_disk_node(unsigned int i)
{
	return i < nr_hds ? vscsi_lun_node(hds[i]->lun) : NULL;
}

void scsibus_disk_stats(unsigned int i, struct vioq_stats *st)
{
	vscsi_lun_get_stats(hds[i]->lun, st);
}

void scsibus_cleanup(void)
{
	/* the controllers stop as a guest reset does and free their LUNs, sending no event */
	for (unsigned int i = 0; i < nr_hds; i++)
		hds[i]->user.ops = NULL;
	for (unsigned int i = 0; i < nr_ctls; i++) {
		pci_bus_remove_device(ctls[i].bus, vscsi_pci(ctls[i].dev));
		vscsi_destroy(ctls[i].dev);
		ctls[i].dev = NULL;
	}
	for (unsigned int i = 0; i < nr_hds; i++) {
		blockdev_detach(&hds[i]->user);
		blockdev_close(hds[i]->bs);
		free(hds[i]);
	}
	nr_hds = 0;
	nr_ctls = 0;
	nr_if_scsi = 0;
}
