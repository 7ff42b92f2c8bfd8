/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets (secret.h): a small registry of named byte strings. */
#include "common/secret.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyval.h"
#include "common/util.h"

struct secret {
	char *id;
	uint8_t *data;
	size_t len;
	struct secret *next;
};

static struct secret *secrets;

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes base64 @in (@n bytes, '=' padding, no other characters) into @out; its length. */
static long b64_decode(const uint8_t *in, size_t n, uint8_t *out)
{
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t o = 0, i = 0;

	for (; i < n && in[i] != '='; i++) {
		int v = b64_value(in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	for (; i < n; i++)
		if (in[i] != '=')
			return -1;
	return (long)o;
}

static int read_file(const char *path, uint8_t **out, size_t *len, struct error **errp)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(SECRET_MAX_LEN + 1);
	size_t n;

	if (!f || !buf) {
		error_setg_errno(errp, errno, "secret file '%s'", path);
		if (f)
			fclose(f);
		free(buf);
		return -1;
	}
	n = fread(buf, 1, SECRET_MAX_LEN + 1, f);
	fclose(f);
	if (n > SECRET_MAX_LEN) {
		error_setg(errp, "secret file '%s' is larger than %d bytes", path, SECRET_MAX_LEN);
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

int secret_add_json(struct json_object *a, struct error **errp)
{
	const char *id = NULL, *type = NULL;

	if (keyval_take_string(a, "qom-type", &type, errp) < 0 ||
	    keyval_need_string(a, "id", &id, errp) < 0)
		return -1;
	return secret_add(id, a, errp);
}

int secret_add(const char *id, struct json_object *a, struct error **errp)
{
	const char *data = NULL, *file = NULL, *format = "raw";
	struct secret *s = NULL;
	uint8_t *bytes = NULL;
	size_t len = 0;

	if (keyval_take_string(a, "data", &data, errp) < 0 ||
	    keyval_take_string(a, "file", &file, errp) < 0 ||
	    keyval_take_string(a, "format", &format, errp) < 0)
		return -1;
	if (json_object_object_get_ex(a, "keyid", NULL) || json_object_object_get_ex(a, "iv", NULL)) {
		error_setg(errp, "secret '%s': encrypted secrets (keyid, iv) are not supported", id);
		return -1;
	}
	if (keyval_refuse_leftovers(a, "secret", errp) < 0)
		return -1;
	if (!!data == !!file) {
		error_setg(errp, "secret '%s': give either data or file", id);
		return -1;
	}
	if (strcmp(format, "raw") && strcmp(format, "base64")) {
		error_setg(errp, "secret '%s': format '%s' is not raw or base64", id, format);
		return -1;
	}
	for (struct secret *o = secrets; o; o = o->next) {
		if (!strcmp(o->id, id)) {
			error_setg(errp, "attempt to add duplicate property 'id' (secret '%s')", id);
			return -1;
		}
	}
	if (file) {
		if (read_file(file, &bytes, &len, errp))
			return -1;
	} else {
		len = strlen(data);
		if (len > SECRET_MAX_LEN || !(bytes = malloc(len + 1))) {
			error_setg(errp, "secret '%s': data too long", id);
			return -1;
		}
		memcpy(bytes, data, len);
	}
	if (!strcmp(format, "base64")) {
		long n = b64_decode(bytes, len, bytes);

		if (n < 0) {
			error_setg(errp, "secret '%s': the data is not valid base64", id);
			goto fail;
		}
		len = (size_t)n;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->id = strdup(id))) {
		error_setg(errp, "out of memory");
		goto fail;
	}
	s->data = bytes;
	s->len = len;
	s->next = secrets;
	secrets = s;
	return 0;
fail:
	free(s);
	free(bytes);
	return -1;
}

int secret_add_spec(const char *spec, struct error **errp)
{
	struct json_object *a = keyval_parse(spec, "qom-type", errp);
	int ret;

	if (!a)
		return -1;
	ret = secret_add_json(a, errp);
	json_object_put(a);
	return ret;
}

int secret_lookup(const char *id, const uint8_t **data, size_t *len, struct error **errp)
{
	for (struct secret *s = secrets; s; s = s->next) {
		if (!strcmp(s->id, id)) {
			*data = s->data;
			*len = s->len;
			return 0;
		}
	}
	error_setg(errp, "No secret with id '%s'", id);
	return -1;
}

void secret_cleanup(void)
{
	while (secrets) {
		struct secret *s = secrets;

		secrets = s->next;
		explicit_bzero(s->data, s->len);
		free(s->data);
		free(s->id);
		free(s);
	}
}
