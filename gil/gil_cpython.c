/*
 * gil_cpython.c — the "new GIL" of CPython 3.2 and later.
 *
 * Notes on the implementation, after Python/ceval_gil.c (Antoine Pitrou's
 * design, 2009), which explains it better than anything else:
 *
 * - The GIL is a `locked` flag protected by a mutex, plus a condition
 *   variable `cond` signalled when the flag is cleared.
 *
 * - A thread that wants the GIL while another holds it waits on `cond` for
 *   at most `interval` (the switch interval, 5 ms by default). If the wait
 *   times out and no switch happened in the meantime (`switch_number` did
 *   not move), it sets `drop_request`: the holder is asked to let go. The
 *   request reaches the holder through the runtime's callback; in gilvm
 *   that is a signal whose handler arms a Lua hook, so the holder notices at
 *   its next check point (a jump or a call), exactly where CPython's eval
 *   loop looks at its eval_breaker.
 *
 * - The holder, seeing the request, drops the GIL and immediately tries to
 *   take it back, like any other thread.
 *
 * - Why a timed wait and not a tick count: CPython 2 switched every 100
 *   bytecodes, which is very different in time from one instruction mix to
 *   the next, and let an I/O thread wait behind a CPU thread for as long as
 *   the OS pleased (see gil_legacy.c). A time interval bounds the wait.
 *
 * - FORCE_SWITCHING: on a multi-core machine the thread that just dropped
 *   the GIL is already running and would usually win it straight back
 *   before the woken waiter is even scheduled. So a thread that drops
 *   because it was asked to waits on `switch_cond` until some other thread
 *   has actually taken the GIL. This is what makes the handoff real.
 *
 * - Nothing is fair beyond that: which waiter wins is up to the OS, and a
 *   thread that does I/O often gives the GIL up and must queue for it again
 *   behind CPU-bound threads (the "convoy effect", scripts/convoy.lua).
 *
 * gilvm keeps one mutex where CPython keeps two (`mutex` and
 * `switch_mutex`): simpler to read, and both are held only for a few
 * instructions. A forced-switching holder stops waiting if no waiter is left
 * (a waiter that is interrupted never takes the GIL), so it cannot hang.
 *
 * As decisions (gil_policy.h), with the driver doing the waiting: take it
 * if nobody holds it; a woken waiter takes it if it is free; a waiter that
 * waited a whole interval with no switch asks; a release wakes one waiter;
 * force_switching. No private state: the driver's holder is the flag.
 */
#include "gil_policy.h"

static int cpython_free(gil_t *g, gil_waiter *w) {
  (void)w;
  return g->holder == NULL;
}

static int cpython_timed_out(gil_t *g, gil_waiter *w) {
  (void)g, (void)w;
  return 1; /* a whole interval and nobody switched: ask */
}

static gil_wake cpython_released(gil_t *g, gil_thread *t) {
  (void)g, (void)t;
  return GIL_WAKE_ONE;
}

const gil_policy gil_policy_cpython = {
  .info = { .name = "cpython",
            .about = "CPython 3.2+",
            .default_interval_ns = 5000000, /* sys.getswitchinterval() == 0.005 */
            .interval_is = "switch interval",
            .default_check_interval = 0 },
  .force_switching = 1,
  .arrive = cpython_free,
  .may_take = cpython_free,
  .timed_out = cpython_timed_out,
  .released = cpython_released,
};
