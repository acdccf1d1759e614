/*
 * timeline.c — where every thread was at every moment of a run, drawn three
 * ways from one model.
 *
 * The model: when the run is over, each worker's event buffer (events.h) is
 * replayed into a track of slices (state, from, to) and marks (drop
 * requests, forced drops). Idle time is a gap, not a slice. Forced switches
 * (a take by another thread right after a forced drop: exactly what the GIL
 * counts as forced_switches) are derived by merging the tracks that
 * share the main GIL in time order; so is the number of waiters. A buffer
 * that filled up (EV_CAP) leaves its track "unknown" after its last event,
 * and every drawing says so instead of inventing what followed.
 *
 * The drawings:
 * - Chrome trace-event JSON: exact. One "X" slice per state with ns
 *   precision (ts and dur in microseconds with three decimals, written from
 *   integers so a slice ends exactly where the next begins), "i" instants
 *   for marks, a "C" counter of GIL waiters, "M" metadata naming each
 *   process and thread as the report does. Perfetto and chrome://tracing
 *   open it as it is.
 * - ASCII and SVG: a fixed number of time buckets per track (columns, or
 *   half pixels); each bucket shows the state that took most of it. That
 *   is David Beazley's GIL picture, it keeps the output the size of the
 *   screen whatever the run's length, and a sliver that took less than
 *   half a bucket honestly does not show. Forced drops are marked apart
 *   (a '!' row, ticks above a lane) so they never hide a state. The ASCII
 *   chart ends with each thread's exact time per state, which the buckets
 *   round away; the SVG gives the same totals as a tooltip on each name.
 */
#include "timeline.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "clock.h"
#include "jsonio.h"
#include "outfile.h"
#include "plot.h"

#define UNKNOWN ST_NSTATES /* pseudo-state: events were lost */

/* ------------------------------------------------------------- building */

static void add_slice(tl_track *t, uint64_t t0, uint64_t t1, ev_state s) {
  if (t1 <= t0 || s == ST_IDLE) return;
  t->slices[t->nslices++] = (tl_slice){ .t0 = t0, .t1 = t1, .state = s };
  t->state_ns[s] += t1 - t0;
}

static void add_mark(tl_track *t, uint64_t at, tl_mark_kind kind, int other, uint64_t latency) {
  t->marks[t->nmarks++] = (tl_mark){ .t = at, .kind = kind, .other = other, .latency = latency };
}

/* Replay one worker's events. `track_of_id` maps worker ids to track indexes. */
static int replay(const snap_worker *w, uint64_t run_end, const int *track_of_id, int nids, tl_track *t) {
  const ev_buf *b = w->events;
  /* every event makes at most one slice or one mark; forced switches (one per take) come later */
  t->slices = malloc((b->n + 1) * sizeof *t->slices);
  t->marks = malloc((2 * (size_t)b->n + 1) * sizeof *t->marks);
  if (!t->slices || !t->marks) return -1;
  ev_state cur = ST_IDLE;
  uint64_t since = 0, last = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    const ev *e = &b->v[i];
    uint64_t at = e->t > last ? e->t : last; /* never backwards */
    last = at;
    if (e->kind == EV_STATE) {
      add_slice(t, since, at, cur);
      cur = e->state < ST_NSTATES ? (ev_state)e->state : ST_IDLE;
      since = at;
    } else if (e->kind == EV_FORCED_DROP) {
      add_mark(t, at, TL_FORCED_DROP, -1, 0);
    } else if (e->kind == EV_DROP_REQUEST) {
      int other = !t->is_process && e->arg >= 0 && e->arg < nids ? track_of_id[e->arg] : -1;
      add_mark(t, at, TL_DROP_REQUEST, other, 0);
    }
  }
  t->dropped = b->dropped;
  if (b->dropped) t->lost_from = last;
  add_slice(t, since, b->dropped ? last : (run_end > last ? run_end : last), cur);
  return 0;
}

/* ---- forced switches: merge the takes and drop requests of the main GIL ---- */

typedef enum gil_point_kind { GP_REQUEST, GP_FORCED_DROP, GP_TAKE } gil_point_kind;

typedef struct gil_point {
  uint64_t t;
  int track;
  gil_point_kind kind;
  uint64_t order; /* tie-break: stable (a forced drop sorts before a take at the same ns) */
} gil_point;

