/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 internal snapshots, the table: reading it whole (every entry bounded by the file and by
 * QCOW2_MAX_SNAPSHOT_TABLE), finding an entry, writing a new table and switching the header to
 * it, and the driver's snapshot_list op. Creating, applying and deleting snapshots, and the
 * refcount walks they need, are in qcow2_snapshot_ops.c.
 *
 * The table is rewritten whole into fresh clusters, and one 12-byte header write (nb_snapshots,
 * snapshots_offset) switches to it after a barrier: a crash leaves the old table or the new
 * one, and at most the other one leaked.
 */
#include "blockdev/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* Reads [off, off+len) of the file into *buf (grown as needed), refusing what is past its end. */
static int read_at(struct qcow2 *q, uint64_t off, uint64_t len, uint8_t **buf, uint64_t *cap,
		   uint32_t index, struct error **errp)
{
	int ret;

	if (!range_within(off, len, qcow2_file_end(q))) {
		error_setg(errp, "qcow2 snapshot %u: its table entry at 0x%" PRIx64 " (%" PRIu64
			   " bytes) is past the end of the file", index, off, len);
		return -1;
	}
	if (len > *cap) {
		uint8_t *n = realloc(*buf, len);

		if (!n) {
			error_setg(errp, "out of memory reading the qcow2 snapshot table");
			return -1;
		}
		*buf = n;
		*cap = len;
	}
	ret = blockdev_pread(q->file, off, *buf, len);
	if (ret)
		error_setg_errno(errp, ret, "reading qcow2 snapshot %u at 0x%" PRIx64, index, off);
	return ret ? -1 : 0;
}

int qcow2_snapshots_read(struct qcow2 *q, struct qcow2_snapshot **out, uint64_t *bytes,
			 struct error **errp)
{
	uint32_t n = q->h.nb_snapshots, i;
	uint64_t off = q->h.snapshots_offset, cap = 0, len;
	struct qcow2_snapshot *s;
	uint8_t *buf = NULL;

	*out = NULL;
	*bytes = 0;
	if (!n)
		return 0;
	s = calloc(n, sizeof(*s));
	if (!s) {
		error_setg(errp, "out of memory reading the qcow2 snapshot table");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (read_at(q, off, QCOW2_SNAPSHOT_HEADER_LEN, &buf, &cap, i, errp))
			goto fail;
		len = qcow2_snapshot_entry_len(buf);
		if (off - q->h.snapshots_offset + len > QCOW2_MAX_SNAPSHOT_TABLE) {
			error_setg(errp, "qcow2 snapshot table at 0x%" PRIx64 ": its %u entries take "
				   "more than %llu MiB", q->h.snapshots_offset, n,
				   QCOW2_MAX_SNAPSHOT_TABLE >> 20);
			goto fail;
		}
		if (read_at(q, off, len, &buf, &cap, i, errp) ||
		    qcow2_snapshot_parse(buf, i, off, q->cluster_bits, &s[i], errp))
			goto fail;
		off += ALIGN_UP(len, 8);
	}
	free(buf);
	*out = s;
	*bytes = off - q->h.snapshots_offset;
	return 0;
fail:
	free(buf);
	qcow2_snapshots_free(s, n);
	error_prepend(errp, "'%s'", q->bs->filename);
	return -1;
}

int qcow2_snapshot_find(const struct qcow2_snapshot *s, uint32_t n, const char *id,
			const char *name)
{
	for (uint32_t i = 0; i < n; i++)
		if ((!id || !strcmp(s[i].id, id)) && (!name || !strcmp(s[i].name, name)))
			return (int)i;
	return -1;
}

int qcow2_snapshot_find_id_or_name(const struct qcow2_snapshot *s, uint32_t n, const char *what)
{
	int i = qcow2_snapshot_find(s, n, what, NULL);

	return i >= 0 ? i : qcow2_snapshot_find(s, n, NULL, what);
}

int qcow2_snapshots_write(struct qcow2 *q, const struct qcow2_snapshot *s, uint32_t n,
			  uint64_t old_bytes)
{
	uint64_t old_off = q->h.snapshots_offset, bytes = 0, pos = 0;
	uint32_t old_n = q->h.nb_snapshots;
	uint8_t hdr[12], *buf = NULL;
	int64_t off = 0;
	int ret;

	for (uint32_t i = 0; i < n; i++)
		bytes += qcow2_snapshot_size(&s[i]);
	if (bytes > QCOW2_MAX_SNAPSHOT_TABLE || n > QCOW2_MAX_SNAPSHOTS)
		return -EFBIG;
	if (n) {
		buf = calloc(1, ALIGN_UP(bytes, q->cluster_size));
		if (!buf)
			return -ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			qcow2_snapshot_put(&s[i], buf + pos);
			pos += qcow2_snapshot_size(&s[i]);
		}
		off = qcow2_alloc_clusters(q, DIV_ROUND_UP(bytes, q->cluster_size));
		ret = off < 0 ? (int)off :
		      blockdev_pwrite(q->file, (uint64_t)off, buf, ALIGN_UP(bytes, q->cluster_size));
		free(buf);
		if (ret)
			return ret;
	}
	if ((ret = qcow2_barrier(q)))
		return ret;
	qcow2_put_be32(hdr, n);
	qcow2_put_be64(hdr + 4, (uint64_t)off);
	if ((ret = blockdev_pwrite(q->file, 60, hdr, sizeof(hdr))) || (ret = qcow2_barrier(q)))
		return ret;
	q->h.nb_snapshots = n;
	q->h.snapshots_offset = (uint64_t)off;
	if (old_n && old_bytes)
		ret = qcow2_free_range(q, old_off, ALIGN_UP(old_bytes, q->cluster_size));
	return ret;
}

int qcow2_snapshot_list(struct blockdev *bs, struct blockdev_snapshot **out, size_t *nr,
			struct error **errp)
{
	struct qcow2 *q = qcow2_of(bs);
	struct blockdev_snapshot *list;
	struct qcow2_snapshot *s;
	uint64_t bytes;
	uint32_t n = q->h.nb_snapshots;

	if (qcow2_snapshots_read(q, &s, &bytes, errp))
		return -1;
	if (!n)
		return 0;
	list = calloc(n, sizeof(*list));
	if (!list)
		goto oom;
	for (uint32_t i = 0; i < n; i++) {
		list[i] = (struct blockdev_snapshot){
			.id = strdup(s[i].id), .name = strdup(s[i].name),
			.date_sec = s[i].date_sec, .date_nsec = s[i].date_nsec,
			.vm_clock_nsec = s[i].vm_clock_nsec, .vm_state_size = s[i].vm_state_size,
			.icount = s[i].icount,
		};
		if (!list[i].id || !list[i].name) {
			blockdev_snapshot_list_free(list, i + 1);
			goto oom;
		}
	}
	qcow2_snapshots_free(s, n);
	*out = list;
	*nr = n;
	return 0;
oom:
	qcow2_snapshots_free(s, n);
	error_setg(errp, "out of memory");
	return -1;
}
