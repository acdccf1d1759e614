/*
 * shared.c — the arena and the shared objects (lock, queue, value, and the
 * sync objects, array, pipe and wait board at the end).
 *
 * THE ARENA. One mmap(MAP_SHARED | MAP_ANONYMOUS) region, made at start-up.
 * fork() does not copy a shared mapping: parent and children keep looking
 * at the same physical pages, at the same virtual address. Anonymous means
 * there is no file or name to clean up: when the last process that maps it
 * exits, the kernel frees it, so nothing can leak past the run.
 *
 * The struct shm_arena sits at offset 0; after it comes the heap, a row of
 * blocks. Each block starts and ends with a tag word (its size, with bit 0
 * set when it is in use); that is Knuth's "boundary tag" layout. The end tag
 * lets free() look at the block before it and merge with it (coalescing) in
 * constant time. Free blocks also hold the offsets of the previous and next
 * free blocks: the free list, searched first-fit. The heap is framed by two
 * tags marked "in use", so merging never runs off either end.
 *
 * WHY OFFSETS, NOT POINTERS. A handle must mean the same object wherever it
 * goes: to another thread, into a pipe to another process, through the
 * marshaller. An offset from the arena's start does, whatever address a
 * process has the arena at; it is also easy to check (in range, on a block
 * in use, with the right magic) before trusting it. Forked children do map
 * the arena at the same address, but nothing here relies on it.
 *
 * WHY ROBUST MUTEXES. Every structure is guarded by a process-shared pthread
 * mutex. With an ordinary mutex, a process killed while holding one leaves
 * it locked forever and wedges every other process. A ROBUST mutex is known
 * to the kernel: when its owner thread dies, the kernel marks it "owner
 * died" and the next pthread_mutex_lock() returns EOWNERDEAD, with the mutex
 * held. That caller must bring the data back to a consistent state, then
 * call pthread_mutex_consistent().
 *
 * A PROCESS THAT DIES MID-OPERATION. Each operation is ordered so that one
 * single store commits it, and each structure has a repair function that
 * the next locker runs on EOWNERDEAD:
 *  - heap: a block's head tag is written last when it is split or merged,
 *    so walking the heap by head tags is always possible; repair walks it,
 *    rewrites the end tags, merges neighbours and rebuilds the free list. A
 *    block being allocated or freed at the moment of death may be leaked.
 *  - queue: an item is linked by its predecessor's `next` before the tail
 *    and the count move; repair walks the list from the head and recomputes
 *    tail and count. The item of a put or get cut short may be lost (a put
 *    allocates its item before waiting for room, so a process killed while
 *    blocked in put leaks that one block).
 *  - value: the number is written into the spare of two slots, then one
 *    store of `cur` publishes it; a half-written slot is never current.
 *  - lock: the user lock IS a robust mutex, so the kernel notices a dead
 *    owner (process or thread); see shared.h for what the acquirer sees.
 *
 * WHY FUTEXES AND NOT CONDITION VARIABLES. glibc's process-shared condition
 * variable keeps a count of the waiters inside its groups; a process killed
 * while waiting never gives its reference back, and a later
 * pthread_cond_signal() waits for it forever (seen on glibc 2.36: one killed
 * waiter, and the next signaller hangs). So a waiter here sleeps on a futex
 * word: it notes the word's value with the mutex held, unlocks, and sleeps
 * only if the value is unchanged; a waker changes the value (with the mutex
 * held) and then wakes. A dead sleeper leaves nothing behind but a waiter
 * count one too high, which only costs a useless wake-up. Sleeping and
 * waking cost microseconds each, so they are kept rare: a wake-up is only
 * sent to a waiter that has not been sent one already (struct waitq), and
 * a getter or putter watches the item count for a few microseconds before
 * it sleeps. Between two threads or two processes this queue moves several
 * million small items a second (bench/shm_queue.c).
 *
 * Every wait sleeps at most SHM_POLL_NS (50 ms) at a time, so should_stop
 * and the deadline are polled; a signal (EINTR) only ends a sleep early.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid() */
#endif
#include "shared.h"

#include "check.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

const char *shm_strerror(int rc) {
  switch (rc) {
  case SHM_OK: return "success";
  case SHM_TIMEOUT: return "timed out";
  case SHM_STOPPED: return "interrupted";
  case SHM_OWNER_DEAD: return "the lock's owner died while holding it";
  case SHM_NOT_OWNER: return "lock not held by this owner";
  case SHM_CLOSED: return "queue is closed";
  case SHM_ENOSPC: return "shared memory arena is full";
  case SHM_ENOMEM: return "out of memory";
  case SHM_EINVAL: return "invalid shared object handle or argument";
  case SHM_ESYS: return "system call failed";
  case SHM_OVERFLOW: return "released (or marked done) more times than acquired (or put)";
  case SHM_BROKEN: return "barrier is broken";
  default: return "unknown error";
  }
}

/* ---------------------------------------------------------------- time */

#define NS_PER_S 1000000000L

static struct timespec now_mono(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t;
}

static int ts_before(const struct timespec *x, const struct timespec *y) {
  return x->tv_sec < y->tv_sec || (x->tv_sec == y->tv_sec && x->tv_nsec < y->tv_nsec);
}

static struct timespec ts_add_ns(struct timespec t, int64_t ns) {
  t.tv_sec += ns / NS_PER_S;
  t.tv_nsec += ns % NS_PER_S;
  if (t.tv_nsec >= NS_PER_S) {
    t.tv_sec++;
    t.tv_nsec -= NS_PER_S;
  }
  return t;
}

struct timespec shm_deadline_in(double seconds) {
  if (!(seconds > 0)) return now_mono();
  if (seconds > 1e9) /* far enough; keeps the conversion below in range */
    seconds = 1e9;
  double whole = (double)(int64_t)seconds;
  struct timespec t = now_mono();
  t.tv_sec += (time_t)whole;
  return ts_add_ns(t, (int64_t)((seconds - whole) * 1e9));
}

/* NULL means "forever". */
static int deadline_passed(const struct timespec *deadline) {
  if (!deadline) return 0;
  struct timespec now = now_mono();
  return !ts_before(&now, deadline);
}

/* Where the next sleep ends: the deadline, or one poll interval from now. */
static struct timespec sleep_until(const struct timespec *deadline) {
  struct timespec end = ts_add_ns(now_mono(), SHM_POLL_NS);
  if (deadline && ts_before(deadline, &end)) end = *deadline;
  return end;
}

/* --------------------------------------------------------------- futex */

/* Sleeps while *word == seen, until `until` (absolute CLOCK_MONOTONIC). No
 * FUTEX_PRIVATE_FLAG: the word may be shared with other processes. Early
 * returns (EINTR, EAGAIN, a wake-up) all mean "look again". */
static _Thread_local _Atomic uint32_t *sleep_note; /* shm_sleep_note: 1 while this thread sleeps */

static _Thread_local shm_sleep_fn sleep_hook; /* shm_sleep_hook: sleeps instead of the futex */
static _Thread_local void *sleep_hook_arg;

static void futex_wait(_Atomic uint32_t *word, uint32_t seen, const struct timespec *until) {
  if (sleep_hook) { /* --sim: the caller looks again when the hook returns, as after a wake-up */
    sleep_hook(sleep_hook_arg);
    return;
  }
  if (sleep_note) atomic_store(sleep_note, 1);
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, seen, until, NULL, FUTEX_BITSET_MATCH_ANY);
  if (sleep_note) atomic_store(sleep_note, 0); /* before the waiter looks at what it waits for */
}

void shm_sleep_note(_Atomic uint32_t *flag) { sleep_note = flag; }

void shm_sleep_hook(shm_sleep_fn fn, void *arg) {
  sleep_hook = fn;
  sleep_hook_arg = arg;
}

static void futex_wake(_Atomic uint32_t *word, int n) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ------------------------------------------------------- robust mutexes */

static int mutex_init(pthread_mutex_t *m) {
  pthread_mutexattr_t at;
  PT_CHECK(pthread_mutexattr_init(&at));
  PT_CHECK(pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED));
  PT_CHECK(pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST));
  /* error-checking: relocking by the owner fails at once instead of hanging */
  PT_CHECK(pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK));
  PT_CHECK(pthread_mutex_init(m, &at));
  PT_CHECK(pthread_mutexattr_destroy(&at));
  return SHM_OK;
}

/* ---------------------------------------------------------------- arena */

#define ARENA_MAGIC 0x676976616d6d6170ULL /* any constant: marks a mapping as ours */
#define USED 1ULL
#define MIN_BLOCK 32 /* head + prev + next + foot */
#define TAG_SIZE(t) ((t) & ~(uint64_t)7)

struct shm_arena {
  uint64_t magic;
  uint64_t size; /* bytes mapped */
  uint64_t heap_start, heap_end; /* the blocks lie in [heap_start, heap_end) */
  pthread_mutex_t mutex; /* guards everything below and every tag */
  uint64_t free_head; /* offset of the first free block, 0 if none */
  uint64_t used_bytes, used_blocks;
  _Atomic uint64_t repairs; /* diagnostics: owner-died recoveries */
  _Atomic uint64_t board; /* the wait board's offset, made on first use (0: none yet) */
};

