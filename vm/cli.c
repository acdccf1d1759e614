/*
 * cli.c — parsing gilvm's command line. Options come before the script;
 * everything after the script belongs to it, as with lua5.4.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gil.h"

#define GILVM_VERSION "0.1.0"

static const char usage_text[] =
  "usage: gilvm [run] [options] script.lua [args...]\n"
  "       gilvm [run] [options] -e CODE [script.lua [args...]]\n"
  "       gilvm compare [options] script.lua [args...]\n"
  "       gilvm sweep [-s LIST] [-g LIST] [options] script.lua [args...]\n"
  "\n"
  "run: runs a Lua 5.4 script whose gil.spawn() workers are real OS threads\n"
  "under a Global Interpreter Lock (or, with -m, threads with interpreters of\n"
  "their own, or forked processes), then reports on stderr what happened. The\n"
  "script's own output goes to stdout, untouched.\n"
  "compare: runs the script once per mode (gil, nogil, fork), each in a fresh\n"
  "process, and prints one table side by side; it says whether the script's\n"
  "output was the same in every mode.\n"
  "sweep: runs the script once per switch interval in -s LIST (and per policy\n"
  "in -g LIST), each in a fresh process, and prints one row per run: wall time,\n"
  "switches per second, forced switches, handoff latency, GIL wait and the\n"
  "script's own gil.report() figures. Lists are comma-separated, like\n"
  "-s 0.5ms,1ms,5ms -g cpython,fifo (default -s 0.1ms,0.5ms,1ms,5ms,20ms,100ms).\n"
  "Only the first run's stdout is shown. --json FILE writes every run's figures;\n"
  "--svg FILE plots each figure against the interval (log scale).\n"
  "\n"
  "options:\n"
  "  -m, --mode MODE            gil: threads under one GIL (default); nogil: threads\n"
  "                             with an interpreter each, no shared GIL; fork:\n"
  "                             gil.spawn forks processes\n"
  "  -s, --switch-interval DUR  how long a waiter waits before it asks the holder\n"
  "                             to drop the GIL (default 5ms; fifo: its quantum,\n"
  "                             default 100ms)\n"
  "  -g, --gil POLICY           cpython (default: CPython 3.2+), legacy (CPython 2:\n"
  "                             release every N instructions), fifo (fair, Ruby-like)\n"
  "      --check-interval N     legacy: instructions between releases (default 100)\n"
  "  -e CODE                    run CODE before the script, like lua5.4 -e\n"
  "  -q, --quiet                print no report (sweep: no table)\n"
  "      --json FILE            also write the figures as JSON (run, compare, sweep)\n"
  "      --timeline             draw each thread's states over time after the report\n"
  "                             (fitted to the terminal, or $COLUMNS, or 100 columns)\n"
  "      --trace FILE           write the timeline as a Chrome trace: open it in\n"
  "                             ui.perfetto.dev or chrome://tracing\n"
  "      --svg FILE             draw the timeline as an SVG picture (sweep: the\n"
  "                             figures against the switch interval)\n"
  "      --timeout DUR          stop every thread after DUR, report, exit 124\n"
  "      --arena SIZE           address space for shared objects (lock, queue,\n"
  "                             value, pool): 64M (default), 1G; a bare number is\n"
  "                             MiB; 1M to 1024G. GILVM_ARENA_MB=N sets it too\n"
  "      --binary               let the script be a precompiled chunk (luac output);\n"
  "                             Lua does not check those, so only trusted ones\n"
  "  -h, --help                 show this help\n"
  "  -V, --version              show the version\n"
  "\n"
  "Durations are a decimal number and a unit ns, us, ms or s: 500us, 0.5ms, 2s;\n"
  "a bare number is seconds.\n"
  "Exit status: 0 success, 1 the script raised an error (in main or in a thread\n"
  "that was never joined), 2 bad usage, 3 the script could not be loaded\n"
  "(missing file, syntax error, a precompiled chunk without --binary),\n"
  "124 timeout, 130 Ctrl-C, 143 SIGTERM.\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "gilvm: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'gilvm --help' for more information.\n");
  return EXIT_USAGE;
}

/* Matches "-s", "--switch-interval" and "--switch-interval=X"; finds the value. */
static int match(int argc, char **argv, int *i, const char *sh, const char *lng, const char **val,
                 int *err) {
  const char *a = argv[*i];
  size_t n = strlen(lng);
  if (strcmp(a, sh) == 0 || strcmp(a, lng) == 0) {
    if (!val) return 1;
    if (*i + 1 >= argc) {
      *err = usage_error("option '%s' needs a value", a);
      return 1;
    }
    *val = argv[++*i];
    return 1;
  }
  if (val && strncmp(a, lng, n) == 0 && a[n] == '=') {
    *val = a + n + 1;
    return 1;
  }
  if (val && sh[0] && strncmp(a, sh, 2) == 0 && a[2] && sh[2] == '\0' && a[1] != '-') {
    *val = a + 2;  /* -s1ms */
    return 1;
  }
  return 0;
}

