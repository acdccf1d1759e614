/*
 * test_sim.c — --sim CORES: a run in virtual time (issue 9, first slice).
 *
 * Everything here is exact because the simulation is: the same command
 * gives the same stdout, report and --json (but for the lines and the
 * "host" section that are about the machine), whatever the machine's load;
 * the figures follow the cost model, so the tests assert them with tight
 * bounds and never read a real clock.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_helper.h"

/* stderr without the header's host line (real time, peak memory: the host's, not simulated). */
static char *without_host(const char *err) {
  char *s = fmt("%s", err);
  char *h = strstr(s, "  host, not simulated:");
  if (h) {
    char *nl = strchr(h, '\n');
    memmove(h, nl ? nl + 1 : h + strlen(h), strlen(nl ? nl + 1 : h + strlen(h)) + 1);
  }
  return s;
}

/* Run gilvm --sim with args twice, --json each time; both runs must say the same. Returns the first JSON. */
static json_t *twice_same(const char *const *args, int n) {
  json_t *first = NULL;
  run_result *runs[2];
  for (int k = 0; k < 2; k++) {
    const char *argv[32];
    int i = 0;
    const char *json = tmp_path(k ? "b.json" : "a.json");
    argv[i++] = gilvm_path();
    argv[i++] = "--json";
    argv[i++] = json;
    for (int j = 0; j < n; j++) argv[i++] = args[j];
    argv[i] = NULL;
    runs[k] = run_checked(NULL, argv);
    expect_exit(runs[k], 0);
    json_t *o = json_file(json);
    cr_assert(json_object_get(o, "host") && json_object_get(o, "simulated"), "no host or simulated section" CTX,
              CTXA(runs[k]));
    json_object_del(o, "host");
    if (k == 0) {
      first = o;
      continue;
    }
    cr_expect(json_equal(first, o), "--json differs between two runs of the same simulation" CTX, CTXA(runs[k]));
  }
  cr_expect_str_eq(runs[0]->out, runs[1]->out, "stdout differs between two simulated runs");
  cr_expect_str_eq(without_host(runs[0]->err), without_host(runs[1]->err),
                   "the report differs between two simulated runs");
  return first;
}

#define TWICE(...)                                 \
  twice_same((const char *const[]){ __VA_ARGS__ }, \
             (int)(sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *)))

static double num(json_t *o, const char *key) { return run_json_number(o, key); }

static double figure(json_t *o, const char *name) { return run_json_number(json_object_get(o, "figures"), name); }

/* ------------------------------------------------------------- determinism */

TestSuite(determinism, .fini = test_cleanup, .timeout = 300);

Test(determinism, cpu_bound) { TWICE("--sim", "2", "--timeline", script("cpu_bound.lua"), "2", "2000000"); }

Test(determinism, convoy) { TWICE("--sim", "2", script("convoy.lua"), "30"); }

Test(determinism, trace_and_svg) {
  char *got[2][2];
  for (int k = 0; k < 2; k++) {
    const char *trace = tmp_path(k ? "b.trace" : "a.trace"), *svg = tmp_path(k ? "b.svg" : "a.svg");
    expect_exit(GV("-q", "--sim", "2", "--trace", trace, "--svg", svg, script("convoy.lua"), "20"), 0);
    got[k][0] = slurp(trace, NULL);
    got[k][1] = slurp(svg, NULL);
  }
  cr_expect_str_eq(got[0][0], got[1][0], "--trace differs between two simulated runs");
  cr_expect_str_eq(got[0][1], got[1][1], "--svg differs between two simulated runs");
}

Test(determinism, trace_and_timeline_of_processes) {
  char *got[2][2];
  for (int k = 0; k < 2; k++) {
    const char *trace = tmp_path(k ? "b.trace" : "a.trace"), *svg = tmp_path(k ? "b.svg" : "a.svg");
    expect_exit(
        GV("-q", "--sim", "2", "-m", "fork", "--trace", trace, "--svg", svg, script("cpu_bound.lua"), "3", "300000"),
        0);
    got[k][0] = slurp(trace, NULL);
    got[k][1] = slurp(svg, NULL);
  }
  cr_expect_str_eq(got[0][0], got[1][0], "--trace differs between two simulated runs");
  cr_expect_str_eq(got[0][1], got[1][1], "--svg differs between two simulated runs");
  cr_expect(strstr(got[0][0], "\"pid\":4") || strstr(got[0][0], "\"pid\": 4"), "each process a pid of its own");
  TWICE("--sim", "2", "-m", "fork", "--timeline", script("cpu_bound.lua"), "3", "300000");
}

