/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACPI tables as a guest finds them: RSDP by the legacy scan, every table through the XSDT,
 * fields read at their specification offsets (not through acpi.c's structs), and iasl's
 * disassembler as an outside judge.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/util.h"
#include "vmm/acpi.h"
#include "vmm/layout.h"

#define TEST_RAM (64ULL << 20)

struct built {
	struct gmem mem;
	uint64_t rsdp;
};

static void build(struct built *b, unsigned int nr_vcpus)
{
	struct acpi_config cfg = { .nr_vcpus = nr_vcpus, .mmio64_base = 16ULL << 30,
				   .mmio64_size = LAYOUT_PCI_MMIO64_SIZE };
	struct error *err = NULL;

	assert_int_equal(gmem_init(&b->mem, TEST_RAM, false), 0);
	if (acpi_build(&b->mem, &cfg, &b->rsdp, &err) < 0)
		fail_msg("acpi_build: %s", error_msg(err));
}

static const uint8_t *gp(struct built *b, uint64_t gpa, uint64_t len)
{
	const uint8_t *p = gmem_ptr(&b->mem, gpa, len);

	assert_non_null(p);
	assert_true(gpa >= LAYOUT_ACPI_BASE && gpa + len <= LAYOUT_ACPI_BASE + LAYOUT_ACPI_SIZE);
	return p;
}

static uint32_t rd16(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8;
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* A table at gpa: checks signature, length bounds and checksum; returns it. */
static const uint8_t *table(struct built *b, uint64_t gpa, const char *sig)
{
	const uint8_t *h = gp(b, gpa, 36);
	uint32_t len = rd32(h + 4);

	if (memcmp(h, sig, 4) != 0)
		fail_msg("table at 0x%llx is '%.4s', expected '%s'", (unsigned long long)gpa, h, sig);
	assert_true(len >= 36);
	h = gp(b, gpa, len);
	if (sum(h, len) != 0)
		fail_msg("table %s: checksum does not sum to 0", sig);
	return h;
}

/* The table with this signature listed in the XSDT (or 0). */
static uint64_t xsdt_find(struct built *b, const char *sig)
{
	const uint8_t *rsdp = gp(b, b->rsdp, 36);
	const uint8_t *x = table(b, rd64(rsdp + 24), "XSDT");
	uint32_t n = (rd32(x + 4) - 36) / 8;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = rd64(x + 36 + 8 * i);

		if (memcmp(gp(b, a, 4), sig, 4) == 0)
			return a;
	}
	return 0;
}

static uint64_t scan_rsdp(struct built *b)
{
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
		const uint8_t *p = gmem_ptr(&b->mem, a, 20);

		if (p && memcmp(p, "RSD PTR ", 8) == 0 && sum(p, 20) == 0)
			return a;
	}
	return 0;
}

static void acpi_rsdp_is_found_by_the_legacy_scan(void **state)
{
	struct built b;
	const uint8_t *r;

	build(&b, 1);
	assert_int_equal(b.rsdp, LAYOUT_ACPI_BASE);
	assert_int_equal(scan_rsdp(&b), b.rsdp);
	r = gp(&b, b.rsdp, 36);
	assert_int_equal(r[15], 2);          /* revision: ACPI 2.0+, has XSDT */
	assert_int_equal(rd32(r + 20), 36); /* length */
	assert_int_equal(sum(r, 36), 0);    /* extended checksum */
	assert_int_not_equal(rd64(r + 24), 0);
	gmem_destroy(&b.mem);
}

static void acpi_rsdt_and_xsdt_list_the_same_valid_tables(void **state)
{
	static const char *const want[] = { "FACP", "APIC", "MCFG" };
	struct built b;
	const uint8_t *r, *rsdt, *xsdt;
	uint32_t n;

	build(&b, 2);
	r = gp(&b, b.rsdp, 36);
	rsdt = table(&b, rd32(r + 16), "RSDT");
	xsdt = table(&b, rd64(r + 24), "XSDT");
	n = (rd32(xsdt + 4) - 36) / 8;
	assert_int_equal(n, ARRAY_SIZE(want));
	assert_int_equal(rd32(rsdt + 4), 36 + 4 * n);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(rd64(xsdt + 36 + 8 * i), rd32(rsdt + 36 + 4 * i));
		table(&b, rd64(xsdt + 36 + 8 * i), want[i]);
	}
	gmem_destroy(&b.mem);
}

