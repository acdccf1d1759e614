/*
 * shared.h — the C core of gilvm's shared objects: lock, rlock, queue, value,
 * event, semaphore, barrier, condition, array, pipe, and the wait board.
 *
 * Everything lives in one arena: a MAP_SHARED|MAP_ANONYMOUS mapping made
 * once at start-up, before any worker exists. Threads of the process and
 * every process forked from it see the same bytes at the same address, so
 * the objects behave identically in gil, nogil and fork modes. No Lua here:
 * the Lua bindings (and the GIL release around blocking calls) sit on top.
 *
 * Handles. An object is named by its offset in the arena (shm_off), an
 * integer that means the same thing in every process and can be marshalled
 * as a number. 0 is never a valid handle. A handle that came from outside
 * (a pipe, a serialized blob) should be checked with shm_obj_type() first;
 * every function also checks the handle and answers SHM_EINVAL (or a
 * neutral value for the queries) instead of touching a wrong object.
 *
 * Blocking calls take an ABSOLUTE CLOCK_MONOTONIC deadline (NULL: wait
 * forever; a deadline already past: try once) and a should_stop callback
 * (NULL: none) that is polled before every wait and at least every 50 ms
 * while waiting. When it returns non-zero the call gives up with
 * SHM_STOPPED. Signals (EINTR, e.g. SIGURG sent by the runtime) only make
 * a wait re-check its condition, its deadline and should_stop.
 *
 * shm_lock: a lock like Python's threading.Lock, except that only its owner
 * may release it. The owner is the pair (token, OS thread): the caller picks
 * a non-zero 64-bit token (e.g. pid<<32 | worker id) and must release from
 * the thread that acquired. Why the thread: the lock is a ROBUST pthread
 * mutex held for as long as the lock is held, and a robust mutex belongs to
 * a thread; when that thread or its process dies, the kernel marks the mutex
 * "owner died". The next acquirer sees it, gets SHM_OWNER_DEAD (it does NOT
 * hold the lock), and the lock is left free and usable. Waiters never block
 * inside pthread_mutex_*lock (it cannot be interrupted by should_stop, and
 * ThreadSanitizer does not understand pthread_mutex_clocklock): they trylock
 * and sleep on a futex between tries, so a waiter notices a dead owner
 * within 50 ms. Acquiring a lock the same owner already holds waits until
 * the deadline, as in Python.
 *
 * shm_queue: a FIFO of byte strings, copied into the arena by put and out
 * into malloc'd memory by get (the caller frees it). maxsize 0 = unbounded
 * (up to the arena's space: SHM_ENOSPC, never a block). After close(),
 * put answers SHM_CLOSED; get drains what is left, then answers SHM_CLOSED;
 * every blocked getter and putter is woken.
 *
 * shm_value: a shared number that keeps its subtype, like a Lua number:
 * integer + integer stays an integer (wrapping like Lua), anything with a
 * float gives a float. add() is atomic and returns the new value.
 *
 * Objects are reference-counted (shm_obj_retain/release): create gives one
 * reference, the last release destroys. Destroying an object other workers
 * still use is the caller's bug; the arena never crashes on a stale handle
 * whose block was freed (the check fails) but may accept a handle whose
 * block was reused by a new object of the same kind.
 *
 * A process killed at any point (even inside an operation) leaves every
 * object usable by the others: see the comment at the top of shared.c.
 */
#ifndef GILVM_SHARED_H
#define GILVM_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Results. Every function that can fail returns one of these. */
enum {
  SHM_OK = 0,
  SHM_TIMEOUT, /* the deadline passed first */
  SHM_STOPPED, /* should_stop() said to give up */
  SHM_OWNER_DEAD, /* lock: its owner died holding it; the lock is free again, not held by you */
  SHM_NOT_OWNER, /* lock: release by a token/thread that does not hold it */
  SHM_CLOSED, /* queue: put after close, or get on a closed and empty queue */
  SHM_ENOSPC, /* the arena has no room for this */
  SHM_ENOMEM, /* malloc failed (queue get); the item stays in the queue */
  SHM_EINVAL, /* bad handle or argument */
  SHM_ESYS, /* a system call failed (mmap); errno says why */
  SHM_OVERFLOW, /* bounded semaphore released above its bound; task_done with nothing unfinished */
  SHM_BROKEN, /* barrier: broken by a timeout, abort() or reset() */
};

/* A short English description of a result, for error messages. */
const char *shm_strerror(int rc);

