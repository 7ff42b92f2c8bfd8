/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: `vireo run` option parsing (vmm/cmdline.c) and `--drive` parsing
 * (vmm/drive.c drive_parse).
 *
 * Input: the arguments after the program name, separated by NUL bytes (at most 64). Every
 * --drive value of an accepted command line, and the whole input read as one --drive value,
 * then go through drive_parse(). Both only stat()/access() the files named (try /proc/self/exe
 * for one that exists), so nothing is opened. --help and --version print to stdout, which the
 * harness sends to /dev/null.
 *
 * Invariants: an accepted command line has a kernel and sane cpus/memory; an accepted drive
 * has a file, a format, queue counts and sizes in range, and a queue-to-iothread map that
 * names existing iothreads; a refusal has a message.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"
#include "devices/virtqueue.h"
#include "devices/virtio_blk.h"
#include "seccomp/jail.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/config.h"
#include "vmm/drive.h"

#define MAX_ARGS 64

static void check_drive(const char *spec)
{
	struct drive_config c;
	struct error *err = NULL;

	int r = drive_parse(spec, &c, &err);

	FUZZ_LOG("cmdline: drive: %s\n", r ? error_msg(err) : "accepted");
	if (r < 0) {
		FUZZ_CHECK(err && error_msg(err)[0], "drive refused without a message");
		FUZZ_CHECK(!c.file && !c.format && !c.serial, "refused drive kept allocations");
		error_free(err);
		return;
	}
	FUZZ_CHECK(!err, "accepted drive with an error set");
	FUZZ_CHECK(c.file && c.file[0] && c.format, "accepted drive without file or format");
	FUZZ_CHECK(c.num_queues >= 1 && c.num_queues <= DRIVE_MAX_QUEUES, "num-queues %u",
		   c.num_queues);
	FUZZ_CHECK(c.iothreads >= 1 && c.iothreads <= DRIVE_MAX_IOTHREADS, "iothreads %u",
		   c.iothreads);
	FUZZ_CHECK(c.queue_size >= 4 && c.queue_size <= VIRTQ_MAX_SIZE &&
		   !(c.queue_size & (c.queue_size - 1)), "queue-size %u", c.queue_size);
	FUZZ_CHECK(!c.serial || strlen(c.serial) <= VIRTIO_BLK_ID_BYTES, "serial too long");
	for (unsigned int i = 0; i < c.num_queues; i++)
		FUZZ_CHECK(c.vq_map[i] < c.iothreads, "queue %u on iothread %u of %u", i,
			   c.vq_map[i], c.iothreads);
	drive_config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	char *buf, *argv[MAX_ARGS + 2];
	struct vm_config cfg;
	struct error *err = NULL;
	enum cmdline_result r;
	int argc = 0;

	if (!quiet) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (fd >= 0) {
			fflush(stdout);
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
		quiet = true;
	}
	buf = malloc(size + 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';

	argv[argc++] = "vireo";
	for (size_t at = 0; at < size && argc <= MAX_ARGS; at += strlen(buf + at) + 1)
		argv[argc++] = buf + at;
	argv[argc] = NULL;
	r = cmdline_parse(argc, argv, &cfg, &err);
	FUZZ_LOG("cmdline: %s\n", r == CMDLINE_ERROR ? error_msg(err) : "accepted");
	if (r == CMDLINE_ERROR) {
		FUZZ_CHECK(err && error_msg(err)[0], "command line refused without a message");
		error_free(err);
	} else if (r == CMDLINE_RUN) {
		FUZZ_CHECK(!err && cfg.kernel, "accepted without --kernel");
		FUZZ_CHECK(cfg.cpus >= 1 && cfg.cpus <= VM_CONFIG_MAX_VCPUS, "cpus %u", cfg.cpus);
		FUZZ_CHECK(cfg.memory >= 16 * MiB && cfg.memory % (4 * KiB) == 0, "memory %llu",
			   (unsigned long long)cfg.memory);
		FUZZ_CHECK(cfg.nr_drives <= VM_CONFIG_MAX_DRIVES, "%u drives", cfg.nr_drives);
		for (unsigned int i = 0; i < cfg.nr_drives; i++)
			check_drive(cfg.drives[i]);
	}
	sandbox_jail_free(&cfg.jail); /* as vireo's main(): the /dev paths --jail will need */
	/* the raw input (up to its first NUL) as one --drive value */
	check_drive(buf);
	free(buf);
	return 0;
}
