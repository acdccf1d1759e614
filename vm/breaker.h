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
 */
#ifndef BREAKER_H
#define BREAKER_H

#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>

typedef void (*breaker_fn)(lua_State *L);

/* Install the signal handler; checkpoint runs on the interrupted thread. */
void breaker_init(breaker_fn checkpoint);
/* This OS thread runs Lua state L (NULL: none); `pending` is its request flag. */
void breaker_attach(lua_State *L, atomic_int *pending);
/* It now runs L (a coroutine) with the same flag; signal-safe to read. */
void breaker_switch(lua_State *L);
lua_State *breaker_current(void);
/* A resting hook every `count` instructions on every Lua thread (legacy GIL); 0 for none. */
void breaker_set_resting(int count);
/* Put the resting hook (or none) on L. */
void breaker_rest(lua_State *L);
/* Run the checkpoint every `count` instructions on L from now on (used once stopping). */
void breaker_arm_every(lua_State *L, int count);
/* Ask thread t, whose flag is `pending`, to run the checkpoint at its next check point. */
void breaker_interrupt(pthread_t t, atomic_int *pending);

#define BREAKER_POLL_COUNT 1000
#define BREAKER_SIGNAL SIGURG  /* ignored by default; Go's runtime preempts with it too */

#endif
