/* SPDX-License-Identifier: Apache-2.0 */
/* `vireo run` command-line parsing; every bad value is refused naming its option. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/parse.h"
#include "common/util.h"
#include "common/version.h"
#include "vmm/config.h"

void cmdline_usage(void)
{
	printf("Usage: vireo [run] --kernel PATH [options]\n"
	       "Launch a KVM microVM.\n\n"
	       "  --kernel PATH        kernel to boot: a PVH ELF or a Linux bzImage\n"
	       "  --initrd PATH        initial ramdisk (Linux) or first PVH module\n"
	       "  --cmdline STRING     kernel command line\n"
	       "  --cpus N             number of vCPUs (default 1)\n"
	       "  -m, --memory SIZE    guest RAM, with k/M/G suffix (default 256M)\n"
	       "  --serial stdio|file:PATH|none\n"
	       "                       where the COM1 console goes (default stdio)\n"
	       "  --drive OPTIONS      a disk: file=PATH,format=raw,if=virtio-blk|scsi,num-queues=N,\n"
	       "                       iothreads=N,cache=none|writeback,readonly=on|off,serial=STR,\n"
	       "                       poll-max-ns=N,poll-grow=N,poll-shrink=N,poll-backoff=on|off,\n"
	       "                       register-memory=on|off,submit=auto|eager|batched,\n"
	       "                       iothread-nice=N, QEMU's throttling keys (iops=N,bps_rd=N,\n"
	       "                       ...,group=NAME)\n"
	       "                       (may be given several times)\n"
	       "  --object iothread,id=ID[,poll-max-ns=N,poll-grow=N,poll-shrink=N,\n"
	       "                       poll-backoff=on|off,nice=N]\n"
	       "                       an iothread, as QEMU's -object iothread\n"
	       "  --object throttle-group,id=ID,limits.iops-total=N,...\n"
	       "                       I/O limits shared by the throttle nodes naming the group\n"
	       "  --object tls-creds-x509,id=ID,dir=DIR[,verify-peer=on|off] |\n"
	       "           tls-creds-psk,id=ID,dir=DIR[,username=NAME]\n"
	       "                       TLS credentials of a --blockdev driver=nbd's tls-creds=ID\n"
	       "                       (endpoint=client: DIR holds ca-cert.pem, client-cert.pem,\n"
	       "                       client-key.pem; or keys.psk)\n"
	       "  --blockdev OPTIONS   block nodes, with QEMU's -blockdev keys, dotted or JSON:\n"
	       "                       driver=qcow2,node-name=disk0,file.driver=file,\n"
	       "                       file.filename=PATH,cache.direct=on,read-only=on,...\n"
	       "  --device virtio-blk-pci,drive=NODE[,id=ID,num-queues=N,queue-size=N,\n"
	       "                       serial=STR,iothread=ID|iothread-vq-mapping=ID:ID:...]\n"
	       "                       a virtio-blk disk serving a node\n"
	       "  --device virtio-scsi-pci,id=ID[,num-queues=N,queue-size=N,iothread=ID|\n"
	       "                       iothread-vq-mapping=ID:ID:...]\n"
	       "                       a virtio-scsi controller\n"
	       "  --device scsi-hd,drive=NODE,bus=ID.0[,lun=N,scsi-id=T,serial=STR,wwn=N,id=ID]\n"
	       "                       a SCSI disk on a controller, serving a node\n"
	       "                       (each may be given several times)\n"
	       "  --affinity THREAD=CPUS\n"
	       "                       host CPUs for vCPU N (vcpuN) or iothread N (ioN), as\n"
	       "                       taskset -c takes them, e.g. io0=1 or vcpu1=2-3,6\n"
	       "                       (may be given several times)\n"
	       "  --vcpu-nice N        nice value of every vCPU thread (-20..19; below 0 needs\n"
	       "                       CAP_SYS_NICE): a positive one lets the drives' iothreads\n"
	       "                       preempt vCPUs that poll, where they share host CPUs\n"
	       "  --qmp unix:PATH      QMP monitor on a unix socket (QEMU's protocol)\n"
	       "  --boot-timer         print the time from start to the guest's first exit\n"
	       "  --sandbox on|log|off every thread under a seccomp filter of its role, without\n"
	       "                       capabilities (on, the default: a call outside the list\n"
	       "                       kills vireo by SIGSYS, naming the thread and the call; log:\n"
	       "                       the call goes through and is reported once; off: none)\n"
	       SANDBOX_JAIL_HELP
	       "  -h, --help           this help\n"
	       "  -V, --version        version\n\n"
	       "Exit status: 0 after the guest powers off or resets; (v << 1) | 1 when the guest\n"
	       "writes v to the debug-exit port 0xf4; 1 with a message on a guest or VMM failure.\n");
}

static int cmdline_serial(const char *s, struct vm_config *cfg, struct error **errp)
{
	if (!strcmp(s, "stdio")) {
		cfg->serial = SERIAL_STDIO;
	} else if (!strcmp(s, "none")) {
		cfg->serial = SERIAL_NONE;
	} else if (!strncmp(s, "file:", 5) && s[5]) {
		cfg->serial = SERIAL_FILE;
		cfg->serial_path = s + 5;
	} else {
		error_setg(errp, "--serial: '%s' is not stdio, none or file:PATH", s);
		return -1;
	}
	return 0;
}

/* unix:PATH, with QEMU's ",server" / ",server=on" / ",nowait" / ",wait=off" accepted and implied */
static int cmdline_qmp(const char *s, struct vm_config *cfg, struct error **errp)
{
	static char path[256];
	static const char *const implied[] = { ",server=on", ",server", ",wait=off", ",nowait" };
	size_t n;
	bool again = true;

	if (strncmp(s, "unix:", 5) || !s[5] || strlen(s + 5) >= sizeof(path)) {
		error_setg(errp, "--qmp: '%s' is not unix:PATH", s);
		return -1;
	}
	strcpy(path, s + 5);
	while (again) {
		again = false;
		for (size_t i = 0; i < sizeof(implied) / sizeof(implied[0]); i++) {
			n = strlen(path);
			if (n > strlen(implied[i]) && !strcmp(path + n - strlen(implied[i]), implied[i])) {
				path[n - strlen(implied[i])] = '\0';
				again = true;
			}
		}
	}
	if (strchr(path, ',')) {
		error_setg(errp, "--qmp: unknown option in '%s' (only unix:PATH is supported)", s);
		return -1;
	}
	cfg->qmp_path = path;
	return 0;
}

