/* breaker.c — the signal-delivered eval breaker (see breaker.h). */
#include "breaker.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>

static breaker_fn checkpoint_fn;
static int resting_count;  /* set once before any worker starts */
/* Atomic so the signal handler reads a whole pointer; only this thread writes it. */
static _Thread_local _Atomic(lua_State *) current_L;

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  breaker_rest(L);  /* one-shot: back to no hook (or the resting one) */
  checkpoint_fn(L);
}

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  lua_State *L = atomic_load_explicit(&current_L, memory_order_relaxed);
  if (L) lua_sethook(L, hook, LUA_MASKCOUNT, 1);
  errno = saved;
}

void breaker_init(breaker_fn checkpoint) {
  checkpoint_fn = checkpoint;
  struct sigaction sa = { 0 };
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;  /* blocking calls resume instead of failing with EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(BREAKER_SIGNAL, &sa, NULL);
}

void breaker_attach(lua_State *L) {
  atomic_store_explicit(&current_L, L, memory_order_relaxed);
}

lua_State *breaker_current(void) {
  return atomic_load_explicit(&current_L, memory_order_relaxed);
}

void breaker_set_resting(int count) { resting_count = count > 0 ? count : 0; }

void breaker_rest(lua_State *L) {
  if (resting_count) lua_sethook(L, hook, LUA_MASKCOUNT, resting_count);
  else lua_sethook(L, NULL, 0, 0);
}

void breaker_arm_every(lua_State *L, int count) {
  lua_sethook(L, hook, LUA_MASKCOUNT, count);
}

void breaker_interrupt(pthread_t t) { pthread_kill(t, BREAKER_SIGNAL); }
