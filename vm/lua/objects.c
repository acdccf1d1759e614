/*
 * objects.c — gilvm's shared objects as Lua sees them: gil.lock, gil.queue,
 * gil.value, and gil.pool (written in Lua, vm/lua/pool.lua, built on the other
 * three).
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
#include "clock.h"

#include <lauxlib.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "marshal.h"
#include "pool_lua.h"
#include "args.h"
#include "runtime.h"
#include "shared.h"
#include "vec.h"

#define LOCK_MT "gil.lock"
#define QUEUE_MT "gil.queue"
#define VALUE_MT "gil.value"
#define CACHE_KEY "gil.objects" /* registry: offset -> handle, weak values */
#define POOL_KEY "gil.pool.new" /* registry: pool.lua's constructor, once loaded */

static const struct {
  const char *mt, *what;
} kinds[] = {
  [SHM_T_LOCK] = { LOCK_MT, "lock" },
  [SHM_T_QUEUE] = { QUEUE_MT, "queue" },
  [SHM_T_VALUE] = { VALUE_MT, "value" },
};

typedef struct handle {
  shm_off off; /* the object; 0 before it exists or once released */
  pid_t pid; /* the process whose reference this handle holds */
  int type; /* SHM_T_* */
  int crossed; /* it has been encoded: it may be in another interpreter */
} handle;

/* ------------------------------------------------------------ plumbing */

static shm_arena *arena(lua_State *L) {
  shm_arena *a = rt_current ? rt_current->arena : NULL;
  if (!a) luaL_error(L, "shared objects are unavailable: the shared memory arena could not be mapped");
  return a;
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
    shm_obj_release(a, h->off);
    /* a lock destroyed while held (by the thread that dropped it last): forget
       its holder, or a new lock at the same offset would seem held */
    if (h->type == SHM_T_LOCK && shm_obj_type(a, h->off) != SHM_T_LOCK) held_clear(h->off);
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

static int dec_handle(lua_State *L, const unsigned char *p, size_t len, int type) {
  const char *what = kinds[type].what;
  shm_off off;
  if (len != HANDLE_BYTES || p[0] != type) return luaL_error(L, "malformed %s handle", what);
  memcpy(&off, p + 1, sizeof off);
  shm_arena *a = arena(L);
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
  return 0;
}

static int enc_lock(lua_State *L, int idx, unsigned char *out, size_t cap) { return enc_handle(L, idx, out, cap); }
static int enc_queue(lua_State *L, int idx, unsigned char *out, size_t cap) { return enc_handle(L, idx, out, cap); }
static int enc_value(lua_State *L, int idx, unsigned char *out, size_t cap) { return enc_handle(L, idx, out, cap); }
static int dec_lock(lua_State *L, const unsigned char *p, size_t len) { return dec_handle(L, p, len, SHM_T_LOCK); }
static int dec_queue(lua_State *L, const unsigned char *p, size_t len) { return dec_handle(L, p, len, SHM_T_QUEUE); }
static int dec_value(lua_State *L, const unsigned char *p, size_t len) { return dec_handle(L, p, len, SHM_T_VALUE); }

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
} pool_reg;

static pool_reg *pools; /* pools whose queues are kept alive here */
static int npools;
static size_t cappools;
static long next_pool_id;

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

static void sim_changed(shm_arena *a, shm_off off);

void objects_close_pools(runtime *rt) {
  if (!rt->arena) return;
  pid_t me = rt_pid();
  PT_CHECK(pthread_mutex_lock(&objects_mu));
  for (int i = 0; i < npools; i++)
    if (pools[i].pid == me) {
      shm_queue_close(rt->arena, pools[i].tasks);
      sim_changed(rt->arena, pools[i].tasks);
    }
  PT_CHECK(pthread_mutex_unlock(&objects_mu));
}

