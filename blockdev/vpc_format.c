/* SPDX-License-Identifier: Apache-2.0 */
/* VHD on-disk structures (blockdev/vpc.h): pure parsing and serializing, every field bounded. */
#include "blockdev/vpc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t vpc_checksum(const uint8_t *buf, size_t len, size_t skip)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < skip || i >= skip + 4)
			sum += buf[i];
	return ~sum;
}

bool vpc_probe(const uint8_t *buf, size_t len)
{
	return len >= 8 && !memcmp(buf, "conectix", 8);
}

/* Field offsets of the footer. */
enum {
	F_COOKIE = 0, F_FEATURES = 8, F_VERSION = 12, F_DATA_OFFSET = 16, F_TIMESTAMP = 24,
	F_CREATOR_APP = 28, F_CREATOR_VERSION = 32, F_CREATOR_OS = 36, F_ORIG_SIZE = 40,
	F_CURRENT_SIZE = 48, F_CYLINDERS = 56, F_HEADS = 58, F_SECTORS = 59, F_TYPE = 60,
	F_CHECKSUM = 64, F_UUID = 68, F_SAVED_STATE = 84,
};

bool vpc_footer_intact(const uint8_t *buf)
{
	return !memcmp(buf + F_COOKIE, "conectix", 8) &&
	       vpc_checksum(buf, VPC_FOOTER_LEN, F_CHECKSUM) == be32(buf + F_CHECKSUM);
}

int vpc_footer_parse(const uint8_t *buf, struct vpc_footer *f, struct error **errp)
{
	uint32_t sum;

	memset(f, 0, sizeof(*f));
	if (memcmp(buf + F_COOKIE, "conectix", 8)) {
		error_setg(errp, "the VHD footer has no 'conectix' cookie");
		return -1;
	}
	f->features = be32(buf + F_FEATURES);
	f->version = be32(buf + F_VERSION);
	f->data_offset = be64(buf + F_DATA_OFFSET);
	f->timestamp = be32(buf + F_TIMESTAMP);
	memcpy(f->creator_app, buf + F_CREATOR_APP, 4);
	f->creator_version = be32(buf + F_CREATOR_VERSION);
	memcpy(f->creator_os, buf + F_CREATOR_OS, 4);
	f->orig_size = be64(buf + F_ORIG_SIZE);
	f->current_size = be64(buf + F_CURRENT_SIZE);
	f->cylinders = (uint16_t)(buf[F_CYLINDERS] << 8 | buf[F_CYLINDERS + 1]);
	f->heads = buf[F_HEADS];
	f->sectors = buf[F_SECTORS];
	f->type = be32(buf + F_TYPE);
	f->checksum = be32(buf + F_CHECKSUM);
	memcpy(f->uuid, buf + F_UUID, 16);
	f->saved_state = buf[F_SAVED_STATE];
	sum = vpc_checksum(buf, VPC_FOOTER_LEN, F_CHECKSUM);
	if (sum != f->checksum) {
		error_setg(errp, "the VHD footer's checksum is 0x%08" PRIx32 ", its bytes sum to "
			   "0x%08" PRIx32 " (a damaged footer)", f->checksum, sum);
		return -1;
	}
	if (f->type == VPC_TYPE_DIFF) {
		error_setg(errp, "differencing VHD images (disk type 4) are not supported");
		return -1;
	}
	if (f->type != VPC_TYPE_FIXED && f->type != VPC_TYPE_DYNAMIC) {
		error_setg(errp, "the VHD footer's disk type %" PRIu32 " is not fixed (2) or "
			   "dynamic (3)", f->type);
		return -1;
	}
	return 0;
}

void vpc_footer_put(struct vpc_footer *f, uint8_t *buf)
{
	memset(buf, 0, VPC_FOOTER_LEN);
	memcpy(buf + F_COOKIE, "conectix", 8);
	put_be32(buf + F_FEATURES, f->features);
	put_be32(buf + F_VERSION, f->version);
	put_be64(buf + F_DATA_OFFSET, f->data_offset);
	put_be32(buf + F_TIMESTAMP, f->timestamp);
	memcpy(buf + F_CREATOR_APP, f->creator_app, 4);
	put_be32(buf + F_CREATOR_VERSION, f->creator_version);
	memcpy(buf + F_CREATOR_OS, f->creator_os, 4);
	put_be64(buf + F_ORIG_SIZE, f->orig_size);
	put_be64(buf + F_CURRENT_SIZE, f->current_size);
	buf[F_CYLINDERS] = (uint8_t)(f->cylinders >> 8);
	buf[F_CYLINDERS + 1] = (uint8_t)f->cylinders;
	buf[F_HEADS] = f->heads;
	buf[F_SECTORS] = f->sectors;
	put_be32(buf + F_TYPE, f->type);
	memcpy(buf + F_UUID, f->uuid, 16);
	buf[F_SAVED_STATE] = f->saved_state;
	f->checksum = vpc_checksum(buf, VPC_FOOTER_LEN, F_CHECKSUM);
	put_be32(buf + F_CHECKSUM, f->checksum);
}

