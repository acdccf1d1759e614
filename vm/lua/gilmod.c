/*
 * gilmod.c — the `gil` Lua module: what a script sees of gilvm.
 *
 * Every function here runs with the GIL held, as all Lua code does. A
 * function that blocks (sleep, join, lock) releases the GIL around the wait
 * with rt_block_begin/rt_block_end, the way CPython's
 * Py_BEGIN_ALLOW_THREADS does, and raises the stop error afterwards if the
 * run is being stopped.
 */
#include "gilmod.h"

#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "breaker.h"
#include "check.h"
#include "clock.h"
#include "lio.h"
#include "objects.h"
#include "runtime.h"
#include "sockets.h"

#define HANDLE_MT "gil.handle"

/* ---- worker handles ---- */

static rt_worker *check_handle(lua_State *L, int idx) { return *(rt_worker **)luaL_checkudata(L, idx, HANDLE_MT); }

static void push_handle(lua_State *L, rt_worker *w) {
  rt_worker **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = w;
  luaL_setmetatable(L, HANDLE_MT);
  rt_handle_new(w);
}

/* The last handle of a joined worker lets the runtime free its record. */
static int h_gc(lua_State *L) {
  rt_handle_gone(L, *(rt_worker **)lua_touserdata(L, 1));
  return 0;
}

static int h_join(lua_State *L) {
  rt_worker *w = check_handle(L, 1);
  int64_t timeout = args_opt_timeout(L, 2);
  if (w == rt_self()) return luaL_error(L, "thread '%s' cannot join itself", w->name);
  if (w->id == 0) return luaL_error(L, "the main thread cannot be joined");
  /* a join without a timeout is an edge of the waits-for graph (objects.c) */
  int forked = w->kind == RT_PROCESS && !w->sim_proc; /* --sim's processes are threads of this process */
  int graph = timeout < 0 && !rt_inherited(rt_current, w) && (!forked || w->pid > 0);
  if (graph) objects_join_begin(L, forked ? w->pid : rt_pid(), w->id);
  int done = rt_join(L, w, timeout);
  if (graph) objects_join_end();
  if (!done) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return rt_push_results(L, w);
}

static int h_index(lua_State *L) {
  rt_worker *w = check_handle(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "name") == 0)
    lua_pushstring(L, w->name);
  else if (strcmp(k, "id") == 0)
    lua_pushinteger(L, w->local_id); /* as the script's process counts (--sim: w->id is run-wide) */
  else if (strcmp(k, "join") == 0)
    lua_pushcfunction(L, h_join);
  else
    lua_pushnil(L);
  return 1;
}

static int h_newindex(lua_State *L) {
  rt_worker *w = check_handle(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "name") != 0) return luaL_error(L, "a thread handle has no field '%s' to set", k);
  const char *name = luaL_checkstring(L, 3);
  /* under rt->mu: other threads read names (worker_name, the deadlock detector) */
  PT_CHECK(pthread_mutex_lock(&rt_current->mu));
  snprintf(w->name, sizeof w->name, "%s", name);
  PT_CHECK(pthread_mutex_unlock(&rt_current->mu));
  return 0;
}

static int h_tostring(lua_State *L) {
  rt_worker *w = check_handle(L, 1);
  lua_pushfstring(L, "thread %s", w->name);
  return 1;
}

static int spawn(lua_State *L, rt_kind kind) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  rt_worker *w = rt_spawn(L, kind, 1, lua_gettop(L));
  push_handle(L, w);
  return 1;
}

/* gil.spawn: the mode's kind of worker */
static int g_spawn(lua_State *L) { return spawn(L, rt_current->spawn_kind); }

/* gil.thread: a thread, under the GIL in gil and fork modes, with its own interpreter in nogil */
static int g_thread(lua_State *L) {
  return spawn(L, rt_current->spawn_kind == RT_OWN_INTERP ? RT_OWN_INTERP : RT_THREAD);
}

