/*
 * test_outputs.c — end-to-end tests of what gilvm leaves behind: its output
 * files (--json, --trace, --svg) and stdout, and what `gilvm compare` and
 * `gilvm sweep` do with their child when they are stopped.
 *
 * Same rules as test_e2e.c: every run has a hard limit, nothing is timed
 * except with wide margins, and every signal is sent only once the child
 * has reached a known point (a line on stdout, or a file it wrote). A child
 * gilvm of compare or sweep is found by its pid, which the script writes to
 * a file; the test then waits, polling with a generous deadline, until that
 * pid is gone.
 *
 * Each test makes a fresh directory and points TMPDIR at another fresh one,
 * so "no temporary file left" is checked by listing directories that were
 * empty.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "run_helper.h"

/* ------------------------------------------------------------ plumbing */

#define GONE_S 30.0 /* how long a stopped child may take to disappear */

static const char *dir, *tmpdir;

static void init(void) {
  dir = new_tmpdir();
  tmpdir = new_tmpdir();
  setenv("TMPDIR", tmpdir, 1); /* each test runs in a process of its own */
}

TestSuite(stopping, .init = init, .fini = test_cleanup);
TestSuite(outputs, .init = init, .fini = test_cleanup);
TestSuite(json, .init = init, .fini = test_cleanup);

static const char *data(const char *name) { return data_in("e2e", name); }
static const char *in_dir(const char *name) { return fmt("%s/%s", dir, name); }

/* gilvm under `sh -c SHELL_CODE sh gilvm args...`: the shell code sets up what
   run_helper cannot (limits, redirections) and ends with exec "$@". */
static run_result *gv_sh(const char *shell_code, const char *const *args) {
  const char *argv[48];
  int n = 0;
  argv[n++] = "/bin/sh";
  argv[n++] = "-c";
  argv[n++] = shell_code;
  argv[n++] = "sh";
  argv[n++] = gilvm_path();
  for (int i = 0; args[i] && n < 47; i++) argv[n++] = args[i];
  argv[n] = NULL;
  return run_checked(NULL, argv);
}
#define GVSH(code, ...) gv_sh((code), (const char *const[]){ __VA_ARGS__, NULL })

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert(f, "cannot write %s: %s", path, strerror(errno));
  fputs(text, f);
  cr_assert(fclose(f) == 0);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The names in d other than . and .., sorted, as "a b c" ("" if none). */
static const char *listing(const char *d) {
  DIR *h = opendir(d);
  cr_assert(h, "cannot list %s: %s", d, strerror(errno));
  char *names[64];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(h)) != NULL && n < 64)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names[n++] = track(strdup(e->d_name));
  closedir(h);
  qsort(names, (size_t)n, sizeof names[0], by_name);
  char *s = track(calloc(1, 4096));
  for (int i = 0; i < n; i++) {
    size_t len = strlen(s);
    snprintf(s + len, 4096 - len, "%s%s", i ? " " : "", names[i]);
  }
  return s;
}

static void expect_listing(const char *d, const char *expected) {
  const char *got = listing(d);
  cr_assert(strcmp(got, expected) == 0, "%s should hold \"%s\", holds \"%s\"", d, expected, got);
}

/* The pid the script (pid_wait.lua) wrote to path. */
static pid_t pid_in(const char *path) {
  long pid = strtol(slurp(path, NULL), NULL, 10);
  cr_assert(pid > 1, "no pid in %s", path);
  return (pid_t)pid;
}

/* ======================================== compare and sweep when stopped */

/* Run `gilvm ARGS... pid_wait.lua PIDFILE [stubborn]`, signal it once the
   script wrote its pid, and check the child is gone and no temporary is left. */
