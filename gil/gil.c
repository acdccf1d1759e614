/*
 * gil.c — the pthread driver: the parts of the GIL that do not depend on
 * the policy. Creation, the mutex and condition variables, the waits and
 * wake-ups a policy's decisions call for, statistics, drop requests and
 * events. The policies (gil_cpython.c, ...) only decide; see gil_policy.h.
 *
 * gil_take, as a policy sees it:
 *
 *   arrive? -- take --> took, acquired
 *      | wait (ask: request a drop first)
 *   wait on `cond` (for one interval if the policy has one) until woken or
 *   timed out; woken: may_take? yes --> took, acquired; timed out with no
 *   switch meanwhile: timed_out? yes --> request a drop; wait again.
 *
 * gil_drop: released (statistics, events), then the policy's wake decision
 * (signal one waiter or broadcast), then, for a force_switching policy with
 * a drop request pending, wait on `switch_cond` until another thread has
 * taken the GIL or nobody waits any more (a waiter that is interrupted never
 * takes it, so the dropper cannot hang).
 *
 * Invariants, asserted in debug and sanitizer builds (meson's
 * b_ndebug=if-release keeps assert() in debugoptimized and debug builds):
 * one holder at a time; only the holder drops or yields; the waiter count
 * never goes negative and is zero when nobody waits.
 *
 * Statistics are kept where they are cheapest: every take and release
 * already holds g->mutex, so counting there costs a few adds and two clock
 * reads (vDSO, ~20 ns each). Handoff latencies (from a drop request to the
 * next holder running) are kept as raw samples so the report can give an
 * exact median; at most one sample per switch interval is added, and the
 * array stops growing at HANDOFF_CAP samples.
 */
#include "gil_policy.h"
#include "vec.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#define HANDOFF_CAP (1u << 20)

/* The table: meson.build's gil_policies list, as -DGIL_POLICIES="GIL_POLICY(cpython) ..." */
#ifndef GIL_POLICIES
#error "GIL_POLICIES is set by meson.build from its gil_policies list"
#endif
#define GIL_POLICY(n) extern const gil_policy gil_policy_##n;
GIL_POLICIES
#undef GIL_POLICY
#define GIL_POLICY(n) &gil_policy_##n,
static const gil_policy *const policies[] = { GIL_POLICIES NULL };
#undef GIL_POLICY

#define NPOLICIES ((int)(sizeof policies / sizeof policies[0]) - 1)

const gil_policy_info *gil_policy_at(int i) { return i >= 0 && i < NPOLICIES ? &policies[i]->info : NULL; }

static const gil_policy *find(const char *name) {
  for (int i = 0; i < NPOLICIES; i++)
    if (strcmp(policies[i]->info.name, name) == 0) return policies[i];
  return NULL;
}

const gil_policy_info *gil_policy_find(const char *name) {
  const gil_policy *p = name ? find(name) : NULL;
  return p ? &p->info : NULL;
}

uint64_t gil_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void init_sync(gil_t *g) {
  pthread_condattr_t ca;
  PT_CHECK(pthread_condattr_init(&ca));
  PT_CHECK(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)); /* immune to wall-clock jumps */
  PT_CHECK(pthread_mutex_init(&g->mutex, NULL));
  PT_CHECK(pthread_cond_init(&g->cond, &ca));
  PT_CHECK(pthread_cond_init(&g->switch_cond, &ca));
  PT_CHECK(pthread_condattr_destroy(&ca));
}

gil_t *gil_create(const char *policy, uint64_t interval_ns, gil_drop_request_fn on_drop_request, void *arg) {
  const gil_policy *p = policy ? find(policy) : NULL;
  if (!p) return NULL;
  gil_t *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->state = p->state_size ? calloc(1, p->state_size) : NULL;
  if (p->state_size && !g->state) {
    free(g);
    return NULL;
  }
  g->policy = p;
  init_sync(g);
  atomic_init(&g->drop_request, 0);
  atomic_init(&g->interval_ns, interval_ns ? interval_ns : p->info.default_interval_ns);
  atomic_init(&g->check_interval, p->info.default_check_interval);
  g->on_drop_request = on_drop_request;
  g->arg = arg;
  return g;
}

void gil_destroy(gil_t *g) {
  if (!g) return;
  PT_CHECK(pthread_mutex_destroy(&g->mutex));
  PT_CHECK(pthread_cond_destroy(&g->cond));
  PT_CHECK(pthread_cond_destroy(&g->switch_cond));
  free(g->handoff);
  free(g->state);
  free(g);
}

const char *gil_policy_name(const gil_t *g) { return g->policy->info.name; }

int gil_check_interval(const gil_t *g) { return atomic_load(&g->check_interval); }

