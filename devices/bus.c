/* SPDX-License-Identifier: Apache-2.0 */
/* Address-space dispatch; the locking rules are in bus.h. */
#include "devices/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
	pthread_rwlock_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
	free(b->regions);
	pthread_rwlock_destroy(&b->lock);
	b->regions = NULL;
	b->nr = b->cap = 0;
}

/* index of the first region whose end is above addr (caller holds the lock) */
static unsigned int bus_lower_bound(const struct bus *b, uint64_t addr)
{
	unsigned int lo = 0, hi = b->nr;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		const struct bus_region *r = &b->regions[mid];

		if (r->base + r->size - 1 < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_add(struct bus *b, uint64_t base, uint64_t size, const struct bus_ops *ops, void *opaque,
	    const char *name, struct error **errp)
{
	unsigned int i;
	int ret = -1;

	if (size == 0 || base + size - 1 < base) {
		error_setg(errp, "%s region '%s' at 0x%llx has a bad size 0x%llx", b->name, name,
			   (unsigned long long)base, (unsigned long long)size);
		return -1;
	}
	pthread_rwlock_wrlock(&b->lock);
	i = bus_lower_bound(b, base);
	if (i < b->nr && b->regions[i].base <= base + size - 1) {
		error_setg(errp, "%s region '%s' [0x%llx, 0x%llx) overlaps '%s' at 0x%llx", b->name, name,
			   (unsigned long long)base, (unsigned long long)(base + size),
			   b->regions[i].name, (unsigned long long)b->regions[i].base);
		goto out;
	}
	if (b->nr == b->cap) {
		unsigned int cap = b->cap ? b->cap * 2 : 16;
		struct bus_region *n = realloc(b->regions, cap * sizeof(*n));

		if (!n) {
			error_setg(errp, "out of memory adding %s region '%s'", b->name, name);
			goto out;
		}
		b->regions = n;
		b->cap = cap;
	}
	memmove(&b->regions[i + 1], &b->regions[i], (b->nr - i) * sizeof(*b->regions));
	b->regions[i] = (struct bus_region){ base, size, ops, opaque, name };
	b->nr++;
	ret = 0;
out:
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_remove(struct bus *b, uint64_t base, void *opaque)
{
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&b->lock);
	for (unsigned int i = 0; i < b->nr; i++) {
		if (b->regions[i].base == base && b->regions[i].opaque == opaque) {
			memmove(&b->regions[i], &b->regions[i + 1],
				(b->nr - i - 1) * sizeof(*b->regions));
			b->nr--;
			ret = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

/* Finds the region holding [addr, addr+len); copies it out so the lock can be dropped. */
static bool bus_find(struct bus *b, uint64_t addr, unsigned int len, struct bus_region *out)
{
	bool found = false;
	unsigned int i;

	pthread_rwlock_rdlock(&b->lock);
	i = bus_lower_bound(b, addr);
	if (i < b->nr && b->regions[i].base <= addr &&
	    addr - b->regions[i].base + len <= b->regions[i].size) {
		*out = b->regions[i];
		found = true;
	}
	pthread_rwlock_unlock(&b->lock);
	return found;
}

bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned int len)
{
	struct bus_region r;

	if (!bus_find(b, addr, len, &r)) {
		memset(data, 0xff, len);
		return false;
	}
	r.ops->read(r.opaque, addr - r.base, data, len);
	return true;
}

bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned int len)
{
	struct bus_region r;

	if (!bus_find(b, addr, len, &r))
		return false;
	r.ops->write(r.opaque, addr - r.base, data, len);
	return true;
}
