/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encrypted extents on the fast path (engine.c): a driver's map() may hand the engine a DATA
 * extent whose bytes in the file are AES-XTS ciphertext (struct blockdev_extent's @crypt: the
 * key, and the IV of its first sector). The engine then decrypts a read's buffers in place
 * once the read completed, and writes an encrypted copy of a write's data (never the guest's
 * memory, which the guest may change and must not see change), both on the iothread.
 *
 * Ownership. Each queue (one node on one iothread) has its own cipher contexts, one per key its
 * requests reached (the node's, a backing file's), made on first use on that iothread and
 * used only there: no lock and nothing shared is written on the data path. The keys are the
 * drivers' and read-only while their nodes are open; a context is found by the key's address
 * and its id (luks.h), so that a key freed and another made at the same address is never taken
 * for the old one. The contexts go with the queue, or when its chain changes
 * (blockdev_queue_forget_files).
 */
#include "blockdev/engine_crypt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct blockdev_cipher_slot {
	const struct luks_key *key;
	uint64_t id;
	struct luks_cipher *c;
};

struct luks_cipher *blockdev_ciphers_get(struct blockdev_ciphers *cs, const struct luks_key *key)
{
	struct blockdev_cipher_slot *s;

	for (unsigned int i = 0; i < cs->n; i++)
		if (cs->v[i].key == key && cs->v[i].id == key->id)
			return cs->v[i].c;
	if (cs->n == cs->cap) {
		unsigned int cap = cs->cap ? 2 * cs->cap : 2;
		void *p = realloc(cs->v, cap * sizeof(*cs->v));

		if (!p)
			return NULL;
		cs->v = p;
		cs->cap = cap;
	}
	s = &cs->v[cs->n];
	s->c = luks_cipher_new(key);
	if (!s->c)
		return NULL;
	s->key = key;
	s->id = key->id;
	cs->n++;
	return s->c;
}

void blockdev_ciphers_clear(struct blockdev_ciphers *cs)
{
	for (unsigned int i = 0; i < cs->n; i++)
		luks_cipher_free(cs->v[i].c);
	free(cs->v);
	*cs = (struct blockdev_ciphers){ 0 };
}

int blockdev_crypt_iov(struct luks_cipher *c, bool encrypt, uint64_t sector,
		       const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len)
{
	int i = 0;

	if (len % LUKS_SECTOR)
		return -EIO;
	while (i < iovcnt && skip >= iov[i].iov_len)
		skip -= iov[i++].iov_len;
	while (len) {
		uint8_t *p, one[LUKS_SECTOR];
		uint64_t run;
		int ret;

		if (i >= iovcnt)
			return -EIO;
		p = (uint8_t *)iov[i].iov_base + skip;
		/* the whole sectors that lie in this buffer, in one call */
		run = MIN(ALIGN_DOWN(iov[i].iov_len - skip, LUKS_SECTOR), len);
		if (run) {
			ret = luks_cipher_run(c, encrypt, sector, p, run);
			skip += run;
		} else { /* a sector across buffers: gathered, transformed, scattered back */
			uint64_t got = 0;
			int j = i;
			uint64_t s = skip;

			while (got < LUKS_SECTOR && j < iovcnt) {
				uint64_t n = MIN(iov[j].iov_len - s, LUKS_SECTOR - got);

				memcpy(one + got, (uint8_t *)iov[j].iov_base + s, n);
				got += n;
				s += n;
				if (s == iov[j].iov_len) {
					j++;
					s = 0;
				}
			}
			if (got < LUKS_SECTOR)
				return -EIO;
			ret = luks_cipher_run(c, encrypt, sector, one, LUKS_SECTOR);
			for (uint64_t put = 0; !ret && put < LUKS_SECTOR;) {
				uint64_t n = MIN(iov[i].iov_len - skip, LUKS_SECTOR - put);

				memcpy((uint8_t *)iov[i].iov_base + skip, one + put, n);
				put += n;
				skip += n;
				if (skip == iov[i].iov_len) {
					i++;
					skip = 0;
				}
			}
			run = LUKS_SECTOR;
		}
		if (ret)
			return ret;
		if (i < iovcnt && skip == iov[i].iov_len) {
			i++;
			skip = 0;
		}
		sector += run / LUKS_SECTOR;
		len -= run;
	}
	return 0;
}
