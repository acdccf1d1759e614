/* sweep.h — `gilvm sweep`: one script across switch intervals (and GIL policies). */
#ifndef SWEEP_H
#define SWEEP_H

#include "cli.h"

/* Run the script once per (policy, interval), each in a fresh gilvm, and print one
   table row per run; --json and --svg as the options ask. Returns the exit status. */
int sweep_main(int argc, char **argv, const cli_options *o);

#endif
