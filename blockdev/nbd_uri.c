/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where an NBD export is: QEMU's filenames for it and its --blockdev keys, both into a
 * `struct nbd_target`, and back into the canonical filename a node shows.
 *
 *   nbd://HOST[:PORT][/EXPORT]            TCP (nbd+tcp:// is the same); HOST may be [IPv6]
 *   nbd+unix:///[EXPORT]?socket=PATH      a unix socket
 *   nbd:HOST:PORT[:exportname=EXPORT]     QEMU's older forms
 *   nbd:unix:PATH[:exportname=EXPORT]
 *
 * The URI forms decode percent escapes in the export and the socket path (a NUL refused);
 * nothing else is decoded. Every refusal says which part of the filename is wrong.
 */
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/nbd_client.h"
#include "common/keyval.h"
#include "common/util.h"

#define DEFAULT_PORT "10809"

static bool has_prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

bool nbd_uri_is(const char *filename)
{
	/* nbds (TLS) too, so that it is refused as NBD rather than looked for as a file */
	return has_prefix(filename, "nbd:") || has_prefix(filename, "nbd+") ||
	       has_prefix(filename, "nbds:") || has_prefix(filename, "nbds+");
}

void nbd_target_free(struct nbd_target *t)
{
	free(t->host);
	free(t->port);
	free(t->path);
	free(t->export);
	memset(t, 0, sizeof(*t));
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* [s, s+n) with percent escapes decoded, malloc'd; NULL with a message naming @what. */
static char *decode(const char *s, size_t n, const char *what, const char *filename,
		    struct error **errp)
{
	char *out = malloc(n + 1), *o = out;

	if (!out) {
		error_setg(errp, "'%.200s': out of memory", filename);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		hi = i + 2 < n ? hexval(s[i + 1]) : -1;
		lo = i + 2 < n ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			error_setg(errp, "'%.200s': the %s holds a bad percent escape at '%.3s'",
				   filename, what, s + i);
			free(out);
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

static char *dup_n(const char *s, size_t n, const char *filename, struct error **errp)
{
	char *out = strndup(s, n);

	if (!out)
		error_setg(errp, "'%.200s': out of memory", filename);
	return out;
}

/* A decimal port 1..65535. */
static bool port_valid(const char *s, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* "HOST[:PORT]" or "[V6][:PORT]" (@n bytes at @s) into t->host / t->port. */
static int parse_hostport(const char *s, size_t n, bool port_required, struct nbd_target *t,
			  const char *filename, struct error **errp)
{
	const char *host = s, *colon;
	size_t hlen;

	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close || close == s + 1) {
			error_setg(errp, "'%.200s': an IPv6 address needs its closing ']'", filename);
			return -1;
		}
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1 < s + n ? close + 1 : NULL;
		if (colon && *colon != ':') {
			error_setg(errp, "'%.200s': expected ':PORT' after the IPv6 address", filename);
			return -1;
		}
	} else {
		colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
		if (colon && memchr(colon + 1, ':', n - hlen - 1)) {
			error_setg(errp, "'%.200s': a host with ':' (IPv6) must be written in [brackets]",
				   filename);
			return -1;
		}
	}
	if (!hlen) {
		t->host = dup_n("localhost", 9, filename, errp);
	} else {
		for (size_t i = 0; i < hlen; i++) {
			if (!isgraph((unsigned char)host[i]) || strchr("/?#@%", host[i])) {
				error_setg(errp, "'%.200s': the host '%.*s' holds '%c'", filename,
					   (int)hlen, host, host[i]);
				return -1;
			}
		}
		t->host = dup_n(host, hlen, filename, errp);
	}
	if (!t->host)
		return -1;
	if (colon) {
		size_t plen = (size_t)(s + n - colon - 1);

		if (!port_valid(colon + 1, plen)) {
			error_setg(errp, "'%.200s': the port '%.*s' is not a number from 1 to 65535",
				   filename, (int)plen, colon + 1);
			return -1;
		}
		t->port = dup_n(colon + 1, plen, filename, errp);
	} else if (port_required) {
		error_setg(errp, "'%.200s': expected nbd:HOST:PORT", filename);
		return -1;
	} else {
		t->port = dup_n(DEFAULT_PORT, strlen(DEFAULT_PORT), filename, errp);
	}
	return t->port ? 0 : -1;
}

/* The query of nbd+unix: "socket=PATH" only. */
static int parse_query(const char *q, struct nbd_target *t, const char *filename,
		       struct error **errp)
{
	while (*q) {
		size_t n = strcspn(q, "&");

		if (!has_prefix(q, "socket=") || n < 7) {
			error_setg(errp, "'%.200s': unknown parameter '%.*s' (nbd+unix takes socket=PATH)",
				   filename, (int)n, q);
			return -1;
		}
		if (t->path) {
			error_setg(errp, "'%.200s': socket= is given twice", filename);
			return -1;
		}
		t->path = decode(q + 7, n - 7, "socket path", filename, errp);
		if (!t->path)
			return -1;
		q += n;
		if (*q)
			q++;
	}
	return 0;
}

static int check_export(const struct nbd_target *t, const char *filename, struct error **errp)
{
	if (strlen(t->export) > NBD_MAX_STRING) {
		error_setg(errp, "'%.200s': the export name is longer than %u bytes", filename,
			   NBD_MAX_STRING);
		return -1;
	}
	return 0;
}

static int parse_uri(const char *filename, const char *rest, bool unix_sock, struct nbd_target *t,
		     struct error **errp)
{
	size_t alen = strcspn(rest, "/?#");
	const char *path = rest + alen, *query;
	size_t plen;

	if (strchr(rest, '#')) {
		error_setg(errp, "'%.200s': an NBD URI has no #fragment", filename);
		return -1;
	}
	t->type = unix_sock ? NBD_ADDR_UNIX : NBD_ADDR_INET;
	if (unix_sock) {
		if (alen) {
			error_setg(errp, "'%.200s': nbd+unix:// takes no host (nbd+unix:///EXPORT?socket="
				   "PATH)", filename);
			return -1;
		}
	} else if (parse_hostport(rest, alen, false, t, filename, errp) < 0) {
		return -1;
	}
	plen = strcspn(path, "?");
	query = path[plen] == '?' ? path + plen + 1 : NULL;
	if (plen && path[0] == '/') { /* the export is the path without its first '/' */
		path++;
		plen--;
	}
	t->export = decode(path, plen, "export name", filename, errp);
	if (!t->export || check_export(t, filename, errp) < 0)
		return -1;
	if (unix_sock) {
		if (query && parse_query(query, t, filename, errp) < 0)
			return -1;
		if (!t->path || !*t->path) {
			error_setg(errp, "'%.200s': nbd+unix:// needs ?socket=PATH", filename);
			return -1;
		}
	} else if (query) {
		error_setg(errp, "'%.200s': an nbd:// URI takes no ?parameters (socket= is for "
			   "nbd+unix://)", filename);
		return -1;
	}
	return 0;
}

/* nbd:unix:PATH[:exportname=X] and nbd:HOST:PORT[:exportname=X] */
static int parse_legacy(const char *filename, const char *rest, struct nbd_target *t,
			struct error **errp)
{
	const char *ex = strstr(rest, ":exportname=");
	size_t n = ex ? (size_t)(ex - rest) : strlen(rest);

	t->export = ex ? strdup(ex + strlen(":exportname=")) : strdup("");
	if (!t->export) {
		error_setg(errp, "'%.200s': out of memory", filename);
		return -1;
	}
	if (check_export(t, filename, errp) < 0)
		return -1;
	if (has_prefix(rest, "unix:")) {
		t->type = NBD_ADDR_UNIX;
		if (n <= 5) {
			error_setg(errp, "'%.200s': expected nbd:unix:PATH", filename);
			return -1;
		}
		t->path = dup_n(rest + 5, n - 5, filename, errp);
		return t->path ? 0 : -1;
	}
	t->type = NBD_ADDR_INET;
	if (!n) {
		error_setg(errp, "'%.200s': expected nbd:HOST:PORT or nbd:unix:PATH", filename);
		return -1;
	}
	return parse_hostport(rest, n, true, t, filename, errp);
}

int nbd_uri_parse(const char *filename, struct nbd_target *t, struct error **errp)
{
	static const struct {
		const char *scheme;
		bool unix_sock;
	} schemes[] = {
		{ "nbd://", false },
		{ "nbd+tcp://", false },
		{ "nbd+unix://", true },
	};
	int ret = -1;

	memset(t, 0, sizeof(*t));
	if (has_prefix(filename, "nbds")) {
		error_setg(errp, "'%.200s': NBD over TLS (nbds) is not supported by vireo's NBD client",
			   filename);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
		if (has_prefix(filename, schemes[i].scheme)) {
			ret = parse_uri(filename, filename + strlen(schemes[i].scheme),
					schemes[i].unix_sock, t, errp);
			goto out;
		}
	if (has_prefix(filename, "nbd:") && !has_prefix(filename, "nbd:/")) {
		ret = parse_legacy(filename, filename + 4, t, errp);
		goto out;
	}
	error_setg(errp, "'%.200s': not an NBD filename (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT"
		   "?socket=PATH, nbd:HOST:PORT[:exportname=EXPORT] or nbd:unix:PATH"
		   "[:exportname=EXPORT])", filename);
out:
	if (ret < 0)
		nbd_target_free(t);
	return ret;
}

/* Appends [s, s+n) to @out at *@len, escaping what the URI forms would read otherwise. */
static void encode(char *out, size_t *len, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-._~:@!$'()*+,;", c) || (c == '/' && keep_slash)) {
			out[(*len)++] = (char)c;
		} else {
			out[(*len)++] = '%';
			out[(*len)++] = hex[c >> 4];
			out[(*len)++] = hex[c & 15];
		}
	}
	out[*len] = '\0';
}

char *nbd_target_uri(const struct nbd_target *t)
{
	size_t cap = 64 + 3 * (strlen(t->export) + (t->path ? strlen(t->path) : 0)) +
		     (t->host ? strlen(t->host) : 0) + (t->port ? strlen(t->port) : 0);
	char *out = malloc(cap);
	size_t len;

	if (!out)
		return NULL;
	/* QEMU's forms: no default port, no '/' without an export */
	if (t->type == NBD_ADDR_UNIX) {
		len = (size_t)snprintf(out, cap, "nbd+unix://%s", *t->export ? "/" : "");
		encode(out, &len, t->export, true);
		len += (size_t)snprintf(out + len, cap - len, "?socket=");
		encode(out, &len, t->path, true);
		return out;
	}
	len = (size_t)snprintf(out, cap, strchr(t->host, ':') ? "nbd://[%s]" : "nbd://%s", t->host);
	if (strcmp(t->port, DEFAULT_PORT))
		len += (size_t)snprintf(out + len, cap - len, ":%s", t->port);
	if (*t->export) {
		out[len++] = '/';
		encode(out, &len, t->export, true);
	}
	return out;
}

/* ---- --blockdev driver=nbd: QEMU's SocketAddress "server" and "export" ------------------- */

static int take_port(struct json_object *o, struct nbd_target *t, const char *where,
		     struct error **errp)
{
	struct json_object *v;
	char num[24];
	const char *s;

	if (keyval_take_value(o, "port", &v)) {
		s = DEFAULT_PORT;
	} else if (json_object_is_type(v, json_type_int)) {
		snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
		s = num;
	} else if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
	} else {
		error_setg(errp, "%s: server.port: expected a port number", where);
		return -1;
	}
	if (!port_valid(s, strlen(s))) {
		error_setg(errp, "%s: server.port: '%s' is not a number from 1 to 65535", where, s);
		return -1;
	}
	t->port = strdup(s);
	return t->port ? 0 : -1;
}

