/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Option strings to json-c objects (the syntax is in keyval.h), and the accessors consumers
 * take typed values with.
 *
 * The dotted form is read in one pass: every item's key is checked, its value unescaped, and
 * the value stored at the key's path, creating objects for the inner segments. A second pass
 * turns each object whose keys are all list indexes into an array (indexes 0..n-1 must all be
 * there). Both forms end in the same shape, which is what makes dotted -> JSON text -> parse
 * give the same object back (the fuzz target checks it).
 */
#include "common/keyval.h"

#include <ctype.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "common/util.h"

/* The tokener's own limit; ours (KEYVAL_MAX_DEPTH) is checked on the result, with a key. */
#define JSON_TOKENER_DEPTH 64

/* A byte string as messages show it: printable ASCII kept, the rest \xNN, long ones cut. */
static const char *shown(char *buf, size_t size, const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (n + 8 >= size) {
			memcpy(buf + n, "...", 4);
			return buf;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[n++] = (char)c;
		else
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", c);
	}
	buf[n] = '\0';
	return buf;
}

#define SHOWN_SIZE 96
#define SHOW(buf, s, len) shown(buf, sizeof(buf), s, len)

/* ---------------------------------------------------------------------- dotted keys */

static bool key_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* Checks the key @k (@len bytes, found at offset @off of the input) segment by segment. */
static int check_key(const char *k, size_t len, size_t off, struct error **errp)
{
	char kb[SHOWN_SIZE], sb[SHOWN_SIZE];
	size_t depth = 0;

	SHOW(kb, k, len);
	for (size_t at = 0; at <= len; depth++) {
		size_t end = at, digits = 0;

		while (end < len && k[end] != '.') {
			if (!key_char(k[end])) {
				error_setg(errp, "key '%s' at offset %zu: invalid character '%s' "
					   "(keys hold letters, digits, '-', '_' and '.')", kb,
					   off + end, SHOW(sb, k + end, 1));
				return -1;
			}
			digits += isdigit((unsigned char)k[end]) != 0;
			end++;
		}
		if (end == at) {
			error_setg(errp, "key '%s' at offset %zu: empty key segment", kb, off + at);
			return -1;
		}
		SHOW(sb, k + at, end - at);
		if (digits == end - at) {
			if (!at) {
				error_setg(errp, "key '%s' at offset %zu: a key cannot start with a "
					   "list index ('%s')", kb, off, sb);
				return -1;
			}
			if (k[at] == '0' && end - at > 1) {
				error_setg(errp, "key '%s' at offset %zu: list index '%s' has a "
					   "leading zero", kb, off + at, sb);
				return -1;
			}
		} else if (!isalpha((unsigned char)k[at])) {
			error_setg(errp, "key '%s' at offset %zu: segment '%s' must start with a "
				   "letter (or be a list index)", kb, off + at, sb);
			return -1;
		}
		if (depth == KEYVAL_MAX_DEPTH) {
			error_setg(errp, "key '%s' at offset %zu is nested deeper than %d levels", kb,
				   off, KEYVAL_MAX_DEPTH);
			return -1;
		}
		at = end + 1;
	}
	return 0;
}

/*
 * Stores @val (@vlen bytes) at the path @k (a checked key, NUL-terminated, in a scratch buffer
 * this may write to). @off is the key's offset in the input, for messages.
 */
static int store(struct json_object *root, char *k, const char *val, size_t vlen, size_t off,
		 struct error **errp)
{
	char kb[SHOWN_SIZE], pb[SHOWN_SIZE];
	struct json_object *cur = root, *child, *v;
	char *seg = k;

	SHOW(kb, k, strlen(k));
	for (;;) {
		char *dot = strchr(seg, '.');
		bool found;

		if (dot)
			*dot = '\0';
		found = json_object_object_get_ex(cur, seg, &child);
		if (found && (dot ? !json_object_is_type(child, json_type_object)
				  : json_object_is_type(child, json_type_object))) {
			error_setg(errp, "key '%s' is both a value and an object ('%s' at offset %zu)",
				   SHOW(pb, k, strlen(k)), kb, off);
			return -1;
		}
		if (found && !dot) {
			error_setg(errp, "key '%s' given twice (again at offset %zu)", kb, off);
			return -1;
		}
		if (!dot)
			break;
		if (!found) {
			child = json_object_new_object();
			if (!child || json_object_object_add(cur, seg, child) < 0) {
				json_object_put(child);
				goto oom;
			}
		}
		*dot = '.';
		cur = child;
		seg = dot + 1;
	}
	v = json_object_new_string_len(val, (int)vlen);
	if (!v || json_object_object_add(cur, seg, v) < 0) {
		json_object_put(v);
		goto oom;
	}
	return 0;
oom:
	error_setg(errp, "key '%s': out of memory", kb);
	return -1;
}