static int cmp_point(const void *a, const void *b) {
  const gil_point *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_mark(const void *a, const void *b) {
  const tl_mark *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? -1 : 1;
  return (int)x->kind - (int)y->kind;
}

/* As gil__acquired() counts it: a take by a thread other than the last holder
   right after a forced drop (the holder let go because it was asked; not one
   that blocked while a request was pending) is a forced switch. Its handoff
   latency runs from the drop request. */
static int derive_forced_switches(timeline *tl) {
  size_t n = 0;
  for (int k = 0; k < tl->ntracks; k++) {
    const tl_track *t = &tl->tracks[k];
    if (!t->shares_gil) continue;
    n += t->nslices + t->nmarks;
  }
  gil_point *p = malloc((n + 1) * sizeof *p);
  if (!p) return -1;
  size_t m = 0;
  for (int k = 0; k < tl->ntracks; k++) { /* marks first: they win ties with takes */
    const tl_track *t = &tl->tracks[k];
    if (!t->shares_gil) continue;
    for (size_t i = 0; i < t->nmarks; i++)
      if (t->marks[i].kind == TL_DROP_REQUEST || t->marks[i].kind == TL_FORCED_DROP) {
        gil_point_kind kind = t->marks[i].kind == TL_DROP_REQUEST ? GP_REQUEST : GP_FORCED_DROP;
        p[m] = (gil_point){ .t = t->marks[i].t, .track = k, .kind = kind, .order = m };
        m++;
      }
  }
  for (int k = 0; k < tl->ntracks; k++) {
    const tl_track *t = &tl->tracks[k];
    if (!t->shares_gil) continue;
    for (size_t i = 0; i < t->nslices; i++)
      if (t->slices[i].state == ST_RUN_GIL) {
        p[m] = (gil_point){ .t = t->slices[i].t0, .track = k, .kind = GP_TAKE, .order = m };
        m++;
      }
  }
  qsort(p, m, sizeof *p, cmp_point);
  int last_holder = -1, forced = 0;
  uint64_t requested_at = 0;
  for (size_t i = 0; i < m; i++) {
    if (p[i].kind == GP_REQUEST) {
      requested_at = p[i].t;
    } else if (p[i].kind == GP_FORCED_DROP) {
      forced = 1;
    } else {
      if (forced && last_holder >= 0 && last_holder != p[i].track)
        add_mark(&tl->tracks[p[i].track], p[i].t, TL_FORCED_SWITCH, last_holder, p[i].t - requested_at);
      forced = 0;
      last_holder = p[i].track;
    }
  }
  free(p);
  for (int k = 0; k < tl->ntracks; k++) qsort(tl->tracks[k].marks, tl->tracks[k].nmarks, sizeof(tl_mark), cmp_mark);
  return 0;
}

/* Trace ids: the gilvm process is one pid; a forked worker is a pid of its own.
   Threads get tids above every pid, so no tid is mistaken for another process. */
static void assign_ids(timeline *tl) {
  long self = tl->simulated ? 1 : (long)getpid(), top = self; /* --sim: the same trace every run */
  for (int k = 0; k < tl->ntracks; k++)
    if (tl->tracks[k].is_process && tl->tracks[k].pid > top) top = tl->tracks[k].pid;
  for (int k = 0; k < tl->ntracks; k++) {
    tl_track *t = &tl->tracks[k];
    if (t->is_process)
      t->tid = t->pid;
    else {
      t->pid = self;
      t->tid = k == 0 ? self : top + k;
    }
  }
}

int timeline_build(const rt_snapshot *s, const char *script, timeline *tl) {
  memset(tl, 0, sizeof *tl);
  tl->t0 = s->start_ns;
  tl->simulated = s->sim_cores > 0;
  tl->t1 = s->end_ns > s->start_ns ? s->end_ns : clock_now_ns();
  char a[24];
  snprintf(tl->title, sizeof tl->title, "%s: mode %s, gil %s, switch interval %s", script ? script : "(-e)",
           rt_mode_names[s->mode], s->policy, clock_format(s->interval_ns, a, sizeof a));
  int nids = 0; /* worker ids: every track's, and what drop requests name */
  for (int i = 0; i < s->nworkers; i++)
    if (s->workers[i].id >= nids) nids = s->workers[i].id + 1;
  tl->tracks = calloc((size_t)s->nworkers + 1, sizeof *tl->tracks);
  int *track_of_id = malloc(((size_t)nids + 1) * sizeof *track_of_id);
  if (!tl->tracks || !track_of_id) {
    free(track_of_id);
    timeline_free(tl);
    return -1;
  }
  for (int i = 0; i < nids; i++) track_of_id[i] = -1;
  for (int i = 0; i < s->nworkers; i++) track_of_id[s->workers[i].id] = tl->ntracks++;
  int err = 0;
  for (int i = 0; i < s->nworkers && !err; i++) {
    const snap_worker *w = &s->workers[i];
    tl_track *t = &tl->tracks[i];
    t->name = w->name;
    t->is_process = w->kind == SNAP_PROCESS;
    t->shares_gil = w->kind == SNAP_THREAD;
    t->pid = t->is_process ? w->pid : 0;
    t->runq_ns = w->runq_ns;
    t->runq_known = w->runq_known;
    err = replay(w, tl->t1, track_of_id, nids, t);
    tl->dropped += t->dropped;
    for (size_t s = 0; s < t->nslices; s++)
      if (t->slices[s].t1 > tl->t1) tl->t1 = t->slices[s].t1;
  }
  free(track_of_id);
  if (!err) err = derive_forced_switches(tl);
  if (err) {
    timeline_free(tl);
    return -1;
  }
  assign_ids(tl);
  return 0;
}

void timeline_free(timeline *tl) {
  for (int k = 0; k < tl->ntracks; k++) {
    free(tl->tracks[k].slices);
    free(tl->tracks[k].marks);
  }
  free(tl->tracks);
  memset(tl, 0, sizeof *tl);
}

/* ----------------------------------------------------------- the trace */

/* Written through jansson (jsonio.h) one event at a time: a trace has an
   entry per state change, up to a million per thread, too many to hold as
   one tree. The two kinds most entries are, slices and waiter counts, are
   one object each, refilled for every entry: a new object per entry made
   writing the trace nearly twice as slow again. */
typedef struct trace_writer {
  jsonio_stream *j;
  const timeline *tl;
  json_t *slice, *slice_pid, *slice_tid, *slice_ts, *slice_dur; /* an "X" and its fields */
  json_t *state_names[ST_NSTATES];
  json_t *count, *count_ts, *count_n; /* a "C" and its fields */
} trace_writer;

/* Microseconds (the trace's unit) with the nanoseconds as three decimals. */
static double us(uint64_t ns) { return (double)ns / 1e3; }

static uint64_t rel(const timeline *tl, uint64_t t) { return t > tl->t0 ? t - tl->t0 : 0; }

static void writer_free(trace_writer *w) {
  json_decref(w->slice);
  json_decref(w->count);
  for (int s = 0; s < ST_NSTATES; s++) json_decref(w->state_names[s]);
}

/* 0, or -1 if out of memory. The objects hold the fields; w keeps borrowed pointers to them. */
static int writer_init(trace_writer *w, jsonio_stream *j, const timeline *tl) {
  memset(w, 0, sizeof *w);
  w->j = j;
  w->tl = tl;
  w->slice = json_pack("{s:s, s:s, s:o, s:o, s:s, s:o, s:o}", "name", "", "ph", "X", "pid",
                       w->slice_pid = json_integer(0), "tid", w->slice_tid = json_integer(0), "cat", "state", "ts",
                       w->slice_ts = json_real(0), "dur", w->slice_dur = json_real(0));
  const tl_track *first = &tl->tracks[0]; /* the counter sits on main's track */
  w->count = json_pack("{s:s, s:s, s:I, s:I, s:o, s:{s:o}}", "name", "GIL waiters", "ph", "C", "pid",
                       (json_int_t)first->pid, "tid", (json_int_t)first->tid, "ts", w->count_ts = json_real(0), "args",
                       "threads waiting", w->count_n = json_integer(0));
  int ok = w->slice && w->count;
  for (int s = 0; s < ST_NSTATES; s++) ok &= (w->state_names[s] = json_string(ev_state_names[s])) != NULL;
  if (!ok) writer_free(w);
  return ok ? 0 : -1;
}

/* {"name": <event>, "ph": <ph>, "pid": P, "tid": T}; the caller adds the rest. */
static json_t *trace_event(const char *name, const char *ph, const tl_track *t) {
  return json_pack("{s:s, s:s, s:I, s:I}", "name", name, "ph", ph, "pid", (json_int_t)t->pid, "tid",
                   (json_int_t)t->tid);
}

/* e with key: v added (takes both; NULL if either is: the stream then fails the file). */
static json_t *with(json_t *e, const char *key, json_t *v) {
  if (e && json_object_set_new(e, key, v) == 0) return e;
  if (!e) json_decref(v);
  json_decref(e);
  return NULL;
}

/* Metadata: a name (string) or a sort index (number). */
static void trace_meta(trace_writer *w, const char *what, const tl_track *t, const char *name, long index) {
  json_t *args =
      name ? json_pack("{s:o}", "name", jsonio_string(name)) : json_pack("{s:I}", "sort_index", (json_int_t)index);
  jsonio_stream_add(w->j, with(trace_event(what, "M", t), "args", args));
}

static void trace_names(trace_writer *w) {
  const timeline *tl = w->tl;
  char name[300];
  snprintf(name, sizeof name, "gilvm %s", tl->title);
  trace_meta(w, "process_name", &tl->tracks[0], name, 0);
  trace_meta(w, "process_sort_index", &tl->tracks[0], NULL, 0);
  for (int k = 0; k < tl->ntracks; k++) {
    const tl_track *t = &tl->tracks[k];
    if (t->is_process) {
      trace_meta(w, "process_name", t, t->name, 0);
      trace_meta(w, "process_sort_index", t, NULL, k);
    }
    trace_meta(w, "thread_name", t, t->name, 0);
    trace_meta(w, "thread_sort_index", t, NULL, k);
  }
}

/* An instant on t's thread, with args (may be NULL: none). */
static void trace_instant(trace_writer *w, const tl_track *t, uint64_t at, const char *name, json_t *args) {
  json_t *e = with(trace_event(name, "i", t), "cat", json_string("gil"));
  e = with(with(e, "s", json_string("t")), "ts", json_real(us(rel(w->tl, at))));
  jsonio_stream_add(w->j, args ? with(e, "args", args) : e);
}

static void trace_mark(trace_writer *w, const tl_track *t, const tl_mark *m) {
  const char *other = m->other >= 0 ? w->tl->tracks[m->other].name : "?";
  if (m->kind == TL_DROP_REQUEST)
    trace_instant(w, t, m->t, "drop request", json_pack("{s:o}", "holder", jsonio_string(other)));
  else if (m->kind == TL_FORCED_DROP)
    trace_instant(w, t, m->t, "forced drop", NULL);
  else
    trace_instant(w, t, m->t, "forced switch",
                  json_pack("{s:o, s:f}", "from", jsonio_string(other), "handoff_latency_us", us(m->latency)));
}

static void trace_track(trace_writer *w, const tl_track *t) {
  json_integer_set(w->slice_pid, t->pid);
  json_integer_set(w->slice_tid, t->tid);
  for (size_t i = 0; i < t->nslices; i++) {
    const tl_slice *s = &t->slices[i];
    uint64_t ts = rel(w->tl, s->t0);
    json_object_set(w->slice, "name", w->state_names[s->state]);
    json_real_set(w->slice_ts, us(ts));
    json_real_set(w->slice_dur, us(rel(w->tl, s->t1) - ts)); /* from integers: a slice ends where the next starts */
    jsonio_stream_add(w->j, json_incref(w->slice));
  }
  for (size_t i = 0; i < t->nmarks; i++) trace_mark(w, t, &t->marks[i]);
  if (t->lost_from)
    trace_instant(w, t, t->lost_from, "events lost from here", json_pack("{s:I}", "dropped", (json_int_t)t->dropped));
  if (t->runq_known && t->nslices) /* a total, not intervals: said where the thread ends */
    trace_instant(w, t, t->slices[t->nslices - 1].t1, "runnable without a CPU (total)",
                  json_pack("{s:f}", "runq_wait_ms", (double)t->runq_ns / 1e6));
}

typedef struct waiter_step {
  uint64_t t;
  int delta;
} waiter_step;

static int cmp_step(const void *a, const void *b) {
  const waiter_step *x = a, *y = b;
  return x->t < y->t ? -1 : x->t > y->t;
}

/* +1 / -1 at the start / end of every wait for the main GIL, in time order. */
static waiter_step *waiter_steps(const timeline *tl, size_t *n) {
  size_t cap = 0, m = 0;
  for (int k = 0; k < tl->ntracks; k++)
    if (tl->tracks[k].shares_gil) cap += 2 * tl->tracks[k].nslices;
  waiter_step *v = malloc((cap + 1) * sizeof *v);
  if (!v) return NULL;
  for (int k = 0; k < tl->ntracks; k++) {
    const tl_track *t = &tl->tracks[k];
    for (size_t i = 0; t->shares_gil && i < t->nslices; i++) {
      if (t->slices[i].state != ST_WAIT_GIL) continue;
      v[m++] = (waiter_step){ t->slices[i].t0, +1 };
      v[m++] = (waiter_step){ t->slices[i].t1, -1 };
    }
  }
  qsort(v, m, sizeof *v, cmp_step);
  *n = m;
  return v;
}

static void trace_waiters(trace_writer *w) {
  size_t n = 0;
  waiter_step *v = waiter_steps(w->tl, &n);
  if (!v) {
    jsonio_stream_add(w->j, NULL); /* out of memory: no trace rather than one without its counter */
    return;
  }
  int waiting = 0;
  for (size_t i = 0; i < n; i++) {
    waiting += v[i].delta;
    if (i + 1 < n && v[i + 1].t == v[i].t) continue; /* one value per instant */
    json_real_set(w->count_ts, us(rel(w->tl, v[i].t)));
    json_integer_set(w->count_n, waiting);
    jsonio_stream_add(w->j, json_incref(w->count));
  }
  free(v);
}

int timeline_write_trace(const timeline *tl, const char *path) {
  jsonio_stream *j = malloc(sizeof *j);
  json_t *head = json_pack("{s:s, s:{s:o, s:I}}", "displayTimeUnit", "ms", "otherData", "run", jsonio_string(tl->title),
                           "events_dropped", (json_int_t)tl->dropped);
  if (!j || !head || jsonio_stream_open(j, path, head, "traceEvents") != 0) {
    int e = j && head ? errno : ENOMEM;
    if (!j) json_decref(head);
    free(j);
    errno = e;
    return -1;
  }
  trace_writer w;
  if (tl->ntracks > 0 && writer_init(&w, j, tl) != 0) {
    jsonio_stream_add(j, NULL); /* out of memory: fails the file */
  } else if (tl->ntracks > 0) {
    trace_names(&w);
    for (int k = 0; k < tl->ntracks; k++) trace_track(&w, &tl->tracks[k]);
    trace_waiters(&w);
    writer_free(&w);
  }
  int rc = jsonio_stream_close(j);
  int e = errno;
  free(j);
  errno = e;
  return rc;
}

/* ------------------------------------------------------------- buckets */

/* occ[b * (ST_NSTATES + 1) + s]: ns of bucket b spent in state s (UNKNOWN: after events were lost). */
#define NOCC (ST_NSTATES + 1)

static uint64_t edge(uint64_t t0, uint64_t t1, int n, int b) { return t0 + (uint64_t)((double)(t1 - t0) * b / n); }

static void add_span(uint64_t *occ, uint64_t t0, uint64_t t1, int n, uint64_t a, uint64_t z, int state) {
  if (a < t0) a = t0;
  if (z > t1) z = t1;
  if (z <= a) return;
  int b = (int)((double)(a - t0) / (double)(t1 - t0) * n);
  if (b >= n) b = n - 1;
  while (b > 0 && edge(t0, t1, n, b) > a) b--;
  for (; b < n; b++) {
    uint64_t lo = edge(t0, t1, n, b), hi = edge(t0, t1, n, b + 1);
    if (lo >= z) break;
    uint64_t from = a > lo ? a : lo, to = z < hi ? z : hi;
    if (to > from) occ[(size_t)b * NOCC + state] += to - from;
  }
}

/* Fill occ (n * NOCC, zeroed here) for track t over [t0, t1). */
static void occupancy(const tl_track *t, uint64_t t0, uint64_t t1, int n, uint64_t *occ) {
  memset(occ, 0, (size_t)n * NOCC * sizeof *occ);
  if (t1 <= t0) return;
  for (size_t i = 0; i < t->nslices; i++)
    add_span(occ, t0, t1, n, t->slices[i].t0, t->slices[i].t1, t->slices[i].state);
  if (t->lost_from) add_span(occ, t0, t1, n, t->lost_from, t1, UNKNOWN);
}

/* The state that took most of bucket b: ST_IDLE when nothing did, UNKNOWN when lost. */
static int dominant(const uint64_t *occ, uint64_t t0, uint64_t t1, int n, int b) {
  const uint64_t *o = occ + (size_t)b * NOCC;
  uint64_t len = edge(t0, t1, n, b + 1) - edge(t0, t1, n, b), busy = 0;
  int best = ST_IDLE;
  for (int s = 0; s < NOCC; s++) {
    if (s == ST_IDLE) continue;
    busy += o[s];
    if (o[s] > 0 && (best == ST_IDLE || o[s] > o[best])) best = s;
  }
  uint64_t idle = len > busy ? len - busy : 0;
  return best != ST_IDLE && o[best] >= idle ? best : ST_IDLE;
}

/* Which buckets hold a mark of this kind. */
static void mark_buckets(const tl_track *t, tl_mark_kind kind, uint64_t t0, uint64_t t1, int n, char *hit) {
  for (size_t i = 0; i < t->nmarks; i++) {
    if (t->marks[i].kind != kind || t->marks[i].t < t0 || t1 <= t0) continue;
    int b = (int)((double)(t->marks[i].t - t0) / (double)(t1 - t0) * n);
    hit[b < n ? b : n - 1] = 1;
  }
}

/* ---------------------------------------------------------------- ASCII */

int timeline_terminal_width(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  const char *c = getenv("COLUMNS");
  long v = c ? strtol(c, NULL, 10) : 0;
  return v > 0 && v < 10000 ? (int)v : 100;
}

/* The time axis: "+----+----" under the chart's columns, then the labels that fit. */
static void ascii_axis(FILE *f, const timeline *tl, int indent, int cols) {
  double span = (double)(tl->t1 - tl->t0) / 1e9;
  double step = plot_nice_step(span, cols / 12 > 0 ? cols / 12 : 1);
  char *ticks = malloc((size_t)cols + 1), *labels = malloc((size_t)cols + 16);
  if (!ticks || !labels) {
    free(ticks);
    free(labels);
    return;
  }
  memset(ticks, '-', (size_t)cols);
  memset(labels, ' ', (size_t)cols + 15);
  ticks[cols] = '\0';
  int free_from = 0;
  for (double v = 0; v <= span * (1 + 1e-9); v += step) {
    int x = span > 0 ? (int)(v / span * cols) : 0;
    if (x >= cols) x = cols - 1;
    ticks[x] = '+';
    char lab[24];
    int len = (int)strlen(plot_time_label(v, step, lab, sizeof lab));
    if (x >= free_from && x + len <= cols + 1) {
      memcpy(labels + x, lab, (size_t)len);
      free_from = x + len + 2;
    }
  }
  labels[cols + 1] = '\0';
  while (cols >= 0 && labels[cols] == ' ') labels[cols--] = '\0';
  fprintf(f, "%*s%s\n%*s%s\n", indent + 1, "", ticks, indent + 1, "", labels);
  free(ticks);
  free(labels);
}

/* Legend items for the states present, wrapped to width. */
static void ascii_legend(FILE *f, const int *present, int forced, int width, int simulated) {
  char items[ST_NSTATES + 3][64];
  int n = 0;
  for (int s = 0; s < ST_NSTATES; s++)
    if (s != ST_IDLE && present[s]) snprintf(items[n++], 64, "%c %s", plot_state_chars[s], plot_state_legend[s]);
  if (present[UNKNOWN]) snprintf(items[n++], 64, "? events lost");
  if (forced) snprintf(items[n++], 64, "! forced drop");
  /* a real run cannot see its waits for a CPU one by one; a simulated one draws them ('c') */
  snprintf(items[n++], 64, simulated ? "(blank) idle" : "(blank) idle, or waiting for a CPU");
  int col = 0;
  for (int i = 0; i < n; i++) {
    int len = (int)strlen(items[i]);
    if (col > 0 && col + 3 + len > width) {
      fputc('\n', f);
      col = 0;
    }
    col += fprintf(f, "%s%s", col ? "   " : "  ", items[i]);
  }
  fputc('\n', f);
}

/* A state's colour on a terminal, by its chart character (ANSI SGR), or NULL. */
static const char *char_color(char ch) {
  switch (ch) {
  case '#': return "42;30"; /* holding the GIL: green blocks */
  case '=': return "46;30"; /* running on its own interpreter */
  case '.': return "31"; /* waiting for the GIL: red */
  case '!': return "1;31";
  case '~': return "35";
  case '?': return "2";
  case ' ': return NULL;
  default: return "34"; /* blocked: sleep, join, lock, queue */
  }
}

static void ascii_row(FILE *f, const char *name, int namew, const char *chart, int color) {
  fprintf(f, "  %-*.*s |", namew, namew, name);
  if (!color) {
    fputs(chart, f);
  } else {
    for (const char *p = chart; *p;) { /* a run of one character, in its colour */
      size_t n = strspn(p, (char[]){ *p, 0 });
      const char *c = char_color(*p);
      if (c) fprintf(f, "\033[%sm", c);
      fwrite(p, 1, n, f);
      if (c) fputs("\033[0m", f);
      p += n;
    }
  }
  fputs("|\n", f);
}

/* Time per state, per thread: the chart's figures. A column per state that occurs,
   as many as fit the width (states in the enum's order: running, waiting, blocked). */
static void ascii_totals(FILE *f, const timeline *tl, int namew, int width) {
  static const char *const heads[ST_NSTATES] = {
    [ST_RUN_GIL] = "# GIL held", [ST_RUN_OWN] = "= own int.", [ST_WAIT_GIL] = ". waiting",
    [ST_SLEEP] = "s sleep",      [ST_JOIN] = "j join",        [ST_LOCK] = "l lock",
    [ST_QUEUE] = "q queue",      [ST_NATIVE] = "~ C no GIL",  [ST_IO] = "i io",
  }; /* waiting for a CPU: the "no CPU" column, as in a real run */
  int cols[ST_NSTATES], ncols = 0, left_out = 0, room = (width - namew - 4) / 11;
  for (int s = 1; s < ST_NSTATES; s++) {
    if (!heads[s]) continue;
    int used = 0;
    for (int k = 0; k < tl->ntracks; k++) used |= tl->tracks[k].state_ns[s] > 0;
    if (used && ncols < room)
      cols[ncols++] = s;
    else
      left_out += used;
  }
  int runq = 0; /* the kernel's run-queue wait: the last column, when any was measured */
  for (int k = 0; k < tl->ntracks; k++) runq |= tl->tracks[k].runq_known;
  if (runq && ncols >= room && ncols > 0) ncols--, left_out++;
  fprintf(f, "\n  %-*.*s  ", namew, namew, "state totals");
  for (int c = 0; c < ncols; c++) fprintf(f, " %10s", heads[cols[c]]);
  if (runq) fprintf(f, " %10s", "no CPU");
  fputc('\n', f);
  for (int k = 0; k < tl->ntracks; k++) {
    const tl_track *t = &tl->tracks[k];
    fprintf(f, "  %-*.*s  ", namew, namew, t->name);
    for (int c = 0; c < ncols; c++) {
      char d[24];
      uint64_t ns = t->state_ns[cols[c]];
      fprintf(f, " %10s", ns ? clock_format(ns, d, sizeof d) : "-");
    }
    char d[24];
    if (runq) fprintf(f, " %10s", !t->runq_known ? "?" : t->runq_ns ? clock_format(t->runq_ns, d, sizeof d) : "-");
    fputc('\n', f);
  }
  if (left_out) fprintf(f, "  (%d more state%s: a wider terminal shows them)\n", left_out, left_out > 1 ? "s" : "");
}

void timeline_print_ascii(const timeline *tl, FILE *f, int width) { timeline_print_ascii_color(tl, f, width, 0); }

void timeline_print_ascii_color(const timeline *tl, FILE *f, int width, int color) {
  if (tl->ntracks == 0) return;
  if (width < 40) width = 40;
  int namew = 12;
  for (int k = 0; k < tl->ntracks; k++)
    if ((int)strlen(tl->tracks[k].name) > namew) namew = (int)strlen(tl->tracks[k].name);
  if (namew > 20) namew = 20;
  if (namew > width / 4) namew = width / 4;
  int cols = width - namew - 5; /* "  " name " |" chart "|" */
  char *chart = malloc((size_t)cols + 1), *forced = calloc((size_t)cols, 1);
  uint64_t *occ = malloc((size_t)cols * NOCC * sizeof *occ);
  if (!chart || !forced || !occ) {
    free(chart);
    free(forced);
    free(occ);
    return;
  }
  char a[24], b[24], head[160];
  uint64_t span = tl->t1 - tl->t0;
  snprintf(head, sizeof head, "  timeline: 1 column = %s, %s in all", clock_format(span / (uint64_t)cols, a, sizeof a),
           clock_format(span, b, sizeof b));
  fprintf(f, "\n%.*s\n", width, head);
  int present[NOCC] = { 0 }, any_forced = 0;
  for (int k = 0; k < tl->ntracks; k++) {
    const tl_track *t = &tl->tracks[k];
    occupancy(t, tl->t0, tl->t1, cols, occ);
    for (int c = 0; c < cols; c++) {
      int s = dominant(occ, tl->t0, tl->t1, cols, c);
      present[s] = 1;
      chart[c] = s == UNKNOWN ? '?' : plot_state_chars[s];
    }
    chart[cols] = '\0';
    ascii_row(f, t->name, namew, chart, color);
    mark_buckets(t, TL_FORCED_DROP, tl->t0, tl->t1, cols, forced);
  }
  for (int c = 0; c < cols; c++) {
    chart[c] = forced[c] ? '!' : ' ';
    any_forced |= forced[c];
  }
  if (any_forced) ascii_row(f, "forced drops", namew, chart, color);
  ascii_axis(f, tl, namew + 3, cols);
  ascii_legend(f, present, any_forced, width, tl->simulated);
  ascii_totals(f, tl, namew, width);
  free(chart);
  free(forced);
  free(occ);
}

/* ------------------------------------------------------------------ SVG */

#define SVG_W 1200
#define LANE_H 26
#define BAR_H 16
#define BAR_TOP 7 /* from the top of a lane to its bar: room for the marks */
#define WAITERS_H 44 /* the GIL-waiters lane */
#define MAX_RECTS 50000

typedef struct svg_frame {
  double x0, x1; /* the plot area, horizontally */
  double lanes_top;
  int nbuckets;
} svg_frame;

static void svg_legend_item(FILE *f, double *x, double y, const char *fill, const char *label, int tick) {
  if (tick)
    fprintf(f, "<path d=\"M%.1f %.1fv8\" stroke=\"#111\" stroke-width=\"2\"/>\n", *x + 6, y + 2);
  else
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", *x, y, fill);
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", *x + 17, y + 10);
  plot_svg_text(f, label);
  fputs("</text>\n", f);
  *x += 17 + 6.6 * (double)strlen(label) + 18;
}

/* States present in any track, forced drops, lost events: one line (two if needed). */
static double svg_legend(FILE *f, const timeline *tl, double y) {
  int present[ST_NSTATES] = { 0 }, forced = 0;
  for (int k = 0; k < tl->ntracks; k++) {
    for (int s = 0; s < ST_NSTATES; s++) present[s] |= tl->tracks[k].state_ns[s] > 0;
    for (size_t i = 0; i < tl->tracks[k].nmarks; i++) forced |= tl->tracks[k].marks[i].kind == TL_FORCED_DROP;
  }
  double x = 20;
  for (int s = 0; s < ST_NSTATES; s++) {
    if (!present[s] || s == ST_IDLE) continue;
    if (x > SVG_W - 200) x = 20, y += 18;
    svg_legend_item(f, &x, y, plot_state_colors[s], plot_state_legend[s], 0);
  }
  if (forced) svg_legend_item(f, &x, y, NULL, "forced drop", 1);
  if (tl->dropped) svg_legend_item(f, &x, y, "url(#lost)", "events lost (buffer full)", 0);
  return y + 18;
}

static void svg_axis(FILE *f, const timeline *tl, const svg_frame *fr, double top, double bottom) {
  double span = (double)(tl->t1 - tl->t0) / 1e9;
  double step = plot_nice_step(span, (int)((fr->x1 - fr->x0) / 90));
  fprintf(f, "<g stroke=\"#e0e0e0\">\n");
  for (double v = 0; v <= span * (1 + 1e-9); v += step) {
    double x = fr->x0 + (span > 0 ? v / span : 0) * (fr->x1 - fr->x0);
    fprintf(f, "<path d=\"M%.1f %.1fV%.1f\"/>\n", x, top, bottom);
  }
  fprintf(f, "</g>\n<path d=\"M%.1f %.1fH%.1f\" stroke=\"#555\"/>\n<g text-anchor=\"middle\" fill=\"#333\">\n", fr->x0,
          bottom, fr->x1);
  for (double v = 0; v <= span * (1 + 1e-9); v += step) {
    double x = fr->x0 + (span > 0 ? v / span : 0) * (fr->x1 - fr->x0);
    char lab[24];
    fprintf(f, "<path d=\"M%.1f %.1fv5\" stroke=\"#555\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x, bottom, x,
            bottom + 18, plot_time_label(v, step, lab, sizeof lab));
  }
  fprintf(f, "</g>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">time since the run started</text>\n",
          fr->x1, bottom + 36);
}

/* The lane's name, with its time per state as a tooltip. */
static void svg_lane_name(FILE *f, const tl_track *t, double x, double y) {
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\"><title>", x, y);
  plot_svg_text(f, t->name);
  for (int s = 0; s < ST_NSTATES; s++) {
    char d[24];
    if (t->state_ns[s]) fprintf(f, "\n%s: %s", ev_state_names[s], clock_format(t->state_ns[s], d, sizeof d));
  }
  if (t->dropped) fprintf(f, "\n%llu events lost", (unsigned long long)t->dropped);
  char q[24];
  if (t->runq_known) fprintf(f, "\nrunnable without a CPU: %s", clock_format(t->runq_ns, q, sizeof q));
  fputs("</title>", f);
  plot_svg_text(f, t->name);
  fputs("</text>\n", f);
}