/* --affinity vcpuN=CPUS | ioN=CPUS (indexes are checked against the VM once it is built) */
/* One more value of a repeatable option (checked when the VM is built). */
static int cmdline_list(const char *opt, const char *arg, const char **list, unsigned int *n,
			struct error **errp)
{
	if (*n == VM_CONFIG_MAX_DRIVES) {
		error_setg(errp, "%s: at most %d", opt, VM_CONFIG_MAX_DRIVES);
		return -1;
	}
	list[(*n)++] = arg;
	return 0;
}

static int cmdline_affinity(const char *s, struct vm_config *cfg, struct error **errp)
{
	struct vm_affinity *a;
	const char *eq = strchr(s, '='), *num;
	unsigned long index;
	char name[16], *end;

	if (cfg->nr_affinity == VM_CONFIG_MAX_AFFINITY) {
		error_setg(errp, "--affinity: at most %d threads", VM_CONFIG_MAX_AFFINITY);
		return -1;
	}
	a = &cfg->affinity[cfg->nr_affinity];
	if (!eq || (size_t)(eq - s) >= sizeof(name)) {
		error_setg(errp, "--affinity: '%s' is not THREAD=CPUS (vcpuN=... or ioN=...)", s);
		return -1;
	}
	memcpy(name, s, (size_t)(eq - s));
	name[eq - s] = '\0';
	if (!strncmp(name, "vcpu", 4)) {
		num = name + 4;
		a->iothread = false;
	} else if (!strncmp(name, "io", 2)) {
		num = name + 2;
		a->iothread = true;
	} else {
		error_setg(errp, "--affinity: '%s' is not a thread name (vcpuN or ioN)", name);
		return -1;
	}
	errno = 0;
	index = strtoul(num, &end, 10);
	if (*num < '0' || *num > '9' || *end || errno || index > 1023) {
		error_setg(errp, "--affinity: '%s' is not a thread name (vcpuN or ioN)", name);
		return -1;
	}
	if (parse_cpu_list("--affinity", eq + 1, &a->cpus, errp) < 0)
		return -1;
	for (unsigned int i = 0; i < cfg->nr_affinity; i++)
		if (cfg->affinity[i].iothread == a->iothread && cfg->affinity[i].index == index) {
			error_setg(errp, "--affinity: %s is given twice", name);
			return -1;
		}
	a->spec = s;
	a->index = (unsigned int)index;
	cfg->nr_affinity++;
	return 0;
}

