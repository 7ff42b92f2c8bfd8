/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vireo-sandbox-cost: what a role's seccomp filter adds to the system calls of the data path,
 * in ns per call, measured on threads started through sandbox_thread_spawn with the sandbox on
 * (the role's real filter) and off, in alternating rounds so that a busy machine weighs on both.
 *
 *   vireo-sandbox-cost [ROUNDS] [CALLS]
 *
 * The calls: io_uring_enter(GETEVENTS) on an empty ring (the iothread's wait: a condition on
 * its flags, so the filter's BPF runs), an eventfd write (an iothread's completion signal:
 * allowed whatever its arguments, which the kernel's seccomp cache answers without running the
 * filter) and gettid (the same, as a floor). Prints the median ns per call off and on, and
 * the difference.
 */
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seccomp/thread.h"

enum { CALL_URING, CALL_EVENTFD, CALL_GETTID, NR_CALLS };
static const char *const names[NR_CALLS] = { "io_uring_enter(GETEVENTS)", "write(eventfd)",
					     "gettid" };

struct run {
	unsigned long calls;
	struct io_uring ring;
	int efd;
	double ns[NR_CALLS];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *measure(void *arg)
{
	struct run *r = arg;
	uint64_t one = 1, t;

	t = now_ns();
	for (unsigned long i = 0; i < r->calls; i++)
		syscall(__NR_io_uring_enter, r->ring.ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
	r->ns[CALL_URING] = (double)(now_ns() - t) / (double)r->calls;
	t = now_ns();
	for (unsigned long i = 0; i < r->calls; i++)
		if (write(r->efd, &one, sizeof(one)) < 0)
			break;
	r->ns[CALL_EVENTFD] = (double)(now_ns() - t) / (double)r->calls;
	t = now_ns();
	for (unsigned long i = 0; i < r->calls; i++)
		syscall(__NR_gettid);
	r->ns[CALL_GETTID] = (double)(now_ns() - t) / (double)r->calls;
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	unsigned int rounds = argc > 1 ? (unsigned int)atoi(argv[1]) : 20;
	unsigned long calls = argc > 2 ? strtoul(argv[2], NULL, 0) : 200000;
	double *res[2][NR_CALLS];
	struct error *err = NULL;
	struct run r = { .calls = calls };

	if (!rounds || !calls || io_uring_queue_init(8, &r.ring, 0) < 0 ||
	    (r.efd = eventfd(0, EFD_NONBLOCK)) < 0) {
		fprintf(stderr, "usage: vireo-sandbox-cost [ROUNDS] [CALLS] (needs io_uring)\n");
		return 2;
	}
	for (int m = 0; m < 2; m++)
		for (int c = 0; c < NR_CALLS; c++)
			res[m][c] = calloc(rounds, sizeof(double));
	/* the mode is the process's, chosen once: the filtered threads are started by a child */
	for (unsigned int i = 0; i < rounds; i++) {
		for (int k = 0; k < 2; k++) {
			int on = (int)((i + (unsigned int)k) % 2);
			int p[2];
			pid_t pid;

			if (pipe(p) < 0)
				return 1;
			pid = fork();
			if (pid == 0) {
				pthread_t t;

				if (sandbox_init(on ? SANDBOX_ON : SANDBOX_OFF, "vireo-sandbox-cost",
						 &err) < 0 ||
				    sandbox_thread_spawn(&t, SANDBOX_ROLE_IOTHREAD, "cost", NULL,
							 measure, &r, &err) < 0) {
					error_report_free("vireo-sandbox-cost", err);
					_exit(1);
				}
				pthread_join(t, NULL);
				_exit(write(p[1], r.ns, sizeof(r.ns)) == sizeof(r.ns) ? 0 : 1);
			}
			close(p[1]);
			if (pid < 0 || read(p[0], r.ns, sizeof(r.ns)) != sizeof(r.ns))
				return 1;
			close(p[0]);
			waitpid(pid, NULL, 0);
			for (int c = 0; c < NR_CALLS; c++)
				res[on][c][i] = r.ns[c];
		}
	}
	printf("%u rounds of %lu calls, on a thread of role iothread; median ns per call\n",
	       rounds, calls);
	for (int c = 0; c < NR_CALLS; c++) {
		qsort(res[0][c], rounds, sizeof(double), cmp);
		qsort(res[1][c], rounds, sizeof(double), cmp);
		printf("%-26s off %7.1f  on %7.1f  filter +%.1f ns\n", names[c], res[0][c][rounds / 2],
		       res[1][c][rounds / 2], res[1][c][rounds / 2] - res[0][c][rounds / 2]);
	}
	return 0;
}
