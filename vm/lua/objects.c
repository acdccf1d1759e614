/*
 * objects.c — gilvm's shared objects as Lua sees them: gil.lock, gil.rlock,
 * gil.queue, gil.value, gil.array, gil.event, gil.semaphore, gil.condition,
 * gil.barrier, gil.pipe; gil.pool, gil.wait and gil.as_completed (written in
 * Lua, vm/lua/pool.lua, built on queues); hold(), a to-be-closed holder; and
 * the deadlock detector (below).
 *
 * WHERE THE OBJECTS LIVE. Not in any Lua state: in the arena of vm/share/shared.c,
 * one MAP_SHARED mapping made by rt_create before any worker exists. Every
 * thread of the process and every process forked from it sees the same
 * bytes, so one implementation serves the three modes, and gil.process
 * workers in any mode, with the same API. What a Lua state holds is a
 * HANDLE: a small userdata with the object's offset in the arena.
 *
 * WHY OFFSETS. An offset means the same object in every interpreter and
 * every process, whatever address the arena has there, and it is cheap to
 * validate: the codecs registered with the marshaller (mar_register_udata)
 * write a handle as its kind and offset, and the decoder checks with
 * shm_obj_type() that a live object of that kind is there before it builds a
 * handle. So a lock, a queue or a value can be an argument of gil.spawn in
 * nogil mode, an item of another queue, a result, an upvalue... Within one
 * interpreter a registry table with weak values maps offset -> handle, so a
 * handle that comes back (through a queue, a result) is the very same
 * userdata and `==` holds.
 *
 * REFERENCE COUNTING, AND WHY RELEASE IS GUARDED BY A PID. Creating an
 * object gives its handle one reference; a handle decoded in another
 * interpreter retains one of its own; __gc releases it, and the last release
 * destroys the object. A forked child, though, starts with a copy of its
 * parent's Lua heap, handles included, without having retained anything:
 * those references are the parent's. If the child's collector released them,
 * objects the parent still uses would be destroyed under it. So a handle
 * records the pid that holds its reference and __gc releases only when
 * getpid() matches; a child leans on its parent's references, exactly as it
 * leans on everything else it inherited. (Consequence: an object must stay
 * referenced in the process that sent or forked it until the receiver has
 * it; a variable in scope is enough. A handle a fork child decodes is
 * retained for that child, which exits without collecting: such a reference
 * is only given back when the run ends.)
 *
 * QUEUES: REFERENCE OR COPY. A queue item is stored in the arena as bytes:
 * 'C' and the marshaller's encoding of the value (a copy, like
 * multiprocessing.Queue), or 'R', the putter's pid and interpreter, and a
 * registry reference to the value itself (like queue.Queue: the receiver
 * gets the same table). A put passes a reference only when it is certain
 * that whoever gets the item runs in the same Lua state: gil mode, the caller
 * is a thread of the main interpreter, no process worker has been started
 * in this run (runtime.forked: the one that is would share the queue but not
 * the heap), and this handle was never encoded (it may have reached another
 * interpreter). Everything else copies. A reference item that still reaches
 * another process raises a clear error there.
 *
 * LOCKS. An shm_lock is owned by a token and the OS thread that acquired it;
 * the token here is pid << 32 | (worker id + 1), unique per worker per
 * process. Because the lock is a robust mutex, a process or thread that dies
 * holding it (a process that exits, a worker thread whose function returns
 * with the lock held) is noticed by the next acquirer: it gets "lock owner
 * died while holding it" and the lock is free again. A process-wide table
 * (offset -> token) remembers which of this process's workers hold which
 * lock: it makes a second acquire by the holder an error (the lock is not
 * re-entrant) and names the holder in release errors. It is emptied in a
 * forked child, whose only thread holds nothing (its token has a different
 * pid), and an entry is dropped when its lock is destroyed, so that a new
 * lock at the same offset does not look held.
 *
 * BLOCKING. Every call that may wait first tries without waiting, GIL held;
 * only if it must wait does it release the GIL (rt_block_begin/end, which
 * account the time as blocked on a lock or a queue), passing rt_should_stop
 * so that a timeout or Ctrl-C interrupts the wait, and afterwards raises the
 * stop error with rt_check_stop.
 *
 * POOLS. vm/lua/pool.lua, embedded at build time (tools/embed.py), is compiled
 * the first time gil.pool is called in an interpreter. A pool registers its
 * two queues here: the registration keeps them alive while the pool's
 * process workers, which hold no reference of their own, may use them, and
 * lets the end of the run (objects_close_pools, the runtime's
 * before_wait_all) close the task queues of pools nobody closed, so that
 * their workers finish instead of waiting for work forever.
 */
#include "objects.h"

#include <lauxlib.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "exits.h"
#include "marshal.h"
#include "pool_lua.h"
#include "args.h"
#include "runtime.h"
#include "shared.h"
#include "vec.h"

#define LOCK_MT "gil.lock"
#define QUEUE_MT "gil.queue"
#define VALUE_MT "gil.value"
#define RLOCK_MT "gil.rlock"
#define EVENT_MT "gil.event"
#define SEM_MT "gil.semaphore"
#define BARRIER_MT "gil.barrier"
#define COND_MT "gil.condition"
#define ARRAY_MT "gil.array"
#define PIPE_MT "gil.pipe_end" /* not "gil.connection": a socket's (sockets.c) */
#define HOLD_MT "gil.hold" /* what hold() returns: a to-be-closed value that releases */
#define CACHE_KEY "gil.objects" /* registry: offset -> handle, weak values */
#define POOL_KEY "gil.pool.lib" /* registry: pool.lua's functions, once loaded */

static const struct {
  const char *mt, *what;
} kinds[] = {
  [SHM_T_LOCK] = { LOCK_MT, "lock" },          [SHM_T_QUEUE] = { QUEUE_MT, "queue" },
  [SHM_T_VALUE] = { VALUE_MT, "value" },       [SHM_T_RLOCK] = { RLOCK_MT, "rlock" },
  [SHM_T_EVENT] = { EVENT_MT, "event" },       [SHM_T_SEMAPHORE] = { SEM_MT, "semaphore" },
  [SHM_T_BARRIER] = { BARRIER_MT, "barrier" }, [SHM_T_CONDITION] = { COND_MT, "condition" },
  [SHM_T_ARRAY] = { ARRAY_MT, "array" },       [SHM_T_PIPE] = { PIPE_MT, "pipe end" },
};

typedef struct handle {
  shm_off off; /* the object; 0 before it exists or once released */
  pid_t pid; /* the process whose reference this handle holds */
  int type; /* SHM_T_* */
  int crossed; /* it has been encoded: it may be in another interpreter */
  int closed; /* pipe end: close() was called on this handle */
} handle;

/* ------------------------------------------------------------ plumbing */

/* --sim: what a simulated wait on any shared object waits on. Every use of
   the arena (every method of every object) wakes them all to look again: more
   wake-ups than needed, never one too few, and no object needs its own. */
static const char sim_objects = 0;

static shm_arena *arena_quiet(lua_State *L) {
  shm_arena *a = rt_current ? rt_current->arena : NULL;
  if (!a) luaL_error(L, "shared objects are unavailable: the shared memory arena could not be mapped");
  if (sim_on()) sim_wake(&sim_objects, 1);
  return a;
}

/* The arena for a method about to use its object: under --sim, a race point
   first (free workers interleave here in virtual-time order, sim_race_point). */
static shm_arena *arena(lua_State *L) {
  if (sim_on()) sim_race_point();
  return arena_quiet(L);
}

/* --sim: try `fn` without waiting until it is not SHM_TIMEOUT, the virtual
   timeout passes (< 0: none) or the run stops; between tries, blocked in
   virtual time until some object is used. */
static int sim_wait(shm_arena *a, int (*fn)(shm_arena *, shm_off, const struct timespec *, shm_stop_fn, void *, void *),
                    shm_off off, int64_t timeout, void *ctx) {
  uint64_t until = timeout < 0 ? 0 : clock_now_ns() + (uint64_t)timeout;
  for (;;) {
    struct timespec now = shm_deadline_in(0);
    int rc = fn(a, off, &now, NULL, NULL, ctx);
    if (rc != SHM_TIMEOUT) return rc;
    if (atomic_load(&rt_current->stop)) return SHM_STOPPED;
    uint64_t t = clock_now_ns();
    if (until && t >= until) return SHM_TIMEOUT;
    sim_block(&sim_objects, until ? until - t : 0);
  }
}

/* --sim: a wait that cannot be tried without waiting (a barrier's: a try
   would count as an arrival; a condition's: it must give up the lock) runs
   shm's own wait, whose kernel sleeps shm_sleep_hook turns into blocks in
   virtual time (sim_sleep). Its timeout is virtual too: shm is given a far
   deadline, which sim_sleep moves into the past once the virtual one passes. */
static struct timespec deadline_of(int64_t timeout_ns);

typedef struct sim_pause {
  uint64_t until; /* virtual; 0: none */
  struct timespec deadline; /* what shm is given */
} sim_pause;

static void sim_sleep(void *arg) {
  sim_pause *p = arg;
  uint64_t t = clock_now_ns();
  if (!p->until || t < p->until) sim_block(&sim_objects, p->until ? p->until - t : 0);
  if (p->until && clock_now_ns() >= p->until) p->deadline = (struct timespec){ 0, 0 }; /* shm: timed out */
}

/* The deadline to give shm for a wait of timeout ns (< 0: none); under --sim, arms p. */
static const struct timespec *wait_deadline(int64_t timeout, sim_pause *p) {
  if (!sim_on()) {
    p->deadline = deadline_of(timeout);
    return timeout < 0 ? NULL : &p->deadline;
  }
  p->until = timeout < 0 ? 0 : clock_now_ns() + (uint64_t)timeout;
  p->deadline = shm_deadline_in(86400.0 * 365); /* passed only by sim_sleep */
  shm_sleep_hook(sim_sleep, p);
  return timeout < 0 ? NULL : &p->deadline;
}

static rt_worker *self(lua_State *L) {
  rt_worker *me = rt_self();
  if (!me) luaL_error(L, "shared objects can only be used from a gilvm worker");
  return me;
}

/* The absolute deadline of a timeout taken at the start of a call. */
static struct timespec deadline_of(int64_t timeout_ns) {
  return shm_deadline_in(timeout_ns > 0 ? (double)timeout_ns / 1e9 : 0);
}

