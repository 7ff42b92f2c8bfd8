/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QEMU-style option strings (--blockdev, --object, --device) as json-c objects, the shape
 * QMP's arguments have too, so one consumer serves both.
 *
 *   driver=qcow2,file.driver=file,file.filename=/x,node-name=d0
 *     -> {"driver":"qcow2","file":{"driver":"file","filename":"/x"},"node-name":"d0"}
 *   iothread,id=io0 (implied key "qom-type")   -> {"qom-type":"iothread","id":"io0"}
 *   m.0.iothread=io0,m.1.iothread=io1          -> {"m":[{"iothread":"io0"},{"iothread":"io1"}]}
 *   {"driver":"qcow2", ...}                    -> parsed as strict JSON (must be an object)
 *
 * Dotted form: items separated by ',' (a ',' inside a value is written ",,"); each item is
 * key=value, except that the first may be a bare value for the implied key. A key is segments
 * joined by '.'; a segment holds letters, digits, '-' and '_' and starts with a letter, or is
 * a list index (decimal digits, no leading zero; not as the first segment). Indexes of one list
 * run from 0 without gaps, in any order. Values stay strings: typing is the consumer's, through
 * the keyval_take_* accessors below, which take strings and JSON-native values alike.
 *
 * Limits: inputs of at most KEYVAL_MAX_LEN bytes, at most KEYVAL_MAX_DEPTH nested levels
 * (key segments, or JSON objects/arrays). Every refusal names the key, the offset or the text.
 */
#ifndef VIREO_COMMON_KEYVAL_H
#define VIREO_COMMON_KEYVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

struct json_object;

#define KEYVAL_MAX_LEN (64 * 1024)
#define KEYVAL_MAX_DEPTH 16

/*
 * Parses @str (dotted form, or JSON when its first non-space character is '{': json-c's strict
 * mode, so double quotes only and no trailing commas; NaN, Infinity and strings holding a NUL
 * are refused, and of a key given twice the last one counts). @implied_key
 * (or NULL) names the key a leading bare value belongs to. Returns a new object (release it
 * with json_object_put) or NULL with *errp set.
 */
struct json_object *keyval_parse(const char *str, const char *implied_key, struct error **errp);

/*
 * Accessors. Each looks up @key among @o's own members and returns 1 when it is absent (*out
 * untouched, so it may hold a default), -1 when its value is of the wrong type or does not
 * parse (the message names the key and the value; the key stays), and 0 when it stored the
 * value in *out and removed the key from @o, so that keyval_refuse_leftovers() can finally
 * refuse what nobody took. Taken values stay alive as long as @o does (a string from
 * keyval_take_string remains valid): they are kept in @o's json-c userdata, which
 * json_object_deep_copy() refuses to copy, so copy an object (or its parent) before taking
 * from it, not after; and do not set its userdata or serializer.
 */
/* A JSON string. */
int keyval_take_string(struct json_object *o, const char *key, const char **out,
		       struct error **errp);
/* keyval_take_string for a key that must be there: -1 with QMP's "Parameter 'KEY' is missing"
 * when it is absent (0 or -1 only). */
int keyval_need_string(struct json_object *o, const char *key, const char **out,
		       struct error **errp);
/* A JSON boolean, or a string parse_bool reads: on/off, yes/no, true/false (and 1/0). */
int keyval_take_bool(struct json_object *o, const char *key, bool *out, struct error **errp);
/* A non-negative JSON integer, or a string as parse_u64 reads it (decimal or 0x hex). */
int keyval_take_u64(struct json_object *o, const char *key, uint64_t *out, struct error **errp);
/* A non-negative JSON integer (bytes), or a string as parse_size reads it ("64k", "1G"). */
int keyval_take_size(struct json_object *o, const char *key, uint64_t *out,
		     struct error **errp);
/*
 * Any value, as it is (an object, a list; NULL for a JSON null): borrowed, alive as long as
 * @o. -1 only when out of memory.
 */
int keyval_take_value(struct json_object *o, const char *key, struct json_object **out);

/*
 * 0 when @o has no member left; else -1 with "<what>: unknown key '<the first one>'" (just
 * "unknown key '...'" when @what is NULL).
 */
int keyval_refuse_leftovers(struct json_object *o, const char *what, struct error **errp);

#endif