/* Locks an internal mutex; if its owner died, runs repair(a, ctx) first. */
static void robust_lock(shm_arena *a, pthread_mutex_t *m, void (*repair)(shm_arena *, void *), void *ctx) {
  if (PT_CHECK_OR(pthread_mutex_lock(m), EOWNERDEAD)) {
    repair(a, ctx);
    atomic_fetch_add(&a->repairs, 1);
    PT_CHECK(pthread_mutex_consistent(m));
  }
  /* Other errors cannot happen (PT_CHECK_OR aborts): we never leave a mutex
   * inconsistent and never lock one we hold. */
}

static uint64_t *word_at(shm_arena *a, uint64_t off) { return (uint64_t *)((char *)a + off); }

/* A free block's links live just after its head tag. */
static uint64_t *prev_link(shm_arena *a, uint64_t b) { return word_at(a, b + 8); }
static uint64_t *next_link(shm_arena *a, uint64_t b) { return word_at(a, b + 16); }

/* Head and foot tags; the foot first, so the head (the commit) comes last. */
static void set_tags(shm_arena *a, uint64_t b, uint64_t size, uint64_t used) {
  *word_at(a, b + size - 8) = size | used;
  *word_at(a, b) = size | used;
}

static void list_push(shm_arena *a, uint64_t b) {
  *prev_link(a, b) = 0;
  *next_link(a, b) = a->free_head;
  if (a->free_head) *prev_link(a, a->free_head) = b;
  a->free_head = b;
}

static void list_unlink(shm_arena *a, uint64_t b) {
  uint64_t p = *prev_link(a, b), n = *next_link(a, b);
  if (p)
    *next_link(a, p) = n;
  else
    a->free_head = n;
  if (n) *prev_link(a, n) = p;
}

/* Rebuilds the free list, the end tags and the counters from the head tags
 * alone, merging free neighbours. Runs when a process died inside the
 * allocator. A head that makes no sense ends the walk: the rest is sealed
 * off as one used block (leaked, but never handed out twice). */
static void heap_repair(shm_arena *a, void *unused) {
  (void)unused;
  a->free_head = 0;
  a->used_bytes = a->used_blocks = 0;
  uint64_t b = a->heap_start, last_free = 0;
  while (b < a->heap_end) {
    uint64_t tag = *word_at(a, b), size = TAG_SIZE(tag);
    if (size < MIN_BLOCK || size > a->heap_end - b) {
      size = a->heap_end - b;
      tag = size | USED;
    }
    if (tag & USED) {
      set_tags(a, b, size, USED);
      a->used_bytes += size;
      a->used_blocks++;
      last_free = 0;
    } else if (last_free) {
      set_tags(a, last_free, b + size - last_free, 0);
    } else {
      set_tags(a, b, size, 0);
      list_push(a, b);
      last_free = b;
    }
    b += size;
  }
}

static void arena_lock(shm_arena *a) { robust_lock(a, &a->mutex, heap_repair, NULL); }
static void arena_unlock(shm_arena *a) { PT_CHECK(pthread_mutex_unlock(&a->mutex)); }

int shm_arena_create(size_t size, shm_arena **out) {
  long page = sysconf(_SC_PAGESIZE);
  if (size == 0) size = SHM_DEFAULT_ARENA_SIZE;
  if (size < (size_t)page) size = (size_t)page;
  size = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
  /* NORESERVE: a large arena costs nothing until its pages are touched */
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return SHM_ESYS;
  shm_arena *a = p;
  a->magic = ARENA_MAGIC;
  a->size = size;
  if (mutex_init(&a->mutex) != SHM_OK) {
    munmap(p, size);
    return SHM_ESYS;
  }
  uint64_t fence = (sizeof *a + 7) & ~(uint64_t)7; /* end tag of an imaginary used block */
  *word_at(a, fence) = USED;
  a->heap_start = fence + 8;
  a->heap_end = size - 8;
  *word_at(a, a->heap_end) = USED; /* head tag of another one */
  set_tags(a, a->heap_start, a->heap_end - a->heap_start, 0);
  list_push(a, a->heap_start);
  *out = a;
  return SHM_OK;
}

void shm_arena_destroy(shm_arena *a) {
  if (a) munmap(a, a->size);
}

void *shm_ptr(shm_arena *a, shm_off off) {
  if (!a || off < a->heap_start || off >= a->heap_end) return NULL;
  return (char *)a + off;
}

/* Is `off` the payload of a block in use? Only reads this block's tags,
 * which nobody else writes while the block is allocated. */
static int block_ok(shm_arena *a, shm_off off) {
  if (!a || off % 8 || off < a->heap_start + 8 || off >= a->heap_end) return 0;
  uint64_t b = off - 8, tag = *word_at(a, b), size = TAG_SIZE(tag);
  if (!(tag & USED) || size < MIN_BLOCK || size > a->heap_end - b) return 0;
  return *word_at(a, b + size - 8) == tag;
}

int shm_alloc(shm_arena *a, size_t n, shm_off *out) {
  if (!a || !out) return SHM_EINVAL;
  if (n > a->size) return SHM_ENOSPC;
  uint64_t need = ((uint64_t)n + 7) / 8 * 8 + 16; /* payload + head + foot */
  if (need < MIN_BLOCK) need = MIN_BLOCK;
  arena_lock(a);
  uint64_t b = a->free_head;
  while (b && TAG_SIZE(*word_at(a, b)) < need) b = *next_link(a, b);
  if (!b) {
    arena_unlock(a);
    return SHM_ENOSPC;
  }
  uint64_t size = TAG_SIZE(*word_at(a, b)), blk = b;
  if (size - need >= MIN_BLOCK) {
    /* carve from the tail: the free part keeps its place in the list */
    blk = b + size - need;
    set_tags(a, blk, need, USED);
    set_tags(a, b, size - need, 0);
  } else {
    need = size;
    list_unlink(a, b);
    set_tags(a, b, size, USED);
  }
  a->used_bytes += need;
  a->used_blocks++;
  arena_unlock(a);
  *out = blk + 8;
  return SHM_OK;
}

int shm_free(shm_arena *a, shm_off off) {
  if (!a) return SHM_EINVAL;
  arena_lock(a);
  if (!block_ok(a, off)) { /* under the lock: a double free sees the tag cleared */
    arena_unlock(a);
    return SHM_EINVAL;
  }
  uint64_t b = off - 8, size = TAG_SIZE(*word_at(a, b));
  a->used_bytes -= size;
  a->used_blocks--;
  uint64_t next = b + size, next_tag = *word_at(a, next);
  if (!(next_tag & USED)) { /* merge with the free block after */
    list_unlink(a, next);
    size += TAG_SIZE(next_tag);
  }
  uint64_t prev_tag = *word_at(a, b - 8);
  if (!(prev_tag & USED)) { /* merge into the free block before; it stays listed */
    uint64_t prev = b - TAG_SIZE(prev_tag);
    set_tags(a, prev, size + TAG_SIZE(prev_tag), 0);
  } else {
    set_tags(a, b, size, 0);
    list_push(a, b);
  }
  arena_unlock(a);
  return SHM_OK;
}

void shm_arena_stats(shm_arena *a, shm_stats *out) {
  memset(out, 0, sizeof *out);
  if (!a) return;
  arena_lock(a);
  out->size = a->size;
  out->heap_bytes = a->heap_end - a->heap_start;
  out->used_bytes = a->used_bytes;
  out->used_blocks = a->used_blocks;
  for (uint64_t b = a->free_head; b; b = *next_link(a, b)) {
    uint64_t size = TAG_SIZE(*word_at(a, b));
    out->free_bytes += size;
    out->free_blocks++;
    if (size - 16 > out->largest_free) out->largest_free = size - 16;
  }
  out->repairs = atomic_load(&a->repairs);
  arena_unlock(a);
}

/* Every block well formed, no two free blocks side by side, the free list
 * exactly the free blocks, doubly linked, and the counters right. */
static int heap_check_locked(shm_arena *a) {
  uint64_t b = a->heap_start, nfree = 0, used = 0, nused = 0, prev_free = 0;
  while (b < a->heap_end) {
    uint64_t tag = *word_at(a, b), size = TAG_SIZE(tag);
    if (size < MIN_BLOCK || size > a->heap_end - b || *word_at(a, b + size - 8) != tag) return SHM_EINVAL;
    if (tag & USED) {
      used += size;
      nused++;
    } else if (prev_free) {
      return SHM_EINVAL;
    } else {
      nfree++;
    }
    prev_free = !(tag & USED);
    b += size;
  }
  if (b != a->heap_end || used != a->used_bytes || nused != a->used_blocks) return SHM_EINVAL;
  uint64_t listed = 0, prev = 0;
  for (uint64_t f = a->free_head; f; f = *next_link(a, f)) {
    if (f < a->heap_start || f >= a->heap_end || (*word_at(a, f) & USED) || *prev_link(a, f) != prev ||
        ++listed > nfree)
      return SHM_EINVAL;
    prev = f;
  }
  return listed == nfree ? SHM_OK : SHM_EINVAL;
}

