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
 * events, not every few instructions. CORES virtual cores are shared
 * equally among runnable threads (processor sharing): with R > CORES
 * runnable, CPU work of d costs d * R / CORES of virtual time.
 *
 * Nothing here is called in a real run: every entry point is behind
 * sim_on(). When every thread is blocked with no timer left, the run is a
 * deadlock: it says so and exits with status 4.
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
#define SIM_WAKE_NS 10000 /* a blocked thread woken until it runs: a futex wake-up on this machine, rounded */
#define SIM_TICK 1000 /* instructions between the hook's clock updates */
#define SIM_LOOKAHEAD_NOGIL_NS 100000 /* nogil: free threads hand over every 100 us, not every tick */
/* A fork: what gil.process's fork() costs its caller here (bench/fork_cost.lua, 103-109 us), rounded. */
#define SIM_FORK_NS 100000
/* The marshaller: bytes encoded or decoded per second (bench/roundtrip.lua, 12.1 MB each way in 0.12 s), rounded. */
#define SIM_COPY_BYTES_PER_S 100e6

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
} sim_thread;

typedef struct sim_config {
  int cores; /* virtual cores (> 0) */
  uint64_t seed;
  double insn_ns; /* virtual ns per Lua VM instruction */
  uint64_t wake_ns; /* from a wake-up to the woken thread running */
  int tick; /* instructions between the hook's clock updates */
  uint64_t lookahead_ns; /* a thread may run this far past another runnable thread's clock (not past a timer) */
  uint64_t fork_ns; /* a simulated process's fork: CPU of its spawner (0: SIM_FORK_NS) */
  double copy_bytes_per_s; /* the marshaller's speed, bytes encoded or decoded a second (0: SIM_COPY_BYTES_PER_S) */
} sim_config;

extern int sim_enabled;
static inline int sim_on(void) { return sim_enabled; }

/* Turn the simulator on (before rt_create); the calling thread is main's. */
void sim_init(const sim_config *c, sim_thread *main_thread, const char *name);
const sim_config *sim_config_get(void);
/* The spawner registers a new thread (runnable at the spawner's clock) before starting its pthread. */
void sim_register(sim_thread *t, const char *name);
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
/* Make one (seeded choice) or all threads blocked on chan runnable. */
void sim_wake(const void *chan, int all);
/* CPU work of ns by the calling thread (instructions or compute), then hand over if past the horizon. */
void sim_advance(uint64_t ns);
/* A seeded count of instructions, 1..tick: how long a drop request waits before it looks for a check point. */
int sim_jitter(void);
/* Free workers (not under one GIL) exist from now on: let a thread run up to ns past another's clock
   (as nogil's lookahead), or two of them would hand the baton to each other every few ns. */
void sim_lookahead_at_least(uint64_t ns);
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
/* The run is stopping: every blocked thread becomes runnable. */
void sim_stop(void);
/* The GIL's virtual-time driver, on this scheduler. */
extern const gil_vt_ops sim_gil_ops;

#endif
