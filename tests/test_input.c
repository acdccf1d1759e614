/*
 * test_input.c — what gilvm takes in, end to end: how it prints a script's
 * error objects, the durations and sizes it accepts, what it loads as a
 * script, the commands README.md shows, and the one meaning of "forced".
 *
 * Like test_e2e.c: every test runs the real binary ($GILVM) through
 * run_helper.c on a fixture from tests/data/input/ ($GILVM_TESTDATA) or a
 * script from scripts/ ($GILVM_SCRIPTS), with a hard wall-clock limit, and
 * checks exit status, messages and files; nothing here depends on timing.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run_helper.h"

/* An absolute path: the README test runs in a temp directory. */
static const char *absolute(const char *path) {
  char *p = realpath(path, NULL);
  cr_assert(p, "%s: %s", path, strerror(errno));
  return track(p);
}

static const char *data(const char *name) { return data_in("input", name); }

TestSuite(errors, .fini = test_cleanup, .timeout = 180.);
TestSuite(durations, .fini = test_cleanup, .timeout = 120.);
TestSuite(arena, .fini = test_cleanup, .timeout = 120.);
TestSuite(binary, .fini = test_cleanup, .timeout = 120.);
TestSuite(forced, .fini = test_cleanup, .timeout = 180.);
TestSuite(readme, .fini = test_cleanup, .timeout = 600.);

/* ============================================ error objects with __tostring */

static const char *const modes[] = { "gil", "nogil", "fork" };

/* lua5.4 prints what __tostring gives (and no traceback): so does gilvm. */
static void expect_custom_message(const run_result *r, const char *prefix) {
  expect_exit(r, 1);
  expect_err_has(r, fmt("%scustom error object", prefix));
  expect_err_lacks(r, "(error object is a table value)");
}

Test(errors, table_error_with_tostring_in_main_is_printed_like_lua) {
  for (int m = 0; m < 3; m++) {
    run_result *r = GV("-q", "-m", modes[m], data("tostring_error.lua"), "main");
    expect_custom_message(r, "gilvm: error in thread 'main': ");
    expect_err_lacks(r, "stack traceback:"); /* lua5.4: the __tostring result is the whole message */
  }
}

Test(errors, table_error_with_tostring_in_an_unjoined_worker) {
  for (int m = 0; m < 3; m++) {
    run_result *r = GV("-q", "-m", modes[m], data("tostring_error.lua"), "unjoined");
    expect_custom_message(r, "(never joined): ");
  }
}

Test(errors, table_error_with_tostring_reraised_at_join) {
  for (int m = 0; m < 3; m++) {
    run_result *r = GV("-q", "-m", modes[m], data("tostring_error.lua"), "join");
    expect_custom_message(r, "': ");
    expect_err_has(r, "gilvm: error in thread 'main': ");
  }
}

Test(errors, table_error_with_tostring_in_a_forked_child) {
  for (int m = 0; m < 3; m++) {
    run_result *r = GV("-q", "-m", modes[m], data("tostring_error.lua"), "process");
    expect_custom_message(r, "': ");
    expect_err_has(r, "error in process '");
  }
}

Test(errors, table_error_with_tostring_in_a_pool_task) {
  run_result *r = GV("-q", data("tostring_error.lua"), "pool");
  expect_exit(r, 0);
  expect_out(r, "false\terror in pool task (worker '1:pool1-1'): custom error object\n");
}

Test(errors, other_error_objects_read_as_in_lua) {
  /* a number is a message; a table without __tostring, or one whose __tostring
     gives no string, is named by its type */
  run_result *r = GV("-q", "-e", "error(42)");
  expect_exit(r, 1);
  expect_err_has(r, "gilvm: error in thread 'main': 42\n");
  r = GV("-q", "-e", "error(setmetatable({}, {__tostring = function() return 1 end}))");
  expect_exit(r, 1);
  expect_err_has(r, "(error object is a table value)");
  r = GV("-q", "-e", "gil.spawn(function() error({}) end)");
  expect_exit(r, 1);
  expect_err_has(r, "(error object is a table value)");
}

/* ==================================================== durations */

Test(durations, only_decimal_numbers_with_a_unit_are_durations) {
  const char *out = data("hello.lua");
  static const char *const bad[] = { "0x10", "0x1p3", "inf",  "nan",  "infinity", "-1ms", "-0", "1e3",  "1e-3s",
                                     " 5ms", "+5ms",  "5ms ", "5 ms", "5msx",     ".",    "ms", "1.2.3" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    expect_usage_error(GV("-s", bad[i], out), fmt("bad switch interval '%s'", bad[i]));
    expect_usage_error(GV("--timeout", bad[i], out), fmt("bad timeout '%s'", bad[i]));
    expect_usage_error(GV("sweep", "-s", fmt("1ms,%s", bad[i]), out), fmt("bad switch interval '%s'", bad[i]));
  }
}