typedef uint64_t shm_off; /* an offset in the arena; 0 = none */
typedef int (*shm_stop_fn)(void *arg); /* non-zero: stop waiting */
typedef struct shm_arena shm_arena; /* lives at the start of the mapping */

#define SHM_DEFAULT_ARENA_SIZE ((size_t)64 << 20)
#define SHM_POLL_NS 50000000L /* the longest sleep between should_stop polls */

/* ---- time helpers ---- */

/* now + seconds on CLOCK_MONOTONIC, for a deadline (seconds may be 0). */
struct timespec shm_deadline_in(double seconds);

/* ---- the arena ---- */

/* Maps an arena of `size` bytes (0: SHM_DEFAULT_ARENA_SIZE); pages are only
 * touched when used. Create it before forking or starting workers. */
int shm_arena_create(size_t size, shm_arena **out);
/* Unmaps it in this process (other processes keep their mapping). */
void shm_arena_destroy(shm_arena *a);

/* Raw allocation, 8-byte aligned; the objects below use it. */
int shm_alloc(shm_arena *a, size_t n, shm_off *out);
int shm_free(shm_arena *a, shm_off off); /* SHM_EINVAL for a bad or double free */
void *shm_ptr(shm_arena *a, shm_off off); /* NULL for 0 or out of range */

typedef struct shm_stats {
  size_t size; /* bytes mapped */
  size_t heap_bytes; /* bytes available to blocks */
  size_t used_bytes; /* bytes in allocated blocks, headers included */
  size_t used_blocks;
  size_t free_bytes;
  size_t free_blocks;
  size_t largest_free; /* the biggest block one allocation could get (its payload) */
  size_t repairs; /* times a lock was found "owner died" and its state rebuilt */
} shm_stats;
void shm_arena_stats(shm_arena *a, shm_stats *out);
/* Walks the whole heap and free list; SHM_OK if every invariant holds (tests). */
int shm_arena_check(shm_arena *a);

/* ---- objects: kinds and references ---- */

enum {
  SHM_T_NONE = 0,
  SHM_T_LOCK,
  SHM_T_QUEUE,
  SHM_T_VALUE,
  SHM_T_RLOCK,
  SHM_T_EVENT,
  SHM_T_SEMAPHORE,
  SHM_T_BARRIER,
  SHM_T_CONDITION,
  SHM_T_ARRAY,
  SHM_T_PIPE,
  SHM_T_NKINDS
};

/* The kind of the live object at `off`, or SHM_T_NONE if there is none. */
int shm_obj_type(shm_arena *a, shm_off off);
int shm_obj_retain(shm_arena *a, shm_off off);
/* Drops a reference; the last one destroys the object. A lock still held
 * by another thread is then leaked rather than freed (its owner's robust
 * list points into it). */
int shm_obj_release(shm_arena *a, shm_off off);

/* ---- lock ---- */

int shm_lock_new(shm_arena *a, shm_off *out);
/* SHM_OK (you hold it), SHM_TIMEOUT, SHM_STOPPED, SHM_OWNER_DEAD, SHM_EINVAL (owner 0). */
int shm_lock_acquire(shm_arena *a, shm_off lock, uint64_t owner, const struct timespec *deadline,
                     shm_stop_fn should_stop, void *arg);
/* SHM_OK or SHM_NOT_OWNER. Never blocks. */
int shm_lock_release(shm_arena *a, shm_off lock, uint64_t owner);
/* 1 if held (also when its owner died and nobody has tried it since), else 0. */
int shm_lock_locked(shm_arena *a, shm_off lock);
/* The holder's token (0: free). */
uint64_t shm_lock_owner(shm_arena *a, shm_off lock);
#define SHM_WHERE_LEN 80
/* 1 if held by owner from this thread. */
int shm_lock_owned(shm_arena *a, shm_off lock, uint64_t owner);

/* ---- rlock: a lock (the same functions) its owner may acquire again;
 * it is free once released as many times as acquired. */
int shm_rlock_new(shm_arena *a, shm_off *out);

/* ---- queue ---- */

int shm_queue_new(shm_arena *a, size_t maxsize, shm_off *out);
/* Copies len bytes in; blocks while the queue is full. SHM_OK, SHM_TIMEOUT,
 * SHM_STOPPED, SHM_CLOSED, SHM_ENOSPC. */
int shm_queue_put(shm_arena *a, shm_off q, const void *data, size_t len, const struct timespec *deadline,
                  shm_stop_fn should_stop, void *arg);