Test(determinism, io_bound) { TWICE("--sim", "2", script("io_bound.lua")); }

Test(determinism, race) { TWICE("--sim", "2", script("race.lua"), "4", "1000000"); }

Test(determinism, fifo_and_iopri) {
  TWICE("--sim", "2", "-g", "fifo", script("convoy.lua"), "20");
  TWICE("--sim", "2", "-g", "iopri", script("convoy.lua"), "20");
}

Test(determinism, nogil) { TWICE("--sim", "4", "-m", "nogil", script("cpu_bound.lua"), "4", "1000000"); }

/* Two tables with the same 300 string keys: the second's keys are offsets back into the first, whose
   sizes follow the order Lua's per-run string-hash seed gives the keys; the simulation counts each
   offset as one byte, so the bytes copied and their virtual cost are the same every run. */
Test(determinism, copies_do_not_follow_the_string_hash_seed) {
  const char *code =
      "local t, u = {}, {}\n"
      "for i = 1, 300 do t['key' .. i] = i; u['key' .. i] = i end\n"
      "gil.spawn(function(a, b) return a, b end, t, u):join()";
  TWICE("--sim", "2", "-m", "nogil", "-e", code);
  TWICE("--sim", "2", "-m", "fork", "-e", code);
}

Test(determinism, race_depends_on_the_seed_only) {
  json_t *a = TWICE("--sim", "2", "--seed", "1", script("race.lua"), "4", "1000000");
  json_t *b = TWICE("--sim", "2", "--seed", "2", script("race.lua"), "4", "1000000");
  /* the lessons hold under every seed: nothing lost where the real runtime loses nothing */
  cr_expect_eq(figure(a, "lost_plain x = x + 1"), 0);
  cr_expect_eq(figure(a, "lost_call, under a lock"), 0);
  cr_expect_eq(figure(b, "lost_plain x = x + 1"), 0);
  cr_expect_gt(figure(a, "lost_call between r/w"), 0, "a switch at the call loses updates");
  cr_expect_neq(figure(a, "lost_call between r/w"), figure(b, "lost_call between r/w"),
                "another seed, another interleaving");
}

/* Every gallery script (scripts/articles), with the gallery suite's small arguments (the "# args:" line of
   tests/data/articles/NAME.out), in one mode under --sim 2, twice: the same stdout, report and --json.
   None is left out: every one runs under --sim in every mode, and none prints what varies under lua5.4
   itself (no pairs order over string keys, no addresses, no os.time). */
static void gallery_twice(const char *mode) {
  const char *dir = fmt("%s/articles", env_dir("GILVM_SCRIPTS"));
  DIR *d = opendir(dir);
  cr_assert(d != NULL, "cannot list %s", dir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0) continue;
    char *name = fmt("%.*s", (int)(len - 4), e->d_name);
    char *want = slurp(data_in("articles", fmt("%s.out", name)), NULL);
    const char *args[16] = { "-m", mode, "--sim", "2", script(fmt("articles/%s.lua", name)) };
    int k = 5;
    if (strncmp(want, "# args:", 7) == 0) {
      char *nl = strchr(want, '\n');
      if (nl) *nl = '\0';
      for (char *t = strtok(want + 7, " "); t && k < 16; t = strtok(NULL, " ")) args[k++] = t;
    }
    twice_same(args, k);
    n++;
  }
  closedir(d);
  cr_expect(n >= 15, "only %d gallery scripts in %s", n, dir);
}

Test(determinism, every_gallery_script_in_gil_mode) { gallery_twice("gil"); }
Test(determinism, every_gallery_script_in_nogil_mode) { gallery_twice("nogil"); }
Test(determinism, every_gallery_script_in_fork_mode) { gallery_twice("fork"); }

