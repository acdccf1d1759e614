/*
 * test_e2e.c — end-to-end tests of the gilvm binary.
 *
 * Every test runs the real binary ($GILVM) on a script from scripts/
 * ($GILVM_SCRIPTS) or a small fixture from tests/data/e2e/ ($GILVM_TESTDATA)
 * through run_helper.c, and checks what a user sees: stdout, stderr (the
 * report, messages), the exit status, and how long it took.
 *
 * Rules kept throughout, because the machine has 2 cores, is busy, and the
 * suite also runs against ASan/UBSan and TSan builds of gilvm (5-20x slower
 * on Lua-heavy code):
 * - assert invariants, counts, orderings, exit codes and messages; a timed
 *   figure gets a lower bound only (a sleep took at least its time), never a
 *   wall-clock upper bound: timing shapes (overlap, forced switches per
 *   interval) are asserted exactly under --sim, in test_sim_figures.c;
 * - workloads are small (script arguments shrink them);
 * - every run has a hard wall-clock limit: a hung gilvm is killed and the
 *   test fails saying so, it never hangs the suite;
 * - after every run the child has been reaped, and stderr carries no
 *   sanitizer report;
 * - the few tests whose result depends on having both cores (parallel
 *   speed-up, I/O overlap) are in suite `timing` and run alone: they take an
 *   exclusive file lock that every other test takes shared.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "run_helper.h"

/* ------------------------------------------------------------ plumbing */

static const char *data(const char *name) { return data_in("e2e", name); }

static void expect_out_starts(const run_result *r, const char *start) {
  cr_assert(strncmp(r->out, start, strlen(start)) == 0, "stdout does not start with \"%s\"" CTX, start, CTXA(r));
}

static parsed_report report_of(const run_result *r) {
  parsed_report rr;
  cr_assert(report_parse_run(r->err, &rr), "no complete report on stderr" CTX, CTXA(r));
  return rr;
}

static int threads_of(const run_result *r, report_thread *rows, int max) {
  int n = report_threads(r->err, rows, max);
  cr_assert(n >= 1, "the report has no thread table" CTX, CTXA(r));
  return n;
}

/* The number after key in stdout (the fixtures print "key value"). */
static double out_number(const run_result *r, const char *key) {
  double v;
  cr_assert(report_number_after(r->out, key, &v), "stdout has no number after \"%s\"" CTX, key, CTXA(r));
  return v;
}

static double fabs_(double x) { return x < 0 ? -x : x; }
#define fabs fabs_

/* cpu_bound.lua's result, computed here: sum of (i*i) % 7 for i = 1..n. */
static long long sum_of_squares_mod7(long long n) {
  long long s = 0;
  for (long long i = 1; i <= n; i++) s += (i * i) % 7;
  return s;
}

/* ---- the timing lock: suite `timing` runs alone ---- */

static int lock_fd = -1;

static void take_lock(int how) {
  const char *dir = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/gilvm-e2e-timing.lock", dir && *dir ? dir : "/tmp");
  lock_fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
  if (lock_fd < 0) return; /* no lock: the margins still hold on a quiet machine */
  while (flock(lock_fd, how) != 0 && errno == EINTR) {}
}

static void shared_init(void) { take_lock(LOCK_SH); }
static void exclusive_init(void) { take_lock(LOCK_EX); }

static void fini(void) {
  test_cleanup();
  if (lock_fd >= 0) close(lock_fd); /* releases the lock */
  lock_fd = -1;
}

TestSuite(output, .init = shared_init, .fini = fini, .timeout = 120.);
TestSuite(scripts, .init = shared_init, .fini = fini, .timeout = 120.);
TestSuite(api, .init = shared_init, .fini = fini, .timeout = 120.);
TestSuite(cli, .init = shared_init, .fini = fini, .timeout = 120.);
TestSuite(stop, .init = shared_init, .fini = fini, .timeout = 120.);
TestSuite(timing, .init = exclusive_init, .fini = fini, .timeout = 180.);

/* ================================================== output and the report */

static const char output_lua_stdout[] =
    "line one\n"
    "no newline, then tab\t|\n"
    "from worker: payload\n"
    "7 seven 7.00\n"
    "last line without newline";

Test(output, stdout_is_the_script_output_and_report_is_on_stderr) {
  run_result *r = GV(data("output.lua"));
  expect_exit(r, 0);
  expect_out(r, output_lua_stdout);
  /* stderr is the report and nothing else */
  cr_assert(strncmp(r->err, "\n-- gilvm report ", 17) == 0, "stderr should start with the report" CTX, CTXA(r));
  size_t n = r->err_len;
  cr_assert(n > 2 && r->err[n - 1] == '\n' && r->err[n - 2] == '-', "stderr should end with the report's rule" CTX,
            CTXA(r));
  expect_err_lacks(r, "line one");
  expect_err_lacks(r, "payload");
  cr_assert(strstr(r->out, "gilvm report") == NULL, "the report leaked into stdout" CTX, CTXA(r));
}

Test(output, quiet_suppresses_the_report) {
  run_result *r = GV("-q", data("output.lua"));
  expect_exit(r, 0);
  expect_out(r, output_lua_stdout);
  cr_assert(r->err_len == 0, "-q: stderr should be empty" CTX, CTXA(r));
  run_result *l = GV("--quiet", data("output.lua"));
  expect_exit(l, 0);
  expect_out(l, output_lua_stdout);
  cr_assert(l->err_len == 0, "--quiet: stderr should be empty" CTX, CTXA(l));
}

Test(output, large_outputs_pass_through_untouched) {
  /* 1 MiB on stdout and 512 KiB on stderr, interleaved: more than any pipe
     holds, so this also shows neither side blocks on the other. */
  run_result *r = GV("-q", data("bigoutput.lua"), "1024");
  expect_exit(r, 0);
  cr_assert_eq(r->out_len, (size_t)1024 * 1024, "stdout: %zu bytes", r->out_len);
  cr_assert_eq(r->err_len, (size_t)512 * 1024, "stderr: %zu bytes", r->err_len);
  char line[65], eline[65];
  memset(line, 'o', 63);
  memset(eline, 'e', 63);
  line[63] = eline[63] = '\n';
  line[64] = eline[64] = '\0';
  for (size_t off = 0; off < r->out_len; off += 64)
    cr_assert(memcmp(r->out + off, line, 64) == 0, "stdout corrupted at byte %zu", off);
  for (size_t off = 0; off < r->err_len; off += 64)
    cr_assert(memcmp(r->err + off, eline, 64) == 0, "stderr corrupted at byte %zu", off);
}

