/*
 * test_sim_figures.c — issue 9's figures as exact tests under --sim, and the
 * timing-sensitive tests that moved to the simulation.
 *
 * Every figure here is in virtual time: the same command gives the same
 * figure on any machine under any load (each run is made twice and the two
 * must agree: stdout, --json but for its "host" section). The assertions are
 * the shapes the cost model guarantees (README, "Simulated runs"), with
 * tolerances derived from it rather than from one build's numbers, so that a
 * change of the model's OS costs (a wake-up, a context switch, a time slice)
 * keeps them true:
 * - under the GIL the work is serial: more threads or more cores never make
 *   it faster, and a forced switch costs the same fixed overheads whatever
 *   the interval;
 * - a thread with a core of its own runs at one core's speed.
 *
 * Where the timing-sensitive tests went (the tests/ files, issue 9: "the
 * timing-sensitive tests that can move to the simulation do"). "moved": the
 * lesson is a timing shape, asserted here exactly; "kept real": the test is
 * about a real mechanism (a signal, a real blocking call, a real timer, the
 * pthread GIL itself), proven by construction, with no wall-clock upper bound.
 *
 *   e2e    timing::io_bound_sleeps_overlap                moved (moved::io_bound_overlaps_exactly); the
 *                                                         real test keeps its lower bounds (a sleep took
 *                                                         its time), drops "wall < sum of sleeps" and
 *                                                         "GIL held < 50%" (both load-dependent)
 *   e2e    scripts::cpu_bound_parallelism_stays_near_one  moved (figures::gil_two_threads_take_as_long_
 *                                                         as_one); the real one stays: mutual exclusion
 *                                                         bounds cpu/wall by construction, load only
 *                                                         lowers it
 *   e2e    scripts::cpu_bound_two_threads_force_switches  moved (moved::forced_switches_follow_the_
 *                                                         interval: "big enough that both surely
 *                                                         overlap" was a size-and-hope); the real test
 *                                                         keeps the invariants and gets a forced switch
 *                                                         by construction (forced.lua's handshake)
 *   e2e    api::compute_takes_at_least_its_time           kept real (a real busy loop), "wall < 20 s"
 *                                                         dropped; exact: sim model::sleep_and_compute_...
 *   e2e    api::native_with_release_lets_another_thread_run  kept real (by construction: a 1000 s
 *                                                         interval); exact twin moved::native_release_
 *                                                         lets_main_run_at_the_first_call
 *   e2e    api::native_* (gap, wall >= s)                 kept real: lower bounds of a real gil.native
 *   e2e    stop::* (timeout, SIGINT, SIGTERM, grace)      kept real (real signals and timers; --timeout
 *                                                         is real time under --sim too); their "ended
 *                                                         within N s" upper bounds dropped: "did not
 *                                                         stop" absent proves the stop came at a check
 *                                                         point, the harness's hard limit catches a hang
 *   e2e    cli::iopri_serves_a_thread_back_from_sleep     kept real: by construction (1000 s interval)
 *   e2e    api::coroutine_*_is_preempted                  kept real: the spinner ends only if preempted
 *   modes  modes::timeout_kills_processes_without_hanging kept real (real processes), "< 10 s" dropped
 *   objects objects::blocked_on_a_queue_or_a_lock_...     kept real (a real stop), "< 20 s" dropped
 *   gil    (all: forced switches, handoffs, stats)        kept real: the pthread driver of the policies,
 *                                                         which only a real run exercises; lower bounds
 *                                                         and orderings only, waits by handshakes
 *   classroom dis::marks_agree_with_where_the_runtime_switches  kept real: where the real breaker stops
 *                                                         (by construction: check points). Its legacy
 *                                                         half ("stopped off a check point at least once
 *                                                         in 200") is probabilistic: to move once -g
 *                                                         legacy runs under --sim
 *   lua    hooks::call_hook_survives_*                    kept real: the fixture loops until it saw its
 *                                                         switches (by construction)
 *   timeline trace::forced_switches_of_two_cpu_threads    kept real: pingpong.lua's turns force switches
 *   input  forced::summary_and_table_agree_*              kept real: forced.lua's handshake
 *   io     semantics::reading_lines_does_not_release_...  kept real: a count (acq < 2000 for 20000 lines)
 *   shared, sync, lifecycle, outputs                      kept real: waits by /proc and handshakes
 *   sim    model::cpu_bound_..., model::convoy_...        already simulated; widened here (figures::*)
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_helper.h"

/* One simulated run's stdout and --json (without "host"). */
typedef struct sim_run {
  const char *out;
  json_t *json;
} sim_run;