/* ------------------------------------------------------------------ model */

TestSuite(model, .fini = test_cleanup, .timeout = 300);

static double wall_of(const char *cores, const char *mode, const char *threads) {
  const char *json = tmp_path("w.json");
  run_result *r = GV("--sim", cores, "-m", mode, "--json", json, script("cpu_bound.lua"), threads, "2000000");
  expect_exit(r, 0);
  return num(json_file(json), "wall_s");
}

Test(model, cpu_bound_under_the_gil_takes_as_long_on_two_threads) {
  double one = wall_of("2", "gil", "1"), two = wall_of("2", "gil", "2"), eight = wall_of("8", "gil", "8");
  cr_expect(fabs(two / one - 1) < 0.01, "2 threads %.6f s vs 1 thread %.6f s", two, one);
  cr_expect(fabs(eight / one - 1) < 0.01, "8 threads on 8 cores %.6f s vs 1 thread %.6f s", eight, one);
}

Test(model, nogil_runs_on_every_core) {
  double one = wall_of("4", "gil", "1"), four = wall_of("4", "nogil", "4"), shared = wall_of("2", "nogil", "4");
  cr_expect(fabs(one / four - 4) < 0.04, "4 free threads on 4 cores: %.2fx", one / four);
  cr_expect(fabs(one / shared - 2) < 0.02, "4 free threads on 2 cores: %.2fx", one / shared);
}

Test(model, convoy_latency_is_the_interval) {
  const char *intervals[] = { "1ms", "5ms" };
  const double ms[] = { 1, 5 };
  for (int i = 0; i < 2; i++) {
    const char *json = tmp_path("c.json");
    run_result *r = GV("--sim", "2", "-s", intervals[i], "--json", json, script("convoy.lua"), "20");
    expect_exit(r, 0);
    double median = figure(json_file(json), "io_extra_median_ms");
    /* the interval, and one wake-up of the cost model (10 us), and at most a tick of instructions */
    cr_expect(median >= ms[i] && median <= ms[i] + 0.05, "-s %s: extra latency %.4f ms" CTX, intervals[i], median,
              CTXA(r));
  }
}

Test(model, sleep_and_compute_take_exactly_their_time) {
  run_result *r = GV("--sim", "2", "-q", "-e",
                     "local t = gil.now(); gil.sleep(0.25); local s = gil.now() - t\n"
                     "t = gil.now(); gil.native(0.125); local n = gil.now() - t\n"
                     "local c0 = os.clock(); gil.compute(0.5); local c = os.clock() - c0\n"
                     "print(('%.9f %.9f %.9f'):format(s, n, c))");
  expect_exit(r, 0);
  expect_out(r, "0.250000000 0.125000000 0.500000000\n");
}

Test(model, events_and_semaphores_wake_in_virtual_time) {
  run_result *r = GV("--sim", "2", "-q", "-e",
                     "local e, s = gil.event(), gil.semaphore(0)\n"
                     "local w = gil.spawn(function() gil.sleep(0.5); e:set(); gil.sleep(0.25); s:release() end)\n"
                     "e:wait(); local t1 = gil.now(); s:acquire(); local t2 = gil.now(); w:join()\n"
                     "print(('%.6f %.6f'):format(t1, t2))");
  expect_exit(r, 0);
  expect_out(r, "0.500010 0.750010\n"); /* each wait ends a wake-up (10 us) after the set or release */
}

Test(model, io_bound_overlaps) {
  const char *json = tmp_path("io.json");
  run_result *r = GV("--sim", "2", "--json", json, script("io_bound.lua"));
  expect_exit(r, 0);
  expect_out_has(r, "they overlapped");
  double wall = num(json_file(json), "wall_s");
  cr_expect(wall >= 2.0 && wall < 2.01, "three 2 s downloads: %.6f s", wall);
}

Test(model, deadlock_exits_4) {
  run_result *r = GV("--sim", "2", "-e",
                     "local l = gil.lock(); l:acquire()\n"
                     "local w = gil.spawn(function() l:acquire() end)\n"
                     "w:join()");
  expect_exit(r, 4);
  expect_err_has(r, "deadlock");
}