static bool all_digits(const char *s)
{
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/*
 * Turns @obj (at key @path) into an array when its keys are list indexes, after doing so for
 * the objects inside it. Returns @obj itself, the new array, or NULL on an error.
 */
static struct json_object *listify(struct json_object *obj, const char *path,
				   struct error **errp)
{
	const char *index_key = NULL, *name_key = NULL;
	struct json_object *arr;
	size_t n = 0;

	json_object_object_foreach(obj, key, val) {
		if (json_object_is_type(val, json_type_object)) {
			char sub[256];
			struct json_object *nv;

			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
			nv = listify(val, sub, errp);
			if (!nv)
				return NULL;
			if (nv != val && json_object_object_add(obj, key, nv) < 0) {
				json_object_put(nv);
				error_setg(errp, "key '%s': out of memory", sub);
				return NULL;
			}
		}
		*(all_digits(key) ? &index_key : &name_key) = key;
		n++;
	}
	if (!index_key)
		return obj;
	if (name_key) {
		error_setg(errp, "key '%s' mixes list indexes and names ('%s.%s' and '%s.%s')", path,
			   path, index_key, path, name_key);
		return NULL;
	}
	arr = json_object_new_array_ext((int)n);
	if (!arr)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e;
		char idx[24];

		snprintf(idx, sizeof(idx), "%zu", i);
		if (!json_object_object_get_ex(obj, idx, &e)) {
			error_setg(errp, "list '%s': index %zu is missing (indexes run from 0 without "
				   "gaps)", path, i);
			json_object_put(arr);
			return NULL;
		}
		if (json_object_array_add(arr, json_object_get(e)) < 0) {
			json_object_put(e);
			json_object_put(arr);
			goto oom;
		}
	}
	return arr;
oom:
	error_setg(errp, "list '%s': out of memory", path);
	return NULL;
}

/* Unescapes the value at @s[*pos] (",," is ',') into @out up to a lone ',' or the end. */
static size_t take_value(const char *s, size_t len, size_t *pos, char *out)
{
	size_t n = 0, p = *pos;

	while (p < len) {
		if (s[p] == ',') {
			if (p + 1 >= len || s[p + 1] != ',')
				break;
			p++;
		}
		out[n++] = s[p++];
	}
	*pos = p;
	return n;
}

static struct json_object *parse_dotted(const char *s, size_t len, const char *implied_key,
					struct error **errp)
{
	size_t ilen = implied_key ? strlen(implied_key) : 0;
	struct json_object *root = json_object_new_object(), *done;
	char *kbuf = malloc(MAX(len, ilen) + 1), *vbuf = malloc(len + 1);
	char shown_buf[SHOWN_SIZE];
	size_t pos = 0;

	if (!root || !kbuf || !vbuf) {
		error_setg(errp, "out of memory");
		goto err;
	}
	while (pos < len) {
		size_t start = pos, klen, vlen;

		while (pos < len && s[pos] != '=' && s[pos] != ',')
			pos++;
		klen = pos - start;
		if (!start && implied_key && (pos == len || s[pos] == ',')) {
			if (check_key(implied_key, ilen, 0, errp) < 0)
				goto err;
			memcpy(kbuf, implied_key, ilen + 1);
			pos = start;
		} else {
			if (!klen) {
				error_setg(errp, "empty key at offset %zu", start);
				goto err;
			}
			if (pos == len || s[pos] != '=') {
				error_setg(errp, "'%s' at offset %zu has no '=' (expected key=value%s)",
					   SHOW(shown_buf, s + start, klen), start,
					   implied_key ? "; only the first item may omit 'key='" : "");
				goto err;
			}
			if (check_key(s + start, klen, start, errp) < 0)
				goto err;
			memcpy(kbuf, s + start, klen);
			kbuf[klen] = '\0';
			pos++;
		}
		vlen = take_value(s, len, &pos, vbuf);
		if (store(root, kbuf, vbuf, vlen, start, errp) < 0)
			goto err;
		if (pos < len) { /* at the ',' that ends the item */
			if (++pos == len) {
				error_setg(errp, "trailing ',' at offset %zu (write ',,' for a comma "
					   "inside a value)", pos - 1);
				goto err;
			}
		}
	}
	done = listify(root, "", errp);
	if (!done)
		goto err;
	free(vbuf);
	free(kbuf);
	return done;
err:
	free(vbuf);
	free(kbuf);
	json_object_put(root);
	return NULL;
}

