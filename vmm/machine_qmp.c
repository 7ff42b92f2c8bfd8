/* SPDX-License-Identifier: Apache-2.0 */
/* The QMP commands of a running microVM. They run on the main thread (see qmp.h). */
#include <json-c/json.h>
#include <string.h>
#include <stdio.h>
#include <time.h>


#include "common/util.h"
#include "control/bitmap_qmp.h"
#include "control/block_qmp.h"
#include "control/job_qmp.h"
#include "control/snapshot_qmp.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_scsi.h"
#include "vmm/drive.h"
#include "control/info_qmp.h"
#include "vmm/machine.h"
#include "vmm/scsi.h"
#include "vmm/vcpu.h"

static int qmp_query_status(void *opaque, struct json_object *args, struct json_object **ret,
			    struct error **errp)
{
	struct machine *m = opaque;
	bool running = !vm_stopping(&m->vm);

	*ret = json_object_new_object();
	json_object_object_add(*ret, "status", json_object_new_string(running ? "running" : "shutdown"));
	json_object_object_add(*ret, "running", json_object_new_boolean(running));
	return 0;
}

static int qmp_query_kvm(void *opaque, struct json_object *args, struct json_object **ret,
			 struct error **errp)
{
	*ret = json_object_new_object();
	json_object_object_add(*ret, "enabled", json_object_new_boolean(1));
	json_object_object_add(*ret, "present", json_object_new_boolean(1));
	return 0;
}

static int qmp_query_cpus_fast(void *opaque, struct json_object *args, struct json_object **ret,
			       struct error **errp)
{
	struct machine *m = opaque;

	*ret = json_object_new_array();
	for (unsigned int i = 0; i < m->vm.nr_vcpus; i++) {
		struct json_object *c = json_object_new_object();
		char path[64];

		snprintf(path, sizeof(path), "/machine/unattached/device[%u]", i);
		json_object_object_add(c, "cpu-index", json_object_new_int((int)i));
		json_object_object_add(c, "qom-path", json_object_new_string(path));
		json_object_object_add(c, "target", json_object_new_string("x86_64"));
		if (m->vm.vcpus && m->vm.vcpus[i] && vcpu_tid(m->vm.vcpus[i]))
			json_object_object_add(c, "thread-id",
					       json_object_new_int(vcpu_tid(m->vm.vcpus[i])));
		json_object_array_add(*ret, c);
	}
	return 0;
}

static int qmp_system_powerdown(void *opaque, struct json_object *args, struct json_object **ret,
				struct error **errp)
{
	struct machine *m = opaque;

	acpi_pm_press_power_button(&m->pm);
	qmp_event(m->qmp, "POWERDOWN", NULL);
	return 0;
}

static int qmp_system_reset(void *opaque, struct json_object *args, struct json_object **ret,
			    struct error **errp)
{
	struct machine *m = opaque;

	/* a microVM does not reboot: a reset ends it, as a guest-initiated reset does */
	m->host_stop_reason = "host-qmp-system-reset";
	vm_request_stop(&m->vm, VM_STOP_RESET, 0, "reset requested over QMP");
	return 0;
}

static int qmp_quit(void *opaque, struct json_object *args, struct json_object **ret,
		    struct error **errp)
{
	struct machine *m = opaque;

	m->host_stop_reason = "host-qmp-quit";
	vm_request_stop(&m->vm, VM_STOP_POWEROFF, 0, "quit requested over QMP");
	return 0;
}

/* x-query-virtio: the virtio devices, by the path x-query-virtio-queue-status takes */
static int qmp_x_query_virtio(void *opaque, struct json_object *args, struct json_object **ret,
			      struct error **errp)
{
	*ret = json_object_new_array();
	for (unsigned int i = 0; i < drive_count(); i++) {
		struct json_object *d = json_object_new_object();

		json_object_object_add(d, "path", json_object_new_string(drive_name(i)));
		json_object_object_add(d, "name", json_object_new_string("virtio-blk"));
		json_object_object_add(d, "queues",
				       json_object_new_int((int)vblk_nr_queues(drive_device(i))));
		json_object_array_add(*ret, d);
	}
	for (unsigned int i = 0; i < scsibus_nr_controllers(); i++) {
		struct json_object *d = json_object_new_object();

		json_object_object_add(d, "path", json_object_new_string(scsibus_controller_id(i)));
		json_object_object_add(d, "name", json_object_new_string("virtio-scsi"));
		/* control, event and the request queues */
		json_object_object_add(d, "queues", json_object_new_int(
			2 + (int)vscsi_nr_queues(scsibus_controller(i))));
		json_object_array_add(*ret, d);
	}
	return 0;
}