Test(model, timeout_stops_a_simulated_run) {
  /* --timeout is real time; the worker's loop is stopped at a check point, the joiner reaps it */
  run_result *r =
      GV("--sim", "2", "--timeout", "0.5s", "-e", "local w = gil.spawn(function() while true do end end); w:join()");
  expect_exit(r, 124);
  expect_err_has(r, "gilvm: stopped: timeout");
  expect_err_lacks(r, "did not stop");
}

Test(model, header_prints_the_cost_model) {
  run_result *r = GV("--sim", "3", "--seed", "9", "--sim-insn", "2.5", "-e", "gil.compute(0.001)");
  expect_exit(r, 0);
  expect_err_has(r, "simulated (--sim): 3 virtual cores   seed 9   a Lua instruction 2.5 ns");
}

Test(model, what_is_not_simulated_says_so) {
  run_result *r = GV("--sim", "2", "-q", "-e", "gil.listen(0)");
  expect_exit(r, 1);
  expect_err_has(r, "sockets are not simulated yet (--sim)");
  r = GV("--sim", "2", "-q", "-e", "local b = gil.barrier(1); b:wait()");
  expect_exit(r, 1);
  expect_err_has(r, "barrier wait: not simulated yet (--sim)");
}

Test(model, a_real_run_has_no_simulated_section) {
  const char *json = tmp_path("real.json");
  expect_exit(GV("-q", "--json", json, "-e", "gil.spawn(function() end):join()"), 0);
  json_t *o = json_file(json);
  cr_expect(!json_object_get(o, "simulated") && !json_object_get(o, "host"));
  cr_expect(json_object_get(o, "peak_memory_kb"));
}

Test(model, usage_errors) {
  expect_usage_error(GV("--sim", "0", "-e", "print(1)"), "bad --sim '0'");
  expect_usage_error(GV("--sim", "2", "-g", "legacy", "-e", "print(1)"),
                     "-g legacy (a check-interval policy) is not simulated yet");
  expect_usage_error(GV("--sim", "2", "--sim-insn", "x", "-e", "print(1)"), "bad --sim-insn 'x'");
  expect_usage_error(GV("--sim", "2", "--seed", "-1", "-e", "print(1)"), "bad --seed '-1'");
}

/* -------------------------------------------------------------- processes */

TestSuite(processes, .fini = test_cleanup, .timeout = 300);

/* s with every "(pid N)" made "(pid P)": a real child's pid differs each run, a simulated one is 1 + its id. */
static char *no_pids(const char *s) {
  char *out = fmt("%s", s), *o = out;
  for (const char *p = s; *p;) {
    if (strncmp(p, "(pid ", 5) == 0) {
      o += sprintf(o, "(pid P");
      p += 5;
      while (*p >= '0' && *p <= '9') p++;
      continue;
    }
    *o++ = *p++;
  }
  *o = '\0';
  return out;
}

/* The same code, real and simulated (-m MODE, --sim 2): the same stdout (pids aside) and exit status. */
static run_result *real_and_sim_agree(const char *mode, const char *code) {
  run_result *real = GV("-q", "-m", mode, "-e", code);
  run_result *sim = GV("-q", "-m", mode, "--sim", "2", "-e", code);
  cr_expect_eq(sim->exit_code, real->exit_code, "exit status: real %d, simulated %d" CTX, real->exit_code,
               sim->exit_code, CTXA(sim));
  cr_expect_str_eq(no_pids(sim->out), no_pids(real->out), "stdout differs between the real and simulated run");
  return sim;
}

