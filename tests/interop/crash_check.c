/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crash_check: after a writer was killed, does the disk hold what it must?
 *
 *   crash_check [-a MAP.json] -c CLUSTER_SIZE BEFORE.raw LOG AFTER.raw
 *
 * BEFORE.raw is the disk's content when the writer started, LOG its crash log (crash_pattern.h:
 * "@W/@Z/@D" before each operation was issued, "@F ID" after each completed flush; other lines
 * are ignored, as is a last line the kill cut short), AFTER.raw the disk's content after the kill
 * (both as `qemu-img convert -O raw` reads them).
 *
 * The operations are replayed in ID order on BEFORE; the state right after the last operation a
 * completed flush covers (F) is what the disk must hold, byte for byte, except where an operation
 * issued after F (completed or not: the kill may have come before or after it reached the file)
 * wrote: there a byte may hold that operation's data instead. So a byte of AFTER is right when it
 * equals the flushed state or the data of an unflushed operation covering it. A wrong byte is a
 * lost flushed write when a flushed operation of this run wrote it, a stray change otherwise.
 *
 * What a discard leaves is replayed as vireo's qcow2 does it (blockdev/qcow2_write.c, discard()):
 * the parts of clusters it covers partly read as zeroes; a whole cluster it covers reads as
 * zeroes, unless the cluster is unallocated in an image with a backing file, which it leaves
 * unallocated (still reading the backing file). Which clusters are allocated when the writer
 * starts comes from -a (`qemu-img map --output=json` of the image then; without -a, the image
 * has no backing file and the question does not arise); after that, a write, write-zeroes or
 * partial discard allocates every cluster it touches, and no operation deallocates one.
 *
 * Prints one line of figures ("crash_check: ops=N flushed=F unflushed=U finished=0|1
 * lost_writes=L stray_bytes=S"), and the first wrong ranges. Exits 0 when every byte is right,
 * 1 when one is not, 2 on a usage or I/O error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/interop/crash_pattern.h"

struct op {
	char kind;              /* 'W', 'Z', 'D' */
	uint64_t id, off, len, seed;
};

/* What one operation puts on the disk: zeroes or crash_fill() data over a range. */
struct seg {
	uint64_t off, len, seed;
	bool zero;
	uint32_t op;            /* index into ops[] */
};

static struct op *ops;
static size_t nops, cap_ops;
static struct seg *segs;
static size_t nsegs, cap_segs;
static uint64_t size, cluster;
static bool *alloc;             /* per cluster; NULL: no backing file */

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "crash_check: out of memory\n");
		exit(2);
	}
	return p;
}

static uint8_t *read_file(const char *path, uint64_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fprintf(stderr, "crash_check: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	buf = xrealloc(NULL, (size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "crash_check: %s: short read\n", path);
		exit(2);
	}
	fclose(f);
	buf[n] = 0;
	*len = (uint64_t)n;
	return buf;
}

/* Reads the log; returns the ID the last completed flush covers (0: none). */
static uint64_t read_log(const char *path, bool *finished)
{
	uint64_t len, flushed = 0, last = 0;
	char *text = (char *)read_file(path, &len), *line = text, *nl;

	*finished = false;
	for (; (nl = memchr(line, '\n', (size_t)(text + len - line))); line = nl + 1) {
		struct op o = { 0 };
		uint64_t id;
		char *at = memchr(line, '@', (size_t)(nl - line));

		*nl = 0;
		if (!at)
			continue;
		if (sscanf(at, "@F %" SCNu64, &id) == 1) {
			if (id < flushed) {
				fprintf(stderr, "crash_check: %s: '%s' after a flush of op %" PRIu64 "\n",
					path, at, flushed);
				exit(2);
			}
			flushed = last = id;
		} else if (!strncmp(at, "@E", 2)) {
			*finished = true;
		} else if ((sscanf(at, "@%c %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &o.kind,
				   &o.id, &o.off, &o.len, &o.seed) == 5 && o.kind == 'W') ||
			   (sscanf(at, "@%c %" SCNu64 " %" SCNu64 " %" SCNu64, &o.kind, &o.id, &o.off,
				   &o.len) == 4 && (o.kind == 'Z' || o.kind == 'D'))) {
			if (o.id <= last || o.off > size || o.len > size - o.off) {
				fprintf(stderr, "crash_check: %s: bad line '%s'\n", path, at);
				exit(2);
			}
			if (nops == cap_ops) {
				cap_ops = cap_ops ? cap_ops * 2 : 1024;
				ops = xrealloc(ops, cap_ops * sizeof(*ops));
			}
			ops[nops++] = o;
			last = o.id;
		}
	}
	free(text);
	return flushed;
}

