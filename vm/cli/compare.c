/*
 * compare.c — `gilvm compare`: the same script in gil, nogil and fork mode,
 * side by side.
 *
 * Each mode runs in a fresh gilvm process (this binary, /proc/self/exe), so
 * one mode's threads, memory and caches do not disturb the next. Each run
 * writes its figures with --json to a pipe; its stdout is kept to
 * check that the script printed the same thing in every mode. A script
 * whose output depends on mutating tables shared between workers prints
 * something else under isolation: that difference is the lesson, so the
 * table points at it rather than hiding it.
 */
#include "compare.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "jsonio.h"
#include "outfile.h"
#include "plot.h"
#include "vec.h"

/* ---- reading a run's figures from its --json ---- */

char *compare_printable(char *s) {
  for (char *p = s; p && *p; p++)
    if ((unsigned char)*p < 0x20) *p = '?';
  return s;
}

char *compare_json_figure(const json_t *report, const char *name) {
  json_t *v = json_object_get(json_object_get(report, "figures"), name);
  if (json_is_string(v)) return compare_printable(strdup(json_string_value(v)));
  return v ? json_dumps(v, JSON_ENCODE_ANY | JSONIO_REAL) : NULL; /* a number as the file has it */
}

int compare_json_figure_names(const json_t *report, char **names, int max) {
  const char *key;
  json_t *v;
  int n = 0;
  json_object_foreach(json_object_get(report, "figures"), key, v) {
    if (n == max) break;
    if ((names[n] = strdup(key))) n++;
  }
  return n;
}

/* ---- the comparison ---- */

/*
 * Why two outputs differ. The outputs are cut into lines; then, in order:
 *   the same lines in another order: scheduling (workers printed in another order);
 *   paired lines that differ only in their numbers, where a differing number
 *     looks like a timing (a fraction, or a time unit after it): timings;
 *   otherwise, when the other mode copied something and the gil run had
 *     thread workers (which share the interpreter): workers got copies;
 *   otherwise: just different (timing or scheduling, as a race).
 * Lines are quoted whole (cut at QUOTE_MAX characters).
 */
#define QUOTE_MAX 100

typedef struct lines {
  char **v;
  int n;
  size_t cap;
} lines;

static void split_lines(const char *s, lines *l) {
  memset(l, 0, sizeof *l);
  while (s && *s) {
    size_t n = strcspn(s, "\n");
    char *line = strndup(s, n);
    if (!line || VEC_PUSH(l->v, l->n, l->cap, line) != 0) free(line);
    s += n + (s[n] == '\n');
  }
}

static void free_lines(lines *l) {
  for (int i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The same lines, in another order. */
static int same_lines(const lines *a, const lines *b) {
  if (a->n != b->n) return 0;
  char **x = malloc(((size_t)a->n + 1) * sizeof *x), **y = malloc(((size_t)b->n + 1) * sizeof *y);
  int same = x && y;
  if (same) {
    memcpy(x, a->v, (size_t)a->n * sizeof *x);
    memcpy(y, b->v, (size_t)b->n * sizeof *y);
    qsort(x, (size_t)a->n, sizeof *x, cmp_str);
    qsort(y, (size_t)b->n, sizeof *y, cmp_str);
    for (int i = 0; i < a->n && same; i++) same = strcmp(x[i], y[i]) == 0;
  }
  free(x);
  free(y);
  return same;
}

static int is_num_char(char c) { return (c >= '0' && c <= '9') || c == '.'; }

/* u starts with a time unit as a word: "s", "ms", "us", "ns", "µs" (then no letter or digit). */
static int time_unit(const char *u) {
  static const char *const units[] = { "s", "ms", "us", "ns", "\xc2\xb5s" };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    size_t n = strlen(units[i]);
    if (strncmp(u, units[i], n) == 0 && !isalnum((unsigned char)u[n])) return 1;
  }
  return 0;
}

/* a and b differ only in numbers: 0 if not, 1 if so, 2 if one of the differing numbers looks like a timing. */
static int numbers_only(const char *a, const char *b) {
  int timing = 0;
  while (*a && *b) {
    if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
      const char *ea = a, *eb = b;
      while (is_num_char(*ea)) ea++;
      while (is_num_char(*eb)) eb++;
      if (ea - a != eb - b || strncmp(a, b, (size_t)(ea - a)) != 0) {
        if (memchr(a, '.', (size_t)(ea - a)) || memchr(b, '.', (size_t)(eb - b)) || time_unit(ea + (*ea == ' ')))
          timing = 1;
      }
      a = ea;
      b = eb;
      continue;
    }
    if (*a != *b) return 0;
    a++;
    b++;
  }
  return *a || *b ? 0 : 1 + timing;
}