/* The device at @args' path: a virtio-blk one (*scsi NULL), or a virtio-scsi one in *scsi. */
static struct vblk *device_by_path(struct json_object *args, struct vscsi **scsi,
				   struct error **errp)
{
	struct json_object *p;
	const char *path;

	if (!args || !json_object_object_get_ex(args, "path", &p) ||
	    !json_object_is_type(p, json_type_string)) {
		error_setg(errp, "Parameter 'path' is missing or not a string");
		return NULL;
	}
	path = json_object_get_string(p);
	*scsi = NULL;
	for (unsigned int i = 0; i < drive_count(); i++)
		if (!strcmp(drive_name(i), path))
			return drive_device(i);
	for (unsigned int i = 0; i < scsibus_nr_controllers(); i++) {
		if (!strcmp(scsibus_controller_id(i), path)) {
			*scsi = scsibus_controller(i);
			return NULL;
		}
	}
	error_setg(errp, "No virtio device at path '%s' (x-query-virtio lists them)", path);
	return NULL;
}

static void add_int(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

/* x-query-virtio-queue-status {path, queue}: QEMU's fields, then vireo's own */
static int qmp_x_query_virtio_queue_status(void *opaque, struct json_object *args,
					   struct json_object **ret, struct error **errp)
{
	struct vscsi *scsi = NULL;
	struct vblk *b = device_by_path(args, &scsi, errp);
	struct vioq_status st;
	struct json_object *q, *o;
	int64_t index;

	if (!b && !scsi)
		return -1;
	if (!json_object_object_get_ex(args, "queue", &q) || !json_object_is_type(q, json_type_int) ||
	    (index = json_object_get_int64(q)) < 0 || index > UINT16_MAX) {
		error_setg(errp, "Parameter 'queue' is missing or not a queue number");
		return -1;
	}
	if (b ? vblk_queue_status(b, (unsigned int)index, &st, errp) < 0
	      : vscsi_queue_status(scsi, (unsigned int)index, &st, errp) < 0)
		return -1;
	o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(b ? "virtio-blk" : "virtio-scsi"));
	add_int(o, "queue-index", index);
	add_int(o, "inuse", st.inuse);
	add_int(o, "vring-num", st.vq.size);
	add_int(o, "vring-num-default", st.size_default);
	add_int(o, "vring-desc", (int64_t)st.vq.desc_gpa);
	add_int(o, "vring-avail", (int64_t)st.vq.avail_gpa);
	add_int(o, "vring-used", (int64_t)st.vq.used_gpa);
	add_int(o, "last-avail-idx", st.vq.last_avail);
	add_int(o, "shadow-avail-idx", st.vq.shadow_avail);
	add_int(o, "used-idx", st.vq.used_idx);
	add_int(o, "signalled-used", st.vq.signalled_used);
	json_object_object_add(o, "signalled-used-valid",
			       json_object_new_boolean(st.vq.signalled_valid));
	json_object_object_add(o, "running", json_object_new_boolean(st.running));
	json_object_object_add(o, "iothread", json_object_new_string(st.iothread));
	json_object_object_add(o, "broken", json_object_new_boolean(st.vq.broken));
	json_object_object_add(o, "event-idx", json_object_new_boolean(st.vq.event_idx));
	json_object_object_add(o, "notify-enabled", json_object_new_boolean(st.vq.notify_enabled));
	add_int(o, "avail-flags", st.vq.avail_flags);
	add_int(o, "used-flags", st.vq.used_flags);
	add_int(o, "used-event", st.vq.used_event);
	add_int(o, "avail-event", st.vq.avail_event);
	*ret = o;
	return 0;
}

/* query-block: QEMU's BlockInfo of each disk (virtio-blk, then scsi-hd), its node as "inserted" */
static int qmp_query_block(void *opaque, struct json_object *args, struct json_object **ret,
			   struct error **errp)
{
	unsigned int nblk = drive_count();

