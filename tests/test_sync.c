/*
 * test_sync.c — Python's concurrency vocabulary: gil.rlock, gil.event,
 * gil.semaphore, gil.condition, gil.barrier, gil.array, gil.pipe,
 * q:task_done/q:join, gil.wait/gil.as_completed and to-be-closed holders.
 *
 * Each test runs a fixture from tests/data/sync/ once per mode (gil, nogil,
 * fork); every fixture also uses the object across a gil.process worker.
 * The fixtures wait for each other by counts (a shared value says "I am
 * waiting"), never by sleeping; a blocking call that kept the GIL would
 * hang the fixture (main could never run again), which the harness's hard
 * limit turns into a failure.
 */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "run_helper.h"

static const char *const modes[] = { "gil", "nogil", "fork" };
#define NMODES 3

TestSuite(sync, .fini = test_cleanup, .timeout = 300.);

static run_result *run_program_in(const char *mode, const char *dir, const char *name) {
  const char *argv[] = { "-q", "-m", mode, data_in(dir, name), NULL };
  return gv_run(NULL, argv);
}

static run_result *run(const char *mode, const char *name) { return run_program_in(mode, "sync", name); }

/* The fixture prints the same thing in every mode, and exits 0. */
static void expect_fixture(const char *name, const char *want) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run(modes[m], name);
    expect_exit(r, 0);
    cr_expect(strstr(r->err, "gilvm: ") == NULL, "%s: gilvm complained" CTX, modes[m], CTXA(r));
    expect_out(r, want);
  }
}

Test(sync, rlock_is_reentrant_for_its_owner_only_and_survives_a_dead_owner) {
  expect_fixture("rlock.lua",
                 "acquire twice\ttrue\ttrue\n"
                 "still locked\ttrue\n"
                 "free\tfalse\n"
                 "extra release\tfalse\trelease of an unlocked lock\n"
                 "total\t800\texpected\t800\n"
                 "other worker\tfalse\tfalse\n"
                 "owner died\tfalse\tlock owner died while holding it\n"
                 "then\ttrue\ttrue\n"
                 "held twice\ttrue\n"
                 "hold released\tfalse\n"
                 "with error\tfalse\tboom\n"
                 "after error\tfalse\n");
}

Test(sync, event_wakes_every_waiter_and_times_out_when_clear) {
  expect_fixture("event.lua",
                 "initially\tfalse\tfalse\tfalse\n"
                 "before set\t0\n"
                 "waiter\t1\ttrue\n"
                 "waiter\t2\ttrue\n"
                 "waiter\t3\ttrue\n"
                 "passed\t3\ttrue\ttrue\ttrue\n"
                 "cleared\tfalse\tfalse\n");
}

Test(sync, semaphore_admits_k_and_a_bounded_one_refuses_extra_releases) {
  expect_fixture("semaphore.lua",
                 "most inside <= k\ttrue\tvalue\t2\n"
                 "take all\ttrue\ttrue\ttimeout\tfalse\tfalse\n"
                 "bounded\ttrue\ttrue\tfalse\tsemaphore released too many times (it is bounded)\n"
                 "zero\tfalse\tfalse\tbad argument #1 to 'gil.semaphore' (must be 0 or more)\n"
                 "released to waiter\ttrue\n"
                 "held\t0\n"
                 "hold released\t1\n");
}

Test(sync, condition_wait_notify_wait_for_and_their_errors) {
  expect_fixture(
      "condition.lua",
      "wait unheld\tfalse\tcannot wait on un-acquired lock\n"
      "notify unheld\tfalse\tcannot notify on un-acquired lock\n"
      "timeout\tfalse\tstill held\ttrue\n"
      "after one item\t1\n"
      "consumer\t1\ttrue\n"
      "consumer\t2\ttrue\n"
      "consumer\t3\ttrue\n"
      "left\t0\t3\n"
      "process waiter\ttrue\n"
      "its lock\ttrue\tfalse\tbad argument #1 to 'gil.condition' (gil.lock or gil.rlock expected, got number)\n");
}

Test(sync, barrier_gives_distinct_indexes_and_a_timeout_breaks_it_for_all) {
  expect_fixture("barrier.lua",
                 "rounds\t15,15,15,15,15\tparties\t4\tbroken\tfalse\n"
                 "timed out\tfalse\tbarrier is broken (this wait timed out)\n"
                 "other waiter\tfalse\tbarrier is broken\n"
                 "broken\ttrue\tfalse\tbarrier is broken\n"
                 "reset\tfalse\t0\n"
                 "two parties\t1\n"
                 "aborted\tfalse\tbarrier is broken\n"
                 "bad\tfalse\tbad argument #1 to 'gil.barrier' (must be 1 or more)\n");
}

