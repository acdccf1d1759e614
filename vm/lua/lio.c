/*
 * lio.c — Lua's io library and os.execute, releasing the GIL while they wait
 * on the kernel, as CPython's file objects and subprocess calls do.
 *
 * Files: io.open, io.lines(name), io.input(name), io.output(name) and
 * io.popen make stdio FILEs with fopencookie. glibc calls the cookie's read,
 * write and seek only when its buffer cannot serve the request, and those
 * release the GIL around the system call: a file read line by line pays one
 * release per 4 KiB refill, not one per line, as CPython's buffered I/O. All
 * the rest (formats "n", "l", "L", "a", numbers, EOF, errors) is Lua's own
 * liolib code, called unchanged: the wrappers below only prepare and call it.
 * A FILE that is not ours (io.stdin, io.tmpfile()'s) is read after waiting,
 * GIL released, until its descriptor is readable when its buffer is empty.
 *
 * A thread blocked in a cookie call holds that FILE's lock without the GIL; a
 * second thread using the same file would wait for that lock holding the
 * GIL, and neither could go on. So every wrapper first waits, GIL released,
 * until the FILE's lock is free; with the GIL held nobody can take it before
 * liolib does (only a thread inside liolib, which needs the GIL, takes it).
 *
 * Standard output and error (print, io.write, io.stdout:write, io.stderr:write
 * and their flushes) are cookie FILEs too, made once in place of the C
 * library's stdout and stderr (see "standard output and error" below): the GIL
 * is released only when stdio must hand bytes to the kernel and the kernel
 * cannot take them now (a full pipe, a slow terminal), as CPython's buffered
 * writer releases only around the write() of a flush.
 *
 * Children (io.popen, os.execute) are /bin/sh -c started with posix_spawn in
 * a process group of their own, with signals unblocked, and registered with
 * the runtime (rt_kid_add): its stop (Ctrl-C, --timeout) kills the group. system() would ignore SIGINT in gilvm while the child runs.
 * io.popen's end of the pipe is non-blocking: a read or write waits in wait_child_fd. Under --sim a
 * wait for a child (its exit, or its pipe) steps out of the simulation, so the others go on, and
 * ends at the child's real time from its spawn (child_now): the child runs in real time.
 */
#include "lio.h"

#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "runtime.h"
#include "sim.h"

extern char **environ;

/* ---- waiting without the GIL ---- */

/* How often a wait looks at the stop flag. */
#define LIO_SLICE_MS 50

/* The wait itself, in slices that look at the stop flag: 1 ready, 0 timed out, -1 stopping. */
static int wait_fd(int fd, short events, int64_t timeout_ns) {
  uint64_t deadline = timeout_ns >= 0 ? clock_now_ns() + (uint64_t)timeout_ns : 0;
  for (;;) {
    if (rt_should_stop(NULL)) return -1;
    int ms = LIO_SLICE_MS;
    if (timeout_ns >= 0) {
      uint64_t now = clock_now_ns();
      if (now >= deadline) return 0;
      uint64_t left = (deadline - now + 999999) / 1000000;
      if (left < (uint64_t)ms) ms = (int)left;
    }
    struct pollfd p = { fd, events, 0 };
    int r = poll(&p, 1, ms);
    if (r > 0) return 1; /* ready, or an error or hang-up the next call reports */
    if (r < 0 && errno != EINTR) return 1;
  }
}

/* A child of ours (io.popen, os.execute), and when it was spawned: its spawner's clock (virtual
   under --sim) and the real clock. */
typedef struct lio_child {
  pid_t pid;
  uint64_t vt0, real0;
} lio_child;

/* Under --sim a child runs in real time from its spawn: a wait for it ends, in virtual time, at
   its spawner's clock at the spawn plus the real time since (sim_outside_end_at). */
static uint64_t child_now(const lio_child *c) { return c->vt0 + (clock_real_ns() - c->real0); }

/* Under --sim a wait without a timeout on a pipe that is not ready steps out of the simulation
   (sim_outside_begin) while it waits: the worker that would write to it may be simulated. On a
   pipe to our own child (c), the child's real time decides when it ends. */
static int wait_outside(int fd, short events, const lio_child *c) {
  struct pollfd p = { fd, events, 0 };
  if (poll(&p, 1, 0) != 0) return 1; /* ready now: no real wait, the run stays deterministic */
  sim_outside_begin();
  int r = wait_fd(fd, events, -1);
  sim_outside_end_at(c ? child_now(c) : 0);
  return r;
}

int lio_wait_fd(int fd, short events, int64_t timeout_ns) {
  if (!sim_on() || timeout_ns >= 0) return wait_fd(fd, events, timeout_ns);
  return wait_outside(fd, events, NULL);
}

