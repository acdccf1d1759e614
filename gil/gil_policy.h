/*
 * gil_policy.h — what a GIL policy implements. Only gil/ (and a policy
 * compiled into the tests) includes it.
 *
 * A policy is one file defining one `const gil_policy gil_policy_NAME`, and
 * one word in meson.build's `gil_policies` list, from which the table in
 * gil.c is made (-DGIL_POLICIES). Its name, its --help line, its defaults and
 * what -s means to it are in its `info`, which the CLI, the report and sweep
 * read (gil_policy_at): nothing outside the file names a policy.
 *
 * A policy only decides. It never waits, wakes, reads a clock or calls
 * pthreads: it is a small state machine over its private state (state_size
 * bytes, zeroed at creation and after fork, reached with gil__state()) whose
 * inputs are events and whose outputs are decisions:
 *
 *   event                                   hook          decision
 *   a thread asks for the GIL               arrive        take it now, wait, or wait and
 *                                                         ask the holder to drop now
 *   a waiter is woken                       may_take      take it now, or wait on
 *   a waiter waited a whole interval,       timed_out     ask the holder to drop (1) or not
 *     and nobody took the GIL meanwhile
 *   a waiter takes the GIL                  took          (bookkeeping: a grant is used)
 *   the holder lets go                      released      wake nobody, one waiter or all
 *   the holder is at a check point          should_yield  yield now (1) or go on
 *
 * plus two flags: `info.interval_is` (NULL: waits are not timed, timed_out is
 * never called) and `force_switching` (a holder that let go while a drop
 * request was pending waits until another thread has taken the GIL).
 *
 * The driver does everything else, the same for every policy: gil.c is the
 * pthread driver. It owns the mutex and condition variables, who holds the
 * GIL (g->holder), the clock, the statistics, drop requests and the event
 * stream, so every policy is measured the same way. Hooks run with g->mutex
 * held, except should_yield, which is lock-free (it reads atomics only).
 *
 * A waiter is a gil_waiter: one wait by one thread, on the waiting thread's
 * stack in the pthread driver. `next` and `granted` are the policy's (a
 * queue link; "the lock is reserved for you"), so a queueing policy needs no
 * field in the public gil_thread and no allocation. `after_block` is the
 * driver's, read-only to the policy: the thread takes the GIL back after a
 * blocking wait (gil_take_after_block: a sleep, a join, a lock, a queue,
 * I/O), not at a check point or at its start. Only a policy that favours
 * such threads (iopri) looks at it; to the others both takes are the same.
 *
 * A virtual-time driver (the simulator, issue 9) plugs in beside gil.c
 * without touching a policy: it keeps a gil_t per simulated GIL with the same
 * fields, calls arrive/may_take/took/released at the same events, turns a
 * wait into "this virtual thread is blocked" and a timed wait into a timer
 * due `interval` virtual ns later (on expiry: timed_out, when switch_number
 * did not move), turns WAKE_ONE/WAKE_ALL into making one or all blocked
 * waiters runnable (which one first is its seeded choice, as the kernel's is
 * here), answers should_yield at the simulated check points, sets
 * after_block on a take that follows a simulated blocking wait, requests a
 * drop at once when arrive answers GIL_ARRIVE_ASK, and implements
 * force_switching as "the dropper is not runnable until switch_number moves
 * or nobody waits". The bookkeeping below (gil__acquired, gil__released,
 * gil__request_drop, ...) is the driver's, not the policy's, and makes no
 * pthread call, so the virtual-time driver can share it; it reads the clock
 * through gil_now_ns(), which that driver would replace by its own clock (a
 * clock function in struct gil) so that the same statistics come out in
 * virtual time.
 */
#ifndef GIL_POLICY_H
#define GIL_POLICY_H

#include "gil.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed pthread call in the GIL is a bug or a broken system: PT_CHECK
   (base/check.h) says which, and stops (CPython: Py_FatalError). */
#include "check.h"

/* One wait for the GIL by one thread. */
typedef struct gil_waiter {
  gil_thread *t;
  struct gil_waiter *next; /* the policy's: a queue link */
  int granted; /* the policy's: the GIL is reserved for this waiter */
  int after_block; /* the driver's: this take follows a blocking wait */
} gil_waiter;

/* What arrive decides. */
typedef enum gil_arrival {
  GIL_ARRIVE_WAIT, /* wait (timed out after an interval, if the policy has one) */
  GIL_ARRIVE_TAKE, /* take it now */
  GIL_ARRIVE_ASK, /* wait, and ask the holder to drop now, without waiting an interval */
} gil_arrival;

typedef enum gil_wake {
  GIL_WAKE_NONE, /* nobody needs to know */
  GIL_WAKE_ONE, /* one waiter, any: it may take it */
  GIL_WAKE_ALL, /* every waiter looks again (a grant to a particular one) */
} gil_wake;

