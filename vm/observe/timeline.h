/*
 * timeline.h — one run's timeline: every thread's (or process's) states over
 * time, built from the workers' event buffers once the run is over, and
 * drawn three ways: a Chrome trace for Perfetto, an ASCII chart for the
 * terminal, and an SVG picture.
 */
#ifndef TIMELINE_H
#define TIMELINE_H

#include <stdint.h>
#include <stdio.h>

#include "events.h"
#include "snapshot.h"

typedef struct tl_slice { /* the thread was in `state` from t0 to t1 (ns, monotonic) */
  uint64_t t0, t1;
  ev_state state;
} tl_slice;

typedef enum tl_mark_kind {
  TL_DROP_REQUEST, /* this thread, waiting, asked `other` to drop the GIL */
  TL_FORCED_DROP, /* this thread dropped the GIL because it was asked to */
  TL_FORCED_SWITCH, /* this thread took the GIL from `other` after a drop request */
} tl_mark_kind;

typedef struct tl_mark {
  uint64_t t;
  tl_mark_kind kind;
  int other; /* track index of the other thread, -1 if unknown */
  uint64_t latency; /* TL_FORCED_SWITCH: from the drop request to this take (ns) */
} tl_mark;

typedef struct tl_track { /* one thread, or one process */
  const char *name;
  int is_process; /* a forked worker: a track (and a trace process) of its own */
  int shares_gil; /* runs under the main interpreter's GIL: counts as a waiter */
  long pid, tid; /* trace ids */
  tl_slice *slices; /* in time order, never overlapping; idle time is left out */
  size_t nslices;
  tl_mark *marks; /* in time order */
  size_t nmarks;
  uint64_t lost_from; /* events were dropped: nothing is known after this (else 0) */
  uint64_t dropped; /* events it could not record */
  uint64_t state_ns[ST_NSTATES]; /* total time in each state */
  uint64_t runq_ns; /* runnable without a CPU while its function ran (the kernel's run-queue wait) */
  int runq_known; /* runq_ns was measured */
} tl_track;

typedef struct timeline {
  uint64_t t0, t1; /* the run: from its start to its end (ns, monotonic) */
  tl_track *tracks; /* in the report's order: main first */
  int ntracks;
  uint64_t dropped; /* events lost over all threads */
  char title[256]; /* "scripts/convoy.lua: mode gil, gil cpython, switch interval 5 ms" */
  int simulated; /* --sim: the trace's pid is 1, not the host's */
} timeline;

/* Build the timeline of a finished run (rt_snapshot_take). 0, or -1 if out of memory. */
int timeline_build(const rt_snapshot *s, const char *script, timeline *tl);
void timeline_free(timeline *tl);

/* Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing). 0, or -1 with errno set. */
int timeline_write_trace(const timeline *tl, const char *path);
/* The timeline as a self-contained SVG picture. 0, or -1 with errno set. */
int timeline_write_svg(const timeline *tl, const char *path);
/* The ASCII chart: one row per track, no line wider than width. */
void timeline_print_ascii(const timeline *tl, FILE *f, int width);
/* The same, each state in its colour when color is set (ANSI escapes: a terminal). */
void timeline_print_ascii_color(const timeline *tl, FILE *f, int width, int color);
/* Columns of the terminal on stderr, else $COLUMNS, else 100. */
int timeline_terminal_width(void);

#endif
