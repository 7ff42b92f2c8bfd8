/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-img check of one sparse VMDK extent, as qemu-img checks it: every grain a table points
 * at must start inside the file and overlap no metadata; vireo also counts two entries on one
 * grain (writing one would change the other). Nothing is repaired: qemu-img repairs nothing
 * in a vmdk either.
 */
#include "blockdev/vmdk_sparse_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "blockdev/internal.h"
#include "common/util.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int vmdk_sparse_check(struct vmdk_sparse *sp, const char *name, bool verbose,
		      struct blockdev_check_result *res)
{
	uint64_t *grains = NULL, nr = 0, cap = 0, fsize = sp->file->size;
	int ret = 0;

	for (uint64_t gi = 0; gi < sp->nr_gt && !ret; gi++) {
		uint8_t raw[VMDK_MAX_GTES * 4];
		vmdk_gte *t = atomic_load_explicit(&sp->gt[gi], memory_order_acquire);

		if (!sp->gd[gi] && !t)
			continue;
		if (!t && blockdev_pread(sp->file, (uint64_t)sp->gd[gi] * VMDK_SECTOR, raw,
					 sp->gt_bytes)) {
			res->check_errors++;
			continue;
		}
		for (uint32_t i = 0; i < sp->h.gtes_per_gt; i++) {
			uint32_t e = t ? atomic_load_explicit(&t[i], memory_order_relaxed) :
					 vmdk_le32(raw + 4 * i);
			uint64_t sector = (gi * sp->h.gtes_per_gt + i) * sp->h.grain_size;
			uint64_t at = (uint64_t)e * VMDK_SECTOR, need;
			const char *hit;

			if (vmdk_kind(sp, e) == K_UNALLOC || vmdk_kind(sp, e) == K_ZERO)
				continue;
			need = sp->compressed ? VMDK_GRAIN_MARKER_LEN : vmdk_grain_len(sp, sector /
										  sp->h.grain_size);
			hit = vmdk_meta_hit(sp, at, need);
			if (at >= fsize || hit) {
				res->corruptions++;
				if (verbose)
					fprintf(stderr, "ERROR: %s: the grain of sector %" PRIu64 " (at "
						"sector %" PRIu32 ") %s%s\n", name, sector, e,
						hit ? "overlaps " : "points past the end of the file",
						hit ? hit : "");
				continue;
			}
			if (nr == cap) {
				uint64_t *g = realloc(grains, (cap ? 2 * cap : 1024) * sizeof(*g));

				if (!g) {
					ret = -ENOMEM;
					break;
				}
				grains = g;
				cap = cap ? 2 * cap : 1024;
			}
			grains[nr++] = e;
		}
	}
	/* two entries on one grain: writing one changes the other */
	if (nr)
		qsort(grains, nr, sizeof(*grains), cmp_u64);
	for (uint64_t i = 1; !sp->compressed && i < nr; i++) {
		if (grains[i] < grains[i - 1] + sp->h.grain_size) {
			res->corruptions++;
			if (verbose)
				fprintf(stderr, "ERROR: %s: grains at sectors %" PRIu64 " and %" PRIu64
					" overlap\n", name, grains[i - 1], grains[i]);
		}
	}
	free(grains);
	return ret;
}

