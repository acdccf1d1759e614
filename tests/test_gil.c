/*
 * test_gil.c — unit tests for the GIL (gil/), without Lua.
 *
 * The runtime is simulated with plain pthreads: every OS thread owns a
 * gil_thread and brackets its "work" with gil_take/gil_drop. A CPU-bound
 * thread emulates the runtime's check point by spinning on
 * gil_drop_requested() and calling gil_yield() when it is set (cpython,
 * fifo), or by calling gil_yield() every gil_check_interval() iterations
 * (legacy, the count hook). The drop-request callback only records what it
 * was told.
 *
 * Rules kept throughout, because the machine is small and busy:
 * - every wait is bounded (DEADLINE) and every test has a Criterion timeout,
 *   so a bug fails a test rather than hanging it;
 * - no upper bound on latency is asserted; lower bounds (a waiter waited at
 *   least one interval) and orderings are;
 * - Criterion assertions are made only in the test's own thread: worker
 *   threads record what they saw and the test checks it after joining them.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gil.h"
#include "gil_policy.h" /* to read g->nwaiting (under g->mutex) */

#define US 1000ull
#define MS 1000000ull
#define SEC 1000000000ull
#define DEADLINE (15 * SEC) /* how long any single wait in a test may take */

/* ---------------------------------------------------------------- helpers */

static void sleep_ns(uint64_t ns) {
  struct timespec ts = { (time_t)(ns / SEC), (long)(ns % SEC) };
  while (nanosleep(&ts, &ts) != 0) {}
}

/* Keep the CPU busy (holding the GIL, typically) for at least ns. */
static void busy_ns(uint64_t ns) {
  uint64_t end = gil_now_ns() + ns;
  while (gil_now_ns() < end) {}
}

/* Number of threads waiting for the GIL, read under the GIL's mutex. */
static int nwaiting(gil_t *g) {
  pthread_mutex_lock(&g->mutex);
  int n = g->nwaiting;
  pthread_mutex_unlock(&g->mutex);
  return n;
}

/* Wait (bounded) until exactly n threads wait for the GIL. */
static bool wait_for_waiters(gil_t *g, int n) {
  uint64_t end = gil_now_ns() + DEADLINE;
  while (nwaiting(g) != n) {
    if (gil_now_ns() > end) return false;
    sleep_ns(100 * US);
  }
  return true;
}

/* Wait (bounded) until *flag is nonzero. */
static bool wait_for_flag(atomic_int *flag) {
  uint64_t end = gil_now_ns() + DEADLINE;
  while (!atomic_load(flag)) {
    if (gil_now_ns() > end) return false;
    sleep_ns(100 * US);
  }
  return true;
}

/* Spin, holding the GIL, until a drop is requested; false on deadline. */
static bool spin_until_drop_requested(gil_t *g) {
  uint64_t end = gil_now_ns() + DEADLINE;
  while (!gil_drop_requested(g))
    if (gil_now_ns() > end) return false;
  return true;
}

static void spawn(pthread_t *th, void *(*fn)(void *), void *arg) {
  cr_assert_eq(pthread_create(th, NULL, fn, arg), 0, "pthread_create failed");
}

static void join(pthread_t th) { cr_assert_eq(pthread_join(th, NULL), 0); }

/* What the drop-request callback was told. It runs under the GIL's mutex,
   so the holders[] array needs no lock of its own; `calls` is atomic
   because tests poll it while threads run. */
#define MAX_CALLS 4096
typedef struct drop_log {
  atomic_int calls;
  gil_thread *holders[MAX_CALLS];
} drop_log;

static void on_drop(gil_thread *holder, void *arg) {
  drop_log *log = arg;
  int i = atomic_fetch_add(&log->calls, 1);
  if (i < MAX_CALLS) log->holders[i] = holder;
}

/* How many recorded callback calls named neither `a` nor `b`. */
static int calls_naming_neither(drop_log *log, gil_thread *a, gil_thread *b) {
  int n = atomic_load(&log->calls), bad = 0;
  if (n > MAX_CALLS) n = MAX_CALLS;
  for (int i = 0; i < n; i++)
    if (log->holders[i] != a && log->holders[i] != b) bad++;
  return bad;
}

/* An event stream, recorded by the gil_event_fn (under the GIL's mutex). */
#define MAX_EVENTS 200000
typedef struct event_rec {
  gil_thread *t;
  gil_event ev;
} event_rec;
typedef struct event_log {
  event_rec *ev;
  size_t n;
  bool overflow;
} event_log;

static void on_event(gil_thread *t, gil_event ev, uint64_t now, void *arg) {
  (void)now;
  event_log *log = arg;
  if (log->n == MAX_EVENTS) {
    log->overflow = true;
    return;
  }
  log->ev[log->n++] = (event_rec){ t, ev };
}

/* Order in which threads got the GIL, appended by the holder (so the GIL
   itself protects it). */
typedef struct order_log {
  int id[64];
  int n;
} order_log;

static void record_order(order_log *o, int id) {
  if (o->n < 64) o->id[o->n++] = id;
}

/* ------------------------------------------------------- API and names */

/* The table is meson's list: cpython, legacy and fifo, then lifo, the
   policy only the tests know (gil_lifo.c, added by one word in
   tests/meson.build); gil_policy_at is NULL past the end, each name creates
   a GIL that reports that name, and gil_policy_find finds the same entry.
   Anything else (including a different case) is refused with NULL rather
   than falling back to a default policy. */
Test(gil_api, policy_names_and_unknown_policy, .timeout = 10.) {
  const char *want[] = { "cpython", "legacy", "fifo", "iopri", "lifo" };
  for (int i = 0; i < 5; i++) {
    cr_assert_not_null(gil_policy_at(i));
    cr_assert_str_eq(gil_policy_at(i)->name, want[i]);
    cr_assert_eq(gil_policy_find(want[i]), gil_policy_at(i));
  }
  cr_assert_null(gil_policy_at(5));
  cr_assert_null(gil_policy_at(-1));
  for (int i = 0; gil_policy_at(i); i++) {
    gil_t *g = gil_create(gil_policy_at(i)->name, 0, NULL, NULL);
    cr_assert_not_null(g, "policy %s", gil_policy_at(i)->name);
    cr_assert_str_eq(gil_policy_name(g), gil_policy_at(i)->name);
    gil_destroy(g);
  }
  cr_assert_null(gil_create("nope", 0, NULL, NULL));
  cr_assert_null(gil_create("", 0, NULL, NULL));
  cr_assert_null(gil_create("CPython", 0, NULL, NULL));
  cr_assert_null(gil_create("fifo ", 0, NULL, NULL));
  cr_assert_null(gil_create(NULL, 0, NULL, NULL));
  cr_assert_null(gil_policy_find("nope"));
  gil_destroy(NULL); /* allowed, like free(NULL) */
}

/* What the CLI and sweep read from the table: the interval each policy
   gives -s a meaning for (legacy and lifo have no timed wait), the check
   interval (legacy only), a line for --help. */
