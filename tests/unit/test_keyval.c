/* SPDX-License-Identifier: Apache-2.0 */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/keyval.h"
#include "common/util.h"

/* Parses @s and checks the result equals the JSON text @want. */
static void expect(const char *s, const char *implied, const char *want)
{
	struct json_object *got, *exp = json_tokener_parse(want);
	struct error *err = NULL;

	assert_non_null(exp);
	got = keyval_parse(s, implied, &err);
	if (!got)
		fail_msg("'%s' refused: %s", s, error_msg(err));
	assert_null(err);
	if (!json_object_equal(got, exp))
		fail_msg("'%s' gave %s, expected %s", s,
			 json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN), want);
	json_object_put(got);
	json_object_put(exp);
}

/* Checks @s is refused with a message holding @what and @what2 (when not NULL). */
static void expect_error(const char *s, const char *implied, const char *what, const char *what2)
{
	struct error *err = NULL;
	struct json_object *got = keyval_parse(s, implied, &err);

	if (got)
		fail_msg("'%.80s' accepted as %.200s", s,
			 json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN));
	assert_non_null(err);
	if (!strstr(error_msg(err), what) || (what2 && !strstr(error_msg(err), what2)))
		fail_msg("'%.80s': message '%s' lacks '%s' / '%s'", s, error_msg(err), what,
			 what2 ? what2 : "");
	error_free(err);
}

static struct json_object *parse_ok(const char *s)
{
	struct json_object *o = keyval_parse(s, NULL, NULL);

	assert_non_null(o);
	return o;
}

/* ------------------------------------------------------------------ dotted form */

static void dotted_keys_nest_into_objects(void **state)
{
	expect("driver=qcow2,file.driver=file,file.filename=/x,node-name=d0", NULL,
	       "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/x\"},"
	       "\"node-name\":\"d0\"}");
	expect("a.b.c=1,a.b.d=2,a.e=3", NULL, "{\"a\":{\"b\":{\"c\":\"1\",\"d\":\"2\"},\"e\":\"3\"}}");
}

static void values_stay_strings(void **state)
{
	expect("size=1G,count=42,on=true,neg=-1", NULL,
	       "{\"size\":\"1G\",\"count\":\"42\",\"on\":\"true\",\"neg\":\"-1\"}");
}

static void double_comma_is_a_comma_in_a_value(void **state)
{
	expect("a=b,,c,d=e", NULL, "{\"a\":\"b,c\",\"d\":\"e\"}");
	expect("a=,,,,", NULL, "{\"a\":\",,\"}");
	expect("a=x,,,b=y", NULL, "{\"a\":\"x,\",\"b\":\"y\"}");
}

static void values_may_be_empty_or_hold_equals_and_dots(void **state)
{
	expect("a=,b=c=d,e=/x.y{}", NULL, "{\"a\":\"\",\"b\":\"c=d\",\"e\":\"/x.y{}\"}");
}

static void keys_take_letters_digits_dash_underscore(void **state)
{
	expect("node-name=a,l2_cache-size9=b,X=c", NULL,
	       "{\"node-name\":\"a\",\"l2_cache-size9\":\"b\",\"X\":\"c\"}");
}

static void empty_string_is_an_empty_object(void **state)
{
	expect("", NULL, "{}");
	expect("", "driver", "{}");
}

static void implied_key_takes_a_bare_first_value(void **state)
{
	expect("iothread,id=io0", "qom-type", "{\"qom-type\":\"iothread\",\"id\":\"io0\"}");
	expect("virtio-blk-pci,drive=d0", "driver",
	       "{\"driver\":\"virtio-blk-pci\",\"drive\":\"d0\"}");
	expect("virtio-blk-pci", "driver", "{\"driver\":\"virtio-blk-pci\"}");
	expect("a,,b.c,id=x", "driver", "{\"driver\":\"a,b.c\",\"id\":\"x\"}");
}

static void implied_key_may_be_given_explicitly(void **state)
{
	expect("id=io0,qom-type=iothread", "qom-type", "{\"id\":\"io0\",\"qom-type\":\"iothread\"}");
	expect_error("iothread,qom-type=x", "qom-type", "qom-type", "twice");
}

static void only_the_first_item_may_omit_the_key(void **state)
{
	expect_error("id=io0,iothread", "qom-type", "'iothread' at offset 7 has no '='",
		     "only the first item");
	expect_error("iothread,id=io0", NULL, "'iothread' at offset 0 has no '='", NULL);
}

