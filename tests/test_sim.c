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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_helper.h"

/* a TSan build's breaker polls (vm/core/breaker.c): its switches, so its figures, are its own */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

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
    /* a hang guard only (the suite's timeout is 300 s): a TSan build on a loaded machine took over 60 s */
    runs[k] = run_checked(&(run_opts){ .limit_s = 240 }, argv);
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

/* -s 1ms and 200000 per thread: the same switches as 5 ms and a million, a fifth of the run (under TSan
   on a busy machine, a million took over a minute) */
Test(determinism, race) { TWICE("--sim", "2", "-s", "1ms", script("race.lua"), "4", "200000"); }

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

Test(determinism, more_workers_than_cores) { /* the run queue, slices and the 'c' state, the same each run */
  TWICE("--sim", "2", "-m", "nogil", "--timeline", script("cpu_bound.lua"), "5", "1000000");
  TWICE("--sim", "1", "--timeline", script("convoy.lua"), "20");
}

Test(determinism, condition_and_barrier) {
  json_t *o = TWICE("--sim", "2", "-q", data_in("sim", "cond_barrier.lua"), "5");
  cr_expect(o != NULL);
  TWICE("--sim", "4", "-m", "nogil", data_in("sim", "cond_barrier.lua"), "8");
}

Test(determinism, loopback_echo_between_two_workers) {
  TWICE("--sim", "2", data_in("sim", "echo.lua"), "20");
  TWICE("--sim", "2", "-m", "nogil", data_in("sim", "echo.lua"), "20");
}

Test(determinism, downloads_over_loopback_sockets) {
  json_t *o = TWICE("--sim", "2", script("downloads.lua"), "3", "3", "0.05", "16");
  cr_expect(o != NULL);
  TWICE("--sim", "4", "-m", "nogil", script("downloads.lua"), "3", "3", "0.05", "16");
}

Test(determinism, race_depends_on_the_seed_only) {
  json_t *a = TWICE("--sim", "2", "-s", "1ms", "--seed", "1", script("race.lua"), "4", "200000");
  json_t *b = TWICE("--sim", "2", "-s", "1ms", "--seed", "2", script("race.lua"), "4", "200000");
  /* the lessons hold under every seed: nothing lost where the real runtime loses nothing */
  cr_expect_eq(figure(a, "lost_plain x = x + 1"), 0);
  cr_expect_eq(figure(a, "lost_call, under a lock"), 0);
  cr_expect_eq(figure(b, "lost_plain x = x + 1"), 0);
  cr_expect_gt(figure(a, "lost_call between r/w"), 0, "a switch at the call loses updates");
  cr_expect_neq(figure(a, "lost_call between r/w"), figure(b, "lost_call between r/w"),
                "another seed, another interleaving");
  cr_expect_eq(figure(a, "lost_value add"), 0);
  cr_expect_eq(figure(b, "lost_value add"), 0);
  /* gil mode: the GIL alone says where threads switch; race points (free workers only) change
     nothing: the figures with and without them, under today's costs (`object` 40 ns a shared object's
     call included; not under TSan, where the breaker polls) */
  if (!UNDER_TSAN) {
    cr_expect_eq(figure(a, "lost_call between r/w"), 97418);
    cr_expect_eq(figure(a, "lost_value get/set"), 329877);
    cr_expect_eq(figure(b, "lost_call between r/w"), 294190);
    cr_expect_eq(figure(b, "lost_value get/set"), 233698);
  }
}

/* Free workers (nogil threads, processes) run up to 100 us past each other, but each use of a shared
   object is a race point where the one ahead hands over to one behind: a get then a set loses
   updates as it does for real (race.lua 2 10000: about 6000 lost for real here), a number fixed by
   the seed; the atomic ways lose none. */
Test(determinism, free_workers_race_on_shared_objects) {
  static const char *const modes[] = { "nogil", "fork" };
  for (int m = 0; m < 2; m++) {
    json_t *a = TWICE("--sim", "2", "-m", modes[m], "--seed", "1", data_in("sim", "race_shared.lua"), "5000");
    json_t *b = TWICE("--sim", "2", "-m", modes[m], "--seed", "2", data_in("sim", "race_shared.lua"), "5000");
    cr_expect_gt(figure(a, "lost value get/set"), 0, "-m %s: a get then a set lost nothing", modes[m]);
    cr_expect_gt(figure(a, "lost array get/set"), 0, "-m %s: an element's read then write lost nothing", modes[m]);
    cr_expect_neq(figure(a, "lost value get/set"), figure(b, "lost value get/set"), "-m %s: another seed, the same",
                  modes[m]);
    for (int k = 0; k < 2; k++) {
      json_t *o = k ? b : a;
      cr_expect_eq(figure(o, "lost value add"), 0, "-m %s: value:add is atomic", modes[m]);
      cr_expect_eq(figure(o, "lost value under a lock"), 0, "-m %s: the lock lost updates", modes[m]);
      cr_expect_eq(figure(o, "lost array add"), 0, "-m %s: array:add is atomic", modes[m]);
    }
    json_t *r = TWICE("--sim", "2", "-m", modes[m], script("race.lua"), "2", "10000");
    cr_expect_gt(figure(r, "lost_value get/set"), 0, "-m %s: race.lua's value get/set lost nothing", modes[m]);
    cr_expect_eq(figure(r, "lost_value add"), 0);
  }
}

