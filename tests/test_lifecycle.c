/*
 * test_lifecycle.c — nothing is kept, leaked or orphaned (issue 7, section 3):
 * joined workers are released and the report still sums them, a forked
 * child dies with gilvm however gilvm dies, a fork costs the same however
 * many workers came before, and os.exit from any thread ends the run as
 * lua5.4 would. End to end through the binary (tests/run_helper.c).
 *
 * Nothing here times anything: counts from gil._debug(), the report and
 * the JSON, and processes waited for until they are gone.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run_helper.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

TestSuite(lifecycle, .fini = test_cleanup);

static const char *data(const char *name) { return data_in("lifecycle", name); }

/* gilvm with a hard limit of its own (the runs are long under sanitizers). */
#define GVL(limit, ...) GVO(&(run_opts){ .limit_s = (limit) }, __VA_ARGS__)

static const char *const modes[] = { "gil", "nogil", "fork" };

/* The number at key in the JSON file at path (in its object `in`, when not NULL). */
static double json_number(const char *path, const char *in, const char *key) {
  json_t *obj = json_file(path);
  if (in) obj = json_object_get(obj, in);
  double v = run_json_number(obj, key);
  cr_assert(!isnan(v), "no number %s%s%s in %s:\n%s", in ? in : "", in ? "." : "", key, path, slurp(path, NULL));
  return v;
}

/* ---- joined workers are released ---- */

Test(lifecycle, joined_workers_are_released_and_still_counted) {
  for (int m = 0; m < 3; m++) {
    const char *jp = tmp_path("report.json");
    run_result *r = GVL(240, "-m", modes[m], "--json", jp, data("spawn_join.lua"), "1000");
    cr_expect(r->exited && r->exit_code == 0, "mode %s" CTX, modes[m], CTXA(r));
    long records = -1, released = -1;
    const char *line = strstr(r->out, "records ");
    cr_assert(line && sscanf(line, "records %ld released %ld", &records, &released) == 2, "mode %s" CTX, modes[m],
              CTXA(r));
    /* before: every record stayed (1001); now main, the first 39 (kept for the report's rows) and a few */
    cr_expect(records <= 43, "mode %s: %ld live worker records after 1000 joined workers" CTX, modes[m], records,
              CTXA(r));
    cr_expect(released >= 958, "mode %s: only %ld released" CTX, modes[m], released, CTXA(r));
    /* the totals still count every worker, released or not */
    cr_expect(strstr(r->err, "workers 1000 ") != NULL, "mode %s: report lacks 'workers 1000'" CTX, modes[m], CTXA(r));
    cr_expect(strstr(r->err, "released after join") != NULL, "mode %s: the report does not say" CTX, modes[m], CTXA(r));
    const char *js = slurp(jp, NULL);
    cr_expect_eq(json_number(jp, NULL, "workers"), 1000, "mode %s: JSON workers\n%s", modes[m], js);
    cr_expect_geq(json_number(jp, "released", "workers"), 958, "mode %s: JSON released\n%s", modes[m], js);
    cr_expect_gt(json_number(jp, "released", "cpu_s"), 0, "mode %s: released cpu\n%s", modes[m], js);
    unlink(jp);
  }
}

/* 20k spawn+join in each mode: RSS after the first 2k and at the end. Before,
   the next 18k took gil 26.5 MB, nogil 21.3 MB, fork 7.6 MB (and 2.5 minutes).
   Sanitizers keep freed memory in quarantine: RSS says nothing there. */
Test(lifecycle, rss_stays_flat_over_20k_spawns, .timeout = 600) {
#ifdef SANITIZED
  cr_skip_test("RSS is meaningless under a sanitizer's quarantine (the record counts are tested)");
#endif
  for (int m = 0; m < 3; m++) {
    run_result *r = GVL(300, "-q", "-m", modes[m], data("spawn_join.lua"), "20000");
    cr_expect(r->exited && r->exit_code == 0, "mode %s" CTX, modes[m], CTXA(r));
    long records, released, mid = 0, end = 0;
    const char *line = strstr(r->out, "records ");
    cr_assert(
        line && sscanf(line, "records %ld released %ld rss_mid %ld rss_end %ld", &records, &released, &mid, &end) == 4,
        "mode %s" CTX, modes[m], CTXA(r));
    cr_expect(end - mid < 3072, "mode %s: RSS grew %ld kB over 18k joined workers (%ld -> %ld kB)" CTX, modes[m],
              end - mid, mid, end, CTXA(r));
  }
}

