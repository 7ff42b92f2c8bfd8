/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LUKS1 crypto through OpenSSL's libcrypto (luks.h): PBKDF2-HMAC (PKCS5_PBKDF2_HMAC), the
 * anti-forensic splitter's diffusion (the header's hash), AES-XTS on 512-byte sectors with the
 * plain64 IV (the sector number, little-endian), random salts and keys (RAND_bytes).
 *
 * Threads: luks_crypt keeps nothing between calls (a cipher context of its own per call), so
 * any number of threads may encrypt and decrypt with one key at once, without a lock. A
 * struct luks_cipher keeps the contexts between calls instead (the key schedule is made once),
 * and belongs to one thread at a time: its owner's (an engine queue's iothread).
 */
#include "blockdev/luks.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

static const EVP_MD *hash_of(const struct luks_header *h)
{
	return EVP_get_digestbyname(h->hash_spec);
}

static const EVP_CIPHER *cipher_of(unsigned int key_bytes)
{
	return key_bytes == 64 ? EVP_aes_256_xts() : EVP_aes_128_xts();
}

void luks_key_wipe(struct luks_key *key)
{
	OPENSSL_cleanse(key, sizeof(*key));
}

/* Each 512-byte sector of @buf through @ctx (keyed for @encrypt), its IV the sector number. */
static int xts_sectors(EVP_CIPHER_CTX *ctx, bool encrypt, uint64_t sector, uint8_t *buf,
		       size_t len)
{
	for (size_t off = 0; off < len; off += LUKS_SECTOR, sector++) {
		uint8_t iv[16] = { 0 };
		int n;

		for (unsigned int i = 0; i < 8; i++)
			iv[i] = (uint8_t)(sector >> (8 * i)); /* plain64 */
		if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, encrypt) ||
		    !EVP_CipherUpdate(ctx, buf + off, &n, buf + off, LUKS_SECTOR) ||
		    n != LUKS_SECTOR)
			return -EIO;
	}
	return 0;
}

/* A context of @key for one direction, or NULL. */
static EVP_CIPHER_CTX *ctx_new(const struct luks_key *key, bool encrypt)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	if (ctx && !EVP_CipherInit_ex(ctx, cipher_of(key->key_bytes), NULL, key->key, NULL,
				      encrypt)) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int luks_crypt(const struct luks_key *key, bool encrypt, uint64_t sector, uint8_t *buf,
	       size_t len)
{
	EVP_CIPHER_CTX *ctx = ctx_new(key, encrypt);
	int ret = ctx ? xts_sectors(ctx, encrypt, sector, buf, len) : -EIO;

	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

struct luks_cipher {
	EVP_CIPHER_CTX *enc, *dec;
};

struct luks_cipher *luks_cipher_new(const struct luks_key *key)
{
	struct luks_cipher *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->enc = ctx_new(key, true);
	c->dec = ctx_new(key, false);
	if (!c->enc || !c->dec) {
		luks_cipher_free(c);
		return NULL;
	}
	return c;
}

int luks_cipher_run(struct luks_cipher *c, bool encrypt, uint64_t sector, uint8_t *buf,
		    size_t len)
{
	return xts_sectors(encrypt ? c->enc : c->dec, encrypt, sector, buf, len);
}

void luks_cipher_free(struct luks_cipher *c)
{
	if (!c)
		return;
	EVP_CIPHER_CTX_free(c->enc); /* it wipes the key schedule */
	EVP_CIPHER_CTX_free(c->dec);
	free(c);
}

static int pbkdf2(const struct luks_header *h, const uint8_t *pass, size_t len,
		  const uint8_t *salt, uint32_t iters, uint8_t *out, size_t n)
{
	return PKCS5_PBKDF2_HMAC((const char *)pass, (int)len, salt, LUKS_SALT_LEN, (int)iters,
				 hash_of(h), (int)n, out) ? 0 : -1;
}

/* The splitter's diffusion: each digest-sized piece of @b replaced by hash(be32(i) | piece). */
static int diffuse(const EVP_MD *md, uint8_t *b, size_t len)
{
	size_t ds = (size_t)EVP_MD_get_size(md), n = DIV_ROUND_UP(len, ds);
	uint8_t out[EVP_MAX_MD_SIZE];
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		uint8_t iv[4] = { (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
				  (uint8_t)i };
		size_t piece = MIN(ds, len - i * ds);
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();

		if (!ctx || !EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, iv, 4) ||
		    !EVP_DigestUpdate(ctx, b + i * ds, piece) || !EVP_DigestFinal_ex(ctx, out, NULL))
			ret = -1;
		else
			memcpy(b + i * ds, out, piece);
		EVP_MD_CTX_free(ctx);
	}
	return ret;
}

