/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-storage-daemon's command line: one table of options, each with its parser and its
 * help. What makes something (--object, --blockdev, --monitor) becomes a step, set up later in
 * command-line order (sd-run.c); what only names something (--chardev) is checked here.
 * Every refusal names the option.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"
#include "common/keyval.h"
#include "common/util.h"
#include "common/version.h"
#include "tools/sd.h"

struct sd_option {
	const char *name;
	bool has_arg;
	int (*parse)(struct sd_config *c, const char *arg, struct error **errp);
	const char *help; /* "VALUE\tdescription", lines split by '\n' */
};

static int add_step(struct sd_config *c, enum sd_step_kind kind, const char *spec,
		    const struct sd_chardev *chr, struct error **errp)
{
	if (c->nr_steps == SD_MAX_STEPS) {
		error_setg(errp, "at most %d of --object, --blockdev, --monitor, --nbd-server and "
			   "--export", SD_MAX_STEPS);
		return -1;
	}
	c->steps[c->nr_steps++] = (struct sd_step){ .kind = kind, .spec = spec, .chr = chr };
	return 0;
}

static int opt_object(struct sd_config *c, const char *arg, struct error **errp)
{
	return add_step(c, SD_STEP_OBJECT, arg, NULL, errp);
}

static int opt_blockdev(struct sd_config *c, const char *arg, struct error **errp)
{
	return add_step(c, SD_STEP_BLOCKDEV, arg, NULL, errp);
}

static int opt_nbd_server(struct sd_config *c, const char *arg, struct error **errp)
{
	return add_step(c, SD_STEP_NBD_SERVER, arg, NULL, errp);
}

static int opt_export(struct sd_config *c, const char *arg, struct error **errp)
{
	return add_step(c, SD_STEP_EXPORT, arg, NULL, errp);
}

static int opt_pidfile(struct sd_config *c, const char *arg, struct error **errp)
{
	if (!*arg) {
		error_setg(errp, "empty path");
		return -1;
	}
	c->pidfile = arg;
	return 0;
}

static int opt_daemonize(struct sd_config *c, const char *arg, struct error **errp)
{
	c->daemonize = true;
	return 0;
}

static int opt_sandbox(struct sd_config *c, const char *arg, struct error **errp)
{
	return sandbox_parse_mode(arg, &c->sandbox, "value", errp);
}

/* --jail, --uid, --gid, --new-pid-ns, --new-net-ns (seccomp/jail.h) */
static int opt_jail_dir(struct sd_config *c, const char *arg, struct error **errp)
{
	return sandbox_jail_option(&c->jail, "jail", arg, errp);
}

static int opt_uid(struct sd_config *c, const char *arg, struct error **errp)
{
	return sandbox_jail_option(&c->jail, "uid", arg, errp);
}

static int opt_gid(struct sd_config *c, const char *arg, struct error **errp)
{
	return sandbox_jail_option(&c->jail, "gid", arg, errp);
}

static int opt_new_pid_ns(struct sd_config *c, const char *arg, struct error **errp)
{
	return sandbox_jail_option(&c->jail, "new-pid-ns", NULL, errp);
}

static int opt_new_net_ns(struct sd_config *c, const char *arg, struct error **errp)
{
	return sandbox_jail_option(&c->jail, "new-net-ns", NULL, errp);
}

static struct sd_chardev *find_chardev(struct sd_config *c, const char *id)
{
	for (unsigned int i = 0; i < c->nr_chardevs; i++)
		if (!strcmp(c->chardevs[i].id, id))
			return &c->chardevs[i];
	return NULL;
}