Test(gil_api, policy_info, .timeout = 10.) {
  cr_assert_str_eq(gil_policy_find("cpython")->interval_is, "switch interval");
  cr_assert_str_eq(gil_policy_find("fifo")->interval_is, "quantum");
  cr_assert_str_eq(gil_policy_find("iopri")->interval_is, "switch interval");
  cr_assert_null(gil_policy_find("legacy")->interval_is);
  cr_assert_null(gil_policy_find("lifo")->interval_is);
  cr_assert_eq(gil_policy_find("legacy")->default_check_interval, 100);
  for (int i = 0; gil_policy_at(i); i++) {
    cr_assert_not_null(gil_policy_at(i)->about);
    cr_assert_gt(gil_policy_at(i)->default_interval_ns, 0);
  }
}

/* Defaults match the design: cpython 5 ms, fifo 100 ms quantum; an explicit
   interval wins; gil_set_interval reads back through gil_interval and
   ignores 0. Only legacy has a check interval (100). */
Test(gil_api, intervals_and_defaults, .timeout = 10.) {
  gil_t *c = gil_create("cpython", 0, NULL, NULL);
  gil_t *l = gil_create("legacy", 0, NULL, NULL);
  gil_t *f = gil_create("fifo", 0, NULL, NULL);
  cr_assert_eq(gil_interval(c), 5 * MS);
  cr_assert_eq(gil_interval(f), 100 * MS);
  cr_assert_eq(gil_check_interval(c), 0);
  cr_assert_eq(gil_check_interval(l), 100);
  cr_assert_eq(gil_check_interval(f), 0);

  gil_set_interval(c, 7 * MS);
  cr_assert_eq(gil_interval(c), 7 * MS);
  gil_set_interval(c, 0);
  cr_assert_eq(gil_interval(c), 7 * MS, "an interval of 0 must be ignored");
  gil_set_interval(f, 250 * MS);
  cr_assert_eq(gil_interval(f), 250 * MS);
  gil_destroy(c);
  gil_destroy(l);
  gil_destroy(f);

  gil_t *g = gil_create("cpython", 2 * SEC, NULL, NULL);
  cr_assert_eq(gil_interval(g), 2 * SEC);
  gil_destroy(g);
}

/* The check interval is a legacy thing: settable there (positive values
   only), and it stays 0 for the policies that are not driven by a count
   hook, whatever the caller sets. */
Test(gil_api, check_interval_settable_only_for_legacy, .timeout = 10.) {
  gil_t *l = gil_create("legacy", 0, NULL, NULL);
  cr_assert_eq(gil_check_interval(l), 100);
  gil_set_check_interval(l, 250);
  cr_assert_eq(gil_check_interval(l), 250);
  gil_set_check_interval(l, 0);
  cr_assert_eq(gil_check_interval(l), 250, "0 must be ignored");
  gil_set_check_interval(l, -5);
  cr_assert_eq(gil_check_interval(l), 250, "negative must be ignored");
  gil_set_check_interval(l, 1);
  cr_assert_eq(gil_check_interval(l), 1);
  gil_destroy(l);

  const char *others[] = { "cpython", "fifo" };
  for (int i = 0; i < 2; i++) {
    gil_t *g = gil_create(others[i], 0, NULL, NULL);
    gil_set_check_interval(g, 100);
    cr_assert_eq(gil_check_interval(g), 0, "%s has no check interval", others[i]);
    gil_destroy(g);
  }
}

/* ------------------------------------------------- mutual exclusion */

/* State the GIL is supposed to protect. Deliberately not atomic: if two
   threads were ever inside at once, `owner` would show it, the count would
   come out short, and TSan would report the race. */
typedef struct shared {
  volatile long counter;
  void *volatile owner;
  atomic_long violations;
} shared;

static void enter(shared *s, void *me) {
  if (s->owner != NULL) atomic_fetch_add(&s->violations, 1);
  s->owner = me;
}

static void leave(shared *s, void *me) {
  if (s->owner != me) atomic_fetch_add(&s->violations, 1);
  s->owner = NULL;
}

typedef struct stress_arg {
  gil_t *g;
  gil_thread t;
  shared *s;
  int cycles;
  int yield_every; /* 0: never yield */
  long yields;
} stress_arg;

static void *stress_thread(void *p) {
  stress_arg *a = p;
  for (int i = 0; i < a->cycles; i++) {
    if (i % 2) /* every other take as if back from a blocking wait (iopri favours those) */
      gil_take_after_block(a->g, &a->t);
    else
      gil_take(a->g, &a->t);
    enter(a->s, a);
    long c = a->s->counter; /* a read-modify-write with a window in it */
    if (a->yield_every && (i % a->yield_every == 0 || gil_drop_requested(a->g))) {
      /* the GIL is let go here: leave first, and check it is ours again */
      leave(a->s, a);
      gil_yield(a->g, &a->t);
      a->yields++;
      enter(a->s, a);
      c = a->s->counter;
    }
    a->s->counter = c + 1;
    leave(a->s, a);
    gil_drop(a->g, &a->t);
  }
  return NULL;
}

#define STRESS_THREADS 4

/* N threads x M take/drop cycles around a non-atomic increment: exactly one
   thread is ever inside, no increment is lost, and every take is counted
   once, both per thread and in the totals (yields are a drop plus a take). */
static void check_mutual_exclusion(const char *policy, int cycles, int yield_every) {
  gil_t *g = gil_create(policy, 0, NULL, NULL);
  cr_assert_not_null(g);
  shared s = { 0 };
  stress_arg a[STRESS_THREADS];
  pthread_t th[STRESS_THREADS];
  gil_thread me = { 0 };
  /* hold the GIL until every thread queues for it: they all start contending */
  gil_take(g, &me);
  for (int i = 0; i < STRESS_THREADS; i++) {
    a[i] = (stress_arg){ .g = g, .s = &s, .cycles = cycles, .yield_every = yield_every };
    spawn(&th[i], stress_thread, &a[i]);
  }
  cr_assert(wait_for_waiters(g, STRESS_THREADS), "the threads never all queued");
  gil_drop(g, &me);
  for (int i = 0; i < STRESS_THREADS; i++) join(th[i]);

  gil_stats st;
  gil_stats_get(g, &st);
  uint64_t acq = me.acquisitions;
  long yields = 0;
  for (int i = 0; i < STRESS_THREADS; i++) {
    cr_assert_eq(a[i].t.acquisitions, (uint64_t)(cycles + a[i].yields), "thread %d", i);
    acq += a[i].t.acquisitions;
    yields += a[i].yields;
  }
  cr_assert_eq(atomic_load(&s.violations), 0, "%s: two threads inside at once", policy);
  cr_assert_eq(s.counter, (long)STRESS_THREADS * cycles, "%s: lost increments", policy);
  cr_assert_eq(st.acquisitions, acq);
  cr_assert_eq(st.acquisitions, 1 + (uint64_t)STRESS_THREADS * cycles + (uint64_t)yields);
  cr_assert_leq(st.switches, st.acquisitions);
  cr_assert_gt(st.contended_ns, 0);
  cr_assert_eq(nwaiting(g), 0);
  gil_destroy(g);
}

