/*
 * test_timeline.c — end-to-end tests of what gilvm draws: --trace (Chrome
 * trace JSON), --timeline (ASCII), --svg, and `gilvm sweep`.
 *
 * Every test runs the real binary ($GILVM) through run_helper.c on a small
 * workload. Files are judged by real parsers: python3's json module for
 * traces and sweep JSON, xml.dom.minidom for SVG (python3 is there wherever
 * meson is). A short python program reads a trace and prints facts as
 * "key value" lines (overlaps, GIL-held total, instants per name, track
 * names); the assertions stay here, in C, against the run's own --json.
 *
 * Same rules as test_e2e.c: small workloads, no timing asserts beyond very
 * wide ones, a hard limit on every run, no sanitizer report on stderr.
 * The consistency checks are exact where the code makes them exact (the
 * trace's instants are recorded at the very places the GIL counts), and
 * within 1% or 1 ms for summed durations (microsecond decimals).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run_helper.h"

/* ------------------------------------------------------------ plumbing */

/* No Criterion .timeout: under ASan, Criterion 2.4's per-test timeout leaks 48 bytes
   now and then when two jobs finish together, and LSan fails the suite. Every gilvm
   run has its own hard limit (RUN_LIMIT_S), and meson's timeout bounds the whole. */
TestSuite(trace, .fini = test_cleanup);
TestSuite(ascii, .fini = test_cleanup);
TestSuite(svg, .fini = test_cleanup);
TestSuite(sweep, .fini = test_cleanup);

static const char *data(const char *name) { return data_in("timeline", name); }

/* ---- python3: the reference parsers ---- */

