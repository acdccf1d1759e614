/*
 * gil_policy.h — what a GIL policy implements, and the shared state and
 * bookkeeping every policy uses. Only the files in gil/ include it.
 *
 * A policy is one file defining one `const gil_policy`. It decides who gets
 * the lock and when a holder is asked to let go; gil.c owns the mutex, the
 * statistics and the event stream, so that every policy is measured the same
 * way. Policy code runs with g->mutex held unless it says otherwise.
 */
#ifndef GIL_POLICY_H
#define GIL_POLICY_H

#include "gil.h"
#include <pthread.h>
#include <stdatomic.h>

typedef struct gil_policy {
  const char *name;
  uint64_t default_interval_ns;  /* used when the user sets no interval */
  int default_check_interval;    /* > 0: the runtime drives gil_yield() from a count hook */
  void (*take)(gil_t *g, gil_thread *t);
  void (*drop)(gil_t *g, gil_thread *t, int forced);
} gil_policy;

struct gil {
  const gil_policy *policy;
  pthread_mutex_t mutex;
  pthread_cond_t cond;         /* signalled when the GIL is released or handed over */
  pthread_cond_t switch_cond;  /* signalled when a thread has taken it (forced switching) */
  int locked;
  gil_thread *holder;
  gil_thread *last_holder;
  unsigned long switch_number;  /* increases at every take: "has anything happened?" */
  atomic_int drop_request;
  uint64_t drop_request_at;     /* when the pending drop request was made */
  _Atomic uint64_t interval_ns;
  atomic_int check_interval;
  atomic_int nwaiting;          /* changed under mutex; read lock-free by gil_waiters() */
  uint64_t contended_since;
  gil_thread *queue_head, *queue_tail;  /* fifo policy's waiters */
  /* totals */
  gil_stats st;
  uint64_t *handoff;            /* forced handoff latencies, ns */
  size_t nhandoff, handoff_cap;
  /* the runtime's callbacks */
  gil_drop_request_fn on_drop_request;
  void *arg;
  gil_event_fn on_event;
  void *event_arg;
};

/* Bookkeeping shared by policies; call with g->mutex held. */
void gil__wait_begin(gil_t *g, gil_thread *t);
void gil__wait_end(gil_t *g);
void gil__acquired(gil_t *g, gil_thread *t, uint64_t wait_started);
void gil__released(gil_t *g, gil_thread *t, int forced);
void gil__request_drop(gil_t *g);
void gil__event(gil_t *g, gil_thread *t, gil_event ev, uint64_t now);
/* Timed wait on a condition for up to ns; returns nonzero on timeout. */
int gil__timedwait(gil_t *g, pthread_cond_t *c, uint64_t ns);

#endif
