/*
 * compare.c — `gilvm compare`: the same script in gil, nogil and fork mode,
 * side by side.
 *
 * Each mode runs in a fresh gilvm process (this binary, /proc/self/exe), so
 * one mode's threads, memory and caches do not disturb the next. Each run
 * writes its figures with --json to a temporary file; its stdout is kept to
 * check that the script printed the same thing in every mode. A script
 * whose output depends on mutating tables shared between workers prints
 * something else under isolation: that difference is the lesson, so the
 * table points at it rather than hiding it.
 */
#include "compare.h"

#include <errno.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

extern char **environ;

/* ---- running one child gilvm ---- */

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t k;
  while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += k;
    if (cap - n < 2) {
      char *b = realloc(buf, cap *= 2);
      if (!b) free(buf);
      buf = b;
    }
  }
  fclose(f);
  if (buf) buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

int compare_run_child(char *const argv[], child_run *out) {
  memset(out, 0, sizeof *out);
  char json[] = "/tmp/gilvm-run-XXXXXX";
  int jfd = mkstemp(json);
  if (jfd < 0) return -1;
  close(jfd);
  int argc = 0;
  while (argv[argc]) argc++;
  char **av = calloc((size_t)argc + 6, sizeof *av);
  int p[2];
  if (!av || pipe(p) != 0) {
    free(av);
    unlink(json);
    return -1;
  }
  /* "gilvm run -q --json FILE <the rest>" */
  av[0] = argv[0];
  av[1] = "run";
  av[2] = "-q";
  av[3] = "--json";
  av[4] = json;
  for (int i = 1; i <= argc; i++) av[4 + i] = argv[i];
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  posix_spawn_file_actions_addclose(&fa, p[1]);
  pid_t pid;
  uint64_t t0 = clock_now_ns();
  int err = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, av, environ);
  posix_spawn_file_actions_destroy(&fa);
  free(av);
  close(p[1]);
  if (err) {
    close(p[0]);
    unlink(json);
    errno = err;
    return -1;
  }
  size_t cap = 4096;
  out->out = malloc(cap);
  ssize_t k;
  for (;;) {
    if (out->out && cap - out->outlen < 1024) {
      char *b = realloc(out->out, cap *= 2);
      if (!b) break;
      out->out = b;
    }
    if (!out->out) break;
    k = read(p[0], out->out + out->outlen, cap - out->outlen - 1);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    out->outlen += (size_t)k;
  }
  if (out->out) out->out[out->outlen] = '\0';
  close(p[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  out->wall_ns = clock_now_ns() - t0;
  out->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  out->json = slurp(json, NULL);
  unlink(json);
  return 0;
}

void compare_free_child(child_run *r) {
  free(r->out);
  free(r->json);
  memset(r, 0, sizeof *r);
}

/* ---- reading our own JSON: flat keys, written by report_json ---- */

double compare_json_number(const char *json, const char *key) {
  if (!json) return 0.0;
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *p = strstr(json, pat);
  return p ? strtod(p + strlen(pat), NULL) : 0.0;
}

/* The value of figure `name` in the "figures" object, as text (malloc'd), or NULL. */
char *compare_json_figure(const char *json, const char *name) {
  if (!json) return NULL;
  const char *p = strstr(json, "\"figures\": {");
  if (!p) return NULL;
  const char *end = strchr(p, '}');
  char pat[80];
  snprintf(pat, sizeof pat, "\"%s\": ", name);
  const char *q = strstr(p, pat);
  if (!q || (end && q > end)) return NULL;
  q += strlen(pat);
  const char *stop = q;
  if (*q == '"') {
    stop = ++q;
    while (*stop && *stop != '"') stop += stop[0] == '\\' && stop[1] ? 2 : 1;
  } else {
    while (*stop && *stop != ',' && *stop != '}') stop++;
  }
  return strndup(q, (size_t)(stop - q));
}

/* Figure names in the order the first run published them (malloc'd strings). */
int compare_json_figure_names(const char *json, char **names, int max) {
  int n = 0;
  const char *p = json ? strstr(json, "\"figures\": {") : NULL;
  if (!p) return 0;
  p += strlen("\"figures\": {");
  while (n < max && *p == '"') {
    const char *e = p + 1;
    while (*e && *e != '"') e += e[0] == '\\' && e[1] ? 2 : 1;
    names[n++] = strndup(p + 1, (size_t)(e - p - 1));
    p = strstr(e, ", \"");
    if (!p || p > strchr(e, '}')) break;
    p += 2;
  }
  return n;
}

/* ---- the comparison ---- */

static const char *const modes[] = { "gil", "nogil", "fork" };
#define NMODES 3

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

static void print_table(FILE *f, child_run *runs) {
  char a[24], b[24], c[24], d[24];
  double gil_wall = compare_json_number(runs[0].json, "wall_s");
  fprintf(f, "\n  %-6s %10s %8s %10s %9s %10s %10s %10s %10s %5s\n", "mode", "wall", "speedup", "cpu",
          "parallel", "GIL wait", "start-up", "copied", "peak mem", "exit");
  for (int m = 0; m < NMODES; m++) {
    const char *j = runs[m].json;
    double wall = compare_json_number(j, "wall_s");
    if (!j) {
      fprintf(f, "  %-6s   (no figures: the run exited with status %d)\n", modes[m], runs[m].status);
      continue;
    }
    double copied = compare_json_number(j, "bytes_copied");
    double mem = compare_json_number(j, "peak_memory_kb") * 1024.0;
    char cp[24], mm[24];
    if (copied >= 10485760) snprintf(cp, sizeof cp, "%.1f MB", copied / 1048576);
    else if (copied >= 10240) snprintf(cp, sizeof cp, "%.1f kB", copied / 1024);
    else snprintf(cp, sizeof cp, "%.0f B", copied);
    snprintf(mm, sizeof mm, "%.1f MB", mem / 1048576);
    fprintf(f, "  %-6s %10s %7.2fx %10s %8.2fx %10s %10s %10s %10s %5d\n", modes[m],
            clock_format((uint64_t)(wall * 1e9), a, sizeof a), wall > 0 ? gil_wall / wall : 0.0,
            clock_format((uint64_t)(compare_json_number(j, "cpu_s") * 1e9), b, sizeof b),
            compare_json_number(j, "parallelism"),
            clock_format((uint64_t)(compare_json_number(j, "gil_wait_s") * 1e9), c, sizeof c),
            clock_format((uint64_t)(compare_json_number(j, "startup_s") * 1e9), d, sizeof d), cp, mm,
            runs[m].status);
  }
}

static void print_figures(FILE *f, child_run *runs) {
  char *names[32];
  int n = compare_json_figure_names(runs[0].json, names, 32);
  if (n == 0) return;
  fprintf(f, "\n  %-24s %14s %14s %14s\n", "script figure", modes[0], modes[1], modes[2]);
  for (int i = 0; i < n; i++) {
    fprintf(f, "  %-24.24s", names[i]);
    for (int m = 0; m < NMODES; m++) {
      char *v = compare_json_figure(runs[m].json, names[i]);
      fprintf(f, " %14.14s", v ? v : "-");
      free(v);
    }
    fputc('\n', f);
    free(names[i]);
  }
}

static void write_json(const char *path, child_run *runs, int same) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "gilvm: cannot write %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f, "{\"stdout_identical\": %s, \"modes\": {\n", same ? "true" : "false");
  for (int m = 0; m < NMODES; m++)
    fprintf(f, "\"%s\": %s%s", modes[m], runs[m].json ? runs[m].json : "null\n", m + 1 < NMODES ? ",\n" : "");
  fprintf(f, "}}\n");
  fclose(f);
}

