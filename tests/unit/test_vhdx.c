/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vhdx format: the pure parsers on images built in memory (headers picked by sequence
 * number and validity, region tables and their copy, metadata items, the BAT, the log's active
 * sequence and its replay), each hostile field refused with a message that names it; then the
 * driver on files: create, reads and writes across blocks, allocation raced by two threads,
 * map()'s answers, the log after a flush and its replay after a crash, truncated images.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/create.h"
#include "blockdev/vhdx.h"
#include "blockdev/vhdx_format.h"
#include "blockdev/vhdx_log.h"
#include "tests/unit/img_fixture.h"

/* ---- an image in memory ----------------------------------------------------------------- */

#define MEM_CAP (32 * VHDX_MIB)

struct mem {
	uint8_t *b;
	uint64_t size;
};

static int mread(void *o, uint64_t off, void *buf, size_t len)
{
	struct mem *m = o;

	memset(buf, 0, len);
	if (off < m->size)
		memcpy(buf, m->b + off, (size_t)(len < m->size - off ? len : m->size - off));
	return 0;
}

static int mwrite(void *o, uint64_t off, const void *buf, size_t len)
{
	struct mem *m = o;

	if (off > MEM_CAP || len > MEM_CAP - off)
		return -ENOSPC;
	memcpy(m->b + off, buf, len);
	if (off + len > m->size)
		m->size = off + len;
	return 0;
}

static struct vhdx_io io_of(struct mem *m)
{
	return (struct vhdx_io){ mread, mwrite, NULL, m, m->size };
}

static struct mem img;
static struct vhdx_meta built;
static struct vhdx_layout lay;
static struct vhdx_header hdr;

/* A dynamic 100 MiB image, 1 MiB blocks, 1 MiB log, laid out as vireo-img creates it. */
static void build(void)
{
	built = (struct vhdx_meta){ .disk_size = 100 * VHDX_MIB, .block_size = VHDX_MIB,
				    .logical_sector = 512, .physical_sector = 512 };
	vhdx_layout_new(&built, VHDX_MIB, &lay);
	free(img.b);
	img.b = calloc(1, MEM_CAP);
	img.size = lay.data_offset;
	vhdx_file_id_put(img.b);
	hdr = (struct vhdx_header){ .seq = 5, .version = 1, .log_length = lay.log_length,
				    .log_offset = lay.log_offset };
	memset(hdr.file_write.b, 0x11, 16);
	vhdx_header_put(&hdr, img.b + VHDX_HEADER1_OFF);
	hdr.seq = 6;
	vhdx_header_put(&hdr, img.b + VHDX_HEADER2_OFF);
	vhdx_region_put(&lay, img.b + VHDX_REGION1_OFF);
	vhdx_region_put(&lay, img.b + VHDX_REGION2_OFF);
	vhdx_metadata_put(&built, img.b + lay.meta_offset);
}

/* Checksums of both headers and both region tables, after a test changed their bytes. */
static void reseal(void)
{
	vhdx_put32(img.b + VHDX_HEADER1_OFF + 4, vhdx_checksum(img.b + VHDX_HEADER1_OFF,
							       VHDX_HEADER_LEN, 4));
	vhdx_put32(img.b + VHDX_HEADER2_OFF + 4, vhdx_checksum(img.b + VHDX_HEADER2_OFF,
							       VHDX_HEADER_LEN, 4));
	vhdx_put32(img.b + VHDX_REGION1_OFF + 4, vhdx_checksum(img.b + VHDX_REGION1_OFF,
							       VHDX_REGION_LEN, 4));
	vhdx_put32(img.b + VHDX_REGION2_OFF + 4, vhdx_checksum(img.b + VHDX_REGION2_OFF,
							       VHDX_REGION_LEN, 4));
}

/* Loads the in-memory image; returns the message of a refusal ("" when it loaded). */
static const char *load(struct vhdx_meta *m)
{
	static char msg[1024];
	struct vhdx_io io = io_of(&img);
	struct error *err = NULL;

	memset(m, 0, sizeof(*m));
	msg[0] = '\0';
	if (vhdx_headers_load(&io, m, &err) || vhdx_regions_load(&io, m, &err)) {
		assert_non_null(err);
		snprintf(msg, sizeof(msg), "%s", error_msg(err));
		error_free(err);
	}
	return msg;
}

static void refused(const char *needle)
{
	struct vhdx_meta m;
	const char *msg = load(&m);

	if (!strstr(msg, needle))
		fail_msg("expected a refusal naming \"%s\", got \"%s\"", needle, msg);
}

