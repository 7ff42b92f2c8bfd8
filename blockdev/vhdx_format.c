/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VHDX header section, region table, metadata region and BAT: parse and check (every field
 * bounded, every message naming the structure, the field and its file offset), and build them
 * for a new image. Pure: I/O goes through the caller's struct vhdx_io. See vhdx_format.h.
 */
#include "blockdev/vhdx_format.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/util.h"
#include "common/version.h"

/* A GUID {d1-d2-d3-d4[0..1]-d4[2..7]} in on-disk order: the first three fields little-endian. */
#define GUID(d1, d2, d3, ...)                                                                    \
	{ { (d1) & 0xff, ((d1) >> 8) & 0xff, ((d1) >> 16) & 0xff, ((d1) >> 24) & 0xff,            \
	    (d2) & 0xff, ((d2) >> 8) & 0xff, (d3) & 0xff, ((d3) >> 8) & 0xff, __VA_ARGS__ } }

const struct vhdx_guid vhdx_guid_bat =
	GUID(0x2DC27766, 0xF623, 0x4200, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08);
const struct vhdx_guid vhdx_guid_metadata =
	GUID(0x8B7CA206, 0x4790, 0x4B9A, 0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E);
const struct vhdx_guid vhdx_guid_file_params =
	GUID(0xCAA16737, 0xFA36, 0x4D43, 0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B);
const struct vhdx_guid vhdx_guid_disk_size =
	GUID(0x2FA54224, 0xCD1B, 0x4876, 0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8);
const struct vhdx_guid vhdx_guid_page83 =
	GUID(0xBECA12AB, 0xB2E6, 0x4523, 0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46);
const struct vhdx_guid vhdx_guid_logical_sector =
	GUID(0x8141BF1D, 0xA96F, 0x4709, 0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F);
const struct vhdx_guid vhdx_guid_physical_sector =
	GUID(0xCDA348C7, 0x445D, 0x4471, 0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56);
const struct vhdx_guid vhdx_guid_parent_locator =
	GUID(0xA8D35F2D, 0xB30B, 0x454D, 0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C);

#define HEADER_SIG 0x64616568u   /* "head" */
#define REGION_SIG 0x69676572u   /* "regi" */
#define METADATA_SIG "metadata"

/* ---- CRC-32C ------------------------------------------------------------------------------- */

/* Slicing by 8 (eight 256-entry tables), built once: the log's checksums cover whole MiBs. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (c & 1 ? 0x82F63B78u : 0);
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
}

NO_FUZZ_COVERAGE uint32_t vhdx_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo = vhdx_le32(p) ^ crc, hi = vhdx_le32(p + 4);

		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

uint32_t vhdx_checksum(const uint8_t *buf, size_t len, size_t field)
{
	static const uint8_t zero[4];
	uint32_t c = vhdx_crc32c(0, buf, field);

	c = vhdx_crc32c(c, zero, 4);
	return vhdx_crc32c(c, buf + field + 4, len - field - 4);
}

/* ---- GUIDs --------------------------------------------------------------------------------- */

bool vhdx_guid_eq(const struct vhdx_guid *a, const struct vhdx_guid *b)
{
	return !memcmp(a->b, b->b, sizeof(a->b));
}

