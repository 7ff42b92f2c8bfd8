/* SPDX-License-Identifier: Apache-2.0 */
/*
 * img_io: a tiny qemu-io look-alike over vireo's block layer, for interop tests.
 *   img_io [-f fmt] [-o driver_opts] FILE -c "write -P 0xab OFF LEN" -c "write -z OFF LEN"
 *          -c "discard OFF LEN" -c "read -P 0xab OFF LEN" -c "truncate SIZE" ...
 *          -c "write -S SEED OFF LEN" -c "flush" -c "sleep MS" ...
 *   -g N: up to N consecutive "write -P" / "write -S" commands go to the driver's group commit
 *         (pwritev_group, as the slow-path worker sends them) instead of one by one.
 *   -s SPEC: a secret object (secret,id=sec0,data=...) for an encrypted image's key-secret
 *   -l:   the crash-consistency log on stdout (crash_pattern.h), unbuffered: "@W" / "@Z" / "@D"
 *         before each write -S, write -z and discard is issued (the command's index is its ID),
 *         "@F ID" once a flush command (or the final flush) returned, "@E" at the very end.
 * "write -S SEED" writes crash_fill()'s data (crash_pattern.h): unique to the seed and the offset.
 * Exits 0 when every command succeeded (and every read matched its pattern), 1 otherwise.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "common/parse.h"
#include "common/secret.h"
#include "common/util.h"
#include "tests/interop/crash_pattern.h"

#define MAX_CMDS 4096

/* -l: write each log line with one write(2), so that a SIGKILL never leaves one in a buffer */
static bool logging;

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
	char line[128];
	va_list ap;
	int n;

	if (!logging)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) != n)
		abort(); /* a log we cannot trust must not pass a check */
}

static int run(struct blockdev *bs, char *cmd, int id)
{
	char *argv[8], *save = NULL, *tok;
	int argc = 0, pattern = -1, zero = 0, ret;
	uint64_t off, len, seed = 0;
	bool seeded = false;
	struct error *err = NULL;

	for (tok = strtok_r(cmd, " ", &save); tok && argc < 8; tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	if (argc == 2 && !strcmp(argv[0], "truncate")) {
		if (parse_size("size", argv[1], &len, &err) || blockdev_truncate(bs, len, &err)) {
			error_report_free("img_io", err);
			return -1;
		}
		return 0;
	}
	if (argc == 2 && !strcmp(argv[0], "sleep")) { /* milliseconds: a peer restarts meanwhile */
		usleep((useconds_t)strtoul(argv[1], NULL, 10) * 1000);
		return 0;
	}
	if (argc == 1 && !strcmp(argv[0], "flush")) {
		if ((ret = blockdev_flush(bs))) {
			fprintf(stderr, "img_io: flush: %s\n", strerror(-ret));
			return -1;
		}
		log_line("@F %d\n", id);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "-S")) {
		if (parse_u64("seed", argv[2], 0, UINT64_MAX, &seed, &err)) {
			error_report_free("img_io", err);
			return -1;
		}
		seeded = true;
		memmove(argv + 1, argv + 3, (size_t)(argc - 3) * sizeof(*argv));
		argc -= 2;
	} else if (argc >= 3 && !strcmp(argv[1], "-P")) {
		pattern = (int)strtol(argv[2], NULL, 0);
		memmove(argv + 1, argv + 3, (size_t)(argc - 3) * sizeof(*argv));
		argc -= 2;
	} else if (argc >= 2 && !strcmp(argv[1], "-z")) {
		zero = 1;
		memmove(argv + 1, argv + 2, (size_t)(argc - 2) * sizeof(*argv));
		argc -= 1;
	}
	if (argc != 3 || parse_size("offset", argv[1], &off, &err) ||
	    parse_size("length", argv[2], &len, &err)) {
		if (err)
			error_report_free("img_io", err);
		fprintf(stderr, "img_io: bad command\n");
		return -1;
	}
	if (!strcmp(argv[0], "discard")) {
		log_line("@D %d %" PRIu64 " %" PRIu64 "\n", id, off, len);
		ret = blockdev_discard(bs, off, len);
	} else if (!strcmp(argv[0], "write") && zero) {
		log_line("@Z %d %" PRIu64 " %" PRIu64 "\n", id, off, len);
		ret = blockdev_write_zeroes(bs, off, len, BLOCKDEV_ZERO_MAY_UNMAP);
	} else {
		uint8_t *buf = malloc(len ? len : 1);

		if (!buf)
			return -1;
		if (!strcmp(argv[0], "write")) {
			if (seeded) {
				crash_fill(buf, seed, off, len);
				log_line("@W %d %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", id, off, len,
					 seed);
			} else {
				memset(buf, pattern < 0 ? 0xcd : pattern, len);
			}
			ret = blockdev_pwrite(bs, off, buf, len);
		} else {
			ret = blockdev_pread(bs, off, buf, len);
			for (uint64_t i = 0; !ret && pattern >= 0 && i < len; i++)
				if (buf[i] != pattern) {
					fprintf(stderr,
						"img_io: byte %" PRIu64 " is 0x%02x, not 0x%02x\n",
						off + i, buf[i], pattern);
					ret = -1000;
				}
		}
		free(buf);
	}
	if (ret && ret != -1000)
		fprintf(stderr, "img_io: %s %" PRIu64 " %" PRIu64 ": %s\n", argv[0], off, len,
			strerror(-ret));
	return ret ? -1 : 0;
}