Test(output, report_has_the_run_fields) {
  run_result *r = GV(script("cpu_bound.lua"), "2", "1000000");
  expect_exit(r, 0);
  parsed_report rr = report_of(r);
  cr_expect_str_eq(rr.mode, "gil");
  cr_expect_str_eq(rr.policy, "cpython");
  cr_expect(fabs(rr.interval_s - 0.005) < 1e-9, "default switch interval: %g s", rr.interval_s);
  cr_expect(rr.wall_s > 0, "wall %g", rr.wall_s);
  cr_expect(rr.cpu_s > 0, "cpu %g", rr.cpu_s);
  /* parallelism is cpu / wall, both printed with 3-4 digits */
  cr_expect(fabs(rr.parallelism - rr.cpu_s / rr.wall_s) <= 0.02 + 0.02 * rr.parallelism,
            "parallelism %.2f, cpu/wall %.3f", rr.parallelism, rr.cpu_s / rr.wall_s);
  cr_expect(rr.held_pct > 0 && rr.held_pct <= 100.05, "GIL held %.1f%%", rr.held_pct);
  cr_expect(rr.contended_pct >= 0 && rr.contended_pct <= 100.05, "contended %.1f%%", rr.contended_pct);
  cr_expect(rr.switches >= 1, "switches %ld", rr.switches);
  cr_expect(rr.forced <= rr.switches, "forced %ld > switches %ld", rr.forced, rr.switches);
  cr_expect(rr.forced <= rr.drop_requests, "forced %ld > drop requests %ld", rr.forced, rr.drop_requests);
  cr_expect_eq(rr.handoffs, rr.forced, "handoff latencies recorded (%ld) != forced switches (%ld)", rr.handoffs,
               rr.forced);
  if (rr.forced > 0) {
    double med, p99, max;
    const char *rep = report_find(r->err);
    cr_assert(report_duration_after(rep, "median ", &med) && report_duration_after(rep, "p99 ", &p99) &&
                  report_duration_after(rep, "max ", &max),
              "handoff latency figures missing" CTX, CTXA(r));
    cr_expect(med <= p99 && p99 <= max, "handoff latency median %g <= p99 %g <= max %g", med, p99, max);
  } else {
    expect_err_has(r, "handoff latency   - (no forced handoffs)");
  }
  cr_expect(strstr(r->err, "stopped:") == NULL, "a normal run is not 'stopped'");
}

Test(output, report_has_a_row_per_thread_main_first) {
  run_result *r = GV(script("cpu_bound.lua"), "3", "600000");
  expect_exit(r, 0);
  report_thread rows[8];
  int n = threads_of(r, rows, 8);
  cr_assert_eq(n, 4, "expected 4 thread rows (main + 3 workers), got %d" CTX, n, CTXA(r));
  cr_expect_str_eq(rows[0].name, "main");
  cr_expect_str_eq(rows[1].name, "1:sum_of_squares");
  cr_expect_str_eq(rows[2].name, "2:sum_of_squares");
  cr_expect_str_eq(rows[3].name, "3:sum_of_squares");
  parsed_report rr = report_of(r);
  long acq = 0, forced = 0;
  for (int i = 0; i < n; i++) {
    cr_expect(rows[i].acq >= 1, "%s took the GIL %ld times", rows[i].name, rows[i].acq);
    cr_expect(rows[i].held_s > 0, "%s held the GIL for %g s", rows[i].name, rows[i].held_s);
    acq += rows[i].acq;
    forced += rows[i].forced;
  }
  for (int i = 1; i < n; i++) cr_expect(rows[i].cpu_s > 0, "%s: cpu %g", rows[i].name, rows[i].cpu_s);
  cr_expect(acq >= rr.switches, "acquisitions %ld < switches %ld", acq, rr.switches);
  cr_expect(forced <= rr.drop_requests, "forced drops %ld > drop requests %ld", forced, rr.drop_requests);
  /* main spent its time joining, with the GIL released */
  cr_expect(rows[0].blocked_s > 0, "main blocked %g s", rows[0].blocked_s);
}

Test(output, script_figures_appear_in_the_report) {
  run_result *r = GV(data("figures.lua"));
  expect_exit(r, 0);
  expect_out(r, "");
  struct {
    const char *name, *value;
  } want[] = {
    { "answer", "43" }, { "ratio", "0.125" }, { "label", "hello" }, { "flag", "true" }, { "from_worker", "-7" },
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    char v[64];
    cr_assert(report_figure(r->err, want[i].name, v, sizeof v), "figure %s missing" CTX, want[i].name, CTXA(r));
    cr_expect_str_eq(v, want[i].value, "figure %s", want[i].name);
  }
  cr_expect_eq(count_occurrences(r->err, "  answer "), 1, "a figure reported twice has one row" CTX, CTXA(r));
  /* the figures section comes after the thread table */
  const char *rows = strstr(r->err, "\n  worker ");
  const char *figs = strstr(r->err, "script figures");
  cr_expect(rows && figs && rows < figs, "figures should follow the thread table");
}

/* ============================================================ the scripts */

/* Each download sleeps its time. That the three overlap (0.5 s in all, not
   1.5 s) is a timing shape: test_sim_figures asserts it exactly under --sim
   (moved::io_bound_overlaps_exactly); here only lower bounds, which load
   cannot break. */
Test(timing, io_bound_sleeps_take_their_time) {
  run_result *r = GV(script("io_bound.lua"), "3", "0.5");
  expect_exit(r, 0);
  /* the script's own verdict is a wall-clock guess */
  expect_out_has(r,
                 "file1: 1000 bytes\n"
                 "file2: 2000 bytes\n"
                 "file3: 3000 bytes\n"
                 "3 downloads of 0.5 s each: ");
  parsed_report rr = report_of(r);
  cr_expect(rr.wall_s >= 0.5, "three 0.5 s sleeps took only %g s", rr.wall_s);
  report_thread rows[8];
  int n = threads_of(r, rows, 8);
  cr_assert_eq(n, 4, "main + 3 downloads" CTX, CTXA(r));
  for (int i = 1; i < n; i++) {
    cr_expect(strstr(rows[i].name, "download") != NULL, "row %d: %s", i, rows[i].name);
    cr_expect(rows[i].blocked_s >= 0.45, "%s blocked only %g s", rows[i].name, rows[i].blocked_s);
  }
  char v[64];
  cr_assert(report_figure(r->err, "wall_s", v, sizeof v), "figure wall_s" CTX, CTXA(r));
  cr_expect(strtod(v, NULL) >= 0.5, "the script timed %s s for 0.5 s sleeps" CTX, v, CTXA(r));
  cr_expect(report_figure(r->err, "downloads", v, sizeof v) && strcmp(v, "3") == 0, "figure downloads");
}