/* The --chardev keys, checked: a listening unix socket that does not wait for its client. */
static int chardev_keys(struct sd_config *c, struct json_object *a, const char **id,
			const char **path, struct error **errp)
{
	const char *backend = NULL;
	bool server = false, wait = false;

	if (keyval_take_string(a, "backend", &backend, errp) < 0 ||
	    keyval_take_string(a, "id", id, errp) < 0 ||
	    keyval_take_string(a, "path", path, errp) < 0 ||
	    keyval_take_bool(a, "server", &server, errp) < 0 ||
	    keyval_take_bool(a, "wait", &wait, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		return -1;
	if (!backend || strcmp(backend, "socket")) {
		error_setg(errp, "backend '%s' is not supported (socket)", backend ? backend : "");
		return -1;
	}
	if (!*id || !blockdev_node_name_valid(*id)) {
		error_setg(errp, "id '%s': a chardev needs an id that starts with a letter and "
			   "holds at most %d letters, digits, '-', '.' or '_'", *id ? *id : "",
			   BLOCKDEV_NODE_NAME_MAX - 1);
		return -1;
	}
	if (find_chardev(c, *id)) {
		error_setg(errp, "id '%s' is already in use", *id);
		return -1;
	}
	if (!*path || !**path) {
		error_setg(errp, "path= is missing (a unix socket; host= and port= are not "
			   "supported)");
		return -1;
	}
	if (!server) {
		error_setg(errp, "server=on is needed: the daemon listens for its monitor's client");
		return -1;
	}
	if (wait) {
		error_setg(errp, "wait=on is not supported: the daemon does not wait for a client "
			   "before it starts (wait=off)");
		return -1;
	}
	return 0;
}

/* --chardev socket,id=ID,path=PATH,server=on[,wait=off] */
static int opt_chardev(struct sd_config *c, const char *arg, struct error **errp)
{
	struct json_object *a = keyval_parse(arg, "backend", errp);
	const char *id = NULL, *path = NULL;
	struct sd_chardev *chr;
	int ret = -1;

	if (!a)
		return -1;
	if (c->nr_chardevs == SD_MAX_CHARDEVS) {
		error_setg(errp, "at most %d chardevs", SD_MAX_CHARDEVS);
		goto out;
	}
	if (chardev_keys(c, a, &id, &path, errp) < 0)
		goto out;
	chr = &c->chardevs[c->nr_chardevs];
	chr->id = strdup(id);
	chr->path = strdup(path);
	chr->used = false;
	if (!chr->id || !chr->path) {
		free(chr->id);
		free(chr->path);
		error_setg(errp, "out of memory");
		goto out;
	}
	c->nr_chardevs++;
	ret = 0;
out:
	json_object_put(a);
	return ret;
}

/* --monitor [chardev=]ID[,mode=control][,pretty=off]: QMP on an earlier --chardev */
static int opt_monitor(struct sd_config *c, const char *arg, struct error **errp)
{
	struct json_object *a = keyval_parse(arg, "chardev", errp);
	const char *id = NULL, *mode = "control";
	struct sd_chardev *chr;
	bool pretty = false;
	int ret = -1;

	if (!a)
		return -1;
	if (keyval_need_string(a, "chardev", &id, errp) < 0 ||
	    keyval_take_string(a, "mode", &mode, errp) < 0 ||
	    keyval_take_bool(a, "pretty", &pretty, errp) < 0 ||
	    keyval_refuse_leftovers(a, NULL, errp) < 0)
		goto out;
	if (strcmp(mode, "control")) {
		error_setg(errp, "mode '%s' is not supported (control: QMP)", mode);
		goto out;
	}
	if (pretty) {
		error_setg(errp, "pretty=on is not supported (one JSON message per line)");
		goto out;
	}
	chr = find_chardev(c, id);
	if (!chr) {
		error_setg(errp, "chardev '%s' not found (give --chardev socket,id=%s,... first)",
			   id, id);
		goto out;
	}
	if (chr->used) {
		error_setg(errp, "chardev '%s' is already used by a monitor", id);
		goto out;
	}
	chr->used = true;
	ret = add_step(c, SD_STEP_MONITOR, arg, chr, errp);
out:
	json_object_put(a);
	return ret;
}

static int opt_help(struct sd_config *c, const char *arg, struct error **errp);
static int opt_version(struct sd_config *c, const char *arg, struct error **errp);

static const struct sd_option options[] = {
	{ "blockdev", true, opt_blockdev,
	  "OPTIONS\tblock nodes, with QEMU's -blockdev keys (as vireo's), dotted or JSON:\n"
	  "driver=qcow2,node-name=disk0,file.driver=file,file.filename=PATH,\n"
	  "cache.direct=on,read-only=on,..." },
	{ "object", true, opt_object,
	  "iothread,id=ID[,poll-max-ns=N,poll-grow=N,poll-shrink=N,\n"
	  "poll-backoff=on|off,nice=N] | throttle-group,id=ID,limits.iops-total=N,...\n"
	  "| tls-creds-x509,id=ID,endpoint=server|client,dir=DIR[,verify-peer=on|off]\n"
	  "| tls-creds-psk,id=ID,endpoint=server|client,dir=DIR[,username=NAME]\n"
	  "| authz-simple,id=ID,identity=DN\n"
	  "| secret,id=ID,data=STRING|file=PATH[,format=raw|base64]\t"
	  "an iothread, as QEMU's -object iothread; I/O limits shared by the throttle\n"
	  "nodes naming the group, as QEMU's -object throttle-group; TLS credentials of\n"
	  "the NBD server (DIR holds ca-cert.pem, server-cert.pem, server-key.pem) or of\n"
	  "a --blockdev driver=nbd's tls-creds=ID (endpoint=client, the default: DIR holds\n"
	  "ca-cert.pem, and client-cert.pem, client-key.pem for a server that checks\n"
	  "clients), or keys.psk (psktool's username:hexkey lines; a client uses\n"
	  "username's); the client certificate an --nbd-server's tls-authz=ID lets in\n"
	  "(its distinguished name, commas doubled); or an encrypted image's passphrase\n"
	  "(a --blockdev's encrypt.key-secret=ID)" },
	{ "chardev", true, opt_chardev,
	  "socket,id=ID,path=PATH,server=on[,wait=off]\t"
	  "a unix socket for a --monitor (the daemon never waits for its client)" },
	{ "monitor", true, opt_monitor,
	  "[chardev=]ID[,mode=control]\tQMP (QEMU's protocol) on the socket of --chardev ID" },
	{ "nbd-server", true, opt_nbd_server,
	  "addr.type=inet,addr.host=HOST,addr.port=PORT | addr.type=unix,addr.path=PATH\n"
	  "[,max-connections=N][,handshake-max-seconds=N][,tls-creds=ID][,tls-authz=ID]\t"
	  "the NBD server (one); with tls-creds every client must use TLS, with\n"
	  "tls-authz only the client whose certificate the authz-simple object names" },
	{ "export", true, opt_export,
	  "[type=]nbd,id=ID,node-name=NODE[,name=NAME][,description=TEXT]\n"
	  "[,writable=on|off][,bitmap=NAME|bitmaps.0=NAME,bitmaps.1=NAME...][,iothread=ID]\t"
	  "an NBD export of a node (name: what clients ask for, the node's name by\n"
	  "default; bitmaps: up to 8 dirty bitmaps, each as qemu:dirty-bitmap:NAME;\n"
	  "iothread: where its clients are served, the server's own by default)" },
	{ "pidfile", true, opt_pidfile,
	  "PATH\twrite the daemon's pid to PATH (locked; removed at exit)" },
	{ "daemonize", false, opt_daemonize,
	  "\tgo to the background once everything is set up (errors before that\n"
	  "are printed, and the command exits 1)" },
	{ "sandbox", true, opt_sandbox,
	  "on|log|off\tevery thread under a seccomp filter of its role, without capabilities\n"
	  "(on, the default: a call outside the list kills the daemon by SIGSYS, naming\n"
	  "the thread and the call; log: the call goes through and is reported once)" },
	{ "jail", true, opt_jail_dir,
	  "DIR\trun jailed in DIR (a new mount namespace whose root is DIR): every path on\n"
	  "the command line (images, sockets, --pidfile, TLS and secret files) is inside\n"
	  "DIR, as the jailed daemon sees it; needs --uid and --gid, and root to start" },
	{ "uid", true, opt_uid, "N\tthe user the jailed daemon runs as" },
	{ "gid", true, opt_gid, "N\tthe group the jailed daemon runs as" },
	{ "new-pid-ns", false, opt_new_pid_ns,
	  "\tjailed in a new PID namespace too (the daemon is its PID 1; a parent stays\n"
	  "outside to pass on signals and the exit status)" },
	{ "new-net-ns", false, opt_new_net_ns,
	  "\tjailed in a new, empty network namespace too (unix sockets only)" },
	{ "help", false, opt_help, "\tthis help (-h)" },
	{ "version", false, opt_version, "\tthe version (-V)" },
};

/* Prints @text's lines, each after @indent spaces. */
static void print_lines(const char *text, int indent)
{
	while (*text) {
		const char *nl = strchr(text, '\n');
		int len = nl ? (int)(nl - text) : (int)strlen(text);

		printf("%*s%.*s\n", indent, "", len, text);
		text += len + (nl ? 1 : 0);
	}
}

/* One option's help: "--name VALUE" (its lines after a '\n' indented), then the description. */
static void help_option(const struct sd_option *o)
{
	const char *tab = strchr(o->help, '\t'), *nl = memchr(o->help, '\n', (size_t)(tab - o->help));
	int first = nl ? (int)(nl - o->help) : (int)(tab - o->help);
	char value[512];

	printf("  --%s%s%.*s\n", o->name, first ? " " : "", first, o->help);
	if (nl) {
		snprintf(value, sizeof(value), "%.*s", (int)(tab - nl - 1), nl + 1);
		print_lines(value, 6);
	}
	print_lines(tab + 1, 8);
}

static int opt_help(struct sd_config *c, const char *arg, struct error **errp)
{
	printf("Usage: %s [options]\n"
	       "Open images without a VM, run block jobs, and control it all over QMP\n"
	       "(qemu-storage-daemon's command line). Options are set up in the order given.\n\n",
	       SD_PROG);
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		help_option(&options[i]);
	printf("\nSIGTERM, SIGINT and SIGHUP (or QMP quit) end the daemon after its jobs are\n"
	       "cancelled and every node is flushed. Exit status: 0, or 1 with a message.\n");
	return 1;
}

static int opt_version(struct sd_config *c, const char *arg, struct error **errp)
{
	printf("%s %s\n", SD_PROG, VIREO_VERSION);
	return 1;
}

/* The option called @name (for the short forms -h and -V). */
static const struct sd_option *option_named(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (!strcmp(options[i].name, name))
			return &options[i];
	return NULL;
}

enum sd_cmdline_result sd_cmdline_parse(int argc, char **argv, struct sd_config *cfg,
					struct error **errp)
{
	struct option longopts[ARRAY_SIZE(options) + 1] = { 0 };
	int opt;

	memset(cfg, 0, sizeof(*cfg));
	cfg->sandbox = SANDBOX_ON;
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		longopts[i] = (struct option){ options[i].name,
					       options[i].has_arg ? required_argument : no_argument,
					       NULL, (int)i + 256 };
	optind = 0; /* glibc: reset its state too */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		const struct sd_option *o;
		int r;

		if (opt == ':') {
			error_setg(errp, "option '%s' needs a value", argv[optind - 1]);
			return SD_CMDLINE_ERROR;
		}
		if (opt == '?') {
			error_setg(errp, "unknown option '%s' (try '%s --help')", argv[optind - 1],
				   SD_PROG);
			return SD_CMDLINE_ERROR;
		}
		o = opt >= 256 ? &options[opt - 256] : option_named(opt == 'h' ? "help" : "version");
		r = o->parse(cfg, optarg, errp);
		if (r > 0)
			return SD_CMDLINE_EXIT_OK;
		if (r < 0) {
			error_prepend(errp, "--%s", o->name);
			return SD_CMDLINE_ERROR;
		}
	}
	if (optind < argc) {
		error_setg(errp, "unexpected argument '%s' (try '%s --help')", argv[optind], SD_PROG);
		return SD_CMDLINE_ERROR;
	}
	if (sandbox_jail_check(&cfg->jail, errp) < 0)
		return SD_CMDLINE_ERROR;
	for (unsigned int i = 0; i < cfg->nr_steps; i++)
		if (cfg->steps[i].kind == SD_STEP_BLOCKDEV &&
		    sandbox_jail_scan_devices(&cfg->jail, cfg->steps[i].spec, errp) < 0)
			return SD_CMDLINE_ERROR;
	return SD_CMDLINE_RUN;
}

void sd_config_free(struct sd_config *cfg)
{
	for (unsigned int i = 0; i < cfg->nr_chardevs; i++) {
		free(cfg->chardevs[i].id);
		free(cfg->chardevs[i].path);
	}
	cfg->nr_chardevs = 0;
	sandbox_jail_free(&cfg->jail);
}
