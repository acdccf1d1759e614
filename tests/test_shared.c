/*
 * test_shared.c — the shared-object core (vm/share/shared.c): arena, lock, queue,
 * value, between threads and between forked processes.
 *
 * Rules these tests keep on a small, noisy machine: they assert counts,
 * orderings and invariants, never timings (a few lower bounds that follow
 * from deadlines, and very wide upper bounds); every wait is bounded, so a
 * bug fails a test instead of hanging it; every forked child is reaped
 * (the suite's fini kills and reaps any a failed assertion left behind).
 * Children never use Criterion's asserts: they report through their exit
 * status, and leave with _exit() so no atexit handler of the runner runs.
 */
#include "shared.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- fixtures */

static shm_arena *A;

#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];
static int n_children;

static void setup(void) {
  n_children = 0;
  cr_assert_eq(shm_arena_create(16 << 20, &A), SHM_OK);
}

/* Kills and reaps whatever a failed test left running. */
static void teardown(void) {
  for (int i = 0; i < n_children; i++) {
    if (children[i] > 0) {
      kill(children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
    }
  }
  n_children = 0;
  shm_arena_destroy(A);
  A = NULL;
}

TestSuite(arena, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(lock, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(queue, .init = setup, .fini = teardown, .timeout = 90);
TestSuite(value, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(sync, .init = setup, .fini = teardown, .timeout = 90);

/* --------------------------------------------------------------- helpers */

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_s(double s) {
  struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
  while (nanosleep(&t, &t) == -1 && errno == EINTR)
    ;
}

/* Runs fn(arg) in a forked child whose exit status is fn's result. */
static pid_t spawn(int (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(fn(arg));
  cr_assert(pid > 0, "fork: %s", strerror(errno));
  for (int i = 0; i < n_children; i++)
    if (children[i] == 0) { /* a reaped child's slot */
      children[i] = pid;
      return pid;
    }
  cr_assert(n_children < MAX_CHILDREN);
  children[n_children++] = pid;
  return pid;
}

static void forget_child(pid_t pid) {
  for (int i = 0; i < n_children; i++)
    if (children[i] == pid) children[i] = 0;
}

/* Waits at most `timeout` seconds for the child; returns its raw wait
 * status, or -1 if it had to be killed. Reaps it either way. */
static int reap(pid_t pid, double timeout) {
  double end = now_s() + timeout;
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) cr_assert_fail("waitpid: %s", strerror(errno));
    if (now_s() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      forget_child(pid);
      return -1;
    }
    sleep_s(0.001);
  }
  forget_child(pid);
  return status;
}

/* Reaps a child and asserts it exited with `code`. */
static void expect_exit(pid_t pid, int code, double timeout) {
  int status = reap(pid, timeout);
  cr_assert_neq(status, -1, "child %d did not finish within %.0f s", (int)pid, timeout);
  cr_assert(WIFEXITED(status), "child %d died (status %#x)", (int)pid, status);
  cr_assert_eq(WEXITSTATUS(status), code, "child %d exited %d, expected %d", (int)pid, WEXITSTATUS(status), code);
}

static void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  cr_assert_neq(reap(pid, 10), -1);
}

/* Joins a thread, failing the test (instead of hanging) after `timeout`. */
static void join_within(pthread_t t, double timeout, void **ret) {
  struct timespec end;
  clock_gettime(CLOCK_REALTIME, &end);
  end.tv_sec += (time_t)timeout;
  int rc = pthread_timedjoin_np(t, ret, &end);
  cr_assert_eq(rc, 0, "thread did not finish within %.0f s", timeout);
}

/* A flag in the arena, for parent and children to meet on. */
static shm_off flag_new(void) {
  shm_off v;
  cr_assert_eq(shm_value_new(A, shm_int(0), &v), SHM_OK);
  return v;
}

static int64_t flag_get(shm_off v) {
  shm_number n;
  shm_value_get(A, v, &n);
  return n.i;
}

static void flag_set(shm_off v, int64_t x) { shm_value_set(A, v, shm_int(x)); }

/* Polls until the flag reaches `want`; 0 if it did not within timeout. */
static int flag_wait(shm_off v, int64_t want, double timeout) {
  double end = now_s() + timeout;
  while (flag_get(v) < want) {
    if (now_s() > end) return 0;
    sleep_s(0.001);
  }
  return 1;
}

static int stop_when_set(void *arg) { return atomic_load((atomic_int *)arg); }

/* Bytes from an object's handle within which its futex words lie (a lock or
 * a queue is about a hundred bytes). */
#define OBJ_SPAN 256

/* Is a thread of process pid (0: this one) asleep in futex() on a word of the
 * object at off? The kernel says so in /proc/PID/task/TID/syscall: the
 * number of the call a blocked thread is in, then its arguments (the first
 * is the futex's address); "running" otherwise. */
static int proc_errno; /* why the last /proc file could not be read, for messages */

static int asleep_on(pid_t pid, shm_off off) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/task", pid ? (int)pid : (int)getpid());
  DIR *d = opendir(dir);
  if (!d) {
    proc_errno = errno;
    return 0;
  }
  uintptr_t lo = (uintptr_t)shm_ptr(A, off), hi = lo + OBJ_SPAN;
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[128];
    snprintf(path, sizeof path, "%s/%s/syscall", dir, e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) {
      proc_errno = errno;
      continue;
    }
    long nr;
    unsigned long addr;
    found = fscanf(f, "%ld %lx", &nr, &addr) == 2 && nr == SYS_futex && addr >= lo && addr < hi;
    fclose(f);
  }
  closedir(d);
  return found;
}

/* Waits until a thread of pid (0: this process) sleeps on the object: a
 * waiter that is really waiting, not one that has yet to start. */
static void await_sleeper(pid_t pid, shm_off off) {
  double end = now_s() + 30;
  proc_errno = 0;
  while (!asleep_on(pid, off)) {
    cr_assert(now_s() < end, "no thread of process %d went to sleep on the object within 30 s%s%s", (int)pid,
              proc_errno ? "; /proc/PID/task/TID/syscall: " : "", proc_errno ? strerror(proc_errno) : "");
    sleep_s(0.001);
  }
}

static struct timespec in(double s) { return shm_deadline_in(s); }

/* ---------------------------------------------------------------- arena */

Test(arena, alloc_free_coalesce) {
  shm_stats fresh, st;
  shm_arena_stats(A, &fresh);
  cr_assert_eq(fresh.free_blocks, 1);
  cr_assert_eq(fresh.used_blocks, 0);

  shm_off a, b, c;
  cr_assert_eq(shm_alloc(A, 100, &a), SHM_OK);
  cr_assert_eq(shm_alloc(A, 200, &b), SHM_OK);
  cr_assert_eq(shm_alloc(A, 300, &c), SHM_OK);
  cr_assert(a && b && c && a != b && b != c);
  cr_assert_eq(a % 8, 0);
  cr_assert_eq(b % 8, 0);
  memset(shm_ptr(A, a), 0xaa, 100); /* payloads are writable and do not overlap tags */
  memset(shm_ptr(A, b), 0xbb, 200);
  memset(shm_ptr(A, c), 0xcc, 300);
  cr_assert_eq(shm_arena_check(A), SHM_OK);
  shm_arena_stats(A, &st);
  cr_assert_eq(st.used_blocks, 3);

  /* b alone: a hole between two used blocks */
  cr_assert_eq(shm_free(A, b), SHM_OK);
  cr_assert_eq(shm_arena_check(A), SHM_OK);
  shm_arena_stats(A, &st);
  cr_assert_eq(st.free_blocks, 2);

  /* the hole is reused first-fit for something that fits */
  shm_off d;
  cr_assert_eq(shm_alloc(A, 150, &d), SHM_OK);
  cr_assert(d >= b && d < b + 200, "b's hole not reused");
  cr_assert_eq(shm_free(A, d), SHM_OK);

  /* freeing a and c merges everything back into one block */
  cr_assert_eq(shm_free(A, a), SHM_OK);
  cr_assert_eq(shm_free(A, c), SHM_OK);
  cr_assert_eq(shm_arena_check(A), SHM_OK);
  shm_arena_stats(A, &st);
  cr_assert_eq(st.free_blocks, 1);
  cr_assert_eq(st.used_blocks, 0);
  cr_assert_eq(st.used_bytes, 0);
  cr_assert_eq(st.largest_free, fresh.largest_free);
}

