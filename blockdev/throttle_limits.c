/* SPDX-License-Identifier: Apache-2.0 */
/* Throttle limits: checking, their keys, and the bucket arithmetic (see throttle.h). Pure: the
 * caller gives the time and locks the state. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "blockdev/throttle.h"
#include "common/keyval.h"
#include "common/util.h"

#define OPS_SCALE 1000 /* I/O counts are kept in thousandths */

static bool is_ops(int k)
{
	return k >= THROTTLE_OPS_TOTAL;
}

void throttle_limits_init(struct throttle_limits *l)
{
	*l = (struct throttle_limits){ 0 };
	for (int k = 0; k < THROTTLE_KINDS; k++)
		l->l[k].max_length = 1;
}

bool throttle_limits_enabled(const struct throttle_limits *l)
{
	for (int k = 0; k < THROTTLE_KINDS; k++)
		if (l->l[k].avg)
			return true;
	return false;
}

int throttle_limits_check(const struct throttle_limits *l, struct error **errp)
{
	const struct throttle_limit *b = l->l;

	for (int base = 0; base < THROTTLE_KINDS; base += 3) {
		bool avg = b[base].avg && (b[base + 1].avg || b[base + 2].avg);
		bool max = b[base].max && (b[base + 1].max || b[base + 2].max);

		if (avg || max) {
			error_setg(errp, "bps/iops/max total values and read/write values cannot be "
				   "used at the same time");
			return -1;
		}
	}
	if (l->iops_size && !b[THROTTLE_OPS_TOTAL].avg && !b[THROTTLE_OPS_READ].avg &&
	    !b[THROTTLE_OPS_WRITE].avg) {
		error_setg(errp, "iops size requires an iops value to be set");
		return -1;
	}
	for (int k = 0; k < THROTTLE_KINDS; k++) {
		if (b[k].avg > THROTTLE_VALUE_MAX || b[k].max > THROTTLE_VALUE_MAX) {
			error_setg(errp, "bps/iops/max values must be within [0, %llu]",
				   THROTTLE_VALUE_MAX);
			return -1;
		}
		if (!b[k].max_length) {
			error_setg(errp, "the burst length cannot be 0");
			return -1;
		}
		if (b[k].max_length > 1 && !b[k].max) {
			error_setg(errp, "burst length set without burst rate");
			return -1;
		}
		if (b[k].max && b[k].max_length > THROTTLE_VALUE_MAX / b[k].max) {
			error_setg(errp, "burst length too high for this burst rate");
			return -1;
		}
		if (b[k].max && !b[k].avg) {
			error_setg(errp, "bps_max/iops_max require corresponding bps/iops values");
			return -1;
		}
		if (b[k].max && b[k].max < b[k].avg) {
			error_setg(errp, "bps_max/iops_max cannot be lower than bps/iops");
			return -1;
		}
	}
	return 0;
}

/* ---- the buckets ----------------------------------------------------------------------------- */

/* Rates and sizes of kind @k's buckets, in its units (bytes, thousandths of an I/O). */
static void sizes(const struct throttle_limit *b, int k, uint64_t *rate, uint64_t *size,
		  uint64_t *burst_rate, uint64_t *burst_size)
{
	uint64_t s = is_ops(k) ? OPS_SCALE : 1;

	*rate = b->avg * s;
	*burst_rate = *burst_size = 0;
	if (!b->avg) {
		*size = 0;
	} else if (!b->max) {
		*size = b->avg * s / 10; /* a tenth of a second passes at once */
	} else {
		*size = b->max * b->max_length * s;
		if (b->max_length > 1) { /* a burst runs at the burst rate */
			*burst_rate = b->max * s;
			*burst_size = b->max * s / 10;
		}
	}
}

static void state_apply(struct throttle_state *ts, const struct throttle_limits *l,
			uint64_t now_ns, bool init)
{
	ts->lim = *l;
	for (int k = 0; k < THROTTLE_KINDS; k++) {
		uint64_t rate, size, brate, bsize;

		sizes(&l->l[k], k, &rate, &size, &brate, &bsize);
		if (init) {
			token_bucket_init(&ts->main[k], rate, size, now_ns);
			token_bucket_init(&ts->burst[k], brate, bsize, now_ns);
		} else {
			token_bucket_set_rate(&ts->main[k], rate, size, now_ns);
			token_bucket_set_rate(&ts->burst[k], brate, bsize, now_ns);
		}
	}
}

void throttle_state_init(struct throttle_state *ts, const struct throttle_limits *l,
			 uint64_t now_ns)
{
	state_apply(ts, l, now_ns, true);
}

void throttle_state_set(struct throttle_state *ts, const struct throttle_limits *l,
			uint64_t now_ns)
{
	state_apply(ts, l, now_ns, false);
}

/* The kinds a request in direction @write draws from. */
static void kinds(bool write, int out[4])
{
	out[0] = THROTTLE_BPS_TOTAL;
	out[1] = THROTTLE_OPS_TOTAL;
	out[2] = write ? THROTTLE_BPS_WRITE : THROTTLE_BPS_READ;
	out[3] = write ? THROTTLE_OPS_WRITE : THROTTLE_OPS_READ;
}