static void init_once(void) {
  mar_register_udata(LOCK_MT, enc_lock, dec_lock);
  mar_register_udata(QUEUE_MT, enc_queue, dec_queue);
  mar_register_udata(VALUE_MT, enc_value, dec_value);
  PT_CHECK(pthread_atfork(before_fork, after_fork_parent, after_fork_child));
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

/* ---- --sim: a lock or a queue blocks in virtual time ---- */

/* What a simulated waiter waits on: the object, by its place in the arena. */
static const void *sim_chan(shm_arena *a, shm_off off) { return (const char *)a + off; }

/* Something changed in the object at off (released, put, got, closed): its simulated waiters look again. */
static void sim_changed(shm_arena *a, shm_off off) {
  if (sim_on()) sim_wake(sim_chan(a, off), 1);
}

typedef int (*sim_try)(shm_arena *a, shm_off off, void *ctx); /* one attempt that does not block */

/* Retry `attempt` until it is not SHM_TIMEOUT, the virtual timeout passes (< 0: none) or the run stops. */
static int sim_retry(shm_arena *a, shm_off off, int64_t timeout, sim_try attempt, void *ctx) {
  uint64_t until = timeout < 0 ? 0 : clock_now_ns() + (uint64_t)timeout;
  for (;;) {
    int rc = attempt(a, off, ctx);
    if (rc != SHM_TIMEOUT) return rc;
    if (atomic_load(&rt_current->stop)) return SHM_STOPPED;
    uint64_t now = clock_now_ns();
    if (until && now >= until) return SHM_TIMEOUT;
    sim_block(sim_chan(a, off), until ? until - now : 0);
  }
}

static int try_lock(shm_arena *a, shm_off off, void *ctx) {
  struct timespec now = shm_deadline_in(0);
  return shm_lock_acquire(a, off, *(uint64_t *)ctx, &now, NULL, NULL);
}

typedef struct put_ctx {
  const void *data;
  size_t len;
} put_ctx;

static int try_put(shm_arena *a, shm_off off, void *ctx) {
  put_ctx *p = ctx;
  struct timespec now = shm_deadline_in(0);
  return shm_queue_put(a, off, p->data, p->len, &now, NULL, NULL);
}

typedef struct get_ctx {
  void **data;
  size_t *len;
} get_ctx;

static int try_get(shm_arena *a, shm_off off, void *ctx) {
  get_ctx *g = ctx;
  struct timespec now = shm_deadline_in(0);
  return shm_queue_get(a, off, g->data, g->len, &now, NULL, NULL);
}

static int lock_acquire(lua_State *L) {
  handle *h = check(L, 1, SHM_T_LOCK);
  int64_t timeout = args_opt_timeout(L, 2);
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  uint64_t token = token_of(me);
  struct timespec deadline = deadline_of(timeout);
  if (held_by(h->off) == token) {
    if (shm_lock_locked(a, h->off))
      return luaL_error(L, "lock already held by this thread (%s): it is not re-entrant", me->name);
    held_clear(h->off); /* a stale record (the lock it was about is gone) */
  }
  struct timespec now = shm_deadline_in(0);
  int rc = shm_lock_acquire(a, h->off, token, &now, NULL, NULL);
  if (rc == SHM_TIMEOUT && timeout != 0) {
    uint64_t began = rt_block_begin(me, RT_BLOCK_LOCK);
    if (sim_on())
      rc = sim_retry(a, h->off, timeout, try_lock, &token);
    else
      rc = shm_lock_acquire(a, h->off, token, timeout < 0 ? NULL : &deadline, rt_should_stop, NULL);
    rt_block_end(me, RT_BLOCK_LOCK, began);
  }
  switch (rc) {
  case SHM_OK:
    held_set(h->off, token);
    lua_pushboolean(L, 1);
    return 1;
  case SHM_TIMEOUT: lua_pushboolean(L, 0); return 1;
  case SHM_STOPPED:
    rt_check_stop(L);
    lua_pushboolean(L, 0);
    return 1;
  case SHM_OWNER_DEAD: held_clear(h->off); return luaL_error(L, "lock owner died while holding it");
  default: return luaL_error(L, "lock: %s", shm_strerror(rc));
  }
}

static int lock_release(lua_State *L) {
  handle *h = check(L, 1, SHM_T_LOCK);
  shm_arena *a = arena(L);
  rt_worker *me = self(L);
  uint64_t token = token_of(me);
  int rc = shm_lock_release(a, h->off, token);
  if (rc == SHM_OK) {
    held_clear(h->off);
    sim_changed(a, h->off);
    return 0;
  }
  if (rc != SHM_NOT_OWNER) return luaL_error(L, "lock: %s", shm_strerror(rc));
  uint64_t holder = held_by(h->off);
  if (holder && holder >> 32 == (uint64_t)rt_pid()) {
    char name[64];
    return luaL_error(L, "release of a lock held by another thread (%s)",
                      worker_name((int)(uint32_t)holder - 1, name, sizeof name));
  }
  if (shm_lock_locked(a, h->off)) return luaL_error(L, "release of a lock held by another thread (in another process)");
  return luaL_error(L, "release of an unlocked lock");
}

static int lock_locked(lua_State *L) {
  handle *h = check(L, 1, SHM_T_LOCK);
  lua_pushboolean(L, shm_lock_locked(arena(L), h->off));
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
    uint64_t began = rt_block_begin(me, RT_BLOCK_QUEUE);
    put_ctx pc = { data, len };
    if (sim_on())
      rc = sim_retry(a, h->off, timeout, try_put, &pc);
    else
      rc = shm_queue_put(a, h->off, data, len, timeout < 0 ? NULL : &deadline, rt_should_stop, NULL);
    rt_block_end(me, RT_BLOCK_QUEUE, began);
  }
  mar_buf_free(&buf);
  if (rc == SHM_OK) sim_changed(a, h->off);
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
    uint64_t began = rt_block_begin(me, RT_BLOCK_QUEUE);
    get_ctx gc = { &data, &len };
    if (sim_on())
      rc = sim_retry(a, h->off, timeout, try_get, &gc);
    else
      rc = shm_queue_get(a, h->off, &data, &len, timeout < 0 ? NULL : &deadline, rt_should_stop, NULL);
    rt_block_end(me, RT_BLOCK_QUEUE, began);
  }
  if (rc == SHM_OK) sim_changed(a, h->off);
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
  sim_changed(arena(L), h->off);
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
      pools[npools++] = (pool_reg){ id, rt_pid(), t->off, r->off };
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
    if (pools[i].id == id && pools[i].pid == me) {
      shm_queue_close(a, pools[i].tasks);
      sim_changed(a, pools[i].tasks);
    }
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

