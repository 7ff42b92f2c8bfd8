/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LUKS1 (cryptsetup's on-disk format 1.2.1, as QEMU writes it) for the standalone `luks` format
 * driver (blockdev/luks.c) and qcow2's encrypt.format=luks: the header (luks_format.c: pure
 * parse and serialize, every field bounded), and the crypto (luks_crypto.c: PBKDF2, the
 * anti-forensic splitter, AES-XTS-plain64 on 512-byte sectors, all through OpenSSL's libcrypto;
 * nothing hand-written).
 *
 * The volume key unlocks from a passphrase through one of 8 key slots: PBKDF2 of the passphrase
 * with the slot's salt and iterations gives the key that decrypts the slot's key material
 * (sectors of the header area, numbered from 0 for the IV), which the splitter merges into a
 * candidate volume key; PBKDF2 of that with the header's salt must give the header's digest.
 * Data sectors are encrypted with the volume key, the IV the sector number (plain64).
 */
#ifndef VIREO_BLOCKDEV_LUKS_H
#define VIREO_BLOCKDEV_LUKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define LUKS_HEADER_LEN 592
#define LUKS_SECTOR 512
#define LUKS_SLOTS 8
#define LUKS_STRIPES 4000
#define LUKS_DIGEST_LEN 20
#define LUKS_SALT_LEN 32
#define LUKS_KEY_MAX 64
#define LUKS_SLOT_ENABLED 0x00ac71f3u
#define LUKS_SLOT_DISABLED 0x0000deadu
#define LUKS_MIN_ITERS 1000
#define LUKS_DEFAULT_ITER_TIME 2000 /* ms, as QEMU's */

struct luks_slot {
	uint32_t active;
	uint32_t iterations;
	uint8_t salt[LUKS_SALT_LEN];
	uint32_t key_offset; /* sectors from the start of the header */
	uint32_t stripes;
};

struct luks_header {
	char cipher_name[33], cipher_mode[33], hash_spec[33]; /* NUL-terminated */
	uint32_t payload_offset; /* sectors from the start of the header */
	uint32_t key_bytes;
	uint8_t mk_digest[LUKS_DIGEST_LEN];
	uint8_t mk_salt[LUKS_SALT_LEN];
	uint32_t mk_iterations;
	char uuid[41];
	struct luks_slot slots[LUKS_SLOTS];
};

/* The unlocked volume key. */
struct luks_key {
	uint8_t key[LUKS_KEY_MAX];
	unsigned int key_bytes; /* 32 (AES-128-XTS) or 64 (AES-256-XTS) */
	/* set by luks_unlock: a number no other key of the process gets, so that a cache of
	 * cipher contexts (the engine's, per queue) never takes a new key that happens to lie
	 * where a freed one did for that one; 0 for keys made otherwise */
	uint64_t id;
};

/* true if @buf starts with the LUKS magic and version 1 */
bool luks_probe(const uint8_t *buf, size_t len);

/**
 * luks_header_parse - parse and validate a LUKS1 header
 * @buf: its first LUKS_HEADER_LEN bytes
 * @area: bytes the header may use (a standalone image: its file size; in qcow2: the
 *        encryption header's length): every key slot's material must lie inside
 *
 * Refuses, naming the field: bad magic or version, a cipher other than aes in xts-plain64 mode
 * with a 32- or 64-byte key, a hash other than sha1, sha256 or sha512, unterminated strings,
 * slots in an unknown state, enabled slots with 0 iterations or 0 or over 4000 stripes, key
 * material outside @area or overlapping the header, a payload before the key material.
 */
int luks_header_parse(const uint8_t *buf, size_t len, uint64_t area, struct luks_header *h,
		      struct error **errp);
void luks_header_put(const struct luks_header *h, uint8_t *buf);
/* The key slots of @h checked as luks_header_parse checks them (the area: up to the payload). */
int luks_header_check(const struct luks_header *h, struct error **errp);
/* Bytes of one slot's key material (stripes x key bytes, whole sectors). */
uint64_t luks_material_len(const struct luks_header *h, const struct luks_slot *s);

/* Reads @len bytes at @off of the header area (for the key material). */
typedef int luks_read_fn(void *opaque, uint64_t off, void *buf, size_t len);

/*
 * Unlocks the volume key with passphrase @pass (@len bytes) from the first slot it opens.
 * -1 with "Invalid password, cannot unlock any keyslot" (QEMU's words) when none does.
 */
int luks_unlock(const struct luks_header *h, const uint8_t *pass, size_t len,
		luks_read_fn *read, void *opaque, struct luks_key *key, struct error **errp);

