/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the files of blockdev/ (not part of the block layer's public interface). */
#ifndef VIREO_BLOCKDEV_INTERNAL_H
#define VIREO_BLOCKDEV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blockdev/blockdev.h"

/* Total bytes of an iovec array. */
uint64_t blockdev_iov_size(const struct iovec *iov, int iovcnt);

/*
 * Writes into @out (room for @outcap entries) the part [@skip, @skip+@len) of @iov. Returns the
 * number of entries used, or the number needed (> @outcap) when @out is too small; -EINVAL when
 * @iov is shorter than @skip + @len.
 */
int blockdev_iov_slice(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
		       struct iovec *out, int outcap);

/* Fills [@skip, @skip+@len) of @iov with zeroes. */
void blockdev_iov_zero(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len);

/* Copies between a flat buffer and [@skip, @skip+@len) of @iov. */
void blockdev_iov_to_buf(const struct iovec *iov, int iovcnt, uint64_t skip, void *buf,
			 uint64_t len);
void blockdev_iov_from_buf(const struct iovec *iov, int iovcnt, uint64_t skip, const void *buf,
			   uint64_t len);

/* true if O_DIRECT can take @iov as is: bases multiple of @mem_align, lengths of @len_align. */
bool blockdev_iov_dio_ok(const struct iovec *iov, int iovcnt, uint32_t mem_align,
			 uint32_t len_align);

/* The registry (graph.c): a new node gets its "#blockN" name and one reference. */
void blockdev_register(struct blockdev *bs);
void blockdev_unregister(struct blockdev *bs);
/* Refuses (naming it) the first driver option that the driver's open did not take. */
int blockdev_refuse_unused(struct blockdev *bs, struct blockdev_open_ctx *ctx,
			   struct error **errp);
/* A protocol node of @drv on ctx->filename with ctx->opts (blockdev.c); the driver takes its
 * options through @ctx. */
struct blockdev *blockdev_open_protocol(const struct blockdev_driver *drv,
					struct blockdev_open_ctx *ctx, struct error **errp);
/* --blockdev driver=nbd (nbd_open.c): the node of QEMU's BlockdevOptionsNbd keys in @o. */
struct blockdev *blockdev_nbd_add(struct json_object *o, struct blockdev_opts *opts,
				  const char *where, struct error **errp);
/* Closes a node whose last reference is gone (blockdev.c). */
void blockdev_destroy(struct blockdev *bs);

/*
 * Throttling's side of the engine (engine.c): the throttle member of a queue whose node is a
 * throttle node (else NULL), and the issue of a request blockdev_submit() handed to the
 * throttle (checked, counted in flight), on the queue's iothread.
 */
struct throttle_member;
struct throttle_member *blockdev_queue_throttle(const struct blockdev_queue *q);
void blockdev_queue_issue(struct blockdev_queue *q, struct blockdev_req *req);

/* The slow-path worker of a node (engine.c): created by blockdev_queue_new, freed by close. */
int blockdev_slow_start(struct blockdev *bs, struct error **errp);
void blockdev_slow_stop(struct blockdev *bs);

#endif