static run_result *stop_case(const char *command, int sig, int nsignals, const char *stubborn, const char *json) {
  const char *pidfile = in_dir("pid");
  const char *sweep[] = { "sweep", "-s", "1ms,2ms" }, *compare[] = { "compare" };
  int is_sweep = strcmp(command, "sweep") == 0;
  const char *argv[16];
  int n = 0;
  argv[n++] = gilvm_path();
  for (int i = 0; i < (is_sweep ? 3 : 1); i++) argv[n++] = is_sweep ? sweep[i] : compare[i];
  const char *rest[] = { "--json", json, data("pid_wait.lua"), pidfile, stubborn, NULL };
  for (int i = 0; rest[i]; i++) argv[n++] = rest[i];
  argv[n] = NULL;
  run_opts o = {
    .signal = sig, .nsignals = nsignals, .signal_when_file = pidfile, .signal_every_s = 0.3, .limit_s = RUN_LIMIT_S
  };
  run_result *r = run_tracked(&o, argv); /* not checked yet: the child goes first */
  pid_t child = exists(pidfile) ? pid_in(pidfile) : 0;
  int gone = !child || run_wait_gone(child, GONE_S); /* killed if not, so a failed test leaves nothing running */
  expect_clean(r);
  cr_assert_eq(r->signals_sent, nsignals, "the signal was not sent" CTX, CTXA(r));
  cr_assert(child, "the script wrote no pid" CTX, CTXA(r));
  cr_assert(gone, "%s's child gilvm (pid %d) still ran %.0f s after it ended" CTX, command, (int)child, GONE_S,
            CTXA(r));
  expect_listing(tmpdir, "");
  return r;
}

Test(stopping, compare_sigint_stops_its_child_and_exits_130) {
  const char *json = in_dir("c.json");
  run_result *r = stop_case("compare", SIGINT, 1, NULL, json);
  expect_exit(r, 130);
  expect_err_has(r, "(not run: interrupted)");
  expect_err_has(r, "gilvm: stopped: interrupted\n");
  const char *stopped = json_string_value(json_object_get(json_file(json), "stopped"));
  cr_expect(stopped && strcmp(stopped, "interrupted") == 0, "the JSON should say it was stopped:\n%s",
            slurp(json, NULL));
}

Test(stopping, compare_sigterm_stops_its_child_and_exits_143) {
  run_result *r = stop_case("compare", SIGTERM, 1, NULL, in_dir("c.json"));
  expect_exit(r, 143);
  expect_err_has(r, "gilvm: stopped: terminated\n");
}

/* SIGKILL gives compare and sweep no chance to stop their child: the child
   must notice by itself (stop_case fails if it is still running afterwards). */
Test(stopping, compare_killed_outright_leaves_no_child) {
  run_result *r = stop_case("compare", SIGKILL, 1, NULL, in_dir("c.json"));
  cr_expect_eq(r->term_signal, SIGKILL, "compare was not killed" CTX, CTXA(r));
}

Test(stopping, sweep_killed_outright_leaves_no_child) {
  run_result *r = stop_case("sweep", SIGKILL, 1, NULL, in_dir("s.json"));
  cr_expect_eq(r->term_signal, SIGKILL, "sweep was not killed" CTX, CTXA(r));
}

Test(stopping, compare_second_sigint_kills_a_stubborn_child_at_once) {
  /* the child swallows the stop error: only the second Ctrl-C ends it before its grace */
  run_result *r = stop_case("compare", SIGINT, 2, "stubborn", in_dir("c.json"));
  expect_exit(r, 130);
  expect_err_has(r, "gilvm: interrupted twice");
}

Test(stopping, sweep_sigint_stops_its_child_and_exits_130) {
  run_result *r = stop_case("sweep", SIGINT, 1, NULL, in_dir("s.json"));
  expect_exit(r, 130);
  expect_err_has(r, "(stopped: 1 of 2 runs not run)");
  expect_err_has(r, "gilvm: stopped: interrupted\n");
}

Test(stopping, sweep_sigterm_stops_its_child_and_exits_143) {
  run_result *r = stop_case("sweep", SIGTERM, 1, NULL, in_dir("s.json"));
  expect_exit(r, 143);
  expect_err_has(r, "gilvm: stopped: terminated\n");
}

Test(stopping, timeout_applies_to_each_run_of_compare_and_sweep_and_exits_124) {
  const char *pidfile = in_dir("pid");
  run_result *r = GV("compare", "--timeout", "0.3s", data("pid_wait.lua"), pidfile);
  expect_exit(r, 124);
  cr_expect_eq(count_occurrences(r->err, "gilvm: stopped: timeout"), 3, "each mode's run times out" CTX, CTXA(r));
  r = GV("sweep", "-s", "1ms,2ms", "--timeout", "0.3s", data("pid_wait.lua"), pidfile);
  expect_exit(r, 124);
  cr_expect_eq(count_occurrences(r->err, "gilvm: stopped: timeout"), 2, "each interval's run times out" CTX, CTXA(r));
  expect_listing(tmpdir, "");
}