static handle *check(lua_State *L, int idx, int type) {
  handle *h = luaL_checkudata(L, idx, kinds[type].mt);
  if (!h->off) luaL_error(L, "this %s handle has been released", kinds[type].what);
  return h;
}

/* Remember h (at the top of the stack) as this interpreter's handle of its object. */
static void cache_put(lua_State *L, shm_off off) {
  lua_getfield(L, LUA_REGISTRYINDEX, CACHE_KEY);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (lua_Integer)off);
  }
  lua_pop(L, 1);
}

/* A handle with no object yet: the caller creates the object and sets off. */
static handle *new_handle(lua_State *L, int type) {
  handle *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->off = 0;
  h->pid = 0;
  h->type = type;
  h->crossed = 0;
  h->closed = 0;
  luaL_setmetatable(L, kinds[type].mt);
  return h;
}

static void adopt(lua_State *L, handle *h, shm_off off) {
  h->off = off;
  h->pid = rt_pid();
  cache_put(L, off);
}

static void held_clear(shm_off off);

static int obj_gc(lua_State *L) {
  handle *h = lua_touserdata(L, 1);
  shm_arena *a = rt_current ? rt_current->arena : NULL;
  if (h && h->off && h->pid == rt_pid() && a) {
    if (h->type == SHM_T_PIPE && !h->closed) shm_pipe_open(a, h->off, -1); /* this copy is gone */
    shm_obj_release(a, h->off);
    /* a lock destroyed while held (by the thread that dropped it last): forget
       its holder, or a new lock at the same offset would seem held */
    if ((h->type == SHM_T_LOCK || h->type == SHM_T_RLOCK) && shm_obj_type(a, h->off) != h->type) held_clear(h->off);
  }
  if (h) h->off = 0;
  return 0;
}

static int obj_eq(lua_State *L) {
  handle *a = lua_touserdata(L, 1), *b = lua_touserdata(L, 2);
  lua_pushboolean(L, a && b && a->type == b->type && a->off == b->off && a->off);
  return 1;
}

static int obj_tostring(lua_State *L) {
  handle *h = lua_touserdata(L, 1);
  lua_pushfstring(L, "gil.%s: %p", kinds[h->type].what, (void *)(uintptr_t)h->off);
  return 1;
}

/* ---------------------------------------------- codecs for the marshaller */

#define HANDLE_BYTES 9 /* kind, then the offset (host order: the same host) */

static int enc_handle(lua_State *L, int idx, unsigned char *out, size_t cap) {
  handle *h = lua_touserdata(L, idx);
  if (!h || !h->off || cap < HANDLE_BYTES) return -1;
  out[0] = (unsigned char)h->type;
  memcpy(out + 1, &h->off, sizeof h->off);
  h->crossed = 1;
  return HANDLE_BYTES;
}

static int push_handle(lua_State *L, shm_off off, int type);

static int dec_handle(lua_State *L, const unsigned char *p, size_t len, int type) {
  shm_off off;
  if (len != HANDLE_BYTES || p[0] != type) return luaL_error(L, "malformed %s handle", kinds[type].what);
  memcpy(&off, p + 1, sizeof off);
  return push_handle(L, off, type);
}

/* Push this interpreter's handle of the object at off (made, and a
 * reference retained, if there is none yet). */
static int push_handle(lua_State *L, shm_off off, int type) {
  const char *what = kinds[type].what;
  shm_arena *a = arena_quiet(L); /* inside a decode: no race point */
  if (shm_obj_type(a, off) != type) return luaL_error(L, "the shared %s no longer exists", what);
  int top = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, CACHE_KEY);
  if (lua_istable(L, -1) && lua_rawgeti(L, -1, (lua_Integer)off) == LUA_TUSERDATA) {
    handle *h = lua_touserdata(L, -1);
    /* the same object, already here (possibly the parent's handle in a fork
       child: it leans on the parent's reference, like the rest of its heap) */
    if (h->off == off && h->type == type) {
      lua_remove(L, top + 1);
      return 0;
    }
  }
  lua_settop(L, top);
  handle *h = new_handle(L, type);
  if (shm_obj_retain(a, off) != SHM_OK) return luaL_error(L, "the shared %s no longer exists", what);
  adopt(L, h, off);
  if (type == SHM_T_PIPE) shm_pipe_open(a, off, 1); /* one more open copy of this end */
  return 0;
}

/* One decoder per kind (the marshaller passes no kind). */
#define DECODER(name, type) \
  static int name(lua_State *L, const unsigned char *p, size_t len) { return dec_handle(L, p, len, type); }
DECODER(dec_lock, SHM_T_LOCK)
DECODER(dec_queue, SHM_T_QUEUE)
DECODER(dec_value, SHM_T_VALUE)
DECODER(dec_rlock, SHM_T_RLOCK)
DECODER(dec_event, SHM_T_EVENT)
DECODER(dec_sem, SHM_T_SEMAPHORE)
DECODER(dec_barrier, SHM_T_BARRIER)
DECODER(dec_cond, SHM_T_CONDITION)
DECODER(dec_array, SHM_T_ARRAY)
DECODER(dec_pipe, SHM_T_PIPE)

static const mar_udata_decode decoders[SHM_T_NKINDS] = {
  [SHM_T_LOCK] = dec_lock,   [SHM_T_QUEUE] = dec_queue,   [SHM_T_VALUE] = dec_value,     [SHM_T_RLOCK] = dec_rlock,
  [SHM_T_EVENT] = dec_event, [SHM_T_SEMAPHORE] = dec_sem, [SHM_T_BARRIER] = dec_barrier, [SHM_T_CONDITION] = dec_cond,
  [SHM_T_ARRAY] = dec_array, [SHM_T_PIPE] = dec_pipe,
};

/* ------------------------------- process-wide state: lock holders, pools */

static pthread_mutex_t objects_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct held_lock {
  shm_off off;
  uint64_t token;
} held_lock;

static held_lock *held_locks; /* locks held by this process's workers */
static int nheld_locks;
static size_t cap_held_locks;

typedef struct pool_reg {
  long id;
  pid_t pid;
  shm_off tasks, results;
  const rt_worker *proc; /* --sim: the simulated process that made it (NULL: gilvm's own) */
} pool_reg;

static pool_reg *pools; /* pools whose queues are kept alive here */
static int npools;
static size_t cappools;
static long next_pool_id;

/* ------------------------------------------------- deadlock detection
 *
 * A waits-for graph over every process's workers, kept on the arena's wait
 * board (shared.c). A worker about to wait WITHOUT a timeout puts an entry
 * there: what for (a lock or rlock by offset, or the end of another worker:
 * a join), its name, file:line. An edge leads from a waiter to whoever can
 * end its wait: the lock's holder (its token, read from the arena) or the
 * joined worker. A condition waiter that was notified waits, from then on,
 * to take the condition's lock back (with no timeout, as Python does): an
 * edge to that lock's holder; one that is still on the condition's list has
 * none. (Notified is for good: the entry is removed before any next wait,
 * which changes the board's version.) A cycle of such edges is a deadlock,
 * never a guess: each waits for the next, none can give up (no timeout),
 * and only the next can release what it waits for (a lock only its holder,
 * a join only the end of that worker), which it will not, as it waits too.
 * The search reads the board, then the locks' holders, then the board's
 * version again: if no wait began or ended meanwhile, every member was
 * waiting all along, so no holder along the cycle can have changed. A chain
 * that reaches a free lock, a worker that is not waiting (running,
 * sleeping, waiting with a timeout) or a process that is gone ends the
 * search.
 *
 * Who looks: a thread of the main process right after it puts its own entry
 * (the last of a cycle to start waiting sees it whole), and gilvm's watchdog
 * in the main process every 100 ms (a cycle closed in a process worker, or
 * among threads of one). The first to find one prints it and stops the run
 * with EXIT_DEADLOCK.
 *
 * EVERYBODY WAITING. Waits on a queue (get, put, join), a pipe, an event, a
 * semaphore, a condition or a barrier are no edges: anybody could end them.
 * But when every live worker waits without a timeout, nobody is left to end
 * any of them. The watchdog checks that too, in this order: the board (and
 * its version); each wait's object, that what it waits for is still not
 * there (no item, event clear, no permit, lock held by another, joined
 * worker not done, the waiter's node on the condition not yet notified or,
 * notified, its lock held by another, the barrier's round it arrived in not
 * over nor broken); each waiter's "asleep" word (shm_sleep_note: set while
 * it sleeps in the kernel, cleared as it wakes, BEFORE it looks at the
 * object); the version again. A waiter that was woken and has not yet taken
 * what woke it leaves the object showing it; one that has taken it has
 * cleared its word. A worker that sleeps, reads a file or a socket or runs
 * C code is not waiting. A process worker (gil.process, every worker in
 * fork mode) runs threads the main process does not know: it publishes on
 * the board how many of its threads may still act (shm_board_proc: one at
 * its start, one more per worker it starts, one fewer as a thread finishes;
 * a process of its own is never taken off, so such a process is never
 * counted as waiting), and it waits when that many of its entries are on
 * the board, each unmet and asleep. */

enum {
  WAIT_LOCK = 1,
  WAIT_JOIN,
  WAIT_GET,
  WAIT_PUT,
  WAIT_QJOIN,
  WAIT_RECV,
  WAIT_EVENT,
  WAIT_SEM,
  WAIT_COND,
  WAIT_BARRIER
};

#define CYCLE_MAX 64 /* members of a cycle printed (at most BOARD_READ) */

static atomic_int deadlock_reported; /* one message per run */
static atomic_long deadlock_checks; /* the watchdog's looks so far (gil._debug().checks) */
static _Thread_local int board_slot = -1; /* this thread's entry on the board while it waits */

static uint64_t token_of(rt_worker *me);

/* "file:line" of the running Lua function's caller, into buf. (Only for
 * waits: at every acquire it would cost more than the acquire itself.) */
static const char *where_of(lua_State *L, char *buf, size_t len) {
  lua_Debug ar;
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
    snprintf(buf, len, "%s:%d", ar.short_src, ar.currentline);
  else
    snprintf(buf, len, "?");
  return buf;
}

