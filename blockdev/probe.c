/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Probing: which format a file is in. blockdev_open() asks each format driver's probe() about
 * the image's first bytes and takes the highest score. A file that carries the magic of a
 * format vireo recognises but does not read is refused, naming that format; raw (no probe) is
 * what is left when no format claims the file. Never take a file that claims a format for raw:
 * a guest that writes another format's header into its raw disk would otherwise make the next
 * probing open follow that header's backing or data file names into host files.
 */
#include <stdio.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/luks.h"
#include "blockdev/qcow2.h"
#include "blockdev/vmdk.h"
#include "blockdev/vhdx.h"
#include "blockdev/vdi.h"
#include "blockdev/vpc.h"
#include "common/util.h"

const struct blockdev_driver *const blockdev_formats[] = {
	&blockdev_qcow2,
	&blockdev_luks,
	&blockdev_vpc,
	&blockdev_vdi,
	&blockdev_vhdx,
	&blockdev_vmdk,
	&blockdev_raw,
	NULL,
};

/* Formats known by their magic that vireo does not read (yet): refused, never taken for raw. */
static const struct {
	const char *name;
	size_t offset;
	size_t len;
	const char *magic;
} foreign[] = {
	{ "qcow (version 1)", 0, 8, "QFI\xfb\0\0\0\1" },
	{ "vmdk (ESX COWD)", 0, 4, "COWD" },
	{ "qed", 0, 4, "QED\0" },
	{ "luks (version 2)", 0, 8, "LUKS\xba\xbe\0\2" },
	{ "luks (not version 1)", 0, 6, "LUKS\xba\xbe" },
	{ "parallels", 0, 16, "WithoutFreeSpace" },
	{ "parallels", 0, 16, "WithouFreSpacExt" },
	{ "bochs", 0, 22, "Bochs Virtual HD Image" },
	{ "cloop", 0, 23, "#!/bin/sh\n#V2.0 Format\n" },
};

const struct blockdev_driver *blockdev_find_format(const char *name)
{
	for (size_t i = 0; blockdev_formats[i]; i++)
		if (!strcmp(blockdev_formats[i]->name, name))
			return blockdev_formats[i];
	return NULL;
}

const struct blockdev_driver *blockdev_probe(const uint8_t *buf, size_t len,
					     const char *filename, struct error **errp)
{
	const struct blockdev_driver *best = &blockdev_raw;
	int best_score = 0;

	/* a format we read claims it first (LUKS version 1 is ours, other LUKS versions not) */
	if (luks_probe(buf, len))
		return &blockdev_luks;
	for (size_t i = 0; i < ARRAY_SIZE(foreign); i++) {
		if (len >= foreign[i].offset + foreign[i].len &&
		    !memcmp(buf + foreign[i].offset, foreign[i].magic, foreign[i].len)) {
			error_setg(errp,
				   "'%s' is a %s image, a format vireo does not read (give the "
				   "format raw explicitly to use its bytes as a raw disk)",
				   filename, foreign[i].name);
			return NULL;
		}
	}
	for (size_t i = 0; blockdev_formats[i]; i++) {
		int score;

		if (!blockdev_formats[i]->probe)
			continue;
		score = blockdev_formats[i]->probe(buf, len, filename);
		if (score > best_score) {
			best_score = score;
			best = blockdev_formats[i];
		}
	}
	return best;
}
