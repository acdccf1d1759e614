/*
 * runtime.c — workers, blocking calls, and stopping.
 *
 * A worker's life: rt_spawn() (GIL held by the spawner) makes a Lua thread,
 * moves the function and its arguments onto it and starts a pthread. The
 * pthread takes the GIL, runs the function under a traceback handler, keeps
 * its results on its Lua stack (or its error as a C string), marks itself
 * done, and drops the GIL for the last time. A joiner waits for `done`
 * without the GIL, joins the pthread, takes the GIL and copies the results.
 *
 * Stopping (timeout, Ctrl-C) never waits on a thread's good will alone:
 * rt_stop() sets `stop`, wakes every sleeper and joiner, and interrupts every
 * live worker through the eval breaker, whose checkpoint raises an error in
 * Lua. Threads blocked in gilvm's own calls notice `stop` when they wake.
 */
#include "runtime.h"

#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "breaker.h"
#include "clock.h"

runtime *rt_current;
static _Thread_local rt_worker *self_worker;

rt_worker *rt_self(void) { return self_worker; }

/* ---- the GIL's callbacks: how a drop request reaches the holder ---- */

static void on_drop_request(gil_thread *holder, void *arg) {
  (void)arg;
  rt_worker *w = holder->owner;
  breaker_interrupt(w->tid, &w->interrupt);
}

static void checkpoint(lua_State *L) {
  runtime *rt = rt_current;
  rt_worker *w = self_worker;
  if (!w) return;
  if (atomic_load(&rt->stop)) {
    atomic_store(&w->interrupt, 1);  /* keep interrupting code that catches the error */
    breaker_arm_every(L, 1000);
    luaL_error(L, "%s", rt->stop_reason);
  }
  if (gil_check_interval(rt->gil) > 0 || gil_drop_requested(rt->gil))
    gil_yield(rt->gil, &w->gt);
}

/* ---- creation ---- */

static rt_worker *new_worker(runtime *rt) {
  rt_worker *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->rt = rt;
  w->gt.owner = w;
  w->thread_ref = LUA_NOREF;
  pthread_mutex_lock(&rt->mu);
  if (rt->nworkers == rt->cap) {
    int cap = rt->cap ? rt->cap * 2 : 16;
    rt_worker **p = realloc(rt->workers, (size_t)cap * sizeof *p);
    if (!p) {
      pthread_mutex_unlock(&rt->mu);
      free(w);
      return NULL;
    }
    rt->workers = p;
    rt->cap = cap;
  }
  w->id = rt->nworkers;
  rt->workers[rt->nworkers++] = w;
  pthread_mutex_unlock(&rt->mu);
  return w;
}

runtime *rt_create(const char *mode, const char *policy, uint64_t interval_ns, int check_interval) {
  runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return NULL;
  rt->mode = mode;
  rt->gil = gil_create(policy, interval_ns, on_drop_request, rt);
  if (!rt->gil) {
    free(rt);
    return NULL;
  }
  if (check_interval > 0) gil_set_check_interval(rt->gil, check_interval);
  pthread_mutex_init(&rt->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&rt->done_cv, &ca);
  pthread_cond_init(&rt->stop_cv, &ca);
  pthread_condattr_destroy(&ca);
  rt->stop_reason = "";
  rt_current = rt;
  breaker_set_resting(gil_check_interval(rt->gil));
  breaker_init(checkpoint);
  /* worker 0 is the main thread */
  rt_worker *main = new_worker(rt);
  strcpy(main->name, "main");
  main->tid = pthread_self();
  main->reaped = 1;  /* nobody pthread_joins the main thread */
  self_worker = main;
  rt->start_ns = clock_now_ns();
  rt->cpu_start_ns = clock_process_cpu_ns();
  return rt;
}

void rt_destroy(runtime *rt) {
  if (!rt) return;
  for (int i = 0; i < rt->nworkers; i++) {
    free(rt->workers[i]->error);
    free(rt->workers[i]);
  }
  free(rt->workers);
  gil_destroy(rt->gil);
  pthread_mutex_destroy(&rt->mu);
  pthread_cond_destroy(&rt->done_cv);
  pthread_cond_destroy(&rt->stop_cv);
  if (rt_current == rt) rt_current = NULL;
  free(rt);
}

