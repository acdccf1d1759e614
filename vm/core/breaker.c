/* breaker.c — the signal-delivered eval breaker, and the script's debug hooks beside it (see breaker.h). */
#include "breaker.h"
#include "check.h"
#include "clock.h"
#include "sim.h"

#include <lauxlib.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_THREAD__)
#define POLLING 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POLLING 1
#endif
#endif
#ifndef POLLING
#define POLLING 0
#endif

#define HOOKKEY "_HOOKKEY" /* where Lua's debug library keeps hook functions */
#define USERKEY "gilvm.userhooks" /* thread -> user_hook, weak keys */

static breaker_fn checkpoint_fn;
static void (*sim_tick_fn)(int n); /* --sim: instructions counted (NULL in a real run) */
static int sim_count; /* --sim: the count hook's period on every Lua thread */
static int (*sim_jitter_fn)(void); /* --sim: a seeded count, 1..sim_count */
/* --sim: where this thread's pending request is. 0: none seen yet; 1: it waits a seeded
   number of instructions (so that it does not always land on the same instruction of a
   loop whose length divides the tick); 2: it waits for the next check point. */
static _Thread_local int sim_phase;
static _Thread_local int sim_wait_count;
static int periodic_count; /* the GIL's check interval: run the checkpoint every N instructions */
static int resting_count; /* the breaker's count between requests (0: none) */
static atomic_ulong arms; /* one-shot armings (each costs lua_sethook: O(stack depth)) */
static atomic_ulong sets; /* lua_sethook calls that mark every frame, armings included */
#define ARMING UINT64_MAX /* in a thread's sent_ns while its signal handler arms */
static atomic_int lose_signals; /* GILVM_LOSE_SIGNALS: signals still to drop (tests; see breaker_interrupt) */
/* Atomic so the signal handler reads whole pointers; only this thread writes them. */
static _Thread_local _Atomic(lua_State *) current_L;
static _Thread_local _Atomic(atomic_int *) current_pending;
static _Thread_local _Atomic(_Atomic uint64_t *) current_sent; /* see breaker_interrupt */
static _Thread_local lua_State *base_L; /* the state this thread was attached with */
static _Thread_local int every; /* stopping: the checkpoint every N instructions */
static _Thread_local int periodic_done; /* instructions counted towards the periodic checkpoint */

/* What the script asked of debug.sethook for one Lua thread. */
typedef struct user_hook {
  lua_State *L; /* owner: a new thread starts with a copy of the main thread's extra space */
  int mask; /* LUA_MASK* the script asked for (0: no hook) */
  int count; /* its count, as given */
  int done; /* instructions counted towards its next count event */
} user_hook;

static user_hook *user_of(lua_State *L) {
  user_hook *u = *(user_hook **)lua_getextraspace(L);
  return u && u->L == L ? u : NULL;
}