Test(gil_cpython, mutual_exclusion_stress, .timeout = 120.) { check_mutual_exclusion("cpython", 20000, 0); }
Test(gil_cpython, mutual_exclusion_stress_with_yields, .timeout = 120.) { check_mutual_exclusion("cpython", 20000, 7); }
Test(gil_legacy, mutual_exclusion_stress, .timeout = 120.) { check_mutual_exclusion("legacy", 20000, 0); }
Test(gil_legacy, mutual_exclusion_stress_with_yields, .timeout = 120.) { check_mutual_exclusion("legacy", 20000, 7); }
Test(gil_fifo, mutual_exclusion_stress, .timeout = 120.) { check_mutual_exclusion("fifo", 5000, 0); }
Test(gil_fifo, mutual_exclusion_stress_with_yields, .timeout = 120.) { check_mutual_exclusion("fifo", 5000, 7); }
Test(gil_iopri, mutual_exclusion_stress, .timeout = 120.) { check_mutual_exclusion("iopri", 5000, 0); }
Test(gil_iopri, mutual_exclusion_stress_with_yields, .timeout = 120.) { check_mutual_exclusion("iopri", 5000, 7); }

/* ------------------------------------------- forced switches (cpython, fifo) */

/* A holder that spins (CPU-bound, the GIL held) until asked to drop, then
   yields once, records when it has the GIL again, and drops. */
typedef struct holder_arg {
  gil_t *g;
  gil_thread t;
  int id;
  order_log *order;
  atomic_int holding; /* set once it has the GIL */
  bool saw_request;
} holder_arg;

static void *holder_thread(void *p) {
  holder_arg *a = p;
  gil_take(a->g, &a->t);
  atomic_store(&a->holding, 1);
  a->saw_request = spin_until_drop_requested(a->g);
  gil_yield(a->g, &a->t);
  record_order(a->order, a->id);
  gil_drop(a->g, &a->t);
  return NULL;
}

/* A thread that wants the GIL once, records that it got it, holds it a
   little and leaves. */
typedef struct waiter_arg {
  gil_t *g;
  gil_thread t;
  int id;
  order_log *order;
} waiter_arg;

static void *waiter_thread(void *p) {
  waiter_arg *a = p;
  gil_take(a->g, &a->t);
  record_order(a->order, a->id);
  busy_ns(200 * US);
  gil_drop(a->g, &a->t);
  return NULL;
}

/* A second thread that wants the GIL makes the callback fire, naming the
   spinning holder; the holder yields and the waiter gets the GIL before
   the holder has it again (FORCE_SWITCHING for cpython, the queue for
   fifo). The switch is counted as forced, with a handoff latency, and the
   waiter waited at least one interval before it asked. */
static void check_waiter_forces_switch(const char *policy, uint64_t interval) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create(policy, interval, on_drop, log);
  order_log order = { 0 };
  holder_arg h = { .g = g, .id = 1, .order = &order };
  waiter_arg w = { .g = g, .id = 2, .order = &order };
  pthread_t th, tw;
  spawn(&th, holder_thread, &h);
  cr_assert(wait_for_flag(&h.holding));
  spawn(&tw, waiter_thread, &w);
  join(th);
  join(tw);

  cr_assert(h.saw_request, "%s: the holder was never asked to drop", policy);
  cr_assert_geq(atomic_load(&log->calls), 1);
  /* the first request is the one that made the holder yield; later ones
     (the holder waiting behind a preempted waiter) may name the waiter */
  cr_assert_eq(log->holders[0], &h.t, "the first request did not name the holder");
  cr_assert_eq(calls_naming_neither(log, &h.t, &w.t), 0);
  cr_assert_eq(order.n, 2);
  cr_assert_eq(order.id[0], 2, "%s: the waiter must get the GIL first", policy);
  cr_assert_eq(order.id[1], 1);

  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_geq(st.drop_requests, 1);
  cr_assert_geq(st.forced_switches, 1);
  cr_assert_geq(st.handoffs, 1);
  cr_assert_leq(st.handoff_median_ns, st.handoff_max_ns);
  cr_assert_geq(h.t.forced_drops, 1);
  cr_assert_eq(w.t.forced_drops, 0);
  cr_assert_eq(st.acquisitions, 3); /* holder, waiter, holder again */
  cr_assert_eq(st.switches, 3);
  cr_assert_geq(w.t.wait_ns, interval, "asked before waiting a whole interval");
  gil_destroy(g);
  free(log);
}

/* A holder that blocks (gil_drop: sleep, join, a lock) while a drop request
   is pending was not forced: the switch that follows is not counted as
   forced, so the summary's forced switches add up to the threads' forced
   drops (one meaning of "forced"). */
static void *blocking_holder_thread(void *p) {
  holder_arg *a = p;
  gil_take(a->g, &a->t);
  atomic_store(&a->holding, 1);
  a->saw_request = spin_until_drop_requested(a->g);
  gil_drop(a->g, &a->t); /* blocks instead of yielding at a check point */
  return NULL;
}

static void check_blocking_is_not_forced(const char *policy) {
  gil_t *g = gil_create(policy, 1 * MS, NULL, NULL);
  order_log order = { 0 };
  holder_arg h = { .g = g, .id = 1, .order = &order };
  waiter_arg w = { .g = g, .id = 2, .order = &order };
  pthread_t th, tw;
  spawn(&th, blocking_holder_thread, &h);
  cr_assert(wait_for_flag(&h.holding));
  spawn(&tw, waiter_thread, &w);
  join(th);
  join(tw);
  cr_assert(h.saw_request, "%s: the holder was never asked to drop", policy);
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(st.drop_requests, 1);
  cr_assert_eq(st.switches, 2);
  cr_assert_eq(h.t.forced_drops, 0, "%s: a blocking drop counted as forced", policy);
  cr_assert_eq(st.forced_switches, h.t.forced_drops + w.t.forced_drops,
               "%s: %llu forced switches, but the threads made %llu forced drops", policy,
               (unsigned long long)st.forced_switches, (unsigned long long)(h.t.forced_drops + w.t.forced_drops));
  gil_destroy(g);
}

Test(gil_cpython, blocking_while_asked_is_not_a_forced_switch, .timeout = 60.) {
  check_blocking_is_not_forced("cpython");
}

Test(gil_fifo, blocking_while_asked_is_not_a_forced_switch, .timeout = 60.) { check_blocking_is_not_forced("fifo"); }
Test(gil_iopri, blocking_while_asked_is_not_a_forced_switch, .timeout = 60.) { check_blocking_is_not_forced("iopri"); }

Test(gil_cpython, waiter_forces_switch, .timeout = 60.) { check_waiter_forces_switch("cpython", 2 * MS); }
/* iopri: a plain waiter (not back from a blocking wait) is treated as cpython treats it */
Test(gil_iopri, plain_waiter_forces_switch_after_an_interval, .timeout = 60.) {
  check_waiter_forces_switch("iopri", 2 * MS);
}

/* fifo: when the head of the queue has waited a quantum, the holder is
   asked to drop and the GIL goes to that waiter. */
Test(gil_fifo, quantum_expiry_requests_drop, .timeout = 60.) { check_waiter_forces_switch("fifo", 20 * MS); }

