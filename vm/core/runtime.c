/*
 * runtime.c — interpreters, workers, blocking calls, and stopping.
 *
 * A thread worker's life: rt_spawn() (GIL held by the spawner) makes a Lua
 * thread, moves the function and its arguments onto it and starts a
 * pthread. The pthread takes the GIL, runs the function under a traceback
 * handler, keeps its results on its Lua stack (or its error as a C string),
 * marks itself done, and drops the GIL for the last time. A joiner waits
 * for `done` without the GIL, joins the pthread, takes the GIL and copies
 * the results.
 *
 * A free worker (nogil) does the same in an interpreter of its own, built
 * on its own pthread from the bytes the spawner encoded; its results go
 * back as bytes. A process worker (fork) runs in a forked copy and writes
 * its figures and results to a pipe; the joiner reads the pipe to its end
 * and then reaps the child, so a child that dies is reported, never waited
 * for forever.
 *
 * A worker's record lives while a Lua handle to it does or it is unjoined:
 * when the last handle of a joined worker is collected, its figures are
 * summed into rt->gone and everything is freed (the first RT_KEEP_RECORDS
 * keep their record, for the report's rows, and free the rest). A forked
 * child treats its parent's records as inherited (home is another pid: nothing to walk),
 * and watches a parent-liveness pipe so that it dies with its parent.
 *
 * Stopping (timeout, Ctrl-C) never depends on a thread's good will alone:
 * rt_stop() sets `stop`, wakes every sleeper and joiner, interrupts every
 * live thread through the eval breaker (whose checkpoint raises an error in
 * Lua) and kills every child process.
 */
#include "runtime.h"

#include <lauxlib.h>
#include <lualib.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "breaker.h"
#include "check.h"
#include "clock.h"
#include "outfile.h"
#include "vec.h"

#define PARENT_GONE_STATUS 1 /* a child whose parent died: nobody reads it */

runtime *rt_current;
size_t rt_arena_size;
static _Thread_local rt_worker *self_worker;

rt_worker *rt_self(void) { return self_worker; }
gil_t *rt_gil(void) { return self_worker->interp->gil; }
pid_t rt_pid(void) { return rt_current ? rt_current->pid : getpid(); }

/* ---- the GIL's callbacks: how a drop request reaches the holder ---- */

static void on_drop_request(gil_thread *holder, void *arg) {
  (void)arg;
  rt_worker *w = holder->owner;
  if (sim_on()) { /* seen signal-cost later in virtual time, then served at the holder's next check point */
    if (atomic_load(&w->interrupt)) return; /* its signal is on its way: a second one would delay it */
    atomic_store(&w->interrupt_sent, clock_now_ns() + sim_cost(SIM_COST_SIGNAL));
    atomic_store(&w->interrupt, 1);
  } else
    breaker_interrupt(w->tid, &w->interrupt, &w->interrupt_sent);
}

/* os.exit is ending the process: a thread that takes a GIL now must not run
   Lua (the state may be closing). It lets go and waits for the end. */
static void park_if_exiting(rt_worker *w) {
  if (!atomic_load(&w->rt->exiting) || w->rt->exiter == w) return;
  gil_drop(w->interp->gil, &w->gil_thread);
  for (;;) pause();
}

static void checkpoint(lua_State *L);

void rt_checkpoint(lua_State *L) {
  atomic_store(&self_worker->interrupt, 0); /* served here: the hook need not serve it again */
  checkpoint(L);
}

static void checkpoint(lua_State *L) {
  runtime *rt = rt_current;
  rt_worker *w = self_worker;
  if (!w) return;
  park_if_exiting(w);
  if (atomic_load(&rt->stop)) {
    atomic_store(&w->interrupt, 1); /* keep interrupting code that catches the error */
    breaker_arm_every(L, 1000);
    luaL_error(L, "%s", rt->stop_reason);
  }
  if (w->proc && w->proc->exited) { /* os.exit ended its process: no more Lua there */
    atomic_store(&w->interrupt, 1);
    luaL_error(L, "process exited");
  }
  gil_t *g = w->interp->gil;
  if (gil_should_yield(g)) { /* asked to, or the policy's own rule (legacy: anyone waits) */
    gil_yield(g, &w->gil_thread);
    park_if_exiting(w);
  }
}

/* ---- timelines ---- */

/* Called by the GIL under its mutex, on the thread the event happens on. */
static void on_gil_event(gil_thread *t, gil_event e, uint64_t now, void *arg) {
  runtime *rt = arg;
  rt_worker *me = self_worker, *w = t->owner;
  if (!me) return;
  switch (e) {
  case GIL_EV_WAIT: ev_record(&w->events, now, EV_STATE, ST_WAIT_GIL, 0); break;
  case GIL_EV_ACQUIRE: {
    int own = rt->mode == RT_MODE_NOGIL || rt->is_child || w->interp != rt->interps[0];
    ev_record(&w->events, now, EV_STATE, own ? ST_RUN_OWN : ST_RUN_GIL, 0);
    break;
  }
  case GIL_EV_RELEASE: ev_record(&w->events, now, EV_STATE, ST_IDLE, 0); break;
  case GIL_EV_FORCED_DROP: ev_record(&w->events, now, EV_FORCED_DROP, 0, 0); break;
  case GIL_EV_DROP_REQUEST: ev_record(&me->events, now, EV_DROP_REQUEST, 0, w->id); break;
  }
}

void rt_record(runtime *rt) {
  ev_init_limit();
  rt->recording = 1;
  rt->keep_all = 1; /* the timeline replays every worker's events at the end */
  gil_set_event_fn(rt->interps[0]->gil, on_gil_event, rt);
}

static const ev_state block_state[RT_BLOCK_NKINDS] = {
  [RT_BLOCK_SLEEP] = ST_SLEEP, [RT_BLOCK_JOIN] = ST_JOIN,     [RT_BLOCK_LOCK] = ST_LOCK,
  [RT_BLOCK_QUEUE] = ST_QUEUE, [RT_BLOCK_NATIVE] = ST_NATIVE, [RT_BLOCK_IO] = ST_IO,
};

/* ---- interpreters and worker records ---- */

#define BASE_MODULES "gilvm.base_modules" /* registry: the names package.loaded has in a fresh interpreter */

/* --sim: what every new interpreter has loaded, to tell a script's own modules from them. */
static void remember_base_modules(lua_State *L) {
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushboolean(L, 1);
    lua_rawset(L, -5);
  }
  lua_pop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, BASE_MODULES);
}

static rt_interp *new_interp(runtime *rt) {
  rt_interp *interp = calloc(1, sizeof *interp);
  if (!interp) return NULL;
  interp->gil = gil_create(rt->policy, rt->interval_ns, on_drop_request, rt);
  interp->L = luaL_newstate();
  if (!interp->gil || !interp->L) {
    if (interp->L) lua_close(interp->L);
    gil_destroy(interp->gil);
    free(interp);
    return NULL;
  }
  if (rt->recording) gil_set_event_fn(interp->gil, on_gil_event, rt);
  if (sim_on()) gil_set_vt(interp->gil, &sim_gil_ops);
  interp->other_process = self_worker && self_worker->proc; /* the caller runs in a simulated process */
  luaL_openlibs(interp->L);
  if (rt->host.open) rt->host.open(interp->L);
  if (sim_on()) remember_base_modules(interp->L);
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  int err = VEC_PUSH(rt->interps, rt->ninterps, rt->icap, interp);
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  if (err) {
    lua_close(interp->L);
    gil_destroy(interp->gil);
    free(interp);
    return NULL;
  }
  return interp;
}

static rt_worker *new_worker(runtime *rt, rt_kind kind, rt_interp *interp) {
  rt_worker *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->rt = rt;
  w->kind = kind;
  w->interp = interp;
  w->gil_thread.owner = w;
  w->thread_ref = LUA_NOREF;
  w->fd = w->fd_slot = -1;
  w->home = rt->pid;
  w->proc = self_worker ? self_worker->proc : NULL; /* --sim: a worker runs in its spawner's process */
  w->spawned_ns = clock_now_ns();
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  w->id = rt->next_id++;
  w->local_id = w->proc ? w->proc->next_local++ : rt->next_local++;
  int err = VEC_PUSH(rt->workers, rt->nworkers, rt->cap, w);
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  if (err) {
    free(w);
    return NULL;
  }
  /* a process worker's count of threads that may act, for the deadlock
     detector (objects.c): one more, before it can run (a process of its own
     is never taken off: this process is then not looked into) */
  if (rt->is_child && rt->arena) shm_board_proc(rt->arena, rt->pid, 1, 1);
  return w;
}

/* ---- releasing joined workers ---- */

static void add_gil_stats(gil_stats *to, const gil_stats *s) {
  to->acquisitions += s->acquisitions;
  to->switches += s->switches;
  to->forced_switches += s->forced_switches;
  to->drop_requests += s->drop_requests;
  to->held_ns += s->held_ns;
  to->wait_ns += s->wait_ns;
  to->contended_ns += s->contended_ns;
}

/* From spawn to the end of its function (the run's end if it never ended); 0 for main. */
static uint64_t in_flight(const rt_worker *w) {
  uint64_t end = w->ended_ns ? w->ended_ns : w->rt->end_ns;
  return w->id && end > w->spawned_ns ? end - w->spawned_ns : 0;
}

