/* SPDX-License-Identifier: Apache-2.0 */
/* QMP's internal and external snapshot commands (control/snapshot_qmp.c). */
#ifndef VIREO_CONTROL_SNAPSHOT_QMP_H
#define VIREO_CONTROL_SNAPSHOT_QMP_H

#include "control/qmp_server.h"

#define SNAPSHOT_QMP_COMMANDS \
	{ "blockdev-snapshot", snapshot_qmp_external }, \
	{ "blockdev-snapshot-delete-internal-sync", snapshot_qmp_delete_internal_sync }, \
	{ "blockdev-snapshot-internal-sync", snapshot_qmp_internal_sync }, \
	{ "blockdev-snapshot-sync", snapshot_qmp_sync }

#define SNAPSHOT_QMP_DECLARE(fn) \
	int fn(void *opaque, struct json_object *args, struct json_object **ret, \
	       struct error **errp)
SNAPSHOT_QMP_DECLARE(snapshot_qmp_external);
SNAPSHOT_QMP_DECLARE(snapshot_qmp_delete_internal_sync);
SNAPSHOT_QMP_DECLARE(snapshot_qmp_internal_sync);
SNAPSHOT_QMP_DECLARE(snapshot_qmp_sync);

#endif
