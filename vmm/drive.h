/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `--drive` for `vireo run`: option parsing and building a virtio-blk disk on its iothreads.
 *
 *   --drive file=PATH[,format=raw|qcow2][,if=virtio-blk|scsi][,num-queues=N][,queue-size=N]
 *           [,iothreads=N][,iothread-vq-mapping=I:I:...][,cache=none|writeback]
 *           [,readonly=on|off][,serial=STR][,poll-max-ns=N][,DRIVER-KEY=VALUE]...
 *
 * if=scsi makes the disk a scsi-hd on virtio-scsi controller scsi0 (see vmm/scsi.h), which
 * the first such drive creates with its queue keys.
 *
 * Defaults: format=raw, if=virtio-blk, num-queues=1, queue-size=256, iothreads=1,
 * cache=writeback, readonly=off, no serial, poll-max-ns=131072 (IOTHREAD_POLL_MAX_NS_DEFAULT;
 * 0 disables busy polling). A literal comma in a value is written ",," (as in QEMU).
 *
 * Any other key is a driver option (qcow2: l2-cache-size, metadata-barriers, data-file, ...):
 * drive_parse() keeps it in @driver_opts and blockdev_open() hands it to the format driver,
 * which refuses, naming it, a key the format does not take.
 *
 * iothread-vq-mapping lists, for queue 0, 1, ..., num-queues - 1, the index of the iothread
 * (0 .. iothreads - 1) that owns it, separated by ':'; without it queue i goes to iothread
 * i mod iothreads. Iothreads are shared between drives: iothread k is the same thread "io<k>"
 * for every drive that uses k; the first drive that uses it sets its poll-max-ns, and a later
 * drive that asks for a different poll-max-ns for it is refused.
 *
 * Main thread only (the registry of iothreads and devices below is not locked).
 */
#ifndef VIREO_VMM_DRIVE_H
#define VIREO_VMM_DRIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "blockdev/blockdev.h"
#include "blockdev/throttle.h"
#include "common/error.h"

struct vm;
struct pci_bus;

#define DRIVE_MAX_QUEUES 256
#define DRIVE_MAX_IOTHREADS 64

struct drive_config {
	char *file;
	char *format;  /* "raw" unless given */
	unsigned int num_queues;
	unsigned int queue_size;
	unsigned int iothreads;
	bool cache_none;
	bool readonly;
	char *serial;  /* NULL: none */
	bool if_scsi;  /* if=scsi: a scsi-hd on controller scsi0 */
	uint64_t poll_max_ns;
	bool poll_max_ns_set;
	unsigned int poll_grow;   /* poll-grow: factor (0 = 2) */
	bool poll_grow_set;
	unsigned int poll_shrink; /* poll-shrink: divisor (0 = reset to 0), IOTHREAD_POLL_SHRINK_DEFAULT */
	bool poll_shrink_set;
	bool poll_keep;         /* poll-backoff=off: keep polling on a contended core */
	bool poll_keep_set;
	int iothread_nice;      /* iothread-nice=N: the iothreads' nice value */
	bool iothread_nice_set;
	bool register_memory;   /* register-memory=on: guest RAM as io_uring fixed buffers */
	uint16_t vq_map[DRIVE_MAX_QUEUES]; /* queue -> iothread index */
	struct throttle_limits throttle;   /* iops=, bps_rd=, throttling.iops-total=, ... */
	bool throttle_set;                 /* a throttling key was given */
	char *throttle_group;              /* group= / throttling.group= (NULL: the device's name) */
	struct blockdev_opts driver_opts;  /* keys for the format driver (extra only) */
};

/**
 * drive_parse - parse and check one --drive value
 *
 * Refuses bad values (naming the key), a missing `file` and a file that does not exist or
 * cannot be opened with the access asked (read, or read-write unless readonly=on). Keys it
 * does not know go to @cfg->driver_opts; whether the format takes them is decided at open.
 * Returns 0 or -1; on success release @cfg with drive_config_free().
 */
int drive_parse(const char *spec, struct drive_config *cfg, struct error **errp);
void drive_config_free(struct drive_config *cfg);

/**
 * drive_add - open the image, start or share its iothreads and plug a virtio-blk device
 * @vm: the VM (before vCPUs run)
 * @bus: PCI bus 0
 * @spec: the --drive value
 *
 * Returns 0 or -1 with a message that starts with "--drive".
 */
int drive_add(struct vm *vm, struct pci_bus *bus, const char *spec, struct error **errp);

/**
 * drive_device_add - --device SPEC: a virtio-blk function over an existing node
 *
 *   --device virtio-blk-pci,drive=NODE[,id=ID][,num-queues=N][,queue-size=N][,serial=S]
 *            [,iothread=ID | ,iothread-vq-mapping=ID:ID:...]
 *
 * iothread-vq-mapping names the iothread (--object iothread,id=ID) of queue 0, 1, ...; QEMU's
 * JSON form [{"iothread": ID}, ...] is taken too. Without either, every queue is on io0 (made
 * with the default settings if nothing made it). The device is read-only when the node is.
 * Returns 0 or -1 with a message that starts with "--device".
 */
int drive_device_add(struct vm *vm, struct pci_bus *bus, const char *spec, struct error **errp);

/*
 * block_resize of the disk whose id is @device, or whose node is called @node (control/
 * block_qmp.h's resize hook): its queues are drained meanwhile and its driver told
 * (vblk_resize). @size: a multiple of 512. 0 or -1; 1 when no disk is so named.
 */
int drive_block_resize(const char *device, const char *node, uint64_t size,
		       struct error **errp);

/*
 * Tears down every disk: stops the devices' queues, stops the iothreads, closes the images and
 * the nodes --blockdev made (block_nodes_cleanup). Call after the vCPUs stopped and before
 * vm_destroy.
 */
void drive_cleanup(void);
/* The disks added so far (--drive, --device), in order: their count, device, name (the
 * --device id, else "virtio-blk0", ...) and node. */
struct blockdev *drive_node(unsigned int i);
/* The drives added so far, in order: their count, device and name ("virtio-blk0", ...). */
unsigned int drive_count(void);
struct vblk *drive_device(unsigned int i);
const char *drive_name(unsigned int i);
/* The node of the disk (virtio-blk or scsi-hd) called @name (its id), or NULL: what a QMP
 * "device" argument names. */
struct blockdev *drive_find_node(const char *name);

/* Iothread io@i shared by the drives added so far, NULL if no drive created it. */
struct iothread *drive_iothread(unsigned int i);

#endif