/* Two CPU-bound threads, each spinning on gil_drop_requested() and yielding
   when asked, with a 1 ms interval, until 20 forced switches have happened
   (tens of intervals are allowed for each). The event stream is checked:
   ACQUIRE and RELEASE alternate with the same thread in between (mutual
   exclusion as the GIL itself saw it); DROP_REQUEST names the current
   holder; FORCED_DROP is immediately followed by that thread's RELEASE;
   and after a FORCED_DROP the next ACQUIRE is by the *other* thread — on
   cpython that is FORCE_SWITCHING, on fifo the queue. Stats agree. */
typedef struct spinner_arg {
  gil_t *g;
  gil_thread t;
  atomic_int *stop;
  long yields;
} spinner_arg;

static void *spinner_thread(void *p) {
  spinner_arg *a = p;
  gil_take(a->g, &a->t);
  while (!atomic_load(a->stop)) {
    if (gil_drop_requested(a->g)) {
      gil_yield(a->g, &a->t);
      a->yields++;
    }
  }
  gil_drop(a->g, &a->t);
  return NULL;
}

static void check_forced_switching(const char *policy) {
  drop_log *log = calloc(1, sizeof *log);
  event_log *ev = calloc(1, sizeof *ev);
  ev->ev = calloc(MAX_EVENTS, sizeof *ev->ev);
  gil_t *g = gil_create(policy, 1 * MS, on_drop, log);
  gil_set_event_fn(g, on_event, ev);
  atomic_int stop = 0;
  spinner_arg a = { .g = g, .stop = &stop }, b = { .g = g, .stop = &stop };
  pthread_t ta, tb;
  uint64_t t0 = gil_now_ns();
  spawn(&ta, spinner_thread, &a);
  spawn(&tb, spinner_thread, &b);

  const uint64_t want = 20;
  gil_stats st;
  uint64_t end = gil_now_ns() + DEADLINE;
  do {
    sleep_ns(2 * MS);
    gil_stats_get(g, &st);
  } while (st.forced_switches < want && gil_now_ns() < end);
  atomic_store(&stop, 1);
  join(ta);
  join(tb);
  uint64_t wall = gil_now_ns() - t0;
  gil_set_event_fn(g, NULL, NULL);

  gil_stats_get(g, &st);
  cr_assert_geq(st.forced_switches, want, "%s: only %llu forced switches", policy,
                (unsigned long long)st.forced_switches);
  cr_assert_not(ev->overflow);

  gil_thread *holder = NULL;
  size_t forced = 0, checked = 0;
  for (size_t i = 0; i < ev->n; i++) {
    event_rec e = ev->ev[i];
    cr_assert(e.t == &a.t || e.t == &b.t);
    switch (e.ev) {
    case GIL_EV_ACQUIRE:
      cr_assert_null(holder, "event %zu: ACQUIRE while held", i);
      holder = e.t;
      break;
    case GIL_EV_RELEASE:
      cr_assert_eq(holder, e.t, "event %zu: RELEASE by a non-holder", i);
      holder = NULL;
      break;
    case GIL_EV_DROP_REQUEST: cr_assert_eq(holder, e.t, "event %zu: DROP_REQUEST names a non-holder", i); break;
    case GIL_EV_FORCED_DROP:
      forced++;
      cr_assert_lt(i + 1, ev->n);
      cr_assert_eq(ev->ev[i + 1].ev, GIL_EV_RELEASE, "event %zu", i);
      cr_assert_eq(ev->ev[i + 1].t, e.t);
      for (size_t j = i + 1; j < ev->n; j++) {
        if (ev->ev[j].ev != GIL_EV_ACQUIRE) continue;
        cr_assert_neq(ev->ev[j].t, e.t, "%s: event %zu: the dropper took the GIL straight back", policy, j);
        checked++;
        break;
      }
      break;
    case GIL_EV_WAIT: cr_assert_neq(holder, e.t, "event %zu: the holder waits for itself", i); break;
    }
  }
  cr_assert_null(holder, "the GIL is still held at the end");
  cr_assert_geq(checked, want - 1);

  cr_assert_eq(forced, a.t.forced_drops + b.t.forced_drops);
  cr_assert_eq(forced, (size_t)(a.yields + b.yields));
  cr_assert_geq(atomic_load(&log->calls), (int)st.drop_requests);
  cr_assert_eq(calls_naming_neither(log, &a.t, &b.t), 0, "the callback named a non-holder");
  cr_assert_geq(st.drop_requests, st.forced_switches);
  cr_assert_leq(st.forced_switches, st.switches);
  cr_assert_leq(st.switches, st.acquisitions);
  cr_assert_eq(st.acquisitions, a.t.acquisitions + b.t.acquisitions);
  cr_assert_leq(st.handoffs, st.forced_switches);
  cr_assert_geq(st.handoffs, 1);
  cr_assert_leq(st.handoff_median_ns, st.handoff_p99_ns);
  cr_assert_leq(st.handoff_p99_ns, st.handoff_max_ns);
  cr_assert_leq(st.handoff_max_ns, wall);
  cr_assert_leq(st.held_ns, wall + wall / 20);
  cr_assert_gt(st.contended_ns, 0);
  gil_destroy(g);
  free(ev->ev);
  free(ev);
  free(log);
}

Test(gil_cpython, force_switching_dropper_never_retakes_first, .timeout = 120.) { check_forced_switching("cpython"); }
Test(gil_fifo, forced_handoff_goes_to_the_waiter, .timeout = 120.) { check_forced_switching("fifo"); }
Test(gil_iopri, force_switching_dropper_never_retakes_first, .timeout = 120.) { check_forced_switching("iopri"); }

/* Uncontended, nobody is ever asked to drop, however long the GIL is held
   (here tens of 1 ms intervals): the callback is never called, no request
   is ever visible, nothing is counted as forced, and gil_yield with nobody
   waiting returns with the GIL still ours. */
static void check_no_request_when_uncontended(const char *policy) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create(policy, 1 * MS, on_drop, log);
  gil_thread t = { 0 };
  int seen = 0, yields = 0;
  for (int round = 0; round < 3; round++) {
    gil_take(g, &t);
    for (int k = 0; k < 5; k++) {
      uint64_t end = gil_now_ns() + 5 * MS;
      while (gil_now_ns() < end) seen += gil_drop_requested(g);
      gil_yield(g, &t);
      yields++;
    }
    gil_drop(g, &t);
  }
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(seen, 0);
  cr_assert_eq(atomic_load(&log->calls), 0, "%s: callback called uncontended", policy);
  cr_assert_eq(st.drop_requests, 0);
  cr_assert_eq(st.forced_switches, 0);
  cr_assert_eq(st.handoffs, 0);
  cr_assert_eq(st.switches, 1, "only the very first take is a switch");
  cr_assert_eq(st.acquisitions, (uint64_t)(3 + yields));
  cr_assert_eq(t.acquisitions, st.acquisitions);
  cr_assert_eq(st.wait_ns, t.wait_ns);
  cr_assert_eq(st.contended_ns, 0);
  cr_assert_geq(st.held_ns, 3 * 5 * 5 * MS);
  gil_destroy(g);
  free(log);
}