static void loads(void)
{
	struct vhdx_meta m;
	const char *msg = load(&m);

	if (msg[0])
		fail_msg("refused: %s", msg);
}

/* ---- the pure parsers ------------------------------------------------------------------------ */

static void crc32c_known_values(void **state)
{
	static const uint8_t zero[32];

	assert_int_equal(vhdx_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(vhdx_crc32c(0, zero, sizeof(zero)), 0x8A9136AAu);
	/* in pieces, as the log's checksum is computed */
	assert_int_equal(vhdx_crc32c(vhdx_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static void header_round_trip_and_refusals(void **state)
{
	uint8_t b[VHDX_HEADER_LEN];
	struct vhdx_header h = { .seq = 9, .version = 1, .log_length = VHDX_MIB,
				 .log_offset = VHDX_MIB }, g;
	char why[200];

	memset(h.log_guid.b, 0xab, 16);
	vhdx_header_put(&h, b);
	assert_int_equal(vhdx_header_parse(b, 4 * VHDX_MIB, &g, why, sizeof(why)), 0);
	assert_int_equal(g.seq, 9);
	assert_true(vhdx_guid_eq(&g.log_guid, &h.log_guid));
	b[100] ^= 1; /* reserved byte: covered by the checksum */
	assert_int_equal(vhdx_header_parse(b, 4 * VHDX_MIB, &g, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "checksum"));
	h.version = 2;
	vhdx_header_put(&h, b);
	assert_int_equal(vhdx_header_parse(b, 4 * VHDX_MIB, &g, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "Version"));
	h.version = 1;
	h.log_offset = VHDX_MIB + 4096;
	vhdx_header_put(&h, b);
	assert_int_equal(vhdx_header_parse(b, 4 * VHDX_MIB, &g, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "LogOffset"));
	h.log_offset = VHDX_MIB;
	vhdx_header_put(&h, b);
	assert_int_equal(vhdx_header_parse(b, VHDX_MIB + 4096, &g, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "past the end of the file"));
	memcpy(b, "HEAD", 4);
	assert_int_equal(vhdx_header_parse(b, 4 * VHDX_MIB, &g, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "signature"));
}

static void current_header_is_the_valid_one_with_the_larger_sequence(void **state)
{
	struct vhdx_meta m;

	build();
	loads();
	load(&m);
	assert_int_equal(m.hdr_slot, 1);
	assert_int_equal(m.hdr.seq, 6);
	img.b[VHDX_HEADER2_OFF + 200] ^= 0xff; /* header 2 torn: header 1 is current */
	load(&m);
	assert_int_equal(m.hdr_slot, 0);
	assert_int_equal(m.hdr.seq, 5);
	img.b[VHDX_HEADER1_OFF + 4] ^= 0xff;
	refused("neither VHDX header is valid: header 1 (at 0x10000): checksum");
	refused("header 2 (at 0x20000): checksum");
	build();
	memcpy(img.b, "vhdxfilX", 8);
	refused("no VHDX file identifier");
	build();
	img.size = VHDX_MIN_FILE - 1;
	refused("too short for a VHDX header section");
}

static void geometry_of_a_new_image(void **state)
{
	struct vhdx_meta m;

	build();
	load(&m);
	assert_int_equal(m.block_size, VHDX_MIB);
	assert_int_equal(m.disk_size, 100 * VHDX_MIB);
	assert_int_equal(m.chunk_ratio, 4096); /* 2^23 * 512 / 1 MiB */
	assert_int_equal(m.data_blocks, 100);
	assert_int_equal(m.bat_entries, 100);
	assert_int_equal(m.bat_offset, 2 * VHDX_MIB);
	assert_int_equal(m.meta_offset, 3 * VHDX_MIB);
	assert_int_equal(lay.data_offset, 8 * VHDX_MIB);
	/* qemu-img's choices */
	assert_int_equal(vhdx_default_block_size(VHDX_MIB * 1024), 8 * VHDX_MIB);
	assert_int_equal(vhdx_default_block_size(VHDX_MIB * 1025), 16 * VHDX_MIB);
	assert_int_equal(vhdx_default_block_size(VHDX_MIB * 1024 * 101), 32 * VHDX_MIB);
	assert_int_equal(vhdx_default_block_size(VHDX_MAX_DISK_SIZE), 64 * VHDX_MIB);
}

static uint8_t *region_entry(int table, int i)
{
	return img.b + (table ? VHDX_REGION2_OFF : VHDX_REGION1_OFF) + 16 + 32 * i;
}

static void region_table_copy_and_refusals(void **state)
{
	uint8_t *e;

	build();
	img.b[VHDX_REGION1_OFF + 1000] = 1; /* table 1 damaged: its copy is used */
	loads();
	img.b[VHDX_REGION2_OFF + 1000] = 1;
	refused("region table at 0x30000: checksum");

	build();
	e = region_entry(0, 2); /* a third, unknown region */
	vhdx_put32(img.b + VHDX_REGION1_OFF + 8, 3);
	memset(e, 0x5a, 16);
	vhdx_put64(e + 16, 5 * VHDX_MIB);
	vhdx_put32(e + 24, VHDX_MIB);
	reseal();
	loads(); /* optional: ignored */
	vhdx_put32(e + 28, 1);
	memcpy(img.b + VHDX_REGION2_OFF, img.b + VHDX_REGION1_OFF, VHDX_REGION_LEN);
	reseal();
	refused("required region of unknown type");

	build();
	memcpy(region_entry(0, 1), vhdx_guid_bat.b, 16); /* BAT twice, no metadata */
	memcpy(region_entry(1, 1), vhdx_guid_bat.b, 16);
	reseal();
	refused("names the BAT region a second time");

	build();
	vhdx_put64(region_entry(0, 1) + 16, 9 * VHDX_MIB); /* metadata past the end */
	vhdx_put64(region_entry(1, 1) + 16, 9 * VHDX_MIB);
	reseal();
	refused("inside the file (8388608 bytes)");

	build();
	vhdx_put64(region_entry(0, 0) + 16, 2 * VHDX_MIB + 4096);
	vhdx_put64(region_entry(1, 0) + 16, 2 * VHDX_MIB + 4096);
	reseal();
	refused("is not MiB-aligned");

	build();
	vhdx_put64(region_entry(0, 0) + 16, VHDX_MIB); /* the BAT over the log */
	vhdx_put64(region_entry(1, 0) + 16, VHDX_MIB);
	reseal();
	refused("the BAT region (0x100000, 1048576 bytes) overlaps the log");

	build();
	vhdx_put32(img.b + VHDX_REGION1_OFF + 8, 5000);
	vhdx_put32(img.b + VHDX_REGION2_OFF + 8, 5000);
	reseal();
	refused("EntryCount (byte 8) 5000 is more than 2047");
}

/* The metadata item @k (0 params, 1 size, 2 page83, 3 lss, 4 pss as vireo writes them). */
static uint8_t *item(int k)
{
	static const uint32_t off[] = { 0, 8, 16, 32, 36 };

	return img.b + lay.meta_offset + VHDX_METADATA_TABLE_LEN + off[k];
}

static uint8_t *meta_entry(int i)
{
	return img.b + lay.meta_offset + 32 + 32 * i;
}

static void metadata_refusals(void **state)
{
	build();
	vhdx_put32(item(0), 3 * VHDX_MIB);
	refused("BlockSize 3145728 is not a power of two");
	build();
	vhdx_put32(item(0) + 4, 2); /* HasParent */
	refused("differencing VHDX image");
	build();
	vhdx_put32(item(3), 1024);
	refused("Logical Sector Size item at 0x310020: 1024 is not 512 or 4096");
	build();
	vhdx_put64(item(1), 1000);
	refused("Virtual Disk Size item");
	build();
	vhdx_put64(item(1), 200 * VHDX_MIB); /* 200 blocks: the BAT region holds 131072 */
	loads();
	vhdx_put32(item(0), 1 * VHDX_MIB);
	vhdx_put64(item(1), VHDX_MAX_DISK_SIZE);
	refused("cannot hold the");
	build();
	memset(meta_entry(3), 0x77, 16); /* the logical sector item gone, an optional one there */
	vhdx_put32(meta_entry(3) + 24, 2);
	refused("has no Logical Sector Size item");
	vhdx_put32(meta_entry(3) + 24, 4); /* ... and an unknown item required */
	refused("required system item of unknown type");
	build();
	vhdx_put32(meta_entry(0) + 16, 100); /* an item inside the table */
	refused("the File Parameters item (Offset 100, Length 8)");
	build();
	vhdx_put32(meta_entry(1) + 20, 4); /* a short Virtual Disk Size */
	refused("is not 8 bytes");
	build();
	memcpy(img.b + lay.meta_offset, "metadatX", 8);
	refused("no \"metadata\" signature");
}

static void bat_check_finds_each_problem(void **state)
{
	struct vhdx_bat_report r;
	struct vhdx_meta m;
	uint64_t bat[128] = { 0 };

	build();
	load(&m);
	bat[0] = 8 * VHDX_MIB | VHDX_BLOCK_FULLY_PRESENT;
	bat[1] = VHDX_BLOCK_ZERO;
	bat[2] = 9 * VHDX_MIB | VHDX_BLOCK_FULLY_PRESENT;
	assert_int_equal(vhdx_bat_check(&m, bat, 10 * VHDX_MIB, &r), 0);
	assert_int_equal(r.bad + r.past_eof, 0);
	assert_int_equal(r.present, 2);
	assert_int_equal(r.end, 10 * VHDX_MIB);
	assert_int_equal(vhdx_bat_check(&m, bat, 9 * VHDX_MIB + 4096, &r), 0);
	assert_int_equal(r.past_eof, 1);
	assert_non_null(strstr(r.first_why, "ends past the end of the file"));
	bat[3] = 3 * VHDX_MIB | VHDX_BLOCK_FULLY_PRESENT; /* the metadata region */
	bat[4] = 9 * VHDX_MIB | VHDX_BLOCK_FULLY_PRESENT; /* block 2's */
	bat[5] = VHDX_BLOCK_PARTIALLY_PRESENT;
	bat[6] = 4;
	assert_int_equal(vhdx_bat_check(&m, bat, 10 * VHDX_MIB, &r), 0);
	assert_int_equal(r.bad, 4);
	assert_int_equal(r.first_bad, 3);
	assert_non_null(strstr(r.first_why, "over the metadata region"));
}

/* ---- the log -------------------------------------------------------------------------------- */

static struct vhdx_guid log_guid = { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 } };

/* Points the current header (2) at log GUID @g. */
static void set_log_guid(const struct vhdx_guid *g)
{
	hdr.seq = 6;
	hdr.log_guid = *g;
	vhdx_header_put(&hdr, img.b + VHDX_HEADER2_OFF);
}

/* Writes an entry of @n sectors (each filled with @fill + i) for BAT sectors 0.. at log offset
 * @pos (wrapping at the log's end); returns its length. */
static uint64_t put_entry(uint64_t pos, uint64_t seq, uint32_t tail, size_t n, uint8_t fill,
			  const struct vhdx_guid *g)
{
	uint64_t offs[4], len = vhdx_log_entry_len(n);
	uint8_t sec[4][VHDX_LOG_SECTOR], *buf = malloc(len);
	const uint8_t *secs[4];

	for (size_t i = 0; i < n; i++) {
		memset(sec[i], fill + (int)i, sizeof(sec[i]));
		offs[i] = lay.bat_offset + i * VHDX_LOG_SECTOR;
		secs[i] = sec[i];
	}
	vhdx_log_entry_build(&(struct vhdx_log_write){ .guid = g, .seq = seq, .tail = tail,
		.flushed = img.size, .last = img.size, .n = n, .offsets = offs, .sectors = secs },
		buf);
	for (uint64_t i = 0; i < len; i++)
		img.b[lay.log_offset + (pos + i) % lay.log_length] = buf[i];
	free(buf);
	return len;
}

static const char *find_and_replay(struct vhdx_log_seq *seq)
{
	static char msg[1024];
	struct vhdx_io io = io_of(&img);
	struct vhdx_meta m;
	struct error *err = NULL;

	msg[0] = '\0';
	assert_int_equal(vhdx_headers_load(&io, &m, NULL), 0);
	if (vhdx_log_find(&io, &m.hdr, seq, &err) || vhdx_log_replay(&io, &m.hdr, seq, &err)) {
		snprintf(msg, sizeof(msg), "%s", error_msg(err));
		error_free(err);
	}
	return msg;
}

static void bat_sector_is(int i, uint8_t byte)
{
	uint8_t want[VHDX_LOG_SECTOR];

	memset(want, byte, sizeof(want));
	assert_memory_equal(img.b + lay.bat_offset + i * VHDX_LOG_SECTOR, want, sizeof(want));
}

static void log_replays_the_newest_complete_sequence(void **state)
{
	struct vhdx_log_seq seq;
	uint64_t a, b;

	build();
	assert_string_equal(find_and_replay(&seq), "");
	assert_false(seq.found); /* zero log GUID: nothing looked at */
	set_log_guid(&log_guid);
	a = put_entry(0, 10, 0, 2, 0x10, &log_guid);
	assert_string_equal(find_and_replay(&seq), "");
	assert_true(seq.found);
	assert_int_equal(seq.count, 1);
	bat_sector_is(0, 0x10);
	bat_sector_is(1, 0x11);
	/* a second entry chained to the first (its tail): both, oldest first */
	b = put_entry(a, 11, 0, 1, 0x20, &log_guid);
	assert_string_equal(find_and_replay(&seq), "");
	assert_int_equal(seq.count, 2);
	assert_int_equal(seq.head.seq, 11);
	bat_sector_is(0, 0x20);
	bat_sector_is(1, 0x11);
	/* a third, torn (its data sector damaged): the sequence up to the second */
	put_entry(a + b, 12, (uint32_t)(a + b), 1, 0x30, &log_guid);
	img.b[lay.log_offset + a + b + 2 * VHDX_LOG_SECTOR - 100] ^= 1;
	assert_string_equal(find_and_replay(&seq), "");
	assert_int_equal(seq.head.seq, 11);
	bat_sector_is(0, 0x20);
	/* entries of another GUID are not this log's */
	build();
	set_log_guid(&log_guid);
	put_entry(0, 10, 0, 1, 0x40, &(struct vhdx_guid){ { 9 } });
	assert_string_equal(find_and_replay(&seq), "");
	assert_false(seq.found);
	bat_sector_is(0, 0);
	/* a head whose tail is not in its chain is not a complete sequence */
	put_entry(0, 20, 8192, 1, 0x50, &log_guid);
	assert_string_equal(find_and_replay(&seq), "");
	assert_false(seq.found);
}

static void log_entry_may_wrap_at_the_end_of_the_log(void **state)
{
	struct vhdx_log_seq seq;
	uint64_t at = lay.log_length - VHDX_LOG_SECTOR;

	build();
	set_log_guid(&log_guid);
	put_entry(at, 3, (uint32_t)at, 2, 0x60, &log_guid); /* 3 sectors: 1 at the end, 2 at 0 */
	assert_string_equal(find_and_replay(&seq), "");
	assert_true(seq.found);
	assert_int_equal(seq.tail.pos, at);
	bat_sector_is(0, 0x60);
	bat_sector_is(1, 0x61);
}

static void log_refusals(void **state)
{
	struct vhdx_log_seq seq;
	uint8_t *e; /* the log's first entry: build() allocates img.b anew each time */
	uint64_t len;

	build();
	e = img.b + VHDX_MIB;
	set_log_guid(&log_guid);
	len = put_entry(0, 3, 0, 1, 0x70, &log_guid);
	vhdx_put64(e + 64 + 16, 4096); /* the descriptor's target: the header section */
	vhdx_put32(e + 4, vhdx_checksum(e, len, 4));
	assert_non_null(strstr(find_and_replay(&seq), "descriptor 0 is not"));
	bat_sector_is(0, 0); /* nothing written */

	build();
	e = img.b + VHDX_MIB;
	set_log_guid(&log_guid);
	len = put_entry(0, 3, 0, 1, 0x70, &log_guid);
	vhdx_put64(e + 48, img.size + VHDX_MIB); /* flushed when the file was larger */
	vhdx_put32(e + 4, vhdx_checksum(e, len, 4));
	assert_non_null(strstr(find_and_replay(&seq), "the image was truncated"));

	build();
	e = img.b + VHDX_MIB;
	set_log_guid(&log_guid);
	len = put_entry(0, 3, 0, 1, 0x70, &log_guid);
	memcpy(img.b + VHDX_MIB + VHDX_LOG_SECTOR, "DATA", 4); /* the data sector */
	vhdx_put32(e + 4, vhdx_checksum(e, len, 4));
	assert_non_null(strstr(find_and_replay(&seq), "not a \"data\" sector"));

	/* a zero descriptor (no data sector) zeroes its range */
	build();
	e = img.b + VHDX_MIB;
	set_log_guid(&log_guid);
	memset(img.b + lay.bat_offset, 0xee, 2 * VHDX_LOG_SECTOR);
	len = put_entry(0, 3, 0, 1, 0x70, &log_guid);
	memcpy(e + 64, "zero", 4);
	vhdx_put64(e + 64 + 8, 2 * VHDX_LOG_SECTOR);
	vhdx_put32(e + 4, vhdx_checksum(e, len, 4));
	assert_string_equal(find_and_replay(&seq), "");
	bat_sector_is(0, 0);
	bat_sector_is(1, 0);
}

/* ---- the driver on files -------------------------------------------------------------------- */

static int files_setup(void **state)
{
	return imgfx_setup("vhdx");
}

static int files_teardown(void **state)
{
	free(img.b);
	img.b = NULL;
	return imgfx_teardown();
}

static void create(const char *name, uint64_t size, const char *opts)
{
	struct blockdev_opt o[8];
	struct blockdev_create_ctx ctx;
	struct error *err = NULL;
	char buf[256], *save = NULL;
	size_t n = 0;

	snprintf(buf, sizeof(buf), "%s", opts);
	for (char *kv = strtok_r(buf, ",", &save); kv && n < 8; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');

		*eq = '\0';
		o[n++] = (struct blockdev_opt){ kv, eq + 1 };
	}
	if (blockdev_create_prepare(&ctx, &blockdev_vhdx, imgfx_path(name), size, o, n, &err) ||
	    blockdev_create_run(&ctx, &err))
		fail_msg("create %s: %s", name, error_msg(err));
	blockdev_create_free(&ctx);
}

static struct blockdev *open_opts(const char *name, bool ro, bool repair, struct error **errp)
{
	struct blockdev_opts o = { .readonly = ro, .repair = repair };
	struct blockdev *bs;

	assert_int_equal(blockdev_opts_set(&o, "format", "vhdx", NULL), 0);
	bs = blockdev_open(imgfx_path(name), &o, errp);
	blockdev_opts_free(&o);
	return bs;
}

/* The file's bytes [off, off+len) */
static void file_read(const char *name, uint64_t off, void *buf, size_t len)
{
	int fd = open(imgfx_path(name), O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void file_write(const char *name, uint64_t off, const void *buf, size_t len)
{
	int fd = open(imgfx_path(name), O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", imgfx_path(from), imgfx_path(to));
	assert_int_equal(system(cmd), 0);
}

/* The current header's log GUID is zero (@want_zero) or not. */
static void log_guid_zero(const char *name, bool want_zero)
{
	uint8_t h[2][VHDX_HEADER_LEN];
	struct vhdx_header p[2];
	char why[200];
	int cur;

	file_read(name, VHDX_HEADER1_OFF, h[0], VHDX_HEADER_LEN);
	file_read(name, VHDX_HEADER2_OFF, h[1], VHDX_HEADER_LEN);
	assert_int_equal(vhdx_header_parse(h[0], 1ULL << 40, &p[0], why, sizeof(why)), 0);
	assert_int_equal(vhdx_header_parse(h[1], 1ULL << 40, &p[1], why, sizeof(why)), 0);
	cur = p[1].seq > p[0].seq;
	assert_int_equal(vhdx_guid_is_zero(&p[cur].log_guid), want_zero);
}

static void reads_and_writes_across_blocks(void **state)
{
	struct blockdev *bs;

	create("rw.vhdx", 20 * VHDX_MIB, "block_size=1M");
	bs = imgfx_open("rw.vhdx", NULL, NULL, false); /* probed */
	assert_string_equal(blockdev_format_name(bs), "vhdx");
	assert_int_equal(bs->size, 20 * VHDX_MIB);
	imgfx_assert_reads(bs, 0, 20 * VHDX_MIB, 0);
	imgfx_fill(bs, VHDX_MIB - 512, 2 * VHDX_MIB + 1024, 0xa1); /* over three blocks */
	imgfx_fill(bs, 19 * VHDX_MIB + 7, 100, 0xa2);
	imgfx_assert_reads(bs, 0, VHDX_MIB - 512, 0);
	imgfx_assert_reads(bs, VHDX_MIB - 512, 2 * VHDX_MIB + 1024, 0xa1);
	imgfx_assert_reads(bs, 3 * VHDX_MIB + 512, 512, 0);
	imgfx_assert_reads(bs, 19 * VHDX_MIB, 7, 0);
	imgfx_assert_reads(bs, 19 * VHDX_MIB + 7, 100, 0xa2);
	assert_int_equal(blockdev_flush(bs), 0);
	log_guid_zero("rw.vhdx", false); /* the flush committed through the log */
	blockdev_close(bs);
	log_guid_zero("rw.vhdx", true); /* a clean close empties it */
	bs = imgfx_open("rw.vhdx", "vhdx", NULL, true);
	imgfx_assert_reads(bs, VHDX_MIB - 512, 2 * VHDX_MIB + 1024, 0xa1);
	imgfx_assert_reads(bs, 19 * VHDX_MIB + 7, 100, 0xa2);
	assert_int_equal(blockdev_pwrite(bs, 0, "x", 1), -EROFS);
	blockdev_close(bs);
}

struct racer {
	struct blockdev *bs;
	uint64_t off;
	uint8_t byte;
};

static void *race(void *p)
{
	struct racer *r = p;

	imgfx_fill(r->bs, r->off, 256 * 1024, r->byte);
	return NULL;
}

static void two_writers_allocating_one_block(void **state)
{
	struct blockdev *bs;
	pthread_t t[4];
	struct racer r[4];

	create("race.vhdx", 8 * VHDX_MIB, "block_size=2M");
	for (int round = 0; round < 4; round++) {
		bs = imgfx_open("race.vhdx", "vhdx", NULL, false);
		for (int i = 0; i < 4; i++) {
			/* four quarters of block @round, at once */
			r[i] = (struct racer){ bs, round * 2 * VHDX_MIB + i * 512 * 1024,
					       (uint8_t)(0x10 * round + i + 1) };
			assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
		}
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		for (int i = 0; i < 4; i++) {
			imgfx_assert_reads(bs, r[i].off, 256 * 1024, r[i].byte);
			imgfx_assert_reads(bs, r[i].off + 256 * 1024, 256 * 1024, 0);
		}
		blockdev_close(bs);
	}
	bs = imgfx_open("race.vhdx", "vhdx", NULL, true);
	for (int i = 0; i < 4; i++)
		imgfx_assert_reads(bs, 3 * 2 * VHDX_MIB + i * 512 * 1024, 256 * 1024,
				   (uint8_t)(0x30 + i + 1));
	blockdev_close(bs);
}

static void map_answers(void **state)
{
	struct blockdev_extent e;
	struct blockdev *bs;
	uint64_t pnum, moff;
	struct blockdev *mfile;

	create("map.vhdx", 4 * VHDX_MIB, "block_size=1M");
	bs = imgfx_open("map.vhdx", "vhdx", NULL, false);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_READ, 100, 3 * VHDX_MIB, &e), 0);
	assert_int_equal(e.kind, BLOCKDEV_EXTENT_ZERO);
	assert_int_equal(e.len, VHDX_MIB - 100);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, 0, 4096, &e), 0);
	assert_int_equal(e.kind, BLOCKDEV_EXTENT_SLOW); /* absent: allocation */
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE_ZEROES, 0, 4096, &e), 0);
	assert_int_equal(e.kind, BLOCKDEV_EXTENT_ZERO); /* absent: zero already */
	imgfx_fill(bs, VHDX_MIB + 4096, 4096, 0x5c);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_READ, VHDX_MIB, 2 * VHDX_MIB, &e), 0);
	assert_int_equal(e.kind, BLOCKDEV_EXTENT_DATA);
	assert_int_equal(e.len, VHDX_MIB);
	assert_int_equal(e.host_offset, 8 * VHDX_MIB); /* the first block after the metadata */
	assert_ptr_equal(e.file, bs->file);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_WRITE, VHDX_MIB + 8, 8, &e), 0);
	assert_int_equal(e.kind, BLOCKDEV_EXTENT_DATA);
	assert_int_equal(e.host_offset, 8 * VHDX_MIB + 8);
	assert_int_equal(blockdev_block_status(bs, 0, 4 * VHDX_MIB, &pnum, &moff, &mfile),
			 BLOCKDEV_STATUS_ZERO | BLOCKDEV_STATUS_ALLOCATED); /* ZERO-state blocks */
	assert_int_equal(pnum, VHDX_MIB);
	assert_int_equal(blockdev_block_status(bs, VHDX_MIB, 3 * VHDX_MIB, &pnum, &moff, &mfile),
			 BLOCKDEV_STATUS_DATA | BLOCKDEV_STATUS_ALLOCATED | BLOCKDEV_STATUS_OFFSET);
	assert_int_equal(pnum, VHDX_MIB);
	assert_int_equal(moff, 8 * VHDX_MIB);
	/* discard of a present block: the file range is punched, it reads zeroes */
	assert_int_equal(blockdev_discard(bs, VHDX_MIB, VHDX_MIB), 0);
	imgfx_assert_reads(bs, VHDX_MIB, VHDX_MIB, 0);
	blockdev_close(bs);
}

