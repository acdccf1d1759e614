/*
 * child.c — running a child gilvm for its figures (compare and sweep): its
 * argv, its stdout and --json read back through pipes, and SIGINT/SIGTERM
 * passed on to it.
 */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
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
static int stop_code; /* 0, or the exit code a signal asked for */
static const char *stop_reason;
static pid_t running; /* the child being run, 0 between runs */
static uint64_t forward_at, kill_at; /* when to pass SIGINT on / kill the child (0: not due) */

static void signal_set(sigset_t *s) {
  sigemptyset(s);
  sigaddset(s, SIGINT);
  sigaddset(s, SIGTERM);
  sigaddset(s, SIGCHLD);
}

void child_signals_init(void) {
  sigset_t set;
  signal_set(&set);
  sigprocmask(SIG_BLOCK, &set, NULL);
  sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) sigprocmask(SIG_UNBLOCK, &set, NULL); /* no signalfd: signals act as they would */
}

static void on_stop_signal(int sig) {
  uint64_t now = clock_now_ns();
  if (stop_code && sig == SIGINT) { /* second Ctrl-C: now */
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
    if (si.ssi_signo == SIGCHLD)
      chld = 1;
    else
      on_stop_signal((int)si.ssi_signo);
  }
  return chld;
}

int child_stopped(void) {
  take_signals();
  return stop_code;
}

const char *child_stop_reason(void) { return stop_reason ? stop_reason : ""; }

int child_fold_status(int rc, int status) {
  if (status == EXIT_TIMEOUT) return EXIT_TIMEOUT;
  return status != 0 && rc == 0 ? EXIT_SCRIPT_ERROR : rc;
}

/* ---- running one child gilvm ---- */

typedef struct sink {
  int fd; /* read end, -1 once at EOF */
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
    close(s->fd); /* EOF */
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
    if (sig_fd < 0 && wait_ms < 0) wait_ms = 50; /* no signalfd: look for the child's end now and then */
    poll(pf, 3, wait_ms);
    take_signals();
    if (sink_read(out) != 0 || sink_read(json) != 0) kill(pid, SIGKILL); /* out of memory */
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return -1;
  }
  sink_read(out); /* what it wrote before it ended (a process it forked may hold the pipes open) */
  sink_read(json);
  return status;
}

void child_argv(const char **av, int argc, char **argv, const cli_options *o, const char *mode,
                const char *const *extra) {
  int n = 0;
  av[n++] = argv[0];
  av[n++] = "-m";
  av[n++] = mode;
  for (int i = 0; extra && extra[i]; i++) av[n++] = extra[i];
  for (int i = 0; i < o->nfwd && n < 100; i++) av[n++] = o->fwd[i];
  av[n++] = "--";
  for (int i = o->script_index; i < argc && n < CHILD_ARGV_MAX - 1; i++) av[n++] = argv[i];
  av[n] = NULL;
}

/* "gilvm run -q --json /dev/fd/3 <the rest>": its figures come back through a
   pipe, so there is no temporary file to leave behind. */
int child_run_gilvm(char *const argv[], child_run *out) {
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
  posix_spawnattr_t at; /* the child starts with nothing blocked and the usual dispositions */
  posix_spawnattr_init(&at);
  sigset_t none, ours;
  sigemptyset(&none);
  signal_set(&ours);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &ours);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  char me[24]; /* the child dies with us, however we die (see child_watch_supervisor) */
  snprintf(me, sizeof me, "%ld", (long)getpid());
  setenv(CHILD_SUPERVISOR_ENV, me, 1);
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
  out->json = jsonio_parse_object(json); /* NULL: none written, or cut short */
  free(json);
  return 0;
}

void child_run_free(child_run *r) {
  free(r->out);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}

void child_watch_supervisor(void) {
  const char *sup = getenv(CHILD_SUPERVISOR_ENV);
  if (!sup) return;
  pid_t parent = (pid_t)atol(sup);
  unsetenv(CHILD_SUPERVISOR_ENV); /* for this process only, not its own children */
  /* compare and sweep spawn from their only thread, so the parent-death
     signal (which follows the spawning thread) follows the process */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(EXIT_FAILURE); /* it died before we listened */
}