/* Fold w's figures into rt->gone and take it out of workers[] (and its
   interpreter out of interps[]). Under rt->mu. */
static void retire(runtime *rt, rt_worker *w) {
  assert(w->done && w->reaped && w->joined); /* only a finished, reaped, joined worker's figures are final */
  rt_totals *t = &rt->gone;
  t->n++;
  t->failed += w->error != NULL;
  t->cpu_ns += w->cpu_ns;
  t->hold_ns += w->gil_thread.hold_ns;
  t->wait_ns += w->gil_thread.wait_ns;
  t->acquisitions += w->gil_thread.acquisitions;
  t->forced_drops += w->gil_thread.forced_drops;
  t->blocked_ns += w->blocked_ns;
  t->nogil_ns += w->nogil_ns;
  t->io_ns += w->io_ns;
  if (w->started_ns > w->spawned_ns) t->startup_ns += w->started_ns - w->spawned_ns;
  t->inflight_ns += in_flight(w);
  t->runq_ns += w->runq_ns;
  t->maxrss_kb += w->maxrss_kb;
  t->events_dropped += w->events.dropped;
  t->bytes_copied += w->bytes_copied;
  int was = rt->nworkers;
  for (int i = rt->first_own; i < rt->nworkers; i++)
    if (rt->workers[i] == w) { /* keep the order: the report's rows follow it */
      memmove(&rt->workers[i], &rt->workers[i + 1], (size_t)(rt->nworkers - i - 1) * sizeof *rt->workers);
      rt->nworkers--;
      break;
    }
  assert(rt->nworkers == was - 1); /* retired once: a second retire would not find it */
  (void)was;
  if (!w->owns_interp) return;
  gil_stats s;
  gil_stats_get(w->interp->gil, &s);
  if (!w->interp->other_process) add_gil_stats(&t->gil, &s);
  for (int i = 1; i < rt->ninterps; i++)
    if (rt->interps[i] == w->interp) {
      rt->interps[i] = rt->interps[--rt->ninterps];
      break;
    }
}

/* What only a join could still want: its Lua thread (and the results on
   its stack), its result bytes. */
static void shed(lua_State *L, rt_worker *w) {
  if (w->thread_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, w->thread_ref);
  w->thread_ref = LUA_NOREF;
  w->L = NULL;
  mar_buf_free(&w->msg);
  mar_buf_free(&w->in_globals);
}

static void free_worker(lua_State *L, rt_worker *w) {
  shed(L, w);
  if (w->owns_interp) {
    gil_destroy(w->interp->gil);
    free(w->interp);
  }
  free(w->error);
  free(w->spawn_tb);
  ev_free(&w->events);
  free(w);
}

void rt_handle_new(rt_worker *w) {
  PT_CHECK(pthread_mutex_lock(&w->rt->mu));
  w->handles++;
  PT_CHECK(pthread_mutex_unlock(&w->rt->mu));
}

void rt_handle_gone(lua_State *L, rt_worker *w) {
  runtime *rt = rt_current;
  if (!rt || rt->closing) return;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  assert(w->handles > 0); /* one rt_handle_new per handle: the count never goes below 0 */
  int idle = --w->handles == 0 && w->joined && w->reaped && w->id != 0 && !rt_inherited(rt, w) && w != self_worker;
  int release = idle && w->id >= RT_KEEP_RECORDS && !rt->keep_all;
  if (release) retire(rt, w);
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  if (release)
    free_worker(L, w);
  else if (idle)
    shed(L, w); /* a kept record keeps its figures only */
}

static void init_sync(runtime *rt) {
  pthread_condattr_t ca;
  PT_CHECK(pthread_condattr_init(&ca));
  PT_CHECK(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC));
  PT_CHECK(pthread_mutex_init(&rt->mu, NULL));
  PT_CHECK(pthread_mutex_init(&rt->fork_mu, NULL));
  PT_CHECK(pthread_cond_init(&rt->done_cv, &ca));
  PT_CHECK(pthread_cond_init(&rt->stop_cv, &ca));
  PT_CHECK(pthread_condattr_destroy(&ca));
}

runtime *rt_create(const rt_host *host, rt_mode mode, const char *policy, uint64_t interval_ns, int check_interval) {
  runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return NULL;
  if (host) rt->host = *host;
  rt->mode = mode;
  rt->spawn_kind = mode == RT_MODE_NOGIL ? RT_OWN_INTERP : mode == RT_MODE_FORK ? RT_PROCESS : RT_THREAD;
  rt->policy = policy;
  rt->interval_ns = interval_ns;
  rt->stop_reason = "";
  rt->pid = getpid();
  /* a fixed threshold: big blocks (results, strings) go back to the kernel
     when freed, instead of raising glibc's dynamic threshold and staying in
     the freeing thread's arena */
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  rt->life[0] = rt->life[1] = -1;
  rt->first_own = 1;
  init_sync(rt);
  rt_current = rt;
  mar_init(); /* before any fork: children must share the key that authenticates bytecode */
  if (sim_on()) mar_canonical_sizes(1); /* sizes that do not follow Lua's string-hash seed */
  /* the shared objects' arena, before any interpreter (host->open) or worker */
  if (shm_arena_create(rt_arena_size, &rt->arena) != SHM_OK) rt->arena = NULL;
  if (rt->arena) shm_board_init(rt->arena); /* the deadlock detector's, made before any thread uses it */
  rt_interp *interp = new_interp(rt);
  if (!interp) {
    free(rt);
    return NULL;
  }
  if (check_interval > 0) gil_set_check_interval(interp->gil, check_interval);
  breaker_set_resting(gil_check_interval(interp->gil));
  if (sim_on()) breaker_set_sim(sim_insns, sim_jitter, sim_config_get()->tick);
  breaker_init(checkpoint);
  rt_worker *main = new_worker(rt, RT_THREAD, interp); /* worker 0 is the main thread */
  strcpy(main->name, "main");
  main->tid = pthread_self();
  main->L = interp->L;
  main->reaped = 1; /* nobody pthread_joins the main thread */
  self_worker = main;
  rt->start_ns = main->started_ns = clock_now_ns();
  if (sim_on()) rt->real_start_ns = clock_real_ns();
  main->cpu_ns = clock_thread_cpu_ns(); /* start-up is not the script's: subtracted at the end */
  rt->cpu_start_ns = clock_process_cpu_ns();
  return rt;
}

lua_State *rt_main_state(runtime *rt) { return rt->interps[0]->L; }

void rt_destroy(runtime *rt) {
  if (!rt) return;
  gil_take(rt->interps[0]->gil, &rt->workers[0]->gil_thread); /* __gc metamethods may run Lua code */
  rt->closing = 1; /* the handles' __gc, run by lua_close below, must not touch a record */
  for (int i = 0; i < rt->nworkers; i++) {
    rt_worker *w = rt->workers[i];
    free(w->error);
    free(w->spawn_tb);
    mar_buf_free(&w->msg);
    mar_buf_free(&w->in_globals);
    ev_free(&w->events);
    if (w->fd >= 0) close(w->fd);
    free(w);
  }
  for (int i = 0; i < rt->ninterps; i++) {
    if (rt->interps[i]->L) lua_close(rt->interps[i]->L);
    gil_destroy(rt->interps[i]->gil);
    free(rt->interps[i]);
  }
  free(rt->workers);
  free(rt->interps);
  free(rt->piped);
  free(rt->kids);
  for (int i = 0; i < 2; i++)
    if (rt->life[i] >= 0) close(rt->life[i]);
  if (rt->arena) shm_arena_destroy(rt->arena); /* after the interpreters: their handles release into it */
  PT_CHECK(pthread_mutex_destroy(&rt->mu));
  PT_CHECK(pthread_mutex_destroy(&rt->fork_mu));
  PT_CHECK(pthread_cond_destroy(&rt->done_cv));
  PT_CHECK(pthread_cond_destroy(&rt->stop_cv));
  if (rt_current == rt) rt_current = NULL;
  free(rt);
}

/* ---- running a function ---- */

