/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sandbox-table: prints the allowlists of roles.c as the README's Markdown, so the README shows
 * what the filters hold.
 *
 *   sandbox-table                  the table on stdout
 *   sandbox-table --check FILE     exit 1 unless FILE holds it, between the two markers
 *   sandbox-table --update FILE    put it there
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "seccomp/roles.h"

#define BEGIN "<!-- sandbox-table: made by sandbox-table (seccomp/sandbox-table.c) from seccomp/roles.c -->\n"
#define END "<!-- sandbox-table end -->\n"

struct out {
	char *buf;
	size_t len, cap;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len)
			break;
		o->cap = o->cap * 2 + (size_t)n + 1024;
		o->buf = realloc(o->buf, o->cap);
		if (!o->buf) {
			perror("sandbox-table");
			exit(2);
		}
	}
	o->len += (size_t)n;
}

static void emit_cond(struct out *o, const struct sandbox_cond *c)
{
	const char *sep = "";

	switch (c->how) {
	case SANDBOX_ONE_OF:
		emit(o, "%s: ", c->label);
		break;
	case SANDBOX_MASK_CLEAR:
		emit(o, "%s without ", c->label);
		break;
	case SANDBOX_MASK_SET:
		emit(o, "%s with ", c->label);
		break;
	case SANDBOX_MASK_ONLY:
		emit(o, "%s within ", c->label);
		break;
	}
	for (size_t i = 0; i < c->nr_vals; i++) {
		emit(o, "%s%s", sep, c->vals[i].name);
		sep = c->how == SANDBOX_ONE_OF || c->how == SANDBOX_MASK_ONLY ? ", " : " and ";
	}
}

static void emit_group(struct out *o, const struct sandbox_group *g)
{
	emit(o, "\n**%s**: %s\n\n| system call | arguments | why |\n|---|---|---|\n", g->name,
	     g->what);
	for (size_t i = 0; i < g->nr_rules; i++) {
		const struct sandbox_rule *r = &g->rules[i];

		emit(o, "| `%s` | ", r->name);
		if (r->err)
			emit(o, "fails with %s", r->err_name);
		else if (r->cond)
			emit_cond(o, r->cond);
		emit(o, " | %s |\n", r->why);
	}
}

static void emit_roles(struct out *o)
{
	emit(o, "| role | thread | its groups | starts, once locked down |\n|---|---|---|---|\n");
	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++) {
		const struct sandbox_role_def *d = &sandbox_roles[r];
		const char *sep = "";

		emit(o, "| `%s` | %s | ", d->name, d->what);
		for (const struct sandbox_group *const *g = d->groups; *g; g++, sep = ", ")
			emit(o, "%s%s", sep, (*g)->name);
		if (d->setup)
			emit(o, " (set-up: %s)", d->setup->name);
		emit(o, " | ");
		sep = "";
		for (unsigned int k = 0; k < SANDBOX_ROLE_NR; k++)
			if (d->spawns & (1u << k)) {
				emit(o, "%s%s", sep, sandbox_roles[k].name);
				sep = ", ";
			}
		emit(o, "%s |\n", *sep ? "" : "—");
	}
}

/* Every group, in the order the roles first name them. */
static void emit_groups(struct out *o)
{
	const struct sandbox_group *seen[64];
	unsigned int n = 0;

	for (unsigned int r = 0; r < SANDBOX_ROLE_NR; r++) {
		const struct sandbox_group *list[16];
		unsigned int k = 0;

		for (const struct sandbox_group *const *g = sandbox_roles[r].groups; *g; g++)
			list[k++] = *g;
		if (sandbox_roles[r].setup)
			list[k++] = sandbox_roles[r].setup;
		for (unsigned int i = 0; i < k; i++) {
			unsigned int j;

			for (j = 0; j < n && seen[j] != list[i]; j++)
				;
			if (j < n)
				continue;
			seen[n++] = list[i];
			emit_group(o, list[i]);
		}
	}
	emit_group(o, &sandbox_group_sanitizer);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0 ||
	    !(buf = malloc((size_t)n + 1)) || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "sandbox-table: cannot read '%s': %s\n", path, strerror(errno));
		exit(2);
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* The table @o in @text (the README, @len bytes) checked or written back: 0, 1 or 2. */
static int update_or_check(const char *path, const char *mode, char *text, size_t len,
			   const struct out *o)
{
	char *b, *e;
	FILE *f;

	b = strstr(text, BEGIN);
	e = b ? strstr(b, END) : NULL;
	if (!b || !e) {
		fprintf(stderr, "sandbox-table: '%s' has no sandbox table (its markers are missing)\n",
			path);
		return 1;
	}
	e += strlen(END);
	if (!strcmp(mode, "--check")) {
		if ((size_t)(e - b) == o->len && !memcmp(b, o->buf, o->len))
			return 0;
		fprintf(stderr, "sandbox-table: the table in '%s' is not seccomp/roles.c's: run "
			"'sandbox-table --update %s' (from the build directory)\n", path, path);
		return 1;
	}
	f = fopen(path, "w");
	if (!f || fwrite(text, 1, (size_t)(b - text), f) != (size_t)(b - text) ||
	    fwrite(o->buf, 1, o->len, f) != o->len ||
	    fwrite(e, 1, len - (size_t)(e - text), f) != len - (size_t)(e - text) || fclose(f)) {
		fprintf(stderr, "sandbox-table: cannot write '%s': %s\n", path, strerror(errno));
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct out o = { 0 };
	const char *mode = argc > 2 ? argv[1] : NULL, *path = argc > 2 ? argv[2] : NULL;
	char *text;
	size_t len;
	int ret;

	if (argc != 1 && !(argc == 3 && (!strcmp(mode, "--check") || !strcmp(mode, "--update")))) {
		fprintf(stderr, "usage: sandbox-table [--check|--update README.md]\n");
		return 2;
	}
	emit(&o, "%s", BEGIN);
	emit_roles(&o);
	emit_groups(&o);
	emit(&o, "%s", END);
	if (!mode) {
		fwrite(o.buf, 1, o.len, stdout);
		free(o.buf);
		return 0;
	}
	text = slurp(path, &len);
	ret = update_or_check(path, mode, text, len, &o);
	free(text);
	free(o.buf);
	return ret;
}
