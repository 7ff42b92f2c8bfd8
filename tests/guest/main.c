/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPL3 main on the boot CPU: copy what the loader left in low memory, find ACPI, calibrate time,
 * run the cases the command line names (or every case in "all"), print a summary and exit through
 * the debug-exit port.
 *
 * Command line: words without '=' name cases, "key=value" words are options for the cases
 * (README.md lists them). Unknown case names fail the run.
 */
#include "cases/cases.h"
#include "common/spec/pvh.h"
#include "drivers/acpi.h"
#include "drivers/lapic.h"
#include "drivers/uart.h"
#include "ring0/ring0.h"

#define CMDLINE_MAX     1024
#define MAX_WORDS       32

static char cmdline[CMDLINE_MAX];
static char *words[MAX_WORDS];
static unsigned nwords;
static char reason[160];

int case_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return CASE_FAIL;
}

int case_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return CASE_SKIP;
}

const char *opt_get(const char *key)
{
	size_t n = strlen(key);

	for (unsigned i = 0; i < nwords; i++)
		if (!strncmp(words[i], key, n) && words[i][n] == '=')
			return words[i] + n + 1;
	return NULL;
}

int64_t opt_u64(const char *key, int64_t def)
{
	const char *v = opt_get(key);
	uint64_t n;

	if (!v)
		return def;
	if (!parse_u64(v, &n) || n > INT64_MAX) {
		err_set("option %s=%s: not a number", key, v);
		return -1;
	}
	return n;
}

/* Copies the command line out of low memory (the AP trampoline may later overwrite it). */
static uint64_t read_start_info(void)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)pvh_info_pa;
	uint64_t ram = 0;

	if (!pvh_info_pa || si->magic != HVM_START_MAGIC) {
		printf("guest: no PVH start info at %#lx (magic %#x)\n", pvh_info_pa,
		       pvh_info_pa ? si->magic : 0);
		guest_exit(GUEST_EXIT_PANIC);
	}
	if (si->cmdline_paddr) {
		const char *c = (const char *)(uintptr_t)si->cmdline_paddr;

		memcpy(cmdline, c, strnlen(c, CMDLINE_MAX - 1));
	}
	if (si->version >= 1) {
		const struct hvm_memmap_entry *m = (const void *)(uintptr_t)si->memmap_paddr;

		for (uint32_t i = 0; m && i < si->memmap_entries && i < 128; i++)
			if (m[i].type == 1)
				ram += m[i].size;
	}
	printf("vireo test guest: PVH start info v%u, %lu MiB RAM, cmdline \"%s\"\n", si->version,
	       ram >> 20, cmdline);
	return si->rsdp_paddr;
}

static void split_words(void)
{
	char *p = cmdline;

	while (*p && nwords < MAX_WORDS) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			*p++ = '\0';
		if (!*p)
			break;
		words[nwords++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
	}
}

static const struct guest_case *find_case(const char *name)
{
	for (unsigned i = 0; i < guest_ncases; i++)
		if (!strcmp(guest_cases[i].name, name))
			return &guest_cases[i];
	return NULL;
}

struct tally {
	unsigned ok, failed, skipped;
};

static void run_case(const struct guest_case *c, struct tally *t)
{
	int r;

	reason[0] = '\0';
	err_set("%s", "");
	r = c->run();
	if (r == CASE_OK) {
		printf("ok %s\n", c->name);
		t->ok++;
	} else if (r == CASE_SKIP) {
		printf("skip %s: %s\n", c->name, reason);
		t->skipped++;
	} else {
		printf("FAIL %s: %s\n", c->name, reason[0] ? reason : "no reason given");
		t->failed++;
	}
}

__noreturn void guest_main(unsigned cpu)
{
	struct tally t = { 0 };
	bool named = false;
	uint64_t rsdp;

	uart_init();
	rsdp = read_start_info();
	split_words();
	if (acpi_init(rsdp) < 0)
		printf("guest: ACPI: %s\n", err_get());
	time_init();
	lapic_enable();
	printf("guest: TSC %lu MHz, LAPIC %#lx id %u\n", tsc_hz / 1000000, lapic_base, lapic_id());

	for (unsigned i = 0; i < nwords; i++) {
		const struct guest_case *c;

		if (strchr(words[i], '='))
			continue;
		named = true;
		c = find_case(words[i]);
		if (!c) {
			printf("FAIL %s: no such case\n", words[i]);
			t.failed++;
			continue;
		}
		run_case(c, &t);
	}
	for (unsigned i = 0; !named && i < guest_ncases; i++)
		if (guest_cases[i].in_all)
			run_case(&guest_cases[i], &t);
	printf("summary: %u passed, %u failed, %u skipped\n", t.ok, t.failed, t.skipped);
	guest_exit(t.failed ? GUEST_EXIT_FAIL : GUEST_EXIT_PASS);
}
