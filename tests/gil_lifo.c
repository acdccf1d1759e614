/*
 * gil_lifo.c — a fourth GIL policy that only the tests know, to show that a
 * policy is one file (plus its name in the list in tests/meson.build).
 *
 * lifo: the newest waiter goes first. Threads that want the GIL while it is
 * held (or promised) push themselves on a stack; a release hands the GIL to
 * the top of the stack, and it stays promised to that thread until it takes
 * it, so nobody barges in. Nobody is ever asked to drop (no timed wait):
 * like legacy, it relies on the holder letting go. Useless as a GIL (the
 * oldest waiter can starve), which is why only the tests have it; but its
 * order is exact, so a test can tell that its decisions were the ones used.
 */
#include "gil_policy.h"

typedef struct lifo_state {
  gil_waiter *top; /* newest waiter first */
  int promised; /* handed to a waiter that has not taken it yet */
} lifo_state;

static int lifo_arrive(gil_t *g, gil_waiter *w) {
  lifo_state *s = gil__state(g);
  if (!g->holder && !s->promised) return 1;
  w->granted = 0;
  w->next = s->top;
  s->top = w;
  return 0;
}

static int lifo_may_take(gil_t *g, gil_waiter *w) {
  (void)g;
  return w->granted;
}

static int lifo_timed_out(gil_t *g, gil_waiter *w) {
  (void)g, (void)w;
  return 0; /* never called: no timed wait */
}

static void lifo_took(gil_t *g, gil_waiter *w) {
  lifo_state *s = gil__state(g);
  if (w->granted) s->promised = 0;
}

static gil_wake lifo_released(gil_t *g, gil_thread *t) {
  (void)t;
  lifo_state *s = gil__state(g);
  gil_waiter *w = s->top;
  if (!w) return GIL_WAKE_NONE;
  s->top = w->next;
  w->granted = 1;
  s->promised = 1;
  return GIL_WAKE_ALL;
}

const gil_policy gil_policy_lifo = {
  .info = { .name = "lifo",
            .about = "newest waiter first (tests only)",
            .default_interval_ns = 5000000,
            .interval_is = NULL,
            .default_check_interval = 0 },
  .state_size = sizeof(lifo_state),
  .arrive = lifo_arrive,
  .may_take = lifo_may_take,
  .timed_out = lifo_timed_out,
  .took = lifo_took,
  .released = lifo_released,
};
