/* SPDX-License-Identifier: Apache-2.0 */
#include "common/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * An unsigned number in C syntax (decimal, 0x hex, 0 octal). 0 when it parsed (*end past it);
 * 1 when its digits are well formed but do not fit in 64 bits (*out is UINT64_MAX); -1 when
 * it is not a number at all.
 */
static int parse_number(const char *s, uint64_t *out, char **end)
{
	if (!*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*out = strtoull(s, end, 0);
	if (*end == s || (errno && errno != ERANGE))
		return -1;
	return errno == ERANGE;
}

int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out,
	      struct error **errp)
{
	char *end;
	uint64_t v;
	int r = parse_number(s, &v, &end);

	if (r < 0 || *end) {
		error_setg(errp, "%s: '%s' is not a number", opt, s);
		return -1;
	}
	if (r > 0 || v < min || v > max) {
		error_setg(errp, "%s: %s is out of range [%llu, %llu]", opt, s,
			   (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int parse_int(const char *opt, const char *s, int min, int max, int *out, struct error **errp)
{
	bool neg = *s == '-';
	int64_t x;
	char *end;
	uint64_t v;

	if (parse_number(s + neg, &v, &end) < 0 || *end) {
		error_setg(errp, "%s: '%s' is not a number", opt, s);
		return -1;
	}
	x = v > (uint64_t)INT32_MAX + 1 ? INT64_MAX : (int64_t)v; /* INT_MIN's magnitude fits */
	if (neg)
		x = -x;
	if (x < min || x > max) {
		error_setg(errp, "%s: %s is out of range [%d, %d]", opt, s, min, max);
		return -1;
	}
	*out = (int)x;
	return 0;
}

int parse_size(const char *opt, const char *s, uint64_t *out, struct error **errp)
{
	static const char units[] = "bkmgtpe";
	const char *u;
	char *end;
	uint64_t v;
	unsigned shift;
	int r = parse_number(s, &v, &end);

	if (r < 0)
		goto bad;
	shift = 0;
	if (*end) {
		u = strchr(units, tolower((unsigned char)*end));
		if (!u)
			goto bad;
		shift = (unsigned)(u - units) * 10;
		end++;
		if (shift && (!strcmp(end, "iB") || !strcmp(end, "B") || !strcmp(end, "ib") ||
			      !strcmp(end, "b")))
			end += strlen(end);
		if (*end)
			goto bad;
	}
	if (r > 0 || v > (UINT64_MAX >> shift)) {
		error_setg(errp, "%s: size '%s' is too large", opt, s);
		return -1;
	}
	*out = v << shift;
	return 0;
bad:
	error_setg(errp, "%s: '%s' is not a size (expected a number with an optional k, M, G or T suffix)",
		   opt, s);
	return -1;
}

int parse_bool(const char *opt, const char *s, bool *out, struct error **errp)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	error_setg(errp, "%s: '%s' is not on or off", opt, s);
	return -1;
}

/* One CPU number of a list: decimal, below CPU_SETSIZE; *p moves past it. */
static int cpu_number(const char **p, unsigned long *out)
{
	char *end;

	if (**p < '0' || **p > '9')
		return -1;
	errno = 0;
	*out = strtoul(*p, &end, 10);
	if (errno || *out >= CPU_SETSIZE)
		return -1;
	*p = end;
	return 0;
}

int parse_cpu_list(const char *opt, const char *s, cpu_set_t *set, struct error **errp)
{
	const char *p = s;

	CPU_ZERO(set);
	for (;;) {
		unsigned long lo, hi;

		if (cpu_number(&p, &lo) < 0)
			goto bad;
		hi = lo;
		if (*p == '-') {
			p++;
			if (cpu_number(&p, &hi) < 0 || hi < lo)
				goto bad;
		}
		for (unsigned long c = lo; c <= hi; c++)
			CPU_SET(c, set);
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			goto bad;
	}
bad:
	error_setg(errp, "%s: '%s' is not a CPU list such as 0-3,5 (CPUs 0 to %d)", opt, s,
		   CPU_SETSIZE - 1);
	return -1;
}
