/*
 * test_io.c — Lua's blocking calls release the GIL, and loopback sockets
 * (issue 8, parts 1 and 2). End to end through the binary (run_helper.c),
 * on fixtures in tests/data/io/.
 *
 * The wrapped io functions and os.execute give lua5.4's results, errors and
 * EOF, in the main chunk and in a worker of every mode. Release is shown by
 * orderings, never by timing: blocked.lua sees a reader asleep in the kernel
 * (/proc/<tid>/stat and wchan) and a CPU thread making progress meanwhile,
 * which in gil mode it could not do if the reader held the GIL (the run
 * would hang until the suite's timeout). The stop kills os.execute's and
 * io.popen's children, and the shell's own children with them.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_helper.h"

static const char *data(const char *name) { return data_in("io", name); }

static const char *const modes[] = { "gil", "nogil", "fork" };

/* ---------------------------------------------------------------- semantics */

TestSuite(semantics, .fini = test_cleanup, .timeout = 300);

/* What lua5.4 prints for semantics.lua (DIR: its temporary directory). */
static const char semantics_out[] =
    "true\n"
    "true\n"
    "line\thello\n"
    "line\t42 3.5 0x10\n"
    "line\tlast\n"
    "hello\t42\t3.5\t16\t\n"
    "\tlast\t\tnil\n"
    "nil\tnil\tnil\n"
    "2\tllo\t5\t22\n"
    "true\n"
    "false\tattempt to use a closed file\n"
    "nil\tDIR/none/x: No such file or directory\t2\n"
    "false\tbad argument #2 to 'io.open' (invalid mode)\n"
    "false\tcannot open file 'DIR/none' (No such file or directory)\n"
    "bad argument #2 to 'for iterator' (invalid format)\n"
    "h\tello\n"
    "4\t2 3.5 0x10\n"
    "l\tast\n"
    "22\th\tnil\n"
    "bad argument #252 to 'io.lines' (too many arguments)\n"
    "hello\n"
    "\n"
    "42\n"
    "true\n"
    "out1+\n"
    "nil\texit\t3\n"
    "nil\tsignal\t9\n"
    "true\texit\t0\n"
    "true\n"
    "hi\n"
    "there\n"
    "\n"
    "nil\n"
    "true\texit\t0\n"
    "true\n"
    "true\texit\t0\n"
    "piped\n"
    "\n"
    "nil\texit\t5\n"
    "false\tbad argument #2 to 'io.popen' (invalid mode)\n"
    "popen line\ta\n"
    "popen line\tb\n";

Test(semantics, io_and_execute_as_lua54_in_the_main_chunk) {
  run_result *r = GV("-q", data("semantics.lua"), new_tmpdir());
  expect_exit(r, 0);
  expect_out(r, semantics_out);
}

Test(semantics, io_and_execute_as_lua54_in_a_worker_of_every_mode) {
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    run_result *r = GV("-q", "-m", modes[i], data("semantics.lua"), new_tmpdir(), "worker");
    expect_exit(r, 0);
    expect_out(r, semantics_out);
  }
}

Test(semantics, sockets_in_every_mode) {
  static const char out[] =
      "port\tinteger\ttrue\n"
      "accept timeout\tnil\ttimeout\n"
      "send\t5\t0\n"
      "recv\thel\tlo\n"
      "recv timeout\tnil\ttimeout\n"
      "big\t100000\n"
      "closed\tnil\tclosed\n"
      "closed again\tnil\tclosed\n"
      "false\tsend: socket is closed\n"
      "false\trecv: socket is closed\n"
      "connection (closed)\n"
      "false\tconnect 127.0.0.1:PORT: Connection refused\n"
      "false\tlisten 127.0.0.1:70000: port out of range\n"
      "false\tlisten not-an-address:0: not an IPv4 address\n"
      "refused twice\n"
      "false\tlisten 127.0.0.1:PORT: Address already in use\n"
      "child got ping\tnil\tclosed\n"
      "ok\n"
      "from %s: hi\n"
      "served\n";
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    run_result *r = GV("-q", "-m", modes[i], data("sockets.lua"));
    expect_exit(r, 0);
    expect_out(r, fmt(out, modes[i]));
  }
}

/* A socket's send and recv release the GIL around their system call even when
   it does not block, as CPython's do: 400 calls that never wait, at least 400
   GIL takes (before, they released only to wait: a handful). */
