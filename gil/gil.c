/*
 * gil.c — the parts of the GIL that do not depend on the policy: creation,
 * the mutex and condition variables, statistics, drop requests and events.
 *
 * Statistics are kept where they are cheapest: every take and release
 * already holds g->mutex, so counting there costs a few adds and two clock
 * reads (vDSO, ~20 ns each). Handoff latencies (from a drop request to the
 * next holder running) are kept as raw samples so the report can give an
 * exact median; at most one sample per switch interval is added, and the
 * array stops growing at HANDOFF_CAP samples.
 */
#include "gil_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HANDOFF_CAP (1u << 20)

extern const gil_policy gil_policy_cpython;
extern const gil_policy gil_policy_legacy;
extern const gil_policy gil_policy_fifo;

static const gil_policy *const policies[] = {
  &gil_policy_cpython, &gil_policy_legacy, &gil_policy_fifo, NULL,
};

const char *const gil_policy_names[] = { "cpython", "legacy", "fifo", NULL };

uint64_t gil_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void init_sync(gil_t *g) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);  /* immune to wall-clock jumps */
  pthread_mutex_init(&g->mutex, NULL);
  pthread_cond_init(&g->cond, &ca);
  pthread_cond_init(&g->switch_cond, &ca);
  pthread_condattr_destroy(&ca);
}

gil_t *gil_create(const char *policy, uint64_t interval_ns, gil_drop_request_fn on_drop_request,
                  void *arg) {
  const gil_policy *p = NULL;
  for (int i = 0; policies[i]; i++)
    if (strcmp(policies[i]->name, policy) == 0) p = policies[i];
  if (!p) return NULL;
  gil_t *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->policy = p;
  init_sync(g);
  atomic_init(&g->drop_request, 0);
  atomic_init(&g->interval_ns, interval_ns ? interval_ns : p->default_interval_ns);
  atomic_init(&g->check_interval, p->default_check_interval);
  g->on_drop_request = on_drop_request;
  g->arg = arg;
  return g;
}

void gil_destroy(gil_t *g) {
  if (!g) return;
  pthread_mutex_destroy(&g->mutex);
  pthread_cond_destroy(&g->cond);
  pthread_cond_destroy(&g->switch_cond);
  free(g->handoff);
  free(g);
}

const char *gil_policy_name(const gil_t *g) { return g->policy->name; }

int gil_check_interval(const gil_t *g) { return atomic_load(&g->check_interval); }

void gil_set_check_interval(gil_t *g, int n) {
  if (g->policy->default_check_interval > 0 && n > 0) atomic_store(&g->check_interval, n);
}

void gil_take(gil_t *g, gil_thread *t) {
  pthread_mutex_lock(&g->mutex);
  g->policy->take(g, t);
  pthread_mutex_unlock(&g->mutex);
}

void gil_drop(gil_t *g, gil_thread *t) {
  pthread_mutex_lock(&g->mutex);
  g->policy->drop(g, t, 0);
  pthread_mutex_unlock(&g->mutex);
}

void gil_yield(gil_t *g, gil_thread *t) {
  /* two critical sections, as in CPython: between them anyone may take it */
  pthread_mutex_lock(&g->mutex);
  /* forced only when a waiter asked: legacy's periodic release is not (one
     definition for the summary's forced switches and each thread's forced drops) */
  g->policy->drop(g, t, atomic_load(&g->drop_request));
  g->st.yields++;
  unsigned long before = g->switch_number;
  pthread_mutex_unlock(&g->mutex);
  pthread_mutex_lock(&g->mutex);
  g->policy->take(g, t);
  if (g->switch_number == before + 1) g->st.yields_regained++;  /* nobody took it in between */
  pthread_mutex_unlock(&g->mutex);
}

int gil_drop_requested(const gil_t *g) {
  return atomic_load_explicit(&g->drop_request, memory_order_relaxed);
}

int gil_waiters(const gil_t *g) {
  return atomic_load_explicit(&g->nwaiting, memory_order_relaxed);
}

void gil_set_interval(gil_t *g, uint64_t ns) {
  if (ns > 0) atomic_store(&g->interval_ns, ns);
}

uint64_t gil_interval(const gil_t *g) { return atomic_load(&g->interval_ns); }

void gil_set_event_fn(gil_t *g, gil_event_fn fn, void *arg) {
  pthread_mutex_lock(&g->mutex);
  g->on_event = fn;
  g->event_arg = arg;
  pthread_mutex_unlock(&g->mutex);
}

/* ---- bookkeeping used by the policies (g->mutex held) ---- */

void gil__event(gil_t *g, gil_thread *t, gil_event ev, uint64_t now) {
  if (g->on_event) g->on_event(t, ev, now, g->event_arg);
}

