/* SPDX-License-Identifier: Apache-2.0 */
/* --drive parsing and set-up; the option syntax is in drive.h. */
#include "vmm/drive.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "common/keyval.h"
#include "control/block_nodes.h"
#include "common/parse.h"
#include "common/util.h"
#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "iothreads/iothread.h"
#include "vmm/devopts.h"
#include "control/iothread_obj.h"
#include "vmm/scsi.h"
#include "vmm/vm.h"

/* ---------------------------------------------------------------------------------------------
 * Parsing
 */

/* Splits off the next "key=value" of @s (",," is a literal comma). Returns a malloc'd copy. */
static char *next_item(const char **s)
{
	const char *p = *s;
	char *out = malloc(strlen(p) + 1), *o = out;

	if (!out)
		return NULL;
	while (*p) {
		if (*p == ',') {
			if (p[1] == ',') {
				*o++ = ',';
				p += 2;
				continue;
			}
			p++;
			break;
		}
		*o++ = *p++;
	}
	*o = '\0';
	*s = p;
	return out;
}

static int parse_uint(const char *key, const char *val, uint64_t min, uint64_t max,
		      unsigned int *out, struct error **errp)
{
	uint64_t v;

	if (parse_u64(key, val, min, max, &v, errp) < 0)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

static int parse_map(const char *val, uint16_t *map, unsigned int *n, struct error **errp)
{
	const char *p = val;

	*n = 0;
	for (;;) {
		char *end;
		unsigned long v;

		if (*n == DRIVE_MAX_QUEUES) {
			error_setg(errp, "iothread-vq-mapping: more than %d queues",
				   DRIVE_MAX_QUEUES);
			return -1;
		}
		errno = 0;
		v = strtoul(p, &end, 10);
		if (end == p || errno || v >= DRIVE_MAX_IOTHREADS || *p == '-' || *p == '+') {
			error_setg(errp, "iothread-vq-mapping: '%s' is not a ':'-separated list of "
				   "iothread indices (0..%d)", val, DRIVE_MAX_IOTHREADS - 1);
			return -1;
		}
		map[(*n)++] = (uint16_t)v;
		if (*end == '\0')
			return 0;
		if (*end != ':') {
			error_setg(errp, "iothread-vq-mapping: unexpected '%c' in '%s'", *end, val);
			return -1;
		}
		p = end + 1;
	}
}

static int set_string(char **dst, const char *key, const char *val, struct error **errp)
{
	if (*dst) {
		error_setg(errp, "%s given twice", key);
		return -1;
	}
	*dst = strdup(val);
	if (!*dst) {
		error_setg(errp, "%s: out of memory", key);
		return -1;
	}
	return 0;
}

/*
 * A throttling key: QEMU -drive's iops=, bps_rd=, iops_max_length=, ... or its throttling.*
 * spelling (throttling.iops-total=). 0 when @key is none; else 1, c->throttle_set false when
 * the value was refused.
 */
static int take_throttle_key(struct drive_config *c, const char *key, const char *val,
			     struct error **errp)
{
	bool dotted = !strncmp(key, "throttling.", 11);
	enum throttle_keys voc = dotted ? THROTTLE_KEYS_GROUP : THROTTLE_KEYS_LEGACY;
	const char *name = dotted ? key + 11 : key;
	uint64_t v;

	if (!throttle_limits_get_key(&c->throttle, voc, name, &v)) {
		if (!dotted)
			return 0;
		error_setg(errp, "%s: not a throttling key (throttling.iops-total, "
			   "throttling.bps-read-max, ...)", key);
		c->throttle_set = false;
		return 1;
	}
	c->throttle_set = parse_u64(key, val, 0, THROTTLE_VALUE_MAX, &v, errp) == 0 &&
			  throttle_limits_set_key(&c->throttle, voc, name, v, errp) == 1;
	return 1;
}

/* Applies one key; map_n/map_given collect iothread-vq-mapping for the final check. */
static int apply(struct drive_config *c, const char *key, const char *val, unsigned int *map_n,
		 bool *map_given, struct error **errp)
{
	if (!strcmp(key, "file")) {
		if (!*val) {
			error_setg(errp, "file: empty path");
			return -1;
		}
		return set_string(&c->file, key, val, errp);
	}
	if (!strcmp(key, "format")) {
		if (strcmp(val, "raw") && !blockdev_find_format(val)) {
			error_setg(errp, "format: unknown format '%s'", val);
			return -1;
		}
		free(c->format);
		c->format = NULL;
		return set_string(&c->format, key, val, errp);
	}
	if (!strcmp(key, "if")) {
		if (strcmp(val, "virtio-blk") && strcmp(val, "scsi")) {
			error_setg(errp, "if: '%s' is not supported (expected virtio-blk or scsi)",
				   val);
			return -1;
		}
		c->if_scsi = !strcmp(val, "scsi");
		return 0;
	}
	if (!strcmp(key, "num-queues"))
		return parse_uint(key, val, 1, DRIVE_MAX_QUEUES, &c->num_queues, errp);
	if (!strcmp(key, "queue-size")) {
		if (parse_uint(key, val, 4, VIRTQ_MAX_SIZE, &c->queue_size, errp) < 0)
			return -1;
		if (c->queue_size & (c->queue_size - 1)) {
			error_setg(errp, "queue-size: %s is not a power of two", val);
			return -1;
		}
		return 0;
	}
	if (!strcmp(key, "iothreads"))
		return parse_uint(key, val, 1, DRIVE_MAX_IOTHREADS, &c->iothreads, errp);
	if (!strcmp(key, "iothread-vq-mapping")) {
		*map_given = true;
		return parse_map(val, c->vq_map, map_n, errp);
	}
	if (!strcmp(key, "cache")) {
		if (!strcmp(val, "none")) {
			c->cache_none = true;
		} else if (!strcmp(val, "writeback")) {
			c->cache_none = false;
		} else {
			error_setg(errp, "cache: '%s' is not none or writeback", val);
			return -1;
		}
		return 0;
	}
	if (!strcmp(key, "readonly"))
		return parse_bool(key, val, &c->readonly, errp);
	if (!strcmp(key, "serial")) {
		if (strlen(val) > VIRTIO_BLK_ID_BYTES) {
			error_setg(errp, "serial: '%s' is longer than %d bytes", val,
				   VIRTIO_BLK_ID_BYTES);
			return -1;
		}
		free(c->serial);
		c->serial = NULL;
		return set_string(&c->serial, key, val, errp);
	}
	if (!strcmp(key, "poll-max-ns")) {
		c->poll_max_ns_set = true;
		return parse_u64(key, val, 0, 1000000000ull, &c->poll_max_ns, errp);
	}
	if (!strcmp(key, "poll-grow")) {
		c->poll_grow_set = true;
		if (parse_uint(key, val, 0, 1024, &c->poll_grow, errp) < 0)
			return -1;
		if (!c->poll_grow) /* 0 means the default factor, as in QEMU */
			c->poll_grow = IOTHREAD_POLL_GROW_DEFAULT;
		return 0;
	}
	if (!strcmp(key, "poll-shrink")) {
		c->poll_shrink_set = true;
		return parse_uint(key, val, 0, 1024, &c->poll_shrink, errp);
	}
	if (!strcmp(key, "iothread-nice")) {
		c->iothread_nice_set = true;
		return parse_int(key, val, -20, 19, &c->iothread_nice, errp);
	}
	if (!strcmp(key, "register-memory"))
		return parse_bool(key, val, &c->register_memory, errp);
	if (!strcmp(key, "poll-backoff")) {
		bool backoff;

		if (parse_bool(key, val, &backoff, errp) < 0)
			return -1;
		c->poll_keep = !backoff;
		c->poll_keep_set = true;
		return 0;
	}
	if (!strcmp(key, "group") || !strcmp(key, "throttling.group")) {
		free(c->throttle_group);
		c->throttle_group = NULL;
		return set_string(&c->throttle_group, key, val, errp);
	}
	if (take_throttle_key(c, key, val, errp))
		return c->throttle_set ? 0 : -1;
	/* a driver option: blockdev_open() refuses it by name if the format does not take it */
	if (!*key) {
		error_setg(errp, "'=%s': empty key", val);
		return -1;
	}
	return blockdev_opts_set(&c->driver_opts, key, val, errp);
}

static int check_file(const struct drive_config *c, struct error **errp)
{
	struct stat st;

	if (!c->file) {
		error_setg(errp, "file= is missing");
		return -1;
	}
	if (blockdev_is_nbd(c->file)) /* an NBD export: opening it checks it */
		return 0;
	if (stat(c->file, &st) < 0) {
		error_setg_errno(errp, errno, "file=%s", c->file);
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		error_setg(errp, "file=%s is neither a regular file nor a block device", c->file);
		return -1;
	}
	if (access(c->file, c->readonly ? R_OK : R_OK | W_OK) < 0) {
		error_setg_errno(errp, errno, "file=%s (%s)", c->file,
				 c->readonly ? "read access" : "read-write access; or readonly=on");
		return -1;
	}
	return 0;
}

int drive_parse(const char *spec, struct drive_config *c, struct error **errp)
{
	const char *p = spec;
	unsigned int map_n = 0;
	bool map_given = false;

	memset(c, 0, sizeof(*c));
	c->num_queues = 1;
	c->queue_size = 256;
	c->iothreads = 1;
	c->poll_max_ns = IOTHREAD_POLL_MAX_NS_DEFAULT;
	c->poll_grow = IOTHREAD_POLL_GROW_DEFAULT;
	c->poll_shrink = IOTHREAD_POLL_SHRINK_DEFAULT;
	throttle_limits_init(&c->throttle);
	while (*p) {
		char *item = next_item(&p), *eq;
		int ret;

		if (!item) {
			error_setg(errp, "--drive: out of memory");
			goto err;
		}
		eq = strchr(item, '=');
		if (!eq) {
			error_setg(errp, "--drive: '%s' is not key=value", item);
			free(item);
			goto err;
		}
		*eq = '\0';
		ret = apply(c, item, eq + 1, &map_n, &map_given, errp);
		free(item);
		if (ret < 0) {
			error_prepend(errp, "--drive");
			goto err;
		}
	}
	if (!c->format && set_string(&c->format, "format", "raw", errp) < 0)
		goto err;
	if (map_given) {
		if (map_n != c->num_queues) {
			error_setg(errp, "--drive: iothread-vq-mapping lists %u queues, "
				   "num-queues is %u", map_n, c->num_queues);
			goto err;
		}
		for (unsigned int i = 0; i < map_n; i++) {
			if (c->vq_map[i] >= c->iothreads) {
				error_setg(errp, "--drive: iothread-vq-mapping: queue %u names "
					   "iothread %u, but iothreads is %u", i, c->vq_map[i],
					   c->iothreads);
				goto err;
			}
		}
	} else {
		for (unsigned int i = 0; i < c->num_queues; i++)
			c->vq_map[i] = (uint16_t)(i % c->iothreads);
	}
	if (c->queue_size < 4) {
		error_setg(errp, "--drive: queue-size must be at least 4");
		goto err;
	}
	if (c->throttle_group && !c->throttle_set) {
		error_setg(errp, "--drive: group=%s without any throttling limit (iops=, bps=, ...)",
			   c->throttle_group);
		goto err;
	}
	if (c->throttle_set && throttle_limits_check(&c->throttle, errp) < 0) {
		error_prepend(errp, "--drive: throttling: ");
		goto err;
	}
	if (check_file(c, errp) < 0) {
		error_prepend(errp, "--drive");
		goto err;
	}
	return 0;
err:
	drive_config_free(c);
	return -1;
}

void drive_config_free(struct drive_config *c)
{
	free(c->file);
	free(c->format);
	free(c->serial);
	free(c->throttle_group);
	c->file = c->format = c->serial = c->throttle_group = NULL;
	blockdev_opts_free(&c->driver_opts);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up: the disks built so far (--drive and --device frontends) and the nodes --blockdev
 * made (main thread only). Iothreads live in iothread_obj.c, by id.
 */

struct drive {
	struct pci_bus *bus;
	struct blockdev *bs;       /* a reference of the drive's own */
	struct blockdev_user user; /* the device as the user of its node */
	struct vblk *dev;
	char name[32];
};

static struct drive drives[32];
static unsigned int nr_drives;

/* A drive that sets @key on shared iothread io@i must agree with the one that created it. */
static int shared_opt_agrees(bool set, const char *key, unsigned long long mine,
			     unsigned long long theirs, const char *const *names, unsigned int i,
			     struct error **errp)
{
	char a[24], b[24];

	if (!set || mine == theirs)
		return 0;
	snprintf(a, sizeof(a), "%llu", mine);
	snprintf(b, sizeof(b), "%llu", theirs);
	error_setg(errp, "--drive: %s=%s, but iothread io%u is shared with an earlier drive that "
		   "set %s", key, names ? names[mine] : a, i, names ? names[theirs] : b);
	return -1;
}

/* Polling settings a drive gives explicitly must match those of an iothread it shares. */
static int iothread_opts_match(const struct drive_config *c, unsigned int i,
			       const struct iothread_opts *o, struct error **errp)
{
	static const char *const backoff[] = { "on", "off" }; /* by poll_keep */

	if (c->iothread_nice_set && (!o->nice_set || o->nice != c->iothread_nice)) {
		char theirs[16] = "none";

		if (o->nice_set)
			snprintf(theirs, sizeof(theirs), "%d", o->nice);
		error_setg(errp, "--drive: iothread-nice=%d, but iothread io%u is shared with an "
			   "earlier drive that set %s", c->iothread_nice, i, theirs);
		return -1;
	}
	return shared_opt_agrees(c->poll_max_ns_set, "poll-max-ns", c->poll_max_ns,
				 o->poll_max_ns, NULL, i, errp) ||
	       shared_opt_agrees(c->poll_grow_set, "poll-grow", c->poll_grow, o->poll_grow, NULL,
				 i, errp) ||
	       shared_opt_agrees(c->poll_shrink_set, "poll-shrink", c->poll_shrink,
				 o->poll_shrink, NULL, i, errp) ||
	       shared_opt_agrees(c->poll_keep_set, "poll-backoff", c->poll_keep,
				 o->poll_keep_on_contention, backoff, i, errp)
		       ? -1
		       : 0;
}

struct iothread *drive_iothread(unsigned int i)
{
	struct iothread_obj *o;
	char id[16];

	snprintf(id, sizeof(id), "io%u", i);
	o = iothread_obj_find(id);
	return o ? o->it : NULL;
}

unsigned int drive_count(void)
{
	return nr_drives;
}

struct vblk *drive_device(unsigned int i)
{
	return i < nr_drives ? drives[i].dev : NULL;
}

const char *drive_name(unsigned int i)
{
	return i < nr_drives ? drives[i].name : NULL;
}

struct blockdev *drive_node(unsigned int i)
{
	return i < nr_drives ? drives[i].bs : NULL;
}

/* io0 .. io<iothreads-1>: shared when they exist, created with the drive's settings if not. */
static int iothreads_get(const struct drive_config *c, struct iothread_obj **objs,
			 struct error **errp)
{
	for (unsigned int i = 0; i < c->iothreads; i++) {
		struct iothread_opts o = {
			.poll_max_ns = c->poll_max_ns,
			.poll_grow = c->poll_grow,
			.poll_shrink = c->poll_shrink,
			.poll_keep_on_contention = c->poll_keep,
			.nice = c->iothread_nice,
			.nice_set = c->iothread_nice_set,
		};
		char id[16];

		snprintf(id, sizeof(id), "io%u", i);
		objs[i] = iothread_obj_find(id);
		if (objs[i]) {
			if (iothread_opts_match(c, i, &objs[i]->opts, errp) < 0)
				return -1;
			continue;
		}
		objs[i] = iothread_obj_create(id, &o, "--drive", errp);
		if (!objs[i])
			return -1;
	}
	return 0;
}

/*
 * register-memory=on: the drive's iothreads register guest RAM as io_uring fixed buffers, so
 * that reads and writes into it go out as READ_FIXED / WRITE_FIXED without the kernel mapping
 * the guest's pages on every request (~8 % more IOPS at QD32, page-cached). The price: all of
 * guest RAM is faulted in and pinned at start, so it is off by default.
 */
static int iothreads_register_memory(const struct vm *vm, struct iothread_obj **objs,
				     unsigned int n, struct error **errp)
{
	struct iovec regions[GMEM_MAX_REGIONS];
	int nr = 0;

	for (unsigned int k = 0; k < vm->mem.nr_regions; k++)
		regions[nr++] = (struct iovec){ vm->mem.regions[k].host, vm->mem.regions[k].size };
	for (unsigned int i = 0; i < n; i++) {
		if (iothread_obj_register_memory(objs[i], regions, nr, errp) < 0) {
			error_prepend(errp, "--drive: register-memory=on");
			return -1;
		}
	}
	return 0;
}

static struct blockdev *open_image(const struct drive_config *c, struct error **errp)
{
	struct blockdev_opts o = { 0 };
	struct blockdev *bs = NULL;

	for (size_t i = 0; i < c->driver_opts.nr_extra; i++)
		if (blockdev_opts_set(&o, c->driver_opts.extra[i].key,
				      c->driver_opts.extra[i].value, errp) < 0)
			goto out;
	o.submit = c->driver_opts.submit; /* blockdev_opts_set parsed submit= into it */
	if (blockdev_opts_set(&o, "format", c->format, errp) < 0 ||
	    blockdev_opts_set(&o, "cache", c->cache_none ? "none" : "writeback", errp) < 0 ||
	    blockdev_opts_set(&o, "readonly", c->readonly ? "on" : "off", errp) < 0)
		goto out;
	bs = blockdev_open(c->file, &o, errp);
out:
	blockdev_opts_free(&o);
	return bs;
}

/*
 * A throttle node over @bs (taking over the caller's reference) in the drive's group: the one
 * group= names, else one named after the device; given limits replace a group's. QEMU's
 * -drive throttles at its BlockBackend; a filter node here does the same for the device.
 */
static struct blockdev *throttle_over(struct blockdev *bs, const struct drive_config *c,
				      struct error **errp)
{
	struct blockdev_throttle_group *g;
	struct blockdev *t = NULL;
	const char *name = c->throttle_group;
	char def[32];

	if (!name) {
		snprintf(def, sizeof(def), c->if_scsi ? "scsi-drive%u" : "virtio-blk%u",
			 c->if_scsi ? scsibus_nr_disks() : nr_drives);
		name = def;
	}
	g = blockdev_throttle_group_get(name, &c->throttle, errp);
	if (!g)
		goto out;
	t = blockdev_throttle_open_over(bs, name, errp);
	blockdev_throttle_group_unref(g); /* the node holds the group */
out:
	if (!t)
		blockdev_close(bs);
	return t;
}

/* The drive as its node's root user: the device's drain hooks, and a move to another node
 * (a mirror's pivot) that moves the drive's own reference too. */
static void drive_drained_begin(void *opaque)
{
	struct drive *d = opaque;

	vblk_drain_ops.drained_begin(d->dev);
}

static void drive_drained_end(void *opaque)
{
	struct drive *d = opaque;

	vblk_drain_ops.drained_end(d->dev);
}

static int drive_replace(void *opaque, struct blockdev *bs, struct error **errp)
{
	struct drive *d = opaque;
	struct blockdev *old = d->bs;

	if (vblk_set_node_drained(d->dev, bs, errp) < 0)
		return -1;
	d->bs = blockdev_ref(bs);
	blockdev_unref(old);
	return 0;
}

static const struct blockdev_user_ops drive_user_ops = {
	.drained_begin = drive_drained_begin,
	.drained_end = drive_drained_end,
	.replace = drive_replace,
};

/*
 * Plugs a virtio-blk function over @bs (the drive takes over the caller's reference) with
 * @o's geometry; the device attaches as the node's user, as QEMU's frontends without
 * share-rw: others may read, not write.
 */
static int plug(struct vm *vm, struct pci_bus *bus, struct blockdev *bs, struct vblk_opts *o,
		const char *id, struct error **errp)
{
	struct drive *d = &drives[nr_drives];
	struct vpci_host host;

	if (nr_drives == ARRAY_SIZE(drives)) {
		error_setg(errp, "at most %zu disks", ARRAY_SIZE(drives));
		blockdev_close(bs);
		return -1;
	}
	for (unsigned int i = 0; id && i <= nr_drives; i++) {
		if (i == nr_drives ? scsibus_id_in_use(id) : !strcmp(drives[i].name, id)) {
			error_setg(errp, "id '%s' is already in use", id);
			blockdev_close(bs);
			return -1;
		}
	}
	if (id)
		snprintf(d->name, sizeof(d->name), "%s", id);
	else
		snprintf(d->name, sizeof(d->name), "virtio-blk%u", nr_drives);
	d->bs = bs;
	d->user = (struct blockdev_user){
		.role = d->name,
		.perm = BLOCKDEV_PERM_READ | (o->read_only ? 0 : BLOCKDEV_PERM_WRITE),
		.shared = BLOCKDEV_PERM_READ | BLOCKDEV_PERM_WRITE_UNCHANGED,
	};
	if (blockdev_attach(bs, &d->user, errp) < 0)
		goto err_close;
	o->bs = bs;
	host = vm_vpci_host(vm);
	d->dev = vblk_create(&host, d->name, o, errp);
	if (!d->dev)
		goto err_detach;
	if (pci_bus_add_device(bus, vblk_pci(d->dev), -1, errp) < 0)
		goto err_dev;
	/* a change of the graph under the node drains the device first */
	d->user.ops = &drive_user_ops;
	d->user.opaque = d;
	d->bus = bus;
	nr_drives++;
	return 0;
err_dev:
	vblk_destroy(d->dev);
	d->dev = NULL;
err_detach:
	blockdev_detach(&d->user);
err_close:
	blockdev_close(d->bs);
	d->bs = NULL;
	return -1;
}

int drive_add(struct vm *vm, struct pci_bus *bus, const char *spec, struct error **errp)
{
	struct iothread_obj *objs[DRIVE_MAX_IOTHREADS];
	struct iothread *map[DRIVE_MAX_QUEUES];
	struct drive_config c;
	struct blockdev *bs;
	struct vblk_opts o;

	if (drive_parse(spec, &c, errp) < 0)
		return -1;
	if (iothreads_get(&c, objs, errp) < 0 ||
	    (c.register_memory && iothreads_register_memory(vm, objs, c.iothreads, errp) < 0))
		goto err;
	bs = open_image(&c, errp);
	if (bs && c.throttle_set)
		bs = throttle_over(bs, &c, errp);
	if (!bs)
		goto err_named;
	for (unsigned int i = 0; i < c.num_queues; i++)
		map[i] = objs[c.vq_map[i]]->it;
	o = (struct vblk_opts){ .read_only = c.readonly, .serial = c.serial,
				.num_queues = c.num_queues, .queue_size = c.queue_size,
				.iothreads = map };
	if (c.if_scsi ? scsibus_drive_add(vm, bus, bs, c.readonly, c.serial, c.num_queues,
					  c.queue_size, map, errp) < 0
		      : plug(vm, bus, bs, &o, NULL, errp) < 0)
		goto err_named;
	drive_config_free(&c);
	return 0;
err_named:
	error_prepend(errp, "--drive file=%s", c.file);
err:
	drive_config_free(&c);
	return -1;
}

/* The --device keys other than driver and drive, into @o and @map. */
static int device_keys(struct json_object *a, struct vblk_opts *o, struct iothread **map,
		       struct error **errp)
{
	struct devopts_queues d;

	if (devopts_take_queues(a, 256, &d, errp) < 0 ||
	    keyval_take_string(a, "serial", &o->serial, errp) < 0)
		return -1;
	if (keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (o->serial && strlen(o->serial) > VIRTIO_BLK_ID_BYTES) {
		error_setg(errp, "serial: '%s' is longer than %d bytes", o->serial,
			   VIRTIO_BLK_ID_BYTES);
		return -1;
	}
	return devopts_resolve_queues(&d, map, &o->num_queues, &o->queue_size, errp);
}

int drive_device_add(struct vm *vm, struct pci_bus *bus, const char *spec, struct error **errp)
{
	struct json_object *a = keyval_parse(spec, "driver", errp);
	struct iothread *map[DRIVE_MAX_QUEUES];
	const char *driver = NULL, *node = NULL, *id = NULL;
	struct vblk_opts o = { 0 };
	struct blockdev *bs;

	if (!a || keyval_take_string(a, "driver", &driver, errp) < 0)
		goto err;
	if (scsibus_handles(driver)) { /* virtio-scsi-pci, scsi-hd */
		if (scsibus_device_add(vm, bus, driver, a, false, errp) < 0)
			goto err;
		json_object_put(a);
		return 0;
	}
	if (keyval_take_string(a, "drive", &node, errp) < 0 ||
	    keyval_take_string(a, "id", &id, errp) < 0)
		goto err;
	if (id && (!blockdev_node_name_valid(id) || strlen(id) >= sizeof(drives[0].name))) {
		error_setg(errp, "id '%s': must start with a letter and hold at most 31 letters, "
			   "digits, '-', '.' or '_'", id);
		goto err;
	}
	if (!driver || strcmp(driver, "virtio-blk-pci")) {
		error_setg(errp, "driver '%s' is not supported (virtio-blk-pci, virtio-scsi-pci, "
			   "scsi-hd)",
			   driver ? driver : "");
		goto err;
	}
	if (!node) {
		error_setg(errp, "drive= (the node to serve) is missing");
		goto err;
	}
	bs = blockdev_find_node(node);
	if (!bs) {
		error_setg(errp, "drive=%s: no node of that name (create it with --blockdev)", node);
		goto err;
	}
	o.iothreads = map;
	if (device_keys(a, &o, map, errp) < 0)
		goto err;
	o.read_only = bs->read_only;
	if (plug(vm, bus, blockdev_ref(bs), &o, id, errp) < 0) /* plug drops it on failure */
		goto err;
	json_object_put(a);
	return 0;
err:
	json_object_put(a);
	error_prepend(errp, "--device");
	return -1;
}

int drive_block_resize(const char *device, const char *node, uint64_t size,
		       struct error **errp)
{
	for (unsigned int i = 0; i < nr_drives; i++) {
		if (device ? !strcmp(drives[i].name, device) : !strcmp(drives[i].bs->node_name, node))
			return vblk_resize(drives[i].dev, size, errp);
	}
	return scsibus_block_resize(device, node, size, errp); /* a scsi-hd's, or 1 */
}

struct blockdev *drive_find_node(const char *name)
{
	for (unsigned int i = 0; i < nr_drives; i++)
		if (!strcmp(drives[i].name, name))
			return drives[i].bs;
	for (unsigned int i = 0; i < scsibus_nr_disks(); i++)
		if (!strcmp(scsibus_disk_id(i), name))
			return scsibus_disk_node(i);
	return NULL;
}

void drive_cleanup(void)
{
	scsibus_cleanup(); /* its disks before the iothreads and the nodes */
	for (unsigned int i = 0; i < nr_drives; i++) {
		pci_bus_remove_device(drives[i].bus, vblk_pci(drives[i].dev));
		drives[i].user.ops = NULL;
		vblk_destroy(drives[i].dev);
		drives[i].dev = NULL;
	}
	iothread_obj_cleanup();
	for (unsigned int i = 0; i < nr_drives; i++) {
		blockdev_detach(&drives[i].user);
		blockdev_close(drives[i].bs);
		drives[i].bs = NULL;
	}
	nr_drives = 0;
	/* last: a node --blockdev made may be the child of another */
	block_nodes_cleanup();
}
