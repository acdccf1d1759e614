/*
 * report.c — the run report. Every figure is measured: wall and CPU from
 * the clocks (children's CPU from the kernel once they are reaped), GIL
 * figures from the GILs' own counters, per-worker figures from each
 * worker's gil_thread and CPU clock (a process sends its own through its
 * pipe), bytes copied from the marshaller's counters.
 */
#include "report.h"
#include "sim.h"

#include <math.h>
#include <sched.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsonio.h"
#include "outfile.h"
#include "plot.h"
#include "timeline.h"

static double pct(uint64_t part, uint64_t whole) { return whole ? 100.0 * (double)part / (double)whole : 0.0; }

static const char *dur(uint64_t ns, char *buf, size_t len) { return ns ? clock_format(ns, buf, len) : "-"; }

static const char *bytes(unsigned long long n, char *buf, size_t len) {
  if (n >= 1u << 20)
    snprintf(buf, len, "%.1f MB", (double)n / (1 << 20));
  else if (n >= 10u << 10)
    snprintf(buf, len, "%.1f kB", (double)n / (1 << 10));
  else
    snprintf(buf, len, "%llu B", n);
  return buf;
}

int report_disturbed(const snap_worker *w) {
  return w->runq_known && w->runq_ns >= REPORT_RUNQ_MIN_NS && w->runq_ns * 100 > w->oncpu_ns * REPORT_RUNQ_PCT;
}

void report_collect(const rt_snapshot *s, report_run *r) {
  memset(r, 0, sizeof *r);
  r->run = s;
  r->mode = s->mode;
  r->policy = s->policy;
  r->interval_ns = s->interval_ns;
  r->check_interval = s->check_interval;
  r->wall_ns = s->end_ns - s->start_ns;
  r->cpu_ns = s->cpu_ns;
  r->parallelism = r->wall_ns ? (double)r->cpu_ns / (double)r->wall_ns : 0.0;
  r->gil = s->gil;
  r->bytes_copied = s->bytes_marshalled;
  uint64_t startup = s->released.startup_ns;
  r->workers = s->released.n; /* released after join: only their sums remain */
  r->bytes_copied += s->released.bytes_copied;
  r->events_dropped += s->released.events_dropped;
  for (int i = 1; i < s->nworkers; i++) {
    const snap_worker *w = &s->workers[i];
    r->workers++;
    r->bytes_copied += w->bytes_copied;
    r->events_dropped += w->events->dropped;
    startup += w->startup_ns;
  }
  r->startup_ns = r->workers ? startup / (uint64_t)r->workers : 0;
  r->inflight_ns = s->released.inflight_ns;
  r->runq_ns = s->released.runq_ns;
  for (int i = 0; i < s->nworkers; i++) {
    r->inflight_ns += s->workers[i].inflight_ns;
    r->runq_ns += s->workers[i].runq_ns;
    r->disturbed |= report_disturbed(&s->workers[i]);
  }
  cpu_set_t set; /* the CPUs this process may run on (taskset, cgroups' cpusets) */
  r->cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (r->cpus < 1) r->cpus = 1;
  if (s->sim_cores) r->cpus = s->sim_cores; /* the simulated machine's */
  /* under one GIL, Lua runs on one CPU at a time; otherwise every worker and main at once */
  r->runnable_at_once = r->mode == RT_MODE_GIL ? 1 : r->workers + 1;
  r->overlap = r->wall_ns ? (double)r->inflight_ns / (double)r->wall_ns : 0.0;
  if (s->nworkers) r->events_dropped += s->workers[0].events->dropped;
  r->recorded = s->recorded;
  r->maxrss_kb = s->maxrss_kb;
  r->stopped = s->stopped;
}

static const char *kind_name(const snap_worker *w) {
  return w->kind == SNAP_PROCESS ? "process" : w->kind == SNAP_OWN_INTERP ? "free thread" : "thread";
}

/* ANSI SGR codes, or nothing without colour. */
#define BOLD "1"
#define YELLOW "33"
#define RED "1;31"
static const char *on(const report_run *r, const char *sgr, char *buf, size_t len) {
  if (!r->color) return "";
  snprintf(buf, len, "\033[%sm", sgr);
  return buf;
}
static const char *off(const report_run *r) { return r->color ? "\033[0m" : ""; }