/*
 * A new volume (QEMU's layout: aes-256 xts-plain64, sha256, 4000 stripes, the 8 slots' material
 * from 4 KiB on, slot 0 holding @pass): fills @h and @key, and *@material (malloc'd,
 * *@material_len bytes) is slot 0's encrypted key material, to write at
 * h->slots[0].key_offset sectors. PBKDF2 iterations are set for about @iter_time ms (QEMU's
 * scaling: the volume key digest an eighth of it), at least LUKS_MIN_ITERS.
 */
int luks_format(struct luks_header *h, struct luks_key *key, const uint8_t *pass, size_t len,
		unsigned int iter_time, uint8_t **material, size_t *material_len,
		struct error **errp);

/* QEMU's QCryptoBlockInfoLUKS of @h (format-specific data; with "format": "luks" inside a
 * qcow2 image's "encrypt", @in_qcow2). */
struct json_object *luks_info_json(const struct luks_header *h, bool in_qcow2);

/* The passphrase in the secret that open option @key (key-secret, encrypt.key-secret) names;
 * -1 with QEMU's "Parameter '...' is required for cipher" when the option is missing. */
struct blockdev_open_ctx;
int luks_passphrase(struct blockdev_open_ctx *ctx, const char *key, const uint8_t **pass,
		    size_t *len, struct error **errp);

/*
 * Creates (or truncates) @filename as a LUKS image of @size bytes (rounded up to a sector)
 * whose key slot 0 holds the passphrase in secret @secret (PBKDF2 scaled to @iter_time ms);
 * the payload starts as the file's zeroes, which read as ciphertext: a new volume's content is
 * undefined until written, as cryptsetup's and QEMU's.
 */
int luks_create(const char *filename, uint64_t size, const char *secret, unsigned int iter_time,
		struct error **errp);

/* Writes @len bytes at @off of the header area. */
typedef int luks_write_fn(void *opaque, uint64_t off, const void *buf, size_t len);

/* A change of key slots (qemu-img amend's state=active|inactive). */
struct luks_amend {
	bool active;               /* add @new_pass; else remove slots */
	const uint8_t *new_pass;   /* active: the passphrase to add */
	size_t new_len;
	const uint8_t *old_pass;   /* inactive: remove the slots it opens (or NULL) */
	size_t old_len;
	int slot;                  /* keyslot=N, or -1: the first free (active) */
	unsigned int iter_time;    /* ms of PBKDF2 for a new slot */
	bool force;                /* inactive: may erase the last active slot */
};

/*
 * Applies @a to the volume whose header @h lies at offset 0 of an area read and written through
 * @read / @write, its volume key @key unlocked. A new slot's key material is written before the
 * header enables it; an erased slot's material is overwritten with random bytes before the
 * header disables it. Refused with QEMU's messages: an active slot asked for, no free slot, no
 * slot to erase, or erasing the last active one without @force. @h is updated on success.
 */
int luks_amend(struct luks_header *h, const struct luks_key *key, const struct luks_amend *a,
	       luks_read_fn *read, luks_write_fn *write, void *opaque, struct error **errp);

/* luks_amend on a luks node opened read-write with its key-secret (blockdev/luks.c). */
struct blockdev;
int luks_amend_node(struct blockdev *bs, const struct luks_amend *a, struct error **errp);

/* Encrypts (or decrypts) @len bytes (whole sectors) at @buf in place, the first sector's IV
 * being @sector. Any thread, no shared state: 0 or -EIO. */
int luks_crypt(const struct luks_key *key, bool encrypt, uint64_t sector, uint8_t *buf,
	       size_t len);
/* Forgets the key bytes. */
void luks_key_wipe(struct luks_key *key);

/*
 * A cipher context of one key (its AES-XTS key schedules, both directions), for one thread at
 * a time: where luks_crypt makes a context per call, the engine keeps one per queue and key
 * (blockdev/engine_crypt.c), made on the queue's iothread, so that the fast path takes no lock
 * and shares nothing mutable. NULL when out of memory or OpenSSL refuses the key.
 */
struct luks_cipher;
struct luks_cipher *luks_cipher_new(const struct luks_key *key);
/* luks_crypt with @c's key: @len bytes (whole sectors) at @buf in place; 0 or -EIO. */
int luks_cipher_run(struct luks_cipher *c, bool encrypt, uint64_t sector, uint8_t *buf,
		    size_t len);
void luks_cipher_free(struct luks_cipher *c);

#endif