Test(semantics, socket_calls_release_even_when_they_do_not_block) {
  run_result *r = GV(data("send_release.lua"));
  expect_exit(r, 0);
  expect_out(r, "sent and received\t200\n");
  report_thread main;
  cr_assert(report_thread_named(r->err, "main", 0, &main), "no main row" CTX, CTXA(r));
  cr_expect(main.acq >= 400, "main took the GIL %ld times for 400 socket calls" CTX, main.acq, CTXA(r));
}

/* A file read line by line pays a GIL release per buffer refill, not per line. */
Test(semantics, reading_lines_does_not_release_per_line) {
  run_result *r = GV(data("lines.lua"), tmp_path("lines.txt"));
  expect_exit(r, 0);
  expect_out(r, "20000\n");
  report_thread main;
  cr_assert(report_thread_named(r->err, "main", 0, &main), "no main row" CTX, CTXA(r));
  /* 109 KB: about 27 refills of 4 KiB, and the forced switches; never 20000 */
  cr_expect(main.acq < 2000, "main took the GIL %ld times for 20000 lines" CTX, main.acq, CTXA(r));
}

/* ---------------------------------------------------------------- release */

TestSuite(release, .fini = test_cleanup, .timeout = 600);

static void blocked_case(const char *how) {
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    run_result *r = GV("-q", "-m", modes[i], data("blocked.lua"), tmp_path(fmt("fifo-%s-%zu", how, i)), how);
    expect_exit(r, 0);
    cr_expect(strstr(r->out, "cpu ran while blocked\nreader got\t") == r->out, "%s in %s mode" CTX, how, modes[i],
              CTXA(r));
  }
}

Test(release, file_read) { blocked_case("read"); }
Test(release, io_lines) { blocked_case("lines"); }
Test(release, popen_read_and_close) { blocked_case("popen"); }
Test(release, os_execute) { blocked_case("execute"); }
Test(release, socket_recv) { blocked_case("recv"); }
Test(release, socket_accept) { blocked_case("accept"); }

Test(release, stdin_read) {
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    run_opts o = { .stdin_keep_open = 1 };
    run_result *r = GVO(&o, "-q", "-m", modes[i], data("blocked.lua"), tmp_path(fmt("fifo-%zu", i)), "stdin");
    expect_exit(r, 0);
    expect_out(r, "cpu ran while blocked\n");
  }
}

/* The blocked time is "io" in the report, not "blocked". The child's 0.2 s
   start when it is spawned, GIL held (11 ms under ASan on a loaded machine):
   io and held time together cover them. */
Test(release, io_time_has_a_column_of_its_own) {
  run_result *r = GV("-e", "os.execute('sleep 0.2')");
  expect_exit(r, 0);
  report_thread main;
  cr_assert(report_thread_named(r->err, "main", 0, &main), "no main row" CTX, CTXA(r));
  cr_expect(main.io_s + main.held_s >= 0.2 && main.io_s > 0 && main.blocked_s == 0,
            "io %g s, held %g s, blocked %g s" CTX, main.io_s, main.held_s, main.blocked_s, CTXA(r));
}

/* ------------------------------------------------------ stdout and stderr */

/* print, io.write, io.stdout:write and io.stderr:write into a pipe the test
   does not read (a shell pipeline whose reader waits for stdout_full.lua's
   marker): the writer fills it and waits in the kernel, the CPU thread
   beside it advances (in gil mode it could not if the writer held the GIL:
   the marker would never come), then the test drains it and every line is
   there, in order, followed by what main printed after. */
TestSuite(std, .fini = test_cleanup, .timeout = 600);

static const char drain_sh[] =
    "if [ \"$5\" = stderr ]; then\n"
    "  { \"$1\" -q -m \"$2\" \"$3\" \"$4\" drain \"$5\" 2>&1 >/dev/null & echo $! >>\"$4.pids\"; wait $!;\n"
    "    echo \"gilvm exit $?\" >&2; } |\n"
    "    sh -c 'echo $$ >>\"$1.pids\"; until [ -e \"$1\" ]; do sleep 0.01; done; exec cat' sh \"$4\"\n"
    "else\n"
    "  { \"$1\" -q -m \"$2\" \"$3\" \"$4\" drain \"$5\" & echo $! >>\"$4.pids\"; wait $!;\n"
    "    echo \"gilvm exit $?\" >&2; } |\n"
    "    sh -c 'echo $$ >>\"$1.pids\"; until [ -e \"$1\" ]; do sleep 0.01; done; exec cat' sh \"$4\"\n"
    "fi\n";

