/*
 * main.c — gilvm's entry point: parse the command line, run the script as
 * thread "main" holding the GIL, wait for the workers, report.
 *
 * A watchdog thread owns the process's signals (SIGINT and SIGTERM are
 * blocked everywhere else) and the --timeout clock. It asks the runtime to
 * stop; if the threads have not stopped 3 s later it exits on its own, so
 * gilvm never hangs on a script that swallows the stop error.
 */
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "child.h"
#include "cli.h"
#include "compare.h"
#include "dis.h"
#include "clock.h"
#include "gilmod.h"
#include "objects.h"
#include "outfile.h"
#include "report.h"
#include "runtime.h"
#include "sweep.h"
#include "timeline.h"

#define GRACE_NS 3000000000ull
#define WATCHDOG_QUIT SIGUSR2

typedef struct watchdog {
  pthread_t tid;
  runtime *rt;
  uint64_t timeout_ns;
  atomic_int finished;
} watchdog;

static void signal_set(sigset_t *s) {
  sigemptyset(s);
  sigaddset(s, SIGINT);
  sigaddset(s, SIGTERM);
  sigaddset(s, WATCHDOG_QUIT);
}

static void *watchdog_main(void *arg) {
  watchdog *wd = arg;
  runtime *rt = wd->rt;
  rt_thread_started(rt);
  sigset_t set;
  signal_set(&set);
  uint64_t give_up = 0, began = sim_on() ? clock_real_ns() : rt->start_ns; /* real time, under --sim too */
  while (!atomic_load(&wd->finished)) {
    struct timespec slice = { 0, 100000000 }; /* 100 ms: check the clocks */
    int sig = sigtimedwait(&set, NULL, &slice);
    uint64_t now = clock_real_ns();
    if (sig == SIGINT || sig == SIGTERM) {
      if (atomic_load(&rt->stop) && sig == SIGINT) { /* second Ctrl-C: now */
        fflush(stdout);
        fprintf(stderr, "gilvm: interrupted twice: exiting without a report\n");
        _exit(EXIT_INTERRUPTED);
      }
      rt_stop(rt, sig == SIGINT ? EXIT_INTERRUPTED : EXIT_TERMINATED, sig == SIGINT ? "interrupted" : "terminated");
    }
    if (wd->timeout_ns && now - began >= wd->timeout_ns && !atomic_load(&rt->stop))
      rt_stop(rt, EXIT_TIMEOUT, "timeout");
    if (!atomic_load(&rt->stop)) objects_check_deadlock(rt); /* a cycle closed where no main thread looked */
    if (atomic_load(&rt->stop) && !give_up) give_up = now + GRACE_NS;
    if (give_up && now >= give_up && !atomic_load(&wd->finished)) {
      fflush(stdout);
      fprintf(stderr, "gilvm: %s, and some threads did not stop within 3 s: exiting without a report\n",
              rt->stop_reason);
      _exit(atomic_load(&rt->stop));
    }
  }
  return NULL;
}

/* Run the function on top of L (with nargs above it) under the traceback handler. */
static int docall(lua_State *L, int nargs) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, rt_msghandler);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, 0, base);
  lua_remove(L, base);
  return status;
}

/* The `arg` table, as lua5.4 makes it: the script at 0, its arguments after, gilvm's before. */
static void make_arg_table(lua_State *L, int argc, char **argv, int script_index) {
  lua_createtable(L, argc - script_index, script_index + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script_index);
  }
  lua_setglobal(L, "arg");
}

static int main_failed(lua_State *L) {
  if (!atomic_load(&rt_current->stop)) /* a stop is reported once, by main() */
    fprintf(stderr, "gilvm: error in thread 'main': %s\n", lua_tostring(L, -1));
  return EXIT_SCRIPT_ERROR;
}

typedef struct main_args {
  const cli_options *o;
  int argc;
  char **argv;
} main_args;