/* One lane: runs of buckets with the same dominant state become one rect. */
static void svg_lane(FILE *f, const timeline *tl, const svg_frame *fr, const tl_track *t, double y, uint64_t *occ) {
  int n = fr->nbuckets;
  occupancy(t, tl->t0, tl->t1, n, occ);
  double w = (fr->x1 - fr->x0) / n;
  for (int b = 0; b < n;) {
    int s = dominant(occ, tl->t0, tl->t1, n, b), e = b + 1;
    while (e < n && dominant(occ, tl->t0, tl->t1, n, e) == s) e++;
    if (s != ST_IDLE)
      fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" fill=\"%s\"/>\n", fr->x0 + b * w,
              y + BAR_TOP, (e - b) * w, BAR_H, s == UNKNOWN ? "url(#lost)" : plot_state_colors[s]);
    b = e;
  }
}

/* Forced drops: a dark tick above the bar, at most one per pixel. */
static void svg_marks(FILE *f, const timeline *tl, const svg_frame *fr, const tl_track *t, double y) {
  int px = (int)(fr->x1 - fr->x0) + 1, any = 0;
  char *hit = calloc((size_t)px, 1);
  if (!hit) return;
  mark_buckets(t, TL_FORCED_DROP, tl->t0, tl->t1, px, hit);
  for (int i = 0; i < px; i++) {
    if (!hit[i]) continue;
    if (!any) fputs("<path stroke=\"#111\" stroke-width=\"1.2\" d=\"", f);
    fprintf(f, "M%.1f %.1fv6", fr->x0 + i + 0.5, y + 1);
    any = 1;
  }
  if (any) fputs("\"/>\n", f);
  free(hit);
}

