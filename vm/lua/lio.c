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
 * Children (io.popen, os.execute) are /bin/sh -c started with posix_spawn in
 * a process group of their own, with signals unblocked, and registered with
 * the runtime (rt_kid_add): its stop (Ctrl-C, --timeout) kills the group. system() would ignore SIGINT in gilvm while the child runs.
 */
#include "lio.h"

#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "runtime.h"

extern char **environ;

/* ---- waiting without the GIL ---- */

/* How often a wait looks at the stop flag. */
#define LIO_SLICE_MS 50

int lio_wait_fd(int fd, short events, int64_t timeout_ns) {
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

static ssize_t ck_read(void *c, char *buf, size_t n) {
  int fd = *(int *)c;
  uint64_t began = cookie_release();
  ssize_t r = -1;
  for (;;) {
    if (began && lio_wait_fd(fd, POLLIN, -1) < 0) {
      errno = EINTR; /* stopping: liolib returns a failure, the wrapper raises the stop */
      break;
    }
    r = read(fd, buf, n);
    if (r >= 0 || errno != EINTR) break;
  }
  cookie_retake(began);
  return r;
}

static ssize_t ck_write(void *c, const char *buf, size_t n) {
  int fd = *(int *)c;
  uint64_t began = cookie_release();
  size_t done = 0;
  while (done < n) {
    ssize_t r = write(fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += (size_t)r;
  }
  cookie_retake(began);
  return (ssize_t)done; /* short: glibc marks the error; errno says which */
}

static int ck_seek(void *c, off64_t *pos, int whence) {
  off64_t r = lseek(*(int *)c, *pos, whence);
  if (r < 0) return -1;
  *pos = r;
  return 0;
}

static int ck_close(void *c) {
  int fd = *(int *)c;
  free(c);
  return close(fd) == 0 || errno == EINTR ? 0 : EOF;
}

static FILE *cookie_file(int fd, const char *mode) {
  int *c = malloc(sizeof *c);
  if (!c) {
    errno = ENOMEM;
    return NULL;
  }
  *c = fd;
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
  FILE *f = cookie_file(fd, mode);
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
  pid_t pid;
} lio_stream;

static lio_stream *new_stream(lua_State *L) {
  lio_stream *p = lua_newuserdatauv(L, sizeof *p, 0);
  p->s.f = NULL;
  p->s.closef = NULL;
  p->pid = 0;
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

/* /bin/sh -c cmd in a new process group, with fd `from` as its descriptor `to` (from < 0: none). */
static pid_t spawn_sh(const char *cmd, int from, int to) {
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
  int err = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (err) {
    errno = err;
    return -1;
  }
  if (rt_kid_add(pid)) kill(-pid, SIGKILL); /* the stop came first */
  return pid;
}

/* Wait for a child, GIL released: its wait status, or -1 (errno). */
static int wait_child(pid_t pid) {
  int status;
  uint64_t began = lio_release();
  pid_t r;
  do r = waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  lio_retake(began);
  int e = errno;
  rt_kid_done(pid);
  errno = e;
  return r < 0 ? -1 : status;
}

static int lio_pclose(lua_State *L) {
  lio_stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
  fclose(p->s.f); /* the child sees EOF on its stdin */
  int status = wait_child(p->pid);
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
  pid_t pid = spawn_sh(cmd, theirs, reading ? STDOUT_FILENO : STDIN_FILENO);
  int e = errno;
  close(theirs);
  FILE *f = pid > 0 ? cookie_file(mine, mode) : NULL;
  if (!f) {
    e = pid > 0 ? errno : e;
    close(mine);
    if (pid > 0) wait_child(pid);
    errno = e;
    return luaL_fileresult(L, 0, cmd);
  }
  p->s.f = f;
  p->pid = pid;
  p->s.closef = lio_pclose;
  return 1;
}

static int os_execute(lua_State *L) {
  const char *cmd = luaL_optstring(L, 1, NULL);
  if (!cmd) { /* is a shell available? (system(NULL)) */
    lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
    return 1;
  }
  pid_t pid = spawn_sh(cmd, -1, -1);
  int status = pid > 0 ? wait_child(pid) : -1;
  if (status != -1) errno = 0;
  int n = luaL_execresult(L, status);
  rt_check_stop(L);
  return n;
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
enum { W_FILE_READ, W_FILE_OTHER, W_FILE_LINES, W_IO_READ, W_IO_OUT, W_IO_CLOSE, W_IO_LINES, W_IO_INPUT, W_IO_OUTPUT };

static int wrapped(lua_State *L) {
  lua_CFunction orig = lua_tocfunction(L, lua_upvalueindex(1));
  int what = (int)lua_tointeger(L, lua_upvalueindex(2));
  switch (what) {
  case W_FILE_READ: prepare_stream(L, 1, 1); break;
  case W_FILE_OTHER: prepare_stream(L, 1, 0); break;
  case W_IO_READ: prepare_default(L, IO_INPUT, 1); break;
  case W_IO_OUT: prepare_default(L, IO_OUTPUT, 0); break;
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
  int n = orig(L);
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
  if (lua_getglobal(L, "io") == LUA_TTABLE) {
    int io = lua_gettop(L);
    luaL_setfuncs(L, io_patches, 0);
    wrap_field(L, io, "read", W_IO_READ);
    wrap_field(L, io, "write", W_IO_OUT);
    wrap_field(L, io, "flush", W_IO_OUT);
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
      wrap_field(L, m, "write", W_FILE_OTHER);
      wrap_field(L, m, "flush", W_FILE_OTHER);
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