Test(scripts, cpu_bound_same_sum_for_1_2_4_threads) {
  const long long total = 600000;
  long long sum = sum_of_squares_mod7(total);
  int threads[] = { 1, 2, 4 };
  for (int i = 0; i < 3; i++) {
    run_result *r = GV(script("cpu_bound.lua"), fmt("%d", threads[i]), fmt("%lld", total));
    expect_exit(r, 0);
    expect_out(r, fmt("threads=%d iterations=%lld sum=%lld\n", threads[i], total, sum));
    report_thread rows[8];
    cr_expect_eq(threads_of(r, rows, 8), threads[i] + 1, "rows for %d threads" CTX, threads[i], CTXA(r));
  }
}

Test(scripts, cpu_bound_parallelism_stays_near_one_under_the_gil) {
  run_result *r = GV(script("cpu_bound.lua"), "2", "3000000");
  expect_exit(r, 0);
  expect_out(r, fmt("threads=2 iterations=3000000 sum=%lld\n", sum_of_squares_mod7(3000000)));
  parsed_report rr = report_of(r);
  cr_expect(rr.parallelism > 0, "parallelism %.2f", rr.parallelism);
  cr_expect(rr.parallelism <= 1.3, "two CPU threads under one GIL ran with parallelism %.2fx" CTX, rr.parallelism,
            CTXA(r));
}

/* How many forced switches two CPU threads make is a timing shape
   (test_sim_figures: moved::forced_switches_follow_the_interval, exact).
   Here by construction: each worker spins until the other has started, so
   the second can only start if the first is forced to drop the GIL. */
Test(scripts, cpu_bound_two_threads_force_switches) {
  run_result *r = GV("-s", "1ms", script("cpu_bound.lua"), "2", "2000000");
  expect_exit(r, 0);
  expect_out(r, fmt("threads=2 iterations=2000000 sum=%lld\n", sum_of_squares_mod7(2000000)));
  parsed_report rr = report_of(r);
  cr_expect(rr.drop_requests >= rr.forced, "drop requests %ld < forced %ld", rr.drop_requests, rr.forced);
  cr_expect_eq(rr.handoffs, rr.forced, "one handoff latency per forced switch");
  r = GV("-s", "1ms", "-e",
         "local x, y = gil.value(0), gil.value(0)\n"
         "local function spin(me, other) me:set(1); while other:get() == 0 do end end\n"
         "local a, b = gil.spawn(spin, x, y), gil.spawn(spin, y, x); a:join(); b:join()");
  expect_exit(r, 0);
  rr = report_of(r);
  cr_expect(rr.forced > 0, "two spinning threads made no forced switch" CTX, CTXA(r));
  cr_expect(rr.drop_requests >= rr.forced, "drop requests %ld < forced %ld", rr.drop_requests, rr.forced);
  cr_expect_eq(rr.handoffs, rr.forced, "one handoff latency per forced switch");
  report_thread rows[4];
  int n = threads_of(r, rows, 4);
  cr_assert_eq(n, 3, CTX, CTXA(r));
  cr_expect(rows[1].forced + rows[2].forced > 0, "the workers' forced columns are both 0" CTX, CTXA(r));
}

Test(scripts, race_plain_and_locked_lose_no_update) {
  run_result *r = GV(script("race.lua"), "2", "20000");
  expect_exit(r, 0);
  expect_out_has(r, "plain x = x + 1        expected 40000, got 40000: 0 lost updates\n");
  expect_out_has(r, "call, under a lock     expected 40000, got 40000: 0 lost updates\n");
  expect_out_has(r, "call between r/w       expected 40000, got ");
  char v[64];
  cr_assert(report_figure(r->err, "lost_plain x = x + 1", v, sizeof v), "figure lost_plain" CTX, CTXA(r));
  cr_expect_str_eq(v, "0");
  cr_assert(report_figure(r->err, "lost_call, under a lock", v, sizeof v), "figure lost_call, under a lock");
  cr_expect_str_eq(v, "0");
  cr_assert(report_figure(r->err, "lost_call between r/w", v, sizeof v), "figure lost_call between r/w");
  long lost = strtol(v, NULL, 10);
  cr_expect(lost >= 0 && lost < 40000, "lost updates with a call between read and write: %ld", lost);
}

Test(scripts, convoy_runs_and_prints_its_line) {
  run_result *r = GV(script("convoy.lua"), "20", "0.001");
  expect_exit(r, 0);
  const char *prefix = "switch interval 5 ms: extra latency per 1 ms sleep: median ";
  cr_assert(strncmp(r->out, prefix, strlen(prefix)) == 0, "stdout should start with \"%s\"" CTX, prefix, CTXA(r));
  cr_expect_eq(count_occurrences(r->out, "\n"), 1, "one line" CTX, CTXA(r));
  double median = out_number(r, ": median "), p99 = out_number(r, " ms, p99 ");
  cr_expect(median >= -0.5 && median <= p99, "median %g ms, p99 %g ms", median, p99);
  char v[64];
  cr_expect(report_figure(r->err, "io_extra_median_ms", v, sizeof v), "figure io_extra_median_ms" CTX, CTXA(r));
  cr_expect(report_figure(r->err, "io_extra_p99_ms", v, sizeof v), "figure io_extra_p99_ms" CTX, CTXA(r));
  report_thread rows[4];
  cr_expect_eq(threads_of(r, rows, 4), 3, "main, hog, io_thread");
  cr_expect_str_eq(rows[1].name, "1:hog");
  cr_expect_str_eq(rows[2].name, "2:io_thread");
}

Test(scripts, loop_prints_its_sum) {
  run_result *r = GV("-q", script("loop.lua"), "1000");
  expect_exit(r, 0);
  long long s = 0;
  for (int i = 1; i <= 1000; i++) s += i % 3;
  expect_out(r, fmt("%lld\n", s));
}

/* ================================================================ gil API */

Test(api, spawn_and_thread_pass_arguments_and_return_several_results) {
  run_result *r = GV("-q", data("spawn.lua"));
  expect_exit(r, 0);
  expect_out(r,
             "spawn\t5\t7\tthree\tnil\t42\t4\n"
             "thread\t3\tx\tnil\t5\n"
             "nested\t41\n"
             "none\t0\n"
             "twice\t7\tthree\tnil\t42\t4\n");
}

Test(api, join_timeout_returns_nil_and_timeout_on_a_sleeping_worker) {
  run_result *r = GV("-q", data("join_timeout.lua"));
  expect_exit(r, 0);
  expect_out(r,
             "timed out\tnil\ttimeout\t2\n"
             "waited at least 0.04\ttrue\n"
             "joined\twoke\n"
             "join(5) on a finished worker\twoke\n");
}

Test(api, worker_error_is_reraised_at_join_with_name_and_traceback) {
  run_result *r = GV("-q", data("worker_error.lua"));
  expect_exit(r, 0);
  expect_out_has(r, "ok\tfalse\n");
  expect_out_has(r, "message:\terror in thread '1:fails': ");
  expect_out_has(r, "worker_error.lua:4: attempt to index a nil value");
  expect_out_has(r, "stack traceback:");
  /* the worker's own traceback: the failing line inside `fails` */
  const char *tb = strstr(r->out, "stack traceback:");
  cr_assert(tb && strstr(tb, "worker_error.lua:4:"), "the traceback should show the worker's line 4" CTX, CTXA(r));
  cr_expect(r->err_len == 0, "a joined and caught error is not reported again" CTX, CTXA(r));
}

