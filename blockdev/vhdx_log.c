/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VHDX log: finding the active sequence, checking it, replaying it; building entries.
 * Pure (I/O through struct vhdx_io). See vhdx_log.h for the format and the replay rules.
 *
 * Bounds, for a hostile log: the log is read once in 64 KiB pieces for entry headers and once
 * more per candidate entry for its checksum; only the entries found valid are kept (24 bytes
 * each, at most one per 4 KiB of log); the search of complete sequences gives up after
 * SEARCH_STEPS steps; descriptor targets must lie past the header section, outside the log and
 * below VHDX_MAX_FILE_OFFSET; zero ranges past the end of the file are not written (they read
 * as zeroes there anyway).
 */
#include "blockdev/vhdx_log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define ENTRY_SIG 0x65676f6cu /* "loge" */
#define DESC_SIG 0x63736564u  /* "desc" */
#define ZERO_SIG 0x6f72657au  /* "zero" */
#define DATA_SIG 0x61746164u  /* "data" */
#define PIECE (64 * 1024u)
#define SEARCH_STEPS (1u << 22)

/* Descriptor sectors of an entry with @n descriptors. */
static uint64_t desc_sectors(uint64_t n)
{
	return n <= VHDX_LOG_DESC_FIRST ? 1 : 1 + DIV_ROUND_UP(n - VHDX_LOG_DESC_FIRST,
							      VHDX_LOG_DESC_PER);
}

/* Reads @len bytes of the log at log offset @pos, wrapping at its end. */
static int log_read(const struct vhdx_io *io, const struct vhdx_header *h, uint64_t pos,
		    void *buf, size_t len)
{
	uint8_t *b = buf;

	while (len) {
		size_t n;
		int ret;

		pos %= h->log_length;
		n = (size_t)MIN((uint64_t)len, h->log_length - pos);
		ret = io->read(io->opaque, h->log_offset + pos, b, n);
		if (ret)
			return ret;
		b += n;
		pos += n;
		len -= n;
	}
	return 0;
}

/* An entry header (the first 64 bytes at log offset @pos) that could be valid for @h. */
static bool entry_header(const uint8_t *b, const struct vhdx_header *h, uint64_t pos,
			 struct vhdx_log_entry *e)
{
	struct vhdx_guid g;

	if (vhdx_le32(b) != ENTRY_SIG)
		return false;
	memcpy(g.b, b + 32, 16);
	*e = (struct vhdx_log_entry){
		.pos = pos, .len = vhdx_le32(b + 8), .tail = vhdx_le32(b + 12),
		.seq = vhdx_le64(b + 16), .descs = vhdx_le32(b + 24),
		.flushed = vhdx_le64(b + 48), .last = vhdx_le64(b + 56),
	};
	return vhdx_guid_eq(&g, &h->log_guid) && e->seq && e->len && !(e->len % VHDX_LOG_SECTOR) &&
	       e->len <= h->log_length && !(e->tail % VHDX_LOG_SECTOR) &&
	       e->tail < h->log_length && desc_sectors(e->descs) * VHDX_LOG_SECTOR <= e->len;
}

/* Whether the entry's checksum is right (read in pieces). */
static int entry_checksum_ok(const struct vhdx_io *io, const struct vhdx_header *h,
			     const struct vhdx_log_entry *e, uint8_t *buf, bool *ok)
{
	uint32_t crc = 0, stored = 0;

	for (uint64_t done = 0; done < e->len;) {
		size_t n = (size_t)MIN((uint64_t)PIECE, e->len - done);
		int ret = log_read(io, h, e->pos + done, buf, n);

		if (ret)
			return ret;
		if (!done) {
			stored = vhdx_le32(buf + 4);
			memset(buf + 4, 0, 4);
		}
		crc = vhdx_crc32c(crc, buf, n);
		done += n;
	}
	*ok = crc == stored;
	return 0;
}

/* The valid entries, sorted by their slot in the log. */
struct found {
	struct vhdx_log_entry *e;
	size_t n, cap;
};

static int found_add(struct found *f, const struct vhdx_log_entry *e)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		struct vhdx_log_entry *p = realloc(f->e, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		f->e = p;
		f->cap = cap;
	}
	f->e[f->n++] = *e;
	return 0;
}

