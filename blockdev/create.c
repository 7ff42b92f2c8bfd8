/* SPDX-License-Identifier: Apache-2.0 */
/* The generic create hook (blockdev/create.h): a format's -o options checked against its table. */
#include "blockdev/create.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/parse.h"

static const struct blockdev_create_opt_desc *desc_of(const struct blockdev_driver *drv,
						      const char *name, size_t *idx)
{
	const struct blockdev_create_opt_desc *d = drv->create_opts;

	for (size_t i = 0; d && d[i].name; i++) {
		if (!strcmp(d[i].name, name)) {
			if (idx)
				*idx = i;
			return &d[i];
		}
	}
	return NULL;
}

bool blockdev_create_takes(const struct blockdev_driver *drv, const char *name)
{
	return desc_of(drv, name, NULL) != NULL;
}

/* true when @value is one of the '|'-separated @choices */
static bool one_of(const char *choices, const char *value)
{
	size_t n = strlen(value);

	for (const char *p = choices; p; p = strchr(p, '|'), p = p ? p + 1 : NULL)
		if (!strncmp(p, value, n) && (p[n] == '|' || p[n] == '\0'))
			return true;
	return false;
}

static int take(struct blockdev_create_ctx *ctx, const struct blockdev_opt *o,
		struct error **errp)
{
	size_t i;
	const struct blockdev_create_opt_desc *d = desc_of(ctx->drv, o->key, &i);
	bool b;

	if (!d) {
		error_setg(errp, "format %s does not support the option '%s'", ctx->drv->name,
			   o->key);
		return -1;
	}
	switch (d->type) {
	case BLOCKDEV_CREATE_BOOL:
		if (parse_bool(d->name, o->value, &b, errp))
			return -1;
		ctx->num[i] = b;
		break;
	case BLOCKDEV_CREATE_SIZE:
		if (parse_size(d->name, o->value, &ctx->num[i], errp))
			return -1;
		break;
	case BLOCKDEV_CREATE_STR:
		if (d->choices && !one_of(d->choices, o->value)) {
			error_setg(errp, "%s: '%s' is not one of %s (format %s)", d->name, o->value,
				   d->choices, ctx->drv->name);
			return -1;
		}
		break;
	}
	free(ctx->given[i]);
	ctx->given[i] = strdup(o->value);
	if (!ctx->given[i]) {
		error_setg(errp, "out of memory");
		return -1;
	}
	return 0;
}

int blockdev_create_prepare(struct blockdev_create_ctx *ctx, const struct blockdev_driver *drv,
			    const char *filename, uint64_t size, const struct blockdev_opt *opts,
			    size_t nr_opts, struct error **errp)
{
	size_t n = 0;

	*ctx = (struct blockdev_create_ctx){ .drv = drv, .filename = filename, .size = size };
	if (!drv->create) {
		error_setg(errp, "format %s cannot be created", drv->name);
		return -1;
	}
	while (drv->create_opts && drv->create_opts[n].name)
		n++;
	ctx->nr = n;
	ctx->given = calloc(n + 1, sizeof(*ctx->given));
	ctx->num = calloc(n + 1, sizeof(*ctx->num));
	if (!ctx->given || !ctx->num) {
		error_setg(errp, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nr_opts; i++)
		if (take(ctx, &opts[i], errp))
			return -1;
	return 0;
}

void blockdev_create_free(struct blockdev_create_ctx *ctx)
{
	for (size_t i = 0; ctx->given && i < ctx->nr; i++)
		free(ctx->given[i]);
	free(ctx->given);
	free(ctx->num);
	ctx->given = NULL;
	ctx->num = NULL;
}

char *blockdev_create_summary(const struct blockdev_create_ctx *ctx)
{
	const struct blockdev_create_opt_desc *d = ctx->drv->create_opts;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "size=%" PRIu64, ctx->size);
	for (size_t i = 0; i < ctx->nr; i++) {
		if (ctx->given[i] && d[i].type == BLOCKDEV_CREATE_SIZE)
			fprintf(f, " %s=%" PRIu64, d[i].name, ctx->num[i]);
		else if (ctx->given[i] || d[i].def)
			fprintf(f, " %s=%s", d[i].name, ctx->given[i] ? ctx->given[i] : d[i].def);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

int blockdev_create_run(const struct blockdev_create_ctx *ctx, struct error **errp)
{
	return ctx->drv->create(ctx, errp);
}

bool blockdev_create_given(const struct blockdev_create_ctx *ctx, const char *name)
{
	size_t i;

	return desc_of(ctx->drv, name, &i) && ctx->given[i];
}

const char *blockdev_create_str(const struct blockdev_create_ctx *ctx, const char *name)
{
	size_t i;
	const struct blockdev_create_opt_desc *d = desc_of(ctx->drv, name, &i);

	if (!d)
		return NULL;
	return ctx->given[i] ? ctx->given[i] : d->def;
}

bool blockdev_create_bool(const struct blockdev_create_ctx *ctx, const char *name)
{
	size_t i;
	const struct blockdev_create_opt_desc *d = desc_of(ctx->drv, name, &i);
	bool b = false;

	if (!d)
		return false;
	if (ctx->given[i])
		return ctx->num[i] != 0;
	return d->def && !parse_bool(d->name, d->def, &b, NULL) && b;
}

uint64_t blockdev_create_size(const struct blockdev_create_ctx *ctx, const char *name,
			      uint64_t def)
{
	size_t i;
	const struct blockdev_create_opt_desc *d = desc_of(ctx->drv, name, &i);
	uint64_t v;

	if (!d)
		return def;
	if (ctx->given[i])
		return ctx->num[i];
	if (d->def && !parse_size(d->name, d->def, &v, NULL))
		return v;
	return def;
}

int blockdev_create_uuid(uint8_t uuid[16])
{
	size_t got = 0;

	while (got < 16) {
		ssize_t n = getrandom(uuid + got, 16 - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4: random */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const struct blockdev_create_opt_desc *const *)a)->name,
		      (*(const struct blockdev_create_opt_desc *const *)b)->name);
}

void blockdev_create_help(const struct blockdev_driver *drv, FILE *out)
{
	static const struct blockdev_create_opt_desc size = {
		"size", BLOCKDEV_CREATE_SIZE, NULL, NULL, "Virtual disk size" };
	static const char *const types[] = {
		[BLOCKDEV_CREATE_STR] = "<str>", [BLOCKDEV_CREATE_BOOL] = "<bool (on/off)>",
		[BLOCKDEV_CREATE_SIZE] = "<size>",
	};
	const struct blockdev_create_opt_desc *d = drv->create_opts, **v;
	size_t n = 1;

	while (d && d[n - 1].name)
		n++;
	v = calloc(n, sizeof(*v));
	if (!v)
		return;
	v[0] = &size;
	for (size_t i = 1; i < n; i++)
		v[i] = &d[i - 1];
	qsort(v, n, sizeof(*v), by_name);
	fprintf(out, "Supported options:\n");
	for (size_t i = 0; i < n; i++) {
		char left[64];

		snprintf(left, sizeof(left), "%s=%s", v[i]->name, types[v[i]->type]);
		fprintf(out, "  %-22s%s%s\n", left, v[i]->help ? " - " : "",
			v[i]->help ? v[i]->help : "");
	}
	free(v);
}
