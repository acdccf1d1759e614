/*
 * sweep.c — `gilvm sweep`: what the switch interval (and the GIL policy)
 * does to one script.
 *
 * Each (policy, interval) pair runs in a fresh gilvm process, exactly as
 * `compare` runs each mode (vm/cli/child.c: `gilvm run -q --json PIPE`),
 * so no run inherits another's threads, caches or heap. The figures are
 * read back from each run's JSON, never re-measured here.
 *
 * The table has one row per run, in the order asked for (policies outer,
 * intervals inner), the GIL's own figures first and the script's
 * gil.report() figures as extra columns: the script knows what matters to
 * it (convoy.lua: the I/O thread's extra latency), and that column is
 * usually the one worth reading. Only the first run's stdout is echoed:
 * the same lines N times would bury the table.
 *
 * The SVG is small multiples: one panel per figure, interval on a log x
 * axis (intervals are chosen by factors, 0.1 ms to 100 ms), one line per
 * policy. y is linear from zero, so that heights compare honestly, unless
 * a figure spans a factor of 50 or more (latency against interval usually
 * does): then it is log too, and a figure proportional to the interval
 * reads as a straight diagonal.
 */
#include "sweep.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "clock.h"
#include "compare.h"
#include "gil.h"
#include "jsonio.h"
#include "outfile.h"
#include "plot.h"

typedef struct sweep_run {
  const char *policy;
  const char *interval; /* as the user wrote it */
  uint64_t interval_ns;
  child_run child;
} sweep_run;

typedef struct sweep {
  const cli_options *o;
  sweep_run *runs;
  int nruns;
  int ndone; /* runs that ran (fewer if stopped): the table and JSON show these */
  char *figures[32]; /* the script's figure names, from the first run that has any */
  int nfigures;
} sweep;

/* ---------------------------------------------------------------- running */

/* gilvm -m MODE -g POLICY -s INTERVAL [--check-interval N] <forwarded options> -- script args */
static int run_one(int argc, char **argv, const cli_options *o, sweep_run *r) {
  const char *av[CHILD_ARGV_MAX];
  char check[16];
  const char *extra[7] = { "-g", r->policy, "-s", r->interval, NULL };
  if (o->check_interval && gil_policy_find(r->policy)->default_check_interval > 0) {
    snprintf(check, sizeof check, "%d", o->check_interval);
    extra[4] = "--check-interval";
    extra[5] = check;
  }
  child_argv(av, argc, argv, o, rt_mode_names[o->mode], extra);
  return child_run_gilvm((char *const *)av, &r->child);
}

static double num(const sweep_run *r, const char *key) { return jsonio_number(r->child.json, key); }