/* ------------------------------------------------------------------------- JSON form */

/* What the tokener lets through that a consumer must not see: deep nesting, NaN, NULs. */
static int check_json(struct json_object *v, int depth, const char *path, struct error **errp)
{
	char sub[256];
	size_t i = 0;

	switch (json_object_get_type(v)) {
	case json_type_object:
	case json_type_array:
		if (depth > KEYVAL_MAX_DEPTH) {
			error_setg(errp, "JSON: '%s' is nested deeper than %d levels", path,
				   KEYVAL_MAX_DEPTH);
			return -1;
		}
		break;
	case json_type_double:
		if (!isfinite(json_object_get_double(v))) {
			error_setg(errp, "JSON: the value of '%s' is not a finite number", path);
			return -1;
		}
		return 0;
	case json_type_string:
		if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
			error_setg(errp, "JSON: the string at '%s' holds a NUL character", path);
			return -1;
		}
		return 0;
	default:
		return 0;
	}
	if (json_object_is_type(v, json_type_array)) {
		for (i = 0; i < json_object_array_length(v); i++) {
			snprintf(sub, sizeof(sub), "%s%s%zu", path, *path ? "." : "", i);
			if (check_json(json_object_array_get_idx(v, i), depth + 1, sub, errp) < 0)
				return -1;
		}
		return 0;
	}
	json_object_object_foreach(v, key, val) {
		char kb[SHOWN_SIZE];

		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "",
			 SHOW(kb, key, strlen(key)));
		if (check_json(val, depth + 1, sub, errp) < 0)
			return -1;
	}
	return 0;
}

static struct json_object *parse_json(const char *s, size_t len, struct error **errp)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEPTH);
	enum json_tokener_error jerr;
	struct json_object *obj;
	char sb[SHOWN_SIZE];
	size_t end;

	if (!tok) {
		error_setg(errp, "JSON: out of memory");
		return NULL;
	}
	/*
	 * strict: the lenient mode reads "409E" as 409.0 and "1E+" as 1.0 without a word; text
	 * after the object is refused below, with a clearer message than the tokener's
	 */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	obj = json_tokener_parse_ex(tok, s, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj) {
		if (jerr == json_tokener_continue)
			error_setg(errp, "JSON: the text ends at offset %zu inside the object", len);
		else
			error_setg(errp, "JSON: %s at offset %zu (near '%s')",
				   json_tokener_error_desc(jerr), end,
				   SHOW(sb, s + end, MIN(len - end, 24)));
		return NULL;
	}
	while (end < len && isspace((unsigned char)s[end]))
		end++;
	if (end < len) {
		error_setg(errp, "JSON: unexpected text after the object at offset %zu ('%s')", end,
			   SHOW(sb, s + end, MIN(len - end, 24)));
		goto err;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		error_setg(errp, "JSON: expected an object, got %s",
			   json_type_to_name(json_object_get_type(obj)));
		goto err;
	}
	if (check_json(obj, 1, "", errp) < 0)
		goto err;
	return obj;
err:
	json_object_put(obj);
	return NULL;
}

struct json_object *keyval_parse(const char *str, const char *implied_key, struct error **errp)
{
	size_t len, i = 0;

	if (!str) {
		error_setg(errp, "no option string");
		return NULL;
	}
	len = strnlen(str, KEYVAL_MAX_LEN + 1);
	if (len > KEYVAL_MAX_LEN) {
		error_setg(errp, "option string longer than %d bytes", KEYVAL_MAX_LEN);
		return NULL;
	}
	while (i < len && isspace((unsigned char)str[i]))
		i++;
	if (i < len && str[i] == '{')
		return parse_json(str, len, errp);
	return parse_dotted(str, len, implied_key, errp);
}

/* ------------------------------------------------------------------------- accessors */

static void grave_free(struct json_object *o, void *grave)
{
	json_object_put(grave);
}

/* "key '<key>'" for messages (a key from JSON may hold anything: shown as shown() does). */
#define KEY_NAME_SIZE (SHOWN_SIZE + 8)
static const char *key_name(char *buf, const char *key)
{
	char kb[SHOWN_SIZE];

	snprintf(buf, KEY_NAME_SIZE, "key '%s'", SHOW(kb, key, strlen(key)));
	return buf;
}

/*
 * Looks @key up: 1 when absent (or @o is no object), else 0 with *v its value (NULL for a
 * JSON null).
 */
static int lookup(struct json_object *o, const char *key, struct json_object **v)
{
	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, v))
		return 1;
	return 0;
}

