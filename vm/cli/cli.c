/*
 * cli.c — parsing gilvm's command line with getopt_long, in POSIX order:
 * options come before the script; everything after the script belongs to
 * it, as with lua5.4. One table (cli_flags) gives the parser, what compare
 * and sweep pass on to each run, and --help, from which the man page is made.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "gil.h"
#include "sim.h"

#ifndef GILVM_VERSION
#define GILVM_VERSION "0.1.0" /* meson passes the project's version */
#endif
#ifndef GILVM_SCRIPTS_DIR
#define GILVM_SCRIPTS_DIR "/usr/local/share/gilvm/scripts" /* meson passes where it installs them */
#endif

/* Which commands keep an option to themselves rather than pass it on to each run. */
#define LOCAL_COMPARE 1
#define LOCAL_SWEEP 2

/* One row per option: the parser, what compare and sweep pass on, and --help come from it. */
typedef struct cli_flag {
  const char *shrt; /* "-m", or NULL */
  const char *lng; /* "--mode", or NULL */
  const char *arg; /* "MODE": it takes a value; NULL: it does not */
  int local; /* LOCAL_* */
  const char *help; /* --help's lines for it */
} cli_flag;

enum {
  F_MODE,
  F_SWITCH,
  F_GIL,
  F_CHECK,
  F_EXEC,
  F_QUIET,
  F_JSON,
  F_TIMELINE,
  F_TRACE,
  F_SVG,
  F_TIMEOUT,
  F_ARENA,
  F_SIM,
  F_SEED,
  F_SIM_INSN,
  F_SIM_COST,
  F_BINARY,
  F_COLOR,
  F_HELP,
  F_VERSION,
  F_COUNT
};

#define LOCAL_ALL (LOCAL_COMPARE | LOCAL_SWEEP)
static const cli_flag cli_flags[F_COUNT] = {
  [F_MODE] = { "-m", "--mode", "MODE", LOCAL_ALL,
               "gil: threads under one GIL (default); nogil:\n"
               "threads with an interpreter each, no shared GIL;\n"
               "fork: gil.spawn forks processes" },
  /* NULL help: made from the GIL's policy table (policy_help) */
  [F_SWITCH] = { "-s", "--switch-interval", "DUR", LOCAL_SWEEP, NULL },
  [F_GIL] = { "-g", "--gil", "POLICY", LOCAL_SWEEP, NULL },
  [F_CHECK] = { NULL, "--check-interval", "N", LOCAL_SWEEP, NULL },
  [F_EXEC] = { "-e", NULL, "CODE", 0,
               "run CODE before the script, like lua5.4 -e;\n"
               "several -e run in the order given" },
  [F_QUIET] = { "-q", "--quiet", NULL, LOCAL_ALL,
                "print no report (sweep: no table; compare\n"
                "prints its table anyway)" },
  [F_JSON] = { NULL, "--json", "FILE", LOCAL_ALL,
               "also write the figures as JSON (run, compare,\n"
               "sweep); - is stdout (see below)" },
  [F_TIMELINE] = { NULL, "--timeline", NULL, LOCAL_ALL,
                   "draw each thread's states over time after the\n"
                   "report (fitted to the terminal, or $COLUMNS, or\n"
                   "100 columns); run only" },
  [F_TRACE] = { NULL, "--trace", "FILE", LOCAL_ALL,
                "write the timeline as a Chrome trace: open it in\n"
                "ui.perfetto.dev or chrome://tracing; run only;\n"
                "- is stdout" },
  [F_SVG] = { NULL, "--svg", "FILE", LOCAL_ALL,
              "draw the timeline as an SVG picture (sweep: the\n"
              "figures against the switch interval); not for\n"
              "compare; - is stdout" },
  [F_TIMEOUT] = { NULL, "--timeout", "DUR", 0,
                  "stop every thread after DUR, report, exit 124\n"
                  "(compare, sweep: per run; the others still run)" },
  [F_ARENA] = { NULL, "--arena", "SIZE", 0,
                "address space for shared objects (lock, queue,\n"
                "value, pool): 64M (default), 1G; a bare number\n"
                "is MiB; 1M to 1024G. GILVM_ARENA_MB=N sets it too" },
  [F_SIM] = { NULL, "--sim", "CORES", 0,
              "simulate the run in virtual time on CORES\n"
              "virtual cores (1 to 4096): deterministic; every\n"
              "mode (fork: processes without real forks), every\n"
              "policy (README, \"Simulated runs\")" },
  [F_SEED] = { NULL, "--seed", "N", 0,
               "the seed of the simulated OS's choices among\n"
               "equals under --sim, and of math.random (default 1)" },
  [F_SIM_INSN] = { NULL, "--sim-insn", "NS", 0,
                   "virtual nanoseconds per Lua VM instruction\n"
                   "under --sim (default 1.5)" },
  [F_SIM_COST] = { NULL, "--sim-cost", "NAME=DUR", 0,
                   "set one OS cost of --sim's model (repeatable):\n"
                   "wake, switch, slice, signal, spawn, interp,\n"
                   "futex, hook, gap, spread, fork, copy, timer,\n"
                   "resume, handoff, woken, object, socket; the\n"
                   "report's header prints them all (README,\n"
                   "\"Simulated runs\")" },
  [F_BINARY] = { NULL, "--binary", NULL, 0,
                 "let the script be a precompiled chunk (luac\n"
                 "output); Lua does not check those, so only\n"
                 "trusted ones" },
  [F_COLOR] = { NULL, "--color", "WHEN", LOCAL_ALL,
                "auto (default): colour the report's key figures,\n"
                "the --timeline chart and compare's table when\n"
                "stderr is a terminal and NO_COLOR is unset;\n"
                "always; never" },
  [F_HELP] = { "-h", "--help", NULL, 0, "show this help and exit" },
  [F_VERSION] = { "-V", "--version", NULL, 0, "show the version and exit" },
};