	*ret = json_object_new_array();
	for (unsigned int i = 0; i < nblk + scsibus_nr_disks(); i++) {
		struct json_object *o = json_object_new_object();
		const char *name = i < nblk ? drive_name(i) : scsibus_disk_id(i - nblk);
		struct blockdev *bs = i < nblk ? drive_node(i) : scsibus_disk_node(i - nblk);

		json_object_object_add(o, "device", json_object_new_string(""));
		json_object_object_add(o, "qdev", json_object_new_string(name));
		json_object_object_add(o, "type", json_object_new_string("unknown"));
		json_object_object_add(o, "removable", json_object_new_boolean(false));
		json_object_object_add(o, "locked", json_object_new_boolean(false));
		json_object_object_add(o, "inserted", block_qmp_node_info(bs));
		json_object_array_add(*ret, o);
	}
	return 0;
}

/* QEMU's BlockDeviceStats from a device's counters */
static struct json_object *stats_json(const struct vioq_stats *st)
{
	static const char *const cls[VIOQ_ACCT_NR] = { "rd", "wr", "flush", "unmap" };
	struct json_object *o = json_object_new_object();
	char key[48];

	for (unsigned int c = 0; c < VIOQ_ACCT_NR; c++) {
		if (c != VIOQ_ACCT_FLUSH) {
			snprintf(key, sizeof(key), "%s_bytes", cls[c]);
			add_int(o, key, (int64_t)st->bytes[c]);
			snprintf(key, sizeof(key), "%s_merged", cls[c]);
			add_int(o, key, 0); /* vireo does not merge requests */
		}
		snprintf(key, sizeof(key), "%s_operations", cls[c]);
		add_int(o, key, (int64_t)st->ops[c]);
		snprintf(key, sizeof(key), "%s_total_time_ns", cls[c]);
		add_int(o, key, (int64_t)st->total_ns[c]);
		snprintf(key, sizeof(key), "failed_%s_operations", cls[c]);
		add_int(o, key, (int64_t)st->failed[c]);
		snprintf(key, sizeof(key), "invalid_%s_operations", cls[c]);
		add_int(o, key, (int64_t)st->invalid[c]);
	}
	if (st->last_done_ns) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		add_int(o, "idle_time_ns",
			(int64_t)((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec -
				  st->last_done_ns));
	}
	add_int(o, "wr_highest_offset", (int64_t)st->wr_highest_offset);
	json_object_object_add(o, "account_invalid", json_object_new_boolean(true));
	json_object_object_add(o, "account_failed", json_object_new_boolean(true));
	json_object_object_add(o, "timed_stats", json_object_new_array());
	return o;
}

/*
 * query-blockstats: each disk's counters (QEMU's BlockStats), with its node's name. The
 * counters are kept per device, where requests are parsed and completed; "query-nodes"
 * (counters per node of the graph) is not kept, and refused.
 */
static int qmp_query_blockstats(void *opaque, struct json_object *args, struct json_object **ret,
				struct error **errp)
{
	struct json_object *qn;

	if (args && json_object_object_get_ex(args, "query-nodes", &qn) &&
	    json_object_get_boolean(qn)) {
		error_setg(errp, "query-nodes: statistics are kept per device, not per node");
		return -1;
	}
	*ret = json_object_new_array();
	for (unsigned int i = 0; i < drive_count() + scsibus_nr_disks(); i++) {
		struct json_object *o = json_object_new_object();
		unsigned int k = i - drive_count(); /* the scsi-hd's index past the virtio-blk */
		bool blk = i < drive_count();
		struct vioq_stats st;

		if (blk)
			vblk_get_stats(drive_device(i), &st);
		else
			scsibus_disk_stats(k, &st);
		json_object_object_add(o, "device", json_object_new_string(""));
		json_object_object_add(o, "qdev", json_object_new_string(
			blk ? drive_name(i) : scsibus_disk_id(k)));
		json_object_object_add(o, "node-name", json_object_new_string(
			(blk ? drive_node(i) : scsibus_disk_node(k))->node_name));
		json_object_object_add(o, "stats", stats_json(&st));
		json_object_array_add(*ret, o);
	}
	return 0;
}

/* device_add: a scsi-hd on a virtio-scsi controller while the guest runs */
static int qmp_device_add(void *opaque, struct json_object *args, struct json_object **ret,
			  struct error **errp)
{
	struct machine *m = opaque;
	struct json_object *a, *d;
	const char *driver;
	int r;