/* Which clusters hold data or zeroes of the image itself (depth 0) in a qemu-img map. */
static void read_map(const char *path)
{
	uint64_t len;
	char *text = (char *)read_file(path, &len), *p = text;

	alloc = xrealloc(NULL, size / cluster + 1);
	memset(alloc, 0, size / cluster + 1);
	while ((p = strstr(p, "\"start\":"))) {
		uint64_t start, n;
		int depth;
		char *l = strstr(p, "\"length\":"), *d = strstr(p, "\"depth\":");

		if (!l || !d || sscanf(p, "\"start\": %" SCNu64, &start) != 1 ||
		    sscanf(l, "\"length\": %" SCNu64, &n) != 1 || sscanf(d, "\"depth\": %d", &depth) != 1 ||
		    start > size || n > size - start) {
			fprintf(stderr, "crash_check: %s: not a qemu-img map --output=json\n", path);
			exit(2);
		}
		for (uint64_t c = start / cluster; depth == 0 && n && c <= (start + n - 1) / cluster; c++)
			alloc[c] = true;
		p++;
	}
	free(text);
}

static void add_seg(uint32_t op, uint64_t off, uint64_t len, bool zero)
{
	if (!len)
		return;
	if (nsegs == cap_segs) {
		cap_segs = cap_segs ? cap_segs * 2 : 1024;
		segs = xrealloc(segs, cap_segs * sizeof(*segs));
	}
	segs[nsegs++] = (struct seg){ off, len, ops[op].seed, zero, op };
}

static void allocate(uint64_t off, uint64_t len)
{
	for (uint64_t c = off / cluster; alloc && len && c <= (off + len - 1) / cluster; c++)
		alloc[c] = true;
}

/* Appends to segs[] what ops[i] puts on the disk, and updates alloc[] as it does. */
static void replay(uint32_t i)
{
	const struct op *o = &ops[i];
	uint64_t end = o->off + o->len, head, tail;

	if (o->kind != 'D') {
		add_seg(i, o->off, o->len, o->kind == 'Z');
		allocate(o->off, o->len);
		return;
	}
	/* qcow2_write.c discard(): partial clusters zeroed, whole ones discarded */
	head = end < (o->off + cluster - 1) / cluster * cluster ?
	       end : (o->off + cluster - 1) / cluster * cluster;
	tail = end == size ? end : end / cluster * cluster;
	if (tail < head)
		tail = head;
	add_seg(i, o->off, head - o->off, true);
	allocate(o->off, head - o->off);
	add_seg(i, tail, end - tail, true);
	allocate(tail, end - tail);
	for (uint64_t c = head; c < tail; c += cluster)
		if (!alloc || alloc[c / cluster])
			add_seg(i, c, cluster < tail - c ? cluster : tail - c, true);
}