Test(gil_cpython, no_drop_request_when_uncontended, .timeout = 30.) { check_no_request_when_uncontended("cpython"); }
Test(gil_fifo, no_drop_request_when_uncontended, .timeout = 30.) { check_no_request_when_uncontended("fifo"); }
Test(gil_iopri, no_drop_request_when_uncontended, .timeout = 30.) { check_no_request_when_uncontended("iopri"); }

/* The switch interval is read at run time: with 60 s nobody is asked to
   drop within 100 ms of contention (however slow the machine); after gil_set_interval(1 ms) (which
   gil_interval reads back) a request does arrive and the holder yields.
   A second waiter started after the change shows that new waits use it. */
typedef struct interval_holder {
  gil_t *g;
  gil_thread t;
  atomic_int holding;
  bool saw_request;
} interval_holder;

static void *interval_holder_thread(void *p) {
  interval_holder *a = p;
  gil_take(a->g, &a->t);
  atomic_store(&a->holding, 1);
  a->saw_request = spin_until_drop_requested(a->g);
  gil_yield(a->g, &a->t);
  gil_drop(a->g, &a->t);
  return NULL;
}

Test(gil_cpython, interval_change_takes_effect, .timeout = 120.) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create("cpython", 60 * SEC, on_drop, log);
  cr_assert_eq(gil_interval(g), 60 * SEC);
  order_log order = { 0 };
  interval_holder h = { .g = g };
  waiter_arg w1 = { .g = g, .id = 1, .order = &order };
  waiter_arg w2 = { .g = g, .id = 2, .order = &order };
  pthread_t th, t1, t2;
  spawn(&th, interval_holder_thread, &h);
  cr_assert(wait_for_flag(&h.holding));
  spawn(&t1, waiter_thread, &w1);
  cr_assert(wait_for_waiters(g, 1));

  sleep_ns(100 * MS);
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(atomic_load(&log->calls), 0, "asked to drop before 60 s had passed");
  cr_assert_eq(st.drop_requests, 0);
  cr_assert_not(gil_drop_requested(g));

  gil_set_interval(g, 1 * MS);
  cr_assert_eq(gil_interval(g), 1 * MS);
  spawn(&t2, waiter_thread, &w2);
  join(th);
  join(t1);
  join(t2);

  cr_assert(h.saw_request, "no drop request after the interval went down to 1 ms");
  cr_assert_geq(atomic_load(&log->calls), 1);
  cr_assert_eq(log->holders[0], &h.t, "the first request did not name the holder");
  gil_stats_get(g, &st);
  cr_assert_geq(st.drop_requests, 1);
  cr_assert_geq(st.forced_switches, 1);
  cr_assert_geq(h.t.forced_drops, 1);
  cr_assert_eq(order.n, 2);
  gil_destroy(g);
  free(log);
}

/* ---------------------------------------------------------------- stats */

typedef struct stats_arg {
  gil_t *g;
  gil_thread t;
  int cycles;
  long yields;
} stats_arg;

static void *stats_thread(void *p) {
  stats_arg *a = p;
  for (int i = 0; i < a->cycles; i++) {
    gil_take(a->g, &a->t);
    busy_ns(20 * US);
    if (i % 10 == 0) {
      gil_yield(a->g, &a->t);
      a->yields++;
      busy_ns(20 * US);
    }
    gil_drop(a->g, &a->t);
  }
  return NULL;
}

#define STATS_THREADS 3

/* The statistics add up: the per-thread counts sum to the totals (takes
   exactly, hold and wait times within 1 us), switches <= takes,
   forced switches <= switches and <= drop requests, handoffs <= forced
   switches with median <= p99 <= max; one holder at a time means the total
   hold fits in the wall time of the test; each thread held at least its
   busy time; and since every thread was confirmed waiting behind the test
   thread, waits and contention are positive. */
static void check_stats_add_up(const char *policy) {
  gil_t *g = gil_create(policy, 0, NULL, NULL);
  gil_thread me = { 0 };
  stats_arg a[STATS_THREADS];
  pthread_t th[STATS_THREADS];
  const int cycles = 300;
  uint64_t t0 = gil_now_ns();
  gil_take(g, &me);
  for (int i = 0; i < STATS_THREADS; i++) {
    a[i] = (stats_arg){ .g = g, .cycles = cycles };
    spawn(&th[i], stats_thread, &a[i]);
  }
  cr_assert(wait_for_waiters(g, STATS_THREADS), "the workers never all queued");
  gil_drop(g, &me);
  for (int i = 0; i < STATS_THREADS; i++) join(th[i]);
  uint64_t wall = gil_now_ns() - t0;

  gil_stats st;
  gil_stats_get(g, &st);
  uint64_t acq = me.acquisitions, hold = me.hold_ns, wait = me.wait_ns;
  uint64_t expect_acq = 1;
  for (int i = 0; i < STATS_THREADS; i++) {
    acq += a[i].t.acquisitions;
    hold += a[i].t.hold_ns;
    wait += a[i].t.wait_ns;
    expect_acq += (uint64_t)(cycles + a[i].yields);
    cr_assert_geq(a[i].t.hold_ns, (uint64_t)cycles * 20 * US, "thread %d held too little", i);
    cr_assert_gt(a[i].t.wait_ns, 0, "thread %d waited behind the test thread", i);
    cr_assert_eq(a[i].t.acquisitions, (uint64_t)(cycles + a[i].yields));
  }
  cr_assert_eq(st.acquisitions, acq);
  cr_assert_eq(st.acquisitions, expect_acq);
  cr_assert_leq(hold > st.held_ns ? hold - st.held_ns : st.held_ns - hold, 1 * US);
  cr_assert_leq(wait > st.wait_ns ? wait - st.wait_ns : st.wait_ns - wait, 1 * US);
  cr_assert_leq(st.switches, st.acquisitions);
  cr_assert_geq(st.switches, 2);
  cr_assert_leq(st.forced_switches, st.switches);
  cr_assert_leq(st.forced_switches, st.drop_requests);
  cr_assert_leq(st.handoffs, st.forced_switches);
  if (st.handoffs > 0) {
    cr_assert_leq(st.handoff_median_ns, st.handoff_p99_ns);
    cr_assert_leq(st.handoff_p99_ns, st.handoff_max_ns);
  }
  cr_assert_gt(st.held_ns, 0);
  cr_assert_leq(st.held_ns, wall + wall / 20, "%s: held %llu ns in %llu ns of wall time", policy,
                (unsigned long long)st.held_ns, (unsigned long long)wall);
  cr_assert_gt(st.wait_ns, 0);
  cr_assert_gt(st.contended_ns, 0);
  cr_assert_leq(st.contended_ns, wall + wall / 20);
  gil_destroy(g);
}

Test(gil_cpython, stats_add_up, .timeout = 120.) { check_stats_add_up("cpython"); }
Test(gil_legacy, stats_add_up, .timeout = 120.) { check_stats_add_up("legacy"); }
Test(gil_fifo, stats_add_up, .timeout = 120.) { check_stats_add_up("fifo"); }
Test(gil_iopri, stats_add_up, .timeout = 120.) { check_stats_add_up("iopri"); }