static void quote(FILE *f, const char *s) {
  size_t n = strlen(s);
  char *q = strndup(s, n > QUOTE_MAX ? QUOTE_MAX : n);
  fprintf(f, "\"%s%s\"", q ? compare_printable(q) : "?", n > QUOTE_MAX ? "..." : "");
  free(q);
}

/* Some worker of the gil run was a thread (shares main's interpreter). */
static int had_thread_workers(const json_t *gil_run) {
  json_t *threads = json_object_get(gil_run, "threads"), *t;
  size_t i;
  json_array_foreach(threads, i, t) {
    if (i > 0 && json_is_string(json_object_get(t, "kind")) &&
        strcmp(json_string_value(json_object_get(t, "kind")), "thread") == 0)
      return 1;
  }
  return 0;
}

int compare_explain(FILE *f, const char *mode, const char *a, const char *b, const json_t *ja, const json_t *jb) {
  if (strcmp(a, b) == 0) return 0;
  lines la, lb;
  split_lines(a, &la);
  split_lines(b, &lb);
  fprintf(f, "  output differs in %s mode", mode);
  if (same_lines(&la, &lb)) {
    int i = 0;
    while (i < la.n && strcmp(la.v[i], lb.v[i]) == 0) i++;
    fprintf(f, ": the same lines in another order, from line %d:\n    %-6s ", i + 1, mode);
    quote(f, lb.v[i]);
    fprintf(f, "\n    %-6s ", "gil");
    quote(f, la.v[i]);
    fprintf(f, "\n    why: scheduling: the workers ran, and printed, in another order\n");
  } else {
    int n = la.n < lb.n ? la.n : lb.n, first = -1, timing = la.n == lb.n, ndiff = 0;
    for (int i = 0; i < n || (first < 0 && i < (la.n > lb.n ? la.n : lb.n)); i++) {
      const char *x = i < la.n ? la.v[i] : "", *y = i < lb.n ? lb.v[i] : "";
      if (strcmp(x, y) == 0) continue;
      if (first < 0) first = i;
      ndiff++;
      if (numbers_only(x, y) != 2) timing = 0;
    }
    if (first < 0) first = n; /* one is the other plus lines */
    fprintf(f, ", line %d", first + 1);
    if (ndiff > 1) fprintf(f, " (and %d more line%s)", ndiff - 1, ndiff > 2 ? "s" : "");
    fprintf(f, ":\n    %-6s ", mode);
    if (first < lb.n)
      quote(f, lb.v[first]);
    else
      fprintf(f, "(no such line)");
    fprintf(f, "\n    %-6s ", "gil");
    if (first < la.n)
      quote(f, la.v[first]);
    else
      fprintf(f, "(no such line)");
    double copied = jsonio_number(jb, "bytes_copied");
    if (timing)
      fprintf(f,
              "\n    why: these lines differ only in numbers that look like timings: they change from run to "
              "run\n");
    else if (copied > 0 && had_thread_workers(ja))
      fprintf(f,
              "\n    why: workers got copies: in %s mode %.0f bytes were copied to and from workers, so a\n"
              "    table or global a worker changed is its own copy, while gil's threads share them\n",
              mode, copied);
    else
      fprintf(f, "\n    why: not copies (%s):\n    the script printed something else, as timing or a race decided\n",
              copied > 0 ? "the gil run's workers were no threads either" : "nothing was copied");
  }
  free_lines(&la);
  free_lines(&lb);
  return 1;
}

/* ANSI SGR colours for the table (cli_want_color), or nothing. */
#define GREEN "\033[1;32m"
#define RED "\033[1;31m"
#define PLAIN "\033[0m"
static const char *sgr(int color, const char *code) { return color ? code : ""; }

/* A mode whose run ended well, with figures. */
static int ran_well(const child_run *runs, int nruns, const cli_options *o, int m) {
  return m < nruns && runs[m].json && runs[m].status == 0;
}