	if (!args || !json_object_object_get_ex(args, "driver", &d) ||
	    !json_object_is_type(d, json_type_string)) {
		error_setg(errp, "Parameter 'driver' is missing or not a string");
		return -1;
	}
	driver = json_object_get_string(d);
	if (!scsibus_handles(driver) || strcmp(driver, "scsi-hd")) {
		error_setg(errp, "driver '%s' cannot be hot-plugged (scsi-hd can)", driver);
		return -1;
	}
	a = json_object_new_object();
	json_object_object_foreach(args, key, val)
		if (strcmp(key, "driver"))
			json_object_object_add(a, key, json_object_get(val));
	r = scsibus_device_add(&m->vm, &m->pci, driver, a, true, errp);
	json_object_put(a);
	if (r < 0)
		return -1;
	*ret = json_object_new_object();
	return 0;
}

/* device_del: a scsi-hd goes at once (DEVICE_DELETED follows); other devices stay */
static int qmp_device_del(void *opaque, struct json_object *args, struct json_object **ret,
			  struct error **errp)
{
	struct machine *m = opaque;
	struct json_object *i, *ev;
	char path[96];
	const char *id;
	int r;

	if (!args || !json_object_object_get_ex(args, "id", &i) ||
	    !json_object_is_type(i, json_type_string)) {
		error_setg(errp, "Parameter 'id' is missing or not a string");
		return -1;
	}
	id = json_object_get_string(i);
	r = scsibus_device_del(id, errp);
	if (r < 0)
		return -1;
	if (r == 1) {
		for (unsigned int k = 0; k < drive_count(); k++) {
			if (!strcmp(drive_name(k), id)) {
				error_setg(errp, "Device '%s' (virtio-blk-pci) cannot be "
					   "hot-unplugged", id);
				return -1;
			}
		}
		error_set_class(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found", id);
		return -1;
	}
	snprintf(path, sizeof(path), "/machine/peripheral/%s", id);
	ev = json_object_new_object();
	json_object_object_add(ev, "device", json_object_new_string(id));
	json_object_object_add(ev, "path", json_object_new_string(path));
	qmp_event(m->qmp, "DEVICE_DELETED", ev);
	*ret = json_object_new_object();
	return 0;
}

static int qmp_query_commands(void *opaque, struct json_object *args, struct json_object **ret,
			      struct error **errp)
{
	*ret = qmp_command_list(machine_qmp_commands, machine_qmp_nr_commands);
	return 0;
}

const struct qmp_command machine_qmp_commands[] = {
	BITMAP_QMP_COMMANDS,
	BLOCK_QMP_COMMANDS,
	INFO_QMP_COMMANDS,
	JOB_QMP_COMMANDS,
	SNAPSHOT_QMP_COMMANDS,
	{ "device_add", qmp_device_add },
	{ "device_del", qmp_device_del },
	{ "query-commands", qmp_query_commands },
	{ "query-cpus-fast", qmp_query_cpus_fast },
	{ "query-block", qmp_query_block },
	{ "query-blockstats", qmp_query_blockstats },
	{ "query-kvm", qmp_query_kvm },
	{ "query-status", qmp_query_status },
	{ "quit", qmp_quit },
	{ "system_powerdown", qmp_system_powerdown },
	{ "system_reset", qmp_system_reset },
	{ "x-query-virtio", qmp_x_query_virtio },
	{ "x-query-virtio-queue-status", qmp_x_query_virtio_queue_status },
};
const unsigned int machine_qmp_nr_commands =
	sizeof(machine_qmp_commands) / sizeof(machine_qmp_commands[0]);

void machine_qmp_shutdown_event(struct machine *m)
{
	struct json_object *data;
	const char *reason = m->host_stop_reason;

	if (!m->qmp)
		return;
	if (!reason) {
		switch (atomic_load(&m->vm.stop_reason)) {
		case VM_STOP_RESET:
			reason = "guest-reset";
			break;
		case VM_STOP_ERROR:
			reason = "guest-panic";
			break;
		default:
			reason = "guest-shutdown";
			break;
		}
	}
	data = json_object_new_object();
	json_object_object_add(data, "guest", json_object_new_boolean(!m->host_stop_reason));
	json_object_object_add(data, "reason", json_object_new_string(reason));
	qmp_event(m->qmp, "SHUTDOWN", data);
}