Test(arena, bad_and_double_free_refused) {
  shm_off a;
  cr_assert_eq(shm_alloc(A, 64, &a), SHM_OK);
  cr_assert_eq(shm_free(A, a), SHM_OK);
  cr_assert_eq(shm_free(A, a), SHM_EINVAL);
  cr_assert_eq(shm_free(A, 0), SHM_EINVAL);
  cr_assert_eq(shm_free(A, 12345), SHM_EINVAL);
  cr_assert_eq(shm_free(A, (shm_off)1 << 40), SHM_EINVAL);
  cr_assert_null(shm_ptr(A, 0));
  cr_assert_null(shm_ptr(A, (shm_off)1 << 40));
  cr_assert_eq(shm_arena_check(A), SHM_OK);
}

Test(arena, exhaustion_is_an_error_code) {
  shm_arena *small;
  cr_assert_eq(shm_arena_create(64 << 10, &small), SHM_OK);
  shm_off blocks[200];
  int n = 0, rc;
  while ((rc = shm_alloc(small, 1000, &blocks[n])) == SHM_OK) cr_assert(++n < 200, "a 64 KiB arena held 200 KB");
  cr_assert_eq(rc, SHM_ENOSPC);
  cr_assert_gt(n, 50);
  cr_assert_eq(shm_alloc(small, SIZE_MAX, &blocks[n]), SHM_ENOSPC);
  cr_assert_eq(shm_alloc(small, (size_t)1 << 40, &blocks[n]), SHM_ENOSPC);

  /* objects and queue items also fail cleanly */
  shm_off obj;
  while (shm_alloc(small, 8, &obj) == SHM_OK)
    ;
  cr_assert_eq(shm_lock_new(small, &obj), SHM_ENOSPC);
  cr_assert_eq(shm_value_new(small, shm_int(1), &obj), SHM_ENOSPC);
  cr_assert_eq(shm_queue_new(small, 0, &obj), SHM_ENOSPC);
  cr_assert_eq(shm_arena_check(small), SHM_OK);
  shm_arena_destroy(small);

  /* a queue that fills the arena gets SHM_ENOSPC from put, then works again */
  cr_assert_eq(shm_arena_create(64 << 10, &small), SHM_OK);
  shm_off q;
  cr_assert_eq(shm_queue_new(small, 0, &q), SHM_OK);
  char item[500] = { 0 };
  int puts = 0;
  while ((rc = shm_queue_put(small, q, item, sizeof item, NULL, NULL, NULL)) == SHM_OK) puts++;
  cr_assert_eq(rc, SHM_ENOSPC);
  cr_assert_eq(shm_queue_size(small, q), (size_t)puts);
  void *data;
  size_t len;
  cr_assert_eq(shm_queue_get(small, q, &data, &len, NULL, NULL, NULL), SHM_OK);
  free(data);
  cr_assert_eq(shm_queue_put(small, q, item, sizeof item, NULL, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_obj_release(small, q), SHM_OK); /* frees the items too */
  shm_stats st;
  shm_arena_stats(small, &st);
  cr_assert_eq(st.used_blocks, 0);
  cr_assert_eq(st.free_blocks, 1);
  shm_arena_destroy(small);
}

/* Tiny deterministic generator, so a failure can be replayed. */
static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

Test(arena, random_alloc_free_keeps_invariants) {
  enum { SLOTS = 256 };
  shm_off slot[SLOTS] = { 0 };
  size_t size[SLOTS];
  uint64_t seed = 42;
  for (int step = 0; step < 20000; step++) {
    int i = (int)(rnd(&seed) % SLOTS);
    if (slot[i]) {
      unsigned char *p = shm_ptr(A, slot[i]); /* contents survived neighbours' traffic */
      cr_assert(p[0] == (unsigned char)i && p[size[i] - 1] == (unsigned char)i);
      cr_assert_eq(shm_free(A, slot[i]), SHM_OK);
      slot[i] = 0;
    } else {
      size[i] = 1 + rnd(&seed) % 3000;
      cr_assert_eq(shm_alloc(A, size[i], &slot[i]), SHM_OK);
      memset(shm_ptr(A, slot[i]), i, size[i]);
    }
    if (step % 1000 == 0) cr_assert_eq(shm_arena_check(A), SHM_OK, "heap broken at step %d", step);
  }
  for (int i = 0; i < SLOTS; i++)
    if (slot[i]) cr_assert_eq(shm_free(A, slot[i]), SHM_OK);
  shm_stats st;
  shm_arena_stats(A, &st);
  cr_assert_eq(st.free_blocks, 1);
  cr_assert_eq(st.used_blocks, 0);
}

static void *alloc_churn(void *arg) {
  uint64_t seed = (uintptr_t)arg;
  shm_off held[32] = { 0 };
  for (int step = 0; step < 20000; step++) {
    int i = (int)(rnd(&seed) % 32);
    if (held[i]) {
      if (shm_free(A, held[i]) != SHM_OK) return (void *)1;
      held[i] = 0;
    } else if (shm_alloc(A, 1 + rnd(&seed) % 512, &held[i]) != SHM_OK) {
      return (void *)2;
    }
  }
  for (int i = 0; i < 32; i++)
    if (held[i]) shm_free(A, held[i]);
  return NULL;
}

Test(arena, threads_alloc_and_free_concurrently) {
  pthread_t t[4];
  for (uintptr_t i = 0; i < 4; i++) pthread_create(&t[i], NULL, alloc_churn, (void *)(i * 7919 + 1));
  for (int i = 0; i < 4; i++) {
    void *ret;
    join_within(t[i], 60, &ret);
    cr_assert_null(ret);
  }
  cr_assert_eq(shm_arena_check(A), SHM_OK);
  shm_stats st;
  shm_arena_stats(A, &st);
  cr_assert_eq(st.used_blocks, 0);
  cr_assert_eq(st.free_blocks, 1);
}

/* A child whose two threads allocate, free, put, get and add as fast as they
 * can is killed at random moments, so that it often dies holding one of
 * the arena's internal mutexes half-way through an update. After each kill
 * everything must still check out and work for the survivors. */
struct chaos {
  shm_off q, v;
};

static void *chaos_loop(void *p) {
  struct chaos *c = p;
  uint64_t seed = (uint64_t)getpid() * 2654435761u + (uint64_t)(uintptr_t)&seed;
  shm_off held[8] = { 0 };
  for (;;) {
    int i = (int)(rnd(&seed) % 8);
    if (held[i]) {
      shm_free(A, held[i]);
      held[i] = 0;
    } else {
      shm_alloc(A, 1 + rnd(&seed) % 256, &held[i]);
    }
    char buf[40] = "chaos";
    struct timespec now = in(0); /* never wait: stay inside the code that matters */
    shm_queue_put(A, c->q, buf, rnd(&seed) % sizeof buf, &now, NULL, NULL);
    void *data;
    size_t len;
    if (shm_queue_get(A, c->q, &data, &len, &now, NULL, NULL) == SHM_OK) free(data);
    shm_value_add(A, c->v, shm_int(1), NULL);
  }
  return NULL;
}

static int chaos_child(void *p) {
  pthread_t t;
  pthread_create(&t, NULL, chaos_loop, p);
  chaos_loop(p);
  return 0;
}

Test(arena, processes_killed_mid_operation_leave_everything_usable) {
  struct chaos c;
  cr_assert_eq(shm_queue_new(A, 32, &c.q), SHM_OK);
  cr_assert_eq(shm_value_new(A, shm_int(0), &c.v), SHM_OK);
  uint64_t seed = 99;
  shm_stats st = { 0 };
  for (int round = 0; round < 200 && st.repairs < 20; round++) {
    pid_t pid = spawn(chaos_child, &c);
    /* at work (its count moves) before it is killed, however slow its start */
    cr_assert(flag_wait(c.v, flag_get(c.v) + 200, 30), "the child never got to work");
    sleep_s((double)(rnd(&seed) % 2000) / 1e6);
    kill_and_reap(pid);
    cr_assert_eq(shm_arena_check(A), SHM_OK, "heap broken after kill %d", round);
    shm_off blk;
    cr_assert_eq(shm_alloc(A, 100, &blk), SHM_OK);
    cr_assert_eq(shm_free(A, blk), SHM_OK);
    shm_number before, after;
    cr_assert_eq(shm_value_get(A, c.v, &before), SHM_OK);
    cr_assert_eq(shm_value_add(A, c.v, shm_int(1), &after), SHM_OK);
    cr_assert(!after.is_float && after.i == before.i + 1);
    struct timespec soon = in(10);
    void *data;
    size_t len;
    while (shm_queue_size(A, c.q) > 0) { /* drain, then one round trip */
      cr_assert_eq(shm_queue_get(A, c.q, &data, &len, &soon, NULL, NULL), SHM_OK);
      free(data);
    }
    cr_assert_eq(shm_queue_put(A, c.q, "ok", 2, &soon, NULL, NULL), SHM_OK);
    cr_assert_eq(shm_queue_get(A, c.q, &data, &len, &soon, NULL, NULL), SHM_OK);
    cr_assert(len == 2 && memcmp(data, "ok", 2) == 0);
    free(data);
    shm_arena_stats(A, &st);
  }
  /* the kills did land inside critical sections, so repairs were exercised */
  cr_assert_gt(st.repairs, 0);
}

Test(arena, handles_are_checked) {
  shm_off l, q, v, raw;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  cr_assert_eq(shm_value_new(A, shm_int(0), &v), SHM_OK);
  cr_assert_eq(shm_alloc(A, 64, &raw), SHM_OK);
  cr_assert_eq(shm_obj_type(A, l), SHM_T_LOCK);
  cr_assert_eq(shm_obj_type(A, q), SHM_T_QUEUE);
  cr_assert_eq(shm_obj_type(A, v), SHM_T_VALUE);
  cr_assert_eq(shm_obj_type(A, raw), SHM_T_NONE);
  cr_assert_eq(shm_obj_type(A, 0), SHM_T_NONE);
  cr_assert_eq(shm_obj_type(A, l + 8), SHM_T_NONE);
  cr_assert_eq(shm_obj_type(A, (shm_off)1 << 50), SHM_T_NONE);

  /* the wrong kind of handle is refused, not misused */
  shm_number n;
  cr_assert_eq(shm_value_get(A, q, &n), SHM_EINVAL);
  cr_assert_eq(shm_queue_put(A, v, "x", 1, NULL, NULL, NULL), SHM_EINVAL);
  cr_assert_eq(shm_lock_acquire(A, q, 1, NULL, NULL, NULL), SHM_EINVAL);
  cr_assert_eq(shm_lock_acquire(A, l, 0, NULL, NULL, NULL), SHM_EINVAL); /* owner 0 is "none" */
  cr_assert_eq(shm_queue_close(A, raw), SHM_EINVAL);

  /* references: the last release destroys, then the handle is dead */
  cr_assert_eq(shm_obj_retain(A, v), SHM_OK);
  cr_assert_eq(shm_obj_release(A, v), SHM_OK);
  cr_assert_eq(shm_obj_type(A, v), SHM_T_VALUE);
  cr_assert_eq(shm_obj_release(A, v), SHM_OK);
  cr_assert_eq(shm_obj_type(A, v), SHM_T_NONE);
  cr_assert_eq(shm_value_get(A, v, &n), SHM_EINVAL);
  cr_assert_eq(shm_obj_release(A, v), SHM_EINVAL);

  cr_assert_eq(shm_lock_acquire(A, l, 7, NULL, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_obj_release(A, l), SHM_OK); /* held by us: freed all the same */
  cr_assert_eq(shm_obj_type(A, l), SHM_T_NONE);
  cr_assert_eq(shm_obj_release(A, q), SHM_OK);
  cr_assert_eq(shm_free(A, raw), SHM_OK);
  shm_stats st;
  shm_arena_stats(A, &st);
  cr_assert_eq(st.used_blocks, 0);
  cr_assert_eq(shm_arena_check(A), SHM_OK);
}

/* ----------------------------------------------------------------- lock */

Test(lock, acquire_release_and_ownership) {
  shm_off l;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_lock_locked(A, l), 0);
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_lock_locked(A, l), 1);
  struct timespec now = in(0);
  cr_assert_eq(shm_lock_acquire(A, l, 2, &now, NULL, NULL), SHM_TIMEOUT); /* try once */
  cr_assert_eq(shm_lock_release(A, l, 2), SHM_NOT_OWNER);
  cr_assert_eq(shm_lock_release(A, l, 0), SHM_NOT_OWNER);
  cr_assert_eq(shm_lock_locked(A, l), 1);
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
  cr_assert_eq(shm_lock_locked(A, l), 0);
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_NOT_OWNER); /* not twice */
  now = in(0);
  cr_assert_eq(shm_lock_acquire(A, l, 2, &now, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_lock_release(A, l, 2), SHM_OK);
}