static void a_crash_after_a_flush_is_replayed(void **state)
{
	struct blockdev *bs;
	struct error *err = NULL;
	uint8_t zero[VHDX_LOG_SECTOR] = { 0 };

	create("crash.vhdx", 16 * VHDX_MIB, "block_size=1M");
	bs = imgfx_open("crash.vhdx", "vhdx", NULL, false);
	imgfx_fill(bs, 5 * VHDX_MIB, 64 * 1024, 0x77);
	assert_int_equal(blockdev_flush(bs), 0);
	copy_file("crash.vhdx", "crashed.vhdx"); /* what a kill -9 here leaves */
	copy_file("crash.vhdx", "lost.vhdx");
	blockdev_close(bs);
	/* read-only: refused, naming the way out */
	assert_null(open_opts("crashed.vhdx", true, false, &err));
	assert_non_null(strstr(error_msg(err), "contains a log that needs to be replayed"));
	assert_non_null(strstr(error_msg(err), "check -r all"));
	error_free(err);
	/* read-write: replayed, then the log is empty */
	bs = imgfx_open("crashed.vhdx", "vhdx", NULL, false);
	imgfx_assert_reads(bs, 5 * VHDX_MIB, 64 * 1024, 0x77);
	blockdev_close(bs);
	log_guid_zero("crashed.vhdx", true);
	/* the BAT sector's write in place lost: the log brings it back */
	file_write("lost.vhdx", 2 * VHDX_MIB, zero, sizeof(zero));
	bs = imgfx_open("lost.vhdx", "vhdx", NULL, false);
	imgfx_assert_reads(bs, 5 * VHDX_MIB, 64 * 1024, 0x77);
	blockdev_close(bs);
}

