/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhdx: metadata writes, crash-safe. The payload blocks' data is written where it lives; the
 * BAT entries that point at new blocks are kept in memory (published to readers at once, see
 * vhdx.c) and their 4 KiB BAT sectors marked dirty; a flush commits them through the log:
 *
 *   1. flush the file: the new blocks' data (and the previous commit's BAT sectors) are durable;
 *   2. a new round of the log when none is active or the entry does not fit before its end: a
 *      new log GUID in the header, written and flushed before any entry of that round, so that
 *      a torn entry never lets an older round's entries be replayed over newer BAT sectors;
 *   3. one log entry holding every dirty sector (its tail: itself, since step 1 made every
 *      older entry's work durable), then a flush;
 *   4. the sectors in place. A crash from here on replays the entry (at the next read-write
 *      open, or qemu-img check -r all), whose sectors are the ones being written.
 * A commit with more dirty sectors than one entry holds repeats 1, 3, 4 per entry. A torn
 * entry in step 3 is invalid (checksum): the previous entry of the round is replayed instead,
 * and its sectors are those already in place (step 1 made them durable), so nothing goes back.
 * A clean close commits, flushes and writes a header with a zero log GUID: the image needs no
 * replay, and qemu-img opens it read-only.
 *
 * Headers ([MS-VHDX] 2.2.2): an update writes the other slot with the next sequence number;
 * readers take the valid header with the larger one, so a torn header write leaves the
 * previous one current. Before the first change of the disk in an open, the header gets a new
 * FileWriteGuid and DataWriteGuid (flushed before the change).
 *
 * Everything here runs under v->lock, or at open and close where nobody else uses the node.
 */
#include "blockdev/vhdx_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static int io_read(void *opaque, uint64_t off, void *buf, size_t len)
{
	return blockdev_pread(opaque, off, buf, len);
}

static int io_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	return blockdev_pwrite(opaque, off, buf, len);
}

static int io_zero(void *opaque, uint64_t off, uint64_t len)
{
	return blockdev_write_zeroes(opaque, off, len, 0);
}

void vhdx_io_of(struct vhdx *v, struct vhdx_io *io)
{
	*io = (struct vhdx_io){ io_read, io_write, io_zero, v->file, v->file->size };
}

int vhdx_header_update(struct vhdx *v, const struct vhdx_header *h)
{
	struct vhdx_header n = *h;
	uint8_t *buf = malloc(VHDX_HEADER_LEN);
	int slot = !v->m.hdr_slot, ret;

	if (!buf)
		return -ENOMEM;
	n.seq = v->m.hdr.seq + 1;
	vhdx_header_put(&n, buf);
	ret = blockdev_pwrite(v->file, slot ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF, buf,
			      VHDX_HEADER_LEN);
	free(buf);
	if (!ret) {
		v->m.hdr = n;
		v->m.hdr_slot = slot;
	}
	return ret;
}

int vhdx_prepare_write(struct vhdx *v)
{
	struct vhdx_header h = v->m.hdr;
	int ret;

	if (atomic_load_explicit(&v->data_ready, memory_order_relaxed))
		return 0;
	ret = vhdx_guid_random(&h.file_write) ?: vhdx_guid_random(&h.data_write) ?:
	      vhdx_header_update(v, &h) ?: v->unsafe ? 0 : blockdev_flush(v->file);
	if (ret)
		return ret;
	/* release: pairs with map()'s acquire; the header is durable before any change */
	atomic_store_explicit(&v->data_ready, true, memory_order_release);
	return 0;
}

void vhdx_mark_dirty(struct vhdx *v, uint64_t i)
{
	uint64_t s = i / VHDX_BAT_PER_SECTOR;

	if (!(v->dirty[s / 64] & (1ULL << (s % 64)))) {
		v->dirty[s / 64] |= 1ULL << (s % 64);
		v->ndirty++;
	}
}

/* Sectors one log entry may carry: the largest n whose entry fits in the log. */
static size_t entry_cap(const struct vhdx *v)
{
	size_t n = v->m.hdr.log_length / VHDX_LOG_SECTOR;

	while (n && vhdx_log_entry_len(n) > v->m.hdr.log_length)
		n--;
	return n;
}

/* A new round of the log at its start, under a new GUID the header names durably. */
static int new_round(struct vhdx *v)
{
	struct vhdx_header h = v->m.hdr;
	int ret = vhdx_guid_random(&h.log_guid) ?: vhdx_header_update(v, &h) ?:
		  blockdev_flush(v->file);

	if (ret)
		return ret;
	v->log_active = true;
	v->log_head = 0;
	v->log_seq = 1;
	return 0;
}