/* gil_stats_get while the GIL is held counts the hold in progress (a
   timeline reads it live), and once dropped the total is exactly the
   holder's own hold_ns. */
Test(gil_api, stats_include_hold_in_progress, .timeout = 30.) {
  for (int i = 0; gil_policy_at(i); i++) {
    gil_t *g = gil_create(gil_policy_at(i)->name, 0, NULL, NULL);
    gil_thread t = { 0 };
    gil_stats st;
    gil_take(g, &t);
    sleep_ns(20 * MS);
    gil_stats_get(g, &st);
    cr_assert_geq(st.held_ns, 20 * MS, "%s", gil_policy_at(i)->name);
    cr_assert_eq(st.acquisitions, 1);
    gil_drop(g, &t);
    gil_stats_get(g, &st);
    cr_assert_eq(st.held_ns, t.hold_ns);
    cr_assert_geq(t.hold_ns, 20 * MS);
    gil_destroy(g);
  }
}

/* ----------------------------------------------------------------- fifo */

typedef struct fifo_arg {
  gil_t *g;
  gil_thread t;
  int id;
  order_log *order;
  bool after_block; /* take with gil_take_after_block */
} fifo_arg;

static void *fifo_thread(void *p) {
  fifo_arg *a = p;
  if (a->after_block)
    gil_take_after_block(a->g, &a->t);
  else
    gil_take(a->g, &a->t);
  record_order(a->order, a->id);
  busy_ns(100 * US);
  gil_drop(a->g, &a->t);
  return NULL;
}

#define FIFO_THREADS 6

/* While the test thread holds g, start FIFO_THREADS threads one at a time,
   each confirmed queued before the next; then release g and wait for all.
   `order` says who got it when. Thread i takes it with gil_take_after_block
   when bit i of after_block is set. */
static void release_to_queued_threads(gil_t *g, order_log *order, unsigned after_block) {
  gil_thread me = { 0 };
  fifo_arg a[FIFO_THREADS];
  pthread_t th[FIFO_THREADS];
  gil_take(g, &me);
  for (int i = 0; i < FIFO_THREADS; i++) {
    a[i] = (fifo_arg){ .g = g, .id = i, .order = order, .after_block = (after_block >> i) & 1 };
    spawn(&th[i], fifo_thread, &a[i]);
    cr_assert(wait_for_waiters(g, i + 1), "thread %d never queued", i);
  }
  gil_drop(g, &me);
  for (int i = 0; i < FIFO_THREADS; i++) join(th[i]);
}

/* Grants follow arrival order: threads are started one at a time while the
   test thread holds the GIL, and each is confirmed queued (nwaiting) before
   the next starts; when the GIL is released they get it exactly in that
   order. The quantum is long, so no drop request muddles it. */
Test(gil_fifo, grants_in_arrival_order, .timeout = 60.) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create("fifo", 10 * SEC, on_drop, log);
  order_log order = { 0 };
  release_to_queued_threads(g, &order, 0);

  cr_assert_eq(order.n, FIFO_THREADS);
  for (int i = 0; i < FIFO_THREADS; i++) cr_assert_eq(order.id[i], i, "position %d went to thread %d", i, order.id[i]);
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(atomic_load(&log->calls), 0);
  cr_assert_eq(st.acquisitions, FIFO_THREADS + 1);
  cr_assert_eq(st.switches, st.acquisitions);
  cr_assert_eq(nwaiting(g), 0);
  gil_destroy(g);
  free(log);
}

/* No barging: while threads queue, the thread that has just released the
   GIL and wants it straight back (the one that would usually win a plain
   lock, being already on a CPU) goes to the back of the queue: the queued
   threads get it first, in order. Checked for gil_drop followed at once by
   gil_take, and for gil_yield. */
static void check_no_barging(bool use_yield) {
  gil_t *g = gil_create("fifo", 10 * SEC, NULL, NULL);
  gil_thread me = { 0 };
  order_log order = { 0 };
  fifo_arg a[3];
  pthread_t th[3];
  gil_take(g, &me);
  for (int i = 0; i < 3; i++) {
    a[i] = (fifo_arg){ .g = g, .id = i, .order = &order };
    spawn(&th[i], fifo_thread, &a[i]);
    cr_assert(wait_for_waiters(g, i + 1));
  }
  if (use_yield) {
    gil_yield(g, &me);
  } else {
    gil_drop(g, &me);
    gil_take(g, &me);
  }
  record_order(&order, 99);
  gil_drop(g, &me);
  for (int i = 0; i < 3; i++) join(th[i]);

  cr_assert_eq(order.n, 4);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(order.id[i], i, "position %d went to %d: the releasing thread barged in", i, order.id[i]);
  cr_assert_eq(order.id[3], 99);
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(st.switches, st.acquisitions, "every take was a handoff to another thread");
  gil_destroy(g);
}

Test(gil_fifo, no_barging_on_drop_and_retake, .timeout = 60.) { check_no_barging(false); }
Test(gil_fifo, no_barging_on_yield, .timeout = 60.) { check_no_barging(true); }

/* To fifo, a take back from a blocking wait is a take like any other: the
   same queue, in arrival order (only iopri reads after_block). */
Test(gil_fifo, after_block_takes_keep_arrival_order, .timeout = 60.) {
  gil_t *g = gil_create("fifo", 10 * SEC, NULL, NULL);
  order_log order = { 0 };
  release_to_queued_threads(g, &order, 0x2a);
  cr_assert_eq(order.n, FIFO_THREADS);
  for (int i = 0; i < FIFO_THREADS; i++) cr_assert_eq(order.id[i], i, "position %d went to thread %d", i, order.id[i]);
  gil_destroy(g);
}

/* ---------------------------------------------------------------- iopri */

/* Threads back from a blocking wait are served first, in their arrival
   order, whatever plain waiters queued before them. By construction: the
   test thread holds the GIL while six threads queue one at a time (threads
   2, 4 and 5 with gil_take_after_block), then lets go. The interval is
   60 s, so no plain waiter ever asks: the only drop requests are the
   priority arrivals', made at once and naming the holder. */
Test(gil_iopri, back_from_blocking_is_served_first, .timeout = 60.) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create("iopri", 60 * SEC, on_drop, log);
  order_log order = { 0 };
  release_to_queued_threads(g, &order, (1u << 2) | (1u << 4) | (1u << 5));

  cr_assert_eq(order.n, FIFO_THREADS);
  cr_assert_eq(order.id[0], 2, "position 0 went to thread %d", order.id[0]);
  cr_assert_eq(order.id[1], 4, "position 1 went to thread %d", order.id[1]);
  cr_assert_eq(order.id[2], 5, "position 2 went to thread %d", order.id[2]);
  int rest = 0; /* the plain waiters after them, in the OS's order, as cpython's */
  for (int i = 3; i < FIFO_THREADS; i++) rest |= 1 << order.id[i];
  cr_assert_eq(rest, (1 << 0) | (1 << 1) | (1 << 3));
  cr_assert_eq(atomic_load(&log->calls), 3, "each priority arrival asks the holder once");
  for (int i = 0; i < 3; i++) cr_assert_eq(log->holders[i], log->holders[0], "a request named a non-holder");
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(st.drop_requests, 1, "one request, pending until the holder let go");
  cr_assert_eq(st.acquisitions, FIFO_THREADS + 1);
  cr_assert_eq(nwaiting(g), 0);
  gil_destroy(g);
  free(log);
}