struct lock_arg {
  shm_off lock;
  uint64_t owner;
  double timeout;
  int rc;
  double waited;
  atomic_int stop;
};

static void *try_release(void *p) {
  struct lock_arg *a = p;
  a->rc = shm_lock_release(A, a->lock, a->owner);
  return NULL;
}

Test(lock, release_from_another_thread_refused) {
  shm_off l;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_lock_acquire(A, l, 5, NULL, NULL, NULL), SHM_OK);
  /* the right token, but not the thread that acquired */
  struct lock_arg arg = { .lock = l, .owner = 5 };
  pthread_t t;
  pthread_create(&t, NULL, try_release, &arg);
  join_within(t, 10, NULL);
  cr_assert_eq(arg.rc, SHM_NOT_OWNER);
  cr_assert_eq(shm_lock_locked(A, l), 1);
  cr_assert_eq(shm_lock_release(A, l, 5), SHM_OK);
}

static void *timed_acquire(void *p) {
  struct lock_arg *a = p;
  struct timespec deadline = in(a->timeout);
  double t0 = now_s();
  a->rc = shm_lock_acquire(A, a->lock, a->owner, a->timeout < 0 ? NULL : &deadline, stop_when_set, &a->stop);
  a->waited = now_s() - t0;
  if (a->rc == SHM_OK) shm_lock_release(A, a->lock, a->owner);
  return NULL;
}

Test(lock, timeout) {
  shm_off l;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK);
  struct lock_arg arg = { .lock = l, .owner = 2, .timeout = 0.2 };
  pthread_t t;
  pthread_create(&t, NULL, timed_acquire, &arg);
  join_within(t, 30, NULL);
  cr_assert_eq(arg.rc, SHM_TIMEOUT);
  cr_assert_geq(arg.waited, 0.19, "gave up early: %.3f s", arg.waited); /* never before the deadline */
  cr_assert_lt(arg.waited, 10.0);
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
}

Test(lock, reacquire_by_owner_waits_like_python) {
  shm_off l;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK);
  struct timespec deadline = in(0.1);
  cr_assert_eq(shm_lock_acquire(A, l, 1, &deadline, NULL, NULL), SHM_TIMEOUT);
  cr_assert_eq(shm_lock_locked(A, l), 1);
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
}

Test(lock, waiter_gets_it_on_release) {
  shm_off l;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK);
  struct lock_arg arg = { .lock = l, .owner = 2, .timeout = 30 };
  pthread_t t;
  pthread_create(&t, NULL, timed_acquire, &arg);
  await_sleeper(0, l);
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
  join_within(t, 30, NULL);
  cr_assert_eq(arg.rc, SHM_OK);
}

Test(lock, should_stop_interrupts_acquire) {
  shm_off l;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK);
  struct lock_arg arg = { .lock = l, .owner = 2, .timeout = -1 }; /* forever */
  pthread_t t;
  pthread_create(&t, NULL, timed_acquire, &arg);
  await_sleeper(0, l);
  atomic_store(&arg.stop, 1);
  join_within(t, 10, NULL);
  cr_assert_eq(arg.rc, SHM_STOPPED);
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
}

