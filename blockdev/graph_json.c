/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node graph as QEMU's x-debug-query-block-graph shows it: every node ("block-driver", by
 * node name) and every root user ("block-backend", a device frontend, by its name), and an
 * edge per user link with its role and permissions. Ids are the objects' addresses: stable for
 * the life of the node, unique, and meaningless beyond matching edges to nodes.
 */
#include <json-c/json.h>
#include <stdint.h>

#include "blockdev/blockdev.h"

static struct json_object *perms(unsigned int p)
{
	static const char *const names[] = { "consistent-read", "write", "write-unchanged",
					      "resize" };
	struct json_object *a = json_object_new_array();

	for (unsigned int i = 0; i < 4; i++)
		if (p & (1u << i))
			json_object_array_add(a, json_object_new_string(names[i]));
	return a;
}

static void add_node(struct json_object *nodes, const void *id, const char *type,
		     const char *name)
{
	struct json_object *n = json_object_new_object();

	json_object_object_add(n, "id", json_object_new_int64((int64_t)(uintptr_t)id));
	json_object_object_add(n, "type", json_object_new_string(type));
	json_object_object_add(n, "name", json_object_new_string(name));
	json_object_array_add(nodes, n);
}

struct graph {
	struct json_object *nodes, *edges;
};

/* registry locked (blockdev_for_each_node): the users lists are whole */
static void one_node(struct blockdev *bs, void *opaque)
{
	struct graph *g = opaque;

	add_node(g->nodes, bs, "block-driver", bs->node_name);
	for (const struct blockdev_user *u = bs->users; u; u = u->next) {
		struct json_object *e = json_object_new_object();
		const void *parent = u->parent ? (const void *)u->parent : (const void *)u;

		if (!u->parent)
			add_node(g->nodes, u, "block-backend", u->role);
		json_object_object_add(e, "parent",
				       json_object_new_int64((int64_t)(uintptr_t)parent));
		json_object_object_add(e, "child", json_object_new_int64((int64_t)(uintptr_t)bs));
		json_object_object_add(e, "name",
				       json_object_new_string(u->parent ? u->role : "root"));
		json_object_object_add(e, "perm", perms(u->perm));
		json_object_object_add(e, "shared-perm", perms(u->shared));
		json_object_array_add(g->edges, e);
	}
}

struct json_object *blockdev_graph_json(void)
{
	struct graph g = { json_object_new_array(), json_object_new_array() };
	struct json_object *o = json_object_new_object();

	blockdev_for_each_node(one_node, &g);
	json_object_object_add(o, "nodes", g.nodes);
	json_object_object_add(o, "edges", g.edges);
	return o;
}
