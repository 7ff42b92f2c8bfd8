/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/config.h"

#define ARGV(...) ((char *[]){ "vireo", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "vireo", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(cfg, errp, ...) cmdline_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), cfg, errp)

/* Every refusal names the option it refuses. err is read after the parse, through a pointer. */
static void expect_error(enum cmdline_result r, struct error **errp, const char *needle)
{
	struct error *err = *errp;

	*errp = NULL;
	assert_int_equal(r, CMDLINE_ERROR);
	assert_non_null(err);
	if (!strstr(error_msg(err), needle))
		fail_msg("message '%s' does not name '%s'", error_msg(err), needle);
	error_free(err);
}

static void cmdline_run_defaults(void **state)
{
	struct vm_config cfg;

	assert_int_equal(PARSE(&cfg, NULL, "run", "--kernel", "/dev/null"), CMDLINE_RUN);
	assert_string_equal(cfg.kernel, "/dev/null");
	assert_int_equal(cfg.cpus, 1);
	assert_int_equal(cfg.memory, 256ULL << 20);
	assert_int_equal(cfg.serial, SERIAL_STDIO);
	assert_int_equal(cfg.nr_drives, 0);
	assert_false(cfg.vcpu_nice_set); /* the vCPU threads keep vireo's own nice value */
}

static void cmdline_without_run_subcommand(void **state)
{
	struct vm_config cfg;

	assert_int_equal(PARSE(&cfg, NULL, "--kernel", "/dev/null", "--cpus", "2", "-m", "1G",
			       "--serial", "file:/tmp/x", "--drive", "file=a", "--drive", "file=b"),
			 CMDLINE_RUN);
	assert_int_equal(cfg.cpus, 2);
	assert_int_equal(cfg.memory, 1ULL << 30);
	assert_int_equal(cfg.serial, SERIAL_FILE);
	assert_string_equal(cfg.serial_path, "/tmp/x");
	assert_int_equal(cfg.nr_drives, 2);
	assert_string_equal(cfg.drives[1], "file=b");
}

static void cmdline_bad_values_name_the_option(void **state)
{
	struct vm_config cfg;
	struct error *err = NULL;

	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--cpus", "0"), &err, "--cpus");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--cpus", "x"), &err, "--cpus");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--memory", "12Q"), &err,
		     "--memory");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--memory", "1M"), &err,
		     "--memory");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--serial", "tcp:1"), &err,
		     "--serial");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/nonexistent/k"), &err, "--kernel");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--initrd", "/nonexistent"),
		     &err, "--initrd");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--bogus"), &err, "--bogus");
	expect_error(PARSE(&cfg, &err, "run", "--kernel"), &err, "--kernel");
	expect_error(PARSE(&cfg, &err, "run"), &err, "--kernel");
	expect_error(PARSE(&cfg, &err, "launch"), &err, "launch");
}

static void cmdline_affinity_names_threads_and_cpus(void **state)
{
	struct vm_config cfg;
	struct error *err = NULL;

	assert_int_equal(PARSE(&cfg, NULL, "run", "--kernel", "/dev/null", "--cpus", "2",
			       "--affinity", "vcpu1=0-1", "--affinity", "io3=1"),
			 CMDLINE_RUN);
	assert_int_equal(cfg.nr_affinity, 2);
	assert_false(cfg.affinity[0].iothread);
	assert_int_equal(cfg.affinity[0].index, 1);
	assert_int_equal(CPU_COUNT(&cfg.affinity[0].cpus), 2);
	assert_true(cfg.affinity[1].iothread);
	assert_int_equal(cfg.affinity[1].index, 3);
	assert_true(CPU_ISSET(1, &cfg.affinity[1].cpus));
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--affinity", "vcpu1=0"),
		     &err, "the VM has 1 vCPU");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--affinity", "cpu0=0"),
		     &err, "'cpu0' is not a thread name");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--affinity", "io=0"),
		     &err, "'io' is not a thread name");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--affinity", "io0"),
		     &err, "not THREAD=CPUS");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--affinity", "io0=2-1"),
		     &err, "'2-1' is not a CPU list");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--affinity", "io0=1",
			   "--affinity", "io0=0"),
		     &err, "io0 is given twice");
}

static void cmdline_vcpu_nice_takes_a_nice_value(void **state)
{
	struct vm_config cfg;
	struct error *err = NULL;

	assert_int_equal(PARSE(&cfg, NULL, "run", "--kernel", "/dev/null", "--vcpu-nice", "10"),
			 CMDLINE_RUN);
	assert_true(cfg.vcpu_nice_set);
	assert_int_equal(cfg.vcpu_nice, 10);
	assert_int_equal(PARSE(&cfg, NULL, "run", "--kernel", "/dev/null", "--vcpu-nice", "-20"),
			 CMDLINE_RUN);
	assert_int_equal(cfg.vcpu_nice, -20);
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--vcpu-nice", "20"), &err,
		     "--vcpu-nice: 20 is out of range [-20, 19]");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--vcpu-nice", "low"), &err,
		     "--vcpu-nice: 'low' is not a number");
	expect_error(PARSE(&cfg, &err, "run", "--kernel", "/dev/null", "--vcpu-nice"), &err,
		     "--vcpu-nice");
}

static void cmdline_help_and_version_exit_ok(void **state)
{
	struct vm_config cfg;

	assert_int_equal(PARSE(&cfg, NULL, "--help"), CMDLINE_EXIT_OK);
	assert_int_equal(PARSE(&cfg, NULL, "run", "-V"), CMDLINE_EXIT_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cmdline_run_defaults),
		cmocka_unit_test(cmdline_without_run_subcommand),
		cmocka_unit_test(cmdline_bad_values_name_the_option),
		cmocka_unit_test(cmdline_help_and_version_exit_ok),
		cmocka_unit_test(cmdline_affinity_names_threads_and_cpus),
		cmocka_unit_test(cmdline_vcpu_nice_takes_a_nice_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
