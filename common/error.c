/* SPDX-License-Identifier: Apache-2.0 */
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct error *error_new(const char *fmt, va_list ap)
{
	struct error *err = calloc(1, sizeof(*err));

	if (!err)
		return NULL;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return err;
}

void error_setg(struct error **errp, const char *fmt, ...)
{
	va_list ap;

	if (!errp || *errp)
		return;
	va_start(ap, fmt);
	*errp = error_new(fmt, ap);
	va_end(ap);
}

void error_set_class(struct error **errp, enum error_class cls, const char *fmt, ...)
{
	va_list ap;

	if (!errp || *errp)
		return;
	va_start(ap, fmt);
	*errp = error_new(fmt, ap);
	va_end(ap);
	if (*errp)
		(*errp)->cls = cls;
}

void error_setg_errno(struct error **errp, int err, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!errp || *errp)
		return;
	va_start(ap, fmt);
	*errp = error_new(fmt, ap);
	va_end(ap);
	if (!*errp)
		return;
	n = strlen((*errp)->msg);
	snprintf((*errp)->msg + n, sizeof((*errp)->msg) - n, ": %s", strerror(err < 0 ? -err : err));
}

void error_prepend(struct error **errp, const char *fmt, ...)
{
	char prefix[512], old[sizeof((*errp)->msg)];
	size_t n, len;
	va_list ap;

	if (!errp || !*errp)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, (*errp)->msg, sizeof(old));
	/* "prefix: old", cut at the buffer's end; the prefix (< 512) always fits. */
	n = (size_t)snprintf((*errp)->msg, sizeof((*errp)->msg), "%s: ", prefix);
	len = strnlen(old, sizeof(old) - n - 1);
	memcpy((*errp)->msg + n, old, len);
	(*errp)->msg[n + len] = '\0';
}

const char *error_msg(const struct error *err)
{
	return err ? err->msg : "(no error)";
}

const char *error_class_name(const struct error *err)
{
	static const char *const names[] = {
		[ERROR_CLASS_GENERIC] = "GenericError",
		[ERROR_CLASS_DEVICE_NOT_FOUND] = "DeviceNotFound",
		[ERROR_CLASS_COMMAND_NOT_FOUND] = "CommandNotFound",
	};

	if (!err || (unsigned int)err->cls >= sizeof(names) / sizeof(names[0]))
		return names[ERROR_CLASS_GENERIC];
	return names[err->cls];
}

void error_free(struct error *err)
{
	free(err);
}

void error_propagate(struct error **errp, struct error *err)
{
	if (errp && !*errp)
		*errp = err;
	else
		error_free(err);
}

void error_report_free(const char *prog, struct error *err)
{
	fprintf(stderr, "%s: %s\n", prog, err ? err->msg : "unknown error (out of memory?)");
	error_free(err);
}
