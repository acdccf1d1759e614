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
 *
 * UNDER --sim only one simulated thread runs at a time, so a real blocking
 * wait for another simulated worker would hang. Each socket end this
 * process opens is listed by its address (sim_end): a listener by its port,
 * a connection by its local address. A connection whose peer is listed is
 * between gilvm's own workers: its waits block in virtual time on the end's
 * channels (rd: something to read or accept; wr: room to send), and every
 * send, connect and close wakes the peer end's rd, every recv its wr. A
 * woken waiter polls for real (the peer's call has already run, so the
 * kernel delivers at once on loopback; at most SIM_DELIVERY_MS). A socket
 * whose peer is not listed (another program) waits for real, holding the
 * baton (its timeout in real time); each connect, send and recv on it
 * costs a wake-up of virtual time, whatever the real time was.
 * A listener's accept waits in virtual time for gilvm's own connectors; an
 * outside client is accepted only if it is already queued when it looks.
 */
#include "sockets.h"

#include <lauxlib.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "lio.h"
#include "check.h"
#include "clock.h"
#include "runtime.h"
#include "sim.h"
#include "vec.h"

#define LISTENER_MT "gil.listener"
#define CONN_MT "gil.connection"

typedef struct sock {
  int fd; /* -1 once closed */
} sock;

/* ---- --sim: socket ends between gilvm's own workers (see the top) ---- */

#define SIM_DELIVERY_MS 1000 /* a woken waiter's real poll: the kernel's loopback delivery */

typedef struct sim_end {
  uint32_t ip, peer_ip; /* network order; ip 0: a listener on every address */
  uint16_t port, peer_port; /* network order; peer_port 0: a listener */
  char rd, wr; /* channels: their addresses are what waiters block on */
} sim_end;

static pthread_mutex_t ends_mu = PTHREAD_MUTEX_INITIALIZER;
static sim_end **ends; /* never freed: a channel must outlive its waiters */
static int nends;
static size_t capends;

/* The end (ip:port, to peer_ip:peer_port), made if make; when looked up, a
   listener on every address matches any ip. */
static sim_end *end_at(const struct sockaddr_in *me, const struct sockaddr_in *peer, int make) {
  uint32_t pip = peer ? peer->sin_addr.s_addr : 0;
  uint16_t pport = peer ? peer->sin_port : 0;
  sim_end *e = NULL;
  PT_CHECK(pthread_mutex_lock(&ends_mu));
  for (int i = 0; i < nends && !e; i++) {
    sim_end *x = ends[i];
    if (x->port == me->sin_port && x->peer_ip == pip && x->peer_port == pport &&
        (x->ip == me->sin_addr.s_addr || (!make && !pport && x->ip == 0)))
      e = x;
  }
  if (!e && make && (e = calloc(1, sizeof *e)) != NULL) {
    *e = (sim_end){ me->sin_addr.s_addr, pip, me->sin_port, pport, 0, 0 };
    if (VEC_PUSH(ends, nends, capends, e) != 0) {
      free(e);
      e = NULL;
    }
  }
  PT_CHECK(pthread_mutex_unlock(&ends_mu));
  return e;
}

/* fd's addresses: its own, and its peer's (a connection); 0 if not IPv4. */
static int addrs(int fd, struct sockaddr_in *me, struct sockaddr_in *peer) {
  socklen_t n = sizeof *me;
  if (getsockname(fd, (struct sockaddr *)me, &n) != 0 || me->sin_family != AF_INET) return 0;
  n = sizeof *peer;
  return !peer || (getpeername(fd, (struct sockaddr *)peer, &n) == 0 && peer->sin_family == AF_INET);
}

/* List fd (a listener: listener != 0): its waiters block on its end's channels. */
static sim_end *list_end(int fd, int listener) {
  struct sockaddr_in me, peer;
  return addrs(fd, &me, listener ? NULL : &peer) ? end_at(&me, listener ? NULL : &peer, 1) : NULL;
}

/* The end at the other side of connection fd, seen from there: the peer's
   connection if listed, else (want_listener) the listener it connected to. */
static sim_end *peer_end(int fd, int want_listener) {
  struct sockaddr_in me, peer;
  if (!addrs(fd, &me, &peer)) return NULL;
  sim_end *e = end_at(&peer, &me, 0);
  return e || !want_listener ? e : end_at(&peer, NULL, 0);
}

/* After a call on connection fd: wake whoever waits at the other side for what it may have made ready. */
static void sim_poke(int fd, int rd, int wr) {
  if (!sim_on()) return;
  sim_end *p = peer_end(fd, rd == 2);
  if (p && rd) sim_wake(&p->rd, 1);
  if (p && wr) sim_wake(&p->wr, 1);
}

/* lio_wait_fd on the real clock (under --sim, clock_now_ns is virtual and
   stands still while the simulator waits for the outside): 1 ready, 0 timed
   out, -1 stopping. */
