/*
 * test_lua.c — gilvm runs Lua as lua5.4 does (issue 7, section 2).
 *
 * End-to-end, like test_e2e.c: each test runs the gilvm binary ($GILVM) on a
 * fixture from tests/data/lua/ ($GILVM_TESTDATA) through run_helper.c and
 * checks what the script printed. The fixtures are the reduced cases behind
 * the official Lua suite's failures (`make conformance` runs the suite
 * itself): coroutine.wrap after an error, debug hooks on coroutines, debug
 * hooks under forced switches and the legacy GIL, the breaker's arming on a
 * deep stack, and coroutine.running in a worker's body.
 *
 * Nothing here depends on timing: a contended fixture loops until it has
 * seen the other thread run in the middle of its hooked loop, and the
 * arming test counts armings against drop requests.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "run_helper.h"

static const char *data(const char *name) { return data_in("lua", name); }

/* The number after key in text. */
static long number_after(const run_result *r, const char *text, const char *key) {
  double v;
  cr_assert(report_number_after(text, key, &v), "no number after \"%s\"" CTX, key, CTXA(r));
  return (long)v;
}

/* ---------------------------------------------------------------- wrap */

TestSuite(wrap, .fini = test_cleanup, .timeout = 120);

Test(wrap, dead_coroutine_raises_instead_of_calling_its_error_object) {
  run_result *r = GV("-q", data("wrap_dead.lua"));
  expect_exit(r, 0);
  expect_out(r, "false\tfunction\nfalse\tcannot resume dead coroutine\n");
}

Test(wrap, error_of_a_close_handler_is_the_one_raised) {
  run_result *r = GV("-q", data("wrap_close.lua"));
  expect_exit(r, 0);
  expect_out(r, "100\nfalse\t@YYY: after @XXX\nfalse\tcannot resume dead coroutine\n");
}

/* --------------------------------------------------------------- hooks */

TestSuite(hooks, .fini = test_cleanup, .timeout = 180);

Test(hooks, line_hook_on_a_coroutine_survives_its_resumes) {
  run_result *r = GV("-q", data("co_hook.lua"));
  expect_exit(r, 0);
  expect_out(r, "true\t2\ntrue\ntrue\t4\n6 7 8 9\ntrue\n");
}

static const char gethook_out[] =
    "before\tnil\nset\ttrue\tcl\t7\ncount1\ttrue\ncount4\ttrue\ncount4000\ttrue\nafter\tnil\n";

Test(hooks, gethook_returns_the_scripts_hook) {
  run_result *r = GV("-q", data("gethook.lua"));
  expect_exit(r, 0);
  expect_out(r, gethook_out);
}

/* The legacy GIL keeps a count hook on every thread: the script must not see it. */
Test(hooks, gethook_returns_the_scripts_hook_under_legacy) {
  run_result *r = GV("-q", "-g", "legacy", data("gethook.lua"));
  expect_exit(r, 0);
  expect_out(r, gethook_out);
}

/* hook_contended.lua counts its hooked calls while the other thread takes
   the GIL from it 20 times in the middle of its loop. */
static void contended_hook(const char *mode, const char *policy) {
  run_result *r = GV("-m", mode, "-g", policy, "-s", "100us", data("hook_contended.lua"));
  expect_exit(r, 0);
  long calls = number_after(r, r->out, "calls ");
  long hits = number_after(r, r->out, "hits ");
  cr_assert(calls > 0 && hits == calls,
            "the script's call hook saw %ld of %ld calls (%s, %s): it was replaced or cleared" CTX, hits, calls, mode,
            policy, CTXA(r));
  cr_assert(strstr(r->out, "seen 20\n") && strstr(r->out, "mask c\n"),
            "the script saw no preemption, or gethook showed another mask" CTX, CTXA(r));
  parsed_report rr;
  cr_assert(report_parse_run(r->err, &rr), "no complete report on stderr" CTX, CTXA(r));
  cr_assert(rr.switches >= 20, "fewer switches than the script saw" CTX, CTXA(r));
}