static void lists_from_contiguous_indexes(void **state)
{
	expect("a.0=x,a.1=y", NULL, "{\"a\":[\"x\",\"y\"]}");
	expect("a.1=y,a.0=x,a.2=z", NULL, "{\"a\":[\"x\",\"y\",\"z\"]}");
	expect("a.0.0=x,a.0.1=y,a.1.0=z", NULL, "{\"a\":[[\"x\",\"y\"],[\"z\"]]}");
}

static void lists_of_objects(void **state)
{
	expect("m.0.iothread=io0,m.1.iothread=io1", NULL,
	       "{\"m\":[{\"iothread\":\"io0\"},{\"iothread\":\"io1\"}]}");
	expect("m.0.a=1,m.1.a=2,m.0.b=3", NULL, "{\"m\":[{\"a\":\"1\",\"b\":\"3\"},{\"a\":\"2\"}]}");
}

static void list_with_a_gap_is_refused(void **state)
{
	expect_error("a.0=x,a.2=y", NULL, "list 'a'", "index 1 is missing");
	expect_error("a.1=x", NULL, "list 'a'", "index 0 is missing");
	expect_error("b.c.3=x", NULL, "list 'b.c'", "index 0");
	expect_error("a.99999999999999999999999=x", NULL, "index 0 is missing", NULL);
}

static void list_index_mixed_with_names_is_refused(void **state)
{
	expect_error("a.0=x,a.b=y", NULL, "'a' mixes list indexes and names", "a.b");
}

static void list_index_with_leading_zero_is_refused(void **state)
{
	expect_error("a.01=x", NULL, "'01' has a leading zero", "offset 2");
}

static void list_index_cannot_come_first(void **state)
{
	expect_error("0=x", NULL, "key '0'", "cannot start with a list index");
}

/* ------------------------------------------------------------------ dotted errors */

static void empty_key_is_refused(void **state)
{
	expect_error("=x", NULL, "empty key at offset 0", NULL);
	expect_error("a=1,=x", NULL, "empty key at offset 4", NULL);
	expect_error(",a=1", NULL, "empty key at offset 0", NULL);
}

static void empty_key_segment_is_refused(void **state)
{
	expect_error("a..b=1", NULL, "key 'a..b' at offset 2", "empty key segment");
	expect_error("a.=1", NULL, "key 'a.'", "empty key segment");
	expect_error(".a=1", NULL, "key '.a' at offset 0", "empty key segment");
}

static void bad_key_characters_are_refused(void **state)
{
	expect_error("a$b=1", NULL, "key 'a$b' at offset 1", "invalid character '$'");
	expect_error("x=1,a b=1", NULL, "key 'a b' at offset 5", "invalid character ' '");
	expect_error("a\033=1", NULL, "key 'a\\x1b'", "'\\x1b'");
	expect_error("a.-b=1", NULL, "segment '-b' must start with a letter", NULL);
	expect_error("_a=1", NULL, "segment '_a' must start with a letter", NULL);
	expect_error("a.1b=1", NULL, "segment '1b' must start with a letter", NULL);
}

static void key_given_twice_is_refused(void **state)
{
	expect_error("a=1,a=2", NULL, "key 'a' given twice", "offset 4");
	expect_error("f.x=1,g=2,f.x=3", NULL, "key 'f.x' given twice", "offset 10");
	expect_error("l.0=1,l.0=2", NULL, "key 'l.0' given twice", NULL);
}

static void key_both_value_and_object_is_refused(void **state)
{
	expect_error("file=f0,file.driver=file", NULL, "key 'file' is both a value and an object",
		     "'file.driver' at offset 8");
	expect_error("file.driver=file,file=f0", NULL, "key 'file' is both a value and an object",
		     "offset 17");
	expect_error("a.b=1,a.b.c=2", NULL, "key 'a.b' is both a value and an object", NULL);
}

static void missing_equals_is_refused(void **state)
{
	expect_error("a=1,b", NULL, "'b' at offset 4 has no '='", NULL);
	expect_error("a", NULL, "'a' at offset 0 has no '='", NULL);
}

static void trailing_lone_comma_is_refused(void **state)
{
	expect_error("a=b,", NULL, "trailing ',' at offset 3", NULL);
	expect_error("a=b,,,", NULL, "trailing ',' at offset 5", NULL);
	expect_error(",", "driver", "trailing ','", NULL);
	expect("a=b,,", NULL, "{\"a\":\"b,\"}");
}