/* Blocks while the queue is empty; on SHM_OK *data is malloc'd (free it)
 * and *len its size. SHM_TIMEOUT, SHM_STOPPED, SHM_CLOSED, SHM_ENOMEM. */
int shm_queue_get(shm_arena *a, shm_off q, void **data, size_t *len, const struct timespec *deadline,
                  shm_stop_fn should_stop, void *arg);
int shm_queue_close(shm_arena *a, shm_off q);
size_t shm_queue_size(shm_arena *a, shm_off q);
int shm_queue_empty(shm_arena *a, shm_off q);
int shm_queue_closed(shm_arena *a, shm_off q);
size_t shm_queue_maxsize(shm_arena *a, shm_off q);
/* queue.Queue's task_done/join: every successful put adds one unfinished
 * task, task_done removes one (SHM_OVERFLOW if none), join waits for 0. */
int shm_queue_task_done(shm_arena *a, shm_off q);
uint64_t shm_queue_unfinished(shm_arena *a, shm_off q);
int shm_queue_join(shm_arena *a, shm_off q, const struct timespec *deadline, shm_stop_fn should_stop, void *arg);

/* ---- pipe: two ends over one queue each way (one queue if one-way).
 * An end counts its open copies (the creator's, and one per interpreter
 * that decodes it); when the count drops to 0 both its queues are closed:
 * the other end's recv drains then answers SHM_CLOSED, its send SHM_CLOSED.
 * in/out are 0 where a one-way end cannot receive/send. */
int shm_pipe_new(shm_arena *a, int duplex, shm_off *end_a, shm_off *end_b);
int shm_pipe_queues(shm_arena *a, shm_off end, shm_off *in, shm_off *out);
/* Adds delta (+1, -1) to the end's open copies; the new count, or -1. */
int64_t shm_pipe_open(shm_arena *a, shm_off end, int delta);

/* ---- event, semaphore, barrier, condition (as Python's threading) ----
 * Blocking calls: SHM_OK, SHM_TIMEOUT, SHM_STOPPED (and as noted). */
int shm_event_new(shm_arena *a, shm_off *out);
int shm_event_set(shm_arena *a, shm_off e, int flag); /* flag 0: clear */
int shm_event_is_set(shm_arena *a, shm_off e);
int shm_event_wait(shm_arena *a, shm_off e, const struct timespec *deadline, shm_stop_fn should_stop, void *arg);

/* bound 0: unbounded; else release above it is SHM_OVERFLOW. */
int shm_sem_new(shm_arena *a, int64_t value, int64_t bound, shm_off *out);
int shm_sem_acquire(shm_arena *a, shm_off s, const struct timespec *deadline, shm_stop_fn should_stop, void *arg);
int shm_sem_release(shm_arena *a, shm_off s, int64_t n);
int64_t shm_sem_value(shm_arena *a, shm_off s);

/* wait: *index gets the arrival order 0..parties-1. SHM_BROKEN when broken
 * (before or while waiting); the waiter that times out breaks it and gets
 * SHM_TIMEOUT. reset(abort_it=0) frees waiters as broken and makes it new;
 * abort_it=1 breaks it. info: 0 parties, 1 waiting, 2 broken, 3 generation
 * (+1 each time it lets its waiters go, or a reset frees them). */
int shm_barrier_new(shm_arena *a, int64_t parties, shm_off *out);
int shm_barrier_wait(shm_arena *a, shm_off b, const struct timespec *deadline, shm_stop_fn should_stop, void *arg,
                     int64_t *index);
int shm_barrier_reset(shm_arena *a, shm_off b, int abort_it);
int64_t shm_barrier_info(shm_arena *a, shm_off b, int what);

/* A condition over a lock or rlock (retained). wait and notify need the
 * lock held by owner from this thread (else SHM_NOT_OWNER); wait gives it
 * up while waiting and holds it again when it returns (also on
 * SHM_TIMEOUT; not on SHM_STOPPED). */
int shm_cond_new(shm_arena *a, shm_off lock, shm_off *out);
shm_off shm_cond_lock(shm_arena *a, shm_off c);
int shm_cond_wait(shm_arena *a, shm_off c, uint64_t owner, const struct timespec *deadline, shm_stop_fn should_stop,
                  void *arg);
int shm_cond_notify(shm_arena *a, shm_off c, uint64_t owner, int64_t n);
/* Does owner wait on c, not yet notified? (the deadlock detector's) */
int shm_cond_waiting(shm_arena *a, shm_off c, uint64_t owner);