Test(durations, decimal_forms_are_accepted) {
  struct {
    const char *val;
    const char *want;
  } cases[] = {
    { ".5ms", "0.0005\n" }, { "5.", "5.0\n" }, { "1.5", "1.5\n" }, { "007ms", "0.007\n" }, { "250000ns", "0.00025\n" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run_result *r = GV("-q", "-s", cases[i].val, "-e", "print(gil.getswitchinterval())");
    expect_exit(r, 0);
    expect_out(r, cases[i].want);
  }
}

Test(durations, check_interval_is_a_plain_positive_integer) {
  static const char *const bad[] = { " 5", "+5", "0x5", "5 ", "5.0", "1e2" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_usage_error(GV("-g", "legacy", "--check-interval", bad[i], data("hello.lua")),
                       fmt("bad check interval '%s'", bad[i]));
  run_result *r = GV("-q", "-g", "legacy", "--check-interval", "50", data("hello.lua"));
  expect_exit(r, 0);
  expect_out(r, "hello\n");
}

/* ==================================================== the arena's size */

static run_result *with_arena_env(const char *value, const char *const *args) {
  const char *env[] = { fmt("GILVM_ARENA_MB=%s", value), NULL };
  return gv_run(&(run_opts){ .env = env }, args);
}

Test(arena, malformed_GILVM_ARENA_MB_is_a_usage_error) {
  static const char *const bad[] = { "abc", "0", "-1", "1e3", "1.5", " 64", "64M", "0x10", "2000000" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    run_result *r = with_arena_env(bad[i], (const char *const[]){ data("hello.lua"), NULL });
    expect_usage_error(r, fmt("bad GILVM_ARENA_MB '%s'", bad[i]));
  }
}

Test(arena, malformed_arena_option_is_a_usage_error) {
  static const char *const bad[] = { "abc", "0", "-1", "1e3", "1.5", "12K", "64MB", "1025G", "" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_usage_error(GV("--arena", bad[i], data("hello.lua")), fmt("bad arena size '%s'", bad[i]));
}

/* arena_fill.lua puts a 2 MiB string through a nogil queue: it does not fit
   a 1 MiB arena and fits an 8 MiB one, whichever way the size is given. */
Test(arena, the_size_is_what_was_asked) {
  const char *fill = data("arena_fill.lua");
  struct {
    const char *env;
    const char *opt;
    int fits;
  } cases[] = {
    { NULL, "1", 0 }, { NULL, "1M", 0 }, { NULL, "8M", 1 }, { NULL, "1G", 1 },
    { NULL, "8", 1 }, { "1", NULL, 0 },  { "8", NULL, 1 },  { "1", "8M", 1 }, /* --arena wins over the variable */
    { "", NULL, 1 }, /* empty: unset, the default 64 MiB */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *const args_opt[] = { "-q", "-m", "nogil", "--arena", cases[i].opt, fill, NULL };
    const char *const args_plain[] = { "-q", "-m", "nogil", fill, NULL };
    const char *const *args = cases[i].opt ? args_opt : args_plain;
    run_result *r = cases[i].env ? with_arena_env(cases[i].env, args) : gv_run(NULL, args);
    expect_exit(r, 0);
    expect_out(r, cases[i].fits ? "fits\n" : "full\n");
  }
}

Test(arena, help_documents_the_option) {
  run_result *r = GV("--help");
  expect_exit(r, 0);
  cr_assert(strstr(r->out, "--arena SIZE") && strstr(r->out, "GILVM_ARENA_MB"), "--help lacks --arena" CTX, CTXA(r));
}

/* ==================================================== precompiled chunks */

/* Writes string.dump(loadfile(src)) to dst, through gilvm itself. */
static void dump_chunk(const char *src, const char *dst) {
  run_result *r = GV("-q", "-e",
                     fmt("local f = assert(io.open(%s, 'wb')) f:write(string.dump(assert(loadfile(%s)))) "
                         "f:close()",
                         fmt("'%s'", dst), fmt("'%s'", src)));
  expect_exit(r, 0);
}

/* The chunk with every byte after its header overwritten: a damaged chunk. */
static void damage_chunk(const char *path) {
  FILE *f = fopen(path, "r+b");
  cr_assert(f, "%s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  for (long i = 32; i < n; i++) {
    fseek(f, i, SEEK_SET);
    fputc(0xff, f);
  }
  fclose(f);
}

static void expect_refused_chunk(const run_result *r, const char *name) {
  expect_exit(r, 3);
  expect_err_has(r, fmt("%s is a precompiled chunk", name));
  expect_err_has(r, "--binary");
  expect_out(r, "");
}

Test(binary, a_precompiled_script_is_refused_with_exit_3) {
  const char *dir = new_tmpdir();
  const char *chunk = fmt("%s/hello.luac", dir);
  dump_chunk(data("hello.lua"), chunk);
  expect_refused_chunk(GV(chunk), chunk);
  /* the same from stdin ("-"): a chunk has NULs, so a shell redirects the file */
  const char *argv[] = { "/bin/sh", "-c", fmt("exec '%s' - < '%s'", gilvm_path(), chunk), NULL };
  expect_refused_chunk(run_checked(NULL, argv), "stdin");
}

Test(binary, a_damaged_precompiled_script_is_refused_not_run) {
  const char *dir = new_tmpdir();
  const char *chunk = fmt("%s/damaged.luac", dir);
  dump_chunk(data("hello.lua"), chunk);
  damage_chunk(chunk);
  run_result *r = GV(chunk);
  cr_assert(!r->term_signal, "a damaged chunk crashed gilvm" CTX, CTXA(r));
  expect_refused_chunk(r, chunk);
}

Test(binary, binary_option_runs_a_precompiled_script) {
  const char *dir = new_tmpdir();
  const char *chunk = fmt("%s/hello.luac", dir);
  dump_chunk(data("hello.lua"), chunk);
  run_result *r = GV("-q", "--binary", chunk);
  expect_exit(r, 0);
  expect_out(r, "hello\n");
}

Test(binary, string_dump_and_load_inside_a_script_stay_lua_business) {
  run_result *r = GV("-q", "-e", "print(load(string.dump(function() return 'from a dump' end))())");
  expect_exit(r, 0);
  expect_out(r, "from a dump\n");
}

/* ==================================================== one meaning of "forced" */

/* The summary's forced switches and the table's forced column count the same
   thing (a holder let go because a waiter asked), so they add up, in every
   policy. Legacy's periodic release is not forced: nobody asked. */
static void expect_forced_adds_up(const char *policy, const char *interval) {
  run_result *r = GV("-g", policy, "-s", interval, data("forced.lua"));
  expect_exit(r, 0);
  expect_out(r, "done\n");
  parsed_report rr;
  cr_assert(report_parse_run(r->err, &rr), "no complete report" CTX, CTXA(r));
  report_thread rows[8];
  int n = report_threads(r->err, rows, 8);
  cr_assert(n == 3, "main, the spinner and the thread it started" CTX, CTXA(r));
  long forced = 0;
  for (int i = 0; i < n; i++) forced += rows[i].forced;
  cr_expect(forced == rr.forced, "%s: the table's forced drops add up to %ld, the summary says forced %ld" CTX, policy,
            forced, rr.forced, CTXA(r));
  if (strcmp(policy, "legacy") == 0) {
    cr_expect(rr.forced == 0 && rr.drop_requests == 0, "legacy asks nobody to drop" CTX, CTXA(r));
    double yields;
    cr_assert(report_number_after(r->err, "check-interval releases ", &yields), "no legacy line" CTX, CTXA(r));
    cr_expect(yields >= 1, "the spinner released the GIL to its waiter at least once" CTX, CTXA(r));
  } else {
    cr_expect(rr.forced >= 1, "%s: the waiter asked the spinner to drop" CTX, policy, CTXA(r));
  }
}

Test(forced, summary_and_table_agree_under_legacy) { expect_forced_adds_up("legacy", "5ms"); }
Test(forced, summary_and_table_agree_under_cpython) { expect_forced_adds_up("cpython", "1ms"); }
Test(forced, summary_and_table_agree_under_fifo) { expect_forced_adds_up("fifo", "1ms"); }

/* ==================================================== README.md's commands */

typedef struct readme_cmd {
  int line;
  char *argv[40];
  int argc;
  char *text;
} readme_cmd;

/* Every `build/gilvm ...` line inside a fenced code block of README.md ("$ "
   prompt and trailing "# comment" removed), split at spaces. */
static int readme_commands(readme_cmd *cmds, int max) {
  const char *readme = fmt("%s/../README.md", env_dir("GILVM_SCRIPTS"));
  FILE *f = fopen(readme, "r");
  cr_assert(f, "%s: %s", readme, strerror(errno));
  char line[1024];
  int n = 0, lineno = 0, fenced = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    if (strncmp(line, "```", 3) == 0) {
      fenced = !fenced;
      continue;
    }
    char *p = line;
    if (strncmp(p, "$ ", 2) == 0) p += 2;
    if (!fenced || strncmp(p, "build/gilvm ", 12) != 0) continue;
    p[strcspn(p, "\n")] = '\0';
    for (char *h = p; (h = strchr(h, '#')); h++)
      if (h > p && (h[-1] == ' ' || h[-1] == '\t')) {
        *h = '\0';
        break;
      }
    cr_assert(!strpbrk(p, "'\"\\$`|<>;&"), "README.md:%d: this test splits commands at spaces only: %s", lineno, p);
    cr_assert(n < max, "more than %d commands in README.md", max);
    readme_cmd *c = &cmds[n++];
    c->line = lineno;
    c->text = track(strdup(p));
    c->argc = 0;
    for (char *tok = strtok(track(strdup(p)), " \t"); tok; tok = strtok(NULL, " \t")) {
      cr_assert(c->argc < 39, "README.md:%d: too many words", lineno);
      c->argv[c->argc++] = tok;
    }
  }
  fclose(f);
  return n;
}

/* Is argv[i] an option naming an output file? Returns the file, or NULL. */
static const char *output_file(char **argv, int i) {
  static const char *const opts[] = { "--json", "--trace", "--svg" };
  for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
    size_t len = strlen(opts[k]);
    if (strcmp(argv[i], opts[k]) == 0) return argv[i + 1];
    if (strncmp(argv[i], opts[k], len) == 0 && argv[i][len] == '=') return argv[i] + len + 1;
  }
  return NULL;
}

/* Each command runs as shown (gilvm and scripts/ resolved to this build and
   tree, a generous --timeout added) in a fresh directory, exits 0, and writes
   every output file it names. */
Test(readme, every_command_the_readme_shows_runs) {
  readme_cmd cmds[48];
  int n = readme_commands(cmds, 48);
  cr_assert(n >= 10, "only %d build/gilvm commands found in README.md's code blocks", n);
  const char *bin = gilvm_path(), *scripts = absolute(env_dir("GILVM_SCRIPTS"));
  const char *dir = new_tmpdir();
  cr_assert(chdir(dir) == 0, "chdir %s: %s", dir, strerror(errno));
  for (int k = 0; k < n; k++) {
    readme_cmd *c = &cmds[k];
    const char *argv[48];
    int m = 0, i = 1;
    argv[m++] = bin;
    if (c->argc > 1 &&
        (!strcmp(c->argv[1], "run") || !strcmp(c->argv[1], "compare") || !strcmp(c->argv[1], "sweep") ||
         !strcmp(c->argv[1], "dis")))
      argv[m++] = c->argv[i++];
    argv[m++] = "--timeout";
    argv[m++] = "120s";
    const char *outputs[8];
    int nout = 0;
    for (; i < c->argc; i++) {
      const char *a = c->argv[i];
      if (strncmp(a, "scripts/", 8) == 0) a = fmt("%s/%s", scripts, a + 8);
      argv[m++] = a;
      const char *o = output_file(c->argv, i);
      if (o && nout < 8) outputs[nout++] = o;
    }
    argv[m] = NULL;
    for (int o = 0; o < nout; o++) unlink(outputs[o]);
    run_result *r = run_checked(&(run_opts){ .limit_s = 300 }, argv);
    cr_expect(r->exited && r->exit_code == 0, "README.md:%d: `%s` failed" CTX, c->line, c->text, CTXA(r));
    for (int o = 0; o < nout; o++) {
      struct stat st;
      cr_expect(stat(outputs[o], &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0,
                "README.md:%d: `%s` did not write %s" CTX, c->line, c->text, outputs[o], CTXA(r));
    }
  }
  cr_assert(chdir("/") == 0);
}

/* =================================================== the environment */

TestSuite(environment, .fini = test_cleanup, .timeout = 120.);

/* Every GILVM_* variable a source file reads (getenv("GILVM_...")) is in
   --help's environment section, and so in the man page (test_install). */
Test(environment, help_names_every_GILVM_variable_the_sources_read) {
  run_result *h = GV("--help");
  expect_exit(h, 0);
  const char *env = strstr(h->out, "\nEnvironment:\n");
  cr_assert(env, "--help has no Environment: section" CTX, CTXA(h));
  const char *root = fmt("%s/..", env_dir("GILVM_SCRIPTS"));
  FILE *p = popen(fmt("grep -rhoE 'getenv\\(\"GILVM_[A-Z_]+' '%s/vm' '%s/gil' '%s/base'", root, root, root), "r");
  cr_assert(p != NULL);
  char line[256];
  int n = 0;
  while (fgets(line, sizeof line, p)) {
    const char *name = strstr(line, "GILVM_");
    cr_assert(name);
    line[strcspn(line, "\n")] = '\0';
    cr_expect(strstr(env, fmt("  %s ", name)) != NULL, "--help's environment section lacks %s" CTX, name, CTXA(h));
    n++;
  }
  pclose(p);
  cr_expect(n >= 4, "found only %d getenv(\"GILVM_...\") in the sources", n);
}