Test(sync, array_add_is_atomic_and_numbers_keep_their_subtype) {
  char want[1024];
  snprintf(want, sizeof want,
           "sums\t1500\t750.0\t500\ttypes\tinteger\tfloat\tlen\t3\n"
           "from list\t1 2.5 -3\tinteger\n"
           "init\t7\t7\n"
           "out of range\tfalse\tarray index 3 out of range (1..2)\n"
           "bad set\tfalse\tbad argument #3 to 'newindex' (number expected, got string)\n"
           "bad list\tfalse\tbad argument #1 to 'array' (item 2 is not a number)\n");
  expect_fixture("array.lua", want);
}

Test(sync, queue_task_done_and_join_and_put_nil_is_an_error) {
  expect_fixture("queue_join.lua",
                 "put nil\tfalse\tbad argument #2 to '?' (a queue item cannot be nil (get returns nil on close and "
                 "timeout))\n"
                 "task_done unput\tfalse\ttask_done() called more times than there were items put\n"
                 "join empty\ttrue\n"
                 "joined\ttrue\tdone\t210\n"
                 "workers done\ttrue\t0\n"
                 "join timeout\tfalse\tfalse\n"
                 "end\ttrue\t0\n");
}

Test(sync, pipe_two_way_one_way_and_closed_when_the_other_end_closes) {
  char want[1024];
  snprintf(want, sizeof want,
           "timeout\tnil\ttimeout\n"
           "worker\t55\tclosed\n"
           "closed end\tfalse\tthis end of the pipe is closed\n"
           "one-way\tfalse\tfalse\tthis end of a one-way pipe only sends\n"
           "from a process\t1 2 3 closed\n"
           "send nil\tfalse\tbad argument #1 to 'send' (cannot send nil (recv returns nil on close and "
           "timeout))\n");
  expect_fixture("pipe.lua", want);
}

Test(sync, wait_as_completed_and_a_pool_closed_by_close) {
  char want[1024];
  snprintf(want, sizeof want,
           "first\t1\ttrue\t1\ttrue\n"
           "timeout\t1\t1\n"
           "as_completed timeout\tfalse\tas_completed: timeout (1 of 1 futures unfinished)\n"
           "as_completed\tfast slow\n"
           "all\t2\t0\n"
           "bad\tfalse\tfalse\tbad argument #3 to 'wait' (\"all\" or \"first\" expected)\n"
           "closed by <close>\tgil.pool: 2 workers (closed)\n");
  expect_fixture("futures.lua", want);
}

Test(sync, every_blocking_call_releases_the_gil) {
  expect_fixture("gil_released.lua",
                 "event\ttrue\ttrue\n"
                 "semaphore\ttrue\ttrue\n"
                 "condition\ttrue\ttrue\n"
                 "barrier\ttrue\ttrue\n"
                 "rlock\ttrue\ttrue\n"
                 "pipe\ttrue\ttrue\n"
                 "join\ttrue\ttrue\n");
}

Test(sync, a_process_dying_while_waiting_loses_no_notify) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run(modes[m], "dying.lua");
    expect_exit(r, 0);
    expect_out_has(r, "exited with status 3 before sending its results\nlive waiter notified\ttrue\n");
    expect_out_has(r, "\nsemaphore\ttrue\tevent\ttrue\n");
  }
}

/* ============================================================ deadlock */

TestSuite(deadlock, .fini = test_cleanup, .timeout = 300.);

/* stderr has every needle (NULL-terminated). */
static void expect_err_all(const run_result *r, ...) {
  va_list ap;
  va_start(ap, r);
  const char *needle;
  while ((needle = va_arg(ap, const char *)) != NULL)
    cr_expect(strstr(r->err, needle) != NULL, "stderr has no \"%s\"" CTX, needle, CTXA(r));
  va_end(ap);
}

/* stderr has a line "  'who' waits at ...FILE:LINE WHAT" (Lua shortens a long path at its start). */
static void expect_wait_line(const run_result *r, const char *who, const char *file_line, const char *what) {
  char *prefix = fmt("  '%s' waits at ", who), *mid = fmt("%s %s", file_line, what);
  for (const char *line = r->err; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    const char *end = strchr(line, '\n');
    char *copy = fmt("%.*s", end ? (int)(end - line) : (int)strlen(line), line);
    if (strncmp(copy, prefix, strlen(prefix)) == 0 && strstr(copy, mid)) return;
  }
  cr_expect_fail("stderr has no line \"%s...%s\"" CTX, prefix, mid, CTXA(r));
}