/* ---- workers ---- */

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void *worker_main(void *arg) {
  rt_worker *w = arg;
  runtime *rt = w->rt;
  lua_State *L = w->L;
  self_worker = w;
  gil_take(rt->gil, &w->gt);
  breaker_attach(L, &w->interrupt);
  breaker_rest(L);
  int nargs = lua_gettop(L) - 1;
  lua_pushcfunction(L, traceback);
  lua_insert(L, 1);
  int status = atomic_load(&rt->stop) ? LUA_ERRRUN : lua_pcall(L, nargs, LUA_MULTRET, 1);
  if (status == LUA_OK) {
    lua_remove(L, 1);
    w->nresults = lua_gettop(L);
  } else if (atomic_load(&rt->stop)) {
    w->interrupted = 1;
  } else {
    const char *msg = lua_tostring(L, -1);
    w->error = strdup(msg ? msg : "(error object is not a string)");
  }
  if (status != LUA_OK) lua_settop(L, 0);
  breaker_attach(NULL, NULL);
  w->cpu_ns = clock_thread_cpu_ns();
  pthread_mutex_lock(&rt->mu);
  w->done = 1;
  pthread_cond_broadcast(&rt->done_cv);
  pthread_mutex_unlock(&rt->mu);
  gil_drop(rt->gil, &w->gt);
  return NULL;
}

/* Look for the value at idx among the table's string keys (the globals) or the
   locals of the calling Lua function; push the name found. */
static int find_global_name(lua_State *L, int idx) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_rawequal(L, -1, idx) && lua_type(L, -2) == LUA_TSTRING) {
      lua_pop(L, 1);
      lua_remove(L, -2);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

static int find_local_name(lua_State *L, int idx) {
  lua_Debug ar;
  for (int level = 1; level <= 3 && lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "u", &ar);
    const char *name;
    /* parameters are skipped: `run(fn)` should not call every worker "fn" */
    for (int i = ar.nparams + 1; (name = lua_getlocal(L, &ar, i)) != NULL; i++) {
      int same = name[0] != '(' && lua_rawequal(L, -1, idx);
      lua_pop(L, 1);
      if (same) {
        lua_pushstring(L, name);
        return 1;
      }
    }
  }
  return 0;
}

/* A name a user recognises: the id and the function's name, or file:line. */
static void name_worker(lua_State *L, int idx, rt_worker *w) {
  idx = lua_absindex(L, idx);
  if (find_global_name(L, idx) || find_local_name(L, idx)) {
    snprintf(w->name, sizeof w->name, "%d:%.40s", w->id, lua_tostring(L, -1));
    lua_pop(L, 1);
    return;
  }
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">S", &ar);
  const char *file = strrchr(ar.short_src, '/');
  file = file ? file + 1 : ar.short_src;
  if (ar.linedefined > 0) snprintf(w->name, sizeof w->name, "%d@%.40s:%d", w->id, file, ar.linedefined);
  else snprintf(w->name, sizeof w->name, "%d@%.40s", w->id, file);
}

rt_worker *rt_spawn(lua_State *L, int idx, int n) {
  runtime *rt = rt_current;
  rt_check_stop(L);
  luaL_checkstack(L, n + 2, "too many arguments");
  rt_worker *w = new_worker(rt);
  if (!w) luaL_error(L, "out of memory");
  name_worker(L, idx, w);
  lua_State *T = lua_newthread(L);
  w->L = T;
  w->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  for (int i = 0; i < n; i++) lua_pushvalue(L, idx + i);
  lua_xmove(L, T, n);
  int err = pthread_create(&w->tid, NULL, worker_main, w);
  if (err) {
    pthread_mutex_lock(&rt->mu);
    w->done = w->reaped = w->joined = 1;
    pthread_mutex_unlock(&rt->mu);
    w->error = strdup("could not start thread");
    luaL_error(L, "cannot start a thread: %s", strerror(err));
  }
  return w;
}

static void reap(runtime *rt, rt_worker *w) {
  pthread_mutex_lock(&rt->mu);
  int mine = !w->reaped;
  w->reaped = 1;
  pthread_mutex_unlock(&rt->mu);
  if (mine) pthread_join(w->tid, NULL);
}

