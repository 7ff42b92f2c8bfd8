/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nbd_serve: serves one image over NBD with vireo's NBD server (blockdev/nbd_server.h), for the
 * interop tests until vireo-storage-daemon takes this job over.
 *
 *   nbd_serve [--socket PATH | --port PORT [--host HOST]] [--name NAME] [--writable]
 *             [--format FMT] [--cache none|writeback] [--bitmap NAME] [--max-connections N]
 *             [--pidfile FILE] IMAGE
 *
 * Opens IMAGE with the block layer (node name "disk"), starts one iothread, exports the node
 * (as NAME, default "disk") and serves until SIGTERM or SIGINT; then stops the server (every
 * request completes), flushes and closes the image, and exits 0. --bitmap adds an enabled dirty
 * bitmap to the node and exports it as qemu:dirty-bitmap:NAME (writes through the export set
 * its bits). The pid file is written once the server listens; with --port 0 the port chosen is
 * printed on stdout as "port N".
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev/bitmap.h"
#include "blockdev/blockdev.h"
#include "blockdev/nbd_server.h"
#include "iothreads/iothread.h"

static void usage(void)
{
	fprintf(stderr, "usage: nbd_serve [--socket PATH | --port PORT [--host HOST]] "
		"[--name NAME] [--writable] [--format FMT] [--cache none|writeback] "
		"[--bitmap NAME] [--max-connections N] [--pidfile FILE] IMAGE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'H' },
		{ "name", required_argument, NULL, 'n' },
		{ "writable", no_argument, NULL, 'w' },
		{ "format", required_argument, NULL, 'f' },
		{ "cache", required_argument, NULL, 'c' },
		{ "bitmap", required_argument, NULL, 'b' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	struct nbd_server_opts so = { .type = NBD_ADDR_INET };
	struct nbd_export_opts eo = { .id = "export0", .name = "disk" };
	struct blockdev_opts bo = { 0 };
	const char *pidfile = NULL, *bitmap = NULL;
	struct iothread_opts io = { .poll_max_ns = 0 };
	struct error *err = NULL;
	struct nbd_server *srv;
	struct blockdev *bs;
	struct iothread *it;
	sigset_t set;
	int opt, sig;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': so.type = NBD_ADDR_UNIX; so.path = optarg; break;
		case 'p': so.port = optarg; break;
		case 'H': so.host = optarg; break;
		case 'n': eo.name = optarg; break;
		case 'w': eo.writable = true; break;
		case 'f': if (blockdev_opts_set(&bo, "format", optarg, &err)) goto fail; break;
		case 'c': if (blockdev_opts_set(&bo, "cache", optarg, &err)) goto fail; break;
		case 'b': bitmap = optarg; break;
		case 'm': so.max_connections = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'P': pidfile = optarg; break;
		default: usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	/* the signals are taken with sigwait: block them before any thread starts */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (blockdev_opts_set(&bo, "node-name", "disk", &err) ||
	    (!eo.writable && blockdev_opts_set(&bo, "readonly", "on", &err)))
		goto fail;
	bs = blockdev_open(argv[optind], &bo, &err);
	if (!bs)
		goto fail;
	if (bitmap && !blockdev_bitmap_add(bs, bitmap, 0, false, &err))
		goto fail;
	eo.bitmap = bitmap;
	it = iothread_create("nbd-io0", &io, &err);
	if (!it)
		goto fail;
	so.iothread = it;
	eo.node = bs;
	eo.iothread = it;
	srv = nbd_server_start(&so, &err);
	if (!srv || nbd_export_add(srv, &eo, &err) < 0)
		goto fail;
	if (so.type == NBD_ADDR_INET) {
		printf("port %d\n", nbd_server_port(srv));
		fflush(stdout);
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f)) {
			fprintf(stderr, "nbd_serve: %s: %s\n", pidfile, strerror(errno));
			return 1;
		}
	}
	while (sigwait(&set, &sig) != 0)
		;
	nbd_server_stop(srv);
	iothread_destroy(it);
	if (eo.writable && blockdev_flush(bs) < 0)
		fprintf(stderr, "nbd_serve: flushing %s failed\n", argv[optind]);
	blockdev_close(bs);
	blockdev_opts_free(&bo);
	return 0;
fail:
	error_report_free("nbd_serve", err);
	return 1;
}