int shm_arena_check(shm_arena *a) {
  if (!a || a->magic != ARENA_MAGIC) return SHM_EINVAL;
  arena_lock(a);
  int rc = heap_check_locked(a);
  arena_unlock(a);
  return rc;
}

/* -------------------------------------------------------------- objects */

#define OBJ_MAGIC(type) (0x53480000u | (uint32_t)(type)) /* "SH" + kind */

struct obj {
  uint32_t magic; /* OBJ_MAGIC(kind); 0 once destroyed */
  _Atomic uint32_t refs;
};

static struct obj *obj_at(shm_arena *a, shm_off off, int type) {
  if (!block_ok(a, off)) return NULL;
  struct obj *o = (struct obj *)((char *)a + off);
  return o->magic == OBJ_MAGIC(type) ? o : NULL;
}

/* Allocates a zeroed object of `size` bytes with one reference. */
static void *obj_new(shm_arena *a, size_t size, int type, shm_off *out) {
  if (!a || !out) return NULL;
  shm_off off;
  if (shm_alloc(a, size, &off) != SHM_OK) return NULL;
  struct obj *o = memset((char *)a + off, 0, size);
  o->magic = OBJ_MAGIC(type);
  atomic_store(&o->refs, 1);
  *out = off;
  return o;
}

int shm_obj_type(shm_arena *a, shm_off off) {
  if (!block_ok(a, off)) return SHM_T_NONE;
  uint32_t magic = ((struct obj *)((char *)a + off))->magic;
  for (int t = SHM_T_LOCK; t < SHM_T_NKINDS; t++)
    if (magic == OBJ_MAGIC(t)) return t;
  return SHM_T_NONE;
}

int shm_obj_retain(shm_arena *a, shm_off off) {
  int type = shm_obj_type(a, off);
  if (type == SHM_T_NONE) return SHM_EINVAL;
  atomic_fetch_add(&obj_at(a, off, type)->refs, 1);
  return SHM_OK;
}

static void lock_destroy(shm_arena *a, shm_off off);
static void queue_destroy(shm_arena *a, shm_off off);
static void value_destroy(shm_arena *a, shm_off off);
static void sync_destroy(shm_arena *a, shm_off off);

int shm_obj_release(shm_arena *a, shm_off off) {
  int type = shm_obj_type(a, off);
  if (type == SHM_T_NONE) return SHM_EINVAL;
  if (atomic_fetch_sub(&obj_at(a, off, type)->refs, 1) != 1) return SHM_OK;
  if (type == SHM_T_LOCK || type == SHM_T_RLOCK)
    lock_destroy(a, off);
  else if (type == SHM_T_QUEUE)
    queue_destroy(a, off);
  else if (type == SHM_T_VALUE)
    value_destroy(a, off);
  else
    sync_destroy(a, off);
  return SHM_OK;
}

/* ----------------------------------------------------------------- lock */

struct lock {
  struct obj hdr;
  pthread_mutex_t held; /* robust: held by the owner for as long as it owns the lock */
  _Atomic uint64_t owner; /* the owner's token, 0 when free */
  _Atomic int32_t owner_tid; /* the owner's kernel thread id: it alone may release */
  _Atomic uint32_t waiters; /* acquirers asleep or about to sleep */
  _Atomic uint32_t seq; /* futex word, bumped on release */
  uint32_t depth; /* rlock: acquisitions by the owner not yet released; only the owner touches it */
};

static int lock_new(shm_arena *a, int type, shm_off *out) {
  struct lock *l = obj_new(a, sizeof *l, type, out);
  if (!l) return a && out ? SHM_ENOSPC : SHM_EINVAL;
  mutex_init(&l->held);
  return SHM_OK;
}

int shm_lock_new(shm_arena *a, shm_off *out) { return lock_new(a, SHM_T_LOCK, out); }
int shm_rlock_new(shm_arena *a, shm_off *out) { return lock_new(a, SHM_T_RLOCK, out); }

/* A lock or an rlock: they share the layout. */
static struct lock *lock_at(shm_arena *a, shm_off off) {
  struct obj *o = obj_at(a, off, SHM_T_LOCK);
  return (struct lock *)(o ? o : obj_at(a, off, SHM_T_RLOCK));
}

/* Does (owner, this thread) hold l? */
static int lock_mine(struct lock *l, uint64_t owner) {
  return owner != 0 && atomic_load(&l->owner) == owner && atomic_load(&l->owner_tid) == gettid();
}

/* Wakes one sleeping acquirer, if the count says there is one. */
static void lock_wake(struct lock *l) {
  /* pairs with the fence in lock_acquire: either the waiter's trylock saw
   * the mutex free, or we see its count */
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load(&l->waiters)) {
    atomic_fetch_add(&l->seq, 1);
    futex_wake(&l->seq, 1);
  }
}

/* SHM_OK, SHM_OWNER_DEAD, or -1 when someone (maybe us) holds it. */
static int lock_try(shm_arena *a, struct lock *l, uint64_t owner) {
  int rc = pthread_mutex_trylock(&l->held);
  if (rc == 0) {
    atomic_store(&l->owner, owner);
    atomic_store(&l->owner_tid, (int32_t)gettid());
    l->depth = 1;
    return SHM_OK;
  }
  if (rc != EOWNERDEAD) return -1; /* EBUSY, or EDEADLK: we hold it ourselves and wait like Python */
  /* the owner died holding it: make it usable, leave it free, say so */
  atomic_fetch_add(&a->repairs, 1);
  atomic_store(&l->owner, 0);
  atomic_store(&l->owner_tid, 0);
  PT_CHECK(pthread_mutex_consistent(&l->held));
  PT_CHECK(pthread_mutex_unlock(&l->held));
  lock_wake(l);
  return SHM_OWNER_DEAD;
}

int shm_lock_acquire(shm_arena *a, shm_off off, uint64_t owner, const struct timespec *deadline,
                     shm_stop_fn should_stop, void *arg) {
  struct lock *l = lock_at(a, off);
  if (!l || owner == 0) return SHM_EINVAL;
  if (l->hdr.magic == OBJ_MAGIC(SHM_T_RLOCK) && lock_mine(l, owner)) { /* re-entered by its owner */
    l->depth++;
    return SHM_OK;
  }
  for (;;) {
    int rc = lock_try(a, l, owner);
    if (rc >= 0) return rc;
    if (deadline_passed(deadline)) return SHM_TIMEOUT;
    if (should_stop && should_stop(arg)) return SHM_STOPPED;
    /* count ourselves, note seq, try again, and only then sleep: a release
     * after the failed try sees the count and changes seq */
    atomic_fetch_add(&l->waiters, 1);
    uint32_t seen = atomic_load(&l->seq);
    atomic_thread_fence(memory_order_seq_cst);
    rc = lock_try(a, l, owner);
    if (rc < 0) {
      struct timespec until = sleep_until(deadline);
      futex_wait(&l->seq, seen, &until);
    }
    atomic_fetch_sub(&l->waiters, 1);
    if (rc >= 0) return rc;
  }
}

int shm_lock_release(shm_arena *a, shm_off off, uint64_t owner) {
  struct lock *l = lock_at(a, off);
  if (!l) return SHM_EINVAL;
  /* the token and the thread: a robust mutex can only be unlocked by the
   * thread that locked it (and these fields only change under it) */
  if (!lock_mine(l, owner)) return SHM_NOT_OWNER;
  if (l->depth > 1) { /* an rlock acquired more than once: still held */
    l->depth--;
    return SHM_OK;
  }
  atomic_store(&l->owner, 0);
  atomic_store(&l->owner_tid, 0);
  PT_CHECK(pthread_mutex_unlock(&l->held));
  lock_wake(l);
  return SHM_OK;
}

int shm_lock_locked(shm_arena *a, shm_off off) {
  struct lock *l = lock_at(a, off);
  return l && atomic_load(&l->owner) != 0;
}

uint64_t shm_lock_owner(shm_arena *a, shm_off off) {
  struct lock *l = lock_at(a, off);
  return l ? atomic_load(&l->owner) : 0;
}

int shm_lock_owned(shm_arena *a, shm_off off, uint64_t owner) {
  struct lock *l = lock_at(a, off);
  return l && lock_mine(l, owner);
}

/* Frees it unless another thread holds it: that thread's robust list (read
 * by the kernel when it exits) points into the mutex, so the memory must
 * not be reused. Leaking it is the safe choice. */
static void lock_destroy(shm_arena *a, shm_off off) {
  struct lock *l = (struct lock *)((char *)a + off);
  int rc = pthread_mutex_trylock(&l->held); /* EDEADLK: we hold it already */
  if (rc == EOWNERDEAD)
    PT_CHECK(pthread_mutex_consistent(&l->held));
  else if (rc != 0 && rc != EDEADLK)
    return;
  l->hdr.magic = 0;
  PT_CHECK(pthread_mutex_unlock(&l->held));
  PT_CHECK(pthread_mutex_destroy(&l->held));
  shm_free(a, off);
}