#define LOCK_ROUNDS 20000

struct counted {
  shm_off lock;
  volatile int64_t *counter; /* plain memory in the arena: only the lock protects it */
  uint64_t owner;
};

static int bump_under_lock(struct counted *c) {
  for (int i = 0; i < LOCK_ROUNDS; i++) {
    if (shm_lock_acquire(A, c->lock, c->owner, NULL, NULL, NULL) != SHM_OK) return 1;
    int64_t x = *c->counter; /* read-modify-write in two steps, on purpose */
    if ((i & 63) == 0) sched_yield(); /* invite a rival in the middle, were the lock broken */
    *c->counter = x + 1;
    if (shm_lock_release(A, c->lock, c->owner) != SHM_OK) return 2;
  }
  return 0;
}

static void *bump_thread(void *p) { return (void *)(intptr_t)bump_under_lock(p); }
static int bump_child(void *p) {
  struct counted *c = p;
  c->owner = (uint64_t)getpid() << 32 | 1;
  return bump_under_lock(c);
}

static struct counted counted_new(void) {
  struct counted c = { 0 };
  shm_off cell;
  cr_assert_eq(shm_lock_new(A, &c.lock), SHM_OK);
  cr_assert_eq(shm_alloc(A, sizeof(int64_t), &cell), SHM_OK);
  c.counter = shm_ptr(A, cell);
  *c.counter = 0;
  return c;
}

Test(lock, mutual_exclusion_threads) {
  struct counted c = counted_new();
  struct counted per[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    per[i] = c;
    per[i].owner = (uint64_t)i + 1;
    pthread_create(&t[i], NULL, bump_thread, &per[i]);
  }
  for (int i = 0; i < 4; i++) {
    void *ret;
    join_within(t[i], 60, &ret);
    cr_assert_null(ret);
  }
  cr_assert_eq(*c.counter, 4 * LOCK_ROUNDS);
  cr_assert_eq(shm_lock_locked(A, c.lock), 0);
}

Test(lock, mutual_exclusion_processes) {
  struct counted c = counted_new();
  pid_t pid[4];
  for (int i = 0; i < 4; i++) pid[i] = spawn(bump_child, &c);
  for (int i = 0; i < 4; i++) expect_exit(pid[i], 0, 60);
  cr_assert_eq(*c.counter, 4 * LOCK_ROUNDS);
}

struct holder {
  shm_off lock, ready;
};

/* Takes the lock, says so, and waits to be killed (or gives up after 30 s). */
static int hold_until_killed(void *p) {
  struct holder *h = p;
  if (shm_lock_acquire(A, h->lock, (uint64_t)getpid() << 32, NULL, NULL, NULL) != SHM_OK) return 1;
  flag_set(h->ready, 1);
  sleep_s(30);
  return 2;
}

Test(lock, owner_process_killed_gives_owner_dead) {
  struct holder h = { .ready = flag_new() };
  cr_assert_eq(shm_lock_new(A, &h.lock), SHM_OK);
  pid_t pid = spawn(hold_until_killed, &h);
  cr_assert(flag_wait(h.ready, 1, 30), "child never took the lock");
  cr_assert_eq(shm_lock_locked(A, h.lock), 1);
  kill_and_reap(pid);

  struct timespec deadline = in(10);
  cr_assert_eq(shm_lock_acquire(A, h.lock, 1, &deadline, NULL, NULL), SHM_OWNER_DEAD);
  cr_assert_eq(shm_lock_locked(A, h.lock), 0); /* made usable, and not held */
  deadline = in(10);
  cr_assert_eq(shm_lock_acquire(A, h.lock, 1, &deadline, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_lock_release(A, h.lock, 1), SHM_OK);
}

Test(lock, waiter_blocked_when_owner_dies_gets_owner_dead) {
  struct holder h = { .ready = flag_new() };
  cr_assert_eq(shm_lock_new(A, &h.lock), SHM_OK);
  pid_t pid = spawn(hold_until_killed, &h);
  cr_assert(flag_wait(h.ready, 1, 30), "child never took the lock");
  /* the fork is done: threads from here on are safe */
  struct lock_arg arg = { .lock = h.lock, .owner = 9, .timeout = 30 };
  pthread_t t;
  pthread_create(&t, NULL, timed_acquire, &arg);
  await_sleeper(0, h.lock);
  kill_and_reap(pid);
  join_within(t, 30, NULL);
  cr_assert_eq(arg.rc, SHM_OWNER_DEAD);
  struct timespec deadline = in(10);
  cr_assert_eq(shm_lock_acquire(A, h.lock, 1, &deadline, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_lock_release(A, h.lock, 1), SHM_OK);
}

static void *acquire_and_exit(void *p) {
  struct lock_arg *a = p;
  a->rc = shm_lock_acquire(A, a->lock, a->owner, NULL, NULL, NULL);
  return NULL; /* ends still holding it */
}

Test(lock, owner_thread_exiting_gives_owner_dead) {
  shm_off l;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  struct lock_arg arg = { .lock = l, .owner = 3 };
  pthread_t t;
  pthread_create(&t, NULL, acquire_and_exit, &arg);
  join_within(t, 10, NULL);
  cr_assert_eq(arg.rc, SHM_OK);
  struct timespec deadline = in(10);
  cr_assert_eq(shm_lock_acquire(A, l, 1, &deadline, NULL, NULL), SHM_OWNER_DEAD);
  cr_assert_eq(shm_lock_acquire(A, l, 1, &deadline, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
}

/* ---------------------------------------------------------------- queue */

static void put_str(shm_off q, const char *s) {
  cr_assert_eq(shm_queue_put(A, q, s, strlen(s), NULL, NULL, NULL), SHM_OK);
}

static void get_str(shm_off q, const char *want) {
  void *data;
  size_t len;
  struct timespec deadline = in(10);
  cr_assert_eq(shm_queue_get(A, q, &data, &len, &deadline, NULL, NULL), SHM_OK);
  cr_assert_eq(len, strlen(want));
  cr_assert(memcmp(data, want, len) == 0, "got %.*s, wanted %s", (int)len, (char *)data, want);
  free(data);
}

Test(queue, fifo_order_and_sizes) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  cr_assert(shm_queue_empty(A, q));
  cr_assert_eq(shm_queue_maxsize(A, q), 0);
  unsigned char buf[3000];
  for (int i = 0; i < 1000; i++) {
    size_t len = (size_t)(i * 7) % sizeof buf; /* includes empty items */
    memset(buf, i & 0xff, len);
    if (len >= sizeof(int)) memcpy(buf, &i, sizeof i);
    cr_assert_eq(shm_queue_put(A, q, buf, len, NULL, NULL, NULL), SHM_OK);
  }
  cr_assert_eq(shm_queue_size(A, q), 1000);
  cr_assert_not(shm_queue_empty(A, q));
  for (int i = 0; i < 1000; i++) {
    void *data;
    size_t len;
    cr_assert_eq(shm_queue_get(A, q, &data, &len, NULL, NULL, NULL), SHM_OK);
    cr_assert_eq(len, (size_t)(i * 7) % sizeof buf);
    cr_assert_not_null(data);
    unsigned char *bytes = data;
    if (len >= sizeof(int)) {
      int seq;
      memcpy(&seq, data, sizeof seq);
      cr_assert_eq(seq, i);
    }
    for (size_t k = len >= sizeof(int) ? sizeof(int) : 0; k < len; k++)
      cr_assert_eq(bytes[k], (unsigned char)(i & 0xff), "item %d byte %zu", i, k);
    free(data);
  }
  cr_assert(shm_queue_empty(A, q));
  cr_assert_eq(shm_obj_release(A, q), SHM_OK);
  shm_stats st;
  shm_arena_stats(A, &st);
  cr_assert_eq(st.used_blocks, 0);
}

Test(queue, get_timeout) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  void *data;
  size_t len;
  struct timespec deadline = in(0);
  cr_assert_eq(shm_queue_get(A, q, &data, &len, &deadline, NULL, NULL), SHM_TIMEOUT);
  double t0 = now_s();
  deadline = in(0.2);
  cr_assert_eq(shm_queue_get(A, q, &data, &len, &deadline, NULL, NULL), SHM_TIMEOUT);
  double waited = now_s() - t0;
  cr_assert_geq(waited, 0.19, "gave up early: %.3f s", waited);
  cr_assert_lt(waited, 10.0);
  /* an item present is returned even with a deadline already past */
  put_str(q, "x");
  deadline = in(0);
  cr_assert_eq(shm_queue_get(A, q, &data, &len, &deadline, NULL, NULL), SHM_OK);
  free(data);
}

struct put_arg {
  shm_off q;
  const char *item;
  double timeout;
  atomic_int done;
  int rc;
};

static void *blocking_put(void *p) {
  struct put_arg *a = p;
  struct timespec deadline = in(a->timeout);
  a->rc = shm_queue_put(A, a->q, a->item, strlen(a->item), &deadline, NULL, NULL);
  atomic_store(&a->done, 1);
  return NULL;
}

Test(queue, bounded_put_blocks_until_get) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 2, &q), SHM_OK);
  cr_assert_eq(shm_queue_maxsize(A, q), 2);
  put_str(q, "a");
  put_str(q, "b");
  struct timespec deadline = in(0);
  cr_assert_eq(shm_queue_put(A, q, "c", 1, &deadline, NULL, NULL), SHM_TIMEOUT);
  deadline = in(0.1);
  cr_assert_eq(shm_queue_put(A, q, "c", 1, &deadline, NULL, NULL), SHM_TIMEOUT);
  cr_assert_eq(shm_queue_size(A, q), 2);

  struct put_arg arg = { .q = q, .item = "c", .timeout = 30 };
  pthread_t t;
  pthread_create(&t, NULL, blocking_put, &arg);
  await_sleeper(0, q);
  cr_assert_eq(atomic_load(&arg.done), 0, "put did not block on a full queue");
  get_str(q, "a"); /* makes room: the putter goes through */
  join_within(t, 30, NULL);
  cr_assert_eq(arg.rc, SHM_OK);
  get_str(q, "b");
  get_str(q, "c");
  cr_assert(shm_queue_empty(A, q));
}