/* gil.process: a forked process, in any mode */
static int g_process(lua_State *L) { return spawn(L, RT_PROCESS); }

static int g_current(lua_State *L) {
  push_handle(L, rt_self());
  return 1;
}

/* ---- time and work ---- */

static int g_sleep(lua_State *L) {
  rt_sleep(L, args_seconds(L, 1));
  return 0;
}

static int g_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)clock_now_ns() / 1e9);
  return 1;
}

static int g_thread_cpu(lua_State *L) {
  lua_pushnumber(L, (lua_Number)clock_thread_cpu_ns() / 1e9);
  return 1;
}

/* C busy work, like a C extension's loop; release=true runs it without the GIL. */
static int g_native(lua_State *L) {
  uint64_t ns = args_seconds(L, 1);
  int release = lua_toboolean(L, 2);
  rt_worker *me = rt_self();
  uint64_t began = release ? rt_block_begin(me, RT_BLOCK_NATIVE) : 0;
  if (sim_on()) { /* exactly ns of virtual CPU, in one piece: C code does not switch */
    sim_advance(ns);
    if (release) rt_block_end(me, RT_BLOCK_NATIVE, began);
    rt_check_stop(L);
    return 0;
  }
  uint64_t end = clock_thread_cpu_ns() + ns;
  volatile uint64_t sink = 0;
  while (clock_thread_cpu_ns() < end && !atomic_load(&rt_current->stop))
    for (uint64_t i = 0; i < 2000; i++) sink += i * i;
  if (release) rt_block_end(me, RT_BLOCK_NATIVE, began);
  rt_check_stop(L);
  return 0;
}

/* gil.compute: interpreted busy work, so it is preemptible at its loop's jumps. */
static const char compute_src[] =
    "local cpu = ...\n"
    "return function(s)\n"
    "  if type(s) ~= 'number' or s < 0 then\n"
    "    error(\"bad argument #1 to 'compute' (non-negative number expected)\", 2)\n"
    "  end\n"
    "  local deadline, x = cpu() + s, 0\n"
    "  repeat\n"
    "    for i = 1, 10000 do x = (x + i * i) % 1000003 end\n"
    "  until cpu() >= deadline\n"
    "  return x\n"
    "end\n";

/* gil.compute under --sim: exactly s of virtual CPU, cut at every event due meanwhile, each cut a
   check point (as the real loop's jumps are). Under a GIL with a check interval (legacy) the real
   loop's resting hook runs every that many instructions, and only there does it release: so, with
   a waiter about, compute is also cut at those points (instructions and the hook's cost apart), and
   only they are check points. */
static int g_sim_compute(lua_State *L) {
  if (lua_type(L, 1) != LUA_TNUMBER || lua_tonumber(L, 1) < 0)
    return luaL_error(L, "bad argument #1 to 'compute' (non-negative number expected)");
  uint64_t left = (uint64_t)llround(lua_tonumber(L, 1) * 1e9);
  gil_t *g = rt_gil();
  int every = gil_check_interval(g);
  uint64_t period = every > 0 ? (uint64_t)llround(every * sim_config_get()->insn_ns) + sim_cost(SIM_COST_HOOK) : 0;
  uint64_t to_check = period; /* until the next resting-hook call */
  while (left > 0) {
    uint64_t step = sim_room() + 1; /* just past the next event: the scheduler hands over there */
    if (step > left) step = left;
    if (period && step > to_check && gil_waiters(g) > 0) step = to_check;
    sim_advance(step);
    left -= step;
    int check = !period;
    if (period) {
      check = step >= to_check;
      to_check = check ? period - (step - to_check) % period : to_check - step;
    }
    if (atomic_load(&rt_current->stop) || (check && gil_should_yield(g))) rt_checkpoint(L);
  }
  lua_pushinteger(L, 0);
  return 1;
}

/* os.clock under --sim: the process's virtual CPU time. */
static int g_sim_clock(lua_State *L) {
  lua_pushnumber(L, (lua_Number)clock_process_cpu_ns() / 1e9);
  return 1;
}

