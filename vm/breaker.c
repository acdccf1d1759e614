/* breaker.c — the signal-delivered eval breaker (see breaker.h). */
#include "breaker.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>

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

static breaker_fn checkpoint_fn;
static int legacy_count;   /* legacy GIL: run the checkpoint every N instructions */
static int resting_count;  /* the count hook installed between requests (0: none) */
/* Atomic so the signal handler reads whole pointers; only this thread writes them. */
static _Thread_local _Atomic(lua_State *) current_L;
static _Thread_local _Atomic(atomic_int *) current_pending;

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  atomic_int *pending = atomic_load_explicit(&current_pending, memory_order_relaxed);
  int asked = pending && atomic_exchange(pending, 0);
  breaker_rest(L);  /* a one-shot hook goes back to none (or the resting one) */
  if (asked || legacy_count) checkpoint_fn(L);
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

void breaker_attach(lua_State *L, atomic_int *pending) {
  atomic_store_explicit(&current_pending, pending, memory_order_relaxed);
  atomic_store_explicit(&current_L, L, memory_order_relaxed);
}

void breaker_switch(lua_State *L) {
  atomic_store_explicit(&current_L, L, memory_order_relaxed);
}

lua_State *breaker_current(void) {
  return atomic_load_explicit(&current_L, memory_order_relaxed);
}

void breaker_set_resting(int count) {
  legacy_count = resting_count = count > 0 ? count : 0;
  if (POLLING && (resting_count == 0 || resting_count > BREAKER_POLL_COUNT))
    resting_count = BREAKER_POLL_COUNT;  /* under TSan, poll at least this often */
}

void breaker_rest(lua_State *L) {
  if (resting_count) lua_sethook(L, hook, LUA_MASKCOUNT, resting_count);
  else lua_sethook(L, NULL, 0, 0);
}

void breaker_arm_every(lua_State *L, int count) {
  lua_sethook(L, hook, LUA_MASKCOUNT, count);
}

void breaker_interrupt(pthread_t t, atomic_int *pending) {
  atomic_store(pending, 1);
  if (!POLLING) pthread_kill(t, BREAKER_SIGNAL);
}
