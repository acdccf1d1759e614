/*
 * jsonio.c — JSON files through jansson (see jsonio.h).
 */
#include "jsonio.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

/* U+FFFD, the replacement character, in UTF-8 */
static const char replacement[] = "\xef\xbf\xbd";

/* s with every byte that starts no valid UTF-8 sequence replaced (malloc'd). */
static char *valid_utf8(const char *s) {
  char *out = malloc(strlen(s) * 3 + 1), *o = out;
  if (!out) return NULL;
  while (*s) {
    int n = plot_utf8_len(s);
    if (n)
      memcpy(o, s, (size_t)n);
    else
      memcpy(o, replacement, 3);
    o += n ? n : 3;
    s += n ? n : 1;
  }
  *o = '\0';
  return out;
}

json_t *jsonio_string(const char *s) {
  json_t *v = json_string(s); /* jansson checks the UTF-8: nearly always valid */
  if (v || !s) return v;
  char *fixed = valid_utf8(s);
  v = fixed ? json_string(fixed) : NULL;
  free(fixed);
  return v;
}

int jsonio_set(json_t *obj, const char *key, json_t *v) {
  json_t *k = jsonio_string(key);
  int rc = k ? json_object_set_new(obj, json_string_value(k), v) : -1;
  if (!k) json_decref(v);
  json_decref(k);
  return rc;
}

json_t *jsonio_figure(const char *text) {
  char *end;
  errno = 0;
  long long i = strtoll(text, &end, 10);
  if (*text && !*end && errno == 0) return json_integer(i);
  double x = strtod(text, &end);
  if (*text && !*end && isfinite(x)) return json_real(x);
  return jsonio_string(text);
}

json_t *jsonio_seconds(unsigned long long ns) { return json_real((double)ns / 1e9); }

int jsonio_write(const char *path, json_t *v) {
  if (!v) {
    errno = ENOMEM;
    return -1;
  }
  outfile out;
  FILE *f = outfile_open(&out, path);
  int rc = -1;
  if (f && json_dumpf(v, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSONIO_REAL) == 0) {
    fputc('\n', f);
    rc = outfile_close(&out);
  } else if (f) {
    rc = outfile_abort(&out, ENOMEM); /* out of memory, or a write failed (its errno is kept) */
  }
  int e = errno;
  json_decref(v);
  errno = e;
  return rc;
}

json_t *jsonio_parse_object(const char *text) {
  if (!text) return NULL;
  json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
  if (v && !json_is_object(v)) {
    json_decref(v);
    v = NULL;
  }
  return v;
}

double jsonio_number(const json_t *obj, const char *key) { return json_number_value(json_object_get(obj, key)); }

/* ---- streaming ---- */

static void stream_flush(jsonio_stream *s) {
  fwrite(s->buf, 1, s->n, s->f);
  s->n = 0;
}

/* Where jansson's dumps go: into the buffer, written out when full. */
static int stream_put(const char *p, size_t len, void *data) {
  jsonio_stream *s = data;
  if (s->n + len > sizeof s->buf) stream_flush(s);
  if (len > sizeof s->buf) return fwrite(p, 1, len, s->f) == len ? 0 : -1;
  memcpy(s->buf + s->n, p, len);
  s->n += len;
  return 0;
}

static void stream_dump(jsonio_stream *s, const json_t *v, size_t flags) {
  if (!v || json_dump_callback(v, stream_put, s, flags | JSON_COMPACT | JSON_PRESERVE_ORDER | JSONIO_REAL) != 0)
    s->err = 1;
}

/* The punctuation between the dumps: jansson writes every name and value. */
static void stream_lit(jsonio_stream *s, const char *p) { stream_put(p, strlen(p), s); }

int jsonio_stream_open(jsonio_stream *s, const char *path, json_t *head, const char *key) {
  s->items = 0;
  s->err = 0;
  s->n = 0;
  s->f = outfile_open(&s->out, path);
  if (!s->f) {
    json_decref(head);
    return -1;
  }
  json_t *k = json_string(key);
  stream_lit(s, "{");
  if (json_object_size(head)) {
    stream_dump(s, head, JSON_EMBED); /* its keys without its braces */
    stream_lit(s, ",");
  }
  stream_dump(s, k, JSON_ENCODE_ANY);
  stream_lit(s, ":[\n");
  json_decref(k);
  json_decref(head);
  return 0;
}

void jsonio_stream_add(jsonio_stream *s, json_t *item) {
  if (s->items++) stream_lit(s, ",\n");
  stream_dump(s, item, 0);
  json_decref(item);
}

int jsonio_stream_close(jsonio_stream *s) {
  stream_lit(s, "\n]}\n");
  stream_flush(s);
  return s->err ? outfile_abort(&s->out, ENOMEM) : outfile_close(&s->out);
}