static void acpi_fadt_points_at_dsdt_facs_and_the_pm_ports(void **state)
{
	struct built b;
	const uint8_t *f, *facs;
	uint32_t flags;

	build(&b, 1);
	f = table(&b, xsdt_find(&b, "FACP"), "FACP");
	assert_int_equal(rd32(f + 4), 276);
	assert_int_equal(f[8], 6);
	assert_int_equal(rd32(f + 40), rd64(f + 140)); /* DSDT == X_DSDT */
	table(&b, rd64(f + 140), "DSDT");
	facs = gp(&b, rd32(f + 36), 64);
	assert_memory_equal(facs, "FACS", 4);
	assert_int_equal(rd32(facs + 4), 64);
	assert_int_equal(rd32(f + 36) % 64, 0);
	assert_int_equal(rd16(f + 46), LAYOUT_IRQ_SCI);
	assert_int_equal(rd32(f + 48), 0); /* SMI_CMD: always in ACPI mode */
	assert_int_equal(rd32(f + 56), LAYOUT_PORT_PM1A_EVT);
	assert_int_equal(rd32(f + 64), LAYOUT_PORT_PM1A_CNT);
	assert_int_equal(rd32(f + 76), LAYOUT_PORT_PM_TMR);
	assert_int_equal(rd32(f + 80), LAYOUT_PORT_GPE0);
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 4);
	assert_int_equal(f[92], 4);
	assert_int_equal(rd16(f + 109) & 0x2, 0); /* no 8042 */
	flags = rd32(f + 112);
	assert_true(flags & (1u << 10));          /* RESET_REG_SUP */
	assert_false(flags & (1u << 4));          /* PWR_BUTTON clear: fixed-feature button */
	assert_false(flags & (1u << 20));         /* not HW_REDUCED */
	assert_int_equal(f[116], 1);              /* reset register in system I/O */
	assert_int_equal(rd64(f + 120), LAYOUT_PORT_RESET);
	assert_int_equal(f[128], ACPI_RESET_VALUE);
	assert_int_equal(rd64(f + 148 + 4), LAYOUT_PORT_PM1A_EVT); /* X_PM1a_EVT_BLK */
	assert_int_equal(rd64(f + 208 + 4), LAYOUT_PORT_PM_TMR);   /* X_PM_TMR_BLK */
	gmem_destroy(&b.mem);
}

/* Counts enabled LAPIC / x2APIC entries and checks their IDs are 0..n-1, each once. */
static void check_madt(unsigned int nr_vcpus)
{
	struct built b;
	const uint8_t *m;
	uint32_t len, off;
	unsigned int cpus = 0, ioapics = 0, isos = 0, nmis = 0;
	uint8_t seen[ACPI_MAX_VCPUS] = { 0 };

	build(&b, nr_vcpus);
	m = table(&b, xsdt_find(&b, "APIC"), "APIC");
	len = rd32(m + 4);
	assert_int_equal(rd32(m + 36), LAYOUT_LAPIC_BASE);
	for (off = 44; off + 2 <= len; off += m[off + 1]) {
		const uint8_t *e = m + off;
		uint32_t id = 0;

		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0: /* LAPIC */
			id = e[3];
			assert_true(rd32(e + 4) & 1);
			break;
		case 9: /* x2APIC */
			id = rd32(e + 4);
			assert_true(id >= 255);
			assert_true(rd32(e + 8) & 1);
			break;
		case 1:
			ioapics++;
			assert_int_equal(rd32(e + 4), LAYOUT_IOAPIC_BASE);
			assert_int_equal(rd32(e + 8), 0);
			continue;
		case 2:
			isos++;
			if (e[3] == 0)
				assert_int_equal(rd32(e + 4), 2);
			if (e[3] == LAYOUT_IRQ_SCI)
				assert_int_equal(rd16(e + 8), 0xd); /* level, active high */
			continue;
		case 4:
		case 10:
			nmis++;
			continue;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		assert_true(id < nr_vcpus);
		assert_int_equal(seen[id], 0);
		seen[id] = 1;
		cpus++;
	}
	assert_int_equal(off, len);
	assert_int_equal(cpus, nr_vcpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 2);
	assert_true(nmis >= 1);
	gmem_destroy(&b.mem);
}

