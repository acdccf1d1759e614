/* cli.h — the command line: what the user asked for. */
#ifndef CLI_H
#define CLI_H

#include <stddef.h>
#include <stdint.h>

#include "exits.h" /* EXIT_USAGE and the others */
#include "rt_mode.h"

#define CLI_LIST_MAX 16 /* items in a sweep list */

typedef struct cli_list { /* a comma list as given: "0.5ms,1ms" -> "0.5ms", "1ms" */
  int n;
  char item[CLI_LIST_MAX][32];
} cli_list;

enum { CLI_COLOR_AUTO, CLI_COLOR_ALWAYS, CLI_COLOR_NEVER };

typedef struct cli_options {
  const char *command; /* "run", "compare", "sweep" */
  rt_mode mode; /* RT_MODE_GIL */
  const char *policy; /* a name gil_policy_find() knows */
  uint64_t interval_ns; /* 0: the policy's default */
  int check_interval; /* 0: the policy's default */
  int quiet;
  uint64_t timeout_ns; /* 0: none */
  const char *exec[16]; /* -e CODE, in order */
  int nexec;
  const char *json_path; /* --json FILE */
  const char *trace_path; /* --trace FILE: Chrome trace-event JSON */
  const char *svg_path; /* --svg FILE */
  int timeline; /* --timeline: ASCII chart in the report */
  int binary; /* --binary: the script may be a precompiled chunk */
  int color; /* --color: CLI_COLOR_* */
  int sim_cores; /* --sim CORES (0: a real run) */
  uint64_t seed; /* --seed (default 1) */
  double sim_insn_ns; /* --sim-insn (0: the default) */
  int sim_cost_id[32]; /* --sim-cost NAME=DUR, in order: the cost's index in sim.c's table */
  uint64_t sim_cost_ns[32]; /* and its value */
  int nsim_costs;
  size_t arena_bytes; /* --arena SIZE, or GILVM_ARENA_MB (0: the default) */
  cli_list intervals; /* sweep: -s LIST (default 0.1ms,0.5ms,1ms,5ms,20ms,100ms) */
  uint64_t interval_list_ns[CLI_LIST_MAX];
  cli_list policies; /* sweep: -g LIST (default: cpython) */
  const char *fwd[48]; /* options a compare or sweep passes on to each run, in one spelling */
  int nfwd;
  const char *script; /* NULL with only -e; "-" is stdin */
  int script_index; /* its index in argv (arguments follow it) */
} cli_options;

/* Parse argv. Returns -1 to go on, or an exit status (help and version: 0; errors: 2). */
int cli_parse(int argc, char **argv, cli_options *o);

/* Colour on stderr: --color=always, or auto on a terminal without NO_COLOR (no-color.org) or TERM=dumb. */
int cli_want_color(const cli_options *o);

#endif
