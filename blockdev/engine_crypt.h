/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's side of encrypted extents (blockdev/engine_crypt.c): the cipher contexts of one
 * queue, and the transform of a request's buffers in place. Used by blockdev/engine.c only.
 */
#ifndef VIREO_BLOCKDEV_ENGINE_CRYPT_H
#define VIREO_BLOCKDEV_ENGINE_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blockdev/luks.h"

/* A queue's cipher contexts, one per key its requests met (a chain may hold several). */
struct blockdev_ciphers {
	struct blockdev_cipher_slot *v;
	unsigned int n, cap;
};

/*
 * The context of @key in @cs, made on first use. On the queue's iothread only (so it is made
 * there, and only that thread ever runs it). NULL when out of memory or OpenSSL refused.
 */
struct luks_cipher *blockdev_ciphers_get(struct blockdev_ciphers *cs, const struct luks_key *key);
/* Frees every context of @cs (no request of the queue in flight, or its iothread gone). */
void blockdev_ciphers_clear(struct blockdev_ciphers *cs);

/*
 * Decrypts (or encrypts) [@skip, @skip + @len) of @iov in place, @len whole sectors, the first
 * one's IV @sector. A sector that straddles two buffers goes through a copy of its own. 0 or
 * -EIO.
 */
int blockdev_crypt_iov(struct luks_cipher *c, bool encrypt, uint64_t sector,
		       const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len);

#endif
