/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-scsi controllers and their disks for `vireo run`, from the command line and QMP:
 *
 *   --device virtio-scsi-pci,id=ID[,num-queues=N][,queue-size=N]
 *            [,iothread=ID | ,iothread-vq-mapping=ID:ID:...]
 *   --device scsi-hd,drive=NODE[,id=ID][,bus=CTL.0][,scsi-id=T][,lun=N][,channel=0]
 *            [,serial=S][,wwn=N]
 *   --drive file=...,if=scsi   (a controller "scsi0" made by the first such drive, with its
 *                               num-queues and iothreads; each drive a disk on the next target)
 *   QMP device_add {"driver": "scsi-hd", ...} / device_del {"id": ID} at run time
 *
 * The queue keys are devopts.h's (as virtio-blk-pci's). bus= names a controller's bus
 * ("ID.0"); without it the disk goes on the only controller there is. Defaults: scsi-id=0,
 * lun=0. A disk is read-only when its node is. Each disk attaches to its node as its root user
 * with the LUN's drain hooks, as a virtio-blk frontend does. Main thread only.
 */
#ifndef VIREO_VMM_SCSI_H
#define VIREO_VMM_SCSI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "devices/virtio_ioq.h"

struct blockdev;
struct iothread;
struct json_object;
struct pci_bus;
struct vm;
struct vscsi;

/* Whether --device / device_add driver @driver is one of this file's. */
bool scsibus_handles(const char *driver);

/**
 * scsibus_device_add - a virtio-scsi-pci controller or a scsi-hd disk
 * @vm, @bus: the VM and its PCI bus (a controller is plugged there; only before the guest runs)
 * @driver: "virtio-scsi-pci" or "scsi-hd"
 * @a: the other keys (keyval JSON or QMP arguments); those left over are refused by name
 * @hotplug: QMP's device_add: a disk only, and its driver is told (a rescan event)
 *
 * Returns 0 or -1 with a message naming the key.
 */
int scsibus_device_add(struct vm *vm, struct pci_bus *bus, const char *driver,
		       struct json_object *a, bool hotplug, struct error **errp);

/*
 * --drive if=scsi: a disk over @bs (the caller's reference goes to the disk, or is dropped on
 * failure) on controller scsi0, made with @nq queues of @qs on @map if it does not exist.
 */
int scsibus_drive_add(struct vm *vm, struct pci_bus *bus, struct blockdev *bs, bool read_only,
		      const char *serial, unsigned int nq, unsigned int qs, struct iothread **map,
		      struct error **errp);

/*
 * device_del of a scsi-hd: the disk goes (its driver told with a removal event). 1: @id is
 * not a disk of this file (the caller looks further), 0 done, -1 refused.
 */
int scsibus_device_del(const char *id, struct error **errp);

/* block_resize of a disk (by id) or its node; 1 when neither is one of this file's disks. */
int scsibus_block_resize(const char *device, const char *node, uint64_t size,
			 struct error **errp);

/* Whether @id names a controller or a disk. */
bool scsibus_id_in_use(const char *id);

/* The controllers and disks, for QMP's queries. */
unsigned int scsibus_nr_controllers(void);
struct vscsi *scsibus_controller(unsigned int i);
const char *scsibus_controller_id(unsigned int i);
unsigned int scsibus_nr_disks(void);
const char *scsibus_disk_id(unsigned int i);
struct blockdev *scsibus_disk_node(unsigned int i);
void scsibus_disk_stats(unsigned int i, struct vioq_stats *st);

/* Removes every disk and controller (before the iothreads stop and the nodes close). */
void scsibus_cleanup(void);

#endif
