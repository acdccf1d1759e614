/*
 * runtime.h — one gilvm run: the Lua state, the GIL, the workers, and the
 * stop machinery (timeout, Ctrl-C) that makes sure none of them hangs.
 *
 * In `gil` mode every worker is a Lua thread (lua_newthread) of one global
 * state, driven by its own pthread. No OS thread touches the Lua state
 * without holding the GIL. The main chunk runs on the main OS thread as
 * worker 0, "main".
 */
#ifndef RUNTIME_H
#define RUNTIME_H

#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "gil.h"

typedef enum rt_block {  /* why a thread is blocked with the GIL released */
  RT_BLOCK_SLEEP, RT_BLOCK_JOIN, RT_BLOCK_LOCK, RT_BLOCK_NATIVE, RT_BLOCK_NKINDS
} rt_block;

typedef struct rt_worker {
  int id;
  char name[64];
  pthread_t tid;
  lua_State *L;            /* the Lua thread it runs */
  int thread_ref;          /* registry reference that keeps L alive */
  gil_thread gt;           /* its identity and statistics for the GIL */
  atomic_int interrupt;    /* the eval breaker's request flag for this thread */
  uint64_t cpu_ns;         /* thread CPU time, measured when it ends */
  uint64_t blocked_ns;     /* GIL released while blocked: sleep, join, lock */
  uint64_t free_ns;        /* GIL released while running C code (gil.native(s, true)) */
  int nresults;            /* results left on L's stack */
  char *error;             /* message and traceback if it failed (malloc'd) */
  int interrupted;         /* stopped by timeout or Ctrl-C */
  int joined;              /* someone received its results or error */
  /* under rt->mu */
  int done;                /* its function has returned or failed */
  int reaped;              /* its pthread has been joined */
  struct runtime *rt;
} rt_worker;

typedef struct rt_figure {  /* gil.report(name, value) */
  char name[48];
  char value[48];
} rt_figure;

typedef struct runtime {
  const char *mode;          /* "gil" */
  gil_t *gil;
  lua_State *L;              /* the main state */
  pthread_mutex_t mu;        /* guards workers[], done/reaped, figures */
  pthread_cond_t done_cv;    /* a worker finished */
  pthread_cond_t stop_cv;    /* stop requested: wakes sleepers */
  rt_worker **workers;       /* workers[0] is main */
  int nworkers, cap;
  atomic_int stop;           /* 0, or the exit code the stop asks for (124, 130, 143) */
  const char *stop_reason;   /* "timeout", "interrupted" */
  uint64_t start_ns, end_ns;
  uint64_t cpu_start_ns, cpu_ns;  /* process CPU time over the run */
  rt_figure figures[32];
  int nfigures;
} runtime;

/* The runtime of this process (one per gilvm run). */
extern runtime *rt_current;
/* The worker running on the calling OS thread (NULL on helper threads). */
rt_worker *rt_self(void);

runtime *rt_create(const char *mode, const char *policy, uint64_t interval_ns, int check_interval);
void rt_destroy(runtime *rt);

/* Spawn fn (at stack index idx of L, arguments above it, n values in all) on a new
   OS thread; pushes nothing. Called with the GIL held. Raises a Lua error on failure. */
rt_worker *rt_spawn(lua_State *L, int idx, int n);
/* Wait for w with the GIL released; returns 1 if it is done, 0 on timeout.
   timeout_ns < 0 means forever. Raises a Lua error if the run is being stopped. */
int rt_join(lua_State *L, rt_worker *w, int64_t timeout_ns);
/* Sleep with the GIL released. */
void rt_sleep(lua_State *L, uint64_t ns);

/* Bracket a blocking call: release the GIL, then take it back and account the time. */
uint64_t rt_block_begin(rt_worker *self, rt_block kind);
void rt_block_end(rt_worker *self, rt_block kind, uint64_t began);
/* After rt_block_end: raise the stop error if the run is being stopped. */
void rt_check_stop(lua_State *L);

/* Ask every thread to stop: exit code and reason. The first request wins. */
void rt_stop(runtime *rt, int code, const char *reason);
/* Wait (GIL not held) until every worker has finished and reap their threads. */
void rt_wait_all(runtime *rt);
void rt_set_figure(runtime *rt, const char *name, const char *value);

#endif