static int take_server(struct json_object *server, struct nbd_target *t, const char *where,
		       struct error **errp)
{
	const char *type = NULL, *host = NULL, *path = NULL;

	if (!json_object_is_type(server, json_type_object)) {
		error_setg(errp, "%s: server: expected an object (server.type=inet|unix, ...)",
			   where);
		return -1;
	}
	if (keyval_take_string(server, "type", &type, errp) < 0)
		return -1;
	if (!type) {
		error_setg(errp, "%s: server.type is missing (inet or unix)", where);
		return -1;
	}
	if (!strcmp(type, "inet")) {
		t->type = NBD_ADDR_INET;
		if (keyval_take_string(server, "host", &host, errp) < 0 ||
		    take_port(server, t, where, errp) < 0)
			return -1;
		if (!host || !*host) {
			error_setg(errp, "%s: server.host is missing", where);
			return -1;
		}
		t->host = strdup(host);
	} else if (!strcmp(type, "unix")) {
		t->type = NBD_ADDR_UNIX;
		if (keyval_take_string(server, "path", &path, errp) < 0)
			return -1;
		if (!path || !*path) {
			error_setg(errp, "%s: server.path is missing", where);
			return -1;
		}
		t->path = strdup(path);
	} else {
		error_setg(errp, "%s: server.type '%s' is not supported (inet or unix)", where,
			   type);
		return -1;
	}
	if ((t->type == NBD_ADDR_INET && !t->host) || (t->type == NBD_ADDR_UNIX && !t->path)) {
		error_setg(errp, "%s: out of memory", where);
		return -1;
	}
	return keyval_refuse_leftovers(server, "server", errp);
}

int nbd_target_from_json(struct json_object *o, struct nbd_target *t, const char *where,
			 struct error **errp)
{
	struct json_object *server;
	const char *export = NULL;

	memset(t, 0, sizeof(*t));
	if (keyval_take_value(o, "server", &server) || !server) {
		error_setg(errp, "%s: driver nbd needs server.type=inet with server.host and "
			   "server.port, or server.type=unix with server.path", where);
		return -1;
	}
	if (take_server(server, t, where, errp) < 0 ||
	    keyval_take_string(o, "export", &export, errp) < 0)
		goto err;
	t->export = strdup(export ? export : "");
	if (!t->export) {
		error_setg(errp, "%s: out of memory", where);
		goto err;
	}
	if (strlen(t->export) > NBD_MAX_STRING) {
		error_setg(errp, "%s: export: longer than %u bytes", where, NBD_MAX_STRING);
		goto err;
	}
	return 0;
err:
	nbd_target_free(t);
	return -1;
}