/* Pending "write -P" commands of a group (-g). */
static struct {
	struct blockdev_write w[256];
	struct iovec v[256];
	int n;
} grp;

/* Sends the pending group; -1 if a write of it failed. */
static int group_flush(struct blockdev *bs)
{
	int ret = 0;

	if (grp.n)
		bs->drv->pwritev_group(bs, grp.w, (size_t)grp.n);
	for (int i = 0; i < grp.n; i++) {
		if (grp.w[i].ret) {
			fprintf(stderr, "img_io: grouped write %" PRIu64 ": %s\n", grp.w[i].offset,
				strerror(-grp.w[i].ret));
			ret = -1;
		}
		free(grp.v[i].iov_base);
	}
	grp.n = 0;
	return ret;
}

/*
 * Queues @cmd to the group if it is a "write -P PATTERN OFF LEN" or "write -S SEED OFF LEN"; 1 if
 * queued, 0 if not, -1 on error.
 */
static int group_add(struct blockdev *bs, const char *cmd, int max, int id)
{
	uint64_t off, len, val;
	char o[32], l[32], v[32], kind;
	uint8_t *buf;

	/* the numbers are read as run() reads them ("64k" included) */
	if (sscanf(cmd, "write -%c %31s %31s %31s", &kind, v, o, l) != 4 ||
	    (kind != 'P' && kind != 'S') || parse_u64("value", v, 0, UINT64_MAX, &val, NULL) ||
	    parse_size("offset", o, &off, NULL) || parse_size("length", l, &len, NULL) || !len ||
	    !range_within(off, len, bs->size))
		return 0;
	buf = malloc(len);
	if (!buf)
		return -1;
	if (kind == 'S') {
		crash_fill(buf, val, off, len);
		log_line("@W %d %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", id, off, len, val);
	} else {
		memset(buf, (int)val, len);
	}
	grp.v[grp.n] = (struct iovec){ buf, len };
	grp.w[grp.n] = (struct blockdev_write){ .offset = off, .iov = &grp.v[grp.n], .iovcnt = 1 };
	if (++grp.n == max)
		return group_flush(bs) ? -1 : 1;
	return 1;
}

int main(int argc, char **argv)
{
	struct blockdev_opts o = { 0 };
	struct error *err = NULL;
	static char *cmds[MAX_CMDS];
	int ncmds = 0, c, status = 0, group = 0;
	struct blockdev *bs;

	while ((c = getopt(argc, argv, "f:o:c:rg:ls:")) != -1) {
		if (c == 'l')
			logging = true;
		if (c == 's' && secret_add_spec(optarg, &err))
			goto fail;
		if (c == 'g') {
			uint64_t g;

			if (parse_u64("-g", optarg, 1, ARRAY_SIZE(grp.w), &g, &err))
				goto fail;
			group = (int)g;
		}
		if (c == 'f' && blockdev_opts_set(&o, "format", optarg, &err))
			goto fail;
		if (c == 'o') {
			char *eq = strchr(optarg, '=');

			if (!eq) {
				fprintf(stderr, "img_io: -o key=value\n");
				return 1;
			}
			*eq = '\0';
			if (blockdev_opts_set(&o, optarg, eq + 1, &err))
				goto fail;
		}
		if (c == 'r')
			o.readonly = true;
		if (c == 'c' && ncmds == MAX_CMDS) {
			fprintf(stderr, "img_io: more than %d commands\n", MAX_CMDS);
			return 1;
		}
		if (c == 'c')
			cmds[ncmds++] = optarg;
		if (c == '?')
			return 1;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: img_io [-f fmt] [-o k=v] [-s secret] [-r] [-g N] [-l] FILE "
			"-c CMD...\n");
		return 1;
	}
	bs = blockdev_open(argv[optind], &o, &err);
	blockdev_opts_free(&o);
	if (!bs)
		goto fail;
	if (group > 0 && !bs->drv->pwritev_group) {
		fprintf(stderr, "img_io: -g: the %s driver has no group commit\n", bs->drv->name);
		status = 1;
	}
	for (int i = 0; i < ncmds && !status; i++) {
		int queued = group > 0 ? group_add(bs, cmds[i], group, i + 1) : 0;

		if (queued < 0 || (!queued && group_flush(bs)))
			status = 1;
		else if (!queued)
			status = run(bs, cmds[i], i + 1) ? 1 : 0;
	}
	if (!status && group_flush(bs))
		status = 1;
	if (!status && blockdev_flush(bs))
		status = 1;
	if (!status) {
		log_line("@F %d\n", ncmds);
		log_line("@E\n");
	}
	blockdev_close(bs);
	return status;
fail:
	error_report_free("img_io", err);
	return 1;
}