static const struct vhdx_log_entry *found_at(const struct found *f, uint64_t pos)
{
	size_t lo = 0, hi = f->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->e[mid].pos == pos)
			return &f->e[mid];
		if (f->e[mid].pos < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Every entry of the log that is valid for @h (signature, fields, GUID, checksum). */
static int scan(const struct vhdx_io *io, const struct vhdx_header *h, struct found *f,
		struct error **errp)
{
	uint8_t *piece = malloc(PIECE), *buf = malloc(PIECE);
	int ret = -ENOMEM;

	if (!piece || !buf)
		goto out;
	for (uint64_t at = 0; at < h->log_length; at += PIECE) {
		size_t n = (size_t)MIN((uint64_t)PIECE, h->log_length - at);

		ret = log_read(io, h, at, piece, n);
		if (ret)
			goto out;
		for (size_t s = 0; s < n; s += VHDX_LOG_SECTOR) {
			struct vhdx_log_entry e;
			bool ok;

			if (!entry_header(piece + s, h, at + s, &e))
				continue;
			ret = entry_checksum_ok(io, h, &e, buf, &ok);
			if (ret)
				goto out;
			if (ok && (ret = found_add(f, &e)))
				goto out;
		}
	}
	ret = 0;
out:
	if (ret)
		error_setg_errno(errp, ret, "reading the log at 0x%" PRIx64, h->log_offset);
	free(piece);
	free(buf);
	return ret ? -1 : 0;
}

static uint64_t next_pos(const struct vhdx_header *h, const struct vhdx_log_entry *e)
{
	return (e->pos + e->len) % h->log_length;
}

/*
 * Whether the chain from @h's tail entry reaches @head with consecutive sequence numbers;
 * *@count gets its length. *@steps counts the search's work.
 */
static bool complete(const struct vhdx_header *h, const struct found *f,
		     const struct vhdx_log_entry *head, const struct vhdx_log_entry **tail,
		     uint32_t *count, uint64_t *steps)
{
	const struct vhdx_log_entry *cur = found_at(f, head->tail);

	*tail = cur;
	*count = 1;
	while (cur && cur != head && cur->seq < head->seq && ++*steps < SEARCH_STEPS) {
		const struct vhdx_log_entry *nx = found_at(f, next_pos(h, cur));

		if (!nx || nx->seq != cur->seq + 1)
			return false;
		cur = nx;
		++*count;
	}
	return cur == head;
}

static int cmp_seq_desc(const void *a, const void *b)
{
	const struct vhdx_log_entry *x = *(const struct vhdx_log_entry *const *)a;
	const struct vhdx_log_entry *y = *(const struct vhdx_log_entry *const *)b;

	return x->seq > y->seq ? -1 : x->seq < y->seq;
}

/* Whether [off, off+len) may be written by a replay. */
static bool target_ok(const struct vhdx_header *h, uint64_t off, uint64_t len)
{
	return off >= VHDX_HEADER_SECTION && off <= VHDX_MAX_FILE_OFFSET &&
	       len <= VHDX_MAX_FILE_OFFSET - off &&
	       (off + len <= h->log_offset || off >= h->log_offset + h->log_length);
}

/*
 * Calls @fn for each descriptor of @e after checking it (and, for a data descriptor, its data
 * sector): @fn gets the file offset, the length, and the 4 KiB sector or NULL for zeroes.
 */
typedef int desc_fn(const struct vhdx_io *io, uint64_t off, uint64_t len, const uint8_t *sector);

static int walk_descs(const struct vhdx_io *io, const struct vhdx_header *h,
		      struct vhdx_log_entry *e, desc_fn *fn, struct error **errp)
{
	uint8_t *ds = malloc(VHDX_LOG_SECTOR), *data = malloc(VHDX_LOG_SECTOR);
	uint64_t first_data = desc_sectors(e->descs), k = 0, slot = UINT64_MAX;
	int ret = -1;

	if (!ds || !data) {
		error_setg(errp, "out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < e->descs; i++) {
		uint64_t at = i < VHDX_LOG_DESC_FIRST ? VHDX_LOG_HEADER_LEN + i * VHDX_LOG_DESC_LEN :
			      VHDX_LOG_SECTOR * (1 + (i - VHDX_LOG_DESC_FIRST) / VHDX_LOG_DESC_PER) +
			      ((i - VHDX_LOG_DESC_FIRST) % VHDX_LOG_DESC_PER) * VHDX_LOG_DESC_LEN;
		uint64_t where = h->log_offset + (e->pos + ALIGN_DOWN(at, VHDX_LOG_SECTOR)) %
			h->log_length;
		const uint8_t *d;
		uint32_t sig;
		uint64_t off, len;

		if (at / VHDX_LOG_SECTOR != slot) {
			slot = at / VHDX_LOG_SECTOR;
			if (log_read(io, h, e->pos + slot * VHDX_LOG_SECTOR, ds, VHDX_LOG_SECTOR)) {
				error_setg(errp, "reading log sector 0x%" PRIx64, where);
				goto out;
			}
		}
		d = ds + at % VHDX_LOG_SECTOR;
		sig = vhdx_le32(d);
		off = vhdx_le64(d + 16);
		len = sig == ZERO_SIG ? vhdx_le64(d + 8) : VHDX_LOG_SECTOR;
		if ((sig != ZERO_SIG && sig != DESC_SIG) || vhdx_le64(d + 24) != e->seq ||
		    off % VHDX_LOG_SECTOR || len % VHDX_LOG_SECTOR || !target_ok(h, off, len)) {
			error_setg(errp, "log entry %" PRIu64 " (log sector at 0x%" PRIx64 "): "
				   "descriptor %" PRIu64 " is not a \"desc\" or \"zero\" descriptor "
				   "of the entry's sequence number for a 4 KiB-aligned range past the "
				   "header section and outside the log", e->seq, where, i);
			goto out;
		}
		if (sig == DESC_SIG) {
			uint64_t ds_at = (first_data + k) * VHDX_LOG_SECTOR;

			if (ds_at + VHDX_LOG_SECTOR > e->len ||
			    log_read(io, h, e->pos + ds_at, data, VHDX_LOG_SECTOR) ||
			    vhdx_le32(data) != DATA_SIG ||
			    vhdx_le32(data + 4) != (uint32_t)(e->seq >> 32) ||
			    vhdx_le32(data + 4092) != (uint32_t)e->seq) {
				error_setg(errp, "log entry %" PRIu64 ": the data sector of descriptor "
					   "%" PRIu64 " is missing, unreadable, or not a \"data\" "
					   "sector of the entry's sequence number", e->seq, i);
				goto out;
			}
			/* the sector: leading 8 bytes, the data sector's 4084 (in place), trailing 4 */
			memcpy(data, d + 8, 8);
			memcpy(data + 4092, d + 4, 4);
			k++;
		}
		if (fn && fn(io, off, len, sig == DESC_SIG ? data : NULL)) {
			error_setg(errp, "replaying log entry %" PRIu64 ": writing 0x%" PRIx64
				   " (%" PRIu64 " bytes)", e->seq, off, len);
			goto out;
		}
	}
	e->data_sectors = (uint32_t)k;
	ret = 0;
out:
	free(ds);
	free(data);
	return ret;
}

int vhdx_log_find(const struct vhdx_io *io, const struct vhdx_header *h, struct vhdx_log_seq *seq,
		  struct error **errp)
{
	struct found f = { 0 };
	const struct vhdx_log_entry **order = NULL;
	uint64_t steps = 0;
	int ret = -1;

	memset(seq, 0, sizeof(*seq));
	if (vhdx_guid_is_zero(&h->log_guid))
		return 0;
	if (scan(io, h, &f, errp))
		goto out;
	order = malloc((f.n ? f.n : 1) * sizeof(*order));
	if (!order) {
		error_setg(errp, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < f.n; i++)
		order[i] = &f.e[i];
	qsort(order, f.n, sizeof(*order), cmp_seq_desc);
	for (size_t i = 0; i < f.n && !seq->found; i++) {
		const struct vhdx_log_entry *tail;
		uint32_t count;

		if (complete(h, &f, order[i], &tail, &count, &steps)) {
			*seq = (struct vhdx_log_seq){ true, *tail, *order[i], count };
		} else if (steps >= SEARCH_STEPS) {
			error_setg(errp, "the log at 0x%" PRIx64 " holds too many entries to search "
				   "for its active sequence", h->log_offset);
			goto out;
		}
	}
	/* check every descriptor of the sequence before anything is written */
	if (seq->found) {
		struct vhdx_log_entry e = seq->tail;

		for (uint32_t i = 0; i < seq->count; i++) {
			if (walk_descs(io, h, &e, NULL, errp))
				goto out;
			if (i + 1 < seq->count)
				e = *found_at(&f, next_pos(h, &e));
		}
	}
	ret = 0;
out:
	if (ret)
		memset(seq, 0, sizeof(*seq));
	free(order);
	free(f.e);
	return ret;
}

static int apply(const struct vhdx_io *io, uint64_t off, uint64_t len, const uint8_t *sector)
{
	static const uint8_t zero[VHDX_LOG_SECTOR];

	if (sector)
		return io->write(io->opaque, off, sector, VHDX_LOG_SECTOR);
	/* past the end of the file the range reads as zeroes already */
	if (off >= io->size)
		return 0;
	len = MIN(len, io->size - off);
	if (io->zero)
		return io->zero(io->opaque, off, len);
	for (uint64_t done = 0; done < len; done += VHDX_LOG_SECTOR) {
		int ret = io->write(io->opaque, off + done, zero, VHDX_LOG_SECTOR);

		if (ret)
			return ret;
	}
	return 0;
}

int vhdx_log_replay(const struct vhdx_io *io, const struct vhdx_header *h,
		    const struct vhdx_log_seq *seq, struct error **errp)
{
	struct vhdx_log_entry e = seq->tail;
	uint8_t hb[VHDX_LOG_HEADER_LEN];

	if (!seq->found)
		return 0;
	if (io->size < seq->head.flushed) {
		error_setg(errp, "the log says the file held %" PRIu64 " bytes when it was last "
			   "flushed, but it holds %" PRIu64 ": the image was truncated",
			   seq->head.flushed, io->size);
		return -1;
	}
	for (uint32_t i = 0; i < seq->count; i++) {
		if (walk_descs(io, h, &e, apply, errp))
			return -1;
		if (i + 1 == seq->count)
			break;
		/* the next entry of the chain, as vhdx_log_find found it */
		if (log_read(io, h, next_pos(h, &e), hb, sizeof(hb)) ||
		    !entry_header(hb, h, next_pos(h, &e), &e)) {
			error_setg(errp, "rereading the log at 0x%" PRIx64, h->log_offset);
			return -1;
		}
	}
	return 0;
}

uint64_t vhdx_log_entry_len(size_t n)
{
	return (desc_sectors(n) + n) * VHDX_LOG_SECTOR;
}

void vhdx_log_entry_build(const struct vhdx_log_write *w, uint8_t *buf)
{
	uint64_t len = vhdx_log_entry_len(w->n), first_data = desc_sectors(w->n);

	memset(buf, 0, len);
	vhdx_put32(buf, ENTRY_SIG);
	vhdx_put32(buf + 8, (uint32_t)len);
	vhdx_put32(buf + 12, w->tail);
	vhdx_put64(buf + 16, w->seq);
	vhdx_put32(buf + 24, (uint32_t)w->n);
	memcpy(buf + 32, w->guid->b, 16);
	vhdx_put64(buf + 48, w->flushed);
	vhdx_put64(buf + 56, w->last);
	for (size_t i = 0; i < w->n; i++) {
		uint64_t at = i < VHDX_LOG_DESC_FIRST ? VHDX_LOG_HEADER_LEN + i * VHDX_LOG_DESC_LEN :
			      VHDX_LOG_SECTOR * (1 + (i - VHDX_LOG_DESC_FIRST) / VHDX_LOG_DESC_PER) +
			      ((i - VHDX_LOG_DESC_FIRST) % VHDX_LOG_DESC_PER) * VHDX_LOG_DESC_LEN;
		uint8_t *d = buf + at, *s = buf + (first_data + i) * VHDX_LOG_SECTOR;
		const uint8_t *src = w->sectors[i];

		vhdx_put32(d, DESC_SIG);
		memcpy(d + 4, src + 4092, 4);
		memcpy(d + 8, src, 8);
		vhdx_put64(d + 16, w->offsets[i]);
		vhdx_put64(d + 24, w->seq);
		vhdx_put32(s, DATA_SIG);
		vhdx_put32(s + 4, (uint32_t)(w->seq >> 32));
		memcpy(s + 8, src + 8, VHDX_LOG_DATA_BYTES);
		vhdx_put32(s + 4092, (uint32_t)w->seq);
	}
	vhdx_put32(buf + 4, vhdx_checksum(buf, len, 4));
}