/*
 * Removes @key (whose value is @v) from @o, keeping @v alive in @o's graveyard (its userdata)
 * for as long as @o lives, so that pointers into it stay valid.
 */
static int remove_key(struct json_object *o, const char *key, struct json_object *v,
		      struct error **errp)
{
	struct json_object *grave = json_object_get_userdata(o);
	char kn[KEY_NAME_SIZE];

	if (v) {
		if (!grave) {
			grave = json_object_new_array();
			if (!grave)
				goto oom;
			json_object_set_userdata(o, grave, grave_free);
		}
		if (json_object_array_add(grave, json_object_get(v)) < 0) {
			json_object_put(v);
			goto oom;
		}
	}
	json_object_object_del(o, key);
	return 0;
oom:
	error_setg(errp, "%s: out of memory", key_name(kn, key));
	return -1;
}

/* "key 'x': expected <what>, got <the value as JSON>" */
static int wrong_type(const char *key, struct json_object *v, const char *what,
		      struct error **errp)
{
	const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	char vb[SHOWN_SIZE], kn[KEY_NAME_SIZE];

	error_setg(errp, "%s: expected %s, got %s", key_name(kn, key), what,
		   SHOW(vb, text, strlen(text)));
	return -1;
}

int keyval_take_value(struct json_object *o, const char *key, struct json_object **out)
{
	struct json_object *v;

	if (lookup(o, key, &v))
		return 1;
	if (remove_key(o, key, v, NULL) < 0)
		return -1;
	*out = v;
	return 0;
}

int keyval_take_string(struct json_object *o, const char *key, const char **out,
		       struct error **errp)
{
	struct json_object *v;

	if (lookup(o, key, &v))
		return 1;
	if (!json_object_is_type(v, json_type_string))
		return wrong_type(key, v, "a string", errp);
	if (remove_key(o, key, v, errp) < 0)
		return -1;
	*out = json_object_get_string(v);
	return 0;
}

int keyval_need_string(struct json_object *o, const char *key, const char **out,
		       struct error **errp)
{
	int r = keyval_take_string(o, key, out, errp);

	if (r > 0)
		error_setg(errp, "Parameter '%s' is missing", key);
	return r ? -1 : 0;
}

int keyval_take_bool(struct json_object *o, const char *key, bool *out, struct error **errp)
{
	struct json_object *v;
	char kn[KEY_NAME_SIZE];
	bool b;

	if (lookup(o, key, &v))
		return 1;
	if (json_object_is_type(v, json_type_boolean)) {
		b = json_object_get_boolean(v);
	} else if (json_object_is_type(v, json_type_string)) {
		if (parse_bool(key_name(kn, key), json_object_get_string(v), &b, errp) < 0)
			return -1;
	} else {
		return wrong_type(key, v, "on or off", errp);
	}
	if (remove_key(o, key, v, errp) < 0)
		return -1;
	*out = b;
	return 0;
}

/* Shared by take_u64 and take_size: a JSON integer, or a string parse_u64/parse_size reads. */
static int take_number(struct json_object *o, const char *key, uint64_t *out, bool size,
		       struct error **errp)
{
	struct json_object *v;
	char kn[KEY_NAME_SIZE];
	uint64_t x;

	if (lookup(o, key, &v))
		return 1;
	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) < 0) {
			error_setg(errp, "%s: %lld is negative", key_name(kn, key),
				   (long long)json_object_get_int64(v));
			return -1;
		}
		x = json_object_get_uint64(v);
	} else if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);

		if ((size ? parse_size(key_name(kn, key), s, &x, errp)
			  : parse_u64(key_name(kn, key), s, 0, UINT64_MAX, &x, errp)) < 0)
			return -1;
	} else {
		return wrong_type(key, v, size ? "a size" : "an unsigned integer", errp);
	}
	if (remove_key(o, key, v, errp) < 0)
		return -1;
	*out = x;
	return 0;
}

int keyval_take_u64(struct json_object *o, const char *key, uint64_t *out, struct error **errp)
{
	return take_number(o, key, out, false, errp);
}

int keyval_take_size(struct json_object *o, const char *key, uint64_t *out,
		     struct error **errp)
{
	return take_number(o, key, out, true, errp);
}

int keyval_refuse_leftovers(struct json_object *o, const char *what, struct error **errp)
{
	char kb[SHOWN_SIZE];

	if (!json_object_is_type(o, json_type_object))
		return 0;
	json_object_object_foreach(o, key, val) {
		(void)val;
		error_setg(errp, "%s%sunknown key '%s'", what ? what : "", what ? ": " : "",
			   SHOW(kb, key, strlen(key)));
		return -1;
	}
	return 0;
}