static void push_compute(lua_State *L) {
  if (sim_on()) {
    lua_pushcfunction(L, g_sim_compute);
    return;
  }
  if (luaL_loadbufferx(L, compute_src, sizeof compute_src - 1, "=gil.compute", "t") != LUA_OK) lua_error(L);
  lua_pushcfunction(L, g_thread_cpu);
  lua_call(L, 1, 1);
}

/* ---- the switch interval and facts ---- */

static int g_setswitchinterval(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s > 0 && s < 1e6, 1, "switch interval must be greater than 0");
  gil_set_interval(rt_gil(), (uint64_t)llround(s * 1e9));
  return 0;
}

static int g_getswitchinterval(lua_State *L) {
  lua_pushnumber(L, (lua_Number)gil_interval(rt_gil()) / 1e9);
  return 1;
}

static int g_mode(lua_State *L) {
  lua_pushstring(L, rt_mode_names[rt_current->mode]);
  return 1;
}

static int g_cpu_count(lua_State *L) {
  lua_pushinteger(L, sysconf(_SC_NPROCESSORS_ONLN));
  return 1;
}

static int g_report(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_checkany(L, 2);
  char value[48];
  if (lua_isinteger(L, 2))
    snprintf(value, sizeof value, "%lld", (long long)lua_tointeger(L, 2));
  else if (lua_type(L, 2) == LUA_TNUMBER)
    snprintf(value, sizeof value, "%.6g", lua_tonumber(L, 2));
  else
    snprintf(value, sizeof value, "%s", luaL_tolstring(L, 2, NULL));
  rt_set_figure(rt_current, name, value);
  return 0;
}

/* gil._debug(): the runtime's bookkeeping, for tests of what it keeps. */
static int g_debug(lua_State *L) {
  runtime *rt = rt_current;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  int records = rt->nworkers - rt->first_own + 1, interps = rt->ninterps, released = rt->gone.n;
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, records); /* live worker records of this process, main (or self) included */
  lua_setfield(L, -2, "records");
  lua_pushinteger(L, interps);
  lua_setfield(L, -2, "interps");
  lua_pushinteger(L, released);
  lua_setfield(L, -2, "released");
  lua_pushinteger(L, rt->fork_walk); /* records visited when this process was forked */
  lua_setfield(L, -2, "fork_walk");
  lua_pushinteger(L, (lua_Integer)objects_deadlock_checks()); /* the deadlock detector's looks so far */
  lua_setfield(L, -2, "checks");
  lua_pushinteger(L, objects_board_waits()); /* waits without a timeout, every process's, on the board now */
  lua_setfield(L, -2, "waits");
  return 1;
}

/* gil._block(): block in C holding the GIL until the process ends: for tests
   of what the stop does with a thread it cannot reach. */
static int g_block(lua_State *L) {
  (void)L;
  for (;;) pause();
  return 0;
}

/* ---- coroutines: the breaker must interrupt the coroutine that is running ---- */

/* Like coroutine.resume, but tells the breaker which Lua state this OS thread runs. */
static int resume(lua_State *L, lua_State *co, int narg) {
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  lua_State *prev = breaker_current();
  breaker_switch(co);
  int nres, status = lua_resume(co, L, narg, &nres);
  breaker_switch(prev);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  int r = resume(L, co, lua_gettop(L) - 1);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

/* As Lua's auxwrap: a coroutine that died is closed, and the error of its
   __close handlers (or its own) is moved off its stack and raised. */
static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int r = resume(L, co, lua_gettop(L));
  if (r >= 0) return r;
  int status = lua_status(co);
  if (status != LUA_OK && status != LUA_YIELD) {
#if LUA_VERSION_RELEASE_NUM >= 50406
    status = lua_closethread(co, L);
#else
    status = lua_resetthread(co);
#endif
    lua_xmove(co, L, 1);
  }
  if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) { /* add where, as Lua does */
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrapped, 1);
  return 1;
}