/* Run -e chunks and the script. Returns 0, EXIT_LOAD, or EXIT_SCRIPT_ERROR; prints the error. */
static int run_main(lua_State *L, void *arg) {
  const main_args *a = arg;
  const cli_options *o = a->o;
  int argc = a->argc;
  char **argv = a->argv;
  const char *mode = o->binary ? "bt" : "t"; /* Lua's binary loader trusts its input */
  for (int i = 0; i < o->nexec; i++) {
    if (luaL_loadbufferx(L, o->exec[i], strlen(o->exec[i]), "=(command line)", mode) != LUA_OK) {
      fprintf(stderr, "gilvm: %s\n", lua_tostring(L, -1));
      return EXIT_LOAD;
    }
    if (docall(L, 0) != LUA_OK) return main_failed(L);
  }
  if (!o->script) return 0;
  const char *file = strcmp(o->script, "-") == 0 ? NULL : o->script;
  if (luaL_loadfilex(L, file, mode) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (strstr(msg, "attempt to load a binary chunk"))
      fprintf(stderr,
              "gilvm: %s is a precompiled chunk, not Lua source: gilvm runs those only with "
              "--binary (Lua does not check them: a damaged one can crash it)\n",
              file ? file : "stdin");
    else
      fprintf(stderr, "gilvm: %s\n", msg);
    return EXIT_LOAD;
  }
  int nargs = argc - o->script_index - 1;
  luaL_checkstack(L, nargs, "too many script arguments");
  for (int i = o->script_index + 1; i < argc; i++) lua_pushstring(L, argv[i]);
  if (docall(L, nargs) != LUA_OK) return main_failed(L);
  return 0;
}

/* Errors of workers nobody joined, like Python's "Exception in thread ...". */
static int report_unjoined(runtime *rt) {
  int failed = 0;
  for (int i = 1; i < rt->nworkers; i++) {
    rt_worker *w = rt->workers[i];
    if (w->error && !w->joined) {
      fprintf(stderr, "gilvm: error in thread '%s' (never joined): %s\n", w->name, w->error);
      failed = 1;
    }
  }
  return failed;
}

/* Returns 1 if the write failed (said on stderr). */
static int write_or_complain(int err, const char *path) {
  if (err) fprintf(stderr, "gilvm: cannot write %s: %s\n", outfile_name(path), strerror(errno));
  return err != 0;
}

/* The report, the JSON, and the timelines asked for. Returns 1 if a file could not be written. */
static int report(runtime *rt, const cli_options *o) {
  int failed = 0;
  rt_snapshot run;
  if (rt_snapshot_take(rt, &run) != 0) {
    fprintf(stderr, "gilvm: out of memory taking the run's figures\n");
    rt_snapshot_free(&run);
    return 1;
  }
  report_run r;
  report_collect(&run, &r);
  r.color = cli_want_color(o);
  timeline tl;
  int have_timeline = 0;
  if (run.recorded) {
    have_timeline = timeline_build(&run, o->script, &tl) == 0;
    if (!have_timeline) fprintf(stderr, "gilvm: out of memory building the timeline\n");
  }
  if (have_timeline && o->trace_path)
    failed |= write_or_complain(timeline_write_trace(&tl, o->trace_path), o->trace_path);
  if (have_timeline && o->svg_path) failed |= write_or_complain(timeline_write_svg(&tl, o->svg_path), o->svg_path);
  if (have_timeline && o->timeline) {
    r.timeline = &tl;
    r.timeline_width = timeline_terminal_width();
  }
  if (!o->quiet)
    report_print(stderr, &r);
  else if (r.timeline)
    timeline_print_ascii_color(&tl, stderr, r.timeline_width, r.color); /* asked for by name */
  if (o->json_path) failed |= write_or_complain(report_json(o->json_path, &r), o->json_path);
  if (have_timeline) timeline_free(&tl);
  rt_snapshot_free(&run);
  return failed;
}

/* Before anything runs: every output file asked for can be written (exit 2 if not). */
static int check_outputs(const cli_options *o) {
  int run = strcmp(o->command, "run") == 0, sweep = strcmp(o->command, "sweep") == 0;
  if (o->json_path && outfile_check_option("--json", o->json_path)) return EXIT_USAGE;
  if (run && o->trace_path && outfile_check_option("--trace", o->trace_path)) return EXIT_USAGE;
  if ((run || sweep) && o->svg_path && outfile_check_option("--svg", o->svg_path)) return EXIT_USAGE;
  return 0;
}

/* An output on stdout ('-', at most one: cli.c) gets stdout to itself: what
   else would go there (the script's output, its children's, compare's and
   sweep's echo of it) goes to stderr, before any of it is written. */
