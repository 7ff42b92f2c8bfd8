/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-scsi request and control request parsing: pure functions of a popped chain (see
 * virtio_scsi.h). Headers are copied out of guest memory before they are looked at.
 */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "devices/virtio_scsi.h"

static const char *const err_names[] = {
	[VSCSI_OK] = "ok",
	[VSCSI_ERR_CHAIN] = "malformed descriptor chain",
	[VSCSI_ERR_FAULT] = "buffer outside guest memory",
	[VSCSI_ERR_SHORT_RESP] = "writable part shorter than the response",
	[VSCSI_ERR_SHORT_HDR] = "readable part shorter than the header",
	[VSCSI_ERR_BIDI] = "both data-out and data-in buffers",
	[VSCSI_ERR_CTRL_TYPE] = "unknown control request type",
};

const char *vscsi_err_name(enum vscsi_err err)
{
	return (unsigned int)err < ARRAY_SIZE(err_names) ? err_names[err] : "?";
}

/* Whether the first @len bytes of @iov (@cnt entries) exist and are all guest memory. */
static bool iov_holds(const struct iovec *iov, unsigned int cnt, uint64_t len)
{
	for (unsigned int i = 0; i < cnt && len; i++) {
		if (!iov[i].iov_base)
			return false;
		len -= MIN(len, (uint64_t)iov[i].iov_len);
	}
	return len == 0;
}

static bool iov_all_mapped(const struct iovec *iov, unsigned int cnt)
{
	for (unsigned int i = 0; i < cnt; i++)
		if (!iov[i].iov_base)
			return false;
	return true;
}

/* The writable part of @e: where the response goes; resp_ok when @need bytes of it exist. */
static void locate_resp(const struct virtq_elem *e, uint64_t need, struct iovec **resp,
			unsigned int *cnt, bool *ok)
{
	*resp = e->iov + e->nr_out;
	*cnt = e->nr_in;
	/* a chain cut short (loop, bad index, too long) has an unknown shape: no response */
	*ok = (e->err == 0 || e->err == -EFAULT) && e->in_len >= need &&
	      iov_holds(*resp, *cnt, need);
}

enum vscsi_err vscsi_parse_cmd(const struct virtq_elem *e, uint32_t cdb_size,
			       uint32_t sense_size, struct iovec *data,
			       struct vscsi_cmd_parsed *p)
{
	uint64_t hdr = VIRTIO_SCSI_REQ_HDR_SIZE + (uint64_t)cdb_size;
	uint64_t resp = VIRTIO_SCSI_RESP_HDR_SIZE + (uint64_t)sense_size;
	uint8_t h[VIRTIO_SCSI_REQ_HDR_SIZE + SCSI_CDB_MAX];
	uint64_t take = MIN(hdr, (uint64_t)sizeof(h));

	memset(p, 0, sizeof(*p));
	locate_resp(e, resp, &p->resp, &p->resp_cnt, &p->resp_ok);
	if (e->err && e->err != -EFAULT)
		return VSCSI_ERR_CHAIN;
	if (!p->resp_ok)
		return e->in_len < resp ? VSCSI_ERR_SHORT_RESP : VSCSI_ERR_FAULT;
	if (e->out_len < hdr)
		return VSCSI_ERR_SHORT_HDR;
	if (!iov_holds(e->iov, e->nr_out, take))
		return VSCSI_ERR_FAULT;
	vioq_iov_to_buf(e->iov, e->nr_out, 0, h, take);
	memcpy(p->lun, h, 8);
	p->tag = vio_le64(h + 8);
	p->task_attr = h[16];
	p->prio = h[17];
	p->crn = h[18];
	p->cdb_len = (uint8_t)(take - VIRTIO_SCSI_REQ_HDR_SIZE);
	memcpy(p->cdb, h + VIRTIO_SCSI_REQ_HDR_SIZE, p->cdb_len);
	p->dout = data;
	p->dout_cnt = vioq_iov_tail(e->iov, e->nr_out, hdr, p->dout);
	p->dout_len = e->out_len - hdr;
	p->din = data + p->dout_cnt;
	p->din_cnt = vioq_iov_tail(p->resp, p->resp_cnt, resp, p->din);
	p->din_len = e->in_len - resp;
	if (!iov_all_mapped(p->dout, p->dout_cnt) || !iov_all_mapped(p->din, p->din_cnt))
		return VSCSI_ERR_FAULT;
	if (p->dout_len && p->din_len)
		return VSCSI_ERR_BIDI;
	return VSCSI_OK;
}

enum vscsi_err vscsi_parse_ctrl(const struct virtq_elem *e, struct vscsi_ctrl_parsed *p)
{
	uint8_t h[VIRTIO_SCSI_TMF_SIZE];
	uint64_t need, resp;

	memset(p, 0, sizeof(*p));
	locate_resp(e, 1, &p->resp, &p->resp_cnt, &p->resp_ok);
	p->resp_ok = false;
	if (e->err && e->err != -EFAULT)
		return VSCSI_ERR_CHAIN;
	if (e->out_len < 4 || !iov_holds(e->iov, e->nr_out, 4))
		return e->out_len < 4 ? VSCSI_ERR_SHORT_HDR : VSCSI_ERR_FAULT;
	vioq_iov_to_buf(e->iov, e->nr_out, 0, h, 4);
	p->type = vio_le32(h);
	switch (p->type) {
	case VIRTIO_SCSI_T_TMF:
		need = VIRTIO_SCSI_TMF_SIZE;
		resp = 1;
		break;
	case VIRTIO_SCSI_T_AN_QUERY:
	case VIRTIO_SCSI_T_AN_SUBSCRIBE:
		need = VIRTIO_SCSI_AN_SIZE;
		resp = VIRTIO_SCSI_AN_RESP_SIZE;
		break;
	default:
		return VSCSI_ERR_CTRL_TYPE;
	}
	locate_resp(e, resp, &p->resp, &p->resp_cnt, &p->resp_ok);
	if (!p->resp_ok)
		return e->in_len < resp ? VSCSI_ERR_SHORT_RESP : VSCSI_ERR_FAULT;
	if (e->out_len < need)
		return VSCSI_ERR_SHORT_HDR;
	if (!iov_holds(e->iov, e->nr_out, need))
		return VSCSI_ERR_FAULT;
	vioq_iov_to_buf(e->iov, e->nr_out, 0, h, need);
	if (p->type == VIRTIO_SCSI_T_TMF) {
		p->subtype = vio_le32(h + 4);
		memcpy(p->lun, h + 8, 8);
		p->tag = vio_le64(h + 16);
	} else {
		memcpy(p->lun, h + 4, 8);
		p->event_requested = vio_le32(h + 12);
	}
	return VSCSI_OK;
}

bool vscsi_lun_decode(const uint8_t lun[8], uint8_t *target, uint16_t *lun_out)
{
	*target = lun[1];
	*lun_out = VSCSI_NO_LUN;
	if (lun[0] != 1)
		return false;
	if ((lun[2] >> 6) > 1 || lun[4] || lun[5] || lun[6] || lun[7])
		return true; /* another addressing method or a second level: no such LUN */
	*lun_out = (uint16_t)(((lun[2] & 0x3f) << 8) | lun[3]);
	return true;
}