/* Every gallery script (scripts/articles), with the gallery suite's small arguments (the "# args:" line of
   tests/data/articles/NAME.out), in one mode under --sim 2, twice: the same stdout, report and --json.
   None is left out: every one runs under --sim in every mode, and none prints what varies under lua5.4
   itself (no pairs order over string keys, no addresses, no os.time). */
static void gallery_twice(const char *mode) {
  char *names[64];
  int n = gallery_scripts(names, 64);
  for (int i = 0; i < n; i++) {
    const char *name = names[i];
    char *want = slurp(data_in("articles", fmt("%s.out", name)), NULL);
    const char *args[16] = { "-m", mode, "--sim", "2", script(fmt("articles/%s.lua", name)) };
    int k = 5;
    if (strncmp(want, "# args:", 7) == 0) {
      char *nl = strchr(want, '\n');
      if (nl) *nl = '\0';
      for (char *t = strtok(want + 7, " "); t && k < 16; t = strtok(NULL, " ")) args[k++] = t;
    }
    twice_same(args, k);
  }
  cr_expect(n >= 15, "only %d gallery scripts", n);
}

Test(determinism, every_gallery_script_in_gil_mode) { gallery_twice("gil"); }
Test(determinism, every_gallery_script_in_nogil_mode) { gallery_twice("nogil"); }
Test(determinism, every_gallery_script_in_fork_mode) { gallery_twice("fork"); }

/* ------------------------------------------------------------------ model */

TestSuite(model, .fini = test_cleanup, .timeout = 300);

/* The wall time of cpu_bound.lua, start-up left out (spawning a thread, a nogil worker's interpreter:
   costs of the model since the cores are scheduled; with them, 8 spawns cost 2% of this short run). */
static double wall_of(const char *cores, const char *mode, const char *threads) {
  const char *json = tmp_path("w.json");
  run_result *r = GV("--sim", cores, "-m", mode, "--sim-cost", "spawn=0", "--sim-cost", "interp=0", "--sim-cost",
                     "copy=0", "--json", json, script("cpu_bound.lua"), threads, "2000000");
  expect_exit(r, 0);
  return num(json_file(json), "wall_s");
}

Test(model, cpu_bound_under_the_gil_takes_as_long_on_two_threads) {
  double one = wall_of("2", "gil", "1"), two = wall_of("2", "gil", "2"), eight = wall_of("8", "gil", "8");
  /* a forced switch every 5 ms interval costs a signal, a wake-up and the new holder's resume (about 50 us) */
  cr_expect(two >= one && two / one < 1.02, "2 threads %.6f s vs 1 thread %.6f s", two, one);
  /* 8 threads: 7 waiters time out together */
  cr_expect(eight >= one && eight / one < 1.03, "8 threads on 8 cores %.6f s vs 1 thread %.6f s", eight, one);
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
    /* the interval, late by the timer cost (70 us), a wake-up (23 us), the resume at a forced switch
       (20 us), at most a tick of instructions */
    cr_expect(median >= ms[i] + 0.09 && median <= ms[i] + 0.14, "-s %s: extra latency %.4f ms" CTX, intervals[i],
              median, CTXA(r));
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
  /* each wait ends a wake-up (10 us) after the set or release; the worker starts after the spawn (29 us) */
  expect_out(r, "0.500052 0.750052\n");
}

Test(model, io_bound_overlaps) {
  const char *json = tmp_path("io.json");
  run_result *r = GV("--sim", "2", "--json", json, script("io_bound.lua"));
  expect_exit(r, 0);
  expect_out_has(r, "they overlapped");
  double wall = num(json_file(json), "wall_s");
  cr_expect(wall >= 2.0 && wall < 2.01, "three 2 s downloads: %.6f s", wall);
}

Test(model, conditions_barriers_and_sockets_wait_in_virtual_time) {
  run_result *r = GV("--sim", "2", "-q", data_in("sim", "cond_barrier.lua"), "5");
  expect_exit(r, 0);
  /* each put follows a 1 ms sleep; the last of 4 workers reaches the barrier after 4 ms; a timeout of 0.25 s
     (and the OS costs: wake-ups, a GIL waiter's `woken`) */
  expect_out(r, "consumer got\t15\t0.005076\nbarrier\t0,1,2,3,4\t0.009249\nwait with a timeout\tfalse\t0.259272\n");
  r = GV("--sim", "2", "-q", data_in("sim", "echo.lua"), "3");
  expect_exit(r, 0);
  /* a round trip: two wake-ups (23 us each) and four socket calls (`socket`, 4 us each) */
  expect_out(r, "ping 1\t0.000110\nping 2\t0.000172\nping 3\t0.000234\nend\tnil\tclosed\nserver saw\t18\n");
  r = GV("--sim", "2", "-q", "--sim-cost", "socket=0", data_in("sim", "echo.lua"), "3");
  expect_exit(r, 0);
  expect_out(r, "ping 1\t0.000098\nping 2\t0.000144\nping 3\t0.000190\nend\tnil\tclosed\nserver saw\t18\n");
}

/* A wake-up with a core free costs `wake` (an idle core's); with every core busy there is no idle
   core to wake: the thread queues and runs a context switch after the busy one frees its core. */