static void print_worker(FILE *f, const report_run *r, const snap_worker *w) {
  char cpu[24], held[24], wait[24], blocked[24], nogil[24], io[24], runq[24], c[16];
  int warn = report_disturbed(w);
  fprintf(f, "  %-22.22s %-11s %9s %9s %9s %7llu %7llu %9s %9s %9s %s%9s%s\n", w->name, kind_name(w),
          dur(w->cpu_ns, cpu, sizeof cpu), dur(w->hold_ns, held, sizeof held), dur(w->wait_ns, wait, sizeof wait),
          (unsigned long long)w->acquisitions, (unsigned long long)w->forced_drops,
          dur(w->blocked_ns, blocked, sizeof blocked), dur(w->nogil_ns, nogil, sizeof nogil),
          dur(w->io_ns, io, sizeof io), warn ? on(r, YELLOW, c, sizeof c) : "",
          w->runq_known ? dur(w->runq_ns, runq, sizeof runq) : "?", warn ? off(r) : "");
}

/* Rows past REPORT_ROWS, and released workers, are summed into one row. */
static void add_worker(rt_totals *t, const snap_worker *w) {
  t->n++;
  t->cpu_ns += w->cpu_ns;
  t->hold_ns += w->hold_ns;
  t->wait_ns += w->wait_ns;
  t->acquisitions += w->acquisitions;
  t->forced_drops += w->forced_drops;
  t->blocked_ns += w->blocked_ns;
  t->nogil_ns += w->nogil_ns;
  t->runq_ns += w->runq_ns;
  t->io_ns += w->io_ns;
}

/* The released workers plus the live ones past the first REPORT_ROWS rows. */
static rt_totals rest_of(const rt_snapshot *s) {
  rt_totals t = s->released;
  for (int i = REPORT_ROWS; i < s->nworkers; i++) add_worker(&t, &s->workers[i]);
  return t;
}

static void print_rest(FILE *f, const rt_snapshot *s) {
  rt_totals t = rest_of(s);
  if (!t.n) return;
  char name[32], cpu[24], held[24], wait[24], blocked[24], nogil[24], io[24], runq[24];
  snprintf(name, sizeof name, "(%d more)", t.n);
  fprintf(f, "  %-22.22s %-11s %9s %9s %9s %7llu %7llu %9s %9s %9s %9s\n", name, "summed",
          dur(t.cpu_ns, cpu, sizeof cpu), dur(t.hold_ns, held, sizeof held), dur(t.wait_ns, wait, sizeof wait),
          (unsigned long long)t.acquisitions, (unsigned long long)t.forced_drops,
          dur(t.blocked_ns, blocked, sizeof blocked), dur(t.nogil_ns, nogil, sizeof nogil), dur(t.io_ns, io, sizeof io),
          dur(t.runq_ns, runq, sizeof runq));
  fprintf(f, "  (%d more): %d released after join (handle collected), %d past the first %d rows\n", t.n, s->released.n,
          t.n - s->released.n, REPORT_ROWS);
}

static void print_gil(FILE *f, const report_run *r) {
  char a[24], b[24], c[24];
  const gil_stats *st = &r->gil;
  if (r->mode == RT_MODE_NOGIL) {
    fprintf(f, "  no shared GIL: each interpreter has its own, and nobody else ever wants it\n");
    fprintf(f, "  interpreters' GILs: switches %llu   drop requests %llu\n", (unsigned long long)st->switches,
            (unsigned long long)st->drop_requests);
    return;
  }
  if (r->mode == RT_MODE_FORK) fprintf(f, "  the main process's GIL (each process has its own):\n");
  fprintf(f, "  GIL held %.1f%%   contended %.1f%%   switches %llu (forced %llu)   drop requests %llu\n",
          pct(st->held_ns, r->wall_ns), pct(st->contended_ns, r->wall_ns), (unsigned long long)st->switches,
          (unsigned long long)st->forced_switches, (unsigned long long)st->drop_requests);
  if (r->check_interval > 0) /* legacy: nobody asks, the check interval releases, often in vain */
    fprintf(f, "  check-interval releases %llu   taken straight back by the releasing thread %llu\n",
            (unsigned long long)st->yields, (unsigned long long)st->yields_regained);
  if (st->handoffs)
    fprintf(f, "  handoff latency   median %s   p99 %s   max %s   (%zu forced handoffs)\n",
            clock_format(st->handoff_median_ns, a, sizeof a), clock_format(st->handoff_p99_ns, b, sizeof b),
            clock_format(st->handoff_max_ns, c, sizeof c), st->handoffs);
  else
    fprintf(f, "  handoff latency   - (no forced handoffs)\n");
}