/* Is pid a live process (not gone, not a zombie)? */
static int process_lives(pid_t pid) {
  if (pid == rt_pid()) return 1;
  if (kill(pid, 0) != 0 && errno == ESRCH) return 0;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  /* open and read, not stdio: the watchdog runs this while another thread may fork, and a fork
     that copies an allocator lock held by this thread deadlocks the child (ASan's allocator has
     no fork handlers; glibc's malloc has) */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = 0;
  const char *p = strrchr(buf, ')'); /* the state follows the command's name */
  return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* A condition waiter no longer on the condition's list (notified) takes the
 * condition's lock back, with no timeout: from then on it waits as for that
 * lock. Its holder then, or 0 (still waiting to be notified, the lock free,
 * or held by the waiter itself: before it gave it up, or once it got it back). */
static uint64_t cond_retake_holder(shm_arena *a, const shm_wait *w) {
  if (!w->obj || shm_cond_waiting(a, w->obj, w->token)) return 0;
  shm_off lk = shm_cond_lock(a, w->obj);
  uint64_t owner = lk ? shm_lock_owner(a, lk) : 0;
  return owner == w->token ? 0 : owner;
}

/* Who alone can end w (an edge of the graph), or 0. */
static uint64_t wait_holder(shm_arena *a, const shm_wait *w) {
  if (w->kind == WAIT_JOIN) return w->on;
  if (w->kind == WAIT_COND) return cond_retake_holder(a, w);
  return w->kind == WAIT_LOCK && w->obj ? shm_lock_owner(a, w->obj) : 0;
}

#define BOARD_READ 64 /* entries one search looks at; more only means a cycle may be missed */

/* What the message needs from w's object, noted while a read retains it
 * (the copy's obj is then cleared: the reference is the read's to give back). */
static void note_for_message(shm_arena *a, shm_wait *w) {
  w->detail = w->obj ? (uint32_t)shm_obj_type(a, w->obj) : 0;
  w->held_by = w->kind == WAIT_LOCK || w->kind == WAIT_COND ? wait_holder(a, w) : 0;
  w->obj = 0;
}

/* Looks for a cycle on the board and fills cycle[] (each member waits for
 * the next, the last for the first); returns its length, or 0. A cycle
 * through a process that is gone (a killed process leaves its entries
 * behind) is none: those entries are removed and the search made again. */
static int find_cycle(shm_arena *a, shm_wait *cycle) {
  shm_wait all[BOARD_READ];
  for (int attempt = 0; attempt < 2; attempt++) {
    uint64_t v1;
    int n = shm_board_read(a, all, BOARD_READ, &v1), found = 0;
    for (int s = 0; s < n && !found; s++) {
      int path[BOARD_READ], len = 0;
      for (int cur = s; cur >= 0 && len < BOARD_READ && !found;) {
        path[len++] = cur;
        uint64_t holder = wait_holder(a, &all[cur]);
        int next = -1;
        for (int k = 0; holder && holder != all[cur].token && k < n; k++)
          if (all[k].token == holder) next = k;
        for (int k = 0; next >= 0 && k < len; k++)
          if (path[k] == next) { /* back on the path: path[k..] is a cycle */
            for (int m = k; m < len && found < CYCLE_MAX; m++) cycle[found++] = all[path[m]];
            break;
          }
        cur = next;
      }
    }
    for (int i = 0; i < found; i++) note_for_message(a, &cycle[i]);
    shm_board_unread(a, all, n);
    if (!found || shm_board_version(a) != v1) return 0; /* none, or someone started or stopped waiting */
    int dead = 0;
    for (int i = 0; i < found; i++)
      if (!process_lives((pid_t)(cycle[i].token >> 32))) {
        shm_board_remove(a, cycle[i].token);
        dead = 1;
      }
    if (!dead) return found;
  }
  return 0;
}

/* One line of a deadlock's message: who waits where for what. */
static void print_wait(shm_arena *a, const shm_wait *w, const shm_wait *all, int n) {
  void *obj = (void *)(uintptr_t)w->on;
  const char *holder = "?";
  uint64_t h = w->kind == WAIT_JOIN ? w->on : w->held_by;
  for (int i = 0; h && i < n; i++)
    if (all[i].token == h) holder = all[i].name;
  fprintf(stderr, "  '%s' waits at %s ", w->name, w->where);
  switch (w->kind) {
  case WAIT_LOCK:
    fprintf(stderr, "for %s %p, held by '%s'\n", w->detail == SHM_T_RLOCK ? "rlock" : "lock", obj, holder);
    break;
  case WAIT_JOIN: fprintf(stderr, "to join '%s'\n", holder); break;
  case WAIT_GET: fprintf(stderr, "to get an item from queue %p (empty)\n", obj); break;
  case WAIT_PUT: fprintf(stderr, "to put an item on queue %p (full)\n", obj); break;
  case WAIT_QJOIN: fprintf(stderr, "for the tasks of queue %p to be done (join)\n", obj); break;
  case WAIT_RECV: fprintf(stderr, "to receive from a pipe (nothing sent)\n"); break;
  case WAIT_EVENT: fprintf(stderr, "for event %p to be set\n", obj); break;
  case WAIT_SEM: fprintf(stderr, "to acquire semaphore %p (value 0)\n", obj); break;
  case WAIT_COND:
    if (w->held_by)
      fprintf(stderr, "to take back the lock of condition %p (notified), held by '%s'\n", obj, holder);
    else
      fprintf(stderr, "to be notified on condition %p\n", obj);
    break;
  case WAIT_BARRIER: fprintf(stderr, "at barrier %p for the other parties\n", obj); break;
  default: fprintf(stderr, "\n");
  }
}

static void report_deadlock(shm_arena *a, const char *headline, const shm_wait *waits, int n) {
  /* a stop (timeout, Ctrl-C) may leave entries behind (a join raising the stop error): say nothing then */
  if (atomic_load(&rt_current->stop) || atomic_exchange(&deadlock_reported, 1)) return;
  fprintf(stderr, "gilvm: deadlock: %s\n", headline);
  for (int i = 0; i < n; i++) print_wait(a, &waits[i], waits, n);
  fflush(stderr);
  rt_stop(rt_current, EXIT_DEADLOCK, "deadlock");
}

static void report_cycle(shm_arena *a, const shm_wait *cycle, int n) {
  char headline[128];
  snprintf(headline, sizeof headline, "%d worker%s wait%s for each other, none with a timeout:", n, n == 1 ? "" : "s",
           n == 1 ? "s" : "");
  report_deadlock(a, headline, cycle, n);
}

/* With rt->mu held: is worker id of this process done (or gone)? */
static int worker_done(runtime *rt, int id) {
  for (int i = 0; i < rt->nworkers; i++)
    if (rt->workers[i]->id == id) return rt->workers[i]->done;
  return 1;
}

/* Is w's wait still unmet? (Read before its asleep word: see above.) */
static int still_unmet(runtime *rt, const shm_wait *w) {
  shm_arena *a = rt->arena;
  shm_off o = w->obj; /* retained by the read; 0: gone, or nothing to look at */
  switch (w->kind) {
  case WAIT_LOCK: {
    uint64_t owner = o ? shm_lock_owner(a, o) : 0;
    return owner && owner != w->token;
  }
  case WAIT_GET:
  case WAIT_RECV: return o && !shm_queue_closed(a, o) && shm_queue_size(a, o) == 0;
  case WAIT_PUT:
    return o && !shm_queue_closed(a, o) && shm_queue_maxsize(a, o) && shm_queue_size(a, o) >= shm_queue_maxsize(a, o);
  case WAIT_QJOIN: return o && shm_queue_unfinished(a, o) > 0;
  case WAIT_EVENT: return o && !shm_event_is_set(a, o);
  case WAIT_SEM: return o && shm_sem_value(a, o) == 0;
  case WAIT_COND: /* its node not yet notified, or notified and its lock held by another */
    return o && (shm_cond_waiting(a, o, w->token) || cond_retake_holder(a, w));
  case WAIT_BARRIER: /* the generation it arrived in has not gone, nor broken */
    return o && shm_barrier_info(a, o, 3) == (int64_t)w->held_by && !shm_barrier_info(a, o, 2);
  case WAIT_JOIN: { /* a thread of this process, or one of its process workers (by pid and id) */
    pid_t pid = (pid_t)(w->on >> 32);
    int id = (int)(uint32_t)w->on - 1, done = 1;
    PT_CHECK(pthread_mutex_lock(&rt->mu));
    if (pid == rt->pid)
      done = worker_done(rt, id);
    else
      for (int i = 0; i < rt->nworkers; i++) {
        rt_worker *x = rt->workers[i];
        if (x->kind == RT_PROCESS && x->pid == pid && x->id == id) done = x->done;
      }
    PT_CHECK(pthread_mutex_unlock(&rt->mu));
    return !done;
  }
  default: return 0;
  }
}

/* Does every live worker wait, none with a timeout, for something that is
 * not there? A process worker is looked into through the count of its
 * threads that may act, which it publishes on the board (shm_board_proc):
 * it waits when that many entries of its pid are on the board. Fills out[]
 * with their waits. */
static int everybody_waits(runtime *rt, shm_wait *out) {
  shm_arena *a = rt->arena;
  shm_wait all[BOARD_READ];
  uint64_t v1, live[BOARD_READ];
  pid_t procs[BOARD_READ];
  int n = shm_board_read(a, all, BOARD_READ, &v1), nlive = 0, nprocs = 0, ok = 1;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  for (int i = 0; i < rt->nworkers && ok; i++) {
    rt_worker *w = rt->workers[i];
    if (w->done || rt_inherited(rt, w)) continue;
    if (nlive == BOARD_READ || (w->kind == RT_PROCESS && w->pid <= 0))
      ok = 0; /* too many to look at, or a process not started yet: it could end any wait */
    else if (w->kind == RT_PROCESS)
      procs[nprocs++] = w->pid;
    else
      live[nlive++] = (uint64_t)rt->pid << 32 | (uint32_t)(w->id + 1);
  }
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  for (int p = 0; ok && p < nprocs; p++) { /* each process: as many waits on the board as threads that may act */
    int want = shm_board_proc_live(a, (int32_t)procs[p]), got = 0;
    for (int k = 0; k < n && ok; k++)
      if (all[k].token >> 32 == (uint64_t)procs[p]) {
        if (nlive == BOARD_READ)
          ok = 0;
        else
          live[nlive++] = all[k].token, got++;
      }
    ok = ok && want > 0 && got == want && process_lives(procs[p]);
  }
  for (int i = 0; ok && i < nlive; i++) { /* every live worker has a wait, and it is unmet */
    int k = 0;
    while (k < n && all[k].token != live[i]) k++;
    ok = k < n && still_unmet(rt, &all[k]);
    if (ok) out[i] = all[k];
  }
  for (int i = 0; ok && i < nlive; i++) { /* and is asleep on it (a join waits in the runtime, on its worker) */
    _Atomic uint32_t *asleep = shm_board_asleep(a, out[i].slot);
    ok = out[i].kind == WAIT_JOIN || (asleep && atomic_load(asleep));
  }
  for (int i = 0; ok && i < nlive; i++) note_for_message(a, &out[i]);
  shm_board_unread(a, all, n);
  return ok && nlive && shm_board_version(a) == v1 ? nlive : 0;
}

int objects_check_deadlock(runtime *rt) {
  if (!rt || !rt->arena || rt->is_child) return 0;
  shm_wait waits[BOARD_READ];
  int n = find_cycle(rt->arena, waits);
  if (n) {
    report_cycle(rt->arena, waits, n);
    return 1;
  }
  n = everybody_waits(rt, waits);
  if (n)
    report_deadlock(rt->arena,
                    "every worker waits, none with a timeout, for what only another of them could give:", waits, n);
  atomic_fetch_add(&deadlock_checks, 1);
  return n > 0;
}

long objects_deadlock_checks(void) { return atomic_load(&deadlock_checks); }

int objects_board_waits(void) {
  shm_arena *a = rt_current ? rt_current->arena : NULL;
  if (!a) return 0;
  shm_wait all[BOARD_READ];
  int n = shm_board_read(a, all, BOARD_READ, NULL);
  shm_board_unread(a, all, n);
  return n;
}

/* --sim: the simulator found every thread waiting with nothing due (no
 * timer, no wake-up left): certain, so no look at the objects. The same
 * message as the real detector's (a cycle if there is one, else every wait
 * on the board), then the same stop: exit status 4 and the report. */
static void sim_deadlock(const char *names, int nthreads) {
  runtime *rt = rt_current;
  if (!rt || !rt->arena) return;
  shm_wait waits[BOARD_READ];
  int n = find_cycle(rt->arena, waits);
  if (n) {
    report_cycle(rt->arena, waits, n);
    return;
  }
  uint64_t v;
  n = shm_board_read(rt->arena, waits, BOARD_READ, &v);
  for (int i = 0; i < n; i++) note_for_message(rt->arena, &waits[i]);
  shm_board_unread(rt->arena, waits, n);
  if (n < nthreads) { /* some wait gilvm does not name (a socket, a GIL): the simulator's names, then the board's */
    if (atomic_load(&rt->stop) || atomic_exchange(&deadlock_reported, 1)) return;
    fprintf(stderr, "gilvm: deadlock: every worker waits, none with a timeout: %s\n", names);
    for (int i = 0; i < n; i++) print_wait(rt->arena, &waits[i], waits, n);
    fflush(stderr);
    rt_stop(rt, EXIT_DEADLOCK, "deadlock");
    return;
  }
  report_deadlock(rt->arena,
                  "every worker waits, none with a timeout, for what only another of them could give:", waits, n);
}

/* The calling worker is about to wait for (kind, on) without a timeout.
 * wait_note fills in the entry while the GIL is held (it reads the Lua
 * stack); wait_begin, with the GIL released (the board's mutex is shared
 * by every process: no other thread should wait for the GIL meanwhile),
 * puts it on the board and, in the main process, looks for a cycle;
 * wait_end takes it off again, before the GIL is taken back. */
static void wait_note(lua_State *L, int kind, uint64_t on, shm_wait *w) {
  rt_worker *me = rt_self();
  memset(w, 0, sizeof *w);
  if (!me) return;
  w->token = token_of(me);
  w->on = on;
  w->obj = kind == WAIT_JOIN ? 0 : (shm_off)on; /* every other kind waits on an object at `on` */
  w->kind = (uint32_t)kind;
  PT_CHECK(pthread_mutex_lock(&rt_current->mu)); /* a handle's owner may rename it (h.name = ...) */
  snprintf(w->name, sizeof w->name, "%s", me->name);
  PT_CHECK(pthread_mutex_unlock(&rt_current->mu));
  where_of(L, w->where, sizeof w->where);
}

static void wait_begin(const shm_wait *w) {
  shm_arena *a = rt_current ? rt_current->arena : NULL;
  int slot;
  if (!a || !w->token || shm_board_put(a, w, &slot) != SHM_OK) return; /* a full board: this wait goes unwatched */
  board_slot = slot;
  shm_sleep_note(shm_board_asleep(a, slot));
  if (w->kind != WAIT_LOCK && w->kind != WAIT_JOIN) return; /* not an edge: only the watchdog's check can use it */
  shm_wait cycle[CYCLE_MAX];
  int n = rt_current->is_child ? 0 : find_cycle(a, cycle);
  if (n) report_cycle(a, cycle, n);
}

static void wait_end(const shm_wait *w) {
  shm_arena *a = rt_current ? rt_current->arena : NULL;
  shm_sleep_note(NULL);
  if (a && board_slot >= 0) shm_board_remove_slot(a, board_slot, w->token);
  board_slot = -1;
}

static _Thread_local shm_wait join_wait; /* objects_join_begin's, for objects_join_end */

void objects_join_begin(lua_State *L, pid_t target_pid, int target_id) {
  wait_note(L, WAIT_JOIN, (uint64_t)target_pid << 32 | (uint32_t)(target_id + 1), &join_wait);
  wait_begin(&join_wait);
}

void objects_join_end(void) { wait_end(&join_wait); }

static void before_fork(void) { PT_CHECK(pthread_mutex_lock(&objects_mu)); }
static void after_fork_parent(void) { PT_CHECK(pthread_mutex_unlock(&objects_mu)); }
static void after_fork_child(void) {
  nheld_locks = 0; /* the other threads are gone, and this one's token changed */
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
}

static uint64_t held_by(shm_off off) {
  uint64_t token = 0;
  PT_CHECK(pthread_mutex_lock(&objects_mu));
  for (int i = 0; i < nheld_locks; i++)
    if (held_locks[i].off == off) token = held_locks[i].token;
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
  return token;
}

static void held_set(shm_off off, uint64_t token) {
  PT_CHECK(pthread_mutex_lock(&objects_mu));
  int i = 0;
  while (i < nheld_locks && held_locks[i].off != off) i++;
  if (i < nheld_locks || VEC_RESERVE(held_locks, nheld_locks, cap_held_locks, 1, 16) == 0) {
    if (i == nheld_locks) nheld_locks++;
    held_locks[i].off = off;
    held_locks[i].token = token;
  }
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
}

static void held_clear(shm_off off) {
  PT_CHECK(pthread_mutex_lock(&objects_mu));
  for (int i = 0; i < nheld_locks; i++)
    if (held_locks[i].off == off) held_locks[i] = held_locks[--nheld_locks];
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
}

void objects_close_pools(runtime *rt) {
  if (!rt->arena) return;
  pid_t me = rt_pid();
  const rt_worker *proc = rt_self() ? rt_self()->proc : NULL; /* --sim: a simulated process closes its own */
  PT_CHECK(pthread_mutex_lock(&objects_mu));
  for (int i = 0; i < npools; i++)
    if (pools[i].pid == me && pools[i].proc == proc) shm_queue_close(rt->arena, pools[i].tasks);
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
}

static void init_once(void) {
  for (int t = SHM_T_LOCK; t < SHM_T_NKINDS; t++) mar_register_udata(kinds[t].mt, enc_handle, decoders[t]);
  PT_CHECK(pthread_atfork(before_fork, after_fork_parent, after_fork_child));
  sim_on_deadlock(sim_deadlock);
}

/* ------------------------------------------------------------ gil.lock */

static uint64_t token_of(rt_worker *me) { return (uint64_t)rt_pid() << 32 | (uint32_t)(me->id + 1); }

static int g_lock(lua_State *L) {
  shm_arena *a = arena(L);
  handle *h = new_handle(L, SHM_T_LOCK);
  shm_off off;
  int rc = shm_lock_new(a, &off);
  if (rc != SHM_OK) return luaL_error(L, "cannot create a lock: %s", shm_strerror(rc));
  adopt(L, h, off);
  return 1;
}

/* The name of worker id of this process, into buf ("" if unknown). */
static const char *worker_name(int id, char *buf, size_t len) {
  runtime *rt = rt_current;
  buf[0] = 0;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  for (int i = 0; i < rt->nworkers; i++) /* ids are not indices: released workers leave no record */
    if (rt->workers[i]->id == id) snprintf(buf, len, "%s", rt->workers[i]->name);
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  return buf;
}

/* A lock or an rlock handle at idx. */
static handle *check_lock(lua_State *L, int idx) {
  handle *h = luaL_testudata(L, idx, LOCK_MT);
  if (!h) h = luaL_testudata(L, idx, RLOCK_MT);
  if (!h) luaL_typeerror(L, idx, "gil.lock or gil.rlock");
  if (!h->off) luaL_error(L, "this lock handle has been released");
  return h;
}

/* A wait on a shared object, as every blocking method does it: try once
 * without waiting, GIL held; only if that times out (and the caller gave a
 * timeout other than 0) release the GIL and wait with rt_should_stop, the
 * time accounted as `kind`. SHM_STOPPED raises the stop error. */
typedef int (*wait_fn)(shm_arena *a, shm_off off, const struct timespec *deadline, shm_stop_fn stop, void *arg,
                       void *ctx);

static int w_lock(shm_arena *a, shm_off off, const struct timespec *d, shm_stop_fn stop, void *arg, void *ctx) {
  return shm_lock_acquire(a, off, *(uint64_t *)ctx, d, stop, arg);
}

typedef struct put_ctx {
  const void *data;
  size_t len;
} put_ctx;

static int w_put(shm_arena *a, shm_off off, const struct timespec *d, shm_stop_fn stop, void *arg, void *ctx) {
  put_ctx *p = ctx;
  return shm_queue_put(a, off, p->data, p->len, d, stop, arg);
}

typedef struct get_ctx {
  void **data;
  size_t *len;
} get_ctx;

static int w_get_item(shm_arena *a, shm_off off, const struct timespec *d, shm_stop_fn stop, void *arg, void *ctx) {
  get_ctx *g = ctx;
  return shm_queue_get(a, off, g->data, g->len, d, stop, arg);
}

static int blocking(lua_State *L, rt_block kind, int wait_kind, int64_t timeout, wait_fn fn, shm_off off, void *ctx) {
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  struct timespec deadline = deadline_of(timeout), now = shm_deadline_in(0);
  int rc = fn(a, off, &now, NULL, NULL, ctx);
  if (rc == SHM_TIMEOUT && timeout != 0) {
    int graph = timeout < 0 && wait_kind; /* see "deadlock detection" */
    shm_wait w;
    if (graph) wait_note(L, wait_kind, off, &w);
    uint64_t began = rt_block_begin(me, kind);
    if (graph) wait_begin(&w);
    if (sim_on())
      rc = sim_wait(a, fn, off, timeout, ctx);
    else
      rc = fn(a, off, timeout < 0 ? NULL : &deadline, rt_should_stop, NULL, ctx);
    if (graph) wait_end(&w);
    rt_block_end(me, kind, began);
  }
  if (rc == SHM_STOPPED) rt_check_stop(L);
  return rc;
}

/* acquire the lock or rlock at off; pushes true/false or raises. */
static int acquire_at(lua_State *L, shm_off off, int timeout_idx) {
  int64_t timeout = args_opt_timeout(L, timeout_idx);
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  uint64_t token = token_of(me);
  if (shm_obj_type(a, off) == SHM_T_LOCK && held_by(off) == token) {
    if (shm_lock_locked(a, off))
      return luaL_error(L, "lock already held by this thread (%s): it is not re-entrant", me->name);
    held_clear(off); /* a stale record (the lock it was about is gone) */
  }
  int rc = blocking(L, RT_BLOCK_LOCK, WAIT_LOCK, timeout, w_lock, off, &token);
  switch (rc) {
  case SHM_OK:
    held_set(off, token);
    lua_pushboolean(L, 1);
    return 1;
  case SHM_TIMEOUT:
  case SHM_STOPPED: lua_pushboolean(L, 0); return 1;
  case SHM_OWNER_DEAD: held_clear(off); return luaL_error(L, "lock owner died while holding it");
  default: return luaL_error(L, "lock: %s", shm_strerror(rc));
  }
}

static int release_at(lua_State *L, shm_off off) {
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  uint64_t token = token_of(me);
  int rc = shm_lock_release(a, off, token);
  if (rc == SHM_OK) {
    if (!shm_lock_owned(a, off, token)) held_clear(off); /* an rlock may still be held */
    return 0;
  }
  if (rc != SHM_NOT_OWNER) return luaL_error(L, "lock: %s", shm_strerror(rc));
  uint64_t holder = held_by(off);
  if (holder && holder >> 32 == (uint64_t)rt_pid()) {
    char name[64];
    return luaL_error(L, "release of a lock held by another thread (%s)",
                      worker_name((int)(uint32_t)holder - 1, name, sizeof name));
  }
  if (shm_lock_locked(a, off)) return luaL_error(L, "release of a lock held by another thread (in another process)");
  return luaL_error(L, "release of an unlocked lock");
}

static int lock_acquire(lua_State *L) { return acquire_at(L, check_lock(L, 1)->off, 2); }
static int lock_release(lua_State *L) { return release_at(L, check_lock(L, 1)->off); }

static int lock_locked(lua_State *L) {
  handle *h = check_lock(L, 1);
  lua_pushboolean(L, shm_lock_locked(arena(L), h->off));
  return 1;
}

static int g_rlock(lua_State *L) {
  shm_arena *a = arena(L);
  handle *h = new_handle(L, SHM_T_RLOCK);
  shm_off off;
  int rc = shm_rlock_new(a, &off);
  if (rc != SHM_OK) return luaL_error(L, "cannot create an rlock: %s", shm_strerror(rc));
  adopt(L, h, off);
  return 1;
}

/* ---------------------------------------------------- hold(): Python's with
 * x:hold() acquires x (a lock, an rlock, a condition's lock, a semaphore)
 * and returns a to-be-closed value whose __close releases it, on every way
 * out of the block, errors included:  do local _ <close> = l:hold() ... end */

static int hold_close(lua_State *L) {
  if (lua_getiuservalue(L, 1, 1) == LUA_TNIL) return 0; /* already released */
  lua_getfield(L, -1, "release");
  lua_insert(L, -2);
  lua_pushnil(L);
  lua_setiuservalue(L, 1, 1);
  lua_call(L, 1, 0);
  return 0;
}

/* obj:hold([timeout]): acquire (raise on timeout), return the holder. */
static int obj_hold(lua_State *L) {
  luaL_checktype(L, 1, LUA_TUSERDATA);
  int top = lua_gettop(L);
  lua_getfield(L, 1, "acquire");
  lua_pushvalue(L, 1);
  if (top >= 2)
    lua_pushvalue(L, 2);
  else
    lua_pushnil(L);
  lua_call(L, 2, 1);
  if (!lua_toboolean(L, -1)) return luaL_error(L, "hold: timed out waiting to acquire");
  lua_newuserdatauv(L, 0, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, HOLD_MT);
  return 1;
}

/* ----------------------------------------------------------- gil.queue */

#define ITEM_COPY 'C' /* then the marshaller's bytes */
#define ITEM_REF 'R' /* then a struct item_ref */

typedef struct item_ref {
  int32_t pid;
  int32_t ref;
  uint64_t interp; /* the rt_interp of the putter, as a number */
} item_ref;

static int g_queue(lua_State *L) {
  lua_Integer maxsize = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, maxsize >= 0, 1, "maxsize must be 0 (unbounded) or more");
  shm_arena *a = arena(L);
  handle *h = new_handle(L, SHM_T_QUEUE);
  shm_off off;
  int rc = shm_queue_new(a, (size_t)maxsize, &off);
  if (rc != SHM_OK) return luaL_error(L, "cannot create a queue: %s", shm_strerror(rc));
  adopt(L, h, off);
  return 1;
}

