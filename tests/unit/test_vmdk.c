/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmdk: hostile sparse headers, stream footers and descriptors are refused with a message
 * naming what is wrong; hostile images (tables past the end, overlapping tables, grains on
 * metadata, extents escaping the descriptor's directory, loops) are refused at open or fail
 * their reads with -EIO, never crash; good images of each subformat read back what was
 * written, and a stream file written twice keeps both writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "blockdev/blockdev.h"
#include "blockdev/create.h"
#include "blockdev/vmdk.h"
#include "blockdev/vmdk_format.h"

static char dir[64];

static int make_dir(void **state)
{
	strcpy(dir, "/tmp/vireo-test-vmdk.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int remove_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static char *path(const char *name)
{
	static char p[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static void put_file(const char *name, const void *data, size_t len)
{
	FILE *f = fopen(path(name), "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void must_contain(const struct error *err, const char *what)
{
	assert_non_null(err);
	if (!strstr(error_msg(err), what))
		fail_msg("message '%s' does not say '%s'", error_msg(err), what);
}

/* ---- the sparse header ------------------------------------------------------------------------- */

static uint8_t sector[3 * 512];

/* A valid 100 MiB header: directory at 21 (4 tables), as qemu-img lays it out. */
static struct vmdk_header good_header(void)
{
	return (struct vmdk_header){
		.version = 1, .flags = VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD, .capacity = 204800,
		.grain_size = 128, .desc_offset = 1, .desc_size = 20, .gtes_per_gt = 512,
		.rgd_offset = 21, .gd_offset = 38, .overhead = 128,
	};
}

static void header_refused(const struct vmdk_header *h, uint64_t fsize, const char *what)
{
	struct vmdk_header out;
	struct error *err = NULL;

	vmdk_header_put(h, sector);
	assert_int_equal(vmdk_header_parse(sector, 512, fsize, &out, &err), -1);
	must_contain(err, what);
	error_free(err);
}

static void good_headers_parse_and_round_trip(void **state)
{
	struct vmdk_header h = good_header(), out;

	vmdk_header_put(&h, sector);
	assert_int_equal(vmdk_header_parse(sector, 512, 65536, &out, NULL), 0);
	assert_int_equal(out.version, h.version);
	assert_int_equal(out.flags, h.flags);
	assert_int_equal(out.capacity, h.capacity);
	assert_int_equal(out.grain_size, h.grain_size);
	assert_int_equal(out.desc_offset, h.desc_offset);
	assert_int_equal(out.desc_size, h.desc_size);
	assert_int_equal(out.gtes_per_gt, h.gtes_per_gt);
	assert_int_equal(out.rgd_offset, h.rgd_offset);
	assert_int_equal(out.gd_offset, h.gd_offset);
	assert_int_equal(out.overhead, h.overhead);
	assert_int_equal(vmdk_gd_entries(&out), 4);
}

static void hostile_headers_are_refused_naming_the_field(void **state)
{
	struct vmdk_header h;
	struct vmdk_header out;
	struct error *err = NULL;

	assert_int_equal(vmdk_header_parse(sector, 100, 65536, &out, &err), -1);
	must_contain(err, "truncated");
	error_free(err);
	err = NULL;
	memset(sector, 0, 512);
	assert_int_equal(vmdk_header_parse(sector, 512, 65536, &out, &err), -1);
	must_contain(err, "magic");
	error_free(err);
	err = NULL;

	h = good_header(), h.version = 4, header_refused(&h, 65536, "version 4");
	h = good_header(), h.grain_size = 96, header_refused(&h, 65536, "grain size");
	h = good_header(), h.grain_size = 4096, header_refused(&h, 65536, "grain size");
	h = good_header(), h.grain_size = 0, header_refused(&h, 65536, "grain size");
	h = good_header(), h.gtes_per_gt = 0, header_refused(&h, 65536, "per grain table");
	h = good_header(), h.gtes_per_gt = 513, header_refused(&h, 65536, "per grain table");
	h = good_header(), h.capacity = 1ULL << 50, header_refused(&h, 65536, "capacity");
	h = good_header(), h.gd_offset = 1000, header_refused(&h, 65536, "past the end");
	h = good_header(), h.gd_offset = 0, header_refused(&h, 65536, "overlap the header");
	h = good_header(), h.rgd_offset = 38, header_refused(&h, 65536, "overlap");
	h = good_header(), h.gd_offset = 5, header_refused(&h, 65536, "embedded descriptor");
	h = good_header(), h.desc_size = 4096, header_refused(&h, 65536, "embedded descriptor");
	h = good_header(), h.desc_offset = 200, header_refused(&h, 65536, "embedded descriptor");
	h = good_header(), h.gd_offset = UINT64_MAX / 256, header_refused(&h, 65536, "past the end");
	/* a directory that would hold 2^26 entries is refused before anything is allocated */
	h = good_header(), h.capacity = 1ULL << 41, h.grain_size = 1, h.gtes_per_gt = 1;
	header_refused(&h, 1ULL << 40, "entries");
	h = good_header(), h.flags |= VMDK_FLAG_COMPRESS, h.compress = 2;
	header_refused(&h, 65536, "compression");
	/* newline bytes mangled by a text-mode copy */
	h = good_header();
	vmdk_header_put(&h, sector);
	sector[75] = '\n';
	assert_int_equal(vmdk_header_parse(sector, 512, 65536, &out, &err), -1);
	must_contain(err, "newline");
	error_free(err);
}

static void stream_footers_are_checked(void **state)
{
	struct vmdk_header h = good_header(), out;
	struct error *err = NULL;

	memset(sector, 0, sizeof(sector));
	h.gd_offset = 40;
	vmdk_marker_put(sector, 1, VMDK_MARKER_FOOTER);
	vmdk_header_put(&h, sector + 512);
	assert_int_equal(vmdk_footer_parse(sector, sizeof(sector), 65536, &out, NULL), 0);
	assert_int_equal(out.gd_offset, 40);
	/* no footer marker */
	vmdk_marker_put(sector, 1, VMDK_MARKER_GD);
	assert_int_equal(vmdk_footer_parse(sector, sizeof(sector), 65536, &out, &err), -1);
	must_contain(err, "footer's marker");
	error_free(err);
	err = NULL;
	/* no end-of-stream marker */
	vmdk_marker_put(sector, 1, VMDK_MARKER_FOOTER);
	sector[1024 + 12] = 7;
	assert_int_equal(vmdk_footer_parse(sector, sizeof(sector), 65536, &out, &err), -1);
	must_contain(err, "end-of-stream");
	error_free(err);
	err = NULL;
	/* a footer that still says "at the end" */
	sector[1024 + 12] = 0;
	h.gd_offset = VMDK_GD_AT_END;
	vmdk_header_put(&h, sector + 512);
	assert_int_equal(vmdk_footer_parse(sector, sizeof(sector), 65536, &out, &err), -1);
	must_contain(err, "where the grain directory is");
	error_free(err);
	err = NULL;
	assert_int_equal(vmdk_footer_parse(sector, 1000, 65536, &out, &err), -1);
	must_contain(err, "too short");
	error_free(err);
}

/* ---- the descriptor ---------------------------------------------------------------------------- */

static const char good_desc[] =
	"# Disk DescriptorFile\nversion=1\nCID=97e1145\nparentCID=ffffffff\n"
	"createType=\"twoGbMaxExtentFlat\"\n\n# Extent description\n"
	"RW 4194304 FLAT \"d-f001.vmdk\" 0\nRDONLY 100 SPARSE \"d s002.vmdk\"\nRW 28 ZERO\n"
	"\n#DDB\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n";

static void desc_refused(const char *text, const char *what)
{
	struct vmdk_desc d;
	struct error *err = NULL;

	if (vmdk_desc_parse(text, strlen(text), &d, &err) != -1)
		fail_msg("accepted: %s", text);
	must_contain(err, what);
	error_free(err);
	vmdk_desc_free(&d);
}

static void descriptors_parse(void **state)
{
	struct vmdk_desc d;

	assert_int_equal(vmdk_desc_parse(good_desc, sizeof(good_desc), &d, NULL), 0);
	assert_int_equal(d.version, 1);
	assert_int_equal(d.cid, 0x97e1145);
	assert_int_equal(d.parent_cid, 0xffffffff);
	assert_string_equal(d.create_type, "twoGbMaxExtentFlat");
	assert_null(d.parent_hint);
	assert_int_equal(d.nr_extents, 3);
	assert_int_equal(d.extents[0].type, VMDK_EXTENT_FLAT);
	assert_string_equal(d.extents[0].filename, "d-f001.vmdk");
	assert_int_equal(d.extents[1].access, VMDK_ACCESS_RDONLY);
	assert_string_equal(d.extents[1].filename, "d s002.vmdk");
	assert_int_equal(d.extents[2].type, VMDK_EXTENT_ZERO);
	assert_null(d.extents[2].filename);
	assert_int_equal(d.capacity, 4194304 + 100 + 28);
	vmdk_desc_free(&d);
}

static void hostile_descriptors_are_refused_naming_the_line(void **state)
{
	char big[200000];
	size_t n;

	desc_refused("# Disk DescriptorFile\nCID=1\n", "no version");
	desc_refused("version=9\n", "version '9'");
	desc_refused("version=1\nCID=xyz\n", "CID 'xyz'");
	desc_refused("version=1\nCID=123456789\n", "CID");
	desc_refused("version=1\nRW 100 FLAT \"a\" 0\nRW 18446744073709551616 FLAT \"b\" 0\n",
		     "line 3");
	desc_refused("version=1\nRW 100 BOGUS \"a\"\n", "unknown extent type 'BOGUS'");
	desc_refused("version=1\nRW 100 FLAT a 0\n", "not in quotes");
	desc_refused("version=1\nRW 100 FLAT \"a 0\n", "no closing quote");
	desc_refused("version=1\nRW 100 FLAT \"\" 0\n", "empty");
	desc_refused("version=1\nRW 100 FLAT \"a\tb\" 0\n", "control character");
	desc_refused("version=1\nRW 100 SPARSE \"a\" 7\n", "after a SPARSE extent");
	desc_refused("version=1\nRW 100 FLAT \"a\" x\n", "offset 'x'");
	desc_refused("version=1\nRW 100 FLAT \"a\" 0 junk\n", "unexpected 'junk'");
	desc_refused("version=1\njust some words\n", "line 2");
	desc_refused("version=1\nRW 2199023255552 FLAT \"a\" 0\nRW 2 FLAT \"b\" 0\n", "add up");
	/* more extents than the bound */
	n = (size_t)snprintf(big, sizeof(big), "version=1\n");
	while (n + 20 < sizeof(big))
		n += (size_t)snprintf(big + n, sizeof(big) - n, "RW 1 ZERO\n");
	desc_refused(big, "more than");
}

static void extent_paths_stay_beside_the_descriptor(void **state)
{
	assert_true(vmdk_extent_path_ok("a.vmdk"));
	assert_true(vmdk_extent_path_ok("sub/a.vmdk"));
	assert_true(vmdk_extent_path_ok("sub/../a.vmdk"));
	assert_true(vmdk_extent_path_ok("./a..b.vmdk"));
	assert_false(vmdk_extent_path_ok("/etc/passwd"));
	assert_false(vmdk_extent_path_ok("../a.vmdk"));
	assert_false(vmdk_extent_path_ok("sub/../../a.vmdk"));
	assert_false(vmdk_extent_path_ok("./../a"));
}

static void a_first_write_rewrites_only_the_cid(void **state)
{
	size_t len;
	char *t = vmdk_desc_set_cid(good_desc, sizeof(good_desc), 0xabcdef12, &len);
	struct vmdk_desc d;

	assert_non_null(t);
	assert_non_null(strstr(t, "\nCID=abcdef12\nparentCID=ffffffff\n"));
	assert_int_equal(vmdk_desc_parse(t, len, &d, NULL), 0);
	assert_int_equal(d.cid, 0xabcdef12);
	assert_int_equal(d.nr_extents, 3);
	vmdk_desc_free(&d);
	free(t);
	assert_null(vmdk_desc_set_cid("version=1\n", 10, 1, &len));
}

/* ---- hostile images through the driver --------------------------------------------------------- */

static struct blockdev *open_img(const char *name, bool readonly, const char *key,
				 const char *value, struct error **err)
{
	struct blockdev_opts o = { 0 };
	struct blockdev *bs;

	assert_int_equal(blockdev_opts_set(&o, "format", "vmdk", NULL), 0);
	if (readonly)
		o.readonly = true;
	if (key)
		assert_int_equal(blockdev_opts_set(&o, key, value, NULL), 0);
	bs = blockdev_open(path(name), &o, err);
	blockdev_opts_free(&o);
	return bs;
}

static void refused_open(const char *name, const char *what)
{
	struct error *err = NULL;
	struct blockdev *bs = open_img(name, true, NULL, NULL, &err);

	if (bs)
		fail_msg("'%s' opened", name);
	must_contain(err, what);
	error_free(err);
}

/* A 10 MiB sparse file as qemu-img makes it (one table), with @edit applied to its bytes. */
static uint8_t img[65536];

static void sparse_img(void)
{
	struct vmdk_header h = good_header();

	memset(img, 0, sizeof(img));
	h.capacity = 20480;
	h.desc_offset = 1;
	h.desc_size = 20;
	h.rgd_offset = 21;
	h.gd_offset = 26;
	vmdk_header_put(&h, img);
	snprintf((char *)img + 512, 10240, "# Disk DescriptorFile\nversion=1\nCID=1\n"
		 "parentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 20480 SPARSE \"x\"\n");
	img[21 * 512] = 22; /* rgd -> table at 22 */
	img[26 * 512] = 27; /* gd -> table at 27 */
}

static void le32_at(size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		img[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void read_fails(const char *name, uint64_t off)
{
	struct error *err = NULL;
	struct blockdev *bs = open_img(name, true, NULL, NULL, &err);
	uint8_t buf[4096];

	if (!bs)
		fail_msg("refused: %s", error_msg(err));
	assert_int_equal(blockdev_pread(bs, off, buf, sizeof(buf)), -EIO);
	blockdev_close(bs);
}

static void hostile_tables_are_refused(void **state)
{
	sparse_img();
	put_file("good.vmdk", img, sizeof(img));
	{
		struct blockdev *bs = open_img("good.vmdk", true, NULL, NULL, NULL);
		uint8_t buf[512];

		assert_non_null(bs);
		assert_int_equal(bs->size, 20480 * 512);
		assert_int_equal(blockdev_pread(bs, 4096, buf, sizeof(buf)), 0);
		blockdev_close(bs);
	}
	sparse_img();
	le32_at(26 * 512, 1000); /* the table past the end */
	put_file("gt-past-end.vmdk", img, sizeof(img));
	refused_open("gt-past-end.vmdk", "past the end of the file");

	sparse_img();
	le32_at(26 * 512, 22); /* the table on the redundant table */
	put_file("gt-overlap.vmdk", img, sizeof(img));
	refused_open("gt-overlap.vmdk", "overlap");

	sparse_img();
	le32_at(26 * 512, 21); /* the table on the redundant directory */
	put_file("gt-on-rgd.vmdk", img, sizeof(img));
	refused_open("gt-on-rgd.vmdk", "redundant grain directory");

	sparse_img();
	le32_at(27 * 512 + 8, 26); /* grain 2 on the directory: its read fails, nothing else */
	put_file("grain-on-gd.vmdk", img, sizeof(img));
	read_fails("grain-on-gd.vmdk", 2 * 65536);

	sparse_img();
	le32_at(27 * 512 + 4, 100000); /* grain 1 past the end of the file */
	put_file("grain-past-end.vmdk", img, sizeof(img));
	read_fails("grain-past-end.vmdk", 65536);

	sparse_img();
	le32_at(27 * 512, 1); /* entry 1 without the zeroed-grain flag: the descriptor's sector */
	put_file("grain-one.vmdk", img, sizeof(img));
	read_fails("grain-one.vmdk", 0);

	sparse_img();
	snprintf((char *)img + 512, 10240, "version=1\nCID=1\nparentCID=12345678\n"
		 "parentFileNameHint=\"base.vmdk\"\ncreateType=\"monolithicSparse\"\n");
	put_file("parent.vmdk", img, sizeof(img));
	refused_open("parent.vmdk", "parent");

	sparse_img();
	snprintf((char *)img + 512, 10240, "version=1\nCID=zz\n");
	put_file("bad-desc.vmdk", img, sizeof(img));
	refused_open("bad-desc.vmdk", "embedded descriptor");
}

static void compressed_grains_are_bounded(void **state)
{
	struct vmdk_header h;

	/* one compressed grain whose marker claims 100 MB */
	sparse_img();
	h = good_header();
	h.capacity = 20480;
	h.rgd_offset = 21;
	h.gd_offset = 26;
	h.version = 3;
	h.flags |= VMDK_FLAG_COMPRESS | VMDK_FLAG_MARKERS;
	h.compress = VMDK_COMPRESS_DEFLATE;
	vmdk_header_put(&h, img);
	le32_at(27 * 512, 64);
	le32_at(64 * 512 + 8, 100000000);
	put_file("huge-grain.vmdk", img, sizeof(img));
	read_fails("huge-grain.vmdk", 0);
	/* a marker with garbage instead of a zlib stream */
	le32_at(64 * 512 + 8, 100);
	memset(img + 64 * 512 + 12, 0x5a, 100);
	put_file("garbage-grain.vmdk", img, sizeof(img));
	read_fails("garbage-grain.vmdk", 0);
}

static void descriptor_file(const char *name, const char *extents)
{
	char text[4096];

	snprintf(text, sizeof(text), "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n"
		 "createType=\"monolithicFlat\"\n%s", extents);
	put_file(name, text, strlen(text));
}

static void extents_must_stay_beside_the_descriptor(void **state)
{
	static const uint8_t zero[4096];
	char line[512];
	struct blockdev *bs;
	struct error *err = NULL;

	put_file("flat.img", zero, sizeof(zero));
	descriptor_file("ok.vmdk", "RW 8 FLAT \"flat.img\" 0\n");
	bs = open_img("ok.vmdk", true, NULL, NULL, NULL);
	assert_non_null(bs);
	assert_int_equal(bs->size, 4096);
	blockdev_close(bs);

	snprintf(line, sizeof(line), "RW 8 FLAT \"%s\" 0\n", path("flat.img"));
	descriptor_file("absolute.vmdk", line);
	refused_open("absolute.vmdk", "extents-outside=on");
	bs = open_img("absolute.vmdk", true, "extents-outside", "on", &err);
	assert_non_null(bs);
	blockdev_close(bs);

	descriptor_file("climb.vmdk", "RW 8 FLAT \"../flat.img\" 0\n");
	refused_open("climb.vmdk", "climbs out");

	/* a link inside the directory pointing out of it */
	unlink(path("link.img"));
	assert_int_equal(symlink("/etc/hostname", path("link.img")), 0);
	descriptor_file("symlink.vmdk", "RW 8 FLAT \"link.img\" 0\n");
	refused_open("symlink.vmdk", "outside the descriptor's directory");

	descriptor_file("self.vmdk", "RW 8 FLAT \"self.vmdk\" 0\n");
	refused_open("self.vmdk", "the descriptor file itself");

	descriptor_file("twice.vmdk", "RW 8 FLAT \"flat.img\" 0\nRW 8 FLAT \"flat.img\" 4\n");
	refused_open("twice.vmdk", "overlapping");
	descriptor_file("apart.vmdk", "RW 4 FLAT \"flat.img\" 0\nRW 4 FLAT \"flat.img\" 4\n");
	bs = open_img("apart.vmdk", true, NULL, NULL, NULL);
	assert_non_null(bs);
	blockdev_close(bs);

	descriptor_file("cowd.vmdk", "RW 8 VMFSSPARSE \"flat.img\"\n");
	refused_open("cowd.vmdk", "VMFSSPARSE");
	descriptor_file("noaccess.vmdk", "NOACCESS 8 FLAT \"flat.img\" 0\n");
	refused_open("noaccess.vmdk", "NOACCESS");
	descriptor_file("none.vmdk", "");
	refused_open("none.vmdk", "no extent");
	put_file("device.vmdk", "version=1\ncreateType=\"fullDevice\"\nRW 8 FLAT \"/dev/sda\" 0\n",
		 58);
	refused_open("device.vmdk", "fullDevice");
	/* a read-only extent: the image opens read-only only */
	descriptor_file("rdonly.vmdk", "RDONLY 8 FLAT \"flat.img\" 0\n");
	bs = open_img("rdonly.vmdk", false, NULL, NULL, &err);
	assert_null(bs);
	must_contain(err, "RDONLY");
	error_free(err);
}

/* ---- good images: create, write, read back ----------------------------------------------------- */

static int create(const char *name, const char *subformat, uint64_t size)
{
	struct blockdev_opt o = { "subformat", (char *)subformat };
	struct blockdev_create_ctx ctx;
	struct error *err = NULL;
	int ret = blockdev_create_prepare(&ctx, &blockdev_vmdk, path(name), size, &o, 1, &err) ?:
		  blockdev_create_run(&ctx, &err);

	if (ret)
		fail_msg("create %s: %s", subformat, error_msg(err));
	blockdev_create_free(&ctx);
	return ret;
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static void each_subformat_reads_back_what_was_written(void **state)
{
	static const char *const subformats[] = { "monolithicSparse", "monolithicFlat",
						  "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
						  "streamOptimized" };
	static uint8_t w[300000], r[300000];
	/* a write across the 2 GiB extent boundary, one inside a grain, one grain-aligned */
	static const uint64_t offs[] = { 2 * 1024ULL * 1024 * 1024 - 100000, 5000, 1 << 20 };

	for (size_t s = 0; s < sizeof(subformats) / sizeof(subformats[0]); s++) {
		bool stream = !strcmp(subformats[s], "streamOptimized");
		char name[64];

		snprintf(name, sizeof(name), "%s.vmdk", subformats[s]);
		create(name, subformats[s], 3 * 1024ULL * 1024 * 1024);
		for (int pass = 0; pass < 2; pass++) {
			struct blockdev *bs = open_img(name, false, stream ? "metadata-barriers" : NULL,
						       "off", NULL);

			assert_non_null(bs);
			for (size_t i = 0; i < 3; i++) {
				pattern(w, sizeof(w), (unsigned)(i + 10 * pass));
				assert_int_equal(blockdev_pwrite(bs, offs[i] + (uint64_t)pass * 4096,
								 w, sizeof(w) - 1000 * i), 0);
			}
			blockdev_close(bs);
		}
		{
			struct blockdev *bs = open_img(name, true, NULL, NULL, NULL);

			assert_non_null(bs);
			for (size_t i = 0; i < 3; i++) {
				size_t n = sizeof(w) - 1000 * i;

				pattern(w, sizeof(w), (unsigned)(i + 10));
				assert_int_equal(blockdev_pread(bs, offs[i] + 4096, r, n), 0);
				if (memcmp(w, r, n))
					fail_msg("%s: write %zu reads back wrong", subformats[s], i);
				/* the first pass's bytes before the second's */
				pattern(w, sizeof(w), (unsigned)i);
				assert_int_equal(blockdev_pread(bs, offs[i], r, 4096), 0);
				assert_memory_equal(w, r, 4096);
			}
			blockdev_close(bs);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_headers_parse_and_round_trip),
		cmocka_unit_test(hostile_headers_are_refused_naming_the_field),
		cmocka_unit_test(stream_footers_are_checked),
		cmocka_unit_test(descriptors_parse),
		cmocka_unit_test(hostile_descriptors_are_refused_naming_the_line),
		cmocka_unit_test(extent_paths_stay_beside_the_descriptor),
		cmocka_unit_test(a_first_write_rewrites_only_the_cid),
		cmocka_unit_test(hostile_tables_are_refused),
		cmocka_unit_test(compressed_grains_are_bounded),
		cmocka_unit_test(extents_must_stay_beside_the_descriptor),
		cmocka_unit_test(each_subformat_reads_back_what_was_written),
	};

	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