/* A thread back from a blocking wait does not wait an interval before it
   asks: a CPU-bound holder (spinning until asked, then yielding) is asked
   at the priority waiter's arrival, with a 60 s interval, and the waiter
   gets the GIL before the yielding holder has it again (the reservation:
   the dropper, already on a CPU, cannot barge in). */
Test(gil_iopri, back_from_blocking_asks_the_holder_at_once, .timeout = 60.) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create("iopri", 60 * SEC, on_drop, log);
  order_log order = { 0 };
  holder_arg h = { .g = g, .id = 1, .order = &order };
  fifo_arg w = { .g = g, .id = 2, .order = &order, .after_block = true };
  pthread_t th, tw;
  spawn(&th, holder_thread, &h);
  cr_assert(wait_for_flag(&h.holding));
  spawn(&tw, fifo_thread, &w);
  join(th);
  join(tw);

  cr_assert(h.saw_request, "the holder was not asked within %llu s of a 60 s interval",
            (unsigned long long)(DEADLINE / SEC));
  cr_assert_geq(atomic_load(&log->calls), 1);
  cr_assert_eq(log->holders[0], &h.t, "the request did not name the holder");
  cr_assert_eq(order.n, 2);
  cr_assert_eq(order.id[0], 2, "the priority waiter must get the GIL first");
  cr_assert_eq(order.id[1], 1);
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(st.drop_requests, 1);
  cr_assert_eq(st.forced_switches, 1);
  cr_assert_eq(h.t.forced_drops, 1);
  gil_destroy(g);
  free(log);
}

/* A plain take is cpython's: with the holder in place and a 60 s interval,
   a plain waiter queues without asking (its request would come after an
   interval), and gets the GIL when the holder lets go. */
Test(gil_iopri, plain_take_does_not_ask_at_once, .timeout = 60.) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create("iopri", 60 * SEC, on_drop, log);
  gil_thread me = { 0 };
  order_log order = { 0 };
  fifo_arg w = { .g = g, .id = 2, .order = &order };
  pthread_t tw;
  gil_take(g, &me);
  spawn(&tw, fifo_thread, &w);
  cr_assert(wait_for_waiters(g, 1));
  int asked = gil_drop_requested(g), calls = atomic_load(&log->calls);
  gil_drop(g, &me);
  join(tw);
  cr_assert_eq(asked, 0, "a plain waiter asked before its interval");
  cr_assert_eq(calls, 0);
  cr_assert_eq(order.n, 1);
  gil_destroy(g);
  free(log);
}

/* --------------------------------------------------------------- legacy */

typedef struct legacy_arg {
  gil_t *g;
  gil_thread t;
  long iterations;
  long yields;
  long saw_request;
} legacy_arg;

/* A CPU-bound thread under the legacy policy: the count hook is emulated by
   yielding every gil_check_interval() "instructions". */
static void *legacy_thread(void *p) {
  legacy_arg *a = p;
  volatile long work = 0;
  gil_take(a->g, &a->t);
  for (long i = 1; i <= a->iterations; i++) {
    work++;
    a->saw_request += gil_drop_requested(a->g);
    if (i % gil_check_interval(a->g) == 0) {
      gil_yield(a->g, &a->t);
      a->yields++;
    }
  }
  gil_drop(a->g, &a->t);
  return NULL;
}

/* Legacy never asks anyone to drop, however long others wait (the interval
   given to gil_create is unused): the callback is never called and no
   request is ever visible. The release happens every check interval (set to
   50 here): each thread yields iterations/50 times, and each yield is one
   more take. The workers are confirmed waiting behind the test thread
   first, so there was contention. */
Test(gil_legacy, yields_every_check_interval_never_requests_drop, .timeout = 120.) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create("legacy", 1 * MS, on_drop, log);
  gil_set_check_interval(g, 50);
  cr_assert_eq(gil_check_interval(g), 50);
  const long iterations = 50L * 2000;
  gil_thread me = { 0 };
  legacy_arg a[2];
  pthread_t th[2];
  gil_take(g, &me);
  for (int i = 0; i < 2; i++) {
    a[i] = (legacy_arg){ .g = g, .iterations = iterations };
    spawn(&th[i], legacy_thread, &a[i]);
  }
  cr_assert(wait_for_waiters(g, 2));
  sleep_ns(20 * MS); /* twenty "intervals" with two waiters: still nothing */
  cr_assert_eq(atomic_load(&log->calls), 0);
  gil_drop(g, &me);
  for (int i = 0; i < 2; i++) join(th[i]);

  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(atomic_load(&log->calls), 0, "legacy called the drop-request callback");
  cr_assert_eq(st.drop_requests, 0);
  cr_assert_eq(st.forced_switches, 0);
  cr_assert_eq(st.handoffs, 0);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(a[i].saw_request, 0);
    cr_assert_eq(a[i].yields, iterations / 50);
    cr_assert_eq(a[i].t.acquisitions, (uint64_t)a[i].yields + 1);
    cr_assert_eq(a[i].t.forced_drops, 0, "a check-interval release is not a forced drop");
  }
  cr_assert_eq(st.acquisitions, 1 + 2 * (uint64_t)(iterations / 50 + 1));
  cr_assert_gt(st.contended_ns, 0);
  cr_assert_gt(st.wait_ns, 0);
  gil_destroy(g);
  free(log);
}

/* ----------------------------------------------------------------- fork */

typedef struct fork_waiter {
  gil_t *g;
  gil_thread t;
} fork_waiter;

static void *fork_waiter_thread(void *p) {
  fork_waiter *a = p;
  gil_take(a->g, &a->t);
  gil_drop(a->g, &a->t);
  return NULL;
}

/* The child's half of the fork test: what runs after fork() in a process
   where only this thread is left. Returns an exit status, 0 if all is well. */
static int fork_child(gil_t *g, gil_thread *me) {
  alarm(20); /* a hang kills the child; the parent sees the signal */
  gil_after_fork(g, me);
  if (gil_drop_requested(g)) return 2;
  gil_stats st;
  gil_stats_get(g, &st);
  if (st.acquisitions != 0 || st.drop_requests != 0) return 3;
  gil_drop(g, me); /* no waiter is left: must not wait for a switch */
  gil_take(g, me); /* and it is free again */
  gil_yield(g, me);
  gil_drop(g, me);
  gil_stats_get(g, &st);
  if (st.acquisitions != 2 || me->acquisitions != 2) return 4;
  if (st.held_ns != me->hold_ns) return 5;
  pthread_mutex_lock(&g->mutex);
  int waiting = g->nwaiting, locked = g->holder != NULL;
  pthread_mutex_unlock(&g->mutex);
  if (waiting != 0 || locked != 0) return 6;
  return 0;
}

