/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the VHDX header section, region table, metadata region and BAT parsers
 * (blockdev/vhdx_format.c: vhdx_headers_load, vhdx_regions_load, vhdx_bat_check) on a file
 * built in memory (fuzz_vhdx.h: option byte, file size, records; checksums fixed when asked).
 *
 * Invariants: a refusal carries a message; what loads is consistent: the current header
 * round-trips through vhdx_header_put, the log, the BAT and the metadata regions lie inside the
 * file, past the header section, MiB-aligned and apart, the block size is a power of two from
 * 1 to 256 MiB, the BAT region holds every entry the geometry needs, and the BAT check counts
 * no more present blocks than payload entries and finds no block past plausible offsets.
 */
#include "tests/fuzz/fuzz_vhdx.h"

static bool apart(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
	return a + al <= b || b + bl <= a;
}

static void check_loaded(const struct fuzz_vhdx *f, const struct vhdx_meta *m)
{
	uint8_t buf[VHDX_HEADER_LEN];
	struct vhdx_header h;
	char why[200];

	vhdx_header_put(&m->hdr, buf);
	FUZZ_CHECK(!vhdx_header_parse(buf, f->size, &h, why, sizeof(why)),
		   "the current header does not parse again: %s", why);
	FUZZ_CHECK(!memcmp(&h, &m->hdr, sizeof(h)), "the header changed in a round trip");
	FUZZ_CHECK(m->bat_offset >= VHDX_HEADER_SECTION && m->meta_offset >= VHDX_HEADER_SECTION &&
		   !(m->bat_offset % VHDX_MIB) && !(m->meta_offset % VHDX_MIB),
		   "a region is misaligned or in the header section");
	FUZZ_CHECK(m->bat_offset + m->bat_length <= f->size &&
		   m->meta_offset + m->meta_length <= f->size &&
		   m->hdr.log_offset + m->hdr.log_length <= f->size, "a region is past the file");
	FUZZ_CHECK(apart(m->bat_offset, m->bat_length, m->meta_offset, m->meta_length) &&
		   apart(m->bat_offset, m->bat_length, m->hdr.log_offset, m->hdr.log_length) &&
		   apart(m->meta_offset, m->meta_length, m->hdr.log_offset, m->hdr.log_length),
		   "regions overlap");
	FUZZ_CHECK(m->block_size >= VHDX_MIN_BLOCK && m->block_size <= VHDX_MAX_BLOCK &&
		   !(m->block_size & (m->block_size - 1)), "block size %u", m->block_size);
	FUZZ_CHECK(m->chunk_ratio >= 1 && m->bat_entries * 8 <= m->bat_length,
		   "the BAT region is too small");
	FUZZ_CHECK(m->disk_size <= VHDX_MAX_DISK_SIZE, "disk size");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_vhdx f;
	struct vhdx_io io;
	struct vhdx_meta m;
	struct vhdx_bat_report r;
	struct error *err = NULL;
	uint64_t *bat;

	if (!fuzz_vhdx_build(&f, data, size))
		return 0;
	io = fuzz_vhdx_io(&f);
	memset(&m, 0, sizeof(m));
	if (vhdx_headers_load(&io, &m, &err) || vhdx_regions_load(&io, &m, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "refused without a message");
		FUZZ_LOG("vhdx_header: %s\n", error_msg(err));
		error_free(err);
		return 0;
	}
	check_loaded(&f, &m);
	bat = malloc(m.bat_entries * 8 + 8);
	if (!bat)
		abort();
	for (uint64_t i = 0; i < m.bat_entries; i++)
		bat[i] = vhdx_le64(f.b + m.bat_offset + 8 * i);
	FUZZ_CHECK(vhdx_bat_check(&m, bat, f.size, &r) == 0, "BAT check ran out of memory");
	FUZZ_CHECK(r.present <= m.data_blocks, "%llu present blocks of %llu",
		   (unsigned long long)r.present, (unsigned long long)m.data_blocks);
	FUZZ_CHECK(!(r.bad || r.past_eof) || r.first_why[0], "a bad entry without a reason");
	FUZZ_CHECK(r.end <= VHDX_MAX_FILE_OFFSET + VHDX_MAX_BLOCK, "end %llu",
		   (unsigned long long)r.end);
	FUZZ_LOG("vhdx_header: loaded, %llu blocks, %llu present, %llu bad\n",
		 (unsigned long long)m.data_blocks, (unsigned long long)r.present,
		 (unsigned long long)(r.bad + r.past_eof));
	free(bat);
	return 0;
}
