/*
 * objects.c — gilvm's shared objects as Lua sees them: gil.lock (and, to
 * come, gil.queue, gil.value, gil.pool).
 */
#include "objects.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "runtime.h"

#define LOCK_MT "gil.lock"

static int64_t opt_timeout(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return -1;
  lua_Number s = luaL_checknumber(L, arg);
  luaL_argcheck(L, s >= 0 && s < 1e9, arg, "must be a non-negative number of seconds");
  return (int64_t)(s * 1e9);
}

/* ---- gil.lock: a lock released only by its owner; blocking releases the GIL ---- */

typedef struct gil_lock {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rt_worker *owner;
} gil_lock;

static gil_lock *check_lock(lua_State *L) { return luaL_checkudata(L, 1, LOCK_MT); }

static int g_lock(lua_State *L) {
  gil_lock *k = lua_newuserdatauv(L, sizeof *k, 0);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&k->mu, NULL);
  pthread_cond_init(&k->cv, &ca);
  pthread_condattr_destroy(&ca);
  k->owner = NULL;
  luaL_setmetatable(L, LOCK_MT);
  return 1;
}

static int try_take(gil_lock *k, rt_worker *me) {
  int got = k->owner == NULL;
  if (got) k->owner = me;
  return got;
}

static int lock_acquire(lua_State *L) {
  gil_lock *k = check_lock(L);
  int64_t timeout = opt_timeout(L, 2);
  rt_worker *me = rt_self();
  pthread_mutex_lock(&k->mu);
  if (k->owner == me) {
    pthread_mutex_unlock(&k->mu);
    return luaL_error(L, "lock already held by this thread (%s): it is not re-entrant", me->name);
  }
  int got = try_take(k, me);
  pthread_mutex_unlock(&k->mu);
  if (!got && timeout != 0) {
    uint64_t began = rt_block_begin(me, RT_BLOCK_LOCK);
    uint64_t deadline = timeout < 0 ? UINT64_MAX : clock_now_ns() + (uint64_t)timeout;
    pthread_mutex_lock(&k->mu);
    while (!(got = try_take(k, me)) && !atomic_load(&rt_current->stop)) {
      uint64_t now = clock_now_ns();
      if (now >= deadline) break;
      /* wake at least every 50 ms to notice a stop request */
      uint64_t until = deadline - now < 50000000u ? deadline : now + 50000000u;
      struct timespec ts = { (time_t)(until / 1000000000u), (long)(until % 1000000000u) };
      pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    }
    pthread_mutex_unlock(&k->mu);
    rt_block_end(me, RT_BLOCK_LOCK, began);
    if (!got) rt_check_stop(L);
  }
  lua_pushboolean(L, got);
  return 1;
}

static int lock_release(lua_State *L) {
  gil_lock *k = check_lock(L);
  rt_worker *me = rt_self();
  pthread_mutex_lock(&k->mu);
  rt_worker *owner = k->owner;
  if (owner == me) k->owner = NULL;
  pthread_cond_signal(&k->cv);
  pthread_mutex_unlock(&k->mu);
  if (owner != me)
    return luaL_error(L, owner ? "release of a lock held by another thread (%s)"
                               : "release of an unlocked lock", owner ? owner->name : "");
  return 0;
}

static int lock_locked(lua_State *L) {
  gil_lock *k = check_lock(L);
  pthread_mutex_lock(&k->mu);
  lua_pushboolean(L, k->owner != NULL);
  pthread_mutex_unlock(&k->mu);
  return 1;
}

static int lock_gc(lua_State *L) {
  gil_lock *k = check_lock(L);
  pthread_mutex_destroy(&k->mu);
  pthread_cond_destroy(&k->cv);
  return 0;
}


static const luaL_Reg lock_methods[] = {
  { "acquire", lock_acquire },
  { "release", lock_release },
  { "locked", lock_locked },
  { NULL, NULL },
};

void objects_open(lua_State *L) {
  luaL_newmetatable(L, LOCK_MT);
  luaL_newlib(L, lock_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, lock_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, g_lock);
  lua_setfield(L, -2, "lock");
}
