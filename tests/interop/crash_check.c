/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crash_check: after a writer was killed, does the disk hold what it must?
 *
 *   crash_check BEFORE.raw LOG AFTER.raw
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
 * A write-zeroes and a discard both put zeroes: vireo's qcow2 (v3) zeroes the parts of clusters a
 * discard covers partly and makes the whole ones zero clusters, over a backing file too
 * (blockdev/qcow2_write.c, discard()), as QEMU does. (Only a v2 image, which has no zero
 * clusters, lets a discarded cluster show its backing file again: not a case for this checker.)
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

static struct op *ops;
static size_t nops, cap_ops;
static uint64_t size;

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

/* Puts what @o wrote over [o->off + from, o->off + from + n) into buf. */
static void op_data(const struct op *o, uint64_t from, uint64_t n, uint8_t *buf)
{
	if (o->kind == 'W')
		crash_fill(buf, o->seed, o->off + from, n);
	else
		memset(buf, 0, n);
}

static void usage(void)
{
	fprintf(stderr, "usage: crash_check BEFORE.raw LOG AFTER.raw\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t flushed, after_len, lost = 0, stray = 0, shown = 0, nflushed = 0;
	uint8_t *state, *after, *ok = NULL, chunk[65536];
	uint32_t *owner = NULL; /* 4 bytes a byte: a 64 MiB disk takes 256 MiB */
	bool finished, *lost_op = NULL;
	int ret = 2;

	if (argc != 4)
		usage();
	state = read_file(argv[1], &size);
	after = read_file(argv[3], &after_len);
	if (after_len != size) {
		fprintf(stderr, "crash_check: %s has %" PRIu64 " bytes, %s %" PRIu64 "\n", argv[1],
			size, argv[3], after_len);
		goto out;
	}
	flushed = read_log(argv[2], &finished);
	if (nops >= UINT32_MAX) {
		fprintf(stderr, "crash_check: more than %u operations\n", UINT32_MAX - 1);
		goto out;
	}

	/* the flushed state; owner: which op (index + 1) wrote each byte of it, 0: none */
	owner = xrealloc(NULL, size * sizeof(*owner));
	memset(owner, 0, size * sizeof(*owner));
	for (uint32_t k = 0; k < nops && ops[k].id <= flushed; k++, nflushed++) {
		op_data(&ops[k], 0, ops[k].len, state + ops[k].off);
		for (uint64_t b = ops[k].off; b < ops[k].off + ops[k].len; b++)
			owner[b] = (uint32_t)(k + 1);
	}

	/* ok[b]: an operation after the flush could have put AFTER's byte there */
	ok = xrealloc(NULL, size);
	memset(ok, 0, size);
	for (size_t k = nflushed; k < nops; k++)
		for (uint64_t d = 0; d < ops[k].len; d += sizeof(chunk)) {
			uint64_t n = ops[k].len - d < sizeof(chunk) ? ops[k].len - d : sizeof(chunk);
			const uint8_t *got = after + ops[k].off + d;

			op_data(&ops[k], d, n, chunk);
			for (uint64_t b = 0; b < n; b++)
				ok[ops[k].off + d + b] |= got[b] == chunk[b];
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
	ret = lost || stray ? 1 : 0;
out: /* (freed, so that a sanitized build's leak check passes) */
	free(lost_op);
	free(ok);
	free(owner);
	free(after);
	free(state);
	free(ops);
	return ret;
}