/* ---------------------------------------------------------------- queue */

struct item {
  shm_off next; /* the item after this one, 0 at the tail */
  uint64_t len;
  unsigned char data[];
};

/* Sleepers on one condition. With the mutex held a waker changes seq, so a
 * sleeper that noted the old value does not go to sleep, or is woken.
 * `signals` counts wake-ups sent and not yet absorbed by a waiter coming
 * back: a waker only wakes when waiters > signals, i.e. when somebody is
 * (or is about to be) asleep who has not been woken already. Without it
 * every put would make a wake-up call while the woken getter is on its way
 * back to the mutex. */
struct waitq {
  uint32_t waiters; /* registered sleepers, guarded by the queue's mutex */
  uint32_t signals; /* wake-ups sent to them and not yet absorbed */
  _Atomic uint32_t seq; /* the futex word */
};

struct queue {
  struct obj hdr;
  pthread_mutex_t mutex; /* guards everything below */
  shm_off head, tail; /* item offsets, 0 when empty */
  _Atomic uint64_t count; /* atomic only so that spinners may peek */
  uint64_t maxsize; /* 0: unbounded */
  _Atomic int closed;
  struct waitq items; /* getters waiting for an item */
  struct waitq room; /* putters waiting for room */
  uint64_t unfinished; /* items put and not yet marked done (task_done) */
  struct waitq done; /* joiners waiting for unfinished to reach 0 */
};

#define SPIN_NS 5000 /* how long a waiter watches the count before it sleeps */

static struct item *item_at(shm_arena *a, shm_off off) { return (struct item *)((char *)a + off); }

/* Recomputes tail and count by walking from the head. Links always point
 * at complete items (put writes the item before linking it); the checks on
 * the way only guard against a corrupt list: the walk stops at a link that
 * is not an allocated block, or after as many items as the heap can hold. */
static void queue_repair(shm_arena *a, void *ctx) {
  struct queue *q = ctx;
  uint64_t n = 0, limit = (a->heap_end - a->heap_start) / MIN_BLOCK;
  shm_off last = 0;
  if (q->head && !block_ok(a, q->head)) q->head = 0;
  for (shm_off it = q->head; it && n < limit; it = item_at(a, it)->next) {
    n++;
    last = it;
    if (item_at(a, it)->next && !block_ok(a, item_at(a, it)->next)) item_at(a, it)->next = 0;
  }
  if (last) item_at(a, last)->next = 0; /* also ends a cycle, were there one */
  q->tail = last;
  atomic_store(&q->count, n);
  /* the dead process may have been about to wake someone: sleepers look
   * again at their next poll (the counts may be off by one: harmless) */
  atomic_fetch_add(&q->items.seq, 1);
  atomic_fetch_add(&q->room.seq, 1);
  atomic_fetch_add(&q->done.seq, 1);
}

static void queue_lock(shm_arena *a, struct queue *q) { robust_lock(a, &q->mutex, queue_repair, q); }

int shm_queue_new(shm_arena *a, size_t maxsize, shm_off *out) {
  struct queue *q = obj_new(a, sizeof *q, SHM_T_QUEUE, out);
  if (!q) return a && out ? SHM_ENOSPC : SHM_EINVAL;
  q->maxsize = maxsize;
  mutex_init(&q->mutex);
  return SHM_OK;
}

static struct queue *queue_at(shm_arena *a, shm_off off) { return (struct queue *)obj_at(a, off, SHM_T_QUEUE); }

/* With the mutex held: does somebody on w need waking? If so the wake-up
 * is accounted for and seq changed; the caller wakes after unlocking. */
static int waitq_signal(struct waitq *w) {
  if (w->waiters <= w->signals) return 0;
  w->signals++;
  atomic_fetch_add(&w->seq, 1);
  return 1;
}

/* Called with the mutex held, which it releases while asleep. Returns
 * SHM_OK when the caller should look again, or why to give up. */
static int queue_wait(shm_arena *a, struct queue *q, struct waitq *w, const struct timespec *deadline,
                      shm_stop_fn should_stop, void *arg) {
  if (deadline_passed(deadline)) return SHM_TIMEOUT;
  uint32_t seen = atomic_load(&w->seq);
  w->waiters++;
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  int rc = SHM_OK;
  if (should_stop && should_stop(arg)) { /* never call user code with our mutex held */
    rc = SHM_STOPPED;
  } else {
    struct timespec until = sleep_until(deadline);
    futex_wait(&w->seq, seen, &until);
  }
  queue_lock(a, q);
  w->waiters--;
  if (w->signals) /* ours or not, one wake-up has arrived */
    w->signals--;
  return rc;
}

/* Before sleeping, a getter watches the count for a moment, and so does a
 * putter facing a full queue: with the other side running on another core
 * the item (or the room) is usually microseconds away, and a futex sleep
 * plus its wake-up cost more than that. A spinner is not counted as a
 * waiter, so the other side makes no wake-up call for it either. */
static void queue_spin(struct queue *q, int for_room) {
  struct timespec end = ts_add_ns(now_mono(), SPIN_NS);
  for (unsigned i = 1;; i++) {
    uint64_t n = atomic_load_explicit(&q->count, memory_order_relaxed);
    if ((for_room ? n < q->maxsize : n > 0) || atomic_load_explicit(&q->closed, memory_order_relaxed)) return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (i % 16 == 0) { /* the clock costs ~20 ns: look at it now and then */
      struct timespec now = now_mono();
      if (!ts_before(&now, &end)) return;
    }
  }
}

int shm_queue_put(shm_arena *a, shm_off off, const void *data, size_t len, const struct timespec *deadline,
                  shm_stop_fn should_stop, void *arg) {
  struct queue *q = queue_at(a, off);
  if (!q || (len && !data)) return SHM_EINVAL;
  if (len > SIZE_MAX - sizeof(struct item)) return SHM_ENOSPC;
  /* allocate and copy before taking the queue's mutex: keeps its hold short */
  shm_off it;
  int rc = shm_alloc(a, sizeof(struct item) + len, &it);
  if (rc != SHM_OK) return rc;
  struct item *item = item_at(a, it);
  item->next = 0;
  item->len = len;
  if (len) memcpy(item->data, data, len);

  queue_lock(a, q);
  for (;;) {
    if (atomic_load(&q->closed)) {
      rc = SHM_CLOSED;
      break;
    }
    if (!q->maxsize || atomic_load(&q->count) < q->maxsize) {
      /* link from the old tail first: the walk in queue_repair finds it */
      if (q->tail)
        item_at(a, q->tail)->next = it;
      else
        q->head = it;
      q->tail = it;
      atomic_fetch_add(&q->count, 1);
      q->unfinished++;
      rc = SHM_OK;
      break;
    }
    if (!deadline_passed(deadline)) {
      PT_CHECK(pthread_mutex_unlock(&q->mutex));
      queue_spin(q, 1);
      queue_lock(a, q);
      if (atomic_load(&q->count) < q->maxsize || atomic_load(&q->closed)) continue;
    }
    rc = queue_wait(a, q, &q->room, deadline, should_stop, arg);
    if (rc != SHM_OK) break;
  }
  int wake = rc == SHM_OK && waitq_signal(&q->items);
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  if (wake) futex_wake(&q->items.seq, 1);
  if (rc != SHM_OK) shm_free(a, it);
  return rc;
}

int shm_queue_get(shm_arena *a, shm_off off, void **data, size_t *len, const struct timespec *deadline,
                  shm_stop_fn should_stop, void *arg) {
  struct queue *q = queue_at(a, off);
  if (!q || !data || !len) return SHM_EINVAL;
  shm_off it = 0;
  void *buf = NULL;
  int rc;
  queue_lock(a, q);
  for (;;) {
    if (q->head) {
      it = q->head;
      /* malloc before unlinking: if it fails, the item stays queued */
      buf = malloc(item_at(a, it)->len ? item_at(a, it)->len : 1);
      if (!buf) {
        rc = SHM_ENOMEM;
        break;
      }
      q->head = item_at(a, it)->next;
      if (!q->head) q->tail = 0;
      atomic_fetch_sub(&q->count, 1);
      rc = SHM_OK;
      break;
    }
    if (atomic_load(&q->closed)) {
      rc = SHM_CLOSED;
      break;
    }
    if (!deadline_passed(deadline)) {
      PT_CHECK(pthread_mutex_unlock(&q->mutex));
      queue_spin(q, 0);
      queue_lock(a, q);
      if (q->head || atomic_load(&q->closed)) continue;
    }
    rc = queue_wait(a, q, &q->items, deadline, should_stop, arg);
    if (rc != SHM_OK) break;
  }
  int wake = rc == SHM_OK && waitq_signal(&q->room);
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  if (wake) futex_wake(&q->room.seq, 1);
  if (rc != SHM_OK) return rc;
  /* the item is ours alone now: copy it out without the mutex */
  struct item *item = item_at(a, it);
  *len = item->len;
  memcpy(buf, item->data, item->len);
  *data = buf;
  shm_free(a, it);
  return SHM_OK;
}