/* gil_after_fork: the test thread holds the GIL while another thread waits
   for it (for cpython and fifo with a drop request pending), and forks. In
   the child only the forking thread exists; after gil_after_fork it can
   drop, take, yield and drop again without waiting on the vanished thread,
   and exits 0. The parent reaps it (bounded) and its own GIL still works:
   the waiter gets it. */
static void check_after_fork(const char *policy) {
  gil_t *g = gil_create(policy, 1 * MS, NULL, NULL);
  gil_thread me = { 0 };
  fork_waiter w = { .g = g };
  pthread_t tw;
  gil_take(g, &me);
  spawn(&tw, fork_waiter_thread, &w);
  cr_assert(wait_for_waiters(g, 1));
  if (gil_policy_find(policy)->interval_is) { /* a timed wait: a request is made */
    uint64_t end = gil_now_ns() + DEADLINE;
    while (!gil_drop_requested(g) && gil_now_ns() < end) sleep_ns(100 * US);
    cr_assert(gil_drop_requested(g), "no drop request pending before fork");
  }

  fflush(NULL);
  pid_t pid = fork();
  cr_assert_neq(pid, -1, "fork failed");
  if (pid == 0) _exit(fork_child(g, &me));

  int status = 0;
  pid_t r = 0;
  uint64_t end = gil_now_ns() + DEADLINE;
  while ((r = waitpid(pid, &status, WNOHANG)) == 0 && gil_now_ns() < end) sleep_ns(1 * MS);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    cr_assert_fail("%s: the child hung after fork", policy);
  }
  cr_assert_eq(r, pid);
  cr_assert(WIFEXITED(status), "%s: child killed by signal %d", policy, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  cr_assert_eq(WEXITSTATUS(status), 0, "%s: child check %d failed", policy, WEXITSTATUS(status));

  gil_drop(g, &me);
  join(tw);
  cr_assert_eq(w.t.acquisitions, 1);
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(st.acquisitions, 2);
  gil_destroy(g);
}

Test(gil_cpython, after_fork_child_gil_works, .timeout = 60.) { check_after_fork("cpython"); }
Test(gil_legacy, after_fork_child_gil_works, .timeout = 60.) { check_after_fork("legacy"); }
Test(gil_fifo, after_fork_child_gil_works, .timeout = 60.) { check_after_fork("fifo"); }
Test(gil_iopri, after_fork_child_gil_works, .timeout = 60.) { check_after_fork("iopri"); }

/* ------------------------------------------------- lifo: a fourth policy */

/* lifo (tests/gil_lifo.c, in the table through tests/meson.build only)
   runs on the same driver as the real policies: threads started one at a
   time while the test thread holds the GIL, each confirmed queued before
   the next, get it newest first when it is released; nobody is asked to
   drop; the driver's statistics count every take as a switch. The order is
   the opposite of fifo's, so only lifo's own decisions can produce it. */
Test(gil_lifo, grants_newest_first, .timeout = 60.) {
  drop_log *log = calloc(1, sizeof *log);
  gil_t *g = gil_create("lifo", 1 * MS, on_drop, log);
  cr_assert_not_null(g);
  order_log order = { 0 };
  release_to_queued_threads(g, &order, 0);

  cr_assert_eq(order.n, FIFO_THREADS);
  for (int i = 0; i < FIFO_THREADS; i++)
    cr_assert_eq(order.id[i], FIFO_THREADS - 1 - i, "position %d went to thread %d", i, order.id[i]);
  gil_stats st;
  gil_stats_get(g, &st);
  cr_assert_eq(atomic_load(&log->calls), 0, "lifo has no timed wait: nobody is asked");
  cr_assert_eq(st.drop_requests, 0);
  cr_assert_eq(st.acquisitions, FIFO_THREADS + 1);
  cr_assert_eq(st.switches, st.acquisitions);
  cr_assert_eq(nwaiting(g), 0);
  gil_destroy(g);
  free(log);
}

Test(gil_lifo, mutual_exclusion_stress, .timeout = 120.) { check_mutual_exclusion("lifo", 5000, 0); }
Test(gil_lifo, after_fork_child_gil_works, .timeout = 60.) { check_after_fork("lifo"); }

/* ------------------------------------------------ the check point's rule */

typedef struct taker_arg {
  gil_t *g;
  gil_thread t;
} taker_arg;

static void *taker_thread(void *p) {
  taker_arg *a = p;
  gil_take(a->g, &a->t);
  gil_drop(a->g, &a->t);
  return NULL;
}

/* gil_should_yield is the policy's rule at a check point (the runtime's
   checkpoint asks nothing else): legacy yields whenever someone waits,
   without a drop request; cpython only when asked (a 60 s interval here, so
   a waiter never asks during the test); alone, neither yields. */
Test(gil_api, should_yield_is_the_policys_rule, .timeout = 60.) {
  const char *policy[] = { "legacy", "cpython" };
  for (int k = 0; k < 2; k++) {
    gil_t *g = gil_create(policy[k], 60 * SEC, NULL, NULL);
    gil_thread me = { 0 };
    taker_arg w = { .g = g };
    pthread_t tw;
    gil_take(g, &me);
    cr_assert_not(gil_should_yield(g), "%s: yields with nobody waiting", policy[k]);
    spawn(&tw, taker_thread, &w);
    cr_assert(wait_for_waiters(g, 1));
    cr_assert_not(gil_drop_requested(g));
    cr_assert_eq(gil_should_yield(g), k == 0, "%s: wrong answer with a waiter", policy[k]);
    gil_drop(g, &me);
    join(tw);
    gil_destroy(g);
  }
}

/* ------------------------------------------------------------ invariants */

#ifndef NDEBUG
/* Only the holder drops: a drop by a thread that does not hold the GIL is
   caught by the driver's assert (debug and sanitizer builds) and aborts,
   rather than corrupting the lock and its statistics. */
Test(gil_invariants, drop_by_a_non_holder_aborts, .signal = SIGABRT, .timeout = 10.) {
  gil_t *g = gil_create("cpython", 0, NULL, NULL);
  gil_thread holder = { 0 }, other = { 0 };
  gil_take(g, &holder);
  gil_drop(g, &other);
}

/* One holder: taking a GIL the thread already holds would deadlock on a
   real lock; the driver's assert says so at once. */
Test(gil_invariants, take_by_the_holder_aborts, .signal = SIGABRT, .timeout = 10.) {
  gil_t *g = gil_create("legacy", 0, NULL, NULL);
  gil_thread t = { 0 };
  gil_take(g, &t);
  gil_take(g, &t);
}
#endif

/* A failed pthread call in gil/ fails loudly: PT_CHECK (base/check.h, as
   gil.c uses it) names the call and aborts, in every build (here a mutex
   type that does not exist: EINVAL). */
Test(gil_invariants, failed_pthread_call_aborts, .signal = SIGABRT, .timeout = 10.) {
  pthread_mutexattr_t ma;
  PT_CHECK(pthread_mutexattr_init(&ma));
  PT_CHECK(pthread_mutexattr_settype(&ma, -1));
}