static void nesting_deeper_than_16_levels_is_refused(void **state)
{
	expect("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p=1", NULL,
	       "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":{\"k\":{\"l\":"
	       "{\"m\":{\"n\":{\"o\":{\"p\":\"1\"}}}}}}}}}}}}}}}}");
	expect_error("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q=1", NULL, "nested deeper than 16 levels",
		     "key 'a.b.c");
	expect_error("a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0=1", NULL, "nested deeper than 16", NULL);
}

static void input_longer_than_64k_is_refused(void **state)
{
	char *s = malloc(KEYVAL_MAX_LEN + 2);
	struct json_object *o;

	assert_non_null(s);
	memcpy(s, "a=", 2);
	memset(s + 2, 'x', KEYVAL_MAX_LEN - 2);
	s[KEYVAL_MAX_LEN] = '\0';
	o = keyval_parse(s, NULL, NULL); /* exactly the limit: fine */
	assert_non_null(o);
	assert_int_equal(json_object_get_string_len(json_object_object_get(o, "a")),
			 KEYVAL_MAX_LEN - 2);
	json_object_put(o);
	s[KEYVAL_MAX_LEN] = 'x';
	s[KEYVAL_MAX_LEN + 1] = '\0';
	expect_error(s, NULL, "longer than 65536 bytes", NULL);
	s[0] = '{';
	expect_error(s, NULL, "longer than 65536 bytes", NULL);
	free(s);
}

static void null_string_is_refused(void **state)
{
	expect_error(NULL, NULL, "no option string", NULL);
}

/* ------------------------------------------------------------------ JSON form */

static void json_form_is_parsed_as_json(void **state)
{
	expect("{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/x\"},"
	       "\"read-only\":true,\"n\":4,\"l\":[1,{\"a\":null}]}", NULL,
	       "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/x\"},"
	       "\"read-only\":true,\"n\":4,\"l\":[1,{\"a\":null}]}");
	expect("  \t{\"a\": \"b,c\"} \n", NULL, "{\"a\":\"b,c\"}");
	expect("{}", "driver", "{}");
}

static void json_and_dotted_forms_agree(void **state)
{
	const char *dotted = "driver=qcow2,file.driver=file,file.filename=/x,m.0.io=a,m.1.io=b";
	struct json_object *a = parse_ok(dotted);
	const char *text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN);
	struct json_object *b = parse_ok(text);

	assert_int_equal(text[0], '{');
	assert_true(json_object_equal(a, b));
	json_object_put(a);
	json_object_put(b);
}

static void json_syntax_error_says_where_parsing_stopped(void **state)
{
	expect_error("{\"a\": x}", NULL, "JSON: ", "at offset 6");
	expect_error("{\"a\": 1,", NULL, "JSON: the text ends at offset 8", NULL);
	expect_error("{", NULL, "JSON: the text ends at offset 1", NULL);
}

static void json_is_strict(void **state)
{
	expect_error("{'a': 'b'}", NULL, "JSON: ", "offset");
	expect_error("{\"a\": 409E}", NULL, "JSON: ", "offset");
	expect_error("{\"a\": 01}", NULL, "JSON: ", "offset");
	expect_error("{\"a\": 1,}", NULL, "JSON: ", "offset");
	expect("{\"a\": 1, \"a\": 2}", NULL, "{\"a\":2}"); /* json-c: the last one counts */
}

static void json_text_after_the_object_is_refused(void **state)
{
	expect_error("{\"a\": 1} x", NULL, "unexpected text after the object at offset 9", "'x'");
	expect_error("{}{}", NULL, "after the object at offset 2", NULL);
}

static void json_deeper_than_16_levels_is_refused(void **state)
{
	char deep[256];

	expect("{\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}", NULL,
	       "{\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}");
	expect_error("{\"a\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}", NULL,
		     "nested deeper than 16 levels", "'a.0.0");
	/* past the tokener's own limit too: refused, not crashed */
	memset(deep, '[', 200);
	memcpy(deep, "{\"a\":", 5);
	deep[200] = '\0';
	expect_error(deep, NULL, "JSON: ", "offset");
}