struct get_arg {
  shm_off q;
  double timeout; /* < 0: forever */
  atomic_int stop;
  int rc;
  char got[64];
  int stop_calls;
  int stop_at_call; /* > 0: should_stop says stop at this call */
};

static int counting_stop(void *p) {
  struct get_arg *a = p;
  a->stop_calls++;
  return atomic_load(&a->stop) || (a->stop_at_call > 0 && a->stop_calls >= a->stop_at_call);
}

static void *blocking_get(void *p) {
  struct get_arg *a = p;
  struct timespec deadline = in(a->timeout);
  void *data;
  size_t len;
  a->rc = shm_queue_get(A, a->q, &data, &len, a->timeout < 0 ? NULL : &deadline, counting_stop, a);
  if (a->rc == SHM_OK) {
    snprintf(a->got, sizeof a->got, "%.*s", (int)len, (char *)data);
    free(data);
  }
  return NULL;
}

Test(queue, close_wakes_blocked_getter_thread) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  struct get_arg arg = { .q = q, .timeout = -1 };
  pthread_t t;
  pthread_create(&t, NULL, blocking_get, &arg);
  await_sleeper(0, q);
  cr_assert_eq(shm_queue_close(A, q), SHM_OK);
  join_within(t, 10, NULL);
  cr_assert_eq(arg.rc, SHM_CLOSED);
  cr_assert(shm_queue_closed(A, q));
}

Test(queue, close_wakes_blocked_putter_thread) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 1, &q), SHM_OK);
  put_str(q, "full");
  struct put_arg arg = { .q = q, .item = "more", .timeout = 30 };
  pthread_t t;
  pthread_create(&t, NULL, blocking_put, &arg);
  await_sleeper(0, q);
  cr_assert_eq(shm_queue_close(A, q), SHM_OK);
  join_within(t, 10, NULL);
  cr_assert_eq(arg.rc, SHM_CLOSED);
  get_str(q, "full"); /* what was in it still drains */
}

Test(queue, items_drain_after_close) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  put_str(q, "one");
  put_str(q, "two");
  put_str(q, "three");
  cr_assert_eq(shm_queue_close(A, q), SHM_OK);
  cr_assert_eq(shm_queue_put(A, q, "four", 4, NULL, NULL, NULL), SHM_CLOSED);
  get_str(q, "one");
  get_str(q, "two");
  get_str(q, "three");
  void *data;
  size_t len;
  cr_assert_eq(shm_queue_get(A, q, &data, &len, NULL, NULL, NULL), SHM_CLOSED);
  cr_assert_eq(shm_queue_close(A, q), SHM_OK); /* closing twice is harmless */
}

static int child_get(void *p) {
  shm_off q = *(shm_off *)p;
  void *data;
  size_t len;
  struct timespec deadline = in(30);
  int rc = shm_queue_get(A, q, &data, &len, &deadline, NULL, NULL);
  if (rc == SHM_OK) free(data);
  return rc;
}

static int child_put(void *p) {
  shm_off q = *(shm_off *)p;
  struct timespec deadline = in(30);
  return shm_queue_put(A, q, "p", 1, &deadline, NULL, NULL);
}

Test(queue, close_wakes_getter_and_putter_in_other_processes) {
  shm_off empty, full;
  cr_assert_eq(shm_queue_new(A, 0, &empty), SHM_OK);
  cr_assert_eq(shm_queue_new(A, 1, &full), SHM_OK);
  put_str(full, "x");
  pid_t getter = spawn(child_get, &empty);
  pid_t putter = spawn(child_put, &full);
  await_sleeper(getter, empty);
  await_sleeper(putter, full);
  cr_assert_eq(shm_queue_close(A, empty), SHM_OK);
  cr_assert_eq(shm_queue_close(A, full), SHM_OK);
  expect_exit(getter, SHM_CLOSED, 10);
  expect_exit(putter, SHM_CLOSED, 10);
}

Test(queue, item_crosses_processes) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  pid_t getter = spawn(child_get, &q);
  await_sleeper(getter, q);
  put_str(q, "hello");
  expect_exit(getter, SHM_OK, 30);
  pid_t putter = spawn(child_put, &q);
  expect_exit(putter, SHM_OK, 30);
  get_str(q, "p");
}

/* Several producers and consumers, all processes, through a small bounded
 * queue. Items are (producer, seq); consumers check per-producer order and
 * add up what they saw. */
#define PRODUCERS 3
#define CONSUMERS 3
#define PER_PRODUCER 5000

struct mpmc {
  shm_off q, count, sum;
  int id;
};

struct msg {
  int32_t producer, seq;
};

static int mpmc_producer(void *p) {
  struct mpmc *m = p;
  for (int i = 0; i < PER_PRODUCER; i++) {
    struct msg msg = { m->id, i };
    struct timespec deadline = in(60);
    if (shm_queue_put(A, m->q, &msg, sizeof msg, &deadline, NULL, NULL) != SHM_OK) return 1;
  }
  return 0;
}

static int mpmc_consumer(void *p) {
  struct mpmc *m = p;
  int last[PRODUCERS];
  int64_t count = 0, sum = 0;
  for (int i = 0; i < PRODUCERS; i++) last[i] = -1;
  for (;;) {
    void *data;
    size_t len;
    struct timespec deadline = in(60);
    int rc = shm_queue_get(A, m->q, &data, &len, &deadline, NULL, NULL);
    if (rc == SHM_CLOSED) break;
    if (rc != SHM_OK || len != sizeof(struct msg)) return 1;
    struct msg msg;
    memcpy(&msg, data, sizeof msg);
    free(data);
    if (msg.producer < 0 || msg.producer >= PRODUCERS || msg.seq <= last[msg.producer])
      return 2; /* FIFO: one producer's items come out in the order put */
    last[msg.producer] = msg.seq;
    count++;
    sum += msg.seq;
  }
  shm_value_add(A, m->count, shm_int(count), NULL);
  shm_value_add(A, m->sum, shm_int(sum), NULL);
  return 0;
}

