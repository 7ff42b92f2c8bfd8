/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LUKS1 header (luks.h): parse and validate, serialize. Pure: no I/O, no crypto.
 *
 * 592 bytes, big-endian: magic "LUKS\xba\xbe" (6), version (2), cipher name, cipher mode and
 * hash (32 each, NUL-padded), payload offset (4, sectors), key bytes (4), volume key digest
 * (20), its salt (32) and PBKDF2 iterations (4), UUID (40), then 8 key slots of 48 bytes:
 * state, iterations, salt (32), key material offset (sectors), stripes.
 */
#include "blockdev/luks.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

static const uint8_t magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

bool luks_probe(const uint8_t *buf, size_t len)
{
	return len >= 8 && !memcmp(buf, magic, sizeof(magic)) && buf[6] == 0 && buf[7] == 1;
}

uint64_t luks_material_len(const struct luks_header *h, const struct luks_slot *s)
{
	return ALIGN_UP((uint64_t)h->key_bytes * s->stripes, LUKS_SECTOR);
}

/* A NUL-padded string field of @n bytes: it must end in a NUL inside the field. */
static int take_string(const uint8_t *p, size_t n, char *out, const char *field, unsigned at,
		       struct error **errp)
{
	if (!memchr(p, 0, n)) {
		error_setg(errp, "LUKS header field %s (byte %u) is not NUL-terminated", field, at);
		return -1;
	}
	memset(out, 0, n + 1);
	memcpy(out, p, strnlen((const char *)p, n)); /* what follows the NUL is padding */
	return 0;
}

static int check_slot(const struct luks_header *h, unsigned i, uint64_t area,
		      struct error **errp)
{
	const struct luks_slot *s = &h->slots[i];
	uint64_t start = (uint64_t)s->key_offset * LUKS_SECTOR;

	if (s->active == LUKS_SLOT_DISABLED)
		return 0;
	if (s->active != LUKS_SLOT_ENABLED) {
		error_setg(errp, "LUKS key slot %u: state 0x%08x is neither enabled nor disabled", i,
			   s->active);
		return -1;
	}
	if (!s->iterations || !s->stripes || s->stripes > LUKS_STRIPES) {
		error_setg(errp, "LUKS key slot %u: %u iterations and %u stripes (1 to %u)", i,
			   s->iterations, s->stripes, LUKS_STRIPES);
		return -1;
	}
	if (start < LUKS_HEADER_LEN || !range_within(start, luks_material_len(h, s), area) ||
	    start + luks_material_len(h, s) > (uint64_t)h->payload_offset * LUKS_SECTOR) {
		error_setg(errp, "LUKS key slot %u: its key material (sector %u, %" PRIu64 " bytes) "
			   "overlaps the header or the payload, or lies past the end of the "
			   "header area (%" PRIu64 " bytes)", i, s->key_offset,
			   luks_material_len(h, s), area);
		return -1;
	}
	for (unsigned j = 0; j < i; j++) {
		const struct luks_slot *o = &h->slots[j];
		uint64_t ostart = (uint64_t)o->key_offset * LUKS_SECTOR;

		if (o->active == LUKS_SLOT_ENABLED &&
		    start < ostart + luks_material_len(h, o) &&
		    ostart < start + luks_material_len(h, s)) {
			error_setg(errp, "LUKS key slots %u and %u: their key material overlaps", j,
				   i);
			return -1;
		}
	}
	return 0;
}

int luks_header_parse(const uint8_t *b, size_t len, uint64_t area, struct luks_header *h,
		      struct error **errp)
{
	memset(h, 0, sizeof(*h));
	if (len < LUKS_HEADER_LEN || memcmp(b, magic, sizeof(magic))) {
		error_setg(errp, "Volume is not in LUKS format");
		return -1;
	}
	if (b[6] != 0 || b[7] != 1) {
		error_setg(errp, "LUKS version %u is not supported", (b[6] << 8) | b[7]);
		return -1;
	}
	if (take_string(b + 8, 32, h->cipher_name, "cipher-name", 8, errp) ||
	    take_string(b + 40, 32, h->cipher_mode, "cipher-mode", 40, errp) ||
	    take_string(b + 72, 32, h->hash_spec, "hash-spec", 72, errp))
		return -1;
	h->payload_offset = be32(b + 104);
	h->key_bytes = be32(b + 108);
	memcpy(h->mk_digest, b + 112, LUKS_DIGEST_LEN);
	memcpy(h->mk_salt, b + 132, LUKS_SALT_LEN);
	h->mk_iterations = be32(b + 164);
	memcpy(h->uuid, b + 168, 40);
	h->uuid[40] = '\0';
	for (unsigned i = 0; i < LUKS_SLOTS; i++) {
		const uint8_t *s = b + 208 + 48 * i;

		h->slots[i].active = be32(s);
		h->slots[i].iterations = be32(s + 4);
		memcpy(h->slots[i].salt, s + 8, LUKS_SALT_LEN);
		h->slots[i].key_offset = be32(s + 40);
		h->slots[i].stripes = be32(s + 44);
	}
	if (strcmp(h->cipher_name, "aes") || strcmp(h->cipher_mode, "xts-plain64") ||
	    (h->key_bytes != 32 && h->key_bytes != 64)) {
		error_setg(errp, "LUKS cipher %s-%s with a %u-byte key is not supported: only aes "
			   "xts-plain64 with 32- or 64-byte keys", h->cipher_name, h->cipher_mode,
			   h->key_bytes);
		return -1;
	}
	if (strcmp(h->hash_spec, "sha1") && strcmp(h->hash_spec, "sha256") &&
	    strcmp(h->hash_spec, "sha512")) {
		error_setg(errp, "LUKS hash algorithm %s is not supported: sha1, sha256 or sha512",
			   h->hash_spec);
		return -1;
	}
	if (!h->mk_iterations) {
		error_setg(errp, "LUKS header field master-key-iterations (byte 164) is 0");
		return -1;
	}
	if ((uint64_t)h->payload_offset * LUKS_SECTOR < LUKS_HEADER_LEN) {
		error_setg(errp, "LUKS header field payload-offset (byte 104) is %u sectors: inside "
			   "the header", h->payload_offset);
		return -1;
	}
	for (unsigned i = 0; i < LUKS_SLOTS; i++)
		if (check_slot(h, i, area, errp))
			return -1;
	return 0;
}