static void json_non_finite_numbers_and_nul_are_refused(void **state)
{
	expect_error("{\"a\": NaN}", NULL, "'a' is not a finite number", NULL);
	expect_error("{\"b\": {\"a\": -Infinity}}", NULL, "'b.a' is not a finite number", NULL);
	expect_error("{\"a\": 1e999}", NULL, "not a finite number", NULL);
	expect_error("{\"s\": \"x\\u0000y\"}", NULL, "string at 's' holds a NUL", NULL);
}

/* ------------------------------------------------------------------ accessors */

static void take_string_removes_the_key_and_keeps_the_value_alive(void **state)
{
	struct json_object *o = parse_ok("driver=qcow2,node-name=d0");
	const char *driver = "default", *name = NULL, *absent = "default";

	assert_int_equal(keyval_take_string(o, "driver", &driver, NULL), 0);
	assert_int_equal(keyval_take_string(o, "node-name", &name, NULL), 0);
	assert_int_equal(keyval_take_string(o, "missing", &absent, NULL), 1);
	assert_int_equal(keyval_take_string(o, "driver", &absent, NULL), 1); /* gone */
	assert_string_equal(driver, "qcow2");
	assert_string_equal(name, "d0");
	assert_string_equal(absent, "default");
	assert_int_equal(json_object_object_length(o), 0);
	json_object_put(o);
}

static void take_string_refuses_other_types_naming_key_and_value(void **state)
{
	struct json_object *o = parse_ok("{\"serial\": 123, \"f\": {\"x\": 1}, \"n\": null}");
	struct error *err = NULL;
	const char *s = NULL;

	assert_int_equal(keyval_take_string(o, "serial", &s, &err), -1);
	assert_string_equal(error_msg(err), "key 'serial': expected a string, got 123");
	error_free(err);
	err = NULL;
	assert_int_equal(keyval_take_string(o, "n", &s, &err), -1);
	assert_non_null(strstr(error_msg(err), "got null"));
	error_free(err);
	assert_null(s);
	assert_int_equal(json_object_object_length(o), 3); /* a refused key stays */
	json_object_put(o);
}

static void take_bool_accepts_words_and_json_booleans(void **state)
{
	static const struct {
		const char *s;
		bool v;
	} words[] = { { "on", true },	{ "off", false }, { "yes", true },
		      { "no", false },	{ "true", true }, { "false", false } };
	struct json_object *o;
	bool b;

	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		char s[32];

		snprintf(s, sizeof(s), "x=%s", words[i].s);
		o = parse_ok(s);
		b = !words[i].v;
		assert_int_equal(keyval_take_bool(o, "x", &b, NULL), 0);
		assert_int_equal(b, words[i].v);
		assert_int_equal(json_object_object_length(o), 0);
		json_object_put(o);
	}
	o = parse_ok("{\"t\": true, \"f\": false, \"s\": \"on\"}");
	assert_int_equal(keyval_take_bool(o, "t", &b, NULL), 0);
	assert_true(b);
	assert_int_equal(keyval_take_bool(o, "f", &b, NULL), 0);
	assert_false(b);
	assert_int_equal(keyval_take_bool(o, "s", &b, NULL), 0);
	assert_true(b);
	b = true;
	assert_int_equal(keyval_take_bool(o, "absent", &b, NULL), 1);
	assert_true(b);
	json_object_put(o);
}

static void take_bool_refuses_bad_values_naming_key_and_value(void **state)
{
	struct json_object *o = parse_ok("{\"direct\": \"maybe\", \"n\": 1}");
	struct error *err = NULL;
	bool b = false;

	assert_int_equal(keyval_take_bool(o, "direct", &b, &err), -1);
	assert_non_null(strstr(error_msg(err), "key 'direct'"));
	assert_non_null(strstr(error_msg(err), "'maybe'"));
	error_free(err);
	err = NULL;
	assert_int_equal(keyval_take_bool(o, "n", &b, &err), -1);
	assert_string_equal(error_msg(err), "key 'n': expected on or off, got 1");
	error_free(err);
	assert_int_equal(json_object_object_length(o), 2);
	json_object_put(o);
}

