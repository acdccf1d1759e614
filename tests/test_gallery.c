/*
 * test_gallery.c — every script of the articles' gallery (scripts/articles/)
 * in gil, nogil and fork modes, its output checked against
 * tests/data/articles/NAME.out (or NAME.MODE.out where a mode prints
 * something else: that difference is the lesson).
 *
 * An expectation file is lines of expected stdout, in blocks:
 *   # args: A B ...   (first line, optional) the script's arguments here,
 *                     to keep the sanitizer builds quick
 *   # any order       the lines up to the next marker, in any order
 *   # in order        the lines up to the next marker, exactly in order
 * Lines before any marker are in order. Workers that print at the same
 * moment print in the scheduler's order, so those lines are a block; lines
 * printed after a join are in order. Nothing is timed: timing verdicts are
 * the scripts' gil.report figures, not their output.
 *
 * A script without an expectation file, or whose header does not name its
 * article, the claim and what each mode shows, fails the suite.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_helper.h"

TestSuite(gallery, .fini = test_cleanup);

#define MAX_SCRIPTS 64
#define MAX_LINES 256
#define MAX_ARGS 8

/* Split text into lines in place (a final newline ends the last line). */
static int split_lines(char *text, char **lines) {
  int n = 0;
  for (char *p = text; *p;) {
    char *nl = strchr(p, '\n');
    cr_assert(n < MAX_LINES, "more than %d lines", MAX_LINES);
    lines[n++] = p;
    if (!nl) break;
    *nl = '\0';
    p = nl + 1;
  }
  return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Does got (n lines) match want (n lines), in order or as a multiset? */
static int block_matches(char **want, char **got, int n, int ordered) {
  if (!ordered) {
    qsort(want, (size_t)n, sizeof want[0], cmp_str);
    qsort(got, (size_t)n, sizeof got[0], cmp_str);
  }
  for (int i = 0; i < n; i++)
    if (strcmp(want[i], got[i]) != 0) return 0;
  return 1;
}

/* Run one script in one mode and check its output against its expectation file. */
static void check_script(const char *name, const char *mode) {
  const char *path = data_in("articles", fmt("%s.%s.out", name, mode));
  if (access(path, R_OK) != 0) path = data_in("articles", fmt("%s.out", name));
  cr_assert(access(path, R_OK) == 0, "scripts/articles/%s.lua has no expectation %s", name, path);
  char *want_text = slurp(path, NULL);
  char *want[MAX_LINES];
  int nwant = split_lines(want_text, want);

  const char *argv[MAX_ARGS + 8] = { "-q", "-m", mode, script(fmt("articles/%s.lua", name)) };
  int argc = 4, first = 0;
  if (nwant > 0 && strncmp(want[0], "# args:", 7) == 0) {
    for (char *t = strtok(want[0] + 7, " "); t && argc < MAX_ARGS + 4; t = strtok(NULL, " ")) argv[argc++] = t;
    first = 1;
  }
  run_opts o = { .limit_s = 120 };
  run_result *r = gv_run(&o, argv);
  expect_exit(r, 0);
  char *got[MAX_LINES];
  int ngot = split_lines(track(strdup(r->out)), got); /* r->out stays whole for messages */

  int at = 0, ordered = 1, ok = 1;
  for (int i = first; i < nwant && ok;) {
    if (strcmp(want[i], "# any order") == 0 || strcmp(want[i], "# in order") == 0) {
      ordered = want[i][2] == 'i';
      i++;
      continue;
    }
    int j = i;
    while (j < nwant && strncmp(want[j], "# ", 2) != 0) j++;
    int n = j - i;
    ok = at + n <= ngot && block_matches(want + i, got + at, n, ordered);
    cr_expect(ok, "%s in %s mode: lines %d-%d are not %s (%s)" CTX, name, mode, at + 1, at + n,
              ordered ? "in order" : "in any order", path, CTXA(r));
    at += n;
    i = j;
  }
  if (ok) cr_expect(at == ngot, "%s in %s mode printed %d lines, %s has %d" CTX, name, mode, ngot, path, at, CTXA(r));
}

static void check_mode(const char *mode) {
  char *names[MAX_SCRIPTS];
  int n = gallery_scripts(names, MAX_SCRIPTS);
  cr_assert(n >= 15, "only %d scripts in scripts/articles", n);
  for (int k = 0; k < n; k++) check_script(names[k], mode);
}

Test(gallery, every_script_in_gil_mode) { check_mode("gil"); }
Test(gallery, every_script_in_nogil_mode) { check_mode("nogil"); }
Test(gallery, every_script_in_fork_mode) { check_mode("fork"); }

/* Each script says which article and example it follows, the claim, what
   each mode shows, where the claim is too simple, and how to run it. */
Test(gallery, every_script_names_its_article_claim_and_modes) {
  char *names[MAX_SCRIPTS];
  int n = gallery_scripts(names, MAX_SCRIPTS);
  static const char *const parts[] = { "-- Article: \"", "example", "-- Claim:",      "gil:",
                                       "nogil:",         "fork:",   "-- Too simple:", "-- usage: gilvm" };
  for (int k = 0; k < n; k++) {
    char *text = slurp(script(fmt("articles/%s.lua", names[k])), NULL);
    char *code = strstr(text, "\nlocal ");
    if (code) *code = '\0'; /* the header: everything before the first line of code */
    for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++)
      cr_expect(strstr(text, parts[p]) != NULL, "scripts/articles/%s.lua's header lacks \"%s\"", names[k], parts[p]);
    cr_expect(strstr(text, fmt("scripts/articles/%s.lua", names[k])) != NULL,
              "scripts/articles/%s.lua's usage line names another file", names[k]);
  }
}

