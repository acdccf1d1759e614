/*
 * run_helper.h — the one test harness of the end-to-end suites.
 *
 * run_program() starts argv[0] with posix_spawn, feeds it an optional stdin,
 * reads its stdout and stderr concurrently (poll), optionally sends it
 * signals, kills it at a hard wall-clock limit, reaps it, and returns what
 * happened.
 *
 * The Criterion side (GV, run_checked, expect_*) fails a test whose child
 * could not start, hit the hard limit, was not reaped or left a sanitizer
 * report; it also gives the suites their paths, temporary directories and
 * tracked allocations, freed by test_cleanup() (every suite's .fini).
 *
 * The report_* functions read gilvm's run report (printed on stderr) so the
 * tests can say "parallelism <= 1.3" instead of matching text.
 */
#ifndef RUN_HELPER_H
#define RUN_HELPER_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#define RUN_MAX_SIGNALS 4

typedef struct run_opts {
  const char *stdin_data; /* written to the child's stdin, then closed; NULL: /dev/null */
  int stdin_keep_open; /* keep a stdin pipe open (no EOF) until the child exits */
  double limit_s; /* hard wall-clock limit; the child is SIGKILLed after it (0: 60 s) */
  /* Signals: nsignals of them, `signal` each time. The first is sent signal_after_s
     after the start, or after stdout first contains signal_when (when set); the
     next ones signal_every_s apart. */
  int signal;
  int nsignals; /* 0 with signal set means 1 */
  double signal_after_s;
  double signal_every_s;
  const char *signal_when;
  const char *signal_when_file; /* or once this file exists (for output gilvm does not stream) */
  const char *const *env; /* NULL-terminated "NAME=value" set in the child's environment, or NULL */
} run_opts;

typedef struct run_result {
  pid_t pid;
  int spawn_errno; /* nonzero: the child could not be started */
  int exited; /* it called exit(): exit_code is valid */
  int exit_code;
  int term_signal; /* it was killed by this signal (0 if it exited) */
  int timed_out; /* the helper killed it at limit_s */
  int reaped; /* waitpid() collected it */
  int signals_sent; /* how many of the requested signals were sent */
  double wall_s; /* from spawn to reaping */
  double first_signal_s; /* when the first / last requested signal was sent (-1: never) */
  double last_signal_s;
  char *out, *err; /* NUL-terminated, malloc'd; never NULL after a run */
  size_t out_len, err_len;
  char *cmdline; /* argv joined by spaces, for messages */
} run_result;

/* Run argv (NULL-terminated; argv[0] is the path of the program). Never returns NULL. */
run_result *run_program(const run_opts *opts, char *const argv[]);
void run_result_free(run_result *r);

/* "exit 0", "exit 2", "killed by signal 9 (timed out after 30 s)": for messages. */
const char *run_status_text(const run_result *r, char *buf, size_t len);

/* Monotonic seconds. */
double run_now(void);

/* Wait until pid no longer runs (gone, or a zombie nobody reaped yet): 1 if so
   within seconds; 0 if not, and then it is SIGKILLed, so nothing is left behind. */
int run_wait_gone(pid_t pid, double seconds);

/* ---- failure messages ---- */

/* The last 4000 bytes of a possibly long output. */
const char *run_tail(const char *s);
/* The first sanitizer report marker found in text (a child's stderr), or NULL. */
const char *run_sanitizer_report(const char *text);
/* "what ran and what it printed", for a test's failure message:
   cr_assert(cond, "message" CTX, CTXA(r)). CTXA's status text lives in a static buffer. */
const char *run_status(const run_result *r);
#define CTX "\n  command: %s\n  status:  %s (%.2f s)\n  --- stdout ---\n%s\n  --- stderr ---\n%s"
#define CTXA(r) (r)->cmdline, run_status(r), (r)->wall_s, run_tail((r)->out), run_tail((r)->err)

/* ---- reading the report ---- */

/* A report duration as gilvm prints it ("36.83 ms", "883 us", "2.00 s", "393 ns",
   or "-" for none) starting at s: seconds (0 for "-"), -1 if it is not one.
   *end, when not NULL, is set past what was read. */
double report_parse_duration(const char *s, const char **end);

/* The number right after the first occurrence of key in text ("parallelism " ->
   1.00 from "parallelism 1.00x"). Returns 1 and sets *v if found. */
int report_number_after(const char *text, const char *key, double *v);

/* The duration right after key ("wall " -> seconds). Returns 1 and sets *v if found. */
int report_duration_after(const char *text, const char *key, double *v);

/* The report block itself: from "-- gilvm report" to its closing rule, or NULL. */
const char *report_find(const char *err);

