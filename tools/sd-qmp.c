/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's QMP: its command table (the block layer's, the jobs', the bitmaps', the
 * snapshots', the NBD server's, plus quit and query-commands) served on every --monitor, and the events sent to all of them. Main
 * thread only.
 */
#include <json-c/json.h>

#include "common/util.h"
#include "control/bitmap_qmp.h"
#include "control/block_qmp.h"
#include "control/info_qmp.h"
#include "control/job_qmp.h"
#include "control/nbd_qmp.h"
#include "control/snapshot_qmp.h"
#include "control/qmp_server.h"
#include "tools/sd.h"

static struct qmp_server *monitors[SD_MAX_MONITORS];
static unsigned int nr_fds[SD_MAX_MONITORS]; /* how many pollfds each filled last */
static unsigned int nr_monitors;
static bool quit;

bool sd_quit_requested(void)
{
	return quit;
}

void sd_request_quit(void)
{
	quit = true;
}

static int qmp_quit(void *opaque, struct json_object *args, struct json_object **ret,
		    struct error **errp)
{
	sd_request_quit();
	return 0;
}

static int qmp_query_commands(void *opaque, struct json_object *args, struct json_object **ret,
			      struct error **errp);

static const struct qmp_command commands[] = {
	BITMAP_QMP_COMMANDS,
	BLOCK_QMP_COMMANDS,
	INFO_QMP_COMMANDS,
	JOB_QMP_COMMANDS,
	NBD_QMP_COMMANDS,
	SNAPSHOT_QMP_COMMANDS,
	{ "query-commands", qmp_query_commands },
	{ "quit", qmp_quit },
};

static int qmp_query_commands(void *opaque, struct json_object *args, struct json_object **ret,
			      struct error **errp)
{
	*ret = qmp_command_list(commands, ARRAY_SIZE(commands));
	return 0;
}

int sd_monitor_add(const char *path, struct error **errp)
{
	if (nr_monitors == SD_MAX_MONITORS) {
		error_setg(errp, "at most %d monitors", SD_MAX_MONITORS);
		return -1;
	}
	monitors[nr_monitors] = qmp_server_new(path, commands, ARRAY_SIZE(commands), NULL, errp);
	if (!monitors[nr_monitors])
		return -1;
	nr_monitors++;
	return 0;
}

/* An event (a job's, an export's) to every monitor's client. */
void sd_event(void *opaque, const char *name, struct json_object *data)
{
	for (unsigned int i = 0; i < nr_monitors; i++)
		qmp_event(monitors[i], name, i + 1 < nr_monitors ? json_object_get(data) : data);
	if (!nr_monitors)
		json_object_put(data);
}

unsigned int sd_monitor_fds(struct pollfd *pfd)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < nr_monitors; i++) {
		nr_fds[i] = qmp_fds(monitors[i], &pfd[n]);
		n += nr_fds[i];
	}
	return n;
}

void sd_monitor_handle(const struct pollfd *pfd)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < nr_monitors; i++) {
		qmp_handle(monitors[i], &pfd[n], nr_fds[i]);
		n += nr_fds[i];
	}
}

void sd_monitor_cleanup(void)
{
	while (nr_monitors)
		qmp_server_free(monitors[--nr_monitors]);
}