/* The number of threads waiting for the main GIL: its mean over each bucket, as an area. */
static void svg_waiters(FILE *f, const timeline *tl, const svg_frame *fr, double y) {
  int n = fr->nbuckets, most = 0, waiting = 0;
  size_t nsteps = 0;
  waiter_step *v = waiter_steps(tl, &nsteps);
  uint64_t *sum = calloc((size_t)n * NOCC, sizeof *sum); /* NOCC-wide rows: add_span's layout */
  if (!v || !sum || tl->t1 <= tl->t0) {
    free(v);
    free(sum);
    return;
  }
  for (size_t i = 0; i < nsteps; i++) {
    waiting += v[i].delta;
    if (waiting > most) most = waiting;
  }
  for (int k = 0; k < tl->ntracks; k++)
    for (size_t i = 0; tl->tracks[k].shares_gil && i < tl->tracks[k].nslices; i++) {
      const tl_slice *sl = &tl->tracks[k].slices[i];
      if (sl->state == ST_WAIT_GIL) add_span(sum, tl->t0, tl->t1, n, sl->t0, sl->t1, 0);
    }
  double base = y + WAITERS_H - 6, h = WAITERS_H - 14, w = (fr->x1 - fr->x0) / n, last = -1;
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">GIL waiters</text>\n", fr->x0 - 8, y + 22);
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#888\" font-size=\"10\">mean; max %d</text>\n",
          fr->x0 - 8, y + 34, most);
  fprintf(f, "<path fill=\"#e53935\" fill-opacity=\"0.35\" stroke=\"#e53935\" stroke-width=\"0.8\" d=\"M%.1f %.1f",
          fr->x0, base);
  for (int b = 0; b < n && most > 0; b++) {
    double len = (double)(edge(tl->t0, tl->t1, n, b + 1) - edge(tl->t0, tl->t1, n, b));
    double mean = len > 0 ? (double)sum[(size_t)b * NOCC] / len : 0;
    double yy = base - h * mean / most;
    if (fabs(yy - last) < 0.05) continue; /* the same height: one longer step */
    fprintf(f, "H%.2fV%.2f", fr->x0 + b * w, yy);
    last = yy;
  }
  fprintf(f, "H%.1fV%.1fZ\"/>\n", fr->x1, base);
  free(v);
  free(sum);
}

