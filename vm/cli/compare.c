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

/* Describe where b's output first differs from a's; 0 if identical. */
static int first_difference(const char *a, const char *b, char *buf, size_t len) {
  if (strcmp(a, b) == 0) return 0;
  int line = 1;
  while (*a && *a == *b) {
    if (*a == '\n') line++;
    a++;
    b++;
  }
  while (line > 1 && a[-1] != '\n') a--, b--;
  int la = (int)strcspn(a, "\n"), lb = (int)strcspn(b, "\n");
  snprintf(buf, len, "line %d: \"%.*s\" instead of \"%.*s\"", line, lb > 60 ? 60 : lb, b, la > 60 ? 60 : la, a);
  return 1;
}

static void print_table(FILE *f, child_run *runs, int nruns) {
  char a[24], b[24], c[24], d[24];
  double gil_wall = jsonio_number(runs[0].json, "wall_s");
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
      fprintf(f, "  %-6s   (no figures: the run exited with status %d)\n", rt_mode_names[m], runs[m].status);
      continue;
    }
    double copied = jsonio_number(j, "bytes_copied");
    double mem = jsonio_number(j, "peak_memory_kb") * 1024.0;
    char cp[24], mm[24];
    if (copied >= 10485760)
      snprintf(cp, sizeof cp, "%.1f MB", copied / 1048576);
    else if (copied >= 10240)
      snprintf(cp, sizeof cp, "%.1f kB", copied / 1024);
    else
      snprintf(cp, sizeof cp, "%.0f B", copied);
    snprintf(mm, sizeof mm, "%.1f MB", mem / 1048576);
    fprintf(f, "  %-6s %10s %7.2fx %10s %8.2fx %10s %10s %10s %10s %5d\n", rt_mode_names[m],
            clock_format((uint64_t)(wall * 1e9), a, sizeof a), wall > 0 ? gil_wall / wall : 0.0,
            clock_format((uint64_t)(jsonio_number(j, "cpu_s") * 1e9), b, sizeof b), jsonio_number(j, "parallelism"),
            clock_format((uint64_t)(jsonio_number(j, "gil_wait_s") * 1e9), c, sizeof c),
            clock_format((uint64_t)(jsonio_number(j, "startup_s") * 1e9), d, sizeof d), cp, mm, runs[m].status);
  }
}

static void print_figures(FILE *f, child_run *runs) {
  char *names[32];
  int n = compare_json_figure_names(runs[0].json, names, 32);
  if (n == 0) return;
  fprintf(f, "\n  %-24s %14s %14s %14s\n", "script figure", rt_mode_names[0], rt_mode_names[1], rt_mode_names[2]);
  for (int i = 0; i < n; i++) {
    char *shown = compare_printable(strdup(names[i]));
    fprintf(f, "  %-24.24s", shown ? shown : "?");
    free(shown);
    for (int m = 0; m < RT_NMODES; m++) {
      char *v = compare_json_figure(runs[m].json, names[i]);
      fprintf(f, " %14.14s", v ? v : "-");
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
  fprintf(stderr, "gilvm: cannot write %s: %s\n", path, strerror(errno));
  return 1;
}

int compare_main(int argc, char **argv, const cli_options *o) {
  child_run runs[RT_NMODES];
  memset(runs, 0, sizeof runs);
  int rc = 0, nruns = 0;
  child_signals_init();
  for (int m = 0; m < RT_NMODES && !child_stopped(); m++) {
    const char *av[CHILD_ARGV_MAX];
    child_argv(av, argc, argv, o, rt_mode_names[m], NULL);
    fprintf(stderr, "gilvm compare: running in %s mode...\n", rt_mode_names[m]);
    if (child_run_gilvm((char *const *)av, &runs[m]) != 0) {
      fprintf(stderr, "gilvm: cannot run %s: %s\n", argv[0], strerror(errno));
      for (int k = 0; k < m; k++) child_run_free(&runs[k]);
      return 1;
    }
    nruns = m + 1;
    rc = child_fold_status(rc, runs[m].status);
  }
  int stop = child_stopped();
  if (runs[0].out) fputs(runs[0].out, stdout);
  fflush(stdout);
  FILE *f = stderr;
  fprintf(f, "\n-- gilvm compare: %s (each mode in a fresh process) ", o->script);
  fprintf(f, "-------------------\n");
  print_table(f, runs, nruns);
  print_figures(f, runs);
  int same = !stop; /* a stopped run's output is cut short: no verdict */
  for (int m = 1; m < RT_NMODES && !stop; m++) {
    char diff[200];
    if (runs[0].out && runs[m].out && first_difference(runs[0].out, runs[m].out, diff, sizeof diff)) {
      if (same) fputc('\n', f);
      same = 0;
      fprintf(f, "  output differs: %s printed, at %s\n", rt_mode_names[m], diff);
    }
  }
  if (stop)
    fprintf(f, "\n  stopped (%s): the output was not compared\n", child_stop_reason());
  else if (same)
    fprintf(f, "\n  output: identical in all three modes\n");
  else
    fprintf(f,
            "  (in nogil and fork modes workers get copies: a script whose output depends on\n"
            "   tables or globals mutated by other workers behaves differently there; see\n"
            "   the script's header comment)\n");
  fprintf(f, "-------------------------------------------------------------------------------\n");
  if (o->json_path && write_json(o->json_path, runs, same, stop) && rc == 0) rc = EXIT_SCRIPT_ERROR;
  for (int m = 0; m < RT_NMODES; m++) child_run_free(&runs[m]);
  if (stop) {
    fprintf(stderr, "gilvm: stopped: %s\n", child_stop_reason());
    rc = stop;
  }
  return rc;
}