/* "Usage:" and "  or:" lines, sections ending in ':' with indented lines: GNU's
   layout, which help2man turns into the man page (SYNOPSIS, OPTIONS, ...). */
static const char help_head[] =
    "Usage: gilvm [run] [options] script.lua [args...]\n"
    "  or:  gilvm [run] [options] -e CODE [script.lua [args...]]\n"
    "  or:  gilvm compare [options] script.lua [args...]\n"
    "  or:  gilvm sweep [-s LIST] [-g LIST] [options] script.lua [args...]\n"
    "  or:  gilvm dis [-g POLICY] [--binary] script.lua\n"
    "\n"
    "Runs a Lua 5.4 script whose gil.spawn() workers are real OS threads under a\n"
    "Global Interpreter Lock (or, with -m, threads with interpreters of their own,\n"
    "or forked processes), then reports on stderr what happened. The script's own\n"
    "output goes to stdout, untouched.\n"
    "\n"
    "Commands:\n"
    "  run      one run, as above (the default)\n"
    "  compare  runs the script once per mode (gil, nogil, fork), each in a fresh\n"
    "           process, and prints one table side by side; it says whether the\n"
    "           script's output was the same in every mode\n"
    "  sweep    runs the script once per switch interval in -s LIST (and per\n"
    "           policy in -g LIST), each in a fresh process, and prints one row\n"
    "           per run: wall time, switches per second, forced switches, handoff\n"
    "           latency, GIL wait and the script's own gil.report() figures.\n"
    "           Lists are comma-separated, like -s 0.5ms,1ms,5ms -g cpython,fifo\n"
    "           (default -s 0.1ms,0.5ms,1ms,5ms,20ms,100ms). Only the first run's\n"
    "           stdout is shown. --json FILE writes every run's figures; --svg\n"
    "           FILE plots each figure against the interval (log scale).\n"
    "  dis      lists each function's Lua 5.4 bytecode with its source lines and\n"
    "           marks where the eval breaker can hand the GIL to another thread:\n"
    "           >> always, ~ only on a slow path (a metamethod, a missing key, a\n"
    "           garbage-collection step); with -g legacy, anywhere. Runs nothing.\n"
    "\n"
    "Options:\n";

