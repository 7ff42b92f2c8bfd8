/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BLOCK_IO_ERROR: a guest request that failed on the host, reported to the QMP client.
 *
 * Devices call blockdev_io_error() on their iothread when a request the guest made correctly
 * failed in the block layer (not for requests the device refused as invalid). The report waits
 * in a slot per device; the control-plane thread, woken through blockdev_io_error_fd(), sends
 * it with blockdev_io_error_poll() as QEMU's event, action "report" (vireo has no werror/rerror
 * policies). As QEMU's monitor does for this guest-triggerable event, each device sends at most
 * one a second: the first at once, then the latest of those that came within the second when
 * it ends.
 */
#ifndef VIREO_BLOCKDEV_IO_ERROR_H
#define VIREO_BLOCKDEV_IO_ERROR_H

#include <stdbool.h>

struct json_object;

/**
 * blockdev_io_error - a guest request failed on the host (data path, any thread)
 * @qdev: the device (query-block's "qdev"), the key of its throttle
 * @node: the node-name of the node the device sits on
 * @is_write: the request wrote (write, write-zeroes, discard, flush), else it read
 * @ret: its -errno
 */
void blockdev_io_error(const char *qdev, const char *node, bool is_write, int ret);

/* An eventfd, readable when a report waits; -1 if none could be made. */
int blockdev_io_error_fd(void);

/**
 * blockdev_io_error_poll - send what may go out now (control plane)
 * @emit: receives each event (name, data it takes over); NULL drops them
 * @opaque: for @emit
 *
 * Return: milliseconds until a held report is due (call again then), or -1 when none is held.
 */
int blockdev_io_error_poll(void (*emit)(void *opaque, const char *name, struct json_object *data),
			   void *opaque);

#endif