/* Can this put pass a reference? See "QUEUES" at the top. */
static int by_reference(handle *h, rt_worker *me) {
  runtime *rt = rt_current;
  return rt->spawn_kind == RT_THREAD && me->kind == RT_THREAD && me->interp == rt->interps[0] && !rt->is_child &&
      !atomic_load(&rt->forked) && !h->crossed && h->pid == rt_pid();
}

static int queue_put(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  luaL_checkany(L, 2);
  /* get answers nil for "closed" and "timeout": a nil item would read as one */
  luaL_argcheck(L, !lua_isnil(L, 2), 2, "a queue item cannot be nil (get returns nil on close and timeout)");
  int64_t timeout = args_opt_timeout(L, 3);
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  struct timespec deadline = deadline_of(timeout);
  int ref = LUA_NOREF;
  unsigned char small[1 + sizeof(item_ref)];
  mar_buf buf = { 0 };
  const void *data;
  size_t len;
  if (by_reference(h, me)) {
    lua_pushvalue(L, 2);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
    item_ref r = { (int32_t)rt_pid(), ref, (uint64_t)(uintptr_t)me->interp };
    small[0] = ITEM_REF;
    memcpy(small + 1, &r, sizeof r);
    data = small;
    len = sizeof small;
  } else {
    char err[256];
    buf.data = malloc(256);
    if (!buf.data) return luaL_error(L, "out of memory");
    buf.cap = 256;
    buf.data[0] = ITEM_COPY;
    buf.len = 1;
    if (mar_encode(L, 2, 1, "queue item", &buf, err, sizeof err) != 0) {
      mar_buf_free(&buf);
      lua_pushstring(L, err);
      return lua_error(L);
    }
    data = buf.data;
    len = buf.len;
  }
  struct timespec now = shm_deadline_in(0);
  int rc = shm_queue_put(a, h->off, data, len, &now, NULL, NULL);
  if (rc == SHM_TIMEOUT && timeout != 0) {
    shm_wait w;
    if (timeout < 0) wait_note(L, WAIT_PUT, h->off, &w);
    uint64_t began = rt_block_begin(me, RT_BLOCK_QUEUE);
    if (timeout < 0) wait_begin(&w);
    put_ctx pc = { data, len };
    if (sim_on())
      rc = sim_wait(a, w_put, h->off, timeout, &pc);
    else
      rc = shm_queue_put(a, h->off, data, len, timeout < 0 ? NULL : &deadline, rt_should_stop, NULL);
    if (timeout < 0) wait_end(&w);
    rt_block_end(me, RT_BLOCK_QUEUE, began);
  }
  mar_buf_free(&buf);
  if (rc != SHM_OK) luaL_unref(L, LUA_REGISTRYINDEX, ref);
  switch (rc) {
  case SHM_OK: lua_pushboolean(L, 1); return 1;
  case SHM_TIMEOUT:
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  case SHM_STOPPED:
    rt_check_stop(L);
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  case SHM_CLOSED: return luaL_error(L, "queue is closed");
  case SHM_ENOSPC:
    return luaL_error(L,
                      "queue put: the shared memory arena is full (an item of %d bytes did not fit; "
                      "GILVM_ARENA_MB sets its size)",
                      (int)len);
  default: return luaL_error(L, "queue put: %s", shm_strerror(rc));
  }
}