static const char help_tail[] =
    "\n"
    "Options come before the script: what follows the script is its own (its arg\n"
    "table), as with lua5.4, and -- ends the options. Short options bundle (-qs 1ms,\n"
    "-s1ms); a long option takes its value as --opt=VALUE or --opt VALUE and may be\n"
    "shortened while it stays unambiguous (--switch 1ms).\n"
    "\n"
    "Durations are a decimal number and a unit ns, us, ms or s: 500us, 0.5ms, 2s;\n"
    "a bare number is seconds.\n"
    "\n"
    "Output files (--json, --trace, --svg) are written whole or not at all: to a\n"
    "temporary file renamed into place once complete (devices, pipes and /dev/fd/N\n"
    "as they go). A FILE of - is stdout, for one of them at most (two are a usage\n"
    "error); the script's own output (its workers', its child processes', and the\n"
    "output compare and sweep show) then goes to stderr, so that stdout carries\n"
    "that file alone: gilvm --json - script.lua | jq .wall_s\n"
    "\n"
    "Exit status:\n"
    "  0    success\n"
    "  1    the script raised an error (in main, or in a worker nobody joined), or\n"
    "       stdout or a --json, --trace or --svg file could not be written\n"
    "  2    bad usage, or an output file that cannot be created (checked before\n"
    "       the script runs)\n"
    "  3    the script could not be loaded (missing file, syntax error, a\n"
    "       precompiled chunk without --binary)\n"
    "  4    deadlock: workers waited for each other (in a cycle, or all of\n"
    "       them), none with a timeout; who waits where for what is printed\n"
    "  124  --timeout expired (compare, sweep: in some run)\n"
    "  130  Ctrl-C\n"
    "  143  SIGTERM\n"
    "\n"
    "Environment:\n"
    "  GILVM_ARENA_MB       the arena's size in MiB (1 to 1048576) when --arena is\n"
    "                       not given; empty means unset\n"
    "  COLUMNS              --timeline's width when stderr is not a terminal\n"
    "  NO_COLOR             set and not empty: no colour unless --color=always\n"
    "  GILVM_BREAKER_STATS  1: print at exit how often the eval breaker was armed\n"
    "  GILVM_LOSE_SIGNALS   N: a test knob: the eval breaker ignores its first N\n"
    "                       signals, as if lost (a lost drop request must be\n"
    "                       sent again)\n"
    "  GILVM_EVENTS_MAX     N (16 and up): a test knob: keep at most N timeline\n"
    "                       events per worker (the rest are counted, dropped)\n"
    "\n"
    "Files:\n"
    "  " GILVM_SCRIPTS_DIR
    "\n"
    "                       the gallery scripts (cpu_bound.lua, io_bound.lua,\n"
    "                       convoy.lua, race.lua, ...), as meson install puts them\n";

#define HELP_WIDTH 48 /* the description column's width */

/* "5ms", as -s takes it. */
static const char *dur_flag(uint64_t ns, char *buf, size_t len) {
  static const struct {
    uint64_t ns;
    const char *unit;
  } u[] = { { 1000000000u, "s" }, { 1000000u, "ms" }, { 1000u, "us" }, { 1, "ns" } };
  int i = 0;
  while (ns % u[i].ns) i++;
  snprintf(buf, len, "%llu%s", (unsigned long long)(ns / u[i].ns), u[i].unit);
  return buf;
}

static void append(char *buf, size_t len, const char *s) {
  size_t n = strlen(buf);
  snprintf(buf + n, len - n, "%s", s);
}

/* "cpython, legacy or fifo": the policies `pick` accepts (NULL: all). */
static const char *policy_list(int (*pick)(const gil_policy_info *), char *buf, size_t len) {
  int n = 0, k = 0;
  for (int i = 0; gil_policy_at(i); i++) n += !pick || pick(gil_policy_at(i));
  buf[0] = '\0';
  for (int i = 0; gil_policy_at(i); i++) {
    if (pick && !pick(gil_policy_at(i))) continue;
    if (k++) append(buf, len, k == n ? " or " : ", ");
    append(buf, len, gil_policy_at(i)->name);
  }
  return buf;
}