/* ============================================================ output files */

/* A path that cannot be written is refused before the script runs. */
static void refused(const char *command, const char *opt, const char *path) {
  const char *side = in_dir("ran");
  run_result *r = strcmp(command, "run") == 0 ? GV(opt, path, data("touch.lua"), side)
      : strcmp(command, "sweep") == 0         ? GV("sweep", "-s", "1ms", opt, path, data("touch.lua"), side)
                                              : GV(command, opt, path, data("touch.lua"), side);
  expect_exit(r, 2);
  expect_err_has(r, fmt("gilvm: cannot write %s file '%s': ", opt, path));
  cr_expect(!exists(side), "the script ran although %s %s cannot be written" CTX, opt, path, CTXA(r));
  cr_expect_str_empty(r->out, "nothing should have run");
}

Test(outputs, unwritable_paths_are_refused_before_the_script_runs) {
  refused("run", "--json", "/no/such/dir/x.json");
  refused("run", "--trace", "/proc/x.json");
  refused("run", "--svg", "/no/such/dir/x.svg");
  refused("run", "--json", dir); /* a directory */
  refused("compare", "--json", "/no/such/dir/x.json");
  refused("sweep", "--json", "/proc/x.json");
  refused("sweep", "--svg", "/no/such/dir/x.svg");
  expect_listing(dir, ""); /* the trial leaves nothing behind */
}

Test(outputs, a_failed_write_is_an_error) {
  run_result *r = GV("-q", "--json", "/dev/full", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 1);
  expect_err_has(r, "gilvm: cannot write /dev/full: No space left on device");
  r = GV("compare", "--json", "/dev/full", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 1);
  expect_err_has(r, "gilvm: cannot write /dev/full");
}

Test(outputs, devices_are_written_in_place) {
  /* as root a rename over /dev/null would replace the device with a file */
  run_result *r = GV("-q", "--json", "/dev/null", "--trace", "/dev/null", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 0);
  struct stat st;
  cr_assert(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode), "/dev/null is no longer a device");
}

Test(outputs, dev_stdout_is_written_in_place_beside_the_scripts_output) {
  /* /dev/stdout leads to the file stdout is redirected to: renaming a new
     file over it would detach that file from stdout and lose what the
     script printed */
  const char *out = in_dir("out.txt");
  run_result *r = GVSH(fmt("exec \"$@\" > '%s'", out), "-q", "--json", "/dev/stdout", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 0);
  const char *text = slurp(out, NULL);
  cr_expect(strstr(text, "done\n"), "the script's output is lost:\n%s", text);
  cr_expect(strstr(text, "\"wall_s\""), "the report is missing:\n%s", text);
}

/* stdout is one JSON document (no stray output); it is returned (a reference the test owns). */
static json_t *stdout_json(const run_result *r) {
  json_error_t e;
  json_t *o = json_loads(r->out, 0, &e);
  cr_expect(o != NULL, "stdout is not one JSON document: %s" CTX, e.text, CTXA(r));
  return o;
}

/* "-" is stdout, for every option that names an output file; the script's own
   output (main's, a process worker's, a command's it runs) goes to stderr, so
   stdout carries the file alone; no file named "-" appears. */