/* Push the value an item stands for; frees data. Raises on failure. */
static void push_item(lua_State *L, rt_worker *me, unsigned char *data, size_t len) {
  char err[256];
  if (len >= 1 && data[0] == ITEM_COPY) {
    int top = lua_gettop(L);
    int n = mar_decode(L, data + 1, len - 1, err, sizeof err);
    free(data);
    if (n == 1) return;
    if (n > 1) lua_settop(L, top);
    if (n < 0) luaL_error(L, "queue get: cannot copy the item: %s", err);
    luaL_error(L, "queue get: malformed item");
  }
  item_ref r;
  if (len != 1 + sizeof r || data[0] != ITEM_REF) {
    free(data);
    luaL_error(L, "queue get: malformed item");
  }
  memcpy(&r, data + 1, sizeof r);
  free(data);
  if (r.pid != (int32_t)rt_pid())
    luaL_error(L,
               "queue get: this item was put by reference in process %d (a gil-mode thread, before any "
               "process was started) and cannot be received in process %d",
               (int)r.pid, (int)rt_pid());
  if (r.interp != (uint64_t)(uintptr_t)me->interp)
    luaL_error(L, "queue get: this item was put by reference in another interpreter and cannot be received here");
  lua_rawgeti(L, LUA_REGISTRYINDEX, r.ref);
  luaL_unref(L, LUA_REGISTRYINDEX, r.ref);
}

