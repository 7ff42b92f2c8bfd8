/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-storage-daemon: images opened without a VM, block jobs, controlled over QMP, with
 * qemu-storage-daemon's command line. A thin front end: the nodes, objects, jobs and QMP
 * commands are the ones vireo has (blockdev/, iothreads/, control/); this directory only holds
 * the daemon's own command line, process handling, command table and main loop.
 *
 *   sd-cmdline.c   the options (one table), --help, --chardev and --monitor
 *   sd-process.c   --pidfile and --daemonize
 *   sd-qmp.c       the QMP command table, quit, events to every monitor
 *   sd-run.c       set-up in command-line order, the main loop, the drain and flush at exit
 *
 * Threads: the main thread does everything here (set-up, QMP, signals, teardown); the block
 * layer's iothreads and the job thread are started by the objects and the job manager, after
 * --daemonize forked.
 */
#ifndef VIREO_TOOLS_SD_H
#define VIREO_TOOLS_SD_H

#include <poll.h>
#include <stdbool.h>

#include "common/error.h"
#include "seccomp/jail.h"
#include "seccomp/sandbox.h"

struct json_object;

#define SD_PROG "vireo-storage-daemon"

#define SD_MAX_STEPS 256
#define SD_MAX_CHARDEVS 8
#define SD_MAX_MONITORS 8

/* --chardev socket,id=ID,path=PATH,server=on,wait=off: a unix socket the daemon listens on */
struct sd_chardev {
	char *id;
	char *path;
	bool used; /* a --monitor took it */
};

/* What a set-up step makes; set up in command-line order, as qemu-storage-daemon does. */
enum sd_step_kind {
	SD_STEP_OBJECT,   /* --object: an iothread or a throttle group */
	SD_STEP_BLOCKDEV, /* --blockdev: nodes */
	SD_STEP_MONITOR,  /* --monitor: QMP on a --chardev's socket */
	SD_STEP_NBD_SERVER, /* --nbd-server: the NBD server */
	SD_STEP_EXPORT,   /* --export: an NBD export */
};

struct sd_step {
	enum sd_step_kind kind;
	const char *spec;              /* the option's value */
	const struct sd_chardev *chr; /* SD_STEP_MONITOR: its socket */
};

struct sd_config {
	struct sd_step steps[SD_MAX_STEPS];
	unsigned int nr_steps;
	struct sd_chardev chardevs[SD_MAX_CHARDEVS];
	unsigned int nr_chardevs;
	const char *pidfile; /* --pidfile, NULL: none */
	bool daemonize;
	enum sandbox_mode sandbox; /* --sandbox: on by default */
	struct sandbox_jail jail;  /* --jail ...: main() enters it after --daemonize's fork */
};

enum sd_cmdline_result { SD_CMDLINE_RUN, SD_CMDLINE_EXIT_OK, SD_CMDLINE_ERROR };

/* Parses argv; on SD_CMDLINE_ERROR *errp names the option. Free with sd_config_free(). */
enum sd_cmdline_result sd_cmdline_parse(int argc, char **argv, struct sd_config *cfg,
					struct error **errp);
void sd_config_free(struct sd_config *cfg);

/*
 * --daemonize: forks; the parent waits until the child says it is ready (sd_daemon_ready), or
 * fails or dies first (the child's messages reach the parent's stderr until then), and returns
 * 1 with the status to exit with in *parent_status (0 ready, 1 not). Returns 0 in the child
 * (now a session leader), -1 on error.
 */
int sd_daemonize(int *parent_status, struct error **errp);
/* The daemon is set up: tells a waiting parent, and moves to / with its stdio on /dev/null. */
void sd_daemon_ready(void);

/*
 * --pidfile PATH: writes the daemon's pid into PATH, locked so that a second daemon given the
 * same file is refused; sd_pidfile_remove() unlinks it at exit.
 */
int sd_pidfile_write(const char *path, struct error **errp);
void sd_pidfile_remove(void);

/* The daemon's monitors (sd-qmp.c): a QMP server on @path, and an event to every client. */
int sd_monitor_add(const char *path, struct error **errp);
void sd_event(void *opaque, const char *name, struct json_object *data);
/* Fills @pfd with every monitor's fds (at most 2 each); returns how many it filled.
 * sd_monitor_handle() then takes the same array back after poll(). */
unsigned int sd_monitor_fds(struct pollfd *pfd);
void sd_monitor_handle(const struct pollfd *pfd);
void sd_monitor_cleanup(void);
/* quit over QMP (or a signal) asked the main loop to stop. */
bool sd_quit_requested(void);
void sd_request_quit(void);

/* Builds what @cfg asks, serves until quit or a signal, and tears down: the exit status. */
int sd_run(const struct sd_config *cfg, struct error **errp);

#endif