/* ---- value ---- */

typedef struct shm_number {
  int is_float;
  union {
    int64_t i;
    double f;
  };
} shm_number;

static inline shm_number shm_int(int64_t i) {
  shm_number n = { .is_float = 0, .i = i };
  return n;
}
static inline shm_number shm_float(double f) {
  shm_number n = { .is_float = 1, .f = f };
  return n;
}

int shm_value_new(shm_arena *a, shm_number init, shm_off *out);
int shm_value_get(shm_arena *a, shm_off v, shm_number *out);
int shm_value_set(shm_arena *a, shm_off v, shm_number x);
/* Atomically adds n; *result (may be NULL) gets the new value. */
int shm_value_add(shm_arena *a, shm_off v, shm_number n, shm_number *result);

/* ---- array: n numbers (each keeps its subtype), 0-based here, all 0 at first ---- */
int shm_array_new(shm_arena *a, size_t n, shm_off *out);
size_t shm_array_len(shm_arena *a, shm_off arr);
/* op: 0 get (into *x), 1 set (from *x), 2 add (*x in, the sum out). SHM_EINVAL out of range. */
int shm_array_op(shm_arena *a, shm_off arr, size_t i, int op, shm_number *x);

/* ---- the wait board: who waits for what, seen by every process (the
 * deadlock detector's; shm only stores it). An entry per waiting token. */
#define SHM_BOARD_SLOTS 256
typedef struct shm_wait {
  uint64_t token; /* who waits (pid << 32 | worker); 0: a free slot */
  uint64_t on; /* what for: the caller's (a lock's offset, a worker's token) */
  shm_off obj; /* the object waited on, or 0: readers may retain it (shm_board_read) */
  uint32_t kind; /* the caller's */
  uint32_t detail; /* the caller's, e.g. the object's kind noted by a reader */
  uint64_t held_by; /* the caller's, e.g. who held the lock when a reader looked */
  int32_t slot; /* where it is on the board (set by put) */
  char name[64]; /* the waiter's name */
  char where[SHM_WHERE_LEN]; /* "file:line" of the wait */
} shm_wait;
/* Makes the board (else made on first use): call it before any worker exists. */
int shm_board_init(shm_arena *a);
/* Puts (or replaces) the entry of w->token, *slot (may be NULL) gets its
 * place; SHM_ENOSPC when the board is full. */
int shm_board_put(shm_arena *a, const shm_wait *w, int *slot);
/* The slot's "asleep" word: give it to shm_sleep_note. */
_Atomic uint32_t *shm_board_asleep(shm_arena *a, int slot);
/* From now on this thread's waits in shm_* set *flag to 1 while asleep in the
 * kernel and back to 0 as soon as they wake, before they look at what they
 * wait for (NULL: stop). So "asleep, and what it waits for is not there"
 * seen in that order means it was still waiting. */
void shm_sleep_note(_Atomic uint32_t *flag);
/* From now on this thread's waits in shm_* call fn(arg) instead of sleeping
 * in the kernel, then look again (NULL: stop). --sim's: it blocks in virtual
 * time instead, so a wait never holds the simulator's baton asleep. */
typedef void (*shm_sleep_fn)(void *arg);
void shm_sleep_hook(shm_sleep_fn fn, void *arg);
void shm_board_remove(shm_arena *a, uint64_t token);
/* The same, knowing its slot: no search. */
void shm_board_remove_slot(shm_arena *a, int slot, uint64_t token);
/* Copies up to max entries; *version (may be NULL) changes with every put
 * and remove. Each entry's obj is retained (0 if it could not be): its
 * waiter may stop waiting and drop it at any moment after the copy, and a
 * reader looks at it later. shm_board_unread gives them back. */
int shm_board_read(shm_arena *a, shm_wait *out, int max, uint64_t *version);
void shm_board_unread(shm_arena *a, shm_wait *out, int n);
uint64_t shm_board_version(shm_arena *a);
/* A process worker publishes how many of its threads may still act (its
 * own threads, itself included, not yet finished): add 0 sets the count to
 * n, add 1 adds n; 0 removes the entry. Returns the count, or -1 (a full
 * table). Changes the version. proc_live: pid's count, or -1 if unknown. */
int shm_board_proc(shm_arena *a, int32_t pid, int32_t n, int add);
int shm_board_proc_live(shm_arena *a, int32_t pid);

#endif
