/*
 * test_policy_cli.c — the command line knows the policies only through the
 * GIL's table. This binary is vm/cli.c linked with the tests' GIL, whose
 * table has a fourth policy (tests/gil_lifo.c, one word in tests/meson.build):
 * -g takes it, --help describes it and the error messages list it, with no
 * line of cli.c naming it. gilvm itself is built with the three real ones.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gil.h"

/* What cli_parse wrote to fd `fd` (1 or 2), and its return value. */
static char *parse_capturing(int fd, int *rc, int argc, char **argv) {
  FILE *tmp = tmpfile();
  cr_assert_not_null(tmp);
  fflush(NULL);
  int saved = dup(fd);
  dup2(fileno(tmp), fd);
  cli_options o;
  *rc = cli_parse(argc, argv, &o);
  fflush(NULL);
  dup2(saved, fd);
  close(saved);
  fseek(tmp, 0, SEEK_END);
  long n = ftell(tmp);
  char *s = calloc(1, (size_t)n + 1);
  rewind(tmp);
  cr_assert_eq(fread(s, 1, (size_t)n, tmp), (size_t)n);
  fclose(tmp);
  return s;
}

Test(policy_cli, a_test_only_policy_is_accepted_by_g) {
  char *argv[] = { "gilvm", "-g", "lifo", "-e", "x = 1", NULL };
  cli_options o;
  cr_assert_eq(cli_parse(5, argv, &o), -1);
  cr_assert_str_eq(o.policy, "lifo");
}

Test(policy_cli, the_default_is_the_tables_first) {
  char *argv[] = { "gilvm", "-e", "x = 1", NULL };
  cli_options o;
  cr_assert_eq(cli_parse(3, argv, &o), -1);
  cr_assert_str_eq(o.policy, gil_policy_at(0)->name);
}

/* The message lists every policy of the table, the test-only one last. */
Test(policy_cli, unknown_policy_message_lists_the_table) {
  char *argv[] = { "gilvm", "-g", "nope", "-e", "x = 1", NULL };
  int rc;
  char *err = parse_capturing(2, &rc, 5, argv);
  cr_assert_eq(rc, EXIT_USAGE);
  cr_assert(strstr(err, "unknown GIL policy 'nope' (expected cpython, legacy, fifo, iopri or lifo)"), "%s", err);
  free(err);
}

/* --help's -g lines describe each policy with its own `about`, and -s names
   fifo's quantum: both made from the table. */
Test(policy_cli, help_describes_every_policy) {
  char *argv[] = { "gilvm", "--help", NULL };
  int rc;
  char *out = parse_capturing(1, &rc, 2, argv);
  cr_assert_eq(rc, 0);
  /* the help wraps lines: compare with runs of spaces and newlines as one space */
  char *flat = calloc(1, strlen(out) + 1), *q = flat;
  for (const char *p = out; *p; p++) {
    if (*p == ' ' || *p == '\n') {
      if (q > flat && q[-1] == ' ') continue;
      *q++ = ' ';
    } else {
      *q++ = *p;
    }
  }
  for (int i = 0; gil_policy_at(i); i++) {
    char want[160];
    snprintf(want, sizeof want, "%s (%s%s)", gil_policy_at(i)->name, i ? "" : "default: ", gil_policy_at(i)->about);
    cr_assert(strstr(flat, want), "--help lacks '%s':\n%s", want, out);
  }
  cr_assert(strstr(flat, "fifo: its quantum, default 100ms"), "%s", out);
  cr_assert(strstr(flat, "legacy: how many instructions between releases (default 100)"), "%s", out);
  free(flat);
  free(out);
}
