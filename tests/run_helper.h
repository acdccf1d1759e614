/*
 * run_helper.h — run the gilvm binary as a child process for end-to-end tests.
 *
 * run_program() starts argv[0] with posix_spawn, feeds it an optional stdin,
 * reads its stdout and stderr concurrently (poll), optionally sends it
 * signals, kills it at a hard wall-clock limit, reaps it, and returns what
 * happened. It knows nothing of Criterion: the tests decide what is a
 * failure (see test_e2e.c).
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
  const char *stdin_data;   /* written to the child's stdin, then closed; NULL: /dev/null */
  int stdin_keep_open;      /* keep a stdin pipe open (no EOF) until the child exits */
  double limit_s;           /* hard wall-clock limit; the child is SIGKILLed after it (0: 60 s) */
  /* Signals: nsignals of them, `signal` each time. The first is sent signal_after_s
     after the start, or after stdout first contains signal_when (when set); the
     next ones signal_every_s apart. */
  int signal;
  int nsignals;             /* 0 with signal set means 1 */
  double signal_after_s;
  double signal_every_s;
  const char *signal_when;
  const char *signal_when_file;  /* or once this file exists (for output gilvm does not stream) */
} run_opts;

typedef struct run_result {
  pid_t pid;
  int spawn_errno;          /* nonzero: the child could not be started */
  int exited;               /* it called exit(): exit_code is valid */
  int exit_code;
  int term_signal;          /* it was killed by this signal (0 if it exited) */
  int timed_out;            /* the helper killed it at limit_s */
  int reaped;               /* waitpid() collected it */
  int signals_sent;         /* how many of the requested signals were sent */
  double wall_s;            /* from spawn to reaping */
  double first_signal_s;    /* when the first / last requested signal was sent (-1: never) */
  double last_signal_s;
  char *out, *err;          /* NUL-terminated, malloc'd; never NULL after a run */
  size_t out_len, err_len;
  char *cmdline;            /* argv joined by spaces, for messages */
} run_result;

/* Run argv (NULL-terminated; argv[0] is the path of the program). Never returns NULL. */
run_result *run_program(const run_opts *opts, char *const argv[]);
void run_result_free(run_result *r);

/* "exit 0", "exit 2", "killed by signal 9 (timed out after 30 s)": for messages. */
const char *run_status_text(const run_result *r, char *buf, size_t len);

/* Monotonic seconds. */
double run_now(void);

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

typedef struct report_run {
  double wall_s, cpu_s, parallelism;
  double held_pct, contended_pct;
  long switches, forced, drop_requests;
  int has_handoff_line;     /* the "handoff latency" line is there */
  long handoffs;            /* forced handoffs it counts (0 when "no forced handoffs") */
  char policy[32];          /* "cpython", "legacy", "fifo" */
  char mode[32];
  double interval_s;        /* the switch interval printed */
} report_run;

/* Parse the run's figures; 1 if every field was found. */
int report_parse_run(const char *err, report_run *r);

typedef struct report_thread {
  char kind[16];      /* "thread", "free thread", "process" */
  char name[32];            /* as printed (at most 22 characters, trailing spaces cut) */
  double cpu_s, held_s, wait_s;
  long acq, forced;
  double blocked_s, nogil_s;
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

#endif