int shm_queue_close(shm_arena *a, shm_off off) {
  struct queue *q = queue_at(a, off);
  if (!q) return SHM_EINVAL;
  queue_lock(a, q);
  atomic_store(&q->closed, 1);
  q->items.signals = q->items.waiters; /* everybody is being woken */
  q->room.signals = q->room.waiters;
  atomic_fetch_add(&q->items.seq, 1);
  atomic_fetch_add(&q->room.seq, 1);
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  /* wake all, counted or not: close is rare and must reach everyone */
  futex_wake(&q->items.seq, INT_MAX);
  futex_wake(&q->room.seq, INT_MAX);
  return SHM_OK;
}

int shm_queue_task_done(shm_arena *a, shm_off off) {
  struct queue *q = queue_at(a, off);
  if (!q) return SHM_EINVAL;
  queue_lock(a, q);
  int rc = q->unfinished ? SHM_OK : SHM_OVERFLOW, wake = 0;
  if (rc == SHM_OK && --q->unfinished == 0 && q->done.waiters) {
    q->done.signals = q->done.waiters; /* every joiner is being woken */
    atomic_fetch_add(&q->done.seq, 1);
    wake = 1;
  }
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  if (wake) futex_wake(&q->done.seq, INT_MAX);
  return rc;
}

int shm_queue_join(shm_arena *a, shm_off off, const struct timespec *deadline, shm_stop_fn should_stop, void *arg) {
  struct queue *q = queue_at(a, off);
  if (!q) return SHM_EINVAL;
  int rc = SHM_OK;
  queue_lock(a, q);
  while (q->unfinished && rc == SHM_OK) rc = queue_wait(a, q, &q->done, deadline, should_stop, arg);
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  return rc;
}

uint64_t shm_queue_unfinished(shm_arena *a, shm_off off) {
  struct queue *q = queue_at(a, off);
  if (!q) return 0;
  queue_lock(a, q);
  uint64_t n = q->unfinished;
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  return n;
}

/* Takes the mutex: after a process died mid-put the count is only right
 * once the repair has run, and locking is what runs it. */
size_t shm_queue_size(shm_arena *a, shm_off off) {
  struct queue *q = queue_at(a, off);
  if (!q) return 0;
  queue_lock(a, q);
  size_t n = (size_t)atomic_load(&q->count);
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  return n;
}

int shm_queue_empty(shm_arena *a, shm_off off) { return shm_queue_size(a, off) == 0; }

int shm_queue_closed(shm_arena *a, shm_off off) {
  struct queue *q = queue_at(a, off);
  return q ? atomic_load(&q->closed) : 1;
}

size_t shm_queue_maxsize(shm_arena *a, shm_off off) {
  struct queue *q = queue_at(a, off);
  return q ? (size_t)q->maxsize : 0;
}

static void queue_destroy(shm_arena *a, shm_off off) {
  struct queue *q = queue_at(a, off);
  queue_lock(a, q);
  shm_off it = q->head;
  q->head = q->tail = 0;
  q->hdr.magic = 0;
  PT_CHECK(pthread_mutex_unlock(&q->mutex));
  while (it) {
    shm_off next = item_at(a, it)->next;
    shm_free(a, it);
    it = next;
  }
  PT_CHECK(pthread_mutex_destroy(&q->mutex));
  shm_free(a, off);
}

/* ---------------------------------------------------------------- value */

struct value {
  struct obj hdr;
  pthread_mutex_t mutex;
  shm_number slot[2]; /* the current number and a spare */
  _Atomic uint32_t cur; /* which slot is current; one store publishes a new number */
};

static struct value *value_at(shm_arena *a, shm_off off) { return (struct value *)obj_at(a, off, SHM_T_VALUE); }

/* Nothing to repair: cur always names a slot that was completely written. */
static void value_repair(shm_arena *a, void *ctx) { (void)a, (void)ctx; }

static void value_lock(shm_arena *a, struct value *v) { robust_lock(a, &v->mutex, value_repair, v); }

/* With the mutex held: write the spare slot, then make it current. */
static void value_publish(struct value *v, shm_number x) {
  uint32_t spare = !atomic_load_explicit(&v->cur, memory_order_relaxed);
  v->slot[spare] = x;
  atomic_store_explicit(&v->cur, spare, memory_order_release);
}

int shm_value_new(shm_arena *a, shm_number init, shm_off *out) {
  struct value *v = obj_new(a, sizeof *v, SHM_T_VALUE, out);
  if (!v) return a && out ? SHM_ENOSPC : SHM_EINVAL;
  mutex_init(&v->mutex);
  v->slot[0] = init;
  return SHM_OK;
}

int shm_value_get(shm_arena *a, shm_off off, shm_number *out) {
  struct value *v = value_at(a, off);
  if (!v || !out) return SHM_EINVAL;
  value_lock(a, v);
  *out = v->slot[atomic_load(&v->cur)];
  PT_CHECK(pthread_mutex_unlock(&v->mutex));
  return SHM_OK;
}

int shm_value_set(shm_arena *a, shm_off off, shm_number x) {
  struct value *v = value_at(a, off);
  if (!v) return SHM_EINVAL;
  value_lock(a, v);
  value_publish(v, x);
  PT_CHECK(pthread_mutex_unlock(&v->mutex));
  return SHM_OK;
}

/* Lua's rules: int + int wraps around as an int; with a float, a float. */
static shm_number number_add(shm_number x, shm_number y) {
  if (!x.is_float && !y.is_float) return shm_int((int64_t)((uint64_t)x.i + (uint64_t)y.i));
  double fx = x.is_float ? x.f : (double)x.i;
  double fy = y.is_float ? y.f : (double)y.i;
  return shm_float(fx + fy);
}

int shm_value_add(shm_arena *a, shm_off off, shm_number n, shm_number *result) {
  struct value *v = value_at(a, off);
  if (!v) return SHM_EINVAL;
  value_lock(a, v);
  shm_number sum = number_add(v->slot[atomic_load(&v->cur)], n);
  value_publish(v, sum);
  PT_CHECK(pthread_mutex_unlock(&v->mutex));
  if (result) *result = sum;
  return SHM_OK;
}

static void value_destroy(shm_arena *a, shm_off off) {
  struct value *v = value_at(a, off);
  v->hdr.magic = 0;
  PT_CHECK(pthread_mutex_destroy(&v->mutex));
  shm_free(a, off);
}

/* ---------------------------------------------------- sync objects
 *
 * rlock lives with lock (above). Event, semaphore, barrier and condition
 * share one layout, struct sync: a robust mutex guarding a few numbers and
 * one futex word. Every waiter runs the same loop (sync_wait): with the
 * mutex held it looks at its condition; if it must wait it notes seq,
 * counts itself, unlocks and sleeps while seq is unchanged (at most
 * SHM_POLL_NS at a time, so should_stop and the deadline are polled). Every
 * change that may let someone through bumps seq with the mutex held and
 * wakes all sleepers after unlocking (sync_wake): these objects wait
 * seldom, so the broadcast costs little and keeps each one a few lines.
 * A process that dies while asleep leaves only a waiter count one too high
 * (a useless wake-up); one that dies with the mutex held changed nothing
 * half-way that matters (every update is a single store), so the repair
 * only bumps seq.
 */

struct sync {
  struct obj hdr;
  pthread_mutex_t mutex;
  _Atomic uint32_t seq; /* the futex word */
  _Atomic uint32_t waiters; /* sleepers, for sync_wake */
  int64_t n[6]; /* the kind's state: see each kind below */
  shm_off link; /* condition: its lock */
  shm_off head, tail; /* condition: waiting nodes, oldest first */
};

/* event:     n[0] flag
 * semaphore: n[0] value, n[1] bound (0: unbounded)
 * barrier:   n[0] parties, n[1] arrived, n[2] generation, n[3] broken, n[4] generation of the last reset */
enum { EV_FLAG = 0, SEM_VALUE = 0, SEM_BOUND = 1, BAR_PARTIES = 0, BAR_COUNT, BAR_GEN, BAR_BROKEN, BAR_RESET };

static void sync_repair(shm_arena *a, void *ctx) {
  (void)a;
  atomic_fetch_add(&((struct sync *)ctx)->seq, 1);
}

static void sync_lock(shm_arena *a, struct sync *s) { robust_lock(a, &s->mutex, sync_repair, s); }
static void sync_unlock(struct sync *s) { PT_CHECK(pthread_mutex_unlock(&s->mutex)); }

static struct sync *sync_new(shm_arena *a, int type, shm_off *out) {
  struct sync *s = obj_new(a, sizeof *s, type, out);
  if (s) mutex_init(&s->mutex);
  return s;
}

static struct sync *sync_at(shm_arena *a, shm_off off, int type) { return (struct sync *)obj_at(a, off, type); }

/* With the mutex held: whoever sleeps must look again (wake after unlocking). */
static void sync_changed(struct sync *s) { atomic_fetch_add(&s->seq, 1); }

