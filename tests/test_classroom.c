/*
 * test_classroom.c — what a learner reads: `gilvm dis` (checked against
 * where the runtime really switches), and the report's figures for
 * teaching: overlap, run-queue wait, compare's explanations, alignment,
 * colour. End to end through the binary (tests/run_helper.c).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_helper.h"

TestSuite(dis, .fini = test_cleanup);
TestSuite(figures, .fini = test_cleanup);

/* ---- gilvm dis ---- */

#define MAXLINE 4096

/* From dis output: for each source line, the strongest mark on an instruction of it (0, '~', '>'). */
static void marks_by_line(const char *out, const char *function, char *mark) {
  memset(mark, 0, MAXLINE);
  const char *p = strstr(out, function);
  cr_assert(p, "no %s in dis output:\n%s", function, out);
  p = strchr(p, '\n');
  while (p && p[1] && p[1] != '\n') { /* the function's block ends at an empty line */
    p++;
    int pc, line;
    char m[3] = { p[2], p[3], 0 };
    if (sscanf(p + 4, "%d [%d]", &pc, &line) == 2 && line > 0 && line < MAXLINE) {
      char v = m[0] == '>' ? '>' : m[1] == '~' ? '~' : 0;
      if (v == '>' || (v == '~' && mark[line] != '>'))
        mark[line] = v;
      else if (!mark[line])
        mark[line] = '.'; /* an instruction, no mark */
    }
    p = strchr(p, '\n');
  }
}

typedef struct sample {
  int line, times;
} sample;

/* where_switch.lua's output: "stopped at line N: T times". */
static int samples(const char *out, sample *s, int max) {
  int n = 0;
  for (const char *p = strstr(out, "stopped at line "); p && n < max; p = strstr(p + 1, "stopped at line ")) {
    if (sscanf(p, "stopped at line %d: %d times", &s[n].line, &s[n].times) == 2) n++;
  }
  return n;
}

Test(dis, lists_functions_lines_and_marks) {
  run_result *r = GV("dis", script("race.lua"));
  expect_exit(r, 0);
  expect_no_report(r);
  expect_out_has(r, "main chunk <");
  expect_out_has(r, "function 'plain' <");
  expect_out_has(r, "function 'with_call' <");
  expect_out_has(r, "-- line 31: for _ = 1, per do counter = counter + 1 end");
  expect_out_has(r, "GETTABUP   4 1 0       ; \"counter\"");
  expect_out_has(r, "FORLOOP");
  cr_expect(count_occurrences(r->out, ">>") > 10, "few marks" CTX, CTXA(r));
}

/* The race lesson, as dis shows it: plain's read and write of counter have no
   check point between them; with_call's have one (after the call). */
static int always_between(const char *out, const char *function) {
  const char *p = strstr(out, function);
  cr_assert(p);
  const char *read = strstr(p, "GETTABUP"), *write = strstr(p, "SETTABUP");
  cr_assert(read && write && read < write, "%s: no read and write of counter:\n%s", function, out);
  int n = 0;
  for (const char *q = strchr(read, '\n'); q && q < write; q = strchr(q + 1, '\n'))
    if (q[1] == ' ' && q[2] == ' ' && q[3] == '>' && q[4] == '>') n++;
  return n;
}

Test(dis, race_lesson_check_points_between_read_and_write) {
  run_result *r = GV("dis", script("race.lua"));
  expect_exit(r, 0);
  cr_expect_eq(always_between(r->out, "function 'plain'"), 0, "plain:\n%s", r->out);
  cr_expect_gt(always_between(r->out, "function 'with_call'"), 0, "with_call:\n%s", r->out);
}

Test(dis, legacy_says_anywhere) {
  run_result *r = GV("dis", "-g", "legacy", script("race.lua"));
  expect_exit(r, 0);
  expect_out_has(r, "can come before ANY instruction");
  run_result *c = GV("dis", script("race.lua"));
  cr_expect(!strstr(c->out, "ANY instruction"), "cpython is not 'anywhere'" CTX, CTXA(c));
}

Test(dis, bad_input) {
  expect_usage_error(GV("dis"), "no script given");
  expect_usage_error(GV("dis", "-e", "x = 1"), "dis needs a script file");
  expect_exit(GV("dis", data_in("classroom", "missing.lua")), 3);
  const char *bad = tmp_path("bad.lua");
  FILE *f = fopen(bad, "w");
  cr_assert(f);
  fputs("x = = 1\n", f);
  fclose(f);
  run_result *r = GV("dis", bad);
  expect_exit(r, 3);
  expect_err_has(r, "unexpected symbol");
}

/* The marks checked against the runtime: under -g cpython with a short
   interval, every place the subject was stopped at lies on a line with a
   check point (">>": its loop takes no slow path). Under -g legacy the same
   method finds it stopped on lines with none: the check can fail. */
Test(dis, marks_agree_with_where_the_runtime_switches) {
  const char *lua = data_in("classroom", "where_switch.lua");
  run_result *d = GV("dis", lua);
  expect_exit(d, 0);
  char mark[MAXLINE];
  marks_by_line(d->out, "function 'subject'", mark);
  for (int line = 16; line <= 18; line++) /* the loop's body: no check point on these lines */
    cr_expect(mark[line] && mark[line] != '>', "line %d is marked:\n%s", line, d->out);
  cr_expect_eq(mark[15], '>', "the loop's first line is a jump target:\n%s", d->out);
  if (strstr(d->out, "polls for requests")) return; /* a TSan build: anywhere, as it says */

  run_result *r = GV("-q", "-s", "0.1ms", lua, "200");
  expect_exit(r, 0);
  sample s[64];
  int n = samples(r->out, s, 64), total = 0;
  cr_assert_gt(n, 0, "no samples" CTX, CTXA(r));
  for (int i = 0; i < n; i++) {
    total += s[i].times;
    cr_expect(s[i].line > 0 && s[i].line < MAXLINE && mark[s[i].line] == '>',
              "stopped at line %d (%d times), which dis does not mark\n%s" CTX, s[i].line, s[i].times, d->out, CTXA(r));
  }
  cr_expect_eq(total, 200, CTX, CTXA(r));

  run_result *l = GV("-q", "-g", "legacy", lua, "200");
  expect_exit(l, 0);
  n = samples(l->out, s, 64);
  int unmarked = 0;
  for (int i = 0; i < n; i++) unmarked += mark[s[i].line] != '>';
  cr_expect_gt(unmarked, 0, "legacy never stopped off a check point" CTX, CTXA(l));
}
