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

/* Run `argv[0] run -q --json TMP argv[1..]` (argv[0] is replaced by this binary). */
int compare_run_child(char *const argv[], child_run *out);
void compare_free_child(child_run *r);
double compare_json_number(const char *json, const char *key);
char *compare_json_figure(const char *json, const char *name);
int compare_json_figure_names(const char *json, char **names, int max);

int compare_main(int argc, char **argv, const cli_options *o);

#endif