/* Field offsets of the dynamic disk header. */
enum {
	D_COOKIE = 0, D_DATA_OFFSET = 8, D_TABLE_OFFSET = 16, D_VERSION = 24, D_MAX_ENTRIES = 28,
	D_BLOCK_SIZE = 32, D_CHECKSUM = 36, D_PARENT_UUID = 40, D_PARENT_TIMESTAMP = 56,
};

int vpc_dyn_parse(const uint8_t *buf, struct vpc_dyn *d, struct error **errp)
{
	memset(d, 0, sizeof(*d));
	if (memcmp(buf + D_COOKIE, "cxsparse", 8)) {
		error_setg(errp, "the VHD dynamic disk header has no 'cxsparse' cookie");
		return -1;
	}
	d->data_offset = be64(buf + D_DATA_OFFSET);
	d->table_offset = be64(buf + D_TABLE_OFFSET);
	d->version = be32(buf + D_VERSION);
	d->max_entries = be32(buf + D_MAX_ENTRIES);
	d->block_size = be32(buf + D_BLOCK_SIZE);
	d->checksum = be32(buf + D_CHECKSUM);
	memcpy(d->parent_uuid, buf + D_PARENT_UUID, 16);
	d->parent_timestamp = be32(buf + D_PARENT_TIMESTAMP);
	if (d->block_size < VPC_SECTOR || d->block_size > VPC_BLOCK_MAX ||
	    (d->block_size & (d->block_size - 1))) {
		error_setg(errp, "the VHD block size %" PRIu32 " is not a power of two from 512 "
			   "bytes to %u MiB", d->block_size, VPC_BLOCK_MAX >> 20);
		return -1;
	}
	return 0;
}

void vpc_dyn_put(struct vpc_dyn *d, uint8_t *buf)
{
	memset(buf, 0, VPC_DYN_LEN);
	memcpy(buf + D_COOKIE, "cxsparse", 8);
	put_be64(buf + D_DATA_OFFSET, d->data_offset);
	put_be64(buf + D_TABLE_OFFSET, d->table_offset);
	put_be32(buf + D_VERSION, d->version);
	put_be32(buf + D_MAX_ENTRIES, d->max_entries);
	put_be32(buf + D_BLOCK_SIZE, d->block_size);
	memcpy(buf + D_PARENT_UUID, d->parent_uuid, 16);
	put_be32(buf + D_PARENT_TIMESTAMP, d->parent_timestamp);
	d->checksum = vpc_checksum(buf, VPC_DYN_LEN, D_CHECKSUM);
	put_be32(buf + D_CHECKSUM, d->checksum);
}

uint32_t vpc_bitmap_size(uint32_t block_size)
{
	return ALIGN_UP(block_size / VPC_SECTOR / 8, (uint32_t)VPC_SECTOR);
}

/* Creators whose images are as large as their current size field says, not their geometry. */
static bool sized_by_current_size(const char app[4])
{
	static const char *const apps[] = { "win ", "qem2", "d2v ", "CTXS", "tap\0" };

	for (size_t i = 0; i < ARRAY_SIZE(apps); i++)
		if (!memcmp(app, apps[i], 4))
			return true;
	return false;
}

uint64_t vpc_disk_size(const struct vpc_footer *f, enum vpc_size_calc calc)
{
	uint64_t chs = (uint64_t)f->cylinders * f->heads * f->sectors;
	bool by_chs = calc == VPC_SIZE_CHS ||
		      (calc == VPC_SIZE_AUTO && !sized_by_current_size(f->creator_app));

	if (!by_chs || chs == VPC_CHS_MAX_SECTORS)
		return ALIGN_DOWN(f->current_size, (uint64_t)VPC_SECTOR);
	return chs * VPC_SECTOR;
}

void vpc_chs(uint64_t sectors, uint16_t *c, uint8_t *h, uint8_t *s)
{
	uint64_t cyl_heads;
	unsigned int heads, spt;

	sectors = MIN(sectors, VPC_CHS_MAX_SECTORS);
	if (sectors >= 65535ULL * 16 * 63) {
		spt = 255;
		heads = 16;
		cyl_heads = sectors / spt;
	} else {
		spt = 17;
		cyl_heads = sectors / spt;
		heads = (unsigned int)MAX(DIV_ROUND_UP(cyl_heads, 1024), 4);
		if (cyl_heads >= heads * 1024ULL || heads > 16) {
			spt = 31;
			heads = 16;
			cyl_heads = sectors / spt;
		}
		if (cyl_heads >= heads * 1024ULL) {
			spt = 63;
			heads = 16;
			cyl_heads = sectors / spt;
		}
	}
	*c = (uint16_t)(cyl_heads / heads);
	*h = (uint8_t)heads;
	*s = (uint8_t)spt;
}