/* The mode that ran well in the least wall time (its speed-up is the best), or -1. */
static int best_mode(const child_run *runs, int nruns, const cli_options *o) {
  int best = -1;
  for (int m = 0; m < RT_NMODES; m++) {
    if (!ran_well(runs, nruns, o, m) || jsonio_number(runs[m].json, "wall_s") <= 0) continue;
    if (best < 0 || jsonio_number(runs[m].json, "wall_s") < jsonio_number(runs[best].json, "wall_s")) best = m;
  }
  return best;
}

/* The table; with colour, the best speed-up in green and a failed run in red
   (fields are formatted to their width first, so the codes keep the columns). */
static void print_table(FILE *f, child_run *runs, int nruns, const cli_options *o, int color) {
  char a[24], b[24], c[24], d[24];
  double gil_wall = jsonio_number(runs[0].json, "wall_s");
  int best = best_mode(runs, nruns, o);
  fprintf(f, "\n  %-6s %10s %8s %10s %9s %10s %10s %10s %10s %5s\n", "mode", "wall", "speedup", "cpu", "parallel",
          "GIL wait", "start-up", "copied", "peak mem", "exit");
  for (int m = 0; m < RT_NMODES; m++) {
    const json_t *j = runs[m].json;
    double wall = jsonio_number(j, "wall_s");
    if (m >= nruns) {
      fprintf(f, "  %-6s   (not run: %s)\n", rt_mode_names[m], child_stop_reason());
      continue;
    }
    if (!j) {
      fprintf(f, "  %-6s   %s(no figures: the run exited with status %d)%s\n", rt_mode_names[m], sgr(color, RED),
              runs[m].status, sgr(color, PLAIN));
      continue;
    }
    double copied = jsonio_number(j, "bytes_copied");
    const json_t *host = json_object_get(j, "host"); /* --sim: the host's figures are apart */
    double mem = jsonio_number(host ? host : j, "peak_memory_kb") * 1024.0;
    char cp[24], mm[24], sp[24], ex[16];
    if (copied >= 10485760)
      snprintf(cp, sizeof cp, "%.1f MB", copied / 1048576);
    else if (copied >= 10240)
      snprintf(cp, sizeof cp, "%.1f kB", copied / 1024);
    else
      snprintf(cp, sizeof cp, "%.0f B", copied);
    snprintf(mm, sizeof mm, "%.1f MB", mem / 1048576);
    snprintf(sp, sizeof sp, "%7.2fx", wall > 0 ? gil_wall / wall : 0.0);
    snprintf(ex, sizeof ex, "%5d", runs[m].status);
    int failed = color && runs[m].status != 0, won = color && m == best;
    fprintf(f, "  %s%-6s%s %10s %s%s%s %10s %8.2fx %10s %10s %10s %10s %s%s%s\n", sgr(failed, RED), rt_mode_names[m],
            sgr(failed, PLAIN), clock_format((uint64_t)(wall * 1e9), a, sizeof a), sgr(won, GREEN), sp, sgr(won, PLAIN),
            clock_format((uint64_t)(jsonio_number(j, "cpu_s") * 1e9), b, sizeof b), jsonio_number(j, "parallelism"),
            clock_format((uint64_t)(jsonio_number(j, "gil_wait_s") * 1e9), c, sizeof c),
            clock_format((uint64_t)(jsonio_number(j, "startup_s") * 1e9), d, sizeof d), cp, mm, sgr(failed, RED), ex,
            sgr(failed, PLAIN));
  }
}

static void print_figures(FILE *f, child_run *runs) {
  char *names[32];
  int n = compare_json_figure_names(runs[0].json, names, 32);
  if (n == 0) return;
  int namew = 24, valw = 14; /* as wide as the longest name and value: nothing cut, columns aligned */
  for (int i = 0; i < n; i++) {
    if (plot_text_width(names[i]) > namew) namew = plot_text_width(names[i]);
    for (int m = 0; m < RT_NMODES; m++) {
      char *v = compare_json_figure(runs[m].json, names[i]);
      if (v && plot_text_width(v) > valw) valw = plot_text_width(v);
      free(v);
    }
  }
  fprintf(f, "\n  %-*s %*s %*s %*s\n", namew, "script figure", valw, rt_mode_names[0], valw, rt_mode_names[1], valw,
          rt_mode_names[2]);
  for (int i = 0; i < n; i++) {
    char *shown = compare_printable(strdup(names[i]));
    fprintf(f, "  %s%*s", shown ? shown : "?", namew - plot_text_width(shown ? shown : "?"), "");
    free(shown);
    for (int m = 0; m < RT_NMODES; m++) {
      char *v = compare_json_figure(runs[m].json, names[i]);
      const char *t = v ? v : "-";
      fprintf(f, " %*s%s", valw - plot_text_width(t), "", t);
      free(v);
    }
    fputc('\n', f);
    free(names[i]);
  }
}