static int queue_get(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  int64_t timeout = args_opt_timeout(L, 2);
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  struct timespec deadline = deadline_of(timeout);
  void *data = NULL;
  size_t len = 0;
  struct timespec now = shm_deadline_in(0);
  int rc = shm_queue_get(a, h->off, &data, &len, &now, NULL, NULL);
  if (rc == SHM_TIMEOUT && timeout != 0) {
    shm_wait w;
    if (timeout < 0) wait_note(L, WAIT_GET, h->off, &w);
    uint64_t began = rt_block_begin(me, RT_BLOCK_QUEUE);
    if (timeout < 0) wait_begin(&w);
    get_ctx gc = { &data, &len };
    if (sim_on())
      rc = sim_wait(a, w_get_item, h->off, timeout, &gc);
    else
      rc = shm_queue_get(a, h->off, &data, &len, timeout < 0 ? NULL : &deadline, rt_should_stop, NULL);
    if (timeout < 0) wait_end(&w);
    rt_block_end(me, RT_BLOCK_QUEUE, began);
  }
  switch (rc) {
  case SHM_OK: push_item(L, me, data, len); return 1;
  case SHM_TIMEOUT:
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  case SHM_CLOSED:
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  case SHM_STOPPED:
    rt_check_stop(L);
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  default: return luaL_error(L, "queue get: %s", shm_strerror(rc));
  }
}

static int queue_size(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  lua_pushinteger(L, (lua_Integer)shm_queue_size(arena(L), h->off));
  return 1;
}

static int queue_empty(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  lua_pushboolean(L, shm_queue_empty(arena(L), h->off));
  return 1;
}

static int queue_close(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  shm_queue_close(arena(L), h->off);
  return 0;
}

static int queue_closed(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  lua_pushboolean(L, shm_queue_closed(arena(L), h->off));
  return 1;
}

static int queue_maxsize(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  lua_pushinteger(L, (lua_Integer)shm_queue_maxsize(arena(L), h->off));
  return 1;
}

static int queue_task_done(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  int rc = shm_queue_task_done(arena(L), h->off);
  if (rc == SHM_OVERFLOW) return luaL_error(L, "task_done() called more times than there were items put");
  if (rc != SHM_OK) return luaL_error(L, "queue task_done: %s", shm_strerror(rc));
  return 0;
}

static int w_join(shm_arena *a, shm_off off, const struct timespec *d, shm_stop_fn stop, void *arg, void *ctx) {
  (void)ctx;
  return shm_queue_join(a, off, d, stop, arg);
}

/* q:join([timeout]) -> true, or false on timeout. */
static int queue_join(lua_State *L) {
  handle *h = check(L, 1, SHM_T_QUEUE);
  int rc = blocking(L, RT_BLOCK_QUEUE, WAIT_QJOIN, args_opt_timeout(L, 2), w_join, h->off, NULL);
  if (rc != SHM_OK && rc != SHM_TIMEOUT && rc != SHM_STOPPED) return luaL_error(L, "queue join: %s", shm_strerror(rc));
  lua_pushboolean(L, rc == SHM_OK);
  return 1;
}

/* ----------------------------------------------------------- gil.event */

/* A new object of kind type made by mk (its arguments already checked). */
#define NEW_OBJECT(L, type, call)                                                                             \
  do {                                                                                                        \
    shm_arena *a_ = arena(L);                                                                                 \
    handle *h_ = new_handle(L, type);                                                                         \
    shm_off off;                                                                                              \
    int rc_ = (call);                                                                                         \
    if (rc_ != SHM_OK)                                                                                        \
      return luaL_error(L, "cannot create a%s %s: %s", type == SHM_T_EVENT || type == SHM_T_ARRAY ? "n" : "", \
                        kinds[type].what, shm_strerror(rc_));                                                 \
    adopt(L, h_, off);                                                                                        \
    return 1;                                                                                                 \
  } while (0)

static int g_event(lua_State *L) { NEW_OBJECT(L, SHM_T_EVENT, shm_event_new(a_, &off)); }

static int event_set(lua_State *L) {
  shm_event_set(arena(L), check(L, 1, SHM_T_EVENT)->off, 1);
  return 0;
}

static int event_clear(lua_State *L) {
  shm_event_set(arena(L), check(L, 1, SHM_T_EVENT)->off, 0);
  return 0;
}

static int event_is_set(lua_State *L) {
  lua_pushboolean(L, shm_event_is_set(arena(L), check(L, 1, SHM_T_EVENT)->off));
  return 1;
}

static int w_event(shm_arena *a, shm_off off, const struct timespec *d, shm_stop_fn stop, void *arg, void *ctx) {
  (void)ctx;
  return shm_event_wait(a, off, d, stop, arg);
}

static int event_wait(lua_State *L) {
  handle *h = check(L, 1, SHM_T_EVENT);
  int rc = blocking(L, RT_BLOCK_LOCK, WAIT_EVENT, args_opt_timeout(L, 2), w_event, h->off, NULL);
  lua_pushboolean(L, rc == SHM_OK);
  return 1;
}

/* ------------------------------------------------------- gil.semaphore */

static int g_semaphore(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, 1);
  luaL_argcheck(L, n >= 0, 1, "must be 0 or more");
  int bounded = lua_toboolean(L, 2);
  NEW_OBJECT(L, SHM_T_SEMAPHORE, shm_sem_new(a_, (int64_t)n, bounded ? (int64_t)n : 0, &off));
}

static int w_sem(shm_arena *a, shm_off off, const struct timespec *d, shm_stop_fn stop, void *arg, void *ctx) {
  (void)ctx;
  return shm_sem_acquire(a, off, d, stop, arg);
}

static int sem_acquire(lua_State *L) {
  handle *h = check(L, 1, SHM_T_SEMAPHORE);
  int rc = blocking(L, RT_BLOCK_LOCK, WAIT_SEM, args_opt_timeout(L, 2), w_sem, h->off, NULL);
  lua_pushboolean(L, rc == SHM_OK);
  return 1;
}

static int sem_release(lua_State *L) {
  handle *h = check(L, 1, SHM_T_SEMAPHORE);
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 1, 2, "must be 1 or more");
  int rc = shm_sem_release(arena(L), h->off, (int64_t)n);
  if (rc == SHM_OVERFLOW) return luaL_error(L, "semaphore released too many times (it is bounded)");
  if (rc != SHM_OK) return luaL_error(L, "semaphore: %s", shm_strerror(rc));
  return 0;
}

static int sem_value(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)shm_sem_value(arena(L), check(L, 1, SHM_T_SEMAPHORE)->off));
  return 1;
}

/* --------------------------------------------------------- gil.barrier */

static int g_barrier(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1, 1, "must be 1 or more");
  NEW_OBJECT(L, SHM_T_BARRIER, shm_barrier_new(a_, (int64_t)n, &off));
}

/* b:wait([timeout]) -> index 0..n-1; raises "barrier is broken" as Python's BrokenBarrierError. */
static int barrier_wait(lua_State *L) {
  handle *h = check(L, 1, SHM_T_BARRIER);
  int64_t timeout = args_opt_timeout(L, 2), index = 0;
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  /* no try-first here: a try that arrives counts as an arrival */
  shm_wait w;
  int graph = timeout < 0; /* see "deadlock detection" */
  if (graph) {
    wait_note(L, WAIT_BARRIER, h->off, &w);
    w.held_by = (uint64_t)shm_barrier_info(a, h->off, 3); /* the generation it arrives in (still_unmet) */
  }
  sim_pause p = { 0 };
  uint64_t began = rt_block_begin(me, RT_BLOCK_LOCK);
  if (graph) wait_begin(&w);
  const struct timespec *d = wait_deadline(timeout, &p);
  int rc = shm_barrier_wait(a, h->off, d, rt_should_stop, NULL, &index);
  shm_sleep_hook(NULL, NULL);
  if (graph) wait_end(&w);
  rt_block_end(me, RT_BLOCK_LOCK, began);
  if (rc == SHM_STOPPED) rt_check_stop(L);
  if (rc == SHM_OK) {
    lua_pushinteger(L, (lua_Integer)index);
    return 1;
  }
  if (rc == SHM_TIMEOUT || rc == SHM_STOPPED) return luaL_error(L, "barrier is broken (this wait timed out)");
  if (rc == SHM_BROKEN) return luaL_error(L, "barrier is broken");
  return luaL_error(L, "barrier: %s", shm_strerror(rc));
}

static int barrier_reset(lua_State *L) {
  shm_barrier_reset(arena(L), check(L, 1, SHM_T_BARRIER)->off, 0);
  return 0;
}

static int barrier_abort(lua_State *L) {
  shm_barrier_reset(arena(L), check(L, 1, SHM_T_BARRIER)->off, 1);
  return 0;
}

static int barrier_parties(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)shm_barrier_info(arena(L), check(L, 1, SHM_T_BARRIER)->off, 0));
  return 1;
}

static int barrier_n_waiting(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)shm_barrier_info(arena(L), check(L, 1, SHM_T_BARRIER)->off, 1));
  return 1;
}

static int barrier_broken(lua_State *L) {
  lua_pushboolean(L, shm_barrier_info(arena(L), check(L, 1, SHM_T_BARRIER)->off, 2) != 0);
  return 1;
}

/* ------------------------------------------------------- gil.condition */

static int g_condition(lua_State *L) {
  int own = lua_isnoneornil(L, 1); /* Python's default: a new RLock */
  if (own) {
    lua_settop(L, 0);
    g_rlock(L);
  }
  handle *lk = check_lock(L, 1);
  NEW_OBJECT(L, SHM_T_CONDITION, shm_cond_new(a_, lk->off, &off));
}

static shm_off cond_lock(lua_State *L) {
  handle *h = check(L, 1, SHM_T_CONDITION);
  shm_off lk = shm_cond_lock(arena(L), h->off);
  if (!lk) luaL_error(L, "condition: its lock no longer exists");
  return lk;
}

static int cond_acquire(lua_State *L) { return acquire_at(L, cond_lock(L), 2); }
static int cond_release(lua_State *L) { return release_at(L, cond_lock(L)); }

static int cond_locked(lua_State *L) {
  lua_pushboolean(L, shm_lock_locked(arena(L), cond_lock(L)));
  return 1;
}

/* c:lock() -> its lock (or rlock) */
static int cond_get_lock(lua_State *L) {
  shm_off lk = cond_lock(L);
  return push_handle(L, lk, shm_obj_type(arena(L), lk)), 1;
}

