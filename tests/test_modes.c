/*
 * test_modes.c — the same script in gil, nogil and fork modes, and
 * `gilvm compare`, run end to end through the binary (tests/run_helper.c).
 *
 * Nothing here times anything: outputs, exit codes, error messages and the
 * report's worker kinds are what a mode changes that can be checked on a
 * noisy 2-core machine.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_helper.h"

TestSuite(modes, .fini = test_cleanup);
TestSuite(compare, .fini = test_cleanup);

static const char *const modes[] = { "gil", "nogil", "fork" };

/* The worker rows' kinds say what the mode made. */
static void expect_kind(const run_result *r, const char *name, const char *kind) {
  report_thread row;
  int found = report_thread_named(r->err, name, 1, &row);
  cr_expect(found, "no row %s\nstderr:\n%s", name, r->err);
  if (found) cr_expect_str_eq(row.kind, kind, "row %s", name);
}

Test(modes, cpu_bound_same_sum_and_worker_kinds) {
  const char *kinds[] = { "thread", "free thread", "process" };
  for (int m = 0; m < 3; m++) {
    run_result *r = GV("-m", modes[m], script("cpu_bound.lua"), "2", "2000000");
    expect_exit(r, 0);
    cr_expect_str_eq(r->out, "threads=2 iterations=2000000 sum=4000001\n", "mode %s", modes[m]);
    expect_kind(r, "1:sum_of_squares", kinds[m]);
    expect_kind(r, "2:sum_of_squares", kinds[m]);
    parsed_report rr;
    int full = report_parse_run(r->err, &rr);
    if (m == 1) {
      /* no shared GIL in nogil: no "GIL held" nor handoff line; what comes before them parses */
      cr_expect(rr.wall_s > 0 && rr.cpu_s > 0 && rr.parallelism > 0 && rr.interval_s > 0,
                "nogil: the report lacks a figure\nstderr:\n%s", r->err);
      expect_err_has(r, "no shared GIL");
    } else {
      cr_expect(full, "%s: the report lacks a figure\nstderr:\n%s", modes[m], r->err);
    }
    cr_expect_str_eq(rr.mode, modes[m], "the report names the mode");
  }
}

Test(modes, gallery_prints_the_same_in_every_mode) {
  const char *runs[][4] = {
    { "pool_map.lua", "6", "0.01", NULL },
    { "queue_workers.lua", "40", "3", NULL },
    { "io_bound.lua", "3", "0.2", NULL },
  };
  /* io_bound.lua's last line is its wall-clock verdict: a measurement, not output to compare */
  static const char verdict[] = "3 downloads of 0.2 s each: ";
  for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
    char *first = NULL;
    for (int m = 0; m < 3; m++) {
      run_result *r = GV("-q", "-m", modes[m], script(runs[k][0]), runs[k][1], runs[k][2]);
      expect_exit(r, 0);
      cr_expect(r->out_len > 0, "%s printed nothing", runs[k][0]);
      char *cut = strstr(r->out, verdict);
      if (cut) cut[sizeof verdict - 1] = '\0';
      if (!first)
        first = strdup(r->out);
      else
        cr_expect_str_eq(r->out, first, "%s: %s printed something else than gil", runs[k][0], modes[m]);
    }
    free(first);
  }
}

Test(modes, pool_map_squares) {
  run_result *r = GV("-q", "-m", "fork", script("pool_map.lua"), "5", "0.001");
  expect_exit(r, 0);
  cr_expect_str_eq(r->out, "1 4 9 16 25\n");
}

Test(modes, hybrid_uses_threads_and_processes) {
  run_result *r = GV(script("hybrid.lua"), "2", "0.05");
  expect_exit(r, 0);
  cr_expect(strncmp(r->out, "downloaded 2 pages; checksums ", 30) == 0, "stdout: %s", r->out);
  expect_kind(r, "1:download", "thread");
  expect_kind(r, "3:crunch", "process");
}