/* Merges @stripes blocks of @len bytes at @in into @out (or with @split, the reverse: @out's
 * first stripes - 1 blocks random, the last one what makes them merge into @in). */
static int af(const EVP_MD *md, const uint8_t *in, uint8_t *out, size_t len, uint32_t stripes,
	      bool split)
{
	uint8_t *acc = calloc(1, len);
	int ret = acc ? 0 : -1;

	for (uint32_t s = 0; !ret && s + 1 < stripes; s++) {
		const uint8_t *blk = split ? out + s * len : in + s * len;

		if (split && RAND_bytes(out + s * len, (int)len) != 1) {
			ret = -1;
			break;
		}
		for (size_t i = 0; i < len; i++)
			acc[i] ^= blk[i];
		ret = diffuse(md, acc, len);
	}
	for (size_t i = 0; !ret && i < len; i++) {
		if (split)
			out[(size_t)(stripes - 1) * len + i] = acc[i] ^ in[i];
		else
			out[i] = acc[i] ^ in[(size_t)(stripes - 1) * len + i];
	}
	if (acc)
		OPENSSL_cleanse(acc, len);
	free(acc);
	return ret;
}

/* Slot @s with passphrase @pass: 1 unlocked (into @key), 0 not this slot, -1 error. */
static int try_slot(const struct luks_header *h, const struct luks_slot *s, const uint8_t *pass,
		    size_t len, luks_read_fn *read, void *opaque, struct luks_key *key)
{
	uint64_t mlen = luks_material_len(h, s);
	uint8_t *m = malloc(mlen), digest[LUKS_DIGEST_LEN];
	struct luks_key slot_key = { .key_bytes = h->key_bytes };
	int ret = -1;

	key->key_bytes = h->key_bytes;
	if (!m || pbkdf2(h, pass, len, s->salt, s->iterations, slot_key.key, h->key_bytes) ||
	    read(opaque, (uint64_t)s->key_offset * LUKS_SECTOR, m, mlen) ||
	    luks_crypt(&slot_key, false, 0, m, mlen) ||
	    af(hash_of(h), m, key->key, h->key_bytes, s->stripes, false) ||
	    pbkdf2(h, key->key, h->key_bytes, h->mk_salt, h->mk_iterations, digest,
		   LUKS_DIGEST_LEN))
		goto out;
	ret = CRYPTO_memcmp(digest, h->mk_digest, LUKS_DIGEST_LEN) == 0;
out:
	luks_key_wipe(&slot_key);
	if (m)
		OPENSSL_cleanse(m, mlen);
	free(m);
	return ret;
}

int luks_unlock(const struct luks_header *h, const uint8_t *pass, size_t len,
		luks_read_fn *read, void *opaque, struct luks_key *key, struct error **errp)
{
	if (!hash_of(h)) {
		error_setg(errp, "LUKS hash algorithm %s is not available", h->hash_spec);
		return -1;
	}
	for (unsigned int i = 0; i < LUKS_SLOTS; i++) {
		int r;

		if (h->slots[i].active != LUKS_SLOT_ENABLED)
			continue;
		r = try_slot(h, &h->slots[i], pass, len, read, opaque, key);
		if (r == 1) {
			static _Atomic uint64_t last_id;

			key->id = atomic_fetch_add_explicit(&last_id, 1, memory_order_relaxed) + 1;
			return 0;
		}
		if (r < 0) {
			luks_key_wipe(key);
			error_setg(errp, "LUKS key slot %u: reading or decrypting its key material "
				   "failed", i);
			return -1;
		}
	}
	luks_key_wipe(key);
	error_setg(errp, "Invalid password, cannot unlock any keyslot");
	return -1;
}

/* PBKDF2 iterations that take about @ms milliseconds here for @n output bytes. */
static uint32_t iterations_for(const struct luks_header *h, unsigned int ms, size_t n)
{
	uint8_t salt[LUKS_SALT_LEN] = { 0 }, out[LUKS_KEY_MAX], pass[8] = { 0 };
	uint64_t probe = 10000, elapsed_us, iters;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	pbkdf2(h, pass, sizeof(pass), salt, (uint32_t)probe, out, n);
	clock_gettime(CLOCK_MONOTONIC, &b);
	elapsed_us = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000 +
		     (uint64_t)(b.tv_nsec - a.tv_nsec) / 1000;
	iters = probe * ms * 1000 / MAX(elapsed_us, 1);
	return (uint32_t)MIN(MAX(iters, LUKS_MIN_ITERS), UINT32_MAX);
}

