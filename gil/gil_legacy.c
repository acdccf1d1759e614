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
 * waiter has is as narrow as it was in CPython 2. The policy skips the
 * release when nobody waits (should_yield: gil_waiters() == 0): releasing
 * and re-taking an uncontended lock changes nothing, and CPython 2 paid a
 * few nanoseconds for it where gilvm's bookkeeping (clocks, statistics)
 * would cost far more.
 *
 * As decisions (gil_policy.h): take it if nobody holds it; waits are not
 * timed (no interval_is), so nobody is ever asked to drop; a release wakes
 * one waiter; at a check point, yield if anyone waits.
 *
 * Under --sim the same decisions run on the virtual-time driver, and the
 * pathology comes from the costs the real runtime pays (vm/core/sim.c's
 * table): each resting-hook call costs `hook`; a release that wakes a
 * blocked waiter costs the releaser a `futex` wake, the GIL free meanwhile;
 * the waiter runs `wake` (+ a seeded `spread`) later and, finding the GIL
 * held, queues on its mutex for `handoff`: a release within it hands the
 * GIL over, else the wake-up was futile and it blocks again (measured for
 * real: bench/README.md, "legacy's I/O thread"; README, "-g legacy").
 */
#include "gil_policy.h"

static int legacy_free(gil_t *g, gil_waiter *w) {
  (void)w;
  return g->holder == NULL;
}

static int legacy_timed_out(gil_t *g, gil_waiter *w) {
  (void)g, (void)w;
  return 0; /* never called: its waits are not timed */
}

static gil_wake legacy_released(gil_t *g, gil_thread *t) {
  (void)g, (void)t;
  return GIL_WAKE_ONE;
}

/* Reached every check interval (the count hook): release if anyone is there to take it. */
static int legacy_should_yield(const gil_t *g) { return gil_drop_requested(g) || gil_waiters(g) > 0; }

const gil_policy gil_policy_legacy = {
  .info = { .name = "legacy",
            .about = "CPython 2: release every N instructions",
            .default_interval_ns = 5000000, /* unused: legacy has no timed wait */
            .interval_is = NULL,
            .default_check_interval = 100 }, /* sys.getcheckinterval() == 100 */
  .arrive = legacy_free,
  .may_take = legacy_free,
  .timed_out = legacy_timed_out,
  .released = legacy_released,
  .should_yield = legacy_should_yield,
};
