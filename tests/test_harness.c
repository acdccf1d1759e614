/*
 * test_harness.c — the harness itself (run_helper.c), on /bin/sh: what every
 * end-to-end suite relies on when it says a child was killed at its limit,
 * reaped, given an environment, or left a sanitizer report.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "run_helper.h"

TestSuite(harness, .fini = test_cleanup, .timeout = 60.);

static run_result *sh(const run_opts *o, const char *code) {
  const char *argv[] = { "/bin/sh", "-c", code, NULL };
  return run_tracked(o, argv);
}

Test(harness, a_hung_child_is_killed_at_its_limit_and_reaped) {
  run_result *r = sh(&(run_opts){ .limit_s = 0.5, .stdin_keep_open = 1 }, "exec cat");
  cr_assert(r->timed_out && r->term_signal == SIGKILL, "cat was not killed at the limit" CTX, CTXA(r));
  expect_reaped(r);
}

Test(harness, env_sets_and_replaces_variables_in_the_child_only) {
  cr_assert(setenv("HARNESS_B", "old", 1) == 0);
  const char *env[] = { "HARNESS_A=1", "HARNESS_B=new", NULL };
  run_result *r = sh(&(run_opts){ .env = env }, "echo \"$HARNESS_A $HARNESS_B\"; env | grep -c '^HARNESS_B='");
  expect_clean(r);
  expect_out(r, "1 new\n1\n");
  cr_assert_str_eq(getenv("HARNESS_B"), "old", "the test's own environment changed");
}

Test(harness, a_sanitizer_report_on_stderr_is_found) {
  run_result *r = sh(NULL, "echo '==1==ERROR: AddressSanitizer: heap-use-after-free' >&2");
  expect_reaped(r);
  cr_assert(run_sanitizer_report(r->err) != NULL, "the report was not seen" CTX, CTXA(r));
  r = sh(NULL, "echo 'no report here' >&2");
  cr_assert(run_sanitizer_report(r->err) == NULL, "a report was seen in plain text" CTX, CTXA(r));
}

Test(harness, signal_when_file_waits_for_the_file) {
  const char *flag = tmp_path("flag");
  run_opts o = { .signal = SIGTERM, .signal_when_file = flag };
  run_result *r = sh(&o,
                     fmt("trap 'echo got; exit 3' TERM; echo started; : > '%s'; "
                         "while :; do sleep 0.05; done",
                         flag));
  expect_clean(r);
  cr_assert_eq(r->signals_sent, 1, "no signal sent" CTX, CTXA(r));
  expect_exit(r, 3);
  expect_out(r, "started\ngot\n");
}