int rt_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) { /* as lua5.4's msghandler: a __tostring that gives a string is the message */
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Call the function at the bottom of L's stack with the values above it. On
   success the results are left alone on the stack; on failure the worker's
   error (or interrupted flag) is set and the stack emptied. */
static int run_function(rt_worker *w, lua_State *L, int base) {
  int nargs = lua_gettop(L) - base;
  lua_pushcfunction(L, rt_msghandler);
  lua_insert(L, base);
  w->started_ns = clock_now_ns();
  uint64_t c0, c1, q0, q1;
  int known = clock_thread_sched_ns(&c0, &q0) == 0;
  int status = atomic_load(&w->rt->stop) ? LUA_ERRRUN : lua_pcall(L, nargs, LUA_MULTRET, base);
  w->ended_ns = clock_now_ns();
  if (known && clock_thread_sched_ns(&c1, &q1) == 0 && q1 >= q0 && c1 >= c0) {
    w->runq_ns = q1 - q0;
    w->oncpu_ns = c1 - c0;
    w->runq_known = 1;
  }
  if (status == LUA_OK) {
    lua_remove(L, base);
    return 1;
  }
  if (atomic_load(&w->rt->stop))
    w->interrupted = 1;
  else {
    const char *msg = lua_tostring(L, -1);
    w->error = strdup(msg ? msg : "(error object is not a string)");
  }
  lua_settop(L, base - 1);
  return 0;
}

static void finish(rt_worker *w) {
  runtime *rt = w->rt;
  breaker_attach(NULL, NULL, NULL);
  w->cpu_ns = clock_thread_cpu_ns();
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  assert(!w->done); /* a worker finishes once */
  w->done = 1;
  if (rt->is_child && rt->arena) shm_board_proc(rt->arena, rt->pid, -1, 1); /* one thread fewer may act */
  if (sim_on()) sim_wake(w, 1); /* its joiners */
  PT_CHECK(pthread_cond_broadcast(&rt->done_cv));
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
}

/* Take w's GIL and attach the eval breaker to L: every worker's first steps. */
static void enter(rt_worker *w, lua_State *L) {
  if (sim_on()) sim_set_group(w->interp->gil);
  gil_take(w->interp->gil, &w->gil_thread);
  park_if_exiting(w);
  breaker_attach(L, &w->interrupt, &w->interrupt_sent);
  breaker_rest(L);
}

static void on_cpu_wait(void *arg, int what, uint64_t from, uint64_t to);

int rt_run_main(runtime *rt, int (*body)(lua_State *L, void *arg), void *arg) {
  rt_worker *w = rt->workers[0];
  if (sim_on()) sim_set_cpu_fn(sim_self(), on_cpu_wait, w);
  enter(w, w->L);
  uint64_t c0, c1, q0, q1;
  int known = clock_thread_sched_ns(&c0, &q0) == 0;
  int rc = body(w->L, arg);
  w->cpu_ns = clock_thread_cpu_ns() - w->cpu_ns;
  w->ended_ns = clock_now_ns();
  if (known && clock_thread_sched_ns(&c1, &q1) == 0 && q1 >= q0 && c1 >= c0) {
    w->runq_ns = q1 - q0;
    w->oncpu_ns = c1 - c0;
    w->runq_known = 1;
  }
  breaker_attach(NULL, NULL, NULL);
  lua_sethook(w->L, NULL, 0, 0);
  gil_drop(w->interp->gil, &w->gil_thread);
  return rc;
}

/* ---- RT_THREAD ---- */

static void *thread_main(void *arg) {
  rt_worker *w = arg;
  self_worker = w;
  rt_thread_started(w->rt);
  if (sim_on()) sim_start(&w->sim);
  enter(w, w->L);
  if (run_function(w, w->L, 1)) w->nresults = lua_gettop(w->L);
  finish(w);
  gil_drop(w->interp->gil, &w->gil_thread);
  if (sim_on()) sim_exit();
  return NULL;
}

/* ---- RT_OWN_INTERP ---- */

static void proc_stdout_install(lua_State *L);

static void fail(rt_worker *w, const char *what, const char *err) {
  size_t n = strlen(what) + strlen(err) + 3;
  w->error = malloc(n);
  if (w->error) snprintf(w->error, n, "%s: %s", what, err);
}

/* --sim: bytes the marshaller counted (encoded + decoded) since *mark, which
   moves to now. Exact: one simulated thread runs at a time. */
static unsigned long long copied_since(unsigned long long *mark) {
  unsigned long long e, d;
  mar_counters(&e, &d);
  unsigned long long n = e + d - *mark;
  *mark = e + d;
  return n;
}

/* to[k] = from[k] for every pair of the table at from (raw: no metamethods). */
static void copy_pairs(lua_State *L, int from, int to) {
  from = lua_absindex(L, from);
  to = lua_absindex(L, to);
  lua_pushnil(L);
  while (lua_next(L, from)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, to);
  }
}

static void *own_interp_main(void *arg) {
  rt_worker *w = arg;
  runtime *rt = w->rt;
  self_worker = w;
  rt_thread_started(rt);
  if (sim_on()) sim_start(&w->sim);
  char err[256];
  w->interp = new_interp(rt);
  if (!w->interp) {
    w->error = strdup("cannot create an interpreter (out of memory)");
    finish(w);
    if (sim_on()) sim_exit();
    return NULL;
  }
  w->owns_interp = 1;
  if (sim_on()) sim_charge(sim_cost(SIM_COST_INTERP)); /* a fresh interpreter's CPU, in virtual time */
  lua_State *L = w->interp->L;
  if (w->proc) proc_stdout_install(L); /* a free thread of a simulated process writes to its stdout */
  enter(w, L);
  unsigned long long mark = 0;
  if (sim_on()) copied_since(&mark);
  if (mar_decode(L, w->in_globals.data, w->in_globals.len, err, sizeof err) != 1) {
    fail(w, "cannot copy the globals into the new interpreter", err);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    copy_pairs(L, -2, -1); /* the globals copy into _G */
    lua_pop(L, 2);
    int n = mar_decode(L, w->msg.data, w->msg.len, err, sizeof err);
    w->msg.len = 0;
    if (sim_on()) sim_charge(sim_copy_ns(copied_since(&mark))); /* its copy of the globals and arguments */
    if (n < 1)
      fail(w, "cannot copy the function and its arguments", err);
    else if (run_function(w, L, 1)) {
      if (sim_on()) copied_since(&mark);
      if (mar_encode(L, 1, lua_gettop(L), "results", &w->msg, err, sizeof err) != 0)
        fail(w, "cannot copy the results back", err);
      else if (sim_on())
        sim_charge(sim_copy_ns(copied_since(&mark)));
    }
  }
  mar_buf_free(&w->in_globals);
  lua_close(L); /* results travel as bytes: the interpreter is not needed any more */
  w->interp->L = NULL;
  finish(w);
  gil_drop(w->interp->gil, &w->gil_thread);
  if (sim_on()) sim_exit();
  return NULL;
}

/* The spawner's globals, as a plain table left on top of L and encoded in out.
   Globals that cannot be copied (an open file, a coroutine...) are left out:
   the new interpreter simply does not have them. */
static void copyable_globals(lua_State *L, mar_buf *out) {
  char err[256];
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  copy_pairs(L, -1, -2);
  lua_pop(L, 1);
  if (mar_encode(L, -1, 1, "globals", out, err, sizeof err) == 0) return;
  mar_buf probe = { 0 };
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    probe.len = 0;
    if (mar_encode(L, -1, 1, "globals", &probe, err, sizeof err) != 0) {
      lua_pushvalue(L, -2);
      lua_pushnil(L);
      lua_rawset(L, -5); /* removing the current key during lua_next is allowed */
    }
    lua_pop(L, 1);
  }
  mar_buf_free(&probe);
  out->len = 0;
  if (mar_encode(L, -1, 1, "globals", out, err, sizeof err) != 0) out->len = 0;
}

static void encode_globals(lua_State *L, mar_buf *out) {
  copyable_globals(L, out);
  lua_pop(L, 1);
}

/* ---- RT_PROCESS ---- */

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t k = write(fd, c, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

#define CHILD_STDOUT_FAILED 4 /* a child's exit status: results sent, but its stdout took not everything */

/* Process workers with an open pipe, kept in rt->piped so that a forked
   child closes its siblings' without walking every worker record. */
static void track_fd(runtime *rt, rt_worker *w) { /* under fork_mu */
  int slot = rt->npiped;
  if (VEC_PUSH(rt->piped, rt->npiped, rt->pipedcap, w) != 0)
    return; /* untracked: a later child merely holds one more read end */
  w->fd_slot = slot;
}

/* Close w's pipe; under fork_mu, so that no child forked meanwhile keeps it. */
static void close_pipe(runtime *rt, rt_worker *w) {
  PT_CHECK(pthread_mutex_lock(&rt->fork_mu));
  if (w->fd_slot >= 0) {
    rt_worker *last = rt->piped[--rt->npiped];
    rt->piped[w->fd_slot] = last;
    last->fd_slot = w->fd_slot;
    w->fd_slot = -1;
  }
  close(w->fd);
  w->fd = -1;
  PT_CHECK(pthread_mutex_unlock(&rt->fork_mu));
}

/* The parent-liveness pipe: nobody writes to it; its read end reports EOF
   when the last write end closes, i.e. when the process that made it is
   gone, however it went (kill -9, SIGPIPE, exit). Under fork_mu. */
static int open_life(runtime *rt) { return rt->life[0] >= 0 || pipe2(rt->life, O_CLOEXEC) == 0 ? 0 : -1; }

/* In the child: die with the parent. The read end, reopened as an open file
   of our own (the owner of O_ASYNC signals is per open file), raises SIGIO
   (default action: terminate) at EOF. No thread: a thread started in a child
   of a threaded process can hang on a lock inherited held (ASan's allocator).
   PR_SET_PDEATHSIG would not do: it follows the forking thread, which may be
   a short-lived worker, not the process. Our own children watch our pipe. */
static void die_with_parent(runtime *rt) {
  int fd = rt->life[0];
  close(rt->life[1]);
  rt->life[0] = rt->life[1] = -1; /* this process makes its own for its children */
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int own = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (own >= 0) {
    close(fd);
    fd = own;
  }
  fcntl(fd, F_SETOWN, getpid());
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC | O_NONBLOCK);
  struct pollfd pfd = { fd, POLLIN, 0 };
  if (poll(&pfd, 1, 0) > 0) _exit(PARENT_GONE_STATUS); /* gone before we listened */
}

