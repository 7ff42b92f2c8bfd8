/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The block layer's copy primitive: copy a range of one node's content into another, with
 * parallel workers, block status (holes and zero ranges are never read), zero detection,
 * compressed clusters, and a progress callback that may also stop the copy.
 *
 * vireo-img convert and commit run it; block jobs (commit, stream, backup, mirror) will run the
 * same code from the job thread, pacing it and cancelling it from the progress callback.
 */
#ifndef VIREO_BLOCKDEV_COPY_H
#define VIREO_BLOCKDEV_COPY_H

#include <stdbool.h>
#include <stdint.h>

struct blockdev;

/* A copy is cut into chunks of this size (a multiple of every qcow2 cluster size). */
#define BLOCKDEV_COPY_CHUNK (2 * 1024 * 1024ULL)
#define BLOCKDEV_COPY_MAX_PARALLEL 16

/*
 * Called after each chunk reached the target, with the bytes of the range done so far (chunks
 * complete in offset order unless .in_order is false; the count is then a total, not an
 * offset). Called with the copy's lock held, from whichever worker committed the chunk, so the
 * calls are serialized: a callback that sleeps (a job throttled to its speed, or paused) holds
 * every worker at its next chunk. A non-zero return (-errno, e.g. -ECANCELED) stops the copy,
 * which returns that value once the chunks in flight are done.
 */
typedef int blockdev_copy_progress_fn(void *opaque, uint64_t done);

struct blockdev_copy {
	struct blockdev *src, *dst;
	uint64_t offset, length;  /* the source range; the target gets the same offsets */
	/*
	 * Which layers of @src are copied. false: the content @src reads (its whole backing chain
	 * flattened). true: only what the layers from @src down to @stop (excluded) hold; a range
	 * none of them holds is left alone when @stop is set (the target already reads what @stop
	 * reads: commit into @stop, convert -B), and reads as zeroes when @stop is NULL (the chain
	 * ended, so the target is given zeroes if .write_zeroes is set).
	 */
	bool top_only;
	struct blockdev *stop;
	/* Zero runs of this size (aligned to it) inside data are found and not written as data
	 * (0: data is written as read, never scanned). */
	uint64_t sparse;
	/* The target may hold other data (an existing file, a backing file under it): ranges
	 * that read as zeroes are written as zeroes, with @zero_flags (BLOCKDEV_ZERO_*), instead
	 * of skipped. */
	bool write_zeroes;
	unsigned int zero_flags;
	bool fill_zeroes;     /* ranges that read as zeroes are written as data (convert -S 0) */
	bool compress;        /* write compressed clusters of @cluster_size (the target's) */
	uint64_t cluster_size;
	bool sync_writes;     /* flush the target after every write (writethrough, directsync) */
	/*
	 * true: chunks are written in offset order, whatever @parallel is, so that the target
	 * receives the same requests in the same order (a qcow2 target gets the same file). false:
	 * writes of different chunks overlap.
	 */
	bool in_order;
	unsigned parallel;    /* workers, 1..BLOCKDEV_COPY_MAX_PARALLEL (the caller's thread is one) */
	/* in order: chunks read ahead of the one being written (0: a default from @parallel,
	 * the source's cache mode and the CPUs) */
	unsigned window;
	blockdev_copy_progress_fn *progress;
	void *opaque;
	/* optional: @parallel BLOCKDEV_COPY_CHUNK buffers (4 KiB aligned), one per worker, used
	 * instead of buffers allocated per call; a job copying chunk after chunk keeps them (a
	 * 2 MiB allocation is an mmap and its page faults each time) */
	uint8_t *const *bufs;
	/* if set: told whether the error returned came from a write to @dst (a job applies its
	 * on-target-error policy to those, on-source-error to the rest) */
	bool *write_failed;
};

/*
 * Runs the copy on the calling thread and .parallel - 1 more; returns when it is done: 0, the
 * first -errno of a read, a write, a block status or the progress callback. The target is not
 * flushed at the end (unless .sync_writes): the caller decides. Options that contradict each
 * other (compress without a cluster size that divides the chunk, a range past the source's
 * end, parallel out of range) return -EINVAL before anything is copied.
 */
int blockdev_copy_run(const struct blockdev_copy *copy);

/*
 * The status (BLOCKDEV_STATUS_*) of [off, off + *n) in the layers from @top down to @stop
 * (excluded): the first layer that holds the range decides, and *n shrinks to what all layers
 * agree on. 0 when none of them holds it (what @stop, or past the chain's end zeroes, gives).
 */
int blockdev_chain_status(struct blockdev *top, struct blockdev *stop, uint64_t off,
			  uint64_t *n);

#endif
