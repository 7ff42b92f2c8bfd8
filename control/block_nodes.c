/* SPDX-License-Identifier: Apache-2.0 */
/* The nodes --blockdev and blockdev-add made (see block_nodes.h). Main thread only. */
#include "control/block_nodes.h"

#include <json-c/json.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "common/keyval.h"
#include "common/util.h"

static struct blockdev *nodes[32]; /* top nodes, each holding its creator's reference */
static unsigned int nr_nodes;

int block_nodes_add_json(struct json_object *args, const char *where, struct error **errp)
{
	struct blockdev *bs;

	if (nr_nodes == ARRAY_SIZE(nodes)) {
		error_setg(errp, "%s: at most %zu nodes", where, ARRAY_SIZE(nodes));
		return -1;
	}
	bs = blockdev_add(args, where, errp);
	if (!bs)
		return -1;
	nodes[nr_nodes++] = bs;
	return 0;
}

int block_nodes_add_spec(const char *spec, struct error **errp)
{
	struct json_object *args = keyval_parse(spec, NULL, errp);
	int ret;

	if (!args) {
		error_prepend(errp, "--blockdev");
		return -1;
	}
	ret = block_nodes_add_json(args, "--blockdev", errp);
	json_object_put(args);
	return ret;
}

int block_nodes_del(const char *name, struct error **errp)
{
	for (unsigned int i = 0; i < nr_nodes; i++) {
		if (strcmp(nodes[i]->node_name, name))
			continue;
		if (blockdev_check_unused(nodes[i], errp))
			return -1;
		blockdev_close(nodes[i]);
		nodes[i] = nodes[--nr_nodes];
		return 0;
	}
	if (blockdev_find_node(name))
		error_setg(errp, "Node '%s' is not owned by the monitor", name);
	else
		error_setg(errp, "Failed to find node with node-name='%s'", name);
	return -1;
}

struct blockdev *block_nodes_at(unsigned int i)
{
	return i < nr_nodes ? nodes[i] : NULL;
}

void block_nodes_cleanup(void)
{
	while (nr_nodes)
		blockdev_close(nodes[--nr_nodes]);
}