Test(deadlock, two_threads_taking_two_locks_in_opposite_orders_exit_4_naming_the_cycle) {
  for (int m = 0; m < NMODES; m++) { /* threads in gil and nogil modes, processes in fork mode */
    run_result *r = run_program_in(modes[m], "deadlock", "two_locks.lua");
    expect_exit(r, 4);
    expect_out(r, "");
    expect_err_all(r, "gilvm: deadlock: 2 workers wait for each other, none with a timeout:\n",
                   ", held by '1@two_locks.lua:3'\n", ", held by 'main'\n", "gilvm: stopped: deadlock\n", NULL);
    expect_wait_line(r, "main", "two_locks.lua:13", "for rlock 0x");
    expect_wait_line(r, "1@two_locks.lua:3", "two_locks.lua:7", "for lock 0x");
  }
}

Test(deadlock, a_join_waiting_for_a_thread_that_waits_for_the_joiner_is_one) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run_program_in(modes[m], "deadlock", "join_cycle.lua");
    expect_exit(r, 4);
    expect_wait_line(r, "1@join_cycle.lua:4", "join_cycle.lua:5", "for lock 0x");
    expect_wait_line(r, "main", "join_cycle.lua:8", "to join '1@join_cycle.lua:4'");
  }
}

Test(deadlock, a_ring_of_three_threads_in_every_mode) {
  for (int m = 0; m < NMODES; m++) { /* gil.thread: a thread in fork mode too */
    run_result *r = run_program_in(modes[m], "deadlock", "three_way.lua");
    expect_exit(r, 4);
    expect_err_all(r, "gilvm: deadlock: 3 workers wait for each other, none with a timeout:\n", "  '1:ring' waits at ",
                   "  '2:ring' waits at ", "  '3:ring' waits at ", NULL);
  }
}

Test(deadlock, two_processes_found_while_main_joins_one) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run_program_in(modes[m], "deadlock", "processes.lua");
    expect_exit(r, 4);
    expect_out(r, "");
    expect_err_all(r, "gilvm: deadlock: 2 workers wait for each other, none with a timeout:\n", ", held by '2:side'\n",
                   ", held by '1:side'\n", NULL);
    expect_wait_line(r, "1:side", "processes.lua:7", "for lock 0x");
    expect_wait_line(r, "2:side", "processes.lua:7", "for lock 0x");
  }
}

Test(deadlock, timeouts_sleepers_processes_and_chains_are_not_deadlocks) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run_program_in(modes[m], "deadlock", "not_deadlocks.lua");
    expect_exit(r, 0);
    expect_out(r, "timeout side\tfalse\nsleeper\tslept\nprocess\tprocess\nchain\tjoined\n");
    cr_expect(strstr(r->err, "deadlock") == NULL, "%s" CTX, modes[m], CTXA(r));
  }
}

Test(deadlock, everybody_waiting_on_queues_and_events_is_one_too) {
  for (int m = 0; m < 2; m++) { /* threads: in fork mode the worker is a process, which could always put */
    run_result *r = run_program_in(modes[m], "deadlock", "nobody_puts.lua");
    expect_exit(r, 4);
    expect_out(r, "ready\n");
    expect_err_all(
        r, "gilvm: deadlock: every worker waits, none with a timeout, for what only another of them could give:\n",
        "gilvm: stopped: deadlock\n", NULL);
    expect_wait_line(r, "main", "nobody_puts.lua:10", "to get an item from queue 0x");
    expect_wait_line(r, "1@nobody_puts.lua:4", "nobody_puts.lua:5", "for event 0x");
  }
}

Test(deadlock, a_producer_that_failed_leaves_its_consumer_waiting_for_ever) {
  for (int m = 0; m < NMODES; m++) { /* gil.thread: a thread in every mode */
    run_result *r = run_program_in(modes[m], "deadlock", "producer_died.lua");
    expect_exit(r, 4);
    expect_err_all(r, "producer failed", NULL);
    expect_wait_line(r, "main", "producer_died.lua:4", "to get an item from queue 0x");
  }
}

Test(deadlock, busy_waits_a_producer_process_and_a_sleeper_are_not_deadlocks) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run_program_in(modes[m], "deadlock", "busy_not_deadlocked.lua");
    expect_exit(r, 0);
    expect_out(r, "sum\ttrue\nfrom process\tlate\nafter sleeper\ttrue\n");
    cr_expect(strstr(r->err, "deadlock") == NULL, "%s" CTX, modes[m], CTXA(r));
  }
}