/* Isolation is the lesson: a global mutated by workers stays untouched in
   nogil and fork modes, and race.lua's shared value still adds up. */
Test(modes, race_globals_are_copies_but_values_are_shared) {
  for (int m = 1; m < 3; m++) {
    run_result *r = GV("-q", "-m", modes[m], script("race.lua"), "2", "2000");
    expect_exit(r, 0);
    cr_expect(strstr(r->out, "plain x = x + 1        expected 4000, got 0: 4000 lost updates") != NULL,
              "%s: globals are copies\n%s", modes[m], r->out);
    cr_expect(strstr(r->out, "value add              expected 4000, got 4000: 0 lost updates") != NULL,
              "%s: value:add is atomic\n%s", modes[m], r->out);
  }
}

Test(modes, worker_error_carries_name_and_traceback) {
  for (int m = 0; m < 3; m++) {
    run_result *r = GV("-q", "-m", modes[m], "-e",
                       "local function boom() error('kaput') end "
                       "local h = gil.spawn(boom) local ok, e = pcall(h.join, h) print(ok) print(e)");
    expect_exit(r, 0);
    cr_expect(strstr(r->out, "false\n") == r->out, "%s: join raised\n%s", modes[m], r->out);
    cr_expect(strstr(r->out, "'1:boom'") != NULL, "%s: names the worker\n%s", modes[m], r->out);
    cr_expect(strstr(r->out, "kaput") != NULL && strstr(r->out, "stack traceback") != NULL,
              "%s: carries the message and traceback\n%s", modes[m], r->out);
  }
}

Test(modes, uncopyable_argument_names_its_path) {
  /* nogil copies arguments into a fresh interpreter; a file handle cannot go */
  run_result *r = GV("-q", "-m", "nogil", "-e",
                     "local ok, e = pcall(function() return gil.spawn(print, 1, {f = io.stdout}):join() end) "
                     "print(ok, e)");
  expect_exit(r, 0);
  cr_expect(strstr(r->out, "false") == r->out && strstr(r->out, "argument[3].f: cannot copy a userdata") != NULL,
            "nogil:\n%s", r->out);
  /* fork mode copies memory at fork: the same call just works */
  r = GV("-q", "-m", "fork", "-e", "gil.spawn(print, 1, {f = io.stdout}):join() print('joined')");
  expect_exit(r, 0);
  cr_expect(strstr(r->out, "1\ttable: ") == r->out && strstr(r->out, "joined\n") != NULL, "fork:\n%s", r->out);
}

Test(modes, results_come_back_by_copy) {
  for (int m = 0; m < 3; m++) {
    run_result *r = GV("-q", "-m", modes[m], "-e",
                       "config = {depth = 3} "
                       "local function work(t) config.depth = 99 return {sum = t[1] + t[2], name = 'x'}, 7 end "
                       "local a, b = gil.spawn(work, {40, 2}):join() "
                       "print(a.sum, a.name, b, config.depth)");
    expect_exit(r, 0);
    /* in gil mode the worker shares `config`; elsewhere it changed its own copy */
    cr_expect_str_eq(r->out, m == 0 ? "42\tx\t7\t99\n" : "42\tx\t7\t3\n", "mode %s", modes[m]);
  }
}

Test(modes, dead_child_is_reported_not_waited_for) {
  run_result *r = GV("-q", "-m", "fork", "-e",
                     "local h = gil.spawn(function() os.execute('kill -9 $PPID') gil.sleep(30) end) "
                     "print(pcall(h.join, h))");
  expect_exit(r, 0);
  cr_expect(strstr(r->out, "false") == r->out && strstr(r->out, "killed by signal 9") != NULL,
            "join raises naming the signal\n%s", r->out);
  r = GV("-q", "-e", "local h = gil.process(function() os.exit(3) end) print(pcall(h.join, h))");
  expect_exit(r, 0);
  cr_expect(strstr(r->out, "exited with status 3") != NULL, "join names the exit status\n%s", r->out);
}