/* A full event buffer loses the rest of its thread's timeline: say whose. */
static void print_dropped(FILE *f, const rt_snapshot *s, const report_run *r) {
  if (!r->events_dropped) return;
  fprintf(f, "\n  timeline: %llu events dropped (a thread keeps at most %u); the timelines of",
          (unsigned long long)r->events_dropped, EV_CAP);
  for (int i = 0, n = 0; i < s->nworkers; i++)
    if (s->workers[i].events->dropped) fprintf(f, "%s %s", n++ ? "," : "", s->workers[i].name);
  fprintf(f, " end early\n");
}

/* Workers that waited long for a CPU: the figures measured more than the script. */
static void print_disturbed(FILE *f, const report_run *r) {
  const rt_snapshot *s = r->run;
  if (!r->disturbed) return;
  char a[24], b[24], c[16];
  fprintf(f, "\n  %swarning%s: waiting for a CPU stretched these figures (wall, parallelism, the GIL's):\n",
          on(r, RED, c, sizeof c), off(r));
  fprintf(f,
          "  runnable but without a CPU (%s) for more than %d%% of the time\n"
          "  they ran:\n",
          s->sim_cores ? "the simulated cores' run queue" : "the kernel's run-queue wait", REPORT_RUNQ_PCT);
  for (int i = 0, shown = 0; i < s->nworkers; i++) {
    const snap_worker *w = &s->workers[i];
    if (!report_disturbed(w)) continue;
    if (shown++ == 5) {
      fprintf(f, "    and more\n");
      break;
    }
    fprintf(f, "    %s: %s (%.0f%% of the %s it ran)\n", w->name, clock_format(w->runq_ns, a, sizeof a),
            pct(w->runq_ns, w->oncpu_ns), clock_format(w->oncpu_ns, b, sizeof b));
  }
  if (s->sim_cores) /* nothing else runs on simulated cores */
    fprintf(f, "  cause: more runnable threads than the %d simulated core%s (nothing else runs on them)\n", r->cpus,
            r->cpus == 1 ? "" : "s");
  else if (r->runnable_at_once > r->cpus)
    fprintf(f, "  cause: the run's %d threads that can run at once outnumber the %d CPU%s it may use\n",
            r->runnable_at_once, r->cpus, r->cpus == 1 ? "" : "s");
  else
    fprintf(f, "  cause: other load on this machine (the run can use %d CPU%s at once, and may use %d)\n",
            r->runnable_at_once, r->runnable_at_once == 1 ? "" : "s", r->cpus);
}

/* The script's figures: a name column as wide as the longest name. */
static void print_figures(FILE *f, const rt_snapshot *s) {
  if (!s->nfigures) return;
  int w = 22;
  for (int i = 0; i < s->nfigures; i++)
    if ((int)plot_text_width(s->figures[i].name) > w) w = (int)plot_text_width(s->figures[i].name);
  fprintf(f, "\n  script figures\n");
  for (int i = 0; i < s->nfigures; i++) {
    int pad = w - (int)plot_text_width(s->figures[i].name);
    fprintf(f, "  %s%*s %s\n", s->figures[i].name, pad, "", s->figures[i].value);
  }
}