static int claim_stdout(const cli_options *o) {
  const char *paths[] = { o->json_path, o->trace_path, o->svg_path };
  int wanted = 0;
  for (int i = 0; i < 3; i++) wanted |= paths[i] && outfile_is_stdout(paths[i]);
  if (!wanted || strcmp(o->command, "dis") == 0 || outfile_claim_stdout() == 0) return 0;
  fprintf(stderr, "gilvm: cannot send the script's output to stderr, to keep stdout for '-': %s\n", strerror(errno));
  return EXIT_USAGE;
}

static int gilvm_main(int argc, char **argv) {
  cli_options o;
  int rc = cli_parse(argc, argv, &o);
  if (rc >= 0) return rc;
  if ((rc = check_outputs(&o)) != 0) return rc;
  if ((rc = claim_stdout(&o)) != 0) return rc;
  if (strcmp(o.command, "compare") == 0) return compare_main(argc, argv, &o);
  if (strcmp(o.command, "sweep") == 0) return sweep_main(argc, argv, &o);
  if (strcmp(o.command, "dis") == 0) return dis_main(&o);

  sigset_t set;
  signal_set(&set);
  PT_CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL)); /* inherited by every thread: the watchdog takes them */

  rt_arena_size = o.arena_bytes;
  if (o.sim_cores) {
    sim_config sc = { .cores = o.sim_cores,
                      .seed = o.seed,
                      .insn_ns = o.sim_insn_ns ? o.sim_insn_ns : SIM_INSN_NS,
                      .tick = SIM_TICK,
                      .lookahead_ns = o.mode == RT_MODE_NOGIL ? SIM_LOOKAHEAD_NOGIL_NS : 0 };
    for (int i = 0; i < o.nsim_costs; i++) sim_cost_set(&sc, o.sim_cost_id[i], o.sim_cost_ns[i]);
    sim_init(&sc, NULL, "main");
  }
  runtime *rt = rt_create(&gilmod_host, o.mode, o.policy, o.interval_ns, o.check_interval);
  if (!rt) {
    fprintf(stderr, "gilvm: cannot create the runtime\n");
    return EXIT_FAILURE;
  }
  if (o.trace_path || o.svg_path || o.timeline) rt_record(rt);
  make_arg_table(rt_main_state(rt), argc, argv, o.script_index);

  watchdog wd = { .rt = rt, .timeout_ns = o.timeout_ns };
  atomic_init(&wd.finished, 0);
  rt_thread_starting(rt);
  PT_CHECK(pthread_create(&wd.tid, NULL, watchdog_main, &wd));

  main_args args = { &o, argc, argv };
  rc = rt_run_main(rt, run_main, &args);

  rt_wait_all(rt);
  if (report_unjoined(rt) && rc == 0) rc = EXIT_SCRIPT_ERROR;
  int stop = atomic_load(&rt->stop);
  if (stop) {
    fprintf(stderr, "gilvm: stopped: %s\n", rt->stop_reason);
    rc = stop;
  }
  if (atomic_load(&rt->stdout_failed) && rc == 0) rc = EXIT_SCRIPT_ERROR; /* a process worker said why */
  fflush(stdout); /* its errors are reported at exit (outfile_finish_stdout) */
  if (rc != EXIT_LOAD && report(rt, &o) && rc == 0) rc = EXIT_SCRIPT_ERROR;

  atomic_store(&wd.finished, 1);
  PT_CHECK_OR(pthread_kill(wd.tid, WATCHDOG_QUIT), ESRCH); /* ESRCH: it saw finished and returned */
  PT_CHECK(pthread_join(wd.tid, NULL));
  rt_destroy(rt); /* closes the interpreters */
  return rc;
}

int main(int argc, char **argv) {
  child_watch_supervisor();
  int rc = outfile_finish_stdout(gilvm_main(argc, argv)); /* also what __gc metamethods printed */
  /* a file system may report a write error only at close; EBADF: closed from the start, nothing written */
  if (fclose(stdout) != 0 && errno != EBADF && rc == 0) {
    fprintf(stderr, "gilvm: error writing to stdout: %s\n", strerror(errno));
    rc = EXIT_SCRIPT_ERROR;
  }
  return rc;
}
