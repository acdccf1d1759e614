/*
 * runtime.h — one gilvm run: interpreters, the GILs, the workers, and the
 * stop machinery (timeout, Ctrl-C) that makes sure none of them hangs.
 *
 * A worker is one of three kinds:
 *   RT_THREAD      a Lua thread (lua_newthread) of its spawner's interpreter,
 *                  on its own pthread, under that interpreter's GIL. All of
 *                  gil mode is this: one interpreter, one GIL, many threads.
 *   RT_OWN_INTERP  a pthread with an interpreter of its own (nogil mode). It
 *               starts from a copy of the spawner's globals, gets its
 *               function and arguments by copy and returns results by copy
 *               (vm/share/marshal.c). Its interpreter has its own GIL, which
 *               nobody else ever wants, so nothing waits.
 *   RT_PROCESS  a fork() of the running process (fork mode): it has
 *               everything already, runs the function, and sends its
 *               results and figures back through a pipe.
 * No OS thread touches a Lua state without holding that state's GIL.
 */
#ifndef RUNTIME_H
#define RUNTIME_H

#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "events.h"
#include "gil.h"
#include "marshal.h"
#include "rt_mode.h"
#include "shared.h"
#include "sim.h"
#include "snapshot.h"

typedef enum rt_kind { RT_THREAD, RT_OWN_INTERP, RT_PROCESS } rt_kind;

typedef enum rt_block { /* why a thread has released the GIL */
                        RT_BLOCK_SLEEP,
                        RT_BLOCK_JOIN,
                        RT_BLOCK_LOCK,
                        RT_BLOCK_QUEUE,
                        RT_BLOCK_NATIVE,
                        RT_BLOCK_IO,
                        RT_BLOCK_NKINDS
} rt_block;

typedef struct rt_interp { /* one Lua interpreter and its GIL */
  lua_State *L; /* NULL once a free worker's interpreter is closed */
  gil_t *gil;
  int other_process; /* --sim: made in a simulated process, so its GIL is that process's: left out of the
                        run's GIL figures, as a real child's GIL is */
} rt_interp;

/* What a process worker sends back besides its results (fixed size, host order). */
typedef struct rt_child_figures {
  uint64_t cpu_ns, started_ns, ended_ns, runq_ns, oncpu_ns, maxrss_kb;
  int runq_known;
  uint64_t acquisitions, forced_drops, wait_ns, hold_ns, blocked_ns, nogil_ns, io_ns;
  unsigned long long bytes_encoded, bytes_decoded;
  uint64_t nevents, events_dropped; /* its timeline follows the payload */
} rt_child_figures;