/* In the child: only the forking thread survived. Make the runtime fit that:
   O(1) in the workers before it (their records are inherited: home is another pid). */
static void become_child(runtime *rt, rt_worker *w) {
  init_sync(rt);
  clearerr(stdout); /* report only this process's own write errors */
  rt->is_child = 1;
  rt->pid = getpid();
  if (rt->arena) shm_board_proc(rt->arena, rt->pid, 1, 0); /* this thread may act (the deadlock detector's) */
  w->home = rt->pid;
  w->fd_slot = -1;
  rt->first_own = rt->nworkers;
  for (int i = 0; i < rt->npiped; i++) close(rt->piped[i]->fd); /* a sibling's pipe is not ours to hold open */
  rt->fork_walk = rt->npiped;
  rt->npiped = 0;
  rt->nkids = 0; /* the parent's children are the parent's to stop */
  die_with_parent(rt);
  w->tid = pthread_self();
  gil_after_fork(w->interp->gil, &w->gil_thread);
  self_worker = w;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  PT_CHECK(pthread_sigmask(SIG_UNBLOCK, &set, NULL)); /* Ctrl-C and the parent's stop reach us */
}

/* The child's whole life; never returns. The function and its arguments are
   already in this copy of memory, at idx..idx+n-1 of L. */
static void child_main(lua_State *L, rt_worker *w, int idx, int n, int fd) {
  runtime *rt = w->rt;
  become_child(rt, w);
  unsigned long long enc0, dec0; /* the parent's counts so far are not ours */
  mar_counters(&enc0, &dec0);
  if (rt->recording) ev_record(&w->events, clock_now_ns(), EV_STATE, ST_RUN_OWN, 0);
  breaker_attach(L, &w->interrupt, &w->interrupt_sent);
  breaker_rest(L);
  int base = lua_gettop(L) + 1;
  for (int i = 0; i < n; i++) lua_pushvalue(L, idx + i);
  mar_buf out = { 0 };
  int ok = run_function(w, L, base);
  char err[256];
  if (ok && mar_encode(L, base, lua_gettop(L) - base + 1, "results", &out, err, sizeof err) != 0) {
    fail(w, "cannot copy the results back", err);
    ok = 0;
  }
  breaker_attach(NULL, NULL, NULL);
  gil_drop(w->interp->gil, &w->gil_thread);
  rt_wait_all(rt); /* threads this process started */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  rt_child_figures f = {
    .cpu_ns = clock_process_cpu_ns(),
    .started_ns = w->started_ns,
    .ended_ns = w->ended_ns,
    .runq_ns = w->runq_ns,
    .oncpu_ns = w->oncpu_ns,
    .runq_known = w->runq_known,
    .maxrss_kb = (uint64_t)ru.ru_maxrss,
    .acquisitions = w->gil_thread.acquisitions,
    .forced_drops = w->gil_thread.forced_drops,
    .wait_ns = w->gil_thread.wait_ns,
    .hold_ns = w->gil_thread.hold_ns,
    .blocked_ns = w->blocked_ns,
    .nogil_ns = w->nogil_ns,
    .io_ns = w->io_ns,
  };
  mar_counters(&f.bytes_encoded, &f.bytes_decoded);
  f.bytes_encoded -= enc0;
  f.bytes_decoded -= dec0;
  f.nevents = w->events.n;
  f.events_dropped = w->events.dropped;
  uint32_t status = ok ? 0 : w->interrupted ? 2 : 1;
  const char *payload = ok ? (const char *)out.data : w->error ? w->error : "stopped";
  uint64_t len = ok ? out.len : strlen(payload);
  int out_failed = outfile_finish_stdout(0) != 0 || atomic_load(&rt->stdout_failed);
  fflush(NULL);
  int wrote = write_all(fd, &status, sizeof status) == 0 && write_all(fd, &f, sizeof f) == 0 &&
      write_all(fd, &len, sizeof len) == 0 && write_all(fd, payload, len) == 0 &&
      write_all(fd, w->events.v, w->events.n * sizeof(ev)) == 0;
  _exit(!wrote ? 3 : out_failed ? CHILD_STDOUT_FAILED : 0);
}

static rt_worker *spawn_process(lua_State *L, rt_worker *w, int idx, int n) {
  runtime *rt = w->rt;
  int p[2];
  PT_CHECK(pthread_mutex_lock(&rt->fork_mu));
  if (open_life(rt) != 0 || pipe2(p, O_CLOEXEC) != 0) {
    PT_CHECK(pthread_mutex_unlock(&rt->fork_mu));
    luaL_error(L, "cannot start a process: %s", strerror(errno));
  }
  fflush(NULL); /* or the child would print our buffered output a second time */
  while (atomic_load(&rt->starting) > 0) sched_yield(); /* rt_thread_starting: microseconds */
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    child_main(L, w, idx, n, p[1]);
  }
  int saved = errno;
  close(p[1]);
  if (pid > 0) {
    PT_CHECK(pthread_mutex_lock(&rt->mu)); /* the watchdog reads it (the deadlock detector, rt_stop) */
    w->pid = pid;
    PT_CHECK(pthread_mutex_unlock(&rt->mu));
    w->fd = p[0];
    track_fd(rt, w);
  }
  PT_CHECK(pthread_mutex_unlock(&rt->fork_mu));
  if (pid < 0) {
    close(p[0]);
    PT_CHECK(pthread_mutex_lock(&rt->mu));
    w->done = w->reaped = w->joined = 1;
    PT_CHECK(pthread_mutex_unlock(&rt->mu));
    luaL_error(L, "cannot start a process: %s", strerror(saved));
  }
  w->tid = pthread_self();
  return w;
}

/* Read what the child sent, until EOF or the deadline (0: none). Returns 1 at EOF. */
static int read_child(rt_worker *w, uint64_t deadline, mar_buf *raw) {
  for (;;) {
    if (atomic_load(&w->rt->stop)) kill(w->pid, SIGKILL); /* EOF follows */
    int wait_ms = 50;
    if (deadline) {
      uint64_t now = clock_now_ns();
      /* past the deadline, still read what is there: join(0) on a process that
         has exited must see its end */
      if (now >= deadline)
        wait_ms = 0;
      else if (deadline - now < 50000000u)
        wait_ms = (int)((deadline - now) / 1000000u) + 1;
    }
    struct pollfd pfd = { w->fd, POLLIN, 0 };
    int r = poll(&pfd, 1, wait_ms);
    if (r < 0 && errno != EINTR) return 1;
    if (r <= 0 && wait_ms == 0) return 0;
    if (r <= 0) continue;
    if (VEC_RESERVE(raw->data, raw->len, raw->cap, 65536, 131072) != 0) return 1;
    ssize_t k = read(w->fd, raw->data + raw->len, raw->cap - raw->len);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return 1;
    raw->len += (size_t)k;
  }
}

static void describe_exit(rt_worker *w, int status) {
  char buf[160];
  if (WIFSIGNALED(status))
    snprintf(buf, sizeof buf, "process '%s' (pid %d) was killed by signal %d (%s)", w->name, (int)w->pid,
             WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, sizeof buf, "process '%s' (pid %d) exited with status %d before sending its results", w->name,
             (int)w->pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  free(w->error);
  w->error = strdup(buf);
}

/* The child's pipe is at EOF: unpack its message, reap it. */
static void settle_child(rt_worker *w, mar_buf *raw) {
  close_pipe(w->rt, w);
  int status = 0;
  while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR) {}
  if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_STDOUT_FAILED) atomic_store(&w->rt->stdout_failed, 1);
  uint32_t st;
  rt_child_figures f;
  uint64_t len;
  size_t head = sizeof st + sizeof f + sizeof len;
  if (raw->len < head) {
    if (atomic_load(&w->rt->stop) && WIFSIGNALED(status))
      w->interrupted = 1; /* we killed it */
    else
      describe_exit(w, status);
    return;
  }
  memcpy(&st, raw->data, sizeof st);
  memcpy(&f, raw->data + sizeof st, sizeof f);
  memcpy(&len, raw->data + sizeof st + sizeof f, sizeof len);
  if (len > raw->len - head || f.nevents > EV_CAP || raw->len - head - len != f.nevents * sizeof(ev)) {
    describe_exit(w, status);
    return;
  }
  for (uint64_t i = 0; i < f.nevents; i++) { /* its timeline */
    ev e;
    memcpy(&e, raw->data + head + len + i * sizeof e, sizeof e);
    ev_record(&w->events, e.t, (ev_kind)e.kind, (ev_state)e.state, e.arg);
  }
  w->events.dropped += f.events_dropped;
  w->cpu_ns = f.cpu_ns;
  w->started_ns = f.started_ns;
  w->ended_ns = f.ended_ns;
  w->runq_ns = f.runq_ns;
  w->oncpu_ns = f.oncpu_ns;
  w->runq_known = f.runq_known;
  w->maxrss_kb = f.maxrss_kb;
  w->gil_thread.acquisitions = f.acquisitions;
  w->gil_thread.forced_drops = f.forced_drops;
  w->gil_thread.wait_ns = f.wait_ns;
  w->gil_thread.hold_ns = f.hold_ns;
  w->blocked_ns = f.blocked_ns;
  w->nogil_ns = f.nogil_ns;
  w->io_ns = f.io_ns;
  w->bytes_copied = f.bytes_encoded + f.bytes_decoded;
  if (st == 0) {
    mar_buf_free(&w->msg);
    w->msg.data = malloc(len ? len : 1);
    if (w->msg.data) memcpy(w->msg.data, raw->data + head, len);
    w->msg.len = w->msg.cap = w->msg.data ? len : 0;
  } else if (st == 2) {
    w->interrupted = 1;
  } else {
    free(w->error);
    w->error = strndup((const char *)raw->data + head, len);
  }
}

