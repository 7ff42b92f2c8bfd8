/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BLOCK_IO_ERROR reports (io_error.h).
 *
 * Ownership: the slots are guarded by s.lock. Iothreads fill a device's slot (the latest error
 * replaces an unsent one) and write s.efd; only the control-plane thread sends, clears and
 * times them. A failing request is rare and the section short, so a mutex on the error path
 * costs the data path nothing. At most NR_SLOTS devices are tracked; reports of more are
 * dropped (said once on stderr).
 */
#include "blockdev/io_error.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define NR_SLOTS 64
#define NAME_MAX_LEN 64
#define THROTTLE_NS 1000000000ULL /* QEMU: one BLOCK_IO_ERROR a second per device */

struct slot {
	char qdev[NAME_MAX_LEN];
	char node[NAME_MAX_LEN];
	bool write;
	int ret;
	bool pending;     /* a report not sent yet */
	bool sent;        /* one was sent, at last_ns */
	uint64_t last_ns;
};

static struct {
	pthread_mutex_t lock;
	pthread_once_t once;
	int efd;
	struct slot slots[NR_SLOTS];
	size_t nr;
	bool full_said;
} s = { .lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT, .efd = -1 };

static void init(void)
{
	s.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The slot of @qdev, made if new (lock held); NULL when all are taken. */
static struct slot *slot_of(const char *qdev)
{
	for (size_t i = 0; i < s.nr; i++)
		if (!strcmp(s.slots[i].qdev, qdev))
			return &s.slots[i];
	if (s.nr == NR_SLOTS)
		return NULL;
	snprintf(s.slots[s.nr].qdev, NAME_MAX_LEN, "%s", qdev);
	return &s.slots[s.nr++];
}

void blockdev_io_error(const char *qdev, const char *node, bool is_write, int ret)
{
	uint64_t one = 1;
	struct slot *sl;

	pthread_once(&s.once, init);
	pthread_mutex_lock(&s.lock);
	sl = slot_of(qdev ? qdev : "");
	if (sl) {
		snprintf(sl->node, NAME_MAX_LEN, "%s", node ? node : "");
		sl->write = is_write;
		sl->ret = ret;
		sl->pending = true;
	} else if (!s.full_said) {
		s.full_said = true;
		fprintf(stderr, "vireo: BLOCK_IO_ERROR: more than %d devices failed; the others' "
			"errors are not reported\n", NR_SLOTS);
	}
	pthread_mutex_unlock(&s.lock);
	if (sl && s.efd >= 0) {
		/* fails only with EAGAIN, a full counter: the control plane is woken anyway */
		ssize_t r = write(s.efd, &one, sizeof(one));

		(void)r;
	}
}

int blockdev_io_error_fd(void)
{
	pthread_once(&s.once, init);
	return s.efd;
}

/* QEMU's event data (the device's BlockBackend name is "": vireo's devices have none). */
static struct json_object *event_data(const struct slot *sl)
{
	struct json_object *d = json_object_new_object();

	json_object_object_add(d, "qom-path", json_object_new_string(sl->qdev));
	json_object_object_add(d, "device", json_object_new_string(""));
	json_object_object_add(d, "node-name", json_object_new_string(sl->node));
	json_object_object_add(d, "operation", json_object_new_string(sl->write ? "write" : "read"));
	json_object_object_add(d, "action", json_object_new_string("report"));
	json_object_object_add(d, "nospace", json_object_new_boolean(sl->ret == -ENOSPC));
	json_object_object_add(d, "reason", json_object_new_string(strerror(-sl->ret)));
	return d;
}

int blockdev_io_error_poll(void (*emit)(void *opaque, const char *name, struct json_object *data),
			   void *opaque)
{
	uint64_t now = now_ns(), due = UINT64_MAX, n;
	struct json_object *out[NR_SLOTS];
	size_t nr_out = 0;

	pthread_once(&s.once, init);
	if (s.efd >= 0 && read(s.efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return -1;
	pthread_mutex_lock(&s.lock);
	for (size_t i = 0; i < s.nr; i++) {
		struct slot *sl = &s.slots[i];

		if (!sl->pending)
			continue;
		if (sl->sent && now - sl->last_ns < THROTTLE_NS) {
			due = due < sl->last_ns + THROTTLE_NS ? due : sl->last_ns + THROTTLE_NS;
			continue; /* held: the latest goes out when the second ends */
		}
		out[nr_out++] = event_data(sl);
		sl->pending = false;
		sl->sent = true;
		sl->last_ns = now;
	}
	pthread_mutex_unlock(&s.lock);
	for (size_t i = 0; i < nr_out; i++) {
		if (emit)
			emit(opaque, "BLOCK_IO_ERROR", out[i]);
		else
			json_object_put(out[i]);
	}
	return due == UINT64_MAX ? -1 : (int)((due - now + 999999) / 1000000);
}
