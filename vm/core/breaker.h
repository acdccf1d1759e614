/*
 * breaker.h — the eval breaker: how one OS thread makes the Lua code
 * running on another OS thread stop at its next check point.
 *
 * CPython checks an `eval_breaker` flag at backward jumps and calls. Lua
 * has the same check points for hooks, and lua_sethook() is documented as
 * safe to call from a signal handler (lua.c stops a script on Ctrl-C that
 * way). So: breaker_interrupt() sends SIGURG to a thread; the handler, on
 * that thread, sets a count hook of 1 on the Lua state the thread is
 * running; at the next jump or call the hook clears itself and calls the
 * runtime's checkpoint function. No hook is installed while nobody asks,
 * so uncontended code runs at the speed of plain lua5.4.
 *
 * One exception: ThreadSanitizer defers a signal until the thread next
 * enters libc, and a pure Lua loop never does, so a TSan build would never
 * be interrupted. Built with TSan, the breaker polls instead: a resting
 * count hook every BREAKER_POLL_COUNT instructions looks at the thread's
 * request flag. Everything else (the GIL, the workers) is the same code.
 *
 * A request is armed once: lua_sethook marks every frame of the stack, so
 * arming costs O(stack depth), and re-arming each interval while a request
 * is pending would let a deep stack (a stack-overflow test) livelock the
 * switch. The pending flag stays set until the hook consumes it; whenever
 * the thread starts running a Lua state (attach, coroutine switch) with the
 * flag set, that state is armed.
 *
 * The script's own debug hooks live beside the breaker's: debug.sethook and
 * debug.gethook are replaced by versions that keep what the script asked
 * for per Lua thread, and one C hook serves both. It answers the breaker's
 * count events and calls the script's hook function for the events the
 * script asked for (its count events counted separately), so a script's
 * hook fires as in lua5.4 under contention and with the legacy GIL's
 * resting hook, and debug.gethook returns what the script set.
 */
#ifndef BREAKER_H
#define BREAKER_H

#include <lua.h>
#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>

typedef void (*breaker_fn)(lua_State *L);

/* Install the signal handler; checkpoint runs on the interrupted thread. */
void breaker_init(breaker_fn checkpoint);
/* This OS thread runs Lua state L (NULL: none); `pending` is its request flag,
   `sent_ns` the time breaker_interrupt keeps for it. */
void breaker_attach(lua_State *L, atomic_int *pending, _Atomic uint64_t *sent_ns);
/* It now runs L (a coroutine) with the same flag; signal-safe to read. */
void breaker_switch(lua_State *L);
lua_State *breaker_current(void);
/* The state this thread was attached with (a worker's body, or the main chunk's). */
lua_State *breaker_base(void);
/* A resting hook every `count` instructions on every Lua thread (a GIL with a check interval); 0 for none. */
void breaker_set_resting(int count);
/* --sim: a count hook every `count` instructions on every Lua thread calls tick(n);
   a drop request is served jitter() instructions later, at the next line, call or return
   event: a check point. */
void breaker_set_sim(void (*tick)(int n), int (*jitter)(void), int count);
/* Put on L what is wanted now: the script's hook, the resting hook, a pending request. */
void breaker_rest(lua_State *L);
/* Run the checkpoint every `count` instructions on L from now on (used once stopping). */
void breaker_arm_every(lua_State *L, int count);
/* Ask thread t, whose flag is `pending`, to run the checkpoint at its next check point;
   `sent_ns` keeps when t was last signalled (a request still pending 10 ms later is signalled again). */
void breaker_interrupt(pthread_t t, atomic_int *pending, _Atomic uint64_t *sent_ns);
/* One-shot armings so far (GILVM_BREAKER_STATS=1 prints them, and all hook settings, at exit). */
unsigned long breaker_arms(void);
/* 1 if this build polls for requests (ThreadSanitizer): then a switch can come at any instruction. */
int breaker_polling(void);
/* Replace debug.sethook/gethook in L's interpreter by the breaker-aware ones. */
void breaker_open_debug(lua_State *L);

#define BREAKER_POLL_COUNT 1000
#define BREAKER_SIGNAL SIGURG /* ignored by default; Go's runtime preempts with it too */

#endif
