/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the files of one sparse VMDK extent share (not for the rest of the driver, which goes
 * through vmdk.h): the extent's state, whose ownership vmdk_sparse.c explains, and helpers.
 *
 *  vmdk_sparse.c  opening (header, footer, directories, overlap checks), grain tables and
 *                 their lookups, map(), reads, block status, the embedded descriptor
 *  vmdk_alloc.c   writes: in place, allocating uncompressed grains, zeroes, new tables
 *  vmdk_grain.c   compressed grains (inflate, deflate in parallel, append, the pending partial
 *                 grain) and a stream file's tail
 *  vmdk_check.c   vireo-img check
 */
#ifndef VIREO_BLOCKDEV_VMDK_SPARSE_PRIV_H
#define VIREO_BLOCKDEV_VMDK_SPARSE_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blockdev/vmdk.h"
#include "common/util.h"

typedef _Atomic uint32_t vmdk_gte;

/* a fixed metadata range (bytes) and what it is, for messages */
struct vmdk_meta {
	uint64_t start, len;
	const char *what;
};

#define VMDK_MAX_FIXED_META 5

struct vmdk_zpool;

struct vmdk_sparse {
	struct blockdev *file;
	struct vmdk_header h;       /* the footer's header for a stream file */
	bool stream, compressed, markers, zero_grain;
	bool writable, barriers;
	uint64_t grain;             /* bytes per grain */
	uint64_t cover;             /* bytes one grain table covers */
	uint64_t gt_bytes;          /* a table on disk, whole sectors */
	uint64_t nr_gt;             /* directory entries */
	uint64_t size;              /* capacity in bytes */
	vmdk_gte *_Atomic *gt;

	pthread_mutex_t lock;
	uint32_t *gd, *rgd;         /* table sectors (rgd NULL: no redundant copy) */
	struct vmdk_meta fixed[VMDK_MAX_FIXED_META];
	size_t nr_fixed;
	uint32_t *gt_sectors;       /* every table's sector (both copies), sorted */
	size_t nr_gt_sectors, cap_gt_sectors;
	uint64_t end;               /* where the next grain goes */
	bool tail_dirty;            /* stream: tables, directory and footer to write */
	uint8_t *gt_dirty;          /* per table, its sectors to write at flush (vmdk_alloc.c) */
	uint64_t *dirty;            /* the tables with dirty sectors */
	size_t nr_dirty, cap_dirty;
	bool dir_dirty;             /* new tables: the directories to write after them */
	uint64_t pending_grain;     /* compressed: the grain in @pending_buf, UINT64_MAX: none */
	uint8_t *pending_buf;
	struct vmdk_zpool *zpool;   /* compressed, writable: deflate helpers (NULL: none yet) */
	bool corrupt_said;
};

static inline uint32_t vmdk_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void vmdk_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void vmdk_put64(uint8_t *p, uint64_t v)
{
	vmdk_put32(p, (uint32_t)v);
	vmdk_put32(p + 4, (uint32_t)(v >> 32));
}

/* What a grain table entry says. */
enum vmdk_kind { K_UNALLOC, K_ZERO, K_DATA, K_COMPRESSED };

static inline enum vmdk_kind vmdk_kind(const struct vmdk_sparse *sp, uint32_t e)
{
	if (!e)
		return K_UNALLOC;
	if (e == VMDK_GTE_ZEROED && sp->zero_grain)
		return K_ZERO;
	return sp->compressed ? K_COMPRESSED : K_DATA;
}

/* The bytes of grain @g that lie inside the capacity (fewer only for the last grain). */
static inline uint64_t vmdk_grain_len(const struct vmdk_sparse *sp, uint64_t g)
{
	return MIN(sp->grain, sp->size - g * sp->grain);
}

/* A run of grains of one kind from an offset, inside one table (vmdk_classify). */
struct vmdk_piece {
	enum vmdk_kind kind;
	uint64_t len;
	uint32_t e;      /* the first grain's entry */
	uint64_t host;   /* K_DATA: the byte in the file */
};

/* vmdk_sparse.c */
int vmdk_corrupt(struct vmdk_sparse *sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vmdk_meta_hit(const struct vmdk_sparse *sp, uint64_t start, uint64_t len);
int vmdk_add_gt_sector(struct vmdk_sparse *sp, uint32_t sector);
vmdk_gte *vmdk_gt_load(struct vmdk_sparse *sp, uint64_t gi, int *err);
vmdk_gte *vmdk_gt_get(struct vmdk_sparse *sp, uint64_t gi, int *err);
void vmdk_classify(const struct vmdk_sparse *sp, vmdk_gte *t, uint64_t off, uint64_t max,
		   struct vmdk_piece *p);
int vmdk_file_io(struct vmdk_sparse *sp, bool write, uint64_t host, const struct iovec *iov,
		 int iovcnt, uint64_t skip, uint64_t len);

/* vmdk_alloc.c */
int vmdk_gt_place(struct vmdk_sparse *sp, uint64_t gi);
int vmdk_set_entries(struct vmdk_sparse *sp, uint64_t gi, uint32_t idx, uint32_t n,
		     const uint32_t *sectors);
/* Writes the tables (and directories) changed since the last time, after a flush of the data
 * they point at (lock held; flush and close). */
int vmdk_tables_out(struct vmdk_sparse *sp);

/* vmdk_grain.c */
int vmdk_grain_inflate(struct vmdk_sparse *sp, uint64_t g, uint32_t e, uint8_t *out);
int vmdk_grain_content(struct vmdk_sparse *sp, uint64_t g, uint32_t e, uint8_t *out);
bool vmdk_pending_read(struct vmdk_sparse *sp, uint64_t off, uint64_t len,
		       const struct iovec *iov, int iovcnt, uint64_t skip);
int vmdk_pending_write(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
		       int iovcnt, uint64_t skip, uint64_t len);
int vmdk_write_compressed(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
			  int iovcnt, uint64_t len);
int vmdk_settle(struct vmdk_sparse *sp);
void vmdk_zpool_free(struct vmdk_zpool *z);

#endif
