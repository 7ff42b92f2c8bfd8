/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest RAM as a table of regions, and the bounded lookups every user of guest memory goes through
 * (the boot loaders, the ACPI builder, the virtqueues). Guest memory is hostile: everything the
 * guest wrote may change under us at any time. Translate a guest physical range with gmem_ptr()
 * (which bounds it), copy headers out with gmem_read() before trusting them, and never keep a
 * pointer across a point where the guest could be told the buffer is free.
 *
 * This header is only the map and its lookups, so that devices/ can translate without knowing how
 * the map was made; the VMM builds it (vmm/gmem.h: gmem_init places RAM around the 32-bit PCI
 * hole). The map is built once before any vCPU or iothread runs and never changes afterwards, so
 * lookups take no lock, and they are inline: the virtqueue hot path calls gmem_ptr() per
 * descriptor.
 */
#ifndef VIREO_COMMON_GMEM_H
#define VIREO_COMMON_GMEM_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GMEM_MAX_REGIONS 2

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct gmem {
	struct gmem_region regions[GMEM_MAX_REGIONS];
	unsigned int nr_regions;
	uint64_t ram_size; /* total bytes of RAM */
	int memfd;         /* backing memfd, -1 for anonymous (tests) */
};

/* Host pointer for [gpa, gpa+len) if it lies entirely in one RAM region, else NULL. len may be 0. */
static inline void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < m->nr_regions; i++) {
		const struct gmem_region *r = &m->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

/* Copies guest memory out. Returns 0 or -EFAULT if the range is not wholly RAM. */
static inline int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, size_t len)
{
	const void *p = gmem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

static inline int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = gmem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

#endif