/* gilvm -q --json F args..., twice: both runs must exit 0 and agree on stdout and --json. */
static sim_run twice(const char *const *args) {
  sim_run first = { 0 };
  for (int k = 0; k < 2; k++) {
    const char *argv[32];
    int i = 0;
    const char *json = tmp_path(k ? "b.json" : "a.json");
    argv[i++] = gilvm_path();
    argv[i++] = "-q";
    argv[i++] = "--json";
    argv[i++] = json;
    for (int j = 0; args[j] && i < 31; j++) argv[i++] = args[j];
    argv[i] = NULL;
    run_result *r = run_checked(NULL, argv);
    expect_exit(r, 0);
    json_t *o = json_file(json);
    cr_assert(json_object_get(o, "simulated"), "not a simulated run" CTX, CTXA(r));
    json_object_del(o, "host");
    if (k == 0) {
      first.out = r->out;
      first.json = o;
      continue;
    }
    cr_expect_str_eq(r->out, first.out, "stdout differs between two runs of the same simulation: %s", r->cmdline);
    cr_expect(json_equal(first.json, o), "--json differs between two runs of the same simulation" CTX, CTXA(r));
  }
  return first;
}
#define TWICE(...) twice((const char *const[]){ __VA_ARGS__, NULL })

static double num(const sim_run *s, const char *key) { return run_json_number(s->json, key); }
static double figure(const sim_run *s, const char *name) {
  return run_json_number(json_object_get(s->json, "figures"), name);
}
/* The first number on stdout (a script's own timing, in seconds). */
static double out_seconds(const sim_run *s) { return strtod(s->out, NULL); }

/* --------------------------------------------------------------- figures */

TestSuite(figures, .fini = test_cleanup, .timeout = 600);

/* CPU-bound under the GIL: 2 threads on --sim 2 take as long as 1, and 8 on
   --sim 8 too (the work is serial; the forced switches, a few per 5 ms
   interval, cost a signal, a wake-up and the new holder's resume, about
   50 us: under 2% for 2 threads, under 3% for 8, whose 7 waiters time out together). Start-up is left out, as
   the figure leaves it: 8 thread spawns (29 us each) are 2% of
   this short run. The run's parallelism
   (CPU / wall) is at most 1: one holder at a time. */
Test(figures, gil_two_threads_take_as_long_as_one) {
  const char *n = "2000000";
  sim_run one = TWICE("--sim", "2", "--sim-cost", "spawn=0", script("cpu_bound.lua"), "1", n);
  sim_run two = TWICE("--sim", "2", "--sim-cost", "spawn=0", script("cpu_bound.lua"), "2", n);
  sim_run eight = TWICE("--sim", "8", "--sim-cost", "spawn=0", script("cpu_bound.lua"), "8", n);
  double w1 = num(&one, "wall_s"), w2 = num(&two, "wall_s"), w8 = num(&eight, "wall_s");
  cr_expect(w2 >= w1 && w2 / w1 < 1.02, "2 threads on --sim 2: %.6f s, 1 thread %.6f s (%.4fx)", w2, w1, w2 / w1);
  cr_expect(w8 >= w1 && w8 / w1 < 1.03, "8 threads on --sim 8: %.6f s, 1 thread %.6f s (%.4fx)", w8, w1, w8 / w1);
  cr_expect(num(&two, "parallelism") <= 1.0 && num(&eight, "parallelism") <= 1.0, "parallelism %.4f, %.4f",
            num(&two, "parallelism"), num(&eight, "parallelism"));
}

/* --sim 64 -m nogil, 64 workers of the same loop let go at once
   (bench/equal_workers.lua: their spawning is left out): each has
   a core and runs as fast as one worker alone, so 64 of them do 64 times the
   work in the time of one: 64x within 2% once start-up (the stagger of their
   wake-ups, from the event to the last worker's start) is left out. On
   --sim 2 four of them share two cores: 2x within 2%. */