/* Collect a process worker (GIL not held). Returns 1 when it is done. */
static int collect_child(rt_worker *w, uint64_t deadline) {
  runtime *rt = w->rt;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  while (w->collecting && !w->done) { /* someone else reads: wait for them */
    if (!deadline)
      PT_CHECK(pthread_cond_wait(&rt->done_cv, &rt->mu));
    else {
      struct timespec ts = { (time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u) };
      if (PT_CHECK_OR(pthread_cond_timedwait(&rt->done_cv, &rt->mu, &ts), ETIMEDOUT)) break;
    }
  }
  int mine = !w->done && !w->collecting;
  if (mine) w->collecting = 1;
  int done = w->done;
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  if (!mine) return done;
  mar_buf raw = { 0 };
  /* keep what was read so far across a timed-out join: park it in msg */
  raw = w->msg;
  memset(&w->msg, 0, sizeof w->msg);
  int eof = read_child(w, deadline, &raw);
  if (eof) settle_child(w, &raw);
  if (eof)
    mar_buf_free(&raw);
  else
    w->msg = raw;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  w->collecting = 0;
  assert(!w->reaped); /* only the one collector reaps a child, once */
  if (eof) {
    w->done = w->reaped = 1;
    if (rt->arena) shm_board_proc(rt->arena, w->pid, 0, 0); /* its count: gone with it */
  }
  PT_CHECK(pthread_cond_broadcast(&rt->done_cv));
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  return eof;
}

/* ---- spawning and joining ---- */

/* Look for the value at idx among the globals' string keys; push the name found. */
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

/* ... or among the locals of the calling Lua functions. */
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
    snprintf(w->name, sizeof w->name, "%d:%.40s", w->local_id, lua_tostring(L, -1));
    lua_pop(L, 1);
    return;
  }
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">S", &ar);
  const char *file = strrchr(ar.short_src, '/');
  file = file ? file + 1 : ar.short_src;
  if (ar.linedefined > 0)
    snprintf(w->name, sizeof w->name, "%d@%.40s:%d", w->local_id, file, ar.linedefined);
  else
    snprintf(w->name, sizeof w->name, "%d@%.40s", w->local_id, file);
}

/* --sim: w waited for a simulated CPU from..to, or paid a futex wake after a release: a state in
   its timeline ('c' waiting for a CPU; '~' in the kernel without the GIL), then back to the one it
   was in. A syscall is drawn only after a release (a holder's wake-up is its running time). */
static void on_cpu_wait(void *arg, int what, uint64_t from, uint64_t to) {
  rt_worker *w = arg;
  if (!w->rt->recording) return;
  ev_state last = ST_IDLE;
  uint64_t last_t = 0;
  for (uint32_t i = w->events.n; i-- > 0;)
    if (w->events.v[i].kind == EV_STATE) {
      last = (ev_state)w->events.v[i].state;
      last_t = w->events.v[i].t;
      break;
    }
  if (what == SIM_SPAN_SYSCALL && last != ST_IDLE) return;
  if (from < last_t) from = last_t; /* keep the buffer in time order */
  ev_record(&w->events, from, EV_STATE, what == SIM_SPAN_SYSCALL ? ST_NATIVE : ST_CPU_WAIT, 0);
  ev_record(&w->events, to > from ? to : from, EV_STATE, last, 0);
}

void rt_thread_starting(runtime *rt) { atomic_fetch_add(&rt->starting, 1); }
void rt_thread_started(runtime *rt) { atomic_fetch_sub(&rt->starting, 1); }

static void start_pthread(lua_State *L, rt_worker *w, void *(*body)(void *)) {
  if (sim_on()) { /* runnable from the spawner's virtual time */
    if (w->sim_proc)
      sim_register_after(&w->sim, w->name, sim_cost(SIM_COST_FORK));
    else
      sim_register(&w->sim, w->name);
    sim_set_cpu_fn(&w->sim, on_cpu_wait, w);
  }
  PT_CHECK(pthread_mutex_lock(&w->rt->mu)); /* tid is set under mu: rt_stop and os.exit signal it */
  rt_thread_starting(w->rt);
  int err = pthread_create(&w->tid, NULL, body, w);
  if (err) {
    w->done = w->reaped = w->joined = 1;
    rt_thread_started(w->rt);
  }
  PT_CHECK(pthread_mutex_unlock(&w->rt->mu));
  if (err && sim_on()) sim_forget(&w->sim);
  if (!err && sim_on()) /* the spawner's clone (a simulated process: its fork): the new one runs from then */
    sim_charge(sim_cost(w->sim_proc ? SIM_COST_FORK : SIM_COST_SPAWN));
  if (err) {
    w->error = strdup("could not start thread");
    luaL_error(L, "cannot start a thread: %s", strerror(err));
  }
}

/* ---- RT_PROCESS under --sim: a process without a fork ----
 *
 * The simulator runs every worker of the run on its baton, in this one
 * process, so a process worker cannot be a real fork: it is a pthread with
 * an interpreter of its own (as nogil's), made to look to the script like a
 * forked child:
 * - its state at the spawn: ONE message holds the spawner's globals, the
 *   function and its arguments, so a table reached from two of them is one
 *   table in the copy, as in a fork's copy of memory; what its changes do
 *   stays in its interpreter. (A global that cannot be copied is left out,
 *   as in nogil mode; an argument that cannot be is an error.)
 * - its own GIL (its interpreter's); the threads it starts share it, and
 *   a process it starts is another simulated process;
 * - its stdout: a FILE of its own, buffered as stdout is (full, or by line
 *   on a terminal) and written straight to fd 1, as a child's stdio
 *   buffer; print writes there too and flushes, as lua5.4's print does.
 *   The spawner's stdout is flushed at the spawn, as before a fork;
 * - os.exit ends only it (rt_proc_exit): its error reads as a real child's
 *   exit before its results, with a simulated pid (1 + its id);
 * - an error's traceback goes on into the spawner's stack at the spawn,
 *   as a forked child's Lua stack is the spawner's;
 * - its threads are waited for before its results go back, as child_main
 *   does; their errors are not reported (a child reports none).
 * Costs, in virtual time: the spawner pays the fork (--sim-cost fork)
 * as CPU with its GIL held; the child decodes the copy, and later encodes
 * its results, at the marshaller's speed; the joiner decodes them. The
 * start-up the report shows is fork + copy.
 */

static void reap(runtime *rt, rt_worker *w);

/* A simulated process's stdout: its buffer goes to fd 1 with write(2), like a child's. */
static ssize_t proc_out_write(void *c, const char *buf, size_t n) {
  rt_worker *p = c;
  if (atomic_load(&p->out_dropped)) return (ssize_t)n;
  for (size_t left = n; left > 0;) {
    ssize_t k = write(STDOUT_FILENO, buf, left);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      atomic_store(&p->rt->stdout_failed, 1); /* as a child's CHILD_STDOUT_FAILED */
      return -1;
    }
    buf += k;
    left -= (size_t)k;
  }
  return (ssize_t)n;
}

static FILE *proc_out_open(rt_worker *p) {
  cookie_io_functions_t io = { .write = proc_out_write };
  FILE *f = fopencookie(p, "w", io);
  if (!f) return NULL;
  struct stat st; /* glibc sizes stdout's buffer by st_blksize, and buffers by line on a terminal */
  size_t size = fstat(STDOUT_FILENO, &st) == 0 && st.st_blksize > 0 ? (size_t)st.st_blksize : BUFSIZ;
  setvbuf(f, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, size);
  return f;
}

/* print in a simulated process: lua5.4's, into the process's stdout (then flushed, as lua5.4's). */
static int proc_print(lua_State *L) {
  rt_worker *w = self_worker;
  FILE *f = w && w->proc && w->proc->out ? w->proc->out : stdout;
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = luaL_tolstring(L, i, &len);
    if (i > 1) fputc('\t', f);
    fwrite(s, 1, len, f);
    lua_pop(L, 1);
  }
  fputc('\n', f);
  fflush(f);
  return 0;
}

/* In a new interpreter of a simulated process: print and io's stdout write to the process's stdout. */
static void proc_stdout_install(lua_State *L) {
  FILE *f = self_worker->proc->out;
  lua_pushcfunction(L, proc_print);
  lua_setglobal(L, "print");
  lua_getfield(L, LUA_REGISTRYINDEX, "_IO_output"); /* the same userdata as io.stdout */
  luaL_Stream *s = luaL_testudata(L, -1, LUA_FILEHANDLE);
  if (s && f) s->f = f;
  lua_pop(L, 1);
}

