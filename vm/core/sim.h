/*
 * sim.h — the virtual-time scheduler behind --sim (issue 9).
 *
 * Workers stay real pthreads with their own Lua states, but under --sim
 * exactly one of them runs at a time: it holds the baton. Each has a
 * virtual clock (vt) that advances only by the cost model: instructions
 * counted by the eval breaker's hook, gil.compute/gil.native (exactly s),
 * blocking waits (a sleep blocks exactly s; a wake-up comes at the waker's
 * time plus a fixed wake-up cost). The scheduler is a discrete-event loop:
 * the baton always goes to the runnable thread with the smallest clock, or
 * to the blocked thread whose timer is earliest, ties broken by a PRNG
 * seeded with --seed; the holder keeps it until its clock passes the next
 * time anything else could happen (the horizon), so it hands over at
 * events, not every few instructions. CORES virtual cores are scheduled
 * as an OS schedules CPUs: at most CORES threads run at once; a runnable
 * thread without a core waits in a FIFO run queue ("waiting for a CPU",
 * counted per thread as the kernel's run-queue wait is) and gets the core
 * of a thread that blocks, ends, or has run a whole time slice while
 * others waited (round robin). OS costs (a context switch, a wake-up, a
 * drop request's delivery, a spawn, ...) are one table of parameters
 * (sim_cost_*, --sim-cost NAME=VALUE).
 *
 * Nothing here is called in a real run: every entry point is behind
 * sim_on(). When every thread is blocked with no timer left, the run is a
 * deadlock: the handler given to sim_on_deadlock (the runtime's detector)
 * says so and stops the run, which then ends as a real deadlock does
 * (exit status 4, the report); without one, it says so and exits with 4.
 */
#ifndef SIM_H
#define SIM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "exits.h"
#include "gil.h"

#define SIM_EXIT_DEADLOCK EXIT_DEADLOCK /* as the real runtime's deadlock detector */
/* The cost model's defaults (README, "--sim"). */
#define SIM_INSN_NS 1.5 /* a Lua VM instruction: cpu_bound.lua's loop on this machine's lua5.4, rounded */
#define SIM_WAKE_NS \
  23000 /* a blocked thread woken until it runs: this VM, an idle vCPU, 23-27 us (bench/README.md row 4; spread adds the rest) */
#define SIM_TICK 1000 /* instructions between the hook's clock updates */
#define SIM_LOOKAHEAD_NOGIL_NS 100000 /* nogil: free threads hand over every 100 us, not every tick */
/* A fork: what gil.process's fork() costs its caller here (bench/fork_cost.lua, 103-109 us), rounded. */
#define SIM_FORK_NS 100000
/* The marshaller: 10 us per 1000 bytes encoded or decoded, 100 MB/s (bench/roundtrip.lua, 12.1 MB in 0.12 s). */
#define SIM_COPY_KB_NS 10000

/* The OS costs of the model, one table (sim.c: name, default, meaning); each is ns. */
typedef enum sim_cost_id {
  SIM_COST_WAKE, /* a blocked thread woken until it runs */
  SIM_COST_SWITCH, /* a core changes the thread it runs (slice expiry, a blocker's core given to a queued thread) */
  SIM_COST_SLICE, /* a thread's time slice while others wait for a core (0: EEVDF's base slice for CORES) */
  SIM_COST_SIGNAL, /* a drop request until the holder's eval breaker sees it */
  SIM_COST_SPAWN, /* the spawner's CPU to start a thread; the new one is runnable when it is paid */
  SIM_COST_INTERP, /* CPU a nogil worker spends creating its own interpreter */
  SIM_COST_FUTEX, /* CPU a release pays to wake a blocked GIL waiter (the futex wake syscall) */
  SIM_COST_HOOK, /* CPU per call of a policy's resting hook (legacy: every check interval) */
  SIM_COST_GAP, /* a yield's release until its retake (two critical sections), the GIL free meanwhile */
  SIM_COST_SPREAD, /* a GIL waiter's wake-up comes wake + [0, spread) later, a seeded draw */
  SIM_COST_FORK, /* a simulated process's fork: CPU of its spawner, its GIL held */
  SIM_COST_COPY, /* the marshaller's CPU per 1000 bytes encoded or decoded (a process's copies) */
  SIM_COST_TIMER, /* a GIL waiter's timed wait expires this late (the kernel's timer slack and a wake-up) */
  SIM_COST_RESUME, /* at most this CPU lost by the new holder after a forced switch (cold caches: its thread moved core) */
  SIM_COST_HANDOFF, /* a woken GIL waiter queues on the GIL's mutex this long: a release within it hands it over */
  SIM_COST_WOKEN, /* CPU a GIL waiter spends at each wake-up (the wait's return, the mutex, the next wait) */
  SIM_COST_OBJECT, /* CPU per call of a shared object's method, beyond its Lua instructions */
  SIM_COST_SOCKET, /* CPU per send or recv on a socket between the script's workers (the kernel's TCP) */
  SIM_NCOSTS
} sim_cost_id;