/* A figure of the script's as a number; NAN if missing or not a number. */
static double figure_value(const sweep_run *r, const char *name) {
  json_t *v = json_object_get(json_object_get(r->child.json, "figures"), name);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

static void find_figures(sweep *s) {
  for (int i = 0; i < s->ndone && s->nfigures == 0; i++)
    s->nfigures = compare_json_figure_names(s->runs[i].child.json, s->figures, 32);
}

/* ------------------------------------------------------------------ table */

static const char *dur_s(double s, char *buf, size_t len) {
  return s > 0 ? clock_format((uint64_t)llround(s * 1e9), buf, len) : "-";
}

static int figure_width(const char *name) { return strlen(name) > 10 ? (int)strlen(name) : 10; }

static void print_header(FILE *f, const sweep *s) {
  fprintf(f, "\n  %-8s %9s %10s %10s %8s %12s %12s %10s %4s", "policy", "interval", "wall", "switch/s", "forced",
          "handoff med", "handoff p99", "GIL wait", "exit");
  for (int k = 0; k < s->nfigures; k++) {
    char *shown = compare_printable(strdup(s->figures[k]));
    fprintf(f, "  %*s", figure_width(s->figures[k]), shown ? shown : "?");
    free(shown);
  }
  fputc('\n', f);
}

static void print_row(FILE *f, const sweep *s, const sweep_run *r) {
  char a[24], b[24], c[24], d[24], e[24];
  fprintf(f, "  %-8s %9s", r->policy, clock_format(r->interval_ns, a, sizeof a));
  if (!r->child.json) {
    fprintf(f, "   (no figures: the run exited with status %d)\n", r->child.status);
    return;
  }
  double wall = num(r, "wall_s"), handoffs = num(r, "handoffs");
  fprintf(f, " %10s %10.0f %8.0f %12s %12s %10s %4d", dur_s(wall, b, sizeof b),
          wall > 0 ? num(r, "switches") / wall : 0.0, num(r, "forced_switches"),
          handoffs > 0 ? dur_s(num(r, "handoff_median_s"), c, sizeof c) : "-",
          handoffs > 0 ? dur_s(num(r, "handoff_p99_s"), d, sizeof d) : "-", dur_s(num(r, "gil_wait_s"), e, sizeof e),
          r->child.status);
  for (int k = 0; k < s->nfigures; k++) {
    char *v = compare_json_figure(r->child.json, s->figures[k]);
    int w = figure_width(s->figures[k]);
    fprintf(f, "  %*.*s", w, w, v ? v : "-");
    free(v);
  }
  fputc('\n', f);
}

static void print_table(FILE *f, const sweep *s) {
  const cli_options *o = s->o;
  fprintf(f, "\n-- gilvm sweep: %s (mode %s, each run in a fresh process) ", o->script, rt_mode_names[o->mode]);
  fprintf(f, "----------\n");
  print_header(f, s);
  for (int i = 0; i < s->ndone; i++) print_row(f, s, &s->runs[i]);
  if (s->ndone < s->nruns) fprintf(f, "  (stopped: %d of %d runs not run)\n", s->nruns - s->ndone, s->nruns);
  fprintf(f,
          "\n  switch/s: switches per second of wall time; forced: switches that followed a drop\n"
          "  request; handoff: from the drop request to the next thread running; GIL wait:\n"
          "  summed over threads. stdout above is the first run's (-g %s -s %s).\n",
          s->runs[0].policy, s->runs[0].interval);
  for (int k = 0; k < o->policies.n; k++)
    if (!gil_policy_find(o->policies.item[k])->interval_is)
      fprintf(f, "  %s has no timed wait: it ignores the interval (its rows differ by noise only).\n",
              o->policies.item[k]);
  fprintf(f, "-------------------------------------------------------------------------------\n");
}

/* ------------------------------------------------------------------- JSON */

static int write_json(const char *path, const sweep *s) {
  json_t *runs = json_array();
  for (int i = 0; runs && i < s->ndone; i++) {
    const sweep_run *r = &s->runs[i];
    json_t *run = json_pack("{s:s, s:f, s:i, s:O?}", "policy", r->policy, "switch_interval_s",
                            (double)r->interval_ns / 1e9, "status", r->child.status, "report", r->child.json);
    if (json_array_append_new(runs, run) != 0) {
      json_decref(runs);
      runs = NULL;
    }
  }
  return jsonio_write(path,
                      json_pack("{s:o, s:s, s:o}", "script", jsonio_string(s->o->script), "mode",
                                rt_mode_names[s->o->mode], "runs", runs));
}

/* -------------------------------------------------------------------- SVG */

#define PANEL_W 470
#define PANEL_H 270
#define PANEL_COLS 2
#define GAP 24
#define PL 64 /* plot area inside a panel: left, right, top, bottom margins */
#define PR 16
#define PT 30
#define PB 46

typedef struct panel {
  const char *title;
  int is_time; /* values are seconds */
  double *v; /* per run; NAN: none */
} panel;

typedef struct xscale {
  double llo, lhi; /* log10 of the ends */
  double x0, x1;
} xscale;

static double xpos(const xscale *xs, double v) {
  return xs->x0 + (log10(v) - xs->llo) / (xs->lhi - xs->llo) * (xs->x1 - xs->x0);
}

static void x_axis(FILE *f, const xscale *xs, const sweep *s, double top, double bottom) {
  double lo = pow(10, xs->llo), hi = pow(10, xs->lhi);
  int decades = 0;
  for (double d = pow(10, floor(xs->llo)); d <= hi; d *= 10) {
    for (int m = 1; m < 10; m++) {
      double v = d * m;
      if (v < lo || v > hi) continue;
      fprintf(f, "<path d=\"M%.1f %.1fV%.1f\" stroke=\"%s\"/>\n", xpos(xs, v), top, bottom, m == 1 ? "#ccc" : "#eee");
      if (m != 1) continue;
      char lab[24];
      fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", xpos(xs, v), bottom + 16,
              plot_time_label(v, v, lab, sizeof lab));
      decades++;
    }
  }
  if (decades == 0) /* a narrow range: label the intervals themselves */
    for (int i = 0; i < s->o->intervals.n; i++) {
      double v = (double)s->o->interval_list_ns[i] / 1e9;
      fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", xpos(xs, v), bottom + 16);
      plot_svg_text(f, s->o->intervals.item[i]);
      fputs("</text>\n", f);
    }
}

