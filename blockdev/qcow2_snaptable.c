/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 snapshot table entries: parse (every field bounded) and serialize. Pure: no I/O; the
 * reader in qcow2_snapshot.c hands in one entry's bytes at a time.
 *
 * An entry: L1 table offset (8), L1 entries (4), ID length (2), name length (2), date seconds
 * (4) and nanoseconds (4), guest clock in ns (8), VM state size (4), extra data length (4),
 * then the extra data (VM state size as 64 bits, disk size, icount: each present when the
 * extra data reaches it), the ID and the name, padded to 8.
 */
#include "blockdev/qcow2_format.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

uint64_t qcow2_snapshot_entry_len(const uint8_t *hdr)
{
	return QCOW2_SNAPSHOT_HEADER_LEN + (uint64_t)qcow2_be32(hdr + 36) + be16(hdr + 12) +
	       be16(hdr + 14);
}

void qcow2_snapshot_free(struct qcow2_snapshot *sn)
{
	free(sn->id);
	free(sn->name);
	free(sn->extra);
	memset(sn, 0, sizeof(*sn));
}

void qcow2_snapshots_free(struct qcow2_snapshot *s, uint32_t n)
{
	for (uint32_t i = 0; s && i < n; i++)
		qcow2_snapshot_free(&s[i]);
	free(s);
}

static char *copy_str(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

int qcow2_snapshot_parse(const uint8_t *b, uint32_t index, uint64_t off, unsigned cluster_bits,
			 struct qcow2_snapshot *sn, struct error **errp)
{
	uint16_t id_len = be16(b + 12), name_len = be16(b + 14);
	const uint8_t *x = b + QCOW2_SNAPSHOT_HEADER_LEN;

	memset(sn, 0, sizeof(*sn));
	sn->l1_table_offset = qcow2_be64(b);
	sn->l1_size = qcow2_be32(b + 8);
	sn->date_sec = qcow2_be32(b + 16);
	sn->date_nsec = qcow2_be32(b + 20);
	sn->vm_clock_nsec = qcow2_be64(b + 24);
	sn->vm_state_size = qcow2_be32(b + 32);
	sn->extra_len = qcow2_be32(b + 36);
	sn->disk_size = sn->icount = UINT64_MAX;
	if (sn->extra_len > QCOW2_SNAPSHOT_MAX_EXTRA) {
		error_setg(errp, "qcow2 snapshot %u (table entry at 0x%" PRIx64 "): %u bytes of "
			   "extra data, more than %u", index, off, sn->extra_len,
			   QCOW2_SNAPSHOT_MAX_EXTRA);
		return -1;
	}
	if (sn->l1_table_offset % (1ULL << cluster_bits) ||
	    (sn->l1_table_offset & ~QCOW2_OFFSET_MASK)) {
		error_setg(errp, "qcow2 snapshot %u (table entry at 0x%" PRIx64 "): its L1 table "
			   "offset 0x%" PRIx64 " is not a cluster boundary", index, off,
			   sn->l1_table_offset);
		return -1;
	}
	if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		error_setg(errp, "qcow2 snapshot %u (table entry at 0x%" PRIx64 "): its L1 table "
			   "of %u entries is over the %llu MiB limit", index, off, sn->l1_size,
			   QCOW2_MAX_L1_BYTES >> 20);
		return -1;
	}
	if (sn->extra_len >= 8)
		sn->vm_state_size = qcow2_be64(x);
	if (sn->extra_len >= 16)
		sn->disk_size = qcow2_be64(x + 8);
	if (sn->extra_len >= 24)
		sn->icount = qcow2_be64(x + 16);
	sn->extra = malloc(sn->extra_len ? sn->extra_len : 1);
	sn->id = copy_str(x + sn->extra_len, id_len);
	sn->name = copy_str(x + sn->extra_len + id_len, name_len);
	if (!sn->extra || !sn->id || !sn->name) {
		error_setg(errp, "out of memory reading the qcow2 snapshot table");
		return -1;
	}
	memcpy(sn->extra, x, sn->extra_len);
	return 0;
}

uint64_t qcow2_snapshot_size(const struct qcow2_snapshot *sn)
{
	return ALIGN_UP(QCOW2_SNAPSHOT_HEADER_LEN + (uint64_t)sn->extra_len + strlen(sn->id) +
			strlen(sn->name), 8);
}

void qcow2_snapshot_put(const struct qcow2_snapshot *sn, uint8_t *b)
{
	size_t id_len = strlen(sn->id), name_len = strlen(sn->name);
	uint8_t *x = b + QCOW2_SNAPSHOT_HEADER_LEN;

	qcow2_put_be64(b, sn->l1_table_offset);
	qcow2_put_be32(b + 8, sn->l1_size);
	b[12] = (uint8_t)(id_len >> 8);
	b[13] = (uint8_t)id_len;
	b[14] = (uint8_t)(name_len >> 8);
	b[15] = (uint8_t)name_len;
	qcow2_put_be32(b + 16, sn->date_sec);
	qcow2_put_be32(b + 20, sn->date_nsec);
	qcow2_put_be64(b + 24, sn->vm_clock_nsec);
	/* the 32-bit field holds what fits; the extra data's 64-bit one is the real size */
	qcow2_put_be32(b + 32, sn->vm_state_size > UINT32_MAX ? 0 : (uint32_t)sn->vm_state_size);
	qcow2_put_be32(b + 36, sn->extra_len);
	memcpy(x, sn->extra, sn->extra_len);
	memcpy(x + sn->extra_len, sn->id, id_len);
	memcpy(x + sn->extra_len + id_len, sn->name, name_len);
}