uint64_t throttle_wait_ns(struct throttle_state *ts, bool write, uint64_t now_ns)
{
	uint64_t wait = 0;
	int k[4];

	kinds(write, k);
	for (int i = 0; i < 4; i++) {
		wait = MAX(wait, token_bucket_wait_ns(&ts->main[k[i]], now_ns));
		wait = MAX(wait, token_bucket_wait_ns(&ts->burst[k[i]], now_ns));
	}
	return wait;
}

void throttle_account(struct throttle_state *ts, bool write, uint64_t bytes, uint64_t now_ns)
{
	uint64_t size = ts->lim.iops_size, units = OPS_SCALE;
	int k[4];

	if (size && bytes > size) /* a large request counts as bytes / iops-size I/Os */
		units = bytes / size * OPS_SCALE + bytes % size * OPS_SCALE / size;
	kinds(write, k);
	for (int i = 0; i < 4; i++) {
		uint64_t n = is_ops(k[i]) ? units : bytes;

		token_bucket_take(&ts->main[k[i]], n, now_ns);
		token_bucket_take(&ts->burst[k[i]], n, now_ns);
	}
}

/* ---- keys ------------------------------------------------------------------------------------ */

#define FIELDS 3 /* avg, max, max_length */
#define NR_KEYS (THROTTLE_KINDS * FIELDS + 1)

static const char *const group_keys[NR_KEYS] = {
	"bps-total", "bps-total-max", "bps-total-max-length",
	"bps-read", "bps-read-max", "bps-read-max-length",
	"bps-write", "bps-write-max", "bps-write-max-length",
	"iops-total", "iops-total-max", "iops-total-max-length",
	"iops-read", "iops-read-max", "iops-read-max-length",
	"iops-write", "iops-write-max", "iops-write-max-length",
	"iops-size",
};

static const char *const legacy_keys[NR_KEYS] = {
	"bps", "bps_max", "bps_max_length",
	"bps_rd", "bps_rd_max", "bps_rd_max_length",
	"bps_wr", "bps_wr_max", "bps_wr_max_length",
	"iops", "iops_max", "iops_max_length",
	"iops_rd", "iops_rd_max", "iops_rd_max_length",
	"iops_wr", "iops_wr_max", "iops_wr_max_length",
	"iops_size",
};

const char *throttle_key_name(enum throttle_keys voc, unsigned int i)
{
	if (i >= NR_KEYS)
		return NULL;
	return voc == THROTTLE_KEYS_GROUP ? group_keys[i] : legacy_keys[i];
}

static uint64_t *field(struct throttle_limits *l, int i)
{
	struct throttle_limit *b;

	if (i == NR_KEYS - 1)
		return &l->iops_size;
	b = &l->l[i / FIELDS];
	return i % FIELDS == 0 ? &b->avg : i % FIELDS == 1 ? &b->max : &b->max_length;
}

static int key_index(enum throttle_keys voc, const char *key)
{
	for (unsigned int i = 0; i < NR_KEYS; i++)
		if (!strcmp(throttle_key_name(voc, i), key))
			return (int)i;
	return -1;
}

int throttle_limits_set_key(struct throttle_limits *l, enum throttle_keys voc, const char *key,
			    uint64_t value, struct error **errp)
{
	int i = key_index(voc, key);

	if (i < 0)
		return 0;
	if (value > THROTTLE_VALUE_MAX) {
		error_setg(errp, "%s: %llu is more than %llu", key, (unsigned long long)value,
			   THROTTLE_VALUE_MAX);
		return -1;
	}
	*field(l, i) = value;
	return 1;
}

bool throttle_limits_get_key(const struct throttle_limits *l, enum throttle_keys voc,
			     const char *key, uint64_t *value)
{
	int i = key_index(voc, key);

	if (i < 0)
		return false;
	*value = *field((struct throttle_limits *)l, i);
	return true;
}

/* Takes @key from @o into @l if present. 0 or -1. */
static int take_one(struct json_object *o, const char *key, const char *name,
		    struct throttle_limits *l, const char *where, struct error **errp)
{
	uint64_t v;
	int r = keyval_take_u64(o, key, &v, errp);

	if (r == 1) /* absent */
		return 0;
	if (r < 0 || throttle_limits_set_key(l, THROTTLE_KEYS_GROUP, name, v, errp) < 0) {
		error_prepend(errp, "%s: ", where);
		return -1;
	}
	return 0;
}

int throttle_limits_take(struct json_object *o, struct throttle_limits *l, const char *where,
			 struct error **errp)
{
	struct json_object *lim;
	char w[96], x[48];

	throttle_limits_init(l);
	for (unsigned int i = 0; i < NR_KEYS; i++) { /* the legacy x- properties first */
		snprintf(x, sizeof(x), "x-%s", group_keys[i]);
		if (take_one(o, x, group_keys[i], l, where, errp) < 0)
			return -1;
	}
	if (keyval_take_value(o, "limits", &lim) == 0) {
		snprintf(w, sizeof(w), "%s: limits", where);
		if (!json_object_is_type(lim, json_type_object)) {
			error_setg(errp, "%s: expected an object of ThrottleLimits", w);
			return -1;
		}
		for (unsigned int i = 0; i < NR_KEYS; i++)
			if (take_one(lim, group_keys[i], group_keys[i], l, w, errp) < 0)
				return -1;
		if (keyval_refuse_leftovers(lim, w, errp) < 0)
			return -1;
	}
	if (throttle_limits_check(l, errp) < 0) {
		error_prepend(errp, "%s: ", where);
		return -1;
	}
	return 0;
}