static int gcd(int a, int b) {
  while (b) {
    int t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static int is_armed_for(lua_State *L) {
  atomic_int *pending = atomic_load_explicit(&current_pending, memory_order_relaxed);
  return L == atomic_load_explicit(&current_L, memory_order_relaxed) && pending && atomic_load(pending);
}

static void hook(lua_State *L, lua_Debug *ar);

/* One-shot: the checkpoint at L's next check point, keeping the script's events. */
static void arm(lua_State *L) {
  atomic_fetch_add_explicit(&arms, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&sets, 1, memory_order_relaxed);
  lua_sethook(L, hook, lua_gethookmask(L) | LUA_MASKCOUNT, 1);
}

/* Put on L what the script and the breaker want now. lua_sethook marks every
   frame of L's stack, so it is called only when something changed. */
static void settle(lua_State *L) {
  user_hook *u = user_of(L);
  int umask = u ? u->mask : 0;
  int requested = !every && is_armed_for(L); /* stopping: every N instructions already */
  /* --sim: a request waits a seeded few instructions, then for the next check point (a line or a
     backward jump, a call, a return) */
  int sim_wait = sim_count && requested;
  if (sim_count && !sim_wait) sim_phase = 0;
  /* polling (TSan): the resting hook finds a request within BREAKER_POLL_COUNT
     instructions, and arming (O(stack depth)) at every take made a deep
     stack's switches quadratic */
  int armed = requested && !sim_count && !POLLING;
  int bcount = every ? every : armed ? 1 : resting_count;
  int scount = sim_wait && sim_phase == 1 ? sim_wait_count : sim_count;
  if (sim_count) bcount = bcount ? gcd(bcount, scount) : scount;
  int defer = sim_wait && sim_phase == 2;
  int mask = umask | (defer ? LUA_MASKLINE | LUA_MASKCALL | LUA_MASKRET : 0), count = 0;
  if (bcount) {
    mask |= LUA_MASKCOUNT;
    count = (umask & LUA_MASKCOUNT) && u->count > 0 ? gcd(u->count, bcount) : bcount;
  } else if (umask & LUA_MASKCOUNT) {
    count = u->count;
  }
  if (mask == 0) {
    if (lua_gethook(L)) lua_sethook(L, NULL, 0, 0);
  } else if (lua_gethook(L) != hook || lua_gethookmask(L) != mask || lua_gethookcount(L) != count) {
    if (armed) atomic_fetch_add_explicit(&arms, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sets, 1, memory_order_relaxed);
    lua_sethook(L, hook, mask, count);
  }
  if (!sim_count && !POLLING && !every && !armed && is_armed_for(L)) arm(L); /* a request that arrived meanwhile */
}

/* Call the script's hook function for L, as Lua's debug library does. */
static void call_user(lua_State *L, lua_Debug *ar) {
  static const char *const names[] = { "call", "return", "line", "count", "tail call" };
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOOKKEY) == LUA_TTABLE) {
    lua_pushthread(L);
    if (lua_rawget(L, -2) == LUA_TFUNCTION) {
      lua_pushstring(L, names[ar->event]);
      if (ar->currentline >= 0)
        lua_pushinteger(L, ar->currentline);
      else
        lua_pushnil(L);
      lua_call(L, 2, 0);
    }
  }
}

static int event_mask(int event) { return event == LUA_HOOKTAILCALL ? LUA_MASKCALL : 1 << event; }

static void hook(lua_State *L, lua_Debug *ar) {
  user_hook *u = user_of(L);
  int for_user = u && (u->mask & event_mask(ar->event));
  int run = 0;
  if (sim_count && ar->event != LUA_HOOKCOUNT) { /* --sim: a check point; a request is served here */
    if (sim_phase == 2 && is_armed_for(L)) {
      atomic_store(atomic_load_explicit(&current_pending, memory_order_relaxed), 0);
      sim_phase = 0;
      run = 1;
    }
  } else if (ar->event == LUA_HOOKCOUNT) {
    int n = lua_gethookcount(L); /* instructions since the last count event */
    atomic_int *pending = atomic_load_explicit(&current_pending, memory_order_relaxed);
    if (sim_tick_fn) { /* may hand the baton over and get it back */
      int rests = periodic_count && periodic_done + n >= periodic_count; /* a real resting hook's call */
      sim_tick_fn(n);
      if (rests) sim_charge(sim_cost(SIM_COST_HOOK)); /* what legacy's hook costs a real run, every interval */
    }
    _Atomic uint64_t *sent = atomic_load_explicit(&current_sent, memory_order_relaxed);
    /* --sim: a request is seen once its delivery (the signal cost) is over: sent_ns is when */
    if (sim_count && is_armed_for(L) && sim_phase < 2 && (!sent || clock_now_ns() >= atomic_load(sent))) {
      if (sim_phase++ == 0) sim_wait_count = sim_jitter_fn();
    }
    run = sim_count ? every : (pending && atomic_exchange(pending, 0)) || every;
    if (periodic_count && (periodic_done += n) >= periodic_count) {
      periodic_done = 0;
      run = 1;
    }
    if (for_user) {
      u->done += n;
      for_user = u->done >= u->count;
      if (for_user) u->done = 0;
    }
  }
  settle(L); /* a one-shot count goes back to what is wanted between requests */
  if (run) checkpoint_fn(L);
  if (for_user) call_user(L, ar);
}

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  lua_State *L = atomic_load_explicit(&current_L, memory_order_relaxed);
  _Atomic uint64_t *sent = atomic_load_explicit(&current_sent, memory_order_relaxed);
  if (sent) atomic_store(sent, ARMING); /* no signal again while arming: it costs O(stack depth) */
  if (L) arm(L);
  if (sent) atomic_store(sent, clock_now_ns());
  errno = saved;
}

