/* sim.c — the virtual-time scheduler behind --sim (see sim.h). */
#include "sim.h"
#include "check.h"
#include "vec.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SIM_READY, SIM_BLOCKED, SIM_DONE, SIM_OUTSIDE };

int sim_enabled;
static sim_config cfg;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static sim_thread **all; /* registered and not done, in registration order (the tie-break's order) */
static int nall;
static size_t cap;
static sim_thread *cur; /* the baton's holder */
static sim_thread main_thread;
static _Thread_local sim_thread *me;
static uint64_t rng, latest, total_cpu;
static int stopping;
static int oncore_n; /* threads holding a core */
static int nqueued; /* threads in the run queue */
static int noutside; /* threads blocked for real outside the simulation (sim_outside_begin) */
static uint64_t qseq_next;
static atomic_int racing; /* free workers exist (a lookahead): shared objects are race points */

/*
 * The OS costs, one table: what --sim-cost NAME=VALUE sets, the report's
 * header and --json's "simulated" section print. Defaults are measured on
 * this 2-core VM (README, "Measured" and "Simulated runs", has each
 * command); slice's default is computed from CORES (0 here).
 */
static const struct {
  const char *name;
  uint64_t def;
  const char *about;
} costs[SIM_NCOSTS] = {
  [SIM_COST_WAKE] = { "wake", SIM_WAKE_NS, "a blocked thread woken until it runs" },
  [SIM_COST_SWITCH] = { "switch", 4000, "a core changes the thread it runs (context switch)" },
  [SIM_COST_SLICE] = { "slice", 0, "time slice while others wait for a core (default: EEVDF's base slice)" },
  [SIM_COST_SIGNAL] = { "signal", 7000, "a drop request until the holder's eval breaker sees it" },
  [SIM_COST_SPAWN] = { "spawn", 29000, "the spawner's CPU to start a thread, which runs from then" },
  [SIM_COST_INTERP] = { "interp", 65000, "CPU to create a nogil worker's own interpreter" },
  [SIM_COST_FUTEX] = { "futex", 7000, "CPU a GIL release pays to wake a blocked waiter" },
  [SIM_COST_HOOK] = { "hook", 200, "CPU per call of a resting hook (legacy's check interval)" },
  [SIM_COST_GAP] = { "gap", 25, "a yield's release to its retake, the GIL free (legacy)" },
  [SIM_COST_SPREAD] = { "spread", 4000, "a GIL waiter's wake-up comes up to this much later (seeded)" },
  [SIM_COST_FORK] = { "fork", SIM_FORK_NS, "the spawner's CPU to fork a process (gil.process, -m fork)" },
  [SIM_COST_COPY] = { "copy", SIM_COPY_KB_NS, "CPU per 1000 bytes a process's copies encode or decode" },
  [SIM_COST_TIMER] = { "timer", 70000, "a GIL waiter's timed wait expires this late (timer slack, wake-up)" },
  [SIM_COST_RESUME] = { "resume", 20000, "CPU the new holder loses at most at a forced switch (cold caches)" },
  [SIM_COST_HANDOFF] = { "handoff", 200,
                         "a woken GIL waiter queues on its mutex: a release within it hands it over (legacy)" },
  [SIM_COST_WOKEN] = { "woken", 3000, "CPU a GIL waiter spends at each wake-up (return, mutex, next wait)" },
  [SIM_COST_OBJECT] = { "object", 40, "CPU per call of a shared object's method (beyond its instructions)" },
  [SIM_COST_SOCKET] = { "socket", 4000, "CPU per send or recv on a socket between the script's workers" },
};

int sim_cost_count(void) { return SIM_NCOSTS; }
const char *sim_cost_name(int i) { return costs[i].name; }
const char *sim_cost_about(int i) { return costs[i].about; }

/* EEVDF (Linux >= 6.6, this VM's 6.18): base slice 0.75 ms x (1 + log2(min(CPUs, 8))): 1.5 ms on 2 cores. */
uint64_t sim_cost_default(int i, int cores) {
  if (i != SIM_COST_SLICE) return costs[i].def;
  int f = 1;
  for (int n = cores < 8 ? cores : 8; n > 1; n >>= 1) f++;
  return 750000u * (uint64_t)f;
}

int sim_cost_find(const char *name, size_t len) {
  for (int i = 0; i < SIM_NCOSTS; i++)
    if (strlen(costs[i].name) == len && strncmp(costs[i].name, name, len) == 0) return i;
  return -1;
}