Test(api, uncaught_worker_error_at_join_fails_main) {
  run_result *r = GV("-q", data("worker_error.lua"), "uncaught");
  expect_exit(r, 1);
  expect_out(r, "");
  expect_err_has(r, "gilvm: error in thread 'main': ");
  expect_err_has(r, "error in thread '1:fails': ");
  expect_err_has(r, "worker_error.lua:4: attempt to index a nil value");
  expect_err_has(r, "stack traceback:");
  expect_err_lacks(r, "never joined"); /* it was joined */
}

Test(api, unjoined_failing_worker_makes_exit_1) {
  run_result *r = GV(data("unjoined_error.lua"));
  expect_exit(r, 1);
  expect_out(r, "end of main\n");
  expect_err_has(r, "gilvm: error in thread '1:bad' (never joined): ");
  expect_err_has(r, "unjoined_error.lua:2: boom in a worker nobody joined");
  expect_err_has(r, "stack traceback:");
  /* the message comes before the report */
  const char *msg = strstr(r->err, "never joined"), *rep = report_find(r->err);
  cr_expect(msg && rep && msg < rep, "the error should be printed before the report" CTX, CTXA(r));
}

Test(api, thread_names_current_and_renaming) {
  run_result *r = GV(data("names.lua"));
  expect_exit(r, 0);
  expect_out_has(r, "main\tmain\t0\tthread main\n");
  expect_out_has(r, "global\t1:crunch\t1\t1:crunch\n");
  expect_out_has(r, "local\t2:local_fn\t2\t2:local_fn\t2\n");
  expect_out_has(r, "anon\t3@names.lua:9\n");
  expect_out_has(r, "renamed\trenamed worker\trenamed worker\n");
  expect_out_has(r, "set id\tfalse\t");
  expect_out_has(r, "a thread handle has no field 'id' to set\n");
  expect_out_has(r, "unknown field\tnil\n");
  /* the report uses the names, the new one included */
  report_thread rows[8];
  int n = threads_of(r, rows, 8);
  cr_assert_eq(n, 5, "main + 4 workers" CTX, CTXA(r));
  cr_expect_str_eq(rows[0].name, "main");
  cr_expect_str_eq(rows[1].name, "1:crunch");
  cr_expect_str_eq(rows[2].name, "2:local_fn");
  cr_expect_str_eq(rows[3].name, "3@names.lua:9");
  cr_expect_str_eq(rows[4].name, "renamed worker");
}

Test(api, mode_cpu_count_now_switchinterval_and_require) {
  run_result *r = GV(data("facts.lua"));
  expect_exit(r, 0);
  expect_out(r,
             "mode\tgil\n"
             "cpu_count\tinteger\ttrue\n"
             "initial interval\t0.005\n"
             "after set 0.001\t0.001\n"
             "after set 0.02\t0.02\n"
             "set 0\tfalse\tbad argument #1 to 'gil.setswitchinterval' (switch interval must be greater than 0)\n"
             "require\ttrue\ttrue\n"
             "now monotonic\ttrue\tsleep 0.02 advanced >= 0.019\ttrue\n");
  /* the report shows the interval in force at the end */
  parsed_report rr = report_of(r);
  cr_expect(fabs(rr.interval_s - 0.02) < 1e-9, "report's switch interval %g s", rr.interval_s);
}

Test(api, switch_interval_option_is_what_the_script_sees) {
  run_result *r = GV("-q", "-s", "2ms", "-e", "print(gil.getswitchinterval())");
  expect_exit(r, 0);
  expect_out(r, "0.002\n");
}

Test(api, compute_takes_at_least_its_time) {
  run_result *r = GV("-q", data("compute.lua"), "0.05");
  expect_exit(r, 0);
  expect_out_has(r, "compute 0.05 returned integer wall ");
  double wall = out_number(r, " wall ");
  cr_expect(wall >= 0.04, "gil.compute(0.05) took %g s of wall time", wall);
  expect_out_has(r, "bad arg\tfalse\tbad argument #1 to 'compute' (non-negative number expected)\n");
}

/* gil.native(s, release): returns the wall time and start gap of one run. */
static void native_run(const char *release, double s, double *wall, double *gap) {
  run_result *r = GV(data("native.lua"), release, fmt("%g", s));
  expect_exit(r, 0);
  *wall = out_number(r, "wall ");
  *gap = out_number(r, "start_gap ");
  report_thread rows[4];
  int n = threads_of(r, rows, 4);
  cr_assert_eq(n, 3, "main + 2 workers" CTX, CTXA(r));
  for (int i = 1; i < 3; i++) {
    if (strcmp(release, "true") == 0)
      cr_expect(rows[i].nogil_s >= 0.9 * s, "%s ran without the GIL for %g s", rows[i].name, rows[i].nogil_s);
    else
      cr_expect(rows[i].nogil_s == 0, "%s: gil.native(s, false) counted %g s without the GIL", rows[i].name,
                rows[i].nogil_s);
  }
}

/* While a thread is inside gil.native(s, true) another thread runs Lua: by
   construction, not by timing. The switch interval is so long that no forced
   switch can happen, so main takes the GIL back only if the worker lets go
   of it; the worker loops on short native calls until main has run (see
   native_release.lua). How much faster two such calls finish together is a
   speed figure: bench/run measures it, no test does. */
static void native_release_run(const char *release, long *calls, long *seen) {
  run_result *r = GV("-s", "1000s", data("native_release.lua"), release);
  expect_exit(r, 0);
  *calls = (long)out_number(r, "calls ");
  *seen = (long)out_number(r, "flag_seen ");
}

Test(api, native_with_release_lets_another_thread_run) {
  long calls, seen;
  native_release_run("true", &calls, &seen);
  cr_expect_eq(seen, 1, "main never ran while the worker was in gil.native(0.01, true) (%ld calls)", calls);
  cr_expect(calls >= 1 && calls < 500, "the worker made %ld calls before main ran", calls);
}

Test(api, native_without_release_keeps_the_gil) {
  long calls, seen;
  native_release_run("false", &calls, &seen);
  cr_expect_eq(calls, 20, "the worker made %ld calls", calls);
  cr_expect_eq(seen, 0, "main ran while the worker held the GIL in gil.native(0.01, false)");
}

Test(api, native_with_release_counts_time_without_the_gil) {
  double wall, gap;
  native_run("true", 0.1, &wall, &gap); /* each worker's no-GIL time >= its CPU time */
  cr_expect(wall >= 0.1, "two gil.native(0.1, true) calls took %g s", wall);
}

