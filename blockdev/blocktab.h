/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A table of fixed-size blocks, each either not allocated (reads as zeroes) or stored at a host
 * offset of the image file: the mapping that dynamic VHD (vpc.c) and VDI (vdi.c) images share.
 * The format parses its table into one of these, and the table serves map(), the synchronous
 * reads and writes, write-zeroes, discard and block status; the format is called back only to
 * place a new block (see blocktab.c for who owns what).
 */
#ifndef VIREO_BLOCKDEV_BLOCKTAB_H
#define VIREO_BLOCKDEV_BLOCKTAB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blockdev/blockdev.h"

/*
 * Places block @idx: the format reserves room for it at the end of the file (the file must
 * cover the whole block when it returns, so that what is not written yet reads as zeroes),
 * records the new entry in its own metadata as dirty (written at its next flush), and returns
 * the host offset of the block's first byte in *@host. Called with the table's lock held.
 * 0 or -errno.
 */
typedef int blocktab_alloc_fn(void *opaque, uint32_t idx, uint64_t *host);

struct blocktab {
	_Atomic uint64_t *host; /* per block: its data's host offset, 0 = not allocated */
	uint32_t nr;            /* blocks */
	unsigned int bits;      /* log2 of the block size */
	bool recurse;           /* every block is allocated (static images): block status also
				   asks the file which ranges are holes, as QEMU does */
	struct blockdev *file;
	pthread_mutex_t lock;   /* allocation, and the format's metadata writes */
	blocktab_alloc_fn *alloc;
	void *opaque;
};

/* Sets up an empty table (every block not allocated); -1 when out of memory. */
int blocktab_init(struct blocktab *t, uint32_t nr, unsigned int bits, struct blockdev *file,
		  blocktab_alloc_fn *alloc, void *opaque);
void blocktab_destroy(struct blocktab *t);

/* Sets block @idx's host offset while opening (no other thread can see the table yet). */
static inline void blocktab_set(struct blocktab *t, uint32_t idx, uint64_t host)
{
	atomic_store_explicit(&t->host[idx], host, memory_order_relaxed);
}

static inline uint64_t blocktab_get(struct blocktab *t, uint32_t idx)
{
	/* pairs with the release store that publishes a new block (blocktab.c) */
	return atomic_load_explicit(&t->host[idx], memory_order_acquire);
}

/* The driver ops, each as struct blockdev_driver describes them. */
int blocktab_map(struct blocktab *t, enum blockdev_op op, uint64_t off, uint64_t len,
		 struct blockdev_extent *ext);
int blocktab_preadv(struct blocktab *t, uint64_t off, const struct iovec *iov, int iovcnt);
int blocktab_pwritev(struct blocktab *t, uint64_t off, const struct iovec *iov, int iovcnt);
int blocktab_write_zeroes(struct blocktab *t, uint64_t off, uint64_t len, unsigned int flags);
int blocktab_discard(struct blocktab *t, uint64_t off, uint64_t len);
int blocktab_block_status(struct blocktab *t, uint64_t off, uint64_t len, uint64_t *pnum,
			  uint64_t *map_offset, struct blockdev **map_file);
/* Blocks allocated (for info and check). */
uint32_t blocktab_allocated(struct blocktab *t);

/*
 * The format's own table of 32-bit entries in the file (VHD's BAT, VDI's block map), kept in
 * host order with a flag per 512-byte sector of it: loaded at open, changed by the alloc
 * callback (the blocktab's lock held), and its changed sectors written back at a flush.
 */
#define BLOCKTAB_DISK_PER_SECTOR (512 / 4) /* entries per 512-byte sector of the table */

struct blocktab_disk {
	uint32_t *e;      /* the entries, host order; under the blocktab's lock */
	uint32_t n;
	uint64_t offset;  /* of the table in the file */
	bool big_endian;  /* VHD's; VDI's is little-endian */
	uint8_t *dirty;   /* per sector: holds entries not written yet */
	bool dirty_any;
};

/* Reads @n entries at @offset of @file (the caller checked they lie inside it); @what names
 * the table in a message ("BAT", "block map"). */
int blocktab_disk_load(struct blocktab_disk *d, struct blockdev *file, uint64_t offset,
		       uint32_t n, bool big_endian, const char *what, struct error **errp);
static inline void blocktab_disk_set(struct blocktab_disk *d, uint32_t idx, uint32_t v)
{
	d->e[idx] = v;
	d->dirty[idx / BLOCKTAB_DISK_PER_SECTOR] = 1;
	d->dirty_any = true;
}
/* Writes the sectors that changed since the last call; 0 or -errno (they stay dirty). */
int blocktab_disk_write(struct blocktab_disk *d, struct blockdev *file);
void blocktab_disk_free(struct blocktab_disk *d);

#endif