static int cmdline_option(int opt, const char *arg, struct vm_config *cfg, struct error **errp)
{
	uint64_t v;

	switch (opt) {
	case 'k':
		cfg->kernel = arg;
		return 0;
	case 'i':
		cfg->initrd = arg;
		return 0;
	case 'c':
		cfg->cmdline = arg;
		return 0;
	case 'p':
		if (parse_u64("--cpus", arg, 1, VM_CONFIG_MAX_VCPUS, &v, errp) < 0)
			return -1;
		cfg->cpus = (unsigned int)v;
		return 0;
	case 'm':
		if (parse_size("--memory", arg, &v, errp) < 0)
			return -1;
		if (v < 16 * MiB || v > 1024 * GiB || v % (4 * KiB)) {
			error_setg(errp, "--memory: %s must be a multiple of 4 KiB between 16M and 1T",
				   arg);
			return -1;
		}
		cfg->memory = v;
		return 0;
	case 's':
		return cmdline_serial(arg, cfg, errp);
	case 'q':
		return cmdline_qmp(arg, cfg, errp);
	case 'T':
		cfg->boot_timer = true;
		return 0;
	case 'a':
		return cmdline_affinity(arg, cfg, errp);
	case 'n':
		cfg->vcpu_nice_set = true;
		return parse_int("--vcpu-nice", arg, -20, 19, &cfg->vcpu_nice, errp);
	case 'd':
		return cmdline_list("--drive", arg, cfg->drives, &cfg->nr_drives, errp);
	case 'o':
		return cmdline_list("--object", arg, cfg->objects, &cfg->nr_objects, errp);
	case 'b':
		return cmdline_list("--blockdev", arg, cfg->blockdevs, &cfg->nr_blockdevs, errp);
	case 'D':
		return cmdline_list("--device", arg, cfg->devices, &cfg->nr_devices, errp);
	case 'S':
		return sandbox_parse_mode(arg, &cfg->sandbox, "--sandbox", errp);
	default:
		return -1;
	}
}

