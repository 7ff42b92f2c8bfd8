/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node graph: node names, the registry that finds nodes by name, the users of each node
 * with their permissions, and references.
 *
 * Who owns what.
 *  - Every node is in the registry from node_new() to node_free(), under a name: the user's
 *    (node-name=) or a generated "#blockN". The registry list and the name counter are guarded
 *    by registry_lock, so that a lookup (QMP, and later the job thread and the storage daemon's
 *    exports) never sees a half-linked node.
 *  - A node's users list (parents as file / backing / data-file child, frontends, later jobs
 *    and exports) and its reference count change only on the control plane, one caller at a
 *    time per node: opening, closing, attaching a frontend, deleting. registry_lock guards
 *    them too, so that a reader walking the graph sees whole lists.
 *  - The data path never reads any of this: requests reach nodes through the pointers
 *    (bs->file, bs->backing, the driver's own) that were set before the first queue existed,
 *    or changed since inside a drained section (blockdev_set_backing).
 *  - Drained sections: blockdev_drained_begin() finds the root users above a node (parents'
 *    users, up to the frontends) under registry_lock, then calls their drained_begin hooks
 *    without it (they wait for their iothreads); drained_end in the reverse order. While
 *    drained, no asynchronous request is in flight anywhere above the node, so the pointers
 *    the data path follows may change.
 *  - References: the creator of a node holds one; every parent holds one on each child. A node
 *    is closed when the last one goes, after its users are gone (a user holds a reference).
 *
 * Permissions, as QEMU's model: each user says what it does to the node (perm) and what it
 * lets others do (shared). A user is refused when it needs something another user does not
 * share, or does something it cannot share; the message names both users.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "blockdev/internal.h"
#include "common/util.h"

/* recursive: blockdev_for_each_node's callbacks may look at the graph again (QMP's
 * query-named-block-nodes lists each node's children, image_info.c, through it) */
static pthread_mutex_t registry_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static struct blockdev *registry; /* every open node, newest first (bs->reg_next) */
static unsigned int next_auto_name = 1;

static const char *const perm_names[] = { "read", "write", "write-unchanged", "resize" };

/* "write, resize" for the bits of @perm (at least one). */
static void perm_string(unsigned perm, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < ARRAY_SIZE(perm_names) && n < len; i++)
		if (perm & (1u << i))
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", perm_names[i]);
}

/* "node 'disk0' (as its file)" or "virtio-blk0" */
static void user_label(const struct blockdev_user *u, char *buf, size_t len)
{
	if (u->parent)
		snprintf(buf, len, "node '%s' (as its %s)", u->parent->node_name, u->role);
	else
		snprintf(buf, len, "%s", u->role);
}