typedef struct sim_thread {
  const char *name; /* for the deadlock message */
  int state; /* SIM_READY, SIM_BLOCKED, SIM_DONE */
  uint64_t vt; /* its virtual clock, ns */
  uint64_t vcpu; /* virtual CPU time, ns */
  const void *chan; /* blocked on (NULL: a timer only) */
  uint64_t deadline; /* blocked until (0: none) */
  int timed_out;
  int live; /* registered and not yet exited: its pthread may still need the baton */
  pthread_cond_t cv; /* it waits here for the baton */
  /* virtual cores */
  int oncore; /* holds a core (runnable threads only) */
  int queued; /* runnable, in the run queue: waiting for a CPU */
  uint64_t qseq; /* its place in the run queue */
  uint64_t queued_at; /* since when it waits for a CPU */
  uint64_t slice_end; /* its slice ends here (matters only while others wait) */
  uint64_t runq_ns; /* total time runnable without a core */
  uint64_t cpu_wait_from, cpu_wait_to; /* a wait for a CPU not yet told to cpu_fn (from == to: none) */
  void (*cpu_fn)(void *arg, int what, uint64_t from, uint64_t to); /* on its own pthread: a SIM_SPAN_* from..to */
  void *cpu_arg;
  /* race points (sim_race_point), touched only by the thread itself */
  int rp_since; /* race points since the hook last moved its clock */
  int rp_tick; /* race points in the last tick */
  int rp_behind; /* another thread's turn is before its clock (found when its clock moved) */
  int rp_armed, rp_skip; /* so: hand over after rp_skip more race points */
  uint64_t owed_ns; /* object calls' CPU (SIM_COST_OBJECT) not yet on its clock: paid at the next tick */
  const void *group; /* the GIL it runs Lua under (NULL: not known yet): no lookahead for one shared */
  uint64_t
      cold_ns; /* after a forced switch, CPU it still runs at half speed (SIM_COST_RESUME) until it lets its core go */
} sim_thread;

typedef struct sim_config {
  int cores; /* virtual cores (> 0) */
  uint64_t seed;
  double insn_ns; /* virtual ns per Lua VM instruction */
  int tick; /* instructions between the hook's clock updates */
  uint64_t lookahead_ns; /* a thread may run this far past another runnable thread's clock (not past a timer) */
  int64_t cost[SIM_NCOSTS]; /* ns; < 0 or unset (0 with cost_set 0): the default */
  int cost_set[SIM_NCOSTS]; /* cost[i] was given (--sim-cost) */
} sim_config;

extern int sim_enabled;
static inline int sim_on(void) { return sim_enabled; }

/* Turn the simulator on (before rt_create); the calling thread is main's. */
void sim_init(const sim_config *c, sim_thread *main_thread, const char *name);
const sim_config *sim_config_get(void);
/* The spawner registers a new thread (runnable at the spawner's clock) before starting its pthread. */
void sim_register(sim_thread *t, const char *name);
/* The same, runnable start_ns after the spawner's clock (a simulated process: its fork). */
void sim_register_after(sim_thread *t, const char *name, uint64_t start_ns);
/* Its pthread could not be started: forget it. */
void sim_forget(sim_thread *t);
/* First thing on the new pthread: wait for the baton. */
void sim_start(sim_thread *t);
/* Last thing: done, hand the baton on; wakes the threads blocked on t in sim_wait_gone. */
void sim_exit(void);
/* Block until t has called sim_exit: then its pthread can be joined. */
void sim_wait_gone(sim_thread *t);
/* Block the calling thread on chan (NULL: none) for up to timeout_ns (0: no limit); 1 if it timed out. */
int sim_block(const void *chan, uint64_t timeout_ns);
/* The calling thread waits for real (a pipe another worker may write) outside the simulation, which
   goes on without it; sim_outside_end brings it back, a wake-up after the latest clock. */
