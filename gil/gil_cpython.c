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
 */
#include "gil_policy.h"

static void cpython_take(gil_t *g, gil_thread *t) {
  uint64_t start = gil_now_ns();
  if (g->locked) {
    gil__wait_begin(g, t);
    while (g->locked) {
      unsigned long seen = g->switch_number;
      int timed_out = gil__timedwait(g, &g->cond, atomic_load(&g->interval_ns));
      if (timed_out && g->locked && g->switch_number == seen)
        gil__request_drop(g);  /* a whole interval and nobody switched: ask */
    }
    gil__wait_end(g);
  }
  gil__acquired(g, t, start);
}

static void cpython_drop(gil_t *g, gil_thread *t, int forced) {
  gil__released(g, t, forced);
  pthread_cond_signal(&g->cond);
  if (atomic_load(&g->drop_request)) {
    /* FORCE_SWITCHING: do not race the waiter we were asked to make room for */
    while (g->last_holder == t && g->nwaiting > 0)
      pthread_cond_wait(&g->switch_cond, &g->mutex);
  }
}

const gil_policy gil_policy_cpython = {
  .name = "cpython",
  .default_interval_ns = 5000000,  /* sys.getswitchinterval() == 0.005 */
  .default_check_interval = 0,
  .take = cpython_take,
  .drop = cpython_drop,
};