static void deadline_after(struct timespec *ts, uint64_t ns) {
  uint64_t t = clock_now_ns() + ns;
  ts->tv_sec = (time_t)(t / 1000000000u);
  ts->tv_nsec = (long)(t % 1000000000u);
}

int rt_join(lua_State *L, rt_worker *w, int64_t timeout_ns) {
  runtime *rt = rt_current;
  rt_worker *me = self_worker;
  uint64_t began = rt_block_begin(me, RT_BLOCK_JOIN);
  struct timespec deadline;
  if (timeout_ns >= 0) deadline_after(&deadline, (uint64_t)timeout_ns);
  pthread_mutex_lock(&rt->mu);
  while (!w->done && !atomic_load(&rt->stop)) {
    if (timeout_ns < 0) pthread_cond_wait(&rt->done_cv, &rt->mu);
    else if (pthread_cond_timedwait(&rt->done_cv, &rt->mu, &deadline) == ETIMEDOUT) break;
  }
  int done = w->done;
  pthread_mutex_unlock(&rt->mu);
  if (done) reap(rt, w);
  rt_block_end(me, RT_BLOCK_JOIN, began);
  if (!done) rt_check_stop(L);
  return done;
}

void rt_sleep(lua_State *L, uint64_t ns) {
  runtime *rt = rt_current;
  rt_worker *me = self_worker;
  uint64_t began = rt_block_begin(me, RT_BLOCK_SLEEP);
  struct timespec deadline;
  deadline_after(&deadline, ns);
  pthread_mutex_lock(&rt->mu);
  while (!atomic_load(&rt->stop))
    if (pthread_cond_timedwait(&rt->stop_cv, &rt->mu, &deadline) == ETIMEDOUT) break;
  pthread_mutex_unlock(&rt->mu);
  rt_block_end(me, RT_BLOCK_SLEEP, began);
  rt_check_stop(L);
}

uint64_t rt_block_begin(rt_worker *self, rt_block kind) {
  (void)kind;
  uint64_t now = clock_now_ns();
  gil_drop(rt_current->gil, &self->gt);
  return now;
}

void rt_block_end(rt_worker *self, rt_block kind, uint64_t began) {
  gil_take(rt_current->gil, &self->gt);
  uint64_t spent = clock_now_ns() - began;
  if (kind == RT_BLOCK_NATIVE) self->free_ns += spent;
  else self->blocked_ns += spent;
}

void rt_check_stop(lua_State *L) {
  runtime *rt = rt_current;
  if (atomic_load(&rt->stop)) luaL_error(L, "%s", rt->stop_reason);
}

/* ---- stopping and the end of the run ---- */

void rt_stop(runtime *rt, int code, const char *reason) {
  int none = 0;
  pthread_mutex_lock(&rt->mu);
  if (atomic_compare_exchange_strong(&rt->stop, &none, code)) rt->stop_reason = reason;
  pthread_cond_broadcast(&rt->stop_cv);
  pthread_cond_broadcast(&rt->done_cv);
  for (int i = 0; i < rt->nworkers; i++) {
    rt_worker *w = rt->workers[i];
    if (!w->done && (!w->reaped || i == 0)) breaker_interrupt(w->tid, &w->interrupt);
  }
  pthread_mutex_unlock(&rt->mu);
}

void rt_wait_all(runtime *rt) {
  for (int i = 1;; i++) {
    pthread_mutex_lock(&rt->mu);
    int n = rt->nworkers;
    rt_worker *w = i < n ? rt->workers[i] : NULL;
    pthread_mutex_unlock(&rt->mu);
    if (!w) break;
    reap(rt, w);
  }
  rt->end_ns = clock_now_ns();
  rt->cpu_ns = clock_process_cpu_ns() - rt->cpu_start_ns;
}

void rt_set_figure(runtime *rt, const char *name, const char *value) {
  pthread_mutex_lock(&rt->mu);
  int i = 0;
  while (i < rt->nfigures && strcmp(rt->figures[i].name, name) != 0) i++;
  if (i < (int)(sizeof rt->figures / sizeof rt->figures[0])) {
    snprintf(rt->figures[i].name, sizeof rt->figures[i].name, "%s", name);
    snprintf(rt->figures[i].value, sizeof rt->figures[i].value, "%s", value);
    if (i == rt->nfigures) rt->nfigures++;
  }
  pthread_mutex_unlock(&rt->mu);
}