/* A pipeline killed at the hard limit leaves its gilvm and reader behind:
   end them (their pids are in marker.pids), then check the run as usual. */
static run_result *run_pipeline(const char *const *argv, const char *marker) {
  run_opts o = { .limit_s = 300 };
  run_result *r = run_tracked(&o, argv);
  FILE *f = r->timed_out ? fopen(fmt("%s.pids", marker), "r") : NULL;
  long pid;
  while (f && fscanf(f, "%ld", &pid) == 1) run_wait_gone((pid_t)pid, 0);
  if (f) fclose(f);
  expect_clean(r);
  return r;
}

/* "0000001\n" ... "0040000\n" (then "done\n" when what main printed comes too). */
static char *numbered_lines(long n, int done) {
  char *s = track(malloc((size_t)n * 8 + 6));
  for (long i = 0; i < n; i++) {
    char line[32];
    snprintf(line, sizeof line, "%07ld\n", (i + 1) % 10000000);
    memcpy(s + i * 8, line, 8);
  }
  strcpy(s + n * 8, done ? "done\n" : "");
  return s;
}

static void full_pipe_case(const char *how, int nmodes) {
  for (int i = 0; i < nmodes; i++) {
    const char *marker = tmp_path(fmt("drain-%s-%d", how, i));
    run_result *r = run_pipeline((const char *const[]){ "/bin/sh", "-c", drain_sh, "sh", gilvm_path(), modes[i],
                                                        data("stdout_full.lua"), marker, how, NULL },
                                 marker);
    expect_exit(r, 0);
    expect_err_has(r, "gilvm exit 0");
    cr_expect(strcmp(r->out, numbered_lines(40000, strcmp(how, "stderr") != 0)) == 0,
              "%s in %s mode: the lines are not all there, in order" CTX, how, modes[i], CTXA(r));
  }
}

Test(std, print_into_a_full_pipe) { full_pipe_case("print", 3); }
Test(std, io_write_into_a_full_pipe) { full_pipe_case("write", 3); }
Test(std, io_stdout_write_into_a_full_pipe) { full_pipe_case("stdout", 3); }
Test(std, io_stderr_write_into_a_full_pipe) { full_pipe_case("stderr", 1); }

/* Stopped (SIGTERM) while it waits on the full pipe, the writer gives up
   waiting and the run ends; what it had printed still comes out, whole and
   in order, when the reader drains the pipe at last. */
static const char stop_sh[] =
    "P=\"$4.fifo\"; mkfifo \"$P\" || exit 9\n"
    "\"$1\" -q -m \"$2\" \"$3\" \"$4\" stop print >\"$P\" 2>\"$4.err\" & g=$!; echo $g >\"$4.pids\"\n"
    "exec 3<\"$P\"\n"
    "until [ -e \"$4\" ]; do sleep 0.01; done\n"
    "kill -TERM $g\n"
    "until grep -q 'stopped: terminated' \"$4.err\"; do sleep 0.01; done\n"
    "cat <&3\n"
    "wait $g; echo \"gilvm exit $?\" >&2; cat \"$4.err\" >&2\n";

/* A new pipe's capacity here (64 KiB, or a page when the user's pipe quota is spent). */
static long pipe_capacity(void) {
  int p[2];
  cr_assert(pipe(p) == 0);
  long n = fcntl(p[0], F_GETPIPE_SZ);
  close(p[0]);
  close(p[1]);
  return n;
}

Test(std, a_stop_loses_nothing_printed) {
  for (int i = 0; i < 2; i++) { /* a process worker is killed at a stop: its unwritten output with it */
    const char *marker = tmp_path(fmt("stop-%d", i));
    run_result *r = run_pipeline((const char *const[]){ "/bin/sh", "-c", stop_sh, "sh", gilvm_path(), modes[i],
                                                        data("stdout_full.lua"), marker, NULL },
                                 marker);
    expect_exit(r, 0);
    expect_err_has(r, "gilvm exit 143");
    long n = (long)(r->out_len / 8);
    cr_expect(r->out_len % 8 == 0 && strcmp(r->out, numbered_lines(n, 0)) == 0,
              "%s mode: not whole numbered lines from 1" CTX, modes[i], CTXA(r));
    /* full: poll says so once its last page is taken, however little of it is used */
    cr_expect((long)r->out_len + 4096 > pipe_capacity(), "%s mode: %zu bytes: the pipe was never full" CTX, modes[i],
              r->out_len, CTXA(r));
  }
}