static void uuid(char *out)
{
	uint8_t r[16];

	RAND_bytes(r, sizeof(r));
	r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
	r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
	snprintf(out, 41, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
		 r[13], r[14], r[15]);
}

int luks_format(struct luks_header *h, struct luks_key *key, const uint8_t *pass, size_t len,
		unsigned int iter_time, uint8_t **material, size_t *material_len,
		struct error **errp)
{
	uint32_t per_slot = DIV_ROUND_UP(64 * LUKS_STRIPES, LUKS_SECTOR), first = 4096 / LUKS_SECTOR;
	struct luks_key slot_key = { .key_bytes = 64 };
	uint8_t *m = NULL;
	size_t mlen;

	memset(h, 0, sizeof(*h));
	strcpy(h->cipher_name, "aes");
	strcpy(h->cipher_mode, "xts-plain64");
	strcpy(h->hash_spec, "sha256");
	h->key_bytes = key->key_bytes = 64;
	per_slot = ALIGN_UP(per_slot, first); /* QEMU's (and cryptsetup's) 4 KiB alignment */
	for (unsigned int i = 0; i < LUKS_SLOTS; i++) {
		h->slots[i].active = i ? LUKS_SLOT_DISABLED : LUKS_SLOT_ENABLED;
		h->slots[i].stripes = LUKS_STRIPES;
		h->slots[i].key_offset = first + per_slot * i;
	}
	h->payload_offset = first + per_slot * LUKS_SLOTS;
	uuid(h->uuid);
	if (RAND_bytes(key->key, 64) != 1 || RAND_bytes(h->mk_salt, LUKS_SALT_LEN) != 1 ||
	    RAND_bytes(h->slots[0].salt, LUKS_SALT_LEN) != 1)
		goto fail;
	h->mk_iterations = MAX(iterations_for(h, iter_time, LUKS_DIGEST_LEN) / 8, LUKS_MIN_ITERS);
	h->slots[0].iterations = iterations_for(h, iter_time, h->key_bytes);
	mlen = luks_material_len(h, &h->slots[0]);
	m = calloc(1, mlen);
	if (!m ||
	    pbkdf2(h, key->key, 64, h->mk_salt, h->mk_iterations, h->mk_digest, LUKS_DIGEST_LEN) ||
	    pbkdf2(h, pass, len, h->slots[0].salt, h->slots[0].iterations, slot_key.key, 64) ||
	    af(hash_of(h), key->key, m, 64, LUKS_STRIPES, true) ||
	    luks_crypt(&slot_key, true, 0, m, mlen))
		goto fail;
	luks_key_wipe(&slot_key);
	*material = m;
	*material_len = mlen;
	return 0;
fail:
	luks_key_wipe(&slot_key);
	luks_key_wipe(key);
	free(m);
	error_setg(errp, "creating the LUKS header: the crypto library failed");
	return -1;
}

/* Slot @i of @h: enabled for passphrase @pass, its material encrypted into *@m. */
static int fill_slot(struct luks_header *h, unsigned int i, const struct luks_key *key,
		     const uint8_t *pass, size_t len, unsigned int iter_time, uint8_t **m,
		     size_t *mlen)
{
	struct luks_slot *s = &h->slots[i];
	struct luks_key slot_key = { .key_bytes = h->key_bytes };
	int ret = -1;

	*mlen = luks_material_len(h, s);
	*m = calloc(1, *mlen);
	if (!*m || RAND_bytes(s->salt, LUKS_SALT_LEN) != 1)
		goto out;
	s->iterations = iterations_for(h, iter_time, h->key_bytes);
	if (pbkdf2(h, pass, len, s->salt, s->iterations, slot_key.key, h->key_bytes) ||
	    af(hash_of(h), key->key, *m, h->key_bytes, s->stripes, true) ||
	    luks_crypt(&slot_key, true, 0, *m, *mlen))
		goto out;
	s->active = LUKS_SLOT_ENABLED;
	ret = 0;
out:
	luks_key_wipe(&slot_key);
	return ret;
}

static int write_header(const struct luks_header *h, luks_write_fn *write, void *opaque)
{
	uint8_t buf[LUKS_HEADER_LEN];

	luks_header_put(h, buf);
	return write(opaque, 0, buf, sizeof(buf));
}