Test(figures, nogil_64_workers_each_as_fast_as_one_alone) {
  const char *w = fmt("%s/../bench/equal_workers.lua", env_dir("GILVM_SCRIPTS")), *iters = "200000";
  sim_run alone = TWICE("--sim", "64", "-m", "nogil", w, "1", iters);
  sim_run all = TWICE("--sim", "64", "-m", "nogil", w, "64", iters);
  double t1, lo, hi, span, stagger;
  cr_assert(sscanf(alone.out, "%lf", &t1) == 1 && t1 > 0, "alone: %s", alone.out);
  cr_assert(sscanf(all.out, "%lf %lf %lf %lf", &lo, &hi, &span, &stagger) == 4, "64 workers: %s", all.out);
  cr_expect(fabs(lo / t1 - 1) <= 0.02 && fabs(hi / t1 - 1) <= 0.02,
            "each of 64 workers took %.6f s to %.6f s, one alone %.6f s", lo, hi, t1);
  double speedup = 64 * t1 / (span - stagger);
  cr_expect(fabs(speedup / 64 - 1) <= 0.02,
            "64 workers on --sim 64: %.2fx (span %.6f s, start-up %.6f s, one alone %.6f s)", speedup, span, stagger,
            t1);

  /* four on two cores: two start, two wait for a core (a time slice is longer
     than this work), so the span from the first start is twice one alone.
     Start-up costs are left out here: workers' own clocks may run up to the
     nogil lookahead apart, so a start measured against main's clock is
     only good to 100 us, and an interpreter's creation (65 us) would land
     inside the span */
  sim_run shared = TWICE("--sim", "2", "-m", "nogil", "--sim-cost", "interp=0", "--sim-cost", "copy=0", "--sim-cost",
                         "spawn=0", w, "4", iters);
  double first;
  cr_assert(sscanf(shared.out, "%lf %lf %lf %lf %lf", &lo, &hi, &span, &stagger, &first) == 5, "4 workers: %s",
            shared.out);
  cr_expect(fabs(4 * t1 / (span - first) / 2 - 1) <= 0.02,
            "4 workers on --sim 2: %.2fx, not 2x (span %.6f s, first start %.6f s)", 4 * t1 / (span - first), span,
            first);
}

/* The convoy (scripts/convoy.lua): a 1 ms sleeper next to a hog waits one
   switch interval for the GIL after each sleep, plus fixed costs (a wake-up,
   the hog reaching its next check point) that do not depend on the
   interval. So for 0.1 ms to 20 ms the extra latency per sleep is the
   interval plus one and the same overhead (to within a few instructions'
   ticks: the check point is a seeded number of instructions away, 10 us
   here), and that overhead is at most row 3's handoff allowance in
   bench/run (0.2 ms; today's model: 0.01 ms). */
Test(figures, convoy_latency_is_the_interval_from_0_1_to_20_ms) {
  const char *ivals[] = { "100us", "1ms", "5ms", "20ms" };
  const double ms[] = { 0.1, 1, 5, 20 };
  double over[4];
  for (int i = 0; i < 4; i++) {
    sim_run c = TWICE("--sim", "2", "-s", ivals[i], script("convoy.lua"), "20");
    double median = figure(&c, "io_extra_median_ms");
    over[i] = median - ms[i];
    cr_expect(over[i] >= 0 && over[i] <= 0.2, "-s %s: extra latency %.4f ms, not the interval + at most 0.2 ms",
              ivals[i], median);
  }
  for (int i = 1; i < 4; i++)
    cr_expect(fabs(over[i] - over[0]) <= 0.01, "the overhead depends on the interval: %.4f ms at -s %s, %.4f at %s",
              over[i], ivals[i], over[0], ivals[0]);
}

/* The switch-interval sweep of "Python behind the scenes #13"
   (bench/countdown.lua, bench/run row 12): a countdown on 1 thread, then
   split over 8, at -s 5ms, 1ms, 100us and 10us, on --sim 2, 8 and 64. What
   the model guarantees:
   - one thread has nobody to switch with but main (which only spawns and
     joins): its time is the same on every core count, and within 1% at
     every interval;
   - 8 threads are never faster than 1 (the work is serial under the GIL);
   - each forced switch adds the same fixed costs, so the shorter the
     interval, the more forced switches, and time(8)/time(1) at 1 ms and
     below is above its 5 ms value; at 5 ms there are a handful: under 5%
     (real gilvm: 1.00-1.04x);
   - with a core for each thread more cores change nothing: --sim 8 =
     --sim 64 (within 1%). On --sim 2 the 7 waiters share a core, so their
     timed waits expire late and they ask for fewer drops: no order between
     --sim 2 and --sim 8 is guaranteed. */