Test(queue, exact_counts_many_producers_consumers_processes) {
  struct mpmc m = { .count = flag_new(), .sum = flag_new() };
  cr_assert_eq(shm_queue_new(A, 16, &m.q), SHM_OK);
  pid_t cons[CONSUMERS], prod[PRODUCERS];
  for (int i = 0; i < CONSUMERS; i++) cons[i] = spawn(mpmc_consumer, &m);
  for (int i = 0; i < PRODUCERS; i++) {
    m.id = i; /* the child gets its own copy of m at fork */
    prod[i] = spawn(mpmc_producer, &m);
  }
  for (int i = 0; i < PRODUCERS; i++) expect_exit(prod[i], 0, 80);
  cr_assert_eq(shm_queue_close(A, m.q), SHM_OK);
  for (int i = 0; i < CONSUMERS; i++) expect_exit(cons[i], 0, 30);
  cr_assert_eq(flag_get(m.count), PRODUCERS * PER_PRODUCER);
  cr_assert_eq(flag_get(m.sum), (int64_t)PRODUCERS * PER_PRODUCER * (PER_PRODUCER - 1) / 2);
  cr_assert(shm_queue_empty(A, m.q));
  cr_assert_eq(shm_arena_check(A), SHM_OK);
}

/* A producer that puts numbered items until it is killed, counting them in m->sum. */
static int endless_producer(void *p) {
  struct mpmc *m = p;
  for (int32_t i = 0;; i++) {
    struct msg msg = { m->id, i };
    struct timespec deadline = in(30);
    if (shm_queue_put(A, m->q, &msg, sizeof msg, &deadline, NULL, NULL) != SHM_OK) return 1;
    shm_value_add(A, m->sum, shm_int(1), NULL);
  }
}

/* Consumes until closed; checks each producer incarnation's order. */
static int checking_consumer(void *p) {
  struct mpmc *m = p;
  int32_t last_producer = -1, last_seq = -1;
  int64_t count = 0;
  for (;;) {
    void *data;
    size_t len;
    struct timespec deadline = in(60);
    int rc = shm_queue_get(A, m->q, &data, &len, &deadline, NULL, NULL);
    if (rc == SHM_CLOSED) break;
    if (rc != SHM_OK || len != sizeof(struct msg)) return 1;
    struct msg msg;
    memcpy(&msg, data, sizeof msg);
    free(data);
    if (msg.producer == last_producer && msg.seq <= last_seq) return 2;
    if (msg.producer < last_producer) return 3; /* incarnations run one after the other */
    last_producer = msg.producer;
    last_seq = msg.seq;
    count++;
  }
  shm_value_add(A, m->count, shm_int(count), NULL);
  return 0;
}

Test(queue, killed_producers_do_not_wedge_consumers) {
  struct mpmc m = { .count = flag_new(), .sum = flag_new() };
  cr_assert_eq(shm_queue_new(A, 8, &m.q), SHM_OK);
  pid_t consumer = spawn(checking_consumer, &m);
  uint64_t seed = 7;
  for (int round = 0; round < 40; round++) {
    m.id = round;
    pid_t producer = spawn(endless_producer, &m);
    /* killed mid-stream: once its items flow, however slow its start */
    cr_assert(flag_wait(m.sum, flag_get(m.sum) + 20, 30), "producer %d never got going", round);
    sleep_s((double)(rnd(&seed) % 3000) / 1e6); /* 0-3 ms more: kills land anywhere */
    kill_and_reap(producer);
  }
  /* still alive: a fresh producer's items go through */
  struct msg last = { 1000, 0 };
  cr_assert_eq(shm_queue_put(A, m.q, &last, sizeof last, NULL, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_queue_close(A, m.q), SHM_OK);
  expect_exit(consumer, 0, 60);
  /* every item whose put returned went through (the last one included) */
  cr_assert_geq(flag_get(m.count), flag_get(m.sum) + 1, "items were lost: %lld got, %lld put",
                (long long)flag_get(m.count), (long long)flag_get(m.sum) + 1);
  cr_assert(shm_queue_empty(A, m.q));
  cr_assert_eq(shm_arena_check(A), SHM_OK); /* the heap survived every kill */
}

Test(queue, killed_blocked_waiters_leave_queue_usable) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 1, &q), SHM_OK);
  /* a getter killed while asleep on an empty queue */
  pid_t g = spawn(child_get, &q);
  await_sleeper(g, q);
  kill_and_reap(g);
  /* a putter killed while asleep on a full queue */
  put_str(q, "x");
  pid_t p = spawn(child_put, &q);
  await_sleeper(p, q);
  kill_and_reap(p);
  /* both kinds of waiting still work, between processes */
  for (int round = 0; round < 3; round++) {
    pid_t putter = spawn(child_put, &q); /* blocks: the queue is full */
    await_sleeper(putter, q);
    get_str(q, "x"); /* must wake it */
    expect_exit(putter, SHM_OK, 30);
    get_str(q, "p");
    pid_t getter = spawn(child_get, &q); /* blocks: the queue is empty */
    await_sleeper(getter, q);
    put_str(q, "y"); /* must wake it */
    expect_exit(getter, SHM_OK, 30);
    put_str(q, "x");
  }
}

Test(queue, should_stop_interrupts_get_and_is_polled) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  /* polled while waiting: nothing ever wakes this wait, so should_stop's
     third call can only come from the waiter asking again on its own */
  struct get_arg polled = { .q = q, .timeout = -1, .stop_at_call = 3 };
  pthread_t t;
  pthread_create(&t, NULL, blocking_get, &polled);
  join_within(t, 30, NULL);
  cr_assert_eq(polled.rc, SHM_STOPPED);
  cr_assert_eq(polled.stop_calls, 3);

  /* and it ends a wait that would last forever, once asleep in it */
  struct get_arg forever = { .q = q, .timeout = -1 };
  pthread_create(&t, NULL, blocking_get, &forever);
  await_sleeper(0, q);
  atomic_store(&forever.stop, 1);
  join_within(t, 10, NULL);
  cr_assert_eq(forever.rc, SHM_STOPPED);
}

static atomic_int sigurgs;
static void on_sigurg(int sig) {
  (void)sig;
  atomic_fetch_add(&sigurgs, 1);
}

Test(queue, signals_do_not_break_a_wait) {
  struct sigaction sa = { .sa_handler = on_sigurg }; /* no SA_RESTART: the futex sees EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGURG, &sa, NULL);
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  struct get_arg arg = { .q = q, .timeout = 30 };
  pthread_t t;
  pthread_create(&t, NULL, blocking_get, &arg);
  atomic_store(&sigurgs, 0);
  for (int i = 0; i < 20; i++) { /* each signal lands in a sleeping wait, and is handled */
    await_sleeper(0, q);
    pthread_kill(t, SIGURG);
    double end = now_s() + 30;
    while (atomic_load(&sigurgs) < i + 1 && now_s() < end) sleep_s(0.001);
    cr_assert_eq(atomic_load(&sigurgs), i + 1, "signal %d was not handled", i + 1);
  }
  put_str(q, "after signals");
  join_within(t, 30, NULL);
  cr_assert_eq(arg.rc, SHM_OK);
  cr_assert_str_eq(arg.got, "after signals");
  signal(SIGURG, SIG_DFL);
}

struct stream {
  shm_off q;
  int n;
};

static void *stream_producer(void *p) {
  struct stream *s = p;
  for (int i = 0; i < s->n; i++)
    if (shm_queue_put(A, s->q, &i, sizeof i, NULL, NULL, NULL) != SHM_OK) return (void *)1;
  return NULL;
}