typedef struct rt_worker {
  int id;
  char name[64];
  rt_kind kind;
  rt_interp *interp; /* the interpreter it runs in (threads; RT_OWN_INTERP: its own) */
  pthread_t tid;
  lua_State *L; /* RT_THREAD: the Lua thread it runs */
  int thread_ref; /* registry reference that keeps L alive */
  gil_thread gil_thread; /* its identity and statistics for its GIL */
  atomic_int interrupt; /* the eval breaker's request flag for this thread */
  _Atomic uint64_t interrupt_sent; /* when the breaker last signalled it */
  uint64_t spawned_ns; /* when spawn was called */
  uint64_t started_ns; /* when its function started: start-up cost = started - spawned */
  uint64_t cpu_ns; /* CPU time, measured when it ends */
  uint64_t ended_ns; /* when its function returned or failed (0: not yet) */
  uint64_t runq_ns; /* runnable but without a CPU while its function ran (the kernel's run-queue wait) */
  uint64_t oncpu_ns; /* on a CPU over the same window (schedstat's first field): the warning's base */
  int runq_known; /* runq_ns was measured (the kernel's schedstat could be read) */
  /* the three below: from rt_block_begin until the wait ended, less any wait for a CPU in that
     span (the no CPU column's) and the GIL's retaking (the GIL wait column's): disjoint from both */
  uint64_t blocked_ns; /* GIL released while blocked: sleep, join, lock, queue */
  uint64_t nogil_ns; /* GIL released while running C code (gil.native(s, true)) */
  uint64_t io_ns; /* GIL released while blocked in the kernel: files, pipes, sockets, children */
  uint64_t block_runq_ns; /* the run-queue wait when the current rt_block_begin began (UINT64_MAX: unknown) */
  int nresults; /* RT_THREAD: results left on L's stack */
  mar_buf in_globals; /* RT_OWN_INTERP: the spawner's globals, encoded */
  mar_buf msg; /* RT_OWN_INTERP: function and arguments; then (and RT_PROCESS) results */
  char *error; /* message and traceback if it failed (malloc'd) */
  int interrupted; /* stopped by timeout or Ctrl-C */
  int joined; /* someone received its results or error */
  pid_t pid; /* RT_PROCESS */
  int fd; /* RT_PROCESS: read end of its pipe, -1 once closed */
  uint64_t maxrss_kb; /* RT_PROCESS: its peak memory */
  unsigned long long bytes_copied; /* RT_PROCESS: bytes its marshaller moved */
  pid_t home; /* the process whose worker it is: elsewhere, a copy (rt_inherited) */
  int fd_slot; /* RT_PROCESS: its index in runtime.piped while its pipe is open */
  int owns_interp; /* RT_OWN_INTERP: `interp` is its own interpreter, made by own_interp_main */
  ev_buf events; /* its timeline, if the run records one; written by its own thread */
  sim_thread sim; /* --sim: its virtual clock and state */
  /* --sim's processes (no fork: a pthread with an interpreter of its own, runtime.c "RT_PROCESS under --sim") */
  int sim_proc; /* RT_PROCESS simulated */
  struct rt_worker *proc; /* the simulated process it runs in (itself for one; NULL: gilvm's own) */
  struct rt_worker *parent_proc; /* a simulated process: the one that started it (NULL: gilvm's own) */
  FILE *out; /* a simulated process's stdout: its own buffer, written straight to fd 1 */
  atomic_int out_dropped; /* what it writes from now on is lost (os.exit ended it, or the whole run) */
  int exited, exit_status; /* os.exit ended this simulated process, with that status */
  char *spawn_tb; /* the spawner's stack at the spawn: a forked child's traceback goes on into it */
  long sim_pid; /* the pid its messages and the trace show */
  int local_id; /* the id the script sees (names, handle.id): counted per process, as in a real child */
  int next_local; /* a simulated process's count of its own workers (a child's copy of the counter) */
  /* under rt->mu */
  int done; /* its function has returned or failed */
  int reaped; /* its pthread has been joined / its process waited for */
  int collecting; /* RT_PROCESS: a joiner is reading its pipe */
  int handles; /* Lua handles to it alive: released once 0 and joined */
  struct runtime *rt;
} rt_worker;

/* What the layers above give the runtime when they create it (as Wren's
   WrenConfiguration): the runtime calls these and includes nothing of theirs. */
typedef struct rt_host {
  void (*open)(lua_State *L); /* a new interpreter, after the standard libraries */
  void (*before_wait_all)(struct runtime *rt); /* first thing in rt_wait_all (and a fork child's end) */
} rt_host;

