/* compare.h — `gilvm compare`, and running a child gilvm for its figures. */
#ifndef COMPARE_H
#define COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "jsonio.h"

typedef struct child_run {
  int status;         /* exit status (128 + signal if killed) */
  char *out;          /* its stdout */
  size_t outlen;
  json_t *json;       /* its --json figures, NULL if none were written (or not whole) */
  uint64_t wall_ns;
} child_run;

/* From now on SIGINT and SIGTERM stop the child being run (passed on, then
   SIGKILL if it does not end) instead of killing this process outright. */
void compare_signals_init(void);
/* 0, or the exit code a signal asked for (130, 143); a second SIGINT exits at once. */
int compare_stopped(void);
const char *compare_stop_reason(void);  /* "interrupted", "terminated" */
/* The command's exit status so far, given one more run's: 124 if a run timed out, else 1 if one failed. */
int compare_fold_status(int rc, int status);

/* Run `argv[0] run -q --json PIPE argv[1..]` (argv[0] is replaced by this binary).
   0, or -1 with errno set if it could not be started. */
int compare_run_child(char *const argv[], child_run *out);
void compare_free_child(child_run *r);
/* Figure `name` of a run's --json as text for a table (malloc'd: a string's text
   with control characters as '?', a number as the file writes it), or NULL if it has none. */
char *compare_json_figure(const json_t *report, const char *name);
/* s (malloc'd, may be NULL) with control characters as '?', for a table: a newline would break it. */
char *compare_printable(char *s);
/* Its figures' names in the order the script reported them (malloc'd strings). */
int compare_json_figure_names(const json_t *report, char **names, int max);

int compare_main(int argc, char **argv, const cli_options *o);

#endif
