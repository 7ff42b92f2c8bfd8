/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the VHDX log (blockdev/vhdx_log.c: vhdx_log_find, vhdx_log_replay) on a file
 * built in memory (fuzz_vhdx.h; option bit 0 fixes every log entry's checksum so that
 * mutations of descriptors and data sectors are looked at, bit 1 replays what is found).
 *
 * Invariants: a refusal carries a message; an active sequence found is consistent (its tail
 * and head on 4 KiB boundaries inside the log, as many entries as their sequence numbers span,
 * the head no older than the tail); a replay never writes the header section or the log.
 */
#include "blockdev/vhdx_log.h"
#include "tests/fuzz/fuzz_vhdx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_vhdx f;
	struct vhdx_io io;
	struct vhdx_meta m;
	struct vhdx_log_seq seq;
	struct error *err = NULL;
	/* the header section and the log as they were (made once: see fuzz_vhdx.h on speed) */
	static uint8_t *before;
	uint64_t hs;

	if (!fuzz_vhdx_build(&f, data, size))
		return 0;
	io = fuzz_vhdx_io(&f);
	memset(&m, 0, sizeof(m));
	if (vhdx_headers_load(&io, &m, NULL))
		goto out;
	if (vhdx_log_find(&io, &m.hdr, &seq, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "refused without a message");
		FUZZ_LOG("vhdx_log: %s\n", error_msg(err));
		goto out;
	}
	if (!seq.found)
		goto out;
	FUZZ_CHECK(seq.tail.pos % 4096 == 0 && seq.tail.pos < m.hdr.log_length &&
		   seq.head.pos % 4096 == 0 && seq.head.pos < m.hdr.log_length, "entry positions");
	FUZZ_CHECK(seq.head.seq >= seq.tail.seq && seq.count >= 1 &&
		   seq.head.seq - seq.tail.seq + 1 == seq.count, "sequence %llu..%llu of %u",
		   (unsigned long long)seq.tail.seq, (unsigned long long)seq.head.seq, seq.count);
	FUZZ_LOG("vhdx_log: %u entries to replay\n", seq.count);
	if (!(f.opt & 2))
		goto out;
	/* what the replay must leave alone: the header section and the log */
	hs = f.size < VHDX_HEADER_SECTION ? f.size : VHDX_HEADER_SECTION;
	if (!before && !(before = malloc(VHDX_HEADER_SECTION + FUZZ_VHDX_MAX)))
		abort();
	memcpy(before, f.b, hs);
	memcpy(before + hs, f.b + m.hdr.log_offset, m.hdr.log_length);
	if (vhdx_log_replay(&io, &m.hdr, &seq, &err)) {
		FUZZ_CHECK(err && error_msg(err)[0], "replay refused without a message");
		FUZZ_LOG("vhdx_log: replay: %s\n", error_msg(err));
	}
	FUZZ_CHECK(!memcmp(before, f.b, hs), "the replay wrote the header section");
	FUZZ_CHECK(!memcmp(before + hs, f.b + m.hdr.log_offset, m.hdr.log_length),
		   "the replay wrote the log");
out:
	error_free(err);
	return 0;
}
