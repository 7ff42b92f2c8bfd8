/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's life: set-up in command-line order, the main loop (signals, monitors, jobs),
 * and the teardown that leaves every image consistent and on disk.
 *
 * Threads: this file runs on the main thread. SIGINT, SIGTERM and SIGHUP are blocked before any
 * other thread starts (so every iothread and the job thread inherit the mask) and read here
 * through a signalfd. At exit the NBD server stops first (every client disconnected once its
 * requests completed, every export gone), then the jobs are cancelled and finished
 * (job_manager_shutdown: none writes any more), then every node is flushed, the iothreads
 * stop, and the nodes close.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "blockdev/job.h"
#include "blockdev/nbd_tls_obj.h"
#include "common/keyval.h"
#include "common/util.h"
#include "control/block_nodes.h"
#include "control/block_qmp.h"
#include "control/iothread_obj.h"
#include "control/nbd_qmp.h"
#include "seccomp/privs.h"
#include "tools/sd.h"

/* --object: an iothread, a throttle group or a secret (as vireo's), or TLS credentials */
static int object_add(const char *spec, struct error **errp)
{
	struct json_object *a = keyval_parse(spec, "qom-type", errp), *t;
	const char *type;
	int ret = -1;

	if (!a)
		goto out;
	type = json_object_object_get_ex(a, "qom-type", &t) && json_object_is_type(t, json_type_string)
		       ? json_object_get_string(t) : "";
	if (nbd_tls_obj_handles(type))
		ret = nbd_tls_obj_add_json(a, errp);
	else if (!strcmp(type, "iothread") || !strcmp(type, "throttle-group") ||
		 !strcmp(type, "secret"))
		ret = iothread_obj_add_json(a, errp);
	else
		error_setg(errp, "type '%s' is not supported (iothread, throttle-group, secret, "
			   "tls-creds-x509, tls-creds-psk, authz-simple)", type);
out:
	json_object_put(a);
	if (ret < 0)
		error_prepend(errp, "--object");
	return ret;
}

static int setup_step(const struct sd_step *s, struct error **errp)
{
	switch (s->kind) {
	case SD_STEP_OBJECT:
		return object_add(s->spec, errp);
	case SD_STEP_BLOCKDEV:
		return block_nodes_add_spec(s->spec, errp); /* its messages say --blockdev */
	case SD_STEP_MONITOR:
		if (sd_monitor_add(s->chr->path, errp) < 0) {
			error_prepend(errp, "--monitor %s", s->spec);
			return -1;
		}
		return 0;
	case SD_STEP_NBD_SERVER:
		return nbd_qmp_server_start_spec(s->spec, errp); /* its messages say --nbd-server */
	case SD_STEP_EXPORT:
		return nbd_qmp_export_add_spec(s->spec, errp); /* its messages say --export */
	}
	return -1;
}

/* Serves signals, the monitors and the jobs until quit or a signal. */
static void sd_loop(int sigfd)
{
	struct pollfd pfd[2 + 2 * SD_MAX_MONITORS];

	while (!sd_quit_requested()) {
		int wait = job_manager_timeout_ms();
		unsigned int n;

		pfd[0] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = job_manager_fd(), .events = POLLIN };
		n = 2 + sd_monitor_fds(&pfd[2]);
		if (poll(pfd, n, wait) < 0) {
			if (errno == EINTR)
				continue;
			perror(SD_PROG ": poll");
			break;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si))
				sd_request_quit();
		}
		sd_monitor_handle(&pfd[2]);
		/* events, jobs to finalize, and while jobs run a look for one starved of CPU */
		if ((pfd[1].revents & POLLIN) || wait >= 0)
			job_manager_poll();
	}
}

static void flush_node(struct blockdev *bs, void *opaque)
{
	struct error **errp = opaque;
	int r = blockdev_flush(bs);

	if (r < 0 && !(errp && *errp))
		error_setg_errno(errp, r, "flushing node '%s' (%s)", bs->node_name, bs->filename);
}

/* Flushes every node (exported, owned by the monitor, their children); -1 when one failed. */
static int flush_all(struct error **errp)
{
	struct error *err = NULL;

	blockdev_for_each_node(flush_node, &err);
	if (!err)
		return 0;
	error_propagate(errp, err);
	return -1;
}

int sd_run(const struct sd_config *cfg, struct error **errp)
{
	int sigfd, status = 1;
	sigset_t sigs;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN); /* a client gone: its socket's write fails instead */
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sigfd < 0) {
		error_setg_errno(errp, errno, "cannot create a signalfd");
		return 1;
	}
	/* no devices here: a QMP "device" argument names a node */
	block_qmp_set_hooks(&(struct block_qmp_hooks){ 0 });
	iothread_obj_serve_sockets(); /* an NBD export may name any iothread */
	nbd_qmp_init(sd_event, NULL);
	if (job_manager_init(sd_event, NULL, errp) < 0)
		goto out;
	for (unsigned int i = 0; i < cfg->nr_steps; i++)
		if (setup_step(&cfg->steps[i], errp) < 0)
			goto out;
	if (cfg->pidfile && sd_pidfile_write(cfg->pidfile, errp) < 0)
		goto out;
	/* set up: the fds it opened bound RLIMIT_NOFILE, and in a jail (a uid of its own) its
	 * tasks are bounded too (seccomp/privs.h) */
	if (sandbox_limit_resources(SANDBOX_NOFILE_MARGIN_DAEMON,
				    cfg->jail.dir ? SANDBOX_NPROC_MARGIN : 0, errp) < 0)
		goto out;
	/* set up: the main thread serves the monitors and signals only (and tells the parent) */
	if (sandbox_lockdown_main(SANDBOX_ROLE_SD_MAIN, errp) < 0)
		goto out;
	sd_daemon_ready();
	sd_loop(sigfd);
	status = 0;
out:
	nbd_qmp_cleanup(); /* clients disconnected, their requests completed, exports gone */
	job_manager_shutdown(); /* before the nodes its jobs hold go */
	if (flush_all(status ? NULL : errp) < 0)
		status = 1;
	sd_monitor_cleanup();
	iothread_obj_cleanup();
	nbd_tls_obj_cleanup(); /* the server and NBD nodes hold their own references */
	block_nodes_cleanup();
	sd_pidfile_remove();
	close(sigfd);
	return status;
}
