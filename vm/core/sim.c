/* sim.c — the virtual-time scheduler behind --sim (see sim.h). */
#include "sim.h"
#include "check.h"
#include "vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SIM_READY, SIM_BLOCKED, SIM_DONE };

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

/* When t could next run: a runnable thread at its clock, a blocked one at its timer. */
static int key_of(const sim_thread *t, uint64_t *k) {
  if (t->state == SIM_READY)
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
  if (!cfg.fork_ns) cfg.fork_ns = SIM_FORK_NS;
  if (!(cfg.copy_bytes_per_s > 0)) cfg.copy_bytes_per_s = SIM_COPY_BYTES_PER_S;
  rng = cfg.seed;
  init_thread(&main_thread, name, 0);
  me = cur = &main_thread;
  sim_enabled = 1;
}

const sim_config *sim_config_get(void) { return &cfg; }

/* Every thread waits and no timer is left: nothing will ever happen. */
static void deadlock(void) {
  fflush(stdout);
  fprintf(stderr, "gilvm: deadlock (simulated, at virtual time %.6f s): every thread waits and nothing is due:",
          (double)latest / 1e9);
  for (int i = 0; i < nall; i++) fprintf(stderr, "%s '%s'", i ? "," : "", all[i]->name);
  fprintf(stderr, "\n");
  _exit(SIM_EXIT_DEADLOCK);
}

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

/* me hands the baton to the next thread (under mu) and, unless it is done, waits to get it back. */
static void run_next(void) {
  sim_thread *n = pick();
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
  cur = n;
  if (n == me) return;
  PT_CHECK(pthread_cond_signal(&n->cv));
  if (me->state == SIM_DONE) return;
  while (cur != me) PT_CHECK(pthread_cond_wait(&me->cv, &mu));
}

void sim_register(sim_thread *t, const char *name) {
  PT_CHECK(pthread_mutex_lock(&mu));
  init_thread(t, name, me ? me->vt : latest);
  PT_CHECK(pthread_mutex_unlock(&mu));
}

void sim_start(sim_thread *t) {
  me = t;
  PT_CHECK(pthread_mutex_lock(&mu));
  while (cur != t) PT_CHECK(pthread_cond_wait(&t->cv, &mu));
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
    run_next();
  }
  PT_CHECK(pthread_mutex_unlock(&mu));
}

void sim_forget(sim_thread *t) {
  PT_CHECK(pthread_mutex_lock(&mu));
  unlist(t);
  t->live = 0;
  PT_CHECK(pthread_mutex_unlock(&mu));
  PT_CHECK(pthread_cond_destroy(&t->cv));
}

static void make_ready(sim_thread *t, uint64_t at);

void sim_exit(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  me->state = SIM_DONE;
  me->live = 0;
  unlist(me);
  for (int i = 0; i < nall; i++) /* its reapers (sim_wait_gone) */
    if (all[i]->state == SIM_BLOCKED && all[i]->chan == me) make_ready(all[i], me->vt);
  run_next();
  PT_CHECK(pthread_mutex_unlock(&mu));
  PT_CHECK(pthread_cond_destroy(&me->cv));
  me = NULL;
}

int sim_block(const void *chan, uint64_t timeout_ns) {
  PT_CHECK(pthread_mutex_lock(&mu));
  if (stopping) timeout_ns = 1000; /* the run is stopping: let the others run, then look again */
  me->state = SIM_BLOCKED;
  me->chan = chan;
  me->deadline = timeout_ns ? me->vt + timeout_ns : 0;
  me->timed_out = 0;
  run_next();
  int r = me->timed_out;
  PT_CHECK(pthread_mutex_unlock(&mu));
  return r;
}

static void make_ready(sim_thread *t, uint64_t at) {
  t->state = SIM_READY;
  t->chan = NULL;
  t->deadline = 0;
  set_vt(t, at > t->vt ? at : t->vt);
}

void sim_wake(const void *chan, int all_of_them) {
  PT_CHECK(pthread_mutex_lock(&mu));
  uint64_t at = (me ? me->vt : latest) + cfg.wake_ns;
  int n = 0;
  for (int i = 0; i < nall; i++) n += all[i]->state == SIM_BLOCKED && all[i]->chan == chan;
  int which = !all_of_them && n > 1 ? (int)(next_rand() % (uint64_t)n) : 0;
  for (int i = 0; i < nall && n; i++) {
    sim_thread *t = all[i];
    if (t->state != SIM_BLOCKED || t->chan != chan) continue;
    if (all_of_them || which-- == 0) {
      make_ready(t, at);
      if (!all_of_them) break;
    }
  }
  PT_CHECK(pthread_mutex_unlock(&mu));
}

/* The earliest time another thread could run (UINT64_MAX: none); *runnable: threads wanting a core. */
static uint64_t horizon(int *runnable) {
  uint64_t h = UINT64_MAX, k;
  int r = 0;
  for (int i = 0; i < nall; i++) {
    r += all[i]->state == SIM_READY;
    if (all[i] != me && key_of(all[i], &k)) {
      if (all[i]->state == SIM_READY) k += cfg.lookahead_ns; /* a timer is never overrun */
      if (k < h) h = k;
    }
  }
  *runnable = r;
  return h;
}

void sim_advance(uint64_t ns) {
  PT_CHECK(pthread_mutex_lock(&mu));
  int r;
  uint64_t h = horizon(&r);
  /* processor sharing: more runnable threads than cores stretch CPU work */
  uint64_t dt = r > cfg.cores ? ns * (uint64_t)r / (uint64_t)cfg.cores : ns;
  me->vcpu += ns;
  total_cpu += ns;
  set_vt(me, me->vt + dt);
  if (me->vt > h) run_next();
  PT_CHECK(pthread_mutex_unlock(&mu));
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
  PT_CHECK(pthread_mutex_unlock(&mu));
}

uint64_t sim_copy_ns(size_t bytes) { return (uint64_t)((double)bytes * 1e9 / cfg.copy_bytes_per_s + 0.5); }

void sim_insns(int n) { sim_advance((uint64_t)((double)n * cfg.insn_ns + 0.5)); }

uint64_t sim_room(void) {
  PT_CHECK(pthread_mutex_lock(&mu));
  int r;
  uint64_t h = horizon(&r);
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
static int gil_vt_wait(gil_thread *t, const void *chan, uint64_t ns) {
  (void)t;
  return sim_block(chan, ns);
}
static void gil_vt_wake(const void *chan, int all_of_them) { sim_wake(chan, all_of_them); }

const gil_vt_ops sim_gil_ops = { gil_vt_now, gil_vt_wait, gil_vt_wake };