static void sync_wake(struct sync *s) {
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load(&s->waiters)) futex_wake(&s->seq, INT_MAX);
}

/* Called with the mutex held, which it releases while asleep. SHM_OK: look
 * again; SHM_TIMEOUT or SHM_STOPPED: give up (the mutex is held again). */
static int sync_wait(shm_arena *a, struct sync *s, const struct timespec *deadline, shm_stop_fn should_stop,
                     void *arg) {
  if (deadline_passed(deadline)) return SHM_TIMEOUT;
  uint32_t seen = atomic_load(&s->seq);
  atomic_fetch_add(&s->waiters, 1);
  sync_unlock(s);
  int rc = SHM_OK;
  if (should_stop && should_stop(arg)) { /* never call user code with our mutex held */
    rc = SHM_STOPPED;
  } else {
    struct timespec until = sleep_until(deadline);
    futex_wait(&s->seq, seen, &until);
  }
  atomic_fetch_sub(&s->waiters, 1);
  sync_lock(a, s);
  return rc;
}

/* ---- event */

int shm_event_new(shm_arena *a, shm_off *out) {
  return sync_new(a, SHM_T_EVENT, out) ? SHM_OK : a && out ? SHM_ENOSPC : SHM_EINVAL;
}

int shm_event_set(shm_arena *a, shm_off off, int flag) {
  struct sync *s = sync_at(a, off, SHM_T_EVENT);
  if (!s) return SHM_EINVAL;
  sync_lock(a, s);
  s->n[EV_FLAG] = flag != 0;
  sync_changed(s);
  sync_unlock(s);
  if (flag) sync_wake(s);
  return SHM_OK;
}

int shm_event_is_set(shm_arena *a, shm_off off) {
  struct sync *s = sync_at(a, off, SHM_T_EVENT);
  if (!s) return 0;
  sync_lock(a, s);
  int flag = s->n[EV_FLAG] != 0;
  sync_unlock(s);
  return flag;
}

int shm_event_wait(shm_arena *a, shm_off off, const struct timespec *deadline, shm_stop_fn should_stop, void *arg) {
  struct sync *s = sync_at(a, off, SHM_T_EVENT);
  if (!s) return SHM_EINVAL;
  int rc = SHM_OK;
  sync_lock(a, s);
  while (!s->n[EV_FLAG] && rc == SHM_OK) rc = sync_wait(a, s, deadline, should_stop, arg);
  if (s->n[EV_FLAG]) rc = SHM_OK; /* set while we gave up: Python answers True too */
  sync_unlock(s);
  return rc;
}

/* ---- semaphore */

int shm_sem_new(shm_arena *a, int64_t value, int64_t bound, shm_off *out) {
  if (value < 0 || bound < 0 || (bound && value > bound)) return SHM_EINVAL;
  struct sync *s = sync_new(a, SHM_T_SEMAPHORE, out);
  if (!s) return a && out ? SHM_ENOSPC : SHM_EINVAL;
  s->n[SEM_VALUE] = value;
  s->n[SEM_BOUND] = bound;
  return SHM_OK;
}

int shm_sem_acquire(shm_arena *a, shm_off off, const struct timespec *deadline, shm_stop_fn should_stop, void *arg) {
  struct sync *s = sync_at(a, off, SHM_T_SEMAPHORE);
  if (!s) return SHM_EINVAL;
  int rc = SHM_OK;
  sync_lock(a, s);
  while (s->n[SEM_VALUE] == 0 && rc == SHM_OK) rc = sync_wait(a, s, deadline, should_stop, arg);
  if (s->n[SEM_VALUE] > 0) {
    s->n[SEM_VALUE]--;
    rc = SHM_OK;
  }
  sync_unlock(s);
  return rc;
}

int shm_sem_release(shm_arena *a, shm_off off, int64_t n) {
  struct sync *s = sync_at(a, off, SHM_T_SEMAPHORE);
  if (!s || n < 1) return SHM_EINVAL;
  sync_lock(a, s);
  int64_t bound = s->n[SEM_BOUND];
  int rc = (bound && s->n[SEM_VALUE] > bound - n) || s->n[SEM_VALUE] > INT64_MAX - n ? SHM_OVERFLOW : SHM_OK;
  if (rc == SHM_OK) {
    s->n[SEM_VALUE] += n;
    sync_changed(s);
  }
  sync_unlock(s);
  if (rc == SHM_OK) sync_wake(s);
  return rc;
}

int64_t shm_sem_value(shm_arena *a, shm_off off) {
  struct sync *s = sync_at(a, off, SHM_T_SEMAPHORE);
  if (!s) return 0;
  sync_lock(a, s);
  int64_t v = s->n[SEM_VALUE];
  sync_unlock(s);
  return v;
}

/* ---- barrier
 *
 * Python's threading.Barrier: the k-th arrival (0-based) gets index k; the
 * n-th releases everyone by starting a new generation. A waiter that times
 * out (or is stopped) breaks the barrier: it and every other waiter, now and
 * until reset(), get SHM_BROKEN (Python's BrokenBarrierError). reset() frees
 * the waiters of the current generation as broken and makes it usable again:
 * they see a new generation that is also the one of the last reset. */

int shm_barrier_new(shm_arena *a, int64_t parties, shm_off *out) {
  if (parties < 1) return SHM_EINVAL;
  struct sync *s = sync_new(a, SHM_T_BARRIER, out);
  if (!s) return a && out ? SHM_ENOSPC : SHM_EINVAL;
  s->n[BAR_PARTIES] = parties;
  s->n[BAR_RESET] = -1;
  return SHM_OK;
}

int shm_barrier_wait(shm_arena *a, shm_off off, const struct timespec *deadline, shm_stop_fn should_stop, void *arg,
                     int64_t *index) {
  struct sync *s = sync_at(a, off, SHM_T_BARRIER);
  if (!s) return SHM_EINVAL;
  sync_lock(a, s);
  if (s->n[BAR_BROKEN]) {
    sync_unlock(s);
    return SHM_BROKEN;
  }
  int64_t gen = s->n[BAR_GEN], me = s->n[BAR_COUNT]++;
  if (index) *index = me;
  if (s->n[BAR_COUNT] == s->n[BAR_PARTIES]) { /* the last one: everybody goes */
    s->n[BAR_COUNT] = 0;
    s->n[BAR_GEN]++;
    sync_changed(s);
    sync_unlock(s);
    sync_wake(s);
    return SHM_OK;
  }
  int rc = SHM_OK;
  while (s->n[BAR_GEN] == gen && !s->n[BAR_BROKEN] && rc == SHM_OK) rc = sync_wait(a, s, deadline, should_stop, arg);
  int woke = 0;
  if (s->n[BAR_GEN] != gen) {
    rc = s->n[BAR_RESET] == gen + 1 ? SHM_BROKEN : SHM_OK;
  } else if (s->n[BAR_BROKEN]) {
    rc = SHM_BROKEN;
  } else { /* we gave up: the barrier breaks for all */
    s->n[BAR_BROKEN] = 1;
    s->n[BAR_COUNT]--;
    sync_changed(s);
    woke = 1;
  }
  sync_unlock(s);
  if (woke) sync_wake(s);
  return rc;
}

int shm_barrier_reset(shm_arena *a, shm_off off, int abort_it) {
  struct sync *s = sync_at(a, off, SHM_T_BARRIER);
  if (!s) return SHM_EINVAL;
  sync_lock(a, s);
  if (abort_it) {
    s->n[BAR_BROKEN] = 1;
  } else {
    if (s->n[BAR_COUNT]) { /* free the current waiters as broken */
      s->n[BAR_GEN]++;
      s->n[BAR_RESET] = s->n[BAR_GEN];
    }
    s->n[BAR_COUNT] = 0;
    s->n[BAR_BROKEN] = 0;
  }
  sync_changed(s);
  sync_unlock(s);
  sync_wake(s);
  return SHM_OK;
}

/* what: 0 parties, 1 waiting now, 2 broken, 3 generation */
int64_t shm_barrier_info(shm_arena *a, shm_off off, int what) {
  struct sync *s = sync_at(a, off, SHM_T_BARRIER);
  if (!s) return 0;
  sync_lock(a, s);
  int64_t v = what == 0 ? s->n[BAR_PARTIES]
      : what == 1       ? (s->n[BAR_BROKEN] ? 0 : s->n[BAR_COUNT])
      : what == 2       ? s->n[BAR_BROKEN]
                        : s->n[BAR_GEN];
  sync_unlock(s);
  return v;
}

/* ---- condition
 *
 * Python's threading.Condition: a lock (lock or rlock) and a FIFO of
 * waiters. A waiter, holding the lock, appends a node (in the arena) to the
 * list, releases the lock completely (an rlock's depth is saved), sleeps
 * until its node is marked notified or it gives up, then takes the lock
 * back (without a deadline, as in Python) and restores the depth.
 * notify(n) marks the n oldest nodes and unlinks them; a waiter that gives
 * up unlinks its own node unless it was marked meanwhile (then the wait
 * succeeded after all). A node whose process died is unlinked by the
 * notifier and not counted, so a notify is not lost on a dead waiter. */