/* The same run, handles kept or dropped: releasing changes no total. */
static void totals(const char *mode, const char *keep, double out[4]) {
  const char *jp = tmp_path("report.json");
  char set[32];
  snprintf(set, sizeof set, "KEEP = %s", keep); /* 1 or 0: the same code and the same bytes either way */
  run_result *r = GVL(120, "-q", "-m", mode, "--json", jp, "-e", set, "-e",
                      "local hs = {} for i = 1, 200 do local h = gil.spawn(function() return i end) h:join() "
                      "if KEEP == 1 then hs[i] = h end end collectgarbage() collectgarbage()");
  cr_expect(r->exited && r->exit_code == 0, "mode %s" CTX, mode, CTXA(r));
  const char *keys[4] = { "workers", "acquisitions", "switches", "bytes_copied" };
  for (int k = 0; k < 4; k++) out[k] = json_number(jp, NULL, keys[k]);
  unlink(jp);
}

Test(lifecycle, released_workers_change_no_total) {
  const char *keys[4] = { "workers", "acquisitions", "switches", "bytes_copied" };
  for (int m = 0; m < 3; m++) {
    double kept[4], dropped[4];
    totals(modes[m], "1", kept);
    totals(modes[m], "0", dropped);
    for (int k = 0; k < 4; k++)
      cr_expect(kept[k] == dropped[k], "mode %s: %s %.0f with every handle kept, %.0f with them released", modes[m],
                keys[k], kept[k], dropped[k]);
  }
}

Test(lifecycle, report_sums_rows_past_the_limit) {
  const char *jp = tmp_path("report.json");
  run_result *r = GVL(60, "-m", "gil", "--json", jp, "-e",
                      "local hs = {} for i = 1, 60 do hs[i] = gil.spawn(function() return i end) end "
                      "for i = 1, 60 do hs[i]:join() end");
  cr_expect(r->exited && r->exit_code == 0, CTX, CTXA(r));
  /* main and 39 workers have rows; 21 workers (all still referenced) are summed */
  cr_expect(strstr(r->err, "(21 more)") != NULL, "no summed row" CTX, CTXA(r));
  cr_expect(strstr(r->err, "21 past the first 40 rows") != NULL, "the report does not say why" CTX, CTXA(r));
  cr_expect(strstr(r->err, "39@") != NULL && strstr(r->err, "40@") == NULL, "rows past the limit" CTX, CTXA(r));
  cr_expect(strstr(r->err, "workers 60 ") != NULL, "report lacks 'workers 60'" CTX, CTXA(r));
  const char *js = slurp(jp, NULL);
  cr_expect_eq(json_number(jp, NULL, "workers"), 60, "JSON workers\n%s", js);
  cr_expect_eq(json_array_size(json_object_get(json_file(jp), "threads")), 61, "JSON lists every live worker\n%s", js);
  unlink(jp);
}

/* ---- fork: figures and cost ---- */

static double bytes_copied(const char *mode) {
  const char *jp = tmp_path("report.json");
  run_result *r = GVL(120, "-q", "-m", mode, "--json", jp, "-e",
                      "for i = 1, 8 do gil.spawn(function() return string.rep('x', 256 * 1024) end):join() end");
  cr_expect(r->exited && r->exit_code == 0, "mode %s" CTX, mode, CTXA(r));
  double b = json_number(jp, NULL, "bytes_copied");
  unlink(jp);
  return b;
}

/* Before: each child reported the parent's running count as its own (44 MB). */
Test(lifecycle, fork_copies_what_nogil_copies) {
  double fork = bytes_copied("fork"), nogil = bytes_copied("nogil");
  cr_expect(nogil >= 8 * 2 * 256 * 1024, "nogil copied %.0f bytes", nogil);
  cr_expect(fork >= 0.9 * nogil && fork <= 1.1 * nogil, "fork copied %.0f bytes, nogil %.0f", fork, nogil);
}

/* A child's set-up visits no earlier worker record: 300 handles kept alive,
   each child counts what it walked (before: every record, 0..299). */