static void take_u64_accepts_strings_and_json_integers(void **state)
{
	struct json_object *o = parse_ok("a=42,b=0x10,c=18446744073709551615");
	struct json_object *j = parse_ok("{\"a\": 7, \"b\": 18446744073709551615, \"c\": \"9\"}");
	uint64_t v = 0;

	assert_int_equal(keyval_take_u64(o, "a", &v, NULL), 0);
	assert_int_equal(v, 42);
	assert_int_equal(keyval_take_u64(o, "b", &v, NULL), 0);
	assert_int_equal(v, 16);
	assert_int_equal(keyval_take_u64(o, "c", &v, NULL), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(keyval_take_u64(j, "a", &v, NULL), 0);
	assert_int_equal(v, 7);
	assert_int_equal(keyval_take_u64(j, "b", &v, NULL), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(keyval_take_u64(j, "c", &v, NULL), 0);
	assert_int_equal(v, 9);
	v = 5;
	assert_int_equal(keyval_take_u64(j, "a", &v, NULL), 1);
	assert_int_equal(v, 5);
	json_object_put(o);
	json_object_put(j);
}

static void take_u64_refuses_bad_values_naming_key_and_value(void **state)
{
	struct json_object *o =
		parse_ok("{\"neg\": -1, \"s\": \"abc\", \"d\": 1.5, \"big\": \"99999999999999999999\"}");
	struct error *err = NULL;
	uint64_t v = 3;

	assert_int_equal(keyval_take_u64(o, "neg", &v, &err), -1);
	assert_string_equal(error_msg(err), "key 'neg': -1 is negative");
	error_free(err);
	err = NULL;
	assert_int_equal(keyval_take_u64(o, "s", &v, &err), -1);
	assert_non_null(strstr(error_msg(err), "key 's'"));
	assert_non_null(strstr(error_msg(err), "'abc' is not a number"));
	error_free(err);
	err = NULL;
	assert_int_equal(keyval_take_u64(o, "d", &v, &err), -1);
	assert_string_equal(error_msg(err), "key 'd': expected an unsigned integer, got 1.5");
	error_free(err);
	err = NULL;
	assert_int_equal(keyval_take_u64(o, "big", &v, &err), -1);
	assert_non_null(strstr(error_msg(err), "key 'big'"));
	assert_non_null(strstr(error_msg(err), "out of range"));
	error_free(err);
	assert_int_equal(v, 3);
	assert_int_equal(json_object_object_length(o), 4);
	json_object_put(o);
}

static void take_size_uses_parse_size_suffixes(void **state)
{
	struct json_object *o = parse_ok("a=64k,b=1M,c=2G,d=1T,e=512");
	struct json_object *j = parse_ok("{\"a\": 4096, \"b\": \"4M\"}");
	uint64_t v;

	assert_int_equal(keyval_take_size(o, "a", &v, NULL), 0);
	assert_int_equal(v, 64 * KiB);
	assert_int_equal(keyval_take_size(o, "b", &v, NULL), 0);
	assert_int_equal(v, MiB);
	assert_int_equal(keyval_take_size(o, "c", &v, NULL), 0);
	assert_int_equal(v, 2 * GiB);
	assert_int_equal(keyval_take_size(o, "d", &v, NULL), 0);
	assert_int_equal(v, 1024 * GiB);
	assert_int_equal(keyval_take_size(o, "e", &v, NULL), 0);
	assert_int_equal(v, 512);
	assert_int_equal(keyval_take_size(j, "a", &v, NULL), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(keyval_take_size(j, "b", &v, NULL), 0);
	assert_int_equal(v, 4 * MiB);
	json_object_put(o);
	json_object_put(j);
}

static void take_size_refuses_bad_values_naming_key_and_value(void **state)
{
	struct json_object *o = parse_ok("{\"size\": \"1X\", \"l\": [1], \"n\": -4096}");
	struct error *err = NULL;
	uint64_t v;

	assert_int_equal(keyval_take_size(o, "size", &v, &err), -1);
	assert_non_null(strstr(error_msg(err), "key 'size'"));
	assert_non_null(strstr(error_msg(err), "'1X' is not a size"));
	error_free(err);
	err = NULL;
	assert_int_equal(keyval_take_size(o, "l", &v, &err), -1);
	assert_string_equal(error_msg(err), "key 'l': expected a size, got [1]");
	error_free(err);
	err = NULL;
	assert_int_equal(keyval_take_size(o, "n", &v, &err), -1);
	assert_non_null(strstr(error_msg(err), "-4096 is negative"));
	error_free(err);
	json_object_put(o);
}

static void take_value_hands_out_any_type(void **state)
{
	struct json_object *o = parse_ok("file.driver=file,file.filename=/x,l.0=a");
	struct json_object *file = NULL, *l = NULL;
	const char *fn = NULL;

	assert_int_equal(keyval_take_value(o, "file", &file), 0);
	assert_int_equal(keyval_take_value(o, "l", &l), 0);
	assert_int_equal(keyval_take_value(o, "file", &file), 1);
	assert_true(json_object_is_type(file, json_type_object));
	assert_true(json_object_is_type(l, json_type_array));
	assert_int_equal(keyval_take_string(file, "filename", &fn, NULL), 0);
	assert_string_equal(fn, "/x");
	assert_int_equal(keyval_refuse_leftovers(o, "--blockdev", NULL), 0);
	json_object_put(o);
}

static void refuse_leftovers_names_the_first_key_nobody_took(void **state)
{
	struct json_object *o = parse_ok("driver=file,foo=1,bar.baz=2");
	struct error *err = NULL;
	const char *d;

	assert_int_equal(keyval_take_string(o, "driver", &d, NULL), 0);
	assert_int_equal(keyval_refuse_leftovers(o, "--blockdev", &err), -1);
	assert_string_equal(error_msg(err), "--blockdev: unknown key 'foo'");
	error_free(err);
	err = NULL;
	json_object_object_del(o, "foo");
	assert_int_equal(keyval_refuse_leftovers(o, NULL, &err), -1);
	assert_string_equal(error_msg(err), "unknown key 'bar'");
	error_free(err);
	json_object_object_del(o, "bar");
	assert_int_equal(keyval_refuse_leftovers(o, "--blockdev", NULL), 0);
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dotted_keys_nest_into_objects),
		cmocka_unit_test(values_stay_strings),
		cmocka_unit_test(double_comma_is_a_comma_in_a_value),
		cmocka_unit_test(values_may_be_empty_or_hold_equals_and_dots),
		cmocka_unit_test(keys_take_letters_digits_dash_underscore),
		cmocka_unit_test(empty_string_is_an_empty_object),
		cmocka_unit_test(implied_key_takes_a_bare_first_value),
		cmocka_unit_test(implied_key_may_be_given_explicitly),
		cmocka_unit_test(only_the_first_item_may_omit_the_key),
		cmocka_unit_test(lists_from_contiguous_indexes),
		cmocka_unit_test(lists_of_objects),
		cmocka_unit_test(list_with_a_gap_is_refused),
		cmocka_unit_test(list_index_mixed_with_names_is_refused),
		cmocka_unit_test(list_index_with_leading_zero_is_refused),
		cmocka_unit_test(list_index_cannot_come_first),
		cmocka_unit_test(empty_key_is_refused),
		cmocka_unit_test(empty_key_segment_is_refused),
		cmocka_unit_test(bad_key_characters_are_refused),
		cmocka_unit_test(key_given_twice_is_refused),
		cmocka_unit_test(key_both_value_and_object_is_refused),
		cmocka_unit_test(missing_equals_is_refused),
		cmocka_unit_test(trailing_lone_comma_is_refused),
		cmocka_unit_test(nesting_deeper_than_16_levels_is_refused),
		cmocka_unit_test(input_longer_than_64k_is_refused),
		cmocka_unit_test(null_string_is_refused),
		cmocka_unit_test(json_form_is_parsed_as_json),
		cmocka_unit_test(json_and_dotted_forms_agree),
		cmocka_unit_test(json_syntax_error_says_where_parsing_stopped),
		cmocka_unit_test(json_is_strict),
		cmocka_unit_test(json_text_after_the_object_is_refused),
		cmocka_unit_test(json_deeper_than_16_levels_is_refused),
		cmocka_unit_test(json_non_finite_numbers_and_nul_are_refused),
		cmocka_unit_test(take_string_removes_the_key_and_keeps_the_value_alive),
		cmocka_unit_test(take_string_refuses_other_types_naming_key_and_value),
		cmocka_unit_test(take_bool_accepts_words_and_json_booleans),
		cmocka_unit_test(take_bool_refuses_bad_values_naming_key_and_value),
		cmocka_unit_test(take_u64_accepts_strings_and_json_integers),
		cmocka_unit_test(take_u64_refuses_bad_values_naming_key_and_value),
		cmocka_unit_test(take_size_uses_parse_size_suffixes),
		cmocka_unit_test(take_size_refuses_bad_values_naming_key_and_value),
		cmocka_unit_test(take_value_hands_out_any_type),
		cmocka_unit_test(refuse_leftovers_names_the_first_key_nobody_took),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
