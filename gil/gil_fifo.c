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
 */
#include "gil_policy.h"

static void enqueue(gil_t *g, gil_thread *t) {
  t->next = NULL;
  t->granted = 0;
  if (g->queue_tail) g->queue_tail->next = t;
  else g->queue_head = t;
  g->queue_tail = t;
}

static gil_thread *dequeue(gil_t *g) {
  gil_thread *t = g->queue_head;
  if (t) {
    g->queue_head = t->next;
    if (!g->queue_head) g->queue_tail = NULL;
    t->next = NULL;
  }
  return t;
}

static void fifo_take(gil_t *g, gil_thread *t) {
  uint64_t start = gil_now_ns();
  if (g->locked || g->queue_head) {
    enqueue(g, t);
    gil__wait_begin(g, t);
    while (!t->granted) {
      unsigned long seen = g->switch_number;
      int timed_out = gil__timedwait(g, &g->cond, atomic_load(&g->interval_ns));
      if (timed_out && !t->granted && g->queue_head == t && g->switch_number == seen)
        gil__request_drop(g);  /* our quantum-long wait is over: holder, hand it on */
    }
    gil__wait_end(g);
  }
  gil__acquired(g, t, start);
}

static void fifo_drop(gil_t *g, gil_thread *t, int forced) {
  gil__released(g, t, forced);
  gil_thread *next = dequeue(g);
  if (next) {
    next->granted = 1;
    g->locked = 1;  /* reserved for `next`: nobody may barge in */
    pthread_cond_broadcast(&g->cond);
  }
}

const gil_policy gil_policy_fifo = {
  .name = "fifo",
  .default_interval_ns = 100000000,  /* Ruby's TIME_QUANTUM: 100 ms */
  .default_check_interval = 0,
  .take = fifo_take,
  .drop = fifo_drop,
};
