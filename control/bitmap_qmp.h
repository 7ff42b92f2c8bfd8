/* SPDX-License-Identifier: Apache-2.0 */
/* QMP's block-dirty-bitmap-* commands (control/bitmap_qmp.c). */
#ifndef VIREO_CONTROL_BITMAP_QMP_H
#define VIREO_CONTROL_BITMAP_QMP_H

#include "control/qmp_server.h"

#define BITMAP_QMP_COMMANDS \
	{ "block-dirty-bitmap-add", bitmap_qmp_add }, \
	{ "block-dirty-bitmap-clear", bitmap_qmp_clear }, \
	{ "block-dirty-bitmap-disable", bitmap_qmp_disable }, \
	{ "block-dirty-bitmap-enable", bitmap_qmp_enable }, \
	{ "block-dirty-bitmap-merge", bitmap_qmp_merge }, \
	{ "block-dirty-bitmap-remove", bitmap_qmp_remove }

#define BITMAP_QMP_DECLARE(fn) \
	int fn(void *opaque, struct json_object *args, struct json_object **ret, \
	       struct error **errp)
BITMAP_QMP_DECLARE(bitmap_qmp_add);
BITMAP_QMP_DECLARE(bitmap_qmp_clear);
BITMAP_QMP_DECLARE(bitmap_qmp_disable);
BITMAP_QMP_DECLARE(bitmap_qmp_enable);
BITMAP_QMP_DECLARE(bitmap_qmp_merge);
BITMAP_QMP_DECLARE(bitmap_qmp_remove);

#endif