struct cnode {
  shm_off next;
  int32_t pid; /* the waiter's process */
  int32_t notified;
  uint64_t owner; /* the waiter's token (shm_cond_waiting) */
};

static struct cnode *cnode_at(shm_arena *a, shm_off off) { return (struct cnode *)((char *)a + off); }

int shm_cond_new(shm_arena *a, shm_off lock, shm_off *out) {
  if (!lock_at(a, lock) || shm_obj_retain(a, lock) != SHM_OK) return SHM_EINVAL;
  struct sync *s = sync_new(a, SHM_T_CONDITION, out);
  if (!s) {
    shm_obj_release(a, lock);
    return a && out ? SHM_ENOSPC : SHM_EINVAL;
  }
  s->link = lock;
  return SHM_OK;
}

shm_off shm_cond_lock(shm_arena *a, shm_off off) {
  struct sync *s = sync_at(a, off, SHM_T_CONDITION);
  return s ? s->link : 0;
}

/* With the mutex held: takes node out of the list if it is there. */
static void cond_unlink(shm_arena *a, struct sync *s, shm_off node) {
  shm_off prev = 0;
  for (shm_off it = s->head; it; prev = it, it = cnode_at(a, it)->next) {
    if (it != node) continue;
    if (prev)
      cnode_at(a, prev)->next = cnode_at(a, it)->next;
    else
      s->head = cnode_at(a, it)->next;
    if (s->tail == it) s->tail = prev;
    return;
  }
}

int shm_cond_wait(shm_arena *a, shm_off off, uint64_t owner, const struct timespec *deadline, shm_stop_fn should_stop,
                  void *arg) {
  struct sync *s = sync_at(a, off, SHM_T_CONDITION);
  if (!s) return SHM_EINVAL;
  struct lock *l = lock_at(a, s->link);
  if (!l || !lock_mine(l, owner)) return SHM_NOT_OWNER;
  shm_off node;
  int rc = shm_alloc(a, sizeof(struct cnode), &node);
  if (rc != SHM_OK) return rc;
  struct cnode *c = cnode_at(a, node);
  c->next = 0;
  c->pid = (int32_t)getpid();
  c->notified = 0;
  c->owner = owner;
  sync_lock(a, s);
  if (s->tail)
    cnode_at(a, s->tail)->next = node;
  else
    s->head = node;
  s->tail = node;
  sync_unlock(s);
  /* give the lock up completely; a notifier must hold it, so none is missed */
  uint32_t depth = l->depth;
  l->depth = 1;
  shm_lock_release(a, s->link, owner);
  sync_lock(a, s);
  while (!c->notified && rc == SHM_OK) rc = sync_wait(a, s, deadline, should_stop, arg);
  if (c->notified)
    rc = SHM_OK;
  else
    cond_unlink(a, s, node);
  sync_unlock(s);
  shm_free(a, node);
  /* take the lock back, whatever happened: the caller expects to hold it */
  int lrc;
  do lrc = shm_lock_acquire(a, s->link, owner, NULL, should_stop, arg);
  while (lrc == SHM_OWNER_DEAD);
  if (lrc != SHM_OK) return lrc;
  l->depth = depth;
  return rc;
}

int shm_cond_waiting(shm_arena *a, shm_off off, uint64_t owner) {
  struct sync *s = sync_at(a, off, SHM_T_CONDITION);
  if (!s) return 0;
  sync_lock(a, s);
  int found = 0;
  for (shm_off it = s->head; it && !found; it = cnode_at(a, it)->next) found = cnode_at(a, it)->owner == owner;
  sync_unlock(s);
  return found;
}

/* Is pid gone? (ESRCH only: EPERM means it exists.) */
static int pid_gone(int32_t pid) { return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH; }

int shm_cond_notify(shm_arena *a, shm_off off, uint64_t owner, int64_t n) {
  struct sync *s = sync_at(a, off, SHM_T_CONDITION);
  if (!s) return SHM_EINVAL;
  struct lock *l = lock_at(a, s->link);
  if (!l || !lock_mine(l, owner)) return SHM_NOT_OWNER;
  sync_lock(a, s);
  int woke = 0;
  while (n > 0 && s->head) {
    shm_off it = s->head;
    struct cnode *c = cnode_at(a, it);
    s->head = c->next;
    if (!s->head) s->tail = 0;
    if (pid_gone(c->pid)) { /* nobody will free it */
      shm_free(a, it);
      continue;
    }
    c->notified = 1;
    n--;
    woke = 1;
  }
  if (woke) sync_changed(s);
  sync_unlock(s);
  if (woke) sync_wake(s);
  return SHM_OK;
}

static void array_destroy(shm_arena *a, shm_off off);

static void pipe_destroy(shm_arena *a, shm_off off);

static void sync_destroy(shm_arena *a, shm_off off) {
  if (((struct obj *)((char *)a + off))->magic == OBJ_MAGIC(SHM_T_PIPE)) {
    pipe_destroy(a, off);
    return;
  }
  if (((struct obj *)((char *)a + off))->magic == OBJ_MAGIC(SHM_T_ARRAY)) {
    array_destroy(a, off);
    return;
  }
  struct sync *s = (struct sync *)((char *)a + off);
  shm_off lock = s->hdr.magic == OBJ_MAGIC(SHM_T_CONDITION) ? s->link : 0;
  s->hdr.magic = 0;
  PT_CHECK(pthread_mutex_destroy(&s->mutex));
  shm_free(a, off);
  if (lock) shm_obj_release(a, lock);
}

/* ---------------------------------------------------------------- array */

struct array {
  struct obj hdr;
  pthread_mutex_t mutex; /* guards every element */
  uint64_t n;
  shm_number v[];
};

/* Nothing to repair: a slot is written by one store of the whole number. */
static void array_repair(shm_arena *a, void *ctx) { (void)a, (void)ctx; }

int shm_array_new(shm_arena *a, size_t n, shm_off *out) {
  if (n > (SIZE_MAX - sizeof(struct array)) / sizeof(shm_number)) return SHM_ENOSPC;
  struct array *arr = obj_new(a, sizeof *arr + n * sizeof(shm_number), SHM_T_ARRAY, out);
  if (!arr) return a && out ? SHM_ENOSPC : SHM_EINVAL;
  mutex_init(&arr->mutex);
  arr->n = n;
  for (size_t i = 0; i < n; i++) arr->v[i] = shm_int(0);
  return SHM_OK;
}

size_t shm_array_len(shm_arena *a, shm_off off) {
  struct array *arr = (struct array *)obj_at(a, off, SHM_T_ARRAY);
  return arr ? (size_t)arr->n : 0;
}

/* op: 0 get (into *x), 1 set (from *x), 2 add (*x in, the sum out). */
int shm_array_op(shm_arena *a, shm_off off, size_t i, int op, shm_number *x) {
  struct array *arr = (struct array *)obj_at(a, off, SHM_T_ARRAY);
  if (!arr || !x) return SHM_EINVAL;
  if (i >= arr->n) return SHM_EINVAL;
  robust_lock(a, &arr->mutex, array_repair, arr);
  if (op == 0)
    *x = arr->v[i];
  else if (op == 1)
    arr->v[i] = *x;
  else
    *x = arr->v[i] = number_add(arr->v[i], *x);
  PT_CHECK(pthread_mutex_unlock(&arr->mutex));
  return SHM_OK;
}

static void array_destroy(shm_arena *a, shm_off off) {
  struct array *arr = (struct array *)((char *)a + off);
  arr->hdr.magic = 0;
  PT_CHECK(pthread_mutex_destroy(&arr->mutex));
  shm_free(a, off);
}

/* ----------------------------------------------------------------- pipe */

struct pipe_end {
  struct obj hdr;
  shm_off in, out; /* queues (retained), 0 where this end cannot receive / send */
  _Atomic int64_t opens; /* open copies of this end */
};

static struct pipe_end *pipe_at(shm_arena *a, shm_off off) { return (struct pipe_end *)obj_at(a, off, SHM_T_PIPE); }

static int pipe_end_new(shm_arena *a, shm_off in, shm_off out, shm_off *res) {
  struct pipe_end *e = obj_new(a, sizeof *e, SHM_T_PIPE, res);
  if (!e) return SHM_ENOSPC;
  if (in) shm_obj_retain(a, in);
  if (out) shm_obj_retain(a, out);
  e->in = in;
  e->out = out;
  atomic_store(&e->opens, 1);
  return SHM_OK;
}