Test(api, native_without_release_does_not_overlap) {
  const double s = 0.2;
  double wall, gap;
  native_run("false", s, &wall, &gap);
  /* each call needs s of its own CPU time and keeps the GIL throughout */
  cr_expect(gap >= 0.95 * s, "with release=false the second thread started only %g s after the first", gap);
  cr_expect(wall >= 0.95 * 2 * s, "two gil.native(%g, false) calls took %g s: they overlapped", s, wall);
}

Test(api, lock_acquire_release_locked) {
  run_result *r = GV("-q", data("lock_basic.lua"));
  expect_exit(r, 0);
  expect_out(r,
             "new locked\tfalse\n"
             "acquire\ttrue\n"
             "locked\ttrue\n"
             "again\tfalse\tlock already held by this thread (main): it is not re-entrant\n"
             "release\n"
             "locked after release\tfalse\n"
             "release unheld\tfalse\trelease of an unlocked lock\n"
             "acquire(0) free\ttrue\n"
             "acquire(0.01) free\ttrue\n");
}

Test(api, lock_held_by_another_thread) {
  run_result *r = GV("-q", data("lock_contended.lua"));
  expect_exit(r, 0);
  expect_out(r,
             "acquire(0.05) while held\tfalse\ttrue\n"
             "acquire(0) while held\tfalse\n"
             "locked\ttrue\n"
             "release other's\tfalse\trelease of a lock held by another thread (1:holder)\n"
             "acquire() waits for the release\ttrue\ttrue\n"
             "worker\treleased\n"
             "locked at end\tfalse\n");
}

static void coroutine_case(const char *how) {
  /* --timeout turns a breaker that misses the coroutine (a hang) into a failure;
     it takes milliseconds, the margin is for a slow, busy machine */
  run_result *r = GV("--timeout", "30s", data("coroutine.lua"), how);
  expect_exit(r, 0);
  expect_out(r, "setter ran\nspinner saw done\ttrue\n");
  parsed_report rr = report_of(r);
  cr_expect(rr.forced >= 1, "%s: the spinning coroutine was never forced to switch" CTX, how, CTXA(r));
  report_thread row;
  cr_assert(report_thread_named(r->err, "1:spinner", 0, &row), "row 1:spinner" CTX, CTXA(r));
  cr_expect(row.forced >= 1, "%s: 1:spinner was never forced to drop the GIL", how);
}

Test(api, coroutine_wrap_cpu_loop_is_preempted) { coroutine_case("wrap"); }
Test(api, coroutine_resume_cpu_loop_is_preempted) { coroutine_case("resume"); }
Test(api, nested_coroutine_cpu_loop_is_preempted) { coroutine_case("nested"); }

Test(api, arg_table_and_varargs_like_lua) {
  const char *args = data("args.lua");
  run_result *r = GV("-q", "-s", "2ms", args, "a", "b c");
  expect_exit(r, 0);
  expect_out(r,
             fmt("n\t2\n"
                 "dots\ta\tb c\n"
                 "-4\t%s\n"
                 "-3\t-q\n"
                 "-2\t-s\n"
                 "-1\t2ms\n"
                 "0\t%s\n"
                 "1\ta\n"
                 "2\tb c\n",
                 gilvm_path(), args));
  /* `run`, -e and `--` are gilvm's too; what follows the script is the script's */
  run_result *r2 = GV("run", "-q", "-e", "x=1", "--", args, "-q", "--timeout");
  expect_exit(r2, 0);
  expect_out(r2,
             fmt("n\t2\n"
                 "dots\t-q\t--timeout\n"
                 "-6\t%s\n"
                 "-5\trun\n"
                 "-4\t-q\n"
                 "-3\t-e\n"
                 "-2\tx=1\n"
                 "-1\t--\n"
                 "0\t%s\n"
                 "1\t-q\n"
                 "2\t--timeout\n",
                 gilvm_path(), args));
}

Test(api, script_from_stdin) {
  run_opts o = { .stdin_data = "print('from stdin', ...)\n" };
  run_result *r = GVO(&o, "-q", "-", "z");
  expect_exit(r, 0);
  expect_out(r, "from stdin\tz\n");
}

/* ==================================================================== CLI */

Test(cli, help_goes_to_stdout_with_exit_0) {
  const char *forms[] = { "-h", "--help" };
  for (int i = 0; i < 2; i++) {
    run_result *r = GV(forms[i]);
    expect_exit(r, 0);
    cr_assert(strncmp(r->out, "Usage: gilvm", 12) == 0, "%s: usage expected on stdout" CTX, forms[i], CTXA(r));
    const char *opts[] = { "--mode",  "--switch-interval", "--gil",  "--check-interval", "-e CODE",
                           "--quiet", "--timeout",         "--help", "--version",        "500us" };
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) expect_out_has(r, opts[k]);
    cr_expect(r->err_len == 0, "%s: stderr should be empty" CTX, forms[i], CTXA(r));
  }
  /* -h wins over a script: nothing runs */
  run_result *r = GV("-h", data("output.lua"));
  expect_exit(r, 0);
  expect_out_has(r, "Usage: gilvm");
  cr_expect(strstr(r->out, "line one") == NULL, "the script should not run after -h");
}

Test(cli, version) {
  const char *forms[] = { "-V", "--version" };
  for (int i = 0; i < 2; i++) {
    run_result *r = GV(forms[i]);
    expect_exit(r, 0);
    cr_expect(strncmp(r->out, "gilvm ", 6) == 0 && strstr(r->out, "Lua 5.4") && count_occurrences(r->out, "\n") == 1,
              "%s: one line \"gilvm X (Lua 5.4)\"" CTX, forms[i], CTXA(r));
    cr_expect(r->err_len == 0, "%s: stderr should be empty" CTX, forms[i], CTXA(r));
  }
}

Test(cli, unknown_option_is_exit_2) {
  expect_usage_error(GV("--bogus", data("output.lua")), "unknown option '--bogus'");
  expect_usage_error(GV("-x", data("output.lua")), "unknown option '-x'");
}

Test(cli, missing_option_value_is_exit_2) {
  const char *opts[] = { "-s", "--switch-interval", "--timeout", "-m", "-g", "-e", "--check-interval" };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
    expect_usage_error(GV(opts[i]), fmt("option '%s' needs a value", opts[i]));
}

/* getopt_long's syntax, as users type it: each form must reach the option it names. */
static void interval_case(const char *want, const char *const *args) {
  run_result *r = gv_run(NULL, args);
  expect_exit(r, 0);
  expect_out(r, want);
  expect_no_report(r); /* each case also says -q, bundled or not */
}
#define INTERVAL(want, ...) interval_case(want, (const char *const[]){ __VA_ARGS__, NULL })

