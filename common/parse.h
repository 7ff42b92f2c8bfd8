/* SPDX-License-Identifier: Apache-2.0 */
/* Parsers for command-line values. Each returns 0 or -1 with a message naming the option. */
#ifndef VIREO_COMMON_PARSE_H
#define VIREO_COMMON_PARSE_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* "4096", "64k", "1M", "2G", "1T" (binary multiples; an optional trailing 'B'/'iB' is accepted). */
int parse_size(const char *opt, const char *s, uint64_t *out, struct error **errp);
/* Plain unsigned decimal (or 0x hex) within [min, max]. */
int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out,
	      struct error **errp);
/* A signed decimal (an optional '-', then as parse_u64) within [min, max]. */
int parse_int(const char *opt, const char *s, int min, int max, int *out, struct error **errp);
/* A CPU list as taskset -c takes it: "3", "0-3", "0,2-3" (CPUs below CPU_SETSIZE). */
int parse_cpu_list(const char *opt, const char *s, cpu_set_t *set, struct error **errp);
/* on|off|yes|no|true|false|1|0 */
int parse_bool(const char *opt, const char *s, bool *out, struct error **errp);

#endif