Test(outputs, dash_is_stdout_and_the_scripts_output_goes_to_stderr) {
  const char *in_dir_run = fmt("cd '%s' && exec \"$@\"", dir);
  run_result *r = GVSH(in_dir_run, "-q", "--json", "-", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 0);
  json_t *o = stdout_json(r);
  cr_expect(o && json_object_get(o, "wall_s"), "no report on stdout" CTX, CTXA(r));
  json_decref(o);
  expect_err_has(r, "done\n");
  expect_listing(dir, "ran"); /* no file named "-" */
  const char *code = "gil.spawn(function() print('worker') os.execute('echo command') end):join() print('main')";
  for (int sim = 0; sim < 2; sim++) {
    r = sim ? GV("-q", "--sim", "2", "-m", "fork", "--json", "-", "-e", code)
            : GV("-q", "-m", "fork", "--json", "-", "-e", code);
    expect_exit(r, 0);
    json_decref(stdout_json(r));
    expect_err_has(r, "worker\n");
    expect_err_has(r, "command\n");
    expect_err_has(r, "main\n");
  }
  r = GV("-q", "--trace", "-", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 0);
  o = stdout_json(r);
  cr_expect(o && json_object_get(o, "traceEvents"), "no trace on stdout" CTX, CTXA(r));
  json_decref(o);
  r = GV("-q", "--svg", "-", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 0);
  cr_expect(strncmp(r->out, "<?xml", 5) == 0 && strstr(r->out, "</svg>\n") && !strstr(r->out, "done"),
            "stdout is not the SVG alone" CTX, CTXA(r));
  r = GVSH(in_dir_run, "compare", "--json", "-", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 0);
  o = stdout_json(r);
  cr_expect(o && json_object_get(o, "modes"), "no compare report on stdout" CTX, CTXA(r));
  json_decref(o);
  expect_err_has(r, "done\n"); /* the gil run's output, echoed */
  r = GVSH(in_dir_run, "sweep", "-q", "-s", "1ms,2ms", "--svg", "-", "--json", in_dir("s.json"), data("touch.lua"),
           in_dir("ran"));
  expect_exit(r, 0);
  cr_expect(strncmp(r->out, "<?xml", 5) == 0 && strstr(r->out, "</svg>\n"), "stdout is not the SVG alone" CTX, CTXA(r));
  expect_err_has(r, "done\n");
  expect_listing(dir, "ran s.json");
}

/* Two files on stdout could not be told apart: a usage error before anything runs.
   A closed stdout is refused as an unwritable file is; a full one fails the write. */
Test(outputs, dash_twice_or_on_a_closed_stdout_is_refused) {
  run_result *r = GV("--json", "-", "--svg", "-", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 2);
  expect_err_has(r, "gilvm: --json - and --svg - both ask for stdout; one output at most can be '-'\n");
  r = GV("sweep", "--json", "-", "--svg", "-", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 2);
  expect_err_has(r, "both ask for stdout");
  r = GVSH("exec \"$@\" >&-", "-q", "--json", "-", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 2);
  expect_err_has(r, "gilvm: cannot write --json to stdout ('-'): Bad file descriptor\n");
  cr_expect(!exists(in_dir("ran")), "the script ran" CTX, CTXA(r));
  r = GVSH("exec \"$@\" > /dev/full", "-q", "--json", "-", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 1);
  expect_err_has(r, "gilvm: cannot write stdout: No space left on device\n");
  expect_err_has(r, "done\n"); /* the script's output went to stderr, not into the full device */
}

Test(outputs, existing_file_keeps_its_mode_and_a_symlink_stays_a_link) {
  const char *real = in_dir("real.json"), *link = in_dir("link.json");
  put(real, "{}\n");
  cr_assert(chmod(real, 0640) == 0 && symlink(real, link) == 0);
  run_result *r = GV("-q", "--json", link, data("touch.lua"), in_dir("ran"));
  expect_exit(r, 0);
  struct stat st;
  cr_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "link.json should still be a symlink");
  cr_assert(stat(real, &st) == 0 && (st.st_mode & 07777) == 0640, "mode %o, expected 640", st.st_mode & 07777);
  cr_expect(strstr(slurp(real, NULL), "\"wall_s\""), "the report went elsewhere:\n%s", slurp(real, NULL));
  expect_listing(dir, "link.json ran real.json");
}

static const char old_json[] = "{\"old\": \"a valid file from an earlier run\"}\n";

Test(outputs, a_write_killed_midway_leaves_the_old_file_whole) {
  /* a file-size limit of 512 bytes: the kernel kills gilvm (SIGXFSZ) in the
     middle of writing a report of 20 threads */
  const char *json = in_dir("out.json");
  put(json, old_json);
  run_result *r = GVSH("ulimit -c 0; ulimit -f 1; exec \"$@\"", "-q", "--json", json, data("threads20.lua"));
  cr_assert(r->term_signal == SIGXFSZ, "gilvm should have been killed writing past the limit" CTX, CTXA(r));
  cr_expect_str_eq(slurp(json, NULL), old_json, "the old file was overwritten by a partial one");
}

