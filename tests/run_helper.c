/*
 * run_helper.c — see run_helper.h.
 *
 * One thread does everything: posix_spawn the child with three pipes, then
 * a poll() loop reads stdout and stderr as they come (so a child that
 * writes a lot to one of them never blocks on a full pipe while we wait on
 * the other), writes stdin when the pipe can take it, sends the requested
 * signals on time, and kills the child with SIGKILL at the hard limit.
 * Finally it reaps the child with waitpid, so no test leaves a process
 * behind.
 */
#include "run_helper.h"
#include "vec.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

double run_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static void buf_add(buf *b, const char *s, size_t n) {
  if (VEC_RESERVE(b->p, b->len, b->cap, n + 1, 4096) != 0) abort(); /* + 1: the '\0' */
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static char *buf_take(buf *b, size_t *len) {
  if (!b->p) buf_add(b, "", 0);
  *len = b->len;
  return b->p;
}

static char *join_argv(char *const argv[]) {
  buf b = { 0 };
  for (int i = 0; argv[i]; i++) {
    if (i) buf_add(&b, " ", 1);
    int quote = argv[i][0] == '\0' || strpbrk(argv[i], " \t\n'\"") != NULL;
    if (quote) buf_add(&b, "'", 1);
    buf_add(&b, argv[i], strlen(argv[i]));
    if (quote) buf_add(&b, "'", 1);
  }
  size_t n;
  return buf_take(&b, &n);
}

/* Read what is there; 0 at EOF (or a hard error), 1 otherwise. */
static int drain(int fd, buf *b) {
  char tmp[16384];
  for (;;) {
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n > 0) {
      buf_add(b, tmp, (size_t)n);
      if ((size_t)n < sizeof tmp) return 1;
      continue;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
    return 0;
  }
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* environ with opts->env set over it (malloc'd array, strings borrowed). */
static char **child_env(const char *const *extra) {
  size_t n = 0, k = 0;
  while (environ[n]) n++;
  while (extra && extra[k]) k++;
  char **envp = malloc((n + k + 1) * sizeof *envp);
  if (!envp) abort();
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    int replaced = 0;
    for (size_t j = 0; j < k && !replaced; j++) {
      size_t len = strcspn(extra[j], "=");
      replaced = strncmp(environ[i], extra[j], len) == 0 && environ[i][len] == '=';
    }
    if (!replaced) envp[m++] = environ[i];
  }
  for (size_t j = 0; j < k; j++) envp[m++] = (char *)extra[j];
  envp[m] = NULL;
  return envp;
}

static void ms_sleep(int ms) {
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

run_result *run_program(const run_opts *opts, char *const argv[]) {
  static const run_opts none = { 0 };
  if (!opts) opts = &none;
  run_result *r = calloc(1, sizeof *r);
  if (!r) abort();
  r->first_signal_s = r->last_signal_s = -1;
  r->cmdline = join_argv(argv);
  buf out = { 0 }, err = { 0 };
  double limit = opts->limit_s > 0 ? opts->limit_s : 60.0;
  int nsignals = opts->signal ? (opts->nsignals > 0 ? opts->nsignals : 1) : 0;
  if (nsignals > RUN_MAX_SIGNALS) nsignals = RUN_MAX_SIGNALS;

  /* A child that dies while we write its stdin must not kill the test. */
  signal(SIGPIPE, SIG_IGN);

  int use_stdin_pipe = opts->stdin_data != NULL || opts->stdin_keep_open;
  int in[2] = { -1, -1 }, po[2] = { -1, -1 }, pe[2] = { -1, -1 };
  if ((use_stdin_pipe && pipe2(in, O_CLOEXEC) != 0) || pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
    r->spawn_errno = errno;
    goto fail;
  }

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (use_stdin_pipe)
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  else
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, po[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pe[1], 2);

  /* The child starts with no signal blocked and default dispositions, whatever
     the test runner did with its own. */
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  posix_spawnattr_setsigmask(&at, &empty);
  posix_spawnattr_setsigdefault(&at, &defaults);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  double t0 = run_now();
  char **envp = child_env(opts->env);
  int rc = posix_spawn(&r->pid, argv[0], &fa, &at, argv, envp);
  free(envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close_fd(&in[0]);
  close_fd(&po[1]);
  close_fd(&pe[1]);
  if (rc != 0) {
    r->spawn_errno = rc;
    r->pid = 0;
    goto fail;
  }

  set_nonblock(po[0]);
  set_nonblock(pe[0]);
  const char *in_data = opts->stdin_data ? opts->stdin_data : "";
  size_t in_left = strlen(in_data);
  if (use_stdin_pipe) {
    set_nonblock(in[1]);
    if (in_left == 0 && !opts->stdin_keep_open) close_fd(&in[1]);
  }

  /* when the next signal is due; -1 while waiting for signal_when */
  double next_signal = -1;
  if (nsignals > 0 && !opts->signal_when && !opts->signal_when_file) next_signal = t0 + opts->signal_after_s;
  double deadline = t0 + limit;

  while (po[0] >= 0 || pe[0] >= 0) {
    double now = run_now();
    if (now >= deadline && !r->timed_out) {
      kill(r->pid, SIGKILL);
      r->timed_out = 1;
      deadline = now + 2.0; /* read what is left, but not forever */
    } else if (now >= deadline) {
      break;
    }
    if (r->signals_sent < nsignals && next_signal < 0 && opts->signal_when &&
        strstr(out.p ? out.p : "", opts->signal_when))
      next_signal = now + opts->signal_after_s;
    if (r->signals_sent < nsignals && next_signal < 0 && opts->signal_when_file &&
        access(opts->signal_when_file, F_OK) == 0)
      next_signal = now + opts->signal_after_s;
    if (r->signals_sent < nsignals && next_signal >= 0 && now >= next_signal && !r->timed_out) {
      kill(r->pid, opts->signal);
      if (r->signals_sent == 0) r->first_signal_s = now - t0;
      r->last_signal_s = now - t0;
      r->signals_sent++;
      next_signal = now + opts->signal_every_s;
    }

    double wake = deadline;
    if (r->signals_sent < nsignals && next_signal >= 0 && next_signal < wake) wake = next_signal;
    int timeout_ms = (int)((wake - now) * 1000.0) + 1;
    if (timeout_ms > 100) timeout_ms = 100; /* also re-checks signal_when */
    if (timeout_ms < 0) timeout_ms = 0;

    struct pollfd pf[3];
    int n = 0, io = -1, ie = -1, ii = -1;
    if (po[0] >= 0) pf[io = n++] = (struct pollfd){ po[0], POLLIN, 0 };
    if (pe[0] >= 0) pf[ie = n++] = (struct pollfd){ pe[0], POLLIN, 0 };
    if (in[1] >= 0 && in_left > 0) pf[ii = n++] = (struct pollfd){ in[1], POLLOUT, 0 };
    int got = poll(pf, (nfds_t)n, timeout_ms);
    if (got < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (io >= 0 && pf[io].revents && !drain(po[0], &out)) close_fd(&po[0]);
    if (ie >= 0 && pf[ie].revents && !drain(pe[0], &err)) close_fd(&pe[0]);
    if (ii >= 0 && pf[ii].revents) {
      ssize_t w = write(in[1], in_data, in_left);
      if (w > 0) {
        in_data += w;
        in_left -= (size_t)w;
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        in_left = 0; /* the child closed its stdin */
      }
      if (in_left == 0 && !opts->stdin_keep_open) close_fd(&in[1]);
    }
  }
  close_fd(&po[0]);
  close_fd(&pe[0]);

  /* Both pipes are closed: the child is exiting. Reap it, within the limit. */
  int status = 0;
  for (;;) {
    pid_t w = waitpid(r->pid, &status, WNOHANG);
    if (w == r->pid) break;
    if (w < 0 && errno != EINTR) break;
    if (run_now() >= deadline && !r->timed_out) {
      kill(r->pid, SIGKILL);
      r->timed_out = 1;
    }
    if (r->timed_out) {
      if (waitpid(r->pid, &status, 0) == r->pid) break;
      if (errno != EINTR) break;
      continue;
    }
    ms_sleep(2);
  }
  r->wall_s = run_now() - t0;
  r->reaped = 1;
  close_fd(&in[1]);
  if (WIFEXITED(status)) {
    r->exited = 1;
    r->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r->term_signal = WTERMSIG(status);
  }

fail:
  close_fd(&in[0]);
  close_fd(&in[1]);
  close_fd(&po[0]);
  close_fd(&po[1]);
  close_fd(&pe[0]);
  close_fd(&pe[1]);
  r->out = buf_take(&out, &r->out_len);
  r->err = buf_take(&err, &r->err_len);
  return r;
}

void run_result_free(run_result *r) {
  if (!r) return;
  free(r->out);
  free(r->err);
  free(r->cmdline);
  free(r);
}

const char *run_status_text(const run_result *r, char *b, size_t len) {
  if (r->spawn_errno)
    snprintf(b, len, "not started: %s", strerror(r->spawn_errno));
  else if (r->timed_out)
    snprintf(b, len, "killed at the test's wall-clock limit after %.1f s", r->wall_s);
  else if (r->exited)
    snprintf(b, len, "exit %d", r->exit_code);
  else if (r->term_signal)
    snprintf(b, len, "killed by signal %d (%s)", r->term_signal, strsignal(r->term_signal));
  else
    snprintf(b, len, "unknown status");
  return b;
}

static int pid_gone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'); /* a zombie waiting for its parent has died */
}

int run_wait_gone(pid_t pid, double seconds) {
  double end = run_now() + seconds;
  while (!pid_gone(pid)) {
    if (run_now() > end) {
      kill(pid, SIGKILL);
      return 0;
    }
    ms_sleep(20);
  }
  return 1;
}

/* ---------------------------------------------------------------- the report */

double report_parse_duration(const char *s, const char **end) {
  while (*s == ' ') s++;
  if (*s == '-' && (s[1] == ' ' || s[1] == '\n' || s[1] == '\0')) {
    if (end) *end = s + 1;
    return 0.0;
  }
  char *e;
  double v = strtod(s, &e);
  if (e == s) return -1;
  while (*e == ' ') e++;
  static const struct {
    const char *unit;
    double scale;
  } units[] = {
    { "ns", 1e-9 },
    { "us", 1e-6 },
    { "ms", 1e-3 },
    { "s", 1.0 },
  };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    size_t n = strlen(units[i].unit);
    if (strncmp(e, units[i].unit, n) == 0 && !isalpha((unsigned char)e[n])) {
      if (end) *end = e + n;
      return v * units[i].scale;
    }
  }
  return -1;
}

int report_number_after(const char *text, const char *key, double *v) {
  if (!text) return 0;
  const char *p = strstr(text, key);
  if (!p) return 0;
  p += strlen(key);
  char *e;
  double x = strtod(p, &e);
  if (e == p) return 0;
  *v = x;
  return 1;
}

int report_duration_after(const char *text, const char *key, double *v) {
  if (!text) return 0;
  const char *p = strstr(text, key);
  if (!p) return 0;
  double x = report_parse_duration(p + strlen(key), NULL);
  if (x < 0) return 0;
  *v = x;
  return 1;
}

const char *report_find(const char *err) { return err ? strstr(err, "-- gilvm report") : NULL; }

static int word_after(const char *text, const char *key, char *out, size_t len) {
  const char *p = strstr(text, key);
  if (!p) return 0;
  p += strlen(key);
  size_t n = strcspn(p, " \n");
  if (n == 0 || n >= len) return 0;
  memcpy(out, p, n);
  out[n] = '\0';
  return 1;
}

int report_parse_run(const char *err, parsed_report *r) {
  memset(r, 0, sizeof *r);
  const char *rep = report_find(err);
  if (!rep) return 0;
  double sw = 0, fo = 0, dr = 0;
  int ok = word_after(rep, "  mode ", r->mode, sizeof r->mode) &&
      word_after(rep, "   gil ", r->policy, sizeof r->policy) &&
      report_duration_after(rep, "switch interval ", &r->interval_s) &&
      report_duration_after(rep, "  wall ", &r->wall_s) && report_duration_after(rep, "   cpu ", &r->cpu_s) &&
      report_number_after(rep, "parallelism ", &r->parallelism) &&
      report_number_after(rep, "GIL held ", &r->held_pct) &&
      report_number_after(rep, "contended ", &r->contended_pct) && report_number_after(rep, "switches ", &sw) &&
      report_number_after(rep, "(forced ", &fo) && report_number_after(rep, "drop requests ", &dr);
  r->switches = (long)sw;
  r->forced = (long)fo;
  r->drop_requests = (long)dr;
  const char *h = strstr(rep, "  handoff latency ");
  r->has_handoff_line = h != NULL;
  if (h) {
    const char *eol = strchr(h, '\n');
    const char *f = strstr(h, "forced handoffs)");
    if (f && (!eol || f < eol)) {
      const char *open = f;
      while (open > h && *open != '(') open--;
      r->handoffs = strtol(open + 1, NULL, 10);
    }
  }
  return ok && r->has_handoff_line;
}

/* The first row of the thread table, or NULL. */
static const char *thread_table(const char *err) {
  const char *rep = report_find(err);
  if (!rep) return NULL;
  const char *h = strstr(rep, "\n  worker ");
  if (!h) return NULL;
  const char *row = strchr(h + 1, '\n');
  return row ? row + 1 : NULL;
}

static int parse_row(const char *line, report_thread *t) {
  memset(t, 0, sizeof *t);
  if (strncmp(line, "  ", 2) != 0 || line[2] == ' ' || line[2] == '\n' || line[2] == '\0') return 0;
  /* the name is printed as %-22.22s */
  size_t n = 0;
  while (n < 22 && line[2 + n] && line[2 + n] != '\n') n++;
  if (n < 22) return 0;
  memcpy(t->name, line + 2, n);
  t->name[n] = '\0';
  while (n > 0 && t->name[n - 1] == ' ') t->name[--n] = '\0';
  /* then the kind, printed as " %-11s" */
  if (strlen(line) < 2 + 22 + 1 + 11) return 0;
  memcpy(t->kind, line + 2 + 22 + 1, 11);
  t->kind[11] = '\0';
  for (n = 11; n > 0 && t->kind[n - 1] == ' ';) t->kind[--n] = '\0';
  const char *p = line + 2 + 22 + 1 + 11;
  double *durs1[] = { &t->cpu_s, &t->held_s, &t->wait_s };
  for (int i = 0; i < 3; i++) {
    double v = report_parse_duration(p, &p);
    if (v < 0) return 0;
    *durs1[i] = v;
  }
  char *e;
  t->acq = strtol(p, &e, 10);
  if (e == p) return 0;
  p = e;
  t->forced = strtol(p, &e, 10);
  if (e == p) return 0;
  p = e;
  double *durs2[] = { &t->blocked_s, &t->nogil_s, &t->io_s };
  for (int i = 0; i < 3; i++) {
    double v = report_parse_duration(p, &p);
    if (v < 0) return 0;
    *durs2[i] = v;
  }
  return 1;
}

int report_threads(const char *err, report_thread *rows, int max) {
  const char *line = thread_table(err);
  if (!line) return -1;
  int n = 0;
  report_thread t;
  while (*line && parse_row(line, &t)) {
    if (n < max) rows[n] = t;
    n++;
    const char *eol = strchr(line, '\n');
    if (!eol) break;
    line = eol + 1;
  }
  return n < max ? n : max;
}

int report_thread_named(const char *err, const char *name, int prefix, report_thread *row) {
  report_thread rows[64];
  int n = report_threads(err, rows, 64);
  for (int i = 0; i < n; i++) {
    if (prefix ? strncmp(rows[i].name, name, strlen(name)) == 0 : strcmp(rows[i].name, name) == 0) {
      *row = rows[i];
      return 1;
    }
  }
  return 0;
}

int report_figure(const char *err, const char *name, char *out, size_t len) {
  const char *rep = report_find(err);
  if (!rep) return 0;
  const char *sec = strstr(rep, "\n  script figures\n");
  if (!sec) return 0;
  const char *line = sec + strlen("\n  script figures\n");
  size_t nlen = strlen(name);
  while (*line && strncmp(line, "  ", 2) == 0 && line[2] != '-') {
    const char *eol = strchr(line, '\n');
    size_t llen = eol ? (size_t)(eol - line) : strlen(line);
    /* "  %-22s %s" */
    if (llen > 2 + nlen && strncmp(line + 2, name, nlen) == 0 && line[2 + nlen] == ' ') {
      const char *v = line + 2 + nlen;
      while (*v == ' ' && v < line + llen) v++;
      size_t vlen = (size_t)(line + llen - v);
      if (vlen >= len) vlen = len - 1;
      memcpy(out, v, vlen);
      out[vlen] = '\0';
      return 1;
    }
    if (!eol) break;
    line = eol + 1;
  }
  return 0;
}

/* ---- JSON ---- */

json_t *run_json_file(const char *path, char *err, size_t len) {
  json_error_t e;
  json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
  if (!v) snprintf(err, len, "%s: line %d, column %d: %s", path, e.line, e.column, e.text);
  return v;
}

double run_json_number(const json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

int count_occurrences(const char *hay, const char *needle) {
  int n = 0;
  size_t len = strlen(needle);
  if (!hay || len == 0) return 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle)) n++;
  return n;
}

/* ---- failure messages ---- */

const char *run_tail(const char *s) {
  size_t n = strlen(s);
  return n > 4000 ? s + n - 4000 : s;
}

const char *run_status(const run_result *r) {
  static char b[160];
  return run_status_text(r, b, sizeof b);
}

const char *run_sanitizer_report(const char *text) {
  static const char *const marks[] = {
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "WARNING: ThreadSanitizer",
    "ThreadSanitizer: ",
    "runtime error: ",
    "AddressSanitizer:DEADLYSIGNAL",
    NULL,
  };
  for (int i = 0; marks[i]; i++)
    if (strstr(text, marks[i])) return marks[i];
  return NULL;
}

/* ---------------------------------------------------- the Criterion side */

static void **tracked;
static size_t ntracked, captracked;
static run_result **results; /* freed by test_cleanup */
static size_t nresults, capresults;
static json_t *jsons[64];
static int njsons;
static char *tmpdirs[8];
static int ntmpdirs;
static const char *own_tmpdir;

void *track(void *p) {
  cr_assert(p != NULL, "out of memory");
  if (VEC_PUSH(tracked, ntracked, captracked, p) != 0) abort();
  return p;
}

char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *s = NULL;
  if (vasprintf(&s, f, ap) < 0) s = NULL;
  va_end(ap);
  return track(s);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

void test_cleanup(void) {
  for (size_t i = 0; i < nresults; i++) run_result_free(results[i]);
  for (size_t i = 0; i < ntracked; i++) free(tracked[i]);
  for (int i = 0; i < njsons; i++) json_decref(jsons[i]);
  for (int i = ntmpdirs - 1; i >= 0; i--) {
    if (nftw(tmpdirs[i], remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
      fprintf(stderr, "could not remove %s: %s\n", tmpdirs[i], strerror(errno));
    free(tmpdirs[i]);
  }
  free(tracked);
  free(results);
  tracked = NULL;
  results = NULL;
  ntracked = captracked = nresults = capresults = 0;
  ntmpdirs = njsons = 0;
  own_tmpdir = NULL;
}

const char *env_dir(const char *name) {
  const char *v = getenv(name);
  cr_assert(v && *v,
            "%s is not set: run the suite with `meson test`, or set GILVM, GILVM_SCRIPTS "
            "and GILVM_TESTDATA by hand",
            name);
  return v;
}

const char *gilvm_path(void) {
  const char *v = env_dir("GILVM");
  char *p = realpath(v, NULL);
  cr_assert(p, "%s: %s", v, strerror(errno));
  return track(p);
}

const char *script(const char *name) { return fmt("%s/%s", env_dir("GILVM_SCRIPTS"), name); }

const char *data_in(const char *sub, const char *name) { return fmt("%s/%s/%s", env_dir("GILVM_TESTDATA"), sub, name); }

const char *new_tmpdir(void) {
  cr_assert(ntmpdirs < (int)(sizeof tmpdirs / sizeof tmpdirs[0]), "too many temporary directories");
  const char *base = getenv("TMPDIR");
  char *dir = NULL;
  cr_assert(asprintf(&dir, "%s/gilvm-test-XXXXXX", base && *base ? base : "/tmp") > 0, "out of memory");
  cr_assert(mkdtemp(dir) != NULL, "cannot make a temporary directory in %s: %s", base, strerror(errno));
  tmpdirs[ntmpdirs++] = dir;
  return dir;
}

const char *tmp_path(const char *name) {
  if (!own_tmpdir) own_tmpdir = new_tmpdir();
  return fmt("%s/%s", own_tmpdir, name);
}

char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert(f != NULL, "cannot read %s: %s", path, strerror(errno));
  buf b = { 0 };
  char tmp[16384];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) buf_add(&b, tmp, n);
  fclose(f);
  size_t got;
  char *s = buf_take(&b, &got);
  if (len) *len = got;
  return track(s);
}

json_t *json_file(const char *path) {
  char err[512];
  json_t *v = run_json_file(path, err, sizeof err);
  cr_assert(v != NULL, "not valid JSON: %s\n%s", err, access(path, R_OK) == 0 ? slurp(path, NULL) : "(no file)");
  cr_assert(njsons < (int)(sizeof jsons / sizeof jsons[0]), "too many JSON files in one test");
  jsons[njsons++] = v;
  return v;
}

run_result *run_tracked(const run_opts *o, const char *const *argv) {
  run_opts opts = o ? *o : (run_opts){ 0 };
  if (opts.limit_s <= 0) opts.limit_s = RUN_LIMIT_S;
  run_result *r = run_program(&opts, (char *const *)argv);
  if (VEC_PUSH(results, nresults, capresults, r) != 0) abort();
  return r;
}

void expect_reaped(const run_result *r) {
  cr_assert(r->spawn_errno == 0, "cannot run %s: %s", r->cmdline, strerror(r->spawn_errno));
  cr_assert(r->reaped, "the child was not reaped" CTX, CTXA(r));
  int st;
  errno = 0;
  pid_t w = waitpid(r->pid, &st, WNOHANG);
  cr_assert(w == -1 && errno == ECHILD, "the child (pid %d) is still a child of the test after the run" CTX,
            (int)r->pid, CTXA(r));
}

void expect_no_sanitizer_report(const run_result *r) {
  cr_assert(!run_sanitizer_report(r->err), "a sanitizer reported a problem" CTX, CTXA(r));
}

void expect_clean(const run_result *r) {
  expect_reaped(r);
  cr_assert(!r->timed_out, "it did not finish within the test's hard limit and was killed" CTX, CTXA(r));
  expect_no_sanitizer_report(r);
}

run_result *run_checked(const run_opts *o, const char *const *argv) {
  run_result *r = run_tracked(o, argv);
  expect_clean(r);
  return r;
}

run_result *gv_run(const run_opts *o, const char *const *args) {
  size_t n = 0;
  while (args[n]) n++;
  const char **argv = track(calloc(n + 2, sizeof *argv));
  argv[0] = gilvm_path();
  memcpy(argv + 1, args, n * sizeof *argv);
  return run_checked(o, argv);
}

void expect_exit(const run_result *r, int code) {
  cr_assert(r->exited && r->exit_code == code, "expected exit %d" CTX, code, CTXA(r));
}

void expect_out(const run_result *r, const char *expected) {
  cr_assert(strcmp(r->out, expected) == 0, "stdout differs\n  --- expected stdout ---\n%s" CTX, expected, CTXA(r));
}

void expect_out_has(const run_result *r, const char *needle) {
  cr_assert(strstr(r->out, needle) != NULL, "stdout lacks \"%s\"" CTX, needle, CTXA(r));
}

void expect_err_has(const run_result *r, const char *needle) {
  cr_assert(strstr(r->err, needle) != NULL, "stderr lacks \"%s\"" CTX, needle, CTXA(r));
}

void expect_err_lacks(const run_result *r, const char *needle) {
  cr_assert(strstr(r->err, needle) == NULL, "stderr should not contain \"%s\"" CTX, needle, CTXA(r));
}

void expect_no_report(const run_result *r) {
  cr_assert(report_find(r->err) == NULL, "no report expected" CTX, CTXA(r));
}

void expect_usage_error(const run_result *r, const char *message) {
  expect_exit(r, 2);
  expect_err_has(r, "gilvm: ");
  expect_err_has(r, message);
  expect_err_has(r, "--help");
  expect_out(r, "");
  expect_no_report(r);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int gallery_scripts(char **names, int max) {
  const char *dir = fmt("%s/articles", env_dir("GILVM_SCRIPTS"));
  DIR *d = opendir(dir);
  cr_assert(d != NULL, "cannot list %s", dir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0) continue;
    cr_assert(n < max, "more than %d gallery scripts", max);
    names[n++] = track(strndup(e->d_name, len - 4));
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], by_name); /* the elements are char *: compare what they point to */
  return n;
}
