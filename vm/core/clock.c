/* clock.c — monotonic and CPU clocks, and duration parsing and printing. */
#include "clock.h"
#include "check.h"
#include "sim.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t ts_ns(const struct timespec *ts) { return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec; }

uint64_t clock_now_ns(void) {
  if (sim_on()) return sim_now(); /* --sim: virtual time */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts_ns(&ts);
}

uint64_t clock_real_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts_ns(&ts);
}

uint64_t clock_thread_cpu_ns(void) {
  if (sim_on()) return sim_thread_cpu();
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts_ns(&ts);
}

/* The calling thread's schedstat stays open (a read is then one pread, about
   0.5 us here: cheap enough for every blocking call, rt_block_begin/end), and
   is closed at the thread's exit (the key's destructor); in a forked child the
   forking thread (another thread id now) closes the copy it inherited and
   opens its own at its next read (the atfork handler). */
static pthread_key_t sched_key;
static pthread_once_t sched_once = PTHREAD_ONCE_INIT;
static _Thread_local int sched_fd = -1;

static void sched_close(void *fd_plus_1) { close((int)(intptr_t)fd_plus_1 - 1); }
static void sched_forget(void) {
  if (sched_fd >= 0) close(sched_fd);
  sched_fd = -1;
}
static void sched_init(void) {
  PT_CHECK(pthread_key_create(&sched_key, sched_close));
  PT_CHECK(pthread_atfork(NULL, NULL, sched_forget));
}

static int sched_file(void) {
  if (sched_fd >= 0) return sched_fd;
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", (long)syscall(SYS_gettid));
  sched_fd = open(path, O_RDONLY | O_CLOEXEC);
  PT_CHECK(pthread_once(&sched_once, sched_init));
  PT_CHECK(pthread_setspecific(sched_key, sched_fd >= 0 ? (void *)(intptr_t)(sched_fd + 1) : NULL));
  return sched_fd;
}

int clock_thread_sched_ns(uint64_t *on_cpu_ns, uint64_t *runq_ns) {
  if (sim_on()) return sim_thread_sched(on_cpu_ns, runq_ns); /* the simulated cores' run queue */
  int fd = sched_file();
  char buf[128];
  ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *end;
  unsigned long long on_cpu = strtoull(buf, &end, 10), waiting = strtoull(end, &end, 10);
  if (end == buf || (*end != ' ' && *end != '\n')) return -1;
  *on_cpu_ns = on_cpu;
  *runq_ns = waiting;
  return 0;
}

uint64_t clock_process_cpu_ns(void) {
  if (sim_on()) return sim_total_cpu();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  uint64_t us = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
      (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  return us * 1000u;
}

int clock_parse_duration(const char *s, uint64_t *ns) {
  static const struct {
    const char *unit;
    double scale;
  } units[] = {
    { "ns", 1e0 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 }, { "", 1e9 },
  };
  if (!s || !*s) return -1;
  /* only decimal digits with an optional fraction: strtod alone would take
     " 5", "+5", "0x10", "1e3", "inf" and "nan" */
  size_t digits = strspn(s, "0123456789"), len = digits;
  if (s[len] == '.') {
    size_t frac = strspn(s + len + 1, "0123456789");
    digits += frac;
    len += 1 + frac;
  }
  if (digits == 0) return -1; /* "", ".", "ms" */
  char *end;
  double v = strtod(s, &end);
  if (end != s + len || !isfinite(v) || v < 0) return -1;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(end, units[i].unit) == 0) {
      double x = v * units[i].scale;
      if (x > 1e18) return -1;
      *ns = (uint64_t)llround(x);
      return 0;
    }
  }
  return -1;
}

const char *clock_format(uint64_t ns, char *buf, size_t len) {
  if (ns >= 1000000000u)
    snprintf(buf, len, "%.2f s", (double)ns / 1e9);
  else if (ns >= 1000000u)
    snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
  else if (ns >= 1000u)
    snprintf(buf, len, "%.0f us", (double)ns / 1e3);
  else
    snprintf(buf, len, "%llu ns", (unsigned long long)ns);
  return buf;
}
