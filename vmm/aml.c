/* SPDX-License-Identifier: Apache-2.0 */
/* AML byte encodings; see aml.h for the builder's conventions. */
#include "vmm/aml.h"

#include <stdlib.h>
#include <string.h>

/* AML opcodes and prefixes (ACPI 6.5, 20.3) */
#define AML_ZERO_OP         0x00
#define AML_ONE_OP          0x01
#define AML_NAME_OP         0x08
#define AML_BYTE_PREFIX     0x0a
#define AML_WORD_PREFIX     0x0b
#define AML_DWORD_PREFIX    0x0c
#define AML_STRING_PREFIX   0x0d
#define AML_QWORD_PREFIX    0x0e
#define AML_SCOPE_OP        0x10
#define AML_BUFFER_OP       0x11
#define AML_PACKAGE_OP      0x12
#define AML_DUAL_NAME       0x2e
#define AML_MULTI_NAME      0x2f
#define AML_EXT_OP          0x5b
#define AML_DEVICE_OP       0x82 /* after AML_EXT_OP */
#define AML_ROOT_CHAR       '\\'
#define AML_ONES_OP         0xff

/* Large resource descriptor tags (ACPI 6.5, 6.4.3) */
#define RES_MEM32_FIXED     0x86
#define RES_DWORD_ADDR      0x87
#define RES_WORD_ADDR       0x88
#define RES_QWORD_ADDR      0x8a
#define RES_TYPE_MEM        0
#define RES_TYPE_IO         1
#define RES_TYPE_BUS        2
#define RES_FLAG_MIN_FIXED  0x04
#define RES_FLAG_MAX_FIXED  0x08

#define AML_PKGLEN_MAX      0x0fffffff
#define AML_MAX_SEGS        255

static void aml_fail(struct aml *a, const char *why)
{
	if (!a->err)
		a->err = why;
}

static bool aml_reserve(struct aml *a, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (a->err)
		return false;
	if (n <= a->cap - a->len)
		return true;
	cap = a->cap ? a->cap : 256;
	while (cap - a->len < n)
		cap *= 2;
	p = realloc(a->buf, cap);
	if (!p) {
		aml_fail(a, "out of memory building AML");
		return false;
	}
	a->buf = p;
	a->cap = cap;
	return true;
}

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	aml_init(a);
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (!aml_reserve(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned int n)
{
	uint8_t b[8];

	for (unsigned int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n);
}

static bool seg_char_ok(char c, bool lead)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!lead && c >= '0' && c <= '9');
}

/* One NameSeg from s (up to '.' or NUL), padded with '_'. Returns the length consumed or 0. */
static size_t seg_parse(const char *s, char seg[4])
{
	size_t n = 0;

	while (s[n] && s[n] != '.') {
		if (n == 4 || !seg_char_ok(s[n], n == 0))
			return 0;
		seg[n] = s[n];
		n++;
	}
	for (size_t i = n; i < 4; i++)
		seg[i] = '_';
	return n;
}

void aml_namestring(struct aml *a, const char *path)
{
	char segs[AML_MAX_SEGS][4];
	unsigned int nr = 0;
	const char *p = path;

	if (*p == AML_ROOT_CHAR)
		p++;
	for (;;) {
		size_t n = nr < AML_MAX_SEGS ? seg_parse(p, segs[nr]) : 0;

		if (n == 0) {
			aml_fail(a, "malformed AML name");
			return;
		}
		nr++;
		p += n;
		if (*p == '\0')
			break;
		p++; /* '.' */
	}
	if (*path == AML_ROOT_CHAR)
		aml_byte(a, AML_ROOT_CHAR);
	if (nr == 2) {
		aml_byte(a, AML_DUAL_NAME);
	} else if (nr > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, (uint8_t)nr);
	}
	aml_bytes(a, segs, nr * 4);
}

void aml_int(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(a, AML_ONE_OP);
	} else if (v == UINT64_MAX) {
		aml_byte(a, AML_ONES_OP);
	} else if (v <= UINT8_MAX) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c > 0x7f) {
			aml_fail(a, "non-ASCII AML string");
			return;
		}
	}
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7) {
		aml_fail(a, "malformed EISA ID");
		return;
	}
	/* three letters, 5 bits each ('A' = 1), then four hex digits; stored big-endian */
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			aml_fail(a, "malformed EISA ID");
			return;
		}
		v = (v << 5) | (uint32_t)(id[i] - '@');
	}
	for (int i = 3; i < 7; i++) {
		int h = hexval(id[i]);

		if (h < 0) {
			aml_fail(a, "malformed EISA ID");
			return;
		}
		v = (v << 4) | (uint32_t)h;
	}
	aml_byte(a, AML_DWORD_PREFIX);
	aml_le(a, __builtin_bswap32(v), 4);
}