int rt_proc_exit(lua_State *L, int status) {
  rt_worker *p = self_worker->proc;
  if (!p->exited) {
    p->exited = 1;
    p->exit_status = status;
    if (p->out) fflush(p->out); /* os.exit flushes stdio; nothing after it is written */
    atomic_store(&p->out_dropped, 1);
    PT_CHECK(pthread_mutex_lock(&p->rt->mu));
    for (int i = 0; i < p->rt->nworkers; i++) /* its other threads stop at their next check point */
      if (p->rt->workers[i]->proc == p) atomic_store(&p->rt->workers[i]->interrupt, 1);
    PT_CHECK(pthread_mutex_unlock(&p->rt->mu));
  }
  atomic_store(&self_worker->interrupt, 1);
  return luaL_error(L, "process exited");
}

/* After p's function: wait for the threads and processes it started (a child's rt_wait_all). GIL not held. */
static void proc_wait_own(rt_worker *p) {
  runtime *rt = p->rt;
  for (int again = 1; again;) { /* from the top after every wait: a release may move the list */
    again = 0;
    for (int i = 0;; i++) {
      PT_CHECK(pthread_mutex_lock(&rt->mu));
      rt_worker *w = i < rt->nworkers ? rt->workers[i] : NULL;
      int wait = w && w != p && (w->proc == p || w->parent_proc == p) && !(w->done && w->reaped);
      PT_CHECK(pthread_mutex_unlock(&rt->mu));
      if (!w) break;
      if (!wait) continue;
      while (!w->done) sim_block(w, 0);
      sim_wait_gone(&w->sim);
      reap(rt, w);
      again = 1;
      break;
    }
  }
}

/* p's interpreter is closing: its threads' records must not point into it; nobody reports their errors. */
static void proc_forget_own(rt_worker *p) {
  runtime *rt = p->rt;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  for (int i = 0; i < rt->nworkers; i++) {
    rt_worker *w = rt->workers[i];
    if (w == p || (w->proc != p && w->parent_proc != p)) continue;
    w->joined = 1;
    if (w->interp == p->interp) {
      w->L = NULL;
      w->thread_ref = LUA_NOREF;
    }
  }
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
}

/*
 * A simulated process inherits its spawner's modules, as a forked child
 * does. The marshaller sends package.loaded's tables by name (the
 * destination has its own), which a fresh interpreter cannot resolve for a
 * module the script loaded with `require`. So those modules leave
 * package.loaded while the state is encoded, and the marshaller copies them
 * by value, each once, every reference to one becoming the same copy.
 * Pushes { modules = { NAME = table }, path = package.path, cpath =
 * package.cpath }; put_back_modules returns them to package.loaded.
 */
static void push_inherited_modules(lua_State *L) {
  lua_newtable(L);
  int info = lua_gettop(L);
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, BASE_MODULES);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (lua_next(L, -2)) { /* stack: info, modules, base, loaded, key, value */
    lua_pushvalue(L, -2);
    int base = lua_type(L, -1) != LUA_TSTRING || lua_rawget(L, info + 2) != LUA_TNIL;
    lua_pop(L, 1);
    if (base) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, info + 1); /* modules[key] = value */
  }
  lua_pushnil(L); /* take them out: cleared after the walk, which must not see its table change */
  while (lua_next(L, info + 1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, info + 3);
  }
  mar_buf probe = { 0 }; /* one that cannot be copied (an open file in it) goes back: sent by name */
  char err[256];
  lua_pushnil(L);
  while (lua_next(L, info + 1)) {
    probe.len = 0;
    if (mar_encode(L, -1, 1, "module", &probe, err, sizeof err) != 0) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, info + 3); /* loaded[key] = value, then modules[key] = nil: allowed during lua_next */
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, info + 1);
    } else
      lua_pop(L, 1);
  }
  mar_buf_free(&probe);
  lua_pop(L, 2); /* base, loaded */
  lua_setfield(L, info, "modules");
  lua_getglobal(L, LUA_LOADLIBNAME);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "path");
    lua_setfield(L, info, "path");
    lua_getfield(L, -1, "cpath");
    lua_setfield(L, info, "cpath");
  }
  lua_pop(L, 1);
}

/* The modules of push_inherited_modules's table at info back in package.loaded (in L: spawner, or
   the process that decoded a copy). */
static void put_back_modules(lua_State *L, int info) {
  info = lua_absindex(L, info);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, info, "modules") == LUA_TTABLE) copy_pairs(L, -1, -2);
  lua_pop(L, 2);
}