Test(lifecycle, fork_does_not_walk_earlier_workers) {
  run_result *r = GVL(240, "-q", "-m", "fork", "-e",
                      "local hs, walk = {}, 0 "
                      "for i = 1, 300 do hs[i] = gil.spawn(function() return gil._debug().fork_walk end) "
                      "walk = math.max(walk, hs[i]:join()) end "
                      "print('records ' .. gil._debug().records .. ' walk ' .. walk)");
  cr_expect(r->exited && r->exit_code == 0, CTX, CTXA(r));
  long records = -1, walk = -1;
  const char *line = strstr(r->out, "records ");
  cr_assert(line && sscanf(line, "records %ld walk %ld", &records, &walk) == 2, CTX, CTXA(r));
  cr_expect_eq(records, 301, "the handles keep their records" CTX, CTXA(r));
  cr_expect_eq(walk, 0, "a fork walked %ld records" CTX, walk, CTXA(r));
}

/* ---- children die with gilvm ---- */

/* Both pids the script printed are gone within a generous deadline. */
static void expect_both_die(const run_result *r) {
  int a = 0, b = 0;
  const char *line = strstr(r->out, "pids ");
  cr_assert(line && sscanf(line, "pids %d %d", &a, &b) == 2 && a > 0 && b > 0, "no pids" CTX, CTXA(r));
  int ga = run_wait_gone(a, 20), gb = run_wait_gone(b, 20); /* killed if not: nothing left behind */
  cr_expect(ga, "the child (pid %d) outlived gilvm by 20 s" CTX, a, CTXA(r));
  cr_expect(gb, "the grandchild (pid %d) outlived gilvm by 20 s" CTX, b, CTXA(r));
}

/* An orphan holds gilvm's stdout open, so the helper reads until its limit:
   no assertion on that, the pids decide. */
static run_result *run_orphans(const run_opts *o, const char *const *argv) {
  run_result *r = run_tracked(o, argv);
  expect_reaped(r);
  expect_no_sanitizer_report(r);
  return r;
}

Test(lifecycle, children_die_when_gilvm_is_killed) {
  const char *argv[] = { gilvm_path(), "-q", "-m", "fork", data("orphans.lua"), "join", NULL };
  run_opts o = { .limit_s = 20, .signal = SIGKILL, .signal_when = "pids " };
  run_result *r = run_orphans(&o, argv);
  cr_expect(r->signals_sent == 1, "the test did not kill gilvm" CTX, CTXA(r));
  expect_both_die(r);
}

Test(lifecycle, children_die_when_gilvm_dies_of_sigpipe) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' -q -m fork '%s' spin | head -1", gilvm_path(), data("orphans.lua"));
  const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
  run_opts o = { .limit_s = 20 };
  run_result *r = run_orphans(&o, argv);
  expect_both_die(r);
}

Test(lifecycle, children_die_after_os_exit_in_main) {
  const char *argv[] = { gilvm_path(), "-q", "-m", "fork", data("orphans.lua"), "exit", NULL };
  run_opts o = { .limit_s = 20 };
  run_result *r = run_orphans(&o, argv);
  cr_expect(r->timed_out || (r->exited && r->exit_code == 0), CTX, CTXA(r));
  expect_both_die(r);
}

/* ---- os.exit from a worker ---- */

Test(lifecycle, os_exit_in_a_worker_ends_the_run_like_lua) {
  for (int m = 0; m < 3; m++) {
    run_result *r = GVL(60, "-q", "-m", modes[m], "-e",
                        "io.write('partial') "
                        "gil.thread(function() io.write(' from worker') os.exit(7) end):join() "
                        "print('never')");
    cr_expect(r->exited && r->exit_code == 7, "mode %s" CTX, modes[m], CTXA(r));
    cr_expect_str_eq(r->out, "partial from worker", "mode %s: stdout flushed, nothing after" CTX, modes[m], CTXA(r));
  }
}

/* os.exit(3, true) in a gil-mode worker closes the shared state; a finalizer
   releases the GIL there. Before, the spinning thread ran Lua meanwhile. */
Test(lifecycle, os_exit_keeps_other_threads_out_of_lua) {
  run_result *r = GVL(60, "-q", "-m", "gil", data("exit_close.lua"));
  cr_expect(r->exited && r->exit_code == 3, CTX, CTXA(r));
  cr_expect(strstr(r->out, "[gcgc]") != NULL, "another thread ran Lua while the state closed" CTX, CTXA(r));
}