static int has_check_interval(const gil_policy_info *p) { return p->default_check_interval > 0; }

/* --help's text for -s, -g and --check-interval, from the policies' own descriptions. */
static void policy_help(int flag, char *buf, size_t len) {
  const gil_policy_info *first = gil_policy_at(0);
  char d[32];
  buf[0] = '\0';
  if (flag == F_SWITCH) {
    append(buf, len, "how long a waiter waits before it asks the holder to drop the GIL (default ");
    append(buf, len, dur_flag(first->default_interval_ns, d, sizeof d));
    for (int i = 1; gil_policy_at(i); i++) {
      const gil_policy_info *p = gil_policy_at(i);
      if (!p->interval_is ||
          (first->interval_is && strcmp(p->interval_is, first->interval_is) == 0 &&
           p->default_interval_ns == first->default_interval_ns))
        continue;
      snprintf(buf + strlen(buf), len - strlen(buf), "; %s: its %s, default %s", p->name, p->interval_is,
               dur_flag(p->default_interval_ns, d, sizeof d));
    }
    append(buf, len, "); sweep: a list");
  } else if (flag == F_GIL) {
    for (int i = 0; gil_policy_at(i); i++)
      snprintf(buf + strlen(buf), len - strlen(buf), "%s%s (%s%s)", i ? ", " : "", gil_policy_at(i)->name,
               i ? "" : "default: ", gil_policy_at(i)->about);
    append(buf, len, "; sweep: a list");
  } else {
    for (int i = 0, k = 0; gil_policy_at(i); i++)
      if (has_check_interval(gil_policy_at(i)))
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s: how many instructions between releases (default %d)",
                 k++ ? "; " : "", gil_policy_at(i)->name, gil_policy_at(i)->default_check_interval);
  }
  /* wrap at HELP_WIDTH, at spaces */
  for (char *line = buf, *sp = NULL, *p = buf; *p; p++) {
    if (*p == ' ') sp = p;
    if (p - line >= HELP_WIDTH && sp) {
      *sp = '\n';
      line = sp + 1;
      sp = NULL;
    }
  }
}

/* "  -m, --mode MODE" padded to the description column, then the lines of help. */
static void print_flag(FILE *f, const cli_flag *fl) {
  char made[512];
  const char *help = fl->help;
  if (!help) {
    policy_help((int)(fl - cli_flags), made, sizeof made);
    help = made;
  }
  char head[64];
  snprintf(head, sizeof head, "  %s%s%s%s%s", fl->shrt ? fl->shrt : "    ", fl->shrt && fl->lng ? ", " : "",
           fl->lng ? fl->lng : "", fl->arg ? " " : "", fl->arg ? fl->arg : "");
  fprintf(f, "%-29s", head);
  for (const char *p = help; *p; p++) {
    fputc(*p, f);
    if (*p == '\n') fprintf(f, "%29s", "");
  }
  fputc('\n', f);
}

static void print_help(FILE *f) {
  fputs(help_head, f);
  for (int i = 0; i < F_COUNT; i++) print_flag(f, &cli_flags[i]);
  fputs(help_tail, f);
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "gilvm: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'gilvm --help' for more information.\n");
  return EXIT_USAGE;
}

static int unknown_policy(const char *p) {
  char list[256], msg[512];
  snprintf(msg, sizeof msg, "unknown GIL policy '%.100s' (expected %s)", p, policy_list(NULL, list, sizeof list));
  return usage_error("%s", msg);
}

static int check_interval_error(int sweep) {
  char list[256], msg[640];
  policy_list(has_check_interval, list, sizeof list);
  snprintf(msg, sizeof msg, "--check-interval applies to the %s policy only (%s%s%s)", list, sweep ? "add " : "use -g ",
           list, sweep ? " to -g" : "");
  return usage_error("%s", msg);
}

static int is_sweep(const cli_options *o) { return strcmp(o->command, "sweep") == 0; }