/* A wait on a pipe to our own child: with the GIL released (began), as lio_wait_fd but in its
   real time under --sim; else (it could not release) blocking, as stdio would. 1, or -1 stopping. */
static int wait_child_fd(int fd, short events, const lio_child *c, uint64_t began) {
  if (began) return sim_on() ? wait_outside(fd, events, c) : wait_fd(fd, events, -1);
  struct pollfd p = { fd, events, 0 };
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {}
  return 1;
}

uint64_t lio_release(void) {
  if (!rt_can_block()) return 0;
  uint64_t began = rt_block_begin(rt_self(), RT_BLOCK_IO);
  return began ? began : 1; /* 0 means "not released": under --sim the clock starts at 0 */
}

void lio_retake(uint64_t began) {
  if (began) {
    int e = errno;
    rt_block_end(rt_self(), RT_BLOCK_IO, began);
    errno = e;
  }
}

/* ---- cookie FILEs ---- */

/* Threads inside a cookie call with their GIL released (holding that FILE's
   lock): while there are none, no FILE lock can keep a GIL holder waiting. */
static atomic_int inflight;

static uint64_t cookie_release(void) {
  if (!rt_can_block()) return 0;
  atomic_fetch_add(&inflight, 1);
  return lio_release();
}

static void cookie_retake(uint64_t began) {
  if (!began) return;
  lio_retake(began);
  atomic_fetch_sub(&inflight, 1);
}

/* A cookie: the descriptor, and whether it is a pipe to our own child (io.popen's: non-blocking,
   waited for by wait_child_fd), which one. */
typedef struct lio_cookie {
  int fd;
  int child;
  lio_child kid;
} lio_cookie;

static ssize_t ck_read(void *c, char *buf, size_t n) {
  lio_cookie *k = c;
  uint64_t began = cookie_release();
  ssize_t r = -1;
  for (;;) {
    int w = k->child ? wait_child_fd(k->fd, POLLIN, &k->kid, began) : began ? lio_wait_fd(k->fd, POLLIN, -1) : 1;
    if (w < 0) {
      errno = EINTR; /* stopping: liolib returns a failure, the wrapper raises the stop */
      break;
    }
    r = read(k->fd, buf, n);
    if (r >= 0 || (errno != EINTR && errno != EAGAIN)) break;
  }
  cookie_retake(began);
  return r;
}

static ssize_t ck_write(void *c, const char *buf, size_t n) {
  lio_cookie *k = c;
  uint64_t began = cookie_release();
  size_t done = 0;
  while (done < n) {
    ssize_t r = write(k->fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN && k->child) { /* the child's pipe is full: wait until it reads */
      if (wait_child_fd(k->fd, POLLOUT, &k->kid, began) >= 0) continue;
      errno = EINTR; /* stopping */
    }
    if (r <= 0) break;
    done += (size_t)r;
  }
  cookie_retake(began);
  return (ssize_t)done; /* short: glibc marks the error; errno says which */
}

static int ck_seek(void *c, off64_t *pos, int whence) {
  off64_t r = lseek(((lio_cookie *)c)->fd, *pos, whence);
  if (r < 0) return -1;
  *pos = r;
  return 0;
}

static int ck_close(void *c) {
  int fd = ((lio_cookie *)c)->fd;
  free(c);
  return close(fd) == 0 || errno == EINTR ? 0 : EOF;
}

static FILE *cookie_file(int fd, const char *mode, const lio_child *kid) {
  lio_cookie *c = malloc(sizeof *c);
  if (!c) {
    errno = ENOMEM;
    return NULL;
  }
  c->fd = fd;
  c->child = kid != NULL;
  if (kid) c->kid = *kid;
  FILE *f = fopencookie(c, mode, (cookie_io_functions_t){ ck_read, ck_write, ck_seek, ck_close });
  if (!f) free(c);
  return f;
}