int shm_pipe_new(shm_arena *a, int duplex, shm_off *end_a, shm_off *end_b) {
  if (!a || !end_a || !end_b) return SHM_EINVAL;
  shm_off q1 = 0, q2 = 0;
  int rc = shm_queue_new(a, 0, &q1);
  if (rc == SHM_OK && duplex) rc = shm_queue_new(a, 0, &q2);
  /* a receives on q1 and sends on q2; b the other way round (one-way: a only receives) */
  if (rc == SHM_OK) rc = pipe_end_new(a, q1, q2, end_a);
  if (rc == SHM_OK) {
    rc = pipe_end_new(a, q2, q1, end_b);
    if (rc != SHM_OK) shm_obj_release(a, *end_a);
  }
  if (q1) shm_obj_release(a, q1); /* the ends hold them now */
  if (q2) shm_obj_release(a, q2);
  return rc;
}

int shm_pipe_queues(shm_arena *a, shm_off off, shm_off *in, shm_off *out) {
  struct pipe_end *e = pipe_at(a, off);
  if (!e) return SHM_EINVAL;
  *in = e->in;
  *out = e->out;
  return SHM_OK;
}

int64_t shm_pipe_open(shm_arena *a, shm_off off, int delta) {
  struct pipe_end *e = pipe_at(a, off);
  if (!e) return -1;
  int64_t n = atomic_fetch_add(&e->opens, delta) + delta;
  if (n == 0) { /* the last copy of this end closed: the other end sees EOF, and a send fails */
    if (e->in) shm_queue_close(a, e->in);
    if (e->out) shm_queue_close(a, e->out);
  }
  return n;
}

static void pipe_destroy(shm_arena *a, shm_off off) {
  struct pipe_end *e = (struct pipe_end *)((char *)a + off);
  shm_off in = e->in, out = e->out;
  e->hdr.magic = 0;
  shm_free(a, off);
  if (in) shm_obj_release(a, in);
  if (out) shm_obj_release(a, out);
}

/* ---------------------------------------------------------- wait board
 *
 * One table per arena, made on first use, that every process sees: who
 * waits (without a timeout) for what. The deadlock detector (vm/lua) puts
 * an entry before a wait and removes it after. `version` changes with every
 * put and remove, so a reader can tell that nothing began or ended waiting
 * while it looked at the locks. An entry of a process that was killed stays
 * behind: readers check that its process still lives. */

struct board {
  pthread_mutex_t mutex;
  uint64_t version;
  uint32_t top; /* slots at and above it are free: searches stop there */
  uint64_t token[SHM_BOARD_SLOTS]; /* slot i's waiter, 0: free (apart from the entries: scanned often) */
  shm_wait slot[SHM_BOARD_SLOTS];
  _Atomic uint32_t asleep[SHM_BOARD_SLOTS]; /* slot i's waiter is asleep in a futex (shm_sleep_note) */
  int32_t proc_pid[SHM_BOARD_SLOTS]; /* a process worker (0: a free entry)... */
  int32_t proc_live[SHM_BOARD_SLOTS]; /* ...and how many of its threads may act (shm_board_proc) */
};

static void board_repair(shm_arena *a, void *ctx) {
  (void)a;
  struct board *b = ctx;
  if (b->top > SHM_BOARD_SLOTS) b->top = SHM_BOARD_SLOTS;
  b->version++; /* a put or remove was cut short: readers look again */
}

static struct board *board_of(shm_arena *a, int create) {
  if (!a) return NULL;
  shm_off off = atomic_load(&a->board);
  if (!off && !create) return NULL;
  if (!off) {
    shm_off mine;
    if (shm_alloc(a, sizeof(struct board), &mine) != SHM_OK) return NULL;
    struct board *b = memset((char *)a + mine, 0, sizeof(struct board));
    mutex_init(&b->mutex);
    if (atomic_compare_exchange_strong(&a->board, &off, mine)) {
      off = mine;
    } else { /* another thread or process made it first */
      PT_CHECK(pthread_mutex_destroy(&b->mutex));
      shm_free(a, mine);
    }
  }
  return (struct board *)((char *)a + off);
}

static void board_lock(shm_arena *a, struct board *b) { robust_lock(a, &b->mutex, board_repair, b); }

int shm_board_init(shm_arena *a) { return board_of(a, 1) ? SHM_OK : SHM_ENOSPC; }

/* shm_obj_retain with the arena's mutex held (block_ok takes no lock). */
static int obj_retain_locked(shm_arena *a, shm_off off) {
  int type = shm_obj_type(a, off);
  if (type == SHM_T_NONE) return 0;
  atomic_fetch_add(&obj_at(a, off, type)->refs, 1);
  return 1;
}

int shm_board_put(shm_arena *a, const shm_wait *w, int *slot) {
  struct board *b = board_of(a, 1);
  if (!b || !w || !w->token) return SHM_EINVAL;
  board_lock(a, b);
  uint32_t i = 0;
  while (i < b->top && b->token[i] && b->token[i] != w->token) i++;
  int rc = i < SHM_BOARD_SLOTS ? SHM_OK : SHM_ENOSPC;
  if (rc == SHM_OK) {
    b->slot[i] = *w;
    b->slot[i].slot = (int32_t)i;
    b->token[i] = w->token;
    atomic_store(&b->asleep[i], 0);
    if (i == b->top) b->top++;
    b->version++;
    if (slot) *slot = (int)i;
  }
  PT_CHECK(pthread_mutex_unlock(&b->mutex));
  return rc;
}

/* With the board's mutex held. */
static void board_clear(struct board *b, uint32_t i) {
  b->token[i] = 0;
  b->slot[i].token = 0;
  while (b->top && !b->token[b->top - 1]) b->top--;
  b->version++;
}

void shm_board_remove(shm_arena *a, uint64_t token) {
  struct board *b = board_of(a, 0);
  if (!b || !token) return;
  board_lock(a, b);
  for (uint32_t i = 0; i < b->top; i++)
    if (b->token[i] == token) board_clear(b, i);
  PT_CHECK(pthread_mutex_unlock(&b->mutex));
}

void shm_board_remove_slot(shm_arena *a, int slot, uint64_t token) {
  struct board *b = board_of(a, 0);
  if (!b || slot < 0 || slot >= SHM_BOARD_SLOTS) return;
  board_lock(a, b);
  if (b->token[slot] == token) board_clear(b, (uint32_t)slot);
  PT_CHECK(pthread_mutex_unlock(&b->mutex));
}

int shm_board_read(shm_arena *a, shm_wait *out, int max, uint64_t *version) {
  struct board *b = board_of(a, 0);
  if (!b) return 0;
  int n = 0;
  board_lock(a, b);
  /* under the allocator's mutex too: it orders this thread's look at each
   * object's block after whoever made it (ThreadSanitizer sees it) */
  arena_lock(a);
  for (uint32_t i = 0; i < b->top && n < max; i++)
    if (b->token[i]) {
      out[n] = b->slot[i];
      /* alive: its waiter holds a reference while its entry is here */
      if (out[n].obj && !obj_retain_locked(a, out[n].obj)) out[n].obj = 0;
      n++;
    }
  arena_unlock(a);
  if (version) *version = b->version;
  PT_CHECK(pthread_mutex_unlock(&b->mutex));
  return n;
}

void shm_board_unread(shm_arena *a, shm_wait *out, int n) {
  for (int i = 0; i < n; i++)
    if (out[i].obj) {
      shm_obj_release(a, out[i].obj);
      out[i].obj = 0;
    }
}

_Atomic uint32_t *shm_board_asleep(shm_arena *a, int slot) {
  struct board *b = board_of(a, 0);
  return b && slot >= 0 && slot < SHM_BOARD_SLOTS ? &b->asleep[slot] : NULL;
}

/* With the board's mutex held: pid's entry (made if make), or -1. */
static int proc_slot(struct board *b, int32_t pid, int make) {
  int free_one = -1;
  for (int i = 0; i < SHM_BOARD_SLOTS; i++) {
    if (b->proc_pid[i] == pid) return i;
    if (!b->proc_pid[i] && free_one < 0) free_one = i;
  }
  if (make && free_one >= 0) b->proc_pid[free_one] = pid;
  return make ? free_one : -1;
}

int shm_board_proc(shm_arena *a, int32_t pid, int32_t n, int add) {
  struct board *b = board_of(a, 0);
  if (!b || pid <= 0) return -1;
  board_lock(a, b);
  int i = proc_slot(b, pid, 1), v = -1;
  if (i >= 0) {
    v = b->proc_live[i] = add ? b->proc_live[i] + n : n;
    if (v <= 0) b->proc_pid[i] = b->proc_live[i] = 0;
    b->version++; /* a reader that spans this change looks again */
  }
  PT_CHECK(pthread_mutex_unlock(&b->mutex));
  return v;
}

int shm_board_proc_live(shm_arena *a, int32_t pid) {
  struct board *b = board_of(a, 0);
  if (!b || pid <= 0) return -1;
  board_lock(a, b);
  int i = proc_slot(b, pid, 0), v = i >= 0 ? b->proc_live[i] : -1;
  PT_CHECK(pthread_mutex_unlock(&b->mutex));
  return v;
}

uint64_t shm_board_version(shm_arena *a) {
  struct board *b = board_of(a, 0);
  if (!b) return 0;
  board_lock(a, b);
  uint64_t v = b->version;
  PT_CHECK(pthread_mutex_unlock(&b->mutex));
  return v;
}
