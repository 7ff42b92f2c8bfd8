/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the LUKS1 header parser (blockdev/luks_format.c luks_header_parse), pure and
 * fast, plus a round trip: a header that parses is serialized (luks_header_put) and must parse
 * again to the same fields. Unlocking is not fuzzed: a hostile header may ask for billions of
 * PBKDF2 iterations, which only costs time, as it does in QEMU and cryptsetup.
 *
 * Input: u32 (little-endian) header area size (what the image holds for the header and its key
 * material), then the header's bytes (as many as given; the parser needs 592).
 *
 * Invariants: the parser never reads past the input, fails with a message, and what it accepts
 * survives serialize + parse unchanged, and passes luks_header_check.
 */
#include <string.h>

#include "blockdev/luks.h"
#include "tests/fuzz/fuzz.h"

#define SAME(f) FUZZ_CHECK(!memcmp(&a->f, &b->f, sizeof(a->f)), "round trip changed " #f)

static void same(const struct luks_header *a, const struct luks_header *b)
{
	SAME(cipher_name);
	SAME(cipher_mode);
	SAME(hash_spec);
	SAME(payload_offset);
	SAME(key_bytes);
	SAME(mk_digest);
	SAME(mk_salt);
	SAME(mk_iterations);
	FUZZ_CHECK(!strcmp(a->uuid, b->uuid), "round trip changed the uuid");
	for (unsigned int i = 0; i < LUKS_SLOTS; i++) {
		SAME(slots[i].active);
		SAME(slots[i].iterations);
		SAME(slots[i].salt);
		SAME(slots[i].key_offset);
		SAME(slots[i].stripes);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct luks_header a, b;
	struct error *err = NULL;
	uint8_t again[LUKS_HEADER_LEN];
	uint32_t area;

	if (size < 4)
		return 0;
	area = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
	       (uint32_t)data[3] << 24;
	data += 4;
	size -= 4;
	if (luks_header_parse(data, size, area, &a, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "refused without a message");
		FUZZ_LOG("luks_header: %s\n", error_msg(err));
		error_free(err);
		return 0;
	}
	FUZZ_CHECK(size >= LUKS_HEADER_LEN, "accepted %zu bytes", size);
	FUZZ_CHECK(luks_header_check(&a, NULL) == 0, "an accepted header fails luks_header_check");
	luks_header_put(&a, again);
	FUZZ_CHECK(luks_header_parse(again, sizeof(again), area, &b, NULL) == 0,
		   "the serialized header no longer parses");
	same(&a, &b);
	return 0;
}