Test(queue, threads_stream_in_order) {
  struct stream s = { .n = 100000 };
  cr_assert_eq(shm_queue_new(A, 64, &s.q), SHM_OK);
  pthread_t t;
  pthread_create(&t, NULL, stream_producer, &s);
  for (int i = 0; i < s.n; i++) {
    void *data;
    size_t len;
    struct timespec deadline = in(30);
    cr_assert_eq(shm_queue_get(A, s.q, &data, &len, &deadline, NULL, NULL), SHM_OK);
    int seq;
    memcpy(&seq, data, sizeof seq);
    free(data);
    cr_assert_eq(seq, i);
  }
  void *ret;
  join_within(t, 30, &ret);
  cr_assert_null(ret);
  shm_stats st;
  shm_arena_stats(A, &st);
  cr_assert_eq(st.used_blocks, 1); /* only the queue itself */
}

/* ---------------------------------------------------------------- value */

Test(value, subtypes_follow_lua) {
  shm_off v;
  shm_number n;
  cr_assert_eq(shm_value_new(A, shm_int(1), &v), SHM_OK);
  cr_assert_eq(shm_value_add(A, v, shm_int(2), &n), SHM_OK);
  cr_assert(!n.is_float && n.i == 3);
  cr_assert_eq(shm_value_add(A, v, shm_float(0.5), &n), SHM_OK);
  cr_assert(n.is_float && n.f == 3.5);
  cr_assert_eq(shm_value_add(A, v, shm_int(1), &n), SHM_OK); /* float stays float */
  cr_assert(n.is_float && n.f == 4.5);
  cr_assert_eq(shm_value_get(A, v, &n), SHM_OK);
  cr_assert(n.is_float && n.f == 4.5);
  cr_assert_eq(shm_value_set(A, v, shm_int(7)), SHM_OK);
  cr_assert_eq(shm_value_get(A, v, &n), SHM_OK);
  cr_assert(!n.is_float && n.i == 7);
  cr_assert_eq(shm_value_set(A, v, shm_float(2.0)), SHM_OK); /* 2.0 is a float, not 2 */
  cr_assert_eq(shm_value_add(A, v, shm_int(1), &n), SHM_OK);
  cr_assert(n.is_float && n.f == 3.0);
  cr_assert_eq(shm_value_set(A, v, shm_int(INT64_MAX)), SHM_OK);
  cr_assert_eq(shm_value_add(A, v, shm_int(1), &n), SHM_OK); /* wraps, like Lua */
  cr_assert(!n.is_float && n.i == INT64_MIN);
  cr_assert_eq(shm_value_add(A, v, shm_int(-1), NULL), SHM_OK);
  cr_assert_eq(shm_value_get(A, v, &n), SHM_OK);
  cr_assert(!n.is_float && n.i == INT64_MAX);
}

#define ADDS 20000

struct adder {
  shm_off ints, floats;
};

static int add_many(struct adder *a) {
  for (int i = 0; i < ADDS; i++) {
    if (shm_value_add(A, a->ints, shm_int(1), NULL) != SHM_OK ||
        shm_value_add(A, a->floats, shm_float(0.5), NULL) != SHM_OK)
      return 1;
  }
  return 0;
}

static void *add_thread(void *p) { return (void *)(intptr_t)add_many(p); }
static int add_child(void *p) { return add_many(p); }

Test(value, add_is_atomic_across_threads_and_processes) {
  struct adder a;
  cr_assert_eq(shm_value_new(A, shm_int(0), &a.ints), SHM_OK);
  cr_assert_eq(shm_value_new(A, shm_float(0), &a.floats), SHM_OK);
  pid_t pid[2];
  for (int i = 0; i < 2; i++) pid[i] = spawn(add_child, &a);
  pthread_t t[3]; /* after the forks: never fork with threads running */
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, add_thread, &a);
  for (int i = 0; i < 3; i++) {
    void *ret;
    join_within(t[i], 60, &ret);
    cr_assert_null(ret);
  }
  for (int i = 0; i < 2; i++) expect_exit(pid[i], 0, 60);
  shm_number n;
  cr_assert_eq(shm_value_get(A, a.ints, &n), SHM_OK);
  cr_assert(!n.is_float);
  cr_assert_eq(n.i, 5 * ADDS);
  cr_assert_eq(shm_value_get(A, a.floats, &n), SHM_OK);
  cr_assert(n.is_float);
  cr_assert_eq(n.f, 5 * ADDS * 0.5); /* halves add up exactly in a double */
}

/* ================================================================ sync */

Test(sync, rlock_counts_its_owners_acquires) {
  shm_off r;
  cr_assert_eq(shm_rlock_new(A, &r), SHM_OK);
  cr_assert_eq(shm_obj_type(A, r), SHM_T_RLOCK);
  struct timespec now = in(0);
  for (int i = 0; i < 3; i++) cr_assert_eq(shm_lock_acquire(A, r, 7, &now, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_lock_acquire(A, r, 8, &now, NULL, NULL), SHM_TIMEOUT, "another owner waits");
  for (int i = 0; i < 2; i++) cr_assert_eq(shm_lock_release(A, r, 7), SHM_OK);
  cr_assert(shm_lock_locked(A, r) && shm_lock_owned(A, r, 7) && shm_lock_owner(A, r) == 7);
  cr_assert_eq(shm_lock_release(A, r, 7), SHM_OK);
  cr_assert(!shm_lock_locked(A, r));
  cr_assert_eq(shm_lock_release(A, r, 7), SHM_NOT_OWNER);
  cr_assert_eq(shm_obj_release(A, r), SHM_OK);
}

struct wait_arg {
  shm_off obj;
  double timeout;
  int rc;
  int64_t index;
};

static void *sem_waiter(void *p) {
  struct wait_arg *a = p;
  struct timespec d = in(a->timeout);
  a->rc = shm_sem_acquire(A, a->obj, &d, NULL, NULL);
  return NULL;
}

Test(sync, semaphore_counts_blocks_and_bounds) {
  shm_off s;
  cr_assert_eq(shm_sem_new(A, 2, 2, &s), SHM_OK);
  cr_assert_eq(shm_sem_release(A, s, 1), SHM_OVERFLOW, "bounded: above 2");
  struct timespec now = in(0);
  cr_assert_eq(shm_sem_acquire(A, s, &now, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_sem_acquire(A, s, &now, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_sem_acquire(A, s, &now, NULL, NULL), SHM_TIMEOUT);
  struct wait_arg arg = { .obj = s, .timeout = 30 };
  pthread_t t;
  pthread_create(&t, NULL, sem_waiter, &arg);
  cr_assert_eq(shm_sem_release(A, s, 1), SHM_OK);
  join_within(t, 30, NULL);
  cr_assert_eq(arg.rc, SHM_OK);
  cr_assert_eq(shm_sem_value(A, s), 0);
  cr_assert_eq(shm_sem_new(A, 3, 2, &s), SHM_EINVAL, "value above its bound");
}

static void *barrier_party(void *p) {
  struct wait_arg *a = p;
  a->rc = shm_barrier_wait(A, a->obj, NULL, NULL, NULL, &a->index);
  return NULL;
}

Test(sync, barrier_indexes_each_round_and_a_timeout_breaks_it) {
  shm_off b;
  cr_assert_eq(shm_barrier_new(A, 3, &b), SHM_OK);
  for (int round = 0; round < 20; round++) {
    struct wait_arg args[3] = { { .obj = b }, { .obj = b }, { .obj = b } };
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, barrier_party, &args[i]);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
      join_within(t[i], 30, NULL);
      cr_assert_eq(args[i].rc, SHM_OK);
      seen |= 1 << args[i].index;
    }
    cr_assert_eq(seen, 7, "round %d: indexes 0, 1, 2 once each", round);
  }
  struct wait_arg other = { .obj = b };
  pthread_t t;
  pthread_create(&t, NULL, barrier_party, &other);
  while (shm_barrier_info(A, b, 1) < 1) sleep_s(0.001);
  struct timespec soon = in(0.01);
  int64_t index;
  cr_assert_eq(shm_barrier_wait(A, b, &soon, NULL, NULL, &index), SHM_TIMEOUT);
  join_within(t, 30, NULL);
  cr_assert_eq(other.rc, SHM_BROKEN, "the other waiter is freed, broken");
  cr_assert_eq(shm_barrier_wait(A, b, NULL, NULL, NULL, &index), SHM_BROKEN);
  cr_assert_eq(shm_barrier_reset(A, b, 0), SHM_OK);
  cr_assert_eq(shm_barrier_info(A, b, 2), 0);
}

struct cond_arg {
  shm_off cond, lock;
  uint64_t owner;
  shm_off waiting; /* a flag: set once it holds the lock, about to wait */
  int rc;
};

static void *cond_waiter(void *p) {
  struct cond_arg *a = p;
  shm_lock_acquire(A, a->lock, a->owner, NULL, NULL, NULL);
  flag_set(a->waiting, 1);
  struct timespec d = in(30);
  a->rc = shm_cond_wait(A, a->cond, a->owner, &d, NULL, NULL);
  if (!shm_lock_owned(A, a->lock, a->owner)) a->rc = -1; /* it must hold the lock again */
  shm_lock_release(A, a->lock, a->owner);
  return NULL;
}

Test(sync, condition_wait_gives_the_lock_up_and_notify_needs_it) {
  shm_off l, c;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_cond_new(A, l, &c), SHM_OK);
  cr_assert_eq(shm_cond_lock(A, c), l);
  cr_assert_eq(shm_cond_wait(A, c, 1, NULL, NULL, NULL), SHM_NOT_OWNER);
  cr_assert_eq(shm_cond_notify(A, c, 1, 1), SHM_NOT_OWNER);
  struct timespec soon = in(0.01);
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_cond_wait(A, c, 1, &soon, NULL, NULL), SHM_TIMEOUT);
  cr_assert(shm_lock_owned(A, l, 1), "held again after a timeout");
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
  struct cond_arg arg = { .cond = c, .lock = l, .owner = 2, .waiting = flag_new() };
  pthread_t t;
  pthread_create(&t, NULL, cond_waiter, &arg);
  cr_assert(flag_wait(arg.waiting, 1, 30));
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK); /* free only once it waits */
  cr_assert_eq(shm_cond_notify(A, c, 1, 1), SHM_OK);
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
  join_within(t, 30, NULL);
  cr_assert_eq(arg.rc, SHM_OK);
  cr_assert_eq(shm_obj_release(A, c), SHM_OK);
  cr_assert_eq(shm_obj_type(A, l), SHM_T_LOCK, "the condition held its own reference");
  cr_assert_eq(shm_obj_release(A, l), SHM_OK);
}

