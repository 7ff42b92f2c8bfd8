/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The debug-exit port: a write of v ends the VM with exit status (v << 1) | 1, exactly like QEMU's
 * isa-debug-exit, so one test guest reports the same status under both VMMs.
 */
#ifndef VIREO_DEVICES_DEBUG_EXIT_H
#define VIREO_DEVICES_DEBUG_EXIT_H

#include <stdint.h>

#include "devices/bus.h"

struct debug_exit {
	void (*exit)(void *opaque, int status);
	void *opaque;
};

extern const struct bus_ops debug_exit_bus_ops; /* opaque = struct debug_exit *, 4 ports */

static inline int debug_exit_status(uint64_t value)
{
	return (int)(((value << 1) | 1) & 0xff);
}

#endif