int vhdx_guid_random(struct vhdx_guid *g)
{
	size_t got = 0;

	while (got < sizeof(g->b)) {
		ssize_t n = getrandom(g->b + got, sizeof(g->b) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	g->b[7] = (uint8_t)((g->b[7] & 0x0f) | 0x40); /* version 4: data3's high nibble */
	g->b[8] = (uint8_t)((g->b[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
	return 0;
}

void vhdx_guid_str(const struct vhdx_guid *g, char out[39])
{
	const uint8_t *b = g->b;

	snprintf(out, 39, "{%08" PRIX32 "-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}",
		 vhdx_le32(b), vhdx_le16(b + 4), vhdx_le16(b + 6), b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

static void guid_get(struct vhdx_guid *g, const uint8_t *p) { memcpy(g->b, p, 16); }

/* ---- file identifier and headers ----------------------------------------------------------- */

bool vhdx_probe(const uint8_t *buf, size_t len)
{
	return len >= 8 && !memcmp(buf, VHDX_FILE_ID_SIG, 8);
}

int vhdx_header_parse(const uint8_t buf[VHDX_HEADER_LEN], uint64_t file_size,
		      struct vhdx_header *h, char *why, size_t why_len)
{
	uint32_t stored = vhdx_le32(buf + 4), sum;

	if (vhdx_le32(buf) != HEADER_SIG) {
		snprintf(why, why_len, "no \"head\" signature");
		return -1;
	}
	sum = vhdx_checksum(buf, VHDX_HEADER_LEN, 4);
	if (sum != stored) {
		snprintf(why, why_len, "checksum 0x%08" PRIx32 " is not the CRC-32C 0x%08" PRIx32,
			 stored, sum);
		return -1;
	}
	h->seq = vhdx_le64(buf + 8);
	guid_get(&h->file_write, buf + 16);
	guid_get(&h->data_write, buf + 32);
	guid_get(&h->log_guid, buf + 48);
	h->log_version = vhdx_le16(buf + 64);
	h->version = vhdx_le16(buf + 66);
	h->log_length = vhdx_le32(buf + 68);
	h->log_offset = vhdx_le64(buf + 72);
	if (h->version != 1) {
		snprintf(why, why_len, "Version (byte 66) is %u, not 1", h->version);
		return -1;
	}
	if (h->log_version != 0) {
		snprintf(why, why_len, "LogVersion (byte 64) is %u, not 0", h->log_version);
		return -1;
	}
	if (!h->log_length || h->log_length % VHDX_LOG_ALIGN) {
		snprintf(why, why_len, "LogLength (byte 68) %" PRIu32 " is not a non-zero multiple "
			 "of 1 MiB", h->log_length);
		return -1;
	}
	if (h->log_offset % VHDX_LOG_ALIGN || h->log_offset < VHDX_HEADER_SECTION) {
		snprintf(why, why_len, "LogOffset (byte 72) 0x%" PRIx64 " is not a multiple of "
			 "1 MiB past the header section", h->log_offset);
		return -1;
	}
	if (!range_within(h->log_offset, h->log_length, file_size)) {
		snprintf(why, why_len, "the log (0x%" PRIx64 ", %" PRIu32 " bytes) ends past the "
			 "end of the file (%" PRIu64 " bytes)", h->log_offset, h->log_length,
			 file_size);
		return -1;
	}
	return 0;
}

void vhdx_header_put(const struct vhdx_header *h, uint8_t buf[VHDX_HEADER_LEN])
{
	memset(buf, 0, VHDX_HEADER_LEN);
	vhdx_put32(buf, HEADER_SIG);
	vhdx_put64(buf + 8, h->seq);
	memcpy(buf + 16, h->file_write.b, 16);
	memcpy(buf + 32, h->data_write.b, 16);
	memcpy(buf + 48, h->log_guid.b, 16);
	vhdx_put16(buf + 64, h->log_version);
	vhdx_put16(buf + 66, h->version);
	vhdx_put32(buf + 68, h->log_length);
	vhdx_put64(buf + 72, h->log_offset);
	vhdx_put32(buf + 4, vhdx_checksum(buf, VHDX_HEADER_LEN, 4));
}

static int read_at(const struct vhdx_io *io, uint64_t off, void *buf, size_t len,
		   const char *what, struct error **errp)
{
	int ret = io->read(io->opaque, off, buf, len);

	if (ret)
		error_setg_errno(errp, ret, "reading the %s at 0x%" PRIx64, what, off);
	return ret ? -1 : 0;
}

int vhdx_headers_load(const struct vhdx_io *io, struct vhdx_meta *m, struct error **errp)
{
	static const uint64_t where[2] = { VHDX_HEADER1_OFF, VHDX_HEADER2_OFF };
	uint8_t buf[VHDX_HEADER_LEN];
	struct vhdx_header h[2];
	char why[2][200];
	bool valid[2];

	if (io->size < VHDX_MIN_FILE) {
		error_setg(errp, "the file is %" PRIu64 " bytes: too short for a VHDX header "
			   "section (its region tables end at %llu bytes)", io->size,
			   (unsigned long long)VHDX_MIN_FILE);
		return -1;
	}
	if (read_at(io, 0, buf, 8, "file identifier", errp))
		return -1;
	if (!vhdx_probe(buf, 8)) {
		error_setg(errp, "no VHDX file identifier (\"vhdxfile\") at offset 0");
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		if (read_at(io, where[i], buf, sizeof(buf), i ? "header 2" : "header 1", errp))
			return -1;
		valid[i] = !vhdx_header_parse(buf, io->size, &h[i], why[i], sizeof(why[i]));
	}
	if (!valid[0] && !valid[1]) {
		error_setg(errp, "neither VHDX header is valid: header 1 (at 0x%" PRIx64 "): %s; "
			   "header 2 (at 0x%" PRIx64 "): %s", where[0], why[0], where[1], why[1]);
		return -1;
	}
	/* the valid one with the larger sequence number; header 1 when they are equal */
	m->hdr_slot = !valid[0] || (valid[1] && h[1].seq > h[0].seq);
	m->hdr = h[m->hdr_slot];
	return 0;
}

/* ---- region table ------------------------------------------------------------------------ */

struct span {
	uint64_t off, len;
	const char *name;
};

static bool overlaps(const struct span *a, const struct span *b)
{
	return a->off < b->off + b->len && b->off < a->off + a->len;
}

/* Parses one region table (@buf, 64 KiB, at file offset @at) into @m's BAT and metadata. */
static int region_parse(const uint8_t *buf, uint64_t at, uint64_t file_size, struct vhdx_meta *m,
			struct error **errp)
{
	uint32_t stored = vhdx_le32(buf + 4), sum, n = vhdx_le32(buf + 8);
	bool have_bat = false, have_meta = false;
	char g[39];

	if (vhdx_le32(buf) != REGION_SIG) {
		error_setg(errp, "region table at 0x%" PRIx64 ": no \"regi\" signature", at);
		return -1;
	}
	sum = vhdx_checksum(buf, VHDX_REGION_LEN, 4);
	if (sum != stored) {
		error_setg(errp, "region table at 0x%" PRIx64 ": checksum 0x%08" PRIx32 " is not "
			   "the CRC-32C 0x%08" PRIx32, at, stored, sum);
		return -1;
	}
	if (n > VHDX_MAX_TABLE_ENTRIES) {
		error_setg(errp, "region table at 0x%" PRIx64 ": EntryCount (byte 8) %" PRIu32
			   " is more than %d", at, n, VHDX_MAX_TABLE_ENTRIES);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = buf + 16 + 32 * (size_t)i;
		uint64_t eoff = at + 16 + 32 * (uint64_t)i, off = vhdx_le64(e + 16);
		uint32_t len = vhdx_le32(e + 24);
		bool required = vhdx_le32(e + 28) & 1, bat;
		struct vhdx_guid id;

		guid_get(&id, e);
		bat = vhdx_guid_eq(&id, &vhdx_guid_bat);
		if (!bat && !vhdx_guid_eq(&id, &vhdx_guid_metadata)) {
			if (!required)
				continue; /* an optional region we do not know: ignored */
			vhdx_guid_str(&id, g);
			error_setg(errp, "region table entry %" PRIu32 " (at 0x%" PRIx64 ") is a "
				   "required region of unknown type %s: vireo cannot read this image",
				   i, eoff, g);
			return -1;
		}
		if ((bat && have_bat) || (!bat && have_meta)) {
			error_setg(errp, "region table entry %" PRIu32 " (at 0x%" PRIx64 ") names "
				   "the %s region a second time", i, eoff, bat ? "BAT" : "metadata");
			return -1;
		}
		if (off % VHDX_MIB || off < VHDX_HEADER_SECTION || !len || len % VHDX_MIB ||
		    !range_within(off, len, file_size)) {
			error_setg(errp, "region table entry %" PRIu32 " (at 0x%" PRIx64 "): the %s "
				   "region (FileOffset 0x%" PRIx64 ", Length %" PRIu32 ") is not "
				   "MiB-aligned past the header section and inside the file (%" PRIu64
				   " bytes)", i, eoff, bat ? "BAT" : "metadata", off, len, file_size);
			return -1;
		}
		if (bat) {
			m->bat_offset = off;
			m->bat_length = len;
			have_bat = true;
		} else {
			m->meta_offset = off;
			m->meta_length = len;
			have_meta = true;
		}
	}
	if (!have_bat || !have_meta) {
		error_setg(errp, "region table at 0x%" PRIx64 " has no %s region", at,
			   have_bat ? "metadata" : "BAT");
		return -1;
	}
	return 0;
}

/* ---- metadata region ----------------------------------------------------------------------- */

enum item { IT_PARAMS, IT_SIZE, IT_PAGE83, IT_LSS, IT_PSS, IT_PARENT, IT_COUNT };

static const struct {
	const struct vhdx_guid *id;
	const char *name;
	uint32_t len; /* 0: any */
	bool needed;
} items[IT_COUNT] = {
	[IT_PARAMS] = { &vhdx_guid_file_params, "File Parameters", 8, true },
	[IT_SIZE] = { &vhdx_guid_disk_size, "Virtual Disk Size", 8, true },
	[IT_PAGE83] = { &vhdx_guid_page83, "Page 83 Data", 16, false },
	[IT_LSS] = { &vhdx_guid_logical_sector, "Logical Sector Size", 4, true },
	[IT_PSS] = { &vhdx_guid_physical_sector, "Physical Sector Size", 4, true },
	[IT_PARENT] = { &vhdx_guid_parent_locator, "Parent Locator", 0, false },
};

struct item_loc {
	bool found;
	uint32_t off, len;
};

/* The metadata table (64 KiB at @at): where each item we know is. */
static int meta_table_parse(const uint8_t *buf, uint64_t at, uint32_t region_len,
			    struct item_loc loc[IT_COUNT], struct error **errp)
{
	uint16_t n = vhdx_le16(buf + 10);
	char g[39];

	if (memcmp(buf, METADATA_SIG, 8)) {
		error_setg(errp, "metadata table at 0x%" PRIx64 ": no \"metadata\" signature", at);
		return -1;
	}
	if (n > VHDX_MAX_TABLE_ENTRIES) {
		error_setg(errp, "metadata table at 0x%" PRIx64 ": EntryCount (byte 10) %u is more "
			   "than %d", at, n, VHDX_MAX_TABLE_ENTRIES);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *e = buf + 32 + 32 * (size_t)i;
		uint64_t eoff = at + 32 + 32 * (uint64_t)i;
		uint32_t off = vhdx_le32(e + 16), len = vhdx_le32(e + 20), flags = vhdx_le32(e + 24);
		bool user = flags & 1, required = flags & 4;
		struct vhdx_guid id;
		int k;

		guid_get(&id, e);
		for (k = 0; k < IT_COUNT && !vhdx_guid_eq(&id, items[k].id); k++)
			;
		if (user || k == IT_COUNT) {
			if (!required)
				continue;
			vhdx_guid_str(&id, g);
			error_setg(errp, "metadata table entry %u (at 0x%" PRIx64 ") is a required "
				   "%s item of unknown type %s: vireo cannot read this image", i, eoff,
				   user ? "user" : "system", g);
			return -1;
		}
		if (loc[k].found) {
			error_setg(errp, "metadata table entry %u (at 0x%" PRIx64 ") names the %s "
				   "item a second time", i, eoff, items[k].name);
			return -1;
		}
		if ((len && off < VHDX_METADATA_TABLE_LEN) || len > VHDX_METADATA_ITEM_MAX ||
		    !range_within(off, len, region_len) ||
		    (items[k].len && len != items[k].len)) {
			error_setg(errp, "metadata table entry %u (at 0x%" PRIx64 "): the %s item "
				   "(Offset %" PRIu32 ", Length %" PRIu32 ") is not %s%" PRIu32
				   " bytes past the table and inside the metadata region (%" PRIu32
				   " bytes)", i, eoff, items[k].name, off, len,
				   items[k].len ? "" : "at most ",
				   items[k].len ? items[k].len : (uint32_t)VHDX_METADATA_ITEM_MAX,
				   region_len);
			return -1;
		}
		loc[k] = (struct item_loc){ true, off, len };
	}
	for (int k = 0; k < IT_COUNT; k++) {
		if (items[k].needed && !loc[k].found) {
			error_setg(errp, "metadata table at 0x%" PRIx64 " has no %s item", at,
				   items[k].name);
			return -1;
		}
	}
	return 0;
}

/* The items' values, checked. */
static int meta_items_load(const struct vhdx_io *io, struct vhdx_meta *m,
			   const struct item_loc loc[IT_COUNT], struct error **errp)
{
	uint8_t v[IT_COUNT][16] = { { 0 } };
	uint32_t flags;

	for (int k = 0; k < IT_COUNT; k++) {
		uint64_t at = m->meta_offset + loc[k].off;

		if (k == IT_PARENT || !loc[k].found)
			continue;
		if (io->read(io->opaque, at, v[k], loc[k].len)) {
			error_setg(errp, "reading the %s item at 0x%" PRIx64, items[k].name, at);
			return -1;
		}
	}
	m->block_size = vhdx_le32(v[IT_PARAMS]);
	flags = vhdx_le32(v[IT_PARAMS] + 4);
	m->leave_allocated = flags & 1;
	m->disk_size = vhdx_le64(v[IT_SIZE]);
	m->logical_sector = vhdx_le32(v[IT_LSS]);
	m->physical_sector = vhdx_le32(v[IT_PSS]);
	memcpy(m->page83.b, v[IT_PAGE83], 16);
	if (flags & 2 || loc[IT_PARENT].found) {
		error_setg(errp, "the image is a differencing VHDX image (File Parameters "
			   "HasParent%s), which vireo does not read",
			   loc[IT_PARENT].found ? ", a Parent Locator item" : "");
		return -1;
	}
	if (m->block_size < VHDX_MIN_BLOCK || m->block_size > VHDX_MAX_BLOCK ||
	    (m->block_size & (m->block_size - 1))) {
		error_setg(errp, "File Parameters item at 0x%" PRIx64 ": BlockSize %" PRIu32 " is "
			   "not a power of two from 1 MiB to 256 MiB",
			   m->meta_offset + loc[IT_PARAMS].off, m->block_size);
		return -1;
	}
	if (m->logical_sector != 512 && m->logical_sector != 4096) {
		error_setg(errp, "Logical Sector Size item at 0x%" PRIx64 ": %" PRIu32 " is not 512 "
			   "or 4096", m->meta_offset + loc[IT_LSS].off, m->logical_sector);
		return -1;
	}
	if (m->physical_sector != 512 && m->physical_sector != 4096) {
		error_setg(errp, "Physical Sector Size item at 0x%" PRIx64 ": %" PRIu32 " is not 512 "
			   "or 4096", m->meta_offset + loc[IT_PSS].off, m->physical_sector);
		return -1;
	}
	if (m->disk_size > VHDX_MAX_DISK_SIZE || m->disk_size % m->logical_sector) {
		error_setg(errp, "Virtual Disk Size item at 0x%" PRIx64 ": %" PRIu64 " is not a "
			   "multiple of the logical sector size (%" PRIu32 ") up to 64 TiB",
			   m->meta_offset + loc[IT_SIZE].off, m->disk_size, m->logical_sector);
		return -1;
	}
	return 0;
}

/* Derived geometry: chunk ratio, blocks, BAT entries. */
static void geometry(struct vhdx_meta *m)
{
	m->chunk_ratio = (uint32_t)(((1ULL << 23) * m->logical_sector) / m->block_size);
	m->data_blocks = DIV_ROUND_UP(m->disk_size, m->block_size);
	m->bat_entries = m->data_blocks ? m->data_blocks + (m->data_blocks - 1) / m->chunk_ratio : 0;
}

static int layout_check(const struct vhdx_meta *m, struct error **errp)
{
	const struct span s[4] = {
		{ 0, VHDX_HEADER_SECTION, "header section" },
		{ m->hdr.log_offset, m->hdr.log_length, "log" },
		{ m->bat_offset, m->bat_length, "BAT region" },
		{ m->meta_offset, m->meta_length, "metadata region" },
	};

	for (int i = 0; i < 4; i++) {
		for (int j = i + 1; j < 4; j++) {
			if (!overlaps(&s[i], &s[j]))
				continue;
			error_setg(errp, "the %s (0x%" PRIx64 ", %" PRIu64 " bytes) overlaps the "
				   "%s (0x%" PRIx64 ", %" PRIu64 " bytes)", s[j].name, s[j].off,
				   s[j].len, s[i].name, s[i].off, s[i].len);
			return -1;
		}
	}
	if (m->bat_entries > m->bat_length / 8) {
		error_setg(errp, "the BAT region (0x%" PRIx64 ", %" PRIu32 " bytes) cannot hold the "
			   "%" PRIu64 " entries of a %" PRIu64 "-byte disk in %" PRIu32 "-byte "
			   "blocks", m->bat_offset, m->bat_length, m->bat_entries, m->disk_size,
			   m->block_size);
		return -1;
	}
	return 0;
}

int vhdx_regions_load(const struct vhdx_io *io, struct vhdx_meta *m, struct error **errp)
{
	struct item_loc loc[IT_COUNT] = { { 0 } };
	struct error *first = NULL;
	uint8_t *buf = malloc(VHDX_REGION_LEN);
	int ret = -1;

	if (!buf) {
		error_setg(errp, "out of memory");
		return -1;
	}
	/* table 1; its copy only when table 1 is damaged */
	if (read_at(io, VHDX_REGION1_OFF, buf, VHDX_REGION_LEN, "region table", errp))
		goto out;
	if (region_parse(buf, VHDX_REGION1_OFF, io->size, m, &first)) {
		if (read_at(io, VHDX_REGION2_OFF, buf, VHDX_REGION_LEN, "region table copy", errp))
			goto out;
		if (region_parse(buf, VHDX_REGION2_OFF, io->size, m, NULL)) {
			error_propagate(errp, first);
			first = NULL;
			goto out;
		}
	}
	if (read_at(io, m->meta_offset, buf, VHDX_METADATA_TABLE_LEN, "metadata table", errp) ||
	    meta_table_parse(buf, m->meta_offset, m->meta_length, loc, errp) ||
	    meta_items_load(io, m, loc, errp))
		goto out;
	geometry(m);
	ret = layout_check(m, errp);
out:
	error_free(first);
	free(buf);
	return ret;
}

/* ---- BAT ------------------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Records the first problem found (counted by the caller). */
static void note(struct vhdx_bat_report *r, uint64_t i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(struct vhdx_bat_report *r, uint64_t i, const char *fmt, ...)
{
	va_list ap;

	if (!r->first_why[0]) {
		r->first_bad = i;
		va_start(ap, fmt);
		vsnprintf(r->first_why, sizeof(r->first_why), fmt, ap);
		va_end(ap);
	}
}

int vhdx_bat_check(const struct vhdx_meta *m, const uint64_t *bat, uint64_t file_size,
		   struct vhdx_bat_report *r)
{
	const struct span s[4] = {
		{ 0, VHDX_HEADER_SECTION, "the header section" },
		{ m->hdr.log_offset, m->hdr.log_length, "the log" },
		{ m->bat_offset, m->bat_length, "the BAT" },
		{ m->meta_offset, m->meta_length, "the metadata region" },
	};
	uint64_t *offs = NULL, n = 0;

	memset(r, 0, sizeof(*r));
	for (uint64_t i = 0; i < m->bat_entries; i++) {
		uint64_t e = bat[i], st = e & VHDX_BAT_STATE_MASK, off = e & VHDX_BAT_OFFSET_MASK;
		struct span blk = { off, m->block_size, NULL };
		int k;

		if (vhdx_bat_is_bitmap(m, i)) {
			if (st != VHDX_BLOCK_NOT_PRESENT && st != VHDX_SB_PRESENT) {
				r->bad++;
				note(r, i, "sector bitmap entry in state %" PRIu64, st);
			}
			continue;
		}
		if (st == VHDX_BLOCK_PARTIALLY_PRESENT || st == 4 || st == 5) {
			r->bad++;
			note(r, i, "payload entry in state %" PRIu64 "%s", st,
				st == VHDX_BLOCK_PARTIALLY_PRESENT ? " (partially present: "
				"differencing images only)" : "");
			continue;
		}
		if (st != VHDX_BLOCK_FULLY_PRESENT)
			continue;
		for (k = 0; k < 4 && !overlaps(&blk, &s[k]); k++)
			;
		if (k < 4 || off > VHDX_MAX_FILE_OFFSET) {
			r->bad++;
			note(r, i, "block at 0x%" PRIx64 " is %s%s", off,
				k < 4 ? "over " : "past any plausible file size",
				k < 4 ? s[k].name : "");
			continue;
		}
		/* the disk's last block may be partly past its end, and so past the file's */
		blk.len = MIN((uint64_t)m->block_size,
			      m->disk_size - (i - i / (m->chunk_ratio + 1ull)) * m->block_size);
		if (off + blk.len > file_size) {
			r->past_eof++;
			note(r, i, "block at 0x%" PRIx64 " ends past the end of the file (%" PRIu64
			     " bytes): the image was probably truncated", off, file_size);
		}
		r->present++;
		r->end = MAX(r->end, off + m->block_size);
		if (!offs && !(offs = malloc(sizeof(*offs) * (m->bat_entries - i))))
			return -ENOMEM;
		offs[n++] = off;
	}
	if (n > 1) {
		qsort(offs, n, sizeof(*offs), cmp_u64);
		for (uint64_t i = 1; i < n; i++)
			if (offs[i] - offs[i - 1] < m->block_size) {
				r->bad++;
				note(r, UINT64_MAX, "two blocks overlap at 0x%" PRIx64, offs[i]);
			}
	}
	free(offs);
	return 0;
}

/* ---- a new image --------------------------------------------------------------------------- */

uint32_t vhdx_default_block_size(uint64_t size)
{
	if (size > 32ULL * 1024 * 1024 * VHDX_MIB)
		return 64 * VHDX_MIB;
	if (size > 100ULL * 1024 * VHDX_MIB)
		return 32 * VHDX_MIB;
	if (size > 1024 * VHDX_MIB)
		return 16 * VHDX_MIB;
	return 8 * VHDX_MIB;
}

void vhdx_layout_new(struct vhdx_meta *m, uint32_t log_length, struct vhdx_layout *l)
{
	geometry(m);
	l->log_offset = VHDX_HEADER_SECTION;
	l->log_length = log_length;
	l->bat_offset = l->log_offset + log_length;
	l->bat_length = (uint32_t)ALIGN_UP(m->bat_entries * 8, VHDX_MIB);
	if (!l->bat_length)
		l->bat_length = VHDX_MIB;
	l->meta_offset = l->bat_offset + l->bat_length;
	/* qemu-img leaves 4 MiB free after the metadata region: the same file, the same sizes */
	l->data_offset = l->meta_offset + VHDX_MIB + 4 * VHDX_MIB;
	m->bat_offset = l->bat_offset;
	m->bat_length = l->bat_length;
	m->meta_offset = l->meta_offset;
	m->meta_length = VHDX_MIB;
}

void vhdx_file_id_put(uint8_t buf[64 * 1024])
{
	static const char creator[] = "vireo " VIREO_VERSION;

	memset(buf, 0, 64 * 1024);
	memcpy(buf, VHDX_FILE_ID_SIG, 8);
	for (size_t i = 0; i < sizeof(creator) - 1; i++)
		vhdx_put16(buf + 8 + 2 * i, (uint16_t)creator[i]); /* UTF-16LE */
}

static void region_entry(uint8_t *e, const struct vhdx_guid *id, uint64_t off, uint32_t len)
{
	memcpy(e, id->b, 16);
	vhdx_put64(e + 16, off);
	vhdx_put32(e + 24, len);
	vhdx_put32(e + 28, 1); /* Required */
}

void vhdx_region_put(const struct vhdx_layout *l, uint8_t buf[VHDX_REGION_LEN])
{
	memset(buf, 0, VHDX_REGION_LEN);
	vhdx_put32(buf, REGION_SIG);
	vhdx_put32(buf + 8, 2);
	region_entry(buf + 16, &vhdx_guid_bat, l->bat_offset, l->bat_length);
	region_entry(buf + 48, &vhdx_guid_metadata, l->meta_offset, VHDX_MIB);
	vhdx_put32(buf + 4, vhdx_checksum(buf, VHDX_REGION_LEN, 4));
}

void vhdx_metadata_put(const struct vhdx_meta *m, uint8_t buf[2 * VHDX_METADATA_TABLE_LEN])
{
	static const struct {
		int item;
		uint32_t off, len, flags;
	} e[] = {
		/* qemu-img's order and offsets; flags: IsVirtualDisk (2), IsRequired (4) */
		{ IT_PARAMS, 0, 8, 4 },  { IT_SIZE, 8, 8, 6 }, { IT_PAGE83, 16, 16, 6 },
		{ IT_LSS, 32, 4, 6 },    { IT_PSS, 36, 4, 6 },
	};
	uint8_t *v = buf + VHDX_METADATA_TABLE_LEN;

	memset(buf, 0, 2 * VHDX_METADATA_TABLE_LEN);
	memcpy(buf, METADATA_SIG, 8);
	vhdx_put16(buf + 10, ARRAY_SIZE(e));
	for (size_t i = 0; i < ARRAY_SIZE(e); i++) {
		uint8_t *t = buf + 32 + 32 * i;

		memcpy(t, items[e[i].item].id->b, 16);
		vhdx_put32(t + 16, (uint32_t)VHDX_METADATA_TABLE_LEN + e[i].off);
		vhdx_put32(t + 20, e[i].len);
		vhdx_put32(t + 24, e[i].flags);
	}
	vhdx_put32(v, m->block_size);
	vhdx_put32(v + 4, m->leave_allocated ? 1 : 0);
	vhdx_put64(v + 8, m->disk_size);
	memcpy(v + 16, m->page83.b, 16);
	vhdx_put32(v + 32, m->logical_sector);
	vhdx_put32(v + 36, m->physical_sector);
}
