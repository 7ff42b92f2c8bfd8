/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: option strings (common/keyval.c keyval_parse, dotted and JSON forms) and the
 * keyval_take_* accessors on what it returns.
 *
 * Input: an option byte, then the option string (up to its first NUL). Option bits 0-1 pick
 * the implied key (none, "driver", "qom-type", "a.b"); bits 2-3 the accessor the first key is
 * taken with (string, bool, u64, size; the next keys rotate through them).
 *
 * Invariants: a refusal has a message and no result; a result is a JSON object whose nesting
 * stays within KEYVAL_MAX_DEPTH and, from the dotted form, holds only strings, objects and
 * non-empty lists; its JSON text (json-c's) parses back, through keyval_parse, to an equal
 * object, unless that text is over KEYVAL_MAX_LEN, which is then refused; refuse_leftovers
 * refuses a non-empty object and accepts an empty one; an accessor that succeeds removes its
 * key, one that fails names it and leaves it; taken strings stay readable while the object
 * lives. No leak (ASan's leak check in the sanitized builds).
 */
#include <json-c/json.h>

#include "common/keyval.h"
#include "tests/fuzz/fuzz.h"

#define MAX_KEPT 16

/* Depth of @v (an object or list counts one level); checks the dotted form's value types. */
static int depth_of(struct json_object *v, bool dotted)
{
	int d = 0;

	switch (json_object_get_type(v)) {
	case json_type_array:
		FUZZ_CHECK(!dotted || json_object_array_length(v) > 0, "empty list from dotted keys");
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			int c = depth_of(json_object_array_get_idx(v, i), dotted);

			d = c > d ? c : d;
		}
		return d + 1;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			int c = depth_of(val, dotted);

			(void)key;
			d = c > d ? c : d;
		}
		return d + 1;
	}
	default:
		FUZZ_CHECK(!dotted || json_object_is_type(v, json_type_string),
			   "dotted form gave a %s", json_type_to_name(json_object_get_type(v)));
		return 0;
	}
}

static void check_round_trip(struct json_object *o)
{
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	struct error *err = NULL;
	struct json_object *again;

	FUZZ_CHECK(text && text[0] == '{', "JSON text of a result: %.40s", text ? text : "(null)");
	again = keyval_parse(text, "driver", &err);
	if (strlen(text) > KEYVAL_MAX_LEN) {
		FUZZ_CHECK(!again && err && strstr(error_msg(err), "longer than"),
			   "JSON text of %zu bytes not refused for its length", strlen(text));
		error_free(err);
		return;
	}
	FUZZ_CHECK(again, "JSON text of a result refused: %s", error_msg(err));
	FUZZ_CHECK(!err, "accepted with an error set");
	FUZZ_CHECK(json_object_equal(o, again), "round trip changed the object: %.200s vs %.200s",
		   text, json_object_to_json_string_ext(again, JSON_C_TO_STRING_PLAIN));
	json_object_put(again);
}

/* A key that messages show as it is (others are escaped or cut). */
static bool plain_short(const char *key)
{
	size_t n = strlen(key);

	if (n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (key[i] < 0x20 || key[i] >= 0x7f || key[i] == '\\')
			return false;
	return true;
}

/* Takes every key of @o, rotating through the accessors from @which. */
static void take_all(struct json_object *o, unsigned int which)
{
	const char *kept[MAX_KEPT];
	unsigned int nr_kept = 0;
	uint8_t sink = 0;

	while (json_object_object_length(o) > 0) {
		struct error *err = NULL;
		struct json_object *any;
		const char *s = NULL;
		char *key = NULL;
		uint64_t u;
		bool b;
		int r, before = json_object_object_length(o);

		FUZZ_CHECK(keyval_refuse_leftovers(o, "--fuzz", &err) < 0 && err &&
			   strstr(error_msg(err), "--fuzz: unknown key '"), "leftovers not refused");
		error_free(err);
		err = NULL;
		json_object_object_foreach(o, k, v) {
			(void)v;
			key = strdup(k);
			break;
		}
		if (!key)
			abort();
		switch (which++ % 5) {
		case 0:
			r = keyval_take_string(o, key, &s, &err);
			if (!r && nr_kept < MAX_KEPT)
				kept[nr_kept++] = s;
			break;
		case 1: r = keyval_take_bool(o, key, &b, &err); break;
		case 2: r = keyval_take_u64(o, key, &u, &err); break;
		case 3: r = keyval_take_size(o, key, &u, &err); break;
		default: r = keyval_take_value(o, key, &any); break;
		}
		FUZZ_CHECK(r == 0 || r == -1, "taking a present key '%s' returned %d", key, r);
		if (r == 0) {
			FUZZ_CHECK(!err, "taken with an error set");
			FUZZ_CHECK(json_object_object_length(o) == before - 1 &&
				   !json_object_object_get_ex(o, key, NULL), "taken key '%s' stayed",
				   key);
		} else {
			FUZZ_CHECK(err && strstr(error_msg(err), "key '"), "refusal without the key");
			FUZZ_CHECK(!plain_short(key) || strstr(error_msg(err), key),
				   "refusal '%s' does not name '%s'", error_msg(err), key);
			FUZZ_LOG("keyval: take: %s\n", error_msg(err));
			error_free(err);
			json_object_object_del(o, key);
		}
		free(key);
	}
	FUZZ_CHECK(keyval_refuse_leftovers(o, "--fuzz", NULL) == 0, "empty object refused");
	for (unsigned int i = 0; i < nr_kept; i++)
		sink ^= fuzz_touch_read(kept[i], strlen(kept[i]) + 1);
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const implied[] = { NULL, "driver", "qom-type", "a.b" };
	struct error *err = NULL;
	struct json_object *o;
	uint8_t opt;
	bool dotted;
	char *s;

	if (!fuzz_take_opt(&data, &size, &opt))
		return 0;
	s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	dotted = s[strspn(s, " \t\n\v\f\r")] != '{'; /* keyval_parse's rule (isspace) */
	o = keyval_parse(s, implied[opt & 3], &err);
	if (!o) {
		FUZZ_CHECK(err && error_msg(err)[0], "refused without a message");
		FUZZ_LOG("keyval: %s\n", error_msg(err));
		error_free(err);
		free(s);
		return 0;
	}
	FUZZ_CHECK(!err, "accepted with an error set");
	FUZZ_CHECK(json_object_is_type(o, json_type_object), "result is a %s",
		   json_type_to_name(json_object_get_type(o)));
	FUZZ_CHECK(depth_of(o, dotted) <= KEYVAL_MAX_DEPTH, "nested deeper than %d",
		   KEYVAL_MAX_DEPTH);
	FUZZ_LOG("keyval: %.200s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	check_round_trip(o);
	take_all(o, (opt >> 2) & 3);
	json_object_put(o);
	free(s);
	return 0;
}