bool blockdev_node_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (!len || len >= BLOCKDEV_NODE_NAME_MAX ||
	    !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

static struct blockdev *find_locked(const char *name)
{
	for (struct blockdev *bs = registry; bs; bs = bs->reg_next)
		if (!strcmp(bs->node_name, name))
			return bs;
	return NULL;
}

struct blockdev *blockdev_find_node(const char *name)
{
	struct blockdev *bs;

	pthread_mutex_lock(&registry_lock);
	bs = find_locked(name);
	pthread_mutex_unlock(&registry_lock);
	return bs;
}

void blockdev_register(struct blockdev *bs)
{
	pthread_mutex_lock(&registry_lock);
	snprintf(bs->node_name, sizeof(bs->node_name), "#block%u", next_auto_name++);
	bs->refs = 1;
	bs->reg_next = registry;
	if (registry)
		registry->reg_prev = bs;
	registry = bs;
	pthread_mutex_unlock(&registry_lock);
}

void blockdev_unregister(struct blockdev *bs)
{
	pthread_mutex_lock(&registry_lock);
	if (bs->reg_prev)
		bs->reg_prev->reg_next = bs->reg_next;
	else
		registry = bs->reg_next;
	if (bs->reg_next)
		bs->reg_next->reg_prev = bs->reg_prev;
	bs->reg_next = bs->reg_prev = NULL;
	pthread_mutex_unlock(&registry_lock);
}

int blockdev_set_node_name(struct blockdev *bs, const char *name, struct error **errp)
{
	int ret = -1;

	if (!blockdev_node_name_valid(name)) {
		error_setg(errp, "node-name '%s': must start with a letter and hold at most %d "
			   "letters, digits, '-', '.' or '_'", name, BLOCKDEV_NODE_NAME_MAX - 1);
		return -1;
	}
	pthread_mutex_lock(&registry_lock);
	if (find_locked(name) && find_locked(name) != bs) {
		error_setg(errp, "node-name '%s' is already in use", name);
	} else {
		snprintf(bs->node_name, sizeof(bs->node_name), "%s", name);
		ret = 0;
	}
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

void blockdev_for_each_node(void (*fn)(struct blockdev *bs, void *opaque), void *opaque)
{
	pthread_mutex_lock(&registry_lock);
	for (struct blockdev *bs = registry; bs; bs = bs->reg_next)
		fn(bs, opaque);
	pthread_mutex_unlock(&registry_lock);
}

/* The first user of @bs whose permissions clash with @u's, or NULL. */
static const struct blockdev_user *conflict(const struct blockdev *bs,
					     const struct blockdev_user *u, unsigned *clash)
{
	for (const struct blockdev_user *o = bs->users; o; o = o->next) {
		*clash = (u->perm & ~o->shared) | (o->perm & ~u->shared);
		if (*clash)
			return o;
	}
	return NULL;
}

/* Refuses @u on @bs when a user of @bs clashes with it, naming both (registry_lock held). */
static int check_locked(const struct blockdev *bs, const struct blockdev_user *u,
			struct error **errp)
{
	const struct blockdev_user *o;
	char mine[96], theirs[96], what[64];
	unsigned clash = 0;
	bool they_refuse;

	o = conflict(bs, u, &clash);
	if (!o)
		return 0;
	they_refuse = u->perm & ~o->shared;
	user_label(u, mine, sizeof(mine));
	user_label(o, theirs, sizeof(theirs));
	perm_string(they_refuse ? u->perm & ~o->shared : o->perm & ~u->shared, what, sizeof(what));
	if (they_refuse)
		error_setg(errp, "node '%s': %s needs %s, which %s, using it already, does not "
			   "share", bs->node_name, mine, what, theirs);
	else
		error_setg(errp, "node '%s': %s cannot use it: %s uses it for %s, which %s does "
			   "not share", bs->node_name, mine, theirs, what, mine);
	return -1;
}

/* Puts @u on @bs's list of users (registry_lock held; the reference is the caller's). */
static void link_user_locked(struct blockdev *bs, struct blockdev_user *u)
{
	u->node = bs;
	u->next = bs->users;
	bs->users = u;
}

int blockdev_attach(struct blockdev *bs, struct blockdev_user *u, struct error **errp)
{
	pthread_mutex_lock(&registry_lock);
	if (check_locked(bs, u, errp)) {
		pthread_mutex_unlock(&registry_lock);
		return -1;
	}
	link_user_locked(bs, u);
	bs->refs++;
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

/* Unlinks @u; returns the node, still referenced by @u (the caller drops it). */
static struct blockdev *unlink_user(struct blockdev_user *u)
{
	struct blockdev *bs = u->node;

	pthread_mutex_lock(&registry_lock);
	for (struct blockdev_user **p = &bs->users; *p; p = &(*p)->next) {
		if (*p == u) {
			*p = u->next;
			break;
		}
	}
	u->node = NULL;
	u->next = NULL;
	pthread_mutex_unlock(&registry_lock);
	return bs;
}

void blockdev_detach(struct blockdev_user *u)
{
	if (u && u->node)
		blockdev_unref(unlink_user(u));
}

struct blockdev *blockdev_ref(struct blockdev *bs)
{
	pthread_mutex_lock(&registry_lock);
	bs->refs++;
	pthread_mutex_unlock(&registry_lock);
	return bs;
}

void blockdev_unref(struct blockdev *bs)
{
	unsigned int left;

	if (!bs)
		return;
	pthread_mutex_lock(&registry_lock);
	left = --bs->refs;
	pthread_mutex_unlock(&registry_lock);
	if (!left)
		blockdev_destroy(bs);
}

int blockdev_check_unused(struct blockdev *bs, struct error **errp)
{
	char who[96];

	pthread_mutex_lock(&registry_lock);
	if (bs->users) {
		user_label(bs->users, who, sizeof(who));
		pthread_mutex_unlock(&registry_lock);
		error_setg(errp, "node '%s' is in use by %s", bs->node_name, who);
		return -1;
	}
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

int blockdev_node_del(const char *name, struct error **errp)
{
	struct blockdev *bs = blockdev_find_node(name);

	if (!bs) {
		error_setg(errp, "no node named '%s'", name);
		return -1;
	}
	if (blockdev_check_unused(bs, errp))
		return -1;
	blockdev_unref(bs);
	return 0;
}

/* Adds the root users above @bs to @d (registry_lock held); -ENOMEM. */
static int collect_roots(struct blockdev *bs, struct blockdev_drain *d, size_t *cap,
			 unsigned depth)
{
	if (depth > 64) /* a graph has no cycles (blockdev_set_backing refuses them) */
		return 0;
	for (struct blockdev_user *u = bs->users; u; u = u->next) {
		bool seen = false;

		if (u->parent) {
			if (collect_roots(u->parent, d, cap, depth + 1))
				return -ENOMEM;
			continue;
		}
		for (size_t i = 0; i < d->nr && !seen; i++)
			seen = d->roots[i] == u;
		if (seen)
			continue;
		if (d->nr == *cap) {
			size_t n = *cap ? 2 * *cap : 8;
			struct blockdev_user **r = realloc(d->roots, n * sizeof(*r));

			if (!r)
				return -ENOMEM;
			d->roots = r;
			*cap = n;
		}
		d->roots[d->nr++] = u;
	}
	return 0;
}

int blockdev_drained_begin(struct blockdev *bs, struct blockdev_drain *d, struct error **errp)
{
	size_t cap = 0;
	int ret;

	*d = (struct blockdev_drain){ 0 };
	pthread_mutex_lock(&registry_lock);
	ret = collect_roots(bs, d, &cap, 0);
	pthread_mutex_unlock(&registry_lock);
	if (ret) {
		free(d->roots);
		*d = (struct blockdev_drain){ 0 };
		error_setg(errp, "node '%s': out of memory", bs->node_name);
		return -1;
	}
	for (size_t i = 0; i < d->nr; i++)
		if (d->roots[i]->ops && d->roots[i]->ops->drained_begin)
			d->roots[i]->ops->drained_begin(d->roots[i]->opaque);
	return 0;
}

void blockdev_drained_end(struct blockdev_drain *d)
{
	for (size_t i = d->nr; i--;)
		if (d->roots[i]->ops && d->roots[i]->ops->drained_end)
			d->roots[i]->ops->drained_end(d->roots[i]->opaque);
	free(d->roots);
	*d = (struct blockdev_drain){ 0 };
}

int blockdev_set_backing(struct blockdev *bs, struct blockdev *backing, struct error **errp)
{
	struct blockdev *old = bs->backing;
	struct blockdev_user probe;
	struct blockdev_drain d;

	if (!bs->drv->has_backing) {
		error_setg(errp, "node '%s' is a %s node, which has no backing file", bs->node_name,
			   bs->drv->name);
		return -1;
	}
	if (backing == old)
		return 0;
	for (struct blockdev *b = backing; b; b = b->backing) {
		if (b == bs) {
			error_setg(errp, "node '%s' cannot back node '%s': %s", backing->node_name,
				   bs->node_name, backing == bs ? "it is the node itself" :
				   "its backing chain holds that node (a loop)");
			return -1;
		}
	}
	if (backing) {
		/* what the new link will ask for, checked before anything changes */
		probe = (struct blockdev_user){ .parent = bs, .role = "backing",
						.perm = BLOCKDEV_PERM_READ,
						.shared = BLOCKDEV_PERM_READ |
							  BLOCKDEV_PERM_WRITE_UNCHANGED };
		int ret;

		pthread_mutex_lock(&registry_lock);
		ret = check_locked(backing, &probe, errp);
		pthread_mutex_unlock(&registry_lock);
		if (ret)
			return -1;
	}
	if (blockdev_drained_begin(bs, &d, errp))
		return -1;
	if (old)
		blockdev_ref(old); /* the root users' queues may name its files until drained_end */
	blockdev_detach(&bs->backing_link);
	bs->backing = NULL;
	if (backing && blockdev_link_child(bs, &bs->backing_link, backing, "backing", errp)) {
		/* checked above, on the control plane's one thread: only a new user in between */
		if (old && blockdev_link_child(bs, &bs->backing_link, old, "backing", NULL) == 0)
			bs->backing = old;
		blockdev_drained_end(&d);
		blockdev_unref(old);
		return -1;
	}
	bs->backing = backing;
	blockdev_drained_end(&d);
	blockdev_unref(old);
	return 0;
}

/* The root users of @old that can move, in @moving (up to @max); checked against @new's users
 * when @new is given. -1 with the error when one cannot. */
static int movers(struct blockdev *old, struct blockdev *new, struct blockdev_user **moving,
		  size_t max, size_t *n, const char *new_name, struct error **errp)
{
	*n = 0;
	pthread_mutex_lock(&registry_lock);
	for (struct blockdev_user *u = old->users; u; u = u->next) {
		char who[96];

		user_label(u, who, sizeof(who));
		if (u->parent || !u->ops || !u->ops->replace || *n == max) {
			pthread_mutex_unlock(&registry_lock);
			error_setg(errp, "node '%s': %s cannot move to %s", old->node_name, who,
				   new_name);
			return -1;
		}
		if (new && check_locked(new, u, errp)) {
			pthread_mutex_unlock(&registry_lock);
			return -1;
		}
		moving[(*n)++] = u;
	}
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

/* Moves @moving[0..n) from @old to @new; back to @old, and -1, if one cannot. */
static int move_users(struct blockdev_user **moving, size_t n, struct blockdev *old,
		      struct blockdev *new, struct error **errp)
{
	size_t done;

	for (done = 0; done < n; done++) {
		struct blockdev_user *u = moving[done];

		if (u->ops->replace(u->opaque, new, errp) < 0)
			goto back; /* @u is still @old's */
		blockdev_unref(unlink_user(u)); /* @old stays: the caller holds it */
		if (blockdev_attach(new, u, errp) < 0) {
			/* checked: only a user that came in between refuses it */
			u->ops->replace(u->opaque, old, NULL);
			blockdev_attach(old, u, NULL);
			goto back;
		}
	}
	return 0;
back: /* the users that moved go back to @old */
	while (done--) {
		struct blockdev_user *u = moving[done];

		u->ops->replace(u->opaque, old, NULL);
		blockdev_detach(u);
		blockdev_attach(old, u, NULL);
	}
	return -1;
}

int blockdev_replace_node(struct blockdev *old, struct blockdev *new, struct error **errp)
{
	struct blockdev_user *moving[32];
	char name[48];
	size_t n;

	snprintf(name, sizeof(name), "node '%s'", new->node_name);
	if (movers(old, new, moving, ARRAY_SIZE(moving), &n, name, errp) < 0)
		return -1;
	return move_users(moving, n, old, new, errp);
}

struct blockdev *blockdev_insert_filter(struct blockdev *bs,
					 blockdev_open_filter_fn *open_filter, void *arg,
					 struct error **errp)
{
	struct blockdev_user *moving[32];
	struct blockdev *f;
	size_t n;

	if (movers(bs, NULL, moving, ARRAY_SIZE(moving), &n, "a filter node over it", errp) < 0)
		return NULL;
	/* off @bs while the filter takes it as its child: the filter's link asks for what the
	 * users had (they move onto the filter, which passes their requests down) */
	for (size_t i = 0; i < n; i++)
		unlink_user(moving[i]); /* each user's reference on @bs stays until it moved */
	f = open_filter(bs, arg, errp);
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < n; i++)
		link_user_locked(bs, moving[i]); /* with the reference it kept */
	pthread_mutex_unlock(&registry_lock);
	if (!f)
		return NULL;
	if (move_users(moving, n, bs, f, errp) < 0) {
		blockdev_close(f);
		return NULL;
	}
	return f;
}

void blockdev_set_write_hook(struct blockdev *bs, blockdev_write_hook_fn *fn, void *opaque)
{
	atomic_store(&bs->write_hook_opaque, opaque);
	atomic_store(&bs->write_hook, fn); /* seq_cst: ordered against the bitmap's enable bit */
}

void blockdev_set_before_write(struct blockdev *bs, blockdev_before_write_fn *fn, void *opaque)
{
	atomic_store(&bs->before_write_opaque, opaque);
	atomic_store(&bs->before_write, fn);
}