void sim_cost_set(sim_config *c, int i, uint64_t ns) {
  c->cost[i] = (int64_t)ns;
  c->cost_set[i] = 1;
}

uint64_t sim_cost(sim_cost_id id) {
  return cfg.cost_set[id] ? (uint64_t)cfg.cost[id] : sim_cost_default(id, cfg.cores);
}
static void (*on_deadlock)(const char *names, int n); /* sim_on_deadlock's */

/* splitmix64: the seeded choices among equals */
static uint64_t next_rand(void) {
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void set_vt(sim_thread *t, uint64_t v) {
  t->vt = v;
  if (v > latest) latest = v;
}

/* When t could next run: a runnable thread at its clock (not while it waits for a core: it is
   given one), a blocked one at its timer. */
static int key_of(const sim_thread *t, uint64_t *k) {
  if (t->state == SIM_READY && !t->queued)
    *k = t->vt;
  else if (t->state == SIM_BLOCKED && t->deadline)
    *k = t->deadline;
  else
    return 0;
  return 1;
}

static void init_thread(sim_thread *t, const char *name, uint64_t vt) {
  memset(t, 0, sizeof *t);
  t->name = name;
  t->state = SIM_READY;
  t->live = 1;
  set_vt(t, vt);
  PT_CHECK(pthread_cond_init(&t->cv, NULL));
  if (VEC_PUSH(all, nall, cap, t) != 0) {
    fprintf(stderr, "gilvm: out of memory\n");
    _exit(1);
  }
}

void sim_init(const sim_config *c, sim_thread *unused, const char *name) {
  (void)unused;
  cfg = *c;
  if (cfg.tick <= 0) cfg.tick = 1000;
  rng = cfg.seed;
  init_thread(&main_thread, name, 0);
  me = cur = &main_thread;
  main_thread.oncore = 1;
  oncore_n = 1;
  main_thread.slice_end = sim_cost(SIM_COST_SLICE);
  atomic_store(&racing, cfg.lookahead_ns > 0);
  sim_enabled = 1;
}

const sim_config *sim_config_get(void) { return &cfg; }

/* The waiting threads' names, "'a', 'b'", into buf (under mu). */
static void names_of(char *buf, size_t len) {
  size_t at = 0;
  buf[0] = 0;
  for (int i = 0; i < nall && at < len; i++) {
    int k = snprintf(buf + at, len - at, "%s'%s'", i ? ", " : "", all[i]->name);
    if (k < 0) break;
    at += (size_t)k;
  }
}

/* Every thread waits and no timer is left: nothing will ever happen. With
   a handler (the runtime's detector), it says so and stops the run, which
   makes every thread runnable (sim_stop): they see the stop and end, and
   the run ends as a real deadlock does, report included. Without one, or
   if the handler stopped nothing, say so and exit. */
static void deadlock(void) {
  char names[512];
  names_of(names, sizeof names);
  if (on_deadlock && !stopping) {
    int n = nall;
    PT_CHECK(pthread_mutex_unlock(&mu)); /* the handler stops the run: sim_stop takes mu */
    on_deadlock(names, n);
    PT_CHECK(pthread_mutex_lock(&mu));
    if (stopping) return;
  }
  fflush(stdout);
  fprintf(stderr, "gilvm: deadlock: every worker waits, none with a timeout (simulated, at virtual time %.6f s): %s\n",
          (double)latest / 1e9, names);
  _exit(SIM_EXIT_DEADLOCK);
}

void sim_on_deadlock(void (*fn)(const char *names, int n)) { on_deadlock = fn; }

/* The next thread to run (under mu): the smallest key, ties by the PRNG. */
static sim_thread *pick(void) {
  uint64_t best = UINT64_MAX, k;
  int nbest = 0;
  for (int i = 0; i < nall; i++) {
    if (!key_of(all[i], &k)) continue;
    if (k < best)
      best = k, nbest = 1;
    else if (k == best)
      nbest++;
  }
  if (!nbest) return NULL;
  int which = nbest > 1 ? (int)(next_rand() % (uint64_t)nbest) : 0;
  for (int i = 0; i < nall; i++)
    if (key_of(all[i], &k) && k == best && which-- == 0) return all[i];
  return NULL;
}

/*
 * Virtual cores (under mu). A runnable thread runs only on a core; at most
 * cfg.cores are held at once. A thread whose turn comes (the smallest clock)
 * without a core takes a free one, or joins the tail of the run queue at its
 * clock: it waits for a CPU. A core is given back when its thread blocks or
 * ends, or when it has run a whole slice while others waited (it joins the
 * queue's tail: round robin); then the queue's head gets it after a context
 * switch. The decision is made when the waiting thread's clock is the
 * smallest, so every other clock is at that time or (by a tick, or the nogil
 * lookahead) just past it.
 */
static void give_core(sim_thread *t, uint64_t at) {
  t->oncore = 1;
  oncore_n++;
  if (t->queued) {
    t->queued = 0;
    nqueued--;
    t->runq_ns += at - t->queued_at;
    if (t->cpu_wait_from == t->cpu_wait_to) t->cpu_wait_from = t->queued_at; /* else: extends the one untold */
    t->cpu_wait_to = at;
  }
  if (at > t->vt) set_vt(t, at);
  t->slice_end = t->vt + sim_cost(SIM_COST_SLICE);
}

static void enqueue(sim_thread *t, uint64_t at) {
  t->queued = 1;
  t->queued_at = at;
  t->qseq = qseq_next++;
  nqueued++;
}

/* t lets its core go at time at: the run queue's head gets it. */
static void release_core(sim_thread *t, uint64_t at) {
  if (!t->oncore) return;
  t->oncore = 0;
  t->cold_ns = 0; /* what resume prices is the stretch it runs on after a forced switch */
  oncore_n--;
  if (!nqueued) return;
  sim_thread *head = NULL;
  for (int i = 0; i < nall; i++)
    if (all[i]->queued && all[i] != t && (!head || all[i]->qseq < head->qseq)) head = all[i];
  if (head) give_core(head, (at > head->queued_at ? at : head->queued_at) + sim_cost(SIM_COST_SWITCH));
}

/* me's slice is over and others wait: to the queue's tail, its core to the head. */
static int preempt_due(void) { return me && me->oncore && nqueued && me->vt >= me->slice_end; }
static void preempt(void) {
  release_core(me, me->vt);
  enqueue(me, me->vt);
}

/* me hands the baton to the next thread (under mu) and, unless it is done, waits to get it back. */
static void run_next(void) {
  sim_thread *n;
  for (;;) {
    n = pick();
    if (!n && noutside) { /* nothing to run until a thread blocked for real comes back (sim_outside_end) */
      cur = NULL;
      if (me && me->state != SIM_DONE && me->state != SIM_OUTSIDE)
        while (cur != me) PT_CHECK(pthread_cond_wait(&me->cv, &mu));
      return;
    }
    if (!n && nall) {
      deadlock(); /* returns once the run is stopping: every thread is runnable again */
      n = pick();
    }
    if (!n) {
      if (nall) deadlock();
      cur = NULL;
      return;
    }
    if (n->state == SIM_BLOCKED) { /* its timer */
      n->timed_out = 1;
      n->state = SIM_READY;
      n->chan = NULL;
      set_vt(n, n->deadline > n->vt ? n->deadline : n->vt);
      n->deadline = 0;
    }
    if (n->oncore) break;
    if (oncore_n < cfg.cores) { /* a free core: a wake-up's cost already covers getting there */
      give_core(n, n->vt);
      break;
    }
    enqueue(n, n->vt); /* waits for a CPU */
  }
  cur = n;
  if (n == me) return;
  PT_CHECK(pthread_cond_signal(&n->cv));
  if (me->state == SIM_DONE || me->state == SIM_OUTSIDE) return;
  while (cur != me) PT_CHECK(pthread_cond_wait(&me->cv, &mu));
}

/* After me got the baton back: tell its waits for a CPU (under mu; on me's own pthread). */
static void tell_cpu_wait(void) {
  me->rp_behind = me->rp_armed = 0; /* it had the smallest clock: none is behind it */
  if (me->cpu_wait_from == me->cpu_wait_to) return;
  uint64_t from = me->cpu_wait_from, to = me->cpu_wait_to;
  me->cpu_wait_from = me->cpu_wait_to = 0;
  if (me->cpu_fn) me->cpu_fn(me->cpu_arg, SIM_SPAN_CPU_WAIT, from, to);
}

void sim_register_after(sim_thread *t, const char *name, uint64_t start_ns) {
  PT_CHECK(pthread_mutex_lock(&mu));
  init_thread(t, name, (me ? me->vt : latest) + start_ns);
  PT_CHECK(pthread_mutex_unlock(&mu));
}

void sim_register(sim_thread *t, const char *name) {
  sim_register_after(t, name, sim_cost(SIM_COST_SPAWN)); /* clone, stack: then it can run */
}

sim_thread *sim_self(void) { return me; }

void sim_set_cpu_fn(sim_thread *t, void (*fn)(void *arg, int what, uint64_t from, uint64_t to), void *arg) {
  PT_CHECK(pthread_mutex_lock(&mu));
  t->cpu_fn = fn;
  t->cpu_arg = arg;
  PT_CHECK(pthread_mutex_unlock(&mu));
}

void sim_start(sim_thread *t) {
  me = t;
  PT_CHECK(pthread_mutex_lock(&mu));
  while (cur != t) PT_CHECK(pthread_cond_wait(&t->cv, &mu));
  tell_cpu_wait();
  PT_CHECK(pthread_mutex_unlock(&mu));
}

/* Take t out of the scheduler's list (under mu), keeping the order: the tie-break follows it. */
static void unlist(sim_thread *t) {
  for (int i = 0; i < nall; i++)
    if (all[i] == t) {
      memmove(&all[i], &all[i + 1], (size_t)(nall - i - 1) * sizeof *all);
      nall--;
      break;
    }
}

void sim_wait_gone(sim_thread *t) {
  PT_CHECK(pthread_mutex_lock(&mu));
  while (t->live) {
    me->state = SIM_BLOCKED;
    me->chan = t;
    me->deadline = stopping ? me->vt + 1000 : 0;
    me->timed_out = 0;
    release_core(me, me->vt);
    run_next();
    tell_cpu_wait();
  }
  PT_CHECK(pthread_mutex_unlock(&mu));
}

void sim_forget(sim_thread *t) {
  PT_CHECK(pthread_mutex_lock(&mu));
  unlist(t);
  if (t->queued) t->queued = 0, nqueued--;
  if (t->oncore) t->oncore = 0, oncore_n--;
  t->live = 0;
  PT_CHECK(pthread_mutex_unlock(&mu));
  PT_CHECK(pthread_cond_destroy(&t->cv));
}

static void make_ready(sim_thread *t, uint64_t at);
static int wake_after(const void *chan, int all_of_them, uint64_t spread);

/* me worked ns of CPU (under mu). */
static void add_cpu(uint64_t ns) {
  me->vcpu += ns;
  total_cpu += ns;
  set_vt(me, me->vt + ns);
}

/* The object calls' CPU not yet on me's clock (sim_race_point), paid before it blocks or ends (under mu). */
static void pay_owed(void) {
  add_cpu(me->owed_ns);
  me->owed_ns = 0;
}

/* Every thread blocked on chan runnable from at (under mu); how many there were. */
static int ready_all_on(const void *chan, uint64_t at) {
  int n = 0;
  for (int i = 0; i < nall; i++)
    if (all[i]->state == SIM_BLOCKED && all[i]->chan == chan) {
      make_ready(all[i], at);
      n++;
    }
  return n;
}

void sim_exit(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  pay_owed();
  me->state = SIM_DONE;
  me->live = 0;
  release_core(me, me->vt);
  unlist(me);
  ready_all_on(me, me->vt); /* its reapers (sim_wait_gone) */
  run_next();
  PT_CHECK(pthread_mutex_unlock(&mu));
  PT_CHECK(pthread_cond_destroy(&me->cv));
  me = NULL;
}

int sim_block(const void *chan, uint64_t timeout_ns) {
  PT_CHECK(pthread_mutex_lock(&mu));
  if (stopping) timeout_ns = 1000; /* the run is stopping: let the others run, then look again */
  pay_owed();
  me->state = SIM_BLOCKED;
  me->chan = chan;
  me->deadline = timeout_ns ? me->vt + timeout_ns : 0;
  me->timed_out = 0;
  release_core(me, me->vt);
  run_next();
  tell_cpu_wait();
  int r = me->timed_out;
  PT_CHECK(pthread_mutex_unlock(&mu));
  return r;
}

/*
 * A thread about to wait for real on something another worker may do (a
 * pipe or FIFO one of them writes) leaves the simulation for that wait:
 * holding the baton, it would stop that worker and wait forever. The others
 * go on without it; when nothing else can run, nobody holds the baton until
 * it comes back. It comes back at the simulation's latest clock plus a
 * wake-up: its wait took whatever virtual time passed meanwhile. A wait on
 * its own child (sim_outside_end_at) ends no earlier than the caller says:
 * the child runs in real time, no simulated worker ends it. Such a run is
 * not deterministic (how far the others got depends on real time).
 */
void sim_outside_begin(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  me->state = SIM_OUTSIDE;
  noutside++;
  release_core(me, me->vt);
  run_next();
  PT_CHECK(pthread_mutex_unlock(&mu));
}

void sim_outside_end(void) { sim_outside_end_at(0); }

void sim_outside_end_at(uint64_t at) {
  PT_CHECK(pthread_mutex_lock(&mu));
  noutside--;
  me->state = SIM_READY;
  uint64_t back = latest > me->vt ? latest : me->vt;
  set_vt(me, (at > back ? at : back) + sim_cost(SIM_COST_WAKE));
  if (!cur)
    run_next(); /* nobody runs the scheduler: this thread does */
  else
    while (cur != me) PT_CHECK(pthread_cond_wait(&me->cv, &mu));
  tell_cpu_wait();
  PT_CHECK(pthread_mutex_unlock(&mu));
}

static void make_ready(sim_thread *t, uint64_t at) {
  t->state = SIM_READY;
  t->chan = NULL;
  t->deadline = 0;
  set_vt(t, at > t->vt ? at : t->vt);
}

void sim_wake(const void *chan, int all_of_them) { (void)sim_wake_n(chan, all_of_them); }

int sim_wake_n(const void *chan, int all_of_them) { return wake_after(chan, all_of_them, 0); }

/* Wake as sim_wake_n, each woken thread running `wake` plus up to `spread` (a seeded draw) later
   when a core is free: `wake` is an idle core's. With every core busy there is no idle core to
   wake: the thread queues for a core and runs a context switch after one frees. */
static int wake_after(const void *chan, int all_of_them, uint64_t spread) {
  int woken = 0;
  PT_CHECK(pthread_mutex_lock(&mu));
  uint64_t at = me ? me->vt : latest;
  if (oncore_n < cfg.cores) {
    at += sim_cost(SIM_COST_WAKE);
    if (spread) at += next_rand() % spread;
  } else
    at += sim_cost(SIM_COST_SWITCH);
  if (all_of_them) {
    woken = ready_all_on(chan, at);
    PT_CHECK(pthread_mutex_unlock(&mu));
    return woken;
  }
  int n = 0;
  for (int i = 0; i < nall; i++) n += all[i]->state == SIM_BLOCKED && all[i]->chan == chan;
  int which = n > 1 ? (int)(next_rand() % (uint64_t)n) : 0;
  for (int i = 0; i < nall && n; i++) {
    sim_thread *t = all[i];
    if (t->state == SIM_BLOCKED && t->chan == chan && which-- == 0) {
      make_ready(t, at);
      woken = 1;
      break;
    }
  }
  PT_CHECK(pthread_mutex_unlock(&mu));
  return woken;
}

/* Does another live thread run under t's GIL? Then t gets no lookahead: any event may wake that
   one (a reply from another process), which then asks t to drop the GIL at that time. */
static int shares_gil(const sim_thread *t) {
  if (!t || !t->group) return 0;
  for (int i = 0; i < nall; i++)
    if (all[i] != t && all[i]->group == t->group && all[i]->state != SIM_DONE) return 1;
  return 0;
}

/* The earliest time another thread could run, or me's slice ends while others wait (UINT64_MAX: none). */
static uint64_t horizon(void) {
  uint64_t h = UINT64_MAX, k;
  int ahead = cfg.lookahead_ns && !shares_gil(me);
  for (int i = 0; i < nall; i++) {
    if (all[i] != me && key_of(all[i], &k)) {
      if (all[i]->state == SIM_READY && ahead) k += cfg.lookahead_ns; /* a timer is never overrun */
      if (k < h) h = k;
    }
  }
  if (me && me->oncore && nqueued && me->slice_end < h) h = me->slice_end;
  return h;
}

/* Is another thread's turn before me's clock (under mu)? For sim_race_point. */
static int others_behind(void) {
  uint64_t k;
  for (int i = 0; i < nall; i++)
    if (all[i] != me && key_of(all[i], &k) && k < me->vt) return 1;
  return 0;
}

/* ns of the script's work (Lua, C code) takes twice as long while me's caches are cold (under mu). */
static uint64_t cold_work(uint64_t ns) {
  uint64_t cold = ns < me->cold_ns ? ns : me->cold_ns;
  me->cold_ns -= cold;
  return ns + cold;
}

/* CPU work of ns (the script's, work = 1; an OS cost, 0), then hand over if past the horizon. */
static void advance(uint64_t ns, int work) {
  PT_CHECK(pthread_mutex_lock(&mu));
  add_cpu(work ? cold_work(ns) : ns);
  if (preempt_due()) preempt();
  if (me->queued || me->vt > horizon()) {
    run_next();
    tell_cpu_wait();
  }
  if (atomic_load_explicit(&racing, memory_order_relaxed)) {
    me->rp_behind = others_behind();
    if (!me->rp_behind) me->rp_armed = 0;
  }
  PT_CHECK(pthread_mutex_unlock(&mu));
}

void sim_advance(uint64_t ns) { advance(ns, 1); }

void sim_charge(uint64_t ns) {
  if (ns) advance(ns, 0);
}

/*
 * A race point (a shared object is about to be used). Free workers run up to
 * the lookahead past each other, which would let one do a whole 100 us of
 * reads and writes before another does any: a get-then-set would never lose
 * an update. So here there is no lookahead: once another thread's turn (its
 * clock, or its timer) is before me's clock, me hands the baton over and
 * waits at this point until its own clock is the smallest again; accesses
 * thus interleave in virtual-time order. me's clock moves only at the hook
 * (a tick of instructions), and a loop whose length divides the tick would
 * always be passed at the same race point (always the get, never the set):
 * so the hand-over comes after a seeded number of race points, fewer than
 * me did in its last tick (the resolution of its clock). Only a thread
 * behind costs a draw and a hand-over; under one GIL (no lookahead) this does
 * nothing: the GIL decides where threads switch.
 */
void sim_race_point(void) {
  if (me) me->owed_ns += sim_cost(SIM_COST_OBJECT); /* its clock moves only at the hook: paid there */
  if (!me || !atomic_load_explicit(&racing, memory_order_relaxed)) return;
  me->rp_since++;
  if (!me->rp_behind) return; /* none can fall behind me until me's clock moves (sim_advance looks) */
  PT_CHECK(pthread_mutex_lock(&mu));
  if (!me->rp_armed) {
    me->rp_armed = 1;
    me->rp_skip = (int)(next_rand() % (uint64_t)(me->rp_tick + 1));
  }
  if (me->rp_skip-- == 0) {
    run_next();
    tell_cpu_wait();
  }
  PT_CHECK(pthread_mutex_unlock(&mu));
}

int sim_thread_sched(uint64_t *on_cpu_ns, uint64_t *runq_ns) {
  if (!me) return -1;
  PT_CHECK(pthread_mutex_lock(&mu));
  *on_cpu_ns = me->vcpu;
  *runq_ns = me->runq_ns;
  PT_CHECK(pthread_mutex_unlock(&mu));
  return 0;
}

int sim_jitter(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  int n = 1 + (int)(next_rand() % (uint64_t)cfg.tick);
  PT_CHECK(pthread_mutex_unlock(&mu));
  return n;
}

void sim_lookahead_at_least(uint64_t ns) {
  PT_CHECK(pthread_mutex_lock(&mu));
  if (cfg.lookahead_ns < ns) cfg.lookahead_ns = ns;
  atomic_store(&racing, cfg.lookahead_ns > 0);
  PT_CHECK(pthread_mutex_unlock(&mu));
}

void sim_set_group(const void *group) {
  PT_CHECK(pthread_mutex_lock(&mu));
  if (me) me->group = group;
  PT_CHECK(pthread_mutex_unlock(&mu));
}

uint64_t sim_copy_ns(size_t bytes) { return (uint64_t)((double)bytes * (double)sim_cost(SIM_COST_COPY) / 1000 + 0.5); }

void sim_insns(int n) {
  uint64_t owed = 0;
  if (me) { /* sim_race_point's measure of a tick, and the object calls' CPU it owes */
    me->rp_tick = me->rp_since, me->rp_since = 0;
    owed = me->owed_ns, me->owed_ns = 0;
  }
  sim_advance((uint64_t)((double)n * cfg.insn_ns + 0.5) + owed);
}

uint64_t sim_room(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  uint64_t h = horizon();
  uint64_t room = h == UINT64_MAX ? UINT64_MAX / 2 : h > me->vt ? h - me->vt : 0; /* no event: no limit */
  PT_CHECK(pthread_mutex_unlock(&mu));
  return room;
}

uint64_t sim_now(void) {
  if (me) return me->vt;
  PT_CHECK(pthread_mutex_lock(&mu));
  uint64_t v = latest;
  PT_CHECK(pthread_mutex_unlock(&mu));
  return v;
}

uint64_t sim_thread_cpu(void) { return me ? me->vcpu : 0; }

uint64_t sim_total_cpu(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  uint64_t v = total_cpu;
  PT_CHECK(pthread_mutex_unlock(&mu));
  return v;
}

void sim_stop(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  stopping = 1;
  for (int i = 0; i < nall; i++)
    if (all[i]->state == SIM_BLOCKED) make_ready(all[i], latest);
  PT_CHECK(pthread_mutex_unlock(&mu));
}

static uint64_t gil_vt_now(void) { return sim_now(); }
/* A timed wait for the GIL (the interval) ends late, as pthread_cond_timedwait does here: the
   kernel's timer slack and a wake-up (timer). gil.sleep and the objects' timeouts stay exact. */
static int gil_vt_wait(gil_thread *t, const void *chan, uint64_t ns) {
  (void)t;
  return sim_block(chan, ns ? ns + sim_cost(SIM_COST_TIMER) : 0);
}
/* Waking a blocked GIL waiter costs the waker the futex syscall (paid after the release), and the
   waiter runs a wake-up later, give or take a seeded spread (a real wake-up's latency varies: without
   it the releaser and its waiter would meet at the same phase of the releaser's loop every time). */
static void gil_vt_wake(const void *chan, int all_of_them) {
  if (!wake_after(chan, all_of_them, sim_cost(SIM_COST_SPREAD))) return;
  uint64_t ns = sim_cost(SIM_COST_FUTEX);
  if (me && me->cpu_fn && ns) me->cpu_fn(me->cpu_arg, SIM_SPAN_SYSCALL, me->vt, me->vt + ns); /* told first: in order */
  sim_charge(ns);
}

static void gil_vt_gap(void) { sim_charge(sim_cost(SIM_COST_GAP)); }

/* A GIL waiter's wake-up costs it CPU: the wait's return, the mutex, the check and, if it finds the
   GIL held, the next wait (README's cost table: 3.1-4.8 us a wake-up, -g legacy, two threads). */
static void gil_vt_woken(void) { sim_charge(sim_cost(SIM_COST_WOKEN)); }

/* The thread that takes the GIL at a forced switch runs slower for a while: its thread has usually
   just moved to the other core (bench/README.md, row 12: held CPU per forced switch). Its first
   `resume` of work (Lua, C code; not the OS costs) counts twice, until it lets its core go: a
   holder that runs on loses `resume`, an echo server that answers and blocks loses what it ran. */
static void gil_vt_forced_switch(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  if (me) me->cold_ns = sim_cost(SIM_COST_RESUME);
  PT_CHECK(pthread_mutex_unlock(&mu));
}

/* A woken GIL waiter that found it held queues on the GIL's mutex for `handoff` (0: it does not). */
static int gil_vt_queue(gil_thread *t, const void *chan) {
  (void)t;
  uint64_t ns = sim_cost(SIM_COST_HANDOFF);
  return ns ? sim_block(chan, ns) : 1;
}

/* A release's unlock hands the mutex to the queued waiters: awake, they run from the caller's clock. */
static int gil_vt_hand(const void *chan) {
  PT_CHECK(pthread_mutex_lock(&mu));
  int n = ready_all_on(chan, me ? me->vt : latest);
  PT_CHECK(pthread_mutex_unlock(&mu));
  return n;
}

const gil_vt_ops sim_gil_ops = { .now = gil_vt_now,
                                 .wait = gil_vt_wait,
                                 .wake = gil_vt_wake,
                                 .gap = gil_vt_gap,
                                 .forced_switch = gil_vt_forced_switch,
                                 .woken = gil_vt_woken,
                                 .queue = gil_vt_queue,
                                 .hand = gil_vt_hand };
