/* compare.h — `gilvm compare`, and reading a run's figures from its --json. */
#ifndef COMPARE_H
#define COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "child.h"
#include "cli.h"
#include "jsonio.h"

/* Figure `name` of a run's --json as text for a table (malloc'd: a string's text
   with control characters as '?', a number as the file writes it), or NULL if it has none. */
char *compare_json_figure(const json_t *report, const char *name);
/* s (malloc'd, may be NULL) with control characters as '?', for a table: a newline would break it. */
char *compare_printable(char *s);
/* Its figures' names in the order the script reported them (malloc'd strings). */
int compare_json_figure_names(const json_t *report, char **names, int max);

int compare_main(int argc, char **argv, const cli_options *o);

/* If b (mode's output) differs from a (gil's), say where, quoting whole lines, and why:
   another order, timings, copies (only when mode copied something), or neither. 1 if they differ. */
int compare_explain(FILE *f, const char *mode, const char *a, const char *b, const json_t *ja, const json_t *jb);

#endif