int compare_main(int argc, char **argv, const cli_options *o) {
  child_run runs[NMODES];
  int rc = 0;
  for (int m = 0; m < NMODES; m++) {
    const char *av[128];
    int n = 0;
    av[n++] = argv[0];
    av[n++] = "-m";
    av[n++] = modes[m];
    for (int i = 0; i < o->nfwd && n < 100; i++) av[n++] = o->fwd[i];
    av[n++] = "--";
    for (int i = o->script_index; i < argc && n < 127; i++) av[n++] = argv[i];
    av[n] = NULL;
    fprintf(stderr, "gilvm compare: running in %s mode...\n", modes[m]);
    if (compare_run_child((char *const *)av, &runs[m]) != 0) {
      fprintf(stderr, "gilvm: cannot run %s: %s\n", argv[0], strerror(errno));
      return 1;
    }
    if (runs[m].status != 0) rc = 1;
  }
  if (runs[0].out) fputs(runs[0].out, stdout);
  fflush(stdout);
  FILE *f = stderr;
  fprintf(f, "\n-- gilvm compare: %s (each mode in a fresh process) ", o->script);
  fprintf(f, "-------------------\n");
  print_table(f, runs);
  print_figures(f, runs);
  int same = 1;
  for (int m = 1; m < NMODES; m++) {
    char diff[200];
    if (runs[0].out && runs[m].out && first_difference(runs[0].out, runs[m].out, diff, sizeof diff)) {
      if (same) fputc('\n', f);
      same = 0;
      fprintf(f, "  output differs: %s printed, at %s\n", modes[m], diff);
    }
  }
  if (same) fprintf(f, "\n  output: identical in all three modes\n");
  else
    fprintf(f, "  (in nogil and fork modes workers get copies: a script whose output depends on\n"
               "   tables or globals mutated by other workers behaves differently there; see\n"
               "   the script's header comment)\n");
  fprintf(f, "-------------------------------------------------------------------------------\n");
  if (o->json_path) write_json(o->json_path, runs, same);
  for (int m = 0; m < NMODES; m++) compare_free_child(&runs[m]);
  return rc;
}