void sim_outside_begin(void);
void sim_outside_end(void);
/* The same after a wait on the thread's own child, which runs in real time: it comes back at
   virtual time `at` (its caller's reckoning), or the latest clock if later, plus a wake-up. */
void sim_outside_end_at(uint64_t at);
/* Make one (seeded choice) or all threads blocked on chan runnable; sim_wake_n says how many. */
void sim_wake(const void *chan, int all);
int sim_wake_n(const void *chan, int all);
/* CPU work of ns by the calling thread (instructions or compute), then hand over if past the horizon. */
void sim_advance(uint64_t ns);
/* A shared object is about to be used: with free workers about (a lookahead), hand over first to
   any thread whose turn is before the caller's clock, so that races on shared objects happen. */
void sim_race_point(void);
/* A seeded count of instructions, 1..tick: how long a drop request waits before it looks for a check point. */
int sim_jitter(void);
/* Free workers (not under one GIL) exist from now on: let a thread run up to ns past another's clock
   (as nogil's lookahead), or two of them would hand the baton to each other every few ns. */
void sim_lookahead_at_least(uint64_t ns);
/* The calling thread runs Lua under this GIL (any pointer that names it): only a thread alone
   under its GIL gets the lookahead, so a holder never runs on past a moment at which another
   thread of its GIL, woken by any worker, could ask it to drop. */
void sim_set_group(const void *group);
/* The virtual CPU time the marshaller takes to encode or decode that many bytes. */
uint64_t sim_copy_ns(size_t bytes);
/* Instructions counted by the hook. */
void sim_insns(int n);
/* Virtual ns of CPU work the calling thread may still do before it must hand over (0: none). */
uint64_t sim_room(void);
/* The calling thread's virtual clock (another thread: the latest clock). */
uint64_t sim_now(void);
uint64_t sim_thread_cpu(void);
uint64_t sim_total_cpu(void);
/* Every thread waits and nothing is due: fn(names of the n waiting threads) is
   called (without the scheduler's lock, by the last thread to block) to say
   so and stop the run (rt_stop, which calls sim_stop). */
void sim_on_deadlock(void (*fn)(const char *names, int n));
/* The run is stopping: every blocked thread becomes runnable. */
void sim_stop(void);
/* The cost table: its size, each name and meaning, and its default for `cores` (ns). */
int sim_cost_count(void);
const char *sim_cost_name(int i);
const char *sim_cost_about(int i);
uint64_t sim_cost_default(int i, int cores);
/* The cost named by name[0..len) (-1: none), and setting it in c (--sim-cost NAME=DUR). */
int sim_cost_find(const char *name, size_t len);
void sim_cost_set(sim_config *c, int i, uint64_t ns);
/* The running simulation's cost (its default unless set). */
uint64_t sim_cost(sim_cost_id id);
/* The calling thread's virtual CPU time and run-queue wait (as the kernel's schedstat); 0. */
int sim_thread_sched(uint64_t *on_cpu_ns, uint64_t *runq_ns);
/* The calling thread's sim_thread (main's is the simulator's own). */
sim_thread *sim_self(void);
/* What a span told to a thread's cpu_fn was (timelines). */
enum {
  SIM_SPAN_CPU_WAIT, /* runnable, waiting for a core */
  SIM_SPAN_SYSCALL /* CPU in the kernel for the GIL (the futex wake a release pays) */
};
/* Call fn(arg, what, from, to) on t's own pthread after each such span of its. */
void sim_set_cpu_fn(sim_thread *t, void (*fn)(void *arg, int what, uint64_t from, uint64_t to), void *arg);
/* The calling thread pays ns of CPU that is not Lua (a syscall, a hook): sim_advance by another name. */
void sim_charge(uint64_t ns);
/* The GIL's virtual-time driver, on this scheduler. */
extern const gil_vt_ops sim_gil_ops;

#endif
