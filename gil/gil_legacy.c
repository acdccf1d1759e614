/*
 * gil_legacy.c — the GIL of CPython 2.x (1992–2009), "the old GIL".
 *
 * The algorithm is almost nothing:
 *
 * - The GIL is a plain lock: a flag, a mutex and a condition variable.
 *   A thread that wants it waits on the condition until the flag is clear.
 *   There is no timed wait, no drop request and no forced switching.
 *
 * - Every `check interval` bytecodes (sys.setcheckinterval, 100 "ticks" by
 *   default) the running thread releases the GIL and at once takes it
 *   back, hoping the OS will let a waiting thread in between.
 *
 * - On one core that works: the release wakes a waiter and the scheduler
 *   often runs it. On several cores it does not: the releasing thread is
 *   still running and re-takes the lock a few nanoseconds later, while the
 *   woken waiter is only being scheduled; it finds the lock taken and goes
 *   back to sleep. Two CPU-bound threads then fight over the lock with a
 *   storm of futile wake-ups (slower than one thread), and a thread coming
 *   back from I/O may wait a long time (David Beazley, "Understanding the
 *   Python GIL", 2010). That pathology is what this policy is here to show.
 *
 * gilvm drives the periodic release with a Lua count hook of
 * `check_interval` instructions (gil_check_interval()), which makes every
 * Lua thread pay for a hook call every N instructions. gil_yield() does the
 * release and the take in two separate critical sections, so the window a
 * waiter has is as narrow as it was in CPython 2. The runtime skips the
 * release when nobody waits (gil_waiters() == 0): releasing and re-taking
 * an uncontended lock changes nothing, and CPython 2 paid a few nanoseconds
 * for it where gilvm's bookkeeping (clocks, statistics) would cost far more.
 */
#include "gil_policy.h"

static void legacy_take(gil_t *g, gil_thread *t) {
  uint64_t start = gil_now_ns();
  if (g->locked) {
    gil__wait_begin(g, t);
    while (g->locked) pthread_cond_wait(&g->cond, &g->mutex);
    gil__wait_end(g);
  }
  gil__acquired(g, t, start);
}

static void legacy_drop(gil_t *g, gil_thread *t, int forced) {
  gil__released(g, t, forced);
  pthread_cond_signal(&g->cond);
}

const gil_policy gil_policy_legacy = {
  .name = "legacy",
  .default_interval_ns = 5000000,  /* unused: legacy has no timed wait */
  .default_check_interval = 100,   /* sys.getcheckinterval() == 100 */
  .take = legacy_take,
  .drop = legacy_drop,
};
