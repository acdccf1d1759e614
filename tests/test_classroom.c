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
#include <unistd.h>

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

typedef struct instr {
  int pc, line;
  char op[16], to[24]; /* to: a jump's "to N" / "exit to N" note, if any */
} instr;

/* Instructions in listing order from `luac5.4 -l` (luac) or `gilvm dis` output. */
static int instructions(const char *out, int luac, instr *v, int max) {
  int n = 0;
  for (const char *p = out; p && *p && n < max; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    instr x = { 0 };
    int ok = luac ? sscanf(p, "\t%d\t[%d]\t%15s", &x.pc, &x.line, x.op) == 3
                  : strlen(p) > 5 && sscanf(p + 5, "%d [%d] %15s", &x.pc, &x.line, x.op) == 3 && p[0] == ' ';
    if (!ok) continue;
    const char *eol = strchr(p, '\n'), *to = strstr(p, "; ");
    if (to && (!eol || to < eol)) {
      to += 2;
      const char *t = strstr(to, "to ");
      if (t && (!eol || t < eol)) snprintf(x.to, sizeof x.to, "to %d", atoi(t + 3));
    }
    v[n++] = x;
  }
  return n;
}

/* The decoder against Lua's own lister: the same instructions, lines and jump targets. */
Test(dis, decodes_what_luac_lists) {
  if (access("/usr/bin/luac5.4", X_OK) != 0) cr_skip_test("no luac5.4");
  const char *files[] = { script("race.lua"), data_in("classroom", "where_switch.lua"), script("convoy.lua") };
  for (int f = 0; f < 3; f++) {
    run_result *l = run_checked(NULL, (const char *const[]){ "/usr/bin/luac5.4", "-l", "-p", files[f], NULL });
    expect_exit(l, 0);
    run_result *d = GV("dis", files[f]);
    expect_exit(d, 0);
    static instr a[4096], b[4096];
    int na = instructions(l->out, 1, a, 4096), nb = instructions(d->out, 0, b, 4096);
    cr_assert_gt(na, 20, "%s: luac listed %d instructions", files[f], na);
    cr_assert_eq(na, nb, "%s: luac lists %d instructions, dis %d", files[f], na, nb);
    for (int i = 0; i < na; i++) {
      cr_expect(a[i].pc == b[i].pc && a[i].line == b[i].line && strcmp(a[i].op, b[i].op) == 0 &&
                    strcmp(a[i].to, b[i].to) == 0,
                "%s: instruction %d: luac %d [%d] %s %s, dis %d [%d] %s %s", files[f], i, a[i].pc, a[i].line, a[i].op,
                a[i].to, b[i].pc, b[i].line, b[i].op, b[i].to);
    }
  }
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

/* scripts/lost_update.lua, the guide's dis experiment: the same marks, and
   the run that goes with them (plain loses nothing under -g cpython: no
   check point between its read and its write, however often switches come). */
Test(dis, lost_update_script_marks_and_runs) {
  run_result *d = GV("dis", script("lost_update.lua"));
  expect_exit(d, 0);
  cr_expect_eq(always_between(d->out, "function 'plain'"), 0, "plain:\n%s", d->out);
  cr_expect_gt(always_between(d->out, "function 'with_call'"), 0, "with_call:\n%s", d->out);
  run_result *r = GV("-q", "-s", "50us", script("lost_update.lua"), "4", "20000");
  expect_exit(r, 0);
  expect_out_has(r, "plain      expected 80000, got 80000: lost 0\n");
  expect_out_has(r, "with_call  expected 80000, got ");
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
  for (int line = 17; line <= 21; line++) /* the loops' bodies: no check point on these lines */
    if (line != 19 && line != 20) cr_expect(mark[line] && mark[line] != '>', "line %d is marked:\n%s", line, d->out);
  cr_expect_eq(mark[15], '>', "repeat's first line is a jump target:\n%s", d->out);
  cr_expect_eq(mark[16], '>', "the for loop's body is FORLOOP's target:\n%s", d->out);
  cr_expect_eq(mark[20], '>', "the line after the for loop is FORLOOP's exit:\n%s", d->out);
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

/* ---- figures a learner reads right ---- */

static json_t *run_json(const char *name, run_result **out, const char *const *args) {
  const char *path = tmp_path(name);
  const char *argv[16] = { "--json", path };
  int n = 2;
  for (; args[n - 2] && n < 15; n++) argv[n] = args[n - 2];
  argv[n] = NULL;
  run_result *r = gv_run(NULL, argv);
  expect_exit(r, 0);
  if (out) *out = r;
  return json_file(path);
}

/* Three 0.2 s sleeps at once: their lives add up to at least 0.6 s, and the
   report's overlap is that sum over wall time, in the text and in --json. */
Test(figures, overlap_counts_the_workers_lives) {
  run_result *r;
  json_t *j = run_json("io.json", &r, (const char *const[]){ script("io_bound.lua"), "3", "0.2", NULL });
  double inflight = run_json_number(j, "in_flight_s"), wall = run_json_number(j, "wall_s");
  double overlap = run_json_number(j, "overlap");
  cr_expect_geq(inflight, 0.6, "each life holds its 0.2 s sleep" CTX, CTXA(r));
  cr_expect(overlap > 0 && overlap - inflight / wall < 1e-3 && inflight / wall - overlap < 1e-3,
            "overlap %.4f, in flight %.6f, wall %.6f", overlap, inflight, wall);
  double printed;
  cr_assert(report_number_after(r->err, "overlap ", &printed), "no overlap in the report" CTX, CTXA(r));
  cr_expect(printed - overlap < 0.006 && overlap - printed < 0.006, "printed %.2f, json %.4f", printed, overlap);
  size_t i;
  json_t *t;
  double sum = 0;
  json_array_foreach(json_object_get(j, "threads"), i, t) sum += run_json_number(t, "in_flight_s");
  cr_expect(sum - inflight < 1e-6 && inflight - sum < 1e-6, "the threads' lives add up: %f vs %f", sum, inflight);
}

/* Workers joined one by one never overlap: the sum of their lives is at most the wall time. */
Test(figures, overlap_of_sequential_workers_is_at_most_one) {
  json_t *j = run_json("seq.json", NULL, (const char *const[]){ data_in("classroom", "sequential.lua"), NULL });
  cr_expect_leq(run_json_number(j, "overlap"), 1.0);
  cr_expect_geq(run_json_number(j, "in_flight_s"), 0.06);
}

/* Workers whose records were freed after join still count: their lives are in the sums. */
Test(figures, overlap_counts_released_workers) {
  json_t *j = run_json("many.json", NULL, (const char *const[]){ data_in("classroom", "many.lua"), NULL });
  json_t *rel = json_object_get(j, "released");
  cr_assert_gt(run_json_number(rel, "workers"), 0, "no worker was released");
  cr_expect_geq(run_json_number(rel, "in_flight_s"), 0.01 * run_json_number(rel, "workers"));
  cr_expect_geq(run_json_number(j, "in_flight_s"), 0.6, "60 lives of at least 10 ms");
}

/* Two CPU-bound free threads pinned to one CPU: each waits for the CPU about
   as long as the other runs, far above the warning's 10%. */
Test(figures, run_queue_wait_is_measured_and_warned_about) {
  if (access("/usr/bin/taskset", X_OK) != 0) cr_skip_test("no taskset");
  const char *path = tmp_path("pinned.json");
  const char *argv[] = { "/usr/bin/taskset",      "-c", "0",        gilvm_path(), "--json", path, "-m", "nogil",
                         script("cpu_bound.lua"), "2",  "20000000", NULL };
  run_result *r = run_checked(NULL, argv);
  expect_exit(r, 0);
  expect_err_has(r, "warning: waiting for a CPU stretched these figures");
  expect_err_has(r, "cause: the run's 3 threads that can run at once outnumber the 1 CPU it may use");
  expect_err_has(r, "no CPU");
  json_t *j = json_file(path);
  cr_expect(json_is_true(json_object_get(j, "disturbed")), "disturbed is not true");
  cr_expect_eq(run_json_number(j, "cpus"), 1, "taskset -c 0 leaves one CPU");
  size_t i;
  json_t *t;
  int disturbed = 0;
  json_array_foreach(json_object_get(j, "threads"), i, t) {
    cr_expect(json_is_number(json_object_get(t, "runq_wait_s")), "thread %zu: no run-queue wait", i);
    disturbed += json_is_true(json_object_get(t, "disturbed"));
  }
  cr_expect_geq(disturbed, 1);
  /* the timeline's totals show it too */
  run_result *tl = run_checked(NULL,
                               (const char *const[]){ "/usr/bin/taskset", "-c", "0", gilvm_path(), "--timeline", "-m",
                                                      "nogil", script("cpu_bound.lua"), "2", "2000000", NULL });
  expect_exit(tl, 0);
  cr_expect(strstr(tl->err, "state totals") && strstr(strstr(tl->err, "state totals"), "no CPU"),
            "no 'no CPU' column in the timeline's totals" CTX, CTXA(tl));
}

/* A figure name longer than the column: every value still starts in one column. */
Test(figures, long_figure_names_keep_the_table_aligned) {
  run_result *r = GV(data_in("classroom", "long_figures.lua"));
  expect_exit(r, 0);
  const char *sec = strstr(r->err, "\n  script figures\n");
  cr_assert(sec, CTX, CTXA(r));
  const char *names[] = { "short", "a_figure_name_much_longer_than_the_column", "mid_sized_name" };
  const char *values[] = { "1", "22", "three" };
  int col = -1;
  for (int k = 0; k < 3; k++) {
    const char *line = strstr(sec, fmt("\n  %s ", names[k]));
    cr_assert(line, "no row %s" CTX, names[k], CTXA(r));
    const char *v = strstr(line + 3 + strlen(names[k]), values[k]);
    cr_assert(v);
    int c = (int)(v - line);
    if (col < 0) col = c;
    cr_expect_eq(c, col, "row %s's value at column %d, not %d" CTX, names[k], c, col, CTXA(r));
  }
  run_result *c = GV("compare", data_in("classroom", "long_figures.lua"));
  expect_exit(c, 0);
  expect_err_has(c, "a_figure_name_much_longer_than_the_column ");
  const char *head = strstr(c->err, "  script figure ");
  const char *row = strstr(c->err, "  a_figure_name_much_longer_than_the_column ");
  cr_assert(head && row, CTX, CTXA(c));
  /* the fork column's right edge: the header's "fork" and the row's last value end together */
  int head_end = (int)(strchr(head, '\n') - head), row_end = (int)(strchr(row, '\n') - row);
  cr_expect_eq(head_end, row_end, "header and row differ in width" CTX, CTXA(c));
}

Test(figures, colour_only_when_asked_or_on_a_terminal) {
  const char *lua = script("convoy.lua");
  run_result *always = GV("--color=always", "--timeline", lua);
  expect_exit(always, 0);
  cr_expect(strstr(always->err, "\033[42;30m#"), "no coloured chart" CTX, CTXA(always));
  cr_expect(strstr(always->err, "parallelism \033[1m"), "no coloured figure" CTX, CTXA(always));
  run_result *piped = GV("--timeline", lua); /* stderr is a pipe here: auto means none */
  cr_expect(!strchr(piped->err, '\033'), "colour on a pipe" CTX, CTXA(piped));
  run_result *never = GV("--color=never", "--timeline", lua);
  cr_expect(!strchr(never->err, '\033'), CTX, CTXA(never));
  run_opts o = { .env = (const char *const[]){ "NO_COLOR=1", NULL } };
  run_result *nc = GVO(&o, "--color=auto", "--timeline", lua);
  cr_expect(!strchr(nc->err, '\033'), CTX, CTXA(nc));
  run_result *forced = GVO(&o, "--color=always", lua); /* the command line wins over NO_COLOR */
  cr_expect(strchr(forced->err, '\033'), CTX, CTXA(forced));
  expect_usage_error(GV("--color=sometimes", lua), "bad --color 'sometimes'");
}

/* On a terminal (script(1) gives gilvm a pseudo-terminal), auto means colour, unless NO_COLOR. */
Test(figures, colour_on_a_terminal_unless_no_color) {
  if (access("/usr/bin/script", X_OK) != 0) cr_skip_test("no script(1)");
  const char *cmd = fmt("%s -q --timeline %s 2 0.05", gilvm_path(), script("io_bound.lua"));
  run_result *tty = run_checked(NULL, (const char *const[]){ "/usr/bin/script", "-qec", cmd, "/dev/null", NULL });
  expect_exit(tty, 0);
  cr_expect(strchr(tty->out, '\033'), "no colour on a terminal" CTX, CTXA(tty));
  run_opts o = { .env = (const char *const[]){ "NO_COLOR=1", NULL } };
  run_result *nc = run_checked(&o, (const char *const[]){ "/usr/bin/script", "-qec", cmd, "/dev/null", NULL });
  expect_exit(nc, 0);
  cr_expect(!strchr(nc->out, '\033'), "colour despite NO_COLOR" CTX, CTXA(nc));
}

/* ---- gilvm compare: why the outputs differ ---- */

static run_result *compare(const char *fixture) {
  run_result *r = GV("compare", fixture);
  expect_exit(r, 0);
  return r;
}

Test(figures, compare_says_another_order_is_scheduling) {
  run_result *r = compare(data_in("classroom", "order.lua"));
  expect_err_has(r, "the same lines in another order");
  expect_err_has(r, "why: scheduling");
  expect_err_has(r, "\"worker gamma done\"");
  expect_err_lacks(r, "copies");
}

/* A mode whose run failed differs because it failed: not scheduling, not copies. */
Test(figures, compare_says_a_failed_run_failed) {
  run_result *r = GV("compare", data_in("classroom", "fails_in_fork.lua"));
  expect_exit(r, 1);
  expect_err_has(r, "output differs in fork mode: its run exited with status 1 (gil: 0); its error is above");
  expect_err_has(r, "boom");
  expect_err_lacks(r, "timing or a race");
  expect_err_lacks(r, "copies");
}

/* The table's lines from the header to the blank line after the rows, colour codes taken out. */
static char *plain_table(const char *err) {
  const char *head = strstr(err, "\n  mode ");
  cr_assert(head, "no table in\n%s", err);
  const char *end = strstr(head + 1, "\n\n");
  char *t = track(strndup(head + 1, end ? (size_t)(end - head - 1) : strlen(head + 1)));
  char *w = t;
  for (const char *p = t; *p;) {
    if (*p == '\033') {
      p += strcspn(p, "m") + (p[strcspn(p, "m")] != '\0');
      continue;
    }
    *w++ = *p++;
  }
  *w = '\0';
  return t;
}

/* compare's table in colour: the best speed-up green, a failed run red; the
   columns stay aligned; no colour into a pipe, nor with NO_COLOR. */
Test(figures, compare_table_in_colour_when_asked) {
  run_result *r = GV("compare", "--color=always", "--sim", "2", "--sim-cost", "spawn=0", "--sim-cost", "interp=0",
                     "--sim-cost", "copy=0", script("cpu_bound.lua"), "2", "200000");
  expect_exit(r, 0);
  /* on 2 simulated cores free threads (nogil) run about twice as fast as the GIL's (start-up left out):
     nogil's row has the green speed-up, the best */
  const char *nogil = strstr(r->err, "\n  nogil ");
  const char *green = nogil ? strstr(nogil, "\033[1;32m   ") : NULL;
  cr_expect(green && green < strchr(nogil + 1, '\n') && strncmp(green + 7, "   2.0", 6) == 0,
            "nogil's speed-up (about 2.0x) is not the green one" CTX, CTXA(r));
  char *t = plain_table(r->err);
  size_t width = strcspn(t, "\n");
  for (char *line = strchr(t, '\n'); line && line[1]; line = strchr(line + 1, '\n'))
    if (!strstr(line, "(not run"))
      cr_expect_eq(strcspn(line + 1, "\n"), width, "a coloured row is not as wide as the header:\n%s", t);
  run_result *f = GV("compare", "--color=always", data_in("classroom", "fails_in_fork.lua"));
  expect_exit(f, 1);
  expect_err_has(f, "\033[1;31mfork  \033[0m");
  expect_err_has(f, "\033[1;31m    1\033[0m");
  expect_err_has(f, "\033[1;32m"); /* gil or nogil: whichever was faster */
  run_result *piped = GV("compare", data_in("classroom", "fails_in_fork.lua")); /* stderr is a pipe: auto, none */
  expect_exit(piped, 1);
  cr_expect(!strchr(piped->err, '\033'), "colour on a pipe" CTX, CTXA(piped));
  run_opts o = { .env = (const char *const[]){ "NO_COLOR=1", NULL } };
  run_result *nc = GVO(&o, "compare", "--color=auto", "--sim", "2", script("cpu_bound.lua"), "2", "200000");
  expect_exit(nc, 0);
  cr_expect(!strchr(nc->err, '\033'), "colour despite NO_COLOR" CTX, CTXA(nc));
}

/* On a terminal, compare colours its table as the report does, unless NO_COLOR. */
Test(figures, compare_table_in_colour_on_a_terminal) {
  if (access("/usr/bin/script", X_OK) != 0) cr_skip_test("no script(1)");
  const char *cmd = fmt("%s compare --sim 2 %s 2 200000", gilvm_path(), script("cpu_bound.lua"));
  run_result *tty = run_checked(NULL, (const char *const[]){ "/usr/bin/script", "-qec", cmd, "/dev/null", NULL });
  expect_exit(tty, 0);
  cr_expect(strstr(tty->out, "\033[1;32m"), "no colour on a terminal" CTX, CTXA(tty));
  run_opts o = { .env = (const char *const[]){ "NO_COLOR=1", NULL } };
  run_result *nc = run_checked(&o, (const char *const[]){ "/usr/bin/script", "-qec", cmd, "/dev/null", NULL });
  expect_exit(nc, 0);
  cr_expect(!strchr(nc->out, '\033'), "colour despite NO_COLOR" CTX, CTXA(nc));
}

/* compare --sim runs all three modes, fork's processes simulated too. */
Test(figures, compare_sim_runs_every_mode) {
  run_result *r = GV("compare", "--sim", "4", script("cpu_bound.lua"), "4", "40000");
  expect_exit(r, 0);
  expect_err_has(r, "running in fork mode");
  expect_err_has(r, "output: identical in all three modes");
  expect_err_lacks(r, "not simulated");
}

Test(figures, compare_says_timings) {
  run_result *r = compare(data_in("classroom", "timings.lua"));
  expect_err_has(r, "numbers that look like timings");
  expect_err_has(r, "\"took 0.0457 s\"");
  expect_err_has(r, "\"took 0.0123 s\"");
  expect_err_lacks(r, "copies:");
}

Test(figures, compare_blames_copies_only_when_something_was_copied) {
  run_result *v = compare(data_in("classroom", "values.lua"));
  expect_err_has(v, "not copies (nothing was copied)");
  expect_err_has(v, "\"total 4000\""); /* the whole line, not from the first differing character */
  expect_err_has(v, "\"total 5000\"");
  expect_err_lacks(v, "workers got copies");
  run_result *p = compare(data_in("classroom", "processes.lua"));
  expect_err_has(p, "the gil run's workers were no threads either");
  expect_err_lacks(p, "workers got copies");
  run_result *race = GV("compare", script("race.lua"), "2", "1000");
  expect_exit(race, 0);
  expect_err_has(race, "why: workers got copies");
}
