/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest RAM as seen by the VMM. Guest memory is hostile: everything the guest wrote may change
 * under us at any time. Translate a guest physical range with gmem_ptr() (which bounds it), copy
 * headers out with gmem_read() before trusting them, and never keep a pointer across a point where
 * the guest could be told the buffer is free.
 *
 * The map is built once before any vCPU or iothread runs and never changes afterwards, so lookups
 * take no lock.
 */
#ifndef VIREO_VMM_GMEM_H
#define VIREO_VMM_GMEM_H

#include <errno.h>
#include <stdbool.h>
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

/*
 * Builds the region table for ram_size bytes: RAM below LAYOUT_MEM32_HOLE at 0, the rest at 4 GiB.
 * Maps it from a fresh memfd (or anonymous memory when use_memfd is false). Returns 0 or -errno.
 */
int gmem_init(struct gmem *m, uint64_t ram_size, bool use_memfd);
void gmem_destroy(struct gmem *m);
/* Highest guest physical address of RAM plus one. */
uint64_t gmem_end(const struct gmem *m);

#endif
