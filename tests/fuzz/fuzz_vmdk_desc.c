/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the VMDK text descriptor parser (blockdev/vmdk_desc.c vmdk_desc_parse), the
 * content-id rewrite of a first write (vmdk_desc_set_cid) and the extent path rule
 * (vmdk_extent_path_ok).
 *
 * Input: the descriptor's bytes (as an embedded descriptor or a descriptor file holds them).
 *
 * Invariants: the parser never reads past the input, fails with a message, and what it accepts
 * has a version, at most VMDK_MAX_EXTENTS extents adding up to its capacity (at most
 * VMDK_MAX_CAPACITY_SECTORS), a file name without quotes or control characters for every
 * extent but ZERO ones; its text with a new CID parses again to the same extents; a name the
 * path rule accepts is relative and never climbs above its directory.
 */
#include <string.h>

#include "blockdev/vmdk_format.h"
#include "tests/fuzz/fuzz.h"

static void check_name(const char *n)
{
	long depth = 0;

	FUZZ_CHECK(n[0], "an empty file name accepted");
	for (const char *p = n; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != '"' && *p != 0x7f,
			   "a quote or control character in '%s'", n);
	if (!vmdk_extent_path_ok(n))
		return;
	FUZZ_CHECK(n[0] != '/', "absolute '%s' passes the path rule", n);
	for (const char *p = n; *p;) {
		size_t len = strcspn(p, "/");

		if (len == 2 && p[0] == '.' && p[1] == '.')
			depth--;
		else if (len && !(len == 1 && p[0] == '.'))
			depth++;
		FUZZ_CHECK(depth >= 0, "'%s' climbs out and passes the path rule", n);
		p += len + (p[len] == '/');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmdk_desc d, e;
	struct error *err = NULL;
	uint64_t sum = 0;
	size_t len;
	char *t;

	if (vmdk_desc_parse((const char *)data, size, &d, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "refused without a message");
		FUZZ_LOG("vmdk_desc: %s\n", error_msg(err));
		error_free(err);
		vmdk_desc_free(&d);
		return 0;
	}
	FUZZ_CHECK(d.version >= 1 && d.version <= 3, "version %u", d.version);
	FUZZ_CHECK(d.nr_extents <= VMDK_MAX_EXTENTS, "%zu extents", d.nr_extents);
	for (size_t i = 0; i < d.nr_extents; i++) {
		const struct vmdk_desc_extent *x = &d.extents[i];

		sum += x->sectors;
		FUZZ_CHECK((x->type == VMDK_EXTENT_ZERO) == !x->filename, "extent %zu's name", i);
		if (x->filename)
			check_name(x->filename);
	}
	FUZZ_CHECK(sum == d.capacity && sum <= VMDK_MAX_CAPACITY_SECTORS, "capacity %llu",
		   (unsigned long long)d.capacity);
	t = vmdk_desc_set_cid((const char *)data, size, 0x1234abcd, &len);
	if (t) {
		FUZZ_CHECK(vmdk_desc_parse(t, len, &e, NULL) == 0, "the text with a new CID fails");
		FUZZ_CHECK(e.nr_extents == d.nr_extents && e.capacity == d.capacity,
			   "a new CID changed the extents");
		vmdk_desc_free(&e);
		free(t);
	}
	vmdk_desc_free(&d);
	return 0;
}
