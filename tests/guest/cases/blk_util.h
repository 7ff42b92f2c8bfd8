/* SPDX-License-Identifier: Apache-2.0 */
/* What the virtio-blk cases (blk, blk-smp, blk-reset, blk-hostile, bench) share. */
#ifndef GUEST_BLK_UTIL_H
#define GUEST_BLK_UTIL_H

#include "cases/cases.h"
#include "drivers/virtio_blk.h"

/*
 * Finds the virtio-blk device the options name (blk-index=N, default 0): CASE_OK, or a skip (a
 * fail with blk-require=1) when there is none.
 */
int blk_find(struct pci_dev *d);
/*
 * blk_find() + blk_init() with blk-features=MASK applied to cfg, printing the device's geometry
 * once (verbose). Returns a case result.
 */
int blk_open(struct blk *b, struct blk_cfg *cfg, bool verbose);
/* A pattern unique to (sector, seed) over sectors * 512 bytes. */
void blk_fill(void *buf, uint64_t sector, unsigned sectors, uint64_t seed);
bool blk_all_zero(const void *buf, size_t len);
/*
 * Submits n requests of one type on queue q (request i: bytes at bufs + i * bytes, sector
 * base + i * bytes / 512), kicks once, waits up to 5 s, and checks every status is OK.
 * Returns a case result.
 */
int blk_batch(struct blk *b, unsigned q, struct blk_req *reqs, unsigned n, uint32_t type,
	      uint64_t base, uint8_t *bufs, uint32_t bytes);
/* Notifications written on every queue so far. */
uint64_t blk_kicks(const struct blk *b);

#endif