void aml_name(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_namestring(a, path);
}

size_t aml_scope(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_SCOPE_OP);
	mark = a->len;
	aml_namestring(a, path);
	return mark;
}

size_t aml_device(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_EXT_OP);
	aml_byte(a, AML_DEVICE_OP);
	mark = a->len;
	aml_namestring(a, path);
	return mark;
}

size_t aml_package(struct aml *a, uint8_t nr_elements)
{
	size_t mark;

	aml_byte(a, AML_PACKAGE_OP);
	mark = a->len;
	aml_byte(a, nr_elements);
	return mark;
}

/*
 * PkgLength (20.2.4) counts itself: one byte holds up to 63; otherwise the first byte's top two
 * bits say how many bytes follow, its low nibble holds bits 0-3 and each following byte 8 more.
 */
void aml_end(struct aml *a, size_t mark)
{
	size_t body, total, n;
	uint8_t enc[4];

	if (a->err)
		return;
	if (mark > a->len) {
		aml_fail(a, "AML construct closed twice");
		return;
	}
	body = a->len - mark;
	for (n = 1; n <= 4; n++) {
		uint64_t max = n == 1 ? 0x3f : (1ULL << (4 + 8 * (n - 1))) - 1;

		total = body + n;
		if (total <= max)
			break;
	}
	if (n > 4 || total > AML_PKGLEN_MAX) {
		aml_fail(a, "AML construct too large");
		return;
	}
	if (n == 1) {
		enc[0] = (uint8_t)total;
	} else {
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
		for (size_t i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	if (!aml_reserve(a, n))
		return;
	memmove(a->buf + mark + n, a->buf + mark, body);
	memcpy(a->buf + mark, enc, n);
	a->len += n;
}

void aml_buffer(struct aml *a, const struct aml *data)
{
	size_t mark;

	if (data->err) {
		aml_fail(a, data->err);
		return;
	}
	aml_byte(a, AML_BUFFER_OP);
	mark = a->len;
	aml_int(a, data->len);
	aml_bytes(a, data->buf, data->len);
	aml_end(a, mark);
}

void aml_res_io(struct aml *r, uint16_t base, uint8_t len)
{
	/* small item 0x8, length 7: decode16, min, max, alignment, length */
	aml_byte(r, 0x47);
	aml_byte(r, 0x01);
	aml_le(r, base, 2);
	aml_le(r, base, 2);
	aml_byte(r, 0x01);
	aml_byte(r, len);
}

void aml_res_irq(struct aml *r, uint16_t mask)
{
	/* small item 0x4, length 2: edge-triggered, active-high, exclusive */
	aml_byte(r, 0x22);
	aml_le(r, mask, 2);
}

void aml_res_mem32_fixed(struct aml *r, uint32_t base, uint32_t len)
{
	aml_byte(r, RES_MEM32_FIXED);
	aml_le(r, 9, 2);
	aml_byte(r, 0x01); /* read-write */
	aml_le(r, base, 4);
	aml_le(r, len, 4);
}

/* Address-space descriptor; `w`-byte fields: granularity, min, max, translation, length. */
static void res_addr(struct aml *r, uint8_t tag, unsigned int w, uint8_t type, uint8_t type_flags,
		     uint64_t min, uint64_t max)
{
	aml_byte(r, tag);
	aml_le(r, 3 + 5 * w, 2);
	aml_byte(r, type);
	aml_byte(r, RES_FLAG_MIN_FIXED | RES_FLAG_MAX_FIXED); /* producer, positive decode */
	aml_byte(r, type_flags);
	aml_le(r, 0, w);
	aml_le(r, min, w);
	aml_le(r, max, w);
	aml_le(r, 0, w);
	aml_le(r, max - min + 1, w);
}

void aml_res_word_bus(struct aml *r, uint16_t min, uint16_t max)
{
	res_addr(r, RES_WORD_ADDR, 2, RES_TYPE_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *r, uint16_t min, uint16_t max)
{
	res_addr(r, RES_WORD_ADDR, 2, RES_TYPE_IO, 0x03 /* EntireRange */, min, max);
}

void aml_res_dword_mem(struct aml *r, uint32_t min, uint32_t max)
{
	res_addr(r, RES_DWORD_ADDR, 4, RES_TYPE_MEM, 0x01 /* ReadWrite, NonCacheable */, min, max);
}

void aml_res_qword_mem(struct aml *r, uint64_t min, uint64_t max)
{
	res_addr(r, RES_QWORD_ADDR, 8, RES_TYPE_MEM, 0x03 /* ReadWrite, Cacheable */, min, max);
}

void aml_res_end(struct aml *r)
{
	aml_byte(r, 0x79);
	aml_byte(r, 0x00); /* checksum 0: "treat as valid" */
}