Test(model, a_thread_woken_while_every_core_is_busy_queues_without_a_wake_up) {
  const char *f = data_in("sim", "busy_wake.lua");
  run_result *r = GV("--sim", "2", "-m", "nogil", "-q", f);
  expect_exit(r, 0);
  expect_out(r, "ran 23.000 us after the put\n"); /* wake */
  r = GV("--sim", "1", "-m", "nogil", "-q", f);
  expect_exit(r, 0);
  expect_out(r, "ran 504.040 us after the put\n"); /* main's 0.5 ms, then switch (and main's queue call) */
  r = GV("--sim", "1", "-m", "nogil", "-q", "--sim-cost", "switch=10us", "--sim-cost", "wake=1ms", f);
  expect_exit(r, 0);
  expect_out(r, "ran 510.040 us after the put\n"); /* the switch, not the wake-up */
}

/* Once a process exists, free workers may run 100 us past each other; a thread that shares its GIL
   may not, or a CPU thread would run on past the moment a woken I/O thread of its GIL asks it to
   drop, by up to 100 us at each request (163 against 86 us a round trip, before the fix). */
Test(model, no_lookahead_for_a_thread_that_shares_its_gil) {
  const char *f = data_in("sim", "gil_lookahead.lua");
  run_result *a = GV("--sim", "2", "-g", "iopri", "-q", f, "2000");
  run_result *b = GV("--sim", "2", "-g", "iopri", "-q", f, "200000");
  expect_exit(a, 0);
  expect_exit(b, 0);
  double ta = 0, tb = 0;
  cr_assert_eq(sscanf(a->out, "median round trip %lf us", &ta), 1, "%s", a->out);
  cr_assert_eq(sscanf(b->out, "median round trip %lf us", &tb), 1, "%s", b->out);
  cr_expect(ta < 100 && tb < 100 && fabs(ta - tb) < 1, "the CPU thread's loop length shows: %.3f against %.3f us", ta,
            tb);
}

/* `resume` is cold caches: the new holder's first `resume` of work after a forced switch counts twice. */
Test(model, resume_doubles_the_first_work_after_a_forced_switch) {
  const char *f = data_in("sim", "resume_cold.lua");
  run_result *r = GV("--sim", "2", "-q", "--sim-cost", "resume=0", f);
  expect_exit(r, 0);
  expect_out(r, "cpu 480.025 us\n");
  r = GV("--sim", "2", "-q", f);
  expect_exit(r, 0);
  expect_out(r, "cpu 500.025 us\n"); /* 20 us more */
  r = GV("--sim", "2", "-q", "--sim-cost", "resume=1s", f);
  expect_exit(r, 0);
  expect_out(r, "cpu 960.025 us\n"); /* all its 480 us twice, not 1 s */
}

Test(model, a_socket_to_the_outside_takes_real_time_and_a_wake_up_of_virtual_time) {
  /* stdout only: the run's CPU time (--json) varies with io.popen's real I/O, sockets or not */
  run_result *r =
      GV("--sim", "2", "-q", data_in("sim", "outside.lua"), gilvm_path(), data_in("sim", "outside_server.lua"));
  expect_exit(r, 0);
  expect_out(r, "hello\t0.000046\nnil\ttimeout\t0.000069\n"); /* send, recv, recv: a wake-up (23 us) each */
}

Test(model, a_simulated_deadlock_reads_as_a_real_one_and_prints_the_report) {
  run_result *r = GV("--sim", "2", data_in("deadlock", "cond_wait.lua"));
  expect_exit(r, 4);
  expect_err_has(
      r, "gilvm: deadlock: every worker waits, none with a timeout, for what only another of them could give:\n");
  expect_err_has(r, "to be notified on condition 0x");
  expect_err_has(r, "gilvm: stopped: deadlock\n");
  expect_err_has(r, "-- gilvm report");
  r = GV("--sim", "2", "-e",
         "local q = gil.queue()\n"
         "gil.spawn(function() error('boom') end)\n"
         "q:get()");
  expect_exit(r, 4);
  expect_err_has(r, "(never joined): (command line):2: boom"); /* as the real detector's path prints it */
  expect_err_has(r, "to get an item from queue 0x");
  expect_err_has(r, "-- gilvm report");
  r = GV("--sim", "2", "-e",
         "local ports = gil.queue()\n"
         "local t = gil.spawn(function(ports) local s = gil.listen(0); ports:put(s:port()); local c = s:accept(); "
         "c:recv() end, ports)\n"
         "local c = gil.connect('127.0.0.1', ports:get()); c:recv()");
  expect_exit(r, 4); /* both recv: nothing on the board, the simulator names them */
  expect_err_has(r, "gilvm: deadlock: every worker waits, none with a timeout: 'main', '1@(command line):2'\n");
  expect_err_has(r, "-- gilvm report");
}

Test(model, deadlock_exits_4) {
  run_result *r = GV("--sim", "2", "-e",
                     "local l = gil.lock(); l:acquire()\n"
                     "local w = gil.spawn(function() l:acquire() end)\n"
                     "w:join()");
  expect_exit(r, 4);
  expect_err_has(r, "deadlock");
}

