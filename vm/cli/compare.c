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

extern char **environ;

/* ---- signals: a stop asked of compare or sweep stops its child ---- */

/* SIGINT, SIGTERM and SIGCHLD are blocked and read from a signalfd, so the
   loop that runs a child sees them between reads, with no handler. A Ctrl-C
   at a terminal reaches the child too (same process group), so SIGINT is
   passed on only if the child is still running FORWARD_NS later; SIGTERM at
   once (a second one is harmless to a run). A child still there GRACE_NS
   after that (its own grace is 3 s) is killed. */
#define FORWARD_NS 1000000000ull
#define GRACE_NS 5000000000ull

static int sig_fd = -1;
static int stop_code;              /* 0, or the exit code a signal asked for */
static const char *stop_reason;
static pid_t running;              /* the child being run, 0 between runs */
static uint64_t forward_at, kill_at;  /* when to pass SIGINT on / kill the child (0: not due) */

static void signal_set(sigset_t *s) {
  sigemptyset(s);
  sigaddset(s, SIGINT);
  sigaddset(s, SIGTERM);
  sigaddset(s, SIGCHLD);
}

void compare_signals_init(void) {
  sigset_t set;
  signal_set(&set);
  sigprocmask(SIG_BLOCK, &set, NULL);
  sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) sigprocmask(SIG_UNBLOCK, &set, NULL);  /* no signalfd: signals act as they would */
}

static void on_stop_signal(int sig) {
  uint64_t now = clock_now_ns();
  if (stop_code && sig == SIGINT) {  /* second Ctrl-C: now */
    if (running) {
      kill(running, SIGKILL);
      while (waitpid(running, NULL, 0) < 0 && errno == EINTR) {}
    }
    fflush(stdout);
    fprintf(stderr, "gilvm: interrupted twice: exiting without a table\n");
    exit(EXIT_INTERRUPTED);
  }
  if (stop_code) return;
  stop_code = sig == SIGINT ? EXIT_INTERRUPTED : EXIT_TERMINATED;
  stop_reason = sig == SIGINT ? "interrupted" : "terminated";
  if (!running) return;
  if (sig == SIGTERM) {
    kill(running, SIGTERM);
    kill_at = now + GRACE_NS;
  } else {
    forward_at = now + FORWARD_NS;
  }
}

/* Act on the signals that arrived. Returns 1 if a child ended (SIGCHLD). */
static int take_signals(void) {
  struct signalfd_siginfo si;
  int chld = 0;
  while (sig_fd >= 0 && read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGCHLD) chld = 1;
    else on_stop_signal((int)si.ssi_signo);
  }
  return chld;
}

int compare_stopped(void) {
  take_signals();
  return stop_code;
}

const char *compare_stop_reason(void) { return stop_reason ? stop_reason : ""; }

int compare_fold_status(int rc, int status) {
  if (status == EXIT_TIMEOUT) return EXIT_TIMEOUT;
  return status != 0 && rc == 0 ? EXIT_SCRIPT_ERROR : rc;
}

/* ---- running one child gilvm ---- */

typedef struct sink {
  int fd;         /* read end, -1 once at EOF */
  char *p;
  size_t len, cap;
} sink;