static void print_stats(void) {
  fprintf(stderr, "gilvm: breaker armed %lu times, hooks set %lu times\n", atomic_load(&arms), atomic_load(&sets));
}

void breaker_init(breaker_fn checkpoint) {
  checkpoint_fn = checkpoint;
  struct sigaction sa = { 0 };
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART; /* blocking calls resume instead of failing with EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(BREAKER_SIGNAL, &sa, NULL);
  const char *lose = getenv("GILVM_LOSE_SIGNALS");
  if (lose && *lose) atomic_store(&lose_signals, atoi(lose));
  const char *stats = getenv("GILVM_BREAKER_STATS");
  if (stats && *stats && strcmp(stats, "0") != 0) atexit(print_stats);
}

void breaker_attach(lua_State *L, atomic_int *pending, _Atomic uint64_t *sent_ns) {
  atomic_store_explicit(&current_pending, pending, memory_order_relaxed);
  atomic_store_explicit(&current_sent, sent_ns, memory_order_relaxed);
  atomic_store_explicit(&current_L, L, memory_order_relaxed);
  base_L = L;
  every = 0;
  if (L) settle(L); /* a request that came before the thread ran Lua is not lost */
}

void breaker_switch(lua_State *L) {
  atomic_store_explicit(&current_L, L, memory_order_relaxed);
  if (L) settle(L);
}

lua_State *breaker_current(void) { return atomic_load_explicit(&current_L, memory_order_relaxed); }

lua_State *breaker_base(void) { return base_L; }

void breaker_set_sim(void (*tick)(int n), int (*jitter)(void), int count) {
  sim_tick_fn = tick;
  sim_jitter_fn = jitter;
  sim_count = count;
}

void breaker_set_resting(int count) {
  periodic_count = resting_count = count > 0 ? count : 0;
  if (POLLING && (resting_count == 0 || resting_count > BREAKER_POLL_COUNT))
    resting_count = BREAKER_POLL_COUNT; /* under TSan, poll at least this often */
}

void breaker_rest(lua_State *L) { settle(L); }

void breaker_arm_every(lua_State *L, int count) {
  every = count;
  settle(L);
}

/* Signals lost to Lua, and sent again. Lua can lose an arming: a signal that
   lands while the interpreter (luaG_traceexec) has just read a hook mask of 0
   and is about to clear the running frame's trap leaves the hook set and the
   trap cleared, so that frame never calls the hook; and the pending flag
   stops every later signal, so the holder ran on for ever (found with
   scripts/echo_convoy.lua under -g iopri and chrt -f 1: a CPU thread with
   its count hook set, its frame's trap 0 and its flag 1; not even the stop
   got through). So a request still pending BREAKER_RESEND_NS after its
   signal was sent, and after the handler last finished arming, is signalled
   again; never while the handler is arming (sent_ns is ARMING then). Arming
   costs O(stack depth): re-arming every 50 us livelocked a deep stack
   (issue 7), and so did a resend every 10 ms that did not wait for the
   arming to end. GILVM_LOSE_SIGNALS=N drops the first N signals, so a test
   can make one. */
#define BREAKER_RESEND_NS 10000000u

void breaker_interrupt(pthread_t t, atomic_int *pending, _Atomic uint64_t *sent_ns) {
  if (POLLING) {
    atomic_store(pending, 1); /* polled by the thread itself: nothing to lose */
    return;
  }
  uint64_t now = clock_now_ns(), sent = atomic_load(sent_ns);
  if (atomic_exchange(pending, 1) == 0 || (sent != ARMING && now - sent >= BREAKER_RESEND_NS)) {
    atomic_store(sent_ns, now);
    if (atomic_load(&lose_signals) > 0 && atomic_fetch_sub(&lose_signals, 1) > 0) return; /* lost, on purpose */
    PT_CHECK_OR(pthread_kill(t, BREAKER_SIGNAL), ESRCH); /* ESRCH: the thread has just ended */
  }
}

int breaker_polling(void) { return POLLING; }

unsigned long breaker_arms(void) { return atomic_load(&arms); }

