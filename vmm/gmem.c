/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "vmm/gmem.h"

#include <sys/mman.h>
#include <unistd.h>

#include "vmm/layout.h"

int gmem_init(struct gmem *m, uint64_t ram_size, bool use_memfd)
{
	uint8_t *host;
	int fd = -1, flags = MAP_SHARED;
	uint64_t low;

	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	if (ram_size == 0 || ram_size % 4096)
		return -EINVAL;
	if (use_memfd) {
		fd = memfd_create("vireo-guest-ram", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)ram_size) < 0) {
			int err = -errno;

			close(fd);
			return err;
		}
	} else {
		flags = MAP_PRIVATE | MAP_ANONYMOUS;
	}
	host = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, flags | MAP_NORESERVE, fd, 0);
	if (host == MAP_FAILED) {
		int err = -errno;

		if (fd >= 0)
			close(fd);
		return err;
	}
	madvise(host, ram_size, MADV_DONTDUMP);
	m->memfd = fd;
	m->ram_size = ram_size;
	low = ram_size < LAYOUT_MEM32_HOLE ? ram_size : LAYOUT_MEM32_HOLE;
	m->regions[0] = (struct gmem_region){ .gpa = 0, .size = low, .host = host };
	m->nr_regions = 1;
	if (ram_size > low) {
		m->regions[1] = (struct gmem_region){ .gpa = LAYOUT_4G, .size = ram_size - low,
						      .host = host + low };
		m->nr_regions = 2;
	}
	return 0;
}

void gmem_destroy(struct gmem *m)
{
	if (m->nr_regions)
		munmap(m->regions[0].host, m->ram_size);
	if (m->memfd >= 0)
		close(m->memfd);
	memset(m, 0, sizeof(*m));
	m->memfd = -1;
}

uint64_t gmem_end(const struct gmem *m)
{
	const struct gmem_region *r = &m->regions[m->nr_regions - 1];

	return r->gpa + r->size;
}