/* A worker blocked for real on a FIFO that main writes later: the simulation goes on without it
   (it used to hold the simulation and hang); the result is the real run's, in every mode. */
Test(model, a_real_wait_on_a_pipe_does_not_stop_the_simulation) {
  const char *modes[] = { "gil", "nogil", "fork" };
  for (int i = 0; i < 3; i++) {
    run_result *r = GV("-q", "-m", modes[i], "--sim", "2", "--timeout", "60s", data_in("sim", "fifo_reader.lua"));
    expect_exit(r, 0);
    expect_out(r, "5000050000\tline\n");
    r = GV("-q", "-m", modes[i], data_in("sim", "fifo_reader.lua"));
    expect_exit(r, 0);
    expect_out(r, "5000050000\tline\n");
  }
}

/* A worker waiting for its own child (os.execute, an io.popen read) steps out of the simulation and
   takes the child's real time in virtual time: four 0.3 s children, each wait at least 0.3 s of
   gil.now(), and the four overlapped (each began before any ended), in every mode. The wait ends at
   the spawner's clock at the spawn plus the real time since, so the bound holds however late the
   worker came to wait (a popen read finding the line there already would take none: that needs its
   worker kept from it for 0.3 s of real time; it was under 1 ms in a TSan build). */
Test(model, a_child_takes_its_real_time_and_the_others_go_on) {
  const char *modes[] = { "gil", "nogil", "fork" };
  const char *hows[] = { "execute", "popen" };
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 2; k++) {
      run_result *r =
          GV("-q", "-m", modes[i], "--sim", "2", "--timeout", "30s", data_in("sim", "subproc.lua"), hows[k]);
      expect_exit(r, 0);
      expect_out(r, "ok\ttrue\neach took at least 0.3 s\ttrue\nthey overlapped\ttrue\n");
    }
}

/* While one worker waits for its child, another simulated worker runs and ends that wait: the
   child waits for a file the other creates once the child runs (held, the simulation hung). */
Test(model, a_wait_for_a_child_lets_another_worker_end_it) {
  const char *modes[] = { "gil", "nogil", "fork" };
  for (int i = 0; i < 3; i++) {
    run_result *r = GV("-q", "-m", modes[i], "--sim", "2", "--timeout", "30s", data_in("sim", "subproc.lua"),
                       "handshake", new_tmpdir());
    expect_exit(r, 0);
    expect_out(r, "other\ttrue\nchild\ttrue\texit\t0\n");
  }
}