Test(processes, fork_on_64_cores_runs_64_workers_as_fast_as_one) {
  /* each worker sums 100k squares; one alone, then 64 on 64 cores */
  const char *one = tmp_path("one.json"), *many = tmp_path("many.json");
  expect_exit(GV("-q", "--sim", "64", "-m", "fork", "--json", one, script("cpu_bound.lua"), "1", "100000"), 0);
  run_result *r = GV("--sim", "64", "-m", "fork", "--json", many, script("cpu_bound.lua"), "64", "6400000");
  expect_exit(r, 0);
  expect_err_has(r, "a fork 100 us   copying 100 MB/s");
  json_t *a = json_file(one), *b = json_file(many);
  json_t *t1 = json_array_get(json_object_get(a, "threads"), 1);
  double alone = num(t1, "in_flight_s") - num(t1, "startup_s");
  json_t *threads = json_object_get(b, "threads");
  cr_assert_eq(json_array_size(threads), 65, "main and 64 workers");
  double slowest = 0;
  for (size_t i = 1; i < 65; i++) {
    json_t *t = json_array_get(threads, i);
    double startup = num(t, "startup_s"), ran = num(t, "in_flight_s") - startup;
    cr_expect_str_eq(json_string_value(json_object_get(t, "kind")), "process");
    cr_expect(fabs(ran / alone - 1) < 0.02, "worker %zu ran %.6f s, one alone %.6f s", i, ran, alone);
    /* start-up: its fork (the spawner's 100 us) and its copy of the spawner's state */
    cr_expect(startup > 100e-6 && startup < 200e-6, "worker %zu: start-up %.6f s", i, startup);
    if (ran > slowest) slowest = ran;
  }
  double speedup = 64 * alone / slowest; /* 64 workers' work in the time of the slowest, start-up left out */
  cr_expect(fabs(speedup / 64 - 1) < 0.02, "64 processes on 64 cores: %.2fx once start-up is left out", speedup);
  cr_expect(num(b, "startup_s") >= 100e-6, "start-up %.6f s: the fork and the copy", num(b, "startup_s"));
  cr_expect(num(json_object_get(b, "simulated"), "fork_s") == 100e-6);
}

Test(processes, a_process_sees_a_copy_and_its_changes_stay_there) {
  const char *code =
      "x = 1\n"
      "local t, v = {1}, gil.value(0)\n"
      "T = t\n"
      "gil.spawn(function(a, b) x = 2; t[1] = 2; v:set(5); print(a == b, a == T, x) end, t, t):join()\n"
      "print(x, t[1], T[1], v:get())";
  run_result *r = real_and_sim_agree("fork", code);
  expect_exit(r, 0);
  expect_out(r, "true\ttrue\t2\n1\t1\t1\t5\n"); /* one copy of what two names reach; a shared value is shared */
  r = GV("-q", "--sim", "2", "-e", "x = 1; gil.process(function() x = 2 end):join(); print(x)");
  expect_exit(r, 0);
  expect_out(r, "1\n"); /* gil.process from gil mode too */
}

Test(processes, os_exit_ends_the_process_only) {
  const char *code =
      "local w = gil.spawn(function() print('before'); pcall(os.exit, 3); print('after') end)\n"
      "print(pcall(w.join, w))\n"
      "print('main goes on')";
  run_result *r = real_and_sim_agree("fork", code);
  expect_exit(r, 0);
  expect_out_has(r,
                 "before\nfalse\terror in process '1@(command line):1': process '1@(command line):1' (pid 2) "
                 "exited with status 3 before sending its results\nmain goes on\n");
  /* nobody joins it: the run reports it and fails, as the real one */
  r = real_and_sim_agree("fork", "gil.spawn(function() os.exit(7) end)");
  expect_exit(r, 1);
  expect_err_has(r, "exited with status 7 before sending its results");
}

Test(processes, an_error_reads_the_same) {
  const char *code =
      "local function f() error('boom') end\n"
      "local w = gil.spawn(f)\n"
      "print(pcall(w.join, w))";
  run_result *r = real_and_sim_agree("fork", code);
  expect_out_has(r, "boom\nstack traceback:"); /* on into the spawner's stack, as a forked child's */
  expect_out_has(r, "in function 'gil.spawn'");
}

Test(processes, output_is_buffered_per_process) {
  /* a child's io.write waits in its own buffer until its print flushes it; the parent's stays in its own */
  const char *code =
      "io.write('p1\\n')\n"
      "local w = gil.spawn(function() io.write('c1\\n'); gil.sleep(0.01); print('c2'); io.write('c3\\n') end)\n"
      "io.write('p2\\n'); w:join(); io.write('p3\\n')";
  run_result *r = real_and_sim_agree("fork", code);
  expect_exit(r, 0);
  expect_out(r, "p1\nc1\nc2\nc3\np2\np3\n");
}