/* ---- docs/guide.md: its outputs are generated, and checked against a run now ---- */

/* The guide's freshness does not depend on the build: it is checked by the
   plain build. Under a sanitizer every experiment runs again, some forking,
   for nothing the gallery suite above does not already run in every mode
   (and Debian 12's libasan can hang a forked child now and then: a compare
   of art4_lock_counter.lua once ran past the check's 300 s here). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GUIDE_SKIP_UNDER_SANITIZER() cr_skip_test("the guide is checked by the plain build")
#else
#define GUIDE_SKIP_UNDER_SANITIZER() (void)0
#endif

TestSuite(guide, .fini = test_cleanup);

static const char *source_root(void) { return fmt("%s/..", env_dir("GILVM_SCRIPTS")); }

/* tools/make_guide.py --check with this build's gilvm, on guide (NULL:
   docs/guide.md; its pictures are guide/ beside it), only the experiments
   named (NULL: all). */
static run_result *guide_check(const char *guide, const char *only) {
  const char *tool = fmt("%s/tools/make_guide.py", source_root());
  const char *python = env_dir("GILVM_PYTHON");
  const char *argv[] = { python,
                         tool,
                         "--check",
                         "--gilvm",
                         gilvm_path(),
                         "--guide",
                         guide ? guide : fmt("%s/docs/guide.md", source_root()),
                         only ? "--only" : NULL,
                         only,
                         NULL };
  run_opts o = { .limit_s = 500 };
  return run_tracked(&o, argv);
}

Test(guide, is_up_to_date, .timeout = 600) {
  GUIDE_SKIP_UNDER_SANITIZER();
  run_result *r = guide_check(NULL, NULL);
  expect_reaped(r);
  cr_expect(r->exited && r->exit_code == 0, "docs/guide.md is out of date: run tools/make_guide.py" CTX, CTXA(r));
  expect_out_has(r, "experiments up to date");
}

/* A copy of the guide and its pictures in a temporary directory, with the
   first `from` in the guide (or in picture `svg`, when given) replaced by
   `to`; returns the copy's guide.md. */
static const char *edited_guide(const char *svg, const char *from, const char *to) {
  const char *dir = tmp_path("docs"), *pics = fmt("%s/guide", dir);
  cr_assert(mkdir(dir, 0777) == 0 && mkdir(pics, 0777) == 0);
  DIR *d = opendir(fmt("%s/docs/guide", source_root()));
  cr_assert(d != NULL);
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    size_t n;
    char *text = slurp(fmt("%s/docs/guide/%s", source_root(), e->d_name), &n);
    if (svg && strcmp(e->d_name, svg) == 0) {
      char *at = strstr(text, from);
      cr_assert(at != NULL, "docs/guide/%s lacks %s", svg, from);
      cr_assert(strlen(from) == strlen(to));
      memcpy(at, to, strlen(to));
    }
    FILE *f = fopen(fmt("%s/%s", pics, e->d_name), "w");
    cr_assert(f != NULL);
    fwrite(text, 1, n, f);
    fclose(f);
  }
  closedir(d);
  char *text = slurp(fmt("%s/docs/guide.md", source_root()), NULL);
  if (!svg) {
    char *at = strstr(text, from);
    cr_assert(at != NULL, "docs/guide.md lacks %s", from);
    cr_assert(strlen(from) == strlen(to));
    memcpy(at, to, strlen(to)); /* the same length */
  }
  const char *edited = fmt("%s/guide.md", dir);
  FILE *f = fopen(edited, "w");
  cr_assert(f != NULL);
  fputs(text, f);
  fclose(f);
  return edited;
}

/* The check is not a rubber stamp: a guide whose output was edited by hand
   is stale, and the message names the experiment (and only it). */