static int svg_name_width(const timeline *tl) {
  size_t longest = 11; /* "GIL waiters" */
  for (int k = 0; k < tl->ntracks; k++)
    if (strlen(tl->tracks[k].name) > longest) longest = strlen(tl->tracks[k].name);
  int w = (int)(longest * 7) + 24;
  return w < 100 ? 100 : w > 320 ? 320 : w;
}

static void svg_header(FILE *f, const timeline *tl, int height) {
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
          "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
          SVG_W, height, SVG_W, height);
  fputs(
      "<defs><pattern id=\"lost\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
      "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#eee\"/>"
      "<path d=\"M0 0V6\" stroke=\"#bbb\" stroke-width=\"2\"/></pattern></defs>\n",
      f);
  fprintf(f,
          "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n<text x=\"20\" y=\"24\" font-size=\"15\" "
          "font-weight=\"bold\">");
  plot_svg_text(f, tl->title);
  fputs("</text>\n", f);
}

static int has_waiters(const timeline *tl) {
  for (int k = 0; k < tl->ntracks; k++)
    if (tl->tracks[k].shares_gil && tl->tracks[k].state_ns[ST_WAIT_GIL]) return 1;
  return 0;
}

/* Everything below the title; returns the y where the picture ends. */
static double svg_body(FILE *f, const timeline *tl) {
  svg_frame fr = { .x0 = svg_name_width(tl), .x1 = SVG_W - 30 };
  int lanes = tl->ntracks > 0 ? tl->ntracks : 1, waiters = has_waiters(tl);
  fr.nbuckets = (int)(fr.x1 - fr.x0) * 2;
  if (fr.nbuckets * lanes > MAX_RECTS) fr.nbuckets = MAX_RECTS / lanes > 100 ? MAX_RECTS / lanes : 100;
  fr.lanes_top = svg_legend(f, tl, 38) + 12;
  double bottom = fr.lanes_top + tl->ntracks * LANE_H + (waiters ? WAITERS_H : 0) + 4;
  for (int k = 0; k < tl->ntracks; k += 2)
    fprintf(f, "<rect x=\"10\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"#f4f4f4\"/>\n", fr.lanes_top + k * LANE_H,
            fr.x1 - 10, LANE_H);
  svg_axis(f, tl, &fr, fr.lanes_top, bottom);
  uint64_t *occ = malloc((size_t)fr.nbuckets * NOCC * sizeof *occ);
  for (int k = 0; k < tl->ntracks && occ; k++) {
    double y = fr.lanes_top + k * LANE_H;
    svg_lane_name(f, &tl->tracks[k], fr.x0 - 8, y + BAR_TOP + BAR_H - 4);
    svg_lane(f, tl, &fr, &tl->tracks[k], y, occ);
    svg_marks(f, tl, &fr, &tl->tracks[k], y);
  }
  free(occ);
  if (waiters) svg_waiters(f, tl, &fr, fr.lanes_top + tl->ntracks * LANE_H);
  fprintf(f,
          "<text x=\"20\" y=\"%.1f\" fill=\"#777\" font-size=\"11\">Each half pixel shows the state that took most "
          "of it; blank: idle, or runnable and waiting for a CPU. Hover a name for its totals.</text>\n",
          bottom + 36);
  return bottom + 46;
}

int timeline_write_svg(const timeline *tl, const char *path) {
  char *body = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&body, &len); /* the height is known only at the end */
  if (!mem) return -1;
  double height = svg_body(mem, tl);
  if (fclose(mem) != 0) {
    free(body);
    return -1;
  }
  outfile out;
  FILE *f = outfile_open(&out, path);
  if (!f) {
    free(body);
    return -1;
  }
  svg_header(f, tl, (int)height);
  fwrite(body, 1, len, f);
  fputs("</svg>\n", f);
  free(body);
  return outfile_close(&out);
}