static int add_slot(struct luks_header *h, const struct luks_key *key, const struct luks_amend *a,
		    luks_write_fn *write, void *opaque, struct error **errp)
{
	struct luks_header n = *h;
	uint8_t *m = NULL;
	size_t mlen;
	int i = a->slot;

	for (unsigned int k = 0; i < 0 && k < LUKS_SLOTS; k++)
		if (h->slots[k].active != LUKS_SLOT_ENABLED)
			i = (int)k;
	if (i < 0) {
		error_setg(errp, "Can't add a keyslot - all keyslots are in use");
		return -1;
	}
	if (i >= LUKS_SLOTS) {
		error_setg(errp, "Invalid keyslot %d specified, must be between 0 and %d", i,
			   LUKS_SLOTS - 1);
		return -1;
	}
	if (h->slots[i].active == LUKS_SLOT_ENABLED) {
		error_setg(errp, "Refusing to overwrite active keyslot %i - please erase it first",
			   i);
		return -1;
	}
	n.slots[i].active = LUKS_SLOT_ENABLED; /* the layout checked as the header will say */
	if (!n.slots[i].stripes || n.slots[i].stripes > LUKS_STRIPES)
		n.slots[i].stripes = LUKS_STRIPES;
	n.slots[i].iterations = 1;
	if (luks_header_check(&n, errp) ||
	    fill_slot(&n, (unsigned int)i, key, a->new_pass, a->new_len, a->iter_time, &m, &mlen))
		goto fail;
	/* the material before the header that enables it */
	if (write(opaque, (uint64_t)n.slots[i].key_offset * LUKS_SECTOR, m, mlen) ||
	    write_header(&n, write, opaque)) {
		error_setg(errp, "writing key slot %d", i);
		goto fail;
	}
	*h = n;
	free(m);
	return 0;
fail:
	if (m)
		OPENSSL_cleanse(m, mlen);
	free(m);
	if (errp && !*errp)
		error_setg(errp, "creating key slot %d: the crypto library failed", i);
	return -1;
}

static int erase_slots(struct luks_header *h, const struct luks_amend *a, luks_read_fn *read,
		       luks_write_fn *write, void *opaque, struct error **errp)
{
	struct luks_header n = *h;
	bool erase[LUKS_SLOTS] = { false };
	unsigned int active = 0, erased = 0;

	for (unsigned int k = 0; k < LUKS_SLOTS; k++) {
		struct luks_key probe;

		if (h->slots[k].active != LUKS_SLOT_ENABLED)
			continue;
		active++;
		if (a->slot >= 0) {
			erase[k] = (int)k == a->slot;
		} else if (a->old_pass) {
			int r = try_slot(h, &h->slots[k], a->old_pass, a->old_len, read, opaque,
					 &probe);

			luks_key_wipe(&probe);
			if (r < 0) {
				error_setg(errp, "reading key slot %u", k);
				return -1;
			}
			erase[k] = r == 1;
		}
		erased += erase[k];
	}
	if (a->slot >= LUKS_SLOTS) {
		error_setg(errp, "Invalid keyslot %d specified, must be between 0 and %d", a->slot,
			   LUKS_SLOTS - 1);
		return -1;
	}
	if (!erased) {
		error_setg(errp, a->slot >= 0 ? "Given keyslot %d is already erased (inactive)" :
			   "Didn't erase a keyslot, because no keyslots match the given password",
			   a->slot);
		return -1;
	}
	if (erased == active && !a->force) {
		error_setg(errp, "Attempt to erase the only active keyslot%s which will erase all "
			   "the data in the image irreversibly - refusing operation",
			   erased > 1 ? "s" : "");
		return -1;
	}
	for (unsigned int k = 0; k < LUKS_SLOTS; k++) {
		uint64_t mlen = luks_material_len(h, &h->slots[k]);
		uint8_t *junk;

		if (!erase[k])
			continue;
		junk = malloc(mlen);
		if (!junk || RAND_bytes(junk, (int)mlen) != 1 ||
		    write(opaque, (uint64_t)h->slots[k].key_offset * LUKS_SECTOR, junk, mlen)) {
			free(junk);
			error_setg(errp, "erasing the key material of slot %u", k);
			return -1;
		}
		free(junk);
		n.slots[k].active = LUKS_SLOT_DISABLED;
		n.slots[k].iterations = 0;
		memset(n.slots[k].salt, 0, LUKS_SALT_LEN);
	}
	if (write_header(&n, write, opaque)) {
		error_setg(errp, "writing the LUKS header");
		return -1;
	}
	*h = n;
	return 0;
}

int luks_amend(struct luks_header *h, const struct luks_key *key, const struct luks_amend *a,
	       luks_read_fn *read, luks_write_fn *write, void *opaque, struct error **errp)
{
	if (a->active)
		return add_slot(h, key, a, write, opaque, errp);
	if (a->slot < 0 && !a->old_pass) {
		error_setg(errp, "state=inactive needs keyslot or old-secret");
		return -1;
	}
	return erase_slots(h, a, read, write, opaque, errp);
}