typedef struct yscale {
  int log; /* values span a factor of 50 or more: log scale */
  double lo, hi; /* the ends (log: their log10) */
  double top, bottom; /* in pixels */
} yscale;

static double ypos(const yscale *ys, double v) {
  double u = ys->log ? log10(v) : v;
  return ys->bottom - (u - ys->lo) / (ys->hi - ys->lo) * (ys->bottom - ys->top);
}

static yscale y_scale(const panel *p, int n, double top, double bottom) {
  double most = 0, least = INFINITY;
  for (int i = 0; i < n; i++) {
    if (!isfinite(p->v[i])) continue;
    most = p->v[i] > most ? p->v[i] : most;
    least = p->v[i] < least ? p->v[i] : least;
  }
  yscale ys = { .top = top, .bottom = bottom, .lo = 0, .hi = most > 0 ? most * 1.1 : 1 };
  if (least > 0 && most / least >= 50) {
    ys.log = 1;
    ys.lo = floor(log10(least));
    ys.hi = ceil(log10(most));
  }
  return ys;
}

static void y_label(FILE *f, const panel *p, const yscale *ys, double x0, double x1, double v, double step) {
  char lab[24];
  double y = ypos(ys, v);
  fprintf(f, "<path d=\"M%.1f %.1fH%.1f\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
          x0, y, x1, x0 - 5, y + 4,
          p->is_time ? plot_time_label(v, step, lab, sizeof lab) : plot_number_label(v, lab, sizeof lab));
}

static void y_axis(FILE *f, const panel *p, const yscale *ys, double x0, double x1) {
  if (ys->log) {
    for (double e = ys->lo; e <= ys->hi + 1e-9; e++) y_label(f, p, ys, x0, x1, pow(10, e), pow(10, e));
    return;
  }
  double step = plot_nice_step(ys->hi, 5);
  for (double v = 0; v <= ys->hi * (1 + 1e-9); v += step) y_label(f, p, ys, x0, x1, v, step);
}

/* One line per policy through its runs, in interval order. */
static void series(FILE *f, const sweep *s, const panel *p, const xscale *xs, const yscale *ys) {
  int per = s->o->intervals.n;
  for (int k = 0; k < s->o->policies.n; k++) {
    const char *color = plot_series_colors[k % plot_nseries_colors];
    int order[CLI_LIST_MAX];
    for (int i = 0; i < per; i++) order[i] = i;
    for (int i = 1; i < per; i++) /* insertion sort by interval */
      for (int j = i; j > 0 && s->runs[k * per + order[j]].interval_ns < s->runs[k * per + order[j - 1]].interval_ns;
           j--) {
        int t = order[j];
        order[j] = order[j - 1];
        order[j - 1] = t;
      }
    fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", color);
    int pen = 0;
    for (int i = 0; i < per; i++) {
      const sweep_run *r = &s->runs[k * per + order[i]];
      double v = p->v[k * per + order[i]];
      if (!isfinite(v) || (ys->log && v <= 0)) {
        pen = 0;
        continue;
      }
      fprintf(f, "%c%.1f %.1f", pen ? 'L' : 'M', xpos(xs, (double)r->interval_ns / 1e9), ypos(ys, v));
      pen = 1;
    }
    fputs("\"/>\n", f);
    for (int i = 0; i < per; i++) {
      const sweep_run *r = &s->runs[k * per + i];
      double v = p->v[k * per + i];
      if (isfinite(v) && (!ys->log || v > 0))
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", xpos(xs, (double)r->interval_ns / 1e9),
                ypos(ys, v), color);
    }
  }
}