Test(outputs, a_write_that_fails_midway_leaves_the_old_file_and_no_temporary) {
  /* the same limit with SIGXFSZ ignored: every write fails with EFBIG */
  static const char *const names[] = { "out.json", "out.trace", "out.svg" };
  const char *p[3];
  for (int i = 0; i < 3; i++) put(p[i] = in_dir(names[i]), old_json);
  const char *limit = "trap '' XFSZ; ulimit -f 1; exec \"$@\"";
  run_result *r = GVSH(limit, "-q", "--json", p[0], "--trace", p[1], "--svg", p[2], data("threads20.lua"));
  expect_exit(r, 1);
  for (int i = 0; i < 3; i++) {
    expect_err_has(r, fmt("gilvm: cannot write %s: File too large", p[i]));
    cr_expect_str_eq(slurp(p[i], NULL), old_json, "%s was overwritten by a partial file", p[i]);
  }
  r = GVSH(limit, "sweep", "-q", "-s", "1ms", "--json", p[0], "--svg", p[2], data("threads20.lua"));
  expect_exit(r, 1);
  expect_err_has(r, fmt("gilvm: cannot write %s: File too large", p[0]));
  r = GVSH(limit, "sweep", "-q", "-s", "1ms", "--svg", p[2], data("threads20.lua"));
  expect_exit(r, 1);
  expect_err_has(r, fmt("gilvm: cannot write %s: File too large", p[2]));
  r = GVSH(limit, "compare", "--json", p[0], data("threads20.lua"));
  expect_exit(r, 1);
  expect_err_has(r, fmt("gilvm: cannot write %s: File too large", p[0]));
  for (int i = 0; i < 3; i++) cr_expect_str_eq(slurp(p[i], NULL), old_json, "%s was overwritten", p[i]);
  expect_listing(dir, "out.json out.svg out.trace");
}

Test(outputs, a_run_killed_before_writing_leaves_the_old_file_and_no_temporary) {
  /* the check before the run must not leave its trial file, nor truncate */
  const char *json = in_dir("out.json"), *svg = in_dir("out.svg");
  put(json, old_json);
  run_opts o = { .signal = SIGKILL, .signal_when = "ready\n", .stdin_keep_open = 1 };
  run_result *r = GVO(&o, "-q", "--json", json, "--svg", svg, data("threads20.lua"), "wait");
  cr_assert(r->term_signal == SIGKILL, CTX, CTXA(r));
  cr_expect_str_eq(slurp(json, NULL), old_json, "the old file was touched");
  expect_listing(dir, "out.json");
}

/* ================================================================== stdout */

/* The message names the OS's error, though the write that failed was long
   before exit (print flushes each line). */
#define NO_SPACE "gilvm: error writing to stdout: No space left on device"

Test(outputs, stdout_write_errors_exit_1_with_a_message) {
  const char *full = "exec \"$@\" > /dev/full";
  run_result *r = GVSH(full, "-q", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 1);
  expect_err_has(r, NO_SPACE);
  /* more than stdio's buffer, in many writes */
  r = GVSH(full, "-q", "-e", "for i = 1, 20000 do io.write(('x'):rep(99), '\\n') end print('end')");
  expect_exit(r, 1);
  expect_err_has(r, NO_SPACE);
  /* a process worker prints; main prints nothing */
  r = GVSH(full, "-q", "-m", "fork", "-e", "gil.spawn(function() print('from the child') end):join()");
  expect_exit(r, 1);
  expect_err_has(r, NO_SPACE);
  r = GVSH(full, "--help");
  expect_exit(r, 1);
  expect_err_has(r, NO_SPACE);
  r = GVSH(full, "compare", data("touch.lua"), in_dir("ran"));
  expect_exit(r, 1);
  expect_err_has(r, NO_SPACE);
  /* a more specific status stays */
  r = GVSH(full, "-q", "-e", "print('x') error('boom')");
  expect_exit(r, 1);
  r = GVSH(full, "-q", "--timeout", "0.2s", "-e", "print('x') while true do end");
  expect_exit(r, 124);
}

