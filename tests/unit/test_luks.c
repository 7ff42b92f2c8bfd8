/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LUKS1 (blockdev/luks*.c): a new volume's header round-trips through the parser, its
 * passphrase unlocks the volume key and another is refused with QEMU's message, sectors
 * encrypt and decrypt back (and differently per sector: plain64 IVs), and every hostile header
 * field is refused by name. Secrets: data, base64, file, refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/luks.h"
#include "common/secret.h"

static struct luks_header hdr;
static struct luks_key key;
static uint8_t *material;
static size_t material_len;
static uint8_t raw[LUKS_HEADER_LEN];

/* The header area as a file holding the header and slot 0's key material. */
static int read_area(void *opaque, uint64_t off, void *buf, size_t len)
{
	uint64_t m = (uint64_t)hdr.slots[0].key_offset * LUKS_SECTOR;

	if (off == m && len <= material_len) {
		memcpy(buf, material, len);
		return 0;
	}
	return -5;
}

static int setup(void **state)
{
	if (luks_format(&hdr, &key, (const uint8_t *)"secret", 6, 1, &material, &material_len,
			NULL))
		return -1;
	luks_header_put(&hdr, raw);
	return 0;
}

static int teardown(void **state)
{
	free(material);
	secret_cleanup();
	return 0;
}

static void header_round_trip(void **state)
{
	struct luks_header h;
	uint8_t again[LUKS_HEADER_LEN];

	assert_true(luks_probe(raw, sizeof(raw)));
	assert_int_equal(luks_header_parse(raw, sizeof(raw), 1 << 24, &h, NULL), 0);
	assert_string_equal(h.cipher_name, "aes");
	assert_string_equal(h.cipher_mode, "xts-plain64");
	assert_string_equal(h.hash_spec, "sha256");
	assert_int_equal(h.key_bytes, 64);
	assert_int_equal(h.payload_offset, 4040); /* QEMU's layout: 2068480 bytes */
	assert_int_equal(h.slots[0].key_offset, 8);
	assert_int_equal(h.slots[1].key_offset, 8 + 504);
	assert_int_equal(h.slots[1].active, LUKS_SLOT_DISABLED);
	assert_true(h.slots[0].iterations >= LUKS_MIN_ITERS && h.mk_iterations >= LUKS_MIN_ITERS);
	assert_int_equal(material_len, 64 * 4000);
	luks_header_put(&h, again);
	assert_memory_equal(raw, again, sizeof(raw));
}

static void unlock(void **state)
{
	struct luks_key k;
	struct error *err = NULL;

	assert_int_equal(luks_unlock(&hdr, (const uint8_t *)"secret", 6, read_area, NULL, &k,
				     NULL), 0);
	assert_int_equal(k.key_bytes, 64);
	assert_memory_equal(k.key, key.key, 64);
	assert_int_equal(luks_unlock(&hdr, (const uint8_t *)"secreT", 6, read_area, NULL, &k,
				     &err), -1);
	assert_string_equal(error_msg(err), "Invalid password, cannot unlock any keyslot");
	error_free(err);
}

static void sectors(void **state)
{
	uint8_t plain[3 * LUKS_SECTOR], buf[sizeof(plain)];

	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 31);
	memcpy(buf, plain, sizeof(buf));
	assert_int_equal(luks_crypt(&key, true, 7, buf, sizeof(buf)), 0);
	assert_memory_not_equal(buf, plain, LUKS_SECTOR);
	assert_int_equal(luks_crypt(&key, false, 7, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, plain, sizeof(buf));
	/* the same plaintext in two sectors: two ciphertexts */
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(luks_crypt(&key, true, 0, buf, 2 * LUKS_SECTOR), 0);
	assert_memory_not_equal(buf, buf + LUKS_SECTOR, LUKS_SECTOR);
}

