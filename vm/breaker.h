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
 */
#ifndef BREAKER_H
#define BREAKER_H

#include <lua.h>
#include <pthread.h>

typedef void (*breaker_fn)(lua_State *L);

/* Install the signal handler; checkpoint runs on the interrupted thread. */
void breaker_init(breaker_fn checkpoint);
/* The Lua state this OS thread is running now (NULL: none); signal-safe to read. */
void breaker_attach(lua_State *L);
lua_State *breaker_current(void);
/* A resting hook every `count` instructions on every Lua thread (legacy GIL); 0 for none. */
void breaker_set_resting(int count);
/* Put the resting hook (or none) on L. */
void breaker_rest(lua_State *L);
/* Run the checkpoint every `count` instructions on L from now on (used once stopping). */
void breaker_arm_every(lua_State *L, int count);
/* Ask thread t to run the checkpoint at its next check point. */
void breaker_interrupt(pthread_t t);

#define BREAKER_SIGNAL SIGURG  /* ignored by default; Go's runtime preempts with it too */

#endif
