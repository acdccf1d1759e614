/*
 * sockets.c — TCP sockets for scripts: gil.listen, gil.connect, and their
 * accept, send, recv and close, each releasing the GIL while it waits in the
 * kernel ("io" time), as CPython's socket module does.
 *
 * A socket is a userdata holding its descriptor; it is closed by :close(),
 * when collected, or at exit. A gil.process child inherits the sockets its
 * parent had when it was forked (the whole memory is copied). Descriptors are
 * close-on-exec, so io.popen's and os.execute's children do not hold them.
 * Every wait is a poll in short slices (lio_wait_fd), so the stop ends it.
 */
#include "sockets.h"

#include <lauxlib.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "lio.h"
#include "runtime.h"

#define LISTENER_MT "gil.listener"
#define CONN_MT "gil.connection"

typedef struct sock {
  int fd; /* -1 once closed */
} sock;

static sock *check_sock(lua_State *L, int idx, const char *mt, const char *call) {
  sock *s = luaL_checkudata(L, idx, mt);
  if (s->fd < 0) luaL_error(L, "%s: socket is closed", call);
  return s;
}

static sock *new_sock(lua_State *L, int fd, const char *mt) {
  sock *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->fd = fd;
  luaL_setmetatable(L, mt);
  return s;
}

/* "localhost" or a dotted IPv4 address, and a port, as a sockaddr. */
static void address(lua_State *L, const char *call, const char *host, lua_Integer port, struct sockaddr_in *a) {
  if (port < 0 || port > 65535) luaL_error(L, "%s %s:%d: port out of range", call, host, (int)port);
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
    luaL_error(L, "%s %s:%d: not an IPv4 address", call, host, (int)port);
}

static int fail(lua_State *L, const char *call, const char *host, lua_Integer port, int err) {
  return luaL_error(L, "%s %s:%d: %s", call, host, (int)port, strerror(err));
}

/* gil.listen(port [, host]) */
static int g_listen(lua_State *L) {
  if (sim_on()) /* a wait for another simulated worker would block the only one running: a hang */
    return luaL_error(L, "gil.listen: sockets are not simulated yet (--sim)");
  lua_Integer port = luaL_checkinteger(L, 1);
  const char *host = luaL_optstring(L, 2, "127.0.0.1");
  struct sockaddr_in a;
  address(L, "listen", host, port, &a);
  sock *s = new_sock(L, -1, LISTENER_MT);
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->fd < 0) return fail(L, "listen", host, port, errno);
  int one = 1;
  setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->fd, 128) != 0) {
    int e = errno;
    close(s->fd);
    s->fd = -1;
    return fail(L, "listen", host, port, e);
  }
  return 1;
}

static int l_port(lua_State *L) {
  sock *s = check_sock(L, 1, LISTENER_MT, "port");
  struct sockaddr_in a;
  socklen_t n = sizeof a;
  if (getsockname(s->fd, (struct sockaddr *)&a, &n) != 0) return luaL_error(L, "port: %s", strerror(errno));
  lua_pushinteger(L, ntohs(a.sin_port));
  return 1;
}

static void no_delay(int fd) { /* small requests and replies go out at once */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Wait for fd, GIL released: 1 ready, 0 timed out; raises the stop error. */
static int wait_for(lua_State *L, int fd, short events, int64_t timeout_ns) {
  struct pollfd p = { fd, events, 0 };
  if (poll(&p, 1, 0) > 0) return 1; /* ready now: no release */
  if (timeout_ns == 0) return 0;
  uint64_t began = lio_release();
  int r = lio_wait_fd(fd, events, timeout_ns);
  lio_retake(began);
  rt_check_stop(L);
  return r;
}

/* The system call of send or recv, with the GIL released around it and around
   the wait before it, as CPython's socket methods release it around theirs
   even when they will not block: a thread waiting for the GIL may take it
   meanwhile. That window is the convoy of bpo-7946: an echo server's send
   (on loopback it runs the peer's TCP receive, tens of microseconds) is
   where a waiting CPU thread takes the GIL, so the server waits a switch
   interval after each reply (scripts/echo_convoy.lua, README "The echo
   convoy"). Returns the call's result (errno set), or -1 with errno
   ETIMEDOUT when fd was not ready within timeout_ns; raises the stop error. */
static ssize_t sock_io(lua_State *L, int fd, int is_send, void *buf, size_t n, int64_t timeout_ns) {
  short events = is_send ? POLLOUT : POLLIN;
  struct pollfd p = { fd, events, 0 };
  int ready = poll(&p, 1, 0) > 0;
  if (!ready && timeout_ns == 0) {
    errno = ETIMEDOUT;
    return -1;
  }
  uint64_t began = lio_release();
  ssize_t r = -1;
  int err = ETIMEDOUT;
  if (!ready) {
    int w = lio_wait_fd(fd, events, timeout_ns);
    ready = w > 0;
    if (w < 0) err = EINTR; /* stopping: rt_check_stop raises below */
  }
  if (ready) {
    r = is_send ? send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) : recv(fd, buf, n, MSG_DONTWAIT);
    err = errno;
  }
  lio_retake(began);
  rt_check_stop(L);
  errno = err;
  return r;
}