int vpc_create_size(uint64_t size, bool force, struct vpc_footer *f, struct error **errp)
{
	uint64_t want = DIV_ROUND_UP(size, VPC_SECTOR), sectors;
	uint16_t c = 0;
	uint8_t h = 0, s = 0;

	if (force) {
		c = 65535;
		h = 16;
		s = 255;
	} else {
		/* the first geometry at least as large as the disk, from the sectors it has */
		for (uint64_t i = 0; MIN(want, VPC_CHS_MAX_SECTORS) > (uint64_t)c * h * s; i++)
			vpc_chs(MIN(want, VPC_CHS_MAX_SECTORS) + i, &c, &h, &s);
	}
	sectors = (uint64_t)c * h * s;
	if (sectors == VPC_CHS_MAX_SECTORS)
		sectors = want; /* the geometry cannot say: the current size field does */
	if (sectors > VPC_MAX_SECTORS) {
		error_setg(errp, "size: %" PRIu64 " bytes is larger than a VHD image can be "
			   "(2040 GiB)", size);
		return -1;
	}
	f->cylinders = c;
	f->heads = h;
	f->sectors = s;
	f->orig_size = f->current_size = sectors * VPC_SECTOR;
	memcpy(f->creator_app, force ? "qem2" : "qemu", 4);
	return 0;
}

int vpc_layout_check(const struct vpc_footer *f, const struct vpc_dyn *d, uint64_t disk_size,
		     uint64_t file_size, uint64_t *meta_end, struct error **errp)
{
	uint64_t dh = f->data_offset, bat = d->table_offset;
	uint64_t bat_len = (uint64_t)d->max_entries * 4, end;

	if (disk_size > VPC_MAX_SECTORS * VPC_SECTOR) {
		error_setg(errp, "the disk size %" PRIu64 " is over 2040 GiB, the largest VHD",
			   disk_size);
		return -1;
	}
	if (dh < VPC_FOOTER_LEN || !range_within(dh, VPC_DYN_LEN, file_size)) {
		error_setg(errp, "the dynamic header offset %" PRIu64 " is not between the footer "
			   "copy and the end of the file (%" PRIu64 " bytes)", dh, file_size);
		return -1;
	}
	if (bat < VPC_FOOTER_LEN || !range_within(bat, bat_len, file_size)) {
		error_setg(errp, "the BAT (%" PRIu32 " entries at offset %" PRIu64 ") is not "
			   "between the footer copy and the end of the file (%" PRIu64 " bytes)",
			   d->max_entries, bat, file_size);
		return -1;
	}
	if (bat < dh + VPC_DYN_LEN && dh < bat + bat_len) {
		error_setg(errp, "the BAT at offset %" PRIu64 " overlaps the dynamic header at "
			   "offset %" PRIu64, bat, dh);
		return -1;
	}
	if ((uint64_t)d->max_entries * d->block_size < disk_size) {
		error_setg(errp, "the BAT's %" PRIu32 " entries of %" PRIu32 " bytes do not cover "
			   "the disk's %" PRIu64 " bytes", d->max_entries, d->block_size,
			   disk_size);
		return -1;
	}
	end = MAX(dh + VPC_DYN_LEN, bat + bat_len);
	*meta_end = ALIGN_UP(end, (uint64_t)VPC_SECTOR);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int vpc_bat_check(const uint32_t *bat, uint32_t n, uint32_t block_size, uint64_t meta_end,
		  uint64_t file_size, uint64_t *next, struct error **errp)
{
	uint64_t span = (uint64_t)vpc_bitmap_size(block_size) + block_size, *starts;
	uint32_t used = 0;
	int ret = -1;

	*next = meta_end;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = (uint64_t)bat[i] * VPC_SECTOR;

		if (bat[i] == VPC_BAT_FREE)
			continue;
		if (off < meta_end || !range_within(off, span, file_size)) {
			error_setg(errp, "BAT entry %" PRIu32 " puts its block at offset "
				   "%" PRIu64 ", %s", i, off,
				   off < meta_end ? "inside the image's metadata" :
						    "past the end of the file (truncated image?)");
			return -1;
		}
		*next = MAX(*next, off + span);
		used++;
	}
	if (used < 2)
		return 0;
	starts = malloc(sizeof(*starts) * used);
	if (!starts) {
		error_setg(errp, "out of memory for the BAT's %" PRIu32 " blocks", used);
		return -1;
	}
	used = 0;
	for (uint32_t i = 0; i < n; i++)
		if (bat[i] != VPC_BAT_FREE)
			starts[used++] = (uint64_t)bat[i] * VPC_SECTOR;
	qsort(starts, used, sizeof(*starts), cmp_u64);
	for (uint32_t i = 1; i < used; i++) {
		if (starts[i] < starts[i - 1] + span) {
			error_setg(errp, "two blocks of the BAT overlap at offset %" PRIu64,
				   starts[i]);
			goto out;
		}
	}
	ret = 0;
out:
	free(starts);
	return ret;
}