/* print flushes each line, yet releases the GIL only when the pipe is full:
   20,000 prints to a pipe that is read, far fewer than 20,000 GIL takes. */
Test(std, print_does_not_release_per_call) {
  run_result *r = GV("-e", "for i = 1, 20000 do print(i) end");
  expect_exit(r, 0);
  cr_expect(count_occurrences(r->out, "\n") == 20000, "lines missing" CTX, CTXA(r));
  report_thread main;
  cr_assert(report_thread_named(r->err, "main", 0, &main), "no main row" CTX, CTXA(r));
  cr_expect(main.acq < 2000, "main took the GIL %ld times for 20000 prints" CTX, main.acq, CTXA(r));
}

/* ---------------------------------------------------------------- stop */

TestSuite(stop, .fini = test_cleanup, .timeout = 300);

/* Ctrl-C once the shell has started its own child: both die, gilvm exits 130 at once. */
static void stop_case(const char *how) {
  const char *pids = tmp_path(fmt("pids-%s", how));
  run_opts o = { .signal = SIGINT, .signal_when_file = pids };
  run_result *r = GVO(&o, "-q", data("stop_child.lua"), pids, how);
  expect_exit(r, 130);
  expect_err_lacks(r, "did not stop");
  long sh = 0, sleeper = 0;
  FILE *f = fopen(pids, "r");
  cr_assert(f, "no %s" CTX, pids, CTXA(r));
  cr_assert_eq(fscanf(f, "%ld %ld", &sh, &sleeper), 2, "pids not read" CTX, CTXA(r));
  fclose(f);
  /* they were killed: gone (or zombies no one reaped yet) well before sleep 30 ends */
  cr_expect(run_wait_gone((pid_t)sh, 20), "the shell %ld still runs", sh);
  cr_expect(run_wait_gone((pid_t)sleeper, 20), "the shell's child %ld still runs", sleeper);
}

Test(stop, ctrl_c_kills_os_execute_child) { stop_case("execute"); }
Test(stop, ctrl_c_kills_popen_child) { stop_case("popen"); }

Test(stop, timeout_ends_a_thread_blocked_on_stdin) {
  run_opts o = { .stdin_keep_open = 1 };
  run_result *r = GVO(&o, "-q", "--timeout", "0.3s", "-e", "gil.spawn(function() return 1 end) io.read()");
  expect_exit(r, 124);
  expect_err_lacks(r, "did not stop");
}

/* ---------------------------------------------------------------- gallery */

TestSuite(gallery, .fini = test_cleanup, .timeout = 300);

/* downloads.lua serves every page in every mode, its clients' time is "io", and
   it prints the same (its last line is a wall-clock verdict: not compared). */
Test(gallery, downloads_in_every_mode) {
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    run_result *r = GV("-m", modes[i], script("downloads.lua"), "3", "2", "0.05", "4");
    expect_exit(r, 0);
    static const char head[] = "3 clients x 2 pages, 0.05 s latency each: 24 KB\nthe waits ";
    cr_expect(strncmp(r->out, head, sizeof head - 1) == 0, "%s mode" CTX, modes[i], CTXA(r));
    char pages[16];
    cr_expect(report_figure(r->err, "pages", pages, sizeof pages) && strcmp(pages, "6") == 0, "pages" CTX, CTXA(r));
    report_thread client;
    cr_assert(report_thread_named(r->err, "2:fetch", 0, &client), "no client row" CTX, CTXA(r));
    cr_expect(client.io_s >= 0.05 * 2, "a client waited %g s in io for two 0.05 s pages" CTX, client.io_s, CTXA(r));
  }
}

/* echo_convoy.lua in every mode, policy and hog kind: its table has a row per
   count of CPU workers, each with requests served (a client's request always
   completes before it looks at the clock, so every row has at least one),
   and the server answered exactly the requests the clients counted. No
   timing is checked: the rates are the experiment's, not the test's. */
