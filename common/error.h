/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Control-plane errors: a function that can fail for a reason a user must read takes a trailing
 * `struct error **errp`, returns -1 (or false / NULL) on failure and fills *errp with a message.
 * Callers that do not care pass NULL. Never dereference errp yourself; use these helpers.
 * The data path does not use this: it returns -errno.
 */
#ifndef VIREO_COMMON_ERROR_H
#define VIREO_COMMON_ERROR_H

#include <stdarg.h>

/*
 * QMP error classes (QEMU's QapiErrorClass): what a client may tell apart without parsing the
 * message. Everything not set otherwise is GenericError.
 */
enum error_class {
	ERROR_CLASS_GENERIC = 0,      /* "GenericError" */
	ERROR_CLASS_DEVICE_NOT_FOUND, /* "DeviceNotFound" */
	ERROR_CLASS_COMMAND_NOT_FOUND, /* "CommandNotFound" */
};

struct error {
	char msg[1024];
	enum error_class cls;
};

/* Sets *errp to a new error if errp is non-NULL and *errp is still NULL (the first error wins). */
void error_setg(struct error **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like error_setg, with QMP error class @cls. */
void error_set_class(struct error **errp, enum error_class cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like error_setg, appending ": <strerror(err)>" (err is a positive or negative errno). */
void error_setg_errno(struct error **errp, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefixes an existing error's message with "<fmt>: " (no-op if there is none). */
void error_prepend(struct error **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *error_msg(const struct error *err);
/* The class's QMP name ("GenericError", "DeviceNotFound", ...); NULL @err: GenericError. */
const char *error_class_name(const struct error *err);
void error_free(struct error *err);
/* Hands @err (made by another thread, say) to *errp, or frees it if errp or *errp is taken. */
void error_propagate(struct error **errp, struct error *err);
/* Prints "<prog>: <msg>\n" on stderr and frees the error. */
void error_report_free(const char *prog, struct error *err);

#endif