Test(figures, countdown_sweep_on_2_8_and_64_cores) {
  const char *ivals[] = { "5ms", "1ms", "100us", "10us" }, *cores[] = { "2", "8", "64" };
  const char *total = "4000000", *countdown = fmt("%s/../bench/countdown.lua", env_dir("GILVM_SCRIPTS"));
  double t1_of[4] = { 0 }, ratio[3][4];
  long forced[3][4];
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < 4; i++) {
      sim_run one = TWICE("--sim", cores[c], "-s", ivals[i], countdown, "1", total);
      sim_run eight = TWICE("--sim", cores[c], "-s", ivals[i], countdown, "8", total);
      double t1 = out_seconds(&one), t8 = out_seconds(&eight);
      cr_assert(t1 > 0 && t8 > 0, "countdown times %s, %s", one.out, eight.out);
      if (c == 0) t1_of[i] = t1;
      cr_expect(t1 == t1_of[i], "1 thread, -s %s: --sim %s %.9f s, --sim 2 %.9f s", ivals[i], cores[c], t1, t1_of[i]);
      cr_expect(fabs(t1 / t1_of[0] - 1) <= 0.01, "1 thread, --sim %s: -s %s %.6f s, -s 5ms %.6f s", cores[c], ivals[i],
                t1, t1_of[0]);
      ratio[c][i] = t8 / t1;
      forced[c][i] = (long)num(&eight, "forced_switches");
      cr_expect(ratio[c][i] >= 0.999, "--sim %s -s %s: 8 threads faster than 1 (%.4fx)", cores[c], ivals[i],
                ratio[c][i]);
    }
  for (int c = 0; c < 3; c++) {
    cr_expect(ratio[c][0] < 1.05, "--sim %s -s 5ms: %.4fx", cores[c], ratio[c][0]);
    for (int i = 1; i < 4; i++) {
      /* below 1 ms the ratio need not keep rising (real gilvm and CPython
         both measured 10 us at or below 100 us): each switch costs more
         than 5 ms's do, no more is guaranteed */
      cr_expect(ratio[c][i] > ratio[c][0], "--sim %s: -s %s %.4fx, not above -s 5ms %.4fx", cores[c], ivals[i],
                ratio[c][i], ratio[c][0]);
      cr_expect(forced[c][i] > forced[c][i - 1], "--sim %s: %ld forced switches at -s %s, %ld at -s %s", cores[c],
                forced[c][i], ivals[i], forced[c][i - 1], ivals[i - 1]);
    }
  }
  for (int i = 0; i < 4; i++) {
    cr_expect(fabs(ratio[2][i] / ratio[1][i] - 1) <= 0.01, "-s %s: --sim 64 %.4fx, --sim 8 %.4fx", ivals[i],
              ratio[2][i], ratio[1][i]);
  }
}

/* A forced switch costs the thread that takes the GIL `resume` of CPU with the
   GIL held (a real one runs Lua slower after its thread moved core: bench/README.md,
   row 12). A larger resume makes the run longer, so a few more switches fall due;
   each switch also keeps the GIL held for the signal's flight (7 us): so the held
   time grows by resume per forced switch, plus at most 10 us per extra switch. */
Test(figures, a_forced_switch_costs_the_new_holder_resume) {
  const char *countdown = fmt("%s/../bench/countdown.lua", env_dir("GILVM_SCRIPTS"));
  sim_run none = TWICE("--sim", "2", "-s", "1ms", "--sim-cost", "resume=0", countdown, "2", "4000000");
  sim_run some = TWICE("--sim", "2", "-s", "1ms", "--sim-cost", "resume=300us", countdown, "2", "4000000");
  double grew = num(&some, "gil_held_s") - num(&none, "gil_held_s");
  double forced = num(&some, "forced_switches"), more = forced - num(&none, "forced_switches");
  cr_assert(forced >= 10 && more >= 0, "forced switches: %.0f, %.0f more", forced, more);
  cr_expect(fabs(grew - forced * 300e-6) <= (more + 1) * 10e-6, "GIL held %.6f s longer over %.0f forced switches",
            grew, forced);
}

