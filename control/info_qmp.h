/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QMP commands every program answers the same way (vireo, the storage daemon): each lists
 * INFO_QMP_COMMANDS in its command table.
 *
 *   query-version      QEMU's VersionInfo, package "vireo"
 *   query-iothreads    the --object iothreads (control/iothread_obj.h) with their host thread ids
 */
#ifndef VIREO_CONTROL_INFO_QMP_H
#define VIREO_CONTROL_INFO_QMP_H

#include "control/qmp_server.h"

#define INFO_QMP_COMMANDS \
	{ "query-iothreads", info_qmp_query_iothreads }, \
	{ "query-version", info_qmp_query_version }

int info_qmp_query_iothreads(void *opaque, struct json_object *args, struct json_object **ret,
			     struct error **errp);
int info_qmp_query_version(void *opaque, struct json_object *args, struct json_object **ret,
			   struct error **errp);

#endif
