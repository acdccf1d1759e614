/*
 * events.h — what each thread did, when: the raw material of timelines.
 *
 * Every worker owns one event buffer and is the only thread that writes to
 * it (GIL events are recorded by the thread they happen on, under the GIL's
 * mutex; a drop request is recorded by the waiter that made it), so
 * recording takes no lock. Buffers are read when the run is over. A buffer
 * stops growing at EV_CAP events and counts what it had to drop.
 */
#ifndef EVENTS_H
#define EVENTS_H

#include <stddef.h>
#include <stdint.h>

#define EV_CAP (1u << 20) /* 16 MiB per thread at most */

typedef enum ev_state {
  ST_IDLE, /* not running Lua: starting, finished, or between two states */
  ST_RUN_GIL, /* running Lua holding the shared GIL */
  ST_RUN_OWN, /* running Lua in an interpreter of its own (nogil, or a process) */
  ST_WAIT_GIL, /* waiting to take the GIL */
  ST_SLEEP, /* blocked in gil.sleep, GIL released */
  ST_JOIN, /* blocked joining a worker */
  ST_LOCK, /* blocked acquiring a gil.lock */
  ST_QUEUE, /* blocked on a gil.queue */
  ST_NATIVE, /* running C code without the GIL (gil.native(s, true)) */
  ST_IO, /* blocked in the kernel: a file, pipe, socket, child process (io, os.execute, sockets) */
  ST_CPU_WAIT, /* runnable, waiting for a CPU (--sim: the simulated cores' run queue) */
  ST_NSTATES
} ev_state;

typedef enum ev_kind {
  EV_STATE, /* the thread entered `state` */
  EV_DROP_REQUEST, /* this thread asked worker `arg` to drop the GIL */
  EV_FORCED_DROP, /* this thread dropped the GIL because it was asked */
} ev_kind;

typedef struct ev {
  uint64_t t; /* ns, CLOCK_MONOTONIC: comparable across processes */
  uint16_t kind; /* ev_kind */
  uint16_t state; /* ev_state, for EV_STATE */
  int32_t arg; /* EV_DROP_REQUEST: the holder's worker id */
} ev;

typedef struct ev_buf {
  ev *v;
  uint32_t n;
  size_t cap;
  uint64_t dropped;
} ev_buf;

/* Read GILVM_EVENTS_MAX (a smaller cap, for tests); call once before recording. */
void ev_init_limit(void);
void ev_record(ev_buf *b, uint64_t t, ev_kind kind, ev_state state, int32_t arg);
void ev_free(ev_buf *b);
extern const char *const ev_state_names[ST_NSTATES];

#endif
