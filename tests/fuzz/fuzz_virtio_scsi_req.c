/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: virtio-scsi request and control request parsing (devices/virtio_scsi_req.c:
 * vscsi_parse_cmd, vscsi_parse_ctrl, vscsi_lun_decode) on chains popped by the real virtqueue
 * code from guest memory the input describes.
 *
 * Input: a 16-byte header, then the guest memory image (region 0 at GPA 0, padded to 0x200).
 *   0  u8  flags      0x01 control queue (else a request queue), 0x02 INDIRECT_DESC,
 *                     0x04 EVENT_IDX
 *   1  u8  cap        iovec entries per chain: 1 + cap % 64
 *   2  u8  split      the image's last (split * 64) bytes go to RAM region 1 (at 1 MiB), if any
 *   3  u8  (unused)
 *   4  u32 cdb_size   1 + cdb_size % VSCSI_CDB_SIZE_MAX (the config space's, as the driver set it)
 *   8  u32 sense_size sense_size % (VSCSI_SENSE_SIZE_MAX + 1)
 *  12  u32 (unused)
 * The queue has 16 entries: descriptors at 0x0, avail ring at 0x100, used ring at 0x140; the
 * guest's buffers live anywhere else in the image.
 *
 * Invariants: every error has a name; a response said to be writable (resp_ok) lies in RAM
 * with room for the whole response, and gets written; an accepted request's CDB is the first
 * MIN(cdb_size, SCSI_CDB_MAX) bytes, its data-out and data-in buffers lie in RAM, add up to
 * the readable and writable lengths past header and response, and are never both present; an
 * accepted control request has a known type. A LUN address decodes to its own target byte and
 * a LUN of at most 14 bits, or to no LUN.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec/virtio_scsi.h"
#include "common/util.h"
#include "devices/virtio_scsi.h"
#include "tests/fuzz/fuzz_vq.h"

#define HDR_SIZE 16

/* Writes a response of @len bytes at the start of @v as the device does; it must fit in RAM. */
static void write_resp(const struct iovec *v, unsigned int n, uint64_t len, const struct gmem *m)
{
	for (unsigned int i = 0; i < n && len; i++) {
		size_t k = (size_t)MIN(len, (uint64_t)v[i].iov_len);

		FUZZ_CHECK(v[i].iov_base && fuzz_gmem_owns(m, v[i].iov_base, k),
			   "response buffer %u (%zu bytes) is not inside RAM", i, k);
		memset(v[i].iov_base, 0xa5, k);
		len -= k;
	}
	FUZZ_CHECK(len == 0, "response said writable, %llu bytes short", (unsigned long long)len);
}

static void check_lun(const uint8_t lun[8])
{
	uint8_t target = 0xee;
	uint16_t l = 0;
	bool ok = vscsi_lun_decode(lun, &target, &l);

	FUZZ_CHECK(ok == (lun[0] == 1), "LUN byte 0 is %u, decode said %d", lun[0], ok);
	if (!ok)
		return;
	FUZZ_CHECK(target == lun[1], "target %u from byte %u", target, lun[1]);
	FUZZ_CHECK(l == VSCSI_NO_LUN || l <= 0x3fff, "LUN %u", l);
	FUZZ_CHECK(l == VSCSI_NO_LUN || (!lun[4] && !lun[5] && !lun[6] && !lun[7]),
		   "a LUN decoded from a second-level address");
}

/* A request-queue chain; returns the used length the device would report. */
static uint32_t one_cmd(const struct virtq_elem *e, uint32_t cdb_size, uint32_t sense_size,
			const struct gmem *m)
{
	unsigned int nr = e->nr_out + e->nr_in;
	uint64_t resp = VIRTIO_SCSI_RESP_HDR_SIZE + (uint64_t)sense_size;
	uint64_t hdr = VIRTIO_SCSI_REQ_HDR_SIZE + (uint64_t)cdb_size;
	struct vscsi_cmd_parsed p;
	struct iovec *data = malloc((nr ? nr : 1) * sizeof(*data)); /* the room the header asks */
	enum vscsi_err err;

	if (!data)
		abort();
	err = vscsi_parse_cmd(e, cdb_size, sense_size, data, &p);
	FUZZ_LOG("virtio_scsi_req: cmd chain %u: %s\n", e->head, vscsi_err_name(err));
	FUZZ_CHECK(strcmp(vscsi_err_name(err), "?"), "no name for %d", err);
	if (err == VSCSI_OK) {
		FUZZ_CHECK(p.resp_ok, "request accepted without room for its response");
		FUZZ_CHECK(p.cdb_len == MIN(cdb_size, (uint32_t)SCSI_CDB_MAX), "CDB of %u bytes",
			   p.cdb_len);
		FUZZ_CHECK(p.dout_cnt + p.din_cnt <= nr, "%u + %u data buffers from %u",
			   p.dout_cnt, p.din_cnt, nr);
		FUZZ_CHECK(p.dout_len == e->out_len - hdr && p.din_len == e->in_len - resp,
			   "data lengths %llu/%llu", (unsigned long long)p.dout_len,
			   (unsigned long long)p.din_len);
		FUZZ_CHECK(!(p.dout_len && p.din_len), "bidirectional request accepted");
		FUZZ_CHECK(fuzz_iov_total(p.dout, p.dout_cnt, false, m) == p.dout_len,
			   "data-out buffers do not add up to %llu", (unsigned long long)p.dout_len);
		FUZZ_CHECK(fuzz_iov_total(p.din, p.din_cnt, true, m) == p.din_len,
			   "data-in buffers do not add up to %llu", (unsigned long long)p.din_len);
		check_lun(p.lun);
	}
	free(data);
	if (!p.resp_ok)
		return 0;
	write_resp(p.resp, p.resp_cnt, resp, m);
	return (uint32_t)resp;
}

/* A control-queue chain; returns the used length. */
static uint32_t one_ctrl(const struct virtq_elem *e, const struct gmem *m)
{
	struct vscsi_ctrl_parsed p;
	enum vscsi_err err = vscsi_parse_ctrl(e, &p);
	uint32_t resp;

	FUZZ_LOG("virtio_scsi_req: ctrl chain %u type %u: %s\n", e->head, p.type,
		 vscsi_err_name(err));
	FUZZ_CHECK(strcmp(vscsi_err_name(err), "?"), "no name for %d", err);
	if (err != VSCSI_OK) {
		FUZZ_CHECK(!p.resp_ok || err == VSCSI_ERR_SHORT_HDR || err == VSCSI_ERR_FAULT,
			   "%s with a writable response", vscsi_err_name(err));
		if (!p.resp_ok)
			return 0;
		/* the device answers a failed function: the response byte of a TMF or an AN */
		resp = p.type == VIRTIO_SCSI_T_TMF ? 1 : VIRTIO_SCSI_AN_RESP_SIZE;
		write_resp(p.resp, p.resp_cnt, resp, m);
		return resp;
	}
	FUZZ_CHECK(p.type == VIRTIO_SCSI_T_TMF || p.type == VIRTIO_SCSI_T_AN_QUERY ||
		   p.type == VIRTIO_SCSI_T_AN_SUBSCRIBE, "control type %u accepted", p.type);
	FUZZ_CHECK(p.resp_ok, "control request accepted without room for its response");
	resp = p.type == VIRTIO_SCSI_T_TMF ? 1 : VIRTIO_SCSI_AN_RESP_SIZE;
	write_resp(p.resp, p.resp_cnt, resp, m);
	check_lun(p.lun);
	return resp;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint32_t cdb_size, sense_size;
	struct fuzz_vq f;
	uint8_t flags, split, cap;
	int r;

	if (size < HDR_SIZE)
		return 0;
	flags = fuzz_u8(&in);
	cap = fuzz_u8(&in);
	split = fuzz_u8(&in);
	(void)fuzz_u8(&in);
	cdb_size = 1 + fuzz_u32(&in) % VSCSI_CDB_SIZE_MAX;
	sense_size = fuzz_u32(&in) % (VSCSI_SENSE_SIZE_MAX + 1);
	(void)fuzz_u32(&in);
	fuzz_vq_start(&f, &in, split, 1 + cap % 64, flags & 0x04, flags & 0x02);

	for (unsigned int chains = 0; (r = virtq_pop(&f.vq, &f.e)) == 1; chains++) {
		uint32_t used;

		FUZZ_CHECK(chains < FUZZ_VQ_SIZE, "more chains than the queue holds");
		used = flags & 0x01 ? one_ctrl(&f.e, &f.m)
				    : one_cmd(&f.e, cdb_size, sense_size, &f.m);
		virtq_push(&f.vq, f.e.head, used);
	}
	fuzz_vq_finish(&f, r);
	return 0;
}