Test(cli, option_values_after_equals_or_as_the_next_argument) {
  const char *code = "print(gil.getswitchinterval(), gil.mode())";
  INTERVAL("0.002\tfork\n", "-q", "--switch-interval=2ms", "--mode=fork", "-e", code);
  INTERVAL("0.002\tnogil\n", "-q", "--switch-interval", "2ms", "--mode", "nogil", "-e", code);
  INTERVAL("0.002\tgil\n", "--quiet", "-s", "2ms", "-m", "gil", "-e", code);
  run_result *r = GV("-q", "--timeout=2s", "--arena=8M", "--gil=fifo", "-e", "print('ran')");
  expect_exit(r, 0);
  expect_out(r, "ran\n");
}

Test(cli, short_options_bundle) {
  const char *code = "print(gil.getswitchinterval(), gil.mode())";
  INTERVAL("0.001\tgil\n", "-qs", "1ms", "-e", code);
  INTERVAL("0.001\tgil\n", "-qs1ms", "-e", code);
  INTERVAL("0.001\tnogil\n", "-qm", "nogil", "-s1ms", "-e", code);
  INTERVAL("0.001\tgil\n", "-s1ms", "-qe", code);
}

Test(cli, long_options_may_be_shortened_while_unambiguous) {
  INTERVAL("0.003\tfork\n", "--qu", "--switch=3ms", "--mo", "fork", "-e", "print(gil.getswitchinterval(), gil.mode())");
  expect_usage_error(GV("--time", "1s", data("output.lua")),
                     "ambiguous option '--time' (could be --timeline, --timeout)");
  expect_usage_error(GV("--t=x", data("output.lua")), "ambiguous option '--t'");
}

Test(cli, several_exec_options_run_in_the_order_given) {
  run_result *r = GV("-qe", "s = 'a'", "-e", "s = s .. 'b'", "-e", "s = s .. 'c'", "-e", "print(s)");
  expect_exit(r, 0);
  expect_out(r, "abc\n");
}

Test(cli, double_dash_ends_the_options) {
  run_result *r = GV("-q", "--", data("args.lua"), "-s", "1ms");
  expect_exit(r, 0);
  expect_out_starts(r, "n\t2\ndots\t-s\t1ms\n"); /* the script gets -s 1ms */
  /* after --, even a name that looks like an option is the script */
  run_result *d = GV("-q", "--", "--bogus");
  expect_exit(d, 3);
  expect_err_has(d, "cannot open --bogus");
}

Test(cli, what_follows_the_script_is_the_scripts) {
  run_result *r = GV("-q", data("args.lua"), "-q", "--bogus", "-s", "1ms", "--", "-e", "error('ran')");
  expect_exit(r, 0);
  expect_out_starts(r, "n\t7\ndots\t-q\t--bogus\t-s\t1ms\t--\t-e\terror('ran')\n"); /* untouched */
  expect_out_has(r, "\n-1\t-q\n0\t"); /* gilvm's own options sit below arg[0], as lua5.4 puts them */
}

Test(cli, bad_options_say_what_was_wrong) {
  const char *out = data("output.lua");
  expect_usage_error(GV("--bogus=3", out), "unknown option '--bogus'");
  expect_usage_error(GV("-qx", out), "unknown option '-x'");
  expect_usage_error(GV("--quiet=yes", out), "option '--quiet' takes no value");
  expect_usage_error(GV("-qs"), "option '-s' needs a value");
  expect_usage_error(GV("--swi"), "option '--switch-interval' needs a value");
  expect_usage_error(GV("--json"), "option '--json' needs a value");
}

/* Every option --help lists is one gilvm knows: none of them is an unknown option. */
Test(cli, every_option_help_lists_is_known) {
  run_result *h = GV("--help");
  expect_exit(h, 0);
  int n = 0;
  const char *p = strstr(h->out, "\nOptions:\n");
  cr_assert(p, "--help has no Options: section" CTX, CTXA(h));
  for (p = strchr(p + 1, '\n'); p && p[1] != '\n'; p = strchr(p + 1, '\n')) { /* to the blank line */
    size_t indent = strspn(p + 1, " ");
    const char *opt = p + 1 + indent;
    if (indent > 6 || *opt != '-') continue; /* a description's continuation line */
    for (const char *o = opt; *o == '-';) { /* "-m, --mode MODE": each spelling */
      size_t len = strcspn(o, " ,\n");
      const char *name = fmt("%.*s", (int)len, o);
      run_result *r = GV(name);
      cr_expect(strstr(r->err, "unknown option") == NULL && strstr(r->err, "ambiguous") == NULL,
                "--help lists %s, gilvm does not know it" CTX, name, CTXA(r));
      n++;
      o += len;
      o += strspn(o, ", ");
    }
  }
  cr_expect(n >= 20, "found %d option spellings in --help" CTX, n, CTXA(h));
}

Test(cli, malformed_durations_are_exit_2) {
  const char *out = data("output.lua");
  expect_usage_error(GV("-s", "5xs", out), "bad switch interval '5xs'");
  expect_usage_error(GV("-s", "0", out), "bad switch interval '0'");
  expect_usage_error(GV("-s", "-1ms", out), "bad switch interval '-1ms'");
  expect_usage_error(GV("-s", "", out), "bad switch interval ''");
  expect_usage_error(GV("--switch-interval=ms", out), "bad switch interval 'ms'");
  expect_usage_error(GV("--timeout", "abc", out), "bad timeout 'abc'");
  expect_usage_error(GV("--timeout", "0", out), "bad timeout '0'");
  expect_usage_error(GV("--timeout=1 s", out), "bad timeout '1 s'");
}