static void draw_panel(FILE *f, const sweep *s, const panel *p, xscale xs, double px, double py) {
  double top = py + PT, bottom = py + PANEL_H - PB;
  xs.x0 = px + PL;
  xs.x1 = px + PANEL_W - PR;
  yscale ys = y_scale(p, s->nruns, top, bottom);
  fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"#fff\" stroke=\"#ddd\"/>\n", px, py,
          PANEL_W, PANEL_H);
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">", px + 10, py + 19);
  plot_svg_text(f, p->title);
  fprintf(f, "%s</text>\n", ys.log ? " (log scale)" : "");
  x_axis(f, &xs, s, top, bottom);
  y_axis(f, p, &ys, xs.x0, xs.x1);
  fprintf(f, "<path d=\"M%.1f %.1fV%.1fH%.1f\" fill=\"none\" stroke=\"#555\"/>\n", xs.x0, top, bottom, xs.x1);
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#555\">switch interval (log scale)</text>\n",
          (xs.x0 + xs.x1) / 2, bottom + 34);
  series(f, s, p, &xs, &ys);
}

static xscale interval_scale(const sweep *s) {
  double lo = INFINITY, hi = 0;
  for (int i = 0; i < s->o->intervals.n; i++) {
    double v = (double)s->o->interval_list_ns[i] / 1e9;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  if (hi <= lo * 1.0001) lo /= 2, hi *= 2;
  double pad = (log10(hi) - log10(lo)) * 0.06;
  return (xscale){ .llo = log10(lo) - pad, .lhi = log10(hi) + pad };
}

/* The figures to plot: the GIL's, then each numeric figure of the script's. */
static int make_panels(const sweep *s, panel *pn, int max) {
  static const struct {
    const char *title, *key;
    int is_time;
  } gil_figs[] = {
    { "wall time", "wall_s", 1 },
    { "switches per second", NULL, 0 },
    { "handoff latency, median", "handoff_median_s", 1 },
    { "GIL wait (all threads)", "gil_wait_s", 1 },
  };
  int n = 0;
  for (int g = 0; g < 4 && n < max; g++, n++) {
    pn[n] = (panel){ .title = gil_figs[g].title,
                     .is_time = gil_figs[g].is_time,
                     .v = calloc((size_t)s->nruns, sizeof(double)) };
    for (int i = 0; i < s->nruns && pn[n].v; i++) {
      const sweep_run *r = &s->runs[i];
      double v = !r->child.json ? NAN
          : gil_figs[g].key     ? num(r, gil_figs[g].key)
                                : num(r, "switches") / num(r, "wall_s");
      if (g == 2 && num(r, "handoffs") == 0) v = NAN; /* no forced handoff: no latency to plot */
      pn[n].v[i] = isfinite(v) ? v : NAN;
    }
  }
  for (int k = 0; k < s->nfigures && n < max; k++) {
    pn[n] = (panel){ .title = s->figures[k], .is_time = 0, .v = calloc((size_t)s->nruns, sizeof(double)) };
    int numeric = 0;
    for (int i = 0; i < s->nruns && pn[n].v; i++)
      numeric |= isfinite(pn[n].v[i] = figure_value(&s->runs[i], s->figures[k]));
    if (numeric)
      n++;
    else
      free(pn[n].v);
  }
  return n;
}

static void svg_legend(FILE *f, const sweep *s, double y) {
  double x = GAP;
  for (int k = 0; k < s->o->policies.n; k++) {
    const char *c = plot_series_colors[k % plot_nseries_colors];
    fprintf(f,
            "<path d=\"M%.1f %.1fh22\" stroke=\"%s\" stroke-width=\"2\"/><circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
            "fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
            x, y, c, x + 11, y, c, x + 28, y + 4, s->o->policies.item[k]);
    x += 28 + 8 * (double)strlen(s->o->policies.item[k]) + 24;
  }
}

static int write_svg(const char *path, const sweep *s) {
  panel pn[40];
  int n = make_panels(s, pn, 40);
  int rows = (n + PANEL_COLS - 1) / PANEL_COLS;
  int width = PANEL_COLS * PANEL_W + (PANEL_COLS + 1) * GAP, height = 80 + rows * (PANEL_H + GAP);
  outfile out;
  FILE *f = outfile_open(&out, path);
  if (!f) {
    for (int i = 0; i < n; i++) free(pn[i].v);
    return -1;
  }
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
          "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
          "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n",
          width, height, width, height);
  fprintf(f, "<text x=\"%d\" y=\"28\" font-size=\"15\" font-weight=\"bold\">gilvm sweep: ", GAP);
  plot_svg_text(f, s->o->script);
  fprintf(f, " (mode %s)</text>\n", rt_mode_names[s->o->mode]);
  svg_legend(f, s, 52);
  xscale xs = interval_scale(s);
  for (int i = 0; i < n; i++) {
    draw_panel(f, s, &pn[i], xs, GAP + (i % PANEL_COLS) * (PANEL_W + GAP), 70 + (i / PANEL_COLS) * (PANEL_H + GAP));
    free(pn[i].v);
  }
  fputs("</svg>\n", f);
  return outfile_close(&out);
}