static void acpi_madt_has_one_cpu_per_vcpu(void **state)
{
	check_madt(1);
	check_madt(2);
	check_madt(64);
	check_madt(300); /* x2APIC entries past 254 */
	check_madt(ACPI_MAX_VCPUS);
}

static void acpi_mcfg_matches_the_layout(void **state)
{
	struct built b;
	const uint8_t *m;

	build(&b, 1);
	m = table(&b, xsdt_find(&b, "MCFG"), "MCFG");
	assert_int_equal(rd32(m + 4), 44 + 16);
	assert_int_equal(rd64(m + 44), LAYOUT_PCI_ECAM_BASE);
	assert_int_equal(rd16(m + 52), 0);
	assert_int_equal(m[54], 0);
	assert_int_equal(m[55], LAYOUT_PCI_ECAM_BUSES - 1);
	gmem_destroy(&b.mem);
}

static void acpi_build_refuses_bad_vcpu_counts(void **state)
{
	struct acpi_config cfg = { .nr_vcpus = 0 };
	struct gmem mem;
	struct error *err = NULL;
	uint64_t rsdp;

	assert_int_equal(gmem_init(&mem, TEST_RAM, false), 0);
	assert_int_equal(acpi_build(&mem, &cfg, &rsdp, &err), -1);
	assert_non_null(strstr(error_msg(err), "vCPUs"));
	error_free(err);
	err = NULL;
	cfg.nr_vcpus = ACPI_MAX_VCPUS + 1;
	assert_int_equal(acpi_build(&mem, &cfg, &rsdp, &err), -1);
	error_free(err);
	gmem_destroy(&mem);
}

/* Writes a table to dir/name.dat, runs `iasl -d` on it; returns the disassembly (malloc'd). */
static char *iasl_disassemble(const char *dir, const char *name, const uint8_t *t, size_t len)
{
	char path[512], cmd[1200], *out;
	FILE *f;
	long sz;
	int st;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(t, 1, len, f), len);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd '%s' && iasl -d %s.dat > %s.log 2>&1", dir, name, name);
	st = system(cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("iasl -d %s.dat failed (status 0x%x), see %s/%s.log", name, st, dir, name);
	snprintf(cmd, sizeof(cmd), "cd '%s' && cat %s.log %s.dsl", dir, name, name);
	f = popen(cmd, "r");
	assert_non_null(f);
	out = calloc(1, 1 << 20);
	assert_non_null(out);
	sz = (long)fread(out, 1, (1 << 20) - 1, f);
	pclose(f);
	assert_true(sz > 0);
	if (strstr(out, "Error") || strstr(out, "Warning") || strstr(out, "Unknown"))
		fail_msg("iasl -d %s.dat reports a problem:\n%s", name, out);
	return out;
}

static void acpi_every_table_disassembles_with_iasl(void **state)
{
	static const char *const sigs[] = { "FACP", "APIC", "MCFG" };
	char dir[] = "/tmp/vireo-acpi-XXXXXX", cmd[600];
	const uint8_t *r, *f;
	struct built b;
	char *dsl;

	if (system("command -v iasl > /dev/null 2>&1") != 0) {
		print_message("iasl not found (Debian: acpica-tools): skipping\n");
		skip();
	}
	build(&b, 300);
	assert_non_null(mkdtemp(dir));
	r = gp(&b, b.rsdp, 36);
	/* iasl -d cannot read a bare RSDP (no table header); its fields are checked above. */
	f = table(&b, rd32(r + 16), "RSDT");
	free(iasl_disassemble(dir, "rsdt", f, rd32(f + 4)));
	f = table(&b, rd64(r + 24), "XSDT");
	free(iasl_disassemble(dir, "xsdt", f, rd32(f + 4)));
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		f = table(&b, xsdt_find(&b, sigs[i]), sigs[i]);
		free(iasl_disassemble(dir, sigs[i], f, rd32(f + 4)));
	}
	f = table(&b, xsdt_find(&b, "FACP"), "FACP");
	free(iasl_disassemble(dir, "facs", gp(&b, rd32(f + 36), 64), 64));
	f = table(&b, rd64(f + 140), "DSDT");
	dsl = iasl_disassemble(dir, "dsdt", f, rd32(f + 4));
	assert_non_null(strstr(dsl, "EisaId (\"PNP0A08\")"));
	assert_non_null(strstr(dsl, "EisaId (\"PNP0A03\")"));
	assert_non_null(strstr(dsl, "EisaId (\"PNP0501\")"));
	assert_non_null(strstr(dsl, "EisaId (\"PNP0C02\")"));
	assert_non_null(strstr(dsl, "Name (\\_S5, Package (0x04)"));
	assert_non_null(strstr(dsl, "QWordMemory"));
	assert_non_null(strstr(dsl, "_PRT"));
	free(dsl);
	/* the disassembly must compile back to AML cleanly */
	snprintf(cmd, sizeof(cmd), "cd '%s' && iasl -p again dsdt.dsl > again.log 2>&1", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "grep -q '0 Errors, 0 Warnings' '%s/again.log'", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	gmem_destroy(&b.mem);
}

