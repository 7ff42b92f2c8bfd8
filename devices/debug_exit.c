/* SPDX-License-Identifier: Apache-2.0 */
#include "devices/debug_exit.h"

#include <string.h>

static void debug_exit_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	memset(data, 0xff, len);
}

static void debug_exit_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct debug_exit *d = opaque;

	d->exit(d->opaque, debug_exit_status(bus_get(data, len)));
}

const struct bus_ops debug_exit_bus_ops = { debug_exit_read, debug_exit_write };