void gil__wait_begin(gil_t *g, gil_thread *t) {
  uint64_t now = gil_now_ns();
  if (g->nwaiting++ == 0) g->contended_since = now;
  gil__event(g, t, GIL_EV_WAIT, now);
}

void gil__wait_end(gil_t *g) {
  if (--g->nwaiting == 0) g->st.contended_ns += gil_now_ns() - g->contended_since;
  pthread_cond_broadcast(&g->switch_cond);  /* a forced-switching holder may wait on us */
}

static void add_handoff(gil_t *g, uint64_t ns) {
  if (g->nhandoff == g->handoff_cap) {
    if (g->handoff_cap >= HANDOFF_CAP) return;
    size_t cap = g->handoff_cap ? g->handoff_cap * 2 : 1024;
    uint64_t *p = realloc(g->handoff, cap * sizeof *p);
    if (!p) return;
    g->handoff = p;
    g->handoff_cap = cap;
  }
  g->handoff[g->nhandoff++] = ns;
}

void gil__acquired(gil_t *g, gil_thread *t, uint64_t wait_started) {
  uint64_t now = gil_now_ns();
  g->locked = 1;
  g->holder = t;
  if (g->last_holder != t) {
    g->st.switches++;
    if (atomic_load(&g->drop_request)) {
      g->st.forced_switches++;
      add_handoff(g, now - g->drop_request_at);
    }
  }
  g->last_holder = t;
  g->switch_number++;
  atomic_store(&g->drop_request, 0);
  g->st.acquisitions++;
  t->acquisitions++;
  t->wait_ns += now - wait_started;
  g->st.wait_ns += now - wait_started;
  t->acquired_at = now;
  pthread_cond_broadcast(&g->switch_cond);
  gil__event(g, t, GIL_EV_ACQUIRE, now);
}

void gil__released(gil_t *g, gil_thread *t, int forced) {
  uint64_t now = gil_now_ns();
  uint64_t held = now - t->acquired_at;
  t->hold_ns += held;
  g->st.held_ns += held;
  g->locked = 0;
  g->holder = NULL;
  if (forced) {
    t->forced_drops++;
    gil__event(g, t, GIL_EV_FORCED_DROP, now);
  }
  gil__event(g, t, GIL_EV_RELEASE, now);
}

void gil__request_drop(gil_t *g) {
  if (!g->holder) return;
  if (!atomic_load(&g->drop_request)) {
    g->drop_request_at = gil_now_ns();
    g->st.drop_requests++;
    atomic_store(&g->drop_request, 1);
    gil__event(g, g->holder, GIL_EV_DROP_REQUEST, g->drop_request_at);
  }
  /* asked again every interval: a signal that found the holder outside Lua is not lost */
  if (g->on_drop_request) g->on_drop_request(g->holder, g->arg);
}

int gil__timedwait(gil_t *g, pthread_cond_t *c, uint64_t ns) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t nsec = (uint64_t)ts.tv_nsec + ns;
  ts.tv_sec += (time_t)(nsec / 1000000000u);
  ts.tv_nsec = (long)(nsec % 1000000000u);
  return pthread_cond_timedwait(c, &g->mutex, &ts) == ETIMEDOUT;
}

/* ---- statistics ---- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

void gil_stats_get(gil_t *g, gil_stats *out) {
  pthread_mutex_lock(&g->mutex);
  *out = g->st;
  uint64_t now = gil_now_ns();
  if (g->nwaiting > 0) out->contended_ns += now - g->contended_since;
  if (g->holder) out->held_ns += now - g->holder->acquired_at;
  size_t n = g->nhandoff;
  uint64_t *s = n ? malloc(n * sizeof *s) : NULL;
  if (s) memcpy(s, g->handoff, n * sizeof *s);
  pthread_mutex_unlock(&g->mutex);
  out->handoffs = 0;
  if (!s) return;
  qsort(s, n, sizeof *s, cmp_u64);
  out->handoffs = n;
  out->handoff_median_ns = s[n / 2];
  out->handoff_p99_ns = s[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
  out->handoff_max_ns = s[n - 1];
  free(s);
}

void gil_after_fork(gil_t *g, gil_thread *me) {
  /* The other threads are gone; their lock state is meaningless. Start over
     with `me` holding the GIL, as CPython's PyEval_ReInitThreads does. */
  init_sync(g);
  memset(&g->st, 0, sizeof g->st);
  g->nhandoff = 0;
  g->nwaiting = 0;
  g->queue_head = g->queue_tail = NULL;
  atomic_store(&g->drop_request, 0);
  g->locked = 1;
  g->holder = g->last_holder = me;
  me->acquisitions = me->forced_drops = me->wait_ns = me->hold_ns = 0;
  me->acquired_at = gil_now_ns();
}