/* ------------------------------------------------------------------- main */

int sweep_main(int argc, char **argv, const cli_options *o) {
  sweep s = { .o = o, .nruns = o->policies.n * o->intervals.n };
  s.runs = calloc((size_t)s.nruns, sizeof *s.runs);
  if (!s.runs) return 1;
  int rc = 0;
  child_signals_init();
  for (int i = 0; i < s.nruns && !child_stopped(); i++) {
    sweep_run *r = &s.runs[i];
    r->policy = o->policies.item[i / o->intervals.n];
    r->interval = o->intervals.item[i % o->intervals.n];
    r->interval_ns = o->interval_list_ns[i % o->intervals.n];
    if (!o->quiet) fprintf(stderr, "gilvm sweep: run %d/%d: -g %s -s %s...\n", i + 1, s.nruns, r->policy, r->interval);
    if (run_one(argc, argv, o, r) != 0) {
      fprintf(stderr, "gilvm: cannot run %s: %s\n", argv[0], strerror(errno));
      rc = 1;
      break;
    }
    s.ndone = i + 1;
    rc = child_fold_status(rc, r->child.status);
  }
  int stop = child_stopped();
  if (s.ndone > 0) {
    if (s.runs[0].child.out) fputs(s.runs[0].child.out, stdout);
    fflush(stdout);
    find_figures(&s);
    if (!o->quiet) print_table(stderr, &s);
    const char *path = o->json_path;
    int failed = path && write_json(path, &s) != 0;
    if (!failed && o->svg_path && write_svg(path = o->svg_path, &s) != 0) failed = 1;
    if (failed) fprintf(stderr, "gilvm: cannot write %s: %s\n", outfile_name(path), strerror(errno));
    if (failed && rc == 0) rc = EXIT_SCRIPT_ERROR;
  }
  if (stop) {
    fprintf(stderr, "gilvm: stopped: %s\n", child_stop_reason());
    rc = stop;
  }
  for (int i = 0; i < s.nruns; i++) child_run_free(&s.runs[i].child);
  for (int k = 0; k < s.nfigures; k++) free(s.figures[k]);
  free(s.runs);
  return rc;
}