/* In the process: its spawner's modules, package.path and package.cpath, from the table at info. */
static void inherit_modules(lua_State *L, int info) {
  if (!lua_istable(L, info)) return;
  put_back_modules(L, info);
  lua_getglobal(L, LUA_LOADLIBNAME);
  if (lua_istable(L, -1)) {
    const char *keys[] = { "path", "cpath" };
    for (int i = 0; i < 2; i++)
      if (lua_getfield(L, info, keys[i]) == LUA_TSTRING)
        lua_setfield(L, -2, keys[i]);
      else
        lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void *sim_process_main(void *arg) {
  rt_worker *w = arg;
  runtime *rt = w->rt;
  self_worker = w;
  rt_thread_started(rt);
  sim_start(&w->sim);
  char err[256];
  w->out = proc_out_open(w);
  w->interp = w->out ? new_interp(rt) : NULL;
  if (!w->interp) {
    w->error = strdup("cannot create a simulated process (out of memory)");
    if (w->out) fclose(w->out);
    w->out = NULL;
    finish(w);
    sim_exit();
    return NULL;
  }
  w->owns_interp = 1;
  lua_State *L = w->interp->L;
  proc_stdout_install(L);
  enter(w, L);
  int n = mar_decode(L, w->msg.data, w->msg.len, err, sizeof err);
  mar_buf_free(&w->msg);
  /* the spawner's state is what a real fork inherits, copying nothing: no bytes, no copy cost (the fork's
     cost, charged to the spawner, is all its start-up) */
  if (n >= 0) mar_uncount(0, mar_last_size());
  if (n < 3) {
    fail(w, "cannot copy the spawner's state into the process", n < 0 ? err : "nothing decoded");
    lua_settop(L, 0);
  } else {
    inherit_modules(L, 1);
    lua_remove(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    copy_pairs(L, 1, -1); /* the globals copy at 1 into _G */
    lua_pop(L, 1);
    lua_remove(L, 1);
    if (run_function(w, L, 1)) {
      if (mar_encode(L, 1, lua_gettop(L), "results", &w->msg, err, sizeof err) != 0)
        fail(w, "cannot copy the results back", err);
      else
        sim_advance(sim_copy_ns(mar_last_size()));
    } else if (w->error && w->spawn_tb && !w->exited && strstr(w->error, "\nstack traceback:")) {
      size_t a = strlen(w->error), b = strlen(w->spawn_tb);
      char *e = realloc(w->error, a + b + 2);
      if (e) {
        e[a] = '\n';
        memcpy(e + a + 1, w->spawn_tb, b + 1);
        w->error = e;
      }
    }
    lua_settop(L, 0);
  }
  breaker_attach(NULL, NULL, NULL);
  gil_drop(w->interp->gil, &w->gil_thread);
  if (rt->host.before_wait_all) rt->host.before_wait_all(rt); /* its pools close, as a child's rt_wait_all */
  proc_wait_own(w);
  gil_take(w->interp->gil, &w->gil_thread);
  if (w->exited) { /* os.exit: no results, the status a real child's exit shows */
    char buf[160];
    snprintf(buf, sizeof buf, "process '%s' (pid %ld) exited with status %d before sending its results", w->name,
             w->sim_pid, w->exit_status);
    free(w->error);
    w->error = strdup(buf);
    w->interrupted = 0;
    mar_buf_free(&w->msg);
  }
  fflush(w->out);
  proc_forget_own(w);
  lua_close(L);
  w->interp->L = NULL;
  fclose(w->out); /* lua_close left it open: io.stdout is a standard file */
  w->out = NULL;
  finish(w);
  gil_drop(w->interp->gil, &w->gil_thread);
  sim_exit();
  return NULL;
}

static rt_worker *spawn_sim_process(lua_State *L, rt_worker *w, int idx, int n) {
  runtime *rt = w->rt;
  rt_worker *me = self_worker;
  char err[256];
  atomic_store(&rt->forked, 1); /* queues copy from now on, as after a real fork */
  fflush(me->proc ? me->proc->out : stdout); /* as before a fork: the spawner's buffered output, once */
  idx = lua_absindex(L, idx);
  unsigned long long mark = 0;
  copied_since(&mark);
  push_inherited_modules(L);
  int info = lua_gettop(L);
  mar_buf scratch = { 0 };
  copyable_globals(L, &scratch);
  mar_buf_free(&scratch);
  for (int i = 0; i < n; i++) lua_pushvalue(L, idx + i);
  int rc = mar_encode(L, info, n + 2, "argument", &w->msg, err, sizeof err);
  mar_uncount(copied_since(&mark), 0); /* inherited by a real fork: not a copy */
  put_back_modules(L, info);
  lua_settop(L, info - 1);
  if (rc != 0) {
    PT_CHECK(pthread_mutex_lock(&rt->mu));
    w->done = w->reaped = w->joined = 1;
    PT_CHECK(pthread_mutex_unlock(&rt->mu));
    luaL_error(L, "cannot start a process: %s (--sim copies a process's state)", err);
  }
  w->sim_proc = 1;
  w->parent_proc = w->proc;
  w->proc = w;
  w->sim_pid = 1 + w->id; /* the trace's gilvm is pid 1 */
  w->next_local = w->local_id + 1; /* its own workers count on from here, as a child's copy of the counter */
  luaL_traceback(L, L, NULL, 0); /* "stack traceback:\n\t[C]: in function 'gil.spawn'\n\t..." */
  const char *tb = strchr(lua_tostring(L, -1), '\n');
  w->spawn_tb = strdup(tb ? tb + 1 : "");
  lua_pop(L, 1);
  sim_lookahead_at_least(SIM_LOOKAHEAD_NOGIL_NS); /* two processes run free of each other's GIL */
  start_pthread(L, w, sim_process_main);
  return w;
}

rt_worker *rt_spawn(lua_State *L, rt_kind kind, int idx, int n) {
  runtime *rt = rt_current;
  rt_check_stop(L);
  luaL_checkstack(L, n + 8, "too many arguments");
  rt_worker *w = new_worker(rt, kind, self_worker->interp);
  if (!w) luaL_error(L, "out of memory");
  name_worker(L, idx, w);
  if (kind == RT_PROCESS && sim_on()) return spawn_sim_process(L, w, idx, n);
  if (kind == RT_PROCESS) {
    atomic_store(&rt->forked, 1); /* before the fork: the child inherits it too */
    return spawn_process(L, w, idx, n);
  }
  if (kind == RT_OWN_INTERP) {
    char err[256];
    unsigned long long mark = 0;
    if (sim_on()) copied_since(&mark);
    encode_globals(L, &w->in_globals);
    if (mar_encode(L, idx, n, "argument", &w->msg, err, sizeof err) != 0) {
      PT_CHECK(pthread_mutex_lock(&rt->mu));
      w->done = w->reaped = w->joined = 1;
      PT_CHECK(pthread_mutex_unlock(&rt->mu));
      luaL_error(L, "cannot start a thread with its own interpreter: %s", err);
    }
    if (sim_on()) sim_charge(sim_copy_ns(copied_since(&mark))); /* the spawner copies its globals and the arguments */
    start_pthread(L, w, own_interp_main);
    return w;
  }
  lua_State *T = lua_newthread(L);
  w->L = T;
  w->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  for (int i = 0; i < n; i++) lua_pushvalue(L, idx + i);
  lua_xmove(L, T, n);
  start_pthread(L, w, thread_main);
  return w;
}

static void reap(runtime *rt, rt_worker *w) {
  if (w->kind == RT_PROCESS && !w->sim_proc) {
    while (!collect_child(w, 0)) {}
    return;
  }
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  int mine = !w->reaped;
  w->reaped = 1;
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  if (mine) PT_CHECK(pthread_join(w->tid, NULL));
}

int rt_join(lua_State *L, rt_worker *w, int64_t timeout_ns) {
  runtime *rt = rt_current;
  rt_worker *me = self_worker;
  if (rt_inherited(rt, w)) luaL_error(L, "'%s' belongs to the parent process: it cannot be joined here", w->name);
  uint64_t began = rt_block_begin(me, RT_BLOCK_JOIN);
  uint64_t deadline = timeout_ns >= 0 ? clock_now_ns() + (uint64_t)timeout_ns + 1 : 0;
  int done;
  if (sim_on()) { /* virtual time: blocked on w until its finish wakes us, or the deadline */
    uint64_t until = timeout_ns >= 0 ? clock_now_ns() + (uint64_t)timeout_ns : 0;
    while (!w->done && !atomic_load(&rt->stop)) {
      uint64_t now = clock_now_ns();
      if (until && now >= until) break;
      sim_block(w, until ? until - now : 0);
    }
    done = w->done;
    if (done) sim_wait_gone(&w->sim); /* its pthread may still need the baton (a forced switch) */
    if (done) reap(rt, w);
  } else if (w->kind == RT_PROCESS) {
    done = collect_child(w, deadline);
  } else {
    struct timespec ts = { (time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u) };
    PT_CHECK(pthread_mutex_lock(&rt->mu));
    while (!w->done && !atomic_load(&rt->stop)) {
      if (timeout_ns < 0)
        PT_CHECK(pthread_cond_wait(&rt->done_cv, &rt->mu));
      else if (PT_CHECK_OR(pthread_cond_timedwait(&rt->done_cv, &rt->mu, &ts), ETIMEDOUT))
        break;
    }
    done = w->done;
    PT_CHECK(pthread_mutex_unlock(&rt->mu));
    if (done) reap(rt, w);
  }
  rt_block_end(me, RT_BLOCK_JOIN, began);
  if (!done) rt_check_stop(L);
  return done;
}

int rt_push_results(lua_State *L, rt_worker *w) {
  PT_CHECK(pthread_mutex_lock(&rt_current->mu));
  assert(w->done && w->reaped); /* results are read only once the worker is gone */
  w->joined = 1;
  PT_CHECK(pthread_mutex_unlock(&rt_current->mu));
  const char *what = w->kind == RT_PROCESS ? "process" : "thread";
  if (w->interrupted) return luaL_error(L, "%s '%s' was stopped (%s)", what, w->name, rt_current->stop_reason);
  if (w->error) return luaL_error(L, "error in %s '%s': %s", what, w->name, w->error);
  if (w->kind == RT_THREAD) {
    luaL_checkstack(L, w->nresults, "too many results");
    for (int i = 1; i <= w->nresults; i++) lua_pushvalue(w->L, i);
    lua_xmove(w->L, L, w->nresults);
    return w->nresults;
  }
  char err[256];
  int n = mar_decode(L, w->msg.data, w->msg.len, err, sizeof err);
  if (n < 0) return luaL_error(L, "cannot copy the results of '%s': %s", w->name, err);
  if (sim_on()) sim_advance(sim_copy_ns(mar_last_size())); /* the joiner's copy of the results */
  /* w->msg lives outside Lua's heap until the handle is collected: let the
     collector count it, or big results pile up between cycles */
  if (w->msg.len >= 65536) lua_gc(L, LUA_GCSTEP, (int)(w->msg.len >> 10));
  return n;
}

void rt_sleep(lua_State *L, uint64_t ns) {
  runtime *rt = rt_current;
  rt_worker *me = self_worker;
  uint64_t began = rt_block_begin(me, RT_BLOCK_SLEEP);
  if (sim_on()) { /* exactly ns of virtual time, unless the run stops */
    uint64_t until = clock_now_ns() + ns;
    while (!atomic_load(&rt->stop) && !(me->proc && me->proc->exited) && clock_now_ns() < until)
      sim_block(NULL, until - clock_now_ns());
    rt_block_end(me, RT_BLOCK_SLEEP, began);
    rt_check_stop(L);
    return;
  }
  uint64_t t = clock_now_ns() + ns;
  struct timespec deadline = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  while (!atomic_load(&rt->stop))
    if (PT_CHECK_OR(pthread_cond_timedwait(&rt->stop_cv, &rt->mu, &deadline), ETIMEDOUT)) break;
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  rt_block_end(me, RT_BLOCK_SLEEP, began);
  rt_check_stop(L);
}

uint64_t rt_block_begin(rt_worker *self, rt_block kind) {
  assert(self == self_worker && kind < RT_BLOCK_NKINDS); /* only a thread drops its own GIL */
  uint64_t now = clock_now_ns(), on_cpu;
  gil_drop(self->interp->gil, &self->gil_thread);
  /* after the drop: a waiter for the GIL need not wait for this read too */
  if (clock_thread_sched_ns(&on_cpu, &self->block_runq_ns) != 0) self->block_runq_ns = UINT64_MAX;
  if (self->rt->recording) ev_record(&self->events, clock_now_ns(), EV_STATE, block_state[kind], 0);
  return now;
}

/* The span from rt_block_begin to the wait's end, less what the thread spent
   in it runnable without a CPU (woken, then queued; preempted in C code): that
   is the no CPU column's, so the columns are disjoint. The retaking of the GIL
   that follows is the GIL wait column's. */
void rt_block_end(rt_worker *self, rt_block kind, uint64_t began) {
  assert(self == self_worker);
  uint64_t ended = clock_now_ns(), on_cpu, runq, queued = 0;
  if (self->block_runq_ns != UINT64_MAX && clock_thread_sched_ns(&on_cpu, &runq) == 0 && runq >= self->block_runq_ns)
    queued = runq - self->block_runq_ns;
  if (kind == RT_BLOCK_NATIVE)
    gil_take(self->interp->gil, &self->gil_thread); /* CPU work without the GIL: not a blocking wait */
  else
    gil_take_after_block(self->interp->gil, &self->gil_thread); /* back from waiting: iopri favours it */
  park_if_exiting(self);
  uint64_t spent = ended - began > queued ? ended - began - queued : 0;
  if (kind == RT_BLOCK_NATIVE)
    self->nogil_ns += spent;
  else if (kind == RT_BLOCK_IO)
    self->io_ns += spent;
  else
    self->blocked_ns += spent;
}

void rt_check_stop(lua_State *L) {
  runtime *rt = rt_current;
  if (atomic_load(&rt->stop)) luaL_error(L, "%s", rt->stop_reason);
}

int rt_can_block(void) { return rt_current && !rt_current->closing && self_worker && self_worker->interp; }

int rt_kid_add(pid_t pgid) {
  runtime *rt = rt_current;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  if (VEC_PUSH(rt->kids, rt->nkids, rt->kidcap, pgid) != 0) fprintf(stderr, "gilvm: out of memory\n");
  int stopping = atomic_load(&rt->stop) != 0;
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  return stopping;
}

void rt_kid_done(pid_t pgid) {
  runtime *rt = rt_current;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  for (int i = 0; i < rt->nkids; i++)
    if (rt->kids[i] == pgid) {
      rt->kids[i] = rt->kids[--rt->nkids];
      break;
    }
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
}

/* Under rt->mu: a child's whole group, so a shell's own children go too. */
static void kill_kids(runtime *rt) {
  for (int i = 0; i < rt->nkids; i++) kill(-rt->kids[i], SIGKILL);
}

int rt_should_stop(void *unused) {
  (void)unused;
  return atomic_load(&rt_current->stop) != 0;
}

/* ---- stopping and the end of the run ---- */

void rt_stop(runtime *rt, int code, const char *reason) {
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  if (atomic_load(&rt->stop) == 0) {
    rt->stop_reason = reason; /* written before `stop` is published: readers */
    atomic_store(&rt->stop, code); /* that see `stop` see the reason too */
  }
  PT_CHECK(pthread_cond_broadcast(&rt->stop_cv));
  PT_CHECK(pthread_cond_broadcast(&rt->done_cv));
  if (sim_on()) sim_stop();
  for (int i = 0; i < rt->nworkers; i++) {
    rt_worker *w = rt->workers[i];
    if (w->done || rt_inherited(rt, w) || (w->kind == RT_PROCESS && !w->sim_proc && w->pid == 0)) continue;
    if (w->kind == RT_PROCESS && !w->sim_proc)
      kill(w->pid, SIGKILL);
    else if (!w->reaped || i == 0)
      breaker_interrupt(w->tid, &w->interrupt, &w->interrupt_sent);
  }
  kill_kids(rt);
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
}

void rt_wait_all(runtime *rt) {
  if (rt->host.before_wait_all) rt->host.before_wait_all(rt);
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  rt->keep_all = 1; /* from here on workers[] only grows: indexing it stays valid */
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  for (int i = rt->first_own;; i++) {
    PT_CHECK(pthread_mutex_lock(&rt->mu));
    rt_worker *w = i < rt->nworkers ? rt->workers[i] : NULL;
    PT_CHECK(pthread_mutex_unlock(&rt->mu));
    if (!w) break;
    if (sim_on()) /* in virtual time first: its pthread needs the baton to finish */
      while (w != self_worker && !w->done) sim_block(w, 0);
    if (sim_on() && w != self_worker) sim_wait_gone(&w->sim);
    if (w != self_worker) reap(rt, w);
  }
  rt->end_ns = clock_now_ns();
  if (sim_on()) rt->real_end_ns = clock_real_ns();
  struct rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  uint64_t kid_us = (uint64_t)(kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) * 1000000u +
      (uint64_t)(kids.ru_utime.tv_usec + kids.ru_stime.tv_usec);
  rt->cpu_ns = clock_process_cpu_ns() - rt->cpu_start_ns + kid_us * 1000u;
  rt->maxrss_kb = (uint64_t)self.ru_maxrss + rt->gone.maxrss_kb;
  for (int i = rt->first_own; i < rt->nworkers; i++) rt->maxrss_kb += rt->workers[i]->maxrss_kb;
}

/* os.exit, from whichever thread (GIL held). The first caller wins; another
   waits here to be ended with the process. */
void rt_exit_begin(void) {
  runtime *rt = rt_current;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  int first = !atomic_load(&rt->exiting);
  if (first) {
    rt->exiter = self_worker; /* written before `exiting` is published */
    atomic_store(&rt->exiting, 1);
    for (int i = 0; i < rt->nworkers; i++) { /* threads running Lua park at their next check point */
      rt_worker *w = rt->workers[i];
      int own = i == 0 ? !rt->is_child : i >= rt->first_own;
      if (own && w != self_worker && w->kind != RT_PROCESS && !w->done)
        breaker_interrupt(w->tid, &w->interrupt, &w->interrupt_sent);
    }
  }
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
  if (!first)
    for (;;) pause();
}

/* No atexit handler or destructor runs while other threads may still be
   inside the runtime: stdio is flushed, child processes killed, then _exit. */
void rt_exit(int status) {
  runtime *rt = rt_current;
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  for (int i = rt->first_own; i < rt->nworkers; i++) {
    rt_worker *w = rt->workers[i];
    if (w->kind == RT_PROCESS && w->pid > 0 && !w->reaped) kill(w->pid, SIGKILL);
    if (w->sim_proc && w != (self_worker ? self_worker->proc : NULL))
      atomic_store(&w->out_dropped, 1); /* as a killed child's buffer */
  }
  PT_CHECK(pthread_mutex_unlock(&rt->mu)); /* io.popen's children live on, as after lua5.4's os.exit */
  fflush(NULL);
  _exit(status);
}

void rt_set_figure(runtime *rt, const char *name, const char *value) {
  PT_CHECK(pthread_mutex_lock(&rt->mu));
  int i = 0;
  while (i < rt->nfigures && strcmp(rt->figures[i].name, name) != 0) i++;
  if (i < (int)(sizeof rt->figures / sizeof rt->figures[0])) {
    snprintf(rt->figures[i].name, sizeof rt->figures[i].name, "%s", name);
    snprintf(rt->figures[i].value, sizeof rt->figures[i].value, "%s", value);
    if (i == rt->nfigures) rt->nfigures++;
  }
  PT_CHECK(pthread_mutex_unlock(&rt->mu));
}

void rt_gil_stats(runtime *rt, gil_stats *out) {
  gil_stats_get(rt->interps[0]->gil, out);
  add_gil_stats(out, &rt->gone.gil);
  for (int i = 1; i < rt->ninterps; i++) {
    if (rt->interps[i]->other_process) continue;
    gil_stats s;
    gil_stats_get(rt->interps[i]->gil, &s);
    add_gil_stats(out, &s);
  }
}

/* ---- the finished run, for the instruments ---- */

static void take_worker(const rt_worker *w, snap_worker *s) {
  s->id = w->id;
  memcpy(s->name, w->name, sizeof s->name);
  s->kind = w->kind == RT_PROCESS ? SNAP_PROCESS : w->kind == RT_OWN_INTERP ? SNAP_OWN_INTERP : SNAP_THREAD;
  s->pid = w->sim_proc ? w->sim_pid : (long)w->pid;
  s->cpu_ns = w->cpu_ns;
  s->hold_ns = w->gil_thread.hold_ns;
  s->wait_ns = w->gil_thread.wait_ns;
  s->acquisitions = w->gil_thread.acquisitions;
  s->forced_drops = w->gil_thread.forced_drops;
  s->blocked_ns = w->blocked_ns;
  s->nogil_ns = w->nogil_ns;
  s->io_ns = w->io_ns;
  s->startup_ns = w->id && w->started_ns > w->spawned_ns ? w->started_ns - w->spawned_ns : 0;
  s->inflight_ns = in_flight(w);
  s->runq_ns = w->runq_ns;
  s->oncpu_ns = w->oncpu_ns;
  s->runq_known = w->runq_known;
  s->failed = w->error != NULL;
  s->bytes_copied = w->bytes_copied;
  s->events = &w->events;
}

int rt_snapshot_take(runtime *rt, rt_snapshot *s) {
  memset(s, 0, sizeof *s);
  gil_t *g = rt->interps[0]->gil;
  s->mode = rt->mode;
  s->policy = gil_policy_name(g);
  s->interval_ns = gil_interval(g);
  s->check_interval = gil_check_interval(g);
  s->start_ns = rt->start_ns;
  s->end_ns = rt->end_ns;
  s->cpu_ns = rt->cpu_ns;
  s->maxrss_kb = rt->maxrss_kb;
  rt_gil_stats(rt, &s->gil);
  unsigned long long enc = 0, dec = 0;
  mar_counters(&enc, &dec);
  s->bytes_marshalled = enc + dec;
  s->recorded = rt->recording;
  s->stopped = atomic_load(&rt->stop) ? rt->stop_reason : NULL;
  memcpy(s->figures, rt->figures, sizeof s->figures);
  s->nfigures = rt->nfigures;
  s->released = rt->gone;
  if (sim_on()) {
    const sim_config *c = sim_config_get();
    s->sim_cores = c->cores;
    s->sim_tick = c->tick;
    s->sim_seed = c->seed;
    s->sim_wake_ns = sim_cost(SIM_COST_WAKE);
    s->sim_insn_ns = c->insn_ns;
    s->real_wall_ns = rt->real_end_ns - rt->real_start_ns;
  }
  s->workers = calloc((size_t)rt->nworkers + 1, sizeof *s->workers);
  if (!s->workers) return -1;
  for (int i = 0; i < rt->nworkers; i++)
    if (!rt_inherited(rt, rt->workers[i])) take_worker(rt->workers[i], &s->workers[s->nworkers++]);
  return 0;
}

void rt_snapshot_free(rt_snapshot *s) {
  free(s->workers);
  memset(s, 0, sizeof *s);
}