static int known_policy(const char *p) {
  for (int i = 0; gil_policy_names[i]; i++)
    if (strcmp(gil_policy_names[i], p) == 0) return 1;
  return 0;
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
  if (!is_sweep(o) && strchr(v, ','))
    return usage_error("a list of switch intervals ('%s') is for 'gilvm sweep'", v);
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
  if (!is_sweep(o) && strchr(v, ','))
    return usage_error("a list of GIL policies ('%s') is for 'gilvm sweep'", v);
  if (!is_sweep(o)) {
    if (!known_policy(v)) return usage_error("unknown GIL policy '%s' (expected cpython, legacy or fifo)", v);
    o->policy = v;
    return 0;
  }
  int err = split_list(v, &o->policies, "GIL policy");
  if (err) return err;
  for (int k = 0; k < o->policies.n; k++)
    if (!known_policy(o->policies.item[k]))
      return usage_error("unknown GIL policy '%s' (expected cpython, legacy or fifo)", o->policies.item[k]);
  for (int k = 0; gil_policy_names[k]; k++)  /* a pointer that outlives the list */
    if (strcmp(gil_policy_names[k], o->policies.item[0]) == 0) o->policy = gil_policy_names[k];
  return 0;
}

#define CLI_ARENA_MAX_MB (1L << 20)  /* 1 TiB of address space */

/* "64", "64M", "1G" (a bare number is MiB; units only if allowed): bytes, or 0 if malformed. */
static size_t parse_arena(const char *v, int units) {
  size_t digits = strspn(v, "0123456789");
  if (digits == 0 || digits > 7) return 0;
  long mb = strtol(v, NULL, 10);
  const char *unit = v + digits;
  if (units && (strcmp(unit, "G") == 0 || strcmp(unit, "g") == 0)) mb *= 1024;
  else if (*unit && !(units && (strcmp(unit, "M") == 0 || strcmp(unit, "m") == 0))) return 0;
  if (mb < 1 || mb > CLI_ARENA_MAX_MB) return 0;
  return (size_t)mb << 20;
}

/* Options a compare or sweep does not pass on as given: its own, or set per run. */
static int local_option(const cli_options *o, const char *a) {
  static const char *const always[] = { "-q", "--quiet", "--json", "--trace", "--svg", "--timeline", NULL };
  static const char *const compare[] = { "-m", "--mode", NULL };
  static const char *const sweep[] = { "-s", "--switch-interval", "-g", "--gil", "--check-interval", "-m", "--mode", NULL };
  const char *const *lists[] = { always, is_sweep(o) ? sweep : compare };
  for (int l = 0; l < 2; l++)
    for (int k = 0; lists[l][k]; k++)
      if (strncmp(a, lists[l][k], strlen(lists[l][k])) == 0) return 1;
  return 0;
}