/* One wait with the lock given up; 1 if notified, 0 if timed out. */
static int cond_wait_once(lua_State *L, int64_t timeout) {
  handle *h = check(L, 1, SHM_T_CONDITION);
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  uint64_t token = token_of(me);
  shm_off lk = cond_lock(L);
  if (!shm_lock_owned(a, lk, token)) return luaL_error(L, "cannot wait on un-acquired lock");
  shm_wait w;
  int graph = timeout < 0; /* see "deadlock detection" */
  if (graph) wait_note(L, WAIT_COND, h->off, &w);
  sim_pause p = { 0 };
  uint64_t began = rt_block_begin(me, RT_BLOCK_LOCK);
  if (graph) wait_begin(&w);
  const struct timespec *d = wait_deadline(timeout, &p);
  int rc = shm_cond_wait(a, h->off, token, d, rt_should_stop, NULL);
  shm_sleep_hook(NULL, NULL);
  if (graph) wait_end(&w);
  rt_block_end(me, RT_BLOCK_LOCK, began);
  if (!shm_lock_owned(a, lk, token)) held_clear(lk);
  if (rc == SHM_STOPPED) rt_check_stop(L);
  if (rc == SHM_OK) return 1;
  if (rc == SHM_TIMEOUT || rc == SHM_STOPPED) return 0;
  return luaL_error(L, "condition wait: %s", shm_strerror(rc));
}

static int cond_wait(lua_State *L) {
  lua_pushboolean(L, cond_wait_once(L, args_opt_timeout(L, 2)));
  return 1;
}

/* c:wait_for(pred [, timeout]) -> pred's last result (as Python) */
static int cond_wait_for(lua_State *L) {
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int64_t timeout = args_opt_timeout(L, 3);
  uint64_t end = timeout < 0 ? 0 : clock_now_ns() + (uint64_t)timeout; /* virtual under --sim */
  for (;;) {
    lua_settop(L, 3);
    lua_pushvalue(L, 2);
    lua_call(L, 0, 1);
    if (lua_toboolean(L, -1)) return 1;
    int64_t left = -1;
    if (timeout >= 0) {
      left = (int64_t)(end - clock_now_ns());
      if (left <= 0) return 1;
    }
    cond_wait_once(L, left);
  }
}

static int cond_notify_n(lua_State *L, int64_t n) {
  handle *h = check(L, 1, SHM_T_CONDITION);
  int rc = shm_cond_notify(arena(L), h->off, token_of(self(L)), n);
  if (rc == SHM_NOT_OWNER) return luaL_error(L, "cannot notify on un-acquired lock");
  if (rc != SHM_OK) return luaL_error(L, "condition notify: %s", shm_strerror(rc));
  return 0;
}

static int cond_notify(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 0, 2, "must be 0 or more");
  return cond_notify_n(L, (int64_t)n);
}

static int cond_notify_all(lua_State *L) { return cond_notify_n(L, INT64_MAX); }

/* ----------------------------------------------------------- gil.array */

static shm_number check_number(lua_State *L, int idx);
static void push_number(lua_State *L, shm_number n);

/* gil.array(n [, init]) or gil.array(list) */
static int g_array(lua_State *L) {
  lua_Integer n;
  int from_list = lua_istable(L, 1);
  if (from_list) {
    n = (lua_Integer)luaL_len(L, 1);
  } else {
    n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0, 1, "must be 0 or more");
  }
  shm_number init = lua_isnoneornil(L, 2) || from_list ? shm_int(0) : check_number(L, 2);
  shm_number *vals = NULL;
  if (from_list) { /* check every element before creating anything */
    vals = lua_newuserdatauv(L, (size_t)n * sizeof *vals + 1, 0);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, 1, i);
      if (lua_type(L, -1) != LUA_TNUMBER)
        return luaL_error(L, "bad argument #1 to 'array' (item %d is not a number)", (int)i);
      vals[i - 1] = check_number(L, -1);
      lua_pop(L, 1);
    }
  }
  shm_arena *a = arena(L);
  handle *h = new_handle(L, SHM_T_ARRAY);
  shm_off off;
  int rc = shm_array_new(a, (size_t)n, &off);
  if (rc != SHM_OK) return luaL_error(L, "cannot create an array: %s", shm_strerror(rc));
  adopt(L, h, off);
  for (lua_Integer i = 0; i < n; i++) {
    shm_number x = from_list ? vals[i] : init;
    shm_array_op(a, off, (size_t)i, 1, &x);
  }
  return 1;
}

/* The 0-based index of argument idx, a 1-based integer in range. */
static size_t array_index(lua_State *L, handle *h, int idx) {
  lua_Integer i = luaL_checkinteger(L, idx);
  size_t n = shm_array_len(arena(L), h->off);
  if (i < 1 || (lua_Unsigned)i > n) luaL_error(L, "array index %d out of range (1..%d)", (int)i, (int)n);
  return (size_t)(i - 1);
}

static int array_index_mm(lua_State *L) {
  handle *h = check(L, 1, SHM_T_ARRAY);
  if (lua_type(L, 2) == LUA_TSTRING) { /* a method */
    luaL_getmetafield(L, 1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
  }
  shm_number x;
  shm_array_op(arena(L), h->off, array_index(L, h, 2), 0, &x);
  push_number(L, x);
  return 1;
}

static int array_newindex(lua_State *L) {
  handle *h = check(L, 1, SHM_T_ARRAY);
  size_t i = array_index(L, h, 2);
  shm_number x = check_number(L, 3);
  shm_array_op(arena(L), h->off, i, 1, &x);
  return 0;
}

static int array_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)shm_array_len(arena(L), check(L, 1, SHM_T_ARRAY)->off));
  return 1;
}

/* arr:add(i, n) -> the new value, atomically */
static int array_add(lua_State *L) {
  handle *h = check(L, 1, SHM_T_ARRAY);
  size_t i = array_index(L, h, 2);
  shm_number x = check_number(L, 3);
  shm_array_op(arena(L), h->off, i, 2, &x);
  push_number(L, x);
  return 1;
}

/* arr:totable() -> a plain Lua list, a snapshot */
static int array_totable(lua_State *L) {
  handle *h = check(L, 1, SHM_T_ARRAY);
  shm_arena *a = arena(L);
  size_t n = shm_array_len(a, h->off);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    shm_number x;
    if (shm_array_op(a, h->off, i, 0, &x) != SHM_OK) break;
    push_number(L, x);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* ------------------------------------------------------------ gil.pipe
 * multiprocessing.Pipe: two connected ends over shared queues. Items are
 * always copies (the marshaller), as Python pickles them. See
 * shm_pipe_open for when the other end sees "closed". */

static int g_pipe(lua_State *L) {
  int duplex = lua_isnoneornil(L, 1) || lua_toboolean(L, 1);
  shm_arena *a = arena(L);
  handle *ha = new_handle(L, SHM_T_PIPE), *hb = new_handle(L, SHM_T_PIPE);
  shm_off ea, eb;
  int rc = shm_pipe_new(a, duplex, &ea, &eb);
  if (rc != SHM_OK) return luaL_error(L, "cannot create a pipe: %s", shm_strerror(rc));
  lua_pushvalue(L, -2);
  adopt(L, ha, ea);
  lua_pop(L, 1);
  adopt(L, hb, eb);
  return 2;
}

static handle *check_end(lua_State *L, shm_off *in, shm_off *out) {
  handle *h = check(L, 1, SHM_T_PIPE);
  if (h->closed) luaL_error(L, "this end of the pipe is closed");
  shm_pipe_queues(arena(L), h->off, in, out);
  return h;
}

static int pipe_send(lua_State *L) {
  shm_off in, out;
  check_end(L, &in, &out);
  luaL_checkany(L, 2);
  luaL_argcheck(L, !lua_isnil(L, 2), 2, "cannot send nil (recv returns nil on close and timeout)");
  if (!out) return luaL_error(L, "this end of a one-way pipe only receives");
  char err[256];
  mar_buf buf = { 0 };
  buf.data = malloc(256);
  if (!buf.data) return luaL_error(L, "out of memory");
  buf.cap = 256;
  buf.data[0] = ITEM_COPY;
  buf.len = 1;
  if (mar_encode(L, 2, 1, "pipe item", &buf, err, sizeof err) != 0) {
    mar_buf_free(&buf);
    lua_pushstring(L, err);
    return lua_error(L);
  }
  int rc = shm_queue_put(arena(L), out, buf.data, buf.len, NULL, NULL, NULL); /* unbounded: never waits */
  mar_buf_free(&buf);
  if (rc == SHM_CLOSED) return luaL_error(L, "pipe is closed (every copy of the other end was closed)");
  if (rc != SHM_OK) return luaL_error(L, "pipe send: %s", shm_strerror(rc));
  return 0;
}

static int w_get(shm_arena *a, shm_off off, const struct timespec *d, shm_stop_fn stop, void *arg, void *ctx) {
  void **item = ctx;
  return shm_queue_get(a, off, item, (size_t *)item[1], d, stop, arg);
}

/* e:recv([timeout]) -> v | nil, "closed" | nil, "timeout" */
static int pipe_recv(lua_State *L) {
  shm_off in, out;
  check_end(L, &in, &out);
  int64_t timeout = args_opt_timeout(L, 2);
  if (!in) return luaL_error(L, "this end of a one-way pipe only sends");
  size_t len = 0;
  void *ctx[2] = { NULL, &len };
  int rc = blocking(L, RT_BLOCK_QUEUE, WAIT_RECV, timeout, w_get, in, ctx);
  if (rc == SHM_OK) {
    push_item(L, self(L), ctx[0], len);
    return 1;
  }
  lua_pushnil(L);
  if (rc == SHM_CLOSED)
    lua_pushliteral(L, "closed");
  else if (rc == SHM_TIMEOUT || rc == SHM_STOPPED)
    lua_pushliteral(L, "timeout");
  else
    return luaL_error(L, "pipe recv: %s", shm_strerror(rc));
  return 2;
}

/* e:poll() -> is something there to receive (or the other end closed)? */
static int pipe_poll(lua_State *L) {
  shm_off in, out;
  check_end(L, &in, &out);
  shm_arena *a = arena(L);
  lua_pushboolean(L, in && (!shm_queue_empty(a, in) || shm_queue_closed(a, in)));
  return 1;
}

static int pipe_close(lua_State *L) {
  handle *h = check(L, 1, SHM_T_PIPE);
  if (h->closed) return 0;
  h->closed = 1;
  /* a fork child leans on its parent's copy: closing it here closes nothing there */
  if (h->pid == rt_pid()) shm_pipe_open(arena(L), h->off, -1);
  return 0;
}

static int pipe_closed(lua_State *L) {
  lua_pushboolean(L, check(L, 1, SHM_T_PIPE)->closed);
  return 1;
}

/* ----------------------------------------------------------- gil.value */

/* A number, subtype kept (strings are not converted: "1" would lose it). */
static shm_number check_number(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "number");
  if (lua_isinteger(L, idx)) return shm_int((int64_t)lua_tointeger(L, idx));
  return shm_float((double)lua_tonumber(L, idx));
}