static int real_wait_fd(int fd, short events, int64_t timeout_ns) {
  uint64_t end = timeout_ns < 0 ? 0 : clock_real_ns() + (uint64_t)timeout_ns;
  for (;;) {
    if (atomic_load(&rt_current->stop)) return -1;
    int ms = 50; /* a slice: the stop is looked at between them */
    if (end) {
      uint64_t now = clock_real_ns();
      if (now >= end) return 0;
      if ((end - now + 999999) / 1000000 < (uint64_t)ms) ms = (int)((end - now + 999999) / 1000000);
    }
    struct pollfd p = { fd, events, 0 };
    int r = poll(&p, 1, ms);
    if (r > 0 || (r < 0 && errno != EINTR)) return 1; /* ready, or an error the next call reports */
  }
}

/* --sim's lio_wait_fd: 1 ready, 0 timed out (virtual), -1 stopping. A
   listener and a connection to gilvm's own workers (its peer is listed, or
   a listed listener: not yet accepted) wait in virtual time; any other
   socket waits for real (see the top). */
static int sim_wait_fd(int fd, short events, int64_t timeout_ns, int listener) {
  sim_end *mine = list_end(fd, listener);
  if (!mine || (!listener && !peer_end(fd, 1))) return real_wait_fd(fd, events, timeout_ns); /* the outside */
  uint64_t until = timeout_ns < 0 ? 0 : clock_now_ns() + (uint64_t)timeout_ns;
  for (;;) {
    struct pollfd p = { fd, events, 0 };
    if (poll(&p, 1, 0) > 0) return 1;
    if (atomic_load(&rt_current->stop)) return -1;
    uint64_t t = clock_now_ns();
    if (until && t >= until) return 0;
    int timed_out = sim_block(events & POLLIN ? (void *)&mine->rd : (void *)&mine->wr, until ? until - t : 0);
    if (!timed_out && poll(&p, 1, SIM_DELIVERY_MS) > 0) return 1; /* woken by the peer: it is on its way */
  }
}

/* --sim: a call on a connection to the outside (its peer not listed) costs a
   wake-up of virtual time, however long it took for real and whether or not
   it waited (so the same run costs the same). Call it with the GIL released. */
static void sim_outside_cost(int fd) {
  if (sim_on() && !peer_end(fd, 1)) sim_block(NULL, sim_cost(SIM_COST_WAKE));
}

/* --sim: a send or recv between gilvm's own workers costs `socket` of CPU (loopback TCP runs
   the receiver's side too), GIL released. A call to the outside pays sim_outside_cost instead. */
static void sim_socket_cost(int fd) {
  if (sim_on() && peer_end(fd, 1)) sim_charge(sim_cost(SIM_COST_SOCKET));
}

static int wait_fd(int fd, short events, int64_t timeout_ns, int listener) {
  return sim_on() ? sim_wait_fd(fd, events, timeout_ns, listener) : lio_wait_fd(fd, events, timeout_ns);
}

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
  if (sim_on()) list_end(s->fd, 1); /* listed: a connection to it is between gilvm's own workers */
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
static int wait_for(lua_State *L, int fd, short events, int64_t timeout_ns, int listener) {
  struct pollfd p = { fd, events, 0 };
  if (poll(&p, 1, 0) > 0) return 1; /* ready now: no release */
  if (timeout_ns == 0) return 0;
  uint64_t began = lio_release();
  int r = wait_fd(fd, events, timeout_ns, listener);
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
    int w = wait_fd(fd, events, timeout_ns, 0);
    ready = w > 0;
    if (w < 0) err = EINTR; /* stopping: rt_check_stop raises below */
  }
  if (ready) {
    r = is_send ? send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) : recv(fd, buf, n, MSG_DONTWAIT);
    err = errno;
    if (r >= 0) {
      sim_socket_cost(fd); /* before the peer hears of it: the kernel's work comes first */
      sim_poke(fd, is_send, !is_send); /* a send: something to read; a recv: room to send */
    }
  }
  sim_outside_cost(fd);
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
    if (!wait_for(L, s->fd, POLLIN, timeout, 1)) {
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      return 2;
    }
    int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
      if (sim_on()) list_end(fd, 0);
      no_delay(fd);
      new_sock(L, fd, CONN_MT);
      return 1;
    }
    if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) return luaL_error(L, "accept: %s", strerror(errno));
  }
}

/* gil.connect(host, port [, timeout]) */
static int g_connect(lua_State *L) {
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
      /* not connected yet, so no peer: a real wait under --sim too (a listener's kernel completes it) */
      if (!wait_for(L, s->fd, POLLOUT, timeout, 0)) {
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
  if (sim_on()) {
    list_end(s->fd, 0); /* listed before the acceptor looks at its peer */
    sim_poke(s->fd, 2, 0); /* the listener's accept */
    uint64_t began = lio_release();
    sim_outside_cost(s->fd);
    lio_retake(began);
  }
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
    sim_poke(s->fd, 1, 1); /* the peer's recv sees the end, its send an error */
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