typedef struct runtime {
  rt_mode mode;
  rt_kind spawn_kind; /* what gil.spawn makes in this mode */
  const char *policy;
  uint64_t interval_ns;
  pthread_mutex_t mu; /* guards workers[], interps[], done/reaped, figures */
  pthread_cond_t done_cv; /* a worker finished */
  pthread_cond_t stop_cv; /* stop requested: wakes sleepers */
  pthread_mutex_t fork_mu; /* one fork at a time, so no child inherits another's pipe */
  atomic_int starting; /* threads created that have not reached their body (rt_thread_starting) */
  rt_worker **workers; /* live worker records; workers[0] is main */
  int nworkers;
  size_t cap;
  int next_id; /* ids are never reused: workers spawned so far, main included */
  int next_local; /* local ids (rt_worker.local_id) of this process's own workers; == next_id but under --sim */
  rt_totals gone; /* released workers, summed */
  int keep_all; /* no more releases (the run is ending, or its timeline is recorded) */
  int closing; /* rt_destroy: worker records are being freed */
  int fork_walk; /* records a forked child's set-up visited (gil._debug) */
  int first_own; /* workers[first_own..] are this process's (a forked child's start after its parent's) */
  rt_worker **piped; /* process workers whose pipe is open: a forked child closes them */
  int npiped; /* (under fork_mu) */
  size_t pipedcap;
  int life[2]; /* parent-liveness pipe: children see EOF when this process dies */
  atomic_int exiting; /* os.exit has begun: a thread taking a GIL parks instead of running Lua */
  rt_worker *exiter; /* the thread running os.exit */
  rt_interp **interps; /* interps[0] is main's */
  int ninterps;
  size_t icap;
  int is_child; /* this process is a fork worker */
  pid_t pid; /* getpid(), cached: shared objects ask for it on every call */
  int recording; /* keep every thread's timeline (--trace, --timeline, --svg) */
  atomic_int stop; /* 0, or the exit code the stop asks for (124, 130, 143) */
  const char *stop_reason; /* "timeout", "interrupted" */
  uint64_t start_ns, end_ns;
  uint64_t real_start_ns, real_end_ns; /* --sim: the host's clock (virtual time is start_ns, end_ns) */
  uint64_t cpu_start_ns, cpu_ns; /* CPU time over the run, children included */
  uint64_t maxrss_kb; /* peak memory, summed over processes */
  rt_figure figures[32];
  int nfigures;
  /* Shared objects (vm/lua/objects.c). The arena is mapped in rt_create, before any
     worker exists, so every thread and forked process sees it (NULL if it could
     not be mapped: the objects then raise an error). Size: rt_arena_size, or
     SHM_DEFAULT_ARENA_SIZE. */
  shm_arena *arena;
  atomic_int forked; /* a process worker has been started: queues stop passing references */
  atomic_int stdout_failed; /* a process worker could not write its stdout (it said so on stderr) */
  rt_host host; /* the callbacks rt_create was given */
  pid_t *kids; /* process groups of io.popen's and os.execute's children, this process's (under mu) */
  int nkids;
  size_t kidcap;
} runtime;

/* w is a copy of a worker of another process (a forked child's parent). */
#define rt_inherited(rt, w) ((w)->home != (rt)->pid)

/* The runtime of this process (one per gilvm run). */
extern runtime *rt_current;
/* The worker running on the calling OS thread (NULL on helper threads). */
rt_worker *rt_self(void);
/* This process's pid (cached; updated in a forked child). */
pid_t rt_pid(void);
/* The GIL of the calling worker's interpreter. */
gil_t *rt_gil(void);

runtime *rt_create(const rt_host *host, rt_mode mode, const char *policy, uint64_t interval_ns, int check_interval);
/* Close the interpreters (main's GIL taken: __gc metamethods may run Lua) and free it all. */
void rt_destroy(runtime *rt);
/* Main's interpreter, with the standard libraries and what host->open adds. */
lua_State *rt_main_state(runtime *rt);
/* Run body(L, arg) as worker "main" on the calling thread, holding main's GIL
   with the eval breaker attached; returns what body returns. */
int rt_run_main(runtime *rt, int (*body)(lua_State *L, void *arg), void *arg);
/* The message handler every run of a script or worker body uses: lua5.4's
   (a string, or what __tostring gives, with a traceback). */