static const char *python(void) {
  static char found[512];
  if (access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  const char *path = getenv("PATH");
  for (const char *p = path; p && *p;) {
    size_t len = strcspn(p, ":");
    snprintf(found, sizeof found, "%.*s/python3", (int)len, p);
    if (access(found, X_OK) == 0) return found;
    p += len + (p[len] == ':');
  }
  cr_assert_fail("python3 is needed to parse the JSON and SVG files (meson needs it too)");
  return NULL;
}

static run_result *py(const char *code, const char *a, const char *b) {
  const char *argv[] = { python(), "-c", code, a, b, NULL };
  return run_checked(NULL, argv);
}

/* Reads a trace and the run's --json; prints what the tests compare. */
static const char trace_facts_py[] =
    "import json, sys, collections\n"
    "trace = json.load(open(sys.argv[1], encoding='utf-8'))\n"
    "rep = json.load(open(sys.argv[2], encoding='utf-8'))\n"
    "slices = collections.defaultdict(list)\n"
    "names, procs, count = {}, {}, collections.Counter()\n"
    "held = 0.0\n"
    "bad = 0\n"
    "for e in trace['traceEvents']:\n"
    "    ph, key = e['ph'], (e['pid'], e.get('tid'))\n"
    "    if ph == 'M' and e['name'] == 'thread_name': names[key] = e['args']['name']\n"
    "    elif ph == 'M' and e['name'] == 'process_name': procs[e['pid']] = e['args']['name']\n"
    "    elif ph == 'X':\n"
    "        slices[key].append((e['ts'], e['dur']))\n"
    "        count['X ' + e['name']] += 1\n"
    "        if e['name'] == 'running (GIL held)': held += e['dur']\n"
    "        if e['ts'] < 0 or e['dur'] <= 0: bad += 1\n"
    "    elif ph in ('i', 'C'): count[ph + ' ' + e['name']] += 1\n"
    "overlaps = 0\n"
    "for v in slices.values():\n"
    "    v.sort()\n"
    "    overlaps += sum(1 for a, b in zip(v, v[1:]) if a[0] + a[1] > b[0] + 0.001)\n"
    "print('overlaps', overlaps)\n"
    "print('bad_slices', bad)\n"
    "print('held_trace_s %.9f' % (held / 1e6))\n"
    "print('tracks', len(names))\n"
    "print('processes', len(procs))\n"
    "print('unnamed_tracks', sum(1 for k in slices if k not in names))\n"
    "print('names_match', int(sorted(names.values()) == sorted(t['name'] for t in rep['threads'])))\n"
    "print('forced_drops', sum(t['forced_drops'] for t in rep['threads']))\n"
    "for k, n in sorted(count.items()): print('count[%s]' % k, n)\n"
    "print('end', 1)\n";

typedef struct trace_run {
  run_result *gilvm, *facts;
  const char *report_json; /* the run's --json, as text (for messages) */
  const json_t *report; /* and parsed */
} trace_run;

/* Run gilvm --trace T --json J <args>, then read the trace's facts. */
static trace_run traced(const char *const *args) {
  const char *trace = tmp_path("trace.json"), *json = tmp_path("report.json");
  const char *argv[40] = { "--trace", trace, "--json", json };
  int n = 4;
  for (int i = 0; args[i] && n < 39; i++) argv[n++] = args[i];
  argv[n] = NULL;
  trace_run t = { .gilvm = gv_run(NULL, argv) };
  expect_exit(t.gilvm, 0);
  t.facts = py(trace_facts_py, trace, json);
  cr_assert(t.facts->exited && t.facts->exit_code == 0 && strstr(t.facts->out, "end 1"),
            "the trace is not valid JSON, or lacks what a trace needs" CTX, CTXA(t.facts));
  t.report_json = slurp(json, NULL);
  t.report = json_file(json);
  return t;
}
#define TRACED(...) traced((const char *const[]){ __VA_ARGS__, NULL })

static double fact(const trace_run *t, const char *key) {
  double v;
  char *k = fmt("%s ", key);
  cr_assert(report_number_after(t->facts->out, k, &v), "no fact \"%s\" in:\n%s", key, t->facts->out);
  return v;
}

/* A fact that may be absent (an instant that never happened): 0. */
static double count_of(const trace_run *t, const char *what) {
  double v;
  return report_number_after(t->facts->out, fmt("count[%s] ", what), &v) ? v : 0;
}

static double report_json_number(const trace_run *t, const char *key) {
  double v = run_json_number(t->report, key);
  cr_assert(!isnan(v), "no number \"%s\" in the run's --json:\n%s", key, t->report_json);
  return v;
}

static void expect_consistent(const trace_run *t) {
  cr_expect(fact(t, "overlaps") == 0, "slices overlap on a track:\n%s", t->facts->out);
  cr_expect(fact(t, "bad_slices") == 0, "slices with a negative time or no duration:\n%s", t->facts->out);
  cr_expect(fact(t, "unnamed_tracks") == 0, "a track without a thread_name:\n%s", t->facts->out);
  cr_expect(fact(t, "names_match") == 1, "the trace's thread names are not the report's:\n%s\n%s", t->facts->out,
            t->report_json);
  double held = fact(t, "held_trace_s"), want = report_json_number(t, "gil_held_s");
  double slack = want * 0.01 > 0.001 ? want * 0.01 : 0.001;
  cr_expect(held >= want - slack && held <= want + slack, "GIL held in the trace %.6f s, in the report %.6f s", held,
            want);
  /* instants are recorded exactly where the GIL counts */
  cr_expect(count_of(t, "i forced drop") == fact(t, "forced_drops"), "forced drop instants != forced drops:\n%s",
            t->facts->out);
  cr_expect(count_of(t, "i forced switch") == report_json_number(t, "forced_switches"),
            "forced switch instants != the report's forced switches:\n%s", t->facts->out);
  cr_expect(count_of(t, "i drop request") == report_json_number(t, "drop_requests"),
            "drop request instants != the report's drop requests:\n%s", t->facts->out);
}

/* ================================================================ trace */

Test(trace, gil_mode_convoy_matches_the_report) {
  trace_run t = TRACED("-s", "1ms", script("convoy.lua"), "15");
  expect_consistent(&t);
  cr_expect(fact(&t, "tracks") == 3, "main, hog and io_thread:\n%s", t.facts->out);
  cr_expect(fact(&t, "processes") == 1, "one process in gil mode:\n%s", t.facts->out);
  cr_expect(count_of(&t, "X blocked: sleep") >= 15, "the I/O thread's 15 sleeps:\n%s", t.facts->out);
  cr_expect(count_of(&t, "X running (GIL held)") >= 3, "%s", t.facts->out);
  if (report_json_number(&t, "gil_contended_s") > 0)
    cr_expect(count_of(&t, "C GIL waiters") >= 2, "the waiters counter:\n%s", t.facts->out);
}

Test(trace, forced_switches_of_two_cpu_threads) {
  /* pingpong.lua: 20 rounds of turns between two spinners, 38 forced switches at least */
  trace_run t = TRACED("-s", "0.5ms", data("pingpong.lua"), "20");
  expect_consistent(&t);
  cr_expect(count_of(&t, "X waiting for the GIL") >= 38, "each turn waits for the GIL:\n%s", t.facts->out);
  cr_expect(report_json_number(&t, "forced_switches") >= 38, "each turn is a forced switch:\n%s", t.report_json);
}

Test(trace, fifo_and_legacy_are_consistent_too) {
  trace_run t = TRACED("-g", "fifo", "-s", "1ms", script("convoy.lua"), "10");
  expect_consistent(&t);
  trace_run l = TRACED("-g", "legacy", data("pingpong.lua"), "20"); /* each turn waits on a spinner */
  expect_consistent(&l);
  cr_expect(count_of(&l, "i forced drop") == 0, "legacy's check-interval releases are not forced:\n%s", l.facts->out);
  cr_expect(count_of(&l, "X waiting for the GIL") >= 38, "each legacy turn waits for the GIL:\n%s", l.facts->out);
}

Test(trace, every_state_has_its_name) {
  trace_run t = TRACED(data("states.lua"));
  expect_consistent(&t);
  static const char *const states[] = {
    "running (GIL held)",        "blocked: sleep", "blocked: join", "blocked: lock", "blocked: queue",
    "running C without the GIL", "blocked: io",
  };
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
    cr_expect(count_of(&t, fmt("X %s", states[i])) >= 1, "no \"%s\" slice:\n%s", states[i], t.facts->out);
  cr_expect(fact(&t, "tracks") == 7, "main and six workers:\n%s", t.facts->out);
}

Test(trace, fork_mode_has_a_process_track_per_child) {
  trace_run t = TRACED("-m", "fork", script("cpu_bound.lua"), "3", "300000");
  expect_consistent(&t);
  cr_expect(fact(&t, "processes") == 4, "gilvm and its 3 children:\n%s", t.facts->out);
  cr_expect(fact(&t, "tracks") == 4, "%s", t.facts->out);
  cr_expect(count_of(&t, "X running (own interpreter)") >= 3, "each child runs:\n%s", t.facts->out);
}

Test(trace, nogil_mode_has_a_track_per_interpreter) {
  trace_run t = TRACED("-m", "nogil", script("cpu_bound.lua"), "2", "300000");
  cr_expect(fact(&t, "overlaps") == 0, "%s", t.facts->out);
  cr_expect(fact(&t, "names_match") == 1, "%s", t.facts->out);
  cr_expect(fact(&t, "tracks") == 3 && fact(&t, "processes") == 1, "%s", t.facts->out);
  cr_expect(count_of(&t, "X running (own interpreter)") >= 3, "main and both workers:\n%s", t.facts->out);
  cr_expect(count_of(&t, "X running (GIL held)") == 0, "no shared GIL in nogil mode:\n%s", t.facts->out);
}

Test(trace, a_full_buffer_is_reported) {
  /* a small cap (GILVM_EVENTS_MAX; this test runs in its own process) that two
     threads overflow however fast the machine: 198 of pingpong.lua's 200 turns
     at least are forced switches, each adding 4 events or more to a thread's buffer */
  setenv("GILVM_EVENTS_MAX", "64", 1);
  const char *json = tmp_path("dropped.json"), *trace = tmp_path("dropped-trace.json");
  run_result *r = GV("-s", "1ms", "--json", json, "--trace", trace, "--timeline", data("pingpong.lua"), "100");
  expect_exit(r, 0);
  cr_expect(strstr(r->err, "events dropped") != NULL, "the report must say events were dropped" CTX, CTXA(r));
  cr_expect(strstr(r->err, "? events lost") != NULL, "the chart must show where they were lost" CTX, CTXA(r));
  cr_assert(run_json_number(json_file(json), "events_dropped") > 0, "--json must count the dropped events:\n%s",
            slurp(json, NULL));
  run_result *p =
      py("import json, sys\n"
         "t = json.load(open(sys.argv[1]))\n"
         "print('lost', sum(1 for e in t['traceEvents'] if e['name'] == 'events lost from here'))\n",
         trace, "");
  double lost;
  cr_expect(report_number_after(p->out, "lost ", &lost) && lost >= 1, "the trace marks the loss" CTX, CTXA(p));
}

/* ================================================================ ASCII */

/* The chart block of stderr: from "  timeline:" to the closing rule. */
static const char *chart_of(const run_result *r) {
  const char *c = strstr(r->err, "\n  timeline: 1 column");
  cr_assert(c != NULL, "no timeline on stderr" CTX, CTXA(r));
  const char *end = strstr(c, "\n---");
  return track(strndup(c + 1, end ? (size_t)(end - c - 1) : strlen(c + 1)));
}

static void expect_chart(const run_result *r, int width, const char *const *names) {
  const char *chart = chart_of(r);
  int rows = 0;
  for (const char *line = chart; *line;) {
    size_t len = strcspn(line, "\n");
    cr_expect(len <= (size_t)width, "a line of %zu columns, wider than %d:\n%s", len, width, chart);
    if (len > 2 && line[len - 1] == '|' && memchr(line, '|', len) != line + len - 1) {
      rows++;
      cr_expect(len == (size_t)width, "a chart row should fill the %d columns:\n%s", width, chart);
    }
    line += len + (line[len] == '\n');
  }
  int want = 0;
  for (; names[want]; want++)
    cr_expect(strstr(chart, fmt("\n  %s", names[want])) != NULL, "no row for %s:\n%s", names[want], chart);
  int forced_row = strstr(chart, "\n  forced drops ") != NULL;
  cr_expect(rows == want + forced_row, "%d rows for %d threads (+%d forced-drop row):\n%s", rows, want, forced_row,
            chart);
  cr_expect(strstr(chart, "# running, GIL held") != NULL, "a legend:\n%s", chart);
}

Test(ascii, one_row_per_thread_fitted_to_columns) {
  setenv("COLUMNS", "80", 1); /* stderr is a pipe: gilvm falls back to $COLUMNS */
  run_result *r = GV("--timeline", "-s", "1ms", script("convoy.lua"), "10");
  expect_exit(r, 0);
  expect_chart(r, 80, (const char *const[]){ "main", "1:hog", "2:io_thread", NULL });
  setenv("COLUMNS", "132", 1);
  r = GV("--timeline", script("cpu_bound.lua"), "3", "300000");
  expect_exit(r, 0);
  expect_chart(r, 132,
               (const char *const[]){ "main", "1:sum_of_squares", "2:sum_of_squares", "3:sum_of_squares", NULL });
  unsetenv("COLUMNS");
  r = GV("--timeline", "-m", "fork", script("cpu_bound.lua"), "2", "200000");
  expect_exit(r, 0);
  expect_chart(r, 100, (const char *const[]){ "main", "1:sum_of_squares", "2:sum_of_squares", NULL });
}

Test(ascii, quiet_still_draws_the_timeline_it_was_asked_for) {
  setenv("COLUMNS", "60", 1);
  run_result *r = GV("-q", "--timeline", script("cpu_bound.lua"), "2", "200000");
  expect_exit(r, 0);
  cr_expect(strstr(r->err, "-- gilvm report") == NULL, "-q: no report" CTX, CTXA(r));
  expect_chart(r, 60, (const char *const[]){ "main", "1:sum_of_", "2:sum_of_", NULL }); /* names cut to fit */
}

/* ================================================================== SVG */

static void expect_xml(const char *path) {
  run_result *p =
      py("import sys, xml.dom.minidom\n"
         "d = xml.dom.minidom.parse(sys.argv[1])\n"
         "assert d.documentElement.tagName == 'svg'\n"
         "print('elements', len(d.getElementsByTagName('*')))\n",
         path, "");
  cr_assert(p->exited && p->exit_code == 0, "%s is not well-formed SVG" CTX, path, CTXA(p));
  double n;
  cr_expect(report_number_after(p->out, "elements ", &n) && n < 60000, "%s: too many elements:\n%s", path, p->out);
}

Test(svg, is_xml_and_names_every_thread) {
  const char *svg = tmp_path("run.svg");
  run_result *r = GV("--svg", svg, "-s", "1ms", data("pingpong.lua"), "10"); /* forced drops, by construction */
  expect_exit(r, 0);
  expect_xml(svg);
  const char *text = slurp(svg, NULL);
  static const char *const names[] = { ">main<", ">1:player<", ">2:player<", "forced drop", "waiting for the GIL" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    cr_expect(strstr(text, names[i]) != NULL, "the SVG lacks %s", names[i]);
}

Test(svg, fork_and_states) {
  const char *svg = tmp_path("fork.svg");
  run_result *r = GV("--svg", svg, "-m", "fork", script("cpu_bound.lua"), "2", "200000");
  expect_exit(r, 0);
  expect_xml(svg);
  cr_expect(strstr(slurp(svg, NULL), ">2:sum_of_squares<") != NULL, "the SVG names the second process");
  svg = tmp_path("states.svg");
  r = GV("--svg", svg, data("states.lua"));
  expect_exit(r, 0);
  expect_xml(svg);
  cr_expect(strstr(slurp(svg, NULL), "blocked: queue") != NULL, "the legend has every state present");
}

/* ================================================================ sweep */

static int rows_for(const char *err, const char *policy) { return count_occurrences(err, fmt("\n  %-8s ", policy)); }

Test(sweep, one_row_per_interval_and_json_of_every_run) {
  const char *json = tmp_path("sweep.json"), *svg = tmp_path("sweep.svg");
  run_result *r = GV("sweep", "-s", "0.5ms,2ms,5ms", "--json", json, "--svg", svg, script("convoy.lua"), "5");
  expect_exit(r, 0);
  cr_expect(rows_for(r->err, "cpython") == 3, "one row per interval" CTX, CTXA(r));
  cr_expect(strstr(r->err, "io_extra_median_ms") != NULL, "the script's figures are columns" CTX, CTXA(r));
  cr_expect(count_occurrences(r->out, "extra latency per") == 1, "only the first run's stdout" CTX, CTXA(r));
  run_result *p =
      py("import json, sys\n"
         "d = json.load(open(sys.argv[1]))\n"
         "print('runs', len(d['runs']))\n"
         "print('reports', sum(1 for x in d['runs'] if x['report'] and 'wall_s' in x['report']))\n"
         "print('intervals', ' '.join('%g' % x['switch_interval_s'] for x in d['runs']))\n",
         json, "");
  double runs = 0, reports = 0;
  cr_expect(report_number_after(p->out, "runs ", &runs) && runs == 3, "three runs in the JSON" CTX, CTXA(p));
  cr_expect(report_number_after(p->out, "reports ", &reports) && reports == 3, "each with its report" CTX, CTXA(p));
  cr_expect(strstr(p->out, "intervals 0.0005 0.002 0.005") != NULL, "in the order asked" CTX, CTXA(p));
  expect_xml(svg);
  cr_expect(strstr(slurp(svg, NULL), "io_extra_median_ms") != NULL, "a panel per script figure");
}

Test(sweep, policies_times_intervals) {
  run_result *r = GV("sweep", "-s", "1ms,3ms", "-g", "cpython,fifo", script("convoy.lua"), "4");
  expect_exit(r, 0);
  cr_expect(rows_for(r->err, "cpython") == 2 && rows_for(r->err, "fifo") == 2, "2 x 2 rows" CTX, CTXA(r));
}

Test(sweep, bad_lists_exit_2) {
  static const char *const bad[][2] = {
    { "-s", "1ms,,5ms" }, { "-s", "1ms,fast" },     { "-s", "0,1ms" },
    { "-s", "," },        { "-g", "cpython,nope" }, { "-s", "1ms," },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    run_result *r = GV("sweep", bad[i][0], bad[i][1], script("convoy.lua"), "2");
    expect_exit(r, 2);
    cr_expect(strstr(r->err, "gilvm: ") != NULL && strstr(r->err, "--help") != NULL, "a message" CTX, CTXA(r));
    cr_expect(r->out[0] == '\0', "nothing ran" CTX, CTXA(r));
  }
  run_result *r = GV("-s", "1ms,2ms", script("convoy.lua"), "2"); /* lists are for sweep only */
  expect_exit(r, 2);
  cr_expect(strstr(r->err, "sweep") != NULL, "the message points at sweep" CTX, CTXA(r));
  r = GV("sweep", "--trace", tmp_path("x.json"), script("convoy.lua"), "2");
  expect_exit(r, 2);
}