Test(cli, durations_accepted) {
  struct {
    const char *opt, *val;
    double want;
  } cases[] = {
    { "-s", "500us", 0.0005 },
    { "-s", "0.5ms", 0.0005 },
    { "-s", "2s", 2.0 },
    { "-s", "0.01", 0.01 },
    { "-s1ms", NULL, 0.001 },
    { "--switch-interval=250us", NULL, 0.00025 },
    { "--switch-interval", "3ms", 0.003 },
    { "-s", "1000000ns", 0.001 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run_result *r = cases[i].val ? GV(cases[i].opt, cases[i].val, "-e", "print(gil.getswitchinterval())")
                                 : GV(cases[i].opt, "-e", "print(gil.getswitchinterval())");
    expect_exit(r, 0);
    double got = strtod(r->out, NULL);
    cr_expect(fabs(got - cases[i].want) < 1e-12, "%s %s: switch interval %g, want %g", cases[i].opt,
              cases[i].val ? cases[i].val : "", got, cases[i].want);
    parsed_report rr = report_of(r);
    cr_expect(fabs(rr.interval_s - cases[i].want) < 0.01 * cases[i].want, "%s %s: report says %g s", cases[i].opt,
              cases[i].val ? cases[i].val : "", rr.interval_s);
  }
  /* --timeout durations: a run that ends early does not wait for its timeout */
  const char *timeouts[] = { "2s", "500ms", "1500000us" };
  for (int i = 0; i < 3; i++) {
    run_result *r = GV("-q", "--timeout", timeouts[i], "-e", "print('quick')");
    expect_exit(r, 0);
    expect_out(r, "quick\n");
  }
  /* far beyond the run's hard limit (RUN_LIMIT_S): a gilvm that waits for it is killed and the test fails */
  run_result *r = GV("-q", "--timeout", "3600s", "-e", "print('quick')");
  expect_exit(r, 0);
  expect_out(r, "quick\n");
}

/* -m nogil and -m fork: the run works and gil.mode() says so. */
static void mode_case(const char *opt, const char *mode) {
  run_result *r = GV("-q", opt, mode, "-e", "print(gil.mode())");
  expect_exit(r, 0);
  expect_out(r, fmt("%s\n", mode));
}

Test(cli, modes) {
  mode_case("-m", "nogil");
  mode_case("--mode", "fork");
  expect_usage_error(GV("-m", "bogus", data("output.lua")), "unknown mode 'bogus'");
  run_result *r = GV("-q", "-m", "gil", "-e", "print(gil.mode())");
  expect_exit(r, 0);
  expect_out(r, "gil\n");
}

Test(cli, gil_policies_compute_the_same_sum) {
  const char *total = "400000";
  const char *want = fmt("threads=2 iterations=400000 sum=%lld\n", sum_of_squares_mod7(400000));
  struct {
    const char *a[4];
    const char *policy;
  } cases[] = {
    { { "-g", "cpython" }, "cpython" },        { { "-g", "legacy" }, "legacy" },
    { { "--gil", "fifo" }, "fifo" },           { { "-g", "legacy", "--check-interval", "50" }, "legacy" },
    { { "-g", "fifo", "-s", "2ms" }, "fifo" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *const *a = cases[i].a;
    run_result *r = a[2] ? GV(a[0], a[1], a[2], a[3], script("cpu_bound.lua"), "2", total)
                         : GV(a[0], a[1], script("cpu_bound.lua"), "2", total);
    expect_exit(r, 0);
    expect_out(r, want);
    parsed_report rr = report_of(r);
    cr_expect_str_eq(rr.policy, cases[i].policy);
    if (a[2] && strcmp(a[2], "--check-interval") == 0) expect_err_has(r, "check interval 50");
  }
}

/* -g iopri reaches the runtime: a thread coming back from gil.sleep takes
   the GIL back through gil_take_after_block and asks the holder at once.
   By construction: the interval is 1000 s, so no waiter ever asks on its
   own; the hog never lets go unless asked; each of main's 10 outer rounds
   ends with a sleep during which the hog ran (its counter moved), so the
   hog held the GIL when that sleep returned. Under a policy without I/O
   priority each such return would wait 1000 s (exit 124 by --timeout);
   under iopri each asks at once: at least 10 drop requests. */
Test(cli, iopri_serves_a_thread_back_from_sleep_at_once) {
  const char *code =
      "local rounds, stop = gil.value(0), gil.value(0)\n"
      "local hog = gil.spawn(function()\n"
      "  while stop:get() == 0 do gil.compute(0.0001); rounds:set(rounds:get() + 1) end\n"
      "end)\n"
      "for i = 1, 10 do\n"
      "  local seen = rounds:get()\n"
      "  repeat gil.sleep(0.001) until rounds:get() > seen\n"
      "end\n"
      "stop:set(1); hog:join(); print('done')";
  run_result *r = GV("-g", "iopri", "-s", "1000s", "--timeout", "600s", "-e", code);
  expect_exit(r, 0);
  expect_out(r, "done\n");
  parsed_report rr = report_of(r);
  cr_expect_str_eq(rr.policy, "iopri");
  cr_expect_geq(rr.drop_requests, 10, "%ld drop requests" CTX, rr.drop_requests, CTXA(r));
}

Test(cli, check_interval_needs_legacy) {
  const char *out = data("output.lua");
  expect_usage_error(GV("--check-interval", "50", out), "legacy");
  expect_usage_error(GV("-g", "fifo", "--check-interval", "50", out), "legacy");
  expect_usage_error(GV("-g", "legacy", "--check-interval", "0", out), "bad check interval '0'");
  expect_usage_error(GV("-g", "legacy", "--check-interval", "abc", out), "bad check interval 'abc'");
  expect_usage_error(GV("-g", "bogus", out), "unknown GIL policy 'bogus'");
}

Test(cli, no_script_is_exit_2) {
  expect_usage_error(gv_run(NULL, (const char *const[]){ NULL }), "no script given");
  expect_usage_error(GV("-q"), "no script given");
  expect_usage_error(GV("-q", "-s", "1ms"), "no script given");
}

Test(cli, exec_option_runs_code_before_the_script) {
  run_result *r = GV("-q", "-e", "x = 6", "-e", "print(x * 7)");
  expect_exit(r, 0);
  expect_out(r, "42\n");
  run_result *s = GV("-q", "-e", "print('e first')", data("args.lua"), "z");
  expect_exit(s, 0);
  cr_expect(strncmp(s->out, "e first\nn\t1\ndots\tz\n", 19) == 0, "-e runs first, then the script" CTX, CTXA(s));
  run_result *f = GV("-q", "-e", "error('in e')");
  expect_exit(f, 1);
  expect_err_has(f, "(command line):1: in e");
  run_result *syn = GV("-e", "x =");
  expect_exit(syn, 3);
  expect_err_has(syn, "(command line):1:");
  expect_no_report(syn);
}

Test(cli, missing_script_is_exit_3_naming_the_file) {
  const char *missing = fmt("%s/e2e/no-such-script-here.lua", env_dir("GILVM_TESTDATA"));
  run_result *r = GV(missing);
  expect_exit(r, 3);
  expect_out(r, "");
  expect_err_has(r, "gilvm: ");
  expect_err_has(r, "no-such-script-here.lua");
  expect_no_report(r);
}

Test(cli, syntax_error_is_exit_3_with_file_and_line) {
  run_result *r = GV(data("syntax_error.lua"));
  expect_exit(r, 3);
  expect_out(r, "");
  expect_err_has(r, "syntax_error.lua:2:");
  expect_no_report(r);
}

Test(cli, runtime_error_in_main_is_exit_1_with_traceback) {
  run_result *r = GV(data("main_error.lua"));
  expect_exit(r, 1);
  expect_out(r, "before\n");
  expect_err_has(r, "gilvm: error in thread 'main': ");
  expect_err_has(r, "main_error.lua:2: main boom");
  expect_err_has(r, "stack traceback:");
  const char *tb = strstr(r->err, "stack traceback:");
  cr_expect(tb && strstr(tb, "main_error.lua:3:") && strstr(tb, "main_error.lua:5:") && strstr(tb, "main chunk"),
            "the traceback should go through outer (line 3) and the main chunk (line 5)" CTX, CTXA(r));
}

/* =============================================================== stopping */

/* Check a run stopped with a report: exit code, reason, report, timing. */
static void expect_stopped_with_report(const run_result *r, int code, const char *reason) {
  expect_exit(r, code);
  expect_err_has(r, fmt("gilvm: stopped: %s\n", reason));
  expect_err_has(r, fmt("  stopped: %s\n", reason));
  expect_err_lacks(r, "did not stop");
  report_of(r);
  cr_expect(strncmp(r->out, "ready\n", 6) == 0, "the script should have printed ready" CTX, CTXA(r));
  expect_err_lacks(r, "not reached");
  cr_expect(strstr(r->out, "not reached") == NULL, "the script went on after the stop");
}

Test(stop, timeout_stops_spinning_workers_with_a_report) {
  run_result *r = GV("--timeout", "0.5s", data("spin_sleep.lua"));
  expect_stopped_with_report(r, 124, "timeout");
  cr_expect(r->wall_s >= 0.45, "--timeout 0.5s ended after %g s", r->wall_s);
  parsed_report rr = report_of(r);
  cr_expect(rr.wall_s >= 0.45, "report wall %g s", rr.wall_s);
  report_thread rows[4];
  int n = threads_of(r, rows, 4);
  cr_assert_eq(n, 3, "main + 2 spinners" CTX, CTXA(r));
  cr_expect_str_eq(rows[1].name, "1:spin");
  cr_expect_str_eq(rows[2].name, "2:spin");
  cr_expect(rows[1].cpu_s > 0 && rows[2].cpu_s > 0, "the spinners never ran: %g s, %g s", rows[1].cpu_s, rows[2].cpu_s);
}

Test(stop, timeout_stops_an_infinite_loop_in_main) {
  run_result *r = GV("--timeout", "0.3s", "-e", "print('ready') io.stdout:flush() while true do end");
  expect_stopped_with_report(r, 124, "timeout");
}

Test(stop, a_deadlock_stops_the_run_with_status_4_and_a_report) {
  /* two threads wait forever on each other's lock, main joins them: gilvm
     finds the cycle (the --timeout is only a backstop, and its 124 fails) */
  run_result *r = GV("--timeout", "60s", data("deadlock.lua"));
  expect_stopped_with_report(r, 4, "deadlock");
  expect_err_has(r, "gilvm: deadlock: 2 workers wait for each other, none with a timeout:\n");
  report_thread rows[4];
  cr_assert_eq(threads_of(r, rows, 4), 3, CTX, CTXA(r));
  for (int i = 1; i < 3; i++) /* the lock is all they ever block on */
    cr_expect(rows[i].blocked_s > 0, "%s should have been blocked on the lock: %g s", rows[i].name, rows[i].blocked_s);
}

Test(stop, sigint_stops_with_a_report) {
  run_opts o = { .signal = SIGINT, .signal_when = "ready\n", .signal_after_s = 0.5 };
  run_result *r = GVO(&o, data("spin_sleep.lua"));
  cr_assert_eq(r->signals_sent, 1, "SIGINT was not sent" CTX, CTXA(r));
  expect_stopped_with_report(r, 130, "interrupted");
}

Test(stop, sigint_while_main_joins) {
  run_opts o = { .signal = SIGINT, .signal_when = "ready\n", .signal_after_s = 0.3 };
  run_result *r = GVO(&o, data("spin_sleep.lua"), "join");
  expect_stopped_with_report(r, 130, "interrupted");
}

Test(stop, sigterm_stops_with_exit_143) {
  run_opts o = { .signal = SIGTERM, .signal_when = "ready\n", .signal_after_s = 0.3 };
  run_result *r = GVO(&o, data("spin_sleep.lua"));
  expect_stopped_with_report(r, 143, "terminated");
}

/* A script that swallows the stop error ends anyway: either its threads die at
   a check point outside the pcall, or gilvm gives up after its 3 s grace. */
static void expect_ends_within_grace(const run_result *r, int code, const char *reason) {
  expect_exit(r, code);
  cr_expect(strstr(r->err, fmt("gilvm: stopped: %s", reason)) || strstr(r->err, "did not stop within 3 s"),
            "stderr should say why gilvm stopped" CTX, CTXA(r));
  expect_out_has(r, "ready\n");
}

Test(stop, timeout_with_pcall_swallowing_the_stop_still_ends) {
  run_result *r = GV("--timeout", "0.5s", data("stubborn.lua"));
  expect_ends_within_grace(r, 124, "timeout");
  cr_expect(r->wall_s >= 0.45, "--timeout 0.5s ended after %g s", r->wall_s);
}

Test(stop, sigint_with_pcall_swallowing_the_stop_still_ends) {
  run_opts o = { .signal = SIGINT, .signal_when = "ready\n", .signal_after_s = 0.3 };
  run_result *r = GVO(&o, data("stubborn.lua"));
  cr_assert_eq(r->signals_sent, 1, "SIGINT was not sent" CTX, CTXA(r));
  expect_ends_within_grace(r, 130, "interrupted");
}

Test(stop, second_sigint_exits_at_once) {
  /* main sits in io.read() holding the GIL (stdin open, no data): the first
     SIGINT cannot stop it, so gilvm is in its 3 s grace when the second comes */
  run_opts o = { .stdin_keep_open = 1,
                 .signal = SIGINT,
                 .nsignals = 2,
                 .signal_when = "ready\n",
                 .signal_after_s = 0.3,
                 .signal_every_s = 0.5 };
  run_result *r = GVO(&o, data("blocked_read.lua"));
  expect_exit(r, 130);
  cr_assert_eq(r->signals_sent, 2, "gilvm ended before the second SIGINT" CTX, CTXA(r));
  expect_err_has(r, "gilvm: interrupted twice");
  /* the second Ctrl-C does not wait for the rest of the grace: had it, gilvm would say so */
  expect_err_lacks(r, "did not stop within");
}

Test(stop, thread_blocked_in_c_with_the_gil_is_abandoned_after_the_grace) {
  /* main sits in io.read() (stdin open, no data) holding the GIL: no check
     point is ever reached, so gilvm exits on its own 3 s after the timeout */
  run_opts o = { .stdin_keep_open = 1 };
  run_result *r = GVO(&o, "--timeout", "0.3s", data("blocked_read.lua"));
  expect_exit(r, 124);
  expect_out(r, "ready\n");
  expect_err_has(r, "gilvm: timeout, and some threads did not stop within 3 s");
  cr_expect(r->wall_s >= 0.3 + 2.9, "gilvm gave up after %g s, before its 3 s grace", r->wall_s);
}
