/*
 * gil_vt.c — the virtual-time driver (--sim, issue 9): gil.c's take and
 * drop, step for step, with the simulator's waits instead of pthreads.
 *
 * The simulator runs one thread at a time, so there is no mutex: a hook
 * runs with nothing else running. A wait on `cond` becomes "blocked on the
 * channel &g->cond", timed by the interval when the policy has one (on
 * expiry: timed_out, when switch_number did not move); WAKE_ONE/WAKE_ALL
 * make one (the simulator's seeded choice) or all of those threads
 * runnable; force_switching is "the dropper is blocked on &g->switch_cond
 * until switch_number moves or nobody waits". The bookkeeping (gil__*)
 * is gil.c's, read with the virtual clock (gil__now).
 *
 * The GIL's mutex, where it decides who gets the GIL (bench/README.md,
 * "legacy's I/O thread"): a real waiter woken from `cond` leaves
 * pthread_cond_wait by taking g->mutex, and under a holder that releases
 * and retakes every check interval (gil_yield's two critical sections) it
 * mostly gets the mutex at the holder's next release, while the GIL is
 * free; the holder's retake then blocks on the mutex and finds the GIL
 * taken. So here a woken waiter that finds the GIL held by such a holder
 * queues on the mutex (`queue`: blocked on &g->mutex for the measured
 * window, `handoff`); a release within it hands the mutex to the queued
 * waiters (`hand`, at once: they are awake), and until one of them has
 * taken the GIL nobody else may (vt_handed: the retake waits). A queue
 * that no release reached goes back to waiting on `cond`: a futile
 * wake-up, as before.
 */
#include "gil_policy.h"

#include <assert.h>

/* A holder that releases and at once retakes, every check interval (legacy): its waiters queue on the mutex. */
static int holder_yields(const gil_t *g) {
  return g->holder && g->vt->queue && g->vt->hand && g->policy->info.default_check_interval > 0;
}

void gil__vt_take(gil_t *g, gil_thread *t, int after_block) {
  const gil_policy *p = g->policy;
  assert(g->holder != t && "a thread takes a GIL it already holds");
  uint64_t start = gil__now(g);
  gil_waiter w = { .t = t, .after_block = after_block };
  int arrival = g->vt_handed ? GIL_ARRIVE_WAIT : p->arrive(g, &w); /* the mutex is the queued waiters' */
  if (arrival != GIL_ARRIVE_TAKE) {
    gil__wait_begin(g, t);
    if (arrival == GIL_ARRIVE_ASK) gil__request_drop(g);
    for (;;) {
      unsigned long seen = g->switch_number;
      uint64_t ns = p->info.interval_is ? atomic_load(&g->interval_ns) : 0;
      int timed_out = g->vt->wait(t, &g->cond, ns);
      if (g->vt->woken) g->vt->woken(); /* before its check: a real waiter holds the mutex meanwhile */
      if (!g->vt_handed && p->may_take(g, &w)) break;
      if (holder_yields(g) && !g->vt->queue(t, &g->mutex) && g->vt_handed && p->may_take(g, &w)) {
        g->vt_handed = 0; /* the first queued waiter to run takes it; the others find it held */
        break;
      }
      if (timed_out && g->switch_number == seen && p->timed_out(g, &w)) gil__request_drop(g);
    }
    gil__wait_end(g);
  }
  if (p->took) p->took(g, &w);
  unsigned long forced = g->st.forced_switches;
  gil__acquired(g, t, start);
  g->vt->wake(&g->switch_cond, 1);
  if (g->st.forced_switches != forced && g->vt->forced_switch) g->vt->forced_switch();
}

void gil__vt_drop(gil_t *g, gil_thread *t, int forced) {
  const gil_policy *p = g->policy;
  assert(g->holder == t && "only the holder drops the GIL");
  gil__released(g, t, forced);
  if (g->vt->hand && g->vt->hand(&g->mutex)) g->vt_handed = 1; /* its unlock lets the queued waiters in */
  gil_wake wake = p->released(g, t);
  if (wake != GIL_WAKE_NONE) g->vt->wake(&g->cond, wake == GIL_WAKE_ALL);
  if (p->force_switching && atomic_load(&g->drop_request))
    while (g->last_holder == t && g->nwaiting > 0) g->vt->wait(t, &g->switch_cond, 0);
}
