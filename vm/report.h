/* report.h — what gilvm tells the user after a run (on stderr). */
#ifndef REPORT_H
#define REPORT_H

#include <stdio.h>

#include "runtime.h"

/* Print the run report: the run as a whole, then one row per thread. */
void report_print(FILE *f, runtime *rt);

#endif
