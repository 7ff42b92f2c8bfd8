/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QMP's commands over the node graph (QEMU's names, arguments and answers), for every program
 * with a block layer (vireo, the storage daemon): each lists BLOCK_QMP_COMMANDS in its command
 * table and says through block_qmp_set_hooks() what a "device" argument names in it (vireo: a
 * disk's id; the daemon has no devices: a node name). They run on the control-plane thread.
 *
 *   blockdev-add, blockdev-del          nodes the monitor owns (control/block_nodes.h)
 *   query-named-block-nodes             QEMU's BlockDeviceInfo of every node
 *   x-debug-query-block-graph           the nodes, their users and the links' permissions
 *   block_set_io_throttle               new limits for the group of a device's throttle node
 *   block_resize                        a device's disk (the program's hook) or a node
 */
#ifndef VIREO_CONTROL_BLOCK_QMP_H
#define VIREO_CONTROL_BLOCK_QMP_H

#include <stdint.h>

#include "control/qmp_server.h"

struct blockdev;

/**
 * struct block_qmp_hooks - what the program's own devices add to the block commands
 * @device_node: the top node of the device called @name (a QMP "device" or "id"), or NULL.
 *               NULL hook: the program has no devices, and such an argument names a node.
 * @resize: block_resize of @device's disk or of node @node when a device serves it (the
 *          program drains the device and tells it the new size): 0 or -1, or 1 when no device
 *          serves it. NULL: no device ever does. @size is a multiple of 512.
 * @vm_clock_ns: the guest's running time in ns (QEMU's vm_clock: what an internal snapshot
 *          taken over QMP records as its VM clock). NULL: no VM, the snapshots record 0.
 */
struct block_qmp_hooks {
	struct blockdev *(*device_node)(const char *name);
	int (*resize)(const char *device, const char *node, uint64_t size, struct error **errp);
	uint64_t (*vm_clock_ns)(void);
};

/* Sets the program's hooks (copied); before the first command runs. */
void block_qmp_set_hooks(const struct block_qmp_hooks *hooks);
/* The program's VM clock (struct block_qmp_hooks), 0 without a VM. */
uint64_t block_qmp_vm_clock_ns(void);

/*
 * The node a QMP "device" or "node" argument names: a program's device, else a node name;
 * NULL with QEMU's "Cannot find device=... nor node-name=...".
 */
struct blockdev *block_qmp_find_node(const char *device, struct error **errp);

/* QEMU's BlockDeviceInfo of @bs (query-named-block-nodes; vireo's query-block "inserted"). */
struct json_object *block_qmp_node_info(struct blockdev *bs);

#define BLOCK_QMP_COMMANDS \
	{ "block_resize", block_qmp_resize }, \
	{ "block_set_io_throttle", block_qmp_set_io_throttle }, \
	{ "blockdev-add", block_qmp_blockdev_add }, \
	{ "blockdev-del", block_qmp_blockdev_del }, \
	{ "query-named-block-nodes", block_qmp_query_named_block_nodes }, \
	{ "x-debug-query-block-graph", block_qmp_query_block_graph }

#define BLOCK_QMP_DECLARE(fn) \
	int fn(void *opaque, struct json_object *args, struct json_object **ret, \
	       struct error **errp)
BLOCK_QMP_DECLARE(block_qmp_resize);
BLOCK_QMP_DECLARE(block_qmp_set_io_throttle);
BLOCK_QMP_DECLARE(block_qmp_blockdev_add);
BLOCK_QMP_DECLARE(block_qmp_blockdev_del);
BLOCK_QMP_DECLARE(block_qmp_query_named_block_nodes);
BLOCK_QMP_DECLARE(block_qmp_query_block_graph);

#endif
