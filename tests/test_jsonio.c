/*
 * test_jsonio.c — unit tests of vm/observe/jsonio.c: strings of any bytes become
 * valid JSON, figures keep their type, reals are written as the decimals
 * they are, and a streamed file is valid JSON or not there at all.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonio.h"

static char dir[64];

static void init(void) {
  snprintf(dir, sizeof dir, "/tmp/gilvm-jsonio-XXXXXX");
  cr_assert(mkdtemp(dir) != NULL, "cannot make a temporary directory: %s", strerror(errno));
}

static void fini(void) {
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(jsonio, .init = init, .fini = fini);

static const char *path(const char *name) {
  static char p[128];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

/* jsonio_string(in) must hold exactly want. */
static void expect_string(const char *in, const char *want, const char *what) {
  json_t *v = jsonio_string(in);
  cr_assert(v != NULL, "%s: no string made", what);
  cr_expect_str_eq(json_string_value(v), want, "%s", what);
  json_decref(v);
}

Test(jsonio, strings_keep_every_valid_byte_and_replace_the_rest) {
  expect_string("plain", "plain", "ASCII");
  expect_string("q\"b\\n\n\t\1\x7f", "q\"b\\n\n\t\1\x7f", "quotes, backslash, control characters");
  expect_string("caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xf0\x9f\x98\x80", "valid UTF-8");
  expect_string(
      "a\xff"
      "b",
      "a\xef\xbf\xbd"
      "b",
      "a byte that starts nothing");
  expect_string("a\xc3", "a\xef\xbf\xbd", "a sequence cut off at the end");
  expect_string("\xc3(", "\xef\xbf\xbd(", "a sequence cut off by an ASCII byte");
  expect_string("\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd", "an overlong NUL");
  expect_string("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", "a UTF-16 surrogate");
  expect_string("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", "beyond U+10FFFF");
}

Test(jsonio, set_makes_a_key_of_any_bytes) {
  json_t *o = json_object();
  cr_assert_eq(jsonio_set(o, "k\xff", json_integer(1)), 0);
  cr_expect_eq(json_integer_value(json_object_get(o, "k\xef\xbf\xbd")), 1);
  json_decref(o);
}

/* jsonio_figure(text) dumped as JSON must read want. */
static void expect_figure(const char *text, const char *want) {
  json_t *v = jsonio_figure(text);
  char *got = v ? json_dumps(v, JSON_ENCODE_ANY | JSONIO_REAL) : NULL;
  cr_expect(got && strcmp(got, want) == 0, "figure \"%s\": %s, expected %s", text, got ? got : "(none)", want);
  free(got);
  json_decref(v);
}

Test(jsonio, figures_are_numbers_when_their_text_is_one) {
  expect_figure("42", "42");
  expect_figure("-7", "-7");
  expect_figure("9223372036854775807", "9223372036854775807");
  expect_figure("0.125", "0.125");
  expect_figure("0.1", "0.1"); /* 15 digits: not 0.10000000000000001 */
  expect_figure("1e+20", "1e20"); /* as jansson writes exponents */
  expect_figure("1e999", "\"1e999\""); /* not finite: JSON has no number for it */
  expect_figure("nan", "\"nan\"");
  expect_figure("12 apples", "\"12 apples\"");
  expect_figure("", "\"\"");
  expect_figure("true", "\"true\"");
}

Test(jsonio, seconds_are_written_as_their_decimal) {
  json_t *o = json_pack("{s:o, s:o, s:o}", "a", jsonio_seconds(1234567), "b", jsonio_seconds(86399999999999ull), "c",
                        jsonio_seconds(5000000));
  char *s = json_dumps(o, JSON_COMPACT | JSONIO_REAL);
  cr_expect_str_eq(s, "{\"a\":0.001234567,\"b\":86399.999999999,\"c\":0.005}");
  free(s);
  json_decref(o);
}

static json_t *load(const char *p) {
  json_error_t e;
  json_t *v = json_load_file(p, JSON_REJECT_DUPLICATES, &e);
  cr_assert(v != NULL, "%s is not valid JSON: line %d: %s", p, e.line, e.text);
  return v;
}

Test(jsonio, write_puts_a_whole_file_in_place) {
  cr_assert_eq(jsonio_write(path("w.json"), json_pack("{s:s, s:[i, i]}", "name", "x", "list", 1, 2)), 0);
  json_t *v = load(path("w.json"));
  cr_expect_eq(json_array_size(json_object_get(v, "list")), 2);
  json_decref(v);
}

Test(jsonio, write_without_a_value_fails_and_leaves_nothing) {
  errno = 0;
  cr_expect_eq(jsonio_write(path("none.json"), NULL), -1);
  cr_expect_eq(errno, ENOMEM);
  cr_expect(access(path("none.json"), F_OK) != 0, "a file was left");
}

Test(jsonio, a_stream_is_one_object_with_its_array_last) {
  jsonio_stream *s = malloc(sizeof *s);
  cr_assert_eq(jsonio_stream_open(s, path("s.json"), json_pack("{s:s}", "unit", "ms"), "items"), 0);
  for (int i = 0; i < 5000; i++) jsonio_stream_add(s, json_pack("{s:i, s:s}", "i", i, "name", "a\"b"));
  cr_assert_eq(jsonio_stream_close(s), 0);
  free(s);
  json_t *v = load(path("s.json"));
  cr_expect_str_eq(json_string_value(json_object_get(v, "unit")), "ms");
  json_t *items = json_object_get(v, "items");
  cr_assert_eq(json_array_size(items), 5000);
  cr_expect_eq(json_integer_value(json_object_get(json_array_get(items, 4999), "i")), 4999);
  json_decref(v);
}

Test(jsonio, an_empty_stream_is_valid_too) {
  jsonio_stream *s = malloc(sizeof *s);
  cr_assert_eq(jsonio_stream_open(s, path("e.json"), json_object(), "items"), 0);
  cr_assert_eq(jsonio_stream_close(s), 0);
  free(s);
  json_t *v = load(path("e.json"));
  cr_expect_eq(json_array_size(json_object_get(v, "items")), 0);
  json_decref(v);
}

Test(jsonio, a_stream_missing_an_item_keeps_the_old_file) {
  FILE *f = fopen(path("old.json"), "w");
  cr_assert(f && fputs("{\"old\": 1}\n", f) >= 0 && fclose(f) == 0);
  jsonio_stream *s = malloc(sizeof *s);
  cr_assert_eq(jsonio_stream_open(s, path("old.json"), json_object(), "items"), 0);
  jsonio_stream_add(s, json_integer(1));
  jsonio_stream_add(s, NULL); /* what an item that could not be made (out of memory) adds */
  errno = 0;
  cr_expect_eq(jsonio_stream_close(s), -1);
  cr_expect_eq(errno, ENOMEM);
  free(s);
  json_t *v = load(path("old.json"));
  cr_expect_eq(json_integer_value(json_object_get(v, "old")), 1, "the old file was replaced");
  json_decref(v);
  DIR *d = opendir(dir);
  int files = 0;
  for (struct dirent *e; d && (e = readdir(d));) files += e->d_name[0] != '.' || strncmp(e->d_name, ".gilvm-", 7) == 0;
  closedir(d);
  cr_expect_eq(files, 1, "a temporary file was left beside old.json");
}