/* A worker's body runs on a Lua thread of its own, but it is that worker's
   main thread: coroutine.running and a stray yield answer as in Lua's. */
static int co_running(lua_State *L) {
  int ismain = lua_pushthread(L);
  lua_pushboolean(L, ismain || L == breaker_base());
  return 2;
}

static int co_yield_checked(lua_State *L) {
  if (L == breaker_base() && !lua_isyieldable(L)) return luaL_error(L, "attempt to yield from outside a coroutine");
  return lua_yield(L, lua_gettop(L));
}

/* Replace some functions of a standard library table (global `lib`). */
static void patch_lib(lua_State *L, const char *lib, const luaL_Reg *funcs) {
  if (lua_getglobal(L, lib) == LUA_TTABLE) luaL_setfuncs(L, funcs, 0);
  lua_pop(L, 1);
}

static const luaL_Reg coroutine_patches[] = {
  { "resume", co_resume },       { "wrap", co_wrap }, { "running", co_running },
  { "yield", co_yield_checked }, { NULL, NULL },
};

/* ---- os.exit: safe from any thread ---- */

/* Like lua5.4's os.exit, from any thread: `close` closes the caller's
   interpreter (in gil mode, the shared one) with every other thread of the
   process kept out of Lua; then stdio is flushed and the process ends. */
static int os_exit(lua_State *L) {
  int status;
  if (lua_isboolean(L, 1))
    status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else
    status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  if (sim_on() && rt_self() && rt_self()->proc) return rt_proc_exit(L, status); /* that process only */
  rt_exit_begin();
  if (lua_toboolean(L, 2)) {
    breaker_attach(NULL, NULL, NULL);
    lua_close(L);
  }
  lio_std_finish(); /* what a stopped print left pending: rt_exit flushes only stdio's buffers */
  rt_exit(status);
  return 0;
}

static const luaL_Reg os_patches[] = {
  { "exit", os_exit },
  { NULL, NULL },
};

/* ---- the module ---- */

static const luaL_Reg gil_funcs[] = {
  { "spawn", g_spawn },
  { "thread", g_thread },
  { "process", g_process },
  { "current", g_current },
  { "sleep", g_sleep },
  { "now", g_now },
  { "native", g_native },
  { "setswitchinterval", g_setswitchinterval },
  { "getswitchinterval", g_getswitchinterval },
  { "mode", g_mode },
  { "cpu_count", g_cpu_count },
  { "report", g_report },
  { "_debug", g_debug },
  { "_block", g_block },
  { NULL, NULL },
};

static void make_metatables(lua_State *L) {
  static const luaL_Reg handle_mm[] = {
    { "__index", h_index }, { "__newindex", h_newindex }, { "__tostring", h_tostring }, { "__gc", h_gc },
    { NULL, NULL },
  };
  args_metatable(L, HANDLE_MT, NULL, handle_mm);
}

int luaopen_gil(lua_State *L) {
  make_metatables(L);
  luaL_newlib(L, gil_funcs);
  push_compute(L);
  lua_setfield(L, -2, "compute");
  objects_open(L);
  sockets_open(L);
  return 1;
}

void gilmod_open(lua_State *L) {
  breaker_open_debug(L); /* first: it initialises what every new Lua thread copies */
  luaL_requiref(L, "gil", luaopen_gil, 1); /* global `gil` and package.loaded.gil */
  lua_pop(L, 1);
  patch_lib(L, "coroutine", coroutine_patches);
  patch_lib(L, "os", os_patches);
  lio_open(L);
  if (sim_on()) { /* pin what Lua would draw at random: math.random's seed; os.clock is virtual */
    lua_getglobal(L, "os");
    lua_pushcfunction(L, g_sim_clock);
    lua_setfield(L, -2, "clock");
    lua_pop(L, 1);
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, (lua_Integer)sim_config_get()->seed);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
  }
}

const rt_host gilmod_host = { .open = gilmod_open, .before_wait_all = objects_close_pools };
