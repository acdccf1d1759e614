/*
 * jsonio.h — gilvm's JSON files, written and read with jansson: the run's
 * figures (--json), compare's and sweep's (--json), the Chrome trace
 * (--trace). No JSON is escaped or parsed by hand anywhere else.
 *
 * Names in these files come from scripts (worker names, gil.report figures,
 * the script's path) and may hold any bytes; JSON text is UTF-8, so
 * jsonio_string replaces each byte that starts no valid UTF-8 sequence with
 * U+FFFD (as the SVG writer turns it into '?') instead of refusing the file.
 *
 * Files are written whole or not at all (outfile.h). Reals are written with
 * 15 significant digits: every real gilvm writes is a decimal of at most 15
 * digits (nanoseconds as seconds, microseconds with three decimals, Lua's
 * %.14g), so each is written as exactly that decimal, never as 17 digits of
 * binary noise (0.10000000000000001).
 */
#ifndef JSONIO_H
#define JSONIO_H

#include <jansson.h>
#include <stdio.h>

#include "outfile.h"

#define JSONIO_REAL JSON_REAL_PRECISION(15)

/* A JSON string of s's bytes, invalid UTF-8 replaced by U+FFFD. NULL only if out of memory. */
json_t *jsonio_string(const char *s);
/* Set obj[key] = v, key's bytes made valid UTF-8 as jsonio_string does. Takes v's
   reference, also on failure. 0, or -1 if out of memory. */
int jsonio_set(json_t *obj, const char *key, json_t *v);
/* A script's figure as JSON: a number if its text is one (strtod reads all of
   it, finite: an integer stays an integer), else the text as a string. */
json_t *jsonio_figure(const char *text);
/* A number of seconds from nanoseconds. */
json_t *jsonio_seconds(unsigned long long ns);

/* Write v to path (indented, keys in the order set), whole or not at all.
   Takes v's reference, also on failure. 0, or -1 with errno set. */
int jsonio_write(const char *path, json_t *v);
/* An object parsed from text; NULL if text is NULL or not one JSON object. */
json_t *jsonio_parse_object(const char *text);
/* The number under key in obj (integer or real); 0 if there is none. */
double jsonio_number(const json_t *obj, const char *key);

/* A file holding one object whose last key is a long array, written item
   by item so the array never has to be in memory whole (the trace's
   events). Items are dumped by jansson, one per line. */
typedef struct jsonio_stream {
  outfile out;
  FILE *f;
  size_t items; /* written so far: all but the first follow a comma */
  int err; /* a dump failed (out of memory) */
  size_t n;
  char buf[1 << 16]; /* dumps collect here and go to f in large writes */
} jsonio_stream;

/* Open path and write head's keys, then key and the array's opening.
   Takes head's reference. 0, or -1 with errno set (nothing is left behind). */
int jsonio_stream_open(jsonio_stream *s, const char *path, json_t *head, const char *key);
/* Append item to the array. Takes item's reference; a NULL item (out of memory) fails the file. */
void jsonio_stream_add(jsonio_stream *s, json_t *item);
/* Close the array and the object and put the file in place. 0, or -1 with errno set. */
int jsonio_stream_close(jsonio_stream *s);

#endif