/* gil.pool(...): compile vm/lua/pool.lua on first use in this interpreter. */
static int g_pool(lua_State *L) {
  int nargs = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, POOL_KEY) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, pool_lua, sizeof pool_lua - 1, "=gil.pool", "t") != LUA_OK) return lua_error(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "gil");
    lua_remove(L, -2);
    luaL_newlib(L, pool_helpers);
    lua_call(L, 2, 1);
    luaL_checktype(L, -1, LUA_TFUNCTION);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, POOL_KEY);
  }
  lua_insert(L, 1);
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L);
}

/* ---------------------------------------------------------- the module */

static const luaL_Reg lock_methods[] = {
  { "acquire", lock_acquire },
  { "release", lock_release },
  { "locked", lock_locked },
  { NULL, NULL },
};

static const luaL_Reg queue_methods[] = {
  { "put", queue_put },     { "get", queue_get },       { "size", queue_size },       { "empty", queue_empty },
  { "close", queue_close }, { "closed", queue_closed }, { "maxsize", queue_maxsize }, { NULL, NULL },
};

static const luaL_Reg value_methods[] = {
  { "get", value_get },
  { "set", value_set },
  { "add", value_add },
  { NULL, NULL },
};

static void make_metatable(lua_State *L, const char *name, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, obj_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, obj_eq);
  lua_setfield(L, -2, "__eq");
  lua_pushcfunction(L, obj_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

void objects_open(lua_State *L) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  PT_CHECK(pthread_once(&once, init_once));
  make_metatable(L, LOCK_MT, lock_methods);
  make_metatable(L, QUEUE_MT, queue_methods);
  make_metatable(L, VALUE_MT, value_methods);
  lua_newtable(L); /* offset -> this interpreter's handle */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, CACHE_KEY);
  static const luaL_Reg ctors[] = {
    { "lock", g_lock }, { "queue", g_queue }, { "value", g_value }, { "pool", g_pool }, { NULL, NULL },
  };
  luaL_setfuncs(L, ctors, 0);
}