static void push_number(lua_State *L, shm_number n) {
  if (n.is_float)
    lua_pushnumber(L, (lua_Number)n.f);
  else
    lua_pushinteger(L, (lua_Integer)n.i);
}

static int g_value(lua_State *L) {
  shm_number init = lua_isnoneornil(L, 1) ? shm_int(0) : check_number(L, 1);
  shm_arena *a = arena(L);
  handle *h = new_handle(L, SHM_T_VALUE);
  shm_off off;
  int rc = shm_value_new(a, init, &off);
  if (rc != SHM_OK) return luaL_error(L, "cannot create a value: %s", shm_strerror(rc));
  adopt(L, h, off);
  return 1;
}

static int value_get(lua_State *L) {
  handle *h = check(L, 1, SHM_T_VALUE);
  shm_number n;
  int rc = shm_value_get(arena(L), h->off, &n);
  if (rc != SHM_OK) return luaL_error(L, "value: %s", shm_strerror(rc));
  push_number(L, n);
  return 1;
}

static int value_set(lua_State *L) {
  handle *h = check(L, 1, SHM_T_VALUE);
  shm_number x = check_number(L, 2);
  int rc = shm_value_set(arena(L), h->off, x);
  if (rc != SHM_OK) return luaL_error(L, "value: %s", shm_strerror(rc));
  return 0;
}

static int value_add(lua_State *L) {
  handle *h = check(L, 1, SHM_T_VALUE);
  shm_number x = check_number(L, 2), result;
  int rc = shm_value_add(arena(L), h->off, x, &result);
  if (rc != SHM_OK) return luaL_error(L, "value: %s", shm_strerror(rc));
  push_number(L, result);
  return 1;
}

/* ------------------------------------------- gil.pool and its C helpers */

/* priv.register(tasks, results) -> id: keep both queues alive for the pool. */
static int p_register(lua_State *L) {
  handle *t = check(L, 1, SHM_T_QUEUE), *r = check(L, 2, SHM_T_QUEUE);
  shm_arena *a = arena(L);
  PT_CHECK(pthread_mutex_lock(&objects_mu));
  int ok = VEC_RESERVE(pools, npools, cappools, 1, 16) == 0;
  long id = 0;
  if (ok && shm_obj_retain(a, t->off) == SHM_OK) {
    if (shm_obj_retain(a, r->off) == SHM_OK) {
      id = ++next_pool_id;
      pools[npools++] = (pool_reg){ id, rt_pid(), t->off, r->off, rt_self() ? rt_self()->proc : NULL };
    } else {
      shm_obj_release(a, t->off);
    }
  }
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
  if (!id) return luaL_error(L, "cannot register the pool's queues");
  lua_pushinteger(L, id);
  return 1;
}

/* priv.unregister(id): the pool is closed and its workers joined. */
static int p_unregister(lua_State *L) {
  long id = (long)luaL_checkinteger(L, 1);
  shm_arena *a = arena(L);
  pid_t me = rt_pid();
  pool_reg found = { 0 };
  PT_CHECK(pthread_mutex_lock(&objects_mu));
  for (int i = 0; i < npools; i++)
    if (pools[i].id == id && pools[i].pid == me) {
      found = pools[i];
      pools[i] = pools[--npools];
      break;
    }
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
  if (found.id) {
    shm_obj_release(a, found.tasks);
    shm_obj_release(a, found.results);
  }
  return 0;
}

/* priv.abandon(id): a pool collected without close(): stop its workers. */
static int p_abandon(lua_State *L) {
  long id = (long)luaL_checkinteger(L, 1);
  shm_arena *a = rt_current ? rt_current->arena : NULL;
  pid_t me = rt_pid();
  PT_CHECK(pthread_mutex_lock(&objects_mu));
  for (int i = 0; a && i < npools; i++)
    if (pools[i].id == id && pools[i].pid == me) shm_queue_close(a, pools[i].tasks);
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
  return 0;
}

/* priv.owner(): who this interpreter is, as a string that a copy of a pool
   in another interpreter or process will not match. */
static int p_owner(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD); /* one per interpreter */
  lua_pushfstring(L, "%d:%p", (int)rt_pid(), (void *)lua_tothread(L, -1));
  return 1;
}

static const luaL_Reg pool_helpers[] = {
  { "register", p_register },
  { "unregister", p_unregister },
  { "abandon", p_abandon },
  { "owner", p_owner },
  { NULL, NULL },
};

/* Push pool.lua's function `name` ("new", "wait", "as_completed"),
 * compiling pool.lua on first use in this interpreter. */
static void pool_fn(lua_State *L, const char *name) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, POOL_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, pool_lua, sizeof pool_lua - 1, "=gil.pool", "t") != LUA_OK) lua_error(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "gil");
    lua_remove(L, -2);
    luaL_newlib(L, pool_helpers);
    lua_call(L, 2, 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, POOL_KEY);
  }
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

/* Call pool.lua's `name` with this call's arguments. */
static int pool_call(lua_State *L, const char *name) {
  int nargs = lua_gettop(L);
  pool_fn(L, name);
  lua_insert(L, 1);
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L);
}

static int g_pool(lua_State *L) { return pool_call(L, "new"); }
static int g_wait(lua_State *L) { return pool_call(L, "wait"); }
static int g_as_completed(lua_State *L) { return pool_call(L, "as_completed"); }

/* ---------------------------------------------------------- the module */

static const luaL_Reg lock_methods[] = {
  { "acquire", lock_acquire },
  { "release", lock_release },
  { "locked", lock_locked },
  { "hold", obj_hold },
  { NULL, NULL },
};

static const luaL_Reg queue_methods[] = {
  { "put", queue_put },         { "get", queue_get },
  { "size", queue_size },       { "empty", queue_empty },
  { "close", queue_close },     { "closed", queue_closed },
  { "maxsize", queue_maxsize }, { "task_done", queue_task_done },
  { "join", queue_join },       { NULL, NULL },
};

static const luaL_Reg event_methods[] = {
  { "set", event_set }, { "clear", event_clear }, { "is_set", event_is_set }, { "wait", event_wait }, { NULL, NULL },
};

static const luaL_Reg sem_methods[] = {
  { "acquire", sem_acquire }, { "release", sem_release }, { "value", sem_value }, { "hold", obj_hold }, { NULL, NULL },
};

static const luaL_Reg barrier_methods[] = {
  { "wait", barrier_wait },
  { "reset", barrier_reset },
  { "abort", barrier_abort },
  { "parties", barrier_parties },
  { "n_waiting", barrier_n_waiting },
  { "broken", barrier_broken },
  { NULL, NULL },
};

static const luaL_Reg cond_methods[] = {
  { "acquire", cond_acquire },
  { "release", cond_release },
  { "locked", cond_locked },
  { "lock", cond_get_lock },
  { "hold", obj_hold },
  { "wait", cond_wait },
  { "wait_for", cond_wait_for },
  { "notify", cond_notify },
  { "notify_all", cond_notify_all },
  { NULL, NULL },
};

static const luaL_Reg pipe_methods[] = {
  { "send", pipe_send },   { "recv", pipe_recv },     { "poll", pipe_poll },
  { "close", pipe_close }, { "closed", pipe_closed }, { NULL, NULL },
};

static const luaL_Reg array_methods[] = {
  { "add", array_add },
  { "totable", array_totable },
  { NULL, NULL },
};

static const luaL_Reg value_methods[] = {
  { "get", value_get },
  { "set", value_set },
  { "add", value_add },
  { NULL, NULL },
};

static void make_metatable(lua_State *L, const char *name, const luaL_Reg *methods) {
  static const luaL_Reg mm[] = {
    { "__gc", obj_gc },
    { "__eq", obj_eq },
    { "__tostring", obj_tostring },
    { NULL, NULL },
  };
  args_metatable(L, name, methods, mm);
}

void objects_open(lua_State *L) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  PT_CHECK(pthread_once(&once, init_once));
  make_metatable(L, LOCK_MT, lock_methods);
  make_metatable(L, QUEUE_MT, queue_methods);
  make_metatable(L, VALUE_MT, value_methods);
  make_metatable(L, RLOCK_MT, lock_methods);
  make_metatable(L, EVENT_MT, event_methods);
  make_metatable(L, SEM_MT, sem_methods);
  make_metatable(L, BARRIER_MT, barrier_methods);
  make_metatable(L, COND_MT, cond_methods);
  make_metatable(L, ARRAY_MT, array_methods);
  make_metatable(L, PIPE_MT, pipe_methods);
  luaL_getmetatable(L, ARRAY_MT); /* arr[i], #arr; methods looked up by __index */
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -2, "methods");
  static const luaL_Reg array_mm[] = {
    { "__index", array_index_mm },
    { "__newindex", array_newindex },
    { "__len", array_len },
    { NULL, NULL },
  };
  luaL_setfuncs(L, array_mm, 0);
  lua_pop(L, 1);
  static const luaL_Reg hold_mm[] = { { "__close", hold_close }, { NULL, NULL } };
  args_metatable(L, HOLD_MT, NULL, hold_mm);
  lua_newtable(L); /* offset -> this interpreter's handle */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, CACHE_KEY);
  static const luaL_Reg ctors[] = {
    { "lock", g_lock },           { "queue", g_queue },     { "value", g_value },
    { "pool", g_pool },           { "rlock", g_rlock },     { "event", g_event },
    { "semaphore", g_semaphore }, { "barrier", g_barrier }, { "condition", g_condition },
    { "array", g_array },         { "wait", g_wait },       { "as_completed", g_as_completed },
    { "pipe", g_pipe },           { NULL, NULL },
  };
  luaL_setfuncs(L, ctors, 0);
}