/* ------------------------------------------------------------------ moved */

/* README's `build/gilvm scripts/race.lua` under --sim 2 draws the real run's
   conclusion: `shared:set(shared:get() + 1)` loses updates under the GIL, while
   `x = x + 1`, the lock and `value:add` lose none. A shared object's method
   costs `object` (40 ns) beyond its Lua instructions, as a real call does
   (38-41 ns here): without that cost each worker's 200000 gets and sets took
   2.5 ms of virtual time, less than one switch interval, so no switch fell
   between a get and its set and nothing was lost (the real run: 18 ms a worker,
   167474 and 432237 lost in two runs). With `object=0` the old figure comes back. */
Test(figures, race_value_get_set_loses_updates_as_for_real) {
  sim_run s = TWICE("--sim", "2", script("race.lua"));
  cr_expect(figure(&s, "lost_value get/set") > 0, "value get/set lost %g updates", figure(&s, "lost_value get/set"));
  cr_expect(figure(&s, "lost_plain x = x + 1") == 0 && figure(&s, "lost_call, under a lock") == 0 &&
                figure(&s, "lost_value add") == 0,
            "plain %g, lock %g, add %g lost", figure(&s, "lost_plain x = x + 1"), figure(&s, "lost_call, under a lock"),
            figure(&s, "lost_value add"));
  sim_run free = TWICE("--sim", "2", "--sim-cost", "object=0", script("race.lua"));
  cr_expect(figure(&free, "lost_value get/set") == 0, "object=0: value get/set lost %g updates",
            figure(&free, "lost_value get/set"));
}

TestSuite(moved, .fini = test_cleanup, .timeout = 600);

/* From e2e timing::io_bound_sleeps_overlap: three 0.5 s sleeps overlap, so
   the run takes 0.5 s (and a wake-up), not 1.5 s, and nobody holds the GIL
   while sleeping. */
Test(moved, io_bound_overlaps_exactly) {
  sim_run s = TWICE("--sim", "2", script("io_bound.lua"), "3", "0.5");
  double wall = num(&s, "wall_s");
  cr_expect(wall >= 0.5 && wall < 0.51, "three 0.5 s sleeps at once: %.6f s", wall);
  cr_expect(fabs(num(&s, "in_flight_s") - 1.5) < 0.01, "in flight %.6f s", num(&s, "in_flight_s"));
  cr_expect(num(&s, "overlap") > 2.9, "overlap %.4f", num(&s, "overlap"));
  cr_expect(num(&s, "gil_held_s") < 0.001 * wall, "the GIL was held %.6f s of %.6f s", num(&s, "gil_held_s"), wall);
}

/* From e2e scripts::cpu_bound_two_threads_force_switches: two CPU threads
   under -s 1ms take turns by forced switches, one per interval of waiting:
   at most wall / interval of them, and, since both run for about the whole
   run, at least that less five intervals (the first request waits two
   intervals when another thread took the GIL meanwhile, as CPython's does; the
   survivor runs its last stretch alone; each switch adds a handoff to its
   interval). Each is a handoff. */
Test(moved, forced_switches_follow_the_interval) {
  sim_run s = TWICE("--sim", "2", "-s", "1ms", script("cpu_bound.lua"), "2", "2000000");
  double wall = num(&s, "wall_s"), forced = num(&s, "forced_switches");
  cr_expect(forced <= wall / 0.001 && forced >= wall / 0.001 - 5, "%g forced switches in %.6f s at -s 1ms", forced,
            wall);
  cr_expect(num(&s, "handoffs") == forced && num(&s, "drop_requests") >= forced, "handoffs %g, drop requests %g",
            num(&s, "handoffs"), num(&s, "drop_requests"));
}

/* From e2e api::native_with_release_lets_another_thread_run: in virtual time
   main, waiting for the GIL, takes it during the worker's first
   gil.native(0.01, true): exactly one call, every time. */
Test(moved, native_release_lets_main_run_at_the_first_call) {
  sim_run s = TWICE("--sim", "2", "-s", "1000s", data_in("e2e", "native_release.lua"), "true");
  cr_expect_str_eq(s.out, "calls 1 flag_seen 1\n");
  s = TWICE("--sim", "2", "-s", "1000s", data_in("e2e", "native_release.lua"), "false");
  cr_expect_str_eq(s.out, "calls 20 flag_seen 0\n");
}