enum cmdline_result cmdline_parse(int argc, char **argv, struct vm_config *cfg,
				  struct error **errp)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' }, { "cpus", required_argument, NULL, 'p' },
		{ "memory", required_argument, NULL, 'm' }, { "serial", required_argument, NULL, 's' },
		{ "drive", required_argument, NULL, 'd' },  { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },      { "boot-timer", no_argument, NULL, 'T' },
		{ "qmp", required_argument, NULL, 'q' },    { "affinity", required_argument, NULL, 'a' },
		{ "vcpu-nice", required_argument, NULL, 'n' },
		{ "object", required_argument, NULL, 'o' }, { "blockdev", required_argument, NULL, 'b' },
		{ "device", required_argument, NULL, 'D' },
		/* the jail's (seccomp/jail.h): taken by name, as 'J' */
		{ "jail", required_argument, NULL, 'J' }, { "uid", required_argument, NULL, 'J' },
		{ "gid", required_argument, NULL, 'J' }, { "new-pid-ns", no_argument, NULL, 'J' },
		{ "new-net-ns", no_argument, NULL, 'J' },
		{ "sandbox", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, first = 0, index;

	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->memory = 256 * MiB;
	cfg->cmdline = "";
	cfg->sandbox = SANDBOX_ON;
	/* argv[0] is the program; an optional "run" subcommand follows */
	if (argc > 1 && !strcmp(argv[1], "run"))
		first = 1;
	else if (argc > 1 && argv[1][0] != '-') {
		error_setg(errp, "unknown command '%s' (try 'vireo --help')", argv[1]);
		return CMDLINE_ERROR;
	}
	/* getopt treats the first element as the program name: start it at "run" when given */
	argc -= first;
	argv += first;
	optind = 0; /* 0, not 1: glibc then also resets its internal state between calls */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":m:hV", opts, &index)) != -1) {
		switch (opt) {
		case 'J':
			if (sandbox_jail_option(&cfg->jail, opts[index].name, optarg, errp) < 0) {
				error_prepend(errp, "--%s", opts[index].name);
				return CMDLINE_ERROR;
			}
			break;
		case 'h':
			cmdline_usage();
			return CMDLINE_EXIT_OK;
		case 'V':
			printf("vireo %s\n", VIREO_VERSION);
			return CMDLINE_EXIT_OK;
		case ':':
			error_setg(errp, "option '%s' needs a value", argv[optind - 1]);
			return CMDLINE_ERROR;
		case '?':
			error_setg(errp, "unknown option '%s' (try 'vireo --help')", argv[optind - 1]);
			return CMDLINE_ERROR;
		default:
			if (cmdline_option(opt, optarg, cfg, errp) < 0)
				return CMDLINE_ERROR;
		}
	}
	if (optind < argc) {
		error_setg(errp, "unexpected argument '%s'", argv[optind]);
		return CMDLINE_ERROR;
	}
	for (unsigned int i = 0; i < cfg->nr_affinity; i++)
		if (!cfg->affinity[i].iothread && cfg->affinity[i].index >= cfg->cpus) {
			error_setg(errp, "--affinity %s: the VM has %u vCPU%s (vcpu0..vcpu%u)",
				   cfg->affinity[i].spec, cfg->cpus, cfg->cpus == 1 ? "" : "s",
				   cfg->cpus - 1);
			return CMDLINE_ERROR;
		}
	if (!cfg->kernel) {
		error_setg(errp, "--kernel is required (try 'vireo --help')");
		return CMDLINE_ERROR;
	}
	if (sandbox_jail_check(&cfg->jail, errp) < 0)
		return CMDLINE_ERROR;
	cfg->jail.kvm = true;
	for (unsigned int i = 0; i < cfg->nr_drives; i++)
		if (sandbox_jail_scan_devices(&cfg->jail, cfg->drives[i], errp) < 0)
			return CMDLINE_ERROR;
	for (unsigned int i = 0; i < cfg->nr_blockdevs; i++)
		if (sandbox_jail_scan_devices(&cfg->jail, cfg->blockdevs[i], errp) < 0)
			return CMDLINE_ERROR;
	if (cfg->jail.dir) /* the paths are inside the jail: main() checks them there */
		return CMDLINE_RUN;
	return cmdline_check_files(cfg, errp) < 0 ? CMDLINE_ERROR : CMDLINE_RUN;
}

int cmdline_check_files(const struct vm_config *cfg, struct error **errp)
{
	if (access(cfg->kernel, R_OK) < 0) {
		error_setg_errno(errp, errno, "--kernel: cannot read '%s'", cfg->kernel);
		return -1;
	}
	if (cfg->initrd && access(cfg->initrd, R_OK) < 0) {
		error_setg_errno(errp, errno, "--initrd: cannot read '%s'", cfg->initrd);
		return -1;
	}
	return 0;
}
