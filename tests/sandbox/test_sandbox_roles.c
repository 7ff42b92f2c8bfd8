/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox's tables and its thread-spawn helper, without loading a filter: every role can
 * end its threads and report, a role's filter lets the threads it starts run (their lists and
 * set-up), only the roles that start threads may clone, every filter compiles in both modes,
 * and the helper names its thread, reports a set-up error to the creator and refuses a role its
 * caller's filter was not made for. (probe_test loads the filters and makes forbidden calls.)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <cmocka.h>

#include "seccomp/sandbox_priv.h"
#include "seccomp/thread.h"

static bool has(enum sandbox_role r, int nr)
{
	bool conditional;

	return sandbox_role_has(r, nr, &conditional);
}

static void every_role_can_end_its_threads_and_report(void **state)
{
	static const int needed[] = { __NR_exit, __NR_exit_group, __NR_futex, __NR_rt_sigreturn,
				      __NR_rt_sigprocmask, __NR_madvise, __NR_write, __NR_munmap };

	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++)
		for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
			if (!has(r, needed[i]))
				fail_msg("role %s lacks syscall %d", sandbox_role_name(r), needed[i]);
}

struct check {
	enum sandbox_role holder;
	const char *what;
};

static void held(const struct sandbox_group *g, const struct check *c)
{
	for (size_t k = 0; k < g->nr_rules; k++)
		if (!g->rules[k].err && !has(c->holder, g->rules[k].nr))
			fail_msg("role %s starts %s but its filter lacks %s", sandbox_role_name(c->holder),
				 c->what, g->rules[k].name);
}

static void a_role_s_filter_lets_the_threads_it_starts_run(void **state)
{
	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++) {
		unsigned int set = sandbox_role_closure(r);

		for (unsigned int s = 0; s < SANDBOX_ROLE_NR; s++) {
			struct check c = { r, sandbox_role_name(s) };

			if (s == r || !(set & (1u << s)))
				continue;
			for (const struct sandbox_group *const *g = sandbox_roles[s].groups; *g; g++)
				held(*g, &c);
			if (sandbox_roles[s].setup)
				held(sandbox_roles[s].setup, &c);
		}
	}
}

static void only_the_roles_that_start_threads_may_clone(void **state)
{
	if (sandbox_sanitized())
		skip(); /* LeakSanitizer's tracer needs clone in every role */
	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++)
		assert_int_equal(has(r, __NR_clone), sandbox_roles[r].spawns != 0);
	/* and nothing may exec, trace or mount */
	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++) {
		assert_false(has(r, __NR_execve));
		assert_false(has(r, __NR_ptrace));
		assert_false(has(r, __NR_mount));
		assert_false(has(r, __NR_unshare));
	}
}

static void the_data_path_roles_open_nothing(void **state)
{
	static const enum sandbox_role roles[] = { SANDBOX_ROLE_VCPU, SANDBOX_ROLE_IOTHREAD,
						   SANDBOX_ROLE_ENGINE, SANDBOX_ROLE_QCOW2_POOL,
						   SANDBOX_ROLE_COPY, SANDBOX_ROLE_NBD_EXPORT,
						   SANDBOX_ROLE_MEMSLOT };

	if (sandbox_sanitized())
		skip(); /* the runtimes read /proc for their reports */
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		assert_false(has(roles[i], __NR_openat));
		assert_false(has(roles[i], __NR_socket));
		assert_false(has(roles[i], __NR_io_uring_setup));
	}
}

static void every_filter_compiles_in_both_modes(void **state)
{
	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++) {
		struct sandbox_filter on = { 0 }, log = { 0 };
		struct error *err = NULL;

		if (sandbox_filter_build(r, SANDBOX_ON, &on, &err) < 0 ||
		    sandbox_filter_build(r, SANDBOX_LOG, &log, &err) < 0)
			fail_msg("%s", error_msg(err));
		assert_true(on.len > 20);
		assert_int_equal(log.len, on.len + 5); /* the handler's own call, let through */
		free(on.insns);
		free(log.insns);
	}
}

/* ---- the helper (the mode is off here: no filter is loaded) ------------------------------ */

static void *report_name(void *arg)
{
	char name[16] = "";

	prctl(PR_GET_NAME, name, 0, 0, 0);
	strcpy(arg, name);
	return arg;
}

static void the_thread_is_named_and_runs(void **state)
{
	char name[16] = "";
	pthread_t t;
	void *ret;

	assert_int_equal(sandbox_thread_spawn(&t, SANDBOX_ROLE_ENGINE, "a-long-thread-name", NULL,
					      report_name, name, NULL), 0);
	pthread_join(t, &ret);
	assert_ptr_equal(ret, name);
	assert_string_equal(name, "a-long-thread-n"); /* 15 bytes, as the kernel keeps */
}

static int failing_setup(void *arg, struct error **errp)
{
	error_setg(errp, "no ring for %s", (const char *)arg);
	return -1;
}

static void *must_not_run(void *arg)
{
	fail_msg("the thread ran after its set-up failed");
	return NULL;
}

static void a_set_up_error_comes_back_to_the_creator(void **state)
{
	struct error *err = NULL;
	pthread_t t;

	assert_int_equal(sandbox_thread_spawn(&t, SANDBOX_ROLE_IOTHREAD, "io9", failing_setup,
					      must_not_run, "io9", &err), -EINVAL);
	assert_non_null(err);
	assert_string_equal(error_msg(err), "no ring for io9");
	error_free(err);
}

static void *spawn_as_locked(void *arg)
{
	struct error *err = NULL;
	pthread_t t;
	int ret;

	/* what sandbox_filter_apply leaves on a thread, without a filter */
	sandbox_self_set(SANDBOX_ROLE_IOTHREAD, "io0");
	sandbox_self_set_locked();
	ret = sandbox_thread_spawn(&t, SANDBOX_ROLE_ENGINE, "blk-slow", NULL, must_not_run, NULL,
				   &err);
	assert_int_equal(ret, -EPERM);
	assert_non_null(strstr(error_msg(err), "thread 'io0' (role iothread) may not start a "
					       "thread of role engine"));
	error_free(err);
	return NULL;
}

static void a_locked_thread_starts_only_what_its_filter_allows(void **state)
{
	pthread_t t;

	assert_int_equal(sandbox_thread_spawn(&t, SANDBOX_ROLE_IOTHREAD, "io0", NULL,
					      spawn_as_locked, NULL, NULL), 0);
	pthread_join(t, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_role_can_end_its_threads_and_report),
		cmocka_unit_test(a_role_s_filter_lets_the_threads_it_starts_run),
		cmocka_unit_test(only_the_roles_that_start_threads_may_clone),
		cmocka_unit_test(the_data_path_roles_open_nothing),
		cmocka_unit_test(every_filter_compiles_in_both_modes),
		cmocka_unit_test(the_thread_is_named_and_runs),
		cmocka_unit_test(a_set_up_error_comes_back_to_the_creator),
		cmocka_unit_test(a_locked_thread_starts_only_what_its_filter_allows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
