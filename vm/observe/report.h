/* report.h — what gilvm tells the user after a run: text on stderr, JSON on request. */
#ifndef REPORT_H
#define REPORT_H

#include <stdio.h>

#include "snapshot.h"

struct timeline;

/* The run's figures, measured once and then printed or written. */
typedef struct report_run {
  const rt_snapshot *run; /* what the figures were taken from: rows, script figures */
  rt_mode mode;
  const char *policy;
  uint64_t interval_ns;
  int check_interval;
  uint64_t wall_ns, cpu_ns;
  double parallelism;
  double overlap; /* the workers' lives (spawn to end) summed, over wall time; main not counted */
  uint64_t inflight_ns; /* that sum */
  uint64_t runq_ns; /* all workers' time runnable without a CPU, main included */
  int cpus; /* CPUs this process may use (its affinity) */
  int runnable_at_once; /* threads that can run at once: 1 under one GIL, else workers + main */
  int disturbed; /* some worker waited for a CPU > REPORT_RUNQ_PCT of its CPU time: other load */
  gil_stats gil;
  int workers; /* not counting main */
  uint64_t startup_ns; /* mean time from spawn to the worker's function running */
  unsigned long long bytes_copied; /* marshalled between interpreters/processes, both ways */
  uint64_t maxrss_kb; /* peak memory, summed over processes */
  const char *stopped; /* NULL, or why the run was stopped */
  int recorded; /* timelines were recorded (--trace, --svg, --timeline) */
  uint64_t events_dropped; /* timeline events lost because a thread's buffer was full */
  const struct timeline *timeline; /* set by the caller: the ASCII chart ends the text report */
  int timeline_width; /* its width in columns */
  int color; /* ANSI colours for the key figures and the chart (a terminal, not NO_COLOR) */
} report_run;

/* The text report prints at most this many worker rows (main first); the
   rest, and the workers already released after join, are summed in one row. */
#define REPORT_ROWS RT_KEEP_RECORDS
/* A worker runnable without a CPU for more than this % of its running time (on a CPU) (and at
   least REPORT_RUNQ_MIN_NS) makes the report warn that other load disturbed it. */
#define REPORT_RUNQ_PCT 10
#define REPORT_RUNQ_MIN_NS 2000000u

void report_collect(const rt_snapshot *s, report_run *r);
/* w waited for a CPU long enough that other load disturbed its figures (see REPORT_RUNQ_PCT). */
int report_disturbed(const snap_worker *w);
/* The run as a whole, then one row per thread or process, then the timeline if set. */
void report_print(FILE *f, const report_run *r);
/* The same figures as one JSON object; 0 or -1 (errno set). */
int report_json(const char *path, const report_run *r);

#endif
