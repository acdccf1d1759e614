/* child.h — running a child gilvm for its figures (compare and sweep). */
#ifndef CHILD_H
#define CHILD_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "jsonio.h"

typedef struct child_run {
  int status; /* exit status (128 + signal if killed) */
  char *out; /* its stdout */
  size_t outlen;
  json_t *json; /* its --json figures, NULL if none were written (or not whole) */
  uint64_t wall_ns;
} child_run;

/* From now on SIGINT and SIGTERM stop the child being run (passed on, then
   SIGKILL if it does not end) instead of killing this process outright. */
void child_signals_init(void);
/* 0, or the exit code a signal asked for (130, 143); a second SIGINT exits at once. */
int child_stopped(void);
const char *child_stop_reason(void); /* "interrupted", "terminated" */
/* The command's exit status so far, given one more run's: 124 if a run timed out, else 1 if one failed. */
int child_fold_status(int rc, int status);

#define CHILD_ARGV_MAX 128
/* Fills av (CHILD_ARGV_MAX entries) for child_run_gilvm:
   argv[0] -m MODE <extra, NULL-ended> <o's forwarded options> -- <o's script and its arguments>. */
void child_argv(const char **av, int argc, char **argv, const cli_options *o, const char *mode,
                const char *const *extra);
/* Run `argv[0] run -q --json PIPE argv[1..]` (argv[0] is replaced by this binary).
   0, or -1 with errno set if it could not be started. */
int child_run_gilvm(char *const argv[], child_run *out);
void child_run_free(child_run *r);
/* Set in a child's environment: the pid of the compare or sweep that runs it. */
#define CHILD_SUPERVISOR_ENV "GILVM_SUPERVISOR"
/* In a gilvm run started by compare or sweep: die with that supervisor,
   even when it is killed with SIGKILL. Call first thing in main. */
void child_watch_supervisor(void);

#endif
