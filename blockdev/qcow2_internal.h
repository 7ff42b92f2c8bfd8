/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 write side: the helpers its files share with one another, one section per file that
 * defines them. Included only by blockdev/qcow2*.c (qcow2.h is also what vireo-img, the probe
 * and the tests include; nothing here is for them). Everything here runs with q->lock held,
 * except qcow2_deallocate_range(), which takes it.
 *
 * The files call one another one way only (each calls those below it, never one above):
 *   qcow2_resize.c -> qcow2_zero.c, qcow2_write_compressed.c -> qcow2_write.c ->
 *   qcow2_commit.c -> qcow2_alloc.c -> qcow2_map.c -> qcow2_refcount.c -> qcow2_meta.c
 * and the driver (qcow2_driver.c) sits above them all, reaching them through its ops table.
 */
#ifndef VIREO_BLOCKDEV_QCOW2_INTERNAL_H
#define VIREO_BLOCKDEV_QCOW2_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

struct qcow2;

/* --- qcow2_meta.c --- */
/* -EIO (and the image flagged corrupt) when the data write [host, host+len) would land on the
 * header, the L1 table or the refcount table; else 0. */
int qcow2_check_data_target(struct qcow2 *q, uint64_t host, uint64_t len);
/* -EIO once a corruption was found, after setting the header's corrupt bit (version 3). */
int qcow2_check_corrupt(struct qcow2 *q);

/* --- qcow2_alloc.c --- */
/* The L2 table for L1 index @l1i into *@l2: allocated if missing, copied if a snapshot shares
 * it. */
int qcow2_ensure_l2(struct qcow2 *q, uint64_t l1i, uint64_t *l2);
/* Host cluster for a new guest cluster at @gco: allocated, or @gco in an external data file. */
int64_t qcow2_new_cluster(struct qcow2 *q, uint64_t gco);
/* Gives back what qcow2_new_cluster() returned when nothing points to it yet. */
void qcow2_drop_new_cluster(struct qcow2 *q, uint64_t host);
/* Drops the reference the L2 entry whose first word is @e0 held (it no longer points there). */
int qcow2_release_entry(struct qcow2 *q, uint64_t e0);

/* --- qcow2_commit.c --- */
/* Stages the new entry @ne (replacing @old) of index @idx of the L2 table at @l2; a no-op when
 * they are the same. Published by the next qcow2_commit(). */
int qcow2_commit_entry(struct qcow2 *q, uint64_t l2, uint64_t idx, const uint64_t *old,
		       const uint64_t *ne);
/* Whether the entry at index @idx of the L2 table at @l2 is staged (not yet published). */
bool qcow2_is_staged(const struct qcow2 *q, uint64_t l2, uint64_t idx);
/* Commits what the locked section staged, then releases the lock; returns @ret, or else the
 * commit's result. */
int qcow2_unlock_commit(struct qcow2 *q, int ret);
/* In a group: stages the entry of the fresh cluster @host (guest offset @gco, old entry @e)
 * with its data write deferred to the commit: bytes [a, a+n) from @p, the rest zeroes
 * (@zero_rest) or the backing file's. On failure @host is given back. */
int qcow2_defer_whole(struct qcow2 *q, uint64_t gco, uint64_t l2, uint64_t idx,
		      const uint64_t *e, uint64_t host, uint64_t a, const uint8_t *p, uint64_t n,
		      bool zero_rest);
/* In a group: drops the staged entries of the writes that failed, giving back the clusters
 * they allocated. */
void qcow2_drop_failed(struct qcow2 *q);

/* --- qcow2_write.c --- */
/* Rewrites the cluster at guest offset @gco (entry @e, index @idx of the L2 table at @l2) with
 * bytes [a, a+n) from @p into a fresh host cluster, or in place when it is ours; the rest is
 * zeroes (@zero_rest) or its current contents. @defer: in a group, via qcow2_defer_whole(). */
int qcow2_write_whole(struct qcow2 *q, uint64_t gco, uint64_t l2, uint64_t idx,
		      const uint64_t *e, uint64_t a, const uint8_t *p, uint64_t n, bool zero_rest,
		      bool defer);

/* --- qcow2_amend.c --- */
/* Serializes @h, writes it over the header cluster (then a flush) and makes it q->h. */
int qcow2_write_header(struct qcow2 *q, struct qcow2_header *h, struct error **errp);

/* --- qcow2_zero.c --- */
/* Every whole cluster of [off, off+len) (and a last partial one at the image's end) becomes
 * unallocated: it reads the backing file again. Takes the lock itself. */
int qcow2_deallocate_range(struct qcow2 *q, uint64_t off, uint64_t len);

/*
 * Whether an unallocated cluster at @off shows a backing file through, now or whenever the
 * image is opened again: the backing node linked now, or (none linked: opened with
 * backing=null, as an incremental backup's target is) the one the header names. Zeroes and
 * discards must then be written as zero clusters; only where nothing can show through may an
 * unallocated cluster stand for zeroes.
 */
static inline bool qcow2_backing_shows(const struct qcow2 *q, uint64_t off)
{
	if (q->bs->backing)
		return off < q->bs->backing->size;
	return q->h.backing_file[0] != '\0';
}

#endif