/* ---- debug.sethook / debug.gethook, kept beside the breaker's own hook ---- */

static void checkstack(lua_State *L, lua_State *L1, int n) {
  if (L != L1 && !lua_checkstack(L1, n)) luaL_error(L, "stack overflow");
}

static lua_State *getthread(lua_State *L, int *arg) {
  if (lua_isthread(L, 1)) {
    *arg = 1;
    return lua_tothread(L, 1);
  }
  *arg = 0;
  return L;
}

static int makemask(const char *smask, int count) {
  int mask = 0;
  if (strchr(smask, 'c')) mask |= LUA_MASKCALL;
  if (strchr(smask, 'r')) mask |= LUA_MASKRET;
  if (strchr(smask, 'l')) mask |= LUA_MASKLINE;
  if (count > 0) mask |= LUA_MASKCOUNT;
  return mask;
}

/* A weak-keyed registry table, created on first use; left on the stack. */
static void weak_table(lua_State *L, const char *key) {
  if (!luaL_getsubtable(L, LUA_REGISTRYINDEX, key)) {
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_pushvalue(L, -1);
    lua_setmetatable(L, -2);
  }
}

/* L1's record, made on first use; it lives as long as L1 (weak key). */
static user_hook *user_record(lua_State *L, lua_State *L1) {
  user_hook *u = user_of(L1);
  if (u) return u;
  weak_table(L, USERKEY);
  lua_pushthread(L1);
  lua_xmove(L1, L, 1);
  u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  u->L = L1;
  lua_rawset(L, -3);
  lua_pop(L, 1);
  *(user_hook **)lua_getextraspace(L1) = u;
  return u;
}

/* debug.sethook([thread,] hook, mask [, count]): as Lua's, beside the breaker's hook. */
static int db_sethook(lua_State *L) {
  int arg, mask = 0, count = 0;
  lua_State *L1 = getthread(L, &arg);
  if (lua_isnoneornil(L, arg + 1)) {
    lua_settop(L, arg + 1);
  } else {
    const char *smask = luaL_checkstring(L, arg + 2);
    luaL_checktype(L, arg + 1, LUA_TFUNCTION);
    count = (int)luaL_optinteger(L, arg + 3, 0);
    mask = makemask(smask, count);
  }
  checkstack(L, L1, 1);
  user_hook *u = user_record(L, L1);
  weak_table(L, HOOKKEY);
  lua_pushthread(L1);
  lua_xmove(L1, L, 1);
  lua_pushvalue(L, arg + 1);
  lua_rawset(L, -3); /* hooktable[L1] = the hook function */
  u->mask = mask;
  u->count = count;
  u->done = 0;
  settle(L1);
  return 0;
}

/* debug.gethook([thread]): what the script set, never the breaker's hook. */
static int db_gethook(lua_State *L) {
  int arg;
  lua_State *L1 = getthread(L, &arg);
  user_hook *u = user_of(L1);
  if (!u || u->mask == 0) {
    luaL_pushfail(L);
    return 1;
  }
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOOKKEY) == LUA_TTABLE) {
    checkstack(L, L1, 1);
    lua_pushthread(L1);
    lua_xmove(L1, L, 1);
    lua_rawget(L, -2); /* hooktable[L1] */
  } else {
    lua_pushnil(L);
  }
  lua_remove(L, -2);
  char smask[4];
  int i = 0;
  if (u->mask & LUA_MASKCALL) smask[i++] = 'c';
  if (u->mask & LUA_MASKRET) smask[i++] = 'r';
  if (u->mask & LUA_MASKLINE) smask[i++] = 'l';
  smask[i] = '\0';
  lua_pushstring(L, smask);
  lua_pushinteger(L, u->count);
  return 3;
}

void breaker_open_debug(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  *(user_hook **)lua_getextraspace(lua_tothread(L, -1)) = NULL; /* lua_newstate leaves it unset */
  lua_pop(L, 1);
  lua_getglobal(L, "debug");
  if (lua_istable(L, -1)) {
    lua_pushcfunction(L, db_sethook);
    lua_setfield(L, -2, "sethook");
    lua_pushcfunction(L, db_gethook);
    lua_setfield(L, -2, "gethook");
  }
  lua_pop(L, 1);
}