static int cond_wait_child(void *p) {
  struct cond_arg *a = p;
  shm_lock_acquire(A, a->lock, a->owner, NULL, NULL, NULL);
  flag_set(a->waiting, 1);
  shm_cond_wait(A, a->cond, a->owner, NULL, NULL, NULL);
  return 0;
}

Test(sync, a_killed_waiter_does_not_swallow_a_notify) {
  shm_off l, c;
  cr_assert_eq(shm_lock_new(A, &l), SHM_OK);
  cr_assert_eq(shm_cond_new(A, l, &c), SHM_OK);
  struct cond_arg dead = { .cond = c, .lock = l, .owner = 9, .waiting = flag_new() };
  pid_t pid = spawn(cond_wait_child, &dead);
  cr_assert(flag_wait(dead.waiting, 1, 30));
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK); /* it is waiting now */
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
  kill_and_reap(pid);
  struct cond_arg live = { .cond = c, .lock = l, .owner = 2, .waiting = flag_new() };
  pthread_t t;
  pthread_create(&t, NULL, cond_waiter, &live);
  cr_assert(flag_wait(live.waiting, 1, 30));
  cr_assert_eq(shm_lock_acquire(A, l, 1, NULL, NULL, NULL), SHM_OK);
  cr_assert_eq(shm_cond_notify(A, c, 1, 1), SHM_OK, "the dead one is first in line, and skipped");
  cr_assert_eq(shm_lock_release(A, l, 1), SHM_OK);
  join_within(t, 30, NULL);
  cr_assert_eq(live.rc, SHM_OK);
}

static int event_child(void *p) {
  shm_off e = *(shm_off *)p;
  struct timespec d = in(30);
  return shm_event_wait(A, e, &d, NULL, NULL) == SHM_OK ? 0 : 1;
}

Test(sync, event_wakes_a_process) {
  shm_off e;
  cr_assert_eq(shm_event_new(A, &e), SHM_OK);
  struct timespec now = in(0);
  cr_assert_eq(shm_event_wait(A, e, &now, NULL, NULL), SHM_TIMEOUT);
  pid_t pid = spawn(event_child, &e);
  cr_assert_eq(shm_event_set(A, e, 1), SHM_OK);
  expect_exit(pid, 0, 30);
  cr_assert(shm_event_is_set(A, e));
  cr_assert_eq(shm_event_set(A, e, 0), SHM_OK);
  cr_assert(!shm_event_is_set(A, e));
}

Test(sync, array_ops_and_range) {
  shm_off arr;
  cr_assert_eq(shm_array_new(A, 4, &arr), SHM_OK);
  cr_assert_eq(shm_array_len(A, arr), 4);
  shm_number x = shm_int(5);
  cr_assert_eq(shm_array_op(A, arr, 3, 1, &x), SHM_OK);
  x = shm_float(0.5);
  cr_assert_eq(shm_array_op(A, arr, 3, 2, &x), SHM_OK);
  cr_assert(x.is_float && x.f == 5.5);
  cr_assert_eq(shm_array_op(A, arr, 4, 0, &x), SHM_EINVAL);
  cr_assert_eq(shm_array_op(A, arr, 0, 0, &x), SHM_OK);
  cr_assert(!x.is_float && x.i == 0);
  cr_assert_eq(shm_obj_release(A, arr), SHM_OK);
  cr_assert_eq(shm_arena_check(A), SHM_OK);
}

Test(sync, queue_task_done_and_join) {
  shm_off q;
  cr_assert_eq(shm_queue_new(A, 0, &q), SHM_OK);
  cr_assert_eq(shm_queue_task_done(A, q), SHM_OVERFLOW);
  cr_assert_eq(shm_queue_put(A, q, "a", 1, NULL, NULL, NULL), SHM_OK);
  struct timespec now = in(0);
  cr_assert_eq(shm_queue_join(A, q, &now, NULL, NULL), SHM_TIMEOUT);
  cr_assert_eq(shm_queue_task_done(A, q), SHM_OK, "done before it was got: allowed, as in Python");
  cr_assert_eq(shm_queue_join(A, q, NULL, NULL, NULL), SHM_OK);
}

Test(sync, wait_board_put_replace_remove_and_full) {
  uint64_t v0 = shm_board_version(A), v;
  shm_wait w = { .token = 1, .on = 10, .kind = 1 }, out[SHM_BOARD_SLOTS];
  cr_assert_eq(shm_board_put(A, &w, NULL), SHM_OK);
  w.on = 11;
  cr_assert_eq(shm_board_put(A, &w, NULL), SHM_OK, "the same token replaces its entry");
  cr_assert_eq(shm_board_read(A, out, SHM_BOARD_SLOTS, &v), 1);
  cr_assert(out[0].on == 11 && v != v0);
  for (uint64_t t = 2; t <= SHM_BOARD_SLOTS; t++) {
    w.token = t;
    cr_assert_eq(shm_board_put(A, &w, NULL), SHM_OK);
  }
  w.token = SHM_BOARD_SLOTS + 1;
  cr_assert_eq(shm_board_put(A, &w, NULL), SHM_ENOSPC);
  for (uint64_t t = 1; t < SHM_BOARD_SLOTS; t++) shm_board_remove(A, t);
  cr_assert_eq(shm_board_read(A, out, SHM_BOARD_SLOTS, NULL), 1);
  int slot = out[0].slot;
  shm_board_remove_slot(A, slot, 12345);
  cr_assert_eq(shm_board_read(A, out, SHM_BOARD_SLOTS, NULL), 1, "another token's slot is left alone");
  shm_board_remove_slot(A, slot, SHM_BOARD_SLOTS);
  cr_assert_eq(shm_board_read(A, out, SHM_BOARD_SLOTS, NULL), 0);
  w.token = 77;
  cr_assert_eq(shm_board_put(A, &w, &slot), SHM_OK);
  cr_assert_eq(slot, 0, "the board shrank back: the first slot is reused");
}
