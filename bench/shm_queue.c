/*
 * shm_queue.c — throughput of the shared queue (vm/share/shared.c): one producer
 * and one consumer, either two threads of one process or two processes
 * (the consumer is forked). Not part of the test suite.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Ivm/share vm/share/shared.c bench/shm_queue.c -pthread -o /tmp/shm_queue
 *   /tmp/shm_queue [threads|procs|both] [items] [item bytes] [maxsize]
 *
 * Defaults: both, 2000000 items of 8 bytes, maxsize 1024 (0 = unbounded).
 * The consumer checks that items arrive in order; the figure is items per
 * second from the first put to the last get.
 */
#include "shared.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static shm_arena *arena;
static shm_off queue;
static long n_items;
static size_t item_bytes;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void produce(void) {
  unsigned char buf[4096] = { 0 };
  for (long i = 0; i < n_items; i++) {
    memcpy(buf, &i, sizeof i);
    int rc = shm_queue_put(arena, queue, buf, item_bytes, NULL, NULL, NULL);
    if (rc != SHM_OK) {
      fprintf(stderr, "put: %s\n", shm_strerror(rc));
      exit(1);
    }
  }
}

/* Returns the number of items out of order (0 expected). */
static long consume(void) {
  long bad = 0;
  for (long i = 0; i < n_items; i++) {
    void *data;
    size_t len;
    int rc = shm_queue_get(arena, queue, &data, &len, NULL, NULL, NULL);
    if (rc != SHM_OK) {
      fprintf(stderr, "get: %s\n", shm_strerror(rc));
      exit(1);
    }
    long seq;
    memcpy(&seq, data, sizeof seq);
    bad += seq != i || len != item_bytes;
    free(data);
  }
  return bad;
}

static void *producer_thread(void *arg) {
  (void)arg;
  produce();
  return NULL;
}

static double run_threads(void) {
  pthread_t t;
  double t0 = now_s();
  pthread_create(&t, NULL, producer_thread, NULL);
  long bad = consume();
  double dt = now_s() - t0;
  pthread_join(t, NULL);
  if (bad) fprintf(stderr, "threads: %ld items out of order\n", bad);
  return dt;
}

static double run_procs(void) {
  fflush(stdout);
  double t0 = now_s();
  pid_t pid = fork();
  if (pid == 0) _exit(consume() ? 1 : 0);
  produce();
  int status;
  waitpid(pid, &status, 0);
  double dt = now_s() - t0;
  if (!WIFEXITED(status) || WEXITSTATUS(status)) fprintf(stderr, "procs: consumer failed (status %d)\n", status);
  return dt;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "both";
  n_items = argc > 2 ? atol(argv[2]) : 2000000;
  item_bytes = argc > 3 ? (size_t)atol(argv[3]) : 8;
  size_t maxsize = argc > 4 ? (size_t)atol(argv[4]) : 1024;
  if (item_bytes < sizeof(long) || item_bytes > 4096) {
    fprintf(stderr, "item bytes must be in [%zu, 4096]\n", sizeof(long));
    return 2;
  }
  /* unbounded runs may hold every item at once */
  size_t size = maxsize ? 0 : (size_t)n_items * (item_bytes + 64) + ((size_t)1 << 20);
  if (shm_arena_create(size, &arena) != SHM_OK || shm_queue_new(arena, maxsize, &queue) != SHM_OK) {
    perror("arena");
    return 1;
  }
  printf("%ld items of %zu bytes, maxsize %zu\n", n_items, item_bytes, maxsize);
  if (!strcmp(mode, "threads") || !strcmp(mode, "both")) {
    double dt = run_threads();
    printf("threads:   %8.0f items/s  (%.3f s)\n", (double)n_items / dt, dt);
  }
  if (!strcmp(mode, "procs") || !strcmp(mode, "both")) {
    double dt = run_procs();
    printf("processes: %8.0f items/s  (%.3f s)\n", (double)n_items / dt, dt);
  }
  shm_stats st;
  shm_arena_stats(arena, &st);
  if (st.used_blocks != 1 || shm_arena_check(arena) != SHM_OK)
    fprintf(stderr, "arena not clean afterwards: %zu blocks in use\n", st.used_blocks);
  shm_arena_destroy(arena);
  return 0;
}
