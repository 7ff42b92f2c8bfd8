/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An address space that vCPU exits are dispatched through: one for port I/O, one for MMIO.
 *
 * Concurrency: regions are added while the VM is built and may be moved at run time when the
 * guest reprograms a PCI BAR. Lookups happen on vCPU threads. The table is guarded by a rwlock:
 * a lookup takes it for reading just long enough to copy the matching region out, then calls the
 * handler without it, so a handler may itself add, move or remove regions (a PCI BAR write does).
 * Exits are the slow path; the I/O fast path goes through ioeventfd and never reaches here.
 * Regions' opaque objects live as long as the VM, so a handler racing with its own removal is
 * harmless. Handlers serialize their own state.
 */
#ifndef VIREO_DEVICES_BUS_H
#define VIREO_DEVICES_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

struct bus_ops {
	/* off is relative to the region base; len is 1, 2, 4 or 8. read fills data (little endian). */
	void (*read)(void *opaque, uint64_t off, void *data, unsigned int len);
	void (*write)(void *opaque, uint64_t off, const void *data, unsigned int len);
};

struct bus_region {
	uint64_t base;
	uint64_t size;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	pthread_rwlock_t lock;
	struct bus_region *regions; /* sorted by base, non-overlapping */
	unsigned int nr, cap;
};

void bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);
/* Adds [base, base+size). Refuses an overlap with a message naming both regions. */
int bus_add(struct bus *b, uint64_t base, uint64_t size, const struct bus_ops *ops, void *opaque,
	    const char *name, struct error **errp);
/* Removes the region registered with this opaque at base. Returns 0 or -ENOENT. */
int bus_remove(struct bus *b, uint64_t base, void *opaque);
/*
 * Dispatch an access. Returns true if a region claimed it. An unclaimed read returns all ones,
 * as on real hardware; the caller decides whether to log unclaimed accesses.
 */
bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned int len);
bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned int len);

/* Little-endian helpers for handlers. */
static inline uint64_t bus_get(const void *data, unsigned int len)
{
	const uint8_t *p = data;
	uint64_t v = 0;

	for (unsigned int i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void bus_put(void *data, unsigned int len, uint64_t v)
{
	uint8_t *p = data;

	for (unsigned int i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

#endif