/* Returns 1 if the file could not be written (said on stderr). */
static int write_json(const char *path, child_run *runs, int same, int stop) {
  json_t *o = json_pack("{s:b, s:s?, s:{s:O?, s:O?, s:O?}}", "stdout_identical", same, "stopped",
                        stop ? child_stop_reason() : NULL, "modes", rt_mode_names[0], runs[0].json, rt_mode_names[1],
                        runs[1].json, rt_mode_names[2], runs[2].json);
  if (jsonio_write(path, o) == 0) return 0;
  fprintf(stderr, "gilvm: cannot write %s: %s\n", outfile_name(path), strerror(errno));
  return 1;
}

int compare_main(int argc, char **argv, const cli_options *o) {
  child_run runs[RT_NMODES];
  memset(runs, 0, sizeof runs);
  int rc = 0, nruns = 0;
  child_signals_init();
  for (int m = 0; m < RT_NMODES && !child_stopped(); m++) {
    nruns = m + 1;
    const char *av[CHILD_ARGV_MAX];
    child_argv(av, argc, argv, o, rt_mode_names[m], NULL);
    fprintf(stderr, "gilvm compare: running in %s mode...\n", rt_mode_names[m]);
    if (child_run_gilvm((char *const *)av, &runs[m]) != 0) {
      fprintf(stderr, "gilvm: cannot run %s: %s\n", argv[0], strerror(errno));
      for (int k = 0; k < m; k++) child_run_free(&runs[k]);
      return 1;
    }
    rc = child_fold_status(rc, runs[m].status);
  }
  int stop = child_stopped();
  if (runs[0].out) fputs(runs[0].out, stdout);
  fflush(stdout);
  FILE *f = stderr;
  fprintf(f, "\n-- gilvm compare: %s (each mode in a fresh process) ", o->script);
  fprintf(f, "-------------------\n");
  print_table(f, runs, nruns, o, cli_want_color(o));
  print_figures(f, runs);
  int same = !stop; /* a stopped run's output is cut short: no verdict */
  int compared = 1; /* a mode not run, or whose run failed, is not compared: its failure is the news */
  for (int m = 1; m < RT_NMODES && !stop; m++) {
    if (!runs[0].json || !runs[m].json) continue;
    compared++;
    if (runs[0].out && runs[m].out && strcmp(runs[0].out, runs[m].out) != 0) {
      if (same) fputc('\n', f);
      same = 0;
      if (runs[m].status != runs[0].status) /* an error, not scheduling or copies: its message is above */
        fprintf(f, "  output differs in %s mode: its run exited with status %d (gil: %d); its error is above\n",
                rt_mode_names[m], runs[m].status, runs[0].status);
      else
        compare_explain(f, rt_mode_names[m], runs[0].out, runs[m].out, runs[0].json, runs[m].json);
    }
  }
  if (stop)
    fprintf(f, "\n  stopped (%s): the output was not compared\n", child_stop_reason());
  else if (same && compared == RT_NMODES)
    fprintf(f, "\n  output: identical in all three modes\n");
  else if (same && compared > 1)
    fprintf(f, "\n  output: identical in the modes that ran to the end\n");
  else if (!runs[0].json)
    fprintf(f, "\n  output: not compared (the gil run did not end normally)\n");
  fprintf(f, "-------------------------------------------------------------------------------\n");
  if (o->json_path && write_json(o->json_path, runs, same, stop) && rc == 0) rc = EXIT_SCRIPT_ERROR;
  for (int m = 0; m < RT_NMODES; m++) child_run_free(&runs[m]);
  if (stop) {
    fprintf(stderr, "gilvm: stopped: %s\n", child_stop_reason());
    rc = stop;
  }
  return rc;
}