/* ACPICA's interpreter (the one Linux runs) loads the DSDT and evaluates every object we define. */
static void acpi_dsdt_objects_evaluate_in_acpiexec(void **state)
{
	static const char *const objs[] = { "\\_S5", "\\_SB.PCI0._HID", "\\_SB.PCI0._CRS",
					    "\\_SB.PCI0._PRT", "\\_SB.MRES._CRS", "\\_SB.COM1._CRS" };
	char dir[] = "/tmp/vireo-acpi-XXXXXX", cmd[1024], want[128];
	const uint8_t *f;
	struct built b;
	size_t n = 0;
	char *out;
	FILE *p;

	if (system("command -v acpiexec > /dev/null 2>&1") != 0) {
		print_message("acpiexec not found (Debian: acpica-tools): skipping\n");
		skip();
	}
	build(&b, 2);
	assert_non_null(mkdtemp(dir));
	f = table(&b, xsdt_find(&b, "FACP"), "FACP");
	f = table(&b, rd64(f + 140), "DSDT");
	snprintf(cmd, sizeof(cmd), "%s/dsdt.dat", dir);
	p = fopen(cmd, "wb");
	assert_non_null(p);
	assert_int_equal(fwrite(f, 1, rd32(f + 4), p), rd32(f + 4));
	fclose(p);
	n = (size_t)snprintf(cmd, sizeof(cmd), "cd '%s' && timeout 60 acpiexec -b \"", dir);
	for (size_t i = 0; i < ARRAY_SIZE(objs); i++)
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, "evaluate %s; ", objs[i]);
	snprintf(cmd + n, sizeof(cmd) - n, "\" dsdt.dat 2>&1; rm -rf '%s'", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	out = calloc(1, 1 << 20);
	assert_non_null(out);
	n = fread(out, 1, (1 << 20) - 1, p);
	pclose(p);
	assert_true(n > 0);
	if (strstr(out, "failed") || strstr(out, "Error") || strstr(out, "Exception") ||
	    !strstr(out, "No outstanding allocations"))
		fail_msg("acpiexec reports a problem:\n%s", out);
	for (size_t i = 0; i < ARRAY_SIZE(objs); i++) {
		snprintf(want, sizeof(want), "Evaluation of %s returned", objs[i]);
		if (!strstr(out, want))
			fail_msg("acpiexec did not evaluate %s:\n%s", objs[i], out);
	}
	free(out);
	gmem_destroy(&b.mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(acpi_rsdp_is_found_by_the_legacy_scan),
		cmocka_unit_test(acpi_rsdt_and_xsdt_list_the_same_valid_tables),
		cmocka_unit_test(acpi_fadt_points_at_dsdt_facs_and_the_pm_ports),
		cmocka_unit_test(acpi_madt_has_one_cpu_per_vcpu),
		cmocka_unit_test(acpi_mcfg_matches_the_layout),
		cmocka_unit_test(acpi_build_refuses_bad_vcpu_counts),
		cmocka_unit_test(acpi_every_table_disassembles_with_iasl),
		cmocka_unit_test(acpi_dsdt_objects_evaluate_in_acpiexec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