/* fopen(name, mode) as a cookie FILE (mode already checked): same flags, same errno. */
static FILE *open_file(const char *name, const char *mode) {
  int plus = strchr(mode, '+') != NULL;
  int flags = mode[0] == 'r' ? (plus ? O_RDWR : O_RDONLY)
      : mode[0] == 'w'       ? (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC
                             : (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
  uint64_t began = lio_release(); /* opening a FIFO waits for its other end */
  int fd;
  do fd = open(name, flags, 0666);
  while (fd < 0 && errno == EINTR);
  lio_retake(began);
  if (fd < 0) return NULL;
  FILE *f = cookie_file(fd, mode, NULL);
  if (!f) {
    int e = errno;
    close(fd);
    errno = e;
  }
  return f;
}

/* Our streams: a luaL_Stream (what liolib works on) and, for io.popen, the child. */
typedef struct lio_stream {
  luaL_Stream s;
  lio_child kid;
} lio_stream;

static lio_stream *new_stream(lua_State *L) {
  lio_stream *p = lua_newuserdatauv(L, sizeof *p, 0);
  p->s.f = NULL;
  p->s.closef = NULL;
  p->kid.pid = 0;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  return p;
}

static int lio_fclose(lua_State *L) {
  luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int res = fclose(p->f);
  return luaL_fileresult(L, (res == 0), NULL);
}

/* as liolib's l_checkmode: [rwa]%+?b* */
static int check_mode(const char *mode) {
  if (*mode == '\0' || !strchr("rwa", *mode++)) return 0;
  if (*mode == '+') mode++;
  return strspn(mode, "b") == strlen(mode);
}

static int io_open(lua_State *L) {
  const char *filename = luaL_checkstring(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  lio_stream *p = new_stream(L);
  p->s.closef = lio_fclose;
  luaL_argcheck(L, check_mode(mode), 2, "invalid mode");
  p->s.f = open_file(filename, mode);
  return p->s.f == NULL ? luaL_fileresult(L, 0, filename) : 1;
}

/* liolib's opencheckfile: the file, or an error. */
static void open_check(lua_State *L, const char *name, const char *mode) {
  lio_stream *p = new_stream(L);
  p->s.closef = lio_fclose;
  p->s.f = open_file(name, mode);
  if (!p->s.f) luaL_error(L, "cannot open file '%s' (%s)", name, strerror(errno));
}

/* ---- children ---- */

/* /bin/sh -c cmd in a new process group, with fd `from` as its descriptor `to` (from < 0: none),
   into *kid. Its pid, or -1 (errno). */
static pid_t spawn_sh(const char *cmd, int from, int to, lio_child *kid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  if (from >= 0) posix_spawn_file_actions_adddup2(&fa, from, to);
  sigset_t none, def;
  sigemptyset(&none);
  sigemptyset(&def);
  int sigs[] = { SIGINT, SIGTERM, SIGQUIT, SIGPIPE, SIGHUP, SIGCHLD };
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&def, sigs[i]);
  posix_spawnattr_setsigmask(&at, &none); /* gilvm blocks SIGINT/SIGTERM in its threads */
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  char *argv[] = { "sh", "-c", (char *)cmd, NULL };
  pid_t pid;
  kid->vt0 = sim_on() ? sim_now() : 0;
  kid->real0 = clock_real_ns();
  int err = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (err) {
    errno = err;
    return -1;
  }
  if (rt_kid_add(pid)) kill(-pid, SIGKILL); /* the stop came first */
  kid->pid = pid;
  return pid;
}

/* waitpid, again after a signal. */
static pid_t reap(pid_t pid, int *status, int flags) {
  pid_t r;
  do r = waitpid(pid, status, flags);
  while (r < 0 && errno == EINTR);
  return r;
}

/* Wait for a child, GIL released: its wait status, or -1 (errno). Under --sim the wait steps out
   of the simulation (the others go on) and ends at the child's real time (child_now); `ended`: a
   child that has ended already is reaped at once, taking no virtual time (p:close() after its
   output: its time was the reads'). */
static int wait_child(const lio_child *c, int ended) {
  int status;
  pid_t pid = c->pid;
  uint64_t began = lio_release();
  pid_t r = ended && began && sim_on() ? reap(pid, &status, WNOHANG) : 0;
  if (r == 0 && began && sim_on()) {
    sim_outside_begin();
    r = reap(pid, &status, 0);
    int e = errno;
    sim_outside_end_at(child_now(c));
    errno = e;
  } else if (r == 0)
    r = reap(pid, &status, 0);
  lio_retake(began);
  int e = errno;
  rt_kid_done(pid);
  errno = e;
  return r < 0 ? -1 : status;
}

static int lio_pclose(lua_State *L) {
  lio_stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
  fclose(p->s.f); /* the child sees EOF on its stdin */
  int status = wait_child(&p->kid, 1);
  if (status != -1) errno = 0;
  return luaL_execresult(L, status);
}

static int io_popen(lua_State *L) {
  const char *cmd = luaL_checkstring(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  lio_stream *p = new_stream(L);
  luaL_argcheck(L, (mode[0] == 'r' || mode[0] == 'w') && mode[1] == '\0', 2, "invalid mode");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return luaL_fileresult(L, 0, cmd);
  int reading = mode[0] == 'r', mine = fds[reading ? 0 : 1], theirs = fds[reading ? 1 : 0];
  lio_child kid;
  pid_t pid = spawn_sh(cmd, theirs, reading ? STDOUT_FILENO : STDIN_FILENO, &kid);
  int e = errno;
  close(theirs);
  if (pid > 0) fcntl(mine, F_SETFL, fcntl(mine, F_GETFL) | O_NONBLOCK); /* ours only: waits go by wait_child_fd */
  FILE *f = pid > 0 ? cookie_file(mine, mode, &kid) : NULL;
  if (!f) {
    e = pid > 0 ? errno : e;
    close(mine);
    if (pid > 0) wait_child(&kid, 1);
    errno = e;
    return luaL_fileresult(L, 0, cmd);
  }
  p->s.f = f;
  p->kid = kid;
  p->s.closef = lio_pclose;
  return 1;
}

static int os_execute(lua_State *L) {
  const char *cmd = luaL_optstring(L, 1, NULL);
  if (!cmd) { /* is a shell available? (system(NULL)) */
    lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
    return 1;
  }
  lio_child kid;
  pid_t pid = spawn_sh(cmd, -1, -1, &kid);
  int status = pid > 0 ? wait_child(&kid, 0) : -1; /* just spawned: its real time counts from the spawn */
  if (status != -1) errno = 0;
  int n = luaL_execresult(L, status);
  rt_check_stop(L);
  return n;
}

/* ---- standard output and error ----
 *
 * stdout and stderr become cookie FILEs over descriptors 1 and 2, with the
 * buffering glibc would have given them (stdout: by lines on a terminal,
 * else whole blocks of st_blksize; stderr: none), so print, io.write and
 * gilvm's own messages keep their bytes, order and error flags. glibc calls
 * std_write only when its buffer must go to the kernel. std_write never waits
 * and never touches the GIL (it runs inside fwrite, holding the FILE's lock,
 * where retaking the GIL could deadlock with a GIL holder flushing that FILE):
 * it writes what the descriptor takes now (to a pipe or socket with
 * pwritev2's RWF_NOWAIT; to a terminal, at most a page after poll says
 * POLLOUT, which then cannot block) and
 * keeps the rest, in order, as pending bytes of that stream. Then:
 *  - a Lua call that wrote (print, io.write, file:write, flush: "armed") gets
 *    back from liolib with the FILE unlocked, and writes its pending bytes
 *    out with the GIL released, waiting for POLLOUT: the only place the GIL
 *    is released, and only when the kernel could not take the bytes at once;
 *  - any other writer (gilvm's report, a flush before fork, the exit) writes
 *    them out at once, blocking, as the C library's own stdout would.
 * On a stop (Ctrl-C, --timeout) a waiting Lua writer stops waiting and its
 * bytes stay pending; the next write on that stream, the final fclose or the
 * exit writes them, so nothing printed is lost or reordered. Only that last
 * write gives up: when a SIGINT or SIGTERM is pending (a second Ctrl-C).
 */

typedef struct lio_std {
  int fd;
  int chunked; /* not a regular file: never a write() that could wait */
  atomic_int nowait; /* pwritev2's RWF_NOWAIT works on it (else poll, then a page) */
  pthread_mutex_t mu; /* held only while not waiting */
  char *buf; /* pending bytes: buf[head..len) */
  size_t head, len, cap;
  uint64_t total_in, total_out; /* pending bytes ever appended, ever written */
  int err; /* a write of pending bytes failed (errno): said at the final close */
  atomic_int has_pending;
  char *vbuf; /* stdio's buffer, ours: kept here, it outlives the FILE */
} lio_std;

static lio_std std_out = { .fd = STDOUT_FILENO, .mu = PTHREAD_MUTEX_INITIALIZER };
static lio_std std_err = { .fd = STDERR_FILENO, .mu = PTHREAD_MUTEX_INITIALIZER };
static FILE *std_files[2]; /* the C library's stdout, stderr before the swap */
static size_t std_page;

/* A Lua write call in progress on this thread: std_write leaves what would wait pending. */
static _Thread_local int std_armed;

/* Under s->mu: write what s->fd takes now; *done says how much. 0, or -1
   when a write failed (errno): not "would wait", a real error. */
static int std_try(lio_std *s, const char *p, size_t n, size_t *done) {
  *done = 0;
  while (*done < n) {
    size_t k = n - *done;
    ssize_t r;
    if (s->chunked && atomic_load(&s->nowait)) { /* one call that never waits (pipes, sockets) */
      struct iovec v = { (char *)p + *done, k };
      r = pwritev2(s->fd, &v, 1, -1, RWF_NOWAIT);
      if (r < 0 && errno == EOPNOTSUPP) { /* a terminal: poll, then at most a page */
        atomic_store(&s->nowait, 0);
        continue;
      }
    } else {
      if (s->chunked) {
        struct pollfd pf = { s->fd, POLLOUT, 0 };
        if (poll(&pf, 1, 0) == 0) break; /* would wait */
        if (k > std_page) k = std_page;
      }
      r = write(s->fd, p + *done, k);
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) break; /* a descriptor someone made non-blocking */
    if (r < 0) return -1;
    if (r == 0) {
      errno = EIO;
      return -1;
    }
    *done += (size_t)r;
  }
  return 0;
}

/* Under s->mu: keep p[0..n) after what is pending. -1 when out of memory. */
static int std_keep(lio_std *s, const char *p, size_t n) {
  if (s->head == s->len) s->head = s->len = 0;
  if (s->len + n > s->cap) {
    if (s->head) { /* reuse the written front first */
      memmove(s->buf, s->buf + s->head, s->len - s->head);
      s->len -= s->head;
      s->head = 0;
    }
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + n) cap *= 2;
    if (cap > s->cap) {
      char *b = realloc(s->buf, cap);
      if (!b) return -1;
      s->buf = b;
      s->cap = cap;
    }
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  s->total_in += n;
  atomic_store(&s->has_pending, 1);
  return 0;
}

/* Under s->mu: write pending bytes the fd takes now. 0 none left, 1 some
   left (would wait), -1 a write failed (errno; the pending bytes are dropped). */
static int std_push(lio_std *s) {
  if (s->head < s->len) {
    size_t done;
    int r = std_try(s, s->buf + s->head, s->len - s->head, &done);
    if (r < 0) {
      s->err = errno;
      s->total_out += s->len - s->head;
      s->head = s->len = 0;
      atomic_store(&s->has_pending, 0);
      return -1;
    }
    s->head += done;
    s->total_out += done;
  }
  if (s->head < s->len) return 1;
  s->head = s->len = 0;
  atomic_store(&s->has_pending, 0);
  return 0;
}

/* Write out everything pending, blocking (not a Lua writer). give_up: stop
   when SIGINT or SIGTERM is pending (the last write, at exit). 0, or -1 (errno). */
static int std_flush_blocking(lio_std *s, int give_up) {
  for (;;) {
    PT_CHECK(pthread_mutex_lock(&s->mu));
    int r = std_push(s);
    int e = errno;
    PT_CHECK(pthread_mutex_unlock(&s->mu));
    if (r <= 0) {
      errno = e;
      return r;
    }
    struct pollfd pf = { s->fd, POLLOUT, 0 };
    poll(&pf, 1, LIO_SLICE_MS);
    sigset_t set;
    if (give_up && sigpending(&set) == 0 && (sigismember(&set, SIGINT) || sigismember(&set, SIGTERM))) {
      errno = EINTR;
      return -1;
    }
  }
}

static ssize_t std_write(void *c, const char *p, size_t n) {
  lio_std *s = c;
  PT_CHECK(pthread_mutex_lock(&s->mu));
  size_t done = 0;
  if (s->head == s->len && std_try(s, p, n, &done) != 0) { /* nothing pending: straight to the fd */
    int e = errno;
    PT_CHECK(pthread_mutex_unlock(&s->mu));
    errno = e;
    return (ssize_t)done; /* short: glibc sets the error flag, as for its own stdout */
  }
  int kept = done == n || std_keep(s, p + done, n - done) == 0;
  if (kept) std_push(s); /* an error here is the pending bytes' (s->err) */
  PT_CHECK(pthread_mutex_unlock(&s->mu));
  if (!kept) {
    errno = ENOMEM;
    return (ssize_t)done;
  }
  if (!std_armed && std_flush_blocking(s, 0) != 0) return -1;
  return (ssize_t)n;
}

static int std_seek(void *c, off64_t *pos, int whence) {
  lio_std *s = c;
  if (std_flush_blocking(s, 0) != 0) return -1;
  off64_t r = lseek(s->fd, *pos, whence);
  if (r < 0) return -1;
  *pos = r;
  return 0;
}

static int std_close(void *c) {
  lio_std *s = c;
  int bad = std_flush_blocking(s, 1) != 0 || s->err;
  int e = s->err ? s->err : errno;
  if (close(s->fd) != 0 && !bad) {
    bad = 1;
    e = errno;
  }
  errno = e;
  return bad ? EOF : 0;
}

/* Lua's writers: run with std_armed set (liolib's call must not fail in
   between: the callers check their arguments first), then write what is
   pending with the GIL released. 0, or -1 with errno: a pending write failed. */
static int std_drain(void) {
  int failed = 0, e = 0;
  uint64_t began = 0;
  lio_std *all[] = { &std_out, &std_err };
  for (int i = 0; i < 2; i++) {
    lio_std *s = all[i];
    if (!atomic_load(&s->has_pending)) continue;
    PT_CHECK(pthread_mutex_lock(&s->mu));
    uint64_t target = s->total_in; /* ours and what came before: not later writers' */
    int err0 = s->err;
    for (;;) {
      int r = std_push(s);
      if (r < 0 || s->err != err0) {
        failed = 1;
        e = s->err;
      }
      if (r <= 0 || s->total_out >= target) break;
      PT_CHECK(pthread_mutex_unlock(&s->mu));
      if (!began) began = lio_release();
      int w = began ? lio_wait_fd(s->fd, POLLOUT, -1) : 1;
      PT_CHECK(pthread_mutex_lock(&s->mu));
      if (w < 0) break; /* stopping: the bytes stay pending */
      if (!began) { /* could not release: wait as stdio would */
        struct pollfd pf = { s->fd, POLLOUT, 0 };
        PT_CHECK(pthread_mutex_unlock(&s->mu));
        poll(&pf, 1, -1);
        PT_CHECK(pthread_mutex_lock(&s->mu));
      }
    }
    PT_CHECK(pthread_mutex_unlock(&s->mu));
  }
  lio_retake(began);
  errno = e;
  return failed ? -1 : 0;
}

/* A forked worker prints only its own bytes: what the parent still had
   pending is the parent's. Its mutex and buffer are made anew (another
   thread may have held the one or been reallocating the other at the fork;
   the old buffer is left to the parent). No prepare handler takes the mutex:
   glibc's fork takes stdio's list lock after the handlers, and fflush(NULL)
   holds that lock while it writes (and so takes the mutex): a deadlock. */
static void std_atfork_child(void) {
  lio_std *all[] = { &std_out, &std_err };
  for (int i = 0; i < 2; i++) {
    lio_std *s = all[i];
    PT_CHECK(pthread_mutex_init(&s->mu, NULL));
    s->buf = NULL;
    s->head = s->len = s->cap = 0;
    s->total_in = s->total_out = 0;
    s->err = 0;
    atomic_store(&s->has_pending, 0);
  }
}

static void std_finish(void) {
  std_flush_blocking(&std_out, 1);
  std_flush_blocking(&std_err, 1);
}

/* The cookie FILE over s->fd with glibc's buffering for it; NULL if it cannot be made. */
static FILE *std_file(lio_std *s, int line, int none) {
  struct stat st;
  int ok = fstat(s->fd, &st) == 0;
  s->chunked = !ok || !S_ISREG(st.st_mode);
  atomic_store(&s->nowait, 1);
  FILE *f = fopencookie(s, "w", (cookie_io_functions_t){ NULL, std_write, std_seek, std_close });
  if (!f) return NULL;
  f->_fileno = s->fd; /* fileno(stdout) stays 1 for C code that asks the descriptor (glibc marks a cookie -2) */
  size_t size = ok && st.st_blksize > 0 ? (size_t)st.st_blksize : BUFSIZ;
  if (none)
    setvbuf(f, NULL, _IONBF, 0);
  else
    setvbuf(f, s->vbuf = malloc(size), line ? _IOLBF : _IOFBF, size); /* NULL: glibc's own BUFSIZ */
  return f;
}

static void std_swap(void) {
  long pg = sysconf(_SC_PAGESIZE);
  std_page = pg > 0 ? (size_t)pg : 4096;
  fflush(stdout);
  fflush(stderr);
  FILE *out = std_file(&std_out, isatty(STDOUT_FILENO), 0);
  FILE *err = std_file(&std_err, 0, 1);
  if (!out || !err) { /* keep the C library's: nothing releases, nothing breaks */
    if (out) fclose(out);
    if (err) fclose(err);
    return;
  }
  std_files[0] = stdout;
  std_files[1] = stderr;
  stdout = out;
  stderr = err;
  pthread_atfork(NULL, NULL, std_atfork_child);
  atexit(std_finish);
}

/* io.stdout and io.stderr of L (made by luaopen_io from the C library's) -> ours. */
static void std_adopt(lua_State *L) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  PT_CHECK(pthread_once(&once, std_swap));
  if (!std_files[0]) return;
  if (lua_getglobal(L, "io") == LUA_TTABLE) {
    const char *names[] = { "stdout", "stderr" };
    FILE *now[] = { stdout, stderr };
    for (int i = 0; i < 2; i++) {
      lua_getfield(L, -1, names[i]);
      luaL_Stream *p = luaL_testudata(L, -1, LUA_FILEHANDLE);
      if (p && p->f == std_files[i]) p->f = now[i]; /* also the default output: the same userdata */
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* Can this Lua write call go armed: a worker that may release, and liolib's
   write/flush will not raise (the file is open, every value a string or number)? */
static int std_can_arm(lua_State *L, luaL_Stream *p, int first, int last) {
  if (!std_files[0] || !rt_can_block() || !p || !p->closef) return 0;
  for (int i = first; i <= last; i++)
    if (lua_type(L, i) != LUA_TNUMBER && lua_type(L, i) != LUA_TSTRING) return 0;
  return 1;
}

/* lua_writestring and lua_writeline of lauxlib.h, armed. */
static void print_write(const char *s, size_t n, int armed) {
  std_armed = armed;
  fwrite(s, 1, n, stdout);
  std_armed = 0;
}

/* luaB_print (lbaselib.c), whose writes may release the GIL. */
static int w_print(lua_State *L) {
  int n = lua_gettop(L);
  int armed = std_files[0] && rt_can_block();
  for (int i = 1; i <= n; i++) {
    size_t l;
    const char *s = luaL_tolstring(L, i, &l); /* may run __tostring: not armed */
    if (i > 1) print_write("\t", 1, armed);
    print_write(s, l, armed);
    lua_pop(L, 1);
  }
  print_write("\n", 1, armed);
  std_armed = armed;
  fflush(stdout);
  std_armed = 0;
  if (armed) std_drain(); /* print ignores write errors, as lua5.4's */
  rt_check_stop(L);
  return 0;
}

void lio_std_finish(void) {
  if (std_files[0]) std_finish();
}

/* ---- wrapping liolib's functions ---- */

/* A worker about to use f: wait, GIL released, until nobody holds its lock;
   when reading a FILE that is not a cookie with an empty buffer, until its
   descriptor is readable (so the read itself does not block with the GIL). */
static void prepare(lua_State *L, FILE *f, int reading) {
  if (!rt_can_block()) return;
  while (atomic_load(&inflight) > 0) { /* f's lock may be held by a thread without its GIL */
    if (ftrylockfile(f) == 0) {
      funlockfile(f);
      break;
    }
    uint64_t began = lio_release();
    flockfile(f); /* not kept while retaking the GIL: its holder may want f too */
    funlockfile(f);
    lio_retake(began);
  }
  int fd = reading ? fileno(f) : -1; /* -1: a cookie FILE, which releases by itself */
  int empty = fd >= 0 && f->_IO_read_ptr >= f->_IO_read_end;
  if (fd >= 0 && empty) {
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 0) != 0) return; /* ready now (regular files always are): no release */
    uint64_t began = lio_release();
    lio_wait_fd(fd, POLLIN, -1);
    lio_retake(began);
    rt_check_stop(L); /* not into a read that would block holding the GIL */
  }
}

static void prepare_stream(lua_State *L, int idx, int reading) {
  luaL_Stream *p = luaL_testudata(L, idx, LUA_FILEHANDLE);
  if (p && p->closef && p->f) prepare(L, p->f, reading);
}

/* The default input or output (registry field of liolib). */
static void prepare_default(lua_State *L, const char *which, int reading) {
  lua_getfield(L, LUA_REGISTRYINDEX, which);
  prepare_stream(L, -1, reading);
  lua_pop(L, 1);
}

#define IO_INPUT "_IO_input"
#define IO_OUTPUT "_IO_output"

/* The function liolib's lines return (io_readline): learnt from the first one made. */
static lua_CFunction readline_orig;

static int w_readline(lua_State *L) {
  luaL_Stream *p = lua_touserdata(L, lua_upvalueindex(1));
  if (p && p->closef && p->f) prepare(L, p->f, 1);
  int n = readline_orig(L);
  rt_check_stop(L);
  return n;
}

/* The iterator liolib made (top of the stack) -> w_readline over the same upvalues. */
static void wrap_iterator(lua_State *L) {
  readline_orig = lua_tocfunction(L, -1);
  int nup = 0;
  for (;;) { /* up to 250 formats: more than LUA_MINSTACK slots */
    luaL_checkstack(L, 2, "too many arguments");
    if (!lua_getupvalue(L, -(nup + 1), nup + 1)) break;
    nup++;
  }
  lua_pushcclosure(L, w_readline, nup);
  lua_replace(L, -2);
}

/* Upvalue 1: liolib's function. Upvalue 2: what it does (see the enum). Called
   directly, not through lua_call, so its errors name the function as before. */
enum {
  W_FILE_READ,
  W_FILE_OTHER,
  W_FILE_WRITE,
  W_FILE_LINES,
  W_IO_READ,
  W_IO_OUT,
  W_IO_WRITE,
  W_IO_CLOSE,
  W_IO_LINES,
  W_IO_INPUT,
  W_IO_OUTPUT
};

static int wrapped(lua_State *L) {
  lua_CFunction orig = lua_tocfunction(L, lua_upvalueindex(1));
  int what = (int)lua_tointeger(L, lua_upvalueindex(2));
  int armed = 0;
  switch (what) {
  case W_FILE_READ: prepare_stream(L, 1, 1); break;
  case W_FILE_OTHER: prepare_stream(L, 1, 0); break;
  case W_FILE_WRITE:
    prepare_stream(L, 1, 0);
    armed = std_can_arm(L, luaL_testudata(L, 1, LUA_FILEHANDLE), 2, lua_gettop(L));
    break;
  case W_IO_READ: prepare_default(L, IO_INPUT, 1); break;
  case W_IO_OUT: prepare_default(L, IO_OUTPUT, 0); break;
  case W_IO_WRITE:
    prepare_default(L, IO_OUTPUT, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, IO_OUTPUT);
    armed = std_can_arm(L, luaL_testudata(L, -1, LUA_FILEHANDLE), 1, lua_gettop(L) - 1);
    lua_pop(L, 1);
    break;
  case W_IO_CLOSE:
    if (lua_isnone(L, 1))
      prepare_default(L, IO_OUTPUT, 0);
    else
      prepare_stream(L, 1, 0);
    break;
  case W_IO_INPUT:
  case W_IO_OUTPUT:
    if (!lua_isnoneornil(L, 1) && lua_tostring(L, 1)) { /* a name: open it ourselves */
      open_check(L, lua_tostring(L, 1), what == W_IO_INPUT ? "r" : "w");
      lua_replace(L, 1);
    }
    break;
  case W_IO_LINES:
    if (!lua_isnoneornil(L, 1)) { /* io.lines(name, ...): our file, closed at its end */
      const char *name = luaL_checkstring(L, 1);
      open_check(L, name, "r");
      lua_replace(L, 1);
      int nargs = lua_gettop(L);
      luaL_argcheck(L, nargs - 1 <= 250, 250 + 2, "too many arguments"); /* liolib's MAXARGLINE, named as it does */
      luaL_checkstack(L, 4, "too many arguments");
      lua_getfield(L, LUA_REGISTRYINDEX, LUA_FILEHANDLE);
      lua_getfield(L, -1, "__index");
      lua_getfield(L, -1, "lines"); /* f:lines, wrapped */
      lua_replace(L, -3);
      lua_pop(L, 1);
      lua_insert(L, 1);
      lua_pushvalue(L, 2);
      lua_insert(L, 1); /* file, f:lines, file, formats... */
      lua_call(L, nargs, 1);
      lua_pushboolean(L, 1);
      lua_setupvalue(L, -2, 3); /* close the file when finished, as liolib's io.lines does */
      lua_pushnil(L);
      lua_pushnil(L);
      lua_pushvalue(L, 1); /* the to-be-closed variable */
      return 4;
    }
    break;
  }
  std_armed = armed;
  int n = orig(L);
  std_armed = 0;
  if (armed && std_drain() != 0 && !lua_isnil(L, -n)) { /* its bytes were kept, then failed */
    lua_pop(L, n);
    n = luaL_fileresult(L, 0, NULL);
  }
  if (what == W_FILE_LINES || what == W_IO_LINES) wrap_iterator(L);
  rt_check_stop(L);
  return n;
}

static void wrap_field(lua_State *L, int t, const char *name, int what) {
  lua_getfield(L, t, name);
  if (!lua_iscfunction(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushinteger(L, what);
  lua_pushcclosure(L, wrapped, 2);
  lua_setfield(L, t, name);
}

static const luaL_Reg io_patches[] = { { "open", io_open }, { "popen", io_popen }, { NULL, NULL } };

void lio_open(lua_State *L) {
  std_adopt(L);
  lua_pushcfunction(L, w_print);
  lua_setglobal(L, "print");
  if (lua_getglobal(L, "io") == LUA_TTABLE) {
    int io = lua_gettop(L);
    luaL_setfuncs(L, io_patches, 0);
    wrap_field(L, io, "read", W_IO_READ);
    wrap_field(L, io, "write", W_IO_WRITE);
    wrap_field(L, io, "flush", W_IO_WRITE);
    wrap_field(L, io, "close", W_IO_CLOSE);
    wrap_field(L, io, "lines", W_IO_LINES);
    wrap_field(L, io, "input", W_IO_INPUT);
    wrap_field(L, io, "output", W_IO_OUTPUT);
  }
  lua_pop(L, 1);
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE) {
    int mt = lua_gettop(L);
    wrap_field(L, mt, "__gc", W_FILE_OTHER);
    wrap_field(L, mt, "__close", W_FILE_OTHER);
    if (lua_getfield(L, mt, "__index") == LUA_TTABLE) {
      int m = lua_gettop(L);
      wrap_field(L, m, "read", W_FILE_READ);
      wrap_field(L, m, "lines", W_FILE_LINES);
      wrap_field(L, m, "write", W_FILE_WRITE);
      wrap_field(L, m, "flush", W_FILE_WRITE);
      wrap_field(L, m, "seek", W_FILE_OTHER);
      wrap_field(L, m, "setvbuf", W_FILE_OTHER);
      wrap_field(L, m, "close", W_FILE_OTHER);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (lua_getglobal(L, "os") == LUA_TTABLE) {
    lua_pushcfunction(L, os_execute);
    lua_setfield(L, -2, "execute");
  }
  lua_pop(L, 1);
}