Test(modes, fork_flushes_stdout_before_forking) {
  run_result *r = GV("-q", "-m", "fork", "-e",
                     "io.write('once ') gil.spawn(function() io.write('child ') end):join() print('end')");
  expect_exit(r, 0);
  cr_expect_str_eq(r->out, "once child end\n");
}

Test(modes, timeout_kills_processes_without_hanging) {
  run_result *r = GV("-m", "fork", "--timeout", "0.5s", "-e",
                     "local a = gil.spawn(function() while true do end end) "
                     "local b = gil.spawn(function() gil.sleep(60) end) a:join() b:join()");
  expect_exit(r, 124);
  expect_err_has(r, "stopped: timeout");
  cr_expect(strstr(r->err, "never joined") == NULL, "a process we killed is not a script error\n%s", r->err);
}

Test(compare, table_has_every_mode_and_same_output) {
  char json[] = "/tmp/gilvm-test-compare-XXXXXX";
  int fd = mkstemp(json);
  cr_assert(fd >= 0);
  close(fd);
  run_result *r = GV("compare", "--json", json, script("cpu_bound.lua"), "2", "2000000");
  expect_exit(r, 0);
  cr_expect_str_eq(r->out, "threads=2 iterations=2000000 sum=4000001\n", "the script's output once");
  for (int m = 0; m < 3; m++) {
    char row[16];
    snprintf(row, sizeof row, "\n  %-6s ", modes[m]);
    expect_err_has(r, row);
  }
  expect_err_has(r, "output: identical in all three modes");
  char cmd[600];
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
           "assert d[\"stdout_identical\"] is True; "
           "assert sorted(d[\"modes\"]) == [\"fork\",\"gil\",\"nogil\"]; "
           "assert all(d[\"modes\"][m][\"mode\"] == m for m in d[\"modes\"])' %s",
           json);
  cr_expect_eq(system(cmd), 0, "the --json file is valid and complete");
  unlink(json);
}

Test(compare, points_at_output_that_differs) {
  run_result *r = GV("compare", script("race.lua"), "2", "1000");
  expect_exit(r, 0);
  expect_err_has(r, "output differs in nogil mode");
  expect_err_has(r, "output differs in fork mode");
  expect_err_has(r, "why: workers got copies");
  expect_err_has(r, "lost_value add"); /* figures table: a row per gil.report name */
}

Test(compare, usage_errors) {
  run_result *r = GV("compare", "-m", "fork", script("cpu_bound.lua"));
  expect_exit(r, 2);
  expect_err_has(r, "compare runs every mode");
  r = GV("compare");
  expect_exit(r, 2);
}

Test(compare, passes_options_on_however_they_were_written) {
  const char *code = "io.write(gil.getswitchinterval(), ' ')";
  run_result *r =
      GV("compare", "-qs1ms", "--arena=8M", "--timeo=30s", "-e", code, data_in("e2e", "args.lua"), "-s", "5ms");
  expect_exit(r, 0);
  cr_expect(strncmp(r->out, "0.001 n\t2\ndots\t-s\t5ms\n", 22) == 0,
            "each run got -s 1ms and -e, the script its own -s 5ms\nstdout:\n%s\nstderr:\n%s", r->out, r->err);
  expect_err_has(r, "fork mode"); /* three runs (args.lua's arg table shows each run's -m) */
}

Test(compare, refuses_what_draws_one_run) {
  const char *const opts[][2] = { { "--trace", "t.json" }, { "--svg", "t.svg" }, { "--timeline", NULL } };
  for (int i = 0; i < 3; i++) {
    run_result *r = opts[i][1] ? GV("compare", opts[i][0], opts[i][1], script("cpu_bound.lua"))
                               : GV("compare", opts[i][0], script("cpu_bound.lua"));
    expect_exit(r, 2);
    expect_err_has(r, opts[i][0]);
    expect_err_has(r, "not compare");
    cr_expect(strstr(r->err, "running in") == NULL && r->out[0] == '\0', "nothing ran\nstderr:\n%s", r->err);
  }
}