Test(hooks, call_hook_survives_forced_switches) { contended_hook("gil", "cpython"); }
/* The legacy GIL's resting count hook and the script's hook, on one thread. */
Test(hooks, call_hook_survives_the_legacy_gil) { contended_hook("gil", "legacy"); }
Test(hooks, call_hook_survives_fifo_handoffs) { contended_hook("gil", "fifo"); }
Test(hooks, call_hook_survives_forced_switches_in_fork_mode) { contended_hook("fork", "cpython"); }

/* ------------------------------------------------------------- breaker */

TestSuite(breaker, .fini = test_cleanup, .timeout = 240);

/* lua_sethook marks every frame: on a stack overflow (~190k frames) a waiter
   that re-armed every interval while its request was pending kept the holder
   in lua_sethook for seconds (thousands of armings for a few dozen requests).
   A request is armed once; a holder descheduled between taking a request and
   dropping the GIL may be asked (and armed) again, so the bound is twice the
   drop requests plus a few at start-up. */
Test(breaker, deep_stack_is_armed_once_per_drop_request) {
  cr_assert(setenv("GILVM_BREAKER_STATS", "1", 1) == 0);
  run_result *r = GV("-s", "50us", data("deep.lua"), "2");
  expect_exit(r, 0);
  cr_assert(count_occurrences(r->out, "stack overflow") == 2, "expected two stack overflows" CTX, CTXA(r));
  long arms = number_after(r, r->err, "gilvm: breaker armed ");
  parsed_report rr;
  cr_assert(report_parse_run(r->err, &rr), "no complete report on stderr" CTX, CTXA(r));
  cr_assert(arms <= 2 * rr.drop_requests + 8,
            "the breaker was armed %ld times for %ld drop requests: re-armed while a request was pending" CTX, arms,
            rr.drop_requests, CTXA(r));
}

/* The legacy GIL's resting count hook fires every 100 instructions; putting
   it back each time (lua_sethook) made a stack overflow take 25 s instead of
   0.2 s. A hook that is already what is wanted is left alone. */
Test(breaker, legacy_resting_hook_is_not_reset_at_every_check) {
  cr_assert(setenv("GILVM_BREAKER_STATS", "1", 1) == 0);
  run_result *r = GV("-q", "-g", "legacy", data("deep.lua"), "1");
  expect_exit(r, 0);
  cr_assert(count_occurrences(r->out, "stack overflow") == 1, "expected a stack overflow" CTX, CTXA(r));
  long sets = number_after(r, r->err, "hooks set ");
  cr_assert(sets <= 100, "the hook was set %ld times: once per check interval on a deep stack" CTX, sets, CTXA(r));
}

/* -------------------------------------------------------------- worker */

TestSuite(worker, .fini = test_cleanup, .timeout = 120);

static const char worker_main_out[] =
    "main   ismain true yieldable false yield false attempt to yield from outside a coroutine inner false true\n"
    "worker ismain true yieldable false yield false attempt to yield from outside a coroutine inner false true\n";

Test(worker, body_is_a_main_thread_for_coroutines_in_gil_mode) {
  run_result *r = GV("-q", "-m", "gil", data("worker_main.lua"));
  expect_exit(r, 0);
  expect_out(r, worker_main_out);
}

Test(worker, body_is_a_main_thread_for_coroutines_in_nogil_mode) {
  run_result *r = GV("-q", "-m", "nogil", data("worker_main.lua"));
  expect_exit(r, 0);
  expect_out(r, worker_main_out);
}

Test(worker, body_is_a_main_thread_for_coroutines_in_fork_mode) {
  run_result *r = GV("-q", "-m", "fork", data("worker_main.lua"));
  expect_exit(r, 0);
  expect_out(r, worker_main_out);
}
