/*
 * report.c — the run report. Every figure is measured: wall and CPU from
 * the clocks, GIL figures from the GIL's own counters (gil_stats_get), per
 * thread figures from each worker's gil_thread and its CPU clock.
 */
#include "report.h"

#include <string.h>

#include "clock.h"

static double pct(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static const char *dur(uint64_t ns, char *buf, size_t len) {
  return ns ? clock_format(ns, buf, len) : "-";
}

static void print_thread(FILE *f, const rt_worker *w) {
  char cpu[24], held[24], wait[24], blocked[24], nogil[24];
  fprintf(f, "  %-22.22s %9s %9s %9s %7llu %7llu %9s %9s\n", w->name,
          dur(w->cpu_ns, cpu, sizeof cpu), dur(w->gt.hold_ns, held, sizeof held),
          dur(w->gt.wait_ns, wait, sizeof wait), (unsigned long long)w->gt.acquisitions,
          (unsigned long long)w->gt.forced_drops, dur(w->blocked_ns, blocked, sizeof blocked),
          dur(w->free_ns, nogil, sizeof nogil));
}

void report_print(FILE *f, runtime *rt) {
  gil_stats st;
  rt_gil_stats(rt, &st);
  uint64_t wall = rt->end_ns - rt->start_ns;
  char a[24], b[24], c[24];
  fprintf(f, "\n-- gilvm report --------------------------------------------------------------\n");
  fprintf(f, "  mode %s   gil %s   switch interval %s", rt->mode, gil_policy_name(rt->interps[0]->gil),
          clock_format(gil_interval(rt->interps[0]->gil), a, sizeof a));
  if (gil_check_interval(rt->interps[0]->gil) > 0) fprintf(f, "   check interval %d", gil_check_interval(rt->interps[0]->gil));
  fprintf(f, "\n  wall %s   cpu %s   parallelism %.2fx\n", clock_format(wall, a, sizeof a),
          clock_format(rt->cpu_ns, b, sizeof b), wall ? (double)rt->cpu_ns / (double)wall : 0.0);
  fprintf(f, "  GIL held %.1f%%   contended %.1f%%   switches %llu (forced %llu)   drop requests %llu\n",
          pct(st.held_ns, wall), pct(st.contended_ns, wall), (unsigned long long)st.switches,
          (unsigned long long)st.forced_switches, (unsigned long long)st.drop_requests);
  if (st.handoffs)
    fprintf(f, "  handoff latency   median %s   p99 %s   max %s   (%zu forced handoffs)\n",
            clock_format(st.handoff_median_ns, a, sizeof a), clock_format(st.handoff_p99_ns, b, sizeof b),
            clock_format(st.handoff_max_ns, c, sizeof c), st.handoffs);
  else
    fprintf(f, "  handoff latency   - (no forced handoffs)\n");
  if (rt->stop) fprintf(f, "  stopped: %s\n", rt->stop_reason);
  fprintf(f, "\n  %-22s %9s %9s %9s %7s %7s %9s %9s\n", "thread", "cpu", "GIL held", "GIL wait",
          "acq", "forced", "blocked", "no-GIL");
  for (int i = 0; i < rt->nworkers; i++) print_thread(f, rt->workers[i]);
  if (rt->nfigures) {
    fprintf(f, "\n  script figures\n");
    for (int i = 0; i < rt->nfigures; i++)
      fprintf(f, "  %-22s %s\n", rt->figures[i].name, rt->figures[i].value);
  }
  fprintf(f, "-------------------------------------------------------------------------------\n");
}
