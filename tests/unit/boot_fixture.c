/* SPDX-License-Identifier: Apache-2.0 */
/* The boot loader tests' shared fixture (boot_fixture.h). */
#include "boot_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/layout.h"

char *bootfx_write_tmp(const void *data, size_t len)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/vireo-test-boot-XXXXXX", dir) > 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

void bootfx_drop_tmp(char *path)
{
	unlink(path);
	free(path);
}

int bootfx_load(struct gmem *m, const void *buf, size_t len, const char *cmdline,
		const char *initrd, struct boot_cpu_state *st, char *msg, size_t msglen)
{
	char *path = bootfx_write_tmp(buf, len);
	struct boot_params_in in = { .kernel_path = path, .initrd_path = initrd,
				     .cmdline = cmdline, .rsdp_gpa = LAYOUT_ACPI_BASE };
	struct error *err = NULL;
	int ret = boot_load(m, &in, st, &err);

	if (msg)
		snprintf(msg, msglen, "%s", ret ? error_msg(err) : "");
	if (ret) {
		assert_non_null(err);
		assert_non_null(strstr(error_msg(err), path));
	} else {
		assert_null(err);
	}
	error_free(err);
	bootfx_drop_tmp(path);
	return ret;
}

void bootfx_check_flat(const struct boot_segment *s, uint16_t sel, uint8_t type, bool long_code)
{
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, 0xffffffff);
	assert_int_equal(s->selector, sel);
	assert_int_equal(s->type, type);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->s, 1);
	assert_int_equal(s->dpl, 0);
	assert_int_equal(s->g, 1);
	assert_int_equal(s->l, long_code);
	assert_int_equal(s->db, !long_code);
	assert_int_equal(s->unusable, 0);
}

uint64_t bootfx_read(const struct gmem *m, uint64_t gpa, size_t len)
{
	uint64_t v = 0;

	assert_int_equal(gmem_read(m, gpa, &v, len), 0);
	return v;
}
