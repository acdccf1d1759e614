/*
 * snapshot.h — a finished run as the instruments (vm/observe) read it: plain
 * values copied out of the runtime once rt_wait_all has returned, so that
 * report and timeline need nothing of the runtime's internals.
 */
#ifndef SNAPSHOT_H
#define SNAPSHOT_H

#include <stdint.h>

#include "events.h"
#include "gil.h"
#include "rt_mode.h"

/* Workers with ids below this are never released: the report shows them
   row by row (a small script's report is complete); later ones are summed. */
#define RT_KEEP_RECORDS 40

typedef enum snap_kind { SNAP_THREAD, SNAP_OWN_INTERP, SNAP_PROCESS } snap_kind; /* as rt_kind */

typedef struct rt_figure { /* gil.report(name, value) */
  char name[48];
  char value[48];
} rt_figure;

/* The figures of released workers (joined, handle collected), summed: the
   report's totals stay true after their records are freed. */
typedef struct rt_totals {
  int n, failed;
  uint64_t cpu_ns, hold_ns, wait_ns, acquisitions, forced_drops, blocked_ns, nogil_ns, io_ns;
  uint64_t startup_ns, maxrss_kb, events_dropped;
  uint64_t inflight_ns; /* from spawn to the end of its function, summed */
  uint64_t runq_ns; /* runnable without a CPU, summed */
  unsigned long long bytes_copied;
  gil_stats gil; /* released free workers' interpreters' GILs */
} rt_totals;

typedef struct snap_worker { /* one worker of this process, as it ended */
  int id;
  char name[64];
  snap_kind kind;
  long pid; /* SNAP_PROCESS */
  uint64_t cpu_ns;
  uint64_t hold_ns, wait_ns, acquisitions, forced_drops; /* under its GIL */
  uint64_t blocked_ns; /* GIL released while blocked: sleep, join, lock, queue */
  uint64_t nogil_ns; /* GIL released while running C code */
  uint64_t io_ns; /* GIL released while blocked in the kernel (io, os.execute, sockets) */
  uint64_t startup_ns; /* from spawn to its function running (0: main, or unknown) */
  uint64_t inflight_ns; /* from spawn to the end of its function: running, waiting or blocked (0: main) */
  uint64_t runq_ns; /* runnable but without a CPU while its function ran (kernel's schedstat) */
  uint64_t oncpu_ns; /* on a CPU over the same window (schedstat) */
  int runq_known; /* runq_ns could be measured */
  int failed;
  unsigned long long bytes_copied; /* SNAP_PROCESS: bytes its marshaller moved */
  const ev_buf *events; /* its timeline (the runtime's: valid until rt_destroy) */
} snap_worker;

typedef struct rt_snapshot {
  rt_mode mode;
  const char *policy;
  uint64_t interval_ns;
  int check_interval;
  uint64_t start_ns, end_ns, cpu_ns;
  uint64_t maxrss_kb; /* peak memory, summed over processes */
  gil_stats gil; /* all interpreters' GILs (handoff latencies from main's) */
  unsigned long long bytes_marshalled; /* by this process's marshaller, both ways */
  int recorded; /* timelines were recorded */
  const char *stopped; /* NULL, or why the run was stopped */
  rt_figure figures[32];
  int nfigures;
  snap_worker *workers; /* this process's, main first, in spawn order */
  int nworkers;
  rt_totals released; /* workers whose records were freed: only sums remain */
  /* --sim: the cost model (sim_cores 0: a real run), and what stays the host's */
  int sim_cores, sim_tick;
  uint64_t sim_seed, sim_wake_ns;
  double sim_insn_ns;
  uint64_t real_wall_ns; /* the host's time the simulated run took */
} rt_snapshot;

#endif