static void echo_case(const char *const *opts, int nopts, const char *mode, const char *kind, const char *hogs) {
  const char *argv[16];
  int m = 0;
  for (int i = 0; i < nopts; i++) argv[m++] = opts[i];
  argv[m++] = "-m";
  argv[m++] = mode;
  argv[m++] = script("echo_convoy.lua");
  argv[m++] = "0,1";
  argv[m++] = "0.1";
  argv[m++] = hogs;
  argv[m] = NULL;
  run_result *r = gv_run(NULL, argv);
  expect_exit(r, 0);
  const char *head = fmt("echo server and CPU workers in one gilvm (-m %s, switch interval ", mode);
  cr_expect(strncmp(r->out, head, strlen(head)) == 0, "first line" CTX, CTXA(r));
  const char *table = strstr(r->out, "\nCPU workers  kind ");
  cr_assert(table, "no table header" CTX, CTXA(r));
  const char *row0 = strchr(table + 1, '\n'), *row1 = row0 ? strchr(row0 + 1, '\n') : NULL;
  cr_assert(row0 && row1, "no rows" CTX, CTXA(r));
  long k0, n0, k1, n1;
  char kind0[16], vs0[16];
  double rate0, rate1;
  cr_assert(sscanf(row0 + 1, "%ld %15s %ld %lf %15s", &k0, kind0, &n0, &rate0, vs0) == 5, "row 0" CTX, CTXA(r));
  cr_expect(k0 == 0 && !strcmp(kind0, "-") && !strcmp(vs0, "1.0000") && n0 >= 1 && rate0 > 0, "row 0" CTX, CTXA(r));
  cr_assert(sscanf(row1 + 1, "%ld", &k1) == 1 && k1 == 1, "row 1" CTX, CTXA(r));
  const char *after = strstr(row1 + 1, kind);
  cr_assert(after, "row 1 names its kind %s" CTX, kind, CTXA(r));
  cr_assert(sscanf(after + strlen(kind), "%ld %lf", &n1, &rate1) == 2 && n1 >= 1 && rate1 > 0, "row 1" CTX, CTXA(r));
  char fig[32];
  cr_expect(report_figure(r->err, "requests", fig, sizeof fig) && atol(fig) == n0 + n1,
            "the server answered %s, the clients counted %ld" CTX, fig, n0 + n1, CTXA(r));
  static const char *const figs[] = { "req_s_0", "req_s_1", "vs_none_1", "slow_0", "slow_1" };
  for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++)
    cr_expect(report_figure(r->err, figs[i], fig, sizeof fig), "figure %s" CTX, figs[i], CTXA(r));
}

Test(gallery, echo_convoy_in_every_mode) {
  static const char *const kinds[] = { "thread", "free thread", "process" };
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) echo_case(NULL, 0, modes[i], kinds[i], "spawn");
}

Test(gallery, echo_convoy_cures) {
  static const char *const iopri[] = { "-g", "iopri" }, *const fifo[] = { "-g", "fifo" },
                           *const fast[] = { "-s", "100us" };
  echo_case(iopri, 2, "gil", "thread", "spawn");
  echo_case(fifo, 2, "gil", "thread", "spawn");
  echo_case(fast, 2, "gil", "thread", "spawn");
  echo_case(NULL, 0, "gil", "process", "process");
}

/* ---------------------------------------------------------------- resend */

TestSuite(resend, .fini = test_cleanup, .timeout = 300);

/* A breaker signal that Lua loses (one landing as the interpreter clears a
   frame's trap) is sent again while the request is pending: with the first
   signal dropped on purpose, the holder is still interrupted and the run
   ends (before, the flag stayed set, nothing was sent again, and the run
   hung until --timeout). */
Test(resend, a_lost_breaker_signal_is_sent_again) {
  static const char *const env[] = { "GILVM_LOSE_SIGNALS=1", NULL };
  run_opts o = { .env = env, .limit_s = 120 };
  for (size_t i = 0; i < 2; i++) {
    const char *policy = i ? "iopri" : "cpython";
    run_result *r = GVO(&o, "-q", "--timeout", "60s", "-g", policy, data("lost_signal.lua"));
    expect_exit(r, 0);
    expect_out(r, "done\n");
  }
}