Test(guide, check_names_the_stale_experiment, .timeout = 600) {
  GUIDE_SKIP_UNDER_SANITIZER();
  const char *edited = edited_guide(NULL, "All files have been downloaded.\n", "All files have been uploaded!!!\n");
  run_result *r = guide_check(edited, "threads-io,convoy");
  expect_reaped(r);
  cr_expect(r->exited && r->exit_code == 1, "an edited output passes the check" CTX, CTXA(r));
  expect_err_has(r, "experiment 'threads-io' is stale");
  expect_err_lacks(r, "experiment 'convoy'");
}

/* The simulated threads-io run's wall line as the guide has it ("  wall 500.12 ms "), and the same
   with its last digit changed: a regenerated guide needs no edit here. */
static void sim_wall(char **from, char **to) {
  char *text = slurp(fmt("%s/docs/guide.md", source_root()), NULL);
  const char *at = strstr(text, "--sim 2 --svg docs/guide/threads-io.svg");
  cr_assert(at != NULL, "docs/guide.md lacks the simulated threads-io run");
  at = strstr(at, "\n  wall ");
  const char *end = at ? strstr(at, " ms ") : NULL;
  cr_assert(end != NULL, "the simulated threads-io run has no wall line");
  *from = strndup(at + 1, (size_t)(end + 4 - (at + 1)));
  *to = strdup(*from);
  char *digit = *to + strlen(*to) - 5;
  *digit = *digit == '9' ? '0' : (char)(*digit + 1);
}

/* A simulated experiment is compared byte for byte: one number (the
   virtual wall time) edited makes it stale. */
Test(guide, a_simulated_number_is_compared_exactly, .timeout = 600) {
  GUIDE_SKIP_UNDER_SANITIZER();
  char *from, *to;
  sim_wall(&from, &to);
  const char *edited = edited_guide(NULL, from, to);
  run_result *r = guide_check(edited, "threads-io");
  expect_reaped(r);
  cr_expect(r->exited && r->exit_code == 1, "an edited simulated number passes the check" CTX, CTXA(r));
  expect_err_has(r, "experiment 'threads-io' is stale: 'build/gilvm --sim 2 ");
  expect_err_has(r, to + 2); /* "wall 500.13 ms " */
}

/* ... and its picture too. */
Test(guide, a_simulated_picture_is_compared_exactly, .timeout = 600) {
  GUIDE_SKIP_UNDER_SANITIZER();
  const char *edited = edited_guide("threads-io.svg", "</svg>", "</SVG>");
  run_result *r = guide_check(edited, "threads-io");
  expect_reaped(r);
  cr_expect(r->exited && r->exit_code == 1, "an edited simulated picture passes the check" CTX, CTXA(r));
  expect_err_has(r, "now draws another docs/guide/threads-io.svg");
}

/* A real run says why it is real, and its numbers are masked: they change
   from run to run. */
Test(guide, a_real_run_says_why_and_its_numbers_are_masked, .timeout = 600) {
  GUIDE_SKIP_UNDER_SANITIZER();
  char *text = slurp(fmt("%s/docs/guide.md", source_root()), NULL);
  cr_expect(strstr(text, "A real run, because its lesson is what synchronising a shared value costs") != NULL,
            "the value-cost experiment does not say why");
  const char *edited =
      edited_guide(NULL, "array of local counts: 333333 333333\n", "array of local counts: 333333 333339\n");
  run_result *r = guide_check(edited, "value-cost");
  expect_reaped(r);
  cr_expect(r->exited && r->exit_code == 0, "a real run's number is compared" CTX, CTXA(r));
}

/* The outputs do not depend on where gilvm or the checkout is: the tool runs
   gilvm as "build/gilvm" (the script sees argv[0], and nogil workers get a
   copy of it, so the bytes copied would change with the path). */
Test(guide, outputs_do_not_depend_on_the_binarys_path, .timeout = 600) {
  GUIDE_SKIP_UNDER_SANITIZER();
  const char *copy = tmp_path("a-much-longer-directory-name-than-build-gilvm");
  size_t n;
  char *bin = slurp(gilvm_path(), &n);
  FILE *f = fopen(copy, "wb");
  cr_assert(f != NULL);
  fwrite(bin, 1, n, f);
  fclose(f);
  cr_assert(chmod(copy, 0755) == 0);
  const char *tool = fmt("%s/tools/make_guide.py", source_root());
  const char *argv[] = { env_dir("GILVM_PYTHON"), tool, "--check", "--gilvm", copy, "--only", "locks", NULL };
  run_opts o = { .limit_s = 500 };
  run_result *r = run_tracked(&o, argv);
  expect_reaped(r);
  cr_expect(r->exited && r->exit_code == 0, "the guide's outputs changed with gilvm's path" CTX, CTXA(r));
}
