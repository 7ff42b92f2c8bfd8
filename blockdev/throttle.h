/* SPDX-License-Identifier: Apache-2.0 */
/*
 * I/O throttling: QEMU's ThrottleLimits, the bucket arithmetic (throttle_limits.c, pure, with
 * the caller's clock) and throttle groups with the `throttle` filter driver (throttle.c).
 *
 * The arithmetic. Six limits (bps and iops, each total, read and write), each with an average
 * rate, an optional burst rate (-max) and how long a burst may last (-max-length, seconds).
 * Every limit is two token buckets (common/token_bucket.h), as QEMU's leaky buckets:
 *   - the main bucket fills at the average rate and holds max * max-length units (without a
 *     burst rate: a tenth of a second of the average, so that a short burst passes);
 *   - with max-length > 1 a burst bucket fills at the burst rate and holds a tenth of it, so
 *     that a burst runs at the burst rate, not faster.
 * A request may go when none of the buckets it draws from is in debt (a read: bps-total,
 * iops-total, bps-read, iops-read; writes likewise) and then takes its bytes and its I/O
 * count from them, into debt if it must; the next one waits until the debt is paid. With
 * iops-size S a request of B > S bytes counts as B / S I/Os. I/O counts are kept in
 * thousandths, so that fractions of iops-size and rates of a few I/Os per second are exact.
 * A full main bucket holds max * max-length units, so a burst at rate max lasts about
 * max * max-length / (max - avg) seconds (QEMU's docs/throttle.txt says the same; exactly
 * (max * max-length - max / 10) / (max - avg), the burst bucket's tenth going at once).
 */
#ifndef VIREO_BLOCKDEV_THROTTLE_H
#define VIREO_BLOCKDEV_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/token_bucket.h"

struct json_object;
struct blockdev;
struct blockdev_req;
struct blockdev_queue;
struct iothread;

/* QEMU's THROTTLE_VALUE_MAX: the largest rate, burst and burst length */
#define THROTTLE_VALUE_MAX 1000000000000000ull

enum throttle_kind {
	THROTTLE_BPS_TOTAL,
	THROTTLE_BPS_READ,
	THROTTLE_BPS_WRITE,
	THROTTLE_OPS_TOTAL,
	THROTTLE_OPS_READ,
	THROTTLE_OPS_WRITE,
	THROTTLE_KINDS,
};

/* One limit: @avg units per second (0: none), bursts of @max per second for @max_length s. */
struct throttle_limit {
	uint64_t avg;
	uint64_t max;
	uint64_t max_length; /* seconds, at least 1 */
};

struct throttle_limits {
	struct throttle_limit l[THROTTLE_KINDS];
	uint64_t iops_size; /* bytes that count as one I/O (0: every request is one) */
};

/* The buckets of a set of limits. Not thread-safe: its owner locks around it. */
struct throttle_state {
	struct throttle_limits lim;
	struct token_bucket main[THROTTLE_KINDS];
	struct token_bucket burst[THROTTLE_KINDS];
};

/* No limits (every max_length 1). */
void throttle_limits_init(struct throttle_limits *l);
/* true when any limit is set. */
bool throttle_limits_enabled(const struct throttle_limits *l);
/* QEMU's throttle_is_valid(): refuses, with its message, what QEMU refuses. 0 or -1. */
int throttle_limits_check(const struct throttle_limits *l, struct error **errp);

/* Full buckets for @l at @now_ns. */
void throttle_state_init(struct throttle_state *ts, const struct throttle_limits *l,
			 uint64_t now_ns);
/* New limits, keeping what the buckets hold (capped at the new sizes). */
void throttle_state_set(struct throttle_state *ts, const struct throttle_limits *l,
			uint64_t now_ns);
/* Nanoseconds until a request in direction @write may go (0: now). */
uint64_t throttle_wait_ns(struct throttle_state *ts, bool write, uint64_t now_ns);
/* A request of @bytes in direction @write goes at @now_ns: take it from the buckets. */
void throttle_account(struct throttle_state *ts, bool write, uint64_t bytes, uint64_t now_ns);

/*
 * The keys, QEMU's spellings, each with the limit field it sets. Three vocabularies:
 *   THROTTLE_KEYS_GROUP:  ThrottleLimits ("iops-total", "bps-read-max-length", "iops-size"),
 *                         as throttle-group's limits.* and (with "x-") its legacy properties,
 *                         and as -drive's throttling.* keys;
 *   THROTTLE_KEYS_LEGACY: -drive's and block_set_io_throttle's ("iops", "bps_rd_max",
 *                         "iops_wr_max_length", "iops_size").
 */
