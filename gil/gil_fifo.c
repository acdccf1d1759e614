/*
 * gil_fifo.c — a fair GIL: waiters are served in arrival order, and the
 * holder hands the lock straight to the first of them.
 *
 * This is how Ruby's GVL behaves (thread_pthread.c since Ruby 1.9, and the
 * "thread_sched" of Ruby 3.3): threads that want the lock queue up; the
 * holder runs for at most one quantum (Ruby: 100 ms, the TIME_QUANTUM) while
 * anyone waits; when the quantum is over, or when the holder blocks, the
 * lock goes to the head of the queue without ever being free in between.
 *
 * - take: if the lock is free and nobody queues, take it. Otherwise join the
 *   tail and wait until the holder grants it to us. The head of the queue
 *   waits with a timeout of one quantum; if it times out and the holder has
 *   not changed, it asks the holder to drop (the same drop request the
 *   cpython policy uses, delivered the same way).
 *
 * - drop: if someone queues, hand the lock to the head (the flag stays set,
 *   so a newcomer cannot barge in); otherwise clear the flag.
 *
 * What it is known for: no thread starves and no handoff is lost to the
 * scheduler, so the latency of a thread that wakes from I/O is bounded by
 * (threads ahead of it) x quantum. With a long quantum that bound is large:
 * compare `-g fifo -s 100ms` with the cpython policy on scripts/convoy.lua.
 * The price of strict order is that every switch is a full handoff between
 * two threads, even when the releasing thread could have gone on.
 *
 * Its private state is the queue and a reservation (the flag that stays
 * set between a handoff and the grantee's take). A queue node is the
 * driver's gil_waiter, which lives as long as the wait, so queueing
 * allocates nothing. A grant is for one waiter, and all wait on one
 * condition, so a handoff wakes all of them (GIL_WAKE_ALL) and only the
 * grantee takes it.
 */
#include "gil_policy.h"

typedef struct fifo_state {
  gil_waitq q; /* every waiter, in arrival order, and the reservation */
} fifo_state;

static int fifo_arrive(gil_t *g, gil_waiter *w) {
  fifo_state *s = gil__state(g);
  if (!g->holder && !s->q.reserved && !s->q.head) return 1;
  gil_waitq_push(&s->q, w);
  return 0;
}

static int fifo_may_take(gil_t *g, gil_waiter *w) {
  (void)g;
  return w->granted;
}

static int fifo_timed_out(gil_t *g, gil_waiter *w) {
  fifo_state *s = gil__state(g);
  return s->q.head == w; /* our quantum-long wait is over: holder, hand it on */
}

static void fifo_took(gil_t *g, gil_waiter *w) {
  fifo_state *s = gil__state(g);
  gil_waitq_took(&s->q, w);
}

static gil_wake fifo_released(gil_t *g, gil_thread *t) {
  (void)t;
  fifo_state *s = gil__state(g);
  /* the head is granted it, reserved: nobody may barge in. All wait on one
     condition: only the grantee takes it */
  return gil_waitq_grant(&s->q) ? GIL_WAKE_ALL : GIL_WAKE_NONE;
}

const gil_policy gil_policy_fifo = {
  .info = { .name = "fifo",
            .about = "fair, Ruby-like",
            .default_interval_ns = 100000000, /* Ruby's TIME_QUANTUM: 100 ms */
            .interval_is = "quantum",
            .default_check_interval = 0 },
  .state_size = sizeof(fifo_state),
  .arrive = fifo_arrive,
  .may_take = fifo_may_take,
  .timed_out = fifo_timed_out,
  .took = fifo_took,
  .released = fifo_released,
};
