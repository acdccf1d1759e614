/* compare.h — `gilvm compare`, and running a child gilvm for its figures. */
#ifndef COMPARE_H
#define COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"

typedef struct child_run {
  int status;         /* exit status (128 + signal if killed) */
  char *out;          /* its stdout */
  size_t outlen;
  char *json;         /* its --json figures, NULL if none were written */
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
double compare_json_number(const char *json, const char *key);
char *compare_json_figure(const char *json, const char *name);
int compare_json_figure_names(const char *json, char **names, int max);

int compare_main(int argc, char **argv, const cli_options *o);

#endif