Test(deadlock, a_condition_wait_nobody_will_notify_is_one) {
  for (int m = 0; m < NMODES; m++) { /* the worker is a process in fork mode */
    run_result *r = run_program_in(modes[m], "deadlock", "cond_wait.lua");
    expect_exit(r, 4);
    expect_err_all(
        r, "gilvm: deadlock: every worker waits, none with a timeout, for what only another of them could give:\n",
        "gilvm: stopped: deadlock\n", NULL);
    expect_wait_line(r, "main", "cond_wait.lua:6", "to be notified on condition 0x");
    expect_wait_line(r, "1@cond_wait.lua:4", "cond_wait.lua:4", "to get an item from queue 0x");
  }
}

/* A notified waiter must take the lock back before its wait returns: while
   another holds the lock for ever, it waits for that lock, and the detector
   counts it so (the join: a cycle; the queue: everybody waits), real and --sim. */
static run_result *run_deadlock(const char *mode, int sim, const char *name) {
  const char *real[] = { "-q", "-m", mode, data_in("deadlock", name), NULL };
  const char *simulated[] = { "-q", "-m", mode, "--sim", "2", data_in("deadlock", name), NULL };
  return gv_run(NULL, sim ? simulated : real);
}

Test(deadlock, a_notified_condition_waiter_that_can_never_retake_its_lock_is_one) {
  for (int m = 0; m < NMODES; m++) /* the waiter is a process in fork mode */
    for (int sim = 0; sim < 2; sim++) {
      run_result *r = run_deadlock(modes[m], sim, "cond_retake_join.lua");
      expect_exit(r, 4);
      expect_out(r, "");
      expect_err_all(r, "gilvm: deadlock: 2 workers wait for each other, none with a timeout:\n",
                     "gilvm: stopped: deadlock\n", NULL);
      expect_wait_line(r, "main", "cond_retake_join.lua:13", "to join '1@cond_retake_join.lua:4'");
      expect_wait_line(r, "1@cond_retake_join.lua:4", "cond_retake_join.lua:7",
                       "to take back the lock of condition 0x");
      expect_err_all(r, "(notified), held by 'main'\n", NULL);
      r = run_deadlock(modes[m], sim, "cond_retake.lua");
      expect_exit(r, 4);
      expect_out(r, "");
      expect_err_all(
          r, "gilvm: deadlock: every worker waits, none with a timeout, for what only another of them could give:\n",
          "(notified), held by 'main'\n", "gilvm: stopped: deadlock\n", NULL);
      expect_wait_line(r, "main", "cond_retake.lua:15", "to get an item from queue 0x");
      expect_wait_line(r, "1@cond_retake.lua:5", "cond_retake.lua:8", "to take back the lock of condition 0x");
    }
}

Test(deadlock, a_barrier_that_too_few_reach_is_one) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run_program_in(modes[m], "deadlock", "barrier_wait.lua");
    expect_exit(r, 4);
    expect_err_all(r, "gilvm: stopped: deadlock\n", NULL);
    expect_wait_line(r, "main", "barrier_wait.lua:4", "at barrier 0x");
    expect_wait_line(r, "1@barrier_wait.lua:3", "barrier_wait.lua:3", "at barrier 0x");
  }
}

Test(deadlock, a_process_worker_and_main_both_waiting_is_one) {
  for (int m = 0; m < NMODES; m++) { /* gil.process: a process in every mode */
    run_result *r = run_program_in(modes[m], "deadlock", "process_waits.lua");
    expect_exit(r, 4);
    expect_out(r, "");
    expect_wait_line(r, "main", "process_waits.lua:4", "to get an item from queue 0x");
    expect_wait_line(r, "1@process_waits.lua:3", "process_waits.lua:3", "to get an item from queue 0x");
  }
}

Test(deadlock, main_joining_a_process_worker_that_waits_for_ever_is_one) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run_program_in(modes[m], "deadlock", "process_join.lua");
    expect_exit(r, 4);
    expect_wait_line(r, "main", "process_join.lua:4", "to join '1@process_join.lua:3'");
    expect_wait_line(r, "1@process_join.lua:3", "process_join.lua:3", "to get an item from queue 0x");
  }
}

Test(deadlock, a_sleeping_notifier_and_a_waiter_with_a_timeout_are_not_deadlocks) {
  for (int m = 0; m < NMODES; m++) {
    run_result *r = run_program_in(modes[m], "deadlock", "cond_not_deadlocks.lua");
    expect_exit(r, 0);
    expect_out(r, "sleeping notifier\tnotified\nwaiter with a timeout\ttrue\tinteger\n");
    cr_expect(strstr(r->err, "deadlock") == NULL, "%s" CTX, modes[m], CTXA(r));
  }
}
