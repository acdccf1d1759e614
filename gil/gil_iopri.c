/*
 * gil_iopri.c — the cpython policy plus I/O priority: a thread that comes
 * back from a blocking wait gets the GIL at once.
 *
 * This is the fix proposed for CPython's convoy effect in bpo-7946 (2010,
 * Antoine Pitrou's "priority requests" patch and Nir Aides' scheduler
 * experiments), never merged. The convoy: a thread that does I/O gives the
 * GIL up at every blocking call and, when the call returns, queues behind a
 * CPU-bound holder for a whole switch interval (5 ms) before it may even ask
 * for it back; an echo server next to one CPU thread answers ~200 requests a
 * second instead of ~17,000 (issue 8's table). With I/O priority:
 *
 * - a thread returning from a blocking wait (gil_take_after_block: sleep,
 *   join, lock, queue, I/O) that finds the GIL held does not wait an
 *   interval: it joins the priority queue and asks the holder to drop at
 *   once (GIL_ARRIVE_ASK). If the GIL is free and not reserved, it takes it.
 *
 * - when the holder lets go (asked, or blocking), the head of the priority
 *   queue is handed the GIL (reserved, as fifo's handoff: nobody barges in,
 *   not even the dropper wanting it straight back); priority waiters are
 *   served in arrival order.
 *
 * - everything else is the cpython policy: other waiters wait one switch
 *   interval, then ask; a release with no priority waiter wakes one waiter
 *   and the first to run takes it; forced switching.
 *
 * So a returning I/O thread waits one forced handoff (signal, check point,
 * wake-up: tens of microseconds) instead of a switch interval. The price,
 * and why CPython did not take it: priority is for whoever blocks, so
 * threads that block very often (a chatty I/O thread, or many of them) can
 * keep CPU-bound threads off the GIL for long stretches, and every return
 * from a short wait interrupts the CPU thread (a forced switch per I/O
 * call). A CPU-bound thread still gets the GIL whenever no priority waiter
 * is queued, and a priority holder is asked to drop after an interval like
 * anyone else.
 *
 * Private state: the priority queue (the driver's gil_waiters, in arrival
 * order, so queueing allocates nothing) and the reservation: a gil_waitq
 * (gil_policy.h), as fifo's.
 */
#include "gil_policy.h"

typedef struct iopri_state {
  gil_waitq q; /* waiters back from a blocking wait, in arrival order, and the reservation */
} iopri_state;

static int iopri_arrive(gil_t *g, gil_waiter *w) {
  iopri_state *s = gil__state(g);
  w->granted = 0;
  if (!g->holder && !s->q.reserved && (!w->after_block || !s->q.head)) return GIL_ARRIVE_TAKE;
  if (!w->after_block) return GIL_ARRIVE_WAIT; /* as cpython: an interval, then ask */
  gil_waitq_push(&s->q, w);
  return GIL_ARRIVE_ASK;
}

static int iopri_may_take(gil_t *g, gil_waiter *w) {
  iopri_state *s = gil__state(g);
  if (w->after_block) return w->granted;
  return !g->holder && !s->q.reserved;
}

static int iopri_timed_out(gil_t *g, gil_waiter *w) {
  (void)g, (void)w;
  return 1; /* a whole interval and nobody switched: ask (again: a signal may have found no Lua) */
}

static void iopri_took(gil_t *g, gil_waiter *w) {
  iopri_state *s = gil__state(g);
  gil_waitq_took(&s->q, w);
}

static gil_wake iopri_released(gil_t *g, gil_thread *t) {
  (void)t;
  iopri_state *s = gil__state(g);
  if (!gil_waitq_grant(&s->q)) return GIL_WAKE_ONE; /* as cpython */
  return GIL_WAKE_ALL; /* all wait on one condition: only the grantee takes it */
}

const gil_policy gil_policy_iopri = {
  .info = { .name = "iopri",
            .about = "cpython, but a thread back from a blocking wait goes first",
            .default_interval_ns = 5000000, /* cpython's */
            .interval_is = "switch interval",
            .default_check_interval = 0 },
  .state_size = sizeof(iopri_state),
  .force_switching = 1,
  .arrive = iopri_arrive,
  .may_take = iopri_may_take,
  .timed_out = iopri_timed_out,
  .took = iopri_took,
  .released = iopri_released,
};