static int bad_list(const char *what, const char *list, const char *why) {
  char msg[256];
  snprintf(msg, sizeof msg, "bad %s list '%.120s': %s", what, list, why);
  return usage_error("%s", msg);
}

/* Split a comma list into l; 0, or a usage error naming `what`. */
static int split_list(const char *v, cli_list *l, const char *what) {
  l->n = 0;
  for (const char *p = v;; p++) {
    size_t len = strcspn(p, ",");
    if (len == 0) return bad_list(what, v, "an empty item (items are separated by single commas)");
    if (len >= sizeof l->item[0]) return bad_list(what, v, "an item is too long");
    if (l->n == CLI_LIST_MAX) return bad_list(what, v, "too many items (at most 16)");
    memcpy(l->item[l->n], p, len);
    l->item[l->n++][len] = '\0';
    p += len;
    if (!*p) return 0;
  }
}

/* -s: one duration; for sweep a comma list of them (o->intervals). */
static int parse_intervals(const char *v, cli_options *o) {
  if (!is_sweep(o) && strchr(v, ',')) return usage_error("a list of switch intervals ('%s') is for 'gilvm sweep'", v);
  if (!is_sweep(o)) {
    if (clock_parse_duration(v, &o->interval_ns) != 0 || o->interval_ns == 0)
      return usage_error("bad switch interval '%s' (expected a duration > 0 like 500us, 5ms, 1s)", v);
    return 0;
  }
  int err = split_list(v, &o->intervals, "switch interval");
  if (err) return err;
  for (int k = 0; k < o->intervals.n; k++) {
    const char *item = o->intervals.item[k];
    if (clock_parse_duration(item, &o->interval_list_ns[k]) != 0 || o->interval_list_ns[k] == 0)
      return usage_error("bad switch interval '%s' (expected a duration > 0 like 500us, 5ms, 1s)", item);
  }
  o->interval_ns = o->interval_list_ns[0];
  return 0;
}

/* -g: one policy; for sweep a comma list of them (o->policies). */
static int parse_policies(const char *v, cli_options *o) {
  if (!is_sweep(o) && strchr(v, ',')) return usage_error("a list of GIL policies ('%s') is for 'gilvm sweep'", v);
  if (!is_sweep(o)) {
    if (!gil_policy_find(v)) return unknown_policy(v);
    o->policy = v;
    return 0;
  }
  int err = split_list(v, &o->policies, "GIL policy");
  if (err) return err;
  for (int k = 0; k < o->policies.n; k++)
    if (!gil_policy_find(o->policies.item[k])) return unknown_policy(o->policies.item[k]);
  o->policy = gil_policy_find(o->policies.item[0])->name; /* a pointer that outlives the list */
  return 0;
}

#define CLI_ARENA_MAX_MB (1L << 20) /* 1 TiB of address space */

/* "64", "64M", "1G" (a bare number is MiB; units only if allowed): bytes, or 0 if malformed. */
static size_t parse_arena(const char *v, int units) {
  size_t digits = strspn(v, "0123456789");
  if (digits == 0 || digits > 7) return 0;
  long mb = strtol(v, NULL, 10);
  const char *unit = v + digits;
  if (units && (strcmp(unit, "G") == 0 || strcmp(unit, "g") == 0))
    mb *= 1024;
  else if (*unit && !(units && (strcmp(unit, "M") == 0 || strcmp(unit, "m") == 0)))
    return 0;
  if (mb < 1 || mb > CLI_ARENA_MAX_MB) return 0;
  return (size_t)mb << 20;
}

/* The option's name as written: "--switch-interval" when given long, else "-s". */
static const char *flag_name(const cli_flag *fl, int as_long) {
  return (as_long && fl->lng) || !fl->shrt ? fl->lng : fl->shrt;
}

