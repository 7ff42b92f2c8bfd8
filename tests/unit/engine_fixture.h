/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Requesters on iothreads for block-driver tests on the asynchronous path: each "device" is an
 * iothread with a queue on one node and a list of requests it submits, @qd at a time, from its
 * poll callback; the test thread starts them all at once and waits until every request
 * completed, each exactly once and successfully. Failures end the test (cmocka fail_msg).
 *
 * Ownership: a device's counters are touched only by its iothread while it runs (done() and
 * poll run there); the test thread sets the list up before it sets `go` and reads the results
 * after `finished` is posted.
 */
#ifndef VIREO_TESTS_UNIT_ENGINE_FIXTURE_H
#define VIREO_TESTS_UNIT_ENGINE_FIXTURE_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blockdev/blockdev.h"
#include "iothreads/iothread.h"

struct engfx_dev;

struct engfx_req {
	struct blockdev_req req;
	struct iovec iov[2];
	struct engfx_dev *d; /* the device that submitted it */
	int calls, ret;
};

struct engfx_dev {
	struct iothread_source src;
	struct iothread *it;
	struct blockdev_queue *q;
	struct engfx_req *reqs; /* the test's list: n of them, qd in flight */
	int n, next, inflight, completed, qd;
	atomic_bool go;
	sem_t finished;
};

/* Opens @path as @format with cache=@cache (and @key=@value when @key); NULL, with a
 * message printed, when this file system refuses O_DIRECT (the caller skips). */
struct blockdev *engfx_open_image(const char *path, const char *format, const char *cache,
				  bool readonly, const char *key, const char *value);
/* @ndev iothreads named "<prefix>N", each with a queue on @bs and its poll source. */
void engfx_devs_open(struct engfx_dev *devs, int ndev, struct blockdev *bs, const char *prefix);
/* Drains and frees the queues, stops the iothreads (the request lists stay the test's). */
void engfx_devs_close(struct engfx_dev *devs, int ndev);
/* Every device runs its list at once; each request must complete once, successfully. */
void engfx_run(struct engfx_dev *devs, int ndev);
/* engfx_run with @ndev lists: device i runs @reqs[i]'s @n[i] requests, @qd in flight. */
void engfx_run_lists(struct engfx_dev *devs, int ndev, struct engfx_req **reqs, const int *n,
		     int qd);
/* The byte at @i of block @blk after write generation @gen (0: never written, reads zero). */
static inline uint8_t engfx_byte(uint32_t blk, uint32_t gen, size_t i)
{
	return gen ? (uint8_t)(blk * 7 + gen * 31 + i * 13 + 1) : 0;
}
/* About half of @nblk blocks of @bsize bytes (picked by rand_r(@seed)) get generation 1 in
 * @gen and a write of it, from @wbuf, appended to device b % @ndev's list (@n counts). */
void engfx_add_half_writes(struct engfx_req **reqs, int *n, int ndev, uint8_t *wbuf,
			   uint32_t *gen, uint32_t nblk, uint32_t bsize, unsigned int *seed);
/* @rbuf (@nblk blocks of @bsize) holds what generations @gen say, or the test fails. */
void engfx_check_model(const uint32_t *gen, const uint8_t *rbuf, uint32_t nblk, uint32_t bsize);
/* Every block read into @rbuf through the engine, runs of 7 blocks to each device in turn,
 * then checked against @gen. */
void engfx_read_model(struct engfx_dev *devs, int ndev, const uint32_t *gen, uint8_t *rbuf,
		      uint32_t nblk, uint32_t bsize);
/* @t as one request of @len bytes at @off through @p (NULL: no buffer). */
void engfx_set(struct engfx_req *t, enum blockdev_op op, uint64_t off, void *p, size_t len);

#endif