/* A stop (--timeout) ends a simulated worker's wait for its child, in os.execute and in a read. */
Test(model, a_stop_ends_a_simulated_wait_for_a_child) {
  const char *modes[] = { "gil", "nogil", "fork" };
  for (int i = 0; i < 3; i++) {
    run_result *r = GV("-q", "-m", modes[i], "--sim", "2", "--timeout", "0.5s", "-e",
                       "gil.spawn(function() os.execute('exec sleep 600') end)\n"
                       "gil.spawn(function() io.popen('exec sleep 600'):read() end):join()");
    expect_exit(r, 124);
    expect_err_has(r, "gilvm: stopped: timeout");
    expect_err_lacks(r, "did not stop");
  }
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

Test(model, a_real_run_has_no_simulated_section) {
  const char *json = tmp_path("real.json");
  expect_exit(GV("-q", "--json", json, "-e", "gil.spawn(function() end):join()"), 0);
  json_t *o = json_file(json);
  cr_expect(!json_object_get(o, "simulated") && !json_object_get(o, "host"));
  cr_expect(json_object_get(o, "peak_memory_kb"));
}

/* ------------------------------------------------------------ virtual cores */

TestSuite(cores, .fini = test_cleanup, .timeout = 300);

/* Each thread's run-queue wait in a --json file, main first. */
static void runq_of(json_t *o, double *q, int n) {
  json_t *threads = json_object_get(o, "threads");
  cr_assert(json_array_size(threads) == (size_t)n, "%zu threads", json_array_size(threads));
  for (int i = 0; i < n; i++) q[i] = num(json_array_get(threads, (size_t)i), "runq_wait_s");
}

Test(cores, more_workers_than_cores_wait_for_a_cpu) {
  /* 4 equal free threads of 3 ms each on 2 cores, slices of 1.5 ms, no switch cost: round robin
     runs 1,2 then 3,4 then 1,2 then 3,4; so 1 and 2 wait 1.5 ms, 3 and 4 wait 3 ms, wall 6 ms */
  const char *json = tmp_path("q.json");
  run_result *r =
      GV("--sim", "2", "-m", "nogil", "--sim-cost", "switch=0", "--sim-cost", "spawn=0", "--sim-cost", "interp=0",
         "--sim-cost", "copy=0", "--timeline", "--json", json, script("cpu_bound.lua"), "4", "2000000");
  expect_exit(r, 0);
  json_t *o = json_file(json);
  double q[5];
  runq_of(o, q, 5);
  double want[5] = { 0, 0.0015, 0.0015, 0.003, 0.003 }, sum = 0;
  for (int i = 0; i < 5; i++) sum += q[i];
  cr_expect(fabs(sum - 0.009) < 1e-5, "run-queue wait in all %.6f s, the model says 9 ms" CTX, sum, CTXA(r));
  for (int i = 1; i < 5; i++)
    cr_expect(fabs(q[i] - want[i]) < 1e-5 || fabs(q[i] - want[5 - i + 0 * i]) < 1e-5, "worker %d waited %.6f s" CTX, i,
              q[i], CTXA(r));
  cr_expect(fabs(num(o, "wall_s") - 0.006) < 1e-4, "wall %.6f s" CTX, num(o, "wall_s"), CTXA(r));
  cr_expect(fabs(num(o, "runq_wait_s") - sum) < 1e-6);
  expect_err_has(r, "c waiting for a CPU"); /* the timeline's state */
  expect_err_has(r, "no CPU"); /* the column a real run fills from the kernel's schedstat */
  expect_err_has(r, "more runnable threads than the 2 simulated cores");
  expect_err_lacks(r, "other load");
}

Test(cores, no_wait_when_every_worker_has_a_core) {
  const char *json = tmp_path("q.json");
  run_result *r =
      GV("--sim", "4", "-m", "nogil", "--timeline", "--json", json, script("cpu_bound.lua"), "4", "2000000");
  expect_exit(r, 0);
  double q[5];
  runq_of(json_file(json), q, 5);
  for (int i = 0; i < 5; i++) cr_expect_eq(q[i], 0, "thread %d waited %.6f s for a CPU", i, q[i]);
  expect_err_lacks(r, "waiting for a CPU");
  expect_err_lacks(r, "warning");
  /* under the GIL, 8 threads on 2 cores: the waiters block on the GIL, not on a core */
  r = GV("--sim", "2", "--timeline", "--json", json, script("cpu_bound.lua"), "8", "2000000");
  expect_exit(r, 0);
  expect_err_lacks(r, "warning");
}

Test(cores, a_slice_is_round_robin) {
  /* one core, two free threads: they alternate slice by slice (slice=1ms), each waiting for the other */
  const char *json = tmp_path("q.json");
  run_result *r = GV("--sim", "1", "-m", "nogil", "--sim-cost", "slice=1ms", "--sim-cost", "switch=0", "--sim-cost",
                     "spawn=0", "--sim-cost", "interp=0", "--sim-cost", "copy=0", "--timeline", "--json", json,
                     script("cpu_bound.lua"), "2", "4000000");
  expect_exit(r, 0);
  double q[3];
  runq_of(json_file(json), q, 3);
  /* 12 ms each: they take turns, each waiting 1 ms for every 1 ms it runs after its first slice
     (counted from the start of its function, as the kernel's figure is): 11 ms each, and main's
     turns on the core when it is woken (its join) add a few us */
  for (int i = 1; i <= 2; i++)
    cr_expect(q[i] > 0.01099 && q[i] < 0.01102, "worker %d waited %.6f s" CTX, i, q[i], CTXA(r));
  expect_err_has(r, "|ccc====ccc===ccc====ccc");
}

/* A worker woken from a sleep that then waits for a core (or the GIL) is
   blocked for the sleep alone: the wait after it is the no CPU (or GIL wait)
   column's, not both. Virtual time makes the figures exact: 1 ms. */
Test(cores, blocked_and_no_cpu_are_disjoint) {
  const char *json = tmp_path("q.json");
  run_result *r = GV("--sim", "1", "-m", "nogil", "--json", json, data_in("sim", "woken_queued.lua"));
  expect_exit(r, 0);
  json_t *o = json_file(json), *main = json_array_get(json_object_get(o, "threads"), 0);
  double blocked = num(main, "blocked_s"), runq = num(main, "runq_wait_s"), cpu = num(main, "cpu_s");
  cr_expect(runq > 0.001, "main waited %.6f s for the core after its sleep: the case to test" CTX, runq, CTXA(r));
  cr_expect(blocked == 0.001, "main blocked %.9f s, slept 1 ms (no CPU %.6f s)" CTX, blocked, runq, CTXA(r));
  cr_expect(blocked + runq + cpu <= num(o, "wall_s"), "main's columns overlap" CTX, CTXA(r));
  /* futex=0: the GIL's release, which wakes a waiter, is part of the span; free, it leaves the sleep alone */
  r = GV("--sim", "2", "-m", "gil", "--sim-cost", "futex=0", "--json", json, data_in("sim", "woken_queued.lua"));
  expect_exit(r, 0);
  o = json_file(json);
  main = json_array_get(json_object_get(o, "threads"), 0);
  blocked = num(main, "blocked_s");
  double wait = num(main, "gil_wait_s");
  cr_expect(wait > 0.001, "main waited %.6f s for the GIL: the case to test" CTX, wait, CTXA(r));
  cr_expect(blocked == 0.001, "main blocked %.9f s, slept 1 ms (GIL wait %.6f s)" CTX, blocked, wait, CTXA(r));
}

/* -------------------------------------------------------------- OS costs */

TestSuite(costs, .fini = test_cleanup, .timeout = 300);

Test(costs, header_and_json_print_every_cost) {
  const char *json = tmp_path("c.json");
  run_result *r = GV("--sim", "2", "--sim-cost", "switch=4us", "--sim-cost", "signal=0.5ms", "--json", json, "-e",
                     "gil.compute(0.001)");
  expect_exit(r, 0);
  expect_err_has(r, "OS costs (--sim-cost): wake 23 us   switch 4 us   slice 1.50 ms   signal 500 us");
  expect_err_has(r, "spawn 29 us   interp 65 us   futex 7 us   hook 200 ns   gap 25 ns   spread 4 us");
  json_t *c = json_object_get(json_object_get(json_file(json), "simulated"), "costs");
  cr_assert(c, "no simulated.costs");
  cr_expect(fabs(num(c, "switch") - 4e-6) < 1e-12 && fabs(num(c, "signal") - 5e-4) < 1e-12);
  cr_expect(fabs(num(c, "slice") - 0.0015) < 1e-12, "EEVDF's base slice for 2 cores");
  cr_expect(json_object_size(c) >= 10);
  /* --help (and so the man page) names every cost the model has */
  run_result *h = GV("--help");
  expect_exit(h, 0);
  const char *name;
  json_t *v;
  json_object_foreach(c, name, v) {
    (void)v;
    cr_expect(
        strstr(h->out, fmt(" %s,", name)) || strstr(h->out, fmt(" %s;", name)) || strstr(h->out, fmt("\n%s,", name)),
        "--help does not name the cost '%s'", name);
  }
}

Test(costs, a_cost_changes_the_result) {
  /* the forced handoff: the waiter's request reaches the holder a signal later, then it wakes (10 us) */
  const char *json = tmp_path("h.json");
  double med[2];
  const char *sig[2] = { "signal=7us", "signal=100us" };
  for (int k = 0; k < 2; k++) {
    run_result *r = GV("--sim", "2", "--sim-cost", sig[k], "--json", json, script("cpu_bound.lua"), "2", "4000000");
    expect_exit(r, 0);
    med[k] = num(json_file(json), "handoff_median_s");
  }
  cr_expect(med[1] - med[0] > 90e-6 && med[1] - med[0] < 95e-6, "handoff %.6f s, then %.6f s", med[0], med[1]);
  /* the spawn: a worker that reads the clock first thing starts spawn later */
  for (int k = 0; k < 2; k++) {
    run_result *r = GV("--sim", "2", "-q", "--sim-cost", k ? "spawn=1ms" : "spawn=0", "-e",
                       "print(('%.6f'):format(gil.spawn(function() return gil.now() end):join()))");
    expect_exit(r, 0);
    expect_out(r, k ? "0.001000\n" : "0.000000\n");
  }
}

/* ----------------------------------------------------------------- legacy */

TestSuite(legacy, .fini = test_cleanup, .timeout = 300);

Test(legacy, two_threads_are_slower_than_one) {
  /* the releaser wins the lock back while its woken waiter is still waking, and pays a futex wake
     for each such wake-up; one thread pays only the resting hook (200 ns per 100 instructions) */
  const char *json = tmp_path("l.json");
  double wall[3];
  const char *threads[3] = { "1", "2", "2" };
  for (int k = 0; k < 3; k++) {
    run_result *r =
        GV("--sim", "2", "-g", "legacy", "--json", json, "--timeline", script("cpu_bound.lua"), threads[k], "2000000");
    expect_exit(r, 0);
    json_t *o = json_file(json);
    wall[k] = num(o, "wall_s");
    if (k == 0) /* 12 ms of Lua (8 M instructions of 1.5 ns) and 80 000 resting-hook calls of 200 ns */
      cr_expect(fabs(wall[0] - 0.028) < 1e-4, "one thread: %.6f s" CTX, wall[0], CTXA(r));
    if (k == 1) {
      /* the releaser's futex wakes, the GIL free: the timeline's '~' time (state totals' 4th column) */
      const char *tot = strstr(r->err, "state totals");
      const char *w1 = tot ? strstr(tot, "1:sum_of_squares") : NULL;
      char held[32], u1[8], wait[32], u2[8], join[32], nogil[32];
      cr_expect(w1 && sscanf(w1, "%*s %31s %7s %31s %7s %31s %31s", held, u1, wait, u2, join, nogil) == 6 &&
                    strcmp(join, "-") == 0 && strcmp(nogil, "-") != 0,
                "no '~' time in the state totals" CTX, CTXA(r));
      expect_err_has(r, "taken straight back by the releasing thread");
      cr_expect(num(o, "switches") > 10, "the waiter wins now and then: %g switches", num(o, "switches"));
    }
  }
  cr_expect(wall[1] > 1.3 * wall[0], "2 threads %.6f s vs 1 thread %.6f s", wall[1], wall[0]);
  cr_expect_eq(wall[1], wall[2], "the same run twice: %.9f then %.9f s", wall[1], wall[2]);
  /* the same mechanism, a slower wake-up: the releaser pays the same futex for more work between */
  run_result *r = GV("--sim", "2", "-g", "legacy", "--sim-cost", "wake=40us", "--json", json, script("cpu_bound.lua"),
                     "2", "2000000");
  expect_exit(r, 0);
  cr_expect(num(json_file(json), "wall_s") < wall[1], "a 40 us wake-up: %.6f s", num(json_file(json), "wall_s"));
}

Test(legacy, the_io_thread_gets_the_gil_back) {
  /* For real, a thread back from a 1 ms sleep gets legacy's GIL back within 0.08 ms here (median
     extra latency, the sleep's own timer slack included; 30 sleeps in 33.4-33.7 ms of wall): woken,
     it queues on the GIL's mutex and the holder's next release hands it over (bench/README.md,
     "legacy's I/O thread"). A model where it wins only in a yield's 25 ns gap starved it: 1.37 s
     per sleep, 51 s of virtual time. */
  json_t *o = TWICE("--sim", "2", "-g", "legacy", script("convoy.lua"), "30");
  cr_expect_lt(figure(o, "io_extra_median_ms"), 0.08, "median extra latency %g ms", figure(o, "io_extra_median_ms"));
  cr_expect_lt(num(o, "wall_s"), 0.0337, "30 sleeps of 1 ms took %.6f s", num(o, "wall_s"));
  cr_expect_geq(num(o, "switches"), 60, "%g switches: the I/O thread takes the GIL after each sleep",
                num(o, "switches"));
}

/* Futile wake-ups burn the waiter's CPU: each wake-up costs a GIL waiter `woken` (3 us), so two legacy
   threads use more than one CPU (real: 1.2-1.6x), where without it the waiter's trips were free. */
Test(legacy, futile_wake_ups_burn_the_waiters_cpu) {
  const char *json = tmp_path("w.json");
  const char *costs[2] = { "woken=3us", "woken=0" };
  double par[2];
  for (int k = 0; k < 2; k++) {
    run_result *r = GV("--sim", "2", "-q", "-g", "legacy", "--sim-cost", costs[k], "--json", json,
                       script("cpu_bound.lua"), "2", "2000000");
    expect_exit(r, 0);
    par[k] = num(json_file(json), "parallelism");
  }
  cr_expect(par[0] > 1.05, "parallelism %.4f with a wake-up's CPU", par[0]);
  cr_expect(par[1] <= 1.0, "parallelism %.4f without it", par[1]);
}

Test(legacy, deterministic) {
  TWICE("--sim", "2", "-g", "legacy", "--timeline", script("cpu_bound.lua"), "2", "1000000");
}

Test(legacy, the_race_lessons_lose_updates) {
  /* legacy switches at any instruction its check interval lands on: a call between the read and the
     write loses updates, as for real; x = x + 1 in a 4-instruction loop does not (100 is a multiple
     of 4: the hook always lands between two iterations, for real too) */
  json_t *o = TWICE("--sim", "2", "-g", "legacy", script("race.lua"), "4", "100000");
  cr_expect_eq(figure(o, "lost_plain x = x + 1"), 0);
  cr_expect_gt(figure(o, "lost_call between r/w"), 0);
  cr_expect_eq(figure(o, "lost_call, under a lock"), 0);
  run_result *r = GV("-q", "--sim", "2", "-g", "legacy", script("lost_update.lua"));
  expect_exit(r, 0);
  expect_out_has(r, "plain      expected 400000, got 400000: lost 0");
  expect_out_has(r, "with_call  expected 400000, got ");
  cr_expect(!strstr(r->out, "with_call  expected 400000, got 400000"), "with_call lost nothing" CTX, CTXA(r));
}

Test(costs, unknown_or_bad_cost_is_a_usage_error) {
  run_result *r = GV("--sim", "2", "--sim-cost", "warp=1us", "-e", "print(1)");
  expect_exit(r, 2);
  expect_err_has(r, "unknown --sim-cost 'warp=1us'");
  expect_err_has(r, "names: wake, switch, slice, signal, spawn, interp, futex, hook, gap, spread");
  expect_usage_error(GV("--sim", "2", "--sim-cost", "switch=fast", "-e", "print(1)"), "bad --sim-cost 'switch=fast'");
  expect_usage_error(GV("--sim", "2", "--sim-cost", "switch", "-e", "print(1)"), "unknown --sim-cost 'switch'");
}

Test(model, usage_errors) {
  expect_usage_error(GV("--sim", "0", "-e", "print(1)"), "bad --sim '0'");
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
  expect_err_has(r, "fork 100 us   copy 10 us");
  json_t *a = json_file(one), *b = json_file(many);
  json_t *t1 = json_array_get(json_object_get(a, "threads"), 1);
  double alone = num(t1, "in_flight_s") - num(t1, "startup_s");
  /* a worker whose handle was collected after its join is summed in "released" (when the collector
     runs depends on what the run allocates): those count too, by their mean */
  json_t *threads = json_object_get(b, "threads"), *released = json_object_get(b, "released");
  size_t listed = json_array_size(threads) - 1, gone = (size_t)num(released, "workers");
  cr_assert_eq(listed + gone, 64, "64 workers: %zu listed, %zu released" CTX, listed, gone, CTXA(r));
  double slowest = 0;
  for (size_t i = 0; i <= listed; i++) {
    json_t *t = i < listed ? json_array_get(threads, i + 1) : released;
    double k = i < listed ? 1 : (double)gone;
    if (k == 0) break;
    double startup = num(t, "startup_s") / k, ran = num(t, "in_flight_s") / k - startup;
    if (i < listed) cr_expect_str_eq(json_string_value(json_object_get(t, "kind")), "process");
    cr_expect(fabs(ran / alone - 1) < 0.02, "worker %zu ran %.6f s, one alone %.6f s", i + 1, ran, alone);
    /* start-up: its fork (the spawner's 100 us); the spawner's state is inherited, as a real fork's, not copied */
    cr_expect(startup >= 100e-6 && startup < 200e-6, "worker %zu: start-up %.6f s", i + 1, startup);
    if (ran > slowest) slowest = ran;
  }
  double speedup = 64 * alone / slowest; /* 64 workers' work in the time of the slowest, start-up left out */
  cr_expect(fabs(speedup / 64 - 1) < 0.02, "64 processes on 64 cores: %.2fx once start-up is left out", speedup);
  cr_expect(num(b, "startup_s") >= 100e-6, "start-up %.6f s: the fork", num(b, "startup_s"));
  json_t *costs = json_object_get(json_object_get(b, "simulated"), "costs");
  cr_expect(num(costs, "fork") == 100e-6 && num(costs, "copy") == 10e-6, "the fork and copy costs in --json");
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

/* A fork inherits the modules loaded with require, with their state, and package.path; a simulated
   process gets copies of them (one copy of each, whatever reaches it), and its changes stay in it. */
Test(processes, a_process_inherits_the_spawners_modules) {
  const char *body =
      "package.path = '%s;' .. package.path\n"
      "local m = require('counter'); m.bump()\n"
      "local p = gil.%s(function()\n"
      "  m.bump()\n"
      "  return require('other').hello(), m.count, require('counter') == m\n"
      "end)\n"
      "print(p:join()); print(m.count, package.loaded.other)";
  const char *path = data_in("sim/modules", "?.lua");
  run_result *r = real_and_sim_agree("fork", fmt(body, path, "spawn"));
  expect_exit(r, 0);
  expect_out(r, "other\t2\ttrue\n1\tnil\n");
  r = real_and_sim_agree("gil", fmt(body, path, "process"));
  expect_exit(r, 0);
  expect_out(r, "other\t2\ttrue\n1\tnil\n");
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

/* A simulated process has its own GIL, as a real child does, and the run's
   GIL line is the main process's only: a real fork-mode run never counts a
   child's GIL there (it is in another process), so neither does --sim (it
   once summed every process's GIL: "GIL held 354%"). */
Test(processes, the_runs_gil_figures_are_the_main_processs_only) {
  const char *modes[] = { "fork", "gil" };
  const char *scripts[] = { "queue_workers.lua", "hybrid.lua" };
  for (int k = 0; k < 2; k++) {
    const char *json = tmp_path("g.json");
    run_result *r = GV("--sim", "2", "-q", "-m", modes[k], "--json", json, script(scripts[k]));
    expect_exit(r, 0);
    json_t *o = json_file(json);
    double held = num(o, "gil_held_s"), wall = num(o, "wall_s");
    cr_expect(held <= wall, "-m %s %s: the GIL held %.6f s in %.6f s" CTX, modes[k], scripts[k], held, wall, CTXA(r));
  }
  /* fork mode's main only spawns, puts and joins: it holds its GIL a sliver of the run */
  const char *json = tmp_path("f.json");
  run_result *r = GV("--sim", "2", "-q", "-m", "fork", "--json", json, script("queue_workers.lua"));
  json_t *o = json_file(json);
  cr_expect(num(o, "gil_held_s") < 0.5 * num(o, "wall_s"), "main held its GIL %.6f s of %.6f s" CTX,
            num(o, "gil_held_s"), num(o, "wall_s"), CTXA(r));
}

/* What is copied, as in a real run: a fork copies only the results (it
   inherits its spawner's memory: no bytes, no copy cost, only the fork's),
   while a nogil thread's own interpreter gets a copy of the globals and
   arguments, paid for at copy's cost by the spawner and the thread, so its
   start-up is mostly that copy (copy_cost.lua's lesson). */
Test(processes, a_fork_copies_what_a_real_one_does_and_a_thread_pays_for_its_copy) {
  const char *real = tmp_path("r.json"), *sim = tmp_path("s.json");
  expect_exit(GV("-q", "-m", "fork", "--json", real, script("copy_cost.lua"), "2000"), 0);
  expect_exit(GV("-q", "--sim", "2", "-m", "fork", "--json", sim, script("copy_cost.lua"), "2000"), 0);
  double rb = num(json_file(real), "bytes_copied"), sb = num(json_file(sim), "bytes_copied");
  cr_expect(sb == rb && sb < 100, "fork copied %g B simulated, %g B real: the results only", sb, rb);

  run_result *r = GV("-q", "--sim", "2", "-m", "nogil", "--json", sim, script("copy_cost.lua"), "2000");
  expect_exit(r, 0);
  json_t *o = json_file(sim);
  double bytes = num(o, "bytes_copied"), startup = num(json_array_get(json_object_get(o, "threads"), 1), "startup_s");
  cr_expect(bytes > 100000 && startup >= 0.9 * bytes * 10e-9,
            "nogil: %g B copied at 10 us per 1000 B, yet start-up only %.6f s" CTX, bytes, startup, CTXA(r));
  expect_exit(
      GV("-q", "--sim", "2", "-m", "nogil", "--sim-cost", "copy=0", "--json", sim, script("copy_cost.lua"), "2000"), 0);
  double free_copy = num(json_array_get(json_object_get(json_file(sim), "threads"), 1), "startup_s");
  cr_expect(free_copy < 0.2 * startup, "with copy=0 the start-up is %.6f s, with copies %.6f s", free_copy, startup);
}
