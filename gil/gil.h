/*
 * gil.h — the Global Interpreter Lock, as seen by the runtime.
 *
 * One interface, several policies (gil_cpython.c, ..., see gil_policy.h). The GIL knows
 * nothing about Lua: it hands a lock between OS threads, records what it
 * did, and, when a waiter wants the holder to let go, calls the runtime's
 * drop-request callback so the runtime can interrupt the holder (vm/ does it
 * with a signal and a Lua hook). The holder answers at its next check point
 * by calling gil_yield().
 *
 * Every thread that takes the GIL owns one gil_thread: its identity for the
 * lock and its statistics. Only the GIL writes the statistics, under its
 * mutex; read them when the thread has finished, or through gil_stats().
 */
#ifndef GIL_H
#define GIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct gil gil_t;

/* What happened, for timelines: reported through gil_event_fn. */
typedef enum gil_event {
  GIL_EV_WAIT, /* started waiting for the GIL */
  GIL_EV_ACQUIRE, /* took it */
  GIL_EV_RELEASE, /* let it go (voluntarily or forced) */
  GIL_EV_DROP_REQUEST, /* a waiter asked the holder to drop */
  GIL_EV_FORCED_DROP, /* the holder dropped because it was asked to */
} gil_event;

typedef struct gil_thread {
  void *owner; /* the runtime's record of this thread, handed back in callbacks */
  /* statistics, written by the GIL under its mutex */
  uint64_t acquisitions; /* times this thread took the GIL */
  uint64_t forced_drops; /* times it let go because a waiter asked */
  uint64_t wait_ns; /* time spent waiting to take it */
  uint64_t hold_ns; /* time spent holding it */
  uint64_t acquired_at; /* when it last took it (ns, monotonic) */
} gil_thread;

typedef struct gil_stats {
  uint64_t acquisitions; /* takes by any thread */
  uint64_t switches; /* takes by a thread other than the previous holder */
  uint64_t forced_switches; /* switches that followed a drop request */
  uint64_t drop_requests; /* times a waiter asked the holder to drop */
  uint64_t yields; /* releases at a check point (gil_yield), forced or not */
  uint64_t yields_regained; /* of those, the releasing thread took the GIL straight back */
  uint64_t held_ns; /* sum of all holds */
  uint64_t wait_ns; /* sum of all waits */
  uint64_t contended_ns; /* time during which at least one thread waited */
  size_t handoffs; /* forced handoff latencies recorded */
  uint64_t handoff_median_ns, handoff_p99_ns, handoff_max_ns;
} gil_stats;

/* Called with the GIL's mutex held: must not call back into the GIL. */
typedef void (*gil_drop_request_fn)(gil_thread *holder, void *arg);
typedef void (*gil_event_fn)(gil_thread *t, gil_event ev, uint64_t now_ns, void *arg);

/* What a policy is, for the CLI, the report and sweep (gil_policy.h has the rest). */
typedef struct gil_policy_info {
  const char *name; /* what gil_create() and -g take */
  const char *about; /* a few words for --help */
  uint64_t default_interval_ns; /* used when the user sets no interval */
  const char *interval_is; /* what the interval is to it ("quantum"); NULL: it has no timed wait */
  int default_check_interval; /* > 0: released every N instructions (a count hook drives gil_yield) */
} gil_policy_info;

/* The policies gil_create() accepts, in table order (the first is the default); NULL past the end. */
const gil_policy_info *gil_policy_at(int i);
/* The policy called `name`, or NULL. */
const gil_policy_info *gil_policy_find(const char *name);

/* interval_ns is the switch interval (cpython), the quantum (fifo), unused by legacy. */
gil_t *gil_create(const char *policy, uint64_t interval_ns, gil_drop_request_fn on_drop_request, void *arg);
void gil_destroy(gil_t *g);
const char *gil_policy_name(const gil_t *g);
/* Instructions between releases for policies driven by a count hook (legacy), else 0. */
int gil_check_interval(const gil_t *g);
void gil_set_check_interval(gil_t *g, int n);

void gil_take(gil_t *g, gil_thread *t);
/* gil_take, after a blocking wait (sleep, join, lock, queue, I/O): a policy may favour it (iopri). */
void gil_take_after_block(gil_t *g, gil_thread *t);
void gil_drop(gil_t *g, gil_thread *t);
/* At a check point: drop because asked (or because the quantum is over), then take again. */
void gil_yield(gil_t *g, gil_thread *t);
/* Cheap, lock-free: has a waiter asked the holder to drop? */
int gil_drop_requested(const gil_t *g);
/* Cheap, lock-free, at a check point: should the holder gil_yield() now? (the policy's rule) */
int gil_should_yield(const gil_t *g);
/* Cheap, lock-free: how many threads wait for the GIL now. */
int gil_waiters(const gil_t *g);

void gil_set_interval(gil_t *g, uint64_t ns);
uint64_t gil_interval(const gil_t *g);
void gil_set_event_fn(gil_t *g, gil_event_fn fn, void *arg);

void gil_stats_get(gil_t *g, gil_stats *out);
/* In a forked child: the only thread left is `me`, which held the GIL across fork(). */
void gil_after_fork(gil_t *g, gil_thread *me);

uint64_t gil_now_ns(void);

/* The virtual-time driver (--sim, gil_vt.c): the same policy hooks, with
   waits and wake-ups done by a simulator instead of pthreads. `wait` blocks
   the calling thread t on `chan` for up to timeout_ns virtual ns (0: no
   limit) and returns 1 if the time ran out; `wake` makes one (a seeded
   choice) or all threads blocked on chan runnable; `now` is virtual time. */
typedef struct gil_vt_ops {
  uint64_t (*now)(void);
  int (*wait)(gil_thread *t, const void *chan, uint64_t timeout_ns);
  void (*wake)(const void *chan, int all);
  void (*gap)(void); /* optional: the time between a yield's release and its retake passes (the GIL is free) */
  void (*forced_switch)(void); /* optional: the new holder at a forced switch pays its cost (GIL held) */
  void (*woken)(void); /* optional: a waiter's wake-up costs it CPU (the return, the mutex, the next wait) */
  /* optional, both or neither: a woken waiter that found the GIL held queues on its mutex (blocks on
     chan) for the measured window and returns 1 if no release came meanwhile; a release hands the
     mutex to every thread queued on chan at once and returns how many there were */
  int (*queue)(gil_thread *t, const void *chan);
  int (*hand)(const void *chan);
} gil_vt_ops;
/* Drive g in virtual time from now on (call before any thread takes it). */
void gil_set_vt(gil_t *g, const gil_vt_ops *ops);

#endif