typedef struct parsed_report {
  double wall_s, cpu_s, parallelism;
  double held_pct, contended_pct;
  long switches, forced, drop_requests;
  int has_handoff_line; /* the "handoff latency" line is there */
  long handoffs; /* forced handoffs it counts (0 when "no forced handoffs") */
  char policy[32]; /* "cpython", "legacy", "fifo" */
  char mode[32];
  double interval_s; /* the switch interval printed */
} parsed_report;

/* Parse the run's figures; 1 if every field was found. */
int report_parse_run(const char *err, parsed_report *r);

typedef struct report_thread {
  char kind[16]; /* "thread", "free thread", "process" */
  char name[32]; /* as printed (at most 22 characters, trailing spaces cut) */
  double cpu_s, held_s, wait_s;
  long acq, forced;
  double blocked_s, nogil_s, io_s;
} report_thread;

/* The thread table's rows in order; returns how many (at most max), -1 if none found. */
int report_threads(const char *err, report_thread *rows, int max);
/* The row whose name is exactly name (or starts with it, if prefix). 1 if found. */
int report_thread_named(const char *err, const char *name, int prefix, report_thread *row);

/* The value printed for a gil.report() figure, copied into buf. 1 if found. */
int report_figure(const char *err, const char *name, char *buf, size_t len);

/* ---- reading gilvm's JSON files: parsed by jansson, never matched as text ---- */

/* The JSON file at path, or NULL (with why, and where, in err) if it cannot be
   read or is not valid JSON (invalid UTF-8 included). Free with json_decref. */
json_t *run_json_file(const char *path, char *err, size_t len);
/* The number at key in obj (integer or real), or NAN if there is none. */
double run_json_number(const json_t *obj, const char *key);

/* How many times needle occurs in hay. */
int count_occurrences(const char *hay, const char *needle);

/* ---- for the Criterion suites (each test runs in a process of its own) ---- */

#define RUN_LIMIT_S 60.0 /* a child's hard limit when run_opts gives none */

/* p, kept until test_cleanup(); fails the test if NULL (out of memory). */
void *track(void *p);
/* A tracked formatted string. */
char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* Frees what was tracked and removes the temporary directories: every suite's .fini. */
void test_cleanup(void);

/* An environment variable meson test sets (fails the test if unset). */
const char *env_dir(const char *name);
/* The gilvm binary ($GILVM, made absolute: some tests run elsewhere). */
const char *gilvm_path(void);
/* A gallery script: $GILVM_SCRIPTS/name. */
const char *script(const char *name);
/* A fixture: $GILVM_TESTDATA/sub/name. */
const char *data_in(const char *sub, const char *name);
/* A fresh directory under $TMPDIR (or /tmp), removed by test_cleanup(). */
const char *new_tmpdir(void);
/* name inside this test's own temporary directory (made on first use). */
const char *tmp_path(const char *name);
/* A whole file, NUL-terminated and tracked; fails the test if it cannot be read.
   *len (when not NULL) is set to its length. */
char *slurp(const char *path, size_t *len);
/* The JSON file at path, parsed (jansson) and tracked; fails the test, showing
   why and the file, if it cannot be read or is not valid JSON. */
json_t *json_file(const char *path);

/* Run argv (NULL-terminated, argv[0] a path), tracked, with no check: for a
   test that must do something first (kill what the child left behind). */
run_result *run_tracked(const run_opts *o, const char *const *argv);
/* Fail the test unless the child started and was reaped (no longer our child). */
void expect_reaped(const run_result *r);
/* Fail the test if the child's stderr holds a sanitizer report. */
void expect_no_sanitizer_report(const run_result *r);
/* Both, and it did not hit its hard limit. */
void expect_clean(const run_result *r);
/* run_tracked, then expect_clean. */
run_result *run_checked(const run_opts *o, const char *const *argv);
/* gilvm with args (NULL-terminated, without the binary itself), checked. */
run_result *gv_run(const run_opts *o, const char *const *args);
#define GV(...) gv_run(NULL, (const char *const[]){ __VA_ARGS__, NULL })
#define GVO(o, ...) gv_run((o), (const char *const[]){ __VA_ARGS__, NULL })

void expect_exit(const run_result *r, int code);
void expect_out(const run_result *r, const char *expected);
void expect_out_has(const run_result *r, const char *needle);
void expect_err_has(const run_result *r, const char *needle);
void expect_err_lacks(const run_result *r, const char *needle);
void expect_no_report(const run_result *r);
/* A usage error: exit 2, the message and the --help hint, nothing on stdout, no report. */
void expect_usage_error(const run_result *r, const char *message);
/* The gallery's scripts (scripts/articles/NAME.lua): their NAMEs, sorted; returns how many (under max). */
int gallery_scripts(char **names, int max);

#endif