void report_print(FILE *f, const report_run *r) {
  const rt_snapshot *s = r->run;
  char a[24], b[24], c[24], k[16];
  fprintf(f, "\n-- gilvm report --------------------------------------------------------------\n");
  fprintf(f, "  mode %s   gil %s   switch interval %s", rt_mode_names[r->mode], r->policy,
          clock_format(r->interval_ns, a, sizeof a));
  if (r->check_interval > 0) fprintf(f, "   check interval %d", r->check_interval);
  if (s->sim_cores) { /* the cost model, and what the simulation does not cover */
    fprintf(f, "\n  simulated (--sim): %d virtual cores   seed %llu   a Lua instruction %g ns", s->sim_cores,
            (unsigned long long)s->sim_seed, s->sim_insn_ns);
    fprintf(f, "\n  OS costs (--sim-cost):");
    for (int i = 0; i < sim_cost_count(); i++) { /* a table in sim.c: every cost, in three lines */
      fprintf(f, i == 0 ? " " : i == 4 || i == 12 ? "\n  " : "   ");
      fprintf(f, "%s %s", sim_cost_name(i), clock_format(sim_cost((sim_cost_id)i), a, sizeof a));
    }
    fprintf(f,
            "\n  (gil.compute, gil.native and gil.sleep take exactly their s; all times below are virtual;"
            "\n  host, not simulated: real time %s, peak memory %s)",
            clock_format(s->real_wall_ns, b, sizeof b), bytes((unsigned long long)r->maxrss_kb << 10, c, sizeof c));
  }
  fprintf(f, "\n  wall %s%s%s   cpu %s   parallelism %s%.2fx%s", on(r, BOLD, k, sizeof k),
          clock_format(r->wall_ns, a, sizeof a), off(r), clock_format(r->cpu_ns, b, sizeof b), on(r, BOLD, k, sizeof k),
          r->parallelism, off(r));
  if (r->workers) fprintf(f, "   overlap %s%.2fx%s", on(r, BOLD, k, sizeof k), r->overlap, off(r));
  fputc('\n', f);
  if (r->workers) /* said once: parallelism counts CPU, overlap counts lives (I/O waits too) */
    fprintf(f, "  (parallelism: CPU time / wall; overlap: the workers' lives, spawn to end, summed / wall)\n");
  print_gil(f, r);
  if (r->workers && s->sim_cores) /* peak memory is the host's: in the header */
    fprintf(f, "  workers %d   start-up %s each (mean)   copied %s\n", r->workers, dur(r->startup_ns, a, sizeof a),
            bytes(r->bytes_copied, b, sizeof b));
  else if (r->workers)
    fprintf(f, "  workers %d   start-up %s each (mean)   copied %s   peak memory %s\n", r->workers,
            dur(r->startup_ns, a, sizeof a), bytes(r->bytes_copied, b, sizeof b),
            bytes((unsigned long long)r->maxrss_kb << 10, c, sizeof c));
  if (r->stopped) fprintf(f, "  stopped: %s\n", r->stopped);
  fprintf(f, "\n  %-22s %-11s %9s %9s %9s %7s %7s %9s %9s %9s %9s\n", "worker", "kind", "cpu", "GIL held", "GIL wait",
          "acq", "forced", "blocked", "no-GIL", "io", "no CPU");
  for (int i = 0; i < s->nworkers && i < REPORT_ROWS; i++) print_worker(f, r, &s->workers[i]);
  print_rest(f, s);
  print_disturbed(f, r);
  print_figures(f, s);
  print_dropped(f, s, r);
  if (r->timeline) timeline_print_ascii_color(r->timeline, f, r->timeline_width, r->color);
  fprintf(f, "-------------------------------------------------------------------------------\n");
}

/* ---- JSON ---- */

static json_t *json_worker(const snap_worker *w) {
  return json_pack(
      "{s:o, s:s, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:b}", "name", jsonio_string(w->name), "kind",
      w->kind == SNAP_PROCESS          ? "process"
          : w->kind == SNAP_OWN_INTERP ? "free"
                                       : "thread",
      "cpu_s", jsonio_seconds(w->cpu_ns), "gil_held_s", jsonio_seconds(w->hold_ns), "gil_wait_s",
      jsonio_seconds(w->wait_ns), "acquisitions", (json_int_t)w->acquisitions, "forced_drops",
      (json_int_t)w->forced_drops, "blocked_s", jsonio_seconds(w->blocked_ns), "nogil_s", jsonio_seconds(w->nogil_ns),
      "io_s", jsonio_seconds(w->io_ns), "startup_s", jsonio_seconds(w->startup_ns), "failed", w->failed != 0);
}

