/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The nodes the user made, by --blockdev or QMP's blockdev-add, for every program with a block
 * layer (vireo, the storage daemon): each holds its creator's reference until blockdev-del or
 * block_nodes_cleanup(). Nodes made otherwise (a --drive's, the children of these) are not
 * "owned by the monitor", as QEMU says, and blockdev-del refuses them. Main thread only.
 */
#ifndef VIREO_CONTROL_BLOCK_NODES_H
#define VIREO_CONTROL_BLOCK_NODES_H

#include "common/error.h"

struct json_object;

/**
 * block_nodes_add_spec - --blockdev SPEC: nodes from QEMU's dotted keys or JSON (blockdev_add)
 *
 * Returns 0 or -1 with a message that starts with "--blockdev" and names the key.
 */
int block_nodes_add_spec(const char *spec, struct error **errp);

/* The same from QMP's blockdev-add arguments (@where names the source in messages). */
int block_nodes_add_json(struct json_object *args, const char *where, struct error **errp);

/*
 * blockdev-del: closes a node --blockdev or blockdev-add made; refused, naming the user, while
 * it is in use, and for a node they did not make (QEMU's "not owned by the monitor").
 */
int block_nodes_del(const char *name, struct error **errp);

/* The nodes made and not deleted, in no particular order: NULL past the last. */
struct blockdev *block_nodes_at(unsigned int i);

/* Drops every creator's reference, newest first (a node may be the child of a later one). */
void block_nodes_cleanup(void);

#endif
