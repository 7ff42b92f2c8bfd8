/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VHDX log ([MS-VHDX] 2.3): finding the active sequence of entries, replaying it, and
 * building the entries vireo writes. Pure: I/O through struct vhdx_io (vhdx_format.h).
 *
 * An entry is a 64-byte header (signature "loge", CRC-32C of the whole entry, its length, the
 * tail: the log offset of the oldest entry still needed, a sequence number, the log GUID, the
 * file size once flushed and the file size needed), descriptors (32 bytes each: "desc" for a
 * 4 KiB sector write, "zero" for a range of zeroes) filling 4 KiB descriptor sectors, then one
 * 4 KiB data sector per "desc" descriptor, which holds the sector's bytes 8..4091 between its
 * own signature and the sequence number; the descriptor keeps the first 8 and last 4 bytes.
 *
 * Replay ([MS-VHDX] 2.3.3): of the valid entries carrying the header's log GUID, a sequence is
 * a chain of entries, each beginning where the previous one ends (circularly) with the next
 * sequence number; it is complete when its last entry (the head) names as its tail an entry of
 * the chain. The active sequence is the complete one with the largest head sequence number;
 * its entries are applied from the tail to the head, the file grows to the head's
 * LastFileOffset, and the log is then emptied (the caller writes a header with a zero log
 * GUID once the file is flushed).
 */
#ifndef VIREO_BLOCKDEV_VHDX_LOG_H
#define VIREO_BLOCKDEV_VHDX_LOG_H

#include "blockdev/vhdx_format.h"

#define VHDX_LOG_HEADER_LEN 64
#define VHDX_LOG_DESC_LEN 32
/* Descriptors in the first descriptor sector (after the entry header) and in the others. */
#define VHDX_LOG_DESC_FIRST ((VHDX_LOG_SECTOR - VHDX_LOG_HEADER_LEN) / VHDX_LOG_DESC_LEN)
#define VHDX_LOG_DESC_PER ((VHDX_LOG_SECTOR) / VHDX_LOG_DESC_LEN)
/* Bytes of a sector a data sector carries (the rest is in the descriptor). */
#define VHDX_LOG_DATA_BYTES 4084

/**
 * struct vhdx_log_entry - one entry's header, parsed
 * @pos: its offset in the log
 * @len: EntryLength
 * @tail: Tail, a log offset
 * @seq: SequenceNumber
 * @descs: DescriptorCount
 * @data_sectors: of them, data descriptors (learned while checking)
 * @flushed: FlushedFileOffset
 * @last: LastFileOffset
 */
struct vhdx_log_entry {
	uint64_t pos;
	uint32_t len, tail;
	uint64_t seq;
	uint32_t descs, data_sectors;
	uint64_t flushed, last;
};

/**
 * struct vhdx_log_seq - the active sequence
 * @found: there is one to replay
 * @tail, @head: its first and last entries
 * @count: entries in it
 */
struct vhdx_log_seq {
	bool found;
	struct vhdx_log_entry tail, head;
	uint32_t count;
};

/*
 * vhdx_log_find - the active sequence of the log @h names (nothing when its GUID is zero)
 *
 * Reads every 4 KiB slot of the log once for entry headers, each candidate entry in full for
 * its checksum (in 64 KiB pieces: nothing as large as the log is allocated), and checks every
 * descriptor of the active sequence (signatures, sequence numbers, targets inside the file's
 * plausible range and outside the header section and the log). 0 with @seq filled (found or
 * not), or -1 when the log cannot be read or the active sequence is damaged.
 */
int vhdx_log_find(const struct vhdx_io *io, const struct vhdx_header *h, struct vhdx_log_seq *seq,
		  struct error **errp);

/*
 * vhdx_log_replay - apply the active sequence found by vhdx_log_find through io->write
 *
 * Refuses first when the file is shorter than the head's FlushedFileOffset (it lost flushed
 * data: truncated). Writes every sector and zero range of every entry, tail to head; does not
 * flush and does not grow the file (the caller grows it to seq->head.last when it is shorter,
 * flushes, then empties the log).
 */
int vhdx_log_replay(const struct vhdx_io *io, const struct vhdx_header *h,
		    const struct vhdx_log_seq *seq, struct error **errp);

/* Bytes of an entry carrying @n sector writes. */
uint64_t vhdx_log_entry_len(size_t n);

/**
 * struct vhdx_log_write - an entry vireo writes: @n 4 KiB sectors of the file
 * @guid: the log GUID (the header's)
 * @seq: its sequence number (non-zero)
 * @tail: the log offset of the oldest entry still needed (vireo: the entry's own)
 * @flushed, @last: FlushedFileOffset, LastFileOffset
 * @offsets: the sectors' file offsets (4 KiB-aligned)
 * @sectors: their new contents (4 KiB each)
 */
struct vhdx_log_write {
	const struct vhdx_guid *guid;
	uint64_t seq;
	uint32_t tail;
	uint64_t flushed, last;
	size_t n;
	const uint64_t *offsets;
	const uint8_t *const *sectors;
};

/* Fills @buf (vhdx_log_entry_len(w->n) bytes) with the entry, checksum included. */
void vhdx_log_entry_build(const struct vhdx_log_write *w, uint8_t *buf);

#endif