/* ==================================================================== JSON */

/* odd_names.lua's name for its worker and its figure, as JSON carries it: every
   byte kept but those that start no UTF-8 sequence, each replaced by U+FFFD. */
static const char odd_json[] = "q\"uo\\te\n\t\1 \xef\xbf\xbd\xef\xbf\xbd(";

/* The string at key in obj, "" if there is none (so messages can print it). */
static const char *str_at(const json_t *obj, const char *key) {
  const char *v = json_string_value(json_object_get(obj, key));
  return v ? v : "";
}

/* A --json report of odd_names.lua: its worker and figures under their names. */
static void expect_odd_report(const json_t *rep, const char *what) {
  cr_assert(json_is_object(rep), "%s: no report", what);
  int named = 0;
  size_t i;
  json_t *t;
  json_array_foreach(json_object_get(rep, "threads"), i, t) named += strcmp(str_at(t, "name"), odd_json) == 0;
  cr_expect_eq(named, 1, "%s: no thread named as the script named its worker", what);
  json_t *fig = json_object_get(rep, "figures");
  cr_expect_str_eq(str_at(fig, odd_json), odd_json, "%s: the odd figure's name or value was changed", what);
  json_t *n = json_object_get(fig, "n \"1\"");
  cr_expect(json_is_integer(n) && json_integer_value(n) == 42, "%s: an integer figure stays an integer", what);
  cr_expect(json_is_real(json_object_get(fig, "ratio")) && run_json_number(fig, "ratio") == 0.125,
            "%s: a real figure stays a number", what);
}

Test(json, odd_names_survive_json_and_trace) {
  const char *json = in_dir("r.json"), *trace = in_dir("r.trace");
  run_result *r = GV("-q", "--json", json, "--trace", trace, data("odd_names.lua"));
  expect_exit(r, 0);
  expect_odd_report(json_file(json), "--json");
  size_t i;
  json_t *e;
  int named = 0;
  json_array_foreach(json_object_get(json_file(trace), "traceEvents"), i, e) named +=
      strcmp(str_at(e, "name"), "thread_name") == 0 &&
      strcmp(str_at(json_object_get(e, "args"), "name"), odd_json) == 0;
  cr_expect_eq(named, 1, "the trace names no thread as the script named its worker:\n%s", slurp(trace, NULL));
}

Test(json, odd_names_survive_compare_in_every_mode) {
  const char *json = in_dir("c.json");
  run_result *r = GV("compare", "--json", json, data("odd_names.lua"));
  expect_exit(r, 0);
  json_t *modes = json_object_get(json_file(json), "modes");
  static const char *const names[] = { "gil", "nogil", "fork" };
  for (int m = 0; m < 3; m++) expect_odd_report(json_object_get(modes, names[m]), names[m]);
  /* the table reads the figures back from each run's JSON, whatever their names */
  expect_err_has(r, fmt("  %-24s %14s %14s %14s\n", "n \"1\"", "42", "42", "42"));
  expect_err_has(r, fmt("  %-24s %14s %14s %14s\n", "ratio", "0.125", "0.125", "0.125"));
}

Test(json, an_odd_script_path_survives_sweep) {
  const char *odd = in_dir("odd \"name\"\\\n\xff.lua");
  put(odd, slurp(data("odd_names.lua"), NULL));
  const char *json = in_dir("s.json");
  run_result *r = GV("sweep", "-q", "-s", "1ms,2ms", "--json", json, odd);
  expect_exit(r, 0);
  json_t *s = json_file(json);
  cr_expect_str_eq(str_at(s, "script"), in_dir("odd \"name\"\\\n\xef\xbf\xbd.lua"), "the script's path was changed");
  json_t *runs = json_object_get(s, "runs");
  cr_assert_eq(json_array_size(runs), 2, "one entry per run:\n%s", slurp(json, NULL));
  for (size_t i = 0; i < 2; i++) expect_odd_report(json_object_get(json_array_get(runs, i), "report"), "sweep");
}