static int set_option(int argc, char **argv, int *i, cli_options *o) {
  const char *v = NULL;
  int err = 0;
  if (match(argc, argv, i, "-h", "--help", NULL, &err)) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (match(argc, argv, i, "-V", "--version", NULL, &err)) {
    printf("gilvm %s (Lua 5.4)\n", GILVM_VERSION);
    return 0;
  }
  int first = *i;
  if (match(argc, argv, i, "-q", "--quiet", NULL, &err)) o->quiet = 1;
  else if (match(argc, argv, i, "", "--json", &v, &err)) {
    if (err) return err;
    o->json_path = v;
  } else if (match(argc, argv, i, "", "--trace", &v, &err)) {
    if (err) return err;
    o->trace_path = v;
  } else if (match(argc, argv, i, "", "--svg", &v, &err)) {
    if (err) return err;
    o->svg_path = v;
  } else if (match(argc, argv, i, "", "--timeline", NULL, &err)) {
    o->timeline = 1;
  } else if (match(argc, argv, i, "-m", "--mode", &v, &err)) {
    if (err) return err;
    if (strcmp(v, "gil") != 0 && strcmp(v, "nogil") != 0 && strcmp(v, "fork") != 0)
      return usage_error("unknown mode '%s' (expected gil, nogil or fork)", v);
    o->mode = v;
  } else if (match(argc, argv, i, "-s", "--switch-interval", &v, &err)) {
    if (err) return err;
    if ((err = parse_intervals(v, o)) != 0) return err;
  } else if (match(argc, argv, i, "-g", "--gil", &v, &err)) {
    if (err) return err;
    if ((err = parse_policies(v, o)) != 0) return err;
  } else if (match(argc, argv, i, "", "--check-interval", &v, &err)) {
    if (err) return err;
    long n = strtol(v, NULL, 10);
    if (v[strspn(v, "0123456789")] || n <= 0 || n > 1000000000) return usage_error("bad check interval '%s' (expected a positive integer)", v);
    o->check_interval = (int)n;
  } else if (match(argc, argv, i, "", "--timeout", &v, &err)) {
    if (err) return err;
    if (clock_parse_duration(v, &o->timeout_ns) != 0 || o->timeout_ns == 0)
      return usage_error("bad timeout '%s' (expected a duration > 0 like 30s)", v);
  } else if (match(argc, argv, i, "", "--arena", &v, &err)) {
    if (err) return err;
    if (!(o->arena_bytes = parse_arena(v, 1)))
      return usage_error("bad arena size '%s' (expected 1M to 1024G, like 64M or 1G; a bare number is MiB)", v);
  } else if (match(argc, argv, i, "", "--binary", NULL, &err)) {
    o->binary = 1;
  } else if (match(argc, argv, i, "-e", "-e", &v, &err)) {
    if (err) return err;
    if (o->nexec == (int)(sizeof o->exec / sizeof o->exec[0])) return usage_error("too many -e options%s", "");
    o->exec[o->nexec++] = v;
  } else {
    return usage_error("unknown option '%s'", argv[*i]);
  }
  /* what compare and sweep pass on to every run */
  int local = local_option(o, argv[first]);
  for (int k = first; !local && k <= *i; k++) {
    if (o->nfwd == (int)(sizeof o->fwd / sizeof o->fwd[0])) return usage_error("too many options%s", "");
    o->fwd[o->nfwd++] = argv[k];
  }
  return -1;
}

/* A sweep: a script, lists filled in, nothing that belongs to a single run. */
static int check_sweep(cli_options *o) {
  if (!o->script) return usage_error("sweep needs a script file%s", "");
  if (o->trace_path || o->timeline)
    return usage_error("%s draws one run: use it with 'gilvm run', not sweep", o->trace_path ? "--trace" : "--timeline");
  if (o->intervals.n == 0) parse_intervals("0.1ms,0.5ms,1ms,5ms,20ms,100ms", o);
  if (o->policies.n == 0) parse_policies(o->policy, o);
  int legacy = 0;
  for (int k = 0; k < o->policies.n; k++) legacy |= strcmp(o->policies.item[k], "legacy") == 0;
  if (o->check_interval && !legacy)
    return usage_error("--check-interval applies to the legacy policy only (add legacy to -g)%s", "");
  return -1;
}

int cli_parse(int argc, char **argv, cli_options *o) {
  memset(o, 0, sizeof *o);
  o->command = "run";
  o->mode = "gil";
  o->policy = "cpython";
  int i = 1;
  if (i < argc && (strcmp(argv[i], "run") == 0 || strcmp(argv[i], "compare") == 0 || strcmp(argv[i], "sweep") == 0))
    o->command = argv[i++];
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || strcmp(a, "-") == 0) break;
    int r = set_option(argc, argv, &i, o);
    if (r >= 0) return r;
  }
  const char *mb = getenv("GILVM_ARENA_MB");  /* empty: unset; --arena wins */
  if (!o->arena_bytes && mb && *mb && !(o->arena_bytes = parse_arena(mb, 0)))
    return usage_error("bad GILVM_ARENA_MB '%s' (expected a whole number of MiB from 1 to 1048576)", mb);
  if (i < argc) {
    o->script = argv[i];
    o->script_index = i;
  } else if (o->nexec == 0) {
    return usage_error("no script given%s", "");
  } else {
    o->script_index = 0;  /* like lua5.4 -e: arg[0] is the program, the options follow */
  }
  if (strcmp(o->command, "compare") == 0 && !o->script)
    return usage_error("compare needs a script file%s", "");
  if (strcmp(o->command, "compare") == 0 && strcmp(o->mode, "gil") != 0)
    return usage_error("compare runs every mode: drop -m %s", o->mode);
  if (is_sweep(o)) return check_sweep(o);
  if (o->check_interval && strcmp(o->policy, "legacy") != 0)
    return usage_error("--check-interval applies to the legacy policy only (use -g legacy)%s", "");
  return -1;
}