/* One entry with up to @cap dirty sectors (from sector *@next on), then those sectors in place. */
static int commit_entry(struct vhdx *v, size_t cap, uint64_t *next)
{
	uint64_t nsec = v->bat_len / VHDX_BAT_PER_SECTOR, *offs, flushed = v->file->size, len;
	const uint8_t **secs;
	uint8_t *data, *entry = NULL;
	size_t n = 0;
	int ret = -ENOMEM;

	cap = MIN(cap, v->ndirty);
	offs = malloc(cap * sizeof(*offs));
	secs = malloc(cap * sizeof(*secs));
	data = malloc(cap * VHDX_LOG_SECTOR);
	if (!offs || !secs || !data)
		goto out;
	for (uint64_t s = *next; s < nsec && n < cap; s++) {
		if (!(v->dirty[s / 64] & (1ULL << (s % 64))))
			continue;
		for (unsigned k = 0; k < VHDX_BAT_PER_SECTOR; k++)
			vhdx_put64(data + n * VHDX_LOG_SECTOR + 8 * k,
				   atomic_load_explicit(&v->bat[s * VHDX_BAT_PER_SECTOR + k],
							memory_order_relaxed));
		offs[n] = v->m.bat_offset + s * VHDX_LOG_SECTOR;
		secs[n] = data + n * VHDX_LOG_SECTOR;
		n++;
		*next = s + 1;
	}
	len = vhdx_log_entry_len(n);
	entry = malloc(len);
	if (!entry)
		goto out;
	/* 1: the blocks' data and the previous commit's sectors are durable */
	ret = blockdev_flush(v->file);
	if (!ret && (!v->log_active || v->log_head + len > v->m.hdr.log_length))
		ret = new_round(v); /* 2 */
	if (ret)
		goto out;
	vhdx_log_entry_build(&(struct vhdx_log_write){
		.guid = &v->m.hdr.log_guid, .seq = v->log_seq, .tail = (uint32_t)v->log_head,
		.flushed = flushed, .last = v->file->size, .n = n, .offsets = offs,
		.sectors = secs }, entry);
	/* 3: the entry, durable before anything it describes is written in place */
	ret = blockdev_pwrite(v->file, v->m.hdr.log_offset + v->log_head, entry, len) ?:
	      blockdev_flush(v->file);
	if (ret)
		goto out;
	v->log_head += len;
	v->log_seq++;
	/* 4 */
	for (size_t i = 0; i < n && !ret; i++)
		ret = blockdev_pwrite(v->file, offs[i], secs[i], VHDX_LOG_SECTOR);
	if (!ret) {
		for (size_t i = 0; i < n; i++) {
			uint64_t s = (offs[i] - v->m.bat_offset) / VHDX_LOG_SECTOR;

			v->dirty[s / 64] &= ~(1ULL << (s % 64));
		}
		v->ndirty -= n;
	}
out:
	free(entry);
	free(data);
	free(secs);
	free(offs);
	return ret;
}

int vhdx_commit(struct vhdx *v)
{
	size_t cap = entry_cap(v);
	uint64_t next = 0;

	if (!cap)
		return -EIO; /* a log too short for one sector: refused at open */
	while (v->ndirty) {
		uint64_t before = v->ndirty;
		int ret = commit_entry(v, cap, &next);

		if (ret)
			return ret;
		if (v->ndirty >= before)
			return -EIO;
	}
	return 0;
}

/* close-flush=off: the dirty BAT sectors straight in place, nothing flushed. */
static int write_in_place(struct vhdx *v)
{
	uint64_t nsec = v->bat_len / VHDX_BAT_PER_SECTOR;
	uint8_t *buf = malloc(VHDX_LOG_SECTOR);
	int ret = buf ? 0 : -ENOMEM;

	for (uint64_t s = 0; s < nsec && !ret && v->ndirty; s++) {
		if (!(v->dirty[s / 64] & (1ULL << (s % 64))))
			continue;
		for (unsigned k = 0; k < VHDX_BAT_PER_SECTOR; k++)
			vhdx_put64(buf + 8 * k, atomic_load_explicit(
				&v->bat[s * VHDX_BAT_PER_SECTOR + k], memory_order_relaxed));
		ret = blockdev_pwrite(v->file, v->m.bat_offset + s * VHDX_LOG_SECTOR, buf,
				      VHDX_LOG_SECTOR);
		if (!ret) {
			v->dirty[s / 64] &= ~(1ULL << (s % 64));
			v->ndirty--;
		}
	}
	free(buf);
	return ret;
}

int vhdx_close_log(struct vhdx *v)
{
	struct vhdx_header h = v->m.hdr;
	int ret;

	if (v->unsafe && !v->log_active)
		return write_in_place(v);
	ret = vhdx_commit(v) ?: blockdev_flush(v->file);
	/* a log GUID another writer left with nothing valid under it goes too, once we wrote */
	if (ret || (!v->log_active && (vhdx_guid_is_zero(&h.log_guid) ||
				       !atomic_load_explicit(&v->data_ready, memory_order_relaxed))))
		return ret;
	memset(&h.log_guid, 0, sizeof(h.log_guid));
	ret = vhdx_header_update(v, &h) ?: blockdev_flush(v->file);
	if (!ret)
		v->log_active = false;
	return ret;
}

int vhdx_replay(struct vhdx *v, const struct vhdx_log_seq *seq, struct error **errp)
{
	struct vhdx_header h = v->m.hdr;
	struct vhdx_io io;
	int ret;

	vhdx_io_of(v, &io);
	if (vhdx_log_replay(&io, &v->m.hdr, seq, errp))
		return -1;
	if (v->file->size < seq->head.last &&
	    blockdev_truncate(v->file, seq->head.last, errp))
		return -1;
	/* the replayed sectors durable, then the log empty (and the file known changed) */
	memset(&h.log_guid, 0, sizeof(h.log_guid));
	ret = blockdev_flush(v->file) ?: vhdx_guid_random(&h.file_write) ?:
	      vhdx_header_update(v, &h) ?: blockdev_flush(v->file);
	if (ret) {
		error_setg_errno(errp, ret, "emptying the log after its replay");
		return -1;
	}
	return 0;
}