/* Apply one option's value. Returns -1 to go on, or an exit status. */
static int set_option(int f, const char *v, cli_options *o) {
  switch (f) {
  case F_HELP: {
    /* held whole until exit, so a failed write is seen, cause and all, by outfile_finish_stdout */
    static char held[1 << 16];
    setvbuf(stdout, held, _IOFBF, sizeof held);
    print_help(stdout);
    return 0;
  }
  case F_VERSION: printf("gilvm %s (Lua 5.4)\n", GILVM_VERSION); return 0;
  case F_QUIET: o->quiet = 1; break;
  case F_JSON: o->json_path = v; break;
  case F_TRACE: o->trace_path = v; break;
  case F_SVG: o->svg_path = v; break;
  case F_TIMELINE: o->timeline = 1; break;
  case F_BINARY: o->binary = 1; break;
  case F_COLOR:
    if (strcmp(v, "auto") == 0)
      o->color = CLI_COLOR_AUTO;
    else if (strcmp(v, "always") == 0)
      o->color = CLI_COLOR_ALWAYS;
    else if (strcmp(v, "never") == 0)
      o->color = CLI_COLOR_NEVER;
    else
      return usage_error("bad --color '%s' (expected auto, always or never)", v);
    break;
  case F_MODE: {
    int m = rt_mode_parse(v);
    if (m < 0) return usage_error("unknown mode '%s' (expected gil, nogil or fork)", v);
    o->mode = (rt_mode)m;
    break;
  }
  case F_SWITCH: return parse_intervals(v, o) ? EXIT_USAGE : -1;
  case F_GIL: return parse_policies(v, o) ? EXIT_USAGE : -1;
  case F_CHECK: {
    long n = strtol(v, NULL, 10);
    if (v[strspn(v, "0123456789")] || n <= 0 || n > 1000000000)
      return usage_error("bad check interval '%s' (expected a positive integer)", v);
    o->check_interval = (int)n;
    break;
  }
  case F_TIMEOUT:
    if (clock_parse_duration(v, &o->timeout_ns) != 0 || o->timeout_ns == 0)
      return usage_error("bad timeout '%s' (expected a duration > 0 like 30s)", v);
    break;
  case F_ARENA:
    if (!(o->arena_bytes = parse_arena(v, 1)))
      return usage_error("bad arena size '%s' (expected 1M to 1024G, like 64M or 1G; a bare number is MiB)", v);
    break;
  case F_SIM: {
    long n = strtol(v, NULL, 10);
    if (v[strspn(v, "0123456789")] || n <= 0 || n > 4096)
      return usage_error("bad --sim '%s' (expected a number of virtual cores, 1 to 4096)", v);
    o->sim_cores = (int)n;
    break;
  }
  case F_SEED: {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-') return usage_error("bad --seed '%s' (expected a non-negative integer)", v);
    o->seed = (uint64_t)n;
    break;
  }
  case F_SIM_INSN: {
    char *end;
    double ns = strtod(v, &end);
    if (end == v || *end || !(ns >= 0.01 && ns <= 1e6) || !strchr("0123456789", v[0]))
      return usage_error("bad --sim-insn '%s' (expected nanoseconds from 0.01 to 1000000, like 1.5)", v);
    o->sim_insn_ns = ns;
    break;
  }
  case F_SIM_COST: {
    const char *eq = strchr(v, '=');
    int id = eq ? sim_cost_find(v, (size_t)(eq - v)) : -1;
    uint64_t ns = 0;
    if (id < 0) {
      char names[256] = "";
      for (int i = 0; i < sim_cost_count(); i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", sim_cost_name(i));
      fprintf(stderr, "gilvm: unknown --sim-cost '%s' (expected NAME=DURATION; names: %s)\n", v, names);
      fprintf(stderr, "Try 'gilvm --help' for more information.\n");
      return EXIT_USAGE;
    }
    if (clock_parse_duration(eq + 1, &ns) != 0 || ns > 1000000000000ull)
      return usage_error("bad --sim-cost '%s' (expected NAME=DURATION, like switch=3us or slice=4ms)", v);
    if (o->nsim_costs == (int)(sizeof o->sim_cost_ns / sizeof o->sim_cost_ns[0]))
      return usage_error("too many --sim-cost options%s", "");
    o->sim_cost_id[o->nsim_costs] = id;
    o->sim_cost_ns[o->nsim_costs++] = ns;
    break;
  }
  case F_EXEC:
    if (o->nexec == (int)(sizeof o->exec / sizeof o->exec[0])) return usage_error("too many -e options%s", "");
    o->exec[o->nexec++] = v;
    break;
  }
  return -1;
}

/* What compare and sweep pass on to every run: the option in one spelling, and its value. */
static int forward(const cli_flag *fl, const char *v, cli_options *o) {
  int keep = is_sweep(o) ? LOCAL_SWEEP : LOCAL_COMPARE;
  if (strcmp(o->command, "run") == 0 || (fl->local & keep)) return -1;
  if (o->nfwd + 2 > (int)(sizeof o->fwd / sizeof o->fwd[0])) return usage_error("too many options%s", "");
  o->fwd[o->nfwd++] = flag_name(fl, 1);
  if (fl->arg) o->fwd[o->nfwd++] = v;
  return -1;
}

/* The row of getopt_long's value: the short letter, or 256 + the row for a long-only option; -1 if none. */
static int flag_of(int c) {
  for (int i = 0; i < F_COUNT; i++)
    if ((cli_flags[i].shrt && c == cli_flags[i].shrt[1]) || c == 256 + i) return i;
  return -1;
}

/* getopt_long's '?' or ':' for the element arg: say what was wrong, as the user wrote it. */
static int option_error(int c, const char *arg) {
  int as_long = strncmp(arg, "--", 2) == 0;
  int f = optopt ? flag_of(optopt) : -1; /* optopt: 0 for an unknown long option */
  const cli_flag *fl = f >= 0 ? &cli_flags[f] : NULL;
  if (c == ':') return usage_error("option '%s' needs a value", flag_name(fl, as_long));
  if (fl && as_long) return usage_error("option '%s' takes no value", fl->lng);
  if (!as_long) {
    char s[3] = { '-', (char)optopt, '\0' };
    return usage_error("unknown option '%s'", s);
  }
  char name[64]; /* --name, without any =value */
  snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
  char could[160] = "";
  int n = 0;
  for (int i = 0; i < F_COUNT; i++) {
    if (!cli_flags[i].lng || strncmp(cli_flags[i].lng, name, strlen(name)) != 0) continue;
    size_t len = strlen(could);
    snprintf(could + len, sizeof could - len, "%s%s", n++ ? ", " : "", cli_flags[i].lng);
  }
  if (n < 2) return usage_error("unknown option '%s'", name);
  char msg[256];
  snprintf(msg, sizeof msg, "ambiguous option '%s' (could be %s)", name, could);
  return usage_error("%s", msg);
}

/* Options, in POSIX order: getopt_long stops at the first argument that is not one
   (the script), so the script's own arguments are never read as gilvm's. */
static int parse_options(int argc, char **argv, cli_options *o) {
  struct option longs[F_COUNT + 1];
  char shorts[2 * F_COUNT + 3] = "+:"; /* +: stop at the script; ':' a missing value */
  int nl = 0;
  for (int i = 0; i < F_COUNT; i++) {
    const cli_flag *fl = &cli_flags[i];
    int val = fl->shrt ? fl->shrt[1] : 256 + i;
    if (fl->lng) longs[nl++] = (struct option){ fl->lng + 2, fl->arg ? required_argument : no_argument, NULL, val };
    if (!fl->shrt) continue;
    size_t n = strlen(shorts);
    shorts[n++] = fl->shrt[1];
    if (fl->arg) shorts[n++] = ':'; /* it takes a value */
    shorts[n] = '\0';
  }
  longs[nl] = (struct option){ 0 };
  opterr = 0; /* our own messages */
  optind = 0; /* glibc: start afresh */
  for (;;) {
    int at = optind ? optind : 1; /* the element getopt reads now (a bundle stays at its element) */
    int c = getopt_long(argc, argv, shorts, longs, NULL);
    if (c == -1) return -1;
    if (c == '?' || c == ':') return option_error(c, argv[at]);
    int f = flag_of(c);
    int rc = set_option(f, optarg, o);
    if (rc < 0) rc = forward(&cli_flags[f], optarg, o);
    if (rc >= 0) return rc;
  }
}

/* A sweep: a script, lists filled in, nothing that belongs to a single run. */
static int check_sweep(cli_options *o) {
  if (!o->script) return usage_error("sweep needs a script file%s", "");
  if (o->trace_path || o->timeline)
    return usage_error("%s draws one run: use it with 'gilvm run', not sweep",
                       o->trace_path ? "--trace" : "--timeline");
  if (o->intervals.n == 0) parse_intervals("0.1ms,0.5ms,1ms,5ms,20ms,100ms", o);
  if (o->policies.n == 0) parse_policies(o->policy, o);
  int counted = 0;
  for (int k = 0; k < o->policies.n; k++) counted |= has_check_interval(gil_policy_find(o->policies.item[k]));
  if (o->check_interval && !counted) return check_interval_error(1);
  return -1;
}

/* At most one output on stdout ('-'): two files on one stream could not be told apart. */
static int stdout_clash(const cli_options *o) {
  const char *opts[] = { "--json", "--trace", "--svg" }, *paths[] = { o->json_path, o->trace_path, o->svg_path };
  const char *first = NULL;
  for (int i = 0; i < 3; i++) {
    if (!paths[i] || strcmp(paths[i], "-") != 0) continue;
    if (!first) {
      first = opts[i];
      continue;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%s - and %s - both ask for stdout; one output at most can be '-'", first, opts[i]);
    return usage_error("%s", msg);
  }
  return -1;
}

static int parse_and_check(int argc, char **argv, cli_options *o);

int cli_parse(int argc, char **argv, cli_options *o) {
  int rc = parse_and_check(argc, argv, o);
  return rc >= 0 ? rc : stdout_clash(o);
}

static int parse_and_check(int argc, char **argv, cli_options *o) {
  memset(o, 0, sizeof *o);
  o->command = "run";
  o->mode = RT_MODE_GIL;
  o->seed = 1;
  o->policy = gil_policy_at(0)->name;
  int shift = argc > 1 &&
      (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "compare") == 0 || strcmp(argv[1], "sweep") == 0 ||
       strcmp(argv[1], "dis") == 0);
  if (shift) o->command = argv[1];
  int rc = parse_options(argc - shift, argv + shift, o); /* the command stands in for argv[0] */
  if (rc >= 0) return rc;
  int i = optind + shift;
  const char *mb = getenv("GILVM_ARENA_MB"); /* empty: unset; --arena wins */
  if (!o->arena_bytes && mb && *mb && !(o->arena_bytes = parse_arena(mb, 0)))
    return usage_error("bad GILVM_ARENA_MB '%s' (expected a whole number of MiB from 1 to 1048576)", mb);
  if (i < argc) {
    o->script = argv[i];
    o->script_index = i;
  } else if (o->nexec == 0) {
    return usage_error("no script given%s", "");
  } else {
    o->script_index = 0; /* like lua5.4 -e: arg[0] is the program, the options follow */
  }
  if (strcmp(o->command, "compare") == 0 && !o->script) return usage_error("compare needs a script file%s", "");
  if (strcmp(o->command, "compare") == 0 && o->mode != RT_MODE_GIL)
    return usage_error("compare runs every mode: drop -m %s", rt_mode_names[o->mode]);
  if (strcmp(o->command, "compare") == 0 && (o->trace_path || o->svg_path || o->timeline))
    return usage_error("%s draws one run: use it with 'gilvm run', not compare",
                       o->trace_path     ? "--trace"
                           : o->svg_path ? "--svg"
                                         : "--timeline");
  if (is_sweep(o)) return check_sweep(o);
  if (strcmp(o->command, "dis") == 0 && !o->script) return usage_error("dis needs a script file%s", "");
  if (o->check_interval && !has_check_interval(gil_policy_find(o->policy))) return check_interval_error(0);
  return -1;
}

int cli_want_color(const cli_options *o) {
  if (o->color != CLI_COLOR_AUTO) return o->color == CLI_COLOR_ALWAYS;
  const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
  if ((no && *no) || (term && strcmp(term, "dumb") == 0)) return 0;
  return isatty(STDERR_FILENO);
}