enum throttle_keys { THROTTLE_KEYS_GROUP, THROTTLE_KEYS_LEGACY };

/*
 * Sets the limit called @key (in vocabulary @voc) to @value. Returns 1 when @key is one,
 * 0 when it is not (nothing changed), -1 when @value is out of range (message names @key).
 */
int throttle_limits_set_key(struct throttle_limits *l, enum throttle_keys voc, const char *key,
			    uint64_t value, struct error **errp);
/* The value of @key, or false when @key is not one. */
bool throttle_limits_get_key(const struct throttle_limits *l, enum throttle_keys voc,
			     const char *key, uint64_t *value);
/* The name of the @i-th key of @voc (NULL past the last): for listing them. */
const char *throttle_key_name(enum throttle_keys voc, unsigned int i);

/*
 * Takes the limits out of a throttle-group object's properties @o: "limits" (an object of
 * ThrottleLimits keys; dotted keys make one) and the "x-" keys; unknown keys inside "limits"
 * are refused by name, the rest of @o is left for the caller. The result is checked.
 */
int throttle_limits_take(struct json_object *o, struct throttle_limits *l, const char *where,
			 struct error **errp);

/* ---------------------------------------------------------------------------------------------
 * Throttle groups and the throttle filter (throttle.c)
 */

struct blockdev_throttle_group;
struct throttle_member;

extern const struct blockdev_driver blockdev_throttle;

/**
 * blockdev_throttle_group_new - a named group with limits @l (checked)
 *
 * Control plane. Refused when @name is taken. The caller holds one reference (drop it with
 * blockdev_throttle_group_unref); each throttle node holds its own.
 */
struct blockdev_throttle_group *blockdev_throttle_group_new(const char *name,
							    const struct throttle_limits *l,
							    struct error **errp);
/* The group called @name, or NULL (control plane). */
struct blockdev_throttle_group *blockdev_throttle_group_find(const char *name);
void blockdev_throttle_group_ref(struct blockdev_throttle_group *g);
void blockdev_throttle_group_unref(struct blockdev_throttle_group *g);
const char *blockdev_throttle_group_name(const struct blockdev_throttle_group *g);
/* A copy of the group's limits. */
void blockdev_throttle_group_limits(struct blockdev_throttle_group *g, struct throttle_limits *l);
/*
 * New limits for the group, live (checked first): the buckets keep what they hold, held
 * requests are looked at again at once. Any thread.
 */
int blockdev_throttle_group_set_limits(struct blockdev_throttle_group *g,
				       const struct throttle_limits *l, struct error **errp);
/* The group of a throttle node, or NULL when @bs is not one. */
struct blockdev_throttle_group *blockdev_throttle_node_group(const struct blockdev *bs);

/* The group @name with limits @l, made if it does not exist, a reference for the caller;
 * NULL with @errp set (bad limits). */
struct blockdev_throttle_group *blockdev_throttle_group_get(const char *name,
							    const struct throttle_limits *l,
							    struct error **errp);

/*
 * blockdev_throttle_open_over - a throttle node in group @group (which must exist) over @bs,
 * read-only as @bs is. On success the node owns the caller's reference on @bs; on failure
 * (NULL, @errp set) the caller still does.
 */
struct blockdev *blockdev_throttle_open_over(struct blockdev *bs, const char *group,
					     struct error **errp);

/*
 * The engine's side (blockdev/engine.c), on the queue's iothread:
 * blockdev_throttle_member_new: the queue @q of throttle node @bs on @it joins the node's group
 *   (blockdev_queue_new); _free leaves it (blockdev_queue_free, with nothing in flight).
 * blockdev_throttle_hold: false when @req may go now (it was accounted: issue it); true when
 *   the group holds it: the throttle issues it later with blockdev_queue_issue(), on @q's
 *   iothread, in the group's order.
 * blockdev_throttle_flush: a drain: let every request @m holds go now, without waiting.
 */
struct throttle_member *blockdev_throttle_member_new(struct blockdev *bs,
						     struct blockdev_queue *q, struct iothread *it,
						     struct error **errp);
void blockdev_throttle_member_free(struct throttle_member *m);
bool blockdev_throttle_hold(struct throttle_member *m, struct blockdev_req *req);
void blockdev_throttle_flush(struct throttle_member *m);

#endif
