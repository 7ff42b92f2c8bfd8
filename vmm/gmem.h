/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest RAM of a vireo microVM: where it is placed (vmm/layout.h) and how it is backed. The map
 * and its lookups (gmem_ptr, gmem_read, gmem_write) are in common/gmem.h, which devices/ uses
 * without this file.
 */
#ifndef VIREO_VMM_GMEM_H
#define VIREO_VMM_GMEM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/gmem.h"

/*
 * Builds the region table for ram_size bytes: RAM below LAYOUT_MEM32_HOLE at 0, the rest at 4 GiB.
 * Maps it from a fresh memfd (or anonymous memory when use_memfd is false). Returns 0 or -errno.
 */
int gmem_init(struct gmem *m, uint64_t ram_size, bool use_memfd);
void gmem_destroy(struct gmem *m);
/* Highest guest physical address of RAM plus one. */
uint64_t gmem_end(const struct gmem *m);

#endif