void luks_header_put(const struct luks_header *h, uint8_t *b)
{
	memset(b, 0, LUKS_HEADER_LEN);
	memcpy(b, magic, sizeof(magic));
	b[7] = 1;
	memcpy(b + 8, h->cipher_name, strnlen(h->cipher_name, 31));
	memcpy(b + 40, h->cipher_mode, strnlen(h->cipher_mode, 31));
	memcpy(b + 72, h->hash_spec, strnlen(h->hash_spec, 31));
	put_be32(b + 104, h->payload_offset);
	put_be32(b + 108, h->key_bytes);
	memcpy(b + 112, h->mk_digest, LUKS_DIGEST_LEN);
	memcpy(b + 132, h->mk_salt, LUKS_SALT_LEN);
	put_be32(b + 164, h->mk_iterations);
	memcpy(b + 168, h->uuid, strnlen(h->uuid, 40));
	for (unsigned i = 0; i < LUKS_SLOTS; i++) {
		uint8_t *s = b + 208 + 48 * i;

		put_be32(s, h->slots[i].active);
		put_be32(s + 4, h->slots[i].iterations);
		memcpy(s + 8, h->slots[i].salt, LUKS_SALT_LEN);
		put_be32(s + 40, h->slots[i].key_offset);
		put_be32(s + 44, h->slots[i].stripes);
	}
}

struct json_object *luks_info_json(const struct luks_header *h, bool in_qcow2)
{
	struct json_object *o = json_object_new_object(), *slots = json_object_new_array();
	char alg[48];

	snprintf(alg, sizeof(alg), "%s-%u", h->cipher_name, h->key_bytes * 8 / 2);
	json_object_object_add(o, "ivgen-alg", json_object_new_string("plain64"));
	json_object_object_add(o, "detached-header", json_object_new_boolean(false));
	json_object_object_add(o, "hash-alg", json_object_new_string(h->hash_spec));
	json_object_object_add(o, "cipher-alg", json_object_new_string(alg));
	json_object_object_add(o, "uuid", json_object_new_string(h->uuid));
	if (in_qcow2)
		json_object_object_add(o, "format", json_object_new_string("luks"));
	json_object_object_add(o, "cipher-mode", json_object_new_string("xts"));
	for (unsigned i = 0; i < LUKS_SLOTS; i++) {
		const struct luks_slot *s = &h->slots[i];
		struct json_object *so = json_object_new_object();
		bool active = s->active == LUKS_SLOT_ENABLED;

		json_object_object_add(so, "active", json_object_new_boolean(active));
		if (active)
			json_object_object_add(so, "iters", json_object_new_int64(s->iterations));
		json_object_object_add(so, "key-offset",
				       json_object_new_int64((int64_t)s->key_offset * LUKS_SECTOR));
		if (active)
			json_object_object_add(so, "stripes", json_object_new_int64(s->stripes));
		json_object_array_add(slots, so);
	}
	json_object_object_add(o, "slots", slots);
	json_object_object_add(o, "payload-offset",
			       json_object_new_int64((int64_t)h->payload_offset * LUKS_SECTOR));
	json_object_object_add(o, "master-key-iters", json_object_new_int64(h->mk_iterations));
	return o;
}

int luks_header_check(const struct luks_header *h, struct error **errp)
{
	for (unsigned i = 0; i < LUKS_SLOTS; i++)
		if (check_slot(h, i, (uint64_t)h->payload_offset * LUKS_SECTOR, errp))
			return -1;
	return 0;
}
