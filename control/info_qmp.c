/* SPDX-License-Identifier: Apache-2.0 */
/* QMP's query-version and query-iothreads (see info_qmp.h). Control-plane thread only. */
#include "control/info_qmp.h"

#include <json-c/json.h>

#include "common/version.h"
#include "control/iothread_obj.h"
#include "iothreads/iothread.h"

int info_qmp_query_version(void *opaque, struct json_object *args, struct json_object **ret,
			   struct error **errp)
{
	struct json_object *q = json_object_new_object();

	json_object_object_add(q, "major", json_object_new_int(VIREO_VERSION_MAJOR));
	json_object_object_add(q, "minor", json_object_new_int(VIREO_VERSION_MINOR));
	json_object_object_add(q, "micro", json_object_new_int(VIREO_VERSION_MICRO));
	*ret = json_object_new_object();
	json_object_object_add(*ret, "qemu", q);
	json_object_object_add(*ret, "package", json_object_new_string("vireo"));
	return 0;
}

/* QEMU's query-iothreads: the iothreads in the order they were made, with their host thread
 * ids. */
int info_qmp_query_iothreads(void *opaque, struct json_object *args, struct json_object **ret,
			     struct error **errp)
{
	*ret = json_object_new_array();
	for (unsigned int i = 0; iothread_obj_at(i); i++) {
		struct iothread *it = iothread_obj_at(i)->it;
		const struct iothread_opts *o;
		struct json_object *t;

		o = iothread_get_opts(it);
		t = json_object_new_object();
		json_object_object_add(t, "id", json_object_new_string(iothread_name(it)));
		json_object_object_add(t, "thread-id", json_object_new_int(iothread_tid(it)));
		json_object_object_add(t, "poll-max-ns", json_object_new_int64((int64_t)o->poll_max_ns));
		json_object_object_add(t, "poll-grow", json_object_new_int64(o->poll_grow));
		json_object_object_add(t, "poll-shrink", json_object_new_int64(o->poll_shrink));
		json_object_array_add(*ret, t);
	}
	return 0;
}
