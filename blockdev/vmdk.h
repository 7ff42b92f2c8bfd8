/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vmdk format driver (blockdev/vmdk*.c): the driver table, and what its files share.
 *
 *  vmdk_format.h  on-disk layout and the pure parsers (header, descriptor)
 *  vmdk.c         the node: descriptor and extents, map(), the synchronous ops, info, check
 *  vmdk_sparse.c  one hosted sparse extent (with vmdk_alloc.c, vmdk_grain.c, vmdk_check.c:
 *                 vmdk_sparse_priv.h): grain tables, allocation, compressed grains, the stream
 *                 footer
 *  vmdk_create.c  new images of each subformat (vireo-img create, convert -O vmdk)
 */
#ifndef VIREO_BLOCKDEV_VMDK_H
#define VIREO_BLOCKDEV_VMDK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blockdev/blockdev.h"
#include "blockdev/create.h"
#include "blockdev/vmdk_format.h"

extern const struct blockdev_driver blockdev_vmdk;

/* true when the first @len bytes are a VMDK sparse extent or descriptor file */
bool vmdk_probe(const uint8_t *buf, size_t len);

/* ---------------------------------------------------------------------------------------------
 * One sparse extent (vmdk_sparse.c). Offsets are bytes inside the extent; the caller keeps
 * every request inside the extent's capacity.
 */
struct vmdk_sparse;

/**
 * vmdk_sparse_open - open the sparse extent in @file
 * @writable: writes will come (a stream file is then prepared for appending)
 * @barriers: order data before the grain table entries that point at it with a flush
 *            (metadata-barriers=off: a crash may leave the file useless, as for a new target)
 *
 * Reads the header (the footer of a stream file), the grain directories, and checks that every
 * grain table lies inside the file and overlaps no other metadata. Returns 0 or -1 with a
 * message naming the field (the caller prepends the file's name).
 */
int vmdk_sparse_open(struct blockdev *file, bool writable, bool barriers,
		     struct vmdk_sparse **out, struct error **errp);
/* Writes what is still in memory (a stream file's tables and footer), then frees. */
int vmdk_sparse_close(struct vmdk_sparse *sp);

const struct vmdk_header *vmdk_sparse_header(const struct vmdk_sparse *sp);
/* grains are stored compressed */
bool vmdk_sparse_compressed(const struct vmdk_sparse *sp);
/* the file keeps its directory at its end (GD_AT_END: VMware's streamOptimized layout) */
bool vmdk_sparse_stream(const struct vmdk_sparse *sp);

/* The embedded descriptor's text (malloc'd, *len bytes) or NULL with *len 0 when it has none;
 * -errno on a read error. */
int vmdk_sparse_read_desc(struct vmdk_sparse *sp, char **text, size_t *len);
/* Writes @len bytes of descriptor text over the embedded one (zero-padded); -ENOSPC when it
 * does not fit. */
int vmdk_sparse_write_desc(struct vmdk_sparse *sp, const char *text, size_t len);

/* The fast path: see blockdev_driver.map (no lock; SLOW when a table is not loaded yet). */
int vmdk_sparse_map(struct vmdk_sparse *sp, enum blockdev_op op, uint64_t off, uint64_t len,
		    struct blockdev_extent *ext);
int vmdk_sparse_readv(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov, int iovcnt);
int vmdk_sparse_writev(struct vmdk_sparse *sp, uint64_t off, const struct iovec *iov,
		       int iovcnt);
int vmdk_sparse_zero(struct vmdk_sparse *sp, uint64_t off, uint64_t len);
int vmdk_sparse_status(struct vmdk_sparse *sp, uint64_t off, uint64_t len, uint64_t *pnum,
		       uint64_t *map_offset, struct blockdev **map_file);
int vmdk_sparse_flush(struct vmdk_sparse *sp);
/* Checks every grain table entry; @verbose prints each problem on stderr naming @name. */
int vmdk_sparse_check(struct vmdk_sparse *sp, const char *name, bool verbose,
		      struct blockdev_check_result *res);

/* vireo-img create -f vmdk, convert -O vmdk (vmdk_create.c) */
extern const struct blockdev_create_opt_desc vmdk_create_opts[];
int vmdk_create(const struct blockdev_create_ctx *ctx, struct error **errp);

#endif
