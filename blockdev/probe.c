/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The format drivers, in probe order. blockdev_open() asks each probe() about the first bytes of
 * the image and takes the highest score; raw (no probe) is the fallback and stays last.
 */
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"

const struct blockdev_driver *const blockdev_formats[] = {
	&blockdev_qcow2,
	&blockdev_raw,
	NULL,
};

const struct blockdev_driver *blockdev_find_format(const char *name)
{
	for (size_t i = 0; blockdev_formats[i]; i++)
		if (!strcmp(blockdev_formats[i]->name, name))
			return blockdev_formats[i];
	return NULL;
}