typedef struct gil_policy {
  gil_policy_info info;
  size_t state_size; /* private state, zeroed at creation and after fork */
  int force_switching; /* after a drop with a request pending: wait until another thread took it */
  int (*arrive)(gil_t *g, gil_waiter *w); /* a gil_arrival: 1 take it now; 0 w waits; 2 w waits, holder asked */
  int (*may_take)(gil_t *g, gil_waiter *w); /* w was woken: 1 to take it now */
  int (*timed_out)(gil_t *g, gil_waiter *w); /* an interval and no switch: 1 to ask the holder */
  void (*took)(gil_t *g, gil_waiter *w); /* optional: w takes it (after arrive or may_take) */
  gil_wake (*released)(gil_t *g, gil_thread *t);
  int (*should_yield)(const gil_t *g); /* optional, lock-free; default: a drop was requested */
} gil_policy;

struct gil {
  const gil_policy *policy;
  void *state; /* the policy's */
  pthread_mutex_t mutex;
  pthread_cond_t cond; /* waiters wait here: woken by a release (GIL_WAKE_*) */
  pthread_cond_t switch_cond; /* signalled when a thread has taken it (forced switching) */
  gil_thread *holder; /* NULL: nobody holds it (a policy may still have reserved it) */
  gil_thread *last_holder;
  int last_drop_forced; /* the last release was a forced drop: the next switch is forced */
  unsigned long switch_number; /* increases at every take: "has anything happened?" */
  atomic_int drop_request;
  uint64_t drop_request_at; /* when the pending drop request was made */
  _Atomic uint64_t interval_ns;
  atomic_int check_interval;
  atomic_int nwaiting; /* changed under mutex; read lock-free by gil_waiters() */
  uint64_t contended_since;
  /* totals */
  gil_stats st;
  uint64_t *handoff; /* forced handoff latencies, ns */
  size_t nhandoff, handoff_cap;
  /* the runtime's callbacks */
  gil_drop_request_fn on_drop_request;
  void *arg;
  gil_event_fn on_event;
  void *event_arg;
  const gil_vt_ops *vt; /* NULL: the pthread driver (gil.c); else the virtual-time one (gil_vt.c) */
  int vt_handed; /* gil_vt.c: a release handed the mutex to the queued waiters: only they may take it */
};

static inline void *gil__state(const gil_t *g) { return g->state; }

/*
 * A queue of waiters with a reservation, for a policy that hands the GIL to
 * one waiter in particular (fifo, iopri): waiters join at the tail
 * (gil_waitq_push); a release grants the head (gil_waitq_grant: its
 * `granted` is set and the GIL stays reserved, so nobody barges in between
 * the release and the grantee's take, not even the dropper); the grantee's
 * take ends the reservation (gil_waitq_took). The nodes are the driver's
 * gil_waiters, which live as long as their wait: queueing allocates nothing.
 */
typedef struct gil_waitq {
  gil_waiter *head, *tail; /* in arrival order */
  int reserved; /* granted to a waiter that has not taken it yet */
} gil_waitq;

static inline void gil_waitq_push(gil_waitq *q, gil_waiter *w) {
  w->next = NULL;
  w->granted = 0;
  if (q->tail)
    q->tail->next = w;
  else
    q->head = w;
  q->tail = w;
}

/* Grant the head the GIL and reserve it; 0 when nobody queues. */
static inline int gil_waitq_grant(gil_waitq *q) {
  gil_waiter *next = q->head;
  if (!next) return 0;
  q->head = next->next;
  if (!q->head) q->tail = NULL;
  next->next = NULL;
  next->granted = 1;
  q->reserved = 1;
  return 1;
}

/* w takes the GIL: if it was granted, the reservation is used. */
static inline void gil_waitq_took(gil_waitq *q, const gil_waiter *w) {
  if (w->granted) q->reserved = 0;
}

/* Bookkeeping the driver does; call with g->mutex held. */
void gil__wait_begin(gil_t *g, gil_thread *t);
void gil__wait_end(gil_t *g);
void gil__acquired(gil_t *g, gil_thread *t, uint64_t wait_started);
void gil__released(gil_t *g, gil_thread *t, int forced);
void gil__request_drop(gil_t *g);
void gil__event(gil_t *g, gil_thread *t, gil_event ev, uint64_t now);
/* The driver's clock: virtual under gil_vt.c, else gil_now_ns(). */
uint64_t gil__now(const gil_t *g);
/* The virtual-time driver's take, drop and yield (gil_vt.c). */
void gil__vt_take(gil_t *g, gil_thread *t, int after_block);
void gil__vt_drop(gil_t *g, gil_thread *t, int forced);

#endif