static void truncated_image_is_refused(void **state)
{
	struct blockdev_check_result r;
	struct blockdev *bs;
	struct error *err = NULL;

	create("trunc.vhdx", 16 * VHDX_MIB, "block_size=1M");
	bs = imgfx_open("trunc.vhdx", "vhdx", NULL, false);
	imgfx_fill(bs, 0, 4096, 1);
	imgfx_fill(bs, 4 * VHDX_MIB, 4096, 2);
	blockdev_close(bs);
	assert_int_equal(truncate(imgfx_path("trunc.vhdx"), 9 * VHDX_MIB + 4096), 0);
	assert_null(open_opts("trunc.vhdx", true, false, &err));
	assert_non_null(strstr(error_msg(err), "BAT entry 4 (at 0x200020): block at 0x900000 "
					       "ends past the end of the file"));
	error_free(err);
	bs = open_opts("trunc.vhdx", false, true, NULL); /* check -r: opened to report it */
	assert_non_null(bs);
	assert_int_equal(blockdev_check(bs, 0, &r, NULL), 0);
	assert_int_equal(r.corruptions, 1);
	blockdev_close(bs);
}

static void fixed_image_writes_in_place(void **state)
{
	struct blockdev_extent e;
	struct blockdev *bs;
	uint64_t size;

	create("fixed.vhdx", 4 * VHDX_MIB, "subformat=fixed,block_state_zero=off,block_size=1M");
	bs = imgfx_open("fixed.vhdx", "vhdx", NULL, false);
	size = bs->file->size;
	assert_int_equal(size, 12 * VHDX_MIB);
	imgfx_fill(bs, 3 * VHDX_MIB, VHDX_MIB, 0x3f);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_READ, 3 * VHDX_MIB, 4096, &e), 0);
	assert_int_equal(e.host_offset, 11 * VHDX_MIB);
	/* a fixed disk keeps its blocks: discard punches the file under them */
	assert_int_equal(blockdev_write_zeroes(bs, 3 * VHDX_MIB, 4096, 0), 0);
	imgfx_assert_reads(bs, 3 * VHDX_MIB, 4096, 0);
	imgfx_assert_reads(bs, 3 * VHDX_MIB + 4096, VHDX_MIB - 4096, 0x3f);
	assert_int_equal(blockdev_discard(bs, 3 * VHDX_MIB, VHDX_MIB), 0);
	imgfx_assert_reads(bs, 3 * VHDX_MIB, VHDX_MIB, 0);
	assert_int_equal(blockdev_map(bs, BLOCKDEV_OP_READ, 3 * VHDX_MIB, 4096, &e), 0);
	assert_int_equal(e.kind, BLOCKDEV_EXTENT_DATA);
	blockdev_close(bs);
	bs = imgfx_open("fixed.vhdx", "vhdx", NULL, true);
	assert_int_equal(bs->file->size, size);
	blockdev_close(bs);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(crc32c_known_values),
		cmocka_unit_test(header_round_trip_and_refusals),
		cmocka_unit_test(current_header_is_the_valid_one_with_the_larger_sequence),
		cmocka_unit_test(geometry_of_a_new_image),
		cmocka_unit_test(region_table_copy_and_refusals),
		cmocka_unit_test(metadata_refusals),
		cmocka_unit_test(bat_check_finds_each_problem),
		cmocka_unit_test(log_replays_the_newest_complete_sequence),
		cmocka_unit_test(log_entry_may_wrap_at_the_end_of_the_log),
		cmocka_unit_test(log_refusals),
	};
	const struct CMUnitTest files[] = {
		cmocka_unit_test(reads_and_writes_across_blocks),
		cmocka_unit_test(two_writers_allocating_one_block),
		cmocka_unit_test(map_answers),
		cmocka_unit_test(a_crash_after_a_flush_is_replayed),
		cmocka_unit_test(truncated_image_is_refused),
		cmocka_unit_test(fixed_image_writes_in_place),
	};

	return cmocka_run_group_tests_name("vhdx parsers", pure, NULL, NULL) |
	       cmocka_run_group_tests_name("vhdx driver", files, files_setup, files_teardown);
}