/* A worker's life and its wait for a CPU (null when the kernel did not say). */
static json_t *with_runq(json_t *o, const snap_worker *w) {
  if (o &&
      (json_object_set_new(o, "in_flight_s", jsonio_seconds(w->inflight_ns)) ||
       json_object_set_new(o, "runq_wait_s", w->runq_known ? jsonio_seconds(w->runq_ns) : json_null()) ||
       json_object_set_new(o, "disturbed", json_boolean(report_disturbed(w))))) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* Workers whose records were freed after join: only their sums remain. */
static json_t *json_released(const rt_totals *t) {
  return json_pack("{s:i, s:i, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "workers", t->n, "failed",
                   t->failed, "cpu_s", jsonio_seconds(t->cpu_ns), "gil_held_s", jsonio_seconds(t->hold_ns),
                   "gil_wait_s", jsonio_seconds(t->wait_ns), "acquisitions", (json_int_t)t->acquisitions,
                   "forced_drops", (json_int_t)t->forced_drops, "blocked_s", jsonio_seconds(t->blocked_ns), "nogil_s",
                   jsonio_seconds(t->nogil_ns), "io_s", jsonio_seconds(t->io_ns), "startup_s",
                   jsonio_seconds(t->startup_ns), "in_flight_s", jsonio_seconds(t->inflight_ns), "runq_wait_s",
                   jsonio_seconds(t->runq_ns));
}

/* The script's figures, in the order it reported them. */
static json_t *json_figures(const rt_snapshot *s) {
  json_t *o = json_object();
  for (int i = 0; o && i < s->nfigures; i++)
    if (jsonio_set(o, s->figures[i].name, jsonio_figure(s->figures[i].value)) != 0) {
      json_decref(o);
      o = NULL;
    }
  return o;
}

int report_json(const char *path, const report_run *r) {
  const rt_snapshot *s = r->run;
  const gil_stats *g = &r->gil;
  json_t *threads = json_array();
  for (int i = 0; threads && i < s->nworkers; i++)
    if (json_array_append_new(threads, with_runq(json_worker(&s->workers[i]), &s->workers[i])) != 0) {
      json_decref(threads);
      threads = NULL;
    }
  json_t *o = json_pack(
      "{s:s, s:s, s:o, s:i, s:o, s:o, s:f, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:i, s:o, s:I, s:I}",
      "mode", rt_mode_names[r->mode], "gil", r->policy, "switch_interval_s", jsonio_seconds(r->interval_ns),
      "check_interval", r->check_interval, "wall_s", jsonio_seconds(r->wall_ns), "cpu_s", jsonio_seconds(r->cpu_ns),
      "parallelism", round(r->parallelism * 1e4) / 1e4, /* as the report prints it, and more */
      "gil_held_s", jsonio_seconds(g->held_ns), "gil_wait_s", jsonio_seconds(g->wait_ns), "gil_contended_s",
      jsonio_seconds(g->contended_ns), "acquisitions", (json_int_t)g->acquisitions, "switches", (json_int_t)g->switches,
      "forced_switches", (json_int_t)g->forced_switches, "drop_requests", (json_int_t)g->drop_requests, "handoffs",
      (json_int_t)g->handoffs, "handoff_median_s", jsonio_seconds(g->handoff_median_ns), "handoff_p99_s",
      jsonio_seconds(g->handoff_p99_ns), "handoff_max_s", jsonio_seconds(g->handoff_max_ns), "workers", r->workers,
      "startup_s", jsonio_seconds(r->startup_ns), "bytes_copied", (json_int_t)r->bytes_copied, "peak_memory_kb",
      (json_int_t)r->maxrss_kb);
  int ok = o != NULL;
  if (ok && r->recorded) ok = !json_object_set_new(o, "events_dropped", json_integer((json_int_t)r->events_dropped));
  if (ok) ok = !json_object_set_new(o, "overlap", json_real(round(r->overlap * 1e4) / 1e4));
  if (ok) ok = !json_object_set_new(o, "in_flight_s", jsonio_seconds(r->inflight_ns));
  if (ok) ok = !json_object_set_new(o, "runq_wait_s", jsonio_seconds(r->runq_ns));
  if (ok) ok = !json_object_set_new(o, "disturbed", json_boolean(r->disturbed));
  if (ok) ok = !json_object_set_new(o, "cpus", json_integer(r->cpus));
  if (ok) ok = !json_object_set_new(o, "stopped", r->stopped ? jsonio_string(r->stopped) : json_null());
  if (ok) ok = !json_object_set_new(o, "figures", json_figures(s));
  if (ok)
    ok = !json_object_set_new(o, "threads", threads);
  else
    json_decref(threads);
  if (ok) ok = !json_object_set_new(o, "released", json_released(&s->released));
  if (ok && s->sim_cores) { /* "simulated": the cost model; "host": what differs between runs */
    json_object_del(o, "peak_memory_kb");
    json_t *sim =
        json_pack("{s:i, s:I, s:f, s:o, s:i}", "cores", s->sim_cores, "seed", (json_int_t)s->sim_seed, "insn_ns",
                  s->sim_insn_ns, "wake_s", jsonio_seconds(s->sim_wake_ns), "tick_insns", s->sim_tick);
    json_t *costs = json_object(); /* "costs": {name: seconds}, every entry of sim.c's table */
    for (int i = 0; ok && costs && i < sim_cost_count(); i++)
      ok = !json_object_set_new(costs, sim_cost_name(i), jsonio_seconds(sim_cost((sim_cost_id)i)));
    ok = ok && sim && costs && !json_object_set_new(sim, "costs", costs);
    if (!ok) json_decref(costs);
    ok = ok && !json_object_set_new(o, "simulated", sim) &&
        !json_object_set_new(o, "host",
                             json_pack("{s:I, s:o}", "peak_memory_kb", (json_int_t)r->maxrss_kb, "real_wall_s",
                                       jsonio_seconds(s->real_wall_ns)));
  }
  if (!ok) { /* out of memory: no file rather than one missing keys */
    json_decref(o);
    o = NULL;
  }
  return jsonio_write(path, o);
}