void gil_set_check_interval(gil_t *g, int n) {
  if (g->policy->info.default_check_interval > 0 && n > 0) atomic_store(&g->check_interval, n);
}

static void lock(gil_t *g) { PT_CHECK(pthread_mutex_lock(&g->mutex)); }
static void unlock(gil_t *g) { PT_CHECK(pthread_mutex_unlock(&g->mutex)); }

/* Wait on c for up to ns (0: no limit); nonzero on timeout. */
static int wait_on(gil_t *g, pthread_cond_t *c, uint64_t ns) {
  if (!ns) {
    PT_CHECK(pthread_cond_wait(c, &g->mutex));
    return 0;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t nsec = (uint64_t)ts.tv_nsec + ns;
  ts.tv_sec += (time_t)(nsec / 1000000000u);
  ts.tv_nsec = (long)(nsec % 1000000000u);
  return PT_CHECK_OR(pthread_cond_timedwait(c, &g->mutex, &ts), ETIMEDOUT) == ETIMEDOUT;
}

/* The driver's take, g->mutex held: ask, wait as the policy says, take. */
static void take_locked(gil_t *g, gil_thread *t, int after_block) {
  const gil_policy *p = g->policy;
  assert(g->holder != t && "a thread takes a GIL it already holds");
  uint64_t start = gil_now_ns();
  gil_waiter w = { .t = t, .after_block = after_block };
  int arrival = p->arrive(g, &w);
  if (arrival != GIL_ARRIVE_TAKE) {
    gil__wait_begin(g, t);
    if (arrival == GIL_ARRIVE_ASK) gil__request_drop(g); /* the policy wants it now, not in an interval */
    for (;;) {
      unsigned long seen = g->switch_number;
      uint64_t ns = p->info.interval_is ? atomic_load(&g->interval_ns) : 0;
      int timed_out = wait_on(g, &g->cond, ns);
      if (p->may_take(g, &w)) break;
      if (timed_out && g->switch_number == seen && p->timed_out(g, &w))
        gil__request_drop(g); /* a whole interval and nobody switched: ask */
    }
    gil__wait_end(g);
  }
  if (p->took) p->took(g, &w);
  gil__acquired(g, t, start);
  /* a forced-switching dropper waits for a switch, or for no waiter left: both may be true now */
  PT_CHECK(pthread_cond_broadcast(&g->switch_cond));
}

/* The driver's drop, g->mutex held: release, wake as the policy says, force the switch. */
static void drop_locked(gil_t *g, gil_thread *t, int forced) {
  const gil_policy *p = g->policy;
  assert(g->holder == t && "only the holder drops the GIL");
  gil__released(g, t, forced);
  gil_wake wake = p->released(g, t);
  if (wake == GIL_WAKE_ONE)
    PT_CHECK(pthread_cond_signal(&g->cond));
  else if (wake == GIL_WAKE_ALL)
    PT_CHECK(pthread_cond_broadcast(&g->cond));
  if (p->force_switching && atomic_load(&g->drop_request)) {
    /* FORCE_SWITCHING: do not race the waiter we were asked to make room for */
    while (g->last_holder == t && g->nwaiting > 0) wait_on(g, &g->switch_cond, 0);
  }
}

void gil_take(gil_t *g, gil_thread *t) {
  if (g->vt) return gil__vt_take(g, t, 0);
  lock(g);
  take_locked(g, t, 0);
  unlock(g);
}

void gil_take_after_block(gil_t *g, gil_thread *t) {
  if (g->vt) return gil__vt_take(g, t, 1);
  lock(g);
  take_locked(g, t, 1);
  unlock(g);
}

void gil_drop(gil_t *g, gil_thread *t) {
  if (g->vt) return gil__vt_drop(g, t, 0);
  lock(g);
  drop_locked(g, t, 0);
  unlock(g);
}

void gil_yield(gil_t *g, gil_thread *t) {
  if (g->vt) { /* one simulated thread runs at a time: no mutex */
    gil__vt_drop(g, t, atomic_load(&g->drop_request));
    g->st.yields++;
    unsigned long before_vt = g->switch_number;
    if (g->vt->gap) g->vt->gap(); /* the real yield's two critical sections: anyone runnable may take it */
    gil__vt_take(g, t, 0);
    if (g->switch_number == before_vt + 1) g->st.yields_regained++;
    return;
  }
  /* two critical sections, as in CPython: between them anyone may take it */
  lock(g);
  /* forced only when a waiter asked: legacy's periodic release is not (one
     definition for the summary's forced switches and each thread's forced drops) */
  drop_locked(g, t, atomic_load(&g->drop_request));
  g->st.yields++;
  unsigned long before = g->switch_number;
  unlock(g);
  lock(g);
  take_locked(g, t, 0);
  if (g->switch_number == before + 1) g->st.yields_regained++; /* nobody took it in between */
  unlock(g);
}

int gil_drop_requested(const gil_t *g) { return atomic_load_explicit(&g->drop_request, memory_order_relaxed); }

int gil_should_yield(const gil_t *g) {
  return g->policy->should_yield ? g->policy->should_yield(g) : gil_drop_requested(g);
}

int gil_waiters(const gil_t *g) { return atomic_load_explicit(&g->nwaiting, memory_order_relaxed); }

void gil_set_interval(gil_t *g, uint64_t ns) {
  if (ns > 0) atomic_store(&g->interval_ns, ns);
}

uint64_t gil_interval(const gil_t *g) { return atomic_load(&g->interval_ns); }

void gil_set_vt(gil_t *g, const gil_vt_ops *ops) { g->vt = ops; }

void gil_set_event_fn(gil_t *g, gil_event_fn fn, void *arg) {
  lock(g);
  g->on_event = fn;
  g->event_arg = arg;
  unlock(g);
}

/* ---- the driver's bookkeeping (g->mutex held): no pthread call, so any driver can use it ---- */

void gil__event(gil_t *g, gil_thread *t, gil_event ev, uint64_t now) {
  if (g->on_event) g->on_event(t, ev, now, g->event_arg);
}

uint64_t gil__now(const gil_t *g) { return g->vt ? g->vt->now() : gil_now_ns(); }

void gil__wait_begin(gil_t *g, gil_thread *t) {
  uint64_t now = gil__now(g);
  if (g->nwaiting++ == 0) g->contended_since = now;
  gil__event(g, t, GIL_EV_WAIT, now);
}

void gil__wait_end(gil_t *g) {
  assert(g->nwaiting > 0 && "the GIL's waiter count went negative");
  if (--g->nwaiting == 0) g->st.contended_ns += gil__now(g) - g->contended_since;
}

/* A sample past HANDOFF_CAP, or one there is no memory for, is not kept. */
static void add_handoff(gil_t *g, uint64_t ns) {
  if (vec_grow(&g->handoff, sizeof *g->handoff, g->nhandoff, &g->handoff_cap, 1, 1024, HANDOFF_CAP) == 0)
    g->handoff[g->nhandoff++] = ns;
}

void gil__acquired(gil_t *g, gil_thread *t, uint64_t wait_started) {
  uint64_t now = gil__now(g);
  assert(g->holder == NULL && "two holders of one GIL");
  g->holder = t;
  if (g->last_holder != t) {
    g->st.switches++;
    if (g->last_drop_forced) { /* not a holder that blocked while a request was pending */
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
  gil__event(g, t, GIL_EV_ACQUIRE, now);
}

void gil__released(gil_t *g, gil_thread *t, int forced) {
  uint64_t now = gil__now(g);
  assert(g->holder == t && "the GIL released by a thread that does not hold it");
  uint64_t held = now - t->acquired_at;
  t->hold_ns += held;
  g->st.held_ns += held;
  g->holder = NULL;
  g->last_drop_forced = forced;
  if (forced) {
    t->forced_drops++;
    gil__event(g, t, GIL_EV_FORCED_DROP, now);
  }
  gil__event(g, t, GIL_EV_RELEASE, now);
}

void gil__request_drop(gil_t *g) {
  if (!g->holder) return;
  if (!atomic_load(&g->drop_request)) {
    g->drop_request_at = gil__now(g);
    g->st.drop_requests++;
    atomic_store(&g->drop_request, 1);
    gil__event(g, g->holder, GIL_EV_DROP_REQUEST, g->drop_request_at);
  }
  /* asked again every interval: a signal that found the holder outside Lua is not lost */
  if (g->on_drop_request) g->on_drop_request(g->holder, g->arg);
}

/* ---- statistics ---- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

void gil_stats_get(gil_t *g, gil_stats *out) {
  lock(g);
  *out = g->st;
  uint64_t now = gil__now(g);
  if (g->nwaiting > 0) out->contended_ns += now - g->contended_since;
  if (g->holder) out->held_ns += now - g->holder->acquired_at;
  size_t n = g->nhandoff;
  uint64_t *s = n ? malloc(n * sizeof *s) : NULL;
  if (s) memcpy(s, g->handoff, n * sizeof *s);
  unlock(g);
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
  if (g->state) memset(g->state, 0, g->policy->state_size); /* its waiters are gone too */
  atomic_store(&g->drop_request, 0);
  g->holder = g->last_holder = me;
  g->last_drop_forced = 0;
  me->acquisitions = me->forced_drops = me->wait_ns = me->hold_ns = 0;
  me->acquired_at = gil_now_ns();
}
