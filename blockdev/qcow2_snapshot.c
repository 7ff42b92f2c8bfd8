/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 internal snapshots: reading the snapshot table (the driver's snapshot_list op, for
 * info). Every length is bounded.
 */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define MAX_EXTRA 1024 /* QEMU's limit on a snapshot entry's extra data */

static int parse_entry(struct qcow2 *q, const uint8_t *e, uint64_t off,
		       struct blockdev_snapshot *s, uint64_t *len, struct error **errp)
{
	uint32_t extra = qcow2_be32(e + 36);
	uint16_t id_len = (uint16_t)((e[12] << 8) | e[13]);
	uint16_t name_len = (uint16_t)((e[14] << 8) | e[15]);
	uint8_t x[MAX_EXTRA];
	char *strs;
	int ret;

	if (extra > MAX_EXTRA) {
		error_setg(errp,
			   "qcow2 snapshot table entry at 0x%" PRIx64 ": %u bytes of extra data "
			   "(at most %u)",
			   off, extra, MAX_EXTRA);
		return -1;
	}
	memset(s, 0, sizeof(*s));
	s->date_sec = qcow2_be32(e + 16);
	s->date_nsec = qcow2_be32(e + 20);
	s->vm_clock_nsec = qcow2_be64(e + 24);
	s->vm_state_size = qcow2_be32(e + 32);
	s->icount = UINT64_MAX;
	strs = malloc((size_t)id_len + name_len + 2);
	if (!strs) {
		error_setg(errp, "out of memory");
		return -1;
	}
	ret = blockdev_pread(q->file, off + 40, x, extra);
	if (!ret)
		ret = blockdev_pread(q->file, off + 40 + extra, strs, (size_t)id_len + name_len);
	if (ret) {
		free(strs);
		error_setg_errno(errp, ret, "reading the qcow2 snapshot table at 0x%" PRIx64, off);
		return -1;
	}
	if (extra >= 8)
		s->vm_state_size = qcow2_be64(x);
	if (extra >= 24)
		s->icount = qcow2_be64(x + 16);
	s->id = strndup(strs, id_len);
	s->name = strndup(strs + id_len, name_len);
	free(strs);
	if (!s->id || !s->name) {
		error_setg(errp, "out of memory");
		return -1;
	}
	*len = ALIGN_UP(40ULL + extra + id_len + name_len, 8);
	return 0;
}

int qcow2_snapshot_list(struct blockdev *bs, struct blockdev_snapshot **out, size_t *nr,
			struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	uint64_t off = q->h.snapshots_offset;
	struct blockdev_snapshot *list;
	size_t n = 0;

	if (!q->h.nb_snapshots)
		return 0;
	list = calloc(q->h.nb_snapshots, sizeof(*list));
	if (!list) {
		error_setg(errp, "out of memory");
		return -1;
	}
	for (; n < q->h.nb_snapshots; n++) {
		uint8_t e[40];
		uint64_t len;
		int ret = off + 40 > q->file->size ? -EINVAL : blockdev_pread(q->file, off, e, 40);

		if (ret) {
			error_setg(errp, "qcow2 snapshot %zu: its table entry at 0x%" PRIx64
				   " is past the end of the file", n, off);
			goto fail;
		}
		if (parse_entry(q, e, off, &list[n], &len, errp))
			goto fail;
		off += len;
	}
	*out = list;
	*nr = n;
	return 0;
fail:
	blockdev_snapshot_list_free(list, n + 1);
	return -1;
}