static double wall_e(const char *code) {
  const char *json = tmp_path("e.json");
  run_result *r = GV("-q", "--sim", "2", "--json", json, "-e", code);
  expect_exit(r, 0);
  return num(json_file(json), "wall_s");
}

Test(processes, gil_process_has_its_own_gil) {
  double threads = wall_e("local a, b = gil.spawn(gil.compute, 0.1), gil.spawn(gil.compute, 0.1); a:join(); b:join()");
  double procs =
      wall_e("local a, b = gil.process(gil.compute, 0.1), gil.process(gil.compute, 0.1); a:join(); b:join()");
  double inside = wall_e(
      "gil.process(function()\n"
      "  local a, b = gil.spawn(gil.compute, 0.1), gil.spawn(gil.compute, 0.1); a:join(); b:join()\n"
      "end):join()");
  cr_expect(threads >= 0.2, "two threads under one GIL: %.6f s", threads);
  cr_expect(procs >= 0.1 && procs < 0.101, "two processes, a GIL each, on 2 cores: %.6f s", procs);
  cr_expect(inside >= 0.2, "two threads inside one process share its GIL: %.6f s", inside);
}

Test(processes, a_deadlock_with_a_process_reads_as_the_real_one) {
  const char *code =
      "local l = gil.lock(); l:acquire()\n"
      "local w = gil.spawn(function() l:acquire() end)\n"
      "w:join()";
  run_result *r = real_and_sim_agree("fork", code);
  expect_exit(r, 4);
  expect_err_has(r, "'main' waits at (command line):3 to join '1@(command line):2'");
  expect_err_has(r, "'1@(command line):2' waits at (command line):2 for lock");
}

Test(processes, sweep_and_compare_simulate_fork_mode) {
  run_result *r = GV("sweep", "-m", "fork", "--sim", "2", "-s", "1ms,5ms", script("cpu_bound.lua"), "2", "100000");
  expect_exit(r, 0);
  expect_err_lacks(r, "not simulated");
  r = GV("compare", "--sim", "2", script("cpu_bound.lua"), "2", "100000");
  expect_exit(r, 0);
  expect_err_has(r, "running in fork mode");
  expect_err_has(r, "output: identical in all three modes");
}

/* A child counts its workers on from its copy of the parent's counter, and the parent on from its own. */
Test(processes, ids_are_counted_per_process) {
  const char *code =
      "local p = gil.spawn(function()\n"
      "  local q = gil.spawn(function() return gil.current().id end)\n"
      "  return gil.current().id, q:join(), q.name\n"
      "end)\n"
      "print(p:join())\n"
      "local r = gil.spawn(function() end)\n"
      "print(r.id, r.name)";
  run_result *r = real_and_sim_agree("fork", code);
  expect_exit(r, 0);
  expect_out(r, "1\t2\t2@(command line):2\n2\t2@(command line):6\n");
}

/* A pool a process made and left open is closed when the process ends, as in a real child, and the
   process waits for the workers it started before its results go back. (A pool of threads is tried
   simulated only: threads in a real forked child upset TSan, "dup thread with used id".) */
Test(processes, a_process_closes_its_pools_and_waits_for_its_workers) {
  const char *code =
      "local w = gil.spawn(function()\n"
      "  local p = gil.pool(2, KIND)\n"
      "  gil.spawn(function() gil.sleep(0.05); print('grandchild') end)\n"
      "  return table.concat(p:map(function(x) return x * 2 end, {1, 2, 3}), ' ')\n"
      "end)\n"
      "print(w:join())";
  run_result *r = real_and_sim_agree("fork", fmt("KIND = 'process'\n%s", code));
  expect_exit(r, 0);
  expect_out(r, "grandchild\n2 4 6\n");
  r = GV("-q", "-m", "fork", "--sim", "2", "-e", fmt("KIND = 'thread'\n%s", code));
  expect_exit(r, 0);
  expect_out(r, "grandchild\n2 4 6\n");
}