/* srv:accept([timeout]) */
static int l_accept(lua_State *L) {
  sock *s = check_sock(L, 1, LISTENER_MT, "accept");
  int64_t timeout = args_opt_timeout(L, 2);
  for (;;) {
    if (!wait_for(L, s->fd, POLLIN, timeout)) {
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      return 2;
    }
    int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
      no_delay(fd);
      new_sock(L, fd, CONN_MT);
      return 1;
    }
    if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) return luaL_error(L, "accept: %s", strerror(errno));
  }
}

/* gil.connect(host, port [, timeout]) */
static int g_connect(lua_State *L) {
  if (sim_on()) return luaL_error(L, "gil.connect: sockets are not simulated yet (--sim)");
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  int64_t timeout = args_opt_timeout(L, 3);
  struct sockaddr_in a;
  address(L, "connect", host, port, &a);
  sock *s = new_sock(L, -1, CONN_MT);
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->fd < 0) return fail(L, "connect", host, port, errno);
  int err = 0;
  if (connect(s->fd, (struct sockaddr *)&a, sizeof a) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      if (!wait_for(L, s->fd, POLLOUT, timeout)) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2; /* the socket is closed when collected */
      }
      socklen_t n = sizeof err;
      getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &n);
    }
  }
  if (err) {
    close(s->fd);
    s->fd = -1;
    return fail(L, "connect", host, port, err);
  }
  int fl = fcntl(s->fd, F_GETFL);
  fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK);
  no_delay(s->fd);
  return 1;
}

/* c:send(s): all of s, GIL released around each send (see sock_io). */
static int c_send(lua_State *L) {
  sock *s = check_sock(L, 1, CONN_MT, "send");
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  size_t done = 0;
  while (done < len) {
    ssize_t r = sock_io(L, s->fd, 1, (char *)data + done, len - done, -1);
    if (r > 0)
      done += (size_t)r;
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return luaL_error(L, "send: %s", strerror(errno));
  }
  lua_pushinteger(L, (lua_Integer)len);
  return 1;
}

/* c:recv([n [, timeout]]): up to n bytes; nil, "closed" at the peer's end; nil, "timeout". */
static int c_recv(lua_State *L) {
  sock *s = check_sock(L, 1, CONN_MT, "recv");
  lua_Integer n = luaL_optinteger(L, 2, 4096);
  luaL_argcheck(L, n > 0 && n <= (1 << 30), 2, "byte count out of range");
  int64_t timeout = args_opt_timeout(L, 3);
  luaL_Buffer b;
  char *buf = luaL_buffinitsize(L, &b, (size_t)n); /* anchored on this thread's stack while released */
  for (;;) {
    ssize_t r = sock_io(L, s->fd, 0, buf, (size_t)n, timeout);
    if (r > 0) {
      luaL_pushresultsize(&b, (size_t)r);
      return 1;
    }
    if (r < 0 && errno == ETIMEDOUT) {
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      return 2;
    }
    if (r == 0 || errno == ECONNRESET) {
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return luaL_error(L, "recv: %s", strerror(errno));
  }
}

static int s_close(lua_State *L) {
  sock *s = lua_touserdata(L, 1);
  if (s && s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  return 0;
}

static int l_close(lua_State *L) {
  luaL_checkudata(L, 1, LISTENER_MT);
  return s_close(L);
}

static int c_close(lua_State *L) {
  luaL_checkudata(L, 1, CONN_MT);
  return s_close(L);
}

static int s_tostring(lua_State *L) {
  sock *s = lua_touserdata(L, 1);
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__name");
  const char *kind = strcmp(lua_tostring(L, -1), LISTENER_MT) == 0 ? "listener" : "connection";
  if (s->fd < 0)
    lua_pushfstring(L, "%s (closed)", kind);
  else
    lua_pushfstring(L, "%s (fd %d)", kind, s->fd);
  return 1;
}

static const luaL_Reg socket_mm[] = {
  { "__gc", s_close },
  { "__close", s_close },
  { "__tostring", s_tostring },
  { NULL, NULL },
};

static const luaL_Reg listener_methods[] = {
  { "port", l_port },
  { "accept", l_accept },
  { "close", l_close },
  { NULL, NULL },
};

static const luaL_Reg conn_methods[] = {
  { "send", c_send },
  { "recv", c_recv },
  { "close", c_close },
  { NULL, NULL },
};

void sockets_open(lua_State *L) {
  args_metatable(L, LISTENER_MT, listener_methods, socket_mm);
  args_metatable(L, CONN_MT, conn_methods, socket_mm);
  lua_pushcfunction(L, g_listen);
  lua_setfield(L, -2, "listen");
  lua_pushcfunction(L, g_connect);
  lua_setfield(L, -2, "connect");
}
