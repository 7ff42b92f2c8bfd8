/* SPDX-License-Identifier: Apache-2.0 */
/* The queue keys of multiqueue devices (devopts.h). */
#include "vmm/devopts.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/keyval.h"
#include "devices/virtqueue.h"
#include "iothreads/iothread.h"

/* One entry of QEMU's iothread-vq-mapping list: an id, or {"iothread": ID, "vqs": [N, ...]}. */
static int map_entry(struct json_object *e, size_t i, const char **id, struct json_object **vqs,
		     struct error **errp)
{
	struct json_object *v;

	*vqs = NULL;
	if (json_object_is_type(e, json_type_string)) {
		*id = json_object_get_string(e);
		return 0;
	}
	if (!json_object_is_type(e, json_type_object) ||
	    !json_object_object_get_ex(e, "iothread", &v) || !json_object_is_type(v, json_type_string))
		goto bad;
	*id = json_object_get_string(v);
	json_object_object_foreach(e, key, val) {
		if (!strcmp(key, "vqs") && json_object_is_type(val, json_type_array))
			*vqs = val;
		else if (strcmp(key, "iothread"))
			goto bad;
	}
	return 0;
bad:
	error_setg(errp, "iothread-vq-mapping: entry %zu is not an iothread id or {\"iothread\": "
		   "ID, \"vqs\": [N, ...]}", i);
	return -1;
}

/*
 * iothread-vq-mapping (devopts.h). *nq is num-queues, 0 when not given: then one queue per
 * entry, or as many as the "vqs" name. Fills ids[queue].
 */
static int device_map(struct json_object *v, uint64_t *nq, const char **ids, char *buf,
		      size_t len, struct error **errp)
{
	const char *ent[DRIVE_MAX_QUEUES];
	struct json_object *vqs[DRIVE_MAX_QUEUES] = { 0 };
	unsigned int n = 0, with_vqs = 0;
	size_t total = 0;
	char *save = NULL, *tok;

	if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (n == DRIVE_MAX_QUEUES) {
				error_setg(errp, "iothread-vq-mapping: more than %d entries",
					   DRIVE_MAX_QUEUES);
				return -1;
			}
			if (map_entry(json_object_array_get_idx(v, i), i, &ent[n], &vqs[n], errp))
				return -1;
			if (vqs[n]) {
				with_vqs++;
				total += json_object_array_length(vqs[n]);
			}
			n++;
		}
	} else if (json_object_is_type(v, json_type_string) &&
		   (size_t)json_object_get_string_len(v) < len) {
		snprintf(buf, len, "%s", json_object_get_string(v));
		for (tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
			if (n == DRIVE_MAX_QUEUES) {
				error_setg(errp, "iothread-vq-mapping: more than %d iothreads",
					   DRIVE_MAX_QUEUES);
				return -1;
			}
			ent[n++] = tok;
		}
	} else {
		error_setg(errp, "iothread-vq-mapping: expected ID:ID:... or a list");
		return -1;
	}
	if (!n) {
		error_setg(errp, "iothread-vq-mapping: no iothread listed");
		return -1;
	}
	if (with_vqs && with_vqs != n) {
		error_setg(errp, "iothread-vq-mapping: give \"vqs\" on every entry or on none");
		return -1;
	}
	if (!*nq)
		*nq = with_vqs ? total : n;
	if (*nq > DRIVE_MAX_QUEUES) {
		error_setg(errp, "num-queues=%llu: too many queues", (unsigned long long)*nq);
		return -1;
	}
	if (!with_vqs) {
		if (n > *nq) {
			error_setg(errp, "iothread-vq-mapping lists %u iothreads for %llu queues", n,
				   (unsigned long long)*nq);
			return -1;
		}
		for (unsigned int q = 0; q < *nq; q++)
			ids[q] = ent[q % n];
		return 0;
	}
	for (unsigned int q = 0; q < *nq; q++)
		ids[q] = NULL;
	for (unsigned int e = 0; e < n; e++) {
		for (size_t k = 0; k < json_object_array_length(vqs[e]); k++) {
			struct json_object *x = json_object_array_get_idx(vqs[e], k);
			int64_t q = json_object_get_int64(x);

			if (!json_object_is_type(x, json_type_int) || q < 0 || (uint64_t)q >= *nq) {
				error_setg(errp, "iothread-vq-mapping: vqs of '%s': %s is not a queue "
					   "of the device (0..%llu)", ent[e],
					   json_object_to_json_string(x),
					   (unsigned long long)*nq - 1);
				return -1;
			}
			if (ids[q]) {
				error_setg(errp, "iothread-vq-mapping: queue %lld is mapped twice "
					   "('%s' and '%s')", (long long)q, ids[q], ent[e]);
				return -1;
			}
			ids[q] = ent[e];
		}
	}
	for (unsigned int q = 0; q < *nq; q++) {
		if (!ids[q]) {
			error_setg(errp, "iothread-vq-mapping: queue %u has no iothread", q);
			return -1;
		}
	}
	return 0;
}

int devopts_take_queues(struct json_object *a, unsigned int qs_def, struct devopts_queues *d,
			struct error **errp)
{
	d->nq = 0;
	d->qs = qs_def;
	d->iothread = NULL;
	d->mapping = NULL;
	if (keyval_take_u64(a, "num-queues", &d->nq, errp) < 0 ||
	    keyval_take_u64(a, "queue-size", &d->qs, errp) < 0 ||
	    keyval_take_string(a, "iothread", &d->iothread, errp) < 0)
		return -1;
	if (keyval_take_value(a, "iothread-vq-mapping", &d->mapping) == 0 &&
	    device_map(d->mapping, &d->nq, d->ids, d->buf, sizeof(d->buf), errp) < 0)
		return -1;
	return 0;
}

int devopts_resolve_queues(struct devopts_queues *d, struct iothread **map,
			   unsigned int *num_queues, unsigned int *queue_size,
			   struct error **errp)
{
	if (d->iothread && d->mapping) {
		error_setg(errp, "iothread and iothread-vq-mapping exclude each other");
		return -1;
	}
	if (!d->nq)
		d->nq = 1;
	if (d->nq > DRIVE_MAX_QUEUES) {
		error_setg(errp, "num-queues=%llu: too many queues", (unsigned long long)d->nq);
		return -1;
	}
	if (d->qs < 4 || d->qs > VIRTQ_MAX_SIZE || (d->qs & (d->qs - 1))) {
		error_setg(errp, "queue-size=%llu is not a power of two in 4..%d",
			   (unsigned long long)d->qs, VIRTQ_MAX_SIZE);
		return -1;
	}
	for (unsigned int i = 0; i < d->nq; i++) {
		const char *id = d->mapping ? d->ids[i] : d->iothread ? d->iothread : "io0";
		struct iothread_obj *t = iothread_obj_find(id);

		if (!t && !d->mapping && !d->iothread) { /* none named: io0, as --drive's default */
			struct iothread_opts def = { .poll_max_ns = IOTHREAD_POLL_MAX_NS_DEFAULT,
						     .poll_grow = IOTHREAD_POLL_GROW_DEFAULT,
						     .poll_shrink = IOTHREAD_POLL_SHRINK_DEFAULT };

			t = iothread_obj_create(id, &def, "iothread", errp);
			if (!t)
				return -1;
		}
		if (!t) {
			error_setg(errp, "no iothread '%s' (create it with --object iothread,id=%s)",
				   id, id);
			return -1;
		}
		map[i] = t->it;
	}
	*num_queues = (unsigned int)d->nq;
	*queue_size = (unsigned int)d->qs;
	return 0;
}