static void usage(void)
{
	fprintf(stderr, "usage: crash_check [-a MAP.json] -c CLUSTER_SIZE BEFORE.raw LOG AFTER.raw\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *map = NULL;
	uint64_t flushed, after_len, lost = 0, stray = 0, shown = 0, nflushed = 0;
	uint8_t *state, *after, *ok, chunk[65536];
	uint16_t *owner;
	bool finished, *lost_op;
	size_t first_unflushed;
	int i;

	for (i = 1; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "-a"))
			map = argv[i + 1];
		else if (!strcmp(argv[i], "-c"))
			cluster = strtoull(argv[i + 1], NULL, 0);
		else
			usage();
	}
	if (argc - i != 3 || !cluster || (cluster & (cluster - 1)))
		usage();
	state = read_file(argv[i], &size);
	after = read_file(argv[i + 2], &after_len);
	if (after_len != size) {
		fprintf(stderr, "crash_check: %s has %" PRIu64 " bytes, %s %" PRIu64 "\n", argv[i],
			size, argv[i + 2], after_len);
		return 2;
	}
	if (map)
		read_map(map);
	flushed = read_log(argv[i + 1], &finished);
	if (nops >= UINT16_MAX) {
		fprintf(stderr, "crash_check: more than %u operations\n", UINT16_MAX - 1);
		return 2;
	}

	/* the flushed state; owner: which op (index + 1) wrote each byte of it, 0: none */
	owner = xrealloc(NULL, size * sizeof(*owner));
	memset(owner, 0, size * sizeof(*owner));
	first_unflushed = 0;
	for (uint32_t k = 0; k < nops; k++) {
		size_t s0 = nsegs;

		replay(k);
		if (ops[k].id > flushed)
			continue;
		nflushed++;
		for (size_t s = s0; s < nsegs; s++) {
			if (segs[s].zero)
				memset(state + segs[s].off, 0, segs[s].len);
			else
				crash_fill(state + segs[s].off, segs[s].seed, segs[s].off, segs[s].len);
			for (uint64_t b = segs[s].off; b < segs[s].off + segs[s].len; b++)
				owner[b] = (uint16_t)(k + 1);
		}
		first_unflushed = nsegs;
	}

	/* ok[b]: an operation after the flush could have put AFTER's byte there */
	ok = xrealloc(NULL, size);
	memset(ok, 0, size);
	for (size_t s = first_unflushed; s < nsegs; s++)
		for (uint64_t d = 0; d < segs[s].len; d += sizeof(chunk)) {
			uint64_t n = segs[s].len - d < sizeof(chunk) ? segs[s].len - d : sizeof(chunk);

			if (segs[s].zero)
				memset(chunk, 0, n);
			else
				crash_fill(chunk, segs[s].seed, segs[s].off + d, n);
			for (uint64_t b = 0; b < n; b++)
				ok[segs[s].off + d + b] |= after[segs[s].off + d + b] == chunk[b];
		}

	lost_op = xrealloc(NULL, nops + 1);
	memset(lost_op, 0, nops + 1);
	for (uint64_t b = 0; b < size; b++) {
		uint64_t e = b;

		if (after[b] == state[b] || ok[b])
			continue;
		/* a wrong range: as far as the same owner's bytes stay wrong */
		while (e + 1 < size && owner[e + 1] == owner[b] && after[e + 1] != state[e + 1] &&
		       !ok[e + 1])
			e++;
		if (owner[b] && !lost_op[owner[b]]) {
			lost_op[owner[b]] = true;
			lost++;
		}
		if (!owner[b])
			stray += e - b + 1;
		if (shown++ < 10) {
			if (owner[b]) {
				const struct op *o = &ops[owner[b] - 1];

				printf("LOST: bytes [%" PRIu64 ", %" PRIu64 "] read 0x%02x..., not what "
				       "flushed op %" PRIu64 " (@%c %" PRIu64 " %" PRIu64 ") left "
				       "(0x%02x...)\n", b, e, after[b], o->id, o->kind, o->off, o->len,
				       state[b]);
			} else {
				printf("STRAY: bytes [%" PRIu64 ", %" PRIu64 "] read 0x%02x..., which "
				       "no operation wrote (was 0x%02x...)\n", b, e, after[b], state[b]);
			}
		}
		b = e;
	}
	printf("crash_check: ops=%zu flushed=%" PRIu64 " unflushed=%" PRIu64 " finished=%d "
	       "lost_writes=%" PRIu64 " stray_bytes=%" PRIu64 "\n", nops, nflushed, nops - nflushed,
	       finished, lost, stray);
	return lost || stray ? 1 : 0;
}