static void refused(uint8_t *b, const char *what)
{
	struct luks_header h;
	struct error *err = NULL;

	assert_int_equal(luks_header_parse(b, LUKS_HEADER_LEN, 1 << 24, &h, &err), -1);
	if (!strstr(error_msg(err), what))
		fail_msg("message '%s' does not say '%s'", error_msg(err), what);
	error_free(err);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void hostile_headers(void **state)
{
	uint8_t b[LUKS_HEADER_LEN];
	struct luks_header h;

#define FRESH() memcpy(b, raw, sizeof(b))
	FRESH(); b[0] = 'X';
	refused(b, "not in LUKS format");
	FRESH(); b[7] = 2;
	refused(b, "version 2");
	FRESH(); memcpy(b + 40, "cbc-essiv:sha256", 17);
	refused(b, "cbc-essiv:sha256");
	FRESH(); put32(b + 108, 48);
	refused(b, "48-byte key");
	FRESH(); memcpy(b + 72, "md5\0\0\0", 6);
	refused(b, "hash algorithm md5");
	FRESH(); memset(b + 8, 'a', 32);
	refused(b, "cipher-name (byte 8) is not NUL-terminated");
	FRESH(); put32(b + 164, 0);
	refused(b, "master-key-iterations");
	FRESH(); put32(b + 104, 1);
	refused(b, "payload-offset");
	FRESH(); put32(b + 208 + 48, 0x12345678);
	refused(b, "key slot 1: state 0x12345678");
	FRESH(); put32(b + 208 + 44, 4001);
	refused(b, "key slot 0");
	FRESH(); put32(b + 208 + 40, 0);
	refused(b, "overlaps the header");
	FRESH(); put32(b + 208 + 40, 4000);
	refused(b, "overlaps the header or the payload");
	FRESH(); put32(b + 208 + 48, LUKS_SLOT_ENABLED); put32(b + 208 + 48 + 4, 1000);
	put32(b + 208 + 48 + 40, 10);
	refused(b, "key slots 0 and 1: their key material overlaps");
	/* the key material must fit in the area given (a qcow2 image's encryption header) */
	FRESH();
	assert_int_equal(luks_header_parse(b, sizeof(b), 4096, &h, NULL), -1);
}

static void secrets(void **state)
{
	const uint8_t *d;
	size_t n;
	struct error *err = NULL;
	char path[] = "/tmp/vireo-test-secret-XXXXXX";
	int fd = mkstemp(path);

	assert_int_equal(secret_add_spec("secret,id=a,data=hello", NULL), 0);
	assert_int_equal(secret_lookup("a", &d, &n, NULL), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(d, "hello", 5);
	assert_int_equal(secret_add_spec("secret,id=b,data=aGVsbG8=,format=base64", NULL), 0);
	assert_int_equal(secret_lookup("b", &d, &n, NULL), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(d, "hello", 5);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "from a file", 11), 11);
	close(fd);
	{
		char spec[128];

		snprintf(spec, sizeof(spec), "secret,id=c,file=%s", path);
		assert_int_equal(secret_add_spec(spec, NULL), 0);
	}
	unlink(path);
	assert_int_equal(secret_lookup("c", &d, &n, NULL), 0);
	assert_int_equal(n, 11);
	assert_int_equal(secret_lookup("nope", &d, &n, &err), -1);
	assert_string_equal(error_msg(err), "No secret with id 'nope'");
	error_free(err);
	err = NULL;
	assert_int_equal(secret_add_spec("secret,id=a,data=x", &err), -1); /* taken */
	error_free(err);
	err = NULL;
	assert_int_equal(secret_add_spec("secret,id=d", &err), -1);
	assert_non_null(strstr(error_msg(err), "data or file"));
	error_free(err);
	err = NULL;
	assert_int_equal(secret_add_spec("secret,id=e,data=!!,format=base64", &err), -1);
	error_free(err);
	err = NULL;
	assert_int_equal(secret_add_spec("secret,id=f,data=x,keyid=k,iv=i", &err), -1);
	assert_non_null(strstr(error_msg(err), "encrypted secrets"));
	error_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(header_round_trip),
		cmocka_unit_test(unlock),
		cmocka_unit_test(sectors),
		cmocka_unit_test(hostile_headers),
		cmocka_unit_test(secrets),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