int rt_msghandler(lua_State *L);
/* Bytes of address space for the shared objects' arena, set before rt_create
   (0: SHM_DEFAULT_ARENA_SIZE). The command line fills it: --arena, GILVM_ARENA_MB. */
extern size_t rt_arena_size;

/* A thread of this process is being created, and has reached its body: a fork waits while any is
   starting, as its start-up allocates (the C library's, ASan's) and a child forked meanwhile could
   inherit an allocator lock that nobody in it will release (ASan's allocator has no fork
   handlers), and hang at its next malloc. */
void rt_thread_starting(runtime *rt);
void rt_thread_started(runtime *rt);

/* Spawn fn (at stack index idx of L, its arguments above it, n values in all) as a
   worker of the given kind; pushes nothing. GIL held. Raises a Lua error on failure. */
rt_worker *rt_spawn(lua_State *L, rt_kind kind, int idx, int n);
/* Wait for w with the GIL released; returns 1 if it is done, 0 on timeout
   (timeout_ns < 0: forever). Raises the stop error if the run is being stopped. */
int rt_join(lua_State *L, rt_worker *w, int64_t timeout_ns);
/* Push w's results (after rt_join returned 1), or raise its error. Returns how many. */
int rt_push_results(lua_State *L, rt_worker *w);
/* A Lua handle to w was made / collected. The last one of a joined worker
   releases it: its figures go to rt->gone, its memory is freed. GIL held. */
void rt_handle_new(rt_worker *w);
void rt_handle_gone(lua_State *L, rt_worker *w);
/* os.exit from any thread, GIL held: rt_exit_begin() stops every other
   thread of this process from running Lua from its next GIL take on (a second
   caller never returns); rt_exit() flushes stdio, kills child processes, _exits. */
void rt_exit_begin(void);
void rt_exit(int status);
/* os.exit in a simulated process (--sim; rt_self()->proc set): ends that process only,
   as a forked child's exit would; raises an error that its threads cannot keep catching. */
int rt_proc_exit(lua_State *L, int status);
/* Sleep with the GIL released. */
void rt_sleep(lua_State *L, uint64_t ns);

/* Bracket a blocking call: release the GIL, then take it back and account the time. */
uint64_t rt_block_begin(rt_worker *self, rt_block kind);
void rt_block_end(rt_worker *self, rt_block kind, uint64_t began);
/* Nonzero when the calling thread is a worker that may release its GIL now
   (not while the runtime is being destroyed). */
int rt_can_block(void);
/* A child process (io.popen, os.execute) leads process group pgid: the stop
   kills that group. Returns nonzero if the run is already stopping (the
   caller kills it). rt_kid_done once it has been waited for. */
int rt_kid_add(pid_t pgid);
void rt_kid_done(pid_t pgid);
/* A check point reached outside Lua's hooks (--sim's gil.compute): stop, or yield if the policy says so. */
void rt_checkpoint(lua_State *L);
/* Raise the stop error if the run is being stopped. */
void rt_check_stop(lua_State *L);
/* For blocking C calls: nonzero once the run is being stopped. */
int rt_should_stop(void *unused);

/* Record every thread's timeline from now on; call before any worker starts. */
void rt_record(runtime *rt);

/* Ask every thread and process to stop: exit code and reason. The first request wins. */
void rt_stop(runtime *rt, int code, const char *reason);
/* Wait (GIL not held) until every worker has finished and reap them. */
void rt_wait_all(runtime *rt);
void rt_set_figure(runtime *rt, const char *name, const char *value);
/* Totals over all interpreters' GILs (handoff latencies from main's). */
void rt_gil_stats(runtime *rt, gil_stats *out);
/* The finished run (after rt_wait_all), for the instruments. 0, or -1 if out
   of memory; rt_snapshot_free frees it, rt_destroy ends its events. */
int rt_snapshot_take(runtime *rt, rt_snapshot *s);
void rt_snapshot_free(rt_snapshot *s);

#endif
