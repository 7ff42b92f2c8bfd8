/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The queue keys every multiqueue --device (virtio-blk-pci, virtio-scsi-pci) and QMP device
 * takes: num-queues, queue-size, iothread, iothread-vq-mapping, as QEMU spells them.
 *
 * iothread-vq-mapping is QEMU's list of {"iothread": ID, "vqs": [N, ...]}, or vireo's
 * shorthand "io0:io1" for [{"iothread": "io0"}, {"iothread": "io1"}]. Without "vqs" the queues
 * go round-robin over the list (queue i to entry i % n); with them (on every entry or on none)
 * each queue is named exactly once. Without iothread or a mapping every queue is on io0 (made
 * with the default settings if nothing made it). Main thread only.
 */
#ifndef VIREO_VMM_DEVOPTS_H
#define VIREO_VMM_DEVOPTS_H

#include <stdint.h>

#include "common/error.h"
#include "vmm/drive.h"
#include "control/iothread_obj.h"

struct iothread;
struct json_object;

/* The keys as taken, before they are checked and the iothreads found. */
struct devopts_queues {
	uint64_t nq, qs;
	const char *iothread;
	struct json_object *mapping;
	const char *ids[DRIVE_MAX_QUEUES];
	char buf[DRIVE_MAX_QUEUES * IOTHREAD_OBJ_ID_MAX];
};

/*
 * Takes the queue keys out of @a (the caller refuses the keys left over afterwards); @qs_def:
 * the queue size without queue-size.
 */
int devopts_take_queues(struct json_object *a, unsigned int qs_def, struct devopts_queues *d,
			struct error **errp);

/* Checks them and finds each queue's iothread into @map (room for DRIVE_MAX_QUEUES). */
int devopts_resolve_queues(struct devopts_queues *d, struct iothread **map,
			   unsigned int *num_queues, unsigned int *queue_size,
			   struct error **errp);

#endif
