/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test cases. Each is one function in cases/<name>.c returning CASE_OK, or case_fail()/case_skip()
 * with a reason; main.c prints "ok NAME", "FAIL NAME: reason" or "skip NAME: reason". Cases print
 * details on lines starting with two spaces.
 */
#ifndef GUEST_CASES_H
#define GUEST_CASES_H

#include "lib/lib.h"

enum { CASE_OK = 0, CASE_FAIL = -1, CASE_SKIP = 1 };

struct guest_case {
	const char *name;
	int (*run)(void);
	bool in_all;            /* run when the command line names no case */
	const char *summary;
};

extern const struct guest_case guest_cases[];
extern const unsigned guest_ncases;

int case_fail(const char *fmt, ...) __printf(1, 2);
int case_skip(const char *fmt, ...) __printf(1, 2);
/* A "key=value" option from the command line, or NULL. */
const char *opt_get(const char *key);
/* The option as a number: def when absent, -1 (with err_set) when malformed. */
int64_t opt_u64(const char *key, int64_t def);

int case_madt(void);
int case_pci(void);
int case_timer(void);
int case_smp(void);
int case_idle(void);
int case_blk(void);
int case_blk_smp(void);
int case_blk_reset(void);
int case_blk_irq(void);
int case_blk_hostile(void);
int case_blk_crashwriter(void);
int case_blk_count(void);
int case_bench(void);
int case_scsi_luns(void);
int case_scsi_rw(void);
int case_scsi_bad(void);
int case_scsi_tmf(void);

#endif