/* Read what is there (the fd is non-blocking). Returns -1 out of memory. */
static int sink_read(sink *s) {
  while (s->fd >= 0) {
    if (VEC_RESERVE(s->p, s->len, s->cap, 4096, 65536) != 0) return -1;
    ssize_t k = read(s->fd, s->p + s->len, s->cap - s->len - 1);
    if (k > 0) {
      s->len += (size_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) return 0;
    close(s->fd);  /* EOF */
    s->fd = -1;
  }
  return 0;
}

/* The text read, NUL-terminated (NULL if nothing could be kept); frees the rest. */
static char *sink_take(sink *s, size_t *len) {
  if (s->fd >= 0) close(s->fd);
  if (!s->p) s->p = malloc(1);
  if (s->p) s->p[s->len] = '\0';
  if (len) *len = s->p ? s->len : 0;
  return s->p;
}

/* Read the child's stdout and JSON while it runs; act on signals. Returns its wait status. */
static int supervise(pid_t pid, sink *out, sink *json) {
  int status = 0;
  for (;;) {
    uint64_t now = clock_now_ns();
    if (forward_at && now >= forward_at) {
      kill(pid, SIGINT);
      forward_at = 0;
      kill_at = now + GRACE_NS;
    }
    if (kill_at && now >= kill_at) {
      kill(pid, SIGKILL);
      kill_at = 0;
    }
    uint64_t due = forward_at ? forward_at : kill_at;
    int wait_ms = !due ? -1 : due <= now ? 0 : (int)((due - now) / 1000000u) + 1;
    struct pollfd pf[3] = { { out->fd, POLLIN, 0 }, { json->fd, POLLIN, 0 }, { sig_fd, POLLIN, 0 } };
    if (sig_fd < 0 && wait_ms < 0) wait_ms = 50;  /* no signalfd: look for the child's end now and then */
    poll(pf, 3, wait_ms);
    take_signals();
    if (sink_read(out) != 0 || sink_read(json) != 0) kill(pid, SIGKILL);  /* out of memory */
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return -1;
  }
  sink_read(out);  /* what it wrote before it ended (a process it forked may hold the pipes open) */
  sink_read(json);
  return status;
}

/* "gilvm run -q --json /dev/fd/3 <the rest>": its figures come back through a
   pipe, so there is no temporary file to leave behind. */
int compare_run_child(char *const argv[], child_run *out) {
  memset(out, 0, sizeof *out);
  int argc = 0;
  while (argv[argc]) argc++;
  char **av = calloc((size_t)argc + 6, sizeof *av);
  int po[2] = { -1, -1 }, pj[2] = { -1, -1 };
  if (!av || pipe2(po, O_CLOEXEC) != 0 || pipe2(pj, O_CLOEXEC) != 0) {
    int e = av ? errno : ENOMEM;
    free(av);
    if (po[0] >= 0) close(po[0]), close(po[1]);
    errno = e;
    return -1;
  }
  av[0] = argv[0];
  av[1] = "run";
  av[2] = "-q";
  av[3] = "--json";
  av[4] = "/dev/fd/3";
  for (int i = 1; i <= argc; i++) av[4 + i] = argv[i];
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, po[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, pj[1], 3);
  posix_spawnattr_t at;  /* the child starts with nothing blocked and the usual dispositions */
  posix_spawnattr_init(&at);
  sigset_t none, ours;
  sigemptyset(&none);
  signal_set(&ours);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &ours);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  uint64_t t0 = clock_now_ns();
  int err = posix_spawn(&pid, "/proc/self/exe", &fa, &at, av, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  free(av);
  close(po[1]);
  close(pj[1]);
  sink so = { .fd = po[0] }, sj = { .fd = pj[0] };
  if (err) {
    close(po[0]);
    close(pj[0]);
    errno = err;
    return -1;
  }
  fcntl(po[0], F_SETFL, O_NONBLOCK);
  fcntl(pj[0], F_SETFL, O_NONBLOCK);
  running = pid;
  forward_at = kill_at = 0;
  int status = supervise(pid, &so, &sj);
  running = 0;
  forward_at = kill_at = 0;
  out->wall_ns = clock_now_ns() - t0;
  out->status = status < 0 ? 1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  out->out = sink_take(&so, &out->outlen);
  char *json = sink_take(&sj, NULL);
  out->json = jsonio_parse_object(json);  /* NULL: none written, or cut short */
  free(json);
  return 0;
}

void compare_free_child(child_run *r) {
  free(r->out);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}

/* ---- reading a run's figures from its --json ---- */

char *compare_printable(char *s) {
  for (char *p = s; p && *p; p++)
    if ((unsigned char)*p < 0x20) *p = '?';
  return s;
}

char *compare_json_figure(const json_t *report, const char *name) {
  json_t *v = json_object_get(json_object_get(report, "figures"), name);
  if (json_is_string(v)) return compare_printable(strdup(json_string_value(v)));
  return v ? json_dumps(v, JSON_ENCODE_ANY | JSONIO_REAL) : NULL;  /* a number as the file has it */
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

static void print_table(FILE *f, child_run *runs, int nruns) {
  char a[24], b[24], c[24], d[24];
  double gil_wall = jsonio_number(runs[0].json, "wall_s");
  fprintf(f, "\n  %-6s %10s %8s %10s %9s %10s %10s %10s %10s %5s\n", "mode", "wall", "speedup", "cpu",
          "parallel", "GIL wait", "start-up", "copied", "peak mem", "exit");
  for (int m = 0; m < NMODES; m++) {
    const json_t *j = runs[m].json;
    double wall = jsonio_number(j, "wall_s");
    if (m >= nruns) {
      fprintf(f, "  %-6s   (not run: %s)\n", modes[m], compare_stop_reason());
      continue;
    }
    if (!j) {
      fprintf(f, "  %-6s   (no figures: the run exited with status %d)\n", modes[m], runs[m].status);
      continue;
    }
    double copied = jsonio_number(j, "bytes_copied");
    double mem = jsonio_number(j, "peak_memory_kb") * 1024.0;
    char cp[24], mm[24];
    if (copied >= 10485760) snprintf(cp, sizeof cp, "%.1f MB", copied / 1048576);
    else if (copied >= 10240) snprintf(cp, sizeof cp, "%.1f kB", copied / 1024);
    else snprintf(cp, sizeof cp, "%.0f B", copied);
    snprintf(mm, sizeof mm, "%.1f MB", mem / 1048576);
    fprintf(f, "  %-6s %10s %7.2fx %10s %8.2fx %10s %10s %10s %10s %5d\n", modes[m],
            clock_format((uint64_t)(wall * 1e9), a, sizeof a), wall > 0 ? gil_wall / wall : 0.0,
            clock_format((uint64_t)(jsonio_number(j, "cpu_s") * 1e9), b, sizeof b),
            jsonio_number(j, "parallelism"),
            clock_format((uint64_t)(jsonio_number(j, "gil_wait_s") * 1e9), c, sizeof c),
            clock_format((uint64_t)(jsonio_number(j, "startup_s") * 1e9), d, sizeof d), cp, mm,
            runs[m].status);
  }
}

static void print_figures(FILE *f, child_run *runs) {
  char *names[32];
  int n = compare_json_figure_names(runs[0].json, names, 32);
  if (n == 0) return;
  fprintf(f, "\n  %-24s %14s %14s %14s\n", "script figure", modes[0], modes[1], modes[2]);
  for (int i = 0; i < n; i++) {
    char *shown = compare_printable(strdup(names[i]));
    fprintf(f, "  %-24.24s", shown ? shown : "?");
    free(shown);
    for (int m = 0; m < NMODES; m++) {
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
                        stop ? compare_stop_reason() : NULL, "modes", modes[0], runs[0].json, modes[1], runs[1].json,
                        modes[2], runs[2].json);
  if (jsonio_write(path, o) == 0) return 0;
  fprintf(stderr, "gilvm: cannot write %s: %s\n", path, strerror(errno));
  return 1;
}

int compare_main(int argc, char **argv, const cli_options *o) {
  child_run runs[NMODES];
  memset(runs, 0, sizeof runs);
  int rc = 0, nruns = 0;
  compare_signals_init();
  for (int m = 0; m < NMODES && !compare_stopped(); m++) {
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
      for (int k = 0; k < m; k++) compare_free_child(&runs[k]);
      return 1;
    }
    nruns = m + 1;
    rc = compare_fold_status(rc, runs[m].status);
  }
  int stop = compare_stopped();
  if (runs[0].out) fputs(runs[0].out, stdout);
  fflush(stdout);
  FILE *f = stderr;
  fprintf(f, "\n-- gilvm compare: %s (each mode in a fresh process) ", o->script);
  fprintf(f, "-------------------\n");
  print_table(f, runs, nruns);
  print_figures(f, runs);
  int same = !stop;  /* a stopped run's output is cut short: no verdict */
  for (int m = 1; m < NMODES && !stop; m++) {
    char diff[200];
    if (runs[0].out && runs[m].out && first_difference(runs[0].out, runs[m].out, diff, sizeof diff)) {
      if (same) fputc('\n', f);
      same = 0;
      fprintf(f, "  output differs: %s printed, at %s\n", modes[m], diff);
    }
  }
  if (stop) fprintf(f, "\n  stopped (%s): the output was not compared\n", compare_stop_reason());
  else if (same) fprintf(f, "\n  output: identical in all three modes\n");
  else
    fprintf(f, "  (in nogil and fork modes workers get copies: a script whose output depends on\n"
               "   tables or globals mutated by other workers behaves differently there; see\n"
               "   the script's header comment)\n");
  fprintf(f, "-------------------------------------------------------------------------------\n");
  if (o->json_path && write_json(o->json_path, runs, same, stop) && rc == 0) rc = EXIT_SCRIPT_ERROR;
  for (int m = 0; m < NMODES; m++) compare_free_child(&runs[m]);
  if (stop) {
    fprintf(stderr, "gilvm: stopped: %s\n", compare_stop_reason());
    rc = stop;
  }
  return rc;
}
