/*
 * os_costs.c — two OS costs behind --sim's defaults (README, "Simulated runs"):
 *
 *   switch: a context switch. Two threads pinned to one CPU hand a token back
 *           and forth through two pipes: each round trip is two switches (and
 *           two pipe reads and writes, which is what a switch costs a real
 *           program); the figure is the round trip / 2.
 *   futex:  the CPU a waker pays to wake a blocked thread: the time of
 *           pthread_cond_signal (with its mutex) while the other thread sleeps
 *           in pthread_cond_wait on the other CPU (what a GIL release that
 *           wakes a waiter pays), once asleep 200 us (its CPU idle), once
 *           just blocked.
 *   wake:   from the signal until the sleeper (asleep 200 us) runs.
 *   gap:    an unlock and a lock of an uncontended mutex: what separates a
 *           legacy yield's release from its retake (gil_yield's two critical
 *           sections; the bookkeeping inside them is not counted).
 *
 * Not run by bench/run. Build and run:
 *   cc -O2 -pthread bench/os_costs.c -o /tmp/os_costs && /tmp/os_costs
 * Prints the median of 7 rounds of each.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static int ab[2], ba[2];
enum { ROUNDS = 20000, WAKES = 2000 };

static void *echo(void *arg) {
  (void)arg;
  pin(0);
  char c;
  for (int i = 0; i < ROUNDS; i++) {
    if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1) exit(1);
  }
  return NULL;
}

static double switch_ns(void) {
  if (pipe(ab) || pipe(ba)) exit(1);
  pthread_t t;
  pthread_create(&t, NULL, echo, NULL);
  pin(0);
  char c = 'x';
  uint64_t t0 = now_ns();
  for (int i = 0; i < ROUNDS; i++)
    if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1) exit(1);
  uint64_t t1 = now_ns();
  pthread_join(t, NULL);
  close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
  return (double)(t1 - t0) / ROUNDS / 2;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER, back = PTHREAD_COND_INITIALIZER;
static int token, sleeping;
static uint64_t woke_at, latency; /* the sleeper's clock when it runs again; summed latencies */

static void *sleeper(void *arg) {
  (void)arg;
  pin(1);
  pthread_mutex_lock(&mu);
  for (int i = 0; i < WAKES; i++) {
    sleeping = 1;
    pthread_cond_signal(&back);
    while (!token) pthread_cond_wait(&cv, &mu);
    woke_at = now_ns();
    token = 0;
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static double futex_ns(long idle_ns) {
  pthread_t t;
  pin(0);
  token = sleeping = 0;
  latency = 0;
  pthread_create(&t, NULL, sleeper, NULL);
  uint64_t spent = 0;
  for (int i = 0; i < WAKES; i++) {
    pthread_mutex_lock(&mu);
    while (!sleeping) pthread_cond_wait(&back, &mu);
    sleeping = 0;
    pthread_mutex_unlock(&mu);
    struct timespec d = { 0, idle_ns }; /* 200 us: it falls asleep for real (its CPU goes idle); 0: just blocked */
    if (idle_ns) nanosleep(&d, NULL);
    uint64_t t0 = now_ns();
    pthread_mutex_lock(&mu);
    token = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    spent += now_ns() - t0;
    pthread_mutex_lock(&mu);
    while (!sleeping && i + 1 < WAKES) pthread_cond_wait(&back, &mu);
    if (i + 1 < WAKES) latency += woke_at - t0;
    sleeping = i + 1 < WAKES; /* still asleep-to-be: the loop's top waits for it again */
    pthread_mutex_unlock(&mu);
  }
  pthread_join(t, NULL);
  return (double)spent / WAKES;
}

static double gap_ns(void) {
  enum { N = 5000000 };
  pthread_mutex_lock(&mu);
  uint64_t t0 = now_ns();
  for (int i = 0; i < N; i++) {
    pthread_mutex_unlock(&mu);
    pthread_mutex_lock(&mu);
  }
  uint64_t t1 = now_ns();
  pthread_mutex_unlock(&mu);
  return (double)(t1 - t0) / N;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  double s[7], f[7], h[7], w[7], g[7];
  for (int i = 0; i < 7; i++) {
    s[i] = switch_ns();
    f[i] = futex_ns(200000);
    w[i] = (double)latency / (WAKES - 1);
    h[i] = futex_ns(0);
    g[i] = gap_ns();
  }
  qsort(g, 7, sizeof *g, cmp);
  qsort(w, 7, sizeof *w, cmp);
  qsort(s, 7, sizeof *s, cmp);
  qsort(f, 7, sizeof *f, cmp);
  qsort(h, 7, sizeof *h, cmp);
  printf("switch: %.0f ns per context switch (median of 7; min %.0f, max %.0f)\n", s[3], s[0], s[6]);
  printf("futex:  %.0f ns for the waker to wake a thread asleep 200 us (median of 7; min %.0f, max %.0f)\n", f[3], f[0],
         f[6]);
  printf("wake:   %.0f ns from the signal until the sleeper (asleep 200 us) runs (median of 7; min %.0f, max %.0f)\n",
         w[3], w[0], w[6]);
  printf("futex:  %.0f ns to wake a thread that has just blocked (median of 7; min %.0f, max %.0f)\n", h[3], h[0],
         h[6]);
  printf("gap:    %.0f ns for an unlock and a lock of an uncontended mutex (median of 7; min %.0f, max %.0f)\n", g[3],
         g[0], g[6]);
  return 0;
}
